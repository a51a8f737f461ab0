/*
 * http/internal.h — what the files of the HTTP layer share (include/wshub/http.h is what
 * the rest of the server sees). One job per file:
 *   request.c   llhttp's callbacks: the parts of a request kept (URL, headers, body) in one
 *               buffer bounded by the configured limits; the request accessors;
 *   response.c  answers: status line, headers, JSON errors, large bodies in pieces;
 *   router.c    which answer a complete request gets: the route table, a WebSocket
 *               endpoint asked without an upgrade, 404;
 *   upgrade.c   the RFC 6455 opening handshake (§4.2, PROTOCOLS.md §0.1-0.3) and the
 *               handover of the connection to a WebSocket session;
 *   http.c      the connection's protocol (conn_proto_t): reading, pipelining, deferred
 *               replies, keep-alive, timeouts;
 *   stream.c    responses that stay open (Server-Sent Events): headers, then appended body.
 */
#ifndef WSHUB_HTTP_INTERNAL_H
#define WSHUB_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include <llhttp.h>

#include "wshub/conn.h"
#include "wshub/dialect.h"
#include "wshub/http.h"

typedef struct hdr {
    uint32_t name, name_len;   /* offsets into the request buffer */
    uint32_t value, value_len;
} hdr_t;

struct http_request {
    const char *method;
    char *buf;           /* URL, header names and values, each NUL-terminated */
    uint32_t len, cap;
    uint32_t url, url_len;
    uint32_t cur;        /* start of the field or value being appended */
    hdr_t *hdrs;
    int nhdrs, hcap;
    uint8_t *body;
    size_t body_len, body_cap;
};

/* Is hd's name `name` (nlen bytes, compared without case)? The lengths first: a handshake
 * looks up some fifteen names among its headers, and most differ in length. */
static inline bool http_hdr_is(const struct http_request *r, const hdr_t *hd, const char *name, size_t nlen)
{
    return hd->name_len == nlen && strncasecmp(r->buf + hd->name, name, nlen) == 0;
}

struct http_pending {
    http_conn_t *h; /* NULL once the connection is gone */
};

struct http_conn {
    llhttp_t parser;
    conn_t *c;
    http_pending_t *pending; /* a deferred reply is awaited: parsing and reading are paused */
    http_stream_t *stream;   /* a response that stays open: input is ignored from then on */
    const dialect_t *upgrading; /* with pending: the deferred decision of this dialect's accept */
    uint8_t *backlog;        /* bytes received after the deferred request, parsed on resume */
    size_t backlog_len;
    struct http_request req;
    int error_status;    /* a limit was hit: answer with this status, then close */
    int error_reason;    /* hs_reason_t */
    bool in_request;     /* on_message_begin seen, on_message_complete not yet */
    bool upgrade;        /* a complete request asks for an upgrade: handled after execute */
    bool close_after;    /* the response ends the connection */
    bool over_capacity;  /* accepted past limits.max_connections: 503 but for /healthz, /metrics */
    bool refuse_early;   /* a route refused the request from its headers: answer, skip the body */
    char *out;           /* a large response body still being sent, in pieces as the socket drains */
    size_t out_len, out_off;
};

/* Response bodies larger than this are queued a piece at a time, each when the connection's
 * output has drained, so that a large answer (GET /thread.history) is never cut off by
 * limits.max_queued_bytes and never sits whole in the output queue. */
#define HTTP_PIECE (64 * 1024)

/* request.c */
void http_parser_init(http_conn_t *h);
void http_body_free(struct http_request *r);
bool http_path_is(const http_request_t *r, const char *want);
bool http_path_starts(const http_request_t *r, const char *prefix);

/* response.c: `extra` is zero or more "Name: value\r\n" lines */
void http_respond(http_conn_t *h, int status, const char *ctype, const char *body, size_t blen,
                  const char *extra);
/* A JSON error answer: {"error":"<code>","message":"<message>"}. */
void http_respond_error(http_conn_t *h, int status, const char *code, const char *message,
                        const char *extra);
/* The same, counted under reason (hs_reason_t) and logged. */
void http_refuse(http_conn_t *h, int status, int reason, const char *code, const char *message,
                 const char *extra);

struct http_stream {
    http_conn_t *h; /* NULL once the connection is gone */
    void (*closed)(void *arg);
    void *arg;
};

/* stream.c: the connection is gone (http.c's on_closed), tell the stream's owner */
void http_stream_gone(http_conn_t *h);

/* router.c */
const http_route_t *http_find_route(const http_request_t *r);
/* The context of the route's (or dialect's) API on this connection's worker. */
dialect_ctx_t *http_ctx(http_conn_t *h, const dialect_t *d);
void http_handle_request(http_conn_t *h);
/* Sends a handler's answer (counts hs_reason, joins the extra header lines) and frees its
 * allocations. */
void http_send_reply(http_conn_t *h, http_reply_t *rep);

/* upgrade.c */
const dialect_t *http_find_dialect(const http_request_t *r, const config_t *cfg);
/* RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host header. */
bool http_host_ok(http_conn_t *h);
/* http_upgrade's outcomes. */
enum { HTTP_UPGRADE_REFUSED, HTTP_UPGRADE_DONE, HTTP_UPGRADE_LATER };
/* HTTP_UPGRADE_DONE: the connection was handed to a WebSocket session (h is freed);
 * HTTP_UPGRADE_LATER: the dialect decides later (http_accept_complete; the caller keeps the
 * bytes after the request and pauses reading); HTTP_UPGRADE_REFUSED: answered. */
int http_upgrade(http_conn_t *h, const dialect_t *d);

#endif
