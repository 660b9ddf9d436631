/* Unit and scenario tests for src/media/frame_hub.c on a virtual clock: tag classification
 * (legacy FLV AVC/HEVC, Enhanced RTMP hvc1/av01/Opus, AAC, MP3, onMetaData, short and garbage
 * bodies); what a late subscriber receives (metadata, video and audio sequence headers, the GOP
 * from the last key frame, then live tags in order); the GOP cache restarting at key frames, its
 * byte cap and the audio-only second; slow subscribers overflowing by time and by bytes and
 * waiting for the next key frame while fast ones get every tag; stall detection; wake exactly
 * on empty -> non-empty; reset with subscribers kept; reference counts (ASan/LSan finds leaks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/frame_hub.h"

#include <stdlib.h>
#include <string.h>

#define MS 1000ULL /* µs per ms on the virtual clock */

/* ---- tag bodies ------------------------------------------------------------------------------ */

static const uint8_t ON_META[] = {0x02, 0x00, 0x0A, 'o', 'n', 'M', 'e', 't',
                                  'a',  'D',  'a',  't', 'a'};

/* A tag of `size` bytes (at least the header) starting with the given header bytes, filled. */
static es_tag_t *body(uint8_t type, uint32_t ts, const uint8_t *hdr, size_t hlen, size_t size)
{
    uint8_t buf[65536];
    if (size < hlen) size = hlen;
    assert_true(size <= sizeof buf);
    memset(buf, 0x5a, size);
    memcpy(buf, hdr, hlen);
    es_tag_t *t = es_tag_new(type, ts, buf, size);
    assert_non_null(t);
    return t;
}

static es_tag_t *avc_seq(uint32_t ts)
{
    static const uint8_t h[] = {0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff};
    return body(ES_TAG_VIDEO, ts, h, sizeof h, sizeof h);
}
static es_tag_t *avc_key(uint32_t ts, size_t size)
{
    static const uint8_t h[] = {0x17, 0x01, 0, 0, 0};
    return body(ES_TAG_VIDEO, ts, h, sizeof h, size);
}
static es_tag_t *avc_inter(uint32_t ts, size_t size)
{
    static const uint8_t h[] = {0x27, 0x01, 0, 0, 0};
    return body(ES_TAG_VIDEO, ts, h, sizeof h, size);
}
static es_tag_t *aac_seq(uint32_t ts)
{
    static const uint8_t h[] = {0xAF, 0x00, 0x12, 0x10};
    return body(ES_TAG_AUDIO, ts, h, sizeof h, sizeof h);
}
static es_tag_t *aac_raw(uint32_t ts, size_t size)
{
    static const uint8_t h[] = {0xAF, 0x01};
    return body(ES_TAG_AUDIO, ts, h, sizeof h, size);
}

static void put_double(uint8_t *p, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(u >> (56 - 8 * i));
}

/* onMetaData as OBS sends it (after @setDataFrame is stripped): an ECMA array. */
static es_tag_t *metadata(uint32_t ts, double width, double height)
{
    uint8_t b[256];
    size_t n = 0;
    memcpy(b, ON_META, sizeof ON_META);
    n += sizeof ON_META;
    const uint8_t ecma[] = {0x08, 0, 0, 0, 4};
    memcpy(b + n, ecma, sizeof ecma);
    n += sizeof ecma;
    const uint8_t enc[] = {0x00, 0x07, 'e',  'n',  'c',  'o', 'd', 'e',
                           'r',  0x02, 0x00, 0x03, 'o', 'b', 's'};
    memcpy(b + n, enc, sizeof enc);
    n += sizeof enc;
    const uint8_t stereo[] = {0x00, 0x06, 's', 't', 'e', 'r', 'e', 'o', 0x01, 0x01};
    memcpy(b + n, stereo, sizeof stereo);
    n += sizeof stereo;
    const uint8_t w[] = {0x00, 0x05, 'w', 'i', 'd', 't', 'h', 0x00};
    memcpy(b + n, w, sizeof w);
    n += sizeof w;
    put_double(b + n, width);
    n += 8;
    const uint8_t h[] = {0x00, 0x06, 'h', 'e', 'i', 'g', 'h', 't', 0x00};
    memcpy(b + n, h, sizeof h);
    n += sizeof h;
    put_double(b + n, height);
    n += 8;
    const uint8_t end[] = {0x00, 0x00, 0x09};
    memcpy(b + n, end, sizeof end);
    n += sizeof end;
    es_tag_t *t = es_tag_new(ES_TAG_DATA, ts, b, n);
    assert_non_null(t);
    return t;
}

/* ---- classification ------------------------------------------------------------------------- */

typedef struct case_ {
    const char *what;
    uint8_t type;
    uint8_t body[16];
    size_t len;
    bool key, config, meta;
} case_t;

static void test_classify_each_kind_of_body(void **state)
{
    (void)state;
    static const case_t cases[] = {
        {"AVC key", ES_TAG_VIDEO, {0x17, 0x01, 0, 0, 0, 0x65}, 6, true, false, false},
        {"AVC inter", ES_TAG_VIDEO, {0x27, 0x01, 0, 0, 0, 0x41}, 6, false, false, false},
        {"AVC sequence header", ES_TAG_VIDEO, {0x17, 0x00, 0, 0, 0, 0x01}, 6, false, true, false},
        {"AVC end of sequence", ES_TAG_VIDEO, {0x17, 0x02, 0, 0, 0}, 5, false, false, false},
        {"AVC info frame", ES_TAG_VIDEO, {0x57, 0x00}, 2, false, false, false},
        {"HEVC legacy key", ES_TAG_VIDEO, {0x1C, 0x01, 0, 0, 0}, 5, true, false, false},
        {"HEVC legacy seq", ES_TAG_VIDEO, {0x1C, 0x00, 0, 0, 0}, 5, false, true, false},
        {"HEVC legacy inter", ES_TAG_VIDEO, {0x2C, 0x01, 0, 0, 0}, 5, false, false, false},
        {"VP6 key (no packet type)", ES_TAG_VIDEO, {0x14, 0x00, 0x00}, 3, true, false, false},
        {"E-RTMP hvc1 SequenceStart", ES_TAG_VIDEO, {0x90, 'h', 'v', 'c', '1', 1},
          6, false, true, false},
        {"E-RTMP hvc1 CodedFrames key", ES_TAG_VIDEO, {0x91, 'h', 'v', 'c', '1', 0, 0, 0, 9},
          9, true, false, false},
        {"E-RTMP hvc1 CodedFramesX inter", ES_TAG_VIDEO, {0xA3, 'h', 'v', 'c', '1', 9},
          6, false, false, false},
        {"E-RTMP av01 SequenceStart", ES_TAG_VIDEO, {0x90, 'a', 'v', '0', '1', 0x81},
          6, false, true, false},
        {"E-RTMP av01 CodedFramesX key", ES_TAG_VIDEO, {0x93, 'a', 'v', '0', '1', 0x12},
          6, true, false, false},
        {"E-RTMP av01 MPEG2TSSequenceStart", ES_TAG_VIDEO, {0x95, 'a', 'v', '0', '1', 0},
          6, false, true, false},
        {"E-RTMP av01 inter", ES_TAG_VIDEO, {0xA1, 'a', 'v', '0', '1', 0x12},
          6, false, false, false},
        {"E-RTMP command frame", ES_TAG_VIDEO, {0xD1, 'a', 'v', '0', '1', 0},
          6, false, false, false},
        {"E-RTMP command SequenceStart", ES_TAG_VIDEO, {0xD0, 'h', 'v', 'c', '1'},
          5, false, false, false},
        {"E-RTMP SequenceEnd", ES_TAG_VIDEO, {0x92, 'h', 'v', 'c', '1'}, 5, false, false, false},
        {"E-RTMP without FourCC", ES_TAG_VIDEO, {0x91, 'h', 'v'}, 3, false, false, false},
        {"video 1 byte", ES_TAG_VIDEO, {0x17}, 1, false, false, false},
        {"video 0 bytes", ES_TAG_VIDEO, {0}, 0, false, false, false},
        {"AAC config", ES_TAG_AUDIO, {0xAF, 0x00, 0x12, 0x10}, 4, false, true, false},
        {"AAC raw", ES_TAG_AUDIO, {0xAF, 0x01, 0x21, 0x10}, 4, false, false, false},
        {"AAC 1 byte", ES_TAG_AUDIO, {0xAF}, 1, false, false, false},
        {"MP3", ES_TAG_AUDIO, {0x2F, 0x00, 0xff, 0xfb}, 4, false, false, false},
        {"E-RTMP Opus SequenceStart", ES_TAG_AUDIO, {0x90, 'O', 'p', 'u', 's', 'O'},
          6, false, true, false},
        {"E-RTMP Opus CodedFrames", ES_TAG_AUDIO, {0x91, 'O', 'p', 'u', 's', 0xfc},
          6, false, false, false},
        {"E-RTMP audio without FourCC", ES_TAG_AUDIO, {0x90, 'O'}, 2, false, false, false},
        {"audio 0 bytes", ES_TAG_AUDIO, {0}, 0, false, false, false},
        {"onMetaData", ES_TAG_DATA, "\x02\x00\x0AonMetaData\x08", 14, false, false, true},
        {"onMetaData, nothing after", ES_TAG_DATA, "\x02\x00\x0AonMetaData", 13,
         false, false, true},
        {"onMetaData truncated", ES_TAG_DATA, "\x02\x00\x0AonMet", 8, false, false, false},
        {"onTextData", ES_TAG_DATA, "\x02\x00\x0AonTextData", 13, false, false, false},
        {"@setDataFrame", ES_TAG_DATA, "\x02\x00\x0D@setDataFr", 13, false, false, false},
        {"data 1 byte", ES_TAG_DATA, {0x02}, 1, false, false, false},
        {"garbage video", ES_TAG_VIDEO, {0xff, 0xff, 0xff}, 3, false, false, false},
        {"garbage type", 77, {0x17, 0x00, 0x00}, 3, false, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const case_t *c = &cases[i];
        es_tag_t *t = es_tag_new(c->type, 1234, c->len ? c->body : NULL, c->len);
        assert_non_null(t);
        if (t->keyframe != c->key || t->config != c->config || t->metadata != c->meta)
            fail_msg("%s: keyframe %d config %d metadata %d", c->what, t->keyframe, t->config,
                     t->metadata);
        assert_int_equal(t->refs, 1);
        assert_int_equal(t->type, c->type);
        assert_int_equal(t->timestamp_ms, 1234);
        assert_int_equal(t->len, c->len);
        if (c->len) assert_memory_equal(t->data, c->body, c->len);
        es_tag_unref(t);
    }
    assert_null(es_tag_new(ES_TAG_VIDEO, 0, NULL, 3));
    es_tag_unref(NULL);
}

/* ---- fixtures ------------------------------------------------------------------------------- */

typedef struct sub_ctx {
    es_frame_sub_t *sub;
    int wakes;
    bool pop_in_wake;     /* a fast player: takes everything as soon as it is woken */
    uint64_t *now;
    es_tag_t *got[512];   /* tags taken in wake (references held) */
    size_t n_got;
    es_frame_hub_t *hub;
    es_frame_sub_t *kill; /* unsubscribe this one from inside wake */
} sub_ctx_t;

static void on_wake(void *user)
{
    sub_ctx_t *c = user;
    c->wakes++;
    if (c->kill) {
        bool self = c->kill == c->sub;
        es_frame_hub_unsubscribe(c->hub, c->kill);
        c->kill = NULL;
        if (self) { /* the subscriber is gone: not to be used again */
            c->sub = NULL;
            return;
        }
    }
    if (!c->pop_in_wake) return;
    es_tag_t *t;
    while ((t = es_frame_sub_pop(c->sub, *c->now))) {
        if (c->n_got < sizeof c->got / sizeof c->got[0])
            c->got[c->n_got++] = t;
        else
            es_tag_unref(t);
    }
}

static void ctx_release(sub_ctx_t *c)
{
    for (size_t i = 0; i < c->n_got; i++) es_tag_unref(c->got[i]);
    c->n_got = 0;
}

static es_frame_sub_t *subscribe(es_frame_hub_t *hub, sub_ctx_t *c, uint64_t *now)
{
    c->now = now;
    c->hub = hub;
    c->sub = es_frame_hub_subscribe(hub, on_wake, c, *now);
    assert_non_null(c->sub);
    return c->sub;
}

/* Publishes t (the hub takes its own references) and drops the caller's. */
static void pub(es_frame_hub_t *hub, es_tag_t *t, uint64_t now)
{
    es_frame_hub_publish(hub, t, now);
    es_tag_unref(t);
}

/* Pops the next tag, checks what it is, drops it. */
static void expect(es_frame_sub_t *s, uint64_t now, uint8_t type, uint32_t ts, bool key,
                   bool config, bool meta)
{
    es_tag_t *t = es_frame_sub_pop(s, now);
    assert_non_null(t);
    assert_int_equal(t->type, type);
    assert_int_equal(t->timestamp_ms, ts);
    assert_int_equal(t->keyframe, key);
    assert_int_equal(t->config, config);
    assert_int_equal(t->metadata, meta);
    es_tag_unref(t);
}

static void expect_empty(es_frame_sub_t *s, uint64_t now) { assert_null(es_frame_sub_pop(s, now)); }

static size_t drain(es_frame_sub_t *s, uint64_t now)
{
    size_t n = 0;
    es_tag_t *t;
    while ((t = es_frame_sub_pop(s, now))) {
        es_tag_unref(t);
        n++;
    }
    return n;
}

static const es_frame_hub_limits_t ROOMY = {
    .queue_ms = 60000, .queue_bytes = 64 << 20, .stall_ms = 10000, .gop_max_bytes = 16 << 20};

static json_int_t json_int(const es_frame_hub_t *hub, const char *key)
{
    json_t *o = es_frame_hub_json(hub);
    assert_non_null(o);
    json_t *v = json_object_get(o, key);
    assert_non_null(v);
    json_int_t i = json_integer_value(v);
    json_decref(o);
    return i;
}

/* ---- late subscriber and GOP cache ---------------------------------------------------------- */

static void test_late_subscriber_gets_headers_then_gop_then_live(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &ROOMY);
    assert_non_null(hub);
    /* The publisher sends them in another order; a player still gets metadata, video config,
     * audio config. */
    pub(hub, aac_seq(0), now);
    pub(hub, avc_seq(0), now);
    pub(hub, metadata(0, 1280, 720), now);
    pub(hub, avc_key(0, 3000), now += 10 * MS);
    pub(hub, aac_raw(10, 200), now += 10 * MS);
    pub(hub, avc_inter(33, 500), now += 10 * MS);
    pub(hub, avc_key(1000, 3000), now += 10 * MS);
    pub(hub, aac_raw(1010, 200), now += 10 * MS);
    pub(hub, avc_inter(1033, 500), now += 10 * MS);
    pub(hub, aac_raw(1033, 200), now += 10 * MS);
    /* A sequence header repeated unchanged (some encoders do before each key) keeps the GOP. */
    pub(hub, avc_seq(1040), now += 10 * MS);

    sub_ctx_t c = {0};
    es_frame_sub_t *s = subscribe(hub, &c, &now);
    assert_int_equal(es_frame_hub_sub_count(hub), 1);
    assert_int_equal(c.wakes, 0); /* not from inside subscribe */
    es_frame_sub_stats_t st = es_frame_sub_stats(s);
    assert_int_equal(st.queued_tags, 7);
    expect(s, now, ES_TAG_DATA, 0, false, false, true);
    expect(s, now, ES_TAG_VIDEO, 1040, false, true, false); /* the latest video config */
    expect(s, now, ES_TAG_AUDIO, 0, false, true, false);
    expect(s, now, ES_TAG_VIDEO, 1000, true, false, false);
    expect(s, now, ES_TAG_AUDIO, 1010, false, false, false);
    expect(s, now, ES_TAG_VIDEO, 1033, false, false, false);
    expect(s, now, ES_TAG_AUDIO, 1033, false, false, false);
    expect_empty(s, now);

    /* Live tags follow in order, with their own timestamps. */
    pub(hub, avc_inter(1066, 400), now += 10 * MS);
    assert_int_equal(c.wakes, 1);
    pub(hub, aac_raw(1056, 200), now += 10 * MS);
    pub(hub, avc_key(2000, 3000), now += 10 * MS);
    expect(s, now, ES_TAG_VIDEO, 1066, false, false, false);
    expect(s, now, ES_TAG_AUDIO, 1056, false, false, false);
    expect(s, now, ES_TAG_VIDEO, 2000, true, false, false);
    expect_empty(s, now);
    st = es_frame_sub_stats(s);
    assert_int_equal(st.tags, 10);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.dropped_tags, 0);
    assert_int_equal(st.skipped_tags, 0);
    es_frame_hub_free(hub);
}

static void test_gop_restarts_at_each_key_frame(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &ROOMY);
    pub(hub, avc_seq(0), now);
    /* Video has been seen but no key frame yet: nothing cached. */
    pub(hub, aac_raw(0, 100), now);
    pub(hub, avc_inter(0, 100), now);
    assert_int_equal(json_int(hub, "gop_tags"), 0);
    pub(hub, avc_key(40, 1000), now);
    assert_int_equal(json_int(hub, "gop_tags"), 1);
    pub(hub, aac_raw(50, 100), now);
    pub(hub, avc_inter(80, 200), now);
    assert_int_equal(json_int(hub, "gop_tags"), 3);
    assert_int_equal(json_int(hub, "gop_bytes"), 1300);
    pub(hub, avc_key(120, 1000), now);
    assert_int_equal(json_int(hub, "gop_tags"), 1);
    assert_int_equal(json_int(hub, "gop_bytes"), 1000);
    pub(hub, aac_raw(130, 100), now);

    /* A changed video configuration: the cached frames belong to the old one; a new player
     * waits for the next key frame. */
    static const uint8_t seq2[] = {0x17, 0x00, 0, 0, 0, 0x01, 0x4d, 0x00, 0x28, 0xff};
    pub(hub, body(ES_TAG_VIDEO, 150, seq2, sizeof seq2, sizeof seq2), now);
    assert_int_equal(json_int(hub, "gop_tags"), 0);
    pub(hub, avc_inter(160, 100), now);
    assert_int_equal(json_int(hub, "gop_tags"), 0);
    sub_ctx_t c = {0};
    es_frame_sub_t *s = subscribe(hub, &c, &now);
    expect(s, now, ES_TAG_VIDEO, 150, false, true, false);
    expect_empty(s, now);
    pub(hub, aac_raw(170, 100), now); /* skipped: waits for the key frame */
    pub(hub, avc_key(200, 1000), now);
    expect(s, now, ES_TAG_VIDEO, 200, true, false, false);
    assert_int_equal(es_frame_sub_stats(s).skipped_tags, 1);
    es_frame_hub_free(hub);
}

static void test_gop_cap(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_limits_t lim = ROOMY;
    lim.gop_max_bytes = 2000;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &lim);
    pub(hub, avc_seq(0), now);
    pub(hub, aac_seq(0), now);
    pub(hub, avc_key(0, 1000), now);
    pub(hub, avc_inter(40, 500), now);
    pub(hub, aac_raw(40, 500), now);
    assert_int_equal(json_int(hub, "gop_bytes"), 2000); /* exactly at the cap */
    pub(hub, avc_inter(80, 10), now);                   /* past it: no partial GOP */
    assert_int_equal(json_int(hub, "gop_tags"), 0);
    pub(hub, avc_inter(120, 10), now); /* stays off until the next key frame */
    assert_int_equal(json_int(hub, "gop_tags"), 0);

    sub_ctx_t c = {0};
    es_frame_sub_t *s = subscribe(hub, &c, &now);
    expect(s, now, ES_TAG_VIDEO, 0, false, true, false);
    expect(s, now, ES_TAG_AUDIO, 0, false, true, false);
    expect_empty(s, now);
    pub(hub, aac_raw(130, 100), now);   /* skipped until a key frame */
    pub(hub, avc_inter(160, 100), now); /* skipped */
    expect_empty(s, now);
    pub(hub, avc_key(200, 1500), now);
    assert_int_equal(json_int(hub, "gop_tags"), 1);
    pub(hub, aac_raw(210, 100), now);
    expect(s, now, ES_TAG_VIDEO, 200, true, false, false);
    expect(s, now, ES_TAG_AUDIO, 210, false, false, false);
    assert_int_equal(es_frame_sub_stats(s).skipped_tags, 2);

    /* A key frame larger than the cap is not cached at all. */
    pub(hub, avc_key(300, 2500), now);
    assert_int_equal(json_int(hub, "gop_tags"), 0);
    /* gop_max_bytes 0 turns the cache off. */
    lim.gop_max_bytes = 0;
    es_frame_hub_set_limits(hub, &lim);
    pub(hub, avc_key(400, 100), now);
    pub(hub, aac_raw(410, 100), now);
    assert_int_equal(json_int(hub, "gop_tags"), 0);
    es_frame_hub_free(hub);
}

static void test_audio_only_keeps_about_one_second(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_t *hub = es_frame_hub_new("live/radio", &ROOMY);
    pub(hub, aac_seq(0), now);
    uint32_t ts = 0;
    for (int i = 0; i < 150; i++, ts += 23) pub(hub, aac_raw(ts, 300), now = ts * MS);
    uint32_t last = ts - 23; /* 3427 */
    json_int_t cached = json_int(hub, "gop_tags");
    assert_true(cached >= 43 && cached <= 45);

    sub_ctx_t c = {0};
    es_frame_sub_t *s = subscribe(hub, &c, &now);
    expect(s, now, ES_TAG_AUDIO, 0, false, true, false);
    es_tag_t *t = es_frame_sub_pop(s, now);
    assert_non_null(t);
    assert_true(t->timestamp_ms >= last - 1000 && t->timestamp_ms <= last - 1000 + 23);
    es_tag_unref(t);
    assert_int_equal(drain(s, now), (size_t)cached - 1);
    /* Audio-only: live audio flows at once, no key frame to wait for. */
    pub(hub, aac_raw(last + 23, 300), now);
    expect(s, now, ES_TAG_AUDIO, last + 23, false, false, false);

    /* The cap bounds the audio cache too. */
    es_frame_hub_limits_t lim = ROOMY;
    lim.gop_max_bytes = 3000;
    es_frame_hub_set_limits(hub, &lim);
    pub(hub, aac_raw(last + 46, 300), now);
    assert_int_equal(json_int(hub, "gop_tags"), 10);

    /* Video appears: the audio cache is no GOP; nothing cached until the first key frame. */
    pub(hub, avc_seq(last + 50), now);
    assert_int_equal(json_int(hub, "gop_tags"), 0);
    pub(hub, aac_raw(last + 69, 300), now);
    assert_int_equal(json_int(hub, "gop_tags"), 0);
    es_frame_hub_free(hub);
}

/* ---- slow subscribers ----------------------------------------------------------------------- */

/* A 25 fps video + 43 Hz audio source: key frame every `gop` video frames. */
typedef struct source {
    es_frame_hub_t *hub;
    uint64_t *now;
    uint32_t vts, ats;
    int frame, gop;
    size_t key_size, inter_size, audio_size;
    size_t published;
} source_t;

/* Advances 40 ms: one video frame and the audio tags due. */
static void source_step(source_t *src)
{
    bool key = src->frame % src->gop == 0;
    pub(src->hub, key ? avc_key(src->vts, src->key_size) : avc_inter(src->vts, src->inter_size),
        *src->now = (uint64_t)src->vts * MS);
    src->published++;
    src->frame++;
    src->vts += 40;
    while (src->ats < src->vts) {
        pub(src->hub, aac_raw(src->ats, src->audio_size), *src->now);
        src->published++;
        src->ats += 23;
    }
}

static void source_headers(source_t *src)
{
    pub(src->hub, metadata(0, 640, 480), *src->now);
    pub(src->hub, avc_seq(0), *src->now);
    pub(src->hub, aac_seq(0), *src->now);
    src->published += 3;
}

static void test_slow_subscriber_overflows_by_time(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_limits_t lim = ROOMY;
    lim.queue_ms = 1000;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &lim);
    sub_ctx_t fast = {.pop_in_wake = true}, slow = {0};
    subscribe(hub, &fast, &now);
    es_frame_sub_t *s = subscribe(hub, &slow, &now);
    source_t src = {.hub = hub, .now = &now, .gop = 50, .key_size = 4000, .inter_size = 800,
                    .audio_size = 200};
    source_headers(&src);
    /* Queued: video 0..960, audio 0..989 (span 989 ms). */
    while (src.vts < 1000) source_step(&src);
    es_frame_sub_stats_t st = es_frame_sub_stats(s);
    assert_int_equal(st.overflows, 0);
    size_t queued_media = st.queued_tags - 3;
    assert_int_equal(queued_media, 25 + 44);
    /* Video 1000 still fits (span 1000); audio 1012 overflows; audio 1035 is skipped. */
    source_step(&src);
    st = es_frame_sub_stats(s);
    assert_int_equal(st.overflows, 1);
    assert_int_equal(st.dropped_tags, queued_media + 1);
    assert_int_equal(st.queued_tags, 3); /* metadata and both configs kept */
    assert_int_equal(st.skipped_tags, 2);
    assert_int_equal(slow.wakes, 1);
    /* Until the next key frame (frame 50 at 2000 ms) audio and video are skipped. */
    while (src.vts < 2000) source_step(&src);
    assert_int_equal(es_frame_sub_stats(s).queued_tags, 3);
    source_step(&src); /* the key frame at 2000 and audio 1978..1999 after it */
    expect(s, now, ES_TAG_DATA, 0, false, false, true);
    expect(s, now, ES_TAG_VIDEO, 0, false, true, false);
    expect(s, now, ES_TAG_AUDIO, 0, false, true, false);
    expect(s, now, ES_TAG_VIDEO, 2000, true, false, false);
    expect(s, now, ES_TAG_AUDIO, 2001, false, false, false);
    expect(s, now, ES_TAG_AUDIO, 2024, false, false, false);
    expect_empty(s, now);
    st = es_frame_sub_stats(s);
    assert_int_equal(st.overflows, 1);
    assert_int_equal(st.dropped_tags + st.skipped_tags + st.tags, src.published);

    /* The fast player got every tag, in order. */
    assert_int_equal(fast.n_got, src.published);
    assert_true(fast.got[0]->metadata);
    assert_true(fast.got[1]->config && fast.got[1]->type == ES_TAG_VIDEO);
    assert_true(fast.got[3]->keyframe);
    assert_int_equal(es_frame_sub_stats(fast.sub).overflows, 0);
    assert_int_equal(json_int(hub, "overflows"), 1);
    ctx_release(&fast);
    es_frame_hub_free(hub);
}

static void test_slow_subscriber_overflows_by_bytes(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_limits_t lim = ROOMY;
    lim.queue_bytes = 20000;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &lim);
    sub_ctx_t fast = {.pop_in_wake = true}, slow = {0};
    subscribe(hub, &fast, &now);
    es_frame_sub_t *s = subscribe(hub, &slow, &now);
    source_t src = {.hub = hub, .now = &now, .gop = 10, .key_size = 5000, .inter_size = 1000,
                    .audio_size = 100};
    source_headers(&src);
    size_t headers = es_frame_sub_stats(s).queued_bytes;
    assert_true(headers > 0);
    for (int i = 0; i < 100; i++) {
        source_step(&src);
        /* The bound holds after every step. */
        assert_true(es_frame_sub_stats(s).queued_bytes <= lim.queue_bytes);
    }
    es_frame_sub_stats_t st = es_frame_sub_stats(s);
    assert_true(st.overflows >= 5);
    assert_int_equal(st.dropped_tags + st.skipped_tags + st.queued_tags, src.published);
    /* What is queued starts with the headers, then a key frame (if one came since). */
    expect(s, now, ES_TAG_DATA, 0, false, false, true);
    expect(s, now, ES_TAG_VIDEO, 0, false, true, false);
    expect(s, now, ES_TAG_AUDIO, 0, false, true, false);
    es_tag_t *t = es_frame_sub_pop(s, now);
    if (t) assert_true(t->keyframe);
    es_tag_unref(t);
    assert_int_equal(fast.n_got, src.published);
    ctx_release(&fast);
    es_frame_hub_free(hub);
}

static void test_audio_only_overflow_restarts_at_once(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_limits_t lim = ROOMY;
    lim.queue_ms = 500;
    es_frame_hub_t *hub = es_frame_hub_new("live/radio", &lim);
    sub_ctx_t slow = {0};
    es_frame_sub_t *s = subscribe(hub, &slow, &now);
    pub(hub, aac_seq(0), now);
    uint32_t ts = 0;
    for (; ts <= 500; ts += 20) pub(hub, aac_raw(ts, 100), now = ts * MS);
    assert_int_equal(es_frame_sub_stats(s).overflows, 0);
    pub(hub, aac_raw(ts, 100), now = ts * MS); /* 520: span 520 > 500 */
    es_frame_sub_stats_t st = es_frame_sub_stats(s);
    assert_int_equal(st.overflows, 1);
    assert_int_equal(st.dropped_tags, 26);
    assert_int_equal(st.skipped_tags, 0);
    expect(s, now, ES_TAG_AUDIO, 0, false, true, false);
    expect(s, now, ES_TAG_AUDIO, 520, false, false, false);
    expect_empty(s, now);
    es_frame_hub_free(hub);
}

/* Config tags never go, even when headers alone pass the byte bound; superseded ones do. */
static void test_overflow_keeps_latest_headers(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_limits_t lim = ROOMY;
    lim.queue_bytes = 3000;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &lim);
    sub_ctx_t slow = {0};
    es_frame_sub_t *s = subscribe(hub, &slow, &now);
    pub(hub, avc_seq(0), now);
    pub(hub, aac_seq(0), now);
    pub(hub, avc_key(0, 1000), now);
    pub(hub, avc_seq(10), now);
    pub(hub, avc_inter(40, 1000), now);
    pub(hub, avc_inter(80, 1000), now); /* 2024 + 1000 > 3000: overflow */
    es_frame_sub_stats_t st = es_frame_sub_stats(s);
    assert_int_equal(st.overflows, 1);
    assert_int_equal(st.dropped_tags, 3); /* key, inter, and the superseded video config */
    expect(s, now, ES_TAG_AUDIO, 0, false, true, false);
    expect(s, now, ES_TAG_VIDEO, 10, false, true, false);
    expect_empty(s, now);
    es_frame_hub_free(hub);
}

/* ---- wake and stall ------------------------------------------------------------------------- */

static void test_wake_exactly_on_empty_to_non_empty(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &ROOMY);
    sub_ctx_t c = {0};
    es_frame_sub_t *s = subscribe(hub, &c, &now);
    pub(hub, aac_seq(0), now);
    assert_int_equal(c.wakes, 1);
    pub(hub, aac_raw(0, 10), now);
    pub(hub, aac_raw(20, 10), now);
    assert_int_equal(c.wakes, 1);
    es_tag_unref(es_frame_sub_pop(s, now));
    pub(hub, aac_raw(40, 10), now); /* still non-empty: no wake */
    assert_int_equal(c.wakes, 1);
    assert_int_equal(drain(s, now), 3);
    pub(hub, aac_raw(60, 10), now);
    assert_int_equal(c.wakes, 2);
    assert_int_equal(drain(s, now), 1);
    /* A skipped tag (waiting for a key frame) does not wake. */
    pub(hub, avc_inter(80, 10), now);
    assert_int_equal(c.wakes, 2);
    pub(hub, avc_key(120, 10), now);
    assert_int_equal(c.wakes, 3);
    es_frame_hub_free(hub);
}

static void test_stall_detected_by_tick(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_limits_t lim = ROOMY;
    lim.stall_ms = 2000;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &lim);
    sub_ctx_t idle = {0}, reader = {0}, stuck = {0};
    es_frame_sub_t *si = subscribe(hub, &idle, &now);
    es_frame_sub_t *sr = subscribe(hub, &reader, &now);
    es_frame_sub_t *ss = subscribe(hub, &stuck, &now);

    /* Nothing queued for 5 s: nobody stalls. */
    es_frame_hub_tick(hub, now = 5000 * MS);
    assert_false(es_frame_sub_stalled(si) || es_frame_sub_stalled(sr) || es_frame_sub_stalled(ss));
    pub(hub, aac_raw(5000, 10), now);
    assert_int_equal(drain(si, now), 1); /* idle empties its queue and stays empty */
    /* The stall clock starts when the queue became non-empty, not at the last pop (never). */
    es_frame_hub_tick(hub, now = 6500 * MS);
    assert_false(es_frame_sub_stalled(ss));
    for (uint32_t t = 5100; t <= 7000; t += 100) {
        pub(hub, aac_raw(t, 10), now = t * MS);
        drain(sr, now);
    }
    es_frame_hub_tick(hub, now = 7050 * MS);
    assert_true(es_frame_sub_stalled(ss)); /* 2050 ms with tags waiting, nothing taken */
    assert_int_equal(stuck.wakes, 2);      /* the first tag, and the stall */
    assert_false(es_frame_sub_stalled(sr));
    assert_false(es_frame_sub_stalled(si)); /* its queue is non-empty only since 5100 */
    assert_int_equal(idle.wakes, 2);
    es_frame_hub_tick(hub, now = 7100 * MS);
    assert_int_equal(stuck.wakes, 2); /* once */
    assert_true(es_frame_sub_stalled(ss));
    assert_true(es_frame_sub_stalled(si)); /* 2000 ms since its queue became non-empty */
    assert_int_equal(idle.wakes, 3);
    assert_false(es_frame_sub_stalled(sr));
    es_frame_hub_free(hub);
}

/* A subscriber that takes nothing overflows again and again (each overflow empties its queue,
 * which then refills from the next key frame); that must not restart its stall clock. */
static void test_stall_across_overflows(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_limits_t lim = ROOMY;
    lim.queue_ms = 500;
    lim.stall_ms = 3000;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &lim);
    sub_ctx_t stuck = {0};
    es_frame_sub_t *ss = subscribe(hub, &stuck, &now);
    pub(hub, avc_seq(0), now);
    es_tag_t *first = es_frame_sub_pop(ss, now); /* it took the header once, then stopped */
    assert_non_null(first);
    es_tag_unref(first);
    /* 25 fps, a key frame every 400 ms; the first tag it is offered is the key frame at 400 ms
     * (inter frames before it are skipped: it has no key frame yet). */
    for (uint32_t t = 40; t <= 3360; t += 40) {
        pub(hub, t % 400 == 0 ? avc_key(t, 100) : avc_inter(t, 100), now = t * MS);
        es_frame_hub_tick(hub, now);
    }
    assert_true(es_frame_sub_stats(ss).overflows >= 3);
    assert_false(es_frame_sub_stalled(ss));
    for (uint32_t t = 3400; t <= 3440; t += 40) {
        pub(hub, t % 400 == 0 ? avc_key(t, 100) : avc_inter(t, 100), now = t * MS);
        es_frame_hub_tick(hub, now);
    }
    assert_true(es_frame_sub_stalled(ss)); /* 3 s after the first tag it did not take */
    es_frame_hub_free(hub);
}

/* ---- reset, refcounts, unsubscribe ---------------------------------------------------------- */

static void test_reset_keeps_subscribers(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &ROOMY);
    sub_ctx_t c = {0};
    es_frame_sub_t *s = subscribe(hub, &c, &now);
    pub(hub, metadata(0, 1280, 720), now);
    pub(hub, avc_seq(0), now);
    pub(hub, aac_seq(0), now);
    pub(hub, avc_key(0, 1000), now);
    pub(hub, aac_raw(10, 100), now);
    assert_int_equal(drain(s, now), 5);
    pub(hub, avc_inter(40, 500), now);
    pub(hub, aac_raw(33, 100), now);

    es_frame_hub_reset(hub); /* the publisher left */
    assert_int_equal(es_frame_hub_sub_count(hub), 1);
    assert_int_equal(es_frame_sub_stats(s).queued_tags, 2); /* its queue stays */
    assert_int_equal(json_int(hub, "gop_tags"), 0);
    json_t *o = es_frame_hub_json(hub);
    assert_null(json_object_get(o, "width"));
    assert_null(json_object_get(o, "video_codec"));
    assert_int_equal(json_integer_value(json_object_get(o, "bitrate_bps")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "tags_in")), 7);
    json_decref(o);
    sub_ctx_t late = {0};
    es_frame_sub_t *l = subscribe(hub, &late, &now);
    expect_empty(l, now); /* nothing of the old source */

    /* A new source (timestamps from 0 again): headers first, then its first key frame. */
    pub(hub, metadata(0, 1920, 1080), now);
    pub(hub, avc_seq(0), now);
    pub(hub, aac_seq(0), now);
    pub(hub, aac_raw(0, 100), now); /* before the key frame: skipped */
    pub(hub, avc_key(0, 1000), now);
    pub(hub, aac_raw(20, 100), now);
    for (int i = 0; i < 2; i++) {
        es_frame_sub_t *x = i ? l : s;
        if (!i) {
            expect(x, now, ES_TAG_VIDEO, 40, false, false, false);
            expect(x, now, ES_TAG_AUDIO, 33, false, false, false);
        }
        expect(x, now, ES_TAG_DATA, 0, false, false, true);
        expect(x, now, ES_TAG_VIDEO, 0, false, true, false);
        expect(x, now, ES_TAG_AUDIO, 0, false, true, false);
        expect(x, now, ES_TAG_VIDEO, 0, true, false, false);
        expect(x, now, ES_TAG_AUDIO, 20, false, false, false);
        expect_empty(x, now);
        assert_int_equal(es_frame_sub_stats(x).skipped_tags, 1);
    }
    assert_int_equal(json_int(hub, "width"), 1920);
    es_frame_hub_free(hub);
}

static void test_refcounts_and_unsubscribe_with_full_queue(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &ROOMY);
    sub_ctx_t a = {0}, b = {0}, c = {0};
    es_frame_sub_t *sa = subscribe(hub, &a, &now);
    es_frame_sub_t *sb = subscribe(hub, &b, &now);
    subscribe(hub, &c, &now);
    es_tag_t *seq = avc_seq(0), *key = avc_key(0, 100);
    es_frame_hub_publish(hub, seq, now);
    assert_int_equal(seq->refs, 1 + 1 + 3); /* caller, the hub's config slot, three queues */
    es_frame_hub_publish(hub, key, now);
    assert_int_equal(key->refs, 1 + 1 + 3); /* caller, GOP, three queues */
    es_tag_t *got = es_frame_sub_pop(sa, now);
    assert_ptr_equal(got, seq); /* one tag shared, never copied */
    es_tag_unref(got);
    assert_int_equal(seq->refs, 4);
    for (uint32_t ts = 40; ts < 4000; ts += 40) pub(hub, avc_inter(ts, 100), now);
    es_frame_hub_unsubscribe(hub, sb); /* with ~100 tags queued */
    assert_int_equal(es_frame_hub_sub_count(hub), 2);
    assert_int_equal(key->refs, 1 + 1 + 2);
    es_frame_hub_unsubscribe(hub, NULL);
    pub(hub, avc_key(4000, 100), now); /* the old key frame leaves the GOP */
    assert_int_equal(key->refs, 1 + 2);
    es_tag_unref(seq);
    es_tag_unref(key);
    es_frame_hub_free(hub); /* frees the two subscribers left, queues full (LSan checks) */
}

/* A wake callback that unsubscribes another subscriber (or itself) during the fan-out. */
static void test_unsubscribe_inside_wake(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &ROOMY);
    sub_ctx_t a = {.pop_in_wake = true}, b = {0}, c = {.pop_in_wake = true};
    subscribe(hub, &a, &now);
    es_frame_sub_t *sb = subscribe(hub, &b, &now);
    es_frame_sub_t *sc = subscribe(hub, &c, &now); /* list order: c, b, a */
    c.kill = sb;                                    /* c's wake removes b, visited next */
    pub(hub, aac_raw(0, 10), now);
    assert_int_equal(es_frame_hub_sub_count(hub), 2);
    assert_int_equal(b.wakes, 0);
    assert_int_equal(a.n_got, 1);
    assert_int_equal(c.n_got, 1);
    a.kill = a.sub; /* a removes itself */
    pub(hub, aac_raw(20, 10), now);
    assert_int_equal(es_frame_hub_sub_count(hub), 1);
    pub(hub, aac_raw(40, 10), now);
    assert_int_equal(a.n_got, 1);
    assert_int_equal(c.n_got, 3);
    (void)sc;
    ctx_release(&a);
    ctx_release(&c);
    es_frame_hub_free(hub);
}

/* ---- statistics ----------------------------------------------------------------------------- */

static const char *json_str(const es_frame_hub_t *hub, const char *key)
{
    static char buf[32];
    json_t *o = es_frame_hub_json(hub);
    json_t *v = json_object_get(o, key);
    buf[0] = 0;
    if (v) strncpy(buf, json_string_value(v), sizeof buf - 1);
    json_decref(o);
    return buf;
}

static void test_json_codecs_size_and_bitrate(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_t *hub = es_frame_hub_new("live/test", &ROOMY);
    assert_string_equal(json_str(hub, "video_codec"), "");
    assert_int_equal(json_int(hub, "bitrate_bps"), 0);
    pub(hub, metadata(0, 1280, 720), now);
    assert_int_equal(json_int(hub, "width"), 1280);
    assert_int_equal(json_int(hub, "height"), 720);
    es_frame_hub_set_video_size(hub, 1920, 1080); /* from the SPS: preferred */
    assert_int_equal(json_int(hub, "width"), 1920);
    assert_int_equal(json_int(hub, "height"), 1080);
    pub(hub, avc_seq(0), now);
    pub(hub, aac_seq(0), now);
    assert_string_equal(json_str(hub, "video_codec"), "H264");
    assert_string_equal(json_str(hub, "audio_codec"), "AAC");

    /* 1000 bytes every 10 ms = 800 kbit/s for 10 s. */
    for (uint32_t t = 0; t < 10000; t += 10) pub(hub, aac_raw(t, 1000), now = t * MS);
    json_int_t bps = json_int(hub, "bitrate_bps");
    assert_true(bps > 760000 && bps < 840000);
    assert_int_equal(json_int(hub, "tags_in"), 3 + 1000);
    sub_ctx_t c = {0};
    subscribe(hub, &c, &now);
    assert_int_equal(json_int(hub, "subscribers"), 1);
    assert_true(json_int(hub, "queued_bytes") > 0);

    static const struct { uint8_t type; uint8_t b[6]; const char *key, *name; } codecs[] = {
        {ES_TAG_VIDEO, {0x1C, 0x01, 0, 0, 0, 0}, "video_codec", "HEVC"},
        {ES_TAG_VIDEO, {0x90, 'h', 'v', 'c', '1', 0}, "video_codec", "HEVC"},
        {ES_TAG_VIDEO, {0x91, 'a', 'v', '0', '1', 0}, "video_codec", "AV1"},
        {ES_TAG_VIDEO, {0x91, 'v', 'p', '0', '9', 0}, "video_codec", "VP9"},
        {ES_TAG_VIDEO, {0x17, 0x01, 0, 0, 0, 0}, "video_codec", "H264"},
        {ES_TAG_AUDIO, {0x2F, 0xff, 0xfb, 0, 0, 0}, "audio_codec", "MP3"},
        {ES_TAG_AUDIO, {0x91, 'O', 'p', 'u', 's', 0}, "audio_codec", "Opus"},
        {ES_TAG_AUDIO, {0xAF, 0x01, 0, 0, 0, 0}, "audio_codec", "AAC"},
    };
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
        pub(hub, es_tag_new(codecs[i].type, 10000, codecs[i].b, sizeof codecs[i].b), now);
        assert_string_equal(json_str(hub, codecs[i].key), codecs[i].name);
    }
    es_frame_hub_free(hub);
}

/* Every prefix of a metadata tag and pseudo-random bodies of every type go through
 * classification, codec naming and the onMetaData walk (ASan/UBSan check the bounds). */
static void test_hostile_bodies_are_safe(void **state)
{
    (void)state;
    uint64_t now = 0;
    es_frame_hub_t *hub = es_frame_hub_new(NULL, &ROOMY);
    sub_ctx_t c = {.pop_in_wake = true};
    subscribe(hub, &c, &now);
    es_tag_t *m = metadata(0, 1280, 720);
    for (size_t n = 0; n <= m->len; n++) {
        es_tag_t *t = es_tag_new(ES_TAG_DATA, 0, m->data, n);
        assert_non_null(t);
        pub(hub, t, now);
        json_decref(es_frame_hub_json(hub));
    }
    assert_int_equal(json_int(hub, "width"), 1280); /* the whole tag came last */
    es_tag_unref(m);
    uint32_t x = 12345;
    for (int i = 0; i < 3000; i++) {
        uint8_t b[24];
        size_t n = (size_t)(i % 25) < sizeof b ? (size_t)(i % 25) : sizeof b;
        for (size_t k = 0; k < n; k++) {
            x = x * 1103515245u + 12345u;
            b[k] = (uint8_t)(x >> 16);
        }
        static const uint8_t types[] = {ES_TAG_AUDIO, ES_TAG_VIDEO, ES_TAG_DATA, 0};
        es_tag_t *t = es_tag_new(types[i % 4], (uint32_t)i, n ? b : NULL, n);
        assert_non_null(t);
        assert_false(t->keyframe && t->config);
        pub(hub, t, now += MS);
    }
    json_decref(es_frame_hub_json(hub));
    ctx_release(&c);
    es_frame_hub_free(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_each_kind_of_body),
        cmocka_unit_test(test_late_subscriber_gets_headers_then_gop_then_live),
        cmocka_unit_test(test_gop_restarts_at_each_key_frame),
        cmocka_unit_test(test_gop_cap),
        cmocka_unit_test(test_audio_only_keeps_about_one_second),
        cmocka_unit_test(test_slow_subscriber_overflows_by_time),
        cmocka_unit_test(test_slow_subscriber_overflows_by_bytes),
        cmocka_unit_test(test_audio_only_overflow_restarts_at_once),
        cmocka_unit_test(test_overflow_keeps_latest_headers),
        cmocka_unit_test(test_wake_exactly_on_empty_to_non_empty),
        cmocka_unit_test(test_stall_detected_by_tick),
        cmocka_unit_test(test_stall_across_overflows),
        cmocka_unit_test(test_reset_keeps_subscribers),
        cmocka_unit_test(test_refcounts_and_unsubscribe_with_full_queue),
        cmocka_unit_test(test_unsubscribe_inside_wake),
        cmocka_unit_test(test_json_codecs_size_and_bitrate),
        cmocka_unit_test(test_hostile_bodies_are_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
