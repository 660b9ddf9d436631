/* GET /metrics: the Prometheus text exposition format 0.0.4 (docs/http-api.md lists every
 * metric). Counters come from include/estuary/metrics.h; gauges are read from live state when
 * the scrape comes: the process (/proc/self), sessions by protocol, signaling and role, streams
 * with their ingest bitrate and players, the WebRTC transport's sockets. */
#include "metrics_api.h"

#include "estuary/live.h"
#include "estuary/metrics.h"
#include "estuary/registry.h"
#include "estuary/rtc_server.h"
#include "estuary/rtc_transport.h"
#include "estuary/rtmp_server.h"
#include "estuary/server.h"

#include "estuary/clock.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* A growing text buffer; after an allocation failure it stays failed. */
typedef struct out {
    char *p;
    size_t len, cap;
    bool failed;
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *o, const char *fmt, ...)
{
    if (o->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
}

static void head(out_t *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(out_t *o, const char *name, const char *help, uint64_t v)
{
    head(o, name, "counter", help);
    put(o, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(out_t *o, const char *name, const char *help, double v)
{
    head(o, name, "gauge", help);
    put(o, "%s %.17g\n", name, v);
}

/* A label value with \, " and newline escaped (text format 0.0.4). */
static void label_value(out_t *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\') put(o, "\\\\");
        else if (*v == '"') put(o, "\\\"");
        else if (*v == '\n') put(o, "\\n");
        else put(o, "%c", *v);
    }
}

static void histogram(out_t *o, const char *name, const char *help, const es_histogram_t *h)
{
    head(o, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < h->n; i++) {
        cum += h->counts[i];
        put(o, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->n];
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    put(o, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

/* --- the process --- */

static void process(out_t *o, const es_server_t *srv)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    head(o, "process_cpu_seconds_total", "counter", "User and system CPU time spent, seconds.");
    put(o, "process_cpu_seconds_total %.6f\n", cpu);
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    gauge(o, "process_resident_memory_bytes", "Resident memory size, bytes.",
          (double)resident * (double)sysconf(_SC_PAGESIZE));
    size_t fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            if (e->d_name[0] != '.') fds++;
        closedir(d);
        fds = fds ? fds - 1 : 0; /* the directory's own descriptor */
    }
    gauge(o, "process_open_fds", "Open file descriptors.", (double)fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        gauge(o, "process_max_fds", "Limit on open file descriptors.", (double)rl.rlim_cur);
    gauge(o, "process_start_time_seconds", "Start time of the process, seconds since the epoch.",
          (double)srv->started_wall_us / 1e6);
}

/* --- sessions --- */

typedef struct group {
    char protocol[16], signaling[16], role[16];
    unsigned n;
} group_t;

#define MAX_GROUPS 32

static void count_sessions(json_t *arr, group_t *g, size_t *n_g)
{
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s) {
        const char *protocol = json_string_value(json_object_get(s, "protocol"));
        const char *signaling = json_string_value(json_object_get(s, "signaling"));
        const char *role = json_string_value(json_object_get(s, "role"));
        if (!protocol || !role) continue;
        if (!signaling) signaling = protocol;
        size_t k = 0;
        while (k < *n_g && (strcmp(g[k].protocol, protocol) || strcmp(g[k].signaling, signaling) ||
                            strcmp(g[k].role, role)))
            k++;
        if (k == *n_g) {
            if (*n_g == MAX_GROUPS) continue;
            snprintf(g[k].protocol, sizeof g[k].protocol, "%s", protocol);
            snprintf(g[k].signaling, sizeof g[k].signaling, "%s", signaling);
            snprintf(g[k].role, sizeof g[k].role, "%s", role);
            g[k].n = 0;
            (*n_g)++;
        }
        g[k].n++;
    }
}

static void sessions(out_t *o, es_server_t *srv)
{
    group_t g[MAX_GROUPS];
    size_t n_g = 0;
    json_t *rtc = srv->rtc ? es_rtc_sessions_json(srv->rtc) : NULL;
    json_t *rtmp = srv->rtmp ? es_rtmp_sessions_json(srv->rtmp) : NULL;
    if (rtc) count_sessions(rtc, g, &n_g);
    if (rtmp) count_sessions(rtmp, g, &n_g);
    json_decref(rtc);
    json_decref(rtmp);
    head(o, "estuary_sessions", "gauge",
         "Sessions now, by media protocol, signaling (whip, whep, websocket, relay, rtmp) and "
         "role.");
    for (size_t k = 0; k < n_g; k++)
        put(o, "estuary_sessions{protocol=\"%s\",signaling=\"%s\",role=\"%s\"} %u\n",
            g[k].protocol, g[k].signaling, g[k].role, g[k].n);
    gauge(o, "estuary_connections",
          "Admitted sessions now, HTTP-FLV players included (limits.max_sessions counts these).",
          (double)srv->sessions);
}

/* --- streams --- */

static void streams(out_t *o, es_server_t *srv)
{
    size_t n = es_registry_count(srv->registry);
    gauge(o, "estuary_streams", "Streams now.", (double)n);
    es_stream_t **list = calloc(n ? n : 1, sizeof *list);
    if (!list) {
        o->failed = true;
        return;
    }
    n = es_registry_list(srv->registry, list, n);
    json_t **views = calloc(n ? n : 1, sizeof *views);
    if (!views) {
        free(list);
        o->failed = true;
        return;
    }
    for (size_t i = 0; i < n; i++) views[i] = es_live_json(list[i]);
    head(o, "estuary_stream_ingest_bits_per_second", "gauge",
         "A stream's ingest bitrate (the publisher's media), bits per second.");
    for (size_t i = 0; i < n; i++) {
        if (!views[i]) continue;
        const char *source = json_string_value(json_object_get(views[i], "source"));
        json_t *flv = json_object_get(views[i], "flv");
        json_int_t bps = source && !strcmp(source, "rtmp") && flv
                             ? json_integer_value(json_object_get(flv, "bitrate_bps"))
                             : json_integer_value(json_object_get(views[i], "bitrate_in_bps"));
        put(o, "estuary_stream_ingest_bits_per_second{stream=\"");
        label_value(o, list[i]->key);
        put(o, "\",source=\"%s\"} %lld\n", source ? source : "none", (long long)bps);
    }
    head(o, "estuary_stream_players", "gauge",
         "A stream's players by protocol: webrtc, and flv (RTMP and HTTP-FLV players, and the HLS "
         "writer when HLS is on).");
    for (size_t i = 0; i < n; i++) {
        if (!views[i]) continue;
        put(o, "estuary_stream_players{stream=\"");
        label_value(o, list[i]->key);
        put(o, "\",protocol=\"webrtc\"} %lld\n",
            (long long)json_integer_value(json_object_get(views[i], "players")));
        json_t *flv = json_object_get(views[i], "flv");
        if (flv) {
            put(o, "estuary_stream_players{stream=\"");
            label_value(o, list[i]->key);
            put(o, "\",protocol=\"flv\"} %lld\n",
                (long long)json_integer_value(json_object_get(flv, "subscribers")));
        }
    }
    for (size_t i = 0; i < n; i++) json_decref(views[i]);
    free(views);
    free(list);
}

/* --- media and transport counters --- */

static void media(out_t *o, es_server_t *srv)
{
    const es_metrics_t *m = &es_metrics;
    counter(o, "estuary_rtp_received_packets_total",
            "RTP packets into streams: from WebRTC publishers, and made from RTMP publishers' "
            "frames for WebRTC players.", m->rtp_in_packets);
    counter(o, "estuary_rtp_received_bytes_total", "RTP bytes into streams (plain).",
            m->rtp_in_bytes);
    counter(o, "estuary_rtp_sent_packets_total",
            "RTP packets handed to WebRTC players' transports, retransmissions included.",
            m->rtp_out_packets);
    counter(o, "estuary_rtp_sent_bytes_total", "RTP bytes to WebRTC players (plain).",
            m->rtp_out_bytes);
    counter(o, "estuary_nacks_received_total", "Sequence numbers WebRTC players NACKed.",
            m->nacks_received);
    counter(o, "estuary_retransmissions_sent_total", "RTP packets resent for NACKs.",
            m->retransmits);
    counter(o, "estuary_nacks_sent_total", "Sequence numbers NACKed to WebRTC publishers.",
            m->nacks_sent);
    counter(o, "estuary_plis_received_total", "PLI and FIR from WebRTC players.",
            m->plis_received);
    counter(o, "estuary_plis_sent_total", "PLIs sent to WebRTC publishers.", m->plis_sent);
    counter(o, "estuary_srtp_errors_total",
            "SRTP and SRTCP packets that failed to authenticate or were malformed.",
            m->srtp_errors);
    counter(o, "estuary_hls_segments_total", "HLS segments published.", m->hls_segments);
    gauge(o, "estuary_transcoders", "AAC<->Opus transcoders running.", (double)m->transcoders);
    const es_rtc_transport_t *t = es_rtc_server_transport(srv->rtc);
    es_rtc_transport_stats_t ts = {0};
    if (t) ts = es_rtc_transport_stats(t);
    counter(o, "estuary_udp_received_packets_total", "Datagrams received on the WebRTC UDP port.",
            ts.udp.rx_packets);
    counter(o, "estuary_udp_received_bytes_total", "Bytes received on the WebRTC UDP port.",
            ts.udp.rx_bytes);
    counter(o, "estuary_udp_sent_packets_total", "Datagrams sent from the WebRTC UDP port.",
            ts.udp.tx_packets);
    counter(o, "estuary_udp_sent_bytes_total", "Bytes sent from the WebRTC UDP port.",
            ts.udp.tx_bytes);
    counter(o, "estuary_udp_send_calls_total", "sendmmsg/sendmsg calls on the WebRTC UDP port.",
            ts.udp.tx_syscalls);
    counter(o, "estuary_udp_gso_trains_total",
            "UDP GSO sends of two or more datagrams on the WebRTC UDP port.", ts.udp.tx_trains);
    head(o, "estuary_dropped_total", "counter", "Datagrams, frames and packets dropped, by reason.");
    put(o, "estuary_dropped_total{reason=\"udp_send_refused\"} %llu\n",
        (unsigned long long)ts.udp.tx_dropped);
    put(o, "estuary_dropped_total{reason=\"udp_oversize\"} %llu\n",
        (unsigned long long)ts.udp.rx_truncated);
    put(o, "estuary_dropped_total{reason=\"udp_unknown_source\"} %llu\n",
        (unsigned long long)ts.unknown_datagrams);
    put(o, "estuary_dropped_total{reason=\"ice_tcp_send_queue_full\"} %llu\n",
        (unsigned long long)ts.tcp.media_dropped);
    head(o, "estuary_player_resyncs_total", "counter",
         "Times a player's transport could not take its video (an ICE-TCP connection fell "
         "behind, or no pair): it skipped to the next key frame.");
    put(o, "estuary_player_resyncs_total %llu\n", (unsigned long long)m->dropped_keyframe_resync);
    counter(o, "estuary_udp_gso_fallbacks_total",
            "GSO trains the kernel refused, sent as single datagrams.", ts.udp.gso_fallbacks);
    counter(o, "estuary_ice_tcp_accepted_total",
            "Connections accepted on the ICE-TCP port (webrtc.tcp_listen; not the HTTP port's).",
            ts.tcp.accepted);
    counter(o, "estuary_ice_tcp_refused_total",
            "ICE-TCP connections closed before they authenticated.", ts.tcp_refused);
    histogram(o, "estuary_player_loss_ratio",
              "Fraction lost in WebRTC players' receiver reports, one per report block.",
              &m->player_loss);
    histogram(o, "estuary_player_jitter_seconds",
              "Interarrival jitter in WebRTC players' receiver reports, seconds.",
              &m->player_jitter);
    histogram(o, "estuary_player_rtt_seconds",
              "Round-trip time to WebRTC players from their receiver reports, seconds.",
              &m->player_rtt);
}

int es_api_metrics(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    (void)req;
    es_server_t *srv = user;
    out_t o = {.cap = 16384};
    o.p = malloc(o.cap);
    if (!o.p) return es_http_respond_error(resp, 503, "out of memory");
    process(&o, srv);
    sessions(&o, srv);
    streams(&o, srv);
    media(&o, srv);
    if (o.failed) {
        free(o.p);
        return es_http_respond_error(resp, 503, "out of memory");
    }
    resp->status = 200;
    snprintf(resp->content_type, sizeof resp->content_type, "text/plain; version=0.0.4");
    resp->body = o.p;
    resp->body_len = o.len;
    return 0;
}
