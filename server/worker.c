/*
 * worker — see include/wshub/worker.h. The loop of one thread: accept, flush once per
 * iteration, sweep deadlines, and drain on stop.
 */
#include "wshub/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sched.h>
#include <unistd.h>

#include "wshub/conn.h"
#include "wshub/dialect.h"
#include "wshub/http.h"
#include "wshub/hub.h"
#include "wshub/log.h"
#include "wshub/wtimer.h"
#include "wshub/tap.h"
#include "wshub/ws.h"

#define TICK_MS 50
#define FLUSH_BUDGET 64 /* connections written per flush (twice per loop turn) */

#define EVICT_MIN_AGE_MS 100 /* a connection this young may still be sending its request */
#define ACCEPT_BATCH 64 /* connections accepted per readable event, then the loop goes on */

static void on_listener(uv_poll_t *h, int status, int events);

static void accept_pause(worker_t *w, const char *why)
{
    if (w->accept_paused)
        return;
    w->accept_paused = true;
    uv_poll_stop(&w->listener);
    metrics_add(&w->net.metrics.accept_pauses, 1);
    atomic_store_explicit(&w->net.metrics.accept_paused, 1, memory_order_relaxed);
    uint64_t now = worker_now(w);
    if (!w->accept_logged || now - w->accept_logged >= 10000) {
        w->accept_logged = now;
        log_warn("accept", "worker %d: accepting paused (%s; %zu connections open, at most %zu): "
                 "resumes as connections close", w->idx, why, atomic_load(&w->srv->nconns), w->conn_hard);
    }
}

/* Called on every tick and whenever one of w's connections is freed. A pause for lack of
 * descriptors or memory is retried on the tick: accept fails again at once if nothing
 * changed, and pauses again, without spinning. */
static void accept_resume(worker_t *w)
{
    if (!w->accept_paused || w->stopping)
        return;
    if (atomic_load(&w->srv->nconns) >= w->conn_hard) {
        /* Silent connections must not lock everyone out (a storm of half-open clients):
         * the oldest one without a request makes room; its close resumes accepting. */
        conn_evict_unready(&w->net, EVICT_MIN_AGE_MS);
        return;
    }
    /* Should the poll not start again, the worker stays paused and the next tick retries. */
    if (uv_poll_start(&w->listener, UV_READABLE, on_listener) != 0)
        return;
    w->accept_paused = false;
    atomic_store_explicit(&w->net.metrics.accept_paused, 0, memory_order_relaxed);
}

/* A connection of w was freed: accepting may resume; a stopping worker ends its loop with
 * its last connection (its own handles are closed after uv_run returns). */
static void on_conn_freed(conn_env_t *env)
{
    worker_t *w = container_of(env, worker_t, net);
    if (w->accept_paused && atomic_load(&w->srv->nconns) + 1 < w->conn_hard)
        accept_resume(w);
    if (w->stopping && env->nconns == 0)
        uv_stop(&w->loop);
}

/* A new connection starts with HTTP; past limits.max_connections it still gets an answer:
 * 503, or /healthz. */
static void take_connection(worker_t *w, int fd, const struct sockaddr *addr)
{
    conn_t *c = conn_accept_fd(&w->net, fd, addr);
    if (!c)
        return;
    bool over = atomic_load(&w->srv->nconns) > w->conn_limit;
    if (http_conn_start(c, over) != 0) {
        conn_close(c, "out of memory (http)");
        return;
    }
    conn_start(c);
}

static void on_listener(uv_poll_t *h, int status, int events)
{
    (void)events;
    worker_t *w = h->data;
    if (status < 0) {
        accept_pause(w, uv_strerror(status));
        return;
    }
    worker_accept(w);
}

void worker_accept(worker_t *w)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (atomic_load(&w->srv->nconns) >= w->conn_hard) {
            accept_pause(w, "at the descriptor budget");
            conn_evict_unready(&w->net, EVICT_MIN_AGE_MS);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(w->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            take_connection(w, fd, (struct sockaddr *)&ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == EPERM)
            continue; /* that one is gone; the next may be fine */
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        metrics_add(&w->net.metrics.accept_errors, 1);
        /* EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connections wait in the backlog. */
        accept_pause(w, strerror(errno));
        return;
    }
}

/* The descriptor budget: RLIMIT_NOFILE (raised to its hard limit by main.c) less what the
 * process holds besides connections (stdio, each worker's epoll, eventfd and listener, the
 * thread pool's, files read on reload). limits.max_connections (or 7/8 of the budget) is
 * where new clients start getting 503: between the two, a connection is still accepted and
 * answered, so that /healthz works at the limit and an over-capacity client hears why. */
static void conn_budget(worker_t *w)
{
    struct rlimit rl;
    size_t nofile = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        nofile = rl.rlim_cur == RLIM_INFINITY ? (size_t)1 << 20 : (size_t)rl.rlim_cur;
    size_t fixed = 16 + 4 * w->srv->nworkers;
    w->conn_hard = nofile > fixed + 32 ? nofile - fixed : 32;
    size_t margin = w->conn_hard / 8 > 16 ? w->conn_hard / 8 : 16;
    size_t soft = w->conn_hard > margin ? w->conn_hard - margin : 1;
    if (w->cfg->max_connections && w->cfg->max_connections < soft)
        soft = w->cfg->max_connections;
    w->conn_limit = soft;
}

/* What the connections need of this worker (conn.h): nothing else of it reaches them. */
static int net_init(worker_t *w)
{
    const config_t *cfg = w->cfg;
    conn_env_t *env = &w->net;
    conn_env_init(env);
    env->loop = &w->loop;
    env->cfg = cfg;
    env->mem = &w->mem;
    env->tls = w->srv->tls;
    env->rbuf = malloc(WORKER_RBUF_SIZE);
    env->tbuf = malloc(WORKER_RBUF_SIZE);
    env->rbuf_size = WORKER_RBUF_SIZE;
    if (!env->rbuf || !env->tbuf)
        return UV_ENOMEM;
    env->open_total = &w->srv->nconns;
    env->id_base = (uint64_t)w->idx;
    env->id_stride = w->srv->nworkers;
    env->share_total = cfg->max_queued_total_bytes / w->srv->nworkers;
    env->timeout_ms[DL_REQUEST] = cfg->http_request_timeout_ms;
    env->timeout_ms[DL_KEEPALIVE] = cfg->http_keepalive_timeout_ms;
    env->timeout_ms[DL_CLOSE] = cfg->ws_close_timeout_ms;
    /* Never longer than the request timeout: a first request is a request. */
    env->timeout_ms[DL_HANDSHAKE] = cfg->http_handshake_timeout_ms < cfg->http_request_timeout_ms
                                        ? cfg->http_handshake_timeout_ms
                                        : cfg->http_request_timeout_ms;
    env->timeout_ms[DL_IDLE] = cfg->ws_ping_interval_ms;
    env->timeout_ms[DL_PONG] = cfg->ws_ping_timeout_ms;
    env->on_freed = on_conn_freed;
    env->data = w->dctx;
    return conn_env_start(env);
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
    if (conn_flush_dirty(&w->net, FLUSH_BUDGET)) {
        uv_idle_stop(&w->idle);
    } else {
        uv_idle_start(&w->idle, on_idle);
        /* Publishes wait for the broker's thread (and Redis), on a core this loop keeps busy:
         * without a yield the scheduler lets them wait a time slice at each hop, fewer
         * publishes complete per pass over the subscribers, and each write carries fewer
         * frames (bench/ S1 through Redis, one core for the node and Redis: 1.0M deliveries/s
         * without, 2.0M with). With a core to spare it returns at once. */
        if (w->srv->broker && broker_busy(w->srv->broker))
            sched_yield();
    }
}

static void on_prepare(uv_prepare_t *h) { flush_turn(h->data); }
static void on_check(uv_check_t *h) { flush_turn(h->data); }
void worker_tick(worker_t *w)
{
    conn_sweep_deadlines(&w->net);
    conn_enforce_total(&w->net);
    wtimer_run(w);
    accept_resume(w);
}

static void on_tick(uv_timer_t *h)
{
    worker_t *w = h->data;
    worker_tick(w);
    atomic_store_explicit(&w->net.metrics.pool_page_bytes, w->mem.page_bytes, memory_order_relaxed);
    atomic_store_explicit(&w->net.metrics.private_queued, w->net.private_queued, memory_order_relaxed);
    atomic_store_explicit(&w->net.metrics.pool_object_bytes, w->mem.object_bytes, memory_order_relaxed);
}

static void shutdown_one(conn_t *c, void *arg)
{
    (void)arg;
    conn_shutdown(c);
}

static void close_one(conn_t *c, void *arg) { conn_close(c, arg); }

static void on_drain_deadline(uv_timer_t *h)
{
    worker_t *w = h->data;
    if (w->net.nconns)
        log_warn("shutdown", "worker %d: deadline passed, closing %zu connections", w->idx, w->net.nconns);
    conn_foreach(&w->net, close_one, "shutdown deadline");
}

static void begin_stop(worker_t *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    uv_close((uv_handle_t *)&w->listener, NULL);
    close(w->listen_fd); /* the poll handle does not own it */
    w->listen_fd = -1;
    if (w->net.nconns == 0) {
        uv_stop(&w->loop);
        return;
    }
    conn_foreach(&w->net, shutdown_one, NULL);
    uv_timer_start(&w->drain, on_drain_deadline, w->cfg->shutdown_timeout_ms, 0);
}

/* ------------------------------------------------------------------ calls from other threads */

typedef struct worker_call {
    list_node_t node;
    void (*fn)(void *);
    void *arg;
} worker_call_t;

int worker_call(worker_t *w, void (*fn)(void *), void *arg)
{
    worker_call_t *c = malloc(sizeof *c);
    if (!c)
        return UV_ENOMEM;
    c->fn = fn;
    c->arg = arg;
    uv_mutex_lock(&w->calls_lock);
    bool refused = w->calls_state == CALLS_DONE;
    if (!refused) {
        list_insert_tail(&w->calls, &c->node);
        if (w->calls_state == CALLS_OPEN)
            uv_async_send(&w->wakeup); /* under the lock: never after the handle is closed */
    }
    uv_mutex_unlock(&w->calls_lock);
    if (refused)
        free(c);
    return refused ? UV_ECANCELED : 0;
}

/* Runs the calls queued so far, in order (on the worker's thread, or once it has ended). */
static void run_calls(worker_t *w)
{
    list_node_t q;
    uv_mutex_lock(&w->calls_lock);
    list_take_all(&q, &w->calls);
    uv_mutex_unlock(&w->calls_lock);
    while (!list_empty(&q)) {
        worker_call_t *c = container_of(q.next, worker_call_t, node);
        list_remove(&c->node);
        c->fn(c->arg);
        free(c);
    }
}

static void set_calls_state(worker_t *w, int state)
{
    uv_mutex_lock(&w->calls_lock);
    w->calls_state = state;
    uv_mutex_unlock(&w->calls_lock);
}

static void on_wakeup(uv_async_t *h)
{
    worker_t *w = h->data;
    run_calls(w);
    hub_drain(w->hub);
    if (atomic_load(&w->stop_requested))
        begin_stop(w);
}

/* The hub's side of this worker: its subscribers are sessions, its mailbox wakes the loop. */
/* The hub's delivery to a session; the mock's traffic tap (while one listens) learns the
 * channel of the fan-out frame here, so that neither the hub nor the session knows of it. */
static int deliver_to_session(void *session, frame_t *f, const hub_msg_t *m)
{
    if (!tap_on())
        return ws_session_send_frame(session, f);
    tap_fanout_begin(m->channel, m->channel_len);
    int r = ws_session_send_frame(session, f);
    tap_fanout_end();
    return r;
}
static void wake_loop(void *arg) { uv_async_send(&((worker_t *)arg)->wakeup); }
static void subscribed_session(void *session, hub_sub_t *sub, int status)
{
    ws_session_subscribed(session, sub, status);
}
static const hub_local_ops_t hub_ops = {
    .deliver = deliver_to_session, .wake = wake_loop, .subscribed = subscribed_session};

/* Each dialect's per-worker state, before the thread runs: a failure is the caller's (the
 * daemon does not start), never a thread that ends alone while its listener keeps getting
 * its share of the connections. What started before a failure is stopped again. */
static int start_dialects(worker_t *w)
{
    for (size_t i = 0; dialects[i]; i++) {
        const dialect_t *d = dialects[i];
        int r = d->worker_start ? d->worker_start(&w->dctx[i]) : 0;
        if (r) {
            log_error("worker", "worker %d: %s: %s", w->idx, d->name, uv_strerror(r));
            while (i-- > 0)
                if (dialects[i]->worker_stop)
                    dialects[i]->worker_stop(&w->dctx[i]);
            return r;
        }
    }
    return 0;
}

int worker_init(worker_t *w, server_t *srv, int idx, int listen_fd)
{
    memset(w, 0, sizeof *w);
    w->srv = srv;
    w->cfg = srv->cfg;
    w->idx = idx;
    w->listen_fd = listen_fd;
    mempool_init(&w->mem);
    /* Each dialect's context, then the server's own (d NULL) right after the last one. */
    for (size_t i = 0, end = 0; i <= DIALECT_MAX; i++) {
        w->dctx[i] = (dialect_ctx_t){.w = w, .d = end ? NULL : dialects[i]};
        end = end || !dialects[i];
    }
    int r = uv_loop_init(&w->loop);
    if (r)
        return r;
    if ((r = net_init(w)) != 0)
        return r;
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return uv_translate_sys_error(errno);
    if ((r = uv_poll_init(&w->loop, &w->listener, listen_fd)) != 0)
        return r;
    w->listener.data = w;
    conn_budget(w);
    list_init(&w->calls);
    uv_mutex_init(&w->calls_lock);
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
    if (srv->hub && !(w->hub = hub_local_new(srv->hub, idx, &hub_ops, w, &w->mem, &w->net.metrics)))
        return UV_ENOMEM;
    metrics_register(&w->net.metrics);
    return start_dialects(w);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void run(void *arg)
{
    worker_t *w = arg;
    /* main.c listened with SOMAXCONN, the backlog the kernel allows. Should the poll not
     * start, accepting stays paused and the tick retries (accept_resume). */
    int r = uv_poll_start(&w->listener, UV_READABLE, on_listener);
    if (r)
        accept_pause(w, uv_strerror(r));
    uv_prepare_start(&w->prepare, on_prepare);
    uv_check_start(&w->check, on_check);
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    if (atomic_load(&w->stop_requested))
        begin_stop(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Other workers may still be publishing: they stop posting here before wakeup closes. */
    hub_local_close(w->hub);
    set_calls_state(w, CALLS_QUEUED); /* kept for worker_destroy, no wake-up any more */
    /* Every connection is gone (or the loop was stopped early): close the worker's handles
     * and let their callbacks run, so that uv_loop_close finds nothing open. */
    conn_foreach(&w->net, close_one, "shutdown");
    conn_flush_dirty(&w->net, 0); /* frees them */
    uv_walk(&w->loop, close_walk, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    for (size_t i = 0; dialects[i]; i++)
        if (dialects[i]->worker_stop)
            dialects[i]->worker_stop(&w->dctx[i]);
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
    /* Calls that came after the loop ended (a broker refusing what was still in flight): their
     * connections are gone, so they only free what they carried. */
    run_calls(w);
    set_calls_state(w, CALLS_DONE);
    run_calls(w);
    uv_mutex_destroy(&w->calls_lock);
    int r = uv_loop_close(&w->loop);
    if (r)
        log_error("shutdown", "worker %d: loop still busy: %s", w->idx, uv_strerror(r));
    hub_local_free(w->hub);
    wtimer_free_all(w);
    conn_env_free(&w->net);
    free(w->net.rbuf);
    free(w->net.tbuf);
    mempool_destroy(&w->mem);
}
