/* A live stream's RTP fan-out: one source, many sinks (include/estuary/stream.h).
 *
 * Sequence numbers and timestamps of a sink are the source's plus a per-sink offset, fixed when
 * the sink syncs to a source (its first packet, or a video key frame) and recomputed when a new
 * publisher takes over, so that a player's numbering runs on without a jump. A NACKed sequence
 * number of a sink therefore maps back to the source's by subtracting the offset, and the track
 * history answers it. The history also holds the current GOP, so a new player starts at once. */
#include "estuary/stream.h"

#include "estuary/bytes.h"
#include "estuary/metrics.h"
#include "estuary/error.h"
#include "estuary/nack.h"
#include "estuary/random.h"
#include "estuary/rtcp.h"
#include "estuary/rtp.h"
#include "estuary/rtp_payload.h"
#include "estuary/twcc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIDEO_HISTORY 2048 /* packets: the GOP cache can be replayed while it fits */
#define AUDIO_HISTORY 256
#define MAX_PACKET 1500
#define SCRATCH_CAP (MAX_PACKET + 200 + ES_STREAM_IO_ROOM) /* extension growth + SRTP trailer */
#define RR_INTERVAL_US 1000000
#define SR_INTERVAL_US 1000000
#define TWCC_INTERVAL_US 50000
#define MAX_PLI_TRIES 5
#define REMB_BPS 8000000ULL

static const char CNAME[] = "estuary";

enum { EXT_AST, EXT_LEVEL, EXT_ORIENT, EXT_PLAYOUT, EXT_N };

typedef struct fwd_ext {
    const uint8_t *data[EXT_N];
    uint8_t len[EXT_N];       /* 0: absent */
} fwd_ext_t;

/* A source packet whose fan-out waits for the end of the receive batch (es_media_batch_end):
 * read back from the history then, by sequence number and SSRC (a later packet may have taken
 * its slot: then it is skipped). */
typedef struct pending {
    int idx;                  /* source track */
    uint16_t seq;
    uint32_t ssrc;
    bool key;
    uint64_t now;
} pending_t;

#define PENDING_MAX 64
#define SEQ_JUMP 1000         /* a source sequence number further than this from the last one is
                                 a discontinuity (not reordering): players resynchronize */

typedef struct src_track {
    es_track_info_t info;
    uint32_t ssrc;
    bool ssrc_known;
    uint32_t clock_rate;
    es_rtp_history_t *hist;
    es_nack_gen_t *nack;
    es_rtp_recv_stats_t rs;
    bool have_sr;
    uint64_t sr_ntp;
    uint32_t sr_rtp;
    uint64_t sr_arrival_us;
    bool have_key, have_last;
    uint16_t key_seq, last_seq;
    unsigned stale;           /* very late packets in a row (SEQ_JUMP behind) */
    uint32_t key_ts;          /* RTP timestamp of the cached key frame */
    uint64_t last_pli_us;
    bool pli_sent;            /* a PLI went out (last_pli_us is valid) */
    int pli_tries;            /* PLIs still to send until a key frame arrives; 0: none wanted */
    uint64_t packets, bytes, keyframes, nacks_sent;
    uint64_t window_bytes, window_start_us, bitrate_bps;
    int width, height;
} src_track_t;

typedef struct sink_track {
    es_track_info_t info;
    int src;                  /* source track index, -1 when none matches */
    uint32_t gen;             /* source generation the offsets belong to */
    bool synced, sent_any;
    uint16_t seq_offset, last_seq;
    uint32_t ts_offset, last_ts;
    uint64_t last_us;
    uint32_t clock_rate;
    uint64_t packets, octets;
    uint32_t last_sr_mid;
    uint64_t last_sr_us;
    uint64_t resent_us[ES_RESEND_SLOTS];  /* when a packet of each slot (seq % slots) was last resent; 0: never */
} sink_track_t;

struct es_media_sink {
    es_media_stream_t *ms;
    sink_track_t t[ES_STREAM_MAX_TRACKS];
    size_t n;
    es_media_io_t io;
    bool started;
    es_media_sink_stats_t stats;
    bool resend_started;
    double resend_tokens;     /* the retransmission bucket (ES_RETRANSMITS_PER_S) */
    uint64_t resend_refill_us;
    es_media_sink_t *prev, *next;
};

struct es_media_stream {
    char key[200];
    bool has_src;
    uint64_t src_last_us;     /* the publisher's last media packet */
    src_track_t src[ES_STREAM_MAX_TRACKS];
    size_t n_src;
    es_media_io_t src_io;
    uint32_t gen;
    uint32_t rtcp_ssrc;       /* our SSRC in RTCP to the publisher */
    es_twcc_recv_t *twcc;
    uint8_t twcc_id;          /* transport-wide-cc extension id (one per BUNDLE), 0: none */
    uint64_t last_rr_us, last_twcc_us;
    uint64_t twcc_sent;       /* transport-cc feedback packets sent to the current publisher */
    es_media_sink_t *sinks;
    size_t n_sinks;
    es_media_tap_t tap;       /* the frame consumer, when set */
    pending_t pending[PENDING_MAX]; /* fan-out deferred to the end of the receive batch */
    size_t n_pending;
    bool dirty;               /* on g_dirty */
    es_media_stream_t *dirty_next;
    uint8_t scratch[SCRATCH_CAP];
};

/* The receive batch (es_media_batch_begin/end): nesting depth, and the streams with packets
 * waiting. One loop thread. */
static int g_batch_depth;
static es_media_stream_t *g_dirty;

es_media_stream_t *es_media_stream_new(const char *key)
{
    es_media_stream_t *ms = calloc(1, sizeof *ms);
    if (!ms) return NULL;
    snprintf(ms->key, sizeof ms->key, "%s", key ? key : "");
    ms->rtcp_ssrc = es_random32();
    return ms;
}

static void src_tracks_free(es_media_stream_t *ms)
{
    for (size_t i = 0; i < ms->n_src; i++) {
        es_rtp_history_free(ms->src[i].hist);
        es_nack_gen_free(ms->src[i].nack);
    }
    memset(ms->src, 0, sizeof ms->src);
    ms->n_src = 0;
    es_twcc_recv_free(ms->twcc);
    ms->twcc = NULL;
}

static void flush_pending(es_media_stream_t *ms);

void es_media_stream_free(es_media_stream_t *ms)
{
    if (!ms) return;
    if (ms->dirty) { /* its waiting packets go nowhere */
        es_media_stream_t **pp = &g_dirty;
        while (*pp != ms) pp = &(*pp)->dirty_next;
        *pp = ms->dirty_next;
    }
    while (ms->sinks) es_media_stream_remove_sink(ms, ms->sinks);
    src_tracks_free(ms);
    free(ms);
}

/* Bind each sink track to the source track of its kind with the same codec. */
static void sink_bind(es_media_stream_t *ms, es_media_sink_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        sink_track_t *st = &s->t[i];
        st->src = -1;
        st->synced = false;
        if (!ms->has_src) continue;
        for (size_t j = 0; j < ms->n_src; j++) {
            const es_sdp_codec_t *have = &ms->src[j].info.codec, *want = &st->info.codec;
            if (ms->src[j].info.kind != st->info.kind || have->codec != want->codec) continue;
            if (have->codec == ES_CODEC_H264 && !es_sdp_h264_compatible(have, want)) continue;
            st->src = (int)j;
            break;
        }
    }
}

size_t es_media_sink_unbound(const es_media_sink_t *s)
{
    if (!s || !s->ms->has_src) return 0;
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) n += s->t[i].src < 0;
    return n;
}

int es_media_stream_set_source(es_media_stream_t *ms, const es_track_info_t *tracks, size_t n,
                               es_media_io_t io, uint64_t now_us)
{
    if (ms->has_src) return ES_EEXIST;
    if (n == 0 || n > ES_STREAM_MAX_TRACKS) return ES_EINVAL;
    src_tracks_free(ms);
    ms->twcc = es_twcc_recv_new();
    if (!ms->twcc) return ES_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        src_track_t *t = &ms->src[i];
        t->info = tracks[i];
        t->ssrc = tracks[i].ssrc;
        t->ssrc_known = tracks[i].ssrc != 0;
        t->clock_rate = tracks[i].codec.clock_rate ? tracks[i].codec.clock_rate : 90000;
        bool video = tracks[i].kind == ES_MEDIA_VIDEO;
        t->hist = es_rtp_history_new(video ? VIDEO_HISTORY : AUDIO_HISTORY, MAX_PACKET);
        t->nack = es_nack_gen_new();
        t->window_start_us = now_us;
        ms->n_src = i + 1;
        if (!t->hist || !t->nack) {
            src_tracks_free(ms);
            return ES_ENOMEM;
        }
    }
    ms->twcc_id = 0;
    for (size_t i = 0; i < n && !ms->twcc_id; i++)
        if (tracks[i].transport_cc) ms->twcc_id = tracks[i].ext.transport_cc;
    ms->src_io = io;
    ms->has_src = true;
    ms->gen++;
    ms->last_rr_us = ms->last_twcc_us = ms->src_last_us = now_us;
    ms->twcc_sent = 0;
    for (es_media_sink_t *s = ms->sinks; s; s = s->next) sink_bind(ms, s);
    return 0;
}

void es_media_stream_remove_source(es_media_stream_t *ms, uint64_t now_us)
{
    if (!ms->has_src) return;
    flush_pending(ms); /* while their history exists */
    ms->has_src = false;
    src_tracks_free(ms);
    ms->src_io = (es_media_io_t){0};
    for (es_media_sink_t *s = ms->sinks; s; s = s->next) sink_bind(ms, s);
}

bool es_media_stream_has_source(const es_media_stream_t *ms) { return ms->has_src; }

size_t es_media_stream_source_tracks(const es_media_stream_t *ms, es_track_info_t *out, size_t max)
{
    size_t n = 0;
    for (; ms->has_src && n < ms->n_src && n < max; n++) out[n] = ms->src[n].info;
    return n;
}

/* --- fan-out --- */

/* The header extensions a sink may receive, looked up once per source packet (not once per
 * sink): abs-send-time, audio level, video orientation, playout delay. */

static void find_extensions(const es_rtp_packet_t *p, const es_ext_ids_t *in, fwd_ext_t *out)
{
    const uint8_t ids[EXT_N] = {in->abs_send_time, in->audio_level, in->video_orientation,
                                in->playout_delay};
    for (int i = 0; i < EXT_N; i++) {
        int len = ids[i] ? es_rtp_ext_find(p, ids[i], &out->data[i]) : -1;
        out->len[i] = len >= 1 && len <= 16 ? (uint8_t)len : 0;
    }
}

#define EXT_MAX (1 + 16 + EXT_N * 17 + 3) /* bytes write_extensions may write */

/* Writes the sink's one-byte extension elements (RFC 8285 §4.2): its mid, then the source's
 * elements under the sink's ids, padded to 32 bits, into out (room for EXT_MAX bytes). Returns
 * the length. */
static size_t write_extensions(const fwd_ext_t *e, const sink_track_t *st, uint8_t *out)
{
    const uint8_t ids[EXT_N] = {st->info.ext.abs_send_time, st->info.ext.audio_level,
                                st->info.ext.video_orientation, st->info.ext.playout_delay};
    size_t n = 0;
    uint8_t mid_id = st->info.ext.mid;
    size_t mid_len = strlen(st->info.mid);
    if (mid_id >= 1 && mid_id <= 14 && mid_len >= 1 && mid_len <= 16) {
        out[n++] = (uint8_t)(mid_id << 4 | (mid_len - 1));
        memcpy(out + n, st->info.mid, mid_len);
        n += mid_len;
    }
    for (int i = 0; i < EXT_N; i++) {
        if (!e->len[i] || !ids[i] || ids[i] > 14) continue;
        out[n++] = (uint8_t)(ids[i] << 4 | (e->len[i] - 1));
        memcpy(out + n, e->data[i], e->len[i]);
        n += e->len[i];
    }
    while (n % 4) out[n++] = 0;
    return n;
}

static uint32_t elapsed_ticks(uint64_t from_us, uint64_t to_us, uint32_t rate)
{
    if (to_us <= from_us) return 0;
    return (uint32_t)((to_us - from_us) * rate / 1000000u);
}

static void want_keyframe(es_media_stream_t *ms, int idx);

/* Sends the source packet p to one sink track. retransmit: a NACK answer (numbering and
 * counters unchanged). */
static void forward(es_media_stream_t *ms, es_media_sink_t *s, sink_track_t *st,
                    const es_rtp_packet_t *p, const fwd_ext_t *ext, uint64_t now, bool keyframe,
                    bool retransmit)
{
    if (st->gen != ms->gen || !st->synced) {
        if (retransmit) return;
        if (st->info.kind == ES_MEDIA_VIDEO && !keyframe) return; /* wait for a key frame */
        uint16_t next_seq = st->sent_any ? (uint16_t)(st->last_seq + 1) : (uint16_t)es_random32();
        uint32_t next_ts = st->sent_any
                               ? st->last_ts + elapsed_ticks(st->last_us, now, st->clock_rate) + 1
                               : es_random32();
        st->seq_offset = (uint16_t)(next_seq - p->sequence);
        st->ts_offset = next_ts - p->timestamp;
        st->gen = ms->gen;
        st->synced = true;
    }
    uint16_t seq = (uint16_t)(p->sequence + st->seq_offset);
    uint32_t ts = p->timestamp + st->ts_offset;
    /* The one copy: header rewrite and payload straight into the transport's send slot when it
     * has room, else into
     * the scratch buffer (which the transport then copies). */
    size_t body = p->payload_len + p->padding_len;
    size_t need = 16 + EXT_MAX + body + ES_STREAM_IO_ROOM, cap = 0;
    uint8_t *b = s->io.rtp_buf ? s->io.rtp_buf(s->io.user, &cap) : NULL;
    if (!b || cap < need) {
        b = ms->scratch;
        cap = SCRATCH_CAP;
    }
    es_rtp_packet_t h = {.marker = p->marker, .payload_type = st->info.codec.pt, .sequence = seq,
                         .timestamp = ts, .ssrc = st->info.ssrc};
    es_rtp_write_header(&h, b, cap);
    size_t len = 12;
    size_t ext_len = write_extensions(ext, st, b + 16);
    if (ext_len) {
        b[0] |= 0x10;
        es_wr16(b + 12, 0xBEDE);
        es_wr16(b + 14, (uint16_t)(ext_len / 4));
        len = 16 + ext_len;
    }
    if (len + body > cap - ES_STREAM_IO_ROOM) return;
    memcpy(b + len, p->payload, body);
    if (p->padding_len) b[0] |= 0x20;
    len += body;
    if (!retransmit) {
        if (!st->sent_any || es_rtp_seq_newer(seq, st->last_seq)) {
            st->last_seq = seq;
            st->last_ts = ts;
            st->last_us = now;
        }
        st->sent_any = true;
        st->packets++;
        st->octets += p->payload_len;
    } else {
        s->stats.retransmits++;
        es_metrics.retransmits++;
    }
    s->stats.packets++;
    s->stats.bytes += len;
    es_metrics.rtp_out_packets++;
    es_metrics.rtp_out_bytes += len;
    if (s->io.send_rtp(s->io.user, b, len, cap) == ES_EAGAIN && s->started &&
        st->info.kind == ES_MEDIA_VIDEO && !retransmit) {
        /* The sink's transport fell behind (an ICE-TCP queue) and dropped it: the frames that
         * follow cannot be decoded, so skip to the next key frame (numbering stays continuous:
         * the resync takes last_seq + 1) and ask the source for one. */
        st->synced = false;
        s->stats.dropped_to_keyframe++;
        es_metrics.dropped_keyframe_resync++;
        want_keyframe(ms, st->src);
    }
}

static void fan_out(es_media_stream_t *ms, int idx, const es_rtp_packet_t *p, uint64_t now,
                    bool keyframe)
{
    fwd_ext_t ext;
    find_extensions(p, &ms->src[idx].info.ext, &ext);
    for (es_media_sink_t *s = ms->sinks; s; s = s->next) {
        if (!s->started) continue;
        for (size_t i = 0; i < s->n; i++)
            if (s->t[i].src == idx) forward(ms, s, &s->t[i], p, &ext, now, keyframe, false);
    }
}

/* The packets that waited for the end of the batch, player by player: each player's packets
 * leave together (one GSO train per player and frame, include/estuary/udp.h), each player's in
 * arrival order. */
static void flush_pending(es_media_stream_t *ms)
{
    size_t n = ms->n_pending;
    if (n == 0) return;
    ms->n_pending = 0;
    es_rtp_packet_t p[PENDING_MAX];
    fwd_ext_t ext[PENDING_MAX];
    bool ok[PENDING_MAX];
    for (size_t k = 0; k < n; k++) {
        const pending_t *pe = &ms->pending[k];
        size_t len;
        const uint8_t *pkt = es_rtp_history_get(ms->src[pe->idx].hist, pe->seq, &len);
        ok[k] = pkt && es_rtp_parse(pkt, len, &p[k]) == 0 && p[k].ssrc == pe->ssrc;
        if (ok[k]) find_extensions(&p[k], &ms->src[pe->idx].info.ext, &ext[k]);
    }
    for (es_media_sink_t *s = ms->sinks; s; s = s->next) {
        if (!s->started) continue;
        for (size_t k = 0; k < n; k++) {
            const pending_t *pe = &ms->pending[k];
            if (!ok[k]) continue;
            for (size_t i = 0; i < s->n; i++)
                if (s->t[i].src == pe->idx)
                    forward(ms, s, &s->t[i], &p[k], &ext[k], pe->now, pe->key, false);
        }
    }
}

/* Defers p's fan-out to the end of the batch (it is in the history); false when it must go now:
 * no batch is open (what waits has been sent first, so that order holds). */
static bool defer(es_media_stream_t *ms, int idx, const es_rtp_packet_t *p, uint64_t now,
                  bool key)
{
    if (g_batch_depth == 0) {
        flush_pending(ms);
        return false;
    }
    if (ms->n_pending == PENDING_MAX) flush_pending(ms);
    ms->pending[ms->n_pending++] =
        (pending_t){.idx = idx, .seq = p->sequence, .ssrc = p->ssrc, .key = key, .now = now};
    if (!ms->dirty) {
        ms->dirty = true;
        ms->dirty_next = g_dirty;
        g_dirty = ms;
    }
    return true;
}

void es_media_batch_begin(void) { g_batch_depth++; }

void es_media_batch_end(void)
{
    if (g_batch_depth == 0 || --g_batch_depth > 0) return;
    while (g_dirty) {
        es_media_stream_t *ms = g_dirty;
        g_dirty = ms->dirty_next;
        ms->dirty = false;
        flush_pending(ms);
    }
}

/* VP8 key frame size (RFC 6386 §9.1) after the RFC 7741 payload descriptor. */
static void vp8_size(src_track_t *t, const uint8_t *p, size_t n)
{
    size_t off = 1;
    if (n < 1) return;
    if (p[0] & 0x80) {
        if (n < 2) return;
        uint8_t x = p[1];
        off = 2;
        if (x & 0x80) {
            if (off >= n) return;
            off += (p[off] & 0x80) ? 2 : 1;
        }
        if (x & 0x40) off++;
        if (x & 0x30) off++;
    }
    if (off + 10 > n || p[off + 3] != 0x9d || p[off + 4] != 0x01 || p[off + 5] != 0x2a) return;
    t->width = (p[off + 6] | p[off + 7] << 8) & 0x3fff;
    t->height = (p[off + 8] | p[off + 9] << 8) & 0x3fff;
}

/* Unwraps an RTX packet (RFC 4588 §4) in place into the original. Returns the new length or 0. */
static size_t rtx_unwrap(uint8_t *buf, const es_rtp_packet_t *p, const src_track_t *t)
{
    if (p->payload_len < 2 || !t->ssrc_known) return 0; /* padding-only probes carry nothing */
    uint16_t osn = es_rd16(p->payload);
    size_t hdr = p->header_len;
    memmove(buf + hdr, p->payload + 2, p->payload_len - 2);
    buf[0] &= (uint8_t)~0x20; /* no padding any more */
    buf[1] = (uint8_t)((buf[1] & 0x80) | t->info.codec.pt);
    es_wr16(buf + 2, osn);
    es_wr32(buf + 8, t->ssrc);
    return hdr + p->payload_len - 2;
}

/* Source track idx starts over (new SSRC, or a jump in numbering): what waits is sent, its
 * history and receive state are reset, and every player resynchronizes (ms->gen). */
static void source_discontinuity(es_media_stream_t *ms, int idx)
{
    src_track_t *t = &ms->src[idx];
    flush_pending(ms);
    memset(&t->rs, 0, sizeof t->rs);
    es_nack_gen_free(t->nack);
    t->nack = es_nack_gen_new();
    es_rtp_history_t *h = es_rtp_history_new(t->info.kind == ES_MEDIA_VIDEO ? VIDEO_HISTORY
                                                                            : AUDIO_HISTORY,
                                              MAX_PACKET);
    if (h) {
        es_rtp_history_free(t->hist);
        t->hist = h;
    }
    t->have_key = t->have_last = t->have_sr = false;
    ms->gen++;
    if (t->info.kind == ES_MEDIA_VIDEO) want_keyframe(ms, idx);
}

void es_media_stream_source_rtp(es_media_stream_t *ms, uint64_t now, uint8_t *buf, size_t len)
{
    es_rtp_packet_t p;
    if (!ms->has_src || len > MAX_PACKET || es_rtp_parse(buf, len, &p) != 0) return;
    int idx = -1;
    bool rtx = false;
    for (size_t i = 0; i < ms->n_src; i++) {
        if (p.payload_type == ms->src[i].info.codec.pt) idx = (int)i;
        else if (ms->src[i].info.rtx_pt >= 0 && p.payload_type == ms->src[i].info.rtx_pt) {
            idx = (int)i;
            rtx = true;
        }
        if (idx >= 0) break;
    }
    if (idx < 0) return;
    src_track_t *t = &ms->src[idx];
    ms->src_last_us = now;
    /* transport-cc counts every packet, RTX and padding included */
    const uint8_t *d;
    if (ms->twcc_id && es_rtp_ext_find(&p, ms->twcc_id, &d) == 2)
        es_twcc_recv_on_packet(ms->twcc, es_rd16(d), now);
    if (rtx) {
        size_t n = rtx_unwrap(buf, &p, t);
        if (!n || es_rtp_parse(buf, n, &p) != 0) return;
        len = n;
    } else if (t->have_last && p.ssrc == t->ssrc &&
               (int16_t)(p.sequence - t->last_seq) < -SEQ_JUMP && ++t->stale < 8) {
        return; /* very late: useless to the players (8 in a row: the numbering restarted) */
    } else if (!t->ssrc_known || p.ssrc != t->ssrc ||
               (t->have_last && ((int16_t)(p.sequence - t->last_seq) > SEQ_JUMP ||
                                 (int16_t)(p.sequence - t->last_seq) < -SEQ_JUMP))) {
        /* The publisher restarted its encoder with a new SSRC, or its numbering jumped: what
         * the players get must not reuse sequence numbers they already got (a player's SRTP
         * must never protect two packets under one index), so every player resynchronizes from
         * its own last number (video at the next key frame, which is asked for). */
        if (t->ssrc_known) source_discontinuity(ms, idx);
        t->ssrc = p.ssrc;
        t->ssrc_known = true;
    }
    if (!rtx) t->stale = 0;
    /* A sequence number the history holds already is a duplicate (the network's, or a
     * retransmission that came late): dropped, so that a number never carries two payloads. */
    size_t have_len;
    const uint8_t *have = es_rtp_history_get(t->hist, p.sequence, &have_len);
    if (have && have_len >= 12 && es_rd32(have + 8) == p.ssrc) return;
    bool recovered = t->nack ? es_nack_gen_on_packet(t->nack, p.sequence, now) : false;
    if (!rtx || recovered) es_rtp_recv_stats_update(&t->rs, p.sequence, p.timestamp, now, t->clock_rate);
    t->packets++;
    t->bytes += len;
    es_metrics.rtp_in_packets++;
    es_metrics.rtp_in_bytes += len;
    t->window_bytes += len;
    bool key = false;
    if (t->info.kind == ES_MEDIA_VIDEO && p.payload_len &&
        es_rtp_keyframe_start(t->info.codec.codec, p.payload, p.payload_len)) {
        key = true;
        /* A retransmitted key-frame start older than the cached one does not restart the GOP,
         * and neither does a second start inside the same key frame: H.264 senders put SPS/PPS
         * in a STAP-A before the IDR's own packets, and the cache must keep that STAP-A. */
        bool same_frame = t->have_key && p.timestamp == t->key_ts &&
                          es_rtp_seq_newer(p.sequence, t->key_seq);
        if (!same_frame && (!t->have_key || !t->have_last ||
                            es_rtp_seq_newer(p.sequence, t->last_seq) ||
                            p.sequence == t->last_seq)) {
            t->have_key = true;
            t->key_seq = p.sequence;
            t->key_ts = p.timestamp;
            t->keyframes++;
            t->pli_tries = 0;
            if (t->info.codec.codec == ES_CODEC_VP8) vp8_size(t, p.payload, p.payload_len);
        }
    }
    int stored = es_rtp_history_put(t->hist, p.sequence, buf, len);
    if (!t->have_last || es_rtp_seq_newer(p.sequence, t->last_seq)) {
        t->last_seq = p.sequence;
        t->have_last = true;
    }
    if (stored != 0) { /* too large for the history: cannot wait there */
        flush_pending(ms);
        fan_out(ms, idx, &p, now, key);
    } else if (!defer(ms, idx, &p, now, key)) {
        fan_out(ms, idx, &p, now, key);
    }
    if (ms->tap.on_rtp) ms->tap.on_rtp(ms->tap.user, (size_t)idx, &p, now);
}

void es_media_stream_source_rtcp(es_media_stream_t *ms, uint64_t now, const uint8_t *buf,
                                 size_t len)
{
    if (!ms->has_src) return;
    size_t off = 0;
    es_rtcp_header_t h;
    for (int guard = 0; guard < 64 && es_rtcp_next(buf, len, &off, &h) == 1; guard++) {
        if (h.type != ES_RTCP_SR) continue;
        es_rtcp_report_t r;
        if (es_rtcp_parse_report(&h, &r) != 0) continue;
        for (size_t i = 0; i < ms->n_src; i++) {
            src_track_t *t = &ms->src[i];
            if (!t->ssrc_known || t->ssrc != r.ssrc) continue;
            t->have_sr = true;
            t->sr_ntp = r.ntp;
            t->sr_rtp = r.rtp_timestamp;
            t->sr_arrival_us = now;
            es_rtp_recv_stats_on_sr(&t->rs, r.ntp, now);
            if (ms->tap.on_sr) ms->tap.on_sr(ms->tap.user, i, r.ntp, r.rtp_timestamp, now);
        }
    }
}

/* --- sinks --- */

es_media_sink_t *es_media_stream_add_sink(es_media_stream_t *ms, const es_track_info_t *tracks,
                                          size_t n, es_media_io_t io, uint64_t now_us)
{
    if (n == 0 || n > ES_STREAM_MAX_TRACKS) return NULL;
    es_media_sink_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ms = ms;
    s->io = io;
    s->n = n;
    s->stats.rtt_us = -1;
    for (size_t i = 0; i < n; i++) {
        s->t[i].info = tracks[i];
        s->t[i].clock_rate = tracks[i].codec.clock_rate ? tracks[i].codec.clock_rate : 90000;
    }
    s->next = ms->sinks;
    if (ms->sinks) ms->sinks->prev = s;
    ms->sinks = s;
    ms->n_sinks++;
    sink_bind(ms, s);
    return s;
}

static void want_keyframe(es_media_stream_t *ms, int idx)
{
    if (idx < 0 || (size_t)idx >= ms->n_src) return;
    if (ms->src[idx].info.kind != ES_MEDIA_VIDEO) return;
    if (ms->src[idx].pli_tries == 0) ms->src[idx].pli_tries = MAX_PLI_TRIES;
}

void es_media_stream_set_tap(es_media_stream_t *ms, const es_media_tap_t *tap)
{
    if (tap) ms->tap = *tap;
    else memset(&ms->tap, 0, sizeof ms->tap);
}

/* A PLI may go out now: none sent yet, or the last one ES_PLI_INTERVAL_US ago. */
static bool pli_due(const src_track_t *t, uint64_t now)
{
    return t->pli_tries > 0 && (!t->pli_sent || now - t->last_pli_us >= ES_PLI_INTERVAL_US);
}

static void send_pli_now(es_media_stream_t *ms, src_track_t *t, uint64_t now)
{
    if (!t->ssrc_known || !ms->src_io.send_rtcp) return;
    uint8_t b[64 + ES_STREAM_IO_ROOM];
    int n = es_rtcp_write_pli(ms->rtcp_ssrc, t->ssrc, b, 64);
    if (n > 0) ms->src_io.send_rtcp(ms->src_io.user, b, (size_t)n, sizeof b);
    es_metrics.plis_sent++;
    t->last_pli_us = now;
    t->pli_sent = true;
    t->pli_tries--;
}

void es_media_stream_request_keyframe(es_media_stream_t *ms, uint64_t now_us)
{
    for (size_t i = 0; i < ms->n_src; i++) {
        src_track_t *t = &ms->src[i];
        if (t->info.kind != ES_MEDIA_VIDEO) continue;
        want_keyframe(ms, (int)i);
        if (pli_due(t, now_us)) send_pli_now(ms, t, now_us);
    }
}

void es_media_sink_start(es_media_sink_t *s, uint64_t now)
{
    es_media_stream_t *ms = s->ms;
    if (s->started) return;
    flush_pending(ms); /* the GOP replay below includes them */
    s->started = true;
    if (!ms->has_src) return;
    for (size_t i = 0; i < s->n; i++) {
        sink_track_t *st = &s->t[i];
        if (st->src < 0 || st->info.kind != ES_MEDIA_VIDEO) continue;
        src_track_t *t = &ms->src[st->src];
        want_keyframe(ms, st->src);
        if (pli_due(t, now)) send_pli_now(ms, t, now);
        if (!t->have_key || !t->have_last) continue;
        uint16_t count = (uint16_t)(t->last_seq - t->key_seq + 1);
        if (count > VIDEO_HISTORY - 16) continue; /* the GOP outgrew the history */
        /* Replay the GOP: the key frame onwards, in order. */
        for (uint16_t k = 0; k < count; k++) {
            size_t plen;
            const uint8_t *pkt = es_rtp_history_get(t->hist, (uint16_t)(t->key_seq + k), &plen);
            es_rtp_packet_t p;
            if (!pkt || es_rtp_parse(pkt, plen, &p) != 0 || p.ssrc != t->ssrc) {
                if (k == 0) break; /* the key frame itself is gone: wait for the next */
                continue;
            }
            fwd_ext_t ext;
            find_extensions(&p, &t->info.ext, &ext);
            forward(ms, s, st, &p, &ext, now, k == 0, false);
        }
    }
}

void es_media_stream_remove_sink(es_media_stream_t *ms, es_media_sink_t *s)
{
    if (s->prev) s->prev->next = s->next;
    else ms->sinks = s->next;
    if (s->next) s->next->prev = s->prev;
    ms->n_sinks--;
    free(s);
}

static sink_track_t *sink_track_by_ssrc(es_media_sink_t *s, uint32_t ssrc)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].info.ssrc == ssrc) return &s->t[i];
    return NULL;
}

static void retransmit(es_media_sink_t *s, sink_track_t *st, const uint16_t *seqs, int n,
                       uint64_t now)
{
    es_media_stream_t *ms = s->ms;
    if (st->src < 0 || !st->synced || st->gen != ms->gen || !ms->has_src) return;
    src_track_t *t = &ms->src[st->src];
    if (!s->resend_started || now < s->resend_refill_us) {
        s->resend_started = true;
        s->resend_tokens = ES_RETRANSMITS_PER_S;
    } else {
        s->resend_tokens += (double)(now - s->resend_refill_us) * ES_RETRANSMITS_PER_S / 1e6;
        if (s->resend_tokens > ES_RETRANSMITS_PER_S) s->resend_tokens = ES_RETRANSMITS_PER_S;
    }
    s->resend_refill_us = now;
    uint64_t once = s->stats.rtt_us < 0 ? 100000 : s->stats.rtt_us < 20000 ? 20000
                                                                          : (uint64_t)s->stats.rtt_us;
    for (int i = 0; i < n; i++) {
        /* A slot resent within the RTT blocks whatever maps to it, this packet or another one
         * (NACKs of s, s + ES_RESEND_SLOTS, s, ... must not each be answered). */
        size_t slot = seqs[i] % ES_RESEND_SLOTS;
        if ((st->resent_us[slot] && now - st->resent_us[slot] < once) || s->resend_tokens < 1.0) {
            s->stats.nacks_ignored++;
            continue;
        }
        uint16_t in_seq = (uint16_t)(seqs[i] - st->seq_offset);
        size_t plen;
        const uint8_t *pkt = es_rtp_history_get(t->hist, in_seq, &plen);
        es_rtp_packet_t p;
        if (!pkt || es_rtp_parse(pkt, plen, &p) != 0 || p.ssrc != t->ssrc || p.sequence != in_seq)
            continue;
        fwd_ext_t ext;
        find_extensions(&p, &t->info.ext, &ext);
        s->resend_tokens -= 1.0;
        st->resent_us[slot] = now ? now : 1;
        forward(ms, s, st, &p, &ext, now, false, true);
    }
}

void es_media_sink_rtcp(es_media_sink_t *s, uint64_t now, const uint8_t *buf, size_t len)
{
    es_media_stream_t *ms = s->ms;
    size_t off = 0;
    es_rtcp_header_t h;
    for (int guard = 0; guard < 64 && es_rtcp_next(buf, len, &off, &h) == 1; guard++) {
        if (h.type == ES_RTCP_RTPFB && h.count == ES_RTCP_FMT_NACK) {
            es_rtcp_fb_t fb;
            uint16_t seqs[128];
            if (es_rtcp_parse_fb(&h, &fb) != 0) continue;
            sink_track_t *st = sink_track_by_ssrc(s, fb.media_ssrc);
            int n = es_rtcp_nack_lost(&fb, seqs, sizeof seqs / sizeof seqs[0]);
            if (!st || n <= 0) continue;
            s->stats.nacks += (uint64_t)n;
            es_metrics.nacks_received += (uint64_t)n;
            retransmit(s, st, seqs, n, now);
        } else if (h.type == ES_RTCP_PSFB &&
                   (h.count == ES_RTCP_FMT_PLI || h.count == ES_RTCP_FMT_FIR)) {
            es_rtcp_fb_t fb;
            if (es_rtcp_parse_fb(&h, &fb) != 0) continue;
            uint32_t target = fb.media_ssrc;
            if (h.count == ES_RTCP_FMT_FIR && fb.fci_len >= 8) target = es_rd32(fb.fci);
            sink_track_t *st = sink_track_by_ssrc(s, target);
            if (!st) continue;
            s->stats.plis++;
            es_metrics.plis_received++;
            if (ms->has_src) want_keyframe(ms, st->src);
        } else if (h.type == ES_RTCP_RR || h.type == ES_RTCP_SR) {
            es_rtcp_report_t r;
            if (es_rtcp_parse_report(&h, &r) != 0) continue;
            for (size_t i = 0; i < r.n_blocks; i++) {
                sink_track_t *st = sink_track_by_ssrc(s, r.blocks[i].ssrc);
                if (!st) continue;
                es_histogram_observe(&es_metrics.player_loss, r.blocks[i].fraction_lost / 256.0);
                if (st->clock_rate)
                    es_histogram_observe(&es_metrics.player_jitter,
                                         (double)r.blocks[i].jitter / st->clock_rate);
                if (!r.blocks[i].lsr || r.blocks[i].lsr != st->last_sr_mid) continue;
                int64_t rtt = (int64_t)(now - st->last_sr_us) -
                              (int64_t)((uint64_t)r.blocks[i].dlsr * 1000000u / 65536u);
                if (rtt >= 0) {
                    s->stats.rtt_us = rtt;
                    es_histogram_observe(&es_metrics.player_rtt, (double)rtt / 1e6);
                }
            }
        }
    }
}

/* --- timers --- */

static void send_src_rtcp(es_media_stream_t *ms, uint8_t *b, int n, size_t cap)
{
    if (n > 0 && ms->src_io.send_rtcp) ms->src_io.send_rtcp(ms->src_io.user, b, (size_t)n, cap);
}

static void tick_source(es_media_stream_t *ms, uint64_t now)
{
    uint8_t b[1400 + ES_STREAM_IO_ROOM];
    const size_t cap = 1400;
    for (size_t i = 0; i < ms->n_src; i++) {
        src_track_t *t = &ms->src[i];
        if (!t->ssrc_known) continue;
        if (t->info.nack && t->nack) {
            uint16_t seqs[64];
            size_t n = es_nack_gen_poll(t->nack, now, seqs, 64);
            if (n) {
                t->nacks_sent += n;
                es_metrics.nacks_sent += (uint64_t)n;
                send_src_rtcp(ms, b, es_rtcp_write_nack(ms->rtcp_ssrc, t->ssrc, seqs, n, b, cap),
                              sizeof b);
            }
        }
        if (pli_due(t, now)) send_pli_now(ms, t, now);
        if (now - t->window_start_us >= 1000000) {
            t->bitrate_bps = t->window_bytes * 8 * 1000000 / (now - t->window_start_us);
            t->window_bytes = 0;
            t->window_start_us = now;
        }
    }
    bool twcc = ms->twcc_id != 0;
    uint32_t media_ssrc = 0;
    for (size_t i = 0; i < ms->n_src; i++) {
        if (ms->src[i].ssrc_known && (!media_ssrc || ms->src[i].info.kind == ES_MEDIA_VIDEO))
            media_ssrc = ms->src[i].ssrc;
    }
    if (twcc && now - ms->last_twcc_us >= TWCC_INTERVAL_US) {
        ms->last_twcc_us = now;
        for (int k = 0; k < 8; k++) {
            int n = es_twcc_recv_build(ms->twcc, ms->rtcp_ssrc, media_ssrc, b, cap);
            if (n <= 0) break;
            send_src_rtcp(ms, b, n, sizeof b);
            ms->twcc_sent++;
        }
    }
    if (now - ms->last_rr_us >= RR_INTERVAL_US) {
        ms->last_rr_us = now;
        es_rtcp_report_t rr = {.ssrc = ms->rtcp_ssrc};
        uint32_t remb_ssrcs[ES_STREAM_MAX_TRACKS];
        size_t n_remb = 0;
        for (size_t i = 0; i < ms->n_src && rr.n_blocks < 31; i++) {
            src_track_t *t = &ms->src[i];
            if (!t->ssrc_known || !t->rs.started) continue;
            es_rtp_recv_stats_block(&t->rs, t->ssrc, now, &rr.blocks[rr.n_blocks++]);
            if (t->info.remb && !t->info.transport_cc) remb_ssrcs[n_remb++] = t->ssrc;
        }
        if (rr.n_blocks) {
            int n = es_rtcp_write_rr(&rr, b, cap);
            if (n > 0) {
                int m = es_rtcp_write_sdes_cname(ms->rtcp_ssrc, CNAME, b + n, cap - (size_t)n);
                if (m > 0) n += m;
                if (n_remb) {
                    int r = es_rtcp_write_remb(ms->rtcp_ssrc, REMB_BPS, remb_ssrcs, n_remb, b + n,
                                               cap - (size_t)n);
                    if (r > 0) n += r;
                }
            }
            send_src_rtcp(ms, b, n, sizeof b);
        }
    }
}

/* 32.32 NTP time of the source track at now: its last SR's NTP plus the time since. */
static uint64_t src_ntp_at(const src_track_t *t, uint64_t now)
{
    uint64_t d = now - t->sr_arrival_us;
    return t->sr_ntp + ((d / 1000000u) << 32) + (((d % 1000000u) << 32) / 1000000u);
}

static void tick_sink(es_media_stream_t *ms, es_media_sink_t *s, uint64_t now)
{
    uint8_t b[256 + ES_STREAM_IO_ROOM];
    for (size_t i = 0; i < s->n; i++) {
        sink_track_t *st = &s->t[i];
        if (!s->started || st->src < 0 || !st->synced || st->gen != ms->gen) continue;
        const src_track_t *t = &ms->src[st->src];
        if (!t->have_sr || now - st->last_sr_us < SR_INTERVAL_US) continue;
        es_rtcp_report_t sr = {.ssrc = st->info.ssrc};
        sr.ntp = src_ntp_at(t, now);
        sr.rtp_timestamp = t->sr_rtp + elapsed_ticks(t->sr_arrival_us, now, t->clock_rate) +
                           st->ts_offset;
        sr.packet_count = (uint32_t)st->packets;
        sr.octet_count = (uint32_t)st->octets;
        int n = es_rtcp_write_sr(&sr, b, 256);
        if (n <= 0) continue;
        int m = es_rtcp_write_sdes_cname(st->info.ssrc, CNAME, b + n, 256 - (size_t)n);
        if (m > 0) n += m;
        st->last_sr_mid = (uint32_t)(sr.ntp >> 16);
        st->last_sr_us = now;
        s->io.send_rtcp(s->io.user, b, (size_t)n, sizeof b);
    }
}

void es_media_stream_tick(es_media_stream_t *ms, uint64_t now)
{
    if (!ms->has_src) return;
    tick_source(ms, now);
    for (es_media_sink_t *s = ms->sinks; s; s = s->next) tick_sink(ms, s, now);
}

size_t es_media_stream_sink_count(const es_media_stream_t *ms) { return ms->n_sinks; }

es_media_sink_stats_t es_media_sink_stats(const es_media_sink_t *s) { return s->stats; }

static uint64_t track_lost(const src_track_t *t)
{
    if (!t->rs.started) return 0;
    uint32_t ext_max = t->rs.cycles + t->rs.max_seq;
    int64_t expected = (int64_t)ext_max - (int64_t)t->rs.base_seq + 1;
    int64_t lost = expected - (int64_t)t->rs.received;
    return lost > 0 ? (uint64_t)lost : 0;
}

es_media_source_stats_t es_media_stream_source_stats(const es_media_stream_t *ms)
{
    es_media_source_stats_t st = {.rtt_us = -1,
                                  .last_us = ms->has_src ? ms->src_last_us : 0,
                                  .twcc_feedback = ms->has_src ? ms->twcc_sent : 0};
    for (size_t i = 0; ms->has_src && i < ms->n_src; i++) {
        const src_track_t *t = &ms->src[i];
        st.packets += t->packets;
        st.bytes += t->bytes;
        st.lost += track_lost(t);
        st.nacks_sent += t->nacks_sent;
        st.keyframes += t->keyframes;
    }
    return st;
}

json_t *es_media_stream_json(const es_media_stream_t *ms)
{
    json_t *tracks = json_array();
    uint64_t bitrate = 0;
    json_t *o = json_object();
    for (size_t i = 0; ms->has_src && i < ms->n_src; i++) {
        const src_track_t *t = &ms->src[i];
        bitrate += t->bitrate_bps;
        json_t *tj = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I}", "kind",
                               t->info.kind == ES_MEDIA_AUDIO ? "audio" : "video", "mid",
                               t->info.mid, "codec", es_codec_name(t->info.codec.codec),
                               "clock_rate", (int)t->clock_rate, "bitrate_bps",
                               (json_int_t)t->bitrate_bps, "packets", (json_int_t)t->packets,
                               "packets_lost", (json_int_t)track_lost(t), "nacks_sent",
                               (json_int_t)t->nacks_sent, "keyframes", (json_int_t)t->keyframes);
        if (t->info.codec.fmtp[0]) json_object_set_new(tj, "fmtp", json_string(t->info.codec.fmtp));
        if (t->width) {
            json_object_set_new(tj, "width", json_integer(t->width));
            json_object_set_new(tj, "height", json_integer(t->height));
            json_object_set_new(o, "width", json_integer(t->width));
            json_object_set_new(o, "height", json_integer(t->height));
        }
        json_array_append_new(tracks, tj);
    }
    es_media_source_stats_t st = es_media_stream_source_stats(ms);
    json_object_set_new(o, "publishing", json_boolean(ms->has_src));
    json_object_set_new(o, "tracks", tracks);
    json_object_set_new(o, "bitrate_in_bps", json_integer((json_int_t)bitrate));
    json_object_set_new(o, "packets_in", json_integer((json_int_t)st.packets));
    json_object_set_new(o, "packets_lost", json_integer((json_int_t)st.lost));
    json_object_set_new(o, "players", json_integer((json_int_t)ms->n_sinks));
    return o;
}
