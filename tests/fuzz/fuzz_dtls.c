/* libFuzzer harness for the DTLS endpoint (src/webrtc/dtls.c): datagrams from a peer the fuzzer
 * plays, to an endpoint in either role at one of four points of its life. The first input byte
 * picks them: bit 0 the role (0 server, 1 client); bits 1-2 the phase: 0 new (never started:
 * the first datagram starts it), 1 started (a client's ClientHello already went out), 2 half-way
 * (one real round trip with an in-process peer done: the endpoint waits for the peer's last
 * flight), 3 connected (a full handshake with the in-process peer). The rest is a series of
 * datagrams, [length hi][length lo][bytes]; length 0 stands for es_dtls_close instead.
 *
 * The certificates are made once per process (ECDSA key generation is too slow per input); the
 * endpoints share the certificate's SSL_CTX, so one input costs an SSL_new, plus one handshake
 * in phase 3.
 *
 * Invariants: every datagram sent is at most ES_DTLS_MTU bytes of whole DTLS records (content
 * type 20..23, version DTLS 1.0 or 1.2, lengths adding up), and a too small poll buffer leaves it
 * queued (ES_E2BIG); a series of polls ends (the queue is bounded); handle_datagram returns 0 or
 * ES_EPROTO, ES_EPROTO exactly when the state is FAILED, and es_dtls_error is non-empty exactly
 * then; handle_timeout returns 0 or ES_ETIMEDOUT; the timer is 0 or within a second; FAILED and
 * CLOSED are final and an endpoint in them sends nothing more; OpenSSL's error queue is left
 * empty. The fuzzer cannot forge the in-process peer's certificate, so an endpoint that was not
 * connected never becomes CONNECTED and has no SRTP keys, and a connected one stays CONNECTED
 * with the same keys (forged records do not authenticate) and still closes cleanly: its
 * close_notify reaches the peer. Everything is freed per input (LeakSanitizer). */
#include "estuary/dtls.h"
#include "estuary/error.h"

#include <openssl/err.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DGRAM_CAP (ES_DTLS_MTU + 100) /* dtls.h: "a datagram is at most ES_DTLS_MTU + 100" */
#define MAX_POLLS 64                  /* datagrams one drain may yield: the queue is bounded */
#define MAX_TIMER_US 1000000u         /* dtls.h: the timeout doubles "up to 1 s" */

enum { PHASE_NEW, PHASE_STARTED, PHASE_HALFWAY, PHASE_CONNECTED };

static es_dtls_cert_t *certs[2]; /* 0: the endpoint under test, 1: its in-process peer */
static uint8_t fps[2][32];
static uint64_t now;

static void init_once(void)
{
    static bool done;
    if (done) return;
    done = true;
    char err[256];
    for (int i = 0; i < 2; i++) {
        certs[i] = es_dtls_cert_generate(err, sizeof err);
        if (!certs[i]) {
            fprintf(stderr, "fuzz_dtls: %s\n", err);
            abort();
        }
        const char *hex = es_dtls_cert_fingerprint(certs[i]);
        for (size_t k = 0; k < 32; k++) {
            unsigned v;
            if (sscanf(hex + 3 * k, "%2X", &v) != 1) abort();
            fps[i][k] = (uint8_t)v;
        }
    }
}

/* One datagram an endpoint sent: at most the MTU, and nothing but whole DTLS records. */
static void check_datagram(const uint8_t *b, size_t n)
{
    if (n == 0 || n > ES_DTLS_MTU) abort();
    size_t off = 0;
    while (off < n) {
        if (n - off < 13) abort(); /* a torn record header */
        if (b[off] < 20 || b[off] > 23) abort(); /* CCS, alert, handshake, application data */
        if (b[off + 1] != 0xfe || (b[off + 2] != 0xfd && b[off + 2] != 0xff)) abort();
        off += 13 + ((size_t)b[off + 11] << 8 | b[off + 12]);
    }
    if (off != n) abort(); /* a record torn across datagrams */
}

/* The state, the error text and the return code agree. */
static void check_state(const es_dtls_t *d, int rc)
{
    es_dtls_state_t st = es_dtls_state(d);
    if (st > ES_DTLS_FAILED) abort();
    if (rc != 0 && rc != ES_EPROTO) abort();
    if ((rc == ES_EPROTO) != (st == ES_DTLS_FAILED)) abort();
    if ((es_dtls_error(d)[0] != '\0') != (st == ES_DTLS_FAILED)) abort();
    es_dtls_srtp_keys_t k;
    int krc = es_dtls_srtp_keys(d, &k);
    if (krc != 0 && krc != ES_EAGAIN) abort();
    if (st == ES_DTLS_CONNECTED && krc != 0) abort();
    if (krc == 0 && (k.master_len != 30 && k.master_len != 28)) abort();
    if (ERR_peek_error() != 0) abort(); /* the thread's OpenSSL error queue left dirty */
}

static void deliver(es_dtls_t *d, const uint8_t *b, size_t n)
{
    check_state(d, es_dtls_handle_datagram(d, now, b, n));
}

/* Drains what `from` queued, checking every datagram; delivers to `to` unless NULL. Returns how
 * many there were. */
static unsigned drain(es_dtls_t *from, es_dtls_t *to)
{
    uint8_t buf[DGRAM_CAP];
    for (unsigned count = 0; count < MAX_POLLS; count++) {
        /* No record fits in 12 bytes: a queued datagram must stay queued. */
        int small = es_dtls_poll_datagram(from, buf, 12);
        int n = es_dtls_poll_datagram(from, buf, sizeof buf);
        if (small != 0 && small != ES_E2BIG) abort();
        if (small == 0 ? n != 0 : n <= 0) abort();
        if (n == 0) return count;
        check_datagram(buf, (size_t)n);
        if (to) deliver(to, buf, (size_t)n);
    }
    abort(); /* the queue never ran dry */
}

/* Runs both endpoints until neither sends anything; true when both are connected. */
static bool handshake(es_dtls_t *a, es_dtls_t *b)
{
    for (int round = 0; round < 20; round++) {
        unsigned moved = drain(a, b) + drain(b, a);
        if (moved == 0) break;
    }
    return es_dtls_state(a) == ES_DTLS_CONNECTED && es_dtls_state(b) == ES_DTLS_CONNECTED;
}

static void check_timer(es_dtls_t *d)
{
    uint64_t t = es_dtls_next_timeout_us(d, now);
    es_dtls_state_t st = es_dtls_state(d);
    if (t != 0 && (t < now || t > now + MAX_TIMER_US)) abort();
    if (t != 0 && st != ES_DTLS_HANDSHAKING && st != ES_DTLS_CONNECTED) abort();
    int rc = es_dtls_handle_timeout(d, now);
    if (rc != 0 && rc != ES_ETIMEDOUT) abort();
    if (rc == ES_ETIMEDOUT && es_dtls_state(d) != ES_DTLS_FAILED) abort();
    if (ERR_peek_error() != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    init_once();
    now = 1000000;
    es_dtls_role_t role = data[0] & 1 ? ES_DTLS_ROLE_CLIENT : ES_DTLS_ROLE_SERVER;
    int phase = data[0] >> 1 & 3;
    es_dtls_t *d = es_dtls_new(certs[0], role, "sha-256", fps[1], sizeof fps[1]);
    es_dtls_t *peer = NULL;
    if (!d) abort();
    if (es_dtls_state(d) != ES_DTLS_NEW) abort();
    if (phase >= PHASE_HALFWAY) {
        peer = es_dtls_new(certs[1], role == ES_DTLS_ROLE_SERVER ? ES_DTLS_ROLE_CLIENT
                                                                 : ES_DTLS_ROLE_SERVER,
                           "sha-256", fps[0], sizeof fps[0]);
        if (!peer) abort();
    }
    es_dtls_t *client = role == ES_DTLS_ROLE_CLIENT ? d : peer;
    es_dtls_t *server = role == ES_DTLS_ROLE_CLIENT ? peer : d;

    es_dtls_srtp_keys_t keys;
    memset(&keys, 0, sizeof keys);
    switch (phase) {
    case PHASE_NEW:
        break;
    case PHASE_STARTED:
        check_state(d, es_dtls_start(d, now));
        if (es_dtls_state(d) != ES_DTLS_HANDSHAKING) abort();
        drain(d, NULL); /* a client's ClientHello: lost */
        break;
    case PHASE_HALFWAY:
        check_state(client, es_dtls_start(client, now));
        check_state(server, es_dtls_start(server, now));
        drain(client, server); /* ClientHello */
        drain(server, client); /* ServerHello .. ServerHelloDone */
        drain(d, NULL); /* the client's second flight, or nothing new from the server: lost */
        if (es_dtls_state(d) != ES_DTLS_HANDSHAKING) abort();
        break;
    case PHASE_CONNECTED:
        check_state(client, es_dtls_start(client, now));
        check_state(server, es_dtls_start(server, now));
        if (!handshake(client, server)) abort(); /* the setup itself failed */
        if (es_dtls_srtp_keys(d, &keys) != 0) abort();
        break;
    }

    es_dtls_state_t before = es_dtls_state(d);
    bool closed = false; /* es_dtls_close was called */
    size_t off = 1;
    uint8_t buf[2048];
    while (size - off >= 2) {
        size_t len = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        es_dtls_state_t st0 = es_dtls_state(d);
        unsigned sent;
        if (len == 0) {
            es_dtls_close(d);
            closed = true;
            es_dtls_state_t st = es_dtls_state(d);
            if (st0 == ES_DTLS_FAILED ? st != ES_DTLS_FAILED : st != ES_DTLS_CLOSED) abort();
            check_state(d, st == ES_DTLS_FAILED ? ES_EPROTO : 0);
            sent = drain(d, NULL);
            if (sent && st0 != ES_DTLS_CONNECTED) abort(); /* close_notify only when connected */
        } else {
            if (len > size - off) len = size - off;
            if (len > sizeof buf) len = sizeof buf;
            memcpy(buf, data + off, len); /* a copy: the endpoint may not keep the pointer */
            off += len;
            deliver(d, buf, len);
            sent = drain(d, NULL);
        }
        es_dtls_state_t st = es_dtls_state(d);
        if ((st0 == ES_DTLS_FAILED || st0 == ES_DTLS_CLOSED) && (st != st0 || sent)) abort();
        if (st == ES_DTLS_CONNECTED && before != ES_DTLS_CONNECTED) abort(); /* forged handshake */
        if (before == ES_DTLS_CONNECTED && st != (closed ? ES_DTLS_CLOSED : ES_DTLS_CONNECTED))
            abort(); /* forged records failed or closed a connected endpoint */
        now += 10000;
        check_timer(d);
    }

    if (before == ES_DTLS_CONNECTED) {
        es_dtls_srtp_keys_t after;
        if (es_dtls_srtp_keys(d, &after) != 0 || memcmp(&keys, &after, sizeof keys) != 0)
            abort(); /* the keys changed under forged input */
        /* The session still works: a close_notify reaches the peer. */
        bool open = es_dtls_state(d) == ES_DTLS_CONNECTED;
        es_dtls_close(d);
        drain(d, peer);
        if (open && es_dtls_state(peer) != ES_DTLS_CLOSED) abort();
    } else if (es_dtls_srtp_keys(d, &keys) != ES_EAGAIN) {
        abort();
    }
    es_dtls_free(d);
    es_dtls_free(peer);
    return 0;
}
