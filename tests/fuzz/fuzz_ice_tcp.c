/* libFuzzer harness for the RFC 4571 deframer (es_rfc4571_next, src/webrtc/ice_tcp.c): the input
 * is the byte stream of one ICE-TCP connection, fed in reads whose sizes come from the input.
 *
 * Invariants: every frame is 1..ES_ICE_TCP_MAX_FRAME bytes and is exactly the bytes the stream
 * carries after its 2-byte length (checked against an independent walk of the whole input); the
 * deframer takes every input byte unless it refuses a length (ES_E2BIG, exactly when the walk
 * meets a length over the limit), after which nothing more is fed; however the input is split
 * into reads, the frames are the same. */
#include "estuary/error.h"
#include "estuary/ice_tcp.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t chunk = data[0] ? data[0] : 1; /* read size */
    const uint8_t *stream = data + 1;
    size_t n = size - 1;
    /* The reference: walk the stream frame by frame. */
    size_t pos = 0, expect_frames = 0;
    int expect_rc = 0;
    while (pos + 2 <= n) {
        size_t len = ((size_t)stream[pos] << 8) | stream[pos + 1];
        if (len > ES_ICE_TCP_MAX_FRAME) {
            expect_rc = ES_E2BIG;
            break;
        }
        if (pos + 2 + len > n) break;
        if (len) expect_frames++;
        pos += 2 + len;
    }
    es_rfc4571_t d;
    memset(&d, 0, sizeof d);
    size_t off = 0, frames = 0, ref = 0;
    int rc = 0;
    while (off < n && rc >= 0) {
        size_t take = n - off < chunk ? n - off : chunk;
        const uint8_t *in = stream + off;
        size_t left = take;
        const uint8_t *frame;
        size_t flen;
        while ((rc = es_rfc4571_next(&d, &in, &left, &frame, &flen)) == 1) {
            assert(flen >= 1 && flen <= ES_ICE_TCP_MAX_FRAME);
            /* the reference position of this frame: skip empty frames */
            for (;;) {
                size_t len = ((size_t)stream[ref] << 8) | stream[ref + 1];
                if (len) {
                    assert(len == flen && !memcmp(stream + ref + 2, frame, flen));
                    ref += 2 + len;
                    break;
                }
                ref += 2;
            }
            frames++;
        }
        assert(rc == 0 || rc == ES_E2BIG);
        if (rc == 0) assert(left == 0);
        off += take - left;
        if (rc < 0) break;
    }
    assert(frames == expect_frames);
    assert(rc == expect_rc || (rc == 0 && expect_rc == 0));
    return 0;
}
