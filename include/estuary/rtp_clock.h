/* RTP timestamps to one millisecond timeline per stream, for FLV/RTMP and HLS (issue 5).
 *
 * Per track, 32-bit RTP timestamps are extended to 64 bits across wraparound (RFC 3550 §5.1:
 * the timestamp wraps and starts at a random offset), tolerating backward steps of up to half
 * the range (reordering, B-frames), and converted with the track's clock rate (90000 for video,
 * 48000 for Opus).
 *
 * Per stream, the tracks are aligned onto one timeline:
 *  - Until every track has had an RTCP sender report, each track is anchored at the arrival
 *    time (now_us) of its first timestamp: output can start at once, aligned to within the
 *    difference in network delay and capture-to-send delay of the tracks' first packets.
 *  - Once every track has had one, a timestamp's time is its sender NTP time, derived from the
 *    track's latest SR (the NTP <-> RTP pair of RFC 3550 §6.4.1) and its clock rate, minus an
 *    origin common to the stream: frames captured at the same instant get the same ms
 *    (lip sync), since a sender uses one NTP clock for all its tracks.
 *  - The switch happens in one step when the last missing SR arrives. The origin is then chosen
 *    so that no track's output goes back: the track with the latest sender time relative to its
 *    output continues without a jump, the others jump forward by the misalignment the fallback
 *    had (typically tens of ms). When no timestamp was mapped before the switch, the first one
 *    mapped after it is at 0.
 *  - Later SRs refresh each track's pair (following drift between the sender's media clock and
 *    its NTP clock); the origin stays.
 * Output per track never decreases: a timestamp that maps earlier than the track's previous
 * output (a reordered or B-frame timestamp, a jittery SR, an SR that contradicts the fallback)
 * is given that previous output. The first output of the stream is 0.
 *
 * Sans-IO: the caller hands in now_us (monotonic µs) and the SR fields it parsed with
 * es_rtcp_parse_report. */
#ifndef ESTUARY_RTP_CLOCK_H
#define ESTUARY_RTP_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define ES_RTP_CLOCK_MAX_TRACKS 4

/* es_rtp_unwrap_t: extends one track's 32-bit RTP timestamps to 64 bits. Zero-initialise. */
typedef struct es_rtp_unwrap {
    bool started;
    int64_t highest; /* the highest extended timestamp seen */
} es_rtp_unwrap_t;

/* es_rtp_unwrap: the extended value of RTP timestamp ts (media clock ticks): the one nearest
 * to the highest seen so far, i.e. a step of less than 2^31 ticks forward or backward from it
 * (at 90 kHz, about 6.6 hours). The first call returns ts itself; a backward step before it
 * gives a negative value. */
int64_t es_rtp_unwrap(es_rtp_unwrap_t *u, uint32_t ts);

typedef struct es_rtp_clock es_rtp_clock_t;

/* es_rtp_clock_new: a clock for one stream, without tracks. Returns NULL when out of memory. */
es_rtp_clock_t *es_rtp_clock_new(void);

/* es_rtp_clock_free: NULL-safe. */
void es_rtp_clock_free(es_rtp_clock_t *clk);

/* es_rtp_clock_add_track: adds a track whose RTP clock runs at clock_rate Hz (90000 video,
 * 48000 Opus; 1..10^7). Tracks are added before the first es_rtp_clock_map or _on_sr (and
 * again after es_rtp_clock_reset only if the tracks change: reset keeps them). Returns the
 * track's index (0, 1, ...); ES_EINVAL for a bad rate or a NULL clock; ES_E2BIG beyond
 * ES_RTP_CLOCK_MAX_TRACKS; ES_EBUSY once the clock has started. */
int es_rtp_clock_add_track(es_rtp_clock_t *clk, uint32_t clock_rate);

/* es_rtp_clock_on_sr: the track's sender report (RFC 3550 §6.4.1) said that RTP timestamp
 * rtp_ts corresponds to NTP time ntp (64-bit NTP format: seconds since 1900 in the high 32
 * bits, fraction in the low 32; es_rtcp_report_t's ntp and rtp_timestamp). When every track has
 * had one, the clock switches to SR-based alignment (see above). An SR with NTP time 0 (a
 * sender without a wall clock, RFC 3550 §6.4.1) or a bad track is ignored. */
void es_rtp_clock_on_sr(es_rtp_clock_t *clk, int track, uint64_t ntp, uint32_t rtp_ts);

/* es_rtp_clock_map: the stream time in ms of a frame of `track` with RTP timestamp rtp_ts,
 * received at now_us (monotonic µs; only the first timestamp of each track uses it, as the
 * fallback anchor). Call it for every frame, in arrival order: it follows wraparound, so gaps
 * of more than 2^31 ticks between calls are ambiguous. *ms_out is non-decreasing per track and
 * wraps modulo 2^32 (after 49.7 days), as FLV timestamps do. Returns 0; ES_EINVAL for a bad
 * track or NULL arguments. */
int es_rtp_clock_map(es_rtp_clock_t *clk, int track, uint32_t rtp_ts, uint64_t now_us,
                     uint32_t *ms_out);

/* es_rtp_clock_synced: true once the clock aligns tracks by their SRs. */
bool es_rtp_clock_synced(const es_rtp_clock_t *clk);

/* es_rtp_clock_reset: for a new publisher: forgets every timestamp, SR and the origin (the next
 * output starts at 0 again, so the caller's output clock must treat it as a discontinuity);
 * keeps the tracks and their clock rates. */
void es_rtp_clock_reset(es_rtp_clock_t *clk);

#endif
