/* H.264 for RTP: the AVCDecoderConfigurationRecord RTMP/FLV carries (ISO/IEC 14496-15
 * §5.3.3.1), the sequence parameter set fields an SDP and a player need (ITU-T H.264
 * §7.3.2.1.1), the SDP profile-level-id (RFC 6184 §8.1), NAL unit iteration over AVCC and
 * Annex B streams, and the RFC 6184 packetizer for packetization-mode 1 (single NAL unit,
 * STAP-A, FU-A). Sans-IO, bounds-checked: any bytes are safe input.
 * (Issue 5 adds the depacketizer here.) */
#ifndef ESTUARY_H264_H
#define ESTUARY_H264_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* NAL unit types (ITU-T H.264 Table 7-1) and RTP packet types (RFC 6184 §5.2). */
enum {
    ES_H264_NAL_SLICE = 1,
    ES_H264_NAL_IDR = 5,
    ES_H264_NAL_SEI = 6,
    ES_H264_NAL_SPS = 7,
    ES_H264_NAL_PPS = 8,
    ES_H264_NAL_AUD = 9,
    ES_H264_NAL_FILLER = 12,
    ES_H264_NAL_STAP_A = 24,
    ES_H264_NAL_FU_A = 28,
};

enum {
    ES_H264_PARAM_MAX = 256,    /* largest SPS or PPS kept in es_h264_config_t */
    ES_H264_PAYLOAD_MAX = 1500, /* largest RTP payload the packetizer builds */
};

/* An AVCDecoderConfigurationRecord, with its first SPS and first PPS copied in. */
typedef struct es_h264_config {
    uint8_t profile_idc;   /* AVCProfileIndication */
    uint8_t compat;        /* profile_compatibility (the SPS constraint_set flags byte) */
    uint8_t level_idc;     /* AVCLevelIndication */
    uint8_t length_size;   /* NAL unit length field size in bytes: 1, 2 or 4 */
    uint8_t sps[ES_H264_PARAM_MAX];
    size_t sps_len;        /* 0 when there is none */
    uint8_t pps[ES_H264_PARAM_MAX];
    size_t pps_len;        /* 0 when there is none */
} es_h264_config_t;

/* es_h264_config_parse: parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1.2;
 * the body of an AVC sequence header after the FLV video header). configurationVersion must be
 * 1; lengthSizeMinusOne 2 (3-byte lengths) is invalid. The first SPS and the first PPS are copied
 * into `out`; further ones and the high-profile trailer are skipped but bounds-checked.
 * Returns 0; ES_EPROTO when truncated, a bad version or length size, no SPS or no PPS, or an
 * empty one; ES_E2BIG when the first SPS or PPS exceeds ES_H264_PARAM_MAX; ES_EINVAL for NULL
 * arguments. `out` is written only on success. */
int es_h264_config_parse(const uint8_t *rec, size_t len, es_h264_config_t *out);

/* es_h264_config_write: writes an AVCDecoderConfigurationRecord for one SPS and one PPS (NAL
 * units with their one-byte headers, emulation prevention in place, as found in band) into
 * out[0..cap): version 1, profile/compatibility/level from SPS bytes 1..3, 4-byte NAL lengths,
 * and for the high profiles (100, 110, 122, 144) the chroma format and bit depths from the SPS
 * with no SPS extensions. Returns the record's length; ES_EPROTO when `sps` is not an SPS NAL of
 * at least 4 bytes, `pps` is not a PPS NAL, or either exceeds 65535 bytes; ES_E2BIG when `cap`
 * is too small (nothing written); ES_EINVAL for NULL arguments. */
int es_h264_config_write(const uint8_t *sps, size_t sps_len, const uint8_t *pps, size_t pps_len,
                         uint8_t *out, size_t cap);

/* The SPS fields Estuary uses. */
typedef struct es_h264_sps {
    uint8_t profile_idc;
    uint8_t constraints;       /* constraint_set0..5 flags and reserved bits (the second byte) */
    uint8_t level_idc;
    uint32_t sps_id;           /* seq_parameter_set_id */
    uint8_t chroma_format_idc; /* 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4 */
    uint8_t bit_depth_luma;    /* 8..14 */
    uint8_t bit_depth_chroma;  /* 8..14 */
    bool frame_mbs_only;       /* false: the stream may code fields (interlaced) */
    uint32_t width;            /* pixels, after frame cropping */
    uint32_t height;           /* pixels, after frame cropping (frame height for field coding) */
} es_h264_sps_t;

/* es_h264_sps_parse: parses an SPS NAL unit (`len` bytes starting with its one-byte NAL header,
 * nal_unit_type 7; emulation-prevention bytes are removed here) up to the frame cropping
 * (ITU-T H.264 §7.3.2.1.1, §7.4.2.1.1): exp-Golomb fields, scaling lists of the high profiles,
 * picture order count, and the picture size in pixels with cropping (CropUnitX/Y per
 * chroma_format_idc and frame_mbs_only_flag). The VUI is not read. Returns 0; ES_EPROTO when not
 * an SPS, truncated, or out of range (chroma_format_idc > 3, bit depth > 14, more than 4096
 * macroblocks wide or map units high, cropping that leaves nothing); ES_EINVAL for NULL
 * arguments. `out` is written only on success. */
int es_h264_sps_parse(const uint8_t *nal, size_t len, es_h264_sps_t *out);

/* es_h264_profile_level_id: the SDP fmtp profile-level-id (RFC 6184 §8.1): SPS bytes 1..3
 * (profile_idc, constraint flags, level_idc) as six lowercase hex digits and a NUL in out[7].
 * `sps` is the SPS NAL with its header. Returns 0; ES_EPROTO when shorter than 4 bytes or not an
 * SPS; ES_EINVAL for NULL arguments. */
int es_h264_profile_level_id(const uint8_t *sps, size_t len, char out[7]);

/* es_h264_avcc_next: iterates over the NAL units of an AVCC (length-prefixed, ISO/IEC 14496-15
 * §5.3.4.2) access unit of `len` bytes with `length_size`-byte lengths (1, 2 or 4). Start with
 * *off = 0. On success *nal and *nal_len give the next NAL unit inside `au` (possibly empty),
 * and *off advances. Returns 1 for a NAL unit, 0 at the end, ES_EPROTO when a length field or a NAL
 * unit runs past the end, ES_EINVAL for a bad length size or NULL arguments. */
int es_h264_avcc_next(const uint8_t *au, size_t len, unsigned length_size, size_t *off,
                      const uint8_t **nal, size_t *nal_len);

/* es_h264_annexb_next: iterates over the NAL units of an Annex B byte stream (ITU-T H.264
 * Annex B: 00 00 01 or 00 00 00 01 start codes). Start with *off = 0. Bytes before the first
 * start code are skipped; trailing zero bytes of a NAL unit (trailing_zero_8bits) are not
 * part of it. Returns 1 with *nal and *nal_len set (pointing into `buf`), 0 when no NAL unit
 * is left, ES_EINVAL for NULL arguments. */
int es_h264_annexb_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **nal,
                        size_t *nal_len);

/* Receives one RTP payload. `payload` is borrowed for the duration of the call only (it may
 * point into the access unit or into the packetizer's scratch buffer). `marker` is true for
 * the last packet of the access unit (RFC 6184 §5.1). */
typedef void (*es_h264_emit_fn)(void *user, const uint8_t *payload, size_t len, bool marker);

/* es_h264_packetize: splits one access unit in AVCC form (`length_size`-byte lengths) into RTP
 * payloads for packetization-mode 1 (RFC 6184 §6.3) of at most `max_payload` bytes, calling
 * `emit` for each in order. Rules:
 *  - NAL units of types 9 (access unit delimiter) and 12 (filler), empty NAL units, and the
 *    types H.264 leaves unspecified (0, 24..31, which RTP reuses for aggregation and fragments)
 *    are dropped.
 *  - Before an access unit that contains an IDR slice (type 5), or is flagged `key`, the SPS
 *    and PPS of `cfg` are sent first, unless the access unit carries both an SPS and a PPS in
 *    band, or `cfg` (may be NULL) lacks either (or holds something that is not an SPS/PPS).
 *  - Consecutive SPS/PPS NAL units (from `cfg` or in band) are aggregated into one STAP-A
 *    (§5.7.1; F = OR, NRI = maximum of the aggregated units) as far as they fit.
 *  - Other NAL units of at most `max_payload` bytes go as single NAL unit packets (§5.6);
 *    larger ones as FU-A fragments (§5.8) with the original F/NRI in the FU indicator, the
 *    original type in the FU header, S on the first and E on the last fragment, and fragment
 *    sizes balanced.
 *  - The marker is set on the last packet of the access unit only.
 * The whole access unit is validated before the first emit: malformed AVCC emits nothing.
 * Returns the number of payloads emitted (0 when nothing is left to send); ES_EPROTO for a
 * malformed access unit; ES_EINVAL for a bad length size, `max_payload` outside
 * 3..ES_H264_PAYLOAD_MAX, a NULL `emit`, or NULL `au` with len > 0. */
int es_h264_packetize(const uint8_t *au, size_t len, unsigned length_size, bool key,
                      const es_h264_config_t *cfg, size_t max_payload, es_h264_emit_fn emit,
                      void *user);

#endif
