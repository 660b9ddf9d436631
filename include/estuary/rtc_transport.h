/* The WebRTC transport host (src/net/rtc_transport.c): the one UDP port, the host candidates
 * (configured, discovered for "*"), and the links: one per WebRTC session, each driving a
 * sans-IO es_rtc_session_t on the loop. Datagrams are routed to a link by the STUN USERNAME's
 * ufrag (before and during ICE) and by 5-tuple for every valid pair (DTLS, SRTP); each link has
 * one timer, armed at its session's next deadline. No streams, SDP or admission here: the
 * application (src/app/rtc_server.c) opens links and gets plain RTP, RTCP and state back. */
#ifndef ESTUARY_RTC_TRANSPORT_H
#define ESTUARY_RTC_TRANSPORT_H

#include "estuary/config.h"
#include "estuary/rtc_session.h"
#include "estuary/tcp_listener.h"
#include "estuary/udp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ES_RTC_MAX_CANDIDATES 8

typedef struct es_rtc_transport es_rtc_transport_t;
typedef struct es_rtc_link es_rtc_link_t;
typedef struct es_rtc_port es_rtc_port_t;

/* What a link reports to its application; user is the es_rtc_link_open argument. on_rtp,
 * on_rtcp, on_pair (optional: the transport routes pairs itself), on_selected and on_state are
 * the session's (include/estuary/rtc_session.h). The
 * application may not close or free the link from inside them. on_closed comes once, when the
 * link is freed (after CLOSED/FAILED, es_rtc_link_close or es_rtc_transport_stop). */
typedef struct es_rtc_link_callbacks {
    void (*on_rtp)(void *user, uint64_t now_us, uint8_t *buf, size_t len);
    void (*on_rtcp)(void *user, uint64_t now_us, uint8_t *buf, size_t len);
    void (*on_pair)(void *user, const es_addr_pair_t *addr, bool added);
    void (*on_selected)(void *user, const es_addr_pair_t *addr, bool nominated);
    void (*on_state)(void *user, es_rtc_session_state_t state, int err, const char *reason);
    void (*on_closed)(void *user, const char *reason);
    /* Optional: called every tick_us (es_rtc_link_set_tick) on the link's timer. */
    void (*on_tick)(void *user, uint64_t now_us);
} es_rtc_link_callbacks_t;

/* es_rtc_transport_start: binds udp_listen and resolves the host candidates (each of
 * `candidates`: an IP, a host name, or "*" for the interface addresses; loopback only when the
 * machine has nothing else). Returns 0 with *out set, or ES_EIO with the reason in err. */
int es_rtc_transport_start(uv_loop_t *loop, const es_listen_t *udp_listen,
                           char *const *candidates, size_t n_candidates,
                           es_rtc_transport_t **out, char *err, size_t err_len);

/* es_rtc_transport_set_candidates: resolves the host candidates again (after SIGHUP), for new
 * sessions. */
void es_rtc_transport_set_candidates(es_rtc_transport_t *t, char *const *candidates,
                                     size_t n_candidates);

/* es_rtc_transport_candidates: the host candidate IPs (borrowed) and their count. */
size_t es_rtc_transport_candidates(const es_rtc_transport_t *t, const char *const **ips);

/* es_rtc_transport_port: the bound UDP port (host byte order). */
int es_rtc_transport_port(const es_rtc_transport_t *t);

/* es_rtc_transport_listen_tcp: ICE-TCP (RFC 6544 passive candidates, RFC 4571 framing) on a
 * port of its own, tcp_listen (webrtc.tcp_listen): a connection's first frame must be a Binding
 * request naming a session by its ufrag and authenticating (within ES_TCP_AUTH_TIMEOUT_MS), or
 * it is closed; then its frames are that session's datagrams on a pair of transport
 * ES_ADDR_TCP. Returns 0, or ES_EIO with the reason in err. */
int es_rtc_transport_listen_tcp(es_rtc_transport_t *t, const es_listen_t *tcp_listen, char *err,
                                size_t err_len);

/* es_rtc_transport_tcp_port: the ICE-TCP port (host byte order), 0 when none. */
int es_rtc_transport_tcp_port(const es_rtc_transport_t *t);

/* es_rtc_transport_on_tcp_conn: an es_tcp_listener_callbacks_t on_conn (user: the transport)
 * for connections of another listener, the HTTP port's (include/estuary/tcp_listener.h), routed
 * as the ICE-TCP port's. */
void es_rtc_transport_on_tcp_conn(void *transport, es_tcp_conn_t *c);

/* es_rtc_transport_stop: closes every link (DTLS close_notify, on_closed) and the socket;
 * es_rtc_transport_free after the loop ran dry. Both NULL-safe. */
void es_rtc_transport_stop(es_rtc_transport_t *t, const char *reason);

/* es_rtc_transport_set_batch_cb: fn brackets each batch of datagrams read from the shared UDP
 * port and from relays' own ports (es_udp_set_batch_cb), so that the application can defer
 * work to the end of the batch (es_media_batch_begin/end). */
void es_rtc_transport_set_batch_cb(es_rtc_transport_t *t, es_udp_batch_fn fn, void *user);

/* Counters of the shared UDP port and the ICE-TCP listener since start (for /metrics). */
typedef struct es_rtc_transport_stats {
    es_udp_stats_t udp;
    uint64_t unknown_datagrams;   /* from no session's address that were no STUN check for one */
    uint64_t tcp_refused;         /* ICE-TCP connections closed before they authenticated */
    es_tcp_listener_stats_t tcp;  /* the ICE-TCP port's listener (zero without one) */
} es_rtc_transport_stats_t;

/* es_rtc_transport_stats: the counters now. */
es_rtc_transport_stats_t es_rtc_transport_stats(const es_rtc_transport_t *t);
void es_rtc_transport_free(es_rtc_transport_t *t);

/* es_rtc_link_open: a session with params (its callbacks and user are replaced by the link's;
 * cb and user here get the events), routed by params->local_ufrag. Returns NULL when out of
 * memory, a credential is invalid, or the transport is stopping. */
es_rtc_link_t *es_rtc_link_open(es_rtc_transport_t *t, const es_rtc_session_params_t *params,
                                const es_rtc_link_callbacks_t *cb, void *user);

/* es_rtc_port_open: a UDP socket of its own for one relay session (include/estuary/relay.h),
 * bound to udp_listen's address with an ephemeral port. Two servers' sessions between their one
 * shared port each would all share one 5-tuple, which neither side can tell apart (DTLS and
 * SRTP carry no session id), so a relay sends from a port of its own, as browsers do. NULL with
 * the reason in err (bind failure, out of memory, stopping). Datagrams before a link adopts it
 * are dropped. */
es_rtc_port_t *es_rtc_port_open(es_rtc_transport_t *t, char *err, size_t err_len);

/* es_rtc_port_number: its bound port (host byte order). */
uint16_t es_rtc_port_number(const es_rtc_port_t *p);

/* es_rtc_port_close: closes a port no link adopted (no-op for an adopted one, which closes with
 * its link). NULL-safe. */
void es_rtc_port_close(es_rtc_port_t *p);

/* es_rtc_link_open_on: es_rtc_link_open on `own` (from es_rtc_port_open; NULL: the shared
 * port), which the link adopts and closes when it goes. NULL as es_rtc_link_open, or when own
 * was adopted already (own stays the caller's then). */
es_rtc_link_t *es_rtc_link_open_on(es_rtc_transport_t *t, es_rtc_port_t *own,
                                   const es_rtc_session_params_t *params,
                                   const es_rtc_link_callbacks_t *cb, void *user);

/* es_rtc_link_close: ends the link now (close_notify when connected), calls on_closed and frees
 * it. Not from inside the link's own callbacks. */
void es_rtc_link_close(es_rtc_link_t *l, const char *reason);

/* es_rtc_link_set_tick: on_tick every period_us (0 stops it), from the link's own timer. */
void es_rtc_link_set_tick(es_rtc_link_t *l, uint64_t period_us, uint64_t now_us);

/* es_rtc_link_restart_ice: an ICE restart with new credentials (es_rtc_session_restart_ice);
 * the link is routed by the new local ufrag from now on. Returns 0 or ES_EINVAL. */
int es_rtc_link_restart_ice(es_rtc_link_t *l, const char *local_ufrag, const char *local_pwd,
                            const char *remote_ufrag, const char *remote_pwd);

/* es_rtc_link_add_remote_candidate: (a full controlling agent: a relay's offer) the peer's
 * candidate ip ("192.0.2.1", "2001:db8::1"; an IPv4 one is mapped on a dual-stack socket) and
 * UDP port to check (es_rtc_session_add_remote_candidate, RFC 8445 §6.1.2), for a link on a
 * port of its own (es_rtc_link_open_on), where every answer reaches it. Returns 0, ES_EINVAL (not an IP
 * address, e.g. an mDNS name, or a family the socket cannot reach; or an ICE-lite session),
 * ES_EEXIST or ES_EBUSY as the session's. */
int es_rtc_link_add_remote_candidate(es_rtc_link_t *l, const char *ip, uint16_t port,
                                     uint32_t priority);

/* es_rtc_link_congested: whether media to the link's peer would be dropped now: its selected
 * pair is an ICE-TCP connection whose send queue is past ES_TCP_QUEUE_MEDIA (a player then skips
 * to the next key frame rather than queue stale video). */
bool es_rtc_link_congested(const es_rtc_link_t *l);

/* es_rtc_link_tx_buf: where the next datagram to the link's selected pair can be written in
 * place (its UDP socket's next send slot, es_udp_tx_buf), with *cap its size in bytes; NULL when
 * there is no selected pair or it is ICE-TCP (then pass any buffer: it is copied). Owned by the
 * socket; valid until the next datagram is queued on it. */
uint8_t *es_rtc_link_tx_buf(es_rtc_link_t *l, size_t *cap);

/* es_rtc_link_session: the link's session (state, stats, send_rtp/rtcp). Borrowed. */
es_rtc_session_t *es_rtc_link_session(es_rtc_link_t *l);

#endif
