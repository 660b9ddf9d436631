/* RTCP: walking compound packets (RFC 3550 §6.1), sender and receiver reports (§6.4), generic
 * NACK and PLI (RFC 4585 §6.2.1, §6.3.1) and FIR (RFC 5104 §4.3.1). Sans-IO. */
#ifndef ESTUARY_RTCP_H
#define ESTUARY_RTCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    ES_RTCP_SR = 200,
    ES_RTCP_RR = 201,
    ES_RTCP_SDES = 202,
    ES_RTCP_BYE = 203,
    ES_RTCP_APP = 204,
    ES_RTCP_RTPFB = 205, /* transport-layer feedback: fmt 1 generic NACK, 15 transport-cc */
    ES_RTCP_PSFB = 206,  /* payload-specific feedback: fmt 1 PLI, 4 FIR, 15 REMB (AFB) */
};
#define ES_RTCP_FMT_NACK 1
#define ES_RTCP_FMT_PLI 1
#define ES_RTCP_FMT_FIR 4

/* One packet of a compound packet. `body` borrows from the buffer: everything after the 4-byte
 * common header, without padding. */
typedef struct es_rtcp_header {
    uint8_t count;            /* RC/SC, or FMT for feedback packets */
    uint8_t type;             /* ES_RTCP_* */
    size_t total_len;         /* bytes of this packet, header and padding included */
    const uint8_t *body;
    size_t body_len;
} es_rtcp_header_t;

/* es_rtcp_next: the packet at *offset of a compound packet of `len` bytes; advances *offset.
 * Returns 1 with *out filled, 0 at the end, ES_EPROTO when the version is not 2, a length runs
 * past the buffer, or the padding is invalid (then stop walking: the rest is unusable). */
int es_rtcp_next(const uint8_t *buf, size_t len, size_t *offset, es_rtcp_header_t *out);

typedef struct es_rtcp_report_block {
    uint32_t ssrc;
    uint8_t fraction_lost;    /* fixed point /256 */
    int32_t cumulative_lost;  /* 24-bit signed */
    uint32_t highest_seq;     /* extended highest sequence number received */
    uint32_t jitter;          /* media clock ticks */
    uint32_t lsr;             /* middle 32 bits of the last SR's NTP time */
    uint32_t dlsr;            /* delay since last SR, 1/65536 s */
} es_rtcp_report_block_t;

typedef struct es_rtcp_report {
    uint32_t ssrc;            /* sender of this SR/RR */
    uint64_t ntp;             /* SR only: NTP timestamp, 32.32 fixed point seconds since 1900 */
    uint32_t rtp_timestamp;   /* SR only */
    uint32_t packet_count;    /* SR only */
    uint32_t octet_count;     /* SR only: payload bytes */
    size_t n_blocks;
    es_rtcp_report_block_t blocks[31];
} es_rtcp_report_t;

/* es_rtcp_parse_report: an SR or RR (RFC 3550 §6.4.1, §6.4.2) into *out. Returns 0, or
 * ES_EPROTO when the type is neither or the body is shorter than its report count says. */
int es_rtcp_parse_report(const es_rtcp_header_t *hdr, es_rtcp_report_t *out);

/* A feedback message (RFC 4585 §6.1). fci borrows from the packet. */
typedef struct es_rtcp_fb {
    uint32_t sender_ssrc;
    uint32_t media_ssrc;
    const uint8_t *fci;
    size_t fci_len;           /* bytes */
} es_rtcp_fb_t;

/* es_rtcp_parse_fb: an RTPFB or PSFB packet into *out. Returns 0 or ES_EPROTO. */
int es_rtcp_parse_fb(const es_rtcp_header_t *hdr, es_rtcp_fb_t *out);

/* es_rtcp_nack_lost: the sequence numbers a generic NACK (RFC 4585 §6.2.1) reports lost, in
 * order, into seqs (at most max). Returns how many were written, or ES_EPROTO when the FCI is
 * not a whole number of 4-byte entries. */
int es_rtcp_nack_lost(const es_rtcp_fb_t *fb, uint16_t *seqs, size_t max);

/* es_rtcp_write_nack: a generic NACK for `n` lost sequence numbers (ascending modulo 2^16),
 * packed into PID+BLP entries, into buf (cap bytes). Returns the bytes written, or ES_E2BIG. */
int es_rtcp_write_nack(uint32_t sender_ssrc, uint32_t media_ssrc, const uint16_t *seqs, size_t n,
                       uint8_t *buf, size_t cap);

/* es_rtcp_write_pli: a Picture Loss Indication (RFC 4585 §6.3.1), 12 bytes. Returns 12 or
 * ES_E2BIG. */
int es_rtcp_write_pli(uint32_t sender_ssrc, uint32_t media_ssrc, uint8_t *buf, size_t cap);

/* es_rtcp_write_fir: a Full Intra Request (RFC 5104 §4.3.1) with command sequence number
 * seq_nr, 20 bytes. Returns 20 or ES_E2BIG. */
int es_rtcp_write_fir(uint32_t sender_ssrc, uint32_t media_ssrc, uint8_t seq_nr, uint8_t *buf,
                      size_t cap);

/* es_rtcp_write_sr: a sender report (RFC 3550 §6.4.1) from r (ssrc, ntp, rtp_timestamp,
 * packet_count, octet_count, n_blocks report blocks) into buf. Returns the bytes written
 * (28 + 24 per block) or ES_E2BIG / ES_EINVAL (more than 31 blocks). */
int es_rtcp_write_sr(const es_rtcp_report_t *r, uint8_t *buf, size_t cap);

/* es_rtcp_write_rr: a receiver report (RFC 3550 §6.4.2) from r (ssrc and blocks). Returns the
 * bytes written (8 + 24 per block) or ES_E2BIG / ES_EINVAL. */
int es_rtcp_write_rr(const es_rtcp_report_t *r, uint8_t *buf, size_t cap);

/* es_rtcp_write_sdes_cname: an SDES packet with one chunk carrying CNAME `cname` (at most 255
 * bytes) for ssrc (RFC 3550 §6.5.1), padded to 32 bits. Returns the bytes written or ES_E2BIG
 * (also for a longer cname); ES_EINVAL when cname is NULL. */
int es_rtcp_write_sdes_cname(uint32_t ssrc, const char *cname, uint8_t *buf, size_t cap);

/* es_rtcp_write_remb: a Receiver Estimated Maximum Bitrate message (PSFB FMT 15 "REMB",
 * draft-alvestrand-rmcat-remb-03 §2.2) of bitrate_bps for the n (at most 255) SSRCs: 20 + 4n
 * bytes, media source SSRC 0, bitrate as an 18-bit mantissa and 6-bit exponent rounded down.
 * Returns the bytes written or ES_E2BIG; ES_EINVAL when n > 255. */
int es_rtcp_write_remb(uint32_t sender_ssrc, uint64_t bitrate_bps, const uint32_t *ssrcs,
                       size_t n, uint8_t *buf, size_t cap);

/* Receive statistics of one incoming RTP stream (RFC 3550 §6.4.1, A.1, A.3, A.8), for the
 * report blocks Estuary sends. Plain struct: zero-initialise, then es_rtp_recv_stats_update. */
typedef struct es_rtp_recv_stats {
    bool started;
    uint16_t max_seq;
    uint32_t cycles;          /* shifted count of sequence number wraps (<< 16) */
    uint32_t base_seq;
    uint32_t received;        /* packets */
    uint32_t expected_prior, received_prior; /* at the last report block */
    uint32_t transit;         /* previous relative transit time, media clock ticks */
    double jitter;            /* media clock ticks (RFC 3550 A.8) */
    uint32_t last_sr_ntp_mid; /* middle 32 bits of the last SR's NTP time, 0 if none */
    uint64_t last_sr_us;      /* monotonic µs when that SR arrived */
} es_rtp_recv_stats_t;

/* es_rtp_recv_stats_update: one packet with sequence number seq and RTP timestamp ts arrived
 * at arrival_us (monotonic µs); clock_rate is the media clock in Hz. Sequence validation is
 * A.1's without probation: a jump of MAX_DROPOUT (3000) or more that is not a reordering
 * within MAX_MISORDER (100) restarts the statistics at once. */
void es_rtp_recv_stats_update(es_rtp_recv_stats_t *s, uint16_t seq, uint32_t ts,
                              uint64_t arrival_us, uint32_t clock_rate);

/* es_rtp_recv_stats_on_sr: the sender's SR with NTP time `ntp` arrived at now_us. */
void es_rtp_recv_stats_on_sr(es_rtp_recv_stats_t *s, uint64_t ntp, uint64_t now_us);

/* es_rtp_recv_stats_block: fills a report block for media ssrc at now_us (fraction lost since
 * the previous block, cumulative lost, extended highest sequence number, jitter, LSR, DLSR) and
 * starts a new interval. */
void es_rtp_recv_stats_block(es_rtp_recv_stats_t *s, uint32_t ssrc, uint64_t now_us,
                             es_rtcp_report_block_t *out);

#endif
