/* Audio transcoding between RTMP and WebRTC: AAC (from an FLV/RTMP publisher) to Opus (for WebRTC
 * players), with resampling to 48 kHz.
 *
 * - The input is the AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1, carried in the FLV AAC
 *   sequence header, AACPacketType 0) and then raw AAC frames (AACPacketType 1 payloads), each
 *   with its presentation time in milliseconds: the FLV/RTMP time base, shared with the video.
 * - The output is Opus packets of 20 ms (960 samples at 48 kHz) with their RTP timestamp in
 *   48 kHz ticks (RFC 7587 §4.1: the Opus RTP clock is always 48000 Hz, whatever the audio's
 *   bandwidth or channel count).
 *
 * Channels: mono AAC (channelConfiguration 1) is encoded as mono Opus, anything else as stereo
 * (more than two channels are downmixed by libswresample). Both are valid in an `opus/48000/2`
 * session (RFC 7587 §7: a receiver decodes mono and stereo packets alike); mono costs less CPU
 * and fewer bits. HE-AACv2 with implicit parametric stereo in a mono config is downmixed to mono.
 *
 * Timing (lip sync with the video, whose RTP timestamp is pts_ms * 90): the first decoded sample
 * of the first frame maps to pts_ms * 48; each later Opus frame advances exactly 960 ticks, so
 * timestamps follow the sample count, not the per-frame pts (FLV's 1 ms rounding and a
 * publisher's jitter do not disturb them). When a frame's pts differs by more than
 * ES_AAC_OPUS_RESYNC_MS from where the sample count puts it (a gap, a lost frame run, a jump or
 * a restart of the source), the mapping restarts from that frame's pts * 48 and the samples
 * buffered but not yet encoded (under 20 ms) are dropped. Delays not compensated, all small and
 * constant: the Opus encoder's look-ahead (312 samples = 6.5 ms with OPUS_APPLICATION_AUDIO,
 * which a WebRTC receiver plays out as is: RTP carries no pre-skip) and the resampler's filter
 * (under 1 ms); a tone onset is measured at +6.8 ms on the RTP clock (tests/unit). The mapping
 * takes the resampler's buffered samples into account (es_opus_ts_map_frame's lag). An
 * undecodable frame produces no samples, so later audio runs up to ES_AAC_OPUS_RESYNC_MS early
 * until a resync; a source whose audio clock drifts from its pts resyncs (a glitch of under
 * 20 ms) each time the drift reaches ES_AAC_OPUS_RESYNC_MS.
 *
 * Not thread-safe; one transcoder per stream, used from one thread. libav's logging is silenced
 * process-wide by the first es_aac_opus_new (it would write to stderr about network input).
 *
 * The other direction, Opus (from WebRTC publishers) to AAC, follows at the end of this file. */
#ifndef ESTUARY_TRANSCODE_H
#define ESTUARY_TRANSCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_OPUS_CLOCK_RATE 48000        /* RTP clock of opus/48000/2 (RFC 7587 §4.1) */
#define ES_OPUS_FRAME_SAMPLES 960       /* 20 ms at 48 kHz: samples per channel per packet */
#define ES_AAC_OPUS_DEFAULT_BITRATE 64000 /* bit/s */
#define ES_AAC_OPUS_RESYNC_MS 80        /* pts error beyond which the timestamp mapping restarts */
#define ES_OPUS_MAX_PACKET 1500         /* bytes; an encoded 20 ms Opus packet is at most 1275 */

/* ---- Timestamp mapping (pure, no codec): source pts in ms -> Opus RTP timestamps ----
 *
 * Tracks the 48 kHz timestamp of the oldest sample waiting to be encoded and how many samples
 * wait; the transcoder drives it, and it is exposed so that it can be tested on its own. All
 * values are 64-bit (pts_ms is unwrapped across the 2^32 ms wrap, ticks never wrap) and only
 * the RTP timestamp handed out is reduced modulo 2^32. */
typedef struct es_opus_ts_map {
    bool started;
    int64_t last_pts;      /* extended (unwrapped) pts in ms of the newest source frame */
    int64_t head;          /* 48 kHz ticks of the oldest buffered sample */
    int64_t buffered;      /* samples per channel buffered and not yet taken */
    int64_t threshold;     /* resync threshold in 48 kHz ticks */
    uint32_t resyncs;      /* how many times the mapping restarted (not counting the start) */
} es_opus_ts_map_t;

/* es_opus_ts_map_init: an empty mapping that resynchronises when a frame's pts is more than
 * threshold_ms away from where the sample count puts it. */
void es_opus_ts_map_init(es_opus_ts_map_t *m, uint32_t threshold_ms);

/* es_opus_ts_map_frame: a source frame with presentation time pts_ms (wrapping uint32 ms) is
 * about to append its samples. `lag` is how many 48 kHz samples of earlier frames are still on
 * their way (inside a resampler) and will be appended before this frame's first sample; it is
 * 0 when there is no such stage. Returns true when the mapping (re)started: on the first frame,
 * or when |pts_ms * 48 - lag - expected| > threshold, where expected is the timestamp of the
 * next sample by count. On a restart the buffered count is set to 0 and the caller must drop
 * the samples it holds; the next appended sample then has timestamp pts_ms * 48 - lag. */
bool es_opus_ts_map_frame(es_opus_ts_map_t *m, uint32_t pts_ms, uint32_t lag);

/* es_opus_ts_map_add: `samples` (per channel, 48 kHz) were appended to the buffer. */
void es_opus_ts_map_add(es_opus_ts_map_t *m, size_t samples);

/* es_opus_ts_map_take: when at least `samples` are buffered, takes them (one Opus frame),
 * writes the RTP timestamp of their first sample (48 kHz ticks modulo 2^32) to *rtp_ts and
 * returns true; otherwise returns false and changes nothing. */
bool es_opus_ts_map_take(es_opus_ts_map_t *m, size_t samples, uint32_t *rtp_ts);

/* ---- AAC -> Opus transcoder ---- */

typedef struct es_aac_opus es_aac_opus_t;

/* One Opus packet: `len` bytes at `opus` (one 20 ms frame, RFC 7587 payload as is), borrowed for
 * the call only; rtp_ts in 48 kHz ticks. The callback must not call back into the transcoder
 * that is emitting. */
typedef void (*es_opus_emit_fn)(void *user, const uint8_t *opus, size_t len, uint32_t rtp_ts);

/* es_aac_opus_new: a transcoder for the AAC stream described by the AudioSpecificConfig `asc`
 * (asc_len bytes, copied; ISO/IEC 14496-3 §1.6.2.1), encoding Opus at opus_bitrate_bps bit/s
 * (0 for ES_AAC_OPUS_DEFAULT_BITRATE; 6000..510000). Opus settings: OPUS_APPLICATION_AUDIO,
 * 20 ms frames, complexity 5, in-band FEC and DTX off, VBR. Returns NULL and writes a reason to
 * err (err_len bytes, NUL-terminated; err may be NULL) when the config is malformed or
 * unsupported, the bitrate is out of range, or a library fails. */
es_aac_opus_t *es_aac_opus_new(const uint8_t *asc, size_t asc_len, uint32_t opus_bitrate_bps,
                               char *err, size_t err_len);

/* es_aac_opus_free: releases everything; NULL-safe. Buffered samples (under 20 ms) are lost. */
void es_aac_opus_free(es_aac_opus_t *t);

/* es_aac_opus_push: decodes one raw AAC frame (len bytes, borrowed for the call) presented at
 * pts_ms (milliseconds, the FLV/RTMP time base; wraps at 2^32), resamples it and calls emit
 * once per completed 20 ms Opus packet, in order. Returns the number of packets emitted (0 is
 * normal: samples wait until 960 are buffered), ES_EPROTO when the frame cannot be decoded (or
 * is empty) -- nothing is emitted and the transcoder stays usable for the next frames --,
 * ES_EINVAL for a NULL argument, ES_ENOMEM when an allocation fails, ES_EIO when libav or
 * libopus fails otherwise. No allocation per frame beyond libav's own: the packet, frame and
 * sample buffer are reused (the buffer grows once if a frame is larger than expected). */
int es_aac_opus_push(es_aac_opus_t *t, const uint8_t *aac, size_t len, uint32_t pts_ms,
                     es_opus_emit_fn emit, void *user);

/* es_aac_opus_sample_rate / _in_channels: the AAC stream's sample rate in Hz and channel count:
 * as the config declares them until a frame has been decoded, then as the decoder outputs them
 * (SBR doubles the rate, PS makes stereo). _in_channels is 0 before the first frame when a
 * program config element (channelConfiguration 0) defines the channels. */
int es_aac_opus_sample_rate(const es_aac_opus_t *t);
int es_aac_opus_in_channels(const es_aac_opus_t *t);

/* es_aac_opus_channels: channels of the Opus output, 1 or 2 (for sprop-stereo, RFC 7587 §7.1). */
int es_aac_opus_channels(const es_aac_opus_t *t);

/* es_aac_opus_resyncs: how many times the timestamp mapping restarted after the first frame. */
uint32_t es_aac_opus_resyncs(const es_aac_opus_t *t);

/* ---- Opus -> AAC transcoder (WebRTC publishers to RTMP, HTTP-FLV and HLS players) ----
 *
 * libopus decodes Opus packets (RFC 7587 payloads) at 48 kHz, and libavcodec's native AAC
 * encoder makes AAC-LC (ISO/IEC 14496-3) at 48 kHz, so no resampling is needed: FLV's
 * SoundRate field says 44 kHz for any AAC, and players take the rate from the
 * AudioSpecificConfig; 48 kHz AAC-LC plays in RTMP, FLV and HLS players alike.
 *
 * Channels: always stereo. The AAC configuration (the FLV AAC sequence header) is fixed before
 * the first packet, while an Opus sender may switch between mono and stereo packets at any time
 * (`stereo`/`sprop-stereo` are preferences, RFC 7587 §6.1; browsers send mono unless asked).
 * libopus decodes a mono packet into two identical channels, which AAC's mid/side coding carries
 * for little more than mono.
 *
 * Input timing: each packet comes with its presentation time in ms on the stream's common ms
 * timeline (wrapping uint32; the integrator maps the 48 kHz RTP clock to it). The transcoder
 * keeps a 48 kHz sample clock: the first packet's first sample is at pts_ms * 48 ticks, and every
 * decoded sample advances it by one. Each packet's pts is compared with where the count puts it
 * (diff = pts_ms * 48 - next):
 * - |diff| < 2.5 ms (the smallest Opus frame): follow the count (the ms timeline's rounding is
 *   absorbed; a sender clock drifting against the timeline costs a 2.5 ms concealment, or one
 *   dropped packet, each time the drift adds up to that);
 * - 2.5 ms <= diff <= ES_OPUS_AAC_PLC_MAX_MS: packets were lost; the missing time (in whole
 *   2.5 ms units) is filled by libopus's concealment, with the in-band FEC (LBRR) data of this
 *   packet for its last part when the sender put some there (opus_decode with decode_fec = 1);
 * - the packet lies in the past (it ends at most 1.25 ms after `next`: a duplicate, or a packet
 *   whose time was already concealed) but no more than ES_OPUS_AAC_PLC_MAX_MS back: dropped, 0
 *   is returned; one that overlaps the past only in part follows the count;
 * - beyond either limit (a long loss, a publisher's restart, a jump of the timeline):
 *   resynchronise. The samples waiting for a full AAC frame are completed with silence and
 *   encoded at their own times, the Opus decoder is reset, and the count restarts at this
 *   packet's pts. The output's times then jump by as much as the input's.
 * Gaps are inferred from the pts alone: there is no separate "lost" call, a lost packet is a pts
 * that never comes.
 *
 * Output timing: an AAC frame carries 1024 samples (21.33 ms). The encoder delays its output by
 * its priming (AVCodecContext.initial_padding, 1024 samples for FFmpeg's encoder): a decoder's
 * output for the frame is the audio of the encoder's input 1024 samples earlier, and players
 * of FLV (which has no edit list, unlike MP4) play it as it is. Each frame is therefore stamped
 * with the input time of the first sample its *decoded* output represents, i.e. with the
 * priming subtracted, so that audio stays in sync with video: the first frame (priming, nearly
 * silent) is stamped 1024 samples (21.33 ms, rounded to 21) before the first packet's pts, the
 * second at the first packet's pts, and within a run without resync frame n is at
 * round((first_pts * 48 + (n - 1) * 1024) / 48) ms: no drift, since times come from the sample
 * count, and each step is 21 or 22 ms. After a resync the first frame of the new run is at the
 * new pts exactly. Times are modulo 2^32 like the input's: a first pts under 22 ms makes the
 * first frame's time wrap to just below 2^32; compare times by signed 32-bit difference
 * (es_live_clock_map does). Sync measured in tests/unit: a tone onset is heard at +0.1 ms of its
 * pts (plus the sender's Opus look-ahead, which RTP does not signal).
 * Latency: the encoder keeps two frames (its look-ahead and the overlapping window), so a frame
 * is emitted once the input reaches 2048 samples (42.7 ms) past its end, 64 ms past its first
 * sample; those last samples are not emitted when the stream ends (there is no flush). */

#define ES_OPUS_AAC_SAMPLE_RATE 48000      /* Hz, of the AAC output (no resampling) */
#define ES_OPUS_AAC_CHANNELS 2             /* AAC output channels, whatever the Opus input */
#define ES_OPUS_AAC_DEFAULT_BITRATE 128000 /* bit/s, for the stereo AAC-LC output */
#define ES_OPUS_AAC_MIN_BITRATE 16000      /* bit/s */
#define ES_OPUS_AAC_MAX_BITRATE 320000     /* bit/s */
#define ES_AAC_FRAME_SAMPLES 1024          /* samples per channel in one AAC-LC frame */
#define ES_OPUS_AAC_PLC_MAX_MS 100         /* longest gap concealed; beyond it, resync */
#define ES_OPUS_MAX_FRAME_SAMPLES 5760     /* 120 ms at 48 kHz: the longest Opus packet */

typedef struct es_opus_aac es_opus_aac_t;

/* One raw AAC frame: `len` bytes at `aac` (one raw_data_block() of ISO/IEC 14496-3 subpart 4,
 * without ADTS header: what an FLV AACPacketType 1 tag carries), borrowed for the call, presented
 * at pts_ms (the input's ms timeline, priming subtracted; see above). The callback must not call
 * back into the transcoder that is emitting. */
typedef void (*es_aac_emit_fn)(void *user, const uint8_t *aac, size_t len, uint32_t pts_ms);

/* Counters for the session layer's statistics. */
typedef struct es_opus_aac_stats {
    uint64_t packets;          /* Opus packets decoded */
    uint64_t frames;           /* AAC frames emitted */
    uint64_t concealed;        /* samples (per channel, 48 kHz) made by concealment or FEC */
    uint32_t concealments;     /* gaps concealed */
    uint32_t resyncs;          /* restarts of the sample clock, not counting the first packet */
    uint32_t late;             /* packets dropped as duplicates or too late */
    uint32_t bad;              /* packets refused with ES_EPROTO */
} es_opus_aac_stats_t;

/* es_opus_aac_new: a transcoder to stereo 48 kHz AAC-LC at aac_bitrate_bps bit/s (0 for
 * ES_OPUS_AAC_DEFAULT_BITRATE; ES_OPUS_AAC_MIN_BITRATE..ES_OPUS_AAC_MAX_BITRATE), encoded by
 * libavcodec's native "aac" encoder (average bitrate target, its default "twoloop" coder).
 * Returns NULL and writes a reason to err (err_len bytes, NUL-terminated; err may be NULL) when
 * the bitrate is out of range or a library fails. Silences libav's logging process-wide, as
 * es_aac_opus_new does. */
es_opus_aac_t *es_opus_aac_new(uint32_t aac_bitrate_bps, char *err, size_t err_len);

/* es_opus_aac_free: releases everything; NULL-safe. Samples not yet emitted are lost. */
void es_opus_aac_free(es_opus_aac_t *t);

/* es_opus_aac_push: decodes one Opus packet (len bytes at `opus`, borrowed for the call; an RTP
 * payload as RFC 7587 §4.2 defines it, 2.5 to 120 ms) presented at pts_ms (ms on the stream's
 * timeline, wrapping at 2^32), conceals or resynchronises first as described above, and calls
 * emit once per completed AAC frame, in order. Returns the number of frames emitted (0 is
 * normal: samples wait until a frame is full, and the encoder's delay holds two), ES_EPROTO when
 * the packet is empty or malformed (opus_packet_parse refuses it, or it is longer than 120 ms)
 * -- only the `bad` counter changes and the transcoder stays usable: the time the packet should
 * have covered is concealed when the next one comes --, ES_EINVAL for a NULL argument,
 * ES_ENOMEM when libav's allocation fails, ES_EIO when libopus or libavcodec fails otherwise
 * (frames already emitted by the same call are counted instead when there are some). Allocates
 * nothing per packet beyond libav's own (the frame, packet and sample buffers are reused). */
int es_opus_aac_push(es_opus_aac_t *t, const uint8_t *opus, size_t len, uint32_t pts_ms,
                     es_aac_emit_fn emit, void *user);

/* es_opus_aac_config: the AudioSpecificConfig of the output (ISO/IEC 14496-3 §1.6.2.1), the
 * encoder's extradata, what the FLV AAC sequence header (AACPacketType 0) carries: AAC-LC, 48000
 * Hz, 2 channels, and FFmpeg's explicit "no SBR" extension (5 bytes: 11 90 56 E5 00). *asc is
 * borrowed until es_opus_aac_free. Returns 0, or ES_EINVAL for a NULL argument. */
int es_opus_aac_config(const es_opus_aac_t *t, const uint8_t **asc, size_t *len);

/* es_opus_aac_sample_rate / _channels: of the AAC output, ES_OPUS_AAC_SAMPLE_RATE and
 * ES_OPUS_AAC_CHANNELS (for the FLV audio tag header and HLS stream parameters). */
int es_opus_aac_sample_rate(const es_opus_aac_t *t);
int es_opus_aac_channels(const es_opus_aac_t *t);

/* es_opus_aac_stats: the counters since es_opus_aac_new. */
es_opus_aac_stats_t es_opus_aac_stats(const es_opus_aac_t *t);

#endif
