/* ICE-TCP connections on the loop (src/net/tcp_listener.c): a TCP listener whose connections
 * carry RFC 4571 frames (RFC 6544 §3, passive candidates), either on a port of its own
 * (webrtc.tcp_listen) or sharing the HTTP(S) port, where the first bytes of each new connection
 * (es_tcp_sniff, include/estuary/ice_tcp.h) send HTTP and TLS to the HTTP server and keep framed
 * STUN. Each connection reads frames of at most ES_ICE_TCP_MAX_FRAME bytes and writes through a
 * bounded queue: media is dropped when the queue is past its mark, and a peer that stops reading
 * control packets altogether is closed, so one slow socket never blocks the loop. Connections
 * that the owner does not authenticate within a deadline are closed. No ICE, no sessions: the
 * WebRTC transport (include/estuary/rtc_transport.h) routes frames. */
#ifndef ESTUARY_TCP_LISTENER_H
#define ESTUARY_TCP_LISTENER_H

#include "estuary/addr.h"
#include "estuary/config.h"
#include "estuary/ice_tcp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ES_TCP_QUEUE_MEDIA (64 * 1024)   /* bytes queued past which media frames are dropped */
#define ES_TCP_SNDBUF (64 * 1024)        /* SO_SNDBUF of a framed connection (the kernel doubles
                                            it): late media waits in neither buffer for long */
#define ES_TCP_QUEUE_MAX (1024 * 1024)   /* bytes queued past which the connection closes */
#define ES_TCP_AUTH_TIMEOUT_MS 5000      /* a connection must authenticate within this */
#define ES_TCP_SNIFF_TIMEOUT_MS 10000    /* a shared-port connection must say what it is */
#define ES_TCP_MAX_UNAUTHENTICATED 4096  /* connections not yet authenticated (or sniffed), in all */
#define ES_TCP_MAX_UNAUTHENTICATED_PER_IP 32

typedef struct es_tcp_listener es_tcp_listener_t;
typedef struct es_tcp_conn es_tcp_conn_t;

typedef struct es_tcp_listener_callbacks {
    /* A new framed connection (its first frame has not been read yet): the callee sets its
     * callbacks with es_tcp_conn_set_callbacks and authenticates or closes it. */
    void (*on_conn)(void *user, es_tcp_conn_t *c);
    /* (A shared port) a connection whose first bytes are HTTP or TLS (kind): fd is the
     * callee's now, nothing read from it yet. NULL on a port of its own. */
    void (*on_handoff)(void *user, int fd, es_tcp_sniff_t kind);
} es_tcp_listener_callbacks_t;

typedef struct es_tcp_conn_callbacks {
    /* One frame (len bytes, 1..ES_ICE_TCP_MAX_FRAME; the callee may modify it in place). The
     * callee may close the connection from inside. */
    void (*on_frame)(void *user, es_tcp_conn_t *c, uint64_t now_us, uint8_t *buf, size_t len);
    /* Once, when the connection goes (peer closed, error, timeout, es_tcp_conn_close, or the
     * listener closing); the connection is freed right after. */
    void (*on_closed)(void *user, es_tcp_conn_t *c, const char *reason);
} es_tcp_conn_callbacks_t;

typedef struct es_tcp_listener_stats {
    uint64_t accepted, handed_off, refused, closed_unauthenticated, frames_in, frames_out;
    uint64_t media_dropped;        /* frames not queued: the queue was past ES_TCP_QUEUE_MEDIA */
    uint64_t unauthenticated;      /* connections open now that are not yet authenticated */
} es_tcp_listener_stats_t;

/* es_tcp_listener_open: binds listen->addr (SO_REUSEADDR) and accepts on `loop`. share_http:
 * sniff each connection's first bytes (cb->on_handoff gets HTTP and TLS). Returns 0 with *out,
 * or ES_EIO with the reason (the errno text, e.g. "Address already in use") in err. */
int es_tcp_listener_open(uv_loop_t *loop, const es_listen_t *listen, bool share_http,
                         const es_tcp_listener_callbacks_t *cb, void *user,
                         es_tcp_listener_t **out, char *err, size_t err_len);

/* es_tcp_listener_port: the bound port (host byte order). */
uint16_t es_tcp_listener_port(const es_tcp_listener_t *l);

/* es_tcp_listener_stats: counters since open. */
es_tcp_listener_stats_t es_tcp_listener_stats(const es_tcp_listener_t *l);

/* es_tcp_listener_close: stops accepting, closes every connection (on_closed) and frees the
 * listener once libuv has closed its handles. NULL-safe. */
void es_tcp_listener_close(es_tcp_listener_t *l);

/* es_tcp_conn_set_callbacks: where c's frames and its end go. */
void es_tcp_conn_set_callbacks(es_tcp_conn_t *c, const es_tcp_conn_callbacks_t *cb, void *user);

/* es_tcp_conn_authenticated: the owner verified the peer (an authenticated STUN request): the
 * deadline is cancelled and the connection no longer counts as unauthenticated. */
void es_tcp_conn_authenticated(es_tcp_conn_t *c);

/* es_tcp_conn_send: queues one packet (len bytes, 1..65535) with its RFC 4571 header and writes
 * what the socket takes now. media: a packet that may be dropped (RTP/RTCP). Returns 0,
 * ES_EAGAIN when a media packet was dropped (queue past ES_TCP_QUEUE_MEDIA), ES_E2BIG for a bad
 * length, ES_EIO when the connection is closing (or was closed now: its queue passed
 * ES_TCP_QUEUE_MAX; on_closed runs later, on the loop). */
int es_tcp_conn_send(es_tcp_conn_t *c, const uint8_t *buf, size_t len, bool media);

/* es_tcp_conn_congested: whether media would be dropped now (the queue is past its mark). */
bool es_tcp_conn_congested(const es_tcp_conn_t *c);

/* es_tcp_conn_queued: bytes queued and not yet taken by the socket. */
size_t es_tcp_conn_queued(const es_tcp_conn_t *c);

/* es_tcp_conn_addr: the connection as a pair (transport ES_ADDR_TCP). Borrowed. */
const es_addr_pair_t *es_tcp_conn_addr(const es_tcp_conn_t *c);

/* es_tcp_conn_close: closes c (on_closed with reason, on the loop, not from inside this call).
 * Safe to call more than once. */
void es_tcp_conn_close(es_tcp_conn_t *c, const char *reason);

#endif
