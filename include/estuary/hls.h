/* HLS output for one stream (RFC 8216): FLV tags in (AVC sequence header and AVCC frames, AAC
 * AudioSpecificConfig and raw AAC frames, as the frame hub hands them out), MPEG-TS segments
 * (default) or fragmented MP4 / CMAF segments (RFC 8216 §3.3) and a sliding-window media
 * playlist out, written as files into one directory per stream: <root>/<app>/<stream>/.
 *
 * The segmenter never reads a clock: each call is given the monotonic time (for the short wait
 * that decides whether a stream has video) and the wall-clock time (for
 * #EXT-X-PROGRAM-DATE-TIME). It does write files, synchronously, about one segment per
 * segment_ms plus the playlist; segments and playlists are written under a temporary name and
 * renamed into place, so an HTTP reader never sees a partial file. One loop, one thread.
 *
 * Files in the stream's directory:
 *   index.m3u8          the media playlist (§4.3.3), rewritten after every segment
 *   <n>.ts / <n>.m4s    segment with Media Sequence Number n (§3); the first n of a segmenter
 *                       is the wall clock in seconds, so a segmenter re-created for the same
 *                       stream never reuses a name that a client or a cache may still hold
 *   init-<n>.mp4        fMP4 only: the initialization section (§4.3.2.5, #EXT-X-MAP) of the
 *                       segments from n on (a new one after each discontinuity)
 *   *.tmp               being written (never served)
 *
 * URIs in the playlist are relative to the URL the HTTP layer serves it at,
 * /{app}/{stream}.m3u8: a segment is listed as "{stream}/<n>.ts", i.e. /{app}/{stream}/<n>.ts.
 * es_hls_request_path maps such request names back to files.
 *
 * Segmentation: a segment starts at a video key frame (IDR) and is cut at the first key frame
 * at or after segment_ms of video; audio-only streams are cut at the first audio frame at or
 * after segment_ms. Segment durations are measured on the stream's own timestamps. MPEG-TS
 * carries H.264 in Annex B (SPS and PPS from the sequence header in front of every IDR that
 * lacks them in band, an access unit delimiter from the muxer) and AAC in ADTS; fMP4 carries
 * AVCC and raw AAC with the stream's timestamps in tfdt. Audio timestamps follow the sample
 * count (1024 per frame) and resynchronise to the tag timestamps only past 100 ms of drift.
 *
 * Discontinuities (§4.3.2.3, #EXT-X-DISCONTINUITY): es_hls_discontinuity (the publisher
 * restarted), a sequence header that differs from the one in use, a track appearing, video
 * timestamps going backwards or either track jumping forward more than 10 s, a segment lost to a
 * failed write, and media after es_hls_end. The segment in progress is closed there and the next
 * one is flagged. */
#ifndef ESTUARY_HLS_H
#define ESTUARY_HLS_H

#include "estuary/frame_hub.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    ES_HLS_SEGMENT_MS_DEFAULT = 2000, /* hls.segment_ms */
    ES_HLS_WINDOW_DEFAULT = 6,        /* hls.window */
    ES_HLS_KEEP_EXTRA = 2,            /* segments kept on disk past the window, for clients
                                         that fetched the previous playlist late */
    ES_HLS_PROBE_MS = 1000,           /* with one track configured, how long to wait for the
                                         other before starting without it */
};

/* Segmenter settings (config: hls.directory, hls.segment_ms, hls.window; fmp4 for hls.fmp4). */
/* File work the segmenter hands out: written or removed in the order submitted, by whoever
 * runs es_hls_job_run (a worker thread: src/app/hls_writer.c), so that the event loop never
 * waits for the disk. A segment is always submitted before the playlist that lists it. */
typedef enum {
    ES_HLS_JOB_WRITE = 0, /* path.tmp written and renamed to path; the folder made if missing */
    ES_HLS_JOB_REMOVE,    /* path unlinked */
    ES_HLS_JOB_CLEANUP,   /* the stream's folder path and its files removed, then parent if empty */
    ES_HLS_JOB_PREPARE,   /* the stream's folder path made, an earlier segmenter's files removed */
} es_hls_job_kind_t;

typedef struct es_hls_job {
    es_hls_job_kind_t kind;
    char *path;          /* WRITE, REMOVE: the file; CLEANUP: the stream's directory. Owned. */
    char *parent;        /* CLEANUP: <root>/<app>, removed too when left empty. Owned. */
    uint8_t *data;       /* WRITE: the bytes (owned), written to path.tmp, then renamed */
    size_t len;
    int err;             /* set by es_hls_job_run: 0, ES_ENOENT (CLEANUP of nothing), ES_EIO */
    int sys_errno;       /* errno of a failure */
    struct es_hls_job *next; /* for the queue of whoever runs jobs */
} es_hls_job_t;

/* es_hls_job_run: does the job's file work (open/write/rename, unlink, or remove the directory
 * and its files). Touches nothing but the file system and the job: safe on any thread. */
void es_hls_job_run(es_hls_job_t *job);

/* es_hls_job_free: NULL-safe. */
void es_hls_job_free(es_hls_job_t *job);

/* Where jobs go: submit takes ownership of the job (also when it refuses it) and returns 0,
 * or ES_EBUSY when it dropped it (a disk not keeping up): the segmenter then treats the write as
 * failed (a segment is left out of the playlist, with a discontinuity; an init section is tried
 * again). Failures of jobs run later are the io's to report. */
typedef struct es_hls_io {
    int (*submit)(void *user, es_hls_job_t *job);
    void *user;
} es_hls_io_t;

typedef struct es_hls_config {
    const char *directory; /* root directory; the stream's files go to <directory>/<app>/<stream>
                              (created when missing, with its parents). Copied. */
    uint32_t segment_ms;   /* target segment duration, ms; 0: ES_HLS_SEGMENT_MS_DEFAULT */
    uint32_t window;       /* segments listed in the live playlist; 0: ES_HLS_WINDOW_DEFAULT */
    bool fmp4;             /* fragmented MP4 (CMAF) segments instead of MPEG-TS */
    uint32_t max_segment_ms;   /* a segment is cut here even without a key frame (the next is
                                  marked #EXT-X-DISCONTINUITY); 0: 5 * segment_ms */
    uint32_t max_segment_bytes; /* ... or when its media reach this size; 0: 32 MiB */
    const es_hls_io_t *io; /* file work; NULL: done at once on the calling thread (then write
                              errors are counted in the stats) */
} es_hls_config_t;

typedef struct es_hls es_hls_t;

/* es_hls_new: a segmenter for stream `stream` of app `app` (both must pass
 * es_registry_valid_name: 1..64 / 1..128 bytes of letters, digits, '_', '-', '.', not starting
 * with '.'), writing into <cfg->directory>/<app>/<stream>. Touches no file yet: the directory is
 * made (and files of an earlier segmenter for the same stream are removed) when the first
 * segment is written. Returns 0 with *out set; ES_EINVAL for a NULL argument, an empty
 * directory or a bad name; ES_ENOMEM. Free with es_hls_free. */
int es_hls_new(const es_hls_config_t *cfg, const char *app, const char *stream, es_hls_t **out);

/* es_hls_free: NULL-safe. Drops the segment in progress (never published) and every reference
 * held; the files on disk stay (es_hls_end first to mark the playlist ended, es_hls_cleanup
 * later to remove them). */
void es_hls_free(es_hls_t *hls);

/* es_hls_handle_tag: one FLV tag of the stream, in publication order. `tag` is borrowed (the
 * segmenter takes its own reference when it keeps it). `now_us` is monotonic time in µs;
 * `wall_ms` the wall clock in ms since the Unix epoch, used for #EXT-X-PROGRAM-DATE-TIME
 * (§4.3.2.6): each segment's date is the wall clock at the first media of its run of
 * continuous timestamps plus the media time since.
 * Video other than H.264, audio other than AAC, data tags and AVC end-of-sequence are ignored
 * (the first unsupported codec is logged once). Media arriving before the sequence header of its
 * track, and video before the first key frame, is dropped.
 * Returns the number of segments published by this call (0 or 1); ES_EIO when writing a segment
 * or the playlist failed (logged once until a write succeeds again; the segment is lost, the
 * segmenter goes on and the next segment retries, flagged as a discontinuity); ES_EPROTO for a
 * malformed tag or sequence header, or media the muxer refused (dropped; video resumes at the
 * next key frame); ES_ENOMEM; ES_EINVAL for NULL arguments. */
int es_hls_handle_tag(es_hls_t *hls, const es_tag_t *tag, uint64_t now_us, int64_t wall_ms);

/* es_hls_discontinuity: the publisher restarted (a new source for the same stream): the segment
 * in progress is published, the sequence headers are forgotten (the new source sends its own)
 * and the next segment is preceded by #EXT-X-DISCONTINUITY (§4.3.2.3). Returns the segments
 * published (0 or 1) or an error as es_hls_handle_tag. */
int es_hls_discontinuity(es_hls_t *hls);

/* es_hls_end: the stream ended: the segment in progress is published and the playlist is
 * rewritten with #EXT-X-ENDLIST (§4.3.3.4), all segments of the window kept. Media handed in
 * afterwards restarts the playlist after a discontinuity. Returns the segments published
 * (0 or 1); ES_EIO when a write failed; ES_EINVAL for NULL. */
int es_hls_end(es_hls_t *hls);

/* es_hls_dir: the stream's directory, "<root>/<app>/<stream>"; borrowed from hls. */
const char *es_hls_dir(const es_hls_t *hls);

/* Counters and state, for the API and tests. */
typedef struct es_hls_stats {
    uint64_t segments;        /* segments published */
    uint64_t media_sequence;  /* Media Sequence Number of the first listed segment (§4.3.3.2) */
    uint64_t write_errors;    /* failed segment, init section or playlist writes */
    uint64_t dropped;         /* media tags dropped (no config yet, waiting for a key frame,
                                 malformed, refused by the muxer) */
    uint32_t discontinuities; /* segments flagged #EXT-X-DISCONTINUITY */
    uint32_t target_duration; /* #EXT-X-TARGETDURATION, s */
    bool failing;             /* the last write failed */
    bool video, audio;        /* tracks of the segments being made now */
} es_hls_stats_t;

/* es_hls_stats: a copy of the counters. */
es_hls_stats_t es_hls_stats(const es_hls_t *hls);

/* es_hls_cleanup: removes the directory <root>/<app>/<stream> with every file in it, then
 * <root>/<app> if that is left empty; the integrator calls it a while after the stream went
 * away (after es_hls_free, or with the segmenter still alive: it recreates the directory at its
 * next segment). Returns 0; ES_ENOENT when the directory does not exist; ES_EINVAL for a bad
 * name; ES_EIO when something could not be removed (errno says why). */
int es_hls_cleanup(const char *root, const char *app, const char *stream);

/* es_hls_cleanup_io: es_hls_cleanup as a job submitted to io (in order after the stream's last
 * writes), or at once when io is NULL. Returns 0, ES_EINVAL for a bad name, ES_ENOMEM, or (no
 * io) es_hls_cleanup's result. */
int es_hls_cleanup_io(const es_hls_io_t *io, const char *root, const char *app,
                      const char *stream);

/* What a request name refers to. */
typedef enum es_hls_file {
    ES_HLS_FILE_PLAYLIST = 1, /* application/vnd.apple.mpegurl (RFC 8216 §4), not cacheable */
    ES_HLS_FILE_TS,           /* video/mp2t */
    ES_HLS_FILE_M4S,          /* video/iso.segment */
    ES_HLS_FILE_INIT,         /* video/mp4 */
} es_hls_file_t;

/* es_hls_request_path: the file behind a request for `name` under app `app`, where name is the
 * request path after "/{app}/": "{stream}.m3u8" (the playlist, <root>/<app>/<stream>/index.m3u8)
 * or "{stream}/{file}" with {file} one of "<digits>.ts", "<digits>.m4s", "init-<digits>.mp4"
 * (<root>/<app>/<stream>/<file>). Nothing else is accepted, so a request cannot leave the
 * directory: no "..", no absolute path, no other separator, no hidden or temporary file. The file
 * may not exist (the caller answers 404). Writes the NUL-terminated path into out (cap bytes).
 * Returns the es_hls_file_t (> 0); ES_EINVAL for a NULL argument or a name that is not of those
 * forms (bad app or stream name included); ES_E2BIG when cap is too small. */
int es_hls_request_path(const char *root, const char *app, const char *name, char *out,
                        size_t cap);

/* es_hls_content_type: the Content-Type for an es_hls_file_t, static storage;
 * "application/octet-stream" for anything else. */
const char *es_hls_content_type(int file);

#endif
