/* libFuzzer harness for the H.264 module (src/rtp/h264.c). Input layout: byte 0 picks the NAL
 * length size (bits 0-1: 1, 2, 4, 4) and the key flag (bit 2); byte 1 the maximum payload
 * (3..1500); byte 2 the length n of an AVCDecoderConfigurationRecord that follows; the rest is
 * one AVCC access unit. The whole input is also parsed as a record and as an SPS.
 * Invariants: a parsed record writes back (es_h264_config_write) to a record that parses to the
 * same SPS and PPS; a parsed SPS has a non-zero size; the packetizer emits nothing for a
 * malformed access unit, otherwise payloads of 1..max bytes, the marker on the last only, and
 * the single NAL units, STAP-A units and FU-A fragments reassemble to exactly the access unit's
 * sendable NAL units, preceded by the record's SPS and PPS when those were due. */
#include "estuary/error.h"
#include "estuary/h264.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reassembly state: NAL units appended as [u32 length][bytes]. */
typedef struct rx {
    uint8_t *out;
    size_t len, cap;
    uint8_t *fu;       /* FU-A being reassembled */
    size_t fu_len;
    bool in_fu;
    size_t max, packets;
    bool marked;       /* a marker was seen (must be on the last packet) */
} rx_t;

static void append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *p, size_t n)
{
    if (*len + n + 4 > *cap) {
        size_t c = (*cap + n + 4) * 2;
        uint8_t *b = realloc(*buf, c);
        if (!b) abort();
        *buf = b;
        *cap = c;
    }
    uint8_t *d = *buf + *len;
    d[0] = (uint8_t)(n >> 24), d[1] = (uint8_t)(n >> 16), d[2] = (uint8_t)(n >> 8);
    d[3] = (uint8_t)n;
    if (n) memcpy(d + 4, p, n);
    *len += n + 4;
}

static void on_payload(void *user, const uint8_t *p, size_t len, bool marker)
{
    rx_t *r = user;
    if (len < 1 || len > r->max || r->marked) abort();
    r->marked = marker;
    r->packets++;
    uint8_t type = p[0] & 0x1f;
    if (type == 28) {
        if (len < 3 || (p[1] & 0x20)) abort();
        bool s = p[1] & 0x80, e = p[1] & 0x40;
        if (s == r->in_fu) abort(); /* S exactly when no fragment is open */
        if (s) {
            r->fu_len = 0;
            r->fu[r->fu_len++] = (uint8_t)((p[0] & 0xe0) | (p[1] & 0x1f));
            r->in_fu = true;
        }
        if (r->fu[0] != ((p[0] & 0xe0) | (p[1] & 0x1f))) abort();
        memcpy(r->fu + r->fu_len, p + 2, len - 2);
        r->fu_len += len - 2;
        if (e) {
            if (s) abort(); /* a NAL unit that fits is never fragmented into one FU-A */
            append(&r->out, &r->len, &r->cap, r->fu, r->fu_len);
            r->in_fu = false;
        }
        return;
    }
    if (r->in_fu) abort();
    if (type == 24) {
        size_t off = 1, units = 0;
        uint8_t nri = 0, f = 0;
        while (off < len) {
            if (len - off < 2) abort();
            size_t n = (size_t)p[off] << 8 | p[off + 1];
            off += 2;
            if (n == 0 || n > len - off) abort();
            nri = (p[off] & 0x60) > nri ? p[off] & 0x60 : nri;
            f |= p[off] & 0x80;
            append(&r->out, &r->len, &r->cap, p + off, n);
            off += n;
            units++;
        }
        if (units < 2 || (p[0] & 0x60) != nri || (p[0] & 0x80) != f) abort();
        return;
    }
    if (type == 0 || type > 23) abort();
    append(&r->out, &r->len, &r->cap, p, len);
}

static bool sendable(const uint8_t *nal, size_t len)
{
    if (len == 0) return false;
    uint8_t t = nal[0] & 0x1f;
    return t != 0 && t != 9 && t != 12 && t < 24;
}

static void packetize(const uint8_t *au, size_t len, unsigned ls, bool key,
                      const es_h264_config_t *cfg, size_t max)
{
    rx_t r;
    memset(&r, 0, sizeof r);
    r.max = max;
    r.fu = malloc(len + 2 * ES_H264_PARAM_MAX + 1);
    if (!r.fu) abort();
    int rc = es_h264_packetize(au, len, ls, key, cfg, max, on_payload, &r);

    /* The oracle: walk the AVCC independently. */
    uint8_t *want = NULL;
    size_t want_len = 0, want_cap = 0, off = 0, n = 0;
    bool malformed = false, idr = false, sps = false, pps = false;
    while (off < len) {
        if (len - off < ls) {
            malformed = true;
            break;
        }
        size_t nl = 0;
        for (unsigned i = 0; i < ls; i++) nl = nl << 8 | au[off + i];
        off += ls;
        if (nl > len - off) {
            malformed = true;
            break;
        }
        if (sendable(au + off, nl)) {
            uint8_t t = au[off] & 0x1f;
            idr |= t == 5, sps |= t == 7, pps |= t == 8;
            n++;
        }
        off += nl;
    }
    if (malformed) {
        if (rc != ES_EPROTO || r.packets != 0) abort();
        goto out;
    }
    if (rc < 0 || (size_t)rc != r.packets || r.in_fu) abort();
    if (n == 0) {
        if (rc != 0) abort();
        goto out;
    }
    if (!r.marked) abort();
    if ((idr || key) && !(sps && pps) && cfg && cfg->sps_len && cfg->pps_len &&
        (cfg->sps[0] & 0x1f) == 7 && (cfg->pps[0] & 0x1f) == 8) {
        append(&want, &want_len, &want_cap, cfg->sps, cfg->sps_len);
        append(&want, &want_len, &want_cap, cfg->pps, cfg->pps_len);
    }
    for (off = 0; off < len;) {
        size_t nl = 0;
        for (unsigned i = 0; i < ls; i++) nl = nl << 8 | au[off + i];
        off += ls;
        if (sendable(au + off, nl)) append(&want, &want_len, &want_cap, au + off, nl);
        off += nl;
    }
    if (want_len != r.len || memcmp(want, r.out, want_len) != 0) abort();
out:
    free(want);
    free(r.out);
    free(r.fu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);

    es_h264_config_t cfg;
    if (es_h264_config_parse(buf, size, &cfg) == 0) {
        if (cfg.length_size != 1 && cfg.length_size != 2 && cfg.length_size != 4) abort();
        uint8_t rec[2 * ES_H264_PARAM_MAX + 32];
        int n = es_h264_config_write(cfg.sps, cfg.sps_len, cfg.pps, cfg.pps_len, rec, sizeof rec);
        if (n > 0) {
            es_h264_config_t back;
            if (es_h264_config_parse(rec, (size_t)n, &back) != 0) abort();
            if (back.sps_len != cfg.sps_len || memcmp(back.sps, cfg.sps, cfg.sps_len) ||
                back.pps_len != cfg.pps_len || memcmp(back.pps, cfg.pps, cfg.pps_len) ||
                back.length_size != 4)
                abort();
        } else if (n != ES_EPROTO) {
            abort();
        }
    }
    es_h264_sps_t sps;
    if (es_h264_sps_parse(buf, size, &sps) == 0 &&
        (sps.width == 0 || sps.height == 0 || sps.chroma_format_idc > 3))
        abort();
    char id[7];
    if (es_h264_profile_level_id(buf, size, id) == 0 && strlen(id) != 6) abort();
    const uint8_t *nal;
    size_t off = 0, nal_len;
    while (es_h264_annexb_next(buf, size, &off, &nal, &nal_len) == 1)
        if (nal < buf || nal_len == 0 || nal + nal_len > buf + size) abort();

    if (size >= 3) {
        static const unsigned sizes[4] = {1, 2, 4, 4};
        unsigned ls = sizes[buf[0] & 3];
        bool key = buf[0] & 4;
        size_t max = 3 + (size_t)buf[1] * (ES_H264_PAYLOAD_MAX - 3) / 255;
        size_t n = buf[2] < size - 3 ? buf[2] : size - 3;
        bool have = es_h264_config_parse(buf + 3, n, &cfg) == 0;
        packetize(buf + 3 + n, size - 3 - n, ls, key, have ? &cfg : NULL, max);
    }
    free(buf);
    return 0;
}
