/* HTTP routing: method + path -> handler, with {name} segments captured. Pure functions. */
#include "estuary/http.h"

#include "estuary/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    es_http_method_t m;
    const char *name;
} methods[] = {
    {ES_HTTP_GET, "GET"},       {ES_HTTP_HEAD, "HEAD"},     {ES_HTTP_POST, "POST"},
    {ES_HTTP_PUT, "PUT"},       {ES_HTTP_PATCH, "PATCH"},   {ES_HTTP_DELETE, "DELETE"},
    {ES_HTTP_OPTIONS, "OPTIONS"},
};

es_http_method_t es_http_method_parse(const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(methods[i].name, name) == 0) return methods[i].m;
    return 0;
}

const char *es_http_method_name(es_http_method_t m)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].m == m) return methods[i].name;
    return "?";
}

void es_http_methods_format(unsigned set, char *out, size_t out_len)
{
    size_t used = 0;
    if (out_len) out[0] = '\0';
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (!(set & methods[i].m)) continue;
        int n = snprintf(out + used, out_len - used, "%s%s", used ? ", " : "", methods[i].name);
        if (n < 0 || (size_t)n >= out_len - used) return;
        used += (size_t)n;
    }
}

/* Matches `pattern` against `path` segment by segment. {x} takes one non-empty segment, copied
 * NUL-terminated into scratch. Returns true on a match. */
static bool match_pattern(const char *pattern, const char *path, es_http_request_t *req,
                          char *scratch, size_t scratch_len)
{
    const char *p = pattern, *s = path;
    size_t used = 0, n_params = 0;
    while (*p) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close) return false; /* a broken pattern is our bug; never matches */
            size_t seg = strcspn(s, "/");
            if (seg == 0 || n_params >= ES_HTTP_MAX_PARAMS || used + seg + 1 > scratch_len)
                return false;
            memcpy(scratch + used, s, seg);
            scratch[used + seg] = '\0';
            req->params[n_params++] = scratch + used;
            used += seg + 1;
            s += seg;
            p = close + 1;
            continue;
        }
        if (*p != *s) return false;
        p++;
        s++;
    }
    if (*s) return false;
    req->n_params = n_params;
    return true;
}

const es_http_route_t *es_http_route_match(const es_http_route_t *routes, size_t n_routes,
                                           es_http_method_t method, const char *path,
                                           es_http_request_t *req, char *scratch,
                                           size_t scratch_len, bool *path_known, unsigned *allow)
{
    *path_known = false;
    *allow = 0;
    es_http_request_t probe = {0};
    for (size_t i = 0; i < n_routes; i++) {
        if (!match_pattern(routes[i].pattern, path, &probe, scratch, scratch_len)) continue;
        if (routes[i].methods & method) {
            memcpy(req->params, probe.params, sizeof req->params);
            req->n_params = probe.n_params;
            return &routes[i];
        }
        *path_known = true;
        *allow |= routes[i].methods;
    }
    return NULL;
}

const char *es_http_arg(const es_http_request_t *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->n_args; i++)
        if (strncmp(req->args[i], name, n) == 0 && req->args[i][n] == '=') return req->args[i] + n + 1;
    return NULL;
}

void es_http_response_reset(es_http_response_t *resp)
{
    free(resp->body);
    free(resp->file_path);
    memset(resp, 0, sizeof *resp);
}

int es_http_respond_json(es_http_response_t *resp, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(body);
    es_http_response_reset(resp);
    if (!text) {
        resp->status = 500;
        return ES_ENOMEM;
    }
    size_t len = strlen(text);
    resp->body = malloc(len + 1);
    if (!resp->body) {
        free(text);
        resp->status = 500;
        return ES_ENOMEM;
    }
    memcpy(resp->body, text, len);
    resp->body[len] = '\n';
    resp->body_len = len + 1;
    free(text);
    resp->status = status;
    snprintf(resp->content_type, sizeof resp->content_type, "application/json");
    return 0;
}

int es_http_respond_error(es_http_response_t *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return es_http_respond_json(resp, status, json_pack("{s:s, s:i}", "error", msg, "status", status));
}

const char *es_http_path_for_log(const char *path, char *out, size_t len)
{
    if (!len) return out;
    snprintf(out, len, "%s", path ? path : "?");
    if (!path || (strncmp(path, "/whip/", 6) && strncmp(path, "/whep/", 6))) return out;
    char *last = strrchr(out, '/');
    char *dash = last ? strchr(last, '-') : NULL;
    if (dash && dash[1] && (size_t)(dash + 5 - out) < len) snprintf(dash + 1, 4, "...");
    return out;
}

int es_http_status_of(int err)
{
    switch (err) {
    case ES_EINVAL:
    case ES_EPROTO: return 400;
    case ES_EAUTH: return 401;
    case ES_EACCES: return 403;
    case ES_ENOENT: return 404;
    case ES_ENOTSUP: return 406;
    case ES_EEXIST: return 409;
    case ES_ESTALE: return 412;
    case ES_E2BIG: return 413;
    case ES_ELIMIT: return 429;
    case ES_ERANGE: return 500;
    default: return 503;
    }
}

const char *es_http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 307: return "Temporary Redirect";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
    }
}
