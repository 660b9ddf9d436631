/* RTMP handshake, server side, sans-IO (Adobe RTMP specification 1.0, section 5.2): C0 C1 in,
 * S0 S1 S2 out, C2 in. Both the plain handshake of the specification and the "complex" FP9
 * digest handshake that Flash Player, librtmp (OBS) and FFmpeg's rtmpproto.c send: when the
 * client's C1 carries a valid HMAC-SHA256 digest (schema 0 or 1), S1 carries our digest and S2
 * is signed with a key derived from the client's digest, as those clients verify when playing.
 * When the digest does not validate, the plain handshake answers (S2 echoes C1). */
#ifndef ESTUARY_RTMP_HANDSHAKE_H
#define ESTUARY_RTMP_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_RTMP_HANDSHAKE_SIZE 1536 /* bytes of C1, C2, S1 and S2 */
#define ES_RTMP_VERSION 3           /* the only C0/S0 version: 6 and 8 are RTMPE, refused */

typedef enum {
    ES_RTMP_HS_C0C1 = 0, /* waiting for C0 and C1 */
    ES_RTMP_HS_C2,       /* S0 S1 S2 produced, waiting for C2 */
    ES_RTMP_HS_DONE,     /* C2 received: the chunk stream follows */
} es_rtmp_hs_state_t;

/* Caller-allocated state (about 4.6 KB); no heap, nothing to free. */
typedef struct es_rtmp_handshake {
    es_rtmp_hs_state_t state;
    size_t have;                         /* bytes of the current packet received so far */
    uint8_t in[1 + ES_RTMP_HANDSHAKE_SIZE];      /* C0 C1, then C2 (without C0) */
    uint8_t out[1 + 2 * ES_RTMP_HANDSHAKE_SIZE]; /* S0 S1 S2 */
    size_t out_len;                      /* bytes of `out` not yet taken */
    bool digest;                         /* the client's C1 digest validated (FP9 handshake) */
    int schema;                          /* 0 or 1 when `digest`, else -1 */
} es_rtmp_handshake_t;

/* es_rtmp_handshake_init: a handshake waiting for C0+C1. */
void es_rtmp_handshake_init(es_rtmp_handshake_t *hs);

/* es_rtmp_handshake_feed: bytes from the client, any split. Consumes only what belongs to the
 * handshake and stops after the last byte of C2, so whatever follows is chunk stream data.
 * Returns the number of bytes consumed (0..len), or ES_EPROTO when C0 is not version 3 (the
 * handshake is then dead). Once C0+C1 are complete, S0+S1+S2 wait in es_rtmp_handshake_output.
 * C2 is not checked: clients echo S1 loosely and nothing depends on it. */
int es_rtmp_handshake_feed(es_rtmp_handshake_t *hs, const uint8_t *buf, size_t len);

/* es_rtmp_handshake_output: the bytes to send (S0 S1 S2, 3073 bytes, once), borrowed from *hs
 * until the next call; marks them taken. Returns 0 and sets *out to NULL when nothing waits. */
size_t es_rtmp_handshake_output(es_rtmp_handshake_t *hs, const uint8_t **out);

/* es_rtmp_handshake_done: true once C2 was received. */
bool es_rtmp_handshake_done(const es_rtmp_handshake_t *hs);

/* es_rtmp_handshake_digest_offset: where the 32-byte digest of a 1536-byte C1/S1 sits for
 * schema 0 (the four offset bytes at 8: digest at sum % 728 + 12) or schema 1 (offset bytes at
 * 772: digest at sum % 728 + 776). Always within 12..1503. */
size_t es_rtmp_handshake_digest_offset(const uint8_t *pkt, int schema);

#endif
