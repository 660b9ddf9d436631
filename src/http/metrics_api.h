/* GET /metrics (src/http/metrics.c): Prometheus text format, on the admin API. */
#ifndef ESTUARY_HTTP_METRICS_API_H
#define ESTUARY_HTTP_METRICS_API_H

#include "estuary/http.h"

/* es_api_metrics: the handler; user is the es_server_t. Answers 200 text/plain;
 * version=0.0.4, or 503 when out of memory. */
int es_api_metrics(void *user, const es_http_request_t *req, es_http_response_t *resp);

#endif
