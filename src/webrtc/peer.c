/* One WebRTC transport: ICE-lite + DTLS-SRTP + SRTP glued over one BUNDLE 5-tuple
 * (include/estuary/peer.h). First-byte demultiplexing per RFC 7983 §7: 0..3 STUN, 20..63 DTLS,
 * 128..191 RTP/RTCP (RFC 5761 §4 tells them apart). */
#include "estuary/peer.h"

#include "estuary/error.h"
#include "estuary/ice.h"
#include "estuary/rtp.h"
#include "estuary/srtp.h"

#include <stdlib.h>
#include <string.h>

struct es_peer {
    es_peer_params_t params;
    es_peer_state_t state;
    es_ice_lite_t *ice;
    es_dtls_t *dtls;
    es_srtp_t *srtp;
    es_addr_pair_t nominated;
    bool has_nominated;
    uint64_t last_seen_us;
    bool started;            /* DTLS started */
    es_peer_stats_t stats;
    int profile;
};

const char *es_peer_state_name(es_peer_state_t s)
{
    switch (s) {
    case ES_PEER_NEW: return "new";
    case ES_PEER_CONNECTING: return "connecting";
    case ES_PEER_CONNECTED: return "connected";
    case ES_PEER_CLOSED: return "closed";
    case ES_PEER_FAILED: return "failed";
    }
    return "?";
}

static void set_state(es_peer_t *p, es_peer_state_t s, const char *reason)
{
    if (p->state == s) return;
    p->state = s;
    if (p->params.cb.on_state) p->params.cb.on_state(p->params.user, s, reason ? reason : "");
}

es_peer_t *es_peer_new(const es_peer_params_t *params)
{
    es_peer_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->params = *params;
    p->ice = es_ice_lite_new(params->local_ufrag, params->local_pwd, params->remote_ufrag);
    p->dtls = es_dtls_new(params->cert, params->role, params->fingerprint_alg, params->fingerprint,
                          params->fingerprint_len);
    if (!p->ice || !p->dtls) {
        es_peer_free(p);
        return NULL;
    }
    /* Credentials are borrowed by params only for this call. */
    p->params.local_ufrag = p->params.local_pwd = p->params.remote_ufrag = NULL;
    p->params.fingerprint = NULL;
    p->params.fingerprint_alg = NULL;
    p->params.cert = NULL;
    return p;
}

void es_peer_free(es_peer_t *p)
{
    if (!p) return;
    es_ice_lite_free(p->ice);
    es_dtls_free(p->dtls);
    es_srtp_free(p->srtp);
    free(p);
}

static void flush_dtls(es_peer_t *p)
{
    uint8_t out[ES_DTLS_MTU + 256];
    int n;
    while ((n = es_dtls_poll_datagram(p->dtls, out, sizeof out)) > 0) {
        if (!p->has_nominated) continue; /* cannot happen: DTLS starts after nomination */
        p->stats.tx_bytes += (uint64_t)n;
        p->stats.tx_packets++;
        p->params.cb.send(p->params.user, out, (size_t)n, &p->nominated);
    }
}

static void after_dtls(es_peer_t *p)
{
    flush_dtls(p);
    es_dtls_state_t ds = es_dtls_state(p->dtls);
    if (ds == ES_DTLS_CONNECTED && p->state == ES_PEER_CONNECTING) {
        es_dtls_srtp_keys_t keys;
        if (es_dtls_srtp_keys(p->dtls, &keys) != 0 || !(p->srtp = es_srtp_new(&keys))) {
            set_state(p, ES_PEER_FAILED, "SRTP keys refused");
            return;
        }
        p->profile = (int)keys.profile;
        memset(&keys, 0, sizeof keys);
        set_state(p, ES_PEER_CONNECTED, "");
    } else if (ds == ES_DTLS_FAILED) {
        set_state(p, ES_PEER_FAILED, es_dtls_error(p->dtls));
    } else if (ds == ES_DTLS_CLOSED && p->state != ES_PEER_CLOSED) {
        set_state(p, ES_PEER_CLOSED, "DTLS close_notify from the client");
    }
}

static void handle_stun(es_peer_t *p, uint64_t now, const uint8_t *buf, size_t len,
                        const es_addr_pair_t *addr)
{
    uint8_t out[512];
    int n = es_ice_lite_handle_stun(p->ice, now, buf, len, (const struct sockaddr *)&addr->remote,
                                    addr->remote_len, out, sizeof out);
    if (n < 0) {
        p->stats.dropped++;
        return;
    }
    p->stats.stun_requests++;
    p->last_seen_us = now;
    if (n > 0) p->params.cb.send(p->params.user, out, (size_t)n, addr);
    /* Did this request nominate (USE-CANDIDATE) a pair other than the current one? Media then
     * moves to it, from the local address this check came to. */
    struct sockaddr_storage nom;
    if (!es_ice_lite_nominated(p->ice, &nom, NULL) ||
        !es_addr_equal((const struct sockaddr *)&nom, (const struct sockaddr *)&addr->remote) ||
        (p->has_nominated && es_addr_pair_equal(addr, &p->nominated)))
        return;
    p->nominated = *addr;
    p->has_nominated = true;
    if (p->params.cb.on_nominated) p->params.cb.on_nominated(p->params.user, &p->nominated);
    if (p->state == ES_PEER_NEW) {
        set_state(p, ES_PEER_CONNECTING, "");
        if (!p->started) {
            p->started = true;
            es_dtls_start(p->dtls, now);
            after_dtls(p);
        }
    }
}

void es_peer_handle_datagram(es_peer_t *p, uint64_t now, uint8_t *buf, size_t len,
                             const es_addr_pair_t *addr)
{
    if (len == 0 || p->state == ES_PEER_CLOSED || p->state == ES_PEER_FAILED) return;
    p->stats.rx_bytes += len;
    p->stats.rx_packets++;
    uint8_t b = buf[0];
    if (b <= 3) {
        handle_stun(p, now, buf, len, addr);
        return;
    }
    if (!p->has_nominated || !es_addr_pair_equal(addr, &p->nominated)) {
        p->stats.dropped++; /* DTLS and media only on the nominated pair */
        return;
    }
    if (b >= 20 && b <= 63) {
        p->last_seen_us = now;
        es_dtls_handle_datagram(p->dtls, now, buf, len);
        after_dtls(p);
        return;
    }
    if (b >= 128 && b <= 191 && p->srtp) {
        bool rtcp = es_rtp_is_rtcp(buf, len);
        int n = rtcp ? es_srtp_unprotect_rtcp(p->srtp, buf, len)
                     : es_srtp_unprotect_rtp(p->srtp, buf, len); /* in place: no copy */
        if (n < 0) {
            if (n != ES_EEXIST) p->stats.srtp_errors++;
            p->stats.dropped++;
            return;
        }
        p->last_seen_us = now;
        if (rtcp) {
            if (p->params.cb.on_rtcp) p->params.cb.on_rtcp(p->params.user, now, buf, (size_t)n);
        } else {
            if (p->params.cb.on_rtp) p->params.cb.on_rtp(p->params.user, now, buf, (size_t)n);
        }
        return;
    }
    p->stats.dropped++;
}

void es_peer_handle_timeout(es_peer_t *p, uint64_t now)
{
    if (p->state != ES_PEER_CONNECTING) return;
    uint64_t due = es_dtls_next_timeout_us(p->dtls, now);
    if (!due || due > now) return;
    es_dtls_handle_timeout(p->dtls, now);
    after_dtls(p);
}

uint64_t es_peer_next_timeout_us(es_peer_t *p, uint64_t now)
{
    if (p->state != ES_PEER_CONNECTING) return 0;
    return es_dtls_next_timeout_us(p->dtls, now);
}

static int send_protected(es_peer_t *p, uint8_t *buf, size_t len, size_t cap, bool rtcp)
{
    if (p->state != ES_PEER_CONNECTED || !p->srtp) return ES_EAGAIN;
    int n = rtcp ? es_srtp_protect_rtcp(p->srtp, buf, len, cap)
                 : es_srtp_protect_rtp(p->srtp, buf, len, cap);
    if (n < 0) return n;
    p->stats.tx_bytes += (uint64_t)n;
    p->stats.tx_packets++;
    p->params.cb.send(p->params.user, buf, (size_t)n, &p->nominated);
    return 0;
}

int es_peer_send_rtp(es_peer_t *p, uint8_t *buf, size_t len, size_t cap)
{
    return send_protected(p, buf, len, cap, false);
}

int es_peer_send_rtcp(es_peer_t *p, uint8_t *buf, size_t len, size_t cap)
{
    return send_protected(p, buf, len, cap, true);
}

void es_peer_close(es_peer_t *p)
{
    if (p->state == ES_PEER_CLOSED || p->state == ES_PEER_FAILED) return;
    if (p->started && p->has_nominated) {
        es_dtls_close(p->dtls);
        flush_dtls(p);
    }
    set_state(p, ES_PEER_CLOSED, "closed by the server");
}

int es_peer_restart_ice(es_peer_t *p, const char *local_ufrag, const char *local_pwd,
                        const char *remote_ufrag)
{
    es_ice_lite_t *ice = es_ice_lite_new(local_ufrag, local_pwd, remote_ufrag);
    if (!ice) return ES_EINVAL;
    es_ice_lite_free(p->ice);
    p->ice = ice;
    return 0;
}

es_peer_state_t es_peer_state(const es_peer_t *p) { return p->state; }

uint64_t es_peer_last_seen_us(const es_peer_t *p) { return p->last_seen_us; }

const es_addr_pair_t *es_peer_nominated(const es_peer_t *p)
{
    return p->has_nominated ? &p->nominated : NULL;
}

es_peer_stats_t es_peer_stats(const es_peer_t *p) { return p->stats; }

int es_peer_srtp_profile(const es_peer_t *p) { return p->profile; }
