/* estuary: command line, signals and wiring. The only place that owns the loop's lifetime.
 *
 *   SIGTERM/SIGINT  stop accepting, close sessions, exit 0 (forced after 5 s)
 *   SIGHUP          re-read and validate the configuration file; apply what can change live
 *   SIGUSR1         reopen the log file (after logrotate) */
#include "estuary/clock.h"
#include "estuary/config.h"
#include "estuary/error.h"
#include "estuary/metrics.h"
#include "estuary/log.h"
#include "estuary/registry.h"
#include "estuary/admission.h"
#include "estuary/hls_writer.h"
#include "estuary/hooks.h"
#include "estuary/relay.h"
#include "estuary/balancer.h"
#include "estuary/live.h"
#include "estuary/server.h"
#include "estuary/rtc_server.h"
#include "estuary/rtmp_server.h"
#include "version.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define SHUTDOWN_GRACE_MS 5000

static uv_signal_t sig_term, sig_int, sig_hup, sig_usr1;
static uv_timer_t force_exit;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: estuary [-c FILE] [-t] [--print-default-config] [--version] [--help]\n"
            "\n"
            "Real-time media server: WHIP/WHEP WebRTC, RTMP, HTTP-FLV and HLS.\n"
            "\n"
            "  -c, --config FILE         read FILE (YAML) over the built-in defaults;\n"
            "                            without -c the embedded default configuration is used\n"
            "  -t, --test                check the configuration and exit 0 (valid) or 1\n"
            "      --print-default-config print the embedded default configuration and exit\n"
            "  -v, --version             print the version and exit\n"
            "  -h, --help                print this help and exit\n"
            "\n"
            "Signals: SIGTERM/SIGINT stop, SIGHUP reloads the configuration file,\n"
            "SIGUSR1 reopens the log file.\n");
}

static es_config_t *load_config(const char *path, char *err, size_t err_len)
{
    return path ? es_config_load_file(path, err, err_len) : es_config_load_embedded(err, err_len);
}

static void apply_logging(const es_config_t *cfg)
{
    es_log_set_level(cfg->log.level);
    if (es_log_open(cfg->log.file) < 0)
        ES_ERROR("main", NULL, "cannot open log.file %s; logging to stderr", cfg->log.file);
}

static void reload(es_server_t *srv)
{
    if (!srv->config_path) {
        ES_INFO("main", NULL, "SIGHUP: running on the embedded default configuration (no -c "
                "FILE); nothing to reload");
        return;
    }
    char err[ES_CONFIG_ERR_MAX];
    es_config_t *next = es_config_load_file(srv->config_path, err, sizeof err);
    if (!next) {
        ES_ERROR("main", NULL, "SIGHUP: configuration not reloaded, keeping the running one: %s",
                 err);
        return;
    }
    char restart[512], changed[512];
    int n_restart = es_config_diff(srv->cfg, next, true, restart, sizeof restart);
    if (es_config_keep_restart_keys(srv->cfg, next) < 0) {
        ES_ERROR("main", NULL, "SIGHUP: out of memory; keeping the running configuration");
        es_config_free(next);
        return;
    }
    int n_changed = es_config_diff(srv->cfg, next, false, changed, sizeof changed);
    const char *old_file = srv->cfg->log.file ? srv->cfg->log.file : "";
    bool log_file_changed = strcmp(old_file, next->log.file ? next->log.file : "") != 0;
    es_config_free(srv->cfg);
    srv->cfg = next;
    es_log_set_level(next->log.level);
    if (log_file_changed) apply_logging(next);
    es_http_server_apply_config(srv->http);
    es_rtc_server_apply_config(srv->rtc);
    es_rtmp_server_apply_config(srv->rtmp);
    es_relays_apply_config(srv->relays);
    if (n_changed)
        ES_INFO("main", NULL, "SIGHUP: reloaded %s; applied: %s", srv->config_path, changed);
    else
        ES_INFO("main", NULL, "SIGHUP: reloaded %s; nothing changed", srv->config_path);
    if (n_restart)
        ES_WARN("main", NULL, "SIGHUP: these keys changed but need a restart, still running "
                "on the old values: %s", restart);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void on_force_exit(uv_timer_t *t)
{
    ES_WARN("main", NULL, "shutdown took longer than %d ms; exiting anyway", SHUTDOWN_GRACE_MS);
    exit(0);
}

#define STREAMS_TICK_MS 10
#define STREAMS_SLOW_TICKS 10    /* es_live_maintain every 100 ms */
#define CLIENTS_EXPIRE_TICKS 500 /* forget idle client addresses every 5 s */
#define LOG_FLUSH_TICKS 100      /* count suppressed log lines every second */

/* The streams' own timer: bridges every 10 ms, maintenance (HLS, WebRTC -> FLV bridges, idle
 * streams) every 100 ms, whatever protocols are enabled. */
static void on_streams_tick(uv_timer_t *t)
{
    es_server_t *srv = t->data;
    uint64_t now = es_clock_now_us();
    unsigned n = ++srv->streams_ticks;
    es_live_tick(srv->registry, srv->cfg, es_hls_writer_io(srv->hls_writer), now,
                 n % STREAMS_SLOW_TICKS == 0);
    if (n % CLIENTS_EXPIRE_TICKS == 0) es_clients_expire(srv->clients, srv->cfg->limits.offers_per_ip, now);
    if (n % LOG_FLUSH_TICKS == 0) es_log_flush_suppressed();
}

/* Ends every session and stream, in an order where each still finds what it detaches from. */
static void stop_all(es_server_t *srv)
{
    es_relays_stop(srv->relays);    /* ends relay sessions, DELETEs their remote resources */
    es_balancer_stop(srv->balancer); /* stops polling the members */
    es_rtc_server_stop(srv->rtc);   /* DTLS close_notify to every peer, closes the UDP port */
    es_rtmp_server_stop(srv->rtmp); /* closes every RTMP connection and the TCP port */
    es_http_server_stop(srv->http); /* stops accepting and closes every connection */
    es_hooks_stop(srv->hooks);      /* pending hook calls are dropped */
    if (srv->registry) es_live_shutdown(srv->registry, srv->cfg, es_hls_writer_io(srv->hls_writer));
    if (srv->streams_timer.data && !uv_is_closing((uv_handle_t *)&srv->streams_timer))
        uv_close((uv_handle_t *)&srv->streams_timer, NULL);
}

/* A server reachable from elsewhere where anyone may publish is worth a line at start. */
static void warn_open_publishing(const es_config_t *cfg)
{
    const es_listen_t *ls[] = {&cfg->http.listen, &cfg->http.https_listen, &cfg->rtmp.listen};
    bool exposed = false;
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
        if (ls[i]->enabled && strncmp(ls[i]->host, "127.", 4) != 0 && strcmp(ls[i]->host, "::1") != 0)
            exposed = true;
    if (!exposed) return;
    for (size_t i = 0; i < cfg->n_apps; i++) {
        const es_app_config_t *a = &cfg->apps[i];
        if ((!a->publish_token || !*a->publish_token) && (!a->on_publish || !*a->on_publish))
            ES_WARN("main", NULL, "listening on non-loopback addresses and app '%s' needs no "
                    "publish token: anyone who reaches this server can publish (set "
                    "apps.%s.publish_token or an on_publish hook; docs/operations.md)", a->name,
                    a->name);
    }
    if (!cfg->api.token || !*cfg->api.token)
        ES_INFO("main", NULL, "api.token is not set: the admin API answers loopback clients only");
}

static void shutdown_server(es_server_t *srv, int signum)
{
    if (srv->stopping) {
        ES_WARN("main", NULL, "second %s: exiting now", strsignal(signum));
        exit(0);
    }
    srv->stopping = true;
    ES_INFO("main", NULL, "%s: shutting down", strsignal(signum));
    /* The force-exit timer must not keep the loop alive by itself: unref it. */
    uv_timer_init(srv->loop, &force_exit);
    uv_timer_start(&force_exit, on_force_exit, SHUTDOWN_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&force_exit);
    stop_all(srv);
    close_handle((uv_handle_t *)&sig_hup);
    close_handle((uv_handle_t *)&sig_usr1);
    /* SIGTERM/SIGINT stay armed so that a second one forces the exit; unref them instead. */
    uv_unref((uv_handle_t *)&sig_term);
    uv_unref((uv_handle_t *)&sig_int);
}

static void on_signal(uv_signal_t *h, int signum)
{
    es_server_t *srv = h->data;
    switch (signum) {
    case SIGTERM:
    case SIGINT: shutdown_server(srv, signum); break;
    case SIGHUP: reload(srv); break;
    case SIGUSR1:
        if (es_log_reopen() == 0) ES_INFO("main", NULL, "SIGUSR1: log file reopened");
        break;
    default: break;
    }
}

static void watch_signal(es_server_t *srv, uv_signal_t *h, int signum)
{
    uv_signal_init(srv->loop, h);
    h->data = srv;
    uv_signal_start(h, on_signal, signum);
}

static void print_urls(const es_server_t *srv)
{
    const es_config_t *c = srv->cfg;
    const char *host = c->http.listen.host;
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) host = "localhost";
    bool v6 = strchr(host, ':') != NULL;
    if (c->http.listen.enabled) {
        ES_INFO("main", NULL, "serving http://%s%s%s:%u/ (publish.html, play.html), WHIP "
                "/whip/{app}/{stream}, WHEP /whep/{app}/{stream}, API /api/v1/streams, "
                "/api/v1/sessions", v6 ? "[" : "", host, v6 ? "]" : "", c->http.listen.port);
    }
    if (c->http.https_listen.enabled)
        ES_INFO("main", NULL, "serving https on %s", c->http.https_listen.text);
    if (c->rtmp.listen.enabled)
        ES_INFO("main", NULL, "RTMP on %s: publish rtmp://%s%s%s:%u/{app}/{stream}, play the same "
                "URL, http://.../{app}/{stream}.flv or WHEP", c->rtmp.listen.text, v6 ? "[" : "",
                host, v6 ? "]" : "", c->rtmp.listen.port);
    if (es_http_server_web_root(srv->http))
        ES_INFO("main", NULL, "static files from %s", es_http_server_web_root(srv->http));
}

static void walk_close(uv_handle_t *h, void *arg)
{
    close_handle(h);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"print-default-config", no_argument, NULL, 'P'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *config_path = NULL;
    bool test_only = false;
    es_metrics_init();
    int opt;
    while ((opt = getopt_long(argc, argv, "c:tvh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 't': test_only = true; break;
        case 'P': fwrite(es_config_default_yaml, 1, es_config_default_yaml_len, stdout); return 0;
        case 'v': printf("estuary %s (%s, %s)\n", ES_VERSION, ES_GIT_REV, ES_BUILD_TYPE); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "estuary: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    char err[ES_CONFIG_ERR_MAX];
    es_config_t *cfg = load_config(config_path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "estuary: %s\n", err);
        return 1;
    }
    if (test_only) {
        printf("estuary: configuration %s is valid\n", config_path ? config_path : "(embedded default)");
        es_config_free(cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    apply_logging(cfg);
    es_server_t srv = {0};
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv.loop = &loop;
    srv.cfg = cfg;
    srv.config_path = config_path ? strdup(config_path) : NULL;
    srv.started_us = es_clock_now_us();
    srv.started_wall_us = es_clock_wall_us();
    srv.registry = es_registry_new();
    srv.clients = es_clients_new();
    srv.hooks = es_hooks_new(&loop);
    srv.hls_writer = es_hls_writer_new(&loop);
    srv.relays = es_relays_new(&srv);
    srv.balancer = es_balancer_new(&srv);
    int status = 0;
    ES_INFO("main", NULL, "estuary %s (%s) starting, configuration %s, pid %d", ES_VERSION,
            ES_GIT_REV, config_path ? config_path : "(embedded default)", (int)getpid());
    if (srv.registry) {
        uv_timer_init(&loop, &srv.streams_timer);
        srv.streams_timer.data = &srv;
        uv_timer_start(&srv.streams_timer, on_streams_tick, STREAMS_TICK_MS, STREAMS_TICK_MS);
    }
    warn_open_publishing(cfg);
    if (!srv.registry || !srv.clients || !srv.hooks || !srv.hls_writer || !srv.relays || !srv.balancer ||
        es_http_server_start(&srv, &srv.http) < 0 || es_rtc_server_start(&srv, &srv.rtc) < 0 ||
        es_rtmp_server_start(&srv, &srv.rtmp) < 0) {
        ES_ERROR("main", NULL, "startup failed; exiting");
        if (cfg->log.file) /* stderr is what systemd and a terminal show: say where to look */
            fprintf(stderr, "estuary: startup failed; see %s\n", cfg->log.file);
        status = 1;
    } else {
        watch_signal(&srv, &sig_term, SIGTERM);
        watch_signal(&srv, &sig_int, SIGINT);
        watch_signal(&srv, &sig_hup, SIGHUP);
        watch_signal(&srv, &sig_usr1, SIGUSR1);
        print_urls(&srv);
        es_relays_apply_config(srv.relays); /* the configuration's relays start */
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    /* Close whatever is left (signal handles, lws leftovers after a failed start) and let the
     * close callbacks run, so that the loop closes cleanly and nothing leaks. */
    stop_all(&srv);
    uv_run(&loop, UV_RUN_DEFAULT); /* lws closes its handles */
    es_rtc_server_free(srv.rtc);
    srv.rtc = NULL;
    es_rtmp_server_free(srv.rtmp);
    srv.rtmp = NULL;
    es_http_server_free(srv.http);
    srv.http = NULL;
    uv_walk(&loop, walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) ES_WARN("main", NULL, "event loop closed with handles open");
    if (status == 0) ES_INFO("main", NULL, "stopped");
    es_hooks_free(srv.hooks);
    es_relays_free(srv.relays);
    es_balancer_free(srv.balancer);
    es_hls_writer_free(srv.hls_writer);
    es_clients_free(srv.clients);
    es_registry_free(srv.registry);
    es_config_free(srv.cfg);
    free(srv.config_path);
    es_log_close();
    return status;
}
