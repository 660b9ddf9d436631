/* H.264 for RTP: the AVCDecoderConfigurationRecord RTMP/FLV carries (ISO/IEC 14496-15
 * §5.3.3.1), the sequence parameter set fields an SDP and a player need (ITU-T H.264
 * §7.3.2.1.1), the SDP profile-level-id (RFC 6184 §8.1), NAL unit iteration over AVCC and
 * Annex B streams, and the RFC 6184 packetizer for packetization-mode 1 (single NAL unit,
 * STAP-A, FU-A) and its depacketizer (RTP packets -> AVCC access units with a reorder window,
 * loss handling and in-band SPS/PPS tracking). Sans-IO, bounds-checked: any bytes are safe
 * input. */
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

/* ---- Depacketizer (RFC 6184 receiver, packetization-mode 1) ---------------------------------- */

enum {
    ES_H264_AU_MAX = 4 << 20,          /* bytes: a larger access unit is dropped as broken */
    ES_H264_DEPACK_WINDOW = 128,       /* packets held while waiting for a missing one */
    ES_H264_DEPACK_PAYLOAD_MAX = 65535,/* bytes: the largest RTP payload accepted */
};
#define ES_H264_DEPACK_DELAY_US 100000 /* default time a gap is waited for: 100 ms */

/* One reassembled access unit, handed to the callback. */
typedef struct es_h264_au {
    const uint8_t *data;  /* AVCC: NAL units with 4-byte big-endian lengths; borrowed for the
                           * duration of the callback only */
    size_t len;           /* bytes, 1..ES_H264_AU_MAX */
    uint32_t rtp_ts;      /* RTP timestamp, 90 kHz ticks */
    bool key;             /* contains an IDR slice (nal_unit_type 5) */
    bool has_params;      /* contains an SPS or a PPS */
    bool params_changed;  /* the stored SPS or PPS (es_h264_depack_params) changed since the
                           * previous emitted access unit (true for the first one that has
                           * both): rebuild the AVC sequence header before this one */
} es_h264_au_t;

/* Receives one access unit. It must not call es_h264_depack_push, _handle_timeout, _reset or
 * _free on the depacketizer that calls it; the getters are allowed. */
typedef void (*es_h264_au_fn)(void *user, const es_h264_au_t *au);

/* Counters, from creation (es_h264_depack_reset keeps them). */
typedef struct es_h264_depack_stats {
    uint64_t packets;      /* accepted into the reorder window */
    uint64_t duplicates;   /* dropped: that sequence number was already held */
    uint64_t late;         /* dropped: that sequence number was processed or given up (late or
                            * a duplicate of a processed one) */
    uint64_t lost;         /* sequence numbers given up as lost */
    uint64_t malformed;    /* payloads rejected with ES_EPROTO or ES_E2BIG */
    uint64_t aus;          /* access units emitted */
    uint64_t aus_broken;   /* access units dropped: loss, malformed packet, FU-A without its
                            * start or end, larger than ES_H264_AU_MAX */
    uint64_t aus_skipped;  /* whole access units dropped while waiting for a key frame, or
                            * without any slice */
    uint64_t key_requests; /* times es_h264_depack_key_needed turned true */
} es_h264_depack_stats_t;

typedef struct es_h264_depack es_h264_depack_t;

/* es_h264_depack_new: a depacketizer for one H.264 RTP stream (one SSRC) delivering access
 * units to `fn` (with `user`). `max_delay_us` is how long a sequence gap is waited for (µs of
 * now_us) before the packets behind it are processed without it; 0 means
 * ES_H264_DEPACK_DELAY_US. At most ES_H264_DEPACK_WINDOW packets are held behind a gap: one
 * further ahead gives the oldest missing ones up at once. Output starts at the first key frame
 * (es_h264_depack_key_needed is true from the start). Returns NULL when out of memory or `fn`
 * is NULL. */
es_h264_depack_t *es_h264_depack_new(uint64_t max_delay_us, es_h264_au_fn fn, void *user);

/* es_h264_depack_free: frees the depacketizer and everything it holds; NULL-safe. */
void es_h264_depack_free(es_h264_depack_t *d);

/* es_h264_depack_push: one RTP packet of the stream: sequence number `seq`, RTP timestamp `ts`
 * (90 kHz ticks), marker bit, and its payload (after the RTP header, extensions and padding;
 * borrowed for the call: the depacketizer copies it only when it has to be held), arriving at
 * `now_us` (monotonic µs). Packets are put back in sequence order (RFC 6184 §5.1: a receiver
 * reorders by sequence number) within the window; duplicates and packets older than the ones
 * already processed are dropped. In order, payloads are reassembled (§5.6 single NAL unit,
 * §5.7.1 STAP-A, §5.8 FU-A) into access units, which end at the marker bit or when the
 * timestamp changes (a padding-only packet, with an empty payload, neither starts nor ends one).
 * Access unit delimiters (type 9) and filler data (type 12) are dropped, as es_h264_packetize
 * does; everything else is kept in order, F and NRI bits untouched.
 * An access unit touched by a lost or malformed packet, with an FU-A missing its start or end,
 * or larger than ES_H264_AU_MAX is dropped whole, never emitted in part; after that, output
 * resumes only at an access unit with an IDR slice, and es_h264_depack_key_needed says so.
 * Access units without any slice (NAL types 1..5) are not emitted, but their SPS/PPS are kept.
 * Returns the number of access units emitted during the call; ES_EPROTO for a payload that is
 * not a valid packetization-mode 1 payload (an empty NAL, types 0, 25..27, 29..31, a STAP-A whose
 * sizes do not add up or that holds one of those types, an FU-A shorter than 2 bytes or
 * fragmenting one of those types) and ES_E2BIG for one over ES_H264_DEPACK_PAYLOAD_MAX bytes:
 * either still takes its sequence number and breaks its access unit; ES_ENOMEM when a buffer
 * could not grow (the packet counts as lost); ES_EINVAL for NULL arguments. Access units may
 * have been emitted even when an error is returned. */
int es_h264_depack_push(es_h264_depack_t *d, uint16_t seq, uint32_t ts, bool marker,
                        const uint8_t *payload, size_t len, uint64_t now_us);

/* es_h264_depack_handle_timeout: gives up gaps that have been waited for `max_delay_us` by
 * now_us and processes the packets behind them. Returns the number of access units emitted. */
int es_h264_depack_handle_timeout(es_h264_depack_t *d, uint64_t now_us);

/* es_h264_depack_next_timeout: when es_h264_depack_handle_timeout next has work (monotonic µs),
 * or UINT64_MAX when no packet is held behind a gap. */
uint64_t es_h264_depack_next_timeout(const es_h264_depack_t *d);

/* es_h264_depack_key_needed: true while output waits for a key frame: from creation or reset,
 * and from a loss or broken access unit until the next access unit with an IDR slice is emitted.
 * The caller sends a PLI (RFC 4585 §6.3.1) while this holds, rate-limited. */
bool es_h264_depack_key_needed(const es_h264_depack_t *d);

/* es_h264_depack_params: the latest SPS and PPS seen in band (from access units that arrived
 * whole; the latest of each type, whatever its id; ones longer than ES_H264_PARAM_MAX are not
 * kept), NAL header included, ready for es_h264_config_write. Pointers borrow from the
 * depacketizer until its next push, handle_timeout, reset or free. Returns 0, or ES_ENOENT
 * while either is still unknown (the pointers are then untouched). */
int es_h264_depack_params(const es_h264_depack_t *d, const uint8_t **sps, size_t *sps_len,
                          const uint8_t **pps, size_t *pps_len);

/* es_h264_depack_stats: the counters (see es_h264_depack_stats_t). */
es_h264_depack_stats_t es_h264_depack_stats(const es_h264_depack_t *d);

/* es_h264_depack_reset: for a new publisher or SSRC: drops held packets and any partial access
 * unit, forgets the sequence numbers and the stored SPS/PPS, and waits for a key frame again.
 * Buffers stay allocated; counters are kept. */
void es_h264_depack_reset(es_h264_depack_t *d);

#endif
