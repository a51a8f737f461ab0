/*
 * conn — one client connection: the TCP handle, optional TLS, the output queue, the
 * deadline, and a table of callbacks of whichever protocol owns the bytes now (HTTP, then
 * maybe the WebSocket session after an upgrade), like Redis's connection types or h2o's
 * socket callbacks.
 *
 * Owns: socket I/O. A connection is no libuv handle: the loop polls one epoll set per
 * worker (a uv_poll_t on its descriptor) and conn.c dispatches that set's events itself. A
 * uv_tcp_t is 248 bytes and even libuv's smallest handle, uv_poll_t, is 160, against 144
 * for all of conn_t now (issue 18: ≤ 0.6 KB per idle API B connection); conn.c already did
 * its own writes (send/sendmsg) and needs none of the stream's buffering. Reads go into the loop's shared buffer and are handed to the protocol's
 * on_data synchronously (no per-connection read buffer, DESIGN.md decision 5). Output is a
 * queue of frame references (frame.h): private byte buffers for replies, shared prepared
 * frames for fan-out; it is flushed once per loop iteration with send/sendmsg of every
 * queued buffer (decision 4); what the socket does not take waits for it to be writable.
 * Queued bytes are bounded (limits.max_queued_bytes, decision 6).
 * Never: parses HTTP or WebSocket, knows which protocol or API it carries (it calls the
 * protocol's table), or knows the worker: what it needs of its loop's owner is in conn_env_t.
 *
 * Lifetime: conn_close() marks the connection closing and closes its descriptor; the memory
 * is freed by the next conn_flush_dirty (the owner calls it before and after each poll
 * phase), after the protocol's on_closed ran. Any function here may be
 * called on a closing connection and then does nothing.
 */
#ifndef WSHUB_CONN_H
#define WSHUB_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wshub/config.h"
#include "wshub/frame.h"
#include "wshub/list.h"
#include "wshub/mempool.h"
#include "wshub/metrics.h"

typedef struct conn conn_t;
typedef struct tls_conn tls_conn_t;
typedef struct tls_server tls_server_t;

/* Deadline lists. Every connection in one list waits with the same timeout (conn_env_t's
 * timeout_ms), so a list is ordered by deadline just by appending: the sweep only ever
 * looks at the heads. The protocols give the kinds their meaning; conn handles DL_CLOSE
 * itself and hands every other expiry to the protocol's on_timeout. */
typedef enum {
    DL_NONE = 0,
    DL_REQUEST,   /* an HTTP request has started and must complete (http.request_timeout_ms) */
    DL_KEEPALIVE, /* an idle keep-alive HTTP connection (http.keepalive_timeout_ms) */
    DL_CLOSE,     /* a close handshake or a FIN waiting for the peer (websocket.close_timeout_ms) */
    DL_HANDSHAKE, /* accepted, the first request not complete yet (http.handshake_timeout_ms) */
    DL_IDLE,      /* an open WebSocket: silent this long gets a ping (websocket.ping_interval_ms) */
    DL_PONG,      /* that ping is out: silent this long is closed (websocket.ping_timeout_ms) */
    DL_COUNT
} deadline_kind_t;

/* What the protocol owning a connection is told. Only on_data, on_eof and on_closed are
 * required. */
typedef struct conn_proto {
    /* Bytes from the peer (decrypted), valid during the call only. */
    void (*on_data)(conn_t *c, const uint8_t *data, size_t len);
    /* The peer sent FIN. */
    void (*on_eof)(conn_t *c);
    /* A deadline of this kind passed (never DL_CLOSE: conn closes). NULL = close. */
    void (*on_timeout)(conn_t *c, deadline_kind_t kind);
    /* The output queue is empty (e.g. the next piece of a large answer). NULL = nothing. */
    void (*on_drained)(conn_t *c);
    /* Output the protocol holds outside the queue, counted against the total bound. */
    size_t (*held)(const conn_t *c);
    /* Past limits.max_queued_bytes on a plain-TCP connection whose queued shared frames
     * were just dropped (they are whole WebSocket frames): the protocol ends the connection
     * its own way. NULL = the connection is closed. */
    void (*on_slow)(conn_t *c);
    /* The daemon is stopping. NULL = the connection is closed. */
    void (*on_shutdown)(conn_t *c);
    /* The connection is gone, or handed to another protocol: free the protocol's state. */
    void (*on_closed)(conn_t *c);
    /* Its output is flushed before others' in a loop turn (an HTTP publisher learns its
     * publish was taken before the fan-out's writes: bench/ S1). */
    bool flush_first;
} conn_proto_t;

/* What the owner of a loop (a worker) gives the connections it accepts; they touch nothing
 * else of it. Loop thread only. */
typedef struct conn_env {
    uv_loop_t *loop;
    const config_t *cfg;   /* the startup configuration: limits, timeouts */
    mempool_t *mem;
    tls_server_t *tls;     /* NULL for plain TCP */
    uint8_t *rbuf, *tbuf;  /* the read buffer every connection shares; decrypted TLS bytes */
    size_t rbuf_size;
    atomic_size_t *open_total; /* TCP connections open in the whole process */
    uint64_t id_base, id_stride; /* connection ids: id_base + n * id_stride (unique per process) */
    uint64_t timeout_ms[DL_COUNT];
    size_t share_total;    /* this loop's share of limits.max_queued_total_bytes */
    /* A connection was freed (accepting may resume; a stopping owner may end its loop). */
    void (*on_freed)(struct conn_env *env);
    void *data;            /* the owner's, for the protocols (the worker's dialect contexts) */
    /* conn.c's own state: */
    int epfd;              /* the connections' epoll set, itself polled by the loop (below) */
    uv_poll_t events;      /* readiness of epfd: conn.c reads its events and dispatches */
    conn_t **all;          /* every connection not yet freed (conn_foreach), nall of cap */
    uint32_t nall, cap;
    list_node_t closing;   /* closed, to be freed by conn_flush_dirty (after the I/O phase) */
    list_node_t dirty;     /* connections with output to flush */
    list_node_t deadlines[DL_COUNT];
    uint64_t conn_seq;
    size_t private_queued; /* reply bytes queued on this loop's connections */
    size_t nconns;         /* connections not yet freed */
    /* The loop's metrics block, here rather than behind a pointer: the fan-out path counts
     * into it per frame (one load less per delivery, bench/callgrind.sh). */
    metrics_t metrics;
} conn_env_t;

/* Sets up env's lists; the owner fills in the rest, then calls conn_env_start. */
void conn_env_init(conn_env_t *env);
/* Creates the epoll set and starts polling it on env->loop. Returns 0 or a libuv error. */
int conn_env_start(conn_env_t *env);
/* After the loop ended and every connection was freed: the epoll set and the registry
 * (the poll handle is closed with the loop's other handles). */
void conn_env_free(conn_env_t *env);
/* Calls fn for every connection not yet freed (closing ones included: check CONN_F_CLOSING).
 * fn may close connections; none is freed during the walk. */
void conn_foreach(conn_env_t *env, void (*fn)(conn_t *c, void *arg), void *arg);

#define CONN_F_CLOSING 0x01  /* conn_close() ran: no more I/O, freed in the close callback */
#define CONN_F_WRITING 0x02  /* the socket was full: waiting for it to be writable */
#define CONN_F_DRAIN 0x04    /* close after the queue drains: FIN, then wait for the peer's EOF */
#define CONN_F_FIN_SENT 0x08 /* shutdown(SHUT_WR) done */
#define CONN_F_OVERFLOW 0x10 /* queued bytes passed the bound; handled at the next flush */
#define CONN_F_EOF 0x20      /* the peer sent FIN */
#define CONN_F_RST 0x40      /* with CONN_F_DRAIN: end with a TCP RST instead of a FIN */
#define CONN_F_SLOW 0x80     /* declared a slow consumer: counted and handled once */
#define CONN_F_IPCOUNTED 0x100 /* counted in iplimit: released when freed */
#define CONN_F_PINGED 0x200  /* a liveness ping is out (DL_PONG): any input clears it */
#define CONN_F_FIRST 0x400   /* the protocol's flush_first, copied here: mark_dirty reads flags */
#define CONN_F_READING 0x800 /* the protocol wants input (conn_start .. conn_pause_reading) */

typedef struct outq_entry {
    frame_t *f;     /* one reference held by this entry */
    uint32_t off;   /* bytes of f already written */
    uint32_t shared; /* a prepared fan-out frame (whole WebSocket frames: may be dropped) */
} outq_entry_t;

struct conn {
    conn_env_t *env;
    uint64_t id;         /* unique in the process, for logs */
    const conn_proto_t *proto; /* who gets the bytes now; NULL until conn_set_proto */
    void *pdata;         /* that protocol's state for this connection */
    tls_conn_t *tls;     /* NULL for plain TCP */
    outq_entry_t *q;     /* ring of queued output, qcap entries (a power of two) */
    size_t queued;       /* bytes queued and not yet written, in-flight included */
    uint64_t deadline;   /* uv_now() ms when dl_kind expires */
    list_node_t dirty_node;
    list_node_t dl_node;
    uint32_t qhead, qcount, qcap;
    uint8_t peer[16];    /* the peer's address at accept (IPv4 mapped into IPv6): logs and
                            per-IP limits never ask the socket, which may be reset by then */
    int fd;              /* the socket; closed by conn_close */
    uint32_t slot;       /* index in env->all */
    uint16_t flags;      /* CONN_F_* */
    uint8_t polling;     /* EPOLLIN | EPOLLOUT as registered in env->epfd (0: not in it) */
    uint8_t endpoint;    /* endpoint_t, for metrics and logs: EP_HTTP until an upgrade */
    uint8_t dl_kind;     /* deadline_kind_t of the list dl_node is in */
    uint8_t peer_port_hi, peer_port_lo; /* the peer's port, recorded at accept */
};

/* Sets on a listening socket what every connection accepted from it inherits (Linux copies a
 * listener's TCP_NODELAY and keepalive settings to the sockets accept returns): no socket
 * option call per connection. */
void conn_listener_options(int fd, const config_t *cfg);

struct sockaddr;
/* Takes over an accepted socket (non-blocking); addr is its peer. Returns the connection,
 * not reading yet, for the owner to give a protocol (conn_set_proto) and start; or NULL
 * when it was refused (per-IP limits: reset) or could not be set up (closed). */
conn_t *conn_accept_fd(conn_env_t *env, int fd, const struct sockaddr *addr);
/* Starts reading (after conn_set_proto). */
int conn_start(conn_t *c);

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

/* At the descriptor budget: resets the loop's oldest connection that has not completed a
 * first request, if it has waited at least min_age_ms. Returns whether one was. */
bool conn_evict_unready(conn_env_t *env, uint64_t min_age_ms);

/* Puts the connection in a deadline list (replacing any previous deadline). */
void conn_set_deadline(conn_t *c, deadline_kind_t kind);
void conn_clear_deadline(conn_t *c);

/* Stops and restarts reading (e.g. while a deferred HTTP reply is awaited). */
void conn_pause_reading(conn_t *c);
void conn_resume_reading(conn_t *c);

/* Hands the connection to a protocol: the previous one's on_closed runs first (the
 * ownership handover of STYLE.md §1). endpoint: the metrics label of the new protocol;
 * other than EP_HTTP counts a session opened (and closed when the connection ends). */
void conn_set_proto(conn_t *c, const conn_proto_t *proto, void *pdata, int endpoint);
/* Hands bytes to the connection's current protocol (after a handover, the rest of a read). */
void conn_feed(conn_t *c, const uint8_t *data, size_t len);

/* Writes "ip:port" of the peer into buf. */
const char *conn_peer(conn_t *c, char *buf, size_t len);

/* Called by the owner: flush up to `budget` connections of env->dirty, in order; true when
 * none is left. Sweep expired deadlines. */
bool conn_flush_dirty(conn_env_t *env, unsigned budget);
void conn_sweep_deadlines(conn_env_t *env);
/* Called by the owner every tick: past its share of limits.max_queued_total_bytes, the
 * connection with the most queued output is handled as a slow consumer. */
void conn_enforce_total(conn_env_t *env);
/* Called by the owner on shutdown, for every connection. */
void conn_shutdown(conn_t *c);


#endif
