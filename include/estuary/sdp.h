/* SDP (RFC 8866) for WebRTC offer/answer (RFC 8829, RFC 3264): parses a client's offer into
 * es_sdp_t, intersects it with what Estuary can send or receive, and writes the answer. Sans-IO:
 * text in, structures and text out.
 *
 * Supported: BUNDLE (RFC 9143, required), rtcp-mux (RFC 5761, required), ICE credentials and
 * options at session or media level (RFC 8839), fingerprint and setup (RFC 8122, RFC 5763),
 * rtpmap/fmtp/rtcp-fb, extmap (RFC 8285), ssrc and ssrc-group FID (RFC 5576), msid (RFC 8830),
 * a=candidate lines (for trickle-ice-sdpfrag bodies, RFC 8840). */
#ifndef ESTUARY_SDP_H
#define ESTUARY_SDP_H

#include "estuary/codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ES_SDP_MAX_MEDIA 8       /* m= sections accepted in one offer */
#define ES_SDP_MAX_CODECS 32     /* payload types kept per m= section */
#define ES_SDP_MAX_EXTMAPS 16    /* extmap lines kept per m= section */
#define ES_SDP_MAX_CANDIDATES 16 /* a=candidate lines kept (trickle fragments) */
#define ES_SDP_MAX_TEXT 65536    /* bytes: larger SDP is refused */
#define ES_SDP_MAX_LINE 4096     /* bytes in one line (without CRLF): a longer line is refused */

typedef enum { ES_MEDIA_AUDIO = 0, ES_MEDIA_VIDEO, ES_MEDIA_APPLICATION, ES_MEDIA_UNKNOWN } es_media_kind_t;

/* Direction as written in the SDP (a=sendrecv etc.), from the writer's point of view. */
typedef enum { ES_DIR_SENDRECV = 0, ES_DIR_SENDONLY, ES_DIR_RECVONLY, ES_DIR_INACTIVE } es_sdp_dir_t;

/* a=setup (RFC 4145 §4, RFC 5763 §5). */
typedef enum { ES_SETUP_NONE = 0, ES_SETUP_ACTPASS, ES_SETUP_ACTIVE, ES_SETUP_PASSIVE } es_sdp_setup_t;

/* One payload type of an m= section. */
typedef struct es_sdp_codec {
    uint8_t pt;               /* payload type, 0..127 */
    es_codec_t codec;
    char name[32];            /* encoding name as written */
    uint32_t clock_rate;      /* Hz */
    uint8_t channels;         /* audio channels; 0 when absent (means 1) */
    char fmtp[256];           /* the a=fmtp parameters as written, "" when none */
    int apt;                  /* RTX only: the associated payload type, -1 otherwise */
    bool fb_nack, fb_pli, fb_fir, fb_transport_cc, fb_remb; /* a=rtcp-fb: nack, nack pli,
                                                               ccm fir, transport-cc, goog-remb */
    /* H.264 only (RFC 6184 §8.1): packetization-mode (0 when absent), profile-level-id
     * (0x42001f when absent), level-asymmetry-allowed. */
    uint8_t h264_packetization_mode;
    uint32_t h264_profile_level_id;
    bool h264_level_asymmetry;
    int vp9_profile_id;       /* VP9 only: profile-id (0 when absent) */
} es_sdp_codec_t;

typedef struct es_sdp_extmap {
    uint8_t id;               /* 1..255 */
    char uri[128];
} es_sdp_extmap_t;

typedef struct es_sdp_candidate {
    char foundation[33];
    uint32_t component;
    char transport[8];        /* "udp" or "tcp", lower case */
    uint32_t priority;
    char address[64];         /* as written (IP or mDNS name) */
    uint16_t port;
    char type[8];             /* host, srflx, prflx, relay */
} es_sdp_candidate_t;

typedef struct es_sdp_media {
    es_media_kind_t kind;
    char kind_name[16];       /* "audio", "video", "application", or what was written */
    uint16_t port;            /* 0: the offerer rejected/stopped this section, unless bundle_only */
    bool bundle_only;         /* a=bundle-only in the BUNDLE group with a tagged section (RFC 8843
                                 §6): port 0 but a member, on the tag's transport (its missing
                                 ICE, fingerprint, setup and rtcp-mux are copied from the tag) */
    char proto[32];           /* "UDP/TLS/RTP/SAVPF" etc. */
    char mid[33];             /* "" when absent */
    es_sdp_dir_t dir;
    bool rtcp_mux, rtcp_rsize;
    es_sdp_codec_t codecs[ES_SDP_MAX_CODECS]; /* in m= line order */
    size_t n_codecs;
    es_sdp_extmap_t extmaps[ES_SDP_MAX_EXTMAPS];
    size_t n_extmaps;
    uint32_t ssrc;            /* first a=ssrc of the section (the media SSRC), 0 if none */
    uint32_t rtx_ssrc;        /* second SSRC of "a=ssrc-group:FID media rtx", 0 if none */
    char cname[64];
    char msid[128];           /* "stream-id track-id" from a=msid, "" if none */
    bool simulcast;           /* a=simulcast present (not supported: one layer is used) */
    char ice_ufrag[257], ice_pwd[257]; /* media-level, or session-level copied down */
    char ice_options[64];
    char fingerprint_alg[16]; /* lower case, "sha-256" */
    uint8_t fingerprint[64];
    size_t fingerprint_len;   /* bytes */
    es_sdp_setup_t setup;
} es_sdp_media_t;

typedef struct es_sdp {
    char origin_username[64];
    uint64_t session_id;
    uint64_t session_version;
    bool ice_lite;
    /* BUNDLE group (RFC 9143): the mids listed, in order; n_bundle == 0 when no group. */
    char bundle_mids[ES_SDP_MAX_MEDIA][33];
    size_t n_bundle;
    es_sdp_media_t media[ES_SDP_MAX_MEDIA];
    size_t n_media;
    es_sdp_candidate_t candidates[ES_SDP_MAX_CANDIDATES];
    size_t n_candidates;
    bool end_of_candidates;
    /* Session-level a=ice-ufrag / a=ice-pwd as written, "" when absent. They are also copied
     * into every m= section that has none; a trickle fragment without m= lines (RFC 8840
     * §4.4) carries its credentials only here. */
    char ice_ufrag[257], ice_pwd[257];
} es_sdp_t;

/* es_sdp_parse: parses `len` bytes of SDP text (CRLF or LF line ends). Session-level ICE
 * credentials, fingerprint and setup are copied into every m= section that has none. The
 * structure is large (~60 KB): callers allocate it. Returns 0, or ES_EPROTO with a reason a
 * person can act on in err (e.g. "line 7: a=rtpmap: bad payload type '300'"), ES_E2BIG when
 * the text is over ES_SDP_MAX_TEXT bytes, a line over ES_SDP_MAX_LINE, or more than
 * ES_SDP_MAX_MEDIA m= sections. Payload types past ES_SDP_MAX_CODECS in one m= line, extmaps past
 * ES_SDP_MAX_EXTMAPS and candidates past ES_SDP_MAX_CANDIDATES are dropped (the preferred ones
 * come first); unknown attributes are ignored; rtpmap/fmtp/rtcp-fb for payload types not on the
 * m= line are ignored; "a=rtcp-fb:* ..." applies to every payload type of the section. A
 * session-level a=sendrecv/sendonly/recvonly/inactive is the default of every section. */
int es_sdp_parse(const char *text, size_t len, es_sdp_t *out, char *err, size_t err_len);

/* es_sdp_parse_fragment: parses a trickle-ice-sdpfrag body (RFC 8840 §4.4): session-level and
 * per-m= a=ice-ufrag, a=ice-pwd, a=candidate, a=end-of-candidates. A fragment needs no v=, o=,
 * s= or t= lines. Returns 0 or ES_EPROTO with the reason in err. */
int es_sdp_parse_fragment(const char *text, size_t len, es_sdp_t *out, char *err, size_t err_len);

/* es_sdp_check_webrtc: the checks every WHIP/WHEP offer must pass, with the reason in err:
 * at least one audio or video section, each non-rejected one in a BUNDLE group (aiortc and some
 * GStreamer versions offer no BUNDLE), rtcp-mux, ICE ufrag and pwd, a sha-256 fingerprint, a
 * setup attribute, a DTLS-SRTP proto, a unique mid. A single audio/video section needs no BUNDLE
 * group. Bundled sections may carry different ICE credentials and fingerprints: an initial offer
 * may give each m= section its own transport (RFC 9143 §7.2; aiortc 1.4 does), and the one used
 * is that of the first accepted section of the answer, see es_sdp_local_transport.
 * Returns 0 or ES_EPROTO. */
int es_sdp_check_webrtc(const es_sdp_t *offer, char *err, size_t err_len);

/* es_sdp_h264_compatible: true when an H.264 payload described by `have` may be sent to a
 * receiver that offered `want`: the same packetization-mode and the same profile (profile_idc
 * and the constraint_set bits that define it, RFC 6184 §8.1, so 42e01f and 42001f are both
 * constrained baseline); the level is ignored when the receiver allows level asymmetry. */
bool es_sdp_h264_compatible(const es_sdp_codec_t *have, const es_sdp_codec_t *want);

/* One m= section of a description we write, an answer (es_sdp_answer_init) or an offer
 * (es_sdp_offer_init); after es_sdp_answer_apply, what was negotiated for it. */
typedef struct es_sdp_local_media {
    es_media_kind_t kind;
    char kind_name[16];       /* an answer copies the offer's */
    char proto[32];           /* an answer copies the offer's; an offer says UDP/TLS/RTP/SAVPF */
    char mid[33];
    bool rejected;            /* port 0 and nothing else but the mid (and a=inactive); codecs[0]
                                 then holds the offer's first payload type, written as the m=
                                 line's format */
    bool rtcp_rsize;          /* echo a=rtcp-rsize (RFC 5506) when the offer had it */
    es_sdp_dir_t dir;
    es_sdp_codec_t codecs[ES_SDP_MAX_CODECS]; /* chosen, first is preferred; RTX entries follow */
    size_t n_codecs;
    es_sdp_extmap_t extmaps[ES_SDP_MAX_EXTMAPS];
    size_t n_extmaps;
    uint32_t ssrc;            /* sendonly/sendrecv: our SSRC (a=ssrc with cname and msid), or 0 */
    uint32_t rtx_ssrc;        /* our RTX SSRC (a=ssrc-group:FID), or 0 */
} es_sdp_local_media_t;

/* A description as a whole. Strings are NUL-terminated; candidates are written in order. */
#define ES_SDP_MAX_LOCAL_CANDIDATES 24 /* 8 addresses x (UDP, ICE-TCP port, HTTP port) */

typedef struct es_sdp_local {
    bool offer;               /* an offer: a=setup:actpass; else an answer (setup below) */
    bool ice_lite;            /* a=ice-lite: our answers, and our offers to WebSocket players
                                 (the browser, a full agent, controls); not a relay's offers,
                                 whose full agent checks and nominates (RFC 8445 §6.1.1) */
    uint64_t session_id;
    char ice_ufrag[257], ice_pwd[257];
    char fingerprint[200];    /* "AB:CD:..." upper-case hex of the SHA-256 of our certificate */
    es_sdp_setup_t setup;     /* answers: ES_SETUP_PASSIVE when the offer said actpass or active */
    char cname[64];           /* for a=ssrc cname */
    char msid_stream[64];     /* for a=msid (stream id); the track id is the mid */
    char candidates[ES_SDP_MAX_LOCAL_CANDIDATES][96]; /* "1 1 udp 2130706431 192.0.2.1 8000 typ
                                 host" (after "a=candidate:"), UDP and TCP passive */
    size_t n_candidates;
    es_sdp_local_media_t media[ES_SDP_MAX_MEDIA];
    size_t n_media;
} es_sdp_local_t;

/* What the answerer can do with one kind of media. */
typedef struct es_sdp_caps {
    /* Codecs in preference order. For a publisher (we receive): any of these. For a player (we
     * send): exactly the publisher's codec, as an es_sdp_codec_t describing what it sends
     * (H.264 compared with es_sdp_h264_compatible, VP9 by profile-id). */
    es_sdp_codec_t codecs[4];
    size_t n_codecs;
    bool rtx, nack, pli, fir, transport_cc, remb; /* what to keep of the offer's rtcp-fb / rtx */
} es_sdp_caps_t;

/* es_sdp_answer_init: builds an answer to `offer` (already through es_sdp_check_webrtc) for a
 * receiver (`receive` true: WHIP, we answer recvonly) or a sender (WHEP, we answer sendonly).
 * For each offered m= section: application or unknown kinds are rejected; audio/video take the
 * first codec of caps[kind] that the offer has (the OFFER's payload type number is kept, with
 * its rtx payload type when caps allow), the rtcp-fb the caps allow, and the extmaps Estuary
 * understands (sdes:mid, abs-send-time, transport-wide-cc when caps allow, ssrc-audio-level,
 * video-orientation, playout-delay). A section whose codecs do not intersect (or of a kind caps
 * has no codec for: an audio-only stream's video) is answered inactive inside the BUNDLE group
 * with the offer's first payload type, not rejected: browsers refuse an answer whose rejected
 * section was the group's first. Bundle-only sections (RFC 8843 §6) are answered as members.
 * caps is indexed by es_media_kind_t (audio, video). The caller fills credentials, fingerprint,
 * candidates and SSRCs afterwards. ans->setup is ES_SETUP_PASSIVE (ES_SETUP_ACTIVE only when the
 * offer said passive); session_id is left 0 for the caller. Direction (RFC 3264 §6.1): recvonly
 * for a receiver, sendonly for a sender, inactive when the offer's direction leaves nothing to
 * do (an offer recvonly to a receiver, sendonly to a sender, or inactive). For a receiver an
 * H.264 payload type needs packetization-mode=1; the first usable one in offer order is taken.
 * Returns the number of accepted audio/video sections that are not inactive (0 when nothing
 * intersects; then err says which codecs were offered and which can be used, e.g. "no common
 * video codec: offered H264, VP8; this stream sends VP9", or which direction was offered).
 * Extmaps keep the offer's ids, but an id that an earlier section's accepted extmap gives
 * another URI is dropped (one id means one URI in a BUNDLE, RFC 8843 §9.2; aiortc offers id 2
 * twice). ans->setup is ES_SETUP_ACTIVE when the transport section (es_sdp_local_transport)
 * offered passive, else ES_SETUP_PASSIVE (RFC 5763 §5). */
int es_sdp_answer_init(const es_sdp_t *offer, bool receive, const es_sdp_caps_t caps[2],
                       es_sdp_local_t *ans, char *err, size_t err_len);

/* es_sdp_local_write: the description as SDP text (CRLF line ends; a=ice-lite when ice_lite;
 * a=setup:actpass in an offer; BUNDLE of the accepted mids, rtcp-mux, rtcp-rsize when offered)
 * into out (cap bytes, NUL-terminated).
 * Candidates and a=end-of-candidates are written in every accepted section. Returns the length,
 * ES_E2BIG, or ES_EINVAL when a string the caller filled holds a control character (CR, LF). */
int es_sdp_local_write(const es_sdp_local_t *ans, char *out, size_t cap);

/* es_sdp_local_transport: the index (into ans->media and the offer's media, same order) of the
 * m= section whose transport the BUNDLE group uses: the first accepted one, which the answer's
 * a=group:BUNDLE lists first (RFC 9143 §7.3.1). Take the client's ICE ufrag/pwd and fingerprint
 * from offer->media[index]. Returns -1 when no section is accepted. */
int es_sdp_local_transport(const es_sdp_local_t *ans);

/* What an offer proposes for one kind of media (es_sdp_offer_init). */
typedef struct es_sdp_offer_media {
    es_media_kind_t kind;     /* audio or video */
    es_sdp_dir_t dir;         /* sendonly (we send: a WebSocket player, a relay push) or recvonly
                                 (we receive: a relay pull) */
    es_sdp_caps_t caps;       /* codecs in preference order, complete as they are to be written
                                 (payload type, name, clock rate, channels, fmtp: a stream's
                                 track codec as its publisher negotiated it), and the feedback
                                 to offer */
} es_sdp_offer_media_t;

/* es_sdp_offer_init: an offer (RFC 8829 §5.2) with one m= section per entry of media (n, at most
 * ES_SDP_MAX_MEDIA), mids "0", "1"..., all in one BUNDLE group with rtcp-mux and rtcp-rsize:
 * each caps codec under its own payload type (RTX under the first free dynamic type when
 * caps.rtx, with a=fmtp apt), the rtcp-fb caps allow, and the header extensions Estuary
 * understands (sdes:mid, abs-send-time, transport-wide-cc when caps allow, ssrc-audio-level)
 * with ids 1, 2... . offer->offer is true, ice_lite false (the caller may set it), setup
 * actpass. The caller fills credentials, fingerprint, candidates and SSRCs as for an answer. Returns 0, or ES_EINVAL
 * (no media or more than ES_SDP_MAX_MEDIA, a kind other than audio/video, a section without
 * codecs or with more than 4, two codecs on one payload type). */
int es_sdp_offer_init(const es_sdp_offer_media_t *media, size_t n, es_sdp_local_t *offer);

/* es_sdp_answer_apply: checks the peer's parsed answer to our offer (RFC 3264 §6, RFC 8843 §7.3)
 * and leaves in offer->media what was negotiated: per section, codecs[0] the answer's first
 * payload type among ours (with its RTX when both have one), the answer's rtcp-fb on it, the
 * extmaps the answer kept (its ids), dir our direction given the answer's (ES_DIR_INACTIVE when
 * nothing flows), and rejected when the answer rejected it (port 0 outside the BUNDLE group).
 * Returns the number of sections with media to send or receive, or ES_EPROTO with the reason in
 * err: other m= sections than offered (count, kinds, mids), a payload type or extmap we did not
 * offer, a=setup actpass or missing, no ICE credentials or sha-256 fingerprint on the transport,
 * no rtcp-mux, accepted sections outside the BUNDLE group (when more than one was offered), a
 * BUNDLE group naming a mid we did not offer, every section rejected. The transport is the answer's first
 * accepted section (es_sdp_local_transport of the result). */
int es_sdp_answer_apply(es_sdp_local_t *offer, const es_sdp_t *answer, char *err, size_t err_len);

#endif
