/* HTTP hooks (include/estuary/hooks.h): each call is a POST through the daemon's HTTP client on
 * the libuv loop (include/estuary/http_client.h), so a slow hook delays only the client it decides
 * about. Here: the JSON body, the outcome in words, the count of calls per client address, and
 * admission with hooks for every protocol. */
#include "estuary/hooks.h"

#include "estuary/error.h"
#include "estuary/http_client.h"
#include "estuary/clock.h"
#include "estuary/live.h"
#include "estuary/log.h"
#include "estuary/relay.h"
#include "estuary/server.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX 4096 /* bytes of a hook's answer kept for its reason */
#define WAIT_TICK_MS 50

struct es_hooks {
    es_http_client_t *http;
    uv_timer_t wait_timer;   /* runs while admissions wait for an edge's pull */
    size_t waiting;
    es_hook_call_t *calls;
    size_t pending;
    bool stopping;
};

/* An admission waiting for the stream an edge pulls from its origin (es_admit_begin). */
typedef struct edge_wait {
    es_server_t *srv;
    es_admit_request_t req;  /* its strings point below */
    char app[ES_APP_NAME_MAX + 1], stream[ES_STREAM_NAME_MAX + 1];
    char client[64], session_id[64];
    char *token, *query;     /* malloc'ed or NULL */
    char ip[64];             /* the client's address key: edge pulls it may start are capped */
    uint64_t deadline_us;
    bool need_tracks;        /* a WebRTC player: waits for the pull's tracks */
    bool waiting;            /* in the wait stage (counted in es_hooks_t.waiting) */
} edge_wait_t;

struct es_hook_call {
    es_hooks_t *h;
    es_http_call_t *fetch;   /* the POST in flight; NULL once it completes */
    char url[256];           /* for logs */
    char action[16];
    char ip[64];             /* the client's key (es_client_ip), for the per-address cap */
    es_hook_done_fn done;    /* NULL: told, not asked */
    void *user;
    edge_wait_t *wait;       /* waiting for an edge's pull (no fetch yet), or NULL */
    es_hook_call_t *prev, *next;
};

es_hooks_t *es_hooks_new(uv_loop_t *loop)
{
    es_hooks_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    if (!(h->http = es_http_client_new(loop))) {
        free(h);
        return NULL;
    }
    uv_timer_init(loop, &h->wait_timer);
    h->wait_timer.data = h;
    return h;
}

static void call_free(es_hook_call_t *c)
{
    es_hooks_t *h = c->h;
    if (c->prev) c->prev->next = c->next;
    else h->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    h->pending--;
    es_http_cancel(c->fetch);
    if (c->wait) {
        bool waiting = c->wait->waiting;
        free(c->wait->token);
        free(c->wait->query);
        free(c->wait);
        if (waiting && --h->waiting == 0 && !h->stopping) uv_timer_stop(&h->wait_timer);
    }
    free(c);
}

/* The reason of a refusing answer: JSON "reason"/"error", else the first line, else the status.
 * Control characters become spaces: the reason goes to clients and logs. */
static void answer_reason(const es_fetch_response_t *res, char *out, size_t len)
{
    out[0] = '\0';
    json_t *j = res->body_len ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
    const char *r = NULL;
    if (json_is_object(j)) {
        r = json_string_value(json_object_get(j, "reason"));
        if (!r) r = json_string_value(json_object_get(j, "error"));
    }
    if (r) snprintf(out, len, "%s", r);
    else if (!j && res->body_len)
        snprintf(out, len, "%.*s", (int)strcspn(res->body, "\r\n"), res->body);
    json_decref(j);
    if (!out[0]) snprintf(out, len, "HTTP %ld", res->status);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
}

/* The HTTP client's done, for asked and told calls alike: always from the loop. */
static void edge_after_hook(es_hook_call_t *c);

static void on_answer(void *user, const es_fetch_response_t *res)
{
    es_hook_call_t *c = user;
    char why[ES_HOOK_REASON_MAX];
    int err;
    if (res->err == ES_ETIMEDOUT) {
        err = ES_EACCES;
        snprintf(why, sizeof why, "the %s hook did not answer within hooks.timeout_ms",
                 c->action);
    } else if (res->err) {
        err = ES_EACCES;
        snprintf(why, sizeof why, "the %s hook failed: %s", c->action, res->error);
    } else if (res->status >= 200 && res->status < 300) {
        err = 0;
        why[0] = '\0';
    } else {
        char r[200];
        answer_reason(res, r, sizeof r);
        err = ES_EACCES;
        snprintf(why, sizeof why, "refused by the %s hook: %s", c->action, r);
    }
    c->fetch = NULL; /* the client frees it when this returns */
    if (err == 0 && c->wait) { /* an edge's player the hook admitted: now the pull */
        edge_after_hook(c);
        return;
    }
    es_hook_done_fn done = c->done;
    void *user_done = c->user;
    if (!done && err) ES_DEBUG("hooks", NULL, "%s hook %s: %s", c->action, c->url, why);
    call_free(c);
    if (done) done(user_done, err, why);
}

/* {"a": "1", "b": "2"} from "a=1&b=2". */
static json_t *query_json(const char *q)
{
    json_t *o = json_object();
    for (const char *p = q; o && p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        char key[128];
        size_t kl = eq ? (size_t)(eq - p) : n;
        if (kl && kl < sizeof key) {
            memcpy(key, p, kl);
            key[kl] = '\0';
            json_t *v = eq ? json_stringn(eq + 1, n - kl - 1) : json_string("");
            if (v) json_object_set_new(o, key, v);
        }
        p = amp ? amp + 1 : NULL;
    }
    return o;
}

static char *event_body(const es_hook_event_t *ev)
{
    char ip[48];
    es_client_ip(ev->client, ip, sizeof ip);
#define S(x) ((x) ? (x) : "")
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "action", S(ev->action),
                          "protocol", es_protocol_name(ev->protocol), "app", S(ev->app), "stream",
                          S(ev->stream), "client_ip", ip, "client", S(ev->client), "session_id",
                          S(ev->session_id), "query", query_json(ev->query));
#undef S
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* A new call in h's list, counted as pending: NULL when stopping, full or out of memory. */
static es_hook_call_t *call_new(es_hooks_t *h, const char *client, es_hook_done_fn done,
                                void *user)
{
    if (!h || h->stopping || h->pending >= ES_HOOKS_MAX_PENDING) return NULL;
    es_hook_call_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->h = h;
    c->done = done;
    c->user = user;
    es_client_ip(client, c->ip, sizeof c->ip);
    c->next = h->calls;
    if (h->calls) h->calls->prev = c;
    h->calls = c;
    h->pending++;
    return c;
}

/* POSTs ev to url for call c; on_answer completes it. false when the request cannot start. */
static bool ask(es_hook_call_t *c, const char *url, const es_hook_event_t *ev,
                uint32_t timeout_ms)
{
    char *body = url ? event_body(ev) : NULL;
    if (!body) return false;
    snprintf(c->url, sizeof c->url, "%s", url);
    snprintf(c->action, sizeof c->action, "%s", ev->action ? ev->action : "");
    /* Redirects are not followed: a hook answers itself, and a 3xx refuses like any non-2xx. */
    es_fetch_request_t req = {.method = "POST", .url = url, .content_type = "application/json",
                              .body = body, .body_len = strlen(body),
                              .user_agent = "estuary-hooks", .timeout_ms = timeout_ms,
                              .max_body = BODY_MAX, .follow_redirects = false};
    c->fetch = es_http_fetch(c->h->http, &req, on_answer, c); /* copies the body */
    free(body);
    return c->fetch != NULL;
}

static es_hook_call_t *start(es_hooks_t *h, const char *url, const es_hook_event_t *ev,
                             uint32_t timeout_ms, es_hook_done_fn done, void *user)
{
    es_hook_call_t *c = call_new(h, ev->client, done, user);
    if (c && !ask(c, url, ev, timeout_ms)) {
        call_free(c);
        c = NULL;
    }
    return c;
}

es_hook_call_t *es_hooks_ask(es_hooks_t *h, const char *url, const es_hook_event_t *ev,
                             uint32_t timeout_ms, es_hook_done_fn done, void *user)
{
    return done ? start(h, url, ev, timeout_ms, done, user) : NULL;
}

void es_hooks_tell(es_hooks_t *h, const char *url, const es_hook_event_t *ev, uint32_t timeout_ms)
{
    if (h && url && *url) start(h, url, ev, timeout_ms, NULL, NULL);
}

void es_hook_cancel(es_hook_call_t *c)
{
    if (c) call_free(c);
}

size_t es_hooks_pending(const es_hooks_t *h) { return h ? h->pending : 0; }

size_t es_hooks_pending_from(const es_hooks_t *h, const char *ip)
{
    size_t n = 0;
    for (const es_hook_call_t *c = h ? h->calls : NULL; c; c = c->next)
        n += c->done && !strcmp(c->ip, ip);
    return n;
}

void es_hooks_stop(es_hooks_t *h)
{
    if (!h || h->stopping) return;
    h->stopping = true;
    while (h->calls) call_free(h->calls);
    es_http_client_stop(h->http);
    uv_close((uv_handle_t *)&h->wait_timer, NULL);
}

void es_hooks_free(es_hooks_t *h)
{
    if (!h) return;
    es_hooks_stop(h);
    es_http_client_free(h->http);
    free(h);
}

/* --- admission waiting for an edge's pull --- */

/* Ends a waiting call (the app's hook, if any, admitted it before it waited). */
static void wait_end(es_hook_call_t *c, int err, const char *reason)
{
    es_hook_done_fn done = c->done;
    void *user = c->user;
    char why[ES_HOOK_REASON_MAX];
    snprintf(why, sizeof why, "%s", reason);
    call_free(c);
    done(user, err, why);
}

static void on_wait_tick(uv_timer_t *t)
{
    es_hooks_t *h = t->data;
    uint64_t now = es_clock_now_us();
    es_hook_call_t *c = h->calls, *next;
    for (; c; c = next) {
        next = c->next;
        edge_wait_t *w = c->wait;
        if (!w || !w->waiting) continue; /* not an edge's call, or its hook is being asked */
        es_admit_decision_t d;
        int rc = es_admit_now(w->srv, &w->req, w->client, &d);
        if (rc == ES_ENOENT && es_relays_pulling(w->srv->relays, w->app, w->stream) &&
            now < w->deadline_us)
            continue;
        if (rc == ES_ENOENT)
            snprintf(d.reason, sizeof d.reason, "stream %.64s/%.128s is not being published "
                     "here, and its origin did not deliver it within %d ms", w->app, w->stream,
                     ES_EDGE_WAIT_MS);
        wait_end(c, rc, rc ? d.reason : "");
        next = h->calls; /* the callback may have cancelled others */
    }
}

/* A call that waits (at most ES_EDGE_WAIT_MS) for the stream req names to be published here by
 * the edge's pull, then admits as es_admit_begin would. NULL when out of memory. */
static es_hook_call_t *wait_for_edge(es_server_t *srv, const es_admit_request_t *req,
                                     const char *client, const char *session_id,
                                     const char *query, es_hook_done_fn done, void *user)
{
    edge_wait_t *w = calloc(1, sizeof *w);
    es_hook_call_t *c = NULL;
    if (!w || (req->token && !(w->token = strdup(req->token))) ||
        (query && !(w->query = strdup(query))) ||
        !(c = call_new(srv->hooks, client, done, user))) {
        if (w) {
            free(w->token);
            free(w->query);
        }
        free(w);
        return NULL;
    }
    w->srv = srv;
    w->req = *req;
    snprintf(w->app, sizeof w->app, "%s", req->app);
    snprintf(w->stream, sizeof w->stream, "%s", req->stream);
    snprintf(w->client, sizeof w->client, "%s", client ? client : "");
    snprintf(w->session_id, sizeof w->session_id, "%s", session_id ? session_id : "");
    w->req.app = w->app;
    w->req.stream = w->stream;
    w->req.token = w->token;
    es_client_ip(client, w->ip, sizeof w->ip);
    c->wait = w;
    snprintf(c->action, sizeof c->action, "edge");
    return c;
}

/* The wait stage: the pull runs; WebRTC players wait for its tracks. */
static void start_wait(es_hook_call_t *c)
{
    es_hooks_t *h = c->h;
    c->wait->waiting = true;
    c->wait->deadline_us = es_clock_now_us() + (uint64_t)ES_EDGE_WAIT_MS * 1000;
    if (h->waiting++ == 0) uv_timer_start(&h->wait_timer, on_wait_tick, WAIT_TICK_MS, WAIT_TICK_MS);
}

/* The app's on_play hook admitted an edge's player: start the pull, then wait for its tracks
 * (a WebRTC player) or admit now. */
static void edge_after_hook(es_hook_call_t *c)
{
    edge_wait_t *w = c->wait;
    bool pulling = es_relays_edge_pull(w->srv->relays, w->app, w->stream, w->ip);
    if (w->need_tracks && pulling) {
        start_wait(c);
        return;
    }
    char why[ES_HOOK_REASON_MAX] = "";
    int err = 0;
    if (w->need_tracks) {
        es_admit_decision_t d;
        err = es_admit_now(w->srv, &w->req, w->client, &d); /* published meanwhile? */
        if (err) snprintf(why, sizeof why, "%.200s; no pull from the origin could start", d.reason);
    }
    es_hook_done_fn done = c->done;
    void *user = c->user;
    call_free(c);
    done(user, err, why);
}

/* --- admission with hooks --- */

void es_admit_log_refusal(es_protocol_t p, es_admit_role_t role, const char *app,
                          const char *stream, const char *client, const char *session_id,
                          int err, const char *reason)
{
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    snprintf(key, sizeof key, "%.64s/%.128s", app ? app : "", stream ? stream : "");
    es_log_ctx_t lc = {.peer = session_id, .remote = client, .stream = key};
    ES_INFO("admission", &lc, "%s %s refused (%s): %s", es_protocol_name(p),
            role == ES_ADMIT_PUBLISH ? "publish" : "play", es_strerror(err), reason);
}

int es_admit_now(es_server_t *srv, const es_admit_request_t *req0, const char *client,
                 es_admit_decision_t *d)
{
    es_admit_request_t req = *req0;
    char ip[64];
    es_client_ip(client, ip, sizeof ip);
    req.sessions = srv->sessions;
    req.sessions_from_ip = es_clients_sessions(srv->clients, ip);
    return es_admit(srv->registry, srv->cfg, &req, d);
}

int es_admit_begin(es_server_t *srv, const es_admit_request_t *req, const char *client,
                   const char *session_id, const char *query, es_admit_decision_t *d,
                   es_hook_done_fn done, void *user, es_hook_call_t **call)
{
    *call = NULL;
    char ip[64];
    es_client_ip(client, ip, sizeof ip);
    int rc = es_admit_now(srv, req, client, d);
    /* An edge: a player of a stream not published here makes the app pull it from its origin,
     * once the app's on_play hook (if any) admitted it; a WebRTC player, which needs the
     * stream's tracks for its answer, waits for them. */
    const es_app_config_t *ac = es_config_find_app(srv->cfg, req->app);
    const char *play_hook = ac && ac->on_play && *ac->on_play ? ac->on_play : NULL;
    if (req->role == ES_ADMIT_PLAY && req->protocol != ES_PROTO_RELAY && ac && ac->origin &&
        (rc == 0 || rc == ES_ENOENT)) {
        bool need_tracks = rc == ES_ENOENT;
        if (!play_hook && !es_relays_edge_pull(srv->relays, req->app, req->stream, ip)) {
            if (need_tracks)
                snprintf(d->reason + strlen(d->reason), sizeof d->reason - strlen(d->reason),
                         "; no pull from the origin could start");
        } else if ((play_hook || need_tracks) &&
                   es_hooks_pending_from(srv->hooks, ip) >= ES_HOOKS_MAX_PENDING_PER_IP) {
            rc = d->err = ES_ELIMIT;
            snprintf(d->reason, sizeof d->reason, "too many admissions of this address are "
                     "waiting (%d)", ES_HOOKS_MAX_PENDING_PER_IP);
        } else if (play_hook || need_tracks) {
            es_hook_call_t *c = wait_for_edge(srv, req, client, session_id, query, done, user);
            if (c) {
                c->wait->need_tracks = need_tracks;
                es_hook_event_t ev = {.action = "on_play", .protocol = req->protocol,
                                      .app = req->app, .stream = req->stream, .client = client,
                                      .session_id = session_id, .query = query};
                if (play_hook && !ask(c, play_hook, &ev, srv->cfg->hooks.timeout_ms)) {
                    call_free(c);
                    c = NULL;
                } else if (!play_hook) {
                    start_wait(c);
                }
            }
            if ((*call = c)) {
                d->err = 0;
                d->reason[0] = '\0';
                return 0;
            }
            rc = d->err = ES_EBUSY;
            snprintf(d->reason, sizeof d->reason, "cannot wait for the hook or the origin now");
        }
    } else if (rc == 0 && d->hook &&
               es_hooks_pending_from(srv->hooks, ip) >= ES_HOOKS_MAX_PENDING_PER_IP) {
        rc = d->err = ES_ELIMIT;
        snprintf(d->reason, sizeof d->reason, "too many admissions of this address are waiting "
                 "for a hook (%d)", ES_HOOKS_MAX_PENDING_PER_IP);
    } else if (rc == 0 && d->hook) {
        es_hook_event_t ev = {.action = req->role == ES_ADMIT_PUBLISH ? "on_publish" : "on_play",
                              .protocol = req->protocol, .app = req->app, .stream = req->stream,
                              .client = client, .session_id = session_id, .query = query};
        *call = es_hooks_ask(srv->hooks, d->hook, &ev, srv->cfg->hooks.timeout_ms, done, user);
        if (!*call) {
            rc = d->err = ES_EBUSY;
            snprintf(d->reason, sizeof d->reason, "cannot ask the %s hook now (%zu calls pending)",
                     ev.action, es_hooks_pending(srv->hooks));
        }
    }
    if (rc != 0)
        es_admit_log_refusal(req->protocol, req->role, req->app, req->stream, client, session_id, rc,
                             d->reason);
    return rc;
}

void es_admit_end(es_server_t *srv, es_protocol_t p, es_admit_role_t role, const char *app,
                  const char *stream, const char *client, const char *session_id)
{
    if (p == ES_PROTO_RELAY) return; /* relays were not asked either */
    const es_app_config_t *ac = es_config_find_app(srv->cfg, app);
    const char *url = !ac ? NULL : role == ES_ADMIT_PUBLISH ? ac->on_unpublish : ac->on_stop;
    if (!url || !*url) return;
    es_hook_event_t ev = {.action = role == ES_ADMIT_PUBLISH ? "on_unpublish" : "on_stop",
                          .protocol = p, .app = app, .stream = stream, .client = client,
                          .session_id = session_id};
    es_hooks_tell(srv->hooks, url, &ev, srv->cfg->hooks.timeout_ms);
}

void es_server_session_open(es_server_t *srv, const char *client)
{
    char ip[48];
    es_client_ip(client, ip, sizeof ip);
    srv->sessions++;
    es_clients_add(srv->clients, ip);
}

void es_server_session_close(es_server_t *srv, const char *client)
{
    char ip[48];
    es_client_ip(client, ip, sizeof ip);
    if (srv->sessions) srv->sessions--;
    es_clients_remove(srv->clients, ip);
}
