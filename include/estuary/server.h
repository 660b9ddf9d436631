/* The daemon's state: one loop, the running configuration, the stream registry and the HTTP
 * server. main.c owns it; handlers reach it through the `user` pointer of their routes.
 *
 * Components read `cfg` at the moment of use and never keep pointers into it across callbacks:
 * SIGHUP swaps it for a new one (es_server_reload). */
#ifndef ESTUARY_SERVER_H
#define ESTUARY_SERVER_H

#include "estuary/config.h"
#include "estuary/registry.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct es_http_server es_http_server_t;
struct es_rtc_server;
struct es_rtmp_server;
struct es_clients;
struct es_hooks;
struct es_hls_writer;

typedef struct es_server {
    uv_loop_t *loop;
    es_config_t *cfg;          /* running configuration, owned */
    char *config_path;         /* -c FILE, owned; NULL when running on the embedded default */
    es_registry_t *registry;
    es_http_server_t *http;
    struct es_rtc_server *rtc;  /* WebRTC sessions and the UDP port */
    struct es_rtmp_server *rtmp; /* RTMP connections and the TCP port; frame-hub timers */
    uint64_t started_us;       /* monotonic µs at start */
    uint64_t started_wall_us;  /* wall-clock µs at start */
    unsigned sessions;         /* WebRTC, RTMP and HTTP-FLV sessions now (limits.max_sessions) */
    struct es_clients *clients; /* sessions and offer rates per client address */
    struct es_hooks *hooks;    /* admission's HTTP callbacks */
    struct es_relays *relays;  /* server-to-server relays (include/estuary/relay.h) */
    struct es_balancer *balancer; /* WHIP/WHEP 307 balancing (include/estuary/balancer.h) */
    struct es_hls_writer *hls_writer; /* HLS files written off the loop thread */
    uv_timer_t streams_timer;  /* stream maintenance (es_live_tick), whatever protocols run */
    unsigned streams_ticks;
    bool stopping;
} es_server_t;

/* es_server_session_open / es_server_session_close: a session (WebRTC, RTMP connection,
 * HTTP-FLV player) from `client` ("ip:port") began / ended: counted in `sessions` and per
 * address in `clients` (limits.max_sessions, limits.max_sessions_per_ip). */
void es_server_session_open(es_server_t *srv, const char *client);
void es_server_session_close(es_server_t *srv, const char *client);

/* es_http_server_start: listens on cfg->http.listen (and https when enabled) with libwebsockets
 * attached to srv->loop. Returns 0, or ES_EIO after logging why (bind failure with the key and
 * errno, unreadable certificate, lws failure). *out is set whenever memory was allocated, on
 * failure too: free it with es_http_server_free once the loop has run dry. */
int es_http_server_start(es_server_t *srv, es_http_server_t **out);

/* es_http_server_stop: stops accepting and closes every connection; lws finishes closing its
 * libuv handles as the loop keeps running. Idempotent, NULL-safe. */
void es_http_server_stop(es_http_server_t *http);

/* es_http_server_free: after the loop has run dry (uv_run returned), completes the lws teardown
 * and frees the server. NULL-safe. */
void es_http_server_free(es_http_server_t *http);

/* es_http_server_apply_config: takes up the live keys of srv->cfg after a reload (today: the
 * log level libwebsockets logs at). NULL-safe. */
void es_http_server_apply_config(es_http_server_t *http);

/* es_http_server_port: the port the plain-HTTP listener is bound to (0 when off). */
int es_http_server_port(const es_http_server_t *http);

/* es_http_server_ice_tcp_ports: the HTTP and HTTPS ports (host byte order) that also take ICE-TCP
 * (webrtc.tcp_on_http), 0 for one that does not or is off. http may be NULL. */
void es_http_server_ice_tcp_ports(const es_http_server_t *http, int *http_port, int *https_port);

/* es_http_server_web_root: the static-file folder in use (resolved at start), or NULL. */
const char *es_http_server_web_root(const es_http_server_t *http);

/* es_api_routes: the REST API and page routes, with their count in *n. Static storage. */
const struct es_http_route *es_api_routes(size_t *n);

#endif
