/* RTMP server: TCP on rtmp.listen, one sans-IO session (src/rtmp/session.c) per connection.
 *
 * A publisher's messages become refcounted FLV tags published into the stream's frame hub (RTMP
 * and HTTP-FLV players) and, when the app has rtmp_to_rtc, into the RTMP->WebRTC bridge. A
 * player subscribes to the hub and is written to only while its socket keeps up: tags are taken
 * from its queue while less than PLAYER_WRITE_HIGH bytes wait in libuv's write queue, so a slow
 * player's backlog stays in its bounded hub queue (which drops to the next key frame) and never
 * slows anyone else. A 10 ms timer drives the bridges' RTCP; every 100 ms it also runs the
 * handshake and idle timeouts and the hubs' stall detection (RTMP and HTTP-FLV players). */
#include "estuary/rtmp_server.h"

#include "estuary/clock.h"
#include "estuary/error.h"
#include "estuary/frame_hub.h"
#include "estuary/live.h"
#include "estuary/log.h"
#include "estuary/rtmp_bridge.h"
#include "estuary/rtmp_session.h"
#include "estuary/stream.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define TICK_MS 10
#define SLOW_TICKS 10                 /* the 100 ms checks run every 10th tick */
#define READ_BUF 65536
#define PLAYER_WRITE_HIGH (256 * 1024) /* bytes in libuv's write queue before we stop popping */
#define IDLE_TIMEOUT_MS 30000          /* a publisher silent this long, or a connection that
                                          neither publishes nor plays this long, is closed */

typedef struct conn {
    uv_tcp_t tcp;                 /* first: the handle's data points back here too */
    struct es_rtmp_server *rs;
    es_rtmp_session_t *sess;
    char id[24];
    char remote[64];
    char app[ES_RTMP_NAME_MAX + 1];
    char name[ES_RTMP_NAME_MAX + 1];  /* stream name once publishing or playing */
    char key[ES_RTMP_NAME_MAX * 2 + 2]; /* "app/stream" once publishing or playing */
    es_stream_t *st;              /* the stream published or played; NULL before */
    es_frame_sub_t *sub;          /* player: its queue in st->frames */
    es_live_clock_t clock;        /* player: output timestamps */
    es_rtmp_role_t role;
    uint64_t created_us, last_rx_us, role_since_us;
    uint64_t bytes_in, bytes_out, tags;
    bool closing;
    bool close_pending;           /* conn_close_later: the timer closes it */
    char close_reason[160];
    struct conn *prev, *next;
} conn_t;

struct es_rtmp_server {
    es_server_t *srv;
    uv_tcp_t listener;
    bool listening;
    uv_timer_t timer;
    unsigned ticks;
    conn_t *conns;
    uint64_t next_id;
    bool stopping;
    int port;
    uint8_t readbuf[READ_BUF];
    bool readbuf_busy;
};

typedef struct wreq {
    uv_write_t req;
    conn_t *c;
    size_t len;
    uint8_t data[];
} wreq_t;

static es_log_ctx_t clog_ctx(const conn_t *c)
{
    return (es_log_ctx_t){.peer = c->id, .remote = c->remote, .stream = c->key[0] ? c->key : NULL};
}

static const char *role_name(es_rtmp_role_t r)
{
    return r == ES_RTMP_ROLE_PUBLISHER ? "publisher" : r == ES_RTMP_ROLE_PLAYER ? "player" : "client";
}

static void conn_close(conn_t *c, const char *reason);
static void player_pump(conn_t *c);

/* Marks c for closing by the next tick: for paths that run inside a hub's fan-out loop (a
 * player's wake), where unsubscribing at once would change the list being walked. */
static void conn_close_later(conn_t *c, const char *reason)
{
    if (c->closing || c->close_pending) return;
    c->close_pending = true;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
}

/* --- writes --- */

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    conn_t *c = w->c;
    free(w);
    if (status < 0) {
        if (status != UV_ECANCELED) {
            char why[96];
            snprintf(why, sizeof why, "write failed: %s", uv_strerror(status));
            conn_close(c, why);
        }
        return;
    }
    if (c->role == ES_RTMP_ROLE_PLAYER && !c->closing) player_pump(c);
}

/* Bytes for the client: written at once when nothing is queued (no copy, no allocation: the
 * common case for a player that keeps up), the rest copied into a write request. */
static void session_send(void *user, const uint8_t *buf, size_t len)
{
    conn_t *c = user;
    if (c->closing || c->close_pending || !len) return;
    size_t off = 0;
    int rc = 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
        rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (rc > 0) off = (size_t)rc;
        else if (rc == UV_EAGAIN) rc = 0;
    }
    if (rc >= 0 && off < len) {
        wreq_t *w = malloc(sizeof *w + (len - off));
        if (!w) {
            conn_close_later(c, "out of memory");
            return;
        }
        w->c = c;
        w->len = len - off;
        memcpy(w->data, buf + off, len - off);
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
        if ((rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write)) < 0) free(w);
    }
    if (rc < 0) {
        char why[96];
        snprintf(why, sizeof why, "write failed: %s", uv_strerror(rc));
        conn_close_later(c, why);
        return;
    }
    c->bytes_out += len;
}

/* --- players --- */

static void player_pump(conn_t *c)
{
    if (!c->sub || c->closing || c->close_pending) return;
    uint64_t now = es_clock_now_us();
    while (!c->close_pending && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < PLAYER_WRITE_HIGH) {
        es_tag_t *t = es_frame_sub_pop(c->sub, now);
        if (!t) break;
        uint32_t ts = es_live_clock_map(&c->clock, t->timestamp_ms);
        es_rtmp_session_send_media(c->sess, t->type, ts, t->data, t->len);
        c->tags++;
        es_tag_unref(t);
    }
    if (es_frame_sub_stalled(c->sub)) {
        char why[128];
        snprintf(why, sizeof why, "player stalled: its socket took nothing for %u ms "
                 "(rtmp.player_stall_ms)", c->rs->srv->cfg->rtmp.player_stall_ms);
        conn_close_later(c, why);
    }
}

static void player_wake(void *user) { player_pump(user); }

/* Tells the RTMP players of st that its publisher left or came back. */
static void notify_players(es_rtmp_server_t *rs, es_stream_t *st, bool published)
{
    for (conn_t *c = rs->conns; c; c = c->next) {
        if (c->closing || c->st != st || c->role != ES_RTMP_ROLE_PLAYER) continue;
        char desc[300];
        snprintf(desc, sizeof desc, "%s is %s", st->key, published ? "published" : "unpublished");
        es_rtmp_session_send_status(c->sess, "status",
                                    published ? "NetStream.Play.PublishNotify"
                                              : "NetStream.Play.UnpublishNotify", desc);
    }
}

/* --- leaving a stream --- */

static void conn_detach(conn_t *c)
{
    es_stream_t *st = c->st;
    if (!st) return;
    es_rtmp_server_t *rs = c->rs;
    uint64_t now = es_clock_now_us();
    es_log_ctx_t lc = clog_ctx(c);
    if (c->role == ES_RTMP_ROLE_PUBLISHER) {
        es_live_source_ended(st, now);
        ES_INFO("rtmp", &lc, "publish ended after %.1f s (%llu bytes in)",
                (double)(now - c->role_since_us) / 1e6, (unsigned long long)c->bytes_in);
        c->st = NULL;
        notify_players(rs, st, false);
    } else if (c->role == ES_RTMP_ROLE_PLAYER) {
        es_frame_sub_stats_t fs = es_frame_sub_stats(c->sub);
        ES_INFO("rtmp", &lc, "play ended after %.1f s: %llu tags, %llu bytes, %u overflows "
                "(%llu tags dropped)", (double)(now - c->role_since_us) / 1e6,
                (unsigned long long)fs.tags, (unsigned long long)c->bytes_out, fs.overflows,
                (unsigned long long)fs.dropped_tags);
        es_frame_hub_unsubscribe(st->frames, c->sub);
        c->sub = NULL;
        c->st = NULL;
    }
    es_live_release(rs->srv->registry, st);
}

static void on_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    es_rtmp_session_free(c->sess);
    free(c);
}

static void conn_unlink(conn_t *c)
{
    es_rtmp_server_t *rs = c->rs;
    if (c->prev) c->prev->next = c->next;
    else if (rs->conns == c) rs->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    free(req);
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Closes c: leaves its stream at once, lets queued writes (an onStatus explaining a refusal)
 * drain, then closes the socket. Safe to call more than once and from inside callbacks. */
static void conn_close(conn_t *c, const char *reason)
{
    if (c->closing) return;
    c->closing = true;
    if (reason != c->close_reason) snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    reason = c->close_reason;
    es_log_ctx_t lc = clog_ctx(c);
    ES_INFO("rtmp", &lc, "%s connection closed after %.1f s: %s (in %llu bytes, out %llu bytes)",
            role_name(c->role), (double)(es_clock_now_us() - c->created_us) / 1e6, reason,
            (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
    conn_detach(c);
    conn_unlink(c);
    if (c->rs->srv->sessions) c->rs->srv->sessions--;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req) {
        req->data = c;
        if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) == 0) return;
        free(req);
    }
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* --- session callbacks --- */

static int on_connect(void *user, const es_rtmp_connect_info_t *info, char *reason, size_t len)
{
    conn_t *c = user;
    const es_config_t *cfg = c->rs->srv->cfg;
    snprintf(c->app, sizeof c->app, "%s", info->app);
    es_log_ctx_t lc = clog_ctx(c);
    if (!es_registry_valid_name(info->app, ES_APP_NAME_MAX)) {
        snprintf(reason, len, "bad app name '%s': use 1-64 letters, digits, '_', '-', '.'",
                 info->app);
        ES_INFO("rtmp", &lc, "connect refused: %s", reason);
        return ES_EINVAL;
    }
    if (!es_config_find_app(cfg, info->app)) {
        snprintf(reason, len, "unknown app '%s' (not in apps, and there is no \"*\" entry)",
                 info->app);
        ES_INFO("rtmp", &lc, "connect refused: %s", reason);
        return ES_ENOENT;
    }
    ES_DEBUG("rtmp", &lc, "connect app=%s tcUrl=%s flashVer=%s", info->app, info->tc_url,
             info->flash_ver);
    return 0;
}

/* The value of token= in a query ("token=T&x=y"), copied into out; "" when absent. */
static void query_token(const char *query, char *out, size_t len)
{
    out[0] = '\0';
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > 6 && !strncmp(p, "token=", 6)) {
            snprintf(out, len, "%.*s", (int)(n - 6), p + 6);
            return;
        }
        p = amp ? amp + 1 : NULL;
    }
}

/* Checks the app's token against ?token= of the stream name or the app. 0, or ES_EACCES. */
static int check_token(conn_t *c, const char *expected, const char *query, char *reason,
                       size_t len)
{
    if (!expected || !*expected) return 0;
    char tok[ES_RTMP_QUERY_MAX + 1];
    query_token(query, tok, sizeof tok);
    if (!tok[0]) {
        snprintf(reason, len, "app %s needs a token: add ?token=TOKEN to the stream key", c->app);
        return ES_EACCES;
    }
    if (!es_config_token_equal(expected, tok)) {
        snprintf(reason, len, "wrong token for app %s", c->app);
        return ES_EACCES;
    }
    return 0;
}

static int stream_check(conn_t *c, const char *name, char *reason, size_t len)
{
    if (c->role != ES_RTMP_ROLE_NONE || c->st) {
        snprintf(reason, len, "this connection already %s %s",
                 c->role == ES_RTMP_ROLE_PUBLISHER ? "publishes" : "plays", c->key);
        return ES_EINVAL;
    }
    if (!es_registry_valid_name(name, ES_STREAM_NAME_MAX)) {
        snprintf(reason, len, "bad stream name '%s': use 1-128 letters, digits, '_', '-', '.'",
                 name);
        return ES_EINVAL;
    }
    snprintf(c->key, sizeof c->key, "%s/%s", c->app, name);
    snprintf(c->name, sizeof c->name, "%s", name);
    return 0;
}

/* What publish and play share: the stream name, the app and its token (publish_token or
 * play_token), no other publisher (publish), and the stream with its frame hub, made when
 * absent. Returns 0 with *st and *ac, or the error for the session with the reason filled. */
static int open_stream(conn_t *c, const char *name, const char *query, bool publish, char *reason,
                       size_t len, es_stream_t **st, const es_app_config_t **ac)
{
    es_rtmp_server_t *rs = c->rs;
    const es_config_t *cfg = rs->srv->cfg;
    int rc = stream_check(c, name, reason, len);
    if (rc != 0) return rc;
    if (!(*ac = es_config_find_app(cfg, c->app))) {
        snprintf(reason, len, "unknown app '%s'", c->app);
        return ES_ENOENT;
    }
    rc = check_token(c, publish ? (*ac)->publish_token : (*ac)->play_token, query, reason, len);
    if (rc != 0) return rc;
    *st = es_registry_find(rs->srv->registry, c->app, name);
    if (publish && *st && (*st)->source != ES_SOURCE_NONE) {
        snprintf(reason, len, "stream %s is already being published (over %s)", c->key,
                 (*st)->source == ES_SOURCE_RTMP ? "RTMP" : "WebRTC");
        return ES_EEXIST;
    }
    if ((rc = es_live_open(rs->srv->registry, c->app, name, es_clock_now_us(), st)) != 0) {
        snprintf(reason, len, "cannot open stream %s: %s", c->key, es_strerror(rc));
        return rc;
    }
    es_frame_hub_limits_t lim = es_live_hub_limits(cfg);
    if (!es_live_frames(*st, &lim)) {
        snprintf(reason, len, "out of memory");
        es_live_release(rs->srv->registry, *st);
        return ES_ENOMEM;
    }
    return 0;
}

static int on_publish(void *user, const char *name, const char *query, char *reason, size_t len)
{
    conn_t *c = user;
    es_rtmp_server_t *rs = c->rs;
    es_stream_t *st = NULL;
    const es_app_config_t *ac = NULL;
    int rc = open_stream(c, name, query, true, reason, len, &st, &ac);
    es_log_ctx_t lc = clog_ctx(c);
    if (rc != 0) {
        ES_INFO("rtmp", &lc, "publish refused: %s", reason);
        c->key[0] = '\0';
        return rc;
    }
    es_frame_hub_reset(st->frames);
    st->source = ES_SOURCE_RTMP;
    if (ac->rtmp_to_rtc)
        st->bridge = es_rtmp_bridge_new(st->media, st->key, rs->srv->cfg->rtmp.opus_bitrate);
    c->st = st;
    c->role = ES_RTMP_ROLE_PUBLISHER;
    c->role_since_us = es_clock_now_us();
    ES_INFO("rtmp", &lc, "publish started%s", ac->rtmp_to_rtc ? "" : " (rtmp_to_rtc off: "
            "WebRTC players cannot watch)");
    notify_players(rs, st, true);
    return 0;
}

static int on_play(void *user, const char *name, const char *query, char *reason, size_t len)
{
    conn_t *c = user;
    es_stream_t *st = NULL;
    const es_app_config_t *ac = NULL;
    uint64_t now = es_clock_now_us();
    int rc = open_stream(c, name, query, false, reason, len, &st, &ac);
    es_frame_sub_t *sub = NULL;
    if (rc == 0 && !(sub = es_frame_hub_subscribe(st->frames, player_wake, c, now))) {
        snprintf(reason, len, "out of memory");
        rc = ES_ENOMEM;
        es_live_release(c->rs->srv->registry, st);
    }
    es_log_ctx_t lc = clog_ctx(c);
    if (rc != 0) {
        ES_INFO("rtmp", &lc, "play refused: %s", reason);
        c->key[0] = '\0';
        return rc;
    }
    c->st = st;
    c->sub = sub;
    c->role = ES_RTMP_ROLE_PLAYER;
    c->role_since_us = now;
    ES_INFO("rtmp", &lc, "play started%s", st->source == ES_SOURCE_NONE
            ? " (not published yet: waiting for a publisher)"
            : st->source == ES_SOURCE_WEBRTC ? " (published over WebRTC: no frames for RTMP "
            "players yet)" : "");
    /* The status sequence is queued by the session after we return; the cached tags follow on
     * the next loop turn so they come after it. */
    return 0;
}

static void on_media(void *user, uint8_t type, uint32_t ts, const uint8_t *payload, size_t len)
{
    conn_t *c = user;
    es_stream_t *st = c->st;
    if (!st || c->role != ES_RTMP_ROLE_PUBLISHER) return;
    es_tag_t *tag = es_tag_new(type, ts, payload, len);
    if (!tag) {
        conn_close_later(c, "out of memory");
        return;
    }
    uint64_t now = es_clock_now_us();
    c->tags++;
    es_live_publish_tag(st, tag, now);
    es_tag_unref(tag);
}

static void on_stop(void *user)
{
    conn_t *c = user;
    es_log_ctx_t lc = clog_ctx(c);
    ES_DEBUG("rtmp", &lc, "client ended its %s", role_name(c->role));
    conn_detach(c);
    c->role = ES_RTMP_ROLE_NONE;
    c->key[0] = '\0';
}

/* --- reads --- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    es_rtmp_server_t *rs = c->rs;
    if (rs->readbuf_busy) { /* cannot happen on one loop; be safe */
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    rs->readbuf_busy = true;
    *buf = uv_buf_init((char *)rs->readbuf, sizeof rs->readbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    c->rs->readbuf_busy = false;
    if (n == 0 || c->closing) return;
    if (n < 0) {
        conn_close(c, n == UV_EOF ? "closed by the client" : uv_strerror((int)n));
        return;
    }
    c->bytes_in += (uint64_t)n;
    c->last_rx_us = es_clock_now_us();
    int rc = es_rtmp_session_handle_bytes(c->sess, (const uint8_t *)buf->base, (size_t)n);
    if (rc < 0 && !c->closing) {
        char why[320];
        snprintf(why, sizeof why, "%s", es_rtmp_session_error(c->sess));
        if (!why[0]) snprintf(why, sizeof why, "%s", es_strerror(rc));
        conn_close(c, why);
        return;
    }
    if (c->close_pending) conn_close(c, c->close_reason);
    else if (c->role == ES_RTMP_ROLE_PLAYER) player_pump(c); /* the cached tags, after the
                                                                 Play.Start the session sent */
}

/* --- accept --- */

static void on_connection(uv_stream_t *server, int status)
{
    es_rtmp_server_t *rs = server->data;
    if (status < 0) {
        ES_WARN("rtmp", NULL, "accept failed: %s", uv_strerror(status));
        return;
    }
    conn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    c->rs = rs;
    uv_tcp_init(rs->srv->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    snprintf(c->id, sizeof c->id, "r%llu", (unsigned long long)++rs->next_id);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(c->remote, sizeof c->remote, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    c->created_us = c->last_rx_us = es_clock_now_us();
    const es_config_t *cfg = rs->srv->cfg;
    es_log_ctx_t lc = clog_ctx(c);
    if (rs->stopping || rs->srv->sessions >= cfg->limits.max_sessions) {
        ES_WARN("rtmp", &lc, "connection refused: at capacity (limits.max_sessions is %u)",
                cfg->limits.max_sessions);
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    es_rtmp_session_params_t p = {
        .chunk_size = cfg->rtmp.chunk_size,
        .window_ack_size = 2500000,
        .cb = {.send = session_send, .on_connect = on_connect, .on_publish = on_publish,
               .on_play = on_play, .on_media = on_media, .on_stop = on_stop},
        .user = c,
    };
    c->sess = es_rtmp_session_new(&p);
    if (!c->sess) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 30);
    c->next = rs->conns;
    if (rs->conns) rs->conns->prev = c;
    rs->conns = c;
    rs->srv->sessions++;
    ES_DEBUG("rtmp", &lc, "connection accepted");
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* --- timer --- */

static void maintain_streams(es_rtmp_server_t *rs, uint64_t now)
{
    es_registry_t *reg = rs->srv->registry;
    size_t n = es_registry_count(reg);
    if (!n) return;
    es_stream_t **list = malloc(n * sizeof *list);
    if (!list) return;
    n = es_registry_list(reg, list, n);
    for (size_t i = 0; i < n; i++)
        if (es_live_maintain(list[i], rs->srv->cfg, now)) es_live_release(reg, list[i]);
    free(list);
}

static void on_tick(uv_timer_t *t)
{
    es_rtmp_server_t *rs = t->data;
    const es_config_t *cfg = rs->srv->cfg;
    uint64_t now = es_clock_now_us();
    bool slow = ++rs->ticks % SLOW_TICKS == 0;
    conn_t *next;
    for (conn_t *c = rs->conns; c; c = next) {
        next = c->next;
        if (c->close_pending) {
            conn_close(c, c->close_reason);
            continue;
        }
        if (c->role == ES_RTMP_ROLE_PUBLISHER && c->st && c->st->bridge)
            es_rtmp_bridge_tick(c->st->bridge, now);
        if (!slow) continue;
        char why[160];
        if (!es_rtmp_session_handshake_done(c->sess) &&
            now - c->created_us > (uint64_t)cfg->rtmp.handshake_timeout_ms * 1000) {
            snprintf(why, sizeof why, "handshake not completed within rtmp.handshake_timeout_ms "
                     "(%u ms)", cfg->rtmp.handshake_timeout_ms);
            conn_close(c, why);
        } else if (c->role == ES_RTMP_ROLE_PUBLISHER &&
                   now - c->last_rx_us > (uint64_t)IDLE_TIMEOUT_MS * 1000) {
            snprintf(why, sizeof why, "publisher sent nothing for %d ms", IDLE_TIMEOUT_MS);
            conn_close(c, why);
        } else if (c->role == ES_RTMP_ROLE_NONE &&
                   now - c->last_rx_us > (uint64_t)IDLE_TIMEOUT_MS * 1000) {
            snprintf(why, sizeof why, "neither published nor played for %d ms", IDLE_TIMEOUT_MS);
            conn_close(c, why);
        }
    }
    if (slow) maintain_streams(rs, now);
}

/* --- lifecycle --- */

int es_rtmp_server_start(es_server_t *srv, es_rtmp_server_t **out)
{
    es_rtmp_server_t *rs = calloc(1, sizeof *rs);
    *out = rs;
    if (!rs) return ES_ENOMEM;
    rs->srv = srv;
    uv_timer_init(srv->loop, &rs->timer);
    rs->timer.data = rs;
    uv_timer_start(&rs->timer, on_tick, TICK_MS, TICK_MS);
    const es_listen_t *l = &srv->cfg->rtmp.listen;
    if (!l->enabled) {
        ES_INFO("rtmp", NULL, "RTMP is off (rtmp.listen is empty)");
        return 0;
    }
    uv_tcp_init(srv->loop, &rs->listener);
    rs->listener.data = rs;
    rs->listening = true;
    int rc = uv_tcp_bind(&rs->listener, (const struct sockaddr *)&l->addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&rs->listener, 128, on_connection);
    if (rc < 0) {
        ES_ERROR("rtmp", NULL, "cannot listen on %s (rtmp.listen): %s", l->text, uv_strerror(rc));
        return ES_EIO;
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getsockname(&rs->listener, (struct sockaddr *)&ss, &sl) == 0)
        rs->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
    ES_INFO("rtmp", NULL, "listening on %s", l->text);
    return 0;
}

void es_rtmp_server_stop(es_rtmp_server_t *rs)
{
    if (!rs || rs->stopping) return;
    rs->stopping = true;
    while (rs->conns) conn_close(rs->conns, "server shutting down");
    es_live_shutdown(rs->srv->registry, rs->srv->cfg);
    if (rs->listening && !uv_is_closing((uv_handle_t *)&rs->listener))
        uv_close((uv_handle_t *)&rs->listener, NULL);
    if (!uv_is_closing((uv_handle_t *)&rs->timer)) uv_close((uv_handle_t *)&rs->timer, NULL);
}

void es_rtmp_server_free(es_rtmp_server_t *rs)
{
    if (!rs) return;
    free(rs);
}

int es_rtmp_server_port(const es_rtmp_server_t *rs) { return rs ? rs->port : 0; }

void es_rtmp_server_apply_config(es_rtmp_server_t *rs)
{
    if (!rs) return;
    es_registry_t *reg = rs->srv->registry;
    size_t n = es_registry_count(reg);
    es_stream_t **list = n ? malloc(n * sizeof *list) : NULL;
    if (!list) return;
    n = es_registry_list(reg, list, n);
    es_frame_hub_limits_t lim = es_live_hub_limits(rs->srv->cfg);
    for (size_t i = 0; i < n; i++)
        if (list[i]->frames) es_frame_hub_set_limits(list[i]->frames, &lim);
    free(list);
}

static json_t *conn_json(const conn_t *c, uint64_t now)
{
    const char *state = !es_rtmp_session_handshake_done(c->sess) ? "handshake"
                        : c->role == ES_RTMP_ROLE_PUBLISHER       ? "publishing"
                        : c->role == ES_RTMP_ROLE_PLAYER          ? "playing"
                                                                  : "connected";
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "id", c->id,
                          "protocol", "rtmp", "role", role_name(c->role), "app", c->app,
                          "stream", c->st ? c->name : "", "state", state, "remote", c->remote,
                          "age_ms", (json_int_t)((now - c->created_us) / 1000), "bytes_in",
                          (json_int_t)c->bytes_in, "bytes_out", (json_int_t)c->bytes_out, "tags",
                          (json_int_t)c->tags);
    if (o && c->sub) {
        es_frame_sub_stats_t fs = es_frame_sub_stats(c->sub);
        json_object_set_new(o, "overflows", json_integer(fs.overflows));
        json_object_set_new(o, "dropped_tags", json_integer((json_int_t)fs.dropped_tags));
        json_object_set_new(o, "queued_bytes", json_integer((json_int_t)fs.queued_bytes));
    }
    return o;
}

json_t *es_rtmp_sessions_json(const es_rtmp_server_t *rs)
{
    json_t *arr = json_array();
    uint64_t now = es_clock_now_us();
    for (const conn_t *c = rs ? rs->conns : NULL; c && arr; c = c->next)
        if (!c->closing) json_array_append_new(arr, conn_json(c, now));
    return arr;
}

static conn_t *conn_find(const es_rtmp_server_t *rs, const char *id)
{
    for (conn_t *c = rs ? rs->conns : NULL; c; c = c->next)
        if (!c->closing && !strcmp(c->id, id)) return c;
    return NULL;
}

json_t *es_rtmp_session_json_by_id(const es_rtmp_server_t *rs, const char *id)
{
    const conn_t *c = conn_find(rs, id);
    return c ? conn_json(c, es_clock_now_us()) : NULL;
}

int es_rtmp_kick(es_rtmp_server_t *rs, const char *id, const char *why)
{
    conn_t *c = conn_find(rs, id);
    if (!c) return ES_ENOENT;
    conn_close(c, why);
    return 0;
}
