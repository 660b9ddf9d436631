/* RTP packets: parse and write the fixed header (RFC 3550 §5.1), CSRCs, header extensions
 * (RFC 8285 one-byte and two-byte forms) and padding. Sans-IO: bytes in, fields out. */
#ifndef ESTUARY_RTP_H
#define ESTUARY_RTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_RTP_MIN_HEADER 12 /* bytes */

/* A parsed packet. Pointers borrow from the buffer given to es_rtp_parse. */
typedef struct es_rtp_packet {
    bool marker;
    uint8_t payload_type;     /* 0..127 */
    uint16_t sequence;
    uint32_t timestamp;       /* media clock ticks (90 kHz video, 48 kHz Opus) */
    uint32_t ssrc;
    uint8_t csrc_count;
    uint32_t csrc[15];
    uint16_t ext_profile;     /* 0xBEDE (one-byte), 0x1000..0x100F (two-byte), other; 0 if none */
    const uint8_t *ext;       /* extension data after the 4-byte extension header, or NULL */
    size_t ext_len;           /* bytes, a multiple of 4 */
    size_t header_len;        /* bytes before the payload */
    const uint8_t *payload;
    size_t payload_len;       /* bytes, without padding */
    uint8_t padding_len;      /* bytes of padding at the end (0 if none) */
} es_rtp_packet_t;

/* es_rtp_parse: parses `len` bytes of one RTP packet (RFC 3550 §5.1). Returns 0, or ES_EPROTO
 * when the version is not 2, the packet is shorter than its header, CSRC list or extension say,
 * or the padding count is 0 or larger than what follows the header. */
int es_rtp_parse(const uint8_t *buf, size_t len, es_rtp_packet_t *out);

/* es_rtp_ext_find: the element with id `id` (1..14 one-byte, 1..255 two-byte) in the packet's
 * RFC 8285 extension block. Returns its length in bytes (0 is a valid two-byte length) and
 * points *data into the packet, or ES_ENOENT when absent, ES_EPROTO when the block is malformed
 * or not an RFC 8285 block. */
int es_rtp_ext_find(const es_rtp_packet_t *pkt, uint8_t id, const uint8_t **data);

/* es_rtp_write_header: writes the 12-byte fixed header (no CSRCs, no extension bit) of `pkt`
 * into buf (cap bytes). Returns 12, or ES_E2BIG when cap < 12. */
int es_rtp_write_header(const es_rtp_packet_t *pkt, uint8_t *buf, size_t cap);

/* es_rtp_seq_newer: true when sequence number a is after b, modulo 2^16 (RFC 3550 A.1). */
static inline bool es_rtp_seq_newer(uint16_t a, uint16_t b)
{
    return a != b && (uint16_t)(a - b) < 0x8000;
}

/* es_rtp_is_rtcp: true when a datagram that demultiplexed to RTP/RTCP (first byte 128..191,
 * RFC 7983) carries RTCP: packet types 192..223 in the second byte (RFC 5761 §4). */
static inline bool es_rtp_is_rtcp(const uint8_t *buf, size_t len)
{
    return len >= 2 && buf[1] >= 192 && buf[1] <= 223;
}

#endif
