/* ICE connectivity checks over libnice's STUN codec (stun/stunagent.h, stun/usages/ice.h) for
 * both roles (include/estuary/ice.h), and a minimal STUN reader that peeks the USERNAME ufrag
 * for routing before any session is known. RFC 8445 §7, RFC 8489. */
#include "estuary/ice.h"

#include "estuary/bytes.h"
#include "estuary/error.h"

#include <stdlib.h>
#include <string.h>
#include <stun/stunagent.h>
#include <stun/usages/ice.h>

#define STUN_HEADER 20

struct es_ice {
    StunAgent agent;
    char local_ufrag[ES_ICE_UFRAG_MAX + 1];
    char local_pwd[ES_ICE_PWD_MAX + 1];
    char remote_pwd[ES_ICE_PWD_MAX + 1];
    char username[2 * ES_ICE_UFRAG_MAX + 2];     /* "local:remote" expected in requests */
    char out_username[2 * ES_ICE_UFRAG_MAX + 2]; /* "remote:local" in our checks */
    bool controlling;
    uint64_t tie_breaker;
};

/* Attributes a Binding request or response may carry that we understand (RFC 8489, RFC 8445
 * §16.1). */
static const uint16_t known_attributes[] = {
    STUN_ATTRIBUTE_USERNAME,       STUN_ATTRIBUTE_MESSAGE_INTEGRITY, STUN_ATTRIBUTE_PRIORITY,
    STUN_ATTRIBUTE_USE_CANDIDATE,  STUN_ATTRIBUTE_ICE_CONTROLLED,    STUN_ATTRIBUTE_ICE_CONTROLLING,
    STUN_ATTRIBUTE_FINGERPRINT,    STUN_ATTRIBUTE_XOR_MAPPED_ADDRESS, STUN_ATTRIBUTE_ERROR_CODE, 0,
};

int es_stun_peek_ufrag(const uint8_t *buf, size_t len, char *out, size_t cap)
{
    if (len < STUN_HEADER || (buf[0] & 0xc0) || es_rd32(buf + 4) != STUN_MAGIC_COOKIE)
        return ES_EPROTO;
    if (es_rd16(buf) != 0x0001) return ES_EPROTO; /* Binding request */
    size_t body = es_rd16(buf + 2);
    if (body % 4 || body > len - STUN_HEADER) return ES_EPROTO;
    const uint8_t *p = buf + STUN_HEADER, *end = p + body;
    while (end - p >= 4) {
        uint16_t type = es_rd16(p), alen = es_rd16(p + 2);
        p += 4;
        if ((size_t)(end - p) < alen) return ES_EPROTO;
        if (type == STUN_ATTRIBUTE_USERNAME) {
            const uint8_t *colon = memchr(p, ':', alen);
            if (!colon) return ES_ENOENT;
            size_t n = (size_t)(colon - p);
            if (n + 1 > cap) return ES_E2BIG;
            memcpy(out, p, n);
            out[n] = '\0';
            return (int)n;
        }
        p += (alen + 3u) & ~3u;
    }
    return ES_ENOENT;
}

es_ice_t *es_ice_new(const es_ice_params_t *prm)
{
    const char *rpwd = prm->remote_pwd ? prm->remote_pwd : "";
    size_t lu = strlen(prm->local_ufrag), lp = strlen(prm->local_pwd);
    size_t ru = strlen(prm->remote_ufrag), rp = strlen(rpwd);
    if (!lu || !lp || !ru || lu > ES_ICE_UFRAG_MAX || lp > ES_ICE_PWD_MAX ||
        ru > ES_ICE_UFRAG_MAX || rp > ES_ICE_PWD_MAX)
        return NULL;
    es_ice_t *ice = calloc(1, sizeof *ice);
    if (!ice) return NULL;
    memcpy(ice->local_ufrag, prm->local_ufrag, lu);
    memcpy(ice->local_pwd, prm->local_pwd, lp);
    memcpy(ice->remote_pwd, rpwd, rp);
    memcpy(ice->username, prm->local_ufrag, lu);
    ice->username[lu] = ':';
    memcpy(ice->username + lu + 1, prm->remote_ufrag, ru);
    memcpy(ice->out_username, prm->remote_ufrag, ru);
    ice->out_username[ru] = ':';
    memcpy(ice->out_username + ru + 1, prm->local_ufrag, lu);
    ice->controlling = prm->controlling;
    /* The largest tie-breaker keeps our role in any conflict (RFC 8445 §7.3.1.1): a lite agent
     * is always controlled, and a client that also claims controlled is wrong, but answering it
     * beats a 487 loop; as controlling we keep nominating, and a peer that also claims
     * controlling gets 487 and switches. */
    ice->tie_breaker = UINT64_MAX;
    stun_agent_init(&ice->agent, known_attributes, STUN_COMPATIBILITY_RFC5389,
                    STUN_AGENT_USAGE_SHORT_TERM_CREDENTIALS | STUN_AGENT_USAGE_USE_FINGERPRINT);
    return ice;
}

void es_ice_free(es_ice_t *ice) { free(ice); }

/* libnice asks for the password of the USERNAME it found in a request; only "local:remote" is
 * accepted. Responses are checked with the key their request was sent with. */
static bool validate_username(StunAgent *agent, StunMessage *msg, uint8_t *username,
                              uint16_t username_len, uint8_t **password, size_t *password_len,
                              void *user_data)
{
    es_ice_t *ice = user_data;
    if (username_len != strlen(ice->username) || memcmp(username, ice->username, username_len))
        return false;
    *password = (uint8_t *)ice->local_pwd;
    *password_len = strlen(ice->local_pwd);
    return true;
}

int es_ice_handle_stun(es_ice_t *ice, const uint8_t *buf, size_t len, const struct sockaddr *from,
                       socklen_t from_len, uint8_t *out, size_t cap, es_ice_msg_t *msg)
{
    StunMessage req, resp;
    memset(msg, 0, sizeof *msg);
    if (from_len > sizeof(struct sockaddr_storage) || len > UINT16_MAX) return ES_EPROTO;
    StunValidationStatus v =
        stun_agent_validate(&ice->agent, &req, buf, len, validate_username, ice);
    if (v == STUN_VALIDATION_UNKNOWN_REQUEST_ATTRIBUTE) {
        /* RFC 8489 §7.3.1: a request with unknown comprehension-required attributes gets 420. */
        size_t n = stun_agent_build_unknown_attributes_error(&ice->agent, &resp, out, cap, &req);
        return n ? (int)n : ES_EPROTO;
    }
    if (v != STUN_VALIDATION_SUCCESS) return ES_EPROTO;
    if (stun_message_get_method(&req) != STUN_BINDING) return ES_EPROTO;
    switch (stun_message_get_class(&req)) {
    case STUN_INDICATION: return 0; /* keepalives (RFC 8445 §11) */
    case STUN_RESPONSE:
    case STUN_ERROR:
        msg->kind = stun_message_get_class(&req) == STUN_RESPONSE ? ES_ICE_MSG_SUCCESS
                                                                   : ES_ICE_MSG_ERROR;
        stun_message_id(&req, msg->txid);
        return 0;
    case STUN_REQUEST: break;
    }
    struct sockaddr_storage src;
    memset(&src, 0, sizeof src);
    memcpy(&src, from, from_len);
    size_t n = cap;
    bool controlling = ice->controlling;
    StunUsageIceReturn r = stun_usage_ice_conncheck_create_reply(
        &ice->agent, &req, &resp, out, &n, &src, from_len, &controlling, ice->tie_breaker,
        STUN_USAGE_ICE_COMPATIBILITY_RFC5245);
    if (r != STUN_USAGE_ICE_RETURN_SUCCESS && r != STUN_USAGE_ICE_RETURN_ROLE_CONFLICT)
        return n ? (int)n : ES_EPROTO;
    msg->kind = ES_ICE_MSG_REQUEST;
    msg->use_candidate = stun_usage_ice_conncheck_use_candidate(&req);
    msg->priority = stun_usage_ice_conncheck_priority(&req);
    return (int)n;
}

int es_ice_check_create(es_ice_t *ice, bool nominate, uint32_t priority, uint8_t *out, size_t cap,
                        uint8_t txid[ES_ICE_TXID_LEN])
{
    if (!ice->remote_pwd[0]) return ES_EINVAL;
    if (cap < ES_ICE_MSG_MAX) return ES_E2BIG;
    StunMessage msg;
    size_t n = stun_usage_ice_conncheck_create(
        &ice->agent, &msg, out, cap, (const uint8_t *)ice->out_username, strlen(ice->out_username),
        (const uint8_t *)ice->remote_pwd, strlen(ice->remote_pwd), nominate, ice->controlling,
        priority, ice->tie_breaker, NULL, STUN_USAGE_ICE_COMPATIBILITY_RFC5245);
    if (!n) return ES_EAGAIN; /* libnice remembers at most STUN_AGENT_MAX_SAVED_IDS */
    stun_message_id(&msg, txid);
    return (int)n;
}

void es_ice_check_forget(es_ice_t *ice, const uint8_t txid[ES_ICE_TXID_LEN])
{
    StunTransactionId id;
    memcpy(id, txid, sizeof id);
    stun_agent_forget_transaction(&ice->agent, id);
}
