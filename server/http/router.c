/*
 * http/router.c — which answer a complete request gets: the route table (routes.c: the
 * built-in endpoints and the APIs' plain HTTP endpoints), a WebSocket endpoint asked
 * without an upgrade (426), or 404.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wshub/log.h"
#include "wshub/metrics.h"

const http_route_t *http_find_route(const http_request_t *r)
{
    for (const http_route_t *rt = http_routes; rt->path; rt++)
        if (rt->prefix ? http_path_starts(r, rt->path) : http_path_is(r, rt->path))
            return rt;
    return NULL;
}

dialect_ctx_t *http_ctx(http_conn_t *h, const dialect_t *d)
{
    return dialect_ctx_pick((dialect_ctx_t *)h->c->env->data, d);
}

void http_send_reply(http_conn_t *h, http_reply_t *rep)
{
    if (rep->hs_reason > 0)
        metrics_add(&h->c->env->metrics.handshake_failures[rep->hs_reason - 1], 1);
    char *extra = NULL;
    if (rep->extra_alloc && asprintf(&extra, "%s%s", rep->extra ? rep->extra : "", rep->extra_alloc) < 0)
        extra = NULL;
    http_respond(h, rep->status, rep->ctype ? rep->ctype : "application/json", rep->body, rep->len,
                 extra ? extra : rep->extra);
    free(extra);
    free(rep->extra_alloc);
    free(rep->body);
    rep->extra_alloc = rep->body = NULL;
}

/* Calls the route's handler and sends its answer (unless it deferred it). */
static void run_route(http_conn_t *h, const http_route_t *rt)
{
    http_reply_t rep = {0};
    rt->fn(&h->req, http_ctx(h, rt->dialect), &rep);
    if (h->pending || h->stream) {
        free(rep.body);
        free(rep.extra_alloc);
        return;
    }
    http_send_reply(h, &rep);
}

/* No route: a WebSocket endpoint asked without an upgrade (426), or nothing there (404). */
static void no_route(http_conn_t *h)
{
    http_request_t *r = &h->req;
    if (http_find_dialect(r, h->c->env->cfg)) {
        /* Not an upgrade request: llhttp saw no Upgrade + Connection: upgrade pair. The
         * handshake itself only ever runs after llhttp_execute returned (http_on_data). */
        http_refuse(h, 426, HS_NOT_UPGRADE, "upgrade_required",
                    "this endpoint speaks WebSocket: send Upgrade: websocket and Connection: Upgrade",
                    "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
        return;
    }
    size_t plen;
    const char *path = http_request_path(r, &plen);
    char msg[160];
    snprintf(msg, sizeof msg, "no endpoint at %.*s", (int)(plen > 100 ? 100 : plen), path);
    /* The path is client text: keep only characters safe inside a JSON string. */
    for (char *m = msg; *m; m++)
        if (*m == '"' || *m == '\\' || (unsigned char)*m < 0x20 || (unsigned char)*m >= 0x7f)
            *m = '?';
    http_refuse(h, 404, HS_NOT_FOUND, "not_found", msg, NULL);
}

void http_handle_request(http_conn_t *h)
{
    http_request_t *r = &h->req;
    if (!http_host_ok(h)) {
        h->close_after = true;
        http_refuse(h, 400, HS_BAD_REQUEST, "bad_request", "an HTTP/1.1 request needs exactly one Host header", NULL);
        return;
    }
    const http_route_t *rt = http_find_route(r);
    if (h->over_capacity && !(rt && rt->at_capacity)) {
        h->close_after = true;
        http_refuse(h, 503, HS_OVER_CAPACITY, "over_capacity", "the server is at limits.max_connections: retry later",
                    "Retry-After: 1\r\n");
        return;
    }
    if (!rt) {
        no_route(h);
        return;
    }
    if (rt->get_only && strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        http_refuse(h, 405, HS_METHOD, "method_not_allowed", "use GET", "Allow: GET, HEAD\r\n");
        return;
    }
    run_route(h, rt);
}
