/* libFuzzer harness for the payload-format helpers (src/rtp/rtp_payload.c): every codec reads
 * the input as an RTP payload. Invariants: a key-frame start is always a frame start, Opus
 * always starts a frame and never a key frame, and the answers do not depend on the bytes past
 * `len` (the same input copied into an exact-size buffer answers the same). */
#include "estuary/rtp_payload.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const es_codec_t video[] = {ES_CODEC_H264, ES_CODEC_VP8, ES_CODEC_VP9, ES_CODEC_AV1};
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    for (size_t i = 0; i < sizeof video / sizeof video[0]; i++) {
        bool key = es_rtp_keyframe_start(video[i], data, size);
        bool start = es_rtp_frame_start(video[i], data, size);
        if (key && !start) abort();
        if (key != es_rtp_keyframe_start(video[i], copy, size)) abort();
        if (start != es_rtp_frame_start(video[i], copy, size)) abort();
    }
    if (!es_rtp_frame_start(ES_CODEC_OPUS, data, size)) abort();
    if (es_rtp_keyframe_start(ES_CODEC_OPUS, data, size)) abort();
    if (es_rtp_frame_start(ES_CODEC_RTX, data, size)) abort();
    free(copy);
    return 0;
}
