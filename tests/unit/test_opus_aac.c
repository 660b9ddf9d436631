/* Unit tests for src/transcode/opus_aac.c: the Opus -> AAC transcoder end to end on real Opus
 * made here by libopus's encoder from a 1 kHz sine (stereo and mono, 20 ms and other packet
 * durations), checked by decoding every AAC frame with libavcodec's AAC decoder configured from
 * the transcoder's AudioSpecificConfig: frame count, times (from a sample counter: no drift),
 * tone and level, lip sync of a tone onset. Loss: a 60 ms gap concealed, a 1 s gap and a jump
 * back resynchronised, duplicates dropped; malformed packets refused without harm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "media_fixtures.h"

#include "estuary/error.h"
#include "estuary/flv.h"
#include "estuary/transcode.h"

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/log.h>
#include <opus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The test links no libm (estuary_core does not need it), so the little math here is local. */
#define TEST_PI 3.14159265358979323846
#define TONE_AMPLITUDE 0.5
#define TONE_RMS 0.35355339059327373 /* TONE_AMPLITUDE / sqrt(2) */

/* The time in ms the transcoder gives a frame starting at 48 kHz tick `tick` (rounded to the
 * nearest ms, floor for halves below 0), modulo 2^32. */
static uint32_t tick_ms(int64_t tick)
{
    int64_t a = tick + 24;
    int64_t q = a / 48;
    if (a % 48 != 0 && a < 0) q--;
    return (uint32_t)(uint64_t)q;
}

/* ---- Real Opus from libopus's encoder ---- */

typedef struct opus_pkt {
    uint8_t data[1500];
    size_t len;
    uint32_t pts_ms;
} opus_pkt_t;

typedef struct opus_stream {
    opus_pkt_t *pkts;
    size_t n;
    int frame;      /* samples per packet at 48 kHz */
    int lookahead;  /* the encoder's delay in samples (OPUS_GET_LOOKAHEAD) */
} opus_stream_t;

typedef struct opus_opts {
    int channels;
    int frame;          /* samples per packet: 480, 960, 2880 ... */
    double seconds;
    double silent_s;    /* silence before the tone starts */
    uint32_t base_ms;   /* pts of the first packet */
    bool voip_fec;      /* OPUS_APPLICATION_VOIP, in-band FEC on, 24 kbit/s: SILK packets */
} opus_opts_t;

/* A 1 kHz sine at TONE_AMPLITUDE, Opus at 48 kHz; pts from base_ms in steps of the duration. */
static void make_opus(opus_stream_t *s, const opus_opts_t *o)
{
    memset(s, 0, sizeof *s);
    s->frame = o->frame;
    int err;
    OpusEncoder *enc = opus_encoder_create(
        48000, o->channels, o->voip_fec ? OPUS_APPLICATION_VOIP : OPUS_APPLICATION_AUDIO, &err);
    assert_non_null(enc);
    assert_int_equal(opus_encoder_ctl(enc, OPUS_SET_BITRATE(o->voip_fec ? 24000
                                                                         : 48000 * o->channels)),
                     OPUS_OK);
    if (o->voip_fec) {
        assert_int_equal(opus_encoder_ctl(enc, OPUS_SET_INBAND_FEC(1)), OPUS_OK);
        assert_int_equal(opus_encoder_ctl(enc, OPUS_SET_PACKET_LOSS_PERC(20)), OPUS_OK);
        assert_int_equal(opus_encoder_ctl(enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE)), OPUS_OK);
    }
    opus_int32 la;
    assert_int_equal(opus_encoder_ctl(enc, OPUS_GET_LOOKAHEAD(&la)), OPUS_OK);
    s->lookahead = la;

    size_t total = (size_t)(o->seconds * 48000);
    size_t npkts = total / (size_t)o->frame;
    s->pkts = calloc(npkts, sizeof *s->pkts);
    assert_non_null(s->pkts);
    float *pcm = malloc((size_t)o->frame * (size_t)o->channels * sizeof *pcm);
    assert_non_null(pcm);
    /* The sine by rotating a phasor: exact enough over a few seconds in double. */
    double ws, wc, re = 0.0, im = 1.0;
    small_sincos(2.0 * TEST_PI * 1000.0 / 48000, &ws, &wc);
    size_t silent = (size_t)(o->silent_s * 48000);
    for (size_t i = 0; i < npkts; i++) {
        for (int k = 0; k < o->frame; k++) {
            size_t n = i * (size_t)o->frame + (size_t)k;
            float v = n < silent ? 0.0f : (float)(TONE_AMPLITUDE * re);
            for (int c = 0; c < o->channels; c++) pcm[k * o->channels + c] = v;
            double nre = re * wc + im * ws, nim = im * wc - re * ws;
            re = nre;
            im = nim;
        }
        opus_pkt_t *p = &s->pkts[i];
        opus_int32 len = opus_encode_float(enc, pcm, o->frame, p->data, sizeof p->data);
        assert_true(len > 0);
        p->len = (size_t)len;
        p->pts_ms = o->base_ms + (uint32_t)(i * (size_t)o->frame / 48);
    }
    s->n = npkts;
    free(pcm);
    opus_encoder_destroy(enc);
}

/* ---- What an FLV player gets: every AAC frame decoded by libavcodec ---- */

typedef struct aac_sink {
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    uint32_t pts[4096];
    size_t n;
    float *l, *r;       /* decoded channels */
    size_t pcm_len;     /* samples per channel */
    size_t pcm_cap;
} aac_sink_t;

static void sink_init(aac_sink_t *k, const es_opus_aac_t *t)
{
    memset(k, 0, sizeof *k);
    const uint8_t *asc;
    size_t asc_len;
    assert_int_equal(es_opus_aac_config(t, &asc, &asc_len), 0);
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_AAC);
    assert_non_null(codec);
    k->dec = avcodec_alloc_context3(codec);
    assert_non_null(k->dec);
    k->dec->extradata = av_mallocz(asc_len + AV_INPUT_BUFFER_PADDING_SIZE);
    assert_non_null(k->dec->extradata);
    memcpy(k->dec->extradata, asc, asc_len);
    k->dec->extradata_size = (int)asc_len;
    assert_int_equal(avcodec_open2(k->dec, codec, NULL), 0);
    k->pkt = av_packet_alloc();
    k->frame = av_frame_alloc();
    assert_non_null(k->pkt);
    assert_non_null(k->frame);
    k->pcm_cap = 48000 * 8;
    k->l = malloc(k->pcm_cap * sizeof *k->l);
    k->r = malloc(k->pcm_cap * sizeof *k->r);
    assert_non_null(k->l);
    assert_non_null(k->r);
}

static void sink_deinit(aac_sink_t *k)
{
    avcodec_free_context(&k->dec);
    av_packet_free(&k->pkt);
    av_frame_free(&k->frame);
    free(k->l);
    free(k->r);
}

static void on_aac(void *user, const uint8_t *aac, size_t len, uint32_t pts_ms)
{
    aac_sink_t *k = user;
    assert_true(len > 0 && len <= 6144 / 8 * 2);  /* at most 6144 bits per channel */
    /* Raw frames: no ADTS syncword. */
    assert_false(len >= 2 && aac[0] == 0xFF && (aac[1] & 0xF0) == 0xF0);
    assert_true(k->n < sizeof k->pts / sizeof k->pts[0]);
    k->pts[k->n++] = pts_ms;
    assert_int_equal(av_new_packet(k->pkt, (int)len), 0);
    memcpy(k->pkt->data, aac, len);
    assert_int_equal(avcodec_send_packet(k->dec, k->pkt), 0);
    av_packet_unref(k->pkt);
    assert_int_equal(avcodec_receive_frame(k->dec, k->frame), 0);
    assert_int_equal(k->frame->nb_samples, 1024);
    assert_int_equal(k->frame->sample_rate, 48000);
    assert_int_equal(k->frame->ch_layout.nb_channels, 2);
    assert_int_equal(k->frame->format, AV_SAMPLE_FMT_FLTP);
    assert_true(k->pcm_len + 1024 <= k->pcm_cap);
    memcpy(k->l + k->pcm_len, k->frame->extended_data[0], 1024 * sizeof(float));
    memcpy(k->r + k->pcm_len, k->frame->extended_data[1], 1024 * sizeof(float));
    k->pcm_len += 1024;
    av_frame_unref(k->frame);
}

/* RMS and a zero-crossing frequency estimate of samples [from, to) of one channel. */
static void tone_stats(const float *x, size_t from, size_t to, double *rms, double *freq)
{
    double sum = 0;
    size_t crossings = 0;
    assert_true(to >= from + 960);
    for (size_t i = from; i < to; i++) {
        sum += (double)x[i] * x[i];
        if (i > from && ((x[i - 1] < 0) != (x[i] < 0))) crossings++;
    }
    size_t n = to - from;
    *rms = newton_sqrt(sum / (double)n);
    *freq = (double)crossings / 2.0 / ((double)n / 48000.0);
}

/* A ~1 kHz tone at the source's level on both channels, within ±10 %. */
static void assert_tone(const aac_sink_t *k, size_t from, size_t to, const char *what)
{
    double rms_l, freq_l, rms_r, freq_r;
    tone_stats(k->l, from, to, &rms_l, &freq_l);
    tone_stats(k->r, from, to, &rms_r, &freq_r);
    print_message("  %s: rms %.3f/%.3f, zero-crossing frequency %.1f/%.1f Hz\n", what, rms_l,
                  rms_r, freq_l, freq_r);
    assert_true(rms_l > TONE_RMS * 0.9 && rms_l < TONE_RMS * 1.1);
    assert_true(rms_r > TONE_RMS * 0.9 && rms_r < TONE_RMS * 1.1);
    assert_true(freq_l > 900 && freq_l < 1100);
    assert_true(freq_r > 900 && freq_r < 1100);
}

/* Frame k of a run that started at tick `start` and began at output index `first`. */
static void assert_run_times(const aac_sink_t *k, size_t first, size_t end, int64_t start)
{
    for (size_t i = first; i < end; i++) {
        uint32_t want = tick_ms(start + (int64_t)(i - first) * 1024);
        if (k->pts[i] != want)
            print_message("frame %zu: pts %u, want %u\n", i, k->pts[i], want);
        assert_int_equal(k->pts[i], want);
    }
}

static void push_all(es_opus_aac_t *t, const opus_stream_t *s, size_t from, size_t to,
                     uint32_t shift_ms, aac_sink_t *k)
{
    for (size_t i = from; i < to; i++) {
        int n = es_opus_aac_push(t, s->pkts[i].data, s->pkts[i].len, s->pkts[i].pts_ms + shift_ms,
                                 on_aac, k);
        assert_true(n >= 0);
    }
}

/* ---- Steady streams ---- */

static void check_tone(int channels, int frame, uint32_t base_ms)
{
    opus_stream_t s;
    opus_opts_t o = {.channels = channels, .frame = frame, .seconds = 2.0, .base_ms = base_ms};
    make_opus(&s, &o);
    char err[256];
    es_opus_aac_t *t = es_opus_aac_new(0, err, sizeof err);
    if (!t) print_message("es_opus_aac_new: %s\n", err);
    assert_non_null(t);
    assert_string_equal(err, "");
    aac_sink_t k;
    sink_init(&k, t);

    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    int total = 0;
    for (size_t i = 0; i < s.n; i++) {
        int n = es_opus_aac_push(t, s.pkts[i].data, s.pkts[i].len, s.pkts[i].pts_ms, on_aac, &k);
        assert_true(n >= 0);
        total += n;
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double audio = (double)(s.n * (size_t)frame) / 48000;
    print_message("  x%d, %d-sample packets: %zu Opus -> %d AAC frames, %.1f ms CPU per s of "
                  "audio (with the test's AAC decoding)\n",
                  channels, frame, s.n, total, secs * 1000 / audio);
    assert_int_equal((size_t)total, k.n);

    /* Count: the priming frame, then every whole frame of input but the two the encoder
     * holds (its look-ahead and the frame being windowed). */
    size_t samples = s.n * (size_t)frame;
    assert_int_equal(k.n, 1 + samples / 1024 - 2);
    /* Times: priming frame 1024 samples before the first pts, then every 1024 samples from
     * the first pts, computed from the sample count (no accumulated rounding). */
    int64_t start = (int64_t)base_ms * 48;
    assert_int_equal(k.pts[0], tick_ms(start - 1024));
    assert_run_times(&k, 0, k.n, start - 1024);
    for (size_t i = 1; i < k.n; i++) {
        uint32_t step = k.pts[i] - k.pts[i - 1];
        assert_true(step == 21 || step == 22);
    }
    /* 3 frames are 64 ms exactly. */
    if (k.n > 4) assert_int_equal(k.pts[4] - k.pts[1], 64);

    /* Skip the start (priming, the codecs settling). */
    assert_tone(&k, 4800, k.pcm_len, "tone");

    es_opus_aac_stats_t st = es_opus_aac_stats(t);
    assert_int_equal(st.packets, s.n);
    assert_int_equal(st.frames, k.n);
    assert_int_equal(st.resyncs, 0);
    assert_int_equal(st.concealments, 0);
    assert_int_equal(st.late, 0);
    assert_int_equal(st.bad, 0);
    sink_deinit(&k);
    es_opus_aac_free(t);
    free(s.pkts);
}

static void on_count(void *user, const uint8_t *aac, size_t len, uint32_t pts_ms)
{
    (void)aac;
    (void)len;
    (void)pts_ms;
    (*(size_t *)user)++;
}

/* The transcoder's own cost (no decoding in the callback): reported, not asserted. */
static void test_cpu_cost(void **state)
{
    (void)state;
    for (int channels = 1; channels <= 2; channels++) {
        opus_stream_t s;
        opus_opts_t o = {.channels = channels, .frame = 960, .seconds = 10.0, .base_ms = 0};
        make_opus(&s, &o);
        es_opus_aac_t *t = es_opus_aac_new(0, NULL, 0);
        assert_non_null(t);
        size_t frames = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        for (size_t i = 0; i < s.n; i++)
            assert_true(es_opus_aac_push(t, s.pkts[i].data, s.pkts[i].len, s.pkts[i].pts_ms,
                                         on_count, &frames) >= 0);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        print_message("  Opus x%d -> AAC-LC 48 kHz stereo 128 kbit/s: %.1f ms CPU per s of "
                      "audio\n", channels, secs * 1000 / o.seconds);
        assert_int_equal(frames, 1 + 480000 / 1024 - 2);
        es_opus_aac_free(t);
        free(s.pkts);
    }
}

static void test_stereo_20ms(void **state)
{
    (void)state;
    check_tone(2, 960, 1000);
}

static void test_mono_20ms(void **state)
{
    (void)state;
    /* Mono packets come out on both channels of the stereo AAC. */
    check_tone(1, 960, 3000);
}

static void test_other_durations(void **state)
{
    (void)state;
    check_tone(2, 480, 250);    /* 10 ms */
    check_tone(1, 2880, 7000);  /* 60 ms */
    check_tone(2, 120, 40);     /* 2.5 ms */
}

/* The output's configuration is what an FLV sequence header needs: AAC-LC, 48 kHz, stereo. */
static void test_config(void **state)
{
    (void)state;
    char err[256];
    es_opus_aac_t *t = es_opus_aac_new(96000, err, sizeof err);
    assert_non_null(t);
    const uint8_t *asc = NULL;
    size_t len = 0;
    assert_int_equal(es_opus_aac_config(t, &asc, &len), 0);
    assert_non_null(asc);
    /* Object type 2 (LC), frequency index 3 (48000), channel configuration 2, GASpecificConfig
     * 0 0 0; then FFmpeg's encoder says explicitly that there is no SBR (syncExtensionType
     * 0x2b7, extensionAudioObjectType 5, sbrPresentFlag 0: ISO/IEC 14496-3 §1.6.2.1), which
     * keeps players that guess HE-AAC from an implicit config from doubling the rate. */
    static const uint8_t want[] = {0x11, 0x90, 0x56, 0xE5, 0x00};
    assert_int_equal(len, sizeof want);
    assert_memory_equal(asc, want, sizeof want);
    es_aac_config_t c;
    assert_int_equal(es_aac_config_parse(asc, len, &c), 0);
    assert_int_equal(c.object_type, 2);
    assert_int_equal(c.sample_rate, 48000);
    assert_int_equal(c.channels, 2);
    assert_int_equal(es_opus_aac_sample_rate(t), 48000);
    assert_int_equal(es_opus_aac_channels(t), 2);
    /* libavcodec's decoder configured by it alone (sink_init) decodes the frames as 48 kHz
     * stereo AAC-LC (on_aac checks every frame's format). */
    opus_stream_t s;
    opus_opts_t o = {.channels = 2, .frame = 960, .seconds = 0.2, .base_ms = 0};
    make_opus(&s, &o);
    aac_sink_t k;
    sink_init(&k, t);
    push_all(t, &s, 0, s.n, 0, &k);
    assert_int_equal(k.n, 1 + 9600 / 1024 - 2);
    assert_int_equal(k.dec->sample_rate, 48000);
    assert_int_equal(k.dec->ch_layout.nb_channels, 2);
    assert_int_equal(k.dec->profile, FF_PROFILE_AAC_LOW);
    sink_deinit(&k);
    free(s.pkts);

    assert_int_equal(es_opus_aac_config(NULL, &asc, &len), ES_EINVAL);
    assert_int_equal(es_opus_aac_config(t, NULL, &len), ES_EINVAL);
    assert_int_equal(es_opus_aac_config(t, &asc, NULL), ES_EINVAL);
    es_opus_aac_free(t);

    /* Bitrates out of range are refused with a reason; the bounds are accepted. */
    strcpy(err, "untouched");
    assert_null(es_opus_aac_new(ES_OPUS_AAC_MIN_BITRATE - 1, err, sizeof err));
    assert_non_null(strstr(err, "bitrate"));
    assert_null(es_opus_aac_new(ES_OPUS_AAC_MAX_BITRATE + 1, err, sizeof err));
    assert_non_null(strstr(err, "out of range"));
    assert_null(es_opus_aac_new(1, NULL, 0));
    t = es_opus_aac_new(ES_OPUS_AAC_MIN_BITRATE, NULL, 0);
    assert_non_null(t);
    es_opus_aac_free(t);
    t = es_opus_aac_new(ES_OPUS_AAC_MAX_BITRATE, err, sizeof err);
    assert_non_null(t);
    assert_string_equal(err, "");
    es_opus_aac_free(t);
    es_opus_aac_free(NULL);
}

/* Lip sync: a tone that starts 500 ms into the source is heard, at the times the AAC frames
 * carry, where its pts says: late only by the Opus encoder's look-ahead (a sender's delay, which
 * RTP does not signal), not by the AAC encoder's priming, which the times take into account. */
static void check_onset(int channels, uint32_t base_ms)
{
    opus_stream_t s;
    opus_opts_t o = {.channels = channels, .frame = 960, .seconds = 1.5, .silent_s = 0.5,
                     .base_ms = base_ms};
    make_opus(&s, &o);
    es_opus_aac_t *t = es_opus_aac_new(0, NULL, 0);
    assert_non_null(t);
    aac_sink_t k;
    sink_init(&k, t);
    push_all(t, &s, 0, s.n, 0, &k);
    size_t j = 0;
    while (j < k.pcm_len && k.l[j] < 0.25f && k.l[j] > -0.25f) j++;
    assert_true(j < k.pcm_len);
    /* Frame 0's first sample is at base * 48 - 1024 on the 48 kHz clock. */
    int64_t at = (int64_t)base_ms * 48 - 1024 + (int64_t)j;
    int64_t onset = (int64_t)(base_ms + 500) * 48 + s.lookahead;
    print_message("  x%d: tone onset at %+.2f ms after the source's (less the Opus look-ahead "
                  "of %d samples)\n", channels, (double)(at - onset) / 48.0, s.lookahead);
    /* The first sample over half the amplitude is up to a quarter period (12 samples) in; AAC's
     * pre-echo may put a little energy earlier. Within 1 ms either way; a missed or doubled
     * priming would be 21.3 ms off. */
    assert_true(at - onset >= -48 && at - onset <= 48);
    sink_deinit(&k);
    es_opus_aac_free(t);
    free(s.pkts);
}

static void test_onset_in_sync(void **state)
{
    (void)state;
    check_onset(2, 2000);
    check_onset(1, 15);
}

/* A first pts under 22 ms puts the priming frame before 0: its time wraps modulo 2^32 like the
 * input's timeline, and so does a stream that crosses 2^32 ms. */
static void test_times_wrap(void **state)
{
    (void)state;
    opus_stream_t s;
    opus_opts_t o = {.channels = 2, .frame = 960, .seconds = 1.0, .base_ms = 0};
    make_opus(&s, &o);
    es_opus_aac_t *t = es_opus_aac_new(0, NULL, 0);
    assert_non_null(t);
    aac_sink_t k;
    sink_init(&k, t);
    push_all(t, &s, 0, s.n, 0, &k);
    assert_true(k.n > 10);
    assert_int_equal(k.pts[0], (uint32_t)-21);
    assert_int_equal(k.pts[1], 0);
    assert_int_equal(k.pts[2], 21);
    sink_deinit(&k);
    es_opus_aac_free(t);

    /* From 500 ms before the ms clock wraps: the shifted pts wrap after 25 packets. */
    t = es_opus_aac_new(0, NULL, 0);
    assert_non_null(t);
    sink_init(&k, t);
    uint32_t shift = UINT32_MAX - 499;
    push_all(t, &s, 0, s.n, shift, &k);
    int64_t start = (int64_t)shift * 48 - 1024;
    for (size_t i = 0; i < k.n; i++)
        assert_int_equal(k.pts[i], tick_ms(start + (int64_t)i * 1024));
    assert_true(k.pts[k.n - 1] < 1000);
    es_opus_aac_stats_t st = es_opus_aac_stats(t);
    assert_int_equal(st.resyncs, 0);
    assert_int_equal(st.concealments, 0);
    sink_deinit(&k);
    es_opus_aac_free(t);
    free(s.pkts);
}

/* ---- Loss ---- */

/* 60 ms lost (three 20 ms packets): concealed, the output runs on with unchanged timing and
 * the same number of frames as without loss, and the tone is back after the gap. */
static void check_gap_concealed(bool voip_fec, size_t lost)
{
    opus_stream_t s;
    opus_opts_t o = {.channels = 1, .frame = 960, .seconds = 2.0, .base_ms = 500,
                     .voip_fec = voip_fec};
    make_opus(&s, &o);
    es_opus_aac_t *t = es_opus_aac_new(0, NULL, 0);
    assert_non_null(t);
    aac_sink_t k;
    sink_init(&k, t);
    size_t gap_at = 50;
    push_all(t, &s, 0, gap_at, 0, &k);
    push_all(t, &s, gap_at + lost, s.n, 0, &k);
    es_opus_aac_stats_t st = es_opus_aac_stats(t);
    assert_int_equal(st.concealments, 1);
    assert_int_equal(st.concealed, lost * 960);
    assert_int_equal(st.resyncs, 0);
    assert_int_equal(st.packets, s.n - lost);
    assert_int_equal(k.n, s.n * 960 / 1024 - 1);
    assert_run_times(&k, 0, k.n, 500 * 48 - 1024);

    /* Output sample i stands for input sample i - 1024. The gap is input [48000, 48000 +
     * lost * 960); the concealment has some energy there (no hole of silence)... */
    size_t g0 = gap_at * 960 + 1024, g1 = g0 + lost * 960;
    double rms, freq;
    tone_stats(k.l, g0, g1, &rms, &freq);
    print_message("  %s, %zu ms lost: rms %.3f, %.0f Hz in the gap\n",
                  voip_fec ? "SILK with FEC" : "CELT", lost * 20, rms, freq);
    assert_true(rms > 0.05);
    /* One SILK packet lost: FEC rebuilds it nearly at level (0.34 measured; concealment
     * without it, opus_decode(NULL), gives 0.18 here). */
    if (voip_fec && lost == 1) assert_true(rms > 0.3);
    /* ...and the tone is back at its level 40 ms after it. */
    if (!voip_fec) assert_tone(&k, g1 + 1920, k.pcm_len, "after the gap");
    else assert_tone(&k, g1 + 1920, k.pcm_len, "after the gap (SILK)");
    sink_deinit(&k);
    es_opus_aac_free(t);
    free(s.pkts);
}

static void test_gap_concealed(void **state)
{
    (void)state;
    check_gap_concealed(false, 3);
    /* SILK packets carrying LBRR: the last lost 20 ms comes from the next packet's FEC. */
    check_gap_concealed(true, 3);
    check_gap_concealed(true, 1);
}

/* 1 s lost: beyond ES_OPUS_AAC_PLC_MAX_MS the clock resyncs; the old run's last partial frame
 * is completed with silence and kept at its time, the new run starts a frame at the new pts. A
 * jump back (a publisher restarting its timeline) resyncs too. */
static void test_gap_resyncs(void **state)
{
    (void)state;
    opus_stream_t s;
    opus_opts_t o = {.channels = 2, .frame = 960, .seconds = 3.0, .base_ms = 10000};
    make_opus(&s, &o);
    es_opus_aac_t *t = es_opus_aac_new(0, NULL, 0);
    assert_non_null(t);
    aac_sink_t k;
    sink_init(&k, t);

    /* Run 1: packets 0..49 (48000 samples = 46 frames + 896). */
    push_all(t, &s, 0, 50, 0, &k);
    /* Run 2: packets 50..99 but 1 s later (the pts of packets 100..149). */
    push_all(t, &s, 100, 150, 0, &k);
    es_opus_aac_stats_t st = es_opus_aac_stats(t);
    assert_int_equal(st.resyncs, 1);
    assert_int_equal(st.concealments, 0);
    /* Priming + 47 frames of run 1 (the last padded), then run 2's: 47 + 46 frames went in,
     * the encoder holds the last two. */
    size_t run2 = 1 + 47;
    assert_int_equal(k.n, 1 + 47 + 46 - 2);
    assert_run_times(&k, 0, run2, 10000 * 48 - 1024);
    int64_t start2 = (int64_t)(10000 + 2000) * 48;
    assert_int_equal(k.pts[run2], 12000);
    assert_run_times(&k, run2, k.n, start2);
    /* Both runs carry the tone. */
    assert_tone(&k, 4800, 40 * 1024, "run 1");
    assert_tone(&k, (run2 + 3) * 1024, k.pcm_len, "run 2");

    /* A jump back by 5 s: a third run. */
    size_t run3 = k.n + 3;  /* after run 2's two held frames and its padded last one */
    push_all(t, &s, 100, 150, (uint32_t)-5000, &k);
    st = es_opus_aac_stats(t);
    assert_int_equal(st.resyncs, 2);
    assert_int_equal(k.pts[run3], 12000 - 5000);
    assert_run_times(&k, run3, k.n, (int64_t)7000 * 48);
    sink_deinit(&k);
    es_opus_aac_free(t);
    free(s.pkts);
}

/* A packet sent twice (or one late after its time was concealed) is dropped; times stay. */
static void test_duplicate_dropped(void **state)
{
    (void)state;
    opus_stream_t s;
    opus_opts_t o = {.channels = 2, .frame = 960, .seconds = 1.0, .base_ms = 100};
    make_opus(&s, &o);
    es_opus_aac_t *t = es_opus_aac_new(64000, NULL, 0);
    assert_non_null(t);
    aac_sink_t k;
    sink_init(&k, t);
    push_all(t, &s, 0, 20, 0, &k);
    size_t before = k.n;
    assert_int_equal(es_opus_aac_push(t, s.pkts[19].data, s.pkts[19].len, s.pkts[19].pts_ms,
                                      on_aac, &k), 0);
    assert_int_equal(es_opus_aac_push(t, s.pkts[15].data, s.pkts[15].len, s.pkts[15].pts_ms,
                                      on_aac, &k), 0);
    assert_int_equal(k.n, before);
    push_all(t, &s, 20, s.n, 0, &k);
    es_opus_aac_stats_t st = es_opus_aac_stats(t);
    assert_int_equal(st.late, 2);
    assert_int_equal(st.resyncs, 0);
    assert_int_equal(st.concealments, 0);
    assert_int_equal(k.n, s.n * 960 / 1024 - 1);
    assert_run_times(&k, 0, k.n, 100 * 48 - 1024);
    sink_deinit(&k);
    es_opus_aac_free(t);
    free(s.pkts);
}

/* ---- Bad input ---- */

/* Malformed packets are refused with ES_EPROTO and change nothing; a garbage packet in place of
 * a good one is a loss, concealed when the next good packet comes. */
static void test_garbage(void **state)
{
    (void)state;
    opus_stream_t s;
    opus_opts_t o = {.channels = 2, .frame = 960, .seconds = 2.0, .base_ms = 0};
    make_opus(&s, &o);
    es_opus_aac_t *t = es_opus_aac_new(0, NULL, 0);
    assert_non_null(t);
    aac_sink_t k;
    sink_init(&k, t);

    /* Before any good packet, too. */
    static const uint8_t code3_no_count[] = {0x03};
    assert_int_equal(es_opus_aac_push(t, code3_no_count, 1, 0, on_aac, &k), ES_EPROTO);
    push_all(t, &s, 0, 50, 0, &k);
    size_t before = k.n;
    uint32_t pts = s.pkts[50].pts_ms;

    static const uint8_t code3_zero_frames[] = {0xFB, 0x00};
    static const uint8_t code3_960ms[] = {0xFB, 0x30};      /* 48 frames of 20 ms: over 120 */
    static const uint8_t code1_odd[] = {0xF9, 0xAA};        /* two equal frames, 1 byte */
    static const uint8_t code2_long[] = {0xFA, 0xFC, 0x01}; /* first frame longer than all */
    uint8_t oversize[1300];                                  /* one frame over 1275 bytes */
    memset(oversize, 0x55, sizeof oversize);
    oversize[0] = 0xF8;
    const struct {
        const uint8_t *p;
        size_t len;
    } bad[] = {
        {code3_no_count, sizeof code3_no_count}, {code3_zero_frames, sizeof code3_zero_frames},
        {code3_960ms, sizeof code3_960ms},       {code1_odd, sizeof code1_odd},
        {code2_long, sizeof code2_long},         {oversize, sizeof oversize},
        {code3_no_count, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(es_opus_aac_push(t, bad[i].p, bad[i].len, pts, on_aac, &k), ES_EPROTO);
    assert_int_equal(es_opus_aac_push(NULL, code1_odd, 2, pts, on_aac, &k), ES_EINVAL);
    assert_int_equal(es_opus_aac_push(t, code1_odd, 2, pts, NULL, &k), ES_EINVAL);
    assert_int_equal(es_opus_aac_push(t, NULL, 2, pts, on_aac, &k), ES_EINVAL);
    assert_int_equal(k.n, before);
    es_opus_aac_stats_t st = es_opus_aac_stats(t);
    assert_int_equal(st.bad, 1 + sizeof bad / sizeof bad[0]);

    /* Nothing changed: the next good packets continue without a gap. */
    push_all(t, &s, 50, 60, 0, &k);
    st = es_opus_aac_stats(t);
    assert_int_equal(st.concealments, 0);
    assert_int_equal(st.resyncs, 0);
    /* Garbage in place of packet 60: its 20 ms are concealed on packet 61. */
    assert_int_equal(es_opus_aac_push(t, code3_zero_frames, sizeof code3_zero_frames,
                                      s.pkts[60].pts_ms, on_aac, &k), ES_EPROTO);
    push_all(t, &s, 61, s.n, 0, &k);
    st = es_opus_aac_stats(t);
    assert_int_equal(st.concealments, 1);
    assert_int_equal(st.concealed, 960);
    assert_int_equal(k.n, s.n * 960 / 1024 - 1);
    assert_run_times(&k, 0, k.n, -1024);
    assert_tone(&k, 62 * 960 + 1024 + 1920, k.pcm_len, "after garbage");

    /* Noise that parses as Opus decodes to noise (Opus has no checksum): accepted, timed. */
    uint8_t junk[80];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(0xA5 ^ (i * 37));
    junk[0] = 0xFC;  /* CELT FB 20 ms, one frame */
    assert_true(es_opus_aac_push(t, junk, sizeof junk, s.pkts[s.n - 1].pts_ms + 20, on_aac,
                                 &k) >= 0);
    sink_deinit(&k);
    es_opus_aac_free(t);
    free(s.pkts);
}

int main(void)
{
    av_log_set_level(AV_LOG_QUIET);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_stereo_20ms),
        cmocka_unit_test(test_mono_20ms),
        cmocka_unit_test(test_other_durations),
        cmocka_unit_test(test_onset_in_sync),
        cmocka_unit_test(test_times_wrap),
        cmocka_unit_test(test_gap_concealed),
        cmocka_unit_test(test_gap_resyncs),
        cmocka_unit_test(test_duplicate_dropped),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_cpu_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
