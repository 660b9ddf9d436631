/* A WebRTC transport for one session: ICE-lite (RFC 8445 §2.5), DTLS-SRTP (RFC 5764) and SRTP
 * over one BUNDLE 5-tuple with rtcp-mux, demultiplexed by first byte (RFC 7983). Sans-IO: the
 * I/O layer feeds datagrams with es_peer_handle_datagram and the peer calls back to send
 * datagrams (only queued by the caller), to deliver plain RTP/RTCP, and to report state.
 *
 * Media leaves only to the pair the client nominated with USE-CANDIDATE, from the local address
 * the client sent to; checks on other pairs are answered but change nothing. */
#ifndef ESTUARY_PEER_H
#define ESTUARY_PEER_H

#include "estuary/addr.h"
#include "estuary/dtls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ES_PEER_NEW = 0,          /* waiting for ICE checks */
    ES_PEER_CONNECTING,       /* a pair is nominated; DTLS handshake running */
    ES_PEER_CONNECTED,        /* SRTP ready */
    ES_PEER_CLOSED,           /* closed by either side (DTLS close_notify or es_peer_close) */
    ES_PEER_FAILED,           /* DTLS failure or timeout */
} es_peer_state_t;

typedef struct es_peer_callbacks {
    /* Send one datagram to addr (the caller queues it; must not call back into the peer). */
    void (*send)(void *user, const uint8_t *buf, size_t len, const es_addr_pair_t *addr);
    /* A plain RTP packet (SRTP removed in place): len bytes in buf, borrowed for the call; the
     * callee may modify them but not grow the packet. */
    void (*on_rtp)(void *user, uint64_t now_us, uint8_t *buf, size_t len);
    /* A plain compound RTCP packet. */
    void (*on_rtcp)(void *user, uint64_t now_us, uint8_t *buf, size_t len);
    /* The nominated pair changed (first nomination, or the client moved to another pair). */
    void (*on_nominated)(void *user, const es_addr_pair_t *addr);
    /* The state changed; reason is "" or why (for FAILED and CLOSED). */
    void (*on_state)(void *user, es_peer_state_t state, const char *reason);
} es_peer_callbacks_t;

typedef struct es_peer_params {
    const char *local_ufrag, *local_pwd;   /* ours, from the answer */
    const char *remote_ufrag;              /* the offer's */
    const es_dtls_cert_t *cert;
    const char *fingerprint_alg;           /* the offer's a=fingerprint */
    const uint8_t *fingerprint;
    size_t fingerprint_len;
    es_dtls_role_t role;                   /* SERVER when we answered setup:passive */
    es_peer_callbacks_t cb;
    void *user;
} es_peer_params_t;

typedef struct es_peer_stats {
    uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
    uint64_t stun_requests;
    uint64_t dropped;          /* datagrams dropped: bad STUN, SRTP failures, unknown kind */
    uint64_t srtp_errors;
} es_peer_stats_t;

typedef struct es_peer es_peer_t;

/* es_peer_new: a transport with the given credentials (copied). NULL when out of memory or a
 * credential is invalid. */
es_peer_t *es_peer_new(const es_peer_params_t *params);

/* es_peer_free: NULL-safe; sends nothing. */
void es_peer_free(es_peer_t *p);

/* es_peer_handle_datagram: one datagram (len bytes) received at now_us (monotonic µs) on addr.
 * STUN is answered (from addr->local); DTLS and SRTP are accepted only from the nominated pair.
 * SRTP is removed in place, so buf is modified; it is borrowed for the call. Never fails the
 * session for a bad datagram: it is dropped and counted. */
void es_peer_handle_datagram(es_peer_t *p, uint64_t now_us, uint8_t *buf, size_t len,
                             const es_addr_pair_t *addr);

/* es_peer_handle_timeout: DTLS retransmissions; call at es_peer_next_timeout_us. */
void es_peer_handle_timeout(es_peer_t *p, uint64_t now_us);

/* es_peer_next_timeout_us: the next deadline (monotonic µs), 0 when none. */
uint64_t es_peer_next_timeout_us(es_peer_t *p, uint64_t now_us);

/* es_peer_send_rtp / es_peer_send_rtcp: protect the plain packet in buf (len bytes, capacity
 * cap >= len + ES_SRTP_MAX_TRAILER) in place and send it to the nominated pair. Returns 0,
 * ES_EAGAIN before CONNECTED, or the SRTP error. */
int es_peer_send_rtp(es_peer_t *p, uint8_t *buf, size_t len, size_t cap);
int es_peer_send_rtcp(es_peer_t *p, uint8_t *buf, size_t len, size_t cap);

/* es_peer_close: sends a DTLS close_notify when connected; state becomes CLOSED. */
void es_peer_close(es_peer_t *p);

/* es_peer_restart_ice: new credentials after an ICE restart (RFC 8445 §9): the old ufrag stops
 * answering; the nominated pair stays until the client nominates a new one. Returns 0 or
 * ES_EINVAL. */
int es_peer_restart_ice(es_peer_t *p, const char *local_ufrag, const char *local_pwd,
                        const char *remote_ufrag);

/* es_peer_state: the current state. es_peer_state_name: "new", "connecting", "connected",
 * "closed", "failed" (static storage). */
es_peer_state_t es_peer_state(const es_peer_t *p);
const char *es_peer_state_name(es_peer_state_t s);

/* es_peer_last_seen_us: monotonic µs when the last valid STUN request, DTLS record or SRTP
 * packet arrived (consent freshness, RFC 7675); 0 before any. */
uint64_t es_peer_last_seen_us(const es_peer_t *p);

/* es_peer_nominated: the nominated pair, or NULL before nomination. Borrowed. */
const es_addr_pair_t *es_peer_nominated(const es_peer_t *p);

/* es_peer_stats: counters since creation (bytes are whole datagrams, SRTP included). */
es_peer_stats_t es_peer_stats(const es_peer_t *p);

/* es_peer_srtp_profile: the negotiated es_srtp_profile_t once connected, else 0. */
int es_peer_srtp_profile(const es_peer_t *p);

#endif
