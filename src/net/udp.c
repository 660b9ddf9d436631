/* UDP socket with recvmmsg/sendmmsg batching, UDP GSO trains and IP_PKTINFO (see
 * include/estuary/udp.h). The only place WebRTC datagrams touch the kernel. */
#define _GNU_SOURCE /* recvmmsg, sendmmsg, struct in6_pktinfo */
#include "estuary/udp.h"

#include "estuary/clock.h"
#include "estuary/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/udp.h> /* UDP_SEGMENT */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMSG_SPACE_PKTINFO 64 /* room for one in_pktinfo or in6_pktinfo control message */
#define CMSG_SPACE_TX 96      /* pktinfo and a UDP_SEGMENT message */
#define GSO_MAX_SEGMENTS 64   /* the kernel's UDP_MAX_SEGMENTS */
#define GSO_MAX_BYTES 65000   /* a train is one UDP datagram to the stack: under 64 KiB */
#define GSO_MAX_SEG4 1472     /* bytes: a segment within a 1,500-byte MTU (IPv4) */
#define GSO_MAX_SEG6 1452     /* bytes: the same for IPv6 */
#define HASH_SLOTS (2 * ES_UDP_TX_SLOTS) /* destination table at flush, half full at most */

#ifndef SOL_UDP
#define SOL_UDP 17
#endif

/* One queued datagram: its bytes, its destination (remote and the local source address). */
typedef struct tx_slot {
    uint8_t buf[ES_UDP_MAX_DGRAM];
    uint16_t len;
    socklen_t remote_len;
    struct sockaddr_storage remote, local;
    int next;                 /* flush: the next slot to the same destination, -1 at the end */
    int tail;                 /* flush, on a chain's first slot: its last slot */
    bool head;                /* flush: first slot of its destination */
} tx_slot_t;
#define SOCKET_BUFFER (4 * 1024 * 1024)
#define MAX_READS_PER_WAKEUP 8 /* batches; keeps one busy socket from starving the loop */

struct es_udp {
    uv_loop_t *loop;
    uv_poll_t poll;
    uv_check_t check;
    uv_prepare_t prepare;
    int fd;
    int family;
    uint16_t port;
    es_udp_recv_fn cb;
    void *user;
    es_udp_batch_fn batch_cb;
    void *batch_user;
    bool closing;
    int open_handles;
    es_udp_stats_t stats;
    /* receive batch */
    uint8_t rx_buf[ES_UDP_BATCH][ES_UDP_MAX_DGRAM];
    struct mmsghdr rx_msg[ES_UDP_BATCH];
    struct iovec rx_iov[ES_UDP_BATCH];
    struct sockaddr_storage rx_from[ES_UDP_BATCH];
    uint8_t rx_ctl[ES_UDP_BATCH][CMSG_SPACE_PKTINFO];
    /* send queue: datagrams in slots, sent as GSO trains per destination at flush */
    size_t tx_n;
    tx_slot_t *tx;                        /* ES_UDP_TX_SLOTS */
    struct mmsghdr *tx_msg;               /* one per train, at most one per slot */
    struct iovec *tx_iov;                 /* one per slot */
    uint8_t (*tx_ctl)[CMSG_SPACE_TX];     /* one per train */
    int *hash;                            /* HASH_SLOTS: slot index + 1 of a chain's head */
    bool gso;                             /* the kernel takes UDP_SEGMENT on this socket */
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
        if (u->batch_cb) u->batch_cb(u->batch_user, true);
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
        if (u->batch_cb) u->batch_cb(u->batch_user, false);
        if (n < ES_UDP_BATCH) return;
    }
}

static bool same_dest(const tx_slot_t *a, const tx_slot_t *b)
{
    return a->remote_len == b->remote_len && memcmp(&a->remote, &b->remote, a->remote_len) == 0 &&
           a->local.ss_family == b->local.ss_family &&
           (a->local.ss_family == AF_INET
                ? ((const struct sockaddr_in *)&a->local)->sin_addr.s_addr ==
                      ((const struct sockaddr_in *)&b->local)->sin_addr.s_addr
            : a->local.ss_family == AF_INET6
                ? memcmp(&((const struct sockaddr_in6 *)&a->local)->sin6_addr,
                         &((const struct sockaddr_in6 *)&b->local)->sin6_addr, 16) == 0
                : true);
}

static uint32_t dest_hash(const tx_slot_t *t)
{
    uint32_t h = 2166136261u; /* FNV-1a over the remote address */
    const uint8_t *p = (const uint8_t *)&t->remote;
    for (socklen_t i = 0; i < t->remote_len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Chains the queued slots by destination (tx[i].next), in queue order: each destination's
 * datagrams leave in the order they were queued. */
static void chain_by_dest(es_udp_t *u)
{
    memset(u->hash, 0, HASH_SLOTS * sizeof *u->hash);
    for (size_t i = 0; i < u->tx_n; i++) {
        tx_slot_t *t = &u->tx[i];
        t->next = -1;
        t->head = false;
        for (uint32_t h = dest_hash(t) & (HASH_SLOTS - 1);; h = (h + 1) & (HASH_SLOTS - 1)) {
            if (u->hash[h] == 0) { /* a new destination */
                u->hash[h] = (int)i + 1;
                t->head = true;
                t->tail = (int)i;
                break;
            }
            tx_slot_t *head = &u->tx[u->hash[h] - 1];
            if (same_dest(head, t)) {
                u->tx[head->tail].next = (int)i;
                head->tail = (int)i;
                break;
            }
        }
    }
}

/* Fills message m with the iov_n segments from iov (one datagram, or a GSO train of segments of
 * gso bytes each, the last one maybe shorter) to slot t's destination. */
static void build_msg(es_udp_t *u, size_t m, const tx_slot_t *t, struct iovec *iov, size_t iov_n,
                      uint16_t gso)
{
    struct msghdr *mh = &u->tx_msg[m].msg_hdr;
    *mh = (struct msghdr){
        .msg_name = (void *)&t->remote,
        .msg_namelen = t->remote_len,
        .msg_iov = iov,
        .msg_iovlen = iov_n,
    };
    uint8_t *ctl = u->tx_ctl[m];
    memset(ctl, 0, CMSG_SPACE_TX);
    size_t used = 0;
    struct cmsghdr *c = (struct cmsghdr *)ctl;
    /* The source address: IP_PKTINFO for IPv4 clients (also on a dual-stack IPv6 socket),
     * IPV6_PKTINFO for IPv6 ones; none when unknown (the kernel picks). */
    if (t->local.ss_family == AF_INET) {
        struct in_pktinfo pi = {0};
        pi.ipi_spec_dst = ((const struct sockaddr_in *)&t->local)->sin_addr;
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        used += CMSG_SPACE(sizeof pi);
    } else if (t->local.ss_family == AF_INET6 && u->family == AF_INET6) {
        struct in6_pktinfo pi = {0};
        pi.ipi6_addr = ((const struct sockaddr_in6 *)&t->local)->sin6_addr;
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(c), &pi, sizeof pi);
        used += CMSG_SPACE(sizeof pi);
    }
    if (iov_n > 1) {
        c = (struct cmsghdr *)(ctl + used);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof gso);
        memcpy(CMSG_DATA(c), &gso, sizeof gso);
        used += CMSG_SPACE(sizeof gso);
    }
    mh->msg_control = used ? ctl : NULL;
    mh->msg_controllen = used;
}

static size_t msg_bytes(const struct msghdr *mh)
{
    size_t n = 0;
    for (size_t i = 0; i < mh->msg_iovlen; i++)
        n += mh->msg_iov[i].iov_len;
    return n;
}

/* A train the kernel refused as a whole: its segments go one by one, from the same source
 * address (the pktinfo message, always first, stays). Only a refusal that says GSO cannot work
 * on this socket (EIO: no checksum offload on the route's device; ENOPROTOOPT, EOPNOTSUPP)
 * turns GSO off for good; EINVAL is this train's own (its segments exceed the path MTU, which an
 * ICMP message may have lowered for one destination). */
static void send_segments(es_udp_t *u, struct msghdr *mh, int err)
{
    if (err != EINVAL) u->gso = false;
    u->stats.gso_fallbacks++;
    struct iovec *iov = mh->msg_iov;
    size_t n = mh->msg_iovlen;
    struct cmsghdr *c = mh->msg_controllen ? CMSG_FIRSTHDR(mh) : NULL;
    if (c && c->cmsg_level != SOL_UDP) {
        mh->msg_controllen = CMSG_SPACE(c->cmsg_len - CMSG_LEN(0));
    } else {
        mh->msg_controllen = 0;
        mh->msg_control = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        mh->msg_iov = &iov[i];
        mh->msg_iovlen = 1;
        u->stats.tx_syscalls++;
        if (sendmsg(u->fd, mh, MSG_DONTWAIT) < 0) {
            u->stats.tx_dropped++;
        } else {
            u->stats.tx_packets++;
            u->stats.tx_bytes += iov[i].iov_len;
        }
    }
}

void es_udp_flush(es_udp_t *u)
{
    if (u->tx_n == 0) return;
    chain_by_dest(u);
    /* One message per train: a destination's consecutive datagrams of one size (the last of a
     * train may be shorter) as one UDP_SEGMENT send, up to 64 segments and 64 KB. */
    size_t n_msg = 0, n_iov = 0;
    for (size_t i = 0; i < u->tx_n; i++) {
        if (!u->tx[i].head) continue;
        for (int j = (int)i; j >= 0;) {
            const tx_slot_t *first = &u->tx[j];
            struct iovec *iov = &u->tx_iov[n_iov];
            size_t segs = 0, bytes = 0;
            uint16_t gso = first->len;
            /* no trains of empty or larger-than-Ethernet segments: the kernel refuses those */
            bool train_ok = u->gso && gso > 0 &&
                            gso <= (first->remote.ss_family == AF_INET6 ? GSO_MAX_SEG6 : GSO_MAX_SEG4);
            int k = j;
            while (k >= 0) {
                const tx_slot_t *t = &u->tx[k];
                if (segs > 0 && (!train_ok || segs == GSO_MAX_SEGMENTS || t->len > gso ||
                                 bytes + t->len > GSO_MAX_BYTES))
                    break;
                u->tx_iov[n_iov++] = (struct iovec){(void *)t->buf, t->len};
                segs++;
                bytes += t->len;
                k = t->next;
                if (t->len < gso) break; /* a shorter segment ends the train */
            }
            build_msg(u, n_msg++, first, iov, segs, gso);
            if (segs > 1) u->stats.tx_trains++;
            j = k;
        }
    }
    size_t done = 0;
    while (done < n_msg) {
        u->stats.tx_syscalls++;
        int n = sendmmsg(u->fd, u->tx_msg + done, (unsigned)(n_msg - done), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            struct msghdr *mh = &u->tx_msg[done].msg_hdr;
            if (mh->msg_iovlen > 1 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT ||
                                       errno == EOPNOTSUPP)) {
                send_segments(u, mh, errno);
            } else {
                /* Refused (EAGAIN: socket buffer full; EPERM, ENETUNREACH, EINVAL: this
                 * destination). Drop it, as the network would, and go on. */
                u->stats.tx_dropped += mh->msg_iovlen;
            }
            done++;
            continue;
        }
        for (int i = 0; i < n; i++) {
            const struct msghdr *mh = &u->tx_msg[done + (size_t)i].msg_hdr;
            u->stats.tx_packets += mh->msg_iovlen;
            u->stats.tx_bytes += msg_bytes(mh);
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

/* What timers queued (RTCP, DTLS and STUN retransmissions) leaves before the loop waits. */
static void on_prepare(uv_prepare_t *h)
{
    es_udp_t *u = h->data;
    if (u->tx_n) es_udp_flush(u);
}

uint8_t *es_udp_tx_buf(es_udp_t *u, size_t *cap)
{
    if (u->closing) return NULL;
    if (u->tx_n == ES_UDP_TX_SLOTS) es_udp_flush(u);
    *cap = ES_UDP_MAX_DGRAM;
    return u->tx[u->tx_n].buf;
}

int es_udp_send(es_udp_t *u, const uint8_t *buf, size_t len, const es_addr_pair_t *addr)
{
    if (u->closing) return ES_EINVAL;
    if (len > ES_UDP_MAX_DGRAM) return ES_E2BIG;
    if (u->tx_n == ES_UDP_TX_SLOTS) es_udp_flush(u);
    tx_slot_t *t = &u->tx[u->tx_n++];
    if (buf != t->buf) memcpy(t->buf, buf, len); /* written in place via es_udp_tx_buf: no copy */
    t->len = (uint16_t)len;
    t->remote_len = addr->remote_len;
    memcpy(&t->remote, &addr->remote, addr->remote_len);
    t->local.ss_family = addr->local.ss_family;
    if (addr->local.ss_family == AF_INET)
        memcpy(&t->local, &addr->local, sizeof(struct sockaddr_in));
    else if (addr->local.ss_family == AF_INET6)
        memcpy(&t->local, &addr->local, sizeof(struct sockaddr_in6));
    return 0;
}

static void udp_free(es_udp_t *u)
{
    free(u->tx);
    free(u->tx_msg);
    free(u->tx_iov);
    free(u->tx_ctl);
    free(u->hash);
    free(u);
}

static void on_closed(uv_handle_t *h)
{
    es_udp_t *u = h->data;
    if (--u->open_handles == 0) {
        close(u->fd);
        udp_free(u);
    }
}

void es_udp_close(es_udp_t *u)
{
    if (!u || u->closing) return;
    es_udp_flush(u);
    u->closing = true;
    uv_poll_stop(&u->poll);
    uv_check_stop(&u->check);
    uv_prepare_stop(&u->prepare);
    uv_close((uv_handle_t *)&u->poll, on_closed);
    uv_close((uv_handle_t *)&u->check, on_closed);
    uv_close((uv_handle_t *)&u->prepare, on_closed);
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
    if (u) {
        u->tx = malloc(ES_UDP_TX_SLOTS * sizeof *u->tx);
        u->tx_msg = malloc(ES_UDP_TX_SLOTS * sizeof *u->tx_msg);
        u->tx_iov = malloc(ES_UDP_TX_SLOTS * sizeof *u->tx_iov);
        u->tx_ctl = malloc(ES_UDP_TX_SLOTS * sizeof *u->tx_ctl);
        u->hash = malloc(HASH_SLOTS * sizeof *u->hash);
    }
    if (!u || !u->tx || !u->tx_msg || !u->tx_iov || !u->tx_ctl || !u->hash) {
        if (u) udp_free(u);
        close(fd);
        snprintf(err, err_len, "out of memory");
        return ES_ENOMEM;
    }
    /* UDP GSO (Linux 4.18+): asked of the socket once; a kernel that refuses a train later
     * turns it off (send_segments). */
    int seg = 0;
    socklen_t seg_len = sizeof seg;
    u->gso = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, &seg_len) == 0;
    u->loop = loop;
    u->fd = fd;
    u->family = family;
    u->port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                      : ((struct sockaddr_in6 *)&bound)->sin6_port);
    u->cb = cb;
    u->user = user;
    u->poll.data = u;
    u->check.data = u;
    u->prepare.data = u;
    if (uv_poll_init_socket(loop, &u->poll, fd) != 0) {
        close(fd);
        udp_free(u);
        snprintf(err, err_len, "uv_poll_init_socket failed");
        return ES_EIO;
    }
    uv_check_init(loop, &u->check);
    uv_prepare_init(loop, &u->prepare);
    u->open_handles = 3;
    uv_poll_start(&u->poll, UV_READABLE, on_readable);
    uv_check_start(&u->check, on_check);
    uv_prepare_start(&u->prepare, on_prepare);
    *out = u;
    return 0;
}

uint16_t es_udp_port(const es_udp_t *u) { return u->port; }

es_udp_stats_t es_udp_stats(const es_udp_t *u) { return u->stats; }

int es_udp_fd(const es_udp_t *u) { return u->fd; }

void es_udp_set_batch_cb(es_udp_t *u, es_udp_batch_fn fn, void *user)
{
    u->batch_cb = fn;
    u->batch_user = user;
}
