/* Unit tests for src/http: routing, 405 detection, query arguments, JSON errors, static paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int h_a(void *u, const es_http_request_t *r, es_http_response_t *s) { return 0; }
static int h_b(void *u, const es_http_request_t *r, es_http_response_t *s) { return 0; }

static const es_http_route_t routes[] = {
    {ES_HTTP_GET, "/api/v1/streams", h_a, 0},
    {ES_HTTP_GET | ES_HTTP_DELETE, "/api/v1/streams/{app}/{stream}", h_b, 0},
    {ES_HTTP_POST, "/whip/{app}/{stream}", h_a, 0},
    {ES_HTTP_POST, "/rtc/v1/whip/", h_b, 0},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static void test_match_params(void **state)
{
    es_http_request_t req = {0};
    char scratch[64];
    bool known;
    unsigned allow;
    const es_http_route_t *r = es_http_route_match(routes, N_ROUTES, ES_HTTP_GET,
                                                   "/api/v1/streams/live/cam", &req, scratch,
                                                   sizeof scratch, &known, &allow);
    assert_ptr_equal(r, &routes[1]);
    assert_int_equal(req.n_params, 2);
    assert_string_equal(req.params[0], "live");
    assert_string_equal(req.params[1], "cam");
    r = es_http_route_match(routes, N_ROUTES, ES_HTTP_POST, "/rtc/v1/whip/", &req, scratch,
                            sizeof scratch, &known, &allow);
    assert_ptr_equal(r, &routes[3]);
    assert_int_equal(req.n_params, 0);
}

static void test_no_match_and_405(void **state)
{
    es_http_request_t req = {0};
    char scratch[64];
    bool known;
    unsigned allow;
    /* Empty segment, extra segment, prefix only: no match, path unknown. */
    const char *misses[] = {"/api/v1/streams/live/", "/api/v1/streams/live/cam/x", "/api/v1",
                            "/api/v1/streams/", "/whip//cam", "", "/"};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        assert_null(es_http_route_match(routes, N_ROUTES, ES_HTTP_GET, misses[i], &req, scratch,
                                        sizeof scratch, &known, &allow));
        assert_false(known);
    }
    assert_null(es_http_route_match(routes, N_ROUTES, ES_HTTP_PATCH, "/api/v1/streams/a/b", &req,
                                    scratch, sizeof scratch, &known, &allow));
    assert_true(known);
    assert_int_equal(allow, ES_HTTP_GET | ES_HTTP_DELETE);
    char text[64];
    es_http_methods_format(allow | ES_HTTP_OPTIONS, text, sizeof text);
    assert_string_equal(text, "GET, DELETE, OPTIONS");
    /* A segment too long for the scratch buffer does not match (and does not overflow). */
    assert_null(es_http_route_match(routes, N_ROUTES, ES_HTTP_GET, "/api/v1/streams/live/cam",
                                    &req, scratch, 6, &known, &allow));
}

static void test_methods_and_args(void **state)
{
    assert_int_equal(es_http_method_parse("PATCH"), ES_HTTP_PATCH);
    assert_int_equal(es_http_method_parse("patch"), 0);
    assert_string_equal(es_http_method_name(ES_HTTP_OPTIONS), "OPTIONS");
    es_http_request_t req = {.args = {"app=live", "stream=cam", "eip=1.2.3.4:8000", "x"}, .n_args = 4};
    assert_string_equal(es_http_arg(&req, "app"), "live");
    assert_string_equal(es_http_arg(&req, "eip"), "1.2.3.4:8000");
    assert_null(es_http_arg(&req, "ap"));
    assert_null(es_http_arg(&req, "x"));
}

static void test_json_error(void **state)
{
    es_http_response_t resp = {0};
    assert_int_equal(es_http_respond_error(&resp, 404, "no stream %s", "live/\"x\""), 0);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.content_type, "application/json");
    json_error_t jerr;
    json_t *j = json_loadb(resp.body, resp.body_len, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "error")), "no stream live/\"x\"");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    json_decref(j);
    es_http_response_reset(&resp);
    assert_null(resp.body);
    assert_string_equal(es_http_status_text(413), "Content Too Large");
}

static void test_static_resolve(void **state)
{
    char root[] = "/tmp/es_web_XXXXXX";
    assert_non_null(mkdtemp(root));
    char p[256];
    snprintf(p, sizeof p, "%s/index.html", root);
    FILE *f = fopen(p, "w");
    fputs("<h1>x</h1>", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/sub", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/app.js", root);
    f = fopen(p, "w");
    fputs("1", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/escape", root);
    assert_int_equal(symlink("/etc/hostname", p), 0);

    char *r = es_http_static_resolve(root, "/");
    assert_non_null(r);
    assert_non_null(strstr(r, "/index.html"));
    free(r);
    r = es_http_static_resolve(root, "/sub/app.js");
    assert_non_null(r);
    assert_string_equal(es_http_mime_type(r), "text/javascript; charset=utf-8");
    free(r);
    assert_null(es_http_static_resolve(root, "/sub"));        /* folder without index.html */
    assert_null(es_http_static_resolve(root, "/../etc/passwd"));
    assert_null(es_http_static_resolve(root, "/sub/../../etc/passwd"));
    assert_null(es_http_static_resolve(root, "/escape"));     /* symlink out of the root */
    assert_null(es_http_static_resolve(root, "/missing.html"));
    assert_null(es_http_static_resolve(root, "relative"));
    assert_null(es_http_static_resolve(root, "/a\\b"));
    assert_string_equal(es_http_mime_type("x.unknown"), "application/octet-stream");
    assert_string_equal(es_http_mime_type("dir.d/file"), "application/octet-stream");

    unlink(p);
    snprintf(p, sizeof p, "%s/sub/app.js", root);
    unlink(p);
    snprintf(p, sizeof p, "%s/sub", root);
    rmdir(p);
    snprintf(p, sizeof p, "%s/index.html", root);
    unlink(p);
    rmdir(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_params),  cmocka_unit_test(test_no_match_and_405),
        cmocka_unit_test(test_methods_and_args), cmocka_unit_test(test_json_error),
        cmocka_unit_test(test_static_resolve),
    };
    return cmocka_run_group_tests_name("http_router", tests, NULL, NULL);
}
