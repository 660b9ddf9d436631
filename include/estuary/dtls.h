/* DTLS 1.2 for DTLS-SRTP (RFC 5763, RFC 5764, RFC 6347) on OpenSSL, sans-IO: datagrams in,
 * datagrams out through a small datagram BIO (OpenSSL 3.0 has no BIO_s_dgram_mem), one
 * outgoing record flight per datagram, never more than the MTU.
 *
 * The peer's certificate is self-signed (WebRTC) and is accepted only when its digest equals
 * the a=fingerprint of the SDP (RFC 8122 §5). Retransmission timers are OpenSSL's, which read the
 * real clock internally; es_dtls_next_timeout_us and es_dtls_handle_timeout are the one place
 * that wraps them. */
#ifndef ESTUARY_DTLS_H
#define ESTUARY_DTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_DTLS_MTU 1200          /* bytes: largest datagram produced */
#define ES_DTLS_FINGERPRINT_MAX 200 /* "AB:CD:..." of SHA-512 plus NUL fits */

typedef struct es_dtls_cert es_dtls_cert_t;

/* es_dtls_cert_generate: a new ECDSA P-256 key and a self-signed X.509 certificate for it
 * (random serial, CN "estuary", valid from a day ago for 30 days). Returns NULL with the reason
 * in err. */
es_dtls_cert_t *es_dtls_cert_generate(char *err, size_t err_len);

/* es_dtls_cert_load: certificate and private key from PEM files. Returns NULL with the reason
 * (file and OpenSSL's error) in err. */
es_dtls_cert_t *es_dtls_cert_load(const char *cert_path, const char *key_path, char *err,
                                  size_t err_len);

/* es_dtls_cert_free: NULL-safe. Endpoints created from the certificate keep their own
 * references, so it may be freed before them. */
void es_dtls_cert_free(es_dtls_cert_t *cert);

/* es_dtls_cert_fingerprint: "AB:CD:..." upper-case hex SHA-256 of the DER certificate, for
 * a=fingerprint:sha-256 (RFC 8122 §5). Borrowed from cert. */
const char *es_dtls_cert_fingerprint(const es_dtls_cert_t *cert);

typedef enum {
    ES_DTLS_ROLE_SERVER = 0,  /* a=setup:passive: waits for the ClientHello */
    ES_DTLS_ROLE_CLIENT,      /* a=setup:active: sends the ClientHello (relays) */
} es_dtls_role_t;

typedef enum {
    ES_DTLS_NEW = 0,
    ES_DTLS_HANDSHAKING,
    ES_DTLS_CONNECTED,        /* handshake done, fingerprint verified, SRTP keys available */
    ES_DTLS_CLOSED,           /* close_notify received or sent */
    ES_DTLS_FAILED,           /* handshake failure, bad fingerprint, timeout: see es_dtls_error */
} es_dtls_state_t;

/* DTLS-SRTP protection profiles (RFC 5764 §4.1.2, RFC 7714 §14.2). */
typedef enum {
    ES_SRTP_AES128_CM_SHA1_80 = 0x0001,
    ES_SRTP_AEAD_AES_128_GCM = 0x0007,
} es_srtp_profile_t;

#define ES_SRTP_MASTER_MAX 30 /* bytes: 16-byte key + 14-byte salt (CM); GCM is 16 + 12 */

/* Keying material exported after the handshake (RFC 5764 §4.2). "local" protects what this
 * endpoint sends, "remote" unprotects what it receives; each is master key || master salt. */
typedef struct es_dtls_srtp_keys {
    es_srtp_profile_t profile;
    uint8_t local[ES_SRTP_MASTER_MAX];
    uint8_t remote[ES_SRTP_MASTER_MAX];
    size_t master_len;        /* bytes in each of local and remote: 30 (CM) or 28 (GCM) */
} es_dtls_srtp_keys_t;

typedef struct es_dtls es_dtls_t;

/* es_dtls_new: an endpoint using `cert` (takes its own reference) in `role`, accepting only a
 * peer certificate whose `fp_alg` digest ("sha-256", "sha-384", "sha-512", "sha-1";
 * case-insensitive) equals fp (fp_len bytes). Offers the SRTP profiles AEAD_AES_128_GCM
 * (preferred: about half the cost) then AES_CM_128_HMAC_SHA1_80. Returns NULL when out of
 * memory or the algorithm is unknown. */
es_dtls_t *es_dtls_new(const es_dtls_cert_t *cert, es_dtls_role_t role, const char *fp_alg,
                       const uint8_t *fp, size_t fp_len);

/* es_dtls_free: NULL-safe; sends nothing (call es_dtls_close first for a close_notify). */
void es_dtls_free(es_dtls_t *d);

/* es_dtls_set_timer: retransmission policy, before es_dtls_start. The first timeout of each
 * flight is initial_us (default 100000 µs; at least 20000: OpenSSL treats under 15 ms as
 * expired), doubling on each expiry up to 1 s (RFC 6347 §4.2.4.1 allows 60 s; a WebRTC
 * connect has a 10 s budget); the expiry after max_retransmits retransmissions of one flight
 * fails the endpoint with ES_ETIMEDOUT (default 6: about 4.5 s with the default start). The timer runs on the real clock inside OpenSSL, and OpenSSL also
 * retransmits by itself when a datagram arrives after the timer expired. Tests use this to
 * keep their real sleeps short. */
void es_dtls_set_timer(es_dtls_t *d, uint32_t initial_us, unsigned max_retransmits);

/* es_dtls_start: begins the handshake at now_us (monotonic µs); a client queues its
 * ClientHello. A server does nothing until the first datagram. Returns 0 or ES_EPROTO. */
int es_dtls_start(es_dtls_t *d, uint64_t now_us);

/* es_dtls_handle_datagram: one received DTLS datagram (first byte 20..63, RFC 7983). Drives the
 * handshake and queues replies. Application data after the handshake is not used by Estuary
 * yet (data channels) and is dropped. A NEW endpoint starts itself (es_dtls_start) first.
 * Protected records too short to hold an AEAD tag are removed before OpenSSL sees them (OpenSSL
 * 3.0 would end the session with an internal_error alert). Returns 0; ES_EPROTO once the endpoint failed (the
 * state is ES_DTLS_FAILED; es_dtls_error says why); a malformed datagram that OpenSSL merely
 * discards is not a failure. */
int es_dtls_handle_datagram(es_dtls_t *d, uint64_t now_us, const uint8_t *buf, size_t len);

/* es_dtls_next_timeout_us: monotonic µs at which es_dtls_handle_timeout must be called
 * (retransmission), computed from now_us; 0 when no timer runs. */
uint64_t es_dtls_next_timeout_us(es_dtls_t *d, uint64_t now_us);

/* es_dtls_handle_timeout: retransmits the last flight when its timer expired (RFC 6347
 * §4.2.4). Returns 0, or ES_ETIMEDOUT after too many retransmissions (state FAILED). */
int es_dtls_handle_timeout(es_dtls_t *d, uint64_t now_us);

/* es_dtls_poll_datagram: copies the next queued datagram to send into out (cap bytes; a
 * datagram is at most ES_DTLS_MTU + 100 bytes) and returns its length; 0 when none is queued;
 * ES_E2BIG when cap is too small (the datagram stays queued). */
int es_dtls_poll_datagram(es_dtls_t *d, uint8_t *out, size_t cap);

/* es_dtls_close: queues a close_notify alert (RFC 5246 §7.2.1) when connected; state becomes
 * CLOSED (during the handshake nothing is sent; a FAILED endpoint stays FAILED). */
void es_dtls_close(es_dtls_t *d);

/* es_dtls_state: the current state. */
es_dtls_state_t es_dtls_state(const es_dtls_t *d);

/* es_dtls_error: why the endpoint failed ("fingerprint mismatch", OpenSSL's reason, ...), or
 * "" when it has not. Borrowed. */
const char *es_dtls_error(const es_dtls_t *d);

/* es_dtls_srtp_keys: the negotiated profile and keys once CONNECTED. Returns 0, or ES_EAGAIN
 * before the handshake completed. */
int es_dtls_srtp_keys(const es_dtls_t *d, es_dtls_srtp_keys_t *out);

#endif
