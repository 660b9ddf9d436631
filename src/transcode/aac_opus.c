/* AAC -> Opus for RTMP publishers played over WebRTC: libavcodec's AAC decoder (configured from
 * the AudioSpecificConfig, ISO/IEC 14496-3 §1.6.2.1), libswresample to 48 kHz interleaved float,
 * libopus in 20 ms frames, and RTP timestamps in 48 kHz ticks (RFC 7587 §4.1) derived from the
 * FLV pts by the sample-count mapping es_opus_ts_map_* (see include/estuary/transcode.h).
 *
 * Allocation: the codec contexts, the AVPacket/AVFrame and the sample buffer are made once in
 * es_aac_opus_new; per frame only libav allocates (its refcounted frame buffers, pooled). */
#include "estuary/metrics.h"
#include "estuary/transcode.h"

#include "estuary/error.h"

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>
#include <opus.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPUS_COMPLEXITY 5
/* Samples per channel the buffer holds at first: 20 ms being built plus one decoded frame of up
 * to 2048 samples (HE-AAC) at 24 kHz or more. Rarer streams (8 kHz AAC-LC: 1024 samples become
 * 6144) make it grow once. */
#define FIFO_INITIAL_SAMPLES (ES_OPUS_FRAME_SAMPLES + 4096 + 256)

/* ---- Timestamp mapping ---- */

void es_opus_ts_map_init(es_opus_ts_map_t *m, uint32_t threshold_ms)
{
    memset(m, 0, sizeof *m);
    m->threshold = (int64_t)threshold_ms * (ES_OPUS_CLOCK_RATE / 1000);
}

bool es_opus_ts_map_frame(es_opus_ts_map_t *m, uint32_t pts_ms, uint32_t lag)
{
    /* Unwrap the 32-bit ms clock (it wraps after 49.7 days): the newest pts is the nearest
     * 64-bit value to the previous one. */
    int64_t pts;
    if (!m->started)
        pts = pts_ms;
    else
        pts = m->last_pts + (int32_t)(pts_ms - (uint32_t)m->last_pts);
    m->last_pts = pts;

    int64_t source = pts * (ES_OPUS_CLOCK_RATE / 1000) - (int64_t)lag;
    if (m->started) {
        int64_t expected = m->head + m->buffered;
        int64_t diff = source - expected;
        if (diff <= m->threshold && diff >= -m->threshold) return false;
        m->resyncs++;
    }
    m->started = true;
    m->head = source;
    m->buffered = 0;
    return true;
}

void es_opus_ts_map_add(es_opus_ts_map_t *m, size_t samples) { m->buffered += (int64_t)samples; }

bool es_opus_ts_map_take(es_opus_ts_map_t *m, size_t samples, uint32_t *rtp_ts)
{
    if (m->buffered < (int64_t)samples) return false;
    *rtp_ts = (uint32_t)(uint64_t)m->head;  /* modulo 2^32, also for a negative head */
    m->head += (int64_t)samples;
    m->buffered -= (int64_t)samples;
    return true;
}

/* ---- Transcoder ---- */

struct es_aac_opus {
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    SwrContext *swr;
    /* What swr is configured for (the decoder's output); reconfigured when a frame differs. */
    int swr_rate;
    int swr_format;
    AVChannelLayout swr_layout;
    OpusEncoder *enc;
    int channels;            /* Opus output channels, 1 or 2 */
    int in_rate;             /* the config's, then the decoder's output once a frame decoded */
    int in_channels;         /* likewise; 0 while a PCE (channel configuration 0) decides */
    AVChannelLayout out_layout;
    float *fifo;             /* interleaved 48 kHz samples, fifo_len per channel */
    size_t fifo_len;
    size_t fifo_cap;         /* per channel */
    es_opus_ts_map_t map;
    uint8_t out[ES_OPUS_MAX_PACKET];
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

/* A minimal MSB-first bit reader for the AudioSpecificConfig. */
typedef struct bitreader {
    const uint8_t *p;
    size_t len_bits;
    size_t pos;
} bitreader_t;

static bool br_read(bitreader_t *b, unsigned n, uint32_t *v)
{
    if (b->pos + n > b->len_bits) return false;
    uint32_t x = 0;
    for (unsigned i = 0; i < n; i++, b->pos++)
        x = (x << 1) | ((b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1u);
    *v = x;
    return true;
}

/* The part of the AudioSpecificConfig that decides our set-up (ISO/IEC 14496-3 §1.6.2.1):
 * object type, sampling frequency and channel configuration. libavcodec parses the rest. */
typedef struct asc_info {
    uint32_t object_type;
    uint32_t sample_rate;
    uint32_t channel_config;
} asc_info_t;

static const uint32_t asc_rates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                       22050, 16000, 12000, 11025, 8000,  7350};

/* Channels per channelConfiguration (ISO/IEC 14496-3 Table 1.19 and its amendments); 0: the
 * program config element in the GASpecificConfig says. */
static const int asc_channels[16] = {0, 1, 2, 3, 4, 5, 6, 8, 0, 0, 0, 7, 8, 24, 8, 0};

static int parse_asc(const uint8_t *asc, size_t len, asc_info_t *info, char *err, size_t err_len)
{
    if (!asc || len < 2) {
        set_err(err, err_len, "AudioSpecificConfig: %zu bytes, at least 2 needed", asc ? len : 0);
        return ES_EPROTO;
    }
    if (len > 64) {
        set_err(err, err_len, "AudioSpecificConfig: %zu bytes, over 64 is not an AAC config", len);
        return ES_EPROTO;
    }
    bitreader_t b = {asc, len * 8, 0};
    uint32_t aot, idx, v;
    if (!br_read(&b, 5, &aot)) goto short_read;
    if (aot == 31) {
        if (!br_read(&b, 6, &v)) goto short_read;
        aot = 32 + v;
    }
    if (aot == 0) {
        set_err(err, err_len, "AudioSpecificConfig: audio object type 0 is invalid");
        return ES_EPROTO;
    }
    if (!br_read(&b, 4, &idx)) goto short_read;
    if (idx == 15) {
        if (!br_read(&b, 24, &info->sample_rate)) goto short_read;
        if (info->sample_rate < 1000 || info->sample_rate > 192000) {
            set_err(err, err_len, "AudioSpecificConfig: sampling frequency %u Hz out of range",
                    info->sample_rate);
            return ES_EPROTO;
        }
    } else if (idx >= 13) {
        set_err(err, err_len, "AudioSpecificConfig: sampling frequency index %u is reserved", idx);
        return ES_EPROTO;
    } else {
        info->sample_rate = asc_rates[idx];
    }
    if (!br_read(&b, 4, &info->channel_config)) goto short_read;
    if (info->channel_config != 0 && asc_channels[info->channel_config] == 0) {
        set_err(err, err_len, "AudioSpecificConfig: channel configuration %u is reserved",
                info->channel_config);
        return ES_EPROTO;
    }
    info->object_type = aot;
    return 0;
short_read:
    set_err(err, err_len, "AudioSpecificConfig: truncated (%zu bytes)", len);
    return ES_EPROTO;
}

/* libav writes to stderr about every damaged frame it sees; network input is never logged at
 * that level here (the caller counts ES_EPROTO). Process-wide, set once. */
static void quiet_libav(void)
{
    static bool done;
    if (done) return;
    av_log_set_level(AV_LOG_QUIET);
    done = true;
}

static const char *av_err(int e, char *buf, size_t len)
{
    av_strerror(e, buf, len);
    return buf;
}

es_aac_opus_t *es_aac_opus_new(const uint8_t *asc, size_t asc_len, uint32_t opus_bitrate_bps,
                               char *err, size_t err_len)
{
    char ebuf[AV_ERROR_MAX_STRING_SIZE];
    set_err(err, err_len, "%s", "");
    quiet_libav();

    if (opus_bitrate_bps == 0) opus_bitrate_bps = ES_AAC_OPUS_DEFAULT_BITRATE;
    if (opus_bitrate_bps < 6000 || opus_bitrate_bps > 510000) {
        set_err(err, err_len, "Opus bitrate %u bit/s out of range 6000..510000", opus_bitrate_bps);
        return NULL;
    }
    asc_info_t info;
    if (parse_asc(asc, asc_len, &info, err, err_len) < 0) return NULL;

    es_aac_opus_t *t = calloc(1, sizeof *t);
    if (!t) {
        set_err(err, err_len, "out of memory");
        return NULL;
    }
    es_metrics.transcoders++; /* until es_*_free, on the failure paths too */
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_AAC);
    if (!codec) {
        set_err(err, err_len, "libavcodec has no AAC decoder");
        goto fail;
    }
    t->dec = avcodec_alloc_context3(codec);
    t->pkt = av_packet_alloc();
    t->frame = av_frame_alloc();
    if (!t->dec || !t->pkt || !t->frame) goto oom;
    t->dec->extradata = av_mallocz(asc_len + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!t->dec->extradata) goto oom;
    memcpy(t->dec->extradata, asc, asc_len);
    t->dec->extradata_size = (int)asc_len;
    t->dec->pkt_timebase = (AVRational){1, 1000};  /* packets carry pts in ms */
    int ret = avcodec_open2(t->dec, codec, NULL);
    if (ret < 0) {
        set_err(err, err_len, "AudioSpecificConfig (object type %u, %u Hz, channels %u) "
                "rejected by the AAC decoder: %s", info.object_type, info.sample_rate,
                info.channel_config, av_err(ret, ebuf, sizeof ebuf));
        goto fail;
    }
    /* The decoder learns its output format only from the first frame; until then the getters
     * report what the config says. */
    t->in_rate = (int)info.sample_rate;
    t->in_channels = asc_channels[info.channel_config];
    /* Mono stays mono (cheaper, and valid in opus/48000/2); explicit PS (object type 29) means
     * the decoder produces stereo from a mono config. A PCE (configuration 0) gets stereo. */
    t->channels = (t->in_channels == 1 && info.object_type != 29) ? 1 : 2;
    av_channel_layout_default(&t->out_layout, t->channels);

    int oerr;
    t->enc = opus_encoder_create(ES_OPUS_CLOCK_RATE, t->channels, OPUS_APPLICATION_AUDIO, &oerr);
    if (!t->enc) {
        set_err(err, err_len, "opus_encoder_create: %s", opus_strerror(oerr));
        goto fail;
    }
    if (opus_encoder_ctl(t->enc, OPUS_SET_BITRATE((opus_int32)opus_bitrate_bps)) != OPUS_OK ||
        opus_encoder_ctl(t->enc, OPUS_SET_COMPLEXITY(OPUS_COMPLEXITY)) != OPUS_OK ||
        opus_encoder_ctl(t->enc, OPUS_SET_INBAND_FEC(0)) != OPUS_OK ||
        opus_encoder_ctl(t->enc, OPUS_SET_DTX(0)) != OPUS_OK ||
        opus_encoder_ctl(t->enc, OPUS_SET_VBR(1)) != OPUS_OK) {
        set_err(err, err_len, "opus_encoder_ctl failed");
        goto fail;
    }
    t->fifo_cap = FIFO_INITIAL_SAMPLES;
    t->fifo = malloc(t->fifo_cap * (size_t)t->channels * sizeof *t->fifo);
    if (!t->fifo) goto oom;
    t->swr_format = AV_SAMPLE_FMT_NONE;
    es_opus_ts_map_init(&t->map, ES_AAC_OPUS_RESYNC_MS);
    return t;
oom:
    set_err(err, err_len, "out of memory");
fail:
    es_aac_opus_free(t);
    return NULL;
}

void es_aac_opus_free(es_aac_opus_t *t)
{
    if (!t) return;
    es_metrics.transcoders--;
    avcodec_free_context(&t->dec);  /* frees the extradata too */
    av_packet_free(&t->pkt);
    av_frame_free(&t->frame);
    swr_free(&t->swr);
    av_channel_layout_uninit(&t->swr_layout);
    av_channel_layout_uninit(&t->out_layout);
    if (t->enc) opus_encoder_destroy(t->enc);
    free(t->fifo);
    free(t);
}

/* (Re)configures the resampler for the decoder's output format when it changes (the first
 * frame, or SBR/PS switching on mid-stream). Samples inside the old resampler are lost. */
static int ensure_swr(es_aac_opus_t *t, const AVFrame *f)
{
    if (t->swr && f->sample_rate == t->swr_rate && f->format == t->swr_format &&
        av_channel_layout_compare(&f->ch_layout, &t->swr_layout) == 0)
        return 0;
    if (f->sample_rate <= 0 || f->ch_layout.nb_channels <= 0) return ES_EPROTO;
    av_channel_layout_uninit(&t->swr_layout);
    if (av_channel_layout_copy(&t->swr_layout, &f->ch_layout) < 0) return ES_ENOMEM;
    /* An unspecified layout (order UNSPEC, e.g. from a PCE) gets the default for its count so
     * that swr can build a mixing matrix. */
    if (t->swr_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
        int n = t->swr_layout.nb_channels;
        av_channel_layout_uninit(&t->swr_layout);
        av_channel_layout_default(&t->swr_layout, n);
    }
    int ret = swr_alloc_set_opts2(&t->swr, &t->out_layout, AV_SAMPLE_FMT_FLT, ES_OPUS_CLOCK_RATE,
                                  &t->swr_layout, (enum AVSampleFormat)f->format, f->sample_rate,
                                  0, NULL);
    /* Float output is not clipped, and the default downmix matrix sums to more than 1 (5.1 to
     * stereo: L = FL + 0.707 C + 0.707 SL): normalise it so that a full-scale source stays
     * within full scale. */
    if (ret >= 0) ret = av_opt_set_double(t->swr, "rematrix_maxval", 1.0, 0);
    if (ret >= 0) ret = swr_init(t->swr);
    if (ret < 0) {
        swr_free(&t->swr);
        return ret == AVERROR(ENOMEM) ? ES_ENOMEM : ES_EIO;
    }
    t->in_rate = f->sample_rate;
    t->in_channels = f->ch_layout.nb_channels;
    t->swr_rate = f->sample_rate;
    t->swr_format = f->format;
    return 0;
}

static int grow_fifo(es_aac_opus_t *t, size_t need)
{
    if (need <= t->fifo_cap) return 0;
    float *p = realloc(t->fifo, need * (size_t)t->channels * sizeof *p);
    if (!p) return ES_ENOMEM;
    t->fifo = p;
    t->fifo_cap = need;
    return 0;
}

/* Resamples one decoded frame into the buffer, then encodes and emits every complete 20 ms. */
static int consume_frame(es_aac_opus_t *t, const AVFrame *f, uint32_t pts_ms, es_opus_emit_fn emit,
                         void *user)
{
    int ret = ensure_swr(t, f);
    if (ret < 0) return ret;

    /* Samples of earlier frames still inside the resampler come out first. */
    int64_t lag = swr_get_delay(t->swr, ES_OPUS_CLOCK_RATE);
    if (lag < 0) lag = 0;
    if (es_opus_ts_map_frame(&t->map, pts_ms, (uint32_t)lag)) t->fifo_len = 0;

    int max_out = swr_get_out_samples(t->swr, f->nb_samples);
    if (max_out < 0) return ES_EIO;
    ret = grow_fifo(t, t->fifo_len + (size_t)max_out);
    if (ret < 0) return ret;
    uint8_t *dst = (uint8_t *)(t->fifo + t->fifo_len * (size_t)t->channels);
    int n = swr_convert(t->swr, &dst, max_out, (const uint8_t **)f->extended_data, f->nb_samples);
    if (n < 0) return ES_EIO;
    t->fifo_len += (size_t)n;
    es_opus_ts_map_add(&t->map, (size_t)n);

    /* The mapping's buffered count and fifo_len move together: a failed encode still consumes
     * its 20 ms so that they stay equal. */
    int emitted = 0, failed = 0;
    size_t off = 0;  /* samples per channel consumed from the front */
    uint32_t rtp_ts;
    while (es_opus_ts_map_take(&t->map, ES_OPUS_FRAME_SAMPLES, &rtp_ts)) {
        const float *pcm = t->fifo + off * (size_t)t->channels;
        opus_int32 len = opus_encode_float(t->enc, pcm, ES_OPUS_FRAME_SAMPLES, t->out,
                                           (opus_int32)sizeof t->out);
        off += ES_OPUS_FRAME_SAMPLES;
        if (len < 0) {
            failed = ES_EIO;
            continue;
        }
        emit(user, t->out, (size_t)len, rtp_ts);
        emitted++;
    }
    if (off) {
        memmove(t->fifo, t->fifo + off * (size_t)t->channels,
                (t->fifo_len - off) * (size_t)t->channels * sizeof *t->fifo);
        t->fifo_len -= off;
    }
    return emitted || !failed ? emitted : failed;
}

int es_aac_opus_push(es_aac_opus_t *t, const uint8_t *aac, size_t len, uint32_t pts_ms,
                     es_opus_emit_fn emit, void *user)
{
    if (!t || !emit || (!aac && len)) return ES_EINVAL;
    /* An empty packet would mean "end of stream" to libavcodec. */
    if (len == 0 || len > INT32_MAX - AV_INPUT_BUFFER_PADDING_SIZE) return ES_EPROTO;

    /* A packet without a buffer: libavcodec makes its own padded, refcounted copy (it reads
     * past the end and may keep the data), so `aac` is only borrowed for the call. */
    t->pkt->data = (uint8_t *)aac;
    t->pkt->size = (int)len;
    t->pkt->pts = pts_ms;
    t->pkt->dts = pts_ms;
    int emitted = 0;
    int result = 0;
    /* Send, then drain the frames ready. EAGAIN on send (frames still waiting) cannot happen
     * with AAC, which is drained after every packet; it is handled by a second attempt. */
    for (int attempt = 0; attempt < 2 && result == 0; attempt++) {
        int ret = avcodec_send_packet(t->dec, t->pkt);
        if (ret < 0 && ret != AVERROR(EAGAIN)) {
            /* The AAC decoder reports a damaged frame here (it decodes during send). */
            result = ret == AVERROR(ENOMEM) ? ES_ENOMEM : ES_EPROTO;
            break;
        }
        for (;;) {
            int r = avcodec_receive_frame(t->dec, t->frame);
            if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
            if (r < 0) {
                result = r == AVERROR(ENOMEM) ? ES_ENOMEM : ES_EPROTO;
                break;
            }
            /* The decoder passes the packet's pts through; AAC decodes without delay, so this
             * is the pushed pts, but a frame carries its own when there is one. */
            uint32_t fpts =
                t->frame->pts != AV_NOPTS_VALUE ? (uint32_t)t->frame->pts : pts_ms;
            int n = consume_frame(t, t->frame, fpts, emit, user);
            av_frame_unref(t->frame);
            if (n < 0) {
                result = n;
                break;
            }
            emitted += n;
        }
        if (ret == 0) break;
        if (attempt == 1) result = ES_EIO;  /* still EAGAIN after draining: libav misbehaves */
    }
    t->pkt->data = NULL;
    t->pkt->size = 0;
    if (result < 0 && emitted == 0) return result;
    return emitted;
}

int es_aac_opus_sample_rate(const es_aac_opus_t *t) { return t->in_rate; }

int es_aac_opus_in_channels(const es_aac_opus_t *t) { return t->in_channels; }

int es_aac_opus_channels(const es_aac_opus_t *t) { return t->channels; }

uint32_t es_aac_opus_resyncs(const es_aac_opus_t *t) { return t->map.resyncs; }
