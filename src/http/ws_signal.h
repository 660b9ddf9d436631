/* WebSocket signaling connections of the HTTP server (docs/websocket.md): one es_ws_conn_t per
 * upgraded connection on ws(s)://HOST/{app}/{stream}/webrtc[/publish], driven by the lws
 * callbacks of src/http/server.c; the WebRTC session itself is es_rtc_* (src/app/rtc_server.c).
 * Internal to src/http/. */
#ifndef ESTUARY_HTTP_WS_SIGNAL_H
#define ESTUARY_HTTP_WS_SIGNAL_H

#include "estuary/server.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct es_ws_hub es_ws_hub_t;
typedef struct es_ws_conn es_ws_conn_t;

/* es_ws_hub_new: the connections' table and their 250 ms timer on srv->loop. NULL when out of
 * memory. es_ws_hub_stop closes the timer (idempotent); es_ws_hub_free after the loop ran dry
 * (NULL-safe). */
es_ws_hub_t *es_ws_hub_new(es_server_t *srv);
void es_ws_hub_stop(es_ws_hub_t *hub);
void es_ws_hub_free(es_ws_hub_t *hub);

/* es_ws_open: a connection was upgraded (LWS_CALLBACK_ESTABLISHED; the request's headers are
 * still readable). conn_id and remote ("ip:port") name it in logs. Returns the connection (it
 * may already be closing with an error for the client), or NULL to drop it at once. */
es_ws_conn_t *es_ws_open(es_ws_hub_t *hub, struct lws *wsi, const char *conn_id,
                         const char *remote);

/* es_ws_receive: len bytes of a message (LWS_CALLBACK_RECEIVE). Returns 0, or -1 to close now. */
int es_ws_receive(es_ws_conn_t *c, const void *in, size_t len);

/* es_ws_pong: a PONG control frame arrived (the client is there). */
void es_ws_pong(es_ws_conn_t *c);

/* es_ws_close_sent: our close frame went out (the client's close that follows is its answer:
 * LWS_CALLBACK_WS_PEER_INITIATED_CLOSE returns non-zero then, so that lws does not send a
 * second close frame, RFC 6455 §5.5.1). */
bool es_ws_close_sent(const es_ws_conn_t *c);

/* es_ws_writeable: LWS_CALLBACK_SERVER_WRITEABLE. Returns 0, or -1 to close (after a close
 * reason was set). */
int es_ws_writeable(es_ws_conn_t *c);

/* es_ws_closed: the connection is gone (LWS_CALLBACK_CLOSED): ends its session at once and frees
 * c. NULL-safe. */
void es_ws_closed(es_ws_conn_t *c);

#endif
