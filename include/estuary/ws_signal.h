/* WebSocket signaling (docs/websocket.md): the messages of ws(s)://HOST/{app}/{stream}/webrtc
 * and .../webrtc/publish, JSON text frames in the browser's own shapes. This header is the
 * message parser (src/http/ws_message.c), sans-IO and fuzzed; the connections themselves live
 * in the HTTP server (src/http/ws_signal.c). */
#ifndef ESTUARY_WS_SIGNAL_H
#define ESTUARY_WS_SIGNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_WS_MAX_MESSAGE 65536   /* bytes of one message; a larger one closes the socket */
#define ES_WS_BURST 50            /* messages a client may send at once ... */
#define ES_WS_PER_S 20            /* ... and a second after that; more closes the socket */

typedef enum {
    ES_WS_OFFER = 1,   /* {"type":"offer","sdp":"..."} */
    ES_WS_ANSWER,      /* {"type":"answer","sdp":"..."} */
    ES_WS_CANDIDATE,   /* {"type":"candidate","candidate":{...}|null} */
    ES_WS_PING,        /* {"type":"ping"} */
    ES_WS_PONG,        /* {"type":"pong"} */
} es_ws_type_t;

typedef struct es_ws_message {
    es_ws_type_t type;
    char *sdp;                /* offer, answer: malloc'ed, NUL-terminated, no NUL inside;
                                 NULL for the other types */
    size_t sdp_len;           /* bytes, > 0 for an offer or answer */
    bool end_of_candidates;   /* candidate: null, or an empty "candidate" string */
    char candidate[256];      /* candidate: the "candidate" string (truncated), for the log */
} es_ws_message_t;

/* es_ws_message_parse: one client message of len bytes (not NUL-terminated). Fills *out (free
 * with es_ws_message_clear) and returns 0, or: ES_E2BIG over ES_WS_MAX_MESSAGE bytes; ES_EPROTO
 * for anything else wrong, with the reason in err (NUL-terminated, truncated to err_len): not
 * JSON, not an object, "type" missing or unknown, an offer or answer without a non-empty
 * string "sdp" or with one over 65536 bytes (ES_SDP_MAX_TEXT), a candidate whose "candidate"
 * is neither an object with a string "candidate", nor null. Unknown fields are ignored
 * (Flussonic's clients add some). On error *out is cleared. */
int es_ws_message_parse(const char *buf, size_t len, es_ws_message_t *out, char *err,
                        size_t err_len);

/* es_ws_message_clear: frees what a parse allocated; NULL-safe, idempotent. */
void es_ws_message_clear(es_ws_message_t *m);

/* es_ws_type_name: "offer", "answer", "candidate", "ping", "pong"; "?" otherwise. */
const char *es_ws_type_name(es_ws_type_t t);

/* A token bucket for a client's messages: ES_WS_BURST at once, ES_WS_PER_S a second after. */
typedef struct es_ws_bucket {
    double tokens;
    uint64_t refilled_us;
} es_ws_bucket_t;

/* es_ws_bucket_take: one message at now_us (monotonic µs). true when it may be handled. A
 * zeroed bucket starts full. */
bool es_ws_bucket_take(es_ws_bucket_t *b, uint64_t now_us);

#endif
