/* SDP for WebRTC offer/answer: the offer parser (RFC 8866 syntax, RFC 8829 §5.8 parsing rules),
 * trickle-ice-sdpfrag bodies (RFC 8840 §4.4), the checks a WHIP/WHEP offer must pass, H.264
 * profile compatibility (RFC 6184 §8.1 and libwebrtc's profile table), and the answer (RFC 8829
 * §5.3, RFC 3264 §6) with BUNDLE (RFC 9143), rtcp-mux (RFC 5761), ICE-lite (RFC 8839) and DTLS
 * setup (RFC 5763 §5).
 *
 * The parser reads hostile text: every field is bounded, every number range-checked, lines are
 * limited to ES_SDP_MAX_LINE bytes, and the error names the line and the offending token. */
#include "estuary/sdp.h"

#include "estuary/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- text slices ------------------------------------------------------------------------- */

typedef struct {
    const char *p;
    size_t n;
} span_t;

/* The next token separated by spaces or tabs; an empty span when none is left. */
static span_t next_token(span_t *s)
{
    while (s->n && (*s->p == ' ' || *s->p == '\t')) s->p++, s->n--;
    span_t t = {s->p, 0};
    while (t.n < s->n && s->p[t.n] != ' ' && s->p[t.n] != '\t') t.n++;
    s->p += t.n;
    s->n -= t.n;
    return t;
}

/* Splits s at the first c: returns the part before and leaves the rest (after c) in s. When c
 * does not occur, the whole of s is returned and s becomes empty. */
static span_t split_at(span_t *s, char c)
{
    const char *hit = s->n ? memchr(s->p, c, s->n) : NULL;
    span_t head = {s->p, hit ? (size_t)(hit - s->p) : s->n};
    size_t skip = hit ? head.n + 1 : head.n;
    s->p += skip;
    s->n -= skip;
    return head;
}

static span_t trim(span_t s)
{
    while (s.n && (*s.p == ' ' || *s.p == '\t')) s.p++, s.n--;
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
    return s;
}

static bool span_eq(span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

static bool span_ieq(span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

/* Decimal digits only (no sign, no spaces), at most `max`. */
static bool span_u64(span_t s, uint64_t max, uint64_t *out)
{
    if (s.n == 0 || s.n > 20) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return false;
        unsigned d = (unsigned)(s.p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (v > max) return false;
    *out = v;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies s into dst (cap bytes with the NUL); false, leaving dst untouched, when it does not fit. */
static bool span_copy(char *dst, size_t cap, span_t s)
{
    if (s.n >= cap) return false;
    memcpy(dst, s.p, s.n);
    dst[s.n] = '\0';
    return true;
}

/* Bounded strlen for fixed arrays that a caller may have filled without a terminator. */
static size_t fixed_len(const char *s, size_t cap)
{
    const char *z = memchr(s, '\0', cap);
    return z ? (size_t)(z - s) : cap;
}

/* ---- parser ------------------------------------------------------------------------------ */

typedef struct {
    es_sdp_t *out;
    char *err;
    size_t err_len;
    unsigned line;
    bool fragment;
    es_sdp_media_t *m;        /* current m= section, NULL at session level */
    bool media_dir_set[ES_SDP_MAX_MEDIA];
    bool bundle_seen;
    /* Session-level values, copied into the m= sections that lack them. */
    char ufrag[257], pwd[257], ice_options[64];
    char fp_alg[16];
    uint8_t fp[64];
    size_t fp_len;
    es_sdp_setup_t setup;
    es_sdp_dir_t dir;
} parser_t;

__attribute__((format(printf, 3, 4))) static int fail(parser_t *p, int code, const char *fmt, ...)
{
    if (p->err && p->err_len) {
        int n = p->line ? snprintf(p->err, p->err_len, "line %u: ", p->line) : 0;
        if (n < 0) n = 0;
        if ((size_t)n < p->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

/* Tokens from the network are quoted in errors, cut to a readable length. */
#define TOK_FMT "'%.*s%s'"
#define TOK_ARG(s) (int)((s).n > 40 ? 40 : (s).n), (s).p, ((s).n > 40 ? "..." : "")

static es_sdp_codec_t *find_codec(es_sdp_media_t *m, unsigned pt)
{
    for (size_t i = 0; i < m->n_codecs; i++)
        if (m->codecs[i].pt == pt) return &m->codecs[i];
    return NULL;
}

/* Parses a payload type field of an attribute; ES_EPROTO with the reason on a bad number. */
static int parse_pt(parser_t *p, const char *attr, span_t s, unsigned *pt)
{
    uint64_t v;
    if (!span_u64(s, 127, &v)) return fail(p, ES_EPROTO, "a=%s: bad payload type " TOK_FMT, attr, TOK_ARG(s));
    *pt = (unsigned)v;
    return 0;
}

static int parse_origin(parser_t *p, span_t v)
{
    span_t user = next_token(&v), id = next_token(&v), ver = next_token(&v);
    span_t net = next_token(&v), at = next_token(&v), addr = next_token(&v);
    if (!addr.n) return fail(p, ES_EPROTO, "o=: expected 6 fields (username sess-id sess-version IN IP4 address)");
    (void)net, (void)at;
    if (!span_copy(p->out->origin_username, sizeof p->out->origin_username, user))
        return fail(p, ES_EPROTO, "o=: username too long");
    if (!span_u64(id, UINT64_MAX, &p->out->session_id))
        return fail(p, ES_EPROTO, "o=: bad session id " TOK_FMT, TOK_ARG(id));
    if (!span_u64(ver, UINT64_MAX, &p->out->session_version))
        return fail(p, ES_EPROTO, "o=: bad session version " TOK_FMT, TOK_ARG(ver));
    return 0;
}

static int parse_media_line(parser_t *p, span_t v)
{
    es_sdp_t *o = p->out;
    if (o->n_media >= ES_SDP_MAX_MEDIA)
        return fail(p, ES_E2BIG, "more than %d m= sections", ES_SDP_MAX_MEDIA);
    es_sdp_media_t *m = &o->media[o->n_media];
    span_t kind = next_token(&v), port = next_token(&v), proto = next_token(&v);
    if (!proto.n) return fail(p, ES_EPROTO, "m=: expected '<media> <port> <proto> <fmt> ...'");
    if (!span_copy(m->kind_name, sizeof m->kind_name, kind))
        return fail(p, ES_EPROTO, "m=: media type " TOK_FMT " too long", TOK_ARG(kind));
    m->kind = span_eq(kind, "audio")         ? ES_MEDIA_AUDIO
              : span_eq(kind, "video")       ? ES_MEDIA_VIDEO
              : span_eq(kind, "application") ? ES_MEDIA_APPLICATION
                                             : ES_MEDIA_UNKNOWN;
    span_t port_num = split_at(&port, '/'); /* "<port>/<number of ports>" */
    uint64_t n;
    if (!span_u64(port_num, 65535, &n)) return fail(p, ES_EPROTO, "m=: bad port " TOK_FMT, TOK_ARG(port_num));
    m->port = (uint16_t)n;
    if (!span_copy(m->proto, sizeof m->proto, proto))
        return fail(p, ES_EPROTO, "m=: proto " TOK_FMT " too long", TOK_ARG(proto));
    bool rtp = strstr(m->proto, "RTP") != NULL;
    size_t formats = 0;
    for (span_t f = next_token(&v); f.n; f = next_token(&v)) {
        formats++;
        if (!rtp) continue; /* "webrtc-datachannel", "5000": not payload types */
        if (!span_u64(f, 127, &n)) return fail(p, ES_EPROTO, "m=: bad payload type " TOK_FMT, TOK_ARG(f));
        /* Payload types past ES_SDP_MAX_CODECS are dropped: the preferred ones come first. */
        if (find_codec(m, (unsigned)n) || m->n_codecs >= ES_SDP_MAX_CODECS) continue;
        es_sdp_codec_t *c = &m->codecs[m->n_codecs++];
        c->pt = (uint8_t)n;
        c->codec = ES_CODEC_OTHER;
        c->apt = -1;
        c->h264_profile_level_id = 0x42001f;
    }
    if (!formats) return fail(p, ES_EPROTO, "m=: no formats");
    o->n_media++;
    p->m = m;
    return 0;
}

/* ice-char (RFC 8839 §5.4): ALPHA / DIGIT / "+" / "/". */
static int parse_ice_cred(parser_t *p, const char *attr, span_t v, char *dst, size_t cap)
{
    v = trim(v);
    if (v.n == 0 || v.n >= cap) return fail(p, ES_EPROTO, "a=%s: length %zu outside 1..%zu", attr, v.n, cap - 1);
    for (size_t i = 0; i < v.n; i++) {
        char c = v.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/'))
            return fail(p, ES_EPROTO, "a=%s: invalid character in " TOK_FMT, attr, TOK_ARG(v));
    }
    span_copy(dst, cap, v);
    return 0;
}

static int parse_fingerprint(parser_t *p, span_t v, char alg[16], uint8_t fp[64], size_t *fp_len)
{
    span_t a = next_token(&v), hex = next_token(&v);
    if (!hex.n) return fail(p, ES_EPROTO, "a=fingerprint: expected '<hash> <hex:hex:...>'");
    if (a.n >= 16) return fail(p, ES_EPROTO, "a=fingerprint: hash " TOK_FMT " unknown", TOK_ARG(a));
    size_t len = 0;
    for (span_t rest = hex; rest.n;) {
        span_t byte = split_at(&rest, ':');
        int hi = byte.n == 2 ? hex_digit(byte.p[0]) : -1, lo = byte.n == 2 ? hex_digit(byte.p[1]) : -1;
        if (hi < 0 || lo < 0 || len >= 64)
            return fail(p, ES_EPROTO, "a=fingerprint: bad hex " TOK_FMT, TOK_ARG(hex));
        fp[len++] = (uint8_t)(hi << 4 | lo);
    }
    if (hex.p[hex.n - 1] == ':') return fail(p, ES_EPROTO, "a=fingerprint: bad hex " TOK_FMT, TOK_ARG(hex));
    for (size_t i = 0; i < a.n; i++) alg[i] = (char)(a.p[i] >= 'A' && a.p[i] <= 'Z' ? a.p[i] + 32 : a.p[i]);
    alg[a.n] = '\0';
    *fp_len = len;
    return 0;
}

static int parse_setup(parser_t *p, span_t v, es_sdp_setup_t *setup)
{
    v = trim(v);
    if (span_eq(v, "actpass")) *setup = ES_SETUP_ACTPASS;
    else if (span_eq(v, "active")) *setup = ES_SETUP_ACTIVE;
    else if (span_eq(v, "passive")) *setup = ES_SETUP_PASSIVE;
    else return fail(p, ES_EPROTO, "a=setup: " TOK_FMT " is not actpass, active or passive", TOK_ARG(v));
    return 0;
}

/* RFC 8839 §5.1: foundation component transport priority address port "typ" type [ext...]. */
static int parse_candidate(parser_t *p, span_t v)
{
    es_sdp_candidate_t c;
    memset(&c, 0, sizeof c);
    span_t f = next_token(&v), comp = next_token(&v), tr = next_token(&v), prio = next_token(&v);
    span_t addr = next_token(&v), port = next_token(&v), typ = next_token(&v), type = next_token(&v);
    if (!type.n || !span_eq(typ, "typ"))
        return fail(p, ES_EPROTO, "a=candidate: expected '<foundation> <component> <transport> <priority> "
                                  "<address> <port> typ <type>'");
    uint64_t n;
    if (!span_copy(c.foundation, sizeof c.foundation, f))
        return fail(p, ES_EPROTO, "a=candidate: foundation " TOK_FMT " too long", TOK_ARG(f));
    if (!span_u64(comp, 256, &n) || n == 0)
        return fail(p, ES_EPROTO, "a=candidate: bad component " TOK_FMT, TOK_ARG(comp));
    c.component = (uint32_t)n;
    if (!span_u64(prio, UINT32_MAX, &n))
        return fail(p, ES_EPROTO, "a=candidate: bad priority " TOK_FMT, TOK_ARG(prio));
    c.priority = (uint32_t)n;
    if (!span_copy(c.address, sizeof c.address, addr))
        return fail(p, ES_EPROTO, "a=candidate: address " TOK_FMT " too long", TOK_ARG(addr));
    if (!span_u64(port, 65535, &n)) return fail(p, ES_EPROTO, "a=candidate: bad port " TOK_FMT, TOK_ARG(port));
    c.port = (uint16_t)n;
    /* Other transports (libwebrtc's "ssltcp") and candidate types are skipped, not refused. */
    if (span_ieq(tr, "udp")) strcpy(c.transport, "udp");
    else if (span_ieq(tr, "tcp")) strcpy(c.transport, "tcp");
    else return 0;
    if (!(span_eq(type, "host") || span_eq(type, "srflx") || span_eq(type, "prflx") || span_eq(type, "relay")))
        return 0;
    span_copy(c.type, sizeof c.type, type);
    if (p->out->n_candidates < ES_SDP_MAX_CANDIDATES) p->out->candidates[p->out->n_candidates++] = c;
    return 0;
}

static int parse_rtpmap(parser_t *p, es_sdp_media_t *m, span_t v)
{
    unsigned pt = 0;
    span_t pts = next_token(&v), enc = next_token(&v);
    int rc = parse_pt(p, "rtpmap", pts, &pt);
    if (rc) return rc;
    if (!enc.n) return fail(p, ES_EPROTO, "a=rtpmap:%u: missing encoding", pt);
    span_t name = split_at(&enc, '/'), rate = split_at(&enc, '/'), ch = enc;
    uint64_t r, c = 0;
    if (!name.n || name.n >= sizeof m->codecs[0].name)
        return fail(p, ES_EPROTO, "a=rtpmap:%u: bad encoding name " TOK_FMT, pt, TOK_ARG(name));
    if (!span_u64(rate, UINT32_MAX, &r) || r == 0)
        return fail(p, ES_EPROTO, "a=rtpmap:%u: bad clock rate " TOK_FMT, pt, TOK_ARG(rate));
    if (ch.n && (!span_u64(ch, 255, &c) || c == 0))
        return fail(p, ES_EPROTO, "a=rtpmap:%u: bad channel count " TOK_FMT, pt, TOK_ARG(ch));
    es_sdp_codec_t *codec = find_codec(m, pt);
    if (!codec) return 0; /* not in the m= line: ignored */
    span_copy(codec->name, sizeof codec->name, name);
    codec->codec = es_codec_from_name(codec->name);
    codec->clock_rate = (uint32_t)r;
    codec->channels = (uint8_t)c;
    return 0;
}

/* The parameters are read whatever the codec (Firefox writes a=fmtp before a=rtpmap); the ones
 * that do not apply to the codec are reset when the section ends. */
static int parse_fmtp(parser_t *p, es_sdp_media_t *m, span_t v)
{
    unsigned pt = 0;
    span_t pts = next_token(&v);
    int rc = parse_pt(p, "fmtp", pts, &pt);
    if (rc) return rc;
    span_t params = trim(v);
    es_sdp_codec_t scratch, *c = find_codec(m, pt);
    if (!c) c = &scratch; /* still validated, then dropped */
    if (params.n >= sizeof c->fmtp) return fail(p, ES_EPROTO, "a=fmtp:%u: parameters longer than %zu bytes", pt, sizeof c->fmtp - 1);
    span_copy(c->fmtp, sizeof c->fmtp, params);
    for (span_t rest = params; rest.n;) {
        span_t kv = split_at(&rest, ';');
        span_t key = trim(split_at(&kv, '=')), val = trim(kv);
        uint64_t n;
        if (span_ieq(key, "packetization-mode")) {
            if (!span_u64(val, 2, &n)) return fail(p, ES_EPROTO, "a=fmtp:%u: bad packetization-mode " TOK_FMT, pt, TOK_ARG(val));
            c->h264_packetization_mode = (uint8_t)n;
        } else if (span_ieq(key, "profile-level-id")) {
            uint32_t id = 0;
            bool ok = val.n == 6;
            for (size_t i = 0; ok && i < val.n; i++) {
                int d = hex_digit(val.p[i]);
                ok = d >= 0;
                id = id << 4 | (uint32_t)(ok ? d : 0);
            }
            if (!ok) return fail(p, ES_EPROTO, "a=fmtp:%u: bad profile-level-id " TOK_FMT, pt, TOK_ARG(val));
            c->h264_profile_level_id = id;
        } else if (span_ieq(key, "level-asymmetry-allowed")) {
            if (!span_u64(val, 1, &n)) return fail(p, ES_EPROTO, "a=fmtp:%u: bad level-asymmetry-allowed " TOK_FMT, pt, TOK_ARG(val));
            c->h264_level_asymmetry = n == 1;
        } else if (span_ieq(key, "profile-id")) {
            if (!span_u64(val, 3, &n)) return fail(p, ES_EPROTO, "a=fmtp:%u: bad profile-id " TOK_FMT, pt, TOK_ARG(val));
            c->vp9_profile_id = (int)n;
        } else if (span_ieq(key, "apt")) {
            if (!span_u64(val, 127, &n)) return fail(p, ES_EPROTO, "a=fmtp:%u: bad apt " TOK_FMT, pt, TOK_ARG(val));
            c->apt = (int)n;
        }
    }
    return 0;
}

static void apply_fb(es_sdp_codec_t *c, span_t type, span_t param)
{
    if (span_eq(type, "nack") && !param.n) c->fb_nack = true;
    else if (span_eq(type, "nack") && span_eq(param, "pli")) c->fb_pli = true;
    else if (span_eq(type, "ccm") && span_eq(param, "fir")) c->fb_fir = true;
    else if (span_eq(type, "transport-cc")) c->fb_transport_cc = true;
    else if (span_eq(type, "goog-remb")) c->fb_remb = true;
}

static int parse_rtcp_fb(parser_t *p, es_sdp_media_t *m, span_t v)
{
    span_t pts = next_token(&v), type = next_token(&v), param = next_token(&v);
    if (!type.n) return fail(p, ES_EPROTO, "a=rtcp-fb: expected '<pt> <type> [<param>]'");
    if (span_eq(pts, "*")) { /* RFC 4585 §4.2: every payload type of the section */
        for (size_t i = 0; i < m->n_codecs; i++) apply_fb(&m->codecs[i], type, param);
        return 0;
    }
    unsigned pt = 0;
    int rc = parse_pt(p, "rtcp-fb", pts, &pt);
    if (rc) return rc;
    es_sdp_codec_t *c = find_codec(m, pt);
    if (c) apply_fb(c, type, param);
    return 0;
}

/* RFC 8285 §8: "a=extmap:<id>[/<direction>] <uri> [<attributes>]". */
static int parse_extmap(parser_t *p, es_sdp_media_t *m, span_t v)
{
    span_t idd = next_token(&v), uri = next_token(&v);
    span_t id = split_at(&idd, '/');
    uint64_t n;
    if (!span_u64(id, 255, &n) || n == 0) return fail(p, ES_EPROTO, "a=extmap: bad id " TOK_FMT, TOK_ARG(id));
    if (!uri.n) return fail(p, ES_EPROTO, "a=extmap:%u: missing URI", (unsigned)n);
    for (size_t i = 0; i < m->n_extmaps; i++)
        if (m->extmaps[i].id == n) return fail(p, ES_EPROTO, "a=extmap: id %u used twice", (unsigned)n);
    if (m->n_extmaps >= ES_SDP_MAX_EXTMAPS || uri.n >= sizeof m->extmaps[0].uri) return 0; /* unknowable: dropped */
    es_sdp_extmap_t *e = &m->extmaps[m->n_extmaps++];
    e->id = (uint8_t)n;
    span_copy(e->uri, sizeof e->uri, uri);
    return 0;
}

/* RFC 5576: "a=ssrc:<ssrc> <attribute>[:<value>]" and "a=ssrc-group:FID <media> <rtx>". */
static int parse_ssrc(parser_t *p, es_sdp_media_t *m, span_t v)
{
    span_t id = next_token(&v);
    uint64_t ssrc;
    if (!span_u64(id, UINT32_MAX, &ssrc)) return fail(p, ES_EPROTO, "a=ssrc: bad SSRC " TOK_FMT, TOK_ARG(id));
    if (!m->ssrc) m->ssrc = (uint32_t)ssrc;
    if (ssrc != m->ssrc) return 0; /* the RTX or another layer's SSRC */
    span_t rest = trim(v), attr = split_at(&rest, ':');
    if (span_eq(attr, "cname") && !m->cname[0]) span_copy(m->cname, sizeof m->cname, trim(rest));
    else if (span_eq(attr, "msid") && !m->msid[0]) span_copy(m->msid, sizeof m->msid, trim(rest));
    return 0;
}

static int parse_ssrc_group(parser_t *p, es_sdp_media_t *m, span_t v)
{
    span_t sem = next_token(&v), a = next_token(&v), b = next_token(&v);
    if (!span_eq(sem, "FID") || m->rtx_ssrc) return 0; /* SIM, FEC-FR: not used */
    uint64_t x, y;
    if (!span_u64(a, UINT32_MAX, &x) || !span_u64(b, UINT32_MAX, &y))
        return fail(p, ES_EPROTO, "a=ssrc-group:FID: expected two SSRCs");
    m->ssrc = (uint32_t)x;
    m->rtx_ssrc = (uint32_t)y;
    return 0;
}

static int parse_group(parser_t *p, span_t v)
{
    es_sdp_t *o = p->out;
    span_t sem = next_token(&v);
    if (!span_eq(sem, "BUNDLE") || p->bundle_seen) return 0; /* LS, FID, a second BUNDLE: ignored */
    p->bundle_seen = true;
    for (span_t mid = next_token(&v); mid.n; mid = next_token(&v)) {
        if (o->n_bundle >= ES_SDP_MAX_MEDIA)
            return fail(p, ES_E2BIG, "a=group:BUNDLE: more than %d mids", ES_SDP_MAX_MEDIA);
        if (!span_copy(o->bundle_mids[o->n_bundle], sizeof o->bundle_mids[0], mid))
            return fail(p, ES_EPROTO, "a=group:BUNDLE: mid " TOK_FMT " too long", TOK_ARG(mid));
        o->n_bundle++;
    }
    return 0;
}

static bool parse_dir(span_t name, es_sdp_dir_t *dir)
{
    if (span_eq(name, "sendrecv")) *dir = ES_DIR_SENDRECV;
    else if (span_eq(name, "sendonly")) *dir = ES_DIR_SENDONLY;
    else if (span_eq(name, "recvonly")) *dir = ES_DIR_RECVONLY;
    else if (span_eq(name, "inactive")) *dir = ES_DIR_INACTIVE;
    else return false;
    return true;
}

static int parse_attribute(parser_t *p, span_t v)
{
    span_t val = v, name = split_at(&val, ':');
    es_sdp_media_t *m = p->m;
    es_sdp_dir_t dir;
    if (parse_dir(name, &dir)) {
        if (m) {
            m->dir = dir;
            p->media_dir_set[m - p->out->media] = true;
        } else {
            p->dir = dir;
        }
        return 0;
    }
    if (span_eq(name, "ice-ufrag")) return parse_ice_cred(p, "ice-ufrag", val, m ? m->ice_ufrag : p->ufrag, 257);
    if (span_eq(name, "ice-pwd")) return parse_ice_cred(p, "ice-pwd", val, m ? m->ice_pwd : p->pwd, 257);
    if (span_eq(name, "ice-options")) {
        span_copy(m ? m->ice_options : p->ice_options, 64, trim(val)); /* informational: kept when it fits */
        return 0;
    }
    if (span_eq(name, "fingerprint"))
        return m ? parse_fingerprint(p, val, m->fingerprint_alg, m->fingerprint, &m->fingerprint_len)
                 : parse_fingerprint(p, val, p->fp_alg, p->fp, &p->fp_len);
    if (span_eq(name, "setup")) return parse_setup(p, val, m ? &m->setup : &p->setup);
    if (span_eq(name, "candidate")) return parse_candidate(p, val);
    if (span_eq(name, "end-of-candidates")) {
        p->out->end_of_candidates = true;
        return 0;
    }
    if (span_eq(name, "ice-lite")) {
        p->out->ice_lite = true;
        return 0;
    }
    if (span_eq(name, "group")) return parse_group(p, val);
    if (!m) return 0; /* other session-level attributes: ignored */
    if (span_eq(name, "mid")) {
        val = trim(val);
        if (!val.n || val.n >= sizeof m->mid) return fail(p, ES_EPROTO, "a=mid: length %zu outside 1..32", val.n);
        if (memchr(val.p, ' ', val.n) || memchr(val.p, '\t', val.n))
            return fail(p, ES_EPROTO, "a=mid: " TOK_FMT " contains a space", TOK_ARG(val));
        span_copy(m->mid, sizeof m->mid, val);
        return 0;
    }
    if (span_eq(name, "rtcp-mux")) m->rtcp_mux = true;
    else if (span_eq(name, "bundle-only")) m->bundle_only = true;
    else if (span_eq(name, "rtcp-rsize")) m->rtcp_rsize = true;
    else if (span_eq(name, "simulcast")) m->simulcast = true;
    else if (span_eq(name, "msid")) span_copy(m->msid, sizeof m->msid, trim(val)); /* kept when it fits */
    if (span_eq(name, "rtpmap")) return parse_rtpmap(p, m, val);
    if (span_eq(name, "fmtp")) return parse_fmtp(p, m, val);
    if (span_eq(name, "rtcp-fb")) return parse_rtcp_fb(p, m, val);
    if (span_eq(name, "extmap")) return parse_extmap(p, m, val);
    if (span_eq(name, "ssrc")) return parse_ssrc(p, m, val);
    if (span_eq(name, "ssrc-group")) return parse_ssrc_group(p, m, val);
    return 0; /* unknown attributes are ignored (RFC 8866 §5.13) */
}

static void finish(parser_t *p)
{
    es_sdp_t *o = p->out;
    memcpy(o->ice_ufrag, p->ufrag, sizeof o->ice_ufrag);
    memcpy(o->ice_pwd, p->pwd, sizeof o->ice_pwd);
    for (size_t i = 0; i < o->n_media; i++) {
        es_sdp_media_t *m = &o->media[i];
        /* OBS (libdatachannel) and Firefox put ICE credentials, fingerprint and setup at session
         * level; RFC 8866 makes them defaults for every m= section. */
        if (!m->ice_ufrag[0]) memcpy(m->ice_ufrag, p->ufrag, sizeof m->ice_ufrag);
        if (!m->ice_pwd[0]) memcpy(m->ice_pwd, p->pwd, sizeof m->ice_pwd);
        if (!m->ice_options[0]) memcpy(m->ice_options, p->ice_options, sizeof m->ice_options);
        if (!m->fingerprint_len && p->fp_len) {
            memcpy(m->fingerprint_alg, p->fp_alg, sizeof m->fingerprint_alg);
            memcpy(m->fingerprint, p->fp, sizeof m->fingerprint);
            m->fingerprint_len = p->fp_len;
        }
        if (m->setup == ES_SETUP_NONE) m->setup = p->setup;
        if (!p->media_dir_set[i]) m->dir = p->dir;
        for (size_t k = 0; k < m->n_codecs; k++) {
            es_sdp_codec_t *c = &m->codecs[k];
            if (c->codec != ES_CODEC_RTX) c->apt = -1;
            if (c->codec != ES_CODEC_VP9) c->vp9_profile_id = 0;
        }
    }
    /* RFC 8843 §6, §7.5.3: a bundle-only section (port 0, a=bundle-only) is a member of the
     * BUNDLE group on the transport of the group's tagged section (its first mid with a port;
     * Firefox and GStreamer with max-bundle). It may omit the transport attributes: they are the
     * tag's. Outside a BUNDLE group a=bundle-only means nothing and port 0 rejects the section. */
    const es_sdp_media_t *tag = NULL;
    for (size_t b = 0; b < o->n_bundle && !tag; b++)
        for (size_t i = 0; i < o->n_media && !tag; i++)
            if (o->media[i].port && !strncmp(o->media[i].mid, o->bundle_mids[b], sizeof o->media[i].mid))
                tag = &o->media[i];
    for (size_t i = 0; i < o->n_media; i++) {
        es_sdp_media_t *m = &o->media[i];
        if (!m->bundle_only) continue;
        bool in = false;
        for (size_t b = 0; b < o->n_bundle && m->mid[0]; b++)
            in |= !strncmp(o->bundle_mids[b], m->mid, sizeof m->mid);
        if (m->port || !in || !tag) {
            m->bundle_only = m->port != 0 && in; /* "bundle-only" with a port: just bundled */
            continue;
        }
        if (!m->ice_ufrag[0]) memcpy(m->ice_ufrag, tag->ice_ufrag, sizeof m->ice_ufrag);
        if (!m->ice_pwd[0]) memcpy(m->ice_pwd, tag->ice_pwd, sizeof m->ice_pwd);
        if (!m->fingerprint_len) {
            memcpy(m->fingerprint_alg, tag->fingerprint_alg, sizeof m->fingerprint_alg);
            memcpy(m->fingerprint, tag->fingerprint, sizeof m->fingerprint);
            m->fingerprint_len = tag->fingerprint_len;
        }
        if (m->setup == ES_SETUP_NONE) m->setup = tag->setup;
        m->rtcp_mux |= tag->rtcp_mux;
    }
}

static int parse_text(const char *text, size_t len, es_sdp_t *out, char *err, size_t err_len, bool fragment)
{
    parser_t p;
    memset(&p, 0, sizeof p);
    p.out = out;
    p.err = err;
    p.err_len = err_len;
    p.fragment = fragment;
    if (err && err_len) err[0] = '\0';
    if (!out) return fail(&p, ES_EINVAL, "no output structure");
    memset(out, 0, sizeof *out);
    if (!text && len) return fail(&p, ES_EINVAL, "no text");
    if (len > ES_SDP_MAX_TEXT) return fail(&p, ES_E2BIG, "SDP of %zu bytes is over the limit of %d", len, ES_SDP_MAX_TEXT);
    size_t pos = 0;
    bool seen_v = false;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        span_t line = {text + pos, end - pos};
        pos = nl ? end + 1 : len;
        p.line++;
        if (line.n && line.p[line.n - 1] == '\r') line.n--;
        if (line.n > ES_SDP_MAX_LINE) return fail(&p, ES_E2BIG, "line longer than %d bytes", ES_SDP_MAX_LINE);
        if (line.n == 0) continue; /* blank lines (a trailing one is common): skipped */
        for (size_t i = 0; i < line.n; i++)
            if ((unsigned char)line.p[i] < 0x20 && line.p[i] != '\t')
                return fail(&p, ES_EPROTO, "control character 0x%02x", (unsigned)(unsigned char)line.p[i]);
        if (line.n < 2 || line.p[1] != '=' || line.p[0] < 'a' || line.p[0] > 'z')
            return fail(&p, ES_EPROTO, "expected '<type>=<value>', got " TOK_FMT, TOK_ARG(line));
        char type = line.p[0];
        span_t v = {line.p + 2, line.n - 2};
        if (!seen_v && !fragment && type != 'v') return fail(&p, ES_EPROTO, "the SDP must start with v=0");
        int rc = 0;
        switch (type) {
        case 'v':
            if (!span_eq(v, "0")) return fail(&p, ES_EPROTO, "unsupported version " TOK_FMT, TOK_ARG(v));
            if (seen_v) return fail(&p, ES_EPROTO, "second v= line");
            seen_v = true;
            break;
        case 'o': rc = p.m ? 0 : parse_origin(&p, v); break;
        case 'm': rc = parse_media_line(&p, v); break;
        case 'a': rc = parse_attribute(&p, v); break;
        default: break; /* s= i= u= e= p= c= b= t= r= z= k=: nothing WebRTC needs */
        }
        if (rc) return rc;
    }
    if (!seen_v && !fragment) return fail(&p, ES_EPROTO, "empty SDP (no v= line)");
    p.line = 0;
    finish(&p);
    return 0;
}

int es_sdp_parse(const char *text, size_t len, es_sdp_t *out, char *err, size_t err_len)
{
    return parse_text(text, len, out, err, err_len, false);
}

int es_sdp_parse_fragment(const char *text, size_t len, es_sdp_t *out, char *err, size_t err_len)
{
    return parse_text(text, len, out, err, err_len, true);
}

/* ---- checks ------------------------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static int check_fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return ES_EPROTO;
}

/* An audio or video section the offerer wants: a port, or bundle-only in the BUNDLE group. */
static bool is_av(const es_sdp_media_t *m)
{
    return (m->kind == ES_MEDIA_AUDIO || m->kind == ES_MEDIA_VIDEO) && (m->port != 0 || m->bundle_only);
}

static bool dtls_srtp_proto(const char *proto)
{
    static const char *const ok[] = {"UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP", "TCP/DTLS/RTP/SAVPF",
                                     "TCP/TLS/RTP/SAVPF", "RTP/SAVPF"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(proto, ok[i])) return true;
    return false;
}

int es_sdp_check_webrtc(const es_sdp_t *offer, char *err, size_t err_len)
{
    if (err && err_len) err[0] = '\0';
    if (!offer) return check_fail(err, err_len, "no offer");
    size_t av = 0;
    for (size_t i = 0; i < offer->n_media && i < ES_SDP_MAX_MEDIA; i++) av += is_av(&offer->media[i]);
    if (!av) return check_fail(err, err_len, "the offer has no audio or video section");
    if (av > 1 && offer->n_bundle == 0)
        return check_fail(err, err_len,
                          "the offer has %zu audio/video sections but no a=group:BUNDLE; Estuary needs "
                          "BUNDLE (RFC 9143) to carry them on one transport",
                          av);
    for (size_t i = 0; i < offer->n_media && i < ES_SDP_MAX_MEDIA; i++) {
        const es_sdp_media_t *m = &offer->media[i];
        if (!is_av(m)) continue;
        char where[128];
        snprintf(where, sizeof where, "m= section %zu (%s%s%.32s)", i, m->kind_name, m->mid[0] ? ", mid " : "",
                 m->mid);
        if (!dtls_srtp_proto(m->proto))
            return check_fail(err, err_len, "%s: proto '%s' is not DTLS-SRTP (UDP/TLS/RTP/SAVPF)", where, m->proto);
        if (!m->mid[0]) return check_fail(err, err_len, "%s: no a=mid", where);
        for (size_t k = 0; k < i; k++)
            if (!strncmp(offer->media[k].mid, m->mid, sizeof m->mid))
                return check_fail(err, err_len, "%s: mid used by m= section %zu too", where, k);
        if (offer->n_bundle) {
            bool in = false;
            for (size_t k = 0; k < offer->n_bundle && k < ES_SDP_MAX_MEDIA; k++)
                in |= !strncmp(offer->bundle_mids[k], m->mid, sizeof m->mid);
            if (!in) return check_fail(err, err_len, "%s is not in the BUNDLE group", where);
        }
        if (!m->rtcp_mux) return check_fail(err, err_len, "%s: no a=rtcp-mux (RTCP multiplexing, RFC 5761, is required)", where);
        if (!m->ice_ufrag[0] || !m->ice_pwd[0]) return check_fail(err, err_len, "%s: no a=ice-ufrag or a=ice-pwd", where);
        if (m->fingerprint_len == 0) return check_fail(err, err_len, "%s: no a=fingerprint", where);
        if (strcmp(m->fingerprint_alg, "sha-256") || m->fingerprint_len != 32)
            return check_fail(err, err_len, "%s: a=fingerprint is not a sha-256 of 32 bytes", where);
        if (m->setup == ES_SETUP_NONE) return check_fail(err, err_len, "%s: no a=setup", where);
        if (m->n_codecs == 0) return check_fail(err, err_len, "%s: no payload types", where);
    }
    return 0;
}

int es_sdp_local_transport(const es_sdp_local_t *ans)
{
    for (size_t i = 0; ans && i < ans->n_media && i < ES_SDP_MAX_MEDIA; i++)
        if (!ans->media[i].rejected) return (int)i;
    return -1;
}

/* ---- H.264 profiles ---------------------------------------------------------------------- */

typedef enum {
    H264_UNKNOWN = 0,
    H264_CONSTRAINED_BASELINE,
    H264_BASELINE,
    H264_MAIN,
    H264_CONSTRAINED_HIGH,
    H264_HIGH,
    H264_PREDICTIVE_HIGH_444,
} h264_profile_t;

/* profile_idc and the profile_iop bits that identify a profile: the same table libwebrtc uses
 * (api/video_codecs/h264_profile_level_id.cc), from RFC 6184 §8.1 and H.264 Annex A. `mask`
 * selects the bits that matter, `value` what they must be. Order matters: the first match wins. */
static const struct {
    uint8_t idc, mask, value;
    h264_profile_t profile;
} h264_profiles[] = {
    {0x42, 0x4f, 0x40, H264_CONSTRAINED_BASELINE}, /* x1xx0000 */
    {0x4d, 0x8f, 0x80, H264_CONSTRAINED_BASELINE}, /* 1xxx0000 */
    {0x58, 0xcf, 0xc0, H264_CONSTRAINED_BASELINE}, /* 11xx0000 */
    {0x42, 0x4f, 0x00, H264_BASELINE},             /* x0xx0000 */
    {0x58, 0xcf, 0x80, H264_BASELINE},             /* 10xx0000 */
    {0x4d, 0xaf, 0x00, H264_MAIN},                 /* 0x0x0000 */
    {0x64, 0xff, 0x00, H264_HIGH},                 /* 00000000 */
    {0x64, 0xff, 0x0c, H264_CONSTRAINED_HIGH},     /* 00001100 */
    {0xf4, 0xff, 0x00, H264_PREDICTIVE_HIGH_444},  /* 00000000 */
};

static h264_profile_t h264_profile(uint32_t plid)
{
    uint8_t idc = (uint8_t)(plid >> 16), iop = (uint8_t)(plid >> 8);
    for (size_t i = 0; i < sizeof h264_profiles / sizeof h264_profiles[0]; i++)
        if (h264_profiles[i].idc == idc && (iop & h264_profiles[i].mask) == h264_profiles[i].value)
            return h264_profiles[i].profile;
    return H264_UNKNOWN;
}

/* level_idc on a scale where level 1b (level_idc 11 with constraint_set3 in the Baseline, Main
 * and Extended profiles, RFC 6184 §8.1) sits between 1 and 1.1. */
static unsigned h264_level_rank(uint32_t plid)
{
    uint8_t idc = (uint8_t)(plid >> 16), iop = (uint8_t)(plid >> 8), level = (uint8_t)plid;
    if (level == 11 && (iop & 0x10) && (idc == 0x42 || idc == 0x4d || idc == 0x58)) return 21;
    if (level == 9) return 21; /* level 1b in the High profiles */
    return 2u * level;
}

bool es_sdp_h264_compatible(const es_sdp_codec_t *have, const es_sdp_codec_t *want)
{
    if (!have || !want || have->codec != ES_CODEC_H264 || want->codec != ES_CODEC_H264) return false;
    if (have->h264_packetization_mode != want->h264_packetization_mode) return false;
    h264_profile_t ph = h264_profile(have->h264_profile_level_id), pw = h264_profile(want->h264_profile_level_id);
    if (ph == H264_UNKNOWN || ph != pw) return false;
    if (want->h264_level_asymmetry) return true;
    return h264_level_rank(have->h264_profile_level_id) <= h264_level_rank(want->h264_profile_level_id);
}

/* ---- answer ------------------------------------------------------------------------------ */

static const char *const kept_extmaps[] = {
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "urn:3gpp:video-orientation",
    "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
};
#define TWCC_URI_INDEX 2

/* Whether an offered codec can be used with a codec of the caps: for a receiver any H.264 with
 * packetization-mode=1 (what Estuary depacketizes), for a sender one the receiver can decode. */
static bool codec_usable(const es_sdp_codec_t *cap, const es_sdp_codec_t *off, bool receive)
{
    if (cap->codec != off->codec || cap->codec == ES_CODEC_OTHER || cap->codec == ES_CODEC_RTX ||
        cap->codec == ES_CODEC_NONE)
        return false;
    if (off->codec == ES_CODEC_H264)
        return receive ? off->h264_packetization_mode == 1 : es_sdp_h264_compatible(cap, off);
    if (off->codec == ES_CODEC_VP9) return cap->vp9_profile_id == off->vp9_profile_id;
    return true;
}

static void keep_feedback(es_sdp_codec_t *c, const es_sdp_caps_t *caps)
{
    c->fb_nack &= caps->nack;
    c->fb_pli &= caps->pli;
    c->fb_fir &= caps->fir;
    c->fb_transport_cc &= caps->transport_cc;
    c->fb_remb &= caps->remb;
}

/* Appends to err, separating entries with "; ". */
__attribute__((format(printf, 3, 4))) static void err_append(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len) return;
    size_t n = strnlen(err, err_len);
    if (n + 1 >= err_len) return;
    if (n) {
        snprintf(err + n, err_len - n, "; ");
        n = strnlen(err, err_len);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, err_len - n, fmt, ap);
    va_end(ap);
}

/* "H264, VP8, AV1": the offered encodings by name, once each, repair and FEC formats left out. */
static void offered_names(const es_sdp_media_t *m, char *out, size_t cap)
{
    out[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < m->n_codecs && i < ES_SDP_MAX_CODECS; i++) {
        const char *name = m->codecs[i].name;
        if (!name[0] || !strcasecmp(name, "rtx") || !strcasecmp(name, "red") || !strcasecmp(name, "ulpfec") ||
            !strncasecmp(name, "flexfec", 7))
            continue;
        bool dup = false;
        for (size_t k = 0; k < i; k++) dup |= !strcasecmp(m->codecs[k].name, name);
        if (dup) continue;
        int w = snprintf(out + used, cap - used, "%s%.31s", used ? ", " : "", name);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
    if (!used) snprintf(out, cap, "nothing usable");
}

static void caps_names(const es_sdp_caps_t *caps, char *out, size_t cap)
{
    out[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < caps->n_codecs && i < 4; i++) {
        const es_sdp_codec_t *c = &caps->codecs[i];
        char extra[48] = "";
        if (c->codec == ES_CODEC_H264)
            snprintf(extra, sizeof extra, " %06x packetization-mode=%u", (unsigned)c->h264_profile_level_id & 0xffffff,
                     c->h264_packetization_mode);
        else if (c->codec == ES_CODEC_VP9)
            snprintf(extra, sizeof extra, " profile-id=%d", c->vp9_profile_id);
        int w = snprintf(out + used, cap - used, "%s%s%s", used ? ", " : "", es_codec_name(c->codec), extra);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
    if (!used) snprintf(out, cap, "none");
}

static const char *dir_name(es_sdp_dir_t d)
{
    switch (d) {
    case ES_DIR_SENDONLY: return "sendonly";
    case ES_DIR_RECVONLY: return "recvonly";
    case ES_DIR_INACTIVE: return "inactive";
    default: return "sendrecv";
    }
}

int es_sdp_answer_init(const es_sdp_t *offer, bool receive, const es_sdp_caps_t caps[2], es_sdp_local_t *ans,
                       char *err, size_t err_len)
{
    if (err && err_len) err[0] = '\0';
    if (!offer || !caps || !ans) return ES_EINVAL;
    memset(ans, 0, sizeof *ans);
    ans->ice_lite = true; /* Estuary answers as an ICE-lite server (RFC 8445 §2.5) */
    ans->n_media = offer->n_media < ES_SDP_MAX_MEDIA ? offer->n_media : ES_SDP_MAX_MEDIA;
    const char *uri_of_id[256] = {0}; /* extmap id -> URI accepted so far, across sections */
    int active = 0;
    for (size_t i = 0; i < ans->n_media; i++) {
        const es_sdp_media_t *m = &offer->media[i];
        es_sdp_local_media_t *a = &ans->media[i];
        a->kind = m->kind;
        memcpy(a->kind_name, m->kind_name, sizeof a->kind_name);
        memcpy(a->proto, m->proto, sizeof a->proto);
        memcpy(a->mid, m->mid, sizeof a->mid);
        a->kind_name[sizeof a->kind_name - 1] = a->proto[sizeof a->proto - 1] = a->mid[sizeof a->mid - 1] = '\0';
        a->rejected = true;
        a->dir = ES_DIR_INACTIVE;
        /* A rejected RTP section still needs a format on its m= line: the offer's first. */
        if (m->n_codecs) {
            a->codecs[0] = m->codecs[0];
            a->n_codecs = 1;
        }
        if (!is_av(m)) continue;
        const es_sdp_caps_t *cap = &caps[m->kind];
        const es_sdp_codec_t *chosen = NULL;
        for (size_t c = 0; c < cap->n_codecs && c < 4 && !chosen; c++)
            for (size_t k = 0; k < m->n_codecs && k < ES_SDP_MAX_CODECS && !chosen; k++)
                if (codec_usable(&cap->codecs[c], &m->codecs[k], receive)) chosen = &m->codecs[k];
        a->rejected = false;
        a->rtcp_rsize = m->rtcp_rsize;
        if (!chosen) {
            /* Accepted but inactive, inside the BUNDLE group (RFC 3264 §6, RFC 8843 §7.3): a
             * stream without this kind (audio-only, video-only) or a codec we cannot take. Port
             * 0 here would take the section out of the group, and Chromium then refuses the
             * whole answer ("Failed to setup RTCP mux") when it was the group's first. */
            char offered[160], usable[160];
            offered_names(m, offered, sizeof offered);
            caps_names(cap, usable, sizeof usable);
            if (cap->n_codecs)
                err_append(err, err_len, "no common %s codec: offered %s; %s %s", m->kind_name,
                           offered, receive ? "Estuary accepts" : "this stream sends", usable);
            else
                err_append(err, err_len, "no %s: %s", m->kind_name,
                           receive ? "Estuary takes none" : "this stream has none");
            a->codecs[0].fb_nack = a->codecs[0].fb_pli = a->codecs[0].fb_fir = false;
            a->codecs[0].fb_transport_cc = a->codecs[0].fb_remb = false;
            continue;
        }
        a->rtcp_rsize = m->rtcp_rsize;
        /* A publisher that offers H.264 Baseline (42001f, libwebrtc lists it first) and
         * Constrained Baseline (42e01f) sends the same constrained bitstream for both; answering
         * 42e01f lets every player take it (Firefox, Safari and GStreamer offer no 42001f). */
        if (receive && chosen->codec == ES_CODEC_H264 &&
            h264_profile(chosen->h264_profile_level_id) == H264_BASELINE)
            for (size_t k = 0; k < m->n_codecs && k < ES_SDP_MAX_CODECS; k++)
                if (m->codecs[k].codec == ES_CODEC_H264 && m->codecs[k].h264_packetization_mode == 1 &&
                    h264_profile(m->codecs[k].h264_profile_level_id) == H264_CONSTRAINED_BASELINE) {
                    chosen = &m->codecs[k];
                    break;
                }
        a->codecs[0] = *chosen;
        keep_feedback(&a->codecs[0], cap);
        a->n_codecs = 1;
        for (size_t k = 0; cap->rtx && k < m->n_codecs && k < ES_SDP_MAX_CODECS; k++) {
            const es_sdp_codec_t *r = &m->codecs[k];
            if (r->codec == ES_CODEC_RTX && r->apt == chosen->pt) {
                a->codecs[1] = *r;
                a->codecs[1].fb_nack = a->codecs[1].fb_pli = a->codecs[1].fb_fir = false;
                a->codecs[1].fb_transport_cc = a->codecs[1].fb_remb = false;
                a->n_codecs = 2;
                break;
            }
        }
        /* Within a BUNDLE group an id names one URI in every section (RFC 8843 §9.2, RFC 8285
         * §6). aiortc 1.4 offers id 2 for ssrc-audio-level in audio and for abs-send-time in
         * video, then parses the whole transport with one map: an extmap whose id an earlier
         * section already gave another URI is not accepted, so neither side uses it. */
        for (size_t e = 0; e < m->n_extmaps && e < ES_SDP_MAX_EXTMAPS; e++) {
            const es_sdp_extmap_t *x = &m->extmaps[e];
            if (uri_of_id[x->id] && strcmp(uri_of_id[x->id], x->uri) != 0) continue;
            for (size_t k = 0; k < sizeof kept_extmaps / sizeof kept_extmaps[0]; k++)
                if (!strncmp(x->uri, kept_extmaps[k], sizeof x->uri) &&
                    (k != TWCC_URI_INDEX || cap->transport_cc)) {
                    a->extmaps[a->n_extmaps++] = *x;
                    uri_of_id[x->id] = x->uri;
                }
        }
        /* RFC 3264 §6.1: the answer's direction mirrors the offer's. */
        bool offer_sends = m->dir == ES_DIR_SENDRECV || m->dir == ES_DIR_SENDONLY;
        bool offer_receives = m->dir == ES_DIR_SENDRECV || m->dir == ES_DIR_RECVONLY;
        if (receive) a->dir = offer_sends ? ES_DIR_RECVONLY : ES_DIR_INACTIVE;
        else a->dir = offer_receives ? ES_DIR_SENDONLY : ES_DIR_INACTIVE;
        if (a->dir != ES_DIR_INACTIVE) active++;
        else
            err_append(err, err_len, "%s section (mid %s) is offered %s: nothing to %s", m->kind_name, m->mid,
                       dir_name(m->dir), receive ? "receive" : "send");
    }
    /* RFC 5763 §5: actpass or active offered, we are passive (DTLS server); passive offered,
     * we are active. The setup that counts is the BUNDLE transport's. */
    int t = es_sdp_local_transport(ans);
    ans->setup = t >= 0 && offer->media[t].setup == ES_SETUP_PASSIVE ? ES_SETUP_ACTIVE
                                                                       : ES_SETUP_PASSIVE;
    if (active && err && err_len) err[0] = '\0';
    return active;
}

/* ---- answer writer ----------------------------------------------------------------------- */

typedef struct {
    char *out;
    size_t cap, len;
    bool overflow;
} writer_t;

__attribute__((format(printf, 2, 3))) static void put(writer_t *w, const char *fmt, ...)
{
    if (w->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->out + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->cap - w->len) {
        w->overflow = true;
        return;
    }
    w->len += (size_t)n;
}

/* Strings the caller filled go into lines: a CR or LF there would inject lines of its own. */
static bool line_safe(const char *s, size_t cap)
{
    size_t n = fixed_len(s, cap);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20) return false;
    return n < cap;
}

#define FIELD(s) (int)fixed_len((s), sizeof(s)), (s)

static void put_codec(writer_t *w, const es_sdp_codec_t *c)
{
    if (c->name[0]) {
        put(w, "a=rtpmap:%u %.*s/%u", c->pt, FIELD(c->name), c->clock_rate);
        if (c->channels > 1) put(w, "/%u", c->channels);
        put(w, "\r\n");
    }
    if (c->fmtp[0]) put(w, "a=fmtp:%u %.*s\r\n", c->pt, FIELD(c->fmtp));
    if (c->fb_nack) put(w, "a=rtcp-fb:%u nack\r\n", c->pt);
    if (c->fb_pli) put(w, "a=rtcp-fb:%u nack pli\r\n", c->pt);
    if (c->fb_fir) put(w, "a=rtcp-fb:%u ccm fir\r\n", c->pt);
    if (c->fb_transport_cc) put(w, "a=rtcp-fb:%u transport-cc\r\n", c->pt);
    if (c->fb_remb) put(w, "a=rtcp-fb:%u goog-remb\r\n", c->pt);
}

static void put_ssrc(writer_t *w, const es_sdp_local_t *ans, const es_sdp_local_media_t *a, uint32_t ssrc)
{
    if (ans->cname[0]) put(w, "a=ssrc:%u cname:%.*s\r\n", ssrc, FIELD(ans->cname));
    if (ans->msid_stream[0]) put(w, "a=ssrc:%u msid:%.*s %.*s\r\n", ssrc, FIELD(ans->msid_stream), FIELD(a->mid));
}

int es_sdp_local_write(const es_sdp_local_t *ans, char *out, size_t cap)
{
    if (!ans || !out || cap == 0) return ES_EINVAL;
    out[0] = '\0';
    if (!line_safe(ans->ice_ufrag, sizeof ans->ice_ufrag) || !line_safe(ans->ice_pwd, sizeof ans->ice_pwd) ||
        !line_safe(ans->fingerprint, sizeof ans->fingerprint) || !line_safe(ans->cname, sizeof ans->cname) ||
        !line_safe(ans->msid_stream, sizeof ans->msid_stream))
        return ES_EINVAL;
    size_t n_cand = ans->n_candidates < ES_SDP_MAX_LOCAL_CANDIDATES ? ans->n_candidates
                                                                 : ES_SDP_MAX_LOCAL_CANDIDATES;
    for (size_t i = 0; i < n_cand; i++)
        if (!line_safe(ans->candidates[i], sizeof ans->candidates[i])) return ES_EINVAL;
    size_t n_media = ans->n_media < ES_SDP_MAX_MEDIA ? ans->n_media : ES_SDP_MAX_MEDIA;
    for (size_t i = 0; i < n_media; i++) {
        const es_sdp_local_media_t *a = &ans->media[i];
        if (!line_safe(a->mid, sizeof a->mid) || !line_safe(a->kind_name, sizeof a->kind_name) ||
            !line_safe(a->proto, sizeof a->proto))
            return ES_EINVAL;
    }

    writer_t w = {out, cap, 0, false};
    put(&w, "v=0\r\no=- %llu 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n%s",
        (unsigned long long)ans->session_id, ans->ice_lite ? "a=ice-lite\r\n" : "");
    bool any = false;
    for (size_t i = 0; i < n_media; i++) {
        if (ans->media[i].rejected || !ans->media[i].mid[0]) continue;
        put(&w, "%s%.*s", any ? " " : "a=group:BUNDLE ", FIELD(ans->media[i].mid));
        any = true;
    }
    if (any) put(&w, "\r\n");
    put(&w, "a=msid-semantic: WMS *\r\n");

    for (size_t i = 0; i < n_media; i++) {
        const es_sdp_local_media_t *a = &ans->media[i];
        size_t n_codecs = a->n_codecs < ES_SDP_MAX_CODECS ? a->n_codecs : ES_SDP_MAX_CODECS;
        put(&w, "m=%.*s %u %.*s", FIELD(a->kind_name), a->rejected ? 0u : 9u, FIELD(a->proto));
        if (strstr(a->proto, "RTP")) { /* the parser's rule: payload type numbers */
            for (size_t k = 0; k < n_codecs; k++) put(&w, " %u", a->codecs[k].pt);
            if (!n_codecs) put(&w, " 0");
        } else if (strstr(a->proto, "UDP/DTLS/SCTP") || strstr(a->proto, "TCP/DTLS/SCTP")) {
            put(&w, " webrtc-datachannel"); /* RFC 8841 §4.1 */
        } else {
            put(&w, " %s", strstr(a->proto, "SCTP") ? "5000" : "0");
        }
        put(&w, "\r\nc=IN IP4 0.0.0.0\r\n");
        if (a->mid[0]) put(&w, "a=mid:%.*s\r\n", FIELD(a->mid));
        if (a->rejected) {
            put(&w, "a=inactive\r\n");
            continue;
        }
        if (ans->ice_ufrag[0]) put(&w, "a=ice-ufrag:%.*s\r\n", FIELD(ans->ice_ufrag));
        if (ans->ice_pwd[0]) put(&w, "a=ice-pwd:%.*s\r\n", FIELD(ans->ice_pwd));
        if (ans->fingerprint[0]) put(&w, "a=fingerprint:sha-256 %.*s\r\n", FIELD(ans->fingerprint));
        put(&w, "a=setup:%s\r\n", ans->offer ? "actpass"
                                    : ans->setup == ES_SETUP_ACTIVE ? "active" : "passive");
        put(&w, "a=%s\r\n", dir_name(a->dir));
        put(&w, "a=rtcp-mux\r\n");
        if (a->rtcp_rsize) put(&w, "a=rtcp-rsize\r\n");
        for (size_t e = 0; e < a->n_extmaps && e < ES_SDP_MAX_EXTMAPS; e++)
            put(&w, "a=extmap:%u %.*s\r\n", a->extmaps[e].id, FIELD(a->extmaps[e].uri));
        for (size_t k = 0; k < n_codecs; k++) put_codec(&w, &a->codecs[k]);
        bool sends = a->dir == ES_DIR_SENDONLY || a->dir == ES_DIR_SENDRECV;
        if (sends && ans->msid_stream[0]) put(&w, "a=msid:%.*s %.*s\r\n", FIELD(ans->msid_stream), FIELD(a->mid));
        if (sends && a->ssrc) {
            if (a->rtx_ssrc) put(&w, "a=ssrc-group:FID %u %u\r\n", a->ssrc, a->rtx_ssrc);
            put_ssrc(&w, ans, a, a->ssrc);
            if (a->rtx_ssrc) put_ssrc(&w, ans, a, a->rtx_ssrc);
        }
        /* BUNDLE makes the candidates shared; every accepted section carries them all the same,
         * so a client that reads only its own section finds them. */
        for (size_t c = 0; c < n_cand; c++) put(&w, "a=candidate:%.*s\r\n", FIELD(ans->candidates[c]));
        put(&w, "a=end-of-candidates\r\n");
    }
    if (w.overflow) {
        out[0] = '\0';
        return ES_E2BIG;
    }
    return (int)w.len;
}

/* ---- offers and their answers ------------------------------------------------------------ */

int es_sdp_offer_init(const es_sdp_offer_media_t *media, size_t n, es_sdp_local_t *offer)
{
    if (!media || !offer || n == 0 || n > ES_SDP_MAX_MEDIA) return ES_EINVAL;
    memset(offer, 0, sizeof *offer);
    offer->offer = true;
    offer->setup = ES_SETUP_ACTPASS;
    offer->n_media = n;
    for (size_t i = 0; i < n; i++) {
        const es_sdp_offer_media_t *om = &media[i];
        es_sdp_local_media_t *m = &offer->media[i];
        if ((om->kind != ES_MEDIA_AUDIO && om->kind != ES_MEDIA_VIDEO) || om->caps.n_codecs == 0 ||
            om->caps.n_codecs > 4)
            return ES_EINVAL;
        m->kind = om->kind;
        snprintf(m->kind_name, sizeof m->kind_name, "%s", om->kind == ES_MEDIA_AUDIO ? "audio" : "video");
        snprintf(m->proto, sizeof m->proto, "UDP/TLS/RTP/SAVPF");
        snprintf(m->mid, sizeof m->mid, "%zu", i);
        m->dir = om->dir;
        m->rtcp_rsize = true;
        bool used[128] = {false};
        for (size_t k = 0; k < om->caps.n_codecs; k++) {
            uint8_t pt = om->caps.codecs[k].pt;
            if (pt > 127 || used[pt]) return ES_EINVAL;
            used[pt] = true;
        }
        for (size_t k = 0; k < om->caps.n_codecs; k++) {
            es_sdp_codec_t c = om->caps.codecs[k];
            c.fb_nack = om->caps.nack;
            c.fb_pli = om->caps.pli;
            c.fb_fir = om->caps.fir;
            c.fb_transport_cc = om->caps.transport_cc;
            c.fb_remb = om->caps.remb;
            c.apt = -1;
            m->codecs[m->n_codecs++] = c;
            if (!om->caps.rtx || om->kind != ES_MEDIA_VIDEO) continue;
            int rtx = -1; /* the first free dynamic payload type (RFC 3551 §3: 96..127) */
            for (int pt = 96; pt < 128 && rtx < 0; pt++)
                if (!used[pt]) rtx = pt;
            if (rtx < 0) continue;
            used[rtx] = true;
            es_sdp_codec_t r = {.pt = (uint8_t)rtx, .codec = ES_CODEC_RTX, .clock_rate = c.clock_rate,
                                .apt = c.pt};
            snprintf(r.name, sizeof r.name, "rtx");
            snprintf(r.fmtp, sizeof r.fmtp, "apt=%u", c.pt);
            m->codecs[m->n_codecs++] = r;
        }
        uint8_t id = 1;
        for (size_t k = 0; k < sizeof kept_extmaps / sizeof kept_extmaps[0]; k++) {
            const char *uri = kept_extmaps[k];
            bool audio_level = strstr(uri, "audio-level") != NULL;
            if ((k == TWCC_URI_INDEX && !om->caps.transport_cc) ||
                (audio_level && om->kind != ES_MEDIA_AUDIO) ||
                strstr(uri, "orientation") || strstr(uri, "playout-delay"))
                continue;
            es_sdp_extmap_t *x = &m->extmaps[m->n_extmaps++];
            x->id = id++;
            snprintf(x->uri, sizeof x->uri, "%s", uri);
        }
    }
    return 0;
}

static const es_sdp_codec_t *codec_of_pt(const es_sdp_local_media_t *m, unsigned pt)
{
    for (size_t k = 0; k < m->n_codecs && k < ES_SDP_MAX_CODECS; k++)
        if (m->codecs[k].pt == pt) return &m->codecs[k];
    return NULL;
}

int es_sdp_answer_apply(es_sdp_local_t *offer, const es_sdp_t *answer, char *err, size_t err_len)
{
    if (err && err_len) err[0] = '\0';
    if (!offer || !answer || !offer->offer) return check_fail(err, err_len, "no offer to apply to");
    if (answer->n_media != offer->n_media)
        return check_fail(err, err_len, "the answer has %zu m= sections, the offer %zu",
                          answer->n_media, offer->n_media);
    for (size_t b = 0; b < answer->n_bundle && b < ES_SDP_MAX_MEDIA; b++) {
        bool ours = false;
        for (size_t i = 0; i < offer->n_media && i < ES_SDP_MAX_MEDIA; i++)
            ours |= !strncmp(answer->bundle_mids[b], offer->media[i].mid, sizeof offer->media[i].mid);
        if (!ours)
            return check_fail(err, err_len, "the answer's BUNDLE group names mid '%.32s', which "
                              "was not offered", answer->bundle_mids[b]);
    }
    int active = 0;
    bool transport_seen = false;
    for (size_t i = 0; i < offer->n_media && i < ES_SDP_MAX_MEDIA; i++) {
        es_sdp_local_media_t *m = &offer->media[i];
        const es_sdp_media_t *a = &answer->media[i];
        if (a->kind != m->kind || strncmp(a->mid, m->mid, sizeof m->mid))
            return check_fail(err, err_len, "m= section %zu: answered as %s mid '%.32s', offered "
                              "%s mid '%s'", i, a->kind_name, a->mid, m->kind_name, m->mid);
        bool bundled = false;
        for (size_t b = 0; b < answer->n_bundle && b < ES_SDP_MAX_MEDIA; b++)
            bundled |= !strncmp(answer->bundle_mids[b], m->mid, sizeof m->mid);
        if (a->port == 0 && !bundled) { /* rejected (RFC 3264 §6) */
            m->rejected = true;
            m->dir = ES_DIR_INACTIVE;
            continue;
        }
        if (!bundled && offer->n_media > 1)
            return check_fail(err, err_len, "m= section %zu (mid %s) is accepted outside the "
                              "BUNDLE group", i, m->mid);
        if (!a->rtcp_mux) return check_fail(err, err_len, "mid %s: no a=rtcp-mux", m->mid);
        if (!transport_seen) { /* the BUNDLE transport: the first accepted section's */
            transport_seen = true;
            if (!a->ice_ufrag[0] || !a->ice_pwd[0])
                return check_fail(err, err_len, "mid %s: no a=ice-ufrag or a=ice-pwd", m->mid);
            if (strcmp(a->fingerprint_alg, "sha-256") || a->fingerprint_len != 32)
                return check_fail(err, err_len, "mid %s: no sha-256 a=fingerprint", m->mid);
            if (a->setup != ES_SETUP_ACTIVE && a->setup != ES_SETUP_PASSIVE)
                return check_fail(err, err_len, "mid %s: a=setup must be active or passive in an "
                                  "answer (RFC 5763 §5)", m->mid);
        }
        /* Codecs: a subset of ours, the first is what flows (RFC 3264 §6.1). */
        es_sdp_codec_t chosen = {0}, rtx = {0};
        bool have = false, have_rtx = false;
        for (size_t k = 0; k < a->n_codecs && k < ES_SDP_MAX_CODECS; k++) {
            const es_sdp_codec_t *ours = codec_of_pt(m, a->codecs[k].pt);
            if (!ours || ours->codec != a->codecs[k].codec)
                return check_fail(err, err_len, "mid %s: payload type %u was not offered as %s",
                                  m->mid, a->codecs[k].pt, a->codecs[k].name);
            if (!have && ours->codec != ES_CODEC_RTX) {
                chosen = *ours;
                chosen.fb_nack &= a->codecs[k].fb_nack;
                chosen.fb_pli &= a->codecs[k].fb_pli;
                chosen.fb_fir &= a->codecs[k].fb_fir;
                chosen.fb_transport_cc &= a->codecs[k].fb_transport_cc;
                chosen.fb_remb &= a->codecs[k].fb_remb;
                have = true;
            }
        }
        for (size_t k = 0; have && k < a->n_codecs && k < ES_SDP_MAX_CODECS; k++)
            if (a->codecs[k].codec == ES_CODEC_RTX && a->codecs[k].apt == chosen.pt) {
                rtx = *codec_of_pt(m, a->codecs[k].pt);
                have_rtx = true;
            }
        /* Extensions: those of ours the answer kept, under the answer's ids (RFC 8285 §6). */
        es_sdp_extmap_t ext[ES_SDP_MAX_EXTMAPS];
        size_t n_ext = 0;
        for (size_t e = 0; e < a->n_extmaps && e < ES_SDP_MAX_EXTMAPS; e++) {
            bool ours = false;
            for (size_t k = 0; k < m->n_extmaps; k++)
                ours |= !strncmp(m->extmaps[k].uri, a->extmaps[e].uri, sizeof a->extmaps[e].uri);
            if (!ours)
                return check_fail(err, err_len, "mid %s: extmap %.128s was not offered", m->mid,
                                  a->extmaps[e].uri);
            ext[n_ext++] = a->extmaps[e];
        }
        memcpy(m->extmaps, ext, sizeof ext);
        m->n_extmaps = n_ext;
        /* Direction (RFC 3264 §6.1): what we may do given the answer's. */
        bool peer_recv = a->dir == ES_DIR_SENDRECV || a->dir == ES_DIR_RECVONLY;
        bool peer_send = a->dir == ES_DIR_SENDRECV || a->dir == ES_DIR_SENDONLY;
        if (m->dir == ES_DIR_SENDONLY) m->dir = peer_recv ? ES_DIR_SENDONLY : ES_DIR_INACTIVE;
        else if (m->dir == ES_DIR_RECVONLY) m->dir = peer_send ? ES_DIR_RECVONLY : ES_DIR_INACTIVE;
        else if (m->dir == ES_DIR_SENDRECV)
            m->dir = peer_recv && peer_send ? ES_DIR_SENDRECV : peer_recv ? ES_DIR_SENDONLY
                   : peer_send ? ES_DIR_RECVONLY : ES_DIR_INACTIVE;
        m->n_codecs = 0;
        if (!have) { /* an answer with no codec: nothing flows in this section */
            m->dir = ES_DIR_INACTIVE;
            continue;
        }
        m->codecs[m->n_codecs++] = chosen;
        if (have_rtx) m->codecs[m->n_codecs++] = rtx;
        if (m->dir != ES_DIR_INACTIVE) active++;
    }
    if (!transport_seen) return check_fail(err, err_len, "the answer rejects every m= section");
    return active;
}
