/* AMF0 (Adobe Action Message Format 0 specification, 2007): a decoder into a small tree of
 * nodes held in a caller-provided, fixed-size document (no allocation; strings borrow from the
 * input), and an encoder for building commands such as _result and onStatus.
 *
 * Supported markers (section 2.1): number, boolean, string, object, null, undefined, ECMA
 * array, object end, strict array, date and long string. Movieclip, reference, unsupported,
 * recordset, XML document, typed object and the AMF3 switch are refused with ES_EPROTO: no
 * client we serve sends them in NetConnection/NetStream commands or metadata. */
#ifndef ESTUARY_AMF0_H
#define ESTUARY_AMF0_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    ES_AMF0_NUMBER = 0x00,
    ES_AMF0_BOOLEAN = 0x01,
    ES_AMF0_STRING = 0x02,
    ES_AMF0_OBJECT = 0x03,
    ES_AMF0_NULL = 0x05,
    ES_AMF0_UNDEFINED = 0x06,
    ES_AMF0_ECMA_ARRAY = 0x08,
    ES_AMF0_OBJECT_END = 0x09,
    ES_AMF0_STRICT_ARRAY = 0x0a,
    ES_AMF0_DATE = 0x0b,
    ES_AMF0_LONG_STRING = 0x0c,
};

#define ES_AMF0_MAX_DEPTH 16   /* nested objects/arrays the decoder follows */
#define ES_AMF0_MAX_NODES 256  /* values in one document (enough for any connect or onMetaData) */
#define ES_AMF0_NONE (-1)      /* "no node" in the tree links */

/* One decoded value. Strings (and member keys) are not NUL-terminated and borrow from the
 * input buffer. Children of an object, ECMA array or strict array are linked through
 * first_child/next; members of objects and ECMA arrays carry their key. */
typedef struct es_amf0_node {
    uint8_t type;          /* ES_AMF0_* (OBJECT_END never appears as a node) */
    bool boolean;
    int16_t tz;            /* DATE: the time-zone field (reserved, 0 in practice) */
    double number;         /* NUMBER, and DATE: milliseconds since 1970 UTC */
    const char *str;       /* STRING, LONG_STRING */
    size_t str_len;
    const char *key;       /* member name when the parent is an object or ECMA array */
    size_t key_len;
    uint32_t count;        /* STRICT_ARRAY: elements; ECMA_ARRAY: the declared count (advisory) */
    int first_child;       /* index in the document, or ES_AMF0_NONE */
    int next;              /* next sibling, or ES_AMF0_NONE */
} es_amf0_node_t;

/* The values of one message: `top` of them at top level, linked from `first`. Caller-owned,
 * about 16 KB; borrowed strings live as long as the decoded buffer. */
typedef struct es_amf0_doc {
    es_amf0_node_t nodes[ES_AMF0_MAX_NODES];
    int n_nodes;
    int first;             /* first top-level value, ES_AMF0_NONE when empty */
    int top;               /* number of top-level values */
} es_amf0_doc_t;

/* es_amf0_decode: every value of buf (len bytes) into *doc, replacing its content. Returns 0,
 * ES_EPROTO when a value is truncated or malformed or uses an unsupported marker (what was
 * decoded before it stays in *doc), or ES_E2BIG when nesting exceeds ES_AMF0_MAX_DEPTH or there
 * are more than ES_AMF0_MAX_NODES values. */
int es_amf0_decode(es_amf0_doc_t *doc, const uint8_t *buf, size_t len);

/* es_amf0_decode_one: only the first value of buf into *doc (top is 1); *used gets its length
 * in bytes. Errors as es_amf0_decode. */
int es_amf0_decode_one(es_amf0_doc_t *doc, const uint8_t *buf, size_t len, size_t *used);

/* es_amf0_at: the i-th top-level value (0-based), NULL when absent. */
const es_amf0_node_t *es_amf0_at(const es_amf0_doc_t *doc, int i);

/* es_amf0_child: the i-th child of an object or array node, NULL when absent. */
const es_amf0_node_t *es_amf0_child(const es_amf0_doc_t *doc, const es_amf0_node_t *parent,
                                    int i);

/* es_amf0_next: the sibling after n, NULL at the end. */
const es_amf0_node_t *es_amf0_next(const es_amf0_doc_t *doc, const es_amf0_node_t *n);

/* es_amf0_get: the member named key of an object or ECMA array (first match), NULL when absent
 * or when obj is not one of those. */
const es_amf0_node_t *es_amf0_get(const es_amf0_doc_t *doc, const es_amf0_node_t *obj,
                                  const char *key);

/* es_amf0_is_string: true when n is a (long) string equal to s. NULL-safe. */
bool es_amf0_is_string(const es_amf0_node_t *n, const char *s);

/* An encoder into a caller's buffer. Errors stick: after the buffer ran out every put is a
 * no-op and es_amf0_writer_len returns ES_E2BIG. */
typedef struct es_amf0_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
} es_amf0_writer_t;

/* es_amf0_writer_init: writes will go to buf (cap bytes, borrowed while writing). */
void es_amf0_writer_init(es_amf0_writer_t *w, uint8_t *buf, size_t cap);

/* es_amf0_writer_len: bytes written, or ES_E2BIG when the buffer was too small. */
int es_amf0_writer_len(const es_amf0_writer_t *w);

/* es_amf0_put_*: append one value (section 2.2 ff.) to w; no return value: running out of
 * buffer marks w overflowed, which es_amf0_writer_len reports (ES_E2BIG).
 * es_amf0_put_number / _bool: a number (IEEE 754 double, big-endian) / a boolean. */
void es_amf0_put_number(es_amf0_writer_t *w, double v);
void es_amf0_put_bool(es_amf0_writer_t *w, bool v);
/* es_amf0_put_string / _n: a string, as a long string when it exceeds 65535 bytes. */
void es_amf0_put_string(es_amf0_writer_t *w, const char *s);
void es_amf0_put_string_n(es_amf0_writer_t *w, const char *s, size_t n);
/* es_amf0_put_null / _undefined: the null and undefined markers. */
void es_amf0_put_null(es_amf0_writer_t *w);
void es_amf0_put_undefined(es_amf0_writer_t *w);
/* es_amf0_put_date: milliseconds since 1970 UTC and the time-zone field. */
void es_amf0_put_date(es_amf0_writer_t *w, double ms, int16_t tz);
/* Objects and ECMA arrays: begin, then (key, value) pairs, then end (00 00 09). */
void es_amf0_put_object_begin(es_amf0_writer_t *w);
void es_amf0_put_ecma_array_begin(es_amf0_writer_t *w, uint32_t count);
/* es_amf0_put_key: a member name (up to 65535 bytes; longer marks the writer overflowed). */
void es_amf0_put_key(es_amf0_writer_t *w, const char *key, size_t n);
void es_amf0_put_object_end(es_amf0_writer_t *w);
/* es_amf0_put_strict_array_begin: count values follow; there is no end marker. */
void es_amf0_put_strict_array_begin(es_amf0_writer_t *w, uint32_t count);

/* Members, for building _result and onStatus objects: key and value in one call. */
void es_amf0_put_prop_string(es_amf0_writer_t *w, const char *key, const char *value);
void es_amf0_put_prop_number(es_amf0_writer_t *w, const char *key, double value);
void es_amf0_put_prop_bool(es_amf0_writer_t *w, const char *key, bool value);

/* es_amf0_put_node: re-encodes a decoded node and its children (a member's own key is the
 * caller's to write, as for any value). Strings keep their string/long-string form and ECMA
 * arrays their declared count, so decoding then encoding reproduces the input except for
 * boolean bytes other than 0 and 1. */
void es_amf0_put_node(es_amf0_writer_t *w, const es_amf0_doc_t *doc, const es_amf0_node_t *n);

#endif
