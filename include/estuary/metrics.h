/* Process-wide counters and histograms for GET /metrics (Prometheus text format 0.0.4, see
 * docs/http-api.md). The modules that see an event count it here (the event loop is one
 * thread); src/http/metrics.c adds what it reads from live state (sessions, streams, sockets,
 * the process) when it renders. Counters only grow. */
#ifndef ESTUARY_METRICS_H
#define ESTUARY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define ES_METRICS_MAX_BUCKETS 12

/* A histogram: counts[i] observations <= bounds[i] (not cumulative), the rest in counts[n]. */
typedef struct es_histogram {
    size_t n;                               /* bounds in use */
    double bounds[ES_METRICS_MAX_BUCKETS];  /* ascending, in the metric's base unit */
    uint64_t counts[ES_METRICS_MAX_BUCKETS + 1];
    double sum;
    uint64_t count;
} es_histogram_t;

typedef struct es_metrics {
    /* RTP media (plain packets; payload + header bytes) */
    uint64_t rtp_in_packets, rtp_in_bytes;     /* from WebRTC publishers */
    uint64_t rtp_out_packets, rtp_out_bytes;   /* to WebRTC players, retransmissions included */
    uint64_t nacks_received;                   /* sequence numbers players NACKed */
    uint64_t retransmits;                      /* packets resent for NACKs */
    uint64_t nacks_sent;                       /* sequence numbers NACKed to publishers */
    uint64_t plis_received;                    /* PLI/FIR from players */
    uint64_t plis_sent;                        /* PLIs to publishers */
    uint64_t srtp_errors;                      /* SRTP/SRTCP packets that failed to unprotect */
    uint64_t dropped_keyframe_resync;          /* player packets dropped: ICE-TCP fell behind */
    uint64_t hls_segments;                     /* HLS segments published */
    int64_t transcoders;                       /* AAC<->Opus transcoders running (a gauge) */
    /* players' receiver reports (RFC 3550 §6.4.2), one observation per report block */
    es_histogram_t player_loss;                /* fraction lost, 0..1 */
    es_histogram_t player_jitter;              /* interarrival jitter, seconds */
    es_histogram_t player_rtt;                 /* round-trip time from LSR/DLSR, seconds */
} es_metrics_t;

/* The process's metrics; es_metrics_init sets the histograms' buckets. */
extern es_metrics_t es_metrics;

/* es_metrics_init: zeroes everything and sets the histogram buckets (once, at start; tests call
 * it again to start clean). */
void es_metrics_init(void);

/* es_histogram_observe: counts value v (in the histogram's unit) into its bucket. */
void es_histogram_observe(es_histogram_t *h, double v);

#endif
