/* SRTP and SRTCP on OpenSSL's EVP (see include/estuary/srtp.h): AES_CM_128_HMAC_SHA1_80
 * (RFC 3711) and AEAD_AES_128_GCM (RFC 7714), session keys derived once per context
 * (RFC 3711 §4.3, RFC 7714 §12) and the AES key schedules and HMAC pads kept in their EVP
 * contexts, so a packet costs one IV set-up, the cipher and the tag. This is the media path's
 * hottest loop (every player's every packet); libsrtp2 is the reference it is tested against
 * (tests/unit/test_srtp.c). */
#include "estuary/srtp.h"

#include "estuary/bytes.h"
#include "estuary/error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#define REPLAY_WINDOW 1024  /* SRTP packets: video bursts reorder more than RFC 3711's 64 */
#define RTCP_WINDOW 128     /* SRTCP packets */
#define MAX_STREAMS 32      /* SSRCs per direction; the least recently used is reused */
#define CM_TAG 10           /* HMAC-SHA1-80 */
#define GCM_TAG 16
#define SRTCP_E 0x80000000u /* the E flag: the SRTCP packet is encrypted */

_Static_assert(ES_SRTP_MAX_TRAILER >= GCM_TAG + 4 && ES_SRTP_MAX_TRAILER >= CM_TAG + 4,
               "protect appends at most a tag and the SRTCP index");

/* One SSRC's state in one direction (RFC 3711 §3.2.3 cryptographic context, per SSRC). */
typedef struct stream {
    uint32_t ssrc;
    bool used, seen;         /* seen: an SRTP packet has set roc and s_l */
    uint32_t roc;            /* rollover counter */
    uint16_t s_l;            /* highest sequence number (with roc: the highest index) */
    uint64_t window[REPLAY_WINDOW / 64]; /* receive: bit (index % 1024) for received indexes */
    uint32_t rtcp_index;     /* send: the last SRTCP index; receive: the highest */
    bool rtcp_seen;
    uint64_t rtcp_window[RTCP_WINDOW / 64];
    uint64_t last_use;
} stream_t;

/* One direction: its session keys, in EVP contexts ready for per-packet IVs. */
typedef struct dir {
    EVP_CIPHER_CTX *rtp, *rtcp; /* AES-128-CTR (CM) or AES-128-GCM, key set */
    EVP_MAC_CTX *rtp_mac, *rtcp_mac; /* HMAC-SHA1 with the auth key (CM only) */
    uint8_t rtp_salt[14], rtcp_salt[14]; /* 14 bytes (CM) or 12 (GCM) used */
    stream_t streams[MAX_STREAMS];
    uint64_t uses;
} dir_t;

struct es_srtp {
    bool gcm;
    dir_t send, recv;
};

static EVP_CIPHER *g_ctr, *g_gcm;
static EVP_MAC *g_hmac;

int es_srtp_global_init(void)
{
    if (g_ctr && g_gcm && g_hmac) return 0;
    if (!g_ctr) g_ctr = EVP_CIPHER_fetch(NULL, "AES-128-CTR", NULL);
    if (!g_gcm) g_gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    if (!g_hmac) g_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    return g_ctr && g_gcm && g_hmac ? 0 : ES_EIO;
}

int es_srtp_kdf(const uint8_t master_key[16], const uint8_t *master_salt, size_t salt_len,
                uint8_t label, uint8_t *out, size_t len)
{
    if (salt_len > 14 || es_srtp_global_init() != 0) return ES_EINVAL;
    uint8_t iv[16] = {0};
    memcpy(iv, master_salt, salt_len); /* a 12-byte (GCM) salt is left-aligned, RFC 7714 §12 */
    iv[7] ^= label;                    /* key_id = label || r, r = 0 (kdr 0) */
    memset(out, 0, len);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = c && EVP_EncryptInit_ex2(c, g_ctr, master_key, iv, NULL) == 1 &&
                    EVP_EncryptUpdate(c, out, &n, out, (int)len) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : ES_EIO;
}

static EVP_CIPHER_CTX *cipher_new(bool gcm, const uint8_t key[16], bool encrypt)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) return NULL;
    int ok = encrypt ? EVP_EncryptInit_ex2(c, gcm ? g_gcm : g_ctr, key, NULL, NULL)
                     : EVP_DecryptInit_ex2(c, gcm ? g_gcm : g_ctr, key, NULL, NULL);
    if (ok && gcm) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL);
    if (!ok) {
        EVP_CIPHER_CTX_free(c);
        return NULL;
    }
    return c;
}

static EVP_MAC_CTX *mac_new(const uint8_t key[20])
{
    EVP_MAC_CTX *m = EVP_MAC_CTX_new(g_hmac);
    OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA1", 0),
                      OSSL_PARAM_construct_end()};
    if (m && EVP_MAC_init(m, key, 20, p) == 1) return m;
    EVP_MAC_CTX_free(m);
    return NULL;
}

/* Derives one direction's SRTP and SRTCP keys from its master key || master salt. */
static int dir_init(dir_t *d, bool gcm, const uint8_t *master, bool encrypt)
{
    const uint8_t *salt = master + 16;
    size_t salt_len = gcm ? 12 : 14;
    uint8_t key[16], auth[20];
    int rc = 0;
    for (int rtcp = 0; rtcp < 2 && rc == 0; rtcp++) {
        uint8_t base = rtcp ? 3 : 0; /* labels 0-2 SRTP, 3-5 SRTCP (RFC 3711 §4.3.2) */
        rc = es_srtp_kdf(master, salt, salt_len, base, key, sizeof key);
        if (rc == 0)
            rc = es_srtp_kdf(master, salt, salt_len, (uint8_t)(base + 2),
                             rtcp ? d->rtcp_salt : d->rtp_salt, salt_len);
        if (rc == 0 && !gcm) rc = es_srtp_kdf(master, salt, salt_len, (uint8_t)(base + 1), auth,
                                              sizeof auth);
        if (rc != 0) break;
        EVP_CIPHER_CTX *c = cipher_new(gcm, key, encrypt);
        EVP_MAC_CTX *m = gcm ? NULL : mac_new(auth);
        if (rtcp) d->rtcp = c, d->rtcp_mac = m;
        else d->rtp = c, d->rtp_mac = m;
        if (!c || (!gcm && !m)) rc = ES_EIO;
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(auth, sizeof auth);
    return rc;
}

static void dir_free(dir_t *d)
{
    EVP_CIPHER_CTX_free(d->rtp);
    EVP_CIPHER_CTX_free(d->rtcp);
    EVP_MAC_CTX_free(d->rtp_mac);
    EVP_MAC_CTX_free(d->rtcp_mac);
}

es_srtp_t *es_srtp_new(const es_dtls_srtp_keys_t *keys)
{
    size_t want = keys->profile == ES_SRTP_AEAD_AES_128_GCM  ? 28
                  : keys->profile == ES_SRTP_AES128_CM_SHA1_80 ? 30
                                                               : 0;
    if (want == 0 || keys->master_len != want || es_srtp_global_init() != 0) return NULL;
    es_srtp_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->gcm = keys->profile == ES_SRTP_AEAD_AES_128_GCM;
    if (dir_init(&s->send, s->gcm, keys->local, true) != 0 ||
        dir_init(&s->recv, s->gcm, keys->remote, false) != 0) {
        es_srtp_free(s);
        return NULL;
    }
    return s;
}

void es_srtp_free(es_srtp_t *s)
{
    if (!s) return;
    dir_free(&s->send);
    dir_free(&s->recv);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
}

/* The SSRC's state, found; or, when create, a fresh one (the least recently used is reused
 * when all are taken). NULL when not found and !create. */
static stream_t *stream_get(dir_t *d, uint32_t ssrc, bool create)
{
    stream_t *lru = NULL;
    for (int i = 0; i < MAX_STREAMS; i++) {
        stream_t *st = &d->streams[i];
        if (st->used && st->ssrc == ssrc) {
            if (create) st->last_use = ++d->uses; /* a lookup of an unauthenticated packet
                                                     changes nothing */
            return st;
        }
        if (!lru || (!st->used && lru->used) ||
            (st->used == lru->used && st->last_use < lru->last_use))
            lru = st;
    }
    if (!create) return NULL;
    memset(lru, 0, sizeof *lru);
    lru->used = true;
    lru->ssrc = ssrc;
    lru->last_use = ++d->uses;
    return lru;
}

/* RFC 3711 §3.3.1 / Appendix A: the rollover counter of packet seq relative to the highest
 * index seen. At the start (index below 2^15) no earlier rollover is guessed, as libsrtp2. */
static uint32_t guess_roc(const stream_t *st, uint16_t seq)
{
    if (!st->seen) return 0;
    if (st->s_l < 32768) {
        if (seq > st->s_l && seq - st->s_l > 32768 && st->roc > 0) return st->roc - 1;
        return st->roc;
    }
    if (seq < st->s_l && st->s_l - 32768 > seq) return st->roc + 1;
    return st->roc;
}

static uint64_t index_of(uint32_t roc, uint16_t seq) { return ((uint64_t)roc << 16) | seq; }

/* Records index (roc, seq) as the newest when it is. */
static void advance(stream_t *st, uint32_t roc, uint16_t seq)
{
    if (!st->seen || index_of(roc, seq) > index_of(st->roc, st->s_l)) {
        st->roc = roc;
        st->s_l = seq;
        st->seen = true;
    }
}

static bool bit_get(const uint64_t *w, uint64_t bit)
{
    return (w[bit % REPLAY_WINDOW / 64] >> (bit % 64)) & 1;
}

/* Replay check of a received index against the window (bit i % 1024 stands for index i among
 * the 1024 up to the highest). Returns 0, or ES_EEXIST when replayed or too old. */
static int replay_check(const stream_t *st, uint64_t idx)
{
    if (!st->seen) return 0;
    uint64_t hi = index_of(st->roc, st->s_l);
    if (idx > hi) return 0;
    if (hi - idx >= REPLAY_WINDOW) return ES_EEXIST;
    return bit_get(st->window, idx % REPLAY_WINDOW) ? ES_EEXIST : 0;
}

/* After authentication: marks idx received, clearing the bits of indexes the window passes. */
static void replay_add(stream_t *st, uint32_t roc, uint16_t seq)
{
    uint64_t idx = index_of(roc, seq);
    if (st->seen) {
        uint64_t hi = index_of(st->roc, st->s_l);
        if (idx > hi) {
            if (idx - hi >= REPLAY_WINDOW) {
                memset(st->window, 0, sizeof st->window);
            } else {
                for (uint64_t i = hi + 1; i < idx; i++)
                    st->window[i % REPLAY_WINDOW / 64] &= ~(1ull << (i % 64));
            }
        }
    } else {
        memset(st->window, 0, sizeof st->window);
    }
    st->window[idx % REPLAY_WINDOW / 64] |= 1ull << (idx % 64);
    advance(st, roc, seq);
}

/* The RTP header's length (fixed part, CSRCs, extension), or 0 when len cannot hold it. */
static size_t rtp_header_len(const uint8_t *b, size_t len)
{
    if (len < 12 || (b[0] >> 6) != 2) return 0;
    size_t h = 12 + 4u * (b[0] & 0x0F);
    if (b[0] & 0x10) {
        if (len < h + 4) return 0;
        h += 4 + 4u * es_rd16(b + h + 2);
    }
    return h <= len ? h : 0;
}

/* AES-CM (RFC 3711 §4.1.1): in place over n bytes with IV salt ^ (ssrc << 64) ^ (idx << 16). */
static bool cm_crypt(EVP_CIPHER_CTX *c, const uint8_t salt[14], uint32_t ssrc, uint64_t idx,
                     uint8_t *p, size_t n)
{
    uint8_t iv[16] = {0};
    memcpy(iv, salt, 14);
    for (int i = 0; i < 4; i++)
        iv[4 + i] ^= (uint8_t)(ssrc >> (24 - 8 * i));
    for (int i = 0; i < 6; i++)
        iv[8 + i] ^= (uint8_t)(idx >> (40 - 8 * i));
    int out = 0;
    return EVP_CipherInit_ex2(c, NULL, NULL, iv, -1, NULL) == 1 &&
           (n == 0 || EVP_CipherUpdate(c, p, &out, p, (int)n) == 1);
}

/* HMAC-SHA1 of a || b (b may be NULL), truncated to CM_TAG bytes (RFC 3711 §4.2.1). */
static bool cm_tag(EVP_MAC_CTX *m, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                   uint8_t tag[CM_TAG])
{
    uint8_t full[20];
    size_t out = 0;
    bool ok = EVP_MAC_init(m, NULL, 0, NULL) == 1 && EVP_MAC_update(m, a, a_len) == 1 &&
              (!b || EVP_MAC_update(m, b, b_len) == 1) &&
              EVP_MAC_final(m, full, &out, sizeof full) == 1;
    if (ok) memcpy(tag, full, CM_TAG);
    return ok;
}

/* AES-GCM (RFC 7714 §8.1, §9.1): the 12-byte IV salt ^ (00 00 || ssrc || mid (4 bytes) ||
 * low (2 bytes)), where mid || low is ROC || SEQ for SRTP and 00 00 || 0 || SRTCP index for
 * SRTCP; aad (and aad2), then n bytes of p in place; the tag is written to (encrypt) or checked
 * against (decrypt) tag. */
static bool gcm_crypt(EVP_CIPHER_CTX *c, bool encrypt, const uint8_t salt[12], uint32_t ssrc,
                      uint32_t mid, uint16_t low, const uint8_t *aad, size_t aad_len,
                      const uint8_t *aad2, size_t aad2_len, uint8_t *p, size_t n,
                      uint8_t tag[GCM_TAG])
{
    uint8_t iv[12] = {0};
    es_wr32(iv + 2, ssrc);
    es_wr32(iv + 6, mid);
    es_wr16(iv + 10, low);
    for (int i = 0; i < 12; i++)
        iv[i] ^= salt[i];
    int out = 0;
    uint8_t fin[16]; /* GCM's final step writes no bytes */
    if (EVP_CipherInit_ex2(c, NULL, NULL, iv, -1, NULL) != 1 ||
        EVP_CipherUpdate(c, NULL, &out, aad, (int)aad_len) != 1 ||
        (aad2 && EVP_CipherUpdate(c, NULL, &out, aad2, (int)aad2_len) != 1) ||
        (n && EVP_CipherUpdate(c, p, &out, p, (int)n) != 1))
        return false;
    if (!encrypt && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GCM_TAG, tag) != 1) return false;
    if (EVP_CipherFinal_ex(c, fin, &out) != 1) return false; /* decrypt: the tag is wrong */
    return !encrypt || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GCM_TAG, tag) == 1;
}

static int check_cap(size_t len, size_t cap)
{
    if (len > INT32_MAX - ES_SRTP_MAX_TRAILER || cap < len + ES_SRTP_MAX_TRAILER) return ES_E2BIG;
    return 0;
}

int es_srtp_protect_rtp(es_srtp_t *s, uint8_t *buf, size_t len, size_t cap)
{
    int rc = check_cap(len, cap);
    if (rc != 0) return rc;
    size_t h = rtp_header_len(buf, len);
    if (h == 0) return ES_EPROTO;
    uint32_t ssrc = es_rd32(buf + 8);
    uint16_t seq = es_rd16(buf + 2);
    stream_t *st = stream_get(&s->send, ssrc, true);
    uint32_t roc = guess_roc(st, seq); /* a retransmission takes its own (earlier) ROC */
    /* An index far behind the newest is no retransmission a receiver could still take: refused,
     * so that no index is used again for other bytes long after (RFC 3711 §9.2). */
    if (st->seen && index_of(roc, seq) + REPLAY_WINDOW <= index_of(st->roc, st->s_l))
        return ES_EEXIST;
    if (s->gcm) {
        if (!gcm_crypt(s->send.rtp, true, s->send.rtp_salt, ssrc, roc, seq, buf, h, NULL, 0,
                       buf + h, len - h, buf + len))
            return ES_EIO;
        advance(st, roc, seq);
        return (int)(len + GCM_TAG);
    }
    uint8_t roc_be[4];
    es_wr32(roc_be, roc);
    if (!cm_crypt(s->send.rtp, s->send.rtp_salt, ssrc, index_of(roc, seq), buf + h, len - h) ||
        !cm_tag(s->send.rtp_mac, buf, len, roc_be, 4, buf + len))
        return ES_EIO;
    advance(st, roc, seq);
    return (int)(len + CM_TAG);
}

int es_srtp_unprotect_rtp(es_srtp_t *s, uint8_t *buf, size_t len)
{
    size_t tag = s->gcm ? GCM_TAG : CM_TAG;
    if (len > INT32_MAX || len < 12 + tag) return ES_EPROTO;
    size_t plain = len - tag;
    size_t h = rtp_header_len(buf, plain);
    if (h == 0) return ES_EPROTO;
    uint32_t ssrc = es_rd32(buf + 8);
    uint16_t seq = es_rd16(buf + 2);
    stream_t *known = stream_get(&s->recv, ssrc, false);
    stream_t fresh = {.ssrc = ssrc};
    const stream_t *st = known ? known : &fresh;
    uint32_t roc = guess_roc(st, seq);
    if (replay_check(st, index_of(roc, seq)) != 0) return ES_EEXIST;
    if (s->gcm) {
        if (!gcm_crypt(s->recv.rtp, false, s->recv.rtp_salt, ssrc, roc, seq, buf, h, NULL, 0,
                       buf + h, plain - h, buf + plain))
            return ES_EPROTO;
    } else {
        uint8_t roc_be[4], want[CM_TAG];
        es_wr32(roc_be, roc);
        if (!cm_tag(s->recv.rtp_mac, buf, plain, roc_be, 4, want) ||
            CRYPTO_memcmp(want, buf + plain, CM_TAG) != 0)
            return ES_EPROTO;
        if (!cm_crypt(s->recv.rtp, s->recv.rtp_salt, ssrc, index_of(roc, seq), buf + h,
                      plain - h))
            return ES_EIO;
    }
    /* Authenticated: only now may the packet create state or move the window. */
    stream_t *w = stream_get(&s->recv, ssrc, true); /* found (now used) or new */
    replay_add(w, roc, seq);
    return (int)plain;
}

int es_srtp_protect_rtcp(es_srtp_t *s, uint8_t *buf, size_t len, size_t cap)
{
    int rc = check_cap(len, cap);
    if (rc != 0) return rc;
    if (len < 8) return ES_EPROTO;
    uint32_t ssrc = es_rd32(buf + 4);
    stream_t *st = stream_get(&s->send, ssrc, true);
    st->rtcp_index = (st->rtcp_index + 1) & 0x7FFFFFFF; /* 31 bits; starts at 1 */
    uint8_t e_index[4];
    es_wr32(e_index, SRTCP_E | st->rtcp_index);
    if (s->gcm) {
        /* RFC 7714 §9: header || ciphertext || tag || E || index; the AAD is the first 8 bytes
         * and E || index. */
        if (!gcm_crypt(s->send.rtcp, true, s->send.rtcp_salt, ssrc, st->rtcp_index >> 16,
                       (uint16_t)st->rtcp_index, buf, 8, e_index, 4, buf + 8, len - 8,
                       buf + len))
            return ES_EIO;
        memcpy(buf + len + GCM_TAG, e_index, 4);
        return (int)(len + GCM_TAG + 4);
    }
    if (!cm_crypt(s->send.rtcp, s->send.rtcp_salt, ssrc, (uint64_t)st->rtcp_index, buf + 8,
                  len - 8))
        return ES_EIO;
    memcpy(buf + len, e_index, 4);
    if (!cm_tag(s->send.rtcp_mac, buf, len + 4, NULL, 0, buf + len + 4)) return ES_EIO;
    return (int)(len + 4 + CM_TAG);
}

int es_srtp_unprotect_rtcp(es_srtp_t *s, uint8_t *buf, size_t len)
{
    size_t tag = s->gcm ? GCM_TAG : CM_TAG;
    if (len > INT32_MAX || len < 8 + 4 + tag) return ES_EPROTO;
    size_t plain = len - 4 - tag;
    const uint8_t *e_index = s->gcm ? buf + len - 4 : buf + plain;
    uint32_t ei = es_rd32(e_index);
    uint32_t idx = ei & 0x7FFFFFFF;
    bool encrypted = (ei & SRTCP_E) != 0;
    uint32_t ssrc = es_rd32(buf + 4);
    stream_t *known = stream_get(&s->recv, ssrc, false);
    if (known && known->rtcp_seen) {
        uint32_t hi = known->rtcp_index;
        if (idx <= hi && (hi - idx >= RTCP_WINDOW ||
                          ((known->rtcp_window[idx % RTCP_WINDOW / 64] >> (idx % 64)) & 1)))
            return ES_EEXIST;
    }
    if (s->gcm) {
        uint8_t tagbuf[GCM_TAG];
        memcpy(tagbuf, buf + plain, GCM_TAG);
        /* Unencrypted SRTCP (E = 0) authenticates everything as AAD; we never send it and
         * browsers do not either, but it is valid. */
        bool ok = encrypted ? gcm_crypt(s->recv.rtcp, false, s->recv.rtcp_salt, ssrc, idx >> 16,
                                        (uint16_t)idx, buf, 8, e_index, 4, buf + 8, plain - 8,
                                        tagbuf)
                            : gcm_crypt(s->recv.rtcp, false, s->recv.rtcp_salt, ssrc, idx >> 16,
                                        (uint16_t)idx, buf, plain, e_index, 4, NULL, 0, tagbuf);
        if (!ok) return ES_EPROTO;
    } else {
        uint8_t want[CM_TAG];
        if (!cm_tag(s->recv.rtcp_mac, buf, plain + 4, NULL, 0, want) ||
            CRYPTO_memcmp(want, buf + plain + 4, CM_TAG) != 0)
            return ES_EPROTO;
        if (encrypted &&
            !cm_crypt(s->recv.rtcp, s->recv.rtcp_salt, ssrc, (uint64_t)idx, buf + 8, plain - 8))
            return ES_EIO;
    }
    stream_t *st = stream_get(&s->recv, ssrc, true);
    if (!st->rtcp_seen || idx > st->rtcp_index) {
        uint32_t from = st->rtcp_seen ? st->rtcp_index + 1 : idx;
        if (!st->rtcp_seen || idx - st->rtcp_index >= RTCP_WINDOW)
            memset(st->rtcp_window, 0, sizeof st->rtcp_window);
        else
            for (uint32_t i = from; i < idx; i++)
                st->rtcp_window[i % RTCP_WINDOW / 64] &= ~(1ull << (i % 64));
        st->rtcp_index = idx;
        st->rtcp_seen = true;
    }
    st->rtcp_window[idx % RTCP_WINDOW / 64] |= 1ull << (idx % 64);
    return (int)plain;
}
