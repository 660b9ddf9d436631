/* An MSB-first bit reader for the bit-packed headers media formats use (H.264 SPS, ITU-T H.264
 * §7.2; AAC AudioSpecificConfig, ISO/IEC 14496-3 §1.6.2.1). A read past the end sets `bad` and
 * yields 0, so a parser checks `bad` once at the end, or before it uses a value as a loop bound.
 * Header-only, like bytes.h. */
#ifndef ESTUARY_BITS_H
#define ESTUARY_BITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct es_bits {
    const uint8_t *p; /* borrowed */
    size_t len;       /* bytes */
    size_t pos;       /* bits consumed */
    bool bad;         /* a read went past the end */
} es_bits_t;

/* es_bits_init: a reader over len bytes at p (borrowed for the reader's life). */
static inline es_bits_t es_bits_init(const uint8_t *p, size_t len)
{
    return (es_bits_t){p, len, 0, false};
}

/* es_bits_u: the next n bits (0..32) as an unsigned number, most significant first; 0 and `bad`
 * when fewer than n remain. */
static inline uint32_t es_bits_u(es_bits_t *b, unsigned n)
{
    uint32_t v = 0;
    if (b->bad || n > b->len * 8 - b->pos) {
        b->bad = true;
        return 0;
    }
    for (unsigned i = 0; i < n; i++, b->pos++)
        v = v << 1 | ((b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1u);
    return v;
}

#endif
