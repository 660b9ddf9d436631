/* One UDP socket on the libuv loop with batched I/O: recvmmsg(2) in batches of up to
 * ES_UDP_BATCH datagrams, and sendmmsg(2) of everything queued, flushed after the loop's I/O
 * and before it waits (uv_check and uv_prepare handles) or when ES_UDP_TX_SLOTS datagrams wait. At a flush the queue is grouped by
 * destination, and each destination's consecutive datagrams of one size (a video frame's
 * packets) leave as one UDP GSO train (UDP_SEGMENT, Linux 4.18+), in the order they were
 * queued (segments of at most 1,472 bytes, 1,452 for IPv6); a train the kernel refuses goes as
 * single datagrams, and when the refusal says GSO cannot work on the socket (EIO, EOPNOTSUPP)
 * it is off from then on. IP_PKTINFO / IPV6_RECVPKTINFO report the local
 * address each datagram was sent to, and every reply leaves from that same address, so that a
 * socket bound to 0.0.0.0 answers a client from the address the client used. */
#ifndef ESTUARY_UDP_H
#define ESTUARY_UDP_H

#include "estuary/addr.h"
#include "estuary/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define ES_UDP_BATCH 32     /* datagrams per recvmmsg call */
#define ES_UDP_TX_SLOTS 1024 /* datagrams queued before a flush (1.8 MB per socket) */
#define ES_UDP_MAX_DGRAM 1500 /* bytes: larger incoming datagrams are truncated and dropped */

typedef struct es_udp es_udp_t;

/* Called for each datagram received; buf (len bytes) is borrowed for the call and the callee
 * may modify it in place (SRTP is removed in place). now_us is the monotonic time the batch was
 * read. */
typedef void (*es_udp_recv_fn)(void *user, uint64_t now_us, uint8_t *buf, size_t len,
                               const es_addr_pair_t *addr);

/* Called with begin true before the first datagram of a recvmmsg batch is handed to the receive
 * callback, and with begin false after the last (es_udp_set_batch_cb). */
typedef void (*es_udp_batch_fn)(void *user, bool begin);

typedef struct es_udp_stats {
    uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
    uint64_t tx_dropped;      /* datagrams the kernel refused (EAGAIN, ENOBUFS, EPERM...) */
    uint64_t rx_truncated;    /* datagrams over ES_UDP_MAX_DGRAM, dropped */
    uint64_t tx_trains;       /* GSO sends of two or more datagrams */
    uint64_t tx_syscalls;     /* sendmmsg/sendmsg calls */
    uint64_t gso_fallbacks;   /* trains the kernel refused, sent as single datagrams */
} es_udp_stats_t;

/* es_udp_open: binds a socket to listen->addr (SO_REUSEADDR off, 4 MB buffers) and starts
 * reading on `loop`. Returns 0 and the socket in *out, or ES_EIO with the reason (errno text,
 * naming the address) in err. */
int es_udp_open(uv_loop_t *loop, const es_listen_t *listen, es_udp_recv_fn cb, void *user,
                es_udp_t **out, char *err, size_t err_len);

/* es_udp_send: queues one datagram (at most ES_UDP_MAX_DGRAM bytes) to addr->remote from
 * addr->local: copied, unless buf is the slot es_udp_tx_buf just returned. It leaves at the end
 * of this loop iteration at the latest. Returns 0, ES_E2BIG for an oversize datagram,
 * ES_EINVAL after es_udp_close. */
int es_udp_send(es_udp_t *u, const uint8_t *buf, size_t len, const es_addr_pair_t *addr);

/* es_udp_tx_buf: the send slot the next es_udp_send takes (flushing first when the queue is
 * full), *cap = ES_UDP_MAX_DGRAM bytes, so a datagram can be written (and encrypted) in place
 * and queued without a copy. Owned by the socket; valid until the next es_udp_send,
 * es_udp_flush or es_udp_close; not sending it is fine. NULL after es_udp_close. */
uint8_t *es_udp_tx_buf(es_udp_t *u, size_t *cap);

/* es_udp_flush: sends everything queued now (GSO trains by sendmmsg); what the kernel refuses
 * is dropped and counted. */
void es_udp_flush(es_udp_t *u);

/* es_udp_close: flushes, stops reading and frees the socket once libuv has closed its handles
 * (run the loop afterwards). NULL-safe. */
void es_udp_close(es_udp_t *u);

/* es_udp_port: the bound port (host byte order). */
uint16_t es_udp_port(const es_udp_t *u);

/* es_udp_set_batch_cb: brackets each receive batch with fn (NULL: none), given `user`. */
void es_udp_set_batch_cb(es_udp_t *u, es_udp_batch_fn fn, void *user);

/* es_udp_fd: the socket's descriptor, for socket options (tests use it to make the kernel
 * refuse GSO). Owned by the socket. */
int es_udp_fd(const es_udp_t *u);

/* es_udp_stats: counters since open. */
es_udp_stats_t es_udp_stats(const es_udp_t *u);

#endif
