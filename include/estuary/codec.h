/* Codec identifiers shared by SDP negotiation, the media layer and the payload helpers. */
#ifndef ESTUARY_CODEC_H
#define ESTUARY_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum es_codec {
    ES_CODEC_NONE = 0,
    ES_CODEC_OPUS,   /* audio/opus/48000/2 (RFC 7587) */
    ES_CODEC_H264,   /* video/H264/90000 (RFC 6184) */
    ES_CODEC_VP8,    /* video/VP8/90000 (RFC 7741) */
    ES_CODEC_VP9,    /* video/VP9/90000 (RFC 9628) */
    ES_CODEC_AV1,    /* video/AV1/90000 (AOM RTP payload format) */
    ES_CODEC_RTX,    /* video/rtx/90000 (RFC 4588), a repair stream, not a media codec */
    ES_CODEC_OTHER,  /* anything else offered (red, ulpfec, PCMU, G722, telephone-event, ...) */
} es_codec_t;

/* es_codec_from_name: the encoding name of an a=rtpmap line ("opus", "H264", case-insensitive)
 * to a codec; ES_CODEC_OTHER when Estuary does not forward it. */
es_codec_t es_codec_from_name(const char *name);

/* es_codec_name: the rtpmap encoding name ("opus", "H264", "VP8", "VP9", "AV1", "rtx"), or "?". */
const char *es_codec_name(es_codec_t codec);

/* es_codec_is_video: true for H264, VP8, VP9, AV1. */
bool es_codec_is_video(es_codec_t codec);

#endif
