/*
 * api — the server API (PROTOCOLS.md "The server API"): POST /api/publish with the API key,
 * for mock-backend control, scripts and other services. Dialect-agnostic: it hands the
 * event to every dialect's on_publish and to the hub (dialect_publish_api), and each
 * subscriber gets it in its own API's envelope.
 */
#ifndef WSHUB_API_H
#define WSHUB_API_H

#include "wshub/http.h"

/* Accepted when api.key is not configured; announced at startup: it is public. */
#define API_DEV_KEY "wshub-development-api-key"

/* Longest channel name accepted anywhere (PROTOCOLS.md §B: <= 256 bytes). */
#define API_MAX_CHANNEL 256

void api_publish(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
/* The request's bearer key is api.key: checked before its body is read (http_route_t). */
bool api_authorized(const http_request_t *req, dialect_ctx_t *x);

/* Sets out to a JSON error {"ok":false,"error":code,"message":message}. */
void api_error(http_reply_t *out, int status, const char *code, const char *message);

#endif
