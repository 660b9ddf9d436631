/* DTLS 1.2 endpoint for DTLS-SRTP (RFC 5763, RFC 5764, RFC 6347) on OpenSSL 3.0, sans-IO.
 *
 * Input: es_dtls_handle_datagram (one UDP payload at a time, fed to a memory BIO) and
 * es_dtls_handle_timeout. Output: datagrams queued by a small datagram BIO (OpenSSL 3.0 has no
 * BIO_s_dgram_mem) and drained with es_dtls_poll_datagram, plus es_dtls_next_timeout_us.
 *
 * The write BIO coalesces the records of one flight into datagrams of at most ES_DTLS_MTU
 * bytes: OpenSSL's dtls1_do_write asks BIO_wpending how much of the current datagram is used
 * and fragments handshake messages to fit, and calls BIO_flush at the end of a flight, which
 * closes the datagram. A bounded ring holds the closed datagrams; when it is full the newest
 * is dropped, which the peer sees as loss and the retransmission timer repairs.
 *
 * The peer's self-signed certificate is accepted only when its digest equals the SDP's
 * a=fingerprint (RFC 8122 §5, RFC 5763 §5): checked in the verify callback (so OpenSSL sends a
 * bad_certificate alert) and again when the handshake completes. SRTP keys are exported per
 * RFC 5764 §4.2. OpenSSL's retransmission timer reads the real clock; the two timer functions
 * here are the one place that wraps it. Nothing here logs: reasons go to es_dtls_error. */
#include "estuary/dtls.h"

#include "estuary/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/srtp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define DTLS_DATAGRAM_MAX (ES_DTLS_MTU + 100) /* bytes: one queued datagram, see dtls.h */
#define DTLS_QUEUE_LEN 8                      /* datagrams: a flight is 1..4 of them */
#define DTLS_ERROR_MAX 256
#define DTLS_DEFAULT_INITIAL_TIMEOUT_US 100000 /* RFC 6347 §4.2.4.1 allows < 1 s */
#define DTLS_DEFAULT_MAX_RETRANSMITS 6
/* OpenSSL 3.0 treats a remaining time under 15 ms as expired, and its record layer
 * retransmits by itself whenever a read finds nothing and the timer has expired: a shorter
 * first timeout would retransmit several times inside one SSL call. */
#define DTLS_MIN_INITIAL_TIMEOUT_US 20000
/* The doubling stops at one second. RFC 6347 §4.2.4.1 suggests 60 s, but a WebRTC handshake
 * that is not done in 10 s (webrtc.dtls_timeout_ms) has failed anyway, and on a lossy path a long
 * backoff only delays the retransmission that would get through. */
#define DTLS_MAX_TIMEOUT_US 1000000

/* OpenSSL wants the list as one string; GCM first (RFC 7714 §14.2), then the mandatory CM. */
#define DTLS_SRTP_PROFILES "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"
#define DTLS_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"
#define DTLS_SRTP_EXPORTER_LABEL "EXTRACTOR-dtls_srtp"

struct es_dtls_cert {
    int refs;
    EVP_PKEY *key;
    X509 *x509;
    SSL_CTX *ctx; /* shared by every endpoint of this certificate */
    char fingerprint[ES_DTLS_FINGERPRINT_MAX];
};

typedef struct {
    uint16_t len;
    uint8_t data[DTLS_DATAGRAM_MAX];
} dtls_datagram_t;

struct es_dtls {
    es_dtls_cert_t *cert; /* one reference */
    SSL *ssl;
    BIO *rbio; /* memory BIO holding the one datagram being processed */
    BIO *wbio; /* datagram BIO below, owned by ssl */
    es_dtls_role_t role;
    es_dtls_state_t state;

    const EVP_MD *fp_md;
    uint8_t fp[EVP_MAX_MD_SIZE];
    size_t fp_len;
    bool fp_mismatch; /* set by the verify callback */

    /* Outgoing datagrams: ring of closed ones plus the one being filled (open). */
    dtls_datagram_t queue[DTLS_QUEUE_LEN];
    unsigned q_head, q_count;
    dtls_datagram_t open;
    uint64_t dropped; /* datagrams lost to a full queue or an oversize record */

    uint32_t initial_timeout_us;
    unsigned max_retransmits;
    unsigned retransmits; /* of the current flight, counted in the timer callback */

    es_dtls_srtp_keys_t keys;
    bool have_keys;
    char error[DTLS_ERROR_MAX];
};

/* ---- errors ---------------------------------------------------------------------------- */

/* Appends OpenSSL's queued reasons to buf after prefix and empties the thread's queue. */
static void format_openssl_error(char *buf, size_t len, const char *prefix)
{
    if (buf == NULL || len == 0) {
        ERR_clear_error();
        return;
    }
    int n = snprintf(buf, len, "%s", prefix);
    size_t used = n < 0 ? 0 : ((size_t)n < len ? (size_t)n : len - 1);
    unsigned long e;
    bool first = true;
    while ((e = ERR_get_error()) != 0) {
        if (used + 1 >= len)
            continue; /* keep draining */
        char reason[160];
        ERR_error_string_n(e, reason, sizeof reason);
        n = snprintf(buf + used, len - used, "%s%s", first ? ": " : "; ", reason);
        first = false;
        if (n > 0)
            used = (size_t)n < len - used ? used + (size_t)n : len - 1;
    }
}

/* "what: why" into the caller's buffer. */
static void set_err(char *err, size_t err_len, const char *what, const char *why)
{
    if (err != NULL && err_len > 0)
        snprintf(err, err_len, "%s: %s", what, why);
}

/* Moves the endpoint to FAILED with reason (plus OpenSSL's queue when with_queue). */
static int fail(es_dtls_t *d, const char *reason, bool with_queue, int code)
{
    if (with_queue)
        format_openssl_error(d->error, sizeof d->error, reason);
    else {
        snprintf(d->error, sizeof d->error, "%s", reason);
        ERR_clear_error();
    }
    d->state = ES_DTLS_FAILED;
    return code;
}

/* ---- certificates ---------------------------------------------------------------------- */

static int fingerprint_hex(X509 *x, const EVP_MD *md, char *out, size_t out_len)
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (X509_digest(x, md, digest, &n) != 1 || n * 3 > out_len)
        return ES_EPROTO;
    static const char hex[] = "0123456789ABCDEF";
    for (unsigned i = 0; i < n; i++) {
        out[3 * i] = hex[digest[i] >> 4];
        out[3 * i + 1] = hex[digest[i] & 15];
        out[3 * i + 2] = i + 1 < n ? ':' : '\0';
    }
    return 0;
}

/* WebRTC certificates are self-signed: chain validation is replaced by the fingerprint check
 * (RFC 8122 §5). A mismatch at depth 0 fails the handshake with a bad_certificate alert. */
static int verify_cb(int preverify_ok, X509_STORE_CTX *store)
{
    if (X509_STORE_CTX_get_error_depth(store) != 0)
        return 1;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    es_dtls_t *d = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    X509 *peer = X509_STORE_CTX_get_current_cert(store);
    if (d == NULL || peer == NULL)
        return 0;
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (X509_digest(peer, d->fp_md, digest, &n) != 1 || n != d->fp_len ||
        CRYPTO_memcmp(digest, d->fp, n) != 0) {
        d->fp_mismatch = true;
        X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
}

static SSL_CTX *make_ctx(EVP_PKEY *key, X509 *x509, char *err, size_t err_len)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(DTLS_method());
    if (ctx == NULL)
        goto fail;
    if (!SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION))
        goto fail;
    if (SSL_CTX_use_certificate(ctx, x509) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    /* Returns 0 on success, unlike everything around it. */
    if (SSL_CTX_set_tlsext_use_srtp(ctx, DTLS_SRTP_PROFILES) != 0)
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
    /* AEAD suites only: RFC 8827 §6.5 makes TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 mandatory
     * for WebRTC, and load_datagram knows their minimum record size. */
    if (SSL_CTX_set_cipher_list(ctx, DTLS_CIPHERS) != 1)
        goto fail;
    /* No MTU discovery (there is no socket) and no session cache (a new handshake per peer).
     * No cookie exchange: ICE already proved the peer's address (RFC 5763 §5). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
fail:
    format_openssl_error(err, err_len, "DTLS context");
    SSL_CTX_free(ctx);
    return NULL;
}

/* Builds the certificate object; takes ownership of key and x509 (freed on failure). */
static es_dtls_cert_t *cert_wrap(EVP_PKEY *key, X509 *x509, char *err, size_t err_len)
{
    es_dtls_cert_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        set_err(err, err_len, "DTLS certificate", "out of memory");
        goto fail;
    }
    if (fingerprint_hex(x509, EVP_sha256(), c->fingerprint, sizeof c->fingerprint) != 0) {
        format_openssl_error(err, err_len, "certificate fingerprint");
        goto fail;
    }
    c->ctx = make_ctx(key, x509, err, err_len);
    if (c->ctx == NULL)
        goto fail;
    c->refs = 1;
    c->key = key;
    c->x509 = x509;
    return c;
fail:
    free(c);
    EVP_PKEY_free(key);
    X509_free(x509);
    return NULL;
}

es_dtls_cert_t *es_dtls_cert_generate(char *err, size_t err_len)
{
    ERR_clear_error();
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    if (key == NULL || x == NULL || bn == NULL)
        goto fail;
    /* A random positive 64-bit serial (RFC 5280 §4.1.2.2: positive, at most 20 octets). */
    uint8_t serial[8];
    if (RAND_bytes(serial, sizeof serial) != 1)
        goto fail;
    serial[0] &= 0x7f;
    if (BN_bin2bn(serial, sizeof serial, bn) == NULL ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto fail;
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -24L * 3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 30L * 24 * 3600) == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"estuary",
                                   -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1 ||
        X509_sign(x, key, EVP_sha256()) <= 0)
        goto fail;
    BN_free(bn);
    return cert_wrap(key, x, err, err_len);
fail:
    format_openssl_error(err, err_len, "certificate generation");
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(key);
    return NULL;
}

es_dtls_cert_t *es_dtls_cert_load(const char *cert_path, const char *key_path, char *err,
                                  size_t err_len)
{
    X509 *x = NULL;
    EVP_PKEY *key = NULL;
    char prefix[512];
    ERR_clear_error();
    FILE *f = fopen(cert_path, "r");
    if (f == NULL) {
        set_err(err, err_len, cert_path, strerror(errno));
        return NULL;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        snprintf(prefix, sizeof prefix, "%s: no PEM certificate", cert_path);
        format_openssl_error(err, err_len, prefix);
        return NULL;
    }
    f = fopen(key_path, "r");
    if (f == NULL) {
        set_err(err, err_len, key_path, strerror(errno));
        X509_free(x);
        return NULL;
    }
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL) {
        snprintf(prefix, sizeof prefix, "%s: no PEM private key", key_path);
        format_openssl_error(err, err_len, prefix);
        X509_free(x);
        return NULL;
    }
    if (X509_check_private_key(x, key) != 1) {
        snprintf(prefix, sizeof prefix, "%s does not match the certificate in %s", key_path,
                 cert_path);
        format_openssl_error(err, err_len, prefix);
        X509_free(x);
        EVP_PKEY_free(key);
        return NULL;
    }
    return cert_wrap(key, x, err, err_len);
}

void es_dtls_cert_free(es_dtls_cert_t *cert)
{
    if (cert == NULL || --cert->refs > 0)
        return;
    SSL_CTX_free(cert->ctx);
    X509_free(cert->x509);
    EVP_PKEY_free(cert->key);
    free(cert);
}

const char *es_dtls_cert_fingerprint(const es_dtls_cert_t *cert)
{
    return cert->fingerprint;
}

/* ---- the datagram BIO ------------------------------------------------------------------- */

static void queue_close_open(es_dtls_t *d)
{
    if (d->open.len == 0)
        return;
    if (d->q_count == DTLS_QUEUE_LEN) {
        d->dropped++;
    } else {
        dtls_datagram_t *slot = &d->queue[(d->q_head + d->q_count) % DTLS_QUEUE_LEN];
        slot->len = d->open.len;
        memcpy(slot->data, d->open.data, d->open.len);
        d->q_count++;
    }
    d->open.len = 0;
}

static int dgram_write(BIO *b, const char *data, int len)
{
    es_dtls_t *d = BIO_get_data(b);
    if (d == NULL || len < 0)
        return -1;
    size_t n = (size_t)len;
    if (d->open.len + n > ES_DTLS_MTU)
        queue_close_open(d);
    if (n > DTLS_DATAGRAM_MAX) {
        d->dropped++; /* cannot happen with the MTU set; behaves as loss */
        return len;
    }
    memcpy(d->open.data + d->open.len, data, n);
    d->open.len += (uint16_t)n;
    return len;
}

static long dgram_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    es_dtls_t *d = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        if (d != NULL)
            queue_close_open(d); /* end of a flight */
        return 1;
    case BIO_CTRL_WPENDING:
        /* Bytes already in the datagram being filled: dtls1_do_write fragments to fit. */
        return d != NULL ? (long)d->open.len : 0;
    case BIO_CTRL_PENDING:
        return 0;
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
        return ES_DTLS_MTU;
    case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
        return 0; /* ES_DTLS_MTU is already the UDP payload size */
    default:
        return 0; /* peek mode, peer address, timeouts: nothing to do without a socket */
    }
}

static int dgram_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int dgram_destroy(BIO *b)
{
    BIO_set_data(b, NULL);
    return 1;
}

static BIO_METHOD *g_dgram_method;
static CRYPTO_ONCE g_dgram_once = CRYPTO_ONCE_STATIC_INIT;

/* Lives for the process; reachable, so not a leak. */
static void dgram_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "estuary dgram");
    if (m == NULL)
        return;
    if (!BIO_meth_set_write(m, dgram_write) || !BIO_meth_set_ctrl(m, dgram_ctrl) ||
        !BIO_meth_set_create(m, dgram_create) || !BIO_meth_set_destroy(m, dgram_destroy)) {
        BIO_meth_free(m);
        return;
    }
    g_dgram_method = m;
}

/* ---- endpoint ---------------------------------------------------------------------------- */

/* OpenSSL calls this with 0 when a flight's timer starts and with the previous duration on
 * each expiry; it returns the next duration (doubling, as RFC 6347 §4.2.4.1 asks). */
static unsigned int timer_cb(SSL *ssl, unsigned int timer_us)
{
    es_dtls_t *d = SSL_get_app_data(ssl);
    if (timer_us == 0) {
        d->retransmits = 0;
        return d->initial_timeout_us;
    }
    d->retransmits++;
    return timer_us >= DTLS_MAX_TIMEOUT_US / 2 ? DTLS_MAX_TIMEOUT_US : 2 * timer_us;
}

static const EVP_MD *md_by_name(const char *name)
{
    if (name == NULL)
        return NULL;
    if (strcasecmp(name, "sha-256") == 0)
        return EVP_sha256();
    if (strcasecmp(name, "sha-384") == 0)
        return EVP_sha384();
    if (strcasecmp(name, "sha-512") == 0)
        return EVP_sha512();
    if (strcasecmp(name, "sha-1") == 0)
        return EVP_sha1();
    return NULL;
}

es_dtls_t *es_dtls_new(const es_dtls_cert_t *cert, es_dtls_role_t role, const char *fp_alg,
                       const uint8_t *fp, size_t fp_len)
{
    const EVP_MD *md = md_by_name(fp_alg);
    if (cert == NULL || md == NULL || fp_len > EVP_MAX_MD_SIZE || (fp == NULL && fp_len > 0))
        return NULL;
    CRYPTO_THREAD_run_once(&g_dgram_once, dgram_method_init);
    if (g_dgram_method == NULL)
        return NULL;
    es_dtls_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    ERR_clear_error();
    d->role = role;
    d->fp_md = md;
    if (fp_len > 0)
        memcpy(d->fp, fp, fp_len);
    d->fp_len = fp_len;
    d->initial_timeout_us = DTLS_DEFAULT_INITIAL_TIMEOUT_US;
    d->max_retransmits = DTLS_DEFAULT_MAX_RETRANSMITS;

    d->ssl = SSL_new(cert->ctx);
    d->rbio = BIO_new(BIO_s_mem());
    d->wbio = BIO_new(g_dgram_method);
    if (d->ssl == NULL || d->rbio == NULL || d->wbio == NULL) {
        BIO_free(d->rbio);
        BIO_free(d->wbio);
        SSL_free(d->ssl);
        free(d);
        ERR_clear_error();
        return NULL;
    }
    /* An empty memory BIO reports "retry" rather than EOF: SSL_ERROR_WANT_READ. */
    BIO_set_mem_eof_return(d->rbio, -1);
    BIO_set_data(d->wbio, d);
    SSL_set_bio(d->ssl, d->rbio, d->wbio); /* ssl owns both now */
    SSL_set_app_data(d->ssl, d);
    SSL_set_mtu(d->ssl, ES_DTLS_MTU);
    DTLS_set_link_mtu(d->ssl, ES_DTLS_MTU);
    DTLS_set_timer_cb(d->ssl, timer_cb);
    if (role == ES_DTLS_ROLE_SERVER)
        SSL_set_accept_state(d->ssl);
    else
        SSL_set_connect_state(d->ssl);
    ERR_clear_error();

    /* The certificate is refcounted; taking a reference does not change what callers see. */
    es_dtls_cert_t *c = (es_dtls_cert_t *)cert;
    c->refs++;
    d->cert = c;
    return d;
}

void es_dtls_free(es_dtls_t *d)
{
    if (d == NULL)
        return;
    SSL_free(d->ssl); /* frees rbio and wbio */
    ERR_clear_error();
    es_dtls_cert_free(d->cert);
    free(d);
}

void es_dtls_set_timer(es_dtls_t *d, uint32_t initial_us, unsigned max_retransmits)
{
    d->initial_timeout_us = initial_us > DTLS_MIN_INITIAL_TIMEOUT_US ? initial_us
                                                                     : DTLS_MIN_INITIAL_TIMEOUT_US;
    d->max_retransmits = max_retransmits;
}

/* RFC 5764 §4.2: client_key | server_key | client_salt | server_salt. */
static int export_keys(es_dtls_t *d)
{
    const SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(d->ssl);
    if (p == NULL)
        return fail(d, "the peer negotiated no SRTP protection profile (use_srtp)", false,
                    ES_EPROTO);
    size_t key_len, salt_len;
    switch (p->id) {
    case SRTP_AEAD_AES_128_GCM:
        d->keys.profile = ES_SRTP_AEAD_AES_128_GCM;
        key_len = 16;
        salt_len = 12; /* RFC 7714 §12 */
        break;
    case SRTP_AES128_CM_SHA1_80:
        d->keys.profile = ES_SRTP_AES128_CM_SHA1_80;
        key_len = 16;
        salt_len = 14;
        break;
    default:
        return fail(d, "unsupported SRTP protection profile", false, ES_EPROTO);
    }
    uint8_t m[2 * ES_SRTP_MASTER_MAX];
    size_t total = 2 * (key_len + salt_len);
    if (SSL_export_keying_material(d->ssl, m, total, DTLS_SRTP_EXPORTER_LABEL,
                                   strlen(DTLS_SRTP_EXPORTER_LABEL), NULL, 0, 0) != 1)
        return fail(d, "exporting SRTP keys", true, ES_EPROTO);
    const uint8_t *client_key = m, *server_key = m + key_len;
    const uint8_t *client_salt = m + 2 * key_len, *server_salt = client_salt + salt_len;
    bool server = d->role == ES_DTLS_ROLE_SERVER;
    memcpy(d->keys.local, server ? server_key : client_key, key_len);
    memcpy(d->keys.local + key_len, server ? server_salt : client_salt, salt_len);
    memcpy(d->keys.remote, server ? client_key : server_key, key_len);
    memcpy(d->keys.remote + key_len, server ? client_salt : server_salt, salt_len);
    d->keys.master_len = key_len + salt_len;
    d->have_keys = true;
    OPENSSL_cleanse(m, sizeof m);
    return 0;
}

/* Handshake finished: check the fingerprint once more (the verify callback already did, but
 * a peer that sent no certificate never reaches it), then export the keys. */
static int handshake_done(es_dtls_t *d)
{
    X509 *peer = SSL_get0_peer_certificate(d->ssl);
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (peer == NULL || X509_digest(peer, d->fp_md, digest, &n) != 1 || n != d->fp_len ||
        CRYPTO_memcmp(digest, d->fp, n) != 0) {
        /* OpenSSL has no public call for an alert of our choosing; a close_notify at least
         * tells the peer we are gone. */
        ERR_clear_error();
        (void)SSL_shutdown(d->ssl);
        return fail(d, peer == NULL ? "the peer sent no certificate" : "fingerprint mismatch",
                    false, ES_EPROTO);
    }
    int rc = export_keys(d);
    if (rc != 0)
        return rc;
    d->state = ES_DTLS_CONNECTED;
    return 0;
}

int es_dtls_start(es_dtls_t *d, uint64_t now_us)
{
    if (d->state != ES_DTLS_NEW)
        return d->state == ES_DTLS_FAILED ? ES_EPROTO : 0;
    d->state = ES_DTLS_HANDSHAKING;
    if (d->role == ES_DTLS_ROLE_SERVER)
        return 0;
    ERR_clear_error();
    int r = SSL_do_handshake(d->ssl);
    if (r <= 0 && SSL_get_error(d->ssl, r) != SSL_ERROR_WANT_READ)
        return fail(d, "DTLS handshake", true, ES_EPROTO);
    ERR_clear_error();
    return 0;
}

/* Reads whatever is left in the memory BIO after the handshake: application data (dropped),
 * a close_notify, a retransmitted Finished (OpenSSL answers it), or garbage (discarded). */
static int drain_connected(es_dtls_t *d)
{
    uint8_t scratch[2048];
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(d->ssl, scratch, sizeof scratch);
        if (r > 0)
            continue;
        switch (SSL_get_error(d->ssl, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            ERR_clear_error();
            return 0;
        case SSL_ERROR_ZERO_RETURN:
            ERR_clear_error();
            d->state = ES_DTLS_CLOSED;
            return 0;
        case SSL_ERROR_SYSCALL:
            return fail(d, "DTLS: unexpected end of input", true, ES_EPROTO);
        default:
            return fail(d, "DTLS", true, ES_EPROTO);
        }
    }
}

/* Smallest valid protected record body for the negotiated cipher: explicit nonce and tag for
 * AES-GCM/CCM (8 + 16), the tag alone for ChaCha20-Poly1305. */
static size_t min_protected_len(const es_dtls_t *d)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(d->ssl);
    return c != NULL && SSL_CIPHER_get_cipher_nid(c) == NID_chacha20_poly1305 ? 16 : 24;
}

/* Copies the datagram into the memory BIO, leaving out protected records (epoch > 0) too short
 * to hold a tag, and, once connected, alerts and application data in the clear. OpenSSL 3.0 answers those with a fatal internal_error alert instead of
 * discarding them as RFC 6347 §4.1.2.7 asks, so one short garbage record would end a
 * connected session. A record whose header OpenSSL would skip and read on inside (one running
 * past the end, a major version other than 0xfe, a body over 2^14 + 2048) ends the datagram, so
 * that what follows cannot smuggle such a record past this filter (found by fuzz_dtls).
 * Everything else, malformed or not, is OpenSSL's to judge. */
#define MAX_RECORD_BODY (16384 + 2048) /* DTLSCiphertext.length at most 2^14 + 2048 (RFC 6347 §4.1) */

static int load_datagram(es_dtls_t *d, const uint8_t *buf, size_t len)
{
    size_t min = min_protected_len(d), start = 0, off = 0;
    while (off + DTLS1_RT_HEADER_LENGTH <= len) {
        size_t epoch = (size_t)buf[off + 3] << 8 | buf[off + 4];
        size_t body = (size_t)buf[off + 11] << 8 | buf[off + 12];
        size_t end = off + DTLS1_RT_HEADER_LENGTH + body;
        if (end > len || buf[off + 1] != 0xfe || body > MAX_RECORD_BODY) {
            /* A record OpenSSL would skip by its header only, then read on inside it (finding
             * whatever a forger put there, a short protected record included): the datagram
             * ends here. */
            len = off;
            break;
        }
        /* Once connected, only DTLS 1.2 records of epoch 1 (no renegotiation in WebRTC) and the
         * epoch-0 handshake of a peer retransmitting its last flight (it needs our answer
         * again) are the peer's. An alert, application data or a ClientHello/HelloRequest in
         * the clear, another version or a later epoch is forged: it is not handed to OpenSSL,
         * which fails the session on some of them (found by fuzz_dtls). */
        bool hello = buf[off] == 22 && body >= 1 &&
                     (buf[off + DTLS1_RT_HEADER_LENGTH] == 1 || buf[off + DTLS1_RT_HEADER_LENGTH] == 0);
        bool dtls12 = buf[off + 1] == 0xfe && buf[off + 2] == 0xfd;
        bool plain_after = d->state == ES_DTLS_CONNECTED &&
                           (!dtls12 || epoch > 1 ||
                            (epoch == 0 && (buf[off] == 21 || buf[off] == 23 || hello)));
        if ((epoch != 0 && body < min) || plain_after) {
            if (off > start && BIO_write(d->rbio, buf + start, (int)(off - start)) <= 0)
                return ES_ENOMEM;
            start = end;
        }
        off = end;
    }
    if (len > start && BIO_write(d->rbio, buf + start, (int)(len - start)) <= 0)
        return ES_ENOMEM;
    return 0;
}

int es_dtls_handle_datagram(es_dtls_t *d, uint64_t now_us, const uint8_t *buf, size_t len)
{
    if (d->state == ES_DTLS_FAILED)
        return ES_EPROTO;
    if (d->state == ES_DTLS_CLOSED || len == 0 || len > INT32_MAX)
        return 0;
    if (d->state == ES_DTLS_NEW) {
        int rc = es_dtls_start(d, now_us);
        if (rc != 0)
            return rc;
    }
    /* Exactly one datagram in the memory BIO: OpenSSL's DTLS record layer reads it whole and
     * walks the records inside it. */
    (void)BIO_reset(d->rbio);
    if (load_datagram(d, buf, len) != 0)
        return fail(d, "DTLS input buffer", true, ES_EPROTO);
    if (d->state == ES_DTLS_HANDSHAKING) {
        ERR_clear_error();
        int r = SSL_do_handshake(d->ssl);
        if (d->fp_mismatch)
            return fail(d, "fingerprint mismatch", false, ES_EPROTO);
        if (r == 1) {
            int rc = handshake_done(d);
            if (rc != 0)
                return rc;
        } else {
            int e = SSL_get_error(d->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return fail(d, "DTLS handshake", true, ES_EPROTO);
            ERR_clear_error();
            return 0;
        }
    }
    if (d->state == ES_DTLS_CONNECTED)
        return drain_connected(d);
    return 0;
}

uint64_t es_dtls_next_timeout_us(es_dtls_t *d, uint64_t now_us)
{
    if (d->state != ES_DTLS_HANDSHAKING && d->state != ES_DTLS_CONNECTED)
        return 0;
    struct timeval tv;
    if (DTLSv1_get_timeout(d->ssl, &tv) != 1)
        return 0;
    uint64_t t = now_us + (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    return t != 0 ? t : 1; /* 0 means "no timer" */
}

int es_dtls_handle_timeout(es_dtls_t *d, uint64_t now_us)
{
    if (d->state != ES_DTLS_HANDSHAKING && d->state != ES_DTLS_CONNECTED)
        return 0;
    struct timeval tv;
    if (DTLSv1_get_timeout(d->ssl, &tv) != 1 || tv.tv_sec > 0 || tv.tv_usec > 0)
        return 0; /* no timer, or not expired yet (OpenSSL rounds < 15 ms down to 0) */
    if (d->retransmits >= d->max_retransmits)
        return fail(d, "DTLS handshake timed out", false, ES_ETIMEDOUT);
    ERR_clear_error();
    if (DTLSv1_handle_timeout(d->ssl) < 0)
        return fail(d, "DTLS handshake timed out", true, ES_ETIMEDOUT);
    ERR_clear_error();
    return 0;
}

int es_dtls_poll_datagram(es_dtls_t *d, uint8_t *out, size_t cap)
{
    if (d->q_count == 0)
        queue_close_open(d); /* records written without a flush (alerts, application data) */
    if (d->q_count == 0)
        return 0;
    dtls_datagram_t *slot = &d->queue[d->q_head];
    if (slot->len > cap)
        return ES_E2BIG;
    memcpy(out, slot->data, slot->len);
    d->q_head = (d->q_head + 1) % DTLS_QUEUE_LEN;
    d->q_count--;
    return slot->len;
}

void es_dtls_close(es_dtls_t *d)
{
    if (d->state == ES_DTLS_CONNECTED) {
        ERR_clear_error();
        (void)SSL_shutdown(d->ssl); /* queues close_notify; no need to wait for the reply */
        ERR_clear_error();
    }
    if (d->state != ES_DTLS_FAILED)
        d->state = ES_DTLS_CLOSED;
}

es_dtls_state_t es_dtls_state(const es_dtls_t *d)
{
    return d->state;
}

const char *es_dtls_error(const es_dtls_t *d)
{
    return d->error;
}

int es_dtls_srtp_keys(const es_dtls_t *d, es_dtls_srtp_keys_t *out)
{
    if (!d->have_keys)
        return ES_EAGAIN;
    *out = d->keys;
    return 0;
}
