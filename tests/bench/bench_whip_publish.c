/* WHIP publisher for the fan-out benchmark (docs/performance.md): publishes an H.264 Annex B
 * file and an Ogg Opus file made by FFmpeg, looped, to a WHIP endpoint (RFC 9725), the way a
 * browser would: H.264 packetized per RFC 6184 (es_h264_packetize: single NAL units, STAP-A
 * for SPS+PPS, FU-A) and Opus per RFC 7587, at the real frame rate, video through a pacer
 * (2.5 times the file's bitrate by default, as libwebrtc paces; --burst sends each frame at
 * once), every packet carrying mid and abs-send-time (the send time on CLOCK_REALTIME, which
 * bench_whep_load reads back to measure the added latency). It answers NACKs from its history
 * (RFC 4585 §6.2.1; the abs-send-time of a retransmission is its own send time, as libwebrtc
 * does), sends sender reports every second (RFC 3550 §6.4.1), and ignores PLI and FIR (the files
 * have a key frame every 2 s). The transport is the project's session core as a full
 * controlling ICE agent and DTLS client, as in bench_whep_load.c.
 *
 *   bench_whip_publish --url http://127.0.0.1:8080/whip/live/bench --video v.h264 \
 *                      --audio a.opus [--fps 30] [--burst] [--pace-kbps K] [--duration S]
 *
 * Runs until SIGINT/SIGTERM (or --duration), then DELETEs its resource. Exit status 0, or 1 when
 * the session could not be made or ended under it. */
#define _GNU_SOURCE /* ppoll */
#include "bench_rtc.h"

#include "estuary/bytes.h"
#include "estuary/clock.h"
#include "estuary/error.h"
#include "estuary/h264.h"
#include "estuary/nack.h"
#include "estuary/random.h"
#include "estuary/rtcp.h"
#include "estuary/rtp.h"
#include "estuary/srtp.h"

#include <libavformat/avformat.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define MAX_PAYLOAD 1150     /* RTP payload bytes: packets stay under 1200 with SRTP */
#define PKT_CAP (1500 + ES_SRTP_MAX_TRAILER)
#define QUEUE_MAX 4096       /* packets waiting for the pacer */
#define HISTORY 1024         /* packets kept per track for NACK */
#define SR_US 1000000

/* One RTP payload of the file, in a flat buffer. */
typedef struct payload {
    size_t off, len;
    bool marker;             /* last of its access unit */
} payload_t;

/* A track's payloads, one "unit" (access unit, Opus packet) after another. */
typedef struct media {
    uint8_t *data;
    size_t len, cap;
    payload_t *pl;
    size_t n_pl, cap_pl;
    size_t *unit_first;      /* index of each unit's first payload; unit_first[n_units] = n_pl */
    uint32_t *unit_dur;      /* ticks of each unit (Opus: 48 kHz; video: unused) */
    size_t n_units, cap_units;
} media_t;

typedef struct track {
    const bench_track_t *neg; /* negotiated in the answer */
    uint32_t ssrc, ts0, clock_rate;
    uint16_t seq;
    es_rtp_history_t *hist;
    uint64_t packets, octets; /* sent (payload octets, RFC 3550 §6.4.1) */
} track_t;

typedef struct queued {
    const payload_t *pl;
    uint32_t ts;
} queued_t;

typedef struct pub {
    const char *url, *video_path, *audio_path, *bind, *token;
    double fps, duration_s;
    bool burst;
    double pace_kbps;
    media_t video, audio;
    es_h264_config_t avc;
    char plid[7];
    int fd;
    struct sockaddr_storage local;
    socklen_t local_len;
    es_dtls_cert_t *cert;
    es_rtc_session_t *s;
    bench_answer_t ans;
    track_t tr[2];           /* audio, video */
    queued_t q[QUEUE_MAX];
    size_t q_head, q_n;
    uint64_t pacer_us;
    bool ended;
    char why[240];
    uint64_t nacks, retransmits, plis, reports;
} pub_t;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) { (void)sig; g_stop = 1; }

/* --- the files --- */

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *n = realloc(*p, c * size);
    if (!n) return ES_ENOMEM;
    *p = n;
    *cap = c;
    return 0;
}

static int unit_begin(media_t *m, uint32_t dur)
{
    if (m->n_units + 2 > m->cap_units) {
        size_t c = m->cap_units ? m->cap_units * 2 : 64;
        size_t *f = realloc(m->unit_first, c * sizeof *f);
        if (!f) return ES_ENOMEM;
        m->unit_first = f;
        uint32_t *d = realloc(m->unit_dur, c * sizeof *d);
        if (!d) return ES_ENOMEM;
        m->unit_dur = d;
        m->cap_units = c;
    }
    m->unit_first[m->n_units] = m->n_pl;
    m->unit_dur[m->n_units] = dur;
    m->n_units++;
    m->unit_first[m->n_units] = m->n_pl;
    return 0;
}

static void payload_add(void *user, const uint8_t *data, size_t len, bool marker)
{
    media_t *m = user;
    if (grow((void **)&m->data, &m->cap, m->len + len, 1) ||
        grow((void **)&m->pl, &m->cap_pl, m->n_pl + 1, sizeof *m->pl))
        return;
    memcpy(m->data + m->len, data, len);
    m->pl[m->n_pl++] = (payload_t){.off = m->len, .len = len, .marker = marker};
    m->len += len;
    m->unit_first[m->n_units] = m->n_pl;
}

/* An Annex B access unit becomes AVCC (4-byte lengths) for es_h264_packetize; the first SPS and
 * PPS are kept as the fallback configuration sent before an IDR without them. */
static int video_unit(pub_t *pb, const uint8_t *au, size_t len, uint8_t **tmp, size_t *tmp_cap)
{
    if (grow((void **)tmp, tmp_cap, len + 4 * (len / 3 + 1), 1)) return ES_ENOMEM;
    size_t off = 0, n = 0;
    const uint8_t *nal;
    size_t nal_len;
    bool key = false;
    while (es_h264_annexb_next(au, len, &off, &nal, &nal_len) == 1) {
        if (!nal_len) continue;
        int type = nal[0] & 0x1f;
        key |= type == ES_H264_NAL_IDR;
        if (type == ES_H264_NAL_SPS && !pb->avc.sps_len && nal_len <= ES_H264_PARAM_MAX) {
            memcpy(pb->avc.sps, nal, nal_len);
            pb->avc.sps_len = nal_len;
        }
        if (type == ES_H264_NAL_PPS && !pb->avc.pps_len && nal_len <= ES_H264_PARAM_MAX) {
            memcpy(pb->avc.pps, nal, nal_len);
            pb->avc.pps_len = nal_len;
        }
        es_wr32(*tmp + n, (uint32_t)nal_len);
        memcpy(*tmp + n + 4, nal, nal_len);
        n += 4 + nal_len;
    }
    if (unit_begin(&pb->video, 0) != 0) return ES_ENOMEM;
    const es_h264_config_t *cfg = pb->avc.sps_len && pb->avc.pps_len ? &pb->avc : NULL;
    int rc = es_h264_packetize(*tmp, n, 4, key, cfg, MAX_PAYLOAD, payload_add, &pb->video);
    return rc < 0 ? rc : 0;
}

/* Reads every packet of path (libavformat: the raw H.264 demuxer splits access units, the Ogg
 * demuxer gives Opus packets) into m. */
static int load(pub_t *pb, const char *path, bool video, char *err, size_t err_len)
{
    AVFormatContext *fc = NULL;
    int rc = avformat_open_input(&fc, path, NULL, NULL);
    if (rc < 0) {
        snprintf(err, err_len, "%s: %s", path, av_err2str(rc));
        return ES_EIO;
    }
    AVPacket *pkt = av_packet_alloc();
    uint8_t *tmp = NULL;
    size_t tmp_cap = 0;
    media_t *m = video ? &pb->video : &pb->audio;
    rc = 0;
    while (pkt && rc == 0 && av_read_frame(fc, pkt) >= 0) {
        AVStream *st = fc->streams[pkt->stream_index];
        if (video) {
            rc = video_unit(pb, pkt->data, (size_t)pkt->size, &tmp, &tmp_cap);
        } else if (pkt->size > 0) {
            int64_t d = av_rescale_q(pkt->duration > 0 ? pkt->duration : 960, st->time_base,
                                     (AVRational){1, 48000});
            if ((rc = unit_begin(m, (uint32_t)(d > 0 ? d : 960))) == 0)
                payload_add(m, pkt->data, (size_t)pkt->size, true);
        }
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    free(tmp);
    avformat_close_input(&fc);
    if (rc != 0 || !m->n_units || !m->n_pl) {
        snprintf(err, err_len, "%s: no %s read (%s)", path, video ? "H.264 access unit" : "Opus packet",
                 es_strerror(rc));
        return rc ? rc : ES_EPROTO;
    }
    if (video && es_h264_profile_level_id(pb->avc.sps, pb->avc.sps_len, pb->plid) != 0) {
        snprintf(err, err_len, "%s: no SPS", path);
        return ES_EPROTO;
    }
    return 0;
}

static void media_free(media_t *m)
{
    free(m->data);
    free(m->pl);
    free(m->unit_first);
    free(m->unit_dur);
}

/* --- sending --- */

/* Writes the RTP header, the one-byte extensions (mid, abs-send-time; RFC 8285 §4.2) and the
 * payload into buf. Returns the length; *ast_off receives the offset of the 3 abs-send-time
 * bytes (0: none). */
static size_t rtp_build(const track_t *t, const uint8_t *payload, size_t len, bool marker,
                        uint32_t ts, uint8_t *buf, size_t *ast_off)
{
    es_rtp_packet_t h = {.marker = marker, .payload_type = t->neg->pt, .sequence = t->seq,
                         .timestamp = ts, .ssrc = t->ssrc};
    es_rtp_write_header(&h, buf, PKT_CAP);
    size_t n = 16;
    *ast_off = 0;
    size_t mid_len = strlen(t->neg->mid);
    if (t->neg->mid_id && t->neg->mid_id <= 14 && mid_len >= 1 && mid_len <= 16) {
        buf[n++] = (uint8_t)(t->neg->mid_id << 4 | (mid_len - 1));
        memcpy(buf + n, t->neg->mid, mid_len);
        n += mid_len;
    }
    if (t->neg->ast_id && t->neg->ast_id <= 14) {
        buf[n++] = (uint8_t)(t->neg->ast_id << 4 | 2);
        *ast_off = n;
        n += 3;
    }
    while (n % 4) buf[n++] = 0;
    if (n > 16) {
        buf[0] |= 0x10;
        es_wr16(buf + 12, 0xBEDE);
        es_wr16(buf + 14, (uint16_t)((n - 16) / 4));
    } else {
        n = 12;
    }
    memcpy(buf + n, payload, len);
    return n + len;
}

static void stamp(uint8_t *buf, size_t ast_off)
{
    if (!ast_off) return;
    uint32_t v = bench_ast(bench_wall_us());
    buf[ast_off] = (uint8_t)(v >> 16);
    buf[ast_off + 1] = (uint8_t)(v >> 8);
    buf[ast_off + 2] = (uint8_t)v;
}

static void send_payload(pub_t *pb, track_t *t, const uint8_t *payload, size_t len, bool marker,
                         uint32_t ts)
{
    uint8_t buf[PKT_CAP];
    size_t ast_off;
    size_t n = rtp_build(t, payload, len, marker, ts, buf, &ast_off);
    stamp(buf, ast_off);
    es_rtp_history_put(t->hist, t->seq, buf, n);
    t->seq++;
    t->packets++;
    t->octets += len;
    es_rtc_session_send_rtp(pb->s, buf, n, sizeof buf);
}

static void retransmit(pub_t *pb, track_t *t, uint16_t seq)
{
    size_t len;
    const uint8_t *old = es_rtp_history_get(t->hist, seq, &len);
    if (!old || len > 1500 || es_rd16(old + 2) != seq) return;
    uint8_t buf[PKT_CAP];
    memcpy(buf, old, len);
    /* The abs-send-time element sits where rtp_build put it: find it again. */
    es_rtp_packet_t p;
    const uint8_t *ast;
    if (es_rtp_parse(buf, len, &p) == 0 && es_rtp_ext_find(&p, t->neg->ast_id, &ast) == 3)
        stamp(buf, (size_t)(ast - buf));
    if (es_rtc_session_send_rtp(pb->s, buf, len, sizeof buf) == 0) pb->retransmits++;
}

static void send_reports(pub_t *pb, uint64_t now, uint64_t start)
{
    uint8_t buf[1500];
    size_t n = 0;
    uint64_t wall = bench_wall_us();
    /* NTP: seconds since 1900 in 32.32 fixed point (RFC 3550 §4) */
    uint64_t ntp = ((wall / 1000000 + 2208988800ull) << 32) | (((wall % 1000000) << 32) / 1000000);
    for (int k = 0; k < 2; k++) {
        track_t *t = &pb->tr[k];
        if (!t->neg || !t->packets) continue;
        uint32_t ts = t->ts0 + (uint32_t)((now - start) * t->clock_rate / 1000000);
        es_rtcp_report_t r = {.ssrc = t->ssrc, .ntp = ntp, .rtp_timestamp = ts,
                              .packet_count = (uint32_t)t->packets,
                              .octet_count = (uint32_t)t->octets};
        int m = es_rtcp_write_sr(&r, buf + n, sizeof buf - ES_SRTP_MAX_TRAILER - n);
        if (m > 0) n += (size_t)m;
    }
    if (!n) return;
    int m = es_rtcp_write_sdes_cname(pb->tr[1].ssrc, "bench-publisher", buf + n,
                                     sizeof buf - ES_SRTP_MAX_TRAILER - n);
    if (m > 0) n += (size_t)m;
    es_rtc_session_send_rtcp(pb->s, buf, n, sizeof buf);
}

/* --- the session --- */

static void cb_send(void *user, const uint8_t *buf, size_t len, const es_addr_pair_t *a)
{
    pub_t *pb = user;
    (void)sendto(pb->fd, buf, len, 0, (const struct sockaddr *)&a->remote, a->remote_len);
}

static void cb_rtcp(void *user, uint64_t now, uint8_t *buf, size_t len)
{
    pub_t *pb = user;
    size_t off = 0;
    es_rtcp_header_t h;
    for (int k = 0; k < 32 && es_rtcp_next(buf, len, &off, &h) == 1; k++) {
        es_rtcp_fb_t fb;
        if (h.type == ES_RTCP_RR || h.type == ES_RTCP_SR) {
            pb->reports++;
        } else if (h.type == ES_RTCP_PSFB &&
                   (h.count == ES_RTCP_FMT_PLI || h.count == ES_RTCP_FMT_FIR)) {
            pb->plis++;
        } else if (h.type == ES_RTCP_RTPFB && h.count == ES_RTCP_FMT_NACK &&
                   es_rtcp_parse_fb(&h, &fb) == 0) {
            uint16_t seqs[512];
            int n = es_rtcp_nack_lost(&fb, seqs, 512);
            pb->nacks++;
            for (int k2 = 0; k2 < 2; k2++)
                if (pb->tr[k2].ssrc == fb.media_ssrc)
                    for (int i = 0; i < n; i++) retransmit(pb, &pb->tr[k2], seqs[i]);
        }
    }
}

static void cb_state(void *user, es_rtc_session_state_t st, int err, const char *reason)
{
    pub_t *pb = user;
    if (st == ES_RTC_SESSION_CLOSED || st == ES_RTC_SESSION_FAILED) {
        pb->ended = true;
        snprintf(pb->why, sizeof pb->why, "session %s (%s): %s", es_rtc_session_state_name(st),
                 es_strerror(err), reason);
    }
}

static int http(const pub_t *pb, const char *url, const char *offer, bench_http_t *h, long *status)
{
    if (bench_http_begin(h, url, offer, pb->token, 10000) != 0) return ES_ENOMEM;
    CURLcode rc = curl_easy_perform(h->easy);
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, status);
    return rc == CURLE_OK ? 0 : ES_EIO;
}

/* POSTs the offer and makes the session. Returns 0 or an error with the reason in pb->why. */
static int publish(pub_t *pb, char *resource, size_t cap)
{
    char ufrag[9], pwd[25], text[8192], err[300];
    bench_ice_credentials(ufrag, pwd);
    pb->tr[0].ssrc = es_random32();
    pb->tr[1].ssrc = es_random32();
    bench_offer_spec_t spec = {.send = true, .h264_plid = pb->plid,
                               .ssrc = {pb->tr[0].ssrc, pb->tr[1].ssrc}};
    es_sdp_local_t *offer =
        bench_offer_new(&spec, pb->cert, ufrag, pwd, (struct sockaddr *)&pb->local);
    if (!offer || bench_offer_write(offer, text, sizeof text) < 0) {
        snprintf(pb->why, sizeof pb->why, "cannot write the offer");
        free(offer);
        return ES_ENOMEM;
    }
    bench_http_t h;
    long status = 0;
    int rc = http(pb, pb->url, text, &h, &status);
    if (rc != 0 || (status != 201 && status != 200)) {
        snprintf(pb->why, sizeof pb->why, "POST %.60s: %.60s %ld %.100s", pb->url,
                 rc ? h.error : "HTTP", status, h.body ? h.body : "");
    } else if ((rc = bench_answer_take(offer, h.body, h.len, (struct sockaddr *)&pb->local,
                                       pb->local_len, &pb->ans, err, sizeof err)) != 0) {
        snprintf(pb->why, sizeof pb->why, "bad answer: %.200s", err);
    }
    if (rc == 0 && (status == 201 || status == 200) && h.location[0])
        bench_url_resolve(pb->url, h.location, resource, cap);
    bench_http_end(&h);
    free(offer);
    if (rc != 0 || (status != 201 && status != 200)) return rc ? rc : ES_EPROTO;
    uint64_t now = es_clock_now_us();
    es_rtc_session_params_t prm = bench_session_params(&pb->ans, ufrag, pwd, pb->cert, 10000, now);
    prm.cb = (es_rtc_session_callbacks_t){.send = cb_send, .on_rtcp = cb_rtcp,
                                          .on_state = cb_state};
    prm.user = pb;
    if (!(pb->s = es_rtc_session_new(&prm))) {
        snprintf(pb->why, sizeof pb->why, "cannot create the session");
        return ES_ENOMEM;
    }
    for (size_t i = 0; i < pb->ans.n_cand; i++)
        es_rtc_session_add_remote_candidate(pb->s, &pb->ans.cand[i], pb->ans.cand_prio[i], now);
    for (int k = 0; k < 2; k++) {
        track_t *t = &pb->tr[k];
        if (!pb->ans.tracks[k].pt) continue;
        t->neg = &pb->ans.tracks[k];
        t->clock_rate = t->neg->clock_rate;
        t->seq = (uint16_t)es_random32();
        t->ts0 = es_random32();
        if (!(t->hist = es_rtp_history_new(HISTORY, 1500))) return ES_ENOMEM;
    }
    return 0;
}

static void receive(pub_t *pb, uint64_t now)
{
    uint8_t buf[2048];
    for (int i = 0; i < 64; i++) {
        es_addr_pair_t a = pb->ans.cand[0];
        a.remote_len = sizeof a.remote;
        ssize_t n = recvfrom(pb->fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&a.remote,
                             &a.remote_len);
        if (n <= 0) return;
        es_rtc_session_handle_datagram(pb->s, now, buf, (size_t)n, &a);
    }
}

/* The media loop: frames at their times, audio every packet's duration, the pacer, the
 * session's timers, reports. Returns 0, or 1 when the session ended under it. */
static int run(pub_t *pb)
{
    uint64_t start = 0, next_frame = 0, next_audio = 0, next_sr = 0, frames = 0, audio_ticks = 0;
    uint64_t t_end = pb->duration_s > 0 ? es_clock_now_us() + (uint64_t)(pb->duration_s * 1e6) : 0;
    size_t vu = 0, au = 0;
    double bits_per_us = pb->pace_kbps / 1000.0;
    while (!g_stop && !pb->ended) {
        uint64_t now = es_clock_now_us();
        if (t_end && now >= t_end) break;
        bool connected = es_rtc_session_state(pb->s) == ES_RTC_SESSION_CONNECTED;
        if (connected && !start) {
            start = next_frame = next_audio = now;
            next_sr = now + SR_US;
            fprintf(stderr, "bench_whip_publish: publishing (%s, H.264 %s, %zu frames and %zu Opus "
                    "packets looped)\n", es_rtc_session_srtp_profile(pb->s) == ES_SRTP_AEAD_AES_128_GCM
                    ? "AEAD_AES_128_GCM" : "AES_CM_128_HMAC_SHA1_80", pb->plid, pb->video.n_units,
                    pb->audio.n_units);
        }
        if (start && pb->tr[1].neg && now >= next_frame) {
            uint32_t ts = pb->tr[1].ts0 + (uint32_t)((double)frames * 90000.0 / pb->fps);
            for (size_t i = pb->video.unit_first[vu]; i < pb->video.unit_first[vu + 1]; i++) {
                if (pb->burst) {
                    const payload_t *p = &pb->video.pl[i];
                    send_payload(pb, &pb->tr[1], pb->video.data + p->off, p->len, p->marker, ts);
                } else if (pb->q_n < QUEUE_MAX) {
                    pb->q[(pb->q_head + pb->q_n++) % QUEUE_MAX] = (queued_t){&pb->video.pl[i], ts};
                }
            }
            vu = (vu + 1) % pb->video.n_units;
            frames++;
            next_frame = start + (uint64_t)((double)frames * 1e6 / pb->fps);
        }
        if (start && pb->tr[0].neg && now >= next_audio) {
            const payload_t *p = &pb->audio.pl[pb->audio.unit_first[au]];
            send_payload(pb, &pb->tr[0], pb->audio.data + p->off, p->len, false,
                         pb->tr[0].ts0 + (uint32_t)audio_ticks);
            audio_ticks += pb->audio.unit_dur[au];
            au = (au + 1) % pb->audio.n_units;
            next_audio = start + audio_ticks * 1000000 / 48000;
        }
        /* The pacer: packets leave at pace_kbps, never faster; an idle pacer starts now. */
        if (pb->q_n && pb->pacer_us < now) pb->pacer_us = now;
        for (int k = 0; k < 64 && pb->q_n && now >= pb->pacer_us; k++) {
            queued_t q = pb->q[pb->q_head];
            pb->q_head = (pb->q_head + 1) % QUEUE_MAX;
            pb->q_n--;
            send_payload(pb, &pb->tr[1], pb->video.data + q.pl->off, q.pl->len, q.pl->marker, q.ts);
            pb->pacer_us += (uint64_t)((double)(q.pl->len + 40) * 8 / bits_per_us);
        }
        if (start && now >= next_sr) {
            send_reports(pb, now, start);
            next_sr += SR_US;
        }
        uint64_t sd = es_rtc_session_next_timeout_us(pb->s, now);
        if (sd && sd <= now) es_rtc_session_handle_timeout(pb->s, now);
        /* Sleep until the next thing to do or a datagram. */
        uint64_t due = es_rtc_session_next_timeout_us(pb->s, now);
        if (start) {
            uint64_t d2 = next_frame < next_audio ? next_frame : next_audio;
            if (pb->q_n && pb->pacer_us < d2) d2 = pb->pacer_us;
            if (next_sr < d2) d2 = next_sr;
            due = due && due < d2 ? due : d2;
        }
        if (!due || due > now + 100000) due = now + 100000;
        uint64_t wait = due > now ? due - now : 0;
        struct pollfd pfd = {.fd = pb->fd, .events = POLLIN};
        struct timespec ts = {.tv_sec = (time_t)(wait / 1000000),
                              .tv_nsec = (long)(wait % 1000000) * 1000};
        if (ppoll(&pfd, 1, &ts, NULL) > 0) receive(pb, es_clock_now_us());
    }
    double secs = start ? (double)(es_clock_now_us() - start) / 1e6 : 0;
    fprintf(stderr, "bench_whip_publish: %.1f s, %llu frames, video %llu packets (%.0f kbit/s), "
            "audio %llu packets; %llu NACKs answered with %llu retransmissions, %llu PLI/FIR, "
            "%llu reports received%s%s\n", secs, (unsigned long long)frames,
            (unsigned long long)pb->tr[1].packets,
            secs > 0 ? (double)pb->tr[1].octets * 8 / secs / 1000 : 0,
            (unsigned long long)pb->tr[0].packets, (unsigned long long)pb->nacks,
            (unsigned long long)pb->retransmits, (unsigned long long)pb->plis,
            (unsigned long long)pb->reports, pb->ended ? "; " : "", pb->ended ? pb->why : "");
    return pb->ended ? 1 : 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_whip_publish --url WHIP_URL --video FILE.h264 --audio FILE.opus [options]\n"
            "  --fps F            video frame rate (30)\n"
            "  --burst            send each frame at once instead of pacing it\n"
            "  --pace-kbps K      pacer rate (2.5 x the video file's bitrate)\n"
            "  --bind ADDR        local address (127.0.0.1)\n"
            "  --token T          Authorization: Bearer T\n"
            "  --duration S       stop after S seconds (0: at SIGINT/SIGTERM)\n");
}

static int parse_args(int argc, char **argv, pub_t *pb)
{
    pb->bind = "127.0.0.1";
    pb->fps = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--burst")) {
            pb->burst = true;
            continue;
        }
        if (!v) return -1;
        if (!strcmp(a, "--url")) pb->url = v;
        else if (!strcmp(a, "--video")) pb->video_path = v;
        else if (!strcmp(a, "--audio")) pb->audio_path = v;
        else if (!strcmp(a, "--fps")) pb->fps = atof(v);
        else if (!strcmp(a, "--pace-kbps")) pb->pace_kbps = atof(v);
        else if (!strcmp(a, "--bind")) pb->bind = v;
        else if (!strcmp(a, "--token")) pb->token = v;
        else if (!strcmp(a, "--duration")) pb->duration_s = atof(v);
        else return -1;
        i++;
    }
    return pb->url && pb->video_path && pb->audio_path && pb->fps > 0 ? 0 : -1;
}

/* Loads the files, publishes, runs until told to stop, DELETEs the resource. Returns the exit
 * status. */
static int publisher(pub_t *pb)
{
    char err[300], resource[512] = "";
    if (load(pb, pb->video_path, true, err, sizeof err) != 0 ||
        load(pb, pb->audio_path, false, err, sizeof err) != 0) {
        fprintf(stderr, "bench_whip_publish: %s\n", err);
        return 1;
    }
    if (pb->pace_kbps <= 0)
        pb->pace_kbps = 2.5 * (double)pb->video.len * 8 * pb->fps / (double)pb->video.n_units /
                        1000;
    pb->cert = es_dtls_cert_generate(err, sizeof err);
    if (pb->cert)
        pb->fd = bench_udp_open(pb->bind, 1 << 20, &pb->local, &pb->local_len, err, sizeof err);
    if (pb->fd < 0 || publish(pb, resource, sizeof resource) != 0) {
        fprintf(stderr, "bench_whip_publish: %s\n", pb->fd < 0 ? err : pb->why);
        return 1;
    }
    int rc = run(pb);
    if (resource[0]) { /* end the session on the server (RFC 9725 §4.2) */
        bench_http_t h;
        long status = 0;
        http(pb, resource, NULL, &h, &status);
        bench_http_end(&h);
    }
    es_rtc_session_close(pb->s, "publisher stops");
    return rc;
}

int main(int argc, char **argv)
{
    pub_t *pb = calloc(1, sizeof *pb);
    if (!pb) return 1;
    pb->fd = -1;
    if (parse_args(argc, argv, pb) != 0) {
        usage();
        free(pb);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    prctl(PR_SET_TIMERSLACK, 1000UL); /* 1 µs: the pacer's sleeps are short */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = publisher(pb);
    es_rtc_session_free(pb->s);
    for (int k = 0; k < 2; k++) es_rtp_history_free(pb->tr[k].hist);
    media_free(&pb->video);
    media_free(&pb->audio);
    es_dtls_cert_free(pb->cert);
    if (pb->fd >= 0) close(pb->fd);
    curl_global_cleanup();
    free(pb);
    return rc;
}
