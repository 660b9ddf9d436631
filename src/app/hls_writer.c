/* HLS file jobs on libuv's thread pool, in order (include/estuary/hls_writer.h). The queue and
 * the counters belong to the loop thread; a worker only ever holds the batch it was given. */
#include "estuary/hls_writer.h"

#include "estuary/error.h"
#include "estuary/log.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct es_hls_writer {
    uv_loop_t *loop;
    es_hls_io_t io;
    es_hls_job_t *head, *tail;   /* waiting */
    es_hls_job_t *batch;         /* being run by a worker */
    uv_work_t work;
    bool busy;
    es_hls_writer_stats_t stats;
};

static void start(es_hls_writer_t *w);

static void run_batch(uv_work_t *req)
{
    es_hls_writer_t *w = req->data;
    for (es_hls_job_t *j = w->batch; j; j = j->next) es_hls_job_run(j);
}

static void batch_done(uv_work_t *req, int status)
{
    es_hls_writer_t *w = req->data;
    (void)status;
    es_hls_job_t *j = w->batch, *next;
    w->batch = NULL;
    w->busy = false;
    for (; j; j = next) {
        next = j->next;
        w->stats.queued_bytes -= j->len;
        if (j->err && !(j->kind == ES_HLS_JOB_CLEANUP && j->err == ES_ENOENT)) {
            w->stats.failed++;
            ES_WARN("hls", NULL, "cannot %s %s: %s", j->kind == ES_HLS_JOB_WRITE ? "write"
                    : j->kind == ES_HLS_JOB_REMOVE ? "remove"
                    : j->kind == ES_HLS_JOB_PREPARE ? "make the folder" : "remove the folder", j->path,
                    strerror(j->sys_errno));
        } else {
            w->stats.done++;
        }
        es_hls_job_free(j);
    }
    if (w->head) start(w);
}

static void start(es_hls_writer_t *w)
{
    if (w->busy || !w->head) return;
    w->batch = w->head;
    w->head = w->tail = NULL;
    w->busy = true;
    w->work.data = w;
    if (uv_queue_work(w->loop, &w->work, run_batch, batch_done) != 0) {
        run_batch(&w->work); /* the pool refused: do it here rather than lose it */
        batch_done(&w->work, 0);
    }
}

static int submit(void *user, es_hls_job_t *j)
{
    es_hls_writer_t *w = user;
    if (j->kind == ES_HLS_JOB_WRITE && w->stats.queued_bytes + j->len > ES_HLS_WRITER_MAX_BYTES) {
        w->stats.dropped++;
        ES_WARN("hls", NULL, "the disk is not keeping up (%zu bytes queued): %s dropped",
                w->stats.queued_bytes, j->path);
        es_hls_job_free(j);
        return ES_EBUSY;
    }
    j->next = NULL;
    w->stats.queued_bytes += j->len;
    if (w->tail) w->tail->next = j;
    else w->head = j;
    w->tail = j;
    start(w);
    return 0;
}

es_hls_writer_t *es_hls_writer_new(uv_loop_t *loop)
{
    es_hls_writer_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->loop = loop;
    w->io = (es_hls_io_t){.submit = submit, .user = w};
    return w;
}

const es_hls_io_t *es_hls_writer_io(es_hls_writer_t *w) { return w ? &w->io : NULL; }

es_hls_writer_stats_t es_hls_writer_stats(const es_hls_writer_t *w) { return w->stats; }

void es_hls_writer_free(es_hls_writer_t *w)
{
    if (!w) return;
    /* The loop ran dry, so no batch is out; what is left runs here. */
    es_hls_job_t *j = w->head, *next;
    for (; j; j = next) {
        next = j->next;
        es_hls_job_run(j);
        es_hls_job_free(j);
    }
    free(w);
}
