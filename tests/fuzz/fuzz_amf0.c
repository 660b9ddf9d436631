/* libFuzzer harness for the AMF0 decoder and encoder (src/rtmp/amf0.c). Invariants: decoded
 * strings and keys lie inside the input; decode-encode keeps every value's size (so the
 * re-encoding of what decoded is as long as the bytes it came from) and is idempotent;
 * decode_one consumes no more than the input and agrees with the full decode. */
#include "estuary/amf0.h"
#include "estuary/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static es_amf0_doc_t d1, d2, d3;

static size_t encode(const es_amf0_doc_t *doc, uint8_t *buf, size_t cap)
{
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, buf, cap);
    for (const es_amf0_node_t *n = es_amf0_at(doc, 0); n; n = es_amf0_next(doc, n))
        es_amf0_put_node(&w, doc, n);
    int len = es_amf0_writer_len(&w);
    if (len < 0) abort();
    return (size_t)len;
}

static void check_bounds(const es_amf0_doc_t *doc, const uint8_t *data, size_t size)
{
    if (doc->n_nodes < 0 || doc->n_nodes > ES_AMF0_MAX_NODES) abort();
    for (int i = 0; i < doc->n_nodes; i++) {
        const es_amf0_node_t *n = &doc->nodes[i];
        if (n->str && ((const uint8_t *)n->str < data ||
                       (const uint8_t *)n->str + n->str_len > data + size))
            abort();
        if (n->key && ((const uint8_t *)n->key < data ||
                       (const uint8_t *)n->key + n->key_len > data + size))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = es_amf0_decode(&d1, data, size);
    if (rc != 0 && rc != ES_EPROTO && rc != ES_E2BIG) abort();
    check_bounds(&d1, data, size);
    size_t used;
    int rc1 = es_amf0_decode_one(&d2, data, size, &used);
    if (used > size || (rc1 == 0 && size && (used == 0 || d2.top != 1))) abort();
    if (rc == 0 && size && rc1 != 0) abort();
    if (rc != 0) return 0;

    uint8_t *e1 = malloc(size + 1), *e2 = malloc(size + 1);
    size_t n1 = encode(&d1, e1, size + 1);
    if (n1 != size) abort(); /* every value re-encodes to its own size */
    /* Booleans other than 0/1 normalise; beyond that the bytes are the input's. */
    if (es_amf0_decode(&d3, e1, n1) != 0 || d3.n_nodes != d1.n_nodes || d3.top != d1.top)
        abort();
    size_t n2 = encode(&d3, e2, size + 1);
    if (n2 != n1 || memcmp(e1, e2, n1)) abort();
    for (size_t i = 0; i < size; i++)
        if (e1[i] != data[i] && !(data[i] > 1 && e1[i] == 1)) abort();
    free(e1);
    free(e2);
    return 0;
}
