/* A live stream's lifetime across protocols: the registry entry with its RTP fan-out (WebRTC
 * players, include/estuary/stream.h) and, once an RTMP publisher or a frame consumer needs it,
 * its FLV-tag fan-out (RTMP/HTTP-FLV players, include/estuary/frame_hub.h). A stream exists
 * while it has a source or any player of either kind; the last one to leave releases it. */
#ifndef ESTUARY_LIVE_H
#define ESTUARY_LIVE_H

#include "estuary/config.h"
#include "estuary/frame_hub.h"
#include "estuary/hls.h"
#include "estuary/registry.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* es_live_open: the stream app/name, created (with its RTP fan-out) when absent, at monotonic
 * time now_us. Returns 0 and *out (owned by the registry), ES_EINVAL for a bad name, or
 * ES_ENOMEM (nothing is left allocated). */
int es_live_open(es_registry_t *reg, const char *app, const char *name, uint64_t now_us,
                 es_stream_t **out);

/* es_live_hub_limits: the frame hub limits the rtmp section of cfg asks for. */
es_frame_hub_limits_t es_live_hub_limits(const es_config_t *cfg);

/* es_live_frames: the stream's frame hub, created with `limits` on first use. Borrowed; NULL
 * when out of memory. */
es_frame_hub_t *es_live_frames(es_stream_t *st, const es_frame_hub_limits_t *limits);

/* es_live_idle: true when the stream has no source, no WebRTC player and no frame subscriber. */
bool es_live_idle(const es_stream_t *st);

/* es_live_viewers: players of the stream now: WebRTC players (WHEP, WebSocket) and RTMP and
 * HTTP-FLV players; not HLS, whose players are not connections. NULL-safe (0). */
size_t es_live_viewers(const es_stream_t *st);

/* es_live_publishing: true when the stream has a source now. NULL-safe (false). */
bool es_live_publishing(const es_stream_t *st);

/* es_live_release: removes and frees the stream when it is idle; returns true then (st is
 * gone). Logs the removal. */
bool es_live_release(es_registry_t *reg, es_stream_t *st);

/* es_live_publish_tag: one tag from the stream's source (an RTMP publisher, or the WebRTC
 * bridge) to its frame consumers: the frame hub (which the source's publish created; HLS and
 * RTMP/HTTP-FLV players read from it) and, for an RTMP source with rtmp_to_rtc, the RTMP ->
 * WebRTC bridge. The caller keeps its reference. */
void es_live_publish_tag(es_stream_t *st, es_tag_t *tag, uint64_t now_us);

/* es_live_source_begin: a publisher of `kind` was admitted (include/estuary/admission.h) and
 * takes the stream at monotonic now_us. `kick` ends that publisher's session (a takeover by a
 * new publisher, es_live_source_kick), called with `user` and the reason. An RTMP source resets
 * the frame hub (new sequence headers follow) and, when the app has rtmp_to_rtc, gets its RTMP ->
 * WebRTC bridge. Returns 0, or ES_EEXIST when the stream has a source. */
int es_live_source_begin(es_stream_t *st, es_source_kind_t kind,
                         void (*kick)(void *user, const char *why), void *user,
                         const es_config_t *cfg, uint64_t now_us);

/* es_live_source_silent_us: how long (µs) the stream's source has sent no media at now_us; 0
 * without a source. */
uint64_t es_live_source_silent_us(const es_stream_t *st, uint64_t now_us);

/* es_live_source_kick: ends the source's session through its kick callback (which calls
 * es_live_source_ended as any leaving publisher does). No-op without a source. */
void es_live_source_kick(es_stream_t *st, const char *why);

/* es_live_tick: the stream maintenance of the whole registry, every 10 ms, on its own timer
 * whatever protocols are enabled: the RTMP -> WebRTC bridges' RTCP and, with `slow` (every
 * 100 ms), es_live_maintain of each stream, releasing the ones that became idle. */
void es_live_tick(es_registry_t *reg, const es_config_t *cfg, const es_hls_io_t *io,
                  uint64_t now_us, bool slow);

/* es_live_source_ended: the publisher left (at monotonic now_us): frees either bridge (WebRTC
 * players stay and wait), forgets the hub's headers and GOP (its players stay and wait), forgets
 * why FLV was unavailable, and sets source NONE. */
void es_live_source_ended(es_stream_t *st, uint64_t now_us);

/* es_live_maintain: every ~100 ms per stream: runs the HLS segmenter (its file work goes to
 * io, NULL: done at once) while the stream is
 * published and the app has hls (a frame-hub subscriber drained here; at the end the playlist
 * gets #EXT-X-ENDLIST and the folder is removed hls.cleanup_ms later); creates the WebRTC -> FLV
 * bridge when a WebRTC source and a frame consumer (RTMP/HTTP-FLV player, HLS) coexist and the
 * app has rtc_to_rtmp, frees it when the consumers are gone, and runs its timers. A source that
 * cannot go to FLV (VP8, VP9, AV1 video) is logged once and reported in the API. Returns true
 * when the stream has become idle (the caller may es_live_release it). */
bool es_live_maintain(es_stream_t *st, const es_config_t *cfg, const es_hls_io_t *io,
                      uint64_t now_us);

/* es_live_shutdown: the server stops: stops every stream's HLS and removes its folder, frees
 * the WebRTC bridges, and releases the streams that are idle then. */
void es_live_shutdown(es_registry_t *reg, const es_config_t *cfg, const es_hls_io_t *io);

/* es_live_json: the stream's source ("webrtc", "rtmp" or null) and the state of its fan-outs
 * (codecs, bitrate, players), merged into one object. New reference, NULL on ENOMEM. */
json_t *es_live_json(const es_stream_t *st);

/* A player's output clock: tags keep their spacing, but the first tag a player gets is at 0 and a
 * jump in the source's timestamps (a new publisher restarting at 0, a GOP cache far from the
 * cached sequence headers) continues from the last output instead of going back or far ahead,
 * as RTMP and FLV players expect. */
typedef struct es_live_clock {
    bool started;
    uint32_t offset;   /* output = input - offset (mod 2^32) */
    uint32_t last_out; /* ms */
} es_live_clock_t;

#define ES_LIVE_CLOCK_JUMP_MS 5000 /* a step larger than this (either way) is a discontinuity */

/* es_live_clock_map: the output timestamp (ms) for a tag at ts_ms on the source's clock. */
uint32_t es_live_clock_map(es_live_clock_t *c, uint32_t ts_ms);

#endif
