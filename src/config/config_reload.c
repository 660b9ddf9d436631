/* SIGHUP support: which keys differ between the running and the re-read configuration, and
 * carrying the restart-only ones over so that the new configuration describes what runs. */
#include "config_schema.h"

#include "estuary/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool str_eq(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

static bool apps_eq(const es_app_config_t *a, size_t na, const es_app_config_t *b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < na; i++) {
        const es_app_config_t *x = &a[i], *y = &b[i];
        if (!str_eq(x->name, y->name) || !str_eq(x->publish_token, y->publish_token) ||
            !str_eq(x->play_token, y->play_token) || x->rtmp_to_rtc != y->rtmp_to_rtc ||
            x->rtc_to_rtmp != y->rtc_to_rtmp || x->hls != y->hls ||
            x->publisher_takeover != y->publisher_takeover || !str_eq(x->on_publish, y->on_publish) ||
            !str_eq(x->on_unpublish, y->on_unpublish) || !str_eq(x->on_play, y->on_play) ||
            !str_eq(x->on_stop, y->on_stop) || !str_eq(x->origin, y->origin) ||
            x->origin_idle_ms != y->origin_idle_ms || !str_eq(x->origin_token, y->origin_token) ||
            !str_eq(x->balancer_token, y->balancer_token) || x->n_balancer != y->n_balancer)
            return false;
        for (size_t k = 0; k < x->n_balancer; k++)
            if (!str_eq(x->balancer[k], y->balancer[k])) return false;
    }
    return true;
}

static bool field_eq(const void *a, const void *b, const key_spec_t *k)
{
    const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;
    switch (k->kind) {
    case KEY_STR:
    case KEY_OPTSTR: return str_eq(*(char *const *)pa, *(char *const *)pb);
    case KEY_BOOL: return *(const bool *)pa == *(const bool *)pb;
    case KEY_U32: return *(const uint32_t *)pa == *(const uint32_t *)pb;
    case KEY_LEVEL: return *(const es_log_level_t *)pa == *(const es_log_level_t *)pb;
    case KEY_LISTEN: {
        const es_listen_t *x = (const es_listen_t *)pa, *y = (const es_listen_t *)pb;
        return x->enabled == y->enabled && (!x->enabled || strcmp(x->text, y->text) == 0);
    }
    case KEY_STRLIST: {
        size_t na = *(const size_t *)((const char *)a + k->offset2);
        size_t nb = *(const size_t *)((const char *)b + k->offset2);
        if (na != nb) return false;
        for (size_t i = 0; i < na; i++)
            if (!str_eq((*(char **const *)pa)[i], (*(char **const *)pb)[i])) return false;
        return true;
    }
    case KEY_APPS:
        return apps_eq(*(es_app_config_t *const *)pa, *(const size_t *)((const char *)a + k->offset2),
                       *(es_app_config_t *const *)pb, *(const size_t *)((const char *)b + k->offset2));
    case KEY_RELAYS: {
        size_t na = *(const size_t *)((const char *)a + k->offset2);
        size_t nb = *(const size_t *)((const char *)b + k->offset2);
        const es_relay_config_t *x = *(es_relay_config_t *const *)pa;
        const es_relay_config_t *y = *(es_relay_config_t *const *)pb;
        if (na != nb) return false;
        for (size_t i = 0; i < na; i++)
            if (!str_eq(x[i].direction, y[i].direction) || !str_eq(x[i].stream, y[i].stream) ||
                !str_eq(x[i].url, y[i].url) || !str_eq(x[i].token, y[i].token))
                return false;
        return true;
    }
    case KEY_MAP: return true; /* compared through its children */
    }
    return false;
}

typedef struct {
    char *out;
    size_t len, used;
    int count;
} keylist_t;

static void add_key(keylist_t *kl, const char *path)
{
    kl->count++;
    if (!kl->out || kl->len == 0) return;
    int n = snprintf(kl->out + kl->used, kl->len - kl->used, "%s%s", kl->used ? ", " : "", path);
    if (n > 0) kl->used = kl->used + (size_t)n < kl->len ? kl->used + (size_t)n : kl->len - 1;
}

static void diff(const es_config_t *a, const es_config_t *b, const key_spec_t *keys,
                 const char *parent, bool restart_only, keylist_t *kl)
{
    for (const key_spec_t *k = keys; k->name; k++) {
        char path[128];
        if (*parent) snprintf(path, sizeof path, "%s.%s", parent, k->name);
        else snprintf(path, sizeof path, "%s", k->name);
        if (k->kind == KEY_MAP) {
            diff(a, b, k->children, path, restart_only, kl);
            continue;
        }
        if (restart_only && !k->restart) continue;
        if (!field_eq(a, b, k)) add_key(kl, path);
    }
}

int es_config_diff(const es_config_t *a, const es_config_t *b, bool restart_only, char *out,
                   size_t out_len)
{
    keylist_t kl = {.out = out, .len = out_len};
    if (out && out_len) out[0] = '\0';
    diff(a, b, es_config_root_keys, "", restart_only, &kl);
    return kl.count;
}

static int copy_field(es_config_t *dst, const es_config_t *src, const key_spec_t *k)
{
    char *pd = (char *)dst + k->offset;
    const char *ps = (const char *)src + k->offset;
    switch (k->kind) {
    case KEY_STR:
    case KEY_OPTSTR: {
        const char *s = *(char *const *)ps;
        char *copy = s ? strdup(s) : NULL;
        if (s && !copy) return ES_ENOMEM;
        free(*(char **)pd);
        *(char **)pd = copy;
        return 0;
    }
    case KEY_LISTEN: memcpy(pd, ps, sizeof(es_listen_t)); return 0;
    case KEY_BOOL: memcpy(pd, ps, sizeof(bool)); return 0;
    case KEY_U32: memcpy(pd, ps, sizeof(uint32_t)); return 0;
    case KEY_LEVEL: memcpy(pd, ps, sizeof(es_log_level_t)); return 0;
    default: return ES_EINVAL; /* lists and apps are never restart-only */
    }
}

static int keep(es_config_t *dst, const es_config_t *src, const key_spec_t *keys)
{
    for (const key_spec_t *k = keys; k->name; k++) {
        int rc = 0;
        if (k->kind == KEY_MAP) rc = keep(dst, src, k->children);
        else if (k->restart && !field_eq(dst, src, k)) rc = copy_field(dst, src, k);
        if (rc < 0) return rc;
    }
    return 0;
}

int es_config_keep_restart_keys(const es_config_t *running, es_config_t *next)
{
    return keep(next, running, es_config_root_keys);
}
