/*
 * harness — what the socket-level fuzz targets share: one real worker (worker_init, its
 * loop, listener, hub, dialects' per-worker state) driven on the fuzzer's own thread, and a
 * client socket on 127.0.0.1 that feeds it bytes. Everything between the socket and the
 * dialect is the daemon's code (conn.c, http.c, ws_session.c, dialects/, hub.c); the
 * harness only replaces worker.c's run(): it turns the loop with UV_RUN_NOWAIT between
 * client writes, so that the server reads exactly the chunks the input chose.
 *
 * Each fuzz input opens its connections, and fz_end() waits until the server has freed
 * every connection and finished its thread-pool work, so no state leaks into the next input.
 */
#ifndef WSHUB_FUZZ_HARNESS_H
#define WSHUB_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "wshub/conn.h"
#include "wshub/worker.h"

/* The shared secret and keys of the fuzzing configuration (seeds are signed with them). */
#define FZ_JWT_SECRET "fuzz-secret"
#define FZ_API_KEY "fuzz-api-key"
#define FZ_MOD_KEY "fuzz-mod-key"

/* Starts the worker once per process. extra_env: more "WSHUB_X=v" strings, NULL-terminated
 * (may be NULL), applied over the harness's own (small limits so inputs can reach them). */
void fz_init(const char *const *extra_env);
worker_t *fz_worker(void);

/* Connects a client and turns the loop until the server accepted it. Returns the client fd
 * (non-blocking) or aborts. *server_conn (if not NULL) gets the server's conn_t. rcvbuf: the
 * client's SO_RCVBUF (0: the default), small to make the server's sends partial. */
int fz_connect(conn_t **server_conn, int rcvbuf);

/* Turns the loop `turns` times (UV_RUN_NOWAIT), reading what the server sent to fd. */
void fz_pump(int fd, int turns);
/* Writes len bytes (pumping while the socket is full); -1 once the server closed. */
int fz_write(int fd, const void *data, size_t len);
/* Writes in chunks of `chunk` bytes (0: all at once), turning the loop after each. */
int fz_write_chunked(int fd, const uint8_t *data, size_t len, size_t chunk);
/* Ends the client: a FIN (rst == 0) or an abortive close (RST), then turns the loop until
 * the server freed every connection and its thread-pool work is done (forcing a close of
 * what is left after a while, as the shutdown deadline does). Closes fd. */
void fz_end(int fd, int rst);

/* What the server sent on the most recent fd pumped (kept up to a bound), and in total. */
const uint8_t *fz_received(size_t *len);
uint64_t fz_received_total(void);
void fz_received_reset(void);

/* Sends an HTTP/1.1 GET upgrade request for `target` (path and query) with extra header
 * lines (each ending in \r\n, may be NULL); turns the loop until the response head is in.
 * Returns its status code, or 0 when the server closed without one. */
int fz_upgrade(int fd, const char *target, const char *headers);

/* A masked client frame (fixed non-zero key) into out (len + 14 bytes); returns its size. */
size_t fz_frame(uint8_t *out, int fin, int opcode, const uint8_t *payload, size_t len);

/* The WebSocket endpoints, opened the way their clients do (credentials of the fuzzing
 * configuration; Flow asks /socket.info for its endpoint first). */
enum { FZ_ECHO = 0, FZ_SERVICE, FZ_CABLE, FZ_MODERATION, FZ_FLOW, FZ_API_COUNT };
/* Connects and upgrades to `api`; returns the client fd once the 101 is in. Anything but
 * a 101 to these valid requests aborts (a finding). */
int fz_open(int api);

/* Chunk sizes an input's control byte picks from (0 = the whole input in one write). */
size_t fz_chunk_size(uint8_t b);

#endif
