/* REST API v1 (docs/http-api.md): version, streams, and the route table with WHIP/WHEP and
 * sessions (src/http/whip.c). */
#include "estuary/http.h"
#include "estuary/server.h"

#include "estuary/balancer.h"
#include "estuary/clock.h"
#include "estuary/relay.h"
#include "estuary/live.h"
#include "estuary/rtc_server.h"
#include "metrics_api.h"
#include "relay_api.h"
#include "whip.h"
#include "version.h"

#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <uv.h>
#include <yaml.h>

static int api_version(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    es_server_t *srv = user;
    uint64_t up_ms = (es_clock_now_us() - srv->started_us) / 1000u;
    return es_http_respond_json(
        resp, 200,
        json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:s, s:s, s:s, s:s}}", "name", "estuary",
                  "version", ES_VERSION, "revision", ES_GIT_REV, "uptime_ms", (json_int_t)up_ms,
                  "libraries", "libuv", uv_version_string(), "libwebsockets",
                  lws_get_library_version(), "openssl", OpenSSL_version(OPENSSL_VERSION),
                  "libyaml", yaml_get_version_string(), "jansson", JANSSON_VERSION));
}

static json_t *stream_json(const es_server_t *srv, const es_stream_t *s)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "app", s->app, "stream", s->name, "name", s->key,
                          "age_ms", (json_int_t)((es_clock_now_us() - s->created_us) / 1000u));
    json_t *media = es_live_json(s);
    if (o && media) json_object_update(o, media);
    json_decref(media);
    return o;
}

/* A stream of an app with a play_token is listed to admin callers only. */
static bool protected_app(const es_server_t *srv, const char *app)
{
    const es_app_config_t *ac = es_config_find_app(srv->cfg, app);
    return ac && ac->play_token && *ac->play_token;
}

static int api_streams(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    es_server_t *srv = user;
    size_t n = es_registry_count(srv->registry);
    es_stream_t **list = calloc(n ? n : 1, sizeof *list);
    json_t *arr = json_array();
    if (!list || !arr) {
        free(list);
        json_decref(arr);
        return es_http_respond_error(resp, 500, "out of memory");
    }
    n = es_registry_list(srv->registry, list, n);
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (!req->admin && protected_app(srv, list[i]->app)) continue;
        json_array_append_new(arr, stream_json(srv, list[i]));
        shown++;
    }
    free(list);
    return es_http_respond_json(resp, 200, json_pack("{s:o, s:I}", "streams", arr, "count",
                                                     (json_int_t)shown));
}

static int api_stream(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    es_server_t *srv = user;
    const es_stream_t *s = es_registry_find(srv->registry, req->params[0], req->params[1]);
    if (!s || (!req->admin && protected_app(srv, s->app)))
        return es_http_respond_error(resp, 404, "no stream %s/%s is published", req->params[0],
                                     req->params[1]);
    return es_http_respond_json(resp, 200, stream_json(srv, s));
}

/* What a balancer (include/estuary/balancer.h) reads: this server's sessions and streams. */
static int api_load(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    (void)req;
    es_server_t *srv = user;
    json_t *members = es_balancer_json(srv->balancer);
    return es_http_respond_json(
        resp, 200,
        json_pack("{s:I, s:I, s:I, s:o}", "sessions", (json_int_t)srv->sessions, "streams",
                  (json_int_t)es_registry_count(srv->registry), "relays",
                  (json_int_t)es_relays_count(srv->relays), "balancer_members", members));
}

static const es_http_route_t routes[] = {
    {ES_HTTP_GET, "/api/v1/load", api_load, ES_HTTP_ROUTE_ADMIN},
    {ES_HTTP_GET, "/metrics", es_api_metrics, ES_HTTP_ROUTE_ADMIN},
    {ES_HTTP_GET, "/api/v1/version", api_version, 0},
    {ES_HTTP_GET, "/api/v1/streams", api_streams, 0},
    {ES_HTTP_GET, "/api/v1/streams/{app}/{stream}", api_stream, 0},
    {ES_HTTP_GET, "/api/v1/sessions", es_api_sessions, ES_HTTP_ROUTE_ADMIN},
    {ES_HTTP_GET | ES_HTTP_DELETE, "/api/v1/sessions/{id}", es_api_session, ES_HTTP_ROUTE_ADMIN},
    {ES_HTTP_GET | ES_HTTP_POST, "/api/v1/relays", es_api_relays, ES_HTTP_ROUTE_ADMIN},
    {ES_HTTP_GET | ES_HTTP_DELETE, "/api/v1/relays/{id}", es_api_relay, ES_HTTP_ROUTE_ADMIN},
    {ES_HTTP_POST, "/rest-api/pull/push", es_wcs_pull_push, ES_HTTP_ROUTE_ADMIN},
    {ES_HTTP_POST, "/rest-api/pull/pull", es_wcs_pull_pull, ES_HTTP_ROUTE_ADMIN},
    {ES_HTTP_POST | ES_HTTP_GET, "/rest-api/pull/find_all", es_wcs_pull_find_all,
     ES_HTTP_ROUTE_ADMIN},
    {ES_HTTP_POST, "/rest-api/pull/terminate", es_wcs_pull_terminate, ES_HTTP_ROUTE_ADMIN},
    {ES_HTTP_POST, "/whip/{app}/{stream}", es_whip_post, 0},
    {ES_HTTP_POST, "/whep/{app}/{stream}", es_whep_post, 0},
    {ES_HTTP_GET | ES_HTTP_PATCH | ES_HTTP_DELETE, "/whip/{app}/{stream}/{id}", es_whip_resource, 0},
    {ES_HTTP_GET | ES_HTTP_PATCH | ES_HTTP_DELETE, "/whep/{app}/{stream}/{id}", es_whep_resource, 0},
    {ES_HTTP_POST, "/rtc/v1/whip/", es_srs_whip_post, 0},
    {ES_HTTP_POST, "/rtc/v1/whip", es_srs_whip_post, 0},
    {ES_HTTP_POST, "/rtc/v1/whep/", es_srs_whep_post, 0},
    {ES_HTTP_POST, "/rtc/v1/whep", es_srs_whep_post, 0},
};

const es_http_route_t *es_api_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}
