/* Unit tests for src/hls/segmenter.c on real media: H.264 from libavcodec's libx264 (160x120 and
 * 176x144, 25 fps, a key frame every 25 frames, no B-frames) and AAC-LC from the native encoder
 * (a 1 kHz sine), wrapped as FLV tags as an RTMP publisher sends them, fed on a virtual clock
 * into a temporary directory under /tmp that each test removes.
 * Checked: the playlist (RFC 8216 tags, media sequence, window, durations cut at key frames,
 * target duration, program date time, discontinuity sequence), the files on disk (listed ones
 * exist, old ones deleted), every listed segment decoded with libavformat + libavcodec (frame
 * size, audio energy, timestamps continuous across segments and tracks in sync), MPEG-TS and
 * fMP4, discontinuities (API, timestamp jump, new sequence header, lost segment), ENDLIST,
 * cleanup, failing writes, request-name validation and malformed tags. */
#define _GNU_SOURCE
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
#include "estuary/hls.h"
#include "estuary/log.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>

#include <dirent.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WALL0 1700000000000LL /* 2023-11-14T22:13:20.000Z */
#define NOW0 5000000ULL

/* ---- Media: real H.264 and AAC as FLV tags ---- */

typedef struct frame {
    uint8_t *body; /* FLV tag body */
    size_t len;
    uint32_t ts;   /* ms, from 0 */
    uint8_t type;
} frame_t;

typedef struct media {
    frame_t vcfg, acfg; /* sequence headers (len 0 when absent) */
    frame_t *f;         /* video and audio frames interleaved by timestamp */
    size_t n;
} media_t;

static media_t g_av;      /* 160x120 + 44.1 kHz stereo, 16 s */
static media_t g_small;   /* 176x144 + 44.1 kHz stereo, 4 s */
static media_t g_audio;   /* 48 kHz mono only, 7 s */
static bool g_have_x264;
static char g_root[64];

static void push(frame_t **v, size_t *n, size_t *cap, frame_t f)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *v = realloc(*v, *cap * sizeof **v);
        assert_non_null(*v);
    }
    (*v)[(*n)++] = f;
}

static uint8_t *body_with(const uint8_t *head, size_t hl, const uint8_t *p, size_t len,
                          size_t *out_len)
{
    uint8_t *b = malloc(hl + len);
    assert_non_null(b);
    memcpy(b, head, hl);
    memcpy(b + hl, p, len);
    *out_len = hl + len;
    return b;
}

/* Annex B -> AVCC with 4-byte lengths. */
static uint8_t *annexb_to_avcc(const uint8_t *p, size_t len, size_t *out_len)
{
    uint8_t *o = malloc(len + 64);
    assert_non_null(o);
    size_t off = 0, n = 0, nl;
    const uint8_t *nal;
    while (es_h264_annexb_next(p, len, &off, &nal, &nl) == 1) {
        o = realloc(o, n + 4 + nl + 64);
        assert_non_null(o);
        o[n] = (uint8_t)(nl >> 24);
        o[n + 1] = (uint8_t)(nl >> 16);
        o[n + 2] = (uint8_t)(nl >> 8);
        o[n + 3] = (uint8_t)nl;
        memcpy(o + n + 4, nal, nl);
        n += 4 + nl;
    }
    *out_len = n;
    return o;
}

static void make_video(frame_t **v, size_t *n, size_t *cap, frame_t *cfg, int w, int h,
                       int frames)
{
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    assert_non_null(codec);
    AVCodecContext *enc = avcodec_alloc_context3(codec);
    assert_non_null(enc);
    enc->width = w;
    enc->height = h;
    enc->pix_fmt = AV_PIX_FMT_YUV420P;
    enc->time_base = (AVRational){1, 25};
    enc->framerate = (AVRational){25, 1};
    enc->gop_size = 25;
    enc->keyint_min = 25;
    enc->max_b_frames = 0;
    enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set(enc->priv_data, "preset", "ultrafast", 0);
    av_opt_set(enc->priv_data, "tune", "zerolatency", 0);
    av_opt_set(enc->priv_data, "x264-params", "scenecut=0", 0);
    assert_int_equal(avcodec_open2(enc, codec, NULL), 0);

    /* The AVC sequence header: the extradata's SPS and PPS as an AVCDecoderConfigurationRecord. */
    const uint8_t *sps = NULL, *pps = NULL, *nal;
    size_t sps_len = 0, pps_len = 0, nl, off = 0;
    while (es_h264_annexb_next(enc->extradata, (size_t)enc->extradata_size, &off, &nal, &nl) ==
           1) {
        if ((nal[0] & 0x1f) == ES_H264_NAL_SPS && !sps) sps = nal, sps_len = nl;
        if ((nal[0] & 0x1f) == ES_H264_NAL_PPS && !pps) pps = nal, pps_len = nl;
    }
    assert_non_null(sps);
    assert_non_null(pps);
    uint8_t rec[512];
    int rl = es_h264_config_write(sps, sps_len, pps, pps_len, rec, sizeof rec);
    assert_true(rl > 0);
    static const uint8_t vh[5] = {0x17, 0x00, 0, 0, 0};
    cfg->body = body_with(vh, 5, rec, (size_t)rl, &cfg->len);
    cfg->type = ES_TAG_VIDEO;

    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    assert_non_null(f);
    assert_non_null(pkt);
    for (int i = 0; i <= frames; i++) {
        if (i < frames) {
            f->format = AV_PIX_FMT_YUV420P;
            f->width = w;
            f->height = h;
            assert_int_equal(av_frame_get_buffer(f, 0), 0);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    f->data[0][y * f->linesize[0] + x] = (uint8_t)(x * 2 + y + i * 3);
            for (int y = 0; y < h / 2; y++)
                for (int x = 0; x < w / 2; x++) {
                    f->data[1][y * f->linesize[1] + x] = (uint8_t)(128 + x - i);
                    f->data[2][y * f->linesize[2] + x] = (uint8_t)(64 + y + i);
                }
            f->pts = i;
            assert_int_equal(avcodec_send_frame(enc, f), 0);
            av_frame_unref(f);
        } else {
            assert_int_equal(avcodec_send_frame(enc, NULL), 0);
        }
        while (avcodec_receive_packet(enc, pkt) == 0) {
            bool key = pkt->flags & AV_PKT_FLAG_KEY;
            size_t al;
            uint8_t *avcc = annexb_to_avcc(pkt->data, (size_t)pkt->size, &al);
            int32_t cts = (int32_t)((pkt->pts - pkt->dts) * 40);
            uint8_t hd[5] = {key ? 0x17 : 0x27, 0x01, (uint8_t)(cts >> 16), (uint8_t)(cts >> 8),
                             (uint8_t)cts};
            frame_t fr = {.type = ES_TAG_VIDEO, .ts = (uint32_t)(pkt->dts * 40)};
            fr.body = body_with(hd, 5, avcc, al, &fr.len);
            free(avcc);
            assert_true(!key || pkt->dts % 25 == 0); /* a key frame every second exactly */
            push(v, n, cap, fr);
            av_packet_unref(pkt);
        }
    }
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&enc);
}

static void make_audio(frame_t **v, size_t *n, size_t *cap, frame_t *cfg, int rate, int channels,
                       double seconds)
{
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
    static const uint8_t ah[2] = {0xAF, 0x00};
    cfg->body = body_with(ah, 2, enc->extradata, (size_t)enc->extradata_size, &cfg->len);
    cfg->type = ES_TAG_AUDIO;

    double ws, wc, re = 0.0, im = 1.0;
    small_sincos(2.0 * 3.14159265358979323846 * 1000.0 / rate, &ws, &wc);
    size_t nframes = (size_t)(seconds * rate) / (size_t)enc->frame_size;
    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    for (size_t i = 0; i <= nframes; i++) {
        if (i < nframes) {
            f->nb_samples = enc->frame_size;
            f->format = AV_SAMPLE_FMT_FLTP;
            f->sample_rate = rate;
            assert_int_equal(av_channel_layout_copy(&f->ch_layout, &enc->ch_layout), 0);
            assert_int_equal(av_frame_get_buffer(f, 0), 0);
            for (int k = 0; k < enc->frame_size; k++) {
                for (int c = 0; c < channels; c++)
                    ((float *)f->extended_data[c])[k] = (float)(0.5 * re);
                double nre = re * wc + im * ws, nim = im * wc - re * ws;
                re = nre;
                im = nim;
            }
            f->pts = (int64_t)(i * (size_t)enc->frame_size);
            assert_int_equal(avcodec_send_frame(enc, f), 0);
            av_frame_unref(f);
        } else {
            assert_int_equal(avcodec_send_frame(enc, NULL), 0);
        }
        while (avcodec_receive_packet(enc, pkt) == 0) {
            if (pkt->pts >= 0) { /* the priming frames before 0 are left out */
                static const uint8_t rh[2] = {0xAF, 0x01};
                frame_t fr = {.type = ES_TAG_AUDIO,
                              .ts = (uint32_t)((pkt->pts * 1000 + rate / 2) / rate)};
                fr.body = body_with(rh, 2, pkt->data, (size_t)pkt->size, &fr.len);
                push(v, n, cap, fr);
            }
            av_packet_unref(pkt);
        }
    }
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&enc);
}

static int cmp_frame(const void *a, const void *b)
{
    const frame_t *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->type != y->type) return x->type == ES_TAG_VIDEO ? -1 : 1;
    return x->body < y->body ? -1 : 1; /* never equal; stable enough (separate arrays) */
}

static void make_media(media_t *m, int w, int h, int vframes, int rate, int channels,
                       double seconds)
{
    memset(m, 0, sizeof *m);
    frame_t *v = NULL, *a = NULL;
    size_t nv = 0, cv = 0, na = 0, ca = 0;
    if (vframes) make_video(&v, &nv, &cv, &m->vcfg, w, h, vframes);
    make_audio(&a, &na, &ca, &m->acfg, rate, channels, seconds);
    /* Keep the decoding order of each track: sort by (ts, type) is stable for video since its
     * dts grow strictly, and for audio likewise. */
    m->n = nv + na;
    m->f = malloc(m->n * sizeof *m->f);
    assert_non_null(m->f);
    if (nv) memcpy(m->f, v, nv * sizeof *v);
    memcpy(m->f + nv, a, na * sizeof *a);
    qsort(m->f, m->n, sizeof *m->f, cmp_frame);
    free(v);
    free(a);
}

static void free_media(media_t *m)
{
    free(m->vcfg.body);
    free(m->acfg.body);
    for (size_t i = 0; i < m->n; i++) free(m->f[i].body);
    free(m->f);
}

static int group_setup(void **state)
{
    (void)state;
    av_log_set_level(AV_LOG_ERROR);
    es_log_set_level(ES_LOG_ERROR);
    g_have_x264 = avcodec_find_encoder_by_name("libx264") != NULL;
    if (g_have_x264) {
        make_media(&g_av, 160, 120, 400, 44100, 2, 16.0);
        make_media(&g_small, 176, 144, 100, 44100, 2, 4.0);
    }
    make_media(&g_audio, 0, 0, 0, 48000, 1, 7.0);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_have_x264) {
        free_media(&g_av);
        free_media(&g_small);
    }
    free_media(&g_audio);
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int test_setup(void **state)
{
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/estuary-hls-XXXXXX");
    assert_non_null(mkdtemp(g_root));
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    nftw(g_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- Feeding ---- */

typedef struct feeder {
    es_hls_t *hls;
    int64_t offset_ms;   /* added to the media's timestamps */
    int64_t clock_ms;    /* virtual clock: now and wall advance with the media */
    int published;
    int errors;          /* ES_EIO returns */
    void (*on_publish)(void *user);
    void *user;
} feeder_t;

static void feed_one(feeder_t *fd, uint8_t type, uint32_t ts, const uint8_t *body, size_t len)
{
    es_tag_t *t = es_tag_new(type, ts, body, len);
    assert_non_null(t);
    int rc = es_hls_handle_tag(fd->hls, t, NOW0 + (uint64_t)fd->clock_ms * 1000,
                               WALL0 + fd->clock_ms);
    es_tag_unref(t);
    if (rc == ES_EIO) {
        fd->errors++;
        return;
    }
    assert_true(rc >= 0 && rc <= 1);
    fd->published += rc;
    if (rc == 1 && fd->on_publish) fd->on_publish(fd->user);
}

/* Sends the sequence headers then the frames with ts in [from_ms, to_ms) of m, shifted by
 * fd->offset_ms; the virtual clock follows. */
static void feed(feeder_t *fd, const media_t *m, bool configs, uint32_t from_ms, uint32_t to_ms)
{
    if (configs && m->vcfg.len)
        feed_one(fd, ES_TAG_VIDEO, (uint32_t)(fd->offset_ms + from_ms), m->vcfg.body,
                 m->vcfg.len);
    if (configs && m->acfg.len)
        feed_one(fd, ES_TAG_AUDIO, (uint32_t)(fd->offset_ms + from_ms), m->acfg.body,
                 m->acfg.len);
    int64_t last = -1;
    for (size_t i = 0; i < m->n; i++) {
        const frame_t *f = &m->f[i];
        if (f->ts < from_ms || f->ts >= to_ms) continue;
        if (last >= 0 && f->ts > last) fd->clock_ms += f->ts - last;
        last = f->ts;
        feed_one(fd, f->type, (uint32_t)(fd->offset_ms + f->ts), f->body, f->len);
    }
    fd->clock_ms += 40;
}

/* ---- The playlist ---- */

typedef struct entry {
    int64_t dur_ms;
    int64_t pdt_ms;
    bool disc;
    char uri[160];
    char map[160]; /* the EXT-X-MAP in force */
} entry_t;

typedef struct playlist {
    bool extm3u, endlist, independent;
    int version, target;
    uint64_t seq, disc_seq;
    size_t n;
    entry_t e[64];
} playlist_t;

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void parse_playlist_any(const char *dir, playlist_t *pl);

/* A playlist of segments that each start with a key frame (#EXT-X-INDEPENDENT-SEGMENTS). */
static void parse_playlist(const char *dir, playlist_t *pl)
{
    parse_playlist_any(dir, pl);
    assert_true(pl->independent);
}

static void parse_playlist_any(const char *dir, playlist_t *pl)
{
    char path[512];
    snprintf(path, sizeof path, "%s/index.m3u8", dir);
    char *text = read_text(path);
    assert_non_null(text);
    memset(pl, 0, sizeof *pl);
    bool disc = false, seen_seq = false, seen_target = false;
    int64_t dur = -1, pdt = 0;
    char map[160] = "";
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strcmp(line, "#EXTM3U") == 0) {
            assert_int_equal(pl->n, 0);
            pl->extm3u = true;
        } else if (sscanf(line, "#EXT-X-VERSION:%d", &pl->version) == 1) {
        } else if (sscanf(line, "#EXT-X-TARGETDURATION:%d", &pl->target) == 1) {
            seen_target = true;
        } else if (sscanf(line, "#EXT-X-MEDIA-SEQUENCE:%" SCNu64, &pl->seq) == 1) {
            seen_seq = true;
        } else if (sscanf(line, "#EXT-X-DISCONTINUITY-SEQUENCE:%" SCNu64, &pl->disc_seq) == 1) {
        } else if (strcmp(line, "#EXT-X-DISCONTINUITY") == 0) {
            disc = true;
        } else if (strcmp(line, "#EXT-X-INDEPENDENT-SEGMENTS") == 0) {
            pl->independent = true;
        } else if (strcmp(line, "#EXT-X-ENDLIST") == 0) {
            pl->endlist = true;
        } else if (strncmp(line, "#EXT-X-MAP:URI=\"", 16) == 0) {
            snprintf(map, sizeof map, "%s", line + 16);
            char *q = strchr(map, '"');
            assert_non_null(q);
            *q = '\0';
        } else if (strncmp(line, "#EXT-X-PROGRAM-DATE-TIME:", 25) == 0) {
            struct tm tm = {0};
            int ms = -1;
            assert_int_equal(sscanf(line + 25, "%d-%d-%dT%d:%d:%d.%3dZ", &tm.tm_year, &tm.tm_mon,
                                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                             7);
            tm.tm_year -= 1900;
            tm.tm_mon -= 1;
            pdt = (int64_t)timegm(&tm) * 1000 + ms;
        } else if (strncmp(line, "#EXTINF:", 8) == 0) {
            int64_t s;
            int frac;
            char rest[8];
            /* Three decimals exactly (the muxer-independent part of the format we promise). */
            assert_int_equal(sscanf(line + 8, "%" SCNd64 ".%3d%7s", &s, &frac, rest), 3);
            assert_string_equal(rest, ",");
            assert_int_equal(line[8 + strcspn(line + 8, ".") + 4], ',');
            dur = s * 1000 + frac;
        } else if (line[0] == '#') {
            fail_msg("unexpected tag %s", line);
        } else {
            assert_true(dur >= 0);
            assert_true(pl->n < 64);
            entry_t *e = &pl->e[pl->n++];
            e->dur_ms = dur;
            e->pdt_ms = pdt;
            e->disc = disc;
            snprintf(e->uri, sizeof e->uri, "%s", line);
            snprintf(e->map, sizeof e->map, "%s", map);
            dur = -1;
            disc = false;
            pdt = 0;
        }
    }
    assert_true(pl->extm3u);
    assert_true(seen_seq);
    assert_true(seen_target);
    free(text);
}

/* The file behind a playlist URI ("cam/123.ts" relative to /app/cam.m3u8). */
static void uri_path(const char *dir, const char *uri, char *out, size_t cap)
{
    const char *slash = strrchr(uri, '/');
    assert_non_null(slash);
    snprintf(out, cap, "%s/%s", dir, slash + 1);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static size_t count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0, sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l >= sl && strcmp(e->d_name + l - sl, suffix) == 0) n++;
    }
    closedir(d);
    return n;
}

/* Checks after every published segment: RFC 8216 form, window, media sequence, durations, files. */
typedef struct live_check {
    es_hls_t *hls;
    const char *ext;     /* "ts" or "m4s" */
    int version;
    size_t window;
    uint64_t last_seq;
    size_t checks;
    bool exact_2s;       /* key frames every second: every segment but the last is 2.000 s */
} live_check_t;

static void check_live(void *user)
{
    live_check_t *c = user;
    const char *dir = es_hls_dir(c->hls);
    playlist_t pl;
    parse_playlist(dir, &pl);
    es_hls_stats_t st = es_hls_stats(c->hls);
    assert_int_equal(pl.version, c->version);
    assert_false(pl.endlist);
    assert_true(pl.n >= 1 && pl.n <= c->window);
    assert_int_equal(pl.seq, st.media_sequence);
    if (c->checks) assert_true(pl.seq >= c->last_seq);
    c->last_seq = pl.seq;
    c->checks++;
    /* Discontinuity numbers: tags that slid out plus those listed = all there were. */
    uint64_t listed = 0;
    for (size_t i = 0; i < pl.n; i++) listed += pl.e[i].disc;
    assert_int_equal(pl.disc_seq + listed, st.discontinuities);
    for (size_t i = 0; i < pl.n; i++) {
        const entry_t *e = &pl.e[i];
        assert_true(pl.target * 1000 >= e->dur_ms);          /* §4.3.3.1 */
        assert_true(e->dur_ms > 0);
        if (c->exact_2s && !e->disc && (i + 1 == pl.n || !pl.e[i + 1].disc))
            assert_int_equal(e->dur_ms, 2000);
        char want[64], path[512];
        snprintf(want, sizeof want, "cam/%" PRIu64 ".%s", pl.seq + i, c->ext);
        assert_string_equal(e->uri, want);
        uri_path(dir, e->uri, path, sizeof path);
        assert_true(exists(path));
        if (i > 0 && !e->disc) assert_int_equal(e->pdt_ms, pl.e[i - 1].pdt_ms + pl.e[i - 1].dur_ms);
        if (c->version == 7) {
            assert_true(e->map[0]);
            uri_path(dir, e->map, path, sizeof path);
            assert_true(exists(path));
        }
    }
    /* Deleted past the window and the couple kept for slow clients. */
    assert_true(count_files(dir, c->ext) <= c->window + ES_HLS_KEEP_EXTRA);
    for (uint64_t s = pl.seq > 10 ? pl.seq - 10 : 0; s + ES_HLS_KEEP_EXTRA < pl.seq; s++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%" PRIu64 ".%s", dir, s, c->ext);
        assert_false(exists(path));
    }
    assert_int_equal(count_files(dir, ".tmp"), 0);
}

/* ---- Decoding ---- */

typedef struct decoded {
    int video_frames, width, height;
    bool first_video_key;
    double energy;      /* mean square of the audio samples */
    long audio_samples;
    int64_t video_first_ms, audio_first_ms; /* first pts, ms; INT64_MIN when absent */
} decoded_t;

static void decode_file(const char *path, decoded_t *d)
{
    memset(d, 0, sizeof *d);
    d->video_first_ms = d->audio_first_ms = INT64_MIN;
    AVFormatContext *ic = NULL;
    assert_int_equal(avformat_open_input(&ic, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(ic, NULL) >= 0);
    AVCodecContext *dec[8] = {0};
    assert_true(ic->nb_streams <= 8);
    for (unsigned i = 0; i < ic->nb_streams; i++) {
        const AVCodec *c = avcodec_find_decoder(ic->streams[i]->codecpar->codec_id);
        assert_non_null(c);
        dec[i] = avcodec_alloc_context3(c);
        assert_int_equal(avcodec_parameters_to_context(dec[i], ic->streams[i]->codecpar), 0);
        dec[i]->pkt_timebase = ic->streams[i]->time_base;
        assert_int_equal(avcodec_open2(dec[i], c, NULL), 0);
    }
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    double sum = 0;
    bool draining = false;
    for (;;) {
        unsigned si = 0;
        if (!draining) {
            if (av_read_frame(ic, pkt) < 0) {
                draining = true;
                for (unsigned i = 0; i < ic->nb_streams; i++) avcodec_send_packet(dec[i], NULL);
            } else {
                si = (unsigned)pkt->stream_index;
                AVStream *st = ic->streams[si];
                int64_t ms = av_rescale_q(pkt->pts, st->time_base, (AVRational){1, 1000});
                if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && d->video_first_ms == INT64_MIN)
                    d->video_first_ms = ms;
                if (st->codecpar->codec_type == AVMEDIA_TYPE_AUDIO && d->audio_first_ms == INT64_MIN)
                    d->audio_first_ms = ms;
                assert_int_equal(avcodec_send_packet(dec[si], pkt), 0);
                av_packet_unref(pkt);
            }
        }
        for (unsigned i = 0; i < ic->nb_streams; i++) {
            while (avcodec_receive_frame(dec[i], f) == 0) {
                if (dec[i]->codec_type == AVMEDIA_TYPE_VIDEO) {
                    if (d->video_frames == 0) d->first_video_key = f->key_frame;
                    d->video_frames++;
                    d->width = f->width;
                    d->height = f->height;
                } else if (f->format == AV_SAMPLE_FMT_FLTP) {
                    for (int c = 0; c < f->ch_layout.nb_channels; c++)
                        for (int k = 0; k < f->nb_samples; k++) {
                            double v = ((const float *)f->extended_data[c])[k];
                            sum += v * v;
                        }
                    d->audio_samples += (long)f->nb_samples * f->ch_layout.nb_channels;
                }
                av_frame_unref(f);
            }
        }
        if (draining) break;
    }
    if (d->audio_samples) d->energy = sum / (double)d->audio_samples;
    for (unsigned i = 0; i < ic->nb_streams; i++) avcodec_free_context(&dec[i]);
    av_frame_free(&f);
    av_packet_free(&pkt);
    avformat_close_input(&ic);
}

/* Decodes a listed segment (fMP4: its init section and the segment concatenated). */
static void decode_entry(const char *dir, const entry_t *e, decoded_t *d)
{
    char path[512];
    uri_path(dir, e->uri, path, sizeof path);
    if (!e->map[0]) {
        decode_file(path, d);
        return;
    }
    char init[512], cat[512];
    uri_path(dir, e->map, init, sizeof init);
    snprintf(cat, sizeof cat, "%s/cat.mp4", g_root);
    FILE *out = fopen(cat, "wb");
    assert_non_null(out);
    const char *parts[2] = {init, path};
    for (int i = 0; i < 2; i++) {
        FILE *in = fopen(parts[i], "rb");
        assert_non_null(in);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
        fclose(in);
    }
    fclose(out);
    decode_file(cat, d);
    unlink(cat);
}

/* Every listed segment decodes: ~2 s of w x h video starting with a key frame, audio with the
 * sine's energy (0.5 amplitude: mean square 0.125), both tracks in step with the timeline. */
static void check_decodes(const char *dir, const playlist_t *pl, int w, int h, bool audio)
{
    int64_t expect_ms = INT64_MIN;
    for (size_t i = 0; i < pl->n; i++) {
        decoded_t d;
        decode_entry(dir, &pl->e[i], &d);
        if (w) {
            assert_int_equal(d.width, w);
            assert_int_equal(d.height, h);
            assert_true(d.first_video_key);
            /* 25 fps over the segment's duration. */
            assert_int_equal(d.video_frames, (int)(pl->e[i].dur_ms / 40));
            if (expect_ms != INT64_MIN && !pl->e[i].disc)
                assert_true(d.video_first_ms >= expect_ms - 1 && d.video_first_ms <= expect_ms + 1);
            expect_ms = d.video_first_ms + pl->e[i].dur_ms;
        }
        if (audio) {
            assert_true(d.audio_samples > 0);
            assert_true(d.energy > 0.05 && d.energy < 0.2);
            if (w) /* in sync: the audio starts within a frame or two of the video */
                assert_true(d.audio_first_ms >= d.video_first_ms - 50 &&
                            d.audio_first_ms <= d.video_first_ms + 50);
        } else {
            assert_int_equal(d.audio_samples, 0);
        }
    }
}

/* MPEG-TS continuity counters run on from segment to segment, discontinuities included
 * (ISO/IEC 13818-1 §2.4.3.3), as if the listed segments were one transport stream. */
static void check_ts_continuity(const char *dir, const playlist_t *pl)
{
    static int8_t next[8192];
    memset(next, -1, sizeof next);
    for (size_t i = 0; i < pl->n; i++) {
        char path[512];
        uri_path(dir, pl->e[i].uri, path, sizeof path);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        uint8_t p[188];
        size_t packets = 0;
        while (fread(p, 1, sizeof p, f) == sizeof p) {
            packets++;
            assert_int_equal(p[0], 0x47);
            unsigned pid = (unsigned)(p[1] & 0x1f) << 8 | p[2];
            if (!(p[3] & 0x10)) continue;
            if (next[pid] >= 0) assert_int_equal(p[3] & 0x0f, next[pid]);
            next[pid] = (int8_t)(((p[3] & 0x0f) + 1) & 0x0f);
        }
        assert_true(packets > 0);
        /* A segment opens with the PAT (PID 0) and the PMT (FFmpeg's PID 0x1000) before any
         * media (the SDT may come first). */
        fseek(f, 0, SEEK_SET);
        bool pat = false, pmt = false;
        while (fread(p, 1, sizeof p, f) == sizeof p) {
            unsigned pid = (unsigned)(p[1] & 0x1f) << 8 | p[2];
            if (pid == 0) pat = true;
            else if (pid == 0x1000) pmt = pat;
            else if (pid >= 0x100 && pid < 0x1000) break;
        }
        assert_true(pat && pmt);
        fclose(f);
    }
}

/* ---- Tests ---- */

static es_hls_t *make_hls(bool fmp4, uint32_t window)
{
    es_hls_config_t cfg = {.directory = g_root, .segment_ms = 2000, .window = window,
                           .fmp4 = fmp4};
    es_hls_t *h = NULL;
    assert_int_equal(es_hls_new(&cfg, "live", "cam", &h), 0);
    assert_non_null(h);
    return h;
}

static void run_live(bool fmp4)
{
    if (!g_have_x264) skip();
    es_hls_t *h = make_hls(fmp4, 3);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/live/cam", g_root);
    assert_string_equal(es_hls_dir(h), dir);
    assert_false(exists(dir)); /* nothing written before the first segment */
    live_check_t lc = {.hls = h, .ext = fmp4 ? "m4s" : "ts", .version = fmp4 ? 7 : 3,
                       .window = 3, .exact_2s = true};
    feeder_t fd = {.hls = h, .on_publish = check_live, .user = &lc};
    feed(&fd, &g_av, true, 0, 16000);
    /* Cut at the key frames at 2, 4, ..., 14 s; 14..16 s still open. */
    assert_int_equal(fd.published, 7);
    assert_int_equal(fd.errors, 0);
    assert_int_equal(lc.checks, 7);
    es_hls_stats_t st = es_hls_stats(h);
    assert_int_equal(st.segments, 7);
    assert_true(st.video && st.audio);
    assert_int_equal(st.target_duration, 2);
    assert_int_equal(st.discontinuities, 0);
    assert_false(st.failing);
    /* The first Media Sequence Number is the wall clock in seconds at the first segment. */
    assert_int_equal(st.media_sequence, (uint64_t)(WALL0 / 1000) + 4);

    playlist_t pl;
    parse_playlist(dir, &pl);
    assert_int_equal(pl.n, 3);
    assert_int_equal(pl.target, 2);
    /* The date of the first listed (the fifth) segment: 8 s of media after the first. */
    assert_int_equal(pl.e[0].pdt_ms, WALL0 + 8000);
    check_decodes(dir, &pl, 160, 120, true);

    /* The stream ends: the last segment is published, ENDLIST. */
    assert_int_equal(es_hls_end(h), 1);
    parse_playlist(dir, &pl);
    assert_true(pl.endlist);
    assert_int_equal(pl.n, 3);
    assert_int_equal(pl.e[2].dur_ms, 2000);
    assert_int_equal(pl.seq, (uint64_t)(WALL0 / 1000) + 5);
    for (size_t i = 0; i < pl.n; i++) assert_true(pl.target * 1000 >= pl.e[i].dur_ms);
    check_decodes(dir, &pl, 160, 120, true);
    if (!fmp4) check_ts_continuity(dir, &pl);
    if (fmp4) {
        assert_int_equal(count_files(dir, ".mp4"), 1);
        char want[64];
        snprintf(want, sizeof want, "cam/init-%" PRIu64 ".mp4", (uint64_t)(WALL0 / 1000));
        assert_string_equal(pl.e[0].map, want);
    }
    es_hls_free(h);

    /* Cleanup removes the directory (and the app's, now empty). */
    assert_true(exists(dir));
    assert_int_equal(es_hls_cleanup(g_root, "live", "cam"), 0);
    assert_false(exists(dir));
    snprintf(dir, sizeof dir, "%s/live", g_root);
    assert_false(exists(dir));
    assert_int_equal(es_hls_cleanup(g_root, "live", "cam"), ES_ENOENT);
    assert_int_equal(es_hls_cleanup(g_root, "live", "../cam"), ES_EINVAL);
}

static void test_ts_live(void **state)
{
    (void)state;
    run_live(false);
}

static void test_fmp4_live(void **state)
{
    (void)state;
    run_live(true);
}

static void test_discontinuities(void **state)
{
    (void)state;
    if (!g_have_x264) skip();
    es_hls_t *h = make_hls(false, 20);
    const char *dir = es_hls_dir(h);
    live_check_t lc = {.hls = h, .ext = "ts", .version = 3, .window = 20};
    feeder_t fd = {.hls = h, .on_publish = check_live, .user = &lc};
    playlist_t pl;

    /* 1. The publisher restarts (the API call): timestamps from 0 again, same codecs. */
    feed(&fd, &g_av, true, 0, 5000); /* 0-2, 2-4 published; 4-5 open */
    assert_int_equal(fd.published, 2);
    assert_int_equal(es_hls_discontinuity(h), 1);
    fd.published++;
    feed(&fd, &g_av, true, 0, 4040); /* 0-2 and 2-4 published, the frame at 4 s open */
    assert_int_equal(fd.published, 5);
    parse_playlist(dir, &pl);
    assert_int_equal(pl.n, 5);
    assert_int_equal(pl.e[2].dur_ms, 1000); /* cut short by the restart */
    assert_false(pl.e[2].disc);
    assert_true(pl.e[3].disc);
    assert_int_equal(pl.e[3].dur_ms, 2000);
    assert_false(pl.e[4].disc);
    /* The new run's date follows the wall clock, not the old timeline. */
    assert_true(pl.e[3].pdt_ms >= pl.e[2].pdt_ms + pl.e[2].dur_ms);

    /* 2. Timestamps jump back without a call (a restarted encoder behind the same session). */
    fd.offset_ms = 0;
    feed(&fd, &g_av, false, 0, 4040);
    parse_playlist(dir, &pl);
    assert_int_equal(pl.n, 8);
    assert_false(pl.e[5].disc); /* the one frame at 4 s, ended by the jump */
    assert_int_equal(pl.e[5].dur_ms, 40);
    assert_true(pl.e[6].disc);
    assert_int_equal(pl.e[6].dur_ms, 2000);
    assert_false(pl.e[7].disc);

    /* 3. A new sequence header (the publisher changed resolution), timestamps going on. */
    fd.offset_ms = 5000;
    feed(&fd, &g_small, true, 0, 4000);
    es_hls_stats_t st = es_hls_stats(h);
    assert_int_equal(st.discontinuities, 3);
    assert_int_equal(es_hls_end(h), 1);
    parse_playlist(dir, &pl);
    assert_true(pl.endlist);
    size_t discs = 0;
    for (size_t i = 0; i < pl.n; i++) discs += pl.e[i].disc;
    assert_int_equal(discs, 3);
    assert_true(pl.e[pl.n - 2].disc);
    /* The new resolution's segments decode at their size. */
    playlist_t tail = pl;
    tail.n = 2;
    memmove(tail.e, pl.e + pl.n - 2, 2 * sizeof *tail.e);
    check_decodes(dir, &tail, 176, 144, true);

    /* 4. Media after the end: a discontinuity, no ENDLIST. */
    fd.offset_ms = 20000;
    feed(&fd, &g_av, true, 0, 2040);
    parse_playlist(dir, &pl);
    assert_false(pl.endlist);
    assert_true(pl.e[pl.n - 1].disc);
    assert_int_equal(es_hls_stats(h).discontinuities, 4);
    check_ts_continuity(dir, &pl);
    es_hls_free(h);
}

static void test_discontinuity_sequence_slides(void **state)
{
    (void)state;
    if (!g_have_x264) skip();
    es_hls_t *h = make_hls(true, 2);
    live_check_t lc = {.hls = h, .ext = "m4s", .version = 7, .window = 2};
    feeder_t fd = {.hls = h, .on_publish = check_live, .user = &lc};
    feed(&fd, &g_av, true, 0, 4040);
    assert_int_equal(es_hls_discontinuity(h), 1);
    feed(&fd, &g_av, true, 0, 4040);
    assert_int_equal(es_hls_discontinuity(h), 1);
    feed(&fd, &g_av, true, 0, 6040);
    playlist_t pl;
    parse_playlist(es_hls_dir(h), &pl);
    /* Both discontinuities have slid out of the two-segment window. */
    assert_int_equal(pl.disc_seq, 2);
    assert_false(pl.e[0].disc || pl.e[1].disc);
    /* Each run has its own init section; the first run's is gone with its segments, the
     * second's stays while its last segment is kept for slow clients. */
    assert_int_equal(count_files(es_hls_dir(h), ".mp4"), 2);
    check_decodes(es_hls_dir(h), &pl, 160, 120, true);
    es_hls_free(h);
}

static void test_audio_only(void **state)
{
    (void)state;
    es_hls_t *h = make_hls(false, 6);
    live_check_t lc = {.hls = h, .ext = "ts", .version = 3, .window = 6};
    feeder_t fd = {.hls = h, .on_publish = check_live, .user = &lc};
    feed(&fd, &g_audio, true, 0, 7000);
    assert_int_equal(es_hls_end(h), 1);
    es_hls_stats_t st = es_hls_stats(h);
    assert_false(st.video);
    assert_true(st.audio);
    playlist_t pl;
    parse_playlist(es_hls_dir(h), &pl);
    /* The first second goes to waiting for a video sequence header; then cut on time: the
     * first AAC frame (21.3 ms) at or after 2 s. */
    assert_true(pl.n >= 3);
    for (size_t i = 0; i + 1 < pl.n; i++)
        assert_true(pl.e[i].dur_ms >= 2000 && pl.e[i].dur_ms <= 2022);
    assert_true(pl.endlist);
    check_decodes(es_hls_dir(h), &pl, 0, 0, true);
    check_ts_continuity(es_hls_dir(h), &pl); /* audio-only segments start with PAT too */
    es_hls_free(h);
}

static void test_video_only(void **state)
{
    (void)state;
    if (!g_have_x264) skip();
    media_t v = g_av;
    memset(&v.acfg, 0, sizeof v.acfg);
    frame_t *f = malloc(g_av.n * sizeof *f);
    assert_non_null(f);
    v.n = 0;
    for (size_t i = 0; i < g_av.n; i++)
        if (g_av.f[i].type == ES_TAG_VIDEO) f[v.n++] = g_av.f[i];
    v.f = f;
    es_hls_t *h = make_hls(false, 6);
    live_check_t lc = {.hls = h, .ext = "ts", .version = 3, .window = 6, .exact_2s = true};
    feeder_t fd = {.hls = h, .on_publish = check_live, .user = &lc};
    feed(&fd, &v, true, 0, 6040);
    /* Held while waiting for audio, then replayed: nothing lost from the first key frame. */
    assert_int_equal(fd.published, 3);
    es_hls_stats_t st = es_hls_stats(h);
    assert_true(st.video);
    assert_false(st.audio);
    playlist_t pl;
    parse_playlist(es_hls_dir(h), &pl);
    assert_int_equal(pl.e[0].pdt_ms, WALL0);
    check_decodes(es_hls_dir(h), &pl, 160, 120, false);
    free(f);
    es_hls_free(h);
}

/* Jobs collected instead of run, to check the order the segmenter hands them out in. */
typedef struct job_log {
    es_hls_job_t *head, *tail;
    size_t n;
} job_log_t;

static int collect(void *user, es_hls_job_t *j)
{
    job_log_t *l = user;
    j->next = NULL;
    if (l->tail) l->tail->next = j;
    else l->head = j;
    l->tail = j;
    l->n++;
    return 0;
}

/* A source without key frames after the first: segments are still cut at max_segment_ms
 * (marked as discontinuities, and the playlist no longer claims independent segments); the file
 * work goes to the io in order: each segment before the playlist that lists it. */
static void test_cut_without_key_frames(void **state)
{
    (void)state;
    if (!g_have_x264) skip();
    media_t v = g_av;
    memset(&v.acfg, 0, sizeof v.acfg);
    frame_t *f = malloc(g_av.n * sizeof *f);
    assert_non_null(f);
    v.n = 0;
    bool first = true;
    for (size_t i = 0; i < g_av.n; i++) {
        if (g_av.f[i].type != ES_TAG_VIDEO) continue;
        frame_t fr = g_av.f[i];
        if ((fr.body[0] >> 4) == 1 && !first) { /* key frame: relabel as an inter frame */
            fr.body = malloc(fr.len);
            memcpy(fr.body, g_av.f[i].body, fr.len);
            fr.body[0] = (uint8_t)((2 << 4) | (fr.body[0] & 0x0f));
        }
        first = false;
        f[v.n++] = fr;
    }
    v.f = f;
    job_log_t log = {0};
    es_hls_io_t io = {.submit = collect, .user = &log};
    es_hls_config_t cfg = {.directory = g_root, .segment_ms = 2000, .window = 6,
                           .max_segment_ms = 3000, .io = &io};
    es_hls_t *h = NULL;
    assert_int_equal(es_hls_new(&cfg, "live", "cam", &h), 0);
    feeder_t fd = {.hls = h};
    feed(&fd, &v, true, 0, 10040);
    assert_int_equal(fd.published, 3); /* cut at 3, 6 and 9 s */
    assert_int_equal(fd.errors, 0);
    /* Nothing was written by the segmenter itself; the jobs alternate segment, playlist. */
    char pl_path[300];
    snprintf(pl_path, sizeof pl_path, "%s/live/cam/index.m3u8", g_root);
    assert_false(exists(pl_path));
    size_t segs = 0;
    assert_non_null(log.head);
    assert_int_equal(log.head->kind, ES_HLS_JOB_PREPARE); /* the folder first, as a job too */
    for (es_hls_job_t *j = log.head->next; j; j = j->next) {
        assert_int_equal(j->kind, ES_HLS_JOB_WRITE);
        bool playlist = strstr(j->path, "index.m3u8") != NULL;
        if (!playlist) segs++;
        else assert_true(segs > 0); /* a playlist only after a segment */
    }
    assert_int_equal(segs, 3);
    /* Run them as the writer would: then the files are there. */
    for (es_hls_job_t *j = log.head, *next; j; j = next) {
        next = j->next;
        es_hls_job_run(j);
        assert_int_equal(j->err, 0);
        es_hls_job_free(j);
    }
    playlist_t pl;
    parse_playlist_any(es_hls_dir(h), &pl);
    assert_int_equal(pl.n, 3);
    assert_false(pl.independent);
    assert_false(pl.e[0].disc);
    assert_true(pl.e[1].disc && pl.e[2].disc);
    assert_true(pl.e[0].dur_ms >= 2900 && pl.e[0].dur_ms <= 3100);
    for (size_t i = 0; i < v.n; i++) {
        bool shared = false;
        for (size_t k = 0; k < g_av.n && !shared; k++) shared = g_av.f[k].body == v.f[i].body;
        if (!shared) free(v.f[i].body);
    }
    free(f);
    es_hls_free(h);
}

static void test_write_failures(void **state)
{
    (void)state;
    if (!g_have_x264) skip();
    es_hls_t *h = make_hls(false, 3);
    const char *dir = es_hls_dir(h);
    feeder_t fd = {.hls = h};
    feed(&fd, &g_av, true, 0, 4040);
    assert_int_equal(fd.published, 2);

    /* The directory is removed under the segmenter: made again at the next segment. */
    nftw(g_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    assert_false(exists(g_root));
    feed(&fd, &g_av, false, 4040, 6040);
    assert_int_equal(fd.published, 3);
    assert_int_equal(fd.errors, 0);
    assert_true(exists(dir));

    /* A file where the directory should be: every write fails, the segmenter goes on. */
    char moved[256];
    snprintf(moved, sizeof moved, "%s/moved", g_root);
    assert_int_equal(rename(dir, moved), 0);
    FILE *blocker = fopen(dir, "w");
    assert_non_null(blocker);
    fclose(blocker);
    feed(&fd, &g_av, false, 6040, 10040);
    assert_int_equal(fd.published, 3);
    assert_int_equal(fd.errors, 2);
    es_hls_stats_t st = es_hls_stats(h);
    assert_true(st.failing);
    assert_true(st.write_errors >= 2);
    /* Writable again: the next segment goes out, after a discontinuity for the lost ones. */
    assert_int_equal(unlink(dir), 0);
    feed(&fd, &g_av, false, 10040, 12040);
    assert_int_equal(fd.published, 4);
    st = es_hls_stats(h);
    assert_false(st.failing);
    playlist_t pl;
    parse_playlist(dir, &pl);
    assert_int_equal(pl.n, 3); /* two before the failures (their files were taken away) */
    assert_false(pl.e[1].disc);
    assert_true(pl.e[2].disc);
    assert_int_equal(pl.e[2].dur_ms, 2000);
    pl.e[0] = pl.e[2];
    pl.n = 1;
    check_decodes(dir, &pl, 160, 120, true);
    es_hls_free(h);
}

static void test_bad_input(void **state)
{
    (void)state;
    es_hls_t *h = make_hls(false, 3);
    /* NULLs and bad names. */
    es_hls_config_t cfg = {.directory = g_root};
    es_hls_t *x = NULL;
    assert_int_equal(es_hls_new(&cfg, "live", "../x", &x), ES_EINVAL);
    assert_int_equal(es_hls_new(&cfg, "live", "a/b", &x), ES_EINVAL);
    assert_int_equal(es_hls_new(&cfg, "", "x", &x), ES_EINVAL);
    assert_int_equal(es_hls_new(&cfg, ".hidden", "x", &x), ES_EINVAL);
    assert_int_equal(es_hls_new(NULL, "live", "x", &x), ES_EINVAL);
    cfg.directory = "";
    assert_int_equal(es_hls_new(&cfg, "live", "x", &x), ES_EINVAL);
    assert_null(x);
    assert_int_equal(es_hls_handle_tag(h, NULL, 0, 0), ES_EINVAL);
    assert_int_equal(es_hls_handle_tag(NULL, NULL, 0, 0), ES_EINVAL);
    assert_int_equal(es_hls_end(NULL), ES_EINVAL);
    assert_int_equal(es_hls_discontinuity(NULL), ES_EINVAL);
    es_hls_free(NULL);

    static const struct {
        uint8_t type;
        uint8_t body[16];
        size_t len;
        int rc;
    } cases[] = {
        {ES_TAG_VIDEO, {0}, 0, ES_EPROTO},                         /* empty */
        {ES_TAG_VIDEO, {0x17}, 1, ES_EPROTO},                      /* truncated AVC header */
        {ES_TAG_VIDEO, {0x17, 0x00, 0, 0, 0, 1, 0x42}, 7, ES_EPROTO}, /* truncated record */
        {ES_TAG_VIDEO, {0x17, 0x00, 0, 0, 0, 2, 0x42, 0, 0x1e, 0xff}, 10, ES_EPROTO},
        {ES_TAG_VIDEO, {0x17, 0x01, 0, 0, 0, 0, 0, 0, 9, 0x65}, 10, 0}, /* no config yet */
        {ES_TAG_VIDEO, {0x12, 0x00, 0x00}, 3, 0},                  /* Sorenson H.263: ignored */
        {ES_TAG_AUDIO, {0}, 0, ES_EPROTO},
        {ES_TAG_AUDIO, {0xAF, 0x00}, 2, ES_EPROTO},                /* empty ASC */
        {ES_TAG_AUDIO, {0xAF, 0x00, 0x17}, 3, ES_EPROTO},          /* truncated ASC */
        {ES_TAG_AUDIO, {0xAF, 0x00, 0x16, 0x88}, 4, ES_EPROTO},    /* reserved index 13 */
        {ES_TAG_AUDIO, {0xAF, 0x01, 1, 2, 3}, 5, 0},               /* no config yet */
        {ES_TAG_AUDIO, {0x2F, 1, 2, 3}, 4, 0},                     /* MP3: ignored */
        {ES_TAG_DATA, {2, 0, 1, 'x'}, 4, 0},                       /* data: ignored */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        es_tag_t *t = es_tag_new(cases[i].type, (uint32_t)i * 10, cases[i].body, cases[i].len);
        assert_non_null(t);
        assert_int_equal(es_hls_handle_tag(h, t, NOW0 + i * 1000, WALL0), cases[i].rc);
        es_tag_unref(t);
    }
    if (g_have_x264) {
        /* A damaged access unit in the middle of a real stream: dropped, video resumes at the
         * next key frame, every listed segment still decodes. */
        feeder_t fd = {.hls = h};
        feed(&fd, &g_av, true, 0, 3000);
        static const uint8_t bad[] = {0x27, 0x01, 0, 0, 0, 0, 0, 0, 200, 0x41, 0x9a};
        es_tag_t *t = es_tag_new(ES_TAG_VIDEO, 3000, bad, sizeof bad);
        fd.clock_ms += 1;
        int rc = es_hls_handle_tag(h, t, NOW0 + (uint64_t)fd.clock_ms * 1000, WALL0 + fd.clock_ms);
        es_tag_unref(t);
        assert_true(rc == 0 || rc == ES_EPROTO);
        feed(&fd, &g_av, false, 3040, 8040);
        assert_int_equal(fd.errors, 0);
        assert_true(fd.published >= 3);
        playlist_t pl;
        parse_playlist(es_hls_dir(h), &pl);
        for (size_t i = 0; i < pl.n; i++) {
            decoded_t d;
            decode_entry(es_hls_dir(h), &pl.e[i], &d);
            assert_true(d.video_frames > 0);
            assert_true(d.first_video_key);
        }
    } else {
        assert_false(exists(es_hls_dir(h))); /* nothing to write */
    }
    es_hls_free(h);
}

static void test_request_path(void **state)
{
    (void)state;
    char out[256];
    const char *root = "/srv/hls";
    assert_int_equal(es_hls_request_path(root, "live", "cam.m3u8", out, sizeof out),
                     ES_HLS_FILE_PLAYLIST);
    assert_string_equal(out, "/srv/hls/live/cam/index.m3u8");
    assert_int_equal(es_hls_request_path(root, "live", "cam/1700000004.ts", out, sizeof out),
                     ES_HLS_FILE_TS);
    assert_string_equal(out, "/srv/hls/live/cam/1700000004.ts");
    assert_int_equal(es_hls_request_path(root, "live", "cam/12.m4s", out, sizeof out),
                     ES_HLS_FILE_M4S);
    assert_int_equal(es_hls_request_path(root, "live", "cam/init-12.mp4", out, sizeof out),
                     ES_HLS_FILE_INIT);
    assert_string_equal(out, "/srv/hls/live/cam/init-12.mp4");
    assert_string_equal(es_hls_content_type(ES_HLS_FILE_PLAYLIST),
                        "application/vnd.apple.mpegurl");
    assert_string_equal(es_hls_content_type(ES_HLS_FILE_TS), "video/mp2t");
    assert_string_equal(es_hls_content_type(ES_HLS_FILE_INIT), "video/mp4");
    assert_string_equal(es_hls_content_type(0), "application/octet-stream");

    static const char *refused[] = {
        "../x", "../x.m3u8", "/etc/passwd", "/cam.m3u8", "cam/../../x.ts", "cam/../1.ts",
        "../cam/1.ts", "cam//1.ts", "cam/", "cam", ".m3u8", "..m3u8", ".cam.m3u8", "cam.m3u",
        "cam/index.m3u8", "cam/1.ts.tmp", "cam/index.m3u8.tmp", "cam/x.ts", "cam/1.mp4",
        "cam/init.mp4", "cam/init-.mp4", "cam/-1.ts", "cam/1.TS", "cam/1.ts/x", "cam/.1.ts",
        "ca m.m3u8", "cam%2f..%2f1.ts", "cam\\..\\1.ts", "cam/1.ts?x", "", "/",
        "cam/123456789012345678901.ts", "cam/passwd",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        strcpy(out, "untouched");
        int rc = es_hls_request_path(root, "live", refused[i], out, sizeof out);
        if (rc != ES_EINVAL) fail_msg("accepted '%s' (%d)", refused[i], rc);
    }
    assert_int_equal(es_hls_request_path(root, "..", "cam.m3u8", out, sizeof out), ES_EINVAL);
    assert_int_equal(es_hls_request_path(root, "a/b", "cam.m3u8", out, sizeof out), ES_EINVAL);
    assert_int_equal(es_hls_request_path(root, "live", NULL, out, sizeof out), ES_EINVAL);
    assert_int_equal(es_hls_request_path(root, "live", "cam.m3u8", out, 10), ES_E2BIG);
    assert_string_equal(out, "");
    /* The longest stream name there may be still maps. */
    char name[256];
    memset(name, 'a', 128);
    strcpy(name + 128, ".m3u8");
    assert_int_equal(es_hls_request_path(root, "live", name, out, sizeof out),
                     ES_HLS_FILE_PLAYLIST);
    memset(name, 'a', 129);
    strcpy(name + 129, ".m3u8");
    assert_int_equal(es_hls_request_path(root, "live", name, out, sizeof out), ES_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ts_live, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_fmp4_live, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_discontinuities, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_discontinuity_sequence_slides, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(test_audio_only, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_video_only, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_cut_without_key_frames, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_write_failures, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, test_setup, test_teardown),
        cmocka_unit_test(test_request_path),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
