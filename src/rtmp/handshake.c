/* RTMP handshake, server side (Adobe RTMP specification 1.0, section 5.2), with the FP9 digest
 * variant ("complex handshake") that Flash Player, librtmp and FFmpeg send. The digest scheme
 * is not in the specification; its facts (key strings, offsets, what is signed) are the ones
 * FFmpeg's libavformat/rtmpproto.c, librtmp's handshake.h and nginx-rtmp agree on:
 *   - C1/S1: time(4) version(4) then two 764-byte blocks. In schema 0 the digest block comes
 *     first (offset bytes at 8..11), in schema 1 second (offset bytes at 772..775); the digest
 *     sits at (sum of the four offset bytes) % 728 + offset position + 4.
 *   - digest = HMAC-SHA256 over the 1504 bytes around it, keyed with the first 30 bytes of the
 *     player key for C1 and the first 36 bytes of the server key for S1.
 *   - S2's last 32 bytes = HMAC-SHA256(S2[0..1504), HMAC-SHA256(C1 digest, full 68-byte server
 *     key)). FFmpeg checks this when it plays and S1's version byte is >= 3. */
#include "estuary/rtmp_handshake.h"

#include "estuary/bytes.h"
#include "estuary/error.h"
#include "estuary/random.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define HS ES_RTMP_HANDSHAKE_SIZE
#define DIGEST_LEN 32

/* "Genuine Adobe Flash Media Server 001" followed by 32 constant bytes. */
static const uint8_t fms_key[68] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ', 'F', 'l', 'a', 's',
    'h', ' ', 'M', 'e', 'd', 'i', 'a', ' ', 'S', 'e', 'r', 'v', 'e', 'r', ' ', '0', '0', '1',
    0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57,
    0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
};
#define FMS_KEY_PUBLIC 36
/* The player key's public part: "Genuine Adobe Flash Player 001". */
static const uint8_t fp_key_public[30] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ', 'F',
    'l', 'a', 's', 'h', ' ', 'P', 'l', 'a', 'y', 'e', 'r', ' ', '0', '0', '1',
};
/* Our S1 version field when answering a digest handshake: FMS 4.5.0.1. Its first byte must be
 * >= 3, or FFmpeg skips verifying (harmless) and librtmp treats the server as pre-FP9. */
static const uint8_t server_version[4] = {4, 5, 0, 1};

static void hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
                        uint8_t out[DIGEST_LEN])
{
    unsigned int n = DIGEST_LEN;
    HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n);
}

/* The HMAC of a 1536-byte packet with the 32 bytes at `gap` left out. */
static void packet_digest(const uint8_t *pkt, size_t gap, const uint8_t *key, size_t key_len,
                          uint8_t out[DIGEST_LEN])
{
    uint8_t joined[HS - DIGEST_LEN];
    memcpy(joined, pkt, gap);
    memcpy(joined + gap, pkt + gap + DIGEST_LEN, HS - gap - DIGEST_LEN);
    hmac_sha256(key, key_len, joined, sizeof joined, out);
}

size_t es_rtmp_handshake_digest_offset(const uint8_t *pkt, int schema)
{
    size_t base = schema == 0 ? 8 : 772;
    size_t sum = (size_t)pkt[base] + pkt[base + 1] + pkt[base + 2] + pkt[base + 3];
    return sum % 728 + base + 4;
}

/* The schema whose digest validates in C1 (0 or 1), or -1. Schema 0 first: FFmpeg and librtmp
 * use it for plain RTMP; schema 1 is what RTMPE clients and some Flash Players send. */
static int client_schema(const uint8_t *c1)
{
    for (int schema = 0; schema < 2; schema++) {
        size_t off = es_rtmp_handshake_digest_offset(c1, schema);
        uint8_t d[DIGEST_LEN];
        packet_digest(c1, off, fp_key_public, sizeof fp_key_public, d);
        if (CRYPTO_memcmp(d, c1 + off, DIGEST_LEN) == 0) return schema;
    }
    return -1;
}

void es_rtmp_handshake_init(es_rtmp_handshake_t *hs)
{
    memset(hs, 0, sizeof *hs);
    hs->state = ES_RTMP_HS_C0C1;
    hs->schema = -1;
}

/* S0 S1 S2 for the C0 C1 in hs->in. */
static void answer(es_rtmp_handshake_t *hs)
{
    const uint8_t *c1 = hs->in + 1;
    uint8_t *s0 = hs->out, *s1 = hs->out + 1, *s2 = hs->out + 1 + HS;
    *s0 = ES_RTMP_VERSION;
    es_random_bytes(s1, HS);
    es_wr32(s1, 0); /* our epoch starts now */
    hs->schema = es_rd32(c1 + 4) != 0 ? client_schema(c1) : -1;
    hs->digest = hs->schema >= 0;
    if (!hs->digest) {
        /* Plain handshake: S1 version zero, S2 echoes C1 (time and random). */
        memset(s1 + 4, 0, 4);
        memcpy(s2, c1, HS);
    } else {
        /* S1 in the client's schema, signed with the server key's public part. */
        memcpy(s1 + 4, server_version, 4);
        size_t s1_off = es_rtmp_handshake_digest_offset(s1, hs->schema);
        packet_digest(s1, s1_off, fms_key, FMS_KEY_PUBLIC, s1 + s1_off);
        /* S2: random, signed with a key derived from the client's digest. */
        size_t c1_off = es_rtmp_handshake_digest_offset(c1, hs->schema);
        uint8_t key[DIGEST_LEN];
        hmac_sha256(fms_key, sizeof fms_key, c1 + c1_off, DIGEST_LEN, key);
        es_random_bytes(s2, HS);
        hmac_sha256(key, sizeof key, s2, HS - DIGEST_LEN, s2 + HS - DIGEST_LEN);
    }
    hs->out_len = 1 + 2 * HS;
}

int es_rtmp_handshake_feed(es_rtmp_handshake_t *hs, const uint8_t *buf, size_t len)
{
    size_t used = 0;
    while (used < len && hs->state != ES_RTMP_HS_DONE) {
        size_t want = hs->state == ES_RTMP_HS_C0C1 ? 1 + HS : HS;
        if (hs->state == ES_RTMP_HS_C0C1 && hs->have == 0 && buf[used] != ES_RTMP_VERSION)
            return ES_EPROTO; /* 6/8 would be RTMPE; anything else is not RTMP at all */
        size_t n = want - hs->have;
        if (n > len - used) n = len - used;
        memcpy(hs->in + hs->have, buf + used, n);
        hs->have += n;
        used += n;
        if (hs->have < want) break;
        hs->have = 0;
        if (hs->state == ES_RTMP_HS_C0C1) {
            answer(hs);
            hs->state = ES_RTMP_HS_C2;
        } else {
            hs->state = ES_RTMP_HS_DONE;
        }
    }
    return (int)used;
}

size_t es_rtmp_handshake_output(es_rtmp_handshake_t *hs, const uint8_t **out)
{
    size_t n = hs->out_len;
    *out = n ? hs->out : NULL;
    hs->out_len = 0;
    return n;
}

bool es_rtmp_handshake_done(const es_rtmp_handshake_t *hs)
{
    return hs->state == ES_RTMP_HS_DONE;
}
