/*
 * history — see include/wshub/history.h.
 *
 * One map channel -> hist_chan_t, each a ring of history.size references. Entries past
 * history.ttl_s go when their channel is next touched; a channel with no message left and
 * none published for history.ttl_s goes in a sweep (at most once a second, on an append),
 * and its count starts again in a new epoch if it comes back.
 */
#include "wshub/history.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "wshub/metrics.h"
#include "wshub/strmap.h"

typedef struct hist_chan {
    strmap_entry_t *e;
    char epoch[HUB_EPOCH_LEN + 1];
    uint64_t next;    /* the offset the next message gets */
    uint64_t last_ms; /* the last publish */
    size_t head, n;   /* ring[head] is the oldest of n */
    hub_msg_t *ring[];
} hist_chan_t;

struct history {
    uv_mutex_t lock;
    strmap_t chans;
    size_t size;
    uint64_t ttl_ms;
    size_t max_bytes, bytes;
    uint64_t last_sweep_ms;
};

uint64_t history_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void history_new_epoch(char out[HUB_EPOCH_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[HUB_EPOCH_LEN];
    if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0) {
        uint64_t t = uv_hrtime() ^ (uint64_t)rand();
        memcpy(rnd, &t, sizeof rnd < sizeof t ? sizeof rnd : sizeof t);
    }
    for (size_t i = 0; i < HUB_EPOCH_LEN; i++)
        out[i] = hex[rnd[i] & 15];
    out[HUB_EPOCH_LEN] = 0;
}

history_t *history_new(size_t size, uint32_t ttl_s, size_t max_bytes)
{
    history_t *h = calloc(1, sizeof *h);
    if (!h || uv_mutex_init(&h->lock) != 0) {
        free(h);
        return NULL;
    }
    h->size = size;
    h->ttl_ms = (uint64_t)ttl_s * 1000;
    h->max_bytes = max_bytes;
    return h;
}

static void drop_oldest(history_t *h, hist_chan_t *c)
{
    hub_msg_t *m = c->ring[c->head];
    c->ring[c->head] = NULL;
    c->head = (c->head + 1) % h->size;
    c->n--;
    h->bytes -= m->bytes;
    atomic_fetch_sub(&metrics_gauges.history_bytes, m->bytes);
    atomic_fetch_sub(&metrics_gauges.history_messages, 1);
    hub_msg_release(&m);
}

static void chan_free(history_t *h, hist_chan_t *c)
{
    while (c->n)
        drop_oldest(h, c);
    strmap_remove(&h->chans, c->e);
    atomic_fetch_sub(&metrics_gauges.history_channels, 1);
    free(c);
}

void history_free(history_t *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->chans.nbuckets; i++)
        for (strmap_entry_t *e = h->chans.buckets[i], *next; e; e = next) {
            next = e->next;
            chan_free(h, e->value);
        }
    strmap_clear(&h->chans);
    uv_mutex_destroy(&h->lock);
    free(h);
}

void history_lock(history_t *h) { uv_mutex_lock(&h->lock); }
void history_unlock(history_t *h) { uv_mutex_unlock(&h->lock); }

static void expire(history_t *h, hist_chan_t *c, uint64_t now_ms)
{
    while (c->n && c->ring[c->head]->ms + h->ttl_ms < now_ms) {
        drop_oldest(h, c);
        atomic_fetch_add(&metrics_gauges.history_expired, 1);
    }
}

/* Channels with nothing kept and no publish for ttl_s are forgotten. */
static void sweep(history_t *h, uint64_t now_ms)
{
    h->last_sweep_ms = now_ms;
    for (size_t i = 0; i < h->chans.nbuckets; i++)
        for (strmap_entry_t *e = h->chans.buckets[i], *next; e; e = next) {
            next = e->next;
            hist_chan_t *c = e->value;
            expire(h, c, now_ms);
            if (!c->n && c->last_ms + h->ttl_ms < now_ms)
                chan_free(h, c);
        }
}

static hist_chan_t *chan_get(history_t *h, const char *channel, size_t clen)
{
    strmap_entry_t *e = strmap_find(&h->chans, channel, clen);
    if (e)
        return e->value;
    hist_chan_t *c = calloc(1, sizeof *c + h->size * sizeof(hub_msg_t *));
    if (!c || !(c->e = strmap_insert(&h->chans, channel, clen, c))) {
        free(c);
        return NULL;
    }
    history_new_epoch(c->epoch);
    c->next = 1;
    atomic_fetch_add(&metrics_gauges.history_channels, 1);
    return c;
}

int history_append(history_t *h, hub_msg_t *m, uint64_t now_ms)
{
    if (now_ms >= h->last_sweep_ms + 1000)
        sweep(h, now_ms);
    hist_chan_t *c = chan_get(h, m->channel, m->channel_len);
    if (!c) {
        m->offset = 0; /* no position rather than one that lies */
        return UV_ENOMEM;
    }
    expire(h, c, now_ms);
    m->offset = c->next++;
    memcpy(m->epoch, c->epoch, sizeof m->epoch);
    c->last_ms = now_ms;
    if (c->n == h->size)
        drop_oldest(h, c);
    /* The total bound: this channel's oldest go first; if m still does not fit, none is kept
     * (a history with a hole would replay past it as if nothing were missing). */
    while (h->max_bytes && c->n && h->bytes + m->bytes > h->max_bytes) {
        drop_oldest(h, c);
        atomic_fetch_add(&metrics_gauges.history_dropped, 1);
    }
    if (h->max_bytes && h->bytes + m->bytes > h->max_bytes) {
        atomic_fetch_add(&metrics_gauges.history_dropped, 1);
        return UV_ENOMEM;
    }
    atomic_fetch_add(&m->refs, 1);
    c->ring[(c->head + c->n) % h->size] = m;
    c->n++;
    h->bytes += m->bytes;
    atomic_fetch_add(&metrics_gauges.history_bytes, m->bytes);
    atomic_fetch_add(&metrics_gauges.history_messages, 1);
    return 0;
}

int history_read(history_t *h, const char *channel, size_t clen, const hub_pos_t *pos, uint64_t since_ms,
                 uint64_t now_ms, history_read_t *out)
{
    memset(out, 0, sizeof *out);
    strmap_entry_t *e = strmap_find(&h->chans, channel, clen);
    hist_chan_t *c = e ? e->value : NULL;
    if (!c) { /* nothing was published lately: a time reaches back, a position cannot */
        out->reaches = !pos;
        return 0;
    }
    expire(h, c, now_ms);
    memcpy(out->tail.epoch, c->epoch, sizeof out->tail.epoch);
    out->tail.offset = c->next - 1;
    uint64_t first = c->n ? c->ring[c->head]->offset : c->next;
    if (pos) {
        out->reaches = strcmp(pos->epoch, c->epoch) == 0 && pos->offset + 1 >= first && pos->offset < c->next;
        if (!out->reaches)
            return 0;
    } else {
        out->reaches = true;
    }
    out->msgs = c->n ? malloc(c->n * sizeof *out->msgs) : NULL;
    if (c->n && !out->msgs)
        return UV_ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        hub_msg_t *m = c->ring[(c->head + i) % h->size];
        if (pos ? m->offset > pos->offset : m->ms >= since_ms) {
            atomic_fetch_add(&m->refs, 1);
            out->msgs[out->n++] = m;
        }
    }
    return 0;
}

void history_read_clear(history_read_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        hub_msg_release(&r->msgs[i]);
    free(r->msgs);
    memset(r, 0, sizeof *r);
}
