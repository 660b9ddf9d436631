/* Opus -> AAC for WebRTC publishers played over RTMP, HTTP-FLV and HLS: libopus decodes the
 * RTP payloads (RFC 7587) at 48 kHz stereo, with its packet loss concealment (RFC 6716 §4.4)
 * and SILK's in-band FEC (LBRR frames, RFC 6716 §4.2) for gaps, into a planar sample buffer;
 * libavcodec's native AAC encoder makes AAC-LC frames of 1024 samples (ISO/IEC 14496-3) at the
 * same 48 kHz, so there is no resampling stage.
 * Timing (a 48 kHz sample clock driven by the packets' ms pts, the encoder's priming
 * subtracted) is described in include/estuary/transcode.h.
 *
 * Allocation: the decoder, encoder, AVFrame, AVPacket and sample buffers are made once in
 * es_opus_aac_new; per packet only libav allocates (the encoded packet's buffer). */
#include "estuary/metrics.h"
#include "estuary/transcode.h"

#include "estuary/error.h"

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/samplefmt.h>
#include <opus.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICKS_PER_MS (ES_OPUS_AAC_SAMPLE_RATE / 1000)
#define PLC_UNIT (ES_OPUS_AAC_SAMPLE_RATE / 400) /* 2.5 ms: libopus conceals in multiples of it */
/* The buffer holds under one AAC frame between calls, plus what one step appends: a 120 ms
 * packet, or a concealment of at most ES_OPUS_AAC_PLC_MAX_MS (rounded up to 2.5 ms). */
#define FIFO_CAP (ES_AAC_FRAME_SAMPLES + ES_OPUS_MAX_FRAME_SAMPLES)
/* Times of the frames handed to the encoder, by frame index, for stamping its output packets;
 * it needs those of the last delay / 1024 + 2 frames. */
#define RING_FRAMES 16
#define MAX_ENCODER_DELAY (ES_AAC_FRAME_SAMPLES * (RING_FRAMES - 4))

struct es_opus_aac {
    OpusDecoder *dec;
    AVCodecContext *enc;
    AVFrame *frame;
    AVPacket *pkt;
    /* Decoded samples not yet in an AAC frame, planar, fifo_len per channel. */
    float fifo[ES_OPUS_AAC_CHANNELS][FIFO_CAP];
    size_t fifo_len;
    float pcm[ES_OPUS_MAX_FRAME_SAMPLES * ES_OPUS_AAC_CHANNELS]; /* libopus output, interleaved */

    /* Sample clock, in 48 kHz ticks, 64-bit: never wraps. */
    bool started;
    int64_t last_pts;   /* unwrapped ms of the newest packet */
    int64_t next_tick;  /* time of the next sample appended to fifo; fifo[0] is fifo_len earlier */

    /* Encoder side: frames sent so far (its input is one contiguous run of samples, frame i
     * starting at sample i * 1024) and the time of each recent frame's first sample. */
    int64_t frames_sent;
    int64_t ring[RING_FRAMES];
    int delay;          /* encoder priming in samples (initial_padding) */
    es_opus_aac_stats_t stats;
};

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* libav writes to stderr about its encoder's state; nothing of it is for the operator. */
static void quiet_libav(void)
{
    static bool done;
    if (done) return;
    av_log_set_level(AV_LOG_QUIET);
    done = true;
}

es_opus_aac_t *es_opus_aac_new(uint32_t aac_bitrate_bps, char *err, size_t err_len)
{
    char ebuf[AV_ERROR_MAX_STRING_SIZE];
    set_err(err, err_len, "%s", "");
    quiet_libav();

    if (aac_bitrate_bps == 0) aac_bitrate_bps = ES_OPUS_AAC_DEFAULT_BITRATE;
    if (aac_bitrate_bps < ES_OPUS_AAC_MIN_BITRATE || aac_bitrate_bps > ES_OPUS_AAC_MAX_BITRATE) {
        set_err(err, err_len, "AAC bitrate %u bit/s out of range %d..%d", aac_bitrate_bps,
                ES_OPUS_AAC_MIN_BITRATE, ES_OPUS_AAC_MAX_BITRATE);
        return NULL;
    }
    es_opus_aac_t *t = calloc(1, sizeof *t);
    if (!t) {
        set_err(err, err_len, "out of memory");
        return NULL;
    }
    es_metrics.transcoders++; /* until es_*_free, on the failure paths too */
    int oerr;
    t->dec = opus_decoder_create(ES_OPUS_AAC_SAMPLE_RATE, ES_OPUS_AAC_CHANNELS, &oerr);
    if (!t->dec) {
        set_err(err, err_len, "opus_decoder_create: %s", opus_strerror(oerr));
        goto fail;
    }
    const AVCodec *codec = avcodec_find_encoder_by_name("aac");
    if (!codec) {
        set_err(err, err_len, "libavcodec has no native AAC encoder");
        goto fail;
    }
    t->enc = avcodec_alloc_context3(codec);
    t->frame = av_frame_alloc();
    t->pkt = av_packet_alloc();
    if (!t->enc || !t->frame || !t->pkt) goto oom;
    t->enc->sample_rate = ES_OPUS_AAC_SAMPLE_RATE;
    t->enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    av_channel_layout_default(&t->enc->ch_layout, ES_OPUS_AAC_CHANNELS);
    t->enc->bit_rate = aac_bitrate_bps;
    t->enc->profile = FF_PROFILE_AAC_LOW;
    t->enc->time_base = (AVRational){1, ES_OPUS_AAC_SAMPLE_RATE};
    t->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;  /* the AudioSpecificConfig in extradata */
    t->enc->thread_count = 1;
    int ret = avcodec_open2(t->enc, codec, NULL);
    if (ret < 0) {
        set_err(err, err_len, "AAC encoder (48000 Hz stereo, %u bit/s): %s", aac_bitrate_bps,
                av_strerror(ret, ebuf, sizeof ebuf) == 0 ? ebuf : "failed");
        goto fail;
    }
    if (t->enc->frame_size != ES_AAC_FRAME_SAMPLES || t->enc->extradata_size < 2 ||
        t->enc->initial_padding < 0 || t->enc->initial_padding > MAX_ENCODER_DELAY) {
        set_err(err, err_len, "AAC encoder: unexpected frame size %d, delay %d or config size %d",
                t->enc->frame_size, t->enc->initial_padding, t->enc->extradata_size);
        goto fail;
    }
    t->delay = t->enc->initial_padding;

    t->frame->nb_samples = ES_AAC_FRAME_SAMPLES;
    t->frame->format = AV_SAMPLE_FMT_FLTP;
    t->frame->sample_rate = ES_OPUS_AAC_SAMPLE_RATE;
    if (av_channel_layout_copy(&t->frame->ch_layout, &t->enc->ch_layout) < 0) goto oom;
    if (av_frame_get_buffer(t->frame, 0) < 0) goto oom;
    return t;
oom:
    set_err(err, err_len, "out of memory");
fail:
    es_opus_aac_free(t);
    return NULL;
}

void es_opus_aac_free(es_opus_aac_t *t)
{
    if (!t) return;
    es_metrics.transcoders--;
    if (t->dec) opus_decoder_destroy(t->dec);
    avcodec_free_context(&t->enc);
    av_frame_free(&t->frame);
    av_packet_free(&t->pkt);
    free(t);
}

/* Floor division, for times before 0 (the priming frame of a stream starting near 0). */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The 48 kHz time of sample s of the encoder's input (s < 0: the priming before frame 0). */
static int64_t encoder_sample_time(const es_opus_aac_t *t, int64_t s)
{
    if (s < 0) return t->ring[0] + s;
    int64_t idx = s / ES_AAC_FRAME_SAMPLES;
    /* The encoder emits packets for frames at most delay / 1024 + 2 behind the newest. */
    if (idx >= t->frames_sent || idx + RING_FRAMES <= t->frames_sent) idx = t->frames_sent - 1;
    return t->ring[idx % RING_FRAMES] + s % ES_AAC_FRAME_SAMPLES;
}

/* Receives every packet the encoder has ready and emits it. Returns how many, or ES_E*. */
static int drain_encoder(es_opus_aac_t *t, es_aac_emit_fn emit, void *user)
{
    int emitted = 0;
    for (;;) {
        int ret = avcodec_receive_packet(t->enc, t->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) break;
        if (ret < 0) return ret == AVERROR(ENOMEM) ? ES_ENOMEM : ES_EIO;
        /* The packet's pts counts input samples (time base 1/48000; frame i was sent with pts
         * i * 1024), less the priming: the first sample its decoded output stands for. */
        int64_t s = t->pkt->pts != AV_NOPTS_VALUE
                        ? t->pkt->pts
                        : (int64_t)t->stats.frames * ES_AAC_FRAME_SAMPLES - t->delay;
        int64_t tick = encoder_sample_time(t, s);
        int64_t ms = floor_div(tick + TICKS_PER_MS / 2, TICKS_PER_MS);
        if (t->pkt->size > 0) {
            emit(user, t->pkt->data, (size_t)t->pkt->size, (uint32_t)(uint64_t)ms);
            emitted++;
            t->stats.frames++;
        }
        av_packet_unref(t->pkt);
    }
    return emitted;
}

/* Hands the first 1024 buffered samples to the encoder (the caller made sure there are), then
 * emits what it has ready. */
static int encode_frame(es_opus_aac_t *t, es_aac_emit_fn emit, void *user)
{
    /* The encoder has let go of the previous frame's data by now (it copies its input); if it
     * ever did not, this copies instead of writing under it. */
    int ret = av_frame_make_writable(t->frame);
    if (ret < 0) return ret == AVERROR(ENOMEM) ? ES_ENOMEM : ES_EIO;
    for (int c = 0; c < ES_OPUS_AAC_CHANNELS; c++) {
        memcpy(t->frame->data[c], t->fifo[c], ES_AAC_FRAME_SAMPLES * sizeof(float));
        memmove(t->fifo[c], t->fifo[c] + ES_AAC_FRAME_SAMPLES,
                (t->fifo_len - ES_AAC_FRAME_SAMPLES) * sizeof(float));
    }
    t->fifo_len -= ES_AAC_FRAME_SAMPLES;
    t->ring[t->frames_sent % RING_FRAMES] =
        t->next_tick - (int64_t)t->fifo_len - ES_AAC_FRAME_SAMPLES;
    t->frame->pts = t->frames_sent * ES_AAC_FRAME_SAMPLES;
    t->frames_sent++;
    ret = avcodec_send_frame(t->enc, t->frame);
    if (ret < 0) return ret == AVERROR(ENOMEM) ? ES_ENOMEM : ES_EIO;
    return drain_encoder(t, emit, user);
}

/* Appends n interleaved samples from t->pcm and encodes every full frame. */
static int append_pcm(es_opus_aac_t *t, size_t n, es_aac_emit_fn emit, void *user)
{
    const float *p = t->pcm;
    float *l = t->fifo[0] + t->fifo_len, *r = t->fifo[1] + t->fifo_len;
    for (size_t i = 0; i < n; i++, p += 2) {
        l[i] = p[0];
        r[i] = p[1];
    }
    t->fifo_len += n;
    t->next_tick += (int64_t)n;
    int emitted = 0;
    while (t->fifo_len >= ES_AAC_FRAME_SAMPLES) {
        int ret = encode_frame(t, emit, user);
        if (ret < 0) return emitted ? emitted : ret;
        emitted += ret;
    }
    return emitted;
}

/* Resync: the buffered samples (under one frame) are completed with silence and encoded at
 * their own times, so that nothing of the old run is lost or moved. */
static int flush_partial(es_opus_aac_t *t, es_aac_emit_fn emit, void *user)
{
    if (t->fifo_len == 0) return 0;
    size_t pad = ES_AAC_FRAME_SAMPLES - t->fifo_len;
    for (int c = 0; c < ES_OPUS_AAC_CHANNELS; c++)
        memset(t->fifo[c] + t->fifo_len, 0, pad * sizeof(float));
    t->fifo_len += pad;
    t->next_tick += (int64_t)pad;
    return encode_frame(t, emit, user);
}

int es_opus_aac_push(es_opus_aac_t *t, const uint8_t *opus, size_t len, uint32_t pts_ms,
                     es_aac_emit_fn emit, void *user)
{
    if (!t || !emit || (!opus && len)) return ES_EINVAL;
    /* Validate before touching any state: an empty payload would mean "lost" to libopus, and a
     * malformed one must leave the clock as it was so that the next packet conceals its time. */
    if (len == 0 || len > INT32_MAX) {
        t->stats.bad++;
        return ES_EPROTO;
    }
    const unsigned char *frames[48];
    opus_int16 sizes[48];
    int nb = opus_packet_parse(opus, (opus_int32)len, NULL, frames, sizes, NULL);
    int samples = nb > 0 ? opus_packet_get_nb_samples(opus, (opus_int32)len,
                                                      ES_OPUS_AAC_SAMPLE_RATE)
                         : OPUS_INVALID_PACKET;
    if (samples <= 0 || samples > ES_OPUS_MAX_FRAME_SAMPLES) {
        t->stats.bad++;
        return ES_EPROTO;
    }

    /* Unwrap the 32-bit ms clock: the nearest 64-bit value to the previous pts. */
    int64_t pts = t->started ? t->last_pts + (int32_t)(pts_ms - (uint32_t)t->last_pts) : pts_ms;
    int64_t src = pts * TICKS_PER_MS;
    int emitted = 0, ret;
    int conceal = 0;     /* samples to make before decoding this packet */
    bool reset = false;  /* restart the clock at this packet */
    if (!t->started) {
        reset = true;
    } else {
        int64_t diff = src - t->next_tick;
        const int64_t limit = (int64_t)ES_OPUS_AAC_PLC_MAX_MS * TICKS_PER_MS;
        if (diff > limit || diff < -limit) {
            reset = true;
            t->stats.resyncs++;
        } else if (diff + samples <= PLC_UNIT / 2) {
            t->stats.late++;  /* a duplicate, or a packet whose time was already concealed */
            return 0;
        } else if (diff >= PLC_UNIT) {
            conceal = (int)(diff / PLC_UNIT) * PLC_UNIT;
        }
    }
    t->last_pts = pts;
    if (reset) {
        if (t->started) {
            ret = flush_partial(t, emit, user);
            if (ret < 0) return ret;
            emitted += ret;
            opus_decoder_ctl(t->dec, OPUS_RESET_STATE);
        }
        t->started = true;
        t->next_tick = src;
    }

    if (conceal > 0) {
        /* Concealment for the whole gap; libopus uses this packet's LBRR data, when it has
         * some, for the last frame's worth of it (opus_decode_native with decode_fec). */
        int n = opus_decode_float(t->dec, opus, (opus_int32)len, t->pcm, conceal, 1);
        if (n != conceal) {
            /* Not expected after opus_packet_parse; fill the time anyway to stay in step. */
            memset(t->pcm, 0, (size_t)conceal * ES_OPUS_AAC_CHANNELS * sizeof(float));
        }
        t->stats.concealments++;
        t->stats.concealed += (uint64_t)conceal;
        ret = append_pcm(t, (size_t)conceal, emit, user);
        if (ret < 0) return emitted ? emitted : ret;
        emitted += ret;
    }

    int n = opus_decode_float(t->dec, opus, (opus_int32)len, t->pcm, ES_OPUS_MAX_FRAME_SAMPLES, 0);
    if (n < 0) {
        t->stats.bad++;
        return emitted ? emitted : ES_EPROTO;
    }
    t->stats.packets++;
    ret = append_pcm(t, (size_t)n, emit, user);
    if (ret < 0) return emitted ? emitted : ret;
    return emitted + ret;
}

int es_opus_aac_config(const es_opus_aac_t *t, const uint8_t **asc, size_t *len)
{
    if (!t || !asc || !len) return ES_EINVAL;
    *asc = t->enc->extradata;
    *len = (size_t)t->enc->extradata_size;
    return 0;
}

int es_opus_aac_sample_rate(const es_opus_aac_t *t)
{
    (void)t;
    return ES_OPUS_AAC_SAMPLE_RATE;
}

int es_opus_aac_channels(const es_opus_aac_t *t)
{
    (void)t;
    return ES_OPUS_AAC_CHANNELS;
}

es_opus_aac_stats_t es_opus_aac_stats(const es_opus_aac_t *t) { return t->stats; }
