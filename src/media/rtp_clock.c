/* RTP timestamps to one millisecond timeline per stream: 64-bit extension across wraparound
 * (RFC 3550 §5.1), and audio/video alignment through RTCP sender reports (RFC 3550 §6.4.1, the
 * NTP <-> RTP timestamp pair) with a fallback on arrival times until every track has one.
 * See include/estuary/rtp_clock.h for the rules. Sans-IO: now_us is handed in. */
#include "estuary/rtp_clock.h"

#include "estuary/error.h"

#include <stdlib.h>
#include <string.h>

typedef struct track {
    uint32_t rate;        /* Hz */
    es_rtp_unwrap_t uw;
    bool started;         /* a timestamp was mapped */
    int64_t first_ext;    /* the first one mapped, extended */
    uint64_t first_us;    /* its arrival, monotonic µs: the fallback anchor */
    int64_t last_ext;     /* the highest extended timestamp mapped */
    bool has_sr;
    int64_t sr_ext;       /* the latest SR's RTP timestamp, extended */
    int64_t sr_ntp_us;    /* and its NTP time in µs since 1900 */
    int64_t out_us;       /* the last output, µs on the stream timeline (valid when started) */
} track_t;

struct es_rtp_clock {
    track_t t[ES_RTP_CLOCK_MAX_TRACKS];
    int n;
    bool started;         /* a map or an SR happened: no more tracks */
    bool fb_origin_set;
    uint64_t fb_origin_us; /* arrival of the stream's first mapped timestamp */
    bool synced;
    bool sync_origin_set;
    int64_t sync_origin_us; /* sender NTP µs that is 0 on the stream timeline */
};

int64_t es_rtp_unwrap(es_rtp_unwrap_t *u, uint32_t ts)
{
    if (!u->started) {
        u->started = true;
        u->highest = ts;
        return ts;
    }
    /* The nearest value to the highest: a signed 32-bit step (modular conversion). */
    int64_t ext = u->highest + (int32_t)(ts - (uint32_t)u->highest);
    if (ext > u->highest) u->highest = ext;
    return ext;
}

/* ticks at rate Hz in µs, without overflow for any realistic span. */
static int64_t ticks_us(int64_t ticks, uint32_t rate)
{
    return ticks / rate * 1000000 + ticks % rate * 1000000 / rate;
}

/* 64-bit NTP (32.32 fixed point seconds since 1900) in µs, to the nearest. */
static int64_t ntp_us(uint64_t ntp)
{
    uint64_t frac = ((ntp & 0xffffffffu) * 1000000 + 0x80000000u) >> 32;
    return (int64_t)(ntp >> 32) * 1000000 + (int64_t)frac;
}

/* The sender's NTP time (µs) of an extended timestamp, from the track's latest SR. */
static int64_t sender_us(const track_t *t, int64_t ext)
{
    return t->sr_ntp_us + ticks_us(ext - t->sr_ext, t->rate);
}

es_rtp_clock_t *es_rtp_clock_new(void) { return calloc(1, sizeof(es_rtp_clock_t)); }

void es_rtp_clock_free(es_rtp_clock_t *clk) { free(clk); }

int es_rtp_clock_add_track(es_rtp_clock_t *clk, uint32_t clock_rate)
{
    if (!clk || clock_rate == 0 || clock_rate > 10000000) return ES_EINVAL;
    if (clk->started) return ES_EBUSY;
    if (clk->n >= ES_RTP_CLOCK_MAX_TRACKS) return ES_E2BIG;
    track_t *t = &clk->t[clk->n];
    memset(t, 0, sizeof *t);
    t->rate = clock_rate;
    return clk->n++;
}

/* Every track has had an SR: from now on the sender's NTP clock aligns them. The origin keeps
 * every track's output from going back at its highest timestamp mapped so far. */
static void sync_start(es_rtp_clock_t *clk)
{
    clk->synced = true;
    clk->sync_origin_set = false;
    for (int i = 0; i < clk->n; i++) {
        const track_t *t = &clk->t[i];
        if (!t->started) continue;
        int64_t origin = sender_us(t, t->last_ext) - t->out_us;
        if (!clk->sync_origin_set || origin < clk->sync_origin_us) clk->sync_origin_us = origin;
        clk->sync_origin_set = true;
    }
}

void es_rtp_clock_on_sr(es_rtp_clock_t *clk, int track, uint64_t ntp, uint32_t rtp_ts)
{
    if (!clk || track < 0 || track >= clk->n || ntp == 0) return;
    track_t *t = &clk->t[track];
    clk->started = true;
    t->sr_ext = es_rtp_unwrap(&t->uw, rtp_ts);
    t->sr_ntp_us = ntp_us(ntp);
    t->has_sr = true;
    if (clk->synced) return;
    for (int i = 0; i < clk->n; i++)
        if (!clk->t[i].has_sr) return;
    sync_start(clk);
}

int es_rtp_clock_map(es_rtp_clock_t *clk, int track, uint32_t rtp_ts, uint64_t now_us,
                     uint32_t *ms_out)
{
    if (!clk || !ms_out || track < 0 || track >= clk->n) return ES_EINVAL;
    track_t *t = &clk->t[track];
    clk->started = true;
    int64_t ext = es_rtp_unwrap(&t->uw, rtp_ts);
    bool first = !t->started;
    if (first) {
        t->started = true;
        t->first_ext = ext;
        t->first_us = now_us;
        t->last_ext = ext;
    } else if (ext > t->last_ext) {
        t->last_ext = ext;
    }
    if (!clk->fb_origin_set) {
        clk->fb_origin_set = true;
        clk->fb_origin_us = now_us;
    }
    int64_t us;
    if (clk->synced) {
        int64_t s = sender_us(t, ext);
        if (!clk->sync_origin_set) {
            clk->sync_origin_set = true;
            clk->sync_origin_us = s;
        }
        us = s - clk->sync_origin_us;
    } else {
        us = (int64_t)(t->first_us - clk->fb_origin_us) + ticks_us(ext - t->first_ext, t->rate);
    }
    if (!first && us < t->out_us) us = t->out_us; /* never back */
    if (us < 0) us = 0;
    t->out_us = us;
    *ms_out = (uint32_t)((uint64_t)us / 1000);
    return 0;
}

bool es_rtp_clock_synced(const es_rtp_clock_t *clk) { return clk && clk->synced; }

void es_rtp_clock_reset(es_rtp_clock_t *clk)
{
    if (!clk) return;
    for (int i = 0; i < clk->n; i++) {
        uint32_t rate = clk->t[i].rate;
        memset(&clk->t[i], 0, sizeof clk->t[i]);
        clk->t[i].rate = rate;
    }
    clk->started = false;
    clk->fb_origin_set = false;
    clk->synced = false;
    clk->sync_origin_set = false;
}
