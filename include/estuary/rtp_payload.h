/* Payload-format helpers for forwarding: key-frame detection for H.264 (RFC 6184), VP8
 * (RFC 7741), VP9 (RFC 9628) and AV1 (AOM "RTP Payload Format for AV1" v1.0). The SFU needs
 * them for the GOP cache (start a new player at a key frame) and to know when a requested key
 * frame arrived. Sans-IO, bounds-checked: any bytes are safe input. */
#ifndef ESTUARY_RTP_PAYLOAD_H
#define ESTUARY_RTP_PAYLOAD_H

#include "estuary/codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* es_rtp_keyframe_start: true when this RTP payload (`len` bytes after the RTP header) is the
 * first packet of a key frame, so that a decoder can start with it:
 *   H.264: a single NAL, STAP-A or FU-A (start bit) carrying an SPS (7), PPS (8) or IDR (5) NAL;
 *          browsers send SPS+PPS+IDR, so an SPS or an IDR start both count.
 *   VP8:   S=1 and partition id 0 in the payload descriptor, and the VP8 frame header's
 *          P bit is 0 (RFC 7741 §4.3, RFC 6386 §9.1).
 *   VP9:   B=1 (start of frame), P=0 (not inter-predicted) and, for flexible/non-flexible
 *          modes, the spatial layer 0 (RFC 9628 §4.2).
 *   AV1:   N=1 (first packet of a coded video sequence) in the aggregation header.
 * False for anything else (audio codecs, truncated or malformed payloads). */
bool es_rtp_keyframe_start(es_codec_t codec, const uint8_t *payload, size_t len);

/* es_rtp_frame_start: true when the payload begins a new frame (H.264: single NAL/STAP-A or
 * FU-A start; VP8 S=1 PID=0; VP9 B=1; AV1 Z=0). Audio: always true. Malformed: false. */
bool es_rtp_frame_start(es_codec_t codec, const uint8_t *payload, size_t len);

#endif
