/*
 * http — see include/wshub/http.h. llhttp does the parsing; this file keeps the parts of
 * a request it needs (URL, headers, body) in one buffer bounded by the configured limits,
 * routes the request, and performs the RFC 6455 opening handshake (§4.2) for WebSocket
 * endpoints, with the rules of PROTOCOLS.md §0.1-0.3.
 */
#include "wshub/http.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "wshub/conn.h"
#include "wshub/dialect.h"
#include "wshub/log.h"
#include "wshub/metrics.h"
#include "wshub/ws.h"

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

struct http_pending {
    http_conn_t *h; /* NULL once the connection is gone */
};

struct http_conn {
    llhttp_t parser;
    conn_t *c;
    http_pending_t *pending; /* a deferred reply is awaited: parsing and reading are paused */
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

static const conn_proto_t http_proto;
static void http_on_data(conn_t *c, const uint8_t *data, size_t len);

static llhttp_settings_t settings;
static uv_once_t settings_once = UV_ONCE_INIT;

/* ------------------------------------------------------------------ request accessors */

const char *http_request_method(const http_request_t *r) { return r->method; }

const char *http_request_path(const http_request_t *r, size_t *len)
{
    const char *u = r->buf + r->url;
    const char *q = memchr(u, '?', r->url_len);
    *len = q ? (size_t)(q - u) : r->url_len;
    return u;
}

const char *http_request_query(const http_request_t *r, size_t *len)
{
    const char *u = r->buf + r->url;
    const char *q = memchr(u, '?', r->url_len);
    if (!q) {
        *len = 0;
        return "";
    }
    *len = r->url_len - (size_t)(q + 1 - u);
    return q + 1;
}

const char *http_request_header(const http_request_t *r, const char *name, size_t *len)
{
    for (int i = 0; i < r->nhdrs; i++) {
        if (strcasecmp(r->buf + r->hdrs[i].name, name) == 0) {
            if (len)
                *len = r->hdrs[i].value_len;
            return r->buf + r->hdrs[i].value;
        }
    }
    return NULL;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decodes (and '+' to space) src[0..n) into buf; returns NULL if it does not fit. */
static const char *pct_decode(const char *src, size_t n, char *buf, size_t buflen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 1 >= buflen)
            return NULL;
        int hi, lo;
        if (src[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)src[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)src[i + 2])) >= 0) {
            buf[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            buf[o++] = src[i] == '+' ? ' ' : src[i];
        }
    }
    buf[o] = 0;
    return buf;
}

/* The raw (still percent-encoded) value of the first `name` parameter, or NULL. */
static const char *find_param(const http_request_t *r, const char *name, size_t *vlen)
{
    size_t qlen, nlen = strlen(name);
    const char *q = http_request_query(r, &qlen), *end = q + qlen;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - q) == nlen && memcmp(q, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : pe;
            *vlen = (size_t)(pe - v);
            return v;
        }
        q = pe + 1;
    }
    return NULL;
}

const char *http_request_query_param(const http_request_t *r, const char *name, char *buf, size_t buflen)
{
    size_t vlen;
    const char *v = find_param(r, name, &vlen);
    return v ? pct_decode(v, vlen, buf, buflen) : NULL;
}

int http_request_has_query_param(const http_request_t *r, const char *name)
{
    size_t vlen;
    return find_param(r, name, &vlen) != NULL;
}

const uint8_t *http_request_body(const http_request_t *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

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
static void respond(http_conn_t *h, int status, const char *ctype, const char *body, size_t blen,
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
    metrics_add(&c->env->metrics->http_responses[status / 100], 1);
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
static void respond_error(http_conn_t *h, int status, const char *code, const char *message,
                          const char *extra)
{
    char body[512];
    /* message is ours, never client text with quotes: no escaping needed. */
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"%s\"}", code, message);
    respond(h, status, "application/json", body, (size_t)n, extra);
}

static void refuse(http_conn_t *h, int status, int reason, const char *code, const char *message,
                   const char *extra)
{
    metrics_add(&h->c->env->metrics->handshake_failures[reason], 1);
    char peer[64];
    log_event(LOG_INFO, "http_refused", h->c->id, conn_peer(h->c, peer, sizeof peer), NULL,
              "status=%d reason=%s %s", status, hs_reason_names[reason], message);
    respond_error(h, status, code, message, extra);
}

/* ------------------------------------------------------------------ request buffer */

static int buf_append(http_conn_t *h, const char *at, size_t len)
{
    struct http_request *r = &h->req;
    size_t limit = h->c->env->cfg->http_max_header_bytes;
    if ((size_t)r->len + len + 1 > limit) {
        h->error_status = 431;
        h->error_reason = HS_HEADER_TOO_LARGE;
        return -1;
    }
    if (r->len + len + 1 > r->cap) {
        size_t ncap = r->cap ? r->cap : 512;
        while (ncap < r->len + len + 1)
            ncap *= 2;
        if (ncap > limit + 1)
            ncap = limit + 1;
        char *nb = realloc(r->buf, ncap);
        if (!nb) {
            h->error_status = 503;
            h->error_reason = HS_BAD_REQUEST;
            return -1;
        }
        r->buf = nb;
        r->cap = (uint32_t)ncap;
    }
    memcpy(r->buf + r->len, at, len);
    r->len += (uint32_t)len;
    return 0;
}

static int buf_terminate(http_conn_t *h)
{
    if (buf_append(h, "", 0))
        return -1;
    h->req.buf[h->req.len++] = 0;
    return 0;
}

/* A body is held only while its request is handled. */
static void body_free(struct http_request *r)
{
    if (r->body_cap)
        atomic_fetch_sub(&metrics_http_body_bytes, r->body_cap);
    free(r->body);
    r->body = NULL;
    r->body_cap = r->body_len = 0;
}

static void request_reset(http_conn_t *h)
{
    struct http_request *r = &h->req;
    body_free(r);
    r->len = r->url = r->url_len = r->cur = 0;
    r->nhdrs = 0;
    r->body_len = 0;
    r->method = NULL;
}

/* ------------------------------------------------------------------ llhttp callbacks */

static http_conn_t *of(llhttp_t *p) { return p->data; }

static int on_message_begin(llhttp_t *p)
{
    http_conn_t *h = of(p);
    request_reset(h);
    h->refuse_early = false;
    h->in_request = true;
    /* A new connection's first request must complete within the handshake timeout from its
     * accept, not from its first byte. */
    if (h->c->dl_kind != DL_REQUEST && h->c->dl_kind != DL_HANDSHAKE)
        conn_set_deadline(h->c, DL_REQUEST);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) { return buf_append(of(p), at, len); }

static int on_url_complete(llhttp_t *p)
{
    http_conn_t *h = of(p);
    h->req.url = 0;
    h->req.url_len = h->req.len;
    /* The absolute form (RFC 9112 §3.2.2): route on the path after scheme://authority. */
    const char *u = h->req.buf;
    size_t skip = h->req.url_len >= 7 && strncasecmp(u, "http://", 7) == 0    ? 7
                  : h->req.url_len >= 8 && strncasecmp(u, "https://", 8) == 0 ? 8
                                                                               : 0;
    if (skip) {
        const char *slash = memchr(u + skip, '/', h->req.url_len - skip);
        h->req.url = slash ? (uint32_t)(slash - u) : h->req.url_len;
        h->req.url_len -= h->req.url;
    }
    if (buf_terminate(h))
        return -1;
    h->req.cur = h->req.len;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) { return buf_append(of(p), at, len); }

static int on_header_field_complete(llhttp_t *p)
{
    http_conn_t *h = of(p);
    struct http_request *r = &h->req;
    if (r->nhdrs >= h->c->env->cfg->http_max_headers) {
        h->error_status = 431;
        h->error_reason = HS_TOO_MANY_HEADERS;
        return -1;
    }
    if (r->nhdrs == r->hcap) {
        int ncap = r->hcap ? r->hcap * 2 : 16;
        hdr_t *nh = realloc(r->hdrs, (size_t)ncap * sizeof *nh);
        if (!nh)
            return -1;
        r->hdrs = nh;
        r->hcap = ncap;
    }
    hdr_t *hd = &r->hdrs[r->nhdrs];
    hd->name = r->cur;
    hd->name_len = r->len - r->cur;
    if (buf_terminate(h))
        return -1;
    r->cur = r->len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) { return buf_append(of(p), at, len); }

static int on_header_value_complete(llhttp_t *p)
{
    http_conn_t *h = of(p);
    struct http_request *r = &h->req;
    hdr_t *hd = &r->hdrs[r->nhdrs];
    hd->value = r->cur;
    hd->value_len = r->len - r->cur;
    /* Whitespace around a field value is not part of it (RFC 9110 §5.5); llhttp strips the
     * leading part only. */
    while (hd->value_len && (r->buf[hd->value + hd->value_len - 1] == ' ' ||
                             r->buf[hd->value + hd->value_len - 1] == '\t'))
        hd->value_len--;
    r->len = hd->value + hd->value_len;
    if (buf_terminate(h))
        return -1;
    r->cur = r->len;
    r->nhdrs++;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *h = of(p);
    struct http_request *r = &h->req;
    if (h->refuse_early)
        return 0; /* refused from its headers: nothing of the body is kept */
    size_t limit = h->c->env->cfg->http_max_body_bytes;
    if (r->body_len + len > limit) {
        h->error_status = 413;
        h->error_reason = HS_BODY_TOO_LARGE;
        return -1;
    }
    if (r->body_len + len > r->body_cap) {
        size_t ncap = r->body_cap ? r->body_cap : 1024;
        while (ncap < r->body_len + len)
            ncap *= 2;
        if (ncap > limit)
            ncap = limit;
        /* Every body held counts against one process-wide bound (http.max_body_total_bytes). */
        size_t grow = ncap - r->body_cap;
        size_t held = atomic_fetch_add(&metrics_http_body_bytes, grow) + grow;
        uint8_t *nb = held <= h->c->env->cfg->http_max_body_total_bytes ? realloc(r->body, ncap) : NULL;
        if (!nb) {
            atomic_fetch_sub(&metrics_http_body_bytes, grow);
            h->error_status = 503;
            h->error_reason = HS_BODY_MEMORY;
            return -1;
        }
        r->body = nb;
        r->body_cap = ncap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static void handle_request(http_conn_t *h);

/* A declared body over the limit is refused before it is sent (and Expect: 100-continue
 * clients do not wait for a timeout). */
static const http_route_t *find_route(const http_request_t *r);

static int on_headers_complete(llhttp_t *p)
{
    http_conn_t *h = of(p);
    /* Credentials are checked before a body is read: an unauthenticated client cannot make
     * the server hold its bodies (issue 11). The route's handler gives its own refusal. */
    bool has_body = ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0) || (p->flags & F_CHUNKED);
    const http_route_t *rt = has_body ? find_route(&h->req) : NULL;
    if (rt && rt->authorized && !rt->authorized(&h->req, dialect_ctx_pick((dialect_ctx_t *)h->c->env->data, rt->dialect))) {
        h->refuse_early = true; /* the body is read and dropped; the 401 keeps its order */
        return 0;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > h->c->env->cfg->http_max_body_bytes) {
        h->error_status = 413;
        h->error_reason = HS_BODY_TOO_LARGE;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    http_conn_t *h = of(p);
    h->in_request = false;
    h->req.method = llhttp_method_name(llhttp_get_method(p));
    conn_clear_deadline(h->c);
    if (llhttp_get_upgrade(p)) {
        /* The handshake frees the parser: it runs once llhttp_execute has returned. */
        h->upgrade = true;
        return 0;
    }
    h->close_after = !llhttp_should_keep_alive(p);
    handle_request(h);
    body_free(&h->req);
    if (h->pending || h->out)
        return HPE_PAUSED; /* the reply comes later, or in pieces: resume_after_reply */
    if (h->close_after) {
        conn_close_after_write(h->c);
        return HPE_PAUSED;
    }
    conn_set_deadline(h->c, DL_KEEPALIVE);
    return 0;
}

static void settings_init(void)
{
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_url_complete = on_url_complete;
    settings.on_header_field = on_header_field;
    settings.on_header_field_complete = on_header_field_complete;
    settings.on_header_value = on_header_value;
    settings.on_header_value_complete = on_header_value_complete;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
}

/* ------------------------------------------------------------------ routing */

static bool path_is(const http_request_t *r, const char *want)
{
    size_t len;
    const char *p = http_request_path(r, &len);
    return len == strlen(want) && memcmp(p, want, len) == 0;
}

/* Is `token` one of the comma-separated, case-insensitive tokens of a header value?
 * Every header of that name counts (a client may repeat Sec-WebSocket-Protocol). */
int http_request_header_has_token(const http_request_t *r, const char *name, const char *token)
{
    size_t tlen = strlen(token);
    for (int i = 0; i < r->nhdrs; i++) {
        if (strcasecmp(r->buf + r->hdrs[i].name, name) != 0)
            continue;
        const char *v = r->buf + r->hdrs[i].value, *end = v + r->hdrs[i].value_len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            const char *s = v;
            while (v < end && *v != ',')
                v++;
            const char *e = v;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if ((size_t)(e - s) == tlen && strncasecmp(s, token, tlen) == 0)
                return 1;
        }
    }
    return 0;
}

static bool header_has_token(const http_request_t *r, const char *name, const char *token)
{
    return http_request_header_has_token(r, name, token) != 0;
}

static bool path_starts(const http_request_t *r, const char *prefix)
{
    size_t len, plen = strlen(prefix);
    const char *p = http_request_path(r, &len);
    return len > plen && memcmp(p, prefix, plen) == 0;
}

static const dialect_t *find_dialect(const http_request_t *r, const config_t *cfg)
{
    for (const dialect_t *const *d = dialects; *d; d++)
        if (((*d)->path_prefix ? path_starts(r, (*d)->path) : path_is(r, (*d)->path)) &&
            (!(*d)->enabled || (*d)->enabled(cfg)))
            return *d;
    return NULL;
}

/* Sec-WebSocket-Key must be the base64 encoding of 16 bytes (RFC 6455 §4.2.1 item 5). */
static bool key_valid(const char *key, size_t len)
{
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    unsigned char out[24];
    return EVP_DecodeBlock(out, (const unsigned char *)key, 24) == 18;
}

void http_ws_accept_value(const char *key, size_t len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char in[24 + sizeof guid], md[SHA_DIGEST_LENGTH];
    memcpy(in, key, len);
    memcpy(in + len, guid, sizeof guid - 1);
    SHA1(in, len + sizeof guid - 1, md);
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

/* RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host header. */
static bool host_ok(http_conn_t *h)
{
    int n = 0;
    for (int i = 0; i < h->req.nhdrs; i++)
        n += strcasecmp(h->req.buf + h->req.hdrs[i].name, "Host") == 0;
    bool v11 = h->parser.http_major > 1 || (h->parser.http_major == 1 && h->parser.http_minor >= 1);
    return v11 ? n == 1 : n <= 1;
}

/* Returns true when the connection was handed to a WebSocket session. */
static bool websocket_handshake(http_conn_t *h, const dialect_t *d)
{
    http_request_t *r = &h->req;
    h->close_after = true; /* every refusal ends the connection */
    if (strcmp(r->method, "GET") != 0) {
        refuse(h, 405, HS_METHOD, "method_not_allowed", "a WebSocket upgrade must use GET", "Allow: GET\r\n");
        return false;
    }
    if (h->parser.http_major < 1 || (h->parser.http_major == 1 && h->parser.http_minor < 1)) {
        refuse(h, 400, HS_BAD_REQUEST, "bad_request", "a WebSocket upgrade needs HTTP/1.1", NULL);
        return false;
    }
    if (!header_has_token(r, "Upgrade", "websocket") || !header_has_token(r, "Connection", "upgrade")) {
        refuse(h, 426, HS_NOT_UPGRADE, "upgrade_required",
               "this endpoint speaks WebSocket: send Upgrade: websocket and Connection: Upgrade",
               "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
        return false;
    }
    size_t vlen, klen;
    const char *ver = http_request_header(r, "Sec-WebSocket-Version", &vlen);
    if (!ver || vlen != 2 || memcmp(ver, "13", 2) != 0) {
        refuse(h, 426, HS_BAD_VERSION, "unsupported_version", "Sec-WebSocket-Version must be 13",
               "Sec-WebSocket-Version: 13\r\n");
        return false;
    }
    const char *key = http_request_header(r, "Sec-WebSocket-Key", &klen);
    if (!key || !key_valid(key, klen)) {
        refuse(h, 400, HS_BAD_KEY, "bad_request", "Sec-WebSocket-Key must be 16 base64-encoded bytes", NULL);
        return false;
    }
    if (!http_request_header(r, "Host", NULL) || !host_ok(h)) {
        refuse(h, 400, HS_BAD_REQUEST, "bad_request", "the Host header is required, once", NULL);
        return false;
    }

    dialect_accept_t acc = {0};
    if (d->accept)
        d->accept(r, dialect_ctx_pick((dialect_ctx_t *)h->c->env->data, d), &acc);
    if (acc.status) {
        metrics_add(&h->c->env->metrics->handshake_failures[acc.hs_reason], 1);
        char peer[64];
        log_event(LOG_INFO, "http_refused", h->c->id, conn_peer(h->c, peer, sizeof peer), d->name,
                  "status=%d reason=%s %s", acc.status, hs_reason_names[acc.hs_reason], acc.why ? acc.why : "");
        if (acc.body)
            respond(h, acc.status, "application/json", acc.body, strlen(acc.body), NULL);
        else
            respond_error(h, acc.status, "refused", "the upgrade was refused", NULL);
        free(acc.body);
        return false;
    }

    char accept[29];
    http_ws_accept_value(key, klen, accept);
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                     accept, acc.subprotocol ? "Sec-WebSocket-Protocol: " : "",
                     acc.subprotocol ? acc.subprotocol : "", acc.subprotocol ? "\r\n" : "");
    conn_t *c = h->c;
    conn_send_copy(c, resp, (size_t)n);
    metrics_add(&c->env->metrics->http_responses[1], 1);
    return ws_session_start(c, d, dialect_ctx_pick((dialect_ctx_t *)c->env->data, d), acc.data) != NULL;
}

static const http_route_t *find_route(const http_request_t *r)
{
    for (const http_route_t *rt = http_routes; rt->path; rt++)
        if (path_is(r, rt->path))
            return rt;
    return NULL;
}

static void handle_request(http_conn_t *h)
{
    http_request_t *r = &h->req;
    const config_t *cfg = h->c->env->cfg;
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;

    if (!host_ok(h)) {
        h->close_after = true;
        refuse(h, 400, HS_BAD_REQUEST, "bad_request", "an HTTP/1.1 request needs exactly one Host header", NULL);
        return;
    }

    if (path_is(r, "/healthz")) {
        if (!get)
            refuse(h, 405, HS_METHOD, "method_not_allowed", "use GET", "Allow: GET, HEAD\r\n");
        else
            respond(h, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL);
        return;
    }
    if (path_is(r, "/metrics")) {
        if (!get) {
            refuse(h, 405, HS_METHOD, "method_not_allowed", "use GET", "Allow: GET, HEAD\r\n");
            return;
        }
        size_t len = 0;
        char *text = metrics_render(&len);
        if (!text) {
            respond_error(h, 500, "internal_error", "out of memory", NULL);
            return;
        }
        respond(h, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
        free(text);
        return;
    }
    if (h->over_capacity) {
        h->close_after = true;
        refuse(h, 503, HS_OVER_CAPACITY, "over_capacity",
               "the server is at limits.max_connections: retry later", "Retry-After: 1\r\n");
        return;
    }
    const http_route_t *rt = find_route(r);
    if (rt) {
        http_reply_t rep = {0};
        rt->fn(r, dialect_ctx_pick((dialect_ctx_t *)h->c->env->data, rt->dialect), &rep);
        if (h->pending) {
            free(rep.body);
            free(rep.extra_alloc);
            return;
        }
        if (rep.hs_reason > 0)
            metrics_add(&h->c->env->metrics->handshake_failures[rep.hs_reason - 1], 1);
        char *extra = NULL;
        if (rep.extra_alloc && asprintf(&extra, "%s%s", rep.extra ? rep.extra : "", rep.extra_alloc) < 0)
            extra = NULL;
        respond(h, rep.status, rep.ctype ? rep.ctype : "application/json", rep.body, rep.len,
                extra ? extra : rep.extra);
        free(extra);
        free(rep.extra_alloc);
        free(rep.body);
        return;
    }
    if (find_dialect(r, cfg)) {
        /* Not an upgrade request: llhttp saw no Upgrade + Connection: upgrade pair. The
         * handshake itself only ever runs after llhttp_execute returned (http_on_data). */
        refuse(h, 426, HS_NOT_UPGRADE, "upgrade_required",
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
    refuse(h, 404, HS_NOT_FOUND, "not_found", msg, NULL);
}

/* ------------------------------------------------------------------ connection glue */

int http_conn_start(conn_t *c, bool over_capacity)
{
    /* Once per process, whichever worker accepts first: the workers share the table
     * (issue 11: a plain flag here was a data race between the first connections). */
    uv_once(&settings_once, settings_init);
    http_conn_t *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->c = c;
    h->over_capacity = over_capacity;
    llhttp_init(&h->parser, HTTP_REQUEST, &settings);
    h->parser.data = h;
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

void http_complete(http_pending_t *p, int status, const char *ctype, char *body, size_t len)
{
    http_conn_t *h = p->h;
    free(p);
    if (!h) {
        free(body);
        return;
    }
    conn_t *c = h->c;
    h->pending = NULL;
    if (c->flags & (CONN_F_CLOSING | CONN_F_DRAIN)) {
        free(body); /* the client is gone or going: nothing to answer, no deadline to set */
        return;
    }
    respond(h, status, ctype ? ctype : "application/json", body, len, NULL);
    free(body);
    if (!h->out)
        resume_after_reply(h);
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
    free(h->backlog);
    free(h->req.buf);
    free(h->req.hdrs);
    body_free(&h->req);
    if (h->out)
        conn_hold(c, -(long)(h->out_len - h->out_off));
    free(h->out);
    free(h);
    c->pdata = NULL;
}

static void http_on_data(conn_t *c, const uint8_t *data, size_t len)
{
    http_conn_t *h = c->pdata;
    if (!h || (c->flags & CONN_F_DRAIN))
        return; /* a response that ends the connection is on its way: ignore the rest */
    if (h->pending || h->out) {
        /* More bytes of one read (TLS records) while a reply is awaited or still being sent
         * in pieces: keep them. The parser is paused; executing it again would return at
         * once with a stale error position into an earlier read's buffer. */
        uint8_t *nb = realloc(h->backlog, h->backlog_len + len);
        if (!nb) {
            conn_close(c, "out of memory (http)");
            return;
        }
        memcpy(nb + h->backlog_len, data, len);
        h->backlog = nb;
        h->backlog_len += len;
        return;
    }
    llhttp_errno_t err = llhttp_execute(&h->parser, (const char *)data, len);
    if (err == HPE_OK)
        return;
    if (err == HPE_PAUSED_UPGRADE && h->upgrade) {
        const char *rest = llhttp_get_error_pos(&h->parser);
        size_t used = rest ? (size_t)(rest - (const char *)data) : len;
        h->close_after = false;
        size_t plen;
        http_request_path(&h->req, &plen);
        const dialect_t *d = find_dialect(&h->req, c->env->cfg);
        if (d && !h->over_capacity && websocket_handshake(h, d)) {
            /* h is freed now; bytes after the request belong to the WebSocket. */
            if (used < len)
                conn_feed(c, data + used, len - used);
            return;
        }
        if (!d || h->over_capacity) {
            /* An upgrade to something we do not speak, or past limits.max_connections:
             * answer the request as plain HTTP. */
            h->close_after = true;
            handle_request(h);
        }
        conn_close_after_write(c);
        return;
    }
    if (err == HPE_PAUSED) {
        if (h->pending || h->out) {
            /* Keep what follows the deferred request until its reply is sent. */
            const char *rest = llhttp_get_error_pos(&h->parser);
            size_t used = rest ? (size_t)(rest - (const char *)data) : len;
            if (used < len) {
                uint8_t *nb = realloc(h->backlog, h->backlog_len + len - used);
                if (!nb) {
                    conn_close(c, "out of memory (http)");
                    return;
                }
                memcpy(nb + h->backlog_len, data + used, len - used);
                h->backlog = nb;
                h->backlog_len += len - used;
            }
            conn_pause_reading(c);
        }
        return; /* otherwise paused by on_message_complete because the connection is closing */
    }
    h->close_after = true;
    if (h->error_status) {
        const char *msg = h->error_status == 431 ? "request header fields too large"
                          : h->error_status == 413 ? "request body too large"
                          : h->error_reason == HS_BODY_MEMORY
                              ? "too many request bodies held: retry later"
                              : "server error";
        refuse(h, h->error_status, h->error_reason, h->error_status == 413 ? "payload_too_large"
                                                    : h->error_status == 431 ? "header_too_large"
                                                    : h->error_status == 503 ? "busy"
                                                                             : "internal_error",
               msg, h->error_status == 503 ? "Retry-After: 1\r\n" : NULL);
    } else {
        refuse(h, 400, HS_BAD_REQUEST, "bad_request", llhttp_errno_name(err), NULL);
    }
    conn_close_after_write(c);
}

static void http_on_eof(conn_t *c)
{
    http_conn_t *h = c->pdata;
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
        refuse(h, 408, HS_TIMEOUT, "request_timeout", "the request did not complete in time", NULL);
        conn_close_after_write(c);
    } else {
        metrics_add(&c->env->metrics->handshake_failures[HS_TIMEOUT], 1);
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
