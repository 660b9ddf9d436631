/* RTMP fan-out benchmark: the CPU cost of giving one publisher's tags to N RTMP players through
 * the real code: es_frame_hub (one refcounted tag, a reference queued per player), each
 * player's pop, the RTMP chunk writer at 4096-byte chunks (what es_rtmp_session_send_media does)
 * and the copy rtmp_server.c makes into its write request. The socket is not included. Prints ns
 * per tag per player and per byte, and what that means for a 2.5 Mbit/s stream on one core.
 *
 *   bench_rtmp_fanout [PLAYERS [SECONDS_OF_MEDIA]]      defaults 1000 players, 20 s */
#include "estuary/frame_hub.h"
#include "estuary/rtmp_chunk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct player {
    es_frame_sub_t *sub;
    uint8_t *wbuf;
    size_t wcap;
    uint64_t bytes;
} player_t;

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void drain(player_t *p, uint64_t now)
{
    es_tag_t *t;
    while ((t = es_frame_sub_pop(p->sub, now))) {
        size_t need = es_rtmp_chunk_write_size(6, t->timestamp_ms, t->len, 4096);
        if (need > p->wcap) {
            p->wbuf = realloc(p->wbuf, need);
            p->wcap = need;
        }
        es_rtmp_msg_t m = {.csid = t->type == ES_TAG_AUDIO ? 4 : 6, .type = t->type,
                           .stream_id = 1, .timestamp = t->timestamp_ms, .payload = t->data,
                           .len = t->len};
        int n = es_rtmp_chunk_write(&m, 4096, p->wbuf, p->wcap);
        if (n > 0) { /* rtmp_server.c copies into a write request per message */
            uint8_t *req = malloc((size_t)n);
            memcpy(req, p->wbuf, (size_t)n);
            p->bytes += (uint64_t)n;
            free(req);
        }
        es_tag_unref(t);
    }
}

int main(int argc, char **argv)
{
    size_t n_players = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    unsigned seconds = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 20;
    /* 2.5 Mbit/s: 30 fps video (a 2 s GOP: a 60 KB key frame, then ~9 KB frames) and 43 AAC
     * frames/s of 370 bytes (128 kbit/s). */
    es_frame_hub_limits_t lim = {.queue_ms = 10000, .queue_bytes = 16u << 20, .stall_ms = 0,
                                 .gop_max_bytes = 8u << 20};
    es_frame_hub_t *hub = es_frame_hub_new("bench/rtmp", &lim);
    player_t *pl = calloc(n_players, sizeof *pl);
    for (size_t i = 0; i < n_players; i++) pl[i].sub = es_frame_hub_subscribe(hub, NULL, NULL, 0);
    static uint8_t body[65536];
    memset(body, 0x5a, sizeof body);
    uint64_t media_bytes = 0, tags = 0;
    double t0 = cpu_seconds();
    for (unsigned ms = 0; ms < seconds * 1000u; ms++) {
        uint64_t now = (uint64_t)ms * 1000u;
        bool any = false;
        if (ms % 33 == 0) {
            bool key = ms % 2000 < 33;
            size_t len = key ? 60000 : 9000;
            body[0] = key ? 0x17 : 0x27;
            body[1] = 1;
            es_tag_t *t = es_tag_new(ES_TAG_VIDEO, ms, body, len);
            es_frame_hub_publish(hub, t, now);
            media_bytes += len;
            tags++;
            es_tag_unref(t);
            any = true;
        }
        if (ms % 23 == 0) {
            uint8_t a[370] = {0xaf, 0x01};
            es_tag_t *t = es_tag_new(ES_TAG_AUDIO, ms, a, sizeof a);
            es_frame_hub_publish(hub, t, now);
            media_bytes += sizeof a;
            tags++;
            es_tag_unref(t);
            any = true;
        }
        if (any)
            for (size_t i = 0; i < n_players; i++) drain(&pl[i], now);
    }
    double cpu = cpu_seconds() - t0;
    uint64_t out = 0;
    for (size_t i = 0; i < n_players; i++) {
        out += pl[i].bytes;
        es_frame_hub_unsubscribe(hub, pl[i].sub);
        free(pl[i].wbuf);
    }
    es_frame_hub_free(hub);
    free(pl);
    double per_tag = cpu * 1e9 / ((double)tags * (double)n_players);
    double stream_bps = (double)media_bytes * 8 / seconds;
    double core_players = (double)n_players * seconds / cpu;
    printf("%zu players, %llu tags (%.2f Mbit/s stream), %.2f s CPU\n", n_players,
           (unsigned long long)tags, stream_bps / 1e6, cpu);
    printf("per tag per player: %.0f ns; one core keeps up with ~%.0f players (%.1f Gbit/s out)\n",
           per_tag, core_players, core_players * stream_bps / 1e9);
    printf("bytes out %llu\n", (unsigned long long)out);
    return 0;
}
