/*
 * wtimer — see include/wshub/wtimer.h. A binary min-heap of pointers; each timer knows its
 * slot, so stopping one is O(log n).
 */
#include "wshub/wtimer.h"

#include <stdlib.h>
#include <uv.h>

#include "wshub/util.h"
#include "wshub/worker.h"

static void put(worker_t *w, uint32_t i, wtimer_t *t)
{
    w->timers[i] = t;
    t->slot = i + 1;
}

static void up(worker_t *w, uint32_t i)
{
    wtimer_t *t = w->timers[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (w->timers[p]->due <= t->due)
            break;
        put(w, i, w->timers[p]);
        i = p;
    }
    put(w, i, t);
}

static void down(worker_t *w, uint32_t i)
{
    wtimer_t *t = w->timers[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        uint64_t best = t->due;
        if (l < w->ntimers && w->timers[l]->due < best)
            m = l, best = w->timers[l]->due;
        if (r < w->ntimers && w->timers[r]->due < best)
            m = r;
        if (m == i)
            break;
        put(w, i, w->timers[m]);
        i = m;
    }
    put(w, i, t);
}

void wtimer_stop(worker_t *w, wtimer_t *t)
{
    if (!t->slot)
        return;
    uint32_t i = t->slot - 1;
    t->slot = 0;
    wtimer_t *last = w->timers[--w->ntimers];
    if (i == w->ntimers)
        return;
    put(w, i, last);
    up(w, i);
    down(w, last->slot - 1);
}

int wtimer_start(worker_t *w, wtimer_t *t, uint64_t due_ms, wtimer_cb cb)
{
    wtimer_stop(w, t);
    if (w->ntimers == w->timers_cap && !util_grow((void **)&w->timers, &w->timers_cap, sizeof *w->timers, 64))
        return UV_ENOMEM;
    t->due = due_ms;
    t->cb = cb;
    w->timers[w->ntimers] = t;
    t->slot = w->ntimers + 1;
    w->ntimers++;
    up(w, w->ntimers - 1);
    return 0;
}

void wtimer_run(worker_t *w)
{
    uint64_t now = uv_now(&w->loop);
    while (w->ntimers && w->timers[0]->due <= now) {
        wtimer_t *t = w->timers[0];
        wtimer_stop(w, t);
        t->cb(t); /* may re-arm t or stop/start others */
    }
}

void wtimer_free_all(worker_t *w)
{
    for (uint32_t i = 0; i < w->ntimers; i++)
        w->timers[i]->slot = 0;
    free(w->timers);
    w->timers = NULL;
    w->ntimers = w->timers_cap = 0;
}
