/* Unit tests for src/rtp/rtcp.c: compound walking, SR/RR, NACK, PLI, FIR, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/rtcp.h"

#include <string.h>

static void test_compound_sr_sdes(void **state)
{
    const uint8_t pkt[] = {
        /* SR, RC=1, length 12 words */
        0x81, 200, 0x00, 0x0c, 0x11, 0x11, 0x11, 0x11,          /* sender SSRC */
        0xe8, 0x00, 0x00, 0x01, 0x80, 0x00, 0x00, 0x00,         /* NTP 0xe8000001.80000000 */
        0x00, 0x00, 0x03, 0xe8,                                 /* RTP ts 1000 */
        0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x04, 0x00,         /* 10 packets, 1024 octets */
        0x22, 0x22, 0x22, 0x22, 0x40, 0xff, 0xff, 0xfe,         /* block: fraction 64, lost -2 */
        0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00, 0x10,         /* highest 65541, jitter 16 */
        0x12, 0x34, 0x56, 0x78, 0x00, 0x01, 0x00, 0x00,         /* LSR, DLSR 1 s */
        /* SDES, SC=1, length 2 words (with a CNAME "ab" and padding) */
        0x81, 202, 0x00, 0x02, 0x11, 0x11, 0x11, 0x11, 0x01, 0x02, 'a', 'b',
    };
    size_t off = 0;
    es_rtcp_header_t h;
    assert_int_equal(es_rtcp_next(pkt, sizeof pkt, &off, &h), 1);
    assert_int_equal(h.type, ES_RTCP_SR);
    es_rtcp_report_t r;
    assert_int_equal(es_rtcp_parse_report(&h, &r), 0);
    assert_int_equal(r.ssrc, 0x11111111);
    assert_true(r.ntp == 0xe800000180000000ull);
    assert_int_equal(r.rtp_timestamp, 1000);
    assert_int_equal(r.packet_count, 10);
    assert_int_equal(r.octet_count, 1024);
    assert_int_equal(r.n_blocks, 1);
    assert_int_equal(r.blocks[0].fraction_lost, 64);
    assert_int_equal(r.blocks[0].cumulative_lost, -2);
    assert_int_equal(r.blocks[0].highest_seq, 65541);
    assert_int_equal(r.blocks[0].dlsr, 65536);
    assert_int_equal(es_rtcp_next(pkt, sizeof pkt, &off, &h), 1);
    assert_int_equal(h.type, ES_RTCP_SDES);
    assert_int_equal(es_rtcp_next(pkt, sizeof pkt, &off, &h), 0);
    /* Neither an SR nor an RR. */
    assert_int_equal(es_rtcp_parse_report(&h, &r), ES_EPROTO);
}

static void test_nack_round_trip(void **state)
{
    const uint16_t lost[] = {65534, 65535, 0, 3, 20, 40};
    uint8_t buf[64];
    int n = es_rtcp_write_nack(0xaaaa, 0xbbbb, lost, 6, buf, sizeof buf);
    /* 65534 covers 65535..13 (so 0 and 3) and 20? no: 20 - 65534 = 22 > 16: new entry. */
    assert_int_equal(n, 12 + 4 * 3);
    size_t off = 0;
    es_rtcp_header_t h;
    assert_int_equal(es_rtcp_next(buf, (size_t)n, &off, &h), 1);
    assert_int_equal(h.type, ES_RTCP_RTPFB);
    assert_int_equal(h.count, ES_RTCP_FMT_NACK);
    es_rtcp_fb_t fb;
    assert_int_equal(es_rtcp_parse_fb(&h, &fb), 0);
    assert_int_equal(fb.sender_ssrc, 0xaaaa);
    assert_int_equal(fb.media_ssrc, 0xbbbb);
    uint16_t got[64];
    assert_int_equal(es_rtcp_nack_lost(&fb, got, 64), 6);
    assert_memory_equal(got, lost, sizeof lost);
    assert_int_equal(es_rtcp_nack_lost(&fb, got, 2), 2); /* bounded by max */
    assert_int_equal(es_rtcp_write_nack(1, 2, lost, 6, buf, 20), ES_E2BIG);
}

static void test_pli_fir_bytes(void **state)
{
    uint8_t buf[32];
    const uint8_t pli[] = {0x81, 206, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2};
    assert_int_equal(es_rtcp_write_pli(1, 2, buf, sizeof buf), 12);
    assert_memory_equal(buf, pli, sizeof pli);
    const uint8_t fir[] = {0x84, 206, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 7, 0, 0, 0};
    assert_int_equal(es_rtcp_write_fir(1, 2, 7, buf, sizeof buf), 20);
    assert_memory_equal(buf, fir, sizeof fir);
    assert_int_equal(es_rtcp_write_pli(1, 2, buf, 11), ES_E2BIG);
    assert_int_equal(es_rtcp_write_fir(1, 2, 7, buf, 19), ES_E2BIG);
}

static void test_malformed(void **state)
{
    size_t off = 0;
    es_rtcp_header_t h;
    const uint8_t v1[] = {0x41, 201, 0, 1, 0, 0, 0, 1};
    assert_int_equal(es_rtcp_next(v1, sizeof v1, &off, &h), ES_EPROTO);
    off = 0;
    const uint8_t overrun[] = {0x80, 201, 0, 5, 0, 0, 0, 1};
    assert_int_equal(es_rtcp_next(overrun, sizeof overrun, &off, &h), ES_EPROTO);
    off = 0;
    const uint8_t pad0[] = {0xa0, 201, 0, 1, 0, 0, 0, 0};
    assert_int_equal(es_rtcp_next(pad0, sizeof pad0, &off, &h), ES_EPROTO);
    off = 0;
    const uint8_t rr_short[] = {0x81, 201, 0, 1, 0, 0, 0, 1}; /* RC=1 without its block */
    assert_int_equal(es_rtcp_next(rr_short, sizeof rr_short, &off, &h), 1);
    es_rtcp_report_t r;
    assert_int_equal(es_rtcp_parse_report(&h, &r), ES_EPROTO);
    off = 0;
    const uint8_t fb_short[] = {0x81, 205, 0, 1, 0, 0, 0, 1};
    assert_int_equal(es_rtcp_next(fb_short, sizeof fb_short, &off, &h), 1);
    es_rtcp_fb_t fb;
    assert_int_equal(es_rtcp_parse_fb(&h, &fb), ES_EPROTO);
    off = 0;
    const uint8_t nack_odd[] = {0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 0, 0}; /* ok */
    assert_int_equal(es_rtcp_next(nack_odd, sizeof nack_odd, &off, &h), 1);
    assert_int_equal(es_rtcp_parse_fb(&h, &fb), 0);
    fb.fci_len = 3;
    uint16_t seqs[4];
    assert_int_equal(es_rtcp_nack_lost(&fb, seqs, 4), ES_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compound_sr_sdes),
        cmocka_unit_test(test_nack_round_trip),
        cmocka_unit_test(test_pli_fir_bytes),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("rtcp", tests, NULL, NULL);
}
