/* ICE-TCP connections (include/estuary/tcp_listener.h): accept, sniff a shared port's first
 * bytes with MSG_PEEK (nothing is consumed, so the HTTP server reads the connection from its
 * first byte), RFC 4571 deframing, and a bounded write queue per connection. One uv_poll_t per
 * socket and one timer per connection (the authentication or sniffing deadline). */
#define _GNU_SOURCE /* accept4 */
#include "estuary/tcp_listener.h"

#include "estuary/clock.h"
#include "estuary/error.h"
#include "estuary/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define ACCEPTS_PER_WAKEUP 64
#define READS_PER_WAKEUP 4
#define READ_CHUNK 16384
#define SNIFF_RETRY_MS 50 /* a shared-port peer that sent too few bytes to tell: look again
                             after this, doubling each time */
#define ACCEPT_PAUSE_MS 100 /* out of descriptors: accept again after this */

enum stage { STAGE_SNIFF, STAGE_FRAMED, STAGE_CLOSING };

struct es_tcp_conn {
    es_tcp_listener_t *ls;
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;
    int open_handles;
    enum stage stage;
    bool authenticated, handoff, closed_cb_due;
    es_tcp_sniff_t kind;
    int poll_events;
    uint64_t accepted_us, deadline_us; /* µs: the sniffing or authentication deadline */
    unsigned sniff_retries;
    es_addr_pair_t addr;
    es_rfc4571_t rx;
    uint8_t *tx;
    size_t tx_off, tx_len, tx_cap;
    es_tcp_conn_callbacks_t cb;
    void *user;
    char reason[96];
    es_tcp_conn_t *next, *prev;
};

struct es_tcp_listener {
    uv_loop_t *loop;
    uv_poll_t poll;
    uv_timer_t pause;              /* accepting again after running out of descriptors */
    int fd;
    uint16_t port;
    bool share_http, closing;
    int open_handles;
    es_tcp_listener_callbacks_t cb;
    void *user;
    es_tcp_conn_t *conns;
    es_tcp_listener_stats_t stats;
    uint64_t last_refuse_log_us;
};

static void listener_maybe_free(es_tcp_listener_t *l)
{
    if (l->closing && l->open_handles == 0 && !l->conns) free(l);
}

/* --- connection teardown --- */

static void conn_handle_closed(uv_handle_t *h)
{
    es_tcp_conn_t *c = h->data;
    if (--c->open_handles > 0) return;
    es_tcp_listener_t *l = c->ls;
    if (c->prev) c->prev->next = c->next;
    else l->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (!c->authenticated && l->stats.unauthenticated) l->stats.unauthenticated--;
    if (c->handoff && l->cb.on_handoff && !l->closing) {
        l->stats.handed_off++;
        l->cb.on_handoff(l->user, c->fd, c->kind); /* the fd is the HTTP server's now */
    } else {
        close(c->fd);
        if (c->closed_cb_due && c->cb.on_closed) c->cb.on_closed(c->user, c, c->reason);
    }
    free(c->tx);
    free(c);
    listener_maybe_free(l);
}

static void conn_close(es_tcp_conn_t *c, const char *reason, bool handoff)
{
    if (c->stage == STAGE_CLOSING) return;
    c->stage = STAGE_CLOSING;
    c->handoff = handoff;
    c->closed_cb_due = !handoff;
    snprintf(c->reason, sizeof c->reason, "%s", reason);
    uv_close((uv_handle_t *)&c->poll, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

void es_tcp_conn_close(es_tcp_conn_t *c, const char *reason)
{
    if (c) conn_close(c, reason, false);
}

/* --- writing --- */

static void conn_poll(es_tcp_conn_t *c, int events);
static void conn_arm(es_tcp_conn_t *c);

static void conn_flush(es_tcp_conn_t *c)
{
    while (c->tx_len) {
        ssize_t n = send(c->fd, c->tx + c->tx_off, c->tx_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            conn_close(c, "send failed", false);
            return;
        }
        c->tx_off += (size_t)n;
        c->tx_len -= (size_t)n;
    }
    if (!c->tx_len) c->tx_off = 0;
    conn_poll(c, UV_READABLE | (c->tx_len ? UV_WRITABLE : 0));
}

/* Appends n bytes to the queue (compacting or growing it); false when out of memory. */
static bool queue_append(es_tcp_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->tx_off && c->tx_off + c->tx_len + n > c->tx_cap) {
        memmove(c->tx, c->tx + c->tx_off, c->tx_len);
        c->tx_off = 0;
    }
    if (c->tx_len + n > c->tx_cap) {
        size_t cap = c->tx_cap ? c->tx_cap : 16384;
        while (cap < c->tx_len + n) cap *= 2;
        uint8_t *t = realloc(c->tx, cap);
        if (!t) return false;
        c->tx = t;
        c->tx_cap = cap;
    }
    memcpy(c->tx + c->tx_off + c->tx_len, p, n);
    c->tx_len += n;
    return true;
}

int es_tcp_conn_send(es_tcp_conn_t *c, const uint8_t *buf, size_t len, bool media)
{
    if (c->stage != STAGE_FRAMED) return ES_EIO;
    if (!len || len > 65535) return ES_E2BIG;
    if (media && c->tx_len > ES_TCP_QUEUE_MEDIA) {
        c->ls->stats.media_dropped++;
        return ES_EAGAIN;
    }
    if (c->tx_len + len + 2 > ES_TCP_QUEUE_MAX) {
        conn_close(c, "the peer stopped reading (send queue full)", false);
        return ES_EIO;
    }
    uint8_t hdr[2];
    es_rfc4571_header(hdr, len);
    c->ls->stats.frames_out++;
    size_t sent = 0;
    if (!c->tx_len) { /* nothing waiting: straight to the socket, the rest to the queue */
        struct iovec iov[2] = {{hdr, 2}, {(void *)buf, len}};
        ssize_t n;
        do n = writev(c->fd, iov, 2);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_close(c, "send failed", false);
            return ES_EIO;
        }
        sent = n > 0 ? (size_t)n : 0;
        if (sent == len + 2) return 0;
    }
    bool ok = sent < 2 ? queue_append(c, hdr + sent, 2 - sent) && queue_append(c, buf, len)
                       : queue_append(c, buf + (sent - 2), len - (sent - 2));
    if (!ok) {
        conn_close(c, "out of memory", false);
        return ES_EIO;
    }
    conn_poll(c, UV_READABLE | UV_WRITABLE);
    return 0;
}

bool es_tcp_conn_congested(const es_tcp_conn_t *c)
{
    return c->stage != STAGE_FRAMED || c->tx_len > ES_TCP_QUEUE_MEDIA;
}

size_t es_tcp_conn_queued(const es_tcp_conn_t *c) { return c->tx_len; }

const es_addr_pair_t *es_tcp_conn_addr(const es_tcp_conn_t *c) { return &c->addr; }

void es_tcp_conn_set_callbacks(es_tcp_conn_t *c, const es_tcp_conn_callbacks_t *cb, void *user)
{
    c->cb = *cb;
    c->user = user;
}

void es_tcp_conn_authenticated(es_tcp_conn_t *c)
{
    if (c->authenticated || c->stage == STAGE_CLOSING) return;
    c->authenticated = true;
    if (c->ls->stats.unauthenticated) c->ls->stats.unauthenticated--;
    uv_timer_stop(&c->timer);
}

/* --- reading --- */

static void conn_read(es_tcp_conn_t *c)
{
    uint8_t buf[READ_CHUNK];
    for (int round = 0; round < READS_PER_WAKEUP && c->stage == STAGE_FRAMED; round++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            conn_close(c, n == 0 ? "the peer closed the connection" : "receive failed", false);
            return;
        }
        const uint8_t *p = buf;
        size_t left = (size_t)n;
        uint64_t now = es_clock_now_us();
        while (left && c->stage == STAGE_FRAMED) {
            const uint8_t *frame;
            size_t flen;
            int rc = es_rfc4571_next(&c->rx, &p, &left, &frame, &flen);
            if (rc < 0) {
                conn_close(c, "a frame over 1500 bytes (RFC 4571 framing lost?)", false);
                return;
            }
            if (rc == 0) break;
            c->ls->stats.frames_in++;
            if (c->cb.on_frame) c->cb.on_frame(c->user, c, now, (uint8_t *)frame, flen);
        }
        if ((size_t)n < sizeof buf) return;
    }
}

static void conn_became_framed(es_tcp_conn_t *c);
static void on_conn_timer(uv_timer_t *t);

/* A shared port: look at the first bytes without taking them. */
static void conn_sniff(es_tcp_conn_t *c)
{
    uint8_t b[ES_TCP_SNIFF_BYTES];
    ssize_t n;
    do n = recv(c->fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
        conn_close(c, "closed before saying anything", false);
        return;
    }
    es_tcp_sniff_t v = es_tcp_sniff(b, (size_t)n);
    switch (v) {
    case ES_SNIFF_HTTP:
    case ES_SNIFF_TLS:
        c->kind = v;
        conn_close(c, "handed to the HTTP server", true);
        return;
    case ES_SNIFF_STUN:
        c->stage = STAGE_FRAMED;
        c->deadline_us = c->accepted_us + (uint64_t)ES_TCP_AUTH_TIMEOUT_MS * 1000;
        conn_became_framed(c);
        if (c->stage != STAGE_FRAMED) return;
        conn_arm(c);
        conn_read(c);
        return;
    case ES_SNIFF_MORE: { /* too few bytes to tell; they stay readable: look again later, each
                             time twice as late (a trickling client costs a few wake-ups) */
        conn_poll(c, 0);
        uint64_t now = es_clock_now_us();
        uint64_t wait_ms = c->deadline_us > now ? (c->deadline_us - now) / 1000 : 0;
        uint64_t retry_ms = (uint64_t)SNIFF_RETRY_MS << (c->sniff_retries < 8 ? c->sniff_retries : 8);
        c->sniff_retries++;
        uv_timer_start(&c->timer, on_conn_timer, wait_ms < retry_ms ? wait_ms : retry_ms, 0);
        return;
    }
    default:
        conn_close(c, "neither HTTP, TLS nor framed STUN", false);
        return;
    }
}

static void on_conn_poll(uv_poll_t *h, int status, int events)
{
    es_tcp_conn_t *c = h->data;
    if (c->stage == STAGE_CLOSING) return;
    if (status < 0) {
        conn_close(c, "socket error", false);
        return;
    }
    if (events & UV_WRITABLE) conn_flush(c);
    if (c->stage == STAGE_CLOSING || !(events & UV_READABLE)) return;
    if (c->stage == STAGE_SNIFF) conn_sniff(c);
    else conn_read(c);
}

static void conn_poll(es_tcp_conn_t *c, int events)
{
    if (c->stage == STAGE_CLOSING || c->poll_events == events) return;
    c->poll_events = events;
    if (events) uv_poll_start(&c->poll, events, on_conn_poll);
    else uv_poll_stop(&c->poll);
}

/* The conn's timer: its deadline (sniffing or authentication), or a sniffing retry. */
static void on_conn_timer(uv_timer_t *t)
{
    es_tcp_conn_t *c = t->data;
    if (c->stage == STAGE_CLOSING || c->authenticated) return;
    if (es_clock_now_us() + 1000 >= c->deadline_us) {
        c->ls->stats.closed_unauthenticated++;
        conn_close(c, c->stage == STAGE_SNIFF ? "said nothing a server understands within 10 s"
                                              : "no authenticated STUN request within 5 s", false);
        return;
    }
    if (c->stage == STAGE_SNIFF && c->poll_events == 0) { /* a sniffing retry */
        conn_poll(c, UV_READABLE);
        conn_arm(c);
        conn_sniff(c);
        return;
    }
    conn_arm(c); /* libuv's timer runs on the loop's cached clock and may fire a little early */
}

static void conn_arm(es_tcp_conn_t *c)
{
    uint64_t now = es_clock_now_us();
    uv_timer_start(&c->timer, on_conn_timer,
                   c->deadline_us > now ? (c->deadline_us - now + 999) / 1000 : 0, 0);
}

/* --- accepting --- */

static void refuse_log(es_tcp_listener_t *l, const struct sockaddr_storage *from, const char *why)
{
    l->stats.refused++;
    uint64_t now = es_clock_now_us();
    if (now - l->last_refuse_log_us < 10000000) return;
    l->last_refuse_log_us = now;
    char a[64];
    es_addr_format((const struct sockaddr *)from, a, sizeof a);
    es_log_ctx_t lc = {.remote = a};
    ES_WARN("tcp", &lc, "ICE-TCP connection refused: %s (%llu refused so far)", why,
            (unsigned long long)l->stats.refused);
}

static bool same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6) { /* a /64 is one client's (an IPv4-mapped one: its /128) */
        const uint8_t *x = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
        const uint8_t *y = ((const struct sockaddr_in6 *)b)->sin6_addr.s6_addr;
        bool mapped = IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)x);
        return !memcmp(x, y, mapped ? 16 : 8);
    }
    return false;
}

static void accept_one(es_tcp_listener_t *l, int fd, const struct sockaddr_storage *from,
                       socklen_t from_len)
{
    /* Unauthenticated connections cost the server: bounded in all and per address. */
    if (l->stats.unauthenticated >= ES_TCP_MAX_UNAUTHENTICATED) {
        refuse_log(l, from, "too many unauthenticated connections");
        close(fd);
        return;
    }
    unsigned same = 0;
    for (es_tcp_conn_t *c = l->conns; c; c = c->next)
        if (!c->authenticated && same_ip(&c->addr.remote, from)) same++;
    if (same >= ES_TCP_MAX_UNAUTHENTICATED_PER_IP) {
        refuse_log(l, from, "too many unauthenticated connections from this address");
        close(fd);
        return;
    }
    es_tcp_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->ls = l;
    c->fd = fd;
    memcpy(&c->addr.remote, from, sizeof c->addr.remote);
    c->addr.remote_len = from_len;
    socklen_t ll = sizeof c->addr.local;
    if (getsockname(fd, (struct sockaddr *)&c->addr.local, &ll) != 0) c->addr.local.ss_family = AF_UNSPEC;
    c->addr.transport = ES_ADDR_TCP;
    c->stage = l->share_http ? STAGE_SNIFF : STAGE_FRAMED;
    if (uv_poll_init(l->loop, &c->poll, fd) != 0) {
        close(fd);
        free(c);
        return;
    }
    c->poll.data = c;
    uv_timer_init(l->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->next = l->conns;
    if (l->conns) l->conns->prev = c;
    l->conns = c;
    l->stats.accepted++;
    l->stats.unauthenticated++;
    c->accepted_us = es_clock_now_us();
    c->deadline_us = c->accepted_us + (uint64_t)(l->share_http ? ES_TCP_SNIFF_TIMEOUT_MS
                                                                 : ES_TCP_AUTH_TIMEOUT_MS) * 1000;
    conn_arm(c);
    if (!l->share_http) conn_became_framed(c);
    conn_poll(c, UV_READABLE);
}

static void on_listen_poll(uv_poll_t *h, int status, int events);

static void on_accept_resume(uv_timer_t *t)
{
    es_tcp_listener_t *l = t->data;
    if (!l->closing) uv_poll_start(&l->poll, UV_READABLE, on_listen_poll);
}

static void on_listen_poll(uv_poll_t *h, int status, int events)
{
    es_tcp_listener_t *l = h->data;
    if (status < 0 || !(events & UV_READABLE) || l->closing) return;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        int fd = accept4(l->fd, (struct sockaddr *)&from, &fl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: the pending connection stays readable, so pause accepting
                 * rather than spin, and try again shortly. */
                uv_poll_stop(&l->poll);
                uv_timer_start(&l->pause, on_accept_resume, ACCEPT_PAUSE_MS, 0);
                uint64_t now = es_clock_now_us();
                if (now - l->last_refuse_log_us >= 10000000) {
                    l->last_refuse_log_us = now;
                    ES_WARN("tcp", NULL, "accept on port %u: %s; pausing %d ms", l->port,
                            strerror(errno), ACCEPT_PAUSE_MS);
                }
            }
            return; /* EAGAIN: nothing more now */
        }
        accept_one(l, fd, &from, fl);
    }
}

/* The shared port's framed connections: on_conn once the sniffing said STUN. */
static void conn_became_framed(es_tcp_conn_t *c)
{
    int one = 1, sndbuf = ES_TCP_SNDBUF;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A fixed, small send buffer: a peer that reads slower than the stream shows up in our queue
     * within a fraction of a second (and skips to a key frame) instead of after megabytes of
     * stale media in an autotuned kernel buffer. */
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (c->ls->cb.on_conn) c->ls->cb.on_conn(c->ls->user, c);
}

static int listen_fd(int fd) { return listen(fd, 511); }

int es_tcp_listener_open(uv_loop_t *loop, const es_listen_t *listen, bool share_http,
                         const es_tcp_listener_callbacks_t *cb, void *user,
                         es_tcp_listener_t **out, char *err, size_t err_len)
{
    *out = NULL;
    int fd = socket(listen->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return ES_EIO;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (listen->addr.ss_family == AF_INET6) {
        int zero = 0; /* "::" takes IPv4 too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(fd, (const struct sockaddr *)&listen->addr, listen->addr_len) != 0 ||
        listen_fd(fd) != 0) {
        snprintf(err, err_len, "%s", strerror(errno));
        close(fd);
        return ES_EIO;
    }
    es_tcp_listener_t *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        snprintf(err, err_len, "out of memory");
        return ES_ENOMEM;
    }
    l->loop = loop;
    l->fd = fd;
    l->share_http = share_http;
    l->cb = *cb;
    l->user = user;
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bl) == 0)
        l->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                   : ((struct sockaddr_in6 *)&bound)->sin6_port);
    uv_poll_init(loop, &l->poll, fd);
    l->poll.data = l;
    uv_timer_init(loop, &l->pause);
    l->pause.data = l;
    l->open_handles = 2;
    uv_poll_start(&l->poll, UV_READABLE, on_listen_poll);
    *out = l;
    return 0;
}

uint16_t es_tcp_listener_port(const es_tcp_listener_t *l) { return l ? l->port : 0; }

es_tcp_listener_stats_t es_tcp_listener_stats(const es_tcp_listener_t *l) { return l->stats; }

static void listener_handle_closed(uv_handle_t *h)
{
    es_tcp_listener_t *l = h->data;
    if (h == (uv_handle_t *)&l->poll) close(l->fd);
    l->open_handles--;
    listener_maybe_free(l);
}

void es_tcp_listener_close(es_tcp_listener_t *l)
{
    if (!l || l->closing) return;
    l->closing = true;
    for (es_tcp_conn_t *c = l->conns; c; c = c->next) conn_close(c, "the server is stopping", false);
    uv_close((uv_handle_t *)&l->poll, listener_handle_closed);
    uv_close((uv_handle_t *)&l->pause, listener_handle_closed);
}
