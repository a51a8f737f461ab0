/*
 * tls — TLS 1.2+ for the same listener (https, wss), OpenSSL with memory BIOs: the
 * connection reads ciphertext from the socket and feeds it here; plaintext comes back
 * through a callback; ciphertext to send comes back through another. OpenSSL never
 * touches a socket.
 * Never: knows HTTP or WebSocket. Buffers are released when idle (SSL_MODE_RELEASE_BUFFERS).
 */
#ifndef WSHUB_TLS_H
#define WSHUB_TLS_H

#include <stddef.h>
#include <stdint.h>

typedef struct tls_server tls_server_t;
typedef struct tls_conn tls_conn_t;

/* Called with decrypted bytes (valid only during the call). Return non-zero to stop. */
typedef int (*tls_plain_cb)(void *arg, const uint8_t *data, size_t len);
/* Called with ciphertext to send (valid only during the call). Return non-zero on failure. */
typedef int (*tls_out_cb)(void *arg, const uint8_t *data, size_t len);

/* Loads cert and key (PEM). On failure returns negative and writes one line into err. */
int tls_server_new(tls_server_t **out, const char *cert, const char *key, char *err, size_t errlen);
void tls_server_free(tls_server_t *srv);

tls_conn_t *tls_conn_new(tls_server_t *srv);
void tls_conn_free(tls_conn_t *t);

/*
 * Feeds ciphertext; decrypts into scratch (scratch_len bytes) and calls on_plain for each
 * chunk; any ciphertext the engine produces (handshake, alerts) goes to on_out.
 * Returns 0, or negative on a fatal TLS error (the connection must be closed); a
 * message for logs is in tls_conn_error().
 */
int tls_conn_feed(tls_conn_t *t, const uint8_t *in, size_t len, uint8_t *scratch,
                  size_t scratch_len, tls_plain_cb on_plain, tls_out_cb on_out, void *arg);
/* Encrypts data; the ciphertext goes to on_out. Returns 0 or negative. */
int tls_conn_write(tls_conn_t *t, const uint8_t *data, size_t len, tls_out_cb on_out, void *arg);
/* Queues a close_notify alert (to on_out). */
void tls_conn_close_notify(tls_conn_t *t, tls_out_cb on_out, void *arg);
const char *tls_conn_error(tls_conn_t *t);

#endif
