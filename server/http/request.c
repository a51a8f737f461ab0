/*
 * http/request.c — llhttp's callbacks: keeps the parts of a request the server needs (URL,
 * headers, body) in one buffer bounded by the configured limits (431, 413, and the body
 * memory of http.max_body_total_bytes), and the accessors of include/wshub/http.h.
 * Never: answers (it records the error for http.c) or routes.
 */
#include "internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wshub/log.h"
#include "wshub/metrics.h"

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
    size_t nlen = strlen(name);
    for (int i = 0; i < r->nhdrs; i++) {
        if (http_hdr_is(r, &r->hdrs[i], name, nlen)) {
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

/* Percent-decodes (and '+' to space) src[0..n) into buf; returns NULL if it does not fit.
 * The runs between '%' and '+' are copied whole (a JWT has none: ~200 bytes, one memcpy). */
static const char *pct_decode(const char *src, size_t n, char *buf, size_t buflen)
{
    size_t o = 0;
    const char *end = src + n, *pct = memchr(src, '%', n), *plus = memchr(src, '+', n);
    if (!pct) /* pct and plus: the next '%' and '+' at or after src + i, end if none */
        pct = end;
    if (!plus)
        plus = end;
    for (size_t i = 0; i < n; i++) {
        if (pct < src + i && !(pct = memchr(src + i, '%', n - i)))
            pct = end;
        if (plus < src + i && !(plus = memchr(src + i, '+', n - i)))
            plus = end;
        size_t run = (size_t)((pct < plus ? pct : plus) - (src + i));
        if (run) {
            if (o + run >= buflen)
                return NULL;
            memcpy(buf + o, src + i, run);
            o += run;
            i += run;
            if (i == n)
                break;
        }
        if (o + 1 >= buflen)
            return NULL;
        int hi, lo;
        if (src[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)src[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)src[i + 2])) >= 0) {
            if (hi == 0 && lo == 0)
                return NULL; /* "%00": a C string cannot carry it, and "a%00b" must not act as "a" */
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
void http_body_free(struct http_request *r)
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
    http_body_free(r);
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

void http_handle_request(http_conn_t *h);

/* A declared body over the limit is refused before it is sent (and Expect: 100-continue
 * clients do not wait for a timeout). */
const http_route_t *http_find_route(const http_request_t *r);

static int on_headers_complete(llhttp_t *p)
{
    http_conn_t *h = of(p);
    /* Credentials are checked before a body is read: an unauthenticated client cannot make
     * the server hold its bodies (issue 11). The route's handler gives its own refusal. */
    bool has_body = ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0) || (p->flags & F_CHUNKED);
    const http_route_t *rt = has_body ? http_find_route(&h->req) : NULL;
    if (rt && rt->authorized && !rt->authorized(&h->req, http_ctx(h, rt->dialect))) {
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
    http_handle_request(h);
    http_body_free(&h->req);
    if (h->pending || h->out || h->stream)
        return HPE_PAUSED; /* the reply comes later, in pieces, or never ends (a stream) */
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

void http_parser_init(http_conn_t *h)
{
    /* Once per process, whichever worker accepts first: the workers share the table
     * (issue 11: a plain flag here was a data race between the first connections). */
    uv_once(&settings_once, settings_init);
    llhttp_init(&h->parser, HTTP_REQUEST, &settings);
    h->parser.data = h;
}

bool http_path_is(const http_request_t *r, const char *want)
{
    size_t len;
    const char *p = http_request_path(r, &len);
    return len == strlen(want) && memcmp(p, want, len) == 0;
}

/* Is `token` one of the comma-separated, case-insensitive tokens of a header value?
 * Every header of that name counts (a client may repeat Sec-WebSocket-Protocol). */
int http_request_header_has_token(const http_request_t *r, const char *name, const char *token)
{
    size_t tlen = strlen(token), nlen = strlen(name);
    for (int i = 0; i < r->nhdrs; i++) {
        if (!http_hdr_is(r, &r->hdrs[i], name, nlen))
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

bool http_path_starts(const http_request_t *r, const char *prefix)
{
    size_t len, plen = strlen(prefix);
    const char *p = http_request_path(r, &len);
    return len > plen && memcmp(p, prefix, plen) == 0;
}
