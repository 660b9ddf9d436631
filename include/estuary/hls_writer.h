/* The HLS file writer (src/app/hls_writer.c): runs the segmenter's file jobs
 * (include/estuary/hls.h, es_hls_job_t) on libuv's thread pool, one batch at a time and in the
 * order submitted, so that the event loop never waits for the disk and a playlist is never
 * written before the segment it lists. Failures are logged from the loop thread
 * (rate-limited). A disk that stops keeping up costs memory only up to ES_HLS_WRITER_MAX_BYTES
 * of queued bytes; past it new writes are dropped and counted. */
#ifndef ESTUARY_HLS_WRITER_H
#define ESTUARY_HLS_WRITER_H

#include "estuary/hls.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ES_HLS_WRITER_MAX_BYTES (256u << 20)

typedef struct es_hls_writer es_hls_writer_t;

/* es_hls_writer_new: a writer on `loop`. NULL when out of memory. */
es_hls_writer_t *es_hls_writer_new(uv_loop_t *loop);

/* es_hls_writer_io: the es_hls_io_t to give segmenters. Borrowed from w. */
const es_hls_io_t *es_hls_writer_io(es_hls_writer_t *w);

/* es_hls_writer_free: after the loop has run dry: runs what is still queued at once (shutdown
 * removes the streams' folders), then frees. NULL-safe. */
void es_hls_writer_free(es_hls_writer_t *w);

/* Counters: jobs done, failed, and writes dropped because the queue was full. */
typedef struct es_hls_writer_stats {
    uint64_t done, failed, dropped;
    size_t queued_bytes;
} es_hls_writer_stats_t;
es_hls_writer_stats_t es_hls_writer_stats(const es_hls_writer_t *w);

#endif
