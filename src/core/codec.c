/* Codec names (the rtpmap encoding names of RFC 7587, 6184, 7741, 9628, 4588 and AV1's RTP
 * payload format). */
#include "estuary/codec.h"

#include <strings.h>

static const struct {
    es_codec_t codec;
    const char *name;
} codecs[] = {
    {ES_CODEC_OPUS, "opus"}, {ES_CODEC_H264, "H264"}, {ES_CODEC_VP8, "VP8"},
    {ES_CODEC_VP9, "VP9"},   {ES_CODEC_AV1, "AV1"},   {ES_CODEC_RTX, "rtx"},
};

es_codec_t es_codec_from_name(const char *name)
{
    if (!name) return ES_CODEC_NONE;
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++)
        if (!strcasecmp(name, codecs[i].name)) return codecs[i].codec;
    return ES_CODEC_OTHER;
}

const char *es_codec_name(es_codec_t codec)
{
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++)
        if (codecs[i].codec == codec) return codecs[i].name;
    return "?";
}

bool es_codec_is_video(es_codec_t codec)
{
    return codec == ES_CODEC_H264 || codec == ES_CODEC_VP8 || codec == ES_CODEC_VP9 ||
           codec == ES_CODEC_AV1;
}
