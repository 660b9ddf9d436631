/* Unit tests for src/media/rtp_clock.c: 64-bit extension across the 2^32 wrap at 90 kHz and
 * 48 kHz, backward steps, the arrival-time fallback, SR-based audio/video alignment with random
 * RTP offsets (same capture instant -> same ms), SRs arriving late or contradicting (output
 * stays monotonic per track), publisher reset and argument errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/rtp_clock.h"

#include <stdlib.h>

/* A sender's NTP clock: 2024-ish seconds since 1900 plus ms, as 32.32 fixed point. */
#define NTP_BASE_S 3913056000ull
static uint64_t ntp_at_ms(uint64_t ms)
{
    uint64_t s = NTP_BASE_S + ms / 1000, frac = ((ms % 1000) << 32) / 1000;
    return s << 32 | frac;
}

static uint32_t xs(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void test_unwrap(void **state)
{
    es_rtp_unwrap_t u = {0};
    assert_int_equal(es_rtp_unwrap(&u, 4294967000u), 4294967000ll);
    assert_int_equal(es_rtp_unwrap(&u, 200), 4294967296ll + 200);
    assert_int_equal(es_rtp_unwrap(&u, 4294967100u), 4294967100ll); /* back across the wrap */
    assert_int_equal(es_rtp_unwrap(&u, 3000), 4294967296ll + 3000);
    /* Many wraps in steps just under 2^31. */
    int64_t want = 4294967296ll + 3000;
    uint32_t ts = 3000;
    for (int i = 0; i < 10; i++) {
        ts += 0x7fffffff;
        want += 0x7fffffff;
        assert_int_equal(es_rtp_unwrap(&u, ts), want);
    }
    /* A first timestamp followed by a step back gives a negative value. */
    es_rtp_unwrap_t v = {0};
    assert_int_equal(es_rtp_unwrap(&v, 10), 10);
    assert_int_equal(es_rtp_unwrap(&v, 4294967290u), -6);
    assert_int_equal(es_rtp_unwrap(&v, 20), 20);
}

/* One track across the wrap: ms follow the ticks exactly (90 kHz: 3000 ticks = 33.3 ms; 48 kHz:
 * 960 ticks = 20 ms). */
static void test_wrap_ms(void **state)
{
    const uint32_t rates[] = {90000, 48000};
    const uint32_t steps[] = {3000, 960};
    for (int r = 0; r < 2; r++) {
        es_rtp_clock_t *c = es_rtp_clock_new();
        assert_int_equal(es_rtp_clock_add_track(c, rates[r]), 0);
        uint32_t ts = 4294967295u - 50 * steps[r];
        uint64_t now = 7000000;
        for (uint64_t k = 0; k < 200; k++) {
            uint32_t ms;
            assert_int_equal(es_rtp_clock_map(c, 0, ts, now, &ms), 0);
            assert_int_equal(ms, k * steps[r] * 1000 / rates[r]);
            ts += steps[r];
            now += 40000; /* arrival jitter does not matter after the first */
        }
        es_rtp_clock_free(c);
    }
}

/* Backward steps (reordering, B-frames) are not taken for a wrap; the output holds. */
static void test_backward_steps(void **state)
{
    es_rtp_clock_t *c = es_rtp_clock_new();
    assert_int_equal(es_rtp_clock_add_track(c, 90000), 0);
    uint32_t ms;
    assert_int_equal(es_rtp_clock_map(c, 0, 100, 0, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(es_rtp_clock_map(c, 0, 100 + 9000, 0, &ms), 0);
    assert_int_equal(ms, 100);
    assert_int_equal(es_rtp_clock_map(c, 0, 100 + 6000, 0, &ms), 0);
    assert_int_equal(ms, 100); /* held, not 2^32 ticks ahead */
    assert_int_equal(es_rtp_clock_map(c, 0, 100 + 12000, 0, &ms), 0);
    assert_int_equal(ms, 133);
    /* Back across the wrap from just after it. */
    es_rtp_clock_reset(c);
    assert_int_equal(es_rtp_clock_map(c, 0, 1000, 0, &ms), 0);
    assert_int_equal(es_rtp_clock_map(c, 0, 4294967000u, 0, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(es_rtp_clock_map(c, 0, 1000 + 90000, 0, &ms), 0);
    assert_int_equal(ms, 1000);
    es_rtp_clock_free(c);
}

/* No SR: each track starts at its first arrival on a timeline whose 0 is the stream's first. */
static void test_fallback(void **state)
{
    es_rtp_clock_t *c = es_rtp_clock_new();
    int v = es_rtp_clock_add_track(c, 90000), a = es_rtp_clock_add_track(c, 48000);
    assert_int_equal(v, 0);
    assert_int_equal(a, 1);
    uint32_t ms;
    assert_int_equal(es_rtp_clock_map(c, a, 123456, 1000000, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(es_rtp_clock_map(c, v, 999999, 1020000, &ms), 0);
    assert_int_equal(ms, 20);
    assert_int_equal(es_rtp_clock_map(c, v, 999999 + 3000, 1090000, &ms), 0);
    assert_int_equal(ms, 53); /* 20 + 33.3: ticks, not the late arrival */
    assert_int_equal(es_rtp_clock_map(c, a, 123456 + 960, 1020000, &ms), 0);
    assert_int_equal(ms, 20);
    assert_false(es_rtp_clock_synced(c));
    /* Only one track's SR: still the fallback. */
    es_rtp_clock_on_sr(c, v, ntp_at_ms(5000), 42);
    assert_false(es_rtp_clock_synced(c));
    assert_int_equal(es_rtp_clock_map(c, a, 123456 + 1920, 1040000, &ms), 0);
    assert_int_equal(ms, 40);
    /* No more tracks once started. */
    assert_int_equal(es_rtp_clock_add_track(c, 8000), ES_EBUSY);
    es_rtp_clock_free(c);
}

/* A sender capturing audio and video at the same instants, with random RTP offsets, video
 * arriving 30 ms and audio 80 ms after capture. */
typedef struct sender {
    uint32_t v0, a0; /* RTP timestamps at capture time 0 */
} sender_t;

static uint32_t v_ts(const sender_t *s, uint64_t ms) { return s->v0 + (uint32_t)(ms * 90); }
static uint32_t a_ts(const sender_t *s, uint64_t ms) { return s->a0 + (uint32_t)(ms * 48); }

static void test_sr_alignment(void **state)
{
    uint32_t x = 2024;
    for (int round = 0; round < 50; round++) {
        sender_t s = {xs(&x), xs(&x)};
        es_rtp_clock_t *c = es_rtp_clock_new();
        int v = es_rtp_clock_add_track(c, 90000), a = es_rtp_clock_add_track(c, 48000);
        uint64_t t0 = 1000000 + xs(&x) % 1000000; /* µs when capture time 0 happened here */
        uint32_t last_v = 0, last_a = 0, ms_v, ms_a;
        uint64_t sr_v_at = 200 + xs(&x) % 1500, sr_a_at = 200 + xs(&x) % 1500;
        bool any_v = false, any_a = false;
        /* Video every 40 ms, audio every 20 ms, for 4 s; SRs at random times. */
        for (uint64_t ms = 0; ms < 4000; ms += 20) {
            if (ms == sr_v_at / 20 * 20) es_rtp_clock_on_sr(c, v, ntp_at_ms(ms), v_ts(&s, ms));
            if (ms == sr_a_at / 20 * 20) es_rtp_clock_on_sr(c, a, ntp_at_ms(ms), a_ts(&s, ms));
            bool synced = es_rtp_clock_synced(c);
            if (ms % 40 == 0) {
                assert_int_equal(es_rtp_clock_map(c, v, v_ts(&s, ms), t0 + (ms + 30) * 1000,
                                                  &ms_v), 0);
                assert_true(!any_v || ms_v >= last_v);
                any_v = true;
                last_v = ms_v;
            }
            assert_int_equal(es_rtp_clock_map(c, a, a_ts(&s, ms), t0 + (ms + 80) * 1000, &ms_a),
                             0);
            assert_true(!any_a || ms_a >= last_a);
            any_a = true;
            last_a = ms_a;
            if (ms == 0) {
                assert_int_equal(ms_v, 0);
                assert_int_equal(ms_a, 50); /* the fallback sees the arrival difference */
            }
            if (synced && ms % 40 == 0) {
                /* Same capture instant, same ms (within rounding), and real spacing. */
                assert_true(ms_v - ms_a + 1 <= 2);
            }
        }
        assert_true(es_rtp_clock_synced(c));
        /* After the switch the timeline keeps the capture spacing exactly. */
        uint32_t m1, m2;
        assert_int_equal(es_rtp_clock_map(c, v, v_ts(&s, 4000), 0, &m1), 0);
        assert_int_equal(es_rtp_clock_map(c, v, v_ts(&s, 5000), 0, &m2), 0);
        assert_int_equal(m2 - m1, 1000);
        es_rtp_clock_free(c);
    }
}

/* SRs before any packet: output starts near 0 and aligned from the first frame. */
static void test_sr_first(void **state)
{
    sender_t s = {4294000000u, 77};
    es_rtp_clock_t *c = es_rtp_clock_new();
    int v = es_rtp_clock_add_track(c, 90000), a = es_rtp_clock_add_track(c, 48000);
    es_rtp_clock_on_sr(c, a, ntp_at_ms(1000), a_ts(&s, 1000));
    es_rtp_clock_on_sr(c, v, ntp_at_ms(990), v_ts(&s, 990));
    assert_true(es_rtp_clock_synced(c));
    uint32_t ms;
    /* Audio captured at 1000 arrives first, video captured at 1000 (wrapped) after it. */
    assert_int_equal(es_rtp_clock_map(c, a, a_ts(&s, 1000), 50, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(es_rtp_clock_map(c, v, v_ts(&s, 1000), 90, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(es_rtp_clock_map(c, v, v_ts(&s, 1040), 130, &ms), 0);
    assert_int_equal(ms, 40);
    assert_int_equal(es_rtp_clock_map(c, a, a_ts(&s, 1060), 140, &ms), 0);
    assert_int_equal(ms, 60);
    /* A frame captured before the first one mapped: clamped at 0, not negative. */
    es_rtp_clock_reset(c);
    es_rtp_clock_on_sr(c, a, ntp_at_ms(1000), a_ts(&s, 1000));
    es_rtp_clock_on_sr(c, v, ntp_at_ms(1000), v_ts(&s, 1000));
    assert_int_equal(es_rtp_clock_map(c, v, v_ts(&s, 1000), 0, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(es_rtp_clock_map(c, a, a_ts(&s, 980), 0, &ms), 0);
    assert_int_equal(ms, 0);
    es_rtp_clock_free(c);
}

/* SRs that arrive late, jitter, or contradict: never backwards per track. Calls come in
 * arrival order (now_us never decreases), video 150 ms behind audio. */
static void test_sr_late_and_jumps(void **state)
{
    sender_t s = {123, 4000000000u};
    es_rtp_clock_t *c = es_rtp_clock_new();
    int v = es_rtp_clock_add_track(c, 90000), a = es_rtp_clock_add_track(c, 48000);
    uint32_t ms_v = 0, ms_a = 0, prev_v = 0, prev_a = 0;
    for (uint64_t t = 0; t < 10150; t += 10) { /* arrival time, ms */
        if (t % 20 == 0 && t < 10000) { /* audio captured at t */
            if (t == 6000) es_rtp_clock_on_sr(c, a, ntp_at_ms(t), a_ts(&s, t));
            /* An SR 2 s in the past (a sender clock step). */
            if (t == 9000) es_rtp_clock_on_sr(c, a, ntp_at_ms(t - 2000), a_ts(&s, t));
            assert_int_equal(es_rtp_clock_map(c, a, a_ts(&s, t), t * 1000, &ms_a), 0);
            assert_true(ms_a >= prev_a);
            if (t < 6170) assert_int_equal(ms_a, t);
            else if (t < 9000) assert_true(ms_a + 1 >= t + 150 && ms_a <= t + 151);
            prev_a = ms_a;
        }
        if (t >= 150 && (t - 150) % 20 == 0) { /* video captured at t - 150 */
            uint64_t cap = t - 150;
            if (cap == 6020) es_rtp_clock_on_sr(c, v, ntp_at_ms(cap), v_ts(&s, cap));
            /* A jittery SR: its RTP timestamp 3 ms off. */
            if (cap == 8000) es_rtp_clock_on_sr(c, v, ntp_at_ms(cap), v_ts(&s, cap) + 270);
            assert_int_equal(es_rtp_clock_map(c, v, v_ts(&s, cap), t * 1000, &ms_v), 0);
            assert_true(ms_v >= prev_v);
            if (cap < 8000) assert_int_equal(ms_v, cap + 150); /* continued over the switch */
            else assert_true(ms_v + 3 >= cap + 150 && ms_v <= cap + 150);
            prev_v = ms_v;
        }
    }
    assert_true(es_rtp_clock_synced(c));
    /* The audio SR that went 2 s back: audio holds where it was. */
    assert_true(prev_a >= 9000 + 150 - 20 && prev_a <= 9000 + 151);
    es_rtp_clock_free(c);
}

static void test_reset_and_errors(void **state)
{
    es_rtp_clock_t *c = es_rtp_clock_new();
    assert_int_equal(es_rtp_clock_add_track(c, 0), ES_EINVAL);
    assert_int_equal(es_rtp_clock_add_track(NULL, 90000), ES_EINVAL);
    for (int i = 0; i < ES_RTP_CLOCK_MAX_TRACKS; i++)
        assert_int_equal(es_rtp_clock_add_track(c, 48000), i);
    assert_int_equal(es_rtp_clock_add_track(c, 48000), ES_E2BIG);
    uint32_t ms;
    assert_int_equal(es_rtp_clock_map(c, -1, 0, 0, &ms), ES_EINVAL);
    assert_int_equal(es_rtp_clock_map(c, ES_RTP_CLOCK_MAX_TRACKS, 0, 0, &ms), ES_EINVAL);
    assert_int_equal(es_rtp_clock_map(c, 0, 0, 0, NULL), ES_EINVAL);
    es_rtp_clock_on_sr(c, 9, ntp_at_ms(1), 1); /* ignored */
    es_rtp_clock_on_sr(NULL, 0, ntp_at_ms(1), 1);
    /* A publisher goes, another comes with other timestamps: 0 again. */
    assert_int_equal(es_rtp_clock_map(c, 0, 1000, 5000000, &ms), 0);
    assert_int_equal(es_rtp_clock_map(c, 0, 1000 + 48000 * 60, 65000000, &ms), 0);
    assert_int_equal(ms, 60000);
    for (int i = 0; i < ES_RTP_CLOCK_MAX_TRACKS; i++)
        es_rtp_clock_on_sr(c, i, ntp_at_ms(100), 1000);
    assert_true(es_rtp_clock_synced(c));
    es_rtp_clock_reset(c);
    assert_false(es_rtp_clock_synced(c));
    assert_int_equal(es_rtp_clock_map(c, 0, 777777, 99000000, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(es_rtp_clock_map(c, 3, 5, 99500000, &ms), 0);
    assert_int_equal(ms, 500);
    /* An SR with NTP time 0 is ignored. */
    es_rtp_clock_reset(c);
    for (int i = 0; i < ES_RTP_CLOCK_MAX_TRACKS; i++) es_rtp_clock_on_sr(c, i, 0, 1000);
    assert_false(es_rtp_clock_synced(c));
    es_rtp_clock_free(c);
    es_rtp_clock_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unwrap),          cmocka_unit_test(test_wrap_ms),
        cmocka_unit_test(test_backward_steps),  cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_sr_alignment),    cmocka_unit_test(test_sr_first),
        cmocka_unit_test(test_sr_late_and_jumps), cmocka_unit_test(test_reset_and_errors),
    };
    return cmocka_run_group_tests_name("rtp_clock", tests, NULL, NULL);
}
