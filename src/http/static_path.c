/* Static files: MIME types by extension and safe mapping of request paths into the web root. */
#include "estuary/http.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

const char *es_http_mime_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},  {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},    {".json", "application/json"},
        {".svg", "image/svg+xml"},              {".png", "image/png"},
        {".ico", "image/x-icon"},               {".txt", "text/plain; charset=utf-8"},
        {".m3u8", "application/vnd.apple.mpegurl"}, {".ts", "video/mp2t"},
        {".mp4", "video/mp4"},                  {".m4s", "video/iso.segment"},
        {".wasm", "application/wasm"},
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

char *es_http_static_resolve(const char *root, const char *path)
{
    if (!root || !path || path[0] != '/' || strchr(path, '\\') || strlen(path) > 1024) return NULL;
    /* Refuse any ".." segment outright; realpath below also catches symlinks out of root. */
    for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0')) return NULL;
    char real_root[PATH_MAX];
    if (!realpath(root, real_root)) return NULL;
    char joined[PATH_MAX];
    int n = snprintf(joined, sizeof joined, "%s%s", real_root, path);
    if (n < 0 || (size_t)n >= sizeof joined) return NULL;
    struct stat st;
    if (stat(joined, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t len = strlen(joined);
        n = snprintf(joined + len, sizeof joined - len, "%sindex.html",
                     len && joined[len - 1] == '/' ? "" : "/");
        if (n < 0 || (size_t)n >= sizeof joined - len) return NULL;
    }
    char real[PATH_MAX];
    if (!realpath(joined, real)) return NULL;
    size_t rl = strlen(real_root);
    if (strncmp(real, real_root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0')) return NULL;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) return NULL;
    return strdup(real);
}
