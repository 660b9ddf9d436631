/* RTMP to WebRTC for one stream (include/estuary/rtmp_bridge.h): FLV tags to RTP packets that
 * enter the stream's WebRTC fan-out as if a WHIP publisher had sent them.
 *
 * Timing: FLV timestamps are milliseconds on the publisher's clock, shared by audio and video.
 * Video RTP timestamps are (dts + cts) * 90, Opus ones come from the transcoder's mapping of the
 * same milliseconds to 48 kHz, and the sender reports we feed the fan-out pair one NTP time
 * with both tracks' RTP timestamps for the same millisecond, which is what players align
 * audio and video by (RFC 3550 §6.4.1). */
#include "estuary/rtmp_bridge.h"

#include "estuary/bytes.h"
#include "estuary/clock.h"
#include "estuary/error.h"
#include "estuary/flv.h"
#include "estuary/h264.h"
#include "estuary/log.h"
#include "estuary/registry.h"
#include "estuary/random.h"
#include "estuary/rtcp.h"
#include "estuary/transcode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIDEO_PT 102
#define AUDIO_PT 111
#define RTP_HEADER 12
#define MAX_PAYLOAD 1188     /* RTP payload bytes: 1200-byte packets leave room for SRTP */
#define SR_INTERVAL_US 1000000
#define AUDIO_WAIT_MS 1000   /* a stream whose audio config has not come this long after its
                                first video frame is announced without audio */

typedef struct out_track {
    bool on;
    uint32_t ssrc;
    uint16_t seq;
    uint64_t packets, bytes;
} out_track_t;

struct es_rtmp_bridge {
    es_media_stream_t *ms;
    char key[ES_APP_NAME_MAX + ES_STREAM_NAME_MAX + 2];
    uint32_t opus_bitrate;
    /* what the publisher sends */
    bool have_avc;
    es_h264_config_t avc;
    char plid[7];
    uint32_t width, height;
    bool have_aac;
    uint8_t asc[64];
    size_t asc_len;
    es_aac_config_t aac;
    /* what WebRTC players get */
    bool source_set;
    bool first_frame_seen;
    uint32_t first_frame_ms;
    out_track_t video, audio;
    es_aac_opus_t *opus;      /* only while the stream has WebRTC players */
    bool opus_failed;
    /* the clock: last tag time and when it arrived */
    bool have_clock;
    uint32_t last_ms;
    uint64_t last_us;
    uint64_t next_sr_us;
    /* once-only warnings */
    bool warned_bframes, warned_vcodec, warned_acodec, warned_late;
    uint64_t frames_video, frames_audio, bframes, bad_frames, opus_frames;
    uint8_t pkt[RTP_HEADER + ES_H264_PAYLOAD_MAX];
    uint32_t cur_ts;          /* RTP timestamp of the access unit being packetized */
    uint64_t cur_now;
};

static es_log_ctx_t blog(const es_rtmp_bridge_t *b) { return (es_log_ctx_t){.stream = b->key}; }

/* The publisher is an RTMP encoder: feedback meant for it (RR, NACK, PLI) has nowhere to go. */
static int to_publisher(void *user, uint8_t *buf, size_t len, size_t cap) { return 0; }

es_rtmp_bridge_t *es_rtmp_bridge_new(es_media_stream_t *ms, const char *key, uint32_t opus_bitrate)
{
    es_rtmp_bridge_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->ms = ms;
    snprintf(b->key, sizeof b->key, "%s", key);
    b->opus_bitrate = opus_bitrate;
    b->video.ssrc = es_random32();
    b->audio.ssrc = es_random32();
    b->video.seq = (uint16_t)es_random32();
    b->audio.seq = (uint16_t)es_random32();
    return b;
}

void es_rtmp_bridge_free(es_rtmp_bridge_t *b, uint64_t now_us)
{
    if (!b) return;
    if (b->source_set) es_media_stream_remove_source(b->ms, now_us);
    es_aac_opus_free(b->opus);
    free(b);
}

/* --- the media stream's source --- */

static void set_source(es_rtmp_bridge_t *b, uint64_t now)
{
    es_track_info_t tr[2];
    size_t n = 0;
    memset(tr, 0, sizeof tr);
    if (b->have_aac) {
        es_track_info_t *t = &tr[n++];
        t->kind = ES_MEDIA_AUDIO;
        t->rtx_pt = -1;
        t->codec = (es_sdp_codec_t){.pt = AUDIO_PT, .codec = ES_CODEC_OPUS, .clock_rate = 48000,
                                    .channels = 2, .apt = -1};
        snprintf(t->codec.name, sizeof t->codec.name, "opus");
        snprintf(t->codec.fmtp, sizeof t->codec.fmtp, "minptime=10;useinbandfec=1");
        snprintf(t->mid, sizeof t->mid, "0");
        t->ssrc = b->audio.ssrc;
        b->audio.on = true;
    }
    if (b->have_avc) {
        es_track_info_t *t = &tr[n++];
        t->kind = ES_MEDIA_VIDEO;
        t->rtx_pt = -1;
        t->codec = (es_sdp_codec_t){.pt = VIDEO_PT, .codec = ES_CODEC_H264, .clock_rate = 90000,
                                    .apt = -1, .h264_packetization_mode = 1,
                                    .h264_profile_level_id = (uint32_t)strtoul(b->plid, NULL, 16),
                                    .h264_level_asymmetry = true};
        snprintf(t->codec.name, sizeof t->codec.name, "H264");
        snprintf(t->codec.fmtp, sizeof t->codec.fmtp,
                 "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=%s", b->plid);
        snprintf(t->mid, sizeof t->mid, "1");
        t->ssrc = b->video.ssrc;
        b->video.on = true;
    }
    es_log_ctx_t lc = blog(b);
    if (!n) return;
    es_media_io_t io = {.send_rtp = to_publisher, .send_rtcp = to_publisher, .user = b};
    int rc = es_media_stream_set_source(b->ms, tr, n, io, now);
    if (rc != 0) {
        ES_WARN("bridge", &lc, "cannot offer the stream to WebRTC players: %s", es_strerror(rc));
        b->audio.on = b->video.on = false;
        return;
    }
    b->source_set = true;
    char v[96] = "no video", a[64] = "no audio";
    if (b->video.on && b->width)
        snprintf(v, sizeof v, "H.264 %ux%u profile-level-id %s", b->width, b->height, b->plid);
    else if (b->video.on)
        snprintf(v, sizeof v, "H.264 profile-level-id %s", b->plid);
    if (b->audio.on)
        snprintf(a, sizeof a, "AAC %u Hz %u ch -> Opus 48000 Hz", b->aac.sample_rate,
                 b->aac.channels);
    ES_INFO("bridge", &lc, "RTMP -> WebRTC: %s, %s", v, a);
}

static void send_rtp(es_rtmp_bridge_t *b, out_track_t *t, uint8_t pt, uint32_t ts,
                     const uint8_t *payload, size_t len, bool marker, uint64_t now)
{
    if (len > ES_H264_PAYLOAD_MAX) return;
    uint8_t *p = b->pkt;
    p[0] = 0x80;
    p[1] = (uint8_t)((marker ? 0x80 : 0) | pt);
    es_wr16(p + 2, t->seq++);
    es_wr32(p + 4, ts);
    es_wr32(p + 8, t->ssrc);
    memcpy(p + RTP_HEADER, payload, len);
    t->packets++;
    t->bytes += len;
    es_media_stream_source_rtp(b->ms, now, p, RTP_HEADER + len);
}

/* --- video --- */

static void emit_video(void *user, const uint8_t *payload, size_t len, bool marker)
{
    es_rtmp_bridge_t *b = user;
    send_rtp(b, &b->video, VIDEO_PT, b->cur_ts, payload, len, marker, b->cur_now);
}

static void video_config(es_rtmp_bridge_t *b, const es_flv_video_t *v)
{
    es_log_ctx_t lc = blog(b);
    es_h264_config_t cfg;
    if (es_h264_config_parse(v->payload, v->payload_len, &cfg) != 0) {
        ES_WARN("bridge", &lc, "bad AVC sequence header (%zu bytes): video not sent to WebRTC "
                "players until a good one arrives", v->payload_len);
        return;
    }
    char plid[7];
    if (es_h264_profile_level_id(cfg.sps, cfg.sps_len, plid) != 0) return;
    es_h264_sps_t sps;
    if (es_h264_sps_parse(cfg.sps, cfg.sps_len, &sps) == 0) {
        b->width = sps.width;
        b->height = sps.height;
    }
    if (b->source_set && b->have_avc && strcmp(plid, b->plid) != 0)
        ES_WARN("bridge", &lc, "H.264 profile changed mid-stream (%s -> %s): WebRTC players "
                "negotiated %s and may fail to decode", b->plid, plid, b->plid);
    b->avc = cfg;
    if (!b->source_set) memcpy(b->plid, plid, sizeof plid);
    b->have_avc = true;
}

static void video_tag(es_rtmp_bridge_t *b, const es_tag_t *tag, uint64_t now)
{
    es_flv_video_t v;
    es_log_ctx_t lc = blog(b);
    if (es_flv_video_parse(tag->data, tag->len, &v) != 0) {
        b->bad_frames++;
        return;
    }
    if (v.codec != ES_FLV_VIDEO_AVC) {
        if (!b->warned_vcodec && v.frame != ES_FLV_FRAME_OTHER) {
            b->warned_vcodec = true;
            ES_WARN("bridge", &lc, "video codec %s cannot go to WebRTC players (H.264 only); "
                    "RTMP and HTTP-FLV players still get it", v.codec == ES_FLV_VIDEO_HEVC ? "HEVC"
                    : v.codec == ES_FLV_VIDEO_AV1 ? "AV1" : v.codec == ES_FLV_VIDEO_VP9 ? "VP9"
                    : "unknown");
        }
        return;
    }
    if (v.packet == ES_FLV_PACKET_SEQUENCE_HEADER) {
        video_config(b, &v);
        return;
    }
    if (v.packet != ES_FLV_PACKET_CODED_FRAME || !b->have_avc) return;
    b->frames_video++;
    if (v.cts_ms != 0) {
        b->bframes++;
        if (!b->warned_bframes) {
            b->warned_bframes = true;
            ES_WARN("bridge", &lc, "the H.264 stream has B-frames (composition time %d ms): "
                    "browsers' WebRTC decoders play them out of order; configure the encoder "
                    "without B-frames (x264 bframes=0, OBS: profile baseline or keyframe-only "
                    "tuning 'zerolatency')", (int)v.cts_ms);
        }
    }
    if (!b->first_frame_seen) {
        b->first_frame_seen = true;
        b->first_frame_ms = tag->timestamp_ms;
    }
    if (!b->source_set) {
        /* Encoders send both sequence headers before the first frame; wait a little for the
         * audio one anyway, so that the stream is not announced without its audio. */
        if (!b->have_aac && tag->timestamp_ms - b->first_frame_ms < AUDIO_WAIT_MS) return;
        set_source(b, now);
    }
    if (!b->video.on) return;
    b->cur_ts = (uint32_t)((tag->timestamp_ms + (uint32_t)v.cts_ms) * 90u);
    b->cur_now = now;
    bool key = v.frame == ES_FLV_FRAME_KEY;
    if (es_h264_packetize(v.payload, v.payload_len, b->avc.length_size, key, &b->avc, MAX_PAYLOAD,
                          emit_video, b) < 0)
        b->bad_frames++;
}

/* --- audio --- */

static void emit_opus(void *user, const uint8_t *opus, size_t len, uint32_t rtp_ts)
{
    es_rtmp_bridge_t *b = user;
    b->opus_frames++;
    send_rtp(b, &b->audio, AUDIO_PT, rtp_ts, opus, len, false, b->cur_now);
}

static void audio_tag(es_rtmp_bridge_t *b, const es_tag_t *tag, uint64_t now)
{
    es_flv_audio_t a;
    es_log_ctx_t lc = blog(b);
    if (es_flv_audio_parse(tag->data, tag->len, &a) != 0) {
        b->bad_frames++;
        return;
    }
    if (a.codec != ES_FLV_AUDIO_AAC) {
        if (!b->warned_acodec) {
            b->warned_acodec = true;
            ES_WARN("bridge", &lc, "audio codec %s cannot go to WebRTC players (AAC only, "
                    "transcoded to Opus); RTMP and HTTP-FLV players still get it",
                    a.codec == ES_FLV_AUDIO_MP3 ? "MP3" : a.codec == ES_FLV_AUDIO_OPUS ? "Opus"
                    : "unknown");
        }
        return;
    }
    if (a.config) {
        es_aac_config_t c;
        if (a.payload_len > sizeof b->asc || es_aac_config_parse(a.payload, a.payload_len, &c) != 0) {
            ES_WARN("bridge", &lc, "bad AAC sequence header (%zu bytes): audio not sent to "
                    "WebRTC players", a.payload_len);
            return;
        }
        bool changed = !b->have_aac || a.payload_len != b->asc_len ||
                       memcmp(a.payload, b->asc, a.payload_len) != 0;
        memcpy(b->asc, a.payload, a.payload_len);
        b->asc_len = a.payload_len;
        b->aac = c;
        b->have_aac = true;
        if (changed) { /* the transcoder is rebuilt for the new config on the next frame */
            es_aac_opus_free(b->opus);
            b->opus = NULL;
            b->opus_failed = false;
        }
        return;
    }
    if (!b->have_aac) return;
    b->frames_audio++;
    if (!b->first_frame_seen) {
        b->first_frame_seen = true;
        b->first_frame_ms = tag->timestamp_ms;
    }
    if (!b->source_set) {
        /* Audio-only, or video config not seen: wait for video as long as for audio above. */
        if (!b->have_avc && tag->timestamp_ms - b->first_frame_ms < AUDIO_WAIT_MS) return;
        set_source(b, now);
    }
    if (!b->audio.on || !es_media_stream_sink_count(b->ms)) return;
    if (!b->opus && !b->opus_failed) {
        char err[200];
        b->opus = es_aac_opus_new(b->asc, b->asc_len, b->opus_bitrate, err, sizeof err);
        if (!b->opus) {
            b->opus_failed = true;
            ES_WARN("bridge", &lc, "AAC -> Opus transcoder failed to start: %s; WebRTC players "
                    "get no audio", err);
            return;
        }
        ES_INFO("bridge", &lc, "AAC -> Opus transcoder started (%u Hz, %u ch -> 48000 Hz, "
                "%u bit/s) for WebRTC players", b->aac.sample_rate, b->aac.channels,
                b->opus_bitrate);
    }
    if (!b->opus) return;
    b->cur_now = now;
    if (es_aac_opus_push(b->opus, a.payload, a.payload_len, tag->timestamp_ms, emit_opus, b) < 0)
        b->bad_frames++;
}

static void bridge_tag(es_rtmp_bridge_t *b, const es_tag_t *tag, uint64_t now_us)
{
    if (!b || !tag) return;
    if (tag->type == ES_TAG_VIDEO) video_tag(b, tag, now_us);
    else if (tag->type == ES_TAG_AUDIO) audio_tag(b, tag, now_us);
    else return;
    b->have_clock = true;
    b->last_ms = tag->timestamp_ms;
    b->last_us = now_us;
}

void es_rtmp_bridge_tag(es_rtmp_bridge_t *b, const es_tag_t *tag, uint64_t now_us)
{
    es_media_batch_begin(); /* a frame's packets go out player by player, as GSO trains */
    bridge_tag(b, tag, now_us);
    es_media_batch_end();
}

/* --- timers --- */

static uint64_t ntp_from_wall_us(uint64_t us)
{
    uint64_t sec = us / 1000000u + 2208988800u; /* 1970 -> 1900 */
    uint64_t frac = ((us % 1000000u) << 32) / 1000000u;
    return sec << 32 | frac;
}

static void send_sr(es_rtmp_bridge_t *b, const out_track_t *t, uint32_t rate, uint64_t ntp,
                    uint64_t media_ms_x1000, uint64_t now)
{
    es_rtcp_report_t r = {.ssrc = t->ssrc, .ntp = ntp,
                          .rtp_timestamp = (uint32_t)(media_ms_x1000 * rate / 1000000u),
                          .packet_count = (uint32_t)t->packets, .octet_count = (uint32_t)t->bytes};
    uint8_t buf[64];
    int n = es_rtcp_write_sr(&r, buf, sizeof buf);
    if (n > 0) es_media_stream_source_rtcp(b->ms, now, buf, (size_t)n);
}

void es_rtmp_bridge_tick(es_rtmp_bridge_t *b, uint64_t now_us)
{
    if (!b) return;
    es_media_stream_tick(b->ms, now_us);
    if (b->opus && !es_media_stream_sink_count(b->ms)) {
        es_log_ctx_t lc = blog(b);
        ES_INFO("bridge", &lc, "AAC -> Opus transcoder stopped: no WebRTC players");
        es_aac_opus_free(b->opus);
        b->opus = NULL;
    }
    if (!b->source_set || !b->have_clock || now_us < b->next_sr_us) return;
    b->next_sr_us = now_us + SR_INTERVAL_US;
    /* The media time now, in µs of the FLV clock: the last tag's time plus what elapsed since
     * it arrived; both tracks' RTP timestamps derive from this one instant. */
    uint64_t media_us = (uint64_t)b->last_ms * 1000u + (now_us - b->last_us);
    uint64_t ntp = ntp_from_wall_us(es_clock_wall_us());
    if (b->video.on) send_sr(b, &b->video, 90000, ntp, media_us, now_us);
    if (b->audio.on) send_sr(b, &b->audio, 48000, ntp, media_us, now_us);
}

json_t *es_rtmp_bridge_json(const es_rtmp_bridge_t *b)
{
    if (!b) return json_null();
    json_t *o = json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I}", "active", b->source_set,
                          "transcoding", b->opus != NULL, "video_frames",
                          (json_int_t)b->frames_video, "audio_frames", (json_int_t)b->frames_audio,
                          "opus_frames", (json_int_t)b->opus_frames, "b_frames",
                          (json_int_t)b->bframes, "bad_frames", (json_int_t)b->bad_frames);
    if (!o) return NULL;
    json_object_set_new(o, "video", b->video.on ? json_sprintf("H264 %s", b->plid) : json_null());
    json_object_set_new(o, "audio", b->audio.on ? json_string("AAC->opus") : json_null());
    if (b->width) {
        json_object_set_new(o, "width", json_integer(b->width));
        json_object_set_new(o, "height", json_integer(b->height));
    }
    return o;
}
