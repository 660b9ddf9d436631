/* libFuzzer harness for the RTP parser (src/rtp/rtp.c). Invariants: header + payload + padding
 * add up to the input, pointers stay inside it, every extension element found lies inside the
 * extension block, and writing the header back reproduces the parsed fields. */
#include "estuary/rtp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_rtp_packet_t p;
    if (es_rtp_parse(data, size, &p) != 0) return 0;
    if (p.header_len + p.payload_len + p.padding_len != size) abort();
    if (p.payload != data + p.header_len) abort();
    if (p.ext && (p.ext < data || p.ext + p.ext_len > data + p.header_len)) abort();
    for (unsigned id = 1; id < 256; id++) {
        const uint8_t *d;
        int n = es_rtp_ext_find(&p, (uint8_t)id, &d);
        if (n >= 0 && (d < p.ext || d + n > p.ext + p.ext_len)) abort();
    }
    uint8_t hdr[12];
    es_rtp_packet_t q;
    if (es_rtp_write_header(&p, hdr, sizeof hdr) != 12 || es_rtp_parse(hdr, 12, &q) != 0) abort();
    if (q.sequence != p.sequence || q.timestamp != p.timestamp || q.ssrc != p.ssrc ||
        q.payload_type != p.payload_type || q.marker != p.marker)
        abort();
    return 0;
}
