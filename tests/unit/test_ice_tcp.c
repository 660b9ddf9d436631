/* Unit tests for src/webrtc/ice_tcp.c: RFC 4571 deframing (frames split across reads at every
 * byte, several frames in one read, empty frames skipped, the 1,500-byte limit) and the shared
 * port's first-bytes sniffing (HTTP methods, TLS records, framed STUN Binding requests, and what
 * is none of them), including that a decision never changes as more bytes arrive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/ice_tcp.h"

#include <string.h>

/* A framed STUN Binding request header (20 bytes, no attributes). */
static size_t framed_stun(uint8_t *out)
{
    static const uint8_t hdr[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42,
                                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    es_rfc4571_header(out, sizeof hdr);
    memcpy(out + 2, hdr, sizeof hdr);
    return 2 + sizeof hdr;
}

static void test_deframe_split_everywhere(void **state)
{
    (void)state;
    uint8_t stream[3 * 1502];
    size_t n = 0, lens[3] = {1, 700, ES_ICE_TCP_MAX_FRAME};
    for (size_t f = 0; f < 3; f++) {
        es_rfc4571_header(stream + n, lens[f]);
        for (size_t i = 0; i < lens[f]; i++) stream[n + 2 + i] = (uint8_t)(f * 31 + i);
        n += 2 + lens[f];
    }
    /* Every split point of the stream into two reads gives the same three frames. */
    for (size_t cut = 0; cut <= n; cut++) {
        es_rfc4571_t d;
        memset(&d, 0, sizeof d);
        size_t got = 0;
        const uint8_t *parts[2] = {stream, stream + cut};
        size_t part_len[2] = {cut, n - cut};
        for (int p = 0; p < 2; p++) {
            const uint8_t *in = parts[p];
            size_t left = part_len[p];
            const uint8_t *frame;
            size_t flen;
            int rc;
            while ((rc = es_rfc4571_next(&d, &in, &left, &frame, &flen)) == 1) {
                assert_true(got < 3);
                assert_int_equal(flen, lens[got]);
                for (size_t i = 0; i < flen; i++) assert_int_equal(frame[i], (uint8_t)(got * 31 + i));
                got++;
            }
            assert_int_equal(rc, 0);
            assert_int_equal(left, 0);
        }
        assert_int_equal(got, 3);
    }
}

static void test_deframe_limits(void **state)
{
    (void)state;
    es_rfc4571_t d;
    memset(&d, 0, sizeof d);
    const uint8_t empty_then_one[] = {0, 0, 0, 0, 0, 1, 0xAB};
    const uint8_t *in = empty_then_one, *frame;
    size_t left = sizeof empty_then_one, flen;
    assert_int_equal(es_rfc4571_next(&d, &in, &left, &frame, &flen), 1);
    assert_int_equal(flen, 1);
    assert_int_equal(frame[0], 0xAB);
    /* 1,501 bytes: refused as soon as the header is read. */
    const uint8_t big[] = {0x05, 0xDD, 1, 2, 3};
    in = big;
    left = sizeof big;
    assert_int_equal(es_rfc4571_next(&d, &in, &left, &frame, &flen), ES_E2BIG);
}

static void test_sniff(void **state)
{
    (void)state;
    const char *http[] = {"GET / HTTP/1.1\r\n", "POST /whip/live/a HTTP/1.1", "OPTIONS * HTTP/1.1",
                          "DELETE /x", "PATCH /y"};
    for (size_t i = 0; i < sizeof http / sizeof http[0]; i++)
        assert_int_equal(es_tcp_sniff((const uint8_t *)http[i], strlen(http[i])), ES_SNIFF_HTTP);
    const uint8_t tls[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03};
    assert_int_equal(es_tcp_sniff(tls, sizeof tls), ES_SNIFF_TLS);
    assert_int_equal(es_tcp_sniff(tls, 1), ES_SNIFF_MORE);
    uint8_t stun[32];
    size_t n = framed_stun(stun);
    assert_int_equal(es_tcp_sniff(stun, n), ES_SNIFF_STUN);
    for (size_t i = 0; i < ES_TCP_SNIFF_BYTES; i++) assert_int_equal(es_tcp_sniff(stun, i), ES_SNIFF_MORE);
    /* Not a Binding request, a bad cookie, a frame length STUN cannot have, lower case, junk. */
    uint8_t resp[32];
    framed_stun(resp);
    resp[3] = 0x11; /* 0x0111: a Binding error response */
    assert_int_equal(es_tcp_sniff(resp, n), ES_SNIFF_UNKNOWN);
    framed_stun(resp);
    resp[9] = 0x43;
    assert_int_equal(es_tcp_sniff(resp, n), ES_SNIFF_UNKNOWN);
    const uint8_t short_frame[] = {0x00, 0x10};
    assert_int_equal(es_tcp_sniff(short_frame, 2), ES_SNIFF_UNKNOWN);
    assert_int_equal(es_tcp_sniff((const uint8_t *)"get / HTTP/1.1", 14), ES_SNIFF_UNKNOWN);
    assert_int_equal(es_tcp_sniff((const uint8_t *)"GE", 2), ES_SNIFF_MORE);
    assert_int_equal(es_tcp_sniff((const uint8_t *)"GE\r", 3), ES_SNIFF_UNKNOWN);
    assert_int_equal(es_tcp_sniff((const uint8_t *)"ABCDEFGHIJKL", 12), ES_SNIFF_UNKNOWN);
    const uint8_t ssh[] = "SSH-2.0-OpenSSH";
    assert_int_equal(es_tcp_sniff(ssh, sizeof ssh - 1), ES_SNIFF_UNKNOWN);
    assert_string_equal(es_tcp_sniff_name(ES_SNIFF_STUN), "stun");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deframe_split_everywhere),
        cmocka_unit_test(test_deframe_limits),
        cmocka_unit_test(test_sniff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
