/* Frame and key-frame starts in RTP payloads, for the GOP cache and key-frame requests:
 * H.264 (RFC 6184 §5.6 single NAL, §5.7.1 STAP-A, §5.8 FU-A), VP8 (RFC 7741 §4.2 payload
 * descriptor, §4.3 and RFC 6386 §9.1 payload header), VP9 (RFC 9628 §4.2 payload descriptor,
 * §4.2.1 scalability structure) and AV1 (AOM AV1 RTP payload format §4.4 aggregation header).
 * Every read is bounds-checked: a truncated or malformed payload answers false. */
#include "estuary/rtp_payload.h"

#include "estuary/bytes.h"

/* What one payload begins, as far as a forwarder cares. */
typedef struct start_info {
    bool frame;     /* begins a frame */
    bool key;       /* begins a key frame (implies frame) */
} start_info_t;

/* H.264 NAL unit types (ITU-T H.264 Table 7-1) and RTP packet types (RFC 6184 §5.2). */
enum { NAL_IDR = 5, NAL_SPS = 7, NAL_STAP_A = 24, NAL_FU_A = 28 };

/* A decoder can start at an SPS (browsers send SPS, PPS, IDR in one STAP-A or in a row) or at
 * an IDR slice. A PPS alone is not counted: it follows an SPS already counted. */
static bool h264_key_nal(uint8_t type) { return type == NAL_IDR || type == NAL_SPS; }

static bool h264_start(const uint8_t *p, size_t len, start_info_t *out)
{
    if (len < 1) return false;
    uint8_t type = p[0] & 0x1f;
    if (type >= 1 && type <= 23) { /* single NAL unit packet */
        out->frame = true;
        out->key = h264_key_nal(type);
        return true;
    }
    if (type == NAL_STAP_A) {
        /* STAP-A: [NALU size (16 bits), NALU]...; each size must be non-zero and fit. */
        size_t off = 1, n = 0;
        bool key = false;
        while (off < len) {
            if (len - off < 2) return false;
            size_t size = es_rd16(p + off);
            off += 2;
            if (size == 0 || size > len - off) return false;
            key = key || h264_key_nal(p[off] & 0x1f);
            off += size;
            n++;
        }
        if (n == 0) return false;
        out->frame = true;
        out->key = key;
        return true;
    }
    if (type == NAL_FU_A) {
        /* FU indicator, FU header |S|E|R|Type|, then at least one byte of the fragment. */
        if (len < 3) return false;
        bool s = p[1] & 0x80;
        out->frame = s;
        out->key = s && h264_key_nal(p[1] & 0x1f);
        return true;
    }
    return false; /* STAP-B, MTAP, FU-B (not used by packetization-mode 0/1), reserved */
}

/* VP8 payload descriptor (RFC 7741 §4.2):
 *   |X|R|N|S|R| PID |   [X: |I|L|T|K| RSV |]   [I: |M| PictureID (7 or 15 bits)|]
 *   [L: TL0PICIDX]   [T or K: |TID|Y| KEYIDX|]   then the VP8 payload header, whose first
 * byte's bit 0 is P, the inverse key frame flag (RFC 6386 §9.1). */
static bool vp8_start(const uint8_t *p, size_t len, start_info_t *out)
{
    if (len < 1) return false;
    size_t off = 1;
    bool s = p[0] & 0x10;
    uint8_t pid = p[0] & 0x07;
    if (p[0] & 0x80) {
        if (len < 2) return false;
        uint8_t x = p[1];
        off = 2;
        if (x & 0x80) {
            if (off >= len) return false;
            off += (p[off] & 0x80) ? 2 : 1;
        }
        if (x & 0x40) off++;
        if (x & 0x30) off++;
    }
    if (off >= len) return false; /* no VP8 payload after the descriptor */
    out->frame = s && pid == 0;
    out->key = out->frame && !(p[off] & 0x01);
    return true;
}

/* VP9 payload descriptor (RFC 9628 §4.2):
 *   |I|P|L|F|B|E|V|Z|   [I: |M| PictureID (7 or 15 bits)|]
 *   [L: |TID|U|SID|D|, and TL0PICIDX when F=0]   [F and P: up to 3 × |P_DIFF|N|]
 *   [V: scalability structure (§4.2.1)]. */
static bool vp9_start(const uint8_t *p, size_t len, start_info_t *out)
{
    if (len < 1) return false;
    uint8_t d = p[0];
    bool i = d & 0x80, pred = d & 0x40, l = d & 0x20, f = d & 0x10, b = d & 0x08, v = d & 0x02;
    size_t off = 1;
    if (i) {
        if (off >= len) return false;
        off += (p[off] & 0x80) ? 2 : 1;
    }
    uint8_t sid = 0;
    if (l) {
        if (off >= len) return false;
        sid = (p[off] >> 1) & 0x07;
        off += f ? 1 : 2;
    }
    if (f && pred) {
        for (int n = 0;; n++) { /* reference indices, N bit says another follows */
            if (n == 3 || off >= len) return false;
            if (!(p[off++] & 0x01)) break;
        }
    }
    if (v) { /* |N_S|Y|G|RSV|, [Y: (N_S+1) × WIDTH, HEIGHT], [G: N_G, N_G × (|TID|U|R|RSV| R × P_DIFF)] */
        if (off >= len) return false;
        uint8_t ss = p[off++];
        if (ss & 0x10) off += 4u * ((ss >> 5) + 1u);
        if (ss & 0x08) {
            if (off >= len) return false;
            uint8_t ng = p[off++];
            for (uint8_t g = 0; g < ng; g++) {
                if (off >= len) return false;
                off += 1u + ((p[off] >> 2) & 0x03);
            }
        }
    }
    if (off >= len) return false; /* no VP9 payload after the descriptor */
    out->frame = b;
    out->key = b && !pred && sid == 0;
    return true;
}

/* AV1 aggregation header (AV1 RTP payload format §4.4): |Z|Y| W |N|-|-|-|. Z=1 continues an OBU
 * fragment of the previous packet; N=1 marks the first packet of a coded video sequence. N
 * with Z=1 contradicts itself (a sequence cannot begin mid-OBU), so it does not count. */
static bool av1_start(const uint8_t *p, size_t len, start_info_t *out)
{
    if (len < 2) return false; /* the header alone carries no OBU data */
    bool z = p[0] & 0x80, n = p[0] & 0x08;
    out->frame = !z;
    out->key = !z && n;
    return true;
}

static bool payload_start(es_codec_t codec, const uint8_t *payload, size_t len,
                          start_info_t *out)
{
    out->frame = out->key = false;
    if (!payload && len) return false;
    switch (codec) {
    case ES_CODEC_H264: return h264_start(payload, len, out);
    case ES_CODEC_VP8: return vp8_start(payload, len, out);
    case ES_CODEC_VP9: return vp9_start(payload, len, out);
    case ES_CODEC_AV1: return av1_start(payload, len, out);
    case ES_CODEC_OPUS:
    case ES_CODEC_OTHER: /* audio and the like: every packet stands alone */
        out->frame = true;
        return true;
    default: return false; /* no codec, or RTX whose payload starts with the original seq */
    }
}

bool es_rtp_keyframe_start(es_codec_t codec, const uint8_t *payload, size_t len)
{
    start_info_t s;
    return payload_start(codec, payload, len, &s) && s.key;
}

bool es_rtp_frame_start(es_codec_t codec, const uint8_t *payload, size_t len)
{
    start_info_t s;
    return payload_start(codec, payload, len, &s) && s.frame;
}
