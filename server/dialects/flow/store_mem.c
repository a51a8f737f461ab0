/*
 * flow/store_mem — the Flow store (store.h) in this process's memory: tickets and thread
 * histories shared by every worker under one mutex, and the gauges
 * metrics_gauges.flow_* (published under that mutex after every change).
 *
 * Bounded, so that no client, without any credential, can grow the daemon (issue 11):
 * unused tickets by flow.max_tickets and freed when they expire; thread histories by
 * flow.history_limit entries and flow.max_history_bytes per thread,
 * flow.max_history_total_bytes in all (the least recently active threads lose their oldest
 * entries first), MAX_THREADS threads, and flow.thread_ttl_s: a thread without a socket and
 * without activity for that long is forgotten.
 * Never: speaks HTTP or WebSocket, reads the configuration by itself, or hands out a
 * pointer into its memory.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "wshub/list.h"
#include "wshub/metrics.h"
#include "wshub/strmap.h"

#include "store.h"

/* Threads kept at once: past it the least recently active thread without a socket is
 * dropped, so clients inventing thread ids cannot grow the daemon without bound. */
#define MAX_THREADS 10000

typedef struct ticket {
    flow_ticket_t ids;
    uint64_t expires_ms;  /* the store's clock */
    strmap_entry_t *e;    /* in tickets */
    list_node_t node;     /* in ticket_order, oldest first */
} ticket_t;

/* One history entry as its compact JSON text {type, payload, createdAt}: a third of the
 * memory of the json_t tree, and its size is what the byte limits count. */
typedef struct hist_entry {
    size_t len;
    bool received; /* a message.received (what GET /thread.unnoticed lists) */
    char text[];
} hist_entry_t;

typedef struct thread_log {
    hist_entry_t **items; /* oldest first */
    size_t n, cap;
    size_t noticed;       /* items before this index were noticed (thread.noticed) */
    size_t bytes;         /* entry_bytes() of the items */
    uint64_t active_ms;   /* last message, join or leave (the store's clock) */
    uint32_t sockets;     /* sockets of this thread: while > 0 it is never freed */
    strmap_entry_t *e;
    list_node_t lru;      /* in lru, least recently active first */
} thread_log_t;

typedef struct mem_store {
    flow_store_t base;
    uint64_t (*clock_ms)(void);
    uv_mutex_t lock;          /* everything below */
    strmap_t tickets;         /* token -> ticket_t* */
    list_node_t ticket_order; /* ticket_t.node */
    strmap_t threads;         /* thread id -> thread_log_t* */
    list_node_t lru;          /* thread_log_t.lru */
    size_t history_bytes;     /* of every thread */
} mem_store_t;

static mem_store_t *mem(flow_store_t *st) { return container_of(st, mem_store_t, base); }

static uint64_t hrtime_ms(void) { return uv_hrtime() / 1000000; }

/* Called with the lock held, after every change. */
static void publish_gauges(const mem_store_t *m)
{
    atomic_store_explicit(&metrics_gauges.flow_tickets, m->tickets.count, memory_order_relaxed);
    atomic_store_explicit(&metrics_gauges.flow_threads, m->threads.count, memory_order_relaxed);
    atomic_store_explicit(&metrics_gauges.flow_history_bytes, m->history_bytes, memory_order_relaxed);
}

/* ------------------------------------------------------------------ tickets */

static void ticket_free(ticket_t *t)
{
    flow_ticket_clear(&t->ids);
    free(t);
}

/* Takes a ticket out of the store (lock held); the caller frees it. */
static void ticket_unlink(mem_store_t *m, ticket_t *t)
{
    strmap_remove(&m->tickets, t->e);
    list_remove(&t->node);
}

/* Frees the expired tickets (lock held). They expire in the order they were made (one TTL);
 * a TTL shortened by a reload only delays the freeing of the later ones. */
static void purge_tickets(mem_store_t *m, uint64_t now, metrics_t *mt)
{
    list_node_t *n;
    while ((n = list_first(&m->ticket_order)) && container_of(n, ticket_t, node)->expires_ms <= now) {
        ticket_t *t = container_of(n, ticket_t, node);
        ticket_unlink(m, t);
        ticket_free(t);
        metrics_add(&mt->flow_tickets_expired, 1);
    }
}

static int issue_now(flow_store_t *st, const char *token, size_t len, const char *client_id,
                     const char *session_id, const char *thread_id, const config_t *cfg, metrics_t *mt)
{
    mem_store_t *m = mem(st);
    ticket_t *t = calloc(1, sizeof *t);
    if (t)
        list_init(&t->node);
    if (!t || !(t->ids.client_id = strdup(client_id)) || !(t->ids.session_id = strdup(session_id)) ||
        (thread_id && !(t->ids.thread_id = strdup(thread_id)))) {
        if (t)
            ticket_free(t);
        return FLOW_STORE_NOMEM;
    }
    uint64_t now = m->clock_ms();
    t->expires_ms = now + cfg->flow_token_ttl_ms;
    uv_mutex_lock(&m->lock);
    purge_tickets(m, now, mt);
    bool full = m->tickets.count >= (size_t)cfg->flow_max_tickets;
    bool ok = !full && (t->e = strmap_insert(&m->tickets, token, len, t)) != NULL;
    if (ok)
        list_insert_tail(&m->ticket_order, &t->node);
    publish_gauges(m);
    uv_mutex_unlock(&m->lock);
    if (ok)
        return FLOW_STORE_OK;
    ticket_free(t);
    return full ? FLOW_STORE_FULL : FLOW_STORE_NOMEM;
}

/* The store's answers are known at once: done is called before the operation returns. */
static void issue(flow_store_t *st, dialect_ctx_t *x, const char *token, size_t len, const char *client_id,
                  const char *session_id, const char *thread_id, const config_t *cfg, metrics_t *mt,
                  flow_store_issued_fn done, void *arg)
{
    (void)x;
    done(arg, issue_now(st, token, len, client_id, session_id, thread_id, cfg, mt));
}

static int redeem_now(flow_store_t *st, const char *token, size_t len, flow_ticket_t *out)
{
    mem_store_t *m = mem(st);
    ticket_t *t = NULL;
    uv_mutex_lock(&m->lock);
    strmap_entry_t *e = strmap_find(&m->tickets, token, len);
    if (e) {
        t = e->value;
        ticket_unlink(m, t); /* single use, whatever happens next */
        publish_gauges(m);
    }
    uv_mutex_unlock(&m->lock);
    if (!t || t->expires_ms <= m->clock_ms()) {
        if (t)
            ticket_free(t);
        return FLOW_STORE_NOT_FOUND;
    }
    *out = t->ids; /* the strings are the caller's now */
    free(t);
    return FLOW_STORE_OK;
}

static void redeem(flow_store_t *st, dialect_ctx_t *x, const char *token, size_t len, flow_store_redeemed_fn done,
                   void *arg)
{
    (void)x;
    flow_ticket_t t = {0};
    int r = redeem_now(st, token, len, &t);
    done(arg, r, r == FLOW_STORE_OK ? &t : NULL);
}

/* ------------------------------------------------------------------ threads */

static size_t entry_bytes(const hist_entry_t *h) { return sizeof *h + sizeof h + h->len; }

static void drop_oldest(mem_store_t *m, thread_log_t *t, metrics_t *mt, int reason)
{
    hist_entry_t *h = t->items[0];
    t->bytes -= entry_bytes(h);
    m->history_bytes -= entry_bytes(h);
    free(h);
    memmove(t->items, t->items + 1, --t->n * sizeof *t->items);
    if (t->noticed)
        t->noticed--;
    if (mt)
        metrics_add(&mt->flow_history_dropped[reason], 1);
}

static void thread_free(mem_store_t *m, thread_log_t *t, metrics_t *mt, int reason)
{
    while (t->n)
        drop_oldest(m, t, mt, reason);
    free(t->items);
    list_remove(&t->lru);
    strmap_remove(&m->threads, t->e);
    free(t);
}

static void thread_touch(mem_store_t *m, thread_log_t *t)
{
    t->active_ms = m->clock_ms();
    list_remove(&t->lru);
    list_insert_tail(&m->lru, &t->lru);
}

/* The thread's log, or NULL (lock held). */
static thread_log_t *thread_find(mem_store_t *m, const char *thread)
{
    strmap_entry_t *e = strmap_find(&m->threads, thread, strlen(thread));
    return e ? e->value : NULL;
}

/* The thread's log, made if new (lock held); NULL when out of memory. */
static thread_log_t *thread_get(mem_store_t *m, const char *thread, metrics_t *mt)
{
    thread_log_t *t = thread_find(m, thread);
    if (t)
        return t;
    t = calloc(1, sizeof *t);
    if (!t || !(t->e = strmap_insert(&m->threads, thread, strlen(thread), t))) {
        free(t);
        return NULL;
    }
    list_init(&t->lru);
    thread_touch(m, t);
    /* Over the count: forget the least recently active thread that no socket is on. */
    for (list_node_t *n = m->lru.next; m->threads.count > MAX_THREADS && n != &m->lru;) {
        thread_log_t *old = container_of(n, thread_log_t, lru);
        n = n->next;
        if (!old->sockets && old != t)
            thread_free(m, old, mt, FLOW_DROP_THREADS);
    }
    return t;
}

/* Past flow.max_history_total_bytes: the least recently active threads lose their oldest
 * entries first; one left empty and without a socket is forgotten (lock held). */
static void trim_total(mem_store_t *m, const config_t *cfg, metrics_t *mt)
{
    for (list_node_t *n = m->lru.next; m->history_bytes > cfg->flow_max_history_total_bytes && n != &m->lru;) {
        thread_log_t *t = container_of(n, thread_log_t, lru);
        n = n->next;
        while (t->n && m->history_bytes > cfg->flow_max_history_total_bytes)
            drop_oldest(m, t, mt, FLOW_DROP_TOTAL_BYTES);
        if (!t->n && !t->sockets)
            thread_free(m, t, mt, FLOW_DROP_TOTAL_BYTES);
    }
}

/* Room for one more item (lock held); false when out of memory. */
static bool thread_reserve(thread_log_t *t)
{
    if (t->n < t->cap)
        return true;
    size_t ncap = t->cap ? t->cap * 2 : 8;
    hist_entry_t **ni = realloc(t->items, ncap * sizeof *ni);
    if (!ni)
        return false;
    t->items = ni;
    t->cap = ncap;
    return true;
}

/* The entry as text (the history outlives the caller's JSON); NULL when out of memory. */
static hist_entry_t *entry_new(const json_t *entry)
{
    size_t len = json_dumpb(entry, NULL, 0, JSON_COMPACT);
    hist_entry_t *h = len ? malloc(sizeof *h + len) : NULL;
    if (!h)
        return NULL;
    h->len = json_dumpb(entry, h->text, len, JSON_COMPACT);
    const char *type = json_string_value(json_object_get(entry, "type"));
    h->received = type && strcmp(type, "message.received") == 0;
    return h;
}

static int history_add(flow_store_t *st, const char *thread, const json_t *entry, const config_t *cfg,
                       metrics_t *mt)
{
    mem_store_t *m = mem(st);
    if (cfg->flow_history_limit <= 0)
        return FLOW_STORE_OK;
    hist_entry_t *h = entry ? entry_new(entry) : NULL;
    if (!h)
        return FLOW_STORE_NOMEM;
    uv_mutex_lock(&m->lock);
    thread_log_t *t = thread_get(m, thread, mt);
    if (t && thread_reserve(t)) {
        t->items[t->n++] = h;
        t->bytes += entry_bytes(h);
        m->history_bytes += entry_bytes(h);
        h = NULL;
        thread_touch(m, t);
        while (t->n > (size_t)cfg->flow_history_limit)
            drop_oldest(m, t, NULL, 0);
        while (t->n && t->bytes > cfg->flow_max_history_bytes)
            drop_oldest(m, t, mt, FLOW_DROP_THREAD_BYTES);
        if (!t->n && !t->sockets) /* its one entry was over the bound: nothing left to keep */
            thread_free(m, t, NULL, 0);
        trim_total(m, cfg, mt);
    }
    publish_gauges(m);
    uv_mutex_unlock(&m->lock);
    int r = h ? FLOW_STORE_NOMEM : FLOW_STORE_OK;
    free(h);
    return r;
}

/* The entries to answer with, as one JSON array text (they are stored compact): only copied
 * under the lock, which every worker's Flow traffic takes; parsed after it. */
static char *history_text(mem_store_t *m, const char *thread, bool unnoticed, size_t *len)
{
    uv_mutex_lock(&m->lock);
    thread_log_t *t = thread_find(m, thread);
    size_t first = t && unnoticed ? t->noticed : 0, n = 2;
    for (size_t i = first; t && i < t->n; i++)
        n += t->items[i]->len + 1;
    char *buf = malloc(n + 1), *p = buf;
    if (buf) {
        *p++ = '[';
        for (size_t i = first; t && i < t->n; i++) {
            /* Unnoticed: what the thread's user has not seen yet (bot and agent messages). */
            if (unnoticed && !t->items[i]->received)
                continue;
            if (p > buf + 1)
                *p++ = ',';
            memcpy(p, t->items[i]->text, t->items[i]->len);
            p += t->items[i]->len;
        }
        *p++ = ']';
    }
    uv_mutex_unlock(&m->lock);
    *len = buf ? (size_t)(p - buf) : 0;
    return buf;
}

static void history(flow_store_t *st, dialect_ctx_t *x, const char *thread, bool unnoticed,
                    flow_store_listed_fn done, void *arg)
{
    (void)x;
    size_t len;
    char *text = history_text(mem(st), thread, unnoticed, &len);
    json_t *items = text ? json_loadb(text, len, JSON_ALLOW_NUL, NULL) : NULL;
    free(text);
    done(arg, items ? FLOW_STORE_OK : FLOW_STORE_NOMEM, items);
}

static int noticed(flow_store_t *st, const char *thread)
{
    mem_store_t *m = mem(st);
    uv_mutex_lock(&m->lock);
    thread_log_t *t = thread_find(m, thread);
    if (t)
        t->noticed = t->n;
    uv_mutex_unlock(&m->lock);
    return FLOW_STORE_OK;
}

static int join(flow_store_t *st, const char *thread, const config_t *cfg, metrics_t *mt)
{
    (void)cfg;
    mem_store_t *m = mem(st);
    uv_mutex_lock(&m->lock);
    thread_log_t *t = thread_get(m, thread, mt);
    if (t) {
        t->sockets++;
        thread_touch(m, t);
    }
    publish_gauges(m);
    uv_mutex_unlock(&m->lock);
    return t ? FLOW_STORE_OK : FLOW_STORE_NOMEM;
}

static void leave(flow_store_t *st, const char *thread, const config_t *cfg)
{
    (void)cfg;
    mem_store_t *m = mem(st);
    uv_mutex_lock(&m->lock);
    thread_log_t *t = thread_find(m, thread); /* there: a thread with a socket stays */
    if (t) {
        t->sockets--;
        thread_touch(m, t);
    }
    publish_gauges(m);
    uv_mutex_unlock(&m->lock);
}

static void sweep(flow_store_t *st, const config_t *cfg, metrics_t *mt)
{
    mem_store_t *m = mem(st);
    uint64_t ttl = (uint64_t)cfg->flow_thread_ttl_s * 1000;
    uv_mutex_lock(&m->lock);
    /* After the lock: a thread touched while we waited for it is not newer than now. */
    uint64_t now = m->clock_ms();
    purge_tickets(m, now, mt);
    for (list_node_t *n = m->lru.next; n != &m->lru;) {
        thread_log_t *t = container_of(n, thread_log_t, lru);
        n = n->next;
        if (now - t->active_ms < ttl)
            break; /* the rest were active later */
        if (!t->sockets)
            thread_free(m, t, mt, FLOW_DROP_EXPIRED);
    }
    publish_gauges(m);
    uv_mutex_unlock(&m->lock);
}

static void store_free(flow_store_t *st)
{
    mem_store_t *m = mem(st);
    list_node_t *n;
    uv_mutex_lock(&m->lock);
    while ((n = list_first(&m->ticket_order))) {
        ticket_t *t = container_of(n, ticket_t, node);
        ticket_unlink(m, t);
        ticket_free(t);
    }
    while ((n = list_first(&m->lru)))
        thread_free(m, container_of(n, thread_log_t, lru), NULL, 0);
    strmap_clear(&m->tickets);
    strmap_clear(&m->threads);
    publish_gauges(m);
    uv_mutex_unlock(&m->lock);
    uv_mutex_destroy(&m->lock);
    free(m);
}

static const flow_store_ops_t mem_ops = {
    .issue = issue,
    .redeem = redeem,
    .history_add = history_add,
    .history = history,
    .noticed = noticed,
    .join = join,
    .leave = leave,
    .sweep = sweep,
    .free = store_free,
};

flow_store_t *flow_store_mem_new(uint64_t (*clock_ms)(void))
{
    mem_store_t *m = calloc(1, sizeof *m);
    if (!m || uv_mutex_init(&m->lock) != 0) {
        free(m);
        return NULL;
    }
    m->base.ops = &mem_ops;
    m->clock_ms = clock_ms ? clock_ms : hrtime_ms;
    list_init(&m->ticket_order);
    list_init(&m->lru);
    return &m->base;
}
