/* HLS segmenter (RFC 8216): FLV tags -> MPEG-TS (§3.2) or fMP4 (§3.3) segments muxed by
 * libavformat into memory (a dynamic AVIOContext per segment), written to a temporary file and
 * renamed into place, and the media playlist (§4.3.3) rewritten the same way after each segment.
 * See include/estuary/hls.h for the contract.
 *
 * A "period" is a run of continuous timestamps with one set of codec parameters: one muxer
 * (AVFormatContext) lives for a period, its output is cut into segments by swapping the dynamic
 * buffer underneath it (as FFmpeg's hlsenc does), so MPEG-TS continuity counters and fMP4
 * fragment sequence numbers run on across segments. A new period (a new muxer, and for fMP4 a
 * new init section) starts after each discontinuity. */
#include "estuary/hls.h"

#include "estuary/error.h"
#include "estuary/metrics.h"
#include "estuary/flv.h"
#include "estuary/h264.h"
#include "estuary/log.h"
#include "estuary/registry.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/mem.h>
#include <libavutil/opt.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JUMP_FWD_MS 10000    /* a forward timestamp step larger than this is a discontinuity */
#define JUMP_BACK_MS 1000    /* audio this far behind its sample clock is a discontinuity */
#define AUDIO_RESYNC_MS 100  /* audio drift tolerated before following the tag timestamps */
#define AAC_FRAME_SAMPLES 1024
#define DEFAULT_FRAME_MS 40  /* duration of a last video frame whose successor never came */
#define NAME_MAX_LEN 40      /* "init-18446744073709551615.mp4.tmp" and the like */

/* One published segment. */
typedef struct seg_rec {
    uint64_t seq;      /* Media Sequence Number; also its file name */
    int64_t dur_us;
    int64_t pdt_ms;    /* wall clock of its first media, ms since the epoch */
    uint64_t init_seq; /* fMP4: the init section it needs (init-<init_seq>.mp4) */
    bool disc;         /* preceded by #EXT-X-DISCONTINUITY */
} seg_rec_t;

/* One-shot log lines: each is written once until the state it reports changes. */
enum {
    LOG_VIDEO_CODEC = 1 << 0,
    LOG_AUDIO_CODEC = 1 << 1,
    LOG_BAD_VIDEO_CFG = 1 << 2,
    LOG_BAD_AUDIO_CFG = 1 << 3,
    LOG_MUX = 1 << 4,
    LOG_TIMESTAMPS = 1 << 5,
    LOG_FORCED_CUT = 1 << 6,
};

struct es_hls {
    char *dir;       /* <root>/<app>/<stream> */
    char *root;
    char *app_dir;   /* <root>/<app> */
    char *stream;    /* name, the prefix of URIs in the playlist */
    char *key;       /* "app/stream", for logs */
    uint32_t segment_ms;
    uint32_t window;
    bool fmp4;
    uint32_t max_segment_ms;
    uint32_t max_segment_bytes;
    const es_hls_io_t *io;
    size_t seg_bytes;      /* media bytes in the segment in progress */
    bool forced_cut;       /* a segment was cut without a key frame: not INDEPENDENT-SEGMENTS */

    /* Codec configuration as last received. */
    uint8_t *avcc;
    size_t avcc_len;
    es_h264_config_t h264;
    uint32_t width, height;
    uint8_t *asc;
    size_t asc_len;
    es_aac_config_t aac;

    /* Deciding the track set: with one track configured, wait up to ES_HLS_PROBE_MS (of either
     * clock) for the other one; video from a key frame on is held meanwhile. */
    bool settled;
    bool probing;
    uint64_t probe_start_us;
    int64_t probe_start_ms;
    es_tag_t **held;
    size_t n_held, cap_held;

    /* Timestamps: FLV's 32-bit ms unwrapped to 64 bits against the previous tag. */
    bool have_ts;
    int64_t last_ts;

    /* The period: its muxer and tracks. */
    AVFormatContext *oc;
    int vidx, aidx;          /* stream indexes, -1 when absent */
    AVPacket *pkt;
    uint8_t *init;           /* fMP4: the init section's bytes, until written */
    size_t init_len;
    uint64_t init_seq;
    bool init_written;
    int64_t anchor_media_us; /* PDT anchor: media time ... */
    int64_t anchor_wall_ms;  /* ... and the wall clock then */
    bool need_key;           /* video dropped until the next key frame */
    bool have_video_dts;
    int64_t last_video_dts;  /* ms, of the last video frame accepted */
    int64_t last_video_dur;  /* ms, the last interval between video frames */
    es_tag_t *pending;       /* the latest video frame, written when its successor gives its
                                duration */
    int64_t pending_dts;
    int32_t pending_cts;
    bool have_audio_clock;
    int64_t audio_pos;       /* next audio dts, samples at the config's rate */

    /* The segment being made. */
    bool seg_open;
    bool seg_has_media;
    int64_t seg_start_us;
    int64_t seg_end_us;      /* the end of the latest media written */
    int64_t video_end_us;    /* ... of video: a last segment with video ends there */
    bool disc_next;          /* the next published segment gets #EXT-X-DISCONTINUITY */

    /* The playlist. */
    seg_rec_t *recs;         /* oldest first: the window plus ES_HLS_KEEP_EXTRA on disk */
    size_t n_recs, cap_recs;
    bool seq_started;
    uint64_t next_seq;
    uint64_t disc_removed;   /* discontinuity tags no longer in the playlist (§6.2.2) */
    uint32_t target_s;
    bool ended;
    bool dir_checked;        /* files of an earlier segmenter removed */

    uint8_t *cc;             /* MPEG-TS: next continuity_counter per PID (8192), 0xff unknown */
    uint8_t *buf;            /* scratch: Annex B access units */
    size_t buf_cap;
    unsigned logged;
    es_hls_stats_t stats;
};

static es_log_ctx_t lctx(const es_hls_t *h) { return (es_log_ctx_t){.stream = h->key}; }

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- Files ---- */

/* mkdir -p for `path` (a copy is edited). */
static int make_dirs(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return ES_EINVAL;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0') continue;
        char c = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return ES_EIO;
        tmp[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0) return ES_EIO;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return ES_EIO;
    }
    return 0;
}

/* A file name this module writes: "<digits>.ts", "<digits>.m4s", "init-<digits>.mp4", with
 * ".tmp" appended when `tmp_too`, or "index.m3u8" (and "index.m3u8.tmp"). Returns the
 * es_hls_file_t, or 0. */
static int own_file_kind(const char *name, bool tmp_too)
{
    size_t n = strlen(name);
    if (tmp_too && n > 4 && strcmp(name + n - 4, ".tmp") == 0) n -= 4;
    if (n == 0 || n > NAME_MAX_LEN) return 0;
    char s[NAME_MAX_LEN + 1];
    memcpy(s, name, n);
    s[n] = '\0';
    if (strcmp(s, "index.m3u8") == 0) return ES_HLS_FILE_PLAYLIST;
    const char *p = s;
    int kind;
    if (strncmp(p, "init-", 5) == 0) {
        p += 5;
        kind = ES_HLS_FILE_INIT;
    } else {
        kind = 0;
    }
    size_t digits = 0;
    while (p[digits] >= '0' && p[digits] <= '9') digits++;
    if (digits == 0 || digits > 20) return 0;
    const char *ext = p + digits;
    if (kind == ES_HLS_FILE_INIT) return strcmp(ext, ".mp4") == 0 ? kind : 0;
    if (strcmp(ext, ".ts") == 0) return ES_HLS_FILE_TS;
    if (strcmp(ext, ".m4s") == 0) return ES_HLS_FILE_M4S;
    return 0;
}

/* Removes the files this module writes from `dir` (all files when `all`). Returns 0 or ES_EIO
 * (errno set) for the first failure; goes on past failures. */
static int remove_files(const char *dir, bool all)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? ES_ENOENT : ES_EIO;
    int rc = 0, saved = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (!all && !own_file_kind(e->d_name, true)) continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT && rc == 0) {
            rc = ES_EIO;
            saved = errno;
        }
    }
    closedir(d);
    if (rc) errno = saved;
    return rc;
}

static int submit(const es_hls_io_t *io, es_hls_job_kind_t kind, char *path, char *parent,
                  uint8_t *data, size_t len);

/* The folder exists and holds no earlier segmenter's files. With an io this is a job like the
 * writes (queued before them; a write also makes the folder when it is missing, so a cleanup
 * queued before a new segmenter's first write cannot leave it without a folder). */
static int ensure_dir(es_hls_t *h)
{
    if (h->io) {
        if (h->dir_checked) return 0;
        h->dir_checked = true;
        return submit(h->io, ES_HLS_JOB_PREPARE, dup_printf("%s", h->dir), NULL, NULL, 0);
    }
    int rc = make_dirs(h->dir);
    if (rc) return rc;
    if (!h->dir_checked) {
        remove_files(h->dir, false); /* an earlier segmenter's; best effort */
        h->dir_checked = true;
    }
    return 0;
}

/* Writes len bytes to path.tmp and renames it to path. Returns 0 or ES_EIO with errno set; no
 * temporary file is left behind. */
static int write_path(const char *path, const uint8_t *data, size_t len)
{
    char tmp[4208];
    if (strlen(path) + 5 > sizeof tmp) {
        errno = ENAMETOOLONG;
        return ES_EIO;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) { /* the folder went (a cleanup): make it again */
        char dir[4208];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            if (make_dirs(dir) == 0) fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        }
    }
    if (fd < 0) return ES_EIO;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            goto fail;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:;
    int saved = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    errno = saved;
    return ES_EIO;
}

static int cleanup_dirs(const char *dir, const char *app_dir)
{
    int rc = remove_files(dir, true);
    if (rc == ES_ENOENT) return rc;
    if (rmdir(dir) != 0 && rc == 0) rc = ES_EIO;
    int saved = errno;
    rmdir(app_dir); /* only when empty: other streams of the app keep it */
    errno = saved;
    return rc;
}

void es_hls_job_run(es_hls_job_t *j)
{
    errno = 0;
    switch (j->kind) {
    case ES_HLS_JOB_WRITE: j->err = write_path(j->path, j->data, j->len); break;
    case ES_HLS_JOB_REMOVE: j->err = unlink(j->path) == 0 || errno == ENOENT ? 0 : ES_EIO; break;
    case ES_HLS_JOB_CLEANUP: j->err = cleanup_dirs(j->path, j->parent); break;
    case ES_HLS_JOB_PREPARE:
        j->err = make_dirs(j->path);
        if (j->err == 0) remove_files(j->path, false); /* an earlier segmenter's; best effort */
        break;
    }
    j->sys_errno = j->err ? errno : 0;
}

void es_hls_job_free(es_hls_job_t *j)
{
    if (!j) return;
    free(j->path);
    free(j->parent);
    free(j->data);
    free(j);
}

/* Hands a job to the io, or runs it now (then returns its result). Takes data (malloc'ed). */
static int submit(const es_hls_io_t *io, es_hls_job_kind_t kind, char *path, char *parent,
                  uint8_t *data, size_t len)
{
    es_hls_job_t *j = calloc(1, sizeof *j);
    if (!j || !path) {
        free(j);
        free(path);
        free(parent);
        free(data);
        errno = ENOMEM;
        return ES_EIO;
    }
    *j = (es_hls_job_t){.kind = kind, .path = path, .parent = parent, .data = data, .len = len};
    if (io) {
        int rc = io->submit(io->user, j);
        if (rc) errno = ENOSPC; /* refused (a disk not keeping up): the caller's failure path */
        return rc ? ES_EIO : 0;
    }
    es_hls_job_run(j);
    int rc = j->err, e = j->sys_errno;
    es_hls_job_free(j);
    errno = e;
    return rc;
}

/* Writes <dir>/<name> (a copy of data unless `own`: then data is malloc'ed and taken). */
static int write_file(const es_hls_t *h, const char *name, const uint8_t *data, size_t len,
                      bool own)
{
    uint8_t *copy = (uint8_t *)data;
    if (!own && !(copy = malloc(len ? len : 1))) {
        errno = ENOMEM;
        return ES_EIO;
    }
    if (!own) memcpy(copy, data, len);
    return submit(h->io, ES_HLS_JOB_WRITE, dup_printf("%s/%s", h->dir, name), NULL, copy, len);
}

static void remove_file(const es_hls_t *h, const char *name)
{
    submit(h->io, ES_HLS_JOB_REMOVE, dup_printf("%s/%s", h->dir, name), NULL, NULL, 0);
}

static void write_failed(es_hls_t *h, const char *what)
{
    h->stats.write_errors++;
    if (!h->stats.failing) {
        es_log_ctx_t lc = lctx(h);
        ES_WARN("hls", &lc, "cannot write %s in %s: %s; HLS output interrupted, the next segment "
                "retries", what, h->dir, strerror(errno));
    }
    h->stats.failing = true;
}

static void write_succeeded(es_hls_t *h)
{
    if (h->stats.failing) {
        es_log_ctx_t lc = lctx(h);
        ES_INFO("hls", &lc, "writing segments in %s again", h->dir);
    }
    h->stats.failing = false;
}

/* ---- Playlist (§4.3.3) ---- */

static const char *seg_ext(const es_hls_t *h) { return h->fmp4 ? "m4s" : "ts"; }

static void format_pdt(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)s * 1000);
    struct tm tm;
    /* strftime for the date: gcc -O2 cannot bound tm's fields and warns about snprintf. */
    size_t n = gmtime_r(&s, &tm) ? strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)frac % 1000u);
}

/* A growing text buffer; `failed` once an allocation failed. */
typedef struct text {
    char *p;
    size_t len, cap;
    bool failed;
} text_t;

static void text_printf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(text_t *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->p && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 1024;
        while (cap < t->len + (size_t)n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

static int write_playlist(es_hls_t *h)
{
    size_t first = h->n_recs > h->window ? h->n_recs - h->window : 0;
    uint64_t disc_seq = h->disc_removed;
    for (size_t i = 0; i < first; i++) disc_seq += h->recs[i].disc;

    text_t t = {0};
    text_printf(&t, "#EXTM3U\n#EXT-X-VERSION:%d\n", h->fmp4 ? 7 : 3);
    text_printf(&t, "#EXT-X-TARGETDURATION:%" PRIu32 "\n", h->target_s);
    text_printf(&t, "#EXT-X-MEDIA-SEQUENCE:%" PRIu64 "\n",
                first < h->n_recs ? h->recs[first].seq : h->next_seq);
    text_printf(&t, "#EXT-X-DISCONTINUITY-SEQUENCE:%" PRIu64 "\n", disc_seq);
    if (!h->forced_cut) /* every segment starts with a key frame */
        text_printf(&t, "#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (size_t i = first; i < h->n_recs; i++) {
        const seg_rec_t *r = &h->recs[i];
        if (r->disc) text_printf(&t, "#EXT-X-DISCONTINUITY\n");
        if (h->fmp4 && (i == first || r->init_seq != h->recs[i - 1].init_seq))
            text_printf(&t, "#EXT-X-MAP:URI=\"%s/init-%" PRIu64 ".mp4\"\n", h->stream,
                        r->init_seq);
        char pdt[32];
        format_pdt(r->pdt_ms, pdt);
        int64_t ms = (r->dur_us + 500) / 1000;
        text_printf(&t, "#EXT-X-PROGRAM-DATE-TIME:%s\n#EXTINF:%" PRId64 ".%03d,\n%s/%" PRIu64
                    ".%s\n", pdt, ms / 1000, (int)(ms % 1000), h->stream, r->seq, seg_ext(h));
    }
    if (h->ended) text_printf(&t, "#EXT-X-ENDLIST\n");
    if (t.failed) {
        free(t.p);
        return ES_ENOMEM;
    }
    int rc = ensure_dir(h);
    if (rc == 0) rc = write_file(h, "index.m3u8", (const uint8_t *)t.p, t.len, true);
    else free(t.p);
    if (rc) {
        write_failed(h, "the playlist");
        return ES_EIO;
    }
    return 0;
}

/* Adds a published segment to the playlist, deleting those past the window and the extra few
 * (and fMP4 init sections nothing refers to any more). */
static int add_record(es_hls_t *h, const seg_rec_t *rec)
{
    size_t keep = (size_t)h->window + ES_HLS_KEEP_EXTRA;
    if (h->n_recs == h->cap_recs) {
        size_t cap = keep + 1;
        seg_rec_t *r = realloc(h->recs, cap * sizeof *r);
        if (!r) return ES_ENOMEM;
        h->recs = r;
        h->cap_recs = cap;
    }
    h->recs[h->n_recs++] = *rec;
    while (h->n_recs > keep) {
        seg_rec_t old = h->recs[0];
        memmove(h->recs, h->recs + 1, (h->n_recs - 1) * sizeof *h->recs);
        h->n_recs--;
        h->disc_removed += old.disc;
        char name[NAME_MAX_LEN];
        snprintf(name, sizeof name, "%" PRIu64 ".%s", old.seq, seg_ext(h));
        remove_file(h, name);
        if (h->fmp4 && old.init_seq != h->recs[0].init_seq) {
            snprintf(name, sizeof name, "init-%" PRIu64 ".mp4", old.init_seq);
            remove_file(h, name);
        }
    }
    return 0;
}

/* ---- Muxer ---- */

static void free_muxer(es_hls_t *h)
{
    es_tag_unref(h->pending);
    h->pending = NULL;
    if (!h->oc) return;
    if (h->oc->pb) {
        uint8_t *b = NULL;
        avio_close_dyn_buf(h->oc->pb, &b);
        av_free(b);
        h->oc->pb = NULL;
    }
    avformat_free_context(h->oc);
    h->oc = NULL;
}

static int set_extradata(AVCodecParameters *par, const uint8_t *data, size_t len)
{
    par->extradata = av_mallocz(len + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!par->extradata) return ES_ENOMEM;
    memcpy(par->extradata, data, len);
    par->extradata_size = (int)len;
    return 0;
}

/* The init section (fMP4) is retried before each segment until written. */
static int write_init(es_hls_t *h)
{
    if (!h->fmp4 || h->init_written) return 0;
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, "init-%" PRIu64 ".mp4", h->init_seq);
    int rc = ensure_dir(h);
    if (rc == 0) rc = write_file(h, name, h->init, h->init_len, false);
    if (rc) {
        write_failed(h, "the init section");
        return ES_EIO;
    }
    h->init_written = true;
    return 0;
}

/* Opens a period: a muxer for the tracks configured now, starting at media time start_us. */
static int open_period(es_hls_t *h, bool video, bool audio, int64_t start_us, int64_t wall_ms)
{
    es_log_ctx_t lc = lctx(h);
    AVFormatContext *oc = NULL;
    AVDictionary *opts = NULL;
    int rc = ES_ENOMEM;
    if (avformat_alloc_output_context2(&oc, NULL, h->fmp4 ? "mp4" : "mpegts", NULL) < 0 || !oc)
        return ES_ENOMEM;
    oc->flags &= ~AVFMT_FLAG_AUTO_BSF; /* packets are already in the muxer's form */
    h->vidx = h->aidx = -1;
    if (video) {
        AVStream *st = avformat_new_stream(oc, NULL);
        if (!st) goto fail;
        st->time_base = (AVRational){1, 1000};
        st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
        st->codecpar->codec_id = AV_CODEC_ID_H264;
        st->codecpar->width = (int)h->width;
        st->codecpar->height = (int)h->height;
        /* fMP4's avcC is the record itself (samples stay AVCC); MPEG-TS gets Annex B in band. */
        if (h->fmp4 && set_extradata(st->codecpar, h->avcc, h->avcc_len)) goto fail;
        h->vidx = st->index;
    }
    if (audio) {
        AVStream *st = avformat_new_stream(oc, NULL);
        if (!st) goto fail;
        st->time_base = (AVRational){1, (int)h->aac.sample_rate};
        st->codecpar->codec_type = AVMEDIA_TYPE_AUDIO;
        st->codecpar->codec_id = AV_CODEC_ID_AAC;
        st->codecpar->sample_rate = (int)h->aac.sample_rate;
        st->codecpar->frame_size = AAC_FRAME_SAMPLES;
        av_channel_layout_default(&st->codecpar->ch_layout, h->aac.channels ? h->aac.channels : 2);
        /* The AudioSpecificConfig: esds in fMP4; in MPEG-TS the muxer builds ADTS headers from
         * it for the raw frames. */
        if (set_extradata(st->codecpar, h->asc, h->asc_len)) goto fail;
        h->aidx = st->index;
    }
    if (h->fmp4) {
        /* One fragment per segment on request (frag_custom); the moov goes out with the header
         * (empty_moov) as the init section; frag_discont with no edit list keeps the stream's
         * own timestamps in tfdt, so tracks stay in sync and segments line up. */
        av_dict_set(&opts, "movflags",
                    "+frag_custom+empty_moov+default_base_moof+frag_discont", 0);
        av_dict_set(&opts, "use_editlist", "0", 0);
        av_dict_set(&opts, "video_track_timescale", "90000", 0);
        oc->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;
    }
    if (avio_open_dyn_buf(&oc->pb) < 0) goto fail;
    int err = avformat_write_header(oc, &opts);
    if (err < 0) {
        if (!(h->logged & LOG_MUX)) {
            ES_WARN("hls", &lc, "cannot start the %s muxer: %s", h->fmp4 ? "fMP4" : "MPEG-TS",
                    av_err2str(err));
            h->logged |= LOG_MUX;
        }
        rc = ES_EPROTO;
        goto fail;
    }
    av_dict_free(&opts);
    h->oc = oc;
    if (!h->seq_started) {
        h->next_seq = wall_ms > 0 ? (uint64_t)(wall_ms / 1000) : 0;
        h->seq_started = true;
    }
    if (h->fmp4) {
        uint8_t *b = NULL;
        int n = avio_close_dyn_buf(oc->pb, &b);
        oc->pb = NULL;
        free(h->init);
        h->init = n > 0 ? malloc((size_t)n) : NULL;
        if (h->init) memcpy(h->init, b, (size_t)n);
        av_free(b);
        if (!h->init) {
            free_muxer(h);
            return ES_ENOMEM;
        }
        h->init_len = (size_t)n;
        h->init_seq = h->next_seq;
        h->init_written = false;
        if (avio_open_dyn_buf(&oc->pb) < 0) {
            free_muxer(h);
            return ES_ENOMEM;
        }
    }
    h->anchor_media_us = start_us;
    h->anchor_wall_ms = wall_ms;
    h->seg_open = true;
    h->seg_has_media = false;
    h->seg_start_us = h->seg_end_us = h->video_end_us = start_us;
    h->need_key = false;
    h->have_video_dts = false;
    h->last_video_dur = 0;
    h->have_audio_clock = false;
    h->stats.video = video;
    h->stats.audio = audio;
    h->logged &= ~(unsigned)(LOG_MUX | LOG_TIMESTAMPS);
    if (h->fmp4) write_init(h); /* a failure is retried with the first segment */
    return 0;
fail:
    av_dict_free(&opts);
    if (oc) {
        if (oc->pb) {
            uint8_t *b = NULL;
            avio_close_dyn_buf(oc->pb, &b);
            av_free(b);
            oc->pb = NULL;
        }
        avformat_free_context(oc);
    }
    return rc;
}

static int mux_packet(es_hls_t *h, int idx, AVRational tb, int64_t dts, int64_t pts, int64_t dur,
                      const uint8_t *data, size_t len, bool key)
{
    AVPacket *pkt = h->pkt;
    av_packet_unref(pkt);
    pkt->data = (uint8_t *)data;
    pkt->size = (int)len;
    pkt->stream_index = idx;
    pkt->dts = dts;
    pkt->pts = pts;
    pkt->duration = dur;
    if (key) pkt->flags |= AV_PKT_FLAG_KEY;
    av_packet_rescale_ts(pkt, tb, h->oc->streams[idx]->time_base);
    /* Each MPEG-TS segment starts with PAT and PMT (the muxer would repeat them only every
     * 100 ms or at a video key frame, and an audio-only segment has none). */
    if (!h->fmp4 && !h->seg_has_media)
        av_opt_set(h->oc->priv_data, "mpegts_flags", "+resend_headers", 0);
    int err = av_write_frame(h->oc, pkt);
    pkt->data = NULL;
    pkt->size = 0;
    if (err < 0) {
        h->stats.dropped++;
        if (!(h->logged & LOG_MUX)) {
            es_log_ctx_t lc = lctx(h);
            ES_WARN("hls", &lc, "the muxer refused a packet: %s", av_err2str(err));
            h->logged |= LOG_MUX;
        }
        return ES_EPROTO;
    }
    h->seg_has_media = true;
    return 0;
}

/* ---- Segments ---- */

/* MPEG-TS continuity counters (ISO/IEC 13818-1 §2.4.3.3) run on across periods: each period's
 * muxer starts its counters at 0, and a demuxer that does not reset at #EXT-X-DISCONTINUITY
 * (FFmpeg's hls demuxer) would flag the packet before the jump as corrupt. Within a period the
 * muxer's counters are continuous already, so this only shifts them. */
static void continue_cc(es_hls_t *h, uint8_t *b, size_t n)
{
    if (!h->cc) {
        h->cc = malloc(8192);
        if (!h->cc) return;
        memset(h->cc, 0xff, 8192);
    }
    for (size_t o = 0; o + 188 <= n; o += 188) {
        uint8_t *p = b + o;
        if (p[0] != 0x47) continue;
        unsigned pid = (unsigned)(p[1] & 0x1f) << 8 | p[2];
        uint8_t next = h->cc[pid] == 0xff ? (uint8_t)(p[3] & 0x0f) : h->cc[pid];
        if (!(p[3] & 0x10)) { /* no payload: the counter repeats the previous packet's */
            if (h->cc[pid] != 0xff) p[3] = (uint8_t)((p[3] & 0xf0) | ((next - 1) & 0x0f));
            continue;
        }
        p[3] = (uint8_t)((p[3] & 0xf0) | next);
        h->cc[pid] = (uint8_t)((next + 1) & 0x0f);
    }
}

/* Publishes the segment in progress, which ends at media time end_us: flushes the muxer into the
 * buffer, writes the file, adds it to the playlist. A new buffer is opened for the next segment
 * when `reopen`. Returns 1 when published, 0 when there was nothing to publish, or an error. */
static int publish_segment(es_hls_t *h, int64_t end_us, bool reopen)
{
    if (!h->oc || !h->seg_open) return 0;
    int rc = 0;
    uint8_t *b = NULL;
    int n = 0;
    if (h->seg_has_media) {
        av_write_frame(h->oc, NULL); /* flush: pending PES packets, the fMP4 fragment */
        n = avio_close_dyn_buf(h->oc->pb, &b);
    } else {
        n = avio_close_dyn_buf(h->oc->pb, &b);
        n = 0;
    }
    h->oc->pb = NULL;
    h->seg_open = false;
    if (n > 0) {
        seg_rec_t rec = {
            .seq = h->next_seq,
            .dur_us = end_us - h->seg_start_us,
            .pdt_ms = h->anchor_wall_ms + (h->seg_start_us - h->anchor_media_us) / 1000,
            .init_seq = h->init_seq,
            .disc = h->disc_next,
        };
        if (rec.dur_us < 0) rec.dur_us = 0;
        if (!h->fmp4) continue_cc(h, b, (size_t)n);
        char name[NAME_MAX_LEN];
        snprintf(name, sizeof name, "%" PRIu64 ".%s", rec.seq, seg_ext(h));
        rc = ensure_dir(h);
        if (rc == 0) rc = write_init(h);
        else write_failed(h, "the segment directory");
        if (rc == 0) {
            rc = write_file(h, name, b, (size_t)n, false);
            if (rc) write_failed(h, "a segment");
        }
        if (rc == 0) {
            h->next_seq++;
            h->disc_next = false;
            uint32_t secs = (uint32_t)(((rec.dur_us + 500) / 1000 + 999) / 1000);
            if (secs > h->target_s) h->target_s = secs;
            rc = add_record(h, &rec);
            if (rc == 0) {
                h->stats.segments++;
                es_metrics.hls_segments++;
                h->stats.discontinuities += rec.disc;
                rc = write_playlist(h);
            }
            if (rc == 0) {
                write_succeeded(h);
                rc = 1;
            }
        } else {
            h->disc_next = true; /* the timeline has a hole where this segment was */
        }
    }
    av_free(b);
    if (reopen) {
        if (avio_open_dyn_buf(&h->oc->pb) < 0) {
            free_muxer(h);
            return ES_ENOMEM;
        }
        h->seg_open = true;
        h->seg_has_media = false;
        h->seg_bytes = 0;
        h->seg_start_us = h->seg_end_us = h->video_end_us = end_us;
    }
    return rc;
}

/* Annex B for MPEG-TS (ITU-T H.264 Annex B): 4-byte start codes, in-band access unit delimiters
 * dropped (the muxer puts its own first), SPS and PPS from the sequence header in front of an IDR
 * access unit that does not carry both. Returns the length in h->buf, or an error. */
static int to_annexb(es_hls_t *h, const uint8_t *au, size_t len, size_t *out_len)
{
    unsigned ls = h->h264.length_size;
    size_t off = 0, need = 0;
    const uint8_t *nal;
    size_t nal_len;
    bool idr = false, sps = false, pps = false;
    int r;
    while ((r = es_h264_avcc_next(au, len, ls, &off, &nal, &nal_len)) == 1) {
        if (nal_len == 0) continue;
        unsigned type = nal[0] & 0x1f;
        if (type == ES_H264_NAL_IDR) idr = true;
        if (type == ES_H264_NAL_SPS) sps = true;
        if (type == ES_H264_NAL_PPS) pps = true;
        need += 4 + nal_len;
    }
    if (r < 0) return ES_EPROTO;
    bool insert = idr && !(sps && pps);
    if (insert) need += 8 + h->h264.sps_len + h->h264.pps_len;
    if (need == 0) return ES_EPROTO;
    if (need > h->buf_cap) {
        size_t cap = need + need / 2;
        uint8_t *b = realloc(h->buf, cap);
        if (!b) return ES_ENOMEM;
        h->buf = b;
        h->buf_cap = cap;
    }
    static const uint8_t sc[4] = {0, 0, 0, 1};
    size_t o = 0;
    if (insert) {
        memcpy(h->buf + o, sc, 4);
        memcpy(h->buf + o + 4, h->h264.sps, h->h264.sps_len);
        o += 4 + h->h264.sps_len;
        memcpy(h->buf + o, sc, 4);
        memcpy(h->buf + o + 4, h->h264.pps, h->h264.pps_len);
        o += 4 + h->h264.pps_len;
    }
    off = 0;
    while (es_h264_avcc_next(au, len, ls, &off, &nal, &nal_len) == 1) {
        if (nal_len == 0 || (nal[0] & 0x1f) == ES_H264_NAL_AUD) continue;
        memcpy(h->buf + o, sc, 4);
        memcpy(h->buf + o + 4, nal, nal_len);
        o += 4 + nal_len;
    }
    if (o == 0) return ES_EPROTO;
    *out_len = o;
    return 0;
}

/* Writes the held-back video frame with its duration (ms). */
static int write_pending(es_hls_t *h, int64_t dur_ms)
{
    es_tag_t *t = h->pending;
    if (!t) return 0;
    h->pending = NULL;
    es_flv_video_t v;
    int rc = es_flv_video_parse(t->data, t->len, &v);
    if (rc == 0) {
        const uint8_t *data = v.payload;
        size_t len = v.payload_len;
        if (!h->fmp4) { /* fMP4 takes the AVCC as it is (validated in on_video) */
            rc = to_annexb(h, v.payload, v.payload_len, &len);
            data = h->buf;
        }
        if (rc == 0)
            rc = mux_packet(h, h->vidx, (AVRational){1, 1000}, h->pending_dts,
                            h->pending_dts + h->pending_cts, dur_ms, data, len, t->keyframe);
    }
    if (rc == 0) {
        int64_t end = (h->pending_dts + dur_ms) * 1000;
        if (end > h->seg_end_us) h->seg_end_us = end;
        if (end > h->video_end_us) h->video_end_us = end;
    } else {
        h->need_key = true;
        if (rc == ES_EPROTO) h->stats.dropped++;
    }
    es_tag_unref(t);
    return rc;
}

/* Closes the period: the held frame is written, the segment published, the muxer freed; the
 * next segment is a discontinuity if anything was published before. */
static int close_period(es_hls_t *h)
{
    if (!h->oc) return 0;
    int rc = 0;
    if (h->pending) {
        int64_t dur = h->last_video_dur > 0 ? h->last_video_dur : DEFAULT_FRAME_MS;
        rc = write_pending(h, dur);
        if (rc > 0) rc = 0;
    }
    int64_t end = h->vidx >= 0 && h->video_end_us > h->seg_start_us ? h->video_end_us
                                                                    : h->seg_end_us;
    int p = publish_segment(h, end, false);
    if (p != 0) rc = p;
    free_muxer(h);
    if (h->stats.segments > 0 || h->n_recs > 0) h->disc_next = true;
    h->have_audio_clock = false;
    h->have_video_dts = false;
    return rc;
}

/* ---- Media ---- */

static int64_t unwrap(es_hls_t *h, uint32_t ts)
{
    int64_t t = h->have_ts ? h->last_ts + (int32_t)(ts - (uint32_t)h->last_ts) : ts;
    h->have_ts = true;
    h->last_ts = t;
    return t;
}

static bool have_video_cfg(const es_hls_t *h) { return h->avcc != NULL; }
static bool have_audio_cfg(const es_hls_t *h) { return h->asc != NULL; }

static void drop_held(es_hls_t *h)
{
    for (size_t i = 0; i < h->n_held; i++) es_tag_unref(h->held[i]);
    h->n_held = 0;
}

static int on_video(es_hls_t *h, const es_tag_t *tag, int64_t dts, int32_t cts, int64_t wall_ms);

/* Combines the results of several steps: the first error, else the segments published. */
static int merge_rc(int a, int b)
{
    if (a < 0) return a;
    if (b < 0) return b;
    return a + b;
}

static int on_audio(es_hls_t *h, const es_flv_audio_t *a, int64_t ts, int64_t wall_ms)
{
    int rc = 0;
    if (!have_audio_cfg(h) || a->payload_len == 0) {
        h->stats.dropped++;
        return 0;
    }
    int64_t rate = h->aac.sample_rate;
    int64_t pos = ts * rate / 1000;
    if (h->oc && h->aidx >= 0 && h->have_audio_clock) {
        int64_t diff_ms = (pos - h->audio_pos) * 1000 / rate;
        if (diff_ms > JUMP_FWD_MS || diff_ms < -JUMP_BACK_MS) {
            rc = close_period(h);
        } else if (diff_ms > AUDIO_RESYNC_MS) {
            h->audio_pos = pos; /* a gap in the audio: follow it */
        } else if (diff_ms < -AUDIO_RESYNC_MS) {
            h->stats.dropped++; /* ahead of the publisher's clock: let it catch up */
            return rc;
        }
    }
    if (!h->oc) {
        if (have_video_cfg(h)) {
            h->stats.dropped++; /* a period with video starts at a key frame */
            return rc;
        }
        int o = open_period(h, false, true, ts * 1000, wall_ms);
        if (o < 0) return merge_rc(rc, o);
    }
    if (h->aidx < 0) {
        h->stats.dropped++;
        return rc;
    }
    if (!h->have_audio_clock) {
        h->audio_pos = pos;
        h->have_audio_clock = true;
    }
    int64_t t_us = h->audio_pos * 1000000 / rate;
    if (h->vidx < 0 && t_us - h->seg_start_us >= (int64_t)h->segment_ms * 1000)
        rc = merge_rc(rc, publish_segment(h, t_us, true));
    if (!h->oc) return rc;
    int m = mux_packet(h, h->aidx, (AVRational){1, (int)rate}, h->audio_pos, h->audio_pos,
                       AAC_FRAME_SAMPLES, a->payload, a->payload_len, true);
    h->audio_pos += AAC_FRAME_SAMPLES;
    if (m == 0) {
        int64_t end = h->audio_pos * 1000000 / rate;
        if (end > h->seg_end_us) h->seg_end_us = end;
    }
    return merge_rc(rc, m);
}

static int on_video(es_hls_t *h, const es_tag_t *tag, int64_t dts, int32_t cts, int64_t wall_ms)
{
    int rc = 0;
    if (h->oc && h->vidx >= 0 && h->have_video_dts) {
        int64_t d = dts - h->last_video_dts;
        if (d < 0 || d > JUMP_FWD_MS) {
            rc = close_period(h);
        } else if (d == 0) {
            /* Two frames at one decoding time: the muxer cannot take the second. */
            if (!(h->logged & LOG_TIMESTAMPS)) {
                es_log_ctx_t lc = lctx(h);
                ES_WARN("hls", &lc, "video frames with equal timestamps (%" PRId64 " ms); "
                        "dropped until the next key frame", dts);
                h->logged |= LOG_TIMESTAMPS;
            }
            h->stats.dropped++;
            h->need_key = true;
            return 0;
        }
    }
    if (!h->oc) {
        if (!tag->keyframe) {
            h->stats.dropped++;
            return rc;
        }
        int o = open_period(h, true, have_audio_cfg(h), dts * 1000, wall_ms);
        if (o < 0) return merge_rc(rc, o);
    }
    if (h->vidx < 0) {
        h->stats.dropped++;
        return rc;
    }
    /* A malformed access unit is refused now, not when its successor writes it. */
    es_flv_video_t v;
    size_t off = 0, nal_len;
    const uint8_t *nal;
    int r = es_flv_video_parse(tag->data, tag->len, &v);
    while (r == 0 &&
           (r = es_h264_avcc_next(v.payload, v.payload_len, h->h264.length_size, &off, &nal,
                                  &nal_len)) == 1) {
    }
    if (r < 0) {
        h->stats.dropped++;
        h->need_key = true;
        return merge_rc(rc, ES_EPROTO);
    }
    if (h->pending) {
        int64_t d = dts - h->pending_dts;
        h->last_video_dur = d;
        int w = write_pending(h, d);
        if (w < 0 && w != ES_EPROTO) return merge_rc(rc, w);
        if (w < 0) rc = merge_rc(rc, w);
    }
    h->have_video_dts = true;
    h->last_video_dts = dts;
    if (h->need_key && !tag->keyframe) {
        h->stats.dropped++;
        return rc;
    }
    h->need_key = false;
    if (tag->keyframe && h->seg_has_media &&
        dts * 1000 - h->seg_start_us >= (int64_t)h->segment_ms * 1000) {
        rc = merge_rc(rc, publish_segment(h, dts * 1000, true));
    } else if (h->seg_has_media && (dts * 1000 - h->seg_start_us >= (int64_t)h->max_segment_ms * 1000 ||
                                    h->seg_bytes >= h->max_segment_bytes)) {
        /* No key frame in sight: cut anyway, so a segment (and its memory) stays bounded. */
        if (!(h->logged & LOG_FORCED_CUT)) {
            es_log_ctx_t lc = lctx(h);
            ES_WARN("hls", &lc, "no key frame for %" PRId64 " ms (%zu bytes): segment cut at "
                    "hls.max_segment_ms/max_segment_bytes; players may show artifacts",
                    dts - h->seg_start_us / 1000, h->seg_bytes);
            h->logged |= LOG_FORCED_CUT;
        }
        h->forced_cut = true;
        rc = merge_rc(rc, publish_segment(h, dts * 1000, true));
        h->disc_next = true;
    }
    h->seg_bytes += tag->len;
    if (!h->oc) return rc;
    if (!h->seg_has_media && h->seg_start_us > dts * 1000) h->seg_start_us = dts * 1000;
    h->pending = es_tag_ref((es_tag_t *)tag);
    h->pending_dts = dts;
    h->pending_cts = cts;
    return rc;
}

/* Whether the track set is decided: both tracks configured, or one of them for longer than
 * ES_HLS_PROBE_MS. */
static bool settle(es_hls_t *h, uint64_t now_us, int64_t ts)
{
    if (h->settled) return true;
    bool v = have_video_cfg(h), a = have_audio_cfg(h);
    if (v && a) {
        h->probing = false;
        return h->settled = true;
    }
    if (!v && !a) return false;
    if (!h->probing) {
        h->probing = true;
        h->probe_start_us = now_us;
        h->probe_start_ms = ts;
    }
    if (now_us - h->probe_start_us >= (uint64_t)ES_HLS_PROBE_MS * 1000 ||
        ts - h->probe_start_ms >= ES_HLS_PROBE_MS || ts < h->probe_start_ms) {
        h->probing = false;
        return h->settled = true;
    }
    return false;
}

static int hold(es_hls_t *h, const es_tag_t *tag)
{
    if (tag->type != ES_TAG_VIDEO || !have_video_cfg(h) || (h->n_held == 0 && !tag->keyframe)) {
        h->stats.dropped++; /* audio alone is not worth holding: see include/estuary/hls.h */
        return 0;
    }
    if (h->n_held == h->cap_held) {
        size_t cap = h->cap_held ? h->cap_held * 2 : 64;
        es_tag_t **p = realloc(h->held, cap * sizeof *p);
        if (!p) return ES_ENOMEM;
        h->held = p;
        h->cap_held = cap;
    }
    h->held[h->n_held++] = es_tag_ref((es_tag_t *)tag);
    return 0;
}

static int media(es_hls_t *h, const es_tag_t *tag, int64_t ts, int64_t wall_ms)
{
    if (tag->type == ES_TAG_AUDIO) {
        es_flv_audio_t a;
        if (es_flv_audio_parse(tag->data, tag->len, &a) != 0) return ES_EPROTO;
        return on_audio(h, &a, ts, wall_ms);
    }
    es_flv_video_t v;
    if (es_flv_video_parse(tag->data, tag->len, &v) != 0) return ES_EPROTO;
    if (!have_video_cfg(h) || v.payload_len == 0) {
        h->stats.dropped++;
        return 0;
    }
    return on_video(h, tag, ts, v.cts_ms, wall_ms);
}

/* A sequence header differing from the one in use ends the period (and video held while the
 * track set is decided, when it is the video's). Returns 1 when it changed, 0 when it is the same,
 * or an error of close_period (changed all the same); ES_ENOMEM with nothing changed. */
static int set_config(es_hls_t *h, uint8_t **cur, size_t *cur_len, const uint8_t *p, size_t len,
                      bool video)
{
    if (*cur && *cur_len == len && memcmp(*cur, p, len) == 0) return 0;
    uint8_t *c = malloc(len ? len : 1);
    if (!c) return ES_ENOMEM;
    memcpy(c, p, len);
    int rc = close_period(h);
    if (video) drop_held(h);
    free(*cur);
    *cur = c;
    *cur_len = len;
    return rc < 0 ? rc : 1;
}

static int video_config(es_hls_t *h, const es_flv_video_t *v)
{
    es_h264_config_t cfg;
    int rc = es_h264_config_parse(v->payload, v->payload_len, &cfg);
    if (rc == 0 && cfg.length_size != 1 && cfg.length_size != 2 && cfg.length_size != 4)
        rc = ES_EPROTO;
    if (rc != 0) {
        if (!(h->logged & LOG_BAD_VIDEO_CFG)) {
            es_log_ctx_t lc = lctx(h);
            ES_WARN("hls", &lc, "bad AVC sequence header (%zu bytes): %s", v->payload_len,
                    es_strerror(rc));
            h->logged |= LOG_BAD_VIDEO_CFG;
        }
        return ES_EPROTO;
    }
    h->logged &= ~(unsigned)LOG_BAD_VIDEO_CFG;
    rc = set_config(h, &h->avcc, &h->avcc_len, v->payload, v->payload_len, true);
    if (rc == 0 || rc == ES_ENOMEM) return rc;
    h->h264 = cfg;
    es_h264_sps_t sps;
    if (es_h264_sps_parse(cfg.sps, cfg.sps_len, &sps) == 0) {
        h->width = sps.width;
        h->height = sps.height;
    } else {
        h->width = h->height = 0;
    }
    return rc < 0 ? rc : 0;
}

static int audio_config(es_hls_t *h, const es_flv_audio_t *a)
{
    es_aac_config_t cfg;
    int rc = es_aac_config_parse(a->payload, a->payload_len, &cfg);
    if (rc == 0 && cfg.sample_rate > 192000) rc = ES_EPROTO;
    if (rc != 0) {
        if (!(h->logged & LOG_BAD_AUDIO_CFG)) {
            es_log_ctx_t lc = lctx(h);
            ES_WARN("hls", &lc, "bad AAC sequence header (%zu bytes): %s", a->payload_len,
                    es_strerror(rc));
            h->logged |= LOG_BAD_AUDIO_CFG;
        }
        return ES_EPROTO;
    }
    h->logged &= ~(unsigned)LOG_BAD_AUDIO_CFG;
    rc = set_config(h, &h->asc, &h->asc_len, a->payload, a->payload_len, false);
    if (rc == 0 || rc == ES_ENOMEM) return rc;
    h->aac = cfg;
    return rc < 0 ? rc : 0;
}

int es_hls_handle_tag(es_hls_t *h, const es_tag_t *tag, uint64_t now_us, int64_t wall_ms)
{
    if (!h || !tag) return ES_EINVAL;
    if (tag->type != ES_TAG_AUDIO && tag->type != ES_TAG_VIDEO) return 0;
    es_log_ctx_t lc = lctx(h);
    int64_t ts = unwrap(h, tag->timestamp_ms);
    bool is_media = false;
    int rc = 0;
    if (tag->type == ES_TAG_VIDEO) {
        es_flv_video_t v;
        if (es_flv_video_parse(tag->data, tag->len, &v) != 0) {
            h->stats.dropped++;
            return ES_EPROTO;
        }
        if (v.codec != ES_FLV_VIDEO_AVC) {
            if (!(h->logged & LOG_VIDEO_CODEC)) {
                ES_WARN("hls", &lc, "video codec id %" PRIu32 " cannot go to HLS (H.264 only); "
                        "video left out", v.codec_id);
                h->logged |= LOG_VIDEO_CODEC;
            }
            return 0;
        }
        if (v.packet == ES_FLV_PACKET_SEQUENCE_HEADER) rc = video_config(h, &v);
        else if (v.packet == ES_FLV_PACKET_CODED_FRAME && v.frame != ES_FLV_FRAME_OTHER)
            is_media = true;
    } else {
        es_flv_audio_t a;
        if (es_flv_audio_parse(tag->data, tag->len, &a) != 0) {
            h->stats.dropped++;
            return ES_EPROTO;
        }
        if (a.codec != ES_FLV_AUDIO_AAC) {
            if (!(h->logged & LOG_AUDIO_CODEC)) {
                ES_WARN("hls", &lc, "audio codec id %" PRIu32 " cannot go to HLS (AAC only); "
                        "audio left out", a.codec_id);
                h->logged |= LOG_AUDIO_CODEC;
            }
            return 0;
        }
        if (a.config) rc = audio_config(h, &a);
        else is_media = true;
    }
    if (!is_media) return rc;
    if (h->ended) {
        h->ended = false; /* the stream came back: a discontinuity (close_period marked it) */
        if (h->n_recs > 0) h->disc_next = true;
    }
    if (!settle(h, now_us, ts)) return merge_rc(rc, hold(h, tag));
    if (h->n_held) {
        /* Replay what waited for the track set to be decided, then this tag. */
        for (size_t i = 0; i < h->n_held; i++) {
            es_tag_t *t = h->held[i];
            int64_t hts = h->last_ts + (int32_t)(t->timestamp_ms - (uint32_t)h->last_ts);
            rc = merge_rc(rc, media(h, t, hts, wall_ms - (ts - hts)));
        }
        drop_held(h);
    }
    return merge_rc(rc, media(h, tag, ts, wall_ms));
}

int es_hls_discontinuity(es_hls_t *h)
{
    if (!h) return ES_EINVAL;
    int rc = close_period(h);
    drop_held(h);
    free(h->avcc);
    h->avcc = NULL;
    h->avcc_len = 0;
    free(h->asc);
    h->asc = NULL;
    h->asc_len = 0;
    h->settled = false;
    h->probing = false;
    h->have_ts = false;
    if (h->n_recs > 0) h->disc_next = true;
    return rc;
}

int es_hls_end(es_hls_t *h)
{
    if (!h) return ES_EINVAL;
    int rc = close_period(h);
    drop_held(h);
    h->settled = false;
    h->probing = false;
    h->ended = true;
    if (h->n_recs > 0) {
        int w = write_playlist(h);
        if (w < 0) rc = merge_rc(rc, w);
    }
    return rc;
}

/* ---- Lifecycle ---- */

int es_hls_new(const es_hls_config_t *cfg, const char *app, const char *stream, es_hls_t **out)
{
    if (!cfg || !app || !stream || !out || !cfg->directory || !cfg->directory[0])
        return ES_EINVAL;
    if (!es_registry_valid_name(app, ES_APP_NAME_MAX) ||
        !es_registry_valid_name(stream, ES_STREAM_NAME_MAX))
        return ES_EINVAL;
    es_hls_t *h = calloc(1, sizeof *h);
    if (!h) return ES_ENOMEM;
    size_t rl = strlen(cfg->directory);
    while (rl > 1 && cfg->directory[rl - 1] == '/') rl--;
    h->root = dup_printf("%.*s", (int)rl, cfg->directory);
    h->app_dir = dup_printf("%.*s/%s", (int)rl, cfg->directory, app);
    h->dir = dup_printf("%.*s/%s/%s", (int)rl, cfg->directory, app, stream);
    h->stream = dup_printf("%s", stream);
    h->key = dup_printf("%s/%s", app, stream);
    h->pkt = av_packet_alloc();
    if (!h->root || !h->app_dir || !h->dir || !h->stream || !h->key || !h->pkt) {
        es_hls_free(h);
        return ES_ENOMEM;
    }
    h->segment_ms = cfg->segment_ms ? cfg->segment_ms : ES_HLS_SEGMENT_MS_DEFAULT;
    h->window = cfg->window ? cfg->window : ES_HLS_WINDOW_DEFAULT;
    h->fmp4 = cfg->fmp4;
    h->max_segment_ms = cfg->max_segment_ms ? cfg->max_segment_ms : 5 * h->segment_ms;
    h->max_segment_bytes = cfg->max_segment_bytes ? cfg->max_segment_bytes : 32u << 20;
    h->io = cfg->io;
    h->target_s = (h->segment_ms + 999) / 1000;
    h->vidx = h->aidx = -1;
    *out = h;
    return 0;
}

void es_hls_free(es_hls_t *h)
{
    if (!h) return;
    drop_held(h);
    free(h->held);
    free_muxer(h);
    av_packet_free(&h->pkt);
    free(h->init);
    free(h->avcc);
    free(h->asc);
    free(h->recs);
    free(h->buf);
    free(h->cc);
    free(h->root);
    free(h->app_dir);
    free(h->dir);
    free(h->stream);
    free(h->key);
    free(h);
}

const char *es_hls_dir(const es_hls_t *h) { return h ? h->dir : NULL; }

es_hls_stats_t es_hls_stats(const es_hls_t *h)
{
    es_hls_stats_t s = h->stats;
    size_t first = h->n_recs > h->window ? h->n_recs - h->window : 0;
    s.media_sequence = first < h->n_recs ? h->recs[first].seq : h->next_seq;
    s.target_duration = h->target_s;
    return s;
}

int es_hls_cleanup(const char *root, const char *app, const char *stream)
{
    return es_hls_cleanup_io(NULL, root, app, stream);
}

int es_hls_cleanup_io(const es_hls_io_t *io, const char *root, const char *app,
                      const char *stream)
{
    if (!root || !root[0] || !es_registry_valid_name(app, ES_APP_NAME_MAX) ||
        !es_registry_valid_name(stream, ES_STREAM_NAME_MAX))
        return ES_EINVAL;
    if (strlen(root) + 2 + ES_APP_NAME_MAX + ES_STREAM_NAME_MAX >= 4096) return ES_EINVAL;
    char *dir = dup_printf("%s/%s/%s", root, app, stream);
    char *app_dir = dup_printf("%s/%s", root, app);
    if (!dir || !app_dir) {
        free(dir);
        free(app_dir);
        return ES_ENOMEM;
    }
    return submit(io, ES_HLS_JOB_CLEANUP, dir, app_dir, NULL, 0);
}

/* ---- Requests ---- */

int es_hls_request_path(const char *root, const char *app, const char *name, char *out,
                        size_t cap)
{
    if (!root || !app || !name || !out || !root[0]) return ES_EINVAL;
    if (!es_registry_valid_name(app, ES_APP_NAME_MAX)) return ES_EINVAL;
    char stream[ES_STREAM_NAME_MAX + 1];
    const char *slash = strchr(name, '/');
    const char *file;
    int kind;
    if (!slash) {
        size_t n = strlen(name);
        if (n <= 5 || strcmp(name + n - 5, ".m3u8") != 0 || n - 5 > ES_STREAM_NAME_MAX)
            return ES_EINVAL;
        memcpy(stream, name, n - 5);
        stream[n - 5] = '\0';
        file = "index.m3u8";
        kind = ES_HLS_FILE_PLAYLIST;
    } else {
        size_t n = (size_t)(slash - name);
        if (n == 0 || n > ES_STREAM_NAME_MAX) return ES_EINVAL;
        memcpy(stream, name, n);
        stream[n] = '\0';
        file = slash + 1;
        if (strchr(file, '/')) return ES_EINVAL;
        kind = own_file_kind(file, false);
        if (kind == 0 || kind == ES_HLS_FILE_PLAYLIST) return ES_EINVAL;
    }
    if (!es_registry_valid_name(stream, ES_STREAM_NAME_MAX)) return ES_EINVAL;
    int n = snprintf(out, cap, "%s/%s/%s/%s", root, app, stream, file);
    if (n < 0 || (size_t)n >= cap) {
        if (cap) out[0] = '\0';
        return ES_E2BIG;
    }
    return kind;
}

const char *es_hls_content_type(int file)
{
    switch (file) {
    case ES_HLS_FILE_PLAYLIST: return "application/vnd.apple.mpegurl";
    case ES_HLS_FILE_TS: return "video/mp2t";
    case ES_HLS_FILE_M4S: return "video/iso.segment";
    case ES_HLS_FILE_INIT: return "video/mp4";
    default: return "application/octet-stream";
    }
}
