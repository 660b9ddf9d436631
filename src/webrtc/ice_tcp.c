/* ICE-TCP framing (RFC 4571 §2, as RFC 6544 §3 uses it) and the first-bytes sniffing of a
 * shared HTTP port (include/estuary/ice_tcp.h). No sockets: bytes in, frames or a verdict out. */
#include "estuary/ice_tcp.h"

#include "estuary/error.h"

#include <stdbool.h>
#include <string.h>

int es_rfc4571_next(es_rfc4571_t *d, const uint8_t **in, size_t *in_len, const uint8_t **frame,
                    size_t *frame_len)
{
    while (*in_len) {
        if (d->need == 0) {
            d->hdr[d->have++] = **in;
            (*in)++;
            (*in_len)--;
            if (d->have < 2) continue;
            size_t n = ((size_t)d->hdr[0] << 8) | d->hdr[1];
            d->have = 0;
            if (n > ES_ICE_TCP_MAX_FRAME) return ES_E2BIG;
            d->need = n; /* 0: an empty frame, skipped */
            continue;
        }
        size_t take = d->need - d->have;
        if (take > *in_len) take = *in_len;
        memcpy(d->buf + d->have, *in, take);
        d->have += take;
        *in += take;
        *in_len -= take;
        if (d->have == d->need) {
            *frame = d->buf;
            *frame_len = d->need;
            d->need = d->have = 0;
            return 1;
        }
    }
    return 0;
}

void es_rfc4571_header(uint8_t out[2], size_t len)
{
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
}

/* Byte i of a framed STUN Binding request's first ES_TCP_SNIFF_BYTES: the frame length (20..
 * ES_ICE_TCP_MAX_FRAME, a multiple of 4), type 0x0001, message length (checked against the frame
 * length by the session, not here), magic cookie 0x2112A442. */
static bool stun_byte_ok(const uint8_t *b, size_t i)
{
    static const uint8_t cookie[4] = {0x21, 0x12, 0xA4, 0x42};
    switch (i) {
    case 0: return b[0] <= (ES_ICE_TCP_MAX_FRAME >> 8);
    case 1: {
        size_t n = ((size_t)b[0] << 8) | b[1];
        return n >= 20 && n <= ES_ICE_TCP_MAX_FRAME && n % 4 == 0;
    }
    case 2: return b[2] == 0x00;
    case 3: return b[3] == 0x01;
    case 4: case 5: return true; /* the STUN message length */
    default: return b[i] == cookie[i - 6];
    }
}

es_tcp_sniff_t es_tcp_sniff(const uint8_t *buf, size_t len)
{
    if (!len) return ES_SNIFF_MORE;
    uint8_t c = buf[0];
    if (c >= 'A' && c <= 'Z') { /* a method token (RFC 9110 §9): GET, POST, OPTIONS... */
        for (size_t i = 1; i < len && i < ES_TCP_SNIFF_BYTES; i++) {
            if (buf[i] == ' ') return i >= 3 ? ES_SNIFF_HTTP : ES_SNIFF_UNKNOWN;
            if (buf[i] < 'A' || buf[i] > 'Z') return ES_SNIFF_UNKNOWN;
        }
        return len < ES_TCP_SNIFF_BYTES ? ES_SNIFF_MORE : ES_SNIFF_UNKNOWN;
    }
    if (c == 0x16) { /* TLS handshake record, version major 3 (SSL 3.0 .. TLS 1.3 records) */
        if (len < 2) return ES_SNIFF_MORE;
        return buf[1] == 0x03 ? ES_SNIFF_TLS : ES_SNIFF_UNKNOWN;
    }
    for (size_t i = 0; i < len && i < ES_TCP_SNIFF_BYTES; i++)
        if (!stun_byte_ok(buf, i)) return ES_SNIFF_UNKNOWN;
    return len < ES_TCP_SNIFF_BYTES ? ES_SNIFF_MORE : ES_SNIFF_STUN;
}

const char *es_tcp_sniff_name(es_tcp_sniff_t v)
{
    switch (v) {
    case ES_SNIFF_MORE: return "more";
    case ES_SNIFF_HTTP: return "http";
    case ES_SNIFF_TLS: return "tls";
    case ES_SNIFF_STUN: return "stun";
    default: return "unknown";
    }
}
