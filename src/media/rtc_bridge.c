/* WebRTC to RTMP/HTTP-FLV/HLS for one stream (include/estuary/rtc_bridge.h).
 *
 * FLV tag bodies made here: AVC sequence header 17 00 000000 + AVCDecoderConfigurationRecord,
 * AVC frames 17|27 01 000000 + AVCC (WebRTC has no B-frames: composition time 0), AAC sequence
 * header AF 00 + AudioSpecificConfig, AAC frames AF 01 + raw frame (Adobe FLV spec 10.1,
 * E.4.2.1 and E.4.3.1; SoundFormat 10, 44 kHz/16-bit/stereo flags as FLV requires for AAC). */
#include "estuary/rtc_bridge.h"

#include "estuary/error.h"
#include "estuary/h264.h"
#include "estuary/log.h"
#include "estuary/registry.h"
#include "estuary/rtp_clock.h"
#include "estuary/rtp_payload.h"
#include "estuary/transcode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIDEO_HEADER 5 /* FrameType/CodecID, AVCPacketType, CompositionTime */
#define AUDIO_HEADER 2 /* SoundFormat/Rate/Size/Type, AACPacketType */

struct es_rtc_bridge {
    es_media_stream_t *ms;
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    es_rtc_bridge_out_fn out;
    void *user;
    int video_src, audio_src;      /* source track indexes, -1 when absent */
    int video_clk, audio_clk;      /* es_rtp_clock track indexes */
    es_h264_depack_t *depack;
    es_opus_aac_t *aac;
    bool aac_header_sent;
    bool video_started;            /* the first access unit (with its sequence header) went out */
    bool key_seen;                 /* a key frame's first packet came: key_ts is valid */
    uint32_t key_ts;               /* its RTP timestamp */
    es_rtp_clock_t *clock;
    uint64_t now;
    uint32_t key_interval_ms;      /* periodic key-frame requests (HLS cuts at key frames); 0 */
    uint64_t next_key_us;
    uint64_t aus, tags, aac_frames, key_requests;
};

static es_log_ctx_t blog(const es_rtc_bridge_t *b) { return (es_log_ctx_t){.stream = b->key}; }

/* One tag made of an FLV tag-body header and a payload, copied once, to the output. */
static void emit(es_rtc_bridge_t *b, uint8_t type, uint32_t ms, const uint8_t *head,
                 size_t head_len, const uint8_t *body, size_t len)
{
    es_tag_t *t = es_tag_new2(type, ms, head, head_len, body, len);
    if (!t) return;
    b->tags++;
    b->out(b->user, t, b->now);
    es_tag_unref(t);
}

/* --- video --- */

static void on_au(void *user, const es_h264_au_t *au)
{
    es_rtc_bridge_t *b = user;
    uint32_t ms;
    if (es_rtp_clock_map(b->clock, b->video_clk, au->rtp_ts, b->now, &ms) != 0) return;
    if (au->params_changed) {
        static const uint8_t seq_head[VIDEO_HEADER] = {0x17, 0x00, 0, 0, 0};
        const uint8_t *sps, *pps;
        size_t sl, pl;
        uint8_t rec[2 * ES_H264_PARAM_MAX + 64];
        int n = es_h264_depack_params(b->depack, &sps, &sl, &pps, &pl) == 0
                    ? es_h264_config_write(sps, sl, pps, pl, rec, sizeof rec) : -1;
        if (n > 0) emit(b, ES_TAG_VIDEO, ms, seq_head, VIDEO_HEADER, rec, (size_t)n);
    }
    const uint8_t head[VIDEO_HEADER] = {au->key ? 0x17 : 0x27, 0x01, 0, 0, 0};
    b->aus++;
    b->video_started = true;
    emit(b, ES_TAG_VIDEO, ms, head, VIDEO_HEADER, au->data, au->len);
}

/* --- audio --- */

static void on_aac(void *user, const uint8_t *aac, size_t len, uint32_t pts_ms)
{
    es_rtc_bridge_t *b = user;
    /* With video, audio waits for the first key frame, as an RTMP encoder's stream starts with
     * both sequence headers: otherwise players and the HLS segmenter see an audio-only stream
     * first (a WebRTC publisher may send its first key frame seconds in). */
    if (b->depack && !b->video_started) return;
    if (!b->aac_header_sent) {
        static const uint8_t seq_head[AUDIO_HEADER] = {0xaf, 0x00};
        const uint8_t *asc;
        size_t al;
        if (es_opus_aac_config(b->aac, &asc, &al) != 0) return;
        emit(b, ES_TAG_AUDIO, pts_ms, seq_head, AUDIO_HEADER, asc, al);
        b->aac_header_sent = true;
    }
    static const uint8_t head[AUDIO_HEADER] = {0xaf, 0x01};
    b->aac_frames++;
    emit(b, ES_TAG_AUDIO, pts_ms, head, AUDIO_HEADER, aac, len);
}

/* --- the tap --- */

static void tap_rtp(void *user, size_t track, const es_rtp_packet_t *p, uint64_t now)
{
    es_rtc_bridge_t *b = user;
    b->now = now;
    if ((int)track == b->video_src && b->depack) {
        if (es_rtp_keyframe_start(ES_CODEC_H264, p->payload, p->payload_len)) {
            b->key_seen = true;
            b->key_ts = p->timestamp;
        }
        es_h264_depack_push(b->depack, p->sequence, p->timestamp, p->marker, p->payload,
                            p->payload_len, now);
        /* Not on the packets of a key frame that is arriving: the stream ended its PLI retries
         * at that frame's first packet, and asking again before the access unit is complete
         * would restart them (needless PLIs, and key frames, after the one that came). */
        if (es_h264_depack_key_needed(b->depack) && !(b->key_seen && p->timestamp == b->key_ts)) {
            b->key_requests++;
            es_media_stream_request_keyframe(b->ms, now); /* rate-limited inside */
        }
    } else if ((int)track == b->audio_src && b->aac && p->payload_len) {
        uint32_t ms;
        if (es_rtp_clock_map(b->clock, b->audio_clk, p->timestamp, now, &ms) == 0)
            es_opus_aac_push(b->aac, p->payload, p->payload_len, ms, on_aac, b);
    }
}

static void tap_sr(void *user, size_t track, uint64_t ntp, uint32_t rtp_ts, uint64_t now)
{
    es_rtc_bridge_t *b = user;
    if ((int)track == b->video_src) es_rtp_clock_on_sr(b->clock, b->video_clk, ntp, rtp_ts);
    else if ((int)track == b->audio_src) es_rtp_clock_on_sr(b->clock, b->audio_clk, ntp, rtp_ts);
}

/* --- lifecycle --- */

/* The source's H.264 video and Opus audio track indexes (-1 when absent); false with the
 * reason when the stream cannot go to FLV. */
static bool pick_tracks(const es_media_stream_t *ms, int *video, int *audio, char *why,
                        size_t why_len)
{
    es_track_info_t tr[ES_STREAM_MAX_TRACKS];
    size_t n = es_media_stream_source_tracks(ms, tr, ES_STREAM_MAX_TRACKS);
    const char *other_video = NULL;
    *video = *audio = -1;
    for (size_t i = 0; i < n; i++) {
        if (tr[i].kind == ES_MEDIA_VIDEO && *video < 0) {
            if (tr[i].codec.codec == ES_CODEC_H264) *video = (int)i;
            else other_video = es_codec_name(tr[i].codec.codec);
        } else if (tr[i].kind == ES_MEDIA_AUDIO && *audio < 0 &&
                   tr[i].codec.codec == ES_CODEC_OPUS) {
            *audio = (int)i;
        }
    }
    if (other_video) {
        snprintf(why, why_len, "the publisher sends %s video; RTMP, HTTP-FLV and HLS carry H.264 "
                 "only (publish H.264 for them; WebRTC players are unaffected)", other_video);
        return false;
    }
    if (*video < 0 && *audio < 0) {
        snprintf(why, why_len, "the publisher sends neither H.264 nor Opus");
        return false;
    }
    return true;
}

bool es_rtc_bridge_supported(const es_media_stream_t *ms, char *why, size_t why_len)
{
    int v, a;
    return pick_tracks(ms, &v, &a, why, why_len);
}

es_rtc_bridge_t *es_rtc_bridge_new(es_media_stream_t *ms, const char *key, uint32_t aac_bitrate,
                                   es_rtc_bridge_out_fn out, void *user, char *why,
                                   size_t why_len)
{
    int video, audio;
    if (!pick_tracks(ms, &video, &audio, why, why_len)) return NULL;
    es_rtc_bridge_t *b = calloc(1, sizeof *b);
    if (!b) goto oom;
    b->ms = ms;
    snprintf(b->key, sizeof b->key, "%s", key);
    b->out = out;
    b->user = user;
    b->video_src = video;
    b->audio_src = audio;
    b->video_clk = b->audio_clk = -1;
    if (!(b->clock = es_rtp_clock_new())) goto oom;
    if (video >= 0) {
        b->video_clk = es_rtp_clock_add_track(b->clock, 90000);
        if (!(b->depack = es_h264_depack_new(0, on_au, b))) goto oom;
    }
    if (audio >= 0) {
        b->audio_clk = es_rtp_clock_add_track(b->clock, 48000);
        char err[200];
        if (!(b->aac = es_opus_aac_new(aac_bitrate, err, sizeof err))) {
            snprintf(why, why_len, "Opus -> AAC transcoder: %s", err);
            es_rtc_bridge_free(b);
            return NULL;
        }
    }
    es_media_tap_t tap = {.on_rtp = tap_rtp, .on_sr = tap_sr, .user = b};
    es_media_stream_set_tap(ms, &tap);
    es_log_ctx_t lc = blog(b);
    ES_INFO("bridge", &lc, "WebRTC -> RTMP/HTTP-FLV/HLS: %s, %s", video >= 0 ? "H.264" : "no video",
            audio >= 0 ? "Opus -> AAC 48000 Hz stereo" : "no audio");
    return b;
oom:
    snprintf(why, why_len, "out of memory");
    es_rtc_bridge_free(b);
    return NULL;
}

void es_rtc_bridge_free(es_rtc_bridge_t *b)
{
    if (!b) return;
    if (b->ms) es_media_stream_set_tap(b->ms, NULL);
    es_h264_depack_free(b->depack);
    es_opus_aac_free(b->aac);
    es_rtp_clock_free(b->clock);
    free(b);
}

void es_rtc_bridge_set_key_interval(es_rtc_bridge_t *b, uint32_t ms)
{
    if (b) b->key_interval_ms = ms;
}

void es_rtc_bridge_tick(es_rtc_bridge_t *b, uint64_t now_us)
{
    if (!b || !b->depack) return;
    b->now = now_us;
    /* WebRTC encoders send key frames rarely; segments are cut at key frames, so ask for one
     * every segment (SRS's pli_for_rtmp does the same). */
    if (b->key_interval_ms && now_us >= b->next_key_us) {
        b->next_key_us = now_us + (uint64_t)b->key_interval_ms * 1000u;
        es_media_stream_request_keyframe(b->ms, now_us);
    }
    if (es_h264_depack_next_timeout(b->depack) <= now_us)
        es_h264_depack_handle_timeout(b->depack, now_us);
}

json_t *es_rtc_bridge_json(const es_rtc_bridge_t *b)
{
    if (!b) return json_null();
    json_t *o = json_pack("{s:s?, s:s?, s:I, s:I, s:I, s:b}",
                          "video", b->depack ? "H264" : NULL, "audio", b->aac ? "opus->AAC" : NULL,
                          "access_units", (json_int_t)b->aus, "aac_frames",
                          (json_int_t)b->aac_frames, "tags", (json_int_t)b->tags, "sr_aligned",
                          es_rtp_clock_synced(b->clock));
    if (o && b->depack) {
        es_h264_depack_stats_t s = es_h264_depack_stats(b->depack);
        json_object_set_new(o, "broken_access_units", json_integer((json_int_t)s.aus_broken));
        json_object_set_new(o, "key_requests", json_integer((json_int_t)s.key_requests));
        json_object_set_new(o, "lost_packets", json_integer((json_int_t)s.lost));
    }
    return o;
}
