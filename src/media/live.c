/* A live stream's lifetime across protocols (include/estuary/live.h). */
#include "estuary/live.h"

#include "estuary/clock.h"
#include "estuary/error.h"
#include "estuary/hls.h"
#include "estuary/log.h"
#include "estuary/rtc_bridge.h"
#include "estuary/rtmp_bridge.h"
#include "estuary/stream.h"

#include <stdio.h>
#include <stdlib.h>

int es_live_open(es_registry_t *reg, const char *app, const char *name, uint64_t now_us,
                 es_stream_t **out)
{
    es_stream_t *st = es_registry_find(reg, app, name);
    if (st) {
        *out = st;
        return 0;
    }
    int rc = es_registry_add(reg, app, name, now_us, &st);
    if (rc != 0) return rc;
    st->media = es_media_stream_new(st->key);
    if (!st->media) {
        es_registry_remove(reg, st);
        return ES_ENOMEM;
    }
    *out = st;
    return 0;
}

es_frame_hub_limits_t es_live_hub_limits(const es_config_t *cfg)
{
    return (es_frame_hub_limits_t){
        .queue_ms = cfg->rtmp.player_queue_ms,
        .queue_bytes = (size_t)cfg->rtmp.player_queue_bytes,
        .stall_ms = cfg->rtmp.player_stall_ms,
        .gop_max_bytes = (size_t)cfg->rtmp.gop_cache_bytes,
    };
}

es_frame_hub_t *es_live_frames(es_stream_t *st, const es_frame_hub_limits_t *limits)
{
    if (!st->frames) st->frames = es_frame_hub_new(st->key, limits);
    return st->frames;
}

bool es_live_idle(const es_stream_t *st)
{
    if (st->source != ES_SOURCE_NONE || st->hls) return false;
    if (st->media && (es_media_stream_has_source(st->media) || es_media_stream_sink_count(st->media)))
        return false;
    return !st->frames || es_frame_hub_sub_count(st->frames) == 0;
}

size_t es_live_viewers(const es_stream_t *st)
{
    if (!st) return 0;
    size_t n = st->media ? es_media_stream_sink_count(st->media) : 0;
    size_t subs = st->frames ? es_frame_hub_sub_count(st->frames) : 0;
    if (st->hls_sub && subs) subs--;
    return n + subs;
}

bool es_live_publishing(const es_stream_t *st) { return st && st->source != ES_SOURCE_NONE; }

bool es_live_release(es_registry_t *reg, es_stream_t *st)
{
    if (!st || !es_live_idle(st)) return false;
    es_log_ctx_t lc = {.stream = st->key};
    ES_INFO("media", &lc, "stream removed: no publisher and no players");
    es_rtc_bridge_free(st->rtc_bridge);
    es_hls_free(st->hls);
    es_media_stream_free(st->media);
    es_frame_hub_free(st->frames);
    es_registry_remove(reg, st);
    return true;
}

void es_live_publish_tag(es_stream_t *st, es_tag_t *tag, uint64_t now_us)
{
    st->source_active_us = now_us;
    if (st->frames) es_frame_hub_publish(st->frames, tag, now_us);
    if (st->bridge) es_rtmp_bridge_tag(st->bridge, tag, now_us);
}

int es_live_source_begin(es_stream_t *st, es_source_kind_t kind,
                         void (*kick)(void *user, const char *why), void *user,
                         const es_config_t *cfg, uint64_t now_us)
{
    if (st->source != ES_SOURCE_NONE) return ES_EEXIST;
    st->source = kind;
    st->source_kick = kick;
    st->source_user = user;
    st->source_active_us = now_us;
    if (kind == ES_SOURCE_RTMP) {
        if (st->frames) es_frame_hub_reset(st->frames);
        const es_app_config_t *ac = es_config_find_app(cfg, st->app);
        if (ac && ac->rtmp_to_rtc)
            st->bridge = es_rtmp_bridge_new(st->media, st->key, cfg->rtmp.opus_bitrate);
    }
    return 0;
}

uint64_t es_live_source_silent_us(const es_stream_t *st, uint64_t now_us)
{
    if (st->source == ES_SOURCE_NONE) return 0;
    uint64_t last = st->source_active_us;
    if (st->source == ES_SOURCE_WEBRTC && st->media) {
        uint64_t m = es_media_stream_source_stats(st->media).last_us;
        if (m > last) last = m;
    }
    return now_us > last ? now_us - last : 0;
}

void es_live_source_kick(es_stream_t *st, const char *why)
{
    if (st->source != ES_SOURCE_NONE && st->source_kick) st->source_kick(st->source_user, why);
}

void es_live_tick(es_registry_t *reg, const es_config_t *cfg, const es_hls_io_t *io,
                  uint64_t now_us, bool slow)
{
    size_t n = es_registry_count(reg);
    if (!n) return;
    es_stream_t *stack[64], **list = n <= 64 ? stack : malloc(n * sizeof *list);
    if (!list) return;
    n = es_registry_list(reg, list, n);
    for (size_t i = 0; i < n; i++) {
        if (list[i]->bridge) es_rtmp_bridge_tick(list[i]->bridge, now_us);
        if (slow && es_live_maintain(list[i], cfg, io, now_us)) es_live_release(reg, list[i]);
    }
    if (list != stack) free(list);
}

void es_live_source_ended(es_stream_t *st, uint64_t now_us)
{
    st->source_kick = NULL;
    st->source_user = NULL;
    es_rtmp_bridge_free(st->bridge, now_us);
    st->bridge = NULL;
    es_rtc_bridge_free(st->rtc_bridge);
    st->rtc_bridge = NULL;
    if (st->frames) es_frame_hub_reset(st->frames);
    st->flv_unavailable[0] = '\0';
    st->source = ES_SOURCE_NONE;
}

static void rtc_bridge_out(void *user, es_tag_t *tag, uint64_t now_us)
{
    es_live_publish_tag(user, tag, now_us);
}

/* Hands the segmenter what its hub queue holds. */
static void hls_drain(es_stream_t *st, uint64_t now_us)
{
    int64_t wall_ms = (int64_t)(es_clock_wall_us() / 1000u);
    es_tag_t *t;
    while ((t = es_frame_sub_pop(st->hls_sub, now_us))) {
        es_hls_handle_tag(st->hls, t, now_us, wall_ms);
        es_tag_unref(t);
    }
}

/* Frees the segmenter and its hub queue (the files stay). */
static void hls_free(es_stream_t *st)
{
    es_hls_free(st->hls);
    st->hls = NULL;
    if (st->hls_sub) es_frame_hub_unsubscribe(st->frames, st->hls_sub);
    st->hls_sub = NULL;
}

/* The segmenter lives from the first publish until hls.cleanup_ms after the last publisher left:
 * the playlist gets #EXT-X-ENDLIST when one leaves, and a publisher returning in time continues
 * it after an #EXT-X-DISCONTINUITY (the segmenter sees the new sequence headers and the
 * timestamps start again). Then the folder is removed. */
static void hls_maintain(es_stream_t *st, const es_config_t *cfg, const es_app_config_t *ac,
                         const es_hls_io_t *io, uint64_t now_us)
{
    es_log_ctx_t lc = {.stream = st->key};
    bool want = ac && ac->hls && st->source != ES_SOURCE_NONE &&
                !(st->source == ES_SOURCE_WEBRTC && st->flv_unavailable[0]);
    if (want && !st->hls) {
        es_frame_hub_limits_t lim = es_live_hub_limits(cfg);
        es_hls_config_t hc = {.directory = cfg->hls.directory, .segment_ms = cfg->hls.segment_ms,
                              .window = cfg->hls.window, .fmp4 = cfg->hls.fmp4,
                              .max_segment_ms = cfg->hls.max_segment_ms,
                              .max_segment_bytes = cfg->hls.max_segment_bytes, .io = io};
        es_frame_hub_t *hub = es_live_frames(st, &lim);
        if (!hub || es_hls_new(&hc, st->app, st->name, &st->hls) != 0) return;
        if (!(st->hls_sub = es_frame_hub_subscribe(hub, NULL, NULL, now_us))) {
            hls_free(st);
            return;
        }
        st->hls_cleanup_at_us = 0;
        ES_INFO("hls", &lc, "HLS started: %s/%s/%s/index.m3u8 (%s segments of %u ms, window %u)",
                cfg->hls.directory, st->app, st->name, cfg->hls.fmp4 ? "fMP4" : "MPEG-TS",
                cfg->hls.segment_ms, cfg->hls.window);
    } else if (want && st->hls_cleanup_at_us) {
        st->hls_cleanup_at_us = 0;
        es_hls_discontinuity(st->hls);
        ES_INFO("hls", &lc, "HLS continues after a discontinuity: the stream is published again");
    } else if (!want && st->hls && !st->hls_cleanup_at_us) {
        hls_drain(st, now_us);
        es_hls_end(st->hls);
        st->hls_cleanup_at_us = now_us + (uint64_t)cfg->hls.cleanup_ms * 1000u;
        ES_INFO("hls", &lc, "HLS ended (#EXT-X-ENDLIST); folder removed in %u ms unless the "
                "stream is published again", cfg->hls.cleanup_ms);
    }
    if (st->hls) hls_drain(st, now_us);
    if (st->hls && st->hls_cleanup_at_us && now_us >= st->hls_cleanup_at_us) {
        st->hls_cleanup_at_us = 0;
        hls_free(st);
        int rc = es_hls_cleanup_io(io, cfg->hls.directory, st->app, st->name);
        if (rc != 0 && rc != ES_ENOENT)
            ES_WARN("hls", &lc, "cannot remove %s/%s/%s: %s", cfg->hls.directory, st->app,
                    st->name, es_strerror(rc));
        else
            ES_DEBUG("hls", &lc, "HLS folder removed");
    }
}

bool es_live_maintain(es_stream_t *st, const es_config_t *cfg, const es_hls_io_t *io,
                      uint64_t now_us)
{
    if (st->frames) es_frame_hub_tick(st->frames, now_us);
    const es_app_config_t *ac = es_config_find_app(cfg, st->app);
    es_log_ctx_t lc = {.stream = st->key};
    if (st->source == ES_SOURCE_WEBRTC && ac && ac->rtc_to_rtmp && !st->flv_unavailable[0] &&
        !st->rtc_bridge && es_media_stream_has_source(st->media) &&
        !es_rtc_bridge_supported(st->media, st->flv_unavailable, sizeof st->flv_unavailable))
        ES_WARN("bridge", &lc, "RTMP, HTTP-FLV and HLS unavailable: %s", st->flv_unavailable);
    hls_maintain(st, cfg, ac, io, now_us);
    bool consumers = st->frames && es_frame_hub_sub_count(st->frames) > 0;
    bool want = st->source == ES_SOURCE_WEBRTC && ac && ac->rtc_to_rtmp && consumers &&
                es_media_stream_has_source(st->media);
    if (!want && st->rtc_bridge) {
        ES_INFO("bridge", &lc, "WebRTC -> RTMP/HTTP-FLV/HLS stopped: %s",
                st->source != ES_SOURCE_WEBRTC ? "the publisher left" : "no frame consumers");
        es_rtc_bridge_free(st->rtc_bridge);
        st->rtc_bridge = NULL;
        if (st->frames) es_frame_hub_reset(st->frames);
    } else if (want && !st->rtc_bridge && !st->flv_unavailable[0]) {
        char why[sizeof st->flv_unavailable];
        st->rtc_bridge = es_rtc_bridge_new(st->media, st->key, 0, rtc_bridge_out, st, why,
                                           sizeof why);
        if (!st->rtc_bridge) {
            snprintf(st->flv_unavailable, sizeof st->flv_unavailable, "%s", why);
            ES_WARN("bridge", &lc, "RTMP, HTTP-FLV and HLS unavailable: %s", why);
        }
    }
    if (st->rtc_bridge) {
        es_rtc_bridge_set_key_interval(st->rtc_bridge, st->hls ? cfg->hls.segment_ms : 0);
        es_rtc_bridge_tick(st->rtc_bridge, now_us);
    }
    return es_live_idle(st);
}

void es_live_shutdown(es_registry_t *reg, const es_config_t *cfg, const es_hls_io_t *io)
{
    size_t n = es_registry_count(reg);
    es_stream_t **list = n ? malloc(n * sizeof *list) : NULL;
    if (!list) return;
    n = es_registry_list(reg, list, n);
    for (size_t i = 0; i < n; i++) {
        es_stream_t *st = list[i];
        if (st->hls) {
            hls_free(st);
            st->hls_cleanup_at_us = 0;
            es_hls_cleanup_io(io, cfg->hls.directory, st->app, st->name);
        }
        es_rtc_bridge_free(st->rtc_bridge);
        st->rtc_bridge = NULL;
        es_live_release(reg, st);
    }
    free(list);
}

json_t *es_live_json(const es_stream_t *st)
{
    static const char *const names[] = {[ES_SOURCE_WEBRTC] = "webrtc", [ES_SOURCE_RTMP] = "rtmp"};
    json_t *o = st->media ? es_media_stream_json(st->media) : json_object();
    if (!o) return NULL;
    json_object_set_new(o, "source", st->source ? json_string(names[st->source]) : json_null());
    if (st->frames) {
        json_t *f = es_frame_hub_json(st->frames);
        if (f) json_object_set_new(o, "flv", f);
    }
    if (st->bridge) {
        json_t *b = es_rtmp_bridge_json(st->bridge);
        if (b) json_object_set_new(o, "rtmp_to_rtc", b);
    }
    if (st->rtc_bridge) {
        json_t *b = es_rtc_bridge_json(st->rtc_bridge);
        if (b) json_object_set_new(o, "rtc_to_rtmp", b);
    }
    if (st->flv_unavailable[0])
        json_object_set_new(o, "flv_unavailable", json_string(st->flv_unavailable));
    if (st->hls) {
        es_hls_stats_t hs = es_hls_stats(st->hls);
        json_object_set_new(o, "hls", json_pack("{s:s, s:I, s:I, s:I, s:b}", "playlist",
                            "index.m3u8", "segments", (json_int_t)hs.segments, "media_sequence",
                            (json_int_t)hs.media_sequence, "write_errors",
                            (json_int_t)hs.write_errors, "failing", hs.failing));
    }
    return o;
}

uint32_t es_live_clock_map(es_live_clock_t *c, uint32_t ts_ms)
{
    if (!c->started) {
        c->started = true;
        c->offset = ts_ms;
        c->last_out = 0;
        return 0;
    }
    uint32_t out = ts_ms - c->offset;
    int32_t step = (int32_t)(out - c->last_out);
    if (step > ES_LIVE_CLOCK_JUMP_MS || step < -ES_LIVE_CLOCK_JUMP_MS) {
        /* Discontinuity: continue just after the last output. */
        c->offset = ts_ms - (c->last_out + 1);
        out = c->last_out + 1;
    }
    /* Interleaved audio may be a little behind video: pass small backward steps through, but
     * remember only forward progress, and never go back past 0 (a tag just behind the first
     * one, or just behind the one after a discontinuity, would come out near 2^32 ms). */
    int32_t back = (int32_t)(out - c->last_out);
    if (back > 0) c->last_out = out;
    else if ((uint32_t)-back > c->last_out) out = 0;
    return out;
}
