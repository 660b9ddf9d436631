/* Relay control over HTTP (docs/http-api.md): Estuary's /api/v1/relays and Flashphoner WCS's
 * /rest-api/pull/{push,pull,find_all,terminate}, both admin routes, over the relay table
 * (include/estuary/relay.h). */
#include "relay_api.h"

#include "estuary/error.h"
#include "estuary/relay.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX 8192 /* bytes of a relay request's JSON */

static json_t *body_json(const es_http_request_t *req, es_http_response_t *resp)
{
    if (!req->body || !req->body_len) {
        es_http_respond_error(resp, 400, "a JSON body is required");
        return NULL;
    }
    if (req->body_len > BODY_MAX) {
        es_http_respond_error(resp, 413, "the body is larger than %d bytes", BODY_MAX);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j)) {
        es_http_respond_error(resp, 400, "bad JSON: %s", j ? "expected an object" : je.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* A string member, or NULL when absent; *bad when present but not a string. */
static const char *member(json_t *o, const char *name, bool *bad)
{
    json_t *v = json_object_get(o, name);
    if (v && !json_is_string(v)) *bad = true;
    return json_string_value(v);
}

static int respond_add_error(es_http_response_t *resp, int rc, const char *err)
{
    return es_http_respond_error(resp, es_http_status_of(rc), "%s", err);
}

/* --- /api/v1/relays --- */

int es_api_relays(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    es_server_t *srv = user;
    if (req->method == ES_HTTP_GET) {
        json_t *a = es_relays_json(srv->relays);
        size_t n = json_array_size(a);
        return es_http_respond_json(resp, 200, json_pack("{s:o, s:I}", "relays", a, "count",
                                                         (json_int_t)n));
    }
    json_t *j = body_json(req, resp);
    if (!j) return 0;
    bool bad = false;
    const char *dir = member(j, "direction", &bad), *stream = member(j, "stream", &bad);
    const char *url = member(j, "url", &bad), *token = member(j, "token", &bad);
    if (bad || !dir || !stream || !url || (strcmp(dir, "push") && strcmp(dir, "pull"))) {
        json_decref(j);
        return es_http_respond_error(resp, 400, "expected {\"direction\": \"push\"|\"pull\", "
                                     "\"stream\": \"app/stream\", \"url\": WHIP/WHEP URL, "
                                     "\"token\": optional}");
    }
    es_relay_spec_t spec = {.dir = !strcmp(dir, "push") ? ES_RELAY_PUSH : ES_RELAY_PULL,
                            .local = stream, .url = url, .token = token,
                            .origin = ES_RELAY_FROM_API};
    char id[ES_RELAY_ID_LEN + 1], err[320];
    int rc = es_relays_add(srv->relays, &spec, id, err, sizeof err);
    json_decref(j);
    if (rc != 0) return respond_add_error(resp, rc, err);
    int out = es_http_respond_json(resp, 201, es_relay_json(srv->relays, id));
    snprintf(resp->location, sizeof resp->location, "/api/v1/relays/%s", id); /* after: reset */
    return out;
}

int es_api_relay(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    es_server_t *srv = user;
    const char *id = req->params[0];
    if (req->method == ES_HTTP_DELETE) {
        if (es_relays_remove(srv->relays, id) != 0)
            return es_http_respond_error(resp, 404, "no relay %s", id);
        return es_http_respond_json(resp, 200, json_pack("{s:s, s:b}", "id", id, "stopped", 1));
    }
    json_t *o = es_relay_json(srv->relays, id);
    if (!o) return es_http_respond_error(resp, 404, "no relay %s", id);
    return es_http_respond_json(resp, 200, o);
}

/* --- WCS: /rest-api/pull/... --- */

/* A push or pull answered once the remote answered (WCS answers after the remote does). */
typedef struct wcs_wait {
    es_http_async_t *async;
    es_relays_t *relays;
    char id[ES_RELAY_ID_LEN + 1];
} wcs_wait_t;

static void wcs_first(void *user, int err, long status, const char *reason)
{
    wcs_wait_t *w = user;
    es_http_response_t *resp = es_http_async_response(w->async);
    if (err == 0) {
        json_t *a = es_relays_wcs_json(w->relays), *mine = NULL;
        for (size_t i = 0; i < json_array_size(a); i++) {
            json_t *o = json_array_get(a, i);
            if (!strcmp(json_string_value(json_object_get(o, "localMediaSessionId")), w->id))
                mine = json_incref(o);
        }
        json_decref(a);
        es_http_respond_json(resp, 200, mine ? mine : json_object());
    } else if (err == ES_ENOENT) { /* terminated before the remote answered */
        es_http_respond_error(resp, 404, "%s", reason);
    } else {
        /* WCS: 500 when the remote refused; the relay is not kept. */
        (void)status;
        es_http_respond_error(resp, 500, "%s", reason);
        es_relays_remove(w->relays, w->id);
    }
    es_http_async_finish(w->async);
    free(w);
}

static void wcs_cancel(void *user)
{
    wcs_wait_t *w = user; /* the client went away: the relay runs on */
    es_relays_forget_first(w->relays, w->id);
    free(w);
}

static int wcs_add(es_server_t *srv, const es_http_request_t *req, es_http_response_t *resp,
                   es_relay_dir_t dir)
{
    json_t *j = body_json(req, resp);
    if (!j) return 0;
    bool bad = false;
    const char *uri = member(j, "uri", &bad), *local = member(j, "localStreamName", &bad);
    const char *remote = member(j, "remoteStreamName", &bad), *token = member(j, "token", &bad);
    char url[1024], err[320];
    int rc;
    if (bad || !uri || !local) {
        rc = ES_EINVAL;
        snprintf(err, sizeof err, "expected {\"uri\", \"localStreamName\", \"remoteStreamName\"} "
                 "as strings");
    } else {
        rc = es_relay_url(dir, uri, local, remote, url, sizeof url, err, sizeof err);
    }
    wcs_wait_t *w = NULL;
    if (rc == 0 && !(w = calloc(1, sizeof *w))) {
        rc = ES_ENOMEM;
        snprintf(err, sizeof err, "out of memory");
    }
    if (rc == 0) {
        w->relays = srv->relays;
        es_relay_spec_t spec = {.dir = dir, .local = local, .url = url, .token = token,
                                .uri = uri, .remote_name = remote, .origin = ES_RELAY_FROM_API,
                                .first = wcs_first, .first_user = w};
        rc = es_relays_add(srv->relays, &spec, w->id, err, sizeof err);
    }
    json_decref(j);
    if (rc != 0) {
        free(w);
        return respond_add_error(resp, rc, err);
    }
    if (!(w->async = es_http_async_begin(req, wcs_cancel, w))) {
        /* No connection to answer later (unit tests): answer now, the relay runs on. */
        es_relays_forget_first(srv->relays, w->id);
        json_t *o = json_pack("{s:s, s:s}", "localMediaSessionId", w->id, "status", "NEW");
        free(w);
        return es_http_respond_json(resp, 200, o);
    }
    return 0;
}

int es_wcs_pull_push(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    return wcs_add(user, req, resp, ES_RELAY_PUSH);
}

int es_wcs_pull_pull(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    return wcs_add(user, req, resp, ES_RELAY_PULL);
}

int es_wcs_pull_find_all(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    (void)req;
    es_server_t *srv = user;
    return es_http_respond_json(resp, 200, es_relays_wcs_json(srv->relays));
}

int es_wcs_pull_terminate(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    es_server_t *srv = user;
    json_t *j = body_json(req, resp);
    if (!j) return 0;
    bool bad = false;
    const char *id = member(j, "localMediaSessionId", &bad);
    int rc;
    if (bad || !id) rc = es_http_respond_error(resp, 400, "expected {\"localMediaSessionId\"}");
    else if (es_relays_remove(srv->relays, id) != 0)
        rc = es_http_respond_error(resp, 404, "no relay %s", id);
    else
        rc = es_http_respond_json(resp, 200, json_pack("{s:s}", "localMediaSessionId", id));
    json_decref(j);
    return rc;
}
