/* Stream registry: "app/stream" -> stream, O(1) lookup. One registry per server, owned by the
 * loop thread. The registry names streams and keeps them findable and listable; the media
 * layer hangs a stream's fan-outs on it (include/estuary/live.h creates and releases them). */
#ifndef ESTUARY_REGISTRY_H
#define ESTUARY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#define ES_APP_NAME_MAX 64     /* bytes, without the NUL */
#define ES_STREAM_NAME_MAX 128 /* bytes, without the NUL */

struct es_media_stream;
struct es_frame_hub;
struct es_rtmp_bridge;
struct es_rtc_bridge;
struct es_hls;
struct es_frame_sub;

/* Who publishes a stream now. */
typedef enum { ES_SOURCE_NONE = 0, ES_SOURCE_WEBRTC, ES_SOURCE_RTMP } es_source_kind_t;

typedef struct es_stream {
    char app[ES_APP_NAME_MAX + 1];
    char name[ES_STREAM_NAME_MAX + 1];
    char key[ES_APP_NAME_MAX + 1 + ES_STREAM_NAME_MAX + 1]; /* "app/name", for logs */
    uint64_t created_us;   /* monotonic µs, as given to es_registry_add */
    /* Every field below is written by include/estuary/live.h only (the stream's owner). */
    es_source_kind_t source;         /* es_live_source_begin / es_live_source_ended */
    uint64_t source_active_us;       /* monotonic µs of the source's last media (RTMP tags; a
                                        WebRTC source's packets are in its media stream) */
    void (*source_kick)(void *user, const char *why); /* ends the source's session */
    void *source_user;
    struct es_media_stream *media;   /* RTP fan-out to WebRTC players; owned, never NULL once
                                        made by es_live_open */
    struct es_frame_hub *frames;     /* FLV-tag fan-out to RTMP/HTTP-FLV players; NULL until one
                                        is needed (es_live_frames) */
    struct es_rtmp_bridge *bridge;   /* RTMP source -> RTP for WebRTC players, while an RTMP
                                        publisher with rtmp_to_rtc is on; owned by rtmp_server */
    struct es_rtc_bridge *rtc_bridge;/* WebRTC source -> FLV tags, while a frame consumer
                                        exists (es_live_maintain) */
    char flv_unavailable[200];       /* why a WebRTC source cannot reach FLV/HLS, "" if it can */
    struct es_hls *hls;              /* HLS segmenter while the stream is published (apps.*.hls) */
    struct es_frame_sub *hls_sub;    /* its queue in `frames` */
    uint64_t hls_cleanup_at_us;      /* monotonic µs when the ended stream's HLS folder goes; 0 */
    struct es_stream *next_in_bucket; /* registry internal */
} es_stream_t;

typedef struct es_registry es_registry_t;

/* es_registry_new: an empty registry; NULL when out of memory. */
es_registry_t *es_registry_new(void);

/* es_registry_free: frees the registry and every stream still in it (not their fan-outs).
 * NULL-safe. */
void es_registry_free(es_registry_t *reg);

/* es_registry_valid_name: true when `s` may be an app or stream name: 1..max bytes of letters,
 * digits, '_', '-', '.', not starting with '.'. */
int es_registry_valid_name(const char *s, size_t max);

/* es_registry_add: creates stream app/name at time now_us (monotonic µs). Returns 0 and the new
 * stream in *out (owned by the registry until es_registry_remove), ES_EEXIST when it exists
 * (then *out is the existing one), ES_EINVAL for a bad name, ES_ENOMEM. */
int es_registry_add(es_registry_t *reg, const char *app, const char *name, uint64_t now_us,
                    es_stream_t **out);

/* es_registry_find: the stream app/name, or NULL. Borrowed. */
es_stream_t *es_registry_find(const es_registry_t *reg, const char *app, const char *name);

/* es_registry_remove: removes and frees `stream` (which must be in reg). */
void es_registry_remove(es_registry_t *reg, es_stream_t *stream);

/* es_registry_count: number of streams. */
size_t es_registry_count(const es_registry_t *reg);

/* es_registry_list: up to `max` streams into out[], sorted by key; returns how many were
 * written. Borrowed pointers, valid until the registry changes. */
size_t es_registry_list(const es_registry_t *reg, es_stream_t **out, size_t max);

#endif
