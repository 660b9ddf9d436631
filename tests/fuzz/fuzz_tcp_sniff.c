/* libFuzzer harness for the shared HTTP port's first-bytes sniffing (es_tcp_sniff,
 * src/webrtc/ice_tcp.c): the input is the first bytes of a new TCP connection.
 *
 * Invariants: the verdict is one of the five; ES_SNIFF_MORE only for fewer than
 * ES_TCP_SNIFF_BYTES bytes; once a prefix is decided every longer prefix gives the same verdict;
 * HTTP starts with an upper-case letter, TLS with 22 then 3, STUN with a frame length of 20..1500
 * (a multiple of 4), type 0x0001 and the magic cookie, whose frame the deframer then reads as a
 * frame of that length. */
#include "estuary/ice_tcp.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_tcp_sniff_t decided = ES_SNIFF_MORE;
    for (size_t len = 0; len <= size && len <= 64; len++) {
        es_tcp_sniff_t v = es_tcp_sniff(data, len);
        assert(v >= ES_SNIFF_MORE && v <= ES_SNIFF_UNKNOWN);
        assert(strcmp(es_tcp_sniff_name(v), "") != 0);
        if (v == ES_SNIFF_MORE) assert(len < ES_TCP_SNIFF_BYTES && decided == ES_SNIFF_MORE);
        if (decided != ES_SNIFF_MORE) assert(v == decided);
        decided = v;
    }
    if (decided == ES_SNIFF_HTTP) assert(data[0] >= 'A' && data[0] <= 'Z');
    if (decided == ES_SNIFF_TLS) assert(data[0] == 0x16 && data[1] == 0x03);
    if (decided == ES_SNIFF_STUN) {
        size_t flen = ((size_t)data[0] << 8) | data[1];
        assert(flen >= 20 && flen <= ES_ICE_TCP_MAX_FRAME && flen % 4 == 0);
        assert(data[2] == 0 && data[3] == 1 && data[6] == 0x21 && data[7] == 0x12 &&
               data[8] == 0xA4 && data[9] == 0x42);
        es_rfc4571_t d;
        memset(&d, 0, sizeof d);
        const uint8_t *in = data, *frame;
        size_t left = size, got;
        int rc = es_rfc4571_next(&d, &in, &left, &frame, &got);
        assert(rc == (size >= flen + 2 ? 1 : 0));
        if (rc == 1) assert(got == flen && !memcmp(frame, data + 2, flen));
    }
    return 0;
}
