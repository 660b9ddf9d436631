/* WebSocket signaling messages (include/estuary/ws_signal.h). */
#include "estuary/ws_signal.h"

#include "estuary/error.h"
#include "estuary/sdp.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(es_ws_message_t *out, char *err, size_t err_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(es_ws_message_t *out, char *err, size_t err_len, int rc, const char *fmt, ...)
{
    es_ws_message_clear(out);
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

const char *es_ws_type_name(es_ws_type_t t)
{
    static const char *const names[] = {[ES_WS_OFFER] = "offer", [ES_WS_ANSWER] = "answer",
                                        [ES_WS_CANDIDATE] = "candidate", [ES_WS_PING] = "ping",
                                        [ES_WS_PONG] = "pong"};
    return (unsigned)t < sizeof names / sizeof names[0] && names[t] ? names[t] : "?";
}

int es_ws_message_parse(const char *buf, size_t len, es_ws_message_t *out, char *err,
                        size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (err && err_len) err[0] = '\0';
    if (len > ES_WS_MAX_MESSAGE)
        return fail(out, err, err_len, ES_E2BIG, "message of %zu bytes; at most %d", len,
                    ES_WS_MAX_MESSAGE);
    json_error_t je;
    /* No NUL inside strings (the default), one value and nothing after it. */
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(out, err, err_len, ES_EPROTO, "not JSON: %s at byte %d", je.text, je.position);
    int rc = ES_EPROTO;
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!json_is_object(root)) {
        fail(out, err, err_len, rc, "a message is a JSON object with a \"type\"");
        goto out;
    }
    if (!type) {
        fail(out, err, err_len, rc, "no \"type\" string in the message");
        goto out;
    }
    if (!strcmp(type, "offer") || !strcmp(type, "answer")) {
        out->type = type[0] == 'o' ? ES_WS_OFFER : ES_WS_ANSWER;
        json_t *sdp = json_object_get(root, "sdp");
        size_t n = json_string_length(sdp);
        if (!json_is_string(sdp) || n == 0) {
            fail(out, err, err_len, rc, "an %s needs a non-empty \"sdp\" string", type);
            goto out;
        }
        if (n > ES_SDP_MAX_TEXT) {
            fail(out, err, err_len, rc, "SDP of %zu bytes; at most %d", n, ES_SDP_MAX_TEXT);
            goto out;
        }
        if (!(out->sdp = malloc(n + 1))) {
            fail(out, err, err_len, ES_ENOMEM, "out of memory");
            rc = ES_ENOMEM;
            goto out;
        }
        memcpy(out->sdp, json_string_value(sdp), n + 1);
        out->sdp_len = n;
    } else if (!strcmp(type, "candidate")) {
        out->type = ES_WS_CANDIDATE;
        json_t *c = json_object_get(root, "candidate");
        if (!c || json_is_null(c)) {
            out->end_of_candidates = true;
        } else if (json_is_object(c) && json_is_string(json_object_get(c, "candidate"))) {
            const char *line = json_string_value(json_object_get(c, "candidate"));
            snprintf(out->candidate, sizeof out->candidate, "%s", line);
            out->end_of_candidates = !line[0];
        } else {
            fail(out, err, err_len, rc, "\"candidate\" must be an RTCIceCandidate object with a "
                 "\"candidate\" string, or null");
            goto out;
        }
    } else if (!strcmp(type, "ping")) {
        out->type = ES_WS_PING;
    } else if (!strcmp(type, "pong")) {
        out->type = ES_WS_PONG;
    } else {
        fail(out, err, err_len, rc, "unknown message type \"%.40s\"", type);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

void es_ws_message_clear(es_ws_message_t *m)
{
    if (!m) return;
    free(m->sdp);
    memset(m, 0, sizeof *m);
}

bool es_ws_bucket_take(es_ws_bucket_t *b, uint64_t now_us)
{
    if (!b->refilled_us) {
        b->tokens = ES_WS_BURST;
        b->refilled_us = now_us;
    } else if (now_us > b->refilled_us) {
        b->tokens += (double)(now_us - b->refilled_us) * ES_WS_PER_S / 1e6;
        if (b->tokens > ES_WS_BURST) b->tokens = ES_WS_BURST;
        b->refilled_us = now_us;
    }
    if (b->tokens < 1.0) return false;
    b->tokens -= 1.0;
    return true;
}
