/* Logging: levels, timestamps, and a context (peer id, stream, remote address) on every line
 * about a connection, so that an operator can follow one failed connection from the log alone.
 *
 * A line reads:
 *   2026-11-21T01:02:03.456Z INFO  http: peer=h7 remote=127.0.0.1:51234 stream=live/cam GET /x 404
 * One thread owns the logger (the loop thread); it is not thread-safe. */
#ifndef ESTUARY_LOG_H
#define ESTUARY_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    ES_LOG_TRACE = 0,
    ES_LOG_DEBUG,
    ES_LOG_INFO,
    ES_LOG_WARN,
    ES_LOG_ERROR,
} es_log_level_t;

/* Who a line is about. Any field may be NULL; the logger borrows the strings for the call. */
typedef struct es_log_ctx {
    const char *peer;   /* session or connection id, e.g. "h7" or a WebRTC peer id */
    const char *stream; /* "app/stream" */
    const char *remote; /* "ip:port" of the remote end */
} es_log_ctx_t;

/* es_log_open: send lines to the file at `path` (appended, created 0640), or to stderr when path
 * is NULL or "". The path is copied. Returns 0, or ES_EIO when the file cannot be opened, in
 * which case the previous destination stays in use. */
int es_log_open(const char *path);

/* es_log_reopen: close and reopen the current log file (SIGUSR1, after logrotate moved it).
 * A no-op returning 0 when logging to stderr; ES_EIO if the file cannot be opened again (lines
 * then go to stderr). */
int es_log_reopen(void);

/* es_log_close: flush and close the log file; later lines go to stderr. */
void es_log_close(void);

/* es_log_set_level: lines below `level` are dropped from now on (log.level; SIGHUP applies it). */
void es_log_set_level(es_log_level_t level);
/* es_log_get_level: the current minimum level. */
es_log_level_t es_log_get_level(void);
/* es_log_enabled: true when a line at `level` would be written; use it to skip costly arguments. */
static inline bool es_log_enabled(es_log_level_t level) { return level >= es_log_get_level(); }

/* es_log_level_parse: "trace", "debug", "info", "warn" or "error" (case-insensitive) to *out.
 * Returns 0, or ES_EINVAL for any other string (then *out is untouched). */
int es_log_level_parse(const char *name, es_log_level_t *out);

/* es_log_level_name: lower-case name of a level, static storage. */
const char *es_log_level_name(es_log_level_t level);

#define ES_LOG_BURST 20 /* lines one call site may write at once at info and warn ... */
#define ES_LOG_RATE 5   /* ... and then a second; the rest is counted and the site's next line
                           ends with "(N similar lines suppressed)" */

/* es_log_write: format and write one line (a trailing newline in fmt is not needed). `module`
 * names the subsystem ("http", "config", "main"); ctx may be NULL. Lines longer than 4 KiB are
 * truncated. Control characters in the message and the context (a client's stream name, user
 * agent) are escaped ("\n", "\x1b"). info and warn lines are rate-limited per call site
 * (each ES_LOG use keeps its own state; plain es_log_write calls share slots by format string):
 * ES_LOG_BURST, then ES_LOG_RATE a second; debug, trace and error are not. */
void es_log_write(es_log_level_t level, const char *module, const es_log_ctx_t *ctx,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void es_log_vwrite(es_log_level_t level, const char *module, const es_log_ctx_t *ctx,
                   const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

/* The rate-limit state of one call site (ES_LOG keeps one per use, zero-initialized). */
typedef struct es_log_site {
    bool started;
    bool listed;                 /* in the list es_log_flush_suppressed reports */
    double tokens;
    uint64_t refilled_us;
    unsigned long suppressed;
    es_log_level_t level;        /* of the first suppressed line, for the report */
    const char *module, *fmt;
    struct es_log_site *next;
} es_log_site_t;

/* es_log_flush_suppressed: for every call site that dropped lines since its last line, one
 * line now: "N similar lines suppressed (like: FORMAT)", so that a flood that stops is still
 * counted in the log. Call it every second or so (main.c does). */
void es_log_flush_suppressed(void);

/* es_log_write_site: es_log_write limited by `site` (NULL: a slot shared by format string). */
void es_log_write_site(es_log_site_t *site, es_log_level_t level, const char *module,
                       const es_log_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void es_log_vwrite_site(es_log_site_t *site, es_log_level_t level, const char *module,
                        const es_log_ctx_t *ctx, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

#define ES_LOG(level, module, ctx, ...)                                                            \
    do {                                                                                           \
        static es_log_site_t es_log_site_;                                                         \
        if (es_log_enabled(level))                                                                 \
            es_log_write_site(&es_log_site_, (level), (module), (ctx), __VA_ARGS__);               \
    } while (0)
#define ES_TRACE(module, ctx, ...) ES_LOG(ES_LOG_TRACE, module, ctx, __VA_ARGS__)
#define ES_DEBUG(module, ctx, ...) ES_LOG(ES_LOG_DEBUG, module, ctx, __VA_ARGS__)
#define ES_INFO(module, ctx, ...) ES_LOG(ES_LOG_INFO, module, ctx, __VA_ARGS__)
#define ES_WARN(module, ctx, ...) ES_LOG(ES_LOG_WARN, module, ctx, __VA_ARGS__)
#define ES_ERROR(module, ctx, ...) ES_LOG(ES_LOG_ERROR, module, ctx, __VA_ARGS__)

#endif
