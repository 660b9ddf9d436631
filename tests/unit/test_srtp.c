/* Unit tests for src/webrtc/srtp.c: SRTP and SRTCP round trips for AES_CM_128_HMAC_SHA1_80
 * and AEAD_AES_128_GCM, tampering, replay, NACK retransmission, keys from a DTLS handshake,
 * and known answers: the RFC 3711 Appendix B.3 key derivation, reimplemented here on OpenSSL
 * (RFC 3711 §4.1.1, §4.2, §4.3), checked against libsrtp2's output, plus fixed vectors for
 * both profiles computed independently with Python's `cryptography`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dtls_fixtures.h"

#include "estuary/dtls.h"
#include "estuary/error.h"
#include "estuary/srtp.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <srtp2/srtp.h>

#define BUF_CAP (1500 + ES_SRTP_MAX_TRAILER)

static const uint8_t K1[30] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                               16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30};
static const uint8_t K2[30] = {0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69,
                               0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f, 0x11, 0x22, 0x33, 0x44,
                               0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};

/* Two ends of one session: a sends with K1 and receives with K2, b the other way round. */
static void make_pair(es_srtp_profile_t profile, es_srtp_t **a, es_srtp_t **b)
{
    es_dtls_srtp_keys_t ka = {.profile = profile}, kb;
    ka.master_len = profile == ES_SRTP_AEAD_AES_128_GCM ? 28 : 30;
    memcpy(ka.local, K1, ka.master_len);
    memcpy(ka.remote, K2, ka.master_len);
    kb = ka;
    memcpy(kb.local, K2, kb.master_len);
    memcpy(kb.remote, K1, kb.master_len);
    *a = es_srtp_new(&ka);
    *b = es_srtp_new(&kb);
    assert_non_null(*a);
    assert_non_null(*b);
}

static size_t rtp_packet(uint8_t *buf, uint16_t seq, uint32_t ssrc, size_t payload_len)
{
    const uint8_t hdr[12] = {0x80, 0x60, (uint8_t)(seq >> 8), (uint8_t)seq, 0, 0, 0x16, 0x2e,
                             (uint8_t)(ssrc >> 24), (uint8_t)(ssrc >> 16), (uint8_t)(ssrc >> 8),
                             (uint8_t)ssrc};
    memcpy(buf, hdr, sizeof hdr);
    for (size_t i = 0; i < payload_len; i++)
        buf[12 + i] = (uint8_t)(i * 7 + seq);
    return 12 + payload_len;
}

static size_t rtcp_rr(uint8_t *buf, uint32_t ssrc)
{
    /* RR with no report blocks, then an SDES CNAME "ab" (a compound packet, RFC 3550 §6.1). */
    const uint8_t pkt[] = {0x80, 201, 0, 1, (uint8_t)(ssrc >> 24), (uint8_t)(ssrc >> 16),
                           (uint8_t)(ssrc >> 8), (uint8_t)ssrc,
                           0x81, 202, 0, 2, (uint8_t)(ssrc >> 24), (uint8_t)(ssrc >> 16),
                           (uint8_t)(ssrc >> 8), (uint8_t)ssrc, 1, 2, 'a', 'b'};
    memcpy(buf, pkt, sizeof pkt);
    return sizeof pkt;
}

static void round_trip(es_srtp_profile_t profile)
{
    es_srtp_t *a, *b;
    make_pair(profile, &a, &b);
    size_t tag = profile == ES_SRTP_AEAD_AES_128_GCM ? 16 : 10;
    uint8_t plain[BUF_CAP], buf[BUF_CAP];
    for (uint16_t seq = 100; seq < 140; seq++) {
        size_t len = rtp_packet(plain, seq, 0x11223344 + (seq % 3), seq % 2 ? 1000 : 0);
        memcpy(buf, plain, len);
        int n = es_srtp_protect_rtp(a, buf, len, sizeof buf);
        assert_int_equal(n, (int)(len + tag));
        assert_memory_equal(buf, plain, 12); /* the header stays clear */
        if (len > 12)
            assert_memory_not_equal(buf + 12, plain + 12, len - 12);
        assert_int_equal(es_srtp_unprotect_rtp(b, buf, (size_t)n), (int)len);
        assert_memory_equal(buf, plain, len);
        /* The other direction uses the other key. */
        memcpy(buf, plain, len);
        n = es_srtp_protect_rtp(b, buf, len, sizeof buf);
        assert_int_equal(es_srtp_unprotect_rtp(a, buf, (size_t)n), (int)len);
        assert_memory_equal(buf, plain, len);
    }
    for (int i = 0; i < 10; i++) {
        size_t len = rtcp_rr(plain, 0x55667788);
        memcpy(buf, plain, len);
        int n = es_srtp_protect_rtcp(a, buf, len, sizeof buf);
        assert_int_equal(n, (int)(len + 4 + tag)); /* E flag + SRTCP index, then the tag */
        assert_memory_equal(buf, plain, 8);        /* first header and SSRC stay clear */
        assert_int_equal(es_srtp_unprotect_rtcp(b, buf, (size_t)n), (int)len);
        assert_memory_equal(buf, plain, len);
    }
    es_srtp_free(a);
    es_srtp_free(b);
}

static void test_round_trip_cm(void **state)
{
    round_trip(ES_SRTP_AES128_CM_SHA1_80);
}

static void test_round_trip_gcm(void **state)
{
    round_trip(ES_SRTP_AEAD_AES_128_GCM);
}

static void test_tamper_and_replay(void **state)
{
    for (int k = 0; k < 2; k++) {
        es_srtp_profile_t profile = k ? ES_SRTP_AEAD_AES_128_GCM : ES_SRTP_AES128_CM_SHA1_80;
        es_srtp_t *a, *b;
        make_pair(profile, &a, &b);
        uint8_t buf[BUF_CAP], copy[BUF_CAP];
        size_t len = rtp_packet(buf, 7, 1, 100);
        int n = es_srtp_protect_rtp(a, buf, len, sizeof buf);
        assert_true(n > 0);

        memcpy(copy, buf, (size_t)n);
        copy[n - 1] ^= 0x01; /* tag */
        assert_int_equal(es_srtp_unprotect_rtp(b, copy, (size_t)n), ES_EPROTO);
        memcpy(copy, buf, (size_t)n);
        copy[20] ^= 0x80; /* payload */
        assert_int_equal(es_srtp_unprotect_rtp(b, copy, (size_t)n), ES_EPROTO);
        memcpy(copy, buf, (size_t)n);
        copy[1] ^= 0x01; /* header (authenticated) */
        assert_int_equal(es_srtp_unprotect_rtp(b, copy, (size_t)n), ES_EPROTO);
        assert_int_equal(es_srtp_unprotect_rtp(b, buf, 5), ES_EPROTO); /* runt */

        memcpy(copy, buf, (size_t)n);
        assert_int_equal(es_srtp_unprotect_rtp(b, buf, (size_t)n), (int)len);
        assert_int_equal(es_srtp_unprotect_rtp(b, copy, (size_t)n), ES_EEXIST); /* replay */

        /* Older than the 1024-packet window: seq 10, then seq 2000, then seq 10 arrives. */
        uint8_t old[BUF_CAP];
        size_t olen = rtp_packet(old, 10, 1, 50);
        int on = es_srtp_protect_rtp(a, old, olen, sizeof old);
        len = rtp_packet(buf, 2000, 1, 50);
        n = es_srtp_protect_rtp(a, buf, len, sizeof buf);
        assert_int_equal(es_srtp_unprotect_rtp(b, buf, (size_t)n), (int)len);
        assert_int_equal(es_srtp_unprotect_rtp(b, old, (size_t)on), ES_EEXIST);

        /* SRTCP: tampering and replay too. */
        len = rtcp_rr(buf, 9);
        n = es_srtp_protect_rtcp(a, buf, len, sizeof buf);
        memcpy(copy, buf, (size_t)n);
        copy[n - 2] ^= 0x40;
        assert_int_equal(es_srtp_unprotect_rtcp(b, copy, (size_t)n), ES_EPROTO);
        memcpy(copy, buf, (size_t)n);
        assert_int_equal(es_srtp_unprotect_rtcp(b, buf, (size_t)n), (int)len);
        assert_int_equal(es_srtp_unprotect_rtcp(b, copy, (size_t)n), ES_EEXIST);
        es_srtp_free(a);
        es_srtp_free(b);
    }
}

static void test_retransmission_and_capacity(void **state)
{
    es_srtp_t *a, *b;
    make_pair(ES_SRTP_AES128_CM_SHA1_80, &a, &b);
    uint8_t p1[BUF_CAP], p2[BUF_CAP];
    size_t len = rtp_packet(p1, 500, 42, 200);
    memcpy(p2, p1, len);
    /* A NACK retransmission protects the same packet again: allowed, same bytes. */
    int n1 = es_srtp_protect_rtp(a, p1, len, sizeof p1);
    int n2 = es_srtp_protect_rtp(a, p2, len, sizeof p2);
    assert_true(n1 > 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(p1, p2, (size_t)n1);
    assert_int_equal(es_srtp_unprotect_rtp(b, p1, (size_t)n1), (int)len);
    assert_int_equal(es_srtp_unprotect_rtp(b, p2, (size_t)n2), ES_EEXIST);

    /* The caller must leave ES_SRTP_MAX_TRAILER bytes of room. */
    len = rtp_packet(p1, 501, 42, 200);
    assert_int_equal(es_srtp_protect_rtp(a, p1, len, len + ES_SRTP_MAX_TRAILER - 1), ES_E2BIG);
    assert_int_equal(es_srtp_protect_rtcp(a, p1, 20, 20 + 10), ES_E2BIG);
    assert_int_equal(es_srtp_protect_rtp(a, p1, len, len + ES_SRTP_MAX_TRAILER), (int)len + 10);
    assert_int_equal(es_srtp_protect_rtp(a, p1, 3, sizeof p1), ES_EPROTO); /* not RTP */

    /* Keys of the wrong size are refused. */
    es_dtls_srtp_keys_t k = {.profile = ES_SRTP_AEAD_AES_128_GCM, .master_len = 30};
    assert_null(es_srtp_new(&k));
    k.profile = (es_srtp_profile_t)2;
    k.master_len = 30;
    assert_null(es_srtp_new(&k));
    assert_int_equal(es_srtp_global_init(), 0);
    assert_int_equal(es_srtp_global_init(), 0);
    es_srtp_free(NULL);
    es_srtp_free(a);
    es_srtp_free(b);
}

/* ---- keys from a DTLS handshake ---------------------------------------------------------- */

static void shuttle(es_dtls_t *from, es_dtls_t *to)
{
    uint8_t buf[ES_DTLS_MTU + 100];
    int n;
    while ((n = es_dtls_poll_datagram(from, buf, sizeof buf)) > 0)
        (void)es_dtls_handle_datagram(to, 0, buf, (size_t)n);
}

static void test_keys_from_dtls(void **state)
{
    char err[256];
    es_dtls_cert_t *cs = es_dtls_cert_generate(err, sizeof err);
    es_dtls_cert_t *cc = es_dtls_cert_generate(err, sizeof err);
    assert_non_null(cs);
    assert_non_null(cc);
    uint8_t fs[32], fc[32];
    size_t ns = fp_bytes(cs, fs), nc = fp_bytes(cc, fc);
    es_dtls_t *server = es_dtls_new(cs, ES_DTLS_ROLE_SERVER, "sha-256", fc, nc);
    es_dtls_t *client = es_dtls_new(cc, ES_DTLS_ROLE_CLIENT, "sha-256", fs, ns);
    assert_int_equal(es_dtls_start(client, 0), 0);
    for (int i = 0; i < 10; i++) {
        shuttle(client, server);
        shuttle(server, client);
    }
    es_dtls_srtp_keys_t ks, kc;
    assert_int_equal(es_dtls_srtp_keys(server, &ks), 0);
    assert_int_equal(es_dtls_srtp_keys(client, &kc), 0);
    es_srtp_t *s = es_srtp_new(&ks), *c = es_srtp_new(&kc);
    assert_non_null(s);
    assert_non_null(c);
    uint8_t plain[BUF_CAP], buf[BUF_CAP];
    size_t len = rtp_packet(plain, 1, 0xabcdef01, 300);
    memcpy(buf, plain, len);
    int n = es_srtp_protect_rtp(c, buf, len, sizeof buf); /* publisher to SFU */
    assert_int_equal(es_srtp_unprotect_rtp(s, buf, (size_t)n), (int)len);
    assert_memory_equal(buf, plain, len);
    memcpy(buf, plain, len);
    n = es_srtp_protect_rtp(s, buf, len, sizeof buf); /* SFU to subscriber */
    assert_int_equal(es_srtp_unprotect_rtp(c, buf, (size_t)n), (int)len);
    len = rtcp_rr(plain, 3);
    memcpy(buf, plain, len);
    n = es_srtp_protect_rtcp(s, buf, len, sizeof buf);
    assert_int_equal(es_srtp_unprotect_rtcp(c, buf, (size_t)n), (int)len);
    /* A packet protected for the other direction does not authenticate. */
    memcpy(buf, plain, len);
    n = es_srtp_protect_rtcp(s, buf, len, sizeof buf);
    assert_int_equal(es_srtp_unprotect_rtcp(s, buf, (size_t)n), ES_EPROTO);
    es_srtp_free(s);
    es_srtp_free(c);
    es_dtls_free(server);
    es_dtls_free(client);
    es_dtls_cert_free(cs);
    es_dtls_cert_free(cc);
}

/* ---- known answers ------------------------------------------------------------------------ */

/* AES-CM keystream (RFC 3711 §4.1.1): AES-128 in counter mode from iv. */
static void aes_cm(const uint8_t key[16], const uint8_t iv[16], uint8_t *out, size_t len)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    memset(out, 0, len);
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, key, iv), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, out, &n, out, (int)len), 1);
    EVP_CIPHER_CTX_free(ctx);
}

/* RFC 3711 §4.3.1 with key_derivation_rate 0 and index 0: x = (label << 48) XOR master_salt,
 * output = AES-CM(master_key, x * 2^16). A 12-byte (GCM, RFC 7714 §12) salt is left-aligned. */
static void kdf(const uint8_t mk[16], const uint8_t *salt, size_t salt_len, uint8_t label,
                uint8_t *out, size_t len)
{
    uint8_t iv[16] = {0};
    memcpy(iv, salt, salt_len);
    iv[7] ^= label;
    aes_cm(mk, iv, out, len);
}

static const uint8_t B3_KEY[16] = {0xE1, 0xF9, 0x7A, 0x0D, 0x3E, 0x01, 0x8B, 0xE0,
                                   0xD6, 0x4F, 0xA3, 0x2C, 0x06, 0xDE, 0x41, 0x39};
static const uint8_t B3_SALT[14] = {0x0E, 0xC6, 0x75, 0xAD, 0x49, 0x8A, 0xFE,
                                    0xEB, 0xB6, 0x96, 0x0B, 0x3A, 0xAB, 0xE6};

static void test_kdf_rfc3711_b3(void **state)
{
    static const uint8_t cipher_key[16] = {0xC6, 0x1E, 0x7A, 0x93, 0x74, 0x4F, 0x39, 0xEE,
                                           0x10, 0x73, 0x4A, 0xFE, 0x3F, 0xF7, 0xA0, 0x87};
    static const uint8_t cipher_salt[14] = {0x30, 0xCB, 0xBC, 0x08, 0x86, 0x3D, 0x8C,
                                            0x85, 0xD4, 0x9D, 0xB3, 0x4A, 0x9A, 0xE1};
    static const uint8_t auth_key[20] = {0xCE, 0xBE, 0x32, 0x1F, 0x6F, 0xF7, 0x71,
                                         0x6B, 0x6F, 0xD4, 0xAB, 0x49, 0xAF, 0x25,
                                         0x6A, 0x15, 0x6D, 0x38, 0xBA, 0xA4};
    uint8_t out[20];
    kdf(B3_KEY, B3_SALT, 14, 0x00, out, 16);
    assert_memory_equal(out, cipher_key, 16);
    kdf(B3_KEY, B3_SALT, 14, 0x02, out, 14);
    assert_memory_equal(out, cipher_salt, 14);
    kdf(B3_KEY, B3_SALT, 14, 0x01, out, 20);
    assert_memory_equal(out, auth_key, 20);
}

/* Header 80 60 12 34 00 00 16 2e ca fe ba be, payload "estuary payload!xyz", ROC 0. */
static const uint8_t KAT_PLAIN[] = {0x80, 0x60, 0x12, 0x34, 0x00, 0x00, 0x16, 0x2e, 0xca, 0xfe,
                                    0xba, 0xbe, 'e',  's',  't',  'u',  'a',  'r',  'y',  ' ',
                                    'p',  'a',  'y',  'l',  'o',  'a',  'd',  '!',  'x',  'y',
                                    'z'};

static void test_kat_aes_cm(void **state)
{
    /* With the B.3 master key and salt, computed with Python's `cryptography` (AES-CTR,
     * HMAC-SHA1) from RFC 3711 §4.1.1, §4.2, §4.3. */
    static const uint8_t expected[] = {
        0x80, 0x60, 0x12, 0x34, 0x00, 0x00, 0x16, 0x2e, 0xca, 0xfe, 0xba, 0xbe, 0x80, 0x8d,
        0x03, 0x92, 0x2d, 0x40, 0xaa, 0x53, 0x57, 0x6e, 0x00, 0xd2, 0x50, 0x57, 0xeb, 0x88,
        0xe7, 0x69, 0xe9, 0xe0, 0x8a, 0xdb, 0x3b, 0x55, 0xb8, 0x28, 0x3c, 0xf8, 0x4f};

    /* The same computation here: session keys, keystream, tag over header || payload || ROC. */
    uint8_t ke[16], ka[20], ks[14], iv[16] = {0}, ref[sizeof expected];
    kdf(B3_KEY, B3_SALT, 14, 0x00, ke, sizeof ke);
    kdf(B3_KEY, B3_SALT, 14, 0x01, ka, sizeof ka);
    kdf(B3_KEY, B3_SALT, 14, 0x02, ks, sizeof ks);
    memcpy(iv, ks, 14);
    for (int i = 0; i < 4; i++)
        iv[4 + i] ^= KAT_PLAIN[8 + i]; /* SSRC * 2^64 */
    iv[12] ^= KAT_PLAIN[2];            /* (ROC || SEQ) * 2^16, ROC 0 */
    iv[13] ^= KAT_PLAIN[3];
    size_t plen = sizeof KAT_PLAIN - 12;
    aes_cm(ke, iv, ref + 12, plen);
    memcpy(ref, KAT_PLAIN, 12);
    for (size_t i = 0; i < plen; i++)
        ref[12 + i] ^= KAT_PLAIN[12 + i];
    uint8_t auth_in[sizeof KAT_PLAIN + 4], mac[20];
    memcpy(auth_in, ref, sizeof KAT_PLAIN);
    memset(auth_in + sizeof KAT_PLAIN, 0, 4);
    unsigned mac_len = 0;
    assert_non_null(HMAC(EVP_sha1(), ka, sizeof ka, auth_in, sizeof auth_in, mac, &mac_len));
    memcpy(ref + sizeof KAT_PLAIN, mac, 10);
    assert_memory_equal(ref, expected, sizeof expected);

    es_dtls_srtp_keys_t k = {.profile = ES_SRTP_AES128_CM_SHA1_80, .master_len = 30};
    memcpy(k.local, B3_KEY, 16);
    memcpy(k.local + 16, B3_SALT, 14);
    memcpy(k.remote, k.local, 30);
    es_srtp_t *s = es_srtp_new(&k);
    assert_non_null(s);
    uint8_t buf[BUF_CAP];
    memcpy(buf, KAT_PLAIN, sizeof KAT_PLAIN);
    assert_int_equal(es_srtp_protect_rtp(s, buf, sizeof KAT_PLAIN, sizeof buf),
                     (int)sizeof expected);
    assert_memory_equal(buf, expected, sizeof expected);
    assert_int_equal(es_srtp_unprotect_rtp(s, buf, sizeof expected), (int)sizeof KAT_PLAIN);
    assert_memory_equal(buf, KAT_PLAIN, sizeof KAT_PLAIN);
    es_srtp_free(s);
}

static void test_kat_aes_gcm(void **state)
{
    /* Master key 00..0f, master salt a0..ab; computed with Python's `cryptography`: session
     * key and salt by the RFC 3711 §4.3 KDF (RFC 7714 §12), IV per RFC 7714 §8.1, the RTP
     * header as associated data (§8.2), 16-byte tag. */
    static const uint8_t expected[] = {
        0x80, 0x60, 0x12, 0x34, 0x00, 0x00, 0x16, 0x2e, 0xca, 0xfe, 0xba, 0xbe, 0x0b,
        0xd8, 0xf1, 0x00, 0xce, 0x16, 0x0f, 0xa5, 0x62, 0xdb, 0x8b, 0x27, 0x4c, 0xc0,
        0x6f, 0xe4, 0x12, 0xe3, 0x75, 0xff, 0x97, 0x3c, 0xc1, 0x97, 0x8a, 0xfc, 0x54,
        0x51, 0x95, 0xfd, 0x42, 0xc5, 0xf8, 0xd6, 0xf1};
    es_dtls_srtp_keys_t k = {.profile = ES_SRTP_AEAD_AES_128_GCM, .master_len = 28};
    for (int i = 0; i < 16; i++)
        k.local[i] = (uint8_t)i;
    for (int i = 0; i < 12; i++)
        k.local[16 + i] = (uint8_t)(0xa0 + i);
    memcpy(k.remote, k.local, 28);
    es_srtp_t *s = es_srtp_new(&k);
    assert_non_null(s);
    uint8_t buf[BUF_CAP];
    memcpy(buf, KAT_PLAIN, sizeof KAT_PLAIN);
    assert_int_equal(es_srtp_protect_rtp(s, buf, sizeof KAT_PLAIN, sizeof buf),
                     (int)sizeof expected);
    assert_memory_equal(buf, expected, sizeof expected);
    assert_int_equal(es_srtp_unprotect_rtp(s, buf, sizeof expected), (int)sizeof KAT_PLAIN);
    assert_memory_equal(buf, KAT_PLAIN, sizeof KAT_PLAIN);
    es_srtp_free(s);
}


/* ---- libsrtp2 as the reference ------------------------------------------------------------ */

#define REF_CAP (1500 + SRTP_MAX_TRAILER_LEN + 4)

/* A libsrtp2 session with master (key || salt) for one direction, as Estuary configured it
 * before SRTP moved to OpenSSL: any SSRC, 1024-packet window, repeated sends allowed. */
static srtp_t ref_new(es_srtp_profile_t profile, const uint8_t *master, bool outbound)
{
    srtp_policy_t p;
    memset(&p, 0, sizeof p);
    if (profile == ES_SRTP_AEAD_AES_128_GCM) {
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtcp);
    } else {
        srtp_crypto_policy_set_rtp_default(&p.rtp);
        srtp_crypto_policy_set_rtcp_default(&p.rtcp);
    }
    p.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
    p.key = (unsigned char *)master;
    p.window_size = 1024;
    p.allow_repeat_tx = outbound;
    srtp_t s = NULL;
    assert_int_equal(srtp_create(&s, &p), srtp_err_status_ok);
    return s;
}

static uint32_t lcg(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/* A random RTP packet: 0-3 CSRCs, sometimes a one-byte-header extension, sometimes padding,
 * 0-1200 bytes of payload. */
static size_t random_rtp(uint8_t *buf, uint16_t seq, uint32_t ssrc, uint32_t *rng)
{
    size_t cc = lcg(rng) % 4, len = 12;
    bool ext = lcg(rng) % 2;
    buf[0] = (uint8_t)(0x80 | (ext ? 0x10 : 0) | cc);
    buf[1] = (uint8_t)(96 + lcg(rng) % 2);
    buf[2] = (uint8_t)(seq >> 8);
    buf[3] = (uint8_t)seq;
    for (int i = 0; i < 4; i++) buf[4 + i] = (uint8_t)lcg(rng);
    for (int i = 0; i < 4; i++) buf[8 + i] = (uint8_t)(ssrc >> (24 - 8 * i));
    for (size_t i = 0; i < 4 * cc; i++) buf[len++] = (uint8_t)lcg(rng);
    if (ext) {
        size_t words = lcg(rng) % 3;
        buf[len] = 0xBE, buf[len + 1] = 0xDE, buf[len + 2] = 0, buf[len + 3] = (uint8_t)words;
        len += 4;
        for (size_t i = 0; i < 4 * words; i++) buf[len++] = (uint8_t)lcg(rng);
    }
    size_t payload = lcg(rng) % 1201;
    for (size_t i = 0; i < payload; i++) buf[len++] = (uint8_t)lcg(rng);
    return len;
}

/* Packets of three SSRCs, sequence numbers from 65000 through a rollover and on (about 3,000
 * per SSRC), some sent twice (NACK retransmissions, also of packets from before the rollover)
 * and some swapped in order: protected by Estuary and by libsrtp2 they must be byte-identical
 * (the transforms are deterministic), and each side's output must unprotect on the other. */
static void cross(es_srtp_profile_t profile)
{
    size_t ml = profile == ES_SRTP_AEAD_AES_128_GCM ? 28 : 30;
    es_dtls_srtp_keys_t k = {.profile = profile, .master_len = ml};
    memcpy(k.local, K1, ml);
    memcpy(k.remote, K1, ml);
    es_srtp_t *es_tx = es_srtp_new(&k), *es_rx = es_srtp_new(&k);
    assert_non_null(es_tx);
    srtp_t ref_tx = ref_new(profile, K1, true), ref_rx = ref_new(profile, K1, false);
    uint32_t rng = 12345 + (uint32_t)profile;
    static const uint32_t ssrcs[3] = {0x11223344, 0xdeadbeef, 0x00000001};
    uint16_t next[3] = {65000, 65500, 64000};
    uint8_t plain[REF_CAP], a[REF_CAP], b[REF_CAP], held[REF_CAP];
    size_t held_len = 0;
    int checked = 0, retransmitted = 0;
    for (int i = 0; i < 9000; i++) {
        int which = (int)(lcg(&rng) % 3);
        uint16_t seq = next[which]++;
        bool again = lcg(&rng) % 20 == 0 && i > 100;
        if (again) { /* a retransmission of a packet up to 300 back, maybe before the rollover */
            seq = (uint16_t)(seq - 1 - lcg(&rng) % 300);
            next[which]--;
            retransmitted++;
        }
        size_t len = random_rtp(plain, seq, ssrcs[which], &rng);
        memcpy(a, plain, len);
        memcpy(b, plain, len);
        int na = es_srtp_protect_rtp(es_tx, a, len, sizeof a);
        int nb = (int)len;
        assert_int_equal(srtp_protect(ref_tx, b, &nb), srtp_err_status_ok);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, (size_t)na);
        if (again) continue; /* the receivers already have it */
        /* Receive: Estuary takes libsrtp2's packet, libsrtp2 Estuary's; now and then one is
         * held back and delivered after the next (reordering). */
        if (held_len == 0 && lcg(&rng) % 10 == 0) {
            memcpy(held, a, (size_t)na);
            held_len = (size_t)na;
            continue;
        }
        for (int round = 0; round < (held_len ? 2 : 1); round++) {
            const uint8_t *pkt = round == 0 ? a : held;
            size_t pl = round == 0 ? (size_t)na : held_len;
            uint8_t x[REF_CAP], y[REF_CAP];
            memcpy(x, pkt, pl);
            memcpy(y, pkt, pl);
            int nx = es_srtp_unprotect_rtp(es_rx, x, pl);
            int ny = (int)pl;
            assert_int_equal(srtp_unprotect(ref_rx, y, &ny), srtp_err_status_ok);
            assert_int_equal(nx, ny);
            assert_memory_equal(x, y, (size_t)ny);
            checked++;
        }
        held_len = 0;
    }
    assert_true(checked > 8000);
    assert_true(retransmitted > 300);

    /* SRTCP: identical output (indexes 1, 2, ... per SSRC) and mutual unprotect. */
    for (int i = 0; i < 200; i++) {
        size_t len = rtcp_rr(plain, ssrcs[i % 3]);
        memcpy(a, plain, len);
        memcpy(b, plain, len);
        int na = es_srtp_protect_rtcp(es_tx, a, len, sizeof a);
        int nb = (int)len;
        assert_int_equal(srtp_protect_rtcp(ref_tx, b, &nb), srtp_err_status_ok);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, (size_t)na);
        int nx = es_srtp_unprotect_rtcp(es_rx, a, (size_t)na);
        int ny = nb;
        assert_int_equal(srtp_unprotect_rtcp(ref_rx, b, &ny), srtp_err_status_ok);
        assert_int_equal(nx, (int)len);
        assert_int_equal(ny, (int)len);
        assert_memory_equal(a, plain, len);
    }
    /* a replayed SRTCP packet is refused by both */
    size_t len = rtcp_rr(plain, ssrcs[0]);
    memcpy(a, plain, len);
    int na = es_srtp_protect_rtcp(es_tx, a, len, sizeof a);
    for (int round = 0; round < 2; round++) {
        memcpy(b, a, (size_t)na);
        memcpy(held, a, (size_t)na);
        int nb = na;
        assert_int_equal(es_srtp_unprotect_rtcp(es_rx, held, (size_t)na),
                         round == 0 ? (int)len : ES_EEXIST);
        assert_int_equal(srtp_unprotect_rtcp(ref_rx, b, &nb),
                         round == 0 ? srtp_err_status_ok : srtp_err_status_replay_fail);
    }
    es_srtp_free(es_tx);
    es_srtp_free(es_rx);
    srtp_dealloc(ref_tx);
    srtp_dealloc(ref_rx);
}

static void test_cross_libsrtp2_cm(void **state) { cross(ES_SRTP_AES128_CM_SHA1_80); }
static void test_cross_libsrtp2_gcm(void **state) { cross(ES_SRTP_AEAD_AES_128_GCM); }

/* Replay and age against the 1024-packet window, the same verdicts as libsrtp2's, and a packet
 * with a bad tag changes nothing (the next valid one still passes). */
static void replay_profile(es_srtp_profile_t profile)
{
    size_t ml = profile == ES_SRTP_AEAD_AES_128_GCM ? 28 : 30;
    es_dtls_srtp_keys_t k = {.profile = profile, .master_len = ml};
    memcpy(k.local, K2, ml);
    memcpy(k.remote, K2, ml);
    es_srtp_t *tx = es_srtp_new(&k), *rx = es_srtp_new(&k);
    srtp_t ref_rx = ref_new(profile, K2, false);
    static uint8_t pkts[1400][128 + 16];
    int lens[1400];
    for (int i = 0; i < 1400; i++) {
        size_t len = rtp_packet(pkts[i], (uint16_t)(65300 + i), 0xabcdef01, 40);
        lens[i] = es_srtp_protect_rtp(tx, pkts[i], len, sizeof pkts[i]);
        assert_true(lens[i] > 0);
    }
    /* deliver 0..1399 except 500; then replays, the missing one, and a too-old one */
    for (int i = 0; i < 1400; i++) {
        if (i == 500 || i == 1300 || i == 1390) continue;
        uint8_t x[160], y[160];
        memcpy(x, pkts[i], (size_t)lens[i]);
        memcpy(y, pkts[i], (size_t)lens[i]);
        int ny = lens[i];
        assert_true(es_srtp_unprotect_rtp(rx, x, (size_t)lens[i]) > 0);
        assert_int_equal(srtp_unprotect(ref_rx, y, &ny), srtp_err_status_ok);
    }
    struct { int i; int want_es; srtp_err_status_t want_ref; } cases[] = {
        {1399, ES_EEXIST, srtp_err_status_replay_fail}, /* the newest again */
        {1000, ES_EEXIST, srtp_err_status_replay_fail}, /* in the window, seen */
        {500, 0, srtp_err_status_ok},                   /* 899 back, never received */
        {1300, 0, srtp_err_status_ok},                  /* in the window, not seen: accepted */
        {1300, ES_EEXIST, srtp_err_status_replay_fail}, /* and now seen */
        {300, ES_EEXIST, srtp_err_status_replay_old},   /* 1099 back: outside the window */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int i = cases[c].i;
        uint8_t x[160], y[160];
        memcpy(x, pkts[i], (size_t)lens[i]);
        memcpy(y, pkts[i], (size_t)lens[i]);
        int ny = lens[i];
        int nx = es_srtp_unprotect_rtp(rx, x, (size_t)lens[i]);
        srtp_err_status_t r = srtp_unprotect(ref_rx, y, &ny);
        assert_int_equal(nx < 0 ? nx : 0, cases[c].want_es);
        assert_int_equal(r, cases[c].want_ref);
    }
    /* a bad tag on a new packet: refused, and the window did not move */
    uint8_t x[160];
    size_t len = rtp_packet(x, (uint16_t)(65300 + 1400 + 2000), 0xabcdef01, 40);
    int n = es_srtp_protect_rtp(tx, x, len, sizeof x);
    x[n - 1] ^= 1;
    assert_int_equal(es_srtp_unprotect_rtp(rx, x, (size_t)n), ES_EPROTO);
    uint8_t z[160]; /* 9 back from the newest: accepted only if the window stayed */
    memcpy(z, pkts[1390], (size_t)lens[1390]);
    assert_int_equal(es_srtp_unprotect_rtp(rx, z, (size_t)lens[1390]), 40 + 12);
    es_srtp_free(tx);
    es_srtp_free(rx);
    srtp_dealloc(ref_rx);
}

static void test_replay_vs_libsrtp2(void **state)
{
    replay_profile(ES_SRTP_AES128_CM_SHA1_80);
    replay_profile(ES_SRTP_AEAD_AES_128_GCM);
}

/* Packets from an unknown SSRC that do not authenticate create no state: the 32 tracked SSRCs
 * cannot be pushed out by garbage, and a legitimate stream keeps its replay window. */
static void test_garbage_creates_no_state(void **state)
{
    es_srtp_t *a, *b;
    make_pair(ES_SRTP_AEAD_AES_128_GCM, &a, &b);
    uint8_t p[BUF_CAP], keep[BUF_CAP];
    size_t len = rtp_packet(p, 7, 0x77777777, 100);
    int n = es_srtp_protect_rtp(a, p, len, sizeof p);
    memcpy(keep, p, (size_t)n);
    assert_true(es_srtp_unprotect_rtp(b, p, (size_t)n) > 0);
    for (uint32_t i = 0; i < 1000; i++) {
        len = rtp_packet(p, 1, 0x10000 + i, 100);
        memset(p + len, 0x5a, 16);
        assert_int_equal(es_srtp_unprotect_rtp(b, p, len + 16), ES_EPROTO);
    }
    assert_int_equal(es_srtp_unprotect_rtp(b, keep, (size_t)n), ES_EEXIST);
    es_srtp_free(a);
    es_srtp_free(b);
}

/* Protect refuses an RTP packet 1024 or more behind the newest of its SSRC (an index is never
 * used again long after, RFC 3711 §9.2); a NACK retransmission within that is allowed. */
static void test_protect_refuses_old_index(void **state)
{
    es_srtp_t *a, *b;
    make_pair(ES_SRTP_AEAD_AES_128_GCM, &a, &b);
    uint8_t p[BUF_CAP];
    size_t len = rtp_packet(p, 2000, 0x5555, 50);
    assert_true(es_srtp_protect_rtp(a, p, len, sizeof p) > 0);
    len = rtp_packet(p, 977, 0x5555, 50); /* 1023 behind */
    assert_true(es_srtp_protect_rtp(a, p, len, sizeof p) > 0);
    len = rtp_packet(p, 976, 0x5555, 50); /* 1024 behind */
    assert_int_equal(es_srtp_protect_rtp(a, p, len, sizeof p), ES_EEXIST);
    len = rtp_packet(p, 976, 0x6666, 50); /* another SSRC: its first */
    assert_true(es_srtp_protect_rtp(a, p, len, sizeof p) > 0);
    es_srtp_free(a);
    es_srtp_free(b);
}

int main(void)
{
    if (srtp_init() != srtp_err_status_ok) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_cm),
        cmocka_unit_test(test_round_trip_gcm),
        cmocka_unit_test(test_tamper_and_replay),
        cmocka_unit_test(test_retransmission_and_capacity),
        cmocka_unit_test(test_keys_from_dtls),
        cmocka_unit_test(test_kdf_rfc3711_b3),
        cmocka_unit_test(test_kat_aes_cm),
        cmocka_unit_test(test_kat_aes_gcm),
        cmocka_unit_test(test_cross_libsrtp2_cm),
        cmocka_unit_test(test_cross_libsrtp2_gcm),
        cmocka_unit_test(test_replay_vs_libsrtp2),
        cmocka_unit_test(test_garbage_creates_no_state),
        cmocka_unit_test(test_protect_refuses_old_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
