/* HTTP server: libwebsockets on the daemon's libuv loop (foreign-loop mode), turning each request
 * into an es_http_request_t for the router and writing the es_http_response_t back.
 *
 * Every answer carries CORS headers (http.cors_origin); OPTIONS on any path is a CORS preflight
 * (204); unknown paths get a JSON 404; bodies past limits.max_http_body get 413 and the
 * connection is closed, since the rest of the body is never read. */
#include "estuary/http.h"
#include "estuary/server.h"

#include "http_flv.h"
#include "ws_signal.h"

#include "estuary/admission.h"
#include "estuary/hls.h"
#include "estuary/hooks.h"

#include "estuary/clock.h"
#include "estuary/config.h"
#include "estuary/error.h"
#include "estuary/log.h"
#include "estuary/rtc_server.h"
#include "estuary/tcp_listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEND_CHUNK 16384

#define HLS_VIEWERS 1024             /* HLS players remembered after a hook admitted them */
#define HLS_VIEWER_TTL_US 30000000u  /* ... for this long after their last request */

/* An HLS player of an app with an on_play hook: the hook is asked at its first request
 * (playlist or segment), and again only when it has made no request for HLS_VIEWER_TTL_US;
 * then on_stop is told. Keyed by the client's address key and the stream. */
typedef struct hls_viewer {
    char ip[64];
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    char client[64];             /* "ip:port" of the request the hook admitted */
    char conn_id[24];
    uint64_t expires_us;         /* 0: a free slot */
} hls_viewer_t;

struct es_http_server {
    es_server_t *srv;
    struct lws_context *ctx;
    struct lws_vhost *vh_http, *vh_https;
    es_tcp_listener_t *ls_http, *ls_https; /* the ports when they also take ICE-TCP */
    char *web_root;
    uint64_t next_conn;
    const es_http_route_t *routes;
    size_t n_routes;
    bool stopping;
    es_ws_hub_t *ws_hub;             /* WebSocket signaling connections */
    hls_viewer_t viewers[HLS_VIEWERS]; /* HLS players an on_play hook admitted */
};

/* Per-connection state; lws allocates it zeroed and frees it when the connection closes. */
typedef struct conn {
    char id[24];
    char remote[64];
    es_http_method_t method;
    char *path;
    char *argbuf;                 /* the query fragments, NUL-separated */
    const char *args[ES_HTTP_MAX_ARGS];
    size_t n_args;
    char content_type[128];
    char authorization[1024];
    char if_match[128];
    char host[256];
    bool forwarded;               /* X-Forwarded-For: a proxy relayed it */
    uint8_t *body;
    size_t body_len, body_cap;
    bool too_large;
    bool dispatched;
    es_http_response_t resp;
    size_t sent;                  /* body bytes written */
    bool headers_sent;
    bool close_after;             /* close instead of keeping the connection alive */
    uint64_t start_us;
    es_http_flv_t *flv;           /* an HTTP-FLV player: the body never ends */
    struct lws *wsi;
    char *query;                  /* the raw query, "a=1&b=2" ("" when none) */
    bool pending;                 /* the answer is deferred (es_http_async_begin, a hook) */
    void (*cancel)(void *user);   /* ... and how to drop it when the client leaves first */
    void *cancel_user;
    es_hook_call_t *hook;         /* HTTP-FLV/HLS: the admission hook being asked */
    bool admitted;                /* HTTP-FLV/HLS: the hook admitted this request */
    bool redispatch;              /* ... and it is to be served at the next WRITEABLE */
    bool admin_route;             /* an admin API answer: no CORS headers */
    es_protocol_t admit_proto;    /* HTTP-FLV/HLS: what admit_player was asked (for the hook's */
    char admit_app[ES_APP_NAME_MAX + 1], admit_stream[ES_STREAM_NAME_MAX + 1]; /* answer) */
    char hls_key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2]; /* an HLS request asking a hook */
    es_ws_conn_t *ws;             /* after a WebSocket upgrade: the signaling connection */
} conn_t;

static void conn_reset(conn_t *c)
{
    if (c->pending && c->cancel) c->cancel(c->cancel_user);
    if (c->hook) es_hook_cancel(c->hook);
    if (c->flv) es_http_flv_close(c->flv, "connection closed");
    free(c->query);
    free(c->path);
    free(c->argbuf);
    free(c->body);
    es_http_response_reset(&c->resp);
    char id[sizeof c->id], remote[sizeof c->remote];
    memcpy(id, c->id, sizeof id);
    memcpy(remote, c->remote, sizeof remote);
    memset(c, 0, sizeof *c);
    memcpy(c->id, id, sizeof id);
    memcpy(c->remote, remote, sizeof remote);
}

es_http_async_t *es_http_async_begin(const es_http_request_t *req, void (*cancel)(void *user),
                                     void *user)
{
    conn_t *c = req->conn;
    if (!c || c->pending) return NULL;
    c->pending = true;
    c->cancel = cancel;
    c->cancel_user = user;
    return (es_http_async_t *)c;
}

es_http_response_t *es_http_async_response(es_http_async_t *a) { return &((conn_t *)a)->resp; }

void es_http_async_finish(es_http_async_t *a)
{
    conn_t *c = (conn_t *)a;
    c->pending = false;
    c->cancel = NULL;
    c->cancel_user = NULL;
    if (!c->resp.status) es_http_respond_error(&c->resp, 500, "handler gave no answer");
    if (c->wsi) lws_callback_on_writable(c->wsi);
}

static es_log_ctx_t conn_log(const conn_t *c)
{
    return (es_log_ctx_t){.peer = c->id, .remote = c->remote};
}

static es_http_method_t request_method(struct lws *wsi)
{
    static const struct {
        enum lws_token_indexes tok;
        es_http_method_t m;
    } map[] = {
        {WSI_TOKEN_GET_URI, ES_HTTP_GET},         {WSI_TOKEN_POST_URI, ES_HTTP_POST},
        {WSI_TOKEN_OPTIONS_URI, ES_HTTP_OPTIONS}, {WSI_TOKEN_PUT_URI, ES_HTTP_PUT},
        {WSI_TOKEN_PATCH_URI, ES_HTTP_PATCH},     {WSI_TOKEN_DELETE_URI, ES_HTTP_DELETE},
        {WSI_TOKEN_HEAD_URI, ES_HTTP_HEAD},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (lws_hdr_total_length(wsi, map[i].tok) > 0) return map[i].m;
    char m[16];
    if (lws_hdr_copy(wsi, m, sizeof m, WSI_TOKEN_HTTP_COLON_METHOD) > 0) /* HTTP/2 */
        return es_http_method_parse(m);
    return 0;
}

static void copy_header(struct lws *wsi, enum lws_token_indexes tok, char *out, size_t len)
{
    out[0] = '\0';
    if (lws_hdr_total_length(wsi, tok) <= 0) return;
    if (lws_hdr_copy(wsi, out, (int)len, tok) < 0) out[0] = '\0';
}

static void collect_args(struct lws *wsi, conn_t *c)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (total <= 0) return;
    c->argbuf = malloc((size_t)total + ES_HTTP_MAX_ARGS + 1);
    if (!c->argbuf) return;
    size_t used = 0;
    for (int i = 0; i < ES_HTTP_MAX_ARGS; i++) {
        int n = lws_hdr_copy_fragment(wsi, c->argbuf + used, total + ES_HTTP_MAX_ARGS + 1 - (int)used,
                                      WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0) break;
        c->args[c->n_args++] = c->argbuf + used;
        used += (size_t)n + 1;
    }
    if ((c->query = malloc(used + 1))) {
        size_t q = 0;
        for (size_t i = 0; i < c->n_args; i++) {
            size_t n = strlen(c->args[i]);
            if (i) c->query[q++] = '&';
            memcpy(c->query + q, c->args[i], n);
            q += n;
        }
        c->query[q] = '\0';
    }
}

/* Adds the headers every answer carries. Returns 0, or 1 when the buffer ran out. */
static int add_common_headers(es_http_server_t *h, struct lws *wsi, const es_http_response_t *r,
                              bool cors, unsigned char **p, unsigned char *end)
{
    const char *origin = h->srv->cfg->http.cors_origin;
    if (cors && origin && *origin) {
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                        (const unsigned char *)origin, (int)strlen(origin), p, end))
            return 1;
        static const char expose[] = "Location, ETag, Link, Accept-Patch";
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-expose-headers:",
                                        (const unsigned char *)expose, (int)strlen(expose), p, end))
            return 1;
    }
    if (r->location[0] &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"location:",
                                    (const unsigned char *)r->location, (int)strlen(r->location), p, end))
        return 1;
    if (r->etag[0] &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"etag:",
                                    (const unsigned char *)r->etag, (int)strlen(r->etag), p, end))
        return 1;
    if (r->allow[0] &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                    (const unsigned char *)r->allow, (int)strlen(r->allow), p, end))
        return 1;
    return 0;
}

static void log_done(const conn_t *c, int status, size_t bytes)
{
    es_log_ctx_t lc = conn_log(c);
    es_log_level_t lvl = status >= 500 ? ES_LOG_WARN : status >= 400 ? ES_LOG_INFO : ES_LOG_DEBUG;
    char path[512];
    ES_LOG(lvl, "http", &lc, "%s %s -> %d %s, %zu bytes, %.1f ms", es_http_method_name(c->method),
           es_http_path_for_log(c->path, path, sizeof path), status, es_http_status_text(status), bytes,
           (double)(es_clock_now_us() - c->start_us) / 1000.0);
}

/* Serve a file through lws (which streams it) with its Content-Type and Cache-Control. Returns
 * the callback's return value. */
static int serve_file(es_http_server_t *h, struct lws *wsi, conn_t *c, const char *type,
                      const char *cache_control)
{
    unsigned char hdr[1024], *p = hdr, *end = hdr + sizeof hdr;
    if (add_common_headers(h, wsi, &c->resp, !c->admin_route, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)cache_control, (int)strlen(cache_control),
                                    &p, end))
        return -1;
    struct stat st;
    size_t size = stat(c->resp.file_path, &st) == 0 ? (size_t)st.st_size : 0;
    log_done(c, 200, size);
    int n = lws_serve_http_file(wsi, c->resp.file_path, type, (const char *)hdr, (int)(p - hdr));
    if (n < 0) return -1;
    if (n > 0 && lws_http_transaction_completed(wsi)) return -1;
    return 0;
}

static void flv_wake(void *user)
{
    conn_t *c = user;
    if (!c->flv || !c->wsi) return;
    if (es_http_flv_stalled(c->flv)) lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                                                     LWS_TO_KILL_ASYNC);
    else lws_callback_on_writable(c->wsi);
}

/* The token of a player's request: ?token=, else an Authorization Bearer token. */
static const char *request_token(const es_http_request_t *req)
{
    const char *t = es_http_arg(req, "token");
    return t ? t : es_bearer_token(req->authorization);
}

static int dispatch(es_http_server_t *h, struct lws *wsi, conn_t *c);
static void viewer_add(es_http_server_t *h, const conn_t *c, uint64_t now);

/* An HTTP-FLV or HLS request's hook answered: refuse, or dispatch the request again, admitted. */
static void on_hook_done(void *user, int err, const char *reason)
{
    conn_t *c = user;
    c->hook = NULL;
    c->pending = false;
    struct lws_context *ctx = c->wsi ? lws_get_context(c->wsi) : NULL;
    es_http_server_t *h = ctx ? lws_context_user(ctx) : NULL;
    if (!h) return;
    if (err) {
        es_admit_log_refusal(c->admit_proto, ES_ADMIT_PLAY, c->admit_app, c->admit_stream,
                             c->remote, c->id, err, reason);
        es_http_respond_error(&c->resp, es_http_status_of(err), "%s", reason);
        lws_callback_on_writable(c->wsi);
        return;
    }
    c->admitted = true;
    if (c->hls_key[0]) viewer_add(h, c, es_clock_now_us());
    c->redispatch = true; /* served from lws's WRITEABLE callback, not from libcurl's */
    lws_callback_on_writable(c->wsi);
}

/* Admission of an HTTP-FLV or HLS player before the request is served (es_admit_begin; an
 * HLS player the hook admitted recently is not asked again, see hls_viewer_t). Returns 0 to
 * go on, 1 when answered (a refusal) or deferred (a hook is asked). */
/* Tells on_stop of the HLS viewer in slot v and frees it. */
static void viewer_end(es_http_server_t *h, hls_viewer_t *v)
{
    char app[ES_APP_NAME_MAX + 1];
    size_t al = strcspn(v->key, "/");
    snprintf(app, sizeof app, "%.*s", (int)al, v->key);
    es_admit_end(h->srv, ES_PROTO_HLS, ES_ADMIT_PLAY, app, v->key + al + (v->key[al] ? 1 : 0),
                 v->client, v->conn_id);
    v->expires_us = 0;
}

/* The viewer slot of ip + key when the hook admitted it recently (its expiry refreshed), else
 * NULL; expired slots are ended on the way. */
static hls_viewer_t *viewer_find(es_http_server_t *h, const char *ip, const char *key,
                                 uint64_t now)
{
    hls_viewer_t *found = NULL;
    for (size_t i = 0; i < HLS_VIEWERS; i++) {
        hls_viewer_t *v = &h->viewers[i];
        if (!v->expires_us) continue;
        if (v->expires_us <= now) viewer_end(h, v);
        else if (!found && !strcmp(v->ip, ip) && !strcmp(v->key, key)) found = v;
    }
    if (found) found->expires_us = now + HLS_VIEWER_TTL_US;
    return found;
}

static void viewer_add(es_http_server_t *h, const conn_t *c, uint64_t now)
{
    hls_viewer_t *slot = NULL;
    for (size_t i = 0; i < HLS_VIEWERS; i++) {
        hls_viewer_t *v = &h->viewers[i];
        if (!v->expires_us) {
            slot = v;
            break;
        }
        if (!slot || v->expires_us < slot->expires_us) slot = v;
    }
    if (slot->expires_us) viewer_end(h, slot); /* full: the one closest to expiring goes */
    es_client_ip(c->remote, slot->ip, sizeof slot->ip);
    snprintf(slot->key, sizeof slot->key, "%s", c->hls_key);
    snprintf(slot->client, sizeof slot->client, "%s", c->remote);
    snprintf(slot->conn_id, sizeof slot->conn_id, "%s", c->id);
    slot->expires_us = now + HLS_VIEWER_TTL_US;
}

static int admit_player(es_http_server_t *h, struct lws *wsi, conn_t *c,
                        const es_http_request_t *req, es_protocol_t proto, const char *app,
                        const char *stream, bool hook)
{
    if (c->admitted) return 0;
    c->admit_proto = proto;
    snprintf(c->admit_app, sizeof c->admit_app, "%s", app);
    snprintf(c->admit_stream, sizeof c->admit_stream, "%s", stream);
    c->hls_key[0] = '\0';
    if (proto == ES_PROTO_HLS) {
        char ip[64];
        es_client_ip(c->remote, ip, sizeof ip);
        snprintf(c->hls_key, sizeof c->hls_key, "%s/%s", app, stream);
        if (hook && viewer_find(h, ip, c->hls_key, es_clock_now_us())) hook = false;
    }
    es_admit_request_t areq = {.app = app, .stream = stream, .role = ES_ADMIT_PLAY,
                               .protocol = proto, .token = request_token(req),
                               .now_us = es_clock_now_us()};
    es_admit_decision_t d;
    int err;
    if (hook) {
        err = es_admit_begin(h->srv, &areq, c->remote, c->id, c->query, &d, on_hook_done, c,
                             &c->hook);
        if (!err && c->hook) {
            c->pending = true;
            return 1;
        }
    } else {
        err = es_admit_now(h->srv, &areq, c->remote, &d);
        if (err) es_admit_log_refusal(proto, ES_ADMIT_PLAY, app, stream, c->remote, c->id, err,
                                      d.reason);
    }
    if (!err) return 0;
    es_http_respond_error(&c->resp, es_http_status_of(err), "%s", d.reason);
    lws_callback_on_writable(wsi);
    return 1;
}

/* GET /{app}/{stream}.flv: an HTTP-FLV player (src/http/http_flv.c). */
static int open_flv(es_http_server_t *h, struct lws *wsi, conn_t *c, const es_http_request_t *req,
                    const char *app, const char *stream)
{
    if (admit_player(h, wsi, c, req, ES_PROTO_HTTP_FLV, app, stream, true)) return 0;
    int err;
    char why[ES_ADMIT_REASON_MAX];
    c->flv = es_http_flv_open(h->srv, app, stream, request_token(req), c->id, c->remote,
                              flv_wake, c, &err, why, sizeof why);
    if (!c->flv) es_http_respond_error(&c->resp, es_http_status_of(err), "%s", why);
    else {
        es_http_response_reset(&c->resp);
        c->resp.status = 200;
        snprintf(c->resp.content_type, sizeof c->resp.content_type, "video/x-flv");
        uint32_t wait = h->srv->cfg->limits.player_wait_ms;
        if (wait && es_http_flv_waiting(c->flv)) /* cleared by the first tag (write_flv) */
            lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, (int)((wait + 999) / 1000));
    }
    lws_callback_on_writable(wsi);
    return 0;
}

/* Writes what the HTTP-FLV player has, as chunks of the chunked transfer coding (RFC 9112
 * 7.1); lws buffers what the socket does not take and holds WRITEABLE back until it drained,
 * so a slow player's backlog stays in its bounded hub queue. */
static int write_flv(struct lws *wsi, conn_t *c)
{
    enum { CHUNK = 32768, HEAD = 8 };
    unsigned char buf[LWS_PRE + HEAD + CHUNK + 2];
    unsigned char *body = buf + LWS_PRE + HEAD;
    int n = es_http_flv_read(c->flv, body, CHUNK);
    if (n == ES_ETIMEDOUT) return -1;
    if (n <= 0) return 0;
    if (!es_http_flv_waiting(c->flv)) lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    char head[HEAD + 1];
    int hl = snprintf(head, sizeof head, "%x\r\n", (unsigned)n);
    unsigned char *start = body - hl;
    memcpy(start, head, (size_t)hl);
    body[n] = '\r';
    body[n + 1] = '\n';
    size_t total = (size_t)hl + (size_t)n + 2;
    if (lws_write(wsi, start, total, LWS_WRITE_HTTP) != (int)total) return -1;
    if (n == CHUNK) lws_callback_on_writable(wsi); /* more may be waiting */
    return 0;
}

/* Appends "?token=T" (T percent-encoded) to the segment and init-section URIs of a playlist, so
 * that a player of a token-protected app fetches them with the token it fetched the playlist
 * with. Returns a malloc'ed body and its length, or NULL when out of memory. */
static char *playlist_with_token(const char *text, size_t len, const char *token, size_t *out_len)
{
    char enc[3 * 256 + 1];
    size_t e = 0;
    for (const char *t = token; *t && e + 4 < sizeof enc; t++) {
        unsigned char ch = (unsigned char)*t;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            enc[e++] = (char)ch;
        else
            e += (size_t)snprintf(enc + e, sizeof enc - e, "%%%02X", ch);
    }
    enc[e] = '\0';
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    size_t cap = len + lines * (e + 8) + 1;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = 0;
        while (i + n < len && text[i + n] != '\n') n++;
        const char *line = text + i;
        size_t body = n && line[n - 1] == '\r' ? n - 1 : n;
        static const char map[] = "#EXT-X-MAP:URI=\"";
        if (body && line[0] != '#') {
            memcpy(out + o, line, body);
            o += body;
            o += (size_t)snprintf(out + o, cap - o, "?token=%s", enc);
            memcpy(out + o, line + body, n - body);
            o += n - body;
        } else if (body > sizeof map && !strncmp(line, map, sizeof map - 1) &&
                   memchr(line + sizeof map - 1, '"', body - (sizeof map - 1))) {
            const char *q = memchr(line + sizeof map - 1, '"', body - (sizeof map - 1));
            size_t head = (size_t)(q - line);
            memcpy(out + o, line, head);
            o += head;
            o += (size_t)snprintf(out + o, cap - o, "?token=%s", enc);
            memcpy(out + o, q, n - head);
            o += n - head;
        } else {
            memcpy(out + o, line, n);
            o += n;
        }
        i += n;
        if (i < len) out[o++] = text[i++]; /* the '\n' */
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* Reads a playlist (small: a window of segment lines) into memory. NULL when unreadable. */
static char *read_small_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max, f) : 0;
    fclose(f);
    if (buf) buf[n] = '\0';
    *len = n;
    return buf;
}

/* GET /{app}/{stream}.m3u8 and /{app}/{stream}/{segment}: HLS files (src/hls/segmenter.c) from
 * hls.directory, for players admitted like every other (the app's on_play hook, see
 * hls_viewer_t; ?token= or Bearer for apps with play_token, carried into the playlist's URIs).
 * Returns 0 when the path is not HLS, 1 when answered (a file, a refusal or a 404) or deferred,
 * -1 to close. The playlist is never cached; segments never change once written. */
static int serve_hls(es_http_server_t *h, struct lws *wsi, conn_t *c, const es_http_request_t *req)
{
    const char *path = c->path;
    if (path[0] != '/') return 0;
    const char *slash = strchr(path + 1, '/');
    if (!slash || (size_t)(slash - path - 1) > ES_APP_NAME_MAX) return 0;
    char app[ES_APP_NAME_MAX + 1], stream[ES_STREAM_NAME_MAX + 1], file[4096];
    memcpy(app, path + 1, (size_t)(slash - path - 1));
    app[slash - path - 1] = '\0';
    int kind = es_hls_request_path(h->srv->cfg->hls.directory, app, slash + 1, file, sizeof file);
    if (kind <= 0) return 0;
    size_t sl = kind == ES_HLS_FILE_PLAYLIST ? strlen(slash + 1) - 5 : strcspn(slash + 1, "/");
    snprintf(stream, sizeof stream, "%.*s", (int)sl, slash + 1);
    if (admit_player(h, wsi, c, req, ES_PROTO_HLS, app, stream, true)) return 1;
    struct stat st;
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        es_http_respond_error(&c->resp, 404, "no HLS for %s: the stream is not published, has no "
                              "segment yet, or apps.%s.hls is off", path, app);
        lws_callback_on_writable(wsi);
        return 1;
    }
    const es_app_config_t *ac = es_config_find_app(h->srv->cfg, app);
    const char *token = request_token(req);
    if (kind == ES_HLS_FILE_PLAYLIST && ac && ac->play_token && *ac->play_token && token) {
        size_t len, out_len;
        char *text = read_small_file(file, 1u << 18, &len);
        char *body = text ? playlist_with_token(text, len, token, &out_len) : NULL;
        free(text);
        if (!body) return -1;
        es_http_response_reset(&c->resp);
        c->resp.status = 200;
        c->resp.body = body;
        c->resp.body_len = out_len;
        snprintf(c->resp.content_type, sizeof c->resp.content_type, "%s", es_hls_content_type(kind));
        lws_callback_on_writable(wsi);
        return 1;
    }
    free(c->resp.file_path);
    if (!(c->resp.file_path = strdup(file))) return -1;
    if (c->method == ES_HTTP_HEAD) {
        c->resp.status = 200;
        snprintf(c->resp.content_type, sizeof c->resp.content_type, "%s", es_hls_content_type(kind));
        lws_callback_on_writable(wsi);
        return 1;
    }
    return serve_file(h, wsi, c, es_hls_content_type(kind),
                      kind == ES_HLS_FILE_PLAYLIST ? "no-cache" : "max-age=3600") < 0 ? -1 : 1;
}

/* A Host header naming this machine without DNS: "localhost" or an IP literal, with or
 * without a port (HTTP/1.0 requests without Host count as local). */
static bool host_is_local(const char *host)
{
    if (!host[0]) return true;
    char name[256];
    snprintf(name, sizeof name, "%s", host);
    if (name[0] == '[') return strchr(name, ']') != NULL; /* an IPv6 literal */
    char *colon = strrchr(name, ':');
    if (colon) *colon = '\0';
    if (!strcasecmp(name, "localhost")) return true;
    struct in_addr a;
    return inet_pton(AF_INET, name, &a) == 1;
}

/* The admin API's check: api.token as a Bearer token (constant-time compare), or, with no
 * api.token, a client on loopback. Returns 0, or the HTTP status with the reason. */
static int admin_check(const es_http_server_t *h, const conn_t *c, char *why, size_t len)
{
    const char *want = h->srv->cfg->api.token;
    if (want && *want) {
        const char *given = es_bearer_token(c->authorization);
        if (!given || !*given) {
            snprintf(why, len, "the admin API needs 'Authorization: Bearer <api.token>'");
            return 401;
        }
        if (!es_config_token_equal(want, given)) {
            snprintf(why, len, "wrong admin token");
            return 403;
        }
        return 0;
    }
    /* Loopback without a token, unless a proxy on this host relayed the request (then the
     * client is anyone) or the Host is a name other than localhost (a page of another origin
     * re-pointing its name at 127.0.0.1: DNS rebinding). */
    if (es_client_loopback(c->remote) && !c->forwarded && host_is_local(c->host)) return 0;
    snprintf(why, len, "the admin API answers only loopback clients, not relayed by a proxy and "
             "addressed as localhost or by IP, when api.token is not set");
    return 403;
}

/* true when some admin route has this path (any method). */
static bool admin_path(const es_http_server_t *h, const char *path)
{
    es_http_request_t probe = {0};
    char scratch[512];
    bool known;
    unsigned allow;
    for (size_t i = 0; i < h->n_routes; i++) {
        if (!(h->routes[i].flags & ES_HTTP_ROUTE_ADMIN)) continue;
        if (es_http_route_match(&h->routes[i], 1, ES_HTTP_GET, path, &probe, scratch,
                                sizeof scratch, &known, &allow) || known)
            return true;
    }
    return false;
}

static int dispatch(es_http_server_t *h, struct lws *wsi, conn_t *c)
{
    c->dispatched = true;
    es_http_response_t *resp = &c->resp;
    if (c->too_large) {
        es_http_respond_error(resp, 413, "request body larger than limits.max_http_body (%u bytes)",
                              h->srv->cfg->limits.max_http_body);
        c->close_after = true;
    } else if (c->method == ES_HTTP_OPTIONS) {
        /* CORS preflight: any path but the admin API's, any of our methods. */
        c->admin_route = admin_path(h, c->path);
        es_http_response_reset(resp);
        resp->status = 204;
    } else if (!c->method) {
        es_http_respond_error(resp, 405, "method not supported");
    } else {
        es_http_request_t req = {
            .method = c->method,
            .path = c->path,
            .n_args = c->n_args,
            .content_type = c->content_type,
            .authorization = c->authorization,
            .if_match = c->if_match,
            .body = c->body,
            .body_len = c->body_len,
            .remote = c->remote,
            .conn_id = c->id,
            .query = c->query ? c->query : "",
            .conn = c,
        };
        char why[160];
        req.admin = admin_check(h, c, why, sizeof why) == 0;
        memcpy(req.args, c->args, sizeof req.args);
        char app[ES_APP_NAME_MAX + 1], stream[ES_STREAM_NAME_MAX + 1];
        if (c->method == ES_HTTP_GET && es_http_flv_path(c->path, app, stream))
            return open_flv(h, wsi, c, &req, app, stream);
        int hls = c->method == ES_HTTP_GET || c->method == ES_HTTP_HEAD ? serve_hls(h, wsi, c, &req) : 0;
        if (hls) return hls < 0 ? -1 : 0;
        char scratch[512];
        bool known;
        unsigned allow;
        const es_http_route_t *route =
            es_http_route_match(h->routes, h->n_routes, c->method == ES_HTTP_HEAD ? ES_HTTP_GET : c->method,
                                c->path, &req, scratch, sizeof scratch, &known, &allow);
        int st;
        if (route && (route->flags & ES_HTTP_ROUTE_ADMIN) &&
            (c->admin_route = true, st = admin_check(h, c, why, sizeof why)) != 0) {
            es_log_ctx_t lc = conn_log(c);
            ES_INFO("http", &lc, "admin API refused (%d): %s", st, why);
            es_http_respond_error(resp, st, "%s", why);
        } else if (route) {
            route->handler(h->srv, &req, resp);
            if (c->pending) return 0; /* es_http_async_finish answers */
            if (!resp->status) es_http_respond_error(resp, 500, "handler gave no answer");
        } else if (known) {
            es_http_respond_error(resp, 405, "%s is not allowed on %s",
                                  es_http_method_name(c->method), c->path);
            es_http_methods_format(allow | ES_HTTP_OPTIONS, resp->allow, sizeof resp->allow);
        } else if ((c->method == ES_HTTP_GET || c->method == ES_HTTP_HEAD) && h->web_root &&
                   strncmp(c->path, "/api/", 5) != 0 &&
                   (resp->file_path = es_http_static_resolve(h->web_root, c->path)) != NULL) {
            if (c->method == ES_HTTP_GET)
                return serve_file(h, wsi, c, es_http_mime_type(resp->file_path), "no-cache");
            free(resp->file_path);
            resp->file_path = NULL;
            resp->status = 200;
        } else {
            es_http_respond_error(resp, 404, "no such resource: %s", c->path);
        }
    }
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_writeable(es_http_server_t *h, struct lws *wsi, conn_t *c)
{
    es_http_response_t *r = &c->resp;
    if (c->redispatch) {
        c->redispatch = false;
        return dispatch(h, wsi, c);
    }
    if (!c->dispatched || c->pending) return 0;
    if (c->flv && c->headers_sent) return write_flv(wsi, c);
    if (!c->headers_sent) {
        unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start,
                                           *end = buf + sizeof buf - 1;
        bool head_only = c->method == ES_HTTP_HEAD || r->status == 204 || r->status == 304;
        /* An HTTP-FLV body has no length: chunked, and lws adds "connection: close". */
        if (lws_add_http_common_headers(wsi, (unsigned)r->status,
                                        r->content_type[0] ? r->content_type : NULL,
                                        c->flv ? LWS_ILLEGAL_HTTP_CONTENT_LEN
                                        : head_only && !r->body_len ? 0 : r->body_len, &p, end))
            return -1;
        if (add_common_headers(h, wsi, r, !c->admin_route, &p, end)) return -1;
        if (c->flv &&
            (lws_add_http_header_by_name(wsi, (const unsigned char *)"transfer-encoding:",
                                         (const unsigned char *)"chunked", 7, &p, end) ||
             lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                         (const unsigned char *)"no-cache", 8, &p, end)))
            return -1;
        if (c->method == ES_HTTP_OPTIONS && !c->admin_route) {
            static const char methods[] = "GET, POST, PATCH, DELETE, OPTIONS";
            static const char headers[] = "Content-Type, Authorization, If-Match";
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-methods:",
                                            (const unsigned char *)methods, (int)strlen(methods), &p, end) ||
                lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-headers:",
                                            (const unsigned char *)headers, (int)strlen(headers), &p, end) ||
                lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-max-age:",
                                            (const unsigned char *)"86400", 5, &p, end))
                return -1;
        }
        if (c->close_after &&
            lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                        (const unsigned char *)"close", 5, &p, end))
            return -1;
        if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
        c->headers_sent = true;
        if (c->flv) {
            log_done(c, r->status, 0);
            lws_callback_on_writable(wsi);
            return 0;
        }
        if (head_only || !r->body_len) goto done;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->sent < r->body_len) {
        unsigned char buf[LWS_PRE + SEND_CHUNK];
        size_t n = r->body_len - c->sent;
        if (n > SEND_CHUNK) n = SEND_CHUNK;
        memcpy(buf + LWS_PRE, r->body + c->sent, n);
        bool last = c->sent + n == r->body_len;
        if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
            return -1;
        c->sent += n;
        if (!last) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
done:
    log_done(c, r->status, r->body_len);
    if (c->close_after) return -1;
    conn_reset(c);
    if (lws_http_transaction_completed(wsi)) return -1;
    return 0;
}

/* The connection's id ("h<n>") and the client's "ip:port", once per connection. */
static void conn_identify(es_http_server_t *h, struct lws *wsi, conn_t *c)
{
    snprintf(c->id, sizeof c->id, "h%llu", (unsigned long long)++h->next_conn);
    char ip[48] = "?";
    lws_get_peer_simple(wsi, ip, sizeof ip);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int port = 0;
    int fd = lws_get_socket_fd(wsi);
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(c->remote, sizeof c->remote, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
}

static int on_request(es_http_server_t *h, struct lws *wsi, conn_t *c, const char *uri, size_t len)
{
    conn_reset(c);
    if (!c->id[0]) conn_identify(h, wsi, c);
    c->start_us = es_clock_now_us();
    c->wsi = wsi;
    c->method = request_method(wsi);
    c->path = malloc(len + 1);
    if (!c->path) return -1;
    memcpy(c->path, uri, len);
    c->path[len] = '\0';
    collect_args(wsi, c);
    copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, c->content_type, sizeof c->content_type);
    copy_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, c->authorization, sizeof c->authorization);
    copy_header(wsi, WSI_TOKEN_HTTP_IF_MATCH, c->if_match, sizeof c->if_match);
    copy_header(wsi, WSI_TOKEN_HOST, c->host, sizeof c->host);
    c->forwarded = lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) > 0;

    char cl[32];
    copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, cl, sizeof cl);
    unsigned long long content_length = cl[0] ? strtoull(cl, NULL, 10) : 0;
    if (content_length > h->srv->cfg->limits.max_http_body) {
        c->too_large = true;
        return dispatch(h, wsi, c);
    }
    if (content_length > 0 && (c->method == ES_HTTP_POST || c->method == ES_HTTP_PATCH ||
                               c->method == ES_HTTP_PUT)) {
        c->body_cap = (size_t)content_length;
        c->body = malloc(c->body_cap + 1);
        if (!c->body) return -1;
        return 0; /* the body arrives in LWS_CALLBACK_HTTP_BODY, then BODY_COMPLETION dispatches */
    }
    return dispatch(h, wsi, c);
}

static int on_body(es_http_server_t *h, conn_t *c, const void *in, size_t len)
{
    if (c->too_large || c->dispatched) return 0;
    if (c->body_len + len > c->body_cap) { /* more than Content-Length announced */
        c->too_large = true;
        return 0;
    }
    memcpy(c->body + c->body_len, in, len);
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return 0;
}

static int callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    es_http_server_t *h = ctx ? lws_context_user(ctx) : NULL;
    conn_t *c = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP: return on_request(h, wsi, c, in, len);
    case LWS_CALLBACK_HTTP_BODY: return on_body(h, c, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (c->dispatched) return 0;
        return dispatch(h, wsi, c);
    case LWS_CALLBACK_HTTP_WRITEABLE: return on_writeable(h, wsi, c);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        conn_reset(c);
        if (lws_http_transaction_completed(wsi)) return -1;
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c) conn_reset(c);
        break;
    /* WebSocket signaling (ws_signal.c): browsers name no subprotocol, so lws upgrades to this
     * one, the vhost's first, with a fresh conn_t. */
    case LWS_CALLBACK_ESTABLISHED:
        if (!h || !h->ws_hub || h->stopping) return -1;
        conn_identify(h, wsi, c);
        c->wsi = wsi;
        return (c->ws = es_ws_open(h->ws_hub, wsi, c->id, c->remote)) ? 0 : -1;
    case LWS_CALLBACK_RECEIVE: return c && c->ws ? es_ws_receive(c->ws, in, len) : -1;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: /* the answer to our close: no echo */
        return c && c->ws && es_ws_close_sent(c->ws) ? -1 : 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c && c->ws) es_ws_pong(c->ws);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE: return c && c->ws ? es_ws_writeable(c->ws) : -1;
    case LWS_CALLBACK_CLOSED:
        if (c && c->ws) {
            es_ws_closed(c->ws);
            c->ws = NULL;
        }
        return 0;
    default: break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"estuary-http", callback_http, sizeof(conn_t), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_emit(int level, const char *line)
{
    es_log_level_t l = level & LLL_ERR ? ES_LOG_WARN : level & LLL_WARN ? ES_LOG_INFO : ES_LOG_DEBUG;
    if (!es_log_enabled(l)) return;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    /* lws prefixes its own timestamp "[2026/11/21 01:02:03:4567] E: "; drop it. */
    const char *msg = line;
    if (msg[0] == '[') {
        const char *close = strchr(msg, ']');
        if (close && close < line + n) msg = close + 2 <= line + n ? close + 2 : close + 1;
    }
    es_log_write(l, "lws", NULL, "%.*s", (int)(line + n - msg), msg);
}

/* Probes a bind so that a port in use is reported with errno and the key, before lws tries. */
static int probe_bind(const es_listen_t *l, const char *key)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, (const struct sockaddr *)&l->addr, l->addr_len);
    int saved = errno;
    close(fd);
    if (rc < 0) {
        ES_ERROR("http", NULL, "cannot listen on %s (%s): %s", l->text, key, strerror(saved));
        return ES_EIO;
    }
    return 0;
}

/* A shared port (webrtc.tcp_on_http): HTTP and TLS connections go to lws as if its own listener
 * had accepted them; framed STUN to the WebRTC transport. */
static void handoff(struct lws_vhost *vh, int fd, const char *port)
{
    if (!vh) {
        close(fd);
        return;
    }
    /* On failure lws has closed the fd itself (its adopt path frees the half-made wsi). */
    if (!lws_adopt_socket_vhost(vh, fd))
        ES_WARN("http", NULL, "libwebsockets did not take a connection on the %s port", port);
}

static void handoff_http(void *user, int fd, es_tcp_sniff_t kind)
{
    (void)kind; /* TLS on the plain port: lws answers it as bad HTTP */
    handoff(((es_http_server_t *)user)->vh_http, fd, "HTTP");
}

static void handoff_https(void *user, int fd, es_tcp_sniff_t kind)
{
    (void)kind;
    handoff(((es_http_server_t *)user)->vh_https, fd, "HTTPS");
}

static void ice_tcp_conn(void *user, es_tcp_conn_t *c)
{
    es_rtc_server_on_tcp_conn(((es_http_server_t *)user)->srv->rtc, c);
}

static struct lws_vhost *make_vhost(es_http_server_t *h, const char *name, const es_listen_t *l,
                                    const char *key, bool tls)
{
    bool share = h->srv->cfg->webrtc.tcp_on_http;
    if (share) {
        es_tcp_listener_callbacks_t cb = {.on_conn = ice_tcp_conn,
                                          .on_handoff = tls ? handoff_https : handoff_http};
        char err[256];
        if (es_tcp_listener_open(h->srv->loop, l, true, &cb, h, tls ? &h->ls_https : &h->ls_http,
                                 err, sizeof err) != 0) {
            ES_ERROR("http", NULL, "cannot listen on %s (%s): %s", l->text, key, err);
            return NULL;
        }
    } else if (probe_bind(l, key) < 0) {
        return NULL;
    }
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.vhost_name = name;
    info.port = share ? CONTEXT_PORT_NO_LISTEN_SERVER : l->port;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    if (strcmp(l->host, "0.0.0.0") == 0) {
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    } else if (strcmp(l->host, "::") != 0) {
        info.iface = l->host;
        if (l->addr.ss_family == AF_INET) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    }
    info.keepalive_timeout = 30;
    info.timeout_secs = 30;
    if (tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        /* HTTP/1.1 only: lws would offer h2, where a WebSocket is an RFC 8441 stream (our
         * signaling reads the HTTP/1.1 request and writes its close frame raw) and HTTP-FLV's
         * chunked body is not allowed. */
        info.alpn = "http/1.1";
        info.ssl_cert_filepath = h->srv->cfg->http.https_cert;
        info.ssl_private_key_filepath = h->srv->cfg->http.https_key;
    }
    struct lws_vhost *vh = lws_create_vhost(h->ctx, &info);
    if (!vh) ES_ERROR("http", NULL, "cannot listen on %s (%s)%s", l->text, key,
                      tls ? ": check http.https.cert and http.https.key" : "");
    return vh;
}

void es_http_server_apply_config(es_http_server_t *h)
{
    (void)h; /* lws keeps one log level per process */
    /* lws NOTICE lines are connection chatter: only worth having at debug. */
    lws_set_log_level(LLL_ERR | LLL_WARN | (es_log_enabled(ES_LOG_DEBUG) ? LLL_NOTICE : 0),
                      lws_log_emit);
}

static char *find_web_root(const es_config_t *cfg)
{
    if (cfg->http.web_root) return strdup(cfg->http.web_root);
    /* Next to the binary first (build/estuary -> ../web, bin/estuary -> ../share/estuary/web),
     * then the install and source locations compiled in. */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 64);
    const char *candidates[4];
    size_t nc = 0;
    char a[4200], b[4200];
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(a, sizeof a, "%s/../share/estuary/web", exe);
        snprintf(b, sizeof b, "%s/../web", exe);
        candidates[nc++] = a;
        candidates[nc++] = b;
    }
    candidates[nc++] = ES_INSTALL_WEB_DIR;
    candidates[nc++] = ES_SOURCE_WEB_DIR;
    for (size_t i = 0; i < nc; i++) {
        char index[4300];
        snprintf(index, sizeof index, "%s/index.html", candidates[i]);
        if (access(index, R_OK) == 0) {
            char real[4096];
            return strdup(realpath(candidates[i], real) ? real : candidates[i]);
        }
    }
    return NULL;
}

int es_http_server_start(es_server_t *srv, es_http_server_t **out)
{
    es_http_server_t *h = calloc(1, sizeof *h);
    *out = h;
    if (!h) return ES_ENOMEM;
    h->srv = srv;
    h->routes = es_api_routes(&h->n_routes);
    if (!(h->ws_hub = es_ws_hub_new(srv))) return ES_ENOMEM;
    h->web_root = find_web_root(srv->cfg);
    if (!h->web_root)
        ES_WARN("http", NULL, "no web folder found (set http.web_root); serving the API only");

    es_http_server_apply_config(h);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = {srv->loop};
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.foreign_loops = loops;
    info.user = h;
    info.pcontext = &h->ctx; /* lws sets it to NULL once the context is wholly destroyed */
    info.max_http_header_data = 4096;
    h->ctx = lws_create_context(&info);
    if (!h->ctx) {
        ES_ERROR("http", NULL, "libwebsockets failed to start on the libuv loop (is the "
                 "libwebsockets-evlib-uv package installed?)");
        return ES_EIO;
    }
    const es_config_t *cfg = srv->cfg;
    if (cfg->http.listen.enabled &&
        !(h->vh_http = make_vhost(h, "http", &cfg->http.listen, "http.listen", false)))
        goto fail;
    if (cfg->http.https_listen.enabled &&
        !(h->vh_https = make_vhost(h, "https", &cfg->http.https_listen, "http.https.listen", true)))
        goto fail;
    return 0;
fail:
    es_http_server_stop(h);
    return ES_EIO;
}

void es_http_server_stop(es_http_server_t *h)
{
    if (!h || h->stopping) return;
    h->stopping = true;
    es_tcp_listener_close(h->ls_http);
    es_tcp_listener_close(h->ls_https);
    h->ls_http = h->ls_https = NULL;
    es_ws_hub_stop(h->ws_hub);
    /* On a foreign loop this only starts the teardown: lws closes its libuv handles and finishes
     * in their close callbacks, which run as the loop goes on (es_http_server_free). */
    if (h->ctx) lws_context_destroy(h->ctx);
}

void es_http_server_free(es_http_server_t *h)
{
    if (!h) return;
    es_http_server_stop(h);
    /* The loop has run dry; if lws still holds the context, a second call completes it. */
    if (h->ctx) lws_context_destroy(h->ctx);
    es_ws_hub_free(h->ws_hub); /* its connections were closed with the context */
    free(h->web_root);
    free(h);
}

int es_http_server_port(const es_http_server_t *h)
{
    if (h && h->ls_http) return es_tcp_listener_port(h->ls_http);
    return h && h->vh_http ? lws_get_vhost_listen_port(h->vh_http) : 0;
}

void es_http_server_ice_tcp_ports(const es_http_server_t *h, int *http_port, int *https_port)
{
    *http_port = h && h->ls_http ? es_tcp_listener_port(h->ls_http) : 0;
    *https_port = h && h->ls_https ? es_tcp_listener_port(h->ls_https) : 0;
}

const char *es_http_server_web_root(const es_http_server_t *h) { return h ? h->web_root : NULL; }
