/* Process-wide counters and histograms (include/estuary/metrics.h). */
#include "estuary/metrics.h"

#include <string.h>

es_metrics_t es_metrics;

static void set_bounds(es_histogram_t *h, const double *b, size_t n)
{
    memset(h, 0, sizeof *h);
    h->n = n;
    memcpy(h->bounds, b, n * sizeof *b);
}

void es_metrics_init(void)
{
    memset(&es_metrics, 0, sizeof es_metrics);
    static const double loss[] = {0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5};
    static const double jitter[] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5};
    static const double rtt[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5};
    set_bounds(&es_metrics.player_loss, loss, sizeof loss / sizeof loss[0]);
    set_bounds(&es_metrics.player_jitter, jitter, sizeof jitter / sizeof jitter[0]);
    set_bounds(&es_metrics.player_rtt, rtt, sizeof rtt / sizeof rtt[0]);
}

void es_histogram_observe(es_histogram_t *h, double v)
{
    size_t i = 0;
    while (i < h->n && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}
