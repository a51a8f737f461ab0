/*
 * redis_conn — see include/wshub/redis_conn.h.
 */
#include "wshub/redis_conn.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/hiredis.h>

#include "wshub/log.h"

/* The answer to AUTH or SELECT: an error ends the connection (privdata: which command). */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ERROR)
        return;
    log_error("redis", "%s refused by redis: %.120s", (const char *)privdata, rep->str);
    redisAsyncDisconnect(ac);
}

redisAsyncContext *redis_conn_open(const config_redis_url_t *url, uv_loop_t *loop, void *data,
                                   redisConnectCallback *on_connect, redisDisconnectCallback *on_disconnect)
{
    redisAsyncContext *ac = redisAsyncConnect(url->host, url->port);
    if (!ac)
        return NULL;
    if (ac->err || redisLibuvAttach(ac, loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = data;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (url->password[0] && url->user[0])
        redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s %s", url->user, url->password);
    else if (url->password[0])
        redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", url->password);
    if (url->db)
        redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %d", url->db);
    return ac;
}

void redis_backoff_init(redis_backoff_t *b, uv_loop_t *loop, uint64_t max_ms, uv_timer_cb retry, void *data)
{
    uv_timer_init(loop, &b->timer); /* cannot fail on an initialised loop */
    b->timer.data = data;
    b->retry = retry;
    b->max_ms = max_ms;
    b->ms = REDIS_BACKOFF_FIRST_MS;
}

void redis_backoff_schedule(redis_backoff_t *b)
{
    if (uv_is_active((uv_handle_t *)&b->timer))
        return;
    uint64_t ms = b->ms;
    b->ms = ms * 2 > b->max_ms ? b->max_ms : ms * 2;
    uv_timer_start(&b->timer, b->retry, ms, 0);
}
