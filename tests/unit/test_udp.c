/* Unit tests for src/net/udp.c's send side: datagrams queued for several destinations leave
 * grouped per destination as UDP GSO trains, each destination's in the order queued, with
 * trains cut at a shorter datagram, 64 segments and 64 KB; a datagram written in place through
 * es_udp_tx_buf is sent without a copy; a full queue flushes itself; when the kernel refuses a
 * train (SO_NO_CHECK makes it answer EINVAL to UDP_SEGMENT) its datagrams go one by one from
 * the same source address and nothing is lost; segments over 1,472 bytes make no train. Real
 * sockets on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/config.h"
#include "estuary/error.h"
#include "estuary/udp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_recv(void *user, uint64_t now_us, uint8_t *buf, size_t len,
                    const es_addr_pair_t *addr)
{
}

typedef struct rx {
    int fd;
    es_addr_pair_t to;
} rx_t;

static void rx_open(rx_t *r)
{
    r->fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(r->fd >= 0);
    int size = 8 << 20;
    setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(r->fd, (struct sockaddr *)&a, &al);
    memset(&r->to, 0, sizeof r->to);
    memcpy(&r->to.remote, &a, sizeof a);
    r->to.remote_len = sizeof a;
    r->to.transport = ES_ADDR_UDP;
    struct sockaddr_in *l = (struct sockaddr_in *)&r->to.local;
    l->sin_family = AF_INET;
    l->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* The next datagram on r (waits up to 1 s); returns its length, or -1. */
static int rx_next(rx_t *r, uint8_t *buf, size_t cap)
{
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    if (poll(&p, 1, 1000) != 1) return -1;
    return (int)recv(r->fd, buf, cap, MSG_DONTWAIT);
}

static es_udp_t *open_sender(uv_loop_t *loop)
{
    es_listen_t l;
    memset(&l, 0, sizeof l);
    struct sockaddr_in *a = (struct sockaddr_in *)&l.addr;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l.addr_len = sizeof *a;
    snprintf(l.text, sizeof l.text, "127.0.0.1:0");
    es_udp_t *u = NULL;
    char err[128];
    assert_int_equal(es_udp_open(loop, &l, on_recv, NULL, &u, err, sizeof err), 0);
    return u;
}

/* A datagram of len bytes: its number in the first two bytes, then a pattern of it. */
static void fill(uint8_t *b, size_t len, uint16_t n)
{
    b[0] = (uint8_t)(n >> 8);
    b[1] = (uint8_t)n;
    for (size_t i = 2; i < len; i++) b[i] = (uint8_t)(n * 31 + i);
}

static void expect(rx_t *r, uint16_t n, size_t len)
{
    uint8_t got[2048], want[2048];
    int k = rx_next(r, got, sizeof got);
    assert_int_equal(k, (int)len);
    fill(want, len, n);
    assert_memory_equal(got, want, len);
}

static void close_sender(uv_loop_t *loop, es_udp_t *u)
{
    es_udp_close(u);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void interleaved(bool refuse_gso)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    es_udp_t *u = open_sender(&loop);
    if (refuse_gso) {
        int on = 1;
        assert_int_equal(setsockopt(es_udp_fd(u), SOL_SOCKET, SO_NO_CHECK, &on, sizeof on), 0);
    }
    rx_t a, b;
    rx_open(&a);
    rx_open(&b);
    uint8_t buf[2048];
    /* A gets 6 x 1200 then 700 (one train), then 1200 (the next); B 6 x 1200 then 80. Half of
     * them are written in place in the send slot. */
    for (uint16_t k = 0; k < 6; k++) {
        size_t cap = 0;
        uint8_t *slot = es_udp_tx_buf(u, &cap);
        assert_non_null(slot);
        assert_int_equal(cap, ES_UDP_MAX_DGRAM);
        fill(slot, 1200, k);
        assert_int_equal(es_udp_send(u, slot, 1200, &a.to), 0);
        fill(buf, 1200, (uint16_t)(100 + k));
        assert_int_equal(es_udp_send(u, buf, 1200, &b.to), 0);
    }
    fill(buf, 700, 6);
    es_udp_send(u, buf, 700, &a.to);
    fill(buf, 80, 106);
    es_udp_send(u, buf, 80, &b.to);
    fill(buf, 1200, 7);
    es_udp_send(u, buf, 1200, &a.to);
    es_udp_flush(u);
    for (uint16_t k = 0; k < 6; k++) expect(&a, k, 1200);
    expect(&a, 6, 700);
    expect(&a, 7, 1200);
    for (uint16_t k = 0; k < 6; k++) expect(&b, (uint16_t)(100 + k), 1200);
    expect(&b, 106, 80);
    es_udp_stats_t st = es_udp_stats(u);
    assert_int_equal(st.tx_packets, 15);
    assert_int_equal(st.tx_dropped, 0);
    if (refuse_gso) {
        assert_int_equal(st.gso_fallbacks, 2); /* A's and B's trains went one by one */
        assert_int_equal(st.tx_trains, 2);
    } else {
        assert_int_equal(st.gso_fallbacks, 0);
        assert_int_equal(st.tx_trains, 2); /* A's 7, B's 7; A's last 1200 alone */
        assert_int_equal(st.tx_syscalls, 1);
    }
    /* EINVAL is the train's own: the next flush tries a train again (refused again here, and
     * again nothing is lost). */
    for (uint16_t k = 0; k < 4; k++) {
        fill(buf, 1000, (uint16_t)(200 + k));
        es_udp_send(u, buf, 1000, &a.to);
    }
    es_udp_flush(u);
    for (uint16_t k = 0; k < 4; k++) expect(&a, (uint16_t)(200 + k), 1000);
    st = es_udp_stats(u);
    assert_int_equal(st.tx_packets, 19);
    assert_int_equal(st.tx_trains, 3);
    assert_int_equal(st.gso_fallbacks, refuse_gso ? 3 : 0);
    /* 1,473-byte datagrams make no train (over a 1,500-byte MTU once headers are added) */
    for (uint16_t k = 0; k < 3; k++) {
        fill(buf, 1473, (uint16_t)(300 + k));
        es_udp_send(u, buf, 1473, &b.to);
    }
    es_udp_flush(u);
    for (uint16_t k = 0; k < 3; k++) expect(&b, (uint16_t)(300 + k), 1473);
    assert_int_equal(es_udp_stats(u).tx_trains, 3);
    close_sender(&loop, u);
    close(a.fd);
    close(b.fd);
    uv_loop_close(&loop);
}

static void test_gso_trains_per_destination(void **state) { interleaved(false); }
static void test_gso_refused_falls_back(void **state) { interleaved(true); }

/* 150 datagrams of 1200 bytes to one destination: trains of at most 54 (65,000 bytes), all in
 * order; then more than the queue holds to one destination: the queue flushes itself. */
static void test_train_limits_and_full_queue(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    es_udp_t *u = open_sender(&loop);
    rx_t a;
    rx_open(&a);
    uint8_t buf[2048];
    for (uint16_t k = 0; k < 150; k++) {
        fill(buf, 1200, k);
        es_udp_send(u, buf, 1200, &a.to);
    }
    es_udp_flush(u);
    for (uint16_t k = 0; k < 150; k++) expect(&a, k, 1200);
    assert_int_equal(es_udp_stats(u).tx_trains, 3); /* 54 + 54 + 42 */
    size_t n = ES_UDP_TX_SLOTS + 10;
    for (size_t k = 0; k < n; k++) {
        fill(buf, 100, (uint16_t)k);
        es_udp_send(u, buf, 100, &a.to);
    }
    assert_int_equal(es_udp_stats(u).tx_packets, 150 + ES_UDP_TX_SLOTS); /* flushed once full */
    es_udp_flush(u);
    for (size_t k = 0; k < n; k++) expect(&a, (uint16_t)k, 100);
    assert_int_equal(es_udp_stats(u).tx_dropped, 0);
    close_sender(&loop, u);
    close(a.fd);
    uv_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gso_trains_per_destination),
        cmocka_unit_test(test_gso_refused_falls_back),
        cmocka_unit_test(test_train_limits_and_full_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
