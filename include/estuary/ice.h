/* ICE-lite responder (RFC 8445 §2.5, §7.3) on libnice's STUN codec: validates Binding requests
 * (MESSAGE-INTEGRITY with the local password, FINGERPRINT, USERNAME "local:remote", RFC 5389
 * §10.1.2 and §15.3), answers them with XOR-MAPPED-ADDRESS, and records the pair the client
 * nominated with USE-CANDIDATE. Sans-IO: bytes and `now` in, bytes and state out. */
#ifndef ESTUARY_ICE_H
#define ESTUARY_ICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ES_ICE_UFRAG_MAX 256 /* RFC 8839 §5.4: ice-ufrag is 4..256 characters */
#define ES_ICE_PWD_MAX 256   /* ice-pwd is 22..256 characters */

/* es_stun_peek_ufrag: without validating anything, finds the USERNAME attribute of a STUN
 * Binding request and copies the part before ':' (the receiver's ufrag, which routes the packet
 * to a peer before nomination) NUL-terminated into out (cap bytes). Returns its length, ES_ENOENT
 * when there is no USERNAME or no ':', ES_EPROTO when the bytes are not a STUN Binding request
 * (RFC 5389 §6: leading zero bits, magic cookie, length a multiple of 4 that fits), ES_E2BIG when
 * the ufrag does not fit in out. */
int es_stun_peek_ufrag(const uint8_t *buf, size_t len, char *out, size_t cap);

typedef struct es_ice_lite es_ice_lite_t;

/* es_ice_lite_new: a responder for one session. The strings are copied. Returns NULL when a
 * credential is empty or too long, or when out of memory. */
es_ice_lite_t *es_ice_lite_new(const char *local_ufrag, const char *local_pwd,
                               const char *remote_ufrag);

/* es_ice_lite_free: NULL-safe. */
void es_ice_lite_free(es_ice_lite_t *ice);

/* es_ice_lite_handle_stun: handles one datagram from `from` at time now_us (monotonic µs).
 * Writes the response to send back to `from` into out (cap bytes; 512 is always enough) and
 * returns its length: a Binding success response, or 420 (RFC 5389 §7.3.1) for unknown
 * comprehension-required attributes. Returns 0 when there is nothing to answer (a valid
 * indication or response), or ES_EPROTO for anything to drop: not STUN, bad MESSAGE-INTEGRITY or
 * FINGERPRINT, a USERNAME other than "local:remote". A valid request with
 * USE-CANDIDATE nominates `from` (es_ice_lite_nominated). A valid request refreshes consent
 * (es_ice_lite_last_seen_us). */
int es_ice_lite_handle_stun(es_ice_lite_t *ice, uint64_t now_us, const uint8_t *buf, size_t len,
                            const struct sockaddr *from, socklen_t from_len, uint8_t *out,
                            size_t cap);

/* es_ice_lite_nominated: true once a pair is nominated; *addr and *addr_len (either may be NULL)
 * receive the client's address of that pair. Later nominations replace it (ICE restart or a
 * client switching pairs). */
bool es_ice_lite_nominated(const es_ice_lite_t *ice, struct sockaddr_storage *addr,
                           socklen_t *addr_len);

/* es_ice_lite_last_seen_us: now_us of the last valid request (0 before the first). */
uint64_t es_ice_lite_last_seen_us(const es_ice_lite_t *ice);

#endif
