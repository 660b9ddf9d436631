/* WHIP/WHEP and session API handlers (src/http/whip.c), for the route table in api.c. */
#ifndef ESTUARY_HTTP_WHIP_H
#define ESTUARY_HTTP_WHIP_H

#include "estuary/http.h"
#include "estuary/server.h"

int es_whip_post(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_whep_post(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_srs_whip_post(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_srs_whep_post(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_whip_resource(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_whep_resource(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_api_sessions(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_api_session(void *user, const es_http_request_t *req, es_http_response_t *resp);

#endif
