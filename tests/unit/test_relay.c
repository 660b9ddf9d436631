/* The WCS-style endpoint URL of a relay (es_relay_url, include/estuary/relay.h): a base URL takes
 * Estuary's /whip|whep/{app}/{stream} layout, a full endpoint URL is kept as it is, and bad input
 * is refused with a reason. */
#include "estuary/error.h"
#include "estuary/relay.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static char out[1024], err[320];

static int url(es_relay_dir_t d, const char *uri, const char *local, const char *remote)
{
    return es_relay_url(d, uri, local, remote, out, sizeof out, err, sizeof err);
}

static void test_base_urls(void **state)
{
    (void)state;
    assert_int_equal(url(ES_RELAY_PUSH, "http://b:8080", "live/cam", "live/cam2"), 0);
    assert_string_equal(out, "http://b:8080/whip/live/cam2");
    assert_int_equal(url(ES_RELAY_PULL, "https://b.example/", "live/cam", "other/x"), 0);
    assert_string_equal(out, "https://b.example/whep/other/x");
    /* A bare remote name is in the local stream's app; none at all is the local name. */
    assert_int_equal(url(ES_RELAY_PUSH, "http://b:8080", "live/cam", "cam2"), 0);
    assert_string_equal(out, "http://b:8080/whip/live/cam2");
    assert_int_equal(url(ES_RELAY_PULL, "http://b:8080", "live/cam", NULL), 0);
    assert_string_equal(out, "http://b:8080/whep/live/cam");
}

static void test_full_urls(void **state)
{
    (void)state;
    assert_int_equal(url(ES_RELAY_PUSH, "https://w.example/api/whip?x=1", "live/cam", NULL), 0);
    assert_string_equal(out, "https://w.example/api/whip?x=1");
    assert_int_equal(url(ES_RELAY_PULL, "http://a:1/whep/live/cam", "live/in", "ignored"), 0);
    assert_string_equal(out, "http://a:1/whep/live/cam");
}

static void test_refusals(void **state)
{
    (void)state;
    assert_int_equal(url(ES_RELAY_PUSH, "ftp://b", "live/cam", "x"), ES_EINVAL);
    assert_string_equal(err, "uri must be an http:// or https:// URL");
    assert_int_equal(url(ES_RELAY_PUSH, NULL, "live/cam", "x"), ES_EINVAL);
    assert_int_equal(url(ES_RELAY_PUSH, "http://b c", "live/cam", "x"), ES_EINVAL);
    assert_int_equal(url(ES_RELAY_PUSH, "http://b:12:/\x02x//w", "live/cam", NULL), ES_EINVAL);
    assert_int_equal(url(ES_RELAY_PUSH, "http://b/\xd1\x93", "live/cam", NULL), ES_EINVAL);
    assert_int_equal(url(ES_RELAY_PUSH, "http://b", "live/cam", "a/b/c"), ES_EINVAL);
    assert_non_null(strstr(err, "remoteStreamName"));
    assert_int_equal(url(ES_RELAY_PUSH, "http://b", "live/cam", "bad name"), ES_EINVAL);
    assert_int_equal(url(ES_RELAY_PUSH, "http://b", NULL, NULL), ES_EINVAL);
    char longuri[1100];
    memset(longuri, 'a', sizeof longuri - 1);
    memcpy(longuri, "http://", 7);
    longuri[sizeof longuri - 1] = '\0';
    assert_int_equal(url(ES_RELAY_PUSH, longuri, "live/cam", NULL), ES_EINVAL);
    char small[24];
    assert_int_equal(es_relay_url(ES_RELAY_PUSH, "http://b.example:8080", "live/cam", NULL, small,
                                  sizeof small, err, sizeof err), ES_EINVAL);
    assert_string_equal(err, "the URL is too long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_urls),
        cmocka_unit_test(test_full_urls),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
