/* Shared pieces of the WHIP/WHEP benchmark clients (bench_rtc.h): sockets, our offer and its
 * answer (RFC 3264, RFC 8829 §5.2), session parameters and HTTP requests. */
#include "bench_rtc.h"

#include "estuary/error.h"
#include "estuary/random.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

uint64_t bench_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int bench_udp_open(const char *bind_ip, int rcvbuf, struct sockaddr_storage *local,
                   socklen_t *local_len, char *err, size_t err_len)
{
    memset(local, 0, sizeof *local);
    struct sockaddr_in *v4 = (struct sockaddr_in *)local;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)local;
    if (inet_pton(AF_INET, bind_ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        *local_len = sizeof *v4;
    } else if (inet_pton(AF_INET6, bind_ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        *local_len = sizeof *v6;
    } else {
        snprintf(err, err_len, "bad bind address '%s'", bind_ip);
        return -1;
    }
    int fd = socket(local->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return -1;
    }
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (bind(fd, (struct sockaddr *)local, *local_len) != 0 ||
        getsockname(fd, (struct sockaddr *)local, local_len) != 0) {
        snprintf(err, err_len, "bind %s: %s", bind_ip, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void bench_ice_credentials(char ufrag[9], char pwd[25])
{
    es_random_text(ufrag, 8, ALNUM);
    es_random_text(pwd, 24, ALNUM);
}

static void set_codec(es_sdp_codec_t *c, es_codec_t codec, uint8_t pt, const char *name,
                      uint32_t rate, uint8_t channels, const char *fmtp)
{
    memset(c, 0, sizeof *c);
    c->pt = pt;
    c->codec = codec;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->clock_rate = rate;
    c->channels = channels;
    snprintf(c->fmtp, sizeof c->fmtp, "%s", fmtp);
    c->apt = -1;
}

es_sdp_local_t *bench_offer_new(const bench_offer_spec_t *spec, const es_dtls_cert_t *cert,
                                const char *ufrag, const char *pwd, const struct sockaddr *local)
{
    es_sdp_offer_media_t om[2];
    memset(om, 0, sizeof om);
    char fmtp[160];
    snprintf(fmtp, sizeof fmtp,
             "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=%s", spec->h264_plid);
    for (int k = 0; k < 2; k++) {
        om[k].kind = k == 0 ? ES_MEDIA_AUDIO : ES_MEDIA_VIDEO;
        om[k].dir = spec->send ? ES_DIR_SENDONLY : ES_DIR_RECVONLY;
        om[k].caps.n_codecs = 1;
    }
    set_codec(&om[0].caps.codecs[0], ES_CODEC_OPUS, 111, "opus", 48000, 2,
              "minptime=10;useinbandfec=1");
    set_codec(&om[1].caps.codecs[0], ES_CODEC_H264, 102, "H264", 90000, 0, fmtp);
    es_sdp_codec_t *h = &om[1].caps.codecs[0];
    h->h264_packetization_mode = 1;
    h->h264_profile_level_id = (uint32_t)strtoul(spec->h264_plid, NULL, 16);
    h->h264_level_asymmetry = true;
    om[1].caps.nack = om[1].caps.pli = true; /* a browser's video: nack, nack pli */
    es_sdp_local_t *o = malloc(sizeof *o);
    if (!o) return NULL;
    if (es_sdp_offer_init(om, 2, o) != 0) {
        free(o);
        return NULL;
    }
    o->session_id = ((uint64_t)es_random32() << 20) ^ es_random32();
    snprintf(o->ice_ufrag, sizeof o->ice_ufrag, "%s", ufrag);
    snprintf(o->ice_pwd, sizeof o->ice_pwd, "%s", pwd);
    snprintf(o->fingerprint, sizeof o->fingerprint, "%s", es_dtls_cert_fingerprint(cert));
    snprintf(o->cname, sizeof o->cname, "bench-%s", ufrag);
    snprintf(o->msid_stream, sizeof o->msid_stream, "bench");
    char ip[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (local->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)local;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)local;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(o->candidates[0], sizeof o->candidates[0], "1 1 udp 2130706431 %s %d typ host", ip,
             port);
    o->n_candidates = 1;
    for (size_t i = 0; spec->send && i < 2; i++) o->media[i].ssrc = spec->ssrc[i];
    return o;
}

int bench_offer_write(es_sdp_local_t *offer, char *out, size_t cap)
{
    /* es_sdp_local_write writes actpass in an offer; written as an "answer" it writes
     * a=setup:active and nothing else differs. */
    offer->offer = false;
    offer->setup = ES_SETUP_ACTIVE;
    int n = es_sdp_local_write(offer, out, cap);
    offer->offer = true;
    return n;
}

/* The answer's UDP candidates of component 1 in our address family, best first. */
static void take_candidates(const es_sdp_t *ans, const struct sockaddr *local, socklen_t local_len,
                            bench_answer_t *out)
{
    out->n_cand = 0;
    for (size_t i = 0; i < ans->n_candidates; i++) {
        const es_sdp_candidate_t *c = &ans->candidates[i];
        if (c->component != 1 || strcmp(c->transport, "udp") || !c->port) continue;
        es_addr_pair_t p;
        memset(&p, 0, sizeof p);
        if (local->sa_family == AF_INET) {
            struct sockaddr_in *r = (struct sockaddr_in *)&p.remote;
            if (inet_pton(AF_INET, c->address, &r->sin_addr) != 1) continue;
            r->sin_family = AF_INET;
            r->sin_port = htons(c->port);
            p.remote_len = sizeof *r;
        } else {
            struct sockaddr_in6 *r = (struct sockaddr_in6 *)&p.remote;
            if (inet_pton(AF_INET6, c->address, &r->sin6_addr) != 1) continue;
            r->sin6_family = AF_INET6;
            r->sin6_port = htons(c->port);
            p.remote_len = sizeof *r;
        }
        memcpy(&p.local, local, local_len);
        p.transport = ES_ADDR_UDP;
        size_t k = out->n_cand < BENCH_MAX_CANDIDATES ? out->n_cand++ : BENCH_MAX_CANDIDATES;
        for (; k > 0 && out->cand_prio[k - 1] < c->priority; k--) {
            if (k < BENCH_MAX_CANDIDATES) {
                out->cand[k] = out->cand[k - 1];
                out->cand_prio[k] = out->cand_prio[k - 1];
            }
        }
        if (k < BENCH_MAX_CANDIDATES) {
            out->cand[k] = p;
            out->cand_prio[k] = c->priority;
        }
    }
}

int bench_answer_take(es_sdp_local_t *offer, const char *sdp, size_t len,
                      const struct sockaddr *local, socklen_t local_len, bench_answer_t *out,
                      char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    es_sdp_t *ans = malloc(sizeof *ans);
    if (!ans) {
        snprintf(err, err_len, "out of memory");
        return ES_ENOMEM;
    }
    int rc = es_sdp_parse(sdp, len, ans, err, err_len);
    if (rc == 0 && (rc = es_sdp_answer_apply(offer, ans, err, err_len)) >= 0) rc = 0;
    int t = rc == 0 ? es_sdp_local_transport(offer) : -1;
    if (rc == 0 && (t < 0 || (size_t)t >= ans->n_media)) {
        snprintf(err, err_len, "the answer accepts no section");
        rc = ES_EPROTO;
    }
    if (rc != 0) {
        free(ans);
        return rc;
    }
    const es_sdp_media_t *tm = &ans->media[t];
    snprintf(out->ufrag, sizeof out->ufrag, "%s", tm->ice_ufrag);
    snprintf(out->pwd, sizeof out->pwd, "%s", tm->ice_pwd);
    snprintf(out->fp_alg, sizeof out->fp_alg, "%s", tm->fingerprint_alg);
    memcpy(out->fp, tm->fingerprint, tm->fingerprint_len);
    out->fp_len = tm->fingerprint_len;
    /* RFC 5763 §5: passive makes us the client. */
    out->role = tm->setup == ES_SETUP_PASSIVE ? ES_DTLS_ROLE_CLIENT : ES_DTLS_ROLE_SERVER;
    for (size_t i = 0; i < offer->n_media && out->n_tracks < 2; i++) {
        const es_sdp_local_media_t *m = &offer->media[i];
        bench_track_t *tr = &out->tracks[out->n_tracks++];
        tr->kind = m->kind;
        snprintf(tr->mid, sizeof tr->mid, "%.16s", m->mid);
        if (m->rejected || !m->n_codecs || m->dir == ES_DIR_INACTIVE) continue;
        tr->pt = m->codecs[0].pt;
        tr->clock_rate = m->codecs[0].clock_rate;
        tr->nack = m->codecs[0].fb_nack;
        tr->remote_ssrc = ans->media[i].ssrc;
        for (size_t e = 0; e < m->n_extmaps; e++) {
            if (!strcmp(m->extmaps[e].uri, BENCH_EXT_AST)) tr->ast_id = m->extmaps[e].id;
            if (!strcmp(m->extmaps[e].uri, BENCH_EXT_MID)) tr->mid_id = m->extmaps[e].id;
        }
    }
    take_candidates(ans, local, local_len, out);
    free(ans);
    if (!out->n_cand) {
        snprintf(err, err_len, "the answer has no UDP candidate in our address family");
        return ES_EPROTO;
    }
    return 0;
}

es_rtc_session_params_t bench_session_params(const bench_answer_t *a, const char *ufrag,
                                             const char *pwd, const es_dtls_cert_t *cert,
                                             uint32_t connect_ms, uint64_t now_us)
{
    return (es_rtc_session_params_t){
        .local_ufrag = ufrag, .local_pwd = pwd, .remote_ufrag = a->ufrag, .remote_pwd = a->pwd,
        .ice_controlling = true, .cert = cert, .fingerprint_alg = a->fp_alg,
        .fingerprint = a->fp, .fingerprint_len = a->fp_len, .dtls_role = a->role,
        .connect_timeout_ms = connect_ms, .consent_timeout_ms = 30000, .now_us = now_us,
    };
}

/* --- HTTP --- */

static size_t on_body(char *ptr, size_t size, size_t n, void *user)
{
    bench_http_t *h = user;
    size_t add = size * n;
    if (h->len + add + 1 > 65536) return 0; /* an answer is a few KiB: fail the transfer */
    if (h->len + add + 1 > h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8192;
        while (cap < h->len + add + 1) cap *= 2;
        char *b = realloc(h->body, cap);
        if (!b) return 0;
        h->body = b;
        h->cap = cap;
    }
    memcpy(h->body + h->len, ptr, add);
    h->len += add;
    h->body[h->len] = '\0';
    return add;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *user)
{
    bench_http_t *h = user;
    size_t len = size * n;
    if (len > 9 && !strncasecmp(ptr, "location:", 9)) {
        size_t a = 9, b = len;
        while (a < b && (ptr[a] == ' ' || ptr[a] == '\t')) a++;
        while (b > a && (ptr[b - 1] == '\r' || ptr[b - 1] == '\n' || ptr[b - 1] == ' ')) b--;
        snprintf(h->location, sizeof h->location, "%.*s", (int)(b - a), ptr + a);
    }
    return len;
}

int bench_http_begin(bench_http_t *h, const char *url, const char *offer, const char *token,
                     long timeout_ms)
{
    memset(h, 0, sizeof *h);
    if (!(h->easy = curl_easy_init())) return ES_ENOMEM;
    struct curl_slist *l = NULL;
    if (offer) l = curl_slist_append(l, "Content-Type: application/sdp");
    l = curl_slist_append(l, "Expect:"); /* no 100-continue round trip */
    if (token && *token) {
        char auth[600];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        l = curl_slist_append(l, auth);
    }
    h->headers = l;
    CURL *e = h->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->error);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, h);
    if (offer) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(offer));
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, offer); /* the caller's text may go */
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    return l ? 0 : ES_ENOMEM;
}

void bench_http_end(bench_http_t *h)
{
    if (h->easy) curl_easy_cleanup(h->easy);
    curl_slist_free_all(h->headers);
    free(h->body);
    memset(h, 0, sizeof *h);
}

void bench_url_resolve(const char *base, const char *location, char *out, size_t cap)
{
    if (strstr(location, "://")) {
        snprintf(out, cap, "%s", location);
        return;
    }
    /* scheme://host[:port] of base, then the path */
    const char *s = strstr(base, "://");
    const char *p = s ? strchr(s + 3, '/') : NULL;
    int n = p ? (int)(p - base) : (int)strlen(base);
    snprintf(out, cap, "%.*s%s%s", n, base, location[0] == '/' ? "" : "/", location);
}
