/* ICE connectivity checks (RFC 8445 §7) on libnice's STUN codec, for both roles: every agent
 * answers Binding requests (MESSAGE-INTEGRITY with the local password, FINGERPRINT, USERNAME
 * "local:remote", RFC 8489 §9.1 and §14.4) with XOR-MAPPED-ADDRESS, and a full agent also
 * builds the checks it sends (USERNAME "remote:local", the remote password, PRIORITY,
 * ICE-CONTROLLING or ICE-CONTROLLED, USE-CANDIDATE when nominating, RFC 8445 §7.1.1) and
 * validates their responses. Pairs, pacing and nomination belong to the caller (the WebRTC
 * session, include/estuary/rtc_session.h). Sans-IO: bytes in, bytes out, no clock. */
#ifndef ESTUARY_ICE_H
#define ESTUARY_ICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ES_ICE_UFRAG_MAX 256 /* RFC 8839 §5.4: ice-ufrag is 4..256 characters */
#define ES_ICE_PWD_MAX 256   /* ice-pwd is 22..256 characters */
#define ES_ICE_TXID_LEN 16   /* bytes: magic cookie + 96-bit transaction id (RFC 8489 §5), as
                                libnice keeps it */
#define ES_ICE_MSG_MAX 512   /* bytes: enough for any request or response this module writes */

/* es_stun_peek_ufrag: without validating anything, finds the USERNAME attribute of a STUN
 * Binding request and copies the part before ':' (the receiver's ufrag, which routes the packet
 * to a session before any pair is known) NUL-terminated into out (cap bytes). Returns its length,
 * ES_ENOENT when there is no USERNAME or no ':', ES_EPROTO when the bytes are not a STUN Binding
 * request (RFC 8489 §5: leading zero bits, magic cookie, length a multiple of 4 that fits),
 * ES_E2BIG when the ufrag does not fit in out. */
int es_stun_peek_ufrag(const uint8_t *buf, size_t len, char *out, size_t cap);

typedef struct es_ice es_ice_t;

typedef struct es_ice_params {
    const char *local_ufrag, *local_pwd;   /* ours */
    const char *remote_ufrag;              /* the peer's */
    const char *remote_pwd;                /* the peer's; "" or NULL when we never send checks
                                              (an ICE-lite agent, RFC 8445 §2.5) */
    bool controlling;                      /* RFC 8445 §6.1.1: the full agent facing a lite one,
                                              or the offerer when both are full */
} es_ice_params_t;

/* es_ice_new: one agent's credentials and role (strings copied). Returns NULL when a required
 * credential is empty or too long (ufrag 256, pwd 256 bytes), or when out of memory. */
es_ice_t *es_ice_new(const es_ice_params_t *params);

/* es_ice_free: NULL-safe. */
void es_ice_free(es_ice_t *ice);

/* What es_ice_handle_stun found in a valid message. */
typedef enum {
    ES_ICE_MSG_OTHER = 0,     /* an indication, or a response to no check of ours */
    ES_ICE_MSG_REQUEST,       /* a Binding request with our credentials: answered */
    ES_ICE_MSG_SUCCESS,       /* a success response to one of our checks (txid below) */
    ES_ICE_MSG_ERROR,         /* an error response to one of our checks (487 role conflict...) */
} es_ice_msg_kind_t;

typedef struct es_ice_msg {
    es_ice_msg_kind_t kind;
    bool use_candidate;       /* REQUEST: USE-CANDIDATE present (the sender nominates the pair) */
    uint32_t priority;        /* REQUEST: PRIORITY (a peer-reflexive candidate's, RFC 8445 §7.2.5.3.1) */
    uint8_t txid[ES_ICE_TXID_LEN]; /* SUCCESS/ERROR: the transaction of our check */
} es_ice_msg_t;

/* es_ice_handle_stun: one STUN datagram from `from`. A valid Binding request is answered: the
 * success response (XOR-MAPPED-ADDRESS = from) goes into out (cap bytes; ES_ICE_MSG_MAX is
 * always enough) and its length is returned; a request with unknown comprehension-required
 * attributes gets a 420 (RFC 8489 §7.3.1). A valid response to one of our checks (integrity
 * checked with the remote password) returns 0 with msg->kind SUCCESS or ERROR and its txid; an
 * indication returns 0. Returns ES_EPROTO for anything to drop: not STUN, bad MESSAGE-INTEGRITY
 * or FINGERPRINT, a USERNAME other than "local:remote", a response to no check of ours. Bad
 * integrity is not answered with a 401: that would only help probing ufrags. */
int es_ice_handle_stun(es_ice_t *ice, const uint8_t *buf, size_t len, const struct sockaddr *from,
                       socklen_t from_len, uint8_t *out, size_t cap, es_ice_msg_t *msg);

/* es_ice_check_create: a connectivity check (RFC 8445 §7.1.1) into out (cap bytes,
 * ES_ICE_MSG_MAX is enough): USERNAME "remote:local", PRIORITY `priority` (of the local
 * candidate as peer-reflexive, §7.1.1), the role attribute with our tie-breaker, USE-CANDIDATE
 * when `nominate`, MESSAGE-INTEGRITY with the remote password, FINGERPRINT. Its transaction id
 * goes to txid; the agent remembers it until a response arrives or es_ice_check_forget (at most
 * 200 at once, libnice's STUN_AGENT_MAX_SAVED_IDS). Retransmit the same bytes (RFC 8489
 * §6.2.1). Returns the length, ES_EINVAL without a remote password, ES_E2BIG when out is too
 * small, ES_EAGAIN when 200 checks are outstanding. */
int es_ice_check_create(es_ice_t *ice, bool nominate, uint32_t priority, uint8_t *out, size_t cap,
                        uint8_t txid[ES_ICE_TXID_LEN]);

/* es_ice_check_forget: stop waiting for the response to check txid (given up or replaced). */
void es_ice_check_forget(es_ice_t *ice, const uint8_t txid[ES_ICE_TXID_LEN]);

#endif
