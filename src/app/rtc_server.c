/* WebRTC sessions of the daemon, the application side (include/estuary/rtc_server.h): offer and
 * answer for WHIP and WHEP (SDP), admission (media/admission), stream attachment (the source or a
 * sink of the stream's media fan-out) and the session table of the API. The transport (the UDP
 * port, routing, timers) is src/net/rtc_transport.c; the protocol is the sans-IO session
 * (src/webrtc/session.c). */
#include "estuary/rtc_server.h"

#include "estuary/admission.h"
#include "estuary/clock.h"
#include "estuary/dtls.h"
#include "estuary/error.h"
#include "estuary/hooks.h"
#include "estuary/ice.h"
#include "estuary/live.h"
#include "estuary/log.h"
#include "estuary/random.h"
#include "estuary/rtc_transport.h"
#include "estuary/sdp.h"
#include "estuary/srtp.h"
#include "estuary/stream.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEDIA_TICK_US 10000 /* a publisher's media stream timers: NACK, transport-cc, RR */
#define TIMELINE_MAX 24     /* events a session keeps for the API (the doctor reads them) */
#define SDP_TEXT_MAX 32768  /* our answers and offers: up to 24 candidates in each of 8 sections */
#define ENDED_MAX 32        /* ended sessions whose last view the API still answers */
#define ENDED_KEEP_US (300ull * 1000000) /* ...for at most this long */

typedef struct session session_t;

/* What happened to a session, in order: the offer, each new pair and the address it came from,
 * where media went, DTLS, the first RTP each way, the end. */
typedef struct timeline_event {
    uint32_t t_ms;                 /* since the offer */
    char what[160];                /* room for two bracketed IPv6 addresses with ports */
} timeline_event_t;

/* An ended session: its last API view, kept for the doctor and operators. */
typedef struct ended_session {
    char id[ES_RTC_ID_LEN + 1];
    char secret[ES_RTC_SECRET_LEN + 1];
    es_rtc_role_t role;
    char app[ES_APP_NAME_MAX + 1], stream_name[ES_STREAM_NAME_MAX + 1];
    uint64_t ended_us;
    json_t *json;                  /* NULL: a free slot */
} ended_session_t;

struct es_rtc_server {
    es_server_t *srv;
    es_rtc_transport_t *transport;
    es_dtls_cert_t *cert;
    session_t *sessions;           /* all, newest first */
    ended_session_t ended[ENDED_MAX];
    size_t ended_next;
    bool stopping;
};

struct session {
    es_rtc_server_t *rtc;
    char id[ES_RTC_ID_LEN + 1];
    es_rtc_role_t role;
    es_protocol_t protocol;        /* the signaling: WHIP/WHEP or a WebSocket */
    bool counted;                  /* the signaling connection counts as the session */
    void (*on_closed)(void *user, const char *reason); /* the signaling's owner, or NULL */
    void *owner;
    char app[ES_APP_NAME_MAX + 1], stream_name[ES_STREAM_NAME_MAX + 1];
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    char http_remote[64];
    char media_remote[64];
    char ufrag[16], pwd[40], remote_ufrag[ES_ICE_UFRAG_MAX + 1];
    char etag[40];
    char secret[ES_RTC_SECRET_LEN + 1]; /* in the resource URL only: PATCH and DELETE need it */
    es_rtc_link_t *link;
    es_media_stream_t *ms;
    es_media_sink_t *sink;
    uint64_t created_us, connected_us;
    char codecs[96];               /* "opus, H264" for logs and the API */
    es_rtc_port_t *own_port;       /* a relay's socket (es_rtc_port_open) until its link has it */
    uint64_t selected_log_us;      /* "media to" lines: a bucket of 5 (refilled at this time) */
    unsigned selected_tokens;
    unsigned selected_unlogged;    /* changes not logged since the last line */
    timeline_event_t timeline[TIMELINE_MAX];
    size_t n_timeline;
    unsigned timeline_dropped;     /* events past TIMELINE_MAX */
    bool rtp_in, rtp_out;          /* the first RTP each way is on the timeline */
    bool congested;                /* ICE-TCP: media is being dropped to the next key frame */
    char candidates[600];          /* ours as offered: "udp 192.0.2.1:8000, tcp 192.0.2.1:8000" */
    uint64_t tcp_drops;            /* RTP packets not sent: the TCP connection fell behind */
    session_t *next, *prev;
};

static json_t *session_json(const session_t *s, uint64_t now);

static void timeline_add(session_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void timeline_add(session_t *s, const char *fmt, ...)
{
    if (s->n_timeline >= TIMELINE_MAX) {
        s->timeline_dropped++;
        return;
    }
    timeline_event_t *e = &s->timeline[s->n_timeline++];
    uint64_t now = es_clock_now_us();
    e->t_ms = (uint32_t)((now - s->created_us) / 1000);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->what, sizeof e->what, fmt, ap);
    va_end(ap);
}

static const char *pair_transport(const es_addr_pair_t *a)
{
    return a->transport == ES_ADDR_TCP ? "tcp" : "udp";
}

/* Keeps the ended session's last view (with its end) for GET /api/v1/sessions/{id}. */
static void ended_keep(es_rtc_server_t *rtc, const session_t *s, const char *reason, uint64_t now)
{
    json_t *o = session_json(s, now);
    if (!o) return;
    json_object_set_new(o, "state", json_string("ended"));
    json_object_set_new(o, "ended_reason", json_string(reason));
    json_t *tl = json_object_get(o, "timeline");
    if (tl)
        json_array_append_new(tl, json_pack("{s:I, s:s+}", "t_ms",
                                            (json_int_t)((now - s->created_us) / 1000), "event",
                                            "ended: ", reason));
    ended_session_t *e = &rtc->ended[rtc->ended_next];
    rtc->ended_next = (rtc->ended_next + 1) % ENDED_MAX;
    json_decref(e->json);
    snprintf(e->id, sizeof e->id, "%s", s->id);
    snprintf(e->secret, sizeof e->secret, "%s", s->secret);
    e->role = s->role;
    snprintf(e->app, sizeof e->app, "%s", s->app);
    snprintf(e->stream_name, sizeof e->stream_name, "%s", s->stream_name);
    e->ended_us = now;
    e->json = o;
}

static ended_session_t *ended_find(es_rtc_server_t *rtc, const char *id)
{
    uint64_t now = es_clock_now_us();
    for (size_t i = 0; i < ENDED_MAX; i++) {
        ended_session_t *e = &rtc->ended[i];
        if (e->json && !strcmp(e->id, id) && now - e->ended_us < ENDED_KEEP_US) return e;
    }
    return NULL;
}

static es_log_ctx_t sctx(const session_t *s)
{
    return (es_log_ctx_t){.peer = s->id, .stream = s->key,
                          .remote = s->media_remote[0] ? s->media_remote : s->http_remote};
}

static const char *role_name(es_rtc_role_t r) { return r == ES_RTC_PUBLISH ? "publisher" : "player"; }

static session_t *session_find(es_rtc_server_t *rtc, const char *id)
{
    for (session_t *s = rtc->sessions; s; s = s->next)
        if (!strcmp(s->id, id)) return s;
    return NULL;
}

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

/* The link is going away (closed by either side, failed, or ended by us): detach from the
 * stream and forget the session. */
static void link_closed(void *user, const char *reason)
{
    session_t *s = user;
    es_rtc_server_t *rtc = s->rtc;
    es_log_ctx_t lc = sctx(s);
    es_rtc_session_stats_t ps = es_rtc_session_stats(es_rtc_link_session(s->link));
    uint64_t now = es_clock_now_us();
    ES_INFO("rtc", &lc, "%s session closed after %.1f s: %s (in %llu bytes, out %llu bytes, "
            "%llu datagrams dropped)", role_name(s->role), (double)(now - s->created_us) / 1e6,
            reason, (unsigned long long)ps.rx_bytes, (unsigned long long)ps.tx_bytes,
            (unsigned long long)ps.dropped);
    if (!rtc->stopping) ended_keep(rtc, s, reason, now);
    if (s->prev) s->prev->next = s->next;
    else rtc->sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    if (s->ms) {
        if (s->role == ES_RTC_PUBLISH) es_media_stream_remove_source(s->ms, now);
        else if (s->sink) es_media_stream_remove_sink(s->ms, s->sink);
        stream_release(rtc, s);
    }
    if (!s->counted) es_server_session_close(rtc->srv, s->http_remote);
    if (s->on_closed) s->on_closed(s->owner, reason);
    es_admit_end(rtc->srv, s->protocol,
                 s->role == ES_RTC_PUBLISH ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY, s->app,
                 s->stream_name, s->http_remote, s->id);
    free(s);
}

/* --- link callbacks --- */

static void link_rtp(void *user, uint64_t now, uint8_t *buf, size_t len)
{
    session_t *s = user;
    if (!s->rtp_in) {
        s->rtp_in = true;
        timeline_add(s, "first RTP in");
    }
    if (s->role == ES_RTC_PUBLISH) es_media_stream_source_rtp(s->ms, now, buf, len);
}

static void link_rtcp(void *user, uint64_t now, uint8_t *buf, size_t len)
{
    session_t *s = user;
    if (s->role == ES_RTC_PUBLISH) es_media_stream_source_rtcp(s->ms, now, buf, len);
    else if (s->sink) es_media_sink_rtcp(s->sink, now, buf, len);
}

static void link_tick(void *user, uint64_t now)
{
    session_t *s = user;
    es_media_stream_tick(s->ms, now);
}

static void link_pair(void *user, const es_addr_pair_t *a, bool added)
{
    session_t *s = user;
    char remote[64], local[64];
    es_addr_format((const struct sockaddr *)&a->remote, remote, sizeof remote);
    es_addr_format((const struct sockaddr *)&a->local, local, sizeof local);
    es_log_ctx_t lc = sctx(s);
    ES_DEBUG("rtc", &lc, "ICE: pair %s -> %s (%s) %s after %.0f ms", remote, local,
             pair_transport(a), added ? "valid" : "dropped",
             (double)(es_clock_now_us() - s->created_us) / 1000.0);
    if (added) timeline_add(s, "check from %s to %s (%s): pair valid", remote, local, pair_transport(a));
    else timeline_add(s, "pair %s (%s) dropped", remote, pair_transport(a));
}

/* Where media goes changed. A client may flip its nomination on every check: after a burst of 5
 * lines, one a second, with the count of changes in between. */
static void link_selected(void *user, const es_addr_pair_t *a, bool nominated)
{
    session_t *s = user;
    uint64_t now = es_clock_now_us();
    char local[64] = "";
    if (a) {
        es_addr_format((const struct sockaddr *)&a->remote, s->media_remote, sizeof s->media_remote);
        es_addr_format((const struct sockaddr *)&a->local, local, sizeof local);
    }
    if (a)
        timeline_add(s, "media to %s (%s, %s)", s->media_remote, pair_transport(a),
                     nominated ? "nominated" : "not nominated yet");
    else
        timeline_add(s, "media to %s stopped: consent lost", s->media_remote);
    if (!s->selected_log_us) { /* a token bucket: 5, refilled one a second */
        s->selected_tokens = 5;
        s->selected_log_us = now;
    }
    uint64_t secs = (now - s->selected_log_us) / 1000000;
    if (secs) {
        s->selected_tokens = s->selected_tokens + secs >= 5 ? 5 : s->selected_tokens + (unsigned)secs;
        s->selected_log_us += secs * 1000000;
    }
    if (!s->selected_tokens) {
        s->selected_unlogged++;
        return;
    }
    s->selected_tokens--;
    char more[64] = "";
    if (s->selected_unlogged)
        snprintf(more, sizeof more, "; %u earlier changes not logged", s->selected_unlogged);
    s->selected_unlogged = 0;
    es_log_ctx_t lc = sctx(s);
    if (!a)
        ES_INFO("rtc", &lc, "ICE: media to %s stopped: the pair lost consent (RFC 7675)%s",
                s->media_remote, more);
    else
        ES_INFO("rtc", &lc, "ICE: media to %s from %s (%s) after %.0f ms%s", s->media_remote, local,
                nominated ? "nominated" : "not nominated yet",
                (double)(now - s->created_us) / 1000.0, more);
}

static void link_state(void *user, es_rtc_session_state_t st, int err, const char *reason)
{
    session_t *s = user;
    es_log_ctx_t lc = sctx(s);
    uint64_t now = es_clock_now_us();
    switch (st) {
    case ES_RTC_SESSION_CONNECTING:
        timeline_add(s, "DTLS handshake started");
        break;
    case ES_RTC_SESSION_CONNECTED:
        timeline_add(s, "DTLS connected");
        s->connected_us = now;
        ES_INFO("rtc", &lc, "DTLS connected (%s) %.0f ms after the offer; %s %s",
                es_rtc_session_srtp_profile(es_rtc_link_session(s->link)) == ES_SRTP_AEAD_AES_128_GCM
                    ? "AEAD_AES_128_GCM" : "AES_CM_128_HMAC_SHA1_80",
                (double)(now - s->created_us) / 1000.0,
                s->role == ES_RTC_PUBLISH ? "publishing" : "playing", s->codecs);
        if (s->sink) es_media_sink_start(s->sink, now);
        else es_rtc_link_set_tick(s->link, MEDIA_TICK_US, now);
        break;
    case ES_RTC_SESSION_FAILED:
        timeline_add(s, "failed: %s", reason);
        ES_WARN("rtc", &lc, "session failed: %s", reason); /* the reason says why; err is a class */
        break;
    case ES_RTC_SESSION_CLOSED:
        if (err) ES_INFO("rtc", &lc, "%s", reason);
        break;
    default: break;
    }
}

/* A player's RTP. Over an ICE-TCP connection that fell behind, media is not queued: ES_EAGAIN
 * makes the stream skip this track to the next key frame (include/estuary/stream.h). */
static int io_send_rtp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    session_t *s = user;
    if (!s->link) return ES_EAGAIN;
    if (es_rtc_link_congested(s->link)) {
        s->tcp_drops++;
        if (!s->congested) {
            s->congested = true;
            timeline_add(s, "the TCP connection fell behind: media dropped to the next key frame");
            es_log_ctx_t lc = sctx(s);
            ES_INFO("rtc", &lc, "ICE-TCP connection fell behind (send queue over %d KiB): "
                    "dropping media to the next key frame", ES_TCP_QUEUE_MEDIA / 1024);
        }
        return ES_EAGAIN;
    }
    s->congested = false;
    int rc = es_rtc_session_send_rtp(es_rtc_link_session(s->link), buf, len, cap);
    if (rc == 0 && !s->rtp_out) {
        s->rtp_out = true;
        timeline_add(s, "first RTP out");
    }
    return rc;
}

_Static_assert(ES_STREAM_IO_ROOM >= ES_SRTP_MAX_TRAILER, "the stream leaves room for SRTP");

/* A batch of datagrams read: publishers' packets fan out at its end, player by player. */
static void on_rx_batch(void *user, bool begin)
{
    (void)user;
    if (begin) es_media_batch_begin();
    else es_media_batch_end();
}

const es_rtc_transport_t *es_rtc_server_transport(const es_rtc_server_t *rtc)
{
    return rtc ? rtc->transport : NULL;
}

/* Where a player's next RTP packet is written: straight into the UDP send slot. */
static uint8_t *io_rtp_buf(void *user, size_t *cap)
{
    session_t *s = user;
    return s->link ? es_rtc_link_tx_buf(s->link, cap) : NULL;
}

static int io_send_rtcp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    session_t *s = user;
    if (!s->link) return ES_EAGAIN;
    return es_rtc_session_send_rtcp(es_rtc_link_session(s->link), buf, len, cap);
}

/* --- start / stop --- */

static void fill_candidates(es_rtc_server_t *rtc, const char *eip, int port_override,
                            es_sdp_local_t *ans);

static bool is_loopback_ip(const char *ip)
{
    return !strncmp(ip, "127.", 4) || !strcmp(ip, "::1");
}

/* At start and on reload: the candidates answers will carry, and a warning when they are only
 * loopback while the server listens on other addresses (browsers elsewhere cannot connect). */
static void log_candidates(const es_rtc_server_t *rtc, const char *what)
{
    const char *const *ips;
    size_t n = es_rtc_transport_candidates(rtc->transport, &ips);
    es_sdp_local_t *l = calloc(1, sizeof *l);
    char list[900] = "";
    if (l) {
        fill_candidates((es_rtc_server_t *)rtc, NULL, 0, l);
        for (size_t i = 0, u = 0; i < l->n_candidates && u + 80 < sizeof list; i++) {
            char proto[8], ip[64];
            int port;
            if (sscanf(l->candidates[i], "%*s %*s %7s %*s %63s %d", proto, ip, &port) != 3) continue;
            u += (size_t)snprintf(list + u, sizeof list - u, "%s%s %s:%d", u ? ", " : "", proto, ip, port);
        }
        free(l);
    }
    const es_config_t *cfg = rtc->srv->cfg;
    if (!strcmp(what, "start"))
        ES_INFO("rtc", NULL, "WebRTC on udp %s%s%s, protocol %s; answers offer %s; DTLS fingerprint "
                "sha-256 %s", cfg->webrtc.udp_listen.text,
                cfg->webrtc.tcp_listen.enabled ? ", ICE-TCP on tcp " : "",
                cfg->webrtc.tcp_listen.enabled ? cfg->webrtc.tcp_listen.text : "",
                cfg->webrtc.protocol ? cfg->webrtc.protocol : "all", list,
                es_dtls_cert_fingerprint(rtc->cert));
    else
        ES_INFO("rtc", NULL, "candidates for new sessions: %s", list);
    bool only_loopback = n > 0;
    for (size_t i = 0; i < n; i++)
        if (!is_loopback_ip(ips[i])) only_loopback = false;
    if (only_loopback && !is_loopback_ip(cfg->webrtc.udp_listen.host))
        ES_WARN("rtc", NULL, "the only WebRTC candidates are loopback (%s) while WebRTC listens on %s: "
                "browsers on other machines cannot connect; set webrtc.candidates (or CANDIDATE) to "
                "an address they reach", ips[0], cfg->webrtc.udp_listen.text);
}

int es_rtc_server_start(es_server_t *srv, es_rtc_server_t **out)
{
    es_rtc_server_t *rtc = calloc(1, sizeof *rtc);
    *out = rtc;
    if (!rtc) return ES_ENOMEM;
    rtc->srv = srv;
    const es_config_t *cfg = srv->cfg;
    char err[256];
    if (es_srtp_global_init() != 0) {
        ES_ERROR("rtc", NULL, "SRTP initialisation failed (OpenSSL has no AES-128-GCM, AES-128-CTR or HMAC)");
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
    if (!cfg->webrtc.udp_listen.enabled) {
        ES_INFO("rtc", NULL, "webrtc.udp_listen is empty: WebRTC is off");
        return 0;
    }
    if (es_rtc_transport_start(srv->loop, &cfg->webrtc.udp_listen, cfg->webrtc.candidates,
                               cfg->webrtc.n_candidates, &rtc->transport, err, sizeof err) != 0) {
        ES_ERROR("rtc", NULL, "webrtc.udp_listen: %s", err);
        return ES_EIO;
    }
    es_rtc_transport_set_batch_cb(rtc->transport, on_rx_batch, NULL);
    if (cfg->webrtc.tcp_listen.enabled &&
        es_rtc_transport_listen_tcp(rtc->transport, &cfg->webrtc.tcp_listen, err, sizeof err) != 0) {
        ES_ERROR("rtc", NULL, "cannot listen on %s (webrtc.tcp_listen): %s", cfg->webrtc.tcp_listen.text, err);
        return ES_EIO;
    }
    log_candidates(rtc, "start");
    return 0;
}

void es_rtc_server_apply_config(es_rtc_server_t *rtc)
{
    if (!rtc || !rtc->transport) return;
    es_rtc_transport_set_candidates(rtc->transport, rtc->srv->cfg->webrtc.candidates,
                                    rtc->srv->cfg->webrtc.n_candidates);
    log_candidates(rtc, "reload");
}

void es_rtc_server_stop(es_rtc_server_t *rtc)
{
    if (!rtc || rtc->stopping) return;
    rtc->stopping = true;
    es_rtc_transport_stop(rtc->transport, "server shutting down");
}

void es_rtc_server_free(es_rtc_server_t *rtc)
{
    if (!rtc) return;
    for (size_t i = 0; i < ENDED_MAX; i++) json_decref(rtc->ended[i].json);
    es_rtc_transport_free(rtc->transport);
    es_dtls_cert_free(rtc->cert);
    free(rtc);
}

int es_rtc_server_port(const es_rtc_server_t *rtc) { return rtc ? es_rtc_transport_port(rtc->transport) : 0; }

/* --- offers --- */

static const char *EXT_MID = "urn:ietf:params:rtp-hdrext:sdes:mid";
static const char *EXT_AST = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
static const char *EXT_TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
static const char *EXT_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
static const char *EXT_ORIENT = "urn:3gpp:video-orientation";
static const char *EXT_PLAYOUT = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";

static es_ext_ids_t ext_ids(const es_sdp_local_media_t *m)
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
static es_track_info_t track_from_answer(const es_sdp_local_media_t *m, const es_sdp_media_t *om)
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

static void set_result(es_rtc_result_t *res, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_result(es_rtc_result_t *res, int err, const char *fmt, ...)
{
    res->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof res->error, fmt, ap);
    va_end(ap);
}

/* Host candidates for an answer or offer (RFC 8839 §5.1): UDP for every address on the shared
 * port (or port_override: a relay's own), then ICE-TCP passive candidates (RFC 6544 §4.5) for
 * every address on the ICE-TCP port, then the shared HTTP and HTTPS ports, as webrtc.protocol
 * allows. Priorities (RFC 8445
 * §5.1.2.1): UDP type preference 126, TCP 90 (lower: UDP wins wherever both work), local
 * preference by address order and, for TCP, direction "passive" (RFC 6544 §4.2). The eip
 * override ("IP" or "IPv4:PORT", SRS's) replaces the addresses (and the UDP port). A relay
 * (port_override) offers UDP only. */
static void fill_candidates(es_rtc_server_t *rtc, const char *eip, int port_override,
                            es_sdp_local_t *ans)
{
    char ips[ES_RTC_MAX_CANDIDATES][64];
    size_t n = 0;
    int udp_port = port_override ? port_override : es_rtc_transport_port(rtc->transport);
    if (eip && *eip) {
        char host[64];
        snprintf(host, sizeof host, "%s", eip);
        char *colon = strrchr(host, ':');
        if (colon && strchr(host, ':') == colon) { /* IPv4:PORT (one colon) */
            *colon = '\0';
            int p = atoi(colon + 1);
            if (p > 0 && p < 65536) udp_port = p;
        }
        snprintf(ips[0], sizeof ips[0], "%s", host);
        n = 1;
    } else {
        const char *const *cand;
        size_t nc = es_rtc_transport_candidates(rtc->transport, &cand);
        for (size_t i = 0; i < nc && n < ES_RTC_MAX_CANDIDATES; i++)
            snprintf(ips[n++], sizeof ips[n - 1], "%s", cand[i]);
    }
    const char *proto = rtc->srv->cfg->webrtc.protocol ? rtc->srv->cfg->webrtc.protocol : "all";
    bool udp = port_override || strcmp(proto, "tcp") != 0;
    int tcp_ports[3] = {0, 0, 0};
    if (!port_override && strcmp(proto, "udp") != 0) {
        tcp_ports[0] = es_rtc_transport_tcp_port(rtc->transport);
        es_http_server_ice_tcp_ports(rtc->srv->http, &tcp_ports[1], &tcp_ports[2]);
    }
    const size_t cap = sizeof ans->candidates / sizeof ans->candidates[0];
    ans->n_candidates = 0;
    for (size_t i = 0; i < n && udp && ans->n_candidates < cap; i++) {
        uint32_t prio = (126u << 24) | ((uint32_t)(65535 - i) << 8) | 255u;
        snprintf(ans->candidates[ans->n_candidates], sizeof ans->candidates[0],
                 "%zu 1 udp %u %.45s %d typ host generation 0", ans->n_candidates + 1, prio, ips[i],
                 udp_port);
        ans->n_candidates++;
    }
    for (size_t k = 0; k < 3; k++) {
        if (!tcp_ports[k]) continue;
        for (size_t i = 0; i < n && ans->n_candidates < cap; i++) {
            uint32_t local = (4u << 13) | (uint32_t)(8191 - k * ES_RTC_MAX_CANDIDATES - i);
            uint32_t prio = (90u << 24) | (local << 8) | 255u;
            snprintf(ans->candidates[ans->n_candidates], sizeof ans->candidates[0],
                     "%zu 1 tcp %u %.45s %d typ host tcptype passive",
                     ans->n_candidates + 1, prio, ips[i], tcp_ports[k]);
            ans->n_candidates++;
        }
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

static const char *codec_list(const es_sdp_local_t *ans, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < ans->n_media; i++) {
        if (ans->media[i].rejected || !ans->media[i].n_codecs) continue;
        size_t u = strlen(out);
        snprintf(out + u, len - u, "%s%s", u ? ", " : "", es_codec_name(ans->media[i].codecs[0].codec));
    }
    return out;
}

void es_rtc_new_id(char id[ES_RTC_ID_LEN + 1]) { es_random_text(id, ES_RTC_ID_LEN, HEX); }

/* A publisher taken over by a new one (es_live_source_kick). */
static void kick_session(void *user, const char *why)
{
    session_t *s = user;
    es_rtc_link_close(s->link, why); /* link_closed frees s */
}

/* The session's identity and ICE credentials, fresh. */
static void session_identity(es_rtc_server_t *rtc, session_t *s, const char *id)
{
    if (id && strlen(id) == ES_RTC_ID_LEN && !session_find(rtc, id))
        memcpy(s->id, id, ES_RTC_ID_LEN + 1);
    else
        es_rtc_new_id(s->id);
    es_random_text(s->secret, ES_RTC_SECRET_LEN, HEX);
    es_random_text(s->ufrag, 8, ALNUM);
    es_random_text(s->pwd, 24, ALNUM);
    snprintf(s->etag, sizeof s->etag, "\"%s\"", s->ufrag);
}

/* Our half of a description (answer or offer): credentials, fingerprint, names, candidates. */
static void fill_local(es_rtc_server_t *rtc, session_t *s, const char *stream,
                       const char *eip, es_sdp_local_t *l)
{
    l->session_id = ((uint64_t)es_random32() << 20) ^ es_random32();
    snprintf(l->ice_ufrag, sizeof l->ice_ufrag, "%s", s->ufrag);
    snprintf(l->ice_pwd, sizeof l->ice_pwd, "%s", s->pwd);
    snprintf(l->fingerprint, sizeof l->fingerprint, "%s", es_dtls_cert_fingerprint(rtc->cert));
    snprintf(l->cname, sizeof l->cname, "estuary-%s", s->id);
    snprintf(l->msid_stream, sizeof l->msid_stream, "%s", stream);
    fill_candidates(rtc, eip, es_rtc_port_number(s->own_port), l);
    /* "udp 192.0.2.1:8000, tcp 192.0.2.1:8000" for the API: what the peer was told to reach */
    s->candidates[0] = '\0';
    for (size_t i = 0, u = 0; i < l->n_candidates && u + 64 < sizeof s->candidates; i++) {
        char proto[8], ip[64];
        int port;
        if (sscanf(l->candidates[i], "%*s %*s %7s %*s %63s %d", proto, ip, &port) != 3) continue;
        u += (size_t)snprintf(s->candidates + u, sizeof s->candidates - u, "%s%s %s%s%s:%d",
                              u ? ", " : "", proto, strchr(ip, ':') ? "[" : "", ip,
                              strchr(ip, ':') ? "]" : "", port);
    }
}

/* Admission at the moment the session takes the stream. */
static int admit_now(es_rtc_server_t *rtc, const es_rtc_request_t *req, es_admit_decision_t *d)
{
    es_admit_request_t areq = {.app = req->app, .stream = req->stream, .token = req->token,
                               .protocol = req->protocol, .counted = req->counted,
                               .role = req->role == ES_RTC_PUBLISH ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY,
                               .now_us = es_clock_now_us()};
    return es_admit_now(rtc->srv, &areq, req->remote, d);
}

/* What every new session checks first: WebRTC running, a valid eip, admission now. Returns 0
 * with *d, or res->err with the reason in res. */
static int admit_request(es_rtc_server_t *rtc, const es_rtc_request_t *req,
                         es_admit_decision_t *d, es_rtc_result_t *res)
{
    if (!rtc->transport || rtc->stopping) {
        set_result(res, ES_EBUSY, "WebRTC is off (webrtc.udp_listen is empty) or shutting down");
        return res->err;
    }
    if (!valid_eip(req->eip)) {
        set_result(res, ES_EINVAL, "eip must be IP or IP:PORT, not '%s'", req->eip);
        return res->err;
    }
    int rc = admit_now(rtc, req, d);
    if (rc != 0) set_result(res, rc, "%s", d->reason);
    return rc;
}

/* The second half of every negotiation: s (identity, codecs filled) takes the stream d admitted
 * it to with `tracks`, and its link starts with the peer's transport section `peer` and our
 * DTLS role. On success s is in the table and the result names it; else res says why and s is
 * still the caller's. */
static int attach(es_rtc_server_t *rtc, session_t *s, const es_rtc_request_t *req,
                  es_admit_decision_t *d, const es_track_info_t *tracks, size_t n_tracks,
                  const es_sdp_media_t *peer, es_dtls_role_t dtls_role, es_rtc_result_t *res)
{
    es_server_t *srv = rtc->srv;
    const es_config_t *cfg = srv->cfg;
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", req->app, req->stream);
    es_stream_t *st = d->stream;
    uint64_t now = es_clock_now_us();
    if (d->takeover && st) {
        es_log_ctx_t klc = {.stream = key, .remote = req->remote};
        ES_INFO("rtc", &klc, "publisher takeover: the current publisher of %s sent nothing for "
                "%.1f s and is replaced", key, (double)es_live_source_silent_us(st, now) / 1e6);
        es_live_source_kick(st, "replaced by a new publisher (apps.<app>.publisher_takeover)");
        st = es_registry_find(srv->registry, req->app, req->stream); /* may be gone */
        if (st && st->source != ES_SOURCE_NONE) {
            set_result(res, ES_EEXIST, "stream %s is already being published", key);
            return res->err;
        }
    }
    if (!st && es_live_open(srv->registry, req->app, req->stream, now, &st) != 0) {
        set_result(res, ES_ENOMEM, "out of memory");
        return res->err;
    }
    es_media_stream_t *ms = st->media;
    es_rtc_role_t role = req->role;
    s->rtc = rtc;
    s->role = role;
    s->protocol = req->protocol;
    s->counted = req->counted;
    s->on_closed = req->on_closed;
    s->owner = req->user;
    s->ms = ms;
    s->created_us = now;
    timeline_add(s, "signaling from %s (%s)", req->remote && *req->remote ? req->remote : "this server",
                 es_protocol_name(req->protocol));
    snprintf(s->app, sizeof s->app, "%s", req->app);
    snprintf(s->stream_name, sizeof s->stream_name, "%s", req->stream);
    snprintf(s->key, sizeof s->key, "%s", key);
    snprintf(s->http_remote, sizeof s->http_remote, "%s", req->remote ? req->remote : "");
    snprintf(s->remote_ufrag, sizeof s->remote_ufrag, "%s", peer->ice_ufrag);
    uint32_t timeout = role == ES_RTC_PUBLISH ? cfg->webrtc.publisher_timeout_ms
                                              : cfg->webrtc.player_timeout_ms;
    es_rtc_session_params_t pp = {
        .local_ufrag = s->ufrag, .local_pwd = s->pwd, .remote_ufrag = s->remote_ufrag,
        .remote_pwd = peer->ice_pwd,
        /* ICE-lite, whichever side offered, except a relay's offer: a full controlling agent */
        .ice_controlling = req->protocol == ES_PROTO_RELAY,
        .cert = rtc->cert, .fingerprint_alg = peer->fingerprint_alg,
        .fingerprint = peer->fingerprint, .fingerprint_len = peer->fingerprint_len,
        .dtls_role = dtls_role,
        .connect_timeout_ms = cfg->webrtc.dtls_timeout_ms, .consent_timeout_ms = timeout,
        .now_us = now,
    };
    static const es_rtc_link_callbacks_t link_cb = {
        .on_rtp = link_rtp, .on_rtcp = link_rtcp, .on_pair = link_pair,
        .on_selected = link_selected,
        .on_state = link_state, .on_closed = link_closed, .on_tick = link_tick};
    es_media_io_t io = {.send_rtp = io_send_rtp, .send_rtcp = io_send_rtcp, .rtp_buf = io_rtp_buf,
                        .user = s};
    int rc;
    if (role == ES_RTC_PUBLISH) rc = es_media_stream_set_source(ms, tracks, n_tracks, io, now);
    else rc = (s->sink = es_media_stream_add_sink(ms, tracks, n_tracks, io, now)) ? 0 : ES_ENOMEM;
    if (rc == 0 &&
        !(s->link = es_rtc_link_open_on(rtc->transport, s->own_port, &pp, &link_cb, s))) {
        if (role == ES_RTC_PUBLISH) es_media_stream_remove_source(ms, now);
        else es_media_stream_remove_sink(ms, s->sink);
        s->sink = NULL;
        rc = ES_ENOMEM;
    }
    if (rc != 0) {
        s->ms = NULL;
        es_live_release(srv->registry, st);
        set_result(res, rc, "cannot create the session: %s", es_strerror(rc));
        return rc;
    }
    s->own_port = NULL; /* the link's now */
    if (role == ES_RTC_PUBLISH) es_live_source_begin(st, ES_SOURCE_WEBRTC, kick_session, s, cfg, now);
    s->next = rtc->sessions;
    if (rtc->sessions) rtc->sessions->prev = s;
    rtc->sessions = s;
    if (!s->counted) es_server_session_open(srv, req->remote);
    snprintf(res->id, sizeof res->id, "%s", s->id);
    snprintf(res->secret, sizeof res->secret, "%s", s->secret);
    snprintf(res->etag, sizeof res->etag, "%s", s->etag);
    return 0;
}

void es_rtc_offer(es_rtc_server_t *rtc, es_rtc_role_t role, const char *app, const char *stream,
                  const char *token, const char *sdp, size_t len, const char *eip,
                  const char *remote, const char *id, es_rtc_result_t *res)
{
    es_rtc_request_t req = {.role = role, .app = app, .stream = stream, .token = token,
                            .eip = eip, .remote = remote, .id = id,
                            .protocol = role == ES_RTC_PUBLISH ? ES_PROTO_WHIP : ES_PROTO_WHEP};
    es_rtc_take_offer(rtc, &req, sdp, len, res);
}

void es_rtc_take_offer(es_rtc_server_t *rtc, const es_rtc_request_t *req, const char *sdp,
                       size_t len, es_rtc_result_t *res)
{
    memset(res, 0, sizeof *res);
    es_server_t *srv = rtc->srv;
    const es_config_t *cfg = srv->cfg;
    es_rtc_role_t role = req->role;
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", req->app, req->stream);
    es_log_ctx_t lc = {.stream = key, .remote = req->remote};
    es_sdp_t *offer = NULL;
    es_sdp_local_t *ans = NULL;
    char *text = NULL;
    session_t *s = NULL;
    es_admit_decision_t d;
    if (admit_request(rtc, req, &d, res) != 0) goto out;
    offer = calloc(1, sizeof *offer);
    ans = calloc(1, sizeof *ans);
    text = malloc(SDP_TEXT_MAX);
    s = calloc(1, sizeof *s);
    char err[400];
    if (!offer || !ans || !text || !s) {
        set_result(res, ES_ENOMEM, "out of memory");
        goto out;
    }
    if (es_sdp_parse(sdp, len, offer, err, sizeof err) != 0 ||
        es_sdp_check_webrtc(offer, err, sizeof err) != 0) {
        set_result(res, ES_EPROTO, "bad SDP offer: %s", err);
        goto out;
    }
    es_media_stream_t *ms = d.stream ? d.stream->media : NULL;
    es_sdp_caps_t caps[2];
    if (role == ES_RTC_PUBLISH) {
        publish_caps(offer, cfg, caps);
    } else {
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
        set_result(res, ES_ENOTSUP, "%s", err[0] ? err : "no audio or video codec in common");
        goto out;
    }
    session_identity(rtc, s, req->id);
    int tidx = es_sdp_local_transport(ans);
    if (tidx < 0 || (size_t)tidx >= offer->n_media) {
        set_result(res, ES_EPROTO, "bad SDP offer: no audio or video section to answer");
        goto out;
    }
    /* The client's transport is the one of the first accepted section (RFC 9143 §7.3.1):
     * aiortc gives each section its own credentials. */
    const es_sdp_media_t *first = &offer->media[tidx];
    fill_local(rtc, s, req->stream, req->eip, ans);
    /* Tracks. */
    es_track_info_t tracks[ES_STREAM_MAX_TRACKS];
    size_t n_tracks = 0;
    for (size_t i = 0; i < ans->n_media && n_tracks < ES_STREAM_MAX_TRACKS; i++) {
        es_sdp_local_media_t *m = &ans->media[i];
        if (m->rejected || !m->n_codecs || m->dir == ES_DIR_INACTIVE) continue;
        if (role == ES_RTC_PLAY) m->ssrc = es_random32();
        tracks[n_tracks] = track_from_answer(m, role == ES_RTC_PUBLISH ? &offer->media[i] : NULL);
        if (role == ES_RTC_PLAY) tracks[n_tracks].ssrc = m->ssrc;
        n_tracks++;
    }
    if (!n_tracks) {
        set_result(res, ES_ENOTSUP, "no audio or video track to %s in the offer (check the directions: "
                   "WHIP offers sendonly, WHEP recvonly)", role == ES_RTC_PUBLISH ? "receive" : "send");
        goto out;
    }
    int n = es_sdp_local_write(ans, text, SDP_TEXT_MAX);
    if (n < 0) {
        set_result(res, ES_ERANGE, "answer too large");
        goto out;
    }
    codec_list(ans, s->codecs, sizeof s->codecs);
    if (attach(rtc, s, req, &d, tracks, n_tracks, first,
               ans->setup == ES_SETUP_ACTIVE ? ES_DTLS_ROLE_CLIENT : ES_DTLS_ROLE_SERVER, res) != 0)
        goto out;
    res->sdp = text;
    text = NULL;
    lc = sctx(s);
    ES_INFO("rtc", &lc, "%s offer accepted (%s): %s; answer candidates %s%s, DTLS %s",
            role_name(role), es_protocol_name(req->protocol), s->codecs,
            ans->n_candidates ? ans->candidates[0] : "none",
            ans->n_candidates > 1 ? " and more" : "",
            ans->setup == ES_SETUP_ACTIVE ? "active (client)" : "passive (server)");
    s = NULL;
out:
    if (res->err) ES_INFO("rtc", &lc, "%s offer refused (%s): %s", role_name(role),
                          es_strerror(res->err), res->error);
    free(s);
    free(offer);
    free(ans);
    free(text);
}

/* --- the server's offer (a WebSocket player) --- */

struct es_rtc_pending {
    es_rtc_request_t req;          /* its strings point into the fields below */
    char app[ES_APP_NAME_MAX + 1], stream[ES_STREAM_NAME_MAX + 1];
    char remote[64];
    char *token;                   /* malloc'ed, or NULL */
    session_t *s;                  /* identity, credentials, codecs; not in the table yet */
    es_sdp_local_t offer;
};

void es_rtc_pending_free(es_rtc_pending_t *p)
{
    if (!p) return;
    free(p->token);
    if (p->s) es_rtc_port_close(p->s->own_port);
    free(p->s);
    free(p);
}

/* Sections that send a stream (a WebSocket player, a relay push): one per track of the
 * publisher, audio first, each with its codec as negotiated by the publisher (payload type,
 * fmtp): what es_media_stream rewrites to. Returns how many (0..2). */
static size_t send_offer_media(es_media_stream_t *ms, const es_config_t *cfg,
                               es_sdp_offer_media_t om[2])
{
    es_track_info_t tr[ES_STREAM_MAX_TRACKS];
    size_t nt = es_media_stream_source_tracks(ms, tr, ES_STREAM_MAX_TRACKS);
    size_t n = 0;
    for (int kind = ES_MEDIA_AUDIO; kind <= ES_MEDIA_VIDEO; kind++) {
        for (size_t i = 0; i < nt; i++) {
            if ((int)tr[i].kind != kind) continue;
            es_sdp_offer_media_t *m = &om[n++];
            memset(m, 0, sizeof *m);
            m->kind = tr[i].kind;
            m->dir = ES_DIR_SENDONLY;
            m->caps.codecs[0] = tr[i].codec;
            m->caps.n_codecs = 1;
            m->caps.nack = cfg->webrtc.nack;
            m->caps.pli = m->caps.fir = true;
            break;
        }
    }
    return n;
}

/* Sections that receive a stream (a relay pull): Opus, and H.264 (packetization-mode 1,
 * constrained baseline, first: what RTMP, HTTP-FLV and HLS players can get too), VP8, VP9;
 * the feedback a WHIP publisher gets. Returns 2. */
static size_t receive_offer_media(const es_config_t *cfg, es_sdp_offer_media_t om[2])
{
    memset(om, 0, 2 * sizeof om[0]);
    static const struct {
        es_codec_t codec;
        uint8_t pt;
        const char *name;
        uint32_t rate;
        uint8_t channels;
        const char *fmtp;
    } codecs[] = {
        {ES_CODEC_OPUS, 111, "opus", 48000, 2, "minptime=10;useinbandfec=1"},
        {ES_CODEC_H264, 102, "H264", 90000, 0,
         "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
        {ES_CODEC_VP8, 96, "VP8", 90000, 0, ""},
        {ES_CODEC_VP9, 98, "VP9", 90000, 0, "profile-id=0"},
    };
    for (int k = 0; k < 2; k++) {
        om[k].kind = k == 0 ? ES_MEDIA_AUDIO : ES_MEDIA_VIDEO;
        om[k].dir = ES_DIR_RECVONLY;
        om[k].caps.rtx = om[k].caps.nack = cfg->webrtc.nack;
        om[k].caps.pli = om[k].caps.fir = true;
        om[k].caps.transport_cc = cfg->webrtc.twcc;
        om[k].caps.remb = cfg->webrtc.remb;
    }
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++) {
        es_sdp_caps_t *c = &om[codecs[i].codec == ES_CODEC_OPUS ? 0 : 1].caps;
        es_sdp_codec_t *x = &c->codecs[c->n_codecs++];
        x->pt = codecs[i].pt;
        x->codec = codecs[i].codec;
        snprintf(x->name, sizeof x->name, "%s", codecs[i].name);
        x->clock_rate = codecs[i].rate;
        x->channels = codecs[i].channels;
        snprintf(x->fmtp, sizeof x->fmtp, "%s", codecs[i].fmtp);
        x->apt = -1;
        if (x->codec == ES_CODEC_H264) {
            x->h264_packetization_mode = 1;
            x->h264_profile_level_id = 0x42e01f;
            x->h264_level_asymmetry = true;
        }
    }
    return 2;
}

es_rtc_pending_t *es_rtc_make_offer(es_rtc_server_t *rtc, const es_rtc_request_t *req,
                                    es_rtc_result_t *res)
{
    memset(res, 0, sizeof *res);
    const es_config_t *cfg = rtc->srv->cfg;
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", req->app, req->stream);
    es_log_ctx_t lc = {.stream = key, .remote = req->remote};
    es_rtc_pending_t *p = NULL;
    char *text = NULL;
    const bool relay = req->protocol == ES_PROTO_RELAY;
    if (req->role != ES_RTC_PLAY && !relay) {
        set_result(res, ES_EINVAL, "the server offers to players and relays only");
        goto fail;
    }
    es_admit_decision_t d;
    if (admit_request(rtc, req, &d, res) != 0) goto fail;
    p = calloc(1, sizeof *p);
    text = malloc(SDP_TEXT_MAX);
    if (!p || !text || !(p->s = calloc(1, sizeof *p->s)) ||
        (req->token && !(p->token = strdup(req->token)))) {
        set_result(res, ES_ENOMEM, "out of memory");
        goto fail;
    }
    es_sdp_offer_media_t om[2];
    size_t n = req->role == ES_RTC_PLAY
                   ? send_offer_media(d.stream ? d.stream->media : NULL, cfg, om)
                   : receive_offer_media(cfg, om);
    if (!n || es_sdp_offer_init(om, n, &p->offer) != 0) {
        set_result(res, ES_ENOTSUP, "stream %s has no track a WebRTC player can get", key);
        goto fail;
    }
    /* To a browser (a full agent) we are ICE-lite; a relay checks and nominates itself
     * (RFC 8445 §6.1.1), so that it works against ICE-lite and full servers alike. */
    p->offer.ice_lite = !relay;
    if (relay && !(p->s->own_port = es_rtc_port_open(rtc->transport, res->error,
                                                     sizeof res->error))) {
        res->err = ES_EIO;
        goto fail;
    }
    session_identity(rtc, p->s, req->id);
    fill_local(rtc, p->s, req->stream, req->eip, &p->offer);
    for (size_t i = 0; i < p->offer.n_media; i++)
        if (p->offer.media[i].dir == ES_DIR_SENDONLY) p->offer.media[i].ssrc = es_random32();
    if (es_sdp_local_write(&p->offer, text, SDP_TEXT_MAX) < 0) {
        set_result(res, ES_ERANGE, "offer too large");
        goto fail;
    }
    codec_list(&p->offer, p->s->codecs, sizeof p->s->codecs);
    p->req = *req;
    snprintf(p->app, sizeof p->app, "%s", req->app);
    snprintf(p->stream, sizeof p->stream, "%s", req->stream);
    snprintf(p->remote, sizeof p->remote, "%s", req->remote ? req->remote : "");
    p->req.app = p->app;
    p->req.stream = p->stream;
    p->req.remote = p->remote;
    p->req.token = p->token;
    p->req.eip = NULL;  /* in the offer already */
    p->req.id = NULL;   /* p->s has it */
    res->sdp = text;
    snprintf(res->id, sizeof res->id, "%s", p->s->id);
    lc.peer = p->s->id;
    ES_DEBUG("rtc", &lc, "%s offer made (%s): %s", role_name(req->role),
             es_protocol_name(req->protocol), p->s->codecs);
    return p;
fail:
    ES_INFO("rtc", &lc, "%s offer not made (%s): %s", role_name(req->role), es_strerror(res->err),
            res->error);
    es_rtc_pending_free(p);
    free(text);
    return NULL;
}

void es_rtc_take_answer(es_rtc_server_t *rtc, es_rtc_pending_t *p, const char *sdp, size_t len,
                        es_rtc_result_t *res)
{
    memset(res, 0, sizeof *res);
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", p->app, p->stream);
    es_log_ctx_t lc = {.peer = p->s->id, .stream = key, .remote = p->remote};
    char gone_id[ES_RTC_ID_LEN + 1];
    es_sdp_t *answer = calloc(1, sizeof *answer);
    char err[400];
    if (!answer) {
        set_result(res, ES_ENOMEM, "out of memory");
        goto out;
    }
    if (!rtc->transport || rtc->stopping) {
        set_result(res, ES_EBUSY, "WebRTC is shutting down");
        goto out;
    }
    if (es_sdp_parse(sdp, len, answer, err, sizeof err) != 0) {
        set_result(res, ES_EPROTO, "bad SDP answer: %s", err);
        goto out;
    }
    if (es_sdp_answer_apply(&p->offer, answer, err, sizeof err) < 0) {
        set_result(res, ES_EPROTO, "the answer does not fit the offer: %s", err);
        goto out;
    }
    int tidx = es_sdp_local_transport(&p->offer);
    if (tidx < 0 || (size_t)tidx >= answer->n_media) {
        set_result(res, ES_EPROTO, "the answer accepts no section");
        goto out;
    }
    const es_sdp_media_t *peer = &answer->media[tidx];
    es_track_info_t tracks[ES_STREAM_MAX_TRACKS];
    size_t n_tracks = 0;
    const bool receive = p->req.role == ES_RTC_PUBLISH; /* a relay pull: the stream's source */
    for (size_t i = 0; i < p->offer.n_media && n_tracks < ES_STREAM_MAX_TRACKS; i++) {
        es_sdp_local_media_t *m = &p->offer.media[i];
        if (m->rejected || !m->n_codecs || m->dir == ES_DIR_INACTIVE) continue;
        /* Received tracks carry the peer's SSRCs (its a=ssrc); sent ones ours. */
        tracks[n_tracks] = track_from_answer(m, receive ? &answer->media[i] : NULL);
        if (!receive) tracks[n_tracks].ssrc = m->ssrc;
        n_tracks++;
    }
    if (!n_tracks) {
        set_result(res, ES_ENOTSUP, "the answer leaves no track to send (every section "
                   "rejected or inactive)");
        goto out;
    }
    es_admit_decision_t d;
    int arc = admit_now(rtc, &p->req, &d);
    if (arc != 0) {
        set_result(res, arc, "%s", d.reason);
        goto out;
    }
    codec_list(&p->offer, p->s->codecs, sizeof p->s->codecs);
    /* RFC 5763 §5: the answerer chose; actpass was ours. */
    es_dtls_role_t role = peer->setup == ES_SETUP_PASSIVE ? ES_DTLS_ROLE_CLIENT
                                                          : ES_DTLS_ROLE_SERVER;
    if (p->req.protocol == ES_PROTO_RELAY && !peer->ice_pwd[0]) {
        set_result(res, ES_EPROTO, "the answer has no a=ice-pwd");
        goto out;
    }
    if (attach(rtc, p->s, &p->req, &d, tracks, n_tracks, peer, role, res) != 0) goto out;
    lc = sctx(p->s);
    size_t n_cand = 0;
    if (p->req.protocol == ES_PROTO_RELAY) {
        /* Our full agent checks the peer's host (and other) UDP candidates of component 1
         * (RTP; rtcp-mux), in the order the answer lists them. */
        /* Best first (RFC 8445 §6.1.2.6), at most ES_RTC_SESSION_MAX_PAIRS - 1 (a slot stays
         * for a peer-reflexive pair); unspecified and multicast addresses are no one's. */
        const es_sdp_candidate_t *best[ES_SDP_MAX_CANDIDATES];
        size_t nb = 0;
        for (size_t i = 0; i < answer->n_candidates && i < ES_SDP_MAX_CANDIDATES; i++) {
            const es_sdp_candidate_t *c = &answer->candidates[i];
            struct in_addr a4;
            struct in6_addr a6;
            bool v4 = inet_pton(AF_INET, c->address, &a4) == 1;
            bool v6 = !v4 && inet_pton(AF_INET6, c->address, &a6) == 1;
            if (c->component != 1 || strcmp(c->transport, "udp") || !c->port ||
                (v4 && (a4.s_addr == 0 || (ntohl(a4.s_addr) >> 28) == 14)) ||
                (v6 && (IN6_IS_ADDR_UNSPECIFIED(&a6) || IN6_IS_ADDR_MULTICAST(&a6))))
                continue;
            size_t k = nb++;
            for (; k > 0 && best[k - 1]->priority < c->priority; k--) best[k] = best[k - 1];
            best[k] = c;
        }
        for (size_t i = 0; i < nb && n_cand < ES_RTC_SESSION_MAX_PAIRS - 1; i++)
            if (es_rtc_link_add_remote_candidate(p->s->link, best[i]->address, best[i]->port,
                                                 best[i]->priority) == 0)
                n_cand++;
        if (!n_cand) {
            snprintf(gone_id, sizeof gone_id, "%s", p->s->id); /* lc outlives the session */
            lc = (es_log_ctx_t){.peer = gone_id, .stream = key, .remote = p->remote};
            p->s->on_closed = NULL; /* the caller hears of it from res */
            es_rtc_link_close(p->s->link, "the answer has no UDP candidate we can reach");
            set_result(res, ES_EPROTO, "the answer has no UDP candidate with an IP address "
                       "(%zu candidates)", answer->n_candidates);
            p->s = NULL; /* freed by link_closed */
            goto out;
        }
    }
    ES_INFO("rtc", &lc, "%s answer accepted (%s): %s; DTLS %s%s", role_name(p->req.role),
            es_protocol_name(p->req.protocol), p->s->codecs,
            role == ES_DTLS_ROLE_CLIENT ? "active (client)" : "passive (server)",
            n_cand ? "; checking the peer's candidates" : "");
    p->s = NULL; /* in the table now */
out:
    if (res->err) ES_INFO("rtc", &lc, "%s answer refused (%s): %s", role_name(p->req.role),
                          es_strerror(res->err), res->error);
    free(answer);
    es_rtc_pending_free(p);
}

void es_rtc_disown(es_rtc_server_t *rtc, const char *id)
{
    session_t *s = rtc && id ? session_find(rtc, id) : NULL;
    if (s) s->on_closed = NULL;
}

void es_rtc_patch(es_rtc_server_t *rtc, const char *id, const char *if_match, const char *body,
                  size_t len, es_rtc_result_t *res)
{
    memset(res, 0, sizeof *res);
    session_t *s = session_find(rtc, id);
    if (!s) {
        set_result(res, ES_ENOENT, "no session %s", id);
        return;
    }
    if (if_match && *if_match && strcmp(if_match, "*") && strcmp(if_match, s->etag)) {
        set_result(res, ES_ESTALE, "If-Match %s does not match the session's ETag %s", if_match, s->etag);
        return;
    }
    es_sdp_t *frag = calloc(1, sizeof *frag);
    char err[300];
    if (!frag) {
        set_result(res, ES_ENOMEM, "out of memory");
        return;
    }
    if (es_sdp_parse_fragment(body, len, frag, err, sizeof err) != 0) {
        set_result(res, ES_EPROTO, "bad trickle-ice-sdpfrag: %s", err);
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
            set_result(res, ES_EPROTO, "ICE restart without a=ice-pwd");
            free(frag);
            return;
        }
        char nu[16], np[40];
        es_random_text(nu, 8, ALNUM);
        es_random_text(np, 24, ALNUM);
        if (es_rtc_link_restart_ice(s->link, nu, np, ufrag, pwd) != 0) {
            set_result(res, ES_EPROTO, "bad ICE credentials in the fragment");
            free(frag);
            return;
        }
        snprintf(s->ufrag, sizeof s->ufrag, "%s", nu);
        snprintf(s->pwd, sizeof s->pwd, "%s", np);
        snprintf(s->remote_ufrag, sizeof s->remote_ufrag, "%s", ufrag);
        snprintf(s->etag, sizeof s->etag, "\"%s\"", s->ufrag);
        char *out = malloc(4096);
        if (!out) {
            set_result(res, ES_ENOMEM, "out of memory");
            free(frag);
            return;
        }
        es_sdp_local_t *tmp = calloc(1, sizeof *tmp);
        size_t u = (size_t)snprintf(out, 4096, "a=ice-lite\r\na=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", nu, np);
        if (tmp) {
            fill_candidates(rtc, NULL, 0, tmp);
            for (size_t i = 0; i < tmp->n_candidates && u < 3900; i++)
                u += (size_t)snprintf(out + u, 4096 - u, "a=candidate:%s\r\n", tmp->candidates[i]);
            free(tmp);
        }
        snprintf(out + u, 4096 - u, "a=end-of-candidates\r\n");
        res->sdp = out;
        snprintf(res->etag, sizeof res->etag, "%s", s->etag);
        ES_INFO("rtc", &lc, "ICE restart: new remote ufrag %s", ufrag);
    } else {
        snprintf(res->etag, sizeof res->etag, "%s", s->etag);
        ES_DEBUG("rtc", &lc, "trickle: %zu candidates (ICE-lite answers checks from any of them)",
                 frag->n_candidates);
    }
    free(frag);
}

int es_rtc_resource_check(es_rtc_server_t *rtc, const char *resource, es_rtc_role_t role,
                          const char *app, const char *stream, char *id_out)
{
    id_out[0] = '\0';
    if (!rtc || !resource || strlen(resource) != ES_RTC_ID_LEN + 1 + ES_RTC_SECRET_LEN ||
        resource[ES_RTC_ID_LEN] != '-')
        return ES_ENOENT;
    char id[ES_RTC_ID_LEN + 1];
    memcpy(id, resource, ES_RTC_ID_LEN);
    id[ES_RTC_ID_LEN] = '\0';
    session_t *s = session_find(rtc, id);
    if (s) {
        if (s->role != role || strcmp(s->app, app) || strcmp(s->stream_name, stream) ||
            !es_config_token_equal(s->secret, resource + ES_RTC_ID_LEN + 1))
            return ES_ENOENT;
    } else {
        ended_session_t *e = ended_find(rtc, id); /* GET still shows how it ended */
        if (!e || e->role != role || strcmp(e->app, app) || strcmp(e->stream_name, stream) ||
            !es_config_token_equal(e->secret, resource + ES_RTC_ID_LEN + 1))
            return ES_ENOENT;
    }
    memcpy(id_out, id, sizeof id);
    return 0;
}

int es_rtc_delete(es_rtc_server_t *rtc, const char *id, const char *why)
{
    session_t *s = session_find(rtc, id);
    if (!s) return ES_ENOENT;
    es_rtc_link_close(s->link, why); /* link_closed frees s */
    return 0;
}

int es_rtc_session_unbound(es_rtc_server_t *rtc, const char *id)
{
    session_t *s = rtc && id ? session_find(rtc, id) : NULL;
    if (!s) return ES_ENOENT;
    return (int)es_media_sink_unbound(s->sink);
}

static json_t *session_json(const session_t *s, uint64_t now)
{
    es_rtc_session_stats_t ps = es_rtc_session_stats(es_rtc_link_session(s->link));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "id", s->id,
        "protocol", "webrtc", "signaling", es_protocol_name(s->protocol), "role",
        role_name(s->role), "app", s->app, "stream", s->stream_name, "state",
        es_rtc_session_state_name(es_rtc_session_state(es_rtc_link_session(s->link))), "remote",
        s->media_remote[0] ? s->media_remote : "", "http_remote", s->http_remote, "codecs",
        s->codecs, "age_ms", (json_int_t)((now - s->created_us) / 1000), "bytes_in",
        (json_int_t)ps.rx_bytes, "bytes_out", (json_int_t)ps.tx_bytes, "packets_in",
        (json_int_t)ps.rx_packets, "packets_out", (json_int_t)ps.tx_packets);
    if (!o) return NULL;
    if (s->sink) {
        es_media_sink_stats_t ss = es_media_sink_stats(s->sink);
        json_object_set_new(o, "nacks", json_integer((json_int_t)ss.nacks));
        json_object_set_new(o, "retransmits", json_integer((json_int_t)ss.retransmits));
        json_object_set_new(o, "nacks_ignored", json_integer((json_int_t)ss.nacks_ignored));
        json_object_set_new(o, "plis", json_integer((json_int_t)ss.plis));
        json_object_set_new(o, "rtt_ms", ss.rtt_us >= 0 ? json_real((double)ss.rtt_us / 1000.0)
                                                         : json_null());
    } else if (s->ms) {
        es_media_source_stats_t ss = es_media_stream_source_stats(s->ms);
        json_object_set_new(o, "nacks", json_integer((json_int_t)ss.nacks_sent));
        json_object_set_new(o, "packets_lost", json_integer((json_int_t)ss.lost));
        json_object_set_new(o, "twcc_feedback", json_integer((json_int_t)ss.twcc_feedback));
        json_object_set_new(o, "rtt_ms", json_null());
    }
    if (s->connected_us)
        json_object_set_new(o, "connect_ms",
                            json_real((double)(s->connected_us - s->created_us) / 1000.0));
    bool nominated = false;
    const es_addr_pair_t *sel = s->link ? es_rtc_session_selected(es_rtc_link_session(s->link), &nominated) : NULL;
    if (sel) {
        char remote[64], local[64];
        es_addr_format((const struct sockaddr *)&sel->remote, remote, sizeof remote);
        es_addr_format((const struct sockaddr *)&sel->local, local, sizeof local);
        json_object_set_new(o, "transport", json_string(pair_transport(sel)));
        json_object_set_new(o, "pair", json_pack("{s:s, s:s, s:s, s:b}", "local", local, "remote",
                                                 remote, "transport", pair_transport(sel),
                                                 "nominated", nominated));
    } else {
        json_object_set_new(o, "transport", json_null());
        json_object_set_new(o, "pair", json_null());
    }
    json_object_set_new(o, "candidates", json_string(s->candidates));
    if (s->tcp_drops) json_object_set_new(o, "tcp_media_dropped", json_integer((json_int_t)s->tcp_drops));
    json_t *tl = json_array();
    for (size_t i = 0; i < s->n_timeline && tl; i++)
        json_array_append_new(tl, json_pack("{s:I, s:s}", "t_ms", (json_int_t)s->timeline[i].t_ms,
                                            "event", s->timeline[i].what));
    if (tl) json_object_set_new(o, "timeline", tl);
    if (s->timeline_dropped)
        json_object_set_new(o, "timeline_dropped", json_integer(s->timeline_dropped));
    return o;
}

void es_rtc_server_on_tcp_conn(es_rtc_server_t *rtc, es_tcp_conn_t *c)
{
    es_rtc_transport_on_tcp_conn(rtc && !rtc->stopping ? rtc->transport : NULL, c);
}

json_t *es_rtc_sessions_json(es_rtc_server_t *rtc)
{
    json_t *arr = json_array();
    uint64_t now = es_clock_now_us();
    for (session_t *s = rtc ? rtc->sessions : NULL; s && arr; s = s->next)
        json_array_append_new(arr, session_json(s, now));
    return arr;
}

json_t *es_rtc_session_json(es_rtc_server_t *rtc, const char *id)
{
    session_t *s = rtc ? session_find(rtc, id) : NULL;
    if (s) return session_json(s, es_clock_now_us());
    ended_session_t *e = rtc ? ended_find(rtc, id) : NULL;
    return e ? json_deep_copy(e->json) : NULL;
}
