/*
 * The plain HTTP endpoints of the APIs: exact paths, handled by http.c before the
 * WebSocket endpoints and the 404 (see include/wshub/http.h).
 */
#include "wshub/api.h"
#include "wshub/dialect.h"
#include "wshub/flow.h"
#include "wshub/http.h"

const http_route_t http_routes[] = {
    {"/api/publish", api_publish, api_authorized, NULL},
    {"/text/moderation", moderation_http, moderation_http_authorized, &dialect_moderation},
    {"/socket.info", flow_socket_info, NULL, &dialect_flow},
    {"/thread.history", flow_thread_history, NULL, &dialect_flow},
    {"/thread.unnoticed", flow_thread_unnoticed, NULL, &dialect_flow},
    {"/examples/flow.html", static_page, NULL, NULL},
    {NULL, NULL, NULL, NULL},
};
