/* WHIP (RFC 9725) and WHEP endpoints, with the SRS-compatible /rtc/v1/whip/ and /rtc/v1/whep/
 * paths, and the session API. HTTP semantics only: SDP and sessions are es_rtc_* work
 * (src/net/rtc_server.c).
 *
 *   POST   /whip/{app}/{stream}            offer -> 201 answer, Location, ETag
 *   POST   /whep/{app}/{stream}
 *   POST   /rtc/v1/whip/?app=A&stream=S    (also ?eip=IP[:PORT] on any of these)
 *   POST   /rtc/v1/whep/?app=A&stream=S
 *   PATCH  /whip|whep/{app}/{stream}/{id}-{secret}  trickle-ice-sdpfrag: 204, or 200 after an
 *                                           ICE restart (the Location of the 201 names it)
 *   DELETE /whip|whep/{app}/{stream}/{id}-{secret}  ends the session
 *   GET    /api/v1/sessions, GET|DELETE /api/v1/sessions/{id}  (admin API)
 * Every offer is admitted through es_admit_begin (include/estuary/hooks.h): tokens, limits,
 * the app's hook (then the answer is given later), and a per-address offer rate. */
#include "whip.h"

#include "estuary/admission.h"
#include "estuary/balancer.h"
#include "estuary/clock.h"
#include "estuary/config.h"
#include "estuary/error.h"
#include "estuary/hooks.h"
#include "estuary/log.h"
#include "estuary/registry.h"
#include "estuary/rtc_server.h"
#include "estuary/rtmp_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The media type without parameters equals `want` (case-insensitive). */
static bool content_type_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n) != 0) return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* An offer's answer (base: the resource's path prefix, 201 Created) or a PATCH result (200 with
 * an ICE restart's sdpfrag, else 204). */
static int respond_result(es_http_response_t *resp, const es_rtc_result_t *r, const char *base)
{
    if (r->err) return es_http_respond_error(resp, es_http_status_of(r->err), "%s", r->error);
    es_http_response_reset(resp);
    resp->status = base ? 201 : r->sdp ? 200 : 204;
    if (r->etag[0]) snprintf(resp->etag, sizeof resp->etag, "%s", r->etag);
    if (r->sdp) {
        resp->body = r->sdp;
        resp->body_len = strlen(r->sdp);
        snprintf(resp->content_type, sizeof resp->content_type, "%s",
                 base ? "application/sdp" : "application/trickle-ice-sdpfrag");
    }
    if (base) snprintf(resp->location, sizeof resp->location, "%s/%s-%s", base, r->id, r->secret);
    return 0;
}

/* An offer waiting for the app's on_publish/on_play hook: what es_rtc_offer needs afterwards. */
typedef struct pending_offer {
    es_server_t *srv;
    es_http_async_t *async;
    es_hook_call_t *call;
    es_rtc_role_t role;
    char app[ES_APP_NAME_MAX + 1], stream[ES_STREAM_NAME_MAX + 1];
    char remote[64];
    char id[ES_RTC_ID_LEN + 1];     /* the session's id, told to the hooks */
    const char *token, *eip;        /* into text after the SDP, or NULL */
    const char *sdp;                /* into text */
    size_t sdp_len;
    char text[];                    /* the SDP, the token and eip, each NUL-terminated */
} pending_offer_t;

static void run_offer(es_server_t *srv, es_rtc_role_t role, const char *app, const char *stream,
                      const char *token, const char *sdp, size_t len, const char *eip,
                      const char *remote, const char *id, es_http_response_t *resp)
{
    es_rtc_result_t r;
    es_rtc_offer(srv->rtc, role, app, stream, token, sdp, len, eip, remote, id, &r);
    char base[6 + ES_APP_NAME_MAX + 1 + ES_STREAM_NAME_MAX + 1]; /* names checked by es_admit */
    snprintf(base, sizeof base, "/%s/%.64s/%.128s", role == ES_RTC_PUBLISH ? "whip" : "whep", app,
             stream);
    respond_result(resp, &r, base);
}

static void pending_cancel(void *user)
{
    pending_offer_t *p = user;
    es_hook_cancel(p->call);
    free(p);
}

static void pending_done(void *user, int err, const char *reason)
{
    pending_offer_t *p = user;
    es_http_response_t *resp = es_http_async_response(p->async);
    if (err) {
        es_admit_log_refusal(p->role == ES_RTC_PUBLISH ? ES_PROTO_WHIP : ES_PROTO_WHEP,
                             p->role == ES_RTC_PUBLISH ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY, p->app,
                             p->stream, p->remote, p->id, err, reason);
        es_http_respond_error(resp, es_http_status_of(err), "%s", reason);
    } else {
        run_offer(p->srv, p->role, p->app, p->stream, p->token, p->sdp, p->sdp_len, p->eip,
                  p->remote, p->id, resp);
    }
    es_http_async_finish(p->async);
    free(p);
}

static int offer(es_server_t *srv, es_rtc_role_t role, const char *app, const char *stream,
                 const es_http_request_t *req, es_http_response_t *resp)
{
    if (!srv->rtc) return es_http_respond_error(resp, 503, "WebRTC is not running");
    if (!req->content_type[0] || !content_type_is(req->content_type, "application/sdp"))
        return es_http_respond_error(resp, 415, "the offer must be sent as Content-Type: "
                                     "application/sdp, not '%s'", req->content_type);
    if (!req->body || !req->body_len)
        return es_http_respond_error(resp, 400, "empty body: POST the SDP offer");
    if (!app || !stream || !*app || !*stream)
        return es_http_respond_error(resp, 400, "app and stream are required");
    const es_config_t *cfg = srv->cfg;
    char ip[48];
    es_client_ip(req->remote, ip, sizeof ip);
    if (!es_clients_offer(srv->clients, ip, cfg->limits.offers_per_ip, es_clock_now_us())) {
        es_log_ctx_t lc = {.peer = req->conn_id, .remote = req->remote};
        ES_INFO("http", &lc, "offer refused: more than limits.offers_per_ip (%u a second) from %s",
                cfg->limits.offers_per_ip, ip);
        return es_http_respond_error(resp, 429, "too many offers from this address: "
                                     "limits.offers_per_ip is %u a second", cfg->limits.offers_per_ip);
    }
    const es_app_config_t *bac = app ? es_config_find_app(srv->cfg, app) : NULL;
    if (bac && bac->n_balancer) { /* a balancer: 307 to the least loaded member */
        const char *to = es_balancer_pick(srv->balancer, app);
        es_log_ctx_t lc = {.peer = req->conn_id, .remote = req->remote};
        if (!to) {
            ES_WARN("http", &lc, "balancer of app %s: no member answers its load; 503", app);
            return es_http_respond_error(resp, 503, "no member of app %s's balancer is available",
                                         app);
        }
        /* The same endpoint on the member, from the validated names and the raw query (no
         * decoded byte of the path reaches the header). */
        if (!es_registry_valid_name(app, ES_APP_NAME_MAX) ||
            !es_registry_valid_name(stream, ES_STREAM_NAME_MAX))
            return es_http_respond_error(resp, 400, "bad app or stream name");
        if (strpbrk(req->query, " \t\r\n"))
            return es_http_respond_error(resp, 400, "bad query string");
        char where[sizeof resp->location];
        int n = snprintf(where, sizeof where, "%s/%s/%s/%s%s%s", to,
                         role == ES_RTC_PUBLISH ? "whip" : "whep", app, stream,
                         req->query[0] ? "?" : "", req->query);
        if (n < 0 || (size_t)n >= sizeof where)
            return es_http_respond_error(resp, 500, "the member's URL is too long to redirect to");
        ES_INFO("http", &lc, "balancer of app %s: %s redirected to %s", app,
                role == ES_RTC_PUBLISH ? "WHIP" : "WHEP", to);
        int rc = es_http_respond_error(resp, 307, "redirected to %s", to);
        memcpy(resp->location, where, (size_t)n + 1); /* after the body, which resets resp */
        return rc;
    }
    const char *token = es_bearer_token(req->authorization);
    const char *eip = es_http_arg(req, "eip");
    es_admit_request_t areq = {.app = app, .stream = stream, .token = token,
                               .role = role == ES_RTC_PUBLISH ? ES_ADMIT_PUBLISH : ES_ADMIT_PLAY,
                               .protocol = role == ES_RTC_PUBLISH ? ES_PROTO_WHIP : ES_PROTO_WHEP,
                               .now_us = es_clock_now_us()};
    /* What the offer needs, kept for an answer the app's hook may delay (a few KiB, and offers
     * are rate-limited): es_admit decides whether a hook is asked. */
    size_t tl = token ? strlen(token) + 1 : 0, el = eip ? strlen(eip) + 1 : 0;
    pending_offer_t *p = calloc(1, sizeof *p + req->body_len + 1 + tl + el);
    if (!p) return es_http_respond_error(resp, 503, "out of memory");
    memcpy(p->text, req->body, req->body_len);
    p->sdp = p->text;
    p->sdp_len = req->body_len;
    char *tail = p->text + req->body_len + 1;
    if (token) p->token = memcpy(tail, token, tl);
    if (eip) p->eip = memcpy(tail + tl, eip, el);
    p->srv = srv;
    p->role = role;
    snprintf(p->app, sizeof p->app, "%s", app);
    snprintf(p->stream, sizeof p->stream, "%s", stream);
    snprintf(p->remote, sizeof p->remote, "%s", req->remote);
    es_rtc_new_id(p->id);
    es_admit_decision_t d;
    es_hook_call_t *call = NULL;
    int err = es_admit_begin(srv, &areq, req->remote, p->id, req->query, &d, pending_done, p,
                             &call);
    if (!err && call) {
        if ((p->async = es_http_async_begin(req, pending_cancel, p))) {
            p->call = call;
            return 0; /* pending_done answers */
        }
        es_hook_cancel(call);
        err = ES_EBUSY;
        snprintf(d.reason, sizeof d.reason, "cannot wait for the hook");
    }
    if (err) es_http_respond_error(resp, es_http_status_of(err), "%s", d.reason);
    else run_offer(srv, role, p->app, p->stream, p->token, p->sdp, p->sdp_len, p->eip, p->remote,
                   p->id, resp);
    free(p);
    return 0;
}

int es_whip_post(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    return offer(user, ES_RTC_PUBLISH, req->params[0], req->params[1], req, resp);
}

int es_whep_post(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    return offer(user, ES_RTC_PLAY, req->params[0], req->params[1], req, resp);
}

int es_srs_whip_post(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    return offer(user, ES_RTC_PUBLISH, es_http_arg(req, "app"), es_http_arg(req, "stream"), req,
                 resp);
}

int es_srs_whep_post(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    return offer(user, ES_RTC_PLAY, es_http_arg(req, "app"), es_http_arg(req, "stream"), req, resp);
}

/* GET, PATCH and DELETE on /whip|whep/{app}/{stream}/{id}-{secret}: the session must be of
 * this app, stream and role, and the secret that only its Location carried must match. Anything
 * else is a 404, the same as for a session that does not exist. GET answers the session's API
 * view with its timeline (also for a few minutes after it ended): what the client itself may
 * read about its connection, without the admin token (web/doctor.html reads it). */
static int resource(void *user, const es_http_request_t *req, es_http_response_t *resp,
                    bool publish)
{
    es_server_t *srv = user;
    if (!srv->rtc) return es_http_respond_error(resp, 503, "WebRTC is not running");
    char id[ES_RTC_ID_LEN + 1];
    if (es_rtc_resource_check(srv->rtc, req->params[2], publish ? ES_RTC_PUBLISH : ES_RTC_PLAY,
                              req->params[0], req->params[1], id) != 0) {
        es_log_ctx_t lc = {.peer = req->conn_id, .remote = req->remote};
        char path[512];
        ES_INFO("http", &lc, "%s %s refused: no such session resource (wrong app, stream, role "
                "or secret)", es_http_method_name(req->method),
                es_http_path_for_log(req->path, path, sizeof path));
        return es_http_respond_error(resp, 404, "no such session");
    }
    if (req->method == ES_HTTP_GET) {
        json_t *o = es_rtc_session_json(srv->rtc, id);
        if (!o) return es_http_respond_error(resp, 404, "no such session");
        return es_http_respond_json(resp, 200, o);
    }
    if (req->method == ES_HTTP_DELETE) {
        if (es_rtc_delete(srv->rtc, id, "DELETE from the client") != 0)
            return es_http_respond_error(resp, 404, "no such session");
        es_http_response_reset(resp);
        resp->status = 200;
        return 0;
    }
    if (!content_type_is(req->content_type, "application/trickle-ice-sdpfrag"))
        return es_http_respond_error(resp, 415, "PATCH takes Content-Type: "
                                     "application/trickle-ice-sdpfrag, not '%s'", req->content_type);
    es_rtc_result_t r;
    es_rtc_patch(srv->rtc, id, req->if_match, req->body ? (const char *)req->body : "",
                 req->body_len, &r);
    return respond_result(resp, &r, NULL);
}

int es_whip_resource(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    return resource(user, req, resp, true);
}

int es_whep_resource(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    return resource(user, req, resp, false);
}

int es_api_sessions(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    es_server_t *srv = user;
    json_t *arr = es_rtc_sessions_json(srv->rtc);
    json_t *rtmp = es_rtmp_sessions_json(srv->rtmp);
    json_array_extend(arr, rtmp);
    json_decref(rtmp);
    size_t n = json_array_size(arr);
    return es_http_respond_json(resp, 200, json_pack("{s:o, s:I}", "sessions", arr, "count",
                                                     (json_int_t)n));
}

int es_api_session(void *user, const es_http_request_t *req, es_http_response_t *resp)
{
    es_server_t *srv = user;
    const char *id = req->params[0];
    if (req->method == ES_HTTP_DELETE) {
        if ((!srv->rtc || es_rtc_delete(srv->rtc, id, "kicked through the API") != 0) &&
            es_rtmp_kick(srv->rtmp, id, "kicked through the API") != 0)
            return es_http_respond_error(resp, 404, "no session %s", id);
        return es_http_respond_json(resp, 200, json_pack("{s:s, s:b}", "id", id, "closed", 1));
    }
    json_t *o = es_rtc_session_json(srv->rtc, id);
    if (!o) o = es_rtmp_session_json_by_id(srv->rtmp, id);
    if (!o) return es_http_respond_error(resp, 404, "no session %s", id);
    return es_http_respond_json(resp, 200, o);
}
