/* A load balancer for WHIP and WHEP (src/app/balancer.c), as Flussonic's: an app with
 * `balancer: [member base URLs]` answers WHIP/WHEP POSTs with 307 Temporary Redirect (RFC 9110
 * §15.4.8; WHIP RFC 9725 §4.5) to the same path on the member with the fewest sessions. Members
 * report their load through their API (GET /api/v1/load, polled every ES_BALANCER_POLL_MS with
 * the app's balancer_token); a member that has not answered for ES_BALANCER_STALE_MS is skipped.
 * Between polls each redirect counts one session on its member, so a burst is spread. */
#ifndef ESTUARY_BALANCER_H
#define ESTUARY_BALANCER_H

#include <jansson.h>
#include <stddef.h>

struct es_server;
typedef struct es_balancer es_balancer_t;

#define ES_BALANCER_POLL_MS 1000
#define ES_BALANCER_STALE_MS 3500
#define ES_BALANCER_MAX_MEMBERS 256 /* members tracked, all apps together */

/* es_balancer_new: polls the members of every app of srv's configuration (as it is at each
 * poll: SIGHUP changes take effect at the next one). NULL when out of memory. */
es_balancer_t *es_balancer_new(struct es_server *srv);

/* es_balancer_stop / es_balancer_free: NULL-safe; free after the loop ran. */
void es_balancer_stop(es_balancer_t *b);
void es_balancer_free(es_balancer_t *b);

/* es_balancer_pick: for app (which has members), the base URL (borrowed until the next poll) of
 * the live member with the fewest sessions, counted one more; NULL when no member has answered
 * within ES_BALANCER_STALE_MS. */
const char *es_balancer_pick(es_balancer_t *b, const char *app);

/* es_balancer_json: [{url, sessions, alive, last_error}] of every member. New reference. */
json_t *es_balancer_json(es_balancer_t *b);

#endif
