/* A live stream's media: one source (a WHIP publisher today) and many sinks (WHEP players),
 * carried as RTP. Sans-IO: packets and `now` in; packets out through each party's callbacks.
 *
 * Per packet from the source: RTX is unwrapped (RFC 4588 §4), the packet is recorded for NACK
 * (RFC 4585) and transport-cc feedback, stored once in the track's history (which doubles as the
 * GOP cache: the range from the last key frame onwards), and fanned out. Per sink the one copy is
 * made into a scratch buffer, with the sink's SSRC, sequence number, timestamp, payload type and
 * header-extension ids written in, then handed to the sink's send callback (which protects it
 * with the sink's SRTP context). Sequence numbers and timestamps of a sink continue across a
 * publisher's reconnection.
 *
 * RTCP: receiver reports, NACK, transport-cc feedback and PLI to the source; sender reports
 * (with the publisher's NTP/RTP mapping carried over) to the sinks; NACK from a sink is answered
 * from the history; PLI/FIR from sinks become one PLI to the source at most every
 * ES_PLI_INTERVAL_US. */
#ifndef ESTUARY_STREAM_H
#define ESTUARY_STREAM_H

#include "estuary/rtp.h"
#include "estuary/sdp.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_STREAM_MAX_TRACKS 4
#define ES_PLI_INTERVAL_US 300000 /* at most one PLI to the publisher per 300 ms per track */

/* Header-extension ids (RFC 8285) negotiated with one party; 0 when not negotiated. */
typedef struct es_ext_ids {
    uint8_t mid, abs_send_time, transport_cc, audio_level, video_orientation, playout_delay;
} es_ext_ids_t;

/* One negotiated track of a party, from its SDP. */
typedef struct es_track_info {
    es_media_kind_t kind;
    es_sdp_codec_t codec;     /* the chosen codec; codec.pt is this party's payload type */
    int rtx_pt;               /* this party's RTX payload type, -1 when none */
    char mid[33];
    uint32_t ssrc;            /* publisher: its SSRC from the offer (0: learn from packets);
                                 player: the SSRC we send with */
    uint32_t rtx_ssrc;        /* publisher: its RTX SSRC (0: learn); player: unused */
    es_ext_ids_t ext;
    bool nack, pli, fir, transport_cc, remb; /* rtcp-fb negotiated with this party */
} es_track_info_t;

#define ES_STREAM_IO_ROOM 20 /* bytes send_rtp/send_rtcp may append (ES_SRTP_MAX_TRAILER) */

/* How the stream reaches a party. `user` is given back; the callee owns the transport. */
typedef struct es_media_io {
    /* Send a plain RTP/RTCP packet: buf holds len bytes with room for cap
     * (>= len + ES_STREAM_IO_ROOM) so the callee can protect it in place. Return 0 or a negative
     * ES_E* (the packet is lost); ES_EAGAIN from send_rtp for video means the transport fell
     * behind and dropped it: the sink's track then waits for the next key frame, and the source
     * is asked for one (PLI). */
    int (*send_rtp)(void *user, uint8_t *buf, size_t len, size_t cap);
    int (*send_rtcp)(void *user, uint8_t *buf, size_t len, size_t cap);
    /* Optional: where the next RTP packet to this party may be written (the transport's send
     * slot, *cap bytes), so that it is rewritten, protected and sent without another copy; the
     * stream then passes that very buffer to send_rtp. NULL: use the stream's own buffer. */
    uint8_t *(*rtp_buf)(void *user, size_t *cap);
    void *user;
} es_media_io_t;

typedef struct es_media_stream es_media_stream_t;
typedef struct es_media_sink es_media_sink_t;

/* A frame consumer's view of the publisher (the depacketizer that feeds RTMP, HTTP-FLV and HLS):
 * every media packet after RTX unwrapping, including retransmissions that fill gaps, and every
 * sender report, in arrival order. `track` indexes es_media_stream_source_tracks. The packet
 * (plain RTP, parsed) is borrowed for the call. */
typedef struct es_media_tap {
    void (*on_rtp)(void *user, size_t track, const es_rtp_packet_t *p, uint64_t now_us);
    void (*on_sr)(void *user, size_t track, uint64_t ntp, uint32_t rtp_timestamp,
                  uint64_t now_us);
    void *user;
} es_media_tap_t;

/* es_media_batch_begin / es_media_batch_end: bracket a batch of received packets (one
 * recvmmsg's, one RTMP frame's). Inside it a publisher's packets are stored and accounted at
 * once, but their fan-out waits for the outermost es_media_batch_end (or until 64 wait in one
 * stream), which then sends player by player: a player's packets of the batch leave together,
 * in order, and the UDP layer sends each run of equal-size ones (a frame's) as one GSO train. Outside a batch, fan-out is
 * immediate. Nestable; one loop thread. */
void es_media_batch_begin(void);
void es_media_batch_end(void);

/* es_media_stream_new: an empty stream named `key` ("app/stream", copied, for logs). */
es_media_stream_t *es_media_stream_new(const char *key);

/* es_media_stream_free: NULL-safe; sinks still attached are freed (their io is not called). */
void es_media_stream_free(es_media_stream_t *ms);

/* es_media_stream_set_source: the publisher's n tracks (copied). Returns 0, ES_EEXIST when a
 * source is attached, ES_EINVAL for n == 0 or > ES_STREAM_MAX_TRACKS. Sinks attached earlier
 * are rebound to the new tracks of their kind and codec, and continue their numbering. */
int es_media_stream_set_source(es_media_stream_t *ms, const es_track_info_t *tracks, size_t n,
                               es_media_io_t io, uint64_t now_us);

/* es_media_stream_remove_source: detaches the publisher; sinks stay and wait for the next. */
void es_media_stream_remove_source(es_media_stream_t *ms, uint64_t now_us);

/* es_media_stream_has_source: true while a publisher is attached. */
bool es_media_stream_has_source(const es_media_stream_t *ms);

/* es_media_stream_source_tracks: copies the publisher's tracks into out (at most max) and
 * returns how many; 0 when there is no source. */
size_t es_media_stream_source_tracks(const es_media_stream_t *ms, es_track_info_t *out, size_t max);

/* es_media_stream_source_rtp: one plain RTP packet from the publisher (len bytes in buf, which
 * the stream may modify). Unknown payload types and malformed packets are dropped and counted. */
void es_media_stream_source_rtp(es_media_stream_t *ms, uint64_t now_us, uint8_t *buf, size_t len);

/* es_media_stream_source_rtcp: a plain compound RTCP packet from the publisher (SR). */
void es_media_stream_source_rtcp(es_media_stream_t *ms, uint64_t now_us, const uint8_t *buf,
                                 size_t len);

/* es_media_stream_add_sink: a player with its n negotiated tracks (copied; ssrc is ours).
 * Nothing is sent before es_media_sink_start. Returns NULL when out of memory or n is bad. */
es_media_sink_t *es_media_stream_add_sink(es_media_stream_t *ms, const es_track_info_t *tracks,
                                          size_t n, es_media_io_t io, uint64_t now_us);

/* es_media_sink_start: the player's transport is up: sends the cached GOP at once (the last key
 * frame onwards) and asks the publisher for a key frame (PLI). */
void es_media_sink_start(es_media_sink_t *sink, uint64_t now_us);

/* es_media_stream_remove_sink: detaches and frees the sink. */
void es_media_stream_remove_sink(es_media_stream_t *ms, es_media_sink_t *sink);

/* es_media_sink_rtcp: a plain compound RTCP packet from a player: NACK (retransmit from the
 * history), PLI/FIR (forwarded, rate-limited), RR (RTT). */
void es_media_sink_rtcp(es_media_sink_t *sink, uint64_t now_us, const uint8_t *buf, size_t len);

/* es_media_stream_tick: timers, to call every few ms (10 ms is right): NACKs and transport-cc
 * feedback (every 50 ms) and receiver reports (every second) to the source, sender reports
 * (every second) to the sinks. */
void es_media_stream_tick(es_media_stream_t *ms, uint64_t now_us);

/* es_media_stream_set_tap: attaches (or with NULL detaches) the one frame consumer; copied. */
void es_media_stream_set_tap(es_media_stream_t *ms, const es_media_tap_t *tap);

/* es_media_stream_request_keyframe: asks the publisher for a key frame on its video track(s):
 * a PLI (RFC 4585 §6.3.1) now if none went out in the last ES_PLI_INTERVAL_US, and again every
 * interval until a key frame arrives (a few tries). For frame consumers that lost packets. */
void es_media_stream_request_keyframe(es_media_stream_t *ms, uint64_t now_us);

/* es_media_stream_sink_count: players attached. */
size_t es_media_stream_sink_count(const es_media_stream_t *ms);

/* es_media_stream_json: codecs, resolution when known (VP8 key frames), bitrate in (bit/s over
 * the last seconds), packets received and lost, NACKs sent, key frames, players. New reference. */
json_t *es_media_stream_json(const es_media_stream_t *ms);

/* A player's NACKs cost at most this many retransmissions a second (a bucket of that many,
 * refilled continuously), and a packet is resent to it at most once per RTT (100 ms until the
 * RTT is known, at least 20 ms): one crafted RTCP datagram cannot make the server resend its
 * whole history. */
#define ES_RETRANSMITS_PER_S 250
#define ES_RESEND_SLOTS 512 /* recent retransmissions remembered per player track (sequence
                               number modulo this; a slot used within the RTT refuses any) */

typedef struct es_media_sink_stats {
    uint64_t packets, bytes;       /* RTP sent to this player */
    uint64_t nacks, retransmits;   /* NACKed sequence numbers received; packets resent */
    uint64_t nacks_ignored;        /* NACKed packets not resent: resent less than an RTT ago,
                                      or past ES_RETRANSMITS_PER_S */
    uint64_t plis;                 /* PLI/FIR received */
    uint64_t dropped_to_keyframe;  /* times the transport fell behind: skipped to a key frame */
    int64_t rtt_us;                /* from the player's receiver reports, -1 unknown */
} es_media_sink_stats_t;

/* es_media_sink_unbound: how many of the player's tracks the stream's current source has no
 * track for (another codec, or a kind it lacks): 0 when every track is fed, or when the stream
 * has no source now. A player negotiated with an earlier publisher's codecs is not fed by a
 * publisher that returned with others. */
size_t es_media_sink_unbound(const es_media_sink_t *sink);

/* es_media_sink_stats: counters of one player since it was added. */
es_media_sink_stats_t es_media_sink_stats(const es_media_sink_t *sink);

typedef struct es_media_source_stats {
    uint64_t packets, bytes, lost, nacks_sent, keyframes;
    uint64_t twcc_feedback; /* transport-cc feedback packets sent to the publisher (draft-holmer-
                             * rmcat-transport-wide-cc-extensions-01 §3.1) */
    int64_t rtt_us;
    uint64_t last_us;   /* monotonic µs of the last media packet from the publisher; 0: none */
} es_media_source_stats_t;

/* es_media_stream_source_stats: counters of the current publisher (all zero without one; rtt_us
 * is -1: publisher RTT is not measured yet). */
es_media_source_stats_t es_media_stream_source_stats(const es_media_stream_t *ms);

#endif
