/*
 * The plain HTTP endpoints of the APIs: exact paths, handled by http.c before the
 * WebSocket endpoints and the 404 (see include/wshub/http.h).
 */
#include "wshub/api.h"
#include "wshub/flow.h"
#include "wshub/http.h"

const http_route_t http_routes[] = {
    {"/api/publish", api_publish, api_authorized},
    {"/text/moderation", moderation_http, moderation_http_authorized},
    {"/socket.info", flow_socket_info, NULL},
    {"/thread.history", flow_thread_history, NULL},
    {"/thread.unnoticed", flow_thread_unnoticed, NULL},
    {"/examples/flow.html", static_page, NULL},
    {NULL, NULL, NULL},
};
