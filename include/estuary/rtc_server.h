/* WebRTC sessions of the daemon: the one UDP port (include/estuary/udp.h), the DTLS
 * certificate, the session table (ufrag -> session for STUN before nomination, 5-tuple ->
 * session after, both O(1)), and a 10 ms timer that drives DTLS retransmissions, consent
 * freshness (RFC 7675) and the streams' RTCP. WHIP/WHEP handlers (src/http/whip.c) create and
 * end sessions through this interface. */
#ifndef ESTUARY_RTC_SERVER_H
#define ESTUARY_RTC_SERVER_H

#include "estuary/server.h"

#include <jansson.h>
#include <stddef.h>

typedef struct es_rtc_server es_rtc_server_t;

typedef enum { ES_RTC_PUBLISH = 0, ES_RTC_PLAY } es_rtc_role_t;

#define ES_RTC_ID_LEN 16 /* hex characters of a session id */

/* The outcome of an offer, a trickle PATCH or a DELETE, for the HTTP layer. */
typedef struct es_rtc_result {
    int status;               /* HTTP status: 201, 204, 200, or the 4xx/5xx to answer */
    char *sdp;                /* malloc'ed answer (201) or sdpfrag (200), NULL otherwise */
    char id[ES_RTC_ID_LEN + 1];
    char etag[40];            /* ETag of the ICE session ("\"<ufrag>\"") */
    char error[512];          /* why, for 4xx/5xx */
} es_rtc_result_t;

/* es_rtc_server_start: binds webrtc.udp_listen, loads or generates the DTLS certificate,
 * resolves the host candidates and starts the timer. Returns 0, or ES_EIO after logging why.
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

/* es_rtc_offer: a WHIP (ES_RTC_PUBLISH) or WHEP (ES_RTC_PLAY) offer for app/stream. eip
 * ("IP" or "IP:PORT", or NULL) replaces the host candidates (SRS's ?eip=). remote is the HTTP
 * client's "ip:port" for logs. Fills *res (free res->sdp). Status 201 with the answer, or
 * 400 (bad SDP, no BUNDLE...), 404 (nothing to play), 406 (no common codec; the reason names
 * the codecs), 409 (already published), 503 (limits.max_sessions). */
void es_rtc_offer(es_rtc_server_t *rtc, es_rtc_role_t role, const char *app, const char *stream,
                  const char *sdp, size_t len, const char *eip, const char *remote,
                  es_rtc_result_t *res);

/* es_rtc_patch: a trickle-ice-sdpfrag (RFC 8840) for session id. if_match ("" or "*" or the
 * ETag) must match the current ETag (else 412). Candidates only: 204. A new ufrag/pwd: an ICE
 * restart (RFC 9725 §4.4): 200 with our new credentials as sdpfrag and a new ETag. 404 for an
 * unknown session, 400 for a bad fragment. */
void es_rtc_patch(es_rtc_server_t *rtc, const char *id, const char *if_match, const char *body,
                  size_t len, es_rtc_result_t *res);

/* es_rtc_delete: ends session id at once (close_notify to the client). Returns 0 or ES_ENOENT. */
int es_rtc_delete(es_rtc_server_t *rtc, const char *id, const char *why);

/* es_rtc_sessions_json: [{id, role, app, stream, state, remote, ...}]. New reference. */
json_t *es_rtc_sessions_json(es_rtc_server_t *rtc);

/* es_rtc_session_json: one session, or NULL when unknown. New reference. */
json_t *es_rtc_session_json(es_rtc_server_t *rtc, const char *id);

#endif
