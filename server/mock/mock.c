/*
 * mock/mock.c — what the mock backend's control endpoints share (include/wshub/mock.h): the
 * gate (mock.enabled and the API key) and the JSON answers.
 */
#include "wshub/mock.h"

#include <stdlib.h>
#include <string.h>

#include "wshub/api.h"
#include "faults_internal.h"
#include "wshub/mock_circle.h"
#include "wshub/scenario.h"

bool mock_authorized(const http_request_t *req, dialect_ctx_t *x)
{
    return dialect_live(x)->cfg.mock_enabled && api_authorized(req, x);
}

bool mock_refused(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (!dialect_live(x)->cfg.mock_enabled) {
        mock_error(out, 404, "not_found", NULL,
                   "the mock backend is off: set mock.enabled (WSHUB_MOCK_ENABLED=true) to use its endpoints");
        return true;
    }
    if (!api_authorized(req, x)) {
        mock_error(out, 401, "unauthorized", NULL, "Authorization: Bearer <api.key> is required");
        out->extra = "WWW-Authenticate: Bearer\r\n";
        return true;
    }
    return false;
}

bool mock_method(const http_request_t *req, const char *method, http_reply_t *out)
{
    if (strcmp(http_request_method(req), method) == 0)
        return true;
    bool get = strcmp(method, "GET") == 0;
    mock_error(out, 405, "method_not_allowed", NULL, get ? "use GET" : "use POST");
    out->extra = get ? "Allow: GET\r\n" : "Allow: POST\r\n";
    return false;
}

void mock_reply_json(http_reply_t *out, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        api_error(out, 500, "internal_error", "out of memory");
        return;
    }
    out->status = status;
    out->body = text;
    out->len = strlen(text);
}

void mock_error(http_reply_t *out, int status, const char *code, const char *field, const char *message)
{
    json_t *e = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", code, "message", message);
    if (e && field)
        json_object_set_new(e, "field", json_string(field));
    mock_reply_json(out, status, e);
}

json_t *mock_body_object(const http_request_t *req, http_reply_t *out, bool empty_ok)
{
    size_t len;
    const char *body = (const char *)http_request_body(req, &len);
    if (len == 0 && empty_ok)
        return json_object();
    json_error_t je;
    json_t *v = json_loadb(body ? body : "", len, DIALECT_JSON_FLAGS, &je);
    if (!json_is_object(v)) {
        json_decref(v);
        mock_bad_field(out, "(body)", v ? "expected a JSON object" : je.text);
        return NULL;
    }
    return v;
}

/* ------------------------------------------------------------------ POST /api/reset */

/* Every capability's reset (mock.h): one line each, NULL last. Introspection, targeting and
 * tokens keep no state of their own (what they show is the connections'). */
static void reset_scenarios(dialect_ctx_t *x)
{
    (void)x;
    scenario_stop_all();
}

static void reset_circle(dialect_ctx_t *x)
{
    (void)x;
    mock_circle_reset();
}

static void reset_faults(dialect_ctx_t *x)
{
    (void)x;
    faults__clear();
}

const mock_reset_fn mock_reset_fns[] = {
    reset_scenarios,
    reset_circle,
    reset_faults,
    NULL,
};

void mock_reset(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out))
        return;
    if (!mock_method(req, "POST", out))
        return;
    size_t n = 0;
    while (mock_reset_fns[n])
        mock_reset_fns[n++](x);
    mock_reply_json(out, 200, json_pack("{s:b, s:I}", "ok", 1, "reset", (json_int_t)n));
}
