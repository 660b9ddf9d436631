/* One WebRTC session's transport for either role (include/estuary/rtc_session.h): the pair
 * table with per-pair validity and consent (RFC 8445 §6.1.2.6, §12.2; RFC 7675), connectivity
 * checks with pacing and retransmission for the full controlling agent (RFC 8445 §6.1.4, §7.2.5,
 * §8.1.1 regular nomination), DTLS-SRTP (RFC 5764) and first-byte demultiplexing (RFC 7983 §7:
 * 0..3 STUN, 20..63 DTLS, 128..191 RTP/RTCP, told apart by RFC 5761 §4). */
#include "estuary/rtc_session.h"

#include "estuary/error.h"
#include "estuary/metrics.h"
#include "estuary/ice.h"
#include "estuary/rtp.h"
#include "estuary/srtp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TA_US 50000           /* RFC 8445 §14.2: one new check every 50 ms */
#define CHECK_RTO_US 200000   /* first retransmission of a check; doubles up to RTO_MAX_US */
#define CHECK_RTO_MAX_US 1600000
#define CHECK_TRIES 7         /* RFC 8489 §6.2.1 Rc */
#define CONSENT_CHECK_US 4000000 /* RFC 7675 §5.1: a consent check every 4-6 s (+ jitter) */

typedef enum { CHECK_NONE = 0, CHECK_WAITING, CHECK_IN_PROGRESS, CHECK_SUCCEEDED, CHECK_FAILED } check_state_t;

typedef struct pair {
    bool used;
    bool valid;                /* authenticated check from it, or our check on it succeeded */
    es_addr_pair_t addr;
    uint64_t added_us;
    uint64_t consent_us;       /* last authenticated traffic received on it */
    /* The check we send on this pair (full agent only). */
    check_state_t check;
    bool inflight;             /* txid/req hold a transaction awaiting its response */
    bool nominating;           /* that transaction carries USE-CANDIDATE */
    uint8_t txid[ES_ICE_TXID_LEN];
    uint8_t req[ES_ICE_MSG_MAX];
    size_t req_len;
    unsigned tries;
    uint64_t rto_us, next_tx_us;
    uint64_t next_consent_us;  /* when the next consent check is due (selected pair) */
} pair_t;

struct es_rtc_session {
    es_rtc_session_params_t prm;
    es_rtc_session_state_t state;
    es_ice_t *ice;
    es_dtls_t *dtls;
    es_srtp_t *srtp;
    pair_t pairs[ES_RTC_SESSION_MAX_PAIRS];
    int nominated;             /* index, or -1 */
    int dtls_pair;             /* the pair the last DTLS datagram came on, or -1 */
    int selected;              /* where media goes, or -1 (derived by update_selected) */
    bool selected_nominated;
    uint64_t created_us;
    uint64_t next_check_us;    /* pacing of new checks (Ta) */
    bool dtls_started;
    es_rtc_session_stats_t stats;
    int profile;
};

const char *es_rtc_session_state_name(es_rtc_session_state_t st)
{
    switch (st) {
    case ES_RTC_SESSION_NEW: return "new";
    case ES_RTC_SESSION_CONNECTING: return "connecting";
    case ES_RTC_SESSION_CONNECTED: return "connected";
    case ES_RTC_SESSION_CLOSED: return "closed";
    case ES_RTC_SESSION_FAILED: return "failed";
    }
    return "?";
}

static bool ended(const es_rtc_session_t *s)
{
    return s->state == ES_RTC_SESSION_CLOSED || s->state == ES_RTC_SESSION_FAILED;
}

static void set_state(es_rtc_session_t *s, es_rtc_session_state_t st, int err, const char *reason)
{
    if (s->state == st || ended(s)) return;
    s->state = st;
    if (s->prm.cb.on_state) s->prm.cb.on_state(s->prm.user, st, err, reason ? reason : "");
}

static es_ice_t *ice_new(const char *lu, const char *lp, const char *ru, const char *rp,
                         bool controlling)
{
    es_ice_params_t ip = {.local_ufrag = lu, .local_pwd = lp, .remote_ufrag = ru,
                          .remote_pwd = rp, .controlling = controlling};
    if (controlling && (!rp || !*rp)) return NULL;
    return es_ice_new(&ip);
}

es_rtc_session_t *es_rtc_session_new(const es_rtc_session_params_t *prm)
{
    es_rtc_session_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->prm = *prm;
    s->nominated = s->dtls_pair = s->selected = -1;
    s->created_us = prm->now_us;
    s->next_check_us = prm->now_us;
    s->ice = ice_new(prm->local_ufrag, prm->local_pwd, prm->remote_ufrag, prm->remote_pwd,
                     prm->ice_controlling);
    s->dtls = es_dtls_new(prm->cert, prm->dtls_role, prm->fingerprint_alg, prm->fingerprint,
                          prm->fingerprint_len);
    if (!s->ice || !s->dtls) {
        es_rtc_session_free(s);
        return NULL;
    }
    /* Retransmit until the connect timeout rather than give up after OpenSSL's few tries. */
    es_dtls_set_timer(s->dtls, prm->dtls_timer_us ? prm->dtls_timer_us : 100000, 12);
    /* The strings and the certificate are borrowed by params only for this call. */
    s->prm.local_ufrag = s->prm.local_pwd = s->prm.remote_ufrag = s->prm.remote_pwd = NULL;
    s->prm.fingerprint_alg = NULL;
    s->prm.fingerprint = NULL;
    s->prm.cert = NULL;
    return s;
}

void es_rtc_session_free(es_rtc_session_t *s)
{
    if (!s) return;
    es_ice_free(s->ice);
    es_dtls_free(s->dtls);
    es_srtp_free(s->srtp);
    free(s);
}

/* --- pairs --- */

static int pair_find(const es_rtc_session_t *s, const es_addr_pair_t *a)
{
    for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++)
        if (s->pairs[i].used && es_addr_pair_equal(&s->pairs[i].addr, a)) return i;
    return -1;
}

/* The pair of a received datagram: an exact match, else (full agent) the pair of a candidate we
 * check from an unspecified local address, which now learns that address. One 5-tuple is never
 * two pairs. */
static int pair_lookup(es_rtc_session_t *s, const es_addr_pair_t *a)
{
    int i = pair_find(s, a);
    if (i >= 0 || a->local.ss_family == AF_UNSPEC) return i;
    for (int k = 0; k < ES_RTC_SESSION_MAX_PAIRS; k++) {
        pair_t *p = &s->pairs[k];
        if (p->used && p->addr.local.ss_family == AF_UNSPEC &&
            es_addr_equal((const struct sockaddr *)&p->addr.remote, (const struct sockaddr *)&a->remote)) {
            p->addr.local = a->local; /* not valid yet: no route to move */
            return k;
        }
    }
    return -1;
}

static bool has_consent(const es_rtc_session_t *s, const pair_t *p, uint64_t now)
{
    return p->valid && now - p->consent_us < (uint64_t)s->prm.consent_timeout_ms * 1000;
}

static void pair_drop(es_rtc_session_t *s, int i)
{
    pair_t *p = &s->pairs[i];
    if (p->inflight) es_ice_check_forget(s->ice, p->txid);
    bool was_valid = p->valid;
    es_addr_pair_t a = p->addr;
    memset(p, 0, sizeof *p);
    if (s->dtls_pair == i) s->dtls_pair = -1;
    if (s->nominated == i) s->nominated = -1;
    if (was_valid && s->prm.cb.on_pair) s->prm.cb.on_pair(s->prm.user, &a, false);
}

/* A free slot, or the one of the least recently heard pair that media does not use. */
static int pair_add(es_rtc_session_t *s, const es_addr_pair_t *a, uint64_t now)
{
    int slot = -1;
    for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS && slot < 0; i++)
        if (!s->pairs[i].used) slot = i;
    if (slot < 0) {
        for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++) {
            if (i == s->selected || i == s->nominated || i == s->dtls_pair) continue;
            if (slot < 0 || s->pairs[i].consent_us < s->pairs[slot].consent_us) slot = i;
        }
        if (slot < 0) return -1;
        pair_drop(s, slot);
    }
    pair_t *p = &s->pairs[slot];
    p->used = true;
    p->addr = *a;
    p->added_us = now;
    return slot;
}

static void pair_set_valid(es_rtc_session_t *s, int i, uint64_t now)
{
    pair_t *p = &s->pairs[i];
    p->consent_us = now;
    if (p->valid) return;
    p->valid = true;
    if (s->prm.cb.on_pair) s->prm.cb.on_pair(s->prm.user, &p->addr, true);
}

/* --- sending --- */

static void send_to(es_rtc_session_t *s, const es_addr_pair_t *a, const uint8_t *buf, size_t len)
{
    s->stats.tx_bytes += len;
    s->stats.tx_packets++;
    s->prm.cb.send(s->prm.user, buf, len, a);
}

static void send_on(es_rtc_session_t *s, int i, const uint8_t *buf, size_t len)
{
    send_to(s, &s->pairs[i].addr, buf, len);
}

/* Where media goes: the nominated pair while it has consent; before any nomination, the valid
 * pair DTLS came on, or (full agent) the first pair whose check succeeded. */
static int compute_selected(const es_rtc_session_t *s, uint64_t now, bool *nominated)
{
    *nominated = false;
    if (s->nominated >= 0) {
        *nominated = true;
        return has_consent(s, &s->pairs[s->nominated], now) ? s->nominated : -1;
    }
    if (s->dtls_pair >= 0 && has_consent(s, &s->pairs[s->dtls_pair], now)) return s->dtls_pair;
    /* The full agent: its first succeeded pair. A lite agent that is the DTLS client (the offer
     * said setup:passive) hears no DTLS first: its first valid pair, or it would wait for the
     * nomination. A lite DTLS server waits for the ClientHello's pair. */
    bool lite_client = !s->prm.ice_controlling && s->prm.dtls_role == ES_DTLS_ROLE_CLIENT;
    if (!s->prm.ice_controlling && !lite_client) return -1;
    int best = -1;
    for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++) {
        const pair_t *p = &s->pairs[i];
        bool ok = s->prm.ice_controlling ? p->check == CHECK_SUCCEEDED : p->valid;
        if (p->used && ok && has_consent(s, p, now) &&
            (best < 0 || p->added_us < s->pairs[best].added_us))
            best = i;
    }
    return best;
}

static void after_dtls(es_rtc_session_t *s, uint64_t now, int rc);

static void update_selected(es_rtc_session_t *s, uint64_t now)
{
    bool nom;
    int sel = compute_selected(s, now, &nom);
    if (sel != s->selected || nom != s->selected_nominated) {
        s->selected = sel;
        s->selected_nominated = nom;
        if (sel >= 0) s->pairs[sel].next_consent_us = now + CONSENT_CHECK_US;
        if (s->prm.cb.on_selected)
            s->prm.cb.on_selected(s->prm.user, sel >= 0 ? &s->pairs[sel].addr : NULL, nom);
    }
    /* A DTLS client speaks first, once it knows where to. */
    if (sel >= 0 && !s->dtls_started && s->prm.dtls_role == ES_DTLS_ROLE_CLIENT && !ended(s)) {
        s->dtls_started = true;
        after_dtls(s, now, es_dtls_start(s->dtls, now));
    }
}

static void flush_dtls(es_rtc_session_t *s)
{
    uint8_t out[ES_DTLS_MTU + 256];
    int n;
    /* DTLS answers go back on the pair DTLS came on (RFC 8445 §12.2); our own first flight on
     * the selected pair. */
    int to = s->dtls_pair >= 0 ? s->dtls_pair : s->selected;
    while ((n = es_dtls_poll_datagram(s->dtls, out, sizeof out)) > 0)
        if (to >= 0) send_on(s, to, out, (size_t)n);
}

/* After a call into DTLS that returned rc: send what it queued, follow its state. */
static void after_dtls(es_rtc_session_t *s, uint64_t now, int rc)
{
    flush_dtls(s);
    es_dtls_state_t ds = es_dtls_state(s->dtls);
    if (ds == ES_DTLS_CONNECTED && !s->srtp && !ended(s)) {
        es_dtls_srtp_keys_t keys;
        if (es_dtls_srtp_keys(s->dtls, &keys) != 0 || !(s->srtp = es_srtp_new(&keys))) {
            memset(&keys, 0, sizeof keys);
            set_state(s, ES_RTC_SESSION_FAILED, ES_EPROTO, "SRTP keys refused");
            return;
        }
        s->profile = (int)keys.profile;
        memset(&keys, 0, sizeof keys);
        set_state(s, ES_RTC_SESSION_CONNECTED, 0, "");
    } else if (ds == ES_DTLS_FAILED) {
        const char *why = es_dtls_error(s->dtls);
        /* The peer's certificate is not the one its SDP announced: an authorization failure. */
        int err = rc == ES_ETIMEDOUT ? ES_ETIMEDOUT : strstr(why, "fingerprint") ? ES_EACCES : ES_EPROTO;
        set_state(s, ES_RTC_SESSION_FAILED, err, why);
    } else if (ds == ES_DTLS_CLOSED) {
        set_state(s, ES_RTC_SESSION_CLOSED, 0, "DTLS close_notify from the peer");
    }
}

/* --- checks (full agent) --- */

/* RFC 8445 §5.1.2.1 priority of our side of the pair as a peer-reflexive candidate. */
static uint32_t prflx_priority(void) { return (110u << 24) | (65535u << 8) | 255u; }

static void check_send(es_rtc_session_t *s, int i, bool nominate, uint64_t now)
{
    pair_t *p = &s->pairs[i];
    if (p->inflight) es_ice_check_forget(s->ice, p->txid);
    p->inflight = false;
    int n = es_ice_check_create(s->ice, nominate, prflx_priority(), p->req, sizeof p->req, p->txid);
    if (n <= 0) return;
    p->req_len = (size_t)n;
    p->inflight = true;
    p->nominating = nominate;
    p->tries = 1;
    p->rto_us = CHECK_RTO_US;
    p->next_tx_us = now + p->rto_us;
    s->stats.checks_sent++;
    send_on(s, i, p->req, p->req_len);
}

/* Regular nomination (RFC 8445 §8.1.1): the controlling agent repeats a succeeded check with
 * USE-CANDIDATE on the pair it picked, once. */
static void maybe_nominate(es_rtc_session_t *s, uint64_t now)
{
    if (!s->prm.ice_controlling || s->nominated >= 0) return;
    for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++)
        if (s->pairs[i].used && s->pairs[i].inflight && s->pairs[i].nominating) return;
    if (s->selected >= 0) check_send(s, s->selected, true, now);
}

static void run_checks(es_rtc_session_t *s, uint64_t now)
{
    if (!s->prm.ice_controlling || ended(s)) return;
    for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++) {
        pair_t *p = &s->pairs[i];
        if (!p->used || !p->inflight || now < p->next_tx_us) continue;
        if (p->check == CHECK_SUCCEEDED && !p->nominating) {
            /* A consent check is not retransmitted; the next one replaces it. */
            if (now >= p->next_consent_us) {
                es_ice_check_forget(s->ice, p->txid);
                p->inflight = false;
            } else {
                p->next_tx_us = p->next_consent_us; /* nothing before then */
            }
            continue;
        }
        if (p->tries >= CHECK_TRIES) {
            /* The transaction failed. Until the session is connected (the connect timeout is
             * the bound) the pair is checked again with a new one: on a lossy path seven tries
             * are not many. A failed nomination is retried below. */
            es_ice_check_forget(s->ice, p->txid);
            p->inflight = p->nominating = false;
            if (p->check != CHECK_SUCCEEDED)
                p->check = s->state == ES_RTC_SESSION_CONNECTED ? CHECK_FAILED : CHECK_WAITING;
            continue;
        }
        p->tries++;
        p->rto_us = p->rto_us * 2 > CHECK_RTO_MAX_US ? CHECK_RTO_MAX_US : p->rto_us * 2;
        p->next_tx_us = now + p->rto_us;
        s->stats.checks_sent++;
        send_on(s, i, p->req, p->req_len); /* same transaction (RFC 8489 §6.2.1) */
    }
    /* One new check per Ta (RFC 8445 §6.1.4.2), triggered ones first. */
    if (now >= s->next_check_us) {
        for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++) {
            if (!s->pairs[i].used || s->pairs[i].check != CHECK_WAITING) continue;
            s->pairs[i].check = CHECK_IN_PROGRESS;
            check_send(s, i, false, now);
            s->next_check_us = now + TA_US;
            break;
        }
    }
    maybe_nominate(s, now);
    /* Consent (RFC 7675 §5.1): a check on the selected pair every few seconds. */
    if (s->selected >= 0) {
        pair_t *p = &s->pairs[s->selected];
        if (p->check == CHECK_SUCCEEDED && !p->inflight && now >= p->next_consent_us) {
            check_send(s, s->selected, false, now);
            /* 4-6 s, the jitter from the check's random transaction id (RFC 7675 §5.1). */
            p->next_tx_us = p->next_consent_us =
                now + CONSENT_CHECK_US + (uint64_t)p->txid[ES_ICE_TXID_LEN - 1] * 2000000 / 255;
        }
    }
}

int es_rtc_session_add_remote_candidate(es_rtc_session_t *s, const es_addr_pair_t *addr,
                                        uint32_t priority, uint64_t now)
{
    (void)priority; /* checked in the order given (the SDP lists its best first) */
    if (!s->prm.ice_controlling) return ES_EINVAL;
    for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++)
        if (s->pairs[i].used && es_addr_equal((const struct sockaddr *)&s->pairs[i].addr.remote,
                                              (const struct sockaddr *)&addr->remote))
            return ES_EEXIST;
    int i = pair_add(s, addr, now);
    if (i < 0) return ES_EBUSY;
    s->pairs[i].check = CHECK_WAITING;
    return 0;
}

/* --- input --- */

static void handle_stun(es_rtc_session_t *s, uint64_t now, const uint8_t *buf, size_t len,
                        const es_addr_pair_t *addr)
{
    uint8_t out[ES_ICE_MSG_MAX];
    es_ice_msg_t msg;
    int n = es_ice_handle_stun(s->ice, buf, len, (const struct sockaddr *)&addr->remote,
                               addr->remote_len, out, sizeof out, &msg);
    if (n < 0) {
        s->stats.dropped++;
        return;
    }
    if (msg.kind == ES_ICE_MSG_REQUEST) {
        s->stats.stun_requests++;
        int i = pair_lookup(s, addr);
        if (i < 0) i = pair_add(s, addr, now);
        if (n > 0) send_to(s, addr, out, (size_t)n);
        if (i < 0) return;
        pair_set_valid(s, i, now);
        /* A triggered check (RFC 8445 §7.3.1.4): a full agent learns a peer-reflexive pair
         * this way (a browser answering our offer checks us first). */
        if (s->prm.ice_controlling && s->pairs[i].check != CHECK_SUCCEEDED &&
            s->pairs[i].check != CHECK_IN_PROGRESS) {
            s->pairs[i].check = CHECK_IN_PROGRESS;
            check_send(s, i, false, now);
        }
        /* Only the controlling side nominates (RFC 8445 §8.1.1); a lite agent follows it. */
        if (msg.use_candidate && !s->prm.ice_controlling) s->nominated = i;
        if (s->state == ES_RTC_SESSION_NEW) set_state(s, ES_RTC_SESSION_CONNECTING, 0, "");
        update_selected(s, now);
        return;
    }
    if (n > 0) { /* a 420 to a request we could not understand */
        send_to(s, addr, out, (size_t)n);
        return;
    }
    if (msg.kind != ES_ICE_MSG_SUCCESS && msg.kind != ES_ICE_MSG_ERROR) return;
    int i = -1;
    for (int k = 0; k < ES_RTC_SESSION_MAX_PAIRS && i < 0; k++)
        if (s->pairs[k].used && s->pairs[k].inflight &&
            !memcmp(s->pairs[k].txid, msg.txid, ES_ICE_TXID_LEN))
            i = k;
    if (i < 0) return;
    pair_t *p = &s->pairs[i];
    p->inflight = false;
    /* RFC 8445 §7.2.5.2.1: the response must come from where the request went. */
    if (!es_addr_equal((const struct sockaddr *)&addr->remote,
                       (const struct sockaddr *)&p->addr.remote)) {
        if (p->check != CHECK_SUCCEEDED) p->check = CHECK_FAILED;
        return;
    }
    if (msg.kind == ES_ICE_MSG_ERROR) {
        /* 487 included (we keep our role, ice.c). Like a timeout: until connected the pair is
         * checked again; libnice takes 400/401 without integrity, so one forged error must not
         * end a pair. */
        if (p->check != CHECK_SUCCEEDED)
            p->check = s->state == ES_RTC_SESSION_CONNECTED ? CHECK_FAILED : CHECK_WAITING;
        p->nominating = false;
        return;
    }
    /* We sent from an unknown local address; the response says which one was used (a pair
     * that the peer's own check made for that 5-tuple already took p's place: pair_lookup). */
    if (addr->local.ss_family != AF_UNSPEC && p->addr.local.ss_family == AF_UNSPEC) {
        int q = pair_find(s, addr);
        if (q >= 0 && q != i) {
            s->pairs[q].check = CHECK_SUCCEEDED;
            s->pairs[q].nominating = p->nominating;
            if (s->nominated == i) s->nominated = q;
            pair_drop(s, i); /* never valid: nothing routed */
            i = q;
            p = &s->pairs[q];
        } else {
            p->addr.local = addr->local;
        }
    }
    p->check = CHECK_SUCCEEDED;
    pair_set_valid(s, i, now);
    if (p->nominating) s->nominated = i;
    p->nominating = false;
    if (s->state == ES_RTC_SESSION_NEW) set_state(s, ES_RTC_SESSION_CONNECTING, 0, "");
    update_selected(s, now);
    maybe_nominate(s, now);
}

void es_rtc_session_handle_datagram(es_rtc_session_t *s, uint64_t now, uint8_t *buf, size_t len,
                                    const es_addr_pair_t *addr)
{
    if (len == 0 || ended(s)) return;
    s->stats.rx_bytes += len;
    s->stats.rx_packets++;
    uint8_t b = buf[0];
    if (b <= 3) {
        handle_stun(s, now, buf, len, addr);
        return;
    }
    int i = pair_find(s, addr);
    if (i < 0 || !s->pairs[i].valid) {
        s->stats.dropped++; /* DTLS and media only from pairs that passed a check */
        return;
    }
    if (b >= 20 && b <= 63) {
        /* Not consent: a DTLS record is not authenticated by anything the peer proved. */
        if (s->dtls_pair != i) {
            s->dtls_pair = i;
            update_selected(s, now);
        }
        s->dtls_started = true; /* a server starts on the ClientHello */
        after_dtls(s, now, es_dtls_handle_datagram(s->dtls, now, buf, len));
        return;
    }
    if (b >= 128 && b <= 191 && s->srtp) {
        bool rtcp = es_rtp_is_rtcp(buf, len);
        int n = rtcp ? es_srtp_unprotect_rtcp(s->srtp, buf, len)
                     : es_srtp_unprotect_rtp(s->srtp, buf, len); /* in place: no copy */
        if (n < 0) {
            if (n != ES_EEXIST) {
                s->stats.srtp_errors++;
                es_metrics.srtp_errors++;
            }
            s->stats.dropped++;
            return;
        }
        bool had = has_consent(s, &s->pairs[i], now);
        s->pairs[i].consent_us = now; /* SRTP authenticated: consent for this pair */
        if (!had) update_selected(s, now);
        if (rtcp) {
            if (s->prm.cb.on_rtcp) s->prm.cb.on_rtcp(s->prm.user, now, buf, (size_t)n);
        } else {
            if (s->prm.cb.on_rtp) s->prm.cb.on_rtp(s->prm.user, now, buf, (size_t)n);
        }
        return;
    }
    s->stats.dropped++;
}

/* --- timers --- */

void es_rtc_session_handle_timeout(es_rtc_session_t *s, uint64_t now)
{
    if (ended(s)) return;
    if (s->dtls_started && s->state != ES_RTC_SESSION_NEW) {
        uint64_t due = es_dtls_next_timeout_us(s->dtls, now);
        if (due && due <= now) {
            after_dtls(s, now, es_dtls_handle_timeout(s->dtls, now));
            if (ended(s)) return;
        }
    }
    run_checks(s, now);
    char why[160];
    if (s->state != ES_RTC_SESSION_CONNECTED) {
        if (now - s->created_us >= (uint64_t)s->prm.connect_timeout_ms * 1000) {
            if (s->state == ES_RTC_SESSION_NEW)
                snprintf(why, sizeof why, "ICE: no %s within %u ms",
                         s->prm.ice_controlling ? "check succeeded" : "authenticated check arrived",
                         s->prm.connect_timeout_ms);
            else
                snprintf(why, sizeof why, "DTLS handshake not completed within %u ms",
                         s->prm.connect_timeout_ms);
            set_state(s, ES_RTC_SESSION_FAILED, ES_ETIMEDOUT, why);
            return;
        }
        update_selected(s, now);
        return;
    }
    bool any = false;
    for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS && !any; i++)
        any = s->pairs[i].used && has_consent(s, &s->pairs[i], now);
    if (!any) {
        snprintf(why, sizeof why, "consent lost: no authenticated STUN, RTP or RTCP for %u ms",
                 s->prm.consent_timeout_ms);
        set_state(s, ES_RTC_SESSION_CLOSED, ES_ETIMEDOUT, why);
        return;
    }
    update_selected(s, now);
}

static uint64_t earliest(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

uint64_t es_rtc_session_next_timeout_us(es_rtc_session_t *s, uint64_t now)
{
    if (ended(s)) return 0;
    uint64_t t = 0;
    if (s->state != ES_RTC_SESSION_CONNECTED)
        t = s->created_us + (uint64_t)s->prm.connect_timeout_ms * 1000;
    if (s->dtls_started) t = earliest(t, es_dtls_next_timeout_us(s->dtls, now));
    bool any_consent = false;
    for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++) {
        const pair_t *p = &s->pairs[i];
        if (!p->used) continue;
        if (has_consent(s, p, now)) {
            any_consent = true;
            t = earliest(t, p->consent_us + (uint64_t)s->prm.consent_timeout_ms * 1000);
        }
        if (!s->prm.ice_controlling) continue;
        if (p->inflight) t = earliest(t, p->next_tx_us);
        if (p->check == CHECK_WAITING) t = earliest(t, s->next_check_us > now ? s->next_check_us : now);
        if (i == s->selected && p->check == CHECK_SUCCEEDED && !p->inflight)
            t = earliest(t, p->next_consent_us);
    }
    /* Connected with consent gone everywhere: due now (the session closes). */
    if (s->state == ES_RTC_SESSION_CONNECTED && !any_consent) return now;
    return t;
}

/* --- output --- */

static int send_protected(es_rtc_session_t *s, uint8_t *buf, size_t len, size_t cap, bool rtcp)
{
    if (s->state != ES_RTC_SESSION_CONNECTED || !s->srtp || s->selected < 0) return ES_EAGAIN;
    int n = rtcp ? es_srtp_protect_rtcp(s->srtp, buf, len, cap)
                 : es_srtp_protect_rtp(s->srtp, buf, len, cap);
    if (n < 0) return n;
    send_on(s, s->selected, buf, (size_t)n);
    return 0;
}

int es_rtc_session_send_rtp(es_rtc_session_t *s, uint8_t *buf, size_t len, size_t cap)
{
    return send_protected(s, buf, len, cap, false);
}

int es_rtc_session_send_rtcp(es_rtc_session_t *s, uint8_t *buf, size_t len, size_t cap)
{
    return send_protected(s, buf, len, cap, true);
}

void es_rtc_session_close(es_rtc_session_t *s, const char *reason)
{
    if (ended(s)) return;
    if (s->dtls_started && (s->dtls_pair >= 0 || s->selected >= 0)) {
        es_dtls_close(s->dtls);
        flush_dtls(s);
    }
    set_state(s, ES_RTC_SESSION_CLOSED, 0, reason && *reason ? reason : "closed locally");
}

int es_rtc_session_restart_ice(es_rtc_session_t *s, const char *local_ufrag,
                               const char *local_pwd, const char *remote_ufrag,
                               const char *remote_pwd, uint64_t now)
{
    es_ice_t *ice = ice_new(local_ufrag, local_pwd, remote_ufrag, remote_pwd,
                            s->prm.ice_controlling);
    if (!ice) return ES_EINVAL;
    es_ice_free(s->ice); /* its outstanding transactions go with it */
    s->ice = ice;
    for (int i = 0; i < ES_RTC_SESSION_MAX_PAIRS; i++) {
        pair_t *p = &s->pairs[i];
        p->inflight = p->nominating = false;
        if (p->used && s->prm.ice_controlling) p->check = CHECK_WAITING;
    }
    /* A lite agent keeps media on its nominated pair until the peer nominates with the new
     * credentials; a full agent forgets its nomination and nominates again once a check
     * succeeds (until then media goes to the DTLS pair or its first succeeded pair). */
    if (s->prm.ice_controlling) s->nominated = -1;
    s->next_check_us = now;
    return 0;
}

es_rtc_session_state_t es_rtc_session_state(const es_rtc_session_t *s) { return s->state; }

const es_addr_pair_t *es_rtc_session_selected(const es_rtc_session_t *s, bool *nominated)
{
    if (nominated) *nominated = s->selected_nominated;
    return s->selected >= 0 ? &s->pairs[s->selected].addr : NULL;
}

bool es_rtc_session_pair_has_consent(const es_rtc_session_t *s, const es_addr_pair_t *addr,
                                     uint64_t now)
{
    int i = pair_find(s, addr);
    return i >= 0 && has_consent(s, &s->pairs[i], now);
}

es_rtc_session_stats_t es_rtc_session_stats(const es_rtc_session_t *s) { return s->stats; }

int es_rtc_session_srtp_profile(const es_rtc_session_t *s) { return s->profile; }
