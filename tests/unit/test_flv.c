/* Unit tests for src/rtmp/flv.c: legacy and Enhanced RTMP video tag headers, audio tag headers
 * (AAC, MP3, the Enhanced RTMP v2 ExHeader), AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1),
 * FLV header/tag writers against the reader (split at every byte), and onMetaData. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/flv.h"

#include <stdlib.h>
#include <string.h>

/* Every strict prefix shorter than `min` must be rejected as truncated. */
static void assert_video_truncated(const uint8_t *body, size_t min)
{
    es_flv_video_t v;
    for (size_t n = 0; n < min; n++) assert_int_equal(es_flv_video_parse(body, n, &v), ES_EPROTO);
    assert_int_equal(es_flv_video_parse(body, min, &v), 0);
}

static void test_legacy_avc(void **state)
{
    es_flv_video_t v;
    /* Sequence header: key frame, AVC, AVCPacketType 0, CompositionTime 0, record. */
    const uint8_t seq[] = {0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x42, 0xc0, 0x1f};
    assert_int_equal(es_flv_video_parse(seq, sizeof seq, &v), 0);
    assert_int_equal(v.codec, ES_FLV_VIDEO_AVC);
    assert_false(v.enhanced);
    assert_int_equal(v.codec_id, 7);
    assert_int_equal(v.frame, ES_FLV_FRAME_KEY);
    assert_int_equal(v.packet, ES_FLV_PACKET_SEQUENCE_HEADER);
    assert_int_equal(v.cts_ms, 0);
    assert_ptr_equal(v.payload, seq + 5);
    assert_int_equal(v.payload_len, 4);

    /* Key NALU with CompositionTime +80 ms. */
    const uint8_t key[] = {0x17, 0x01, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x02, 0x65, 0x88};
    assert_int_equal(es_flv_video_parse(key, sizeof key, &v), 0);
    assert_int_equal(v.frame, ES_FLV_FRAME_KEY);
    assert_int_equal(v.packet, ES_FLV_PACKET_CODED_FRAME);
    assert_int_equal(v.cts_ms, 80);
    assert_int_equal(v.payload_len, 6);
    assert_memory_equal(v.payload, key + 5, 6);

    /* Inter NALU with a negative CompositionTime (-40 = 0xffffd8) and the largest ones. */
    uint8_t inter[] = {0x27, 0x01, 0xff, 0xff, 0xd8, 0x00, 0x00, 0x00, 0x02, 0x41, 0x9a};
    assert_int_equal(es_flv_video_parse(inter, sizeof inter, &v), 0);
    assert_int_equal(v.frame, ES_FLV_FRAME_INTER);
    assert_int_equal(v.cts_ms, -40);
    inter[2] = 0x80, inter[3] = 0x00, inter[4] = 0x00;
    assert_int_equal(es_flv_video_parse(inter, sizeof inter, &v), 0);
    assert_int_equal(v.cts_ms, -8388608);
    inter[2] = 0x7f, inter[3] = 0xff, inter[4] = 0xff;
    assert_int_equal(es_flv_video_parse(inter, sizeof inter, &v), 0);
    assert_int_equal(v.cts_ms, 8388607);

    /* Disposable inter (3) is inter; end of sequence; an empty NALU payload is fine. */
    const uint8_t disp[] = {0x37, 0x01, 0, 0, 0};
    assert_int_equal(es_flv_video_parse(disp, sizeof disp, &v), 0);
    assert_int_equal(v.frame, ES_FLV_FRAME_INTER);
    assert_int_equal(v.payload_len, 0);
    const uint8_t eos[] = {0x17, 0x02, 0, 0, 0};
    assert_int_equal(es_flv_video_parse(eos, sizeof eos, &v), 0);
    assert_int_equal(v.packet, ES_FLV_PACKET_END_OF_SEQUENCE);

    /* A command frame (5): the command byte is the payload; no AVC header is read. */
    const uint8_t cmd[] = {0x57, 0x01};
    assert_int_equal(es_flv_video_parse(cmd, sizeof cmd, &v), 0);
    assert_int_equal(v.frame, ES_FLV_FRAME_OTHER);
    assert_int_equal(v.packet, ES_FLV_PACKET_OTHER);
    assert_int_equal(v.payload_len, 1);
    assert_int_equal(v.payload[0], 1);

    assert_video_truncated(key, 5);
}

static void test_legacy_hevc_and_others(void **state)
{
    es_flv_video_t v;
    const uint8_t hevc[] = {0x1c, 0x01, 0x00, 0x00, 0x21, 0x00, 0x00, 0x00, 0x01, 0x26};
    assert_int_equal(es_flv_video_parse(hevc, sizeof hevc, &v), 0);
    assert_int_equal(v.codec, ES_FLV_VIDEO_HEVC);
    assert_int_equal(v.codec_id, 12);
    assert_int_equal(v.cts_ms, 33);
    assert_int_equal(v.payload_len, 5);
    assert_video_truncated(hevc, 5);

    /* VP6 (4): no AVC header, the frame follows the first byte. */
    const uint8_t vp6[] = {0x14, 0x00, 0x12};
    assert_int_equal(es_flv_video_parse(vp6, sizeof vp6, &v), 0);
    assert_int_equal(v.codec, ES_FLV_VIDEO_OTHER);
    assert_int_equal(v.codec_id, 4);
    assert_int_equal(v.packet, ES_FLV_PACKET_CODED_FRAME);
    assert_ptr_equal(v.payload, vp6 + 1);
    assert_int_equal(v.payload_len, 2);

    assert_int_equal(es_flv_video_parse(NULL, 0, &v), ES_EPROTO);
    assert_int_equal(es_flv_video_parse(NULL, 3, &v), ES_EINVAL);
    assert_int_equal(es_flv_video_parse(vp6, sizeof vp6, NULL), ES_EINVAL);
}

static void test_enhanced_video(void **state)
{
    es_flv_video_t v;
    /* hvc1 SequenceStart: IsExHeader | key (1) << 4 | 0. */
    const uint8_t hseq[] = {0x90, 'h', 'v', 'c', '1', 0x01, 0x01, 0x60};
    assert_int_equal(es_flv_video_parse(hseq, sizeof hseq, &v), 0);
    assert_true(v.enhanced);
    assert_int_equal(v.codec, ES_FLV_VIDEO_HEVC);
    assert_int_equal(v.codec_id, ES_FLV_FOURCC('h', 'v', 'c', '1'));
    assert_int_equal(v.frame, ES_FLV_FRAME_KEY);
    assert_int_equal(v.packet, ES_FLV_PACKET_SEQUENCE_HEADER);
    assert_ptr_equal(v.payload, hseq + 5);
    assert_int_equal(v.payload_len, 3);
    assert_video_truncated(hseq, 5);

    /* hvc1 CodedFrames: SI24 composition time (-33), then the NAL units. */
    const uint8_t hcf[] = {0xa1, 'h', 'v', 'c', '1', 0xff, 0xff, 0xdf, 0, 0, 0, 1, 0x02};
    assert_int_equal(es_flv_video_parse(hcf, sizeof hcf, &v), 0);
    assert_int_equal(v.frame, ES_FLV_FRAME_INTER);
    assert_int_equal(v.packet, ES_FLV_PACKET_CODED_FRAME);
    assert_int_equal(v.packet_type, 1);
    assert_int_equal(v.cts_ms, -33);
    assert_ptr_equal(v.payload, hcf + 8);
    assert_int_equal(v.payload_len, 5);
    assert_video_truncated(hcf, 8);

    /* hvc1 CodedFramesX: no composition time. */
    const uint8_t hcfx[] = {0x93, 'h', 'v', 'c', '1', 0, 0, 0, 1, 0x26};
    assert_int_equal(es_flv_video_parse(hcfx, sizeof hcfx, &v), 0);
    assert_int_equal(v.packet, ES_FLV_PACKET_CODED_FRAME);
    assert_int_equal(v.cts_ms, 0);
    assert_ptr_equal(v.payload, hcfx + 5);
    assert_video_truncated(hcfx, 5);

    /* av01 SequenceStart and CodedFrames (no composition time for AV1). */
    const uint8_t aseq[] = {0x90, 'a', 'v', '0', '1', 0x81, 0x00, 0x0c};
    assert_int_equal(es_flv_video_parse(aseq, sizeof aseq, &v), 0);
    assert_int_equal(v.codec, ES_FLV_VIDEO_AV1);
    assert_int_equal(v.packet, ES_FLV_PACKET_SEQUENCE_HEADER);
    const uint8_t acf[] = {0xa1, 'a', 'v', '0', '1', 0x12, 0x00, 0x0a};
    assert_int_equal(es_flv_video_parse(acf, sizeof acf, &v), 0);
    assert_int_equal(v.codec, ES_FLV_VIDEO_AV1);
    assert_int_equal(v.packet, ES_FLV_PACKET_CODED_FRAME);
    assert_int_equal(v.cts_ms, 0);
    assert_ptr_equal(v.payload, acf + 5);
    assert_int_equal(v.payload_len, 3);

    /* vp09, avc1 CodedFrames (with composition time), SequenceEnd, Metadata, an unknown FourCC. */
    const uint8_t vp9[] = {0x93, 'v', 'p', '0', '9', 0x82};
    assert_int_equal(es_flv_video_parse(vp9, sizeof vp9, &v), 0);
    assert_int_equal(v.codec, ES_FLV_VIDEO_VP9);
    const uint8_t avc[] = {0x91, 'a', 'v', 'c', '1', 0, 0, 0x28, 0, 0, 0, 1, 0x65};
    assert_int_equal(es_flv_video_parse(avc, sizeof avc, &v), 0);
    assert_int_equal(v.codec, ES_FLV_VIDEO_AVC);
    assert_int_equal(v.cts_ms, 40);
    assert_int_equal(v.payload_len, 5);
    const uint8_t end[] = {0x92, 'a', 'v', '0', '1'};
    assert_int_equal(es_flv_video_parse(end, sizeof end, &v), 0);
    assert_int_equal(v.packet, ES_FLV_PACKET_END_OF_SEQUENCE);
    assert_int_equal(v.payload_len, 0);
    const uint8_t meta[] = {0x94, 'a', 'v', '0', '1', 0x02, 0x00, 0x09};
    assert_int_equal(es_flv_video_parse(meta, sizeof meta, &v), 0);
    assert_int_equal(v.packet, ES_FLV_PACKET_OTHER);
    assert_int_equal(v.packet_type, 4);
    const uint8_t vvc[] = {0x91, 'v', 'v', 'c', '1', 0, 0, 0};
    assert_int_equal(es_flv_video_parse(vvc, sizeof vvc, &v), 0);
    assert_int_equal(v.codec, ES_FLV_VIDEO_OTHER);
    assert_int_equal(v.codec_id, ES_FLV_FOURCC('v', 'v', 'c', '1'));
    assert_int_equal(v.payload_len, 3); /* no composition time for an unknown codec */

    /* Command frame: the command byte follows the first byte, no FourCC. ModEx: passed on. */
    const uint8_t cmd[] = {0xd1, 0x00};
    assert_int_equal(es_flv_video_parse(cmd, sizeof cmd, &v), 0);
    assert_int_equal(v.frame, ES_FLV_FRAME_OTHER);
    assert_int_equal(v.packet, ES_FLV_PACKET_OTHER);
    assert_int_equal(v.payload_len, 1);
    const uint8_t modex[] = {0x97, 0x00};
    assert_int_equal(es_flv_video_parse(modex, sizeof modex, &v), 0);
    assert_int_equal(v.packet, ES_FLV_PACKET_OTHER);
    assert_ptr_equal(v.payload, modex + 1);
}

static void test_audio(void **state)
{
    es_flv_audio_t a;
    /* AAC, 44 kHz, 16-bit, stereo: 0xaf; AudioSpecificConfig 0x12 0x10. */
    const uint8_t cfg[] = {0xaf, 0x00, 0x12, 0x10};
    assert_int_equal(es_flv_audio_parse(cfg, sizeof cfg, &a), 0);
    assert_int_equal(a.codec, ES_FLV_AUDIO_AAC);
    assert_false(a.enhanced);
    assert_int_equal(a.codec_id, 10);
    assert_int_equal(a.sound_rate, 3);
    assert_int_equal(a.sound_size, 1);
    assert_int_equal(a.sound_type, 1);
    assert_true(a.config);
    assert_ptr_equal(a.payload, cfg + 2);
    assert_int_equal(a.payload_len, 2);
    const uint8_t raw[] = {0xaf, 0x01, 0x21, 0x10, 0x04};
    assert_int_equal(es_flv_audio_parse(raw, sizeof raw, &a), 0);
    assert_false(a.config);
    assert_int_equal(a.packet_type, 1);
    assert_int_equal(a.payload_len, 3);
    assert_int_equal(es_flv_audio_parse(raw, 1, &a), ES_EPROTO);
    assert_int_equal(es_flv_audio_parse(raw, 0, &a), ES_EPROTO);

    /* MP3 22 kHz mono 16-bit (0x2a): the frame follows the first byte. */
    const uint8_t mp3[] = {0x2a, 0xff, 0xfb, 0x90};
    assert_int_equal(es_flv_audio_parse(mp3, sizeof mp3, &a), 0);
    assert_int_equal(a.codec, ES_FLV_AUDIO_MP3);
    assert_int_equal(a.sound_rate, 2);
    assert_int_equal(a.sound_type, 0);
    assert_ptr_equal(a.payload, mp3 + 1);
    assert_int_equal(a.payload_len, 3);
    /* Speex (11) is reported as other with its SoundFormat. */
    const uint8_t speex[] = {0xb6, 0x01};
    assert_int_equal(es_flv_audio_parse(speex, sizeof speex, &a), 0);
    assert_int_equal(a.codec, ES_FLV_AUDIO_OTHER);
    assert_int_equal(a.codec_id, 11);

    /* Enhanced RTMP v2 ExHeader: SoundFormat 9, AudioPacketType, FourCC. */
    const uint8_t opus_seq[] = {0x90, 'O', 'p', 'u', 's', 0x01, 0x02};
    assert_int_equal(es_flv_audio_parse(opus_seq, sizeof opus_seq, &a), 0);
    assert_true(a.enhanced);
    assert_int_equal(a.codec, ES_FLV_AUDIO_OPUS);
    assert_true(a.config);
    assert_ptr_equal(a.payload, opus_seq + 5);
    const uint8_t opus[] = {0x91, 'O', 'p', 'u', 's', 0xfc, 0xff};
    assert_int_equal(es_flv_audio_parse(opus, sizeof opus, &a), 0);
    assert_false(a.config);
    assert_int_equal(a.packet_type, 1);
    assert_int_equal(a.payload_len, 2);
    const uint8_t mp4a[] = {0x90, 'm', 'p', '4', 'a', 0x12, 0x10};
    assert_int_equal(es_flv_audio_parse(mp4a, sizeof mp4a, &a), 0);
    assert_int_equal(a.codec, ES_FLV_AUDIO_AAC);
    assert_int_equal(a.codec_id, ES_FLV_FOURCC('m', 'p', '4', 'a'));
    const uint8_t flac[] = {0x91, 'f', 'L', 'a', 'C'};
    assert_int_equal(es_flv_audio_parse(flac, sizeof flac, &a), 0);
    assert_int_equal(a.codec, ES_FLV_AUDIO_OTHER);
    for (size_t n = 0; n < 5; n++) assert_int_equal(es_flv_audio_parse(opus, n, &a), ES_EPROTO);
}

static void test_aac_config(void **state)
{
    es_aac_config_t c;
    const uint8_t lc44[] = {0x12, 0x10}; /* AAC-LC, index 4, 2 channels */
    assert_int_equal(es_aac_config_parse(lc44, sizeof lc44, &c), 0);
    assert_int_equal(c.object_type, 2);
    assert_int_equal(c.freq_index, 4);
    assert_int_equal(c.sample_rate, 44100);
    assert_int_equal(c.channel_config, 2);
    assert_int_equal(c.channels, 2);

    const uint8_t lc48m[] = {0x11, 0x88}; /* 00010 0011 0001 000 */
    assert_int_equal(es_aac_config_parse(lc48m, sizeof lc48m, &c), 0);
    assert_int_equal(c.sample_rate, 48000);
    assert_int_equal(c.channels, 1);

    /* HE-AAC signalled explicitly: object type 5, 24 kHz core (index 6), stereo, then the
     * extension frequency (which this parser does not unwind). */
    const uint8_t he[] = {0x2b, 0x11, 0x88, 0x00};
    assert_int_equal(es_aac_config_parse(he, sizeof he, &c), 0);
    assert_int_equal(c.object_type, 5);
    assert_int_equal(c.sample_rate, 24000);
    assert_int_equal(c.channels, 2);

    /* Explicit frequency: index 15 then 24 bits (e.g. 12345 Hz = 0x003039), channels 1.
     * 00010 1111 000000000011000000111001 0001 -> bits packed MSB-first. */
    const uint8_t expl[] = {0x17, 0x80, 0x18, 0x1c, 0x88};
    assert_int_equal(es_aac_config_parse(expl, sizeof expl, &c), 0);
    assert_int_equal(c.freq_index, 15);
    assert_int_equal(c.sample_rate, 12345);
    assert_int_equal(c.channel_config, 1);
    assert_int_equal(es_aac_config_parse(expl, 4, &c), ES_EPROTO);

    /* Escaped object type: 31 then 6 bits (42 - 32 = 10): USAC is 42. 11111 001010 0011 0010 */
    const uint8_t esc[] = {0xf9, 0x46, 0x40};
    assert_int_equal(es_aac_config_parse(esc, sizeof esc, &c), 0);
    assert_int_equal(c.object_type, 42);
    assert_int_equal(c.sample_rate, 48000);
    assert_int_equal(c.channel_config, 2);

    /* 7 -> 8 channels (7.1); reserved index 13; truncation. */
    const uint8_t ch8[] = {0x11, 0xb8};
    assert_int_equal(es_aac_config_parse(ch8, sizeof ch8, &c), 0);
    assert_int_equal(c.channels, 8);
    const uint8_t idx13[] = {0x16, 0x90};
    assert_int_equal(es_aac_config_parse(idx13, sizeof idx13, &c), ES_EPROTO);
    assert_int_equal(es_aac_config_parse(lc44, 1, &c), ES_EPROTO);
    assert_int_equal(es_aac_config_parse(NULL, 0, &c), ES_EPROTO);
}

static void test_writers(void **state)
{
    uint8_t h[ES_FLV_HEADER_SIZE];
    es_flv_write_header(h, true, true);
    const uint8_t want[] = {'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0};
    assert_memory_equal(h, want, sizeof want);
    es_flv_write_header(h, false, true);
    assert_int_equal(h[4], 1);

    uint8_t t[ES_FLV_TAG_HEADER_SIZE];
    assert_int_equal(es_flv_write_tag_header(t, ES_FLV_TAG_VIDEO, 0x12345678, 0x0abcde), 0);
    const uint8_t want_t[] = {9, 0x0a, 0xbc, 0xde, 0x34, 0x56, 0x78, 0x12, 0, 0, 0};
    assert_memory_equal(t, want_t, sizeof want_t);
    assert_int_equal(es_flv_write_tag_header(t, ES_FLV_TAG_VIDEO, 0, 0x1000000), ES_ERANGE);
    uint8_t p[4];
    es_flv_write_prev_size(p, 0x0abcde);
    const uint8_t want_p[] = {0, 0x0a, 0xbc, 0xe9};
    assert_memory_equal(p, want_p, 4);
}

/* Builds a small FLV: header, then tags (audio, video with a timestamp past 24 bits, data). */
static size_t build_flv(uint8_t *buf)
{
    size_t n = 0;
    es_flv_write_header(buf, true, true);
    n += ES_FLV_HEADER_SIZE;
    static const struct { uint8_t type; uint32_t ts; uint8_t body[6]; size_t len; } tags[] = {
        {ES_FLV_TAG_AUDIO, 0, {0xaf, 0x00, 0x12, 0x10}, 4},
        {ES_FLV_TAG_VIDEO, 0x01234567, {0x17, 0x01, 0, 0, 0, 0x65}, 6},
        {ES_FLV_TAG_DATA, 0xfffffffe, {0}, 0},
    };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(es_flv_write_tag_header(buf + n, tags[i].type, tags[i].ts,
                                                 (uint32_t)tags[i].len), 0);
        n += ES_FLV_TAG_HEADER_SIZE;
        memcpy(buf + n, tags[i].body, tags[i].len);
        n += tags[i].len;
        es_flv_write_prev_size(buf + n, (uint32_t)tags[i].len);
        n += 4;
    }
    return n;
}

static void check_stream(const uint8_t *buf, size_t n)
{
    es_flv_tag_t tag;
    size_t off = 0;
    int rc = es_flv_read_tag(buf, n, &tag);
    assert_int_equal(rc, 13);
    assert_true(tag.is_header && tag.has_audio && tag.has_video);
    off += (size_t)rc;
    rc = es_flv_read_tag(buf + off, n - off, &tag);
    assert_int_equal(rc, 11 + 4 + 4);
    assert_false(tag.is_header);
    assert_int_equal(tag.type, ES_FLV_TAG_AUDIO);
    assert_int_equal(tag.data_len, 4);
    off += (size_t)rc;
    rc = es_flv_read_tag(buf + off, n - off, &tag);
    assert_int_equal(rc, 11 + 6 + 4);
    assert_int_equal(tag.type, ES_FLV_TAG_VIDEO);
    assert_int_equal(tag.timestamp_ms, 0x01234567);
    es_flv_video_t v;
    assert_int_equal(es_flv_video_parse(tag.data, tag.data_len, &v), 0);
    assert_int_equal(v.codec, ES_FLV_VIDEO_AVC);
    off += (size_t)rc;
    rc = es_flv_read_tag(buf + off, n - off, &tag);
    assert_int_equal(rc, 15);
    assert_int_equal(tag.type, ES_FLV_TAG_DATA);
    assert_int_equal(tag.timestamp_ms, 0xfffffffe);
    assert_int_equal(tag.data_len, 0);
    off += (size_t)rc;
    assert_int_equal(off, n);
    assert_int_equal(es_flv_read_tag(buf + off, 0, &tag), ES_EAGAIN);
}

static void test_reader_round_trip(void **state)
{
    uint8_t buf[256];
    size_t n = build_flv(buf);
    check_stream(buf, n);

    /* Byte by byte: each unit answers EAGAIN until its last byte arrives, then its size. */
    uint8_t *acc = malloc(n);
    size_t have = 0, consumed = 0, units = 0;
    for (size_t i = 0; i < n; i++) {
        acc[have++] = buf[i];
        es_flv_tag_t tag;
        int rc = es_flv_read_tag(acc + consumed, have - consumed, &tag);
        if (rc == ES_EAGAIN) continue;
        assert_true(rc > 0);
        consumed += (size_t)rc;
        units++;
        assert_int_equal(consumed, i + 1);
    }
    assert_int_equal(units, 4);
    assert_int_equal(consumed, n);
    free(acc);

    /* Any split in two parts gives the same units. */
    for (size_t cut = 0; cut <= n; cut++) {
        size_t off = 0;
        es_flv_tag_t tag;
        int rc;
        while ((rc = es_flv_read_tag(buf + off, cut > off ? cut - off : 0, &tag)) > 0)
            off += (size_t)rc;
        assert_int_equal(rc, ES_EAGAIN);
        assert_true(off <= cut);
        while ((rc = es_flv_read_tag(buf + off, n - off, &tag)) > 0) off += (size_t)rc;
        assert_int_equal(rc, ES_EAGAIN);
        assert_int_equal(off, n);
    }
}

static void test_reader_errors(void **state)
{
    uint8_t buf[256];
    size_t n = build_flv(buf);
    es_flv_tag_t tag;
    uint8_t bad[256];

    memcpy(bad, buf, n);
    bad[3] = 2; /* version */
    assert_int_equal(es_flv_read_tag(bad, n, &tag), ES_EPROTO);
    memcpy(bad, buf, n);
    bad[8] = 8; /* DataOffset < 9 */
    assert_int_equal(es_flv_read_tag(bad, n, &tag), ES_EPROTO);
    memcpy(bad, buf, n);
    bad[1] = 'X';
    assert_int_equal(es_flv_read_tag(bad, n, &tag), ES_EPROTO);
    memcpy(bad, buf, n);
    bad[12] = 1; /* PreviousTagSize0 */
    assert_int_equal(es_flv_read_tag(bad, n, &tag), ES_EPROTO);

    memcpy(bad, buf, n);
    bad[13] |= 0x20; /* Filter bit on the first tag */
    assert_int_equal(es_flv_read_tag(bad + 13, n - 13, &tag), ES_EPROTO);
    memcpy(bad, buf, n);
    bad[13 + 11 + 4 + 3] ^= 1; /* first tag's PreviousTagSize */
    assert_int_equal(es_flv_read_tag(bad + 13, n - 13, &tag), ES_EPROTO);

    /* A header with DataOffset 12: three reserved bytes skipped. */
    const uint8_t big[] = {'F', 'L', 'V', 1, 1, 0, 0, 0, 12, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0};
    assert_int_equal(es_flv_read_tag(big, sizeof big, &tag), 16);
    assert_false(tag.has_audio);
    assert_true(tag.has_video);
    assert_int_equal(es_flv_read_tag(big, sizeof big - 1, &tag), ES_EAGAIN);
    assert_int_equal(es_flv_read_tag(big, 2, &tag), ES_EAGAIN);
    assert_int_equal(es_flv_read_tag(NULL, 3, &tag), ES_EINVAL);
}

static void test_metadata(void **state)
{
    const uint8_t meta[] = {0x02, 0x00, 0x0a, 'o', 'n', 'M', 'e',
                            't',  'a',  'D',  'a', 't', 'a', 0x08};
    assert_true(es_flv_is_metadata(meta, sizeof meta));
    assert_true(es_flv_is_metadata(meta, 13));
    assert_false(es_flv_is_metadata(meta, 12));
    const uint8_t other[] = {0x02, 0x00, 0x0a, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'x'};
    assert_false(es_flv_is_metadata(other, sizeof other));
    const uint8_t sdf[] = {0x02, 0x00, 0x0d, '@', 's', 'e', 't', 'D', 'a', 't', 'a', 'F', 'r'};
    assert_false(es_flv_is_metadata(sdf, sizeof sdf));
    assert_false(es_flv_is_metadata(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_legacy_avc),        cmocka_unit_test(test_legacy_hevc_and_others),
        cmocka_unit_test(test_enhanced_video),    cmocka_unit_test(test_audio),
        cmocka_unit_test(test_aac_config),        cmocka_unit_test(test_writers),
        cmocka_unit_test(test_reader_round_trip), cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_metadata),
    };
    return cmocka_run_group_tests_name("flv", tests, NULL, NULL);
}
