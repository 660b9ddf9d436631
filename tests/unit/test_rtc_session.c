/* Scenario tests for src/webrtc/session.c: two sessions, an offerer (full controlling ICE agent)
 * and an answerer (ICE-lite), over an in-memory link with loss, reordering and delay on a
 * virtual clock. They connect and exchange RTP both ways, survive 30% loss during the handshake,
 * restart ICE, lose consent, and follow the pair rules: DTLS and media before nomination, a
 * check on another pair never moves media, only a nomination does, consent per pair.
 *
 * OpenSSL's DTLS retransmission timers read the real clock, so while a handshake runs the
 * virtual clock advances with real sleeps of the same length (20 ms first timeout); after it,
 * time is virtual only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dtls_fixtures.h"

#include "estuary/error.h"
#include "estuary/ice.h"
#include "estuary/rtc_session.h"
#include "estuary/srtp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INFLIGHT 512
#define DGRAM_MAX 1500

typedef struct dgram {
    uint64_t due;
    int to;                  /* 0: offerer, 1: answerer */
    es_addr_pair_t addr;     /* as the receiver sees it */
    size_t len;
    uint8_t buf[DGRAM_MAX];
} dgram_t;

typedef struct side {
    es_rtc_session_t *s;
    es_dtls_cert_t *cert;
    uint8_t fp[64];
    size_t fp_len;
    struct sockaddr_in addr;      /* this side's address */
    es_rtc_session_state_t state;
    int err;
    char reason[160];
    unsigned rtp_in;
    uint8_t last_rtp[256];
    size_t last_rtp_len;
    unsigned selected_changes;
    unsigned pairs_valid;
} side_t;

typedef struct net {
    uint64_t now;
    side_t side[2];
    dgram_t *q;              /* MAX_INFLIGHT slots, due == 0 free */
    uint32_t rng;
    double loss;             /* probability a datagram is lost */
    uint64_t delay_us, jitter_us; /* one-way delay, plus up to jitter (reordering) */
    bool cut[2];             /* datagrams to side i are lost */
    bool drop_use_candidate; /* checks carrying USE-CANDIDATE are lost */
    bool real_time;          /* sleep as the virtual clock advances (DTLS handshakes) */
    unsigned sent[2];
} net_t;

static net_t *g_net; /* the callbacks' context (one net per test) */

static uint32_t rnd(net_t *n)
{
    n->rng ^= n->rng << 13;
    n->rng ^= n->rng >> 17;
    n->rng ^= n->rng << 5;
    return n->rng;
}

static struct sockaddr_in addr4(const char *ip, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

/* True when buf is a STUN request with a USE-CANDIDATE attribute (RFC 8445 §16.1). */
static bool has_use_candidate(const uint8_t *buf, size_t len)
{
    if (len < 20 || buf[0] > 3 || buf[0] != 0 || buf[1] != 1) return false;
    for (size_t o = 20; o + 4 <= len;) {
        unsigned type = (unsigned)buf[o] << 8 | buf[o + 1], alen = (unsigned)buf[o + 2] << 8 | buf[o + 3];
        if (type == 0x0025) return true;
        o += 4 + ((alen + 3u) & ~3u);
    }
    return false;
}

/* The pair as side `to` sees a datagram from `from`. */
static es_addr_pair_t pair_from(const net_t *n, const struct sockaddr_in *from, int to)
{
    es_addr_pair_t a;
    memset(&a, 0, sizeof a);
    memcpy(&a.remote, from, sizeof *from);
    a.remote_len = sizeof *from;
    memcpy(&a.local, &n->side[to].addr, sizeof n->side[to].addr);
    return a;
}

/* Puts a datagram from side `from` on the link to side `to`, with from_addr as its source. */
static void link_send(net_t *n, int to, const struct sockaddr_in *from_addr, const uint8_t *buf,
                      size_t len)
{
    assert_true(len <= DGRAM_MAX);
    n->sent[1 - to]++;
    if (n->cut[to]) return;
    if (n->drop_use_candidate && has_use_candidate(buf, len)) return;
    if (n->loss > 0 && (rnd(n) % 1000) < (uint32_t)(n->loss * 1000)) return;
    for (int i = 0; i < MAX_INFLIGHT; i++) {
        dgram_t *d = &n->q[i];
        if (d->due) continue;
        d->due = n->now + n->delay_us + (n->jitter_us ? rnd(n) % n->jitter_us : 0) + 1;
        d->to = to;
        d->addr = pair_from(n, from_addr, to);
        d->len = len;
        memcpy(d->buf, buf, len);
        return;
    }
    fail_msg("link full");
}

static void cb_send(void *user, const uint8_t *buf, size_t len, const es_addr_pair_t *addr)
{
    int from = (int)(intptr_t)user;
    /* Each side has one address; anything else goes to a test's third party (dropped here). */
    const struct sockaddr_in *dst = (const struct sockaddr_in *)&addr->remote;
    if (dst->sin_port != g_net->side[1 - from].addr.sin_port) return;
    link_send(g_net, 1 - from, &g_net->side[from].addr, buf, len);
}

static void cb_rtp(void *user, uint64_t now, uint8_t *buf, size_t len)
{
    side_t *sd = &g_net->side[(intptr_t)user];
    sd->rtp_in++;
    assert_true(len <= sizeof sd->last_rtp);
    memcpy(sd->last_rtp, buf, len);
    sd->last_rtp_len = len;
}

static void cb_pair(void *user, const es_addr_pair_t *a, bool added)
{
    side_t *sd = &g_net->side[(intptr_t)user];
    if (added) sd->pairs_valid++;
    else sd->pairs_valid--;
}

static void cb_selected(void *user, const es_addr_pair_t *a, bool nominated)
{
    g_net->side[(intptr_t)user].selected_changes++;
}

static void cb_state(void *user, es_rtc_session_state_t st, int err, const char *reason)
{
    side_t *sd = &g_net->side[(intptr_t)user];
    sd->state = st;
    sd->err = err;
    snprintf(sd->reason, sizeof sd->reason, "%s", reason);
}

/* A stand-alone ICE agent with side `as`'s credentials as they were at the start (a second
 * interface of that peer, or that peer before an ICE restart). */
static es_ice_t *agent_of(int as)
{
    static const char *uf[2] = {"offU", "ansU"};
    static const char *pw[2] = {"offerer-password-0123456789", "answerer-password-0123456789"};
    es_ice_params_t ip = {.local_ufrag = uf[as], .local_pwd = pw[as], .remote_ufrag = uf[1 - as],
                          .remote_pwd = pw[1 - as], .controlling = as == 0};
    es_ice_t *ice = es_ice_new(&ip);
    assert_non_null(ice);
    return ice;
}

/* agent sends side `to` a connectivity check from `from` (nominating or not). */
static void inject_check(net_t *n, es_ice_t *agent, const struct sockaddr_in *from, int to,
                         bool nominate)
{
    uint8_t req[ES_ICE_MSG_MAX], txid[ES_ICE_TXID_LEN];
    int len = es_ice_check_create(agent, nominate, 1, req, sizeof req, txid);
    assert_true(len > 0);
    es_addr_pair_t a = pair_from(n, from, to);
    es_rtc_session_handle_datagram(n->side[to].s, n->now, req, (size_t)len, &a);
}

typedef struct setup {
    bool offerer_dtls_client;  /* the offerer is the DTLS client (answer said setup:passive) */
    bool bad_fingerprint;      /* the answerer expects another certificate */
    uint32_t connect_timeout_ms, consent_timeout_ms;
} setup_t;

static void net_init(net_t *n, const setup_t *su)
{
    memset(n, 0, sizeof *n);
    g_net = n;
    n->q = calloc(MAX_INFLIGHT, sizeof *n->q);
    assert_non_null(n->q);
    n->rng = 0x2545f491u;
    n->now = 1000000000ull;
    n->delay_us = 5000;
    n->real_time = true;
    n->side[0].addr = addr4("192.0.2.1", 5000);
    n->side[1].addr = addr4("198.51.100.1", 8000);
    char err[200];
    for (int i = 0; i < 2; i++) {
        n->side[i].cert = es_dtls_cert_generate(err, sizeof err);
        assert_non_null(n->side[i].cert);
        n->side[i].fp_len = fp_bytes(n->side[i].cert, n->side[i].fp);
    }
    es_dtls_cert_t *wrong = su->bad_fingerprint ? es_dtls_cert_generate(err, sizeof err) : NULL;
    uint8_t wfp[64];
    size_t wfp_len = wrong ? fp_bytes(wrong, wfp) : 0;
    es_dtls_cert_free(wrong);
    static const char *ufrag[2] = {"offU", "ansU"};
    static const char *pwd[2] = {"offerer-password-0123456789", "answerer-password-0123456789"};
    for (int i = 0; i < 2; i++) {
        int o = 1 - i;
        bool client = i == 0 ? su->offerer_dtls_client : !su->offerer_dtls_client;
        es_rtc_session_params_t p = {
            .local_ufrag = ufrag[i], .local_pwd = pwd[i], .remote_ufrag = ufrag[o],
            .remote_pwd = pwd[o], .ice_controlling = i == 0, .cert = n->side[i].cert,
            .fingerprint_alg = "sha-256",
            .fingerprint = i == 1 && wrong ? wfp : n->side[o].fp,
            .fingerprint_len = i == 1 && wrong ? wfp_len : n->side[o].fp_len,
            .dtls_role = client ? ES_DTLS_ROLE_CLIENT : ES_DTLS_ROLE_SERVER,
            .connect_timeout_ms = su->connect_timeout_ms ? su->connect_timeout_ms : 10000,
            .consent_timeout_ms = su->consent_timeout_ms ? su->consent_timeout_ms : 30000,
            .dtls_timer_us = 20000, .now_us = n->now,
            .cb = {.send = cb_send, .on_rtp = cb_rtp, .on_pair = cb_pair,
                   .on_selected = cb_selected, .on_state = cb_state},
            .user = (void *)(intptr_t)i,
        };
        n->side[i].s = es_rtc_session_new(&p);
        assert_non_null(n->side[i].s);
    }
    /* The offerer checks the answerer's host candidate from the answer. */
    es_addr_pair_t cand = {0};
    memcpy(&cand.remote, &n->side[1].addr, sizeof n->side[1].addr);
    cand.remote_len = sizeof n->side[1].addr;
    assert_int_equal(es_rtc_session_add_remote_candidate(n->side[0].s, &cand, 2130706431u, n->now), 0);
    assert_int_equal(es_rtc_session_add_remote_candidate(n->side[0].s, &cand, 1, n->now), ES_EEXIST);
    assert_int_equal(es_rtc_session_add_remote_candidate(n->side[1].s, &cand, 1, n->now), ES_EINVAL);
}

static void net_deinit(net_t *n)
{
    for (int i = 0; i < 2; i++) {
        es_rtc_session_free(n->side[i].s);
        es_dtls_cert_free(n->side[i].cert);
    }
    free(n->q);
    g_net = NULL;
}

/* Runs the link and both sessions until virtual time `until`, event by event. */
static void run_until(net_t *n, uint64_t until)
{
    uint64_t last = n->now;
    unsigned still = 0; /* iterations without the clock moving: a deadline that never moves on */
    for (int guard = 0; guard < 200000 && n->now < until; guard++) {
        if (n->now == last && ++still > 1000) fail_msg("a session spins: its deadline stays at %llu",
                                                     (unsigned long long)n->now);
        if (n->now != last) still = 0;
        last = n->now;
        uint64_t next = until, armed[2];
        for (int i = 0; i < MAX_INFLIGHT; i++)
            if (n->q[i].due && n->q[i].due < next) next = n->q[i].due;
        for (int i = 0; i < 2; i++) { /* like the daemon: one timer per session */
            armed[i] = es_rtc_session_next_timeout_us(n->side[i].s, n->now);
            if (armed[i] && armed[i] < next) next = armed[i];
        }
        if (next < n->now) next = n->now;
        /* OpenSSL's timers are real: at most 5 ms per step while a handshake may run. */
        bool handshake = n->real_time && (n->side[0].state < ES_RTC_SESSION_CONNECTED ||
                                          n->side[1].state < ES_RTC_SESSION_CONNECTED);
        if (handshake && next > n->now + 5000) next = n->now + 5000;
        if (handshake && next > n->now) usleep((useconds_t)(next - n->now));
        n->now = next;
        for (int i = 0; i < MAX_INFLIGHT; i++) {
            dgram_t *d = &n->q[i];
            if (!d->due || d->due > n->now) continue;
            d->due = 0;
            es_rtc_session_handle_datagram(n->side[d->to].s, n->now, d->buf, d->len, &d->addr);
        }
        for (int i = 0; i < 2; i++)
            if (armed[i] && armed[i] <= n->now) es_rtc_session_handle_timeout(n->side[i].s, n->now);
    }
}

static bool both_connected(const net_t *n)
{
    return n->side[0].state == ES_RTC_SESSION_CONNECTED && n->side[1].state == ES_RTC_SESSION_CONNECTED;
}

/* Runs until both are connected or `limit_us` of virtual time passed; returns the time taken. */
static uint64_t run_connect(net_t *n, uint64_t limit_us)
{
    uint64_t start = n->now;
    while (!both_connected(n) && n->now - start < limit_us &&
           n->side[0].state < ES_RTC_SESSION_CLOSED && n->side[1].state < ES_RTC_SESSION_CLOSED)
        run_until(n, n->now + 1000);
    return n->now - start;
}

/* Sends one RTP packet with sequence number seq from side `from`; returns the send result. */
static int send_rtp(net_t *n, int from, uint16_t seq)
{
    uint8_t pkt[128 + ES_SRTP_MAX_TRAILER] = {0x80, 96, (uint8_t)(seq >> 8), (uint8_t)seq,
                                              0, 0, 0x10, 0, 0x11, 0x22, 0x33, (uint8_t)(0x44 + from)};
    for (int i = 12; i < 112; i++) pkt[i] = (uint8_t)(i ^ seq);
    return es_rtc_session_send_rtp(n->side[from].s, pkt, 112, sizeof pkt);
}

static void assert_rtp_flows(net_t *n, uint16_t seq)
{
    unsigned in0 = n->side[0].rtp_in, in1 = n->side[1].rtp_in;
    assert_int_equal(send_rtp(n, 0, seq), 0);
    assert_int_equal(send_rtp(n, 1, seq), 0);
    run_until(n, n->now + 50000);
    assert_int_equal(n->side[0].rtp_in, in0 + 1);
    assert_int_equal(n->side[1].rtp_in, in1 + 1);
    assert_int_equal(n->side[1].last_rtp_len, 112);
    assert_int_equal(n->side[1].last_rtp[3], (uint8_t)seq);
    assert_int_equal(n->side[1].last_rtp[50], (uint8_t)(50 ^ seq));
    assert_int_equal(n->side[0].last_rtp[11], 0x45); /* the answerer's SSRC */
}

static void test_connect_and_rtp_both_ways(void **state)
{
    for (int role = 0; role < 2; role++) {
        net_t n;
        setup_t su = {.offerer_dtls_client = role == 0};
        net_init(&n, &su);
        assert_int_equal(send_rtp(&n, 0, 1), ES_EAGAIN); /* not connected */
        uint64_t took = run_connect(&n, 3000000);
        assert_true(both_connected(&n));
        assert_true(took < 500000); /* 5 ms each way, no loss */
        bool nom = false;
        assert_non_null(es_rtc_session_selected(n.side[1].s, &nom));
        run_until(&n, n.now + 200000);
        es_rtc_session_selected(n.side[1].s, &nom);
        assert_true(nom); /* the offerer nominated its pair */
        es_rtc_session_selected(n.side[0].s, &nom);
        assert_true(nom);
        assert_int_equal(n.side[1].pairs_valid, 1);
        assert_int_equal(n.side[0].pairs_valid, 1);
        assert_int_not_equal(es_rtc_session_srtp_profile(n.side[0].s), 0);
        for (uint16_t seq = 100; seq < 110; seq++) assert_rtp_flows(&n, seq);
        /* 40 s of quiet media: the offerer's consent checks keep both sides up. */
        run_until(&n, n.now + 40000000);
        assert_true(both_connected(&n));
        assert_true(es_rtc_session_stats(n.side[0].s).checks_sent >= 8);
        assert_rtp_flows(&n, 200);
        /* A close from one side reaches the other (close_notify). */
        es_rtc_session_close(n.side[0].s, "bye");
        assert_int_equal(n.side[0].state, ES_RTC_SESSION_CLOSED);
        run_until(&n, n.now + 50000);
        assert_int_equal(n.side[1].state, ES_RTC_SESSION_CLOSED);
        assert_int_equal(n.side[1].err, 0);
        assert_int_equal(es_rtc_session_next_timeout_us(n.side[1].s, n.now), 0);
        net_deinit(&n);
    }
}

static void test_handshake_survives_30pct_loss(void **state)
{
    for (uint32_t seed = 1; seed <= 4; seed++) {
        net_t n;
        setup_t su = {.offerer_dtls_client = seed % 2 == 0};
        net_init(&n, &su);
        n.rng = 0x9e3779b9u * seed;
        n.loss = 0.30;
        n.jitter_us = 20000; /* reordering: 5-25 ms one way */
        run_connect(&n, 9000000);
        assert_true(both_connected(&n));
        /* Media under the same loss: some gets through, none is corrupted. */
        unsigned got = n.side[1].rtp_in;
        for (uint16_t seq = 0; seq < 100; seq++) {
            assert_int_equal(send_rtp(&n, 0, seq), 0);
            run_until(&n, n.now + 1000);
        }
        run_until(&n, n.now + 100000);
        assert_true(n.side[1].rtp_in - got > 50 && n.side[1].rtp_in - got < 95);
        assert_int_equal(es_rtc_session_stats(n.side[1].s).srtp_errors, 0);
        net_deinit(&n);
    }
}

/* Chromium sends its ClientHello after its first successful check, before it nominates: the
 * answerer must take DTLS and SRTP from that valid pair and send media back on it. */
static void test_dtls_and_media_before_nomination(void **state)
{
    for (int role = 0; role < 2; role++) {
        net_t n;
        /* role 1: the answerer is the DTLS client (the offer said setup:passive): it starts on its
         * first valid pair rather than wait for a nomination. */
        setup_t su = {.offerer_dtls_client = role == 0};
        net_init(&n, &su);
        n.drop_use_candidate = true;
        run_connect(&n, 3000000);
        assert_true(both_connected(&n));
        bool nom = true;
        assert_non_null(es_rtc_session_selected(n.side[1].s, &nom));
        assert_false(nom);
        assert_rtp_flows(&n, 7);
        /* The nomination arrives later: media stays on the same pair, now nominated. */
        n.drop_use_candidate = false;
        run_until(&n, n.now + 2000000);
        es_rtc_session_selected(n.side[1].s, &nom);
        assert_true(nom);
        assert_rtp_flows(&n, 8);
        net_deinit(&n);
    }
}

/* The offerer checks a candidate from an unspecified local address; the peer's own check on the
 * same 5-tuple arrives first. That is one pair, not two (one route, one consent). */
static void test_offerer_learns_local_address_once(void **state)
{
    net_t n;
    setup_t su = {.offerer_dtls_client = true};
    net_init(&n, &su);
    es_ice_t *peer = agent_of(1); /* checks from the answerer, as a full agent would send */
    inject_check(&n, peer, &n.side[1].addr, 0, false);
    assert_int_equal(n.side[0].pairs_valid, 1);
    run_connect(&n, 3000000);
    assert_true(both_connected(&n));
    run_until(&n, n.now + 500000);
    assert_int_equal(n.side[0].pairs_valid, 1);
    bool nom = false;
    assert_non_null(es_rtc_session_selected(n.side[0].s, &nom));
    assert_true(nom);
    assert_rtp_flows(&n, 9);
    es_ice_free(peer);
    net_deinit(&n);
}

/* A valid check from a second address of the client (another interface) is answered and makes
 * that pair valid, but media stays on the nominated pair until that one is nominated. */
static void test_check_on_other_pair_never_moves_media(void **state)
{
    net_t n;
    setup_t su = {.offerer_dtls_client = true, .consent_timeout_ms = 10000};
    net_init(&n, &su);
    run_connect(&n, 3000000);
    run_until(&n, n.now + 500000);
    bool nom = false;
    const es_addr_pair_t *sel = es_rtc_session_selected(n.side[1].s, &nom);
    assert_true(nom);
    assert_int_equal(((const struct sockaddr_in *)&sel->remote)->sin_port, htons(5000));
    /* The client's second interface: a controlling agent with its credentials. */
    es_ice_t *other = agent_of(0);
    struct sockaddr_in b = addr4("192.0.2.77", 6000);
    unsigned changes = n.side[1].selected_changes;
    inject_check(&n, other, &b, 1, false);
    assert_int_equal(n.side[1].pairs_valid, 2);
    sel = es_rtc_session_selected(n.side[1].s, &nom);
    assert_int_equal(((const struct sockaddr_in *)&sel->remote)->sin_port, htons(5000));
    assert_int_equal(n.side[1].selected_changes, changes);
    /* Consent is per pair: B's checks do not keep A alive. The offerer goes quiet (cut), B keeps
     * checking; after the consent timeout media to A stops, but the session lives on B. */
    n.cut[1] = true;
    for (int i = 0; i < 12; i++) {
        inject_check(&n, other, &b, 1, false);
        run_until(&n, n.now + 1000000);
    }
    assert_int_equal(n.side[1].state, ES_RTC_SESSION_CONNECTED);
    assert_null(es_rtc_session_selected(n.side[1].s, &nom));
    assert_int_equal(send_rtp(&n, 1, 1), ES_EAGAIN);
    /* A nomination on B moves media there. */
    inject_check(&n, other, &b, 1, true);
    sel = es_rtc_session_selected(n.side[1].s, &nom);
    assert_non_null(sel);
    assert_true(nom);
    assert_int_equal(((const struct sockaddr_in *)&sel->remote)->sin_port, htons(6000));
    /* Then B goes quiet too: no pair has consent, the session closes. */
    run_until(&n, n.now + 11000000);
    assert_int_equal(n.side[1].state, ES_RTC_SESSION_CLOSED);
    assert_int_equal(n.side[1].err, ES_ETIMEDOUT);
    assert_non_null(strstr(n.side[1].reason, "consent"));
    es_ice_free(other);
    net_deinit(&n);
}

static void test_consent_expires(void **state)
{
    net_t n;
    setup_t su = {.offerer_dtls_client = false, .consent_timeout_ms = 5000};
    net_init(&n, &su);
    run_connect(&n, 3000000);
    assert_true(both_connected(&n));
    n.cut[0] = n.cut[1] = true; /* the link goes away both ways */
    uint64_t t0 = n.now;
    run_until(&n, n.now + 8000000);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(n.side[i].state, ES_RTC_SESSION_CLOSED);
        assert_int_equal(n.side[i].err, ES_ETIMEDOUT);
    }
    assert_true(n.now - t0 >= 5000000);
    net_deinit(&n);
}

static void test_ice_restart(void **state)
{
    net_t n;
    setup_t su = {.offerer_dtls_client = true};
    net_init(&n, &su);
    run_connect(&n, 3000000);
    run_until(&n, n.now + 300000);
    uint64_t checks = es_rtc_session_stats(n.side[0].s).checks_sent;
    unsigned requests = (unsigned)es_rtc_session_stats(n.side[1].s).stun_requests;
    assert_int_equal(es_rtc_session_restart_ice(n.side[0].s, "offV", "offerer-password-new-0123",
                                                "ansV", "answerer-password-new-0123", n.now), 0);
    assert_int_equal(es_rtc_session_restart_ice(n.side[1].s, "ansV", "answerer-password-new-0123",
                                                "offV", "offerer-password-new-0123", n.now), 0);
    assert_int_equal(es_rtc_session_restart_ice(n.side[1].s, "", "x", "y", "z", n.now), ES_EINVAL);
    /* Media keeps flowing through the restart. */
    assert_rtp_flows(&n, 1);
    run_until(&n, n.now + 1000000);
    assert_true(es_rtc_session_stats(n.side[0].s).checks_sent > checks);
    assert_true(es_rtc_session_stats(n.side[1].s).stun_requests > requests);
    bool nom = false;
    assert_non_null(es_rtc_session_selected(n.side[1].s, &nom));
    assert_true(nom);
    assert_rtp_flows(&n, 2);
    /* A check with the old credentials is dropped. */
    es_ice_t *old = agent_of(0);
    uint64_t dropped = es_rtc_session_stats(n.side[1].s).dropped;
    inject_check(&n, old, &n.side[0].addr, 1, true);
    assert_int_equal(es_rtc_session_stats(n.side[1].s).dropped, dropped + 1);
    es_ice_free(old);
    net_deinit(&n);
}

static void test_connect_timeout_and_bad_fingerprint(void **state)
{
    net_t n;
    setup_t su = {.connect_timeout_ms = 2000};
    net_init(&n, &su);
    n.cut[1] = true; /* nothing reaches the answerer */
    n.real_time = false;
    run_until(&n, n.now + 2100000);
    assert_int_equal(n.side[1].state, ES_RTC_SESSION_FAILED);
    assert_int_equal(n.side[1].err, ES_ETIMEDOUT);
    assert_non_null(strstr(n.side[1].reason, "ICE"));
    assert_int_equal(n.side[0].state, ES_RTC_SESSION_FAILED);
    /* Checks were paced and gave up: at most 7 tries of one pair in 2 s. */
    assert_true(es_rtc_session_stats(n.side[0].s).checks_sent <= 7);
    net_deinit(&n);

    setup_t bad = {.offerer_dtls_client = true, .bad_fingerprint = true};
    net_init(&n, &bad);
    run_connect(&n, 2000000);
    assert_int_equal(n.side[1].state, ES_RTC_SESSION_FAILED);
    assert_int_equal(n.side[1].err, ES_EACCES);
    net_deinit(&n);
}

/* Garbage from a valid pair costs a counter, nothing else. */
static void test_garbage_is_dropped(void **state)
{
    net_t n;
    setup_t su = {.offerer_dtls_client = true};
    net_init(&n, &su);
    run_connect(&n, 3000000);
    es_addr_pair_t from = pair_from(&n, &n.side[0].addr, 1);
    uint8_t junk[300];
    for (int k = 0; k < 2000; k++) {
        size_t len = 1 + rnd(&n) % sizeof junk;
        for (size_t i = 0; i < len; i++) junk[i] = (uint8_t)rnd(&n);
        es_rtc_session_handle_datagram(n.side[1].s, n.now, junk, len, &from);
    }
    assert_int_equal(n.side[1].state, ES_RTC_SESSION_CONNECTED);
    assert_true(es_rtc_session_stats(n.side[1].s).dropped > 1500);
    assert_rtp_flows(&n, 3);
    net_deinit(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_and_rtp_both_ways),
        cmocka_unit_test(test_handshake_survives_30pct_loss),
        cmocka_unit_test(test_dtls_and_media_before_nomination),
        cmocka_unit_test(test_offerer_learns_local_address_once),
        cmocka_unit_test(test_check_on_other_pair_never_moves_media),
        cmocka_unit_test(test_consent_expires),
        cmocka_unit_test(test_ice_restart),
        cmocka_unit_test(test_connect_timeout_and_bad_fingerprint),
        cmocka_unit_test(test_garbage_is_dropped),
    };
    return cmocka_run_group_tests_name("rtc_session", tests, NULL, NULL);
}
