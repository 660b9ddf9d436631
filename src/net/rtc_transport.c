/* The WebRTC transport host (include/estuary/rtc_transport.h): the UDP port, the host
 * candidates, the routing maps (ufrag -> link for STUN, 5-tuple -> link for every valid pair,
 * both O(1)) and one timer per link at its session's next deadline. */
#define _GNU_SOURCE /* getifaddrs flags */
#include "estuary/rtc_transport.h"

#include "estuary/clock.h"
#include "estuary/error.h"
#include "estuary/ice.h"
#include "estuary/log.h"
#include "estuary/tcp_listener.h"
#include "estuary/udp.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_BUCKETS 4096
#define LINK_MAX_TCP 4 /* ICE-TCP connections one session may have (one per candidate pair) */

/* One valid pair of a link in the 5-tuple map: DTLS and SRTP from any of them reach it. */
typedef struct route {
    es_addr_pair_t addr;
    es_rtc_link_t *l;
    bool used;
    struct route *next;
} route_t;

struct es_rtc_transport {
    uv_loop_t *loop;
    es_udp_t *udp;
    int port, family;
    char listen_host[64];
    es_listen_t listen;            /* udp_listen: relays' own sockets bind its address */
    char cand_ip[ES_RTC_MAX_CANDIDATES][64];
    const char *cand_ptr[ES_RTC_MAX_CANDIDATES];
    size_t n_cand;
    es_rtc_link_t *links;          /* all, newest first */
    es_rtc_link_t *by_ufrag[MAP_BUCKETS];
    route_t *by_tuple[MAP_BUCKETS];
    uint64_t unknown_datagrams, last_unknown_log_us;
    es_tcp_listener_t *tcp;        /* webrtc.tcp_listen, or NULL */
    es_udp_batch_fn batch_cb;      /* brackets each receive batch, on every UDP socket */
    void *batch_user;
    uint64_t tcp_refused, last_tcp_log_us;
    bool stopping;
};

struct es_rtc_link {
    es_rtc_transport_t *t;
    es_rtc_session_t *rs;
    es_rtc_link_callbacks_t cb;
    void *user;
    char ufrag[ES_ICE_UFRAG_MAX + 1];
    route_t routes[ES_RTC_SESSION_MAX_PAIRS];
    uv_timer_t timer;              /* armed at the session's next deadline */
    uint64_t timer_due;            /* µs it is armed for, 0 when idle */
    uint64_t tick_us, next_tick_us;
    bool ended;                    /* CLOSED or FAILED: freed when the current call returns */
    char reason[160];
    es_rtc_port_t *own;            /* a relay's socket of its own, or NULL: the shared port */
    es_tcp_conn_t *tcp[LINK_MAX_TCP]; /* its ICE-TCP connections */
    bool tcp_auth[LINK_MAX_TCP];   /* ...that carried an authenticated check */
    es_rtc_link_t *next, *prev, *next_ufrag;
};

/* A UDP socket of one relay session (see es_rtc_port_open). */
struct es_rtc_port {
    es_rtc_transport_t *t;
    es_udp_t *udp;
    es_rtc_link_t *link;           /* the link that adopted it, or NULL */
    uint16_t port;
};

/* --- maps --- */

static size_t ufrag_bucket(const char *ufrag)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = ufrag; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
    return (size_t)(h % MAP_BUCKETS);
}

static void ufrag_add(es_rtc_transport_t *t, es_rtc_link_t *l)
{
    size_t b = ufrag_bucket(l->ufrag);
    l->next_ufrag = t->by_ufrag[b];
    t->by_ufrag[b] = l;
}

static void ufrag_remove(es_rtc_transport_t *t, es_rtc_link_t *l)
{
    for (es_rtc_link_t **pp = &t->by_ufrag[ufrag_bucket(l->ufrag)]; *pp; pp = &(*pp)->next_ufrag)
        if (*pp == l) {
            *pp = l->next_ufrag;
            return;
        }
}

static es_rtc_link_t *ufrag_find(es_rtc_transport_t *t, const char *ufrag)
{
    for (es_rtc_link_t *l = t->by_ufrag[ufrag_bucket(ufrag)]; l; l = l->next_ufrag)
        if (!strcmp(l->ufrag, ufrag)) return l;
    return NULL;
}

static route_t **route_slot(es_rtc_transport_t *t, const es_addr_pair_t *a)
{
    route_t **pp = &t->by_tuple[es_addr_pair_hash(a) % MAP_BUCKETS];
    while (*pp && !es_addr_pair_equal(&(*pp)->addr, a)) pp = &(*pp)->next;
    return pp;
}

static void route_unlink(es_rtc_transport_t *t, route_t *r)
{
    if (!r->used) return;
    route_t **pp = route_slot(t, &r->addr);
    if (*pp == r) *pp = r->next;
    r->used = false;
}

/* A 5-tuple belongs to one link. Another session's valid pair on it takes it over only once the
 * owner's pair has lost consent (a client that reuses its port for a new session): a source
 * address is easy to spoof, and a check signed with an attacker's own session's password must
 * not divert a victim's DTLS and SRTP. */
static void route_add(es_rtc_transport_t *t, es_rtc_link_t *l, const es_addr_pair_t *a,
                      uint64_t now)
{
    route_t **pp = route_slot(t, a);
    if (*pp && (*pp)->l == l) return;
    if (*pp && !(*pp)->l->ended && es_rtc_session_pair_has_consent((*pp)->l->rs, a, now)) return;
    if (*pp) route_unlink(t, *pp);
    for (size_t i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++) {
        route_t *r = &l->routes[i];
        if (r->used) continue;
        r->addr = *a;
        r->l = l;
        r->used = true;
        pp = &t->by_tuple[es_addr_pair_hash(a) % MAP_BUCKETS];
        r->next = *pp;
        *pp = r;
        return;
    }
}

static void route_remove(es_rtc_transport_t *t, es_rtc_link_t *l, const es_addr_pair_t *a)
{
    for (size_t i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++)
        if (l->routes[i].used && es_addr_pair_equal(&l->routes[i].addr, a))
            route_unlink(t, &l->routes[i]);
}

/* --- links --- */

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

static void tcp_detach_all(es_rtc_link_t *l);

static void link_free(es_rtc_link_t *l)
{
    es_rtc_transport_t *t = l->t;
    tcp_detach_all(l);
    ufrag_remove(t, l);
    for (size_t i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++) route_unlink(t, &l->routes[i]);
    if (l->own) {
        es_udp_close(l->own->udp);
        free(l->own);
        l->own = NULL;
    }
    if (l->prev) l->prev->next = l->next;
    else t->links = l->next;
    if (l->next) l->next->prev = l->prev;
    if (l->cb.on_closed) l->cb.on_closed(l->user, l->reason[0] ? l->reason : "closed");
    es_rtc_session_free(l->rs);
    l->rs = NULL;
    uv_close((uv_handle_t *)&l->timer, on_timer_closed); /* frees l */
}

static void on_link_timer(uv_timer_t *h);

/* Arms l's timer for its next deadline, only when that is earlier than the armed one (an early
 * wake-up costs nothing; it re-arms). */
static void link_arm(es_rtc_link_t *l, uint64_t now)
{
    uint64_t due = es_rtc_session_next_timeout_us(l->rs, now);
    if (l->next_tick_us && (!due || l->next_tick_us < due)) due = l->next_tick_us;
    if (!due || (l->timer_due && l->timer_due <= due && l->timer_due >= now)) return;
    l->timer_due = due;
    uv_timer_start(&l->timer, on_link_timer, due > now ? (due - now + 999) / 1000 : 0, 0);
}

/* After every call into l's session: free it if it ended, else arm its timer. */
static void link_after(es_rtc_link_t *l, uint64_t now)
{
    if (l->ended) link_free(l);
    else link_arm(l, now);
}

static void on_link_timer(uv_timer_t *h)
{
    es_rtc_link_t *l = h->data;
    uint64_t now = es_clock_now_us();
    l->timer_due = 0;
    es_rtc_session_handle_timeout(l->rs, now);
    if (l->next_tick_us && now >= l->next_tick_us && !l->ended) {
        l->next_tick_us = now + l->tick_us;
        if (l->cb.on_tick) l->cb.on_tick(l->user, now);
    }
    link_after(l, now);
}

static es_tcp_conn_t *tcp_of(const es_rtc_link_t *l, const es_addr_pair_t *addr)
{
    for (size_t i = 0; i < LINK_MAX_TCP; i++)
        if (l->tcp[i] && es_addr_pair_equal(es_tcp_conn_addr(l->tcp[i]), addr)) return l->tcp[i];
    return NULL;
}

static void ls_send(void *user, const uint8_t *buf, size_t len, const es_addr_pair_t *addr)
{
    es_rtc_link_t *l = user;
    if (addr->transport == ES_ADDR_TCP) { /* RTP and RTCP may be dropped; STUN and DTLS not */
        es_tcp_conn_t *c = tcp_of(l, addr);
        if (c) es_tcp_conn_send(c, buf, len, len && buf[0] >= 128 && buf[0] <= 191);
        return;
    }
    es_udp_t *u = l->own ? l->own->udp : l->t->udp;
    if (u) es_udp_send(u, buf, len, addr);
}

static void ls_rtp(void *user, uint64_t now, uint8_t *buf, size_t len)
{
    es_rtc_link_t *l = user;
    if (!l->ended && l->cb.on_rtp) l->cb.on_rtp(l->user, now, buf, len);
}

static void ls_rtcp(void *user, uint64_t now, uint8_t *buf, size_t len)
{
    es_rtc_link_t *l = user;
    if (!l->ended && l->cb.on_rtcp) l->cb.on_rtcp(l->user, now, buf, len);
}

static void ls_pair(void *user, const es_addr_pair_t *a, bool added)
{
    es_rtc_link_t *l = user;
    if (l->own || a->transport == ES_ADDR_TCP) { /* its own socket or connection: no routes */
    } else if (added) {
        route_add(l->t, l, a, es_clock_now_us());
    } else {
        route_remove(l->t, l, a);
    }
    if (l->cb.on_pair) l->cb.on_pair(l->user, a, added);
}

static void ls_selected(void *user, const es_addr_pair_t *a, bool nominated)
{
    es_rtc_link_t *l = user;
    if (l->cb.on_selected) l->cb.on_selected(l->user, a, nominated);
}

static void ls_state(void *user, es_rtc_session_state_t st, int err, const char *reason)
{
    es_rtc_link_t *l = user;
    if (st == ES_RTC_SESSION_CLOSED || st == ES_RTC_SESSION_FAILED) {
        if (!l->reason[0]) snprintf(l->reason, sizeof l->reason, "%s", reason);
        l->ended = true;
    }
    if (l->cb.on_state) l->cb.on_state(l->user, st, err, reason);
}

es_rtc_link_t *es_rtc_link_open_on(es_rtc_transport_t *t, es_rtc_port_t *own,
                                   const es_rtc_session_params_t *params,
                                   const es_rtc_link_callbacks_t *cb, void *user)
{
    if (t->stopping || strlen(params->local_ufrag) > ES_ICE_UFRAG_MAX || (own && own->link))
        return NULL;
    es_rtc_link_t *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    es_rtc_session_params_t p = *params;
    p.cb = (es_rtc_session_callbacks_t){.send = ls_send, .on_rtp = ls_rtp, .on_rtcp = ls_rtcp,
                                        .on_pair = ls_pair, .on_selected = ls_selected,
                                        .on_state = ls_state};
    p.user = l;
    l->rs = es_rtc_session_new(&p);
    if (!l->rs) {
        free(l);
        return NULL;
    }
    l->t = t;
    l->cb = *cb;
    l->user = user;
    snprintf(l->ufrag, sizeof l->ufrag, "%s", params->local_ufrag);
    if (own) {
        l->own = own;
        own->link = l;
    }
    uv_timer_init(t->loop, &l->timer);
    l->timer.data = l;
    l->next = t->links;
    if (t->links) t->links->prev = l;
    t->links = l;
    if (!own) ufrag_add(t, l); /* a relay's checks come to its own socket */
    link_after(l, params->now_us);
    return l;
}

es_rtc_link_t *es_rtc_link_open(es_rtc_transport_t *t, const es_rtc_session_params_t *params,
                                const es_rtc_link_callbacks_t *cb, void *user)
{
    return es_rtc_link_open_on(t, NULL, params, cb, user);
}

void es_rtc_link_close(es_rtc_link_t *l, const char *reason)
{
    if (!l->reason[0]) snprintf(l->reason, sizeof l->reason, "%s", reason);
    es_rtc_session_close(l->rs, reason);
    link_free(l);
}

void es_rtc_link_set_tick(es_rtc_link_t *l, uint64_t period_us, uint64_t now)
{
    l->tick_us = period_us;
    l->next_tick_us = period_us ? now + period_us : 0;
    link_arm(l, now); /* may run inside the link's callbacks: never frees */
}

int es_rtc_link_restart_ice(es_rtc_link_t *l, const char *local_ufrag, const char *local_pwd,
                            const char *remote_ufrag, const char *remote_pwd)
{
    if (strlen(local_ufrag) > ES_ICE_UFRAG_MAX) return ES_EINVAL;
    uint64_t now = es_clock_now_us();
    int rc = es_rtc_session_restart_ice(l->rs, local_ufrag, local_pwd, remote_ufrag, remote_pwd, now);
    if (rc != 0) return rc;
    if (!l->own) ufrag_remove(l->t, l);
    snprintf(l->ufrag, sizeof l->ufrag, "%s", local_ufrag);
    if (!l->own) ufrag_add(l->t, l);
    link_after(l, now);
    return 0;
}

int es_rtc_link_add_remote_candidate(es_rtc_link_t *l, const char *ip, uint16_t port,
                                     uint32_t priority)
{
    es_addr_pair_t a;
    memset(&a, 0, sizeof a);
    a.local.ss_family = AF_UNSPEC;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a.remote;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a.remote;
    struct in_addr in4;
    if (!ip || !port) return ES_EINVAL;
    if (inet_pton(AF_INET, ip, &in4) == 1) {
        if (l->t->family == AF_INET6) { /* a dual-stack socket: IPv4-mapped */
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(port);
            v6->sin6_addr.s6_addr[10] = v6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&v6->sin6_addr.s6_addr[12], &in4, 4);
            a.remote_len = sizeof *v6;
        } else {
            v4->sin_family = AF_INET;
            v4->sin_port = htons(port);
            v4->sin_addr = in4;
            a.remote_len = sizeof *v4;
        }
    } else if (l->t->family == AF_INET6 && inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a.remote_len = sizeof *v6;
    } else {
        return ES_EINVAL; /* an mDNS name, or IPv6 on an IPv4 socket */
    }
    uint64_t now = es_clock_now_us();
    int rc = es_rtc_session_add_remote_candidate(l->rs, &a, priority, now);
    if (rc != 0) return rc;
    link_after(l, now);
    return 0;
}

es_rtc_session_t *es_rtc_link_session(es_rtc_link_t *l) { return l->rs; }

bool es_rtc_link_congested(const es_rtc_link_t *l)
{
    const es_addr_pair_t *sel = es_rtc_session_selected(l->rs, NULL);
    if (!sel || sel->transport != ES_ADDR_TCP) return false;
    const es_tcp_conn_t *c = tcp_of(l, sel);
    return !c || es_tcp_conn_congested(c);
}

void es_rtc_transport_set_batch_cb(es_rtc_transport_t *t, es_udp_batch_fn fn, void *user)
{
    t->batch_cb = fn;
    t->batch_user = user;
    if (t->udp) es_udp_set_batch_cb(t->udp, fn, user);
}

es_rtc_transport_stats_t es_rtc_transport_stats(const es_rtc_transport_t *t)
{
    es_rtc_transport_stats_t st = {.unknown_datagrams = t->unknown_datagrams,
                                   .tcp_refused = t->tcp_refused};
    if (t->udp) st.udp = es_udp_stats(t->udp);
    if (t->tcp) st.tcp = es_tcp_listener_stats(t->tcp);
    return st;
}

uint8_t *es_rtc_link_tx_buf(es_rtc_link_t *l, size_t *cap)
{
    const es_addr_pair_t *sel = es_rtc_session_selected(l->rs, NULL);
    if (!sel || sel->transport != ES_ADDR_UDP) return NULL;
    es_udp_t *u = l->own ? l->own->udp : l->t->udp;
    return u ? es_udp_tx_buf(u, cap) : NULL;
}

/* --- a relay's own socket --- */

/* One datagram for link l, on the shared port or its own. */
static void link_datagram(es_rtc_link_t *l, uint64_t now, uint8_t *buf, size_t len,
                          const es_addr_pair_t *addr)
{
    bool nom0, nom1;
    const es_addr_pair_t *sel0 = es_rtc_session_selected(l->rs, &nom0);
    es_rtc_session_handle_datagram(l->rs, now, buf, len, addr);
    /* SRTP and SRTCP only refresh a pair's consent: no deadline moves earlier (the armed timer
     * re-arms itself when it fires), unless the packet gave its pair consent back and media
     * moved there (a new consent-check time). Nothing more to do per media packet. */
    if (buf[0] >= 128 && buf[0] <= 191 && !l->ended &&
        es_rtc_session_selected(l->rs, &nom1) == sel0 && nom1 == nom0)
        return;
    /* A check that made or kept a pair valid on the shared port: claim its 5-tuple if it was
     * refused before (its owner has lost consent since) or went to another session. */
    if (!l->own && addr->transport == ES_ADDR_UDP && buf[0] <= 3 && !l->ended &&
        es_rtc_session_pair_has_consent(l->rs, addr, now)) {
        route_t *r = *route_slot(l->t, addr);
        if (!r || r->l != l) route_add(l->t, l, addr, now);
    }
    link_after(l, now);
}

static void on_own_datagram(void *user, uint64_t now, uint8_t *buf, size_t len,
                            const es_addr_pair_t *addr)
{
    es_rtc_port_t *p = user;
    es_rtc_link_t *l = p->link;
    if (!l || l->ended) return; /* before the answer: nothing to take it */
    link_datagram(l, now, buf, len, addr);
}

es_rtc_port_t *es_rtc_port_open(es_rtc_transport_t *t, char *err, size_t err_len)
{
    if (!t || t->stopping) {
        snprintf(err, err_len, "WebRTC is stopping");
        return NULL;
    }
    es_rtc_port_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    es_listen_t any = t->listen;
    struct sockaddr_storage *a = &any.addr;
    if (a->ss_family == AF_INET) ((struct sockaddr_in *)a)->sin_port = 0;
    else ((struct sockaddr_in6 *)a)->sin6_port = 0;
    any.port = 0;
    p->t = t;
    if (es_udp_open(t->loop, &any, on_own_datagram, p, &p->udp, err, err_len) != 0) {
        free(p);
        return NULL;
    }
    p->port = es_udp_port(p->udp);
    es_udp_set_batch_cb(p->udp, t->batch_cb, t->batch_user);
    return p;
}

uint16_t es_rtc_port_number(const es_rtc_port_t *p) { return p ? p->port : 0; }

void es_rtc_port_close(es_rtc_port_t *p)
{
    if (!p || p->link) return; /* a link's port goes with the link */
    es_udp_close(p->udp);
    free(p);
}

/* --- UDP --- */

static void on_datagram(void *user, uint64_t now, uint8_t *buf, size_t len,
                        const es_addr_pair_t *addr)
{
    es_rtc_transport_t *t = user;
    es_rtc_link_t *l = NULL;
    /* STUN goes by ufrag (a check may come from a new pair, or for a new session from an old
     * 5-tuple); everything else by 5-tuple. */
    if (len && buf[0] <= 3) {
        char ufrag[ES_ICE_UFRAG_MAX + 1];
        if (es_stun_peek_ufrag(buf, len, ufrag, sizeof ufrag) > 0) l = ufrag_find(t, ufrag);
    }
    if (!l) {
        route_t *r = *route_slot(t, addr);
        l = r ? r->l : NULL;
    }
    if (!l || l->ended) {
        t->unknown_datagrams++;
        if (now - t->last_unknown_log_us > 10000000) {
            t->last_unknown_log_us = now;
            char from[64];
            es_addr_format((const struct sockaddr *)&addr->remote, from, sizeof from);
            es_log_ctx_t lc = {.remote = from};
            ES_DEBUG("rtc", &lc, "datagram from an unknown address or ufrag dropped (%llu so far)",
                     (unsigned long long)t->unknown_datagrams);
        }
        return;
    }
    link_datagram(l, now, buf, len, addr);
}

/* --- ICE-TCP (RFC 6544): one connection per pair, routed by the link it authenticated to --- */

static void tcp_log(es_rtc_transport_t *t, const es_tcp_conn_t *c, const char *why)
{
    t->tcp_refused++;
    uint64_t now = es_clock_now_us();
    if (now - t->last_tcp_log_us < 10000000) return;
    t->last_tcp_log_us = now;
    char from[64];
    es_addr_format((const struct sockaddr *)&es_tcp_conn_addr(c)->remote, from, sizeof from);
    es_log_ctx_t lc = {.remote = from};
    ES_INFO("rtc", &lc, "ICE-TCP connection closed: %s (%llu so far)", why,
            (unsigned long long)t->tcp_refused);
}

static void tcp_bound_frame(void *user, es_tcp_conn_t *c, uint64_t now, uint8_t *buf, size_t len);
static void tcp_bound_closed(void *user, es_tcp_conn_t *c, const char *reason);
static void tcp_detached_closed(void *user, es_tcp_conn_t *c, const char *reason)
{
    (void)user, (void)c, (void)reason;
}

static const es_tcp_conn_callbacks_t TCP_DETACHED = {.on_closed = tcp_detached_closed};

static void tcp_detach_all(es_rtc_link_t *l)
{
    for (size_t i = 0; i < LINK_MAX_TCP; i++) {
        if (!l->tcp[i]) continue;
        es_tcp_conn_set_callbacks(l->tcp[i], &TCP_DETACHED, NULL);
        es_tcp_conn_close(l->tcp[i], "the session ended");
        l->tcp[i] = NULL;
    }
}

static size_t tcp_slot(const es_rtc_link_t *l, const es_tcp_conn_t *c)
{
    for (size_t i = 0; i < LINK_MAX_TCP; i++)
        if (l->tcp[i] == c) return i;
    return LINK_MAX_TCP;
}

/* A frame on a connection of link l. Until one of its checks authenticates, only STUN. */
static void tcp_bound_frame(void *user, es_tcp_conn_t *c, uint64_t now, uint8_t *buf, size_t len)
{
    es_rtc_link_t *l = user;
    size_t i = tcp_slot(l, c);
    if (i == LINK_MAX_TCP || l->ended) return;
    if (l->tcp_auth[i]) {
        link_datagram(l, now, buf, len, es_tcp_conn_addr(c));
        return;
    }
    if (buf[0] > 3) {
        tcp_log(l->t, c, "media before an authenticated check");
        es_tcp_conn_close(c, "media before an authenticated check");
        return;
    }
    const es_addr_pair_t *addr = es_tcp_conn_addr(c);
    es_rtc_session_handle_datagram(l->rs, now, buf, len, addr);
    if (!l->ended && es_rtc_session_pair_has_consent(l->rs, addr, now)) {
        l->tcp_auth[i] = true;
        es_tcp_conn_authenticated(c);
    } else {
        tcp_log(l->t, c, "its check did not authenticate");
        l->tcp[i] = NULL;
        es_tcp_conn_set_callbacks(c, &TCP_DETACHED, NULL);
        es_tcp_conn_close(c, "its check did not authenticate");
    }
    link_after(l, now);
}

static void tcp_bound_closed(void *user, es_tcp_conn_t *c, const char *reason)
{
    es_rtc_link_t *l = user;
    size_t i = tcp_slot(l, c);
    if (i == LINK_MAX_TCP) return;
    l->tcp[i] = NULL;
    l->tcp_auth[i] = false;
    char from[64];
    es_addr_format((const struct sockaddr *)&es_tcp_conn_addr(c)->remote, from, sizeof from);
    es_log_ctx_t lc = {.remote = from};
    ES_DEBUG("rtc", &lc, "ICE-TCP connection of session ufrag %s closed: %s", l->ufrag, reason);
}

static const es_tcp_conn_callbacks_t TCP_BOUND = {.on_frame = tcp_bound_frame,
                                                  .on_closed = tcp_bound_closed};

/* The first frame of a new connection: a Binding request naming a session by its ufrag. */
static void tcp_first_frame(void *user, es_tcp_conn_t *c, uint64_t now, uint8_t *buf, size_t len)
{
    es_rtc_transport_t *t = user;
    char ufrag[ES_ICE_UFRAG_MAX + 1];
    es_rtc_link_t *l = NULL;
    if (buf[0] <= 3 && es_stun_peek_ufrag(buf, len, ufrag, sizeof ufrag) > 0) l = ufrag_find(t, ufrag);
    if (!l || l->ended) {
        const char *why = buf[0] <= 3 ? "its first check names no session" : "the first frame is not STUN";
        tcp_log(t, c, why);
        es_tcp_conn_set_callbacks(c, &TCP_DETACHED, NULL);
        es_tcp_conn_close(c, why);
        return;
    }
    size_t i = tcp_slot(l, NULL);
    if (i == LINK_MAX_TCP) {
        tcp_log(t, c, "the session has 4 TCP connections already");
        es_tcp_conn_set_callbacks(c, &TCP_DETACHED, NULL);
        es_tcp_conn_close(c, "too many TCP connections for one session");
        return;
    }
    l->tcp[i] = c;
    l->tcp_auth[i] = false;
    es_tcp_conn_set_callbacks(c, &TCP_BOUND, l);
    tcp_bound_frame(l, c, now, buf, len);
}

static const es_tcp_conn_callbacks_t TCP_NEW = {.on_frame = tcp_first_frame,
                                                .on_closed = tcp_detached_closed};

void es_rtc_transport_on_tcp_conn(void *transport, es_tcp_conn_t *c)
{
    es_rtc_transport_t *t = transport;
    if (!t || t->stopping) {
        es_tcp_conn_set_callbacks(c, &TCP_DETACHED, NULL);
        es_tcp_conn_close(c, "WebRTC is stopping");
        return;
    }
    es_tcp_conn_set_callbacks(c, &TCP_NEW, t);
}

int es_rtc_transport_listen_tcp(es_rtc_transport_t *t, const es_listen_t *tcp_listen, char *err,
                                size_t err_len)
{
    es_tcp_listener_callbacks_t cb = {.on_conn = es_rtc_transport_on_tcp_conn};
    return es_tcp_listener_open(t->loop, tcp_listen, false, &cb, t, &t->tcp, err, err_len);
}

int es_rtc_transport_tcp_port(const es_rtc_transport_t *t)
{
    return t && t->tcp ? es_tcp_listener_port(t->tcp) : 0;
}

/* --- candidates --- */

static void add_candidate(es_rtc_transport_t *t, const char *ip)
{
    if (t->n_cand >= ES_RTC_MAX_CANDIDATES) return;
    for (size_t i = 0; i < t->n_cand; i++)
        if (!strcmp(t->cand_ip[i], ip)) return;
    snprintf(t->cand_ip[t->n_cand++], sizeof t->cand_ip[0], "%s", ip);
}

/* Interface addresses for "*": IPv4 (and global IPv6 when bound to ::), loopback only when
 * the machine has nothing else. */
static void discover_candidates(es_rtc_transport_t *t, int family)
{
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0) return;
    for (int pass = 0; pass < 2 && t->n_cand == 0; pass++) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
            if (!i->ifa_addr || !(i->ifa_flags & IFF_UP)) continue;
            bool loop = (i->ifa_flags & IFF_LOOPBACK) != 0;
            if (loop != (pass == 1)) continue;
            char ip[INET6_ADDRSTRLEN];
            if (i->ifa_addr->sa_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip, sizeof ip);
                add_candidate(t, ip);
            } else if (i->ifa_addr->sa_family == AF_INET6 && family == AF_INET6) {
                struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
                if (IN6_IS_ADDR_LINKLOCAL(a)) continue;
                inet_ntop(AF_INET6, a, ip, sizeof ip);
                add_candidate(t, ip);
            }
        }
    }
    freeifaddrs(ifs);
}

static void resolve_candidates(es_rtc_transport_t *t, char *const *list, size_t n)
{
    t->n_cand = 0;
    bool wildcard = !strcmp(t->listen_host, "0.0.0.0") || !strcmp(t->listen_host, "::");
    for (size_t i = 0; i < n; i++) {
        const char *c = list[i];
        if (!strcmp(c, "*")) {
            if (wildcard) discover_candidates(t, t->family);
            else add_candidate(t, t->listen_host);
            continue;
        }
        struct in6_addr a6;
        struct in_addr a4;
        if (inet_pton(AF_INET, c, &a4) == 1 || inet_pton(AF_INET6, c, &a6) == 1) {
            add_candidate(t, c);
            continue;
        }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *res = NULL;
        if (getaddrinfo(c, NULL, &hints, &res) != 0 || !res) {
            ES_WARN("rtc", NULL, "webrtc.candidates: cannot resolve '%s'; skipped", c);
            continue;
        }
        char ip[INET6_ADDRSTRLEN];
        if (res->ai_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
        else
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, ip, sizeof ip);
        freeaddrinfo(res);
        add_candidate(t, ip);
    }
    if (t->n_cand == 0) add_candidate(t, "127.0.0.1");
    for (size_t i = 0; i < t->n_cand; i++) t->cand_ptr[i] = t->cand_ip[i];
}

/* --- start / stop --- */

int es_rtc_transport_start(uv_loop_t *loop, const es_listen_t *udp_listen,
                           char *const *candidates, size_t n_candidates,
                           es_rtc_transport_t **out, char *err, size_t err_len)
{
    *out = NULL;
    es_rtc_transport_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, err_len, "out of memory");
        return ES_ENOMEM;
    }
    t->loop = loop;
    if (es_udp_open(loop, udp_listen, on_datagram, t, &t->udp, err, err_len) != 0) {
        free(t);
        return ES_EIO;
    }
    t->port = es_udp_port(t->udp);
    t->family = udp_listen->addr.ss_family;
    t->listen = *udp_listen;
    snprintf(t->listen_host, sizeof t->listen_host, "%s", udp_listen->host);
    resolve_candidates(t, candidates, n_candidates);
    *out = t;
    return 0;
}

void es_rtc_transport_set_candidates(es_rtc_transport_t *t, char *const *candidates,
                                     size_t n_candidates)
{
    resolve_candidates(t, candidates, n_candidates);
}

size_t es_rtc_transport_candidates(const es_rtc_transport_t *t, const char *const **ips)
{
    *ips = t->cand_ptr;
    return t->n_cand;
}

int es_rtc_transport_port(const es_rtc_transport_t *t) { return t ? t->port : 0; }

void es_rtc_transport_stop(es_rtc_transport_t *t, const char *reason)
{
    if (!t || t->stopping) return;
    t->stopping = true;
    while (t->links) es_rtc_link_close(t->links, reason);
    if (t->udp) es_udp_close(t->udp);
    t->udp = NULL;
    es_tcp_listener_close(t->tcp);
    t->tcp = NULL;
}

void es_rtc_transport_free(es_rtc_transport_t *t) { free(t); }
