/* RTP header parse/write (RFC 3550 §5.1) and header extensions (RFC 8285 §4.2, §4.3). */
#include "estuary/rtp.h"

#include "estuary/bytes.h"
#include "estuary/error.h"

#include <string.h>


int es_rtp_parse(const uint8_t *buf, size_t len, es_rtp_packet_t *out)
{
    if (len < ES_RTP_MIN_HEADER || (buf[0] >> 6) != 2) return ES_EPROTO;
    memset(out, 0, sizeof *out);
    bool padding = buf[0] & 0x20, extension = buf[0] & 0x10;
    out->csrc_count = buf[0] & 0x0f;
    out->marker = buf[1] & 0x80;
    out->payload_type = buf[1] & 0x7f;
    out->sequence = es_rd16(buf + 2);
    out->timestamp = es_rd32(buf + 4);
    out->ssrc = es_rd32(buf + 8);
    size_t off = ES_RTP_MIN_HEADER;
    if (len < off + 4u * out->csrc_count) return ES_EPROTO;
    for (unsigned i = 0; i < out->csrc_count; i++, off += 4) out->csrc[i] = es_rd32(buf + off);
    if (extension) {
        if (len < off + 4) return ES_EPROTO;
        out->ext_profile = es_rd16(buf + off);
        size_t words = es_rd16(buf + off + 2);
        off += 4;
        if (len - off < words * 4) return ES_EPROTO;
        out->ext = buf + off;
        out->ext_len = words * 4;
        off += words * 4;
    }
    size_t end = len;
    if (padding) {
        uint8_t pad = buf[len - 1];
        if (pad == 0 || pad > len - off) return ES_EPROTO;
        out->padding_len = pad;
        end -= pad;
    }
    out->header_len = off;
    out->payload = buf + off;
    out->payload_len = end - off;
    return 0;
}

int es_rtp_ext_find(const es_rtp_packet_t *pkt, uint8_t id, const uint8_t **data)
{
    if (!pkt->ext) return ES_ENOENT;
    bool one_byte = pkt->ext_profile == 0xBEDE;
    bool two_byte = (pkt->ext_profile & 0xFFF0) == 0x1000;
    if (!one_byte && !two_byte) return ES_EPROTO;
    const uint8_t *p = pkt->ext, *end = pkt->ext + pkt->ext_len;
    while (p < end) {
        if (*p == 0) { /* padding byte between elements */
            p++;
            continue;
        }
        uint8_t eid;
        size_t elen;
        if (one_byte) {
            eid = *p >> 4;
            if (eid == 15) return ES_ENOENT; /* RFC 8285 §4.2: id 15 stops processing */
            elen = (size_t)(*p & 0x0f) + 1;
            p++;
        } else {
            if (end - p < 2) return ES_EPROTO;
            eid = p[0];
            elen = p[1];
            p += 2;
        }
        if ((size_t)(end - p) < elen) return ES_EPROTO;
        if (eid == id) {
            *data = p;
            return (int)elen;
        }
        p += elen;
    }
    return ES_ENOENT;
}

int es_rtp_write_header(const es_rtp_packet_t *pkt, uint8_t *buf, size_t cap)
{
    if (cap < ES_RTP_MIN_HEADER) return ES_E2BIG;
    buf[0] = 0x80;
    buf[1] = (uint8_t)((pkt->marker ? 0x80 : 0) | (pkt->payload_type & 0x7f));
    es_wr16(buf + 2, pkt->sequence);
    es_wr32(buf + 4, pkt->timestamp);
    es_wr32(buf + 8, pkt->ssrc);
    return ES_RTP_MIN_HEADER;
}
