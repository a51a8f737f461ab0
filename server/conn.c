/*
 * conn — see include/wshub/conn.h. Socket I/O, the output queue and its bound, TLS
 * plumbing, deadlines and the close sequence of one connection.
 */
#include "wshub/conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include "wshub/iplimit.h"
#include "wshub/log.h"
#include "wshub/tls.h"
#include "wshub/util.h"

/* At most this many queue entries go into one write (IOV_MAX is 1024 on Linux). */
#define MAX_IOV 256
/* A private output buffer is allocated with at least this many bytes, so that small
 * replies and wslay's header/payload callbacks coalesce into one buffer. Small on purpose:
 * 10,000 clients subscribing at once each hold one until the loop turn's flush, and with
 * 4 KiB the allocator kept that 40 MB high-water mark as resident memory (bench/ S3). */
#define PRIVATE_CHUNK 128

/* Events taken from the epoll set per dispatch; more wait for the next loop turn. */
#define MAX_EVENTS 256
/* Reads of one connection per readiness, as libuv's streams do: a client that keeps the
 * buffer full does not hold the loop. */
#define MAX_READS 32

/* An idle connection is mostly this struct (issue 18): keep it in its 144-byte pool class. */
_Static_assert(sizeof(conn_t) <= 144, "conn_t outgrew its pool class");

static void on_readable(conn_t *c);
static void on_writable(conn_t *c);
static void flush(conn_t *c);
static void free_conn(conn_t *c);

const char *conn_peer(conn_t *c, char *buf, size_t len)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = c->peer_port_hi << 8 | c->peer_port_lo;
    bool v4 = memcmp(c->peer, v4mapped, 12) == 0;
    inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? c->peer + 12 : c->peer, ip, sizeof ip);
    snprintf(buf, len, v4 ? "%s:%d" : "[%s]:%d", ip, port);
    return buf;
}

static void log_conn(conn_t *c, log_level_t level, const char *event, const char *reason)
{
    if (!log_enabled(level))
        return;
    char peer[64];
    log_event(level, event, c->id, conn_peer(c, peer, sizeof peer), endpoint_names[c->endpoint],
              "%s", reason ? reason : "");
}

/* ------------------------------------------------------------------ accept */

static void record_peer(conn_t *c, const struct sockaddr *addr)
{
    int port = 0;
    memset(c->peer, 0, sizeof c->peer);
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        c->peer[10] = c->peer[11] = 0xff;
        memcpy(c->peer + 12, &a->sin_addr, 4);
        port = ntohs(a->sin_port);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        memcpy(c->peer, &a->sin6_addr, 16);
        port = ntohs(a->sin6_port);
    }
    c->peer_port_hi = (uint8_t)(port >> 8);
    c->peer_port_lo = (uint8_t)port;
}

/* Per-IP limits at accept: refused connections are reset at once (cheap for us, clear for
 * the peer), counted by reason and logged at most once a second per loop. */
static bool ip_admit(conn_t *c)
{
    const config_t *cfg = c->env->cfg;
    if (cfg->limits_exempt_loopback && iplimit_is_loopback(c->peer))
        return true;
    iplimit_result_t r = iplimit_acquire(c->peer, uv_hrtime() / 1000000, cfg);
    if (r == IPLIMIT_OK)
        c->flags |= CONN_F_IPCOUNTED;
    if (r == IPLIMIT_OK || r == IPLIMIT_UNCOUNTED)
        return true;
    hs_reason_t why = r == IPLIMIT_TOO_MANY ? HS_PER_IP : HS_ACCEPT_RATE;
    metrics_add(&c->env->metrics.handshake_failures[why], 1);
    conn_abort(c, r == IPLIMIT_TOO_MANY ? "over limits.max_connections_per_ip" : "over limits.accept_rate_per_ip");
    return false;
}

void conn_env_init(conn_env_t *env)
{
    env->epfd = -1;
    list_init(&env->closing);
    list_init(&env->dirty);
    for (int k = 0; k < DL_COUNT; k++)
        list_init(&env->deadlines[k]);
}

/* ------------------------------------------------------------------ the epoll set */

/* The loop found the set readable: dispatches what it holds. A connection closed by an
 * earlier event of the batch is skipped (freed only after the I/O phase, so its memory is
 * still there); its descriptor left the set when conn_close closed it. */
static void on_events(uv_poll_t *h, int status, int events)
{
    (void)events;
    conn_env_t *env = h->data;
    if (status < 0) {
        /* libuv stopped polling the set (an error on its descriptor): without it this loop
         * would never hear of its connections again. Start over; say so if that fails too. */
        int r = uv_poll_start(h, UV_READABLE, on_events);
        log_error("conn", "polling the connections' epoll set failed (%s)%s", uv_strerror(status),
                  r ? ": this worker's connections stall" : "; restarted");
        if (r)
            return;
    }
    struct epoll_event ev[MAX_EVENTS];
    int n;
    do
        n = epoll_wait(env->epfd, ev, MAX_EVENTS, 0);
    while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++) {
        conn_t *c = ev[i].data.ptr;
        uint32_t e = ev[i].events;
        if (e & (EPOLLERR | EPOLLHUP)) /* what a read or a write will report */
            e |= c->polling;
        if ((e & EPOLLOUT) && (c->flags & (CONN_F_WRITING | CONN_F_CLOSING)) == CONN_F_WRITING)
            on_writable(c);
        if ((e & EPOLLIN) && !(c->flags & CONN_F_CLOSING))
            on_readable(c);
    }
}

int conn_env_start(conn_env_t *env)
{
    env->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (env->epfd < 0)
        return -errno;
    int r = uv_poll_init(env->loop, &env->events, env->epfd);
    if (r)
        return r;
    env->events.data = env;
    return uv_poll_start(&env->events, UV_READABLE, on_events);
}

void conn_env_free(conn_env_t *env)
{
    if (env->epfd >= 0)
        close(env->epfd);
    env->epfd = -1;
    free(env->all);
    env->all = NULL;
    env->nall = env->cap = 0;
}

void conn_foreach(conn_env_t *env, void (*fn)(conn_t *c, void *arg), void *arg)
{
    for (uint32_t i = 0; i < env->nall; i++)
        fn(env->all[i], arg);
}

static bool registry_add(conn_env_t *env, conn_t *c)
{
    if (env->nall == env->cap && !util_grow((void **)&env->all, &env->cap, sizeof *env->all, 1024))
        return false;
    c->slot = env->nall;
    env->all[env->nall++] = c;
    return true;
}

static void registry_remove(conn_env_t *env, conn_t *c)
{
    conn_t *last = env->all[--env->nall];
    env->all[c->slot] = last;
    last->slot = c->slot;
}

/* Registers in the epoll set what the connection waits for now, when that changed: input
 * while the protocol reads and the peer has not ended, the socket's room while output
 * waits for it. Returns 0, or closes the connection and returns the error. */
static int set_interest(conn_t *c)
{
    if (c->flags & CONN_F_CLOSING)
        return 0;
    uint32_t want = ((c->flags & (CONN_F_READING | CONN_F_EOF)) == CONN_F_READING ? EPOLLIN : 0) |
                    ((c->flags & CONN_F_WRITING) ? EPOLLOUT : 0);
    if (want == c->polling)
        return 0;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    int op = !want ? EPOLL_CTL_DEL : c->polling ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(c->env->epfd, op, c->fd, &ev) != 0) {
        int r = -errno;
        conn_close(c, uv_strerror(r));
        return r;
    }
    c->polling = (uint8_t)want;
    return 0;
}

conn_t *conn_accept_fd(conn_env_t *env, int fd, const struct sockaddr *addr)
{
    conn_t *c = mempool_alloc(env->mem, sizeof *c);
    if (!c || !registry_add(env, c)) {
        mempool_free(env->mem, c, sizeof *c);
        close(fd); /* out of memory: the peer sees a reset rather than a hang */
        log_error("accept", "out of memory: connection dropped");
        return NULL;
    }
    c->fd = fd;
    c->env = env;
    c->id = ++env->conn_seq * env->id_stride + env->id_base;
    c->endpoint = EP_HTTP;
    list_init(&c->dirty_node);
    list_init(&c->dl_node);
    record_peer(c, addr);
    env->nconns++;
    atomic_fetch_add(env->open_total, 1);
    metrics_add(&env->metrics.tcp_accepted, 1);

    log_conn(c, LOG_DEBUG, "conn_open", NULL);
    if (!ip_admit(c))
        return NULL;
    if (env->tls && !(c->tls = tls_conn_new(env->tls))) {
        conn_close(c, "out of memory (tls)");
        return NULL;
    }
    return c;
}

void conn_listener_options(int fd, const config_t *cfg)
{
    /* What uv_tcp_nodelay and uv_tcp_keepalive (libuv 1.44: a probe every second, 10 of
     * them) did on every accepted socket. */
    int one = 1, idle = cfg->tcp_keepalive_s, intvl = 1, cnt = 10;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (idle && setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) == 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    }
}

int conn_start(conn_t *c)
{
    c->flags |= CONN_F_READING;
    return set_interest(c);
}

/* ------------------------------------------------------------------ output queue */

/* HTTP connections flush first: a publisher learns its publish was taken before the
 * fan-out's writes to every subscriber, so it can send the next one meanwhile and the next
 * loop turn carries more frames per subscriber write (bench/ S1). */
static void mark_dirty(conn_t *c)
{
    if (list_linked(&c->dirty_node) || (c->flags & CONN_F_CLOSING))
        return;
    if (c->flags & CONN_F_FIRST)
        list_insert_head(&c->env->dirty, &c->dirty_node);
    else
        list_insert_tail(&c->env->dirty, &c->dirty_node);
}

static outq_entry_t *q_at(conn_t *c, uint32_t i) { return &c->q[(c->qhead + i) & (c->qcap - 1)]; }

static int q_reserve(conn_t *c)
{
    if (c->qcount < c->qcap)
        return 0;
    uint32_t ncap = c->qcap ? c->qcap * 2 : 4;
    outq_entry_t *nq = mempool_alloc(c->env->mem, ncap * sizeof *nq);
    if (!nq)
        return UV_ENOMEM;
    for (uint32_t i = 0; i < c->qcount; i++)
        nq[i] = *q_at(c, i);
    mempool_free(c->env->mem, c->q, c->qcap * sizeof *nq);
    c->q = nq;
    c->qhead = 0;
    c->qcap = ncap;
    return 0;
}

static int q_push(conn_t *c, frame_t *f, int shared)
{
    int r = q_reserve(c);
    if (r)
        return r;
    outq_entry_t *e = q_at(c, c->qcount++);
    e->f = f;
    e->off = 0;
    e->shared = (uint32_t)shared;
    return 0;
}

/* Inlined: it is on the fan-out path, once per delivery. */
static inline __attribute__((always_inline)) void q_pop(conn_t *c)
{
    outq_entry_t *e = q_at(c, 0);
    c->queued -= e->f->len - e->off;
    if (!e->shared)
        c->env->private_queued -= e->f->len - e->off;
    frame_release(&e->f);
    c->qhead = (c->qhead + 1) & (c->qcap - 1);
    c->qcount--;
}

/* An empty queue gives its ring back: an idle connection holds none. */
static void q_release_empty(conn_t *c)
{
    if (c->qcount || !c->q)
        return;
    mempool_free(c->env->mem, c->q, c->qcap * sizeof *c->q);
    c->q = NULL;
    c->qcap = c->qhead = 0;
}

static void q_clear(conn_t *c)
{
    while (c->qcount)
        q_pop(c);
    q_release_empty(c);
}

static void account_out(conn_t *c, size_t len)
{
    c->queued += len;
    metrics_add(&c->env->metrics.bytes_out[c->endpoint], len);
    if (c->queued > c->env->cfg->max_queued_bytes && !(c->flags & (CONN_F_OVERFLOW | CONN_F_DRAIN | CONN_F_SLOW))) {
        /* Decided here, handled at the next flush: the caller may be inside wslay. */
        c->flags |= CONN_F_OVERFLOW;
    }
    mark_dirty(c);
}

/* Appends bytes to the queue's private tail buffer, allocating one if needed. */
static int queue_bytes(conn_t *c, const uint8_t *data, size_t len)
{
    while (len) {
        outq_entry_t *tail = c->qcount ? q_at(c, c->qcount - 1) : NULL;
        int appendable = tail && !tail->shared && frame_is_private(tail->f) &&
                         tail->f->len < tail->f->cap;
        if (!appendable) {
            frame_t *f = frame_new(len > PRIVATE_CHUNK ? len : PRIVATE_CHUNK);
            if (!f)
                return UV_ENOMEM;
            if (q_push(c, f, 0)) {
                frame_release(&f);
                return UV_ENOMEM;
            }
            tail = q_at(c, c->qcount - 1);
        }
        size_t n = frame_append(tail->f, data, len);
        c->env->private_queued += n; /* bounded in conn_enforce_total */
        account_out(c, n);
        data += n;
        len -= n;
    }
    return 0;
}

static int tls_out(void *arg, const uint8_t *data, size_t len)
{
    return queue_bytes(arg, data, len);
}

/* A send that failed may have queued part of its bytes (half a frame, a broken TLS record):
 * the stream is corrupt, so the connection is closed here and no caller can carry on. */
static int send_failed(conn_t *c, int r)
{
    conn_close(c, r == UV_EPROTO ? "TLS encryption failed" : "out of memory (output)");
    return r;
}

int conn_send_copy(conn_t *c, const void *data, size_t len)
{
    if (c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))
        return UV_ECANCELED;
    int r = c->tls ? (tls_conn_write(c->tls, data, len, tls_out, c) ? UV_EPROTO : 0) : queue_bytes(c, data, len);
    return r ? send_failed(c, r) : 0;
}

int conn_send_frame(conn_t *c, frame_t *f)
{
    if (c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))
        return UV_ECANCELED;
    if (c->tls) /* TLS encrypts per connection: the shared bytes are copied through it. */
        return conn_send_copy(c, f->data, f->len);
    int r = q_push(c, frame_ref(f), 1);
    if (r) {
        frame_release(&f);
        return send_failed(c, r);
    }
    account_out(c, f->len);
    return 0;
}

/* ------------------------------------------------------------------ writing */

/* Everything is written and a close was asked for: send FIN and wait for the peer's. */
static void send_fin(conn_t *c)
{
    if (c->flags & CONN_F_FIN_SENT)
        return;
    if (c->flags & CONN_F_RST) {
        conn_abort(c, "aborted");
        return;
    }
    c->flags |= CONN_F_FIN_SENT;
    if (c->flags & CONN_F_EOF) {
        conn_close(c, NULL);
        return;
    }
    if (shutdown(c->fd, SHUT_WR) != 0) {
        /* ENOTCONN, EPIPE, ECONNRESET: the peer closed first, an ordinary end (issue 11). */
        int e = errno;
        conn_close(c, e == ENOTCONN || e == EPIPE || e == ECONNRESET ? NULL : strerror(e));
    }
}

/* A fan-out frame has reached the kernel for this subscriber: counts the time since its
 * publish in wshub_fanout_delivery_seconds. *now is read once per write. */
static void observe_delivery(conn_t *c, const outq_entry_t *e, uint64_t *now)
{
    if (!e->shared || !e->f->born_ns)
        return;
    if (!*now)
        *now = uv_hrtime();
    metrics_observe_fanout(&c->env->metrics, *now > e->f->born_ns ? (*now - e->f->born_ns) / 1000 : 0, 1);
}

/* Drops queued shared frames that no write has touched: they are whole WebSocket frames,
 * so the stream stays well-formed. Private bytes stay (they may hold half of a frame). */
static void drop_pending_shared(conn_t *c)
{
    uint32_t keep = 0;
    for (uint32_t i = 0; i < c->qcount; i++) {
        outq_entry_t *e = q_at(c, i);
        if (e->shared && e->off == 0) {
            c->queued -= e->f->len;
            frame_release(&e->f);
            continue;
        }
        *q_at(c, keep++) = *e;
    }
    c->qcount = keep;
}

static void handle_overflow(conn_t *c)
{
    c->flags |= CONN_F_SLOW; /* the close frame queued below must not count it again */
    metrics_add(&c->env->metrics.slow_consumer_closes, 1);
    log_conn(c, LOG_WARN, "slow_consumer", "queued output passed limits.max_queued_bytes");
    if (c->proto && c->proto->on_slow && !c->tls) {
        drop_pending_shared(c);
        c->proto->on_slow(c);
    } else {
        /* TLS records cannot be dropped from the middle of the stream; HTTP has no close frame. */
        conn_close(c, "slow consumer");
    }
}

/*
 * send/sendmsg rather than write/writev: on a socket they skip the VFS layer (vfs_write,
 * fdget_pos: ~6% of the server's CPU in a fan-out profile, where nearly everything else is
 * TCP). uv_buf_t is struct iovec on Unix.
 * Returns the bytes written (0 when the socket is full) or a negative libuv error.
 */
_Static_assert(sizeof(uv_buf_t) == sizeof(struct iovec) && offsetof(uv_buf_t, base) == offsetof(struct iovec, iov_base) &&
                   offsetof(uv_buf_t, len) == offsetof(struct iovec, iov_len),
               "uv_buf_t is not struct iovec");

static ssize_t try_send(conn_t *c, uv_buf_t *bufs, uint32_t n)
{
    int fd = c->fd;
    ssize_t r;
    do {
        if (n == 1) {
            r = send(fd, bufs[0].base, bufs[0].len, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            struct msghdr mh = {.msg_iov = (struct iovec *)bufs, .msg_iovlen = n};
            r = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    } while (r < 0 && errno == EINTR);
    if (r >= 0)
        return r;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? 0 : -errno;
}

/* Everything queued is written. */
static void drained(conn_t *c)
{
    q_release_empty(c);
    if (c->flags & CONN_F_DRAIN)
        send_fin(c);
    else if (c->proto && c->proto->on_drained)
        c->proto->on_drained(c); /* e.g. the next piece of a large HTTP answer */
}

/* The first n queue entries as buffers (what of each is not written yet). */
static uint32_t fill_iov(conn_t *c, uv_buf_t *bufs)
{
    uint32_t n = c->qcount < MAX_IOV ? c->qcount : MAX_IOV;
    for (uint32_t i = 0; i < n; i++) {
        outq_entry_t *e = q_at(c, i);
        bufs[i] = uv_buf_init((char *)e->f->data + e->off, e->f->len - e->off);
    }
    return n;
}

/* The socket took `wrote` bytes of bufs: pops the entries written whole, advances the first
 * one written in part (and its buffer). Returns the index of the first unwritten buffer. */
static uint32_t consume(conn_t *c, uv_buf_t *bufs, size_t wrote)
{
    uint32_t first = 0;
    uint64_t now = 0;
    while (wrote && c->qcount) {
        outq_entry_t *e = q_at(c, 0);
        size_t left = e->f->len - e->off;
        if (wrote < left) {
            e->off += (uint32_t)wrote;
            c->queued -= wrote;
            if (!e->shared)
                c->env->private_queued -= wrote;
            bufs[first].base += wrote;
            bufs[first].len -= wrote;
            break;
        }
        wrote -= left;
        observe_delivery(c, e, &now);
        q_pop(c);
        first++;
    }
    return first;
}

/* The socket has room again: what is queued goes on. */
static void on_writable(conn_t *c)
{
    c->flags &= ~CONN_F_WRITING;
    flush(c);
    set_interest(c);
}

static void flush(conn_t *c)
{
    if (c->flags & CONN_F_CLOSING)
        return;
    /* Before the in-flight check: a client that stopped reading has a write that never
     * completes, and its queue must not grow past the bound while we wait (DESIGN.md 6). */
    if (c->flags & CONN_F_OVERFLOW) {
        c->flags &= ~CONN_F_OVERFLOW;
        handle_overflow(c);
        if (c->flags & CONN_F_CLOSING)
            return;
    }
    if (c->flags & CONN_F_WRITING)
        return;
    uv_buf_t bufs[MAX_IOV];
    /* While the socket takes every entry of a batch and more are queued (more than MAX_IOV
     * entries), the next batch. */
    while (c->qcount) {
        uint32_t n = fill_iov(c, bufs);
        ssize_t sent = try_send(c, bufs, n);
        if (sent < 0) {
            conn_close(c, uv_strerror((int)sent));
            return;
        }
        if (consume(c, bufs, (size_t)sent) < n) { /* the socket is full: wait for room */
            c->flags |= CONN_F_WRITING;
            set_interest(c);
            return;
        }
    }
    drained(c);
}

typedef struct {
    conn_t *best;   /* the live connection with the most queued or held */
    size_t best_held;
    size_t doomed;  /* queued by connections already closing as slow consumers */
} largest_t;

static void largest_walk(conn_t *c, void *arg)
{
    largest_t *l = arg;
    size_t held = c->queued + (c->proto && c->proto->held ? c->proto->held(c) : 0);
    if (c->flags & (CONN_F_CLOSING | CONN_F_SLOW | CONN_F_OVERFLOW))
        l->doomed += held; /* freed by their close, now or within the close timeout */
    else if (!l->best || held > l->best_held) {
        l->best = c;
        l->best_held = held;
    }
}

void conn_enforce_total(conn_env_t *env)
{
    /* Over the loop's share of limits.max_queued_total_bytes: the connections holding the
     * most are the slow consumers, not whoever replies next (a /healthz must still work). */
    size_t share = env->share_total;
    for (int i = 0; i < 64 && env->private_queued > share; i++) {
        largest_t l = {0};
        conn_foreach(env, largest_walk, &l);
        if (!l.best || env->private_queued - (l.doomed < env->private_queued ? l.doomed : env->private_queued) <= share)
            return;
        /* Its close frame would wait behind all it holds: the memory is needed now. */
        metrics_add(&env->metrics.slow_consumer_closes, 1);
        log_conn(l.best, LOG_WARN, "slow_consumer", "holds the most output past limits.max_queued_total_bytes");
        conn_close(l.best, "slow consumer (limits.max_queued_total_bytes)");
    }
}

bool conn_flush_dirty(conn_env_t *env, unsigned budget)
{
    list_node_t *n;
    while (budget-- && (n = list_first(&env->dirty))) {
        list_remove(n);
        flush(container_of(n, conn_t, dirty_node));
    }
    /* Closed connections are freed here, outside every callback that could still hold
     * one (as libuv's close callbacks would): the owner calls this around each poll. */
    while ((n = list_first(&env->closing)))
        free_conn(container_of(n, conn_t, dirty_node));
    return list_empty(&env->dirty);
}

/* ------------------------------------------------------------------ deadlines */

void conn_set_deadline(conn_t *c, deadline_kind_t kind)
{
    /* A closing connection is freed by its close callback: it must be in no list then
     * (issue 11: a deferred reply completed between conn_close and that callback). */
    if (c->flags & CONN_F_CLOSING)
        return;
    list_remove(&c->dl_node);
    c->dl_kind = (uint8_t)kind;
    c->deadline = uv_now(c->env->loop) + c->env->timeout_ms[kind];
    list_insert_tail(&c->env->deadlines[kind], &c->dl_node);
}

void conn_hold(conn_t *c, long delta) { c->env->private_queued += (size_t)delta; }

bool conn_evict_unready(conn_env_t *env, uint64_t min_age_ms)
{
    list_node_t *n = list_first(&env->deadlines[DL_HANDSHAKE]);
    if (!n)
        return false;
    conn_t *c = container_of(n, conn_t, dl_node);
    uint64_t accepted = c->deadline - env->timeout_ms[DL_HANDSHAKE];
    if (uv_now(env->loop) < accepted + min_age_ms)
        return false;
    metrics_add(&env->metrics.evictions, 1);
    conn_abort(c, "evicted: no request yet, at the descriptor budget");
    return true;
}

void conn_clear_deadline(conn_t *c)
{
    list_remove(&c->dl_node);
    c->dl_kind = DL_NONE;
}

void conn_sweep_deadlines(conn_env_t *env)
{
    uint64_t now = uv_now(env->loop);
    for (int k = DL_REQUEST; k < DL_COUNT; k++) {
        list_node_t *n;
        while ((n = list_first(&env->deadlines[k]))) {
            conn_t *c = container_of(n, conn_t, dl_node);
            if (c->deadline > now)
                break;
            conn_clear_deadline(c);
            if (k == DL_CLOSE) {
                metrics_add(&env->metrics.close_timeouts, 1);
                conn_close(c, "close timeout");
            } else if (c->proto && c->proto->on_timeout) {
                c->proto->on_timeout(c, (deadline_kind_t)k);
            } else {
                conn_close(c, "timeout");
            }
        }
    }
}

/* ------------------------------------------------------------------ reading */

static int on_plain(void *arg, const uint8_t *data, size_t len)
{
    conn_t *c = arg;
    if (c->flags & CONN_F_CLOSING)
        return 1;
    if (c->flags & CONN_F_FIN_SENT)
        return 0; /* closing: whatever the peer still sends is discarded */
    c->proto->on_data(c, data, len);
    return (c->flags & CONN_F_CLOSING) ? 1 : 0;
}

/* The peer ended its side (err UV_EOF) or the socket failed. */
static void input_ended(conn_t *c, int err)
{
    c->flags |= CONN_F_EOF;
    if (set_interest(c))
        return;
    if (err != UV_EOF)
        conn_close(c, uv_strerror(err));
    else if (c->flags & CONN_F_FIN_SENT)
        conn_close(c, NULL);
    else
        c->proto->on_eof(c);
}

static void on_read(conn_t *c, ssize_t nread)
{
    metrics_add(&c->env->metrics.bytes_in[c->endpoint], (uint64_t)nread);
    if (c->flags & CONN_F_DRAIN)
        return; /* the connection's end is decided: what the peer still sends is discarded */
    conn_env_t *env = c->env;
    if (c->tls) {
        int r = tls_conn_feed(c->tls, env->rbuf, (size_t)nread, env->tbuf, env->rbuf_size, on_plain,
                              tls_out, c);
        if (r < 0 && !(c->flags & CONN_F_CLOSING)) {
            if (c->endpoint == EP_HTTP)
                metrics_add(&env->metrics.handshake_failures[HS_TLS], 1);
            /* The alert that says why is queued: write it, then close. */
            log_conn(c, LOG_INFO, "tls_error", tls_conn_error(c->tls));
            conn_close_after_write(c);
        }
        return;
    }
    on_plain(c, env->rbuf, (size_t)nread);
}

/* Every read lands in the loop's shared buffer and is processed before the next one. A
 * read that fills the buffer may have left more: read again, up to MAX_READS. */
static void on_readable(conn_t *c)
{
    conn_env_t *env = c->env;
    for (int i = 0; i < MAX_READS; i++) {
        if ((c->flags & (CONN_F_READING | CONN_F_EOF | CONN_F_CLOSING)) != CONN_F_READING)
            return;
        ssize_t n = recv(c->fd, env->rbuf, env->rbuf_size, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                input_ended(c, -errno);
            return;
        }
        if (n == 0) {
            input_ended(c, UV_EOF);
            return;
        }
        on_read(c, n);
        if ((size_t)n < env->rbuf_size)
            return;
    }
}

/* ------------------------------------------------------------------ upgrade and close */

void conn_pause_reading(conn_t *c)
{
    c->flags &= ~CONN_F_READING;
    set_interest(c);
}

void conn_resume_reading(conn_t *c)
{
    c->flags |= CONN_F_READING;
    set_interest(c);
}

void conn_set_proto(conn_t *c, const conn_proto_t *proto, void *pdata, int endpoint)
{
    if (c->proto)
        c->proto->on_closed(c);
    c->proto = proto;
    c->pdata = pdata;
    c->flags = (uint16_t)((c->flags & ~CONN_F_FIRST) | (proto->flush_first ? CONN_F_FIRST : 0));
    if (endpoint == EP_HTTP)
        return;
    c->endpoint = (uint8_t)endpoint;
    metrics_add(&c->env->metrics.conns_opened[endpoint], 1);
    log_conn(c, LOG_INFO, "ws_open", NULL);
}

void conn_feed(conn_t *c, const uint8_t *data, size_t len)
{
    if (!(c->flags & CONN_F_DRAIN)) /* the same gates as a read: draining, closing, FIN sent */
        on_plain(c, data, len);
}

void conn_close(conn_t *c, const char *reason)
{
    if (c->flags & CONN_F_CLOSING)
        return;
    c->flags |= CONN_F_CLOSING;
    list_remove(&c->dirty_node);
    conn_clear_deadline(c);
    log_conn(c, c->endpoint != EP_HTTP ? LOG_INFO : LOG_DEBUG, "conn_close", reason);
    /* Closing the descriptor takes it out of the epoll set (no other descriptor refers to
     * its socket); the struct waits in env->closing for conn_flush_dirty to free it. */
    close(c->fd);
    c->fd = -1;
    list_insert_tail(&c->env->closing, &c->dirty_node);
}

void conn_close_after_write(conn_t *c)
{
    if (c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))
        return;
    c->flags |= CONN_F_DRAIN;
    if (c->tls)
        tls_conn_close_notify(c->tls, tls_out, c);
    conn_set_deadline(c, DL_CLOSE);
    mark_dirty(c);
}

void conn_abort(conn_t *c, const char *reason)
{
    if (c->flags & CONN_F_CLOSING)
        return;
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    conn_close(c, reason);
}

void conn_abort_after_write(conn_t *c, const char *reason)
{
    if (c->flags & CONN_F_CLOSING)
        return;
    log_conn(c, LOG_INFO, "conn_abort", reason);
    c->flags |= CONN_F_DRAIN | CONN_F_RST;
    conn_set_deadline(c, DL_CLOSE);
    mark_dirty(c);
}

void conn_shutdown(conn_t *c)
{
    if (c->flags & CONN_F_CLOSING)
        return;
    if (c->proto && c->proto->on_shutdown)
        c->proto->on_shutdown(c);
    else
        conn_close(c, "shutdown");
}

static void free_conn(conn_t *c)
{
    conn_env_t *env = c->env;
    list_remove(&c->dirty_node); /* from env->closing; never free a linked node */
    list_remove(&c->dl_node);
    registry_remove(env, c);
    if (c->flags & CONN_F_IPCOUNTED)
        iplimit_release(c->peer);
    if (c->proto)
        c->proto->on_closed(c);
    if (c->endpoint != EP_HTTP)
        metrics_add(&env->metrics.conns_closed[c->endpoint], 1);
    q_clear(c);
    if (c->tls)
        tls_conn_free(c->tls);
    metrics_add(&env->metrics.tcp_closed, 1);
    atomic_fetch_sub(env->open_total, 1);
    env->nconns--;
    mempool_free(env->mem, c, sizeof *c);
    env->on_freed(env); /* last: the owner may end its loop */
}
