/* An HTTP client on the daemon's libuv loop (src/app/http_client.c): libcurl's multi interface,
 * one uv_poll_t per socket curl asks to watch and one uv_timer_t, so that no request ever blocks
 * media. What the hooks (include/estuary/hooks.h) and the relays' WHIP/WHEP exchanges
 * (include/estuary/relay.h) send goes through it. http and https only. */
#ifndef ESTUARY_HTTP_CLIENT_H
#define ESTUARY_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ES_HTTP_MAX_PENDING 1024  /* requests in flight at once; past it es_http_fetch fails */
#define ES_HTTP_MAX_REDIRECTS 5   /* 307/308 followed at most this often (follow_redirects) */

typedef struct es_http_client es_http_client_t;
typedef struct es_http_call es_http_call_t;

/* One request. Strings are copied by es_http_fetch. */
typedef struct es_fetch_request {
    const char *method;         /* "GET", "POST", "DELETE", "PATCH" */
    const char *url;            /* absolute http(s) URL */
    const char *content_type;   /* of body, or NULL */
    const char *body;           /* NULL: none */
    size_t body_len;            /* bytes */
    const char *bearer;         /* "Authorization: Bearer <bearer>" when non-empty */
    const char *user_agent;     /* NULL: "estuary" */
    uint32_t timeout_ms;        /* the whole exchange, redirects included (0: 10 s) */
    size_t max_body;            /* bytes of the answer kept (0: 4 KiB); up to as much again is
                                   read and dropped (`truncated` set), and a longer answer ends
                                   the request (ES_EIO) */
    bool follow_redirects;      /* follow 307 and 308 (RFC 9110 §15.4.8-9) with the same method,
                                   body and headers, at most ES_HTTP_MAX_REDIRECTS, all within
                                   timeout_ms, never from https to http; the Bearer token only
                                   to the same origin (scheme, host, port) as browsers do;
                                   other 3xx are answers */
} es_fetch_request_t;

/* The outcome, borrowed for the done call. */
typedef struct es_fetch_response {
    int err;                    /* 0: an answer arrived (any status); ES_ETIMEDOUT: none within
                                   timeout_ms; ES_EIO: connection or protocol failure, or a
                                   URL that is not http(s); ES_ENOMEM */
    long status;                /* HTTP status (0 when err) */
    const char *body;           /* the answer's first max_body bytes, NUL-terminated ("" when
                                   none) */
    size_t body_len;            /* bytes */
    bool truncated;             /* the answer was longer than max_body */
    const char *content_type;   /* of the answer, "" when none */
    const char *location;       /* the final answer's Location resolved against effective_url
                                   (absolute), "" when none */
    const char *etag;           /* the final answer's ETag as written, "" when none */
    const char *effective_url;  /* the URL that answered (after redirects) */
    const char *error;          /* why, when err != 0 ("" otherwise) */
} es_fetch_response_t;

typedef void (*es_http_done_fn)(void *user, const es_fetch_response_t *res);

/* es_http_client_new: a client on loop. NULL when out of memory or libcurl fails to start. */
es_http_client_t *es_http_client_new(uv_loop_t *loop);

/* es_http_client_stop: cancels every request (their done callbacks are not called) and closes
 * the libuv handles; es_http_client_free once the loop has run. Idempotent, NULL-safe. */
void es_http_client_stop(es_http_client_t *c);
void es_http_client_free(es_http_client_t *c);

/* es_http_fetch: starts req and calls done once with the outcome, always later from the loop
 * (never inside this call), also when the request cannot start (a URL that is not http(s):
 * ES_EIO). done may fetch, cancel other calls and stop the client. Returns the call (valid until
 * done is called or es_http_cancel), or NULL when out of memory, stopping, req->url is NULL, or
 * ES_HTTP_MAX_PENDING requests are in flight. */
es_http_call_t *es_http_fetch(es_http_client_t *c, const es_fetch_request_t *req,
                              es_http_done_fn done, void *user);

/* es_http_cancel: forgets a call: done is not called. NULL-safe. */
void es_http_cancel(es_http_call_t *call);

/* es_http_same_origin: whether two absolute URLs have the same scheme, host and port (RFC 6454
 * §4; default ports made explicit). false when either does not parse. */
bool es_http_same_origin(const char *a, const char *b);

/* es_http_pending: requests in flight; one whose done is running still counts. */
size_t es_http_pending(const es_http_client_t *c);

#endif
