/* The configuration schema: one table of keys shared by the loader (config.c) and the reload
 * logic (config_reload.c), so that a key added here is parsed, diffed and documented alike. */
#ifndef ES_CONFIG_SCHEMA_H
#define ES_CONFIG_SCHEMA_H

#include "estuary/config.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    KEY_MAP,      /* nested mapping: children */
    KEY_STR,      /* char *, "" allowed (stored as "") */
    KEY_OPTSTR,   /* char *, "" stored as NULL */
    KEY_BOOL,     /* bool */
    KEY_U32,      /* uint32_t within [min, max] */
    KEY_LISTEN,   /* es_listen_t */
    KEY_LEVEL,    /* es_log_level_t */
    KEY_STRLIST,  /* char ** at offset, size_t count at offset2 */
    KEY_APPS,     /* es_app_config_t * at offset, size_t count at offset2; entries per app_keys */
    KEY_RELAYS,   /* es_relay_config_t * at offset, size_t count at offset2: a list of mappings
                     per relay_keys */
} key_kind_t;

typedef struct key_spec {
    const char *name;               /* NULL ends a table */
    key_kind_t kind;
    size_t offset;                  /* into es_config_t, or es_app_config_t for app keys */
    size_t offset2;
    uint32_t min, max;              /* KEY_U32 bounds */
    bool restart;                   /* a change needs a restart (SIGHUP keeps the running value) */
    const struct key_spec *children;
} key_spec_t;

extern const key_spec_t es_config_root_keys[];
extern const key_spec_t es_config_app_keys[];
extern const key_spec_t es_config_relay_keys[];

/* Sets an app's fields to the built-in app defaults (used for "*" and apps without "*"). */
int es_config_app_defaults(es_app_config_t *app, const char *name);
/* Copies every field of src into dst (strings duplicated); dst's old strings are freed. */
int es_config_app_copy(es_app_config_t *dst, const es_app_config_t *src);
void es_config_app_deinit(es_app_config_t *app);

#endif
