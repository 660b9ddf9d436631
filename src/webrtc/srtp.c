/* SRTP and SRTCP for one DTLS-SRTP session on libsrtp2 (RFC 3711; AES-GCM per RFC 7714;
 * keys from RFC 5764 §4.2). Two libsrtp2 sessions: one for what we send (ssrc_any_outbound,
 * repeated transmission allowed so NACK retransmissions of an already protected packet work),
 * one for what we receive (ssrc_any_inbound, 1024-packet replay window). */
#include "estuary/srtp.h"

#include "estuary/error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <srtp2/srtp.h>

_Static_assert(ES_SRTP_MAX_TRAILER >= SRTP_MAX_TRAILER_LEN + 4,
               "srtp_protect_rtcp may write SRTP_MAX_TRAILER_LEN + 4 bytes");

#define SRTP_REPLAY_WINDOW 1024 /* packets: video bursts reorder more than the default 128 */

struct es_srtp {
    srtp_t send;
    srtp_t recv;
};

static bool g_srtp_ready;

int es_srtp_global_init(void)
{
    if (g_srtp_ready)
        return 0;
    if (srtp_init() != srtp_err_status_ok)
        return ES_EIO;
    g_srtp_ready = true;
    return 0;
}

static srtp_t session_new(es_srtp_profile_t profile, const uint8_t *master, bool outbound)
{
    srtp_policy_t p;
    memset(&p, 0, sizeof p);
    switch (profile) {
    case ES_SRTP_AES128_CM_SHA1_80:
        srtp_crypto_policy_set_rtp_default(&p.rtp);
        srtp_crypto_policy_set_rtcp_default(&p.rtcp);
        break;
    case ES_SRTP_AEAD_AES_128_GCM:
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtcp);
        break;
    default:
        return NULL;
    }
    p.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
    p.key = (unsigned char *)master; /* libsrtp2 copies it while deriving session keys */
    p.window_size = SRTP_REPLAY_WINDOW;
    p.allow_repeat_tx = outbound ? 1 : 0;
    p.next = NULL;
    srtp_t s = NULL;
    if (srtp_create(&s, &p) != srtp_err_status_ok)
        return NULL;
    return s;
}

es_srtp_t *es_srtp_new(const es_dtls_srtp_keys_t *keys)
{
    size_t want = keys->profile == ES_SRTP_AEAD_AES_128_GCM ? 28
                  : keys->profile == ES_SRTP_AES128_CM_SHA1_80 ? 30
                                                              : 0;
    if (want == 0 || keys->master_len != want || es_srtp_global_init() != 0)
        return NULL;
    es_srtp_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->send = session_new(keys->profile, keys->local, true);
    s->recv = session_new(keys->profile, keys->remote, false);
    if (s->send == NULL || s->recv == NULL) {
        es_srtp_free(s);
        return NULL;
    }
    return s;
}

void es_srtp_free(es_srtp_t *s)
{
    if (s == NULL)
        return;
    if (s->send != NULL)
        srtp_dealloc(s->send);
    if (s->recv != NULL)
        srtp_dealloc(s->recv);
    free(s);
}

static int map_err(srtp_err_status_t e)
{
    switch (e) {
    case srtp_err_status_ok:
        return 0;
    case srtp_err_status_replay_fail:
    case srtp_err_status_replay_old:
        return ES_EEXIST;
    default:
        return ES_EPROTO; /* auth_fail, bad header, unknown SSRC, ... */
    }
}

/* libsrtp2 writes the tag (and, for SRTCP, the E-flag and index) past len without a capacity
 * argument, so the room is checked here. */
static int check_cap(size_t len, size_t cap)
{
    if (len > INT32_MAX - ES_SRTP_MAX_TRAILER || cap < len + ES_SRTP_MAX_TRAILER)
        return ES_E2BIG;
    return 0;
}

int es_srtp_protect_rtp(es_srtp_t *s, uint8_t *buf, size_t len, size_t cap)
{
    int rc = check_cap(len, cap);
    if (rc != 0)
        return rc;
    int n = (int)len;
    rc = map_err(srtp_protect(s->send, buf, &n));
    return rc != 0 ? (rc == ES_EEXIST ? ES_EPROTO : rc) : n;
}

int es_srtp_protect_rtcp(es_srtp_t *s, uint8_t *buf, size_t len, size_t cap)
{
    int rc = check_cap(len, cap);
    if (rc != 0)
        return rc;
    int n = (int)len;
    rc = map_err(srtp_protect_rtcp(s->send, buf, &n));
    return rc != 0 ? (rc == ES_EEXIST ? ES_EPROTO : rc) : n;
}

int es_srtp_unprotect_rtp(es_srtp_t *s, uint8_t *buf, size_t len)
{
    if (len > INT32_MAX)
        return ES_EPROTO;
    int n = (int)len;
    int rc = map_err(srtp_unprotect(s->recv, buf, &n));
    return rc != 0 ? rc : n;
}

int es_srtp_unprotect_rtcp(es_srtp_t *s, uint8_t *buf, size_t len)
{
    if (len > INT32_MAX)
        return ES_EPROTO;
    int n = (int)len;
    int rc = map_err(srtp_unprotect_rtcp(s->recv, buf, &n));
    return rc != 0 ? rc : n;
}
