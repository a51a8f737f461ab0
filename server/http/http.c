/*
 * http — see include/wshub/http.h and http/internal.h. The HTTP layer as the protocol of a
 * connection (conn_proto_t): bytes to llhttp, pipelined requests in order, deferred replies
 * (reading pauses), large answers in pieces, keep-alive and the request/handshake
 * timeouts; an upgrade hands the connection to the WebSocket session.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include "wshub/log.h"
#include "wshub/metrics.h"

static const conn_proto_t http_proto;
static void http_on_data(conn_t *c, const uint8_t *data, size_t len);

/* ------------------------------------------------------------------ connection glue */

int http_conn_start(conn_t *c, bool over_capacity)
{
    http_conn_t *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->c = c;
    h->over_capacity = over_capacity;
    http_parser_init(h);
    conn_set_proto(c, &http_proto, h, EP_HTTP);
    /* A new connection must send a complete request within the handshake timeout. */
    conn_set_deadline(c, DL_HANDSHAKE);
    return 0;
}

static void resume_after_reply(http_conn_t *h);

http_pending_t *http_defer(const http_request_t *req)
{
    http_conn_t *h = container_of(req, http_conn_t, req);
    http_pending_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->h = h;
    h->pending = p;
    conn_clear_deadline(h->c);
    return p;
}

void http_complete_reply(http_pending_t *p, http_reply_t *rep)
{
    http_conn_t *h = p->h;
    free(p);
    if (h)
        h->pending = NULL;
    if (!h || (h->c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))) {
        /* the client is gone or going: nothing to answer, no deadline to set */
        free(rep->body);
        free(rep->extra_alloc);
        rep->body = rep->extra_alloc = NULL;
        return;
    }
    http_send_reply(h, rep);
    if (!h->out)
        resume_after_reply(h);
}

void http_complete(http_pending_t *p, int status, const char *ctype, char *body, size_t len)
{
    http_reply_t rep = {.status = status, .ctype = ctype, .body = body, .len = len};
    http_complete_reply(p, &rep);
}

/* A reply is complete (deferred, or its last piece queued): the next request may be read. */
static void resume_after_reply(http_conn_t *h)
{
    conn_t *c = h->c;
    if (c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))
        return;
    if (h->close_after) {
        conn_close_after_write(c);
        return;
    }
    conn_set_deadline(c, DL_KEEPALIVE);
    llhttp_resume(&h->parser);
    conn_resume_reading(c);
    uint8_t *rest = h->backlog;
    size_t rest_len = h->backlog_len;
    h->backlog = NULL;
    h->backlog_len = 0;
    if (rest_len)
        http_on_data(c, rest, rest_len); /* may defer again, keeping a new backlog */
    free(rest);
}

static void http_closed(conn_t *c)
{
    http_conn_t *h = c->pdata;
    if (!h)
        return;
    if (h->pending)
        h->pending->h = NULL; /* the deferred work completes into nothing */
    if (h->stream)
        http_stream_gone(h);
    free(h->backlog);
    free(h->req.buf);
    free(h->req.hdrs);
    http_body_free(&h->req);
    if (h->out)
        conn_hold(c, -(long)(h->out_len - h->out_off));
    free(h->out);
    free(h);
    c->pdata = NULL;
}

/* Keeps bytes to parse once the awaited reply is sent. false: out of memory (closed). */
static bool keep_backlog(http_conn_t *h, const uint8_t *data, size_t len)
{
    uint8_t *nb = realloc(h->backlog, h->backlog_len + len);
    if (!nb) {
        conn_close(h->c, "out of memory (http)");
        return false;
    }
    memcpy(nb + h->backlog_len, data, len);
    h->backlog = nb;
    h->backlog_len += len;
    return true;
}

/* llhttp stopped after a complete upgrade request; data[used..len) follows it. */
static void on_upgrade_request(http_conn_t *h, const uint8_t *data, size_t used, size_t len)
{
    conn_t *c = h->c;
    h->close_after = false;
    const dialect_t *d = http_find_dialect(&h->req, c->env->cfg);
    int r = d && !h->over_capacity ? http_upgrade(h, d) : HTTP_UPGRADE_REFUSED;
    if (r == HTTP_UPGRADE_DONE) {
        /* h is freed now; bytes after the request belong to the WebSocket. */
        if (used < len)
            conn_feed(c, data + used, len - used);
        return;
    }
    if (r == HTTP_UPGRADE_LATER) {
        /* Nothing is read until the decision (http_accept_complete feeds what came). */
        if (used >= len || keep_backlog(h, data + used, len - used))
            conn_pause_reading(c);
        return;
    }
    if (!d || h->over_capacity) {
        /* An upgrade to something we do not speak, or past limits.max_connections:
         * answer the request as plain HTTP. */
        h->close_after = true;
        http_handle_request(h);
    }
    conn_close_after_write(c);
}

/* The request is malformed or over a limit: the answer, then close. */
static void on_parse_error(http_conn_t *h, llhttp_errno_t err)
{
    h->close_after = true;
    if (h->error_status) {
        int st = h->error_status;
        const char *msg = st == 431 ? "request header fields too large"
                          : st == 413 ? "request body too large"
                          : h->error_reason == HS_BODY_MEMORY ? "too many request bodies held: retry later"
                                                              : "server error";
        const char *code = st == 413 ? "payload_too_large" : st == 431 ? "header_too_large"
                           : st == 503 ? "busy" : "internal_error";
        http_refuse(h, st, h->error_reason, code, msg, st == 503 ? "Retry-After: 1\r\n" : NULL);
    } else {
        http_refuse(h, 400, HS_BAD_REQUEST, "bad_request", llhttp_errno_name(err), NULL);
    }
    conn_close_after_write(h->c);
}

static size_t parsed_bytes(http_conn_t *h, const uint8_t *data, size_t len)
{
    const char *rest = llhttp_get_error_pos(&h->parser);
    return rest ? (size_t)(rest - (const char *)data) : len;
}

static void http_on_data(conn_t *c, const uint8_t *data, size_t len)
{
    http_conn_t *h = c->pdata;
    if (!h || h->stream || (c->flags & CONN_F_DRAIN))
        return; /* a response that ends the connection is on its way (or never ends): ignore the rest */
    if (h->pending || h->out) {
        /* More bytes of one read (TLS records) while a reply is awaited or still being sent
         * in pieces: keep them. The parser is paused; executing it again would return at
         * once with a stale error position into an earlier read's buffer. */
        keep_backlog(h, data, len);
        return;
    }
    llhttp_errno_t err = llhttp_execute(&h->parser, (const char *)data, len);
    if (err == HPE_OK)
        return;
    if (err == HPE_PAUSED_UPGRADE && h->upgrade) {
        on_upgrade_request(h, data, parsed_bytes(h, data, len), len);
        return;
    }
    if (err == HPE_PAUSED) {
        /* Paused by on_message_complete: a reply is awaited or sent in pieces (keep what
         * follows the request until it is sent), or the connection is closing. */
        size_t used = parsed_bytes(h, data, len);
        if ((h->pending || h->out) && (used >= len || keep_backlog(h, data + used, len - used)))
            conn_pause_reading(c);
        return;
    }
    on_parse_error(h, err);
}

static void http_on_eof(conn_t *c)
{
    http_conn_t *h = c->pdata;
    if (h && h->stream) {
        conn_close(c, NULL); /* the reader of an open-ended response is gone */
        return;
    }
    if (h && h->upgrading) {
        conn_close(c, "eof before the upgrade was decided"); /* http_accept_complete finds no h */
        return;
    }
    if (h && h->pending) {
        h->close_after = true; /* a half-closed client still gets its deferred reply */
        return;
    }
    if (h && h->in_request && !(c->flags & CONN_F_DRAIN)) {
        /* A request cut short: nothing can be answered to a peer that is gone. */
        conn_close(c, "eof inside a request");
        return;
    }
    if (c->qcount || (c->flags & CONN_F_WRITING))
        conn_close_after_write(c); /* deliver what is queued, then close */
    else
        conn_close(c, NULL);
}

static void http_on_timeout(conn_t *c, deadline_kind_t kind)
{
    http_conn_t *h = c->pdata;
    if (!h) {
        conn_close(c, "timeout");
        return;
    }
    if (kind == DL_KEEPALIVE) {
        conn_close(c, "keep-alive timeout");
        return;
    }
    if (h->out) {
        conn_close(c, "timeout"); /* cannot happen: no request deadline while sending */
        return;
    }
    h->close_after = true;
    if (h->in_request) {
        http_refuse(h, 408, HS_TIMEOUT, "request_timeout", "the request did not complete in time", NULL);
        conn_close_after_write(c);
    } else {
        metrics_add(&c->env->metrics.handshake_failures[HS_TIMEOUT], 1);
        conn_close(c, "no request in time");
    }
}

static void http_on_drained(conn_t *c)
{
    http_conn_t *h = c->pdata;
    if (!h || !h->out || (c->flags & (CONN_F_CLOSING | CONN_F_DRAIN)))
        return;
    size_t n = h->out_len - h->out_off;
    if (n > HTTP_PIECE)
        n = HTTP_PIECE;
    if (conn_send_copy(c, h->out + h->out_off, n) != 0)
        return;
    conn_hold(c, -(long)n);
    h->out_off += n;
    if (h->out_off < h->out_len)
        return;
    free(h->out);
    h->out = NULL;
    resume_after_reply(h);
}

static size_t http_held(const conn_t *c)
{
    const http_conn_t *h = c->pdata;
    return h && h->out ? h->out_len - h->out_off : 0;
}

static const conn_proto_t http_proto = {
    .on_data = http_on_data,
    .on_eof = http_on_eof,
    .on_timeout = http_on_timeout,
    .on_drained = http_on_drained,
    .held = http_held,
    .on_closed = http_closed,
    .flush_first = true,
};

