/* RTMP server of the daemon (the I/O around include/estuary/rtmp_session.h): the TCP listener on
 * rtmp.listen, one session per connection, publishers feeding a stream's frame hub (and its
 * RTMP->WebRTC bridge), players fed from it with back-pressure, and the timer that runs
 * handshake/idle timeouts, stall detection of RTMP and HTTP-FLV players, and the bridges' RTCP. */
#ifndef ESTUARY_RTMP_SERVER_H
#define ESTUARY_RTMP_SERVER_H

#include "estuary/server.h"

#include <jansson.h>

typedef struct es_rtmp_server es_rtmp_server_t;

/* es_rtmp_server_start: listens on rtmp.listen (nothing when it is "") and starts the timer.
 * Returns 0, or ES_EIO after logging why (bind failure with the key and errno). *out is set
 * whenever memory was allocated (free with es_rtmp_server_free after the loop ran dry). */
int es_rtmp_server_start(es_server_t *srv, es_rtmp_server_t **out);

/* es_rtmp_server_stop: stops listening and closes every connection. Idempotent, NULL-safe. */
void es_rtmp_server_stop(es_rtmp_server_t *rs);

/* es_rtmp_server_free: NULL-safe; after es_rtmp_server_stop and a loop run. */
void es_rtmp_server_free(es_rtmp_server_t *rs);

/* es_rtmp_server_port: the bound TCP port, 0 when off. */
int es_rtmp_server_port(const es_rtmp_server_t *rs);

/* es_rtmp_server_apply_config: after SIGHUP, new frame-hub limits for existing streams. */
void es_rtmp_server_apply_config(es_rtmp_server_t *rs);

/* es_rtmp_sessions_json: every RTMP connection (id, remote, app/stream, role, bytes, state).
 * New reference. */
json_t *es_rtmp_sessions_json(const es_rtmp_server_t *rs);

/* es_rtmp_session_json_by_id: one RTMP connection by id ("r7"), or NULL. New reference. */
json_t *es_rtmp_session_json_by_id(const es_rtmp_server_t *rs, const char *id);

/* es_rtmp_kick: closes connection `id` (the API's DELETE), logging `why`. Returns 0 or
 * ES_ENOENT. */
int es_rtmp_kick(es_rtmp_server_t *rs, const char *id, const char *why);

#endif
