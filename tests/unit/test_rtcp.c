/* Unit tests for src/rtp/rtcp.c: compound walking, SR/RR, NACK, PLI, FIR, malformed input, the
 * SR/RR/SDES/REMB writers and receive statistics (RFC 3550 A.1, A.3, A.8). */
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

static void fill_block(es_rtcp_report_block_t *b, uint32_t i)
{
    b->ssrc = 0x1000 + i;
    b->fraction_lost = (uint8_t)(i * 7);
    b->cumulative_lost = (int32_t)i * 1000 - 5000;
    b->highest_seq = 0x10000 * i + 17;
    b->jitter = i * 3;
    b->lsr = 0xabcd0000 + i;
    b->dlsr = 65536 + i;
}

static void test_sr_rr_round_trip(void **state)
{
    es_rtcp_report_t r = {.ssrc = 0xdeadbeef, .ntp = 0xe8000001c0000000ull,
                          .rtp_timestamp = 123456, .packet_count = 77, .octet_count = 88000,
                          .n_blocks = 2};
    fill_block(&r.blocks[0], 1);
    fill_block(&r.blocks[1], 9);
    uint8_t buf[1024];
    assert_int_equal(es_rtcp_write_sr(&r, buf, sizeof buf), 28 + 48);
    assert_int_equal(buf[0], 0x82);
    assert_int_equal(buf[1], ES_RTCP_SR);
    size_t off = 0;
    es_rtcp_header_t h;
    es_rtcp_report_t got;
    assert_int_equal(es_rtcp_next(buf, 76, &off, &h), 1);
    assert_int_equal(off, 76);
    assert_int_equal(es_rtcp_parse_report(&h, &got), 0);
    assert_memory_equal(&got, &r, sizeof r); /* both zero-initialised past n_blocks */
    assert_int_equal(es_rtcp_write_sr(&r, buf, 75), ES_E2BIG);

    /* RR: no blocks (8 bytes), then 31; 32 is invalid. A cumulative loss past 24 bits clamps. */
    es_rtcp_report_t rr = {.ssrc = 42};
    assert_int_equal(es_rtcp_write_rr(&rr, buf, sizeof buf), 8);
    const uint8_t empty_rr[] = {0x80, 201, 0x00, 0x01, 0, 0, 0, 42};
    assert_memory_equal(buf, empty_rr, 8);
    rr.n_blocks = 31;
    for (uint32_t i = 0; i < 31; i++) fill_block(&rr.blocks[i], i);
    rr.blocks[3].cumulative_lost = 0x1000000;
    rr.blocks[4].cumulative_lost = -0x1000000;
    assert_int_equal(es_rtcp_write_rr(&rr, buf, sizeof buf), 8 + 31 * 24);
    off = 0;
    assert_int_equal(es_rtcp_next(buf, sizeof buf, &off, &h), 1);
    assert_int_equal(h.type, ES_RTCP_RR);
    assert_int_equal(es_rtcp_parse_report(&h, &got), 0);
    assert_int_equal(got.n_blocks, 31);
    assert_int_equal(got.blocks[3].cumulative_lost, 0x7fffff);
    assert_int_equal(got.blocks[4].cumulative_lost, -0x800000);
    rr.blocks[3].cumulative_lost = 0x7fffff;
    rr.blocks[4].cumulative_lost = -0x800000;
    assert_memory_equal(got.blocks, rr.blocks, sizeof rr.blocks);
    assert_int_equal(es_rtcp_write_rr(&rr, buf, 8 + 30 * 24), ES_E2BIG);
    rr.n_blocks = 32;
    assert_int_equal(es_rtcp_write_rr(&rr, buf, sizeof buf), ES_EINVAL);
    assert_int_equal(es_rtcp_write_sr(&rr, buf, sizeof buf), ES_EINVAL);
}

static void test_sdes_cname(void **state)
{
    uint8_t buf[300];
    /* "ab": 10 + 2 bytes end on a word boundary, so a whole word of nulls ends the list. */
    const uint8_t ab[] = {0x81, 202, 0x00, 0x03, 0x11, 0x22, 0x33, 0x44,
                          0x01, 0x02, 'a',  'b',  0,    0,    0,    0};
    assert_int_equal(es_rtcp_write_sdes_cname(0x11223344, "ab", buf, sizeof buf), 16);
    assert_memory_equal(buf, ab, sizeof ab);
    const uint8_t abcde[] = {0x81, 202, 0x00, 0x03, 0, 0, 0, 1, 0x01, 0x05, 'a', 'b', 'c', 'd', 'e', 0};
    assert_int_equal(es_rtcp_write_sdes_cname(1, "abcde", buf, sizeof buf), 16);
    assert_memory_equal(buf, abcde, sizeof abcde);
    assert_int_equal(es_rtcp_write_sdes_cname(1, "abcde", buf, 15), ES_E2BIG);
    char name[257];
    memset(name, 'x', 256);
    name[256] = 0;
    assert_int_equal(es_rtcp_write_sdes_cname(1, name, buf, sizeof buf), ES_E2BIG);
    name[255] = 0;
    int n = es_rtcp_write_sdes_cname(1, name, buf, sizeof buf);
    assert_int_equal(n, 268);
    size_t off = 0;
    es_rtcp_header_t h;
    assert_int_equal(es_rtcp_next(buf, (size_t)n, &off, &h), 1);
    assert_int_equal(h.type, ES_RTCP_SDES);
    assert_int_equal(h.count, 1);
    assert_int_equal(buf[9], 255);
    assert_int_equal(es_rtcp_write_sdes_cname(1, NULL, buf, sizeof buf), ES_EINVAL);
}

static void test_remb_bytes(void **state)
{
    uint8_t buf[64];
    const uint32_t ssrcs[] = {0x01020304, 0x0a0b0c0d};
    /* 1 Mbit/s = 250000 << 2: exponent 2, mantissa 0x3d090. */
    const uint8_t want[] = {0x8f, 206, 0x00, 0x06, 0, 0, 0, 9, 0, 0, 0, 0, 'R', 'E', 'M', 'B',
                            0x02, 0x0b, 0xd0, 0x90, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d};
    assert_int_equal(es_rtcp_write_remb(9, 1000000, ssrcs, 2, buf, sizeof buf), 28);
    assert_memory_equal(buf, want, sizeof want);
    assert_int_equal(es_rtcp_write_remb(9, 1000000, ssrcs, 2, buf, 27), ES_E2BIG);
    /* Fits the mantissa: exponent 0. */
    assert_int_equal(es_rtcp_write_remb(9, 0x3ffff, ssrcs, 1, buf, sizeof buf), 24);
    assert_int_equal(buf[17], 0x03);
    assert_int_equal(buf[18] << 8 | buf[19], 0xffff);
    /* The largest bitrate: exponent 46, mantissa all ones. */
    assert_int_equal(es_rtcp_write_remb(9, UINT64_MAX, NULL, 0, buf, sizeof buf), 20);
    assert_int_equal(buf[16], 0);
    assert_int_equal(buf[17], 46 << 2 | 0x03);
    assert_int_equal(buf[18] << 8 | buf[19], 0xffff);
    size_t off = 0;
    es_rtcp_header_t h;
    assert_int_equal(es_rtcp_next(buf, 20, &off, &h), 1);
    assert_int_equal(h.type, ES_RTCP_PSFB);
    assert_int_equal(h.count, 15);
    assert_int_equal(es_rtcp_write_remb(9, 1, ssrcs, 256, buf, sizeof buf), ES_EINVAL);
}

static void test_recv_stats_loss(void **state)
{
    es_rtp_recv_stats_t s = {0};
    es_rtcp_report_block_t b;
    es_rtp_recv_stats_block(&s, 5, 0, &b); /* nothing yet */
    assert_int_equal(b.ssrc, 5);
    assert_int_equal(b.highest_seq, 0);
    assert_int_equal(b.cumulative_lost, 0);
    /* 100 packets across the wrap, 10 lost, one reordered. */
    for (uint32_t i = 0; i < 100; i++) {
        if (i % 10 == 4 || i == 50) continue;
        es_rtp_recv_stats_update(&s, (uint16_t)(65500 + i), i * 960, i * 20000, 48000);
    }
    es_rtp_recv_stats_update(&s, (uint16_t)(65550), 50 * 960, 100 * 20000, 48000); /* late */
    es_rtp_recv_stats_block(&s, 5, 3000000, &b);
    assert_int_equal(b.highest_seq, 65536 + (65500 + 99 - 65536));
    assert_int_equal(b.cumulative_lost, 10);
    assert_int_equal(b.fraction_lost, 10 * 256 / 100);
    /* The next 50 all arrive: nothing lost in this interval. */
    for (uint32_t i = 100; i < 150; i++)
        es_rtp_recv_stats_update(&s, (uint16_t)(65500 + i), i * 960, i * 20000, 48000);
    es_rtp_recv_stats_block(&s, 5, 4000000, &b);
    assert_int_equal(b.fraction_lost, 0);
    assert_int_equal(b.cumulative_lost, 10);
    /* 100 lost, then one packet arrives: 100 of 101 expected in this interval. */
    es_rtp_recv_stats_update(&s, (uint16_t)(65500 + 250), 250 * 960, 250 * 20000, 48000);
    es_rtp_recv_stats_block(&s, 5, 5000000, &b);
    assert_int_equal(b.fraction_lost, 100 * 256 / 101);
    assert_int_equal(b.cumulative_lost, 110);
    /* Duplicates only: more received than expected, no fraction, cumulative goes down. */
    es_rtp_recv_stats_update(&s, (uint16_t)(65500 + 250), 250 * 960, 251 * 20000, 48000);
    es_rtp_recv_stats_block(&s, 5, 6000000, &b);
    assert_int_equal(b.fraction_lost, 0);
    assert_int_equal(b.cumulative_lost, 109);
    /* A jump restarts the statistics. */
    es_rtp_recv_stats_update(&s, 30000, 0, 7000000, 48000);
    es_rtp_recv_stats_update(&s, 30002, 0, 7000000, 48000);
    es_rtp_recv_stats_block(&s, 5, 7000000, &b);
    assert_int_equal(b.highest_seq, 30002);
    assert_int_equal(b.cumulative_lost, 1);
    assert_int_equal(b.fraction_lost, 256 / 3);
}

static void test_recv_stats_jitter_lsr(void **state)
{
    /* Video at 90 kHz, a frame every 20 ms, every other packet 1 ms late: |D| = 90 ticks each
     * time, so the jitter converges to 90 (A.8). */
    es_rtp_recv_stats_t s = {0};
    uint64_t t0 = 123456789;
    for (uint32_t i = 0; i < 300; i++)
        es_rtp_recv_stats_update(&s, (uint16_t)i, 1000 + i * 1800,
                                 t0 + i * 20000 + (i % 2 ? 1000 : 0), 90000);
    double want = 0;
    for (int i = 1; i < 300; i++) want += (90 - want) / 16;
    assert_true(s.jitter > want - 1e-9 && s.jitter < want + 1e-9);
    es_rtcp_report_block_t b;
    es_rtp_recv_stats_block(&s, 7, t0, &b);
    assert_int_equal(b.jitter, 89); /* 89.99..., truncated */
    assert_int_equal(b.lsr, 0);     /* no SR yet */
    assert_int_equal(b.dlsr, 0);

    /* A constant delay is no jitter, whatever the clock offset. */
    es_rtp_recv_stats_t c = {0};
    for (uint32_t i = 0; i < 50; i++)
        es_rtp_recv_stats_update(&c, (uint16_t)(7 + i), 0xfffff000u + i * 960,
                                 999000000 + i * 20000, 48000);
    assert_true(c.jitter == 0);

    /* LSR: middle 32 bits of the SR's NTP time; DLSR in 1/65536 s. */
    es_rtp_recv_stats_on_sr(&s, 0xe8000001c0000000ull, 5000000);
    es_rtp_recv_stats_block(&s, 7, 6500000, &b);
    assert_int_equal(b.lsr, 0x0001c000);
    assert_int_equal(b.dlsr, 98304); /* 1.5 s */
    /* The block survives the wire. */
    es_rtcp_report_t r = {.ssrc = 3, .n_blocks = 1, .blocks = {b}}, got;
    uint8_t buf[64];
    int n = es_rtcp_write_rr(&r, buf, sizeof buf);
    size_t off = 0;
    es_rtcp_header_t h;
    assert_int_equal(es_rtcp_next(buf, (size_t)n, &off, &h), 1);
    assert_int_equal(es_rtcp_parse_report(&h, &got), 0);
    assert_memory_equal(&got.blocks[0], &b, sizeof b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compound_sr_sdes),
        cmocka_unit_test(test_nack_round_trip),
        cmocka_unit_test(test_pli_fir_bytes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_sr_rr_round_trip),
        cmocka_unit_test(test_sdes_cname),
        cmocka_unit_test(test_remb_bytes),
        cmocka_unit_test(test_recv_stats_loss),
        cmocka_unit_test(test_recv_stats_jitter_lsr),
    };
    return cmocka_run_group_tests_name("rtcp", tests, NULL, NULL);
}
