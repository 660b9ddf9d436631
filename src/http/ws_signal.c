/* WebSocket signaling (docs/websocket.md, src/http/ws_signal.h): ws(s)://HOST/{app}/{stream}/
 * webrtc/publish (the client offers, we answer) and ws(s)://HOST/{app}/{stream}/webrtc (we
 * offer once the player is admitted, the client answers; a client offer is answered instead).
 *
 * A connection counts as one session of its client from the moment it is open (limits.
 * max_sessions, limits.max_sessions_per_ip), is admitted like a WHIP/WHEP offer (es_admit_begin:
 * tokens, limits, the app's hook; limits.offers_per_ip), and owns its WebRTC session: closing the
 * socket ends the session, the session's end closes the socket. The 250 ms timer sends the
 * events (publisher left/returned, viewers, room members), pings idle sockets and closes those
 * that do not answer or that never offer/answer. Bad input (not JSON, an unknown type, over
 * 64 KiB, a flood) closes that socket with a reason and nothing else. */
#include "ws_signal.h"

#include "estuary/admission.h"
#include "estuary/clock.h"
#include "estuary/config.h"
#include "estuary/error.h"
#include "estuary/hooks.h"
#include "estuary/http.h"
#include "estuary/live.h"
#include "estuary/log.h"
#include "estuary/rtc_server.h"
#include "estuary/stream.h"
#include "estuary/ws_signal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 250
#define PING_AFTER_US 20000000u  /* idle this long: a WebSocket PING */
#define IDLE_CLOSE_US 60000000u  /* nothing from the client this long: closed */
#define QUEUE_MAX 64             /* messages waiting to be written to one socket ... */
#define QUEUE_MAX_BYTES (1u << 20) /* ... or bytes; past either the client is not reading */
#define ROOM_MAX 64              /* bytes of a room name */
#define ROOM_LIST_MAX 256        /* streams listed in one room event */
#define RETURN_CHECK_US 1000000u /* a player's codecs are checked against its publisher's this
                                    long after it went live or a publisher returned */
#define WS_CLOSE_TRY_AGAIN_LATER 1013 /* IANA WebSocket close code registry: "Try Again Later" */

typedef enum {
    WS_ADMITTING = 0, /* the hook is being asked */
    WS_WAIT_OFFER,    /* publish: admitted, waiting for the client's offer */
    WS_OFFERED,       /* play: our offer sent, waiting for the answer */
    WS_LIVE,          /* the session runs */
    WS_ENDED,         /* the session ended; the socket is closing */
} ws_state_t;

typedef struct out_msg {
    struct out_msg *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes, then the message */
} out_msg_t;

struct es_ws_conn {
    es_ws_hub_t *hub;
    struct lws *wsi;
    char id[24];                /* the connection's id (logs), "h<n>" */
    char remote[64];
    bool publish;
    char app[ES_APP_NAME_MAX + 1], stream[ES_STREAM_NAME_MAX + 1];
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    char room[ROOM_MAX + 1];
    char *token, *eip, *query; /* malloc'ed or NULL */
    ws_state_t state;
    uint64_t state_us;          /* when the state began */
    uint64_t opened_us;
    bool counted;               /* es_server_session_open was called for it */
    bool admitted;              /* es_admit_begin admitted it (hooks told at the end) */
    bool had_session;           /* a session was made (it tells the hooks itself) */
    es_hook_call_t *hook;
    es_ws_message_t early;      /* an offer that came while the hook was asked */
    es_rtc_pending_t *pending;  /* play: our offer */
    char session[ES_RTC_ID_LEN + 1]; /* the live session's id, "" when none */
    char session_to_be[ES_RTC_ID_LEN + 1]; /* the id told to the hooks */
    /* receiving */
    char *rx;                   /* the message being received */
    size_t rx_len, rx_cap;
    uint64_t last_rx_us;
    es_ws_bucket_t bucket;
    unsigned candidates;        /* trickled candidates received (ignored: ICE-lite) */
    /* sending */
    out_msg_t *head, *tail;
    size_t q_n, q_bytes;
    bool ping_due;
    uint64_t ping_sent_us;
    bool closing;
    bool close_sent;            /* our close frame is written */
    int close_code;
    char close_reason[120];
    /* events */
    int publishing;             /* play: -1 unknown, 0 no publisher, 1 publishing */
    uint64_t fed_check_us;      /* play: when to check that the publisher's codecs are the
                                   session's (after it went live, or a publisher returned) */
    long viewers;               /* -1 not sent yet */
    uint64_t room_hash;         /* of the last room list sent; 0: none sent */
    es_ws_conn_t *next, *prev;
};

struct es_ws_hub {
    es_server_t *srv;
    uv_timer_t timer;
    bool timer_on;
    es_ws_conn_t *conns;
};

static es_log_ctx_t conn_log(const es_ws_conn_t *c)
{
    return (es_log_ctx_t){.peer = c->session[0] ? c->session : c->id,
                          .stream = c->key[0] ? c->key : NULL, .remote = c->remote};
}

/* --- sending --- */

/* Makes s valid UTF-8 in place (RFC 3629): a byte that does not start or continue a valid
 * sequence, such as the tail of a character cut by truncation, becomes '?'. JSON strings and
 * close reasons (RFC 6455 §5.5.1) must be UTF-8; a hook's reason or a client's type need not
 * be. */
static void utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 && *p >= 0xc2 ? 2
                 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 && *p <= 0xf4 ? 4 : 0;
        size_t k = 1;
        while (n && k < n && (p[k] & 0xc0) == 0x80) k++;
        bool ok = n && k == n;
        if (ok && n == 3) { /* no overlong forms, no surrogates */
            unsigned cp = ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu);
            ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
        } else if (ok && n == 4) {
            unsigned cp = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3fu) << 12);
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

static void conn_close(es_ws_conn_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Queues one JSON message (takes the reference). */
static void send_json(es_ws_conn_t *c, json_t *o)
{
    if (!o) return;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text || c->closing) {
        free(text);
        return;
    }
    size_t n = strlen(text);
    if (c->q_n >= QUEUE_MAX || c->q_bytes + n > QUEUE_MAX_BYTES) {
        free(text);
        conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "the client does not read its messages");
        return;
    }
    out_msg_t *m = malloc(sizeof *m + LWS_PRE + n);
    if (!m) {
        free(text);
        return;
    }
    m->next = NULL;
    m->len = n;
    memcpy(m->buf + LWS_PRE, text, n);
    free(text);
    if (c->tail) c->tail->next = m;
    else c->head = m;
    c->tail = m;
    c->q_n++;
    c->q_bytes += n;
    lws_callback_on_writable(c->wsi);
}

static void send_error(es_ws_conn_t *c, int status, const char *reason)
{
    char text[ES_ADMIT_REASON_MAX + 200];
    snprintf(text, sizeof text, "%s", reason);
    utf8_clean(text);
    send_json(c, json_pack("{s:s, s:i, s:s}", "type", "error", "status", status, "reason", text));
}

/* Closes the socket once what is queued is written, with code and reason (RFC 6455 §7.4). */
static void conn_close(es_ws_conn_t *c, int code, const char *fmt, ...)
{
    if (c->closing) return;
    c->closing = true;
    c->close_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->close_reason, sizeof c->close_reason, fmt, ap); /* 123 bytes at most */
    va_end(ap);
    utf8_clean(c->close_reason);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 5); /* a client that stops reading */
    lws_callback_on_writable(c->wsi);
}

/* An error the client is told, then the socket closes: status as WHIP/WHEP would answer. */
static void fail(es_ws_conn_t *c, int status, int code, const char *reason)
{
    send_error(c, status, reason);
    conn_close(c, code, "%.110s", reason);
}

int es_ws_writeable(es_ws_conn_t *c)
{
    if (c->ping_due && !c->closing) {
        unsigned char buf[LWS_PRE + 4];
        c->ping_due = false;
        if (lws_write(c->wsi, buf + LWS_PRE, 0, LWS_WRITE_PING) < 0) return -1;
        if (c->head) lws_callback_on_writable(c->wsi);
        return 0;
    }
    out_msg_t *m = c->head;
    if (m) {
        c->head = m->next;
        if (!c->head) c->tail = NULL;
        c->q_n--;
        c->q_bytes -= m->len;
        int n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        free(m);
        if (n < 0) return -1;
        if (c->head || c->closing) lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->closing && !c->close_sent) {
        /* Our close frame (RFC 6455 §5.5.1: opcode 8, code, reason; a server's frames are not
         * masked), written as raw bytes: lws 4.1 drops a connection whose WRITEABLE callback
         * returns non-zero without sending the lws_close_reason frame, and has no public write
         * of a close. The client answers with its own close frame, which lws completes; one
         * that does not is dropped by the timeout conn_close set. */
        unsigned char buf[LWS_PRE + 4 + sizeof c->close_reason];
        size_t n = strlen(c->close_reason); /* < 120: a one-byte payload length */
        unsigned char *f = buf + LWS_PRE;
        f[0] = 0x88;
        f[1] = (unsigned char)(2 + n);
        f[2] = (unsigned char)(c->close_code >> 8);
        f[3] = (unsigned char)c->close_code;
        memcpy(f + 4, c->close_reason, n);
        c->close_sent = true;
        if (lws_write(c->wsi, f, 4 + n, LWS_WRITE_RAW) < 0) return -1;
    }
    return 0;
}

/* --- the session --- */

static void set_state(es_ws_conn_t *c, ws_state_t st)
{
    c->state = st;
    c->state_us = es_clock_now_us();
}

/* The session ended on the server's side (kicked, consent lost, taken over, shutdown). */
static void session_closed(void *user, const char *reason)
{
    es_ws_conn_t *c = user;
    c->session[0] = '\0';
    set_state(c, WS_ENDED);
    send_json(c, json_pack("{s:s, s:s, s:s}", "type", "event", "event", "closed", "reason",
                           reason ? reason : ""));
    conn_close(c, LWS_CLOSE_STATUS_NORMAL, "session ended: %.90s", reason ? reason : "");
}

static es_rtc_request_t request_of(es_ws_conn_t *c, es_rtc_role_t role)
{
    return (es_rtc_request_t){.role = role, .protocol = ES_PROTO_WEBSOCKET, .app = c->app,
                              .stream = c->stream, .token = c->token, .eip = c->eip,
                              .remote = c->remote, .id = c->session_to_be, .counted = true,
                              .on_closed = session_closed, .user = c};
}

/* A session began (res->err 0) or was refused: the client learns which. */
static void session_result(es_ws_conn_t *c, const es_rtc_result_t *r, const char *type)
{
    if (r->err) {
        fail(c, es_http_status_of(r->err), LWS_CLOSE_STATUS_POLICY_VIOLATION, r->error);
        return;
    }
    snprintf(c->session, sizeof c->session, "%s", r->id);
    c->had_session = true;
    set_state(c, WS_LIVE);
    if (!c->publish) c->fed_check_us = c->state_us + RETURN_CHECK_US;
    if (!type) return; /* an answer to our offer: our candidates went with the offer */
    send_json(c, json_pack("{s:s, s:s, s:s}", "type", type, "sdp", r->sdp, "session", r->id));
    send_json(c, json_pack("{s:s, s:n}", "type", "candidate", "candidate"));
}

/* The client's offer, publish or play. */
static void take_offer(es_ws_conn_t *c, const es_ws_message_t *m)
{
    if (c->pending) { /* play: the client offered first; ours is dropped */
        es_rtc_pending_free(c->pending);
        c->pending = NULL;
    }
    es_rtc_request_t req = request_of(c, c->publish ? ES_RTC_PUBLISH : ES_RTC_PLAY);
    es_rtc_result_t r;
    es_rtc_take_offer(c->hub->srv->rtc, &req, m->sdp, m->sdp_len, &r);
    session_result(c, &r, "answer");
    free(r.sdp);
}

/* Play: our offer, once admitted. */
static void make_offer(es_ws_conn_t *c)
{
    es_rtc_request_t req = request_of(c, ES_RTC_PLAY);
    es_rtc_result_t r;
    c->pending = es_rtc_make_offer(c->hub->srv->rtc, &req, &r);
    if (!c->pending) {
        fail(c, es_http_status_of(r.err), LWS_CLOSE_STATUS_POLICY_VIOLATION, r.error);
        return;
    }
    set_state(c, WS_OFFERED);
    send_json(c, json_pack("{s:s, s:s, s:s}", "type", "offer", "sdp", r.sdp, "session", r.id));
    send_json(c, json_pack("{s:s, s:n}", "type", "candidate", "candidate"));
    free(r.sdp);
}

/* Admitted (now, or by the hook): go on with what the role does next. */
static void admitted(es_ws_conn_t *c)
{
    c->admitted = true;
    if (c->early.type == ES_WS_OFFER) {
        take_offer(c, &c->early);
        es_ws_message_clear(&c->early);
        return;
    }
    if (c->publish) set_state(c, WS_WAIT_OFFER);
    else make_offer(c);
}

static void hook_done(void *user, int err, const char *reason)
{
    es_ws_conn_t *c = user;
    c->hook = NULL;
    if (err) {
        es_admit_log_refusal(ES_PROTO_WEBSOCKET, c->publish ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY,
                             c->app, c->stream, c->remote, c->session_to_be, err, reason);
        fail(c, es_http_status_of(err), LWS_CLOSE_STATUS_POLICY_VIOLATION, reason);
        return;
    }
    if (c->closing) { /* the socket is going (bad input meanwhile): no session for it */
        c->admitted = true; /* its end is told to the hooks all the same */
        return;
    }
    admitted(c);
}

/* --- receiving --- */

static void handle(es_ws_conn_t *c, es_ws_message_t *m)
{
    es_log_ctx_t lc = conn_log(c);
    switch (m->type) {
    case ES_WS_PING:
        send_json(c, json_pack("{s:s}", "type", "pong"));
        return;
    case ES_WS_PONG:
        return;
    case ES_WS_CANDIDATE:
        c->candidates++;
        ES_DEBUG("ws", &lc, "candidate %s ignored: ICE-lite answers checks from any address",
                 m->end_of_candidates ? "(end of candidates)" : m->candidate);
        return;
    case ES_WS_OFFER:
        if (c->state == WS_ADMITTING && c->early.type == 0) {
            c->early = *m; /* handled once admitted */
            memset(m, 0, sizeof *m);
        } else if (c->state == WS_WAIT_OFFER || c->state == WS_OFFERED) {
            take_offer(c, m);
        } else {
            fail(c, 400, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                 "one offer per socket: renegotiation is not supported; open a new socket");
        }
        return;
    case ES_WS_ANSWER:
        if (c->state != WS_OFFERED || !c->pending) {
            fail(c, 400, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                 c->publish ? "an answer on a publish socket: send an offer"
                            : "an answer without an offer of ours to answer");
            return;
        }
        es_rtc_pending_t *p = c->pending;
        c->pending = NULL;
        es_rtc_result_t r;
        es_rtc_take_answer(c->hub->srv->rtc, p, m->sdp, m->sdp_len, &r);
        session_result(c, &r, NULL);
        free(r.sdp);
        return;
    }
}

static int message_done(es_ws_conn_t *c)
{
    es_log_ctx_t lc = conn_log(c);
    uint64_t now = es_clock_now_us();
    if (!es_ws_bucket_take(&c->bucket, now)) {
        ES_INFO("ws", &lc, "closed: more than %d messages at once (%d a second)", ES_WS_BURST,
                ES_WS_PER_S);
        fail(c, 429, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many messages");
        return 0;
    }
    es_ws_message_t m;
    char err[200];
    int rc = es_ws_message_parse(c->rx, c->rx_len, &m, err, sizeof err);
    c->rx_len = 0;
    if (rc != 0) {
        ES_INFO("ws", &lc, "closed: bad message: %s", err);
        fail(c, 400, LWS_CLOSE_STATUS_POLICY_VIOLATION, err);
        return 0;
    }
    handle(c, &m);
    es_ws_message_clear(&m);
    return 0;
}

int es_ws_receive(es_ws_conn_t *c, const void *in, size_t len)
{
    c->last_rx_us = es_clock_now_us();
    if (c->closing) return 0; /* what comes after a close is dropped */
    es_log_ctx_t lc = conn_log(c);
    if (lws_frame_is_binary(c->wsi)) {
        ES_INFO("ws", &lc, "closed: a binary frame (messages are JSON text)");
        fail(c, 400, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "messages are JSON text frames");
        return 0;
    }
    if (c->rx_len + len > ES_WS_MAX_MESSAGE) {
        ES_INFO("ws", &lc, "closed: a message over %d bytes", ES_WS_MAX_MESSAGE);
        c->rx_len = 0;
        fail(c, 413, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message over 65536 bytes");
        return 0;
    }
    if (c->rx_len + len > c->rx_cap) { /* grown as messages need, never past 64 KiB */
        size_t cap = c->rx_cap ? c->rx_cap : 1024;
        while (cap < c->rx_len + len) cap *= 2;
        if (cap > ES_WS_MAX_MESSAGE) cap = ES_WS_MAX_MESSAGE;
        char *rx = realloc(c->rx, cap);
        if (!rx) return -1;
        c->rx = rx;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (!lws_is_final_fragment(c->wsi)) return 0;
    int rc = message_done(c);
    if (c->rx_cap > 4096) { /* an SDP-sized buffer is not kept for the socket's lifetime */
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
    return rc;
}

void es_ws_pong(es_ws_conn_t *c) { c->last_rx_us = es_clock_now_us(); }

bool es_ws_close_sent(const es_ws_conn_t *c) { return c && c->close_sent; }

/* --- open and close --- */

/* The value of query argument `name` ("token=": lws matches the prefix), malloc'ed, or NULL. */
static char *url_arg(struct lws *wsi, const char *name)
{
    char buf[1024];
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, sizeof buf);
    return v ? strdup(v) : NULL;
}

/* "/{app}/{stream}/webrtc" or "/{app}/{stream}/webrtc/publish". */
static bool parse_path(es_ws_conn_t *c, const char *path)
{
    const char *seg[5];
    size_t len[5], n = 0;
    const char *p = path;
    while (*p == '/' && n < 5) {
        p++;
        seg[n] = p;
        len[n] = strcspn(p, "/");
        p += len[n];
        n++;
    }
    if (*p || n < 3 || n > 4 || len[2] != 6 || strncmp(seg[2], "webrtc", 6)) return false;
    if (n == 4 && (len[3] != 7 || strncmp(seg[3], "publish", 7))) return false;
    if (!len[0] || !len[1] || len[0] > ES_APP_NAME_MAX || len[1] > ES_STREAM_NAME_MAX) return false;
    snprintf(c->app, sizeof c->app, "%.*s", (int)len[0], seg[0]);
    snprintf(c->stream, sizeof c->stream, "%.*s", (int)len[1], seg[1]);
    snprintf(c->key, sizeof c->key, "%s/%s", c->app, c->stream);
    c->publish = n == 4;
    return true;
}

es_ws_conn_t *es_ws_open(es_ws_hub_t *hub, struct lws *wsi, const char *conn_id,
                         const char *remote)
{
    es_server_t *srv = hub->srv;
    es_ws_conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->hub = hub;
    c->wsi = wsi;
    snprintf(c->id, sizeof c->id, "%s", conn_id);
    snprintf(c->remote, sizeof c->remote, "%s", remote);
    c->publishing = -1;
    c->viewers = -1;
    uint64_t now = es_clock_now_us();
    c->last_rx_us = now;
    c->opened_us = now;
    set_state(c, WS_ADMITTING);
    c->next = hub->conns;
    if (hub->conns) hub->conns->prev = c;
    hub->conns = c;

    char path[512] = "";
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) < 0) path[0] = '\0';
    es_log_ctx_t lc = conn_log(c);
    if (!parse_path(c, path)) {
        char shown[160];
        ES_INFO("ws", &lc, "WebSocket refused: no signaling at %s",
                es_http_path_for_log(path, shown, sizeof shown));
        fail(c, 404, LWS_CLOSE_STATUS_POLICY_VIOLATION, "WebSocket signaling is at "
             "/{app}/{stream}/webrtc (play) and /{app}/{stream}/webrtc/publish");
        return c;
    }
    lc = conn_log(c);
    c->token = url_arg(wsi, "token=");
    if (!c->token) {
        char auth[1024] = "";
        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
            lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
            const char *t = es_bearer_token(auth);
            if (t) c->token = strdup(t);
        }
    }
    c->eip = url_arg(wsi, "eip=");
    char *room = url_arg(wsi, "room=");
    if (room) {
        if (!es_registry_valid_name(room, ROOM_MAX)) {
            free(room);
            ES_INFO("ws", &lc, "WebSocket refused: bad room name");
            fail(c, 400, LWS_CLOSE_STATUS_POLICY_VIOLATION, "room: 1-64 letters, digits, '_', "
                 "'-', '.'");
            return c;
        }
        snprintf(c->room, sizeof c->room, "%s", room);
        free(room);
    }
    {
        char q[2048] = "";
        int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
        size_t used = 0;
        for (int i = 0; total > 0 && i < ES_HTTP_MAX_ARGS && used + 2 < sizeof q; i++) {
            char frag[1024];
            int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
            if (n < 0) break;
            used += (size_t)snprintf(q + used, sizeof q - used, "%s%s", used ? "&" : "", frag);
            if (used >= sizeof q) used = sizeof q - 1;
        }
        c->query = strdup(q);
    }
    /* The socket is a session of its client from now on. */
    const es_config_t *cfg = srv->cfg;
    char ip[64], why[160];
    es_client_ip(remote, ip, sizeof ip);
    int rc = es_admit_connection(cfg, srv->sessions, es_clients_sessions(srv->clients, ip), why,
                                 sizeof why);
    if (rc != 0) {
        es_admit_log_refusal(ES_PROTO_WEBSOCKET, c->publish ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY,
                             c->app, c->stream, remote, c->id, rc, why);
        fail(c, es_http_status_of(rc), WS_CLOSE_TRY_AGAIN_LATER, why);
        return c;
    }
    es_server_session_open(srv, remote);
    c->counted = true;
    if (!es_clients_offer(srv->clients, ip, cfg->limits.offers_per_ip, now)) {
        ES_INFO("ws", &lc, "WebSocket refused: more than limits.offers_per_ip (%u a second) "
                "from %s", cfg->limits.offers_per_ip, ip);
        char reason[120];
        snprintf(reason, sizeof reason, "too many sessions started from this address: "
                 "limits.offers_per_ip is %u a second", cfg->limits.offers_per_ip);
        fail(c, 429, WS_CLOSE_TRY_AGAIN_LATER, reason);
        return c;
    }
    if (!srv->rtc) {
        fail(c, 503, WS_CLOSE_TRY_AGAIN_LATER, "WebRTC is not running");
        return c;
    }
    ES_INFO("ws", &lc, "WebSocket %s of %s opened%s%s", c->publish ? "publisher" : "player",
            c->key, c->room[0] ? " in room " : "", c->room);
    es_rtc_new_id(c->session_to_be);
    es_admit_request_t areq = {.app = c->app, .stream = c->stream, .token = c->token,
                               .role = c->publish ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY,
                               .protocol = ES_PROTO_WEBSOCKET, .counted = true, .now_us = now};
    es_admit_decision_t d;
    rc = es_admit_begin(srv, &areq, remote, c->session_to_be, c->query, &d, hook_done, c, &c->hook);
    if (rc != 0) {
        fail(c, es_http_status_of(rc), LWS_CLOSE_STATUS_POLICY_VIOLATION, d.reason);
        return c;
    }
    if (!c->hook) admitted(c);
    return c;
}

void es_ws_closed(es_ws_conn_t *c)
{
    if (!c) return;
    es_ws_hub_t *hub = c->hub;
    es_server_t *srv = hub->srv;
    if (c->hook) es_hook_cancel(c->hook);
    es_rtc_pending_free(c->pending);
    es_ws_message_clear(&c->early);
    es_log_ctx_t lc = conn_log(c);
    if (c->session[0] && srv->rtc) {
        es_rtc_disown(srv->rtc, c->session);
        es_rtc_delete(srv->rtc, c->session, "WebSocket closed");
    } else if (c->admitted && !c->had_session) {
        /* admitted (a hook said yes) but no session came of it: its end is told all the same */
        es_admit_end(srv, ES_PROTO_WEBSOCKET, c->publish ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY,
                     c->app, c->stream, c->remote, c->session_to_be);
    }
    if (c->counted) es_server_session_close(srv, c->remote);
    static const char *const states[] = {"being admitted", "waiting for the offer",
                                         "waiting for the answer", "live", "ended"};
    if (c->had_session)
        ES_DEBUG("ws", &lc, "WebSocket closed%s%s", c->closing ? ": " : "", c->close_reason);
    else /* what happened to a client that never got a session (its refusal was logged) */
        ES_INFO("ws", &lc, "WebSocket closed after %.1f s without a session, %s%s%s",
                (double)(es_clock_now_us() - c->opened_us) / 1e6, states[c->state],
                c->closing ? ": " : " (by the client)", c->close_reason);
    if (c->prev) c->prev->next = c->next;
    else hub->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    for (out_msg_t *m = c->head, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    free(c->rx);
    free(c->token);
    free(c->eip);
    free(c->query);
    free(c);
}

/* --- the timer: events, pings, timeouts --- */

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (h ^ 0xff) * 1099511628211u;
}

/* Published streams ordered by app, then name: rooms are ranges of it. */
static int by_key(const void *x, const void *y)
{
    const es_stream_t *a = *(es_stream_t *const *)x, *b = *(es_stream_t *const *)y;
    int r = strcmp(a->app, b->app);
    return r ? r : strcmp(a->name, b->name);
}

/* The published streams of the registry, sorted (by_key); *n their count. NULL when none (or
 * out of memory: no room event this tick). Built once per tick for every room socket. */
static es_stream_t **published_sorted(es_registry_t *reg, size_t *n)
{
    *n = 0;
    size_t total = es_registry_count(reg);
    es_stream_t **list = total ? malloc(total * sizeof *list) : NULL;
    if (!list) return NULL;
    size_t got = es_registry_list(reg, list, total), k = 0;
    for (size_t i = 0; i < got; i++)
        if (es_live_publishing(list[i])) list[k++] = list[i];
    qsort(list, k, sizeof *list, by_key);
    *n = k;
    return list;
}

/* The room event of c when its member list (the app's published streams named ROOM.*) changed
 * since the last one: a binary search to the range, a hash of it, JSON only when it moved. */
static void room_event(es_ws_conn_t *c, es_stream_t **list, size_t n)
{
    size_t rl = strlen(c->room);
    size_t lo = 0, hi = n;
    while (lo < hi) { /* the first stream not before (app, "ROOM.") */
        size_t mid = (lo + hi) / 2;
        int r = strcmp(list[mid]->app, c->app);
        if (!r) {
            r = strncmp(list[mid]->name, c->room, rl);
            if (!r) r = list[mid]->name[rl] < '.' ? -1 : 0;
        }
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    size_t end = lo;
    uint64_t h = 1469598103934665603u;
    while (end < n && end - lo < ROOM_LIST_MAX && !strcmp(list[end]->app, c->app) &&
           !strncmp(list[end]->name, c->room, rl) && list[end]->name[rl] == '.')
        h = fnv1a(h, list[end++]->name);
    if (h == 0) h = 1;
    if (h == c->room_hash) return;
    c->room_hash = h;
    json_t *names = json_array();
    for (size_t i = lo; i < end && names; i++) json_array_append_new(names, json_string(list[i]->name));
    send_json(c, json_pack("{s:s, s:s, s:s, s:o}", "type", "event", "event", "room", "room",
                           c->room, "streams", names ? names : json_array()));
}

static void tick(uv_timer_t *t)
{
    es_ws_hub_t *hub = t->data;
    es_server_t *srv = hub->srv;
    uint64_t now = es_clock_now_us();
    bool rooms = false;
    uint32_t wait_ms = srv->cfg->webrtc.dtls_timeout_ms;
    for (es_ws_conn_t *c = hub->conns; c; c = c->next) {
        if (c->closing) continue;
        es_log_ctx_t lc = conn_log(c);
        if (now - c->last_rx_us > IDLE_CLOSE_US) {
            ES_INFO("ws", &lc, "closed: nothing from the client for %u s", IDLE_CLOSE_US / 1000000);
            conn_close(c, LWS_CLOSE_STATUS_NORMAL, "idle");
            continue;
        }
        if (now - c->last_rx_us > PING_AFTER_US && now - c->ping_sent_us > PING_AFTER_US) {
            c->ping_sent_us = now;
            c->ping_due = true;
            lws_callback_on_writable(c->wsi);
        }
        if ((c->state == WS_WAIT_OFFER || c->state == WS_OFFERED) &&
            now - c->state_us > (uint64_t)wait_ms * 1000) {
            char why[120];
            snprintf(why, sizeof why, "no %s within %u ms", c->state == WS_WAIT_OFFER ? "offer"
                     : "answer", wait_ms);
            ES_INFO("ws", &lc, "closed: %s", why);
            fail(c, 408, LWS_CLOSE_STATUS_POLICY_VIOLATION, why);
            continue;
        }
        if (!c->admitted) continue;
        if (c->room[0]) rooms = true;
        if (c->state != WS_LIVE) continue;
        es_stream_t *st = es_registry_find(srv->registry, c->app, c->stream);
        long v = (long)es_live_viewers(st);
        if (v != c->viewers) {
            c->viewers = v;
            send_json(c, json_pack("{s:s, s:s, s:i}", "type", "event", "event", "viewers",
                                   "count", (int)v));
        }
        if (c->publish) continue;
        int p = es_live_publishing(st) ? 1 : 0;
        if (c->publishing >= 0 && p != c->publishing) {
            send_json(c, json_pack("{s:s, s:s}", "type", "event", "event",
                                   p ? "publisher_returned" : "publisher_left"));
            c->fed_check_us = p ? now + RETURN_CHECK_US : 0;
        }
        c->publishing = p;
        /* A player negotiated with other codecs than its publisher's now (one that returned
         * with others, or changed between our offer and the answer) is not fed: its session
         * ends, so that the client connects again and gets an offer with them. A source's
         * tracks are all known within a second of its start. */
        if (c->fed_check_us && now >= c->fed_check_us) {
            c->fed_check_us = 0;
            int unbound = es_rtc_session_unbound(srv->rtc, c->session);
            if (unbound > 0) {
                ES_INFO("ws", &lc, "the publisher sends codecs this player did not negotiate "
                        "(%d tracks unfed): its session ends, for a new offer", unbound);
                es_rtc_delete(srv->rtc, c->session, "the publisher's codecs changed: connect "
                              "again");
            }
        }
    }
    /* Rooms after the rest: the pass above may have ended sessions (and so streams). */
    if (!rooms) return;
    size_t n = 0;
    es_stream_t **list = published_sorted(srv->registry, &n);
    for (es_ws_conn_t *c = hub->conns; c; c = c->next)
        if (c->room[0] && c->admitted && !c->closing) room_event(c, list, n);
    free(list);
}

es_ws_hub_t *es_ws_hub_new(es_server_t *srv)
{
    es_ws_hub_t *hub = calloc(1, sizeof *hub);
    if (!hub) return NULL;
    hub->srv = srv;
    uv_timer_init(srv->loop, &hub->timer);
    hub->timer.data = hub;
    uv_timer_start(&hub->timer, tick, TICK_MS, TICK_MS);
    hub->timer_on = true;
    return hub;
}

void es_ws_hub_stop(es_ws_hub_t *hub)
{
    if (!hub || !hub->timer_on) return;
    hub->timer_on = false;
    uv_timer_stop(&hub->timer);
    uv_close((uv_handle_t *)&hub->timer, NULL);
}

void es_ws_hub_free(es_ws_hub_t *hub)
{
    if (!hub) return;
    es_ws_hub_stop(hub);
    free(hub);
}
