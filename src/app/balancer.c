/* WHIP/WHEP load balancing by 307 (include/estuary/balancer.h): a table of members (base URLs
 * from every app's `balancer` list), each polled for its load with GET /api/v1/load. */
#include "estuary/balancer.h"

#include "estuary/clock.h"
#include "estuary/config.h"
#include "estuary/http_client.h"
#include "estuary/log.h"
#include "estuary/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct member {
    char url[512];           /* base URL, without a trailing '/' */
    char token[256];
    long sessions;           /* the last reported load, plus our redirects since */
    uint64_t last_ok_us, last_poll_us;
    es_http_call_t *call;
    char last_error[200];
    bool seen;               /* still in the configuration at the last poll */
} member_t;

struct es_balancer {
    es_server_t *srv;
    es_http_client_t *http;
    uv_timer_t timer;
    member_t members[ES_BALANCER_MAX_MEMBERS];
    size_t n;
    bool stopping;
};

static void base_url(const char *in, char *out, size_t cap)
{
    snprintf(out, cap, "%s", in);
    size_t n = strlen(out);
    while (n && out[n - 1] == '/') out[--n] = '\0';
}

static member_t *member_find(es_balancer_t *b, const char *url)
{
    for (size_t i = 0; i < b->n; i++)
        if (!strcmp(b->members[i].url, url)) return &b->members[i];
    return NULL;
}

static void on_load(void *user, const es_fetch_response_t *res)
{
    member_t *m = user;
    m->call = NULL;
    json_t *j = NULL;
    if (res->err) {
        snprintf(m->last_error, sizeof m->last_error, "%s", res->error);
    } else if (res->status != 200 || !(j = json_loadb(res->body, res->body_len, 0, NULL)) ||
               !json_is_integer(json_object_get(j, "sessions"))) {
        snprintf(m->last_error, sizeof m->last_error, "GET /api/v1/load answered %ld%s",
                 res->status, res->status == 200 ? " without \"sessions\"" : "");
    } else {
        m->sessions = (long)json_integer_value(json_object_get(j, "sessions"));
        m->last_ok_us = es_clock_now_us();
        m->last_error[0] = '\0';
    }
    json_decref(j);
}

static void poll_member(es_balancer_t *b, member_t *m, uint64_t now)
{
    if (m->call || now - m->last_poll_us < (uint64_t)ES_BALANCER_POLL_MS * 1000) return;
    m->last_poll_us = now;
    char url[600];
    snprintf(url, sizeof url, "%s/api/v1/load", m->url);
    es_fetch_request_t req = {.method = "GET", .url = url, .bearer = m->token,
                              .timeout_ms = ES_BALANCER_POLL_MS, .user_agent = "estuary-balancer"};
    m->call = es_http_fetch(b->http, &req, on_load, m);
    if (!m->call) snprintf(m->last_error, sizeof m->last_error, "cannot start the request");
}

static void on_tick(uv_timer_t *t)
{
    es_balancer_t *b = t->data;
    const es_config_t *cfg = b->srv->cfg;
    uint64_t now = es_clock_now_us();
    for (size_t i = 0; i < b->n; i++) b->members[i].seen = false;
    for (size_t a = 0; a < cfg->n_apps; a++) {
        const es_app_config_t *ac = &cfg->apps[a];
        for (size_t k = 0; k < ac->n_balancer; k++) {
            char url[512];
            base_url(ac->balancer[k], url, sizeof url);
            member_t *m = member_find(b, url);
            if (!m && b->n < ES_BALANCER_MAX_MEMBERS) {
                m = &b->members[b->n++];
                memset(m, 0, sizeof *m);
                snprintf(m->url, sizeof m->url, "%s", url);
            }
            if (!m) continue;
            snprintf(m->token, sizeof m->token, "%s", ac->balancer_token ? ac->balancer_token : "");
            m->seen = true;
        }
    }
    for (size_t i = 0; i < b->n;) { /* members no app lists any more */
        if (!b->members[i].seen && !b->members[i].call) {
            member_t *last = &b->members[b->n - 1];
            if (last->call) { /* its callback's pointer would move: poll it again later */
                es_http_cancel(last->call);
                last->call = NULL;
                last->last_poll_us = 0;
            }
            b->members[i] = *last;
            b->n--;
            continue;
        }
        if (b->members[i].seen) poll_member(b, &b->members[i], now);
        i++;
    }
}

es_balancer_t *es_balancer_new(es_server_t *srv)
{
    es_balancer_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->srv = srv;
    if (!(b->http = es_http_client_new(srv->loop))) {
        free(b);
        return NULL;
    }
    uv_timer_init(srv->loop, &b->timer);
    b->timer.data = b;
    uv_timer_start(&b->timer, on_tick, 0, 250);
    return b;
}

void es_balancer_stop(es_balancer_t *b)
{
    if (!b || b->stopping) return;
    b->stopping = true;
    for (size_t i = 0; i < b->n; i++) b->members[i].call = NULL; /* cancelled below */
    es_http_client_stop(b->http);
    uv_close((uv_handle_t *)&b->timer, NULL);
}

void es_balancer_free(es_balancer_t *b)
{
    if (!b) return;
    es_balancer_stop(b);
    es_http_client_free(b->http);
    free(b);
}

const char *es_balancer_pick(es_balancer_t *b, const char *app)
{
    const es_app_config_t *ac = b ? es_config_find_app(b->srv->cfg, app) : NULL;
    if (!ac || !ac->n_balancer) return NULL;
    uint64_t now = es_clock_now_us();
    member_t *best = NULL;
    for (size_t k = 0; k < ac->n_balancer; k++) {
        char url[512];
        base_url(ac->balancer[k], url, sizeof url);
        member_t *m = member_find(b, url);
        if (!m || !m->last_ok_us || now - m->last_ok_us > (uint64_t)ES_BALANCER_STALE_MS * 1000)
            continue;
        if (!best || m->sessions < best->sessions) best = m;
    }
    if (!best) return NULL;
    best->sessions++;
    return best->url;
}

json_t *es_balancer_json(es_balancer_t *b)
{
    json_t *a = json_array();
    uint64_t now = es_clock_now_us();
    for (size_t i = 0; b && a && i < b->n; i++) {
        const member_t *m = &b->members[i];
        bool alive = m->last_ok_us && now - m->last_ok_us <= (uint64_t)ES_BALANCER_STALE_MS * 1000;
        json_array_append_new(a, json_pack("{s:s, s:I, s:b, s:s}", "url", m->url, "sessions",
                                           (json_int_t)m->sessions, "alive", alive, "last_error",
                                           m->last_error));
    }
    return a;
}
