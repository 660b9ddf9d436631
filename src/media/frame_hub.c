/* A stream's FLV-tag fan-out: one source, many frame subscribers (include/estuary/frame_hub.h).
 *
 * Tag bodies: Adobe FLV file format 10.1 Annex E.4.2 (AUDIODATA, AACAUDIODATA) and E.4.3
 * (VIDEODATA, AVCVIDEOPACKET; CodecID 12 for HEVC is the common Chinese-CDN extension), Enhanced
 * RTMP v1/v2 (veovera.org: ExVideoTagHeader, ExAudioTagHeader with FourCC), parsed by
 * src/rtmp/flv.c, and AMF0 for onMetaData, decoded by src/rtmp/amf0.c.
 *
 * Ownership: every queue slot, the GOP cache slots and the metadata/sequence-header slots each
 * hold one reference to a shared, immutable es_tag_t. Queues are power-of-two rings of pointers
 * that double when full and never shrink, so a subscriber in steady state costs one pointer
 * store and one increment per tag. Subscribers are a doubly-linked list; unsubscribing inside a
 * wake callback only marks the subscriber dead (its queue is released at once) and the memory is
 * reclaimed when the outermost publish/tick returns, so the iteration never follows a freed
 * pointer. */
#include "estuary/frame_hub.h"

#include "estuary/amf0.h"
#include "estuary/flv.h"
#include "estuary/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIO_ONLY_CACHE_MS 1000 /* audio-only streams: a new player gets about this much */
#define RATE_BUCKETS 4           /* 1-second buckets: the bitrate covers the last 3 s + now */
#define RING_MIN 16

/* ---- tags ---------------------------------------------------------------------------------- */

/* Sets keyframe/config/metadata from the body with the FLV parsers (src/rtmp/flv.c); a body
 * they refuse is simply unclassified. */
static void tag_classify(es_tag_t *t)
{
    if (t->type == ES_TAG_VIDEO) {
        es_flv_video_t v;
        if (es_flv_video_parse(t->data, t->len, &v) != 0 || v.frame == ES_FLV_FRAME_OTHER) return;
        /* MPEG2TSSequenceStart (5) carries AV1's configuration too. */
        t->config = v.packet == ES_FLV_PACKET_SEQUENCE_HEADER || (v.enhanced && v.packet_type == 5);
        t->keyframe = v.packet == ES_FLV_PACKET_CODED_FRAME && v.frame == ES_FLV_FRAME_KEY;
    } else if (t->type == ES_TAG_AUDIO) {
        es_flv_audio_t a;
        t->config = es_flv_audio_parse(t->data, t->len, &a) == 0 && a.config;
    } else if (t->type == ES_TAG_DATA) {
        t->metadata = es_flv_is_metadata(t->data, t->len);
    }
}

es_tag_t *es_tag_new2(uint8_t type, uint32_t timestamp_ms, const uint8_t *head, size_t head_len,
                      const uint8_t *body, size_t body_len)
{
    if ((head_len && !head) || (body_len && !body)) return NULL;
    if (body_len > SIZE_MAX - sizeof(es_tag_t) - head_len) return NULL;
    size_t len = head_len + body_len;
    es_tag_t *t = malloc(sizeof *t + len);
    if (!t) return NULL;
    t->refs = 1;
    t->type = type;
    t->keyframe = t->config = t->metadata = false;
    t->timestamp_ms = timestamp_ms;
    t->len = len;
    if (head_len) memcpy(t->data, head, head_len);
    if (body_len) memcpy(t->data + head_len, body, body_len);
    tag_classify(t);
    return t;
}

es_tag_t *es_tag_new(uint8_t type, uint32_t timestamp_ms, const uint8_t *data, size_t len)
{
    return es_tag_new2(type, timestamp_ms, NULL, 0, data, len);
}

es_tag_t *es_tag_ref(es_tag_t *tag)
{
    if (tag) tag->refs++;
    return tag;
}

void es_tag_unref(es_tag_t *tag)
{
    if (tag && --tag->refs == 0) free(tag);
}

static bool tag_is_header(const es_tag_t *t) { return t->config || t->metadata; }

/* Replaces *slot's reference with a new one to t (t may be NULL). */
static void tag_set(es_tag_t **slot, es_tag_t *t)
{
    es_tag_unref(*slot);
    *slot = es_tag_ref(t);
}

/* ---- rings of tag references ---------------------------------------------------------------- */

typedef struct ring {
    es_tag_t **v;
    size_t cap; /* 0 or a power of two */
    size_t head, n;
} ring_t;

static es_tag_t **ring_slot(const ring_t *r, size_t i)
{
    return &r->v[(r->head + i) & (r->cap - 1)];
}

/* Appends t, which the ring takes (the caller passes a reference). Returns false on ENOMEM. */
static bool ring_push(ring_t *r, es_tag_t *t)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : RING_MIN;
        if (cap < r->cap || cap > SIZE_MAX / sizeof *r->v) return false;
        es_tag_t **v = malloc(cap * sizeof *v);
        if (!v) return false;
        for (size_t i = 0; i < r->n; i++) v[i] = *ring_slot(r, i);
        free(r->v);
        r->v = v;
        r->cap = cap;
        r->head = 0;
    }
    *ring_slot(r, r->n) = t;
    r->n++;
    return true;
}

/* Removes and returns the oldest tag (its reference goes to the caller); NULL when empty. */
static es_tag_t *ring_shift(ring_t *r)
{
    if (!r->n) return NULL;
    es_tag_t *t = *ring_slot(r, 0);
    r->head = (r->head + 1) & (r->cap - 1);
    r->n--;
    return t;
}

/* Drops every reference; keeps the storage for reuse. */
static void ring_clear(ring_t *r)
{
    for (size_t i = 0; i < r->n; i++) es_tag_unref(*ring_slot(r, i));
    r->head = r->n = 0;
}

static void ring_free(ring_t *r)
{
    ring_clear(r);
    free(r->v);
    r->v = NULL;
    r->cap = 0;
}

/* ---- hub and subscribers -------------------------------------------------------------------- */

struct es_frame_sub {
    es_frame_hub_t *hub;
    void (*wake)(void *user);
    void *user;
    ring_t q;
    size_t n_media;    /* queued tags that are neither sequence headers nor metadata */
    bool synced;       /* has had a video key frame since subscribing, an overflow or a reset */
    bool stalled;
    bool dead;         /* unsubscribed inside a callback; freed when the hub is idle */
    bool pending;      /* tags were offered since the last pop (queued, or dropped by an overflow) */
    uint64_t since_us; /* the last pop, or the first tag offered after it: stall clock start */
    es_frame_sub_stats_t st;
    es_frame_sub_t *prev, *next;
};

struct es_frame_hub {
    char key[200];
    es_log_ctx_t log;
    es_frame_hub_limits_t lim;
    es_tag_t *meta, *vconf, *aconf;
    ring_t gop;
    size_t gop_bytes;
    bool gop_open;   /* video: caching since the last key frame, under the cap */
    bool has_video;  /* the current source has sent video */
    es_frame_sub_t *subs;
    size_t n_subs, n_dead;
    int busy;        /* publish/tick iterating the subscribers (wake callbacks may re-enter) */
    uint64_t tags_in, bytes_in;
    uint64_t rate_bytes[RATE_BUCKETS], rate_sec[RATE_BUCKETS];
    uint64_t first_us, last_us;
    bool any_in;
    char vcodec[16], acodec[16];
    uint32_t meta_w, meta_h, set_w, set_h;
};

es_frame_hub_t *es_frame_hub_new(const char *key, const es_frame_hub_limits_t *limits)
{
    if (!limits) return NULL;
    es_frame_hub_t *hub = calloc(1, sizeof *hub);
    if (!hub) return NULL;
    snprintf(hub->key, sizeof hub->key, "%s", key ? key : "");
    hub->log.stream = hub->key;
    hub->lim = *limits;
    for (size_t i = 0; i < RATE_BUCKETS; i++) hub->rate_sec[i] = UINT64_MAX;
    return hub;
}

static void sub_release_queue(es_frame_sub_t *s)
{
    ring_clear(&s->q);
    s->n_media = 0;
    s->st.queued_bytes = 0;
}

static void sub_unlink_free(es_frame_hub_t *hub, es_frame_sub_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        hub->subs = s->next;
    if (s->next) s->next->prev = s->prev;
    ring_free(&s->q);
    free(s);
}

static void hub_enter(es_frame_hub_t *hub) { hub->busy++; }

/* Ends an iteration; the outermost one frees subscribers unsubscribed meanwhile. */
static void hub_leave(es_frame_hub_t *hub)
{
    if (--hub->busy > 0 || !hub->n_dead) return;
    es_frame_sub_t *s = hub->subs;
    while (s) {
        es_frame_sub_t *next = s->next;
        if (s->dead) sub_unlink_free(hub, s);
        s = next;
    }
    hub->n_dead = 0;
}

static void gop_clear(es_frame_hub_t *hub)
{
    ring_clear(&hub->gop);
    hub->gop_bytes = 0;
}

void es_frame_hub_free(es_frame_hub_t *hub)
{
    if (!hub) return;
    while (hub->subs) sub_unlink_free(hub, hub->subs);
    ring_free(&hub->gop);
    es_tag_unref(hub->meta);
    es_tag_unref(hub->vconf);
    es_tag_unref(hub->aconf);
    free(hub);
}

void es_frame_hub_set_limits(es_frame_hub_t *hub, const es_frame_hub_limits_t *limits)
{
    if (hub && limits) hub->lim = *limits;
}

/* ---- what the source sends: codecs, metadata, bitrate --------------------------------------- */

static void fourcc_name(char *out, size_t cap, const uint8_t *f)
{
    static const struct { char fourcc[5]; const char *name; } known[] = {
        {"avc1", "H264"}, {"hvc1", "HEVC"}, {"av01", "AV1"},  {"vp09", "VP9"},  {"vp08", "VP8"},
        {"Opus", "Opus"}, {"fLaC", "FLAC"}, {"ac-3", "AC3"},  {"ec-3", "EAC3"}, {".mp3", "MP3"},
        {"mp4a", "AAC"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (memcmp(f, known[i].fourcc, 4) == 0) {
            snprintf(out, cap, "%s", known[i].name);
            return;
        }
    char s[5];
    for (int i = 0; i < 4; i++) s[i] = f[i] >= 0x20 && f[i] < 0x7f ? (char)f[i] : '?';
    s[4] = 0;
    snprintf(out, cap, "%s", s);
}

static void note_codec(es_frame_hub_t *hub, const es_tag_t *t)
{
    const uint8_t *d = t->data;
    if (t->len < 1) return;
    if (t->type == ES_TAG_VIDEO) {
        if (d[0] & 0x80) {
            unsigned pt = d[0] & 0x0F;
            /* Multitrack (6) and ModEx (7) put other fields before the FourCC. */
            if (t->len >= 5 && pt != 6 && pt != 7)
                fourcc_name(hub->vcodec, sizeof hub->vcodec, d + 1);
            return;
        }
        static const char *const names[16] = {[2] = "H263", [3] = "ScreenVideo", [4] = "VP6",
                                              [5] = "VP6A", [6] = "ScreenVideo2", [7] = "H264",
                                              [12] = "HEVC"};
        const char *name = names[d[0] & 0x0F];
        if (name) snprintf(hub->vcodec, sizeof hub->vcodec, "%s", name);
    } else if (t->type == ES_TAG_AUDIO) {
        unsigned fmt = d[0] >> 4;
        if (fmt == 9) {
            unsigned pt = d[0] & 0x0F;
            if (t->len >= 5 && pt != 5 && pt != 7)
                fourcc_name(hub->acodec, sizeof hub->acodec, d + 1);
            return;
        }
        static const char *const names[16] = {[0] = "PCM",  [1] = "ADPCM",     [2] = "MP3",
                                              [3] = "PCM",  [4] = "Nellymoser", [5] = "Nellymoser",
                                              [6] = "Nellymoser", [7] = "G711A", [8] = "G711U",
                                              [10] = "AAC", [11] = "Speex",     [14] = "MP3",
                                              [15] = "DeviceSpecific"};
        const char *name = names[fmt];
        if (name) snprintf(hub->acodec, sizeof hub->acodec, "%s", name);
    }
}

/* Width and height from onMetaData's properties (its second AMF0 value, an ECMA array or an
 * object), decoded with the AMF0 core. Metadata is rare: the document is allocated per call. */
static void meta_parse(es_frame_hub_t *hub, const uint8_t *d, size_t n)
{
    es_amf0_doc_t *doc = malloc(sizeof *doc);
    if (!doc) return;
    es_amf0_decode(doc, d, n); /* what decoded before an error is still usable */
    const es_amf0_node_t *props = es_amf0_at(doc, 1);
    const es_amf0_node_t *w = es_amf0_get(doc, props, "width");
    const es_amf0_node_t *h = es_amf0_get(doc, props, "height");
    if (w && w->type == ES_AMF0_NUMBER && w->number > 0 && w->number < 65536)
        hub->meta_w = (uint32_t)w->number;
    if (h && h->type == ES_AMF0_NUMBER && h->number > 0 && h->number < 65536)
        hub->meta_h = (uint32_t)h->number;
    free(doc);
}

static void rate_add(es_frame_hub_t *hub, size_t len, uint64_t now_us)
{
    uint64_t sec = now_us / 1000000;
    size_t i = (size_t)(sec % RATE_BUCKETS);
    if (hub->rate_sec[i] != sec) {
        hub->rate_sec[i] = sec;
        hub->rate_bytes[i] = 0;
    }
    hub->rate_bytes[i] += len;
    if (!hub->any_in) hub->first_us = now_us;
    hub->any_in = true;
    hub->last_us = now_us;
}

/* Bits per second over [start of the second 3 s before the last tag's, last tag], at least 1 s. */
static uint64_t rate_bps(const es_frame_hub_t *hub)
{
    if (!hub->any_in) return 0;
    uint64_t last = hub->last_us / 1000000;
    uint64_t from = last >= RATE_BUCKETS - 1 ? last - (RATE_BUCKETS - 1) : 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < RATE_BUCKETS; i++)
        if (hub->rate_sec[i] != UINT64_MAX && hub->rate_sec[i] >= from && hub->rate_sec[i] <= last)
            bytes += hub->rate_bytes[i];
    uint64_t start = from * 1000000;
    if (hub->first_us > start) start = hub->first_us;
    uint64_t dur = hub->last_us - start;
    if (dur < 1000000) dur = 1000000;
    return bytes * 8 * 1000000 / dur;
}

/* ---- GOP cache ------------------------------------------------------------------------------ */

static void gop_push(es_frame_hub_t *hub, es_tag_t *t)
{
    if (!ring_push(&hub->gop, es_tag_ref(t))) {
        es_tag_unref(t); /* out of memory: an incomplete GOP is useless */
        gop_clear(hub);
        hub->gop_open = false;
        return;
    }
    hub->gop_bytes += t->len;
}

/* A media (non-header) tag from the source. */
static void gop_update(es_frame_hub_t *hub, es_tag_t *t)
{
    size_t cap = hub->lim.gop_max_bytes;
    if (cap == 0) { /* cache off */
        gop_clear(hub);
        hub->gop_open = false;
        return;
    }
    if (t->type == ES_TAG_VIDEO && t->keyframe) {
        gop_clear(hub);
        hub->gop_open = t->len <= cap;
        if (hub->gop_open) gop_push(hub, t);
        return;
    }
    if (!hub->has_video) { /* audio only: a sliding second of audio */
        if (t->type != ES_TAG_AUDIO) return;
        gop_push(hub, t);
        while (hub->gop.n > 1) {
            es_tag_t *old = *ring_slot(&hub->gop, 0);
            if (hub->gop_bytes <= cap &&
                (int32_t)(t->timestamp_ms - old->timestamp_ms) <= AUDIO_ONLY_CACHE_MS)
                break;
            hub->gop_bytes -= old->len;
            es_tag_unref(ring_shift(&hub->gop));
        }
        if (hub->gop_bytes > cap) gop_clear(hub); /* one tag larger than the cap */
        return;
    }
    if (!hub->gop_open) return;
    if (hub->gop_bytes + t->len > cap) {
        /* A partial GOP would start new players with frames whose references are missing; wait
         * for the next key frame instead. */
        gop_clear(hub);
        hub->gop_open = false;
        return;
    }
    gop_push(hub, t);
}

/* ---- subscriber queues ---------------------------------------------------------------------- */

/* Queues a new reference to t. Returns false on ENOMEM (the tag is then not queued). */
static bool sub_push(es_frame_sub_t *s, es_tag_t *t)
{
    if (!ring_push(&s->q, es_tag_ref(t))) {
        es_tag_unref(t);
        return false;
    }
    s->st.queued_bytes += t->len;
    if (!tag_is_header(t)) s->n_media++;
    return true;
}

/* Timestamp of the oldest queued media tag; only headers (few) can precede it. */
static uint32_t sub_oldest_media_ts(const es_frame_sub_t *s)
{
    for (size_t i = 0; i < s->q.n; i++) {
        const es_tag_t *t = *ring_slot(&s->q, i);
        if (!tag_is_header(t)) return t->timestamp_ms;
    }
    return 0;
}

static bool sub_would_overflow(const es_frame_hub_t *hub, const es_frame_sub_t *s,
                               const es_tag_t *t)
{
    if (!s->q.n) return false; /* a lone tag is always accepted, however large */
    if (hub->lim.queue_bytes && s->st.queued_bytes + t->len > hub->lim.queue_bytes) return true;
    if (hub->lim.queue_ms && s->n_media && !tag_is_header(t)) {
        int32_t span = (int32_t)(t->timestamp_ms - sub_oldest_media_ts(s));
        if ((int64_t)span > (int64_t)hub->lim.queue_ms) return true;
    }
    return false;
}

/* Drops every queued media tag, and headers superseded by a later one of the same kind; the
 * subscriber then waits for a key frame. */
static void sub_overflow(es_frame_hub_t *hub, es_frame_sub_t *s)
{
    size_t last_meta = SIZE_MAX, last_v = SIZE_MAX, last_a = SIZE_MAX;
    for (size_t i = 0; i < s->q.n; i++) {
        const es_tag_t *t = *ring_slot(&s->q, i);
        if (t->metadata)
            last_meta = i;
        else if (t->config && t->type == ES_TAG_VIDEO)
            last_v = i;
        else if (t->config)
            last_a = i;
    }
    size_t w = 0, dropped = 0;
    for (size_t i = 0; i < s->q.n; i++) {
        es_tag_t *t = *ring_slot(&s->q, i);
        if (i == last_meta || i == last_v || i == last_a) {
            *ring_slot(&s->q, w++) = t; /* w <= i: compaction in place */
        } else {
            s->st.queued_bytes -= t->len;
            es_tag_unref(t);
            dropped++;
        }
    }
    s->q.n = w;
    s->n_media = 0;
    s->synced = false;
    s->st.overflows++;
    s->st.dropped_tags += dropped;
    ES_DEBUG("frame_hub", &hub->log,
             "subscriber queue overflow #%u: %zu tags dropped, waiting for a key frame",
             s->st.overflows, dropped);
}

/* Whether a media tag reaches subscriber s now (key-frame wait). */
static bool sub_accepts(const es_frame_hub_t *hub, const es_frame_sub_t *s, const es_tag_t *t)
{
    if (t->type == ES_TAG_VIDEO && t->keyframe) return true;
    if (s->synced || !hub->has_video) return true;
    return t->type != ES_TAG_VIDEO && t->type != ES_TAG_AUDIO; /* other data tags pass */
}

/* Offers a published tag to one subscriber; may call its wake callback. */
static void sub_offer(es_frame_hub_t *hub, es_frame_sub_t *s, es_tag_t *t, uint64_t now_us)
{
    bool media = !tag_is_header(t);
    if (media && !sub_accepts(hub, s, t)) {
        s->st.skipped_tags++;
        return;
    }
    bool was_empty = s->q.n == 0;
    if (sub_would_overflow(hub, s, t)) {
        sub_overflow(hub, s);
        if (media && !sub_accepts(hub, s, t)) {
            s->st.skipped_tags++;
            return;
        }
    }
    if (!sub_push(s, t)) {
        s->st.skipped_tags++;
        if (media) s->synced = false; /* a lost frame breaks the references after it */
        return;
    }
    if (media && t->type == ES_TAG_VIDEO && t->keyframe) s->synced = true;
    /* The stall clock runs from the first tag offered after the last pop and is not restarted
     * by an overflow emptying the queue: a player that takes nothing is stalled however often
     * its queue was dropped meanwhile. */
    if (!s->pending) {
        s->pending = true;
        s->since_us = now_us;
    }
    if (was_empty && s->wake) s->wake(s->user);
}

void es_frame_hub_publish(es_frame_hub_t *hub, es_tag_t *t, uint64_t now_us)
{
    if (!hub || !t) return;
    hub->tags_in++;
    hub->bytes_in += t->len;
    rate_add(hub, t->len, now_us);
    note_codec(hub, t);

    if (t->type == ES_TAG_VIDEO && !hub->has_video) {
        /* The source shows video: the audio-only cache is no GOP; wait for a key frame. */
        hub->has_video = true;
        gop_clear(hub);
        hub->gop_open = false;
    }
    if (t->metadata) {
        tag_set(&hub->meta, t);
        hub->meta_w = hub->meta_h = 0;
        meta_parse(hub, t->data, t->len);
    } else if (t->config && t->type == ES_TAG_VIDEO) {
        bool changed = hub->vconf && (hub->vconf->len != t->len ||
                                      memcmp(hub->vconf->data, t->data, t->len) != 0);
        if (changed) { /* frames cached so far belong to the old configuration */
            gop_clear(hub);
            hub->gop_open = false;
        }
        tag_set(&hub->vconf, t);
    } else if (t->config) {
        tag_set(&hub->aconf, t);
    } else {
        gop_update(hub, t);
    }

    hub_enter(hub);
    for (es_frame_sub_t *s = hub->subs; s; s = s->next)
        if (!s->dead) sub_offer(hub, s, t, now_us);
    hub_leave(hub);
}

void es_frame_hub_reset(es_frame_hub_t *hub)
{
    if (!hub) return;
    tag_set(&hub->meta, NULL);
    tag_set(&hub->vconf, NULL);
    tag_set(&hub->aconf, NULL);
    gop_clear(hub);
    hub->gop_open = false;
    hub->has_video = false;
    hub->meta_w = hub->meta_h = hub->set_w = hub->set_h = 0;
    hub->vcodec[0] = hub->acodec[0] = 0;
    hub->any_in = false; /* no stale bitrate for a stream without a source */
    for (size_t i = 0; i < RATE_BUCKETS; i++) hub->rate_sec[i] = UINT64_MAX;
    for (es_frame_sub_t *s = hub->subs; s; s = s->next) s->synced = false;
}

void es_frame_hub_tick(es_frame_hub_t *hub, uint64_t now_us)
{
    if (!hub || !hub->lim.stall_ms) return;
    uint64_t stall_us = (uint64_t)hub->lim.stall_ms * 1000;
    hub_enter(hub);
    for (es_frame_sub_t *s = hub->subs; s; s = s->next) {
        if (s->dead || s->stalled || !s->pending) continue;
        if (now_us < s->since_us || now_us - s->since_us < stall_us) continue;
        s->stalled = true;
        ES_DEBUG("frame_hub", &hub->log,
                 "subscriber stalled: %zu tags (%zu bytes) untaken for %u ms", s->q.n,
                 s->st.queued_bytes, hub->lim.stall_ms);
        if (s->wake) s->wake(s->user);
    }
    hub_leave(hub);
}

es_frame_sub_t *es_frame_hub_subscribe(es_frame_hub_t *hub, void (*wake)(void *user), void *user,
                                       uint64_t now_us)
{
    if (!hub) return NULL;
    es_frame_sub_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->hub = hub;
    s->wake = wake;
    s->user = user;
    s->since_us = now_us;
    es_tag_t *head[3] = {hub->meta, hub->vconf, hub->aconf};
    bool ok = true;
    for (size_t i = 0; i < 3 && ok; i++)
        if (head[i]) ok = sub_push(s, head[i]);
    for (size_t i = 0; i < hub->gop.n && ok; i++) ok = sub_push(s, *ring_slot(&hub->gop, i));
    s->pending = s->q.n > 0;
    if (!ok) {
        ring_free(&s->q);
        free(s);
        return NULL;
    }
    /* With video, the cache starts with a key frame or is empty (then wait for the next one). */
    s->synced = hub->has_video && hub->gop.n > 0;
    s->next = hub->subs;
    if (hub->subs) hub->subs->prev = s;
    hub->subs = s;
    hub->n_subs++;
    return s;
}

void es_frame_hub_unsubscribe(es_frame_hub_t *hub, es_frame_sub_t *sub)
{
    if (!hub || !sub || sub->dead || sub->hub != hub) return;
    sub_release_queue(sub);
    sub->wake = NULL;
    hub->n_subs--;
    if (hub->busy) {
        sub->dead = true;
        hub->n_dead++;
    } else {
        sub_unlink_free(hub, sub);
    }
}

es_tag_t *es_frame_sub_pop(es_frame_sub_t *sub, uint64_t now_us)
{
    if (!sub) return NULL;
    es_tag_t *t = ring_shift(&sub->q);
    if (!t) return NULL;
    sub->st.queued_bytes -= t->len;
    if (!tag_is_header(t)) sub->n_media--;
    sub->st.tags++;
    sub->st.bytes += t->len;
    sub->since_us = now_us;
    sub->pending = sub->q.n > 0;
    return t;
}

bool es_frame_sub_stalled(const es_frame_sub_t *sub) { return sub && sub->stalled; }

es_frame_sub_stats_t es_frame_sub_stats(const es_frame_sub_t *sub)
{
    es_frame_sub_stats_t st = {0};
    if (!sub) return st;
    st = sub->st;
    st.queued_tags = sub->q.n;
    return st;
}

size_t es_frame_hub_sub_count(const es_frame_hub_t *hub) { return hub ? hub->n_subs : 0; }

void es_frame_hub_set_video_size(es_frame_hub_t *hub, uint32_t width, uint32_t height)
{
    if (!hub) return;
    hub->set_w = width;
    hub->set_h = height;
}

json_t *es_frame_hub_json(const es_frame_hub_t *hub)
{
    if (!hub) return NULL;
    json_t *o = json_object();
    if (!o) return NULL;
    if (hub->vcodec[0]) json_object_set_new(o, "video_codec", json_string(hub->vcodec));
    if (hub->acodec[0]) json_object_set_new(o, "audio_codec", json_string(hub->acodec));
    uint32_t w = hub->set_w, h = hub->set_h;
    if (!w || !h) {
        w = hub->meta_w;
        h = hub->meta_h;
    }
    if (w && h) {
        json_object_set_new(o, "width", json_integer(w));
        json_object_set_new(o, "height", json_integer(h));
    }
    size_t queued = 0;
    uint64_t overflows = 0;
    for (const es_frame_sub_t *s = hub->subs; s; s = s->next) {
        if (s->dead) continue;
        queued += s->st.queued_bytes;
        overflows += s->st.overflows;
    }
    json_object_set_new(o, "bitrate_bps", json_integer((json_int_t)rate_bps(hub)));
    json_object_set_new(o, "tags_in", json_integer((json_int_t)hub->tags_in));
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)hub->bytes_in));
    json_object_set_new(o, "subscribers", json_integer((json_int_t)hub->n_subs));
    json_object_set_new(o, "queued_bytes", json_integer((json_int_t)queued));
    json_object_set_new(o, "overflows", json_integer((json_int_t)overflows));
    json_object_set_new(o, "gop_tags", json_integer((json_int_t)hub->gop.n));
    json_object_set_new(o, "gop_bytes", json_integer((json_int_t)hub->gop_bytes));
    return o;
}
