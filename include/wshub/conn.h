/*
 * conn — one client connection: the TCP handle, optional TLS, the output queue, the
 * deadline, and which protocol currently owns the bytes (HTTP, then maybe WebSocket).
 *
 * Owns: socket I/O. Reads go into the worker's shared buffer and are handed to the
 * protocol synchronously (no per-connection read buffer, DESIGN.md decision 5). Output is a
 * queue of frame references (frame.h): private byte buffers for replies, shared prepared
 * frames for fan-out; it is flushed once per loop iteration with uv_try_write, then one
 * uv_write carrying every queued buffer (decision 4). Queued bytes are bounded
 * (limits.max_queued_bytes, decision 6).
 * Never: parses HTTP or WebSocket, or knows which API it carries.
 *
 * Lifetime: conn_close() marks the connection closing and starts uv_close; memory is freed
 * in the close callback, after the protocol's cleanup hook ran. Any function here may be
 * called on a closing connection and then does nothing.
 */
#ifndef WSHUB_CONN_H
#define WSHUB_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wshub/frame.h"
#include "wshub/list.h"
#include "wshub/worker.h"

typedef struct http_conn http_conn_t;
typedef struct ws_session ws_session_t;
typedef struct tls_conn tls_conn_t;

typedef enum { CONN_HTTP = 0, CONN_WS } conn_state_t;

#define CONN_F_CLOSING 0x01  /* conn_close() ran: no more I/O, freed in the close callback */
#define CONN_F_WRITING 0x02  /* a uv_write is in flight (c->inflight queue entries) */
#define CONN_F_DRAIN 0x04    /* close after the queue drains: FIN, then wait for the peer's EOF */
#define CONN_F_FIN_SENT 0x08 /* uv_shutdown issued */
#define CONN_F_OVERFLOW 0x10 /* queued bytes passed the bound; handled at the next flush */
#define CONN_F_EOF 0x20      /* the peer sent FIN */
#define CONN_F_RST 0x40      /* with CONN_F_DRAIN: end with a TCP RST instead of a FIN */
#define CONN_F_SLOW 0x80     /* declared a slow consumer: counted and handled once */
#define CONN_F_IPCOUNTED 0x100 /* counted in iplimit: released when freed */
#define CONN_F_PINGED 0x200  /* a liveness ping is out (DL_PONG): any input clears it */

typedef struct outq_entry {
    frame_t *f;     /* one reference held by this entry */
    uint32_t off;   /* bytes of f already written */
    uint32_t shared; /* a prepared fan-out frame (whole WebSocket frames: may be dropped) */
} outq_entry_t;

typedef struct conn {
    uv_tcp_t tcp;
    worker_t *w;
    uint64_t id;         /* unique in the process, for logs */
    uint8_t state;       /* conn_state_t */
    uint8_t endpoint;    /* endpoint_t, for metrics: EP_HTTP until an upgrade */
    uint8_t dl_kind;     /* deadline_kind_t of the list dl_node is in */
    uint8_t peer_port_hi, peer_port_lo; /* the peer's port, recorded at accept */
    uint16_t flags;      /* CONN_F_* */
    uint16_t inflight;   /* queue entries handed to the in-flight uv_write (<= MAX_IOV) */
    uint8_t peer[16];    /* the peer's address at accept (IPv4 mapped into IPv6): logs and
                            per-IP limits never ask the socket, which may be reset by then */
    tls_conn_t *tls;     /* NULL for plain TCP */
    union {
        http_conn_t *http;
        ws_session_t *ws;
    } u;
    outq_entry_t *q;     /* ring of queued output, qcap entries (a power of two) */
    uint32_t qhead, qcount, qcap;
    size_t queued;       /* bytes queued and not yet written, in-flight included */
    uint64_t deadline;   /* uv_now() ms when dl_kind expires */
    list_node_t dirty_node;
    list_node_t dl_node;
} conn_t;

struct sockaddr;
/* Takes over an accepted socket (non-blocking) from w's listener; addr is its peer. */
void conn_accept_fd(worker_t *w, int fd, const struct sockaddr *addr);

/* Queues a copy of data (a private buffer). Returns 0 or a negative libuv error. */
int conn_send_copy(conn_t *c, const void *data, size_t len);
/* Queues a shared prepared frame: takes its own reference, the caller keeps theirs. */
int conn_send_frame(conn_t *c, frame_t *f);

/* Output a protocol holds for this connection outside the queue (the unsent pieces of a
 * large HTTP answer): counted in limits.max_queued_total_bytes like queued replies; delta
 * is added when taken, subtracted as it is queued or dropped. */
void conn_hold(conn_t *c, long delta);

/* Closes now: pending output is dropped. `reason` is logged. */
void conn_close(conn_t *c, const char *reason);
/* Closes after the queued output is written: FIN, wait for the peer's EOF (bounded). */
void conn_close_after_write(conn_t *c);
/* Closes with a TCP RST (SO_LINGER 0): the peer sees an abortive close. */
void conn_abort(conn_t *c, const char *reason);
/* Writes what is queued, then closes with a TCP RST (no close frame, no FIN). */
void conn_abort_after_write(conn_t *c, const char *reason);

/* At the descriptor budget: resets this worker's oldest connection that has not completed a
 * first request, if it has waited at least min_age_ms. Returns whether one was. */
bool conn_evict_unready(worker_t *w, uint64_t min_age_ms);

/* Puts the connection in a deadline list (replacing any previous deadline). */
void conn_set_deadline(conn_t *c, deadline_kind_t kind);
void conn_clear_deadline(conn_t *c);

/* Stops and restarts reading (e.g. while a deferred HTTP reply is awaited). */
void conn_pause_reading(conn_t *c);
void conn_resume_reading(conn_t *c);

/* Hands the socket to the WebSocket session (after the 101 was queued). */
void conn_upgrade(conn_t *c, ws_session_t *ws, int endpoint);

/* Writes "ip:port" of the peer into buf. */
const char *conn_peer(conn_t *c, char *buf, size_t len);

/* Called by the worker: flush up to `budget` connections of w->dirty, in order; true when
 * none is left. Sweep expired deadlines. */
bool conn_flush_dirty(worker_t *w, unsigned budget);
void conn_sweep_deadlines(worker_t *w);
/* Called by the worker every tick: past its share of limits.max_queued_total_bytes, the
 * connection with the most queued output is handled as a slow consumer. */
void conn_enforce_total(worker_t *w);
/* Called by the worker on shutdown, for every connection. */
void conn_shutdown(conn_t *c);

/* The connection a uv handle belongs to, or NULL (for uv_walk). */
conn_t *conn_from_handle(uv_handle_t *h);

#endif
