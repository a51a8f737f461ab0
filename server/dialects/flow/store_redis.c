/*
 * flow/store_redis — the Flow store (store.h) in Redis, for broker.type "redis": every node
 * of a cluster sees the same tickets and histories, so /socket.info answered by one node
 * opens a socket on another, and GET /thread.history is the same from any node. The same
 * Redis (broker.redis_url: host, port, db, AUTH) and the same key prefix (broker.prefix,
 * P below) as the broker.
 *
 * Keys, each operation one small Lua script (EVAL: atomic, so the bounds hold across nodes):
 *   P flow:ticket:<token>  the ticket, JSON {c, s, t}: SET … PX flow.token_ttl_ms NX; redeem is
 *                          GETDEL (single use across nodes: one GETDEL wins; PX did expiry).
 *   P flow:tickets         sorted set token -> expiry: flow.max_tickets is checked against it,
 *                          past expiries trimmed first, so the bound holds for the cluster.
 *   P flow:hist:<thread>   list of the entries' compact JSON, oldest first: RPUSH, then the
 *                          oldest dropped (LPOP) past flow.history_limit entries or past
 *                          flow.max_history_bytes bytes of entry text, in the same script.
 *   P flow:meta:<thread>   hash: total (entries ever added), bytes (of the list), noticed
 *                          (total at the last thread.noticed: what /thread.unnoticed skips).
 * Both thread keys get PEXPIRE flow.thread_ttl_s on every entry, join and leave, and this
 * node refreshes them every third of that TTL while it has a socket on the thread: a thread
 * with a socket on any node is never forgotten, a quiet one expires by itself.
 * flow.max_history_total_bytes is not applied here: Redis's maxmemory is that bound.
 *
 * One connection per node, on a libuv loop of its own thread (hiredis's async API and its
 * adapter), fed by one queue (a mutex, a uv_async): commands are pipelined in the order the
 * workers queued them, so one node's entries of a thread are stored in that order. Results
 * go back to the asking worker (dialect_call). While the link is down (reconnect with a
 * capped backoff, broker.reconnect_max_ms), or while broker.max_pending_bytes of commands
 * wait for Redis, operations are refused at once (FLOW_STORE_DOWN); a Redis that answers
 * nothing for REPLY_TIMEOUT_MS is treated as down (its connection is dropped: every command
 * in flight is answered FLOW_STORE_DOWN).
 * Never: runs a Redis command on a worker's loop, or blocks one (workers only take the
 * queue's mutex).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <uv.h>

#include "wshub/redis_conn.h"
#include "wshub/list.h"
#include "wshub/log.h"
#include "wshub/metrics.h"
#include "wshub/strmap.h"

#include "internal.h"
#include "store.h"

#define REPLY_TIMEOUT_MS 5000 /* no answer for this long: the link is dropped and made again */
#define TICK_MS 1000          /* the watchdog and the refresh of joined threads */
#define MAX_ARGS 9
#define MAX_KEY (64 + 32 + FLOW_MAX_ID)

/* ------------------------------------------------------------------ the scripts */

/* KEYS ticket, tickets; ARGV value, ttl ms, max tickets, token -> 1, 0 (full), -1 (taken) */
static const char issue_lua[] =
    "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) "
    "if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end "
    "if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return -1 end "
    "redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[4]) "
    "redis.call('PEXPIRE', KEYS[2], ARGV[2]) return 1";
/* KEYS ticket, tickets; ARGV token -> the ticket's value or nil */
static const char redeem_lua[] =
    "local v = redis.call('GETDEL', KEYS[1]) redis.call('ZREM', KEYS[2], ARGV[1]) return v";
/* KEYS hist, meta; ARGV entry, limit, max bytes, ttl ms -> entries kept */
static const char add_lua[] =
    "local n = redis.call('RPUSH', KEYS[1], ARGV[1]) redis.call('HINCRBY', KEYS[2], 'total', 1) "
    "local b = redis.call('HINCRBY', KEYS[2], 'bytes', #ARGV[1]) "
    "local limit, maxb = tonumber(ARGV[2]), tonumber(ARGV[3]) "
    "while n > 0 and (n > limit or b > maxb) do "
    "b = redis.call('HINCRBY', KEYS[2], 'bytes', -#redis.call('LPOP', KEYS[1])) n = n - 1 end "
    "redis.call('PEXPIRE', KEYS[1], ARGV[4]) redis.call('PEXPIRE', KEYS[2], ARGV[4]) return n";
/* KEYS hist, meta -> {total, noticed, {entries}} */
static const char history_lua[] =
    "local m = redis.call('HMGET', KEYS[2], 'total', 'noticed') "
    "return {tonumber(m[1]) or 0, tonumber(m[2]) or 0, redis.call('LRANGE', KEYS[1], 0, -1)}";
/* KEYS hist, meta */
static const char noticed_lua[] =
    "local t = redis.call('HGET', KEYS[2], 'total') "
    "if t then redis.call('HSET', KEYS[2], 'noticed', t) end return 1";
/* KEYS hist, meta; ARGV ttl ms */
static const char touch_lua[] =
    "redis.call('PEXPIRE', KEYS[1], ARGV[1]) redis.call('PEXPIRE', KEYS[2], ARGV[1]) return 1";

/* ------------------------------------------------------------------ commands */

typedef enum { OP_ISSUE, OP_REDEEM, OP_HISTORY, OP_UNNOTICED, OP_WRITE } op_t;

typedef struct cmd {
    list_node_t node;  /* in the queue, then in flight */
    op_t op;
    dialect_ctx_t *x;  /* where the result goes (OP_WRITE: none) */
    void *done;        /* flow_store_issued_fn, _redeemed_fn or _listed_fn */
    void *arg;
    uint64_t sent_ms;  /* the store's loop clock */
    size_t bytes;      /* counted in pending */
    int status;        /* the result, for the worker */
    flow_ticket_t ticket;
    json_t *items;
    int argc;
    const char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS];
    char buf[];
} cmd_t;

typedef struct redis_store {
    flow_store_t base;
    config_redis_url_t url;
    char prefix[72];
    size_t max_pending;     /* broker.max_pending_bytes */
    atomic_size_t pending;  /* bytes of commands queued or in flight */
    atomic_uint_fast64_t ttl_ms; /* flow.thread_ttl_s of the latest snapshot seen */
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    redis_backoff_t retry;  /* broker.reconnect_max_ms */
    uv_timer_t tick;
    uint64_t refreshed_ms;
    uv_mutex_t lock;        /* queue, joined */
    list_node_t queue;      /* cmd_t, from any thread */
    strmap_t joined;        /* thread -> this node's sockets on it (uintptr_t) */
    atomic_bool stopping, is_up;
    redisAsyncContext *ac;  /* the store's thread only */
    list_node_t inflight;   /* cmd_t sent, oldest first: Redis answers in order */
} redis_store_t;

static redis_store_t *of(flow_store_t *st) { return (redis_store_t *)st; }

/* A command of these arguments (copied) after EVAL script 2; NULL when out of memory. */
static cmd_t *cmd_new(op_t op, const char *script, const char *const *args, const size_t *lens, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += lens[i];
    cmd_t *c = calloc(1, sizeof *c + total);
    if (!c)
        return NULL;
    c->op = op;
    c->bytes = sizeof *c + total;
    c->argv[0] = "EVAL", c->argvlen[0] = 4;
    c->argv[1] = script, c->argvlen[1] = strlen(script);
    c->argv[2] = "2", c->argvlen[2] = 1;
    char *p = c->buf;
    for (int i = 0; i < n; i++) {
        memcpy(p, args[i], lens[i]);
        c->argv[3 + i] = p;
        c->argvlen[3 + i] = lens[i];
        p += lens[i];
    }
    c->argc = 3 + n;
    return c;
}

/* Redis is done with c: its bytes no longer count against the bound. */
static void uncount(redis_store_t *r, cmd_t *c)
{
    atomic_fetch_sub(&r->pending, c->bytes);
    atomic_fetch_sub(&metrics_gauges.flow_store_pending, c->bytes);
}

static void cmd_free(cmd_t *c)
{
    flow_ticket_clear(&c->ticket);
    json_decref(c->items);
    free(c);
}

/* The result, on the asking worker (or on the store's thread: see finish). */
static void deliver(void *p)
{
    cmd_t *c = p;
    switch (c->op) {
    case OP_ISSUE:
        ((flow_store_issued_fn)c->done)(c->arg, c->status);
        break;
    case OP_REDEEM:
        ((flow_store_redeemed_fn)c->done)(c->arg, c->status, c->status == FLOW_STORE_OK ? &c->ticket : NULL);
        memset(&c->ticket, 0, sizeof c->ticket); /* the strings are the callee's now */
        break;
    default:
        ((flow_store_listed_fn)c->done)(c->arg, c->status, c->status == FLOW_STORE_OK ? c->items : NULL);
        c->items = NULL;
        break;
    }
    cmd_free(c);
}

/* c has its result (c->status …): to its worker. A worker already destroyed (shutdown)
 * gets nothing: done runs here with FLOW_STORE_DOWN, to release what it holds. */
static void finish(redis_store_t *r, cmd_t *c)
{
    uncount(r, c);
    if (c->op == OP_WRITE) {
        cmd_free(c);
        return;
    }
    if (dialect_call(c->x, deliver, c) == 0)
        return;
    flow_ticket_clear(&c->ticket);
    json_decref(c->items);
    c->items = NULL;
    c->status = FLOW_STORE_DOWN;
    deliver(c);
}

/* ------------------------------------------------------------------ replies */

static void read_ticket(cmd_t *c, const redisReply *rep)
{
    c->status = FLOW_STORE_NOT_FOUND;
    if (rep->type != REDIS_REPLY_STRING)
        return; /* nil: unknown, used or expired */
    json_t *v = json_loadb(rep->str, (size_t)rep->len, 0, NULL);
    const char *cl = json_string_value(json_object_get(v, "c")), *se = json_string_value(json_object_get(v, "s"));
    const char *th = json_string_value(json_object_get(v, "t"));
    if (cl && se) {
        c->ticket.client_id = strdup(cl);
        c->ticket.session_id = strdup(se);
        c->ticket.thread_id = th ? strdup(th) : NULL;
        bool ok = c->ticket.client_id && c->ticket.session_id && (!th || c->ticket.thread_id);
        if (!ok)
            flow_ticket_clear(&c->ticket);
        c->status = ok ? FLOW_STORE_OK : FLOW_STORE_NOMEM;
    }
    json_decref(v);
}

/* {total, noticed, {entries}}: the entries as a JSON array; unnoticed, only the
 * message.received ones added after the last thread.noticed. */
static void read_history(cmd_t *c, const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER || rep->element[2]->type != REDIS_REPLY_ARRAY) {
        log_error("flow", "redis: a history answer of an unexpected shape");
        c->status = FLOW_STORE_DOWN;
        return;
    }
    const redisReply *list = rep->element[2];
    long long total = rep->element[0]->integer, noticed = rep->element[1]->integer;
    long long first = total - (long long)list->elements; /* the index of the oldest one kept */
    c->items = json_array();
    for (size_t i = 0; c->items && i < list->elements; i++) {
        const redisReply *e = list->element[i];
        json_t *entry = e->type == REDIS_REPLY_STRING ? json_loadb(e->str, (size_t)e->len, JSON_ALLOW_NUL, NULL) : NULL;
        const char *type = json_string_value(json_object_get(entry, "type"));
        bool wanted = c->op == OP_HISTORY ||
                      (first + (long long)i >= noticed && type && strcmp(type, "message.received") == 0);
        if (entry && wanted)
            json_array_append(c->items, entry);
        json_decref(entry);
    }
    c->status = c->items ? FLOW_STORE_OK : FLOW_STORE_NOMEM;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_store_t *r = ac->data;
    cmd_t *c = privdata;
    const redisReply *rep = reply;
    list_remove(&c->node); /* from inflight */
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        if (rep)
            log_error("flow", "redis: %.*s", (int)rep->len, rep->str);
        c->status = FLOW_STORE_DOWN; /* the link went down, or Redis refused the script */
    } else if (c->op == OP_ISSUE) {
        long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
        c->status = v == 1 ? FLOW_STORE_OK : v == 0 ? FLOW_STORE_FULL : FLOW_STORE_NOMEM;
    } else if (c->op == OP_REDEEM) {
        read_ticket(c, rep);
    } else if (c->op != OP_WRITE) {
        read_history(c, rep);
    }
    finish(r, c);
}

/* Sends what other threads queued, in their order (on the store's thread). */
static void run_queue(redis_store_t *r)
{
    list_node_t q;
    uv_mutex_lock(&r->lock);
    list_take_all(&q, &r->queue);
    uv_mutex_unlock(&r->lock);
    while (!list_empty(&q)) {
        cmd_t *c = container_of(q.next, cmd_t, node);
        list_remove(&c->node);
        c->sent_ms = uv_now(&r->loop);
        if (atomic_load(&r->is_up) &&
            redisAsyncCommandArgv(r->ac, on_reply, c, c->argc, c->argv, c->argvlen) == REDIS_OK) {
            list_insert_tail(&r->inflight, &c->node);
        } else {
            c->status = FLOW_STORE_DOWN;
            finish(r, c);
        }
    }
}

/* ------------------------------------------------------------------ the connection */

static void connect_now(redis_store_t *r);

static void on_retry(uv_timer_t *t) { connect_now(t->data); }

static void set_up(redis_store_t *r, bool up)
{
    if (atomic_exchange(&r->is_up, up) == up)
        return;
    atomic_store(&metrics_gauges.flow_store_up, up);
    const char *what = up ? "connected" : atomic_load(&r->stopping) ? "closed" : "unreachable: reconnecting";
    log_info("flow", "store: redis %s:%d %s", r->url.host, r->url.port, what);
}

/* The link is gone (or dropped by us): every command in flight is answered FLOW_STORE_DOWN
 * by hiredis, and a new connection is tried after the backoff. */
static void link_lost(redis_store_t *r)
{
    set_up(r, false);
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    if (ac)
        redisAsyncFree(ac); /* its callbacks run now, with no reply */
    if (!atomic_load(&r->stopping))
        redis_backoff_schedule(&r->retry);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_store_t *r = ac->data;
    if (ac != r->ac)
        return;
    if (status != REDIS_OK) {
        r->ac = NULL; /* hiredis frees it after this callback */
        link_lost(r);
        return;
    }
    redis_backoff_reset(&r->retry);
    set_up(r, true);
    run_queue(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    redis_store_t *r = ac->data;
    if (ac != r->ac)
        return; /* dropped by us */
    r->ac = NULL; /* hiredis frees it after this callback */
    link_lost(r);
}

static void connect_now(redis_store_t *r)
{
    if (atomic_load(&r->stopping) || r->ac)
        return;
    /* AUTH and SELECT go first on the connection (redis_conn.h): every command after them is ours. */
    redisAsyncContext *ac = redis_conn_open(&r->url, &r->loop, r, on_connect, on_disconnect);
    if (!ac) {
        link_lost(r);
        return;
    }
    r->ac = ac;
}

/* ------------------------------------------------------------------ the thread */

/* The two thread keys of thread into hist and meta (MAX_KEY bytes each). */
static void thread_keys(const redis_store_t *r, const char *thread, char *hist, char *meta)
{
    snprintf(hist, MAX_KEY, "%sflow:hist:%s", r->prefix, thread);
    snprintf(meta, MAX_KEY, "%sflow:meta:%s", r->prefix, thread);
}

/* PEXPIRE of a thread's keys, sent from here (no result, not counted). */
static void send_touch(redis_store_t *r, const char *thread, uint64_t ttl_ms)
{
    char hist[MAX_KEY], meta[MAX_KEY], ttl[24];
    thread_keys(r, thread, hist, meta);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    const char *argv[] = {"EVAL", touch_lua, "2", hist, meta, ttl};
    size_t lens[] = {4, strlen(touch_lua), 1, strlen(hist), strlen(meta), strlen(ttl)};
    redisAsyncCommandArgv(r->ac, NULL, NULL, 6, argv, lens);
}

/* Every second: a Redis silent for REPLY_TIMEOUT_MS is dropped; every third of the thread
 * TTL, the threads this node has sockets on are kept alive. */
static void on_tick(uv_timer_t *t)
{
    redis_store_t *r = t->data;
    uint64_t now = uv_now(&r->loop);
    list_node_t *oldest = list_first(&r->inflight);
    if (oldest && now - container_of(oldest, cmd_t, node)->sent_ms > REPLY_TIMEOUT_MS) {
        log_error("flow", "store: redis gave no answer for %d ms: reconnecting", REPLY_TIMEOUT_MS);
        link_lost(r);
        return;
    }
    uint64_t ttl = atomic_load(&r->ttl_ms);
    if (!atomic_load(&r->is_up) || now - r->refreshed_ms < ttl / 3)
        return;
    r->refreshed_ms = now;
    uv_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->joined.nbuckets; i++)
        for (strmap_entry_t *e = r->joined.buckets[i]; e; e = e->next)
            send_touch(r, e->key, ttl);
    uv_mutex_unlock(&r->lock);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_wake(uv_async_t *a)
{
    redis_store_t *r = a->data;
    if (!atomic_load(&r->stopping)) {
        run_queue(r);
        return;
    }
    link_lost(r);  /* what is in flight is answered FLOW_STORE_DOWN */
    run_queue(r);  /* is_up is false: so is everything queued */
    uv_walk(&r->loop, close_walk, NULL);
}

static void run(void *arg)
{
    redis_store_t *r = arg;
    connect_now(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
}

/* ------------------------------------------------------------------ from any worker */

/* Queues c, or refuses it at once (FLOW_STORE_DOWN, counted): the link is down, or
 * broker.max_pending_bytes of commands already wait for Redis. false: refused, c freed
 * (the caller answers its done). */
static bool enqueue(redis_store_t *r, cmd_t *c)
{
    bool ok = atomic_load(&r->is_up) && !atomic_load(&r->stopping);
    if (ok && atomic_fetch_add(&r->pending, c->bytes) + c->bytes > r->max_pending) {
        atomic_fetch_sub(&r->pending, c->bytes);
        ok = false;
    }
    if (!ok) {
        atomic_fetch_add(&metrics_gauges.flow_store_refused, 1);
        cmd_free(c);
        return false;
    }
    atomic_fetch_add(&metrics_gauges.flow_store_pending, c->bytes);
    uv_mutex_lock(&r->lock);
    list_insert_tail(&r->queue, &c->node);
    uv_mutex_unlock(&r->lock);
    uv_async_send(&r->wake);
    return true;
}

/* done(arg, status) now, for a command that never reached the queue. */
static void answer_now(op_t op, void *done, void *arg, int status)
{
    if (op == OP_ISSUE)
        ((flow_store_issued_fn)done)(arg, status);
    else if (op == OP_REDEEM)
        ((flow_store_redeemed_fn)done)(arg, status, NULL);
    else
        ((flow_store_listed_fn)done)(arg, status, NULL);
}

/* c (NULL: out of memory) with a result for x's worker: queued, or answered now. */
static void ask(redis_store_t *r, op_t op, cmd_t *c, dialect_ctx_t *x, void *done, void *arg)
{
    if (!c) {
        answer_now(op, done, arg, FLOW_STORE_NOMEM);
        return;
    }
    c->x = x;
    c->done = done;
    c->arg = arg;
    if (!enqueue(r, c))
        answer_now(op, done, arg, FLOW_STORE_DOWN);
}

static void rs_issue(flow_store_t *st, dialect_ctx_t *x, const char *token, size_t len, const char *client_id,
                     const char *session_id, const char *thread_id, const config_t *cfg, metrics_t *mt,
                     flow_store_issued_fn done, void *arg)
{
    (void)mt; /* expired tickets are Redis's to drop: not counted */
    redis_store_t *r = of(st);
    char key[MAX_KEY], set[MAX_KEY], ttl[24], max[24];
    snprintf(key, sizeof key, "%sflow:ticket:%.*s", r->prefix, (int)(len > 64 ? 64 : len), token);
    snprintf(set, sizeof set, "%sflow:tickets", r->prefix);
    snprintf(ttl, sizeof ttl, "%u", cfg->flow_token_ttl_ms ? cfg->flow_token_ttl_ms : 1);
    snprintf(max, sizeof max, "%d", cfg->flow_max_tickets);
    json_t *v = json_pack("{s:s, s:s, s:s?}", "c", client_id, "s", session_id, "t", thread_id);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    cmd_t *c = NULL;
    if (text) {
        const char *args[] = {key, set, text, ttl, max, token};
        size_t lens[] = {strlen(key), strlen(set), strlen(text), strlen(ttl), strlen(max), len};
        c = cmd_new(OP_ISSUE, issue_lua, args, lens, 6);
    }
    free(text);
    ask(r, OP_ISSUE, c, x, (void *)done, arg);
}

static void rs_redeem(flow_store_t *st, dialect_ctx_t *x, const char *token, size_t len,
                      flow_store_redeemed_fn done, void *arg)
{
    redis_store_t *r = of(st);
    if (len == 0 || len > 64) { /* never issued: no need to ask */
        done(arg, FLOW_STORE_NOT_FOUND, NULL);
        return;
    }
    char key[MAX_KEY], set[MAX_KEY];
    snprintf(key, sizeof key, "%sflow:ticket:%.*s", r->prefix, (int)len, token);
    snprintf(set, sizeof set, "%sflow:tickets", r->prefix);
    const char *args[] = {key, set, token};
    size_t lens[] = {strlen(key), strlen(set), len};
    ask(r, OP_REDEEM, cmd_new(OP_REDEEM, redeem_lua, args, lens, 3), x, (void *)done, arg);
}

static uint64_t thread_ttl(redis_store_t *r, const config_t *cfg)
{
    uint64_t ttl = (uint64_t)(cfg->flow_thread_ttl_s > 0 ? cfg->flow_thread_ttl_s : 1) * 1000;
    atomic_store(&r->ttl_ms, ttl);
    return ttl;
}

static int rs_history_add(flow_store_t *st, const char *thread, const json_t *entry, const config_t *cfg,
                          metrics_t *mt)
{
    (void)mt; /* entries dropped by the script are not counted */
    redis_store_t *r = of(st);
    if (cfg->flow_history_limit <= 0)
        return FLOW_STORE_OK;
    char hist[MAX_KEY], meta[MAX_KEY], limit[24], maxb[24], ttl[24];
    thread_keys(r, thread, hist, meta);
    snprintf(limit, sizeof limit, "%d", cfg->flow_history_limit);
    snprintf(maxb, sizeof maxb, "%zu", cfg->flow_max_history_bytes);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)thread_ttl(r, cfg));
    char *text = json_dumps(entry, JSON_COMPACT);
    if (!text)
        return FLOW_STORE_NOMEM;
    const char *args[] = {hist, meta, text, limit, maxb, ttl};
    size_t lens[] = {strlen(hist), strlen(meta), strlen(text), strlen(limit), strlen(maxb), strlen(ttl)};
    cmd_t *c = cmd_new(OP_WRITE, add_lua, args, lens, 6);
    free(text);
    if (!c)
        return FLOW_STORE_NOMEM;
    return enqueue(r, c) ? FLOW_STORE_OK : FLOW_STORE_DOWN;
}

static void rs_history(flow_store_t *st, dialect_ctx_t *x, const char *thread, bool unnoticed,
                       flow_store_listed_fn done, void *arg)
{
    redis_store_t *r = of(st);
    char hist[MAX_KEY], meta[MAX_KEY];
    thread_keys(r, thread, hist, meta);
    op_t op = unnoticed ? OP_UNNOTICED : OP_HISTORY;
    const char *args[] = {hist, meta};
    size_t lens[] = {strlen(hist), strlen(meta)};
    ask(r, op, cmd_new(op, history_lua, args, lens, 2), x, (void *)done, arg);
}

/* A write of script on thread's keys (ttl: also an argument). */
static int thread_write(redis_store_t *r, const char *script, const char *thread, const char *ttl)
{
    char hist[MAX_KEY], meta[MAX_KEY];
    thread_keys(r, thread, hist, meta);
    const char *args[] = {hist, meta, ttl};
    size_t lens[] = {strlen(hist), strlen(meta), ttl ? strlen(ttl) : 0};
    cmd_t *c = cmd_new(OP_WRITE, script, args, lens, ttl ? 3 : 2);
    if (!c)
        return FLOW_STORE_NOMEM;
    return enqueue(r, c) ? FLOW_STORE_OK : FLOW_STORE_DOWN;
}

static int rs_noticed(flow_store_t *st, const char *thread) { return thread_write(of(st), noticed_lua, thread, NULL); }

/* This node's sockets on thread, ±1 (lock held by the caller); false: out of memory. */
static bool count_socket(redis_store_t *r, const char *thread, int delta)
{
    size_t n = strlen(thread);
    strmap_entry_t *e = strmap_find(&r->joined, thread, n);
    if (!e && delta > 0)
        e = strmap_insert(&r->joined, thread, n, (void *)(uintptr_t)0);
    if (!e)
        return delta < 0;
    uintptr_t count = (uintptr_t)e->value + (uintptr_t)(intptr_t)delta;
    if (count)
        e->value = (void *)count;
    else
        strmap_remove(&r->joined, e);
    return true;
}

/* join and leave: a thread with a socket on this node has its TTL refreshed (on_tick). */
static int touch(redis_store_t *r, const char *thread, const config_t *cfg, int delta)
{
    uv_mutex_lock(&r->lock);
    bool ok = count_socket(r, thread, delta);
    uv_mutex_unlock(&r->lock);
    if (!ok)
        return FLOW_STORE_NOMEM;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)thread_ttl(r, cfg));
    thread_write(r, touch_lua, thread, ttl); /* refused (down): the next tick refreshes it */
    return FLOW_STORE_OK;
}

static int rs_join(flow_store_t *st, const char *thread, const config_t *cfg, metrics_t *mt)
{
    (void)mt;
    return touch(of(st), thread, cfg, 1);
}

static void rs_leave(flow_store_t *st, const char *thread, const config_t *cfg) { touch(of(st), thread, cfg, -1); }

/* Redis expires tickets and threads by itself (PX, PEXPIRE). */
static void rs_sweep(flow_store_t *st, const config_t *cfg, metrics_t *mt)
{
    thread_ttl(of(st), cfg);
    (void)mt;
}

static void rs_free(flow_store_t *st)
{
    redis_store_t *r = of(st);
    atomic_store(&r->stopping, true);
    uv_async_send(&r->wake);
    uv_thread_join(&r->thread);
    uv_loop_close(&r->loop);
    while (!list_empty(&r->queue)) { /* queued as the thread ended: refused too */
        cmd_t *c = container_of(r->queue.next, cmd_t, node);
        list_remove(&c->node);
        c->status = FLOW_STORE_DOWN;
        finish(r, c);
    }
    strmap_clear(&r->joined);
    uv_mutex_destroy(&r->lock);
    atomic_store(&metrics_gauges.flow_store_up, 0);
    free(r);
}

static bool rs_up(flow_store_t *st) { return atomic_load(&((redis_store_t *)st)->is_up); }

static const flow_store_ops_t redis_ops = {
    .issue = rs_issue,
    .redeem = rs_redeem,
    .history_add = rs_history_add,
    .history = rs_history,
    .noticed = rs_noticed,
    .join = rs_join,
    .leave = rs_leave,
    .sweep = rs_sweep,
    .free = rs_free,
    .up = rs_up,
};

flow_store_t *flow_store_redis_new(const config_t *cfg, char *err, size_t errlen)
{
    redis_store_t *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (config_redis_url_parse(cfg->broker_redis_url, &r->url, err, errlen) != 0) {
        free(r);
        return NULL;
    }
    snprintf(r->prefix, sizeof r->prefix, "%s", cfg->broker_prefix);
    r->base.ops = &redis_ops;
    r->max_pending = cfg->broker_max_pending_bytes;
    atomic_store(&r->ttl_ms, (uint64_t)(cfg->flow_thread_ttl_s > 0 ? cfg->flow_thread_ttl_s : 1) * 1000);
    list_init(&r->queue);
    list_init(&r->inflight);
    uv_mutex_init(&r->lock);
    int rc = uv_loop_init(&r->loop);
    if (!rc) {
        uv_async_init(&r->loop, &r->wake, on_wake);
        r->wake.data = r;
        redis_backoff_init(&r->retry, &r->loop, cfg->broker_reconnect_max_ms, on_retry, r);
        uv_timer_init(&r->loop, &r->tick);
        r->tick.data = r;
        uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
        rc = uv_thread_create(&r->thread, run, r);
        if (rc) {
            uv_walk(&r->loop, close_walk, NULL);
            uv_run(&r->loop, UV_RUN_DEFAULT);
            uv_loop_close(&r->loop);
        }
    }
    if (rc) {
        snprintf(err, errlen, "the store's thread: %s", uv_strerror(rc));
        uv_mutex_destroy(&r->lock);
        free(r);
        return NULL;
    }
    return &r->base;
}
