/* Environment expansion in configuration strings, and listen-address parsing. */
#include "estuary/config.h"
#include "estuary/error.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *buf;
    size_t len, cap;
} strbuf_t;

static int sb_append(strbuf_t *sb, const char *s, size_t n)
{
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 64;
        while (cap < sb->len + n + 1) cap *= 2;
        char *p = realloc(sb->buf, cap);
        if (!p) return ES_ENOMEM;
        sb->buf = p;
        sb->cap = cap;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
    return 0;
}

static bool is_name_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool is_name_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

char *es_config_expand_env(const char *in, char *err, size_t err_len)
{
    strbuf_t sb = {0};
    if (sb_append(&sb, "", 0) < 0) goto oom;
    for (const char *p = in; *p;) {
        if (*p != '$') {
            const char *q = strchr(p, '$');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            if (sb_append(&sb, p, n) < 0) goto oom;
            p += n;
            continue;
        }
        if (p[1] == '$') { /* $$ -> $ */
            if (sb_append(&sb, "$", 1) < 0) goto oom;
            p += 2;
            continue;
        }
        char name[128];
        const char *fallback = NULL;
        size_t fallback_len = 0, name_len = 0;
        const char *start = p;
        if (p[1] == '{') {
            const char *n = p + 2, *e = n;
            while (*e && is_name_char(*e)) e++;
            name_len = (size_t)(e - n);
            if (name_len == 0 || !is_name_start(*n)) {
                snprintf(err, err_len, "bad variable name after '${' in '%s'", in);
                goto fail;
            }
            if (e[0] == ':' && e[1] == '-') {
                fallback = e + 2;
                const char *close = strchr(fallback, '}');
                if (!close) {
                    snprintf(err, err_len, "unterminated '${' in '%s'", in);
                    goto fail;
                }
                fallback_len = (size_t)(close - fallback);
                e = close;
            }
            if (*e != '}') {
                snprintf(err, err_len, "unterminated '${' in '%s'", in);
                goto fail;
            }
            if (name_len >= sizeof name) {
                snprintf(err, err_len, "variable name too long in '%s'", in);
                goto fail;
            }
            memcpy(name, n, name_len);
            p = e + 1;
        } else {
            const char *n = p + 1, *e = n;
            if (!is_name_start(*n)) {
                snprintf(err, err_len, "'$' must start a variable ($NAME, ${NAME}) or be written "
                         "'$$' in '%s'", in);
                goto fail;
            }
            while (*e && is_name_char(*e)) e++;
            name_len = (size_t)(e - n);
            if (name_len >= sizeof name) {
                snprintf(err, err_len, "variable name too long in '%s'", in);
                goto fail;
            }
            memcpy(name, n, name_len);
            p = e;
        }
        name[name_len] = '\0';
        const char *val = getenv(name);
        if (val && *val) {
            if (sb_append(&sb, val, strlen(val)) < 0) goto oom;
        } else if (fallback) {
            if (sb_append(&sb, fallback, fallback_len) < 0) goto oom;
        } else if (val) {
            /* set but empty: expands to "" */
        } else {
            snprintf(err, err_len, "environment variable %s is not set (in '%.*s'; use "
                     "${%s:-default} for a fallback)", name, (int)(p - start), start, name);
            goto fail;
        }
    }
    return sb.buf;
oom:
    snprintf(err, err_len, "out of memory");
fail:
    free(sb.buf);
    return NULL;
}

int es_config_parse_listen(const char *text, es_listen_t *out, char *err, size_t err_len)
{
    es_listen_t l;
    memset(&l, 0, sizeof l);
    if (!*text) {
        *out = l; /* disabled */
        return 0;
    }
    if (strlen(text) >= sizeof l.text) {
        snprintf(err, err_len, "address too long: '%.40s...'", text);
        return ES_EINVAL;
    }
    strcpy(l.text, text);
    const char *host = text, *colon;
    size_t host_len;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            snprintf(err, err_len, "bad address '%s' (expected \"[IPv6]:PORT\")", text);
            return ES_EINVAL;
        }
        host = text + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || strchr(text, ':') != colon) {
            snprintf(err, err_len, "bad address '%s' (expected \"IP:PORT\" or \"[IPv6]:PORT\")", text);
            return ES_EINVAL;
        }
        host_len = (size_t)(colon - text);
    }
    if (host_len == 0 || host_len >= sizeof l.host) {
        snprintf(err, err_len, "bad address '%s' (expected \"IP:PORT\", e.g. \"0.0.0.0:8080\")", text);
        return ES_EINVAL;
    }
    memcpy(l.host, host, host_len);
    l.host[host_len] = '\0';

    const char *port = colon + 1;
    char *end = NULL;
    long p = (*port >= '0' && *port <= '9') ? strtol(port, &end, 10) : -1;
    if (p < 1 || p > 65535 || !end || *end || end - port > 5) {
        snprintf(err, err_len, "bad port '%s' in '%s' (expected 1-65535)", port, text);
        return ES_EINVAL;
    }
    l.port = (uint16_t)p;

    struct sockaddr_in *v4 = (struct sockaddr_in *)&l.addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&l.addr;
    if (inet_pton(AF_INET, l.host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(l.port);
        l.addr_len = sizeof *v4;
    } else if (inet_pton(AF_INET6, l.host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(l.port);
        l.addr_len = sizeof *v6;
    } else {
        snprintf(err, err_len, "bad address '%s': '%s' is not a numeric IPv4 or IPv6 address",
                 text, l.host);
        return ES_EINVAL;
    }
    l.enabled = true;
    *out = l;
    return 0;
}
