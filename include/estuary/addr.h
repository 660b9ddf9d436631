/* Socket address helpers shared by the I/O layer and the protocol cores (which never touch a
 * socket but must say where a datagram came from and where a reply goes). */
#ifndef ESTUARY_ADDR_H
#define ESTUARY_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The transport of a pair: a UDP 5-tuple, or one TCP connection (RFC 6544 ICE-TCP). */
#define ES_ADDR_UDP 0
#define ES_ADDR_TCP 1

/* An address pair: the remote end and the local address (port included) it talks to, on UDP
 * or on one TCP connection (transport). local.ss_family is AF_UNSPEC when unknown (the kernel
 * then picks the source). */
typedef struct es_addr_pair {
    struct sockaddr_storage remote;
    socklen_t remote_len;
    struct sockaddr_storage local;
    uint8_t transport;             /* ES_ADDR_UDP (0) or ES_ADDR_TCP */
} es_addr_pair_t;

/* es_addr_format: "ip:port" (IPv6 as "[ip]:port"; IPv4-mapped IPv6 shown as IPv4) into out
 * (len bytes, NUL-terminated; "?" for other families). */
void es_addr_format(const struct sockaddr *sa, char *out, size_t len);

/* es_addr_equal: same family, address and port (IPv4 and IPv6 only). */
bool es_addr_equal(const struct sockaddr *a, const struct sockaddr *b);

/* es_addr_hash: a hash of family, address and port of the remote AND the local IP of a pair
 * (the 5-tuple on one UDP socket; with the local port for TCP) and its transport, for O(1)
 * peer lookup. */
uint64_t es_addr_pair_hash(const es_addr_pair_t *p);

/* es_addr_pair_equal: same transport, remote equal and local IP equal (and, for TCP, the local
 * port: one connection). */
bool es_addr_pair_equal(const es_addr_pair_t *a, const es_addr_pair_t *b);

#endif
