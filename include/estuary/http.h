/* HTTP: request/response types, the router, and the server on the libuv loop (libwebsockets as a
 * foreign-loop guest). Handlers are plain functions from a parsed request to a response; only
 * src/http/server.c touches libwebsockets, so handlers are unit-testable without a socket. */
#ifndef ESTUARY_HTTP_H
#define ESTUARY_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ES_HTTP_GET = 1 << 0,
    ES_HTTP_HEAD = 1 << 1,
    ES_HTTP_POST = 1 << 2,
    ES_HTTP_PUT = 1 << 3,
    ES_HTTP_PATCH = 1 << 4,
    ES_HTTP_DELETE = 1 << 5,
    ES_HTTP_OPTIONS = 1 << 6,
} es_http_method_t;

#define ES_HTTP_MAX_PARAMS 4
#define ES_HTTP_MAX_ARGS 16

/* A request as handlers see it. Every pointer is borrowed for the handler call. */
typedef struct es_http_request {
    es_http_method_t method;
    const char *path;          /* percent-decoded path, e.g. "/whip/live/cam" */
    const char *args[ES_HTTP_MAX_ARGS]; /* decoded query fragments, "name=value" */
    size_t n_args;
    const char *content_type;  /* "" when absent */
    const char *authorization; /* "" when absent */
    const char *if_match;      /* "" when absent */
    const uint8_t *body;       /* NULL when there is none */
    size_t body_len;
    const char *remote;        /* "ip:port" of the client */
    const char *conn_id;       /* "h<N>", for logs */
    const char *params[ES_HTTP_MAX_PARAMS]; /* values of {name} route segments, in order */
    size_t n_params;
    const char *query;         /* the raw query string without '?' ("a=1&b=2"), "" when none */
    bool admin;                /* the caller passed the admin check (api.token, or loopback
                                  without one): listings may show everything */
    void *conn;                /* the server's connection, for es_http_async_begin; NULL in
                                  unit tests */
} es_http_request_t;

/* A response a handler fills. Strings are copied in; body is owned (freed by the server). */
typedef struct es_http_response {
    int status;                /* 0 until a handler sets it */
    char content_type[64];
    char *body;                /* malloc'ed, may be NULL */
    size_t body_len;
    char location[320];        /* Location header when non-empty (a session resource is at most
                                  /whep/ + 64 + / + 128 + / + 16 + - + 32 bytes) */
    char etag[80];             /* ETag header when non-empty */
    char allow[64];            /* Allow header (405 answers) when non-empty */
    char *file_path;           /* malloc'ed: send this file instead of body (static files) */
} es_http_response_t;

typedef int (*es_http_handler_fn)(void *user, const es_http_request_t *req,
                                  es_http_response_t *resp);

#define ES_HTTP_ROUTE_ADMIN 1u /* admin API: api.token as Bearer, or loopback without one; no
                                  CORS headers */

typedef struct es_http_route {
    unsigned methods;          /* ES_HTTP_* bits */
    const char *pattern;       /* "/api/v1/streams/{app}/{stream}": {x} matches one segment */
    es_http_handler_fn handler;
    unsigned flags;            /* ES_HTTP_ROUTE_* */
} es_http_route_t;

/* An answer given later (a handler waiting for an admission hook). The handler calls
 * es_http_async_begin and returns without a status; later it fills es_http_async_response and
 * calls es_http_async_finish, unless `cancel` was called first (the client went away: then the
 * handle is gone and the handler must forget it). */
typedef struct es_http_async es_http_async_t;

/* es_http_async_begin: defers the answer to req. NULL when req has no connection (unit tests)
 * or one is deferred already. */
es_http_async_t *es_http_async_begin(const es_http_request_t *req, void (*cancel)(void *user),
                                     void *user);

/* es_http_async_response: the response to fill before es_http_async_finish. */
es_http_response_t *es_http_async_response(es_http_async_t *a);

/* es_http_async_finish: sends the filled response. The handle is gone after the call. */
void es_http_async_finish(es_http_async_t *a);

/* es_http_status_of: the HTTP status for an ES_E* refusal, the same for every endpoint: 400
 * (EINVAL, EPROTO), 401 (EAUTH), 403 (EACCES), 404 (ENOENT), 406 (ENOTSUP), 409 (EEXIST), 412
 * (ESTALE), 413 (E2BIG), 429 (ELIMIT), 500 (ERANGE), 503 (the rest: EBUSY, ENOMEM, EIO...). */
int es_http_status_of(int err);

/* es_http_route_match: finds the route for method+path. On a match returns it and fills
 * req->params/n_params with pointers into `scratch` (scratch_len bytes, caller's storage).
 * Returns NULL when nothing matches; then *path_known is true when some route had this path
 * but not this method (answer 405 with `allow`, ES_HTTP_* bits of the methods it does take). */
const es_http_route_t *es_http_route_match(const es_http_route_t *routes, size_t n_routes,
                                           es_http_method_t method, const char *path,
                                           es_http_request_t *req, char *scratch,
                                           size_t scratch_len, bool *path_known,
                                           unsigned *allow);

/* es_http_method_parse: "GET" -> ES_HTTP_GET; 0 for a method Estuary does not serve. */
es_http_method_t es_http_method_parse(const char *name);

/* es_http_method_name: "GET" for ES_HTTP_GET; "?" for anything else. */
const char *es_http_method_name(es_http_method_t m);

/* es_http_methods_format: "GET, POST, OPTIONS" for a bit set, into out (NUL-terminated). */
void es_http_methods_format(unsigned methods, char *out, size_t out_len);

/* es_http_arg: the decoded value of query argument `name`, or NULL. Borrowed from req. */
const char *es_http_arg(const es_http_request_t *req, const char *name);

/* es_http_respond_json: status and the JSON text of `body` (the response takes the reference).
 * Returns 0 or ES_ENOMEM (then the response is a 500 without body). */
int es_http_respond_json(es_http_response_t *resp, int status, json_t *body);

/* es_http_respond_error: status with {"error": MESSAGE, "status": N}; printf-style message. */
int es_http_respond_error(es_http_response_t *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* es_http_response_reset: frees body and file_path and zeroes the response. */
void es_http_response_reset(es_http_response_t *resp);

/* es_http_path_for_log: path with the secret of a WHIP/WHEP session resource
 * (/whip|whep/{app}/{stream}/{id}-{secret}) cut to "{id}-...", for logs: whoever reads them must
 * not be able to end the session. Into out (len bytes, NUL-terminated); returns out. */
const char *es_http_path_for_log(const char *path, char *out, size_t len);

/* es_http_status_text: "Not Found" for 404; "" for an unknown code. */
const char *es_http_status_text(int status);

/* es_http_mime_type: Content-Type for a file name by its extension ("text/html; charset=utf-8"
 * for .html); "application/octet-stream" when unknown. */
const char *es_http_mime_type(const char *path);

/* es_http_static_resolve: maps a request path under `root` to a regular file, with "/" and
 * folders mapping to index.html. Returns a malloc'ed real path inside root, or NULL when the
 * path is unsafe (.., NUL, backslash, leaves root through a symlink) or names no file. */
char *es_http_static_resolve(const char *root, const char *path);

#endif
