/* Generic NACK (RFC 4585 §6.2.1) bookkeeping, both sides, sans-IO:
 * - es_nack_gen watches the sequence numbers arriving from a publisher and says which ones to
 *   NACK, and when: a gap is NACKed at once, then again every max(RTT, 20 ms)... up to a retry
 *   limit; packets too old (more than ES_NACK_MAX_AGE behind) are given up.
 * - es_rtp_history keeps the last N packets sent on a track so that a player's NACK can be
 *   answered with a retransmission (or RTX, RFC 4588). */
#ifndef ESTUARY_NACK_H
#define ESTUARY_NACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_NACK_MAX_MISSING 256  /* gaps tracked at once; older ones are given up */
#define ES_NACK_MAX_AGE 1000     /* sequence numbers: a gap further behind is given up */
#define ES_NACK_MAX_RETRIES 10

typedef struct es_nack_gen es_nack_gen_t;

/* es_nack_gen_new / _free (NULL-safe). NULL when out of memory. */
es_nack_gen_t *es_nack_gen_new(void);
void es_nack_gen_free(es_nack_gen_t *g);

/* es_nack_gen_on_packet: sequence number `seq` arrived at now_us (monotonic µs). Records the
 * numbers skipped since the highest seen as missing, or clears `seq` from the missing set when
 * it fills a gap (a retransmission or a late packet). Returns true when `seq` was missing
 * (it is a recovered packet). A jump of more than ES_NACK_MAX_AGE resets the state (a new
 * publisher or a sender restart) without NACKing anything. */
bool es_nack_gen_on_packet(es_nack_gen_t *g, uint16_t seq, uint64_t now_us);

/* es_nack_gen_set_rtt: the round-trip time in µs used to space retries (default 100 ms). */
void es_nack_gen_set_rtt(es_nack_gen_t *g, uint64_t rtt_us);

/* es_nack_gen_poll: the missing sequence numbers whose (re)NACK is due at now_us, ascending
 * modulo 2^16, into out (at most max); each counts as one retry. Numbers past the retry limit
 * or the age limit are dropped. Returns how many were written. */
size_t es_nack_gen_poll(es_nack_gen_t *g, uint64_t now_us, uint16_t *out, size_t max);

/* es_nack_gen_next_timeout_us: monotonic µs at which es_nack_gen_poll has something due, or 0
 * when nothing is missing. */
uint64_t es_nack_gen_next_timeout_us(const es_nack_gen_t *g);

/* es_nack_gen_missing: how many sequence numbers are missing now. */
size_t es_nack_gen_missing(const es_nack_gen_t *g);

typedef struct es_rtp_history es_rtp_history_t;

/* es_rtp_history_new: a ring of `slots` packets (a power of two, 16..4096) of at most
 * `max_len` bytes each (e.g. 1500). NULL when out of memory or the sizes are invalid. */
es_rtp_history_t *es_rtp_history_new(size_t slots, size_t max_len);
void es_rtp_history_free(es_rtp_history_t *h);

/* es_rtp_history_put: stores a copy of the plain RTP packet (len bytes) with sequence number
 * `seq`, replacing what was in its slot (seq modulo slots). Returns 0, or ES_E2BIG when len is
 * over max_len (not stored). */
int es_rtp_history_put(es_rtp_history_t *h, uint16_t seq, const uint8_t *pkt, size_t len);

/* es_rtp_history_get: the stored packet with sequence number `seq`, or NULL when it was never
 * stored or has been overwritten. *len receives its length. Borrowed until the next put. */
const uint8_t *es_rtp_history_get(const es_rtp_history_t *h, uint16_t seq, size_t *len);

#endif
