/* UDP socket with recvmmsg/sendmmsg batching and IP_PKTINFO (see include/estuary/udp.h). The
 * only place WebRTC datagrams touch the kernel. */
#define _GNU_SOURCE /* recvmmsg, sendmmsg, struct in6_pktinfo */
#include "estuary/udp.h"

#include "estuary/clock.h"
#include "estuary/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMSG_SPACE_PKTINFO 64 /* room for one in_pktinfo or in6_pktinfo control message */
#define SOCKET_BUFFER (4 * 1024 * 1024)
#define MAX_READS_PER_WAKEUP 8 /* batches; keeps one busy socket from starving the loop */

struct es_udp {
    uv_loop_t *loop;
    uv_poll_t poll;
    uv_check_t check;
    int fd;
    int family;
    uint16_t port;
    es_udp_recv_fn cb;
    void *user;
    bool closing;
    int open_handles;
    es_udp_stats_t stats;
    /* receive batch */
    uint8_t rx_buf[ES_UDP_BATCH][ES_UDP_MAX_DGRAM];
    struct mmsghdr rx_msg[ES_UDP_BATCH];
    struct iovec rx_iov[ES_UDP_BATCH];
    struct sockaddr_storage rx_from[ES_UDP_BATCH];
    uint8_t rx_ctl[ES_UDP_BATCH][CMSG_SPACE_PKTINFO];
    /* send batch */
    size_t tx_n;
    uint8_t tx_buf[ES_UDP_BATCH][ES_UDP_MAX_DGRAM];
    struct mmsghdr tx_msg[ES_UDP_BATCH];
    struct iovec tx_iov[ES_UDP_BATCH];
    struct sockaddr_storage tx_to[ES_UDP_BATCH];
    uint8_t tx_ctl[ES_UDP_BATCH][CMSG_SPACE_PKTINFO];
};

/* The local address a datagram was sent to, from its IP_PKTINFO / IPV6_PKTINFO message. */
static void local_from_cmsg(const es_udp_t *u, struct msghdr *mh, struct sockaddr_storage *local)
{
    memset(local, 0, sizeof *local);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            struct sockaddr_in *in = (struct sockaddr_in *)local;
            in->sin_family = AF_INET;
            in->sin_addr = pi.ipi_addr;
            in->sin_port = htons(u->port);
            return;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)local;
            in6->sin6_family = AF_INET6;
            in6->sin6_addr = pi.ipi6_addr;
            in6->sin6_port = htons(u->port);
            return;
        }
    }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    es_udp_t *u = h->data;
    if (status < 0 || !(events & UV_READABLE)) return;
    for (int round = 0; round < MAX_READS_PER_WAKEUP && !u->closing; round++) {
        for (int i = 0; i < ES_UDP_BATCH; i++) {
            u->rx_iov[i] = (struct iovec){u->rx_buf[i], ES_UDP_MAX_DGRAM};
            u->rx_msg[i].msg_hdr = (struct msghdr){
                .msg_name = &u->rx_from[i],
                .msg_namelen = sizeof u->rx_from[i],
                .msg_iov = &u->rx_iov[i],
                .msg_iovlen = 1,
                .msg_control = u->rx_ctl[i],
                .msg_controllen = sizeof u->rx_ctl[i],
            };
            u->rx_msg[i].msg_len = 0;
        }
        int n = recvmmsg(u->fd, u->rx_msg, ES_UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) return; /* EAGAIN, or an ICMP error report on the socket: nothing to read */
        uint64_t now = es_clock_now_us();
        for (int i = 0; i < n && !u->closing; i++) {
            struct msghdr *mh = &u->rx_msg[i].msg_hdr;
            if (mh->msg_flags & MSG_TRUNC) {
                u->stats.rx_truncated++;
                continue;
            }
            es_addr_pair_t a;
            memcpy(&a.remote, &u->rx_from[i], sizeof a.remote);
            a.remote_len = mh->msg_namelen;
            a.transport = ES_ADDR_UDP;
            local_from_cmsg(u, mh, &a.local);
            u->stats.rx_packets++;
            u->stats.rx_bytes += u->rx_msg[i].msg_len;
            u->cb(u->user, now, u->rx_buf[i], u->rx_msg[i].msg_len, &a);
        }
        if (n < ES_UDP_BATCH) return;
    }
}

void es_udp_flush(es_udp_t *u)
{
    size_t done = 0;
    while (done < u->tx_n) {
        int n = sendmmsg(u->fd, u->tx_msg + done, (unsigned)(u->tx_n - done), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            /* The first datagram was refused (EAGAIN: socket buffer full; EPERM, ENETUNREACH,
             * EINVAL: this destination). Drop it, as the network would, and go on. */
            u->stats.tx_dropped++;
            done++;
            continue;
        }
        for (int i = 0; i < n; i++) {
            u->stats.tx_packets++;
            u->stats.tx_bytes += u->tx_iov[done + (size_t)i].iov_len;
        }
        done += (size_t)n;
    }
    u->tx_n = 0;
}

static void on_check(uv_check_t *h)
{
    es_udp_t *u = h->data;
    if (u->tx_n) es_udp_flush(u);
}

/* Attaches one control message (level, type, len bytes of data) to mh, in ctl. */
static void set_pktinfo(struct msghdr *mh, uint8_t *ctl, int level, int type, const void *data,
                        size_t len)
{
    mh->msg_control = ctl;
    mh->msg_controllen = CMSG_SPACE(len);
    struct cmsghdr *c = CMSG_FIRSTHDR(mh);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), data, len);
}

int es_udp_send(es_udp_t *u, const uint8_t *buf, size_t len, const es_addr_pair_t *addr)
{
    if (u->closing) return ES_EINVAL;
    if (len > ES_UDP_MAX_DGRAM) return ES_E2BIG;
    if (u->tx_n == ES_UDP_BATCH) es_udp_flush(u);
    size_t i = u->tx_n++;
    memcpy(u->tx_buf[i], buf, len);
    u->tx_iov[i] = (struct iovec){u->tx_buf[i], len};
    memcpy(&u->tx_to[i], &addr->remote, sizeof u->tx_to[i]);
    struct msghdr *mh = &u->tx_msg[i].msg_hdr;
    *mh = (struct msghdr){
        .msg_name = &u->tx_to[i],
        .msg_namelen = addr->remote_len,
        .msg_iov = &u->tx_iov[i],
        .msg_iovlen = 1,
    };
    memset(u->tx_ctl[i], 0, sizeof u->tx_ctl[i]);
    /* The source address: IP_PKTINFO for IPv4 clients (also on a dual-stack IPv6 socket),
     * IPV6_PKTINFO for IPv6 ones; none when unknown (the kernel picks). */
    if (addr->local.ss_family == AF_INET) {
        struct in_pktinfo pi = {0};
        pi.ipi_spec_dst = ((const struct sockaddr_in *)&addr->local)->sin_addr;
        set_pktinfo(mh, u->tx_ctl[i], IPPROTO_IP, IP_PKTINFO, &pi, sizeof pi);
    } else if (addr->local.ss_family == AF_INET6 && u->family == AF_INET6) {
        struct in6_pktinfo pi = {0};
        pi.ipi6_addr = ((const struct sockaddr_in6 *)&addr->local)->sin6_addr;
        set_pktinfo(mh, u->tx_ctl[i], IPPROTO_IPV6, IPV6_PKTINFO, &pi, sizeof pi);
    }
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    es_udp_t *u = h->data;
    if (--u->open_handles == 0) {
        close(u->fd);
        free(u);
    }
}

void es_udp_close(es_udp_t *u)
{
    if (!u || u->closing) return;
    es_udp_flush(u);
    u->closing = true;
    uv_poll_stop(&u->poll);
    uv_check_stop(&u->check);
    uv_close((uv_handle_t *)&u->poll, on_closed);
    uv_close((uv_handle_t *)&u->check, on_closed);
}

int es_udp_open(uv_loop_t *loop, const es_listen_t *listen, es_udp_recv_fn cb, void *user,
                es_udp_t **out, char *err, size_t err_len)
{
    *out = NULL;
    int family = listen->addr.ss_family;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return ES_EIO;
    }
    int on = 1, size = SOCKET_BUFFER;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) != 0 && family == AF_INET) {
        snprintf(err, err_len, "setsockopt(IP_PKTINFO): %s", strerror(errno));
        close(fd);
        return ES_EIO;
    }
    if (family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) != 0) {
        snprintf(err, err_len, "setsockopt(IPV6_RECVPKTINFO): %s", strerror(errno));
        close(fd);
        return ES_EIO;
    }
    if (bind(fd, (const struct sockaddr *)&listen->addr, listen->addr_len) != 0) {
        snprintf(err, err_len, "bind %s/udp: %s", listen->text, strerror(errno));
        close(fd);
        return ES_EIO;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &bl);
    es_udp_t *u = calloc(1, sizeof *u);
    if (!u) {
        close(fd);
        snprintf(err, err_len, "out of memory");
        return ES_ENOMEM;
    }
    u->loop = loop;
    u->fd = fd;
    u->family = family;
    u->port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                      : ((struct sockaddr_in6 *)&bound)->sin6_port);
    u->cb = cb;
    u->user = user;
    u->poll.data = u;
    u->check.data = u;
    if (uv_poll_init_socket(loop, &u->poll, fd) != 0) {
        close(fd);
        free(u);
        snprintf(err, err_len, "uv_poll_init_socket failed");
        return ES_EIO;
    }
    uv_check_init(loop, &u->check);
    u->open_handles = 2;
    uv_poll_start(&u->poll, UV_READABLE, on_readable);
    uv_check_start(&u->check, on_check);
    *out = u;
    return 0;
}

uint16_t es_udp_port(const es_udp_t *u) { return u->port; }

es_udp_stats_t es_udp_stats(const es_udp_t *u) { return u->stats; }
