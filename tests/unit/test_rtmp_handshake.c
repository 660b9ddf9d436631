/* Unit tests for src/rtmp/handshake.c: the plain handshake, the FP9 digest handshake (a C1
 * built here from the documented algorithm, in both schemas, with S1 and S2 checked the way
 * FFmpeg's rtmpproto.c checks them when it plays), a bad version and byte-by-byte feeding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/rtmp_handshake.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define HS ES_RTMP_HANDSHAKE_SIZE

static const uint8_t server_key[68] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ', 'F', 'l', 'a', 's',
    'h', ' ', 'M', 'e', 'd', 'i', 'a', ' ', 'S', 'e', 'r', 'v', 'e', 'r', ' ', '0', '0', '1',
    0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57,
    0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
};
static const char player_key[] = "Genuine Adobe Flash Player 001"; /* 30 bytes */

/* HMAC-SHA256 of a 1536-byte packet without the 32 bytes at gap. */
static void digest_without(const uint8_t *pkt, size_t gap, const void *key, size_t klen,
                           uint8_t out[32])
{
    uint8_t joined[HS - 32];
    memcpy(joined, pkt, gap);
    memcpy(joined + gap, pkt + gap + 32, HS - gap - 32);
    unsigned n = 32;
    HMAC(EVP_sha256(), key, (int)klen, joined, sizeof joined, out, &n);
}

/* Digest position, computed independently of the code under test. */
static size_t pos(const uint8_t *pkt, int schema)
{
    size_t base = schema ? 772 : 8;
    return (pkt[base] + pkt[base + 1] + pkt[base + 2] + pkt[base + 3]) % 728 + base + 4;
}

/* C0 + an FP9 C1 as FFmpeg builds it: version 9.0.124.2, pseudo-random body, digest. */
static void make_fp9_c0c1(uint8_t *c0c1, int schema, uint8_t seed)
{
    uint8_t *c1 = c0c1 + 1;
    c0c1[0] = 3;
    memset(c1, 0, 4);
    c1[4] = 9, c1[5] = 0, c1[6] = 124, c1[7] = 2;
    uint32_t x = 0x12345678u + seed;
    for (size_t i = 8; i < HS; i++) {
        x = x * 1103515245u + 12345u;
        c1[i] = (uint8_t)(x >> 24);
    }
    size_t p = pos(c1, schema);
    digest_without(c1, p, player_key, 30, c1 + p);
}

static void test_digest_offset(void **state)
{
    uint8_t pkt[HS] = {0};
    assert_int_equal(es_rtmp_handshake_digest_offset(pkt, 0), 12);
    assert_int_equal(es_rtmp_handshake_digest_offset(pkt, 1), 776);
    memset(pkt + 8, 0xff, 4); /* 1020 % 728 = 292 */
    memset(pkt + 772, 0xff, 4);
    assert_int_equal(es_rtmp_handshake_digest_offset(pkt, 0), 304);
    assert_int_equal(es_rtmp_handshake_digest_offset(pkt, 1), 1068);
}

static void test_plain(void **state)
{
    es_rtmp_handshake_t hs;
    es_rtmp_handshake_init(&hs);
    uint8_t c0c1[1 + HS];
    c0c1[0] = 3;
    for (size_t i = 1; i < sizeof c0c1; i++) c0c1[i] = (uint8_t)(i * 7);
    memset(c0c1 + 5, 0, 4); /* version zero: plain handshake */
    const uint8_t *out;
    assert_int_equal(es_rtmp_handshake_output(&hs, &out), 0);
    assert_null(out);
    assert_int_equal(es_rtmp_handshake_feed(&hs, c0c1, sizeof c0c1), sizeof c0c1);
    assert_false(es_rtmp_handshake_done(&hs));
    assert_int_equal(es_rtmp_handshake_output(&hs, &out), 1 + 2 * HS);
    assert_int_equal(out[0], 3);
    assert_memory_equal(out + 1 + HS, c0c1 + 1, HS); /* S2 echoes C1 */
    assert_false(hs.digest);
    assert_int_equal(es_rtmp_handshake_output(&hs, &out), 0); /* taken once */
    /* C2 followed by chunk data: only C2 is consumed. */
    uint8_t c2[HS + 5];
    memset(c2, 0xab, sizeof c2);
    assert_int_equal(es_rtmp_handshake_feed(&hs, c2, sizeof c2), HS);
    assert_true(es_rtmp_handshake_done(&hs));
    assert_int_equal(es_rtmp_handshake_feed(&hs, c2, sizeof c2), 0);
}

static void check_fp9(int schema)
{
    es_rtmp_handshake_t hs;
    es_rtmp_handshake_init(&hs);
    uint8_t c0c1[1 + HS];
    make_fp9_c0c1(c0c1, schema, (uint8_t)schema);
    assert_int_equal(es_rtmp_handshake_feed(&hs, c0c1, sizeof c0c1), sizeof c0c1);
    const uint8_t *out;
    assert_int_equal(es_rtmp_handshake_output(&hs, &out), 1 + 2 * HS);
    assert_true(hs.digest);
    assert_int_equal(hs.schema, schema);
    const uint8_t *s1 = out + 1, *s2 = out + 1 + HS;
    /* FFmpeg: S1's version byte >= 3, then its digest validates in either schema with the
     * server key's first 36 bytes. */
    assert_true(s1[4] >= 3);
    uint8_t d[32];
    size_t sp = pos(s1, schema);
    digest_without(s1, sp, server_key, 36, d);
    assert_memory_equal(d, s1 + sp, 32);
    /* S2: signed with HMAC(client digest, full server key). */
    uint8_t key[32];
    unsigned n = 32;
    const uint8_t *cdig = c0c1 + 1 + pos(c0c1 + 1, schema);
    HMAC(EVP_sha256(), server_key, sizeof server_key, cdig, 32, key, &n);
    HMAC(EVP_sha256(), key, 32, s2, HS - 32, d, &n);
    assert_memory_equal(d, s2 + HS - 32, 32);
}

static void test_fp9_schema0(void **state) { check_fp9(0); }
static void test_fp9_schema1(void **state) { check_fp9(1); }

static void test_fp9_bad_digest_falls_back(void **state)
{
    es_rtmp_handshake_t hs;
    es_rtmp_handshake_init(&hs);
    uint8_t c0c1[1 + HS];
    make_fp9_c0c1(c0c1, 0, 1);
    c0c1[1 + pos(c0c1 + 1, 0)] ^= 1; /* corrupt the digest */
    assert_int_equal(es_rtmp_handshake_feed(&hs, c0c1, sizeof c0c1), sizeof c0c1);
    const uint8_t *out;
    assert_int_equal(es_rtmp_handshake_output(&hs, &out), 1 + 2 * HS);
    assert_false(hs.digest);
    assert_memory_equal(out + 1 + HS, c0c1 + 1, HS);
}

static void test_bad_version(void **state)
{
    es_rtmp_handshake_t hs;
    es_rtmp_handshake_init(&hs);
    const uint8_t rtmpe[] = {6, 0, 0, 0};
    assert_int_equal(es_rtmp_handshake_feed(&hs, rtmpe, sizeof rtmpe), ES_EPROTO);
    es_rtmp_handshake_init(&hs);
    const uint8_t http[] = "GET / HTTP/1.1\r\n";
    assert_int_equal(es_rtmp_handshake_feed(&hs, http, sizeof http - 1), ES_EPROTO);
    const uint8_t *out;
    assert_int_equal(es_rtmp_handshake_output(&hs, &out), 0);
}

static void test_byte_by_byte(void **state)
{
    es_rtmp_handshake_t hs;
    es_rtmp_handshake_init(&hs);
    uint8_t c0c1[1 + HS];
    make_fp9_c0c1(c0c1, 0, 7);
    const uint8_t *out;
    for (size_t i = 0; i < sizeof c0c1; i++) {
        assert_int_equal(es_rtmp_handshake_output(&hs, &out), 0);
        assert_int_equal(es_rtmp_handshake_feed(&hs, c0c1 + i, 1), 1);
    }
    assert_int_equal(es_rtmp_handshake_output(&hs, &out), 1 + 2 * HS);
    assert_true(hs.digest);
    uint8_t c2[HS] = {0};
    for (size_t i = 0; i < HS; i++) {
        assert_false(es_rtmp_handshake_done(&hs));
        assert_int_equal(es_rtmp_handshake_feed(&hs, c2 + i, 1), 1);
    }
    assert_true(es_rtmp_handshake_done(&hs));
    /* Empty input is fine at any point. */
    assert_int_equal(es_rtmp_handshake_feed(&hs, c2, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_offset),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_fp9_schema0),
        cmocka_unit_test(test_fp9_schema1),
        cmocka_unit_test(test_fp9_bad_digest_falls_back),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_byte_by_byte),
    };
    return cmocka_run_group_tests_name("rtmp_handshake", tests, NULL, NULL);
}
