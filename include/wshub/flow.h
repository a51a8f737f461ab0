/*
 * flow — the part of API D (server/dialects/flow/) that lives outside its WebSocket
 * dialect: its REST endpoints, named by routes.c (implemented in flow/rest.c). Everything
 * else of Flow is private to that folder (flow/internal.h, flow/store.h).
 */
#ifndef WSHUB_FLOW_H
#define WSHUB_FLOW_H

#include <stddef.h>

#include "wshub/http.h"


void flow_socket_info(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
void flow_thread_history(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
void flow_thread_unnoticed(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);

#endif
