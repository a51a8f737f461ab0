/*
 * http — HTTP/1.1 on a connection until it upgrades: it owns the connection's bytes as its
 * protocol (conn_proto_t, conn.h), parses with llhttp, enforces the limits (header bytes,
 * header count, body bytes, time to complete a request), answers the plain endpoints of the
 * route table (routes.c: /healthz, /metrics and the APIs'; JSON 404/405/400/426 for the
 * rest), and hands an Upgrade request to the WebSocket handshake. Keep-alive and pipelining
 * follow HTTP/1.1. Its state is freed when the connection upgrades (the ownership handover
 * of STYLE.md §1). Server-side files: server/http/ (their roles in http/internal.h).
 */
#ifndef WSHUB_HTTP_H
#define WSHUB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct conn conn_t;
typedef struct http_conn http_conn_t;

/* A parsed request, valid during the handler or the dialect's accept callback. */
typedef struct http_request http_request_t;

const char *http_request_method(const http_request_t *r);
/* The path without the query; the query (after '?', without it) or "" (not NUL-terminated: use the lengths). */
const char *http_request_path(const http_request_t *r, size_t *len);
const char *http_request_query(const http_request_t *r, size_t *len);
/* The value of the first header with that name (case-insensitive), or NULL. */
const char *http_request_header(const http_request_t *r, const char *name, size_t *len);
/* Is `token` one of the comma-separated tokens of any header `name` (case-insensitive)? */
int http_request_header_has_token(const http_request_t *r, const char *name, const char *token);
/* The value of a query parameter, percent-decoded into buf (NUL-terminated); NULL if absent,
 * longer than buflen, or holding "%00" (a C string cannot carry it). */
const char *http_request_query_param(const http_request_t *r, const char *name, char *buf, size_t buflen);
/* Is there a `name` query parameter, whatever its value (tells "absent" from "too long")? */
int http_request_has_query_param(const http_request_t *r, const char *name);
const uint8_t *http_request_body(const http_request_t *r, size_t *len);

typedef struct dialect dialect_t;
typedef struct dialect_ctx dialect_ctx_t;

/* A plain HTTP endpoint's answer. */
typedef struct http_reply {
    int status;
    const char *ctype;  /* NULL = application/json */
    char *body;         /* malloc'd, freed by http.c */
    size_t len;
    const char *extra;  /* extra header lines ("Name: value\r\n"), static */
    char *extra_alloc;  /* more header lines, malloc'd (freed by http.c), e.g. CORS echoes */
    int hs_reason;      /* 1 + hs_reason_t to count in the refusal metrics, or 0 */
} http_reply_t;

/* x: the context of the route's dialect on this worker (dialect.h). */
typedef void (*http_handler_fn)(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);

/*
 * A reply that comes later (the work runs elsewhere, e.g. on the thread pool). A handler
 * calls http_defer() and leaves *out empty; the connection stops reading (later pipelined
 * requests wait, in order) until http_complete() is called, on the same worker. If the
 * connection closes first, http_complete() just frees the handle. Exactly one
 * http_complete() per http_defer().
 */
typedef struct http_pending http_pending_t;
http_pending_t *http_defer(const http_request_t *req);
/* Sends the reply (body is taken over: malloc'd or NULL) and resumes the connection. */
void http_complete(http_pending_t *p, int status, const char *ctype, char *body, size_t len);
/* The same with a whole http_reply_t, as a handler fills *out (extra header lines such as
 * CORS echoes, hs_reason counted): its allocations are taken over. */
void http_complete_reply(http_pending_t *p, http_reply_t *rep);

/*
 * A WebSocket upgrade decided later (dialect.h, dialect_t.accept): the dialect's accept
 * calls http_defer(req) and leaves *out empty; the connection is not read meanwhile and
 * keeps its handshake deadline (limits: a decision that never comes ends in a close). Then,
 * exactly once and on the same worker, http_accept_complete() with the decision, filled as
 * accept would have filled it: the refusal is answered, or the 101 sent and the session
 * started with acc->data (on_open follows). acc->body is always taken. Returns true when
 * acc->data was taken (handed to the session, which releases it through on_close even if it
 * cannot start, or released so when the 101 could not be sent); false when the connection
 * closed meanwhile or the upgrade was refused: acc->data is still the dialect's to free.
 */
/*
 * A response that stays open (Server-Sent Events: the traffic tap's GET /api/tap). The
 * handler calls http_stream_open() and leaves *out empty: the status line and headers (200,
 * ctype, no Content-Length, Connection: close) are queued at once, and the body is whatever
 * http_stream_write() appends, until http_stream_end() or until the client goes away:
 * closed(arg) is then called once, on this worker, and the handle stays the caller's until
 * it calls http_stream_end(). What the client sends after the request is ignored; its EOF
 * closes the connection. Bounded as any output: past limits.max_queued_bytes the connection
 * is closed (http_stream_queued tells how much waits, to slow down or drop before that).
 * NULL when out of memory (nothing was sent: answer *out as usual).
 */
typedef struct http_stream http_stream_t;
http_stream_t *http_stream_open(const http_request_t *req, const char *ctype, void (*closed)(void *arg), void *arg);
/* Appends to the body: 0, or negative when the client is gone or going. */
int http_stream_write(http_stream_t *st, const void *data, size_t len);
/* Bytes queued for the client and not written yet (0 once it is gone). */
size_t http_stream_queued(const http_stream_t *st);
/* Ends the response (the connection closes once what is queued is written) and frees st;
 * closed is not called after it. */
void http_stream_end(http_stream_t *st);

typedef struct dialect_accept dialect_accept_t;
bool http_accept_complete(http_pending_t *p, dialect_accept_t *acc);
typedef struct http_route {
    const char *path;
    http_handler_fn fn;
    /* Are the request's credentials good? Asked when the headers are complete, before any
     * body byte is read; false = fn is called at once (it gives the API's refusal) and the
     * connection closes. NULL = no credentials, or fn checks them. */
    bool (*authorized)(const http_request_t *req, dialect_ctx_t *x);
    /* The API the route belongs to: its handlers get that dialect's context. NULL = the
     * server's own (the context's state is unused). */
    const dialect_t *dialect;
    bool get_only;    /* other methods get the router's 405 (Allow: GET, HEAD) */
    bool prefix;      /* path is a prefix ending in '/' (e.g. "/api/connections/" + an id) */
    bool at_capacity; /* answered past limits.max_connections too (/healthz, /metrics) */
} http_route_t;
/* Every plain HTTP endpoint (exact paths, or prefixes), the server's own and the APIs', NULL-terminated;
 * see server/routes.c. */
extern const http_route_t http_routes[];

/* Route handlers defined with their API's module (api_publish: api.h; flow_*: flow.h). */
void moderation_http(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out); /* dialects/moderation.c */
bool moderation_http_authorized(const http_request_t *req, dialect_ctx_t *x);         /* dialects/moderation.c */
void static_page(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);     /* static.c */
void builtin_healthz(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);  /* routes.c */
void builtin_metrics(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);  /* routes.c */
void builtin_readyz(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);   /* routes.c */

/* Starts HTTP on a new connection (it owns the connection's bytes until an upgrade hands
 * them to a WebSocket session); over_capacity: past limits.max_connections (503 to all but
 * /healthz and /metrics, then close). The caller then starts reading (conn_start). */
int http_conn_start(conn_t *c, bool over_capacity);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key of len (<= 24) bytes: 28 characters and a NUL. */
void http_ws_accept_value(const char *key, size_t len, char out[29]);

#endif
