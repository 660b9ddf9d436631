/* RTCP compound walking, SR/RR (RFC 3550 §6.4), generic NACK and PLI (RFC 4585), FIR (RFC 5104). */
#include "estuary/rtcp.h"

#include "estuary/bytes.h"
#include "estuary/error.h"

#include <string.h>


int es_rtcp_next(const uint8_t *buf, size_t len, size_t *offset, es_rtcp_header_t *out)
{
    size_t off = *offset;
    if (off >= len) return 0;
    if (len - off < 4 || (buf[off] >> 6) != 2) return ES_EPROTO;
    size_t total = ((size_t)es_rd16(buf + off + 2) + 1) * 4;
    if (total > len - off) return ES_EPROTO;
    size_t body_len = total - 4;
    if (buf[off] & 0x20) { /* padding: the last byte counts it, header excluded */
        uint8_t pad = buf[off + total - 1];
        if (pad == 0 || pad > body_len) return ES_EPROTO;
        body_len -= pad;
    }
    out->count = buf[off] & 0x1f;
    out->type = buf[off + 1];
    out->total_len = total;
    out->body = buf + off + 4;
    out->body_len = body_len;
    *offset = off + total;
    return 1;
}

int es_rtcp_parse_report(const es_rtcp_header_t *hdr, es_rtcp_report_t *out)
{
    const uint8_t *p = hdr->body;
    size_t need = hdr->type == ES_RTCP_SR ? 24 : hdr->type == ES_RTCP_RR ? 4 : 0;
    if (!need || hdr->body_len < need + 24u * hdr->count) return ES_EPROTO;
    memset(out, 0, sizeof *out);
    out->ssrc = es_rd32(p);
    if (hdr->type == ES_RTCP_SR) {
        out->ntp = (uint64_t)es_rd32(p + 4) << 32 | es_rd32(p + 8);
        out->rtp_timestamp = es_rd32(p + 12);
        out->packet_count = es_rd32(p + 16);
        out->octet_count = es_rd32(p + 20);
    }
    p += need;
    out->n_blocks = hdr->count;
    for (size_t i = 0; i < out->n_blocks; i++, p += 24) {
        es_rtcp_report_block_t *b = &out->blocks[i];
        b->ssrc = es_rd32(p);
        b->fraction_lost = p[4];
        uint32_t lost = (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
        b->cumulative_lost = (lost & 0x800000) ? (int32_t)lost - 0x1000000 : (int32_t)lost;
        b->highest_seq = es_rd32(p + 8);
        b->jitter = es_rd32(p + 12);
        b->lsr = es_rd32(p + 16);
        b->dlsr = es_rd32(p + 20);
    }
    return 0;
}

int es_rtcp_parse_fb(const es_rtcp_header_t *hdr, es_rtcp_fb_t *out)
{
    if ((hdr->type != ES_RTCP_RTPFB && hdr->type != ES_RTCP_PSFB) || hdr->body_len < 8)
        return ES_EPROTO;
    out->sender_ssrc = es_rd32(hdr->body);
    out->media_ssrc = es_rd32(hdr->body + 4);
    out->fci = hdr->body + 8;
    out->fci_len = hdr->body_len - 8;
    return 0;
}

int es_rtcp_nack_lost(const es_rtcp_fb_t *fb, uint16_t *seqs, size_t max)
{
    if (fb->fci_len % 4) return ES_EPROTO;
    size_t n = 0;
    for (size_t off = 0; off < fb->fci_len; off += 4) {
        uint16_t pid = es_rd16(fb->fci + off), blp = es_rd16(fb->fci + off + 2);
        if (n < max) seqs[n++] = pid;
        for (int bit = 0; bit < 16; bit++)
            if ((blp >> bit) & 1 && n < max) seqs[n++] = (uint16_t)(pid + bit + 1);
    }
    return (int)n;
}

static void write_fb_header(uint8_t *buf, uint8_t fmt, uint8_t type, size_t total,
                            uint32_t sender, uint32_t media)
{
    buf[0] = (uint8_t)(0x80 | fmt);
    buf[1] = type;
    es_wr16(buf + 2, (uint16_t)(total / 4 - 1));
    es_wr32(buf + 4, sender);
    es_wr32(buf + 8, media);
}

int es_rtcp_write_nack(uint32_t sender_ssrc, uint32_t media_ssrc, const uint16_t *seqs, size_t n,
                       uint8_t *buf, size_t cap)
{
    size_t off = 12;
    for (size_t i = 0; i < n;) {
        if (cap < off + 4) return ES_E2BIG;
        uint16_t pid = seqs[i++], blp = 0;
        while (i < n && (uint16_t)(seqs[i] - pid) >= 1 && (uint16_t)(seqs[i] - pid) <= 16) {
            blp |= (uint16_t)(1u << ((uint16_t)(seqs[i] - pid) - 1));
            i++;
        }
        es_wr16(buf + off, pid);
        es_wr16(buf + off + 2, blp);
        off += 4;
    }
    if (cap < off) return ES_E2BIG;
    write_fb_header(buf, ES_RTCP_FMT_NACK, ES_RTCP_RTPFB, off, sender_ssrc, media_ssrc);
    return (int)off;
}

int es_rtcp_write_pli(uint32_t sender_ssrc, uint32_t media_ssrc, uint8_t *buf, size_t cap)
{
    if (cap < 12) return ES_E2BIG;
    write_fb_header(buf, ES_RTCP_FMT_PLI, ES_RTCP_PSFB, 12, sender_ssrc, media_ssrc);
    return 12;
}

int es_rtcp_write_fir(uint32_t sender_ssrc, uint32_t media_ssrc, uint8_t seq_nr, uint8_t *buf,
                      size_t cap)
{
    if (cap < 20) return ES_E2BIG;
    /* RFC 5104 §4.3.1.2: the media source SSRC of the common header is 0; the FCI names it. */
    write_fb_header(buf, ES_RTCP_FMT_FIR, ES_RTCP_PSFB, 20, sender_ssrc, 0);
    es_wr32(buf + 12, media_ssrc);
    buf[16] = seq_nr;
    buf[17] = buf[18] = buf[19] = 0;
    return 20;
}
