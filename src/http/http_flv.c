/* HTTP-FLV players (src/http/http_flv.h): the FLV file format (Adobe FLV spec 10.1, annex E)
 * over HTTP, fed from the stream's frame hub like an RTMP player. */
#include "http_flv.h"

#include "estuary/admission.h"
#include "estuary/clock.h"
#include "estuary/error.h"
#include "estuary/flv.h"
#include "estuary/frame_hub.h"
#include "estuary/hooks.h"
#include "estuary/live.h"
#include "estuary/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct es_http_flv {
    es_server_t *srv;
    char app[ES_APP_NAME_MAX + 1], name[ES_STREAM_NAME_MAX + 1];
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    char conn_id[24], remote[64];
    es_frame_sub_t *sub;
    es_live_clock_t clock;
    uint8_t head[13 + 11];   /* FLV header + PreviousTagSize0, or a tag header */
    size_t head_len, head_off;
    es_tag_t *tag;           /* tag being written, with its trailing PreviousTagSize */
    size_t tag_off;
    uint8_t tail[4];
    size_t tail_off;
    uint64_t started_us, bytes, tags;
};

bool es_http_flv_path(const char *path, char *app, char *stream)
{
    if (!path || path[0] != '/') return false;
    const char *slash = strchr(path + 1, '/');
    if (!slash) return false;
    size_t al = (size_t)(slash - path - 1);
    const char *s = slash + 1;
    size_t sl = strlen(s);
    if (sl <= 4 || strcmp(s + sl - 4, ".flv") != 0 || strchr(s, '/')) return false;
    sl -= 4;
    if (!al || al > ES_APP_NAME_MAX || sl > ES_STREAM_NAME_MAX) return false;
    memcpy(app, path + 1, al);
    app[al] = '\0';
    memcpy(stream, s, sl);
    stream[sl] = '\0';
    return es_registry_valid_name(app, ES_APP_NAME_MAX) &&
           es_registry_valid_name(stream, ES_STREAM_NAME_MAX);
}

es_http_flv_t *es_http_flv_open(es_server_t *srv, const char *app, const char *stream,
                                const char *token, const char *conn_id, const char *remote,
                                void (*wake)(void *user), void *user, int *err, char *reason,
                                size_t reason_len)
{
    const es_config_t *cfg = srv->cfg;
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", app, stream);
    es_log_ctx_t lc = {.peer = conn_id, .remote = remote, .stream = key};
    es_admit_request_t areq = {.app = app, .stream = stream, .role = ES_ADMIT_PLAY,
                               .protocol = ES_PROTO_HTTP_FLV, .token = token,
                               .now_us = es_clock_now_us()};
    es_admit_decision_t d;
    if ((*err = es_admit_now(srv, &areq, remote, &d)) != 0) {
        snprintf(reason, reason_len, "%s", d.reason);
        es_admit_log_refusal(ES_PROTO_HTTP_FLV, ES_ADMIT_PLAY, app, stream, remote, conn_id, *err,
                             d.reason);
        return NULL;
    }
    es_http_flv_t *f = calloc(1, sizeof *f);
    es_stream_t *st = NULL;
    uint64_t now = es_clock_now_us();
    es_frame_hub_limits_t lim = es_live_hub_limits(cfg);
    if (!f || es_live_open(srv->registry, app, stream, now, &st) != 0 || !es_live_frames(st, &lim) ||
        !(f->sub = es_frame_hub_subscribe(st->frames, wake, user, now))) {
        if (st) es_live_release(srv->registry, st);
        free(f);
        *err = ES_ENOMEM;
        snprintf(reason, reason_len, "out of memory");
        return NULL;
    }
    es_server_session_open(srv, remote);
    f->srv = srv;
    snprintf(f->app, sizeof f->app, "%s", app);
    snprintf(f->name, sizeof f->name, "%s", stream);
    snprintf(f->key, sizeof f->key, "%s", key);
    snprintf(f->conn_id, sizeof f->conn_id, "%s", conn_id);
    snprintf(f->remote, sizeof f->remote, "%s", remote);
    f->started_us = now;
    es_flv_write_header(f->head, true, true);
    f->head_len = 13;
    ES_INFO("flv", &lc, "HTTP-FLV play started%s", st->source == ES_SOURCE_NONE
            ? " (not published yet: waiting for a publisher)" : "");
    return f;
}

int es_http_flv_read(es_http_flv_t *f, uint8_t *out, size_t cap)
{
    size_t n = 0;
    uint64_t now = es_clock_now_us();
    while (n < cap) {
        if (f->head_off < f->head_len) {
            size_t k = f->head_len - f->head_off;
            if (k > cap - n) k = cap - n;
            memcpy(out + n, f->head + f->head_off, k);
            f->head_off += k;
            n += k;
            continue;
        }
        if (f->tag && f->tag_off < f->tag->len) {
            size_t k = f->tag->len - f->tag_off;
            if (k > cap - n) k = cap - n;
            memcpy(out + n, f->tag->data + f->tag_off, k);
            f->tag_off += k;
            n += k;
            continue;
        }
        if (f->tag && f->tail_off < 4) {
            size_t k = 4 - f->tail_off;
            if (k > cap - n) k = cap - n;
            memcpy(out + n, f->tail + f->tail_off, k);
            f->tail_off += k;
            n += k;
            continue;
        }
        if (f->tag) {
            es_tag_unref(f->tag);
            f->tag = NULL;
        }
        es_tag_t *t = es_frame_sub_pop(f->sub, now);
        if (!t) break;
        uint32_t ts = es_live_clock_map(&f->clock, t->timestamp_ms);
        es_flv_write_tag_header(f->head, t->type, ts, t->len);
        f->head_len = 11;
        f->head_off = 0;
        f->tag = t;
        f->tag_off = 0;
        uint32_t prev = (uint32_t)(11 + t->len);
        f->tail[0] = (uint8_t)(prev >> 24);
        f->tail[1] = (uint8_t)(prev >> 16);
        f->tail[2] = (uint8_t)(prev >> 8);
        f->tail[3] = (uint8_t)prev;
        f->tail_off = 0;
        f->tags++;
    }
    f->bytes += n;
    if (!n && es_frame_sub_stalled(f->sub)) return ES_ETIMEDOUT;
    return (int)n;
}

bool es_http_flv_stalled(const es_http_flv_t *f) { return es_frame_sub_stalled(f->sub); }

bool es_http_flv_waiting(const es_http_flv_t *f)
{
    const es_stream_t *st = es_registry_find(f->srv->registry, f->app, f->name);
    return !f->tags && (!st || st->source == ES_SOURCE_NONE);
}

void es_http_flv_close(es_http_flv_t *f, const char *why)
{
    if (!f) return;
    es_log_ctx_t lc = {.peer = f->conn_id, .remote = f->remote, .stream = f->key};
    es_frame_sub_stats_t fs = es_frame_sub_stats(f->sub);
    ES_INFO("flv", &lc, "HTTP-FLV play ended after %.1f s: %s (%llu tags, %llu bytes, %u "
            "overflows, %llu tags dropped)", (double)(es_clock_now_us() - f->started_us) / 1e6,
            why, (unsigned long long)f->tags, (unsigned long long)f->bytes, fs.overflows,
            (unsigned long long)fs.dropped_tags);
    es_tag_unref(f->tag);
    es_server_session_close(f->srv, f->remote);
    es_admit_end(f->srv, ES_PROTO_HTTP_FLV, ES_ADMIT_PLAY, f->app, f->name, f->remote, f->conn_id);
    es_stream_t *st = es_registry_find(f->srv->registry, f->app, f->name);
    if (st && st->frames) {
        es_frame_hub_unsubscribe(st->frames, f->sub);
        es_live_release(f->srv->registry, st);
    }
    free(f);
}
