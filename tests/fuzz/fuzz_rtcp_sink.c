/* libFuzzer harness for a player's RTCP (es_media_sink_rtcp, src/media/stream.c): NACK, PLI,
 * FIR, RR, REMB and garbage from a WHEP player, answered from the stream's history.
 *
 * Setup per input, on a virtual clock: a stream whose publisher sends H.264 video (a STAP-A with
 * SPS and PPS, an IDR in FU-A fragments, then P frames, one packet lost, sequence numbers
 * wrapping) and Opus audio, with a sender report for each; one player (its own SSRCs, payload
 * types and extension ids) that joins after the key frame (GOP replay) and gets the rest live;
 * one tick, so the player has a sender report. Everything sent before the input is recorded.
 *
 * Input: a series of [op][length hi][length lo][compound RTCP]. op & 0x7f is how many ms pass
 * first; op & 0x80 runs es_media_stream_tick after the packet. The player's sequence numbers
 * start at a random number, so before the packet is handed over the PID of every generic NACK
 * (RFC 4585 §6.2.1) naming one of the player's SSRCs is taken as relative to the first sequence
 * number sent on that track, and an LSR of 1 in a report block (RFC 3550 §6.4.1) naming one of
 * them becomes the LSR of the last sender report sent on it, so the fuzzer can reach both.
 *
 * Invariants: every packet sent to the player is valid RTP or compound RTCP of one of its SSRCs
 * (with its payload type) and leaves the ES_STREAM_IO_ROOM bytes of room the io contract promises; after setup
 * every RTP packet is a retransmission, byte for byte one that was sent before (the history
 * never invents or alters a packet, and a lost one is never resent); retransmissions of one
 * packet are at least 20 ms apart (100 ms while the RTT is unknown); one compound packet causes
 * at most ES_RETRANSMITS_PER_S retransmissions and an input at most ES_RETRANSMITS_PER_S * (1 +
 * elapsed seconds) (the token bucket in retransmit()); the player's counters agree with what
 * was sent (retransmits, packets, nacks >= retransmits + nacks_ignored, sender reports count
 * no retransmissions); an RTT is never longer than the time since the first sender report;
 * PLIs to the publisher are ES_PLI_INTERVAL_US apart and name its video SSRC; nothing is sent
 * as RTP to the publisher. Everything is freed per input (LeakSanitizer). */
#include "estuary/bytes.h"
#include "estuary/rtcp.h"
#include "estuary/rtp.h"
#include "estuary/stream.h"

#include "../unit/media_fixtures.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SRC_V 0x11111111u
#define SRC_A 0x22222222u
#define SINK_V 0x5eed0001u
#define SINK_A 0x5eed0002u
#define PT_SRC_V 102
#define PT_SRC_A 111
#define PT_SINK_V 96
#define PT_SINK_A 109
#define MAX_ORIG 64    /* packets recorded per player track */
#define IO_ROOM ES_STREAM_IO_ROOM /* stream.h: cap >= len + ES_STREAM_IO_ROOM */
#define T0_US 5000000u /* the virtual clock at setup */

typedef struct {
    uint32_t ssrc;
    uint8_t pt;
    uint16_t base;             /* first sequence number sent */
    size_t n;                  /* packets recorded before the input */
    uint16_t seq[MAX_ORIG];
    uint8_t pkt[MAX_ORIG][1600];
    size_t len[MAX_ORIG];
    uint64_t resent_us[MAX_ORIG]; /* last retransmission; 0: none */
    bool have_lsr;
    uint32_t lsr;              /* middle 32 bits of the NTP time of the last SR sent */
} out_track_t;

static struct {
    bool fuzzing;              /* setup done: RTP to the player is a retransmission */
    uint64_t now;
    out_track_t t[2];          /* 0 video, 1 audio */
    unsigned resends;          /* during the input */
    bool resent_early;         /* a packet resent again within 100 ms */
    uint64_t first_sr_us;      /* 0: no SR sent yet */
    bool pli_sent;
    uint64_t last_pli_us;
} g;

static out_track_t *track_of(uint32_t ssrc)
{
    for (int i = 0; i < 2; i++)
        if (g.t[i].ssrc == ssrc) return &g.t[i];
    return NULL;
}

static int sink_rtp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    es_rtp_packet_t p;
    if (cap < len + IO_ROOM || es_rtp_parse(buf, len, &p) != 0) abort();
    out_track_t *t = track_of(p.ssrc);
    if (!t || p.payload_type != t->pt) abort(); /* not the player's SSRC or payload type */
    if (!g.fuzzing) {
        if (t->n == MAX_ORIG || len > sizeof t->pkt[0]) abort(); /* the setup outgrew the table */
        if (t->n == 0) t->base = p.sequence;
        t->seq[t->n] = p.sequence;
        memcpy(t->pkt[t->n], buf, len);
        t->len[t->n++] = len;
        return 0;
    }
    size_t i = 0;
    while (i < t->n && t->seq[i] != p.sequence) i++;
    if (i == t->n) abort(); /* resent something that was never sent */
    if (t->len[i] != len || memcmp(t->pkt[i], buf, len) != 0) abort(); /* altered */
    if (t->resent_us[i]) {
        if (g.now - t->resent_us[i] < 20000) abort(); /* twice within the shortest RTT */
        if (g.now - t->resent_us[i] < 100000) g.resent_early = true;
    }
    t->resent_us[i] = g.now;
    g.resends++;
    return 0;
}

/* A compound packet walks to its end without error; returns how many packets it holds. */
static int walk(const uint8_t *buf, size_t len, es_rtcp_header_t *hs, int max)
{
    size_t off = 0;
    int n = 0, rc;
    es_rtcp_header_t h;
    while ((rc = es_rtcp_next(buf, len, &off, &h)) == 1) {
        if (n < max) hs[n] = h;
        n++;
    }
    if (rc != 0 || off != len || n == 0 || n > max) abort();
    return n;
}

static int sink_rtcp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    es_rtcp_header_t hs[8];
    if (cap < len + IO_ROOM) abort();
    int n = walk(buf, len, hs, 8);
    for (int i = 0; i < n; i++) {
        if (hs[i].body_len < 4 || !track_of(es_rd32(hs[i].body))) abort(); /* not ours */
        if (hs[i].type != ES_RTCP_SR) continue;
        es_rtcp_report_t r;
        if (es_rtcp_parse_report(&hs[i], &r) != 0) abort();
        out_track_t *t = track_of(r.ssrc);
        /* RFC 3550 §6.4.1: the sender's packet count; retransmissions are not new packets. */
        if (r.packet_count != t->n) abort();
        t->have_lsr = true;
        t->lsr = (uint32_t)(r.ntp >> 16);
        if (!g.first_sr_us) g.first_sr_us = g.now;
    }
    return 0;
}

static int src_rtp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    abort(); /* the publisher gets RTCP only */
}

static int src_rtcp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    es_rtcp_header_t hs[16];
    if (cap < len + IO_ROOM) abort();
    int n = walk(buf, len, hs, 16);
    for (int i = 0; i < n; i++) {
        if (hs[i].type != ES_RTCP_PSFB || hs[i].count != ES_RTCP_FMT_PLI) continue;
        es_rtcp_fb_t fb;
        if (es_rtcp_parse_fb(&hs[i], &fb) != 0 || fb.media_ssrc != SRC_V) abort();
        if (g.pli_sent && g.now - g.last_pli_us < ES_PLI_INTERVAL_US) abort(); /* not limited */
        g.pli_sent = true;
        g.last_pli_us = g.now;
    }
    return 0;
}

/* ---- the publisher's packets ---------------------------------------------------------------- */

static void source_packet(es_media_stream_t *ms, uint8_t pt, uint16_t seq, uint32_t ts,
                          uint32_t ssrc, bool marker, const uint8_t *a, size_t an,
                          const uint8_t *b, size_t bn)
{
    uint8_t buf[1500];
    es_rtp_packet_t h = {.marker = marker, .payload_type = pt, .sequence = seq, .timestamp = ts,
                         .ssrc = ssrc};
    es_rtp_write_header(&h, buf, sizeof buf);
    size_t len = 12;
    if (pt == PT_SRC_V) { /* abs-send-time (id 3), forwarded under the player's id */
        static const uint8_t ext[] = {0xbe, 0xde, 0x00, 0x01, 0x32, 0x12, 0x34, 0x56};
        buf[0] |= 0x10;
        memcpy(buf + 12, ext, sizeof ext);
        len += sizeof ext;
    }
    if (len + an + bn > sizeof buf) abort();
    memcpy(buf + len, a, an);
    len += an;
    if (bn) memcpy(buf + len, b, bn);
    len += bn;
    es_media_stream_source_rtp(ms, g.now, buf, len);
}

/* Video from sequence number 65526 (it wraps): STAP-A(SPS, PPS), the IDR in FU-A fragments of
 * 150 bytes, then P frames; packet 65526 + lost is never sent. Returns the next sequence
 * number. */
static uint16_t send_video(es_media_stream_t *ms, uint16_t seq, uint32_t *ts, int frames,
                           bool key, uint16_t lost)
{
    for (int f = 0; f < frames; f++, *ts += 3000, g.now += 33000) {
        if (key && f == 0) {
            uint8_t stap[1 + 2 + sizeof SPS + 2 + sizeof PPS];
            size_t n = 0;
            stap[n++] = 0x78; /* STAP-A, NRI 3 */
            es_wr16(stap + n, sizeof SPS);
            memcpy(stap + n + 2, SPS, sizeof SPS);
            n += 2 + sizeof SPS;
            es_wr16(stap + n, sizeof PPS);
            memcpy(stap + n + 2, PPS, sizeof PPS);
            n += 2 + sizeof PPS;
            source_packet(ms, PT_SRC_V, seq++, *ts, SRC_V, false, stap, n, NULL, 0);
            for (size_t off = 1; off < sizeof IDR; off += 150) {
                size_t chunk = sizeof IDR - off < 150 ? sizeof IDR - off : 150;
                bool last = off + chunk == sizeof IDR;
                uint8_t fu[2] = {(uint8_t)((IDR[0] & 0xe0) | 28),
                                 (uint8_t)((off == 1 ? 0x80 : 0) | (last ? 0x40 : 0) | (IDR[0] & 0x1f))};
                source_packet(ms, PT_SRC_V, seq++, *ts, SRC_V, last, fu, 2, IDR + off, chunk);
            }
            continue;
        }
        if (seq != lost) source_packet(ms, PT_SRC_V, seq, *ts, SRC_V, true, P_SLICE, sizeof P_SLICE, NULL, 0);
        seq++;
    }
    return seq;
}

static void send_audio(es_media_stream_t *ms, uint16_t *seq, uint32_t *ts, int n)
{
    static const uint8_t opus[] = {0xfc, 0xff, 0xfe, 0x01, 0x02};
    for (int i = 0; i < n; i++, *ts += 960)
        source_packet(ms, PT_SRC_A, (*seq)++, *ts, SRC_A, false, opus, sizeof opus, NULL, 0);
}

static void send_source_sr(es_media_stream_t *ms, uint32_t ssrc, uint32_t rtp_ts)
{
    uint8_t b[64];
    es_rtcp_report_t sr = {.ssrc = ssrc, .ntp = 0xe8a1b2c300000000ull + (g.now << 12),
                           .rtp_timestamp = rtp_ts, .packet_count = 10, .octet_count = 1000};
    int n = es_rtcp_write_sr(&sr, b, sizeof b);
    if (n <= 0) abort();
    es_media_stream_source_rtcp(ms, g.now, b, (size_t)n);
}

static es_track_info_t track(es_media_kind_t kind, uint8_t pt, uint32_t ssrc, const char *mid)
{
    es_track_info_t t = {.kind = kind, .rtx_pt = -1, .ssrc = ssrc, .nack = true,
                         .pli = kind == ES_MEDIA_VIDEO, .fir = kind == ES_MEDIA_VIDEO,
                         .remb = true};
    t.codec.pt = pt;
    t.codec.apt = -1;
    if (kind == ES_MEDIA_VIDEO) {
        t.codec.codec = ES_CODEC_H264;
        t.codec.clock_rate = 90000;
        t.codec.h264_packetization_mode = 1;
        t.codec.h264_profile_level_id = 0x42e01f;
    } else {
        t.codec.codec = ES_CODEC_OPUS;
        t.codec.clock_rate = 48000;
        t.codec.channels = 2;
    }
    strcpy(t.mid, mid);
    return t;
}

/* ---- the input ------------------------------------------------------------------------------ */

/* Rebases NACK PIDs and swaps an LSR of 1 for the real one, in place (see the file comment). */
static void patch(uint8_t *b, size_t len)
{
    size_t off = 0;
    while (len - off >= 8) {
        uint8_t *p = b + off;
        size_t plen = 4 * ((size_t)es_rd16(p + 2) + 1);
        if (plen > len - off) break;
        uint8_t type = p[1], fmt = p[0] & 0x1f;
        if (type == ES_RTCP_RTPFB && fmt == ES_RTCP_FMT_NACK && plen >= 12) {
            out_track_t *t = track_of(es_rd32(p + 8));
            for (size_t q = 12; t && q + 4 <= plen; q += 4)
                es_wr16(p + q, (uint16_t)(es_rd16(p + q) + t->base));
        } else if (type == ES_RTCP_SR || type == ES_RTCP_RR) {
            for (size_t q = type == ES_RTCP_SR ? 28 : 8, k = 0; k < fmt && q + 24 <= plen; k++, q += 24) {
                out_track_t *t = track_of(es_rd32(p + q));
                if (t && t->have_lsr && es_rd32(p + q + 16) == 1) es_wr32(p + q + 16, t->lsr);
            }
        }
        off += plen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&g, 0, sizeof g);
    g.now = T0_US;
    g.t[0].ssrc = SINK_V;
    g.t[0].pt = PT_SINK_V;
    g.t[1].ssrc = SINK_A;
    g.t[1].pt = PT_SINK_A;

    es_media_stream_t *ms = es_media_stream_new("live/fuzz");
    if (!ms) abort();
    es_track_info_t src[2] = {track(ES_MEDIA_VIDEO, PT_SRC_V, SRC_V, "0"),
                              track(ES_MEDIA_AUDIO, PT_SRC_A, SRC_A, "1")};
    src[0].ext.abs_send_time = 3;
    es_track_info_t snk[2] = {track(ES_MEDIA_VIDEO, PT_SINK_V, SINK_V, "0"),
                              track(ES_MEDIA_AUDIO, PT_SINK_A, SINK_A, "1")};
    snk[0].ext.mid = snk[1].ext.mid = 4;
    snk[0].ext.abs_send_time = 7;
    es_media_io_t src_io = {.send_rtp = src_rtp, .send_rtcp = src_rtcp};
    es_media_io_t snk_io = {.send_rtp = sink_rtp, .send_rtcp = sink_rtcp};
    if (es_media_stream_set_source(ms, src, 2, src_io, g.now) != 0) abort();
    es_media_sink_t *sink = es_media_stream_add_sink(ms, snk, 2, snk_io, g.now);
    if (!sink) abort();

    uint16_t vseq = 65526, aseq = 300;
    uint32_t vts = 90000, ats = 48000;
    vseq = send_video(ms, vseq, &vts, 4, true, 0); /* the GOP so far: replayed at start */
    es_media_sink_start(sink, g.now);
    send_audio(ms, &aseq, &ats, 8);
    uint16_t lost = (uint16_t)(vseq + 3);
    vseq = send_video(ms, vseq, &vts, 12, false, lost);
    send_audio(ms, &aseq, &ats, 12);
    send_source_sr(ms, SRC_V, vts);
    send_source_sr(ms, SRC_A, ats);
    g.now += 10000;
    es_media_stream_tick(ms, g.now);
    if (g.t[0].n < 20 || g.t[1].n != 20 || !g.t[0].have_lsr || !g.t[1].have_lsr)
        abort(); /* the setup did not go as planned */

    g.fuzzing = true;
    uint64_t start = g.now;
    size_t off = 0;
    static uint8_t buf[65536 + 4];
    while (size - off >= 3) {
        uint8_t op = data[off];
        size_t len = es_rd16(data + off + 1);
        off += 3;
        if (len > size - off) len = size - off;
        memcpy(buf, data + off, len);
        off += len;
        patch(buf, len);
        g.now += (uint64_t)(op & 0x7f) * 1000;

        es_media_sink_stats_t s0 = es_media_sink_stats(sink);
        unsigned r0 = g.resends;
        g.resent_early = false;
        es_media_sink_rtcp(sink, g.now, buf, len);
        es_media_sink_stats_t s1 = es_media_sink_stats(sink);
        unsigned resent = g.resends - r0;
        if (resent > ES_RETRANSMITS_PER_S) abort(); /* one packet emptied more than the bucket */
        if (s1.retransmits - s0.retransmits != resent || s1.packets - s0.packets != resent)
            abort();
        if (s1.nacks < s0.nacks || s1.nacks_ignored < s0.nacks_ignored || s1.plis < s0.plis ||
            (s1.retransmits - s0.retransmits) + (s1.nacks_ignored - s0.nacks_ignored) >
                s1.nacks - s0.nacks)
            abort();
        if (g.resent_early && s0.rtt_us < 0 && s1.rtt_us < 0) abort(); /* 100 ms without RTT */
        if (s1.rtt_us < -1 || (s1.rtt_us >= 0 && (!g.first_sr_us ||
                                                  (uint64_t)s1.rtt_us > g.now - g.first_sr_us)))
            abort(); /* an RTT longer than the reports have existed */
        if (op & 0x80) es_media_stream_tick(ms, g.now);
    }
    /* The bucket holds ES_RETRANSMITS_PER_S and refills at as many per second. */
    if (g.resends > ES_RETRANSMITS_PER_S + (g.now - start) * ES_RETRANSMITS_PER_S / 1000000 + 1)
        abort();
    es_media_sink_stats_t s = es_media_sink_stats(sink);
    if (s.retransmits != g.resends) abort();

    es_media_stream_remove_sink(ms, sink);
    es_media_stream_free(ms);
    return 0;
}
