/*
 * mock — the mock backend's control plane (issue 15): what a client developer uses to see,
 * steer and script wshub when it stands in for Chatsight, the service API, Circle and Flow.
 * Off unless mock.enabled (on by itself on the embedded default); every control endpoint
 * needs the API key (Authorization: Bearer, as POST /api/publish).
 *
 * One file per capability under server/mock/ (mock.c: what they share; introspection and
 * targeting, the traffic tap, faults, Circle's domain, scenarios, tokens), each exporting the
 * route handlers server/routes.c names. Malformed input is answered with mock_error: a JSON
 * error naming the field.
 */
#ifndef WSHUB_MOCK_H
#define WSHUB_MOCK_H

#include <stdbool.h>

#include <jansson.h>

#include "wshub/dialect.h"
#include "wshub/http.h"

/* http_route_t.authorized of every control endpoint: mock.enabled and the API key. A refused
 * request is answered by the handler's first line, mock_refused. */
bool mock_authorized(const http_request_t *req, dialect_ctx_t *x);
/* true when the request was refused (mock.enabled false: 404; a wrong key: 401) and *out says
 * why; a handler starts with `if (mock_refused(req, x, out)) return;`. */
bool mock_refused(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);

/* Does req use method ("GET" or "POST")? Else *out is the 405 (with Allow) and false. */
bool mock_method(const http_request_t *req, const char *method, http_reply_t *out);

/* {"ok":false,"error":code,"field":field,"message":message} (field omitted when NULL). */
void mock_error(http_reply_t *out, int status, const char *code, const char *field, const char *message);
/* 400 invalid_request naming the field. */
static inline void mock_bad_field(http_reply_t *out, const char *field, const char *message)
{
    mock_error(out, 400, "invalid_request", field, message);
}
/* 200 with body (a new reference is taken over; NULL: 500). */
void mock_reply_json(http_reply_t *out, int status, json_t *body);
/* The request body as a JSON object, or NULL with *out set to the 400 (invalid JSON, not an
 * object). An empty body is {} when empty_ok. */
json_t *mock_body_object(const http_request_t *req, http_reply_t *out, bool empty_ok);

/* ------------------------------------------------------------ the endpoints (routes.c) */

/* Introspection (mock/conns.c): GET /api/connections, GET /api/connections/{id} (and, on the
 * same prefix route, POST /api/connections/{id}/send and /close), GET /api/channels. */
void mock_connections(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
void mock_connection(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
void mock_channels(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
/* Targeting (mock/target.c): POST /api/send, POST /api/close. */
void mock_send(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
void mock_close(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
/* Tokens over HTTP (mock/tokens.c): POST /api/tokens. */
void mock_tokens(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);

/* GET /api/info (mock/info.c): version, uptime, workers, broker, the configuration with its
 * secrets masked. Needs the API key, not mock.enabled. */
void mock_info(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);

/* POST /api/reset (mock/mock.c): runs every function of mock_reset_fns, in order, on the
 * worker that took the request. Each capability that keeps mock state (faults, the tap's
 * buffers, Circle's domain, scenarios) adds one line to that NULL-terminated table in
 * mock/mock.c: a function that clears its state (on every worker it lives on: dialect_call
 * or its own lock), never blocking the loop. */
typedef void (*mock_reset_fn)(dialect_ctx_t *x);
extern const mock_reset_fn mock_reset_fns[];
void mock_reset(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
/* Faults (mock/faults_http.c; README: Mock backend, Faults): GET/DELETE /api/faults,
 * POST /api/faults/<kind> and DELETE /api/faults/<id>, POST /api/flow/threads/<id>/events. */
void mock_faults(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
void mock_faults_add(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
void mock_flow_event(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
/* mock/tap_client.c: GET /api/tap without an upgrade, the traffic tap as Server-Sent Events
 * (with an upgrade it is the tap dialect, dialect_tap); the API key may be ?key= too. */
void mock_tap_events(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
bool mock_tap_authorized(const http_request_t *req, dialect_ctx_t *x);

#endif
