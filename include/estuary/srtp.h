/* SRTP and SRTCP (RFC 3711; AES-GCM per RFC 7714) with libsrtp2, for one DTLS-SRTP session:
 * one context protects what we send (any SSRC) and one unprotects what we receive (any SSRC).
 * In place, on buffers the caller owns. */
#ifndef ESTUARY_SRTP_H
#define ESTUARY_SRTP_H

#include "estuary/dtls.h"

#include <stddef.h>
#include <stdint.h>

#define ES_SRTP_MAX_TRAILER 148 /* bytes protect may append (libsrtp2's SRTP_MAX_TRAILER_LEN) */

typedef struct es_srtp es_srtp_t;

/* es_srtp_global_init: initialises libsrtp2 once per process (later calls do nothing).
 * Returns 0 or ES_EIO. */
int es_srtp_global_init(void);

/* es_srtp_new: contexts for keys->profile with keys->local (send) and keys->remote (receive).
 * The replay window is 1024 packets; sending the same packet twice is allowed (NACK
 * retransmission). Returns NULL when libsrtp2 refuses the keys or out of memory. */
es_srtp_t *es_srtp_new(const es_dtls_srtp_keys_t *keys);

/* es_srtp_free: NULL-safe. */
void es_srtp_free(es_srtp_t *s);

/* es_srtp_protect_rtp / es_srtp_protect_rtcp: encrypt and authenticate the len-byte packet in
 * buf, whose capacity is cap bytes (at least len + ES_SRTP_MAX_TRAILER). Returns the new
 * length, ES_E2BIG when cap is too small, or ES_EPROTO when libsrtp2 refuses (malformed). */
int es_srtp_protect_rtp(es_srtp_t *s, uint8_t *buf, size_t len, size_t cap);
int es_srtp_protect_rtcp(es_srtp_t *s, uint8_t *buf, size_t len, size_t cap);

/* es_srtp_unprotect_rtp / es_srtp_unprotect_rtcp: authenticate and decrypt in place. Returns
 * the plain length; ES_EPROTO for a bad tag or malformed packet; ES_EEXIST for a replayed or
 * too-old packet (drop it quietly). */
int es_srtp_unprotect_rtp(es_srtp_t *s, uint8_t *buf, size_t len);
int es_srtp_unprotect_rtcp(es_srtp_t *s, uint8_t *buf, size_t len);

#endif
