/* Server-to-server relays (src/app/relay.c): Estuary as a WHIP and WHEP *client* of another
 * server. A push sends a local stream to a remote WHIP endpoint (the relay is a player of the
 * local stream); a pull plays a remote WHEP endpoint and is the local stream's source, so every
 * local output serves it. Each relay offers (RFC 9725 §4.2, RFC 9725's WHEP counterpart), as a
 * full controlling ICE agent (RFC 8445 §6.1.1) and DTLS actpass, from a UDP port of its own
 * (es_rtc_port_open in include/estuary/rtc_transport.h says why); its HTTP goes through libcurl's multi interface on the loop (include/estuary/http_client.h):
 * Bearer token, 307/308 followed, DELETE of the resource when the relay stops or its session
 * ends. A remote that refuses with 4xx ends the relay (state "failed", with the remote's reason);
 * anything else (5xx, no answer, the session failing or closing, the local stream missing) is
 * retried with backoff: 1 s, doubling to 30 s, back to 1 s after a session that connected.
 *
 * Relays come from the API (POST /api/v1/relays, WCS's /rest-api/pull/... endpoints), from the
 * configuration's `relays:` list (reconciled on SIGHUP), and from edges: an app with an origin
 * pulls a stream a player asks for and stops once it has had no player for origin_idle_ms. */
#ifndef ESTUARY_RELAY_H
#define ESTUARY_RELAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct es_server;
typedef struct es_relays es_relays_t;

#define ES_RELAY_ID_LEN 16      /* hex characters of a relay id */
#define ES_RELAYS_MAX 1024      /* relays at once */
#define ES_RELAY_BACKOFF_MIN_MS 1000
#define ES_RELAY_BACKOFF_MAX_MS 30000
#define ES_EDGE_PULLS_PER_IP 32      /* edge pulls the players of one address (a downstream edge
                                        too) may have begun */
#define ES_EDGE_FAILED_KEEP_MS 5000  /* an edge pull the origin refused answers for this long */

typedef enum { ES_RELAY_PUSH = 0, ES_RELAY_PULL } es_relay_dir_t;

/* Where a relay comes from: what may change or stop it. */
typedef enum {
    ES_RELAY_FROM_API = 0,  /* the API: stopped by the API */
    ES_RELAY_FROM_CONFIG,   /* the relays: list: follows the configuration on SIGHUP */
    ES_RELAY_FROM_EDGE,     /* an edge's pull on demand: stops when its players are gone */
} es_relay_origin_t;

/* What to relay. Strings are copied. */
typedef struct es_relay_spec {
    es_relay_dir_t dir;
    const char *local;        /* the local stream, "app/stream" */
    const char *url;          /* the remote's full WHIP (push) or WHEP (pull) endpoint URL */
    const char *token;        /* Bearer token for the remote, or NULL */
    const char *uri;          /* as the client gave it (WCS "uri"), NULL: url */
    const char *remote_name;  /* as the client gave it (WCS "remoteStreamName"), or NULL */
    es_relay_origin_t origin;
    /* Optional: told once how the first offer went: err 0 (the remote answered 2xx and its
     * answer was taken), else the relay's last_error as reason and the remote's HTTP status
     * (0 when none came). From the loop, never inside es_relays_add. */
    void (*first)(void *user, int err, long status, const char *reason);
    void *first_user;
} es_relay_spec_t;

/* es_relays_new: the relay table of srv (its loop, srv->rtc, an HTTP client of its own). NULL
 * when out of memory. */
es_relays_t *es_relays_new(struct es_server *srv);

/* es_relays_stop: stops every relay (DELETE sent to each remote resource, best effort, not
 * waited for beyond the loop's run) and closes the handles; es_relays_free after the loop ran.
 * Both NULL-safe. */
void es_relays_stop(es_relays_t *r);
void es_relays_free(es_relays_t *r);

/* es_relay_url: the full endpoint URL for a WCS-style request: `uri` is either a server base
 * URL ("http(s)://host[:port]" with no path or "/"), then Estuary's layout is used:
 * {uri}/whip/{app}/{stream} (push) or {uri}/whep/{app}/{stream} (pull), with remote_name
 * "app/stream" (or "stream": the local app); or a full endpoint URL, used as it is (remote_name
 * may then be NULL). Writes out (cap bytes). Returns 0, or ES_EINVAL with the reason in err. */
int es_relay_url(es_relay_dir_t dir, const char *uri, const char *local, const char *remote_name,
                 char *out, size_t cap, char *err, size_t err_len);

/* es_relays_add: starts a relay (its first offer goes out from the loop). Returns 0 with the
 * id in id_out (ES_RELAY_ID_LEN + 1 bytes), or: ES_EINVAL (bad local name or URL, err says
 * why), ES_EEXIST (a relay with this direction, local stream and URL exists; its id in id_out),
 * ES_ENOENT (push: the local stream is not published), ES_EBUSY (ES_RELAYS_MAX, or WebRTC off),
 * ES_ENOMEM. */
int es_relays_add(es_relays_t *r, const es_relay_spec_t *spec, char *id_out, char *err,
                  size_t err_len);

/* es_relays_forget_first: the spec's `first` callback of relay id is not to be called (its
 * owner goes away). NULL-safe; unknown ids are ignored. */
void es_relays_forget_first(es_relays_t *r, const char *id);

/* es_relays_remove: stops relay id: its session ends and the remote resource is deleted.
 * Returns 0 or ES_ENOENT. */
int es_relays_remove(es_relays_t *r, const char *id);

/* es_relays_json: every relay, Estuary's shape: [{id, direction, stream, url, origin, state,
 * remote_status, remote_resource, session_id, session: {...the session's API entry} | null,
 * reconnects, last_error, ...}]. es_relay_json: one, NULL when unknown. New references. */
json_t *es_relays_json(es_relays_t *r);
json_t *es_relay_json(es_relays_t *r, const char *id);

/* es_relays_wcs_json: every relay in WCS's /rest-api/pull/find_all shape: [{localMediaSessionId,
 * remoteMediaSessionId, localStreamName, remoteStreamName, uri, status}], status one of "NEW",
 * "PENDING", "PUBLISHING" (a push connected), "PLAYING" (a pull connected), "RECONNECTING",
 * "FAILED". New reference. */
json_t *es_relays_wcs_json(es_relays_t *r);

/* es_relays_apply_config: makes the configuration's relays run: starts the new ones, stops the
 * removed ones, restarts the changed ones (URL or token); API and edge relays are left alone.
 * Called at start and after SIGHUP. */
void es_relays_apply_config(es_relays_t *r);

/* es_relays_edge_pull: a player asks for app/stream and app has an origin
 * (apps.<app>.origin): starts the pull from the origin's WHEP endpoint unless one runs (only
 * when the stream has no source), and restarts the pull's idle time (origin_idle_ms, counted
 * while the stream has no RTMP, HTTP-FLV or WebRTC player, and not before ES_EDGE_WAIT_MS after
 * the pull began; an HLS player's requests restart it too). ip (es_client_ip of the player, or
 * NULL) starts at most ES_EDGE_PULLS_PER_IP pulls at once; a pull the origin refused is kept
 * (failed) ES_EDGE_FAILED_KEEP_MS, and players of that name are refused meanwhile. Returns true
 * when a pull runs (started now or before) and has not failed. */
bool es_relays_edge_pull(es_relays_t *r, const char *app, const char *stream, const char *ip);

/* es_relays_pulling: true while a pull into app/stream runs and has not failed (the edge's
 * waiting players keep waiting). */
bool es_relays_pulling(es_relays_t *r, const char *app, const char *stream);

/* es_relays_count: relays running now. */
size_t es_relays_count(const es_relays_t *r);

#endif
