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

#endif
