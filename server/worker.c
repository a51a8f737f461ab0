/*
 * worker — see include/wshub/worker.h. The loop of one thread: accept, flush once per
 * iteration, sweep deadlines, and drain on stop.
 */
#include "wshub/worker.h"

#include <stdlib.h>
#include <string.h>

#include "wshub/conn.h"
#include "wshub/dialect.h"
#include "wshub/hub.h"
#include "wshub/log.h"
#include "wshub/wtimer.h"

#define TICK_MS 50
#define FLUSH_BUDGET 64 /* connections written per flush (twice per loop turn) */

static void on_connection(uv_stream_t *server, int status)
{
    worker_t *w = container_of((uv_tcp_t *)server, worker_t, listener);
    if (status < 0) {
        log_warn("accept", "worker %d: %s", w->idx, uv_strerror(status));
        return;
    }
    conn_accept(w);
}

static void on_idle(uv_idle_t *h) { (void)h; }

/* Flushes at most FLUSH_BUDGET connections, in the order they got output. A fan-out to
 * 1,000 subscribers is written over several loop turns, and between them the loop reads:
 * publishers get their answers and send the next publishes sooner, other clients are not
 * kept waiting behind one big fan-out, and the frames that arrive meanwhile join the queues
 * of the subscribers not yet written, so each write carries more of them (bench/ S1: 4 to
 * ~14 frames per write). What the budget leaves waits for the next turn, which must then
 * not block in poll (the idle handle). */
static void flush_turn(worker_t *w)
{
    if (conn_flush_dirty(w, FLUSH_BUDGET))
        uv_idle_stop(&w->idle);
    else
        uv_idle_start(&w->idle, on_idle);
}

static void on_prepare(uv_prepare_t *h) { flush_turn(h->data); }
static void on_check(uv_check_t *h) { flush_turn(h->data); }
static void on_tick(uv_timer_t *h)
{
    worker_t *w = h->data;
    conn_sweep_deadlines(w);
    wtimer_run(w);
    atomic_store_explicit(&w->metrics.pool_page_bytes, w->mem.page_bytes, memory_order_relaxed);
    atomic_store_explicit(&w->metrics.pool_object_bytes, w->mem.object_bytes, memory_order_relaxed);
}

static void shutdown_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    conn_t *c = conn_from_handle(h);
    if (c)
        conn_shutdown(c);
}

static void force_close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    conn_t *c = conn_from_handle(h);
    if (c)
        conn_close(c, "shutdown deadline");
}

static void on_drain_deadline(uv_timer_t *h)
{
    worker_t *w = h->data;
    if (w->nconns)
        log_warn("shutdown", "worker %d: deadline passed, closing %zu connections", w->idx, w->nconns);
    uv_walk(&w->loop, force_close_walk, NULL);
}

static void begin_stop(worker_t *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    uv_close((uv_handle_t *)&w->listener, NULL);
    if (w->nconns == 0) {
        uv_stop(&w->loop);
        return;
    }
    uv_walk(&w->loop, shutdown_walk, NULL);
    uv_timer_start(&w->drain, on_drain_deadline, w->cfg->shutdown_timeout_ms, 0);
}

static void on_wakeup(uv_async_t *h)
{
    worker_t *w = h->data;
    hub_drain(w);
    if (atomic_load(&w->stop_requested))
        begin_stop(w);
}

int worker_init(worker_t *w, server_t *srv, int idx, int listen_fd)
{
    memset(w, 0, sizeof *w);
    w->srv = srv;
    w->cfg = srv->cfg;
    w->idx = idx;
    w->listen_fd = listen_fd;
    list_init(&w->dirty);
    mempool_init(&w->mem);
    for (int k = 0; k < DL_COUNT; k++)
        list_init(&w->deadlines[k]);
    w->rbuf = malloc(WORKER_RBUF_SIZE);
    w->tbuf = malloc(WORKER_RBUF_SIZE);
    if (!w->rbuf || !w->tbuf)
        return UV_ENOMEM;
    int r = uv_loop_init(&w->loop);
    if (r)
        return r;
    uv_tcp_init(&w->loop, &w->listener);
    if ((r = uv_tcp_open(&w->listener, listen_fd)) != 0)
        return r;
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_prepare_init(&w->loop, &w->prepare);
    w->prepare.data = w;
    uv_check_init(&w->loop, &w->check);
    w->check.data = w;
    uv_idle_init(&w->loop, &w->idle);
    w->idle.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_init(&w->loop, &w->drain);
    w->drain.data = w;
    if (srv->hub && !(w->hub = hub_local_new(srv->hub, w)))
        return UV_ENOMEM;
    metrics_register(&w->metrics);
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    conn_t *c = conn_from_handle(h);
    if (c)
        conn_close(c, "shutdown");
    else if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void run(void *arg)
{
    worker_t *w = arg;
    /* The listen backlog is shared by the socket; SOMAXCONN is what the kernel allows. */
    int r = uv_listen((uv_stream_t *)&w->listener, SOMAXCONN, on_connection);
    if (r) {
        log_error("listen", "worker %d: %s", w->idx, uv_strerror(r));
        return;
    }
    for (const dialect_t *const *d = dialects; *d; d++) {
        if ((*d)->worker_start && (r = (*d)->worker_start(w)) != 0) {
            log_error("worker", "worker %d: %s: %s", w->idx, (*d)->name, uv_strerror(r));
            return;
        }
    }
    uv_prepare_start(&w->prepare, on_prepare);
    uv_check_start(&w->check, on_check);
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    if (atomic_load(&w->stop_requested))
        begin_stop(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Other workers may still be publishing: they stop posting here before wakeup closes. */
    hub_local_close(w->hub);
    /* Every connection is gone (or the loop was stopped early): close the worker's handles
     * and let their callbacks run, so that uv_loop_close finds nothing open. */
    uv_walk(&w->loop, close_walk, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    for (const dialect_t *const *d = dialects; *d; d++)
        if ((*d)->worker_stop)
            (*d)->worker_stop(w);
}

int worker_start(worker_t *w) { return uv_thread_create(&w->thread, run, w); }

void worker_request_stop(worker_t *w)
{
    atomic_store(&w->stop_requested, true);
    uv_async_send(&w->wakeup);
}

void worker_join(worker_t *w) { uv_thread_join(&w->thread); }

void worker_destroy(worker_t *w)
{
    int r = uv_loop_close(&w->loop);
    if (r)
        log_error("shutdown", "worker %d: loop still busy: %s", w->idx, uv_strerror(r));
    hub_local_free(w->hub);
    wtimer_free_all(w);
    free(w->rbuf);
    free(w->tbuf);
    mempool_destroy(&w->mem);
}
