/* libFuzzer harness for the HTTP router and static-path mapping (src/http). The first byte picks
 * the method, the rest is the path. Invariants: captured parameters are non-empty, contain no
 * '/', and lie inside the scratch buffer; a static path never resolves outside the root. */
#include "estuary/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int nop(void *u, const es_http_request_t *r, es_http_response_t *s) { return 0; }

static const es_http_route_t routes[] = {
    {ES_HTTP_GET, "/api/v1/streams", nop, 0},
    {ES_HTTP_GET | ES_HTTP_DELETE, "/api/v1/streams/{app}/{stream}", nop, 0},
    {ES_HTTP_POST, "/whip/{app}/{stream}", nop, 0},
    {ES_HTTP_PATCH | ES_HTTP_DELETE, "/whip/{app}/{stream}/{session}", nop, 0},
    {ES_HTTP_POST, "/rtc/v1/whip/", nop, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) return 0;
    es_http_method_t method = (es_http_method_t)(1u << (data[0] % 7));
    char *path = malloc(size);
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    es_http_request_t req = {0};
    char scratch[64];
    bool known;
    unsigned allow;
    const es_http_route_t *r = es_http_route_match(routes, sizeof routes / sizeof routes[0],
                                                   method, path, &req, scratch, sizeof scratch,
                                                   &known, &allow);
    if (r) {
        if (!(r->methods & method) || known) abort();
        for (size_t i = 0; i < req.n_params; i++) {
            const char *p = req.params[i];
            if (p < scratch || p >= scratch + sizeof scratch || !*p || strchr(p, '/')) abort();
        }
    } else if (known && !allow) {
        abort();
    }
    char *file = es_http_static_resolve(ES_FUZZ_WEB_ROOT, path);
    if (file) {
        char root[4096];
        if (!realpath(ES_FUZZ_WEB_ROOT, root) || strncmp(file, root, strlen(root)) != 0) abort();
        free(file);
    }
    free(path);
    return 0;
}
