/* Unit tests for src/rtmp/amf0.c: encode/decode round trips of every supported type, the
 * connect commands FFmpeg (publishing and playing, captured from ffmpeg 5.1 on loopback) and
 * OBS (librtmp's SendConnectPacket field order) send, truncated input at every length, nesting
 * and node limits, unsupported markers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/amf0.h"
#include "estuary/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ffmpeg -f flv rtmp://127.0.0.1:39351/live?token=x/test?key=abc */
static const uint8_t ffmpeg_publish_connect[] = {
    0x02, 0x00, 0x07, 0x63, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x00, 0x3f, 0xf0, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x03, 0x61, 0x70, 0x70, 0x02, 0x00, 0x0c, 0x6c, 0x69, 0x76, 0x65,
    0x3f, 0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x3d, 0x78, 0x00, 0x04, 0x74, 0x79, 0x70, 0x65, 0x02, 0x00,
    0x0a, 0x6e, 0x6f, 0x6e, 0x70, 0x72, 0x69, 0x76, 0x61, 0x74, 0x65, 0x00, 0x08, 0x66, 0x6c, 0x61,
    0x73, 0x68, 0x56, 0x65, 0x72, 0x02, 0x00, 0x24, 0x46, 0x4d, 0x4c, 0x45, 0x2f, 0x33, 0x2e, 0x30,
    0x20, 0x28, 0x63, 0x6f, 0x6d, 0x70, 0x61, 0x74, 0x69, 0x62, 0x6c, 0x65, 0x3b, 0x20, 0x4c, 0x61,
    0x76, 0x66, 0x35, 0x39, 0x2e, 0x32, 0x37, 0x2e, 0x31, 0x30, 0x30, 0x29, 0x00, 0x05, 0x74, 0x63,
    0x55, 0x72, 0x6c, 0x02, 0x00, 0x23, 0x72, 0x74, 0x6d, 0x70, 0x3a, 0x2f, 0x2f, 0x31, 0x32, 0x37,
    0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x33, 0x39, 0x33, 0x35, 0x31, 0x2f, 0x6c, 0x69, 0x76,
    0x65, 0x3f, 0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x3d, 0x78, 0x00, 0x00, 0x09,
};

/* ffprobe rtmp://127.0.0.1:39353/live/test */
static const uint8_t ffmpeg_play_connect[] = {
    0x02, 0x00, 0x07, 0x63, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x00, 0x3f, 0xf0, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x03, 0x61, 0x70, 0x70, 0x02, 0x00, 0x04, 0x6c, 0x69, 0x76, 0x65,
    0x00, 0x08, 0x66, 0x6c, 0x61, 0x73, 0x68, 0x56, 0x65, 0x72, 0x02, 0x00, 0x0d, 0x4c, 0x4e, 0x58,
    0x20, 0x39, 0x2c, 0x30, 0x2c, 0x31, 0x32, 0x34, 0x2c, 0x32, 0x00, 0x05, 0x74, 0x63, 0x55, 0x72,
    0x6c, 0x02, 0x00, 0x1b, 0x72, 0x74, 0x6d, 0x70, 0x3a, 0x2f, 0x2f, 0x31, 0x32, 0x37, 0x2e, 0x30,
    0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x33, 0x39, 0x33, 0x35, 0x33, 0x2f, 0x6c, 0x69, 0x76, 0x65, 0x00,
    0x04, 0x66, 0x70, 0x61, 0x64, 0x01, 0x00, 0x00, 0x0c, 0x63, 0x61, 0x70, 0x61, 0x62, 0x69, 0x6c,
    0x69, 0x74, 0x69, 0x65, 0x73, 0x00, 0x40, 0x2e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b,
    0x61, 0x75, 0x64, 0x69, 0x6f, 0x43, 0x6f, 0x64, 0x65, 0x63, 0x73, 0x00, 0x40, 0xaf, 0xce, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x76, 0x69, 0x64, 0x65, 0x6f, 0x43, 0x6f, 0x64, 0x65, 0x63,
    0x73, 0x00, 0x40, 0x6f, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x76, 0x69, 0x64, 0x65,
    0x6f, 0x46, 0x75, 0x6e, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x00, 0x3f, 0xf0, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x09,
};

/* OBS Studio (librtmp): app, type, flashVer, swfUrl, tcUrl when publishing. */
static const uint8_t obs_connect[] = {
    0x02, 0x00, 0x07, 0x63, 0x6f, 0x6e, 0x6e, 0x65, 0x63, 0x74, 0x00, 0x3f, 0xf0, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x03, 0x61, 0x70, 0x70, 0x02, 0x00, 0x04, 0x6c, 0x69, 0x76, 0x65,
    0x00, 0x04, 0x74, 0x79, 0x70, 0x65, 0x02, 0x00, 0x0a, 0x6e, 0x6f, 0x6e, 0x70, 0x72, 0x69, 0x76,
    0x61, 0x74, 0x65, 0x00, 0x08, 0x66, 0x6c, 0x61, 0x73, 0x68, 0x56, 0x65, 0x72, 0x02, 0x00, 0x1f,
    0x46, 0x4d, 0x4c, 0x45, 0x2f, 0x33, 0x2e, 0x30, 0x20, 0x28, 0x63, 0x6f, 0x6d, 0x70, 0x61, 0x74,
    0x69, 0x62, 0x6c, 0x65, 0x3b, 0x20, 0x46, 0x4d, 0x53, 0x63, 0x2f, 0x31, 0x2e, 0x30, 0x29, 0x00,
    0x06, 0x73, 0x77, 0x66, 0x55, 0x72, 0x6c, 0x02, 0x00, 0x18, 0x72, 0x74, 0x6d, 0x70, 0x3a, 0x2f,
    0x2f, 0x31, 0x39, 0x32, 0x2e, 0x31, 0x36, 0x38, 0x2e, 0x31, 0x2e, 0x31, 0x30, 0x2f, 0x6c, 0x69,
    0x76, 0x65, 0x00, 0x05, 0x74, 0x63, 0x55, 0x72, 0x6c, 0x02, 0x00, 0x18, 0x72, 0x74, 0x6d, 0x70,
    0x3a, 0x2f, 0x2f, 0x31, 0x39, 0x32, 0x2e, 0x31, 0x36, 0x38, 0x2e, 0x31, 0x2e, 0x31, 0x30, 0x2f,
    0x6c, 0x69, 0x76, 0x65, 0x00, 0x00, 0x09,
};

static es_amf0_doc_t doc, doc2;

static bool str_is(const es_amf0_node_t *n, const char *s) { return es_amf0_is_string(n, s); }

static void test_ffmpeg_publish_connect(void **state)
{
    assert_int_equal(es_amf0_decode(&doc, ffmpeg_publish_connect, sizeof ffmpeg_publish_connect),
                     0);
    assert_int_equal(doc.top, 3);
    assert_true(str_is(es_amf0_at(&doc, 0), "connect"));
    const es_amf0_node_t *txn = es_amf0_at(&doc, 1);
    assert_int_equal(txn->type, ES_AMF0_NUMBER);
    assert_true(txn->number == 1.0);
    const es_amf0_node_t *obj = es_amf0_at(&doc, 2);
    assert_int_equal(obj->type, ES_AMF0_OBJECT);
    assert_true(str_is(es_amf0_get(&doc, obj, "app"), "live?token=x"));
    assert_true(str_is(es_amf0_get(&doc, obj, "type"), "nonprivate"));
    assert_true(str_is(es_amf0_get(&doc, obj, "flashVer"), "FMLE/3.0 (compatible; Lavf59.27.100)"));
    assert_true(str_is(es_amf0_get(&doc, obj, "tcUrl"), "rtmp://127.0.0.1:39351/live?token=x"));
    assert_null(es_amf0_get(&doc, obj, "objectEncoding"));
    assert_null(es_amf0_at(&doc, 3));
}

static void test_ffmpeg_play_connect(void **state)
{
    assert_int_equal(es_amf0_decode(&doc, ffmpeg_play_connect, sizeof ffmpeg_play_connect), 0);
    const es_amf0_node_t *obj = es_amf0_at(&doc, 2);
    assert_true(str_is(es_amf0_get(&doc, obj, "flashVer"), "LNX 9,0,124,2"));
    const es_amf0_node_t *fpad = es_amf0_get(&doc, obj, "fpad");
    assert_int_equal(fpad->type, ES_AMF0_BOOLEAN);
    assert_false(fpad->boolean);
    assert_true(es_amf0_get(&doc, obj, "capabilities")->number == 15.0);
    assert_true(es_amf0_get(&doc, obj, "audioCodecs")->number == 4071.0);
    assert_true(es_amf0_get(&doc, obj, "videoCodecs")->number == 252.0);
    assert_true(es_amf0_get(&doc, obj, "videoFunction")->number == 1.0);
    /* Members in order. */
    const char *keys[] = {"app", "flashVer", "tcUrl", "fpad", "capabilities", "audioCodecs",
                          "videoCodecs", "videoFunction"};
    const es_amf0_node_t *c = es_amf0_child(&doc, obj, 0);
    for (size_t i = 0; i < 8; i++, c = es_amf0_next(&doc, c)) {
        assert_non_null(c);
        assert_int_equal(c->key_len, strlen(keys[i]));
        assert_memory_equal(c->key, keys[i], c->key_len);
    }
    assert_null(c);
}

static void test_obs_connect(void **state)
{
    assert_int_equal(es_amf0_decode(&doc, obs_connect, sizeof obs_connect), 0);
    const es_amf0_node_t *obj = es_amf0_at(&doc, 2);
    assert_true(str_is(es_amf0_get(&doc, obj, "app"), "live"));
    assert_true(str_is(es_amf0_get(&doc, obj, "flashVer"), "FMLE/3.0 (compatible; FMSc/1.0)"));
    assert_true(str_is(es_amf0_get(&doc, obj, "swfUrl"), "rtmp://192.168.1.10/live"));
    assert_true(str_is(es_amf0_get(&doc, obj, "tcUrl"), "rtmp://192.168.1.10/live"));
}

/* decode(buf) then encode reproduces buf exactly. */
static void check_reencode(const uint8_t *buf, size_t len)
{
    assert_int_equal(es_amf0_decode(&doc, buf, len), 0);
    uint8_t *out = malloc(len + 16);
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, out, len + 16);
    for (const es_amf0_node_t *n = es_amf0_at(&doc, 0); n; n = es_amf0_next(&doc, n))
        es_amf0_put_node(&w, &doc, n);
    assert_int_equal(es_amf0_writer_len(&w), (int)len);
    assert_memory_equal(out, buf, len);
    free(out);
}

static void test_real_commands_reencode(void **state)
{
    check_reencode(ffmpeg_publish_connect, sizeof ffmpeg_publish_connect);
    check_reencode(ffmpeg_play_connect, sizeof ffmpeg_play_connect);
    check_reencode(obs_connect, sizeof obs_connect);
}

static void test_every_type_round_trip(void **state)
{
    static uint8_t buf[200000];
    static char big[70000];
    memset(big, 'x', sizeof big);
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, buf, sizeof buf);
    es_amf0_put_string(&w, "onStatus");
    es_amf0_put_number(&w, -0.5);
    es_amf0_put_null(&w);
    es_amf0_put_undefined(&w);
    es_amf0_put_bool(&w, true);
    es_amf0_put_date(&w, 1700000000000.0, -60);
    es_amf0_put_string_n(&w, big, sizeof big); /* long string */
    es_amf0_put_object_begin(&w);
    es_amf0_put_prop_string(&w, "level", "status");
    es_amf0_put_prop_number(&w, "n", 3);
    es_amf0_put_prop_bool(&w, "b", false);
    es_amf0_put_key(&w, "arr", 3);
    es_amf0_put_strict_array_begin(&w, 2);
    es_amf0_put_number(&w, 1);
    es_amf0_put_ecma_array_begin(&w, 1);
    es_amf0_put_prop_string(&w, "k", "");
    es_amf0_put_object_end(&w);
    es_amf0_put_object_end(&w);
    es_amf0_put_number(&w, INFINITY);
    int len = es_amf0_writer_len(&w);
    assert_true(len > 70000);
    check_reencode(buf, (size_t)len);

    const es_amf0_node_t *n = es_amf0_at(&doc, 0);
    assert_true(str_is(n, "onStatus"));
    assert_true((n = es_amf0_next(&doc, n))->number == -0.5);
    assert_int_equal((n = es_amf0_next(&doc, n))->type, ES_AMF0_NULL);
    assert_int_equal((n = es_amf0_next(&doc, n))->type, ES_AMF0_UNDEFINED);
    assert_true((n = es_amf0_next(&doc, n))->boolean);
    n = es_amf0_next(&doc, n);
    assert_int_equal(n->type, ES_AMF0_DATE);
    assert_true(n->number == 1700000000000.0);
    assert_int_equal(n->tz, -60);
    n = es_amf0_next(&doc, n);
    assert_int_equal(n->type, ES_AMF0_LONG_STRING);
    assert_int_equal(n->str_len, sizeof big);
    const es_amf0_node_t *obj = es_amf0_next(&doc, n);
    assert_true(str_is(es_amf0_get(&doc, obj, "level"), "status"));
    assert_false(es_amf0_get(&doc, obj, "b")->boolean);
    const es_amf0_node_t *arr = es_amf0_get(&doc, obj, "arr");
    assert_int_equal(arr->type, ES_AMF0_STRICT_ARRAY);
    assert_int_equal(arr->count, 2);
    const es_amf0_node_t *ecma = es_amf0_child(&doc, arr, 1);
    assert_int_equal(ecma->type, ES_AMF0_ECMA_ARRAY);
    assert_true(str_is(es_amf0_get(&doc, ecma, "k"), ""));
    assert_null(es_amf0_child(&doc, arr, 2));
    assert_true(isinf(es_amf0_next(&doc, obj)->number));
    assert_int_equal(doc.top, 9);

    /* decode_one stops after the first value. */
    size_t used;
    assert_int_equal(es_amf0_decode_one(&doc2, buf, (size_t)len, &used), 0);
    assert_int_equal(used, 3 + 8);
    assert_int_equal(doc2.top, 1);
}

static void test_truncated(void **state)
{
    const uint8_t *cases[] = {ffmpeg_publish_connect, ffmpeg_play_connect, obs_connect};
    const size_t lens[] = {sizeof ffmpeg_publish_connect, sizeof ffmpeg_play_connect,
                           sizeof obs_connect};
    for (size_t c = 0; c < 3; c++) {
        /* Cut anywhere inside the command object: malformed. Cuts between the top-level values
         * (after "connect" and after the transaction id) are whole documents. */
        for (size_t cut = 0; cut < lens[c]; cut++) {
            int rc = es_amf0_decode(&doc, cases[c], cut);
            if (cut == 0 || cut == 10 || cut == 19) assert_int_equal(rc, 0);
            else assert_int_equal(rc, ES_EPROTO);
        }
    }
    /* Declared lengths beyond the buffer. */
    const uint8_t long_str[] = {0x0c, 0xff, 0xff, 0xff, 0xff, 'a'};
    assert_int_equal(es_amf0_decode(&doc, long_str, sizeof long_str), ES_EPROTO);
    const uint8_t key[] = {0x03, 0x00, 0x05, 'a', 'b'};
    assert_int_equal(es_amf0_decode(&doc, key, sizeof key), ES_EPROTO);
    const uint8_t strict[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x05};
    assert_int_equal(es_amf0_decode(&doc, strict, sizeof strict), ES_EPROTO);
    const uint8_t ecma_no_end[] = {0x08, 0, 0, 0, 1, 0, 1, 'a', 0x05};
    assert_int_equal(es_amf0_decode(&doc, ecma_no_end, sizeof ecma_no_end), ES_EPROTO);
}

static void test_unsupported_markers(void **state)
{
    const uint8_t markers[] = {0x04, 0x07, 0x09, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0xff};
    for (size_t i = 0; i < sizeof markers; i++) {
        uint8_t b[8] = {markers[i], 0, 1, 0, 0, 0, 0, 0};
        assert_int_equal(es_amf0_decode(&doc, b, sizeof b), ES_EPROTO);
    }
}

static void test_limits(void **state)
{
    /* Nesting: ES_AMF0_MAX_DEPTH levels of objects decode, one more does not. */
    uint8_t buf[256];
    for (int depth = ES_AMF0_MAX_DEPTH; depth <= ES_AMF0_MAX_DEPTH + 1; depth++) {
        size_t n = 0;
        buf[n++] = 0x03;
        for (int i = 0; i < depth; i++) {
            buf[n++] = 0, buf[n++] = 1, buf[n++] = 'o';
            buf[n++] = 0x03;
        }
        for (int i = 0; i <= depth; i++) buf[n++] = 0, buf[n++] = 0, buf[n++] = 0x09;
        int rc = es_amf0_decode(&doc, buf, n);
        assert_int_equal(rc, depth == ES_AMF0_MAX_DEPTH ? 0 : ES_E2BIG);
        if (rc == 0) check_reencode(buf, n);
    }
    /* Node count: a strict array of nulls. */
    uint8_t many[5 + ES_AMF0_MAX_NODES];
    many[0] = 0x0a;
    uint32_t count = ES_AMF0_MAX_NODES;
    many[1] = 0, many[2] = 0, many[3] = (uint8_t)(count >> 8), many[4] = (uint8_t)count;
    memset(many + 5, 0x05, ES_AMF0_MAX_NODES);
    assert_int_equal(es_amf0_decode(&doc, many, sizeof many), ES_E2BIG);
    count = ES_AMF0_MAX_NODES - 1;
    many[3] = (uint8_t)(count >> 8), many[4] = (uint8_t)count;
    assert_int_equal(es_amf0_decode(&doc, many, sizeof many - 1), 0);
    assert_int_equal(doc.n_nodes, ES_AMF0_MAX_NODES);
}

static void test_writer_overflow(void **state)
{
    uint8_t buf[16];
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, buf, sizeof buf);
    es_amf0_put_string(&w, "_result");   /* 10 bytes */
    es_amf0_put_number(&w, 1);          /* 9 more: does not fit */
    assert_int_equal(es_amf0_writer_len(&w), ES_E2BIG);
    es_amf0_put_null(&w);               /* sticky */
    assert_int_equal(es_amf0_writer_len(&w), ES_E2BIG);
    es_amf0_writer_init(&w, buf, sizeof buf);
    es_amf0_put_object_begin(&w);
    es_amf0_put_prop_number(&w, "a", 2);
    es_amf0_put_object_end(&w);
    assert_int_equal(es_amf0_writer_len(&w), 1 + 3 + 9 + 3);
    const uint8_t want[] = {0x03, 0, 1, 'a', 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x09};
    assert_memory_equal(buf, want, sizeof want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ffmpeg_publish_connect),
        cmocka_unit_test(test_ffmpeg_play_connect),
        cmocka_unit_test(test_obs_connect),
        cmocka_unit_test(test_real_commands_reencode),
        cmocka_unit_test(test_every_type_round_trip),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_unsupported_markers),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_writer_overflow),
    };
    return cmocka_run_group_tests_name("amf0", tests, NULL, NULL);
}
