/* Unit tests for src/rtp/nack.c: the NACK generator on a virtual clock (gaps, retry spacing,
 * give-up by retries and by age, wraparound, recovery, reset) and the send history. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/nack.h"

#include <string.h>

#define MS 1000u

static void test_gap_nacked_at_once(void **state)
{
    es_nack_gen_t *g = es_nack_gen_new();
    assert_non_null(g);
    uint64_t t = 1000 * MS;
    assert_int_equal(es_nack_gen_next_timeout_us(g), 0);
    assert_false(es_nack_gen_on_packet(g, 10, t));
    assert_false(es_nack_gen_on_packet(g, 11, t));
    assert_false(es_nack_gen_on_packet(g, 14, t + 1));  /* 12 and 13 missing */
    assert_int_equal(es_nack_gen_missing(g), 2);
    assert_int_equal(es_nack_gen_next_timeout_us(g), t + 1);
    uint16_t out[16];
    assert_int_equal(es_nack_gen_poll(g, t, out, 16), 0);  /* not due before detection */
    assert_int_equal(es_nack_gen_poll(g, t + 1, out, 16), 2);
    assert_int_equal(out[0], 12);
    assert_int_equal(out[1], 13);
    /* Nothing more until the RTT (default 100 ms) has passed. */
    assert_int_equal(es_nack_gen_next_timeout_us(g), t + 1 + 100 * MS);
    assert_int_equal(es_nack_gen_poll(g, t + 50 * MS, out, 16), 0);
    /* 13 arrives (a retransmission): it was missing, and is no longer NACKed. */
    assert_true(es_nack_gen_on_packet(g, 13, t + 60 * MS));
    assert_false(es_nack_gen_on_packet(g, 13, t + 61 * MS));  /* a duplicate */
    assert_false(es_nack_gen_on_packet(g, 11, t + 61 * MS));  /* was never missing */
    assert_int_equal(es_nack_gen_missing(g), 1);
    assert_int_equal(es_nack_gen_poll(g, t + 1 + 100 * MS, out, 16), 1);
    assert_int_equal(out[0], 12);
    assert_true(es_nack_gen_on_packet(g, 12, t + 150 * MS));
    assert_int_equal(es_nack_gen_missing(g), 0);
    assert_int_equal(es_nack_gen_next_timeout_us(g), 0);
    es_nack_gen_free(g);
    es_nack_gen_free(NULL);
}

static void test_retry_spacing_and_give_up(void **state)
{
    es_nack_gen_t *g = es_nack_gen_new();
    es_nack_gen_set_rtt(g, 5 * MS); /* below the 20 ms floor */
    uint64_t t = 0;
    es_nack_gen_on_packet(g, 100, t);
    es_nack_gen_on_packet(g, 102, t);
    /* A gap found at time 0 is still reported as a timeout (0 means "nothing"). */
    assert_int_equal(es_nack_gen_next_timeout_us(g), 1);
    uint16_t out[4];
    size_t sent = 0;
    for (uint64_t now = 0; now <= 1000 * MS; now += MS) {
        size_t n = es_nack_gen_poll(g, now, out, 4);
        if (n) {
            assert_int_equal(n, 1);
            assert_int_equal(out[0], 101);
            assert_int_equal(now, sent * 20 * MS); /* every 20 ms exactly */
            sent++;
        }
    }
    assert_int_equal(sent, ES_NACK_MAX_RETRIES);
    assert_int_equal(es_nack_gen_missing(g), 0);
    assert_false(es_nack_gen_on_packet(g, 101, 1001 * MS)); /* too late to count */

    /* With a 150 ms RTT the second NACK comes 150 ms after the first. */
    es_nack_gen_set_rtt(g, 150 * MS);
    es_nack_gen_on_packet(g, 104, 2000 * MS);
    assert_int_equal(es_nack_gen_poll(g, 2000 * MS, out, 4), 1);
    assert_int_equal(out[0], 103);
    assert_int_equal(es_nack_gen_poll(g, 2149 * MS, out, 4), 0);
    assert_int_equal(es_nack_gen_poll(g, 2150 * MS, out, 4), 1);
    es_nack_gen_free(g);
}

static void test_give_up_by_age(void **state)
{
    es_nack_gen_t *g = es_nack_gen_new();
    es_nack_gen_on_packet(g, 0, 0);
    es_nack_gen_on_packet(g, 2, 0); /* 1 missing */
    uint16_t out[8];
    assert_int_equal(es_nack_gen_poll(g, 0, out, 8), 1);
    /* Steady packets until 1 is ES_NACK_MAX_AGE behind: still tracked; one more: dropped. */
    for (uint16_t s = 3; s <= 1 + ES_NACK_MAX_AGE; s++) es_nack_gen_on_packet(g, s, MS);
    assert_int_equal(es_nack_gen_missing(g), 1);
    es_nack_gen_on_packet(g, 2 + ES_NACK_MAX_AGE, MS);
    assert_int_equal(es_nack_gen_missing(g), 0);
    assert_int_equal(es_nack_gen_poll(g, 10000 * MS, out, 8), 0);
    es_nack_gen_free(g);
}

static void test_wraparound(void **state)
{
    es_nack_gen_t *g = es_nack_gen_new();
    es_nack_gen_on_packet(g, 65533, 0);
    es_nack_gen_on_packet(g, 65534, 0);
    es_nack_gen_on_packet(g, 1, 0); /* 65535 and 0 missing */
    assert_int_equal(es_nack_gen_missing(g), 2);
    uint16_t out[8];
    assert_int_equal(es_nack_gen_poll(g, 0, out, 8), 2);
    assert_int_equal(out[0], 65535); /* ascending modulo 2^16 */
    assert_int_equal(out[1], 0);
    assert_true(es_nack_gen_on_packet(g, 0, MS));
    assert_true(es_nack_gen_on_packet(g, 65535, MS));
    assert_int_equal(es_nack_gen_missing(g), 0);
    es_nack_gen_on_packet(g, 3, MS);
    assert_int_equal(es_nack_gen_poll(g, MS, out, 8), 1);
    assert_int_equal(out[0], 2);
    es_nack_gen_free(g);
}

static void test_reset_cap_and_max(void **state)
{
    es_nack_gen_t *g = es_nack_gen_new();
    es_nack_gen_on_packet(g, 1000, 0);
    es_nack_gen_on_packet(g, 1005, 0);
    assert_int_equal(es_nack_gen_missing(g), 4);
    /* A jump of more than ES_NACK_MAX_AGE forward, or backward: start over, NACK nothing. */
    es_nack_gen_on_packet(g, 1005 + ES_NACK_MAX_AGE + 1, 0);
    assert_int_equal(es_nack_gen_missing(g), 0);
    es_nack_gen_on_packet(g, 3, 0);
    assert_int_equal(es_nack_gen_missing(g), 0);
    es_nack_gen_on_packet(g, 5, 0);
    assert_int_equal(es_nack_gen_missing(g), 1);

    /* A gap of 600 keeps the newest ES_NACK_MAX_MISSING (oldest dropped). */
    es_nack_gen_on_packet(g, 606, 0);
    assert_int_equal(es_nack_gen_missing(g), ES_NACK_MAX_MISSING);
    uint16_t out[ES_NACK_MAX_MISSING];
    /* poll writes at most max; the rest stays due. */
    assert_int_equal(es_nack_gen_poll(g, 0, out, 10), 10);
    assert_int_equal(out[0], 606 - ES_NACK_MAX_MISSING);
    assert_int_equal(out[9], 606 - ES_NACK_MAX_MISSING + 9);
    assert_int_equal(es_nack_gen_next_timeout_us(g), 1);
    assert_int_equal(es_nack_gen_poll(g, 0, out, ES_NACK_MAX_MISSING), ES_NACK_MAX_MISSING - 10);
    assert_int_equal(out[0], 606 - ES_NACK_MAX_MISSING + 10);
    /* Another small gap pushes out the oldest. */
    es_nack_gen_on_packet(g, 609, 0);
    assert_int_equal(es_nack_gen_missing(g), ES_NACK_MAX_MISSING);
    assert_false(es_nack_gen_on_packet(g, 606 - ES_NACK_MAX_MISSING, 0));
    assert_true(es_nack_gen_on_packet(g, 608, 0));
    es_nack_gen_free(g);
}

static void test_history(void **state)
{
    assert_null(es_rtp_history_new(15, 1500));
    assert_null(es_rtp_history_new(24, 1500));
    assert_null(es_rtp_history_new(8192, 1500));
    assert_null(es_rtp_history_new(16, 0));
    es_rtp_history_t *h = es_rtp_history_new(16, 8);
    assert_non_null(h);
    size_t len = 0;
    assert_null(es_rtp_history_get(h, 0, &len)); /* never stored */
    const uint8_t a[] = {1, 2, 3}, b[] = {4, 5, 6, 7, 8, 9, 10, 11}, big[9] = {0};
    assert_int_equal(es_rtp_history_put(h, 65535, a, sizeof a), 0);
    assert_int_equal(es_rtp_history_put(h, 0, b, sizeof b), 0); /* wraps; exactly max_len */
    const uint8_t *p = es_rtp_history_get(h, 65535, &len);
    assert_non_null(p);
    assert_int_equal(len, 3);
    assert_memory_equal(p, a, 3);
    p = es_rtp_history_get(h, 0, &len);
    assert_int_equal(len, 8);
    assert_memory_equal(p, b, 8);
    assert_int_equal(es_rtp_history_put(h, 1, big, sizeof big), ES_E2BIG);
    assert_null(es_rtp_history_get(h, 1, &len));
    /* 15 = 65535 + 16 modulo 2^16 shares the slot: overwrites it. */
    assert_int_equal(es_rtp_history_put(h, 15, b, 2), 0);
    assert_null(es_rtp_history_get(h, 65535, &len));
    p = es_rtp_history_get(h, 15, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(p, b, 2);
    es_rtp_history_free(h);
    es_rtp_history_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gap_nacked_at_once), cmocka_unit_test(test_retry_spacing_and_give_up),
        cmocka_unit_test(test_give_up_by_age),     cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_reset_cap_and_max),  cmocka_unit_test(test_history),
    };
    return cmocka_run_group_tests_name("nack", tests, NULL, NULL);
}
