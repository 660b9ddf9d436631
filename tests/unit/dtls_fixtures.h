/* Shared by the unit tests that need DTLS certificates (test_dtls, test_srtp, test_rtc_session):
 * the SHA-256 fingerprint of a certificate as bytes, as an SDP a=fingerprint gives it. Include
 * after cmocka.h. */
#ifndef ESTUARY_TEST_DTLS_FIXTURES_H
#define ESTUARY_TEST_DTLS_FIXTURES_H

#include "estuary/dtls.h"

#include <stdio.h>

/* Writes the 32 bytes of "AB:CD:..." (es_dtls_cert_fingerprint) to out; returns 32. */
static size_t fp_bytes(const es_dtls_cert_t *c, uint8_t *out)
{
    const char *hex = es_dtls_cert_fingerprint(c);
    size_t n = 0;
    for (size_t i = 0; hex[i] != '\0'; i += 3) {
        unsigned v;
        assert_int_equal(sscanf(hex + i, "%2X", &v), 1);
        out[n++] = (uint8_t)v;
    }
    return n;
}

#endif
