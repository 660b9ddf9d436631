/* Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01
 * §3.1): a receiver records the transport-wide sequence number (header extension
 * "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01") and arrival time
 * of every packet from a publisher and periodically sends RTPFB FMT=15 feedback, which Chrome's
 * bandwidth estimator needs before it raises its bitrate. Sans-IO. */
#ifndef ESTUARY_TWCC_H
#define ESTUARY_TWCC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_RTCP_FMT_TWCC 15

typedef struct es_twcc_recv es_twcc_recv_t;

/* es_twcc_recv_new / _free (NULL-safe). */
es_twcc_recv_t *es_twcc_recv_new(void);
void es_twcc_recv_free(es_twcc_recv_t *t);

/* es_twcc_recv_on_packet: transport-wide sequence number `seq` arrived at arrival_us
 * (monotonic µs). Duplicates are ignored; reordered packets within the pending window are
 * placed where they belong. */
void es_twcc_recv_on_packet(es_twcc_recv_t *t, uint16_t seq, uint64_t arrival_us);

/* es_twcc_recv_build: one feedback packet (RTPFB, FMT 15) covering the packets recorded since
 * the last feedback, with run-length and status-vector chunks, receive deltas in 250 µs units
 * (large deltas as 2-byte signed values) and an incrementing feedback packet count, into buf
 * (cap bytes; 1200 is enough: if more packets are pending, the rest goes in the next call).
 * Returns the bytes written, 0 when nothing is pending, or ES_E2BIG when cap < 20 (or, with
 * something pending, cap < 24: the smallest feedback, one status and its delta, takes 24).
 * The first feedback has count 0; a delta that does not fit 16 bits ends the feedback, and the
 * rest goes in the next one with a new reference time. Packets older than the last feedback
 * are not reported again; a sequence jump of more than 4096 restarts the window. */
int es_twcc_recv_build(es_twcc_recv_t *t, uint32_t sender_ssrc, uint32_t media_ssrc,
                       uint8_t *buf, size_t cap);

/* One packet's status decoded from feedback (for tests and a future sender-side estimator). */
typedef struct es_twcc_status {
    uint16_t seq;
    bool received;
    int64_t delta_us;         /* receive delta from the previous received packet (or the
                                 reference time for the first), multiple of 250 µs */
} es_twcc_status_t;

/* es_twcc_parse: decodes a feedback FCI (after the 12-byte RTPFB header) into out (at most max
 * entries). *base_seq, *ref_time_64ms (24-bit signed reference time in 64 ms units) and
 * *fb_count receive the header fields. Returns the number of statuses written (the packet
 * status count, or max when that is smaller; the whole FCI is validated either way) or
 * ES_EPROTO: shorter than its chunks and deltas say, a status count of 0, an empty run, or the
 * reserved symbol 3. Bytes after the deltas (padding) are ignored. */
int es_twcc_parse(const uint8_t *fci, size_t len, uint16_t *base_seq, int32_t *ref_time_64ms,
                  uint8_t *fb_count, es_twcc_status_t *out, size_t max);

#endif
