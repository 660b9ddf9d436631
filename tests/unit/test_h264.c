/* Unit tests for src/rtp/h264.c: AVCDecoderConfigurationRecord parse/write, SPS parsing on real
 * x264 parameter sets (baseline 320x240, high 1280x720, high 1920x1080 with cropping, 4:4:4 and
 * interlaced 1080) and on a hand-built high-profile SPS with scaling lists and emulation
 * prevention, profile-level-id, NAL iteration, and the RFC 6184 packetizer (single NAL unit,
 * STAP-A before IDR, FU-A boundaries and reassembly, marker, dropped NAL types, bad AVCC), and
 * the depacketizer: round trips through the packetizer, reordering, duplicates, loss inside an
 * FU-A and of whole frames (dropped until the next IDR, key frame wanted), sequence number wrap,
 * timestamp change without marker, malformed payloads, the size cap and SPS/PPS tracking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/h264.h"

#include <stdlib.h>
#include <string.h>

/* Real parameter sets from `ffmpeg -f lavfi -i testsrc2=size=WxH -frames:v 1 -c:v libx264`
 * (libx264 as shipped in Debian 12). */
static const uint8_t sps_base240[] = {0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb,
                                      0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
                                      0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80};
static const uint8_t pps_base240[] = {0x68, 0xcb, 0x83, 0xcb, 0x20};
static const uint8_t sps_high720[] = {0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05,
                                      0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
                                      0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x19, 0x60};
static const uint8_t pps_high[] = {0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0};
static const uint8_t sps_high1080[] = {0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02,
                                       0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04,
                                       0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x60, 0xc6, 0x58};
/* -pix_fmt yuv444p: High 4:4:4 Predictive (244), chroma_format_idc 3. */
static const uint8_t sps_444_1080[] = {0x67, 0xf4, 0x00, 0x28, 0x91, 0x9b, 0x28, 0x0f, 0x00,
                                       0x44, 0xfc, 0x4e, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00,
                                       0x20, 0x00, 0x00, 0x06, 0x41, 0xe3, 0x06, 0x32, 0xc0};
/* -x264-params interlaced=1: frame_mbs_only_flag 0. */
static const uint8_t sps_int1080[] = {0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x04,
                                      0x4f, 0xde, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20,
                                      0x00, 0x00, 0x06, 0x43, 0xe2, 0xc5, 0xb2, 0xc0};

static void test_sps_real(void **state)
{
    es_h264_sps_t s;
    assert_int_equal(es_h264_sps_parse(sps_base240, sizeof sps_base240, &s), 0);
    assert_int_equal(s.profile_idc, 66);
    assert_int_equal(s.constraints, 0xc0);
    assert_int_equal(s.level_idc, 13);
    assert_int_equal(s.chroma_format_idc, 1);
    assert_true(s.frame_mbs_only);
    assert_int_equal(s.width, 320);
    assert_int_equal(s.height, 240);

    assert_int_equal(es_h264_sps_parse(sps_high720, sizeof sps_high720, &s), 0);
    assert_int_equal(s.profile_idc, 100);
    assert_int_equal(s.level_idc, 31);
    assert_int_equal(s.bit_depth_luma, 8);
    assert_int_equal(s.width, 1280);
    assert_int_equal(s.height, 720);

    assert_int_equal(es_h264_sps_parse(sps_high1080, sizeof sps_high1080, &s), 0);
    assert_int_equal(s.level_idc, 40);
    assert_int_equal(s.width, 1920);
    assert_int_equal(s.height, 1080); /* 1088 coded, 8 cropped in 2-line units */

    assert_int_equal(es_h264_sps_parse(sps_444_1080, sizeof sps_444_1080, &s), 0);
    assert_int_equal(s.profile_idc, 244);
    assert_int_equal(s.chroma_format_idc, 3);
    assert_int_equal(s.width, 1920);
    assert_int_equal(s.height, 1080); /* 1-line crop units in 4:4:4 */

    assert_int_equal(es_h264_sps_parse(sps_int1080, sizeof sps_int1080, &s), 0);
    assert_false(s.frame_mbs_only);
    assert_int_equal(s.width, 1920);
    assert_int_equal(s.height, 1080); /* 2 x 34 map units of 16, 4-line crop units */

    /* Every truncation up to the cropping fields fails cleanly; a PPS is not an SPS. */
    for (size_t n = 0; n < 8; n++)
        assert_int_equal(es_h264_sps_parse(sps_high1080, n, &s), ES_EPROTO);
    assert_int_equal(es_h264_sps_parse(pps_high, sizeof pps_high, &s), ES_EPROTO);
    assert_int_equal(es_h264_sps_parse(NULL, 4, &s), ES_EINVAL);
}

/* A bit writer for the hand-built SPS. */
typedef struct bw {
    uint8_t b[256];
    size_t bits;
} bw_t;

static void put(bw_t *w, uint32_t v, unsigned n)
{
    for (unsigned i = n; i-- > 0; w->bits++)
        if ((v >> i) & 1) w->b[w->bits / 8] |= (uint8_t)(0x80 >> (w->bits % 8));
}

static void put_ue(bw_t *w, uint32_t v)
{
    uint64_t x = (uint64_t)v + 1;
    unsigned n = 0;
    while ((x >> n) > 1) n++;
    put(w, 0, n);
    put(w, (uint32_t)x, n + 1);
}

static void put_se(bw_t *w, int32_t v)
{
    put_ue(w, v > 0 ? (uint32_t)(2 * v - 1) : (uint32_t)(-2 * (int64_t)v));
}

/* RBSP -> NAL payload with emulation prevention (§7.4.1). */
static size_t escape(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t o = 0, zeros = 0;
    for (size_t i = 0; i < n; i++) {
        if (zeros >= 2 && in[i] <= 3) {
            out[o++] = 3;
            zeros = 0;
        }
        out[o++] = in[i];
        zeros = in[i] == 0 ? zeros + 1 : 0;
    }
    return o;
}

static void test_sps_scaling_lists(void **state)
{
    bw_t w;
    memset(&w, 0, sizeof w);
    put(&w, 100, 8);       /* profile_idc: High */
    put(&w, 0x0c, 8);      /* constraint_set4/5 */
    put(&w, 41, 8);        /* level_idc */
    put_ue(&w, 3);         /* seq_parameter_set_id */
    put_ue(&w, 1);         /* chroma_format_idc */
    put_ue(&w, 2);         /* bit_depth_luma_minus8: 10-bit */
    put_ue(&w, 2);         /* bit_depth_chroma_minus8 */
    put(&w, 0, 1);         /* qpprime_y_zero_transform_bypass_flag */
    put(&w, 1, 1);         /* seq_scaling_matrix_present_flag */
    for (int i = 0; i < 8; i++) {
        put(&w, i != 2, 1); /* list 2 absent (fall-back rule) */
        if (i == 2) continue;
        if (i == 0) {
            put_se(&w, -8); /* nextScale 0 at once: use the default matrix */
        } else {
            unsigned size = i < 6 ? 16 : 64;
            for (unsigned j = 0; j < size; j++) put_se(&w, j == 5 ? 100 : (int)(j % 3) - 1);
        }
    }
    put_ue(&w, 0);           /* log2_max_frame_num_minus4 */
    put_ue(&w, 1);           /* pic_order_cnt_type 1 */
    put(&w, 0, 1);           /* delta_pic_order_always_zero_flag */
    put_se(&w, -2);          /* offset_for_non_ref_pic */
    put_se(&w, 1);           /* offset_for_top_to_bottom_field */
    put_ue(&w, 1);           /* num_ref_frames_in_pic_order_cnt_cycle */
    put_se(&w, -(1 << 29));  /* offset_for_ref_frame: 30 leading zeros force a 0x000003 */
    put_ue(&w, 4);           /* max_num_ref_frames */
    put(&w, 0, 1);           /* gaps_in_frame_num_value_allowed_flag */
    put_ue(&w, 119);         /* pic_width_in_mbs_minus1: 1920 */
    put_ue(&w, 67);          /* pic_height_in_map_units_minus1: 1088 */
    put(&w, 1, 1);           /* frame_mbs_only_flag */
    put(&w, 1, 1);           /* direct_8x8_inference_flag */
    put(&w, 1, 1);           /* frame_cropping_flag */
    put_ue(&w, 2);           /* left: 4 pixels */
    put_ue(&w, 0);
    put_ue(&w, 0);
    put_ue(&w, 4);           /* bottom: 8 lines */
    put(&w, 0, 1);           /* vui_parameters_present_flag */
    put(&w, 1, 1);           /* rbsp_stop_one_bit */
    size_t rbsp_len = (w.bits + 7) / 8;

    uint8_t nal[320];
    nal[0] = 0x67;
    size_t len = 1 + escape(w.b, rbsp_len, nal + 1);
    assert_true(len > 1 + rbsp_len); /* emulation prevention really happened */

    es_h264_sps_t s;
    assert_int_equal(es_h264_sps_parse(nal, len, &s), 0);
    assert_int_equal(s.profile_idc, 100);
    assert_int_equal(s.constraints, 0x0c);
    assert_int_equal(s.level_idc, 41);
    assert_int_equal(s.sps_id, 3);
    assert_int_equal(s.bit_depth_luma, 10);
    assert_int_equal(s.bit_depth_chroma, 10);
    assert_int_equal(s.width, 1916);
    assert_int_equal(s.height, 1080);

    /* Cut anywhere before the cropping: an error, never a read past the end. */
    for (size_t n = 0; n + 2 < len; n++) {
        es_h264_sps_t u;
        (void)es_h264_sps_parse(nal, n, &u);
    }
    assert_int_equal(es_h264_sps_parse(nal, len / 2, &s), ES_EPROTO);
}

static void test_profile_level_id(void **state)
{
    char id[7];
    assert_int_equal(es_h264_profile_level_id(sps_base240, sizeof sps_base240, id), 0);
    assert_string_equal(id, "42c00d");
    assert_int_equal(es_h264_profile_level_id(sps_high1080, sizeof sps_high1080, id), 0);
    assert_string_equal(id, "640028");
    assert_int_equal(es_h264_profile_level_id(sps_444_1080, 4, id), 0);
    assert_string_equal(id, "f40028");
    assert_int_equal(es_h264_profile_level_id(sps_base240, 3, id), ES_EPROTO);
    assert_int_equal(es_h264_profile_level_id(pps_high, sizeof pps_high, id), ES_EPROTO);
}

static void test_config_round_trip(void **state)
{
    uint8_t rec[128];
    int n = es_h264_config_write(sps_base240, sizeof sps_base240, pps_base240,
                                 sizeof pps_base240, rec, sizeof rec);
    assert_int_equal(n, 6 + 2 + 24 + 1 + 2 + 5); /* baseline: no high-profile trailer */
    const uint8_t head[] = {0x01, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0x00, 0x18};
    assert_memory_equal(rec, head, sizeof head);
    es_h264_config_t c;
    assert_int_equal(es_h264_config_parse(rec, (size_t)n, &c), 0);
    assert_int_equal(c.profile_idc, 66);
    assert_int_equal(c.compat, 0xc0);
    assert_int_equal(c.level_idc, 13);
    assert_int_equal(c.length_size, 4);
    assert_int_equal(c.sps_len, sizeof sps_base240);
    assert_memory_equal(c.sps, sps_base240, sizeof sps_base240);
    assert_int_equal(c.pps_len, sizeof pps_base240);
    assert_memory_equal(c.pps, pps_base240, sizeof pps_base240);
    for (int i = 0; i < n; i++)
        assert_int_equal(es_h264_config_parse(rec, (size_t)i, &c), ES_EPROTO);

    /* High profile: the trailer (4:2:0, 8-bit, no SPS extensions), which the parser skips. */
    n = es_h264_config_write(sps_high1080, sizeof sps_high1080, pps_high, sizeof pps_high, rec,
                             sizeof rec);
    assert_int_equal(n, 6 + 2 + 27 + 1 + 2 + 6 + 4);
    const uint8_t tail[] = {0xfd, 0xf8, 0xf8, 0x00};
    assert_memory_equal(rec + n - 4, tail, 4);
    assert_int_equal(es_h264_config_parse(rec, (size_t)n, &c), 0);
    assert_int_equal(c.profile_idc, 100);
    assert_memory_equal(c.sps, sps_high1080, sizeof sps_high1080);
    assert_memory_equal(c.pps, pps_high, sizeof pps_high);
    assert_int_equal(es_h264_config_write(sps_high1080, sizeof sps_high1080, pps_high,
                                          sizeof pps_high, rec, (size_t)n - 1), ES_E2BIG);
    assert_int_equal(es_h264_config_write(pps_high, sizeof pps_high, sps_high1080,
                                          sizeof sps_high1080, rec, sizeof rec), ES_EPROTO);
}

static void test_config_parse_cases(void **state)
{
    es_h264_config_t c;
    /* Two SPS (first copied), two PPS, 2-byte lengths, reserved bits zero (tolerated). */
    const uint8_t two[] = {0x01, 0x42, 0xc0, 0x1e, 0x01, 0xe2, 0x00, 0x04, 0x67, 0x42, 0xc0,
                           0x1e, 0x00, 0x02, 0x67, 0x00, 0x02, 0x00, 0x02, 0x68, 0xce, 0x00,
                           0x01, 0x68};
    assert_int_equal(es_h264_config_parse(two, sizeof two, &c), 0);
    assert_int_equal(c.length_size, 2);
    assert_int_equal(c.sps_len, 4);
    assert_int_equal(c.pps_len, 2);
    assert_int_equal(c.pps[1], 0xce);

    uint8_t bad[sizeof two];
    memcpy(bad, two, sizeof two);
    bad[0] = 2; /* configurationVersion */
    assert_int_equal(es_h264_config_parse(bad, sizeof bad, &c), ES_EPROTO);
    memcpy(bad, two, sizeof two);
    bad[4] = 0xfe; /* lengthSizeMinusOne 2 */
    assert_int_equal(es_h264_config_parse(bad, sizeof bad, &c), ES_EPROTO);
    memcpy(bad, two, sizeof two);
    bad[5] = 0xe0; /* no SPS */
    assert_int_equal(es_h264_config_parse(bad, sizeof bad, &c), ES_EPROTO);
    const uint8_t no_pps[] = {0x01, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0x00, 0x01, 0x67, 0x00};
    assert_int_equal(es_h264_config_parse(no_pps, sizeof no_pps, &c), ES_EPROTO);
    const uint8_t empty_sps[] = {0x01, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0x00, 0x00, 0x01, 0x00,
                                 0x01, 0x68};
    assert_int_equal(es_h264_config_parse(empty_sps, sizeof empty_sps, &c), ES_EPROTO);

    /* An SPS longer than ES_H264_PARAM_MAX. */
    uint8_t big[6 + 2 + 300 + 1 + 2 + 1];
    memset(big, 0, sizeof big);
    big[0] = 1, big[4] = 0xff, big[5] = 0xe1, big[6] = 300 >> 8, big[7] = 300 & 0xff;
    big[8] = 0x67;
    big[308] = 1, big[310] = 1, big[311] = 0x68;
    assert_int_equal(es_h264_config_parse(big, sizeof big, &c), ES_E2BIG);
}

static void test_nal_iteration(void **state)
{
    const uint8_t annexb[] = {0x00, 0x00, 0x00, 0x01, 0x09, 0xf0, 0x00, 0x00, 0x01, 0x67,
                              0x42, 0x00, 0x00, 0x00, 0x01, 0x68, 0xce, 0x00, 0x00, 0x01,
                              0x65, 0x88, 0x00, 0x00};
    const uint8_t *nal;
    size_t off = 0, len, count = 0;
    const size_t lens[] = {2, 2, 2, 2}; /* trailing zeros belong to the next start code */
    const uint8_t types[] = {9, 7, 8, 5};
    while (es_h264_annexb_next(annexb, sizeof annexb, &off, &nal, &len) == 1) {
        assert_true(count < 4);
        assert_int_equal(len, lens[count]);
        assert_int_equal(nal[0] & 0x1f, types[count]);
        count++;
    }
    assert_int_equal(count, 4);
    off = 0;
    assert_int_equal(es_h264_annexb_next((const uint8_t *)"\x12\x34", 2, &off, &nal, &len), 0);

    const uint8_t avcc[] = {0x00, 0x02, 0x09, 0xf0, 0x00, 0x00, 0x00, 0x03, 0x65, 0x88, 0x84};
    off = 0;
    assert_int_equal(es_h264_avcc_next(avcc, sizeof avcc, 2, &off, &nal, &len), 1);
    assert_int_equal(len, 2);
    assert_int_equal(es_h264_avcc_next(avcc, sizeof avcc, 2, &off, &nal, &len), 1);
    assert_int_equal(len, 0); /* an empty NAL unit is reported, not an error */
    assert_int_equal(es_h264_avcc_next(avcc, sizeof avcc, 2, &off, &nal, &len), 1);
    assert_int_equal(len, 3);
    assert_int_equal(nal[0], 0x65);
    assert_int_equal(es_h264_avcc_next(avcc, sizeof avcc, 2, &off, &nal, &len), 0);
    off = 0;
    assert_int_equal(es_h264_avcc_next(avcc, sizeof avcc - 1, 4, &off, &nal, &len), ES_EPROTO);
    assert_int_equal(es_h264_avcc_next(avcc, sizeof avcc, 3, &off, &nal, &len), ES_EINVAL);
}

/* ---- packetizer ---- */

typedef struct pkt {
    uint8_t data[ES_H264_PAYLOAD_MAX];
    size_t len;
    bool marker;
} pkt_t;

typedef struct sink {
    pkt_t p[64];
    size_t n;
} sink_t;

static void collect(void *user, const uint8_t *payload, size_t len, bool marker)
{
    sink_t *s = user;
    assert_true(s->n < 64);
    assert_true(len <= ES_H264_PAYLOAD_MAX);
    memcpy(s->p[s->n].data, payload, len);
    s->p[s->n].len = len;
    s->p[s->n].marker = marker;
    s->n++;
}

/* Appends a NAL unit with a 4-byte length. */
static size_t add_nal(uint8_t *au, size_t off, const uint8_t *nal, size_t len)
{
    au[off] = (uint8_t)(len >> 24);
    au[off + 1] = (uint8_t)(len >> 16);
    au[off + 2] = (uint8_t)(len >> 8);
    au[off + 3] = (uint8_t)len;
    memcpy(au + off + 4, nal, len);
    return off + 4 + len;
}

/* A NAL unit of `len` bytes with header `hdr` and a counting pattern. */
static void make_nal(uint8_t *nal, size_t len, uint8_t hdr)
{
    nal[0] = hdr;
    for (size_t i = 1; i < len; i++) nal[i] = (uint8_t)(i * 7 + 1);
}

static es_h264_config_t cfg_720(void)
{
    es_h264_config_t c;
    memset(&c, 0, sizeof c);
    c.length_size = 4;
    memcpy(c.sps, sps_high720, sizeof sps_high720);
    c.sps_len = sizeof sps_high720;
    memcpy(c.pps, pps_high, sizeof pps_high);
    c.pps_len = sizeof pps_high;
    return c;
}

static void test_packetize_single(void **state)
{
    static uint8_t au[4096], nal[1200];
    sink_t *s = calloc(1, sizeof *s);
    make_nal(nal, 100, 0x41); /* non-IDR slice, NRI 2 */
    size_t len = add_nal(au, 0, nal, 100);
    assert_int_equal(es_h264_packetize(au, len, 4, false, NULL, 1188, collect, s), 1);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->p[0].len, 100);
    assert_memory_equal(s->p[0].data, nal, 100);
    assert_true(s->p[0].marker);

    /* AUD and filler dropped; the marker moves to the last slice. Non-key, no IDR: no SPS. */
    es_h264_config_t c = cfg_720();
    const uint8_t aud[] = {0x09, 0xf0}, filler[] = {0x0c, 0xff, 0xff, 0x80};
    uint8_t sl2[50];
    make_nal(sl2, sizeof sl2, 0x01);
    len = add_nal(au, 0, aud, sizeof aud);
    len = add_nal(au, len, nal, 100);
    len = add_nal(au, len, filler, sizeof filler);
    len = add_nal(au, len, sl2, sizeof sl2);
    len = add_nal(au, len, filler, sizeof filler);
    s->n = 0;
    assert_int_equal(es_h264_packetize(au, len, 4, false, &c, 1188, collect, s), 2);
    assert_memory_equal(s->p[0].data, nal, 100);
    assert_false(s->p[0].marker);
    assert_memory_equal(s->p[1].data, sl2, sizeof sl2);
    assert_true(s->p[1].marker);

    /* Only an AUD: nothing to send. */
    s->n = 0;
    len = add_nal(au, 0, aud, sizeof aud);
    assert_int_equal(es_h264_packetize(au, len, 4, true, &c, 1188, collect, s), 0);
    assert_int_equal(s->n, 0);

    /* 1- and 2-byte lengths. */
    const uint8_t au1[] = {0x03, 0x41, 0x9a, 0x02, 0x02, 0x01, 0x9b};
    s->n = 0;
    assert_int_equal(es_h264_packetize(au1, sizeof au1, 1, false, NULL, 1188, collect, s), 2);
    assert_int_equal(s->p[1].len, 2);
    const uint8_t au2[] = {0x00, 0x03, 0x41, 0x9a, 0x02};
    s->n = 0;
    assert_int_equal(es_h264_packetize(au2, sizeof au2, 2, false, NULL, 1188, collect, s), 1);
    free(s);
}

static void check_stap_sps_pps(const pkt_t *p, const uint8_t *sps, size_t sps_len,
                               const uint8_t *pps, size_t pps_len)
{
    assert_int_equal(p->data[0], 0x78); /* F 0, NRI 3 (max of 3 and 3), type 24 */
    assert_int_equal(p->len, 1 + 2 + sps_len + 2 + pps_len);
    assert_int_equal(p->data[1] << 8 | p->data[2], sps_len);
    assert_memory_equal(p->data + 3, sps, sps_len);
    assert_int_equal(p->data[3 + sps_len] << 8 | p->data[4 + sps_len], pps_len);
    assert_memory_equal(p->data + 5 + sps_len, pps, pps_len);
    assert_false(p->marker);
}

static void test_packetize_stap_a(void **state)
{
    static uint8_t au[4096], idr[600];
    sink_t *s = calloc(1, sizeof *s);
    es_h264_config_t c = cfg_720();
    const uint8_t aud[] = {0x09, 0x10}, sei[] = {0x06, 0x05, 0x01, 0xaa, 0x80};
    make_nal(idr, sizeof idr, 0x65);
    size_t len = add_nal(au, 0, aud, sizeof aud);
    len = add_nal(au, len, sei, sizeof sei);
    len = add_nal(au, len, idr, sizeof idr);
    assert_int_equal(es_h264_packetize(au, len, 4, false, &c, 1188, collect, s), 3);
    check_stap_sps_pps(&s->p[0], sps_high720, sizeof sps_high720, pps_high, sizeof pps_high);
    assert_memory_equal(s->p[1].data, sei, sizeof sei);
    assert_false(s->p[1].marker);
    assert_memory_equal(s->p[2].data, idr, sizeof idr);
    assert_true(s->p[2].marker);

    /* In-band SPS and PPS: those go (aggregated), not the configuration's. */
    len = add_nal(au, 0, sps_base240, sizeof sps_base240);
    len = add_nal(au, len, pps_base240, sizeof pps_base240);
    len = add_nal(au, len, idr, sizeof idr);
    s->n = 0;
    assert_int_equal(es_h264_packetize(au, len, 4, true, &c, 1188, collect, s), 2);
    check_stap_sps_pps(&s->p[0], sps_base240, sizeof sps_base240, pps_base240,
                       sizeof pps_base240);
    assert_true(s->p[1].marker);

    /* A key frame without IDR (flagged by FLV) also gets the parameter sets; no config: none. */
    uint8_t islice[40];
    make_nal(islice, sizeof islice, 0x61);
    len = add_nal(au, 0, islice, sizeof islice);
    s->n = 0;
    assert_int_equal(es_h264_packetize(au, len, 4, true, &c, 1188, collect, s), 2);
    assert_int_equal(s->p[0].data[0] & 0x1f, 24);
    s->n = 0;
    len = add_nal(au, 0, idr, sizeof idr);
    assert_int_equal(es_h264_packetize(au, len, 4, false, NULL, 1188, collect, s), 1);

    /* SPS and PPS do not fit one STAP-A together (max 30): each goes as a single NAL unit. */
    s->n = 0;
    assert_int_equal(es_h264_packetize(au, len, 4, false, &c, 30, collect, s), 2 + 22);
    assert_int_equal(s->p[0].len, sizeof sps_high720);
    assert_memory_equal(s->p[0].data, sps_high720, sizeof sps_high720);
    assert_int_equal(s->p[1].len, sizeof pps_high);
    assert_int_equal(s->p[2].data[0] & 0x1f, 28);
    for (size_t i = 0; i < s->n; i++) assert_int_equal(s->p[i].marker, i + 1 == s->n);
    free(s);
}

/* Reassembles FU-A packets p[first..] until E into out; returns the NAL length. */
static size_t fu_reassemble(const pkt_t *p, size_t count, uint8_t *out, size_t *used)
{
    size_t n = 0;
    assert_int_equal(p[0].data[0] & 0x1f, 28);
    assert_true(p[0].data[1] & 0x80);
    out[n++] = (uint8_t)((p[0].data[0] & 0xe0) | (p[0].data[1] & 0x1f));
    for (size_t i = 0; i < count; i++) {
        assert_true(p[i].len >= 3);
        assert_int_equal(p[i].data[0], p[0].data[0]);
        assert_int_equal(p[i].data[1] & 0x1f, p[0].data[1] & 0x1f);
        assert_int_equal(!!(p[i].data[1] & 0x80), i == 0);
        assert_int_equal(p[i].data[1] & 0x20, 0); /* R */
        memcpy(out + n, p[i].data + 2, p[i].len - 2);
        n += p[i].len - 2;
        if (p[i].data[1] & 0x40) {
            *used = i + 1;
            return n;
        }
    }
    fail_msg("no FU-A end");
    return 0;
}

static void test_packetize_fu_a(void **state)
{
    enum { MAX = 200 };
    static uint8_t au[4096], nal[3 * MAX], back[3 * MAX];
    sink_t *s = calloc(1, sizeof *s);
    const size_t sizes[] = {MAX, MAX + 1, 3 * MAX, MAX + 2, 2 * (MAX - 2) + 1};
    const size_t frags[] = {0, 2, 4, 2, 2};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        make_nal(nal, sizes[k], 0x25); /* NRI 1, IDR */
        size_t len = add_nal(au, 0, nal, sizes[k]);
        s->n = 0;
        int rc = es_h264_packetize(au, len, 4, false, NULL, MAX, collect, s);
        assert_int_equal(rc, s->n);
        for (size_t i = 0; i < s->n; i++) {
            assert_true(s->p[i].len <= MAX);
            assert_int_equal(s->p[i].marker, i + 1 == s->n);
        }
        if (frags[k] == 0) { /* exactly max: a single NAL unit packet */
            assert_int_equal(s->n, 1);
            assert_int_equal(s->p[0].len, MAX);
            assert_memory_equal(s->p[0].data, nal, MAX);
            continue;
        }
        assert_int_equal(s->n, frags[k]);
        assert_int_equal(s->p[0].data[0], 0x3c);     /* F 0, NRI 1, type 28 */
        assert_int_equal(s->p[0].data[1], 0x85);     /* S, type 5 */
        assert_int_equal(s->p[s->n - 1].data[1], 0x45); /* E, type 5 */
        size_t used = 0, n = fu_reassemble(s->p, s->n, back, &used);
        assert_int_equal(used, s->n);
        assert_int_equal(n, sizes[k]);
        assert_memory_equal(back, nal, sizes[k]);
        /* Balanced: fragment sizes differ by at most one byte. */
        size_t lo = SIZE_MAX, hi = 0;
        for (size_t i = 0; i < s->n; i++) {
            lo = s->p[i].len < lo ? s->p[i].len : lo;
            hi = s->p[i].len > hi ? s->p[i].len : hi;
        }
        assert_true(hi - lo <= 1);
    }

    /* F bit and NRI 3 carried; several NAL units, marker only on the very last packet. */
    make_nal(nal, 450, 0xe1);
    uint8_t small[20];
    make_nal(small, sizeof small, 0x41);
    size_t len = add_nal(au, 0, small, sizeof small);
    len = add_nal(au, len, nal, 450);
    len = add_nal(au, len, small, sizeof small);
    len = add_nal(au, len, nal, 450);
    s->n = 0;
    assert_int_equal(es_h264_packetize(au, len, 4, false, NULL, MAX, collect, s), 1 + 3 + 1 + 3);
    assert_int_equal(s->p[1].data[0], 0xfc);
    assert_int_equal(s->p[1].data[1], 0x81);
    size_t used;
    assert_int_equal(fu_reassemble(s->p + 1, 3, back, &used), 450);
    assert_memory_equal(back, nal, 450);
    for (size_t i = 0; i < s->n; i++) assert_int_equal(s->p[i].marker, i == 7);
    free(s);
}

static void test_packetize_malformed(void **state)
{
    static uint8_t au[4096], idr[300];
    sink_t *s = calloc(1, sizeof *s);
    es_h264_config_t c = cfg_720();
    make_nal(idr, sizeof idr, 0x65);
    size_t len = add_nal(au, 0, idr, sizeof idr);
    len = add_nal(au, len, idr, sizeof idr);
    /* The second length runs one byte past the end: nothing at all is emitted. */
    assert_int_equal(es_h264_packetize(au, len - 1, 4, true, &c, 100, collect, s), ES_EPROTO);
    assert_int_equal(s->n, 0);
    /* A truncated length field. */
    len = add_nal(au, 0, idr, sizeof idr);
    assert_int_equal(es_h264_packetize(au, len + 2, 4, true, &c, 100, collect, s), ES_EPROTO);
    assert_int_equal(s->n, 0);
    /* A length of 2^32 - 1. */
    memset(au, 0xff, 8);
    assert_int_equal(es_h264_packetize(au, 8, 4, false, NULL, 100, collect, s), ES_EPROTO);
    assert_int_equal(s->n, 0);

    assert_int_equal(es_h264_packetize(au, len, 3, false, NULL, 100, collect, s), ES_EINVAL);
    assert_int_equal(es_h264_packetize(au, len, 4, false, NULL, 2, collect, s), ES_EINVAL);
    assert_int_equal(es_h264_packetize(au, len, 4, false, NULL, ES_H264_PAYLOAD_MAX + 1, collect,
                                       s), ES_EINVAL);
    assert_int_equal(es_h264_packetize(au, len, 4, false, NULL, 100, NULL, s), ES_EINVAL);
    assert_int_equal(es_h264_packetize(NULL, 0, 4, false, NULL, 100, collect, s), 0);
    assert_int_equal(s->n, 0);

    /* The smallest max (3): every fragment carries one byte. */
    const uint8_t five[] = {0, 0, 0, 5, 0x65, 1, 2, 3, 4};
    assert_int_equal(es_h264_packetize(five, sizeof five, 4, false, NULL, 3, collect, s), 4);
    free(s);
}

/* ---- Depacketizer ---------------------------------------------------------------------------- */

/* RTP packets built by the packetizer. */
typedef struct rtp_pkt {
    uint8_t data[ES_H264_PAYLOAD_MAX];
    size_t len;
    bool marker;
    uint16_t seq;
    uint32_t ts;
} rtp_pkt_t;

typedef struct pkt_list {
    rtp_pkt_t *p;
    size_t n, cap;
    uint16_t seq;  /* next sequence number */
    uint32_t ts;   /* timestamp of the access unit being packetized */
} pkt_list_t;

static void to_list(void *user, const uint8_t *payload, size_t len, bool marker)
{
    pkt_list_t *l = user;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->p = realloc(l->p, l->cap * sizeof *l->p);
        assert_non_null(l->p);
    }
    rtp_pkt_t *p = &l->p[l->n++];
    memcpy(p->data, payload, len);
    p->len = len;
    p->marker = marker;
    p->seq = l->seq++;
    p->ts = l->ts;
}

/* Packetizes an AVCC access unit (4-byte lengths) at timestamp ts; returns its first index. */
static size_t packetize_au(pkt_list_t *l, const uint8_t *au, size_t len, uint32_t ts, size_t max)
{
    size_t first = l->n;
    l->ts = ts;
    assert_true(es_h264_packetize(au, len, 4, false, NULL, max, to_list, l) > 0);
    return first;
}

typedef struct au_rec {
    uint8_t *data;
    size_t len;
    uint32_t ts;
    bool key, params, changed;
} au_rec_t;

typedef struct au_sink {
    au_rec_t a[256];
    size_t n;
} au_sink_t;

static void on_au(void *user, const es_h264_au_t *au)
{
    au_sink_t *s = user;
    assert_true(s->n < 256);
    assert_true(au->len > 0 && au->len <= ES_H264_AU_MAX);
    /* Valid AVCC: the lengths add up, no empty NAL unit, no AUD or filler. */
    size_t off = 0, n;
    const uint8_t *nal;
    int rc;
    while ((rc = es_h264_avcc_next(au->data, au->len, 4, &off, &nal, &n)) == 1) {
        assert_true(n >= 1);
        assert_true((nal[0] & 0x1f) != 9 && (nal[0] & 0x1f) != 12);
    }
    assert_int_equal(rc, 0);
    au_rec_t *r = &s->a[s->n++];
    r->data = malloc(au->len);
    assert_non_null(r->data);
    memcpy(r->data, au->data, au->len);
    r->len = au->len;
    r->ts = au->rtp_ts;
    r->key = au->key;
    r->params = au->has_params;
    r->changed = au->params_changed;
}

static void sink_clear(au_sink_t *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->a[i].data);
    s->n = 0;
}

/* A NAL unit of `len` bytes with header `hdr` and a pattern from `seed`. */
static void fill_nal(uint8_t *nal, size_t len, uint8_t hdr, unsigned seed)
{
    nal[0] = hdr;
    for (size_t i = 1; i < len; i++) nal[i] = (uint8_t)(i * 13 + seed * 101 + 1);
}

/* Frame builders: an IDR access unit with SPS/PPS, or a P slice, into au; returns the length. */
static size_t idr_au(uint8_t *au, size_t idr_len, unsigned seed)
{
    static uint8_t nal[70000];
    size_t len = add_nal(au, 0, sps_high720, sizeof sps_high720);
    len = add_nal(au, len, pps_high, sizeof pps_high);
    fill_nal(nal, idr_len, 0x65, seed);
    return add_nal(au, len, nal, idr_len);
}

static size_t p_au(uint8_t *au, size_t slice_len, unsigned seed)
{
    static uint8_t nal[70000];
    fill_nal(nal, slice_len, 0x41, seed);
    return add_nal(au, 0, nal, slice_len);
}

static int push_pkt(es_h264_depack_t *d, const rtp_pkt_t *p, uint64_t now_us)
{
    return es_h264_depack_push(d, p->seq, p->ts, p->marker, p->data, p->len, now_us);
}

static void assert_au(const au_rec_t *r, const uint8_t *au, size_t len, uint32_t ts)
{
    assert_int_equal(r->len, len);
    assert_memory_equal(r->data, au, len);
    assert_int_equal(r->ts, ts);
}

static void test_depack_round_trip(void **state)
{
    static uint8_t au[70000];
    const size_t maxes[] = {3, 30, 200, 1188, ES_H264_PAYLOAD_MAX};
    const size_t sizes[] = {1, 2, 29, 30, 31, 199, 200, 201, 1187, 1188, 1189, 5000, 65000};
    au_sink_t *s = calloc(1, sizeof *s);
    for (size_t m = 0; m < sizeof maxes / sizeof maxes[0]; m++) {
        es_h264_depack_t *d = es_h264_depack_new(0, on_au, s);
        assert_non_null(d);
        assert_true(es_h264_depack_key_needed(d));
        const uint8_t *sps, *pps;
        size_t sps_len, pps_len;
        assert_int_equal(es_h264_depack_params(d, &sps, &sps_len, &pps, &pps_len), ES_ENOENT);
        pkt_list_t l = {.seq = (uint16_t)(1000 * m)};
        uint64_t now = 1000000;
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            if (maxes[m] == 3 && sizes[k] > 1200) continue;
            uint32_t ts = 90000 + (uint32_t)k * 3000;
            bool key = k % 4 == 0;
            size_t len = key ? idr_au(au, sizes[k], (unsigned)k) : p_au(au, sizes[k], (unsigned)k);
            l.n = 0;
            packetize_au(&l, au, len, ts, maxes[m]);
            int emitted = 0;
            for (size_t i = 0; i < l.n; i++) {
                int rc = push_pkt(d, &l.p[i], now);
                assert_true(rc >= 0);
                emitted += rc;
                assert_int_equal(rc, i + 1 == l.n ? 1 : 0); /* at the marker, not before */
            }
            assert_int_equal(emitted, 1);
            assert_int_equal(s->n, 1);
            assert_au(&s->a[0], au, len, ts);
            assert_int_equal(s->a[0].key, key);
            assert_int_equal(s->a[0].params, key);
            assert_int_equal(s->a[0].changed, k == 0); /* the same SPS/PPS every time */
            assert_false(es_h264_depack_key_needed(d));
            assert_int_equal(es_h264_depack_next_timeout(d), UINT64_MAX);
            sink_clear(s);
            now += 33333;
        }
        assert_int_equal(es_h264_depack_params(d, &sps, &sps_len, &pps, &pps_len), 0);
        assert_int_equal(sps_len, sizeof sps_high720);
        assert_memory_equal(sps, sps_high720, sps_len);
        assert_int_equal(pps_len, sizeof pps_high);
        assert_memory_equal(pps, pps_high, pps_len);
        es_h264_depack_stats_t st = es_h264_depack_stats(d);
        assert_int_equal(st.lost + st.late + st.duplicates + st.malformed + st.aus_broken, 0);
        assert_int_equal(st.key_requests, 1); /* the initial one */
        free(l.p);
        es_h264_depack_free(d);
    }
    free(s);
}

/* Several NAL units per access unit, an SEI and a STAP-A built by hand with an AUD in it. */
static void test_depack_stap_a_and_aud(void **state)
{
    au_sink_t *s = calloc(1, sizeof *s);
    es_h264_depack_t *d = es_h264_depack_new(0, on_au, s);
    uint8_t stap[128], idr[300], want[512];
    size_t n = 0;
    stap[n++] = 0x78;
    const uint8_t aud[] = {0x09, 0xf0}, sei[] = {0x06, 0x05, 0x01, 0xaa, 0x80};
    stap[n++] = 0, stap[n++] = sizeof aud;
    memcpy(stap + n, aud, sizeof aud), n += sizeof aud;
    stap[n++] = 0, stap[n++] = sizeof sps_base240;
    memcpy(stap + n, sps_base240, sizeof sps_base240), n += sizeof sps_base240;
    stap[n++] = 0, stap[n++] = sizeof pps_base240;
    memcpy(stap + n, pps_base240, sizeof pps_base240), n += sizeof pps_base240;
    stap[n++] = 0, stap[n++] = sizeof sei;
    memcpy(stap + n, sei, sizeof sei), n += sizeof sei;
    fill_nal(idr, sizeof idr, 0x65, 1);
    assert_int_equal(es_h264_depack_push(d, 7, 500, false, aud, sizeof aud, 0), 0);
    assert_int_equal(es_h264_depack_push(d, 8, 500, false, stap, n, 0), 0);
    assert_int_equal(es_h264_depack_push(d, 9, 500, false, NULL, 0, 0), 0); /* padding */
    assert_int_equal(es_h264_depack_push(d, 10, 500, true, idr, sizeof idr, 0), 1);
    size_t w = add_nal(want, 0, sps_base240, sizeof sps_base240);
    w = add_nal(want, w, pps_base240, sizeof pps_base240);
    w = add_nal(want, w, sei, sizeof sei);
    w = add_nal(want, w, idr, sizeof idr);
    assert_int_equal(s->n, 1);
    assert_au(&s->a[0], want, w, 500);
    assert_true(s->a[0].key && s->a[0].params && s->a[0].changed);
    /* An access unit of only SPS/PPS is not emitted, but a new SPS is kept and reported. */
    const uint8_t *sps, *pps;
    size_t sps_len, pps_len;
    assert_int_equal(es_h264_depack_push(d, 11, 800, true, sps_high720, sizeof sps_high720, 0),
                     0);
    assert_int_equal(es_h264_depack_params(d, &sps, &sps_len, &pps, &pps_len), 0);
    assert_memory_equal(sps, sps_high720, sizeof sps_high720);
    uint8_t slice[20];
    fill_nal(slice, sizeof slice, 0x41, 2);
    assert_int_equal(es_h264_depack_push(d, 12, 900, true, slice, sizeof slice, 0), 1);
    assert_true(s->a[1].changed);
    assert_false(s->a[1].key || s->a[1].params);
    assert_int_equal(es_h264_depack_stats(d).aus_skipped, 1);
    sink_clear(s);
    es_h264_depack_free(d);
    free(s);
}

/* A small deterministic generator for shuffles. */
static uint32_t rnd(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* A GOP: IDR then P frames with FU-A, several sizes; returns the number of access units and
 * keeps each one's bytes in aus/lens. */
static size_t build_gop(pkt_list_t *l, uint8_t **aus, size_t *lens, size_t count, uint32_t ts0,
                        size_t max)
{
    static uint8_t au[70000];
    for (size_t k = 0; k < count; k++) {
        size_t len = k == 0 ? idr_au(au, 4000, 9) : p_au(au, 100 + 700 * (k % 5), (unsigned)k);
        aus[k] = malloc(len);
        memcpy(aus[k], au, len);
        lens[k] = len;
        packetize_au(l, au, len, ts0 + (uint32_t)k * 3000, max);
    }
    return count;
}

static void test_depack_reorder_duplicates(void **state)
{
    enum { AUS = 30 };
    uint8_t *aus[AUS];
    size_t lens[AUS];
    au_sink_t *s = calloc(1, sizeof *s);
    es_h264_depack_t *d = es_h264_depack_new(0, on_au, s);
    pkt_list_t l = {.seq = 65500}; /* crosses the wrap at 65535 */
    build_gop(&l, aus, lens, AUS, 4294960000u, 600); /* and the timestamp wraps too */
    assert_true(l.n > 60);
    /* Shuffle within blocks of 20 packets (but the first: the first packet received starts the
     * sequence) and duplicate every 7th. */
    uint32_t x = 12345;
    for (size_t b = 20; b < l.n; b += 20) {
        size_t m = l.n - b < 20 ? l.n - b : 20;
        for (size_t i = m; i > 1; i--) {
            size_t j = rnd(&x) % i;
            rtp_pkt_t t = l.p[b + i - 1];
            l.p[b + i - 1] = l.p[b + j];
            l.p[b + j] = t;
        }
    }
    uint64_t now = 5000000;
    for (size_t i = 0; i < l.n; i++) {
        assert_true(push_pkt(d, &l.p[i], now) >= 0);
        if (i % 7 == 0) assert_int_equal(push_pkt(d, &l.p[i], now), 0);
        now += 1000;
    }
    assert_int_equal(s->n, AUS);
    for (size_t k = 0; k < AUS; k++) {
        assert_au(&s->a[k], aus[k], lens[k], (uint32_t)(4294960000u + k * 3000));
        assert_int_equal(s->a[k].key, k == 0);
        free(aus[k]);
    }
    es_h264_depack_stats_t st = es_h264_depack_stats(d);
    assert_int_equal(st.lost, 0);
    assert_int_equal(st.aus_broken, 0);
    assert_int_equal(st.duplicates + st.late, (l.n + 6) / 7);
    assert_false(es_h264_depack_key_needed(d));
    sink_clear(s);
    free(l.p);
    es_h264_depack_free(d);
    free(s);
}

/* Feeds packets [from, to) of l, skipping index `skip` (SIZE_MAX: none), 1 ms apart. */
static uint64_t feed(es_h264_depack_t *d, const pkt_list_t *l, size_t from, size_t to,
                     size_t skip, uint64_t now)
{
    for (size_t i = from; i < to; i++, now += 1000)
        if (i != skip) assert_true(push_pkt(d, &l->p[i], now) >= 0);
    return now;
}

static void test_depack_fu_a_loss(void **state)
{
    static uint8_t au[70000];
    au_sink_t *s = calloc(1, sizeof *s);
    es_h264_depack_t *d = es_h264_depack_new(50000, on_au, s);
    pkt_list_t l = {.seq = 100};
    size_t at[6];
    size_t lens[6];
    uint8_t *aus[6];
    for (size_t k = 0; k < 6; k++) {
        size_t len = k == 0 || k == 4 ? idr_au(au, 3000, (unsigned)k) : p_au(au, 2500,
                                                                           (unsigned)k);
        aus[k] = malloc(len);
        memcpy(aus[k], au, len);
        lens[k] = len;
        at[k] = packetize_au(&l, au, len, 1000 + (uint32_t)k * 3000, 1000);
    }
    /* IDR, then P1 loses its middle fragment (P1 is 3 fragments). */
    uint64_t now = feed(d, &l, at[0], at[1], SIZE_MAX, 0);
    assert_int_equal(s->n, 1);
    assert_false(es_h264_depack_key_needed(d));
    now = feed(d, &l, at[1], at[2], at[1] + 1, now);
    /* The fragment after the gap is held: nothing emitted, a deadline is set. */
    assert_int_equal(s->n, 1);
    uint64_t deadline = es_h264_depack_next_timeout(d);
    assert_true(deadline != UINT64_MAX);
    assert_int_equal(es_h264_depack_handle_timeout(d, deadline - 1), 0);
    assert_false(es_h264_depack_key_needed(d));
    assert_int_equal(es_h264_depack_handle_timeout(d, deadline), 0);
    assert_true(es_h264_depack_key_needed(d));
    assert_int_equal(es_h264_depack_next_timeout(d), UINT64_MAX);
    /* A late arrival of the lost fragment changes nothing. */
    assert_int_equal(push_pkt(d, &l.p[at[1] + 1], deadline), 0);
    /* P2 and P3 arrive whole but are not emitted: they depend on P1. */
    now = feed(d, &l, at[2], at[4], SIZE_MAX, deadline + 1000);
    assert_int_equal(s->n, 1);
    assert_true(es_h264_depack_key_needed(d));
    /* The IDR resumes output, then P5. */
    feed(d, &l, at[4], l.n, SIZE_MAX, now);
    assert_int_equal(s->n, 3);
    assert_au(&s->a[1], aus[4], lens[4], 1000 + 4 * 3000);
    assert_true(s->a[1].key);
    assert_false(s->a[1].changed);
    assert_au(&s->a[2], aus[5], lens[5], 1000 + 5 * 3000);
    assert_false(es_h264_depack_key_needed(d));
    es_h264_depack_stats_t st = es_h264_depack_stats(d);
    assert_int_equal(st.lost, 1);
    assert_int_equal(st.late, 1);
    assert_int_equal(st.aus_broken, 1);
    assert_int_equal(st.aus_skipped, 2);
    assert_int_equal(st.key_requests, 2);

    /* Losing the first fragment (S) or the last (E) of an FU-A: the same. The gap is given up
     * by the time bound as later packets arrive (no handle_timeout call). */
    for (int which = 0; which < 2; which++) {
        sink_clear(s);
        es_h264_depack_reset(d);
        now += 1000000;
        now = feed(d, &l, at[0], at[1], SIZE_MAX, now); /* a new stream start: IDR */
        assert_int_equal(s->n, 1);
        size_t lost = which == 0 ? at[1] : at[2] - 1;
        for (size_t i = at[1]; i < at[4]; i++, now += 20000)
            if (i != lost) assert_true(push_pkt(d, &l.p[i], now) >= 0);
        assert_int_equal(s->n, 1);
        assert_true(es_h264_depack_key_needed(d));
        feed(d, &l, at[4], at[5], SIZE_MAX, now);
        assert_int_equal(s->n, 2);
        assert_au(&s->a[1], aus[4], lens[4], 1000 + 4 * 3000);
    }
    /* A late packet also applies the time bound (found by the fuzzer): P1's tail, held behind
     * the lost middle fragment, is given up when a stale duplicate arrives 60 ms later. */
    sink_clear(s);
    es_h264_depack_reset(d);
    now += 1000000;
    now = feed(d, &l, at[0], at[1], SIZE_MAX, now);
    now = feed(d, &l, at[1], at[2], at[1] + 1, now);
    uint64_t broken = es_h264_depack_stats(d).aus_broken;
    assert_true(es_h264_depack_next_timeout(d) != UINT64_MAX);
    assert_int_equal(push_pkt(d, &l.p[at[0]], now + 60000), 0);
    assert_int_equal(es_h264_depack_next_timeout(d), UINT64_MAX);
    assert_int_equal(es_h264_depack_stats(d).aus_broken, broken + 1);
    assert_true(es_h264_depack_key_needed(d));
    for (size_t k = 0; k < 6; k++) free(aus[k]);
    sink_clear(s);
    free(l.p);
    es_h264_depack_free(d);
    free(s);
}

static void test_depack_frame_loss(void **state)
{
    enum { AUS = 12 };
    uint8_t *aus[AUS];
    size_t lens[AUS];
    au_sink_t *s = calloc(1, sizeof *s);
    es_h264_depack_t *d = es_h264_depack_new(0, on_au, s);
    pkt_list_t l = {.seq = 65530};
    static uint8_t au[70000];
    size_t at[AUS];
    for (size_t k = 0; k < AUS; k++) {
        /* IDR at 0 and 8; single-packet P frames in between. */
        size_t len = k % 8 == 0 ? idr_au(au, 2000, (unsigned)k) : p_au(au, 300, (unsigned)k);
        aus[k] = malloc(len);
        memcpy(aus[k], au, len);
        lens[k] = len;
        at[k] = packetize_au(&l, au, len, 3000 * (uint32_t)k, 1188);
    }
    /* P3 (one packet) is lost; packets keep arriving 33 ms apart, so the 100 ms bound gives the
     * gap up while P4..P7 arrive; none of them is emitted. */
    uint64_t now = 0;
    for (size_t i = 0; i < l.n; i++, now += 33000)
        if (i != at[3]) assert_true(push_pkt(d, &l.p[i], now) >= 0);
    assert_int_equal(s->n, 3 + 4);
    for (size_t k = 0; k < 3; k++) assert_au(&s->a[k], aus[k], lens[k], 3000 * (uint32_t)k);
    for (size_t k = 8; k < AUS; k++)
        assert_au(&s->a[k - 5], aus[k], lens[k], 3000 * (uint32_t)k);
    es_h264_depack_stats_t st = es_h264_depack_stats(d);
    assert_int_equal(st.lost, 1);
    assert_int_equal(st.aus_broken, 1);  /* P4: it came right after the gap */
    assert_int_equal(st.aus_skipped, 3); /* P5..P7 */
    for (size_t k = 0; k < AUS; k++) free(aus[k]);

    /* A gap wider than the window: given up at once, without waiting. */
    sink_clear(s);
    es_h264_depack_reset(d);
    static uint8_t big[70000];
    size_t len = idr_au(big, 1000, 3);
    assert_int_equal(es_h264_depack_push(d, 10, 0, false, big + 4, sizeof sps_high720, 0), 0);
    uint8_t slice[10];
    fill_nal(slice, sizeof slice, 0x41, 0);
    for (unsigned i = 0; i < ES_H264_DEPACK_WINDOW - 1; i++)
        assert_int_equal(es_h264_depack_push(d, (uint16_t)(12 + i), 3000 * (i + 1), true, slice,
                                             sizeof slice, 0), 0);
    assert_int_equal(es_h264_depack_stats(d).lost, 1); /* P3 above; counters survive reset */
    /* The next one pushes sequence number 11 out: everything held is processed, dropped. */
    assert_int_equal(es_h264_depack_push(d, 12 + ES_H264_DEPACK_WINDOW - 1, 1, true, slice,
                                         sizeof slice, 0), 0);
    assert_int_equal(es_h264_depack_stats(d).lost, 2);
    assert_int_equal(s->n, 0);
    assert_int_equal(es_h264_depack_next_timeout(d), UINT64_MAX);
    (void)len;
    sink_clear(s);
    free(l.p);
    es_h264_depack_free(d);
    free(s);
}

static void test_depack_timestamp_change(void **state)
{
    au_sink_t *s = calloc(1, sizeof *s);
    es_h264_depack_t *d = es_h264_depack_new(0, on_au, s);
    static uint8_t au[8192], want[8192];
    size_t len = idr_au(au, 500, 1);
    /* No marker anywhere: each access unit ends when the next timestamp begins. */
    assert_int_equal(es_h264_depack_push(d, 1, 100, false, au + 4, sizeof sps_high720, 0), 0);
    assert_int_equal(es_h264_depack_push(d, 2, 100, false, au + 8 + sizeof sps_high720,
                                         sizeof pps_high, 0), 0);
    assert_int_equal(es_h264_depack_push(d, 3, 100, false, au + 12 + sizeof sps_high720 +
                                         sizeof pps_high, 500, 0), 0);
    uint8_t slice[40];
    fill_nal(slice, sizeof slice, 0x01, 5);
    assert_int_equal(es_h264_depack_push(d, 4, 3100, false, slice, sizeof slice, 0), 1);
    assert_int_equal(s->n, 1);
    assert_au(&s->a[0], au, len, 100);
    assert_int_equal(es_h264_depack_push(d, 5, 6100, false, slice, sizeof slice, 0), 1);
    size_t w = add_nal(want, 0, slice, sizeof slice);
    assert_au(&s->a[1], want, w, 3100);
    /* Padding with another timestamp does not end it. */
    assert_int_equal(es_h264_depack_push(d, 6, 9999, false, NULL, 0, 0), 0);
    assert_int_equal(es_h264_depack_push(d, 7, 6100, true, slice, sizeof slice, 0), 1);
    w = add_nal(want, w, slice, sizeof slice);
    assert_au(&s->a[2], want, w, 6100);
    sink_clear(s);
    es_h264_depack_free(d);
    free(s);
}

static void test_depack_malformed(void **state)
{
    au_sink_t *s = calloc(1, sizeof *s);
    es_h264_depack_t *d = es_h264_depack_new(0, on_au, s);
    static uint8_t au[8192];
    size_t len = idr_au(au, 300, 1);
    pkt_list_t l = {.seq = 0};
    packetize_au(&l, au, len, 0, 1188); /* STAP-A, IDR */
    assert_int_equal(l.n, 2);
    /* Types the mode does not allow, and broken structures. */
    const uint8_t bad[][8] = {
        {0x00, 1},             /* type 0 */
        {0x19, 0, 2, 0x41, 1}, /* STAP-B */
        {0x1a, 1, 2, 3},       /* MTAP16 */
        {0x1b, 1, 2, 3},       /* MTAP24 */
        {0x1d, 0x85, 1},       /* FU-B */
        {0x1e}, {0x1f, 9},
        {0x18},                /* STAP-A without units */
        {0x18, 0, 5, 0x67, 1}, /* unit runs past the end */
        {0x18, 0, 0, 0, 1, 0x41}, /* empty unit */
        {0x18, 0},             /* truncated size */
        {0x18, 0, 1, 0x18},    /* nested STAP-A */
        {0x1c},                /* FU-A without header */
        {0x1c, 0x9c, 1},       /* FU-A of an FU-A */
        {0x1c, 0x80, 1},       /* FU-A of type 0 */
    };
    const size_t bad_len[] = {2, 5, 4, 4, 3, 1, 2, 1, 5, 6, 2, 4, 1, 3, 3};
    uint16_t seq = 0;
    for (size_t i = 0; i < sizeof bad_len / sizeof bad_len[0]; i++) {
        /* IDR packets around a malformed one with the same timestamp: dropped. */
        uint32_t ts = (uint32_t)i * 3000;
        assert_int_equal(es_h264_depack_push(d, seq++, ts, false, l.p[0].data, l.p[0].len, 0), 0);
        assert_int_equal(es_h264_depack_push(d, seq++, ts, false, bad[i], bad_len[i], 0),
                         ES_EPROTO);
        assert_int_equal(es_h264_depack_push(d, seq++, ts, true, l.p[1].data, l.p[1].len, 0), 0);
    }
    assert_int_equal(s->n, 0);
    es_h264_depack_stats_t st = es_h264_depack_stats(d);
    assert_int_equal(st.malformed, sizeof bad_len / sizeof bad_len[0]);
    assert_int_equal(st.aus_broken, sizeof bad_len / sizeof bad_len[0]);
    /* A whole IDR then works. */
    assert_int_equal(es_h264_depack_push(d, seq++, 99000, false, l.p[0].data, l.p[0].len, 0), 0);
    assert_int_equal(es_h264_depack_push(d, seq++, 99000, true, l.p[1].data, l.p[1].len, 0), 1);
    assert_au(&s->a[0], au, len, 99000);

    /* An FU-A without start, and one whose end never comes (no sequence gap: a sender bug). */
    uint8_t frag[100];
    fill_nal(frag, sizeof frag, 0x7c, 3);
    frag[1] = 0x05; /* middle fragment of an IDR */
    assert_int_equal(es_h264_depack_push(d, seq++, 102000, false, frag, sizeof frag, 0), 0);
    frag[1] = 0x45;
    assert_int_equal(es_h264_depack_push(d, seq++, 102000, true, frag, sizeof frag, 0), 0);
    frag[1] = 0x85;
    assert_int_equal(es_h264_depack_push(d, seq++, 105000, false, frag, sizeof frag, 0), 0);
    assert_int_equal(es_h264_depack_push(d, seq++, 105000, true, l.p[1].data, l.p[1].len, 0), 0);
    /* FU-A start then a start of another type. */
    assert_int_equal(es_h264_depack_push(d, seq++, 108000, false, frag, sizeof frag, 0), 0);
    frag[1] = 0x41;
    assert_int_equal(es_h264_depack_push(d, seq++, 108000, true, frag, sizeof frag, 0), 0);
    assert_int_equal(s->n, 1);
    assert_int_equal(es_h264_depack_stats(d).aus_broken, sizeof bad_len / sizeof bad_len[0] + 3);
    assert_true(es_h264_depack_key_needed(d));

    /* Random payloads: never a crash, every emitted access unit valid (checked in on_au). */
    uint32_t x = 777;
    uint8_t junk[64];
    for (int i = 0; i < 20000; i++) {
        size_t n = rnd(&x) % sizeof junk;
        for (size_t j = 0; j < n; j++) junk[j] = (uint8_t)rnd(&x);
        if (n && i % 3 == 0) junk[0] = (uint8_t)(0x60 | (rnd(&x) % 2 ? 5 : 28));
        int rc = es_h264_depack_push(d, (uint16_t)(seq + rnd(&x) % 8), rnd(&x) % 4 * 3000,
                                     rnd(&x) % 2, junk, n, (uint64_t)i * 1000);
        assert_true(rc >= 0 || rc == ES_EPROTO);
        seq++;
        if (s->n > 200) sink_clear(s);
    }
    assert_int_equal(es_h264_depack_push(d, 0, 0, false, NULL, 1, 0), ES_EINVAL);
    assert_int_equal(es_h264_depack_push(NULL, 0, 0, false, junk, 1, 0), ES_EINVAL);
    uint8_t huge[1];
    es_h264_depack_reset(d);
    assert_int_equal(es_h264_depack_push(d, seq, 0, false, huge,
                                         ES_H264_DEPACK_PAYLOAD_MAX + 1, 0), ES_E2BIG);
    assert_null(es_h264_depack_new(0, NULL, NULL));
    es_h264_depack_free(NULL);
    sink_clear(s);
    free(l.p);
    es_h264_depack_free(d);
    free(s);
}

/* An access unit over ES_H264_AU_MAX is dropped; the next IDR goes through. */
static void test_depack_size_cap(void **state)
{
    au_sink_t *s = calloc(1, sizeof *s);
    es_h264_depack_t *d = es_h264_depack_new(0, on_au, s);
    static uint8_t frag[1402];
    fill_nal(frag, sizeof frag, 0x7c, 4);
    uint16_t seq = 65000;
    size_t frags = ES_H264_AU_MAX / 1400 + 2;
    for (size_t i = 0; i < frags; i++) {
        frag[1] = (uint8_t)((i == 0 ? 0x80 : 0) | (i + 1 == frags ? 0x40 : 0) | 5);
        assert_int_equal(es_h264_depack_push(d, seq++, 0, i + 1 == frags, frag, sizeof frag, 0),
                         0);
    }
    assert_int_equal(s->n, 0);
    assert_int_equal(es_h264_depack_stats(d).aus_broken, 1);
    /* Just under the cap is fine. */
    size_t room = ES_H264_AU_MAX - 4 - 1, n = 0;
    for (size_t i = 0; n < room; i++) {
        size_t part = room - n < 1400 ? room - n : 1400;
        n += part;
        frag[1] = (uint8_t)((i == 0 ? 0x80 : 0) | (n == room ? 0x40 : 0) | 5);
        assert_true(es_h264_depack_push(d, seq++, 3000, n == room, frag, part + 2, 0) >= 0);
    }
    assert_int_equal(s->n, 1);
    assert_int_equal(s->a[0].len, ES_H264_AU_MAX);
    assert_true(s->a[0].key);
    sink_clear(s);
    es_h264_depack_free(d);
    free(s);
}

/* A sender that restarts its sequence numbers far behind, and a new SPS. */
static void test_depack_restart_and_params(void **state)
{
    au_sink_t *s = calloc(1, sizeof *s);
    es_h264_depack_t *d = es_h264_depack_new(0, on_au, s);
    static uint8_t au[8192];
    pkt_list_t l = {.seq = 40000};
    size_t len = idr_au(au, 100, 1);
    packetize_au(&l, au, len, 0, 1188);
    l.seq = 20000;
    /* The same IDR with other parameter sets. */
    size_t len2 = add_nal(au, 0, sps_base240, sizeof sps_base240);
    len2 = add_nal(au, len2, pps_base240, sizeof pps_base240);
    uint8_t idr[100];
    fill_nal(idr, sizeof idr, 0x65, 1);
    len2 = add_nal(au, len2, idr, sizeof idr);
    packetize_au(&l, au, len2, 90000, 1188);
    feed(d, &l, 0, l.n, SIZE_MAX, 0);
    /* The first packet far behind is taken for a stray one, the second for a restart. */
    assert_int_equal(s->n, 1);
    assert_true(s->a[0].changed);
    l.n = 0;
    packetize_au(&l, au, len2, 93000, 1188);
    feed(d, &l, 0, l.n, SIZE_MAX, 0);
    assert_int_equal(s->n, 2);
    assert_true(s->a[1].changed);
    assert_au(&s->a[1], au, len2, 93000);
    const uint8_t *sps, *pps;
    size_t sps_len, pps_len;
    assert_int_equal(es_h264_depack_params(d, &sps, &sps_len, &pps, &pps_len), 0);
    assert_memory_equal(sps, sps_base240, sizeof sps_base240);
    assert_memory_equal(pps, pps_base240, sizeof pps_base240);
    es_h264_depack_reset(d);
    assert_int_equal(es_h264_depack_params(d, &sps, &sps_len, &pps, &pps_len), ES_ENOENT);
    assert_true(es_h264_depack_key_needed(d));
    sink_clear(s);
    free(l.p);
    es_h264_depack_free(d);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sps_real),          cmocka_unit_test(test_sps_scaling_lists),
        cmocka_unit_test(test_profile_level_id),  cmocka_unit_test(test_config_round_trip),
        cmocka_unit_test(test_config_parse_cases), cmocka_unit_test(test_nal_iteration),
        cmocka_unit_test(test_packetize_single),  cmocka_unit_test(test_packetize_stap_a),
        cmocka_unit_test(test_packetize_fu_a),    cmocka_unit_test(test_packetize_malformed),
        cmocka_unit_test(test_depack_round_trip), cmocka_unit_test(test_depack_stap_a_and_aud),
        cmocka_unit_test(test_depack_reorder_duplicates), cmocka_unit_test(test_depack_fu_a_loss),
        cmocka_unit_test(test_depack_frame_loss), cmocka_unit_test(test_depack_timestamp_change),
        cmocka_unit_test(test_depack_malformed),  cmocka_unit_test(test_depack_size_cap),
        cmocka_unit_test(test_depack_restart_and_params),
    };
    return cmocka_run_group_tests_name("h264", tests, NULL, NULL);
}
