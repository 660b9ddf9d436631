/* Line logger with levels, UTC timestamps and a per-connection context (include/estuary/log.h).
 * Writes each line with one write(2) so lines from a crash or a concurrent logrotate stay whole. */
#include "estuary/log.h"

#include "estuary/clock.h"
#include "estuary/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static es_log_level_t g_level = ES_LOG_INFO;
static int g_fd = -1;      /* -1: stderr */
static char *g_path;       /* owned copy of the log file path, NULL for stderr */

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error"};
static const char *const level_tags[] = {"TRACE", "DEBUG", "INFO ", "WARN ", "ERROR"};

void es_log_set_level(es_log_level_t level) { g_level = level; }
es_log_level_t es_log_get_level(void) { return g_level; }

int es_log_level_parse(const char *name, es_log_level_t *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (es_log_level_t)i;
            return 0;
        }
    }
    return ES_EINVAL;
}

const char *es_log_level_name(es_log_level_t level)
{
    if ((unsigned)level >= sizeof level_names / sizeof level_names[0]) return "?";
    return level_names[level];
}

static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int es_log_open(const char *path)
{
    if (!path || !*path) {
        es_log_close();
        return 0;
    }
    int fd = open_file(path);
    if (fd < 0) return ES_EIO;
    char *copy = strdup(path);
    if (!copy) {
        close(fd);
        return ES_ENOMEM;
    }
    es_log_close();
    g_fd = fd;
    g_path = copy;
    return 0;
}

int es_log_reopen(void)
{
    if (!g_path) return 0;
    int fd = open_file(g_path);
    if (fd < 0) {
        int saved = errno;
        if (g_fd >= 0) close(g_fd);
        g_fd = -1;
        es_log_write(ES_LOG_ERROR, "log", NULL, "cannot reopen log file %s: %s; logging to stderr",
                     g_path, strerror(saved));
        return ES_EIO;
    }
    if (g_fd >= 0) close(g_fd);
    g_fd = fd;
    return 0;
}

void es_log_close(void)
{
    if (g_fd >= 0) close(g_fd);
    g_fd = -1;
    free(g_path);
    g_path = NULL;
}

void es_log_vwrite(es_log_level_t level, const char *module, const es_log_ctx_t *ctx,
                   const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    size_t n = 0;
    uint64_t us = es_clock_wall_us();
    time_t secs = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    n += strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    int w = snprintf(line + n, sizeof line - n, ".%03uZ %s %s:", (unsigned)(us / 1000u % 1000u),
                     level_tags[(unsigned)level < 5 ? level : ES_LOG_ERROR],
                     module ? module : "-");
    n += w > 0 ? (size_t)w : 0;
    if (ctx) {
        if (ctx->peer && n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " peer=%s", ctx->peer);
        if (ctx->remote && n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " remote=%s", ctx->remote);
        if (ctx->stream && n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " stream=%s", ctx->stream);
    }
    if (n < sizeof line - 1) {
        line[n++] = ' ';
        w = vsnprintf(line + n, sizeof line - n, fmt, ap);
        n += w > 0 ? (size_t)w : 0;
    }
    if (n > sizeof line - 2) n = sizeof line - 2; /* truncated: keep room for the newline */
    while (n > 0 && line[n - 1] == '\n') n--;
    line[n++] = '\n';
    ssize_t r = write(g_fd >= 0 ? g_fd : STDERR_FILENO, line, n);
    (void)r; /* nowhere left to report a failed log write */
}

void es_log_write(es_log_level_t level, const char *module, const es_log_ctx_t *ctx,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_log_vwrite(level, module, ctx, fmt, ap);
    va_end(ap);
}
