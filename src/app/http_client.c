/* HTTP client on libcurl's multi interface driven by libuv (include/estuary/http_client.h):
 * curl tells which sockets to watch (one uv_poll_t each) and when to wake it (one uv_timer_t);
 * every request is an easy handle in the multi handle, completed from curl_multi_info_read.
 * Requests that cannot start are completed from a uv_idle_t, never inside es_http_fetch. */
#include "estuary/http_client.h"

#include "estuary/error.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_BODY 4096
#define DEFAULT_TIMEOUT_MS 10000

struct es_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_idle_t kick;          /* completes calls that could not start */
    es_http_call_t *calls;
    size_t pending;
    bool stopping;
};

struct es_http_call {
    es_http_client_t *c;
    CURL *easy;
    struct curl_slist *headers;
    char *body;              /* the request body (a copy) */
    char *answer;            /* max_body + 1 bytes */
    size_t answer_len, max_body;
    bool truncated;
    size_t dropped;          /* bytes of the answer past max_body */
    char location[1024], etag[128], content_type[128];
    es_http_done_fn done;
    void *user;
    int early_err;           /* could not start: completed by the idle handle */
    char early_reason[160];
    bool completing;         /* its done runs: out of the list, still counted in pending */
    bool follow;             /* follow 307/308 (by hand: same method, body and headers) */
    unsigned hops;           /* redirects followed */
    uint64_t deadline_ms;    /* uv_now() at which the whole exchange times out */
    es_http_call_t *prev, *next;
};

typedef struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    es_http_client_t *c;
} poll_ctx_t;

static void check_done(es_http_client_t *c);

static void on_poll(uv_poll_t *p, int status, int events)
{
    poll_ctx_t *pc = p->data;
    int flags = 0, running;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    es_http_client_t *c = pc->c;
    curl_multi_socket_action(c->multi, pc->fd, flags, &running);
    check_done(c);
}

static void on_poll_closed(uv_handle_t *hd) { free(hd->data); }

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    es_http_client_t *c = userp;
    poll_ctx_t *pc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (pc) {
            uv_poll_stop(&pc->poll);
            uv_close((uv_handle_t *)&pc->poll, on_poll_closed);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (!pc) {
        if (!(pc = calloc(1, sizeof *pc))) return -1;
        pc->fd = fd;
        pc->c = c;
        if (uv_poll_init_socket(c->loop, &pc->poll, fd) != 0) {
            free(pc);
            return -1;
        }
        pc->poll.data = pc;
        curl_multi_assign(c->multi, fd, pc);
    }
    int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&pc->poll, events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    es_http_client_t *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int on_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    es_http_client_t *c = userp;
    if (timeout_ms < 0) uv_timer_stop(&c->timer);
    else uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

es_http_client_t *es_http_client_new(uv_loop_t *loop)
{
    static bool global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
        global_done = true;
    }
    es_http_client_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->loop = loop;
    if (!(c->multi = curl_multi_init())) {
        free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_idle_init(loop, &c->kick);
    c->kick.data = c;
    return c;
}

static void call_unlink(es_http_call_t *k)
{
    es_http_client_t *c = k->c;
    if (k->prev) k->prev->next = k->next;
    else c->calls = k->next;
    if (k->next) k->next->prev = k->prev;
    k->prev = k->next = NULL;
}

static void call_free(es_http_call_t *k)
{
    es_http_client_t *c = k->c;
    if (!k->completing) call_unlink(k);
    c->pending--;
    if (k->easy) {
        if (c->multi) curl_multi_remove_handle(c->multi, k->easy);
        curl_easy_cleanup(k->easy);
    }
    curl_slist_free_all(k->headers);
    free(k->body);
    free(k->answer);
    free(k);
}

/* done may fetch, cancel other calls or stop the client (relay.c stops it from its last
 * DELETE's done): k leaves the list and the multi handle first, so that es_http_client_stop
 * does not free it under us, and stays counted in es_http_pending until done returns. r points
 * into k and its easy handle: freed after. */
static void complete(es_http_call_t *k, es_fetch_response_t *r)
{
    es_http_client_t *c = k->c;
    call_unlink(k);
    k->completing = true;
    if (k->easy && c->multi) curl_multi_remove_handle(c->multi, k->easy);
    k->done(k->user, r);
    call_free(k);
}

/* scheme://host:port of a and b are the same (RFC 6454 §4; default ports made explicit). */
static bool same_origin(const char *a, const char *b)
{
    char *pa[3] = {NULL, NULL, NULL}, *pb[3] = {NULL, NULL, NULL};
    CURLU *ua = curl_url(), *ub = curl_url();
    static const CURLUPart parts[3] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
    bool same = ua && ub && a && b && curl_url_set(ua, CURLUPART_URL, a, 0) == CURLUE_OK &&
                curl_url_set(ub, CURLUPART_URL, b, 0) == CURLUE_OK;
    for (int i = 0; i < 3 && same; i++) {
        unsigned flags = parts[i] == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0;
        same = curl_url_get(ua, parts[i], &pa[i], flags) == CURLUE_OK &&
               curl_url_get(ub, parts[i], &pb[i], flags) == CURLUE_OK &&
               !strcasecmp(pa[i], pb[i]);
    }
    for (int i = 0; i < 3; i++) {
        curl_free(pa[i]);
        curl_free(pb[i]);
    }
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

bool es_http_same_origin(const char *a, const char *b) { return same_origin(a, b); }

/* The request's headers without Authorization (a cross-origin redirect). */
static void drop_authorization(es_http_call_t *k)
{
    struct curl_slist *kept = NULL;
    for (struct curl_slist *h = k->headers; h; h = h->next)
        if (strncasecmp(h->data, "Authorization:", 14)) {
            struct curl_slist *n = curl_slist_append(kept, h->data);
            if (n) kept = n;
        }
    curl_easy_setopt(k->easy, CURLOPT_HTTPHEADER, kept);
    curl_slist_free_all(k->headers);
    k->headers = kept;
}

static void check_done(es_http_client_t *c)
{
    CURLMsg *m;
    int left;
    while (c->multi && (m = curl_multi_info_read(c->multi, &left))) { /* NULL: stopped in done */
        if (m->msg != CURLMSG_DONE) continue;
        es_http_call_t *k = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&k);
        if (!k) continue;
        char *eff = NULL;
        curl_easy_getinfo(k->easy, CURLINFO_EFFECTIVE_URL, &eff);
        es_fetch_response_t r = {.body = k->answer, .body_len = k->answer_len,
                                .truncated = k->truncated, .content_type = k->content_type,
                                .location = k->location, .etag = k->etag,
                                .effective_url = eff ? eff : "", .error = ""};
        char why[200];
        CURLcode rc = m->data.result;
        if (rc == CURLE_OK) {
            curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &r.status);
            /* Location relative to the URL that answered (RFC 9110 §10.2.2). */
            if (k->location[0] && eff) {
                CURLU *u = curl_url();
                char *abs = NULL;
                if (u && curl_url_set(u, CURLUPART_URL, eff, 0) == CURLUE_OK &&
                    curl_url_set(u, CURLUPART_URL, k->location, 0) == CURLUE_OK &&
                    curl_url_get(u, CURLUPART_URL, &abs, 0) == CURLUE_OK && abs)
                    snprintf(k->location, sizeof k->location, "%s", abs);
                curl_free(abs);
                curl_url_cleanup(u);
            }
            /* 307/308 (RFC 9110 §15.4.8-9): the same request to Location; other 3xx are
             * answers. Never from https to http; the Bearer token goes to the same origin only
             * (as browsers drop Authorization on a cross-origin redirect): a balancer's members
             * take a token in the query, which the redirect keeps. */
            uint64_t now_ms = uv_now(c->loop);
            bool https = eff && !strncasecmp(eff, "https://", 8);
            char from[sizeof k->location];
            snprintf(from, sizeof from, "%s", eff ? eff : "");
            char target[sizeof k->location];
            snprintf(target, sizeof target, "%s", k->location);
            if (k->follow && (r.status == 307 || r.status == 308) && target[0] &&
                k->hops < ES_HTTP_MAX_REDIRECTS && now_ms < k->deadline_ms &&
                (!strncasecmp(target, "https://", 8) ||
                 (!https && !strncasecmp(target, "http://", 7)))) {
                k->hops++;
                curl_multi_remove_handle(c->multi, k->easy);
                curl_easy_setopt(k->easy, CURLOPT_URL, target);
                curl_easy_setopt(k->easy, CURLOPT_TIMEOUT_MS, (long)(k->deadline_ms - now_ms));
                k->answer_len = 0;
                k->answer[0] = '\0';
                k->truncated = false;
                k->dropped = 0;
                k->location[0] = k->etag[0] = k->content_type[0] = '\0';
                if (!same_origin(from, target)) drop_authorization(k);
                if (curl_multi_add_handle(c->multi, k->easy) == CURLM_OK) continue;
                r.err = ES_EIO;
                r.error = "the redirected request could not start";
            }
        } else {
            r.err = rc == CURLE_OPERATION_TIMEDOUT ? ES_ETIMEDOUT
                    : rc == CURLE_OUT_OF_MEMORY    ? ES_ENOMEM
                                                   : ES_EIO;
            r.body = "";
            r.body_len = 0;
            if (rc == CURLE_WRITE_ERROR && k->dropped > k->max_body)
                snprintf(why, sizeof why, "the answer is larger than %zu bytes", 2 * k->max_body);
            else
                snprintf(why, sizeof why, "%s", curl_easy_strerror(rc));
            r.error = why;
        }
        complete(k, &r);
    }
}

static size_t on_answer(char *data, size_t size, size_t n, void *user)
{
    es_http_call_t *k = user;
    size_t len = size * n, room = k->max_body - k->answer_len;
    size_t take = len < room ? len : room;
    if (take < len) k->truncated = true;
    /* What is past max_body is read and dropped, up to as much again: a peer that keeps
     * sending beyond that is cut off (CURLE_WRITE_ERROR) instead of holding us until the
     * timeout. */
    k->dropped += len - take;
    if (k->dropped > k->max_body) return 0;
    memcpy(k->answer + k->answer_len, data, take);
    k->answer_len += take;
    k->answer[k->answer_len] = '\0';
    return len; /* the rest is read and dropped */
}

/* A header value into out without surrounding blanks and the CRLF. */
static void header_value(const char *v, size_t n, char *out, size_t cap)
{
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    es_http_call_t *k = user;
    size_t len = size * n;
    if (len >= 5 && !memcmp(data, "HTTP/", 5)) { /* a new answer (after a redirect) */
        k->location[0] = k->etag[0] = k->content_type[0] = '\0';
        k->answer_len = 0;
        k->answer[0] = '\0';
        k->truncated = false;
        k->dropped = 0;
    } else if (len > 9 && !strncasecmp(data, "Location:", 9)) {
        header_value(data + 9, len - 9, k->location, sizeof k->location);
    } else if (len > 5 && !strncasecmp(data, "ETag:", 5)) {
        header_value(data + 5, len - 5, k->etag, sizeof k->etag);
    } else if (len > 13 && !strncasecmp(data, "Content-Type:", 13)) {
        header_value(data + 13, len - 13, k->content_type, sizeof k->content_type);
    }
    return len;
}

static void on_kick(uv_idle_t *idle)
{
    es_http_client_t *c = idle->data;
    uv_idle_stop(idle);
    es_http_call_t *k = c->calls, *next;
    for (; k; k = next) {
        next = k->next;
        if (!k->early_err) continue;
        es_fetch_response_t r = {.err = k->early_err, .body = "", .content_type = "",
                                .location = "", .etag = "", .effective_url = "",
                                .error = k->early_reason};
        complete(k, &r);
        next = c->calls; /* the callback may have cancelled others */
    }
}

es_http_call_t *es_http_fetch(es_http_client_t *c, const es_fetch_request_t *req,
                              es_http_done_fn done, void *user)
{
    if (!c || c->stopping || !done || !req || !req->url || c->pending >= ES_HTTP_MAX_PENDING)
        return NULL;
    es_http_call_t *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->c = c;
    k->done = done;
    k->user = user;
    k->max_body = req->max_body ? req->max_body : DEFAULT_MAX_BODY;
    k->next = c->calls;
    if (c->calls) c->calls->prev = k;
    c->calls = k;
    c->pending++;
    if (strncasecmp(req->url, "http://", 7) && strncasecmp(req->url, "https://", 8)) {
        /* A bad URL is an outcome like a refused connection (hooks.h refuses with it). */
        k->early_err = ES_EIO;
        snprintf(k->early_reason, sizeof k->early_reason, "the URL is not http:// or https://");
        uv_idle_start(&c->kick, on_kick);
        return k;
    }
    k->answer = malloc(k->max_body + 1);
    k->easy = curl_easy_init();
    bool ok = k->answer && k->easy;
    if (ok && req->body) {
        ok = (k->body = malloc(req->body_len + 1)) != NULL;
        if (ok) memcpy(k->body, req->body, req->body_len);
    }
    char line[1200];
    if (ok && req->content_type) {
        snprintf(line, sizeof line, "Content-Type: %s", req->content_type);
        struct curl_slist *h = curl_slist_append(k->headers, line);
        ok = h != NULL;
        if (h) k->headers = h;
    }
    if (ok && req->bearer && *req->bearer) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", req->bearer);
        struct curl_slist *h = curl_slist_append(k->headers, line);
        ok = h != NULL;
        if (h) k->headers = h;
    }
    if (ok) { /* no "Expect: 100-continue" round trip before a body */
        struct curl_slist *h = curl_slist_append(k->headers, "Expect:");
        ok = h != NULL;
        if (h) k->headers = h;
    }
    if (!ok) {
        call_free(k);
        return NULL;
    }
    k->answer[0] = '\0';
    CURL *e = k->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method ? req->method : "GET");
    if (req->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, k->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    uint32_t timeout_ms = req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    k->follow = req->follow_redirects; /* by hand in check_done: curl would follow 301-303 too */
    k->deadline_ms = uv_now(c->loop) + timeout_ms;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, k->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, k);
    curl_easy_setopt(e, CURLOPT_PRIVATE, k);
    curl_easy_setopt(e, CURLOPT_USERAGENT, req->user_agent ? req->user_agent : "estuary");
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        curl_easy_cleanup(k->easy);
        k->easy = NULL;
        k->early_err = ES_EIO;
        snprintf(k->early_reason, sizeof k->early_reason, "the request could not start");
        uv_idle_start(&c->kick, on_kick);
    }
    return k;
}

void es_http_cancel(es_http_call_t *k)
{
    if (k && !k->completing) call_free(k); /* from its own done: freed when done returns */
}

size_t es_http_pending(const es_http_client_t *c) { return c ? c->pending : 0; }

void es_http_client_stop(es_http_client_t *c)
{
    if (!c || c->stopping) return;
    c->stopping = true;
    while (c->calls) call_free(c->calls);
    /* Closes the cached connections while the loop still runs their poll handles' close. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_close((uv_handle_t *)&c->kick, NULL);
}

void es_http_client_free(es_http_client_t *c)
{
    if (!c) return;
    es_http_client_stop(c);
    free(c);
}
