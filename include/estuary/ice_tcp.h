/* ICE-TCP framing and the HTTP port's first-bytes sniffing (src/webrtc/ice_tcp.c), sans-IO.
 * RFC 6544 §3 carries STUN, DTLS, RTP and RTCP over TCP with RFC 4571 framing: each packet is
 * preceded by its length as a 16-bit big-endian number. A connection to the HTTP port is told
 * apart by its first bytes: a framed STUN Binding request (RFC 8489 §5: first two bits zero,
 * type 0x0001, magic cookie), a TLS ClientHello (RFC 8446 §5.1: content type 22, version major
 * 3) or an HTTP request (a method token: upper-case letters). */
#ifndef ESTUARY_ICE_TCP_H
#define ESTUARY_ICE_TCP_H

#include <stddef.h>
#include <stdint.h>

#define ES_ICE_TCP_MAX_FRAME 1500 /* bytes: a longer frame closes the connection */
#define ES_TCP_SNIFF_BYTES 10     /* bytes enough for es_tcp_sniff to decide */

/* An RFC 4571 deframer: bytes from a TCP stream in, whole frames out. Zero it to start. */
typedef struct es_rfc4571 {
    uint8_t buf[ES_ICE_TCP_MAX_FRAME];
    size_t need;   /* the current frame's length, once its 2-byte header is read */
    size_t have;   /* bytes of the header (while need == 0) or of the frame read so far */
    uint8_t hdr[2];
} es_rfc4571_t;

/* es_rfc4571_next: reads from *in (*in_len bytes), advancing both, until one frame is complete.
 * Returns 1 with *frame (borrowed from d, valid until the next call) and *frame_len set; 0 when
 * every input byte was taken and no frame is complete yet; ES_E2BIG when a frame's length is
 * over ES_ICE_TCP_MAX_FRAME (the stream cannot be resynchronised: close it). Frames of length 0
 * are skipped (RFC 4571 §2 frames carry one packet; an empty one carries nothing). */
int es_rfc4571_next(es_rfc4571_t *d, const uint8_t **in, size_t *in_len, const uint8_t **frame,
                    size_t *frame_len);

/* es_rfc4571_header: writes the 2-byte length header for a len-byte packet (len <= 65535). */
void es_rfc4571_header(uint8_t out[2], size_t len);

typedef enum {
    ES_SNIFF_MORE = 0, /* not decided yet: read more (at most ES_TCP_SNIFF_BYTES in all) */
    ES_SNIFF_HTTP,     /* an HTTP/1.x request line */
    ES_SNIFF_TLS,      /* a TLS record of type handshake */
    ES_SNIFF_STUN,     /* an RFC 4571 frame holding a STUN Binding request */
    ES_SNIFF_UNKNOWN,  /* none of these: close */
} es_tcp_sniff_t;

/* es_tcp_sniff: what the first len bytes of a new TCP connection are. Once a prefix gives an
 * answer other than ES_SNIFF_MORE, every longer prefix gives the same; ES_SNIFF_MORE only while
 * len < ES_TCP_SNIFF_BYTES. */
es_tcp_sniff_t es_tcp_sniff(const uint8_t *buf, size_t len);

/* es_tcp_sniff_name: "more", "http", "tls", "stun", "unknown". */
const char *es_tcp_sniff_name(es_tcp_sniff_t v);

#endif
