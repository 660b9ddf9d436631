/* HTTP-FLV players (src/http/http_flv.c): GET /{app}/{stream}.flv streams the FLV file format
 * (header, then every tag of the stream's frame hub) with chunked transfer encoding. The lws
 * glue in server.c asks for bytes when the socket is writable; a player that stops reading
 * leaves its backlog in its bounded hub queue and is closed when it stalls. */
#ifndef ESTUARY_HTTP_FLV_H
#define ESTUARY_HTTP_FLV_H

#include "estuary/registry.h"
#include "estuary/server.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct es_http_flv es_http_flv_t;

/* es_http_flv_path: true when path is "/{app}/{stream}.flv" with valid names, copied into app
 * and stream (NUL-terminated, sized ES_APP_NAME_MAX + 1 and ES_STREAM_NAME_MAX + 1). */
bool es_http_flv_path(const char *path, char *app, char *stream);

/* es_http_flv_open: a player of app/stream, admitted by es_admit (include/estuary/admission.h:
 * token is the ?token= or Bearer value, or NULL) and counted as a session of `remote`
 * ("ip:port"). wake(user) is called when bytes become available. Returns the player, or NULL
 * with the ES_E* refusal in *err (es_http_status_of maps it) and the reason. conn_id and remote
 * are copied for logs. */
es_http_flv_t *es_http_flv_open(es_server_t *srv, const char *app, const char *stream,
                                const char *token, const char *conn_id, const char *remote,
                                void (*wake)(void *user), void *user, int *err, char *reason,
                                size_t reason_len);

/* es_http_flv_read: up to cap bytes of the FLV byte stream into out (the FLV header first,
 * then tags with rebased timestamps). Returns the count (0: nothing waiting now), or
 * ES_ETIMEDOUT when the player stalled and must be closed. */
int es_http_flv_read(es_http_flv_t *f, uint8_t *out, size_t cap);

/* es_http_flv_stalled: true once the player stalled (rtmp.player_stall_ms): close it. */
bool es_http_flv_stalled(const es_http_flv_t *f);

/* es_http_flv_waiting: true while the player has had no tag and its stream no publisher (it
 * is closed after limits.player_wait_ms). */
bool es_http_flv_waiting(const es_http_flv_t *f);
/* es_http_flv_close: unsubscribes, logs the totals and frees. `why` is logged. NULL-safe. */
void es_http_flv_close(es_http_flv_t *f, const char *why);

#endif
