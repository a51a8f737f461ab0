/*
 * harness — see harness.h. One worker, as main.c and worker.c build it, on the fuzzer's
 * thread; a client on 127.0.0.1.
 */
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wshub/auth.h"
#include "wshub/config.h"
#include "wshub/dialect.h"
#include "wshub/hub.h"
#include "wshub/log.h"
#include "wshub/server.h"
#include "wshub/token.h"
#include "wshub/wtimer.h"

#define RX_CAP (4u << 20) /* bytes of server output kept for the target to look at */
#define SETTLE_MS 1000    /* after the client ended: then force-close what is left */
#define HANG_MS 20000     /* after a forced close: the server hangs (a finding) */

static server_t srv;
static live_t live;
static worker_t w;
static struct sockaddr_in listen_addr;
static uv_prepare_t prepare;
static uv_check_t check;
static uv_timer_t tick;
static uint8_t *rx;
static size_t rx_len;
static uint64_t rx_total;
static char *token_user;   /* sub "alice": API B */
static char *token_member; /* community_member_id 42: API C */

static void die(const char *what, const char *why)
{
    fprintf(stderr, "fuzz harness: %s: %s\n", what, why);
    abort();
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What worker.c's loop does around the I/O callbacks: flush once per turn, sweep the
 * deadlines and run the wtimers on a tick. */
static void on_flush_prepare(uv_prepare_t *h) { conn_flush_dirty(&((worker_t *)h->data)->net, 64); }
static void on_flush_check(uv_check_t *h) { conn_flush_dirty(&((worker_t *)h->data)->net, 64); }
static void on_tick(uv_timer_t *h) { worker_tick(h->data); }
static void on_connection(uv_poll_t *p, int status, int events)
{
    (void)events;
    if (status == 0)
        worker_accept(p->data);
}

void fz_init(const char *const *extra_env)
{
    if (srv.workers)
        return;
    signal(SIGPIPE, SIG_IGN);
    const char *base[] = {
        "WSHUB_LISTEN=127.0.0.1:1",
        "WSHUB_PUBLIC_URL=http://127.0.0.1:1",
        "WSHUB_WORKERS=1",
        "WSHUB_LOG_LEVEL=error",
        "WSHUB_JWT_SECRET=" FZ_JWT_SECRET,
        "WSHUB_API_KEY=" FZ_API_KEY,
        "WSHUB_MODERATION_KEYS=" FZ_MOD_KEY,
        /* Small limits, so that inputs of a few KB reach them. */
        "WSHUB_LIMITS_MAX_MESSAGE_BYTES=16384",
        "WSHUB_LIMITS_MAX_QUEUED_BYTES=262144",
        "WSHUB_HTTP_MAX_HEADER_BYTES=4096",
        "WSHUB_HTTP_MAX_HEADERS=16",
        "WSHUB_HTTP_MAX_BODY_BYTES=16384",
        "WSHUB_SERVICE_MAX_SUBSCRIPTIONS=8",
        "WSHUB_MODERATION_MAX_SAMPLE_CHARS=2000",
        "WSHUB_MODERATION_MAX_IN_FLIGHT=8",
        "WSHUB_FLOW_HISTORY_LIMIT=8",
    };
    size_t nbase = sizeof base / sizeof *base, nextra = 0;
    while (extra_env && extra_env[nextra])
        nextra++;
    char **envp = calloc(nbase + nextra + 1, sizeof *envp);
    if (!envp)
        die("init", "out of memory");
    for (size_t i = 0; i < nbase; i++)
        envp[i] = (char *)base[i];
    for (size_t i = 0; i < nextra; i++)
        envp[nbase + i] = (char *)extra_env[i];

    char err[512];
    if (config_load(&live.cfg, NULL, envp, err, sizeof err) != 0)
        die("config", err);
    free(envp);
    log_set_level(live.cfg.log_level);
    if (!(live.auth = auth_verifier_new(&live.cfg, FZ_JWT_SECRET, err, sizeof err)))
        die("auth", err);
    if (dialects_process_init(&live.cfg, err, sizeof err) != 0)
        die("dialects", err);

    srv.cfg = &live.cfg;
    atomic_store(&srv.live, &live);
    srv.nworkers = 1;
    srv.hub = hub_new(1, 0);
    srv.workers = calloc(1, sizeof *srv.workers);
    if (!srv.hub || !srv.workers)
        die("init", "out of memory");
    srv.workers[0] = &w;

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof listen_addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&listen_addr, &alen) != 0)
        die("listen", strerror(errno));
    conn_listener_options(fd, srv.cfg);
    int r = worker_init(&w, &srv, 0, fd);
    if (r)
        die("worker_init", uv_strerror(r));
    if ((r = uv_poll_start(&w.listener, UV_READABLE, on_connection)) != 0)
        die("uv_poll_start", uv_strerror(r));
    uv_prepare_init(&w.loop, &prepare);
    prepare.data = &w;
    uv_prepare_start(&prepare, on_flush_prepare);
    uv_check_init(&w.loop, &check);
    check.data = &w;
    uv_check_start(&check, on_flush_check);
    uv_timer_init(&w.loop, &tick);
    tick.data = &w;
    uv_timer_start(&tick, on_tick, 50, 50);
    if (!(rx = malloc(RX_CAP)))
        die("init", "out of memory");
    const char *member[] = {"community_member_id=42"};
    token_user = token_mint(FZ_JWT_SECRET, "alice", 10L * 365 * 24 * 3600, NULL, 0, err, sizeof err);
    token_member = token_mint(FZ_JWT_SECRET, "42", 10L * 365 * 24 * 3600, member, 1, err, sizeof err);
    if (!token_user || !token_member)
        die("token", err);
}

worker_t *fz_worker(void) { return &w; }

const uint8_t *fz_received(size_t *len)
{
    *len = rx_len;
    return rx;
}
uint64_t fz_received_total(void) { return rx_total; }
void fz_received_reset(void)
{
    rx_len = 0;
    rx_total = 0;
}

/* Reads what is there; returns 1 once the server closed its side. */
static int drain(int fd)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            size_t keep = RX_CAP - rx_len < (size_t)n ? RX_CAP - rx_len : (size_t)n;
            memcpy(rx + rx_len, buf, keep);
            rx_len += keep;
            rx_total += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }
}

void fz_pump(int fd, int turns)
{
    while (turns-- > 0) {
        uv_run(&w.loop, UV_RUN_NOWAIT);
        if (fd >= 0)
            drain(fd);
    }
}

static void find_newest(conn_t *c, void *arg)
{
    conn_t **best = arg;
    if (!(c->flags & CONN_F_CLOSING) && (!*best || c->id > (*best)->id))
        *best = c;
}

int fz_connect(conn_t **server_conn, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket", strerror(errno));
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) != 0 && errno != EINPROGRESS)
        die("connect", strerror(errno));
    uint64_t accepted = w.net.conn_seq;
    uint64_t t0 = now_ms();
    while (w.net.conn_seq == accepted) {
        fz_pump(-1, 1);
        if (now_ms() - t0 > HANG_MS)
            die("connect", "the server did not accept");
    }
    if (server_conn) {
        *server_conn = NULL;
        conn_foreach(&w.net, find_newest, server_conn);
    }
    fz_received_reset();
    return fd;
}

int fz_write(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t t0 = 0;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            t0 = 0;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        /* Full: the server reads on the next turns, unless it stopped reading (a deferred
         * reply, a connection it is closing); give it a bounded time. */
        if (!t0)
            t0 = now_ms();
        else if (now_ms() - t0 > SETTLE_MS)
            return -1;
        fz_pump(fd, 1);
    }
    return 0;
}

int fz_write_chunked(int fd, const uint8_t *data, size_t len, size_t chunk)
{
    if (!chunk)
        chunk = len ? len : 1;
    while (len) {
        size_t n = len < chunk ? len : chunk;
        if (fz_write(fd, data, n) != 0)
            return -1;
        fz_pump(fd, 2);
        data += n;
        len -= n;
    }
    return 0;
}

static void force_close(conn_t *c, void *arg)
{
    (void)arg;
    conn_close(c, "fuzz: settle time over");
}

static int settled(void) { return w.net.nconns == 0 && w.loop.active_reqs.count == 0; }

void fz_end(int fd, int rst)
{
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(fd);
        fd = -1;
    } else {
        shutdown(fd, SHUT_WR);
    }
    uint64_t t0 = now_ms();
    int forced = 0;
    for (unsigned turn = 0; !settled(); turn++) {
        fz_pump(fd, 1);
        if (turn > 64)
            usleep(50); /* thread-pool work or a timer: do not spin */
        uint64_t dt = now_ms() - t0;
        if (!forced && dt > SETTLE_MS) {
            conn_foreach(&w.net, force_close, NULL);
            forced = 1;
        } else if (dt > SETTLE_MS + HANG_MS) {
            die("end", "the server did not free its connections");
        }
    }
    if (fd >= 0)
        close(fd);
}

int fz_upgrade(int fd, const char *target, const char *headers)
{
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     target, headers ? headers : "");
    if (n < 0 || (size_t)n >= sizeof req)
        die("upgrade", "request too long");
    fz_received_reset();
    if (fz_write(fd, req, (size_t)n) != 0)
        return 0;
    uint64_t t0 = now_ms();
    for (;;) {
        uv_run(&w.loop, UV_RUN_NOWAIT);
        int closed = drain(fd);
        if (memmem(rx, rx_len, "\r\n\r\n", 4))
            break;
        if (closed || now_ms() - t0 > SETTLE_MS)
            return 0;
    }
    int status = 0;
    if (rx_len > 12 && memcmp(rx, "HTTP/1.1 ", 9) == 0)
        status = (rx[9] - '0') * 100 + (rx[10] - '0') * 10 + (rx[11] - '0');
    return status;
}

size_t fz_frame(uint8_t *out, int fin, int opcode, const uint8_t *payload, size_t len)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(out + h, key, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = payload[i] ^ key[i & 3];
    return h + len;
}

size_t fz_chunk_size(uint8_t b)
{
    static const size_t sizes[] = {0, 1, 2, 3, 5, 7, 13, 64, 100, 511, 1400, 4096};
    return sizes[b % (sizeof sizes / sizeof *sizes)];
}

/* Flow: GET /socket.info on a first connection, the /ws/<token> of its answer. */
static int flow_endpoint(char *target, size_t len)
{
    static const char req[] = "GET /socket.info?clientId=fuzz&sessionId=s1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Connection: close\r\n\r\n";
    int fd = fz_connect(NULL, 0);
    int ok = fz_write(fd, req, sizeof req - 1) == 0;
    fz_end(fd, 0);
    const uint8_t *p = ok ? memmem(rx, rx_len, "/ws/", 4) : NULL;
    if (!p)
        return -1;
    size_t n = 0;
    while (p + n < rx + rx_len && p[n] != '"' && n + 1 < len)
        n++;
    memcpy(target, p, n);
    target[n] = 0;
    return 0;
}

int fz_open(int api)
{
    char target[2048], headers[2048] = "";
    switch (api) {
    case FZ_SERVICE:
        snprintf(target, sizeof target, "/api/ws?token=%s", token_user);
        break;
    case FZ_CABLE:
        snprintf(target, sizeof target, "/cable");
        snprintf(headers, sizeof headers,
                 "Authorization: Bearer %s\r\nSec-WebSocket-Protocol: actioncable-v1-json, actioncable-unsupported\r\n",
                 token_member);
        break;
    case FZ_MODERATION:
        snprintf(target, sizeof target, "/text/moderation");
        snprintf(headers, sizeof headers, "x-chatsight-api-auth: %s\r\n", FZ_MOD_KEY);
        break;
    case FZ_FLOW:
        if (flow_endpoint(target, sizeof target) != 0)
            die("flow", "no endpoint in the /socket.info answer");
        break;
    default:
        snprintf(target, sizeof target, "/echo");
        break;
    }
    int fd = fz_connect(NULL, 0);
    int status = fz_upgrade(fd, target, headers);
    if (status != 101) {
        fprintf(stderr, "fuzz harness: %s: upgrade answered %d\n", target, status);
        abort(); /* the harness's own request is valid: this is a finding */
    }
    return fd;
}
