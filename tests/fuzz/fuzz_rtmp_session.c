/* libFuzzer harness for the RTMP server session (src/rtmp/session.c). A valid plain handshake
 * is fed first, then the input after its first byte, which chooses the split size and how the
 * callbacks answer. Invariants: whatever the session sends parses as a chunk stream whose
 * commands are valid AMF0; once an error is returned every later call returns it; the role
 * matches what the callbacks accepted; on_stop comes at most once per accepted publish/play;
 * media only reaches on_media from an accepted publisher; a player accepts media, also from
 * inside on_play. */
#include "estuary/amf0.h"
#include "estuary/error.h"
#include "estuary/rtmp_chunk.h"
#include "estuary/rtmp_handshake.h"
#include "estuary/rtmp_session.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct state {
    uint8_t flags;
    es_rtmp_session_t *s;
    es_rtmp_chunk_reader_t *client; /* reads what the session sends */
    size_t handshake_left;          /* S0 S1 S2 bytes still to skip */
    int accepted, stops, in_callback;
    es_amf0_doc_t doc;
} state_t;

static const int answers[] = {0, ES_EEXIST, ES_EACCES, ES_ENOENT, ES_EBUSY, 0, 0, 0};

static void on_send(void *user, const uint8_t *buf, size_t len)
{
    state_t *st = user;
    if (st->handshake_left) {
        size_t skip = len < st->handshake_left ? len : st->handshake_left;
        buf += skip;
        len -= skip;
        st->handshake_left -= skip;
    }
    while (len) {
        es_rtmp_msg_t m;
        size_t used;
        int rc = es_rtmp_chunk_feed(st->client, buf, len, &used, &m);
        if (rc < 0 || used > len) abort();
        buf += used;
        len -= used;
        if (rc == 0) break;
        if (m.type == ES_RTMP_MSG_COMMAND_AMF0 &&
            (es_amf0_decode(&st->doc, m.payload, m.len) != 0 ||
             !es_amf0_at(&st->doc, 0) || es_amf0_at(&st->doc, 0)->type != ES_AMF0_STRING))
            abort();
    }
    /* One send call carries whole messages only. */
}

static int on_connect(void *user, const es_rtmp_connect_info_t *i, char *reason, size_t n)
{
    state_t *st = user;
    if (!i->app || !i->app_query || !i->tc_url || !i->flash_ver) abort();
    if (strlen(i->app) > ES_RTMP_NAME_MAX || strlen(i->app_query) > ES_RTMP_QUERY_MAX) abort();
    if (st->flags & 0x80) {
        strncpy(reason, "refused by the fuzzer", n - 1);
        return ES_EACCES;
    }
    return 0;
}

static int answer(state_t *st, const char *name, const char *query, int shift)
{
    if (!name[0] || strlen(name) > ES_RTMP_NAME_MAX || strlen(query) > ES_RTMP_QUERY_MAX)
        abort();
    int rc = answers[(st->flags >> shift) & 7];
    if (rc == 0) st->accepted++;
    return rc;
}

static int on_publish(void *user, const char *name, const char *query, char *reason, size_t n)
{
    state_t *st = user;
    if (es_rtmp_session_role(st->s) != ES_RTMP_ROLE_NONE) abort();
    return answer(st, name, query, 0);
}

static int on_play(void *user, const char *name, const char *query, char *reason, size_t n)
{
    state_t *st = user;
    if (es_rtmp_session_role(st->s) != ES_RTMP_ROLE_NONE) abort();
    /* A GOP cache sent from inside the callback is held back (or dropped on refusal). */
    static const uint8_t key[200] = {0x17, 0x01};
    if (es_rtmp_session_send_media(st->s, ES_RTMP_MSG_VIDEO, 0, key, sizeof key) != 0) abort();
    return answer(st, name, query, 3);
}

static void on_media(void *user, uint8_t type, uint32_t ts, const uint8_t *p, size_t len)
{
    state_t *st = user;
    if (es_rtmp_session_role(st->s) != ES_RTMP_ROLE_PUBLISHER) abort();
    if (type != ES_RTMP_MSG_AUDIO && type != ES_RTMP_MSG_VIDEO && type != ES_RTMP_MSG_DATA_AMF0)
        abort();
    volatile uint8_t sum = 0;
    for (size_t i = 0; i < len; i++) sum ^= p[i]; /* the payload is readable */
    (void)sum;
}

static void on_stop(void *user)
{
    state_t *st = user;
    st->stops++;
    if (st->stops > st->accepted) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static state_t st;
    memset(&st, 0, sizeof st);
    st.flags = data[0];
    st.handshake_left = 1 + 2 * ES_RTMP_HANDSHAKE_SIZE;
    es_rtmp_session_params_t p = {
        .chunk_size = 128u << (data[0] & 3), .window_ack_size = 5000,
        .cb = {on_send, on_connect, on_publish, on_play, on_media, on_stop}, .user = &st};
    st.s = es_rtmp_session_new(&p);
    st.client = es_rtmp_chunk_reader_new(0);
    if (!st.s || !st.client) abort();
    static uint8_t hs[1 + 2 * ES_RTMP_HANDSHAKE_SIZE];
    hs[0] = 3;
    if (es_rtmp_session_handle_bytes(st.s, hs, sizeof hs) != 0) abort();
    if (!es_rtmp_session_handshake_done(st.s) || st.handshake_left) abort();

    size_t split = 1 + (data[0] >> 2) % 64, off = 1;
    int err = 0;
    while (off < size) {
        size_t n = size - off < split ? size - off : split;
        int rc = es_rtmp_session_handle_bytes(st.s, data + off, n);
        off += n;
        if (err && rc != err) abort();
        if (rc < 0) {
            err = rc;
            if (!es_rtmp_session_error(st.s)[0]) abort();
            continue;
        }
        es_rtmp_role_t role = es_rtmp_session_role(st.s);
        if (role == ES_RTMP_ROLE_PLAYER) {
            static const uint8_t frame[300] = {0x17, 0x01};
            if (es_rtmp_session_send_media(st.s, ES_RTMP_MSG_VIDEO, (uint32_t)off, frame,
                                           sizeof frame) != 0 ||
                es_rtmp_session_send_status(st.s, "status", "NetStream.Play.PublishNotify",
                                            "back") != 0)
                abort();
        } else if (es_rtmp_session_send_media(st.s, ES_RTMP_MSG_AUDIO, 0, hs, 1) != ES_EINVAL) {
            abort();
        }
        if (role != ES_RTMP_ROLE_NONE && st.accepted <= st.stops) abort();
    }
    if (!err && es_rtmp_session_bytes_in(st.s) != sizeof hs + size - 1) abort();
    es_rtmp_session_free(st.s);
    es_rtmp_chunk_reader_free(st.client);
    return 0;
}
