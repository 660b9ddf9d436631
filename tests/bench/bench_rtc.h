/* What the WHEP load generator (bench_whep_load.c) and the WHIP publisher (bench_whip_publish.c)
 * share: the abs-send-time clock both stamp and read, a UDP socket per peer, our offer
 * (es_sdp_offer_init with a=setup:active, RFC 5763 §5) and what the answer negotiated
 * (es_sdp_answer_apply), the session parameters of a full controlling ICE agent that is the
 * DTLS client (RFC 8445 §6.1.1), and the libcurl plumbing of a WHIP/WHEP POST (RFC 9725 §4.2).
 * Benchmarks only: never linked into the server. */
#ifndef ESTUARY_BENCH_RTC_H
#define ESTUARY_BENCH_RTC_H

#include "estuary/dtls.h"
#include "estuary/rtc_session.h"
#include "estuary/sdp.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define BENCH_EXT_AST "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
#define BENCH_EXT_MID "urn:ietf:params:rtp-hdrext:sdes:mid"
#define BENCH_MAX_CANDIDATES 4 /* UDP candidates of an answer that we check */

/* bench_wall_us: CLOCK_REALTIME in µs: the one clock both programs stamp abs-send-time with
 * (the kernel's SO_TIMESTAMPNS receive timestamps are on it too). */
uint64_t bench_wall_us(void);

/* bench_ast: the 24-bit abs-send-time (6.18 fixed-point seconds, modulo 64 s) of wall_us. */
static inline uint32_t bench_ast(uint64_t wall_us)
{
    return (uint32_t)(((wall_us % 64000000u) << 18) / 1000000u) & 0xFFFFFFu;
}

/* bench_ast_delta_us: received minus sent, both abs-send-time values, in µs (negative when the
 * receive stamp is earlier, within ±32 s). */
static inline int64_t bench_ast_delta_us(uint32_t recv, uint32_t sent)
{
    int32_t d = (int32_t)((recv - sent) & 0xFFFFFFu);
    if (d >= 0x800000) d -= 0x1000000;
    return (int64_t)d * 1000000 / (1 << 18);
}

/* bench_udp_open: a non-blocking UDP socket bound to bind_ip (IPv4 or IPv6 literal) on an
 * ephemeral port with a receive buffer of rcvbuf bytes (SO_RCVBUFFORCE when allowed, else
 * SO_RCVBUF, which rmem_max caps); *local receives the bound address. Returns the descriptor,
 * or -1 with the reason in err. */
int bench_udp_open(const char *bind_ip, int rcvbuf, struct sockaddr_storage *local,
                   socklen_t *local_len, char *err, size_t err_len);

/* bench_ice_credentials: random ICE ufrag (8) and pwd (24) characters (RFC 8839 §5.4). */
void bench_ice_credentials(char ufrag[9], char pwd[25]);

/* What our offer proposes, one entry per m= section (audio first). */
typedef struct bench_offer_spec {
    bool send;                 /* true: sendonly (a publisher), false: recvonly (a player) */
    const char *h264_plid;     /* profile-level-id to offer ("42e01f" for a player) */
    uint32_t ssrc[2];          /* send only: our audio and video SSRCs */
} bench_offer_spec_t;

/* bench_offer_new: an offer (heap; free() it) for one audio (Opus, pt 111) and one video (H.264
 * packetization-mode 1, pt 102, nack and nack pli) section with rtcp-mux, the header extensions
 * es_sdp_offer_init writes (mid, abs-send-time, audio level), our credentials, fingerprint and
 * a host candidate at local. NULL when out of memory. */
es_sdp_local_t *bench_offer_new(const bench_offer_spec_t *spec, const es_dtls_cert_t *cert,
                                const char *ufrag, const char *pwd, const struct sockaddr *local);

/* bench_offer_write: the offer as SDP text with a=setup:active (we are the DTLS client, as
 * WHIP clients such as OBS offer; RFC 5763 §5 lets the offerer pick). Returns the length or an
 * ES_E* code. */
int bench_offer_write(es_sdp_local_t *offer, char *out, size_t cap);

/* One negotiated m= section. */
typedef struct bench_track {
    es_media_kind_t kind;
    uint8_t pt;                /* payload type that flows */
    uint32_t clock_rate;       /* Hz */
    uint8_t mid_id, ast_id;    /* extension ids (0: not negotiated) */
    char mid[17];
    bool nack;                 /* generic NACK negotiated */
    uint32_t remote_ssrc;      /* the answer's a=ssrc (0 if none) */
} bench_track_t;

/* What an answer gives us. */
typedef struct bench_answer {
    char ufrag[257], pwd[257];
    char fp_alg[16];
    uint8_t fp[64];
    size_t fp_len;
    es_dtls_role_t role;       /* ours */
    bench_track_t tracks[2];   /* in offer order; a section without media has pt 0 */
    size_t n_tracks;
    es_addr_pair_t cand[BENCH_MAX_CANDIDATES]; /* UDP candidates, best first; local = ours */
    uint32_t cand_prio[BENCH_MAX_CANDIDATES];
    size_t n_cand;
} bench_answer_t;

/* bench_answer_take: parses the answer text, applies it to offer (es_sdp_answer_apply) and
 * fills *out; local is our socket's address (the pairs' local side). Returns 0 or an ES_E*
 * code with the reason in err. */
int bench_answer_take(es_sdp_local_t *offer, const char *sdp, size_t len,
                      const struct sockaddr *local, socklen_t local_len, bench_answer_t *out,
                      char *err, size_t err_len);

/* bench_session_params: the parameters of a full controlling agent (checks, nominates) that is
 * the answer's DTLS role, with our credentials and the answer's, connect timeout connect_ms and
 * consent timeout 30 s. The strings are borrowed until es_rtc_session_new returns. */
es_rtc_session_params_t bench_session_params(const bench_answer_t *a, const char *ufrag,
                                             const char *pwd, const es_dtls_cert_t *cert,
                                             uint32_t connect_ms, uint64_t now_us);

/* A WHIP/WHEP HTTP exchange: the body (up to 64 KiB) and the Location header. */
typedef struct bench_http {
    CURL *easy;
    struct curl_slist *headers;
    char *body;                /* NUL-terminated; malloc'ed */
    size_t len, cap;
    char location[512];
    char error[CURL_ERROR_SIZE];
} bench_http_t;

/* bench_http_begin: prepares h->easy for a POST of the SDP offer (Content-Type
 * application/sdp, Authorization: Bearer token unless NULL or "") or, with offer NULL, a
 * DELETE of url; timeout_ms bounds the whole exchange. Returns 0 or ES_ENOMEM. */
int bench_http_begin(bench_http_t *h, const char *url, const char *offer, const char *token,
                     long timeout_ms);

/* bench_http_end: frees what bench_http_begin made (NULL-safe fields). */
void bench_http_end(bench_http_t *h);

/* bench_url_resolve: the absolute URL of location (absolute, or a path) against base. */
void bench_url_resolve(const char *base, const char *location, char *out, size_t cap);

#endif
