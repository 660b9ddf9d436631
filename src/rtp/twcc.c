/* Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01
 * §3.1), receiver side and a parser. Sans-IO.
 *
 * FCI layout (after the 12-byte RTPFB header, V=2 FMT=15 PT=205):
 *   base sequence number (16) | packet status count (16)
 *   reference time (24, signed, 64 ms units) | feedback packet count (8)
 *   packet chunks (16 bits each) covering `packet status count` packets:
 *     run length chunk    |0|S(2)|run length(13)|
 *     status vector chunk |1|0| 14 one-bit symbols |  or  |1|1| 7 two-bit symbols |
 *     symbols: 0 not received, 1 received with a small delta, 2 received with a large or
 *     negative delta, 3 reserved
 *   recv deltas in 250 µs ticks: 1 byte unsigned for symbol 1, 2 bytes signed for symbol 2;
 *   the first received packet's delta is from reference time × 64 ms, each next one from the
 *   previous received packet
 *   zero padding to 32 bits.
 *
 * The receiver keeps a ring of TWCC_WINDOW slots tagged with extended (unwrapped) sequence
 * numbers, so a slot is valid only for the packet that wrote it and nothing needs clearing. */
#include "estuary/twcc.h"

#include "estuary/bytes.h"
#include "estuary/error.h"
#include "estuary/rtcp.h"

#include <stdlib.h>
#include <string.h>

#define TWCC_WINDOW 4096u        /* packets pending at most (a power of two) */
#define TWCC_TICK_US 250
#define TWCC_REF_US 64000        /* reference time unit; 256 ticks */
#define TWCC_HEADER 20           /* RTPFB header and the fixed FCI fields */
#define TWCC_MAX_RUN 8191

enum { SYM_NONE = 0, SYM_SMALL = 1, SYM_LARGE = 2, SYM_RESERVED = 3 };

struct es_twcc_recv {
    bool started;
    bool fb_sent;             /* a feedback was built: packets before `next` are reported */
    int64_t next;             /* first extended sequence number of the next feedback */
    int64_t highest;          /* newest extended sequence number received */
    uint8_t fb_count;
    int64_t tag[TWCC_WINDOW]; /* extended sequence number held by the slot */
    uint64_t arrival_us[TWCC_WINDOW];
    /* Scratch for es_twcc_recv_build, kept here rather than on the stack. */
    uint8_t sym[TWCC_WINDOW];
    int16_t delta[TWCC_WINDOW];
};

es_twcc_recv_t *es_twcc_recv_new(void)
{
    es_twcc_recv_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    for (size_t i = 0; i < TWCC_WINDOW; i++) t->tag[i] = INT64_MIN;
    return t;
}

void es_twcc_recv_free(es_twcc_recv_t *t) { free(t); }

void es_twcc_recv_on_packet(es_twcc_recv_t *t, uint16_t seq, uint64_t arrival_us)
{
    int64_t ext = seq;
    if (t->started) {
        int64_t diff = (int16_t)(uint16_t)(seq - (uint16_t)t->highest);
        ext = t->highest + diff;
        if (diff > (int64_t)TWCC_WINDOW || diff < -(int64_t)TWCC_WINDOW) {
            /* A sender restart or a jump past the window: what was pending is given up. */
            t->next = t->highest = ext;
        } else if (ext < t->next) {
            /* Late: reported already, or before the oldest packet the window can hold. */
            if (t->fb_sent || t->highest - ext >= (int64_t)TWCC_WINDOW) return;
            t->next = ext;
        } else if (ext > t->highest) {
            t->highest = ext;
            if (t->highest - t->next >= (int64_t)TWCC_WINDOW)
                t->next = t->highest - TWCC_WINDOW + 1; /* oldest pending drop out */
        }
    } else {
        t->started = true;
        t->next = t->highest = ext;
    }
    size_t slot = (size_t)ext & (TWCC_WINDOW - 1);
    if (t->tag[slot] == ext) return; /* duplicate: the first arrival counts */
    t->tag[slot] = ext;
    t->arrival_us[slot] = arrival_us;
}

/* Greedy chunk encoding of sym[0..n): a run-length chunk for runs of 7 or more (or a run to
 * the end), else a one-bit vector of 14 when no large delta is among them, else a two-bit
 * vector of 7. Writes the chunks to out when not NULL; returns how many there are. */
static size_t encode_chunks(const uint8_t *sym, size_t n, uint8_t *out)
{
    size_t chunks = 0;
    for (size_t i = 0; i < n;) {
        size_t run = 1;
        while (i + run < n && sym[i + run] == sym[i] && run < TWCC_MAX_RUN) run++;
        uint16_t c;
        if (run >= 7 || i + run == n) {
            c = (uint16_t)(sym[i] << 13 | run);
            i += run;
        } else {
            size_t k = n - i < 14 ? n - i : 14;
            bool one_bit = true;
            for (size_t j = 0; j < k; j++) one_bit = one_bit && sym[i + j] <= SYM_SMALL;
            if (one_bit) {
                c = 0x8000;
                for (size_t j = 0; j < k; j++) c |= (uint16_t)(sym[i + j] << (13 - j));
            } else {
                k = k < 7 ? k : 7;
                c = 0xc000;
                for (size_t j = 0; j < k; j++) c |= (uint16_t)(sym[i + j] << (12 - 2 * j));
            }
            i += k;
        }
        if (out) es_wr16(out + 2 * chunks, c);
        chunks++;
    }
    return chunks;
}

/* Bytes of a feedback packet carrying the first n statuses, padding included. */
static size_t feedback_size(const uint8_t *sym, size_t n)
{
    size_t deltas = 0;
    for (size_t i = 0; i < n; i++) deltas += sym[i]; /* SYM_SMALL 1 byte, SYM_LARGE 2 */
    size_t size = TWCC_HEADER + 2 * encode_chunks(sym, n, NULL) + deltas;
    return (size + 3) & ~(size_t)3;
}

int es_twcc_recv_build(es_twcc_recv_t *t, uint32_t sender_ssrc, uint32_t media_ssrc,
                       uint8_t *buf, size_t cap)
{
    if (cap < TWCC_HEADER) return ES_E2BIG;
    if (!t->started || t->next > t->highest) return 0;
    /* The smallest feedback, one status and its delta, takes 24 bytes. */
    if (cap < TWCC_HEADER + 4) return ES_E2BIG;
    size_t total = (size_t)(t->highest - t->next + 1);

    /* The reference time comes from the first received packet; there is one, the highest. */
    uint64_t first_us = 0;
    for (size_t i = 0; i < total; i++) {
        size_t slot = (size_t)(t->next + (int64_t)i) & (TWCC_WINDOW - 1);
        if (t->tag[slot] == t->next + (int64_t)i) {
            first_us = t->arrival_us[slot];
            break;
        }
    }
    uint64_t ref = first_us / TWCC_REF_US;
    /* Ticks are floor(arrival / 250 µs), so the deltas add up without drift. */
    int64_t prev = (int64_t)(ref * (TWCC_REF_US / TWCC_TICK_US));
    size_t n = 0;
    for (; n < total; n++) {
        int64_t ext = t->next + (int64_t)n;
        size_t slot = (size_t)ext & (TWCC_WINDOW - 1);
        if (t->tag[slot] != ext) {
            t->sym[n] = SYM_NONE;
            continue;
        }
        int64_t ticks = (int64_t)(t->arrival_us[slot] / TWCC_TICK_US);
        int64_t d = ticks - prev;
        if (d < INT16_MIN || d > INT16_MAX) break; /* needs a new reference time */
        t->sym[n] = d >= 0 && d <= 255 ? SYM_SMALL : SYM_LARGE;
        t->delta[n] = (int16_t)d;
        prev = ticks;
    }
    if (feedback_size(t->sym, n) > cap) { /* largest prefix that fits */
        size_t lo = 1, hi = n - 1;
        while (lo < hi) {
            size_t mid = lo + (hi - lo + 1) / 2;
            if (feedback_size(t->sym, mid) <= cap)
                lo = mid;
            else
                hi = mid - 1;
        }
        n = lo;
    }

    size_t chunks = encode_chunks(t->sym, n, buf + TWCC_HEADER);
    size_t off = TWCC_HEADER + 2 * chunks;
    for (size_t i = 0; i < n; i++) {
        if (t->sym[i] == SYM_SMALL) {
            buf[off++] = (uint8_t)t->delta[i];
        } else if (t->sym[i] == SYM_LARGE) {
            es_wr16(buf + off, (uint16_t)t->delta[i]);
            off += 2;
        }
    }
    while (off % 4) buf[off++] = 0;

    buf[0] = 0x80 | ES_RTCP_FMT_TWCC;
    buf[1] = ES_RTCP_RTPFB;
    es_wr16(buf + 2, (uint16_t)(off / 4 - 1));
    es_wr32(buf + 4, sender_ssrc);
    es_wr32(buf + 8, media_ssrc);
    es_wr16(buf + 12, (uint16_t)t->next);
    es_wr16(buf + 14, (uint16_t)n);
    es_wr32(buf + 16, (uint32_t)(ref & 0xffffff) << 8 | t->fb_count);
    t->fb_count++;
    t->next += (int64_t)n;
    t->fb_sent = true;
    return (int)off;
}

/* Symbols a chunk holds: its run length, 14 or 7. */
static size_t chunk_capacity(uint16_t c)
{
    if (!(c & 0x8000)) return c & 0x1fff;
    return (c & 0x4000) ? 7 : 14;
}

static uint8_t chunk_symbol(uint16_t c, size_t k)
{
    if (!(c & 0x8000)) return (c >> 13) & 0x03;
    if (c & 0x4000) return (c >> (12 - 2 * k)) & 0x03;
    return (c >> (13 - k)) & 0x01;
}

int es_twcc_parse(const uint8_t *fci, size_t len, uint16_t *base_seq, int32_t *ref_time_64ms,
                  uint8_t *fb_count, es_twcc_status_t *out, size_t max)
{
    if (len < 8) return ES_EPROTO;
    uint16_t base = es_rd16(fci);
    size_t count = es_rd16(fci + 2);
    uint32_t ref = (uint32_t)fci[4] << 16 | (uint32_t)fci[5] << 8 | fci[6];
    if (count == 0) return ES_EPROTO;

    /* First pass: the chunks cover `count` statuses and the deltas they announce fit. */
    size_t off = 8, covered = 0, delta_bytes = 0;
    while (covered < count) {
        if (len - off < 2) return ES_EPROTO;
        uint16_t c = es_rd16(fci + off);
        off += 2;
        size_t k = chunk_capacity(c);
        if (k == 0) return ES_EPROTO; /* an empty run */
        if (k > count - covered) k = count - covered;
        for (size_t j = 0; j < k; j++) {
            uint8_t s = chunk_symbol(c, j);
            if (s == SYM_RESERVED) return ES_EPROTO;
            delta_bytes += s;
        }
        covered += k;
    }
    size_t deltas_at = off;
    if (len - off < delta_bytes) return ES_EPROTO;

    /* Second pass: statuses with their deltas. */
    *base_seq = base;
    *ref_time_64ms = (ref & 0x800000) ? (int32_t)ref - 0x1000000 : (int32_t)ref;
    *fb_count = fci[7];
    size_t idx = 0, d = deltas_at;
    for (off = 8; idx < count; off += 2) {
        uint16_t c = es_rd16(fci + off);
        size_t k = chunk_capacity(c);
        if (k > count - idx) k = count - idx;
        for (size_t j = 0; j < k; j++, idx++) {
            uint8_t s = chunk_symbol(c, j);
            int64_t delta = 0;
            if (s == SYM_SMALL) {
                delta = fci[d++];
            } else if (s == SYM_LARGE) {
                delta = (int16_t)es_rd16(fci + d);
                d += 2;
            }
            if (idx < max)
                out[idx] = (es_twcc_status_t){.seq = (uint16_t)(base + idx),
                                              .received = s != SYM_NONE,
                                              .delta_us = delta * TWCC_TICK_US};
        }
    }
    return (int)(count < max ? count : max);
}
