/* Unit tests for src/media/rtmp_bridge.c (RTMP/FLV tags -> the RTP source of a stream's WebRTC
 * fan-out) and es_live_clock_map (src/media/live.c), on a virtual clock.
 *
 * The FLV tags are real: the AVC sequence header carries the SPS and PPS x264 wrote for a
 * 64x48 constrained-baseline stream (ffmpeg -f lavfi -i testsrc2=size=64x48:rate=25 -c:v libx264
 * -profile:v baseline -bf 0 -g 2 -f flv), the key and inter frames are that stream's IDR and
 * P slices (plus a synthetic 2374-byte IDR slice for FU-A: the bridge does not decode video),
 * and the AAC frames are made here by libavcodec's native encoder from a 1 kHz sine (44.1 kHz
 * stereo, AudioSpecificConfig 0x12 0x10), as tests/unit/test_transcode.c does. WebRTC players
 * are sinks of the media stream whose send callbacks capture what they would get; Opus packets
 * are decoded with libopus, and lip sync is checked through the sender reports players get.
 *
 * test_gop_replay_carries_sps_pps guards a fixed bug: src/media/stream.c restarted its GOP cache
 * at the IDR slice that follows the key frame's STAP-A, so a late player got no SPS/PPS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "media_fixtures.h"

#include "estuary/error.h"
#include "estuary/frame_hub.h"
#include "estuary/h264.h"
#include "estuary/live.h"
#include "estuary/rtcp.h"
#include "estuary/rtmp_bridge.h"
#include "estuary/rtp.h"
#include "estuary/stream.h"

#include <jansson.h>
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/log.h>
#include <opus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Real H.264 from x264: SPS, PPS, IDR, P_SLICE, PLID (media_fixtures.h). */

/* ---- FLV tag bodies ---- */

typedef struct body {
    uint8_t b[8192];
    size_t n;
} body_t;

static void put(body_t *x, const uint8_t *p, size_t n)
{
    assert_true(x->n + n <= sizeof x->b);
    memcpy(x->b + x->n, p, n);
    x->n += n;
}

static void put8(body_t *x, uint8_t v) { put(x, &v, 1); }

static void put16(body_t *x, size_t v)
{
    put8(x, (uint8_t)(v >> 8));
    put8(x, (uint8_t)v);
}

/* Legacy VIDEODATA header: FrameType/CodecID, AVCPacketType, SI24 CompositionTime. */
static void video_header(body_t *x, uint8_t first, uint8_t packet_type, int32_t cts)
{
    x->n = 0;
    put8(x, first);
    put8(x, packet_type);
    put8(x, (uint8_t)((uint32_t)cts >> 16));
    put8(x, (uint8_t)((uint32_t)cts >> 8));
    put8(x, (uint8_t)cts);
}

/* An AVCC NAL unit with a 4-byte length. */
static void put_nal(body_t *x, const uint8_t *nal, size_t n)
{
    put8(x, (uint8_t)(n >> 24));
    put8(x, (uint8_t)(n >> 16));
    put16(x, n & 0xffff);
    put(x, nal, n);
}

/* 0x17 0x00 0 0 0 + AVCDecoderConfigurationRecord (version 1, 4-byte lengths, 1 SPS, 1 PPS). */
static body_t avc_config(void)
{
    body_t x;
    video_header(&x, 0x17, 0, 0);
    const uint8_t head[] = {0x01, SPS[1], SPS[2], SPS[3], 0xff, 0xe1};
    put(&x, head, sizeof head);
    put16(&x, sizeof SPS);
    put(&x, SPS, sizeof SPS);
    put8(&x, 1);
    put16(&x, sizeof PPS);
    put(&x, PPS, sizeof PPS);
    return x;
}

static body_t avc_frame(bool key, int32_t cts, const uint8_t *nal, size_t n)
{
    body_t x;
    video_header(&x, key ? 0x17 : 0x27, 1, cts);
    put_nal(&x, nal, n);
    return x;
}

/* A large IDR slice: a real slice header's first bytes, then filler the bridge never reads.
 * FU-A fragments carry at most 1200 - 12 (RTP header) - 2 (FU indicator and header) bytes of
 * it: its 2373 bytes after the NAL header are one more than two fragments hold. */
#define FU_MAX (1200 - 12 - 2)
static uint8_t BIG_IDR[2 * FU_MAX + 2];

static void make_big_idr(void)
{
    memcpy(BIG_IDR, IDR, 16);
    for (size_t i = 16; i < sizeof BIG_IDR; i++) BIG_IDR[i] = (uint8_t)(i * 7 + 3);
}

static const uint8_t AAC_CONFIG[] = {0xaf, 0x00, 0x12, 0x10}; /* AAC-LC 44100 Hz stereo */

/* ---- Real AAC from libavcodec's encoder (as in test_transcode.c) ---- */

#define TEST_PI 3.14159265358979323846
#define AAC_RATE 44100
#define AAC_SECONDS 4

typedef struct aac_frame {
    uint8_t *body; /* 0xAF 0x01 + the raw AAC frame */
    size_t len;
} aac_frame_t;

static aac_frame_t *g_aac;
static size_t g_aac_n;

static void collect(AVCodecContext *enc, AVPacket *pkt, size_t cap)
{
    while (avcodec_receive_packet(enc, pkt) == 0) {
        assert_true(g_aac_n < cap);
        aac_frame_t *f = &g_aac[g_aac_n++];
        f->len = (size_t)pkt->size + 2;
        f->body = malloc(f->len);
        assert_non_null(f->body);
        f->body[0] = 0xaf;
        f->body[1] = 0x01;
        memcpy(f->body + 2, pkt->data, (size_t)pkt->size);
        av_packet_unref(pkt);
    }
}

/* AAC_SECONDS of a 1 kHz sine at amplitude 0.5, AAC-LC 44.1 kHz stereo. */
static void make_aac(void)
{
    av_log_set_level(AV_LOG_ERROR); /* the encoder's statistics on stderr */
    const AVCodec *codec = avcodec_find_encoder_by_name("aac");
    assert_non_null(codec);
    AVCodecContext *enc = avcodec_alloc_context3(codec);
    assert_non_null(enc);
    enc->sample_rate = AAC_RATE;
    enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    av_channel_layout_default(&enc->ch_layout, 2);
    enc->bit_rate = 128000;
    enc->time_base = (AVRational){1, AAC_RATE};
    enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    assert_int_equal(avcodec_open2(enc, codec, NULL), 0);
    /* The config our FLV sequence header announces is the one the encoder uses (which appends
     * an explicit "no SBR" sync extension). */
    assert_true(enc->extradata_size >= 2);
    assert_memory_equal(enc->extradata, AAC_CONFIG + 2, 2);
    int fs = enc->frame_size;
    size_t nframes = (size_t)(AAC_SECONDS * AAC_RATE + fs - 1) / (size_t)fs, cap = nframes + 8;
    g_aac = calloc(cap, sizeof *g_aac);
    assert_non_null(g_aac);
    double ws, wc, re = 0.0, im = 1.0;
    small_sincos(2.0 * TEST_PI * 1000.0 / AAC_RATE, &ws, &wc);
    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    assert_non_null(f);
    assert_non_null(pkt);
    for (size_t i = 0; i < nframes; i++) {
        f->nb_samples = fs;
        f->format = AV_SAMPLE_FMT_FLTP;
        f->sample_rate = AAC_RATE;
        assert_int_equal(av_channel_layout_copy(&f->ch_layout, &enc->ch_layout), 0);
        assert_int_equal(av_frame_get_buffer(f, 0), 0);
        for (int k = 0; k < fs; k++) {
            float v = (float)(0.5 * re);
            ((float *)f->extended_data[0])[k] = v;
            ((float *)f->extended_data[1])[k] = v;
            double nre = re * wc + im * ws, nim = im * wc - re * ws;
            re = nre;
            im = nim;
        }
        f->pts = (int64_t)(i * (size_t)fs);
        assert_int_equal(avcodec_send_frame(enc, f), 0);
        av_frame_unref(f);
        collect(enc, pkt, cap);
    }
    assert_int_equal(avcodec_send_frame(enc, NULL), 0);
    collect(enc, pkt, cap);
    assert_true(g_aac_n >= nframes);
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&enc);
}

/* FLV time of AAC frame i when the audio starts at base_ms: 1024 samples each, rounded to ms as
 * an RTMP encoder stamps them. */
static uint32_t aac_ms(uint32_t base_ms, size_t i)
{
    return base_ms + (uint32_t)((i * 1024 * 1000 + AAC_RATE / 2) / AAC_RATE);
}

static int group_setup(void **state)
{
    (void)state;
    make_big_idr();
    make_aac();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < g_aac_n; i++) free(g_aac[i].body);
    free(g_aac);
    return 0;
}

/* ---- What WebRTC players get ---- */

#define CAP_RTP 1024
#define CAP_RTCP 64
#define AUDIO_SSRC 0xAAAA0001u
#define VIDEO_SSRC 0xBBBB0002u

/* FLV time of the tag being fed, stamped on each packet captured (NO_MS: not a live tag). */
#define NO_MS UINT32_MAX
static uint32_t g_flv_ms = NO_MS;

typedef struct capture {
    uint8_t rtp[CAP_RTP][1600];
    size_t rtp_len[CAP_RTP];
    uint32_t rtp_ms[CAP_RTP];
    size_t n_rtp;
    uint8_t rtcp[CAP_RTCP][512];
    size_t rtcp_len[CAP_RTCP];
    size_t n_rtcp;
} capture_t;

static int cap_rtp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    capture_t *c = user;
    assert_true(cap >= len + ES_STREAM_IO_ROOM);
    assert_true(len <= sizeof c->rtp[0]);
    assert_true(c->n_rtp < CAP_RTP);
    memcpy(c->rtp[c->n_rtp], buf, len);
    c->rtp_len[c->n_rtp] = len;
    c->rtp_ms[c->n_rtp++] = g_flv_ms;
    return 0;
}

static int cap_rtcp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    capture_t *c = user;
    assert_true(cap >= len);
    if (c->n_rtcp < CAP_RTCP && len <= sizeof c->rtcp[0]) {
        memcpy(c->rtcp[c->n_rtcp], buf, len);
        c->rtcp_len[c->n_rtcp++] = len;
    }
    return 0;
}

static es_rtp_packet_t rtp_at(const capture_t *c, size_t i)
{
    es_rtp_packet_t p;
    assert_true(i < c->n_rtp);
    assert_int_equal(es_rtp_parse(c->rtp[i], c->rtp_len[i], &p), 0);
    return p;
}

/* Indices of the captured RTP packets of one SSRC, from index `from` on. */
static size_t of_ssrc(const capture_t *c, uint32_t ssrc, size_t from, size_t *idx, size_t max)
{
    size_t n = 0;
    for (size_t i = from; i < c->n_rtp; i++)
        if (rtp_at(c, i).ssrc == ssrc) {
            assert_true(n < max);
            idx[n++] = i;
        }
    return n;
}

typedef struct fixture {
    es_media_stream_t *ms;
    es_rtmp_bridge_t *b;
    capture_t *cap[2];
    es_media_sink_t *sink[2];
    uint64_t now;
} fixture_t;

#define NOW0 7000000u /* µs: the virtual monotonic clock at the first tag */

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->ms = es_media_stream_new("live/bridge");
    assert_non_null(f->ms);
    f->b = es_rtmp_bridge_new(f->ms, "live/bridge", 48000);
    assert_non_null(f->b);
    for (int i = 0; i < 2; i++) {
        f->cap[i] = calloc(1, sizeof *f->cap[i]);
        assert_non_null(f->cap[i]);
    }
    f->now = NOW0;
    g_flv_ms = NO_MS;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    es_rtmp_bridge_free(f->b, f->now);
    assert_false(es_media_stream_has_source(f->ms));
    es_media_stream_free(f->ms); /* frees the sinks still attached */
    for (int i = 0; i < 2; i++) free(f->cap[i]);
    free(f);
    return 0;
}

/* A player that negotiated Opus and H.264 constrained baseline 3.1 (level-asymmetry-allowed),
 * packetization-mode 1, as browsers offer; no header extensions, so that packet sizes are the
 * bridge's own. */
static es_media_sink_t *add_player(fixture_t *f, int i)
{
    es_track_info_t t[2];
    memset(t, 0, sizeof t);
    t[0].kind = ES_MEDIA_AUDIO;
    t[0].rtx_pt = -1;
    t[0].codec = (es_sdp_codec_t){.pt = 109, .codec = ES_CODEC_OPUS, .clock_rate = 48000,
                                  .channels = 2, .apt = -1};
    strcpy(t[0].mid, "0");
    t[0].ssrc = AUDIO_SSRC;
    t[1].kind = ES_MEDIA_VIDEO;
    t[1].rtx_pt = -1;
    t[1].codec = (es_sdp_codec_t){.pt = 100, .codec = ES_CODEC_H264, .clock_rate = 90000,
                                  .apt = -1, .h264_packetization_mode = 1,
                                  .h264_profile_level_id = 0x42e01f, .h264_level_asymmetry = true};
    strcpy(t[1].mid, "1");
    t[1].ssrc = VIDEO_SSRC;
    t[1].nack = t[1].pli = true;
    es_media_io_t io = {.send_rtp = cap_rtp, .send_rtcp = cap_rtcp, .user = f->cap[i]};
    f->sink[i] = es_media_stream_add_sink(f->ms, t, 2, io, f->now);
    assert_non_null(f->sink[i]);
    g_flv_ms = NO_MS; /* the GOP replay is not a live tag */
    es_media_sink_start(f->sink[i], f->now);
    return f->sink[i];
}

/* One tag at FLV time ts, at the virtual time f->now. */
static void feed(fixture_t *f, uint8_t type, uint32_t ts, const uint8_t *data, size_t len)
{
    es_tag_t *t = es_tag_new(type, ts, data, len);
    assert_non_null(t);
    g_flv_ms = ts;
    es_rtmp_bridge_tag(f->b, t, f->now);
    g_flv_ms = NO_MS;
    es_tag_unref(t);
}

static void feed_body(fixture_t *f, uint8_t type, uint32_t ts, const body_t *x)
{
    feed(f, type, ts, x->b, x->n);
}

static void feed_configs(fixture_t *f, uint32_t ts, bool audio)
{
    body_t c = avc_config();
    feed_body(f, ES_TAG_VIDEO, ts, &c);
    if (audio) feed(f, ES_TAG_AUDIO, ts, AAC_CONFIG, sizeof AAC_CONFIG);
}

/* Audio and video from FLV time from_ms (inclusive) to to_ms (exclusive) as an encoder
 * interleaves them (by timestamp, audio first on a tie): AAC frames stamped by aac_ms(base, i)
 * and 25 fps video with a key frame every `gop` frames counted from base. The clock advances
 * with the tags: f->now ends at the last tag's time. */
static void run(fixture_t *f, uint32_t base, uint32_t from_ms, uint32_t to_ms, bool audio,
                bool video, unsigned gop)
{
    size_t ai = 0;
    while (aac_ms(base, ai) < from_ms) ai++;
    uint32_t vi = (from_ms - base + 39) / 40;
    for (;;) {
        uint32_t at = audio && ai < g_aac_n ? aac_ms(base, ai) : UINT32_MAX;
        uint32_t vt = video ? base + 40 * vi : UINT32_MAX;
        if (at >= to_ms && vt >= to_ms) break;
        if (at <= vt) {
            f->now = NOW0 + (uint64_t)(at - base) * 1000;
            feed(f, ES_TAG_AUDIO, at, g_aac[ai].body, g_aac[ai].len);
            ai++;
        } else {
            f->now = NOW0 + (uint64_t)(vt - base) * 1000;
            bool key = vi % gop == 0;
            body_t x = key ? avc_frame(true, 0, IDR, sizeof IDR)
                           : avc_frame(false, 0, P_SLICE, sizeof P_SLICE);
            feed_body(f, ES_TAG_VIDEO, vt, &x);
            vi++;
        }
    }
}

static json_t *bj(const fixture_t *f)
{
    json_t *j = es_rtmp_bridge_json(f->b);
    assert_non_null(j);
    return j;
}

static json_int_t jint(const fixture_t *f, const char *key)
{
    json_t *j = bj(f);
    json_t *v = json_object_get(j, key);
    assert_true(json_is_integer(v));
    json_int_t r = json_integer_value(v);
    json_decref(j);
    return r;
}

static bool jbool(const fixture_t *f, const char *key)
{
    json_t *j = bj(f);
    json_t *v = json_object_get(j, key);
    assert_true(json_is_boolean(v));
    bool r = json_is_true(v);
    json_decref(j);
    return r;
}

/* The source's track of a kind, or fails. */
static es_track_info_t source_track(const fixture_t *f, es_media_kind_t kind)
{
    es_track_info_t t[ES_STREAM_MAX_TRACKS];
    memset(t, 0, sizeof t);
    size_t n = es_media_stream_source_tracks(f->ms, t, ES_STREAM_MAX_TRACKS);
    for (size_t i = 0; i < n; i++)
        if (t[i].kind == kind) return t[i];
    fail_msg("no source track of kind %d", (int)kind);
    return t[0];
}

static bool has_track(const fixture_t *f, es_media_kind_t kind)
{
    es_track_info_t t[ES_STREAM_MAX_TRACKS];
    size_t n = es_media_stream_source_tracks(f->ms, t, ES_STREAM_MAX_TRACKS);
    for (size_t i = 0; i < n; i++)
        if (t[i].kind == kind) return true;
    return false;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* SPS and PPS in one STAP-A (RFC 6184 §5.7.1): F 0, NRI 3 (the highest of the two), type 24. */
static void check_stap_a(const es_rtp_packet_t *p)
{
    assert_int_equal(p->payload[0], 0x60 | ES_H264_NAL_STAP_A);
    assert_int_equal(p->payload_len, 1 + 2 + sizeof SPS + 2 + sizeof PPS);
    assert_int_equal(rd16(p->payload + 1), sizeof SPS);
    assert_memory_equal(p->payload + 3, SPS, sizeof SPS);
    assert_int_equal(rd16(p->payload + 3 + sizeof SPS), sizeof PPS);
    assert_memory_equal(p->payload + 5 + sizeof SPS, PPS, sizeof PPS);
    assert_false(p->marker);
}

static void check_single(const es_rtp_packet_t *p, const uint8_t *nal, size_t n)
{
    assert_int_equal(p->payload_len, n);
    assert_memory_equal(p->payload, nal, n);
    assert_true(p->marker);
}

/* FU-A fragments (RFC 6184 §5.8) of one NAL unit in c->rtp[first..first+count): indicator
 * F/NRI of the NAL + type 28, header S on the first, E on the last, the NAL's type; every
 * packet within 1200 bytes; the marker on the last only; one timestamp; consecutive sequence
 * numbers; the fragments put back together are the NAL unit. */
static void check_fu_a(const capture_t *c, size_t first, size_t count, const uint8_t *nal,
                       size_t n)
{
    static uint8_t whole[sizeof BIG_IDR];
    assert_true(n <= sizeof whole && count == (n - 1 + FU_MAX - 1) / FU_MAX);
    size_t len = 1;
    es_rtp_packet_t p0 = rtp_at(c, first);
    whole[0] = (uint8_t)((p0.payload[0] & 0xe0) | (p0.payload[1] & 0x1f));
    for (size_t k = 0; k < count; k++) {
        es_rtp_packet_t p = rtp_at(c, first + k);
        assert_true(c->rtp_len[first + k] <= 1200);
        assert_int_equal(p.payload[0], (nal[0] & 0xe0) | ES_H264_NAL_FU_A);
        assert_int_equal(p.payload[1] & 0x1f, nal[0] & 0x1f);
        assert_int_equal(!!(p.payload[1] & 0x80), k == 0);
        assert_int_equal(!!(p.payload[1] & 0x40), k == count - 1);
        assert_int_equal(p.marker, k == count - 1);
        assert_int_equal(p.timestamp, p0.timestamp);
        assert_int_equal((uint16_t)(p.sequence - p0.sequence), k);
        assert_true(len + p.payload_len - 2 <= sizeof whole);
        memcpy(whole + len, p.payload + 2, p.payload_len - 2);
        len += p.payload_len - 2;
    }
    assert_int_equal(len, n);
    assert_memory_equal(whole, nal, n);
}

/* ---- The source appears with the first coded frame ---- */

static void test_source_on_first_coded_frame(void **state)
{
    fixture_t *f = *state;
    capture_t *c = f->cap[0];
    feed_configs(f, 1000, true);
    add_player(f, 0); /* a player that came before the publisher waits with the stream */
    assert_false(es_media_stream_has_source(f->ms));
    assert_false(jbool(f, "active"));
    assert_int_equal(c->n_rtp, 0);

    body_t k = avc_frame(true, 0, IDR, sizeof IDR);
    feed_body(f, ES_TAG_VIDEO, 1000, &k);
    assert_true(es_media_stream_has_source(f->ms));
    es_track_info_t tr[ES_STREAM_MAX_TRACKS];
    assert_int_equal(es_media_stream_source_tracks(f->ms, tr, ES_STREAM_MAX_TRACKS), 2);
    es_track_info_t a = source_track(f, ES_MEDIA_AUDIO), v = source_track(f, ES_MEDIA_VIDEO);
    assert_int_equal(a.codec.codec, ES_CODEC_OPUS);
    assert_int_equal(a.codec.clock_rate, 48000);
    assert_int_equal(a.codec.channels, 2);
    assert_string_equal(a.codec.name, "opus");
    assert_int_equal(v.codec.codec, ES_CODEC_H264);
    assert_int_equal(v.codec.clock_rate, 90000);
    assert_int_equal(v.codec.h264_packetization_mode, 1);
    assert_int_equal(v.codec.h264_profile_level_id, PLID);
    assert_non_null(strstr(v.codec.fmtp, "packetization-mode=1"));
    assert_non_null(strstr(v.codec.fmtp, "profile-level-id=42c00a"));
    assert_true(a.ssrc != 0 && v.ssrc != 0 && a.ssrc != v.ssrc);
    assert_string_not_equal(a.mid, v.mid);

    json_t *j = bj(f);
    assert_true(json_is_true(json_object_get(j, "active")));
    assert_string_equal(json_string_value(json_object_get(j, "video")), "H264 42c00a");
    assert_string_equal(json_string_value(json_object_get(j, "audio")), "AAC->opus");
    assert_int_equal(json_integer_value(json_object_get(j, "width")), 64);
    assert_int_equal(json_integer_value(json_object_get(j, "height")), 48);
    assert_int_equal(json_integer_value(json_object_get(j, "video_frames")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "bad_frames")), 0);
    json_decref(j);

    /* The waiting player got the key frame at once: SPS/PPS, then the IDR slice. */
    assert_int_equal(c->n_rtp, 2);
    es_rtp_packet_t p0 = rtp_at(c, 0), p1 = rtp_at(c, 1);
    assert_int_equal(p0.ssrc, VIDEO_SSRC);
    assert_int_equal(p0.payload_type, 100);
    check_stap_a(&p0);
    check_single(&p1, IDR, sizeof IDR);
    assert_int_equal(p1.timestamp, p0.timestamp);
    assert_int_equal((uint16_t)(p1.sequence - p0.sequence), 1);
}

/* No audio sequence header: the video waits up to a second for one, then goes alone (and the
 * frames held back meanwhile are not sent: players start at the next key frame). */
static void test_video_alone_after_a_second(void **state)
{
    fixture_t *f = *state;
    capture_t *c = f->cap[0];
    feed_configs(f, 5000, false);
    add_player(f, 0);
    run(f, 5000, 5000, 6000, false, true, 25);
    assert_false(es_media_stream_has_source(f->ms));
    assert_int_equal(jint(f, "video_frames"), 25);
    assert_int_equal(c->n_rtp, 0);
    run(f, 5000, 6000, 6001, false, true, 25); /* the key frame at 6000 */
    assert_true(es_media_stream_has_source(f->ms));
    es_track_info_t tr[ES_STREAM_MAX_TRACKS];
    assert_int_equal(es_media_stream_source_tracks(f->ms, tr, ES_STREAM_MAX_TRACKS), 1);
    assert_int_equal(tr[0].kind, ES_MEDIA_VIDEO);
    json_t *j = bj(f);
    assert_true(json_is_null(json_object_get(j, "audio")));
    json_decref(j);
    assert_int_equal(c->n_rtp, 2);
    es_rtp_packet_t p0 = rtp_at(c, 0);
    check_stap_a(&p0);
}

/* Audio-only publisher: the same wait for a video configuration, then an Opus-only source. */
static void test_audio_alone_after_a_second(void **state)
{
    fixture_t *f = *state;
    capture_t *c = f->cap[0];
    feed(f, ES_TAG_AUDIO, 0, AAC_CONFIG, sizeof AAC_CONFIG);
    add_player(f, 0);
    run(f, 0, 0, 990, true, false, 1);
    assert_false(es_media_stream_has_source(f->ms));
    assert_true(jint(f, "audio_frames") > 40);
    assert_int_equal(jint(f, "opus_frames"), 0);
    run(f, 0, 990, 1500, true, false, 1);
    assert_true(es_media_stream_has_source(f->ms));
    es_track_info_t tr[ES_STREAM_MAX_TRACKS];
    assert_int_equal(es_media_stream_source_tracks(f->ms, tr, ES_STREAM_MAX_TRACKS), 1);
    assert_int_equal(tr[0].kind, ES_MEDIA_AUDIO);
    assert_int_equal(tr[0].codec.codec, ES_CODEC_OPUS);
    size_t idx[CAP_RTP];
    size_t n = of_ssrc(c, AUDIO_SSRC, 0, idx, CAP_RTP);
    assert_true(n >= 20);
    assert_int_equal(n, c->n_rtp); /* nothing else */
    assert_int_equal((size_t)jint(f, "opus_frames"), n);
}

/* ---- Video packetization and the GOP cache ---- */

/* A player connected before the publisher's frames sees every packet live. */
static void test_video_packets(void **state)
{
    fixture_t *f = *state;
    capture_t *a = f->cap[0];
    feed_configs(f, 1000, true);
    add_player(f, 0);
    body_t x = avc_frame(true, 0, IDR, sizeof IDR);
    feed_body(f, ES_TAG_VIDEO, 1000, &x);
    x = avc_frame(false, 0, P_SLICE, sizeof P_SLICE);
    feed_body(f, ES_TAG_VIDEO, 1040, &x);
    feed_body(f, ES_TAG_VIDEO, 1080, &x);
    assert_int_equal(a->n_rtp, 4);
    es_rtp_packet_t p[4];
    for (size_t i = 0; i < 4; i++) {
        p[i] = rtp_at(a, i);
        assert_int_equal(p[i].ssrc, VIDEO_SSRC);
        assert_int_equal(p[i].payload_type, 100);
        assert_int_equal((uint16_t)(p[i].sequence - p[0].sequence), i);
    }
    check_stap_a(&p[0]);
    check_single(&p[1], IDR, sizeof IDR);
    check_single(&p[2], P_SLICE, sizeof P_SLICE); /* inter frames: no SPS/PPS */
    check_single(&p[3], P_SLICE, sizeof P_SLICE);
    uint32_t ts0 = p[0].timestamp;
    assert_int_equal(p[1].timestamp, ts0);
    assert_int_equal(p[2].timestamp - ts0, 40 * 90);
    assert_int_equal(p[3].timestamp - ts0, 80 * 90);

    /* A key frame too large for one packet, with a composition time (B-frames): STAP-A, then
     * FU-A; the RTP timestamp is the presentation time (dts + cts) * 90. */
    x = avc_frame(true, 40, BIG_IDR, sizeof BIG_IDR);
    feed_body(f, ES_TAG_VIDEO, 1120, &x);
    x = avc_frame(false, 40, P_SLICE, sizeof P_SLICE);
    feed_body(f, ES_TAG_VIDEO, 1160, &x);
    x = avc_frame(false, -40, P_SLICE, sizeof P_SLICE); /* negative cts: the SI24 sign */
    feed_body(f, ES_TAG_VIDEO, 1200, &x);
    size_t nfu = (sizeof BIG_IDR - 1 + FU_MAX - 1) / FU_MAX; /* 3 */
    assert_int_equal(a->n_rtp, 4 + 1 + nfu + 2);
    es_rtp_packet_t s = rtp_at(a, 4);
    check_stap_a(&s);
    assert_int_equal(s.timestamp - ts0, (1120 + 40 - 1000) * 90);
    assert_int_equal((uint16_t)(s.sequence - p[3].sequence), 1);
    check_fu_a(a, 5, nfu, BIG_IDR, sizeof BIG_IDR);
    assert_int_equal(rtp_at(a, 5).timestamp, s.timestamp);
    es_rtp_packet_t q = rtp_at(a, 5 + nfu), r = rtp_at(a, 6 + nfu);
    check_single(&q, P_SLICE, sizeof P_SLICE);
    check_single(&r, P_SLICE, sizeof P_SLICE);
    assert_int_equal(q.timestamp - ts0, (1160 + 40 - 1000) * 90);
    assert_int_equal(r.timestamp - ts0, (1200 - 40 - 1000) * 90);
    for (size_t i = 0; i < a->n_rtp; i++) assert_true(a->rtp_len[i] <= 1200);
    assert_int_equal(jint(f, "b_frames"), 3); /* every frame with a composition time */
    assert_int_equal(jint(f, "video_frames"), 6);
    assert_int_equal(es_media_stream_source_stats(f->ms).packets, a->n_rtp);
}

/* Where a player's GOP replay begins: 1 when at the key frame's STAP-A, 0 when at the IDR slice
 * after it, which is what src/media/stream.c does today: it restarts its GOP cache at every
 * key-frame start (an SPS counts, and so does the IDR that follows it in the same access unit),
 * so a player that joins gets the IDR without SPS and PPS and cannot decode it; an RTMP
 * publisher never answers the PLI that follows. */
static size_t replay_offset(const capture_t *c)
{
    es_rtp_packet_t p = rtp_at(c, 0);
    if ((p.payload[0] & 0x1f) == ES_H264_NAL_STAP_A) {
        check_stap_a(&p);
        return 1;
    }
    return 0;
}

/* A player started after a key frame gets the GOP at once: the latest key frame onwards. */
static void test_gop_replay_carries_sps_pps(void **state)
{
    fixture_t *f = *state;
    feed_configs(f, 1000, true);
    body_t x = avc_frame(true, 0, IDR, sizeof IDR);
    feed_body(f, ES_TAG_VIDEO, 1000, &x);
    x = avc_frame(false, 0, P_SLICE, sizeof P_SLICE);
    feed_body(f, ES_TAG_VIDEO, 1040, &x);
    feed_body(f, ES_TAG_VIDEO, 1080, &x);

    capture_t *a = f->cap[0];
    add_player(f, 0);
    size_t oa = replay_offset(a);
    assert_int_equal(a->n_rtp, oa + 3);
    es_rtp_packet_t k = rtp_at(a, oa);
    check_single(&k, IDR, sizeof IDR);
    if (oa) assert_int_equal(rtp_at(a, 0).timestamp, k.timestamp);
    for (size_t i = 1; i < 3; i++) {
        es_rtp_packet_t p = rtp_at(a, oa + i);
        check_single(&p, P_SLICE, sizeof P_SLICE);
        assert_int_equal(p.timestamp - k.timestamp, 40 * 90 * i);
        assert_int_equal((uint16_t)(p.sequence - k.sequence), i);
    }

    /* A later key frame (FU-A): a second player's GOP begins there, not at the first one. */
    x = avc_frame(true, 0, BIG_IDR, sizeof BIG_IDR);
    feed_body(f, ES_TAG_VIDEO, 1120, &x);
    x = avc_frame(false, 0, P_SLICE, sizeof P_SLICE);
    feed_body(f, ES_TAG_VIDEO, 1160, &x);
    size_t nfu = (sizeof BIG_IDR - 1 + FU_MAX - 1) / FU_MAX;
    capture_t *b = f->cap[1];
    add_player(f, 1);
    size_t ob = replay_offset(b);
    assert_int_equal(b->n_rtp, ob + nfu + 1);
    check_fu_a(b, ob, nfu, BIG_IDR, sizeof BIG_IDR);
    es_rtp_packet_t b0 = rtp_at(b, ob), bp = rtp_at(b, ob + nfu);
    check_single(&bp, P_SLICE, sizeof P_SLICE);
    assert_int_equal(bp.timestamp - b0.timestamp, 40 * 90);

    /* Live frames then reach both. */
    feed_body(f, ES_TAG_VIDEO, 1200, &x);
    es_rtp_packet_t la = rtp_at(a, a->n_rtp - 1), lb = rtp_at(b, b->n_rtp - 1);
    check_single(&la, P_SLICE, sizeof P_SLICE);
    check_single(&lb, P_SLICE, sizeof P_SLICE);
    assert_int_equal(la.timestamp - k.timestamp, 200 * 90);
    assert_int_equal(lb.timestamp - b0.timestamp, 80 * 90);
    /* The replay starts with the key frame's STAP-A (SPS, PPS), not at the IDR slice. */
    assert_true(oa > 0);
    assert_true(ob > 0);
}

/* ---- Audio: AAC -> Opus only for players; lip sync through the sender reports ---- */

/* The Opus packets of one player from capture index `from` on: payload type and SSRC, one
 * sequence number and 960 ticks apart, each a 20 ms packet libopus decodes, and the decoded
 * audio the source's 1 kHz sine (RMS of a 0.5 sine: 0.35). Returns how many. */
static size_t check_opus(const capture_t *c, size_t from, size_t *idx)
{
    size_t n = of_ssrc(c, AUDIO_SSRC, from, idx, CAP_RTP);
    if (!n) return 0;
    int err;
    OpusDecoder *dec = opus_decoder_create(48000, 2, &err);
    assert_non_null(dec);
    static float pcm[960 * 2];
    double sum = 0;
    size_t counted = 0;
    es_rtp_packet_t first = rtp_at(c, idx[0]);
    for (size_t k = 0; k < n; k++) {
        es_rtp_packet_t p = rtp_at(c, idx[k]);
        assert_int_equal(p.payload_type, 109);
        assert_int_equal((uint16_t)(p.sequence - first.sequence), k);
        assert_int_equal(p.timestamp - first.timestamp, 960u * k);
        assert_int_equal(opus_packet_get_nb_samples(p.payload, (opus_int32)p.payload_len, 48000),
                         960);
        assert_int_equal(opus_decode_float(dec, p.payload, (opus_int32)p.payload_len, pcm, 960, 0),
                         960);
        if (k >= 5) /* past the encoders' priming */
            for (size_t i = 0; i < 960; i++, counted++) sum += (double)pcm[i * 2] * pcm[i * 2];
    }
    opus_decoder_destroy(dec);
    if (counted) {
        double ms = sum / (double)counted; /* mean square: 0.125 for the sine */
        assert_true(ms > 0.06 && ms < 0.2);
    }
    return n;
}

typedef struct sr_pair {
    uint64_t ntp_v, ntp_a;
    uint32_t rtp_v, rtp_a;
} sr_pair_t;

/* The latest sender reports of both tracks a player got from capture index rtcp_from on. */
static sr_pair_t last_srs(const capture_t *c, size_t rtcp_from)
{
    sr_pair_t s;
    bool v = false, a = false;
    memset(&s, 0, sizeof s);
    for (size_t i = rtcp_from; i < c->n_rtcp; i++) {
        size_t off = 0;
        es_rtcp_header_t h;
        while (es_rtcp_next(c->rtcp[i], c->rtcp_len[i], &off, &h) == 1) {
            es_rtcp_report_t r;
            if (h.type != ES_RTCP_SR || es_rtcp_parse_report(&h, &r) != 0) continue;
            if (r.ssrc == VIDEO_SSRC) {
                v = true;
                s.ntp_v = r.ntp;
                s.rtp_v = r.rtp_timestamp;
            } else if (r.ssrc == AUDIO_SSRC) {
                a = true;
                s.ntp_a = r.ntp;
                s.rtp_a = r.rtp_timestamp;
            }
        }
    }
    assert_true(v && a);
    return s;
}

static double ntp_s(uint64_t ntp)
{
    return (double)(ntp >> 32) + (double)(ntp & 0xffffffffu) / 4294967296.0;
}

/* Timers as the server runs them, at the clock of the last tag: the bridge's sender report
 * (it maps the media time now to both tracks' RTP clocks with one NTP time), then 10 ms later
 * the stream's reports to its players (their own RTP clocks, the publisher's NTP). Then, for
 * the live video packets of player c (FLV time known) and its Opus packets (packet k starts at
 * FLV time first_audio_ms + 20 k: the first packet starts with the first AAC frame the
 * transcoder got), the NTP instants the player computes from its reports differ as the FLV
 * times do: lip sync. Returns the largest error in ms. */
static double check_lip_sync(fixture_t *f, capture_t *c, size_t rtp_from, uint32_t first_audio_ms)
{
    size_t rtcp_from = c->n_rtcp;
    es_rtmp_bridge_tick(f->b, f->now);
    f->now += 10000;
    es_rtmp_bridge_tick(f->b, f->now);
    sr_pair_t s = last_srs(c, rtcp_from);
    /* Both reports derive from one report of the bridge and went out in the same tick. */
    assert_true(s.ntp_v == s.ntp_a);
    static size_t vi[CAP_RTP], ai[CAP_RTP];
    size_t nv = of_ssrc(c, VIDEO_SSRC, rtp_from, vi, CAP_RTP);
    size_t na = of_ssrc(c, AUDIO_SSRC, rtp_from, ai, CAP_RTP);
    assert_true(nv > 10 && na > 10);
    es_rtp_packet_t a0 = rtp_at(c, ai[0]);
    double worst = 0;
    size_t checked = 0;
    for (size_t k = 0; k < na; k += 7) {
        es_rtp_packet_t ap = rtp_at(c, ai[k]);
        assert_int_equal(ap.timestamp - a0.timestamp, 960u * k);
        double at = ntp_s(s.ntp_a) + (double)(int32_t)(ap.timestamp - s.rtp_a) / 48000.0;
        double a_ms = first_audio_ms + 20.0 * (double)k;
        for (size_t i = 0; i < nv; i++) {
            if (c->rtp_ms[vi[i]] == NO_MS) continue;
            es_rtp_packet_t vp = rtp_at(c, vi[i]);
            double vt = ntp_s(s.ntp_v) + (double)(int32_t)(vp.timestamp - s.rtp_v) / 90000.0;
            double err = (at - vt) * 1000.0 - (a_ms - (double)c->rtp_ms[vi[i]]);
            if (err < 0) err = -err;
            if (err > worst) worst = err;
            checked++;
        }
    }
    assert_true(checked > 100);
    /* Within 2 ms: FLV's 1 ms rounding of the AAC frame times and the resampler's lag (under
     * 1 ms); the Opus encoder's look-ahead (6.5 ms) is in the audio itself, not in the
     * timestamps. */
    print_message("  lip sync: largest error %.2f ms over %zu audio/video pairs\n", worst, checked);
    assert_true(worst < 2.0);
    return worst;
}

static void test_opus_only_for_players_and_in_sync(void **state)
{
    fixture_t *f = *state;
    capture_t *c = f->cap[0];
    feed_configs(f, 1000, true);
    run(f, 1000, 1000, 1600, true, true, 50);
    assert_true(es_media_stream_has_source(f->ms));
    assert_true(jint(f, "audio_frames") >= 25);
    /* No player: no transcoder, no Opus, only video entered the stream (15 frames + the
     * STAP-A of the key frame). */
    assert_false(jbool(f, "transcoding"));
    assert_int_equal(jint(f, "opus_frames"), 0);
    assert_int_equal(es_media_stream_source_stats(f->ms).packets, 15 + 1);
    static size_t idx[CAP_RTP];

    add_player(f, 0);
    size_t gop = c->n_rtp; /* the GOP: video only (see test_gop_replay_carries_sps_pps) */
    assert_int_equal(gop, replay_offset(c) + 15);
    assert_int_equal(of_ssrc(c, VIDEO_SSRC, 0, idx, CAP_RTP), gop);
    size_t first = 0;
    while (aac_ms(1000, first) < 1600) first++;
    uint32_t first_ms = aac_ms(1000, first);
    run(f, 1000, 1600, 3000, true, true, 50);
    assert_true(jbool(f, "transcoding"));
    size_t n = check_opus(c, 0, idx);
    size_t frames = 0;
    while (aac_ms(1000, first + frames) < 3000) frames++;
    size_t expect = frames * 1024 * 48000 / AAC_RATE / 960;
    assert_true(n + 2 >= expect && n <= expect);
    assert_int_equal((size_t)jint(f, "opus_frames"), n);
    assert_true(c->rtp_ms[idx[0]] >= 1600);
    check_lip_sync(f, c, 0, first_ms);
}

/* The transcoder runs only while the stream has players: dropped at the tick after the last
 * one leaves, started again (in sync) for the next. */
static void test_transcoder_follows_players(void **state)
{
    fixture_t *f = *state;
    feed_configs(f, 0, true);
    add_player(f, 0);
    run(f, 0, 0, 400, true, true, 50);
    assert_true(jbool(f, "transcoding"));
    static size_t idx[CAP_RTP];
    size_t n0 = check_opus(f->cap[0], 0, idx);
    assert_true(n0 >= 15);

    es_media_stream_remove_sink(f->ms, f->sink[0]);
    f->sink[0] = NULL;
    es_rtmp_bridge_tick(f->b, f->now);
    assert_false(jbool(f, "transcoding"));
    json_int_t opus = jint(f, "opus_frames"), audio = jint(f, "audio_frames");
    run(f, 0, 400, 800, true, true, 50);
    assert_false(jbool(f, "transcoding"));
    assert_int_equal(jint(f, "opus_frames"), opus);
    assert_true(jint(f, "audio_frames") > audio + 15);

    capture_t *c = f->cap[1];
    add_player(f, 1);
    size_t gop = c->n_rtp;
    assert_int_equal(gop, replay_offset(c) + 20); /* the key frame at 0 and the 19 after it */
    size_t first = 0;
    while (aac_ms(0, first) < 800) first++;
    run(f, 0, 800, 1600, true, true, 50);
    assert_true(jbool(f, "transcoding"));
    size_t n1 = check_opus(c, 0, idx);
    assert_true(n1 >= 35);
    assert_int_equal(jint(f, "opus_frames"), opus + (json_int_t)n1);
    assert_true(c->rtp_ms[idx[0]] >= 800);
    check_lip_sync(f, c, gop, aac_ms(0, first));
}

/* ---- What the bridge does not carry ---- */

static void test_hevc_is_skipped(void **state)
{
    fixture_t *f = *state;
    capture_t *c = f->cap[0];
    static const uint8_t nal[] = {0x26, 0x01, 0xaf, 0x09, 0x40}; /* an HEVC IDR_W_RADL header */
    body_t legacy_cfg, legacy_key, ex_cfg, ex_key, ex_x;
    video_header(&legacy_cfg, 0x1c, 0, 0); /* CodecID 12, sequence header */
    const uint8_t hvcc[] = {0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00,
                            0x3c, 0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 0x00};
    put(&legacy_cfg, hvcc, sizeof hvcc);
    video_header(&legacy_key, 0x1c, 1, 0);
    put_nal(&legacy_key, nal, sizeof nal);
    const uint8_t hvc1[] = {'h', 'v', 'c', '1'};
    ex_cfg.n = 0; /* Enhanced RTMP: IsExHeader, FrameType 1, SequenceStart */
    put8(&ex_cfg, 0x90);
    put(&ex_cfg, hvc1, 4);
    put(&ex_cfg, hvcc, sizeof hvcc);
    ex_key.n = 0; /* CodedFrames: SI24 composition time */
    put8(&ex_key, 0x91);
    put(&ex_key, hvc1, 4);
    put8(&ex_key, 0);
    put16(&ex_key, 0);
    put_nal(&ex_key, nal, sizeof nal);
    ex_x.n = 0; /* CodedFramesX, inter */
    put8(&ex_x, 0xa3);
    put(&ex_x, hvc1, 4);
    put_nal(&ex_x, nal, sizeof nal);

    feed(f, ES_TAG_AUDIO, 0, AAC_CONFIG, sizeof AAC_CONFIG);
    feed_body(f, ES_TAG_VIDEO, 0, &legacy_cfg);
    feed_body(f, ES_TAG_VIDEO, 0, &ex_cfg);
    add_player(f, 0);
    for (uint32_t t = 0; t < 1500; t += 100) {
        feed_body(f, ES_TAG_VIDEO, t, &legacy_key);
        feed_body(f, ES_TAG_VIDEO, t + 40, &ex_key);
        feed_body(f, ES_TAG_VIDEO, t + 80, &ex_x);
        run(f, 0, t, t + 100, true, false, 1);
        if (t + 100 <= 1000) assert_false(es_media_stream_has_source(f->ms));
    }
    /* Audio alone, once the wait for a video configuration is over. */
    assert_true(es_media_stream_has_source(f->ms));
    assert_true(has_track(f, ES_MEDIA_AUDIO));
    assert_false(has_track(f, ES_MEDIA_VIDEO));
    json_t *j = bj(f);
    assert_true(json_is_null(json_object_get(j, "video")));
    assert_int_equal(json_integer_value(json_object_get(j, "video_frames")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "bad_frames")), 0);
    assert_null(json_object_get(j, "width"));
    json_decref(j);
    static size_t idx[CAP_RTP];
    size_t n = check_opus(c, 0, idx);
    assert_true(n > 0);
    assert_int_equal(n, c->n_rtp);
}

static void test_mp3_and_opus_audio_are_skipped(void **state)
{
    fixture_t *f = *state;
    capture_t *c = f->cap[0];
    /* MP3 44.1 kHz stereo (SoundFormat 2) with an MPEG-1 Layer III frame header, and Enhanced
     * RTMP Opus (SequenceStart, CodedFrames). */
    static const uint8_t mp3[] = {0x2f, 0xff, 0xfb, 0x90, 0x64, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t opus_start[] = {0x90, 'O', 'p', 'u', 's', 'O', 'p', 'u', 's', 'H',
                                         'e', 'a', 'd', 0x01, 0x02, 0x38, 0x01, 0x80, 0xbb,
                                         0x00, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t opus_frame[] = {0x91, 'O', 'p', 'u', 's', 0xfc, 0xff, 0xfe};
    feed_configs(f, 0, false);
    feed(f, ES_TAG_AUDIO, 0, opus_start, sizeof opus_start);
    add_player(f, 0);
    for (uint32_t t = 0; t < 1200; t += 40) {
        feed(f, ES_TAG_AUDIO, t, mp3, sizeof mp3);
        feed(f, ES_TAG_AUDIO, t + 20, opus_frame, sizeof opus_frame);
        run(f, 0, t, t + 40, false, true, 25);
        if (t + 40 <= 1000) assert_false(es_media_stream_has_source(f->ms));
    }
    assert_true(es_media_stream_has_source(f->ms));
    assert_true(has_track(f, ES_MEDIA_VIDEO));
    assert_false(has_track(f, ES_MEDIA_AUDIO));
    assert_int_equal(jint(f, "audio_frames"), 0);
    assert_int_equal(jint(f, "bad_frames"), 0);
    assert_false(jbool(f, "transcoding"));
    size_t idx[64];
    assert_int_equal(of_ssrc(c, VIDEO_SSRC, 0, idx, 64), c->n_rtp);
    es_rtp_packet_t p0 = rtp_at(c, 0);
    check_stap_a(&p0); /* from the key frame at 1000 */
    assert_int_equal(c->n_rtp, 2 + 4);
}

/* ---- Bad input ---- */

static void test_garbage_is_counted_and_ignored(void **state)
{
    fixture_t *f = *state;
    capture_t *c = f->cap[0];
    feed_configs(f, 0, true);
    add_player(f, 0);
    run(f, 0, 0, 200, true, true, 50);
    assert_true(jbool(f, "transcoding"));
    size_t n_rtp = c->n_rtp;
    json_int_t vframes = jint(f, "video_frames");
    assert_int_equal(jint(f, "bad_frames"), 0);

    static const uint8_t v1[] = {0x17};                           /* no AVCPacketType */
    static const uint8_t v4[] = {0x27, 0x01, 0x00, 0x00};         /* CompositionTime cut */
    static const uint8_t v5[] = {0x91, 'a', 'v', 'c', '1'};       /* ExHeader avc1, no SI24 */
    static const uint8_t v10[] = {0x27, 0x01, 0x00, 0x00, 0x00,   /* AVCC length past the end */
                                  0x00, 0x00, 0x10, 0x00, 0x41};
    static const uint8_t a1[] = {0xaf};                           /* no AACPacketType */
    static const uint8_t a3[] = {0x91, 'm', 'p'};                 /* ExHeader, FourCC cut */
    static const uint8_t a5[] = {0xaf, 0x01, 0xde, 0xad, 0xbe};   /* an undecodable AAC frame */
    feed(f, ES_TAG_VIDEO, 200, NULL, 0);
    feed(f, ES_TAG_AUDIO, 200, NULL, 0);
    feed(f, ES_TAG_VIDEO, 200, v1, sizeof v1);
    feed(f, ES_TAG_VIDEO, 200, v4, sizeof v4);
    feed(f, ES_TAG_VIDEO, 200, v5, sizeof v5);
    feed(f, ES_TAG_VIDEO, 200, v10, sizeof v10);
    feed(f, ES_TAG_AUDIO, 200, a1, sizeof a1);
    feed(f, ES_TAG_AUDIO, 200, a3, sizeof a3);
    feed(f, ES_TAG_AUDIO, 200, a5, sizeof a5);
    assert_int_equal(jint(f, "bad_frames"), 9);
    assert_int_equal(c->n_rtp, n_rtp); /* nothing reached the player */
    assert_int_equal(jint(f, "video_frames"), vframes + 1); /* v10 was a frame, a bad one */
    assert_true(es_media_stream_has_source(f->ms));
    assert_true(has_track(f, ES_MEDIA_AUDIO) && has_track(f, ES_MEDIA_VIDEO));
    assert_true(jbool(f, "transcoding"));

    /* And the stream goes on. */
    run(f, 0, 201, 600, true, true, 50);
    size_t idx[CAP_RTP];
    size_t nv = of_ssrc(c, VIDEO_SSRC, n_rtp, idx, CAP_RTP);
    assert_int_equal(nv, 9); /* 240 .. 560 */
    assert_true(of_ssrc(c, AUDIO_SSRC, n_rtp, idx, CAP_RTP) >= 15);
    assert_int_equal(jint(f, "bad_frames"), 9);
}

static void test_bad_avc_config_is_ignored(void **state)
{
    fixture_t *f = *state;
    capture_t *c = f->cap[0];
    body_t v2 = avc_config(), cut = avc_config(), no_pps = avc_config(), not_sps = avc_config();
    v2.b[5] = 2;                       /* configurationVersion 2 */
    cut.n = 5 + 8 + 10;                /* the SPS cut short */
    no_pps.n = 5 + 8 + sizeof SPS;     /* numOfPictureParameterSets missing */
    not_sps.b[5 + 8] = 0x68;           /* the "SPS" is a PPS NAL */
    body_t key = avc_frame(true, 0, IDR, sizeof IDR);

    feed(f, ES_TAG_AUDIO, 0, AAC_CONFIG, sizeof AAC_CONFIG);
    add_player(f, 0);
    feed_body(f, ES_TAG_VIDEO, 0, &v2);
    feed_body(f, ES_TAG_VIDEO, 0, &cut);
    feed_body(f, ES_TAG_VIDEO, 0, &no_pps);
    feed_body(f, ES_TAG_VIDEO, 0, &not_sps);
    feed_body(f, ES_TAG_VIDEO, 0, &key);
    /* No usable configuration: the key frame is not even counted, and with the audio config
     * alone the source waits (for audio frames or a video config). */
    assert_false(es_media_stream_has_source(f->ms));
    assert_int_equal(jint(f, "video_frames"), 0);
    assert_int_equal(c->n_rtp, 0);

    feed_configs(f, 40, false);
    feed_body(f, ES_TAG_VIDEO, 40, &key);
    assert_true(es_media_stream_has_source(f->ms));
    assert_true(has_track(f, ES_MEDIA_VIDEO) && has_track(f, ES_MEDIA_AUDIO));
    assert_int_equal(source_track(f, ES_MEDIA_VIDEO).codec.h264_profile_level_id, PLID);

    /* A bad configuration mid-stream changes nothing: the next key frame still carries the
     * SPS and PPS of the good one. */
    feed_body(f, ES_TAG_VIDEO, 80, &v2);
    feed_body(f, ES_TAG_VIDEO, 80, &not_sps);
    feed_body(f, ES_TAG_VIDEO, 80, &cut);
    size_t before = c->n_rtp;
    feed_body(f, ES_TAG_VIDEO, 120, &key);
    assert_int_equal(c->n_rtp, before + 2);
    es_rtp_packet_t s = rtp_at(c, before);
    check_stap_a(&s);
    json_t *j = bj(f);
    assert_string_equal(json_string_value(json_object_get(j, "video")), "H264 42c00a");
    assert_int_equal(json_integer_value(json_object_get(j, "width")), 64);
    json_decref(j);
}

/* ---- es_live_clock_map ---- */

static void test_live_clock_map(void **state)
{
    (void)state;
    es_live_clock_t c;
    memset(&c, 0, sizeof c);
    assert_int_equal(es_live_clock_map(&c, 70000), 0);     /* the first tag is at 0 */
    assert_int_equal(es_live_clock_map(&c, 70040), 40);    /* spacing kept */
    assert_int_equal(es_live_clock_map(&c, 70080), 80);
    assert_int_equal(es_live_clock_map(&c, 70060), 60);    /* audio 20 ms behind: as is */
    assert_int_equal(es_live_clock_map(&c, 70080), 80);
    assert_int_equal(es_live_clock_map(&c, 70120), 120);
    /* A new publisher restarting at 0: continue from the last output + 1. */
    assert_int_equal(es_live_clock_map(&c, 0), 121);
    assert_int_equal(es_live_clock_map(&c, 40), 161);
    assert_int_equal(es_live_clock_map(&c, 20), 141);      /* small steps back still pass */
    /* A jump forward by more than 5 s: the same. */
    assert_int_equal(es_live_clock_map(&c, 40 + 5001 + 40), 162);
    assert_int_equal(es_live_clock_map(&c, 40 + 5001 + 80), 202);
    /* Exactly ES_LIVE_CLOCK_JUMP_MS either way is no discontinuity. */
    assert_int_equal(es_live_clock_map(&c, 40 + 5001 + 80 + ES_LIVE_CLOCK_JUMP_MS), 5202);
    assert_int_equal(es_live_clock_map(&c, 40 + 5001 + 80), 202);
    assert_int_equal(es_live_clock_map(&c, 40 + 5001 + 120 + ES_LIVE_CLOCK_JUMP_MS), 5242);
    /* A jump back by more than 5 s that is not to 0. */
    assert_int_equal(es_live_clock_map(&c, 100), 5243);

    /* The input's 32-bit millisecond clock wraps (49.7 days): no discontinuity. */
    memset(&c, 0, sizeof c);
    assert_int_equal(es_live_clock_map(&c, UINT32_MAX - 50), 0);
    assert_int_equal(es_live_clock_map(&c, UINT32_MAX - 10), 40);
    assert_int_equal(es_live_clock_map(&c, 29), 80);
    assert_int_equal(es_live_clock_map(&c, 9), 60);
    assert_int_equal(es_live_clock_map(&c, 69), 120);

    /* A tag just behind the first one (audio behind the key frame a player starts with) must
     * not come out before 0, i.e. near 2^32 ms: it is clamped to 0; so after a discontinuity. */
    memset(&c, 0, sizeof c);
    assert_int_equal(es_live_clock_map(&c, 30000), 0);
    assert_int_equal(es_live_clock_map(&c, 29980), 0);
    assert_int_equal(es_live_clock_map(&c, 30040), 40);
    memset(&c, 0, sizeof c);
    assert_int_equal(es_live_clock_map(&c, 0), 0);          /* cached sequence headers */
    assert_int_equal(es_live_clock_map(&c, 60000), 1);      /* the GOP, a minute later */
    assert_int_equal(es_live_clock_map(&c, 59990), 0);      /* audio 10 ms behind it */
    assert_int_equal(es_live_clock_map(&c, 60040), 41);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_source_on_first_coded_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_video_alone_after_a_second, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audio_alone_after_a_second, setup, teardown),
        cmocka_unit_test_setup_teardown(test_video_packets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gop_replay_carries_sps_pps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opus_only_for_players_and_in_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transcoder_follows_players, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hevc_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mp3_and_opus_audio_are_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_is_counted_and_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_avc_config_is_ignored, setup, teardown),
        cmocka_unit_test(test_live_clock_map),
    };
    return cmocka_run_group_tests_name("rtmp_bridge", tests, group_setup, group_teardown);
}
