/* Unit tests for src/http/ws_message.c: the WebSocket signaling messages of docs/websocket.md
 * (the browser's own RTCSessionDescription and RTCIceCandidate shapes, Flussonic's extra
 * fields), every refusal with its reason, the size limit, and the per-socket message bucket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/ws_signal.h"

#include <stdlib.h>
#include <string.h>

static int parse(const char *text, es_ws_message_t *m, char *err)
{
    return es_ws_message_parse(text, strlen(text), m, err, 200);
}

static void test_descriptions(void **state)
{
    (void)state;
    es_ws_message_t m;
    char err[200];
    /* What JSON.stringify(pc.localDescription) sends. */
    assert_int_equal(parse("{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\\r\\n\"}",
                           &m, err), 0);
    assert_int_equal(m.type, ES_WS_OFFER);
    assert_string_equal(m.sdp, "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n");
    assert_int_equal(m.sdp_len, strlen(m.sdp));
    es_ws_message_clear(&m);
    assert_null(m.sdp);
    assert_int_equal(parse("{\"sdp\":\"v=0\\r\\n\",\"type\":\"answer\",\"extra\":[1]}", &m, err), 0);
    assert_int_equal(m.type, ES_WS_ANSWER);
    assert_string_equal(m.sdp, "v=0\r\n");
    es_ws_message_clear(&m);
    es_ws_message_clear(&m); /* idempotent */
}

static void test_candidates(void **state)
{
    (void)state;
    es_ws_message_t m;
    char err[200];
    /* RTCIceCandidate.toJSON() with Flussonic's label/id/stream_id additions. */
    assert_int_equal(parse("{\"type\":\"candidate\",\"candidate\":{\"candidate\":\"candidate:1 1 "
                           "udp 2122260223 192.0.2.1 54321 typ host\",\"sdpMid\":\"0\","
                           "\"sdpMLineIndex\":0,\"usernameFragment\":null},\"label\":0,"
                           "\"id\":\"0\",\"stream_id\":\"local1\"}", &m, err), 0);
    assert_int_equal(m.type, ES_WS_CANDIDATE);
    assert_false(m.end_of_candidates);
    assert_string_equal(m.candidate, "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host");
    assert_int_equal(parse("{\"type\":\"candidate\",\"candidate\":null}", &m, err), 0);
    assert_true(m.end_of_candidates);
    assert_int_equal(parse("{\"type\":\"candidate\"}", &m, err), 0);
    assert_true(m.end_of_candidates);
    /* Chrome's end of candidates: an empty candidate string. */
    assert_int_equal(parse("{\"type\":\"candidate\",\"candidate\":{\"candidate\":\"\","
                           "\"sdpMid\":\"0\"}}", &m, err), 0);
    assert_true(m.end_of_candidates);
    assert_int_equal(parse("{\"type\":\"candidate\",\"candidate\":42}", &m, err), ES_EPROTO);
    assert_non_null(strstr(err, "RTCIceCandidate"));
    assert_int_equal(parse("{\"type\":\"ping\"}", &m, err), 0);
    assert_int_equal(m.type, ES_WS_PING);
    assert_int_equal(parse("{\"type\":\"pong\"}", &m, err), 0);
    assert_int_equal(m.type, ES_WS_PONG);
    assert_string_equal(es_ws_type_name(ES_WS_PONG), "pong");
    assert_string_equal(es_ws_type_name(0), "?");
}

static void test_refusals(void **state)
{
    (void)state;
    es_ws_message_t m;
    char err[200];
    static const struct {
        const char *text, *reason;
    } bad[] = {
        {"{\"type\":\"offer\"", "not JSON"},
        {"not json at all", "not JSON"},
        {"[\"offer\"]", "JSON object"},
        {"\"offer\"", "not JSON"},             /* jansson: a bare string is not a document */
        {"{\"sdp\":\"v=0\"}", "no \"type\""},
        {"{\"type\":7}", "no \"type\""},
        {"{\"type\":\"bye\"}", "unknown message type \"bye\""},
        {"{\"type\":\"offer\"}", "non-empty \"sdp\""},
        {"{\"type\":\"answer\",\"sdp\":\"\"}", "non-empty \"sdp\""},
        {"{\"type\":\"offer\",\"sdp\":{}}", "non-empty \"sdp\""},
        {"{\"type\":\"offer\",\"sdp\":\"a\\u0000b\"}", "not JSON"}, /* no NUL inside strings */
        {"{\"type\":\"offer\",\"type\":\"answer\",\"sdp\":\"v=0\"}", "not JSON"}, /* duplicates */
        {"{\"type\":\"ping\"} {}", "not JSON"}, /* one value, nothing after it */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse(bad[i].text, &m, err);
        if (rc != ES_EPROTO || !strstr(err, bad[i].reason))
            fail_msg("'%s': rc %d, err '%s', wanted '%s'", bad[i].text, rc, err, bad[i].reason);
        assert_null(m.sdp);
        assert_int_equal(m.type, 0);
    }
    /* Size: 64 KiB is the limit of a message; an SDP over ES_SDP_MAX_TEXT inside it cannot be,
     * so the message limit is what a client meets. */
    size_t n = ES_WS_MAX_MESSAGE + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    assert_int_equal(es_ws_message_parse(big, n, &m, err, sizeof err), ES_E2BIG);
    assert_non_null(strstr(err, "65537 bytes"));
    /* The largest message that fits is parsed. */
    static const char head[] = "{\"type\":\"offer\",\"sdp\":\"";
    n = ES_WS_MAX_MESSAGE;
    memcpy(big, head, sizeof head - 1);
    memset(big + sizeof head - 1, 'a', n - (sizeof head - 1) - 2);
    memcpy(big + n - 2, "\"}", 2);
    assert_int_equal(es_ws_message_parse(big, n, &m, err, sizeof err), 0);
    assert_int_equal(m.sdp_len, n - (sizeof head - 1) - 2);
    es_ws_message_clear(&m);
    free(big);
}

static void test_bucket(void **state)
{
    (void)state;
    es_ws_bucket_t b = {0};
    uint64_t t = 1000000;
    for (int i = 0; i < ES_WS_BURST; i++) assert_true(es_ws_bucket_take(&b, t));
    assert_false(es_ws_bucket_take(&b, t));
    /* ES_WS_PER_S a second after the burst: one every 50 ms. */
    t += 1000000 / ES_WS_PER_S;
    assert_true(es_ws_bucket_take(&b, t));
    assert_false(es_ws_bucket_take(&b, t));
    int ok = 0;
    for (int i = 0; i < 10 * ES_WS_PER_S; i++) {
        t += 10000; /* 100 messages a second for 2 s */
        ok += es_ws_bucket_take(&b, t);
    }
    assert_in_range(ok, 2 * ES_WS_PER_S - 1, 2 * ES_WS_PER_S + 1);
    /* A quiet minute refills to the burst, not past it. */
    t += 60000000;
    for (int i = 0; i < ES_WS_BURST; i++) assert_true(es_ws_bucket_take(&b, t));
    assert_false(es_ws_bucket_take(&b, t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptions),
        cmocka_unit_test(test_candidates),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
