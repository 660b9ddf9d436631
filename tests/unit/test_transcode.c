/* Unit tests for src/transcode/aac_opus.c: the pts -> Opus RTP timestamp mapping on its own
 * (steady input, gaps, jitter, 32-bit wraps), and the AAC -> Opus transcoder end to end on real
 * AAC made here by libavcodec's native encoder from a 1 kHz sine (44.1 kHz stereo, 48 kHz mono),
 * checked by decoding every Opus packet with libopus: packet count, timestamps, tone and level.
 * Bad input: malformed AudioSpecificConfigs and a damaged frame in the middle of a stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "media_fixtures.h"

#include "estuary/error.h"
#include "estuary/transcode.h"

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/log.h>
#include <opus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Timestamp mapping ---- */

/* Drives the mapping like the transcoder does: one source frame of `samples` at pts_ms, then
 * every complete 960-sample frame is taken; their timestamps go to ts[] (returns how many). */
static size_t map_push(es_opus_ts_map_t *m, uint32_t pts_ms, size_t samples, bool *resynced,
                       uint32_t *ts, size_t max)
{
    bool r = es_opus_ts_map_frame(m, pts_ms, 0);
    if (resynced) *resynced = r;
    es_opus_ts_map_add(m, samples);
    size_t n = 0;
    uint32_t t;
    while (n < max && es_opus_ts_map_take(m, ES_OPUS_FRAME_SAMPLES, &t)) ts[n++] = t;
    return n;
}

static void test_map_steady(void **state)
{
    (void)state;
    es_opus_ts_map_t m;
    es_opus_ts_map_init(&m, ES_AAC_OPUS_RESYNC_MS);
    uint32_t ts[8], expect = 1000 * 48;
    bool resynced;
    size_t total = 0;
    /* 48 kHz AAC: 1024 samples per frame, 21.33 ms, pts rounded to whole ms as in FLV. */
    for (int i = 0; i < 500; i++) {
        uint32_t pts = 1000 + (uint32_t)((i * 1024 * 1000 + 24000) / 48000);
        size_t n = map_push(&m, pts, 1024, &resynced, ts, 8);
        assert_int_equal(resynced, i == 0);
        for (size_t k = 0; k < n; k++, expect += 960) assert_int_equal(ts[k], expect);
        total += n;
    }
    assert_int_equal(total, 500 * 1024 / 960);
    assert_int_equal(m.resyncs, 0);
    /* Not enough buffered: nothing taken, nothing changed. */
    int64_t before = m.buffered;
    uint32_t t = 12345;
    if (before < 960) {
        assert_false(es_opus_ts_map_take(&m, 960, &t));
        assert_int_equal(t, 12345);
        assert_int_equal(m.buffered, before);
    }
}

static void test_map_gap_resyncs(void **state)
{
    (void)state;
    es_opus_ts_map_t m;
    es_opus_ts_map_init(&m, ES_AAC_OPUS_RESYNC_MS);
    uint32_t ts[4];
    bool resynced;
    /* 20 ms frames of 960 samples: one packet out per frame. */
    for (uint32_t i = 0; i < 10; i++) {
        assert_int_equal(map_push(&m, 5000 + 20 * i, 960, &resynced, ts, 4), 1);
        assert_int_equal(ts[0], (5000 + 20 * i) * 48);
    }
    /* Half a frame buffered, then a 500 ms gap: the half frame is dropped and the mapping
     * restarts from the new pts. */
    map_push(&m, 5200, 480, &resynced, ts, 4);
    assert_false(resynced);
    assert_int_equal(m.buffered, 480);
    assert_true(es_opus_ts_map_frame(&m, 5200 + 10 + 500, 0));
    assert_int_equal(m.buffered, 0);
    assert_int_equal(m.resyncs, 1);
    es_opus_ts_map_add(&m, 960);
    assert_true(es_opus_ts_map_take(&m, 960, &ts[0]));
    assert_int_equal(ts[0], 5710 * 48);
    /* Continues by count from there. */
    assert_int_equal(map_push(&m, 5730, 960, &resynced, ts, 4), 1);
    assert_false(resynced);
    assert_int_equal(ts[0], 5710 * 48 + 960);
    /* A jump back (a restarted publisher) resyncs too. */
    assert_int_equal(map_push(&m, 2000, 960, &resynced, ts, 4), 1);
    assert_true(resynced);
    assert_int_equal(ts[0], 2000 * 48);
    assert_int_equal(m.resyncs, 2);
    /* The resampler's lag: samples of earlier frames come first, so the restart point is
     * earlier by that much. */
    assert_true(es_opus_ts_map_frame(&m, 9000, 16));
    es_opus_ts_map_add(&m, 960);
    assert_true(es_opus_ts_map_take(&m, 960, &ts[0]));
    assert_int_equal(ts[0], 9000 * 48 - 16);
    /* Exactly at the threshold still follows the count; one tick over resyncs. */
    es_opus_ts_map_init(&m, 80);
    map_push(&m, 0, 960, NULL, ts, 4);   /* expected next: 20 ms */
    assert_false(es_opus_ts_map_frame(&m, 100, 0));
    assert_int_equal(m.resyncs, 0);
    es_opus_ts_map_init(&m, 80);
    map_push(&m, 0, 960, NULL, ts, 4);
    assert_true(es_opus_ts_map_frame(&m, 101, 0));
}

static void test_map_jitter_ignored(void **state)
{
    (void)state;
    es_opus_ts_map_t m;
    es_opus_ts_map_init(&m, ES_AAC_OPUS_RESYNC_MS);
    static const int jitter[] = {0, 20, -20, 7, -13, 19, -20, 20, 3, -1};
    uint32_t ts[4], expect = 70000 * 48;
    bool resynced;
    for (int i = 0; i < 400; i++) {
        uint32_t pts = (uint32_t)(70000 + 20 * i + jitter[i % 10]);
        if (i == 0) pts = 70000;
        assert_int_equal(map_push(&m, pts, 960, &resynced, ts, 4), 1);
        assert_int_equal(resynced, i == 0);
        assert_int_equal(ts[0], expect);
        expect += 960;
    }
    assert_int_equal(m.resyncs, 0);
}

static void test_map_wraps(void **state)
{
    (void)state;
    es_opus_ts_map_t m;
    uint32_t ts[4], prev = 0;
    bool resynced;
    /* pts * 48 passes 2^32 after 24.8 hours: the RTP timestamp wraps, the steps stay 960. */
    es_opus_ts_map_init(&m, ES_AAC_OPUS_RESYNC_MS);
    uint32_t start = 89478000;  /* * 48 = 4294944000, 23296 ticks before the wrap */
    bool wrapped = false;
    for (uint32_t i = 0; i < 100; i++) {
        assert_int_equal(map_push(&m, start + 20 * i, 960, &resynced, ts, 4), 1);
        assert_int_equal(resynced, i == 0);
        if (i == 0)
            assert_int_equal(ts[0], (uint32_t)((uint64_t)start * 48));
        else {
            assert_int_equal((uint32_t)(ts[0] - prev), 960);
            if (ts[0] < prev) wrapped = true;
        }
        assert_int_equal(ts[0], (uint32_t)((uint64_t)(start + 20 * i) * 48));
        prev = ts[0];
    }
    assert_true(wrapped);
    assert_int_equal(m.resyncs, 0);

    /* The ms clock itself wraps after 49.7 days: unwrapped, no resync, no jump. */
    es_opus_ts_map_init(&m, ES_AAC_OPUS_RESYNC_MS);
    start = UINT32_MAX - 99;
    for (uint32_t i = 0; i < 20; i++) {
        uint32_t pts = start + 20 * i;  /* wraps to small values after 5 frames */
        assert_int_equal(map_push(&m, pts, 960, &resynced, ts, 4), 1);
        assert_int_equal(resynced, i == 0);
        if (i) assert_int_equal((uint32_t)(ts[0] - prev), 960);
        assert_int_equal(ts[0], (uint32_t)((uint64_t)start * 48 + 960u * i));
        prev = ts[0];
    }
    assert_int_equal(m.resyncs, 0);
    assert_true(m.last_pts > (int64_t)UINT32_MAX);
}

/* ---- Real AAC from libavcodec's encoder ---- */

/* The test links no libm (estuary_core does not need it), so the little math here is local. */
#define TEST_PI 3.14159265358979323846

typedef struct aac_pkt {
    uint8_t *data;
    size_t len;
    uint32_t pts_ms;
} aac_pkt_t;

typedef struct aac_stream {
    uint8_t asc[64];
    size_t asc_len;
    aac_pkt_t *pkts;
    size_t n;
    int rate;
    int channels;
} aac_stream_t;

static void collect_packets(AVCodecContext *enc, AVPacket *pkt, aac_stream_t *s, uint32_t base_ms)
{
    while (avcodec_receive_packet(enc, pkt) == 0) {
        aac_pkt_t *p = &s->pkts[s->n++];
        p->data = malloc((size_t)pkt->size);
        assert_non_null(p->data);
        memcpy(p->data, pkt->data, (size_t)pkt->size);
        p->len = (size_t)pkt->size;
        /* The encoder's pts (in samples) starts at minus its priming delay. */
        p->pts_ms = (uint32_t)((int64_t)base_ms +
                               (pkt->pts * 1000 + (pkt->pts >= 0 ? s->rate / 2 : -s->rate / 2)) /
                                   s->rate);
        av_packet_unref(pkt);
    }
}

/* `seconds` of a 1 kHz sine at amplitude 0.5 (silence for the first silent_s), AAC-LC at
 * rate/channels; pts from base_ms. */
static void make_aac(aac_stream_t *s, int rate, int channels, double seconds, double silent_s,
                     uint32_t base_ms)
{
    memset(s, 0, sizeof *s);
    s->rate = rate;
    s->channels = channels;
    const AVCodec *codec = avcodec_find_encoder_by_name("aac");
    assert_non_null(codec);
    AVCodecContext *enc = avcodec_alloc_context3(codec);
    assert_non_null(enc);
    enc->sample_rate = rate;
    enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    av_channel_layout_default(&enc->ch_layout, channels);
    enc->bit_rate = 64000 * channels;
    enc->time_base = (AVRational){1, rate};
    enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    assert_int_equal(avcodec_open2(enc, codec, NULL), 0);
    assert_true(enc->extradata_size >= 2 && enc->extradata_size <= 64);
    memcpy(s->asc, enc->extradata, (size_t)enc->extradata_size);
    s->asc_len = (size_t)enc->extradata_size;

    int frame_size = enc->frame_size;
    size_t total = (size_t)(seconds * rate);
    size_t nframes = (total + (size_t)frame_size - 1) / (size_t)frame_size;
    s->pkts = calloc(nframes + 8, sizeof *s->pkts);
    assert_non_null(s->pkts);

    /* The sine by rotating a phasor: exact enough over a few seconds in double. */
    double ws, wc, re = 0.0, im = 1.0;  /* re = sin, im = cos of the phase */
    small_sincos(2.0 * TEST_PI * 1000.0 / rate, &ws, &wc);
    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    assert_non_null(f);
    assert_non_null(pkt);
    for (size_t i = 0; i < nframes; i++) {
        f->nb_samples = frame_size;
        f->format = AV_SAMPLE_FMT_FLTP;
        f->sample_rate = rate;
        assert_int_equal(av_channel_layout_copy(&f->ch_layout, &enc->ch_layout), 0);
        assert_int_equal(av_frame_get_buffer(f, 0), 0);
        for (int k = 0; k < frame_size; k++) {
            size_t n = i * (size_t)frame_size + (size_t)k;
            float v = n < (size_t)(silent_s * rate) ? 0.0f : (float)(0.5 * re);
            for (int c = 0; c < channels; c++) ((float *)f->extended_data[c])[k] = v;
            double nre = re * wc + im * ws, nim = im * wc - re * ws;
            re = nre;
            im = nim;
        }
        f->pts = (int64_t)(i * (size_t)frame_size);
        assert_int_equal(avcodec_send_frame(enc, f), 0);
        av_frame_unref(f);
        collect_packets(enc, pkt, s, base_ms);
    }
    assert_int_equal(avcodec_send_frame(enc, NULL), 0);
    collect_packets(enc, pkt, s, base_ms);
    assert_true(s->n >= nframes);
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&enc);
}

static void free_aac(aac_stream_t *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->pkts[i].data);
    free(s->pkts);
}

/* What the Opus side received: every packet decoded to 48 kHz (as stereo, whatever was sent). */
typedef struct sink {
    OpusDecoder *dec;
    uint32_t ts[1024];
    size_t n;
    int channels_seen;  /* channel count of the last packet's TOC */
    float *pcm;         /* interleaved stereo */
    size_t pcm_len;     /* samples per channel */
    size_t pcm_cap;
} sink_t;

static void sink_init(sink_t *k)
{
    memset(k, 0, sizeof *k);
    int err;
    k->dec = opus_decoder_create(48000, 2, &err);
    assert_non_null(k->dec);
    k->pcm_cap = 48000 * 10;
    k->pcm = malloc(k->pcm_cap * 2 * sizeof *k->pcm);
    assert_non_null(k->pcm);
}

static void sink_deinit(sink_t *k)
{
    opus_decoder_destroy(k->dec);
    free(k->pcm);
}

static void on_opus(void *user, const uint8_t *opus, size_t len, uint32_t rtp_ts)
{
    sink_t *k = user;
    assert_true(len > 0 && len <= 1275);
    assert_true(k->n < 1024);
    k->ts[k->n++] = rtp_ts;
    k->channels_seen = opus_packet_get_nb_channels(opus);
    assert_int_equal(opus_packet_get_nb_samples(opus, (opus_int32)len, 48000), 960);
    assert_true(k->pcm_len + 960 <= k->pcm_cap);
    int n = opus_decode_float(k->dec, opus, (opus_int32)len, k->pcm + k->pcm_len * 2, 960, 0);
    assert_int_equal(n, 960);
    k->pcm_len += 960;
}

/* RMS and a zero-crossing frequency estimate of the left channel from `from` on. */
static void tone_stats(const sink_t *k, size_t from, double *rms, double *freq)
{
    double sum = 0;
    size_t crossings = 0;
    assert_true(k->pcm_len > from + 4800);
    for (size_t i = from; i < k->pcm_len; i++) {
        double v = k->pcm[i * 2];
        sum += v * v;
        if (i > from && ((k->pcm[(i - 1) * 2] < 0) != (v < 0))) crossings++;
    }
    size_t n = k->pcm_len - from;
    *rms = newton_sqrt(sum / (double)n);
    *freq = (double)crossings / 2.0 / ((double)n / 48000.0);
}

static void check_tone_stream(int rate, int channels, uint32_t base_ms)
{
    aac_stream_t s;
    make_aac(&s, rate, channels, 2.0, 0, base_ms);
    char err[256];
    es_aac_opus_t *t = es_aac_opus_new(s.asc, s.asc_len, 0, err, sizeof err);
    if (!t) print_message("es_aac_opus_new: %s\n", err);
    assert_non_null(t);
    assert_string_equal(err, "");
    assert_int_equal(es_aac_opus_sample_rate(t), rate);
    assert_int_equal(es_aac_opus_in_channels(t), channels);
    assert_int_equal(es_aac_opus_channels(t), channels == 1 ? 1 : 2);

    sink_t k;
    sink_init(&k);
    int total = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (size_t i = 0; i < s.n; i++) {
        int n = es_aac_opus_push(t, s.pkts[i].data, s.pkts[i].len, s.pkts[i].pts_ms, on_opus, &k);
        assert_true(n >= 0);
        total += n;
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double audio = (double)s.n * 1024 / rate;
    print_message("  %d Hz x%d: %zu AAC frames -> %d Opus packets, %.1f ms CPU per s of audio\n",
                  rate, channels, s.n, total, secs * 1000 / audio);
    assert_int_equal((size_t)total, k.n);

    /* Count: every decoded sample comes out, less what is still in the buffer/resampler. */
    size_t expect = (size_t)((double)s.n * 1024 * 48000 / rate) / 960;
    assert_true(k.n + 2 >= expect && k.n <= expect);

    /* Timestamps: the first at the first frame's pts * 48, then exactly 960 apart. */
    assert_int_equal(k.ts[0], s.pkts[0].pts_ms * 48);
    for (size_t i = 1; i < k.n; i++) assert_int_equal((uint32_t)(k.ts[i] - k.ts[i - 1]), 960);
    assert_int_equal(es_aac_opus_resyncs(t), 0);
    assert_int_equal(k.channels_seen, channels == 1 ? 1 : 2);

    /* The tone: a 0.5-amplitude sine has an RMS of 0.35. */
    double rms, freq;
    tone_stats(&k, 4800, &rms, &freq);
    print_message("  rms %.3f, zero-crossing frequency %.1f Hz\n", rms, freq);
    assert_true(rms > 0.2 && rms < 0.5);
    assert_true(freq > 900 && freq < 1100);

    sink_deinit(&k);
    es_aac_opus_free(t);
    free_aac(&s);
}

static void test_transcode_44k_stereo(void **state)
{
    (void)state;
    check_tone_stream(44100, 2, 1000);
}

static void test_transcode_48k_mono(void **state)
{
    (void)state;
    check_tone_stream(48000, 1, 3000);
}

/* Rarer formats: 8 kHz mono (one AAC frame becomes 6144 samples at 48 kHz: the buffer grows),
 * 22.05 kHz stereo, and 5.1 downmixed to stereo. */
static void test_transcode_other_formats(void **state)
{
    (void)state;
    check_tone_stream(8000, 1, 0);
    check_tone_stream(22050, 2, 500);
    check_tone_stream(48000, 6, 100);
}

/* Lip sync: a tone that starts 500 ms into the source must start, on the RTP clock, where its
 * pts says, late by the Opus encoder's look-ahead (312 samples = 6.5 ms, not compensated; see
 * transcode.h) and a fraction of a millisecond of filtering. */
static void check_onset(int rate, int channels)
{
    aac_stream_t s;
    const uint32_t base_ms = 2000;
    make_aac(&s, rate, channels, 1.5, 0.5, base_ms);
    es_aac_opus_t *t = es_aac_opus_new(s.asc, s.asc_len, 0, NULL, 0);
    assert_non_null(t);
    sink_t k;
    sink_init(&k);
    for (size_t i = 0; i < s.n; i++)
        assert_true(es_aac_opus_push(t, s.pkts[i].data, s.pkts[i].len, s.pkts[i].pts_ms,
                                     on_opus, &k) >= 0);
    size_t j = 0;
    while (j < k.pcm_len && k.pcm[j * 2] < 0.25 && k.pcm[j * 2] > -0.25) j++;
    assert_true(j < k.pcm_len);
    int64_t at = (int64_t)k.ts[0] + (int64_t)j;
    int64_t onset = (int64_t)(base_ms + 500) * 48;
    print_message("  %d Hz x%d: tone onset at %+.2f ms on the RTP clock\n", rate, channels,
                  (double)(at - onset) / 48.0);
    /* Late by the encoder's look-ahead, plus up to 2 ms: the first sample over half the
     * amplitude is up to a quarter period (0.25 ms) in, the filters add a fraction of 1 ms. */
    assert_true(at - onset >= 312 && at - onset <= 312 + 96);
    sink_deinit(&k);
    es_aac_opus_free(t);
    free_aac(&s);
}

static void test_transcode_onset_in_sync(void **state)
{
    (void)state;
    check_onset(44100, 2);
    check_onset(48000, 1);
}

/* A 500 ms hole in the source: one resync, and the first packet after it is stamped with the
 * new frame's pts (less the resampler's few samples of lag). */
static void test_transcode_gap_resyncs(void **state)
{
    (void)state;
    aac_stream_t s;
    make_aac(&s, 44100, 2, 2.0, 0, 1000);
    es_aac_opus_t *t = es_aac_opus_new(s.asc, s.asc_len, 32000, NULL, 0);
    assert_non_null(t);
    sink_t k;
    sink_init(&k);
    size_t gap_at = s.n / 2, first_after = 0;
    for (size_t i = 0; i < s.n; i++) {
        uint32_t pts = s.pkts[i].pts_ms + (i >= gap_at ? 500 : 0);
        if (i == gap_at) first_after = k.n;
        int n = es_aac_opus_push(t, s.pkts[i].data, s.pkts[i].len, pts, on_opus, &k);
        assert_true(n >= 0);
    }
    assert_int_equal(es_aac_opus_resyncs(t), 1);
    assert_true(first_after > 0 && first_after < k.n);
    int64_t want = (int64_t)(s.pkts[gap_at].pts_ms + 500) * 48;
    int64_t got = k.ts[first_after];
    assert_true(got <= want && got > want - 48);  /* under 1 ms of resampler lag */
    for (size_t i = 1; i < k.n; i++)
        if (i != first_after) assert_int_equal((uint32_t)(k.ts[i] - k.ts[i - 1]), 960);
    sink_deinit(&k);
    es_aac_opus_free(t);
    free_aac(&s);
}

/* A damaged frame is refused with ES_EPROTO, and the frames after it still come out. */
static void test_transcode_garbage_frame(void **state)
{
    (void)state;
    aac_stream_t s;
    make_aac(&s, 48000, 1, 1.0, 0, 0);
    es_aac_opus_t *t = es_aac_opus_new(s.asc, s.asc_len, 0, NULL, 0);
    assert_non_null(t);
    sink_t k;
    sink_init(&k);
    size_t half = s.n / 2;
    for (size_t i = 0; i < half; i++)
        assert_true(es_aac_opus_push(t, s.pkts[i].data, s.pkts[i].len, s.pkts[i].pts_ms,
                                     on_opus, &k) >= 0);
    size_t before = k.n;
    assert_true(before > 0);

    /* Deterministic junk the decoder rejects (AAC has no checksum: junk that happens to parse
     * decodes to noise, which no one can tell from audio). */
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(0xA5 ^ (i * 37));
    uint32_t pts = s.pkts[half].pts_ms;
    assert_int_equal(es_aac_opus_push(t, junk, sizeof junk, pts, on_opus, &k), ES_EPROTO);
    assert_int_equal(k.n, before);
    /* An empty frame, too (libavcodec would take it for end of stream). */
    assert_int_equal(es_aac_opus_push(t, junk, 0, pts, on_opus, &k), ES_EPROTO);
    assert_int_equal(es_aac_opus_push(NULL, junk, 1, pts, on_opus, &k), ES_EINVAL);
    assert_int_equal(es_aac_opus_push(t, junk, 1, pts, NULL, &k), ES_EINVAL);

    for (size_t i = half; i < s.n; i++)
        assert_true(es_aac_opus_push(t, s.pkts[i].data, s.pkts[i].len, s.pkts[i].pts_ms,
                                     on_opus, &k) >= 0);
    assert_true(k.n > before + 15);
    for (size_t i = 1; i < k.n; i++) assert_int_equal((uint32_t)(k.ts[i] - k.ts[i - 1]), 960);
    double rms, freq;
    tone_stats(&k, before * 960 + 4800, &rms, &freq);
    assert_true(rms > 0.2);
    assert_true(freq > 900 && freq < 1100);
    sink_deinit(&k);
    es_aac_opus_free(t);
    free_aac(&s);
}

static void expect_bad_config(const uint8_t *asc, size_t len, uint32_t bitrate, const char *what)
{
    char err[256] = "untouched";
    es_aac_opus_t *t = es_aac_opus_new(asc, len, bitrate, err, sizeof err);
    if (t) print_message("accepted: %s\n", what);
    assert_null(t);
    if (!strstr(err, what)) print_message("reason \"%s\" does not say \"%s\"\n", err, what);
    assert_non_null(strstr(err, what));
}

static void test_bad_config(void **state)
{
    (void)state;
    static const uint8_t one_byte[] = {0x12};
    static const uint8_t aot0[] = {0x00, 0x10};
    static const uint8_t reserved_rate[] = {0x16, 0x88};  /* LC, index 13 */
    static const uint8_t explicit_rate_cut[] = {0x17, 0x90};  /* LC, index 15, no 24 bits */
    static const uint8_t reserved_channels[] = {0x12, 0x78};  /* LC, 44.1k, config 15 */
    static const uint8_t unknown_aot[] = {0xF9, 0x48, 0x40};  /* type 42 (USAC) */
    static const uint8_t lc_stereo[] = {0x12, 0x10};
    expect_bad_config(NULL, 0, 0, "at least 2");
    expect_bad_config(one_byte, sizeof one_byte, 0, "at least 2");
    expect_bad_config(aot0, sizeof aot0, 0, "object type 0");
    expect_bad_config(reserved_rate, sizeof reserved_rate, 0, "index 13 is reserved");
    expect_bad_config(explicit_rate_cut, sizeof explicit_rate_cut, 0, "truncated");
    expect_bad_config(reserved_channels, sizeof reserved_channels, 0, "configuration 15");
    expect_bad_config(unknown_aot, sizeof unknown_aot, 0, "rejected by the AAC decoder");
    expect_bad_config(lc_stereo, sizeof lc_stereo, 1000, "bitrate");
    expect_bad_config(lc_stereo, sizeof lc_stereo, 600000, "bitrate");

    /* The plain configs are accepted, with or without an error buffer. */
    es_aac_opus_t *t = es_aac_opus_new(lc_stereo, sizeof lc_stereo, 0, NULL, 0);
    assert_non_null(t);
    assert_int_equal(es_aac_opus_sample_rate(t), 44100);
    assert_int_equal(es_aac_opus_in_channels(t), 2);
    assert_int_equal(es_aac_opus_channels(t), 2);
    es_aac_opus_free(t);
    static const uint8_t lc_mono_48k[] = {0x11, 0x88};
    t = es_aac_opus_new(lc_mono_48k, sizeof lc_mono_48k, 24000, NULL, 0);
    assert_non_null(t);
    assert_int_equal(es_aac_opus_sample_rate(t), 48000);
    assert_int_equal(es_aac_opus_in_channels(t), 1);
    assert_int_equal(es_aac_opus_channels(t), 1);
    es_aac_opus_free(t);
    es_aac_opus_free(NULL);
}

int main(void)
{
    av_log_set_level(AV_LOG_QUIET);  /* the AAC encoder's statistics */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_steady),
        cmocka_unit_test(test_map_gap_resyncs),
        cmocka_unit_test(test_map_jitter_ignored),
        cmocka_unit_test(test_map_wraps),
        cmocka_unit_test(test_transcode_44k_stereo),
        cmocka_unit_test(test_transcode_48k_mono),
        cmocka_unit_test(test_transcode_other_formats),
        cmocka_unit_test(test_transcode_onset_in_sync),
        cmocka_unit_test(test_transcode_gap_resyncs),
        cmocka_unit_test(test_transcode_garbage_frame),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
