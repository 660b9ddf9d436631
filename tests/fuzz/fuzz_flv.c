/* libFuzzer harness for the FLV module (src/rtmp/flv.c): the input is read as an FLV byte stream
 * (header, then tags), and every tag body, as well as the whole input, is parsed as an audio and
 * a video tag body, an AudioSpecificConfig and a data tag. Invariants: a unit read consumes no
 * more than it was given and one byte less answers ES_EAGAIN; a tag is 11 + DataSize + 4 bytes
 * and its body lies inside the input; writing the tag header back gives the input's bytes;
 * every payload pointer stays inside the body it came from; a parsed AudioSpecificConfig has a
 * sample rate. */
#include "estuary/error.h"
#include "estuary/flv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_inside(const uint8_t *body, size_t len, const uint8_t *p, size_t plen)
{
    if (p < body || p > body + len || plen > (size_t)(body + len - p)) abort();
}

static void parse_body(const uint8_t *body, size_t len)
{
    es_flv_video_t v;
    if (es_flv_video_parse(body, len, &v) == 0) {
        check_inside(body, len, v.payload, v.payload_len);
        if (v.codec == ES_FLV_VIDEO_OTHER && !v.enhanced && (v.codec_id == 7 || v.codec_id == 12))
            abort();
        if (v.cts_ms < -8388608 || v.cts_ms > 8388607) abort();
    } else if (len >= 8) {
        abort(); /* 8 bytes hold the longest header */
    }
    es_flv_audio_t a;
    if (es_flv_audio_parse(body, len, &a) == 0) {
        check_inside(body, len, a.payload, a.payload_len);
        es_aac_config_t c;
        if (a.codec == ES_FLV_AUDIO_AAC && a.config &&
            es_aac_config_parse(a.payload, a.payload_len, &c) == 0 && c.sample_rate == 0)
            abort();
    } else if (len >= 5) {
        abort();
    }
    es_aac_config_t c;
    if (es_aac_config_parse(body, len, &c) == 0 && (c.sample_rate == 0 || c.channels > 8)) abort();
    if (es_flv_is_metadata(body, len) && (len < 13 || body[0] != 0x02)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that a read past `size` is caught by ASan. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    parse_body(buf, size);

    size_t off = 0;
    for (;;) {
        es_flv_tag_t tag;
        int rc = es_flv_read_tag(buf + off, size - off, &tag);
        if (rc == ES_EAGAIN || rc == ES_EPROTO) break;
        if (rc <= 0 || (size_t)rc > size - off) abort();
        es_flv_tag_t again;
        int shorter = es_flv_read_tag(buf + off, (size_t)rc - 1, &again);
        if (shorter != ES_EAGAIN) abort();
        if (!tag.is_header) {
            if ((size_t)rc != ES_FLV_TAG_HEADER_SIZE + tag.data_len + ES_FLV_PREV_TAG_SIZE) abort();
            check_inside(buf + off, (size_t)rc, tag.data, tag.data_len);
            uint8_t hdr[ES_FLV_TAG_HEADER_SIZE], prev[ES_FLV_PREV_TAG_SIZE];
            if (es_flv_write_tag_header(hdr, tag.type, tag.timestamp_ms, (uint32_t)tag.data_len))
                abort();
            if (memcmp(hdr, buf + off, 8) != 0) abort(); /* StreamID is not kept */
            es_flv_write_prev_size(prev, (uint32_t)tag.data_len);
            if (memcmp(prev, buf + off + rc - 4, 4) != 0) abort();
            parse_body(tag.data, tag.data_len);
        } else if (rc < ES_FLV_HEADER_SIZE) {
            abort();
        }
        off += (size_t)rc;
    }
    free(buf);
    return 0;
}
