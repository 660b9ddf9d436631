/* Unit tests for src/config: defaults, every kind of bad input with its line and column, $ENV
 * expansion, apps, and the SIGHUP diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/config.h"
#include "config/config_schema.h"

#include <yaml.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[ES_CONFIG_ERR_MAX];

static es_config_t *load(const char *yaml)
{
    return es_config_load_string(yaml, strlen(yaml), "test.yaml", err, sizeof err);
}

/* Loading must fail with exactly this error line. */
static void expect_error(const char *yaml, const char *want)
{
    es_config_t *c = load(yaml);
    if (c) {
        es_config_free(c);
        fail_msg("expected error '%s' but the file loaded", want);
    }
    if (strcmp(err, want) != 0) fail_msg("error was\n  '%s'\nwanted\n  '%s'", err, want);
}

static void test_embedded_default_equals_compiled_defaults(void **state)
{
    es_config_t *def = es_config_new_default();
    es_config_t *emb = es_config_load_embedded(err, sizeof err);
    assert_non_null(def);
    if (!emb) fail_msg("embedded default does not parse: %s", err);
    char diff[512];
    int n = es_config_diff(def, emb, false, diff, sizeof diff);
    if (n) fail_msg("conf/estuary.yaml and the compiled defaults differ in: %s", diff);
    assert_int_equal(emb->http.listen.port, 8080);
    assert_string_equal(emb->http.listen.host, "0.0.0.0");
    assert_int_equal(emb->webrtc.udp_listen.port, 8000);
    assert_true(emb->webrtc.tcp_listen.enabled);
    assert_int_equal(emb->webrtc.tcp_listen.port, 8000);
    assert_true(emb->webrtc.tcp_on_http);
    assert_string_equal(emb->webrtc.protocol, "all");
    assert_int_equal(emb->rtmp.listen.port, 1935);
    assert_int_equal(emb->webrtc.publisher_timeout_ms, 15000);
    assert_int_equal(emb->webrtc.player_timeout_ms, 30000);
    assert_int_equal(emb->n_apps, 1);
    assert_string_equal(emb->apps[0].name, "*");
    assert_null(emb->apps[0].publish_token);
    es_config_free(def);
    es_config_free(emb);
}

/* Every key of the schema is written in conf/estuary.yaml (and so documented there). */
static const yaml_node_t *child(yaml_document_t *doc, const yaml_node_t *map, const char *name)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, name) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

static void check_keys(yaml_document_t *doc, const yaml_node_t *map, const key_spec_t *keys,
                       const char *path)
{
    for (const key_spec_t *k = keys; k->name; k++) {
        const yaml_node_t *v = child(doc, map, k->name);
        if (!v) fail_msg("conf/estuary.yaml does not document %s%s", path, k->name);
        if (k->kind == KEY_MAP) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s%s.", path, k->name);
            check_keys(doc, v, k->children, sub);
        }
        if (k->kind == KEY_APPS) check_keys(doc, child(doc, v, "*"), es_config_app_keys, "apps.*.");
    }
}

static void test_default_file_documents_every_key(void **state)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (const unsigned char *)es_config_default_yaml,
                                 es_config_default_yaml_len);
    assert_true(yaml_parser_load(&parser, &doc));
    check_keys(&doc, yaml_document_get_root_node(&doc), es_config_root_keys, "");
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

static void test_empty_file_is_defaults(void **state)
{
    es_config_t *c = load("");
    assert_non_null(c);
    assert_int_equal(c->http.listen.port, 8080);
    es_config_free(c);
    c = load("# only a comment\nlog:\n");
    assert_non_null(c);
    assert_int_equal(c->log.level, ES_LOG_INFO);
    es_config_free(c);
}

static void test_values_override_defaults(void **state)
{
    es_config_t *c = load("log:\n  level: debug\n"
                          "http:\n  listen: \"127.0.0.1:9090\"\n  cors_origin: https://a.example\n"
                          "webrtc:\n  udp_listen: \"[::1]:9000\"\n  candidates: [\"192.0.2.1\", host.example]\n"
                          "  nack: off\n  player_timeout_ms: 45000\n"
                          "rtmp:\n  listen: \"\"\n"
                          "limits:\n  max_http_body: 2048\n");
    if (!c) fail_msg("%s", err);
    assert_int_equal(c->log.level, ES_LOG_DEBUG);
    assert_string_equal(c->http.listen.host, "127.0.0.1");
    assert_int_equal(c->http.listen.port, 9090);
    assert_string_equal(c->http.cors_origin, "https://a.example");
    assert_string_equal(c->webrtc.udp_listen.host, "::1");
    assert_int_equal(c->webrtc.udp_listen.addr.ss_family, AF_INET6);
    assert_int_equal(c->webrtc.n_candidates, 2);
    assert_string_equal(c->webrtc.candidates[1], "host.example");
    assert_false(c->webrtc.nack);
    assert_true(c->webrtc.twcc);
    assert_int_equal(c->webrtc.player_timeout_ms, 45000);
    assert_false(c->rtmp.listen.enabled);
    assert_int_equal(c->limits.max_http_body, 2048);
    es_config_free(c);
}

static void test_unknown_key(void **state)
{
    expect_error("http:\n  lissten: \"0.0.0.0:80\"\n",
                 "test.yaml:2:3: http.lissten: unknown key (did you mean 'listen'?)");
    expect_error("webrtc:\n  nack: true\n  frobnicate: 1\n",
                 "test.yaml:3:3: webrtc.frobnicate: unknown key");
    expect_error("rtmpp:\n  listen: \"\"\n", "test.yaml:1:1: rtmpp: unknown key (did you mean 'rtmp'?)");
}

static void test_wrong_type(void **state)
{
    expect_error("webrtc:\n  nack: maybe\n",
                 "test.yaml:2:9: webrtc.nack: expected true or false, got 'maybe'");
    expect_error("limits:\n  max_sessions: lots\n",
                 "test.yaml:2:17: limits.max_sessions: expected a whole number from 1 to 1000000, got 'lots'");
    expect_error("limits:\n  max_sessions: 0\n",
                 "test.yaml:2:17: limits.max_sessions: 0 is out of range (1 to 1000000)");
    expect_error("http: 5\n", "test.yaml:1:7: http: expected a mapping of keys, got a value");
    expect_error("webrtc:\n  candidates: \"*\"\n",
                 "test.yaml:2:15: webrtc.candidates: expected a list, e.g. [\"*\"], got a value");
    expect_error("log:\n  level: loud\n",
                 "test.yaml:2:10: log.level: unknown log level 'loud' (trace, debug, info, warn or error)");
    expect_error("http:\n  listen: [1, 2]\n",
                 "test.yaml:2:11: http.listen: expected \"IP:PORT\", got a list");
}

static void test_bad_address_and_port(void **state)
{
    expect_error("http:\n  listen: \"0.0.0.0:80800\"\n",
                 "test.yaml:2:11: http.listen: bad port '80800' in '0.0.0.0:80800' (expected 1-65535)");
    expect_error("http:\n  listen: \"0.0.0.0\"\n",
                 "test.yaml:2:11: http.listen: bad address '0.0.0.0' (expected \"IP:PORT\" or \"[IPv6]:PORT\")");
    expect_error("rtmp:\n  listen: \"example.com:1935\"\n",
                 "test.yaml:2:11: rtmp.listen: bad address 'example.com:1935': 'example.com' is not a numeric IPv4 or IPv6 address");
    expect_error("webrtc:\n  udp_listen: \"1.2.3.4:0\"\n",
                 "test.yaml:2:15: webrtc.udp_listen: bad port '0' in '1.2.3.4:0' (expected 1-65535)");
    expect_error("rtmp:\n  listen: \"0.0.0.0:8080\"\n",
                 "test.yaml:2:3: rtmp.listen: TCP port 8080 is already used by http.listen");
    expect_error("webrtc:\n  tcp_listen: \"0.0.0.0:8080\"\n",
                 "test.yaml:2:3: webrtc.tcp_listen: TCP port 8080 is already used by http.listen");
    expect_error("webrtc:\n  protocol: sctp\n",
                 "test.yaml:2:3: webrtc.protocol: 'sctp' is not all, udp or tcp");
    expect_error("webrtc:\n  protocol: tcp\n  tcp_listen: \"\"\n  tcp_on_http: false\n",
                 "test.yaml:2:3: webrtc.protocol: tcp needs webrtc.tcp_listen or webrtc.tcp_on_http");
    expect_error("webrtc:\n  candidates: [\"bad host!\"]\n",
                 "test.yaml:2:3: webrtc.candidates[0]: 'bad host!' is not \"*\", an IP address or a host name");
}

static void test_certificate_files(void **state)
{
    expect_error("http:\n  https:\n    listen: \"0.0.0.0:8443\"\n",
                 "test.yaml:3:5: http.https.cert: http.https.listen is set, so a certificate file is required");
    expect_error("http:\n  https:\n    listen: \"0.0.0.0:8443\"\n    cert: /nonexistent/cert.pem\n"
                 "    key: /nonexistent/key.pem\n",
                 "test.yaml:4:5: http.https.cert: cannot read certificate file '/nonexistent/cert.pem': "
                 "No such file or directory");
    expect_error("webrtc:\n  dtls_cert: /etc/hostname\n",
                 "test.yaml:2:3: webrtc.dtls_key: dtls_cert and dtls_key go together: set both or neither");
    expect_error("webrtc:\n  dtls_cert: /tmp\n  dtls_key: /tmp\n",
                 "test.yaml:2:3: webrtc.dtls_cert: certificate '/tmp' is not a file");
}

static void test_yaml_syntax_and_structure(void **state)
{
    es_config_t *c = load("http:\n  listen: \"0.0.0.0:8080\n");
    assert_null(c);
    assert_non_null(strstr(err, "test.yaml:"));
    assert_non_null(strstr(err, "YAML syntax error"));
    expect_error("log:\n  level: info\n  level: debug\n",
                 "test.yaml:3:3: log: duplicate key 'level' (first at line 2)");
    expect_error("log:\n  level: info\n---\nlog: {}\n",
                 "test.yaml:4:1: a second YAML document ('---') is not allowed");
    expect_error("- 1\n- 2\n", "test.yaml:1:1: expected a mapping of keys, got a list");
    /* A NUL byte inside a value is refused rather than silently truncated. */
    static const char nul[] = "log:\n  file: \"a\\0b\"\n";
    c = load(nul);
    assert_null(c);
    assert_non_null(strstr(err, "NUL"));
}

static void test_env_expansion(void **state)
{
    setenv("ES_TEST_IP", "198.51.100.7", 1);
    setenv("ES_TEST_EMPTY", "", 1);
    unsetenv("ES_TEST_UNSET");
    es_config_t *c = load("webrtc:\n  candidates: [\"$ES_TEST_IP\", \"${ES_TEST_UNSET:-203.0.113.9}\"]\n"
                          "apps:\n  live:\n    publish_token: \"tok$$en-${ES_TEST_IP}\"\n"
                          "limits:\n  max_sessions: \"${ES_TEST_UNSET:-77}\"\n"
                          "log:\n  file: \"$ES_TEST_EMPTY\"\n");
    if (!c) fail_msg("%s", err);
    assert_string_equal(c->webrtc.candidates[0], "198.51.100.7");
    assert_string_equal(c->webrtc.candidates[1], "203.0.113.9");
    assert_string_equal(c->apps[0].publish_token, "tok$en-198.51.100.7");
    assert_int_equal(c->limits.max_sessions, 77);
    assert_null(c->log.file);
    es_config_free(c);

    expect_error("webrtc:\n  candidates: [\"$ES_TEST_UNSET\"]\n",
                 "test.yaml:2:16: webrtc.candidates[0]: environment variable ES_TEST_UNSET is not set "
                 "(in '$ES_TEST_UNSET'; use ${ES_TEST_UNSET:-default} for a fallback)");
    expect_error("http:\n  cors_origin: \"${ES_TEST_IP\"\n",
                 "test.yaml:2:16: http.cors_origin: unterminated '${' in '${ES_TEST_IP'");
    expect_error("http:\n  cors_origin: \"a$1\"\n",
                 "test.yaml:2:16: http.cors_origin: '$' must start a variable ($NAME, ${NAME}) or be written '$$' in 'a$1'");

    char e[128];
    char *s = es_config_expand_env("plain", e, sizeof e);
    assert_string_equal(s, "plain");
    free(s);
    s = es_config_expand_env("${ES_TEST_EMPTY:-fb}/$ES_TEST_IP:x", e, sizeof e);
    assert_string_equal(s, "fb/198.51.100.7:x");
    free(s);
}

static void test_apps(void **state)
{
    es_config_t *c = load("apps:\n  secure:\n    play_token: p\n"
                          "  \"*\":\n    publish_token: wild\n    hls: true\n");
    if (!c) fail_msg("%s", err);
    assert_int_equal(c->n_apps, 2);
    const es_app_config_t *s = es_config_find_app(c, "secure");
    assert_non_null(s);
    assert_string_equal(s->play_token, "p");
    assert_string_equal(s->publish_token, "wild"); /* inherited from "*" */
    assert_true(s->hls);
    const es_app_config_t *other = es_config_find_app(c, "other");
    assert_non_null(other);
    assert_string_equal(other->name, "*");
    es_config_free(c);

    c = load("apps:\n  live: {}\n");
    if (!c) fail_msg("%s", err);
    assert_non_null(es_config_find_app(c, "live"));
    assert_null(es_config_find_app(c, "other")); /* no "*": unlisted apps are refused */
    es_config_free(c);

    expect_error("apps:\n  \"bad name\": {}\n",
                 "test.yaml:2:3: apps.bad name: bad app name (letters, digits, '_', '-' and '.', at most 64; "
                 "or \"*\" for every other app)");
    expect_error("apps:\n  live:\n    hls: sometimes\n",
                 "test.yaml:3:10: apps.live.hls: expected true or false, got 'sometimes'");
    expect_error("apps:\n  live:\n    tokn: x\n",
                 "test.yaml:3:5: apps.live.tokn: unknown key");
}

/* The relays list and the edge and balancer keys of an app (include/estuary/relay.h). */
static void test_relays_and_edges(void **state)
{
    es_config_t *c = load("apps:\n  \"*\":\n    balancer: [\"http://m1:8080\", \"http://m2:8080/\"]\n"
                          "  edge:\n    origin: \"http://origin:8080\"\n    origin_idle_ms: 2500\n"
                          "    origin_token: t\n"
                          "relays:\n  - direction: push\n    stream: live/cam\n"
                          "    url: \"https://b.example/whip/live/cam\"\n    token: s3\n"
                          "  - {direction: pull, stream: live/in, url: \"http://a:8080/whep/live/x\"}\n");
    if (!c) fail_msg("%s", err);
    assert_int_equal(c->n_relays, 2);
    assert_string_equal(c->relays[0].direction, "push");
    assert_string_equal(c->relays[0].stream, "live/cam");
    assert_string_equal(c->relays[0].token, "s3");
    assert_null(c->relays[1].token);
    const es_app_config_t *e = es_config_find_app(c, "edge");
    assert_non_null(e);
    assert_string_equal(e->origin, "http://origin:8080");
    assert_int_equal(e->origin_idle_ms, 2500);
    assert_string_equal(e->origin_token, "t");
    assert_int_equal(e->n_balancer, 2); /* copied from "*" */
    assert_string_equal(e->balancer[1], "http://m2:8080/");
    const es_app_config_t *any = es_config_find_app(c, "other");
    assert_int_equal(any->n_balancer, 2);
    assert_null(any->origin);
    assert_int_equal(any->origin_idle_ms, 10000);
    /* A changed relay is a change for SIGHUP; the same list is not. */
    es_config_t *same = load("relays:\n  - direction: push\n    stream: live/cam\n"
                             "    url: \"https://b.example/whip/live/cam\"\n    token: s3\n"
                             "  - {direction: pull, stream: live/in, url: \"http://a:8080/whep/live/x\"}\n");
    es_config_t *other = load("relays:\n  - direction: push\n    stream: live/cam\n"
                              "    url: \"https://b.example/whip/live/cam\"\n    token: s4\n");
    assert_non_null(same);
    assert_non_null(other);
    char out[256];
    es_config_t *c_apps = load("relays: []\n");
    assert_int_equal(c_apps->n_relays, 0);
    assert_int_equal(es_config_diff(same, other, false, out, sizeof out), 1);
    assert_string_equal(out, "relays");
    es_config_free(c_apps);
    es_config_free(same);
    es_config_free(other);
    es_config_free(c);

    expect_error("relays:\n  - {direction: both, stream: live/cam, url: \"http://b/whip/x/y\"}\n",
                 "test.yaml:2:5: relays[0]: direction must be push or pull");
    expect_error("relays:\n  - {direction: push, stream: cam, url: \"http://b/whip/x/y\"}\n",
                 "test.yaml:2:5: relays[0]: stream must be \"app/stream\" (letters, digits, '_', "
                 "'-', '.')");
    expect_error("relays:\n  - {direction: push, stream: \"live/c m\", url: \"http://b/whip/x/y\"}\n",
                 "test.yaml:2:5: relays[0]: stream must be \"app/stream\" (letters, digits, '_', "
                 "'-', '.')");
    expect_error("apps:\n  edge:\n    origin: \"http://o:8080/whep/live\"\n",
                 "test.yaml:1:1: apps.edge.origin: 'http://o:8080/whep/live' is not a server's base "
                 "URL (http(s)://host[:port], no path: its /whep/{app}/{stream} is used)");
    expect_error("apps:\n  edge:\n    balancer: [\"m1:8080\"]\n",
                 "test.yaml:1:1: apps.edge.balancer[0]: 'm1:8080' is not an http:// or https:// "
                 "base URL");
    expect_error("relays:\n  - {direction: push, stream: live/cam, url: \"ftp://b/x\"}\n",
                 "test.yaml:2:5: relays[0]: url must be an http:// or https:// WHIP/WHEP endpoint");
    expect_error("relays:\n  - {direction: push, stream: live/cam, url: \"http://b/x\", tok: 1}\n",
                 "test.yaml:2:60: relays[0].tok: unknown key (did you mean 'token'?)");
    expect_error("relays: {direction: push}\n",
                 "test.yaml:1:9: relays: expected a list of relays, got a mapping");
    expect_error("apps:\n  live:\n    balancer: \"http://m1\"\n",
                 "test.yaml:3:15: apps.live.balancer: expected a list, e.g. [\"*\"], got a value");
}

static void test_reload_diff(void **state)
{
    es_config_t *a = load("log:\n  level: info\nhttp:\n  listen: \"0.0.0.0:8080\"\n");
    es_config_t *b = load("log:\n  level: debug\nhttp:\n  listen: \"0.0.0.0:9090\"\n"
                          "apps:\n  live: {}\n");
    assert_non_null(a);
    assert_non_null(b);
    char out[256];
    assert_int_equal(es_config_diff(a, b, true, out, sizeof out), 1);
    assert_string_equal(out, "http.listen");
    assert_int_equal(es_config_diff(a, b, false, out, sizeof out), 3);
    assert_string_equal(out, "log.level, http.listen, apps");
    assert_int_equal(es_config_keep_restart_keys(a, b), 0);
    assert_int_equal(b->http.listen.port, 8080);
    assert_int_equal(es_config_diff(a, b, true, out, sizeof out), 0);
    assert_int_equal(b->log.level, ES_LOG_DEBUG);
    es_config_free(a);
    es_config_free(b);
}

static void test_load_file(void **state)
{
    assert_null(es_config_load_file("/nonexistent/estuary.yaml", err, sizeof err));
    assert_string_equal(err, "/nonexistent/estuary.yaml: cannot open: No such file or directory");
    char path[] = "/tmp/es_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char body[] = "http:\n  listen: \"127.0.0.1:18080\"\n  bogus: 1\n";
    assert_int_equal(write(fd, body, sizeof body - 1), (int)(sizeof body - 1));
    close(fd);
    assert_null(es_config_load_file(path, err, sizeof err));
    char want[256];
    snprintf(want, sizeof want, "%s:3:3: http.bogus: unknown key", path);
    assert_string_equal(err, want);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_default_equals_compiled_defaults),
        cmocka_unit_test(test_default_file_documents_every_key),
        cmocka_unit_test(test_empty_file_is_defaults),
        cmocka_unit_test(test_values_override_defaults),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_bad_address_and_port),
        cmocka_unit_test(test_certificate_files),
        cmocka_unit_test(test_yaml_syntax_and_structure),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_apps),
        cmocka_unit_test(test_relays_and_edges),
        cmocka_unit_test(test_reload_diff),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
