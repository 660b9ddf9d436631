/* Stream registry: a chained hash table keyed by "app/name" (FNV-1a), doubling when the load
 * factor passes 1. */
#include "estuary/registry.h"

#include "estuary/error.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct es_registry {
    es_stream_t **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
};

static uint32_t hash_key(const char *app, const char *name)
{
    uint32_t h = 2166136261u;
    for (const char *p = app; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

es_registry_t *es_registry_new(void)
{
    es_registry_t *reg = calloc(1, sizeof *reg);
    if (!reg) return NULL;
    reg->n_buckets = 64;
    reg->buckets = calloc(reg->n_buckets, sizeof *reg->buckets);
    if (!reg->buckets) {
        free(reg);
        return NULL;
    }
    return reg;
}

void es_registry_free(es_registry_t *reg)
{
    if (!reg) return;
    for (size_t i = 0; i < reg->n_buckets; i++) {
        es_stream_t *s = reg->buckets[i];
        while (s) {
            es_stream_t *next = s->next_in_bucket;
            free(s);
            s = next;
        }
    }
    free(reg->buckets);
    free(reg);
}

int es_registry_valid_name(const char *s, size_t max)
{
    size_t n = 0;
    if (!s || s[0] == '.') return 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= max || !(isalnum(c) || c == '_' || c == '-' || c == '.')) return 0;
    }
    return n > 0;
}

static void grow(es_registry_t *reg)
{
    size_t n = reg->n_buckets * 2;
    es_stream_t **b = calloc(n, sizeof *b);
    if (!b) return; /* keep the old table: slower, still correct */
    for (size_t i = 0; i < reg->n_buckets; i++) {
        es_stream_t *s = reg->buckets[i];
        while (s) {
            es_stream_t *next = s->next_in_bucket;
            size_t idx = hash_key(s->app, s->name) & (n - 1);
            s->next_in_bucket = b[idx];
            b[idx] = s;
            s = next;
        }
    }
    free(reg->buckets);
    reg->buckets = b;
    reg->n_buckets = n;
}

es_stream_t *es_registry_find(const es_registry_t *reg, const char *app, const char *name)
{
    size_t idx = hash_key(app, name) & (reg->n_buckets - 1);
    for (es_stream_t *s = reg->buckets[idx]; s; s = s->next_in_bucket)
        if (strcmp(s->app, app) == 0 && strcmp(s->name, name) == 0) return s;
    return NULL;
}

int es_registry_add(es_registry_t *reg, const char *app, const char *name, uint64_t now_us,
                    es_stream_t **out)
{
    if (!es_registry_valid_name(app, ES_APP_NAME_MAX) ||
        !es_registry_valid_name(name, ES_STREAM_NAME_MAX))
        return ES_EINVAL;
    es_stream_t *s = es_registry_find(reg, app, name);
    if (s) {
        if (out) *out = s;
        return ES_EEXIST;
    }
    s = calloc(1, sizeof *s);
    if (!s) return ES_ENOMEM;
    strcpy(s->app, app);
    strcpy(s->name, name);
    strcpy(s->key, app);
    strcat(s->key, "/");
    strcat(s->key, name);
    s->created_us = now_us;
    if (reg->count >= reg->n_buckets) grow(reg);
    size_t idx = hash_key(app, name) & (reg->n_buckets - 1);
    s->next_in_bucket = reg->buckets[idx];
    reg->buckets[idx] = s;
    reg->count++;
    if (out) *out = s;
    return 0;
}

void es_registry_remove(es_registry_t *reg, es_stream_t *stream)
{
    size_t idx = hash_key(stream->app, stream->name) & (reg->n_buckets - 1);
    for (es_stream_t **pp = &reg->buckets[idx]; *pp; pp = &(*pp)->next_in_bucket) {
        if (*pp == stream) {
            *pp = stream->next_in_bucket;
            reg->count--;
            free(stream);
            return;
        }
    }
}

size_t es_registry_count(const es_registry_t *reg) { return reg->count; }

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(es_stream_t *const *)a)->key, (*(es_stream_t *const *)b)->key);
}

size_t es_registry_list(const es_registry_t *reg, es_stream_t **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < reg->n_buckets && n < max; i++)
        for (es_stream_t *s = reg->buckets[i]; s && n < max; s = s->next_in_bucket) out[n++] = s;
    qsort(out, n, sizeof *out, cmp_key);
    return n;
}
