/* Unit tests for src/core/log.c: level parsing, line format with context, file and reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void test_levels(void **state)
{
    es_log_level_t l;
    assert_int_equal(es_log_level_parse("WARN", &l), 0);
    assert_int_equal(l, ES_LOG_WARN);
    assert_true(es_log_level_parse("verbose", &l) < 0);
    assert_string_equal(es_log_level_name(ES_LOG_TRACE), "trace");
}

static void test_file_context_and_reopen(void **state)
{
    char path[] = "/tmp/es_test_log_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(es_log_open(path), 0);
    es_log_set_level(ES_LOG_INFO);
    es_log_ctx_t ctx = {.peer = "p1", .remote = "127.0.0.1:5000", .stream = "live/cam"};
    ES_INFO("test", &ctx, "hello %d", 7);
    ES_DEBUG("test", &ctx, "not written");
    char buf[8192];
    read_file(path, buf, sizeof buf);
    assert_non_null(strstr(buf, "INFO  test: peer=p1 remote=127.0.0.1:5000 stream=live/cam hello 7\n"));
    assert_null(strstr(buf, "not written"));
    assert_true(buf[4] == '-' && buf[10] == 'T'); /* ISO 8601 timestamp first */

    /* logrotate: move the file away, reopen, and the next line lands in a new file. */
    char moved[64];
    snprintf(moved, sizeof moved, "%s.1", path);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(es_log_reopen(), 0);
    ES_WARN("test", NULL, "after rotate");
    read_file(path, buf, sizeof buf);
    assert_non_null(strstr(buf, "WARN  test: after rotate\n"));

    /* A very long line is truncated but still ends with a newline. */
    char *big = malloc(10000);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    ES_ERROR("test", NULL, "%s", big);
    free(big);
    read_file(path, buf, sizeof buf);
    assert_int_equal(buf[strlen(buf) - 1], '\n');
    es_log_close();
    unlink(path);
    unlink(moved);
}

/* One call site, as a flood from one place in the server would be. */
static void flood(int i) { ES_INFO("test", NULL, "flood %d", i); }

/* A client's control characters are escaped; a flood from one call site is cut to the burst
 * and the next line after the refill says how many were suppressed. */
static void test_escape_and_rate_limit(void **state)
{
    char path[] = "/tmp/es_test_log_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(es_log_open(path), 0);
    es_log_set_level(ES_LOG_DEBUG);
    es_log_ctx_t ctx = {.stream = "live/\x1b[31mred"};
    ES_INFO("test", &ctx, "name '%s'", "a\nFAKE  INFO line\x7f");
    for (int i = 0; i < 100; i++) flood(i);
    for (int i = 0; i < 30; i++) ES_DEBUG("test", NULL, "debug %d", i); /* not limited */
    char *buf = malloc(1 << 16);
    read_file(path, buf, 1 << 16);
    assert_non_null(strstr(buf, "stream=live/\\x1b[31mred name 'a\\nFAKE  INFO line\\x7f'\n"));
    int lines = 0;
    for (const char *p = buf; (p = strstr(p, "flood ")); p++) lines++;
    assert_int_equal(lines, ES_LOG_BURST);
    assert_non_null(strstr(buf, "debug 29"));
    usleep(1000000 / ES_LOG_RATE + 50000); /* one token back */
    flood(100);
    read_file(path, buf, 1 << 16);
    assert_non_null(strstr(buf, "flood 100 (80 similar lines suppressed)\n"));
    /* a flood that stops is counted by the next flush, once */
    for (int i = 0; i < 10; i++) flood(200 + i);
    es_log_flush_suppressed();
    es_log_flush_suppressed();
    read_file(path, buf, 1 << 16);
    const char *rep = strstr(buf, "INFO  test: 10 similar lines suppressed (like: flood %d)\n");
    assert_non_null(rep);
    assert_null(strstr(rep + 20, "similar lines suppressed (like")); /* the second flush: none */
    free(buf);
    es_log_close();
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_file_context_and_reopen),
        cmocka_unit_test(test_escape_and_rate_limit),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
