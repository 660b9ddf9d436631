/* RTMP chunk stream, sans-IO (Adobe RTMP specification 1.0, section 5.3): an incremental
 * reader that turns chunks (any byte split) into whole messages, and a writer that turns one
 * message into chunks. The reader applies the two protocol control messages that change how
 * chunks are read, Set Chunk Size and Abort (section 5.4.1, 5.4.2), itself. */
#ifndef ESTUARY_RTMP_CHUNK_H
#define ESTUARY_RTMP_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#define ES_RTMP_CSID_MIN 2              /* 0 and 1 only select the 2- and 3-byte basic header */
#define ES_RTMP_CSID_MAX 65599
#define ES_RTMP_DEFAULT_CHUNK_SIZE 128  /* both directions, until Set Chunk Size (5.4.1) */
#define ES_RTMP_MAX_CHUNK_SIZE 0x7fffffffu
#define ES_RTMP_MAX_MESSAGE (16u << 20) /* 16 MiB: the default cap on one message's length */
#define ES_RTMP_MAX_CHUNK_STREAMS 64    /* distinct chunk stream ids one peer may use */
#define ES_RTMP_EXT_TS 0xffffffu        /* 24-bit timestamp value meaning "extended follows" */

/* One message. In the reader's output `payload` is borrowed (see es_rtmp_chunk_feed). */
typedef struct es_rtmp_msg {
    uint32_t csid;        /* chunk stream id, 2..65599 */
    uint8_t type;         /* ES_RTMP_MSG_* (include/estuary/rtmp_session.h) */
    uint32_t stream_id;   /* message stream id */
    uint32_t timestamp;   /* milliseconds, absolute: fmt 0 value plus fmt 1/2/3 deltas, mod 2^32 */
    const uint8_t *payload;
    size_t len;           /* bytes of payload, at most 0xffffff */
} es_rtmp_msg_t;

typedef struct es_rtmp_chunk_reader es_rtmp_chunk_reader_t;

/* Counters of things the reader tolerated. */
typedef struct es_rtmp_chunk_stats {
    uint64_t messages;          /* whole messages returned */
    uint64_t aborted;           /* partial messages dropped by Abort */
    uint64_t restarted;         /* partial messages dropped because a fmt 0/1/2 chunk began anew */
    uint64_t ext_ts_absent;     /* fmt 3 continuation chunks without the repeated ext. timestamp */
} es_rtmp_chunk_stats_t;

/* es_rtmp_chunk_reader_new: a reader at the default chunk size (128) that refuses messages
 * longer than max_message bytes (0: ES_RTMP_MAX_MESSAGE). Partial messages of all chunk
 * streams together are also held to 2 * max_message bytes. NULL when out of memory. */
es_rtmp_chunk_reader_t *es_rtmp_chunk_reader_new(size_t max_message);

/* es_rtmp_chunk_reader_set_max_message: changes the bound on one message (and so on partial
 * bytes, 2 * max_message) for what arrives next; 0 means ES_RTMP_MAX_MESSAGE. Messages already
 * partly buffered keep the length they announced only if it fits the new bound. */
void es_rtmp_chunk_reader_set_max_message(es_rtmp_chunk_reader_t *r, size_t max_message);

/* es_rtmp_chunk_reader_free: NULL-safe. */
void es_rtmp_chunk_reader_free(es_rtmp_chunk_reader_t *r);

/* es_rtmp_chunk_feed: reads chunks from buf (len bytes; any split across calls) and stops after
 * the first chunk that completes a message. Always sets *consumed to the bytes used (the caller
 * feeds the rest again). Returns
 *   1          *out holds a message; out->payload points into buf or into the reader and is
 *              valid until the next call on this reader (and while buf is valid);
 *   0          every byte was used and no message is complete yet (all of len was consumed);
 *   ES_EPROTO  a chunk of a non-zero format for a chunk stream never seen with a full header,
 *              a Set Chunk Size of 0 or with the top bit set, a Set Chunk Size or Abort shorter
 *              than 4 bytes;
 *   ES_E2BIG   a message longer than max_message, more than ES_RTMP_MAX_CHUNK_STREAMS chunk
 *              streams, or too many partial bytes buffered;
 *   ES_ENOMEM.
 * After an error the reader is unusable. Timestamps: fmt 0 carries the absolute time, fmt 1
 * and 2 a delta, a fmt 3 chunk starting a new message reuses the previous delta (for a fmt 0
 * predecessor its timestamp, per section 5.3.1.2.4). A fmt 3 chunk after an extended
 * timestamp carries the extended field again (FFmpeg, OBS, librtmp); the reader also accepts
 * continuation chunks from senders that omit it (Flash Player did), by comparing the four
 * bytes with the header's value. Set Chunk Size (type 1) and Abort (type 2) are applied as
 * soon as they complete and are returned too. */
int es_rtmp_chunk_feed(es_rtmp_chunk_reader_t *r, const uint8_t *buf, size_t len,
                       size_t *consumed, es_rtmp_msg_t *out);

/* es_rtmp_chunk_reader_chunk_size: the peer's current chunk size, bytes. */
uint32_t es_rtmp_chunk_reader_chunk_size(const es_rtmp_chunk_reader_t *r);

/* es_rtmp_chunk_reader_stats: counters since es_rtmp_chunk_reader_new. */
es_rtmp_chunk_stats_t es_rtmp_chunk_reader_stats(const es_rtmp_chunk_reader_t *r);

/* es_rtmp_chunk_write_size: the bytes es_rtmp_chunk_write produces for a message of len bytes
 * on csid with that timestamp, at chunk_size (>= 1). */
size_t es_rtmp_chunk_write_size(uint32_t csid, uint32_t timestamp, size_t len,
                                uint32_t chunk_size);

/* es_rtmp_chunk_write: one message as chunks into out (cap bytes): a fmt 0 chunk, then fmt 3
 * chunks every chunk_size bytes of payload; from a timestamp of 0xffffff on, the extended
 * timestamp follows every chunk header, fmt 3 ones included (section 5.3.1.3). Returns the
 * bytes written, ES_EINVAL (csid outside 2..65599, chunk_size 0 or above 2^31-1, len above
 * 0xffffff), or ES_E2BIG when cap is too small (nothing useful written). */
int es_rtmp_chunk_write(const es_rtmp_msg_t *msg, uint32_t chunk_size, uint8_t *out, size_t cap);

#endif
