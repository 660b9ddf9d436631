/* WHEP load generator (docs/performance.md): opens N WebRTC players against an Estuary server
 * from one thread and measures what they receive. Each player has its own UDP socket, POSTs a
 * recvonly Opus + H.264 offer (RFC 9725 §4.2, WHEP), and runs the project's session core
 * (es_rtc_session: a full controlling ICE agent against the server's ICE-lite, RFC 8445 §6.1.1;
 * DTLS client, RFC 5763; SRTP, RFC 3711 / RFC 7714).
 *
 * Receiving is recvmmsg (64 per call) over one epoll set of every socket; once connected, in
 * rounds (--interval-us, 20 ms): what a socket gathered meanwhile comes in one call, far cheaper
 * per packet than a wake-up each, while the kernel's receive timestamps (SO_TIMESTAMPNS) keep
 * every measured time exact. RTP is counted from its clear header (RFC 3711 §3.1: authenticated,
 * not encrypted): packets, bytes, loss and reordering per SSRC from extended sequence numbers
 * (RFC 3550 A.1; a late packet that fills a gap counts as reordered, not lost), and the added
 * latency from the publisher's abs-send-time stamp (bench_whip_publish.c) against the receive
 * timestamp. A sample of packets (every 50th per player, and all of an SSRC until one decrypts)
 * goes through the session to be decrypted, which proves the stream is valid SRTP;
 * --decrypt-all decrypts everything. Like a browser, every player sends an SRTCP receiver report
 * each second (RFC 3550 §6.4.2) and generic NACKs (RFC 4585 §6.2.1) for video sequence numbers
 * missing for 20 ms, at most twice each (--no-rtcp: neither).
 *
 * Phases, each bounded: connect (players opened at --rate per second, at most --max-inflight
 * HTTP requests at once, each player given --connect-timeout-ms from its POST to its first
 * decrypted packet), warm-up, the measurement window, then DELETE of every resource. Prints a
 * summary, and with --json one JSON line.
 *
 *   bench_whep_load --url http://127.0.0.1:8080/whep/live/bench --players 400 \
 *                   [--server-pid PID] [--json] [options, see usage()] */
#define _GNU_SOURCE /* recvmmsg */
#include "bench_rtc.h"

#include "estuary/bytes.h"
#include "estuary/clock.h"
#include "estuary/error.h"
#include "estuary/random.h"
#include "estuary/rtcp.h"
#include "estuary/rtp.h"
#include "estuary/srtp.h"

#include <errno.h>
#include <sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64              /* datagrams per recvmmsg */
#define PKT_MAX 2048          /* bytes of one datagram */
#define WIN 1024              /* sequence numbers a stream remembers having received */
#define MISS_MAX 64           /* missing sequence numbers tracked per stream for NACK */
#define NACK_AFTER_US 20000   /* a gap is NACKed after 20 ms, the second time 20 ms later */
#define NACK_TRIES 2
#define NACK_FORGET_US 200000 /* a gap NACKed twice is forgotten after this (still lost) */
#define RTCP_US 1000000       /* receiver reports every second */
#define GRACE_US 300000       /* after the window, late packets of it still count */
#define CLOSE_US 5000000      /* the DELETEs at the end are bounded by this */
#define MAX_RX 4              /* SSRCs per player */
#define LAT_FINE_US 100000    /* latency histogram: 10 µs buckets below 100 ms, */
#define LAT_BUCKETS 70000     /* 1 ms buckets up to 60 s, beyond in the last (max is exact) */
#define MAX_REASONS 16
#define CURL_TAG (1ull << 63) /* epoll data of a libcurl socket; else a player index */

typedef struct missing {
    uint32_t ext;             /* extended sequence number */
    uint64_t since_us, last_us;
    uint8_t tries;
} missing_t;

/* One received SSRC. */
typedef struct rx_stream {
    uint32_t ssrc;
    const bench_track_t *track;
    bool started;
    bool decrypted;           /* one of its packets went through SRTP: sampling may start */
    uint32_t base, max;       /* extended first and highest sequence numbers (from 1 << 16) */
    uint64_t received, late, dups, too_old;
    uint64_t win[WIN / 64];   /* bit (ext % WIN): received, for ext in (max - WIN, max] */
    missing_t miss[MISS_MAX];
    size_t n_miss;
    es_rtp_recv_stats_t rs;   /* for our receiver reports */
    /* The measurement window: unique packets with win_lo < ext <= win_hi. */
    bool in_win, win_pending;
    uint32_t win_lo, win_hi;
    uint64_t win_rx, win_late;
} rx_stream_t;

typedef enum {
    P_IDLE = 0, P_POSTING, P_CONNECTING, P_MEDIA, P_FAILED, P_DELETING, P_DONE
} pstate_t;

typedef struct player {
    uint32_t idx;
    pstate_t state;
    int fd;
    struct sockaddr_storage local;
    socklen_t local_len;
    char ufrag[9], pwd[25];
    uint32_t ssrc;            /* ours, as the sender of RTCP */
    es_sdp_local_t *offer;    /* while posting */
    bench_http_t http;        /* while posting or deleting */
    char resource[512];       /* the Location, absolute */
    es_rtc_session_t *s;
    bool connected;           /* SRTP keys ready */
    bool ended;               /* the session closed or failed (reason in fail) */
    bench_track_t tracks[2];
    size_t n_tracks;
    es_addr_pair_t pair;      /* the server's address and ours: every datagram's pair */
    rx_stream_t rx[MAX_RX];
    size_t n_rx;
    uint64_t post_us, media_us, deadline_us;
    uint64_t rtcp_due, nack_due, due;
    size_t heap_pos;          /* index in the heap + 1; 0: not in it */
    uint64_t rtp_seen, packets, bytes;
    uint64_t decrypt_ok, decrypt_fail, decrypt_replay;
    uint64_t foreign;         /* RTP of SSRCs the answer did not announce */
    uint64_t nacks, nack_seqs, reports;
    uint64_t win_bytes0, win_bytes1;
    bool in_window;           /* had media when the window began: its numbers count */
    char fail[200];
} player_t;

typedef struct options {
    const char *url, *bind, *token;
    size_t players;
    double rate;
    size_t max_inflight;
    double warmup_s, duration_s;
    unsigned sample;          /* decrypt every Nth RTP packet; 1: all */
    bool rtcp, kernel_ts, json;
    uint32_t connect_ms;
    int server_pid;
    int rcvbuf;
    uint32_t interval_us;     /* after connecting: at most one receive round per interval */
} options_t;

typedef enum { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_GRACE, PH_CLOSE } phase_t;

typedef struct gen {
    options_t o;
    player_t *players;
    int ep;
    CURLM *multi;
    uint64_t curl_due;        /* 0: no libcurl timer */
    size_t inflight;
    player_t **heap;
    size_t heap_n;
    es_dtls_cert_t *cert;
    phase_t phase;
    size_t opened, settled, with_media;
    size_t close_next;        /* the next player to DELETE */
    size_t deleted;           /* resources the server confirmed DELETEd (2xx) */
    uint64_t next_open_us;
    uint64_t t0, connect_end, win_start, win_end, grace_end, close_end;
    bool measuring;
    uint64_t round_us;        /* when the current receive round began */
    bool rounds;              /* receiving in rounds (connected, --interval-us) */
    /* receive batch */
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage names[BATCH];
    uint8_t ctrl[BATCH][64];
    uint8_t bufs[BATCH][PKT_MAX];
    /* window results */
    uint32_t *lat_hist;
    uint64_t lat_n, lat_neg, lat_max_us;
    uint64_t rx_calls, rx_datagrams; /* recvmmsg calls and what they returned, in the window */
    unsigned fail_logged;
    double srv_cpu0, srv_cpu1, gen_cpu0, gen_cpu1;
    int srv_core;             /* the one CPU the server is pinned to, or -1 */
    double core_busy0, core_busy1; /* that CPU's busy seconds (everyone's) */
    long rss_base_kb, rss_win_kb;
    long self_rss0_kb, self_rss1_kb; /* ours, before any player and during the window */
    size_t players_at_start, dropped_in_window;
    struct { char text[120]; size_t n; } reasons[MAX_REASONS];
    size_t n_reasons, other_reasons;
} gen_t;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) { (void)sig; g_stop = 1; }

static uint64_t earliest(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

/* --- the timer heap (players by their next deadline) --- */

static void heap_swap(gen_t *g, size_t a, size_t b)
{
    player_t *t = g->heap[a];
    g->heap[a] = g->heap[b];
    g->heap[b] = t;
    g->heap[a]->heap_pos = a + 1;
    g->heap[b]->heap_pos = b + 1;
}

static void heap_fix(gen_t *g, size_t i)
{
    while (i > 0 && g->heap[(i - 1) / 2]->due > g->heap[i]->due) {
        heap_swap(g, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < g->heap_n && g->heap[l]->due < g->heap[m]->due) m = l;
        if (r < g->heap_n && g->heap[r]->due < g->heap[m]->due) m = r;
        if (m == i) return;
        heap_swap(g, i, m);
        i = m;
    }
}

/* heap_set: p's deadline becomes due (0: none, leaves the heap). */
static void heap_set(gen_t *g, player_t *p, uint64_t due)
{
    if (p->heap_pos && due == p->due) return;
    p->due = due;
    if (!due) {
        if (!p->heap_pos) return;
        size_t i = p->heap_pos - 1;
        p->heap_pos = 0;
        if (i != --g->heap_n) {
            g->heap[i] = g->heap[g->heap_n];
            g->heap[i]->heap_pos = i + 1;
            heap_fix(g, i);
        }
        return;
    }
    if (!p->heap_pos) {
        g->heap[g->heap_n] = p;
        p->heap_pos = ++g->heap_n;
    }
    heap_fix(g, p->heap_pos - 1);
}

/* --- outcomes --- */

static void reason_add(gen_t *g, const char *why)
{
    for (size_t i = 0; i < g->n_reasons; i++)
        if (!strcmp(g->reasons[i].text, why)) {
            g->reasons[i].n++;
            return;
        }
    if (g->n_reasons == MAX_REASONS) {
        g->other_reasons++;
        return;
    }
    snprintf(g->reasons[g->n_reasons].text, sizeof g->reasons[0].text, "%s", why);
    g->reasons[g->n_reasons++].n = 1;
}

static void player_release(gen_t *g, player_t *p)
{
    heap_set(g, p, 0);
    es_rtc_session_free(p->s);
    p->s = NULL;
    free(p->offer);
    p->offer = NULL;
    if (p->fd >= 0) close(p->fd); /* leaves the epoll set with it */
    p->fd = -1;
}

static void player_fail(gen_t *g, player_t *p, const char *why)
{
    if (p->state == P_FAILED || p->state == P_DONE) return;
    bool had_media = p->state == P_MEDIA;
    snprintf(p->fail, sizeof p->fail, "%s", why);
    if (had_media) {
        g->with_media--;
        if (g->measuring) g->dropped_in_window++;
    } else {
        g->settled++;
    }
    reason_add(g, why);
    p->state = P_FAILED;
    if (p->s) es_rtc_session_close(p->s, why);
    heap_set(g, p, 0); /* the socket stays for DELETE's sake until the end */
}

/* --- the session's callbacks --- */

static gen_t *g_gen;

static void cb_send(void *user, const uint8_t *buf, size_t len, const es_addr_pair_t *a)
{
    player_t *p = user;
    (void)sendto(p->fd, buf, len, 0, (const struct sockaddr *)&a->remote, a->remote_len);
}

static rx_stream_t *rx_find(player_t *p, uint32_t ssrc, int pt);

static void cb_rtp(void *user, uint64_t now, uint8_t *buf, size_t len)
{
    player_t *p = user;
    p->decrypt_ok++;
    rx_stream_t *st = len >= 12 ? rx_find(p, es_rd32(buf + 8), -1) : NULL;
    if (st) st->decrypted = true;
    if (p->media_us || p->state != P_CONNECTING) return;
    p->media_us = now;
    p->state = P_MEDIA;
    g_gen->with_media++;
    g_gen->settled++;
}

static void cb_rtcp(void *user, uint64_t now, uint8_t *buf, size_t len)
{
    player_t *p = user;
    size_t off = 0;
    es_rtcp_header_t h;
    for (int k = 0; k < 32 && es_rtcp_next(buf, len, &off, &h) == 1; k++) {
        es_rtcp_report_t r;
        if (h.type != ES_RTCP_SR || es_rtcp_parse_report(&h, &r) != 0) continue;
        rx_stream_t *st = rx_find(p, r.ssrc, -1);
        if (st) es_rtp_recv_stats_on_sr(&st->rs, r.ntp, now);
    }
}

static void cb_state(void *user, es_rtc_session_state_t st, int err, const char *reason)
{
    player_t *p = user;
    if (st == ES_RTC_SESSION_CONNECTED) {
        p->connected = true;
        p->rtcp_due = es_clock_now_us() + (uint64_t)(es_random32() % RTCP_US); /* spread */
    } else if (st == ES_RTC_SESSION_CLOSED || st == ES_RTC_SESSION_FAILED) {
        p->ended = true; /* handled once the session call returns */
        snprintf(p->fail, sizeof p->fail, "%s %s: %s", st == ES_RTC_SESSION_FAILED ? "failed"
                 : "closed", es_strerror(err), reason);
    }
}

/* --- receiving --- */

static rx_stream_t *rx_find(player_t *p, uint32_t ssrc, int pt)
{
    for (size_t i = 0; i < p->n_rx; i++)
        if (p->rx[i].ssrc == ssrc) return &p->rx[i];
    if (pt < 0 || p->n_rx == MAX_RX) return NULL;
    const bench_track_t *tr = NULL;
    /* Only the SSRCs the answer announced: a stale session of an earlier run, still sending to
     * the port this socket now has, would otherwise look like decrypt failures. */
    for (size_t i = 0; i < p->n_tracks && !tr; i++)
        if (p->tracks[i].pt && p->tracks[i].pt == pt &&
            (!p->tracks[i].remote_ssrc || p->tracks[i].remote_ssrc == ssrc))
            tr = &p->tracks[i];
    if (!tr) return NULL;
    rx_stream_t *st = &p->rx[p->n_rx++];
    memset(st, 0, sizeof *st);
    st->ssrc = ssrc;
    st->track = tr;
    st->win_pending = g_gen->measuring;
    return st;
}

static bool bit_get(const rx_stream_t *st, uint32_t ext)
{
    uint32_t i = ext % WIN;
    return st->win[i / 64] >> (i % 64) & 1;
}

static void bit_put(rx_stream_t *st, uint32_t ext, bool on)
{
    uint32_t i = ext % WIN;
    if (on) st->win[i / 64] |= 1ull << (i % 64);
    else st->win[i / 64] &= ~(1ull << (i % 64));
}

static void miss_add(rx_stream_t *st, uint32_t ext, uint64_t now)
{
    if (st->n_miss == MISS_MAX) { /* the oldest goes */
        memmove(st->miss, st->miss + 1, (MISS_MAX - 1) * sizeof st->miss[0]);
        st->n_miss--;
    }
    st->miss[st->n_miss++] = (missing_t){.ext = ext, .since_us = now};
}

static void miss_remove(rx_stream_t *st, uint32_t ext)
{
    for (size_t i = 0; i < st->n_miss; i++)
        if (st->miss[i].ext == ext) {
            memmove(st->miss + i, st->miss + i + 1, (st->n_miss - i - 1) * sizeof st->miss[0]);
            st->n_miss--;
            return;
        }
}

static void win_count(rx_stream_t *st, uint32_t ext, bool late)
{
    if (!st->in_win || ext <= st->win_lo || ext > st->win_hi) return;
    st->win_rx++;
    st->win_late += late;
}

/* One RTP sequence number (RFC 3550 A.1 extension to 32 bits). Returns true when a gap opened
 * that NACK should cover. */
static bool seq_update(rx_stream_t *st, uint16_t seq, uint64_t now)
{
    if (!st->started) {
        st->started = true;
        st->base = st->max = (1u << 16) + seq;
        bit_put(st, st->max, true);
        st->received++;
        if (st->win_pending) {
            st->win_pending = false;
            st->in_win = true;
            st->win_lo = st->max - 1;
            st->win_hi = UINT32_MAX;
        }
        win_count(st, st->max, false);
        return false;
    }
    int16_t d = (int16_t)(seq - (uint16_t)st->max);
    uint32_t ext = (uint32_t)((int64_t)st->max + d);
    if (d > 0) {
        bool gap = d > 1;
        if (d >= WIN) memset(st->win, 0, sizeof st->win); /* the loop below covers less */
        for (uint32_t x = st->max + 1; x < ext && x - st->max < WIN; x++) {
            bit_put(st, x, false);
            if (st->track->nack && ext - x <= MISS_MAX) miss_add(st, x, now);
        }
        st->max = ext;
        bit_put(st, ext, true);
        st->received++;
        win_count(st, ext, false);
        return gap && st->track->nack;
    }
    if (d == 0 || (st->max - ext < WIN && bit_get(st, ext))) {
        st->dups++;
        return false;
    }
    if (st->max - ext >= WIN) {
        st->too_old++; /* cannot tell a duplicate from a late one: neither counted */
        return false;
    }
    bit_put(st, ext, true);
    st->received++;
    st->late++;
    win_count(st, ext, true);
    if (st->n_miss) miss_remove(st, ext);
    return false;
}

static void latency_add(gen_t *g, int64_t us)
{
    if (us < 0) {
        g->lat_neg++;
        us = 0;
    }
    if ((uint64_t)us > g->lat_max_us) g->lat_max_us = (uint64_t)us;
    uint64_t u = (uint64_t)us;
    uint64_t b = u < LAT_FINE_US ? u / 10 : LAT_FINE_US / 10 + (u - LAT_FINE_US) / 1000;
    g->lat_hist[b < LAT_BUCKETS ? b : LAT_BUCKETS - 1]++;
    g->lat_n++;
}

static void player_rearm(gen_t *g, player_t *p, uint64_t now);

/* A plain RTP packet's header, before (or instead of) decryption. Returns its stream, or NULL
 * for a packet of an SSRC the answer did not announce (counted, not decrypted). */
static rx_stream_t *rtp_account(gen_t *g, player_t *p, const uint8_t *b, size_t len,
                                uint64_t now, uint64_t arrival, uint64_t wall)
{
    rx_stream_t *st = rx_find(p, es_rd32(b + 8), b[1] & 0x7f);
    if (!st) {
        p->foreign++;
        return NULL;
    }
    p->packets++;
    p->bytes += len;
    uint16_t seq = es_rd16(b + 2);
    if (seq_update(st, seq, arrival)) {
        uint64_t due = arrival + NACK_AFTER_US;
        if (g->o.rtcp && (!p->nack_due || due < p->nack_due)) {
            p->nack_due = due;
            player_rearm(g, p, now);
        }
    }
    es_rtp_recv_stats_update(&st->rs, seq, es_rd32(b + 4), arrival, st->track->clock_rate);
    if (!g->measuring || !st->track->ast_id) return st;
    es_rtp_packet_t pkt;
    const uint8_t *ast;
    if (es_rtp_parse(b, len, &pkt) != 0 || es_rtp_ext_find(&pkt, st->track->ast_id, &ast) != 3)
        return st;
    uint32_t sent = (uint32_t)ast[0] << 16 | (uint32_t)ast[1] << 8 | ast[2];
    latency_add(g, bench_ast_delta_us(bench_ast(wall), sent));
    return st;
}

/* After a call into the session: a session that ended fails the player; otherwise its timer. */
static void after_session(gen_t *g, player_t *p, uint64_t now)
{
    if (p->ended && p->state != P_FAILED && p->state != P_DELETING && p->state != P_DONE) {
        char why[200];
        snprintf(why, sizeof why, "%s", p->fail);
        player_fail(g, p, why);
        return;
    }
    if (p->state == P_CONNECTING || p->state == P_MEDIA) player_rearm(g, p, now);
}

static bool same_remote(const player_t *p, const struct sockaddr_storage *a)
{
    size_t n = a->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    return !memcmp(&p->pair.remote, a, n);
}

/* A sampled packet that did not decrypt: counted, and the first few told on stderr. */
static void decrypt_failed(gen_t *g, player_t *p, const uint8_t *b, size_t len)
{
    p->decrypt_fail++;
    if (++g->fail_logged <= 10)
        fprintf(stderr, "decrypt failure: player %u, SSRC %08x, sequence number %u, payload type "
                "%u, %zu bytes, after %llu decrypted\n", p->idx, es_rd32(b + 8), es_rd16(b + 2),
                b[1] & 0x7f, len, (unsigned long long)p->decrypt_ok);
}

/* One datagram of a recvmmsg that returned at now (monotonic µs) and wall (CLOCK_REALTIME µs). */
static void datagram(gen_t *g, player_t *p, size_t i, uint64_t now, uint64_t wall)
{
    uint8_t *b = g->bufs[i];
    size_t len = g->msgs[i].msg_len;
    if (!p->s || p->ended || len == 0 || g->phase == PH_CLOSE) return;
    bool rtp = len >= 12 && b[0] >= 128 && b[0] <= 191 && !es_rtp_is_rtcp(b, len);
    uint64_t now_wall = wall;
    if (rtp && p->connected) {
        if (g->o.kernel_ts) {
            struct msghdr *mh = &g->msgs[i].msg_hdr;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    wall = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
                }
        }
        /* The arrival on the monotonic clock, for jitter and NACK timing: a round's wait does
         * not count as the packet's delay. */
        uint64_t arrival = now - (now_wall > wall && now_wall - wall < now ? now_wall - wall : 0);
        rx_stream_t *st = rtp_account(g, p, b, len, now, arrival, wall);
        if (!st) return;
        /* Sampling starts once the SSRC decrypted: SRTP's receiver learns the rollover counter
         * from the packets it sees (RFC 3711 §3.3.1), so it must see the stream's first ones,
         * or it guesses 0 after a wrap the sender already counted; gaps below 2^15 are fine. */
        if (st->decrypted && (p->rtp_seen++ % g->o.sample) != 0) return;
    }
    es_addr_pair_t tmp, *pair = &p->pair;
    if (g->msgs[i].msg_hdr.msg_name && !same_remote(p, &g->names[i])) {
        tmp = p->pair;
        memcpy(&tmp.remote, &g->names[i], sizeof tmp.remote);
        tmp.remote_len = g->msgs[i].msg_hdr.msg_namelen;
        pair = &tmp;
    }
    uint64_t errs = rtp ? es_rtc_session_stats(p->s).srtp_errors : 0;
    uint64_t ok = p->decrypt_ok;
    es_rtc_session_handle_datagram(p->s, now, b, len, pair);
    if (rtp && p->connected) {
        if (es_rtc_session_stats(p->s).srtp_errors > errs) decrypt_failed(g, p, b, len);
        else if (p->decrypt_ok == ok) p->decrypt_replay++;
    }
    after_session(g, p, now);
}

static void player_receive(gen_t *g, player_t *p)
{
    for (int round = 0; round < 4 && p->fd >= 0; round++) {
        /* Once in rounds, every datagram comes from the pair ICE selected (the only sender in
         * a benchmark): not asking for the source saves a copy per datagram. */
        bool names = !g->rounds;
        for (size_t i = 0; i < BATCH; i++) {
            g->msgs[i].msg_hdr.msg_name = names ? &g->names[i] : NULL;
            g->msgs[i].msg_hdr.msg_namelen = names ? sizeof g->names[i] : 0;
            g->msgs[i].msg_hdr.msg_controllen = g->o.kernel_ts ? sizeof g->ctrl[i] : 0;
        }
        int n = recvmmsg(p->fd, g->msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) return;
        uint64_t now = es_clock_now_us(), wall = bench_wall_us();
        bool was_measuring = g->measuring;
        if (was_measuring) {
            g->rx_calls++;
            g->rx_datagrams += (uint64_t)n;
        }
        for (int i = 0; i < n; i++) datagram(g, p, (size_t)i, now, wall);
        if (was_measuring) p->win_bytes1 = p->bytes;
        if (n < BATCH) return;
    }
}

/* --- RTCP we send --- */

static void send_report(gen_t *g, player_t *p, uint64_t now)
{
    uint8_t buf[1500];
    es_rtcp_report_t r = {.ssrc = p->ssrc};
    for (size_t i = 0; i < p->n_rx && r.n_blocks < 31; i++)
        if (p->rx[i].started)
            es_rtp_recv_stats_block(&p->rx[i].rs, p->rx[i].ssrc, now, &r.blocks[r.n_blocks++]);
    const size_t cap = sizeof buf - ES_SRTP_MAX_TRAILER; /* room for the SRTCP trailer */
    int n = es_rtcp_write_rr(&r, buf, cap);
    if (n <= 0) return;
    char cname[32];
    snprintf(cname, sizeof cname, "bench-%s", p->ufrag);
    int m = es_rtcp_write_sdes_cname(p->ssrc, cname, buf + n, cap - (size_t)n);
    if (m > 0) n += m;
    if (es_rtc_session_send_rtcp(p->s, buf, (size_t)n, sizeof buf) == 0) p->reports++;
}

/* NACKs due at now; returns the next time something is due (0: nothing missing). */
static uint64_t send_nacks(gen_t *g, player_t *p, uint64_t now)
{
    uint64_t next = 0;
    for (size_t i = 0; i < p->n_rx; i++) {
        rx_stream_t *st = &p->rx[i];
        uint16_t seqs[MISS_MAX];
        size_t n = 0, keep = 0;
        for (size_t k = 0; k < st->n_miss; k++) {
            missing_t *m = &st->miss[k];
            uint64_t at = (m->tries ? m->last_us : m->since_us) + NACK_AFTER_US;
            if (m->tries < NACK_TRIES && now >= at && p->connected) {
                seqs[n++] = (uint16_t)m->ext;
                m->tries++;
                m->last_us = now;
                at = now + NACK_AFTER_US;
            }
            bool forget = st->max - m->ext >= WIN ||
                          (m->tries >= NACK_TRIES && now - m->last_us >= NACK_FORGET_US);
            if (forget) continue;
            next = earliest(next, m->tries < NACK_TRIES ? at : m->last_us + NACK_FORGET_US);
            st->miss[keep++] = *m;
        }
        st->n_miss = keep;
        if (!n) continue;
        uint8_t buf[1500];
        int len = es_rtcp_write_nack(p->ssrc, st->ssrc, seqs, n, buf,
                                     sizeof buf - ES_SRTP_MAX_TRAILER);
        if (len > 0 && es_rtc_session_send_rtcp(p->s, buf, (size_t)len, sizeof buf) == 0) {
            p->nacks++;
            p->nack_seqs += n;
        }
    }
    return next;
}

/* --- timers --- */

static void player_rearm(gen_t *g, player_t *p, uint64_t now)
{
    uint64_t d = p->s ? es_rtc_session_next_timeout_us(p->s, now) : 0;
    if (d && d <= now) d = now + 1000; /* never spin on a deadline that does not move */
    /* NACKs and reports move their own deadlines forward when handled. */
    if (p->connected && g->o.rtcp) d = earliest(earliest(d, p->rtcp_due), p->nack_due);
    if (p->state == P_CONNECTING) d = earliest(d, p->deadline_us);
    heap_set(g, p, d);
}

static void player_timer(gen_t *g, player_t *p, uint64_t now)
{
    uint64_t sd = es_rtc_session_next_timeout_us(p->s, now);
    if (sd && sd <= now) {
        es_rtc_session_handle_timeout(p->s, now);
        after_session(g, p, now);
        if (p->state != P_CONNECTING && p->state != P_MEDIA) return;
    }
    if (p->state == P_CONNECTING && now >= p->deadline_us) {
        char why[120];
        snprintf(why, sizeof why, "no decrypted RTP within %u ms (session %s)", g->o.connect_ms,
                 es_rtc_session_state_name(es_rtc_session_state(p->s)));
        player_fail(g, p, why);
        return;
    }
    if (p->connected && g->o.rtcp && now >= p->rtcp_due) {
        send_report(g, p, now);
        p->rtcp_due = p->rtcp_due + RTCP_US > now ? p->rtcp_due + RTCP_US : now + RTCP_US;
    }
    if (p->nack_due && now >= p->nack_due) p->nack_due = send_nacks(g, p, now);
    player_rearm(g, p, now);
}

/* --- HTTP (libcurl multi on our epoll set) --- */

static int curl_socket(CURL *e, curl_socket_t fd, int what, void *user, void *sockp)
{
    gen_t *g = user;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(g->ep, EPOLL_CTL_DEL, fd, NULL); /* may be closed already */
        curl_multi_assign(g->multi, fd, NULL);
        return 0;
    }
    struct epoll_event ev = {.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                                       (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
                             .data.u64 = CURL_TAG | (uint32_t)fd};
    if (!sockp) {
        if (epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
            epoll_ctl(g->ep, EPOLL_CTL_MOD, fd, &ev);
        curl_multi_assign(g->multi, fd, g);
    } else {
        epoll_ctl(g->ep, EPOLL_CTL_MOD, fd, &ev);
    }
    return 0;
}

static int curl_timer(CURLM *m, long timeout_ms, void *user)
{
    gen_t *g = user;
    g->curl_due = timeout_ms < 0 ? 0 : es_clock_now_us() + (uint64_t)timeout_ms * 1000 + 1;
    return 0;
}

static bool http_start(gen_t *g, player_t *p, const char *url, const char *offer, long timeout_ms)
{
    if (bench_http_begin(&p->http, url, offer, g->o.token, timeout_ms) != 0) {
        bench_http_end(&p->http);
        return false;
    }
    curl_easy_setopt(p->http.easy, CURLOPT_PRIVATE, p);
    if (curl_multi_add_handle(g->multi, p->http.easy) != CURLM_OK) {
        bench_http_end(&p->http);
        return false;
    }
    g->inflight++;
    return true;
}

static void player_open(gen_t *g, player_t *p, uint64_t now)
{
    char err[200], text[8192];
    p->post_us = now;
    p->deadline_us = now + (uint64_t)g->o.connect_ms * 1000;
    p->state = P_POSTING;
    p->fd = bench_udp_open(g->o.bind, g->o.rcvbuf, &p->local, &p->local_len, err, sizeof err);
    if (p->fd < 0) {
        player_fail(g, p, err);
        return;
    }
    int on = 1;
    if (g->o.kernel_ts) setsockopt(p->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = p->idx};
    epoll_ctl(g->ep, EPOLL_CTL_ADD, p->fd, &ev);
    bench_ice_credentials(p->ufrag, p->pwd);
    p->ssrc = es_random32();
    bench_offer_spec_t spec = {.send = false, .h264_plid = "42e01f"};
    p->offer = bench_offer_new(&spec, g->cert, p->ufrag, p->pwd, (struct sockaddr *)&p->local);
    if (!p->offer || bench_offer_write(p->offer, text, sizeof text) < 0) {
        player_fail(g, p, "cannot write the offer");
        return;
    }
    if (!http_start(g, p, g->o.url, text, (long)g->o.connect_ms))
        player_fail(g, p, "libcurl refused the request");
}

static void post_done(gen_t *g, player_t *p, CURLcode rc, long status, uint64_t now)
{
    char why[200];
    if (rc != CURLE_OK) {
        snprintf(why, sizeof why, "HTTP: %.180s",
                 p->http.error[0] ? p->http.error : curl_easy_strerror(rc));
        player_fail(g, p, why);
        return;
    }
    if (status != 201 && status != 200) {
        const char *body = p->http.body ? p->http.body : "";
        size_t n = strcspn(body, "\r\n");
        snprintf(why, sizeof why, "HTTP %ld: %.*s", status, (int)(n > 90 ? 90 : n), body);
        player_fail(g, p, why);
        return;
    }
    if (p->http.location[0])
        bench_url_resolve(g->o.url, p->http.location, p->resource, sizeof p->resource);
    bench_answer_t *a = malloc(sizeof *a);
    char err[300];
    if (!a || bench_answer_take(p->offer, p->http.body ? p->http.body : "", p->http.len,
                                (struct sockaddr *)&p->local, p->local_len, a, err, sizeof err) != 0) {
        snprintf(why, sizeof why, "bad answer: %.180s", a ? err : "out of memory");
        free(a);
        player_fail(g, p, why);
        return;
    }
    free(p->offer);
    p->offer = NULL;
    memcpy(p->tracks, a->tracks, sizeof p->tracks);
    p->n_tracks = a->n_tracks;
    p->pair = a->cand[0];
    es_rtc_session_params_t prm =
        bench_session_params(a, p->ufrag, p->pwd, g->cert, g->o.connect_ms, now);
    prm.cb = (es_rtc_session_callbacks_t){.send = cb_send, .on_rtp = cb_rtp, .on_rtcp = cb_rtcp,
                                          .on_state = cb_state};
    prm.user = p;
    p->s = es_rtc_session_new(&prm);
    for (size_t i = 0; p->s && i < a->n_cand; i++)
        es_rtc_session_add_remote_candidate(p->s, &a->cand[i], a->cand_prio[i], now);
    free(a);
    if (!p->s) {
        player_fail(g, p, "cannot create the session");
        return;
    }
    p->state = P_CONNECTING;
    player_rearm(g, p, now);
}

static void curl_finished(gen_t *g, uint64_t now)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(g->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        char *priv = NULL;
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        player_t *p = (player_t *)priv;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(g->multi, e);
        g->inflight--;
        if (p->state == P_POSTING) post_done(g, p, rc, status, now);
        else if (p->state == P_DELETING) {
            p->state = P_DONE;
            g->deleted += rc == CURLE_OK && status >= 200 && status < 300;
        }
        bench_http_end(&p->http);
    }
}

static void curl_run(gen_t *g, curl_socket_t fd, int flags, uint64_t now)
{
    int running;
    curl_multi_socket_action(g->multi, fd, flags, &running);
    curl_finished(g, now);
}

/* --- /proc --- */

static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut, st;
    /* after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    fclose(f);
    return kb;
}

/* The only CPU pid may run on, or -1 when it may run on several. */
static int proc_single_cpu(int pid)
{
    cpu_set_t set;
    if (sched_getaffinity(pid, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1) return -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) return c;
    return -1;
}

/* Busy seconds of one CPU from /proc/stat (all but idle and iowait), -1 if unknown. */
static double cpu_busy_s(int cpu)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    char line[512], want[16];
    snprintf(want, sizeof want, "cpu%d ", cpu);
    double busy = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v[8] = {0};
        if (strncmp(line, want, strlen(want)) != 0) continue;
        if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) >= 7)
            busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
        break;
    }
    fclose(f);
    return busy;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* --- phases --- */

static void window_begin(gen_t *g, uint64_t now)
{
    g->measuring = true;
    g->players_at_start = g->with_media;
    for (size_t i = 0; i < g->o.players; i++) {
        player_t *p = &g->players[i];
        p->win_bytes0 = p->win_bytes1 = p->bytes;
        p->in_window = p->state == P_MEDIA;
        for (size_t k = 0; k < p->n_rx; k++) {
            rx_stream_t *st = &p->rx[k];
            st->in_win = st->started;
            st->win_pending = !st->started;
            st->win_lo = st->max;
            st->win_hi = UINT32_MAX;
        }
    }
    g->srv_cpu0 = g->o.server_pid ? proc_cpu_s(g->o.server_pid) : -1;
    g->srv_core = g->o.server_pid ? proc_single_cpu(g->o.server_pid) : -1;
    g->core_busy0 = g->srv_core >= 0 ? cpu_busy_s(g->srv_core) : -1;
    g->gen_cpu0 = self_cpu_s();
    g->win_start = now;
}

static void window_end(gen_t *g, uint64_t now)
{
    g->measuring = false;
    g->win_end = now;
    g->srv_cpu1 = g->o.server_pid ? proc_cpu_s(g->o.server_pid) : -1;
    g->core_busy1 = g->srv_core >= 0 ? cpu_busy_s(g->srv_core) : -1;
    g->gen_cpu1 = self_cpu_s();
    g->rss_win_kb = g->o.server_pid ? proc_rss_kb(g->o.server_pid) : -1;
    g->self_rss1_kb = proc_rss_kb(getpid());
    for (size_t i = 0; i < g->o.players; i++) {
        player_t *p = &g->players[i];
        for (size_t k = 0; k < p->n_rx; k++) {
            rx_stream_t *st = &p->rx[k];
            if (st->win_pending) st->in_win = false; /* nothing arrived in the window */
            st->win_hi = st->max;
        }
    }
}

static void close_begin(gen_t *g, uint64_t now)
{
    g->phase = PH_CLOSE;
    g->close_end = now + CLOSE_US;
    g->close_next = 0;
    for (size_t i = 0; i < g->o.players; i++) {
        player_t *p = &g->players[i];
        heap_set(g, p, 0);
        if (p->state == P_POSTING) { /* abandon the request */
            curl_multi_remove_handle(g->multi, p->http.easy);
            bench_http_end(&p->http);
            g->inflight--;
        }
        p->state = P_FAILED;
        /* Without a resource to DELETE, a DTLS close_notify ends the server's session. */
        if (p->s && !p->resource[0]) es_rtc_session_close(p->s, "the benchmark ends");
    }
}

/* DELETEs, at most max_inflight at once. Returns true when none is left. */
static bool close_step(gen_t *g)
{
    for (; g->close_next < g->o.players && g->inflight < g->o.max_inflight; g->close_next++) {
        player_t *p = &g->players[g->close_next];
        if (!p->resource[0]) continue;
        p->state = P_DELETING;
        if (!http_start(g, p, p->resource, NULL, 3000)) p->state = P_DONE;
    }
    return g->close_next == g->o.players && g->inflight == 0;
}

/* --- results --- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct_of(const double *v, size_t n, double q)
{
    if (!n) return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static double lat_pct_ms(const gen_t *g, double q)
{
    if (!g->lat_n) return 0;
    uint64_t want = (uint64_t)(q * (double)g->lat_n), seen = 0;
    for (size_t b = 0; b < LAT_BUCKETS; b++) {
        seen += g->lat_hist[b];
        if (seen <= want) continue;
        if (b < LAT_FINE_US / 10) return ((double)b * 10 + 5) / 1000.0; /* the bucket's middle */
        return (double)(LAT_FINE_US + (b - LAT_FINE_US / 10) * 1000 + 500) / 1000.0;
    }
    return (double)g->lat_max_us / 1000.0;
}

static void report(gen_t *g)
{
    const options_t *o = &g->o;
    double win_s = g->win_end > g->win_start ? (double)(g->win_end - g->win_start) / 1e6 : 0;
    double *conn = calloc(o->players + 1, sizeof *conn);
    size_t n_conn = 0, n_rate = 0;
    double rate_sum = 0, rate_min = -1, worst = 0;
    uint64_t expected = 0, received = 0, late = 0, dec_ok = 0, dec_fail = 0, dec_replay = 0;
    uint64_t nacks = 0, nack_seqs = 0, reports = 0, dups = 0, packets = 0, foreign = 0;
    for (size_t i = 0; i < o->players; i++) {
        const player_t *p = &g->players[i];
        if (p->media_us) conn[n_conn++] = (double)(p->media_us - p->post_us) / 1000.0;
        dec_ok += p->decrypt_ok;
        dec_fail += p->decrypt_fail;
        dec_replay += p->decrypt_replay;
        nacks += p->nacks;
        nack_seqs += p->nack_seqs;
        reports += p->reports;
        packets += p->packets;
        foreign += p->foreign;
        if (!p->in_window || win_s <= 0) continue; /* late ones would skew rate and loss */
        uint64_t pe = 0, pr = 0;
        for (size_t k = 0; k < p->n_rx; k++) {
            const rx_stream_t *st = &p->rx[k];
            dups += st->dups;
            if (!st->in_win) continue;
            pe += st->win_hi - st->win_lo;
            pr += st->win_rx;
            late += st->win_late;
        }
        expected += pe;
        received += pr;
        double loss = pe ? 100.0 * (double)(pe - (pr < pe ? pr : pe)) / (double)pe : 100.0;
        if (loss > worst) worst = loss;
        double kbps = (double)(p->win_bytes1 - p->win_bytes0) * 8 / win_s / 1000;
        rate_sum += kbps;
        n_rate++;
        if (rate_min < 0 || kbps < rate_min) rate_min = kbps;
    }
    qsort(conn, n_conn, sizeof *conn, cmp_double);
    uint64_t lost = expected - (received < expected ? received : expected);
    double loss = expected ? 100.0 * (double)lost / (double)expected : 0;
    double reord = received ? 100.0 * (double)late / (double)received : 0;
    double srv_cpu = g->srv_cpu0 >= 0 && g->srv_cpu1 >= 0 && win_s > 0
                         ? 100.0 * (g->srv_cpu1 - g->srv_cpu0) / win_s : -1;
    double gen_cpu = win_s > 0 ? 100.0 * (g->gen_cpu1 - g->gen_cpu0) / win_s : -1;
    /* What else ran on the server's core (other processes, interrupts): a measurement taken
     * while it is large is disturbed. */
    double other = srv_cpu >= 0 && g->core_busy0 >= 0 && g->core_busy1 >= 0
                       ? 100.0 * (g->core_busy1 - g->core_busy0) / win_s - srv_cpu : -1;
    if (other < 0 && other > -5) other = 0; /* tick rounding */
    size_t np = g->players_at_start ? g->players_at_start : 1;
    double kb_pp = g->rss_win_kb > 0 && g->rss_base_kb > 0
                       ? (double)(g->rss_win_kb - g->rss_base_kb) / (double)np : -1;
    size_t failed = o->players - n_conn; /* never had media */

    printf("players: %zu asked, %zu connected with media (%zu at the window's start, %zu dropped "
           "during it), %zu never connected\n", o->players, n_conn, g->players_at_start,
           g->dropped_in_window, failed);
    for (size_t i = 0; i < g->n_reasons; i++)
        printf("  failure x%zu: %s\n", g->reasons[i].n, g->reasons[i].text);
    if (g->other_reasons) printf("  failure x%zu: other reasons\n", g->other_reasons);
    printf("connect (POST to first decrypted RTP): p50 %.1f ms, p95 %.1f, p99 %.1f, max %.1f\n",
           pct_of(conn, n_conn, .5), pct_of(conn, n_conn, .95), pct_of(conn, n_conn, .99),
           n_conn ? conn[n_conn - 1] : 0);
    printf("window %.1f s: bitrate per player mean %.0f kbit/s, min %.0f; loss %.3f%% (worst player "
           "%.3f%%), reordered %.3f%%, duplicates %llu\n", win_s, n_rate ? rate_sum / (double)n_rate : 0,
           rate_min < 0 ? 0 : rate_min, loss, worst, reord, (unsigned long long)dups);
    printf("latency (receive - publisher's abs-send-time, %llu packets%s): p50 %.2f ms, p99 %.2f, "
           "max %.2f%s\n", (unsigned long long)g->lat_n, o->kernel_ts ? ", kernel timestamps" : "",
           lat_pct_ms(g, .5), lat_pct_ms(g, .99), (double)g->lat_max_us / 1000.0,
           g->lat_neg ? " (some negative: clock or stamp skew)" : "");
    printf("SRTP: %llu packets decrypted (1 in %u), %llu failures, %llu replays; RTCP: %llu reports, "
           "%llu NACKs for %llu packets\n", (unsigned long long)dec_ok, o->sample,
           (unsigned long long)dec_fail, (unsigned long long)dec_replay, (unsigned long long)reports,
           (unsigned long long)nacks, (unsigned long long)nack_seqs);
    if (foreign)
        printf("WARNING: %llu RTP packets of SSRCs no answer announced (a stale session of an earlier "
               "run sending to a reused port?)\n", (unsigned long long)foreign);
    if (srv_cpu >= 0)
        printf("server: %.1f%% of a core, %.4f%% per player; RSS %ld -> %ld KiB, %.1f KiB per player\n",
               srv_cpu, srv_cpu / (double)np, g->rss_base_kb, g->rss_win_kb, kb_pp);
    if (other >= 0)
        printf("server's core (cpu%d): %.1f%% busy with something else during the window%s\n",
               g->srv_core, other, other > 5 ? " (DISTURBED: the numbers above are not clean)" : "");
    /* The generator's cost per datagram received in the window, and what that makes of its
     * ceiling for players of this stream (at the rate the players received on average). */
    double ns = g->rx_datagrams ? (g->gen_cpu1 - g->gen_cpu0) * 1e9 / (double)g->rx_datagrams : 0;
    double pps = win_s > 0 ? (double)g->rx_datagrams / win_s / (double)np : 0;
    double ceiling = ns > 0 && pps > 0 ? 1e9 / (ns * pps) : 0;
    printf("generator: %.1f%% of a core (%.1f%% per 1000 players), %.0f ns per datagram at %.1f "
           "datagrams per recvmmsg (%.0f per player per second: %.0f players per core); RSS %.1f "
           "KiB per player; %llu RTP packets in all\n", gen_cpu, gen_cpu * 1000 / (double)np, ns,
           g->rx_calls ? (double)g->rx_datagrams / (double)g->rx_calls : 0, pps, ceiling,
           (double)(g->self_rss1_kb - g->self_rss0_kb) / (double)np, (unsigned long long)packets);
    if (o->json) {
        printf("{\"players\":%zu,\"connected\":%zu,\"at_start\":%zu,\"dropped\":%zu,\"failed\":%zu,"
               "\"window_s\":%.2f,\"kbps_mean\":%.1f,\"kbps_min\":%.1f,\"loss_pct\":%.4f,"
               "\"worst_loss_pct\":%.4f,\"reordered_pct\":%.4f,\"duplicates\":%llu,"
               "\"decrypted\":%llu,\"decrypt_failures\":%llu,\"foreign\":%llu,\"nacks\":%llu,\"nack_packets\":%llu,"
               "\"latency_packets\":%llu,\"latency_p50_ms\":%.2f,\"latency_p99_ms\":%.2f,"
               "\"latency_max_ms\":%.2f,\"connect_p50_ms\":%.1f,\"connect_p95_ms\":%.1f,"
               "\"connect_p99_ms\":%.1f,\"connect_max_ms\":%.1f,\"server_cpu_pct\":%.2f,"
               "\"server_cpu_pct_per_player\":%.4f,\"server_rss_base_kb\":%ld,"
               "\"server_rss_kb\":%ld,\"server_kb_per_player\":%.1f,\"gen_cpu_pct\":%.2f,"
               "\"server_core_other_pct\":%.1f,\"gen_ns_per_datagram\":%.0f,\"gen_ceiling_players\":%.0f,"
               "\"failures\":[", o->players, n_conn, g->players_at_start, g->dropped_in_window,
               failed, win_s, n_rate ? rate_sum / (double)n_rate : 0, rate_min < 0 ? 0 : rate_min,
               loss, worst, reord, (unsigned long long)dups, (unsigned long long)dec_ok,
               (unsigned long long)dec_fail, (unsigned long long)foreign, (unsigned long long)nacks,
               (unsigned long long)nack_seqs, (unsigned long long)g->lat_n, lat_pct_ms(g, .5),
               lat_pct_ms(g, .99), (double)g->lat_max_us / 1000.0, pct_of(conn, n_conn, .5),
               pct_of(conn, n_conn, .95), pct_of(conn, n_conn, .99), n_conn ? conn[n_conn - 1] : 0,
               srv_cpu, srv_cpu >= 0 ? srv_cpu / (double)np : -1, g->rss_base_kb, g->rss_win_kb,
               kb_pp, gen_cpu, other, ns, ceiling);
        for (size_t i = 0; i < g->n_reasons; i++) {
            printf("%s{\"n\":%zu,\"reason\":\"", i ? "," : "", g->reasons[i].n);
            for (const char *c = g->reasons[i].text; *c; c++)
                if (*c == '"' || *c == '\\') printf("\\%c", *c);
                else if ((unsigned char)*c >= 0x20) putchar(*c);
            printf("\"}");
        }
        printf("]}\n");
    }
    free(conn);
}

/* --- the loop --- */

static void phase_step(gen_t *g, uint64_t now)
{
    const options_t *o = &g->o;
    if (g_stop && g->phase < PH_CLOSE) {
        if (g->measuring) window_end(g, now);
        close_begin(g, now);
        return;
    }
    switch (g->phase) {
    case PH_CONNECT: {
        uint64_t gap = (uint64_t)(1e6 / o->rate);
        if (g->next_open_us + gap < now) g->next_open_us = now - gap; /* no burst to catch up */
        while (g->opened < o->players && now >= g->next_open_us && g->inflight < o->max_inflight) {
            player_open(g, &g->players[g->opened++], now);
            g->next_open_us += gap;
        }
        if ((g->opened == o->players && g->settled == o->players) || now >= g->connect_end) {
            g->phase = PH_WARMUP;
            g->win_start = now + (uint64_t)(o->warmup_s * 1e6);
        }
        break;
    }
    case PH_WARMUP:
        if (now >= g->win_start) {
            window_begin(g, now);
            g->phase = PH_MEASURE;
            g->win_end = now + (uint64_t)(o->duration_s * 1e6);
        }
        break;
    case PH_MEASURE:
        if (now >= g->win_end) {
            window_end(g, now);
            g->phase = PH_GRACE;
            g->grace_end = now + GRACE_US;
        }
        break;
    case PH_GRACE:
        if (now >= g->grace_end) close_begin(g, now);
        break;
    case PH_CLOSE:
        break;
    }
}

static uint64_t phase_due(const gen_t *g)
{
    switch (g->phase) {
    case PH_CONNECT: return g->opened < g->o.players ? g->next_open_us : g->connect_end;
    case PH_WARMUP: return g->win_start;
    case PH_MEASURE: return g->win_end;
    case PH_GRACE: return g->grace_end;
    default: return 0;
    }
}

/* Sleeps until `until` (monotonic µs). */
static void sleep_until(uint64_t until)
{
    uint64_t now = es_clock_now_us();
    if (until <= now) return;
    struct timespec ts = {.tv_sec = (time_t)((until - now) / 1000000),
                          .tv_nsec = (long)((until - now) % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void run(gen_t *g)
{
    enum { MAX_EVENTS = 4096 };
    struct epoll_event *evs = calloc(MAX_EVENTS, sizeof *evs);
    if (!evs) return;
    uint64_t now = es_clock_now_us();
    g->t0 = g->next_open_us = now;
    /* Connecting is bounded: the opening at the given rate, with slack for a bounded number of
     * requests in flight, and each player's own connect timeout. */
    g->connect_end = now + (uint64_t)((double)g->o.players / g->o.rate * 1.5e6) +
                     (uint64_t)g->o.connect_ms * 1000 + 2000000;
    for (;;) {
        now = es_clock_now_us();
        phase_step(g, now);
        if (g->phase == PH_CLOSE && (close_step(g) || now >= g->close_end)) break;
        uint64_t due = earliest(phase_due(g), g->curl_due);
        if (g->heap_n) due = earliest(due, g->heap[0]->due);
        if (g->phase == PH_CLOSE) due = earliest(due, now + 10000);
        int timeout = 100; /* ms */
        if (due) timeout = due <= now ? 0 : due - now < 100000 ? (int)((due - now + 999) / 1000) : 100;
        /* Once connected, receive in rounds: the packets a socket gathers meanwhile come in one
         * recvmmsg, which costs far less per packet than a wake-up each. The kernel's receive
         * timestamps keep the latency exact; the players' timers (reports, NACKs) run once per
         * round, at most one interval late. */
        bool rounds = g->o.interval_us && (g->phase == PH_WARMUP || g->phase == PH_MEASURE ||
                                           g->phase == PH_GRACE);
        g->rounds = rounds;
        if (rounds) {
            sleep_until(earliest(phase_due(g), g->round_us + g->o.interval_us));
            g->round_us = es_clock_now_us();
            timeout = 0;
        }
        int n = epoll_wait(g->ep, evs, MAX_EVENTS, timeout);
        now = es_clock_now_us();
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            if (d & CURL_TAG) {
                int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                            (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                            (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
                curl_run(g, (curl_socket_t)(uint32_t)d, flags, now);
            } else if (d < g->o.players) {
                player_receive(g, &g->players[d]);
            }
        }
        now = es_clock_now_us();
        if (g->curl_due && now >= g->curl_due) {
            g->curl_due = 0;
            curl_run(g, CURL_SOCKET_TIMEOUT, 0, now);
        }
        /* Due players, each at most once per turn (a handled one is re-armed later than now). */
        for (size_t k = g->heap_n; k > 0 && g->heap_n && g->heap[0]->due <= now; k--) {
            player_t *p = g->heap[0];
            heap_set(g, p, 0);
            player_timer(g, p, now);
        }
    }
    free(evs);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_whep_load --url WHEP_URL [options]\n"
            "  --players N            players to open (100)\n"
            "  --rate R               new players per second (100)\n"
            "  --max-inflight K       HTTP requests at once (32)\n"
            "  --warmup S             seconds between the last connect and the window (3)\n"
            "  --duration S           the measurement window in seconds (10)\n"
            "  --bind ADDR            local address of the players' sockets (127.0.0.1)\n"
            "  --token T              Authorization: Bearer T\n"
            "  --decrypt-every N      decrypt every Nth RTP packet per player (50)\n"
            "  --decrypt-all          decrypt every packet\n"
            "  --no-rtcp              send no receiver reports and no NACKs\n"
            "  --no-kernel-ts         receive time from the clock after recvmmsg, not SO_TIMESTAMPNS\n"
            "  --connect-timeout-ms M POST to first decrypted RTP (10000)\n"
            "  --rcvbuf BYTES         socket receive buffer (2097152)\n"
            "  --interval-us US       once connected, one receive round per US (20000; 0: a\n"
            "                         wake-up per datagram; 0 unless kernel timestamps)\n"
            "  --server-pid PID       the server's CPU and RSS from /proc\n"
            "  --json                 also print one JSON line\n");
}

static int parse_args(int argc, char **argv, options_t *o)
{
    *o = (options_t){.bind = "127.0.0.1", .players = 100, .rate = 100, .max_inflight = 32,
                     .warmup_s = 3, .duration_s = 10, .sample = 50, .rtcp = true,
                     .kernel_ts = true, .connect_ms = 10000, .rcvbuf = 2 << 20,
                     .interval_us = UINT32_MAX};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool val = true;
        if (!strcmp(a, "--url") && v) o->url = v;
        else if (!strcmp(a, "--players") && v) o->players = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--rate") && v) o->rate = atof(v);
        else if (!strcmp(a, "--max-inflight") && v) o->max_inflight = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--warmup") && v) o->warmup_s = atof(v);
        else if (!strcmp(a, "--duration") && v) o->duration_s = atof(v);
        else if (!strcmp(a, "--bind") && v) o->bind = v;
        else if (!strcmp(a, "--token") && v) o->token = v;
        else if (!strcmp(a, "--decrypt-every") && v) o->sample = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--connect-timeout-ms") && v)
            o->connect_ms = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--rcvbuf") && v) o->rcvbuf = atoi(v);
        else if (!strcmp(a, "--interval-us") && v) o->interval_us = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--server-pid") && v) o->server_pid = atoi(v);
        else {
            val = false;
            if (!strcmp(a, "--decrypt-all")) o->sample = 1;
            else if (!strcmp(a, "--no-rtcp")) o->rtcp = false;
            else if (!strcmp(a, "--no-kernel-ts")) o->kernel_ts = false;
            else if (!strcmp(a, "--json")) o->json = true;
            else return -1;
        }
        if (val) i++;
    }
    /* Rounds need the kernel's timestamps, or the latency would include the wait. */
    if (o->interval_us == UINT32_MAX) o->interval_us = o->kernel_ts ? 20000 : 0;
    if (!o->url || !o->players || o->players > 100000 || o->rate <= 0 || !o->max_inflight ||
        !o->sample || o->duration_s <= 0 || o->warmup_s < 0 || o->connect_ms < 100)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    gen_t *g = calloc(1, sizeof *g);
    if (!g || parse_args(argc, argv, &g->o) != 0) {
        usage();
        return 2;
    }
    g_gen = g;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < g->o.players + 64)
            fprintf(stderr, "warning: %llu descriptors for %zu players\n",
                    (unsigned long long)rl.rlim_cur, g->o.players);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    char err[200];
    g->cert = es_dtls_cert_generate(err, sizeof err);
    g->players = calloc(g->o.players, sizeof *g->players);
    g->heap = calloc(g->o.players, sizeof *g->heap);
    g->lat_hist = calloc(LAT_BUCKETS, sizeof *g->lat_hist);
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!g->cert || !g->players || !g->heap || !g->lat_hist || g->ep < 0 ||
        curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(g->multi = curl_multi_init())) {
        fprintf(stderr, "bench_whep_load: cannot start: %s\n", g->cert ? "out of memory" : err);
        return 1;
    }
    curl_multi_setopt(g->multi, CURLMOPT_SOCKETFUNCTION, curl_socket);
    curl_multi_setopt(g->multi, CURLMOPT_SOCKETDATA, g);
    curl_multi_setopt(g->multi, CURLMOPT_TIMERFUNCTION, curl_timer);
    curl_multi_setopt(g->multi, CURLMOPT_TIMERDATA, g);
    curl_multi_setopt(g->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)g->o.max_inflight);
    for (size_t i = 0; i < BATCH; i++) {
        g->iov[i] = (struct iovec){.iov_base = g->bufs[i], .iov_len = PKT_MAX};
        g->msgs[i].msg_hdr = (struct msghdr){.msg_name = &g->names[i], .msg_iov = &g->iov[i],
                                             .msg_iovlen = 1, .msg_control = g->ctrl[i]};
    }
    for (size_t i = 0; i < g->o.players; i++) {
        g->players[i].idx = (uint32_t)i;
        g->players[i].fd = -1;
    }
    g->rss_base_kb = g->o.server_pid ? proc_rss_kb(g->o.server_pid) : -1;
    g->self_rss0_kb = proc_rss_kb(getpid());
    run(g);
    report(g);
    size_t with_resource = 0;
    for (size_t i = 0; i < g->o.players; i++) with_resource += g->players[i].resource[0] != 0;
    printf("closing: %zu of %zu resources DELETEd\n", g->deleted, with_resource);
    for (size_t i = 0; i < g->o.players; i++) {
        player_t *p = &g->players[i];
        if (p->http.easy) {
            curl_multi_remove_handle(g->multi, p->http.easy);
            bench_http_end(&p->http);
        }
        player_release(g, p);
    }
    curl_multi_cleanup(g->multi);
    curl_global_cleanup();
    es_dtls_cert_free(g->cert);
    close(g->ep);
    bool ok = g->players_at_start > 0; /* something was measured */
    free(g->lat_hist);
    free(g->heap);
    free(g->players);
    free(g);
    return ok ? 0 : 1;
}
