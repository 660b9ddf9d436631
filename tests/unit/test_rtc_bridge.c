/* Unit tests for src/media/rtc_bridge.c (a WebRTC publisher's RTP -> FLV tags for RTMP,
 * HTTP-FLV and HLS), on a virtual clock.
 *
 * A media stream gets a source of two tracks (Opus pt 111, H.264 pt 102 packetization-mode 1)
 * whose RTCP callback captures what goes to the publisher (PLIs), and the bridge records every
 * tag it outputs. The RTP is real: the video is the SPS, PPS, IDR and P slices x264 wrote for a
 * 64x48 constrained-baseline stream (the arrays of tests/unit/test_rtmp_bridge.c), packetized
 * by es_h264_packetize (STAP-A, FU-A, single NAL units); the audio is Opus made here by libopus
 * from a 1 kHz sine (silence, then tone bursts), and the AAC that comes out is decoded with
 * libavcodec. The publisher's clocks start at arbitrary RTP offsets (both wrap 2^32 mid-run),
 * its sender reports map one NTP clock to both, and its video reaches us 150 ms later than its
 * audio: only SR alignment puts them back in sync.
 *
 * test_no_pli_once_the_key_frame_came (and the PLI counts of test_loss_in_key_frame and
 * test_key_interval) guard a fixed bug: the bridge asked for a key frame on every packet of the
 * very key frame that ended its wait, before its access unit was complete, which re-armed the
 * stream's PLI retries (ended by that frame's first packet): up to five needless PLIs, each a
 * key frame from the publisher, after every start or recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "media_fixtures.h"

#include "estuary/error.h"
#include "estuary/flv.h"
#include "estuary/frame_hub.h"
#include "estuary/h264.h"
#include "estuary/rtc_bridge.h"
#include "estuary/rtcp.h"
#include "estuary/rtp.h"
#include "estuary/stream.h"
#include "estuary/transcode.h"

#include <jansson.h>
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/log.h>
#include <opus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Real H.264 from x264: SPS, PPS, IDR, P_SLICE (media_fixtures.h). */

/* ---- Real Opus from libopus's encoder ---- */

#define TEST_PI 3.14159265358979323846
#define TONE_AMPLITUDE 0.5
#define TONE_RMS 0.35355339059327373 /* TONE_AMPLITUDE / sqrt(2) */
#define OPUS_PACKETS 150             /* 3 s of 20 ms packets */

/* The tone bursts, in the publisher's capture time (ms): each starts with a video frame. */
static const uint32_t TONE_ON[2] = {1200, 2400};
#define TONE_MS 600

typedef struct opus_pkt {
    uint8_t data[1500];
    size_t len;
} opus_pkt_t;

static opus_pkt_t *g_opus;

static bool tone_at(size_t sample)
{
    for (size_t i = 0; i < 2; i++)
        if (sample >= TONE_ON[i] * 48u && sample < (TONE_ON[i] + TONE_MS) * 48u) return true;
    return false;
}

/* OPUS_PACKETS stereo 20 ms packets of a 1 kHz sine at TONE_AMPLITUDE during the bursts,
 * silence elsewhere. */
static void make_opus(void)
{
    int err;
    OpusEncoder *enc = opus_encoder_create(48000, 2, OPUS_APPLICATION_AUDIO, &err);
    assert_non_null(enc);
    assert_int_equal(opus_encoder_ctl(enc, OPUS_SET_BITRATE(96000)), OPUS_OK);
    g_opus = calloc(OPUS_PACKETS, sizeof *g_opus);
    assert_non_null(g_opus);
    float pcm[960 * 2];
    double ws, wc, re = 0.0, im = 1.0;
    small_sincos(2.0 * TEST_PI * 1000.0 / 48000, &ws, &wc);
    for (size_t i = 0; i < OPUS_PACKETS; i++) {
        for (size_t k = 0; k < 960; k++) {
            float v = tone_at(i * 960 + k) ? (float)(TONE_AMPLITUDE * re) : 0.0f;
            pcm[2 * k] = pcm[2 * k + 1] = v;
            double nre = re * wc + im * ws, nim = im * wc - re * ws;
            re = nre;
            im = nim;
        }
        opus_int32 n = opus_encode_float(enc, pcm, 960, g_opus[i].data, sizeof g_opus[i].data);
        assert_true(n > 0);
        g_opus[i].len = (size_t)n;
    }
    opus_encoder_destroy(enc);
}

static int group_setup(void **state)
{
    (void)state;
    av_log_set_level(AV_LOG_ERROR);
    make_opus();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(g_opus);
    return 0;
}

/* ---- The stream, the bridge and what they send ---- */

#define AUDIO_PT 111
#define VIDEO_PT 102
#define AUDIO_SSRC 0x0a0d1051u
#define VIDEO_SSRC 0x0b1de051u
#define NOW0 5000000u   /* µs: the virtual monotonic clock when the stream is made */
#define TICK_US 10000u  /* stream and bridge timers every 10 ms */
#define MAX_PAYLOAD 256 /* the IDR slice (787 bytes) goes as 4 FU-A fragments */
#define MAX_PLI 256
/* The publisher's NTP time at its capture instant 0 (seconds since 1900 . fraction). */
#define NTP0 (((uint64_t)3950000000u << 32) | 0x2b8f5c29u)

/* One tag the bridge output. */
typedef struct rec {
    uint8_t type;
    uint32_t ts;
    bool key, config;
    uint8_t *body;
    size_t len;
} rec_t;

typedef struct fixture {
    es_media_stream_t *ms;
    es_rtc_bridge_t *b;
    uint64_t now, next_tick;
    rec_t *tags;
    size_t n_tags, cap_tags;
    uint64_t pli[MAX_PLI]; /* when PLIs for the video SSRC went to the publisher */
    size_t n_pli;
    size_t other_fb;       /* PLI/FIR for anything else */
    uint16_t vseq, aseq;
    uint32_t v0, a0;       /* the publisher's RTP timestamps at its capture instant 0 */
} fixture_t;

static void on_tag(void *user, es_tag_t *tag, uint64_t now_us)
{
    fixture_t *f = user;
    assert_int_equal(now_us, f->now);
    if (f->n_tags == f->cap_tags) {
        f->cap_tags = f->cap_tags ? 2 * f->cap_tags : 256;
        f->tags = realloc(f->tags, f->cap_tags * sizeof *f->tags);
        assert_non_null(f->tags);
    }
    rec_t *r = &f->tags[f->n_tags++];
    r->type = tag->type;
    r->ts = tag->timestamp_ms;
    r->key = tag->keyframe;
    r->config = tag->config;
    r->len = tag->len;
    r->body = malloc(tag->len ? tag->len : 1);
    assert_non_null(r->body);
    memcpy(r->body, tag->data, tag->len);
}

static int src_rtp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    (void)user;
    (void)buf;
    (void)len;
    (void)cap;
    return 0;
}

/* RTCP to the publisher: PLIs for the video SSRC are recorded with the virtual time. */
static int src_rtcp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    fixture_t *f = user;
    assert_true(cap >= len);
    size_t off = 0;
    es_rtcp_header_t h;
    while (es_rtcp_next(buf, len, &off, &h) == 1) {
        if (h.type != ES_RTCP_PSFB || (h.count != ES_RTCP_FMT_PLI && h.count != ES_RTCP_FMT_FIR))
            continue;
        es_rtcp_fb_t fb;
        assert_int_equal(es_rtcp_parse_fb(&h, &fb), 0);
        if (h.count == ES_RTCP_FMT_PLI && fb.media_ssrc == VIDEO_SSRC) {
            assert_true(f->n_pli < MAX_PLI);
            f->pli[f->n_pli++] = f->now;
        } else {
            f->other_fb++;
        }
    }
    return 0;
}

static void tracks_of(es_track_info_t t[2], es_codec_t video)
{
    memset(t, 0, 2 * sizeof *t);
    t[0].kind = ES_MEDIA_AUDIO;
    t[0].rtx_pt = -1;
    t[0].codec = (es_sdp_codec_t){.pt = AUDIO_PT, .codec = ES_CODEC_OPUS, .name = "opus",
                                  .clock_rate = 48000, .channels = 2, .apt = -1};
    strcpy(t[0].mid, "0");
    t[0].ssrc = AUDIO_SSRC;
    t[1].kind = ES_MEDIA_VIDEO;
    t[1].rtx_pt = -1;
    if (video == ES_CODEC_H264)
        t[1].codec = (es_sdp_codec_t){.pt = VIDEO_PT, .codec = ES_CODEC_H264, .name = "H264",
                                      .clock_rate = 90000, .apt = -1,
                                      .h264_packetization_mode = 1,
                                      .h264_profile_level_id = 0x42e01f};
    else
        t[1].codec = (es_sdp_codec_t){.pt = 96, .codec = video, .name = "VP8",
                                      .clock_rate = 90000, .apt = -1};
    strcpy(t[1].mid, "1");
    t[1].ssrc = VIDEO_SSRC;
    t[1].nack = t[1].pli = true;
}

static fixture_t *new_fixture(es_codec_t video)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->now = f->next_tick = NOW0;
    f->ms = es_media_stream_new("live/rtcb");
    assert_non_null(f->ms);
    es_track_info_t t[2];
    tracks_of(t, video);
    es_media_io_t io = {.send_rtp = src_rtp, .send_rtcp = src_rtcp, .user = f};
    assert_int_equal(es_media_stream_set_source(f->ms, t, 2, io, f->now), 0);
    /* Arbitrary offsets, both wrapping 2^32 mid-run (video near 2 s, audio near 1.5 s), and
     * sequence numbers wrapping 2^16 early on. */
    f->v0 = 0u - 90u * 2000u + 4321u;
    f->a0 = 0u - 48u * 1500u + 77u;
    f->vseq = 65500;
    f->aseq = 65530;
    return f;
}

static int setup(void **state)
{
    fixture_t *f = new_fixture(ES_CODEC_H264);
    char why[256] = "";
    assert_true(es_rtc_bridge_supported(f->ms, why, sizeof why));
    f->b = es_rtc_bridge_new(f->ms, "live/rtcb", 0, on_tag, f, why, sizeof why);
    if (!f->b) print_message("es_rtc_bridge_new: %s\n", why);
    assert_non_null(f->b);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    es_rtc_bridge_free(f->b);
    es_media_stream_free(f->ms);
    for (size_t i = 0; i < f->n_tags; i++) free(f->tags[i].body);
    free(f->tags);
    free(f);
    return 0;
}

/* Advances the virtual clock to `us`, running the timers every TICK_US on the way. */
static void clock_to(fixture_t *f, uint64_t us)
{
    while (f->next_tick <= us) {
        f->now = f->next_tick;
        es_media_stream_tick(f->ms, f->now);
        if (f->b) es_rtc_bridge_tick(f->b, f->now);
        f->next_tick += TICK_US;
    }
    f->now = us;
}

static void send_rtp(fixture_t *f, uint8_t pt, uint32_t ssrc, uint16_t seq, uint32_t ts,
                     bool marker, const uint8_t *payload, size_t len)
{
    uint8_t buf[1600];
    es_rtp_packet_t h = {.marker = marker, .payload_type = pt, .sequence = seq, .timestamp = ts,
                         .ssrc = ssrc};
    assert_true(len <= sizeof buf - ES_RTP_MIN_HEADER);
    assert_int_equal(es_rtp_write_header(&h, buf, sizeof buf), ES_RTP_MIN_HEADER);
    memcpy(buf + ES_RTP_MIN_HEADER, payload, len);
    es_media_stream_source_rtp(f->ms, f->now, buf, ES_RTP_MIN_HEADER + len);
}

/* ---- The publisher ---- */

static void put_nal(uint8_t *au, size_t *n, const uint8_t *nal, size_t len)
{
    au[(*n)++] = (uint8_t)(len >> 24);
    au[(*n)++] = (uint8_t)(len >> 16);
    au[(*n)++] = (uint8_t)(len >> 8);
    au[(*n)++] = (uint8_t)len;
    memcpy(au + *n, nal, len);
    *n += len;
}

/* The access unit a browser sends, in AVCC: SPS, PPS and IDR slice for a key frame, a P slice
 * otherwise. */
static size_t make_au(bool key, uint8_t au[1024])
{
    size_t n = 0;
    if (key) {
        put_nal(au, &n, SPS, sizeof SPS);
        put_nal(au, &n, PPS, sizeof PPS);
        put_nal(au, &n, IDR, sizeof IDR);
    } else {
        put_nal(au, &n, P_SLICE, sizeof P_SLICE);
    }
    return n;
}

typedef struct payloads {
    uint8_t p[16][MAX_PAYLOAD];
    size_t len[16];
    bool marker[16];
    size_t n;
} payloads_t;

static void collect_payload(void *user, const uint8_t *payload, size_t len, bool marker)
{
    payloads_t *x = user;
    assert_true(x->n < 16 && len <= MAX_PAYLOAD);
    memcpy(x->p[x->n], payload, len);
    x->len[x->n] = len;
    x->marker[x->n++] = marker;
}

#define NO_DROP SIZE_MAX

/* The video frame captured at t_ms, its packets arriving now but for number `drop` (lost: it
 * still takes its sequence number). Returns the number of packets made. */
static size_t send_video(fixture_t *f, uint32_t t_ms, bool key, size_t drop)
{
    uint8_t au[1024];
    size_t n = make_au(key, au);
    static payloads_t x;
    x.n = 0;
    int rc = es_h264_packetize(au, n, 4, key, NULL, MAX_PAYLOAD, collect_payload, &x);
    assert_true(rc > 0);
    assert_int_equal((size_t)rc, x.n);
    if (key) assert_int_equal(x.n, 1 + 4); /* STAP-A (SPS, PPS), 4 FU-A fragments */
    uint32_t ts = f->v0 + 90u * t_ms;
    for (size_t i = 0; i < x.n; i++) {
        uint16_t seq = f->vseq++;
        if (i != drop) send_rtp(f, VIDEO_PT, VIDEO_SSRC, seq, ts, x.marker[i], x.p[i], x.len[i]);
    }
    return x.n;
}

/* Opus packet i (captured at 20 i ms). */
static void send_audio(fixture_t *f, size_t i)
{
    assert_true(i < OPUS_PACKETS);
    send_rtp(f, AUDIO_PT, AUDIO_SSRC, f->aseq++, f->a0 + 960u * (uint32_t)i, false,
             g_opus[i].data, g_opus[i].len);
}

/* Sender reports for both tracks (one compound packet) describing capture instant t_ms: the
 * same NTP time, each track's RTP timestamp of that instant. */
static void send_srs(fixture_t *f, uint32_t t_ms)
{
    uint8_t buf[256];
    uint64_t ntp = NTP0 + (((uint64_t)t_ms << 32) / 1000u);
    es_rtcp_report_t v = {.ssrc = VIDEO_SSRC, .ntp = ntp, .rtp_timestamp = f->v0 + 90u * t_ms,
                          .packet_count = 1, .octet_count = 1};
    es_rtcp_report_t a = {.ssrc = AUDIO_SSRC, .ntp = ntp, .rtp_timestamp = f->a0 + 48u * t_ms,
                          .packet_count = 1, .octet_count = 1};
    int n = es_rtcp_write_sr(&v, buf, sizeof buf);
    assert_true(n > 0);
    int m = es_rtcp_write_sr(&a, buf + n, sizeof buf - (size_t)n);
    assert_true(m > 0);
    es_media_stream_source_rtcp(f->ms, f->now, buf, (size_t)(n + m));
}

/* ---- The audio/video scenario ----
 *
 * Capture times: audio every 20 ms from 0; video with frame intervals of 40, 30 and 50 ms in
 * turn (frames at 0, 40, 70, 120, 160, 190, 240, ...), P frames but for one key frame at 360 ms.
 * Network: audio arrives 20 ms after capture, video 170 ms after. Sender reports at the start
 * and every second. */
#define AUDIO_DELAY 20
#define VIDEO_DELAY 170
#define KEY_MS 360
#define AV_END 3200 /* ms of arrival time the scenario runs to */

static bool is_video_time(uint32_t t) { return t % 120 == 0 || t % 120 == 40 || t % 120 == 70; }

/* The capture time of the k-th video frame. */
static uint32_t video_time(size_t k)
{
    static const uint32_t in_cycle[3] = {0, 40, 70};
    return 120u * (uint32_t)(k / 3) + in_cycle[k % 3];
}

/* Runs the scenario over arrival times [from_ms, to_ms) (ms after NOW0). */
static void run_av(fixture_t *f, uint32_t from_ms, uint32_t to_ms)
{
    for (uint32_t m = from_ms; m < to_ms; m++) {
        clock_to(f, NOW0 + (uint64_t)m * 1000u);
        if (m % 1000 == 0) send_srs(f, m);
        if (m >= AUDIO_DELAY && (m - AUDIO_DELAY) % 20 == 0 &&
            (m - AUDIO_DELAY) / 20 < OPUS_PACKETS)
            send_audio(f, (m - AUDIO_DELAY) / 20);
        if (m >= VIDEO_DELAY && is_video_time(m - VIDEO_DELAY))
            send_video(f, m - VIDEO_DELAY, m - VIDEO_DELAY == KEY_MS, NO_DROP);
    }
}

/* ---- Helpers on what came out ---- */

static bool is_video_frame(const rec_t *r)
{
    return r->type == ES_TAG_VIDEO && r->len >= 5 && r->body[1] == 0x01;
}

static bool is_aac_frame(const rec_t *r)
{
    return r->type == ES_TAG_AUDIO && r->len >= 2 && r->body[0] == 0xaf && r->body[1] == 0x01;
}

static size_t count_video_frames(const fixture_t *f, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < f->n_tags; i++) n += is_video_frame(&f->tags[i]);
    return n;
}

static size_t plis_in(const fixture_t *f, uint64_t from_us, uint64_t to_us)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_pli; i++) n += f->pli[i] >= from_us && f->pli[i] < to_us;
    return n;
}

static json_int_t jint(const fixture_t *f, const char *key)
{
    json_t *j = es_rtc_bridge_json(f->b);
    assert_non_null(j);
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v)) fail_msg("json: no integer \"%s\"", key);
    json_int_t r = json_integer_value(v);
    json_decref(j);
    return r;
}

/* An AVC sequence header: 17 00 000000 + a record with our SPS and PPS. */
static void check_avc_header(const rec_t *r)
{
    assert_int_equal(r->type, ES_TAG_VIDEO);
    assert_true(r->len > 5);
    assert_memory_equal(r->body, ((const uint8_t[]){0x17, 0x00, 0, 0, 0}), 5);
    assert_true(r->config);
    assert_false(r->key);
    es_h264_config_t c;
    assert_int_equal(es_h264_config_parse(r->body + 5, r->len - 5, &c), 0);
    assert_int_equal(c.length_size, 4);
    assert_int_equal(c.profile_idc, SPS[1]);
    assert_int_equal(c.compat, SPS[2]);
    assert_int_equal(c.level_idc, SPS[3]);
    assert_int_equal(c.sps_len, sizeof SPS);
    assert_memory_equal(c.sps, SPS, sizeof SPS);
    assert_int_equal(c.pps_len, sizeof PPS);
    assert_memory_equal(c.pps, PPS, sizeof PPS);
}

/* A video frame tag: FrameType 1 (key) or 2, AVC, NALU, composition time 0, and AVCC equal to
 * the access unit the publisher sent, NAL unit by NAL unit. */
static void check_avc_frame(const rec_t *r, bool key)
{
    assert_int_equal(r->type, ES_TAG_VIDEO);
    assert_true(r->len > 5);
    assert_int_equal(r->body[0], key ? 0x17 : 0x27);
    assert_int_equal(r->body[1], 0x01);
    assert_int_equal(r->body[2] | r->body[3] | r->body[4], 0);
    assert_int_equal(r->key, key);
    assert_false(r->config);
    uint8_t au[1024];
    size_t n = make_au(key, au);
    size_t off_a = 0, off_b = 0;
    const uint8_t *na, *nb;
    size_t la, lb;
    size_t nals = 0;
    for (;;) {
        int ra = es_h264_avcc_next(au, n, 4, &off_a, &na, &la);
        int rb = es_h264_avcc_next(r->body + 5, r->len - 5, 4, &off_b, &nb, &lb);
        assert_true(ra >= 0 && rb >= 0);
        assert_int_equal(rb, ra);
        if (ra == 0) break;
        assert_int_equal(lb, la);
        assert_memory_equal(nb, na, la);
        nals++;
    }
    assert_int_equal(nals, key ? 3 : 1);
    assert_int_equal(r->len - 5, n);
}

/* ---- AAC as a player decodes it ---- */

typedef struct pcm {
    float *l, *r;
    uint32_t *pts; /* per decoded frame */
    size_t frames;
} pcm_t;

/* Decodes every AAC frame tag from index `from` with libavcodec, configured from the AAC
 * sequence header tag `hdr`. */
static void decode_aac(const fixture_t *f, const rec_t *hdr, size_t from, pcm_t *out)
{
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_AAC);
    assert_non_null(codec);
    AVCodecContext *dec = avcodec_alloc_context3(codec);
    assert_non_null(dec);
    size_t asc_len = hdr->len - 2;
    dec->extradata = av_mallocz(asc_len + AV_INPUT_BUFFER_PADDING_SIZE);
    assert_non_null(dec->extradata);
    memcpy(dec->extradata, hdr->body + 2, asc_len);
    dec->extradata_size = (int)asc_len;
    assert_int_equal(avcodec_open2(dec, codec, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    assert_non_null(pkt);
    assert_non_null(frame);
    size_t cap = f->n_tags;
    out->l = malloc(cap * 1024 * sizeof *out->l);
    out->r = malloc(cap * 1024 * sizeof *out->r);
    out->pts = malloc(cap * sizeof *out->pts);
    assert_true(out->l && out->r && out->pts);
    out->frames = 0;
    for (size_t i = from; i < f->n_tags; i++) {
        const rec_t *t = &f->tags[i];
        if (!is_aac_frame(t)) continue;
        assert_true(t->len > 2);
        assert_int_equal(av_new_packet(pkt, (int)(t->len - 2)), 0);
        memcpy(pkt->data, t->body + 2, t->len - 2);
        assert_int_equal(avcodec_send_packet(dec, pkt), 0);
        av_packet_unref(pkt);
        assert_int_equal(avcodec_receive_frame(dec, frame), 0);
        assert_int_equal(frame->nb_samples, 1024);
        assert_int_equal(frame->sample_rate, 48000);
        assert_int_equal(frame->ch_layout.nb_channels, 2);
        assert_int_equal(frame->format, AV_SAMPLE_FMT_FLTP);
        memcpy(out->l + out->frames * 1024, frame->extended_data[0], 1024 * sizeof(float));
        memcpy(out->r + out->frames * 1024, frame->extended_data[1], 1024 * sizeof(float));
        out->pts[out->frames++] = t->ts;
        av_frame_unref(frame);
    }
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
}

static void pcm_free(pcm_t *p)
{
    free(p->l);
    free(p->r);
    free(p->pts);
}

/* Stream time in ms of decoded sample j: its frame's tag time plus its offset in the frame. */
static double sample_ms(const pcm_t *p, size_t j)
{
    return (double)p->pts[j / 1024] + (double)(j % 1024) / 48.0;
}

/* The first sample at or after stream time from_ms whose amplitude exceeds half the tone's:
 * its time, or -1. */
static double onset_ms(const pcm_t *p, double from_ms, double to_ms)
{
    for (size_t j = 0; j < p->frames * 1024; j++) {
        double t = sample_ms(p, j);
        if (t < from_ms) continue;
        if (t >= to_ms) break;
        if (p->l[j] > TONE_AMPLITUDE / 2 || p->l[j] < -TONE_AMPLITUDE / 2) return t;
    }
    return -1;
}

/* A ~1 kHz tone at the source's level on both channels over stream times [from_ms, to_ms). */
static void assert_tone(const pcm_t *p, double from_ms, double to_ms)
{
    for (int ch = 0; ch < 2; ch++) {
        const float *x = ch ? p->r : p->l;
        double sum = 0;
        size_t n = 0, crossings = 0;
        for (size_t j = 0; j < p->frames * 1024; j++) {
            double t = sample_ms(p, j);
            if (t < from_ms || t >= to_ms) continue;
            sum += (double)x[j] * x[j];
            if (n > 0 && ((x[j - 1] < 0) != (x[j] < 0))) crossings++;
            n++;
        }
        assert_true(n >= 48 * 400);
        double rms = newton_sqrt(sum / (double)n);
        double freq = (double)crossings / 2.0 / ((double)n / 48000.0);
        print_message("  tone %.0f..%.0f ms, channel %d: rms %.3f, %.1f Hz\n", from_ms, to_ms, ch,
                      rms, freq);
        assert_true(rms > TONE_RMS * 0.85 && rms < TONE_RMS * 1.15);
        assert_true(freq > 950 && freq < 1050);
    }
}

/* The video tags' index of the first video frame tag, or fails. */
static size_t first_video_frame(const fixture_t *f)
{
    for (size_t i = 0; i < f->n_tags; i++)
        if (is_video_frame(&f->tags[i])) return i;
    fail_msg("no video frame");
    return 0;
}

/* Output time of the video frame captured at t_ms (the frames out are those from KEY_MS on). */
static uint32_t video_ts_of(const fixture_t *f, uint32_t t_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < f->n_tags; i++) {
        if (!is_video_frame(&f->tags[i])) continue;
        while (video_time(k) < KEY_MS) k++;
        if (video_time(k) == t_ms) return f->tags[i].ts;
        k++;
    }
    fail_msg("no video frame for %u ms", t_ms);
    return 0;
}

/* ---- 1. Video: nothing before the first key frame, then header, key frame, inter frames ---- */

static void test_video_starts_at_key_frame(void **state)
{
    fixture_t *f = *state;
    /* Up to just before the key frame arrives: audio and P frames, no output. */
    run_av(f, 0, KEY_MS + VIDEO_DELAY);
    assert_int_equal(f->n_tags, 0);
    /* A key frame was wanted from the first video packet. */
    assert_true(f->n_pli >= 1);
    assert_int_equal(f->pli[0], NOW0 + VIDEO_DELAY * 1000u);
    assert_int_equal(f->other_fb, 0);
    assert_int_equal(jint(f, "access_units"), 0);
    assert_int_equal(jint(f, "aac_frames"), 0);

    run_av(f, KEY_MS + VIDEO_DELAY, AV_END);
    size_t v = 0;
    bool seen_header = false, seen_key = false;
    size_t inter = 0;
    for (size_t i = 0; i < f->n_tags; i++) {
        const rec_t *r = &f->tags[i];
        if (r->type != ES_TAG_VIDEO) continue;
        if (v == 0) {
            check_avc_header(r);
            seen_header = true;
        } else if (v == 1) {
            check_avc_frame(r, true);
            assert_int_equal(r->ts, f->tags[0].ts);
            seen_key = true;
        } else {
            check_avc_frame(r, false);
            inter++;
        }
        v++;
    }
    assert_true(seen_header && seen_key);
    assert_int_equal(f->tags[0].type, ES_TAG_VIDEO); /* the header is the first tag of all */
    /* Every frame from the key frame on: those captured up to AV_END - VIDEO_DELAY. */
    size_t frames = 0;
    for (size_t k = 0; video_time(k) + VIDEO_DELAY < AV_END; k++) frames += video_time(k) >= KEY_MS;
    assert_int_equal(inter + 1, frames);
    assert_int_equal((size_t)jint(f, "access_units"), frames);
    assert_int_equal(jint(f, "broken_access_units"), 0);
    assert_int_equal(jint(f, "lost_packets"), 0);
}

/* No loss: once the key frame came, nothing more is asked of the publisher. */
static void test_no_pli_once_the_key_frame_came(void **state)
{
    fixture_t *f = *state;
    run_av(f, 0, AV_END);
    uint64_t key_at = NOW0 + (uint64_t)(KEY_MS + VIDEO_DELAY) * 1000u;
    size_t before = plis_in(f, 0, key_at), after = plis_in(f, key_at, UINT64_MAX);
    print_message("  PLIs before the key frame: %zu, after: %zu\n", before, after);
    /* The first at the first video packet, then one every ES_PLI_INTERVAL_US of the wait (the
     * key frame comes KEY_MS after the first frame). */
    assert_int_equal(before, 1 + KEY_MS * 1000u / ES_PLI_INTERVAL_US);
    assert_int_equal(after, 0);
}

/* ---- 2. Audio: waits for the key frame, then AAC header and a decodable 1 kHz tone ---- */

static void test_audio_is_aac_after_the_key_frame(void **state)
{
    fixture_t *f = *state;
    run_av(f, 0, AV_END);
    size_t key = first_video_frame(f);
    assert_true(f->tags[key].key);
    size_t hdr = SIZE_MAX, frames = 0;
    for (size_t i = 0; i < f->n_tags; i++) {
        const rec_t *r = &f->tags[i];
        if (r->type != ES_TAG_AUDIO) continue;
        assert_true(i > key); /* no audio before the first video key frame */
        if (hdr == SIZE_MAX) {
            hdr = i;
            assert_true(r->len > 2);
            assert_int_equal(r->body[0], 0xaf);
            assert_int_equal(r->body[1], 0x00);
            assert_true(r->config);
            es_aac_config_t c;
            assert_int_equal(es_aac_config_parse(r->body + 2, r->len - 2, &c), 0);
            assert_int_equal(c.object_type, 2);
            assert_int_equal(c.sample_rate, 48000);
            assert_int_equal(c.channels, 2);
        } else {
            assert_true(is_aac_frame(r));
            assert_false(r->config);
            if (frames == 0) assert_int_equal(r->ts, f->tags[hdr].ts);
            frames++;
        }
    }
    assert_true(hdr != SIZE_MAX);
    /* Audio is dropped until the key frame arrives; then every 1024 samples of the rest but
     * the two the encoder holds, give or take the frame in progress. */
    double audio_ms = (OPUS_PACKETS * 20.0) - (KEY_MS + VIDEO_DELAY - AUDIO_DELAY);
    size_t expect = (size_t)(audio_ms * 48 / 1024);
    print_message("  %zu AAC frames (about %zu expected)\n", frames, expect);
    assert_true(frames + 4 >= expect && frames <= expect + 2);
    assert_int_equal((size_t)jint(f, "aac_frames"), frames);

    pcm_t p;
    decode_aac(f, &f->tags[hdr], hdr, &p);
    assert_int_equal(p.frames, frames);
    for (size_t i = 0; i < 2; i++) {
        double on = (double)video_ts_of(f, TONE_ON[i]);
        assert_tone(&p, on + 50, on + TONE_MS - 50);
    }
    /* And silence before the first burst. */
    double on0 = (double)video_ts_of(f, TONE_ON[0]);
    assert_true(onset_ms(&p, sample_ms(&p, 0) + 100, on0 - 30) < 0);
    pcm_free(&p);
}

/* ---- 3. Timestamps: SR alignment (lip sync), RTP deltas, monotonic, across the wrap ---- */

static void test_timestamps_and_lip_sync(void **state)
{
    fixture_t *f = *state;
    run_av(f, 0, AV_END);

    /* Video: each frame's time is the first one's plus its RTP distance / 90 (the publisher's
     * clock wraps 2^32 at about 2 s), so the steps are the frame intervals. */
    size_t k = 0;
    while (video_time(k) < KEY_MS) k++;
    uint32_t t0 = video_time(k), ts0 = 0, prev = 0;
    size_t n = 0;
    for (size_t i = 0; i < f->n_tags; i++) {
        const rec_t *r = &f->tags[i];
        if (!is_video_frame(r)) continue;
        uint32_t t = video_time(k++);
        if (n == 0) ts0 = r->ts;
        else assert_true((int32_t)(r->ts - prev) > 0);
        int32_t err = (int32_t)(r->ts - ts0) - (int32_t)(t - t0);
        if (err < -1 || err > 1)
            fail_msg("frame captured at %u ms: tag at %u, the first at %u", t, r->ts, ts0);
        prev = r->ts;
        n++;
    }
    assert_true(video_time(k - 1) > 2000); /* past the video RTP wrap */
    assert_true(n > 50);

    /* Audio: the AAC frames follow one another by 1024 samples (21 or 22 ms), across the
     * audio RTP wrap at about 1.5 s. */
    size_t hdr = SIZE_MAX;
    prev = 0;
    n = 0;
    for (size_t i = 0; i < f->n_tags; i++) {
        const rec_t *r = &f->tags[i];
        if (r->type != ES_TAG_AUDIO) continue;
        if (hdr == SIZE_MAX) {
            hdr = i;
            continue;
        }
        if (n > 0) {
            int32_t step = (int32_t)(r->ts - prev);
            if (step != 21 && step != 22) fail_msg("AAC step %d ms at %u", step, r->ts);
        }
        prev = r->ts;
        n++;
    }
    assert_true(hdr != SIZE_MAX && n > 100);

    /* Lip sync: a tone burst starting at the capture instant of a video frame is heard within
     * 25 ms of that frame's time (the publisher's Opus look-ahead, 6.5 ms, is in it), before
     * and after both wraps. Video reaches us 150 ms after the audio: arrival times alone would
     * misalign them by that much. */
    pcm_t p;
    decode_aac(f, &f->tags[hdr], hdr, &p);
    for (size_t i = 0; i < 2; i++) {
        double v = (double)video_ts_of(f, TONE_ON[i]);
        double a = onset_ms(&p, v - 300, v + 300);
        print_message("  burst at %u ms: video frame at %.0f ms, tone heard at %.1f ms (%+.1f)\n",
                      TONE_ON[i], v, a, a - v);
        assert_true(a >= 0);
        assert_true(a - v > -25 && a - v < 25);
    }
    pcm_free(&p);
    json_t *j = es_rtc_bridge_json(f->b);
    assert_true(json_is_true(json_object_get(j, "sr_aligned")));
    json_decref(j);
}

/* ---- 4. Loss inside a key frame ---- */

/* Video alone, 25 fps: a key frame at 0, another at 440 whose middle FU-A fragment is lost, P
 * frames, and the publisher's answer to the PLIs, a key frame, only at 1520 ms. Arrival 20 ms
 * after capture. */
#define LOSS_KEY 440
#define LOSS_RESUME 1520
#define LOSS_END 3000

static void test_loss_in_key_frame(void **state)
{
    fixture_t *f = *state;
    size_t packets_waiting = 0;
    for (uint32_t m = 0; m < LOSS_END; m++) {
        clock_to(f, NOW0 + (uint64_t)m * 1000u);
        if (m < 20 || (m - 20) % 40 != 0) continue;
        uint32_t t = m - 20;
        bool key = t == 0 || t == LOSS_KEY || t == LOSS_RESUME;
        size_t n = send_video(f, t, key, t == LOSS_KEY ? 2 : NO_DROP); /* the 2nd fragment */
        if (t > LOSS_KEY && t < LOSS_RESUME) packets_waiting += n;
    }
    /* Out: the first key frame with its header, the 10 P frames after it, nothing of the broken
     * key frame or of the frames that depend on it, then the key frame at 1520 and the rest. */
    size_t first = 0, resume = SIZE_MAX;
    for (size_t i = 0; i < f->n_tags; i++) {
        const rec_t *r = &f->tags[i];
        assert_int_equal(r->type, ES_TAG_VIDEO);
        if (r->config) continue;
        assert_true(is_video_frame(r));
        if (r->ts <= 400) {
            check_avc_frame(r, r->ts == 0);
            first++;
        } else {
            assert_true(r->ts >= LOSS_RESUME);
            if (resume == SIZE_MAX) {
                resume = i;
                check_avc_frame(r, true);
                assert_int_equal(r->ts, LOSS_RESUME);
            } else {
                check_avc_frame(r, false);
            }
        }
    }
    check_avc_header(&f->tags[0]);
    assert_int_equal(first, 1 + 10);
    assert_true(resume != SIZE_MAX);
    assert_int_equal(count_video_frames(f, resume), (LOSS_END - 20 - LOSS_RESUME) / 40 + 1);
    assert_int_equal(jint(f, "lost_packets"), 1);
    assert_true(jint(f, "broken_access_units") >= 1);
    assert_int_equal((size_t)jint(f, "access_units"), count_video_frames(f, 0));

    /* PLIs: none while all was well; after the loss, rate-limited (one per
     * ES_PLI_INTERVAL_US, not one per packet) until the key frame came; none after it. */
    uint64_t loss_at = NOW0 + (LOSS_KEY + 20) * 1000u;
    uint64_t resume_at = NOW0 + (LOSS_RESUME + 20) * 1000u;
    size_t waiting = plis_in(f, loss_at, resume_at);
    print_message("  PLIs: %zu before the loss, %zu while waiting (%zu packets), %zu after\n",
                  plis_in(f, 0, loss_at), waiting, packets_waiting,
                  plis_in(f, resume_at, UINT64_MAX));
    assert_int_equal(plis_in(f, 0, loss_at), 0);
    assert_true(waiting >= 2);
    assert_true(waiting <= (resume_at - loss_at) / ES_PLI_INTERVAL_US + 1);
    assert_true(waiting < packets_waiting / 4);
    for (size_t i = 1; i < f->n_pli; i++)
        assert_true(f->pli[i] - f->pli[i - 1] >= ES_PLI_INTERVAL_US);
    /* The first at the next packet after the gap was given up (waited for
     * ES_H264_DEPACK_DELAY_US), within a frame interval. */
    assert_true(f->pli[0] >= loss_at + ES_H264_DEPACK_DELAY_US &&
                f->pli[0] <= loss_at + ES_H264_DEPACK_DELAY_US + 40000u);
    assert_int_equal(plis_in(f, resume_at, UINT64_MAX), 0);
}

/* ---- 5. Refusal, periodic key frames, statistics, detaching ---- */

static void test_vp8_is_refused(void **state)
{
    (void)state;
    fixture_t *f = new_fixture(ES_CODEC_VP8);
    char why[256] = "";
    assert_false(es_rtc_bridge_supported(f->ms, why, sizeof why));
    print_message("  %s\n", why);
    assert_non_null(strstr(why, "VP8"));
    why[0] = '\0';
    assert_null(es_rtc_bridge_new(f->ms, "live/rtcb", 0, on_tag, f, why, sizeof why));
    assert_non_null(strstr(why, "VP8"));
    /* No tap was left behind: VP8 and Opus packets reach nothing. */
    static const uint8_t vp8_key[] = {0x90, 0x80, 0x01, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a,
                                      0x40, 0x00, 0x30, 0x00};
    send_rtp(f, 96, VIDEO_SSRC, 1, 1000, true, vp8_key, sizeof vp8_key);
    send_audio(f, 0);
    assert_int_equal(f->n_tags, 0);
    es_media_stream_free(f->ms);
    free(f);
}

/* Video alone, 25 fps, arriving 20 ms after capture, from a publisher that answers each PLI with
 * a key frame at its next frame. */
static void run_answering(fixture_t *f, uint32_t from_ms, uint32_t to_ms, size_t *answered)
{
    for (uint32_t m = from_ms; m < to_ms; m++) {
        clock_to(f, NOW0 + (uint64_t)m * 1000u);
        if (m < 20 || (m - 20) % 40 != 0) continue;
        bool key = m == 20 || *answered < f->n_pli;
        *answered = f->n_pli;
        send_video(f, m - 20, key, NO_DROP);
    }
}

static void test_key_interval(void **state)
{
    fixture_t *f = *state;
    size_t answered = 0;
    run_answering(f, 0, 2000, &answered);
    assert_int_equal(f->n_pli, 0); /* the first frame was a key frame: nothing to ask */
    es_rtc_bridge_set_key_interval(f->b, 1000);
    run_answering(f, 2000, 6500, &answered);
    print_message("  %zu PLIs with a 1000 ms key interval over 4.5 s\n", f->n_pli);
    assert_int_equal(f->n_pli, 5); /* at 2000, 3000, 4000, 5000 and 6000 ms */
    for (size_t i = 1; i < f->n_pli; i++) {
        uint64_t d = f->pli[i] - f->pli[i - 1];
        if (d < 950000 || d > 1050000) fail_msg("PLI interval %lu us", (unsigned long)d);
    }
    /* Each answered by a key frame: key frame tags about every second. */
    size_t keys = 0;
    for (size_t i = 0; i < f->n_tags; i++) keys += f->tags[i].key;
    assert_int_equal(keys, 1 + f->n_pli);
    size_t n = f->n_pli;
    es_rtc_bridge_set_key_interval(f->b, 0);
    run_answering(f, 6500, 9000, &answered);
    assert_int_equal(f->n_pli, n);
    /* Statistics: every access unit out, no audio, one tag per frame and the header. */
    assert_int_equal((size_t)jint(f, "access_units"), count_video_frames(f, 0));
    assert_int_equal((size_t)jint(f, "access_units"), (9000 - 20 - 1) / 40 + 1);
    assert_int_equal(jint(f, "aac_frames"), 0);
    assert_int_equal((size_t)jint(f, "tags"), f->n_tags);
    assert_int_equal(f->n_tags, count_video_frames(f, 0) + 1);
}

static void test_json(void **state)
{
    fixture_t *f = *state;
    run_av(f, 0, AV_END);
    json_t *j = es_rtc_bridge_json(f->b);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "video")), "H264");
    assert_string_equal(json_string_value(json_object_get(j, "audio")), "opus->AAC");
    assert_true(json_is_true(json_object_get(j, "sr_aligned")));
    json_decref(j);
    size_t aac = 0;
    for (size_t i = 0; i < f->n_tags; i++) aac += is_aac_frame(&f->tags[i]);
    assert_true(aac > 100);
    assert_int_equal((size_t)jint(f, "access_units"), count_video_frames(f, 0));
    assert_int_equal((size_t)jint(f, "aac_frames"), aac);
    assert_int_equal((size_t)jint(f, "tags"), f->n_tags);
    assert_int_equal(f->n_tags, count_video_frames(f, 0) + aac + 2);
    assert_true(jint(f, "key_requests") >= 1);
}

static void test_free_detaches(void **state)
{
    fixture_t *f = *state;
    run_av(f, 0, 1500);
    size_t n = f->n_tags;
    assert_true(n > 20);
    es_rtc_bridge_free(f->b);
    f->b = NULL;
    run_av(f, 1500, AV_END); /* a bridge still attached would be used after free (ASan) */
    assert_int_equal(f->n_tags, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_video_starts_at_key_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_pli_once_the_key_frame_came, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audio_is_aac_after_the_key_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamps_and_lip_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_in_key_frame, setup, teardown),
        cmocka_unit_test(test_vp8_is_refused),
        cmocka_unit_test_setup_teardown(test_key_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_detaches, setup, teardown),
    };
    return cmocka_run_group_tests_name("rtc_bridge", tests, group_setup, group_teardown);
}
