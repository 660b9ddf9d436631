/* libFuzzer harness for transport-wide CC feedback (src/rtp/twcc.c). Two halves:
 * - es_twcc_parse on the input: never more statuses than asked for, sequence numbers follow
 *   the base, lost packets carry no delta, deltas are whole 250 µs ticks;
 * - the input as 4-byte records (sequence number, arrival step) fed to a receiver, with builds
 *   in between and at the end: every feedback walks as one RTCP packet whose FCI es_twcc_parse
 *   accepts, the feedback count increments, each feedback starts where the last one ended, every
 *   packet reported received was fed, and draining terminates. */
#include "estuary/bytes.h"
#include "estuary/error.h"
#include "estuary/rtcp.h"
#include "estuary/twcc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXS 8192

static es_twcc_status_t st[MAXS];
static uint8_t fed[65536];

static void check_parse(const uint8_t *data, size_t size)
{
    uint16_t base;
    int32_t ref;
    uint8_t fbc;
    size_t max = size ? data[0] % 64 : 0;
    int n = es_twcc_parse(data, size, &base, &ref, &fbc, st, max);
    if (n == ES_EPROTO) return;
    if (n < 0 || (size_t)n > max) abort();
    if (ref < -(1 << 23) || ref >= (1 << 23)) abort();
    for (int i = 0; i < n; i++) {
        if (st[i].seq != (uint16_t)(base + i)) abort();
        if (!st[i].received && st[i].delta_us != 0) abort();
        if (st[i].delta_us % 250) abort();
    }
}

/* Builds one feedback and checks it; returns its status count, 0 when nothing was pending. */
static int build_and_check(es_twcc_recv_t *t, size_t cap, int *expect_fbc, int *expect_base)
{
    static uint8_t buf[1500];
    int len = es_twcc_recv_build(t, 1, 2, buf, cap);
    if (len == 0) return 0;
    if (len < 24 || (size_t)len > cap || len % 4) abort();
    size_t off = 0;
    es_rtcp_header_t h;
    es_rtcp_fb_t fb;
    if (es_rtcp_next(buf, (size_t)len, &off, &h) != 1 || off != (size_t)len) abort();
    if (h.type != ES_RTCP_RTPFB || h.count != ES_RTCP_FMT_TWCC) abort();
    if (es_rtcp_parse_fb(&h, &fb) != 0 || fb.sender_ssrc != 1 || fb.media_ssrc != 2) abort();
    uint16_t base;
    int32_t ref;
    uint8_t fbc;
    int n = es_twcc_parse(fb.fci, fb.fci_len, &base, &ref, &fbc, st, MAXS);
    if (n <= 0 || n != es_rd16(fb.fci + 2)) abort();
    if (fbc != (uint8_t)*expect_fbc) abort();
    (*expect_fbc)++;
    /* Consecutive feedbacks are contiguous unless a reset or a window overflow intervened;
     * both are caused by a packet, so only check between builds with no packet fed. */
    if (*expect_base >= 0 && base != (uint16_t)*expect_base) abort();
    *expect_base = (uint16_t)(base + n);
    for (int i = 0; i < n; i++)
        if (st[i].received && !fed[st[i].seq]) abort();
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_parse(data, size);
    if (size < 1) return 0;

    es_twcc_recv_t *t = es_twcc_recv_new();
    if (!t) return 0;
    memset(fed, 0, sizeof fed);
    size_t cap = 24 + (size_t)data[0] * 5; /* 24..1299 */
    int fbc = 0, base = -1;
    uint64_t now = 1000000;
    for (size_t i = 1; i + 4 <= size; i += 4) {
        uint16_t seq = es_rd16(data + i);
        uint16_t step = es_rd16(data + i + 2);
        if (step == 0xffff) { /* a build now */
            build_and_check(t, cap, &fbc, &base);
            continue;
        }
        now += (uint64_t)(step & 0x7fff) * ((step & 0x8000) ? 1000 : 10);
        fed[seq] = 1;
        base = -1;
        es_twcc_recv_on_packet(t, seq, now);
    }
    int rounds = 0;
    while (build_and_check(t, cap, &fbc, &base) > 0)
        if (++rounds > 5000) abort(); /* at most 4096 pending, at least one per feedback */
    es_twcc_recv_free(t);
    return 0;
}
