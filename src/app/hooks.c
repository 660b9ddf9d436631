/* HTTP hooks on libcurl's multi interface driven by libuv (include/estuary/hooks.h): curl tells
 * which sockets to watch (one uv_poll_t each) and when to wake it (one uv_timer_t); every call
 * is an easy handle in the multi handle, completed from curl_multi_info_read. */
#include "estuary/hooks.h"

#include "estuary/error.h"
#include "estuary/log.h"
#include "estuary/server.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX 4096 /* bytes of a hook's answer kept for its reason */

struct es_hooks {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_idle_t kick;          /* completes calls refused before curl ran (never inside ask) */
    es_hook_call_t *calls;
    size_t pending;
    bool stopping;
};

struct es_hook_call {
    es_hooks_t *h;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char answer[BODY_MAX + 1];
    size_t answer_len;
    char url[256];           /* for logs */
    char action[16];
    char ip[64];             /* the client's key (es_client_ip), for the per-address cap */
    es_hook_done_fn done;    /* NULL: told, not asked */
    void *user;
    int early_err;           /* refused before curl ran: completed by the idle handle */
    char early_reason[ES_HOOK_REASON_MAX];
    es_hook_call_t *prev, *next;
};

typedef struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    es_hooks_t *h;
} poll_ctx_t;

static void check_done(es_hooks_t *h);

static void on_poll(uv_poll_t *p, int status, int events)
{
    poll_ctx_t *pc = p->data;
    int flags = 0, running;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    es_hooks_t *h = pc->h;
    curl_multi_socket_action(h->multi, pc->fd, flags, &running);
    check_done(h);
}

static void on_poll_closed(uv_handle_t *hd) { free(hd->data); }

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    es_hooks_t *h = userp;
    poll_ctx_t *pc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (pc) {
            uv_poll_stop(&pc->poll);
            uv_close((uv_handle_t *)&pc->poll, on_poll_closed);
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (!pc) {
        if (!(pc = calloc(1, sizeof *pc))) return -1;
        pc->fd = fd;
        pc->h = h;
        if (uv_poll_init_socket(h->loop, &pc->poll, fd) != 0) {
            free(pc);
            return -1;
        }
        pc->poll.data = pc;
        curl_multi_assign(h->multi, fd, pc);
    }
    int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&pc->poll, events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    es_hooks_t *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int on_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    es_hooks_t *h = userp;
    if (timeout_ms < 0) uv_timer_stop(&h->timer);
    else uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

es_hooks_t *es_hooks_new(uv_loop_t *loop)
{
    static bool global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
        global_done = true;
    }
    es_hooks_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->loop = loop;
    if (!(h->multi = curl_multi_init())) {
        free(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_idle_init(loop, &h->kick);
    h->kick.data = h;
    return h;
}

static void call_free(es_hook_call_t *c)
{
    es_hooks_t *h = c->h;
    if (c->prev) c->prev->next = c->next;
    else h->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    h->pending--;
    if (c->easy) {
        if (h->multi) curl_multi_remove_handle(h->multi, c->easy);
        curl_easy_cleanup(c->easy);
    }
    curl_slist_free_all(c->headers);
    free(c->body);
    free(c);
}

/* The reason of a refusing answer: JSON "reason"/"error", else the first line, else the status.
 * Control characters become spaces: the reason goes to clients and logs. */
static void answer_reason(const es_hook_call_t *c, long status, char *out, size_t len)
{
    out[0] = '\0';
    json_t *j = c->answer_len ? json_loadb(c->answer, c->answer_len, 0, NULL) : NULL;
    const char *r = NULL;
    if (json_is_object(j)) {
        r = json_string_value(json_object_get(j, "reason"));
        if (!r) r = json_string_value(json_object_get(j, "error"));
    }
    if (r) snprintf(out, len, "%s", r);
    else if (!j && c->answer_len) snprintf(out, len, "%.*s", (int)strcspn(c->answer, "\r\n"), c->answer);
    json_decref(j);
    if (!out[0]) snprintf(out, len, "HTTP %ld", status);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
}

static void complete(es_hook_call_t *c, int err, const char *reason)
{
    es_hook_done_fn done = c->done;
    void *user = c->user;
    char why[ES_HOOK_REASON_MAX];
    snprintf(why, sizeof why, "%s", reason);
    if (!done && err)
        ES_DEBUG("hooks", NULL, "%s hook %s: %s", c->action, c->url, why);
    call_free(c);
    if (done) done(user, err, why);
}

static void check_done(es_hooks_t *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        es_hook_call_t *c = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        if (!c) continue;
        long status = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        char why[ES_HOOK_REASON_MAX];
        int err;
        if (m->data.result == CURLE_OPERATION_TIMEDOUT) {
            err = ES_EACCES;
            snprintf(why, sizeof why, "the %s hook did not answer within hooks.timeout_ms",
                     c->action);
        } else if (m->data.result != CURLE_OK) {
            err = ES_EACCES;
            snprintf(why, sizeof why, "the %s hook failed: %s", c->action,
                     curl_easy_strerror(m->data.result));
        } else if (status >= 200 && status < 300) {
            err = 0;
            why[0] = '\0';
        } else {
            char r[200];
            answer_reason(c, status, r, sizeof r);
            err = ES_EACCES;
            snprintf(why, sizeof why, "refused by the %s hook: %s", c->action, r);
        }
        complete(c, err, why);
    }
}

static size_t on_answer(char *data, size_t size, size_t n, void *user)
{
    es_hook_call_t *c = user;
    size_t len = size * n, room = BODY_MAX - c->answer_len;
    size_t take = len < room ? len : room;
    memcpy(c->answer + c->answer_len, data, take);
    c->answer_len += take;
    c->answer[c->answer_len] = '\0';
    return len; /* the rest is read and dropped */
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

static void on_kick(uv_idle_t *idle)
{
    es_hooks_t *h = idle->data;
    uv_idle_stop(idle);
    es_hook_call_t *c = h->calls, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->early_err) complete(c, c->early_err, c->early_reason);
    }
}

static es_hook_call_t *start(es_hooks_t *h, const char *url, const es_hook_event_t *ev,
                             uint32_t timeout_ms, es_hook_done_fn done, void *user)
{
    if (!h || h->stopping || h->pending >= ES_HOOKS_MAX_PENDING) return NULL;
    es_hook_call_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->h = h;
    c->done = done;
    c->user = user;
    snprintf(c->url, sizeof c->url, "%s", url);
    snprintf(c->action, sizeof c->action, "%s", ev->action ? ev->action : "");
    es_client_ip(ev->client, c->ip, sizeof c->ip);
    c->next = h->calls;
    if (h->calls) h->calls->prev = c;
    h->calls = c;
    h->pending++;
    c->body = event_body(ev);
    c->easy = curl_easy_init();
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!c->body || !c->easy || !c->headers) {
        call_free(c);
        return NULL;
    }
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->easy, CURLOPT_USERAGENT, "estuary-hooks");
    if (curl_multi_add_handle(h->multi, c->easy) != CURLM_OK) {
        /* Completed from the loop, as the interface promises. */
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
        c->early_err = ES_EACCES;
        snprintf(c->early_reason, sizeof c->early_reason, "the %s hook could not start",
                 c->action);
        uv_idle_start(&h->kick, on_kick);
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
    /* Closes the cached connections while the loop still runs their poll handles' close. */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    if (!uv_is_closing((uv_handle_t *)&h->timer)) uv_close((uv_handle_t *)&h->timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&h->kick)) uv_close((uv_handle_t *)&h->kick, NULL);
}

void es_hooks_free(es_hooks_t *h)
{
    if (!h) return;
    es_hooks_stop(h);
    free(h);
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
    if (rc == 0 && d->hook && es_hooks_pending_from(srv->hooks, ip) >= ES_HOOKS_MAX_PENDING_PER_IP) {
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
