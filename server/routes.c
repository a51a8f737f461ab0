/*
 * The plain HTTP endpoints of the APIs: exact paths, handled by http.c before the
 * WebSocket endpoints and the 404 (see include/wshub/http.h).
 */
#include "wshub/api.h"
#include "wshub/flow.h"
#include "wshub/http.h"

const http_route_t http_routes[] = {
    {"/api/publish", api_publish},
    {"/text/moderation", moderation_http},
    {"/socket.info", flow_socket_info},
    {"/thread.history", flow_thread_history},
    {"/thread.unnoticed", flow_thread_unnoticed},
    {"/examples/flow.html", static_page},
    {NULL, NULL},
};
