/* RTMP to WebRTC for one stream (apps.<app>.rtmp_to_rtc): FLV tags from an RTMP publisher become
 * the RTP source of the stream's WebRTC fan-out (include/estuary/stream.h), so WHEP players of
 * an RTMP-fed stream get the same GOP cache, NACK and RTCP behaviour as WHIP-fed ones.
 *
 * Video: H.264 access units (AVCC) are packetized per RFC 6184 (SPS/PPS as STAP-A before each
 * IDR, FU-A over the MTU) with RTP timestamps = presentation time (dts + cts) ms * 90. Audio:
 * AAC is decoded, resampled to 48 kHz and encoded to Opus (20 ms) by include/estuary/transcode.h;
 * the transcoder exists only while the stream has WebRTC players. Audio and video share the FLV
 * millisecond clock, and sender reports map both to one NTP timeline, so players keep lip sync.
 * Sans-IO: tags and `now` in, RTP into the media stream. */
#ifndef ESTUARY_RTMP_BRIDGE_H
#define ESTUARY_RTMP_BRIDGE_H

#include "estuary/frame_hub.h"
#include "estuary/stream.h"

#include <jansson.h>
#include <stdint.h>

typedef struct es_rtmp_bridge es_rtmp_bridge_t;

/* es_rtmp_bridge_new: a bridge feeding `ms` (borrowed; must outlive the bridge). key names the
 * stream in logs; opus_bitrate is bit/s. The media stream's source is set once the first coded
 * frame shows which tracks there are (H.264 video; AAC audio becomes Opus). NULL on ENOMEM. */
es_rtmp_bridge_t *es_rtmp_bridge_new(es_media_stream_t *ms, const char *key, uint32_t opus_bitrate);

/* es_rtmp_bridge_free: detaches the source from the media stream (players stay) and frees the
 * bridge. NULL-safe. */
void es_rtmp_bridge_free(es_rtmp_bridge_t *b, uint64_t now_us);

/* es_rtmp_bridge_tag: one tag from the publisher at monotonic time now_us (borrowed). Video
 * codecs other than H.264 and audio other than AAC are reported once (log) and skipped. */
void es_rtmp_bridge_tag(es_rtmp_bridge_t *b, const es_tag_t *tag, uint64_t now_us);

/* es_rtmp_bridge_tick: timers (call every 10 ms): the media stream's RTCP and our sender
 * reports for its tracks. */
void es_rtmp_bridge_tick(es_rtmp_bridge_t *b, uint64_t now_us);

/* es_rtmp_bridge_json: what the bridge does (codecs in/out, transcoder active, B-frames seen,
 * frames and packets made). New reference. */
json_t *es_rtmp_bridge_json(const es_rtmp_bridge_t *b);

#endif
