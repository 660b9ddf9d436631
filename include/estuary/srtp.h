/* SRTP and SRTCP for one DTLS-SRTP session on OpenSSL's EVP: AES_CM_128_HMAC_SHA1_80
 * (RFC 3711) and AEAD_AES_128_GCM (RFC 7714), keys from RFC 5764 §4.2. One direction protects
 * what we send (any SSRC), the other unprotects what we receive (any SSRC, at most 32 tracked at
 * once, the least recently used forgotten). In place, on buffers the caller owns; session keys
 * are derived once per context, so a packet costs its IV set-up, the cipher and the tag. */
#ifndef ESTUARY_SRTP_H
#define ESTUARY_SRTP_H

#include "estuary/dtls.h"

#include <stddef.h>
#include <stdint.h>

#define ES_SRTP_MAX_TRAILER 20 /* bytes protect may append: GCM tag 16 + SRTCP index 4 */

typedef struct es_srtp es_srtp_t;

/* es_srtp_global_init: fetches OpenSSL's AES-128-CTR, AES-128-GCM and HMAC once per process
 * (later calls do nothing; es_srtp_new calls it). Returns 0 or ES_EIO. Not thread-safe. */
int es_srtp_global_init(void);

/* es_srtp_kdf: the RFC 3711 §4.3.1 key derivation with key_derivation_rate 0 (index 0): len
 * bytes of AES-CM(master_key, ((label << 48) XOR master_salt) << 16) into out. salt_len is 14
 * (AES-CM) or 12 (AES-GCM, left-aligned as RFC 7714 §12 and libsrtp2 do). Labels (§4.3.2): 0
 * SRTP key, 1 SRTP auth key, 2 SRTP salt, 3-5 the same for SRTCP. Returns 0, ES_EINVAL for a
 * salt over 14 bytes, ES_EIO when OpenSSL fails. */
int es_srtp_kdf(const uint8_t master_key[16], const uint8_t *master_salt, size_t salt_len,
                uint8_t label, uint8_t *out, size_t len);

/* es_srtp_new: contexts for keys->profile with keys->local (send) and keys->remote (receive),
 * each master key (16 bytes) || master salt (14 bytes CM, 12 GCM). The receive replay window is
 * 1024 SRTP and 128 SRTCP packets per SSRC; sending the same packet twice is allowed (NACK
 * retransmission: its index, ROC included, is estimated as a receiver would, RFC 3711 §3.3.1).
 * Returns NULL for another profile or master length, or when OpenSSL or memory fails. */
es_srtp_t *es_srtp_new(const es_dtls_srtp_keys_t *keys);

/* es_srtp_free: NULL-safe. */
void es_srtp_free(es_srtp_t *s);

/* es_srtp_protect_rtp / es_srtp_protect_rtcp: encrypt and authenticate the len-byte packet in
 * buf, whose capacity is cap bytes (at least len + ES_SRTP_MAX_TRAILER): RTP appends the tag
 * (10 or 16 bytes), RTCP the E flag and a per-SSRC 31-bit SRTCP index and the tag (RFC 3711
 * §3.4; RFC 7714 §9: tag before index). Returns the new length, ES_E2BIG when cap is too small,
 * ES_EPROTO for a malformed header (not version 2, shorter than its CSRCs and extension),
 * ES_EEXIST for an RTP packet 1024 or more behind the newest sent with its SSRC (no index is
 * used twice long after; a NACK retransmission within that is allowed), or ES_EIO when OpenSSL
 * fails. The caller must never protect different bytes under one (SSRC, sequence number) in
 * that window: the cipher's nonce would repeat. */
int es_srtp_protect_rtp(es_srtp_t *s, uint8_t *buf, size_t len, size_t cap);
int es_srtp_protect_rtcp(es_srtp_t *s, uint8_t *buf, size_t len, size_t cap);

/* es_srtp_unprotect_rtp / es_srtp_unprotect_rtcp: authenticate and decrypt in place. Returns
 * the plain length; ES_EPROTO for a bad tag or malformed packet; ES_EEXIST for a replayed or
 * too-old packet (drop it quietly). Only an authenticated packet creates SSRC state or moves
 * the replay window. */
int es_srtp_unprotect_rtp(es_srtp_t *s, uint8_t *buf, size_t len);
int es_srtp_unprotect_rtcp(es_srtp_t *s, uint8_t *buf, size_t len);

#endif
