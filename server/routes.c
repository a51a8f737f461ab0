/*
 * The plain HTTP endpoints of the APIs: exact paths, handled by http.c before the
 * WebSocket endpoints and the 404 (see include/wshub/http.h).
 */
#include "wshub/api.h"
#include "wshub/http.h"

const http_route_t http_routes[] = {
    {"/api/publish", api_publish},
    {NULL, NULL},
};
