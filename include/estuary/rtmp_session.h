/* RTMP server session: one TCP connection's protocol state, sans-IO. Bytes from the client go
 * in (es_rtmp_session_handle_bytes); bytes for the client come out through the send callback;
 * what the client asks for (connect, publish, play, media) comes out as callbacks the owner
 * answers. No socket, loop or clock inside: the owner runs the handshake timeout.
 *
 * Implements the handshake (plain and the FP9 digest variant librtmp/FFmpeg clients send), the
 * chunk stream (all four header formats, extended timestamps, Set Chunk Size, Abort,
 * Acknowledgement, Window Acknowledgement Size, Set Peer Bandwidth, User Control StreamBegin and
 * PingRequest/PingResponse) and the NetConnection/NetStream commands in AMF0 (connect,
 * releaseStream, FCPublish, createStream, publish, play, deleteStream, FCUnpublish, closeStream,
 * getStreamLength, _checkbw) with the _result/_error/onStatus answers OBS, FFmpeg and librtmp
 * expect. Adobe RTMP specification 1.0 (2012), sections 5.2-5.4 and 7. */
#ifndef ESTUARY_RTMP_SESSION_H
#define ESTUARY_RTMP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RTMP message type ids (RTMP spec 5.4, 7.1). */
enum {
    ES_RTMP_MSG_SET_CHUNK_SIZE = 1,
    ES_RTMP_MSG_ABORT = 2,
    ES_RTMP_MSG_ACK = 3,
    ES_RTMP_MSG_USER_CONTROL = 4,
    ES_RTMP_MSG_WINDOW_ACK_SIZE = 5,
    ES_RTMP_MSG_SET_PEER_BANDWIDTH = 6,
    ES_RTMP_MSG_AUDIO = 8,
    ES_RTMP_MSG_VIDEO = 9,
    ES_RTMP_MSG_DATA_AMF3 = 15,
    ES_RTMP_MSG_COMMAND_AMF3 = 17,
    ES_RTMP_MSG_DATA_AMF0 = 18,
    ES_RTMP_MSG_COMMAND_AMF0 = 20,
    ES_RTMP_MSG_AGGREGATE = 22,
};

#define ES_RTMP_NAME_MAX 256   /* bytes of an app or stream name (without query), without NUL */
#define ES_RTMP_QUERY_MAX 512  /* bytes of a query ("token=T&x=y"), without NUL */

/* What the client sent in `connect` (strings borrowed for the callback). */
typedef struct es_rtmp_connect_info {
    const char *app;      /* "live" (a query after '?' in the app is split off into app_query) */
    const char *app_query;/* "" when none */
    const char *tc_url;   /* "rtmp://host/live", "" when absent */
    const char *flash_ver;/* "FMLE/3.0 (compatible; obs-studio/30.0)", "" when absent */
} es_rtmp_connect_info_t;

typedef enum {
    ES_RTMP_ROLE_NONE = 0,
    ES_RTMP_ROLE_PUBLISHER,
    ES_RTMP_ROLE_PLAYER,
} es_rtmp_role_t;

typedef struct es_rtmp_session_cb {
    /* Bytes for the client, in order. The callee copies or queues them (borrowed for the call). */
    void (*send)(void *user, const uint8_t *buf, size_t len);
    /* connect: return 0 to accept (_result NetConnection.Connect.Success), or a negative ES_E*
     * to refuse (_error NetConnection.Connect.Rejected carrying `reason`, which the callee may
     * fill: `reason_len` bytes, NUL-terminated). The session then fails with that error.
     * NULL: every connect is accepted. */
    int (*on_connect)(void *user, const es_rtmp_connect_info_t *info, char *reason,
                      size_t reason_len);
    /* publish "name?query" (type "live"/"record"/"append"): name and query split at the first
     * '?'. Return 0 (NetStream.Publish.Start), ES_EEXIST (NetStream.Publish.BadName: already
     * published), ES_EACCES (NetStream.Publish.Unauthorized, then handle_bytes returns
     * ES_EACCES and the owner closes), or another negative ES_E* (NetStream.Publish.Failed,
     * reason in `reason`). Refusals other than ES_EACCES leave the connection open: clients
     * close it themselves on an error status. ES_EAUTH is answered as ES_EACCES. ES_EAGAIN:
     * the answer comes later (an admission hook), through es_rtmp_session_complete; until then
     * the client's media is ignored and another publish/play is ignored. NULL: every publish
     * fails (ES_ENOENT). */
    int (*on_publish)(void *user, const char *name, const char *query, char *reason,
                      size_t reason_len);
    /* play "name?query": return 0 (StreamBegin, NetStream.Play.Reset, NetStream.Play.Start,
     * |RtmpSampleAccess, then the owner sends media with es_rtmp_session_send_media),
     * ES_ENOENT (NetStream.Play.StreamNotFound), ES_EACCES (NetStream.Play.Failed, then the
     * session ends with ES_EACCES), or another ES_E* (NetStream.Play.Failed, connection left
     * open). The callee may already send media (a GOP cache) with es_rtmp_session_send_media
     * from inside this callback: it is held back and goes out, in one send call, right after
     * the status sequence when 0 is returned, and is dropped on a refusal. NULL: every play
     * is StreamNotFound. */
    int (*on_play)(void *user, const char *name, const char *query, char *reason,
                   size_t reason_len);
    /* A publisher's audio (8), video (9) or data (18) message, after publish was accepted.
     * timestamp_ms: the message's absolute timestamp (RTMP 32-bit milliseconds, deltas summed,
     * extended timestamps applied). For data messages "@setDataFrame" is stripped, so payload
     * starts with the AMF0 string "onMetaData". Aggregate messages (22) are split into their
     * sub-messages. Borrowed for the call. */
    void (*on_media)(void *user, uint8_t type, uint32_t timestamp_ms, const uint8_t *payload,
                     size_t len);
    /* The client ended its publish or play (FCUnpublish, closeStream, deleteStream of the
     * active stream): once per accepted publish/play, after which the role is NONE again (the
     * client may publish or play anew). Also called when the client gives up a publish/play
     * whose answer is pending (the owner forgets it: a later es_rtmp_session_complete returns
     * ES_EINVAL). Not called when the connection just closes. */
    void (*on_stop)(void *user);
} es_rtmp_session_cb_t;

typedef struct es_rtmp_session_params {
    uint32_t chunk_size;        /* our outgoing chunk size, 128..65536 bytes (rtmp.chunk_size) */
    uint32_t max_message_before;/* bytes of one message until a publish is accepted (64 KiB);
                                   0: ES_RTMP_MAX_MESSAGE */
    uint32_t max_message;       /* bytes of one message once publishing (rtmp.max_message_bytes);
                                   0: ES_RTMP_MAX_MESSAGE */
    uint32_t window_ack_size;   /* Window Acknowledgement Size we announce, bytes (2500000) */
    es_rtmp_session_cb_t cb;
    void *user;
} es_rtmp_session_params_t;

typedef struct es_rtmp_session es_rtmp_session_t;

/* es_rtmp_session_new: a session awaiting C0+C1. NULL when out of memory or params are bad
 * (no send callback, chunk_size outside 128..65536, window_ack_size 0). The params, callbacks
 * and user pointer are copied. */
es_rtmp_session_t *es_rtmp_session_new(const es_rtmp_session_params_t *p);

/* es_rtmp_session_free: NULL-safe; calls no callback. */
void es_rtmp_session_free(es_rtmp_session_t *s);

/* es_rtmp_session_handle_bytes: len bytes from the client (any split). Returns 0, or a negative
 * ES_E* after which the session is dead and the owner closes the connection: ES_EPROTO for
 * malformed input (bad C0 version, a chunk for an unknown chunk stream without a full header,
 * bad AMF0 in a command, a command without name and transaction id, publish/play before
 * connect, a chunk size of 0 or > 2^31-1, a NUL byte in a name), ES_E2BIG (more than 64 chunk
 * streams, a message over max_message_before (before a publish
 * is accepted) or max_message, partial messages over twice that, an app/name/query/tcUrl longer than its bound:
 * those are answered with _error or an error onStatus first), ES_ENOMEM, or the error a
 * callback returned for connect/publish/play refusals that end the connection. Later calls
 * return the same error. (A message cannot exceed 16 MiB: its length field has 24 bits.) The
 * reason in words is es_rtmp_session_error(s). Callbacks may be invoked during the call, but
 * must not free the session. */
int es_rtmp_session_handle_bytes(es_rtmp_session_t *s, const uint8_t *buf, size_t len);

/* es_rtmp_session_complete: the late answer to a publish or play whose callback returned
 * ES_EAGAIN: rc and reason as that callback would have returned them (0 accepts). Sends the
 * status sequence. Returns 0, ES_EINVAL when nothing is pending, or the error that ends the
 * session (a refusal with ES_EACCES/ES_EAUTH, a send failure): the owner closes then. */
int es_rtmp_session_complete(es_rtmp_session_t *s, int rc, const char *reason);

/* es_rtmp_session_pending: true while a publish/play answer is pending. */
bool es_rtmp_session_pending(const es_rtmp_session_t *s);

/* es_rtmp_session_connected: true once `connect` was accepted. */
bool es_rtmp_session_connected(const es_rtmp_session_t *s);

/* es_rtmp_session_error: what went wrong, for the log ("" while fine). Static or session-owned. */
const char *es_rtmp_session_error(const es_rtmp_session_t *s);

/* es_rtmp_session_handshake_done: true once C2 was received (the owner stops its timer). */
bool es_rtmp_session_handshake_done(const es_rtmp_session_t *s);

/* es_rtmp_session_role: publisher or player once publish/play was accepted, else NONE. */
es_rtmp_role_t es_rtmp_session_role(const es_rtmp_session_t *s);

/* es_rtmp_session_send_media: one audio (8), video (9) or data (18) message to a player, on the
 * play stream's message stream id, chunked at our chunk size (one send callback call per
 * message; from inside on_play, see there). timestamp_ms is absolute (extended timestamp used from 0xFFFFFF on). Returns 0, or
 * ES_EINVAL when the session is not a player (nor inside on_play), is dead, or the type is
 * none of those, ES_E2BIG above 0xffffff bytes, ES_ENOMEM. The payload is borrowed for the
 * call. Audio goes on chunk stream 4, video on 6, data on 5. */
int es_rtmp_session_send_media(es_rtmp_session_t *s, uint8_t type, uint32_t timestamp_ms,
                               const uint8_t *payload, size_t len);

/* es_rtmp_session_send_status: an onStatus on the play/publish stream, e.g. ("status",
 * "NetStream.Play.UnpublishNotify", "live/cam is unpublished") when a player's publisher leaves
 * and ("status", "NetStream.Play.PublishNotify", ...) when one comes back. Returns 0, ES_EINVAL
 * when no publish/play is active, or ES_E2BIG when the strings exceed about 4 KB. */
int es_rtmp_session_send_status(es_rtmp_session_t *s, const char *level, const char *code,
                                const char *description);

/* es_rtmp_session_bytes_in: bytes received so far (for the API and Acknowledgements). */
uint64_t es_rtmp_session_bytes_in(const es_rtmp_session_t *s);

/* Counters for the API and the rate-limited log: the core itself never logs. */
typedef struct es_rtmp_session_stats {
    uint64_t messages_in;      /* whole messages received */
    uint64_t messages_out;     /* messages sent (one send callback each) */
    uint64_t commands;         /* AMF0/AMF3 commands received */
    uint64_t ignored_commands; /* unknown commands, or ones out of place (a second connect) */
    uint64_t ignored_messages; /* media before publish, unknown types, AMF3 data, bad tails */
    uint64_t media_in;         /* on_media calls */
    uint64_t acks_sent;        /* Acknowledgements (5.4.3) sent */
} es_rtmp_session_stats_t;

/* es_rtmp_session_stats: the counters since es_rtmp_session_new. */
es_rtmp_session_stats_t es_rtmp_session_stats(const es_rtmp_session_t *s);

#endif
