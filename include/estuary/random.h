/* Unpredictable numbers for protocol identifiers (SSRCs, ICE credentials, session ids, initial
 * sequence numbers and timestamps, RFC 3550 §5.1 and RFC 8445 §5.3), from OpenSSL's CSPRNG. */
#ifndef ESTUARY_RANDOM_H
#define ESTUARY_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* es_random_bytes: fills buf with len random bytes. OpenSSL's generator does not fail once
 * seeded; if it ever does, the process aborts rather than hand out predictable identifiers. */
void es_random_bytes(void *buf, size_t len);

/* es_random32: a random 32-bit value, never 0 (0 means "none" for an SSRC in Estuary). */
uint32_t es_random32(void);

/* es_random_text: n characters (n <= 64) drawn from `alphabet`, NUL-terminated into out (which
 * holds n + 1 bytes). For ICE ufrag/pwd (RFC 8839 §5.4 ice-char) and session ids. */
void es_random_text(char *out, size_t n, const char *alphabet);

#endif
