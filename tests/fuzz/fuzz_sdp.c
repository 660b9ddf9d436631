/* libFuzzer harness for the SDP parser and answerer (src/webrtc/sdp.c). Invariants: a parsed
 * offer stays inside its bounds (counts, payload types, terminated strings); an offer that
 * passes es_sdp_check_webrtc always gets an answer, for a receiver and for a sender, that writes
 * within ES_SDP_MAX_TEXT and parses back with the same sections, mids, directions, payload types
 * and BUNDLE group; es_sdp_parse_fragment on the same bytes fails cleanly or parses. The same
 * bytes as the answer to an offer of ours (es_sdp_answer_apply) are refused with a reason or
 * negotiate only payload types, extensions and sections that the offer had. */
#include "estuary/error.h"
#include "estuary/sdp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static es_sdp_t offer, back;
static es_sdp_local_t ans;
static char out[ES_SDP_MAX_TEXT];
static char err[256];

static void check_terminated(const char *s, size_t cap)
{
    if (!memchr(s, '\0', cap)) abort();
}

static void check_bounds(const es_sdp_t *s)
{
    if (s->n_media > ES_SDP_MAX_MEDIA || s->n_bundle > ES_SDP_MAX_MEDIA || s->n_candidates > ES_SDP_MAX_CANDIDATES)
        abort();
    check_terminated(s->origin_username, sizeof s->origin_username);
    for (size_t i = 0; i < s->n_bundle; i++) check_terminated(s->bundle_mids[i], sizeof s->bundle_mids[i]);
    for (size_t i = 0; i < s->n_candidates; i++) {
        const es_sdp_candidate_t *c = &s->candidates[i];
        check_terminated(c->address, sizeof c->address);
        if (strcmp(c->transport, "udp") && strcmp(c->transport, "tcp")) abort();
        if (c->component == 0 || c->component > 256) abort();
    }
    for (size_t i = 0; i < s->n_media; i++) {
        const es_sdp_media_t *m = &s->media[i];
        if (m->n_codecs > ES_SDP_MAX_CODECS || m->n_extmaps > ES_SDP_MAX_EXTMAPS || m->fingerprint_len > 64) abort();
        check_terminated(m->mid, sizeof m->mid);
        check_terminated(m->ice_ufrag, sizeof m->ice_ufrag);
        check_terminated(m->ice_pwd, sizeof m->ice_pwd);
        check_terminated(m->cname, sizeof m->cname);
        check_terminated(m->msid, sizeof m->msid);
        check_terminated(m->fingerprint_alg, sizeof m->fingerprint_alg);
        for (size_t k = 0; k < m->n_codecs; k++) {
            const es_sdp_codec_t *c = &m->codecs[k];
            if (c->pt > 127 || c->apt > 127 || (c->codec != ES_CODEC_RTX && c->apt != -1)) abort();
            check_terminated(c->name, sizeof c->name);
            check_terminated(c->fmtp, sizeof c->fmtp);
            for (size_t j = 0; j < k; j++)
                if (m->codecs[j].pt == c->pt) abort();
        }
        for (size_t k = 0; k < m->n_extmaps; k++)
            if (m->extmaps[k].id == 0) abort();
    }
}

static es_sdp_codec_t codec(es_codec_t id, uint32_t plid)
{
    es_sdp_codec_t c;
    memset(&c, 0, sizeof c);
    c.codec = id;
    c.apt = -1;
    c.h264_packetization_mode = 1;
    c.h264_profile_level_id = plid;
    return c;
}

static void answer_round_trip(bool receive, const es_sdp_caps_t caps[2])
{
    int n = es_sdp_answer_init(&offer, receive, caps, &ans, err, sizeof err);
    if (n < 0 || (size_t)n > offer.n_media || ans.n_media != offer.n_media) abort();
    if (n == 0 && !err[0]) abort(); /* a person must learn why */
    ans.session_id = 1;
    strcpy(ans.ice_ufrag, "fuzz");
    strcpy(ans.ice_pwd, "fuzzfuzzfuzzfuzzfuzzfuzz");
    strcpy(ans.fingerprint, "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF");
    strcpy(ans.cname, "c");
    strcpy(ans.msid_stream, "s");
    strcpy(ans.candidates[0], "1 1 udp 2130706431 192.0.2.1 8000 typ host");
    ans.n_candidates = 1;
    for (size_t i = 0; i < ans.n_media; i++) ans.media[i].ssrc = receive ? 0 : 100 + (uint32_t)i;
    int len = es_sdp_local_write(&ans, out, sizeof out);
    if (len <= 0 || (size_t)len != strlen(out)) abort();
    if (es_sdp_parse(out, (size_t)len, &back, err, sizeof err) != 0) abort();
    check_bounds(&back);
    if (back.n_media != ans.n_media || !back.ice_lite) abort();
    size_t bundled = 0;
    for (size_t i = 0; i < ans.n_media; i++) {
        const es_sdp_local_media_t *a = &ans.media[i];
        const es_sdp_media_t *b = &back.media[i];
        if (strcmp(a->mid, b->mid)) abort();
        if (a->rejected) {
            if (b->port != 0 || b->dir != ES_DIR_INACTIVE) abort();
            continue;
        }
        if (a->mid[0]) {
            if (bundled >= back.n_bundle || strcmp(back.bundle_mids[bundled], a->mid)) abort();
            bundled++;
        }
        es_sdp_setup_t setup = ans.setup == ES_SETUP_ACTIVE ? ES_SETUP_ACTIVE : ES_SETUP_PASSIVE;
        if (b->port != 9 || b->dir != a->dir || !b->rtcp_mux || b->setup != setup) abort();
        if (b->n_codecs != a->n_codecs || a->n_codecs == 0) abort();
        for (size_t k = 0; k < a->n_codecs; k++)
            if (b->codecs[k].pt != a->codecs[k].pt) abort();
        if (a->dir == ES_DIR_RECVONLY && !receive) abort();
        if (a->dir == ES_DIR_SENDONLY && receive) abort();
    }
    if (bundled != back.n_bundle) abort();
}

/* Our offer: Opus audio and H.264 + VP8 video (both with RTX), mids 0 and 1. */
static void answer_apply(void)
{
    static es_sdp_local_t ours, work;
    static bool made;
    if (!made) {
        es_sdp_offer_media_t om[2];
        memset(om, 0, sizeof om);
        om[0].kind = ES_MEDIA_AUDIO;
        om[0].dir = ES_DIR_SENDONLY;
        om[0].caps.codecs[0] = codec(ES_CODEC_OPUS, 0);
        om[0].caps.codecs[0].pt = 111;
        om[0].caps.n_codecs = 1;
        om[1].kind = ES_MEDIA_VIDEO;
        om[1].dir = ES_DIR_RECVONLY;
        om[1].caps.codecs[0] = codec(ES_CODEC_H264, 0x42e01f);
        om[1].caps.codecs[0].pt = 102;
        om[1].caps.codecs[1] = codec(ES_CODEC_VP8, 0);
        om[1].caps.codecs[1].pt = 96;
        om[1].caps.n_codecs = 2;
        om[1].caps.rtx = om[1].caps.nack = om[1].caps.transport_cc = true;
        if (es_sdp_offer_init(om, 2, &ours) != 0) abort();
        made = true;
    }
    work = ours;
    int n = es_sdp_answer_apply(&work, &offer, err, sizeof err);
    if (n < 0) {
        if (n != ES_EPROTO || !err[0]) abort();
        return;
    }
    if ((size_t)n > ours.n_media || work.n_media != ours.n_media) abort();
    for (size_t i = 0; i < work.n_media; i++) {
        const es_sdp_local_media_t *m = &work.media[i];
        if (m->n_codecs > 2) abort();
        for (size_t k = 0; k < m->n_codecs; k++) {
            bool offered = false;
            for (size_t j = 0; j < ours.media[i].n_codecs; j++)
                offered |= ours.media[i].codecs[j].pt == m->codecs[k].pt;
            if (!offered) abort();
        }
        if (ours.media[i].dir == ES_DIR_SENDONLY && m->dir == ES_DIR_RECVONLY) abort();
        if (ours.media[i].dir == ES_DIR_RECVONLY && m->dir == ES_DIR_SENDONLY) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    int rc = es_sdp_parse_fragment(text, size, &offer, err, sizeof err);
    if (rc != 0 && rc != ES_EPROTO && rc != ES_E2BIG) abort();
    if (rc == 0) check_bounds(&offer);
    if ((rc != 0) != (err[0] != '\0')) abort();

    rc = es_sdp_parse(text, size, &offer, err, sizeof err);
    if (rc != 0 && rc != ES_EPROTO && rc != ES_E2BIG) abort();
    if (rc != 0) {
        if (!err[0]) abort();
        return 0;
    }
    check_bounds(&offer);
    answer_apply();
    if (es_sdp_check_webrtc(&offer, err, sizeof err) != 0) {
        if (!err[0]) abort();
        return 0;
    }
    es_sdp_caps_t caps[2];
    memset(caps, 0, sizeof caps);
    caps[0].codecs[0] = codec(ES_CODEC_OPUS, 0);
    caps[0].n_codecs = 1;
    caps[1].codecs[0] = codec(ES_CODEC_H264, 0x42e01f);
    caps[1].codecs[1] = codec(ES_CODEC_VP8, 0);
    caps[1].codecs[2] = codec(ES_CODEC_VP9, 0);
    caps[1].codecs[3] = codec(ES_CODEC_AV1, 0);
    caps[1].n_codecs = 4;
    for (int i = 0; i < 2; i++)
        caps[i].rtx = caps[i].nack = caps[i].pli = caps[i].fir = caps[i].transport_cc = caps[i].remb = true;
    answer_round_trip(true, caps);
    caps[1].codecs[0] = codec(ES_CODEC_H264, 0x640c2a);
    caps[1].n_codecs = 1;
    caps[1].rtx = caps[1].transport_cc = false;
    answer_round_trip(false, caps);
    return 0;
}
