/* FLV tags as RTMP carries them and HTTP-FLV writes them: video and audio tag bodies (Adobe
 * "Video File Format Specification" v10.1 Annex E.4.2.1 AUDIODATA, E.4.3.1 VIDEODATA, with the
 * widespread non-standard HEVC CodecID 12, and veovera Enhanced RTMP v1 ExVideoTagHeader / v2
 * ExAudioTagHeader), the AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), and FLV file
 * framing (Annex E.2 header, E.3 body, E.4.1 tag header). Sans-IO, bounds-checked: any bytes are
 * safe input, and every pointer handed back points inside the caller's buffer. */
#ifndef ESTUARY_FLV_H
#define ESTUARY_FLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* FLV TagType (= RTMP message type id). */
enum { ES_FLV_TAG_AUDIO = 8, ES_FLV_TAG_VIDEO = 9, ES_FLV_TAG_DATA = 18 };

enum {
    ES_FLV_HEADER_SIZE = 13,     /* 9-byte FLV header + PreviousTagSize0 */
    ES_FLV_TAG_HEADER_SIZE = 11, /* TagType, DataSize, Timestamp(+Extended), StreamID */
    ES_FLV_PREV_TAG_SIZE = 4,    /* the PreviousTagSize after each tag */
};

/* A FourCC as a big-endian integer: ES_FLV_FOURCC('h','v','c','1'). */
#define ES_FLV_FOURCC(a, b, c, d) \
    ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

typedef enum es_flv_video_codec {
    ES_FLV_VIDEO_OTHER = 0, /* see es_flv_video_t.codec_id */
    ES_FLV_VIDEO_AVC,       /* legacy CodecID 7 or FourCC "avc1" */
    ES_FLV_VIDEO_HEVC,      /* legacy CodecID 12 (non-standard, widespread) or FourCC "hvc1" */
    ES_FLV_VIDEO_AV1,       /* FourCC "av01" */
    ES_FLV_VIDEO_VP9,       /* FourCC "vp09" */
} es_flv_video_codec_t;

typedef enum es_flv_frame {
    ES_FLV_FRAME_KEY = 0,   /* FrameType 1 (key) or 4 (generated key) */
    ES_FLV_FRAME_INTER,     /* FrameType 2 (inter) or 3 (disposable inter) */
    ES_FLV_FRAME_OTHER,     /* FrameType 5 (video info/command) and reserved values */
} es_flv_frame_t;

typedef enum es_flv_packet {
    ES_FLV_PACKET_SEQUENCE_HEADER = 0, /* AVCPacketType 0 / SequenceStart: configuration record */
    ES_FLV_PACKET_CODED_FRAME,         /* AVCPacketType 1 / CodedFrames / CodedFramesX */
    ES_FLV_PACKET_END_OF_SEQUENCE,     /* AVCPacketType 2 / SequenceEnd: no payload expected */
    ES_FLV_PACKET_OTHER,               /* Metadata, MPEG2TSSequenceStart, command frames, ... */
} es_flv_packet_t;

/* A parsed video tag body. `payload` points into the body given to es_flv_video_parse and lives
 * as long as it does. */
typedef struct es_flv_video {
    es_flv_video_codec_t codec;
    bool enhanced;           /* Enhanced RTMP ExVideoTagHeader (IsExHeader = 1) */
    uint32_t codec_id;       /* legacy CodecID (0..15), or the FourCC (ES_FLV_FOURCC) when
                              * enhanced; 0 for an enhanced command frame, Multitrack or ModEx */
    uint8_t frame_type;      /* raw FrameType (legacy 4 bits, enhanced 3 bits) */
    uint8_t packet_type;     /* raw AVCPacketType / VideoPacketType; 0 when there is none */
    es_flv_frame_t frame;
    es_flv_packet_t packet;
    int32_t cts_ms;          /* CompositionTime, signed ms (PTS - DTS); 0 when absent */
    const uint8_t *payload;  /* after the header: configuration record, AVCC/HVCC NAL units,
                              * AV1 OBUs, VP9 frame, command byte, metadata (AMF0) */
    size_t payload_len;
} es_flv_video_t;

/* es_flv_video_parse: parses a video tag body (an RTMP type 9 message) of `len` bytes.
 * Legacy (E.4.3.1): FrameType(4) CodecID(4); for CodecID 7 and 12 AVCPacketType(8) and a signed
 * 24-bit CompositionTime; other codec ids carry the frame right after the first byte.
 * Enhanced RTMP v1 (IsExHeader = 1): FrameType(3) PacketType(4) FourCC(32); CodedFrames of avc1
 * and hvc1 carry an SI24 composition time, CodedFramesX never does. A command frame
 * (FrameType 5) carries one command byte as its payload. Enhanced v2 Multitrack (6) and ModEx (7)
 * are reported as ES_FLV_PACKET_OTHER with the payload after the first byte.
 * Returns 0, ES_EPROTO for an empty or truncated header, ES_EINVAL for NULL `out` or `body`
 * with len > 0. `out` is written only on success. */
int es_flv_video_parse(const uint8_t *body, size_t len, es_flv_video_t *out);

typedef enum es_flv_audio_codec {
    ES_FLV_AUDIO_OTHER = 0, /* see es_flv_audio_t.codec_id */
    ES_FLV_AUDIO_AAC,       /* SoundFormat 10, or ExHeader FourCC "mp4a" */
    ES_FLV_AUDIO_MP3,       /* SoundFormat 2 (or 14, MP3 8 kHz), or ExHeader FourCC ".mp3" */
    ES_FLV_AUDIO_OPUS,      /* ExHeader FourCC "Opus" */
} es_flv_audio_codec_t;

/* A parsed audio tag body; `payload` points into the body and lives as long as it does. */
typedef struct es_flv_audio {
    es_flv_audio_codec_t codec;
    bool enhanced;          /* Enhanced RTMP v2 ExAudioTagHeader (SoundFormat 9) */
    uint32_t codec_id;      /* legacy SoundFormat (0..15), or the FourCC when enhanced (0 for
                             * Multitrack / ModEx, whose FourCC is not parsed) */
    uint8_t sound_rate;     /* legacy SoundRate bits: 0 = 5.5 kHz, 1 = 11, 2 = 22, 3 = 44 kHz */
    uint8_t sound_size;     /* legacy SoundSize bit: 0 = 8-bit, 1 = 16-bit samples */
    uint8_t sound_type;     /* legacy SoundType bit: 0 = mono, 1 = stereo */
    uint8_t packet_type;    /* AACPacketType, or the enhanced AudioPacketType; 0 otherwise */
    bool config;            /* a sequence header: AAC AudioSpecificConfig, ExHeader
                             * SequenceStart (e.g. OpusHead-style config) */
    const uint8_t *payload; /* raw AAC frame / config, MP3 frame, Opus packet, ... */
    size_t payload_len;
} es_flv_audio_t;

/* es_flv_audio_parse: parses an audio tag body (an RTMP type 8 message) of `len` bytes (E.4.2.1):
 * SoundFormat(4) SoundRate(2) SoundSize(1) SoundType(1); for AAC an AACPacketType byte
 * (0 = AudioSpecificConfig, 1 = raw frame). SoundFormat 9 is the Enhanced RTMP v2 ExHeader:
 * AudioPacketType(4) then a FourCC ("Opus", "mp4a", ".mp3", "fLaC", "ac-3", "ec-3"), whose
 * payload is passed through (SequenceStart 0 sets `config`).
 * Returns 0, ES_EPROTO for an empty or truncated header, ES_EINVAL for NULL arguments. */
int es_flv_audio_parse(const uint8_t *body, size_t len, es_flv_audio_t *out);

/* AudioSpecificConfig, the fields a transcoder and an SDP need. */
typedef struct es_aac_config {
    uint8_t object_type;   /* audioObjectType: 2 = AAC-LC, 5 = SBR (HE-AAC), 29 = PS, ... */
    uint8_t freq_index;    /* samplingFrequencyIndex, 15 = explicit */
    uint32_t sample_rate;  /* Hz */
    uint8_t channel_config;/* channelConfiguration (0 = defined in-stream, 1..7) */
    uint8_t channels;      /* channel count for configurations 1..7 (7 -> 8), 0 for 0 */
} es_aac_config_t;

/* es_aac_config_parse: the leading fields of an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1):
 * audioObjectType (5 bits, 31 escapes to 32 + 6 bits), samplingFrequencyIndex (4 bits, 15
 * escapes to a 24-bit frequency), channelConfiguration (4 bits). The explicit SBR/PS extension
 * (object type 5 or 29 followed by the extension sampling frequency) is not unwound: HE-AAC
 * reports object type 5 and the core sample rate. Returns 0, ES_EPROTO when truncated or the
 * index is reserved (13, 14) or the frequency is 0, ES_EINVAL for NULL arguments. */
int es_aac_config_parse(const uint8_t *asc, size_t len, es_aac_config_t *out);

/* es_flv_write_header: writes the 9-byte FLV file header (signature "FLV", version 1, the audio
 * and video flags, DataOffset 9) and PreviousTagSize0 = 0 into out[0..12] (E.2, E.3). */
void es_flv_write_header(uint8_t out[ES_FLV_HEADER_SIZE], bool has_audio, bool has_video);

/* es_flv_write_tag_header: writes an 11-byte FLV tag header (E.4.1) into out: TagType `type`
 * (ES_FLV_TAG_*), DataSize `data_len` (24 bits), Timestamp in ms (lower 24 bits, then
 * TimestampExtended for the upper 8), StreamID 0. The body follows, then es_flv_write_prev_size.
 * Returns 0, ES_ERANGE when data_len does not fit in 24 bits (nothing written). */
int es_flv_write_tag_header(uint8_t out[ES_FLV_TAG_HEADER_SIZE], uint8_t type,
                            uint32_t timestamp_ms, uint32_t data_len);

/* es_flv_write_prev_size: writes the PreviousTagSize that follows a tag of `data_len` body bytes
 * (11 + data_len, big-endian) into out[0..3]. */
void es_flv_write_prev_size(uint8_t out[ES_FLV_PREV_TAG_SIZE], uint32_t data_len);

/* One unit read from an FLV byte stream: either the file header or one tag. `data` points into
 * the caller's buffer. */
typedef struct es_flv_tag {
    bool is_header;        /* the 13-byte file header (with PreviousTagSize0) */
    bool has_audio;        /* header only: TypeFlagsAudio */
    bool has_video;        /* header only: TypeFlagsVideo */
    uint8_t type;          /* tag only: TagType (ES_FLV_TAG_*; the Filter bit is rejected) */
    uint32_t timestamp_ms; /* tag only: Timestamp | TimestampExtended << 24 */
    const uint8_t *data;   /* tag only: the body */
    size_t data_len;
} es_flv_tag_t;

/* es_flv_read_tag: reads the next unit from `buf` (`len` bytes available). When the buffer
 * begins with "FLV" it is read as the file header (DataOffset may exceed 9; the extra bytes and
 * PreviousTagSize0 are consumed); otherwise as one tag with its trailing PreviousTagSize.
 * Returns the bytes consumed (> 0), ES_EAGAIN when `len` is too short for the whole unit
 * (nothing is consumed; call again with more bytes), ES_EPROTO when malformed (a bad version,
 * DataOffset < 9, the Filter (encryption) bit or reserved bits set, a PreviousTagSize other than
 * 11 + DataSize). A StreamID other than 0 is tolerated. ES_EINVAL for NULL arguments. */
int es_flv_read_tag(const uint8_t *buf, size_t len, es_flv_tag_t *tag);

/* es_flv_is_metadata: true when a data tag body (RTMP type 18) begins with the AMF0 string
 * "onMetaData" (0x02 0x00 0x0A "onMetaData"), as encoders send their stream properties. Some
 * encoders wrap it in "@setDataFrame" first; that form answers false (the caller strips it). */
bool es_flv_is_metadata(const uint8_t *body, size_t len);

#endif
