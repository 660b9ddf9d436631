/* Admission of publishers and players, and the per-address table (include/estuary/admission.h). */
#include "estuary/admission.h"

#include "estuary/error.h"
#include "estuary/live.h"
#include "estuary/stream.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *es_protocol_name(es_protocol_t p)
{
    static const char *const names[] = {[ES_PROTO_WHIP] = "whip", [ES_PROTO_WHEP] = "whep",
                                        [ES_PROTO_RTMP] = "rtmp", [ES_PROTO_HTTP_FLV] = "http-flv",
                                        [ES_PROTO_HLS] = "hls",
                                        [ES_PROTO_WEBSOCKET] = "websocket",
                                        [ES_PROTO_RELAY] = "relay"};
    return (unsigned)p < sizeof names / sizeof names[0] && names[p] ? names[p] : "?";
}

const char *es_bearer_token(const char *a)
{
    if (!a || strncasecmp(a, "Bearer ", 7) != 0) return NULL;
    a += 7;
    while (*a == ' ') a++;
    return a;
}

static int refuse(es_admit_decision_t *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(es_admit_decision_t *d, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
    d->err = err;
    d->stream = NULL;
    d->hook = NULL;
    d->takeover = false;
    return err;
}

int es_admit_connection(const es_config_t *cfg, unsigned sessions, unsigned from_ip, char *why,
                        size_t why_len)
{
    if (sessions >= cfg->limits.max_sessions) {
        snprintf(why, why_len, "at capacity: limits.max_sessions is %u", cfg->limits.max_sessions);
        return ES_EBUSY;
    }
    if (cfg->limits.max_sessions_per_ip && from_ip >= cfg->limits.max_sessions_per_ip) {
        snprintf(why, why_len, "too many sessions from this address: limits.max_sessions_per_ip "
                 "is %u", cfg->limits.max_sessions_per_ip);
        return ES_ELIMIT;
    }
    return 0;
}

int es_admit(const es_registry_t *reg, const es_config_t *cfg, const es_admit_request_t *req,
             es_admit_decision_t *d)
{
    memset(d, 0, sizeof *d);
    const bool publish = req->role == ES_ADMIT_PUBLISH;
    if (!req->app || !req->stream || !es_registry_valid_name(req->app, ES_APP_NAME_MAX) ||
        !es_registry_valid_name(req->stream, ES_STREAM_NAME_MAX))
        return refuse(d, ES_EINVAL, "bad app or stream name '%.64s/%.128s': use 1-64/1-128 "
                      "letters, digits, '_', '-', '.'", req->app ? req->app : "",
                      req->stream ? req->stream : "");
    const es_app_config_t *ac = es_config_find_app(cfg, req->app);
    if (!ac) return refuse(d, ES_EACCES, "app '%s' is not configured", req->app);
    const bool relay = req->protocol == ES_PROTO_RELAY; /* the operator's: no token, no limits */
    const char *expected = relay ? NULL : publish ? ac->publish_token : ac->play_token;
    if (expected && *expected) {
        if (!req->token || !*req->token)
            return refuse(d, ES_EAUTH, "app %s needs a %s token (Authorization: Bearer TOKEN, or "
                          "?token=TOKEN)", req->app, publish ? "publish" : "play");
        if (!es_config_token_equal(expected, req->token))
            return refuse(d, ES_EACCES, "wrong %s token for app %s", publish ? "publish" : "play",
                          req->app);
    }
    unsigned own = req->counted ? 1 : 0;
    char why[160];
    /* HLS requests are not sessions: nothing to count */
    int rc = req->protocol == ES_PROTO_HLS || relay ? 0 : es_admit_connection(cfg, req->sessions - (req->sessions >= own ? own : 0),
                                 req->sessions_from_ip - (req->sessions_from_ip >= own ? own : 0),
                                 why, sizeof why);
    if (rc != 0) return refuse(d, rc, "%s", why);
    d->app = ac;
    es_stream_t *st = es_registry_find(reg, req->app, req->stream);
    if (publish) {
        if (st && st->source != ES_SOURCE_NONE) {
            uint64_t silent = es_live_source_silent_us(st, req->now_us);
            if (!ac->publisher_takeover || silent < ES_TAKEOVER_SILENCE_US)
                return refuse(d, ES_EEXIST, "stream %s is already being published (over %s)%s",
                              st->key, st->source == ES_SOURCE_RTMP ? "RTMP" : "WebRTC",
                              ac->publisher_takeover ? "" : "; apps.<app>.publisher_takeover is off");
            d->takeover = true;
        }
    } else if ((req->protocol == ES_PROTO_WHEP || req->protocol == ES_PROTO_WEBSOCKET || relay) &&
               (!st || !st->media || !es_media_stream_has_source(st->media))) {
        if (st && st->source == ES_SOURCE_RTMP)
            return refuse(d, ES_ENOENT, "stream %s is published over RTMP but not available to "
                          "WebRTC players: %s", st->key, !ac->rtmp_to_rtc
                          ? "apps.<app>.rtmp_to_rtc is off"
                          : "no H.264 video or AAC audio has arrived yet");
        return refuse(d, ES_ENOENT, "stream %s/%s is not being published", req->app, req->stream);
    }
    d->stream = st;
    const char *hook = relay ? NULL : publish ? ac->on_publish : ac->on_play;
    d->hook = hook && *hook ? hook : NULL;
    return 0;
}

/* --- per-address counts: a chained hash of addresses --- */

#define BUCKETS 4096

typedef struct client {
    char ip[48];
    unsigned sessions;
    double tokens;          /* offer bucket */
    uint64_t refilled_us;
    struct client *next;
} client_t;

struct es_clients {
    client_t *buckets[BUCKETS];
    size_t count;
};

es_clients_t *es_clients_new(void) { return calloc(1, sizeof(es_clients_t)); }

void es_clients_free(es_clients_t *t)
{
    if (!t) return;
    for (size_t i = 0; i < BUCKETS; i++) {
        client_t *c = t->buckets[i];
        while (c) {
            client_t *n = c->next;
            free(c);
            c = n;
        }
    }
    free(t);
}

/* The address of "ip:port", "[ipv6]:port" or a bare address, into out (len bytes). */
static void raw_ip(const char *remote, char *out, size_t len)
{
    const char *start = remote, *end;
    if (*remote == '[') {
        start = remote + 1;
        end = strchr(start, ']');
    } else {
        end = strrchr(remote, ':');
        /* a bare IPv6 address has several colons and no port */
        if (end && strchr(remote, ':') != end) end = NULL;
    }
    size_t n = end ? (size_t)(end - start) : strlen(start);
    if (n >= len) n = len - 1;
    memcpy(out, start, n);
    out[n] = '\0';
}

void es_client_ip(const char *remote, char *out, size_t len)
{
    if (!len) return;
    out[0] = '\0';
    if (!remote) return;
    char ip[INET6_ADDRSTRLEN + 4]; /* and "/64" */
    raw_ip(remote, ip, INET6_ADDRSTRLEN);
    /* One client, one key: an IPv4 address mapped into IPv6 (a dual-stack listener) is the
     * IPv4 address, and IPv6 clients are keyed by their /64 (one subscriber's prefix), so a
     * host cannot escape the limits by taking another address of its own network. */
    struct in6_addr a6;
    if (inet_pton(AF_INET6, ip, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            inet_ntop(AF_INET, &a6.s6_addr[12], ip, sizeof ip);
        } else {
            memset(&a6.s6_addr[8], 0, 8);
            char p[INET6_ADDRSTRLEN];
            if (inet_ntop(AF_INET6, &a6, p, sizeof p)) snprintf(ip, sizeof ip, "%s/64", p);
        }
    }
    snprintf(out, len, "%s", ip);
}

bool es_client_loopback(const char *remote)
{
    if (!remote) return false;
    char raw[INET6_ADDRSTRLEN];
    raw_ip(remote, raw, sizeof raw);
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, raw, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, raw, &a6) != 1) return false;
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

static uint32_t hash_ip(const char *ip)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *ip; ip++) h = (h ^ (uint8_t)*ip) * 16777619u;
    return h % BUCKETS;
}

static client_t *find(const es_clients_t *t, const char *ip)
{
    for (client_t *c = t->buckets[hash_ip(ip)]; c; c = c->next)
        if (!strcmp(c->ip, ip)) return c;
    return NULL;
}

/* Adds an address unless it is there. For a rate-only entry (!session) the table is capped at
 * ES_CLIENTS_MAX; sessions are always counted (max_sessions bounds them). */
static client_t *find_or_add(es_clients_t *t, const char *ip, uint32_t per_s, uint64_t now_us,
                             bool session)
{
    client_t *c = find(t, ip);
    if (c || (!session && t->count >= ES_CLIENTS_MAX)) return c;
    if (!(c = calloc(1, sizeof *c))) return NULL;
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    c->tokens = 2.0 * per_s;
    c->refilled_us = now_us;
    uint32_t b = hash_ip(ip);
    c->next = t->buckets[b];
    t->buckets[b] = c;
    t->count++;
    return c;
}

unsigned es_clients_sessions(const es_clients_t *t, const char *ip)
{
    const client_t *c = t && ip ? find(t, ip) : NULL;
    return c ? c->sessions : 0;
}

int es_clients_add(es_clients_t *t, const char *ip)
{
    if (!t || !ip) return 0;
    client_t *c = find_or_add(t, ip, 0, 0, true);
    if (!c) return ES_ENOMEM;
    c->sessions++;
    return 0;
}

void es_clients_remove(es_clients_t *t, const char *ip)
{
    client_t *c = t && ip ? find(t, ip) : NULL;
    if (c && c->sessions) c->sessions--;
}

static void refill(client_t *c, uint32_t per_s, uint64_t now_us)
{
    if (now_us > c->refilled_us) {
        c->tokens += (double)(now_us - c->refilled_us) * per_s / 1e6;
        if (c->tokens > 2.0 * per_s) c->tokens = 2.0 * per_s;
    }
    c->refilled_us = now_us;
}

bool es_clients_offer(es_clients_t *t, const char *ip, uint32_t per_s, uint64_t now_us)
{
    if (!per_s || !t || !ip) return true;
    client_t *c = find(t, ip);
    if (!c) {
        if (!(c = find_or_add(t, ip, per_s, now_us, false))) return true; /* full: not limited */
    } else {
        refill(c, per_s, now_us);
    }
    if (c->tokens < 1.0) return false;
    c->tokens -= 1.0;
    return true;
}

size_t es_clients_expire(es_clients_t *t, uint32_t per_s, uint64_t now_us)
{
    if (!t) return 0;
    for (size_t i = 0; i < BUCKETS; i++) {
        client_t **pp = &t->buckets[i];
        while (*pp) {
            client_t *c = *pp;
            if (per_s) refill(c, per_s, now_us);
            if (!c->sessions && (!per_s || c->tokens >= 2.0 * per_s)) {
                *pp = c->next;
                free(c);
                t->count--;
            } else {
                pp = &c->next;
            }
        }
    }
    return t->count;
}
