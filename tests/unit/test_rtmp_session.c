/* Unit tests for src/rtmp/session.c, driven as OBS and FFmpeg drive a server: handshake,
 * connect, releaseStream/FCPublish/createStream, publish with a query, @setDataFrame, media
 * with timestamps, aggregate messages, ping, acknowledgements, FCUnpublish/deleteStream; a
 * player's status sequence and media; refusals; malformed input. What the session sends is
 * parsed with our own chunk reader and AMF0 decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "estuary/amf0.h"
#include "estuary/bytes.h"
#include "estuary/error.h"
#include "estuary/rtmp_chunk.h"
#include "estuary/rtmp_handshake.h"
#include "estuary/rtmp_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct media {
    uint8_t type;
    uint32_t ts;
    size_t len;
    uint8_t head[16];
} media_t;

/* A client talking to one session. */
typedef struct peer {
    es_rtmp_session_t *s;
    uint8_t *out;             /* everything the session sent */
    size_t out_len, out_cap, parsed;
    es_rtmp_chunk_reader_t *rd;
    es_rtmp_msg_t msg;        /* the last message read from out */
    uint8_t payload[70000];
    es_amf0_doc_t doc;
    size_t split;             /* feed the session in pieces of this many bytes (0: whole) */
    /* callbacks */
    int connects, publishes, plays, stops;
    char app[300], app_query[600], tc_url[1100], flash_ver[300], name[300], query[600];
    int connect_rc, publish_rc, play_rc;
    const char *reason;
    media_t media[64];
    size_t n_media;
    int send_in_play;         /* es_rtmp_session_send_media's result from inside on_play */
} peer_t;

static void cb_send(void *user, const uint8_t *buf, size_t len)
{
    peer_t *p = user;
    if (p->out_len + len > p->out_cap) {
        p->out_cap = (p->out_len + len) * 2;
        p->out = realloc(p->out, p->out_cap);
    }
    memcpy(p->out + p->out_len, buf, len);
    p->out_len += len;
}

static int cb_connect(void *user, const es_rtmp_connect_info_t *i, char *reason, size_t rl)
{
    peer_t *p = user;
    p->connects++;
    snprintf(p->app, sizeof p->app, "%s", i->app);
    snprintf(p->app_query, sizeof p->app_query, "%s", i->app_query);
    snprintf(p->tc_url, sizeof p->tc_url, "%s", i->tc_url);
    snprintf(p->flash_ver, sizeof p->flash_ver, "%s", i->flash_ver);
    if (p->reason) snprintf(reason, rl, "%s", p->reason);
    return p->connect_rc;
}

static int cb_publish(void *user, const char *name, const char *query, char *reason, size_t rl)
{
    peer_t *p = user;
    p->publishes++;
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->query, sizeof p->query, "%s", query);
    if (p->reason) snprintf(reason, rl, "%s", p->reason);
    return p->publish_rc;
}

static int cb_play(void *user, const char *name, const char *query, char *reason, size_t rl)
{
    peer_t *p = user;
    p->plays++;
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->query, sizeof p->query, "%s", query);
    if (p->reason) snprintf(reason, rl, "%s", p->reason);
    p->send_in_play = es_rtmp_session_send_media(p->s, ES_RTMP_MSG_VIDEO, 0, (const uint8_t *)"x", 1);
    return p->play_rc;
}

static void cb_media(void *user, uint8_t type, uint32_t ts, const uint8_t *payload, size_t len)
{
    peer_t *p = user;
    assert_true(p->n_media < 64);
    media_t *m = &p->media[p->n_media++];
    m->type = type;
    m->ts = ts;
    m->len = len;
    memcpy(m->head, payload, len < 16 ? len : 16);
}

static void cb_stop(void *user) { ((peer_t *)user)->stops++; }

static peer_t *peer_new(void)
{
    peer_t *p = calloc(1, sizeof *p);
    es_rtmp_session_params_t params = {
        .chunk_size = 4096, .window_ack_size = 2500000,
        .cb = {cb_send, cb_connect, cb_publish, cb_play, cb_media, cb_stop}, .user = p};
    p->s = es_rtmp_session_new(&params);
    assert_non_null(p->s);
    p->rd = es_rtmp_chunk_reader_new(0);
    return p;
}

static void peer_free(peer_t *p)
{
    es_rtmp_session_free(p->s);
    es_rtmp_chunk_reader_free(p->rd);
    free(p->out);
    free(p);
}

/* Bytes to the session, in pieces of p->split. Returns the first error or 0. */
static int feed(peer_t *p, const uint8_t *b, size_t n)
{
    size_t step = p->split ? p->split : n;
    for (size_t off = 0; off < n; off += step) {
        int rc = es_rtmp_session_handle_bytes(p->s, b + off, n - off < step ? n - off : step);
        if (rc < 0) return rc;
    }
    return 0;
}

static void handshake(peer_t *p)
{
    uint8_t c0c1[1 + ES_RTMP_HANDSHAKE_SIZE] = {3};
    for (size_t i = 9; i < sizeof c0c1; i++) c0c1[i] = (uint8_t)(i * 13);
    assert_int_equal(feed(p, c0c1, sizeof c0c1), 0);
    assert_int_equal(p->out_len, 1 + 2 * ES_RTMP_HANDSHAKE_SIZE);
    assert_int_equal(p->out[0], 3);
    assert_memory_equal(p->out + 1 + ES_RTMP_HANDSHAKE_SIZE, c0c1 + 1, ES_RTMP_HANDSHAKE_SIZE);
    assert_false(es_rtmp_session_handshake_done(p->s));
    /* C2 echoes S1. */
    assert_int_equal(feed(p, p->out + 1, ES_RTMP_HANDSHAKE_SIZE), 0);
    assert_true(es_rtmp_session_handshake_done(p->s));
    p->parsed = p->out_len;
}

/* One message to the session at the default chunk size 128. */
static int send_msg(peer_t *p, uint32_t csid, uint8_t type, uint32_t msid, uint32_t ts,
                    const uint8_t *payload, size_t len)
{
    size_t cap = es_rtmp_chunk_write_size(csid, ts, len, 128);
    uint8_t *buf = malloc(cap);
    es_rtmp_msg_t m = {.csid = csid, .type = type, .stream_id = msid, .timestamp = ts,
                       .payload = payload, .len = len};
    assert_int_equal(es_rtmp_chunk_write(&m, 128, buf, cap), (int)cap);
    int rc = feed(p, buf, cap);
    free(buf);
    return rc;
}

/* A command: name, txn, then null and an optional string argument (and a second one). */
static int send_cmd(peer_t *p, uint32_t msid, const char *name, double txn, const char *arg,
                    const char *arg2)
{
    uint8_t b[4096];
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, b, sizeof b);
    es_amf0_put_string(&w, name);
    es_amf0_put_number(&w, txn);
    es_amf0_put_null(&w);
    if (arg) es_amf0_put_string(&w, arg);
    if (arg2) es_amf0_put_string(&w, arg2);
    return send_msg(p, msid ? 8 : 3, ES_RTMP_MSG_COMMAND_AMF0, msid, 0, b,
                    (size_t)es_amf0_writer_len(&w));
}

static int send_connect(peer_t *p, const char *app)
{
    uint8_t b[4096];
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, b, sizeof b);
    es_amf0_put_string(&w, "connect");
    es_amf0_put_number(&w, 1);
    es_amf0_put_object_begin(&w);
    es_amf0_put_prop_string(&w, "app", app);
    es_amf0_put_prop_string(&w, "type", "nonprivate");
    es_amf0_put_prop_string(&w, "flashVer", "FMLE/3.0 (compatible; FMSc/1.0)");
    es_amf0_put_prop_string(&w, "tcUrl", "rtmp://127.0.0.1/live");
    es_amf0_put_prop_number(&w, "objectEncoding", 0);
    es_amf0_put_object_end(&w);
    return send_msg(p, 3, ES_RTMP_MSG_COMMAND_AMF0, 0, 0, b, (size_t)es_amf0_writer_len(&w));
}

/* The next message the session sent, into p->msg (false when none is complete). */
static bool next_msg(peer_t *p)
{
    while (p->parsed < p->out_len) {
        size_t used;
        int rc = es_rtmp_chunk_feed(p->rd, p->out + p->parsed, p->out_len - p->parsed, &used,
                                    &p->msg);
        p->parsed += used;
        assert_true(rc >= 0);
        if (rc == 1) {
            memcpy(p->payload, p->msg.payload, p->msg.len);
            p->msg.payload = p->payload;
            return true;
        }
    }
    return false;
}

/* The next message must be a command (or data) named `name`; for onStatus, _result and _error
 * with an info object as 4th value, its code must be `code` (unless NULL). */
static void expect_cmd(peer_t *p, uint8_t type, const char *name, const char *code)
{
    assert_true(next_msg(p));
    assert_int_equal(p->msg.type, type);
    assert_int_equal(es_amf0_decode(&p->doc, p->msg.payload, p->msg.len), 0);
    const es_amf0_node_t *n = es_amf0_at(&p->doc, 0);
    if (!es_amf0_is_string(n, name)) fail_msg("expected %s, got %.*s", name, (int)n->str_len, n->str);
    if (code) {
        const es_amf0_node_t *code_n = es_amf0_get(&p->doc, es_amf0_at(&p->doc, 3), "code");
        if (!es_amf0_is_string(code_n, code))
            fail_msg("expected %s, got %.*s", code, code_n ? (int)code_n->str_len : 4,
                     code_n ? code_n->str : "none");
    }
}

static void expect_control(peer_t *p, uint8_t type, uint32_t value)
{
    assert_true(next_msg(p));
    assert_int_equal(p->msg.type, type);
    assert_int_equal(p->msg.csid, 2);
    assert_int_equal(p->msg.stream_id, 0);
    assert_true(p->msg.len >= 4);
    assert_int_equal(es_rd32(p->msg.payload), value);
}

static void connect_ok(peer_t *p, const char *app)
{
    handshake(p);
    assert_int_equal(send_connect(p, app), 0);
    expect_control(p, ES_RTMP_MSG_WINDOW_ACK_SIZE, 2500000);
    expect_control(p, ES_RTMP_MSG_SET_PEER_BANDWIDTH, 2500000);
    assert_int_equal(p->msg.len, 5);
    assert_int_equal(p->msg.payload[4], 2); /* dynamic */
    expect_control(p, ES_RTMP_MSG_SET_CHUNK_SIZE, 4096);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "_result", "NetConnection.Connect.Success");
    assert_true(es_amf0_at(&p->doc, 1)->number == 1.0);
    const es_amf0_node_t *props = es_amf0_at(&p->doc, 2);
    assert_true(es_amf0_is_string(es_amf0_get(&p->doc, props, "fmsVer"), "FMS/3,5,3,888"));
    assert_true(es_amf0_get(&p->doc, props, "capabilities")->number == 127.0);
    const es_amf0_node_t *info = es_amf0_at(&p->doc, 3);
    assert_true(es_amf0_is_string(es_amf0_get(&p->doc, info, "level"), "status"));
    assert_true(es_amf0_get(&p->doc, info, "objectEncoding")->number == 0.0);
    assert_false(next_msg(p));
}

static void create_stream(peer_t *p, double txn)
{
    assert_int_equal(send_cmd(p, 0, "createStream", txn, NULL, NULL), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "_result", NULL);
    assert_true(es_amf0_at(&p->doc, 1)->number == txn);
    assert_int_equal(es_amf0_at(&p->doc, 2)->type, ES_AMF0_NULL);
    assert_true(es_amf0_at(&p->doc, 3)->number == 1.0);
}

static void publish_ok(peer_t *p)
{
    connect_ok(p, "live?token=abc");
    assert_string_equal(p->app, "live");
    assert_string_equal(p->app_query, "token=abc");
    assert_string_equal(p->tc_url, "rtmp://127.0.0.1/live");
    assert_string_equal(p->flash_ver, "FMLE/3.0 (compatible; FMSc/1.0)");
    /* Media before publish is ignored. */
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_VIDEO, 1, 0, (const uint8_t *)"\x17", 1), 0);
    assert_int_equal(p->n_media, 0);
    assert_int_equal(send_cmd(p, 0, "releaseStream", 2, "cam?k=v", NULL), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "_result", NULL);
    assert_int_equal(send_cmd(p, 0, "FCPublish", 3, "cam?k=v", NULL), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onFCPublish", "NetStream.Publish.Start");
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "_result", NULL);
    create_stream(p, 4);
    assert_int_equal(send_cmd(p, 1, "publish", 5, "cam?k=v&t=2", "live"), 0);
    assert_int_equal(p->publishes, 1);
    assert_string_equal(p->name, "cam");
    assert_string_equal(p->query, "k=v&t=2");
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Publish.Start");
    assert_int_equal(p->msg.stream_id, 1);
    assert_int_equal(es_rtmp_session_role(p->s), ES_RTMP_ROLE_PUBLISHER);
}

static void check_publish_session(size_t split)
{
    peer_t *p = peer_new();
    p->split = split;
    publish_ok(p);
    /* @setDataFrame onMetaData {...} */
    uint8_t b[256];
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, b, sizeof b);
    es_amf0_put_string(&w, "@setDataFrame");
    es_amf0_put_string(&w, "onMetaData");
    es_amf0_put_ecma_array_begin(&w, 1);
    es_amf0_put_prop_number(&w, "width", 1280);
    es_amf0_put_object_end(&w);
    int mlen = es_amf0_writer_len(&w);
    assert_int_equal(send_msg(p, 4, ES_RTMP_MSG_DATA_AMF0, 1, 0, b, (size_t)mlen), 0);
    assert_int_equal(p->n_media, 1);
    assert_int_equal(p->media[0].type, ES_RTMP_MSG_DATA_AMF0);
    assert_int_equal(p->media[0].len, (size_t)mlen - 16);
    assert_memory_equal(p->media[0].head, "\x02\x00\x0aonMetaData", 13);
    /* Video and audio; a large video frame spans chunks; timestamps past 0xffffff. */
    static uint8_t frame[10000];
    frame[0] = 0x17;
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_VIDEO, 1, 0, frame, sizeof frame), 0);
    assert_int_equal(send_msg(p, 4, ES_RTMP_MSG_AUDIO, 1, 23, (const uint8_t *)"\xaf\x01", 2), 0);
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_VIDEO, 1, 0x1000000, frame, 300), 0);
    /* An aggregate of two sub-messages at 100 and 140, sent with timestamp 1000. */
    uint8_t agg[2 * (11 + 3 + 4)], *a = agg;
    const uint8_t sub_types[2] = {ES_RTMP_MSG_VIDEO, ES_RTMP_MSG_AUDIO};
    const uint32_t sub_ts[2] = {100, 140};
    for (int i = 0; i < 2; i++) {
        a[0] = sub_types[i];
        a[1] = 0, a[2] = 0, a[3] = 3;
        a[4] = 0, a[5] = 0, a[6] = (uint8_t)sub_ts[i], a[7] = 0;
        a[8] = a[9] = a[10] = 0;
        a[11] = 0x27, a[12] = 1, a[13] = (uint8_t)i;
        es_wr32(a + 14, 14);
        a += 18;
    }
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_AGGREGATE, 1, 1000, agg, sizeof agg), 0);
    assert_int_equal(p->n_media, 6);
    assert_int_equal(p->media[1].type, ES_RTMP_MSG_VIDEO);
    assert_int_equal(p->media[1].len, sizeof frame);
    assert_int_equal(p->media[1].ts, 0);
    assert_int_equal(p->media[2].type, ES_RTMP_MSG_AUDIO);
    assert_int_equal(p->media[2].ts, 23);
    assert_int_equal(p->media[3].ts, 0x1000000);
    assert_int_equal(p->media[4].type, ES_RTMP_MSG_VIDEO);
    assert_int_equal(p->media[4].ts, 1000);
    assert_int_equal(p->media[4].len, 3);
    assert_int_equal(p->media[4].head[2], 0);
    assert_int_equal(p->media[5].type, ES_RTMP_MSG_AUDIO);
    assert_int_equal(p->media[5].ts, 1040);
    assert_int_equal(p->media[5].head[2], 1);
    /* PingRequest -> PingResponse with the same timestamp. */
    const uint8_t ping[6] = {0, 6, 0, 0, 0x12, 0x34};
    assert_int_equal(send_msg(p, 2, ES_RTMP_MSG_USER_CONTROL, 0, 0, ping, 6), 0);
    assert_true(next_msg(p));
    assert_int_equal(p->msg.type, ES_RTMP_MSG_USER_CONTROL);
    assert_memory_equal(p->msg.payload, "\x00\x07\x00\x00\x12\x34", 6);
    /* The client's Window Acknowledgement Size: an Acknowledgement after that many bytes. */
    const uint8_t win[4] = {0, 0, 0x10, 0}; /* 4096 */
    assert_int_equal(send_msg(p, 2, ES_RTMP_MSG_WINDOW_ACK_SIZE, 0, 0, win, 4), 0);
    /* More than 4096 bytes came already: acknowledged at once. */
    assert_true(next_msg(p));
    assert_int_equal(p->msg.type, ES_RTMP_MSG_ACK);
    uint32_t acked = es_rd32(p->msg.payload);
    assert_int_equal(acked, (uint32_t)es_rtmp_session_bytes_in(p->s));
    assert_false(next_msg(p));
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_VIDEO, 1, 2000, frame, 3000), 0);
    assert_false(next_msg(p));
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_VIDEO, 1, 2040, frame, 3000), 0);
    assert_true(next_msg(p));
    assert_int_equal(p->msg.type, ES_RTMP_MSG_ACK);
    assert_true(es_rd32(p->msg.payload) >= acked + 4096);
    assert_true(es_rd32(p->msg.payload) <= (uint32_t)es_rtmp_session_bytes_in(p->s));
    assert_false(next_msg(p));
    assert_int_equal(es_rtmp_session_stats(p->s).acks_sent, 2);
    /* Unknown commands are counted, not answered. */
    assert_int_equal(send_cmd(p, 0, "someCustomCall", 9, NULL, NULL), 0);
    assert_false(next_msg(p));
    assert_int_equal(es_rtmp_session_stats(p->s).ignored_commands, 1);
    /* A publisher cannot be sent media. */
    assert_int_equal(es_rtmp_session_send_media(p->s, ES_RTMP_MSG_VIDEO, 0, frame, 1),
                     ES_EINVAL);
    /* FCUnpublish, then deleteStream: on_stop once. */
    assert_int_equal(send_cmd(p, 0, "FCUnpublish", 10, "cam", NULL), 0);
    assert_int_equal(p->stops, 1);
    assert_int_equal(es_rtmp_session_role(p->s), ES_RTMP_ROLE_NONE);
    uint8_t del[64];
    es_amf0_writer_init(&w, del, sizeof del);
    es_amf0_put_string(&w, "deleteStream");
    es_amf0_put_number(&w, 0);
    es_amf0_put_null(&w);
    es_amf0_put_number(&w, 1);
    assert_int_equal(send_msg(p, 3, ES_RTMP_MSG_COMMAND_AMF0, 0, 0, del,
                              (size_t)es_amf0_writer_len(&w)), 0);
    assert_int_equal(p->stops, 1);
    /* Media after the stop is ignored. */
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_VIDEO, 1, 3000, frame, 10), 0);
    assert_int_equal(p->n_media, 8);
    assert_string_equal(es_rtmp_session_error(p->s), "");
    peer_free(p);
}

static void test_publish(void **state) { check_publish_session(0); }
static void test_publish_byte_by_byte(void **state) { check_publish_session(1); }
static void test_publish_odd_splits(void **state) { check_publish_session(77); }

static void test_play(void **state)
{
    peer_t *p = peer_new();
    connect_ok(p, "live");
    assert_string_equal(p->app_query, "");
    create_stream(p, 2);
    /* FFmpeg asks for the length first. */
    assert_int_equal(send_cmd(p, 1, "getStreamLength", 3, "cam", NULL), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "_result", NULL);
    assert_int_equal(send_cmd(p, 1, "play", 4, "cam?token=t", NULL), 0);
    assert_int_equal(p->plays, 1);
    assert_string_equal(p->name, "cam");
    assert_string_equal(p->query, "token=t");
    assert_int_equal(p->send_in_play, 0); /* held back until the status sequence is out */
    assert_true(next_msg(p));
    assert_int_equal(p->msg.type, ES_RTMP_MSG_USER_CONTROL);
    assert_memory_equal(p->msg.payload, "\x00\x00\x00\x00\x00\x01", 6); /* StreamBegin 1 */
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Play.Reset");
    assert_int_equal(p->msg.stream_id, 1);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Play.Start");
    expect_cmd(p, ES_RTMP_MSG_DATA_AMF0, "|RtmpSampleAccess", NULL);
    /* Then what the owner sent from inside on_play. */
    assert_true(next_msg(p));
    assert_int_equal(p->msg.type, ES_RTMP_MSG_VIDEO);
    assert_int_equal(p->msg.stream_id, 1);
    assert_int_equal(p->msg.len, 1);
    assert_int_equal(p->msg.payload[0], 'x');
    assert_false(next_msg(p));
    assert_int_equal(es_rtmp_session_role(p->s), ES_RTMP_ROLE_PLAYER);
    /* Media out, at our chunk size 4096, extended timestamps included. */
    static uint8_t frame[9000];
    for (size_t i = 0; i < sizeof frame; i++) frame[i] = (uint8_t)i;
    const uint8_t meta[] = "\x02\x00\x0aonMetaData\x05";
    assert_int_equal(es_rtmp_session_send_media(p->s, ES_RTMP_MSG_DATA_AMF0, 0, meta, 14), 0);
    assert_int_equal(es_rtmp_session_send_media(p->s, ES_RTMP_MSG_VIDEO, 0x1000001, frame,
                                                sizeof frame), 0);
    assert_int_equal(es_rtmp_session_send_media(p->s, ES_RTMP_MSG_AUDIO, 40, frame, 7), 0);
    assert_int_equal(es_rtmp_session_send_media(p->s, ES_RTMP_MSG_USER_CONTROL, 0, frame, 6),
                     ES_EINVAL);
    assert_true(next_msg(p));
    assert_int_equal(p->msg.type, ES_RTMP_MSG_DATA_AMF0);
    assert_int_equal(p->msg.len, 14);
    assert_true(next_msg(p));
    assert_int_equal(p->msg.type, ES_RTMP_MSG_VIDEO);
    assert_int_equal(p->msg.stream_id, 1);
    assert_int_equal(p->msg.timestamp, 0x1000001);
    assert_int_equal(p->msg.len, sizeof frame);
    assert_memory_equal(p->msg.payload, frame, sizeof frame);
    assert_true(next_msg(p));
    assert_int_equal(p->msg.type, ES_RTMP_MSG_AUDIO);
    assert_int_equal(p->msg.timestamp, 40);
    assert_int_not_equal(p->msg.csid, 6);
    /* Status notices on the play stream. */
    assert_int_equal(es_rtmp_session_send_status(p->s, "status", "NetStream.Play.UnpublishNotify",
                                                 "cam is unpublished"), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Play.UnpublishNotify");
    assert_int_equal(p->msg.stream_id, 1);
    /* A player's SetBufferLength is accepted silently. */
    const uint8_t sbl[10] = {0, 3, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8};
    assert_int_equal(send_msg(p, 2, ES_RTMP_MSG_USER_CONTROL, 0, 0, sbl, sizeof sbl), 0);
    assert_false(next_msg(p));
    /* closeStream ends the play. */
    assert_int_equal(send_cmd(p, 1, "closeStream", 0, NULL, NULL), 0);
    assert_int_equal(p->stops, 1);
    assert_int_equal(es_rtmp_session_send_media(p->s, ES_RTMP_MSG_AUDIO, 0, frame, 1), ES_EINVAL);
    assert_int_equal(es_rtmp_session_send_status(p->s, "status", "x", "y"), ES_EINVAL);
    peer_free(p);
}

static void test_refusals(void **state)
{
    /* Already published: BadName, the connection stays. */
    peer_t *p = peer_new();
    p->publish_rc = ES_EEXIST;
    connect_ok(p, "live");
    create_stream(p, 2);
    assert_int_equal(send_cmd(p, 1, "publish", 3, "cam", "live"), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Publish.BadName");
    assert_true(es_amf0_is_string(es_amf0_get(&p->doc, es_amf0_at(&p->doc, 3), "level"), "error"));
    assert_int_equal(es_rtmp_session_role(p->s), ES_RTMP_ROLE_NONE);
    /* Media is still ignored. */
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_VIDEO, 1, 0, (const uint8_t *)"\x17", 1), 0);
    assert_int_equal(p->n_media, 0);
    peer_free(p);

    /* Unauthorized: the session ends with ES_EACCES. */
    p = peer_new();
    p->publish_rc = ES_EACCES;
    p->reason = "bad token";
    connect_ok(p, "live");
    create_stream(p, 2);
    assert_int_equal(send_cmd(p, 1, "publish", 3, "cam?token=wrong", "live"), ES_EACCES);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Publish.Unauthorized");
    const es_amf0_node_t *d = es_amf0_get(&p->doc, es_amf0_at(&p->doc, 3), "description");
    assert_non_null(d);
    char text[300];
    snprintf(text, sizeof text, "%.*s", (int)d->str_len, d->str);
    assert_non_null(strstr(text, "bad token"));
    assert_non_null(strstr(es_rtmp_session_error(p->s), "bad token"));
    /* Dead: every later call fails the same way. */
    assert_int_equal(send_cmd(p, 1, "publish", 4, "cam", "live"), ES_EACCES);
    assert_int_equal(p->publishes, 1);
    peer_free(p);

    /* Other failure: Publish.Failed. */
    p = peer_new();
    p->publish_rc = ES_EBUSY;
    connect_ok(p, "live");
    assert_int_equal(send_cmd(p, 1, "publish", 3, "cam", "live"), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Publish.Failed");
    peer_free(p);

    /* connect refused: _error NetConnection.Connect.Rejected with the reason. */
    p = peer_new();
    p->connect_rc = ES_EACCES;
    p->reason = "no such app";
    handshake(p);
    assert_int_equal(send_connect(p, "nope"), ES_EACCES);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "_error", "NetConnection.Connect.Rejected");
    d = es_amf0_get(&p->doc, es_amf0_at(&p->doc, 3), "description");
    assert_int_equal(d->str_len, strlen("no such app"));
    peer_free(p);

    /* Play: not found keeps the connection, unauthorized ends it. */
    p = peer_new();
    p->play_rc = ES_ENOENT;
    connect_ok(p, "live");
    assert_int_equal(send_cmd(p, 1, "play", 3, "nothing", NULL), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Play.StreamNotFound");
    assert_false(next_msg(p)); /* the media sent from inside on_play was dropped */
    assert_int_equal(es_rtmp_session_role(p->s), ES_RTMP_ROLE_NONE);
    p->play_rc = ES_EACCES;
    assert_int_equal(send_cmd(p, 1, "play", 4, "cam", NULL), ES_EACCES);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Play.Failed");
    peer_free(p);
}

/* Admission hooks answer later: publish/play return ES_EAGAIN, the client's media and further
 * publish/play are ignored meanwhile, and es_rtmp_session_complete sends the answer. */
static void test_late_answers(void **state)
{
    peer_t *p = peer_new();
    p->publish_rc = ES_EAGAIN;
    connect_ok(p, "live");
    create_stream(p, 2);
    assert_int_equal(es_rtmp_session_complete(p->s, 0, ""), ES_EINVAL); /* nothing pending */
    assert_int_equal(send_cmd(p, 1, "publish", 3, "cam", "live"), 0);
    assert_true(es_rtmp_session_pending(p->s));
    assert_false(next_msg(p));
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_VIDEO, 1, 0, (const uint8_t *)"\x17", 1), 0);
    assert_int_equal(send_cmd(p, 1, "publish", 4, "cam", "live"), 0);
    assert_int_equal(p->publishes, 1);
    assert_int_equal(p->n_media, 0);
    assert_int_equal(es_rtmp_session_complete(p->s, 0, ""), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Publish.Start");
    assert_int_equal(es_rtmp_session_role(p->s), ES_RTMP_ROLE_PUBLISHER);
    assert_false(es_rtmp_session_pending(p->s));
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_VIDEO, 1, 0, (const uint8_t *)"\x17", 1), 0);
    assert_int_equal(p->n_media, 1);
    peer_free(p);

    /* a client giving up while the answer is pending: stopped, and a late answer is ignored */
    p = peer_new();
    p->publish_rc = ES_EAGAIN;
    connect_ok(p, "live");
    create_stream(p, 2);
    assert_int_equal(send_cmd(p, 1, "publish", 3, "cam", "live"), 0);
    assert_int_equal(send_cmd(p, 0, "FCUnpublish", 4, "cam", NULL), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "_result", NULL);
    assert_int_equal(p->stops, 1);
    assert_false(es_rtmp_session_pending(p->s));
    assert_int_equal(es_rtmp_session_complete(p->s, 0, ""), ES_EINVAL);
    assert_int_equal(es_rtmp_session_role(p->s), ES_RTMP_ROLE_NONE);
    assert_false(next_msg(p));
    peer_free(p);

    /* a late refusal by a hook ends the session with the hook's reason */
    p = peer_new();
    p->play_rc = ES_EAGAIN;
    connect_ok(p, "live");
    assert_int_equal(send_cmd(p, 1, "play", 3, "cam", NULL), 0);
    assert_false(next_msg(p)); /* what on_play sent before answering EAGAIN is dropped */
    assert_int_equal(es_rtmp_session_complete(p->s, ES_EAUTH, "refused by the on_play hook: no"),
                     ES_EACCES);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Play.Failed");
    const es_amf0_node_t *d = es_amf0_get(&p->doc, es_amf0_at(&p->doc, 3), "description");
    char text[300];
    snprintf(text, sizeof text, "%.*s", (int)d->str_len, d->str);
    assert_string_equal(text, "cam: refused by the on_play hook: no");
    peer_free(p);
}

/* Until a publish is accepted, a message may not exceed max_message_before (64 KiB in the
 * server): a client cannot make the server hold megabytes before it is even admitted. */
static void test_message_cap_before_publish(void **state)
{
    peer_t *p = calloc(1, sizeof *p);
    es_rtmp_session_params_t params = {
        .chunk_size = 4096, .window_ack_size = 2500000, .max_message_before = 65536,
        .max_message = 1 << 20,
        .cb = {cb_send, cb_connect, cb_publish, cb_play, cb_media, cb_stop}, .user = p};
    p->s = es_rtmp_session_new(&params);
    p->rd = es_rtmp_chunk_reader_new(0);
    handshake(p);
    /* a chunk header announcing 1 MiB on chunk stream 3, before connect */
    uint8_t hdr[12] = {0x03, 0, 0, 0, 0x10, 0x00, 0x00, ES_RTMP_MSG_COMMAND_AMF0, 0, 0, 0, 0};
    assert_int_equal(feed(p, hdr, sizeof hdr), ES_E2BIG);
    peer_free(p);

    /* once publishing, messages up to max_message pass */
    p = calloc(1, sizeof *p);
    params.user = p;
    p->s = es_rtmp_session_new(&params);
    p->rd = es_rtmp_chunk_reader_new(0);
    connect_ok(p, "live");
    create_stream(p, 2);
    assert_int_equal(send_cmd(p, 1, "publish", 3, "cam", "live"), 0);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Publish.Start");
    uint8_t *big = calloc(1, 300000);
    big[0] = 0x17;
    assert_int_equal(send_msg(p, 6, ES_RTMP_MSG_VIDEO, 1, 0, big, 300000), 0);
    assert_int_equal(p->n_media, 1);
    assert_int_equal(p->media[0].len, 300000);
    free(big);
    peer_free(p);
}

static void test_name_bounds(void **state)
{
    char name[ES_RTMP_NAME_MAX + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    /* A stream name one byte too long: BadName, then the session ends. */
    peer_t *p = peer_new();
    connect_ok(p, "live");
    assert_int_equal(send_cmd(p, 1, "publish", 3, name, "live"), ES_E2BIG);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "onStatus", "NetStream.Publish.BadName");
    assert_int_equal(p->publishes, 0);
    peer_free(p);
    /* Exactly the bound is fine, and so is a query at its bound. */
    char query[ES_RTMP_NAME_MAX + 1 + ES_RTMP_QUERY_MAX + 1];
    memset(query, 'q', sizeof query - 1);
    query[sizeof query - 1] = 0;
    query[ES_RTMP_NAME_MAX] = '?';
    p = peer_new();
    connect_ok(p, "live");
    assert_int_equal(send_cmd(p, 1, "publish", 3, query, "live"), 0);
    assert_int_equal(strlen(p->name), ES_RTMP_NAME_MAX);
    assert_int_equal(strlen(p->query), ES_RTMP_QUERY_MAX);
    peer_free(p);
    /* An app query over the bound: connect refused. */
    char app[5 + ES_RTMP_QUERY_MAX + 2] = "live?";
    memset(app + 5, 'a', ES_RTMP_QUERY_MAX + 1);
    app[sizeof app - 1] = 0;
    p = peer_new();
    handshake(p);
    assert_int_equal(send_connect(p, app), ES_E2BIG);
    expect_cmd(p, ES_RTMP_MSG_COMMAND_AMF0, "_error", "NetConnection.Connect.Rejected");
    assert_int_equal(p->connects, 0);
    peer_free(p);
    /* An empty stream name. */
    p = peer_new();
    connect_ok(p, "live");
    assert_int_equal(send_cmd(p, 1, "play", 3, "?x=1", NULL), ES_EPROTO);
    peer_free(p);
}

static void test_malformed(void **state)
{
    /* Not RTMP at all. */
    peer_t *p = peer_new();
    const uint8_t http[] = "GET / HTTP/1.1\r\n\r\n";
    assert_int_equal(feed(p, http, sizeof http - 1), ES_EPROTO);
    assert_int_equal(p->out_len, 0);
    assert_non_null(strstr(es_rtmp_session_error(p->s), "version"));
    peer_free(p);
    /* Garbage after the handshake: a continuation chunk for an unknown chunk stream. */
    p = peer_new();
    handshake(p);
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(0x7f ^ (i * 37));
    assert_int_equal(feed(p, junk, sizeof junk), ES_EPROTO);
    assert_int_equal(feed(p, junk, sizeof junk), ES_EPROTO);
    peer_free(p);
    /* A partial message left behind is freed with the session. */
    p = peer_new();
    handshake(p);
    uint8_t hdr[12 + 100] = {0x06, 0, 0, 0, 0, 0x10, 0, 9, 1, 0, 0, 0};
    assert_int_equal(feed(p, hdr, sizeof hdr), 0);
    peer_free(p);
    /* A command whose AMF0 is broken, and one without a transaction id. */
    p = peer_new();
    connect_ok(p, "live");
    const uint8_t bad[] = {0x02, 0x00, 0x07, 'p', 'u', 'b'};
    assert_int_equal(send_msg(p, 3, ES_RTMP_MSG_COMMAND_AMF0, 0, 0, bad, sizeof bad), ES_EPROTO);
    assert_non_null(strstr(es_rtmp_session_error(p->s), "AMF0"));
    peer_free(p);
    p = peer_new();
    connect_ok(p, "live");
    const uint8_t no_txn[] = {0x02, 0x00, 0x04, 'p', 'l', 'a', 'y'};
    assert_int_equal(send_msg(p, 3, ES_RTMP_MSG_COMMAND_AMF0, 0, 0, no_txn, sizeof no_txn),
                     ES_EPROTO);
    peer_free(p);
    /* publish before connect. */
    p = peer_new();
    handshake(p);
    assert_int_equal(send_cmd(p, 1, "publish", 1, "cam", "live"), ES_EPROTO);
    peer_free(p);
    /* A Set Chunk Size of 0. */
    p = peer_new();
    handshake(p);
    const uint8_t zero[4] = {0};
    assert_int_equal(send_msg(p, 2, ES_RTMP_MSG_SET_CHUNK_SIZE, 0, 0, zero, 4), ES_EPROTO);
    peer_free(p);
}

static void test_bad_params(void **state)
{
    es_rtmp_session_params_t params = {.chunk_size = 4096, .window_ack_size = 2500000};
    assert_null(es_rtmp_session_new(&params)); /* no send callback */
    params.cb.send = cb_send;
    params.chunk_size = 127;
    assert_null(es_rtmp_session_new(&params));
    params.chunk_size = 65537;
    assert_null(es_rtmp_session_new(&params));
    params.chunk_size = 128;
    es_rtmp_session_t *s = es_rtmp_session_new(&params);
    assert_non_null(s);
    es_rtmp_session_free(s);
    es_rtmp_session_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_publish_byte_by_byte),
        cmocka_unit_test(test_publish_odd_splits),
        cmocka_unit_test(test_play),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_late_answers),
        cmocka_unit_test(test_message_cap_before_publish),
        cmocka_unit_test(test_name_bounds),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests_name("rtmp_session", tests, NULL, NULL);
}
