/* FLV tags: video and audio tag bodies (FLV v10.1 Annex E.4.2.1 AUDIODATA, E.4.3.1 VIDEODATA,
 * HEVC as CodecID 12 the way Chinese CDNs and FFmpeg forks send it; veovera Enhanced RTMP v1
 * ExVideoTagHeader and the v2 ExAudioTagHeader), AAC AudioSpecificConfig (ISO/IEC 14496-3
 * §1.6.2.1), FLV file framing (Annex E.2 header, E.3 body, E.4.1 tag header) and the
 * onMetaData test for data tags. Every read is bounds-checked against the caller's length. */
#include "estuary/flv.h"

#include "estuary/bits.h"
#include "estuary/bytes.h"
#include "estuary/error.h"

#include <string.h>

/* Legacy CodecIDs and SoundFormats that get a name of their own. */
enum { CODEC_AVC = 7, CODEC_HEVC = 12 };
enum { SOUND_MP3 = 2, SOUND_EX_HEADER = 9, SOUND_AAC = 10, SOUND_MP3_8K = 14 };

/* Enhanced RTMP VideoPacketType / AudioPacketType values. */
enum {
    EX_SEQUENCE_START = 0,
    EX_CODED_FRAMES = 1,
    EX_SEQUENCE_END = 2,
    EX_CODED_FRAMES_X = 3,
    EX_METADATA = 4,
    EX_MPEG2TS_SEQUENCE_START = 5,
    EX_MULTITRACK = 6,
    EX_AUDIO_MULTITRACK = 5,
    EX_MODEX = 7,
};

enum { FRAME_COMMAND = 5 };

static int32_t rd_si24(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    /* Sign-extend from 24 bits without shifting into the sign bit. */
    return (v & 0x800000u) ? (int32_t)v - 0x1000000 : (int32_t)v;
}

static uint32_t rd24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }

static void wr24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

static es_flv_frame_t frame_kind(uint8_t frame_type)
{
    switch (frame_type) {
    case 1: case 4: return ES_FLV_FRAME_KEY;
    case 2: case 3: return ES_FLV_FRAME_INTER;
    default: return ES_FLV_FRAME_OTHER;
    }
}

static es_flv_video_codec_t video_fourcc_codec(uint32_t fourcc)
{
    switch (fourcc) {
    case ES_FLV_FOURCC('a', 'v', 'c', '1'): return ES_FLV_VIDEO_AVC;
    case ES_FLV_FOURCC('h', 'v', 'c', '1'): return ES_FLV_VIDEO_HEVC;
    case ES_FLV_FOURCC('a', 'v', '0', '1'): return ES_FLV_VIDEO_AV1;
    case ES_FLV_FOURCC('v', 'p', '0', '9'): return ES_FLV_VIDEO_VP9;
    default: return ES_FLV_VIDEO_OTHER;
    }
}

static int video_legacy(const uint8_t *body, size_t len, es_flv_video_t *v)
{
    v->frame_type = body[0] >> 4;
    v->codec_id = body[0] & 0x0f;
    v->frame = frame_kind(v->frame_type);
    v->codec = v->codec_id == CODEC_AVC    ? ES_FLV_VIDEO_AVC
               : v->codec_id == CODEC_HEVC ? ES_FLV_VIDEO_HEVC
                                           : ES_FLV_VIDEO_OTHER;
    size_t off = 1;
    if (v->frame_type == FRAME_COMMAND) {
        /* A command byte (0 = start, 1 = end of client-side seeking) instead of a frame. */
        v->packet = ES_FLV_PACKET_OTHER;
    } else if (v->codec == ES_FLV_VIDEO_OTHER) {
        v->packet = ES_FLV_PACKET_CODED_FRAME; /* Sorenson, VP6, ...: the frame follows */
    } else {
        if (len < 5) return ES_EPROTO; /* AVCPacketType + CompositionTime */
        v->packet_type = body[1];
        switch (v->packet_type) {
        case 0: v->packet = ES_FLV_PACKET_SEQUENCE_HEADER; break;
        case 1: v->packet = ES_FLV_PACKET_CODED_FRAME; break;
        case 2: v->packet = ES_FLV_PACKET_END_OF_SEQUENCE; break;
        default: v->packet = ES_FLV_PACKET_OTHER; break;
        }
        /* The spec says CompositionTime is 0 unless AVCPacketType is 1; encoders agree, and a
         * non-zero value elsewhere means nothing, so only NALU packets report it. */
        if (v->packet_type == 1) v->cts_ms = rd_si24(body + 2);
        off = 5;
    }
    v->payload = body + off;
    v->payload_len = len - off;
    return 0;
}

static int video_enhanced(const uint8_t *body, size_t len, es_flv_video_t *v)
{
    v->enhanced = true;
    v->frame_type = (body[0] >> 4) & 0x07;
    v->packet_type = body[0] & 0x0f;
    v->frame = frame_kind(v->frame_type);
    size_t off = 1;
    if (v->frame_type == FRAME_COMMAND && v->packet_type != EX_METADATA) {
        /* The (Ex)VideoTagHeader is followed by the command byte, no FourCC. */
        v->packet = ES_FLV_PACKET_OTHER;
    } else if (v->packet_type == EX_MULTITRACK || v->packet_type == EX_MODEX ||
               v->packet_type > EX_MODEX) {
        /* v2 Multitrack and ModEx restructure what follows; reserved types are unknown. Passed
         * through whole for whoever understands them. */
        v->packet = ES_FLV_PACKET_OTHER;
    } else {
        if (len < 5) return ES_EPROTO;
        v->codec_id = es_rd32(body + 1);
        v->codec = video_fourcc_codec(v->codec_id);
        off = 5;
        switch (v->packet_type) {
        case EX_SEQUENCE_START: v->packet = ES_FLV_PACKET_SEQUENCE_HEADER; break;
        case EX_CODED_FRAMES:
            v->packet = ES_FLV_PACKET_CODED_FRAME;
            if (v->codec == ES_FLV_VIDEO_AVC || v->codec == ES_FLV_VIDEO_HEVC) {
                if (len < 8) return ES_EPROTO;
                v->cts_ms = rd_si24(body + 5);
                off = 8;
            }
            break;
        case EX_CODED_FRAMES_X: v->packet = ES_FLV_PACKET_CODED_FRAME; break;
        case EX_SEQUENCE_END: v->packet = ES_FLV_PACKET_END_OF_SEQUENCE; break;
        default: v->packet = ES_FLV_PACKET_OTHER; break; /* Metadata, MPEG2TSSequenceStart */
        }
    }
    v->payload = body + off;
    v->payload_len = len - off;
    return 0;
}

int es_flv_video_parse(const uint8_t *body, size_t len, es_flv_video_t *out)
{
    if (!out || (!body && len)) return ES_EINVAL;
    if (len < 1) return ES_EPROTO;
    es_flv_video_t v;
    memset(&v, 0, sizeof v);
    int rc = (body[0] & 0x80) ? video_enhanced(body, len, &v) : video_legacy(body, len, &v);
    if (rc == 0) *out = v;
    return rc;
}

static es_flv_audio_codec_t audio_fourcc_codec(uint32_t fourcc)
{
    switch (fourcc) {
    case ES_FLV_FOURCC('m', 'p', '4', 'a'): return ES_FLV_AUDIO_AAC;
    case ES_FLV_FOURCC('.', 'm', 'p', '3'): return ES_FLV_AUDIO_MP3;
    case ES_FLV_FOURCC('O', 'p', 'u', 's'): return ES_FLV_AUDIO_OPUS;
    default: return ES_FLV_AUDIO_OTHER;
    }
}

int es_flv_audio_parse(const uint8_t *body, size_t len, es_flv_audio_t *out)
{
    if (!out || (!body && len)) return ES_EINVAL;
    if (len < 1) return ES_EPROTO;
    es_flv_audio_t a;
    memset(&a, 0, sizeof a);
    uint8_t format = body[0] >> 4;
    size_t off = 1;
    if (format == SOUND_EX_HEADER) {
        a.enhanced = true;
        a.packet_type = body[0] & 0x0f;
        if (a.packet_type != EX_AUDIO_MULTITRACK && a.packet_type != EX_MODEX) {
            if (len < 5) return ES_EPROTO;
            a.codec_id = es_rd32(body + 1);
            a.codec = audio_fourcc_codec(a.codec_id);
            a.config = a.packet_type == EX_SEQUENCE_START;
            off = 5;
        }
    } else {
        a.codec_id = format;
        a.sound_rate = (body[0] >> 2) & 0x03;
        a.sound_size = (body[0] >> 1) & 0x01;
        a.sound_type = body[0] & 0x01;
        if (format == SOUND_AAC) {
            if (len < 2) return ES_EPROTO;
            a.codec = ES_FLV_AUDIO_AAC;
            a.packet_type = body[1];
            a.config = a.packet_type == 0;
            off = 2;
        } else if (format == SOUND_MP3 || format == SOUND_MP3_8K) {
            a.codec = ES_FLV_AUDIO_MP3;
        }
    }
    a.payload = body + off;
    a.payload_len = len - off;
    *out = a;
    return 0;
}

/* ISO/IEC 14496-3 Table 1.18: samplingFrequencyIndex -> Hz; 13 and 14 reserved. */
static const uint32_t aac_rates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                       22050, 16000, 12000, 11025, 8000,  7350};

int es_aac_config_parse(const uint8_t *asc, size_t len, es_aac_config_t *out)
{
    if (!out || (!asc && len)) return ES_EINVAL;
    es_bits_t b = es_bits_init(asc, len);
    es_aac_config_t c;
    memset(&c, 0, sizeof c);
    uint32_t aot = es_bits_u(&b, 5);
    if (aot == 31) aot = 32 + es_bits_u(&b, 6); /* GetAudioObjectType() escape */
    c.object_type = (uint8_t)aot;
    c.freq_index = (uint8_t)es_bits_u(&b, 4);
    if (c.freq_index == 15)
        c.sample_rate = es_bits_u(&b, 24);
    else if (c.freq_index < 13)
        c.sample_rate = aac_rates[c.freq_index];
    c.channel_config = (uint8_t)es_bits_u(&b, 4);
    if (b.bad || c.sample_rate == 0) return ES_EPROTO;
    /* Table 1.19: configurations 1..6 have that many channels, 7 is 7.1 (8); 8..15 reserved
     * (0 = the program_config_element says, in-stream). */
    if (c.channel_config >= 1 && c.channel_config <= 6)
        c.channels = c.channel_config;
    else if (c.channel_config == 7)
        c.channels = 8;
    *out = c;
    return 0;
}

void es_flv_write_header(uint8_t out[ES_FLV_HEADER_SIZE], bool has_audio, bool has_video)
{
    out[0] = 'F';
    out[1] = 'L';
    out[2] = 'V';
    out[3] = 1;
    out[4] = (uint8_t)((has_audio ? 0x04 : 0) | (has_video ? 0x01 : 0));
    es_wr32(out + 5, 9);
    es_wr32(out + 9, 0);
}

int es_flv_write_tag_header(uint8_t out[ES_FLV_TAG_HEADER_SIZE], uint8_t type,
                            uint32_t timestamp_ms, uint32_t data_len)
{
    if (data_len > 0xffffffu || type > 0x1f) return ES_ERANGE;
    out[0] = type;
    wr24(out + 1, data_len);
    wr24(out + 4, timestamp_ms & 0xffffffu);
    out[7] = (uint8_t)(timestamp_ms >> 24); /* TimestampExtended: the upper 8 bits */
    wr24(out + 8, 0);
    return 0;
}

void es_flv_write_prev_size(uint8_t out[ES_FLV_PREV_TAG_SIZE], uint32_t data_len)
{
    es_wr32(out, ES_FLV_TAG_HEADER_SIZE + data_len);
}

static int read_header(const uint8_t *buf, size_t len, es_flv_tag_t *tag)
{
    if (len < 9) return ES_EAGAIN;
    if (buf[3] != 1 || (buf[4] & 0xfa)) return ES_EPROTO;
    uint32_t offset = es_rd32(buf + 5);
    /* DataOffset counts the header itself; anything beyond 9 is reserved for later versions.
     * Bounded so that a hostile value cannot make the caller buffer gigabytes. */
    if (offset < 9 || offset > 1024) return ES_EPROTO;
    size_t total = (size_t)offset + ES_FLV_PREV_TAG_SIZE;
    if (len < total) return ES_EAGAIN;
    if (es_rd32(buf + offset) != 0) return ES_EPROTO; /* PreviousTagSize0 */
    memset(tag, 0, sizeof *tag);
    tag->is_header = true;
    tag->has_audio = buf[4] & 0x04;
    tag->has_video = buf[4] & 0x01;
    return (int)total;
}

int es_flv_read_tag(const uint8_t *buf, size_t len, es_flv_tag_t *tag)
{
    if (!tag || (!buf && len)) return ES_EINVAL;
    if (len < 1) return ES_EAGAIN;
    if (buf[0] == 'F') {
        /* 'F' as a tag would have a reserved bit set: it can only be the file header. */
        if ((len >= 2 && buf[1] != 'L') || (len >= 3 && buf[2] != 'V')) return ES_EPROTO;
        return read_header(buf, len, tag);
    }
    if (buf[0] & 0xe0) return ES_EPROTO; /* reserved bits, or Filter = encrypted/pre-processed */
    if (len < ES_FLV_TAG_HEADER_SIZE) return ES_EAGAIN;
    uint32_t data_len = rd24(buf + 1);
    size_t total = ES_FLV_TAG_HEADER_SIZE + (size_t)data_len + ES_FLV_PREV_TAG_SIZE;
    if (len < total) return ES_EAGAIN;
    if (es_rd32(buf + ES_FLV_TAG_HEADER_SIZE + data_len) != ES_FLV_TAG_HEADER_SIZE + data_len)
        return ES_EPROTO;
    memset(tag, 0, sizeof *tag);
    tag->type = buf[0] & 0x1f;
    tag->timestamp_ms = rd24(buf + 4) | (uint32_t)buf[7] << 24;
    tag->data = buf + ES_FLV_TAG_HEADER_SIZE;
    tag->data_len = data_len;
    return (int)total;
}

bool es_flv_is_metadata(const uint8_t *body, size_t len)
{
    static const uint8_t name[] = {0x02, 0x00, 0x0a, 'o', 'n', 'M', 'e',
                                   't',  'a',  'D',  'a', 't', 'a'};
    return body && len >= sizeof name && memcmp(body, name, sizeof name) == 0;
}
