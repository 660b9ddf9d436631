/* Unit tests for src/webrtc/ice.c: the RFC 5769 §2.1 sample request, a round trip with a libnice
 * client agent (nomination, XOR-MAPPED-ADDRESS), our controlling agent against our lite one,
 * wrong credentials, and the ufrag peek. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/ice.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <stun/stunagent.h>
#include <stun/usages/ice.h>

/* RFC 5769 §2.1: USERNAME "evtj:h6vY", password "VOkJxbRl1RmTxUk/WvJxBt". */
static const uint8_t rfc5769_request[] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};
static const char rfc5769_pwd[] = "VOkJxbRl1RmTxUk/WvJxBt";

static struct sockaddr_in addr4(const char *ip, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static void test_peek_ufrag(void **state)
{
    char u[64];
    assert_int_equal(es_stun_peek_ufrag(rfc5769_request, sizeof rfc5769_request, u, sizeof u), 4);
    assert_string_equal(u, "evtj");
    assert_int_equal(es_stun_peek_ufrag(rfc5769_request, sizeof rfc5769_request, u, 4), ES_E2BIG);
    assert_int_equal(es_stun_peek_ufrag(rfc5769_request, 19, u, sizeof u), ES_EPROTO);
    uint8_t bad[sizeof rfc5769_request];
    memcpy(bad, rfc5769_request, sizeof bad);
    bad[4] = 0; /* magic cookie */
    assert_int_equal(es_stun_peek_ufrag(bad, sizeof bad, u, sizeof u), ES_EPROTO);
    memcpy(bad, rfc5769_request, sizeof bad);
    bad[3] = 0xfc; /* length past the datagram */
    assert_int_equal(es_stun_peek_ufrag(bad, sizeof bad, u, sizeof u), ES_EPROTO);
    const uint8_t no_username[] = {0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    assert_int_equal(es_stun_peek_ufrag(no_username, sizeof no_username, u, sizeof u), ES_ENOENT);
}

static es_ice_t *lite(const char *lu, const char *lp, const char *ru)
{
    es_ice_params_t p = {.local_ufrag = lu, .local_pwd = lp, .remote_ufrag = ru};
    return es_ice_new(&p);
}

static int handle(es_ice_t *ice, const uint8_t *buf, size_t len, const struct sockaddr_in *from,
                  uint8_t *out, es_ice_msg_t *msg)
{
    return es_ice_handle_stun(ice, buf, len, (const struct sockaddr *)from, sizeof *from, out,
                              ES_ICE_MSG_MAX, msg);
}

static void test_rfc5769_sample_request(void **state)
{
    es_ice_t *ice = lite("evtj", rfc5769_pwd, "h6vY");
    struct sockaddr_in from = addr4("192.0.2.1", 32853);
    uint8_t out[ES_ICE_MSG_MAX];
    es_ice_msg_t msg;
    int n = handle(ice, rfc5769_request, sizeof rfc5769_request, &from, out, &msg);
    assert_true(n > 20);
    assert_int_equal(out[0] << 8 | out[1], 0x0101); /* Binding success response */
    assert_memory_equal(out + 8, rfc5769_request + 8, 12); /* same transaction ID */
    assert_int_equal(msg.kind, ES_ICE_MSG_REQUEST);
    assert_false(msg.use_candidate); /* no USE-CANDIDATE in the sample */
    assert_int_equal(msg.priority, 0x6e0001ff);
    es_ice_free(ice);

    /* The same bytes with another password or another remote ufrag are dropped. */
    ice = lite("evtj", "wrong-password-wrong-password", "h6vY");
    assert_int_equal(handle(ice, rfc5769_request, sizeof rfc5769_request, &from, out, &msg),
                     ES_EPROTO);
    es_ice_free(ice);
    ice = lite("evtj", rfc5769_pwd, "other");
    assert_int_equal(handle(ice, rfc5769_request, sizeof rfc5769_request, &from, out, &msg),
                     ES_EPROTO);
    es_ice_free(ice);
    /* A flipped bit breaks MESSAGE-INTEGRITY/FINGERPRINT. */
    ice = lite("evtj", rfc5769_pwd, "h6vY");
    uint8_t tampered[sizeof rfc5769_request];
    memcpy(tampered, rfc5769_request, sizeof tampered);
    tampered[47] ^= 1; /* priority */
    assert_int_equal(handle(ice, tampered, sizeof tampered, &from, out, &msg), ES_EPROTO);
    es_ice_free(ice);
}

/* A libnice agent as the controlling client (what a browser does), checking our answers. */
static void test_round_trip_with_libnice_client(void **state)
{
    static const uint16_t attrs[] = {STUN_ATTRIBUTE_USERNAME, STUN_ATTRIBUTE_XOR_MAPPED_ADDRESS, STUN_ATTRIBUTE_MESSAGE_INTEGRITY,
                                     STUN_ATTRIBUTE_FINGERPRINT, 0};
    StunAgent client;
    stun_agent_init(&client, attrs, STUN_COMPATIBILITY_RFC5389,
                    STUN_AGENT_USAGE_SHORT_TERM_CREDENTIALS | STUN_AGENT_USAGE_USE_FINGERPRINT);
    const char *lufrag = "srvU", *lpwd = "server-password-0123456789", *rufrag = "cliU";
    es_ice_t *ice = lite(lufrag, lpwd, rufrag);
    struct sockaddr_in from = addr4("198.51.100.20", 50000);
    for (int nominate = 0; nominate < 2; nominate++) {
        StunMessage req, resp;
        uint8_t rbuf[512], out[ES_ICE_MSG_MAX];
        size_t rlen = stun_usage_ice_conncheck_create(
            &client, &req, rbuf, sizeof rbuf, (const uint8_t *)"srvU:cliU", 9,
            (const uint8_t *)lpwd, strlen(lpwd), nominate, true, 0x6e0001ff, 42, NULL,
            STUN_USAGE_ICE_COMPATIBILITY_RFC5245);
        assert_true(rlen > 0);
        char u[32];
        assert_int_equal(es_stun_peek_ufrag(rbuf, rlen, u, sizeof u), 4);
        assert_string_equal(u, lufrag);
        es_ice_msg_t msg;
        int n = handle(ice, rbuf, rlen, &from, out, &msg);
        assert_true(n > 0);
        assert_int_equal(msg.kind, ES_ICE_MSG_REQUEST);
        assert_int_equal(msg.use_candidate, nominate == 1);
        StunDefaultValidaterData v[] = {{(uint8_t *)"srvU:cliU", 9, (uint8_t *)lpwd, strlen(lpwd)},
                                        {NULL, 0, NULL, 0}};
        assert_int_equal(stun_agent_validate(&client, &resp, out, (size_t)n,
                                             stun_agent_default_validater, v),
                         STUN_VALIDATION_SUCCESS);
        struct sockaddr_storage mapped;
        socklen_t mlen = sizeof mapped;
        assert_int_equal(stun_usage_ice_conncheck_process(&resp, &mapped, &mlen,
                                                          STUN_USAGE_ICE_COMPATIBILITY_RFC5245),
                         STUN_USAGE_ICE_RETURN_SUCCESS);
        struct sockaddr_in *m = (struct sockaddr_in *)&mapped;
        assert_int_equal(m->sin_port, from.sin_port);
        assert_int_equal(m->sin_addr.s_addr, from.sin_addr.s_addr);
    }
    es_ice_free(ice);
}

/* Our controlling agent against our lite agent: checks, responses, USE-CANDIDATE, forgetting. */
static void test_controlling_checks(void **state)
{
    es_ice_params_t cp = {.local_ufrag = "offU", .local_pwd = "offerer-password-0123456789",
                          .remote_ufrag = "ansU", .remote_pwd = "answerer-password-0123456789",
                          .controlling = true};
    es_ice_t *off = es_ice_new(&cp);
    es_ice_t *ans = lite("ansU", "answerer-password-0123456789", "offU");
    assert_non_null(off);
    assert_non_null(ans);
    struct sockaddr_in a_off = addr4("192.0.2.1", 5000), a_ans = addr4("198.51.100.1", 8000);
    uint8_t req[ES_ICE_MSG_MAX], resp[ES_ICE_MSG_MAX], txid[ES_ICE_TXID_LEN], small[100];
    es_ice_msg_t msg;
    assert_int_equal(es_ice_check_create(off, false, 1, small, sizeof small, txid), ES_E2BIG);
    for (int nominate = 0; nominate < 2; nominate++) {
        int n = es_ice_check_create(off, nominate, 0x6effffff, req, sizeof req, txid);
        assert_true(n > 20);
        char u[32];
        assert_int_equal(es_stun_peek_ufrag(req, (size_t)n, u, sizeof u), 4);
        assert_string_equal(u, "ansU");
        int r = handle(ans, req, (size_t)n, &a_off, resp, &msg);
        assert_true(r > 20);
        assert_int_equal(msg.kind, ES_ICE_MSG_REQUEST);
        assert_int_equal(msg.use_candidate, nominate == 1);
        assert_int_equal(msg.priority, 0x6effffff);
        /* The offerer's own requests are not for it (USERNAME is "ansU:offU"). */
        assert_int_equal(handle(off, req, (size_t)n, &a_ans, resp + 0, &msg), ES_EPROTO);
        r = handle(ans, req, (size_t)n, &a_off, resp, &msg);
        assert_int_equal(handle(off, resp, (size_t)r, &a_ans, req, &msg), 0);
        assert_int_equal(msg.kind, ES_ICE_MSG_SUCCESS);
        assert_memory_equal(msg.txid, txid, ES_ICE_TXID_LEN);
        /* The same response twice: the transaction is over. */
        assert_int_equal(handle(off, resp, (size_t)r, &a_ans, req, &msg), ES_EPROTO);
    }
    /* A response to a forgotten check is dropped. */
    int n = es_ice_check_create(off, false, 1, req, sizeof req, txid);
    int r = handle(ans, req, (size_t)n, &a_off, resp, &msg);
    es_ice_check_forget(off, txid);
    assert_int_equal(handle(off, resp, (size_t)r, &a_ans, req, &msg), ES_EPROTO);
    /* A lite agent sends no checks. */
    assert_int_equal(es_ice_check_create(ans, false, 1, req, sizeof req, txid), ES_EINVAL);
    es_ice_free(off);
    es_ice_free(ans);
}

static void test_new_rejects_bad_credentials(void **state)
{
    assert_null(lite("", "pwd", "r"));
    assert_null(lite("u", "", "r"));
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_null(lite(big, "pwd", "r"));
    es_ice_params_t p = {.local_ufrag = "u", .local_pwd = "pwd", .remote_ufrag = "r",
                         .remote_pwd = big};
    assert_null(es_ice_new(&p));
    es_ice_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_ufrag),
        cmocka_unit_test(test_rfc5769_sample_request),
        cmocka_unit_test(test_round_trip_with_libnice_client),
        cmocka_unit_test(test_controlling_checks),
        cmocka_unit_test(test_new_rejects_bad_credentials),
    };
    return cmocka_run_group_tests_name("ice", tests, NULL, NULL);
}
