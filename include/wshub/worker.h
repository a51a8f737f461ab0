/*
 * worker — one thread, one uv_loop, one SO_REUSEPORT listener (DESIGN.md decision 1).
 * A connection is accepted, lives and dies on one worker; only uv_async_send reaches
 * into another worker's loop.
 *
 * Owns: the loop and its handles, the listener and the descriptor budget, the connection
 * environment (conn_env_t: read buffers, the list of connections with output to flush —
 * flushed once per loop iteration, DESIGN.md decision 4 — and the deadline lists), the
 * hub's mailbox, each dialect's context, the memory pool; its metrics block is net.metrics.
 * The top of the layers: it calls conn, http, the hub and (as the hub's deliver callback)
 * ws_session; none of them calls it.
 */
#ifndef WSHUB_WORKER_H
#define WSHUB_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "wshub/conn.h"
#include "wshub/dialect.h"
#include "wshub/list.h"
#include "wshub/mempool.h"
#include "wshub/metrics.h"
#include "wshub/server.h"

typedef struct hub_local hub_local_t;
typedef struct worker worker_t;
typedef struct wtimer wtimer_t;

#define WORKER_RBUF_SIZE (64 * 1024)

/* dialect.h's context: what one dialect may use of one worker. */
struct dialect_ctx {
    worker_t *w;
    const dialect_t *d; /* NULL: the server's own routes */
    void *state;        /* dialect_set_state */
};

struct worker {
    uv_loop_t loop;
    uv_thread_t thread;
    int idx;
    int listen_fd;        /* bound and listening by main.c before the thread starts */
    uv_poll_t listener;   /* readable = connections to accept; stopped while paused */
    bool accept_paused;   /* near the descriptor budget, or accept() ran out of something */
    uint64_t accept_logged; /* uv_now() of the last "accept paused" line (one per 10 s) */
    size_t conn_limit;    /* limits.max_connections, or derived from RLIMIT_NOFILE */
    size_t conn_hard;     /* descriptors connections may use at most: accept pauses there */
    uv_async_t wakeup;    /* hub mailbox deliveries from other workers; stop requests */
    uv_prepare_t prepare; /* flushes output queued by timers, before the loop blocks */
    uv_check_t check;     /* flushes output queued by I/O callbacks, once per iteration */
    uv_idle_t idle;       /* keeps poll from blocking while a flush left connections dirty */
    uv_timer_t tick;      /* sweeps the deadline lists */
    uv_timer_t drain;     /* the shutdown deadline */
    server_t *srv;
    const config_t *cfg;
    conn_env_t net;       /* what this worker's connections share: buffers, lists, limits */
    hub_local_t *hub;     /* this worker's channels and mailbox */
    dialect_ctx_t dctx[DIALECT_MAX + 1]; /* each dialect's context, in dialects[] order, then the
                                            server's own (dialect_ctx_pick) */
    wtimer_t **timers;    /* wtimer.h heap */
    uint32_t ntimers, timers_cap;
    uv_mutex_t calls_lock; /* calls, calls_state */
    list_node_t calls;    /* worker_call: functions to run on this loop, from other threads */
    int calls_state;      /* CALLS_OPEN, then CALLS_QUEUED once the loop ended, CALLS_DONE */
    atomic_bool stop_requested;
    bool stopping;
    mempool_t mem;        /* long-lived per-connection objects (mempool.h) */
};

/* Prepares a worker (loop, handles, each dialect's per-worker state) around an
 * already-listening socket. */
int worker_init(worker_t *w, server_t *srv, int idx, int listen_fd);
/* Starts the worker's thread. */
int worker_start(worker_t *w);
/* From any thread: asks the worker to drain and stop (close 1001 to every client). */
void worker_request_stop(worker_t *w);
/* Waits for the worker's thread to end (it ends once its loop has drained). */
void worker_join(worker_t *w);
/* Closes the loop and frees the worker's state (its hub mailbox among them): only once every
 * worker has been joined, since a running worker may still post to another's mailbox (issue 11). */
void worker_destroy(worker_t *w);

/* Accepts what w's listener has pending (at most a batch), or pauses accepting; and the
 * periodic work (deadlines, total output bound, wtimers, resuming a paused accept). The
 * loop calls them; the fuzz harness (tests/fuzz/harness.c) too, around a loop of its own. */
void worker_accept(worker_t *w);
void worker_tick(worker_t *w);

enum { CALLS_OPEN = 0, CALLS_QUEUED, CALLS_DONE };
/* From any thread: runs fn(arg) on w's loop, soon and in order; after w's loop has ended, in
 * worker_destroy (w's connections are gone by then). UV_ECANCELED once w is destroyed. */
int worker_call(worker_t *w, void (*fn)(void *), void *arg);

/* Time of the current loop iteration, in ms (uv_now). */
static inline uint64_t worker_now(worker_t *w) { return uv_now(&w->loop); }

#endif
