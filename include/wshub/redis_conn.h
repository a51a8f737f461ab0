/*
 * redis_conn — one hiredis async connection on a libuv loop, as every Redis user of wshub
 * makes it (the broker's two, the Flow store's): the URL's AUTH and SELECT queued before
 * anything else, so that every command after them runs as the URL asks (keys in its db), and
 * a refused AUTH or SELECT ends the connection (logged without the password) instead of
 * leaving a link that answers every command with an error: its owner's disconnect callback
 * then runs, and its backoff makes it again.
 */
#ifndef WSHUB_REDIS_CONN_H
#define WSHUB_REDIS_CONN_H

#include <hiredis/async.h>
#include <uv.h>

#include "wshub/config.h"

/* NULL when it cannot be made (out of memory, or the loop refused it): nothing to free. */
redisAsyncContext *redis_conn_open(const config_redis_url_t *url, uv_loop_t *loop, void *data,
                                   redisConnectCallback *on_connect, redisDisconnectCallback *on_disconnect);

/* The reconnect backoff of a Redis link, the same for every user: the first retry after
 * REDIS_BACKOFF_FIRST_MS, each next one twice as late up to max_ms (broker.reconnect_max_ms),
 * and from the first again once the link is up (redis_backoff_reset). On the link's loop. */
#define REDIS_BACKOFF_FIRST_MS 100
typedef struct redis_backoff {
    uv_timer_t timer; /* its data is the owner's */
    uv_timer_cb retry;
    uint64_t ms, max_ms;
} redis_backoff_t;

void redis_backoff_init(redis_backoff_t *b, uv_loop_t *loop, uint64_t max_ms, uv_timer_cb retry, void *data);
/* retry runs once after the current delay, which then doubles; nothing if one is due already. */
void redis_backoff_schedule(redis_backoff_t *b);
static inline void redis_backoff_reset(redis_backoff_t *b) { b->ms = REDIS_BACKOFF_FIRST_MS; }

#endif
