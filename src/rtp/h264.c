/* H.264 for RTP: AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1), SPS fields
 * (ITU-T H.264 §7.3.2.1.1, §7.4.2.1.1, emulation prevention §7.4.1), profile-level-id
 * (RFC 6184 §8.1), AVCC and Annex B NAL unit iteration, and the packetization-mode 1
 * packetizer (RFC 6184 §5.6 single NAL unit, §5.7.1 STAP-A, §5.8 FU-A), and the matching
 * depacketizer (reorder window by sequence number, §5.1; access units in AVCC form).
 * Every read is bounds-checked; the packetizer validates an access unit before emitting any of
 * it, so a receiver never sees half of a malformed one, and the depacketizer never emits half
 * of a broken one. */
#include "estuary/h264.h"

#include "estuary/bits.h"
#include "estuary/bytes.h"
#include "estuary/error.h"
#include "estuary/rtp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- AVCDecoderConfigurationRecord ---------------------------------------------------------- */

/* Reads `count` (u16 length, bytes) parameter sets starting at *off, copying the first into
 * dst/dst_len. */
static int config_sets(const uint8_t *rec, size_t len, size_t *off, unsigned count, uint8_t *dst,
                       size_t *dst_len)
{
    if (count == 0) return ES_EPROTO;
    for (unsigned i = 0; i < count; i++) {
        if (len - *off < 2) return ES_EPROTO;
        size_t n = es_rd16(rec + *off);
        *off += 2;
        if (n == 0 || n > len - *off) return ES_EPROTO;
        if (i == 0) {
            if (n > ES_H264_PARAM_MAX) return ES_E2BIG;
            memcpy(dst, rec + *off, n);
            *dst_len = n;
        }
        *off += n;
    }
    return 0;
}

int es_h264_config_parse(const uint8_t *rec, size_t len, es_h264_config_t *out)
{
    if (!out || (!rec && len)) return ES_EINVAL;
    /* version, profile, compatibility, level, 111111 lengthSizeMinusOne, 111 numOfSPS */
    if (len < 6 || rec[0] != 1) return ES_EPROTO;
    es_h264_config_t c;
    memset(&c, 0, sizeof c);
    c.profile_idc = rec[1];
    c.compat = rec[2];
    c.level_idc = rec[3];
    /* The reserved bits are not checked: some muxers write them as zeros. */
    c.length_size = (uint8_t)((rec[4] & 0x03) + 1);
    if (c.length_size == 3) return ES_EPROTO;
    size_t off = 6;
    int rc = config_sets(rec, len, &off, rec[5] & 0x1f, c.sps, &c.sps_len);
    if (rc < 0) return rc;
    if (off >= len) return ES_EPROTO; /* numOfPictureParameterSets */
    unsigned npps = rec[off++];
    rc = config_sets(rec, len, &off, npps, c.pps, &c.pps_len);
    if (rc < 0) return rc;
    /* The high-profile trailer (chroma format, bit depths, SPS extensions) is optional in
     * practice (FFmpeg omitted it for years) and carries nothing the SPS does not. */
    *out = c;
    return 0;
}

static bool high_profile(uint8_t profile_idc)
{
    switch (profile_idc) {
    case 100: case 110: case 122: case 244: case 44: case 83: case 86: case 118: case 128:
    case 138: case 139: case 134: case 135:
        return true;
    default:
        return false;
    }
}

int es_h264_config_write(const uint8_t *sps, size_t sps_len, const uint8_t *pps, size_t pps_len,
                         uint8_t *out, size_t cap)
{
    if (!sps || !pps || (!out && cap)) return ES_EINVAL;
    if (sps_len < 4 || sps_len > 0xffff || (sps[0] & 0x1f) != ES_H264_NAL_SPS) return ES_EPROTO;
    if (pps_len < 1 || pps_len > 0xffff || (pps[0] & 0x1f) != ES_H264_NAL_PPS) return ES_EPROTO;
    /* ISO/IEC 14496-15 §5.3.3.1.2: the trailer exists for profile_idc 100, 110, 122 and 144. */
    bool trailer = sps[1] == 100 || sps[1] == 110 || sps[1] == 122 || sps[1] == 144;
    es_h264_sps_t info;
    if (trailer && es_h264_sps_parse(sps, sps_len, &info) < 0) trailer = false;
    size_t total = 6 + 2 + sps_len + 1 + 2 + pps_len + (trailer ? 4 : 0);
    if (total > cap) return ES_E2BIG;
    if (total > 0x7fffffff) return ES_E2BIG;
    size_t off = 0;
    out[off++] = 1;
    out[off++] = sps[1];
    out[off++] = sps[2];
    out[off++] = sps[3];
    out[off++] = 0xfc | 3;    /* 4-byte NAL unit lengths */
    out[off++] = 0xe0 | 1;    /* one SPS */
    es_wr16(out + off, (uint16_t)sps_len);
    memcpy(out + off + 2, sps, sps_len);
    off += 2 + sps_len;
    out[off++] = 1;           /* one PPS */
    es_wr16(out + off, (uint16_t)pps_len);
    memcpy(out + off + 2, pps, pps_len);
    off += 2 + pps_len;
    if (trailer) {
        out[off++] = (uint8_t)(0xfc | info.chroma_format_idc);
        out[off++] = (uint8_t)(0xf8 | (info.bit_depth_luma - 8));
        out[off++] = (uint8_t)(0xf8 | (info.bit_depth_chroma - 8));
        out[off++] = 0;       /* numOfSequenceParameterSetExt */
    }
    return (int)off;
}

/* ---- SPS ------------------------------------------------------------------------------------ */

static uint32_t bits_ue(es_bits_t *b)
{
    unsigned zeros = 0;
    while (!b->bad && es_bits_u(b, 1) == 0) {
        if (++zeros > 31) {
            b->bad = true;
            return 0;
        }
    }
    if (b->bad) return 0;
    return (uint32_t)(((uint64_t)1 << zeros) - 1 + es_bits_u(b, zeros));
}

/* se(v), §9.1.1: 1 -> 1, 2 -> -1, 3 -> 2, ... */
static int32_t bits_se(es_bits_t *b)
{
    uint32_t k = bits_ue(b);
    return (k & 1) ? (int32_t)((k + 1) / 2) : -(int32_t)(k / 2);
}

/* scaling_list(), §7.3.2.1.1.1: only the syntax is walked; the values are not needed. */
static void skip_scaling_list(es_bits_t *b, unsigned size)
{
    int last = 8, next = 8;
    for (unsigned j = 0; j < size && !b->bad; j++) {
        if (next != 0) {
            int32_t delta = bits_se(b);
            if (delta < -128 || delta > 127) {
                b->bad = true;
                return;
            }
            next = (last + delta + 256) % 256;
        }
        last = next == 0 ? last : next;
    }
}

/* The fields read here end well before this many bytes even with every scaling list at its
 * largest (12 lists of up to 64 deltas of at most 17 bits: about 1.6 kB). */
enum { SPS_RBSP_MAX = 2048 };

int es_h264_sps_parse(const uint8_t *nal, size_t len, es_h264_sps_t *out)
{
    if (!out || (!nal && len)) return ES_EINVAL;
    if (len < 4 || (nal[0] & 0x1f) != ES_H264_NAL_SPS) return ES_EPROTO;
    /* RBSP: drop each 0x03 that follows two zero bytes (§7.4.1 emulation_prevention_three_byte) */
    uint8_t rbsp[SPS_RBSP_MAX];
    size_t n = 0, zeros = 0;
    for (size_t i = 1; i < len && n < sizeof rbsp; i++) {
        if (zeros >= 2 && nal[i] == 0x03) {
            zeros = 0;
            continue;
        }
        zeros = nal[i] == 0 ? zeros + 1 : 0;
        rbsp[n++] = nal[i];
    }
    es_bits_t b = es_bits_init(rbsp, n);
    es_h264_sps_t s;
    memset(&s, 0, sizeof s);
    s.profile_idc = (uint8_t)es_bits_u(&b, 8);
    s.constraints = (uint8_t)es_bits_u(&b, 8);
    s.level_idc = (uint8_t)es_bits_u(&b, 8);
    s.sps_id = bits_ue(&b);
    if (s.sps_id > 31) return ES_EPROTO;
    s.chroma_format_idc = 1; /* inferred when absent */
    s.bit_depth_luma = s.bit_depth_chroma = 8;
    bool separate_planes = false;
    if (high_profile(s.profile_idc)) {
        uint32_t chroma = bits_ue(&b);
        if (chroma > 3) return ES_EPROTO;
        s.chroma_format_idc = (uint8_t)chroma;
        if (chroma == 3) separate_planes = es_bits_u(&b, 1);
        uint32_t luma = bits_ue(&b), chr = bits_ue(&b);
        if (luma > 6 || chr > 6) return ES_EPROTO;
        s.bit_depth_luma = (uint8_t)(8 + luma);
        s.bit_depth_chroma = (uint8_t)(8 + chr);
        es_bits_u(&b, 1); /* qpprime_y_zero_transform_bypass_flag */
        if (es_bits_u(&b, 1)) { /* seq_scaling_matrix_present_flag */
            unsigned lists = chroma != 3 ? 8 : 12;
            for (unsigned i = 0; i < lists && !b.bad; i++)
                if (es_bits_u(&b, 1)) skip_scaling_list(&b, i < 6 ? 16 : 64);
        }
    }
    bits_ue(&b); /* log2_max_frame_num_minus4 */
    uint32_t poc_type = bits_ue(&b);
    if (poc_type == 0) {
        bits_ue(&b); /* log2_max_pic_order_cnt_lsb_minus4 */
    } else if (poc_type == 1) {
        es_bits_u(&b, 1); /* delta_pic_order_always_zero_flag */
        bits_se(&b);   /* offset_for_non_ref_pic */
        bits_se(&b);   /* offset_for_top_to_bottom_field */
        uint32_t cycle = bits_ue(&b);
        if (cycle > 255) return ES_EPROTO;
        for (uint32_t i = 0; i < cycle && !b.bad; i++) bits_se(&b); /* offset_for_ref_frame */
    } else if (poc_type != 2) {
        return ES_EPROTO;
    }
    bits_ue(&b);   /* max_num_ref_frames */
    es_bits_u(&b, 1); /* gaps_in_frame_num_value_allowed_flag */
    uint32_t w_mbs = bits_ue(&b) + 1u, h_units = bits_ue(&b) + 1u;
    s.frame_mbs_only = es_bits_u(&b, 1);
    if (!s.frame_mbs_only) es_bits_u(&b, 1); /* mb_adaptive_frame_field_flag */
    es_bits_u(&b, 1);                        /* direct_8x8_inference_flag */
    uint32_t crop_l = 0, crop_r = 0, crop_t = 0, crop_b = 0;
    if (es_bits_u(&b, 1)) {
        crop_l = bits_ue(&b);
        crop_r = bits_ue(&b);
        crop_t = bits_ue(&b);
        crop_b = bits_ue(&b);
    }
    if (b.bad) return ES_EPROTO;
    if (w_mbs > 4096 || h_units > 4096 || w_mbs == 0 || h_units == 0) return ES_EPROTO;
    /* §7.4.2.1.1, (7-19) to (7-22): crop units follow the chroma subsampling. */
    uint32_t frame_factor = s.frame_mbs_only ? 1 : 2;
    uint32_t unit_x = 1, unit_y = frame_factor;
    if (!separate_planes && s.chroma_format_idc != 0) {
        unit_x = s.chroma_format_idc == 3 ? 1 : 2;
        unit_y = (s.chroma_format_idc == 1 ? 2 : 1) * frame_factor;
    }
    uint64_t w = (uint64_t)w_mbs * 16, h = (uint64_t)h_units * 16 * frame_factor;
    uint64_t cw = (uint64_t)unit_x * ((uint64_t)crop_l + crop_r);
    uint64_t ch = (uint64_t)unit_y * ((uint64_t)crop_t + crop_b);
    if (cw >= w || ch >= h) return ES_EPROTO;
    s.width = (uint32_t)(w - cw);
    s.height = (uint32_t)(h - ch);
    *out = s;
    return 0;
}

int es_h264_profile_level_id(const uint8_t *sps, size_t len, char out[7])
{
    if (!out || (!sps && len)) return ES_EINVAL;
    if (len < 4 || (sps[0] & 0x1f) != ES_H264_NAL_SPS) return ES_EPROTO;
    snprintf(out, 7, "%02x%02x%02x", sps[1], sps[2], sps[3]);
    return 0;
}

/* ---- NAL unit iteration --------------------------------------------------------------------- */

int es_h264_avcc_next(const uint8_t *au, size_t len, unsigned length_size, size_t *off,
                      const uint8_t **nal, size_t *nal_len)
{
    if (!off || !nal || !nal_len || (!au && len)) return ES_EINVAL;
    if (length_size != 1 && length_size != 2 && length_size != 4) return ES_EINVAL;
    if (*off >= len) return 0;
    if (len - *off < length_size) return ES_EPROTO;
    size_t n = 0;
    for (unsigned i = 0; i < length_size; i++) n = n << 8 | au[*off + i];
    size_t start = *off + length_size;
    if (n > len - start) return ES_EPROTO;
    *nal = au + start;
    *nal_len = n;
    *off = start + n;
    return 1;
}

/* Position of the next 00 00 01 at or after `from`, or `len`. */
static size_t find_start_code(const uint8_t *buf, size_t len, size_t from)
{
    for (size_t i = from; i + 3 <= len; i++) {
        if (buf[i + 2] > 1) {
            i += 2; /* none of the three can begin a start code ending before i + 5 */
            continue;
        }
        if (buf[i] == 0 && buf[i + 1] == 0 && buf[i + 2] == 1) return i;
    }
    return len;
}

int es_h264_annexb_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **nal,
                        size_t *nal_len)
{
    if (!off || !nal || !nal_len || (!buf && len)) return ES_EINVAL;
    while (*off < len) {
        size_t sc = find_start_code(buf, len, *off);
        if (sc >= len) {
            *off = len;
            return 0;
        }
        size_t start = sc + 3;
        size_t next = find_start_code(buf, len, start);
        size_t end = next;
        /* The zero byte of a 4-byte start code and trailing_zero_8bits belong to no NAL. */
        while (end > start && buf[end - 1] == 0) end--;
        *off = next;
        if (end > start) {
            *nal = buf + start;
            *nal_len = end - start;
            return 1;
        }
    }
    return 0;
}

/* ---- Packetizer ----------------------------------------------------------------------------- */

/* NAL units the packetizer never sends: delimiters, filler, and the types H.264 leaves
 * unspecified, which RTP reuses for its own structures (a receiver would misread them). */
static bool dropped(const uint8_t *nal, size_t len)
{
    if (len == 0) return true;
    uint8_t type = nal[0] & 0x1f;
    return type == ES_H264_NAL_AUD || type == ES_H264_NAL_FILLER || type == 0 || type >= 24;
}

static bool param_set(const uint8_t *nal) { return (nal[0] & 0x1f) == 7 || (nal[0] & 0x1f) == 8; }

typedef struct packetizer {
    size_t max;
    es_h264_emit_fn emit;
    void *user;
    int count;                          /* payloads emitted */
    uint8_t buf[ES_H264_PAYLOAD_MAX];   /* STAP-A being built, or one FU-A fragment */
    size_t stap_len;                    /* bytes of buf in the STAP-A, 0 when none pending */
    unsigned stap_units;
    const uint8_t *stap_first;          /* the pending STAP-A's only unit, sent alone if so */
    size_t stap_first_len;
} packetizer_t;

static void out(packetizer_t *p, const uint8_t *payload, size_t len, bool marker)
{
    p->emit(p->user, payload, len, marker);
    p->count++;
}

static void stap_flush(packetizer_t *p, bool marker)
{
    if (p->stap_units == 1)
        out(p, p->stap_first, p->stap_first_len, marker); /* a STAP-A of one is a waste */
    else if (p->stap_units > 1)
        out(p, p->buf, p->stap_len, marker);
    p->stap_len = 0;
    p->stap_units = 0;
}

/* Adds a parameter set to the pending STAP-A when it fits (§5.7.1: 16-bit size, NAL unit). */
static bool stap_add(packetizer_t *p, const uint8_t *nal, size_t len)
{
    size_t need = (p->stap_units == 0 ? 1 : 0) + 2 + len;
    if ((p->stap_units == 0 ? 0 : p->stap_len) + need > p->max) return false;
    if (p->stap_units == 0) {
        p->buf[0] = ES_H264_NAL_STAP_A;
        p->stap_len = 1;
        p->stap_first = nal;
        p->stap_first_len = len;
    }
    /* STAP-A header: F is the OR of the units' F bits, NRI their maximum. */
    uint8_t f = (uint8_t)((p->buf[0] | nal[0]) & 0x80);
    uint8_t nri_a = p->buf[0] & 0x60, nri_b = nal[0] & 0x60;
    uint8_t nri = nri_a > nri_b ? nri_a : nri_b;
    p->buf[0] = (uint8_t)(f | nri | ES_H264_NAL_STAP_A);
    es_wr16(p->buf + p->stap_len, (uint16_t)len);
    memcpy(p->buf + p->stap_len + 2, nal, len);
    p->stap_len += 2 + len;
    p->stap_units++;
    return true;
}

/* One NAL unit as a single NAL unit packet or FU-A fragments (§5.8). */
static void send_nal(packetizer_t *p, const uint8_t *nal, size_t len, bool last)
{
    if (len <= p->max) {
        out(p, nal, len, last);
        return;
    }
    size_t data = len - 1, room = p->max - 2;
    size_t frags = (data + room - 1) / room;
    size_t base = data / frags, extra = data % frags; /* the first `extra` carry one more */
    const uint8_t *src = nal + 1;
    for (size_t i = 0; i < frags; i++) {
        size_t n = base + (i < extra ? 1 : 0);
        p->buf[0] = (uint8_t)((nal[0] & 0xe0) | ES_H264_NAL_FU_A);
        p->buf[1] = (uint8_t)((i == 0 ? 0x80 : 0) | (i + 1 == frags ? 0x40 : 0) | (nal[0] & 0x1f));
        memcpy(p->buf + 2, src, n);
        src += n;
        out(p, p->buf, n + 2, last && i + 1 == frags);
    }
}

/* The next NAL unit to send, in order, of: the injected SPS and PPS, then the access unit's. */
static void send_unit(packetizer_t *p, const uint8_t *nal, size_t len, bool last)
{
    if (param_set(nal)) {
        if (stap_add(p, nal, len)) {
            if (last) stap_flush(p, true);
            return;
        }
        stap_flush(p, false);
        if (stap_add(p, nal, len)) {
            if (last) stap_flush(p, true);
            return;
        }
        send_nal(p, nal, len, last); /* too large for any STAP-A */
        return;
    }
    stap_flush(p, false);
    send_nal(p, nal, len, last);
}

int es_h264_packetize(const uint8_t *au, size_t len, unsigned length_size, bool key,
                      const es_h264_config_t *cfg, size_t max_payload, es_h264_emit_fn emit,
                      void *user)
{
    if (!emit || (!au && len)) return ES_EINVAL;
    if (length_size != 1 && length_size != 2 && length_size != 4) return ES_EINVAL;
    if (max_payload < 3 || max_payload > ES_H264_PAYLOAD_MAX) return ES_EINVAL;

    /* Pass 1: validate and look. */
    size_t off = 0, nal_len, sendable = 0;
    const uint8_t *nal;
    bool idr = false, has_sps = false, has_pps = false;
    int rc;
    while ((rc = es_h264_avcc_next(au, len, length_size, &off, &nal, &nal_len)) == 1) {
        if (dropped(nal, nal_len)) continue;
        sendable++;
        uint8_t type = nal[0] & 0x1f;
        idr = idr || type == ES_H264_NAL_IDR;
        has_sps = has_sps || type == ES_H264_NAL_SPS;
        has_pps = has_pps || type == ES_H264_NAL_PPS;
    }
    if (rc < 0) return rc;
    if (sendable == 0) return 0;

    packetizer_t p;
    p.max = max_payload;
    p.emit = emit;
    p.user = user;
    p.count = 0;
    p.stap_len = 0;
    p.stap_units = 0;
    p.stap_first = NULL;
    p.stap_first_len = 0;

    /* Pass 2: emit. A receiver joining at this key frame needs the parameter sets first
     * (RTMP sends them once, in the sequence header, not before every IDR). */
    if ((idr || key) && !(has_sps && has_pps) && cfg && cfg->sps_len && cfg->pps_len &&
        cfg->sps_len <= sizeof cfg->sps && cfg->pps_len <= sizeof cfg->pps &&
        (cfg->sps[0] & 0x1f) == ES_H264_NAL_SPS && (cfg->pps[0] & 0x1f) == ES_H264_NAL_PPS) {
        send_unit(&p, cfg->sps, cfg->sps_len, false);
        send_unit(&p, cfg->pps, cfg->pps_len, false);
    }
    off = 0;
    size_t sent = 0;
    while (es_h264_avcc_next(au, len, length_size, &off, &nal, &nal_len) == 1) {
        if (dropped(nal, nal_len)) continue;
        sent++;
        send_unit(&p, nal, nal_len, sent == sendable);
    }
    return p.count;
}

/* ---- Depacketizer --------------------------------------------------------------------------- */

/* A packet held in the reorder window, at slot seq % ES_H264_DEPACK_WINDOW. */
typedef struct slot {
    bool used;
    bool bad;            /* malformed: takes its sequence number, breaks its access unit */
    bool marker;
    uint16_t seq;
    uint32_t ts;
    uint64_t arrival_us;
    uint8_t *buf;        /* grows to the largest payload held here, then stays */
    size_t cap, len;
} slot_t;

struct es_h264_depack {
    es_h264_au_fn fn;
    void *user;
    uint64_t max_delay_us;

    /* Reorder window. */
    bool seq_started;
    uint16_t next_seq;   /* the next sequence number to process */
    size_t held;         /* slots in use */
    uint64_t wait_since; /* arrival of the oldest held packet (valid when held > 0) */
    bool jump_pending;   /* a packet far behind was seen: a second in a row restarts */
    uint16_t jump_seq;
    slot_t slots[ES_H264_DEPACK_WINDOW];

    /* Access unit being assembled (in sequence order). */
    bool au_active;      /* packets of au_ts are being collected */
    bool au_broken;
    bool lost_pending;   /* a gap just before the next packet processed */
    uint32_t au_ts;
    uint8_t *au;         /* AVCC, 4-byte lengths; grows up to ES_H264_AU_MAX, then stays */
    size_t au_len, au_cap;
    bool in_fu;          /* an FU-A is open: its NAL length field is at fu_off */
    size_t fu_off;
    uint8_t fu_type;

    bool waiting_key;
    int emitted;         /* during the current call */

    /* In-band parameter sets. */
    uint8_t sps[ES_H264_PARAM_MAX], pps[ES_H264_PARAM_MAX];
    size_t sps_len, pps_len;
    bool params_dirty;

    es_h264_depack_stats_t st;
};

/* Packets further behind than this are not late but maybe a sender that restarted its
 * sequence numbers (RFC 3550 A.1 MAX_MISORDER is 100; browsers restart with a new SSRC, which
 * the caller handles with reset, so be generous). */
enum { DEPACK_MISORDER = 1000 };

static void want_key(es_h264_depack_t *d)
{
    if (!d->waiting_key) d->st.key_requests++;
    d->waiting_key = true;
}

/* Checks a payload's structure (RFC 6184 §5.2, §5.7.1, §5.8) before it is held or used, so that
 * assembly never meets a malformed one. */
static int payload_check(const uint8_t *p, size_t len)
{
    if (len > ES_H264_DEPACK_PAYLOAD_MAX) return ES_E2BIG;
    uint8_t type = p[0] & 0x1f;
    if (type >= 1 && type <= 23) return 0;
    if (type == ES_H264_NAL_STAP_A) {
        size_t off = 1;
        if (off == len) return ES_EPROTO; /* no unit at all */
        while (off < len) {
            if (len - off < 2) return ES_EPROTO;
            size_t n = es_rd16(p + off);
            off += 2;
            if (n == 0 || n > len - off) return ES_EPROTO;
            uint8_t t = p[off] & 0x1f;
            if (t == 0 || t >= 24) return ES_EPROTO;
            off += n;
        }
        return 0;
    }
    if (type == ES_H264_NAL_FU_A) {
        if (len < 2) return ES_EPROTO;
        uint8_t t = p[1] & 0x1f;
        if (t == 0 || t >= 24) return ES_EPROTO;
        return 0;
    }
    return ES_EPROTO; /* 0, STAP-B, MTAP16, MTAP24, FU-B (interleaved mode only), 30, 31 */
}

static bool au_reserve(es_h264_depack_t *d, size_t n)
{
    if (n > ES_H264_AU_MAX - d->au_len) return false;
    size_t need = d->au_len + n;
    if (need <= d->au_cap) return true;
    size_t cap = d->au_cap ? d->au_cap : 16384;
    while (cap < need) cap *= 2;
    if (cap > ES_H264_AU_MAX) cap = ES_H264_AU_MAX;
    uint8_t *b = realloc(d->au, cap);
    if (!b) return false;
    d->au = b;
    d->au_cap = cap;
    return true;
}

/* Appends bytes to the access unit; too large or out of memory breaks it. */
static void au_put(es_h264_depack_t *d, const uint8_t *p, size_t n)
{
    if (d->au_broken) return;
    if (!au_reserve(d, n)) {
        d->au_broken = true;
        return;
    }
    memcpy(d->au + d->au_len, p, n);
    d->au_len += n;
}

/* Delimiters and filler are not kept (FLV/RTMP do not carry them; the packetizer drops them). */
static bool kept(uint8_t type) { return type != ES_H264_NAL_AUD && type != ES_H264_NAL_FILLER; }

static void au_nal(es_h264_depack_t *d, const uint8_t *nal, size_t n)
{
    if (!kept(nal[0] & 0x1f)) return;
    uint8_t len[4];
    es_wr32(len, (uint32_t)n);
    au_put(d, len, 4);
    au_put(d, nal, n);
}

static void keep_param(uint8_t *dst, size_t *dst_len, bool *dirty, const uint8_t *nal, size_t n)
{
    if (n > ES_H264_PARAM_MAX) return;
    if (*dst_len == n && memcmp(dst, nal, n) == 0) return;
    memcpy(dst, nal, n);
    *dst_len = n;
    *dirty = true;
}

/* The access unit being assembled is complete: emit it or drop it. */
static void au_finish(es_h264_depack_t *d)
{
    if (!d->au_active) return;
    d->au_active = false;
    if (d->in_fu) d->au_broken = true; /* an FU-A without its end */
    d->in_fu = false;
    if (d->au_broken) {
        d->st.aus_broken++;
        want_key(d);
        return;
    }
    bool key = false, params = false, slice = false;
    size_t off = 0, n;
    const uint8_t *nal;
    while (es_h264_avcc_next(d->au, d->au_len, 4, &off, &nal, &n) == 1) {
        uint8_t type = nal[0] & 0x1f; /* n >= 1: assembly never appends an empty NAL */
        key = key || type == ES_H264_NAL_IDR;
        slice = slice || (type >= ES_H264_NAL_SLICE && type <= ES_H264_NAL_IDR);
        if (type == ES_H264_NAL_SPS) {
            params = true;
            keep_param(d->sps, &d->sps_len, &d->params_dirty, nal, n);
        } else if (type == ES_H264_NAL_PPS) {
            params = true;
            keep_param(d->pps, &d->pps_len, &d->params_dirty, nal, n);
        }
    }
    if (!slice || (d->waiting_key && !key)) {
        d->st.aus_skipped++;
        if (slice) want_key(d);
        return;
    }
    d->waiting_key = false;
    es_h264_au_t au = {
        .data = d->au,
        .len = d->au_len,
        .rtp_ts = d->au_ts,
        .key = key,
        .has_params = params,
        .params_changed = d->params_dirty && d->sps_len && d->pps_len,
    };
    if (au.params_changed) d->params_dirty = false;
    d->st.aus++;
    d->emitted++;
    d->fn(d->user, &au);
}

/* The next packet in sequence order. `bad` packets only break their access unit. */
static void assemble(es_h264_depack_t *d, uint32_t ts, bool marker, const uint8_t *p, size_t len,
                     bool bad)
{
    if (bad) {
        d->lost_pending = true; /* as if lost: the packet's content is unknown */
        return;
    }
    if (len == 0) return; /* padding only (RFC 3550 §5.1): belongs to no access unit */
    if (d->au_active && ts != d->au_ts) {
        if (d->lost_pending) d->au_broken = true; /* its tail may be what was lost */
        au_finish(d);
    }
    if (!d->au_active) {
        d->au_active = true;
        d->au_ts = ts;
        d->au_len = 0;
        d->au_broken = false;
        d->in_fu = false;
    }
    /* Lost packets may have belonged to this access unit (its beginning, when it is new). */
    if (d->lost_pending) d->au_broken = true;
    d->lost_pending = false;

    uint8_t type = p[0] & 0x1f;
    if (type == ES_H264_NAL_FU_A) {
        bool start = p[1] & 0x80, end = p[1] & 0x40;
        uint8_t ntype = p[1] & 0x1f;
        if (start) {
            if (d->in_fu) d->au_broken = true; /* the previous one lost its end */
            d->in_fu = true;
            d->fu_type = ntype;
            d->fu_off = d->au_len;
            /* §5.8: the NAL header is the FU indicator's F and NRI with the FU header's type. */
            uint8_t hdr[5] = {0, 0, 0, 0, (uint8_t)((p[0] & 0xe0) | ntype)};
            au_put(d, hdr, sizeof hdr);
        } else if (!d->in_fu || d->fu_type != ntype) {
            d->au_broken = true; /* its start is missing */
            d->in_fu = false;
        }
        if (d->in_fu) au_put(d, p + 2, len - 2);
        if (end && d->in_fu) {
            d->in_fu = false;
            if (!d->au_broken) {
                size_t n = d->au_len - d->fu_off - 4;
                if (kept(ntype))
                    es_wr32(d->au + d->fu_off, (uint32_t)n);
                else
                    d->au_len = d->fu_off;
            }
        }
    } else {
        if (d->in_fu) { /* the open FU-A lost its end */
            d->au_broken = true;
            d->in_fu = false;
        }
        if (type == ES_H264_NAL_STAP_A) {
            for (size_t off = 1; off < len;) { /* sizes checked by payload_check */
                size_t n = es_rd16(p + off);
                au_nal(d, p + off + 2, n);
                off += 2 + n;
            }
        } else {
            au_nal(d, p, len);
        }
    }
    if (marker) au_finish(d);
}

static slot_t *slot_of(es_h264_depack_t *d, uint16_t seq)
{
    return &d->slots[seq % ES_H264_DEPACK_WINDOW];
}

/* Processes held packets from next_seq on while there is no gap. */
static void drain(es_h264_depack_t *d)
{
    while (d->held) {
        slot_t *s = slot_of(d, d->next_seq);
        if (!s->used || s->seq != d->next_seq) break;
        s->used = false;
        d->held--;
        d->next_seq++;
        assemble(d, s->ts, s->marker, s->buf, s->len, s->bad);
    }
}

/* Gives up the missing sequence numbers before the first held packet. */
static void skip_gap(es_h264_depack_t *d)
{
    for (unsigned i = 0; i < ES_H264_DEPACK_WINDOW && d->held; i++) {
        slot_t *s = slot_of(d, d->next_seq);
        if (s->used && s->seq == d->next_seq) break;
        d->st.lost++;
        d->lost_pending = true;
        d->next_seq++;
    }
}

static void update_wait(es_h264_depack_t *d)
{
    uint64_t oldest = UINT64_MAX;
    for (unsigned i = 0; i < ES_H264_DEPACK_WINDOW; i++)
        if (d->slots[i].used && d->slots[i].arrival_us < oldest) oldest = d->slots[i].arrival_us;
    d->wait_since = oldest;
}

/* Gives up the gaps in front of packets held for max_delay_us or more. */
static void expire(es_h264_depack_t *d, uint64_t now_us)
{
    while (d->held && now_us >= d->wait_since && now_us - d->wait_since >= d->max_delay_us) {
        skip_gap(d);
        drain(d);
        update_wait(d);
    }
}

es_h264_depack_t *es_h264_depack_new(uint64_t max_delay_us, es_h264_au_fn fn, void *user)
{
    if (!fn) return NULL;
    es_h264_depack_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->fn = fn;
    d->user = user;
    d->max_delay_us = max_delay_us ? max_delay_us : ES_H264_DEPACK_DELAY_US;
    d->waiting_key = true;
    d->st.key_requests = 1;
    return d;
}

void es_h264_depack_free(es_h264_depack_t *d)
{
    if (!d) return;
    for (unsigned i = 0; i < ES_H264_DEPACK_WINDOW; i++) free(d->slots[i].buf);
    free(d->au);
    free(d);
}

void es_h264_depack_reset(es_h264_depack_t *d)
{
    if (!d) return;
    for (unsigned i = 0; i < ES_H264_DEPACK_WINDOW; i++) d->slots[i].used = false;
    d->held = 0;
    d->seq_started = false;
    d->jump_pending = false;
    d->au_active = false;
    d->au_broken = false;
    d->lost_pending = false;
    d->au_len = 0;
    d->in_fu = false;
    d->sps_len = d->pps_len = 0;
    d->params_dirty = false;
    want_key(d);
}

/* Holds a packet in its slot (copying the payload). */
static int hold(es_h264_depack_t *d, uint16_t seq, uint32_t ts, bool marker, const uint8_t *p,
                size_t len, bool bad, uint64_t now_us)
{
    slot_t *s = slot_of(d, seq);
    if (!bad && len > s->cap) {
        uint8_t *b = realloc(s->buf, len);
        if (!b) return ES_ENOMEM;
        s->buf = b;
        s->cap = len;
    }
    if (!bad && len) memcpy(s->buf, p, len);
    s->used = true;
    s->bad = bad;
    s->marker = marker;
    s->seq = seq;
    s->ts = ts;
    s->len = bad ? 0 : len;
    s->arrival_us = now_us;
    if (d->held++ == 0 || now_us < d->wait_since) d->wait_since = now_us;
    return 0;
}

int es_h264_depack_push(es_h264_depack_t *d, uint16_t seq, uint32_t ts, bool marker,
                        const uint8_t *payload, size_t len, uint64_t now_us)
{
    if (!d || (!payload && len)) return ES_EINVAL;
    d->emitted = 0;
    int check = len ? payload_check(payload, len) : 0;

    if (!d->seq_started) {
        d->seq_started = true;
        d->next_seq = seq;
    }
    int diff = (int16_t)(uint16_t)(seq - d->next_seq);
    bool restart = false;
    if (diff < 0) {
        if (diff >= -DEPACK_MISORDER) {
            d->st.late++;
            d->jump_pending = false;
            expire(d, now_us);
            return d->emitted;
        }
        /* Far behind: two in a row mean the sender restarted its sequence numbers. */
        if (!d->jump_pending || seq != (uint16_t)(d->jump_seq + 1)) {
            d->jump_pending = true;
            d->jump_seq = seq;
            d->st.late++;
            expire(d, now_us);
            return d->emitted;
        }
        restart = true;
    }
    d->jump_pending = false;
    if (restart || diff >= ES_H264_DEPACK_WINDOW) {
        /* Ahead of the window: process or give up the oldest until it fits. */
        if (restart || diff >= 2 * ES_H264_DEPACK_WINDOW) {
            while (d->held) {
                skip_gap(d);
                drain(d);
            }
            if (!restart) d->st.lost += (uint16_t)(seq - d->next_seq);
            d->lost_pending = true;
            d->next_seq = seq;
        } else {
            uint16_t first = (uint16_t)(seq - ES_H264_DEPACK_WINDOW + 1);
            while (es_rtp_seq_newer(first, d->next_seq)) {
                slot_t *s = slot_of(d, d->next_seq);
                if (s->used && s->seq == d->next_seq) {
                    drain(d);
                } else {
                    d->st.lost++;
                    d->lost_pending = true;
                    d->next_seq++;
                }
            }
            drain(d);
        }
        if (d->held) update_wait(d);
    }

    slot_t *s = slot_of(d, seq);
    if (s->used && s->seq == seq) {
        d->st.duplicates++;
        expire(d, now_us);
        return d->emitted;
    }
    if (check < 0) d->st.malformed++;
    else d->st.packets++;
    if (seq == d->next_seq && d->held == 0) {
        /* The steady state: in order, nothing held, no copy. */
        d->next_seq++;
        assemble(d, ts, marker, payload, len, check < 0);
    } else {
        int rc = hold(d, seq, ts, marker, payload, len, check < 0, now_us);
        if (rc < 0) {
            /* Not held: its sequence number will be given up as lost. */
            expire(d, now_us);
            return rc;
        }
        drain(d);
        if (d->held) update_wait(d);
    }
    expire(d, now_us);
    return check < 0 ? check : d->emitted;
}

int es_h264_depack_handle_timeout(es_h264_depack_t *d, uint64_t now_us)
{
    if (!d) return ES_EINVAL;
    d->emitted = 0;
    expire(d, now_us);
    return d->emitted;
}

uint64_t es_h264_depack_next_timeout(const es_h264_depack_t *d)
{
    if (!d || !d->held) return UINT64_MAX;
    if (d->wait_since > UINT64_MAX - d->max_delay_us) return UINT64_MAX;
    return d->wait_since + d->max_delay_us;
}

bool es_h264_depack_key_needed(const es_h264_depack_t *d) { return d && d->waiting_key; }

int es_h264_depack_params(const es_h264_depack_t *d, const uint8_t **sps, size_t *sps_len,
                          const uint8_t **pps, size_t *pps_len)
{
    if (!d || !sps || !sps_len || !pps || !pps_len) return ES_EINVAL;
    if (!d->sps_len || !d->pps_len) return ES_ENOENT;
    *sps = d->sps;
    *sps_len = d->sps_len;
    *pps = d->pps;
    *pps_len = d->pps_len;
    return 0;
}

es_h264_depack_stats_t es_h264_depack_stats(const es_h264_depack_t *d)
{
    es_h264_depack_stats_t z;
    memset(&z, 0, sizeof z);
    return d ? d->st : z;
}
