/*
 * broker — carries publishes between wshubd nodes (issue 13). Without one (broker.type
 * "memory", the default) the hub routes every publish inside the process. With one, a
 * publish goes to the broker and comes back from it on every node that has a subscriber of
 * its channel, this one included: the broker's order is then the one every subscriber on
 * every node sees, and a message reaches each subscriber once. The hub tells the broker when
 * a channel gets its first subscriber in the process and when it loses its last.
 *
 * One implementation per file (broker_redis.c; NATS would be a second), behind
 * broker_impl_t. Threads: an implementation runs on a thread of its own; every function here
 * may be called from any thread and never blocks (commands are queued to that thread).
 * Callbacks (on_msg, done) run on the broker's thread.
 */
#ifndef WSHUB_BROKER_H
#define WSHUB_BROKER_H

#include <stdbool.h>
#include <stddef.h>

#include "wshub/config.h"

typedef struct broker broker_t;

/* A message of `channel` arrived (payload as published). */
typedef void (*broker_msg_fn)(void *arg, const char *channel, size_t clen, const char *payload,
                              size_t plen);
/* A publish was taken (status 0; nodes: how many nodes received it) or refused (< 0). */
typedef void (*broker_done_fn)(void *arg, int status, long long nodes);

typedef struct broker_impl {
    const char *name;
    /* Starts the broker's thread (connecting is its business). 0 or a negative error. */
    int (*start)(broker_t *b);
    /* Ends the thread: queued publishes are refused (done with < 0). */
    void (*stop)(broker_t *b);
    int (*publish)(broker_t *b, const char *channel, size_t clen, const char *payload, size_t plen,
                   broker_done_fn done, void *arg);
    void (*subscribe)(broker_t *b, const char *channel, size_t clen);
    void (*unsubscribe)(broker_t *b, const char *channel, size_t clen);
    bool (*up)(const broker_t *b);
    void (*free)(broker_t *b);
} broker_impl_t;

/* What every implementation's state starts with. */
struct broker {
    const broker_impl_t *impl;
    broker_msg_fn on_msg;
    void *arg;
};

/* The broker of cfg (NULL for broker.type "memory": the hub alone), not started. NULL with a
 * line in err when it cannot be made. */
broker_t *broker_new(const config_t *cfg, broker_msg_fn on_msg, void *arg, char *err, size_t errlen);

static inline int broker_start(broker_t *b) { return b->impl->start(b); }
static inline void broker_stop(broker_t *b) { b->impl->stop(b); }
static inline void broker_free(broker_t *b) { if (b) b->impl->free(b); }
/* Queues a publish; refused at once, done not called: UV_ECONNREFUSED while the link is down,
 * UV_EAGAIN while broker.max_pending_bytes of publishes wait for Redis's answer. */
static inline int broker_publish(broker_t *b, const char *channel, size_t clen, const char *payload,
                                 size_t plen, broker_done_fn done, void *arg)
{
    return b->impl->publish(b, channel, clen, payload, plen, done, arg);
}
static inline void broker_subscribe(broker_t *b, const char *channel, size_t clen)
{
    b->impl->subscribe(b, channel, clen);
}
static inline void broker_unsubscribe(broker_t *b, const char *channel, size_t clen)
{
    b->impl->unsubscribe(b, channel, clen);
}
static inline bool broker_up(const broker_t *b) { return b->impl->up(b); }

/* broker_redis.c */
broker_t *broker_redis_new(const config_t *cfg, char *err, size_t errlen);

#endif
