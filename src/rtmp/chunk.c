/* RTMP chunk stream (Adobe RTMP specification 1.0, section 5.3): incremental reader with
 * per-chunk-stream state, and writer. The reader takes header bytes one at a time into a small
 * buffer (a header is at most 3 + 11 + 4 bytes) and copies bodies in bulk; a message that fits
 * one chunk of the caller's buffer is returned without a copy. */
#include "estuary/rtmp_chunk.h"

#include "estuary/bytes.h"
#include "estuary/error.h"
#include "estuary/rtmp_session.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A reassembly buffer above this size is released after its message was returned, so that one
 * large message does not pin its memory for the connection's life. */
#define KEEP_BUFFER (64u * 1024)

typedef struct chunk_stream {
    uint32_t csid;
    uint32_t timestamp;  /* of the message in progress, or of the last one */
    uint32_t delta;      /* timestamp field of the last header: a delta, or fmt 0's absolute */
    uint32_t length;     /* message length from the last fmt 0/1 header */
    uint8_t type;
    uint32_t stream_id;
    bool ext;            /* the last fmt 0/1/2 header used an extended timestamp */
    uint32_t ext_value;  /* ...and this was its value (repeated on fmt 3 chunks) */
    uint8_t *buf;        /* reassembly of the message in progress */
    size_t cap;
    size_t have;         /* bytes of the message in progress; 0: none in progress */
} chunk_stream_t;

struct es_rtmp_chunk_reader {
    uint32_t chunk_size;
    size_t max_message;
    size_t buffered;     /* partial bytes held over all chunk streams */
    chunk_stream_t streams[ES_RTMP_MAX_CHUNK_STREAMS];
    size_t n_streams;
    bool in_body;
    uint8_t hb[3 + 11 + 4];
    size_t hb_len;
    uint8_t re[8];       /* bytes read as a header but belonging to the body: read again */
    size_t re_off, re_len;
    chunk_stream_t *cur;
    size_t body_left;    /* bytes of the current chunk's body still to come */
    chunk_stream_t *release; /* returned last time from its buffer: maybe free that */
    int failed;
    es_rtmp_chunk_stats_t stats;
};

static const uint8_t empty_payload[1];

es_rtmp_chunk_reader_t *es_rtmp_chunk_reader_new(size_t max_message)
{
    es_rtmp_chunk_reader_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->chunk_size = ES_RTMP_DEFAULT_CHUNK_SIZE;
    r->max_message = max_message ? max_message : ES_RTMP_MAX_MESSAGE;
    return r;
}

void es_rtmp_chunk_reader_set_max_message(es_rtmp_chunk_reader_t *r, size_t max_message)
{
    r->max_message = max_message ? max_message : ES_RTMP_MAX_MESSAGE;
}

void es_rtmp_chunk_reader_free(es_rtmp_chunk_reader_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_streams; i++) free(r->streams[i].buf);
    free(r);
}

uint32_t es_rtmp_chunk_reader_chunk_size(const es_rtmp_chunk_reader_t *r) { return r->chunk_size; }

es_rtmp_chunk_stats_t es_rtmp_chunk_reader_stats(const es_rtmp_chunk_reader_t *r)
{
    return r->stats;
}

static uint32_t rd24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }

static uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static chunk_stream_t *find_stream(es_rtmp_chunk_reader_t *r, uint32_t csid)
{
    for (size_t i = 0; i < r->n_streams; i++)
        if (r->streams[i].csid == csid) return &r->streams[i];
    return NULL;
}

static void drop_partial(es_rtmp_chunk_reader_t *r, chunk_stream_t *cs)
{
    r->buffered -= cs->have;
    cs->have = 0;
}

/* The message of r->cur is complete: fill *out, apply Set Chunk Size / Abort. */
static int complete(es_rtmp_chunk_reader_t *r, const uint8_t *payload, es_rtmp_msg_t *out)
{
    chunk_stream_t *cs = r->cur;
    out->csid = cs->csid;
    out->type = cs->type;
    out->stream_id = cs->stream_id;
    out->timestamp = cs->timestamp;
    out->payload = payload ? payload : empty_payload;
    out->len = cs->length;
    drop_partial(r, cs);
    r->release = payload == cs->buf ? cs : NULL;
    r->in_body = false;
    r->stats.messages++;
    if (out->type == ES_RTMP_MSG_SET_CHUNK_SIZE) {
        if (out->len < 4) return ES_EPROTO;
        uint32_t size = es_rd32(out->payload);
        if (size == 0 || size > ES_RTMP_MAX_CHUNK_SIZE) return ES_EPROTO;
        r->chunk_size = size;
    } else if (out->type == ES_RTMP_MSG_ABORT) {
        if (out->len < 4) return ES_EPROTO;
        chunk_stream_t *victim = find_stream(r, es_rd32(out->payload));
        if (victim && victim->have) {
            drop_partial(r, victim);
            r->stats.aborted++;
        }
    }
    return 1;
}

/* Starts the body of the chunk whose header was just parsed; 1 when a zero-length message is
 * already complete. */
static int start_body(es_rtmp_chunk_reader_t *r, es_rtmp_msg_t *out)
{
    chunk_stream_t *cs = r->cur;
    if (cs->length == 0) return complete(r, NULL, out);
    size_t left = cs->length - cs->have;
    r->body_left = left < r->chunk_size ? left : r->chunk_size;
    r->in_body = true;
    return 0;
}

/* One more header byte is in r->hb. Returns 0 (need more bytes), 1 (a zero-length message is
 * complete in *out) or an error; when the header is complete, switches to the body. */
static int header_byte(es_rtmp_chunk_reader_t *r, es_rtmp_msg_t *out)
{
    const uint8_t *h = r->hb;
    size_t n = r->hb_len;
    unsigned fmt = h[0] >> 6;
    size_t basic = (h[0] & 0x3f) == 0 ? 2 : (h[0] & 0x3f) == 1 ? 3 : 1;
    if (n < basic) return 0;
    if (n == basic) {
        uint32_t csid = basic == 1 ? (uint32_t)(h[0] & 0x3f)
                      : basic == 2 ? 64u + h[1] : 64u + h[1] + 256u * h[2];
        chunk_stream_t *cs = find_stream(r, csid);
        if (!cs) {
            /* A chunk stream starts with a full (fmt 0) header (5.3.1.2.1). */
            if (fmt != 0) return ES_EPROTO;
            if (r->n_streams == ES_RTMP_MAX_CHUNK_STREAMS) return ES_E2BIG;
            cs = &r->streams[r->n_streams++];
            memset(cs, 0, sizeof *cs);
            cs->csid = csid;
        }
        r->cur = cs;
    }
    chunk_stream_t *cs = r->cur;
    size_t mh = fmt == 0 ? 11 : fmt == 1 ? 7 : fmt == 2 ? 3 : 0;
    if (n < basic + mh) return 0;
    bool ext = fmt < 3 ? rd24(h + basic) == ES_RTMP_EXT_TS : cs->ext;
    if (n < basic + mh + (ext ? 4 : 0)) return 0;

    const uint8_t *m = h + basic;
    uint32_t field = fmt < 3 ? (ext ? es_rd32(m + mh) : rd24(m)) : 0;
    if (fmt < 3 && cs->have) {
        /* A new header in the middle of a message: the sender gave up on it. */
        drop_partial(r, cs);
        r->stats.restarted++;
    }
    if (fmt <= 1) {
        uint32_t length = rd24(m + 3);
        if (length > r->max_message) return ES_E2BIG;
        cs->length = length;
        cs->type = m[6];
    }
    if (fmt == 0) {
        cs->stream_id = rd32le(m + 7);
        cs->timestamp = field;
        cs->delta = field;
    } else if (fmt <= 2) {
        cs->delta = field;
        cs->timestamp += field;
    }
    if (fmt < 3) {
        cs->ext = ext;
        cs->ext_value = field;
    } else if (cs->have) {
        /* Continuation. The extended timestamp should be repeated; if these four bytes are
         * not it, the sender omitted it and they are payload: read them again as such. */
        if (ext && es_rd32(m) != cs->ext_value) {
            size_t rest = r->re_len - r->re_off;
            /* Replayed bytes feed the body first (at least one) and a header needs five more
             * before it peeks again, so nothing is left to replay here. */
            assert(rest + 4 <= sizeof r->re);
            memmove(r->re + 4, r->re + r->re_off, rest);
            memcpy(r->re, m, 4);
            r->re_off = 0;
            r->re_len = 4 + rest;
            r->stats.ext_ts_absent++;
        }
    } else {
        /* fmt 3 starting a new message: same length, type and delta as the last one. */
        if (ext) {
            cs->delta = es_rd32(m);
            cs->ext_value = cs->delta;
        }
        cs->timestamp += cs->delta;
    }
    r->hb_len = 0;
    return start_body(r, out);
}

/* Body bytes from src (avail > 0): returns the bytes used and sets *done when the message is
 * complete (then *out is filled). */
static int body_bytes(es_rtmp_chunk_reader_t *r, const uint8_t *src, size_t avail, bool direct,
                      size_t *used, es_rtmp_msg_t *out)
{
    chunk_stream_t *cs = r->cur;
    size_t n = r->body_left < avail ? r->body_left : avail;
    *used = n;
    if (direct && cs->have == 0 && n == cs->length) {
        /* The whole message is in this chunk of the caller's buffer: no copy. */
        return complete(r, src, out);
    }
    if (r->buffered + n > 2 * r->max_message) return ES_E2BIG;
    if (cs->have + n > cs->cap) {
        size_t cap = cs->cap ? cs->cap : 256;
        while (cap < cs->have + n) cap *= 2;
        if (cap > cs->length) cap = cs->length;
        uint8_t *nb = realloc(cs->buf, cap);
        if (!nb) return ES_ENOMEM;
        cs->buf = nb;
        cs->cap = cap;
    }
    memcpy(cs->buf + cs->have, src, n);
    cs->have += n;
    r->buffered += n;
    r->body_left -= n;
    if (cs->have == cs->length) return complete(r, cs->buf, out);
    if (r->body_left == 0) r->in_body = false;
    return 0;
}

int es_rtmp_chunk_feed(es_rtmp_chunk_reader_t *r, const uint8_t *buf, size_t len,
                       size_t *consumed, es_rtmp_msg_t *out)
{
    size_t pos = 0;
    int rc = 0;
    *consumed = 0;
    if (r->failed) return r->failed;
    if (r->release && r->release->cap > KEEP_BUFFER && r->release->have == 0) {
        free(r->release->buf);
        r->release->buf = NULL;
        r->release->cap = 0;
    }
    r->release = NULL;
    while (rc == 0) {
        bool replay = r->re_off < r->re_len;
        if (!replay && pos == len) break;
        if (!r->in_body) {
            r->hb[r->hb_len++] = replay ? r->re[r->re_off++] : buf[pos++];
            rc = header_byte(r, out);
        } else {
            const uint8_t *src = replay ? r->re + r->re_off : buf + pos;
            size_t avail = replay ? r->re_len - r->re_off : len - pos, used = 0;
            rc = body_bytes(r, src, avail, !replay, &used, out);
            if (replay) r->re_off += used;
            else pos += used;
        }
        if (r->re_off == r->re_len) r->re_off = r->re_len = 0;
    }
    *consumed = pos;
    if (rc < 0) r->failed = rc;
    return rc;
}

size_t es_rtmp_chunk_write_size(uint32_t csid, uint32_t timestamp, size_t len,
                                uint32_t chunk_size)
{
    size_t basic = csid < 64 ? 1 : csid < 320 ? 2 : 3;
    size_t ext = timestamp >= ES_RTMP_EXT_TS ? 4 : 0;
    size_t chunks = len == 0 ? 1 : (len + chunk_size - 1) / chunk_size;
    return basic + 11 + ext + (chunks - 1) * (basic + ext) + len;
}

static size_t put_basic(uint8_t *p, unsigned fmt, uint32_t csid)
{
    if (csid < 64) {
        p[0] = (uint8_t)(fmt << 6 | csid);
        return 1;
    }
    if (csid < 320) {
        p[0] = (uint8_t)(fmt << 6);
        p[1] = (uint8_t)(csid - 64);
        return 2;
    }
    p[0] = (uint8_t)(fmt << 6 | 1);
    p[1] = (uint8_t)((csid - 64) & 0xff);
    p[2] = (uint8_t)((csid - 64) >> 8);
    return 3;
}

int es_rtmp_chunk_write(const es_rtmp_msg_t *msg, uint32_t chunk_size, uint8_t *out, size_t cap)
{
    if (msg->csid < ES_RTMP_CSID_MIN || msg->csid > ES_RTMP_CSID_MAX || chunk_size == 0 ||
        chunk_size > ES_RTMP_MAX_CHUNK_SIZE || msg->len > 0xffffff)
        return ES_EINVAL;
    if (es_rtmp_chunk_write_size(msg->csid, msg->timestamp, msg->len, chunk_size) > cap)
        return ES_E2BIG;
    bool ext = msg->timestamp >= ES_RTMP_EXT_TS;
    uint8_t *p = out;
    p += put_basic(p, 0, msg->csid);
    uint32_t ts24 = ext ? ES_RTMP_EXT_TS : msg->timestamp;
    p[0] = (uint8_t)(ts24 >> 16);
    p[1] = (uint8_t)(ts24 >> 8);
    p[2] = (uint8_t)ts24;
    p[3] = (uint8_t)(msg->len >> 16);
    p[4] = (uint8_t)(msg->len >> 8);
    p[5] = (uint8_t)msg->len;
    p[6] = msg->type;
    p[7] = (uint8_t)msg->stream_id; /* the message stream id is little-endian (5.3.1.2.1) */
    p[8] = (uint8_t)(msg->stream_id >> 8);
    p[9] = (uint8_t)(msg->stream_id >> 16);
    p[10] = (uint8_t)(msg->stream_id >> 24);
    p += 11;
    for (size_t off = 0;;) {
        if (ext) {
            es_wr32(p, msg->timestamp);
            p += 4;
        }
        size_t n = msg->len - off < chunk_size ? msg->len - off : chunk_size;
        if (n) memcpy(p, msg->payload + off, n);
        p += n;
        off += n;
        if (off >= msg->len) break;
        p += put_basic(p, 3, msg->csid);
    }
    return (int)(p - out);
}
