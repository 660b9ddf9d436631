/* Unit tests for src/rtp/twcc.c: transport-wide CC feedback built by the receiver and decoded by
 * es_twcc_parse (all received, losses, large and negative deltas, reordering, wraparound,
 * several feedbacks, the feedback count), and one packet's bytes worked out by hand from
 * draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/rtcp.h"
#include "estuary/twcc.h"

#include <string.h>

#define MAXS 5000

typedef struct decoded {
    uint16_t base;
    int32_t ref;
    uint8_t fb_count;
    int n;
    es_twcc_status_t st[MAXS];
    int64_t arrival_us[MAXS]; /* reconstructed from the reference time and the deltas */
} decoded_t;

/* Walks the RTCP packet as a receiver would and decodes its FCI. */
static void decode(const uint8_t *buf, int len, decoded_t *d)
{
    assert_true(len > 0);
    assert_int_equal(len % 4, 0);
    size_t off = 0;
    es_rtcp_header_t h;
    assert_int_equal(es_rtcp_next(buf, (size_t)len, &off, &h), 1);
    assert_int_equal(off, (size_t)len);
    assert_int_equal(h.type, ES_RTCP_RTPFB);
    assert_int_equal(h.count, ES_RTCP_FMT_TWCC);
    es_rtcp_fb_t fb;
    assert_int_equal(es_rtcp_parse_fb(&h, &fb), 0);
    assert_int_equal(fb.sender_ssrc, 0x11223344);
    assert_int_equal(fb.media_ssrc, 0x55667788);
    d->n = es_twcc_parse(fb.fci, fb.fci_len, &d->base, &d->ref, &d->fb_count, d->st, MAXS);
    assert_true(d->n > 0);
    int64_t t = (int64_t)d->ref * 64000;
    for (int i = 0; i < d->n; i++) {
        assert_int_equal(d->st[i].seq, (uint16_t)(d->base + i));
        assert_int_equal(d->st[i].delta_us % 250, 0);
        if (!d->st[i].received) {
            assert_int_equal(d->st[i].delta_us, 0);
            d->arrival_us[i] = -1;
            continue;
        }
        t += d->st[i].delta_us;
        d->arrival_us[i] = t;
    }
}

static int build(es_twcc_recv_t *t, uint8_t *buf, size_t cap)
{
    return es_twcc_recv_build(t, 0x11223344, 0x55667788, buf, cap);
}

static decoded_t d;

static void test_hand_computed_bytes(void **state)
{
    es_twcc_recv_t *t = es_twcc_recv_new();
    assert_non_null(t);
    uint8_t buf[64];
    assert_int_equal(build(t, buf, sizeof buf), 0); /* nothing pending */
    /* seq 10 at 128 ms (reference time 2 × 64 ms, delta 0), 11 at +250 µs (1 tick), 12 lost,
     * 13 at 192 ms (255 ticks after 11: still a small delta). */
    es_twcc_recv_on_packet(t, 10, 128000);
    es_twcc_recv_on_packet(t, 11, 128250);
    es_twcc_recv_on_packet(t, 13, 192000);
    assert_int_equal(build(t, buf, 19), ES_E2BIG);
    assert_int_equal(build(t, buf, 23), ES_E2BIG);
    const uint8_t want[] = {
        0x8f, 205, 0x00, 0x06,                  /* V=2 FMT=15 PT=205, 7 words */
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
        0x00, 0x0a, 0x00, 0x04,                 /* base 10, 4 statuses */
        0x00, 0x00, 0x02, 0x00,                 /* reference time 2, feedback count 0 */
        0xb4, 0x00,                             /* 1-bit vector: 1 1 0 1, then unused 0s */
        0x00, 0x01, 0xff,                       /* deltas 0, 1, 255 ticks */
        0x00, 0x00, 0x00,                       /* zero padding */
    };
    assert_int_equal(build(t, buf, sizeof buf), sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    assert_int_equal(build(t, buf, sizeof buf), 0);

    /* 20 packets received 1 ms apart: one run-length chunk |0|01|20|, count 1. */
    for (int i = 0; i < 20; i++) es_twcc_recv_on_packet(t, (uint16_t)(14 + i), 256000 + i * 1000);
    int n = build(t, buf, sizeof buf);
    assert_int_equal(n, 20 + 2 + 20 + 2);
    assert_int_equal(buf[12] << 8 | buf[13], 14);
    assert_int_equal(buf[14] << 8 | buf[15], 20);
    assert_int_equal(buf[18] << 8 | buf[19], 4 << 8 | 1);
    assert_int_equal(buf[20] << 8 | buf[21], 0x2014);
    assert_int_equal(buf[22], 0); /* 256 ms is exactly 4 × 64 ms */
    assert_int_equal(buf[23], 4); /* 1 ms */

    /* A large delta and a negative one need the two-bit vector: |1|1|01 10 10 ...|. */
    es_twcc_recv_on_packet(t, 34, 320000);          /* ref 5, delta 0: small */
    es_twcc_recv_on_packet(t, 35, 420000);          /* +100 ms = 400 ticks: large */
    es_twcc_recv_on_packet(t, 36, 419750);          /* -1 tick: large */
    n = build(t, buf, sizeof buf);
    assert_int_equal(n, 20 + 2 + 1 + 2 + 2 + 1);
    assert_int_equal(buf[20] << 8 | buf[21], 0xc000 | 1 << 12 | 2 << 10 | 2 << 8);
    assert_int_equal(buf[22], 0);
    assert_int_equal(buf[23] << 8 | buf[24], 400);
    assert_int_equal(buf[25] << 8 | buf[26], 0xffff);
    es_twcc_recv_free(t);
    es_twcc_recv_free(NULL);
}

static void test_all_received_and_losses(void **state)
{
    es_twcc_recv_t *t = es_twcc_recv_new();
    uint8_t buf[1200];
    uint64_t t0 = 5000123;
    for (int i = 0; i < 100; i++)
        if (i % 10 != 3 && i % 17 != 5) /* some lost */
            es_twcc_recv_on_packet(t, (uint16_t)(1000 + i), t0 + (uint64_t)i * 1234);
    decode(buf, build(t, buf, sizeof buf), &d);
    assert_int_equal(d.base, 1000);
    assert_int_equal(d.n, 100);
    assert_int_equal(d.fb_count, 0);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(d.st[i].received, i % 10 != 3 && i % 17 != 5);
        if (d.st[i].received)
            assert_int_equal(d.arrival_us[i], (int64_t)(t0 + (uint64_t)i * 1234) / 250 * 250);
    }
    assert_int_equal(build(t, buf, sizeof buf), 0);
    /* Everything received: a single run-length chunk. */
    for (int i = 0; i < 300; i++) es_twcc_recv_on_packet(t, (uint16_t)(1100 + i), t0 + 200000);
    int n = build(t, buf, sizeof buf);
    decode(buf, n, &d);
    assert_int_equal(d.n, 300);
    assert_int_equal(d.fb_count, 1);
    assert_int_equal(n, 20 + 2 + 300 + 2); /* padded */
    assert_int_equal(buf[20] << 8 | buf[21], 1 << 13 | 300);
    es_twcc_recv_free(t);
}

static void test_round_trip_times(void **state)
{
    es_twcc_recv_t *t = es_twcc_recv_new();
    uint8_t buf[1200];
    uint64_t arrival[64];
    uint64_t now = 987654321;
    for (int i = 0; i < 64; i++) {
        now += (i % 9 == 0) ? 70000 : (uint64_t)(i * 37 % 1000); /* some large deltas */
        arrival[i] = now;
        if (i % 5 != 2) es_twcc_recv_on_packet(t, (uint16_t)(200 + i), arrival[i]);
    }
    decode(buf, build(t, buf, sizeof buf), &d);
    assert_int_equal(d.base, 200);
    assert_int_equal(d.n, 64);
    assert_int_equal(d.ref, (int32_t)(arrival[0] / 64000));
    for (int i = 0; i < 64; i++) {
        assert_int_equal(d.st[i].received, i % 5 != 2);
        if (d.st[i].received) assert_int_equal(d.arrival_us[i], arrival[i] / 250 * 250);
    }
    es_twcc_recv_free(t);
}

static void test_reordering_and_duplicates(void **state)
{
    es_twcc_recv_t *t = es_twcc_recv_new();
    uint8_t buf[1200];
    es_twcc_recv_on_packet(t, 52, 1000000);
    es_twcc_recv_on_packet(t, 50, 1001000); /* late, before any feedback: recorded */
    es_twcc_recv_on_packet(t, 53, 1002000);
    es_twcc_recv_on_packet(t, 51, 1003000);
    es_twcc_recv_on_packet(t, 53, 1500000); /* duplicate: ignored */
    decode(buf, build(t, buf, sizeof buf), &d);
    assert_int_equal(d.base, 50);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.ref, 1001000 / 64000); /* first received in feedback order is 50 */
    assert_int_equal(d.arrival_us[0], 1001000);
    assert_int_equal(d.arrival_us[1], 1003000);
    assert_int_equal(d.arrival_us[2], 1000000); /* negative delta */
    assert_int_equal(d.arrival_us[3], 1002000);
    /* After the feedback, a packet older than it reported is not reported again. */
    es_twcc_recv_on_packet(t, 49, 1600000);
    assert_int_equal(build(t, buf, sizeof buf), 0);
    /* A hole reported lost, filled late, is not reported again either; the next starts after. */
    es_twcc_recv_on_packet(t, 56, 1700000);
    es_twcc_recv_on_packet(t, 55, 1700100);
    decode(buf, build(t, buf, sizeof buf), &d);
    assert_int_equal(d.base, 54);
    assert_int_equal(d.n, 3);
    assert_false(d.st[0].received);
    assert_int_equal(d.fb_count, 1);
    es_twcc_recv_free(t);
}

static void test_wraparound(void **state)
{
    es_twcc_recv_t *t = es_twcc_recv_new();
    uint8_t buf[1200];
    for (int i = 0; i < 8; i++)
        if (i != 3) es_twcc_recv_on_packet(t, (uint16_t)(65532 + i), 64000u * 1000 + i * 500u);
    decode(buf, build(t, buf, sizeof buf), &d);
    assert_int_equal(d.base, 65532);
    assert_int_equal(d.n, 8);
    assert_int_equal(d.st[4].seq, 0);
    assert_false(d.st[3].received);
    assert_int_equal(d.arrival_us[7], 64000 * 1000 + 3500);
    es_twcc_recv_on_packet(t, 4, 64000u * 1001);
    decode(buf, build(t, buf, sizeof buf), &d);
    assert_int_equal(d.base, 4);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.ref, 1001);
    es_twcc_recv_free(t);
}

static void test_several_feedbacks(void **state)
{
    es_twcc_recv_t *t = es_twcc_recv_new();
    static uint8_t buf[1200];
    static uint64_t arrival[3000];
    uint64_t now = 3000000;
    for (int i = 0; i < 3000; i++) {
        now += (i * 7919 % 13) * 250 + (i % 3 ? 0 : 90000); /* many large deltas */
        arrival[i] = now;
        if (i % 11 != 5) es_twcc_recv_on_packet(t, (uint16_t)(60000 + i), now);
    }
    /* One gap of more than 8.19 s forces a new reference time. */
    es_twcc_recv_on_packet(t, (uint16_t)(60000 + 3000), now + 9000000);
    int covered = 0, feedbacks = 0;
    int n;
    while ((n = build(t, buf, sizeof buf)) > 0) {
        assert_true(n <= 1200);
        decode(buf, n, &d);
        assert_int_equal(d.base, (uint16_t)(60000 + covered));
        assert_int_equal(d.fb_count, feedbacks);
        for (int i = 0; i < d.n; i++) {
            int k = covered + i;
            if (k == 3000) {
                assert_true(d.st[i].received);
                assert_int_equal(d.arrival_us[i], (now + 9000000) / 250 * 250);
                continue;
            }
            assert_int_equal(d.st[i].received, k % 11 != 5);
            if (d.st[i].received) assert_int_equal(d.arrival_us[i], arrival[k] / 250 * 250);
        }
        covered += d.n;
        feedbacks++;
    }
    assert_int_equal(n, 0);
    assert_int_equal(covered, 3001);
    assert_true(feedbacks >= 3);
    /* A small cap still makes progress, a few statuses at a time. */
    for (int i = 0; i < 50; i++) es_twcc_recv_on_packet(t, (uint16_t)(63001 + i), now + 9000000 + i * 100000u);
    covered = 0;
    while ((n = build(t, buf, 24)) > 0) {
        assert_int_equal(n, 24);
        decode(buf, n, &d);
        covered += d.n;
    }
    assert_int_equal(covered, 50);
    es_twcc_recv_free(t);
}

static void test_parse_malformed(void **state)
{
    uint16_t base;
    int32_t ref;
    uint8_t fbc;
    es_twcc_status_t st[16];
    const uint8_t short_hdr[] = {0, 1, 0, 1, 0, 0, 0};
    assert_int_equal(es_twcc_parse(short_hdr, sizeof short_hdr, &base, &ref, &fbc, st, 16),
                     ES_EPROTO);
    const uint8_t zero[] = {0, 1, 0, 0, 0, 0, 0, 0};
    assert_int_equal(es_twcc_parse(zero, sizeof zero, &base, &ref, &fbc, st, 16), ES_EPROTO);
    const uint8_t no_chunk[] = {0, 1, 0, 1, 0, 0, 0, 0};
    assert_int_equal(es_twcc_parse(no_chunk, sizeof no_chunk, &base, &ref, &fbc, st, 16),
                     ES_EPROTO);
    const uint8_t no_delta[] = {0, 1, 0, 2, 0, 0, 0, 0, 0x20, 0x02, 5};
    assert_int_equal(es_twcc_parse(no_delta, sizeof no_delta, &base, &ref, &fbc, st, 16),
                     ES_EPROTO);
    const uint8_t reserved[] = {0, 1, 0, 1, 0, 0, 0, 0, 0x60, 0x01, 5, 0};
    assert_int_equal(es_twcc_parse(reserved, sizeof reserved, &base, &ref, &fbc, st, 16),
                     ES_EPROTO);
    /* Negative reference time (24-bit signed), a large delta, bounded output. */
    const uint8_t ok[] = {0xff, 0xff, 0, 3, 0xff, 0xff, 0xfe, 9,
                          0xe4, 0x00, /* 2-bit vector: large, small, lost */
                          0xff, 0x38, 4, 0};
    assert_int_equal(es_twcc_parse(ok, sizeof ok, &base, &ref, &fbc, st, 16), 3);
    assert_int_equal(base, 0xffff);
    assert_int_equal(ref, -2);
    assert_int_equal(fbc, 9);
    assert_int_equal(st[0].delta_us, -200 * 250);
    assert_int_equal(st[1].seq, 0);
    assert_int_equal(st[1].delta_us, 1000);
    assert_false(st[2].received);
    assert_int_equal(es_twcc_parse(ok, sizeof ok, &base, &ref, &fbc, st, 2), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed_bytes), cmocka_unit_test(test_all_received_and_losses),
        cmocka_unit_test(test_round_trip_times),    cmocka_unit_test(test_reordering_and_duplicates),
        cmocka_unit_test(test_wraparound),          cmocka_unit_test(test_several_feedbacks),
        cmocka_unit_test(test_parse_malformed),
    };
    return cmocka_run_group_tests_name("twcc", tests, NULL, NULL);
}
