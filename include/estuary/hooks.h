/* HTTP callbacks of admission (src/app/hooks.c), as SRS's http_hooks and MediaMTX's HTTP
 * authentication: per app, on_publish and on_play decide whether a client is admitted, and
 * on_unpublish and on_stop are told when it leaves. Each call is a POST of a JSON body
 *   {"action": "on_publish", "protocol": "whip", "app": "live", "stream": "cam",
 *    "client_ip": "192.0.2.7", "client": "192.0.2.7:50412", "session_id": "…",
 *    "query": {"token": "…", …}}
 * made with libcurl's multi interface on the daemon's libuv loop, so a slow hook delays only
 * the client it decides about, never media. A 2xx answer admits; any other status, a transport
 * error or no answer within the timeout refuses, with the hook's reason: the answer's JSON
 * "reason" (or "error") string, else its first line of text, else "HTTP <status>". */
#ifndef ESTUARY_HOOKS_H
#define ESTUARY_HOOKS_H

#include "estuary/admission.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ES_HOOKS_MAX_PENDING 1024 /* calls in flight at once; past it a new one refuses */
#define ES_HOOKS_MAX_PENDING_PER_IP 16 /* ... from one client address (es_client_ip); past it
                                          es_admit_begin refuses ES_ELIMIT */
#define ES_HOOK_REASON_MAX 256
#define ES_EDGE_WAIT_MS 5000 /* a WebRTC player of an edge waits this long for the origin */

typedef struct es_hooks es_hooks_t;
typedef struct es_hook_call es_hook_call_t;

/* What a hook is told. Strings borrowed for the call; NULL or "" fields are sent as "". */
typedef struct es_hook_event {
    const char *action;      /* "on_publish", "on_play", "on_unpublish", "on_stop" */
    es_protocol_t protocol;
    const char *app, *stream;
    const char *client;      /* "ip:port" */
    const char *session_id;
    const char *query;       /* "a=1&b=2" (not percent-decoded further), or NULL */
} es_hook_event_t;

/* The outcome: err 0 (admitted) or ES_EACCES (refused: a non-2xx answer, no answer within the
 * timeout, no connection, a bad URL), with the reason in words (borrowed for the call). */
typedef void (*es_hook_done_fn)(void *user, int err, const char *reason);

/* es_hooks_new: hooks on `loop`. NULL when out of memory or libcurl fails to start. */
es_hooks_t *es_hooks_new(uv_loop_t *loop);

/* es_hooks_stop: cancels every call (their done callbacks are not called) and closes the libuv
 * handles; free with es_hooks_free once the loop has run. Idempotent, NULL-safe. */
void es_hooks_stop(es_hooks_t *h);
void es_hooks_free(es_hooks_t *h);

/* es_hooks_ask: POSTs `ev` to url and calls done once with the outcome, always later from the
 * loop (never inside this call). timeout_ms bounds the whole exchange. Returns the call (valid
 * until done is called or es_hook_cancel), or NULL when out of memory or ES_HOOKS_MAX_PENDING
 * calls are pending (the caller refuses its client). */
es_hook_call_t *es_hooks_ask(es_hooks_t *h, const char *url, const es_hook_event_t *ev,
                             uint32_t timeout_ms, es_hook_done_fn done, void *user);

/* es_hook_cancel: forgets a pending call: done is not called. NULL-safe. */
void es_hook_cancel(es_hook_call_t *call);

/* es_hooks_tell: POSTs `ev` to url and ignores the answer (on_unpublish, on_stop); failures are
 * logged at debug. NULL-safe on h. */
void es_hooks_tell(es_hooks_t *h, const char *url, const es_hook_event_t *ev, uint32_t timeout_ms);

/* es_hooks_pending: calls in flight; es_hooks_pending_from: those deciding about clients of
 * the address key `ip` (es_client_ip). */
size_t es_hooks_pending(const es_hooks_t *h);
size_t es_hooks_pending_from(const es_hooks_t *h, const char *ip);

/* --- admission with hooks: what every protocol calls --- */

struct es_server;

/* es_admit_begin: admission of a client of any protocol: es_admit with the server's registry,
 * configuration and per-address counts (req->sessions and req->sessions_from_ip are filled in
 * here from `client`, "ip:port"), then the app's hook when it has one. Returns d->err:
 *   - non-zero: refused now (logged here); map d->err and d->reason to the wire;
 *   - 0 with *call NULL: admitted now;
 *   - 0 with *call set: the hook decides; done(user, err, reason) follows from the loop (err 0:
 *     admitted; else refused with the reason, to be logged with es_admit_log_refusal). Cancel
 *     with es_hook_cancel when the client leaves first.
 * One address may have ES_HOOKS_MAX_PENDING_PER_IP admissions waiting for hooks at once.
 * An admitted client still attaches through es_admit at the moment it takes the stream (the
 * stream may have changed while a hook was asked). session_id and query go to the hook.
 * On an edge (apps.<app>.origin, include/estuary/relay.h) a player of a stream not published
 * here starts the pull from the origin (es_relays_edge_pull); a WHEP or WebSocket player, which
 * needs the stream's tracks, then waits for them through *call as for a hook (at most
 * ES_EDGE_WAIT_MS, then ES_ENOENT), and the app's on_play hook is asked after that. */
int es_admit_begin(struct es_server *srv, const es_admit_request_t *req, const char *client,
                   const char *session_id, const char *query, es_admit_decision_t *d,
                   es_hook_done_fn done, void *user, es_hook_call_t **call);

/* es_admit_now: es_admit with the server's registry, configuration and counts (req->sessions
 * and req->sessions_from_ip filled in from `client`, "ip:port"), no hook: what a protocol calls
 * at the moment it attaches a client admitted before. Returns d->err; refusals are not logged
 * here (es_admit_log_refusal). */
int es_admit_now(struct es_server *srv, const es_admit_request_t *req, const char *client,
                 es_admit_decision_t *d);

/* es_admit_log_refusal: the one log line of a refusal, the same for every protocol:
 *   INFO admission: [peer remote stream] rtmp publish refused (not authorized): REASON
 * Rate-limited like every log line. */
void es_admit_log_refusal(es_protocol_t p, es_admit_role_t role, const char *app,
                          const char *stream, const char *client, const char *session_id,
                          int err, const char *reason);

/* es_admit_end: a publisher or player admitted earlier left: tells the app's on_unpublish or
 * on_stop hook, when set. */
void es_admit_end(struct es_server *srv, es_protocol_t p, es_admit_role_t role, const char *app,
                  const char *stream, const char *client, const char *session_id);

#endif
