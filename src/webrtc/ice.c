/* ICE-lite responder over libnice's STUN codec (stun/stunagent.h, stun/usages/ice.h), and a
 * minimal STUN reader that peeks the USERNAME ufrag for routing before any session is known. */
#include "estuary/ice.h"

#include "estuary/bytes.h"
#include "estuary/error.h"

#include <stdlib.h>
#include <string.h>
#include <stun/stunagent.h>
#include <stun/usages/ice.h>

#define STUN_HEADER 20

struct es_ice_lite {
    StunAgent agent;
    char local_ufrag[ES_ICE_UFRAG_MAX + 1];
    char local_pwd[ES_ICE_PWD_MAX + 1];
    char remote_ufrag[ES_ICE_UFRAG_MAX + 1];
    char username[2 * ES_ICE_UFRAG_MAX + 2]; /* "local:remote" expected in requests */
    uint64_t tie_breaker;
    uint64_t last_seen_us;
    bool nominated;
    struct sockaddr_storage nominated_addr;
    socklen_t nominated_len;
};

/* Attributes a Binding request may carry that we understand (RFC 5389, RFC 8445 §16.1). */
static const uint16_t known_attributes[] = {
    STUN_ATTRIBUTE_USERNAME,       STUN_ATTRIBUTE_MESSAGE_INTEGRITY, STUN_ATTRIBUTE_PRIORITY,
    STUN_ATTRIBUTE_USE_CANDIDATE,  STUN_ATTRIBUTE_ICE_CONTROLLED,    STUN_ATTRIBUTE_ICE_CONTROLLING,
    STUN_ATTRIBUTE_FINGERPRINT,    STUN_ATTRIBUTE_XOR_MAPPED_ADDRESS, 0,
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

es_ice_lite_t *es_ice_lite_new(const char *local_ufrag, const char *local_pwd,
                               const char *remote_ufrag)
{
    size_t lu = strlen(local_ufrag), lp = strlen(local_pwd), ru = strlen(remote_ufrag);
    if (!lu || !lp || !ru || lu > ES_ICE_UFRAG_MAX || lp > ES_ICE_PWD_MAX || ru > ES_ICE_UFRAG_MAX)
        return NULL;
    es_ice_lite_t *ice = calloc(1, sizeof *ice);
    if (!ice) return NULL;
    memcpy(ice->local_ufrag, local_ufrag, lu);
    memcpy(ice->local_pwd, local_pwd, lp);
    memcpy(ice->remote_ufrag, remote_ufrag, ru);
    memcpy(ice->username, local_ufrag, lu);
    ice->username[lu] = ':';
    memcpy(ice->username + lu + 1, remote_ufrag, ru);
    /* A lite agent is always controlled and answers every valid check (RFC 8445 §6.1.1); a
     * client that also claims the controlled role is wrong, but answering it beats a 487 loop.
     * The largest tie-breaker makes libnice's conflict check settle without an error reply. */
    ice->tie_breaker = UINT64_MAX;
    stun_agent_init(&ice->agent, known_attributes, STUN_COMPATIBILITY_RFC5389,
                    STUN_AGENT_USAGE_SHORT_TERM_CREDENTIALS | STUN_AGENT_USAGE_USE_FINGERPRINT);
    return ice;
}

void es_ice_lite_free(es_ice_lite_t *ice) { free(ice); }

/* libnice asks for the password of the USERNAME it found; only "local:remote" is accepted. */
static bool validate_username(StunAgent *agent, StunMessage *msg, uint8_t *username,
                              uint16_t username_len, uint8_t **password, size_t *password_len,
                              void *user_data)
{
    es_ice_lite_t *ice = user_data;
    if (username_len != strlen(ice->username) || memcmp(username, ice->username, username_len))
        return false;
    *password = (uint8_t *)ice->local_pwd;
    *password_len = strlen(ice->local_pwd);
    return true;
}

int es_ice_lite_handle_stun(es_ice_lite_t *ice, uint64_t now_us, const uint8_t *buf, size_t len,
                            const struct sockaddr *from, socklen_t from_len, uint8_t *out,
                            size_t cap)
{
    StunMessage req, resp;
    if (from_len > sizeof(struct sockaddr_storage)) return ES_EPROTO;
    StunValidationStatus v =
        stun_agent_validate(&ice->agent, &req, buf, len, validate_username, ice);
    if (v == STUN_VALIDATION_UNKNOWN_REQUEST_ATTRIBUTE) {
        /* RFC 5389 §7.3.1: a request with unknown comprehension-required attributes gets 420. */
        size_t n = stun_agent_build_unknown_attributes_error(&ice->agent, &resp, out, cap, &req);
        return n ? (int)n : ES_EPROTO;
    }
    /* Bad integrity, a USERNAME of another session, malformed: drop it (the caller counts).
     * Answering 401 would only help an attacker probe ufrags. */
    if (v != STUN_VALIDATION_SUCCESS) return ES_EPROTO;
    if (stun_message_get_class(&req) != STUN_REQUEST ||
        stun_message_get_method(&req) != STUN_BINDING)
        return 0; /* indications and responses: nothing to answer */

    struct sockaddr_storage src;
    memset(&src, 0, sizeof src);
    memcpy(&src, from, from_len);
    size_t n = cap;
    bool controlling = false; /* ICE-lite: always controlled (RFC 8445 §6.1.1) */
    StunUsageIceReturn r = stun_usage_ice_conncheck_create_reply(
        &ice->agent, &req, &resp, out, &n, &src, from_len, &controlling, ice->tie_breaker,
        STUN_USAGE_ICE_COMPATIBILITY_RFC5245);
    if (r != STUN_USAGE_ICE_RETURN_SUCCESS && r != STUN_USAGE_ICE_RETURN_ROLE_CONFLICT)
        return n ? (int)n : ES_EPROTO;
    ice->last_seen_us = now_us;
    if (stun_usage_ice_conncheck_use_candidate(&req)) {
        ice->nominated = true;
        ice->nominated_addr = src;
        ice->nominated_len = from_len;
    }
    return (int)n;
}

bool es_ice_lite_nominated(const es_ice_lite_t *ice, struct sockaddr_storage *addr,
                           socklen_t *addr_len)
{
    if (!ice->nominated) return false;
    if (addr) *addr = ice->nominated_addr;
    if (addr_len) *addr_len = ice->nominated_len;
    return true;
}

uint64_t es_ice_lite_last_seen_us(const es_ice_lite_t *ice) { return ice->last_seen_us; }
