/* WebRTC sessions of the daemon, the application side (src/app/rtc_server.c): the DTLS
 * certificate, offer/answer for WHIP and WHEP, admission (include/estuary/admission.h), the
 * attachment of each session to its stream, and the session table of the API. The transport
 * (UDP port, routing, per-session timers) is include/estuary/rtc_transport.h; the protocol is the
 * sans-IO session (include/estuary/rtc_session.h). WHIP/WHEP handlers (src/http/whip.c) create
 * and end sessions through this interface and map its ES_E* codes to HTTP statuses. */
#ifndef ESTUARY_RTC_SERVER_H
#define ESTUARY_RTC_SERVER_H

#include "estuary/admission.h"
#include "estuary/server.h"
#include "estuary/tcp_listener.h"

#include <jansson.h>
#include <stddef.h>

typedef struct es_rtc_server es_rtc_server_t;

typedef enum { ES_RTC_PUBLISH = 0, ES_RTC_PLAY } es_rtc_role_t;

#define ES_RTC_ID_LEN 16     /* hex characters of a session id */
#define ES_RTC_SECRET_LEN 32 /* hex characters of a session's resource secret (128 bits) */

/* The outcome of an offer, a trickle PATCH or a DELETE, for the HTTP layer. */
typedef struct es_rtc_result {
    int err;                  /* 0, or the ES_E* code (see each function) */
    char *sdp;                /* malloc'ed answer (offer) or sdpfrag (ICE restart), else NULL */
    char id[ES_RTC_ID_LEN + 1];
    char secret[ES_RTC_SECRET_LEN + 1]; /* the resource URL is .../<id>-<secret> */
    char etag[40];            /* ETag of the ICE session ("\"<ufrag>\"") */
    char error[512];          /* why, when err != 0 */
} es_rtc_result_t;

/* es_rtc_server_start: binds webrtc.udp_listen, loads or generates the DTLS certificate,
 * starts the transport (UDP port, host candidates). Returns 0, or ES_EIO after logging why.
 * *out is set whenever memory was allocated (free with es_rtc_server_free after the loop ran
 * dry). */
int es_rtc_server_start(es_server_t *srv, es_rtc_server_t **out);

/* es_rtc_server_apply_config: after SIGHUP, resolves webrtc.candidates again for new sessions.
 * NULL-safe. */
void es_rtc_server_apply_config(es_rtc_server_t *rtc);

/* es_rtc_server_stop: closes every session (DTLS close_notify) and the socket. NULL-safe. */
void es_rtc_server_stop(es_rtc_server_t *rtc);

/* es_rtc_server_free: NULL-safe; after es_rtc_server_stop and a loop run. */
void es_rtc_server_free(es_rtc_server_t *rtc);

/* es_rtc_server_port: the bound UDP port. */
int es_rtc_server_port(const es_rtc_server_t *rtc);

/* es_rtc_server_transport: the WebRTC transport (its counters), NULL while WebRTC is off.
 * Borrowed. */
const struct es_rtc_transport *es_rtc_server_transport(const es_rtc_server_t *rtc);

/* es_rtc_server_on_tcp_conn: an ICE-TCP connection sniffed on the HTTP(S) port
 * (include/estuary/tcp_listener.h), routed as the ICE-TCP port's; closed when WebRTC is off or
 * stopping. rtc may be NULL. */
void es_rtc_server_on_tcp_conn(es_rtc_server_t *rtc, es_tcp_conn_t *c);

/* es_rtc_offer: a WHIP (ES_RTC_PUBLISH) or WHEP (ES_RTC_PLAY) offer for app/stream, admitted
 * by es_admit (include/estuary/admission.h) with `token` (the Bearer token or NULL) at the
 * moment the session takes the stream (hooks were asked before, by the caller). eip ("IP" or
 * "IP:PORT", or NULL) replaces the host candidates (SRS's ?eip=). remote is the HTTP client's
 * "ip:port": logs, and the session counts against its address. id: the session's id (from
 * es_rtc_new_id), or NULL for a new one. Fills *res (free res->sdp): err 0
 * with the answer, id, secret and ETag, or an es_admit refusal (ES_EINVAL, ES_EACCES, ES_EAUTH,
 * ES_EBUSY, ES_ELIMIT, ES_EEXIST, ES_ENOENT), ES_EINVAL (bad eip), ES_EPROTO (bad SDP, no
 * BUNDLE...), ES_ENOTSUP (no common codec or direction; the reason names the codecs), ES_EBUSY
 * (WebRTC off), ES_ENOMEM, ES_ERANGE (answer too large), with the reason in res->error. A
 * publisher admitted as a takeover ends the silent publisher first. */
void es_rtc_offer(es_rtc_server_t *rtc, es_rtc_role_t role, const char *app, const char *stream,
                  const char *token, const char *sdp, size_t len, const char *eip,
                  const char *remote, const char *id, es_rtc_result_t *res);

/* es_rtc_new_id: a random session id (ES_RTC_ID_LEN hex digits), for a caller that names the
 * session before its offer is taken (the hooks are told it): pass it as es_rtc_offer's id (NULL
 * there makes one). */
void es_rtc_new_id(char id[ES_RTC_ID_LEN + 1]);

/* What a WebRTC session is asked for, whatever its signaling (WHIP/WHEP over HTTP, or a
 * WebSocket, src/http/ws_signal.c). Strings are borrowed for the call. */
typedef struct es_rtc_request {
    es_rtc_role_t role;
    es_protocol_t protocol;   /* ES_PROTO_WHIP, ES_PROTO_WHEP, ES_PROTO_WEBSOCKET or
                                 ES_PROTO_RELAY: admission, hooks and the API's "signaling" */
    const char *app, *stream;
    const char *token;        /* the token the client presented, or NULL */
    const char *eip;          /* "IP" or "IP:PORT" replacing the host candidates, or NULL */
    const char *remote;       /* the signaling client's "ip:port" */
    const char *id;           /* the session's id (es_rtc_new_id), or NULL for a new one */
    bool counted;             /* the caller's connection already counts as this client's
                                 session (es_server_session_open was called for it: a
                                 WebSocket); else the session counts itself */
    /* Told once when the session ends, whoever ends it (not when es_rtc_disown was called
     * first): reason says why. From the loop; the callee may not call back into es_rtc_*
     * for this session. */
    void (*on_closed)(void *user, const char *reason);
    void *user;
} es_rtc_request_t;

/* es_rtc_take_offer: the client's offer for req (es_rtc_offer with every field of a request).
 * Same results. */
void es_rtc_take_offer(es_rtc_server_t *rtc, const es_rtc_request_t *req, const char *sdp,
                       size_t len, es_rtc_result_t *res);

/* An offer the server made and whose answer it awaits (a WebSocket player). */
typedef struct es_rtc_pending es_rtc_pending_t;

/* es_rtc_make_offer: the server's offer (RFC 8829 §5.2) to a player (req->role ES_RTC_PLAY):
 * send-only audio and video with the codecs the stream's publisher sends, ICE-lite with our
 * host candidates, a=setup:actpass. With req->protocol ES_PROTO_RELAY (include/estuary/relay.h)
 * the offer is a relay's: not ICE-lite (the session will be a full controlling agent, RFC 8445
 * §6.1.1), and req->role ES_RTC_PUBLISH makes it receive-only with every codec Estuary forwards
 * (a pull: the session becomes the stream's source). Admitted by es_admit as es_rtc_take_offer
 * is. Returns the
 * pending offer (free with es_rtc_pending_free, or hand it to es_rtc_take_answer) with
 * res->sdp the offer and res->id the session id to be, or NULL with res->err (es_admit's codes,
 * ES_ENOTSUP when the stream has no track a player can get, ES_ENOMEM, ES_ERANGE, ES_EBUSY
 * WebRTC off) and res->error. */
es_rtc_pending_t *es_rtc_make_offer(es_rtc_server_t *rtc, const es_rtc_request_t *req,
                                    es_rtc_result_t *res);

/* es_rtc_take_answer: the peer's answer (len bytes of SDP) to pending, which this consumes
 * whatever the outcome: checked against the offer (es_sdp_answer_apply), admitted again at
 * this moment, and the session starts (DTLS server when the answer says a=setup:active, client
 * when passive). A relay's session checks the answer's UDP candidates of component 1 (mDNS
 * names are skipped) and nominates. res as for es_rtc_take_offer (ES_EPROTO for an answer that
 * does not fit the offer, or a relay's answer without a=ice-pwd or a usable candidate); res->sdp
 * stays NULL. */
void es_rtc_take_answer(es_rtc_server_t *rtc, es_rtc_pending_t *pending, const char *sdp,
                        size_t len, es_rtc_result_t *res);

/* es_rtc_pending_free: NULL-safe. */
void es_rtc_pending_free(es_rtc_pending_t *pending);

/* es_rtc_disown: the session's on_closed is not to be called any more (its owner goes first).
 * NULL-safe; unknown ids are ignored. */
void es_rtc_disown(es_rtc_server_t *rtc, const char *id);

/* es_rtc_resource_check: `resource` ("<id>-<secret>", the last segment of a WHIP/WHEP
 * resource URL) names a live session of this role, app and stream, with its secret (compared in
 * constant time). Returns 0 with the session id in id_out (ES_RTC_ID_LEN + 1 bytes), or
 * ES_ENOENT for anything else, so that a guess learns nothing. */
int es_rtc_resource_check(es_rtc_server_t *rtc, const char *resource, es_rtc_role_t role,
                          const char *app, const char *stream, char *id_out);

/* es_rtc_patch: a trickle-ice-sdpfrag (RFC 8840) for session id. if_match ("" or "*" or the
 * ETag) must match the current ETag (else ES_ESTALE). Candidates only: err 0 and no sdp. A new
 * ufrag/pwd: an ICE restart (RFC 9725 §4.4): err 0 with our new credentials as sdpfrag and a
 * new ETag. ES_ENOENT for an unknown session, ES_EPROTO for a bad fragment. */
void es_rtc_patch(es_rtc_server_t *rtc, const char *id, const char *if_match, const char *body,
                  size_t len, es_rtc_result_t *res);

/* es_rtc_delete: ends session id at once (close_notify to the client). Returns 0 or ES_ENOENT. */
int es_rtc_delete(es_rtc_server_t *rtc, const char *id, const char *why);

/* es_rtc_session_unbound: a player session's tracks that its stream's current source does not
 * feed (es_media_sink_unbound); 0 for a publisher; ES_ENOENT for an unknown id. */
int es_rtc_session_unbound(es_rtc_server_t *rtc, const char *id);

/* es_rtc_sessions_json: [{id, role, app, stream, state, remote, ...}]. New reference. */
json_t *es_rtc_sessions_json(es_rtc_server_t *rtc);

/* es_rtc_session_json: one session, or NULL when unknown. New reference. */
json_t *es_rtc_session_json(es_rtc_server_t *rtc, const char *id);

#endif
