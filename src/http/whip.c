/* WHIP (RFC 9725) and WHEP endpoints, with the SRS-compatible /rtc/v1/whip/ and /rtc/v1/whep/
 * paths, and the session API. HTTP semantics only: SDP and sessions are es_rtc_* work
 * (src/net/rtc_server.c).
 *
 *   POST   /whip/{app}/{stream}            offer -> 201 answer, Location, ETag
 *   POST   /whep/{app}/{stream}
 *   POST   /rtc/v1/whip/?app=A&stream=S    (also ?eip=IP[:PORT] on any of these)
 *   POST   /rtc/v1/whep/?app=A&stream=S
 *   PATCH  /whip|whep/{app}/{stream}/{id}  trickle-ice-sdpfrag: 204, or 200 after an ICE restart
 *   DELETE /whip|whep/{app}/{stream}/{id}  ends the session
 *   GET    /api/v1/sessions, GET|DELETE /api/v1/sessions/{id} */
#include "whip.h"

#include "estuary/config.h"
#include "estuary/error.h"
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

/* Authorization: Bearer TOKEN against the app's token. 0 when allowed, else the HTTP status. */
static int check_token(const es_http_request_t *req, const char *token, char *why, size_t len)
{
    if (!token || !*token) return 0;
    const char *a = req->authorization;
    if (!a || !*a) {
        snprintf(why, len, "this app needs a token: send 'Authorization: Bearer TOKEN'");
        return 401;
    }
    if (strncasecmp(a, "Bearer ", 7) != 0) {
        snprintf(why, len, "Authorization must be 'Bearer TOKEN'");
        return 401;
    }
    const char *t = a + 7;
    while (*t == ' ') t++;
    if (!es_config_token_equal(token, t)) {
        snprintf(why, len, "wrong token");
        return 403;
    }
    return 0;
}

/* The HTTP status for an es_rtc_* error (RFC 9725 and the WHEP draft name most of them). */
static int http_status(int err)
{
    switch (err) {
    case ES_EINVAL:
    case ES_EPROTO: return 400;
    case ES_EACCES: return 403;
    case ES_ENOENT: return 404;
    case ES_ENOTSUP: return 406;
    case ES_EEXIST: return 409;
    case ES_ESTALE: return 412;
    case ES_ERANGE: return 500;
    default: return 503; /* ES_EBUSY, ES_ENOMEM, ES_EIO */
    }
}

/* An offer's answer (base: the resource's path prefix, 201 Created) or a PATCH result (200 with
 * an ICE restart's sdpfrag, else 204). */
static int respond_result(es_http_response_t *resp, const es_rtc_result_t *r, const char *base)
{
    if (r->err) return es_http_respond_error(resp, http_status(r->err), "%s", r->error);
    es_http_response_reset(resp);
    resp->status = base ? 201 : r->sdp ? 200 : 204;
    if (r->etag[0]) snprintf(resp->etag, sizeof resp->etag, "%s", r->etag);
    if (r->sdp) {
        resp->body = r->sdp;
        resp->body_len = strlen(r->sdp);
        snprintf(resp->content_type, sizeof resp->content_type, "%s",
                 base ? "application/sdp" : "application/trickle-ice-sdpfrag");
    }
    if (base) snprintf(resp->location, sizeof resp->location, "%s/%s", base, r->id);
    return 0;
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
    const es_app_config_t *ac = es_config_find_app(srv->cfg, app);
    if (!ac) return es_http_respond_error(resp, 403, "app '%s' is not configured", app);
    char why[160];
    int st = check_token(req, role == ES_RTC_PUBLISH ? ac->publish_token : ac->play_token, why,
                         sizeof why);
    if (st) return es_http_respond_error(resp, st, "%s", why);
    es_rtc_result_t r;
    es_rtc_offer(srv->rtc, role, app, stream, (const char *)req->body, req->body_len,
                 es_http_arg(req, "eip"), req->remote, &r);
    char base[400];
    snprintf(base, sizeof base, "/%s/%s/%s", role == ES_RTC_PUBLISH ? "whip" : "whep", app, stream);
    return respond_result(resp, &r, base);
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

/* PATCH and DELETE on /whip|whep/{app}/{stream}/{id} need the app's token too. Returns 0 when
 * allowed, else the HTTP status with the reason in why. */
static int resource_auth(es_server_t *srv, const es_http_request_t *req, bool publish, char *why,
                         size_t len)
{
    const es_app_config_t *ac = es_config_find_app(srv->cfg, req->params[0]);
    if (!ac) {
        snprintf(why, len, "app '%s' is not configured", req->params[0]);
        return 403;
    }
    return check_token(req, publish ? ac->publish_token : ac->play_token, why, len);
}

static int resource(void *user, const es_http_request_t *req, es_http_response_t *resp,
                    bool publish)
{
    es_server_t *srv = user;
    if (!srv->rtc) return es_http_respond_error(resp, 503, "WebRTC is not running");
    char why[160];
    int st = resource_auth(srv, req, publish, why, sizeof why);
    if (st) return es_http_respond_error(resp, st, "%s", why);
    const char *id = req->params[2];
    if (req->method == ES_HTTP_DELETE) {
        if (es_rtc_delete(srv->rtc, id, "DELETE from the client") != 0)
            return es_http_respond_error(resp, 404, "no session %s", id);
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
