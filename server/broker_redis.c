/*
 * broker_redis — the Redis broker (include/wshub/broker.h): hiredis's async API on a libuv
 * loop of its own thread, one publishing and one subscribing connection per node (never per
 * client). Channel `c` is the Redis channel `<broker.prefix>c`, so that two deployments can
 * share a Redis.
 *
 * Other threads hand it commands through a queue (one mutex, a uv_async wake-up). PUBLISHes
 * are pipelined on the publishing connection and answered in order. The subscribing
 * connection carries every channel the hub has local subscribers of; when either connection
 * drops, both are made again after a capped exponential backoff (broker.reconnect_max_ms) and
 * every channel is subscribed again. While the link is down, publishes are refused at once.
 *
 * A channel's subscription is confirmed (on_subscribed) when Redis answers its SUBSCRIBE and
 * no later (UN)SUBSCRIBE of it is unanswered. A SUBSCRIBE asked while an UNSUBSCRIBE of the
 * same channel is unanswered waits for that answer: hiredis 0.14 forgets a channel's callback
 * when an UNSUBSCRIBE is answered, even if a SUBSCRIBE was sent after it, and the channel's
 * messages would then be dropped.
 * Never: runs on a worker's loop or blocks one (workers only take the queue's mutex).
 */
#include "wshub/broker.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "wshub/list.h"
#include "wshub/log.h"
#include "wshub/metrics.h"
#include "wshub/redis_conn.h"
#include "wshub/strmap.h"

/* CMD_CALL: any command on the publishing connection, in order with the publishes (history,
 * issue 17): argv in key[] (each argument NUL-ended), its answer to reply or done. */
typedef enum { CMD_PUBLISH, CMD_SUBSCRIBE, CMD_UNSUBSCRIBE, CMD_CALL } cmd_kind_t;

typedef struct cmd {
    list_node_t node;
    cmd_kind_t kind;
    uint64_t gen;      /* SUBSCRIBE: the hub's token, told back with on_subscribed */
    broker_done_fn done;
    void *arg;
    broker_reply_fn reply; /* CMD_CALL: the answer's items (else done gets its integer) */
    int argc;          /* CMD_CALL */
    const char **argv;
    size_t *argvlen;
    size_t klen, plen; /* key = prefix + channel; payload (PUBLISH) */
    char *payload;     /* in key[], after the key's NUL */
    char key[];
} cmd_t;

typedef struct redis_broker {
    broker_t base;
    config_redis_url_t url;
    char *prefix;
    size_t prefix_len;
    size_t max_pending;    /* broker.max_pending_bytes */
    atomic_size_t pending; /* bytes of PUBLISHes and calls queued or awaiting their reply */
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uint64_t backoff_max_ms; /* broker.reconnect_max_ms, for retry once the loop is made */
    redis_backoff_t retry;
    uv_mutex_t lock;       /* queue, channels */
    list_node_t queue;     /* cmd_t, from any thread */
    strmap_t channels;     /* keys (prefix + channel) with local subscribers -> their gen */
    strmap_t inflight;     /* key -> sub_state_t: (un)subscribes sent and not answered (broker thread) */
    atomic_bool stopping;
    atomic_bool is_up;     /* both connections ready: publishes are taken */
    bool was_up;           /* it was up once: the next up is a reconnect */
    redisAsyncContext *pub, *sub; /* broker thread only */
    bool pub_ready, sub_ready;
} redis_broker_t;

/* A channel subscribed on the current subscribing connection, or being (broker thread only):
 * its entry goes once an UNSUBSCRIBE of it is answered. */
typedef struct sub_state {
    int out;           /* (UN)SUBSCRIBEs sent, not answered */
    bool unsub_out;    /* the last one sent is an UNSUBSCRIBE */
    uint64_t gen;      /* the last SUBSCRIBE sent */
    uint64_t deferred; /* a SUBSCRIBE to send once the UNSUBSCRIBE is answered (0: none) */
} sub_state_t;

static redis_broker_t *of(const broker_t *b) { return (redis_broker_t *)b; }

static size_t cmd_bytes(const cmd_t *c) { return sizeof *c + c->klen + c->plen + 2; }

/* A PUBLISH or a call is done with (answered or refused): what it held is released. */
static void cmd_free(redis_broker_t *r, cmd_t *c)
{
    if (c->kind == CMD_PUBLISH || c->kind == CMD_CALL) {
        atomic_fetch_sub(&r->pending, cmd_bytes(c));
        atomic_fetch_sub(&metrics_gauges.broker_pending, cmd_bytes(c));
    }
    free(c);
}

static void cmd_refuse(redis_broker_t *r, cmd_t *c)
{
    if ((c->kind == CMD_PUBLISH || c->kind == CMD_CALL) && c->done)
        c->done(c->arg, -1, 0);
    else if (c->kind == CMD_CALL && c->reply)
        c->reply(c->arg, -1, 0, NULL, NULL);
    cmd_free(r, c);
}

/* ------------------------------------------------------------------ the subscribing side */

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata);

static void forget_inflight(redis_broker_t *r)
{
    for (size_t i = 0; i < r->inflight.nbuckets; i++)
        for (strmap_entry_t *e = r->inflight.buckets[i]; e; e = e->next)
            free(e->value);
    strmap_clear(&r->inflight);
}

/* Sends SUBSCRIBE (gen > 0) or UNSUBSCRIBE of key, in the order asked (see the top). An
 * UNSUBSCRIBE of a channel this connection never subscribed is not sent: hiredis would not
 * hand us its answer. */
static void send_subscribe(redis_broker_t *r, uint64_t gen, const char *key, size_t klen)
{
    if (!r->sub || !r->sub_ready)
        return; /* resubscribe_all sends what is wanted once the link is back */
    strmap_entry_t *e = strmap_find(&r->inflight, key, klen);
    sub_state_t *st = e ? e->value : NULL;
    if (!gen && (!st || st->unsub_out || st->deferred)) {
        if (st)
            st->deferred = 0; /* a SUBSCRIBE never sent: nothing to undo */
        return;
    }
    if (!st && (!(st = calloc(1, sizeof *st)) || !strmap_insert(&r->inflight, key, klen, st))) {
        free(st);
        log_error("broker", "out of memory: a channel's subscription is not sent to redis");
        return;
    }
    if (gen && st->unsub_out) {
        st->deferred = gen;
        return;
    }
    if (redisAsyncCommand(r->sub, on_sub_reply, r, gen ? "SUBSCRIBE %b" : "UNSUBSCRIBE %b", key, klen) != REDIS_OK) {
        /* The connection is closing (its disconnect resubscribes all on the next one) or out of memory. */
        log_error("broker", "a channel's %s was not sent to redis", gen ? "SUBSCRIBE" : "UNSUBSCRIBE");
        return;
    }
    st->out++;
    st->unsub_out = !gen;
    if (gen)
        st->gen = gen;
}

/* Redis answered a SUBSCRIBE or an UNSUBSCRIBE of key. */
static void sub_answered(redis_broker_t *r, bool subscribed, const char *key, size_t klen)
{
    strmap_entry_t *e = strmap_find(&r->inflight, key, klen);
    if (!e)
        return;
    sub_state_t *st = e->value;
    if (st->out > 0 && --st->out > 0)
        return;
    if (st->unsub_out) { /* every answer is in, the last for the UNSUBSCRIBE */
        uint64_t deferred = st->deferred;
        free(st);
        strmap_remove(&r->inflight, e);
        if (deferred)
            send_subscribe(r, deferred, key, klen);
    } else if (subscribed && klen >= r->prefix_len) {
        r->base.ev.on_subscribed(r->base.ev.arg, key + r->prefix_len, klen - r->prefix_len, st->gen);
    }
}

/* Every reply of the subscribing connection: "message" ones carry a publish. */
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_broker_t *r = privdata;
    redisReply *rep = reply;
    if (ac != r->sub || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
        return;
    redisReply *kind = rep->element[0], *ch = rep->element[1], *msg = rep->element[2];
    if (kind->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "subscribe") == 0 || strcmp(kind->str, "unsubscribe") == 0) {
        sub_answered(r, kind->str[0] == 's', ch->str, (size_t)ch->len);
        return;
    }
    if (strcmp(kind->str, "message") != 0 || msg->type != REDIS_REPLY_STRING || (size_t)ch->len < r->prefix_len)
        return;
    r->base.ev.on_msg(r->base.ev.arg, ch->str + r->prefix_len, (size_t)ch->len - r->prefix_len, msg->str,
                      (size_t)msg->len);
}

/* After a (re)connect: every channel with local subscribers, with its gen. */
static void resubscribe_all(redis_broker_t *r)
{
    uv_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->channels.nbuckets; i++)
        for (strmap_entry_t *e = r->channels.buckets[i]; e; e = e->next)
            send_subscribe(r, (uint64_t)(uintptr_t)e->value, e->key, e->klen);
    uv_mutex_unlock(&r->lock);
}

/* ------------------------------------------------------------------ the publishing side */

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_broker_t *r = ac->data;
    cmd_t *c = privdata;
    redisReply *rep = reply;
    if (c->done) {
        if (rep && rep->type == REDIS_REPLY_INTEGER)
            c->done(c->arg, 0, rep->integer);
        else
            c->done(c->arg, -1, 0); /* an error reply, or the connection went down */
    }
    cmd_free(r, c);
}

/* The answer to a CMD_CALL, flattened: a string, or an array of strings and integers. */
static void on_call_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_broker_t *r = ac->data;
    cmd_t *c = privdata;
    redisReply *rep = reply;
    if (c->done) { /* a publish: its answer is PUBLISH's */
        on_pub_reply(ac, reply, privdata);
        return;
    }
    if (c->reply && (!rep || rep->type == REDIS_REPLY_ERROR)) {
        if (rep)
            log_warn("broker", "redis refused a history command: %.*s", (int)(rep->len > 200 ? 200 : rep->len), rep->str);
        c->reply(c->arg, -1, 0, NULL, NULL);
    } else if (c->reply) {
        size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements : rep->type == REDIS_REPLY_NIL ? 0 : 1;
        redisReply **el = rep->type == REDIS_REPLY_ARRAY ? rep->element : &rep;
        const char **items = calloc(n + 1, sizeof *items);
        size_t *lens = calloc(n + 1, sizeof *lens);
        char (*num)[24] = calloc(n + 1, sizeof *num);
        if (!items || !lens || !num) {
            c->reply(c->arg, UV_ENOMEM, 0, NULL, NULL);
        } else {
            for (size_t i = 0; i < n; i++) {
                if (el[i]->type == REDIS_REPLY_INTEGER) {
                    lens[i] = (size_t)snprintf(num[i], sizeof num[i], "%lld", el[i]->integer);
                    items[i] = num[i];
                } else {
                    items[i] = el[i]->str ? el[i]->str : "";
                    lens[i] = el[i]->str ? el[i]->len : 0;
                }
            }
            c->reply(c->arg, 0, n, items, lens);
        }
        free(items);
        free(lens);
        free(num);
    }
    cmd_free(r, c);
}

/* Runs what other threads queued (on the broker's thread). */
static void run_queue(redis_broker_t *r)
{
    list_node_t q;
    uv_mutex_lock(&r->lock);
    list_take_all(&q, &r->queue);
    uv_mutex_unlock(&r->lock);
    while (!list_empty(&q)) {
        cmd_t *c = container_of(q.next, cmd_t, node);
        list_remove(&c->node);
        if (c->kind == CMD_CALL) {
            if (!atomic_load(&r->is_up) ||
                redisAsyncCommandArgv(r->pub, on_call_reply, c, c->argc, c->argv, c->argvlen) != REDIS_OK)
                cmd_refuse(r, c);
        } else if (c->kind != CMD_PUBLISH) {
            send_subscribe(r, c->kind == CMD_SUBSCRIBE ? c->gen : 0, c->key, c->klen);
            free(c);
        } else if (!atomic_load(&r->is_up) ||
                   redisAsyncCommand(r->pub, on_pub_reply, c, "PUBLISH %b %b", c->key, c->klen, c->payload,
                                     c->plen) != REDIS_OK) {
            cmd_refuse(r, c);
        }
    }
}

/* ------------------------------------------------------------------ connections */

static void connect_both(redis_broker_t *r);

static void on_retry(uv_timer_t *t) { connect_both(t->data); }

static void set_up(redis_broker_t *r, bool up)
{
    if (atomic_exchange(&r->is_up, up) == up)
        return;
    atomic_store(&metrics_gauges.broker_up, up);
    if (up && r->was_up)
        atomic_fetch_add(&metrics_gauges.broker_reconnects, 1);
    r->was_up = r->was_up || up;
    log_info("broker", "redis %s:%d %s", r->url.host, r->url.port, up ? "connected" : "unreachable: reconnecting");
    r->base.ev.on_link(r->base.ev.arg, up);
}

/* Frees a connection we no longer want: its pending replies come back NULL (refused), and
 * its callbacks, finding it no longer ours, do nothing more. */
static void drop(redisAsyncContext **acp, bool *ready)
{
    redisAsyncContext *ac = *acp;
    *acp = NULL;
    *ready = false;
    if (ac)
        redisAsyncFree(ac);
}

/* One connection is gone: the other is dropped too, and both are made again after the
 * backoff, so that every channel is subscribed again on a fresh link. */
static void link_lost(redis_broker_t *r)
{
    set_up(r, false);
    drop(&r->pub, &r->pub_ready);
    drop(&r->sub, &r->sub_ready);
    forget_inflight(r); /* that connection's answers will never come */
    if (!atomic_load(&r->stopping))
        redis_backoff_schedule(&r->retry);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_broker_t *r = ac->data;
    bool pub = ac == r->pub;
    if (!pub && ac != r->sub)
        return; /* dropped already */
    if (status != REDIS_OK) { /* hiredis frees the context after this callback */
        if (pub)
            r->pub = NULL;
        else
            r->sub = NULL;
        link_lost(r);
        return;
    }
    if (pub)
        r->pub_ready = true;
    else
        r->sub_ready = true;
    if (!r->pub_ready || !r->sub_ready)
        return;
    redis_backoff_reset(&r->retry);
    set_up(r, true);
    resubscribe_all(r);
    run_queue(r);
}

/* hiredis frees the context after this callback. */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    redis_broker_t *r = ac->data;
    if (ac == r->pub) {
        r->pub = NULL;
        r->pub_ready = false;
    } else if (ac == r->sub) {
        r->sub = NULL;
        r->sub_ready = false;
    } else {
        return; /* dropped by us */
    }
    link_lost(r);
}

/* AUTH and SELECT first (redis_conn.h): the history and session keys go to the URL's db. */
static redisAsyncContext *open_one(redis_broker_t *r)
{
    return redis_conn_open(&r->url, &r->loop, r, on_connect, on_disconnect);
}

static void connect_both(redis_broker_t *r)
{
    if (atomic_load(&r->stopping))
        return;
    if (!r->pub)
        r->pub = open_one(r);
    if (!r->sub)
        r->sub = open_one(r);
    if (!r->pub || !r->sub)
        link_lost(r);
}

/* ------------------------------------------------------------------ the thread */

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_wake(uv_async_t *a)
{
    redis_broker_t *r = a->data;
    if (!atomic_load(&r->stopping)) {
        run_queue(r);
        return;
    }
    atomic_store(&r->is_up, false);
    drop(&r->pub, &r->pub_ready); /* pending replies are answered NULL: refused */
    drop(&r->sub, &r->sub_ready);
    run_queue(r); /* is_up is false: every queued publish is refused */
    uv_walk(&r->loop, close_walk, NULL);
}

static void run(void *arg)
{
    redis_broker_t *r = arg;
    connect_both(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
}

static int rb_start(broker_t *b)
{
    redis_broker_t *r = of(b);
    int rc = uv_loop_init(&r->loop);
    if (rc)
        return rc;
    uv_async_init(&r->loop, &r->wake, on_wake);
    r->wake.data = r;
    redis_backoff_init(&r->retry, &r->loop, r->backoff_max_ms, on_retry, r);
    return uv_thread_create(&r->thread, run, r);
}

static void rb_stop(broker_t *b)
{
    redis_broker_t *r = of(b);
    if (atomic_exchange(&r->stopping, true))
        return;
    uv_async_send(&r->wake);
    uv_thread_join(&r->thread);
    uv_loop_close(&r->loop);
}

static void rb_free(broker_t *b)
{
    redis_broker_t *r = of(b);
    while (!list_empty(&r->queue)) {
        cmd_t *c = container_of(r->queue.next, cmd_t, node);
        list_remove(&c->node);
        cmd_refuse(r, c);
    }
    strmap_clear(&r->channels);
    forget_inflight(r);
    uv_mutex_destroy(&r->lock);
    free(r->prefix);
    free(r);
}

/* ------------------------------------------------------------------ from any thread */

static cmd_t *cmd_new(redis_broker_t *r, cmd_kind_t kind, const char *channel, size_t clen, const char *payload,
                      size_t plen)
{
    size_t klen = r->prefix_len + clen;
    cmd_t *c = malloc(sizeof *c + klen + 1 + plen + 1);
    if (!c)
        return NULL;
    c->kind = kind;
    c->gen = 0;
    c->done = NULL;
    c->arg = NULL;
    c->klen = klen;
    memcpy(c->key, r->prefix, r->prefix_len);
    memcpy(c->key + r->prefix_len, channel, clen);
    c->key[klen] = 0;
    c->payload = c->key + klen + 1;
    c->plen = plen;
    if (plen)
        memcpy(c->payload, payload, plen);
    c->payload[plen] = 0;
    return c;
}

static void enqueue(redis_broker_t *r, cmd_t *c)
{
    uv_mutex_lock(&r->lock);
    bool stopping = atomic_load(&r->stopping);
    if (!stopping)
        list_insert_tail(&r->queue, &c->node);
    uv_mutex_unlock(&r->lock);
    if (stopping)
        cmd_refuse(r, c);
    else
        uv_async_send(&r->wake);
}

static int rb_publish(broker_t *b, const char *channel, size_t clen, const char *payload, size_t plen,
                      broker_done_fn done, void *arg)
{
    redis_broker_t *r = of(b);
    if (!atomic_load(&r->is_up))
        return UV_ECONNREFUSED;
    /* A slow or stuck Redis must not make the node hold publishes without a bound. */
    size_t need = sizeof(cmd_t) + r->prefix_len + clen + plen + 2;
    if (atomic_fetch_add(&r->pending, need) + need > r->max_pending) {
        atomic_fetch_sub(&r->pending, need);
        return UV_EAGAIN;
    }
    cmd_t *c = cmd_new(r, CMD_PUBLISH, channel, clen, payload, plen);
    if (!c) {
        atomic_fetch_sub(&r->pending, need);
        return UV_ENOMEM;
    }
    atomic_fetch_add(&metrics_gauges.broker_pending, need);
    c->done = done;
    c->arg = arg;
    enqueue(r, c);
    return 0;
}

/* A CMD_CALL of argc arguments; argument i is args[i] (lens[i] bytes), with the prefix before
 * it when prefixed[i]. One allocation: the argument vectors and the bytes follow the struct. */
static cmd_t *call_new(redis_broker_t *r, int argc, const char *const *args, const size_t *lens, const bool *prefixed)
{
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += lens[i] + 1 + (prefixed[i] ? r->prefix_len : 0);
    size_t vec = (size_t)argc * (sizeof(char *) + sizeof(size_t));
    cmd_t *c = calloc(1, sizeof *c + vec + bytes + 1);
    if (!c)
        return NULL;
    c->kind = CMD_CALL;
    c->argc = argc;
    c->argvlen = (size_t *)(void *)c->key;
    c->argv = (const char **)(void *)(c->key + (size_t)argc * sizeof(size_t));
    char *p = c->key + vec;
    for (int i = 0; i < argc; i++) {
        c->argv[i] = p;
        if (prefixed[i])
            p = (char *)memcpy(p, r->prefix, r->prefix_len) + r->prefix_len;
        memcpy(p, args[i], lens[i]);
        p += lens[i];
        *p++ = 0;
        c->argvlen[i] = (size_t)(p - 1 - c->argv[i]);
    }
    c->klen = vec + bytes; /* cmd_bytes counts it */
    c->plen = 0;
    return c;
}

/* Queues a CMD_CALL. Every one counts in pending (broker.max_pending_bytes), reads too: a
 * client asking history again and again of a slow Redis must not grow the node either. */
static int call_queue(redis_broker_t *r, cmd_t *c)
{
    if (!c)
        return UV_ENOMEM;
    if (!atomic_load(&r->is_up)) {
        free(c);
        return UV_ECONNREFUSED;
    }
    size_t need = cmd_bytes(c);
    if (atomic_fetch_add(&r->pending, need) + need > r->max_pending) {
        atomic_fetch_sub(&r->pending, need);
        free(c);
        return UV_EAGAIN;
    }
    atomic_fetch_add(&metrics_gauges.broker_pending, need);
    enqueue(r, c);
    return 0;
}

/* Gives the publish its position, keeps it in the channel's stream, and publishes it with the
 * position, in one step (a script runs alone in Redis): positions follow Redis's order. */
static const char publish_kept_lua[] =
    "local o = redis.call('HINCRBY', KEYS[2], 'o', 1)\n"
    "local e = redis.call('HGET', KEYS[2], 'e')\n"
    "if o == 1 or not e then redis.call('DEL', KEYS[1]); e = ARGV[1]; redis.call('HSET', KEYS[2], 'e', e) end\n"
    "local p = '2\\n' .. e .. '\\n' .. o .. '\\n' .. ARGV[5]\n"
    "redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], o .. '-0', 't', ARGV[4], 'p', p)\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[3])\n"
    "return redis.call('PUBLISH', KEYS[3], p)\n";

/* The channel's epoch, its last offset, then (ms, payload) of each message after ARGV[1]. */
static const char history_lua[] =
    "local e = redis.call('HGET', KEYS[2], 'e')\n"
    "if not e then return {'', '0'} end\n"
    "local r = {e, redis.call('HGET', KEYS[2], 'o')}\n"
    "local start = '-'\n"
    "if tonumber(ARGV[1]) >= 0 then start = '(' .. ARGV[1] .. '-0' end\n"
    "local items = redis.call('XRANGE', KEYS[1], start, '+')\n"
    "for i = 1, #items do local f = items[i][2]; r[#r + 1] = f[2]; r[#r + 1] = f[4] end\n"
    "return r\n";

static int rb_publish_kept(broker_t *b, const char *channel, size_t clen, const char *payload, size_t plen,
                           size_t history_size, uint32_t ttl_s, const char *epoch, broker_done_fn done, void *arg)
{
    redis_broker_t *r = of(b);
    char size[24], ttl[24], now[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(size, sizeof size, "%zu", history_size);
    snprintf(ttl, sizeof ttl, "%u", ttl_s);
    snprintf(now, sizeof now, "%llu", (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000);
    const char *args[] = {"EVAL", publish_kept_lua, "3", "h:", "hm:", "", epoch, size, ttl, now, payload};
    size_t lens[] = {4, sizeof publish_kept_lua - 1, 1, 2, 3, 0, strlen(epoch), strlen(size), strlen(ttl), strlen(now), plen};
    bool pre[] = {false, false, false, true, true, true, false, false, false, false, false};
    /* KEYS: <prefix>h:<channel> (the stream), <prefix>hm:<channel> (offset, epoch), <prefix><channel> */
    char *k[3] = {malloc(2 + clen), malloc(3 + clen), malloc(clen + 1)};
    cmd_t *c = NULL;
    if (k[0] && k[1] && k[2]) {
        memcpy(k[0], "h:", 2), memcpy(k[0] + 2, channel, clen);
        memcpy(k[1], "hm:", 3), memcpy(k[1] + 3, channel, clen);
        memcpy(k[2], channel, clen);
        args[3] = k[0], args[4] = k[1], args[5] = k[2];
        lens[3] = 2 + clen, lens[4] = 3 + clen, lens[5] = clen;
        c = call_new(r, 11, args, lens, pre);
    }
    for (int i = 0; i < 3; i++)
        free(k[i]);
    if (c) {
        c->done = done;
        c->arg = arg;
    }
    return call_queue(r, c);
}

static int rb_history(broker_t *b, const char *channel, size_t clen, long long after, broker_reply_fn reply, void *arg)
{
    redis_broker_t *r = of(b);
    char a[24];
    snprintf(a, sizeof a, "%lld", after);
    char *k[2] = {malloc(2 + clen), malloc(3 + clen)};
    cmd_t *c = NULL;
    if (k[0] && k[1]) {
        memcpy(k[0], "h:", 2), memcpy(k[0] + 2, channel, clen);
        memcpy(k[1], "hm:", 3), memcpy(k[1] + 3, channel, clen);
        const char *args[] = {"EVAL", history_lua, "2", k[0], k[1], a};
        size_t lens[] = {4, sizeof history_lua - 1, 1, 2 + clen, 3 + clen, strlen(a)};
        bool pre[] = {false, false, false, true, true, false};
        c = call_new(r, 6, args, lens, pre);
    }
    free(k[0]);
    free(k[1]);
    if (c) {
        c->reply = reply;
        c->arg = arg;
    }
    return call_queue(r, c);
}

static int rb_kv_set(broker_t *b, const char *key, size_t klen, const char *val, size_t vlen, uint32_t ttl_s)
{
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%u", ttl_s);
    const char *args[] = {"SET", key, val, "EX", ttl};
    size_t lens[] = {3, klen, vlen, 2, strlen(ttl)};
    bool pre[] = {false, true, false, false, false};
    return call_queue(of(b), call_new(of(b), 5, args, lens, pre));
}

static int rb_kv_get(broker_t *b, const char *key, size_t klen, broker_reply_fn reply, void *arg)
{
    const char *args[] = {"GET", key};
    size_t lens[] = {3, klen};
    bool pre[] = {false, true};
    cmd_t *c = call_new(of(b), 2, args, lens, pre);
    if (c) {
        c->reply = reply;
        c->arg = arg;
    }
    return call_queue(of(b), c);
}

/* The set changes here, under the lock, in the hub's order; the command only tells Redis.
 * gen 0: unsubscribe. */
static void subscription(broker_t *b, uint64_t gen, const char *channel, size_t clen)
{
    redis_broker_t *r = of(b);
    cmd_t *c = cmd_new(r, gen ? CMD_SUBSCRIBE : CMD_UNSUBSCRIBE, channel, clen, NULL, 0);
    if (!c) {
        log_error("broker", "out of memory: a channel's subscription is not sent to redis");
        return;
    }
    c->gen = gen;
    uv_mutex_lock(&r->lock);
    strmap_entry_t *e = strmap_find(&r->channels, c->key, c->klen);
    if (gen && !e && !strmap_insert(&r->channels, c->key, c->klen, (void *)(uintptr_t)gen))
        log_error("broker", "out of memory: a channel is not subscribed again after a reconnect");
    else if (gen && e)
        e->value = (void *)(uintptr_t)gen;
    else if (e)
        strmap_remove(&r->channels, e);
    uv_mutex_unlock(&r->lock);
    enqueue(r, c);
}

static void rb_subscribe(broker_t *b, const char *channel, size_t clen, uint64_t gen)
{
    subscription(b, gen ? gen : 1, channel, clen);
}
static void rb_unsubscribe(broker_t *b, const char *channel, size_t clen) { subscription(b, 0, channel, clen); }
static bool rb_up(const broker_t *b) { return atomic_load(&of(b)->is_up); }
static bool rb_busy(const broker_t *b) { return atomic_load_explicit(&of(b)->pending, memory_order_relaxed) > 0; }

static const broker_impl_t redis_impl = {
    .name = "redis",
    .start = rb_start,
    .stop = rb_stop,
    .publish = rb_publish,
    .subscribe = rb_subscribe,
    .unsubscribe = rb_unsubscribe,
    .publish_kept = rb_publish_kept,
    .history = rb_history,
    .kv_set = rb_kv_set,
    .kv_get = rb_kv_get,
    .up = rb_up,
    .busy = rb_busy,
    .free = rb_free,
};

broker_t *broker_redis_new(const config_t *cfg, char *err, size_t errlen)
{
    redis_broker_t *r = calloc(1, sizeof *r);
    if (!r || config_redis_url_parse(cfg->broker_redis_url, &r->url, err, errlen) != 0 ||
        !(r->prefix = strdup(cfg->broker_prefix))) {
        if (r && !err[0])
            snprintf(err, errlen, "broker: out of memory");
        free(r);
        return NULL;
    }
    r->base.impl = &redis_impl;
    r->prefix_len = strlen(r->prefix);
    r->backoff_max_ms = cfg->broker_reconnect_max_ms;
    r->max_pending = cfg->broker_max_pending_bytes;
    list_init(&r->queue);
    uv_mutex_init(&r->lock);
    return &r->base;
}
