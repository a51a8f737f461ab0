/*
 * flow — the parts of API D (server/dialects/flow.c) that live outside its WebSocket
 * dialect: the bot rules loaded at start, and its REST endpoints (routes.c).
 */
#ifndef WSHUB_FLOW_H
#define WSHUB_FLOW_H

#include <stddef.h>

#include "wshub/http.h"


void flow_socket_info(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
void flow_thread_history(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
void flow_thread_unnoticed(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);

#endif
