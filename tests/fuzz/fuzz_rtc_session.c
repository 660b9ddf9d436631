/* libFuzzer harness for the WebRTC session's datagram input (src/webrtc/session.c): first-byte
 * demultiplexing (RFC 7983), STUN, DTLS records and SRTP/SRTCP, as an answerer whose client pair
 * is already valid. The first input byte picks the state: even, a fresh session (only a valid
 * ICE check has arrived); odd, a session connected through a real DTLS handshake with an
 * in-process offerer. The rest is a series of datagrams: [source 0..3][length hi][length lo]
 * [bytes]. Source 0 is the valid client pair, the others are strangers.
 *
 * Invariants: nothing the fuzzer sends is delivered as RTP or RTCP (it cannot authenticate
 * SRTP); a fresh session never connects (no DTLS handshake can be forged); media only ever goes
 * to the valid pair; every datagram the session sends fits in 1500 bytes; a stranger's
 * datagrams never create a valid pair. */
#include "estuary/ice.h"
#include "estuary/rtc_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    int role;                 /* 0 offerer, 1 answerer */
    unsigned delivered, pairs;
    es_rtc_session_state_t state;
} side_t;

static side_t sides[2];
static es_rtc_session_t *sess[2];
static struct sockaddr_in addr[5]; /* 0: client (offerer), 1: server, 2..4: strangers */
static uint8_t q[64][1600];
static size_t qlen[64];
static int qto[64], qn;
static es_dtls_cert_t *certs[2];
static uint8_t fps[2][32];

static es_addr_pair_t pair_of(int from, int to)
{
    es_addr_pair_t p;
    memset(&p, 0, sizeof p);
    memcpy(&p.remote, &addr[from], sizeof addr[from]);
    p.remote_len = sizeof addr[from];
    memcpy(&p.local, &addr[to], sizeof addr[to]);
    return p;
}

static void cb_send(void *user, const uint8_t *buf, size_t len, const es_addr_pair_t *a)
{
    side_t *s = user;
    if (len > 1500) abort();
    const struct sockaddr_in *dst = (const struct sockaddr_in *)&a->remote;
    if (s->role == 1 && dst->sin_port != addr[0].sin_port && buf[0] >= 20) abort(); /* media/DTLS to a stranger */
    if (qn < 64 && dst->sin_port == addr[1 - s->role].sin_port) {
        memcpy(q[qn], buf, len);
        qlen[qn] = len;
        qto[qn++] = 1 - s->role;
    }
}

static void cb_rtp(void *user, uint64_t now, uint8_t *buf, size_t len) { ((side_t *)user)->delivered++; }
static void cb_pair(void *user, const es_addr_pair_t *a, bool added)
{
    side_t *s = user;
    const struct sockaddr_in *r = (const struct sockaddr_in *)&a->remote;
    if (s->role == 1 && added && r->sin_port != addr[0].sin_port) abort(); /* a stranger validated */
    s->pairs += added ? 1 : 0;
}
static void cb_state(void *user, es_rtc_session_state_t st, int err, const char *reason)
{
    ((side_t *)user)->state = st;
}

static void init_once(void)
{
    static bool done;
    if (done) return;
    done = true;
    const char *ips[5] = {"192.0.2.1", "198.51.100.1", "192.0.2.66", "192.0.2.67", "203.0.113.9"};
    for (int i = 0; i < 5; i++) {
        addr[i].sin_family = AF_INET;
        addr[i].sin_port = htons((uint16_t)(5000 + i));
        inet_pton(AF_INET, ips[i], &addr[i].sin_addr);
    }
    char err[200];
    for (int i = 0; i < 2; i++) {
        certs[i] = es_dtls_cert_generate(err, sizeof err);
        if (!certs[i]) abort();
        const char *hex = es_dtls_cert_fingerprint(certs[i]);
        for (size_t k = 0; k < 32; k++) {
            unsigned v;
            if (sscanf(hex + 3 * k, "%2X", &v) != 1) abort();
            fps[i][k] = (uint8_t)v;
        }
    }
}

/* Delivers queued datagrams until the queue is quiet (bounded). */
static void pump(uint64_t now)
{
    for (int round = 0; round < 50 && qn; round++) {
        int n = qn;
        static uint8_t buf[64][1600];
        static size_t len[64];
        static int to[64];
        memcpy(buf, q, sizeof q);
        memcpy(len, qlen, sizeof qlen);
        memcpy(to, qto, sizeof qto);
        qn = 0;
        for (int i = 0; i < n; i++) {
            es_addr_pair_t p = pair_of(1 - to[i], to[i]);
            es_rtc_session_handle_datagram(sess[to[i]], now, buf[i], len[i], &p);
        }
    }
    qn = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    init_once();
    bool connect = data[0] & 1;
    memset(sides, 0, sizeof sides);
    qn = 0;
    static const char *uf[2] = {"offU", "ansU"};
    static const char *pw[2] = {"offerer-password-0123456789", "answerer-password-0123456789"};
    uint64_t now = 1000000;
    for (int i = 0; i < 2; i++) {
        sides[i].role = i;
        es_rtc_session_params_t p = {
            .local_ufrag = uf[i], .local_pwd = pw[i], .remote_ufrag = uf[1 - i],
            .remote_pwd = pw[1 - i], .ice_controlling = i == 0, .cert = certs[i],
            .fingerprint_alg = "sha-256", .fingerprint = fps[1 - i], .fingerprint_len = 32,
            .dtls_role = i == 0 ? ES_DTLS_ROLE_CLIENT : ES_DTLS_ROLE_SERVER,
            .connect_timeout_ms = 10000, .consent_timeout_ms = 30000, .now_us = now,
            .cb = {.send = cb_send, .on_rtp = cb_rtp, .on_rtcp = cb_rtp, .on_pair = cb_pair,
                   .on_state = cb_state},
            .user = &sides[i],
        };
        sess[i] = es_rtc_session_new(&p);
        if (!sess[i]) abort();
    }
    es_addr_pair_t cand = pair_of(1, 0);
    memset(&cand.local, 0, sizeof cand.local);
    es_rtc_session_add_remote_candidate(sess[0], &cand, 1, now);
    /* The offerer's first check makes the client pair valid at the answerer. */
    es_rtc_session_handle_timeout(sess[0], now);
    if (!connect) {
        if (qn) {
            es_addr_pair_t p = pair_of(0, 1);
            es_rtc_session_handle_datagram(sess[1], now, q[0], qlen[0], &p);
        }
        qn = 0;
    } else {
        for (int i = 0; i < 20 && !(sides[0].state == ES_RTC_SESSION_CONNECTED &&
                                    sides[1].state == ES_RTC_SESSION_CONNECTED); i++) {
            pump(now);
            now += 1000;
            es_rtc_session_handle_timeout(sess[0], now);
        }
        if (sides[1].state != ES_RTC_SESSION_CONNECTED) abort(); /* the setup itself failed */
    }
    unsigned before = sides[1].delivered;
    es_rtc_session_state_t st0 = sides[1].state;
    size_t off = 1;
    while (size - off >= 3) {
        int src = data[off] & 3;
        size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
        off += 3;
        if (len > size - off) len = size - off;
        uint8_t buf[2048];
        if (len > sizeof buf) len = sizeof buf;
        memcpy(buf, data + off, len);
        off += len;
        es_addr_pair_t p = pair_of(src == 0 ? 0 : src + 1, 1);
        es_rtc_session_handle_datagram(sess[1], now, buf, len, &p);
        now += 10000;
        es_rtc_session_handle_timeout(sess[1], now);
        qn = 0;
    }
    if (sides[1].delivered != before) abort(); /* forged SRTP delivered */
    if (st0 != ES_RTC_SESSION_CONNECTED && sides[1].state == ES_RTC_SESSION_CONNECTED) abort();
    bool nominated;
    const es_addr_pair_t *sel = es_rtc_session_selected(sess[1], &nominated);
    if (sel && ((const struct sockaddr_in *)&sel->remote)->sin_port != addr[0].sin_port) abort();
    for (int i = 0; i < 2; i++) es_rtc_session_free(sess[i]);
    return 0;
}
