/* RTCP compound walking, SR/RR (RFC 3550 §6.4), generic NACK and PLI (RFC 4585), FIR (RFC 5104),
 * SDES CNAME (RFC 3550 §6.5.1), REMB (draft-alvestrand-rmcat-remb-03 §2.2), and the receive
 * statistics behind report blocks (RFC 3550 A.1 sequence numbers, A.3 loss, A.8 jitter). */
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

/* Report blocks (RFC 3550 §6.4.1), 24 bytes each. */
static void write_blocks(const es_rtcp_report_t *r, uint8_t *p)
{
    for (size_t i = 0; i < r->n_blocks; i++, p += 24) {
        const es_rtcp_report_block_t *b = &r->blocks[i];
        int32_t lost = b->cumulative_lost;
        if (lost > 0x7fffff) lost = 0x7fffff; /* clamp to 24-bit signed */
        if (lost < -0x800000) lost = -0x800000;
        es_wr32(p, b->ssrc);
        es_wr32(p + 4, (uint32_t)b->fraction_lost << 24 | ((uint32_t)lost & 0xffffff));
        es_wr32(p + 8, b->highest_seq);
        es_wr32(p + 12, b->jitter);
        es_wr32(p + 16, b->lsr);
        es_wr32(p + 20, b->dlsr);
    }
}

static void write_header(uint8_t *buf, uint8_t count, uint8_t type, size_t total)
{
    buf[0] = (uint8_t)(0x80 | count);
    buf[1] = type;
    es_wr16(buf + 2, (uint16_t)(total / 4 - 1));
}

int es_rtcp_write_sr(const es_rtcp_report_t *r, uint8_t *buf, size_t cap)
{
    if (r->n_blocks > 31) return ES_EINVAL;
    size_t total = 28 + 24 * r->n_blocks;
    if (cap < total) return ES_E2BIG;
    write_header(buf, (uint8_t)r->n_blocks, ES_RTCP_SR, total);
    es_wr32(buf + 4, r->ssrc);
    es_wr32(buf + 8, (uint32_t)(r->ntp >> 32));
    es_wr32(buf + 12, (uint32_t)r->ntp);
    es_wr32(buf + 16, r->rtp_timestamp);
    es_wr32(buf + 20, r->packet_count);
    es_wr32(buf + 24, r->octet_count);
    write_blocks(r, buf + 28);
    return (int)total;
}

int es_rtcp_write_rr(const es_rtcp_report_t *r, uint8_t *buf, size_t cap)
{
    if (r->n_blocks > 31) return ES_EINVAL;
    size_t total = 8 + 24 * r->n_blocks;
    if (cap < total) return ES_E2BIG;
    write_header(buf, (uint8_t)r->n_blocks, ES_RTCP_RR, total);
    es_wr32(buf + 4, r->ssrc);
    write_blocks(r, buf + 8);
    return (int)total;
}

int es_rtcp_write_sdes_cname(uint32_t ssrc, const char *cname, uint8_t *buf, size_t cap)
{
    if (!cname) return ES_EINVAL;
    size_t n = strlen(cname);
    if (n > 255) return ES_E2BIG;
    /* header, SSRC, CNAME item (type, length, text), then at least one null octet that ends
     * the item list, padded with more nulls to 32 bits (§6.5). */
    size_t total = (4 + 4 + 2 + n + 1 + 3) & ~(size_t)3;
    if (cap < total) return ES_E2BIG;
    write_header(buf, 1, ES_RTCP_SDES, total);
    es_wr32(buf + 4, ssrc);
    buf[8] = 1; /* CNAME */
    buf[9] = (uint8_t)n;
    memcpy(buf + 10, cname, n);
    memset(buf + 10 + n, 0, total - 10 - n);
    return (int)total;
}

int es_rtcp_write_remb(uint32_t sender_ssrc, uint64_t bitrate_bps, const uint32_t *ssrcs,
                       size_t n, uint8_t *buf, size_t cap)
{
    if (n > 255) return ES_EINVAL;
    size_t total = 20 + 4 * n;
    if (cap < total) return ES_E2BIG;
    /* BR Exp (6 bits) and BR Mantissa (18 bits): bitrate = mantissa << exp, rounded down. */
    uint32_t exp = 0;
    while ((bitrate_bps >> exp) > 0x3ffff) exp++;
    uint32_t mantissa = (uint32_t)(bitrate_bps >> exp);
    /* §2.2: the media source SSRC of the common header is 0; the SSRCs follow. */
    write_fb_header(buf, 15, ES_RTCP_PSFB, total, sender_ssrc, 0);
    memcpy(buf + 12, "REMB", 4);
    buf[16] = (uint8_t)n;
    buf[17] = (uint8_t)(exp << 2 | mantissa >> 16);
    es_wr16(buf + 18, (uint16_t)mantissa);
    for (size_t i = 0; i < n; i++) es_wr32(buf + 20 + 4 * i, ssrcs[i]);
    return (int)total;
}

#define RTP_SEQ_MOD (1u << 16)
#define MAX_DROPOUT 3000  /* RFC 3550 A.1 */
#define MAX_MISORDER 100

/* RFC 3550 A.1 init_seq: a new stream, or a sender that restarted its sequence numbers. */
static void recv_stats_init_seq(es_rtp_recv_stats_t *s, uint16_t seq)
{
    s->base_seq = seq;
    s->max_seq = seq;
    s->cycles = 0;
    s->received = 0;
    s->received_prior = 0;
    s->expected_prior = 0;
}

/* Arrival time in media clock ticks, split so that it cannot overflow. */
static uint32_t media_ticks(uint64_t us, uint32_t clock_rate)
{
    uint64_t ticks = us / 1000000 * clock_rate + us % 1000000 * clock_rate / 1000000;
    return (uint32_t)ticks;
}

void es_rtp_recv_stats_update(es_rtp_recv_stats_t *s, uint16_t seq, uint32_t ts,
                              uint64_t arrival_us, uint32_t clock_rate)
{
    bool first = !s->started;
    if (first) {
        s->started = true;
        recv_stats_init_seq(s, seq);
    } else {
        uint16_t udelta = (uint16_t)(seq - s->max_seq);
        if (udelta < MAX_DROPOUT) {
            if (seq < s->max_seq) s->cycles += RTP_SEQ_MOD; /* wrapped */
            s->max_seq = seq;
        } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
            /* A large jump: A.1 waits for a second packet in sequence before restarting; the
             * simplified validation here restarts at once. */
            recv_stats_init_seq(s, seq);
            first = true;
        }
        /* else a duplicate or a reordered packet: counted, the highest stays. */
    }
    s->received++;

    /* A.8: relative transit time in media clock ticks, the jitter its smoothed difference. */
    uint32_t transit = media_ticks(arrival_us, clock_rate) - ts;
    if (!first) {
        int32_t d = (int32_t)(transit - s->transit);
        double ad = d < 0 ? -(double)d : (double)d;
        s->jitter += (ad - s->jitter) / 16.0;
    }
    s->transit = transit;
}

void es_rtp_recv_stats_on_sr(es_rtp_recv_stats_t *s, uint64_t ntp, uint64_t now_us)
{
    s->last_sr_ntp_mid = (uint32_t)(ntp >> 16);
    s->last_sr_us = now_us;
}

void es_rtp_recv_stats_block(es_rtp_recv_stats_t *s, uint32_t ssrc, uint64_t now_us,
                             es_rtcp_report_block_t *out)
{
    memset(out, 0, sizeof *out);
    out->ssrc = ssrc;
    if (s->started) {
        /* A.3 */
        uint32_t extended_max = s->cycles + s->max_seq;
        uint32_t expected = extended_max - s->base_seq + 1;
        int64_t lost = (int64_t)expected - s->received;
        if (lost > 0x7fffff) lost = 0x7fffff;
        if (lost < -0x800000) lost = -0x800000;
        uint32_t expected_interval = expected - s->expected_prior;
        uint32_t received_interval = s->received - s->received_prior;
        s->expected_prior = expected;
        s->received_prior = s->received;
        int64_t lost_interval = (int64_t)expected_interval - received_interval;
        if (expected_interval != 0 && lost_interval > 0) {
            int64_t fraction = (lost_interval << 8) / expected_interval;
            out->fraction_lost = (uint8_t)(fraction > 255 ? 255 : fraction); /* all lost: 255 */
        }
        out->cumulative_lost = (int32_t)lost;
        out->highest_seq = extended_max;
        out->jitter = (uint32_t)s->jitter;
    }
    if (s->last_sr_ntp_mid && now_us >= s->last_sr_us) {
        out->lsr = s->last_sr_ntp_mid;
        out->dlsr = (uint32_t)((now_us - s->last_sr_us) * 65536 / 1000000);
    }
}
