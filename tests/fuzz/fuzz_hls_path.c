/* libFuzzer harness for HLS request names (es_hls_request_path, src/hls/segmenter.c): the part
 * of an HTTP path after "/{app}/" mapped to a file under <root>/<app>/<stream>/. Input:
 * [cap][app length][app bytes][name bytes]; app and name are NUL-terminated copies (an embedded
 * NUL ends them early, as it would a C string), cap is the size of the output buffer (0..249,
 * or 512 from 250 on, which always fits).
 *
 * Invariants: the return value is an es_hls_file_t, ES_EINVAL or ES_E2BIG; the function
 * accepts exactly the names of hls.h's grammar (checked against a reference written here from
 * the header, not from the code); an accepted path is root + "/" + app + "/" followed by exactly
 * "stream/file", with no empty, "." or ".." or hidden component, no backslash and no byte outside
 * the name alphabet, the file ending as the kind says, NUL-terminated inside the buffer; ES_E2BIG
 * exactly when the path does not fit and then out is ""; nothing is written past cap (a canary
 * follows the buffer). */
#include "estuary/error.h"
#include "estuary/hls.h"
#include "estuary/registry.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ROOT "/var/lib/estuary/hls"
#define CANARY 0xA5
#define CANARY_LEN 32

/* An app or stream name as registry.h defines it: 1..max bytes of letters, digits, '_', '-',
 * '.', not starting with '.'. */
static bool ref_name(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max || s[0] == '.') return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* 1..20 decimal digits at s, then exactly `ext`. */
static bool ref_digits_then(const char *s, const char *ext)
{
    size_t d = 0;
    while (s[d] >= '0' && s[d] <= '9') d++;
    return d >= 1 && d <= 20 && strcmp(s + d, ext) == 0;
}

/* hls.h's grammar for the file part of "{stream}/{file}": the kind, or 0. */
static int ref_file(const char *f)
{
    if (ref_digits_then(f, ".ts")) return ES_HLS_FILE_TS;
    if (ref_digits_then(f, ".m4s")) return ES_HLS_FILE_M4S;
    if (strncmp(f, "init-", 5) == 0 && ref_digits_then(f + 5, ".mp4")) return ES_HLS_FILE_INIT;
    return 0;
}

/* The reference: the kind and the expected path (into exp, which is large enough), or 0. */
static int ref_request(const char *app, const char *name, char *exp, size_t exp_cap)
{
    if (!ref_name(app, strlen(app), ES_APP_NAME_MAX)) return 0;
    const char *slash = strchr(name, '/');
    size_t n = strlen(name);
    if (!slash) {
        if (n <= 5 || strcmp(name + n - 5, ".m3u8") != 0) return 0;
        if (!ref_name(name, n - 5, ES_STREAM_NAME_MAX)) return 0;
        snprintf(exp, exp_cap, "%s/%s/%.*s/index.m3u8", ROOT, app, (int)(n - 5), name);
        return ES_HLS_FILE_PLAYLIST;
    }
    if (!ref_name(name, (size_t)(slash - name), ES_STREAM_NAME_MAX)) return 0;
    int kind = ref_file(slash + 1); /* a second '/' fails the grammar too */
    if (!kind) return 0;
    snprintf(exp, exp_cap, "%s/%s/%s", ROOT, app, name);
    return kind;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The checks on an accepted path that do not depend on the reference model. */
static void check_path(const char *out, size_t cap, const char *app, int kind)
{
    size_t len = strnlen(out, cap);
    if (len >= cap) abort(); /* no NUL inside the buffer */
    size_t plen = strlen(ROOT) + 1 + strlen(app) + 1;
    if (len <= plen || strncmp(out, ROOT, strlen(ROOT)) != 0 || out[strlen(ROOT)] != '/' ||
        strncmp(out + strlen(ROOT) + 1, app, strlen(app)) != 0 || out[plen - 1] != '/')
        abort(); /* not under <root>/<app>/ */
    const char *rest = out + plen;
    if (strstr(rest, "//") || strchr(out, '\\')) abort();
    /* Exactly two components below the app, none of them empty, ".", ".." or hidden. */
    int components = 0;
    for (const char *c = rest; *c;) {
        const char *e = strchr(c, '/');
        size_t clen = e ? (size_t)(e - c) : strlen(c);
        if (clen == 0 || c[0] == '.') abort();
        for (size_t i = 0; i < clen; i++) {
            char ch = c[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '-' || ch == '.'))
                abort();
        }
        components++;
        c += clen + (e ? 1 : 0);
        if (e && !*c) abort(); /* trailing '/' */
    }
    if (components != 2) abort();
    const char *file = strrchr(out, '/') + 1;
    switch (kind) {
    case ES_HLS_FILE_PLAYLIST:
        if (strcmp(file, "index.m3u8") != 0) abort();
        break;
    case ES_HLS_FILE_TS:
        if (!ends_with(file, ".ts") || !ref_digits_then(file, ".ts")) abort();
        break;
    case ES_HLS_FILE_M4S:
        if (!ends_with(file, ".m4s") || !ref_digits_then(file, ".m4s")) abort();
        break;
    case ES_HLS_FILE_INIT:
        if (!ends_with(file, ".mp4") || strncmp(file, "init-", 5) != 0) abort();
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t cap = data[0] < 250 ? data[0] : 512;
    size_t app_len = data[1];
    if (app_len > size - 2) app_len = size - 2;
    size_t name_len = size - 2 - app_len;
    /* Exact-size heap copies, so that a sanitizer sees any read past the terminator. */
    char *app = malloc(app_len + 1), *name = malloc(name_len + 1);
    uint8_t *out = malloc(cap + CANARY_LEN);
    if (!app || !name || !out) abort();
    memcpy(app, data + 2, app_len);
    app[app_len] = '\0';
    memcpy(name, data + 2 + app_len, name_len);
    name[name_len] = '\0';
    memset(out, CANARY, cap + CANARY_LEN);

    int rc = es_hls_request_path(ROOT, app, name, (char *)out, cap);
    for (size_t i = cap; i < cap + CANARY_LEN; i++)
        if (out[i] != CANARY) abort(); /* wrote past cap */

    char exp[1024];
    int want = ref_request(app, name, exp, sizeof exp);
    if (rc > 0) {
        if (rc != want) abort(); /* accepted something outside the grammar, or the wrong kind */
        check_path((const char *)out, cap, app, rc);
        if (strcmp((const char *)out, exp) != 0) abort();
    } else if (rc == ES_E2BIG) {
        if (!want || strlen(exp) < cap) abort(); /* it would have fitted */
        if (cap > 0 && out[0] != '\0') abort(); /* documented: out is "" */
    } else if (rc == ES_EINVAL) {
        if (want) abort(); /* refused a valid name */
    } else {
        abort(); /* not a documented return value */
    }

    /* NULL arguments and an empty root are refused without touching out. */
    char small[8];
    if (es_hls_request_path(NULL, app, name, small, sizeof small) != ES_EINVAL ||
        es_hls_request_path("", app, name, small, sizeof small) != ES_EINVAL ||
        es_hls_request_path(ROOT, NULL, name, small, sizeof small) != ES_EINVAL ||
        es_hls_request_path(ROOT, app, NULL, small, sizeof small) != ES_EINVAL ||
        es_hls_request_path(ROOT, app, name, NULL, 0) != ES_EINVAL)
        abort();
    free(app);
    free(name);
    free(out);
    return 0;
}
