/* RTMP server: TCP on rtmp.listen, one sans-IO session (src/rtmp/session.c) per connection.
 *
 * A publisher's messages become refcounted FLV tags published into the stream's frame hub (RTMP
 * and HTTP-FLV players) and, when the app has rtmp_to_rtc, into the RTMP->WebRTC bridge. A
 * player subscribes to the hub and is written to only while its socket keeps up: tags are taken
 * from its queue while less than PLAYER_WRITE_HIGH bytes wait in libuv's write queue, so a slow
 * player's backlog stays in its bounded hub queue (which drops to the next key frame) and never
 * slows anyone else. Publish and play are admitted by es_admit_begin (include/estuary/hooks.h)
 * like every protocol's, the app's hook answering later through es_rtmp_session_complete. A
 * 10 ms timer closes connections marked for closing; every 100 ms it runs the handshake,
 * connect, idle and waiting-player timeouts. Stream maintenance (bridges, HLS) has its own timer
 * (es_live_tick, main.c). */
#include "estuary/rtmp_server.h"

#include "estuary/admission.h"
#include "estuary/clock.h"
#include "estuary/error.h"
#include "estuary/frame_hub.h"
#include "estuary/hooks.h"
#include "estuary/live.h"
#include "estuary/log.h"
#include "estuary/random.h"
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
#define MAX_MESSAGE_BEFORE 65536       /* bytes of one message until a publish is accepted */
#define LISTEN_BACKLOG 1024            /* a burst of connections waits in the kernel, not in
                                          SYN-RECV limbo, until accepted (or refused) */

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
    char app_query[ES_RTMP_QUERY_MAX + 1]; /* the query of connect's app ("token=T") */
    char token[ES_RTMP_QUERY_MAX + 1];     /* the token publish/play presented */
    es_hook_call_t *hook;         /* the admission hook being asked (publish or play) */
    bool hook_publish;            /* ... for a publish */
    es_rtmp_role_t role;
    bool handshake_done;
    uint64_t created_us, last_rx_us, role_since_us; /* role_since_us: since the role (NONE too)
                                                        began: connect, a stop */
    uint64_t waiting_since_us;    /* player: since its stream has had no publisher; 0 */
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
        c->waiting_since_us = published ? 0 : es_clock_now_us();
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
        es_admit_end(rs->srv, ES_PROTO_RTMP, ES_ADMIT_PUBLISH, c->app, c->name, c->remote, c->id);
    } else if (c->role == ES_RTMP_ROLE_PLAYER) {
        es_frame_sub_stats_t fs = es_frame_sub_stats(c->sub);
        ES_INFO("rtmp", &lc, "play ended after %.1f s: %llu tags, %llu bytes, %u overflows "
                "(%llu tags dropped)", (double)(now - c->role_since_us) / 1e6,
                (unsigned long long)fs.tags, (unsigned long long)c->bytes_out, fs.overflows,
                (unsigned long long)fs.dropped_tags);
        es_frame_hub_unsubscribe(st->frames, c->sub);
        c->sub = NULL;
        c->st = NULL;
        es_admit_end(rs->srv, ES_PROTO_RTMP, ES_ADMIT_PLAY, c->app, c->name, c->remote, c->id);
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
    es_hook_cancel(c->hook);
    c->hook = NULL;
    conn_detach(c);
    conn_unlink(c);
    es_server_session_close(c->rs->srv, c->remote);
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
    if (!es_config_find_app(cfg, info->app)) { /* es_admit's words, a step earlier */
        snprintf(reason, len, "app '%s' is not configured", info->app);
        ES_INFO("rtmp", &lc, "connect refused: %s", reason);
        return ES_EACCES;
    }
    snprintf(c->app_query, sizeof c->app_query, "%s", info->app_query);
    c->role_since_us = es_clock_now_us();
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

/* A publisher taken over by a new one (es_live_source_kick). */
static void kick_conn(void *user, const char *why) { conn_close(user, why); }

/* Attaches c to its stream as the publisher or a player: es_admit at the moment it takes the
 * stream (a hook may have been asked before, the stream may have changed meanwhile), the
 * takeover of a silent publisher, the stream and its frame hub. Returns 0, or the refusal with
 * the reason (logged here). */
static int attach(conn_t *c, bool publish, char *reason, size_t len)
{
    es_rtmp_server_t *rs = c->rs;
    es_server_t *srv = rs->srv;
    const es_config_t *cfg = srv->cfg;
    uint64_t now = es_clock_now_us();
    es_admit_request_t areq = {.app = c->app, .stream = c->name, .token = c->token,
                               .role = publish ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY,
                               .protocol = ES_PROTO_RTMP, .counted = true, .now_us = now};
    es_admit_decision_t d;
    es_log_ctx_t lc = clog_ctx(c);
    int rc = es_admit_now(srv, &areq, c->remote, &d);
    es_stream_t *st = d.stream;
    if (rc == 0 && d.takeover && st) {
        ES_INFO("rtmp", &lc, "publisher takeover: the current publisher sent nothing for %.1f s "
                "and is replaced", (double)es_live_source_silent_us(st, now) / 1e6);
        es_live_source_kick(st, "replaced by a new publisher (apps.<app>.publisher_takeover)");
        st = es_registry_find(srv->registry, c->app, c->name);
        if (st && st->source != ES_SOURCE_NONE) {
            rc = ES_EEXIST;
            snprintf(d.reason, sizeof d.reason, "stream %.200s is already being published", c->key);
        }
    }
    if (rc == 0 && (rc = es_live_open(srv->registry, c->app, c->name, now, &st)) != 0)
        snprintf(d.reason, sizeof d.reason, "cannot open stream %.200s: %s", c->key, es_strerror(rc));
    es_frame_hub_limits_t lim = es_live_hub_limits(cfg);
    es_frame_sub_t *sub = NULL;
    if (rc == 0 && (!es_live_frames(st, &lim) ||
                    (!publish && !(sub = es_frame_hub_subscribe(st->frames, player_wake, c, now))))) {
        rc = ES_ENOMEM;
        snprintf(d.reason, sizeof d.reason, "out of memory");
        es_live_release(srv->registry, st);
    }
    if (rc != 0) {
        snprintf(reason, len, "%s", d.reason);
        es_admit_log_refusal(ES_PROTO_RTMP, areq.role, c->app, c->name, c->remote, c->id, rc,
                             d.reason);
        c->key[0] = '\0';
        return rc;
    }
    c->st = st;
    c->role_since_us = now;
    if (publish) {
        es_live_source_begin(st, ES_SOURCE_RTMP, kick_conn, c, cfg, now);
        c->role = ES_RTMP_ROLE_PUBLISHER;
        const es_app_config_t *ac = d.app;
        ES_INFO("rtmp", &lc, "publish started%s", ac && ac->rtmp_to_rtc ? "" : " (rtmp_to_rtc "
                "off: WebRTC players cannot watch)");
        notify_players(rs, st, true);
    } else {
        c->sub = sub;
        c->role = ES_RTMP_ROLE_PLAYER;
        c->waiting_since_us = st->source == ES_SOURCE_NONE ? now : 0;
        ES_INFO("rtmp", &lc, "play started%s", st->source == ES_SOURCE_NONE
                ? " (not published yet: waiting for a publisher)"
                : st->source == ES_SOURCE_WEBRTC ? " (published over WebRTC: no frames for RTMP "
                "players yet)" : "");
    }
    return 0;
}

/* The app's hook answered a pending publish or play. */
static void on_hook_done(void *user, int err, const char *reason)
{
    conn_t *c = user;
    c->hook = NULL;
    char why[ES_ADMIT_REASON_MAX];
    snprintf(why, sizeof why, "%s", reason);
    int rc = err;
    if (err) {
        es_admit_log_refusal(ES_PROTO_RTMP, c->hook_publish ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY,
                             c->app, c->name, c->remote, c->id, err, why);
        c->key[0] = '\0';
    } else {
        rc = attach(c, c->hook_publish, why, sizeof why);
    }
    int r = es_rtmp_session_complete(c->sess, rc, why);
    if (r < 0 && r != ES_EINVAL) conn_close(c, es_rtmp_session_error(c->sess)[0]
                                                ? es_rtmp_session_error(c->sess) : why);
    else if (c->role == ES_RTMP_ROLE_PLAYER) player_pump(c);
}

/* publish and play: the name, the token (?token= of the stream name, else of connect's app),
 * es_admit_begin, and the attachment now or after the hook (ES_EAGAIN). */
static int begin(conn_t *c, bool publish, const char *name, const char *query, char *reason,
                 size_t len)
{
    if (c->role != ES_RTMP_ROLE_NONE || c->st) {
        snprintf(reason, len, "this connection already %s %s",
                 c->role == ES_RTMP_ROLE_PUBLISHER ? "publishes" : "plays", c->key);
        return ES_EINVAL;
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->key, sizeof c->key, "%s/%s", c->app, name);
    query_token(query, c->token, sizeof c->token);
    if (!c->token[0]) query_token(c->app_query, c->token, sizeof c->token);
    es_admit_request_t areq = {.app = c->app, .stream = name, .token = c->token,
                               .role = publish ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY,
                               .protocol = ES_PROTO_RTMP, .counted = true,
                               .now_us = es_clock_now_us()};
    es_admit_decision_t d;
    int rc = es_admit_begin(c->rs->srv, &areq, c->remote, c->id, query, &d, on_hook_done, c,
                            &c->hook);
    if (rc != 0) {
        snprintf(reason, len, "%s", d.reason);
        c->key[0] = '\0';
        return rc;
    }
    if (c->hook) {
        c->hook_publish = publish;
        return ES_EAGAIN;
    }
    return attach(c, publish, reason, len);
}

static int on_publish(void *user, const char *name, const char *query, char *reason, size_t len)
{
    return begin(user, true, name, query, reason, len);
}

static int on_play(void *user, const char *name, const char *query, char *reason, size_t len)
{
    /* The status sequence is queued by the session after we return; the cached tags follow on
     * the next loop turn so they come after it. */
    return begin(user, false, name, query, reason, len);
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
    ES_DEBUG("rtmp", &lc, "client ended its %s%s", role_name(c->role),
             c->hook ? " (while its hook was asked)" : "");
    es_hook_cancel(c->hook);
    c->hook = NULL;
    conn_detach(c);
    c->role = ES_RTMP_ROLE_NONE;
    c->role_since_us = es_clock_now_us();
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
    if (!c->handshake_done && es_rtmp_session_handshake_done(c->sess)) {
        c->handshake_done = true;
        c->role_since_us = c->last_rx_us; /* connect must follow within connect_timeout_ms */
    }
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
    c->id[0] = 'r'; /* random: an id says nothing about how many came before */
    es_random_text(c->id + 1, 15, "0123456789abcdef");
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
    char ipbuf[48], why[160];
    es_client_ip(c->remote, ipbuf, sizeof ipbuf);
    int arc = rs->stopping ? ES_EBUSY
                           : es_admit_connection(cfg, rs->srv->sessions,
                                                 es_clients_sessions(rs->srv->clients, ipbuf),
                                                 why, sizeof why);
    if (arc != 0) {
        if (!rs->stopping) ES_WARN("rtmp", &lc, "connection refused: %s", why);
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    es_rtmp_session_params_t p = {
        .chunk_size = cfg->rtmp.chunk_size,
        .max_message_before = MAX_MESSAGE_BEFORE,
        .max_message = cfg->rtmp.max_message_bytes,
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
    es_server_session_open(rs->srv, c->remote);
    ES_DEBUG("rtmp", &lc, "connection accepted");
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* --- timer --- */

/* The timeouts of one connection (every 100 ms). Returns the reason to close it, or NULL. */
static const char *timed_out(const conn_t *c, const es_config_t *cfg, uint64_t now, char *why,
                             size_t len)
{
    const uint64_t ms = 1000;
    if (!c->handshake_done) {
        if (now - c->created_us <= (uint64_t)cfg->rtmp.handshake_timeout_ms * ms) return NULL;
        snprintf(why, len, "handshake not completed within rtmp.handshake_timeout_ms (%u ms)",
                 cfg->rtmp.handshake_timeout_ms);
        return why;
    }
    if (c->role == ES_RTMP_ROLE_NONE && !c->hook &&
        now - c->role_since_us > (uint64_t)cfg->rtmp.connect_timeout_ms * ms) {
        snprintf(why, len, "%s within rtmp.connect_timeout_ms (%u ms)",
                 es_rtmp_session_connected(c->sess) ? "neither publish nor play"
                                                    : "no connect after the handshake",
                 cfg->rtmp.connect_timeout_ms);
        return why;
    }
    if (c->role != ES_RTMP_ROLE_PLAYER &&
        now - c->last_rx_us > (uint64_t)cfg->rtmp.idle_timeout_ms * ms) {
        snprintf(why, len, "%s sent nothing for rtmp.idle_timeout_ms (%u ms)", role_name(c->role),
                 cfg->rtmp.idle_timeout_ms);
        return why;
    }
    if (c->role == ES_RTMP_ROLE_PLAYER && c->waiting_since_us && cfg->limits.player_wait_ms &&
        now - c->waiting_since_us > (uint64_t)cfg->limits.player_wait_ms * ms) {
        snprintf(why, len, "nobody published %.100s for limits.player_wait_ms (%u ms)", c->key,
                 cfg->limits.player_wait_ms);
        return why;
    }
    return NULL;
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
        char why[200];
        const char *reason = slow ? timed_out(c, cfg, now, why, sizeof why) : NULL;
        if (reason) conn_close(c, reason);
    }
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
    if (rc == 0) rc = uv_listen((uv_stream_t *)&rs->listener, LISTEN_BACKLOG, on_connection);
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
