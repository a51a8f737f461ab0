/*
 * sessions — see include/wshub/sessions.h.
 */
#include "wshub/sessions.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "wshub/list.h"
#include "wshub/metrics.h"
#include "wshub/strmap.h"

typedef struct stored {
    list_node_t node;     /* in order of the last write: the front expires first */
    strmap_entry_t *e;    /* its entry: the key is the sid */
    uint64_t expires_ms;
    size_t len;
    char val[];
} stored_t;

static uv_mutex_t lock;
static uv_once_t once = UV_ONCE_INIT;
static strmap_t map;
static list_node_t order;
static size_t bytes;

static void init(void)
{
    uv_mutex_init(&lock);
    list_init(&order);
}

static size_t cost(const stored_t *st) { return sizeof *st + st->len + st->e->klen + sizeof *st->e; }

static void drop(stored_t *st)
{
    size_t c = cost(st);
    bytes -= c;
    atomic_fetch_sub(&metrics_gauges.session_bytes, c);
    atomic_fetch_sub(&metrics_gauges.sessions, 1);
    list_remove(&st->node);
    strmap_remove(&map, st->e);
    free(st);
}

/* The expired from the front; then, past max, the oldest. */
static void trim(uint64_t now_ms, size_t max, size_t need)
{
    while (!list_empty(&order)) {
        stored_t *st = container_of(order.next, stored_t, node);
        if (st->expires_ms > now_ms && bytes + need <= max)
            break;
        drop(st);
    }
}

int sessions_put(const char *sid, const char *val, size_t len, uint32_t ttl_s, size_t max_bytes, uint64_t now_ms)
{
    size_t klen = strlen(sid);
    if (sizeof(stored_t) + len + klen + sizeof(strmap_entry_t) > max_bytes)
        return UV_ENOBUFS;
    stored_t *st = malloc(sizeof *st + len);
    if (!st)
        return UV_ENOMEM;
    st->expires_ms = now_ms + (uint64_t)ttl_s * 1000;
    st->len = len;
    memcpy(st->val, val, len);
    uv_once(&once, init);
    uv_mutex_lock(&lock);
    strmap_entry_t *old = strmap_find(&map, sid, klen);
    if (old)
        drop(old->value);
    trim(now_ms, max_bytes, sizeof *st + len + klen + sizeof(strmap_entry_t));
    int rc = 0;
    if (!(st->e = strmap_insert(&map, sid, klen, st))) {
        free(st);
        rc = UV_ENOMEM;
    } else {
        list_insert_tail(&order, &st->node);
        bytes += cost(st);
        atomic_fetch_add(&metrics_gauges.session_bytes, cost(st));
        atomic_fetch_add(&metrics_gauges.sessions, 1);
    }
    uv_mutex_unlock(&lock);
    return rc;
}

char *sessions_get(const char *sid, size_t *len, uint64_t now_ms)
{
    uv_once(&once, init);
    uv_mutex_lock(&lock);
    strmap_entry_t *e = strmap_find(&map, sid, strlen(sid));
    stored_t *st = e ? e->value : NULL;
    char *copy = st && st->expires_ms > now_ms ? malloc(st->len + 1) : NULL;
    *len = copy ? st->len : 0;
    if (copy) {
        memcpy(copy, st->val, st->len);
        copy[st->len] = 0;
    }
    uv_mutex_unlock(&lock);
    return copy;
}

void sessions_free(void)
{
    uv_once(&once, init);
    uv_mutex_lock(&lock);
    while (!list_empty(&order))
        drop(container_of(order.next, stored_t, node));
    strmap_clear(&map);
    uv_mutex_unlock(&lock);
}
