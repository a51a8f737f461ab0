/*
 * tls — see include/wshub/tls.h. One SSL_CTX for the process (TLS 1.2 minimum,
 * SSL_MODE_RELEASE_BUFFERS), one SSL with a pair of memory BIOs per connection.
 */
#include "wshub/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct tls_server {
    SSL_CTX *ctx;
};

struct tls_conn {
    SSL *ssl;
    BIO *rbio; /* ciphertext from the peer, written by us, read by OpenSSL */
    BIO *wbio; /* ciphertext for the peer, written by OpenSSL, drained by us */
    const char *error;
};

static void set_err(char *err, size_t errlen, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    snprintf(err, errlen, "%s %s: %s", what, path, reason);
    ERR_clear_error();
}

/* Offers HTTP/1.1 when the client uses ALPN (browsers and curl do). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char ours[] = "\x08http/1.1";
    if (SSL_select_next_proto((unsigned char **)out, outlen, ours, sizeof ours - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    return SSL_TLSEXT_ERR_OK;
}

int tls_server_new(tls_server_t **out, const char *cert, const char *key, char *err, size_t errlen)
{
    tls_server_t *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "tls: out of memory");
        return -1;
    }
    srv->ctx = SSL_CTX_new(TLS_server_method());
    if (!srv->ctx) {
        set_err(err, errlen, "tls:", "context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(srv->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(srv->ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(srv->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_alpn_select_cb(srv->ctx, alpn_select, NULL);
    if (SSL_CTX_use_certificate_chain_file(srv->ctx, cert) != 1) {
        set_err(err, errlen, "tls.cert: cannot load", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(srv->ctx, key, SSL_FILETYPE_PEM) != 1) {
        set_err(err, errlen, "tls.key: cannot load", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(srv->ctx) != 1) {
        set_err(err, errlen, "tls.key: does not match tls.cert", key);
        goto fail;
    }
    *out = srv;
    return 0;
fail:
    tls_server_free(srv);
    return -1;
}

void tls_server_free(tls_server_t *srv)
{
    if (!srv)
        return;
    SSL_CTX_free(srv->ctx);
    free(srv);
}

tls_conn_t *tls_conn_new(tls_server_t *srv)
{
    tls_conn_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ssl = SSL_new(srv->ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        return NULL;
    }
    /* An empty memory BIO reports "retry", not EOF. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns both BIOs now */
    SSL_set_accept_state(t->ssl);
    return t;
}

void tls_conn_free(tls_conn_t *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

/* Hands whatever OpenSSL wrote for the peer to on_out, without copying it first. */
static int drain(tls_conn_t *t, tls_out_cb on_out, void *arg)
{
    char *p;
    long n = BIO_get_mem_data(t->wbio, &p);
    if (n <= 0)
        return 0;
    int r = on_out(arg, (const uint8_t *)p, (size_t)n);
    (void)BIO_reset(t->wbio);
    return r;
}

static int fatal(tls_conn_t *t, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    t->error = reason ? reason : what;
    ERR_clear_error();
    return -1;
}

int tls_conn_feed(tls_conn_t *t, const uint8_t *in, size_t len, uint8_t *scratch, size_t scratch_len,
                  tls_plain_cb on_plain, tls_out_cb on_out, void *arg)
{
    if (len && BIO_write(t->rbio, in, (int)len) != (int)len)
        return fatal(t, "tls: out of memory");
    for (;;) {
        int n = SSL_read(t->ssl, scratch, (int)scratch_len);
        if (n > 0) {
            /* Answer the handshake before the plaintext: the reply may depend on it. */
            if (drain(t, on_out, arg))
                return -1;
            if (on_plain(arg, scratch, (size_t)n))
                return 0;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_ZERO_RETURN)
            break; /* ZERO_RETURN: close_notify; the TCP EOF follows */
        drain(t, on_out, arg); /* send the alert that tells the peer why */
        return fatal(t, SSL_is_init_finished(t->ssl) ? "tls: read failed" : "tls: handshake failed");
    }
    return drain(t, on_out, arg) ? -1 : 0;
}

int tls_conn_write(tls_conn_t *t, const uint8_t *data, size_t len, tls_out_cb on_out, void *arg)
{
    while (len) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n = SSL_write(t->ssl, data, chunk);
        if (n <= 0) {
            int e = SSL_get_error(t->ssl, n);
            if (e == SSL_ERROR_WANT_READ && !SSL_is_init_finished(t->ssl))
                return fatal(t, "tls: write before the handshake finished");
            return fatal(t, "tls: write failed");
        }
        data += n;
        len -= (size_t)n;
    }
    return drain(t, on_out, arg);
}

void tls_conn_close_notify(tls_conn_t *t, tls_out_cb on_out, void *arg)
{
    if (SSL_is_init_finished(t->ssl)) {
        SSL_shutdown(t->ssl);
        drain(t, on_out, arg);
    }
    ERR_clear_error();
}

const char *tls_conn_error(tls_conn_t *t) { return t->error ? t->error : "tls error"; }
