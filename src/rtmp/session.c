/* RTMP server session (include/estuary/rtmp_session.h): the handshake, the chunk stream, the
 * protocol control messages (Adobe RTMP specification 1.0, section 5.4), User Control events
 * (7.1.7) and the NetConnection/NetStream commands (7.2) as OBS, FFmpeg's rtmpproto.c and
 * librtmp send and expect them. Sans-IO: bytes in, bytes out through a callback. */
#include "estuary/rtmp_session.h"

#include "estuary/amf0.h"
#include "estuary/bytes.h"
#include "estuary/error.h"
#include "estuary/rtmp_chunk.h"
#include "estuary/rtmp_handshake.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Our chunk streams. Protocol control goes on 2 with message stream 0 (5.4); commands on 3;
 * per-stream status and data on 5, audio on 4 and video on 6 (what nginx-rtmp uses too). */
enum { CSID_CONTROL = 2, CSID_COMMAND = 3, CSID_AUDIO = 4, CSID_DATA = 5, CSID_VIDEO = 6 };

/* User Control event types (7.1.7). */
enum { UC_STREAM_BEGIN = 0, UC_SET_BUFFER_LENGTH = 3, UC_PING_REQUEST = 6, UC_PING_RESPONSE = 7 };

#define TC_URL_MAX 1024
#define FLASH_VER_MAX 256
#define REASON_MAX 256
#define SET_DATA_FRAME "@setDataFrame"

struct es_rtmp_session {
    es_rtmp_session_params_t p;
    es_rtmp_handshake_t hs;
    es_rtmp_chunk_reader_t *rd;
    int dead;                   /* the error that ended the session, 0 while alive */
    char err[256];
    uint64_t bytes_in;
    uint64_t acked;             /* bytes_in when we last sent an Acknowledgement */
    uint32_t peer_window;       /* the client's Window Acknowledgement Size, 0: none */
    uint32_t out_chunk_size;    /* 128 until our Set Chunk Size went out */
    bool connected;
    es_rtmp_role_t role;
    uint32_t streams_created;   /* createStream answers so far: ids 1, 2, ... */
    uint32_t active_stream;     /* message stream id of the accepted publish/play, 0: none */
    double object_encoding;
    char app[ES_RTMP_NAME_MAX + 1];
    char app_query[ES_RTMP_QUERY_MAX + 1];
    char tc_url[TC_URL_MAX + 1];
    char flash_ver[FLASH_VER_MAX + 1];
    char name[ES_RTMP_NAME_MAX + 1];
    char query[ES_RTMP_QUERY_MAX + 1];
    es_rtmp_session_stats_t stats;
    es_amf0_doc_t doc;
    uint8_t cmd[4096];          /* an AMF0 body being built */
    uint8_t *wbuf;              /* chunked output */
    size_t wcap;
    uint32_t in_play;           /* during on_play: the stream being asked for, else 0 */
    es_rtmp_role_t pending_role;/* publish/play answered ES_EAGAIN: es_rtmp_session_complete */
    uint32_t pending_stream;
    uint8_t *deferred;          /* media the owner sent from inside on_play */
    size_t deferred_len, deferred_cap;
};

#define WBUF_KEEP 65536 /* output buffer kept between messages; larger ones are freed */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(es_rtmp_session_t *s, int err, const char *fmt, ...)
{
    if (s->dead) return s->dead;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    s->dead = err;
    return err;
}

es_rtmp_session_t *es_rtmp_session_new(const es_rtmp_session_params_t *p)
{
    if (!p || !p->cb.send || p->chunk_size < 128 || p->chunk_size > 65536 ||
        p->window_ack_size == 0)
        return NULL;
    es_rtmp_session_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = *p;
    s->rd = es_rtmp_chunk_reader_new(p->max_message_before ? p->max_message_before
                                                            : ES_RTMP_MAX_MESSAGE);
    if (!s->rd) {
        free(s);
        return NULL;
    }
    es_rtmp_handshake_init(&s->hs);
    s->out_chunk_size = ES_RTMP_DEFAULT_CHUNK_SIZE;
    return s;
}

void es_rtmp_session_free(es_rtmp_session_t *s)
{
    if (!s) return;
    es_rtmp_chunk_reader_free(s->rd);
    free(s->wbuf);
    free(s->deferred);
    free(s);
}

const char *es_rtmp_session_error(const es_rtmp_session_t *s) { return s->err; }

bool es_rtmp_session_handshake_done(const es_rtmp_session_t *s)
{
    return es_rtmp_handshake_done(&s->hs);
}

es_rtmp_role_t es_rtmp_session_role(const es_rtmp_session_t *s) { return s->role; }

uint64_t es_rtmp_session_bytes_in(const es_rtmp_session_t *s) { return s->bytes_in; }

es_rtmp_session_stats_t es_rtmp_session_stats(const es_rtmp_session_t *s) { return s->stats; }

/* Output. */

static int send_msg(es_rtmp_session_t *s, uint32_t csid, uint8_t type, uint32_t stream_id,
                    uint32_t timestamp, const uint8_t *payload, size_t len)
{
    if (len > 0xffffff) return ES_E2BIG;
    size_t need = es_rtmp_chunk_write_size(csid, timestamp, len, s->out_chunk_size);
    if (need > s->wcap) {
        uint8_t *nb = realloc(s->wbuf, need);
        if (!nb) return ES_ENOMEM;
        s->wbuf = nb;
        s->wcap = need;
    }
    es_rtmp_msg_t m = {.csid = csid, .type = type, .stream_id = stream_id,
                       .timestamp = timestamp, .payload = payload, .len = len};
    int n = es_rtmp_chunk_write(&m, s->out_chunk_size, s->wbuf, s->wcap);
    if (n < 0) return n;
    s->stats.messages_out++;
    if (s->in_play) {
        /* Media from inside on_play waits for the status sequence. */
        if (s->deferred_len + (size_t)n > s->deferred_cap) {
            size_t cap = (s->deferred_len + (size_t)n) * 2;
            uint8_t *nb = realloc(s->deferred, cap);
            if (!nb) return ES_ENOMEM;
            s->deferred = nb;
            s->deferred_cap = cap;
        }
        memcpy(s->deferred + s->deferred_len, s->wbuf, (size_t)n);
        s->deferred_len += (size_t)n;
        return 0;
    }
    s->p.cb.send(s->p.user, s->wbuf, (size_t)n);
    if (s->wcap > WBUF_KEEP) { /* a large message (a key frame) does not stay allocated */
        free(s->wbuf);
        s->wbuf = NULL;
        s->wcap = 0;
    }
    return 0;
}

static int send_u32(es_rtmp_session_t *s, uint8_t type, uint32_t v)
{
    uint8_t b[4];
    es_wr32(b, v);
    return send_msg(s, CSID_CONTROL, type, 0, 0, b, 4);
}

static int send_user_control(es_rtmp_session_t *s, uint16_t event, uint32_t v)
{
    uint8_t b[6];
    es_wr16(b, event);
    es_wr32(b + 2, v);
    return send_msg(s, CSID_CONTROL, ES_RTMP_MSG_USER_CONTROL, 0, 0, b, 6);
}

/* Sends the AMF0 body in w as a command (or data) message. */
static int send_amf(es_rtmp_session_t *s, const es_amf0_writer_t *w, uint32_t csid, uint8_t type,
                    uint32_t stream_id)
{
    int n = es_amf0_writer_len(w);
    if (n < 0) return n;
    return send_msg(s, csid, type, stream_id, 0, w->buf, (size_t)n);
}

/* "_result"/"_error", txn, null, and one more simple value (undefined, or a number). */
static int send_result(es_rtmp_session_t *s, double txn, bool with_number, double number)
{
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, s->cmd, sizeof s->cmd);
    es_amf0_put_string(&w, "_result");
    es_amf0_put_number(&w, txn);
    es_amf0_put_null(&w);
    if (with_number) es_amf0_put_number(&w, number);
    else es_amf0_put_undefined(&w);
    return send_amf(s, &w, CSID_COMMAND, ES_RTMP_MSG_COMMAND_AMF0, 0);
}

/* An info object {level, code, description}. */
static void put_info(es_amf0_writer_t *w, const char *level, const char *code, const char *desc)
{
    es_amf0_put_object_begin(w);
    es_amf0_put_prop_string(w, "level", level);
    es_amf0_put_prop_string(w, "code", code);
    es_amf0_put_prop_string(w, "description", desc);
}

static int send_on_status(es_rtmp_session_t *s, uint32_t stream_id, const char *level,
                          const char *code, const char *desc)
{
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, s->cmd, sizeof s->cmd);
    es_amf0_put_string(&w, "onStatus");
    es_amf0_put_number(&w, 0);
    es_amf0_put_null(&w);
    put_info(&w, level, code, desc);
    es_amf0_put_object_end(&w);
    return send_amf(s, &w, CSID_DATA, ES_RTMP_MSG_COMMAND_AMF0, stream_id);
}

/* Strings from commands: bounded copies; NUL bytes inside would cut the name short for the
 * owner's C string functions and are refused. Returns 0, ES_E2BIG or ES_EPROTO. */
static int copy_str(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) return ES_E2BIG;
    if (n && memchr(src, 0, n)) return ES_EPROTO;
    if (n) memcpy(dst, src, n);
    dst[n] = 0;
    return 0;
}

static int copy_node(char *dst, size_t cap, const es_amf0_node_t *n)
{
    if (!n || (n->type != ES_AMF0_STRING && n->type != ES_AMF0_LONG_STRING)) {
        dst[0] = 0;
        return 0;
    }
    return copy_str(dst, cap, n->str, n->str_len);
}

/* "name?query" into name and query, each bounded. */
static int split_query(const es_amf0_node_t *n, char *name, char *query)
{
    const char *str = n ? n->str : "";
    size_t len = n ? n->str_len : 0;
    const char *q = len ? memchr(str, '?', len) : NULL;
    size_t nl = q ? (size_t)(q - str) : len;
    int rc = copy_str(name, ES_RTMP_NAME_MAX + 1, str, nl);
    if (rc == 0) rc = q ? copy_str(query, ES_RTMP_QUERY_MAX + 1, q + 1, len - nl - 1)
                        : copy_str(query, ES_RTMP_QUERY_MAX + 1, "", 0);
    return rc;
}

/* The client ended its publish or play, or gave up one whose answer is pending. */
static void stop(es_rtmp_session_t *s)
{
    if (s->role == ES_RTMP_ROLE_NONE && s->pending_role == ES_RTMP_ROLE_NONE) return;
    s->pending_role = ES_RTMP_ROLE_NONE;
    s->pending_stream = 0;
    s->role = ES_RTMP_ROLE_NONE;
    s->active_stream = 0;
    if (s->p.cb.on_stop) s->p.cb.on_stop(s->p.user);
}

/* Commands (7.2). */

static int connect_refuse(es_rtmp_session_t *s, double txn, int err, const char *reason)
{
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, s->cmd, sizeof s->cmd);
    es_amf0_put_string(&w, "_error");
    es_amf0_put_number(&w, txn);
    es_amf0_put_null(&w);
    put_info(&w, "error", "NetConnection.Connect.Rejected", reason);
    es_amf0_put_object_end(&w);
    send_amf(s, &w, CSID_COMMAND, ES_RTMP_MSG_COMMAND_AMF0, 0);
    return fail(s, err, "connect refused: %s", reason);
}

static int cmd_connect(es_rtmp_session_t *s, double txn)
{
    if (s->connected) {
        s->stats.ignored_commands++;
        return 0;
    }
    const es_amf0_doc_t *d = &s->doc;
    const es_amf0_node_t *obj = es_amf0_at(d, 2);
    const es_amf0_node_t *enc = es_amf0_get(d, obj, "objectEncoding");
    s->object_encoding = enc && enc->type == ES_AMF0_NUMBER ? enc->number : 0;
    int rc = split_query(es_amf0_get(d, obj, "app"), s->app, s->app_query);
    if (rc == 0) rc = copy_node(s->tc_url, sizeof s->tc_url, es_amf0_get(d, obj, "tcUrl"));
    if (rc == 0)
        rc = copy_node(s->flash_ver, sizeof s->flash_ver, es_amf0_get(d, obj, "flashVer"));
    if (rc < 0)
        return connect_refuse(s, txn, rc, rc == ES_E2BIG ? "app, query, tcUrl or flashVer too long"
                                                         : "NUL byte in app, tcUrl or flashVer");
    char reason[REASON_MAX] = "";
    es_rtmp_connect_info_t info = {.app = s->app, .app_query = s->app_query,
                                   .tc_url = s->tc_url, .flash_ver = s->flash_ver};
    rc = s->p.cb.on_connect ? s->p.cb.on_connect(s->p.user, &info, reason, sizeof reason) : 0;
    if (rc < 0) {
        reason[sizeof reason - 1] = 0;
        return connect_refuse(s, txn, rc, reason[0] ? reason : es_strerror(rc));
    }
    s->connected = true;
    /* Window Acknowledgement Size, Set Peer Bandwidth (dynamic) and Set Chunk Size before the
     * _result, in the order FMS, nginx-rtmp and SRS use. */
    uint8_t bw[5];
    es_wr32(bw, s->p.window_ack_size);
    bw[4] = 2;
    if ((rc = send_u32(s, ES_RTMP_MSG_WINDOW_ACK_SIZE, s->p.window_ack_size)) < 0 ||
        (rc = send_msg(s, CSID_CONTROL, ES_RTMP_MSG_SET_PEER_BANDWIDTH, 0, 0, bw, 5)) < 0 ||
        (rc = send_u32(s, ES_RTMP_MSG_SET_CHUNK_SIZE, s->p.chunk_size)) < 0)
        return fail(s, rc, "cannot send: %s", es_strerror(rc));
    s->out_chunk_size = s->p.chunk_size;
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, s->cmd, sizeof s->cmd);
    es_amf0_put_string(&w, "_result");
    es_amf0_put_number(&w, txn);
    es_amf0_put_object_begin(&w);
    es_amf0_put_prop_string(&w, "fmsVer", "FMS/3,5,3,888");
    es_amf0_put_prop_number(&w, "capabilities", 127);
    es_amf0_put_prop_number(&w, "mode", 1);
    es_amf0_put_object_end(&w);
    put_info(&w, "status", "NetConnection.Connect.Success", "Connection succeeded.");
    es_amf0_put_prop_number(&w, "objectEncoding", s->object_encoding);
    es_amf0_put_object_end(&w);
    return send_amf(s, &w, CSID_COMMAND, ES_RTMP_MSG_COMMAND_AMF0, 0);
}

/* The name argument (fourth value) of publish/play, split; on failure answers with the given
 * status code and returns the error that ends the session. */
static int stream_name(es_rtmp_session_t *s, uint32_t msid, const char *code)
{
    const es_amf0_node_t *n = es_amf0_at(&s->doc, 3);
    int rc = n && (n->type == ES_AMF0_STRING || n->type == ES_AMF0_LONG_STRING)
                 ? split_query(n, s->name, s->query) : ES_EPROTO;
    if (rc == 0 && !s->name[0]) rc = ES_EPROTO;
    if (rc == 0) return 0;
    const char *why = rc == ES_E2BIG ? "stream name or query too long" : "bad stream name";
    send_on_status(s, msid, "error", code, why);
    return fail(s, rc, "%s", why);
}

/* The answer to publish: rc from on_publish (now or through es_rtmp_session_complete). */
static int publish_result(es_rtmp_session_t *s, uint32_t msid, int rc, const char *reason)
{
    char desc[REASON_MAX + ES_RTMP_NAME_MAX + 32];
    if (rc == 0) {
        s->role = ES_RTMP_ROLE_PUBLISHER;
        s->active_stream = msid;
        es_rtmp_chunk_reader_set_max_message(s->rd, s->p.max_message);
        snprintf(desc, sizeof desc, "%s is now published.", s->name);
        return send_on_status(s, msid, "status", "NetStream.Publish.Start", desc);
    }
    snprintf(desc, sizeof desc, "%s: %s", s->name, reason[0] ? reason : es_strerror(rc));
    if (rc == ES_EEXIST)
        return send_on_status(s, msid, "error", "NetStream.Publish.BadName", desc);
    if (rc == ES_EAUTH) rc = ES_EACCES;
    if (rc == ES_EACCES) {
        send_on_status(s, msid, "error", "NetStream.Publish.Unauthorized", desc);
        return fail(s, rc, "publish %s refused: %s", s->name, desc);
    }
    return send_on_status(s, msid, "error", "NetStream.Publish.Failed", desc);
}

static int cmd_publish(es_rtmp_session_t *s, uint32_t msid)
{
    if (s->role != ES_RTMP_ROLE_NONE || s->pending_role != ES_RTMP_ROLE_NONE) {
        s->stats.ignored_commands++;
        return 0;
    }
    int rc = stream_name(s, msid, "NetStream.Publish.BadName");
    if (rc < 0) return rc;
    char reason[REASON_MAX] = "";
    rc = s->p.cb.on_publish ? s->p.cb.on_publish(s->p.user, s->name, s->query, reason,
                                                 sizeof reason)
                            : ES_ENOENT;
    reason[sizeof reason - 1] = 0;
    if (rc == ES_EAGAIN) {
        s->pending_role = ES_RTMP_ROLE_PUBLISHER;
        s->pending_stream = msid;
        return 0;
    }
    return publish_result(s, msid, rc, reason);
}

/* The answer to play: rc from on_play (now or through es_rtmp_session_complete). */
static int play_result(es_rtmp_session_t *s, uint32_t msid, int rc, const char *reason)
{
    char desc[REASON_MAX + ES_RTMP_NAME_MAX + 32];
    if (rc == ES_EAUTH) rc = ES_EACCES;
    if (rc < 0) {
        s->deferred_len = 0;
        snprintf(desc, sizeof desc, "%s: %s", s->name, reason[0] ? reason : es_strerror(rc));
        const char *code = rc == ES_ENOENT ? "NetStream.Play.StreamNotFound"
                                           : "NetStream.Play.Failed";
        send_on_status(s, msid, "error", code, desc);
        if (rc == ES_EACCES) return fail(s, rc, "play %s refused: %s", s->name, desc);
        return 0;
    }
    s->role = ES_RTMP_ROLE_PLAYER;
    s->active_stream = msid;
    if ((rc = send_user_control(s, UC_STREAM_BEGIN, msid)) < 0) return fail(s, rc, "send");
    snprintf(desc, sizeof desc, "Playing and resetting %s.", s->name);
    if ((rc = send_on_status(s, msid, "status", "NetStream.Play.Reset", desc)) < 0)
        return fail(s, rc, "send");
    snprintf(desc, sizeof desc, "Started playing %s.", s->name);
    if ((rc = send_on_status(s, msid, "status", "NetStream.Play.Start", desc)) < 0)
        return fail(s, rc, "send");
    /* Lets Flash players read the media (BitmapData.draw, SoundMixer.computeSpectrum). */
    es_amf0_writer_t w;
    es_amf0_writer_init(&w, s->cmd, sizeof s->cmd);
    es_amf0_put_string(&w, "|RtmpSampleAccess");
    es_amf0_put_bool(&w, true);
    es_amf0_put_bool(&w, true);
    if ((rc = send_amf(s, &w, CSID_DATA, ES_RTMP_MSG_DATA_AMF0, msid)) < 0) return rc;
    if (s->deferred_len) {
        s->p.cb.send(s->p.user, s->deferred, s->deferred_len);
        s->deferred_len = 0;
    }
    return 0;
}

static int cmd_play(es_rtmp_session_t *s, uint32_t msid)
{
    if (s->role != ES_RTMP_ROLE_NONE || s->pending_role != ES_RTMP_ROLE_NONE) {
        s->stats.ignored_commands++;
        return 0;
    }
    int rc = stream_name(s, msid, "NetStream.Play.StreamNotFound");
    if (rc < 0) return rc;
    char reason[REASON_MAX] = "";
    s->in_play = msid;
    s->deferred_len = 0;
    rc = s->p.cb.on_play ? s->p.cb.on_play(s->p.user, s->name, s->query, reason, sizeof reason)
                         : ES_ENOENT;
    s->in_play = 0;
    reason[sizeof reason - 1] = 0;
    if (rc == ES_EAGAIN) {
        s->deferred_len = 0;
        s->pending_role = ES_RTMP_ROLE_PLAYER;
        s->pending_stream = msid;
        return 0;
    }
    return play_result(s, msid, rc, reason);
}

int es_rtmp_session_complete(es_rtmp_session_t *s, int rc, const char *reason)
{
    if (s->dead) return s->dead;
    es_rtmp_role_t role = s->pending_role;
    uint32_t msid = s->pending_stream;
    if (role == ES_RTMP_ROLE_NONE) return ES_EINVAL;
    s->pending_role = ES_RTMP_ROLE_NONE;
    s->pending_stream = 0;
    char why[REASON_MAX];
    snprintf(why, sizeof why, "%s", reason ? reason : "");
    int r = role == ES_RTMP_ROLE_PUBLISHER ? publish_result(s, msid, rc, why)
                                           : play_result(s, msid, rc, why);
    return r < 0 ? r : s->dead;
}

bool es_rtmp_session_pending(const es_rtmp_session_t *s) { return s->pending_role != ES_RTMP_ROLE_NONE; }

bool es_rtmp_session_connected(const es_rtmp_session_t *s) { return s->connected; }

static int handle_command(es_rtmp_session_t *s, const es_rtmp_msg_t *m, const uint8_t *body,
                          size_t len)
{
    int rc = es_amf0_decode(&s->doc, body, len);
    if (rc < 0) return fail(s, ES_EPROTO, "bad AMF0 in a command: %s", es_strerror(rc));
    const es_amf0_node_t *name = es_amf0_at(&s->doc, 0), *txn_n = es_amf0_at(&s->doc, 1);
    if (!name || (name->type != ES_AMF0_STRING) || !txn_n || txn_n->type != ES_AMF0_NUMBER)
        return fail(s, ES_EPROTO, "a command without a name and a transaction id");
    double txn = txn_n->number;
    /* Stream commands apply to the message stream they arrive on; 0 would be the connection's,
     * which some clients use anyway: take the stream createStream gave. */
    uint32_t msid = m->stream_id ? m->stream_id : 1;
    s->stats.commands++;
    if (es_amf0_is_string(name, "connect")) return cmd_connect(s, txn);
    if (!s->connected) {
        if (es_amf0_is_string(name, "publish") || es_amf0_is_string(name, "play"))
            return fail(s, ES_EPROTO, "%.*s before connect", (int)name->str_len, name->str);
        s->stats.ignored_commands++;
        return 0;
    }
    if (es_amf0_is_string(name, "createStream")) {
        s->streams_created++;
        return send_result(s, txn, true, s->streams_created);
    }
    if (es_amf0_is_string(name, "releaseStream")) return send_result(s, txn, false, 0);
    if (es_amf0_is_string(name, "FCPublish")) {
        /* onFCPublish is what FMS sends; librtmp and FFmpeg ignore it but log its absence. */
        es_amf0_writer_t w;
        es_amf0_writer_init(&w, s->cmd, sizeof s->cmd);
        es_amf0_put_string(&w, "onFCPublish");
        es_amf0_put_number(&w, 0);
        es_amf0_put_null(&w);
        const es_amf0_node_t *sn = es_amf0_at(&s->doc, 3);
        put_info(&w, "status", "NetStream.Publish.Start", "FCPublish");
        if (sn && sn->type == ES_AMF0_STRING) {
            es_amf0_put_key(&w, "details", 7);
            es_amf0_put_string_n(&w, sn->str, sn->str_len);
        }
        es_amf0_put_object_end(&w);
        /* Fails only for a name too long for s->cmd: then the courtesy message is skipped. */
        (void)send_amf(s, &w, CSID_COMMAND, ES_RTMP_MSG_COMMAND_AMF0, 0);
        return send_result(s, txn, false, 0);
    }
    if (es_amf0_is_string(name, "publish")) return cmd_publish(s, msid);
    if (es_amf0_is_string(name, "play")) return cmd_play(s, msid);
    if (es_amf0_is_string(name, "FCUnpublish")) {
        if (s->role == ES_RTMP_ROLE_PUBLISHER || s->pending_role == ES_RTMP_ROLE_PUBLISHER) stop(s);
        return txn != 0 ? send_result(s, txn, false, 0) : 0;
    }
    if (es_amf0_is_string(name, "deleteStream")) {
        const es_amf0_node_t *id = es_amf0_at(&s->doc, 3);
        uint32_t active = s->role != ES_RTMP_ROLE_NONE ? s->active_stream : s->pending_stream;
        if ((s->role != ES_RTMP_ROLE_NONE || s->pending_role != ES_RTMP_ROLE_NONE) &&
            (!id || id->type != ES_AMF0_NUMBER || id->number == (double)active))
            stop(s);
        return 0;
    }
    if (es_amf0_is_string(name, "closeStream")) {
        stop(s);
        return 0;
    }
    if (es_amf0_is_string(name, "getStreamLength")) return send_result(s, txn, true, 0);
    if (es_amf0_is_string(name, "_checkbw")) return txn != 0 ? send_result(s, txn, false, 0) : 0;
    s->stats.ignored_commands++;
    return 0;
}

/* Media and data from a publisher. */

static void deliver(es_rtmp_session_t *s, uint8_t type, uint32_t ts, const uint8_t *p, size_t n)
{
    if (type == ES_RTMP_MSG_DATA_AMF0) {
        /* FFmpeg and OBS wrap metadata as "@setDataFrame" "onMetaData" {...}: drop the first
         * string so the payload is the onMetaData an FLV file and a player expect. */
        static const uint8_t sdf[3 + sizeof SET_DATA_FRAME - 1] = {
            ES_AMF0_STRING, 0, sizeof SET_DATA_FRAME - 1, '@', 's', 'e', 't', 'D', 'a', 't', 'a',
            'F', 'r', 'a', 'm', 'e'};
        if (n >= sizeof sdf && memcmp(p, sdf, sizeof sdf) == 0) {
            p += sizeof sdf;
            n -= sizeof sdf;
        }
    } else if (type != ES_RTMP_MSG_AUDIO && type != ES_RTMP_MSG_VIDEO) {
        s->stats.ignored_messages++;
        return;
    }
    s->stats.media_in++;
    if (s->p.cb.on_media) s->p.cb.on_media(s->p.user, type, ts, p, n);
}

/* An aggregate message (7.1.6): FLV-tag-like sub-messages, timestamps renormalised so that the
 * first sub-message has the aggregate's timestamp. A malformed tail is dropped. */
static void deliver_aggregate(es_rtmp_session_t *s, const es_rtmp_msg_t *m)
{
    const uint8_t *p = m->payload;
    size_t left = m->len;
    bool first = true;
    uint32_t base = 0;
    while (left >= 11) {
        uint8_t type = p[0];
        size_t size = (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        uint32_t ts = (uint32_t)p[7] << 24 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 | p[6];
        if (size > left - 11) break;
        if (first) base = ts;
        first = false;
        deliver(s, type, m->timestamp + (ts - base), p + 11, size);
        if (s->dead || s->role != ES_RTMP_ROLE_PUBLISHER) return;
        size_t step = 11 + size + 4; /* the back pointer after each sub-message */
        if (step > left) break;
        p += step;
        left -= step;
    }
    if (left) s->stats.ignored_messages++;
}

static int handle_message(es_rtmp_session_t *s, const es_rtmp_msg_t *m)
{
    s->stats.messages_in++;
    switch (m->type) {
    case ES_RTMP_MSG_SET_CHUNK_SIZE: /* applied by the chunk reader */
    case ES_RTMP_MSG_ABORT:
    case ES_RTMP_MSG_ACK:
    case ES_RTMP_MSG_SET_PEER_BANDWIDTH:
        return 0;
    case ES_RTMP_MSG_WINDOW_ACK_SIZE:
        if (m->len >= 4) s->peer_window = es_rd32(m->payload);
        return 0;
    case ES_RTMP_MSG_USER_CONTROL:
        if (m->len >= 6 && es_rd16(m->payload) == UC_PING_REQUEST) {
            int rc = send_user_control(s, UC_PING_RESPONSE, es_rd32(m->payload + 2));
            return rc < 0 ? fail(s, rc, "send") : 0;
        }
        return 0; /* SetBufferLength from players and the rest: nothing to do */
    case ES_RTMP_MSG_COMMAND_AMF3:
        /* An AMF0 command behind a format byte 0 (Flash Player with objectEncoding 3). */
        if (m->len == 0 || m->payload[0] != 0) {
            s->stats.ignored_messages++;
            return 0;
        }
        return handle_command(s, m, m->payload + 1, m->len - 1);
    case ES_RTMP_MSG_COMMAND_AMF0:
        return handle_command(s, m, m->payload, m->len);
    case ES_RTMP_MSG_AUDIO:
    case ES_RTMP_MSG_VIDEO:
    case ES_RTMP_MSG_DATA_AMF0:
    case ES_RTMP_MSG_AGGREGATE:
        if (s->role != ES_RTMP_ROLE_PUBLISHER) {
            s->stats.ignored_messages++; /* before publish was accepted, or from a player */
            return 0;
        }
        if (m->type == ES_RTMP_MSG_AGGREGATE) deliver_aggregate(s, m);
        else deliver(s, m->type, m->timestamp, m->payload, m->len);
        return s->dead;
    default:
        s->stats.ignored_messages++;
        return 0;
    }
}

int es_rtmp_session_handle_bytes(es_rtmp_session_t *s, const uint8_t *buf, size_t len)
{
    if (s->dead) return s->dead;
    s->bytes_in += len;
    if (!es_rtmp_handshake_done(&s->hs)) {
        int n = es_rtmp_handshake_feed(&s->hs, buf, len);
        if (n < 0) return fail(s, n, "handshake: C0 is not RTMP version 3 (0x%02x)", buf[0]);
        const uint8_t *out;
        size_t out_len = es_rtmp_handshake_output(&s->hs, &out);
        if (out_len) s->p.cb.send(s->p.user, out, out_len);
        buf += n;
        len -= (size_t)n;
    }
    while (len > 0 && !s->dead) {
        es_rtmp_msg_t m;
        size_t used;
        int rc = es_rtmp_chunk_feed(s->rd, buf, len, &used, &m);
        buf += used;
        len -= used;
        if (rc < 0) {
            const char *what = rc == ES_E2BIG ? "a message or chunk streams over the limits"
                                              : "malformed chunk stream";
            return fail(s, rc, "%s", what);
        }
        if (rc == 0) break;
        rc = handle_message(s, &m);
        if (rc < 0) return fail(s, rc, "%s", es_strerror(rc));
    }
    if (s->dead) return s->dead;
    /* Acknowledgement (5.4.3) once the client's window of bytes arrived since the last one. */
    if (s->peer_window && s->bytes_in - s->acked >= s->peer_window) {
        s->acked = s->bytes_in;
        int rc = send_u32(s, ES_RTMP_MSG_ACK, (uint32_t)s->bytes_in);
        if (rc < 0) return fail(s, rc, "send");
        s->stats.acks_sent++;
    }
    return 0;
}

int es_rtmp_session_send_media(es_rtmp_session_t *s, uint8_t type, uint32_t timestamp_ms,
                               const uint8_t *payload, size_t len)
{
    if (s->dead || (s->role != ES_RTMP_ROLE_PLAYER && !s->in_play)) return ES_EINVAL;
    uint32_t csid = type == ES_RTMP_MSG_AUDIO ? CSID_AUDIO
                  : type == ES_RTMP_MSG_VIDEO ? CSID_VIDEO
                  : type == ES_RTMP_MSG_DATA_AMF0 ? CSID_DATA : 0;
    if (!csid) return ES_EINVAL;
    return send_msg(s, csid, type, s->in_play ? s->in_play : s->active_stream, timestamp_ms,
                    payload, len);
}

int es_rtmp_session_send_status(es_rtmp_session_t *s, const char *level, const char *code,
                                const char *description)
{
    if (s->dead || s->role == ES_RTMP_ROLE_NONE) return ES_EINVAL;
    return send_on_status(s, s->active_stream, level, code, description);
}
