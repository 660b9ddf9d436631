/* libFuzzer harness for the H.264 RTP depacketizer (es_h264_depack_*, src/rtp/h264.c).
 * Byte 0, bit 0 picks the mode:
 *  - 0, packets: the rest is records [seq delta: int8][flags][len][len payload bytes]; flags
 *    bit 0 is the marker, bits 1-2 the timestamp step (0, +3000, -3000, +2^30), bits 3-7 the
 *    time step in 10 ms units; a seq delta of -128 resets the depacketizer instead, and a time
 *    step of 31 calls handle_timeout at the next deadline instead of pushing.
 *  - 1, round trip: byte 1 picks the maximum payload (3..1500), bits 1-2 of byte 0 the NAL
 *    length size (1, 2, 4, 4); the rest is an AVCC access unit, packetized with
 *    es_h264_packetize after a fixed IDR access unit and fed in order.
 * Invariants: every emitted access unit is valid AVCC with 4-byte lengths that add up, at most
 * ES_H264_AU_MAX bytes, non-empty NAL units of types 1..23 only and no AUD or filler, at least
 * one slice, `key` exactly when it holds an IDR slice and `has_params` exactly when it holds an
 * SPS or PPS; the first one after creation, reset or a loss is a key frame; the counters match
 * the callbacks; push returns only the documented codes. In round-trip mode, the fuzzed access
 * unit comes back exactly: its NAL units the packetizer sends, with 4-byte lengths, or nothing
 * when it has no slice. */
#include "estuary/error.h"
#include "estuary/h264.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct ctx {
    es_h264_depack_t *d;
    uint64_t emitted;
    bool need_key;       /* the next access unit emitted must be a key frame */
    uint64_t last_loss;  /* lost + aus_broken at the last emit (not malformed: a malformed
                          * packet is counted when pushed, maybe before earlier ones emit) */
    uint8_t *copy;       /* the last access unit (round-trip mode) */
    size_t copy_len;
    bool copy_key;
} ctx_t;

static uint64_t losses(const es_h264_depack_t *d)
{
    es_h264_depack_stats_t st = es_h264_depack_stats(d);
    return st.lost + st.aus_broken;
}

static void on_au(void *user, const es_h264_au_t *au)
{
    ctx_t *c = user;
    if (!au->data || au->len == 0 || au->len > ES_H264_AU_MAX) abort();
    size_t off = 0;
    bool idr = false, params = false, slice = false;
    while (off < au->len) {
        if (au->len - off < 4) abort();
        size_t n = (size_t)au->data[off] << 24 | (size_t)au->data[off + 1] << 16 |
                   (size_t)au->data[off + 2] << 8 | au->data[off + 3];
        off += 4;
        if (n == 0 || n > au->len - off) abort();
        uint8_t t = au->data[off] & 0x1f;
        if (t == 0 || t >= 24 || t == 9 || t == 12) abort();
        idr |= t == 5;
        params |= t == 7 || t == 8;
        slice |= t >= 1 && t <= 5;
        off += n;
    }
    if (!slice || au->key != idr || au->has_params != params) abort();
    uint64_t l = losses(c->d);
    if (l != c->last_loss) c->need_key = true;
    if (c->need_key && !au->key) abort();
    c->need_key = false;
    c->last_loss = l;
    if (au->params_changed) {
        const uint8_t *sps, *pps;
        size_t sl, pl;
        if (es_h264_depack_params(c->d, &sps, &sl, &pps, &pl) != 0) abort();
        if ((sps[0] & 0x1f) != 7 || (pps[0] & 0x1f) != 8) abort();
        if (sl > ES_H264_PARAM_MAX || pl > ES_H264_PARAM_MAX) abort();
    }
    c->emitted++;
    free(c->copy);
    c->copy = malloc(au->len);
    if (!c->copy) abort();
    memcpy(c->copy, au->data, au->len);
    c->copy_len = au->len;
    c->copy_key = au->key;
}

static void check_rc(ctx_t *c, int rc)
{
    if (rc < 0 && rc != ES_EPROTO && rc != ES_E2BIG && rc != ES_ENOMEM) abort();
    es_h264_depack_stats_t st = es_h264_depack_stats(c->d);
    if (st.aus != c->emitted) abort();
}

static void packets(ctx_t *c, const uint8_t *p, size_t n)
{
    uint16_t seq = 1000;
    uint32_t ts = 0xfffff000u;
    uint64_t now = 1000000;
    static const uint32_t steps[4] = {0, 3000, (uint32_t)-3000, 1u << 30};
    for (size_t off = 0; n - off >= 3;) {
        int8_t delta = (int8_t)p[off];
        uint8_t flags = p[off + 1];
        size_t len = p[off + 2];
        off += 3;
        if (len > n - off) len = n - off;
        if (delta == -128) {
            es_h264_depack_reset(c->d);
            c->need_key = true;
            c->last_loss = losses(c->d);
            off += len;
            continue;
        }
        if (flags >> 3 == 31) {
            uint64_t t = es_h264_depack_next_timeout(c->d);
            if (t != UINT64_MAX) {
                if (t < now) abort(); /* a deadline is never before the last arrival */
                now = t;
                int rc = es_h264_depack_handle_timeout(c->d, now);
                check_rc(c, rc);
                if (rc < 0 || es_h264_depack_next_timeout(c->d) <= now) abort();
            }
            off += len;
            continue;
        }
        seq = (uint16_t)(seq + delta);
        ts += steps[(flags >> 1) & 3];
        now += (uint64_t)(flags >> 3) * 10000;
        int rc = es_h264_depack_push(c->d, seq, ts, flags & 1, p + off, len, now);
        check_rc(c, rc);
        if (rc >= 0 && es_h264_depack_next_timeout(c->d) <= now) abort(); /* nothing overdue */
        off += len;
    }
}

typedef struct plist {
    uint8_t (*p)[ES_H264_PAYLOAD_MAX];
    size_t *len;
    bool *marker;
    size_t n, cap;
} plist_t;

static void to_list(void *user, const uint8_t *payload, size_t len, bool marker)
{
    plist_t *l = user;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->p = realloc(l->p, l->cap * sizeof *l->p);
        l->len = realloc(l->len, l->cap * sizeof *l->len);
        l->marker = realloc(l->marker, l->cap * sizeof *l->marker);
        if (!l->p || !l->len || !l->marker) abort();
    }
    memcpy(l->p[l->n], payload, len);
    l->len[l->n] = len;
    l->marker[l->n] = marker;
    l->n++;
}

static void round_trip(ctx_t *c, unsigned ls, size_t max, const uint8_t *au, size_t len)
{
    static const uint8_t idr[] = {0, 0, 0, 4, 0x67, 0x42, 0xc0, 0x0d, 0, 0, 0, 2, 0x68, 0xcb,
                                  0, 0, 0, 3, 0x65, 0x88, 0x84};
    plist_t l;
    memset(&l, 0, sizeof l);
    if (es_h264_packetize(idr, sizeof idr, 4, false, NULL, max, to_list, &l) <= 0) abort();
    size_t first = l.n;
    int rc = es_h264_packetize(au, len, ls, false, NULL, max, to_list, &l);
    uint16_t seq = 65530;
    for (size_t i = 0; i < l.n; i++) {
        int r = es_h264_depack_push(c->d, seq++, i < first ? 90000 : 93000, l.marker[i], l.p[i],
                                    l.len[i], 0);
        if (r < 0) abort();
        check_rc(c, r);
        if (i + 1 == first && (c->emitted != 1 || !c->copy_key)) abort();
    }
    if (rc < 0) {
        if (c->emitted != 1) abort();
        goto out;
    }
    /* The oracle: the sendable NAL units with 4-byte lengths. */
    uint8_t *want = malloc(len / ls * 4 + len + 4);
    size_t want_len = 0, off = 0, n;
    const uint8_t *nal;
    bool slice = false, idr_in = false;
    if (!want) abort();
    while (es_h264_avcc_next(au, len, ls, &off, &nal, &n) == 1) {
        if (n == 0) continue;
        uint8_t t = nal[0] & 0x1f;
        if (t == 0 || t == 9 || t == 12 || t >= 24) continue;
        slice |= t >= 1 && t <= 5;
        idr_in |= t == 5;
        want[want_len] = (uint8_t)(n >> 24), want[want_len + 1] = (uint8_t)(n >> 16);
        want[want_len + 2] = (uint8_t)(n >> 8), want[want_len + 3] = (uint8_t)n;
        memcpy(want + want_len + 4, nal, n);
        want_len += 4 + n;
    }
    if (!slice) {
        if (c->emitted != 1) abort();
    } else if (c->emitted != 2 || c->copy_len != want_len ||
               memcmp(c->copy, want, want_len) != 0 || c->copy_key != idr_in) {
        abort();
    }
    free(want);
out:
    free(l.p);
    free(l.len);
    free(l.marker);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    ctx_t c;
    memset(&c, 0, sizeof c);
    c.need_key = true;
    c.d = es_h264_depack_new(0, on_au, &c);
    if (!c.d) return 0;
    if (data[0] & 1) {
        if (size >= 2) {
            static const unsigned sizes[4] = {1, 2, 4, 4};
            size_t max = 3 + (size_t)data[1] * (ES_H264_PAYLOAD_MAX - 3) / 255;
            /* A copy, so that reads past the end are caught. */
            uint8_t *au = malloc(size - 2 ? size - 2 : 1);
            if (!au) abort();
            memcpy(au, data + 2, size - 2);
            round_trip(&c, sizes[(data[0] >> 1) & 3], max, au, size - 2);
            free(au);
        }
    } else {
        uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
        if (!buf) abort();
        memcpy(buf, data + 1, size - 1);
        packets(&c, buf, size - 1);
        free(buf);
    }
    es_h264_depack_free(c.d);
    free(c.copy);
    return 0;
}
