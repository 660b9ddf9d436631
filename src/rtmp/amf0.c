/* AMF0 decoder and encoder (Adobe AMF0 specification, 2007, sections 2.2-2.15). The decoder
 * is recursive with an explicit depth bound and writes nodes into a fixed array, so hostile
 * input costs at most ES_AMF0_MAX_NODES nodes and ES_AMF0_MAX_DEPTH stack frames. */
#include "estuary/amf0.h"

#include "estuary/bytes.h"
#include "estuary/error.h"

#include <string.h>

typedef struct decoder {
    es_amf0_doc_t *doc;
    const uint8_t *p;
    size_t len, off;
} decoder_t;

static int new_node(decoder_t *d, uint8_t type)
{
    if (d->doc->n_nodes == ES_AMF0_MAX_NODES) return ES_E2BIG;
    int i = d->doc->n_nodes++;
    es_amf0_node_t *n = &d->doc->nodes[i];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->first_child = ES_AMF0_NONE;
    n->next = ES_AMF0_NONE;
    return i;
}

static double rd_double(const uint8_t *p)
{
    uint64_t bits = (uint64_t)es_rd32(p) << 32 | es_rd32(p + 4);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static int decode_value(decoder_t *d, int depth, int *out);

/* Members "key value ... 00 00 09" of an object or ECMA array into parent. */
static int decode_members(decoder_t *d, int depth, int parent)
{
    int prev = ES_AMF0_NONE;
    for (;;) {
        if (d->len - d->off < 2) return ES_EPROTO;
        size_t klen = es_rd16(d->p + d->off);
        if (d->len - d->off - 2 < klen) return ES_EPROTO;
        const char *key = (const char *)d->p + d->off + 2;
        d->off += 2 + klen;
        if (klen == 0 && d->off < d->len && d->p[d->off] == ES_AMF0_OBJECT_END) {
            d->off++;
            return 0;
        }
        int child;
        int rc = decode_value(d, depth + 1, &child);
        if (rc < 0) return rc;
        d->doc->nodes[child].key = key;
        d->doc->nodes[child].key_len = klen;
        if (prev == ES_AMF0_NONE) d->doc->nodes[parent].first_child = child;
        else d->doc->nodes[prev].next = child;
        prev = child;
    }
}

static int decode_value(decoder_t *d, int depth, int *out)
{
    if (depth > ES_AMF0_MAX_DEPTH) return ES_E2BIG;
    if (d->off >= d->len) return ES_EPROTO;
    uint8_t marker = d->p[d->off++];
    size_t left = d->len - d->off;
    const uint8_t *p = d->p + d->off;
    int i = new_node(d, marker);
    if (i < 0) return i;
    es_amf0_node_t *n = &d->doc->nodes[i];
    *out = i;
    switch (marker) {
    case ES_AMF0_NUMBER:
        if (left < 8) return ES_EPROTO;
        n->number = rd_double(p);
        d->off += 8;
        return 0;
    case ES_AMF0_BOOLEAN:
        if (left < 1) return ES_EPROTO;
        n->boolean = p[0] != 0;
        d->off += 1;
        return 0;
    case ES_AMF0_STRING:
    case ES_AMF0_LONG_STRING: {
        size_t hl = marker == ES_AMF0_STRING ? 2 : 4;
        if (left < hl) return ES_EPROTO;
        size_t sl = hl == 2 ? es_rd16(p) : es_rd32(p);
        if (left - hl < sl) return ES_EPROTO;
        n->str = (const char *)p + hl;
        n->str_len = sl;
        d->off += hl + sl;
        return 0;
    }
    case ES_AMF0_NULL:
    case ES_AMF0_UNDEFINED:
        return 0;
    case ES_AMF0_DATE:
        if (left < 10) return ES_EPROTO;
        n->number = rd_double(p);
        n->tz = (int16_t)es_rd16(p + 8);
        d->off += 10;
        return 0;
    case ES_AMF0_OBJECT:
        return decode_members(d, depth, i);
    case ES_AMF0_ECMA_ARRAY:
        if (left < 4) return ES_EPROTO;
        n->count = es_rd32(p);
        d->off += 4;
        return decode_members(d, depth, i);
    case ES_AMF0_STRICT_ARRAY: {
        if (left < 4) return ES_EPROTO;
        n->count = es_rd32(p);
        d->off += 4;
        int prev = ES_AMF0_NONE;
        for (uint32_t k = 0; k < d->doc->nodes[i].count; k++) {
            int child;
            int rc = decode_value(d, depth + 1, &child);
            if (rc < 0) return rc;
            if (prev == ES_AMF0_NONE) d->doc->nodes[i].first_child = child;
            else d->doc->nodes[prev].next = child;
            prev = child;
        }
        return 0;
    }
    default: /* object end out of place, reference, AMF3 switch and the rest */
        return ES_EPROTO;
    }
}

static void doc_reset(es_amf0_doc_t *doc)
{
    doc->n_nodes = 0;
    doc->first = ES_AMF0_NONE;
    doc->top = 0;
}

static int decode(es_amf0_doc_t *doc, const uint8_t *buf, size_t len, int max_top, size_t *used)
{
    decoder_t d = {.doc = doc, .p = buf, .len = len};
    doc_reset(doc);
    int prev = ES_AMF0_NONE, rc = 0;
    while (d.off < len && (max_top < 0 || doc->top < max_top)) {
        int i;
        rc = decode_value(&d, 0, &i);
        if (rc < 0) break;
        if (prev == ES_AMF0_NONE) doc->first = i;
        else doc->nodes[prev].next = i;
        prev = i;
        doc->top++;
    }
    if (used) *used = d.off;
    return rc;
}

int es_amf0_decode(es_amf0_doc_t *doc, const uint8_t *buf, size_t len)
{
    return decode(doc, buf, len, -1, NULL);
}

int es_amf0_decode_one(es_amf0_doc_t *doc, const uint8_t *buf, size_t len, size_t *used)
{
    *used = 0;
    if (len == 0) {
        doc_reset(doc);
        return ES_EPROTO;
    }
    return decode(doc, buf, len, 1, used);
}

const es_amf0_node_t *es_amf0_next(const es_amf0_doc_t *doc, const es_amf0_node_t *n)
{
    return n && n->next != ES_AMF0_NONE ? &doc->nodes[n->next] : NULL;
}

const es_amf0_node_t *es_amf0_at(const es_amf0_doc_t *doc, int i)
{
    const es_amf0_node_t *n = doc->first == ES_AMF0_NONE ? NULL : &doc->nodes[doc->first];
    while (n && i-- > 0) n = es_amf0_next(doc, n);
    return n;
}

const es_amf0_node_t *es_amf0_child(const es_amf0_doc_t *doc, const es_amf0_node_t *parent,
                                    int i)
{
    if (!parent || parent->first_child == ES_AMF0_NONE) return NULL;
    const es_amf0_node_t *n = &doc->nodes[parent->first_child];
    while (n && i-- > 0) n = es_amf0_next(doc, n);
    return n;
}

const es_amf0_node_t *es_amf0_get(const es_amf0_doc_t *doc, const es_amf0_node_t *obj,
                                  const char *key)
{
    if (!obj || (obj->type != ES_AMF0_OBJECT && obj->type != ES_AMF0_ECMA_ARRAY)) return NULL;
    size_t kl = strlen(key);
    for (const es_amf0_node_t *n = es_amf0_child(doc, obj, 0); n; n = es_amf0_next(doc, n))
        if (n->key_len == kl && memcmp(n->key, key, kl) == 0) return n;
    return NULL;
}

bool es_amf0_is_string(const es_amf0_node_t *n, const char *s)
{
    if (!n || (n->type != ES_AMF0_STRING && n->type != ES_AMF0_LONG_STRING)) return false;
    size_t l = strlen(s);
    return n->str_len == l && memcmp(n->str, s, l) == 0;
}

/* Encoder. */

void es_amf0_writer_init(es_amf0_writer_t *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = false;
}

int es_amf0_writer_len(const es_amf0_writer_t *w)
{
    return w->overflow ? ES_E2BIG : (int)w->len;
}

static uint8_t *reserve(es_amf0_writer_t *w, size_t n)
{
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return NULL;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

static void put_bytes(es_amf0_writer_t *w, const void *src, size_t n)
{
    uint8_t *p = reserve(w, n);
    if (p && n) memcpy(p, src, n);
}

static void put_u8(es_amf0_writer_t *w, uint8_t v) { put_bytes(w, &v, 1); }

static void put_u16(es_amf0_writer_t *w, uint16_t v)
{
    uint8_t b[2];
    es_wr16(b, v);
    put_bytes(w, b, 2);
}

static void put_u32(es_amf0_writer_t *w, uint32_t v)
{
    uint8_t b[4];
    es_wr32(b, v);
    put_bytes(w, b, 4);
}

static void put_double(es_amf0_writer_t *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_u32(w, (uint32_t)(bits >> 32));
    put_u32(w, (uint32_t)bits);
}

void es_amf0_put_number(es_amf0_writer_t *w, double v)
{
    put_u8(w, ES_AMF0_NUMBER);
    put_double(w, v);
}

void es_amf0_put_bool(es_amf0_writer_t *w, bool v)
{
    put_u8(w, ES_AMF0_BOOLEAN);
    put_u8(w, v ? 1 : 0);
}

static void put_typed_string(es_amf0_writer_t *w, uint8_t type, const char *s, size_t n)
{
    if (n > UINT32_MAX) {
        w->overflow = true;
        return;
    }
    put_u8(w, type);
    if (type == ES_AMF0_STRING) put_u16(w, (uint16_t)n);
    else put_u32(w, (uint32_t)n);
    put_bytes(w, s, n);
}

void es_amf0_put_string_n(es_amf0_writer_t *w, const char *s, size_t n)
{
    put_typed_string(w, n > 0xffff ? ES_AMF0_LONG_STRING : ES_AMF0_STRING, s, n);
}

void es_amf0_put_string(es_amf0_writer_t *w, const char *s)
{
    es_amf0_put_string_n(w, s, strlen(s));
}

void es_amf0_put_null(es_amf0_writer_t *w) { put_u8(w, ES_AMF0_NULL); }

void es_amf0_put_undefined(es_amf0_writer_t *w) { put_u8(w, ES_AMF0_UNDEFINED); }

void es_amf0_put_date(es_amf0_writer_t *w, double ms, int16_t tz)
{
    put_u8(w, ES_AMF0_DATE);
    put_double(w, ms);
    put_u16(w, (uint16_t)tz);
}

void es_amf0_put_object_begin(es_amf0_writer_t *w) { put_u8(w, ES_AMF0_OBJECT); }

void es_amf0_put_ecma_array_begin(es_amf0_writer_t *w, uint32_t count)
{
    put_u8(w, ES_AMF0_ECMA_ARRAY);
    put_u32(w, count);
}

void es_amf0_put_key(es_amf0_writer_t *w, const char *key, size_t n)
{
    if (n > 0xffff) {
        w->overflow = true;
        return;
    }
    put_u16(w, (uint16_t)n);
    put_bytes(w, key, n);
}

void es_amf0_put_object_end(es_amf0_writer_t *w)
{
    static const uint8_t end[3] = {0, 0, ES_AMF0_OBJECT_END};
    put_bytes(w, end, 3);
}

void es_amf0_put_strict_array_begin(es_amf0_writer_t *w, uint32_t count)
{
    put_u8(w, ES_AMF0_STRICT_ARRAY);
    put_u32(w, count);
}

void es_amf0_put_prop_string(es_amf0_writer_t *w, const char *key, const char *value)
{
    es_amf0_put_key(w, key, strlen(key));
    es_amf0_put_string(w, value);
}

void es_amf0_put_prop_number(es_amf0_writer_t *w, const char *key, double value)
{
    es_amf0_put_key(w, key, strlen(key));
    es_amf0_put_number(w, value);
}

void es_amf0_put_prop_bool(es_amf0_writer_t *w, const char *key, bool value)
{
    es_amf0_put_key(w, key, strlen(key));
    es_amf0_put_bool(w, value);
}

void es_amf0_put_node(es_amf0_writer_t *w, const es_amf0_doc_t *doc, const es_amf0_node_t *n)
{
    switch (n->type) {
    case ES_AMF0_NUMBER: es_amf0_put_number(w, n->number); return;
    case ES_AMF0_BOOLEAN: es_amf0_put_bool(w, n->boolean); return;
    case ES_AMF0_STRING:
    case ES_AMF0_LONG_STRING: put_typed_string(w, n->type, n->str, n->str_len); return;
    case ES_AMF0_NULL: es_amf0_put_null(w); return;
    case ES_AMF0_UNDEFINED: es_amf0_put_undefined(w); return;
    case ES_AMF0_DATE: es_amf0_put_date(w, n->number, n->tz); return;
    case ES_AMF0_STRICT_ARRAY:
        es_amf0_put_strict_array_begin(w, n->count);
        for (const es_amf0_node_t *c = es_amf0_child(doc, n, 0); c; c = es_amf0_next(doc, c))
            es_amf0_put_node(w, doc, c);
        return;
    case ES_AMF0_OBJECT:
    case ES_AMF0_ECMA_ARRAY:
        if (n->type == ES_AMF0_OBJECT) es_amf0_put_object_begin(w);
        else es_amf0_put_ecma_array_begin(w, n->count);
        for (const es_amf0_node_t *c = es_amf0_child(doc, n, 0); c; c = es_amf0_next(doc, c)) {
            es_amf0_put_key(w, c->key, c->key_len);
            es_amf0_put_node(w, doc, c);
        }
        es_amf0_put_object_end(w);
        return;
    default:
        w->overflow = true; /* not a decodable node: nothing sensible to write */
        return;
    }
}
