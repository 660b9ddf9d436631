/* Relay control handlers (src/http/relay_api.c), for the route table in api.c: Estuary's
 * /api/v1/relays and WCS's /rest-api/pull/{push,pull,find_all,terminate}. */
#ifndef ESTUARY_HTTP_RELAY_API_H
#define ESTUARY_HTTP_RELAY_API_H

#include "estuary/http.h"
#include "estuary/server.h"

int es_api_relays(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_api_relay(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_wcs_pull_push(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_wcs_pull_pull(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_wcs_pull_find_all(void *user, const es_http_request_t *req, es_http_response_t *resp);
int es_wcs_pull_terminate(void *user, const es_http_request_t *req, es_http_response_t *resp);

#endif
