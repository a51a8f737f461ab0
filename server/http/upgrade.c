/*
 * http/upgrade.c — the RFC 6455 opening handshake (§4.2) for WebSocket endpoints, with the
 * rules of PROTOCOLS.md §0.1-0.3: the request's checks, the dialect's decision (auth,
 * Origin, subprotocol), the 101, and the handover of the connection to a WebSocket session.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "wshub/faults.h"
#include "wshub/log.h"
#include "wshub/metrics.h"
#include "wshub/ws.h"

const dialect_t *http_find_dialect(const http_request_t *r, const config_t *cfg)
{
    for (const dialect_t *const *d = dialects; *d; d++)
        if (((*d)->path_prefix ? http_path_starts(r, (*d)->path) : http_path_is(r, (*d)->path)) &&
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

/* SHA-1 fetched from the provider once per process: OpenSSL 3's SHA1() fetches it again on
 * every call, which cost more than the hash itself (5,700 instructions a handshake against
 * 1,800 for the two blocks). A fetched EVP_MD is immutable and may be shared by threads. */
static EVP_MD *sha1_md;
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;

static void sha1_fetch(void)
{
    sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
}

void http_ws_accept_value(const char *key, size_t len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char in[24 + sizeof guid], md[SHA_DIGEST_LENGTH];
    memcpy(in, key, len);
    memcpy(in + len, guid, sizeof guid - 1);
    pthread_once(&sha1_once, sha1_fetch);
    if (!sha1_md || !EVP_Digest(in, len + sizeof guid - 1, md, NULL, sha1_md, NULL))
        SHA1(in, len + sizeof guid - 1, md); /* no fetched digest: the slow way, same bytes */
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

/* RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host header. */
bool http_host_ok(http_conn_t *h)
{
    int n = 0;
    for (int i = 0; i < h->req.nhdrs; i++)
        n += http_hdr_is(&h->req, &h->req.hdrs[i], "Host", 4);
    bool v11 = h->parser.http_major > 1 || (h->parser.http_major == 1 && h->parser.http_minor >= 1);
    return v11 ? n == 1 : n <= 1;
}

/* RFC 6455 §4.2.1: is this a valid opening handshake? Otherwise refuses it and returns NULL;
 * else returns the Sec-WebSocket-Key (*klen bytes). */
static const char *handshake_key(http_conn_t *h, size_t *klen)
{
    http_request_t *r = &h->req;
    if (strcmp(r->method, "GET") != 0) {
        http_refuse(h, 405, HS_METHOD, "method_not_allowed", "a WebSocket upgrade must use GET", "Allow: GET\r\n");
        return NULL;
    }
    if (h->parser.http_major < 1 || (h->parser.http_major == 1 && h->parser.http_minor < 1)) {
        http_refuse(h, 400, HS_BAD_REQUEST, "bad_request", "a WebSocket upgrade needs HTTP/1.1", NULL);
        return NULL;
    }
    if (!http_request_header_has_token(r, "Upgrade", "websocket") ||
        !http_request_header_has_token(r, "Connection", "upgrade")) {
        http_refuse(h, 426, HS_NOT_UPGRADE, "upgrade_required",
                    "this endpoint speaks WebSocket: send Upgrade: websocket and Connection: Upgrade",
                    "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
        return NULL;
    }
    size_t vlen;
    const char *ver = http_request_header(r, "Sec-WebSocket-Version", &vlen);
    if (!ver || vlen != 2 || memcmp(ver, "13", 2) != 0) {
        http_refuse(h, 426, HS_BAD_VERSION, "unsupported_version", "Sec-WebSocket-Version must be 13",
                    "Sec-WebSocket-Version: 13\r\n");
        return NULL;
    }
    const char *key = http_request_header(r, "Sec-WebSocket-Key", klen);
    if (!key || !key_valid(key, *klen)) {
        http_refuse(h, 400, HS_BAD_KEY, "bad_request", "Sec-WebSocket-Key must be 16 base64-encoded bytes", NULL);
        return NULL;
    }
    if (!http_request_header(r, "Host", NULL) || !http_host_ok(h)) {
        http_refuse(h, 400, HS_BAD_REQUEST, "bad_request", "the Host header is required, once", NULL);
        return NULL;
    }
    return key;
}

/* A refusal of the dialect (acc->status set): counted, logged, answered. */
static void refuse(http_conn_t *h, const dialect_t *d, dialect_accept_t *acc)
{
    metrics_add(&h->c->env->metrics.handshake_failures[acc->hs_reason], 1);
    char peer[64];
    log_event(LOG_INFO, "http_refused", h->c->id, conn_peer(h->c, peer, sizeof peer), d->name,
              "status=%d reason=%s %s", acc->status, hs_reason_names[acc->hs_reason], acc->why ? acc->why : "");
    if (acc->body)
        http_respond(h, acc->status, "application/json", acc->body, strlen(acc->body), NULL);
    else
        http_respond_error(h, acc->status, "refused", "the upgrade was refused", NULL);
    free(acc->body);
    acc->body = NULL;
}

/* permessage-deflate (websocket.compression): the first acceptable offer of the request's
 * Sec-WebSocket-Extensions headers, in order (RFC 7692 §5); 1 with *p and resp set, else 0. */
static int negotiate_deflate(http_conn_t *h, pmd_params_t *p, char *resp, size_t resplen)
{
    if (!h->c->env->cfg->ws_compression)
        return 0; /* off: the extension is never answered */
    http_request_t *r = &h->req;
    for (int i = 0; i < r->nhdrs; i++)
        if (http_hdr_is(r, &r->hdrs[i], "Sec-WebSocket-Extensions", 24) &&
            pmd_negotiate(r->buf + r->hdrs[i].value, r->hdrs[i].value_len, p, resp, resplen))
            return 1;
    return 0;
}

/* Appends the string s to buf (size bytes, *n used); false, and nothing appended, when it
 * does not fit with room for a NUL. The 101 is built with these rather than snprintf, whose
 * format parsing was an eighth of an /echo handshake's instructions. */
static bool put(char *buf, size_t size, size_t *n, const char *s)
{
    size_t len = strlen(s);
    if (len >= size - *n)
        return false;
    memcpy(buf + *n, s, len);
    *n += len;
    return true;
}

/* The 101 and the handover to a WebSocket session (h is freed by it). 0: the session runs;
 * 1: it could not start (ws_session_start released acc->data through on_close and closed);
 * -1: the connection is closing, acc->data untouched. */
static int switch_protocols(http_conn_t *h, const dialect_t *d, dialect_accept_t *acc)
{
    size_t klen;
    const char *key = http_request_header(&h->req, "Sec-WebSocket-Key", &klen);
    char accept[29];
    http_ws_accept_value(key, klen, accept);
    pmd_params_t pmd;
    char ext[160];
    bool deflate = negotiate_deflate(h, &pmd, ext, sizeof ext);
    char resp[448];
    size_t n = 0;
    bool fits = put(resp, sizeof resp, &n, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                           "Connection: Upgrade\r\nSec-WebSocket-Accept: ") &&
                put(resp, sizeof resp, &n, accept) && put(resp, sizeof resp, &n, "\r\n") &&
                (!acc->subprotocol || (put(resp, sizeof resp, &n, "Sec-WebSocket-Protocol: ") &&
                                       put(resp, sizeof resp, &n, acc->subprotocol) &&
                                       put(resp, sizeof resp, &n, "\r\n"))) &&
                (!deflate || (put(resp, sizeof resp, &n, "Sec-WebSocket-Extensions: ") &&
                              put(resp, sizeof resp, &n, ext) && put(resp, sizeof resp, &n, "\r\n"))) &&
                put(resp, sizeof resp, &n, "\r\n");
    conn_t *c = h->c;
    if (!fits)
        conn_close(c, "101 response too long"); /* a subprotocol of hundreds of bytes */
    if ((c->flags & CONN_F_CLOSING) || conn_send_copy(c, resp, n) != 0) {
        /* The connection is closing: no session to open on it, and none to own the data. */
        ws_session_discard(c, d, http_ctx(h, d), acc->data);
        acc->data = NULL;
        return -1;
    }
    metrics_add(&c->env->metrics.http_responses[1], 1);
    /* From here on the session owns the connection: h is freed by the handover. */
    return ws_session_start(c, d, http_ctx(h, d), acc->data, deflate ? &pmd : NULL) ? 0 : 1;
}

/* The mock backend's fault (POST /api/faults/refuse): the API refuses new connections for
 * a while, with the chosen status, its own JSON error and a Retry-After. */
static bool refused_by_fault(http_conn_t *h, const dialect_t *d)
{
    unsigned retry_s = 0;
    int status = faults_refusal(d->endpoint, &retry_s);
    if (!status)
        return false;
    char extra[48], peer[64];
    snprintf(extra, sizeof extra, "Retry-After: %u\r\n", retry_s);
    char *body = faults_refusal_body(d->endpoint, status);
    log_event(LOG_INFO, "http_refused", h->c->id, conn_peer(h->c, peer, sizeof peer), d->name,
              "status=%d reason=mock_fault", status);
    http_respond(h, status, "application/json", body ? body : "{}", body ? strlen(body) : 2, extra);
    free(body);
    return true;
}

int http_upgrade(http_conn_t *h, const dialect_t *d)
{
    h->close_after = true; /* every refusal ends the connection */
    size_t klen;
    if (!handshake_key(h, &klen))
        return HTTP_UPGRADE_REFUSED;
    if (faults_active() && refused_by_fault(h, d))
        return HTTP_UPGRADE_REFUSED;
    dialect_accept_t acc = {0};
    if (d->accept)
        d->accept(&h->req, http_ctx(h, d), &acc);
    if (h->pending) {
        /* Decided later (http_accept_complete): http_defer cleared the deadline, but a
         * decision that never comes must not hold the connection. */
        h->upgrading = d;
        conn_set_deadline(h->c, DL_HANDSHAKE);
        return HTTP_UPGRADE_LATER;
    }
    if (acc.status) {
        refuse(h, d, &acc);
        return HTTP_UPGRADE_REFUSED;
    }
    return switch_protocols(h, d, &acc) == 0 ? HTTP_UPGRADE_DONE : HTTP_UPGRADE_REFUSED;
}

bool http_accept_complete(http_pending_t *p, dialect_accept_t *acc)
{
    http_conn_t *h = p->h;
    free(p);
    if (h) {
        h->pending = NULL;
        conn_clear_deadline(h->c);
    }
    if (!h || (h->c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))) {
        free(acc->body); /* the client is gone: nothing to answer */
        acc->body = NULL;
        return false;
    }
    const dialect_t *d = h->upgrading;
    conn_t *c = h->c;
    h->upgrading = NULL;
    if (acc->status) {
        refuse(h, d, acc);
        conn_close_after_write(c);
        return false;
    }
    uint8_t *rest = h->backlog; /* what came after the request: the WebSocket's */
    size_t rest_len = h->backlog_len;
    h->backlog = NULL;
    h->backlog_len = 0;
    int r = switch_protocols(h, d, acc);
    if (r != 0) {
        free(rest);
        conn_close_after_write(c);
        return true; /* the data was taken: by the session, or released (switch_protocols) */
    }
    conn_resume_reading(c);
    if (rest_len)
        conn_feed(c, rest, rest_len);
    free(rest);
    return true;
}
