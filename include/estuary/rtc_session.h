/* One WebRTC session's transport, for either role, over any datagram transport: ICE (RFC 8445;
 * ICE-lite answerer, or full controlling agent for an offerer), DTLS-SRTP (RFC 5763, RFC 5764)
 * and SRTP over one BUNDLE transport with rtcp-mux, demultiplexed by first byte (RFC 7983 §7).
 *
 * Sans-IO, driven like every protocol core: datagrams in with es_rtc_session_handle_datagram,
 * timeouts in with es_rtc_session_handle_timeout at es_rtc_session_next_timeout_us; out come
 * datagrams (the send callback, which only queues), plain RTP and RTCP, and events (a pair became
 * valid or went away, the selected pair changed, the state changed with an ES_E* code and a
 * reason). The caller owns the clock and the sockets.
 *
 * Pairs (RFC 8445 §12.2: "an agent MUST be prepared to receive data on any valid pair"): a pair
 * is valid once it has sent this session an authenticated Binding request, or (full agent) once
 * our check on it succeeded. DTLS, SRTP and SRTCP are accepted from every valid pair, and DTLS is
 * answered on the pair it came on. Media goes to the nominated pair; before nomination, to the
 * valid pair DTLS came on (the offerer: its first succeeded pair). Once a pair is nominated, a
 * check on another pair never moves media; only a new nomination does. Consent (RFC 7675) is kept
 * per pair: a pair without authenticated traffic (a valid STUN request or response, an SRTP or
 * SRTCP packet that authenticates; not a DTLS record, which proves nothing before keys exist)
 * for consent_timeout_ms loses it, whatever other pairs receive; media stops going to a
 * nominated pair without consent, and the session closes when no pair has consent. An ICE-lite
 * answerer sends no checks of its own, so the consent of a pair is the peer's word for it (a
 * client that spoofs another address can aim its own media there: RFC 7675 consent by our own
 * checks would close that, see docs/architecture.md). */
#ifndef ESTUARY_RTC_SESSION_H
#define ESTUARY_RTC_SESSION_H

#include "estuary/addr.h"
#include "estuary/dtls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_RTC_SESSION_MAX_PAIRS 8 /* pairs kept per session; the oldest unused one makes room */

typedef enum {
    ES_RTC_SESSION_NEW = 0,     /* no valid pair yet */
    ES_RTC_SESSION_CONNECTING,  /* a pair is valid; DTLS handshake running */
    ES_RTC_SESSION_CONNECTED,   /* SRTP keys ready */
    ES_RTC_SESSION_CLOSED,      /* closed by either side, or consent lost (err says which) */
    ES_RTC_SESSION_FAILED,      /* DTLS failure, or not connected within connect_timeout_ms */
} es_rtc_session_state_t;

typedef struct es_rtc_session_callbacks {
    /* Send one datagram on pair addr (queue it; must not call back into the session). */
    void (*send)(void *user, const uint8_t *buf, size_t len, const es_addr_pair_t *addr);
    /* A plain RTP packet (SRTP removed in place): len bytes in buf, borrowed for the call; the
     * callee may modify them but not grow the packet. */
    void (*on_rtp)(void *user, uint64_t now_us, uint8_t *buf, size_t len);
    /* A plain compound RTCP packet, borrowed likewise. */
    void (*on_rtcp)(void *user, uint64_t now_us, uint8_t *buf, size_t len);
    /* A pair became valid (added true) or left the table (added false): the caller routes
     * datagrams of that 5-tuple to this session while it is valid. */
    void (*on_pair)(void *user, const es_addr_pair_t *addr, bool added);
    /* The pair media goes to changed (first selection, a nomination, consent lost: NULL). */
    void (*on_selected)(void *user, const es_addr_pair_t *addr, bool nominated);
    /* The state changed. err is 0, or ES_ETIMEDOUT (connect timeout, consent lost), ES_EPROTO
     * (DTLS failed), ES_EACCES (fingerprint mismatch); reason says what happened ("" when
     * nothing to say). */
    void (*on_state)(void *user, es_rtc_session_state_t state, int err, const char *reason);
} es_rtc_session_callbacks_t;

typedef struct es_rtc_session_params {
    const char *local_ufrag, *local_pwd;   /* ours */
    const char *remote_ufrag, *remote_pwd; /* the peer's; remote_pwd only needed when
                                              ice_controlling (we send checks) */
    bool ice_controlling;                  /* true: a full controlling agent that checks the
                                              remote candidates and nominates (the offerer, RFC
                                              8445 §6.1.1); false: ICE-lite (the answerer) */
    const es_dtls_cert_t *cert;
    const char *fingerprint_alg;           /* the peer's a=fingerprint */
    const uint8_t *fingerprint;
    size_t fingerprint_len;                /* bytes */
    es_dtls_role_t dtls_role;              /* CLIENT sends the ClientHello once a pair is selected */
    uint32_t connect_timeout_ms;           /* ICE + DTLS must be done within this */
    uint32_t consent_timeout_ms;           /* per pair, see above (RFC 7675 §5.1 says 30 s) */
    uint32_t dtls_timer_us;                /* first DTLS retransmission timeout (µs; 0: 100 ms,
                                              es_dtls_set_timer); the connect timeout bounds the
                                              retransmissions */
    uint64_t now_us;                       /* creation time (monotonic µs) */
    es_rtc_session_callbacks_t cb;
    void *user;
} es_rtc_session_params_t;

typedef struct es_rtc_session_stats {
    uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets; /* whole datagrams */
    uint64_t stun_requests;   /* authenticated Binding requests received */
    uint64_t checks_sent;     /* our connectivity and consent checks (full agent) */
    uint64_t dropped;         /* bad STUN, unknown pairs, SRTP failures, unknown first byte */
    uint64_t srtp_errors;
} es_rtc_session_stats_t;

typedef struct es_rtc_session es_rtc_session_t;

/* es_rtc_session_new: a session with the given credentials and fingerprint (copied). NULL when
 * out of memory or a credential is invalid (see es_ice_new, es_dtls_new). */
es_rtc_session_t *es_rtc_session_new(const es_rtc_session_params_t *params);

/* es_rtc_session_free: NULL-safe; sends nothing and reports no event. */
void es_rtc_session_free(es_rtc_session_t *s);

/* es_rtc_session_add_remote_candidate: (full agent) a remote candidate to check, from the SDP
 * or a trickled a=candidate: addr->remote is the candidate, addr->local the local address to send
 * from (AF_UNSPEC: the transport chooses; the first response or check on it tells). Candidates
 * are checked in the order given (priority, its RFC 8445 §5.1.2 priority, is not used yet: SDP
 * lists the best first). Checks start at the next timeout. Returns 0, ES_EEXIST when a pair with
 * that remote address is known, ES_EBUSY when every slot holds a pair media or DTLS uses (the
 * least recently heard other pair makes room), ES_EINVAL for an ICE-lite session. */
int es_rtc_session_add_remote_candidate(es_rtc_session_t *s, const es_addr_pair_t *addr,
                                        uint32_t priority, uint64_t now_us);

/* es_rtc_session_handle_datagram: one datagram (len bytes) received at now_us on addr. buf is
 * modified (SRTP is removed in place) and borrowed for the call. A bad datagram is dropped and
 * counted; it never fails the session. */
void es_rtc_session_handle_datagram(es_rtc_session_t *s, uint64_t now_us, uint8_t *buf,
                                    size_t len, const es_addr_pair_t *addr);

/* es_rtc_session_handle_timeout: checks and their retransmissions (full agent), DTLS
 * retransmissions, consent and the connect timeout. Call at es_rtc_session_next_timeout_us (an
 * early call does nothing). */
void es_rtc_session_handle_timeout(es_rtc_session_t *s, uint64_t now_us);

/* es_rtc_session_next_timeout_us: the next deadline (monotonic µs), 0 when none (closed). */
uint64_t es_rtc_session_next_timeout_us(es_rtc_session_t *s, uint64_t now_us);

/* es_rtc_session_send_rtp / es_rtc_session_send_rtcp: protect the plain packet in buf (len
 * bytes, capacity cap >= len + ES_SRTP_MAX_TRAILER) in place and send it on the selected pair.
 * Returns 0, ES_EAGAIN before CONNECTED or while no pair has consent, or the SRTP error. */
int es_rtc_session_send_rtp(es_rtc_session_t *s, uint8_t *buf, size_t len, size_t cap);
int es_rtc_session_send_rtcp(es_rtc_session_t *s, uint8_t *buf, size_t len, size_t cap);

/* es_rtc_session_close: a DTLS close_notify when connected; state becomes CLOSED (err 0). */
void es_rtc_session_close(es_rtc_session_t *s, const char *reason);

/* es_rtc_session_restart_ice: new credentials after an ICE restart (RFC 8445 §9): checks with
 * the old ufrag stop being answered. An ICE-lite session keeps media on its nominated pair
 * until the peer nominates one with the new credentials; a full agent checks its known
 * candidates again and, until it nominates anew, sends media to the pair DTLS came on or its
 * first succeeded pair. Returns 0 or ES_EINVAL. */
int es_rtc_session_restart_ice(es_rtc_session_t *s, const char *local_ufrag,
                               const char *local_pwd, const char *remote_ufrag,
                               const char *remote_pwd, uint64_t now_us);

/* es_rtc_session_state: the current state. es_rtc_session_state_name: "new", "connecting",
 * "connected", "closed", "failed" (static storage). */
es_rtc_session_state_t es_rtc_session_state(const es_rtc_session_t *s);
const char *es_rtc_session_state_name(es_rtc_session_state_t st);

/* es_rtc_session_selected: the pair media goes to, or NULL; *nominated (may be NULL) says whether
 * it was nominated. Borrowed until the next call into the session. */
const es_addr_pair_t *es_rtc_session_selected(const es_rtc_session_t *s, bool *nominated);

/* es_rtc_session_pair_has_consent: whether addr is a valid pair of the session that has had
 * authenticated traffic within the consent timeout at now_us. For a transport deciding which
 * session owns a 5-tuple that two sessions claim. */
bool es_rtc_session_pair_has_consent(const es_rtc_session_t *s, const es_addr_pair_t *addr,
                                     uint64_t now_us);

/* es_rtc_session_stats: counters since creation. */
es_rtc_session_stats_t es_rtc_session_stats(const es_rtc_session_t *s);

/* es_rtc_session_srtp_profile: the negotiated es_srtp_profile_t once connected, else 0. */
int es_rtc_session_srtp_profile(const es_rtc_session_t *s);

#endif
