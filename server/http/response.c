/*
 * http/response.c — the answers: status line and headers (keep-alive or close), JSON error
 * bodies, refusals counted and logged, and bodies over HTTP_PIECE sent in pieces as the
 * connection drains. Never: decides which answer a request gets.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wshub/log.h"
#include "wshub/metrics.h"

/* ------------------------------------------------------------------ responses */

static const char *status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* Queues a complete response. `extra` is zero or more "Name: value\r\n" lines. */
void http_respond(http_conn_t *h, int status, const char *ctype, const char *body, size_t blen,
                    const char *extra)
{
    conn_t *c = h->c;
    char head[1024];
    bool head_only = h->req.method && strcmp(h->req.method, "HEAD") == 0;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%sConnection: %s\r\n\r\n",
                     status, status_text(status), ctype, blen, extra ? extra : "",
                     h->close_after ? "close" : "keep-alive");
    if (n < 0 || (size_t)n >= sizeof head) { /* an oversized extra header: drop it, keep the reply */
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n",
                     status, status_text(status), ctype, blen, h->close_after ? "close" : "keep-alive");
    }
    metrics_add(&c->env->metrics.http_responses[status / 100], 1);
    /* A failed send has closed the connection (conn.h): nothing more to do. */
    if (conn_send_copy(c, head, (size_t)n) != 0 || !blen || head_only)
        return;
    if (blen > HTTP_PIECE && !h->out && (h->out = malloc(blen - HTTP_PIECE))) {
        memcpy(h->out, body + HTTP_PIECE, blen - HTTP_PIECE);
        h->out_len = blen - HTTP_PIECE;
        h->out_off = 0;
        conn_hold(c, (long)h->out_len);
        blen = HTTP_PIECE;
    }
    conn_send_copy(c, body, blen);
}

/* A JSON error answer: {"error":"<code>","message":"<message>"}. */
void http_respond_error(http_conn_t *h, int status, const char *code, const char *message,
                          const char *extra)
{
    char body[512];
    /* message is ours, never client text with quotes: no escaping needed. */
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"%s\"}", code, message);
    http_respond(h, status, "application/json", body, (size_t)n, extra);
}

void http_refuse(http_conn_t *h, int status, int reason, const char *code, const char *message,
                   const char *extra)
{
    metrics_add(&h->c->env->metrics.handshake_failures[reason], 1);
    char peer[64];
    log_event(LOG_INFO, "http_refused", h->c->id, conn_peer(h->c, peer, sizeof peer), NULL,
              "status=%d reason=%s %s", status, hs_reason_names[reason], message);
    http_respond_error(h, status, code, message, extra);
}

