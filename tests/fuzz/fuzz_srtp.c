/* libFuzzer harness for SRTP and SRTCP (src/webrtc/srtp.c). The first byte picks the profile
 * (bit 0: AEAD_AES_128_GCM or AES_CM_128_HMAC_SHA1_80) and the mode (bit 1); the rest is a
 * packet.
 *
 * Mode "forged" (bit 1 clear): the bytes go to unprotect as SRTP and as SRTCP. Invariants: no
 * read or write outside the packet (ASan), and nothing authenticates (a forged tag passes with
 * probability 2^-80 at most), so both return an error.
 * Mode "round trip" (bit 1 set): the bytes are a plain packet, protected by one end. Invariants:
 * protect refuses exactly the headers that are malformed; what it protects grows by the tag
 * (and the SRTCP index), unprotects on the other end to the very same bytes, is refused when
 * delivered again (replay), and is refused with any one bit flipped (byte and bit from the
 * input). */
#include "estuary/error.h"
#include "estuary/srtp.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP (2048 + ES_SRTP_MAX_TRAILER)

static es_srtp_t *end_new(bool gcm)
{
    es_dtls_srtp_keys_t k = {.profile = gcm ? ES_SRTP_AEAD_AES_128_GCM : ES_SRTP_AES128_CM_SHA1_80,
                             .master_len = gcm ? 28 : 30};
    for (size_t i = 0; i < k.master_len; i++) {
        k.local[i] = (uint8_t)(i * 13 + 1);
        k.remote[i] = (uint8_t)(i * 13 + 1); /* both ends share keys: a -> b */
    }
    return es_srtp_new(&k);
}

/* The header length protect must accept, or 0 for a malformed one. */
static size_t rtp_header(const uint8_t *b, size_t len)
{
    if (len < 12 || (b[0] >> 6) != 2) return 0;
    size_t h = 12 + 4u * (b[0] & 0x0F);
    if (b[0] & 0x10) {
        if (len < h + 4) return 0;
        h += 4 + 4u * (((size_t)b[h + 2] << 8) | b[h + 3]);
    }
    return h <= len ? h : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > 2048) return 0;
    bool gcm = data[0] & 1, round_trip = data[0] & 2;
    const uint8_t *pkt = data + 1;
    size_t len = size - 1;
    size_t tag = gcm ? 16 : 10;
    es_srtp_t *a = end_new(gcm), *b = end_new(gcm);
    assert(a && b);
    uint8_t buf[CAP], copy[CAP];
    if (!round_trip) {
        memcpy(buf, pkt, len);
        assert(es_srtp_unprotect_rtp(b, buf, len) < 0);
        memcpy(buf, pkt, len);
        assert(es_srtp_unprotect_rtcp(b, buf, len) < 0);
    } else {
        for (int rtcp = 0; rtcp < 2; rtcp++) {
            memcpy(buf, pkt, len);
            int n = rtcp ? es_srtp_protect_rtcp(a, buf, len, sizeof buf)
                         : es_srtp_protect_rtp(a, buf, len, sizeof buf);
            bool valid = rtcp ? len >= 8 : rtp_header(pkt, len) != 0;
            assert(valid == (n > 0));
            if (n <= 0) continue;
            assert((size_t)n == len + tag + (rtcp ? 4 : 0));
            memcpy(copy, buf, (size_t)n);
            int m = rtcp ? es_srtp_unprotect_rtcp(b, buf, (size_t)n)
                         : es_srtp_unprotect_rtp(b, buf, (size_t)n);
            assert(m == (int)len && memcmp(buf, pkt, len) == 0);
            memcpy(buf, copy, (size_t)n);
            m = rtcp ? es_srtp_unprotect_rtcp(b, buf, (size_t)n)
                     : es_srtp_unprotect_rtp(b, buf, (size_t)n);
            assert(m == ES_EEXIST);
            /* one bit flipped, anywhere: refused (as forged, or as a replay when the flip
             * lands in the sequence number or SRTCP index and names one already received) */
            size_t at = len > 1 ? (size_t)pkt[1] * 7 % (size_t)n : 0;
            memcpy(buf, copy, (size_t)n);
            buf[at] ^= (uint8_t)(1u << (pkt[0] % 8));
            m = rtcp ? es_srtp_unprotect_rtcp(b, buf, (size_t)n)
                     : es_srtp_unprotect_rtp(b, buf, (size_t)n);
            assert(m < 0);
        }
    }
    es_srtp_free(a);
    es_srtp_free(b);
    return 0;
}
