/*
 * http/stream.c — responses that stay open (include/wshub/http.h, http_stream_open): the
 * head without a length, then the body as its owner appends it, until either side ends it.
 * Server-Sent Events need nothing more (HTTP/1.1 delimits such a body by the close).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "wshub/metrics.h"

http_stream_t *http_stream_open(const http_request_t *req, const char *ctype, void (*closed)(void *arg), void *arg)
{
    http_conn_t *h = container_of(req, http_conn_t, req);
    conn_t *c = h->c;
    http_stream_t *st = calloc(1, sizeof *st);
    if (!st || h->stream || h->pending)
        goto fail;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
                     "X-Accel-Buffering: no\r\nConnection: close\r\n\r\n", ctype);
    if (n < 0 || (size_t)n >= sizeof head)
        goto fail;
    *st = (http_stream_t){.h = h, .closed = closed, .arg = arg};
    h->stream = st;
    h->close_after = true;
    conn_clear_deadline(c); /* an open-ended answer has no request deadline */
    metrics_add(&c->env->metrics.http_responses[2], 1);
    /* Should it fail, the connection is closing: its on_closed tells the owner, as any end. */
    conn_send_copy(c, head, (size_t)n);
    return st;
fail:
    free(st);
    return NULL;
}

int http_stream_write(http_stream_t *st, const void *data, size_t len)
{
    if (!st->h)
        return -1;
    return conn_send_copy(st->h->c, data, len);
}

size_t http_stream_queued(const http_stream_t *st)
{
    return st->h ? st->h->c->queued : 0;
}

void http_stream_end(http_stream_t *st)
{
    if (!st)
        return;
    if (st->h) {
        st->h->stream = NULL;
        conn_close_after_write(st->h->c);
    }
    free(st);
}

void http_stream_gone(http_conn_t *h)
{
    http_stream_t *st = h->stream;
    h->stream = NULL;
    st->h = NULL;
    if (st->closed)
        st->closed(st->arg);
}
