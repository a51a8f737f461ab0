/*
 * sendbatch — what one fan-out costs the sender, by the way its writes are submitted
 * (issue 18: S2L's tail is a publish's 100 sends, each 7-13 µs of mostly kernel work).
 *
 * N loopback TCP connections; a reader thread (pinned to CPU 1) drains them all with epoll,
 * as wsbench's subscribers do; the writer (pinned to CPU 0) does R rounds, one round every
 * GAP µs (S2L: 2,000 µs), each writing one M-byte message to every connection:
 *   send     one send() per connection (what wshubd does for a subscriber with one frame)
 *   uring    one io_uring_submit_and_wait for N IORING_OP_SEND (liburing)
 * and reports per round: wall time to hand all N messages to the kernel (p50/p99/max) and the
 * writer thread's CPU per message.
 *
 *   cc -O2 -o bench/sendbatch bench/sendbatch.c -luring -lpthread
 *   bench/sendbatch send 100 100 5000 2000
 *   bench/sendbatch uring 100 100 5000 2000
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int n_conns, *srv_fd, *cli_fd;
static atomic_int stop;
static atomic_ullong received;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *reader(void *arg)
{
    (void)arg;
    pin(1);
    int ep = epoll_create1(0);
    for (int i = 0; i < n_conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = cli_fd[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cli_fd[i], &ev) != 0)
            die("epoll_ctl");
    }
    struct epoll_event evs[256];
    char buf[65536];
    while (!atomic_load(&stop)) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            ssize_t r = recv(evs[i].data.fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r > 0)
                atomic_fetch_add(&received, (unsigned long long)r);
        }
    }
    close(ep);
    return NULL;
}

static void connect_all(void)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096) ||
        getsockname(ls, (struct sockaddr *)&a, &al))
        die("listen");
    srv_fd = calloc((size_t)n_conns, sizeof *srv_fd);
    cli_fd = calloc((size_t)n_conns, sizeof *cli_fd);
    for (int i = 0; i < n_conns; i++) {
        cli_fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (cli_fd[i] < 0 || connect(cli_fd[i], (struct sockaddr *)&a, sizeof a))
            die("connect");
        if ((srv_fd[i] = accept(ls, NULL, NULL)) < 0)
            die("accept");
        setsockopt(srv_fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    close(ls);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: sendbatch send|uring CONNS BYTES ROUNDS GAP_US\n");
        return 2;
    }
    int uring = strcmp(argv[1], "uring") == 0;
    n_conns = atoi(argv[2]);
    size_t len = (size_t)atol(argv[3]);
    int rounds = atoi(argv[4]), gap_us = atoi(argv[5]);
    char *msg = malloc(len);
    memset(msg, 'x', len);
    connect_all();
    pthread_t th;
    pthread_create(&th, NULL, reader, NULL);
    pin(0);
    struct io_uring ring;
    if (uring && io_uring_queue_init((unsigned)n_conns, &ring, 0) != 0)
        die("io_uring_queue_init");
    uint64_t *wall = calloc((size_t)rounds, sizeof *wall);
    struct rusage r0, r1;
    getrusage(RUSAGE_THREAD, &r0);
    uint64_t next = now_ns();
    for (int k = 0; k < rounds; k++) {
        next += (uint64_t)gap_us * 1000u;
        while (now_ns() < next) /* sleep until the round is due, as a loop waits in epoll */
            usleep(100);
        uint64_t t0 = now_ns();
        if (uring) {
            for (int i = 0; i < n_conns; i++)
                io_uring_prep_send(io_uring_get_sqe(&ring), srv_fd[i], msg, len, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (io_uring_submit_and_wait(&ring, (unsigned)n_conns) < 0)
                die("io_uring_submit_and_wait");
            struct io_uring_cqe *cqe;
            for (int i = 0; i < n_conns; i++) {
                if (io_uring_wait_cqe(&ring, &cqe) != 0 || cqe->res != (int)len)
                    fprintf(stderr, "short send: %d\n", cqe->res);
                io_uring_cqe_seen(&ring, cqe);
            }
        } else {
            for (int i = 0; i < n_conns; i++)
                if (send(srv_fd[i], msg, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
                    fprintf(stderr, "short send\n");
        }
        wall[k] = now_ns() - t0;
    }
    getrusage(RUSAGE_THREAD, &r1);
    usleep(200000);
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    double cpu_us = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e6 +
                    (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
    qsort(wall, (size_t)rounds, sizeof *wall, cmp_u64);
    printf("{\"mode\":\"%s\",\"conns\":%d,\"bytes\":%zu,\"rounds\":%d,\"gap_us\":%d,"
           "\"round_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},\"writer_cpu_us_per_msg\":%.2f,"
           "\"received_ok\":%s}\n",
           argv[1], n_conns, len, rounds, gap_us, wall[rounds / 2] / 1e3, wall[rounds * 99 / 100] / 1e3,
           wall[rounds - 1] / 1e3, cpu_us / ((double)rounds * n_conns),
           atomic_load(&received) == (unsigned long long)rounds * (unsigned long long)n_conns * len ? "true" : "false");
    return 0;
}
