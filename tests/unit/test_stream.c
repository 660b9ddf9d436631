/* Scenario tests for src/media/stream.c on a virtual clock: fan-out with SSRC, sequence number,
 * timestamp, payload type and header-extension rewriting; a video sink waits for a key frame
 * and asks for one; GOP replay to a new player; NACK answered from the history; RTX unwrapped;
 * numbering continues across a publisher's reconnection; NACKs and sender reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/bytes.h"
#include "estuary/rtcp.h"
#include "estuary/rtp.h"
#include "estuary/stream.h"

#include <string.h>

#define MAXP 64

/* Captures what the stream sends to one party. */
typedef struct capture {
    uint8_t rtp[MAXP][1600];
    size_t rtp_len[MAXP];
    size_t n_rtp;
    uint8_t rtcp[MAXP][1600];
    size_t rtcp_len[MAXP];
    size_t n_rtcp;
} capture_t;

static int cap_rtp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    capture_t *c = user;
    assert_true(cap >= len + ES_STREAM_IO_ROOM);
    if (c->n_rtp < MAXP) {
        memcpy(c->rtp[c->n_rtp], buf, len);
        c->rtp_len[c->n_rtp++] = len;
    }
    return 0;
}

static int cap_rtcp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    capture_t *c = user;
    if (c->n_rtcp < MAXP) {
        memcpy(c->rtcp[c->n_rtcp], buf, len);
        c->rtcp_len[c->n_rtcp++] = len;
    }
    return 0;
}

static es_media_io_t io_of(capture_t *c)
{
    return (es_media_io_t){.send_rtp = cap_rtp, .send_rtcp = cap_rtcp, .user = c};
}

static es_track_info_t track(es_media_kind_t kind, es_codec_t codec, uint8_t pt, uint32_t ssrc,
                             const char *mid)
{
    es_track_info_t t = {.kind = kind, .rtx_pt = -1, .ssrc = ssrc, .nack = true, .pli = true};
    t.codec.codec = codec;
    t.codec.pt = pt;
    t.codec.clock_rate = kind == ES_MEDIA_AUDIO ? 48000 : 90000;
    t.codec.apt = -1;
    strcpy(t.mid, mid);
    return t;
}

static const uint8_t VP8_KEY[] = {0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0x55};
static const uint8_t VP8_DELTA[] = {0x10, 0x01, 0x00, 0x00, 0x11, 0x22};
static const uint8_t VP8_CONT[] = {0x00, 0x33, 0x44};
static const uint8_t OPUS[] = {0xfc, 0xff, 0xfe};

/* Builds an RTP packet with an optional abs-send-time extension (id 3) into buf. */
static size_t packet(uint8_t *buf, uint8_t pt, uint16_t seq, uint32_t ts, uint32_t ssrc,
                     const uint8_t *payload, size_t n, bool marker)
{
    es_rtp_packet_t h = {.marker = marker, .payload_type = pt, .sequence = seq, .timestamp = ts, .ssrc = ssrc};
    es_rtp_write_header(&h, buf, 12);
    buf[0] |= 0x10;
    const uint8_t ext[] = {0xbe, 0xde, 0x00, 0x01, 0x32, 0x01, 0x02, 0x03};
    memcpy(buf + 12, ext, sizeof ext);
    memcpy(buf + 20, payload, n);
    return 20 + n;
}

typedef struct fixture {
    es_media_stream_t *ms;
    capture_t src, a, b;
    es_track_info_t src_tracks[2], sink_tracks[2];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->ms = es_media_stream_new("live/test");
    f->src_tracks[0] = track(ES_MEDIA_AUDIO, ES_CODEC_OPUS, 111, 0x1111, "0");
    f->src_tracks[1] = track(ES_MEDIA_VIDEO, ES_CODEC_VP8, 96, 0x2222, "1");
    f->src_tracks[1].ext.abs_send_time = 3;
    f->src_tracks[0].ext.abs_send_time = 3;
    f->sink_tracks[0] = track(ES_MEDIA_AUDIO, ES_CODEC_OPUS, 109, 0xAAAA, "a0");
    f->sink_tracks[1] = track(ES_MEDIA_VIDEO, ES_CODEC_VP8, 100, 0xBBBB, "v1");
    f->sink_tracks[1].ext.mid = 4;
    f->sink_tracks[1].ext.abs_send_time = 7;
    assert_int_equal(es_media_stream_set_source(f->ms, f->src_tracks, 2, io_of(&f->src), 0), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    es_media_stream_free(f->ms);
    free(f);
    return 0;
}

static void feed(fixture_t *f, uint64_t now, uint8_t pt, uint16_t seq, uint32_t ts, uint32_t ssrc,
                 const uint8_t *payload, size_t n)
{
    uint8_t buf[1600];
    size_t len = packet(buf, pt, seq, ts, ssrc, payload, n, true);
    es_media_stream_source_rtp(f->ms, now, buf, len);
}

static es_rtp_packet_t parsed(const capture_t *c, size_t i)
{
    es_rtp_packet_t p;
    assert_int_equal(es_rtp_parse(c->rtp[i], c->rtp_len[i], &p), 0);
    return p;
}

static void test_rewrites_every_field(void **state)
{
    fixture_t *f = *state;
    es_media_sink_t *s = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, io_of(&f->a), 0);
    es_media_sink_start(s, 0);
    feed(f, 1000, 111, 500, 9600, 0x1111, OPUS, sizeof OPUS);
    feed(f, 21000, 111, 501, 10560, 0x1111, OPUS, sizeof OPUS);
    feed(f, 30000, 96, 7000, 3000, 0x2222, VP8_KEY, sizeof VP8_KEY);
    assert_int_equal(f->a.n_rtp, 3);
    es_rtp_packet_t a0 = parsed(&f->a, 0), a1 = parsed(&f->a, 1), v = parsed(&f->a, 2);
    assert_int_equal(a0.payload_type, 109);
    assert_int_equal(a0.ssrc, 0xAAAA);
    assert_int_equal((uint16_t)(a1.sequence - a0.sequence), 1);
    assert_int_equal(a1.timestamp - a0.timestamp, 960);
    assert_memory_equal(a0.payload, OPUS, sizeof OPUS);
    assert_int_equal(v.payload_type, 100);
    assert_int_equal(v.ssrc, 0xBBBB);
    assert_true(v.marker);
    assert_memory_equal(v.payload, VP8_KEY, sizeof VP8_KEY);
    const uint8_t *d;
    assert_int_equal(es_rtp_ext_find(&v, 4, &d), 2); /* our mid "v1" under the player's id */
    assert_memory_equal(d, "v1", 2);
    assert_int_equal(es_rtp_ext_find(&v, 7, &d), 3); /* abs-send-time moved from id 3 to 7 */
    assert_int_equal(d[0], 0x01);
    assert_int_equal(es_rtp_ext_find(&v, 3, &d), -5 /* ES_ENOENT */);
    assert_int_equal(es_rtp_ext_find(&a0, 3, &d), -5); /* the audio sink has no abs-send-time */
}

static bool has_pli(const capture_t *c, uint32_t media_ssrc)
{
    for (size_t i = 0; i < c->n_rtcp; i++) {
        size_t off = 0;
        es_rtcp_header_t h;
        while (es_rtcp_next(c->rtcp[i], c->rtcp_len[i], &off, &h) == 1) {
            es_rtcp_fb_t fb;
            if (h.type == ES_RTCP_PSFB && h.count == ES_RTCP_FMT_PLI && es_rtcp_parse_fb(&h, &fb) == 0 &&
                fb.media_ssrc == media_ssrc)
                return true;
        }
    }
    return false;
}

static void test_video_waits_for_key_frame_and_asks_for_one(void **state)
{
    fixture_t *f = *state;
    feed(f, 0, 96, 100, 3000, 0x2222, VP8_DELTA, sizeof VP8_DELTA); /* no key frame cached */
    es_media_sink_t *s = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, io_of(&f->a), 0);
    es_media_sink_start(s, 1000);
    assert_true(has_pli(&f->src, 0x2222));
    feed(f, 2000, 96, 101, 6000, 0x2222, VP8_DELTA, sizeof VP8_DELTA);
    assert_int_equal(f->a.n_rtp, 0); /* deltas are useless without the key frame */
    feed(f, 3000, 96, 102, 9000, 0x2222, VP8_KEY, sizeof VP8_KEY);
    feed(f, 4000, 96, 103, 9000, 0x2222, VP8_CONT, sizeof VP8_CONT);
    assert_int_equal(f->a.n_rtp, 2);
    es_rtp_packet_t k = parsed(&f->a, 0), c = parsed(&f->a, 1);
    assert_memory_equal(k.payload, VP8_KEY, sizeof VP8_KEY);
    assert_int_equal((uint16_t)(c.sequence - k.sequence), 1);
}

static void test_gop_replay_to_a_new_player(void **state)
{
    fixture_t *f = *state;
    feed(f, 0, 96, 10, 0, 0x2222, VP8_DELTA, sizeof VP8_DELTA);
    feed(f, 1000, 96, 11, 3000, 0x2222, VP8_KEY, sizeof VP8_KEY);
    for (uint16_t i = 0; i < 5; i++) feed(f, 2000 + i, 96, (uint16_t)(12 + i), 6000 + 3000u * i, 0x2222, VP8_DELTA, sizeof VP8_DELTA);
    es_media_sink_t *s = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, io_of(&f->b), 10000);
    assert_int_equal(f->b.n_rtp, 0); /* nothing before the transport is up */
    es_media_sink_start(s, 10000);
    assert_int_equal(f->b.n_rtp, 6); /* the key frame and the 5 packets after it, at once */
    es_rtp_packet_t first = parsed(&f->b, 0);
    assert_memory_equal(first.payload, VP8_KEY, sizeof VP8_KEY);
    for (size_t i = 1; i < 6; i++)
        assert_int_equal((uint16_t)(parsed(&f->b, i).sequence - first.sequence), i);
    feed(f, 20000, 96, 17, 21000, 0x2222, VP8_DELTA, sizeof VP8_DELTA); /* live continues */
    assert_int_equal(f->b.n_rtp, 7);
    assert_int_equal((uint16_t)(parsed(&f->b, 6).sequence - first.sequence), 6);
    json_t *j = es_media_stream_json(f->ms);
    assert_int_equal(json_integer_value(json_object_get(j, "width")), 640);
    assert_int_equal(json_integer_value(json_object_get(j, "height")), 480);
    assert_int_equal(json_integer_value(json_object_get(j, "players")), 1);
    json_decref(j);
}

static void test_nack_from_player_is_answered_from_history(void **state)
{
    fixture_t *f = *state;
    es_media_sink_t *s = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, io_of(&f->a), 0);
    es_media_sink_start(s, 0);
    feed(f, 0, 96, 40, 0, 0x2222, VP8_KEY, sizeof VP8_KEY);
    feed(f, 1000, 96, 41, 0, 0x2222, VP8_CONT, sizeof VP8_CONT);
    feed(f, 2000, 96, 42, 3000, 0x2222, VP8_DELTA, sizeof VP8_DELTA);
    assert_int_equal(f->a.n_rtp, 3);
    es_rtp_packet_t lost = parsed(&f->a, 1);
    uint8_t nack[64];
    int n = es_rtcp_write_nack(0x5555, 0xBBBB, &lost.sequence, 1, nack, sizeof nack);
    assert_true(n > 0);
    es_media_sink_rtcp(s, 5000, nack, (size_t)n);
    assert_int_equal(f->a.n_rtp, 4);
    es_rtp_packet_t again = parsed(&f->a, 3);
    assert_int_equal(again.sequence, lost.sequence);
    assert_int_equal(again.timestamp, lost.timestamp);
    assert_memory_equal(again.payload, VP8_CONT, sizeof VP8_CONT);
    assert_int_equal(es_media_sink_stats(s).retransmits, 1);
    /* a PLI from the player becomes a PLI to the publisher */
    uint8_t pli[16];
    f->src.n_rtcp = 0;
    es_rtcp_write_pli(0x5555, 0xBBBB, pli, sizeof pli);
    es_media_sink_rtcp(s, 6000, pli, 12);
    es_media_stream_tick(f->ms, 400000);
    assert_true(has_pli(&f->src, 0x2222));
}

/* A NACK storm costs at most one retransmission per packet per RTT and ES_RETRANSMITS_PER_S a
 * second: the same NACK repeated is answered once, and NACKs for a whole history are cut off at
 * the bucket. */
static void test_nack_storm_is_bounded(void **state)
{
    fixture_t *f = *state;
    es_media_sink_t *s = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, io_of(&f->b), 0);
    es_media_sink_start(s, 0);
    feed(f, 0, 96, 100, 0, 0x2222, VP8_KEY, sizeof VP8_KEY);
    for (uint16_t i = 1; i < 600; i++) feed(f, i, 96, (uint16_t)(100 + i), i * 90u, 0x2222, VP8_CONT, sizeof VP8_CONT);
    es_rtp_packet_t first = parsed(&f->b, 0);
    size_t sent = f->b.n_rtp;
    uint8_t nack[64];
    int n = es_rtcp_write_nack(0x5555, 0xBBBB, &first.sequence, 1, nack, sizeof nack);
    for (int i = 0; i < 50; i++) es_media_sink_rtcp(s, 10000 + (uint64_t)i * 1000, nack, (size_t)n);
    assert_int_equal(es_media_sink_stats(s).retransmits, 1); /* within 100 ms: once */
    es_media_sink_rtcp(s, 200000, nack, (size_t)n);          /* an RTT later: again */
    assert_int_equal(es_media_sink_stats(s).retransmits, 2);
    /* s, s + ES_RESEND_SLOTS, s, ... in one NACK: the slot is used, the rest refused */
    uint16_t alias[6];
    for (int i = 0; i < 6; i++) alias[i] = (uint16_t)(first.sequence + 3 + (i % 2) * ES_RESEND_SLOTS);
    uint8_t an[64];
    int m = es_rtcp_write_nack(0x5555, 0xBBBB, alias, 2, an, sizeof an);
    for (int i = 0; i < 3; i++) es_media_sink_rtcp(s, 210000, an, (size_t)m);
    assert_int_equal(es_media_sink_stats(s).retransmits, 3);
    /* 500 distinct packets NACKed at once (5 NACKs of 100): the bucket, full again a second
     * later, stops it at ES_RETRANSMITS_PER_S. */
    for (int k = 0; k < 5; k++) {
        uint16_t seqs[100];
        for (int i = 0; i < 100; i++) seqs[i] = (uint16_t)(first.sequence + 1 + k * 100 + i);
        uint8_t big[512];
        n = es_rtcp_write_nack(0x5555, 0xBBBB, seqs, 100, big, sizeof big);
        assert_true(n > 0);
        es_media_sink_rtcp(s, 1300000, big, (size_t)n);
    }
    es_media_sink_stats_t ss = es_media_sink_stats(s);
    assert_int_equal(ss.retransmits, 3 + ES_RETRANSMITS_PER_S);
    assert_int_equal(ss.nacks_ignored, 49 + 5 + 500 - ES_RETRANSMITS_PER_S);
    (void)sent;
}

static void test_rtx_is_unwrapped(void **state)
{
    fixture_t *f = *state;
    es_media_stream_remove_source(f->ms, 0);
    f->src_tracks[1].rtx_pt = 97;
    assert_int_equal(es_media_stream_set_source(f->ms, f->src_tracks, 2, io_of(&f->src), 0), 0);
    es_media_sink_t *s = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, io_of(&f->a), 0);
    es_media_sink_start(s, 0);
    feed(f, 0, 96, 60, 0, 0x2222, VP8_KEY, sizeof VP8_KEY);
    /* RTX of seq 61 (RFC 4588: OSN first), on its own SSRC and payload type */
    uint8_t rtx_payload[2 + sizeof VP8_CONT] = {0x00, 61};
    memcpy(rtx_payload + 2, VP8_CONT, sizeof VP8_CONT);
    feed(f, 1000, 97, 9000, 0, 0x3333, rtx_payload, sizeof rtx_payload);
    assert_int_equal(f->a.n_rtp, 2);
    es_rtp_packet_t k = parsed(&f->a, 0), r = parsed(&f->a, 1);
    assert_int_equal((uint16_t)(r.sequence - k.sequence), 1);
    assert_int_equal(r.payload_type, 100);
    assert_memory_equal(r.payload, VP8_CONT, sizeof VP8_CONT);
}

static void test_numbering_continues_when_the_publisher_returns(void **state)
{
    fixture_t *f = *state;
    es_media_sink_t *s = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, io_of(&f->a), 0);
    es_media_sink_start(s, 0);
    feed(f, 0, 96, 1000, 90000, 0x2222, VP8_KEY, sizeof VP8_KEY);
    feed(f, 33000, 96, 1001, 93000, 0x2222, VP8_DELTA, sizeof VP8_DELTA);
    es_rtp_packet_t before = parsed(&f->a, 1);
    es_media_stream_remove_source(f->ms, 40000);
    assert_false(es_media_stream_has_source(f->ms));
    assert_int_equal(es_media_stream_sink_count(f->ms), 1);
    es_track_info_t next[2] = {f->src_tracks[0], f->src_tracks[1]};
    next[1].ssrc = 0x7777;
    assert_int_equal(es_media_stream_set_source(f->ms, next, 2, io_of(&f->src), 1000000), 0);
    feed(f, 1000000, 96, 5, 12345, 0x7777, VP8_KEY, sizeof VP8_KEY);
    assert_int_equal(f->a.n_rtp, 3);
    es_rtp_packet_t after = parsed(&f->a, 2);
    assert_int_equal(after.ssrc, 0xBBBB);
    assert_int_equal((uint16_t)(after.sequence - before.sequence), 1);
    /* about 967 ms later on the 90 kHz clock: forward, near 87000 ticks */
    uint32_t dt = after.timestamp - before.timestamp;
    assert_true(dt > 80000 && dt < 95000);
}

typedef struct tap_log {
    size_t n_rtp, n_sr;
    size_t track[8];
    uint16_t seq[8];
    uint32_t sr_rtp;
} tap_log_t;

static void tap_rtp(void *user, size_t track_idx, const es_rtp_packet_t *p, uint64_t now)
{
    tap_log_t *l = user;
    if (l->n_rtp < 8) {
        l->track[l->n_rtp] = track_idx;
        l->seq[l->n_rtp] = p->sequence;
    }
    l->n_rtp++;
}

static void tap_sr(void *user, size_t track_idx, uint64_t ntp, uint32_t rtp_ts, uint64_t now)
{
    tap_log_t *l = user;
    l->n_sr++;
    l->sr_rtp = rtp_ts;
}

/* The frame consumer's tap sees media after RTX unwrapping (a retransmission too), the sender
 * reports, and keyframe requests become PLIs to the publisher. */
static void test_tap_and_keyframe_request(void **state)
{
    fixture_t *f = *state;
    es_media_stream_remove_source(f->ms, 0);
    f->src_tracks[1].rtx_pt = 97;
    assert_int_equal(es_media_stream_set_source(f->ms, f->src_tracks, 2, io_of(&f->src), 0), 0);
    tap_log_t log = {0};
    es_media_tap_t tap = {.on_rtp = tap_rtp, .on_sr = tap_sr, .user = &log};
    es_media_stream_set_tap(f->ms, &tap);
    feed(f, 0, 96, 60, 0, 0x2222, VP8_KEY, sizeof VP8_KEY);
    feed(f, 100, 111, 7, 960, 0x1111, OPUS, sizeof OPUS);
    uint8_t rtx_payload[2 + sizeof VP8_CONT] = {0x00, 61};
    memcpy(rtx_payload + 2, VP8_CONT, sizeof VP8_CONT);
    feed(f, 1000, 97, 9000, 0, 0x3333, rtx_payload, sizeof rtx_payload);
    assert_int_equal(log.n_rtp, 3);
    assert_int_equal(log.track[0], 1);
    assert_int_equal(log.seq[0], 60);
    assert_int_equal(log.track[1], 0);
    assert_int_equal(log.track[2], 1);
    assert_int_equal(log.seq[2], 61); /* the original sequence number, not the RTX one */
    es_rtcp_report_t sr = {.ssrc = 0x2222, .ntp = 1ull << 32, .rtp_timestamp = 4242};
    uint8_t b[64];
    int n = es_rtcp_write_sr(&sr, b, sizeof b);
    es_media_stream_source_rtcp(f->ms, 2000, b, (size_t)n);
    assert_int_equal(log.n_sr, 1);
    assert_int_equal(log.sr_rtp, 4242);
    size_t before = f->src.n_rtcp;
    es_media_stream_request_keyframe(f->ms, 3000);
    assert_true(f->src.n_rtcp > before);
    assert_true(has_pli(&f->src, 0x2222));
    es_media_stream_set_tap(f->ms, NULL);
    feed(f, 4000, 96, 62, 3000, 0x2222, VP8_DELTA, sizeof VP8_DELTA);
    assert_int_equal(log.n_rtp, 3);
}

static bool find_nack(const capture_t *c, uint16_t want)
{
    for (size_t i = 0; i < c->n_rtcp; i++) {
        size_t off = 0;
        es_rtcp_header_t h;
        while (es_rtcp_next(c->rtcp[i], c->rtcp_len[i], &off, &h) == 1) {
            es_rtcp_fb_t fb;
            uint16_t seqs[32];
            if (h.type != ES_RTCP_RTPFB || h.count != ES_RTCP_FMT_NACK || es_rtcp_parse_fb(&h, &fb)) continue;
            int n = es_rtcp_nack_lost(&fb, seqs, 32);
            for (int k = 0; k < n; k++)
                if (seqs[k] == want) return true;
        }
    }
    return false;
}

static void test_gaps_are_nacked_and_reports_flow(void **state)
{
    fixture_t *f = *state;
    es_media_sink_t *s = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, io_of(&f->a), 0);
    es_media_sink_start(s, 0);
    feed(f, 0, 96, 1, 0, 0x2222, VP8_KEY, sizeof VP8_KEY);
    feed(f, 1000, 96, 2, 0, 0x2222, VP8_CONT, sizeof VP8_CONT);
    feed(f, 2000, 96, 4, 3000, 0x2222, VP8_DELTA, sizeof VP8_DELTA);
    es_media_stream_tick(f->ms, 10000);
    assert_true(find_nack(&f->src, 3));
    /* an SR from the publisher, then a second: the player gets an SR on its own SSRC */
    es_rtcp_report_t sr = {.ssrc = 0x2222, .ntp = (uint64_t)3900000000u << 32, .rtp_timestamp = 3000};
    uint8_t b[128];
    int n = es_rtcp_write_sr(&sr, b, sizeof b);
    es_media_stream_source_rtcp(f->ms, 20000, b, (size_t)n);
    size_t before = f->a.n_rtcp;
    es_media_stream_tick(f->ms, 1100000);
    assert_true(f->a.n_rtcp > before);
    size_t off = 0;
    es_rtcp_header_t h;
    assert_int_equal(es_rtcp_next(f->a.rtcp[before], f->a.rtcp_len[before], &off, &h), 1);
    es_rtcp_report_t got;
    assert_int_equal(h.type, ES_RTCP_SR);
    assert_int_equal(es_rtcp_parse_report(&h, &got), 0);
    assert_int_equal(got.ssrc, 0xBBBB);
    assert_true(got.ntp > sr.ntp); /* the publisher's clock, advanced by the time since */
    /* and a receiver report went to the publisher */
    bool rr = false;
    for (size_t i = 0; i < f->src.n_rtcp; i++) {
        off = 0;
        while (es_rtcp_next(f->src.rtcp[i], f->src.rtcp_len[i], &off, &h) == 1)
            if (h.type == ES_RTCP_RR) rr = true;
    }
    assert_true(rr);
}

/* A player never gets two payloads under one sequence number (its SRTP would repeat a nonce): a
 * duplicate number from the publisher with other bytes is dropped; a jump in the publisher's
 * numbering, or a new SSRC, makes the player continue from its own last number (video at the
 * next key frame); a very late packet is dropped, and 8 in a row mean the numbering restarted. */
static void test_no_number_carries_two_payloads(void **state)
{
    fixture_t *f = *state;
    es_media_sink_t *s = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, io_of(&f->a), 0);
    es_media_sink_start(s, 0);
    static const uint8_t OPUS2[] = {0xfc, 0x00, 0x01};
    feed(f, 1000, 111, 500, 9600, 0x1111, OPUS, sizeof OPUS);
    feed(f, 2000, 111, 500, 9600, 0x1111, OPUS2, sizeof OPUS2); /* same number, other bytes */
    assert_int_equal(f->a.n_rtp, 1);
    feed(f, 3000, 111, 501, 10560, 0x1111, OPUS, sizeof OPUS);
    feed(f, 4000, 111, 9000, 11520, 0x1111, OPUS, sizeof OPUS); /* a jump of 8499 */
    assert_int_equal(f->a.n_rtp, 3);
    assert_int_equal((uint16_t)(parsed(&f->a, 2).sequence - parsed(&f->a, 1).sequence), 1);
    feed(f, 5000, 111, 9001, 12480, 0x1111, OPUS, sizeof OPUS);
    assert_int_equal((uint16_t)(parsed(&f->a, 3).sequence - parsed(&f->a, 2).sequence), 1);
    feed(f, 6000, 111, 502, 13440, 0x1111, OPUS, sizeof OPUS); /* 8499 behind: dropped */
    assert_int_equal(f->a.n_rtp, 4);
    for (uint16_t i = 0; i < 7; i++) feed(f, 7000 + i, 111, (uint16_t)(503 + i), 14400, 0x1111, OPUS, sizeof OPUS);
    assert_int_equal(f->a.n_rtp, 5); /* the 8th late one in a row: the numbering restarted */
    assert_int_equal((uint16_t)(parsed(&f->a, 4).sequence - parsed(&f->a, 3).sequence), 1);
    feed(f, 8000, 111, 40, 15360, 0x3333, OPUS, sizeof OPUS); /* a new SSRC */
    assert_int_equal(f->a.n_rtp, 6);
    assert_int_equal((uint16_t)(parsed(&f->a, 5).sequence - parsed(&f->a, 4).sequence), 1);
    assert_int_equal(parsed(&f->a, 5).ssrc, 0xAAAA);
}

/* ---- the receive batch ---- */

/* Which party got each RTP packet, in send order, with its sequence number. */
static struct {
    const capture_t *who[256];
    uint16_t seq[256];
    size_t n;
} sent_log;

static int log_rtp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    if (sent_log.n < 256) {
        sent_log.who[sent_log.n] = user;
        sent_log.seq[sent_log.n++] = es_rd16(buf + 2);
    }
    return cap_rtp(user, buf, len, cap);
}

static es_media_io_t logged_io(capture_t *c)
{
    return (es_media_io_t){.send_rtp = log_rtp, .send_rtcp = cap_rtcp, .user = c};
}

/* Inside a batch nothing leaves until its end; then player by player, each player's packets in
 * order (so the UDP layer can send them as one GSO train); nested batches end at the outermost;
 * outside a batch, packets leave at once. */
static void test_batch_sends_player_by_player(void **state)
{
    fixture_t *f = *state;
    memset(&sent_log, 0, sizeof sent_log);
    es_media_sink_t *sa = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, logged_io(&f->a), 0);
    es_media_sink_t *sb = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, logged_io(&f->b), 0);
    es_media_sink_start(sa, 0);
    es_media_sink_start(sb, 0);
    es_media_batch_begin();
    es_media_batch_begin(); /* nested */
    feed(f, 1000, 96, 10, 3000, 0x2222, VP8_KEY, sizeof VP8_KEY);
    feed(f, 1001, 111, 500, 9600, 0x1111, OPUS, sizeof OPUS);
    for (uint16_t i = 0; i < 3; i++) feed(f, 1002 + i, 96, (uint16_t)(11 + i), 3000, 0x2222, VP8_CONT, sizeof VP8_CONT);
    es_media_batch_end();
    assert_int_equal(sent_log.n, 0); /* the outer batch is still open */
    es_media_batch_end();
    assert_int_equal(sent_log.n, 10);
    const capture_t *first = sent_log.who[0];
    for (size_t i = 0; i < 10; i++) assert_ptr_equal(sent_log.who[i], i < 5 ? first : (first == &f->a ? &f->b : &f->a));
    for (size_t half = 0; half < 2; half++) {
        /* video key, audio, 3 continuations: video numbers consecutive in order */
        const capture_t *c = sent_log.who[half * 5];
        es_rtp_packet_t v0 = parsed(c, 0), a0 = parsed(c, 1);
        assert_int_equal(v0.payload_type, 100);
        assert_int_equal(a0.payload_type, 109);
        for (size_t k = 2; k < 5; k++)
            assert_int_equal((uint16_t)(parsed(c, k).sequence - v0.sequence), (uint16_t)(k - 1));
    }
    es_media_batch_end(); /* unbalanced: ignored */
    feed(f, 2000, 111, 501, 10560, 0x1111, OPUS, sizeof OPUS);
    assert_int_equal(sent_log.n, 12); /* no batch: at once, to both */
}

/* A player started inside a batch gets the GOP once (its replay includes the waiting packets);
 * more than 64 waiting packets in one stream leave early, none lost; removing the source sends
 * what waits; freeing a stream with packets waiting drops them safely. */
static void test_batch_edges(void **state)
{
    fixture_t *f = *state;
    memset(&sent_log, 0, sizeof sent_log);
    es_media_sink_t *sa = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, logged_io(&f->a), 0);
    es_media_sink_start(sa, 0);
    es_media_batch_begin();
    feed(f, 1000, 96, 10, 3000, 0x2222, VP8_KEY, sizeof VP8_KEY);
    feed(f, 1001, 96, 11, 3000, 0x2222, VP8_CONT, sizeof VP8_CONT);
    es_media_sink_t *sb = es_media_stream_add_sink(f->ms, f->sink_tracks, 2, logged_io(&f->b), 0);
    es_media_sink_start(sb, 1002);
    es_media_batch_end();
    assert_int_equal(f->a.n_rtp, 2);
    assert_int_equal(f->b.n_rtp, 2); /* the replay, not the replay and the batch */
    assert_int_equal((uint16_t)(parsed(&f->b, 1).sequence - parsed(&f->b, 0).sequence), 1);

    /* 70 audio packets in one batch: all arrive at a, in order */
    size_t before = sent_log.n;
    es_media_batch_begin();
    for (uint16_t i = 0; i < 70; i++) feed(f, 2000 + i, 111, (uint16_t)(600 + i), 9600 + 960u * i, 0x1111, OPUS, sizeof OPUS);
    assert_int_equal(sent_log.n - before, 2 * 64); /* the first 64 left when the 65th came */
    es_media_batch_end();
    assert_int_equal(sent_log.n - before, 2 * 70);
    uint16_t last = 0;
    size_t seen = 0;
    for (size_t i = before; i < sent_log.n; i++) {
        if (sent_log.who[i] != &f->a) continue;
        if (seen++) assert_int_equal((uint16_t)(sent_log.seq[i] - last), 1);
        last = sent_log.seq[i];
    }
    assert_int_equal(seen, 70);

    /* remove_source sends what waits */
    before = sent_log.n;
    es_media_batch_begin();
    feed(f, 3000, 111, 700, 80000, 0x1111, OPUS, sizeof OPUS);
    es_media_stream_remove_source(f->ms, 3001);
    assert_int_equal(sent_log.n - before, 2);
    es_media_batch_end();
    assert_int_equal(sent_log.n - before, 2);

    /* a stream freed with packets waiting (the fixture's teardown frees f->ms; this one is
     * freed inside the batch) */
    es_media_stream_t *other = es_media_stream_new("live/other");
    assert_int_equal(es_media_stream_set_source(other, f->src_tracks, 2, io_of(&f->src), 0), 0);
    es_media_sink_t *so = es_media_stream_add_sink(other, f->sink_tracks, 2, logged_io(&f->b), 0);
    es_media_sink_start(so, 0);
    before = sent_log.n;
    es_media_batch_begin();
    uint8_t buf[64];
    size_t len = packet(buf, 111, 1, 960, 0x1111, OPUS, sizeof OPUS, true);
    es_media_stream_source_rtp(other, 4000, buf, len);
    es_media_stream_source_rtp(f->ms, 4000, buf, len); /* no source any more: ignored */
    es_media_stream_free(other);
    es_media_batch_end();
    assert_int_equal(sent_log.n, before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rewrites_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_video_waits_for_key_frame_and_asks_for_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gop_replay_to_a_new_player, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nack_from_player_is_answered_from_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nack_storm_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rtx_is_unwrapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbering_continues_when_the_publisher_returns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gaps_are_nacked_and_reports_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tap_and_keyframe_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_number_carries_two_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_sends_player_by_player, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_edges, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
