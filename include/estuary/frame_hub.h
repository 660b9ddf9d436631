/* A stream's frame-level fan-out: FLV tags (RTMP audio, video and data messages) from one
 * source to many frame consumers (RTMP players, HTTP-FLV players; later the HLS segmenter).
 * Sans-IO and clock-free: tags and `now` in, tags out of per-subscriber queues.
 *
 * The hub keeps what a new player needs before the live edge: the last onMetaData, the video
 * and audio sequence headers (AVC/HEVC/AV1 configuration record, AAC AudioSpecificConfig), and
 * the GOP cache (every tag since the last video key frame; audio-only streams keep the last
 * second of audio). A subscriber starts with those, then gets every tag live.
 *
 * Slow subscribers (nginx-rtmp's ngx_rtmp_send_message): each queue is bounded in time (the
 * newest minus the oldest queued timestamp, `queue_ms`) and in bytes (`queue_bytes`). When a
 * tag would overflow it, every queued media tag is dropped and the subscriber skips tags until
 * the next video key frame (audio-only streams: restarts at once); sequence headers and
 * metadata are never dropped. A subscriber that has taken nothing from its queue for
 * `stall_ms` while tags were waiting is marked stalled, and its owner disconnects it. */
#ifndef ESTUARY_FRAME_HUB_H
#define ESTUARY_FRAME_HUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { ES_TAG_AUDIO = 8, ES_TAG_VIDEO = 9, ES_TAG_DATA = 18 }; /* FLV TagType = RTMP type id */

/* One FLV tag body, refcounted (one loop, plain integer). Immutable once made. */
typedef struct es_tag {
    uint32_t refs;
    uint8_t type;          /* ES_TAG_AUDIO, ES_TAG_VIDEO or ES_TAG_DATA */
    bool keyframe;         /* video: FrameType 1 (key frame), sequence headers excluded */
    bool config;           /* a sequence header: AVC/HEVC/AV1 configuration, AAC config */
    bool metadata;         /* data: onMetaData */
    uint32_t timestamp_ms; /* decoding time, RTMP/FLV milliseconds */
    size_t len;            /* bytes in data */
    uint8_t data[];        /* the tag body: exactly what follows the FLV tag header */
} es_tag_t;

/* es_tag_new: a tag with one reference, holding a copy of len bytes. keyframe/config/metadata
 * are derived from the body (legacy FLV AVC/HEVC headers, Enhanced RTMP FourCC video headers,
 * AAC packet type, the AMF0 name of a data tag). NULL when out of memory. */
es_tag_t *es_tag_new(uint8_t type, uint32_t timestamp_ms, const uint8_t *data, size_t len);
/* es_tag_ref: one more reference; returns tag. */
es_tag_t *es_tag_ref(es_tag_t *tag);
/* es_tag_unref: drops one reference, freeing on the last. NULL-safe. */
void es_tag_unref(es_tag_t *tag);

typedef struct es_frame_hub_limits {
    uint32_t queue_ms;     /* per-subscriber queue bound in tag time, ms (rtmp.player_queue_ms) */
    size_t queue_bytes;    /* per-subscriber queue bound in bytes */
    uint32_t stall_ms;     /* disconnect a subscriber that took nothing for this long, ms */
    size_t gop_max_bytes;  /* GOP cache cap, bytes; past it the cache restarts at the next key */
} es_frame_hub_limits_t;

typedef struct es_frame_hub es_frame_hub_t;
typedef struct es_frame_sub es_frame_sub_t;

/* es_frame_hub_new: an empty hub named `key` ("app/stream", copied, for logs). NULL on ENOMEM. */
es_frame_hub_t *es_frame_hub_new(const char *key, const es_frame_hub_limits_t *limits);

/* es_frame_hub_free: NULL-safe; frees subscribers still attached and drops every reference. */
void es_frame_hub_free(es_frame_hub_t *hub);

/* es_frame_hub_set_limits: new limits for later tags (SIGHUP). */
void es_frame_hub_set_limits(es_frame_hub_t *hub, const es_frame_hub_limits_t *limits);

/* es_frame_hub_publish: one tag from the source at monotonic time now_us; the hub takes its own
 * references (the caller keeps its one). Updates metadata, sequence headers and GOP cache, and
 * queues the tag on every subscriber (whose wake callback is called when its queue was empty). */
void es_frame_hub_publish(es_frame_hub_t *hub, es_tag_t *tag, uint64_t now_us);

/* es_frame_hub_reset: the source left: forget metadata, sequence headers and the GOP cache.
 * Subscribers stay and will get the next source's headers before its first frame. */
void es_frame_hub_reset(es_frame_hub_t *hub);

/* es_frame_hub_tick: marks subscribers stalled (see above), calling their wake callback so the
 * owner notices. Call every few hundred ms at most. */
void es_frame_hub_tick(es_frame_hub_t *hub, uint64_t now_us);

/* es_frame_hub_subscribe: a new subscriber whose queue starts with metadata, sequence headers
 * and the GOP cache. `wake(user)` is called whenever its queue goes from empty to non-empty or
 * it becomes stalled; the owner then pops. NULL when out of memory. */
es_frame_sub_t *es_frame_hub_subscribe(es_frame_hub_t *hub, void (*wake)(void *user), void *user,
                                       uint64_t now_us);

/* es_frame_hub_unsubscribe: detaches and frees sub, dropping its queued references. */
void es_frame_hub_unsubscribe(es_frame_hub_t *hub, es_frame_sub_t *sub);

/* es_frame_sub_pop: the subscriber's next tag, or NULL when its queue is empty. The caller
 * receives the queue's reference (es_tag_unref when written). */
es_tag_t *es_frame_sub_pop(es_frame_sub_t *sub, uint64_t now_us);

/* es_frame_sub_stalled: true once the subscriber stalled; the owner disconnects it. */
bool es_frame_sub_stalled(const es_frame_sub_t *sub);

typedef struct es_frame_sub_stats {
    uint64_t tags, bytes;      /* tags and bytes popped */
    uint64_t dropped_tags;     /* tags dropped by overflows */
    uint32_t overflows;        /* times the queue overflowed */
    size_t queued_bytes;       /* bytes waiting now */
} es_frame_sub_stats_t;

/* es_frame_sub_stats: the subscriber's counters. */
es_frame_sub_stats_t es_frame_sub_stats(const es_frame_sub_t *sub);

/* es_frame_hub_sub_count: subscribers attached. */
size_t es_frame_hub_sub_count(const es_frame_hub_t *hub);

/* es_frame_hub_json: the source's codecs as seen in the tags ("H264", "HEVC", "AV1", "AAC"),
 * video width/height from the metadata when present, bitrate in bit/s over the last seconds,
 * tags in, subscribers. New reference. */
json_t *es_frame_hub_json(const es_frame_hub_t *hub);

#endif
