/* libFuzzer harness for the RTMP chunk reader and writer (src/rtmp/chunk.c). Input: one byte
 * choosing a split size, then a chunk stream. Invariants: the reader never consumes more than
 * it was given and consumes everything when it asks for more; fed whole or in pieces it
 * returns the same messages and the same error; messages respect the length cap; every
 * message written back by the writer reads back identical. */
#include "estuary/error.h"
#include "estuary/rtmp_chunk.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 256
#define CAP (1u << 16) /* a small cap so that E2BIG paths are reached */

typedef struct summary {
    uint32_t csid, stream_id, timestamp;
    uint8_t type;
    size_t len;
    uint64_t hash;
} summary_t;

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Reads the whole stream in pieces of `split` (0: at once); fills out and returns the final
 * result (0 or an error). */
static int run(const uint8_t *b, size_t n, size_t split, summary_t *out, size_t *n_out,
               uint32_t *chunk_size)
{
    es_rtmp_chunk_reader_t *r = es_rtmp_chunk_reader_new(CAP);
    if (!r) abort();
    int result = 0;
    *n_out = 0;
    size_t off = 0;
    while (off < n && result == 0) {
        size_t piece = split && n - off > split ? split : n - off;
        size_t pos = 0;
        while (pos < piece) {
            es_rtmp_msg_t m;
            size_t used = 0;
            int rc = es_rtmp_chunk_feed(r, b + off + pos, piece - pos, &used, &m);
            if (used > piece - pos) abort();
            pos += used;
            if (rc < 0) {
                result = rc;
                break;
            }
            if (rc == 0) {
                if (pos != piece) abort();
                break;
            }
            if (rc != 1 || m.len > CAP || m.csid < 2 || m.csid > ES_RTMP_CSID_MAX) abort();
            if (*n_out < MAX_MSGS) {
                summary_t *s = &out[(*n_out)++];
                s->csid = m.csid;
                s->stream_id = m.stream_id;
                s->timestamp = m.timestamp;
                s->type = m.type;
                s->len = m.len;
                s->hash = fnv(m.payload, m.len);
            }
            /* Writer -> reader round trip of this message. */
            uint32_t cs = 1 + (uint32_t)(m.len % 300);
            size_t wn = es_rtmp_chunk_write_size(m.csid, m.timestamp, m.len, cs);
            uint8_t *w = malloc(wn);
            if (!w || es_rtmp_chunk_write(&m, cs, w, wn) != (int)wn) abort();
            es_rtmp_chunk_reader_t *r2 = es_rtmp_chunk_reader_new(CAP);
            /* r2 reads at 128: announce cs first. */
            uint8_t set[16] = {0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0,
                               (uint8_t)(cs >> 24), (uint8_t)(cs >> 16), (uint8_t)(cs >> 8),
                               (uint8_t)cs};
            es_rtmp_msg_t m2;
            size_t u2;
            if (es_rtmp_chunk_feed(r2, set, sizeof set, &u2, &m2) != 1 || u2 != sizeof set)
                abort();
            if (es_rtmp_chunk_feed(r2, w, wn, &u2, &m2) != 1 || u2 != wn) abort();
            if (m2.csid != m.csid || m2.type != m.type || m2.stream_id != m.stream_id ||
                m2.timestamp != m.timestamp || m2.len != m.len ||
                (m.len && memcmp(m2.payload, m.payload, m.len)))
                abort();
            es_rtmp_chunk_reader_free(r2);
            free(w);
        }
        off += piece;
    }
    *chunk_size = es_rtmp_chunk_reader_chunk_size(r);
    if (*chunk_size == 0 || *chunk_size > ES_RTMP_MAX_CHUNK_SIZE) abort();
    es_rtmp_chunk_reader_free(r);
    return result;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t split = data[0] % 17; /* 0: whole */
    static summary_t a[MAX_MSGS], b[MAX_MSGS];
    size_t na, nb;
    uint32_t csa, csb;
    int ra = run(data + 1, size - 1, 0, a, &na, &csa);
    int rb = run(data + 1, size - 1, split ? split : 1, b, &nb, &csb);
    if (ra != rb || na != nb || memcmp(a, b, na * sizeof *a) || csa != csb) abort();
    return 0;
}
