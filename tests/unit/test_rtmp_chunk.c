/* Unit tests for src/rtmp/chunk.c: every header format and basic header size, timestamps
 * (fmt 0 absolute, deltas, fmt 3 reuse, 32-bit wrap), extended timestamps with and without the
 * fmt 3 repeat, Set Chunk Size mid-stream, interleaved chunk streams, Abort, limits, and the
 * writer->reader round trip at many chunk sizes and split points. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/rtmp_chunk.h"
#include "estuary/rtmp_session.h"

#include <stdlib.h>
#include <string.h>

/* Chunk bytes built by hand. */
typedef struct wire {
    uint8_t b[1 << 17];
    size_t n;
} wire_t;

static void put(wire_t *w, const void *p, size_t n)
{
    assert_true(w->n + n <= sizeof w->b);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void put8(wire_t *w, uint32_t v)
{
    uint8_t b = (uint8_t)v;
    put(w, &b, 1);
}

static void put24(wire_t *w, uint32_t v)
{
    put8(w, v >> 16);
    put8(w, v >> 8);
    put8(w, v);
}

static void put32(wire_t *w, uint32_t v)
{
    put8(w, v >> 24);
    put24(w, v);
}

static void basic(wire_t *w, unsigned fmt, uint32_t csid)
{
    if (csid < 64) {
        put8(w, fmt << 6 | csid);
    } else if (csid < 320) {
        put8(w, fmt << 6);
        put8(w, csid - 64);
    } else {
        put8(w, fmt << 6 | 1);
        put8(w, (csid - 64) & 0xff);
        put8(w, (csid - 64) >> 8);
    }
}

/* fmt 0 header; ts >= 0xffffff writes the extended field. */
static void fmt0(wire_t *w, uint32_t csid, uint32_t ts, uint32_t len, uint8_t type, uint32_t msid)
{
    basic(w, 0, csid);
    put24(w, ts >= 0xffffff ? 0xffffff : ts);
    put24(w, len);
    put8(w, type);
    put8(w, msid), put8(w, msid >> 8), put8(w, msid >> 16), put8(w, msid >> 24);
    if (ts >= 0xffffff) put32(w, ts);
}

static void fmt1(wire_t *w, uint32_t csid, uint32_t delta, uint32_t len, uint8_t type)
{
    basic(w, 1, csid);
    put24(w, delta >= 0xffffff ? 0xffffff : delta);
    put24(w, len);
    put8(w, type);
    if (delta >= 0xffffff) put32(w, delta);
}

static void fmt2(wire_t *w, uint32_t csid, uint32_t delta)
{
    basic(w, 2, csid);
    put24(w, delta >= 0xffffff ? 0xffffff : delta);
    if (delta >= 0xffffff) put32(w, delta);
}

static void body(wire_t *w, uint8_t seed, size_t n)
{
    for (size_t i = 0; i < n; i++) put8(w, (uint8_t)(seed + i));
}

static bool body_ok(const es_rtmp_msg_t *m, uint8_t seed)
{
    for (size_t i = 0; i < m->len; i++)
        if (m->payload[i] != (uint8_t)(seed + i)) return false;
    return true;
}

/* Received messages with copied payloads. */
typedef struct got {
    es_rtmp_msg_t m[64];
    uint8_t *data[64];
    size_t n;
    int rc;          /* the first error, 0 */
} got_t;

static void got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++) free(g->data[i]);
    memset(g, 0, sizeof *g);
}

/* Feeds w in pieces of `split` bytes (0: all at once). */
static void feed(es_rtmp_chunk_reader_t *r, const uint8_t *b, size_t n, size_t split, got_t *g)
{
    size_t off = 0;
    while (off < n && g->rc == 0) {
        size_t piece = split && n - off > split ? split : n - off;
        size_t pos = 0;
        while (pos < piece) {
            es_rtmp_msg_t m;
            size_t used = 99999;
            int rc = es_rtmp_chunk_feed(r, b + off + pos, piece - pos, &used, &m);
            assert_true(used <= piece - pos);
            pos += used;
            if (rc < 0) {
                g->rc = rc;
                return;
            }
            if (rc == 0) {
                assert_int_equal(pos, piece);
                break;
            }
            assert_true(g->n < 64);
            g->m[g->n] = m;
            g->data[g->n] = malloc(m.len + 1);
            memcpy(g->data[g->n], m.payload, m.len);
            g->m[g->n].payload = g->data[g->n];
            g->n++;
        }
        off += piece;
    }
}

static void test_fmt0_single_no_copy(void **state)
{
    wire_t *w = calloc(1, sizeof *w);
    fmt0(w, 3, 1000, 10, ES_RTMP_MSG_COMMAND_AMF0, 0x04030201);
    body(w, 1, 10);
    es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
    es_rtmp_msg_t m;
    size_t used;
    assert_int_equal(es_rtmp_chunk_feed(r, w->b, w->n, &used, &m), 1);
    assert_int_equal(used, w->n);
    assert_int_equal(m.csid, 3);
    assert_int_equal(m.type, ES_RTMP_MSG_COMMAND_AMF0);
    assert_int_equal(m.stream_id, 0x04030201); /* little-endian on the wire */
    assert_int_equal(m.timestamp, 1000);
    assert_int_equal(m.len, 10);
    assert_ptr_equal(m.payload, w->b + 12); /* whole message in one chunk: no copy */
    assert_true(body_ok(&m, 1));
    assert_int_equal(es_rtmp_chunk_feed(r, w->b, 0, &used, &m), 0);
    es_rtmp_chunk_reader_free(r);
    free(w);
}

static void test_all_formats_and_deltas(void **state)
{
    wire_t *w = calloc(1, sizeof *w);
    fmt0(w, 4, 1000, 5, ES_RTMP_MSG_AUDIO, 1);
    body(w, 10, 5);
    fmt1(w, 4, 20, 6, ES_RTMP_MSG_VIDEO);
    body(w, 20, 6);
    fmt2(w, 4, 30);          /* same length and type */
    body(w, 30, 6);
    basic(w, 3, 4);          /* same length, type and delta */
    body(w, 40, 6);
    /* fmt 3 after fmt 0 starts a message whose delta is the fmt 0 timestamp (5.3.1.2.4). */
    fmt0(w, 7, 100, 2, ES_RTMP_MSG_AUDIO, 1);
    body(w, 50, 2);
    basic(w, 3, 7);
    body(w, 60, 2);
    /* Timestamps wrap at 2^32. */
    fmt0(w, 8, 0xfffffff0u, 1, ES_RTMP_MSG_AUDIO, 1);
    body(w, 70, 1);
    fmt2(w, 8, 0x20);
    body(w, 80, 1);
    /* A zero-length message. */
    fmt0(w, 9, 5, 0, ES_RTMP_MSG_DATA_AMF0, 1);

    for (size_t split = 0; split < 4; split++) {
        es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
        got_t g = {0};
        feed(r, w->b, w->n, split, &g);
        assert_int_equal(g.rc, 0);
        assert_int_equal(g.n, 9);
        const uint32_t ts[] = {1000, 1020, 1050, 1080, 100, 200, 0xfffffff0u, 0x10, 5};
        const uint8_t seed[] = {10, 20, 30, 40, 50, 60, 70, 80, 0};
        const size_t len[] = {5, 6, 6, 6, 2, 2, 1, 1, 0};
        const uint8_t type[] = {8, 9, 9, 9, 8, 8, 8, 8, 18};
        for (size_t i = 0; i < 9; i++) {
            assert_int_equal(g.m[i].timestamp, ts[i]);
            assert_int_equal(g.m[i].len, len[i]);
            assert_int_equal(g.m[i].type, type[i]);
            assert_int_equal(g.m[i].stream_id, 1);
            assert_true(body_ok(&g.m[i], seed[i]));
        }
        got_free(&g);
        es_rtmp_chunk_reader_free(r);
    }
    free(w);
}

static void test_basic_header_sizes(void **state)
{
    const uint32_t csids[] = {2, 63, 64, 319, 320, 65599};
    wire_t *w = calloc(1, sizeof *w);
    for (size_t i = 0; i < 6; i++) {
        fmt0(w, csids[i], (uint32_t)i, 200, ES_RTMP_MSG_VIDEO, 1);
        body(w, (uint8_t)i, 128);
        basic(w, 3, csids[i]);
        body(w, (uint8_t)(i + 128), 72);
    }
    es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
    got_t g = {0};
    feed(r, w->b, w->n, 1, &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.n, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(g.m[i].csid, csids[i]);
        assert_int_equal(g.m[i].len, 200);
        assert_true(body_ok(&g.m[i], (uint8_t)i));
    }
    got_free(&g);
    es_rtmp_chunk_reader_free(r);
    free(w);
}

static void set_chunk_size(wire_t *w, uint32_t size)
{
    fmt0(w, 2, 0, 4, ES_RTMP_MSG_SET_CHUNK_SIZE, 0);
    put32(w, size);
}

static void test_chunk_size_changes(void **state)
{
    wire_t *w = calloc(1, sizeof *w);
    /* 300 bytes at 128: 128 + 128 + 44. */
    fmt0(w, 4, 0, 300, ES_RTMP_MSG_VIDEO, 1);
    body(w, 0, 128);
    basic(w, 3, 4);
    body(w, 128, 128);
    basic(w, 3, 4);
    body(w, 0, 44);
    set_chunk_size(w, 4096);
    fmt1(w, 4, 40, 300, ES_RTMP_MSG_VIDEO); /* one chunk now */
    body(w, 1, 300);
    set_chunk_size(w, 1);
    fmt1(w, 4, 40, 3, ES_RTMP_MSG_VIDEO);
    body(w, 2, 1);
    basic(w, 3, 4);
    body(w, 3, 1);
    basic(w, 3, 4);
    body(w, 4, 1);
    /* Back to 128, the 4-byte Set Chunk Size itself sent in 1-byte chunks. */
    fmt0(w, 2, 0, 4, ES_RTMP_MSG_SET_CHUNK_SIZE, 0);
    put8(w, 0), basic(w, 3, 2), put8(w, 0), basic(w, 3, 2), put8(w, 0), basic(w, 3, 2);
    put8(w, 128);
    /* A Set Chunk Size arriving between the chunks of another message applies to the rest. */
    fmt1(w, 4, 40, 200, ES_RTMP_MSG_VIDEO);
    body(w, 5, 128);
    set_chunk_size(w, 50);
    basic(w, 3, 4);
    body(w, 133, 50);
    basic(w, 3, 4);
    body(w, 183, 22);
    for (size_t split = 0; split < 3; split++) {
        es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
        got_t g = {0};
        feed(r, w->b, w->n, split * 7, &g);
        assert_int_equal(g.rc, 0);
        assert_int_equal(g.n, 8);
        assert_int_equal(g.m[0].len, 300);
        assert_int_equal(g.m[1].type, ES_RTMP_MSG_SET_CHUNK_SIZE);
        assert_int_equal(g.m[2].len, 300);
        assert_true(body_ok(&g.m[2], 1));
        assert_int_equal(g.m[2].timestamp, 40);
        assert_int_equal(g.m[4].len, 3);
        assert_int_equal(g.m[4].payload[0], 2);
        assert_int_equal(g.m[4].payload[2], 4);
        assert_int_equal(g.m[4].timestamp, 80);
        assert_int_equal(g.m[6].type, ES_RTMP_MSG_SET_CHUNK_SIZE);
        assert_int_equal(g.m[7].len, 200);
        assert_true(body_ok(&g.m[7], 5));
        assert_int_equal(es_rtmp_chunk_reader_chunk_size(r), 50);
        got_free(&g);
        es_rtmp_chunk_reader_free(r);
    }
    free(w);
}

static void test_bad_chunk_size(void **state)
{
    const uint32_t bad[] = {0, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < 3; i++) {
        wire_t *w = calloc(1, sizeof *w);
        set_chunk_size(w, bad[i]);
        es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
        got_t g = {0};
        feed(r, w->b, w->n, 0, &g);
        assert_int_equal(g.rc, ES_EPROTO);
        /* Dead afterwards. */
        es_rtmp_msg_t m;
        size_t used;
        assert_int_equal(es_rtmp_chunk_feed(r, w->b, w->n, &used, &m), ES_EPROTO);
        es_rtmp_chunk_reader_free(r);
        free(w);
    }
    /* The largest allowed and a too-short message. */
    wire_t *w = calloc(1, sizeof *w);
    set_chunk_size(w, 0x7fffffff);
    es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
    got_t g = {0};
    feed(r, w->b, w->n, 0, &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(es_rtmp_chunk_reader_chunk_size(r), 0x7fffffff);
    got_free(&g);
    es_rtmp_chunk_reader_free(r);
    w->n = 0;
    fmt0(w, 2, 0, 3, ES_RTMP_MSG_SET_CHUNK_SIZE, 0);
    body(w, 0, 3);
    r = es_rtmp_chunk_reader_new(0);
    feed(r, w->b, w->n, 0, &g);
    assert_int_equal(g.rc, ES_EPROTO);
    got_free(&g);
    es_rtmp_chunk_reader_free(r);
    free(w);
}

static void test_interleaved(void **state)
{
    wire_t *w = calloc(1, sizeof *w);
    fmt0(w, 4, 10, 300, ES_RTMP_MSG_AUDIO, 1);
    body(w, 0, 128);
    fmt0(w, 6, 20, 260, ES_RTMP_MSG_VIDEO, 1);
    body(w, 100, 128);
    basic(w, 3, 4);
    body(w, 128, 128);
    basic(w, 3, 6);
    body(w, 228, 128);
    basic(w, 3, 6); /* video completes first */
    body(w, 100, 4);
    basic(w, 3, 4);
    body(w, 0, 44);
    for (size_t split = 0; split < 20; split += 3) {
        es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
        got_t g = {0};
        feed(r, w->b, w->n, split, &g);
        assert_int_equal(g.rc, 0);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.m[0].csid, 6);
        assert_int_equal(g.m[0].len, 260);
        assert_int_equal(g.m[0].timestamp, 20);
        assert_true(body_ok(&g.m[0], 100));
        assert_int_equal(g.m[1].csid, 4);
        assert_int_equal(g.m[1].len, 300);
        assert_int_equal(g.m[1].timestamp, 10);
        assert_true(body_ok(&g.m[1], 0));
        got_free(&g);
        es_rtmp_chunk_reader_free(r);
    }
    free(w);
}

static void test_extended_timestamps(void **state)
{
    const uint32_t big = 0x01020304;
    for (int repeat = 0; repeat < 2; repeat++) {
        wire_t *w = calloc(1, sizeof *w);
        /* fmt 0 with extended timestamp, 300 bytes in three chunks. FFmpeg and OBS repeat the
         * extended timestamp after each fmt 3 basic header; Flash Player did not. */
        fmt0(w, 6, big, 300, ES_RTMP_MSG_VIDEO, 1);
        body(w, 0, 128);
        basic(w, 3, 6);
        if (repeat) put32(w, big);
        body(w, 128, 128);
        basic(w, 3, 6);
        if (repeat) put32(w, big);
        body(w, 0, 44);
        /* fmt 1 with an extended delta; then a fmt 3 new message reusing it. */
        fmt1(w, 6, 0x01000000, 2, ES_RTMP_MSG_VIDEO);
        body(w, 1, 2);
        basic(w, 3, 6);
        put32(w, 0x01000000); /* a new message always carries it */
        body(w, 2, 2);
        /* Back to small timestamps: fmt 2 without the extension. */
        fmt2(w, 6, 5);
        body(w, 3, 2);
        /* Exactly 0xffffff is extended too. */
        fmt0(w, 7, 0xffffff, 1, ES_RTMP_MSG_AUDIO, 1);
        body(w, 4, 1);
        for (size_t split = 0; split < 6; split++) {
            es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
            got_t g = {0};
            feed(r, w->b, w->n, split, &g);
            assert_int_equal(g.rc, 0);
            assert_int_equal(g.n, 5);
            assert_int_equal(g.m[0].timestamp, big);
            assert_int_equal(g.m[0].len, 300);
            assert_true(body_ok(&g.m[0], 0));
            assert_int_equal(g.m[1].timestamp, big + 0x01000000);
            assert_int_equal(g.m[2].timestamp, big + 0x02000000);
            assert_true(body_ok(&g.m[2], 2));
            assert_int_equal(g.m[3].timestamp, big + 0x02000005);
            assert_int_equal(g.m[4].timestamp, 0xffffff);
            es_rtmp_chunk_stats_t st = es_rtmp_chunk_reader_stats(r);
            assert_int_equal(st.ext_ts_absent, repeat ? 0 : 2);
            got_free(&g);
            es_rtmp_chunk_reader_free(r);
        }
        free(w);
    }
}

/* An omitted repeat where the chunk's remaining body is shorter than 4 bytes: the peeked bytes
 * hold the end of the body and the start of the next header. */
static void test_extended_absent_short_tail(void **state)
{
    wire_t *w = calloc(1, sizeof *w);
    fmt0(w, 6, 0x02000000, 130, ES_RTMP_MSG_VIDEO, 1);
    body(w, 0, 128);
    basic(w, 3, 6);
    body(w, 128, 2);
    fmt0(w, 4, 7, 3, ES_RTMP_MSG_AUDIO, 1);
    body(w, 9, 3);
    for (size_t split = 0; split < 5; split++) {
        es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
        got_t g = {0};
        feed(r, w->b, w->n, split, &g);
        assert_int_equal(g.rc, 0);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.m[0].len, 130);
        assert_true(body_ok(&g.m[0], 0));
        assert_int_equal(g.m[1].csid, 4);
        assert_int_equal(g.m[1].timestamp, 7);
        assert_true(body_ok(&g.m[1], 9));
        got_free(&g);
        es_rtmp_chunk_reader_free(r);
    }
    free(w);
}

static void test_abort(void **state)
{
    wire_t *w = calloc(1, sizeof *w);
    fmt0(w, 4, 0, 300, ES_RTMP_MSG_VIDEO, 1);
    body(w, 0, 128);
    fmt0(w, 2, 0, 4, ES_RTMP_MSG_ABORT, 0);
    put32(w, 4);
    fmt0(w, 4, 50, 3, ES_RTMP_MSG_VIDEO, 1);
    body(w, 7, 3);
    es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
    got_t g = {0};
    feed(r, w->b, w->n, 5, &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.m[0].type, ES_RTMP_MSG_ABORT);
    assert_int_equal(g.m[1].len, 3);
    assert_int_equal(g.m[1].timestamp, 50);
    assert_true(body_ok(&g.m[1], 7));
    assert_int_equal(es_rtmp_chunk_reader_stats(r).aborted, 1);
    got_free(&g);
    es_rtmp_chunk_reader_free(r);
    free(w);
}

static void test_limits(void **state)
{
    /* Over the cap. */
    wire_t *w = calloc(1, sizeof *w);
    fmt0(w, 4, 0, 1001, ES_RTMP_MSG_VIDEO, 1);
    es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(1000);
    got_t g = {0};
    feed(r, w->b, w->n, 0, &g);
    assert_int_equal(g.rc, ES_E2BIG);
    es_rtmp_chunk_reader_free(r);
    /* Exactly the cap is fine. */
    w->n = 0;
    fmt0(w, 4, 0, 1000, ES_RTMP_MSG_VIDEO, 1);
    for (int i = 0; i < 7; i++) {
        body(w, 0, 128);
        basic(w, 3, 4);
    }
    body(w, 0, 104);
    r = es_rtmp_chunk_reader_new(1000);
    g.rc = 0;
    feed(r, w->b, w->n, 0, &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.n, 1);
    got_free(&g);
    es_rtmp_chunk_reader_free(r);
    /* A continuation on a chunk stream never opened with fmt 0. */
    const uint8_t unknown[] = {0x45, 0, 0, 1, 0, 0, 1, 8, 0xaa};
    r = es_rtmp_chunk_reader_new(0);
    feed(r, unknown, sizeof unknown, 0, &g);
    assert_int_equal(g.rc, ES_EPROTO);
    es_rtmp_chunk_reader_free(r);
    /* Too many chunk streams. */
    w->n = 0;
    for (uint32_t c = 0; c <= ES_RTMP_MAX_CHUNK_STREAMS; c++) fmt0(w, 2 + c, 0, 0, 8, 1);
    r = es_rtmp_chunk_reader_new(0);
    g.rc = 0;
    feed(r, w->b, w->n, 0, &g);
    assert_int_equal(g.rc, ES_E2BIG);
    assert_int_equal(g.n, ES_RTMP_MAX_CHUNK_STREAMS);
    got_free(&g);
    es_rtmp_chunk_reader_free(r);
    free(w);
}

static void test_writer_bytes(void **state)
{
    uint8_t payload[130];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)i;
    es_rtmp_msg_t m = {.csid = 6, .type = 9, .stream_id = 1, .timestamp = 0x01000000,
                       .payload = payload, .len = 130};
    uint8_t out[200];
    size_t want = es_rtmp_chunk_write_size(6, 0x01000000, 130, 128);
    assert_int_equal(want, 1 + 11 + 4 + 128 + 1 + 4 + 2);
    assert_int_equal(es_rtmp_chunk_write(&m, 128, out, sizeof out), (int)want);
    const uint8_t head[] = {0x06, 0xff, 0xff, 0xff, 0x00, 0x00, 0x82, 0x09, 1, 0, 0, 0,
                            0x01, 0x00, 0x00, 0x00};
    assert_memory_equal(out, head, sizeof head);
    const uint8_t cont[] = {0xc6, 0x01, 0x00, 0x00, 0x00, 128, 129};
    assert_memory_equal(out + 16 + 128, cont, sizeof cont);
    assert_int_equal(es_rtmp_chunk_write(&m, 128, out, want - 1), ES_E2BIG);
    m.csid = 1;
    assert_int_equal(es_rtmp_chunk_write(&m, 128, out, sizeof out), ES_EINVAL);
    m.csid = 65600;
    assert_int_equal(es_rtmp_chunk_write(&m, 128, out, sizeof out), ES_EINVAL);
    m.csid = 3;
    assert_int_equal(es_rtmp_chunk_write(&m, 0, out, sizeof out), ES_EINVAL);
}

static void test_round_trip(void **state)
{
    const uint32_t sizes[] = {1, 2, 3, 7, 127, 128, 129, 4096, 65536};
    const uint32_t csids[] = {2, 63, 64, 319, 320, 65599};
    const uint32_t stamps[] = {0, 1, 0xfffffe, 0xffffff, 0x1000000, 0xffffffffu};
    const size_t lens[] = {0, 1, 127, 128, 129, 1000, 70000};
    const size_t splits[] = {0, 1, 5, 128, 1000};
    uint8_t *payload = malloc(70000);
    for (size_t i = 0; i < 70000; i++) payload[i] = (uint8_t)(i * 31 + 7);
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    unsigned iter = 0;
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++) {
        for (size_t b = 0; b < sizeof lens / sizeof *lens; b++) {
            if (sizes[a] < 8 && lens[b] > 1000) continue; /* slow and adds nothing */
            uint32_t csid = csids[iter % 6], ts = stamps[iter % 6];
            size_t split = splits[iter % 5];
            iter++;
            /* Set Chunk Size at the default size, then two messages at the new one. */
            size_t n = 0;
            uint8_t cs[4] = {(uint8_t)(sizes[a] >> 24), (uint8_t)(sizes[a] >> 16),
                             (uint8_t)(sizes[a] >> 8), (uint8_t)sizes[a]};
            es_rtmp_msg_t set = {.csid = 2, .type = 1, .payload = cs, .len = 4};
            int k = es_rtmp_chunk_write(&set, 128, buf, cap);
            assert_true(k > 0);
            n += (size_t)k;
            es_rtmp_msg_t m = {.csid = csid, .type = 9, .stream_id = 1, .timestamp = ts,
                               .payload = payload, .len = lens[b]};
            for (int rep = 0; rep < 2; rep++) {
                k = es_rtmp_chunk_write(&m, sizes[a], buf + n, cap - n);
                assert_int_equal(k, (int)es_rtmp_chunk_write_size(csid, ts, lens[b], sizes[a]));
                n += (size_t)k;
            }
            es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(0);
            got_t g = {0};
            feed(r, buf, n, split, &g);
            assert_int_equal(g.rc, 0);
            assert_int_equal(g.n, 3);
            for (int rep = 1; rep < 3; rep++) {
                assert_int_equal(g.m[rep].csid, csid);
                assert_int_equal(g.m[rep].timestamp, ts);
                assert_int_equal(g.m[rep].len, lens[b]);
                assert_memory_equal(g.m[rep].payload, payload, lens[b]);
            }
            assert_int_equal(es_rtmp_chunk_reader_stats(r).ext_ts_absent, 0);
            got_free(&g);
            es_rtmp_chunk_reader_free(r);
        }
    }
    free(buf);
    free(payload);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt0_single_no_copy),
        cmocka_unit_test(test_all_formats_and_deltas),
        cmocka_unit_test(test_basic_header_sizes),
        cmocka_unit_test(test_chunk_size_changes),
        cmocka_unit_test(test_bad_chunk_size),
        cmocka_unit_test(test_interleaved),
        cmocka_unit_test(test_extended_timestamps),
        cmocka_unit_test(test_extended_absent_short_tail),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_writer_bytes),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests_name("rtmp_chunk", tests, NULL, NULL);
}
