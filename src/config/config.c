/* YAML configuration loader: libyaml's document API -> es_config_t, driven by one key table.
 *
 * Loading never half-applies: a file is parsed into a fresh copy of the defaults and either the
 * whole copy is returned or NULL with one error line "FILE:LINE:COL: KEY: what is wrong". */
#include "config_schema.h"

#include "estuary/error.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#define CONFIG_FILE_MAX (1u << 20) /* a configuration file larger than 1 MiB is a mistake */
#define KEY_PATH_MAX 128

#define CFG(field) offsetof(es_config_t, field)
#define APP(field) offsetof(es_app_config_t, field)

static const key_spec_t log_keys[] = {
    {.name = "level", .kind = KEY_LEVEL, .offset = CFG(log.level)},
    {.name = "file", .kind = KEY_OPTSTR, .offset = CFG(log.file)},
    {0},
};
static const key_spec_t https_keys[] = {
    {.name = "listen", .kind = KEY_LISTEN, .offset = CFG(http.https_listen), .restart = true},
    {.name = "cert", .kind = KEY_OPTSTR, .offset = CFG(http.https_cert), .restart = true},
    {.name = "key", .kind = KEY_OPTSTR, .offset = CFG(http.https_key), .restart = true},
    {0},
};
static const key_spec_t http_keys[] = {
    {.name = "listen", .kind = KEY_LISTEN, .offset = CFG(http.listen), .restart = true},
    {.name = "https", .kind = KEY_MAP, .children = https_keys},
    {.name = "cors_origin", .kind = KEY_STR, .offset = CFG(http.cors_origin)},
    {.name = "web_root", .kind = KEY_OPTSTR, .offset = CFG(http.web_root), .restart = true},
    {0},
};
static const key_spec_t webrtc_keys[] = {
    {.name = "udp_listen", .kind = KEY_LISTEN, .offset = CFG(webrtc.udp_listen), .restart = true},
    {.name = "tcp_listen", .kind = KEY_LISTEN, .offset = CFG(webrtc.tcp_listen), .restart = true},
    {.name = "tcp_on_http", .kind = KEY_BOOL, .offset = CFG(webrtc.tcp_on_http), .restart = true},
    {.name = "protocol", .kind = KEY_STR, .offset = CFG(webrtc.protocol)},
    {.name = "candidates", .kind = KEY_STRLIST, .offset = CFG(webrtc.candidates),
     .offset2 = CFG(webrtc.n_candidates)},
    {.name = "nack", .kind = KEY_BOOL, .offset = CFG(webrtc.nack)},
    {.name = "twcc", .kind = KEY_BOOL, .offset = CFG(webrtc.twcc)},
    {.name = "remb", .kind = KEY_BOOL, .offset = CFG(webrtc.remb)},
    {.name = "publisher_timeout_ms", .kind = KEY_U32, .offset = CFG(webrtc.publisher_timeout_ms),
     .min = 1000, .max = 600000},
    {.name = "player_timeout_ms", .kind = KEY_U32, .offset = CFG(webrtc.player_timeout_ms),
     .min = 1000, .max = 600000},
    {.name = "dtls_timeout_ms", .kind = KEY_U32, .offset = CFG(webrtc.dtls_timeout_ms),
     .min = 1000, .max = 120000},
    {.name = "dtls_cert", .kind = KEY_OPTSTR, .offset = CFG(webrtc.dtls_cert), .restart = true},
    {.name = "dtls_key", .kind = KEY_OPTSTR, .offset = CFG(webrtc.dtls_key), .restart = true},
    {0},
};
static const key_spec_t rtmp_keys[] = {
    {.name = "listen", .kind = KEY_LISTEN, .offset = CFG(rtmp.listen), .restart = true},
    {.name = "chunk_size", .kind = KEY_U32, .offset = CFG(rtmp.chunk_size), .min = 128,
     .max = 65536},
    {.name = "handshake_timeout_ms", .kind = KEY_U32, .offset = CFG(rtmp.handshake_timeout_ms),
     .min = 1000, .max = 120000},
    {.name = "connect_timeout_ms", .kind = KEY_U32, .offset = CFG(rtmp.connect_timeout_ms),
     .min = 1000, .max = 120000},
    {.name = "idle_timeout_ms", .kind = KEY_U32, .offset = CFG(rtmp.idle_timeout_ms),
     .min = 1000, .max = 3600000},
    {.name = "max_message_bytes", .kind = KEY_U32, .offset = CFG(rtmp.max_message_bytes),
     .min = 65536, .max = 16777215},
    {.name = "player_queue_ms", .kind = KEY_U32, .offset = CFG(rtmp.player_queue_ms), .min = 500,
     .max = 60000},
    {.name = "player_queue_bytes", .kind = KEY_U32, .offset = CFG(rtmp.player_queue_bytes),
     .min = 65536, .max = 1073741824},
    {.name = "player_stall_ms", .kind = KEY_U32, .offset = CFG(rtmp.player_stall_ms), .min = 1000,
     .max = 600000},
    {.name = "gop_cache_bytes", .kind = KEY_U32, .offset = CFG(rtmp.gop_cache_bytes), .min = 0,
     .max = 1073741824},
    {.name = "opus_bitrate", .kind = KEY_U32, .offset = CFG(rtmp.opus_bitrate), .min = 6000,
     .max = 510000},
    {0},
};
static const key_spec_t hls_keys[] = {
    {.name = "directory", .kind = KEY_STR, .offset = CFG(hls.directory), .restart = true},
    {.name = "segment_ms", .kind = KEY_U32, .offset = CFG(hls.segment_ms), .min = 500,
     .max = 60000},
    {.name = "window", .kind = KEY_U32, .offset = CFG(hls.window), .min = 1, .max = 100},
    {.name = "fmp4", .kind = KEY_BOOL, .offset = CFG(hls.fmp4)},
    {.name = "cleanup_ms", .kind = KEY_U32, .offset = CFG(hls.cleanup_ms), .min = 0,
     .max = 86400000},
    {.name = "max_segment_ms", .kind = KEY_U32, .offset = CFG(hls.max_segment_ms), .min = 1000,
     .max = 600000},
    {.name = "max_segment_bytes", .kind = KEY_U32, .offset = CFG(hls.max_segment_bytes),
     .min = 65536, .max = 1073741824},
    {0},
};
static const key_spec_t api_keys[] = {
    {.name = "token", .kind = KEY_OPTSTR, .offset = CFG(api.token)},
    {0},
};
static const key_spec_t hooks_keys[] = {
    {.name = "timeout_ms", .kind = KEY_U32, .offset = CFG(hooks.timeout_ms), .min = 100,
     .max = 20000}, /* below the HTTP connections' 30 s timeout */
    {0},
};
static const key_spec_t limits_keys[] = {
    {.name = "max_sessions", .kind = KEY_U32, .offset = CFG(limits.max_sessions), .min = 1,
     .max = 1000000},
    {.name = "max_sessions_per_ip", .kind = KEY_U32, .offset = CFG(limits.max_sessions_per_ip),
     .min = 0, .max = 1000000},
    {.name = "offers_per_ip", .kind = KEY_U32, .offset = CFG(limits.offers_per_ip), .min = 0,
     .max = 100000},
    {.name = "player_wait_ms", .kind = KEY_U32, .offset = CFG(limits.player_wait_ms), .min = 0,
     .max = 86400000},
    {.name = "max_http_body", .kind = KEY_U32, .offset = CFG(limits.max_http_body), .min = 1024,
     .max = 64u << 20},
    {0},
};
const key_spec_t es_config_app_keys[] = {
    {.name = "publish_token", .kind = KEY_OPTSTR, .offset = APP(publish_token)},
    {.name = "play_token", .kind = KEY_OPTSTR, .offset = APP(play_token)},
    {.name = "rtmp_to_rtc", .kind = KEY_BOOL, .offset = APP(rtmp_to_rtc)},
    {.name = "rtc_to_rtmp", .kind = KEY_BOOL, .offset = APP(rtc_to_rtmp)},
    {.name = "hls", .kind = KEY_BOOL, .offset = APP(hls)},
    {.name = "publisher_takeover", .kind = KEY_BOOL, .offset = APP(publisher_takeover)},
    {.name = "on_publish", .kind = KEY_OPTSTR, .offset = APP(on_publish)},
    {.name = "on_unpublish", .kind = KEY_OPTSTR, .offset = APP(on_unpublish)},
    {.name = "on_play", .kind = KEY_OPTSTR, .offset = APP(on_play)},
    {.name = "on_stop", .kind = KEY_OPTSTR, .offset = APP(on_stop)},
    {.name = "origin", .kind = KEY_OPTSTR, .offset = APP(origin)},
    {.name = "origin_idle_ms", .kind = KEY_U32, .offset = APP(origin_idle_ms), .min = 0,
     .max = 3600000},
    {.name = "origin_token", .kind = KEY_OPTSTR, .offset = APP(origin_token)},
    {.name = "balancer", .kind = KEY_STRLIST, .offset = APP(balancer),
     .offset2 = APP(n_balancer)},
    {.name = "balancer_token", .kind = KEY_OPTSTR, .offset = APP(balancer_token)},
    {0},
};
#define RELAY(field) offsetof(es_relay_config_t, field)
const key_spec_t es_config_relay_keys[] = {
    {.name = "direction", .kind = KEY_STR, .offset = RELAY(direction)},
    {.name = "stream", .kind = KEY_STR, .offset = RELAY(stream)},
    {.name = "url", .kind = KEY_STR, .offset = RELAY(url)},
    {.name = "token", .kind = KEY_OPTSTR, .offset = RELAY(token)},
    {0},
};
const key_spec_t es_config_root_keys[] = {
    {.name = "log", .kind = KEY_MAP, .children = log_keys},
    {.name = "http", .kind = KEY_MAP, .children = http_keys},
    {.name = "webrtc", .kind = KEY_MAP, .children = webrtc_keys},
    {.name = "rtmp", .kind = KEY_MAP, .children = rtmp_keys},
    {.name = "hls", .kind = KEY_MAP, .children = hls_keys},
    {.name = "apps", .kind = KEY_APPS, .offset = CFG(apps), .offset2 = CFG(n_apps)},
    {.name = "limits", .kind = KEY_MAP, .children = limits_keys},
    {.name = "api", .kind = KEY_MAP, .children = api_keys},
    {.name = "hooks", .kind = KEY_MAP, .children = hooks_keys},
    {.name = "relays", .kind = KEY_RELAYS, .offset = CFG(relays), .offset2 = CFG(n_relays)},
    {0},
};

/* ---- app entries ---- */

void es_config_app_deinit(es_app_config_t *app)
{
    free(app->name);
    free(app->publish_token);
    free(app->play_token);
    free(app->on_publish);
    free(app->on_unpublish);
    free(app->on_play);
    free(app->on_stop);
    free(app->origin);
    free(app->origin_token);
    for (size_t i = 0; app->balancer && i < app->n_balancer; i++) free(app->balancer[i]);
    free(app->balancer);
    free(app->balancer_token);
    memset(app, 0, sizeof *app);
}

int es_config_app_defaults(es_app_config_t *app, const char *name)
{
    memset(app, 0, sizeof *app);
    app->name = strdup(name);
    if (!app->name) return ES_ENOMEM;
    app->rtmp_to_rtc = true;
    app->rtc_to_rtmp = true;
    app->hls = true;
    app->publisher_takeover = true;
    app->origin_idle_ms = 10000;
    return 0;
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src) return 0;
    *dst = strdup(src);
    return *dst ? 0 : ES_ENOMEM;
}

int es_config_app_copy(es_app_config_t *dst, const es_app_config_t *src)
{
    es_app_config_t tmp = *src;
    char **dsts[] = {&tmp.name, &tmp.publish_token, &tmp.play_token, &tmp.on_publish,
                     &tmp.on_unpublish, &tmp.on_play, &tmp.on_stop, &tmp.origin,
                     &tmp.origin_token, &tmp.balancer_token};
    const char *srcs[] = {src->name, src->publish_token, src->play_token, src->on_publish,
                          src->on_unpublish, src->on_play, src->on_stop, src->origin,
                          src->origin_token, src->balancer_token};
    size_t n = sizeof dsts / sizeof dsts[0], done = 0;
    while (done < n && dup_opt(dsts[done], srcs[done]) == 0) done++;
    tmp.balancer = NULL;
    tmp.n_balancer = 0;
    bool ok = done == n;
    if (ok && src->n_balancer) {
        ok = (tmp.balancer = calloc(src->n_balancer, sizeof *tmp.balancer)) != NULL;
        for (size_t i = 0; ok && i < src->n_balancer; i++, tmp.n_balancer++)
            ok = dup_opt(&tmp.balancer[i], src->balancer[i]) == 0;
    }
    if (!ok) {
        for (size_t i = 0; i < done; i++) free(*dsts[i]);
        for (size_t i = 0; i < tmp.n_balancer; i++) free(tmp.balancer[i]);
        free(tmp.balancer);
        return ES_ENOMEM;
    }
    es_config_app_deinit(dst);
    *dst = tmp;
    return 0;
}

/* ---- defaults ---- */

static int set_listen_default(es_listen_t *l, const char *text)
{
    char err[128];
    return es_config_parse_listen(text, l, err, sizeof err);
}

es_config_t *es_config_new_default(void)
{
    es_config_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->log.level = ES_LOG_INFO;
    c->log.file = NULL;
    if (set_listen_default(&c->http.listen, "0.0.0.0:8080") < 0) goto fail;
    c->http.cors_origin = strdup("*");
    if (!c->http.cors_origin) goto fail;
    if (set_listen_default(&c->webrtc.udp_listen, "0.0.0.0:8000") < 0) goto fail;
    if (set_listen_default(&c->webrtc.tcp_listen, "0.0.0.0:8000") < 0) goto fail;
    c->webrtc.tcp_on_http = true;
    if (!(c->webrtc.protocol = strdup("all"))) goto fail;
    c->webrtc.candidates = calloc(1, sizeof(char *));
    if (!c->webrtc.candidates || !(c->webrtc.candidates[0] = strdup("*"))) goto fail;
    c->webrtc.n_candidates = 1;
    c->webrtc.nack = true;
    c->webrtc.twcc = true;
    c->webrtc.remb = false;
    c->webrtc.publisher_timeout_ms = 15000;
    c->webrtc.player_timeout_ms = 30000;
    c->webrtc.dtls_timeout_ms = 10000;
    if (set_listen_default(&c->rtmp.listen, "0.0.0.0:1935") < 0) goto fail;
    c->rtmp.chunk_size = 4096;
    c->rtmp.handshake_timeout_ms = 10000;
    c->rtmp.connect_timeout_ms = 10000;
    c->rtmp.idle_timeout_ms = 30000;
    c->rtmp.max_message_bytes = 4194304;
    c->rtmp.player_queue_ms = 10000;
    c->rtmp.player_queue_bytes = 16777216;
    c->rtmp.player_stall_ms = 10000;
    c->rtmp.gop_cache_bytes = 8388608;
    c->rtmp.opus_bitrate = 64000;
    c->hls.directory = strdup("hls");
    if (!c->hls.directory) goto fail;
    c->hls.segment_ms = 2000;
    c->hls.fmp4 = false;
    c->hls.cleanup_ms = 30000;
    c->hls.window = 6;
    c->hls.max_segment_ms = 10000;
    c->hls.max_segment_bytes = 33554432;
    c->hooks.timeout_ms = 5000;
    c->apps = calloc(1, sizeof *c->apps);
    if (!c->apps || es_config_app_defaults(&c->apps[0], "*") < 0) goto fail;
    c->n_apps = 1;
    c->limits.max_sessions = 1000;
    c->limits.max_sessions_per_ip = 100;
    c->limits.offers_per_ip = 10;
    c->limits.player_wait_ms = 60000;
    c->limits.max_http_body = 65536;
    return c;
fail:
    es_config_free(c);
    return NULL;
}

static void free_strlist(char **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) free(list[i]);
    free(list);
}

static void free_apps(es_app_config_t *apps, size_t n)
{
    for (size_t i = 0; apps && i < n; i++) es_config_app_deinit(&apps[i]);
    free(apps);
}

static void free_fields(void *base, const key_spec_t *keys);

static void free_relays(es_relay_config_t *relays, size_t n)
{
    for (size_t i = 0; relays && i < n; i++) free_fields(&relays[i], es_config_relay_keys);
    free(relays);
}

/* Frees every owned field the key table describes. */
static void free_fields(void *base, const key_spec_t *keys)
{
    for (const key_spec_t *k = keys; k->name; k++) {
        char *p = (char *)base + k->offset;
        switch (k->kind) {
        case KEY_MAP: free_fields(base, k->children); break;
        case KEY_STR:
        case KEY_OPTSTR: free(*(char **)p); *(char **)p = NULL; break;
        case KEY_STRLIST:
            free_strlist(*(char ***)p, *(size_t *)((char *)base + k->offset2));
            *(char ***)p = NULL;
            break;
        case KEY_APPS:
            free_apps(*(es_app_config_t **)p, *(size_t *)((char *)base + k->offset2));
            *(es_app_config_t **)p = NULL;
            break;
        case KEY_RELAYS:
            free_relays(*(es_relay_config_t **)p, *(size_t *)((char *)base + k->offset2));
            *(es_relay_config_t **)p = NULL;
            break;
        default: break;
        }
    }
}

void es_config_free(es_config_t *cfg)
{
    if (!cfg) return;
    free_fields(cfg, es_config_root_keys);
    free(cfg);
}

bool es_config_token_equal(const char *expected, const char *given)
{
    size_t el = strlen(expected), gl = strlen(given);
    unsigned diff = (unsigned)(el ^ gl);
    for (size_t i = 0; i < gl; i++) diff |= (unsigned)(given[i] ^ expected[i % (el ? el : 1)]);
    return diff == 0;
}

const es_app_config_t *es_config_find_app(const es_config_t *cfg, const char *app)
{
    const es_app_config_t *wild = NULL;
    for (size_t i = 0; i < cfg->n_apps; i++) {
        if (strcmp(cfg->apps[i].name, app) == 0) return &cfg->apps[i];
        if (strcmp(cfg->apps[i].name, "*") == 0) wild = &cfg->apps[i];
    }
    return wild;
}

/* ---- the loader ---- */

typedef struct {
    char key[KEY_PATH_MAX]; /* full key path */
    yaml_mark_t mark;
} seen_key_t;

typedef struct {
    yaml_document_t *doc;
    const char *file;
    char *err;
    size_t err_len;
    seen_key_t seen[64]; /* where each key outside apps was written, for cross-key errors */
    size_t n_seen;
} loader_t;

__attribute__((format(printf, 4, 5)))
static int fail_at(loader_t *ld, yaml_mark_t mark, const char *path, const char *fmt, ...)
{
    size_t n = (size_t)snprintf(ld->err, ld->err_len, "%s:%zu:%zu: %s%s", ld->file,
                                mark.line + 1, mark.column + 1, path ? path : "",
                                path && *path ? ": " : "");
    if (n < ld->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ld->err + n, ld->err_len - n, fmt, ap);
        va_end(ap);
    }
    return ES_EINVAL;
}

static void remember(loader_t *ld, const char *path, yaml_mark_t mark)
{
    for (size_t i = 0; i < ld->n_seen; i++)
        if (strcmp(ld->seen[i].key, path) == 0) {
            ld->seen[i].mark = mark;
            return;
        }
    if (ld->n_seen < sizeof ld->seen / sizeof ld->seen[0]) {
        snprintf(ld->seen[ld->n_seen].key, KEY_PATH_MAX, "%s", path);
        ld->seen[ld->n_seen++].mark = mark;
    }
}

/* Where `path` was written, or where its parent was (or line 1) when it kept its default. */
static yaml_mark_t mark_of(const loader_t *ld, const char *path)
{
    yaml_mark_t best = {0};
    size_t best_len = 0;
    for (size_t i = 0; i < ld->n_seen; i++) {
        size_t n = strlen(ld->seen[i].key);
        if (strncmp(path, ld->seen[i].key, n) == 0 && (path[n] == '\0' || path[n] == '.') &&
            n >= best_len) {
            best = ld->seen[i].mark;
            best_len = n;
        }
    }
    return best;
}

static const char *node_kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_SCALAR_NODE: return "a value";
    default: return "nothing";
    }
}

/* A plain scalar that YAML reads as null: "", "~", "null". */
static bool scalar_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0;
}

/* The scalar's text with the environment expanded; caller frees. NULL after fail_at. */
static char *scalar_text(loader_t *ld, const yaml_node_t *n, const char *path)
{
    char why[ES_CONFIG_ERR_MAX];
    const char *raw = scalar_is_null(n) ? "" : (const char *)n->data.scalar.value;
    if (strlen(raw) != n->data.scalar.length) {
        fail_at(ld, n->start_mark, path, "value contains a NUL byte");
        return NULL;
    }
    char *s = es_config_expand_env(raw, why, sizeof why);
    if (!s) fail_at(ld, n->start_mark, path, "%s", why);
    return s;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    size_t row[41];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t best = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            prev = cur;
        }
    }
    return row[lb];
}

static int parse_value(loader_t *ld, void *base, const key_spec_t *k, const yaml_node_t *n,
                       const char *path);

static void join_path(char *out, size_t len, const char *parent, const char *name)
{
    if (*parent) snprintf(out, len, "%s.%s", parent, name);
    else snprintf(out, len, "%s", name);
}

static int parse_map(loader_t *ld, void *base, const key_spec_t *keys, const yaml_node_t *n,
                     const char *path)
{
    if (scalar_is_null(n)) return 0; /* "log:" with nothing under it */
    if (n->type != YAML_MAPPING_NODE)
        return fail_at(ld, n->start_mark, path, "expected a mapping of keys, got %s",
                       node_kind_name(n));
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        if (!kn || !vn) return fail_at(ld, n->start_mark, path, "malformed mapping");
        if (kn->type != YAML_SCALAR_NODE)
            return fail_at(ld, kn->start_mark, path, "a key must be a plain name, got %s",
                           node_kind_name(kn));
        const char *name = (const char *)kn->data.scalar.value;
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *qk = yaml_document_get_node(ld->doc, q->key);
            if (qk && qk->type == YAML_SCALAR_NODE &&
                strcmp((const char *)qk->data.scalar.value, name) == 0)
                return fail_at(ld, kn->start_mark, path, "duplicate key '%s' (first at line %zu)",
                               name, qk->start_mark.line + 1);
        }
        const key_spec_t *k = keys;
        while (k->name && strcmp(k->name, name) != 0) k++;
        char child[KEY_PATH_MAX];
        join_path(child, sizeof child, path, name);
        if (!k->name) {
            const key_spec_t *guess = NULL;
            size_t best = 3;
            for (const key_spec_t *g = keys; g->name; g++) {
                size_t d = edit_distance(name, g->name);
                if (d < best) best = d, guess = g;
            }
            if (guess)
                return fail_at(ld, kn->start_mark, child, "unknown key (did you mean '%s'?)",
                               guess->name);
            return fail_at(ld, kn->start_mark, child, "unknown key");
        }
        /* The schema has fewer keys than `seen` has slots; apps.* entries are not needed for
         * cross-key checks and are left out so that many apps cannot crowd them out. */
        if (strncmp(child, "apps.", 5) != 0 && strncmp(child, "relays[", 7) != 0)
            remember(ld, child, kn->start_mark);
        int rc = parse_value(ld, base, k, vn, child);
        if (rc < 0) return rc;
    }
    return 0;
}

static int parse_bool(loader_t *ld, const yaml_node_t *n, const char *path, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    if (n->type != YAML_SCALAR_NODE || scalar_is_null(n))
        return fail_at(ld, n->start_mark, path, "expected true or false, got %s",
                       node_kind_name(n));
    char *s = scalar_text(ld, n, path);
    if (!s) return ES_EINVAL;
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) { *out = true; free(s); return 0; }
        if (strcasecmp(s, no[i]) == 0) { *out = false; free(s); return 0; }
    }
    fail_at(ld, n->start_mark, path, "expected true or false, got '%s'", s);
    free(s);
    return ES_EINVAL;
}

static int parse_u32(loader_t *ld, const yaml_node_t *n, const char *path, uint32_t min,
                     uint32_t max, uint32_t *out)
{
    if (n->type != YAML_SCALAR_NODE || scalar_is_null(n))
        return fail_at(ld, n->start_mark, path, "expected a number from %u to %u, got %s", min,
                       max, node_kind_name(n));
    char *s = scalar_text(ld, n, path);
    if (!s) return ES_EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long v = (s[0] >= '0' && s[0] <= '9') ? strtoull(s, &end, 10) : 0;
    if (!end || *end || errno) {
        fail_at(ld, n->start_mark, path, "expected a whole number from %u to %u, got '%s'", min,
                max, s);
        free(s);
        return ES_EINVAL;
    }
    if (v < min || v > max) {
        fail_at(ld, n->start_mark, path, "%llu is out of range (%u to %u)", v, min, max);
        free(s);
        return ES_EINVAL;
    }
    free(s);
    *out = (uint32_t)v;
    return 0;
}

static int parse_string(loader_t *ld, const yaml_node_t *n, const char *path, bool optional,
                        char **out)
{
    if (n->type != YAML_SCALAR_NODE)
        return fail_at(ld, n->start_mark, path, "expected a string, got %s", node_kind_name(n));
    char *s = scalar_text(ld, n, path);
    if (!s) return ES_EINVAL;
    if (optional && !*s) {
        free(s);
        s = NULL;
    }
    free(*out);
    *out = s;
    return 0;
}

static int parse_strlist(loader_t *ld, const yaml_node_t *n, const char *path, char ***list,
                         size_t *count)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(ld, n->start_mark, path, "expected a list, e.g. [\"*\"], got %s",
                       node_kind_name(n));
    size_t total = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (total > 64) return fail_at(ld, n->start_mark, path, "too many entries (at most 64)");
    char **out = calloc(total ? total : 1, sizeof *out);
    if (!out) return fail_at(ld, n->start_mark, path, "out of memory");
    size_t i = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++, i++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
        char item_path[KEY_PATH_MAX];
        if (snprintf(item_path, sizeof item_path, "%s[%zu]", path, i) < 0) item_path[0] = '\0';
        if (!item || item->type != YAML_SCALAR_NODE) {
            fail_at(ld, item ? item->start_mark : n->start_mark, item_path,
                    "expected a string, got %s", item ? node_kind_name(item) : "nothing");
            free_strlist(out, i);
            return ES_EINVAL;
        }
        out[i] = scalar_text(ld, item, item_path);
        if (!out[i]) {
            free_strlist(out, i);
            return ES_EINVAL;
        }
    }
    free_strlist(*list, *count);
    *list = out;
    *count = total;
    return 0;
}

static bool valid_app_name(const char *s)
{
    if (strcmp(s, "*") == 0) return true;
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return false;
    return true;
}

/* apps: NAME: {keys}. The file's apps replace the default list; each entry starts from the "*"
 * entry of the same file (when there is one) and then from the built-in app defaults. */
static int parse_apps(loader_t *ld, void *base, const key_spec_t *k, const yaml_node_t *n,
                      const char *path)
{
    es_app_config_t **apps_p = (es_app_config_t **)((char *)base + k->offset);
    size_t *count_p = (size_t *)((char *)base + k->offset2);
    if (scalar_is_null(n)) { /* "apps:" empty: no app is allowed */
        free_apps(*apps_p, *count_p);
        *apps_p = NULL;
        *count_p = 0;
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE)
        return fail_at(ld, n->start_mark, path, "expected a mapping of app names, got %s",
                       node_kind_name(n));
    size_t total = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (total > 1024) return fail_at(ld, n->start_mark, path, "too many apps (at most 1024)");
    es_app_config_t *apps = calloc(total ? total : 1, sizeof *apps);
    if (!apps) return fail_at(ld, n->start_mark, path, "out of memory");
    es_app_config_t wild;
    int rc = es_config_app_defaults(&wild, "*");
    size_t done = 0;
    /* Two passes: "*" first, so that it is the template whatever its position in the file. */
    for (int pass = 0; rc == 0 && pass < 2; pass++) {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
            yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
            if (!kn || !vn || kn->type != YAML_SCALAR_NODE) {
                rc = fail_at(ld, kn ? kn->start_mark : n->start_mark, path,
                             "an app name must be a plain string");
                break;
            }
            const char *name = (const char *)kn->data.scalar.value;
            bool is_wild = strcmp(name, "*") == 0;
            if ((pass == 0) != is_wild) continue;
            char child[KEY_PATH_MAX];
            if (snprintf(child, sizeof child, "%s.%.64s", path, name) < 0) child[0] = '\0';
            if (!valid_app_name(name)) {
                rc = fail_at(ld, kn->start_mark, child, "bad app name (letters, digits, '_', '-' "
                             "and '.', at most 64; or \"*\" for every other app)");
                break;
            }
            for (size_t i = 0; i < done; i++)
                if (strcmp(apps[i].name, name) == 0) {
                    rc = fail_at(ld, kn->start_mark, child, "duplicate app");
                    break;
                }
            if (rc < 0) break;
            es_app_config_t *app = &apps[done];
            rc = es_config_app_copy(app, &wild);
            done++; /* from here on the entry is freed with the others on failure */
            if (rc == 0) {
                free(app->name);
                app->name = strdup(name);
            }
            if (rc < 0 || !app->name) {
                rc = fail_at(ld, kn->start_mark, child, "out of memory");
                break;
            }
            if ((rc = parse_map(ld, app, es_config_app_keys, vn, child)) < 0) break;
            if (is_wild && (rc = es_config_app_copy(&wild, app)) < 0) {
                rc = fail_at(ld, kn->start_mark, child, "out of memory");
                break;
            }
        }
    }
    es_config_app_deinit(&wild);
    if (rc < 0) {
        free_apps(apps, done);
        return rc;
    }
    free_apps(*apps_p, *count_p);
    *apps_p = apps;
    *count_p = done;
    return 0;
}

/* An absolute http(s) URL of printable ASCII (RFC 3986 §2). */
static bool valid_relay_url(const char *u)
{
    if (!u || (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) || strlen(u) >= 1024)
        return false;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= ' ' || *p >= 0x7f) return false;
    return true;
}

/* relays: a list of {direction, stream, url, token}; the file's list replaces the default
 * (empty) one. */
static int parse_relays(loader_t *ld, void *base, const key_spec_t *k, const yaml_node_t *n,
                        const char *path)
{
    es_relay_config_t **list_p = (es_relay_config_t **)((char *)base + k->offset);
    size_t *count_p = (size_t *)((char *)base + k->offset2);
    size_t total = 0;
    if (!scalar_is_null(n)) {
        if (n->type != YAML_SEQUENCE_NODE)
            return fail_at(ld, n->start_mark, path, "expected a list of relays, got %s",
                           node_kind_name(n));
        total = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    }
    if (total > 256) return fail_at(ld, n->start_mark, path, "too many relays (at most 256)");
    es_relay_config_t *list = calloc(total ? total : 1, sizeof *list);
    if (!list) return fail_at(ld, n->start_mark, path, "out of memory");
    int rc = 0;
    size_t i = 0;
    for (; rc == 0 && i < total; i++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, n->data.sequence.items.start[i]);
        char item_path[KEY_PATH_MAX];
        if (snprintf(item_path, sizeof item_path, "%s[%zu]", path, i) < 0) item_path[0] = '\0';
        if (!item || item->type != YAML_MAPPING_NODE) {
            rc = fail_at(ld, item ? item->start_mark : n->start_mark, item_path,
                         "expected {direction, stream, url, token}, got %s",
                         item ? node_kind_name(item) : "nothing");
            break;
        }
        es_relay_config_t *r = &list[i];
        if ((rc = parse_map(ld, r, es_config_relay_keys, item, item_path)) < 0) break;
        const char *slash = r->stream ? strchr(r->stream, '/') : NULL;
        if (!r->direction || (strcmp(r->direction, "push") && strcmp(r->direction, "pull")))
            rc = fail_at(ld, item->start_mark, item_path, "direction must be push or pull");
        else if (!slash || slash == r->stream || !slash[1] || strchr(slash + 1, '/') ||
                 slash - r->stream > 64 || strlen(slash + 1) > 128 ||
                 strspn(r->stream, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789_-./") != strlen(r->stream) || r->stream[0] == '.' ||
                 slash[1] == '.')
            rc = fail_at(ld, item->start_mark, item_path, "stream must be \"app/stream\" "
                         "(letters, digits, '_', '-', '.')");
        else if (!valid_relay_url(r->url))
            rc = fail_at(ld, item->start_mark, item_path, "url must be an http:// or https:// "
                         "WHIP/WHEP endpoint");
    }
    if (rc < 0) {
        free_relays(list, total);
        return rc;
    }
    free_relays(*list_p, *count_p);
    *list_p = list;
    *count_p = total;
    return 0;
}

static int parse_value(loader_t *ld, void *base, const key_spec_t *k, const yaml_node_t *n,
                       const char *path)
{
    void *field = (char *)base + k->offset;
    switch (k->kind) {
    case KEY_MAP: return parse_map(ld, base, k->children, n, path);
    case KEY_STR: return parse_string(ld, n, path, false, (char **)field);
    case KEY_OPTSTR: return parse_string(ld, n, path, true, (char **)field);
    case KEY_BOOL: return parse_bool(ld, n, path, (bool *)field);
    case KEY_U32: return parse_u32(ld, n, path, k->min, k->max, (uint32_t *)field);
    case KEY_STRLIST:
        return parse_strlist(ld, n, path, (char ***)field, (size_t *)((char *)base + k->offset2));
    case KEY_APPS: return parse_apps(ld, base, k, n, path);
    case KEY_RELAYS: return parse_relays(ld, base, k, n, path);
    case KEY_LEVEL: {
        if (n->type != YAML_SCALAR_NODE)
            return fail_at(ld, n->start_mark, path, "expected a log level, got %s",
                           node_kind_name(n));
        char *s = scalar_text(ld, n, path);
        if (!s) return ES_EINVAL;
        int rc = es_log_level_parse(s, (es_log_level_t *)field);
        if (rc < 0)
            fail_at(ld, n->start_mark, path,
                    "unknown log level '%s' (trace, debug, info, warn or error)", s);
        free(s);
        return rc < 0 ? ES_EINVAL : 0;
    }
    case KEY_LISTEN: {
        if (n->type != YAML_SCALAR_NODE)
            return fail_at(ld, n->start_mark, path, "expected \"IP:PORT\", got %s",
                           node_kind_name(n));
        char *s = scalar_text(ld, n, path);
        if (!s) return ES_EINVAL;
        char why[ES_CONFIG_ERR_MAX];
        int rc = es_config_parse_listen(s, (es_listen_t *)field, why, sizeof why);
        if (rc < 0) fail_at(ld, n->start_mark, path, "%s", why);
        free(s);
        return rc;
    }
    }
    return fail_at(ld, n->start_mark, path, "internal error: unknown key kind");
}

/* ---- checks across keys ---- */

/* Where `path` was written; where `fallback` was when `path` was not in the file. */
static yaml_mark_t mark_or(const loader_t *ld, const char *path, const char *fallback)
{
    for (size_t i = 0; i < ld->n_seen; i++)
        if (strcmp(ld->seen[i].key, path) == 0) return ld->seen[i].mark;
    return mark_of(ld, fallback);
}

static int check_file(loader_t *ld, const char *path, const char *file, const char *what)
{
    if (!file) return 0;
    struct stat st;
    FILE *f = fopen(file, "r");
    if (!f)
        return fail_at(ld, mark_of(ld, path), path, "cannot read %s file '%s': %s", what, file,
                       strerror(errno));
    int ok = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
    fclose(f);
    if (!ok) return fail_at(ld, mark_of(ld, path), path, "%s '%s' is not a file", what, file);
    return 0;
}

static bool hosts_overlap(const es_listen_t *a, const es_listen_t *b)
{
    if (a->addr.ss_family != b->addr.ss_family) {
        /* A wildcard IPv6 socket is dual-stack on Linux by default: it takes IPv4 too. */
        return strcmp(a->host, "::") == 0 || strcmp(b->host, "::") == 0;
    }
    return strcmp(a->host, b->host) == 0 || strcmp(a->host, "0.0.0.0") == 0 ||
           strcmp(b->host, "0.0.0.0") == 0 || strcmp(a->host, "::") == 0 ||
           strcmp(b->host, "::") == 0;
}

static bool valid_candidate(const char *c)
{
    if (strcmp(c, "*") == 0) return true;
    size_t n = strlen(c);
    if (n == 0 || n > 253) return false;
    unsigned char probe[16];
    if (inet_pton(AF_INET6, c, probe) == 1) return true;
    for (; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.') return false;
    return true;
}

static int validate(loader_t *ld, es_config_t *c)
{
    int rc;
    if (c->http.https_listen.enabled) {
        if (!c->http.https_cert)
            return fail_at(ld, mark_or(ld, "http.https.cert", "http.https.listen"), "http.https.cert",
                           "http.https.listen is set, so a certificate file is required");
        if (!c->http.https_key)
            return fail_at(ld, mark_or(ld, "http.https.key", "http.https.listen"), "http.https.key",
                           "http.https.listen is set, so a private key file is required");
    }
    if ((rc = check_file(ld, "http.https.cert", c->http.https_cert, "certificate")) < 0) return rc;
    if ((rc = check_file(ld, "http.https.key", c->http.https_key, "private key")) < 0) return rc;
    if (!c->webrtc.dtls_cert != !c->webrtc.dtls_key)
        return fail_at(ld, mark_of(ld, c->webrtc.dtls_cert ? "webrtc.dtls_cert" : "webrtc.dtls_key"),
                       c->webrtc.dtls_cert ? "webrtc.dtls_key" : "webrtc.dtls_cert",
                       "dtls_cert and dtls_key go together: set both or neither");
    if ((rc = check_file(ld, "webrtc.dtls_cert", c->webrtc.dtls_cert, "certificate")) < 0) return rc;
    if ((rc = check_file(ld, "webrtc.dtls_key", c->webrtc.dtls_key, "private key")) < 0) return rc;

    if (!c->http.listen.enabled && !c->http.https_listen.enabled)
        return fail_at(ld, mark_of(ld, "http.listen"), "http.listen",
                       "the HTTP server is needed for signaling: set http.listen or "
                       "http.https.listen");
    if (!c->webrtc.udp_listen.enabled)
        return fail_at(ld, mark_of(ld, "webrtc.udp_listen"), "webrtc.udp_listen",
                       "WebRTC needs a UDP port (\"IP:PORT\")");

    const char *proto = c->webrtc.protocol ? c->webrtc.protocol : "";
    if (strcmp(proto, "all") && strcmp(proto, "udp") && strcmp(proto, "tcp"))
        return fail_at(ld, mark_of(ld, "webrtc.protocol"), "webrtc.protocol",
                       "'%s' is not all, udp or tcp", proto);
    if (!strcmp(proto, "tcp") && !c->webrtc.tcp_listen.enabled && !c->webrtc.tcp_on_http)
        return fail_at(ld, mark_of(ld, "webrtc.protocol"), "webrtc.protocol",
                       "tcp needs webrtc.tcp_listen or webrtc.tcp_on_http");

    /* TCP listeners must not collide with each other. */
    struct { const char *key; const es_listen_t *l; } tcp[] = {
        {"http.listen", &c->http.listen},
        {"http.https.listen", &c->http.https_listen},
        {"rtmp.listen", &c->rtmp.listen},
        {"webrtc.tcp_listen", &c->webrtc.tcp_listen},
    };
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < i; j++)
            if (tcp[i].l->enabled && tcp[j].l->enabled && tcp[i].l->port == tcp[j].l->port &&
                hosts_overlap(tcp[i].l, tcp[j].l))
                return fail_at(ld, mark_of(ld, tcp[i].key), tcp[i].key,
                               "TCP port %u is already used by %s", tcp[i].l->port, tcp[j].key);

    for (size_t i = 0; i < c->webrtc.n_candidates; i++)
        if (!valid_candidate(c->webrtc.candidates[i])) {
            char key[48];
            snprintf(key, sizeof key, "webrtc.candidates[%zu]", i);
            return fail_at(ld, mark_of(ld, "webrtc.candidates"), key,
                           "'%s' is not \"*\", an IP address or a host name",
                           c->webrtc.candidates[i]);
        }
    if (c->webrtc.n_candidates == 0)
        return fail_at(ld, mark_of(ld, "webrtc.candidates"), "webrtc.candidates",
                       "at least one candidate is needed (\"*\" finds the interface addresses)");
    if (!*c->hls.directory)
        return fail_at(ld, mark_of(ld, "hls.directory"), "hls.directory",
                       "a folder is needed (e.g. \"hls\")");
    for (size_t i = 0; i < c->n_apps; i++) {
        const es_app_config_t *a = &c->apps[i];
        char key[128];
        const char *path = a->origin ? strchr(strstr(a->origin, "://") ? strstr(a->origin, "://") + 3
                                                                       : a->origin, '/')
                                     : NULL;
        if (a->origin && (!valid_relay_url(a->origin) || (path && strcmp(path, "/")))) {
            snprintf(key, sizeof key, "apps.%.64s.origin", a->name);
            return fail_at(ld, mark_of(ld, "apps"), key, "'%.200s' is not a server's base URL "
                           "(http(s)://host[:port], no path: its /whep/{app}/{stream} is used)",
                           a->origin);
        }
        for (size_t k = 0; k < a->n_balancer; k++)
            if (!valid_relay_url(a->balancer[k])) {
                snprintf(key, sizeof key, "apps.%.64s.balancer[%zu]", a->name, k);
                return fail_at(ld, mark_of(ld, "apps"), key, "'%.200s' is not an http:// or "
                               "https:// base URL", a->balancer[k]);
            }
    }
    return 0;
}

/* ---- entry points ---- */

static es_config_t *load(const char *yaml, size_t len, const char *name, char *err, size_t err_len)
{
    loader_t ld = {.file = name, .err = err, .err_len = err_len};
    err[0] = '\0';
    if (len > CONFIG_FILE_MAX) {
        snprintf(err, err_len, "%s: file too large (%zu bytes; at most %u)", name, len,
                 CONFIG_FILE_MAX);
        return NULL;
    }
    es_config_t *cfg = es_config_new_default();
    if (!cfg) {
        snprintf(err, err_len, "%s: out of memory", name);
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, err_len, "%s: out of memory", name);
        es_config_free(cfg);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_mark_t m = parser.problem_mark;
        snprintf(err, err_len, "%s:%zu:%zu: YAML syntax error: %s%s%s", name, m.line + 1,
                 m.column + 1, parser.problem ? parser.problem : "unknown problem",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        es_config_free(cfg);
        return NULL;
    }
    ld.doc = &doc;
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) rc = parse_map(&ld, cfg, es_config_root_keys, root, "");
    /* One document per file: a second one is almost certainly a mistake. */
    if (rc == 0) {
        yaml_document_t extra;
        if (yaml_parser_load(&parser, &extra)) {
            if (yaml_document_get_root_node(&extra))
                rc = fail_at(&ld, yaml_document_get_root_node(&extra)->start_mark, "",
                             "a second YAML document ('---') is not allowed");
            yaml_document_delete(&extra);
        }
    }
    if (rc == 0) rc = validate(&ld, cfg);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc < 0) {
        es_config_free(cfg);
        return NULL;
    }
    return cfg;
}

es_config_t *es_config_load_string(const char *yaml, size_t len, const char *name, char *err,
                                   size_t err_len)
{
    return load(yaml, len, name ? name : "<string>", err, err_len);
}

es_config_t *es_config_load_embedded(char *err, size_t err_len)
{
    return load(es_config_default_yaml, es_config_default_yaml_len, "<embedded estuary.yaml>", err,
                err_len);
}

es_config_t *es_config_load_file(const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    size_t len = buf ? fread(buf, 1, CONFIG_FILE_MAX + 1, f) : 0;
    int read_err = ferror(f);
    fclose(f);
    if (!buf || read_err) {
        snprintf(err, err_len, "%s: cannot read: %s", path, buf ? strerror(errno) : "out of memory");
        free(buf);
        return NULL;
    }
    es_config_t *cfg = load(buf, len, path, err, err_len);
    free(buf);
    return cfg;
}
