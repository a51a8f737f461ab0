/*
 * broker — carries publishes between wshubd nodes (issue 13). Without one (broker.type
 * "memory", the default) the hub routes every publish inside the process. With one, a
 * publish goes to the broker and comes back from it on every node that has a subscriber of
 * its channel, this one included: the broker's order is then the one every subscriber on
 * every node sees, and a message reaches each subscriber once. The hub tells the broker when
 * a channel gets its first subscriber in the process and when it loses its last.
 *
 * Subscriptions are confirmed: a channel's subscription holds once the broker says so
 * (on_subscribed, with the token its subscribe was given), so that a client is told
 * "subscribed" only when a publish on any node will reach it. The link's state is told too
 * (on_link): while it is down nothing is published or subscribed, and every channel is
 * subscribed again once it is back (each confirmed again).
 *
 * One implementation per file (broker_redis.c; NATS would be a second), behind
 * broker_impl_t. Threads: an implementation runs on a thread of its own; every function here
 * may be called from any thread and never blocks (commands are queued to that thread).
 * Callbacks (on_msg, on_subscribed, on_link, done) run on the broker's thread, with none of
 * the broker's locks held.
 */
#ifndef WSHUB_BROKER_H
#define WSHUB_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wshub/config.h"

typedef struct broker broker_t;

/* A message of `channel` arrived (payload as published). */
typedef void (*broker_msg_fn)(void *arg, const char *channel, size_t clen, const char *payload,
                              size_t plen);
/* The subscription of `channel` asked with token `gen` now holds (the latest subscribe of
 * the channel: an earlier one's answer, overtaken by an unsubscribe, is never told). */
typedef void (*broker_sub_fn)(void *arg, const char *channel, size_t clen, uint64_t gen);
/* The link came up (publishes and subscribes are taken) or went down. */
typedef void (*broker_link_fn)(void *arg, bool up);
/* What the broker tells its user (the hub); arg is given to each. */
typedef struct broker_events {
    broker_msg_fn on_msg;
    broker_sub_fn on_subscribed;
    broker_link_fn on_link;
    void *arg;
} broker_events_t;

/* A publish was taken (status 0; nodes: how many nodes received it) or refused (< 0). */
typedef void (*broker_done_fn)(void *arg, int status, long long nodes);

/* A command's answer: status 0 and its items (a string: one; an array: each, integers as
 * text; nil: none), or status < 0 (an error reply, or the link went down). */
typedef void (*broker_reply_fn)(void *arg, int status, size_t n, const char *const *items, const size_t *lens);

typedef struct broker_impl {
    const char *name;
    /* Starts the broker's thread (connecting is its business). 0 or a negative error. */
    int (*start)(broker_t *b);
    /* Ends the thread: queued publishes are refused (done with < 0). */
    void (*stop)(broker_t *b);
    int (*publish)(broker_t *b, const char *channel, size_t clen, const char *payload, size_t plen,
                   broker_done_fn done, void *arg);
    void (*subscribe)(broker_t *b, const char *channel, size_t clen, uint64_t gen);
    void (*unsubscribe)(broker_t *b, const char *channel, size_t clen);
    /* History (issue 17): a publish that Redis gives its position and keeps (history_size
     * entries per channel for ttl_s; epoch is taken when the channel has none); payload is a
     * version 1 payload without its "1\n": what travels is "2\n<epoch>\n<offset>\n" + payload. */
    int (*publish_kept)(broker_t *b, const char *channel, size_t clen, const char *payload, size_t plen,
                        size_t history_size, uint32_t ttl_s, const char *epoch, broker_done_fn done, void *arg);
    /* Reads a channel's history after offset `after` (-1: all of it): items are its epoch, its
     * last offset, then (ms, payload) per message, in order. */
    int (*history)(broker_t *b, const char *channel, size_t clen, long long after, broker_reply_fn reply, void *arg);
    /* A value shared by the nodes for ttl_s (Action Cable sessions), and reading it back. */
    int (*kv_set)(broker_t *b, const char *key, size_t klen, const char *val, size_t vlen, uint32_t ttl_s);
    int (*kv_get)(broker_t *b, const char *key, size_t klen, broker_reply_fn reply, void *arg);
    bool (*up)(const broker_t *b);
    /* Does the broker's thread hold work (commands not answered yet)? */
    bool (*busy)(const broker_t *b);
    void (*free)(broker_t *b);
} broker_impl_t;

/* What every implementation's state starts with. */
struct broker {
    const broker_impl_t *impl;
    broker_events_t ev;
};

/* The broker of cfg (NULL for broker.type "memory": the hub alone), not started. NULL with a
 * line in err when it cannot be made. */
broker_t *broker_new(const config_t *cfg, const broker_events_t *ev, char *err, size_t errlen);

static inline int broker_start(broker_t *b) { return b->impl->start(b); }
static inline void broker_stop(broker_t *b) { b->impl->stop(b); }
static inline void broker_free(broker_t *b) { if (b) b->impl->free(b); }
/* Queues a publish; refused at once, done not called: UV_ECONNREFUSED while the link is down,
 * UV_EAGAIN while broker.max_pending_bytes of commands (publishes, history and session reads and
 * writes) wait for Redis's answer. */
static inline int broker_publish(broker_t *b, const char *channel, size_t clen, const char *payload,
                                 size_t plen, broker_done_fn done, void *arg)
{
    return b->impl->publish(b, channel, clen, payload, plen, done, arg);
}
/* The channel's first subscriber in this process: gen, a token the caller chose, comes back
 * with on_subscribed once the subscription holds. */
static inline void broker_subscribe(broker_t *b, const char *channel, size_t clen, uint64_t gen)
{
    b->impl->subscribe(b, channel, clen, gen);
}
static inline void broker_unsubscribe(broker_t *b, const char *channel, size_t clen)
{
    b->impl->unsubscribe(b, channel, clen);
}
static inline bool broker_up(const broker_t *b) { return b->impl->up(b); }
/* The history calls (broker_impl_t); each is refused at once like broker_publish, and its
 * callback then not called. Callbacks run on the broker's thread. */
static inline int broker_publish_kept(broker_t *b, const char *channel, size_t clen, const char *payload,
                                      size_t plen, size_t history_size, uint32_t ttl_s, const char *epoch,
                                      broker_done_fn done, void *arg)
{
    return b->impl->publish_kept(b, channel, clen, payload, plen, history_size, ttl_s, epoch, done, arg);
}
static inline int broker_history(broker_t *b, const char *channel, size_t clen, long long after,
                                 broker_reply_fn reply, void *arg)
{
    return b->impl->history(b, channel, clen, after, reply, arg);
}
static inline int broker_kv_set(broker_t *b, const char *key, size_t klen, const char *val, size_t vlen,
                                uint32_t ttl_s)
{
    return b->impl->kv_set(b, key, klen, val, vlen, ttl_s);
}
static inline int broker_kv_get(broker_t *b, const char *key, size_t klen, broker_reply_fn reply, void *arg)
{
    return b->impl->kv_get(b, key, klen, reply, arg);
}
/* Any thread: a worker whose loop will not block lets the broker's thread run first (a yield)
 * while this is true, so that publishes are not held behind its writes. */
static inline bool broker_busy(const broker_t *b) { return b->impl->busy(b); }

/* broker_redis.c */
broker_t *broker_redis_new(const config_t *cfg, char *err, size_t errlen);

#endif
