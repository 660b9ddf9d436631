/* A stream's frame-level fan-out: FLV tags (RTMP audio, video and data messages) from one
 * source to many frame consumers (RTMP players, HTTP-FLV players; later the HLS segmenter).
 * Sans-IO and clock-free: tags and `now` in, tags out of per-subscriber queues. One loop, one
 * thread: nothing here is thread-safe. After nginx-rtmp's ngx_rtmp_live_module.c.
 *
 * Each tag is made once (es_tag_new, refcounted) and every subscriber's queue holds a reference
 * to the same tag: publishing costs O(subscribers) pointer pushes and no allocation per
 * subscriber once the queues' rings have grown to their working size.
 *
 * The hub keeps what a new player needs before the live edge: the last onMetaData, the latest
 * video and audio sequence headers (AVC/HEVC/AV1/VP9 configuration record, AAC
 * AudioSpecificConfig, Enhanced RTMP SequenceStart), and the GOP cache (every audio, video and
 * non-metadata data tag since the last video key frame, at most `gop_max_bytes`; audio-only
 * streams keep the last second of audio). A new subscriber's queue starts with metadata, video
 * sequence header, audio sequence header, then the GOP, and then gets every tag live, in
 * publication order, with the tags' own timestamps (the owner rebases if it wants to). When the
 * stream has video and no usable GOP (no key frame yet, or the GOP outgrew its cap) the new
 * subscriber skips audio and video until the next video key frame.
 *
 * Slow subscribers (nginx-rtmp's ngx_rtmp_send_message): each queue is bounded in time (the
 * newest tag's timestamp minus the oldest queued media tag's, `queue_ms`) and in bytes
 * (`queue_bytes`). When a tag would overflow it, every queued media tag is dropped and the
 * subscriber skips audio and video until the next video key frame (audio-only streams restart
 * at once); sequence headers and metadata are kept (only ones superseded by a later one of the
 * same kind in the same queue go, since no frame between them remains). A subscriber that has
 * taken nothing for `stall_ms` since tags were first offered to it after its last pop (however
 * often its queue overflowed meanwhile) is marked stalled; its owner disconnects it. Other subscribers are never affected by a slow one. */
#ifndef ESTUARY_FRAME_HUB_H
#define ESTUARY_FRAME_HUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { ES_TAG_AUDIO = 8, ES_TAG_VIDEO = 9, ES_TAG_DATA = 18 }; /* FLV TagType = RTMP type id */

/* One FLV tag body, refcounted (one loop, plain integer). Immutable once made; read the fields,
 * never write them. */
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

/* es_tag_new: a tag with one reference (the caller's), holding a copy of the len bytes at data
 * (data may be NULL when len is 0). keyframe/config/metadata are derived from the body,
 * bounds-checked, so any bytes are accepted (a 0- or 1-byte body is simply unclassified):
 *   video, legacy header: FrameType (byte 0 >> 4) 1 is a key frame; for CodecID (byte 0 & 15)
 *     7 (AVC) and 12 (HEVC) byte 1 is AVCPacketType, 0 = sequence header (config, not key);
 *   video, Enhanced RTMP (byte 0 bit 7 IsExHeader, FourCC in bytes 1-4): PacketType
 *     (byte 0 & 15) 0 SequenceStart and 5 MPEG2TSSequenceStart are config; 1 CodedFrames and
 *     3 CodedFramesX with FrameType ((byte 0 >> 4) & 7) 1 are key frames; FrameType 5 (video
 *     info/command frame) is neither;
 *   audio: SoundFormat (byte 0 >> 4) 10 (AAC) with AACPacketType (byte 1) 0 is config;
 *     SoundFormat 9 (Enhanced RTMP ExHeader) with AudioPacketType 0 SequenceStart is config;
 *   data: metadata when the body is the AMF0 string "onMetaData" followed by its value (the
 *     owner strips a publisher's "@setDataFrame" first, as nginx-rtmp does).
 * Returns NULL when out of memory, or when len > 0 with data NULL. */
es_tag_t *es_tag_new(uint8_t type, uint32_t timestamp_ms, const uint8_t *data, size_t len);
/* es_tag_new2: as es_tag_new for a body made of two parts, head_len bytes of head (e.g. an FLV
 * tag header a bridge builds) followed by body_len bytes of body, copied once. */
es_tag_t *es_tag_new2(uint8_t type, uint32_t timestamp_ms, const uint8_t *head, size_t head_len,
                      const uint8_t *body, size_t body_len);
/* es_tag_ref: one more reference; returns tag. */
es_tag_t *es_tag_ref(es_tag_t *tag);
/* es_tag_unref: drops one reference, freeing on the last. NULL-safe. */
void es_tag_unref(es_tag_t *tag);

/* Bounds of a hub (config: rtmp.player_queue_ms, player_queue_bytes, player_stall_ms,
 * gop_cache_bytes). */
typedef struct es_frame_hub_limits {
    uint32_t queue_ms;     /* per-subscriber queue bound in tag time, ms; 0: no time bound */
    size_t queue_bytes;    /* per-subscriber queue bound in bytes; 0: no byte bound */
    uint32_t stall_ms;     /* a subscriber that took nothing for this long is stalled, ms;
                              0: never */
    size_t gop_max_bytes;  /* GOP cache cap, bytes; past it the cache is emptied and restarts at
                              the next key frame; 0 turns the cache off */
} es_frame_hub_limits_t;

typedef struct es_frame_hub es_frame_hub_t;
typedef struct es_frame_sub es_frame_sub_t;

/* es_frame_hub_new: an empty hub named `key` ("app/stream", copied, for logs; NULL means ""),
 * with a copy of *limits. NULL on ENOMEM or when limits is NULL. */
es_frame_hub_t *es_frame_hub_new(const char *key, const es_frame_hub_limits_t *limits);

/* es_frame_hub_free: NULL-safe; frees subscribers still attached (their wake is not called; any
 * es_frame_sub_t pointer the owner kept is dangling afterwards) and drops every reference. Not
 * to be called from inside a wake callback. */
void es_frame_hub_free(es_frame_hub_t *hub);

/* es_frame_hub_set_limits: copies *limits for later tags (SIGHUP). Queues are not trimmed now:
 * the next tag that overflows a queue does it. A lower gop_max_bytes applies from the next tag
 * cached. */
void es_frame_hub_set_limits(es_frame_hub_t *hub, const es_frame_hub_limits_t *limits);

/* es_frame_hub_publish: one tag from the source at monotonic time now_us (µs, also the clock of
 * the bitrate window). The hub takes its own references (the caller keeps its one). Updates
 * metadata, sequence headers and GOP cache, and offers the tag to every subscriber (queued,
 * skipped while the subscriber waits for a key frame, or overflowing its queue); a subscriber's
 * wake callback is called when its queue goes from empty to non-empty. O(subscribers). Not to
 * be called from inside a wake callback. */
void es_frame_hub_publish(es_frame_hub_t *hub, es_tag_t *tag, uint64_t now_us);

/* es_frame_hub_reset: the source left: forget metadata, sequence headers and the GOP cache, and
 * whether the stream had video, its codecs, size and bitrate (tags_in/bytes_in stay).
 * Subscribers stay with their queues; each waits for the next source's first video key frame
 * for video (audio flows until that source shows video), and gets that source's metadata and
 * sequence headers live, before its first frame. */
void es_frame_hub_reset(es_frame_hub_t *hub);

/* es_frame_hub_tick: at monotonic time now_us, marks stalled every subscriber that has been
 * offered tags since its last pop and has popped nothing for stall_ms (counted from its last pop,
 * or from the first tag offered after it if later; an overflow emptying its queue does not
 * restart the count), and calls its wake callback once so the owner notices.
 * Call every few hundred ms at most. */
void es_frame_hub_tick(es_frame_hub_t *hub, uint64_t now_us);

/* es_frame_hub_subscribe: a new subscriber at monotonic time now_us whose queue starts with
 * metadata, video sequence header, audio sequence header and the GOP cache (in that order; those
 * present). `wake(user)` (may be NULL) is called whenever its queue goes from empty to non-empty
 * or it becomes stalled; the owner then pops. wake is NOT called from inside this function: the
 * owner pops (or schedules a write) right after it returns when the queue is non-empty
 * (es_frame_sub_stats().queued_bytes > 0 or the first pop returns a tag). Inside wake the owner
 * may call es_frame_sub_pop, es_frame_sub_stats, es_frame_sub_stalled and
 * es_frame_hub_unsubscribe (for any subscriber), and es_frame_hub_subscribe. NULL when out of
 * memory. The hub owns the subscriber; es_frame_hub_unsubscribe or es_frame_hub_free ends it. */
es_frame_sub_t *es_frame_hub_subscribe(es_frame_hub_t *hub, void (*wake)(void *user), void *user,
                                       uint64_t now_us);

/* es_frame_hub_unsubscribe: detaches sub and drops its queued references; sub must not be used
 * afterwards. NULL-safe for sub. Safe inside a wake callback (the memory is then released when
 * the hub's current publish or tick returns). */
void es_frame_hub_unsubscribe(es_frame_hub_t *hub, es_frame_sub_t *sub);

/* es_frame_sub_pop: the subscriber's next tag at monotonic time now_us (µs; restarts the stall
 * clock), or NULL when its queue is empty. The caller receives the queue's reference
 * (es_tag_unref once written). */
es_tag_t *es_frame_sub_pop(es_frame_sub_t *sub, uint64_t now_us);

/* es_frame_sub_stalled: true once the subscriber stalled (it stays so); the owner disconnects
 * it. */
bool es_frame_sub_stalled(const es_frame_sub_t *sub);

typedef struct es_frame_sub_stats {
    uint64_t tags, bytes;      /* tags and bytes popped */
    uint64_t dropped_tags;     /* tags removed from the queue by overflows */
    uint64_t skipped_tags;     /* tags not queued while waiting for a video key frame */
    uint32_t overflows;        /* times the queue overflowed */
    size_t queued_bytes;       /* bytes waiting now (tag bodies) */
    size_t queued_tags;        /* tags waiting now */
} es_frame_sub_stats_t;

/* es_frame_sub_stats: a copy of the subscriber's counters. */
es_frame_sub_stats_t es_frame_sub_stats(const es_frame_sub_t *sub);

/* es_frame_hub_sub_count: subscribers attached (unsubscribed ones excluded). */
size_t es_frame_hub_sub_count(const es_frame_hub_t *hub);

/* es_frame_hub_set_video_size: the video's width and height in pixels, from the owner's parse
 * of the sequence header (SPS); reported by es_frame_hub_json and preferred to onMetaData's.
 * 0, 0 forgets them. Cleared by es_frame_hub_reset. */
void es_frame_hub_set_video_size(es_frame_hub_t *hub, uint32_t width, uint32_t height);

/* es_frame_hub_json: a new reference to an object describing the source and its fan-out:
 *   "video_codec", "audio_codec": as seen in the tags ("H264", "HEVC", "AV1", "VP9", "VP8",
 *     "AAC", "MP3", "Opus", ...), present once a tag of that kind came;
 *   "width", "height": pixels, from es_frame_hub_set_video_size or else onMetaData, when known;
 *   "bitrate_bps": bits per second of tag bodies over the last ~3 s before the last publish;
 *   "tags_in", "bytes_in": totals since the hub was made;
 *   "subscribers", "queued_bytes" (sum over subscribers), "overflows" (sum over subscribers
 *     attached), "gop_tags", "gop_bytes": the GOP cache now.
 * NULL when out of memory. */
json_t *es_frame_hub_json(const es_frame_hub_t *hub);

#endif
