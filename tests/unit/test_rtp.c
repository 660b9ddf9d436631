/* Unit tests for src/rtp/rtp.c: RFC 3550 header, CSRCs, RFC 8285 extensions, padding, and
 * malformed packets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/rtp.h"

#include <string.h>

static void test_basic_header(void **state)
{
    /* V=2, M=1, PT=96, seq=0x1234, ts=0xdeadbeef, ssrc=0x01020304, payload "abc" */
    const uint8_t pkt[] = {0x80, 0xe0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef,
                           0x01, 0x02, 0x03, 0x04, 'a', 'b', 'c'};
    es_rtp_packet_t p;
    assert_int_equal(es_rtp_parse(pkt, sizeof pkt, &p), 0);
    assert_true(p.marker);
    assert_int_equal(p.payload_type, 96);
    assert_int_equal(p.sequence, 0x1234);
    assert_int_equal(p.timestamp, 0xdeadbeef);
    assert_int_equal(p.ssrc, 0x01020304);
    assert_int_equal(p.header_len, 12);
    assert_int_equal(p.payload_len, 3);
    assert_memory_equal(p.payload, "abc", 3);
    assert_null(p.ext);

    uint8_t out[12];
    assert_int_equal(es_rtp_write_header(&p, out, sizeof out), 12);
    assert_memory_equal(out, pkt, 12);
    assert_int_equal(es_rtp_write_header(&p, out, 11), ES_E2BIG);
}

static void test_csrc_extension_padding(void **state)
{
    const uint8_t pkt[] = {
        0xb2, 0x6f, 0x00, 0x01, 0, 0, 0, 1, 0, 0, 0, 2, /* V=2 P X CC=2, PT=111 */
        0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb, /* CSRCs */
        0xbe, 0xde, 0x00, 0x02,                         /* one-byte extension, 2 words */
        0x10, 0x7f,                                     /* id 1, len 1: 0x7f (audio level) */
        0x00,                                           /* padding between elements */
        0x32, 0x01, 0x02, 0x03,                         /* id 3, len 3 */
        0x00,                                           /* trailing padding */
        'x', 'y', 0x00, 0x00, 0x03,                     /* payload "xy", 3 bytes RTP padding */
    };
    es_rtp_packet_t p;
    assert_int_equal(es_rtp_parse(pkt, sizeof pkt, &p), 0);
    assert_int_equal(p.csrc_count, 2);
    assert_int_equal(p.csrc[1], 0xbbbbbbbb);
    assert_int_equal(p.ext_profile, 0xBEDE);
    assert_int_equal(p.ext_len, 8);
    assert_int_equal(p.padding_len, 3);
    assert_int_equal(p.payload_len, 2);
    assert_memory_equal(p.payload, "xy", 2);
    const uint8_t *d;
    assert_int_equal(es_rtp_ext_find(&p, 1, &d), 1);
    assert_int_equal(d[0], 0x7f);
    assert_int_equal(es_rtp_ext_find(&p, 3, &d), 3);
    assert_int_equal(d[2], 0x03);
    assert_int_equal(es_rtp_ext_find(&p, 2, &d), ES_ENOENT);
}

static void test_two_byte_extension(void **state)
{
    const uint8_t pkt[] = {
        0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9,
        0x10, 0x00, 0x00, 0x02,   /* two-byte profile 0x1000, 2 words */
        0x05, 0x00,               /* id 5, length 0 */
        0x0c, 0x03, 'm', 'i', 'd',/* id 12, length 3 */
        0x00,
    };
    es_rtp_packet_t p;
    assert_int_equal(es_rtp_parse(pkt, sizeof pkt, &p), 0);
    const uint8_t *d;
    assert_int_equal(es_rtp_ext_find(&p, 5, &d), 0);
    assert_int_equal(es_rtp_ext_find(&p, 12, &d), 3);
    assert_memory_equal(d, "mid", 3);
}

static void test_malformed(void **state)
{
    es_rtp_packet_t p;
    const uint8_t v1[] = {0x40, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(es_rtp_parse(v1, sizeof v1, &p), ES_EPROTO);           /* version 1 */
    assert_int_equal(es_rtp_parse(v1, 11, &p), ES_EPROTO);                  /* short */
    const uint8_t cc[] = {0x83, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1};
    assert_int_equal(es_rtp_parse(cc, sizeof cc, &p), ES_EPROTO);           /* 3 CSRCs, room for 1 */
    const uint8_t ext[] = {0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0x00, 0x05, 0x10, 0};
    assert_int_equal(es_rtp_parse(ext, sizeof ext, &p), ES_EPROTO);         /* 5 words announced */
    const uint8_t pad0[] = {0xa0, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 'x', 0x00};
    assert_int_equal(es_rtp_parse(pad0, sizeof pad0, &p), ES_EPROTO);       /* padding count 0 */
    const uint8_t padbig[] = {0xa0, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 'x', 0x03};
    assert_int_equal(es_rtp_parse(padbig, sizeof padbig, &p), ES_EPROTO);   /* 3 > 2 bytes */
    /* An element running past its block. */
    const uint8_t elem[] = {0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x1f, 0, 0, 0};
    assert_int_equal(es_rtp_parse(elem, sizeof elem, &p), 0);
    const uint8_t *d;
    assert_int_equal(es_rtp_ext_find(&p, 1, &d), ES_EPROTO);
    /* A non-RFC 8285 profile is not searched. */
    const uint8_t other[] = {0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x12, 0x34, 0, 1, 1, 2, 3, 4};
    assert_int_equal(es_rtp_parse(other, sizeof other, &p), 0);
    assert_int_equal(es_rtp_ext_find(&p, 1, &d), ES_EPROTO);
}

static void test_seq_and_demux(void **state)
{
    assert_true(es_rtp_seq_newer(1, 0));
    assert_true(es_rtp_seq_newer(0, 65535));   /* wrap */
    assert_false(es_rtp_seq_newer(65535, 0));
    assert_false(es_rtp_seq_newer(7, 7));
    const uint8_t rtcp[] = {0x80, 200}, rtp[] = {0x80, 0x60};
    assert_true(es_rtp_is_rtcp(rtcp, 2));
    assert_false(es_rtp_is_rtcp(rtp, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_header),      cmocka_unit_test(test_csrc_extension_padding),
        cmocka_unit_test(test_two_byte_extension), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_seq_and_demux),
    };
    return cmocka_run_group_tests_name("rtp", tests, NULL, NULL);
}
