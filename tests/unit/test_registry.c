/* Unit tests for src/media/registry.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_add_find_remove(void **state)
{
    es_registry_t *reg = es_registry_new();
    es_stream_t *s = NULL, *again = NULL;
    assert_int_equal(es_registry_add(reg, "live", "cam", 42, &s), 0);
    assert_string_equal(s->key, "live/cam");
    assert_int_equal(s->created_us, 42);
    assert_int_equal(es_registry_add(reg, "live", "cam", 43, &again), ES_EEXIST);
    assert_ptr_equal(again, s);
    assert_ptr_equal(es_registry_find(reg, "live", "cam"), s);
    assert_null(es_registry_find(reg, "live", "cam2"));
    assert_null(es_registry_find(reg, "liv", "ecam"));
    assert_int_equal(es_registry_count(reg), 1);
    es_registry_remove(reg, s);
    assert_null(es_registry_find(reg, "live", "cam"));
    assert_int_equal(es_registry_count(reg), 0);
    es_registry_free(reg);
}

static void test_names(void **state)
{
    es_registry_t *reg = es_registry_new();
    const char *bad[] = {"", ".hidden", "a/b", "a b", "x\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(es_registry_add(reg, "live", bad[i], 0, NULL), ES_EINVAL);
    char longname[ES_STREAM_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(es_registry_add(reg, "live", longname, 0, NULL), ES_EINVAL);
    longname[ES_STREAM_NAME_MAX] = '\0';
    assert_int_equal(es_registry_add(reg, "live", longname, 0, NULL), 0);
    es_registry_free(reg);
}

static void test_many_and_sorted_list(void **state)
{
    es_registry_t *reg = es_registry_new();
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "s%04d", 999 - i);
        assert_int_equal(es_registry_add(reg, "app", name, 0, NULL), 0);
    }
    assert_int_equal(es_registry_count(reg), 1000);
    for (int i = 0; i < 1000; i += 97) {
        snprintf(name, sizeof name, "s%04d", i);
        assert_non_null(es_registry_find(reg, "app", name));
    }
    es_stream_t **list = calloc(1000, sizeof *list);
    assert_int_equal(es_registry_list(reg, list, 1000), 1000);
    for (int i = 1; i < 1000; i++) assert_true(strcmp(list[i - 1]->key, list[i]->key) < 0);
    for (int i = 0; i < 1000; i += 2) es_registry_remove(reg, list[i]);
    assert_int_equal(es_registry_count(reg), 500);
    free(list);
    es_registry_free(reg); /* frees the 500 left */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_remove),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_many_and_sorted_list),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
