/* WebRTC to RTMP/HTTP-FLV/HLS for one stream (apps.<app>.rtc_to_rtmp): the publisher's RTP,
 * seen through the media stream's tap, becomes FLV tags. H.264 RTP is depacketized (RFC 6184)
 * into AVCC access units, with the AVC sequence header built from the SPS/PPS seen in band;
 * Opus is transcoded to AAC-LC; RTP timestamps become milliseconds on one timeline aligned by the
 * publisher's sender reports (include/estuary/rtp_clock.h), so lip sync holds in the outputs.
 * Lost packets drop the broken access unit; output resumes at the next key frame, which is
 * asked for with a PLI. Exists only while a frame consumer does. Sans-IO: RTP and `now` in, tags
 * out through a callback. */
#ifndef ESTUARY_RTC_BRIDGE_H
#define ESTUARY_RTC_BRIDGE_H

#include "estuary/frame_hub.h"
#include "estuary/stream.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct es_rtc_bridge es_rtc_bridge_t;

/* Receives one tag (a reference the callee may keep with es_tag_ref; the bridge drops its own
 * after the call), at monotonic time now_us. */
typedef void (*es_rtc_bridge_out_fn)(void *user, es_tag_t *tag, uint64_t now_us);

/* es_rtc_bridge_new: attaches to `ms` (borrowed; it must have a source and outlive the bridge)
 * as its tap. aac_bitrate is bit/s (0: the transcoder's default). Returns NULL with the reason
 * in `why` when the stream cannot go to FLV (its video is VP8, VP9 or AV1; neither H.264 nor
 * Opus) or memory ran out. */
es_rtc_bridge_t *es_rtc_bridge_new(es_media_stream_t *ms, const char *key, uint32_t aac_bitrate,
                                   es_rtc_bridge_out_fn out, void *user, char *why,
                                   size_t why_len);

/* es_rtc_bridge_supported: true when ms's source can go to FLV (H.264 video and/or Opus audio,
 * no other video codec); false with the reason in `why` (why_len bytes) otherwise. */
bool es_rtc_bridge_supported(const es_media_stream_t *ms, char *why, size_t why_len);

/* es_rtc_bridge_free: detaches the tap and frees. NULL-safe. */
void es_rtc_bridge_free(es_rtc_bridge_t *b);

/* es_rtc_bridge_set_key_interval: ask the publisher for a key frame (PLI) every `ms` ms, 0 for
 * never (only after losses): HLS segments are cut at key frames, which WebRTC encoders send
 * rarely on their own. */
void es_rtc_bridge_set_key_interval(es_rtc_bridge_t *b, uint32_t ms);

/* es_rtc_bridge_tick: gives up waited-for gaps (call every 100 ms or more often). */
void es_rtc_bridge_tick(es_rtc_bridge_t *b, uint64_t now_us);

/* es_rtc_bridge_json: codecs in/out, access units, broken ones, key-frame requests, AAC frames,
 * whether the clock is SR-aligned. New reference. */
json_t *es_rtc_bridge_json(const es_rtc_bridge_t *b);

#endif
