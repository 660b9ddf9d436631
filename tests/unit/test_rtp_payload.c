/* Unit tests for src/rtp/rtp_payload.c: frame and key-frame starts for H.264 (RFC 6184), VP8
 * (RFC 7741), VP9 (RFC 9628), AV1 and Opus, on hand-built payloads and their truncations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/rtp_payload.h"

#include <string.h>

#define KEY(c, p) es_rtp_keyframe_start(c, p, sizeof p)
#define START(c, p) es_rtp_frame_start(c, p, sizeof p)

/* Every strict prefix of a payload that needs all its bytes must be rejected. */
static void assert_prefixes_false(es_codec_t c, const uint8_t *p, size_t len)
{
    for (size_t n = 0; n < len; n++) {
        assert_false(es_rtp_keyframe_start(c, p, n));
        assert_false(es_rtp_frame_start(c, p, n));
    }
}

static void test_h264_single_nal(void **state)
{
    const uint8_t idr[] = {0x65, 0x88, 0x84};       /* nal_ref_idc 3, type 5 */
    const uint8_t sps[] = {0x67, 0x42, 0xc0, 0x1f}; /* type 7 */
    const uint8_t pps[] = {0x68, 0xce, 0x3c, 0x80}; /* type 8: follows an SPS, not counted */
    const uint8_t non_idr[] = {0x41, 0x9a, 0x02};   /* type 1 */
    assert_true(KEY(ES_CODEC_H264, idr));
    assert_true(START(ES_CODEC_H264, idr));
    assert_true(KEY(ES_CODEC_H264, sps));
    assert_false(KEY(ES_CODEC_H264, pps));
    assert_false(KEY(ES_CODEC_H264, non_idr));
    assert_true(START(ES_CODEC_H264, non_idr));
    assert_false(es_rtp_frame_start(ES_CODEC_H264, idr, 0));
    const uint8_t reserved[] = {0x1e, 0, 0}, stap_b[] = {0x19, 0, 0, 0, 1, 0x65};
    assert_false(START(ES_CODEC_H264, reserved));
    assert_false(START(ES_CODEC_H264, stap_b));
}

static void test_h264_stap_a(void **state)
{
    const uint8_t stap[] = {
        0x78,                                   /* STAP-A */
        0x00, 0x04, 0x67, 0x42, 0xc0, 0x1f,     /* SPS */
        0x00, 0x03, 0x68, 0xce, 0x3c,           /* PPS */
        0x00, 0x02, 0x65, 0x88,                 /* IDR */
    };
    assert_true(KEY(ES_CODEC_H264, stap));
    assert_true(START(ES_CODEC_H264, stap));
    /* Cut inside a size field or a NAL unit: malformed. Cut at a unit boundary: a shorter,
     * valid STAP-A (the SPS alone still counts). */
    for (size_t n = 0; n < sizeof stap; n++) {
        bool boundary = n == 7 || n == 12;
        assert_int_equal(es_rtp_frame_start(ES_CODEC_H264, stap, n), boundary);
        assert_int_equal(es_rtp_keyframe_start(ES_CODEC_H264, stap, n), boundary);
    }
    /* An IDR alone after SEI counts; SEI + non-IDR does not. */
    const uint8_t sei_idr[] = {0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x65, 0x88};
    const uint8_t sei_p[] = {0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x41, 0x9a};
    assert_true(KEY(ES_CODEC_H264, sei_idr));
    assert_false(KEY(ES_CODEC_H264, sei_p));
    assert_true(START(ES_CODEC_H264, sei_p));
    /* A size running past the end, a zero size, an empty aggregate. */
    const uint8_t over[] = {0x78, 0x00, 0x09, 0x67, 0x42};
    const uint8_t zero[] = {0x78, 0x00, 0x00, 0x00, 0x02, 0x65, 0x88};
    const uint8_t empty[] = {0x78};
    assert_false(START(ES_CODEC_H264, over));
    assert_false(START(ES_CODEC_H264, zero));
    assert_false(START(ES_CODEC_H264, empty));
}

static void test_h264_fu_a(void **state)
{
    const uint8_t idr_start[] = {0x7c, 0x85, 0x88, 0x84};  /* FU-A, S=1, type 5 */
    const uint8_t idr_middle[] = {0x7c, 0x05, 0x11, 0x22}; /* S=0 */
    const uint8_t idr_end[] = {0x7c, 0x45, 0x11};          /* E=1 */
    const uint8_t p_start[] = {0x5c, 0x81, 0x9a, 0x02};    /* S=1, type 1 */
    assert_true(KEY(ES_CODEC_H264, idr_start));
    assert_true(START(ES_CODEC_H264, idr_start));
    assert_false(KEY(ES_CODEC_H264, idr_middle));
    assert_false(START(ES_CODEC_H264, idr_middle));
    assert_false(START(ES_CODEC_H264, idr_end));
    assert_false(KEY(ES_CODEC_H264, p_start));
    assert_true(START(ES_CODEC_H264, p_start));
    assert_prefixes_false(ES_CODEC_H264, idr_start, 3);
}

static void test_vp8(void **state)
{
    /* Minimal descriptor S=1 PID=0, then payload header with P=0 (key) or P=1 (inter). */
    const uint8_t key[] = {0x10, 0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a};
    const uint8_t inter[] = {0x10, 0x31, 0x02, 0x00};
    const uint8_t cont[] = {0x00, 0x50, 0x2a};           /* S=0 */
    const uint8_t part1[] = {0x11, 0x50, 0x2a};          /* S=1 but PID=1 */
    assert_true(KEY(ES_CODEC_VP8, key));
    assert_true(START(ES_CODEC_VP8, key));
    assert_false(KEY(ES_CODEC_VP8, inter));
    assert_true(START(ES_CODEC_VP8, inter));
    assert_false(START(ES_CODEC_VP8, cont));
    assert_false(KEY(ES_CODEC_VP8, cont));
    assert_false(START(ES_CODEC_VP8, part1));
    assert_prefixes_false(ES_CODEC_VP8, key, 2);

    /* X with I (15-bit PictureID, M=1), L, T and K: descriptor is 6 bytes. */
    const uint8_t ext_key[] = {0x90, 0xf0, 0x81, 0x23, 0x05, 0x40, 0x50, 0x2a};
    const uint8_t ext_inter[] = {0x90, 0xf0, 0x81, 0x23, 0x05, 0x40, 0x31, 0x2a};
    assert_true(KEY(ES_CODEC_VP8, ext_key));
    assert_false(KEY(ES_CODEC_VP8, ext_inter));
    assert_true(START(ES_CODEC_VP8, ext_inter));
    assert_prefixes_false(ES_CODEC_VP8, ext_key, 7);
    /* 7-bit PictureID only: the payload header is the 4th byte. */
    const uint8_t pic7[] = {0x90, 0x80, 0x12, 0x50};
    assert_true(KEY(ES_CODEC_VP8, pic7));
    assert_prefixes_false(ES_CODEC_VP8, pic7, sizeof pic7);
    /* K alone still takes the TID/KEYIDX byte. */
    const uint8_t konly[] = {0x90, 0x10, 0x00, 0x51};
    assert_false(KEY(ES_CODEC_VP8, konly));
    assert_true(START(ES_CODEC_VP8, konly));
}

static void test_vp9(void **state)
{
    /* I (15-bit), B, E: key frame of a non-scalable stream. */
    const uint8_t key[] = {0x8c, 0x80, 0x01, 0x82};
    const uint8_t inter[] = {0xcc, 0x80, 0x02, 0x86};  /* P=1 */
    const uint8_t middle[] = {0x80, 0x80, 0x01, 0x11}; /* B=0 */
    assert_true(KEY(ES_CODEC_VP9, key));
    assert_true(START(ES_CODEC_VP9, key));
    assert_false(KEY(ES_CODEC_VP9, inter));
    assert_true(START(ES_CODEC_VP9, inter));
    assert_false(START(ES_CODEC_VP9, middle));
    assert_prefixes_false(ES_CODEC_VP9, key, sizeof key);

    /* Non-flexible with layer indices (SID 0 and SID 1) and TL0PICIDX. */
    const uint8_t l_sid0[] = {0xa8, 0x05, 0x00, 0x07, 0x82};
    const uint8_t l_sid1[] = {0xa8, 0x05, 0x02, 0x07, 0x82};
    assert_true(KEY(ES_CODEC_VP9, l_sid0));
    assert_false(KEY(ES_CODEC_VP9, l_sid1));
    assert_true(START(ES_CODEC_VP9, l_sid1));
    assert_prefixes_false(ES_CODEC_VP9, l_sid0, sizeof l_sid0);

    /* Flexible mode, inter frame with two reference indices (N on the first). */
    const uint8_t flex[] = {0xd8, 0x05, 0x03, 0x04, 0x86};
    assert_false(KEY(ES_CODEC_VP9, flex));
    assert_true(START(ES_CODEC_VP9, flex));
    assert_prefixes_false(ES_CODEC_VP9, flex, sizeof flex);
    /* More than three reference indices is malformed. */
    const uint8_t flex4[] = {0xd8, 0x05, 0x03, 0x03, 0x03, 0x86};
    assert_false(START(ES_CODEC_VP9, flex4));

    /* Key frame with a scalability structure: N_S=0, Y (1 × 4 bytes), G with 1 group of 1 ref. */
    const uint8_t ss[] = {0x8e, 0x05, 0x18, 0x02, 0x80, 0x01, 0x68, 0x01, 0x04, 0x02, 0x82};
    assert_true(KEY(ES_CODEC_VP9, ss));
    assert_prefixes_false(ES_CODEC_VP9, ss, sizeof ss);
}

static void test_av1(void **state)
{
    const uint8_t new_seq[] = {0x18, 0x0a, 0x0b};   /* Z=0 Y=0 W=1 N=1 */
    const uint8_t start[] = {0x10, 0x32, 0x00};     /* Z=0 N=0 */
    const uint8_t cont[] = {0xd0, 0x11};            /* Z=1 Y=1 */
    const uint8_t odd[] = {0x88, 0x11};             /* Z=1 with N=1 */
    assert_true(KEY(ES_CODEC_AV1, new_seq));
    assert_true(START(ES_CODEC_AV1, new_seq));
    assert_false(KEY(ES_CODEC_AV1, start));
    assert_true(START(ES_CODEC_AV1, start));
    assert_false(START(ES_CODEC_AV1, cont));
    assert_false(KEY(ES_CODEC_AV1, odd));
    assert_false(es_rtp_frame_start(ES_CODEC_AV1, new_seq, 1));
}

static void test_audio_and_others(void **state)
{
    const uint8_t opus[] = {0xfc, 0xff, 0xfe};
    assert_true(START(ES_CODEC_OPUS, opus));
    assert_false(KEY(ES_CODEC_OPUS, opus));
    assert_true(es_rtp_frame_start(ES_CODEC_OPUS, NULL, 0));
    assert_false(START(ES_CODEC_RTX, opus));
    assert_false(START(ES_CODEC_NONE, opus));
    assert_false(KEY(ES_CODEC_RTX, opus));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h264_single_nal), cmocka_unit_test(test_h264_stap_a),
        cmocka_unit_test(test_h264_fu_a),       cmocka_unit_test(test_vp8),
        cmocka_unit_test(test_vp9),             cmocka_unit_test(test_av1),
        cmocka_unit_test(test_audio_and_others),
    };
    return cmocka_run_group_tests_name("rtp_payload", tests, NULL, NULL);
}
