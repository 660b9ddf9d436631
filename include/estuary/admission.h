/* Admission of a publisher or a player to a stream (src/media/admission.c): the one place that
 * decides whether app/stream may be published or played now, whatever the protocol (WHIP, WHEP,
 * RTMP, HTTP-FLV, HLS, and later WebSocket and relays): valid names, a configured app, the app's
 * token, the session limits (all clients and per client address), one publisher per stream (or
 * the takeover of a silent one), something to play. The same configuration gives the same
 * error and reason over every protocol; each protocol only maps the ES_E* code to its wire form
 * (HTTP: 400, 401, 403, 404, 409, 429, 503; RTMP: the onStatus codes). The asynchronous part,
 * the app's on_publish/on_play HTTP callbacks, is include/estuary/hooks.h: es_admit names the
 * hook to ask in the decision.
 *
 * Also here: the per-address table (es_clients_t) of sessions and WHIP/WHEP offer rates that
 * the limits are counted in. Sans-IO: times are given by the caller. */
#ifndef ESTUARY_ADMISSION_H
#define ESTUARY_ADMISSION_H

#include "estuary/config.h"
#include "estuary/registry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { ES_ADMIT_PUBLISH = 0, ES_ADMIT_PLAY } es_admit_role_t;

/* The protocol a client uses: what "something to play" means, and the hooks' "protocol". */
typedef enum {
    ES_PROTO_WHIP = 0,
    ES_PROTO_WHEP,
    ES_PROTO_RTMP,
    ES_PROTO_HTTP_FLV,
    ES_PROTO_HLS,
    ES_PROTO_WEBSOCKET, /* WebRTC signaled over a WebSocket (publish or play) */
    ES_PROTO_RELAY,     /* a server-to-server relay (include/estuary/relay.h): the stream's source
                           (a pull) or a player (a push), started by the operator through the API
                           or the configuration: no token, no hook, no session limits */
} es_protocol_t;

/* es_protocol_name: "whip", "whep", "rtmp", "http-flv", "hls", "websocket", "relay". Static
 * storage. */
const char *es_protocol_name(es_protocol_t p);

#define ES_ADMIT_REASON_MAX 320
#define ES_TAKEOVER_SILENCE_US 2000000u /* a publisher silent this long may be taken over */

typedef struct es_admit_request {
    const char *app, *stream;
    es_admit_role_t role;
    es_protocol_t protocol;
    const char *token;         /* the token the client presented (Bearer or ?token=); NULL or ""
                                  when none */
    unsigned sessions;         /* sessions open now, all clients (limits.max_sessions) */
    unsigned sessions_from_ip; /* sessions open now from this client's address
                                  (limits.max_sessions_per_ip) */
    bool counted;              /* the client's own session is already in both counts (an
                                  HTTP-FLV or RTMP connection counted at accept) */
    uint64_t now_us;           /* monotonic µs, for the takeover of a silent publisher */
} es_admit_request_t;

typedef struct es_admit_decision {
    int err;            /* 0 admitted, or: ES_EINVAL bad name; ES_EACCES app not configured or
                           wrong token; ES_EAUTH token required and missing; ES_EBUSY
                           limits.max_sessions; ES_ELIMIT limits.max_sessions_per_ip; ES_EEXIST
                           a publisher is there (and may not be taken over); ES_ENOENT nothing to
                           play (WHEP, WebSocket: not published, or not to WebRTC players) */
    char reason[ES_ADMIT_REASON_MAX]; /* why, for the client and the log; "" when admitted */
    es_stream_t *stream;                /* borrowed; NULL for a publisher of a new stream */
    const es_app_config_t *app;         /* borrowed from the configuration; NULL when refused
                                           before the app was found */
    bool takeover;      /* publish: the current publisher is silent and must be ended first
                           (es_live_source_kick) */
    const char *hook;   /* the app's on_publish/on_play URL to ask before going ahead (borrowed
                           from the configuration), or NULL */
} es_admit_decision_t;

/* es_admit: may this request go ahead now? Fills *d (see es_admit_decision_t) and returns d->err.
 * Tokens are compared in constant time. A publisher of a stream that has one is refused
 * ES_EEXIST unless apps.<app>.publisher_takeover is on, the new one's credentials are valid and
 * the current one has sent no media for ES_TAKEOVER_SILENCE_US: then d->takeover. */
int es_admit(const es_registry_t *reg, const es_config_t *cfg, const es_admit_request_t *req,
             es_admit_decision_t *d);

/* es_admit_connection: may a new RTMP or HTTP connection from an address with `from_ip`
 * sessions go on, with `sessions` open in all? 0, ES_EBUSY or ES_ELIMIT with the reason. */
int es_admit_connection(const es_config_t *cfg, unsigned sessions, unsigned from_ip, char *why,
                        size_t why_len);

/* es_bearer_token: the token of an "Authorization: Bearer TOKEN" header value (borrowed from
 * it), or NULL when the header is empty or another scheme. */
const char *es_bearer_token(const char *authorization);

/* --- per-address counts --- */

#define ES_CLIENTS_MAX 65536 /* addresses tracked for their offer rate alone; past it a new
                                address's offers are not rate-limited (sessions are always
                                counted) */

typedef struct es_clients es_clients_t;

/* es_clients_new: an empty table; NULL when out of memory. es_clients_free is NULL-safe. */
es_clients_t *es_clients_new(void);
void es_clients_free(es_clients_t *t);

/* es_client_ip: the key of a client for the per-address limits, from "ip:port" or
 * "[ipv6]:port" into out (NUL-terminated, truncated to len): the IPv4 address (also for an
 * IPv4-mapped IPv6 one), or an IPv6 client's /64 ("2001:db8:1:2::/64"). */
void es_client_ip(const char *remote, char *out, size_t len);

/* es_client_loopback: true when "ip:port" is a loopback address (127.0.0.0/8, ::1, or
 * ::ffff:127.x.y.z). */
bool es_client_loopback(const char *remote);

/* es_clients_sessions: sessions open now from `ip`. */
unsigned es_clients_sessions(const es_clients_t *t, const char *ip);

/* es_clients_add / es_clients_remove: one session from `ip` began / ended. Returns 0 or
 * ES_ENOMEM (add). */
int es_clients_add(es_clients_t *t, const char *ip);
void es_clients_remove(es_clients_t *t, const char *ip);

/* es_clients_offer: one WHIP/WHEP offer from `ip` at now_us against a token bucket of `per_s`
 * offers a second with bursts of 2 * per_s (0: no limit). true when it may go on. */
bool es_clients_offer(es_clients_t *t, const char *ip, uint32_t per_s, uint64_t now_us);

/* es_clients_expire: forgets addresses with no session whose bucket is full again (call every
 * few seconds). Returns how many addresses remain. */
size_t es_clients_expire(es_clients_t *t, uint32_t per_s, uint64_t now_us);

#endif
