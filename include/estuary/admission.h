/* Admission of a publisher or a player to a stream (src/media/admission.c): the one place that
 * decides whether app/stream may be published or played now, whatever the protocol: valid
 * names, the session limit, one publisher per stream, something to play. Tokens are checked by
 * each protocol's framing before (issue 14 moves them here too). Errors are ES_E* codes with a
 * reason a person can act on; each protocol maps them its own way (HTTP: 400, 404, 409, 503). */
#ifndef ESTUARY_ADMISSION_H
#define ESTUARY_ADMISSION_H

#include "estuary/config.h"
#include "estuary/registry.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { ES_ADMIT_PUBLISH = 0, ES_ADMIT_PLAY } es_admit_role_t;

/* The protocol a client uses, for what "something to play" means. */
typedef enum { ES_ADMIT_WEBRTC = 0, ES_ADMIT_RTMP, ES_ADMIT_HTTP_FLV } es_admit_protocol_t;

typedef struct es_admit_request {
    const char *app, *stream;
    es_admit_role_t role;
    es_admit_protocol_t protocol;
    unsigned sessions;        /* sessions open now, for limits.max_sessions */
} es_admit_request_t;

/* es_admit: may this request go ahead now? Returns 0 and the stream (*out, borrowed; NULL when
 * a publisher's stream does not exist yet: the caller opens it with es_live_open), or
 * ES_EINVAL (bad app or stream name), ES_EBUSY (limits.max_sessions reached), ES_EEXIST (a
 * publisher is there already, over either protocol), ES_ENOENT (nothing to play: not published,
 * or published over RTMP without apps.<app>.rtmp_to_rtc or before its first frame), with the
 * reason in why (why_len bytes). */
int es_admit(const es_registry_t *reg, const es_config_t *cfg, const es_admit_request_t *req,
             es_stream_t **out, char *why, size_t why_len);

#endif
