/* Random identifiers from OpenSSL's CSPRNG (include/estuary/random.h). */
#include "estuary/random.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void es_random_bytes(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1) {
        fprintf(stderr, "estuary: OpenSSL's random generator failed; aborting\n");
        abort();
    }
}

uint32_t es_random32(void)
{
    uint32_t v = 0;
    while (v == 0) es_random_bytes(&v, sizeof v);
    return v;
}

void es_random_text(char *out, size_t n, const char *alphabet)
{
    unsigned char r[64];
    size_t k = strlen(alphabet);
    if (n > sizeof r) n = sizeof r;
    es_random_bytes(r, n);
    for (size_t i = 0; i < n; i++) out[i] = alphabet[r[i] % k];
    out[n] = '\0';
}
