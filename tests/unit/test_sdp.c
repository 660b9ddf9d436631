/* Unit tests for src/webrtc/sdp.c: real offers (Chromium and aiortc captured, Firefox, Safari,
 * OBS and GStreamer written from public examples, see tests/unit/sdp/README.md), the WebRTC
 * checks, WHIP and WHEP answers re-parsed, H.264 profile compatibility, trickle fragments
 * (RFC 8840) and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/error.h"
#include "estuary/sdp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static char text[ES_SDP_MAX_TEXT + 2];
static size_t text_len;
static char err[256];

static void load(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "sdp/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s (tests run from tests/unit)", path);
    text_len = fread(text, 1, sizeof text - 1, f);
    text[text_len] = '\0';
    fclose(f);
}

static es_sdp_t *parse_file(const char *name)
{
    load(name);
    es_sdp_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    int rc = es_sdp_parse(text, text_len, s, err, sizeof err);
    if (rc) fail_msg("%s: %d %s", name, rc, err);
    return s;
}

/* Parses `t` expecting failure `code`, and checks that err contains `needle`. */
static void expect_error(const char *t, size_t len, int code, const char *needle)
{
    es_sdp_t *s = calloc(1, sizeof *s);
    int rc = es_sdp_parse(t, len, s, err, sizeof err);
    free(s);
    if (rc != code) fail_msg("expected %d, got %d (%s) for: %.60s", code, rc, err, t);
    if (needle && !strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
}

static const es_sdp_codec_t *codec_by_pt(const es_sdp_media_t *m, unsigned pt)
{
    for (size_t i = 0; i < m->n_codecs; i++)
        if (m->codecs[i].pt == pt) return &m->codecs[i];
    return NULL;
}

static es_sdp_codec_t h264(uint32_t plid, uint8_t pm, bool asym)
{
    es_sdp_codec_t c;
    memset(&c, 0, sizeof c);
    c.codec = ES_CODEC_H264;
    strcpy(c.name, "H264");
    c.clock_rate = 90000;
    c.apt = -1;
    c.h264_profile_level_id = plid;
    c.h264_packetization_mode = pm;
    c.h264_level_asymmetry = asym;
    return c;
}

static es_sdp_codec_t simple(es_codec_t codec)
{
    es_sdp_codec_t c;
    memset(&c, 0, sizeof c);
    c.codec = codec;
    c.apt = -1;
    return c;
}

/* caps[0] audio Opus, caps[1] video `video` (every feedback kind, RTX, transport-cc). */
static void make_caps(es_sdp_caps_t caps[2], es_sdp_codec_t video)
{
    memset(caps, 0, 2 * sizeof caps[0]);
    caps[0].codecs[0] = simple(ES_CODEC_OPUS);
    caps[0].n_codecs = 1;
    caps[0].transport_cc = true;
    caps[1].codecs[0] = video;
    caps[1].n_codecs = 1;
    caps[1].rtx = caps[1].nack = caps[1].pli = caps[1].fir = caps[1].transport_cc = true;
}

static void fill_answer(es_sdp_local_t *a, bool send)
{
    a->session_id = 4242;
    strcpy(a->ice_ufrag, "srvU");
    strcpy(a->ice_pwd, "serverpassword0123456789");
    strcpy(a->fingerprint, "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89");
    strcpy(a->cname, "estuary");
    strcpy(a->msid_stream, "live");
    strcpy(a->candidates[0], "1 1 udp 2130706431 192.0.2.1 8000 typ host");
    a->n_candidates = 1;
    if (!send) return;
    for (size_t i = 0; i < a->n_media; i++) {
        a->media[i].ssrc = 1000 + (uint32_t)i;
        if (a->media[i].kind == ES_MEDIA_VIDEO) a->media[i].rtx_ssrc = 2000 + (uint32_t)i;
    }
}

/* Writes the answer and parses it back into *back (caller frees); returns the text. */
static char *write_and_reparse(const es_sdp_local_t *a, es_sdp_t **back)
{
    char *out = malloc(ES_SDP_MAX_TEXT);
    assert_non_null(out);
    int n = es_sdp_local_write(a, out, ES_SDP_MAX_TEXT);
    assert_true(n > 0);
    assert_int_equal(strlen(out), (size_t)n);
    *back = calloc(1, sizeof **back);
    int rc = es_sdp_parse(out, (size_t)n, *back, err, sizeof err);
    if (rc) fail_msg("description does not re-parse: %s\n%s", err, out);
    assert_int_equal((*back)->ice_lite, a->ice_lite);
    return out;
}

static const uint8_t chromium_recv_fp[32] = {
    0xC3, 0xDA, 0xF2, 0x06, 0x50, 0xF7, 0x6C, 0xF2, 0x30, 0x5C, 0xB5, 0x04, 0x73, 0x5D, 0x28, 0x70,
    0xF4, 0x67, 0xED, 0xE8, 0x60, 0xF2, 0xD6, 0x1D, 0xAD, 0x3F, 0x48, 0xA6, 0x0E, 0x6C, 0x6F, 0x58};

/* ---- real offers ------------------------------------------------------------------------- */

static void test_chromium_whep_offer(void **state)
{
    es_sdp_t *s = parse_file("chromium_whep_recvonly.sdp");
    assert_int_equal(s->n_media, 2);
    assert_int_equal(s->n_bundle, 2);
    assert_string_equal(s->bundle_mids[0], "0");
    assert_string_equal(s->bundle_mids[1], "1");
    assert_false(s->ice_lite);
    for (size_t i = 0; i < 2; i++) {
        const es_sdp_media_t *m = &s->media[i];
        assert_int_equal(m->dir, ES_DIR_RECVONLY);
        assert_string_equal(m->ice_ufrag, "10fe");
        assert_string_equal(m->ice_pwd, "MeZ43753Ol/kDZMCt6BH3F1r");
        assert_string_equal(m->fingerprint_alg, "sha-256");
        assert_int_equal(m->fingerprint_len, 32);
        assert_memory_equal(m->fingerprint, chromium_recv_fp, 32);
        assert_int_equal(m->setup, ES_SETUP_ACTPASS);
        assert_true(m->rtcp_mux);
        assert_string_equal(m->ice_options, "trickle");
        assert_int_equal(m->port, 9);
        assert_string_equal(m->proto, "UDP/TLS/RTP/SAVPF");
    }
    assert_int_equal(s->media[0].kind, ES_MEDIA_AUDIO);
    assert_string_equal(s->media[0].mid, "0");
    assert_int_equal(s->media[1].kind, ES_MEDIA_VIDEO);
    assert_string_equal(s->media[1].mid, "1");
    /* 34 payload types offered: the first ES_SDP_MAX_CODECS kept, in m= line order. */
    assert_int_equal(s->media[1].n_codecs, ES_SDP_MAX_CODECS);
    assert_int_equal(s->media[1].codecs[0].pt, 96);
    assert_int_equal(s->media[1].codecs[0].codec, ES_CODEC_VP8);
    assert_int_equal(s->media[1].codecs[6].pt, 35);
    assert_int_equal(s->media[1].codecs[6].vp9_profile_id, 1);
    assert_null(codec_by_pt(&s->media[1], 49)); /* past the limit */
    const es_sdp_codec_t *av1 = codec_by_pt(&s->media[1], 45);
    assert_non_null(av1);
    assert_int_equal(av1->codec, ES_CODEC_AV1);
    const es_sdp_codec_t *f4 = codec_by_pt(&s->media[1], 41);
    assert_int_equal(f4->h264_profile_level_id, 0xf4001f);
    assert_int_equal(s->media[0].ssrc, 0); /* recvonly: no SSRC */
    assert_int_equal(s->n_candidates, 4);
    assert_string_equal(s->candidates[0].transport, "udp");
    assert_string_equal(s->candidates[0].type, "host");
    assert_non_null(strstr(s->candidates[0].address, ".local"));
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    free(s);
}

static void test_chromium_whip_offer_and_answer(void **state)
{
    es_sdp_t *s = parse_file("chromium_whip_sendonly.sdp");
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    const es_sdp_media_t *a = &s->media[0], *v = &s->media[1];
    assert_int_equal(a->dir, ES_DIR_SENDONLY);
    assert_int_equal(v->dir, ES_DIR_SENDONLY);
    assert_int_equal(a->codecs[0].pt, 111);
    assert_int_equal(a->codecs[0].codec, ES_CODEC_OPUS);
    assert_int_equal(a->codecs[0].clock_rate, 48000);
    assert_int_equal(a->codecs[0].channels, 2);
    assert_string_equal(a->codecs[0].fmtp, "minptime=10;useinbandfec=1");
    assert_true(a->codecs[0].fb_transport_cc);
    assert_false(a->codecs[0].fb_nack);
    assert_int_equal(a->ssrc, 388112489);
    assert_string_equal(a->cname, "Px+mjBycOEuOqGkS");
    assert_string_equal(a->msid, "9bd3db14-ccaa-4f52-acd9-66041b674e92 67cd2c01-8f54-46ea-ab6d-1086b508431d");
    assert_int_equal(v->ssrc, 1323879780);
    assert_int_equal(v->rtx_ssrc, 1760320403);
    assert_int_equal(v->n_extmaps, 11);
    assert_int_equal(v->extmaps[0].id, 14);
    assert_string_equal(v->extmaps[0].uri, "urn:ietf:params:rtp-hdrext:toffset");
    assert_true(v->rtcp_rsize);
    const es_sdp_codec_t *c = codec_by_pt(v, 102);
    assert_int_equal(c->codec, ES_CODEC_H264);
    assert_int_equal(c->h264_packetization_mode, 1);
    assert_int_equal(c->h264_profile_level_id, 0x42001f);
    assert_true(c->h264_level_asymmetry);
    assert_true(c->fb_nack && c->fb_pli && c->fb_fir && c->fb_transport_cc && c->fb_remb);
    assert_int_equal(codec_by_pt(v, 103)->apt, 102);
    assert_int_equal(codec_by_pt(v, 103)->codec, ES_CODEC_RTX);
    assert_int_equal(codec_by_pt(v, 102)->apt, -1);
    assert_int_equal(codec_by_pt(v, 100)->vp9_profile_id, 2);

    /* WHIP: we receive H.264: the first packetization-mode=1 payload type in offer order, but
     * Constrained Baseline rather than Baseline (42e01f, PT 108, not 42001f, PT 102): the
     * encoder's bitstream is the same and every player accepts 42e01f. */
    es_sdp_caps_t caps[2];
    make_caps(caps, h264(0x42e01f, 1, true));
    caps[1].remb = false;
    es_sdp_local_t *ans = calloc(1, sizeof *ans);
    assert_int_equal(es_sdp_answer_init(s, true, caps, ans, err, sizeof err), 2);
    assert_string_equal(err, "");
    assert_int_equal(ans->setup, ES_SETUP_PASSIVE);
    assert_int_equal(es_sdp_local_transport(ans), 0);
    assert_int_equal(ans->media[1].n_codecs, 2);
    assert_int_equal(ans->media[1].codecs[0].pt, 108);
    assert_int_equal(ans->media[1].codecs[0].h264_profile_level_id, 0x42e01f);
    assert_int_equal(ans->media[1].codecs[1].pt, 109);
    assert_false(ans->media[1].codecs[0].fb_remb); /* not in caps */
    fill_answer(ans, false);
    es_sdp_t *back;
    char *out = write_and_reparse(ans, &back);
    assert_int_equal(back->n_media, 2);
    assert_int_equal(back->n_bundle, 2);
    assert_string_equal(back->bundle_mids[0], "0");
    assert_string_equal(back->bundle_mids[1], "1");
    assert_int_equal(back->session_id, 4242);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(back->media[i].dir, ES_DIR_RECVONLY);
        assert_int_equal(back->media[i].setup, ES_SETUP_PASSIVE);
        assert_int_equal(back->media[i].port, 9);
        assert_true(back->media[i].rtcp_mux);
        assert_string_equal(back->media[i].ice_ufrag, "srvU");
        assert_int_equal(back->media[i].fingerprint_len, 32);
        assert_int_equal(back->media[i].ssrc, 0);
    }
    assert_true(back->media[0].rtcp_rsize && back->media[1].rtcp_rsize); /* Chromium 156 offers both */
    assert_int_equal(back->media[0].n_codecs, 1);
    assert_int_equal(back->media[0].codecs[0].pt, 111);
    assert_int_equal(back->media[0].codecs[0].channels, 2);
    assert_int_equal(back->media[1].n_codecs, 2);
    const es_sdp_codec_t *bc = &back->media[1].codecs[0];
    assert_int_equal(bc->pt, 108);
    assert_int_equal(bc->h264_profile_level_id, 0x42e01f);
    assert_true(bc->fb_nack && bc->fb_pli && bc->fb_fir && bc->fb_transport_cc);
    assert_false(bc->fb_remb);
    assert_int_equal(back->media[1].codecs[1].apt, 108);
    /* Extmaps Estuary understands, with the offer's ids; toffset, timing etc. dropped. */
    assert_int_equal(back->media[1].n_extmaps, 5);
    assert_int_equal(back->media[1].extmaps[0].id, 2);
    assert_int_equal(back->media[1].extmaps[1].id, 13);
    assert_int_equal(back->media[1].extmaps[2].id, 3);
    assert_int_equal(back->media[0].n_extmaps, 4);
    assert_int_equal(back->n_candidates, 2); /* one per accepted section */
    assert_true(back->end_of_candidates);
    assert_non_null(strstr(out, "a=ice-lite\r\n"));
    assert_non_null(strstr(out, "a=msid-semantic: WMS *\r\n"));
    assert_null(strstr(out, "a=msid:")); /* nothing sent */
    free(out);
    free(back);

    /* VP8 first in caps: PT 96 with its RTX 97; no transport-cc extension without the cap. */
    make_caps(caps, simple(ES_CODEC_VP8));
    caps[1].transport_cc = false;
    assert_int_equal(es_sdp_answer_init(s, true, caps, ans, err, sizeof err), 2);
    assert_int_equal(ans->media[1].codecs[0].pt, 96);
    assert_int_equal(ans->media[1].codecs[1].pt, 97);
    assert_false(ans->media[1].codecs[0].fb_transport_cc);
    for (size_t e = 0; e < ans->media[1].n_extmaps; e++)
        assert_null(strstr(ans->media[1].extmaps[e].uri, "transport-wide-cc"));
    /* No RTX without the cap. */
    caps[1].rtx = false;
    assert_int_equal(es_sdp_answer_init(s, true, caps, ans, err, sizeof err), 2);
    assert_int_equal(ans->media[1].n_codecs, 1);
    free(ans);
    free(s);
}

static void test_aiortc(void **state)
{
    /* aiortc 1.4 bundles, but gives each section its own ufrag and port in the initial offer. */
    es_sdp_t *s = parse_file("aiortc_sendonly.sdp");
    assert_int_equal(s->n_bundle, 2);
    assert_string_equal(s->media[0].ice_ufrag, "vWN4");
    assert_string_equal(s->media[1].ice_ufrag, "M56b");
    assert_int_equal(s->media[0].port, 49285);
    assert_int_equal(s->media[1].ssrc, 873768335);
    assert_int_equal(s->media[1].rtx_ssrc, 3381974550u);
    assert_int_equal(s->n_candidates, 4);
    assert_true(s->end_of_candidates);
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    es_sdp_caps_t caps[2];
    make_caps(caps, h264(0x42e01f, 1, true));
    es_sdp_local_t *ans = calloc(1, sizeof *ans);
    assert_int_equal(es_sdp_answer_init(s, true, caps, ans, err, sizeof err), 2);
    /* 42001f pm=1 (PT 99) comes first in the offer; its 42e01f (PT 101) is taken instead. */
    assert_int_equal(ans->media[1].codecs[0].pt, 101);
    assert_int_equal(ans->media[1].codecs[1].pt, 102);
    int t = es_sdp_local_transport(ans);
    assert_int_equal(t, 0);
    assert_string_equal(s->media[t].ice_ufrag, "vWN4"); /* aiortc uses its first mid's transport */
    /* aiortc gives id 2 to audio-level (audio) and abs-send-time (video): only the first is
     * accepted, so no id means two URIs in the bundle. */
    assert_int_equal(ans->media[0].n_extmaps, 2);
    assert_string_equal(ans->media[0].extmaps[1].uri, "urn:ietf:params:rtp-hdrext:ssrc-audio-level");
    for (size_t e = 0; e < ans->media[1].n_extmaps; e++)
        assert_int_not_equal(ans->media[1].extmaps[e].id, 2);
    assert_int_equal(ans->media[1].n_extmaps, 1); /* sdes:mid, id 1 in both sections */
    free(ans);
    free(s);

    s = parse_file("aiortc_nobundle.sdp");
    assert_int_equal(s->n_bundle, 0);
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), ES_EPROTO);
    assert_non_null(strstr(err, "BUNDLE"));
    free(s);
}

static void test_firefox_whep(void **state)
{
    es_sdp_t *s = parse_file("firefox_whep_recvonly.sdp");
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    assert_string_equal(s->origin_username, "mozilla...THIS_IS_SDPARTA-128.0");
    assert_int_equal(s->session_id, 6291867463870234183ull);
    const es_sdp_media_t *a = &s->media[0], *v = &s->media[1];
    /* Session-level fingerprint and ice-options, session-level sendrecv overridden. */
    assert_int_equal(a->fingerprint_len, 32);
    assert_int_equal(v->fingerprint[0], 0x5C);
    assert_string_equal(v->ice_options, "trickle");
    assert_int_equal(a->dir, ES_DIR_RECVONLY);
    assert_int_equal(a->extmaps[1].id, 2); /* "a=extmap:2/recvonly" */
    assert_string_equal(a->extmaps[1].uri, "urn:ietf:params:rtp-hdrext:csrc-audio-level");
    /* a=fmtp before a=rtpmap. */
    const es_sdp_codec_t *h = codec_by_pt(v, 126);
    assert_int_equal(h->codec, ES_CODEC_H264);
    assert_int_equal(h->h264_packetization_mode, 1);
    assert_int_equal(h->h264_profile_level_id, 0x42e01f);
    assert_int_equal(codec_by_pt(v, 97)->h264_packetization_mode, 0);
    assert_int_equal(codec_by_pt(v, 124)->apt, 120);
    assert_int_equal(codec_by_pt(v, 121)->vp9_profile_id, 0);
    assert_int_equal(codec_by_pt(a, 9)->channels, 1);

    /* WHEP: the stream is H.264 constrained baseline 3.1, packetization-mode 1. */
    es_sdp_caps_t caps[2];
    make_caps(caps, h264(0x42e01f, 1, false));
    es_sdp_local_t *ans = calloc(1, sizeof *ans);
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 2);
    assert_int_equal(ans->media[0].codecs[0].pt, 109);
    assert_int_equal(ans->media[1].codecs[0].pt, 126);
    assert_int_equal(ans->media[1].codecs[1].pt, 127);
    fill_answer(ans, true);
    es_sdp_t *back;
    char *out = write_and_reparse(ans, &back);
    assert_int_equal(back->media[0].dir, ES_DIR_SENDONLY);
    assert_int_equal(back->media[1].dir, ES_DIR_SENDONLY);
    assert_int_equal(back->media[1].ssrc, 1001);
    assert_int_equal(back->media[1].rtx_ssrc, 2001);
    assert_string_equal(back->media[1].cname, "estuary");
    assert_string_equal(back->media[1].msid, "live 1");
    assert_string_equal(back->media[0].msid, "live 0");
    assert_int_equal(back->media[0].ssrc, 1000);
    assert_int_equal(back->media[0].rtx_ssrc, 0);
    assert_non_null(strstr(out, "a=ssrc-group:FID 1001 2001\r\n"));
    assert_non_null(strstr(out, "a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1\r\n"));
    free(out);
    free(back);

    /* A VP9 profile 0 stream goes out on Firefox's VP9 (no profile-id: 0). */
    make_caps(caps, simple(ES_CODEC_VP9));
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 2);
    assert_int_equal(ans->media[1].codecs[0].pt, 121);
    caps[1].codecs[0].vp9_profile_id = 2;
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 1);
    assert_false(ans->media[1].rejected); /* inactive inside the BUNDLE group */
    assert_int_equal(ans->media[1].dir, ES_DIR_INACTIVE);

    /* Nothing in common: the error names both sides. */
    make_caps(caps, simple(ES_CODEC_AV1));
    caps[0].n_codecs = 0;
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 0);
    assert_non_null(strstr(err, "no common video codec: offered VP8, VP9, H264; this stream sends AV1"));
    assert_non_null(strstr(err, "no audio: this stream has none"));
    fill_answer(ans, true);
    out = write_and_reparse(ans, &back);
    assert_int_equal(back->n_bundle, 2);
    assert_int_equal(back->media[0].port, 9);
    assert_int_equal(back->media[0].dir, ES_DIR_INACTIVE);
    assert_true(back->media[0].rtcp_mux);
    assert_string_equal(back->media[1].mid, "1");
    assert_int_equal(back->media[1].dir, ES_DIR_INACTIVE);
    assert_int_equal(back->media[1].codecs[0].pt, 120); /* the offer's first format */
    free(out);
    free(back);
    free(ans);
    free(s);
}

/* Replaces the first `from` in text with `to` (text_len adjusted). */
static void edit(const char *from, const char *to)
{
    char *p = strstr(text, from);
    assert_non_null(p);
    size_t fl = strlen(from), tl = strlen(to);
    assert_true(text_len - fl + tl < sizeof text);
    memmove(p + tl, p + fl, text_len - (size_t)(p - text) - fl + 1);
    memcpy(p, to, tl);
    text_len = text_len - fl + tl;
}

/* Firefox and GStreamer with max-bundle: every section after the first has port 0 and
 * a=bundle-only, and may carry no transport attributes (RFC 8843 §6, §7.5.3). They are members,
 * answered with a port inside the BUNDLE group. An audio-only stream's video section is answered
 * inactive inside the group, not rejected. */
static void test_bundle_only_and_missing_kind(void **state)
{
    load("firefox_whep_recvonly.sdp");
    edit("m=video 9 ", "m=video 0 ");
    edit("a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n");
    /* The second section's own credentials and setup go: the tag's apply. */
    char *v = strstr(text, "m=video");
    char *u = strstr(v, "a=ice-ufrag:8c41e2f7\r\n");
    assert_non_null(u);
    memmove(u, u + 22, text_len - (size_t)(u - text) - 22 + 1);
    text_len -= 22;
    es_sdp_t *s = calloc(1, sizeof *s);
    assert_int_equal(es_sdp_parse(text, text_len, s, err, sizeof err), 0);
    assert_int_equal(s->media[1].port, 0);
    assert_true(s->media[1].bundle_only);
    assert_string_equal(s->media[1].ice_ufrag, "8c41e2f7");
    assert_true(s->media[1].rtcp_mux);
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    es_sdp_caps_t caps[2];
    es_sdp_local_t *ans = calloc(1, sizeof *ans);
    make_caps(caps, simple(ES_CODEC_VP8));
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 2);
    assert_false(ans->media[1].rejected);
    assert_int_equal(ans->media[1].dir, ES_DIR_SENDONLY);
    fill_answer(ans, true);
    es_sdp_t *back;
    char *out = write_and_reparse(ans, &back);
    assert_int_equal(back->n_bundle, 2);
    assert_int_equal(back->media[1].port, 9);
    free(out);
    free(back);
    /* An audio-only stream: the video section is inactive but in the group, with rtcp-mux. */
    caps[1].n_codecs = 0;
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 1);
    assert_int_equal(ans->media[1].dir, ES_DIR_INACTIVE);
    fill_answer(ans, true);
    out = write_and_reparse(ans, &back);
    assert_int_equal(back->n_bundle, 2);
    assert_int_equal(back->media[1].port, 9);
    assert_true(back->media[1].rtcp_mux);
    assert_int_equal(back->media[1].dir, ES_DIR_INACTIVE);
    assert_int_equal(back->media[1].codecs[0].pt, 120); /* the offer's first format */
    assert_false(back->media[1].codecs[0].fb_nack);
    free(out);
    free(back);
    /* Video-only likewise. */
    make_caps(caps, simple(ES_CODEC_VP8));
    caps[0].n_codecs = 0;
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 1);
    assert_int_equal(ans->media[0].dir, ES_DIR_INACTIVE);
    assert_false(ans->media[0].rejected);
    assert_int_equal(es_sdp_local_transport(ans), 0);
    /* Outside a BUNDLE group, port 0 rejects the section whatever a=bundle-only says. */
    edit("a=group:BUNDLE 0 1", "a=group:BUNDLE 0");
    assert_int_equal(es_sdp_parse(text, text_len, s, err, sizeof err), 0);
    assert_false(s->media[1].bundle_only);
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    make_caps(caps, simple(ES_CODEC_VP8));
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 1);
    assert_true(ans->media[1].rejected);
    free(ans);
    free(s);
}

/* The offerer side (a WebSocket player, a relay): our offer, written and parsed back, is a
 * valid WebRTC offer; Estuary's own answerer answers it; applying that answer gives the
 * negotiated codec, RTX, extension ids and directions. Then answers that break the rules. */
static void test_offer_and_answer_apply(void **state)
{
    es_sdp_offer_media_t om[2];
    memset(om, 0, sizeof om);
    om[0].kind = ES_MEDIA_AUDIO;
    om[0].dir = ES_DIR_SENDONLY;
    es_sdp_codec_t opus = simple(ES_CODEC_OPUS), avc = h264(0x42e01f, 1, true), vp8 = simple(ES_CODEC_VP8);
    opus.pt = 111;
    strcpy(opus.name, "opus");
    opus.clock_rate = 48000;
    opus.channels = 2;
    strcpy(opus.fmtp, "minptime=10;useinbandfec=1");
    avc.pt = 102;
    strcpy(avc.fmtp, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f");
    vp8.pt = 96;
    strcpy(vp8.name, "VP8");
    vp8.clock_rate = 90000;
    om[0].caps.codecs[0] = opus;
    om[0].caps.n_codecs = 1;
    om[0].caps.transport_cc = om[0].caps.nack = true;
    om[1].kind = ES_MEDIA_VIDEO;
    om[1].dir = ES_DIR_SENDONLY;
    om[1].caps.codecs[0] = avc;
    om[1].caps.codecs[1] = vp8;
    om[1].caps.n_codecs = 2;
    om[1].caps.rtx = om[1].caps.nack = om[1].caps.pli = om[1].caps.transport_cc = true;
    es_sdp_local_t *offer = calloc(1, sizeof *offer);
    assert_int_equal(es_sdp_offer_init(om, 0, offer), ES_EINVAL);
    assert_int_equal(es_sdp_offer_init(om, 2, offer), 0);
    fill_answer(offer, true);
    es_sdp_t *parsed;
    char *otext = write_and_reparse(offer, &parsed);
    assert_null(strstr(otext, "a=ice-lite"));
    assert_non_null(strstr(otext, "a=setup:actpass\r\n"));
    assert_int_equal(es_sdp_check_webrtc(parsed, err, sizeof err), 0);
    assert_int_equal(parsed->n_bundle, 2);
    assert_int_equal(parsed->media[1].n_codecs, 4); /* H264, its rtx, VP8, its rtx */
    assert_int_equal(codec_by_pt(&parsed->media[1], parsed->media[1].codecs[1].pt)->apt,
                     parsed->media[1].codecs[0].pt);
    assert_int_equal(parsed->media[1].ssrc, 1001);
    assert_int_equal(parsed->media[1].rtx_ssrc, 2001);
    assert_int_equal(parsed->media[0].dir, ES_DIR_SENDONLY);

    /* Estuary answers it as a receiver taking VP8 only. */
    es_sdp_caps_t caps[2];
    make_caps(caps, simple(ES_CODEC_VP8));
    es_sdp_local_t *ans = calloc(1, sizeof *ans);
    assert_int_equal(es_sdp_answer_init(parsed, true, caps, ans, err, sizeof err), 2);
    fill_answer(ans, false);
    es_sdp_t *answer;
    char *atext = write_and_reparse(ans, &answer);
    es_sdp_local_t saved = *offer;
    assert_int_equal(es_sdp_answer_apply(offer, answer, err, sizeof err), 2);
    assert_int_equal(offer->media[1].codecs[0].codec, ES_CODEC_VP8);
    assert_int_equal(offer->media[1].codecs[0].pt, om[1].caps.codecs[1].pt);
    assert_int_equal(offer->media[1].n_codecs, 2);
    assert_int_equal(offer->media[1].codecs[1].codec, ES_CODEC_RTX);
    assert_int_equal(offer->media[1].codecs[1].apt, offer->media[1].codecs[0].pt);
    assert_true(offer->media[1].codecs[0].fb_nack && offer->media[1].codecs[0].fb_transport_cc);
    assert_int_equal(offer->media[0].dir, ES_DIR_SENDONLY);
    assert_int_equal(offer->media[0].n_extmaps, ans->media[0].n_extmaps);
    assert_int_equal(es_sdp_local_transport(offer), 0);
    assert_int_equal(answer->media[0].setup, ES_SETUP_PASSIVE); /* so we are the DTLS client */

    /* Broken answers are refused with the reason. */
    es_sdp_t *bad = calloc(1, sizeof *bad);
    *offer = saved;
    *bad = *answer;
    bad->media[1].codecs[0].pt = 77;
    assert_int_equal(es_sdp_answer_apply(offer, bad, err, sizeof err), ES_EPROTO);
    assert_non_null(strstr(err, "payload type 77 was not offered"));
    *offer = saved;
    *bad = *answer;
    bad->media[0].setup = ES_SETUP_ACTPASS;
    assert_int_equal(es_sdp_answer_apply(offer, bad, err, sizeof err), ES_EPROTO);
    assert_non_null(strstr(err, "a=setup"));
    *offer = saved;
    *bad = *answer;
    bad->media[0].fingerprint_len = 0;
    assert_int_equal(es_sdp_answer_apply(offer, bad, err, sizeof err), ES_EPROTO);
    *offer = saved;
    *bad = *answer;
    bad->n_media = 1;
    assert_int_equal(es_sdp_answer_apply(offer, bad, err, sizeof err), ES_EPROTO);
    *offer = saved;
    *bad = *answer;
    snprintf(bad->media[1].mid, sizeof bad->media[1].mid, "x");
    assert_int_equal(es_sdp_answer_apply(offer, bad, err, sizeof err), ES_EPROTO);
    *offer = saved;
    *bad = *answer;
    snprintf(bad->bundle_mids[1], sizeof bad->bundle_mids[1], "7");
    assert_int_equal(es_sdp_answer_apply(offer, bad, err, sizeof err), ES_EPROTO);
    assert_non_null(strstr(err, "mid '7'"));
    /* A rejected video section (port 0, out of the group): audio alone goes on. */
    *offer = saved;
    *bad = *answer;
    bad->media[1].port = 0;
    bad->n_bundle = 1;
    assert_int_equal(es_sdp_answer_apply(offer, bad, err, sizeof err), 1);
    assert_true(offer->media[1].rejected);
    /* An answer sendonly to our sendonly section: the peer will not receive; inactive. */
    *offer = saved;
    *bad = *answer;
    bad->media[0].dir = ES_DIR_SENDONLY;
    assert_int_equal(es_sdp_answer_apply(offer, bad, err, sizeof err), 1);
    assert_int_equal(offer->media[0].dir, ES_DIR_INACTIVE);
    free(bad);
    free(otext);
    free(atext);
    free(parsed);
    free(answer);
    free(ans);
    free(offer);
}

static void test_safari_whep(void **state)
{
    es_sdp_t *s = parse_file("safari_whep_recvonly.sdp");
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    assert_string_equal(s->media[0].ice_ufrag, "Wq/x");
    es_sdp_caps_t caps[2];
    es_sdp_local_t *ans = calloc(1, sizeof *ans);
    /* Constrained High from the publisher: PT 96 (640c1f, pm=1), not 100 (pm=0). */
    make_caps(caps, h264(0x640c29, 1, false));
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 2);
    assert_int_equal(ans->media[1].codecs[0].pt, 96);
    assert_int_equal(ans->media[1].codecs[1].pt, 97);
    /* Constrained Baseline (42c01f written by some encoders) matches 42e01f: PT 98. */
    make_caps(caps, h264(0x42c01f, 1, false));
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 2);
    assert_int_equal(ans->media[1].codecs[0].pt, 98);
    /* Main profile: Safari offers none. */
    make_caps(caps, h264(0x4d001f, 1, false));
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 1);
    assert_int_equal(ans->media[1].dir, ES_DIR_INACTIVE);
    caps[0].n_codecs = 0;
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 0);
    assert_non_null(strstr(err, "offered H264, H265, VP8, VP9; this stream sends H264 4d001f"));
    free(ans);
    free(s);
}

static void test_obs_whip(void **state)
{
    es_sdp_t *s = parse_file("obs_whip_sendonly.sdp");
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    assert_string_equal(s->origin_username, "rtc");
    assert_string_equal(s->ice_ufrag, "nxcM");
    for (size_t i = 0; i < 2; i++) { /* OBS puts ICE, fingerprint and setup at session level */
        assert_string_equal(s->media[i].ice_ufrag, "nxcM");
        assert_string_equal(s->media[i].ice_pwd, "ezjAjgSSLLvbRhUA1zc6Se");
        assert_string_equal(s->media[i].ice_options, "ice2,trickle");
        assert_int_equal(s->media[i].setup, ES_SETUP_ACTPASS);
        assert_int_equal(s->media[i].fingerprint_len, 32);
        assert_int_equal(s->media[i].fingerprint[31], 0xF3);
        assert_int_equal(s->media[i].port, 57249);
    }
    assert_int_equal(s->n_candidates, 2);
    assert_string_equal(s->candidates[0].transport, "udp"); /* written "UDP" */
    assert_int_equal(s->candidates[0].priority, 2122317823u);
    assert_string_equal(s->candidates[1].type, "srflx");
    assert_string_equal(s->candidates[1].address, "198.51.100.7");
    assert_int_equal(s->candidates[1].port, 57249);
    assert_string_equal(s->media[1].msid, "XmQSKutZo7zYcEQl XmQSKutZo7zYcEQl-video");
    es_sdp_caps_t caps[2];
    make_caps(caps, h264(0x42e01f, 1, true));
    es_sdp_local_t *ans = calloc(1, sizeof *ans);
    assert_int_equal(es_sdp_answer_init(s, true, caps, ans, err, sizeof err), 2);
    assert_int_equal(ans->media[1].n_codecs, 1); /* OBS offers no RTX */
    assert_int_equal(ans->media[1].codecs[0].pt, 96);
    fill_answer(ans, false);
    es_sdp_t *back;
    char *out = write_and_reparse(ans, &back);
    assert_int_equal(back->media[0].codecs[0].pt, 111);
    assert_false(back->media[0].rtcp_rsize);
    free(out);
    free(back);
    free(ans);
    free(s);
}

static void test_gstreamer_whip(void **state)
{
    es_sdp_t *s = parse_file("gstreamer_whipsink_sendonly.sdp");
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    assert_string_equal(s->media[0].mid, "video0");
    assert_string_equal(s->media[1].mid, "audio1");
    assert_int_equal(s->media[1].codecs[0].codec, ES_CODEC_OPUS); /* written "OPUS" */
    assert_int_equal(s->media[0].codecs[0].h264_profile_level_id, 0x42c01f);
    assert_int_equal(s->media[0].ssrc, 2904672125u);
    assert_int_equal(s->media[0].rtx_ssrc, 1138504270);
    assert_string_equal(s->media[0].cname, "user2937431597@host-a1b2c3d4");
    assert_int_equal(s->media[1].fingerprint[0], 0x2B); /* fingerprint after a=mid */
    es_sdp_caps_t caps[2];
    make_caps(caps, h264(0x42e01f, 1, true));
    es_sdp_local_t *ans = calloc(1, sizeof *ans);
    assert_int_equal(es_sdp_answer_init(s, true, caps, ans, err, sizeof err), 2);
    fill_answer(ans, false);
    es_sdp_t *back;
    char *out = write_and_reparse(ans, &back);
    assert_non_null(strstr(out, "a=group:BUNDLE video0 audio1\r\n"));
    assert_int_equal(back->media[0].kind, ES_MEDIA_VIDEO);
    assert_true(back->media[0].rtcp_rsize && back->media[1].rtcp_rsize);
    assert_int_equal(back->media[0].codecs[1].pt, 97);
    assert_string_equal(back->media[1].codecs[0].name, "OPUS");
    free(out);
    free(back);
    free(ans);
    free(s);
}

/* ---- directions, rejection, writer limits ------------------------------------------------ */

static void test_directions(void **state)
{
    es_sdp_caps_t caps[2];
    make_caps(caps, simple(ES_CODEC_VP8));
    es_sdp_local_t *ans = calloc(1, sizeof *ans);
    /* A player's recvonly offer posted to WHIP: nothing to receive. */
    es_sdp_t *s = parse_file("chromium_whep_recvonly.sdp");
    assert_int_equal(es_sdp_answer_init(s, true, caps, ans, err, sizeof err), 0);
    assert_non_null(strstr(err, "recvonly"));
    assert_int_equal(ans->media[0].dir, ES_DIR_INACTIVE);
    assert_false(ans->media[0].rejected);
    free(s);
    /* A publisher's sendonly offer posted to WHEP. */
    s = parse_file("chromium_whip_sendonly.sdp");
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 0);
    assert_non_null(strstr(err, "sendonly"));
    /* sendrecv: recvonly for a receiver, sendonly for a sender. */
    s->media[0].dir = s->media[1].dir = ES_DIR_SENDRECV;
    assert_int_equal(es_sdp_answer_init(s, true, caps, ans, err, sizeof err), 2);
    assert_int_equal(ans->media[1].dir, ES_DIR_RECVONLY);
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 2);
    assert_int_equal(ans->media[1].dir, ES_DIR_SENDONLY);
    s->media[1].dir = ES_DIR_INACTIVE;
    assert_int_equal(es_sdp_answer_init(s, false, caps, ans, err, sizeof err), 1);
    assert_int_equal(ans->media[1].dir, ES_DIR_INACTIVE);
    free(s);
    free(ans);
}

static const char datachannel_offer[] =
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
    "a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\na=setup:actpass\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n"
    "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:* nack\r\na=rtcp-fb:* nack pli\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sctp-port:5000\r\n";

static void test_rejected_application_and_writer(void **state)
{
    es_sdp_t *s = calloc(1, sizeof *s);
    assert_int_equal(es_sdp_parse(datachannel_offer, strlen(datachannel_offer), s, err, sizeof err), 0);
    assert_int_equal(s->media[1].kind, ES_MEDIA_APPLICATION);
    assert_int_equal(s->media[1].n_codecs, 0);
    assert_true(s->media[0].codecs[0].fb_nack && s->media[0].codecs[0].fb_pli); /* rtcp-fb:* */
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    es_sdp_caps_t caps[2];
    make_caps(caps, simple(ES_CODEC_VP8));
    es_sdp_local_t *ans = calloc(1, sizeof *ans);
    assert_int_equal(es_sdp_answer_init(s, true, caps, ans, err, sizeof err), 1);
    assert_true(ans->media[1].rejected);
    fill_answer(ans, false);
    es_sdp_t *back;
    char *out = write_and_reparse(ans, &back);
    assert_non_null(strstr(out, "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=inactive\r\n"));
    assert_int_equal(back->n_bundle, 1);
    assert_int_equal(back->media[1].port, 0);
    assert_string_equal(back->media[1].mid, "1");
    assert_int_equal(back->n_candidates, 1);

    /* Too small a buffer, and strings that would inject lines. */
    int full = (int)strlen(out);
    char small[64];
    assert_int_equal(es_sdp_local_write(ans, small, sizeof small), ES_E2BIG);
    assert_int_equal(es_sdp_local_write(ans, out, (size_t)full), ES_E2BIG);
    assert_int_equal(es_sdp_local_write(ans, out, (size_t)full + 1), full);
    strcpy(ans->candidates[0], "1 1 udp 1 192.0.2.1 9 typ host\r\na=evil");
    assert_int_equal(es_sdp_local_write(ans, out, ES_SDP_MAX_TEXT), ES_EINVAL);
    /* An offer saying passive makes us the DTLS client. */
    s->media[0].setup = ES_SETUP_PASSIVE;
    assert_int_equal(es_sdp_answer_init(s, true, caps, ans, err, sizeof err), 1);
    assert_int_equal(ans->setup, ES_SETUP_ACTIVE);
    free(out);
    free(back);
    free(ans);
    free(s);
}

/* ---- checks ------------------------------------------------------------------------------ */

/* Loads `name`, removes every line starting with `drop` (or replaces `from` by `to`), parses
 * and runs the WebRTC checks, which must fail naming `needle`. */
static void check_fails(const char *name, const char *drop, const char *from, const char *to, const char *needle)
{
    load(name);
    static char edited[ES_SDP_MAX_TEXT];
    size_t n = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (!drop || strncmp(line, drop, strlen(drop))) {
            memcpy(edited + n, line, len);
            n += len;
        }
        line += len;
    }
    edited[n] = '\0';
    if (from) {
        char *hit = strstr(edited, from);
        assert_non_null(hit);
        size_t fl = strlen(from), tl = strlen(to);
        memmove(hit + tl, hit + fl, strlen(hit + fl) + 1);
        memcpy(hit, to, tl);
        n = strlen(edited);
    }
    es_sdp_t *s = calloc(1, sizeof *s);
    assert_int_equal(es_sdp_parse(edited, n, s, err, sizeof err), 0);
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), ES_EPROTO);
    if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
    free(s);
}

static void test_check_webrtc(void **state)
{
    check_fails("chromium_whip_sendonly.sdp", "a=rtcp-mux", NULL, NULL, "rtcp-mux");
    check_fails("chromium_whip_sendonly.sdp", "a=group:BUNDLE", NULL, NULL, "BUNDLE");
    check_fails("chromium_whip_sendonly.sdp", "a=fingerprint", NULL, NULL, "fingerprint");
    check_fails("chromium_whip_sendonly.sdp", "a=setup", NULL, NULL, "a=setup");
    check_fails("chromium_whip_sendonly.sdp", "a=ice-pwd", NULL, NULL, "ice-pwd");
    check_fails("obs_whip_sendonly.sdp", NULL, "a=group:BUNDLE 0 1", "a=group:BUNDLE 0", "not in the BUNDLE group");
    check_fails("obs_whip_sendonly.sdp", NULL, "m=video 57249 UDP/TLS/RTP/SAVPF", "m=video 57249 RTP/AVP", "DTLS-SRTP");
    check_fails("obs_whip_sendonly.sdp", NULL, "a=mid:1", "a=mid:0", "mid used");
    check_fails("obs_whip_sendonly.sdp", NULL, "a=fingerprint:sha-256", "a=fingerprint:sha-1", "sha-256");
    /* All sections rejected by the offerer. */
    load("gstreamer_whipsink_sendonly.sdp");
    es_sdp_t *s = calloc(1, sizeof *s);
    assert_int_equal(es_sdp_parse(text, text_len, s, err, sizeof err), 0);
    s->media[0].port = s->media[1].port = 0;
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), ES_EPROTO);
    assert_non_null(strstr(err, "no audio or video"));
    /* One section alone needs no BUNDLE group. */
    s->media[0].port = 9;
    s->n_bundle = 0;
    assert_int_equal(es_sdp_check_webrtc(s, err, sizeof err), 0);
    free(s);
}

/* ---- H.264 ------------------------------------------------------------------------------- */

static void test_h264_compatible(void **state)
{
    es_sdp_codec_t cb = h264(0x42e01f, 1, true);
    es_sdp_codec_t w;
    /* Constrained baseline, however written. */
    w = h264(0x42e01f, 1, true);
    assert_true(es_sdp_h264_compatible(&cb, &w));
    w = h264(0x42c01f, 1, true);
    assert_true(es_sdp_h264_compatible(&cb, &w));
    w = h264(0x42401f, 1, true);
    assert_true(es_sdp_h264_compatible(&cb, &w));
    w = h264(0x4de01f, 1, true); /* main with constraint_set0+1: constrained baseline */
    assert_true(es_sdp_h264_compatible(&cb, &w));
    w = h264(0x58c01f, 1, true);
    assert_true(es_sdp_h264_compatible(&cb, &w));
    /* Other profiles. */
    w = h264(0x42001f, 1, true); /* baseline */
    assert_false(es_sdp_h264_compatible(&cb, &w));
    w = h264(0x4d001f, 1, true); /* main */
    assert_false(es_sdp_h264_compatible(&cb, &w));
    w = h264(0x64001f, 1, true); /* high */
    assert_false(es_sdp_h264_compatible(&cb, &w));
    es_sdp_codec_t hi = h264(0x640032, 1, false), chi = h264(0x640c1f, 1, true);
    w = h264(0x640034, 1, false);
    assert_true(es_sdp_h264_compatible(&hi, &w));
    assert_false(es_sdp_h264_compatible(&chi, &w)); /* constrained high vs high */
    w = h264(0x640c34, 1, true);
    assert_true(es_sdp_h264_compatible(&chi, &w));
    es_sdp_codec_t base = h264(0x42001f, 1, true);
    w = h264(0x42101f, 1, true); /* constraint_set3 alone still baseline */
    assert_true(es_sdp_h264_compatible(&base, &w));
    /* Packetization mode must match. */
    w = h264(0x42e01f, 0, true);
    assert_false(es_sdp_h264_compatible(&cb, &w));
    /* Level: ignored with level-asymmetry-allowed, else ours must not exceed theirs. */
    es_sdp_codec_t l4 = h264(0x42e028, 1, false);
    w = h264(0x42e01f, 1, false);
    assert_false(es_sdp_h264_compatible(&l4, &w));
    w.h264_level_asymmetry = true;
    assert_true(es_sdp_h264_compatible(&l4, &w));
    w = h264(0x42e01f, 1, false);
    assert_true(es_sdp_h264_compatible(&cb, &w));
    es_sdp_codec_t l1b = h264(0x42f00b, 1, false), l11 = h264(0x42e00b, 1, false), l1 = h264(0x42e00a, 1, false);
    assert_true(es_sdp_h264_compatible(&l1b, &l11));  /* 1b <= 1.1 */
    assert_false(es_sdp_h264_compatible(&l1b, &l1));  /* 1b > 1 */
    assert_false(es_sdp_h264_compatible(&l11, &l1b)); /* 1.1 > 1b */
    /* Unknown profiles and other codecs never match. */
    es_sdp_codec_t odd = h264(0x2a001f, 1, true);
    assert_false(es_sdp_h264_compatible(&odd, &odd));
    es_sdp_codec_t vp8 = simple(ES_CODEC_VP8);
    assert_false(es_sdp_h264_compatible(&vp8, &cb));
    assert_false(es_sdp_h264_compatible(NULL, &cb));
}

/* ---- trickle fragments ------------------------------------------------------------------- */

static void test_fragments(void **state)
{
    load("trickle_fragment.sdpfrag");
    es_sdp_t *s = calloc(1, sizeof *s);
    assert_int_equal(es_sdp_parse_fragment(text, text_len, s, err, sizeof err), 0);
    assert_int_equal(s->n_media, 1);
    assert_string_equal(s->media[0].mid, "audio");
    assert_string_equal(s->media[0].ice_ufrag, "EsAw");
    assert_string_equal(s->media[0].ice_pwd, "P2uYro0UCOQ4zxjKXaWCBui1");
    assert_string_equal(s->ice_ufrag, ""); /* media level only */
    assert_string_equal(s->media[0].ice_options, "trickle ice2");
    assert_int_equal(s->n_bundle, 2);
    assert_int_equal(s->n_candidates, 4);
    assert_string_equal(s->candidates[0].foundation, "1387637174");
    assert_int_equal(s->candidates[0].component, 1);
    assert_int_equal(s->candidates[0].priority, 2122260223u);
    assert_string_equal(s->candidates[0].address, "192.0.2.1");
    assert_int_equal(s->candidates[0].port, 61764);
    assert_string_equal(s->candidates[2].transport, "tcp");
    assert_int_equal(s->candidates[2].port, 9);
    assert_true(s->end_of_candidates);
    /* A full SDP parser refuses it (no v=). */
    assert_int_equal(es_sdp_parse(text, text_len, s, err, sizeof err), ES_EPROTO);

    /* Session-level credentials, LF line ends, one candidate, no m= line. */
    const char frag[] = "a=ice-ufrag:abcd\na=ice-pwd:0123456789abcdefghijkl\n"
                        "a=candidate:842163049 1 udp 1677729535 203.0.113.9 50000 typ srflx raddr 0.0.0.0 rport 0\n";
    assert_int_equal(es_sdp_parse_fragment(frag, strlen(frag), s, err, sizeof err), 0);
    assert_int_equal(s->n_media, 0);
    assert_string_equal(s->ice_ufrag, "abcd");
    assert_string_equal(s->ice_pwd, "0123456789abcdefghijkl");
    assert_int_equal(s->n_candidates, 1);
    assert_string_equal(s->candidates[0].type, "srflx");
    assert_false(s->end_of_candidates);
    /* Only end-of-candidates; and the empty fragment. */
    assert_int_equal(es_sdp_parse_fragment("a=end-of-candidates\r\n", 21, s, err, sizeof err), 0);
    assert_true(s->end_of_candidates);
    assert_int_equal(es_sdp_parse_fragment("", 0, s, err, sizeof err), 0);
    /* Skipped, not refused: a transport or type Estuary does not know. */
    const char odd[] = "a=candidate:1 1 ssltcp 1 192.0.2.1 443 typ host\r\na=candidate:1 1 udp 1 192.0.2.1 443 typ weird\r\n";
    assert_int_equal(es_sdp_parse_fragment(odd, strlen(odd), s, err, sizeof err), 0);
    assert_int_equal(s->n_candidates, 0);
    /* Malformed candidates. */
    const char *bad[] = {
        "a=candidate:1 1 udp 1 192.0.2.1 443 host\r\n",           /* no "typ" */
        "a=candidate:1 1 udp 1 192.0.2.1 70000 typ host\r\n",      /* port */
        "a=candidate:1 0 udp 1 192.0.2.1 1 typ host\r\n",          /* component 0 */
        "a=candidate:1 1 udp 4294967296 192.0.2.1 1 typ host\r\n", /* priority */
        "a=candidate:1 1 udp\r\n",
        "a=ice-ufrag:a b\r\n",
        "a=ice-pwd:\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (es_sdp_parse_fragment(bad[i], strlen(bad[i]), s, err, sizeof err) != ES_EPROTO)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(strstr(err, "line 1: "));
    }
    free(s);
}

/* ---- malformed input --------------------------------------------------------------------- */

static const char minimal[] = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

static void with_line(const char *line, int code, const char *needle)
{
    char buf[8192];
    snprintf(buf, sizeof buf, "%sm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n%s\r\n", minimal, line);
    expect_error(buf, strlen(buf), code, needle);
}

static void test_malformed(void **state)
{
    /* The exact reason and line. */
    with_line("a=rtpmap:300 VP8/90000", ES_EPROTO, "line 6: a=rtpmap: bad payload type '300'");
    with_line("a=rtpmap:96 VP8", ES_EPROTO, "bad clock rate");
    with_line("a=rtpmap:96 VP8/abc", ES_EPROTO, "bad clock rate 'abc'");
    with_line("a=rtpmap:96 VP8/90000/0", ES_EPROTO, "channel");
    with_line("a=rtpmap:-1 VP8/90000", ES_EPROTO, "bad payload type '-1'");
    with_line("a=rtpmap:96 AVeryLongEncodingNameThatGoesOnAndOn/90000", ES_EPROTO, "encoding name");
    with_line("a=fmtp:96 profile-level-id=42e0", ES_EPROTO, "profile-level-id '42e0'");
    with_line("a=fmtp:96 profile-level-id=42e0zz", ES_EPROTO, "profile-level-id");
    with_line("a=fmtp:96 packetization-mode=3", ES_EPROTO, "packetization-mode '3'");
    with_line("a=fmtp:97 apt=128", ES_EPROTO, "apt '128'");
    with_line("a=fmtp:96 profile-id=9", ES_EPROTO, "profile-id");
    with_line("a=rtcp-fb:96", ES_EPROTO, "a=rtcp-fb");
    with_line("a=rtcp-fb:x nack", ES_EPROTO, "bad payload type 'x'");
    with_line("a=extmap:0 urn:x", ES_EPROTO, "a=extmap: bad id '0'");
    with_line("a=extmap:256 urn:x", ES_EPROTO, "bad id");
    with_line("a=extmap:1 urn:x\r\na=extmap:1 urn:y", ES_EPROTO, "used twice");
    with_line("a=ssrc:4294967296 cname:x", ES_EPROTO, "bad SSRC");
    with_line("a=ssrc-group:FID 1", ES_EPROTO, "FID");
    with_line("a=fingerprint:sha-256 AB:CD:E", ES_EPROTO, "bad hex");
    with_line("a=fingerprint:sha-256 AB:CD:", ES_EPROTO, "bad hex");
    with_line("a=fingerprint:sha-256", ES_EPROTO, "fingerprint");
    with_line("a=setup:holdconn", ES_EPROTO, "a=setup");
    with_line("a=mid:has space", ES_EPROTO, "a=mid");
    with_line("a=mid:0123456789012345678901234567890123", ES_EPROTO, "a=mid");
    with_line("junk", ES_EPROTO, "line 6: expected '<type>=<value>'");
    with_line("A=b", ES_EPROTO, "expected");
    with_line("m=video 70000 UDP/TLS/RTP/SAVPF 96", ES_EPROTO, "bad port");
    with_line("m=video 9 UDP/TLS/RTP/SAVPF 96 x", ES_EPROTO, "m=: bad payload type 'x'");
    with_line("m=video 9 UDP/TLS/RTP/SAVPF", ES_EPROTO, "m=");
    with_line("m=video 9 UDP/TLS/RTP/SAVPF 128", ES_EPROTO, "'128'");
    with_line("a=group:BUNDLE 0 1 2 3 4 5 6 7 8", ES_E2BIG, "BUNDLE");
#define EXPECT(lit, code, needle) expect_error(lit, sizeof(lit) - 1, code, needle)
    EXPECT("v=0\r\no=- x 1 IN IP4 0.0.0.0\r\n", ES_EPROTO, "line 2: o=: bad session id 'x'");
    EXPECT("v=0\r\no=- 1\r\n", ES_EPROTO, "o=");
    EXPECT("v=1\r\n", ES_EPROTO, "version");
    EXPECT("o=- 1 1 IN IP4 0.0.0.0\r\nv=0\r\n", ES_EPROTO, "v=0");
    EXPECT("v=0\r\nv=0\r\n", ES_EPROTO, "second");
    EXPECT("", ES_EPROTO, "empty");
    EXPECT("\r\n\r\n", ES_EPROTO, "empty");
    EXPECT("v=0\r\ns=a\0b\r\n", ES_EPROTO, "control character");
    EXPECT("v=0\r\ns=a\rb\r\n", ES_EPROTO, "control character");
    /* Unknown attributes and rtpmaps for payload types not on the m= line are ignored. */
    char ok[1024];
    snprintf(ok, sizeof ok, "%sa=x-whatever:1 2 3\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:100 H264/90000\r\n"
                            "a=fmtp:100 packetization-mode=1\r\na=rtcp-fb:100 nack\r\na=foo\r\na=rtpmap:96 VP8/90000",
             minimal);
    es_sdp_t *s = calloc(1, sizeof *s);
    assert_int_equal(es_sdp_parse(ok, strlen(ok), s, err, sizeof err), 0); /* no final line end */
    assert_int_equal(s->media[0].n_codecs, 1);
    assert_int_equal(s->media[0].codecs[0].codec, ES_CODEC_VP8);
    assert_false(s->media[0].codecs[0].fb_nack);
    assert_int_equal(s->media[0].codecs[0].h264_packetization_mode, 0);

    /* Truncated offers: cut inside the fingerprint. */
    load("chromium_whip_sendonly.sdp");
    char *cut = strstr(text, "a=fingerprint:sha-256 C4:4");
    assert_non_null(cut);
    size_t cut_len = (size_t)(cut - text) + strlen("a=fingerprint:sha-256 C4:4");
    assert_int_equal(es_sdp_parse(text, cut_len, s, err, sizeof err), ES_EPROTO);
    assert_non_null(strstr(err, "fingerprint"));
    /* Every prefix either parses or fails cleanly. */
    for (size_t n = 0; n < text_len; n += 7) {
        int rc = es_sdp_parse(text, n, s, err, sizeof err);
        assert_true(rc == 0 || rc == ES_EPROTO);
        if (rc == 0) es_sdp_check_webrtc(s, err, sizeof err);
    }
    /* LF-only line ends parse the same. */
    static char lf[ES_SDP_MAX_TEXT];
    size_t lf_len = 0;
    for (size_t i = 0; i < text_len; i++)
        if (text[i] != '\r') lf[lf_len++] = text[i];
    es_sdp_t *crlf = parse_file("chromium_whip_sendonly.sdp");
    assert_int_equal(es_sdp_parse(lf, lf_len, s, err, sizeof err), 0);
    assert_memory_equal(s, crlf, sizeof *s);
    free(crlf);

    /* Garbage. */
    uint8_t junk[2048];
    uint32_t x = 12345;
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof junk; i++) {
            x = x * 1103515245u + 12345u;
            junk[i] = (uint8_t)(x >> 16);
        }
        junk[0] = 'v', junk[1] = '=', junk[2] = '0', junk[3] = '\n';
        int rc = es_sdp_parse((const char *)junk, sizeof junk, s, err, sizeof err);
        assert_true(rc == 0 || rc == ES_EPROTO || rc == ES_E2BIG);
    }
    free(s);

    /* Limits: text size, line length, m= sections. */
    static char big[ES_SDP_MAX_TEXT + 100];
    memset(big, 'a', sizeof big);
    memcpy(big, "v=0\r\ns=", 7);
    expect_error(big, sizeof big, ES_E2BIG, "over the limit");
    big[ES_SDP_MAX_LINE + 100] = '\n';
    expect_error(big, ES_SDP_MAX_LINE + 101, ES_E2BIG, "line 2: line longer than");
    char many[4096];
    size_t n = (size_t)snprintf(many, sizeof many, "%s", minimal);
    for (int i = 0; i < ES_SDP_MAX_MEDIA + 1; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:%d\r\n", i);
    expect_error(many, n, ES_E2BIG, "more than 8 m= sections");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chromium_whep_offer),
        cmocka_unit_test(test_chromium_whip_offer_and_answer),
        cmocka_unit_test(test_aiortc),
        cmocka_unit_test(test_firefox_whep),
        cmocka_unit_test(test_safari_whep),
        cmocka_unit_test(test_obs_whip),
        cmocka_unit_test(test_gstreamer_whip),
        cmocka_unit_test(test_directions),
        cmocka_unit_test(test_rejected_application_and_writer),
        cmocka_unit_test(test_check_webrtc),
        cmocka_unit_test(test_h264_compatible),
        cmocka_unit_test(test_fragments),
        cmocka_unit_test(test_bundle_only_and_missing_kind),
        cmocka_unit_test(test_offer_and_answer_apply),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("sdp", tests, NULL, NULL);
}
