/* Server-to-server relays (include/estuary/relay.h): each relay is a small state machine
 *   waiting -> offering (our offer POSTed) -> connecting (answer taken, ICE + DTLS running)
 *           -> connected -> (session ended) waiting ...        or -> failed (a 4xx)
 * driven by one 250 ms timer for the table, the HTTP client's callbacks and the session's
 * on_closed. The WebRTC side is src/app/rtc_server.c's offerer path (es_rtc_make_offer and
 * es_rtc_take_answer with protocol ES_PROTO_RELAY: full controlling ICE). */
#include "estuary/relay.h"

#include "estuary/admission.h"
#include "estuary/clock.h"
#include "estuary/error.h"
#include "estuary/hooks.h"
#include "estuary/http_client.h"
#include "estuary/live.h"
#include "estuary/log.h"
#include "estuary/random.h"
#include "estuary/registry.h"
#include "estuary/rtc_server.h"
#include "estuary/sdp.h"
#include "estuary/server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TICK_MS 250
#define HTTP_TIMEOUT_MS 10000   /* a WHIP/WHEP POST */
#define DELETE_TIMEOUT_MS 3000  /* a DELETE of a remote resource */
#define URL_MAX 1024

typedef enum { ST_WAITING = 0, ST_OFFERING, ST_CONNECTING, ST_CONNECTED, ST_FAILED } relay_state_t;

typedef struct relay relay_t;

struct relay {
    es_relays_t *rs;
    char id[ES_RELAY_ID_LEN + 1];
    es_relay_dir_t dir;
    es_relay_origin_t origin;
    char app[ES_APP_NAME_MAX + 1], stream[ES_STREAM_NAME_MAX + 1];
    char local[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    char url[URL_MAX], uri[URL_MAX], remote_name[256];
    char host[256];                /* the remote's host:port, for logs */
    char *token;                   /* malloc'ed, or NULL */
    relay_state_t state;
    es_http_call_t *call;          /* the POST in flight */
    es_rtc_pending_t *pending;     /* our offer, until the answer */
    char session_id[ES_RTC_ID_LEN + 1]; /* the local WebRTC session, "" when none */
    char resource[URL_MAX];        /* the remote resource (the answer's Location), "" when none */
    long remote_status;            /* the last answer's HTTP status, 0 before one */
    unsigned attempts, reconnects;
    uint32_t backoff_ms;
    uint64_t next_try_us, created_us, connected_us, idle_since_us;
    char last_error[320];
    char creator[64];              /* an edge pull: the address key of the player that began it */
    uint64_t failed_us;            /* when it failed (an edge's failed pull is kept a while) */
    void (*first)(void *user, int err, long status, const char *reason);
    void *first_user;
    relay_t *next;
};

struct es_relays {
    es_server_t *srv;
    es_http_client_t *http;
    uv_timer_t timer;
    relay_t *relays;
    size_t n;
    bool stopping;
};

static const char HEX[] = "0123456789abcdef";

static const char *dir_name(es_relay_dir_t d) { return d == ES_RELAY_PUSH ? "push" : "pull"; }

static const char *origin_name(es_relay_origin_t o)
{
    return o == ES_RELAY_FROM_CONFIG ? "config" : o == ES_RELAY_FROM_EDGE ? "edge" : "api";
}

static const char *state_name(relay_state_t s)
{
    static const char *const n[] = {"waiting", "offering", "connecting", "connected", "failed"};
    return n[s];
}

/* A resource URL for logs: an Estuary resource's last segment is "<id>-<secret>"; the secret
 * stays out of logs, as on the server side. */
static const char *resource_for_log(const char *url, char *out, size_t cap)
{
    snprintf(out, cap, "%s", url[0] ? url : "none");
    char *last = strrchr(out, '/');
    char *dash = last ? strchr(last, '-') : NULL;
    if (dash && (size_t)(dash - out) + 4 < cap) strcpy(dash + 1, "...");
    return out;
}

static es_log_ctx_t rctx(const relay_t *r)
{
    return (es_log_ctx_t){.peer = r->session_id[0] ? r->session_id : r->id, .stream = r->local,
                          .remote = r->host};
}

static relay_t *find(es_relays_t *rs, const char *id)
{
    for (relay_t *r = rs->relays; r; r = r->next)
        if (!strcmp(r->id, id)) return r;
    return NULL;
}

/* --- DELETE of remote resources: told, not waited for --- */

static void on_deleted(void *user, const es_fetch_response_t *res)
{
    es_relays_t *rs = user;
    char shown[URL_MAX];
    if (res->err || res->status >= 300)
        ES_DEBUG("relay", NULL, "DELETE %s: %s", resource_for_log(res->effective_url, shown,
                 sizeof shown), res->err ? res->error : "refused");
    if (rs->stopping && es_http_pending(rs->http) <= 1) es_http_client_stop(rs->http);
}

static void delete_resource(relay_t *r)
{
    if (!r->resource[0]) return;
    es_fetch_request_t hr = {.method = "DELETE", .url = r->resource, .bearer = r->token,
                            .timeout_ms = DELETE_TIMEOUT_MS, .user_agent = "estuary-relay"};
    es_log_ctx_t lc = rctx(r);
    char shown[URL_MAX];
    resource_for_log(r->resource, shown, sizeof shown);
    ES_DEBUG("relay", &lc, "DELETE %s", shown);
    if (!es_http_fetch(r->rs->http, &hr, on_deleted, r->rs))
        ES_DEBUG("relay", &lc, "cannot send DELETE %s", shown);
    r->resource[0] = '\0';
}

/* --- the state machine --- */

static void set_error(relay_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(relay_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->last_error, sizeof r->last_error, fmt, ap);
    va_end(ap);
    for (char *p = r->last_error; *p; p++) /* remote text: printable ASCII for logs and JSON */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) *p = '?';
}

/* Ends the current attempt: the local session (if any), the remote resource, our offer. */
static void end_attempt(relay_t *r, const char *why)
{
    es_rtc_server_t *rtc = r->rs->srv->rtc;
    if (r->call) es_http_cancel(r->call);
    r->call = NULL;
    es_rtc_pending_free(r->pending);
    r->pending = NULL;
    if (r->session_id[0]) {
        es_rtc_disown(rtc, r->session_id);
        es_rtc_delete(rtc, r->session_id, why);
        r->session_id[0] = '\0';
    }
    delete_resource(r);
}

/* Tells the spec's first callback how the first offer went. The callee may remove r (not
 * with ES_ENOENT, which comes from inside relay_free): the caller's last use of r. */
static void tell_first(relay_t *r, int err)
{
    void (*first)(void *, int, long, const char *) = r->first;
    r->first = NULL;
    if (first) first(r->first_user, err, r->remote_status, r->last_error);
}

/* Another try after the backoff (1 s doubling to 30 s). */
static void retry(relay_t *r, uint64_t now)
{
    r->state = ST_WAITING;
    r->next_try_us = now + (uint64_t)r->backoff_ms * 1000;
    es_log_ctx_t lc = rctx(r);
    ES_INFO("relay", &lc, "relay %s %s %s: %s; trying again in %.1f s", r->id, dir_name(r->dir),
            r->url, r->last_error, r->backoff_ms / 1000.0);
    r->backoff_ms = r->backoff_ms * 2 > ES_RELAY_BACKOFF_MAX_MS ? ES_RELAY_BACKOFF_MAX_MS
                                                                : r->backoff_ms * 2;
    tell_first(r, ES_EIO); /* last: the callee may remove r */
}

static void session_closed(void *user, const char *reason)
{
    relay_t *r = user;
    r->session_id[0] = '\0'; /* ended: nothing to delete locally */
    set_error(r, "the session ended: %s", reason);
    delete_resource(r);
    retry(r, es_clock_now_us());
}

static void on_answer(void *user, const es_fetch_response_t *res)
{
    relay_t *r = user;
    r->call = NULL;
    uint64_t now = es_clock_now_us();
    es_log_ctx_t lc = rctx(r);
    if (res->err) {
        es_rtc_pending_free(r->pending);
        r->pending = NULL;
        set_error(r, "no answer from %s: %s", r->url, res->error);
        retry(r, now);
        return;
    }
    r->remote_status = res->status;
    if (res->status != 201 && res->status != 200) {
        es_rtc_pending_free(r->pending);
        r->pending = NULL;
        char first[200];
        snprintf(first, sizeof first, "%.*s", (int)strcspn(res->body, "\r\n"), res->body);
        set_error(r, "%s answered %ld%s%s", res->effective_url, res->status, first[0] ? ": " : "",
                  first);
        /* A refusal is the remote's word (a wrong token, no such stream, a duplicate); a busy
         * or broken server may come back. */
        if (res->status >= 400 && res->status < 500 && res->status != 408 && res->status != 429) {
            r->state = ST_FAILED;
            r->failed_us = now;
            ES_WARN("relay", &lc, "relay %s %s %s failed: %s", r->id, dir_name(r->dir), r->url,
                    r->last_error);
            tell_first(r, ES_EACCES);
        } else {
            retry(r, now);
        }
        return;
    }
    if (res->truncated) {
        es_rtc_pending_free(r->pending);
        r->pending = NULL;
        set_error(r, "the answer of %s is larger than %d bytes", res->effective_url,
                  ES_SDP_MAX_TEXT);
        retry(r, now);
        return;
    }
    /* The resource is DELETEd later with our token: only on the server that answered (a
     * Location elsewhere could aim our DELETE and token at anything). */
    if (res->location[0] && es_http_same_origin(res->location, res->effective_url) &&
        !strpbrk(res->location, " \t\r\n"))
        snprintf(r->resource, sizeof r->resource, "%s", res->location);
    else if (res->location[0])
        ES_INFO("relay", &lc, "relay %s: the answer's Location is not on %s: it will not be "
                "DELETEd", r->id, res->effective_url);
    es_rtc_result_t rr;
    es_rtc_take_answer(r->rs->srv->rtc, r->pending, res->body, res->body_len, &rr);
    r->pending = NULL;
    if (rr.err) {
        set_error(r, "the answer of %s was not taken: %s", res->effective_url, rr.error);
        delete_resource(r);
        retry(r, now);
        return;
    }
    snprintf(r->session_id, sizeof r->session_id, "%s", rr.id);
    r->state = ST_CONNECTING;
    lc = rctx(r);
    char shown[URL_MAX];
    ES_INFO("relay", &lc, "relay %s %s %s: answered %ld (resource %s), connecting", r->id,
            dir_name(r->dir), res->effective_url, res->status,
            resource_for_log(r->resource, shown, sizeof shown));
    tell_first(r, 0);
}

static void attempt(relay_t *r, uint64_t now)
{
    es_relays_t *rs = r->rs;
    r->attempts++;
    if (r->attempts > 1) r->reconnects++;
    es_rtc_request_t req = {.role = r->dir == ES_RELAY_PUSH ? ES_RTC_PLAY : ES_RTC_PUBLISH,
                            .protocol = ES_PROTO_RELAY, .app = r->app, .stream = r->stream,
                            .token = NULL, .remote = r->host, .counted = true,
                            .on_closed = session_closed, .user = r};
    es_rtc_result_t res;
    r->pending = es_rtc_make_offer(rs->srv->rtc, &req, &res);
    if (!r->pending) {
        set_error(r, "%s", res.error);
        retry(r, now);
        return;
    }
    snprintf(r->session_id, sizeof r->session_id, "%s", "");
    es_fetch_request_t hr = {.method = "POST", .url = r->url, .content_type = "application/sdp",
                            .body = res.sdp, .body_len = strlen(res.sdp), .bearer = r->token,
                            .timeout_ms = HTTP_TIMEOUT_MS, .max_body = ES_SDP_MAX_TEXT,
                            .follow_redirects = true, .user_agent = "estuary-relay"};
    r->call = es_http_fetch(rs->http, &hr, on_answer, r);
    free(res.sdp);
    if (!r->call) {
        es_rtc_pending_free(r->pending);
        r->pending = NULL;
        set_error(r, "cannot start the HTTP request to %s", r->url);
        retry(r, now);
        return;
    }
    r->state = ST_OFFERING;
    es_log_ctx_t lc = rctx(r);
    ES_DEBUG("relay", &lc, "relay %s: offer POSTed to %s", r->id, r->url);
}

static void relay_free(es_relays_t *rs, relay_t *r, const char *why)
{
    if (r->first) {
        set_error(r, "the relay was stopped: %s", why);
        tell_first(r, ES_ENOENT);
    }
    end_attempt(r, why);
    for (relay_t **pp = &rs->relays; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    rs->n--;
    free(r->token);
    free(r);
}

/* The session's state, from the API's view of it. */
static bool session_connected(es_relays_t *rs, const relay_t *r)
{
    json_t *j = r->session_id[0] ? es_rtc_session_json(rs->srv->rtc, r->session_id) : NULL;
    const char *st = json_string_value(json_object_get(j, "state"));
    bool ok = st && !strcmp(st, "connected");
    json_decref(j);
    return ok;
}

static void on_tick(uv_timer_t *t)
{
    es_relays_t *rs = t->data;
    uint64_t now = es_clock_now_us();
    relay_t *next;
    for (relay_t *r = rs->relays; r; r = next) {
        next = r->next;
        es_log_ctx_t lc = rctx(r);
        if (r->state == ST_CONNECTING && session_connected(rs, r)) {
            r->state = ST_CONNECTED;
            r->connected_us = now;
            r->backoff_ms = ES_RELAY_BACKOFF_MIN_MS;
            r->last_error[0] = '\0';
            ES_INFO("relay", &lc, "relay %s %s %s connected after %.0f ms", r->id,
                    dir_name(r->dir), r->url, (double)(now - r->created_us) / 1000.0);
        }
        if (r->origin == ES_RELAY_FROM_EDGE) {
            const es_app_config_t *ac = es_config_find_app(rs->srv->cfg, r->app);
            es_stream_t *st = es_registry_find(rs->srv->registry, r->app, r->stream);
            /* Players waiting for the pull's tracks are not viewers yet: no idle time before
             * they may have attached. */
            if (es_live_viewers(st) > 0 || now - r->created_us < (uint64_t)ES_EDGE_WAIT_MS * 1000)
                r->idle_since_us = 0;
            else if (!r->idle_since_us)
                r->idle_since_us = now;
            uint64_t idle = ac ? (uint64_t)ac->origin_idle_ms * 1000 : 0;
            /* A failed pull stays ES_EDGE_FAILED_KEEP_MS, so that players asking for a name the
             * origin refused are refused at once, without another request to the origin. */
            bool failed_long = r->state == ST_FAILED &&
                               now - r->failed_us >= (uint64_t)ES_EDGE_FAILED_KEEP_MS * 1000;
            if (failed_long || !ac || !ac->origin ||
                (r->state != ST_FAILED && r->idle_since_us && now - r->idle_since_us >= idle)) {
                ES_INFO("relay", &lc, "edge pull %s of %s stopped: %s", r->id, r->local,
                        r->state == ST_FAILED ? r->last_error
                                              : "no player for apps.<app>.origin_idle_ms");
                relay_free(rs, r, "the edge's players are gone");
                continue;
            }
        }
        if (r->state == ST_WAITING && now >= r->next_try_us) attempt(r, now);
    }
}

/* --- the table --- */

es_relays_t *es_relays_new(es_server_t *srv)
{
    es_relays_t *rs = calloc(1, sizeof *rs);
    if (!rs) return NULL;
    rs->srv = srv;
    if (!(rs->http = es_http_client_new(srv->loop))) {
        free(rs);
        return NULL;
    }
    uv_timer_init(srv->loop, &rs->timer);
    rs->timer.data = rs;
    uv_timer_start(&rs->timer, on_tick, TICK_MS, TICK_MS);
    return rs;
}

void es_relays_stop(es_relays_t *rs)
{
    if (!rs || rs->stopping) return;
    rs->stopping = true;
    while (rs->relays) relay_free(rs, rs->relays, "server shutting down");
    uv_close((uv_handle_t *)&rs->timer, NULL);
    /* The DELETEs just sent finish (bounded by DELETE_TIMEOUT_MS) before the client stops. */
    if (!es_http_pending(rs->http)) es_http_client_stop(rs->http);
}

void es_relays_free(es_relays_t *rs)
{
    if (!rs) return;
    es_relays_stop(rs);
    es_http_client_free(rs->http);
    free(rs);
}

size_t es_relays_count(const es_relays_t *rs) { return rs ? rs->n : 0; }

static bool split_local(const char *local, char *app, char *stream)
{
    const char *slash = local ? strchr(local, '/') : NULL;
    if (!slash || (size_t)(slash - local) > ES_APP_NAME_MAX || strlen(slash + 1) > ES_STREAM_NAME_MAX)
        return false;
    memcpy(app, local, (size_t)(slash - local));
    app[slash - local] = '\0';
    strcpy(stream, slash + 1);
    return es_registry_valid_name(app, ES_APP_NAME_MAX) &&
           es_registry_valid_name(stream, ES_STREAM_NAME_MAX);
}

/* An absolute http(s) URL of printable ASCII (RFC 3986 §2: anything else is percent-encoded). */
static bool http_url(const char *u)
{
    if (!u || (strncasecmp(u, "http://", 7) && strncasecmp(u, "https://", 8)) ||
        strlen(u) >= URL_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= ' ' || *p >= 0x7f) return false;
    return true;
}

int es_relay_url(es_relay_dir_t dir, const char *uri, const char *local, const char *remote_name,
                 char *out, size_t cap, char *err, size_t err_len)
{
    err[0] = '\0';
    if (!http_url(uri)) {
        snprintf(err, err_len, "uri must be an http:// or https:// URL");
        return ES_EINVAL;
    }
    const char *path = strchr(strstr(uri, "://") + 3, '/');
    if (path && strcmp(path, "/") != 0) { /* a full endpoint URL */
        if ((size_t)snprintf(out, cap, "%s", uri) >= cap) goto too_long;
        return 0;
    }
    char app[ES_APP_NAME_MAX + 1], stream[ES_STREAM_NAME_MAX + 1];
    char name[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    if (!remote_name || !*remote_name) remote_name = local ? local : "";
    if (strchr(remote_name, '/')) {
        snprintf(name, sizeof name, "%s", remote_name);
    } else { /* a bare stream name: in the local stream's app */
        const char *slash = local ? strchr(local, '/') : NULL;
        snprintf(name, sizeof name, "%.*s/%s", slash ? (int)(slash - local) : 0, local ? local : "",
                 remote_name);
    }
    if (!split_local(name, app, stream)) {
        snprintf(err, err_len, "remoteStreamName must be \"app/stream\" (letters, digits, '_', '-', "
                 "'.'), not '%.200s'", remote_name);
        return ES_EINVAL;
    }
    size_t base = strlen(uri) - (path ? 1 : 0);
    if ((size_t)snprintf(out, cap, "%.*s/%s/%s/%s", (int)base, uri,
                         dir == ES_RELAY_PUSH ? "whip" : "whep", app, stream) >= cap)
        goto too_long;
    return 0;
too_long:
    snprintf(err, err_len, "the URL is too long");
    return ES_EINVAL;
}

int es_relays_add(es_relays_t *rs, const es_relay_spec_t *spec, char *id_out, char *err,
                  size_t err_len)
{
    id_out[0] = '\0';
    err[0] = '\0';
    char app[ES_APP_NAME_MAX + 1], stream[ES_STREAM_NAME_MAX + 1];
    if (!rs || rs->stopping) {
        snprintf(err, err_len, "the server is stopping");
        return ES_EBUSY;
    }
    if (!split_local(spec->local, app, stream)) {
        snprintf(err, err_len, "the local stream must be \"app/stream\" (letters, digits, '_', "
                 "'-', '.'), not '%.200s'", spec->local ? spec->local : "");
        return ES_EINVAL;
    }
    if (!http_url(spec->url)) {
        snprintf(err, err_len, "the remote endpoint must be an http:// or https:// URL");
        return ES_EINVAL;
    }
    if (spec->token && (strlen(spec->token) > 512 ||
                        strspn(spec->token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789-._~+/=") != strlen(spec->token))) {
        snprintf(err, err_len, "the token must be at most 512 characters of A-Z a-z 0-9 - . _ ~ "
                 "+ / = (RFC 6750 §2.1)");
        return ES_EINVAL;
    }
    for (relay_t *r = rs->relays; r; r = r->next)
        if (r->dir == spec->dir && !strcmp(r->local, spec->local) && !strcmp(r->url, spec->url)) {
            snprintf(id_out, ES_RELAY_ID_LEN + 1, "%s", r->id);
            snprintf(err, err_len, "relay %s already %ss %s %s %s", r->id, dir_name(r->dir),
                     r->local, spec->dir == ES_RELAY_PUSH ? "to" : "from", r->url);
            return ES_EEXIST;
        }
    for (relay_t *r = rs->relays; r && spec->dir == ES_RELAY_PULL; r = r->next)
        if (r->dir == ES_RELAY_PULL && !strcmp(r->local, spec->local)) {
            snprintf(id_out, ES_RELAY_ID_LEN + 1, "%s", r->id);
            snprintf(err, err_len, "relay %s already pulls into %s (from %s)", r->id, r->local,
                     r->url);
            return ES_EEXIST;
        }
    if (!es_rtc_server_port(rs->srv->rtc)) {
        snprintf(err, err_len, "WebRTC is off (webrtc.udp_listen is empty)");
        return ES_EBUSY;
    }
    if (rs->n >= ES_RELAYS_MAX) {
        snprintf(err, err_len, "%d relays run already", ES_RELAYS_MAX);
        return ES_EBUSY;
    }
    if (!es_config_find_app(rs->srv->cfg, app)) {
        snprintf(err, err_len, "app '%s' is not configured", app);
        return ES_ENOENT;
    }
    es_stream_t *st = es_registry_find(rs->srv->registry, app, stream);
    if (spec->origin == ES_RELAY_FROM_API) {
        if (spec->dir == ES_RELAY_PUSH && !es_live_publishing(st)) {
            snprintf(err, err_len, "stream %s is not being published", spec->local);
            return ES_ENOENT;
        }
        if (spec->dir == ES_RELAY_PULL && es_live_publishing(st)) {
            snprintf(err, err_len, "stream %s is already being published", spec->local);
            return ES_EEXIST;
        }
    }
    relay_t *r = calloc(1, sizeof *r);
    if (!r || (spec->token && *spec->token && !(r->token = strdup(spec->token)))) {
        free(r);
        snprintf(err, err_len, "out of memory");
        return ES_ENOMEM;
    }
    r->rs = rs;
    es_random_text(r->id, ES_RELAY_ID_LEN, HEX);
    r->dir = spec->dir;
    r->origin = spec->origin;
    snprintf(r->app, sizeof r->app, "%s", app);
    snprintf(r->stream, sizeof r->stream, "%s", stream);
    snprintf(r->local, sizeof r->local, "%s/%s", app, stream);
    snprintf(r->url, sizeof r->url, "%s", spec->url);
    snprintf(r->uri, sizeof r->uri, "%s", spec->uri ? spec->uri : spec->url);
    snprintf(r->remote_name, sizeof r->remote_name, "%s", spec->remote_name ? spec->remote_name : "");
    const char *h = strstr(r->url, "://") + 3;
    snprintf(r->host, sizeof r->host, "%.*s", (int)strcspn(h, "/?#"), h);
    uint64_t now = es_clock_now_us();
    r->created_us = now;
    r->backoff_ms = ES_RELAY_BACKOFF_MIN_MS;
    r->first = spec->first;
    r->first_user = spec->first_user;
    r->next = rs->relays;
    rs->relays = r;
    rs->n++;
    snprintf(id_out, ES_RELAY_ID_LEN + 1, "%s", r->id);
    es_log_ctx_t lc = rctx(r);
    ES_INFO("relay", &lc, "relay %s (%s): %s %s %s %s", r->id, origin_name(r->origin),
            dir_name(r->dir), r->local, r->dir == ES_RELAY_PUSH ? "to" : "from", r->url);
    r->next_try_us = now; /* the first offer goes out from the loop, at once */
    uv_timer_start(&rs->timer, on_tick, 0, TICK_MS);
    return 0;
}

void es_relays_forget_first(es_relays_t *rs, const char *id)
{
    relay_t *r = rs && id ? find(rs, id) : NULL;
    if (r) r->first = NULL;
}

int es_relays_remove(es_relays_t *rs, const char *id)
{
    relay_t *r = rs && id ? find(rs, id) : NULL;
    if (!r) return ES_ENOENT;
    es_log_ctx_t lc = rctx(r);
    ES_INFO("relay", &lc, "relay %s %s %s stopped", r->id, dir_name(r->dir), r->url);
    relay_free(rs, r, "relay stopped");
    return 0;
}

/* --- JSON --- */

static json_t *relay_json(es_relays_t *rs, const relay_t *r, uint64_t now)
{
    json_t *session = r->session_id[0] ? es_rtc_session_json(rs->srv->rtc, r->session_id) : NULL;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:I, s:s, s:I, s:I}", "id",
        r->id, "direction", dir_name(r->dir), "stream", r->local, "url", r->url, "uri", r->uri,
        "remote_stream", r->remote_name, "origin", origin_name(r->origin), "state",
        state_name(r->state), "remote_status", (json_int_t)r->remote_status, "remote_resource",
        r->resource, "session_id", r->session_id, "session", session ? session : json_null(),
        "reconnects", (json_int_t)r->reconnects, "last_error", r->last_error, "age_ms",
        (json_int_t)((now - r->created_us) / 1000), "connected_ms",
        (json_int_t)(r->state == ST_CONNECTED ? (now - r->connected_us) / 1000 : 0));
    return o;
}

json_t *es_relays_json(es_relays_t *rs)
{
    json_t *a = json_array();
    uint64_t now = es_clock_now_us();
    for (relay_t *r = rs ? rs->relays : NULL; r && a; r = r->next)
        json_array_append_new(a, relay_json(rs, r, now));
    return a;
}

json_t *es_relay_json(es_relays_t *rs, const char *id)
{
    relay_t *r = rs && id ? find(rs, id) : NULL;
    return r ? relay_json(rs, r, es_clock_now_us()) : NULL;
}

json_t *es_relays_wcs_json(es_relays_t *rs)
{
    json_t *a = json_array();
    for (relay_t *r = rs ? rs->relays : NULL; r && a; r = r->next) {
        const char *status = r->state == ST_CONNECTED  ? (r->dir == ES_RELAY_PUSH ? "PUBLISHING"
                                                                                   : "PLAYING")
                             : r->state == ST_FAILED   ? "FAILED"
                             : r->state == ST_WAITING  ? (r->attempts ? "RECONNECTING" : "NEW")
                                                       : "PENDING";
        const char *res = strrchr(r->resource, '/');
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "localMediaSessionId", r->id,
                         "remoteMediaSessionId", res ? res + 1 : "", "localStreamName", r->local,
                         "remoteStreamName", r->remote_name, "uri", r->uri, "status", status));
    }
    return a;
}

/* --- configuration and edges --- */

static bool config_has(const es_config_t *cfg, const relay_t *r)
{
    for (size_t i = 0; i < cfg->n_relays; i++) {
        const es_relay_config_t *c = &cfg->relays[i];
        es_relay_dir_t d = !strcmp(c->direction, "push") ? ES_RELAY_PUSH : ES_RELAY_PULL;
        const char *tok = c->token ? c->token : "";
        if (d == r->dir && !strcmp(c->stream, r->local) && !strcmp(c->url, r->url) &&
            !strcmp(tok, r->token ? r->token : ""))
            return true;
    }
    return false;
}

void es_relays_apply_config(es_relays_t *rs)
{
    if (!rs || rs->stopping) return;
    const es_config_t *cfg = rs->srv->cfg;
    relay_t *next;
    for (relay_t *r = rs->relays; r; r = next) { /* removed or changed */
        next = r->next;
        if (r->origin == ES_RELAY_FROM_CONFIG && !config_has(cfg, r)) {
            es_log_ctx_t lc = rctx(r);
            ES_INFO("relay", &lc, "relay %s %s %s is no longer in the configuration: stopped",
                    r->id, dir_name(r->dir), r->url);
            relay_free(rs, r, "removed from the configuration");
        }
    }
    for (size_t i = 0; i < cfg->n_relays; i++) {
        const es_relay_config_t *c = &cfg->relays[i];
        es_relay_spec_t spec = {.dir = !strcmp(c->direction, "push") ? ES_RELAY_PUSH
                                                                      : ES_RELAY_PULL,
                                .local = c->stream, .url = c->url, .token = c->token,
                                .origin = ES_RELAY_FROM_CONFIG};
        char id[ES_RELAY_ID_LEN + 1], err[300];
        int rc = es_relays_add(rs, &spec, id, err, sizeof err);
        relay_t *clash = rc == ES_EEXIST ? find(rs, id) : NULL;
        if ((rc != 0 && rc != ES_EEXIST) || (clash && clash->origin != ES_RELAY_FROM_CONFIG))
            ES_WARN("relay", NULL, "relays[%zu] (%s %s %s) not started: %s", i, c->direction,
                    c->stream, c->url, err);
    }
}

bool es_relays_pulling(es_relays_t *rs, const char *app, const char *stream)
{
    char local[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    snprintf(local, sizeof local, "%s/%s", app, stream);
    for (relay_t *r = rs ? rs->relays : NULL; r; r = r->next)
        if (r->dir == ES_RELAY_PULL && !strcmp(r->local, local)) return r->state != ST_FAILED;
    return false;
}

bool es_relays_edge_pull(es_relays_t *rs, const char *app, const char *stream, const char *ip)
{
    if (!rs || rs->stopping) return false;
    const es_app_config_t *ac = es_config_find_app(rs->srv->cfg, app);
    if (!ac || !ac->origin) return false;
    char local[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2], url[URL_MAX], err[300];
    snprintf(local, sizeof local, "%s/%s", app, stream);
    for (relay_t *r = rs->relays; r; r = r->next)
        if (r->dir == ES_RELAY_PULL && !strcmp(r->local, local)) {
            r->idle_since_us = 0;
            return r->state != ST_FAILED;
        }
    if (es_live_publishing(es_registry_find(rs->srv->registry, app, stream)))
        return false; /* published here: nothing to pull */
    size_t mine = 0;
    for (relay_t *r = rs->relays; r && ip; r = r->next)
        mine += r->origin == ES_RELAY_FROM_EDGE && !strcmp(r->creator, ip);
    if (ip && mine >= ES_EDGE_PULLS_PER_IP) {
        es_log_ctx_t lc = {.stream = local, .remote = ip};
        ES_INFO("relay", &lc, "edge pull of %s not started: %zu pulls began for players of %s "
                "already (at most %d)", local, mine, ip, ES_EDGE_PULLS_PER_IP);
        return false;
    }
    if (es_relay_url(ES_RELAY_PULL, ac->origin, local, local, url, sizeof url, err, sizeof err)) {
        ES_WARN("relay", NULL, "apps.%s.origin: %s", app, err);
        return false;
    }
    es_relay_spec_t spec = {.dir = ES_RELAY_PULL, .local = local, .url = url,
                            .token = ac->origin_token, .origin = ES_RELAY_FROM_EDGE};
    char id[ES_RELAY_ID_LEN + 1];
    int rc = es_relays_add(rs, &spec, id, err, sizeof err);
    if (rc != 0 && rc != ES_EEXIST) {
        ES_WARN("relay", NULL, "edge pull of %s from %s: %s", local, url, err);
        return false;
    }
    relay_t *r = find(rs, id);
    if (r && ip) snprintf(r->creator, sizeof r->creator, "%s", ip);
    return true;
}
