/*
 * Every plain HTTP endpoint: the server's own (/healthz, /metrics) and the APIs', by exact
 * path; http/router.c answers the rest (WebSocket endpoints asked without an upgrade, 404).
 */
#include "wshub/api.h"
#include "wshub/dialect.h"
#include "wshub/flow.h"
#include "wshub/http.h"
#include "wshub/metrics.h"
#include "wshub/mock.h"
#include "wshub/scenario.h"
#include "wshub/mock_circle.h"

#include <stdlib.h>
#include <string.h>

/* The router's own JSON error shape (http/response.c), for an answer that cannot be made. */
static void oom(http_reply_t *out)
{
    static const char msg[] = "{\"error\":\"internal_error\",\"message\":\"out of memory\"}";
    free(out->body);
    out->status = 500;
    out->ctype = NULL;
    out->body = strdup(msg);
    out->len = out->body ? sizeof msg - 1 : 0;
}

void builtin_healthz(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    (void)req, (void)x;
    static const char ok[] = "{\"status\":\"ok\"}";
    out->status = 200;
    if ((out->body = strdup(ok)))
        out->len = sizeof ok - 1;
    else
        oom(out);
}

/* Ready to serve: 503 while the broker's link or an API's store (Flow's in Redis) is down,
 * with the reason (/healthz stays 200: the process itself is fine, and its clients stay
 * connected). */
void builtin_readyz(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    (void)req;
    const char *why = dialects_unready(x);
    out->status = why ? 503 : 200;
    out->extra = why ? "Retry-After: 1\r\n" : NULL;
    json_t *body = why ? json_pack("{s:s, s:s}", "status", "unavailable", "reason", why)
                       : json_pack("{s:s}", "status", "ready");
    if ((out->body = body ? json_dumps(body, JSON_COMPACT) : NULL))
        out->len = strlen(out->body);
    else
        oom(out);
    json_decref(body);
}

/* GET /api/metrics: /metrics behind the API key (the console's charts). */
static void api_metrics(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (!api_authorized(req, x)) {
        api_error(out, 401, "unauthorized", "Authorization: Bearer <api.key> is required");
        out->extra = "WWW-Authenticate: Bearer\r\n";
        return;
    }
    builtin_metrics(req, x, out);
}

void builtin_metrics(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    (void)req, (void)x;
    out->status = 200;
    out->ctype = "text/plain; version=0.0.4; charset=utf-8";
    if (!(out->body = metrics_render(&out->len)))
        oom(out);
}

const http_route_t http_routes[] = {
    {.path = "/healthz", .fn = builtin_healthz, .get_only = true, .at_capacity = true},
    {.path = "/readyz", .fn = builtin_readyz, .get_only = true, .at_capacity = true},
    {.path = "/metrics", .fn = builtin_metrics, .get_only = true, .at_capacity = true},
    /* The same behind the API key: what the console reads (/metrics stays open to scrapers). */
    {.path = "/api/metrics", .fn = api_metrics, .authorized = api_authorized, .get_only = true},
    {.path = "/api/publish", .fn = api_publish, .authorized = api_authorized},
    {.path = "/api/circle/", .fn = mock_circle_http, .authorized = mock_authorized, .prefix = true},
    {.path = "/text/moderation", .fn = moderation_http, .authorized = moderation_http_authorized,
     .dialect = &dialect_moderation},
    {.path = "/socket.info", .fn = flow_socket_info, .dialect = &dialect_flow},
    {.path = "/thread.history", .fn = flow_thread_history, .dialect = &dialect_flow},
    {.path = "/thread.unnoticed", .fn = flow_thread_unnoticed, .dialect = &dialect_flow},
    {.path = "/examples/flow.html", .fn = static_page},
    /* the web console (issue 16): public pages, every datum behind the API key */
    {.path = "/console", .fn = static_page},
    {.path = "/console/", .fn = static_page},
    {.path = "/console/", .fn = static_page, .prefix = true},
    {.path = "/api/info", .fn = mock_info, .authorized = api_authorized},
    {.path = "/api/scenarios", .fn = mock_scenarios, .authorized = mock_authorized},
    {.path = "/api/scenarios/", .fn = mock_scenario_one, .authorized = mock_authorized, .prefix = true},
    /* the mock backend: introspection, targeting, tokens, reset (include/wshub/mock.h) */
    {.path = "/api/connections", .fn = mock_connections, .authorized = mock_authorized},
    {.path = "/api/connections/", .fn = mock_connection, .authorized = mock_authorized, .prefix = true},
    {.path = "/api/channels", .fn = mock_channels, .authorized = mock_authorized},
    {.path = "/api/send", .fn = mock_send, .authorized = mock_authorized},
    {.path = "/api/close", .fn = mock_close, .authorized = mock_authorized},
    {.path = "/api/tokens", .fn = mock_tokens, .authorized = mock_authorized},
    {.path = "/api/reset", .fn = mock_reset, .authorized = mock_authorized},
    {.path = "/api/faults", .fn = mock_faults, .authorized = mock_authorized},
    {.path = "/api/faults/", .fn = mock_faults_add, .authorized = mock_authorized, .prefix = true},
    {.path = "/api/flow/threads/", .fn = mock_flow_event, .authorized = mock_authorized, .prefix = true,
     .dialect = &dialect_flow},
    {.path = "/api/tap", .fn = mock_tap_events, .authorized = mock_tap_authorized, .dialect = &dialect_tap,
     .get_only = true},
    {.path = NULL},
};
