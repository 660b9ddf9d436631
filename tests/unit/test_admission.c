/* Unit tests for src/media/admission.c: one decision for every protocol (the same error and
 * reason for the same configuration), tokens, limits in all and per address, one publisher or
 * the takeover of a silent one, something to play for WHEP, the hook to ask; the per-address
 * table (sessions, offer rate, expiry) and the address parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/admission.h"
#include "estuary/error.h"
#include "estuary/live.h"

#include <stdio.h>
#include <string.h>

static const char YAML[] =
    "apps:\n"
    "  open: {}\n"
    "  locked:\n"
    "    publish_token: \"pub\"\n"
    "    play_token: \"play\"\n"
    "    on_publish: \"http://127.0.0.1:9/hook\"\n"
    "  strict:\n"
    "    publisher_takeover: false\n"
    "limits:\n"
    "  max_sessions: 10\n"
    "  max_sessions_per_ip: 3\n";

typedef struct fixture {
    es_config_t *cfg;
    es_registry_t *reg;
} fixture_t;

static int setup(void **state)
{
    static fixture_t f;
    char err[256];
    f.cfg = es_config_load_string(YAML, sizeof YAML - 1, "test.yaml", err, sizeof err);
    assert_non_null(f.cfg);
    f.reg = es_registry_new();
    assert_non_null(f.reg);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    es_live_shutdown(f->reg, f->cfg, NULL);
    es_registry_free(f->reg);
    es_config_free(f->cfg);
    return 0;
}

static const es_protocol_t ALL[] = {ES_PROTO_WHIP, ES_PROTO_WHEP, ES_PROTO_RTMP,
                                    ES_PROTO_HTTP_FLV, ES_PROTO_HLS, ES_PROTO_WEBSOCKET};

/* The decision for app/stream over protocol p; publishers only over WHIP and RTMP. */
static int admit(fixture_t *f, es_protocol_t p, es_admit_role_t role, const char *app,
                 const char *token, es_admit_decision_t *d)
{
    es_admit_request_t r = {.app = app, .stream = "cam", .role = role, .protocol = p,
                            .token = token, .now_us = 1000000};
    return es_admit(f->reg, f->cfg, &r, d);
}

static void test_same_refusal_for_every_protocol(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *app, *token;
        es_admit_role_t role;
        int err;
        const char *reason;
    } cases[] = {
        {"nope", NULL, ES_ADMIT_PLAY, ES_EACCES, "app 'nope' is not configured"},
        {"locked", NULL, ES_ADMIT_PLAY, ES_EAUTH,
         "app locked needs a play token (Authorization: Bearer TOKEN, or ?token=TOKEN)"},
        {"locked", "", ES_ADMIT_PUBLISH, ES_EAUTH,
         "app locked needs a publish token (Authorization: Bearer TOKEN, or ?token=TOKEN)"},
        {"locked", "pla", ES_ADMIT_PLAY, ES_EACCES, "wrong play token for app locked"},
        {"locked", "play", ES_ADMIT_PUBLISH, ES_EACCES, "wrong publish token for app locked"},
        {"bad/app", NULL, ES_ADMIT_PLAY, ES_EINVAL, NULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++) {
            es_admit_decision_t d;
            int rc = admit(f, ALL[i], cases[c].role, cases[c].app, cases[c].token, &d);
            assert_int_equal(rc, cases[c].err);
            assert_int_equal(d.err, cases[c].err);
            if (cases[c].reason) assert_string_equal(d.reason, cases[c].reason);
            assert_null(d.stream);
            assert_null(d.hook);
        }
    }
    /* the right tokens pass, and the app's hook is named for publishers */
    es_admit_decision_t d;
    assert_int_equal(admit(f, ES_PROTO_RTMP, ES_ADMIT_PUBLISH, "locked", "pub", &d), 0);
    assert_string_equal(d.hook, "http://127.0.0.1:9/hook");
    assert_int_equal(admit(f, ES_PROTO_HTTP_FLV, ES_ADMIT_PLAY, "locked", "play", &d), 0);
    assert_null(d.hook);
    /* WHEP needs something to play; RTMP/HTTP-FLV players wait for a publisher */
    assert_int_equal(admit(f, ES_PROTO_WHEP, ES_ADMIT_PLAY, "open", NULL, &d), ES_ENOENT);
    assert_string_equal(d.reason, "stream open/cam is not being published");
    /* ... and so does a WebSocket player, with the same reason (WHEP's statuses) */
    assert_int_equal(admit(f, ES_PROTO_WEBSOCKET, ES_ADMIT_PLAY, "open", NULL, &d), ES_ENOENT);
    assert_string_equal(d.reason, "stream open/cam is not being published");
    assert_int_equal(admit(f, ES_PROTO_WEBSOCKET, ES_ADMIT_PUBLISH, "open", NULL, &d), 0);
    assert_string_equal(es_protocol_name(ES_PROTO_WEBSOCKET), "websocket");
    assert_int_equal(admit(f, ES_PROTO_RTMP, ES_ADMIT_PLAY, "open", NULL, &d), 0);
}

static void test_limits(void **state)
{
    fixture_t *f = *state;
    es_admit_decision_t d;
    es_admit_request_t r = {.app = "open", .stream = "cam", .role = ES_ADMIT_PLAY,
                            .protocol = ES_PROTO_HTTP_FLV, .sessions = 10};
    assert_int_equal(es_admit(f->reg, f->cfg, &r, &d), ES_EBUSY);
    assert_string_equal(d.reason, "at capacity: limits.max_sessions is 10");
    r.sessions = 5;
    r.sessions_from_ip = 3;
    assert_int_equal(es_admit(f->reg, f->cfg, &r, &d), ES_ELIMIT);
    /* a connection counted at accept is not counted twice */
    r.counted = true;
    assert_int_equal(es_admit(f->reg, f->cfg, &r, &d), 0);
    /* HLS requests are not sessions */
    r.counted = false;
    r.protocol = ES_PROTO_HLS;
    assert_int_equal(es_admit(f->reg, f->cfg, &r, &d), 0);
    char why[128];
    assert_int_equal(es_admit_connection(f->cfg, 2, 3, why, sizeof why), ES_ELIMIT);
    assert_int_equal(es_admit_connection(f->cfg, 2, 2, why, sizeof why), 0);
}

static int kicked;
static void kick(void *user, const char *why)
{
    es_stream_t *st = user;
    kicked++;
    es_live_source_ended(st, 0);
    (void)why;
}

static void test_one_publisher_or_a_takeover(void **state)
{
    fixture_t *f = *state;
    es_stream_t *st;
    assert_int_equal(es_live_open(f->reg, "open", "cam", 1000000, &st), 0);
    assert_int_equal(es_live_source_begin(st, ES_SOURCE_WEBRTC, kick, st, f->cfg, 1000000), 0);
    assert_int_equal(es_live_source_begin(st, ES_SOURCE_RTMP, kick, st, f->cfg, 1000000), ES_EEXIST);
    es_admit_request_t r = {.app = "open", .stream = "cam", .role = ES_ADMIT_PUBLISH,
                            .protocol = ES_PROTO_RTMP, .now_us = 2500000};
    es_admit_decision_t d;
    /* 1.5 s of silence: still the publisher's */
    assert_int_equal(es_admit(f->reg, f->cfg, &r, &d), ES_EEXIST);
    assert_string_equal(d.reason, "stream open/cam is already being published (over WebRTC)");
    /* 2 s: taken over */
    r.now_us = 1000000 + ES_TAKEOVER_SILENCE_US;
    assert_int_equal(es_admit(f->reg, f->cfg, &r, &d), 0);
    assert_true(d.takeover);
    assert_ptr_equal(d.stream, st);
    es_live_source_kick(st, "replaced");
    assert_int_equal(kicked, 1);
    assert_int_equal(st->source, ES_SOURCE_NONE);
    /* an app with publisher_takeover off never hands over */
    es_stream_t *s2;
    assert_int_equal(es_live_open(f->reg, "strict", "cam", 0, &s2), 0);
    assert_int_equal(es_live_source_begin(s2, ES_SOURCE_RTMP, kick, s2, f->cfg, 0), 0);
    r.app = "strict";
    r.now_us = 60000000;
    assert_int_equal(es_admit(f->reg, f->cfg, &r, &d), ES_EEXIST);
    assert_non_null(strstr(d.reason, "publisher_takeover is off"));
    es_live_source_ended(s2, 0);
}

static void test_clients_table(void **state)
{
    (void)state;
    char ip[48];
    es_client_ip("192.0.2.7:5000", ip, sizeof ip);
    assert_string_equal(ip, "192.0.2.7");
    es_client_ip("[2001:db8:1:2:aaaa::1]:443", ip, sizeof ip);
    assert_string_equal(ip, "2001:db8:1:2::/64"); /* one client's prefix */
    es_client_ip("2001:db8:1:2:bbbb::7", ip, sizeof ip);
    assert_string_equal(ip, "2001:db8:1:2::/64");
    es_client_ip("[::ffff:192.0.2.7]:5000", ip, sizeof ip);
    assert_string_equal(ip, "192.0.2.7");           /* dual stack: the IPv4 client */
    es_client_ip("[::1]:80", ip, sizeof ip);
    assert_string_equal(ip, "::/64");
    es_clients_t *t = es_clients_new();
    assert_int_equal(es_clients_add(t, "192.0.2.7"), 0);
    assert_int_equal(es_clients_add(t, "192.0.2.7"), 0);
    assert_int_equal(es_clients_sessions(t, "192.0.2.7"), 2);
    assert_int_equal(es_clients_sessions(t, "192.0.2.8"), 0);
    es_clients_remove(t, "192.0.2.7");
    assert_int_equal(es_clients_sessions(t, "192.0.2.7"), 1);
    /* offers: a burst of 2 * rate, then rate a second */
    int ok = 0;
    for (int i = 0; i < 50; i++) ok += es_clients_offer(t, "198.51.100.1", 5, 0);
    assert_int_equal(ok, 10);
    assert_false(es_clients_offer(t, "198.51.100.1", 5, 100000));
    assert_true(es_clients_offer(t, "198.51.100.1", 5, 250000)); /* one token back */
    assert_true(es_clients_offer(t, "198.51.100.2", 5, 250000)); /* others unaffected */
    assert_true(es_clients_offer(t, "198.51.100.1", 0, 250000)); /* 0: no limit */
    /* expiry keeps addresses with sessions or a bucket still refilling */
    assert_int_equal(es_clients_expire(t, 5, 300000), 3);
    assert_int_equal(es_clients_expire(t, 5, 10000000), 1);
    es_clients_remove(t, "192.0.2.7");
    assert_int_equal(es_clients_expire(t, 5, 10000000), 0);
    es_clients_free(t);
    assert_string_equal(es_bearer_token("Bearer  abc"), "abc");
    assert_string_equal(es_bearer_token("bearer x"), "x");
    assert_null(es_bearer_token("Basic eA=="));
    assert_null(es_bearer_token(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_refusal_for_every_protocol, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_publisher_or_a_takeover, setup, teardown),
        cmocka_unit_test(test_clients_table),
    };
    return cmocka_run_group_tests_name("admission", tests, NULL, NULL);
}
