/* Socket address helpers (include/estuary/addr.h). */
#include "estuary/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

void es_addr_format(const struct sockaddr *sa, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, len, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, sizeof ip);
            snprintf(out, len, "%s:%u", ip, ntohs(in6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
            snprintf(out, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
        }
    } else {
        snprintf(out, len, "?");
    }
}

/* The 16 address bytes of an IPv4 or IPv6 address, IPv4 as IPv4-mapped, and the port. */
static bool addr_key(const struct sockaddr *sa, uint8_t ip[16], uint16_t *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memset(ip, 0, 10);
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &in->sin_addr, 4);
        *port = in->sin_port;
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(ip, &in6->sin6_addr, 16);
        *port = in6->sin6_port;
        return true;
    }
    return false;
}

bool es_addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    uint8_t ia[16], ib[16];
    uint16_t pa, pb;
    if (!addr_key(a, ia, &pa) || !addr_key(b, ib, &pb)) return false;
    return pa == pb && !memcmp(ia, ib, 16);
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t es_addr_pair_hash(const es_addr_pair_t *p)
{
    uint8_t ip[16];
    uint16_t port = 0;
    uint64_t h = 0xcbf29ce484222325ULL;
    if (addr_key((const struct sockaddr *)&p->remote, ip, &port)) {
        h = fnv1a(h, ip, 16);
        h = fnv1a(h, (const uint8_t *)&port, 2);
    }
    if (addr_key((const struct sockaddr *)&p->local, ip, &port)) {
        h = fnv1a(h, ip, 16);
        if (p->transport == ES_ADDR_TCP) h = fnv1a(h, (const uint8_t *)&port, 2);
    }
    return fnv1a(h, &p->transport, 1);
}

bool es_addr_pair_equal(const es_addr_pair_t *a, const es_addr_pair_t *b)
{
    if (a->transport != b->transport) return false;
    if (!es_addr_equal((const struct sockaddr *)&a->remote, (const struct sockaddr *)&b->remote))
        return false;
    uint8_t ia[16], ib[16];
    uint16_t pa, pb;
    bool ka = addr_key((const struct sockaddr *)&a->local, ia, &pa);
    bool kb = addr_key((const struct sockaddr *)&b->local, ib, &pb);
    /* A TCP pair is one connection: its local port (the ICE-TCP or the HTTP port) counts too. */
    return ka == kb && (!ka || (!memcmp(ia, ib, 16) && (a->transport != ES_ADDR_TCP || pa == pb)));
}
