/* libFuzzer harness for RTCP (src/rtp/rtcp.c): walks the compound packet and parses every
 * report and feedback message. Invariants: each packet lies inside the input and the walk
 * always advances; NACK lists re-encode and parse back to the same sequence numbers. */
#include "estuary/rtcp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    es_rtcp_header_t h;
    int rc;
    while ((rc = es_rtcp_next(data, size, &off, &h)) == 1) {
        if (h.body < data || h.body + h.body_len > data + size || h.total_len < 4 || off > size)
            abort();
        es_rtcp_report_t r;
        if (h.type == ES_RTCP_SR || h.type == ES_RTCP_RR) {
            if (es_rtcp_parse_report(&h, &r) == 0 && r.n_blocks > 31) abort();
            continue;
        }
        es_rtcp_fb_t fb;
        if (es_rtcp_parse_fb(&h, &fb) != 0) continue;
        if (h.type == ES_RTCP_RTPFB && h.count == ES_RTCP_FMT_NACK) {
            uint16_t lost[512], again[512];
            int n = es_rtcp_nack_lost(&fb, lost, 512);
            if (n <= 0 || n == 512) continue;
            /* Re-encoding sorts nothing: only check round trips for ascending lists. */
            int ascending = 1;
            for (int i = 1; i < n; i++)
                if ((uint16_t)(lost[i] - lost[i - 1]) == 0 || (uint16_t)(lost[i] - lost[i - 1]) >= 0x8000)
                    ascending = 0;
            if (!ascending) continue;
            uint8_t buf[12 + 4 * 512];
            int len = es_rtcp_write_nack(fb.sender_ssrc, fb.media_ssrc, lost, (size_t)n, buf, sizeof buf);
            if (len < 0) abort();
            size_t o2 = 0;
            es_rtcp_header_t h2;
            es_rtcp_fb_t fb2;
            if (es_rtcp_next(buf, (size_t)len, &o2, &h2) != 1 || es_rtcp_parse_fb(&h2, &fb2) != 0)
                abort();
            if (es_rtcp_nack_lost(&fb2, again, 512) != n || memcmp(lost, again, (size_t)n * 2))
                abort();
        }
    }
    return 0;
}
