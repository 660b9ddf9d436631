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
#define RATE_SLOTS 256

/* Lines written through es_log_write without a site (libwebsockets' own) share slots keyed by
 * their format string. */
static es_log_site_t g_rate[RATE_SLOTS];

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

/* Returns false when the line must be dropped; *suppressed: lines dropped before this one. */
static es_log_site_t *g_pending; /* sites with suppressed lines not reported yet */

static bool rate_allow(es_log_site_t *r, es_log_level_t level, const char *module,
                       const char *fmt, unsigned long *suppressed)
{
    *suppressed = 0;
    if (level < ES_LOG_INFO || level >= ES_LOG_ERROR) return true;
    uint64_t now = es_clock_now_us();
    if (!r->started) {
        r->started = true;
        r->tokens = ES_LOG_BURST;
        r->refilled_us = now;
    } else if (now > r->refilled_us) {
        r->tokens += (double)(now - r->refilled_us) * ES_LOG_RATE / 1e6;
        if (r->tokens > ES_LOG_BURST) r->tokens = ES_LOG_BURST;
        r->refilled_us = now;
    }
    if (r->tokens < 1.0) {
        if (!r->suppressed++ && !r->listed) {
            r->listed = true;
            r->level = level;
            r->module = module;
            r->fmt = fmt;
            r->next = g_pending;
            g_pending = r;
        }
        return false;
    }
    r->tokens -= 1.0;
    *suppressed = r->suppressed;
    r->suppressed = 0;
    return true;
}

/* Copies text into out (cap bytes, NUL-terminated) with control characters and DEL escaped
 * ("\n", "\x1b"), so that a client's stream name or user agent cannot forge or garble lines.
 * Returns the bytes written. */
static size_t escape_into(char *out, size_t cap, const char *text)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && o + 5 < cap; p++) {
        if (*p >= 0x20 && *p != 0x7f) out[o++] = (char)*p;
        else if (*p == '\n') { out[o++] = '\\'; out[o++] = 'n'; }
        else if (*p == '\r') { out[o++] = '\\'; out[o++] = 'r'; }
        else if (*p == '\t') { out[o++] = '\\'; out[o++] = 't'; }
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
    }
    out[o] = '\0';
    return o;
}

void es_log_vwrite_site(es_log_site_t *site, es_log_level_t level, const char *module,
                        const es_log_ctx_t *ctx, const char *fmt, va_list ap)
{
    unsigned long suppressed;
    if (!site) {
        uintptr_t h = (uintptr_t)fmt;
        site = &g_rate[(h >> 3 ^ h >> 11) % RATE_SLOTS];
    }
    if (!rate_allow(site, level, module, fmt, &suppressed)) return;
    char line[LOG_LINE_MAX], msg[LOG_LINE_MAX], ctxbuf[LOG_LINE_MAX / 2];
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
        const char *names[] = {" peer=", " remote=", " stream="};
        const char *vals[] = {ctx->peer, ctx->remote, ctx->stream};
        for (size_t i = 0; i < 3; i++) {
            if (!vals[i] || n >= sizeof line) continue;
            escape_into(ctxbuf, sizeof ctxbuf, vals[i]);
            n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", names[i], ctxbuf);
        }
    }
    if (n < sizeof line - 1) {
        line[n++] = ' ';
        vsnprintf(msg, sizeof msg, fmt, ap);
        size_t m = strlen(msg);
        while (m && msg[m - 1] == '\n') msg[--m] = '\0'; /* a trailing newline is ours to add */
        n += escape_into(line + n, sizeof line - n, msg);
        if (suppressed && n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " (%lu similar lines suppressed)",
                                  suppressed);
    }
    if (n > sizeof line - 2) n = sizeof line - 2; /* truncated: keep room for the newline */
    while (n > 0 && line[n - 1] == '\n') n--;
    line[n++] = '\n';
    ssize_t r = write(g_fd >= 0 ? g_fd : STDERR_FILENO, line, n);
    (void)r; /* nowhere left to report a failed log write */
}

void es_log_vwrite(es_log_level_t level, const char *module, const es_log_ctx_t *ctx,
                   const char *fmt, va_list ap)
{
    es_log_vwrite_site(NULL, level, module, ctx, fmt, ap);
}

void es_log_flush_suppressed(void)
{
    es_log_site_t *list = g_pending;
    g_pending = NULL;
    while (list) {
        es_log_site_t *r = list;
        list = r->next;
        r->listed = false;
        r->next = NULL;
        if (!r->suppressed) continue; /* its next line reported them already */
        unsigned long n = r->suppressed;
        r->suppressed = 0;
        /* Written around the limiter: one line per site per flush. */
        static es_log_site_t report = {.started = true};
        report.tokens = 1.0;
        report.refilled_us = es_clock_now_us();
        es_log_write_site(&report, r->level, r->module, NULL, "%lu similar lines suppressed "
                          "(like: %s)", n, r->fmt ? r->fmt : "?");
    }
}

void es_log_write(es_log_level_t level, const char *module, const es_log_ctx_t *ctx,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_log_vwrite_site(NULL, level, module, ctx, fmt, ap);
    va_end(ap);
}

void es_log_write_site(es_log_site_t *site, es_log_level_t level, const char *module,
                       const es_log_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_log_vwrite_site(site, level, module, ctx, fmt, ap);
    va_end(ap);
}
