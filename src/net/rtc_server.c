/* WebRTC sessions on the daemon's loop (include/estuary/rtc_server.h): the UDP port, the
 * session table with its two O(1) maps (ufrag before nomination, 5-tuple after), offer/answer
 * for WHIP and WHEP, and the 10 ms timer. Protocol work is done by the sans-IO cores: SDP
 * (webrtc/sdp), the transport (webrtc/peer) and the fan-out (media/stream). */
#define _GNU_SOURCE /* getifaddrs flags, strcasestr */
#include "estuary/rtc_server.h"

#include "estuary/clock.h"
#include "estuary/dtls.h"
#include "estuary/error.h"
#include "estuary/ice.h"
#include "estuary/live.h"
#include "estuary/log.h"
#include "estuary/random.h"
#include "estuary/rtc_session.h"
#include "estuary/sdp.h"
#include "estuary/srtp.h"
#include "estuary/stream.h"
#include "estuary/udp.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEDIA_TICK_US 10000 /* a publisher's media stream timers: NACK, transport-cc, RR */
#define MAP_BUCKETS 4096
#define MAX_CANDIDATES 8

typedef struct session session_t;

/* One valid pair of a session in the 5-tuple map: DTLS and SRTP from any of them reach it. */
typedef struct route {
    es_addr_pair_t addr;
    session_t *s;
    bool used;
    struct route *next;
} route_t;

struct es_rtc_server {
    es_server_t *srv;
    es_udp_t *udp;
    es_dtls_cert_t *cert;
    int port;
    char cand_ip[MAX_CANDIDATES][64];
    size_t n_cand;
    session_t *sessions;           /* all, newest first */
    session_t *by_ufrag[MAP_BUCKETS];
    route_t *by_tuple[MAP_BUCKETS];
    uint64_t unknown_datagrams;
    uint64_t last_unknown_log_us;
    bool stopping;
};

struct session {
    es_rtc_server_t *rtc;
    char id[ES_RTC_ID_LEN + 1];
    es_rtc_role_t role;
    char app[ES_APP_NAME_MAX + 1], stream_name[ES_STREAM_NAME_MAX + 1];
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    char http_remote[64];
    char media_remote[64];
    char ufrag[16], pwd[40], remote_ufrag[ES_ICE_UFRAG_MAX + 1];
    char etag[40];
    es_rtc_session_t *rs;
    es_media_stream_t *ms;
    es_media_sink_t *sink;
    uint64_t created_us, connected_us;
    bool closing;
    char close_reason[160];
    route_t routes[ES_RTC_SESSION_MAX_PAIRS];
    uv_timer_t timer;              /* armed at the session's next deadline */
    uint64_t timer_due;            /* µs it is armed for, 0 when idle */
    uint64_t next_media_tick_us;   /* publishers: es_media_stream_tick */
    char codecs[96];               /* "opus, H264" for logs and the API */
    session_t *next, *prev;
    session_t *next_ufrag;
};

static es_log_ctx_t sctx(const session_t *s)
{
    return (es_log_ctx_t){.peer = s->id, .stream = s->key,
                          .remote = s->media_remote[0] ? s->media_remote : s->http_remote};
}

static const char *role_name(es_rtc_role_t r) { return r == ES_RTC_PUBLISH ? "publisher" : "player"; }

/* --- maps --- */

static size_t ufrag_bucket(const char *ufrag)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = ufrag; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
    return (size_t)(h % MAP_BUCKETS);
}

static void ufrag_add(es_rtc_server_t *rtc, session_t *s)
{
    size_t b = ufrag_bucket(s->ufrag);
    s->next_ufrag = rtc->by_ufrag[b];
    rtc->by_ufrag[b] = s;
}

static void ufrag_remove(es_rtc_server_t *rtc, session_t *s)
{
    for (session_t **pp = &rtc->by_ufrag[ufrag_bucket(s->ufrag)]; *pp; pp = &(*pp)->next_ufrag)
        if (*pp == s) {
            *pp = s->next_ufrag;
            return;
        }
}

static session_t *ufrag_find(es_rtc_server_t *rtc, const char *ufrag)
{
    for (session_t *s = rtc->by_ufrag[ufrag_bucket(ufrag)]; s; s = s->next_ufrag)
        if (!strcmp(s->ufrag, ufrag)) return s;
    return NULL;
}

static route_t **route_slot(es_rtc_server_t *rtc, const es_addr_pair_t *a)
{
    route_t **pp = &rtc->by_tuple[es_addr_pair_hash(a) % MAP_BUCKETS];
    while (*pp && !es_addr_pair_equal(&(*pp)->addr, a)) pp = &(*pp)->next;
    return pp;
}

static void route_unlink(es_rtc_server_t *rtc, route_t *r)
{
    if (!r->used) return;
    route_t **pp = route_slot(rtc, &r->addr);
    if (*pp == r) *pp = r->next;
    r->used = false;
}

/* A 5-tuple belongs to one session: the one that authenticated it last (a client that reuses
 * its port for a new session). */
static void route_add(es_rtc_server_t *rtc, session_t *s, const es_addr_pair_t *a)
{
    route_t **pp = route_slot(rtc, a);
    if (*pp) route_unlink(rtc, *pp);
    for (size_t i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++) {
        route_t *r = &s->routes[i];
        if (r->used) continue;
        r->addr = *a;
        r->s = s;
        r->used = true;
        pp = &rtc->by_tuple[es_addr_pair_hash(a) % MAP_BUCKETS];
        r->next = *pp;
        *pp = r;
        return;
    }
}

static void route_remove(es_rtc_server_t *rtc, session_t *s, const es_addr_pair_t *a)
{
    for (size_t i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++)
        if (s->routes[i].used && es_addr_pair_equal(&s->routes[i].addr, a))
            route_unlink(rtc, &s->routes[i]);
}

static session_t *tuple_find(es_rtc_server_t *rtc, const es_addr_pair_t *a)
{
    route_t *r = *route_slot(rtc, a);
    return r ? r->s : NULL;
}

static session_t *session_find(es_rtc_server_t *rtc, const char *id)
{
    for (session_t *s = rtc->sessions; s; s = s->next)
        if (!strcmp(s->id, id)) return s;
    return NULL;
}

/* --- helpers --- */

static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
static const char HEX[] = "0123456789abcdef";

/* --- session lifecycle --- */

static void stream_release(es_rtc_server_t *rtc, session_t *s)
{
    es_stream_t *st = es_registry_find(rtc->srv->registry, s->app, s->stream_name);
    if (!st || st->media != s->ms) return;
    if (s->role == ES_RTC_PUBLISH && st->source == ES_SOURCE_WEBRTC) es_live_source_ended(st, es_clock_now_us());
    es_live_release(rtc->srv->registry, st);
}

static void on_session_timer_closed(uv_handle_t *h) { free(h->data); }

static void session_destroy(es_rtc_server_t *rtc, session_t *s)
{
    es_log_ctx_t lc = sctx(s);
    es_rtc_session_stats_t ps = es_rtc_session_stats(s->rs);
    uint64_t now = es_clock_now_us();
    ES_INFO("rtc", &lc, "%s session closed after %.1f s: %s (in %llu bytes, out %llu bytes, "
            "%llu datagrams dropped)", role_name(s->role), (double)(now - s->created_us) / 1e6,
            s->close_reason[0] ? s->close_reason : "closed", (unsigned long long)ps.rx_bytes,
            (unsigned long long)ps.tx_bytes, (unsigned long long)ps.dropped);
    ufrag_remove(rtc, s);
    for (size_t i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++) route_unlink(rtc, &s->routes[i]);
    if (s->prev) s->prev->next = s->next;
    else rtc->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    if (s->ms) {
        if (s->role == ES_RTC_PUBLISH) es_media_stream_remove_source(s->ms, now);
        else if (s->sink) es_media_stream_remove_sink(s->ms, s->sink);
        stream_release(rtc, s);
    }
    es_rtc_session_free(s->rs);
    s->rs = NULL;
    if (rtc->srv->sessions) rtc->srv->sessions--;
    uv_close((uv_handle_t *)&s->timer, on_session_timer_closed); /* frees s */
}

/* Marks s for closing; it is freed when the call into its session returns. */
static void session_close_later(session_t *s, const char *reason)
{
    if (s->closing) return;
    s->closing = true;
    snprintf(s->close_reason, sizeof s->close_reason, "%s", reason);
}

/* Ends s now: close_notify to the client, then frees it. Not from inside a session callback. */
static void session_end(es_rtc_server_t *rtc, session_t *s, const char *why)
{
    session_close_later(s, why); /* first, so the reason is ours, not the session's */
    es_rtc_session_close(s->rs, why);
    session_destroy(rtc, s);
}

static void on_session_timer(uv_timer_t *t);

/* After every call into s: free it if it ended, else arm its timer for its next deadline (only
 * when that is earlier than the armed one: a late wake-up re-arms, an early one costs nothing). */
static void session_after(es_rtc_server_t *rtc, session_t *s, uint64_t now)
{
    if (s->closing) {
        session_destroy(rtc, s);
        return;
    }
    uint64_t due = es_rtc_session_next_timeout_us(s->rs, now);
    if (s->next_media_tick_us && (!due || s->next_media_tick_us < due)) due = s->next_media_tick_us;
    if (!due || (s->timer_due && s->timer_due <= due && s->timer_due >= now)) return;
    s->timer_due = due;
    uv_timer_start(&s->timer, on_session_timer, due > now ? (due - now + 999) / 1000 : 0, 0);
}

static void on_session_timer(uv_timer_t *t)
{
    session_t *s = t->data;
    uint64_t now = es_clock_now_us();
    s->timer_due = 0;
    es_rtc_session_handle_timeout(s->rs, now);
    if (s->next_media_tick_us && now >= s->next_media_tick_us && !s->closing) {
        es_media_stream_tick(s->ms, now);
        s->next_media_tick_us = now + MEDIA_TICK_US;
    }
    session_after(s->rtc, s, now);
}

/* --- session callbacks --- */

static void rs_send(void *user, const uint8_t *buf, size_t len, const es_addr_pair_t *addr)
{
    session_t *s = user;
    if (s->rtc->udp) es_udp_send(s->rtc->udp, buf, len, addr);
}

static void rs_rtp(void *user, uint64_t now, uint8_t *buf, size_t len)
{
    session_t *s = user;
    if (s->role == ES_RTC_PUBLISH && !s->closing) es_media_stream_source_rtp(s->ms, now, buf, len);
}

static void rs_rtcp(void *user, uint64_t now, uint8_t *buf, size_t len)
{
    session_t *s = user;
    if (s->closing) return;
    if (s->role == ES_RTC_PUBLISH) es_media_stream_source_rtcp(s->ms, now, buf, len);
    else if (s->sink) es_media_sink_rtcp(s->sink, now, buf, len);
}

static void rs_pair(void *user, const es_addr_pair_t *a, bool added)
{
    session_t *s = user;
    if (added) route_add(s->rtc, s, a);
    else route_remove(s->rtc, s, a);
    char remote[64], local[64];
    es_addr_format((const struct sockaddr *)&a->remote, remote, sizeof remote);
    es_addr_format((const struct sockaddr *)&a->local, local, sizeof local);
    es_log_ctx_t lc = sctx(s);
    ES_DEBUG("rtc", &lc, "ICE: pair %s -> %s %s after %.0f ms", remote, local,
             added ? "valid" : "dropped", (double)(es_clock_now_us() - s->created_us) / 1000.0);
}

static void rs_selected(void *user, const es_addr_pair_t *a, bool nominated)
{
    session_t *s = user;
    es_log_ctx_t lc = sctx(s);
    if (!a) {
        ES_INFO("rtc", &lc, "ICE: media to %s stopped: the pair lost consent (RFC 7675)",
                s->media_remote);
        return;
    }
    char local[64];
    es_addr_format((const struct sockaddr *)&a->remote, s->media_remote, sizeof s->media_remote);
    es_addr_format((const struct sockaddr *)&a->local, local, sizeof local);
    lc = sctx(s);
    ES_INFO("rtc", &lc, "ICE: media to %s from %s (%s) after %.0f ms", s->media_remote, local,
            nominated ? "nominated" : "the pair DTLS came on, not nominated yet",
            (double)(es_clock_now_us() - s->created_us) / 1000.0);
}

static void rs_state(void *user, es_rtc_session_state_t st, int err, const char *reason)
{
    session_t *s = user;
    es_log_ctx_t lc = sctx(s);
    uint64_t now = es_clock_now_us();
    switch (st) {
    case ES_RTC_SESSION_CONNECTED:
        s->connected_us = now;
        ES_INFO("rtc", &lc, "DTLS connected (%s) %.0f ms after the offer; %s %s",
                es_rtc_session_srtp_profile(s->rs) == ES_SRTP_AEAD_AES_128_GCM
                    ? "AEAD_AES_128_GCM" : "AES_CM_128_HMAC_SHA1_80",
                (double)(now - s->created_us) / 1000.0,
                s->role == ES_RTC_PUBLISH ? "publishing" : "playing", s->codecs);
        if (s->sink) es_media_sink_start(s->sink, now);
        else s->next_media_tick_us = now + MEDIA_TICK_US;
        break;
    case ES_RTC_SESSION_FAILED:
        ES_WARN("rtc", &lc, "session failed (%s): %s", es_strerror(err), reason);
        session_close_later(s, reason[0] ? reason : "failed");
        break;
    case ES_RTC_SESSION_CLOSED:
        if (err) ES_INFO("rtc", &lc, "%s", reason);
        session_close_later(s, reason[0] ? reason : "closed");
        break;
    default: break;
    }
}

static int io_send_rtp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    session_t *s = user;
    return es_rtc_session_send_rtp(s->rs, buf, len, cap);
}

static int io_send_rtcp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    session_t *s = user;
    return es_rtc_session_send_rtcp(s->rs, buf, len, cap);
}

/* --- UDP --- */

static void on_datagram(void *user, uint64_t now, uint8_t *buf, size_t len,
                        const es_addr_pair_t *addr)
{
    es_rtc_server_t *rtc = user;
    session_t *s = NULL;
    /* STUN goes by ufrag (a check may come from a new pair, or for a new session from an old
     * 5-tuple); everything else by 5-tuple. */
    if (len && buf[0] <= 3) {
        char ufrag[ES_ICE_UFRAG_MAX + 1];
        if (es_stun_peek_ufrag(buf, len, ufrag, sizeof ufrag) > 0) s = ufrag_find(rtc, ufrag);
    }
    if (!s) s = tuple_find(rtc, addr);
    if (!s || s->closing) {
        rtc->unknown_datagrams++;
        if (now - rtc->last_unknown_log_us > 10000000) {
            rtc->last_unknown_log_us = now;
            char from[64];
            es_addr_format((const struct sockaddr *)&addr->remote, from, sizeof from);
            es_log_ctx_t lc = {.remote = from};
            ES_DEBUG("rtc", &lc, "datagram from an unknown address or ufrag dropped (%llu so far)",
                     (unsigned long long)rtc->unknown_datagrams);
        }
        return;
    }
    es_rtc_session_handle_datagram(s->rs, now, buf, len, addr);
    session_after(rtc, s, now);
}

/* --- candidates --- */

static void add_candidate(es_rtc_server_t *rtc, const char *ip)
{
    if (rtc->n_cand >= MAX_CANDIDATES) return;
    for (size_t i = 0; i < rtc->n_cand; i++)
        if (!strcmp(rtc->cand_ip[i], ip)) return;
    snprintf(rtc->cand_ip[rtc->n_cand++], sizeof rtc->cand_ip[0], "%s", ip);
}

/* Interface addresses for "*": IPv4 (and global IPv6 when bound to ::), loopback only when
 * the machine has nothing else. */
static void discover_candidates(es_rtc_server_t *rtc, int family)
{
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0) return;
    for (int pass = 0; pass < 2 && rtc->n_cand == 0; pass++) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
            if (!i->ifa_addr || !(i->ifa_flags & IFF_UP)) continue;
            bool loop = (i->ifa_flags & IFF_LOOPBACK) != 0;
            if (loop != (pass == 1)) continue;
            char ip[INET6_ADDRSTRLEN];
            if (i->ifa_addr->sa_family == AF_INET) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip, sizeof ip);
                add_candidate(rtc, ip);
            } else if (i->ifa_addr->sa_family == AF_INET6 && family == AF_INET6) {
                struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
                if (IN6_IS_ADDR_LINKLOCAL(a)) continue;
                inet_ntop(AF_INET6, a, ip, sizeof ip);
                add_candidate(rtc, ip);
            }
        }
    }
    freeifaddrs(ifs);
}

static void resolve_candidates(es_rtc_server_t *rtc)
{
    const es_config_t *cfg = rtc->srv->cfg;
    const es_listen_t *l = &cfg->webrtc.udp_listen;
    bool wildcard = !strcmp(l->host, "0.0.0.0") || !strcmp(l->host, "::");
    for (size_t i = 0; i < cfg->webrtc.n_candidates; i++) {
        const char *c = cfg->webrtc.candidates[i];
        if (!strcmp(c, "*")) {
            if (wildcard) discover_candidates(rtc, l->addr.ss_family);
            else add_candidate(rtc, l->host);
            continue;
        }
        struct in6_addr a6;
        struct in_addr a4;
        if (inet_pton(AF_INET, c, &a4) == 1 || inet_pton(AF_INET6, c, &a6) == 1) {
            add_candidate(rtc, c);
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
        add_candidate(rtc, ip);
    }
    if (rtc->n_cand == 0) add_candidate(rtc, "127.0.0.1");
}

static void candidate_list(const es_rtc_server_t *rtc, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < rtc->n_cand; i++) {
        size_t u = strlen(out);
        snprintf(out + u, len - u, "%s%s", i ? ", " : "", rtc->cand_ip[i]);
    }
}

/* --- start / stop --- */

int es_rtc_server_start(es_server_t *srv, es_rtc_server_t **out)
{
    es_rtc_server_t *rtc = calloc(1, sizeof *rtc);
    *out = rtc;
    if (!rtc) return ES_ENOMEM;
    rtc->srv = srv;
    const es_config_t *cfg = srv->cfg;
    char err[256];
    if (es_srtp_global_init() != 0) {
        ES_ERROR("rtc", NULL, "libsrtp2 initialisation failed");
        return ES_EIO;
    }
    if (cfg->webrtc.dtls_cert && *cfg->webrtc.dtls_cert)
        rtc->cert = es_dtls_cert_load(cfg->webrtc.dtls_cert, cfg->webrtc.dtls_key, err, sizeof err);
    else
        rtc->cert = es_dtls_cert_generate(err, sizeof err);
    if (!rtc->cert) {
        ES_ERROR("rtc", NULL, "webrtc.dtls_cert: %s", err);
        return ES_EIO;
    }
    if (cfg->webrtc.tcp_listen.enabled)
        ES_WARN("rtc", NULL, "webrtc.tcp_listen (%s): ICE-TCP is not implemented yet; ignored",
                cfg->webrtc.tcp_listen.text);
    if (!cfg->webrtc.udp_listen.enabled) {
        ES_INFO("rtc", NULL, "webrtc.udp_listen is empty: WebRTC is off");
        return 0;
    }
    if (es_udp_open(srv->loop, &cfg->webrtc.udp_listen, on_datagram, rtc, &rtc->udp, err,
                    sizeof err) != 0) {
        ES_ERROR("rtc", NULL, "webrtc.udp_listen: %s", err);
        return ES_EIO;
    }
    rtc->port = es_udp_port(rtc->udp);
    resolve_candidates(rtc);
    char list[600];
    candidate_list(rtc, list, sizeof list);
    ES_INFO("rtc", NULL, "WebRTC on udp %s (port %d), host candidates: %s; DTLS fingerprint "
            "sha-256 %s", cfg->webrtc.udp_listen.text, rtc->port, list,
            es_dtls_cert_fingerprint(rtc->cert));
    return 0;
}

void es_rtc_server_apply_config(es_rtc_server_t *rtc)
{
    if (!rtc || !rtc->udp) return;
    rtc->n_cand = 0;
    resolve_candidates(rtc);
    char list[600];
    candidate_list(rtc, list, sizeof list);
    ES_INFO("rtc", NULL, "host candidates for new sessions: %s", list);
}

void es_rtc_server_stop(es_rtc_server_t *rtc)
{
    if (!rtc || rtc->stopping) return;
    rtc->stopping = true;
    while (rtc->sessions) session_end(rtc, rtc->sessions, "server shutting down");
    if (rtc->udp) es_udp_close(rtc->udp);
    rtc->udp = NULL;
}

void es_rtc_server_free(es_rtc_server_t *rtc)
{
    if (!rtc) return;
    es_dtls_cert_free(rtc->cert);
    free(rtc);
}

int es_rtc_server_port(const es_rtc_server_t *rtc) { return rtc ? rtc->port : 0; }

/* --- offers --- */

static const char *EXT_MID = "urn:ietf:params:rtp-hdrext:sdes:mid";
static const char *EXT_AST = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
static const char *EXT_TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
static const char *EXT_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
static const char *EXT_ORIENT = "urn:3gpp:video-orientation";
static const char *EXT_PLAYOUT = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";

static es_ext_ids_t ext_ids(const es_sdp_answer_media_t *m)
{
    es_ext_ids_t e = {0};
    for (size_t i = 0; i < m->n_extmaps; i++) {
        const char *u = m->extmaps[i].uri;
        uint8_t id = m->extmaps[i].id;
        if (!strcmp(u, EXT_MID)) e.mid = id;
        else if (!strcmp(u, EXT_AST)) e.abs_send_time = id;
        else if (!strcmp(u, EXT_TWCC)) e.transport_cc = id;
        else if (!strcmp(u, EXT_LEVEL)) e.audio_level = id;
        else if (!strcmp(u, EXT_ORIENT)) e.video_orientation = id;
        else if (!strcmp(u, EXT_PLAYOUT)) e.playout_delay = id;
    }
    return e;
}

/* The negotiated track of answer section m (for offer section om). */
static es_track_info_t track_from_answer(const es_sdp_answer_media_t *m, const es_sdp_media_t *om)
{
    es_track_info_t t = {.kind = m->kind, .rtx_pt = -1};
    t.codec = m->codecs[0];
    for (size_t i = 1; i < m->n_codecs; i++)
        if (m->codecs[i].codec == ES_CODEC_RTX && m->codecs[i].apt == t.codec.pt)
            t.rtx_pt = m->codecs[i].pt;
    snprintf(t.mid, sizeof t.mid, "%s", m->mid);
    t.ext = ext_ids(m);
    t.nack = t.codec.fb_nack;
    t.pli = t.codec.fb_pli;
    t.fir = t.codec.fb_fir;
    t.transport_cc = t.codec.fb_transport_cc && t.ext.transport_cc;
    t.remb = t.codec.fb_remb;
    if (om) {
        t.ssrc = om->ssrc;
        t.rtx_ssrc = om->rtx_ssrc;
    }
    return t;
}

static void set_result(es_rtc_result_t *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_result(es_rtc_result_t *res, int status, const char *fmt, ...)
{
    res->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof res->error, fmt, ap);
    va_end(ap);
}

/* Host candidates for the answer: the eip override, or the configured ones. */
static void fill_candidates(es_rtc_server_t *rtc, const char *eip, es_sdp_answer_t *ans)
{
    char ips[MAX_CANDIDATES][64];
    int ports[MAX_CANDIDATES];
    size_t n = 0;
    if (eip && *eip) {
        char host[64];
        snprintf(host, sizeof host, "%s", eip);
        int port = rtc->port;
        char *colon = strrchr(host, ':');
        if (colon && strchr(host, ':') == colon) { /* IPv4:PORT (one colon) */
            *colon = '\0';
            int p = atoi(colon + 1);
            if (p > 0 && p < 65536) port = p;
        }
        snprintf(ips[0], sizeof ips[0], "%s", host);
        ports[0] = port;
        n = 1;
    } else {
        for (size_t i = 0; i < rtc->n_cand; i++) {
            snprintf(ips[n], sizeof ips[n], "%s", rtc->cand_ip[i]);
            ports[n++] = rtc->port;
        }
    }
    ans->n_candidates = 0;
    for (size_t i = 0; i < n && i < sizeof ans->candidates / sizeof ans->candidates[0]; i++) {
        /* RFC 8445 §5.1.2.1: type preference 126 (host), local preference by order. */
        uint32_t prio = (126u << 24) | ((uint32_t)(65535 - i) << 8) | 255u;
        snprintf(ans->candidates[ans->n_candidates++], sizeof ans->candidates[0],
                 "%zu 1 udp %u %.45s %d typ host generation 0", i + 1, prio, ips[i], ports[i]);
    }
}

static bool valid_eip(const char *eip)
{
    if (!eip || !*eip) return true;
    char host[64];
    if (strlen(eip) >= sizeof host) return false;
    snprintf(host, sizeof host, "%s", eip);
    char *colon = strrchr(host, ':');
    struct in_addr a4;
    struct in6_addr a6;
    if (colon && strchr(host, ':') == colon) {
        *colon = '\0';
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p < 1 || p > 65535) return false;
    }
    return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

/* Caps for a publisher: every codec Estuary forwards, in the order the offer lists them (the
 * client's preference: the publish page sets it with setCodecPreferences). */
static void publish_caps(const es_sdp_t *offer, const es_config_t *cfg, es_sdp_caps_t caps[2])
{
    memset(caps, 0, 2 * sizeof caps[0]);
    for (int k = 0; k < 2; k++) {
        caps[k].rtx = caps[k].nack = cfg->webrtc.nack;
        caps[k].pli = caps[k].fir = true;
        caps[k].transport_cc = cfg->webrtc.twcc;
        caps[k].remb = cfg->webrtc.remb;
    }
    for (size_t i = 0; i < offer->n_media; i++) {
        const es_sdp_media_t *m = &offer->media[i];
        if (m->kind != ES_MEDIA_AUDIO && m->kind != ES_MEDIA_VIDEO) continue;
        es_sdp_caps_t *c = &caps[m->kind];
        for (size_t j = 0; j < m->n_codecs && c->n_codecs < 4; j++) {
            es_codec_t codec = m->codecs[j].codec;
            bool ok = m->kind == ES_MEDIA_AUDIO ? codec == ES_CODEC_OPUS
                                                 : es_codec_is_video(codec);
            if (codec == ES_CODEC_H264 && m->codecs[j].h264_packetization_mode != 1) ok = false;
            for (size_t k = 0; ok && k < c->n_codecs; k++)
                if (c->codecs[k].codec == codec) ok = false;
            if (ok) c->codecs[c->n_codecs++] = m->codecs[j];
        }
    }
}

static const char *codec_list(const es_sdp_answer_t *ans, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < ans->n_media; i++) {
        if (ans->media[i].rejected || !ans->media[i].n_codecs) continue;
        size_t u = strlen(out);
        snprintf(out + u, len - u, "%s%s", u ? ", " : "", es_codec_name(ans->media[i].codecs[0].codec));
    }
    return out;
}

void es_rtc_offer(es_rtc_server_t *rtc, es_rtc_role_t role, const char *app, const char *stream,
                  const char *sdp, size_t len, const char *eip, const char *remote,
                  es_rtc_result_t *res)
{
    memset(res, 0, sizeof *res);
    es_server_t *srv = rtc->srv;
    const es_config_t *cfg = srv->cfg;
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", app, stream);
    es_log_ctx_t lc = {.stream = key, .remote = remote};
    if (!rtc->udp || rtc->stopping) {
        set_result(res, 503, "WebRTC is off (webrtc.udp_listen is empty) or shutting down");
        return;
    }
    if (!es_registry_valid_name(app, ES_APP_NAME_MAX) ||
        !es_registry_valid_name(stream, ES_STREAM_NAME_MAX)) {
        set_result(res, 400, "bad app or stream name '%s': use 1-64/1-128 letters, digits, '_', "
                   "'-', '.'", key);
        return;
    }
    if (!valid_eip(eip)) {
        set_result(res, 400, "eip must be IP or IP:PORT, not '%s'", eip);
        return;
    }
    if (srv->sessions >= cfg->limits.max_sessions) {
        set_result(res, 503, "at capacity: limits.max_sessions is %u", cfg->limits.max_sessions);
        return;
    }
    es_sdp_t *offer = calloc(1, sizeof *offer);
    es_sdp_answer_t *ans = calloc(1, sizeof *ans);
    char *text = malloc(16384);
    session_t *s = calloc(1, sizeof *s);
    char err[400];
    if (!offer || !ans || !text || !s) {
        set_result(res, 503, "out of memory");
        goto out;
    }
    if (es_sdp_parse(sdp, len, offer, err, sizeof err) != 0 ||
        es_sdp_check_webrtc(offer, err, sizeof err) != 0) {
        set_result(res, 400, "bad SDP offer: %s", err);
        goto out;
    }
    es_stream_t *st = es_registry_find(srv->registry, app, stream);
    es_media_stream_t *ms = st ? st->media : NULL;
    es_sdp_caps_t caps[2];
    if (role == ES_RTC_PUBLISH) {
        if (st && st->source != ES_SOURCE_NONE) {
            set_result(res, 409, "stream %s is already being published (over %s)", key,
                       st->source == ES_SOURCE_RTMP ? "RTMP" : "WebRTC");
            goto out;
        }
        publish_caps(offer, cfg, caps);
    } else {
        if (!ms || !es_media_stream_has_source(ms)) {
            if (st && st->source == ES_SOURCE_RTMP)
                set_result(res, 404, "stream %s is published over RTMP but not available to WebRTC "
                           "players: %s", key, !es_config_find_app(cfg, app) ||
                           !es_config_find_app(cfg, app)->rtmp_to_rtc
                           ? "apps.<app>.rtmp_to_rtc is off"
                           : "no H.264 video or AAC audio has arrived yet");
            else
                set_result(res, 404, "stream %s is not being published", key);
            goto out;
        }
        memset(caps, 0, sizeof caps);
        es_track_info_t tr[ES_STREAM_MAX_TRACKS];
        size_t n = es_media_stream_source_tracks(ms, tr, ES_STREAM_MAX_TRACKS);
        for (size_t i = 0; i < n; i++) {
            es_sdp_caps_t *c = &caps[tr[i].kind == ES_MEDIA_AUDIO ? 0 : 1];
            if (c->n_codecs < 4) c->codecs[c->n_codecs++] = tr[i].codec;
            c->nack = cfg->webrtc.nack;
            c->pli = c->fir = true;
        }
    }
    int accepted = es_sdp_answer_init(offer, role == ES_RTC_PUBLISH, caps, ans, err, sizeof err);
    if (accepted <= 0) {
        set_result(res, 406, "%s", err[0] ? err : "no audio or video codec in common");
        goto out;
    }
    /* Identity and credentials. */
    es_random_text(s->id, ES_RTC_ID_LEN, HEX);
    es_random_text(s->ufrag, 8, ALNUM);
    es_random_text(s->pwd, 24, ALNUM);
    snprintf(s->etag, sizeof s->etag, "\"%s\"", s->ufrag);
    int tidx = es_sdp_answer_transport(ans);
    if (tidx < 0 || (size_t)tidx >= offer->n_media) {
        set_result(res, 400, "bad SDP offer: no audio or video section to answer");
        goto out;
    }
    /* The client's transport is the one of the first accepted section (RFC 9143 §7.3.1):
     * aiortc gives each section its own credentials. */
    const es_sdp_media_t *first = &offer->media[tidx];
    snprintf(s->remote_ufrag, sizeof s->remote_ufrag, "%s", first->ice_ufrag);
    ans->session_id = ((uint64_t)es_random32() << 20) ^ es_random32();
    snprintf(ans->ice_ufrag, sizeof ans->ice_ufrag, "%s", s->ufrag);
    snprintf(ans->ice_pwd, sizeof ans->ice_pwd, "%s", s->pwd);
    snprintf(ans->fingerprint, sizeof ans->fingerprint, "%s", es_dtls_cert_fingerprint(rtc->cert));
    snprintf(ans->cname, sizeof ans->cname, "estuary-%s", s->id);
    snprintf(ans->msid_stream, sizeof ans->msid_stream, "%s", stream);
    fill_candidates(rtc, eip, ans);
    /* Tracks. */
    es_track_info_t tracks[ES_STREAM_MAX_TRACKS];
    size_t n_tracks = 0;
    for (size_t i = 0; i < ans->n_media && n_tracks < ES_STREAM_MAX_TRACKS; i++) {
        es_sdp_answer_media_t *m = &ans->media[i];
        if (m->rejected || !m->n_codecs || m->dir == ES_DIR_INACTIVE) continue;
        if (role == ES_RTC_PLAY) m->ssrc = es_random32();
        tracks[n_tracks] = track_from_answer(m, role == ES_RTC_PUBLISH ? &offer->media[i] : NULL);
        if (role == ES_RTC_PLAY) tracks[n_tracks].ssrc = m->ssrc;
        n_tracks++;
    }
    if (!n_tracks) {
        set_result(res, 406, "no audio or video track to %s in the offer (check the directions: "
                   "WHIP offers sendonly, WHEP recvonly)", role == ES_RTC_PUBLISH ? "receive" : "send");
        goto out;
    }
    int n = es_sdp_answer_write(ans, text, 16384);
    if (n < 0) {
        set_result(res, 500, "answer too large");
        goto out;
    }
    codec_list(ans, s->codecs, sizeof s->codecs);
    /* The stream. */
    uint64_t now = es_clock_now_us();
    if (!st) {
        if (es_live_open(srv->registry, app, stream, now, &st) != 0) {
            set_result(res, 503, "out of memory");
            goto out;
        }
        ms = st->media;
    }
    s->rtc = rtc;
    s->role = role;
    s->ms = ms;
    s->created_us = now;
    snprintf(s->app, sizeof s->app, "%s", app);
    snprintf(s->stream_name, sizeof s->stream_name, "%s", stream);
    snprintf(s->key, sizeof s->key, "%s", key);
    snprintf(s->http_remote, sizeof s->http_remote, "%s", remote ? remote : "");
    uint32_t timeout = role == ES_RTC_PUBLISH ? cfg->webrtc.publisher_timeout_ms
                                              : cfg->webrtc.player_timeout_ms;
    es_rtc_session_params_t pp = {
        .local_ufrag = s->ufrag, .local_pwd = s->pwd, .remote_ufrag = s->remote_ufrag,
        .ice_controlling = false, /* ICE-lite answerer */
        .cert = rtc->cert, .fingerprint_alg = first->fingerprint_alg,
        .fingerprint = first->fingerprint, .fingerprint_len = first->fingerprint_len,
        .dtls_role = ans->setup == ES_SETUP_ACTIVE ? ES_DTLS_ROLE_CLIENT : ES_DTLS_ROLE_SERVER,
        .connect_timeout_ms = cfg->webrtc.dtls_timeout_ms, .consent_timeout_ms = timeout,
        .now_us = now,
        .cb = {.send = rs_send, .on_rtp = rs_rtp, .on_rtcp = rs_rtcp, .on_pair = rs_pair,
               .on_selected = rs_selected, .on_state = rs_state},
        .user = s,
    };
    s->rs = es_rtc_session_new(&pp);
    es_media_io_t io = {.send_rtp = io_send_rtp, .send_rtcp = io_send_rtcp, .user = s};
    int rc = ES_ENOMEM;
    if (s->rs) {
        if (role == ES_RTC_PUBLISH) rc = es_media_stream_set_source(ms, tracks, n_tracks, io, now);
        else rc = (s->sink = es_media_stream_add_sink(ms, tracks, n_tracks, io, now)) ? 0 : ES_ENOMEM;
    }
    if (rc != 0) {
        es_rtc_session_free(s->rs);
        s->ms = NULL;
        es_live_release(srv->registry, st);
        set_result(res, 503, "cannot create the session: %s", es_strerror(rc));
        goto out;
    }
    uv_timer_init(srv->loop, &s->timer);
    s->timer.data = s;
    if (role == ES_RTC_PUBLISH) st->source = ES_SOURCE_WEBRTC;
    s->next = rtc->sessions;
    if (rtc->sessions) rtc->sessions->prev = s;
    rtc->sessions = s;
    ufrag_add(rtc, s);
    srv->sessions++;
    session_after(rtc, s, now);
    res->status = 201;
    res->sdp = text;
    text = NULL;
    snprintf(res->id, sizeof res->id, "%s", s->id);
    snprintf(res->etag, sizeof res->etag, "%s", s->etag);
    lc = sctx(s);
    ES_INFO("rtc", &lc, "%s offer accepted: %s; answer candidates %s%s, DTLS %s",
            role_name(role), s->codecs, ans->n_candidates ? ans->candidates[0] : "none",
            ans->n_candidates > 1 ? " and more" : "",
            ans->setup == ES_SETUP_ACTIVE ? "active (client)" : "passive (server)");
    s = NULL;
out:
    if (res->status != 201) {
        ES_INFO("rtc", &lc, "%s offer refused (%d): %s", role_name(role), res->status, res->error);
    }
    free(s);
    free(offer);
    free(ans);
    free(text);
}

void es_rtc_patch(es_rtc_server_t *rtc, const char *id, const char *if_match, const char *body,
                  size_t len, es_rtc_result_t *res)
{
    memset(res, 0, sizeof *res);
    session_t *s = session_find(rtc, id);
    if (!s || s->closing) {
        set_result(res, 404, "no session %s", id);
        return;
    }
    if (if_match && *if_match && strcmp(if_match, "*") && strcmp(if_match, s->etag)) {
        set_result(res, 412, "If-Match %s does not match the session's ETag %s", if_match, s->etag);
        return;
    }
    es_sdp_t *frag = calloc(1, sizeof *frag);
    char err[300];
    if (!frag) {
        set_result(res, 503, "out of memory");
        return;
    }
    if (es_sdp_parse_fragment(body, len, frag, err, sizeof err) != 0) {
        set_result(res, 400, "bad trickle-ice-sdpfrag: %s", err);
        free(frag);
        return;
    }
    const char *ufrag = frag->n_media ? frag->media[0].ice_ufrag : "";
    const char *pwd = frag->n_media ? frag->media[0].ice_pwd : "";
    es_log_ctx_t lc = sctx(s);
    snprintf(res->id, sizeof res->id, "%s", s->id);
    if (ufrag[0] && strcmp(ufrag, s->remote_ufrag) != 0) {
        /* ICE restart (RFC 9725 §4.4.2): new credentials on both sides. */
        if (!pwd[0]) {
            set_result(res, 400, "ICE restart without a=ice-pwd");
            free(frag);
            return;
        }
        char nu[16], np[40];
        es_random_text(nu, 8, ALNUM);
        es_random_text(np, 24, ALNUM);
        if (es_rtc_session_restart_ice(s->rs, nu, np, ufrag, pwd, es_clock_now_us()) != 0) {
            set_result(res, 400, "bad ICE credentials in the fragment");
            free(frag);
            return;
        }
        ufrag_remove(rtc, s);
        snprintf(s->ufrag, sizeof s->ufrag, "%s", nu);
        snprintf(s->pwd, sizeof s->pwd, "%s", np);
        snprintf(s->remote_ufrag, sizeof s->remote_ufrag, "%s", ufrag);
        snprintf(s->etag, sizeof s->etag, "\"%s\"", s->ufrag);
        ufrag_add(rtc, s);
        char *out = malloc(1024);
        if (!out) {
            set_result(res, 503, "out of memory");
            free(frag);
            return;
        }
        es_sdp_answer_t *tmp = calloc(1, sizeof *tmp);
        size_t u = (size_t)snprintf(out, 1024, "a=ice-lite\r\na=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", nu, np);
        if (tmp) {
            fill_candidates(rtc, NULL, tmp);
            for (size_t i = 0; i < tmp->n_candidates && u < 900; i++)
                u += (size_t)snprintf(out + u, 1024 - u, "a=candidate:%s\r\n", tmp->candidates[i]);
            free(tmp);
        }
        snprintf(out + u, 1024 - u, "a=end-of-candidates\r\n");
        res->status = 200;
        res->sdp = out;
        snprintf(res->etag, sizeof res->etag, "%s", s->etag);
        ES_INFO("rtc", &lc, "ICE restart: new remote ufrag %s", ufrag);
    } else {
        res->status = 204;
        snprintf(res->etag, sizeof res->etag, "%s", s->etag);
        ES_DEBUG("rtc", &lc, "trickle: %zu candidates (ICE-lite answers checks from any of them)",
                 frag->n_candidates);
    }
    free(frag);
}

int es_rtc_delete(es_rtc_server_t *rtc, const char *id, const char *why)
{
    session_t *s = session_find(rtc, id);
    if (!s) return ES_ENOENT;
    session_end(rtc, s, why);
    return 0;
}

static json_t *session_json(const session_t *s, uint64_t now)
{
    es_rtc_session_stats_t ps = es_rtc_session_stats(s->rs);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "id", s->id,
        "protocol", "webrtc", "role",
        role_name(s->role), "app", s->app, "stream", s->stream_name, "state",
        s->closing ? "closing" : es_rtc_session_state_name(es_rtc_session_state(s->rs)), "remote",
        s->media_remote[0] ? s->media_remote : "", "http_remote", s->http_remote, "codecs",
        s->codecs, "age_ms", (json_int_t)((now - s->created_us) / 1000), "bytes_in",
        (json_int_t)ps.rx_bytes, "bytes_out", (json_int_t)ps.tx_bytes, "packets_in",
        (json_int_t)ps.rx_packets, "packets_out", (json_int_t)ps.tx_packets);
    if (!o) return NULL;
    if (s->sink) {
        es_media_sink_stats_t ss = es_media_sink_stats(s->sink);
        json_object_set_new(o, "nacks", json_integer((json_int_t)ss.nacks));
        json_object_set_new(o, "retransmits", json_integer((json_int_t)ss.retransmits));
        json_object_set_new(o, "plis", json_integer((json_int_t)ss.plis));
        json_object_set_new(o, "rtt_ms", ss.rtt_us >= 0 ? json_real((double)ss.rtt_us / 1000.0)
                                                         : json_null());
    } else if (s->ms) {
        es_media_source_stats_t ss = es_media_stream_source_stats(s->ms);
        json_object_set_new(o, "nacks", json_integer((json_int_t)ss.nacks_sent));
        json_object_set_new(o, "packets_lost", json_integer((json_int_t)ss.lost));
        json_object_set_new(o, "rtt_ms", json_null());
    }
    if (s->connected_us)
        json_object_set_new(o, "connect_ms",
                            json_real((double)(s->connected_us - s->created_us) / 1000.0));
    return o;
}

json_t *es_rtc_sessions_json(es_rtc_server_t *rtc)
{
    json_t *arr = json_array();
    uint64_t now = es_clock_now_us();
    for (session_t *s = rtc ? rtc->sessions : NULL; s && arr; s = s->next)
        if (!s->closing) json_array_append_new(arr, session_json(s, now));
    return arr;
}

json_t *es_rtc_session_json(es_rtc_server_t *rtc, const char *id)
{
    session_t *s = rtc ? session_find(rtc, id) : NULL;
    return s && !s->closing ? session_json(s, es_clock_now_us()) : NULL;
}
