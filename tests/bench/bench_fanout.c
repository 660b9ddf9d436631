/* Fan-out benchmark: the CPU cost of sending one publisher's packet to N WHEP players, through
 * the real code: es_media_stream (RTP rewrite per player) and each player's own SRTP
 * context (AEAD_AES_128_GCM, as browsers negotiate), without the socket (sendmmsg is measured
 * separately by the e2e runs). Prints ns per packet per player and what that means for a
 * 2.5 Mbit/s stream on one core.
 *
 *   bench_fanout [PLAYERS [PACKETS]]      defaults 1000 players, 5000 packets */
#include "estuary/dtls.h"
#include "estuary/rtp.h"
#include "estuary/srtp.h"
#include "estuary/stream.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct player {
    es_srtp_t *srtp;
    uint64_t bytes;
} player_t;

static bool use_srtp = true;

static int send_rtp(void *user, uint8_t *buf, size_t len, size_t cap)
{
    player_t *p = user;
    int n = use_srtp ? es_srtp_protect_rtp(p->srtp, buf, len, cap) : (int)len;
    if (n > 0) p->bytes += (uint64_t)n;
    return n < 0 ? n : 0;
}

static int send_rtcp(void *user, uint8_t *buf, size_t len, size_t cap) { return 0; }

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run(size_t n_players, size_t n_packets, bool srtp, uint64_t *bytes_out)
{
    use_srtp = srtp;
    es_media_stream_t *ms = es_media_stream_new("bench/fanout");
    es_track_info_t src = {.kind = ES_MEDIA_VIDEO, .rtx_pt = -1, .ssrc = 0x1234, .nack = true};
    src.codec.codec = ES_CODEC_VP8;
    src.codec.pt = 96;
    src.codec.clock_rate = 90000;
    src.ext.abs_send_time = 3;
    es_media_stream_set_source(ms, &src, 1, (es_media_io_t){.send_rtcp = send_rtcp}, 0);
    player_t *players = calloc(n_players, sizeof *players);
    for (size_t i = 0; i < n_players; i++) {
        es_dtls_srtp_keys_t keys = {.profile = ES_SRTP_AEAD_AES_128_GCM, .master_len = 28};
        RAND_bytes(keys.local, sizeof keys.local);
        RAND_bytes(keys.remote, sizeof keys.remote);
        players[i].srtp = es_srtp_new(&keys);
        es_track_info_t t = src;
        t.codec.pt = 100;
        t.ssrc = 0x10000 + (uint32_t)i;
        t.ext.mid = 4;
        t.ext.abs_send_time = 2;
        strcpy(t.mid, "1");
        es_media_sink_t *s = es_media_stream_add_sink(
            ms, &t, 1, (es_media_io_t){.send_rtp = send_rtp, .send_rtcp = send_rtcp, .user = &players[i]}, 0);
        es_media_sink_start(s, 0);
    }
    uint8_t pkt[1300];
    double t0 = cpu_seconds();
    for (size_t k = 0; k < n_packets; k++) {
        es_rtp_packet_t h = {.marker = (k % 8) == 7, .payload_type = 96, .sequence = (uint16_t)k,
                             .timestamp = (uint32_t)(k / 8 * 3000), .ssrc = 0x1234};
        es_rtp_write_header(&h, pkt, sizeof pkt);
        pkt[0] |= 0x10;
        const uint8_t ext[] = {0xbe, 0xde, 0x00, 0x01, 0x32, 0x01, 0x02, 0x03};
        memcpy(pkt + 12, ext, sizeof ext);
        memset(pkt + 20, 0x5a, sizeof pkt - 20);
        /* VP8 payload descriptor: a key frame every 400 packets, else inter frames */
        pkt[20] = 0x10;
        pkt[21] = (k % 400 == 0) ? 0x00 : 0x01;
        es_media_stream_source_rtp(ms, k * 4000, pkt, 1220);
    }
    double dt = cpu_seconds() - t0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < n_players; i++) {
        bytes += players[i].bytes;
        es_srtp_free(players[i].srtp);
    }
    free(players);
    es_media_stream_free(ms);
    *bytes_out = bytes;
    return dt;
}

int main(int argc, char **argv)
{
    size_t n_players = argc > 1 ? (size_t)atol(argv[1]) : 1000;
    size_t n_packets = argc > 2 ? (size_t)atol(argv[2]) : 5000;
    if (es_srtp_global_init() != 0) return 1;
    const double pps = 2.5e6 / 8 / 1220; /* packets/s of a 2.5 Mbit/s stream of 1220-byte packets */
    for (int srtp = 0; srtp < 2; srtp++) {
        uint64_t bytes;
        double dt = run(n_players, n_packets, srtp, &bytes);
        double ns = dt * 1e9 / ((double)n_packets * (double)n_players);
        printf("%-22s players %zu, packets %zu: %.0f ns per packet per player, %.1f Gbit/s out "
               "per core; a 2.5 Mbit/s stream reaches %.0f players per core\n",
               srtp ? "rewrite + SRTP (GCM)" : "rewrite only", n_players, n_packets, ns,
               (double)bytes * 8 / dt / 1e9, 1e9 / (ns * pps));
    }
    return 0;
}
