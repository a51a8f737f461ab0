/*
 * wtimer — cheap one-shot timers of a worker: a min-heap swept by the worker's tick
 * (50 ms resolution), for per-session deadlines (token expiry, idle timeouts) that would
 * otherwise each need a uv_timer_t. A wtimer_t is embedded in its owner; stop it before
 * freeing the owner. Worker thread only.
 */
#ifndef WSHUB_WTIMER_H
#define WSHUB_WTIMER_H

#include <stdint.h>

typedef struct worker worker_t;
typedef struct wtimer wtimer_t;
typedef void (*wtimer_cb)(wtimer_t *t);

struct wtimer {
    uint64_t due;  /* uv_now() ms */
    uint32_t slot; /* 1 + heap index while armed, 0 when not */
    wtimer_cb cb;
};

/* Arms (or re-arms) t to fire once at due_ms (uv_now() clock). Returns 0 or UV_ENOMEM. */
int wtimer_start(worker_t *w, wtimer_t *t, uint64_t due_ms, wtimer_cb cb);
void wtimer_stop(worker_t *w, wtimer_t *t);
/* Fires every due timer (called by the worker's tick). */
void wtimer_run(worker_t *w);
/* Releases the heap (worker shutdown). */
void wtimer_free_all(worker_t *w);

#endif
