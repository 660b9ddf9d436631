/* Unit tests for src/webrtc/dtls.c: two in-memory endpoints (server and client) exchange
 * datagrams on a virtual clock until both are connected (RFC 5764 key export, RFC 8122
 * fingerprints), with lost flights, timeouts, close_notify, garbage input, and certificates
 * loaded from PEM files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dtls_fixtures.h"

#include "estuary/dtls.h"
#include "estuary/error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DGRAM_CAP (ES_DTLS_MTU + 100)
#ifndef GARBAGE_N
#define GARBAGE_N 3000 /* random datagrams per test */
#endif

typedef struct {
    es_dtls_cert_t *cert_s, *cert_c;
    es_dtls_t *server, *client;
    uint64_t now;
    unsigned datagrams; /* exchanged so far */
    size_t largest;
} pair_t;

static void pair_init(pair_t *p, const es_dtls_cert_t *cs, const es_dtls_cert_t *cc)
{
    memset(p, 0, sizeof *p);
    char err[256];
    p->cert_s = cs ? NULL : es_dtls_cert_generate(err, sizeof err);
    p->cert_c = cc ? NULL : es_dtls_cert_generate(err, sizeof err);
    if (!cs)
        cs = p->cert_s;
    if (!cc)
        cc = p->cert_c;
    assert_non_null(cs);
    assert_non_null(cc);
    uint8_t fs[64], fc[64];
    size_t ns = fp_bytes(cs, fs), nc = fp_bytes(cc, fc);
    p->server = es_dtls_new(cs, ES_DTLS_ROLE_SERVER, "sha-256", fc, nc);
    p->client = es_dtls_new(cc, ES_DTLS_ROLE_CLIENT, "SHA-256", fs, ns);
    assert_non_null(p->server);
    assert_non_null(p->client);
    p->now = 1000000;
}

static void pair_deinit(pair_t *p)
{
    es_dtls_free(p->server);
    es_dtls_free(p->client);
    es_dtls_cert_free(p->cert_s);
    es_dtls_cert_free(p->cert_c);
}

/* Moves every queued datagram from `from` to `to`; drop says whether to lose them. Returns
 * how many were moved. Checks the size bound and that no OpenSSL error is left queued. */
static unsigned flush(pair_t *p, es_dtls_t *from, es_dtls_t *to, bool drop)
{
    uint8_t buf[DGRAM_CAP];
    unsigned count = 0;
    int n;
    while ((n = es_dtls_poll_datagram(from, buf, sizeof buf)) > 0) {
        assert_true((size_t)n <= ES_DTLS_MTU);
        assert_true(buf[0] >= 20 && buf[0] <= 63); /* RFC 7983 demultiplexing range */
        if ((size_t)n > p->largest)
            p->largest = (size_t)n;
        count++;
        p->datagrams++;
        if (!drop)
            (void)es_dtls_handle_datagram(to, p->now, buf, (size_t)n);
        assert_int_equal(ERR_peek_error(), 0);
    }
    assert_int_equal(n, 0);
    return count;
}

static bool both(const pair_t *p, es_dtls_state_t s)
{
    return es_dtls_state(p->server) == s && es_dtls_state(p->client) == s;
}

/* Sleeps (really: OpenSSL's timers read the real clock) until d's retransmission timer is
 * due, advancing the virtual clock by as much. */
static void wait_timer(pair_t *p, es_dtls_t *d)
{
    uint64_t t = es_dtls_next_timeout_us(d, p->now);
    assert_true(t != 0);
    assert_true(t - p->now <= 1000000);
    usleep((useconds_t)(t - p->now + 1000));
    p->now = t + 1000;
}

/* Runs the exchange until both are connected or rounds run out; when nothing is in flight,
 * waits for the earlier retransmission timer and fires it. */
static void pump(pair_t *p, int rounds)
{
    for (int i = 0; i < rounds && !both(p, ES_DTLS_CONNECTED); i++) {
        unsigned moved = flush(p, p->client, p->server, false);
        moved += flush(p, p->server, p->client, false);
        if (moved > 0)
            continue;
        uint64_t ts = es_dtls_next_timeout_us(p->server, p->now);
        uint64_t tc = es_dtls_next_timeout_us(p->client, p->now);
        if (ts == 0 && tc == 0)
            break; /* nothing will ever happen */
        wait_timer(p, tc == 0 || (ts != 0 && ts < tc) ? p->server : p->client);
        (void)es_dtls_handle_timeout(p->server, p->now);
        (void)es_dtls_handle_timeout(p->client, p->now);
    }
}

static void test_handshake_and_keys(void **state)
{
    pair_t p;
    pair_init(&p, NULL, NULL);
    es_dtls_srtp_keys_t ks, kc;
    assert_int_equal(es_dtls_srtp_keys(p.server, &ks), ES_EAGAIN);
    assert_int_equal(es_dtls_state(p.client), ES_DTLS_NEW);
    assert_int_equal(es_dtls_next_timeout_us(p.client, p.now), 0);

    assert_int_equal(es_dtls_start(p.server, p.now), 0);
    assert_int_equal(es_dtls_poll_datagram(p.server, (uint8_t[16]){0}, 16), 0); /* waits */
    assert_int_equal(es_dtls_start(p.client, p.now), 0);
    assert_int_equal(es_dtls_state(p.client), ES_DTLS_HANDSHAKING);
    /* The ClientHello's retransmission timer: 100 ms by default. */
    uint64_t t = es_dtls_next_timeout_us(p.client, p.now);
    assert_true(t > p.now && t <= p.now + 100000);

    uint8_t small[8];
    assert_int_equal(es_dtls_poll_datagram(p.client, small, sizeof small), ES_E2BIG);

    pump(&p, 20);
    assert_true(both(&p, ES_DTLS_CONNECTED));
    assert_string_equal(es_dtls_error(p.server), "");
    assert_int_equal(es_dtls_srtp_keys(p.server, &ks), 0);
    assert_int_equal(es_dtls_srtp_keys(p.client, &kc), 0);
    assert_int_equal(ks.profile, ES_SRTP_AEAD_AES_128_GCM); /* preferred by both */
    assert_int_equal(kc.profile, ES_SRTP_AEAD_AES_128_GCM);
    assert_int_equal(ks.master_len, 28);
    assert_int_equal(kc.master_len, 28);
    assert_memory_equal(ks.local, kc.remote, 28);
    assert_memory_equal(ks.remote, kc.local, 28);
    assert_memory_not_equal(ks.local, ks.remote, 28);
    /* A normal handshake needs few datagrams; flights are coalesced. */
    assert_true(p.datagrams <= 8);
    pair_deinit(&p);
}

static void test_cert_freed_before_endpoints(void **state)
{
    pair_t p;
    pair_init(&p, NULL, NULL);
    es_dtls_cert_free(p.cert_s);
    es_dtls_cert_free(p.cert_c);
    p.cert_s = p.cert_c = NULL;
    assert_int_equal(es_dtls_start(p.client, p.now), 0);
    pump(&p, 20);
    assert_true(both(&p, ES_DTLS_CONNECTED));
    pair_deinit(&p);
}

static void test_fingerprint_mismatch(void **state)
{
    char err[256];
    es_dtls_cert_t *a = es_dtls_cert_generate(err, sizeof err);
    es_dtls_cert_t *b = es_dtls_cert_generate(err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    uint8_t fa[64], fb[64];
    size_t na = fp_bytes(a, fa), nb = fp_bytes(b, fb);

    /* The client expects a different server certificate. */
    for (int side = 0; side < 2; side++) {
        uint8_t wrong[64];
        memcpy(wrong, side == 0 ? fa : fb, 32);
        wrong[5] ^= 1;
        pair_t p;
        memset(&p, 0, sizeof p);
        p.now = 5;
        p.server = es_dtls_new(a, ES_DTLS_ROLE_SERVER, "sha-256", side == 1 ? wrong : fb, nb);
        p.client = es_dtls_new(b, ES_DTLS_ROLE_CLIENT, "sha-256", side == 0 ? wrong : fa, na);
        assert_int_equal(es_dtls_start(p.client, p.now), 0);
        pump(&p, 20);
        es_dtls_t *victim = side == 0 ? p.client : p.server;
        assert_int_equal(es_dtls_state(victim), ES_DTLS_FAILED);
        assert_non_null(strstr(es_dtls_error(victim), "fingerprint"));
        es_dtls_srtp_keys_t k;
        assert_int_equal(es_dtls_srtp_keys(victim, &k), ES_EAGAIN);
        /* The other side was told (bad_certificate alert) and failed too. */
        assert_int_equal(es_dtls_state(side == 0 ? p.server : p.client), ES_DTLS_FAILED);
        assert_int_equal(es_dtls_handle_datagram(victim, p.now, (const uint8_t *)"\x16", 1),
                         ES_EPROTO);
        assert_int_equal(es_dtls_next_timeout_us(victim, p.now), 0);
        pair_deinit(&p);
    }
    /* A digest of the wrong algorithm cannot match either. */
    pair_t p;
    memset(&p, 0, sizeof p);
    p.server = es_dtls_new(a, ES_DTLS_ROLE_SERVER, "sha-1", fb, nb);
    p.client = es_dtls_new(b, ES_DTLS_ROLE_CLIENT, "sha-256", fa, na);
    assert_int_equal(es_dtls_start(p.client, p.now), 0);
    pump(&p, 20);
    assert_int_equal(es_dtls_state(p.server), ES_DTLS_FAILED);
    assert_non_null(strstr(es_dtls_error(p.server), "fingerprint"));
    pair_deinit(&p);

    assert_null(es_dtls_new(a, ES_DTLS_ROLE_SERVER, "md5", fb, 16));
    assert_null(es_dtls_new(a, ES_DTLS_ROLE_SERVER, NULL, fb, 32));
    es_dtls_cert_free(a);
    es_dtls_cert_free(b);
}

static void test_lost_flight(void **state)
{
    pair_t p;
    pair_init(&p, NULL, NULL);
    /* 20 ms first timeouts keep the real sleeps short. */
    es_dtls_set_timer(p.server, 20000, 6);
    es_dtls_set_timer(p.client, 20000, 6);
    assert_int_equal(es_dtls_start(p.client, p.now), 0);
    assert_int_equal(flush(&p, p.client, p.server, false), 1); /* ClientHello */
    assert_true(flush(&p, p.server, p.client, true) >= 1);      /* ServerHello flight lost */
    assert_int_equal(es_dtls_state(p.client), ES_DTLS_HANDSHAKING);

    /* Not due yet: nothing happens. */
    assert_int_equal(es_dtls_handle_timeout(p.client, p.now), 0);
    assert_int_equal(es_dtls_poll_datagram(p.client, (uint8_t[DGRAM_CAP]){0}, DGRAM_CAP), 0);
    wait_timer(&p, p.client);
    assert_int_equal(es_dtls_handle_timeout(p.client, p.now), 0);
    assert_int_equal(es_dtls_state(p.client), ES_DTLS_HANDSHAKING);
    unsigned before = p.datagrams;
    pump(&p, 50);
    assert_true(both(&p, ES_DTLS_CONNECTED));
    assert_true(p.datagrams > before);
    es_dtls_srtp_keys_t ks, kc;
    assert_int_equal(es_dtls_srtp_keys(p.server, &ks), 0);
    assert_int_equal(es_dtls_srtp_keys(p.client, &kc), 0);
    assert_memory_equal(ks.local, kc.remote, ks.master_len);
    pair_deinit(&p);
}

static void test_lost_last_flight(void **state)
{
    /* The server's ChangeCipherSpec+Finished is lost: the client retransmits its flight and
     * the (already connected) server answers with its last flight again (RFC 6347 §4.2.4). */
    pair_t p;
    pair_init(&p, NULL, NULL);
    es_dtls_set_timer(p.client, 20000, 6);
    assert_int_equal(es_dtls_start(p.client, p.now), 0);
    flush(&p, p.client, p.server, false); /* ClientHello */
    flush(&p, p.server, p.client, false); /* ServerHello..ServerHelloDone */
    flush(&p, p.client, p.server, false); /* Certificate..Finished */
    assert_int_equal(es_dtls_state(p.server), ES_DTLS_CONNECTED);
    flush(&p, p.server, p.client, true); /* CCS+Finished lost */
    assert_int_equal(es_dtls_state(p.client), ES_DTLS_HANDSHAKING);
    wait_timer(&p, p.client);
    assert_int_equal(es_dtls_handle_timeout(p.client, p.now), 0);
    pump(&p, 20);
    assert_true(both(&p, ES_DTLS_CONNECTED));
    pair_deinit(&p);
}

static void test_timeout_fails(void **state)
{
    pair_t p;
    pair_init(&p, NULL, NULL);
    es_dtls_set_timer(p.client, 20000, 3); /* 20 + 40 + 80 + 160 ms */
    assert_int_equal(es_dtls_start(p.client, p.now), 0);
    unsigned hellos = flush(&p, p.client, p.server, true);
    int rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++) {
        wait_timer(&p, p.client);
        rc = es_dtls_handle_timeout(p.client, p.now);
        hellos += flush(&p, p.client, p.server, true);
    }
    assert_int_equal(rc, ES_ETIMEDOUT);
    assert_int_equal(hellos, 4); /* the first and three retransmissions */
    assert_int_equal(es_dtls_state(p.client), ES_DTLS_FAILED);
    assert_non_null(strstr(es_dtls_error(p.client), "timed out"));
    assert_int_equal(es_dtls_next_timeout_us(p.client, p.now), 0);
    assert_int_equal(ERR_peek_error(), 0);
    pair_deinit(&p);
}

static void test_close_notify(void **state)
{
    for (int closer = 0; closer < 2; closer++) {
        pair_t p;
        pair_init(&p, NULL, NULL);
        assert_int_equal(es_dtls_start(p.client, p.now), 0);
        pump(&p, 20);
        assert_true(both(&p, ES_DTLS_CONNECTED));
        es_dtls_t *a = closer == 0 ? p.client : p.server, *b = closer == 0 ? p.server : p.client;
        es_dtls_close(a);
        assert_int_equal(es_dtls_state(a), ES_DTLS_CLOSED);
        assert_int_equal(flush(&p, a, b, false), 1);
        assert_int_equal(es_dtls_state(b), ES_DTLS_CLOSED);
        assert_string_equal(es_dtls_error(b), "");
        /* Keys stay readable after the close. */
        es_dtls_srtp_keys_t k;
        assert_int_equal(es_dtls_srtp_keys(b, &k), 0);
        pair_deinit(&p);
    }
}

/* A datagram that looks like DTLS: record headers with plausible types, version and epoch. */
static size_t random_datagram(uint8_t *buf, size_t cap, unsigned seed)
{
    size_t len = 1 + (size_t)rand() % (cap - 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rand();
    if (seed % 2 == 0 && len >= 13) {
        size_t off = 0;
        while (off + 13 <= len) {
            size_t body = (size_t)rand() % (len - off - 13 + 1);
            buf[off] = (uint8_t)(20 + rand() % 4);
            buf[off + 1] = 0xfe;
            buf[off + 2] = rand() % 2 ? 0xfd : 0xff;
            buf[off + 3] = 0;
            buf[off + 4] = (uint8_t)(rand() % 3);
            buf[off + 11] = (uint8_t)(body >> 8);
            buf[off + 12] = (uint8_t)body;
            if (buf[off] == 22 && body >= 12)
                buf[off + 13] = (uint8_t)(rand() % 21); /* a handshake message type */
            off += 13 + body;
        }
    }
    return len;
}

static void test_garbage_when_connected(void **state)
{
    pair_t p;
    pair_init(&p, NULL, NULL);
    assert_int_equal(es_dtls_start(p.client, p.now), 0);
    pump(&p, 20);
    assert_true(both(&p, ES_DTLS_CONNECTED));
    es_dtls_srtp_keys_t before, after;
    assert_int_equal(es_dtls_srtp_keys(p.server, &before), 0);
    srand(1234);
    uint8_t buf[1500];
    for (unsigned i = 0; i < GARBAGE_N; i++) {
        size_t len = random_datagram(buf, sizeof buf, i);
        es_dtls_t *d = i % 2 ? p.server : p.client;
        int rc = es_dtls_handle_datagram(d, p.now, buf, len);
        if (rc != 0)
            fail_msg("datagram %u (%zu bytes, %02x %02x%02x epoch %02x%02x len %02x%02x): %s", i, len, buf[0], buf[1], buf[2], buf[3], buf[4], buf[11], buf[12], es_dtls_error(d));
        assert_int_equal(ERR_peek_error(), 0);
    }
    assert_true(both(&p, ES_DTLS_CONNECTED));
    assert_int_equal(es_dtls_srtp_keys(p.server, &after), 0);
    assert_memory_equal(&before, &after, sizeof before);
    /* Whatever they answered (nothing, normally) is well-formed; the session still works. */
    flush(&p, p.server, p.client, true);
    flush(&p, p.client, p.server, true);
    es_dtls_close(p.server);
    flush(&p, p.server, p.client, false);
    assert_int_equal(es_dtls_state(p.client), ES_DTLS_CLOSED);
    pair_deinit(&p);
}

static void test_garbage_during_handshake(void **state)
{
    /* Random bytes to fresh and half-way endpoints: no crash, no leak, no stray OpenSSL
     * errors; failing the handshake is allowed. */
    char err[256];
    es_dtls_cert_t *c = es_dtls_cert_generate(err, sizeof err);
    assert_non_null(c);
    uint8_t fp[32] = {0};
    srand(99);
    uint8_t buf[1500], out[DGRAM_CAP];
    es_dtls_t *d = NULL;
    for (unsigned i = 0; i < GARBAGE_N; i++) {
        if (d == NULL || i % 50 == 0 || es_dtls_state(d) == ES_DTLS_FAILED) {
            es_dtls_free(d);
            d = es_dtls_new(c, i % 3 ? ES_DTLS_ROLE_SERVER : ES_DTLS_ROLE_CLIENT, "sha-256", fp,
                            sizeof fp);
            assert_non_null(d);
            assert_int_equal(es_dtls_start(d, i), 0);
        }
        size_t len = random_datagram(buf, sizeof buf, i);
        int rc = es_dtls_handle_datagram(d, i, buf, len);
        assert_true(rc == 0 || rc == ES_EPROTO);
        assert_int_equal(rc == ES_EPROTO, es_dtls_state(d) == ES_DTLS_FAILED);
        int n;
        while ((n = es_dtls_poll_datagram(d, out, sizeof out)) > 0)
            assert_true((size_t)n <= ES_DTLS_MTU);
        assert_int_equal(ERR_peek_error(), 0);
    }
    es_dtls_free(d);
    es_dtls_cert_free(c);
}

static void test_fingerprint_format(void **state)
{
    char err[256];
    es_dtls_cert_t *c = es_dtls_cert_generate(err, sizeof err);
    assert_non_null(c);
    const char *fp = es_dtls_cert_fingerprint(c);
    assert_int_equal(strlen(fp), 95);
    for (size_t i = 0; i < 95; i++) {
        if (i % 3 == 2)
            assert_int_equal(fp[i], ':');
        else
            assert_true(isxdigit((unsigned char)fp[i]) && !islower((unsigned char)fp[i]));
    }
    es_dtls_cert_t *d = es_dtls_cert_generate(err, sizeof err);
    assert_string_not_equal(fp, es_dtls_cert_fingerprint(d));
    es_dtls_cert_free(c);
    es_dtls_cert_free(d);
    es_dtls_cert_free(NULL);
    es_dtls_free(NULL);
}

/* Writes an EC key and a self-signed certificate carrying `comment_len` bytes of comment (to
 * make the Certificate message larger than one datagram). Returns the certificate. */
static X509 *write_pem(const char *cert_path, const char *key_path, size_t comment_len)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    if (comment_len > 0) {
        char *comment = malloc(comment_len + 1);
        memset(comment, 'c', comment_len);
        comment[comment_len] = '\0';
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_netscape_comment, comment);
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        free(comment);
    }
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    EVP_PKEY_free(key);
    return x;
}

static void test_cert_load(void **state)
{
    char dir[] = "/tmp/estuary-dtls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cert[300], key[300], cert2[300], key2[300], junk[300];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cert2, sizeof cert2, "%s/cert2.pem", dir);
    snprintf(key2, sizeof key2, "%s/key2.pem", dir);
    snprintf(junk, sizeof junk, "%s/junk.pem", dir);
    X509 *x = write_pem(cert, key, 2500);
    X509_free(write_pem(cert2, key2, 0));
    FILE *f = fopen(junk, "w");
    fputs("not a PEM file\n", f);
    fclose(f);

    char err[512] = "";
    es_dtls_cert_t *c = es_dtls_cert_load(cert, key, err, sizeof err);
    assert_non_null(c);
    /* The fingerprint is the SHA-256 of the DER certificate. */
    uint8_t md[32];
    unsigned n = 0;
    X509_digest(x, EVP_sha256(), md, &n);
    char hex[100];
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X", md[i]);
    assert_string_equal(es_dtls_cert_fingerprint(c), hex);
    X509_free(x);

    /* A certificate larger than the MTU: the Certificate message is fragmented. */
    pair_t p;
    pair_init(&p, c, NULL);
    assert_int_equal(es_dtls_start(p.client, p.now), 0);
    pump(&p, 20);
    assert_true(both(&p, ES_DTLS_CONNECTED));
    assert_true(p.largest > ES_DTLS_MTU - 200); /* datagrams were filled up to the MTU */
    pair_deinit(&p);
    es_dtls_cert_free(c);

    char missing[320];
    snprintf(missing, sizeof missing, "%s/missing.pem", dir);
    assert_null(es_dtls_cert_load(missing, key, err, sizeof err));
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));
    assert_null(es_dtls_cert_load(cert, missing, err, sizeof err));
    assert_non_null(strstr(err, missing));
    assert_null(es_dtls_cert_load(junk, key, err, sizeof err));
    assert_non_null(strstr(err, junk));
    assert_non_null(strstr(err, "certificate"));
    assert_null(es_dtls_cert_load(cert, junk, err, sizeof err));
    assert_non_null(strstr(err, "private key"));
    assert_null(es_dtls_cert_load(cert, key2, err, sizeof err)); /* another key */
    assert_non_null(strstr(err, "does not match"));
    assert_null(es_dtls_cert_load(missing, key, NULL, 0)); /* err is optional */
    assert_int_equal(ERR_peek_error(), 0);

    unlink(cert);
    unlink(key);
    unlink(cert2);
    unlink(key2);
    unlink(junk);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_keys),
        cmocka_unit_test(test_cert_freed_before_endpoints),
        cmocka_unit_test(test_fingerprint_mismatch),
        cmocka_unit_test(test_lost_flight),
        cmocka_unit_test(test_lost_last_flight),
        cmocka_unit_test(test_timeout_fails),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_garbage_when_connected),
        cmocka_unit_test(test_garbage_during_handshake),
        cmocka_unit_test(test_fingerprint_format),
        cmocka_unit_test(test_cert_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
