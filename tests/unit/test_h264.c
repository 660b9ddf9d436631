/* Unit tests for src/rtp/h264.c: AVCDecoderConfigurationRecord parse/write, SPS parsing on real
 * x264 parameter sets (baseline 320x240, high 1280x720, high 1920x1080 with cropping, 4:4:4 and
 * interlaced 1080) and on a hand-built high-profile SPS with scaling lists and emulation
 * prevention, profile-level-id, NAL iteration, and the RFC 6184 packetizer (single NAL unit,
 * STAP-A before IDR, FU-A boundaries and reassembly, marker, dropped NAL types, bad AVCC). */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sps_real),          cmocka_unit_test(test_sps_scaling_lists),
        cmocka_unit_test(test_profile_level_id),  cmocka_unit_test(test_config_round_trip),
        cmocka_unit_test(test_config_parse_cases), cmocka_unit_test(test_nal_iteration),
        cmocka_unit_test(test_packetize_single),  cmocka_unit_test(test_packetize_stap_a),
        cmocka_unit_test(test_packetize_fu_a),    cmocka_unit_test(test_packetize_malformed),
    };
    return cmocka_run_group_tests_name("h264", tests, NULL, NULL);
}
