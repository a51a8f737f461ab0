/*
 * fuzz_outq — the output queue of conn.c (DESIGN.md decisions 3, 4 and 6): private copies
 * (conn_send_copy, coalesced into chunks) and shared prepared frames (conn_send_frame) of
 * random sizes, bursts of hundreds of entries (past the 256 buffers one write carries), the
 * loop's flushes (uv_try_write-style sends, then uv_write), a client that reads a little at
 * a time while the server's socket buffer is 4 KiB (partial sends), close-after-write and the
 * max_queued_bytes bound. The connection is a real accepted one of the harness's worker.
 *
 * Every byte queued is a function of its position in the stream, and the client checks what
 * it reads: bytes lost, repeated or reordered by the queue abort (a finding), and so does
 * a stream cut short while the connection was still open.
 *
 * Input: a program of operations, one byte each (low 3 bits: the operation, high 5 bits:
 * its small argument) and, for some, one more byte.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t queued; /* bytes handed to the connection */
static uint64_t seen;   /* bytes the client read and checked */

static uint8_t pattern(uint64_t pos) { return (uint8_t)(pos * 131 + (pos >> 9)); }

static void fill(uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = pattern(queued + i);
}

static void check(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pattern(seen + i)) {
            fprintf(stderr, "fuzz_outq: stream byte %llu is wrong (%zu bytes read this time)\n",
                    (unsigned long long)(seen + i), len);
            abort();
        }
    }
    seen += len;
    if (seen > queued) {
        fprintf(stderr, "fuzz_outq: read %llu bytes, only %llu were queued\n", (unsigned long long)seen,
                (unsigned long long)queued);
        abort();
    }
}

/* Reads up to max bytes (0: whatever is there); returns 1 once the server closed. */
static int client_read(int fd, size_t max)
{
    uint8_t buf[16384];
    size_t left = max ? max : SIZE_MAX;
    while (left) {
        ssize_t n = recv(fd, buf, left < sizeof buf ? left : sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            check(buf, (size_t)n);
            left -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }
    return 0;
}

static void turn(int turns)
{
    while (turns-- > 0)
        uv_run(&fz_worker()->loop, UV_RUN_NOWAIT);
}

/* Is the connection still there to send on? (Freed once the worker has none.) */
static int usable(conn_t *c)
{
    return fz_worker()->net.nconns > 0 && !(c->flags & (CONN_F_CLOSING | CONN_F_DRAIN));
}

static int send_private(conn_t *c, size_t len)
{
    uint8_t buf[8192];
    fill(buf, len);
    int r = conn_send_copy(c, buf, len);
    if (r == 0)
        queued += len;
    return r;
}

static int send_shared(conn_t *c, size_t len)
{
    uint8_t buf[8192];
    frame_t *f = frame_new(len);
    if (!f)
        return -1;
    fill(buf, len);
    frame_append(f, buf, len);
    int r = conn_send_frame(c, f);
    if (r == 0)
        queued += len;
    frame_release(&f);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init(NULL);
    conn_t *c;
    int fd = fz_connect(&c, 65536);
    int sndbuf = 4096;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    queued = seen = 0;
    int closed = 0, overflowed = 0;

    for (size_t i = 0; i < size && !closed; i++) {
        unsigned op = data[i] & 7, arg = data[i] >> 3;
        unsigned next = i + 1 < size ? data[i + 1] : 0;
        if (!usable(c) && op <= 2)
            op = 3; /* nothing more can be queued: keep turning and reading */
        switch (op) {
        case 0: /* one private copy, up to 8 KiB */
            send_private(c, 1 + ((arg << 8 | next) & 8191));
            i++;
            break;
        case 1: /* one shared frame, up to 8 KiB */
            send_shared(c, 1 + ((arg << 8 | next) & 8191));
            i++;
            break;
        case 2: /* a burst of small entries, shared or alternating with private copies */
            for (unsigned k = 0; k < 64 + 4 * next && usable(c); k++)
                (arg & 16) && (k & 1) ? send_private(c, 1 + (arg & 15)) : send_shared(c, 1 + (arg & 15));
            i++;
            break;
        case 3: /* the loop turns: flushes, write completions */
            turn(1 + (int)(arg & 7));
            break;
        case 4: /* the client reads a little */
            closed = client_read(fd, 1 + (size_t)next * 64);
            i++;
            break;
        case 5: /* the client reads everything there is */
            closed = client_read(fd, 0);
            break;
        case 6: /* the server ends the connection once the queue is written */
            if (usable(c))
                conn_close_after_write(c);
            break;
        default: /* time passes without the client reading */
            turn(1);
            break;
        }
        if (fz_worker()->net.nconns > 0 && (c->flags & CONN_F_SLOW))
            overflowed = 1;
    }

    /* Drain: with the connection open (or closing after its writes), every byte arrives.
     * Bounded in time, not turns: through the small windows TCP may wait for its persist
     * timer (a zero-window probe, 200 ms and more) before it sends again. */
    int open = fz_worker()->net.nconns > 0 && !(c->flags & CONN_F_CLOSING) && !overflowed;
    uint64_t t0 = uv_hrtime(), last = seen;
    while (open && !closed && seen < queued && uv_hrtime() - t0 < 10000000000ull) {
        turn(1);
        closed = client_read(fd, 0);
        if (seen == last)
            usleep(200);
        last = seen;
        if (fz_worker()->net.nconns > 0 && (c->flags & CONN_F_SLOW))
            overflowed = 1;
        open = fz_worker()->net.nconns > 0 && !(c->flags & CONN_F_CLOSING) && !overflowed;
    }
    if (open && seen < queued) {
        fprintf(stderr, "fuzz_outq: %llu of %llu queued bytes arrived (conn flags 0x%x, %u entries, %zu bytes queued)\n",
                (unsigned long long)seen, (unsigned long long)queued, c->flags, c->qcount, c->queued);
        abort();
    }
    fz_end(fd, 0);
    return 0;
}
