/* Configuration: one YAML file -> one es_config_t.
 *
 * The default configuration is conf/estuary.yaml itself, embedded at build time; a user's file
 * is read on top of the compiled-in defaults, so a file only names what it changes. Every error
 * names the file, line and column, and the key path ("http.listen"), in one line:
 *   estuary.yaml:7:11: http.listen: bad port '80800' (expected 1-65535)
 * Strings may use the environment: $NAME, ${NAME}, ${NAME:-default}; $$ is a literal '$'. */
#ifndef ESTUARY_CONFIG_H
#define ESTUARY_CONFIG_H

#include "estuary/log.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ES_CONFIG_ERR_MAX 512

/* A listen address, "IP:PORT" or "[IPv6]:PORT"; "" (enabled == false) turns the listener off. */
typedef struct es_listen {
    bool enabled;
    char text[64];                  /* as written, e.g. "0.0.0.0:8080" */
    char host[46];                  /* numeric IP without brackets, e.g. "::" */
    uint16_t port;                  /* host byte order */
    struct sockaddr_storage addr;   /* family, address and port, ready for bind(2) */
    socklen_t addr_len;
} es_listen_t;

/* Per-app settings. The app named "*" applies to apps not listed; without it those are refused. */
typedef struct es_app_config {
    char *name;
    char *publish_token;  /* NULL: anyone may publish */
    char *play_token;     /* NULL: anyone may play */
    bool rtmp_to_rtc;     /* offer RTMP-published streams to WebRTC players */
    bool rtc_to_rtmp;     /* offer WebRTC-published streams to RTMP/HTTP-FLV players */
    bool hls;             /* write HLS for this app's streams */
    bool publisher_takeover; /* a new publisher with valid credentials replaces a silent one */
    char *on_publish;     /* HTTP callbacks (include/estuary/hooks.h); NULL: none */
    char *on_unpublish;
    char *on_play;
    char *on_stop;
    char *origin;         /* an edge: pull streams players ask for from this server's base URL
                             ("http(s)://host:port", its /whep/{app}/{stream}); NULL: none */
    uint32_t origin_idle_ms; /* an edge pull stops this long after its last player left */
    char *origin_token;   /* Bearer token for the origin's WHEP, or NULL */
    char **balancer;      /* a balancer: WHIP/WHEP POSTs are redirected (307) to the member
                             base URL with the fewest sessions; NULL/0: not a balancer */
    size_t n_balancer;
    char *balancer_token; /* Bearer token for the members' GET /api/v1/load, or NULL */
} es_app_config_t;

/* One entry of the relays: list (include/estuary/relay.h). */
typedef struct es_relay_config {
    char *direction;      /* "push" or "pull" */
    char *stream;         /* the local stream, "app/stream" */
    char *url;            /* the remote WHIP (push) or WHEP (pull) endpoint */
    char *token;          /* Bearer token for the remote, or NULL */
} es_relay_config_t;

typedef struct es_config {
    struct {
        es_log_level_t level;
        char *file;               /* NULL: stderr */
    } log;
    struct {
        es_listen_t listen;
        es_listen_t https_listen;
        char *https_cert;         /* PEM file; required with https_listen */
        char *https_key;
        char *cors_origin;        /* Access-Control-Allow-Origin value */
        char *web_root;           /* NULL: find the installed or source-tree web/ directory */
    } http;
    struct {
        es_listen_t udp_listen;
        es_listen_t tcp_listen;   /* ICE-TCP (RFC 6544, RFC 4571 framing); "" turns it off */
        bool tcp_on_http;         /* the HTTP(S) ports also take ICE-TCP (first bytes sniffed) */
        char *protocol;           /* candidates answers offer: "all", "udp" or "tcp" */
        char **candidates;        /* "*", IP addresses or host names; env already expanded */
        size_t n_candidates;
        bool nack;
        bool twcc;
        bool remb;
        uint32_t publisher_timeout_ms; /* consent: close a silent publisher after this */
        uint32_t player_timeout_ms;    /* consent: close a silent player after this */
        uint32_t dtls_timeout_ms;      /* a DTLS handshake must finish within this */
        char *dtls_cert;          /* PEM; NULL: ECDSA P-256 generated at start */
        char *dtls_key;
    } webrtc;
    struct {
        es_listen_t listen;
        uint32_t chunk_size;      /* outgoing chunk size, 128..65536 bytes */
        uint32_t handshake_timeout_ms;
        uint32_t connect_timeout_ms; /* connect after the handshake, publish/play after connect */
        uint32_t idle_timeout_ms; /* a publisher sending nothing, or a client doing nothing */
        uint32_t max_message_bytes; /* largest message once publishing (64 KiB before) */
        uint32_t player_queue_ms; /* a player further behind than this drops to the next key frame */
        uint32_t player_queue_bytes; /* ... or with more than this many bytes queued */
        uint32_t player_stall_ms; /* a player whose socket took nothing for this long is closed */
        uint32_t gop_cache_bytes; /* GOP cache cap per stream, bytes; 0 turns the cache off */
        uint32_t opus_bitrate;    /* AAC -> Opus for WebRTC players, bit/s */
    } rtmp;
    struct {
        char *directory;          /* segments and playlists, one folder per app/stream */
        uint32_t segment_ms;      /* target segment duration */
        uint32_t window;          /* segments listed in a live playlist */
        bool fmp4;                /* fMP4 (CMAF) segments instead of MPEG-TS */
        uint32_t cleanup_ms;      /* a stream's folder is removed this long after it ended */
        uint32_t max_segment_ms;  /* a segment is cut here even without a key frame */
        uint32_t max_segment_bytes; /* ... or at this size */
    } hls;
    struct {
        char *token;              /* Bearer token of the admin API; NULL: loopback clients only */
    } api;
    struct {
        uint32_t timeout_ms;      /* a hook that has not answered by then refuses */
    } hooks;
    es_app_config_t *apps;
    size_t n_apps;
    es_relay_config_t *relays;    /* static relays, reconciled on SIGHUP */
    size_t n_relays;
    struct {
        uint32_t max_sessions;    /* WebRTC, RTMP and HTTP-FLV sessions at once; 503 past it */
        uint32_t max_sessions_per_ip; /* ... from one client address; 429 past it; 0: no limit */
        uint32_t offers_per_ip;   /* WHIP/WHEP offers per second from one address (burst of
                                     twice that); 429 past it; 0: no limit */
        uint32_t player_wait_ms;  /* an RTMP/HTTP-FLV player of an unpublished stream is closed
                                     after this; 0: waits forever */
        uint32_t max_http_body;   /* bytes; 413 past it */
    } limits;
} es_config_t;

/* es_config_new_default: a configuration holding the compiled-in defaults (which equal the
 * embedded conf/estuary.yaml). Returns NULL only when out of memory. Free with es_config_free. */
es_config_t *es_config_new_default(void);

/* es_config_load_file: read `path` over the defaults. Returns a new configuration, or NULL with
 * one line "FILE:LINE:COL: KEY: what is wrong" in err (err_len bytes, always NUL-terminated). */
es_config_t *es_config_load_file(const char *path, char *err, size_t err_len);

/* es_config_load_string: as es_config_load_file for `len` bytes of YAML already in memory;
 * `name` stands for the file name in error messages. The bytes are borrowed for the call. */
es_config_t *es_config_load_string(const char *yaml, size_t len, const char *name, char *err,
                                   size_t err_len);

/* es_config_load_embedded: the embedded default file, parsed. NULL with err only if it is broken,
 * which a unit test rules out. */
es_config_t *es_config_load_embedded(char *err, size_t err_len);

/* The embedded conf/estuary.yaml, NUL-terminated, and its length in bytes without the NUL. */
extern const char es_config_default_yaml[];
extern const size_t es_config_default_yaml_len;

/* es_config_free: NULL-safe. */
void es_config_free(es_config_t *cfg);

/* es_config_find_app: the settings for `app`: its own entry, else the "*" entry, else NULL
 * (the app is refused). Borrowed from cfg. */
const es_app_config_t *es_config_find_app(const es_config_t *cfg, const char *app);

/* es_config_token_equal: true when `given` equals the app token `expected`, compared without an
 * early exit so the time taken does not reveal a matching prefix. Both NUL-terminated. */
bool es_config_token_equal(const char *expected, const char *given);

/* es_config_diff: the key paths whose values differ between a and b ("log.level, apps"),
 * comma-separated into out (NUL-terminated, truncated to out_len; out may be NULL). With
 * restart_only, only keys that need a restart to change (listen addresses, certificates,
 * web_root, hls.directory: the [restart] keys of conf/estuary.yaml). Returns how many differ. */
int es_config_diff(const es_config_t *a, const es_config_t *b, bool restart_only, char *out,
                   size_t out_len);

/* es_config_keep_restart_keys: copies the restart-only settings of `running` into `next`, so
 * that `next` describes what the server actually runs after a live reload. Returns 0, or
 * ES_ENOMEM, after which `next` is still a valid configuration (each key old or new) but must
 * not be used: free it and keep `running`. */
int es_config_keep_restart_keys(const es_config_t *running, es_config_t *next);

/* es_config_expand_env: expand $NAME, ${NAME}, ${NAME:-default} and $$ in `in` using getenv.
 * Returns a malloc'ed string (caller frees), or NULL with a reason in err: an unset variable
 * without a default, an unterminated ${, a bad name, or out of memory. */
char *es_config_expand_env(const char *in, char *err, size_t err_len);

/* es_config_parse_listen: "IP:PORT", "[IPv6]:PORT" or "" (disabled) into *out. Returns 0, or
 * ES_EINVAL with the reason in err. */
int es_config_parse_listen(const char *text, es_listen_t *out, char *err, size_t err_len);

#endif
