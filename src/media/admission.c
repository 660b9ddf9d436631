/* Admission of publishers and players (include/estuary/admission.h). */
#include "estuary/admission.h"

#include "estuary/error.h"
#include "estuary/stream.h"

#include <stdio.h>

int es_admit(const es_registry_t *reg, const es_config_t *cfg, const es_admit_request_t *req,
             es_stream_t **out, char *why, size_t why_len)
{
    *out = NULL;
    why[0] = '\0';
    if (!es_registry_valid_name(req->app, ES_APP_NAME_MAX) ||
        !es_registry_valid_name(req->stream, ES_STREAM_NAME_MAX)) {
        snprintf(why, why_len, "bad app or stream name '%.64s/%.128s': use 1-64/1-128 letters, "
                 "digits, '_', '-', '.'", req->app, req->stream);
        return ES_EINVAL;
    }
    if (req->sessions >= cfg->limits.max_sessions) {
        snprintf(why, why_len, "at capacity: limits.max_sessions is %u", cfg->limits.max_sessions);
        return ES_EBUSY;
    }
    es_stream_t *st = es_registry_find(reg, req->app, req->stream);
    if (req->role == ES_ADMIT_PUBLISH) {
        if (st && st->source != ES_SOURCE_NONE) {
            snprintf(why, why_len, "stream %s is already being published (over %s)", st->key,
                     st->source == ES_SOURCE_RTMP ? "RTMP" : "WebRTC");
            return ES_EEXIST;
        }
        *out = st;
        return 0;
    }
    if (req->protocol == ES_ADMIT_WEBRTC && (!st || !st->media || !es_media_stream_has_source(st->media))) {
        if (st && st->source == ES_SOURCE_RTMP) {
            const es_app_config_t *ac = es_config_find_app(cfg, req->app);
            snprintf(why, why_len, "stream %s is published over RTMP but not available to WebRTC "
                     "players: %s", st->key, !ac || !ac->rtmp_to_rtc
                     ? "apps.<app>.rtmp_to_rtc is off" : "no H.264 video or AAC audio has arrived yet");
        } else {
            snprintf(why, why_len, "stream %.64s/%.128s is not being published", req->app, req->stream);
        }
        return ES_ENOENT;
    }
    *out = st;
    return 0;
}
