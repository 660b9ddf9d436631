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
 * process-wide by the first es_aac_opus_new (it would write to stderr about network input). */
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

#endif
