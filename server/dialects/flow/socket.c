/*
 * flow/socket — API D's WebSocket dialect (PROTOCOLS.md §D, seeds/flow-socket-api.txt, and
 * the flowai-js SDK's expectations summarised there): the upgrade of /ws/<token> (redeeming
 * the ticket GET /socket.info issued, single use, valid flow.token_ttl_ms), the socket's
 * {type, payload} messages (ping -> pong, message.send -> message.delivered then the bot's
 * message.received, optionally flow.reply_delay_ms later and announced by agent.typing),
 * the thread a socket belongs to (its hub subscription and its count in the store), the
 * idle timeout, and the dialect's lifetime: the store, the bot rules and the sweep timer.
 * Only the server message types the SDK knows are ever sent.
 * Never: touches the store's memory (only its operations), speaks HTTP, or sends to the
 * sockets of a thread other than through the hub.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "wshub/auth.h"
#include "wshub/dialect.h"
#include "wshub/http.h"
#include "wshub/hub.h"
#include "wshub/list.h"
#include "wshub/log.h"
#include "wshub/metrics.h"
#include "wshub/ws.h"
#include "wshub/wtimer.h"

#include "internal.h"

/* How often worker 0 frees expired tickets and threads. */
#define SWEEP_MS 500

/* The store every worker shares: made when the first worker starts, released when the last
 * one stops (users counts them, under users_lock). */
static flow_store_t *store;
static int users;
static uv_mutex_t users_lock;
static uv_once_t users_once = UV_ONCE_INIT;
static void users_init(void) { uv_mutex_init(&users_lock); }

flow_store_t *flow__store(void) { return store; }

/* A bot reply waiting for flow.reply_delay_ms. It belongs to the thread, not to the socket
 * that asked: it is published even if that socket closes meanwhile (the SDK reconnects). */
typedef struct flow_reply {
    wtimer_t timer;
    list_node_t node;   /* in the worker's pending replies (flow_worker_t) */
    dialect_ctx_t *x;
    char *thread;
    json_t *payload;
} flow_reply_t;

typedef struct flow_worker {
    list_node_t replies;
    size_t npending;  /* in replies: bounded by flow.max_pending_replies */
    uv_timer_t sweep; /* worker 0 only: frees expired tickets and threads */
} flow_worker_t;

typedef struct flow {
    ws_session_t *s;
    dialect_ctx_t *x;
    char *client_id, *session_id;
    char *thread;        /* the thread this socket belongs to, or NULL */
    bool joined;         /* the store counts this socket in thread (false: out of memory) */
    hub_sub_t *sub;      /* thread:<thread> */
    wtimer_t idle;
} flow_t;

static void send_json(flow_t *v, json_t *msg) { dialect_send_json(v->s, msg); }

static void send_error(flow_t *v, const char *message)
{
    send_json(v, json_pack("{s:s, s:s}", "type", "error", "message", message));
}

static void leave(flow_t *v)
{
    if (v->sub)
        dialect_unsubscribe(v->s, v->sub);
    v->sub = NULL;
    if (v->joined)
        store->ops->leave(store, v->thread, &dialect_live(v->x)->cfg);
    v->joined = false;
    free(v->thread);
    v->thread = NULL;
}

static void join(flow_t *v, const char *thread)
{
    if (v->thread && strcmp(v->thread, thread) == 0)
        return;
    leave(v);
    v->thread = strdup(thread);
    char ch[FLOW_MAX_ID + 16];
    int n = flow__channel(ch, sizeof ch, thread);
    if (v->thread && n > 0)
        v->sub = dialect_subscribe(v->s, ch, (size_t)n, &flow__envelope, NULL, NULL);
    if (!v->sub) { /* the thread's messages would never arrive: say so (a later send retries) */
        send_error(v, "could not join the thread (out of memory)");
        free(v->thread);
        v->thread = NULL;
        return;
    }
    v->joined = store->ops->join(store, thread, &dialect_live(v->x)->cfg, dialect_metrics(v->x)) == FLOW_STORE_OK;
}

static void reply_free(flow_reply_t *r)
{
    flow_worker_t *fw = dialect_state(r->x);
    fw->npending--;
    metrics_add(&dialect_metrics(r->x)->flow_pending_replies, (uint64_t)-1);
    list_remove(&r->node);
    free(r->thread);
    json_decref(r->payload);
    free(r);
}

static void on_reply_due(wtimer_t *t)
{
    flow_reply_t *r = container_of(t, flow_reply_t, timer);
    flow__publish_reply(r->x, r->thread, r->payload);
    reply_free(r);
}

static void cmd_send(flow_t *v, json_t *payload)
{
    json_t *thread = json_object_get(payload, "threadId"), *speech = json_object_get(payload, "speech");
    /* A thread id is a name: one with a NUL inside would alias the thread before the NUL. */
    const char *tid = dialect_cstr(thread);
    if (!json_is_object(payload) || !tid || !*tid || strlen(tid) > FLOW_MAX_ID) {
        send_error(v, "message.send needs payload.threadId (a string without NUL characters)");
        return;
    }
    if (!json_is_string(speech)) {
        send_error(v, "message.send needs payload.speech (a string)");
        return;
    }
    /* Delivered: what was sent, without the nonce (the secret), always with metadata. */
    json_t *delivered = json_copy(payload);
    json_object_del(delivered, "nonce");
    if (!json_is_object(json_object_get(delivered, "metadata")))
        json_object_set_new(delivered, "metadata", json_object());
    join(v, tid);
    bool kept = flow__history_add(v->x, tid, "message.send", delivered) == FLOW_STORE_OK;
    send_json(v, json_pack("{s:s, s:o}", "type", "message.delivered", "payload", delivered));
    if (!kept) /* delivered, but GET /thread.history will not list it: say so */
        send_error(v, "the thread's history is unavailable (the Flow store is unreachable): "
                      "this message was not kept");

    json_t *answer = flow__bot_reply(tid, payload);
    if (!answer)
        return;
    const config_t *cfg = &dialect_live(v->x)->cfg;
    uint32_t delay = cfg->flow_reply_delay_ms;
    flow_worker_t *fw = dialect_state(v->x);
    if (!delay || fw->npending >= (size_t)cfg->flow_max_pending_replies) {
        flow__publish_reply(v->x, tid, answer);
        json_decref(answer);
        return;
    }
    flow_reply_t *r = calloc(1, sizeof *r);
    if (!r || !(r->thread = strdup(tid))) {
        free(r);
        json_decref(answer);
        return;
    }
    r->x = v->x;
    r->payload = answer;
    list_insert_tail(&fw->replies, &r->node);
    fw->npending++;
    metrics_add(&dialect_metrics(v->x)->flow_pending_replies, 1);
    if (dialect_timer_start(v->x, &r->timer, dialect_now(v->x) + delay, on_reply_due) != 0) {
        on_reply_due(&r->timer); /* no timer (out of memory): the reply now, never lost */
        return;
    }
    send_json(v, json_pack("{s:s, s:{s:s}}", "type", "agent.typing", "payload", "threadId", tid));
}

static void on_message(ws_session_t *s, int opcode, const uint8_t *msg, size_t len)
{
    flow_t *v = ws_session_data(s);
    json_t *root = opcode == WS_OP_TEXT ? json_loadb((const char *)msg, len, DIALECT_JSON_FLAGS, NULL) : NULL;
    json_t *type = json_object_get(root, "type");
    json_t *payload = json_object_get(root, "payload");
    if (!json_is_object(root)) {
        send_error(v, "expected a JSON object {\"type\": …, \"payload\": {…}}");
    } else if (!json_is_string(type)) {
        send_error(v, "type is required");
    } else if (dialect_str_is(type, "ping")) {
        send_json(v, json_pack("{s:s}", "type", "pong"));
    } else if (dialect_str_is(type, "message.send")) {
        cmd_send(v, payload);
    } else if (dialect_str_is(type, "thread.noticed")) {
        /* A socket marks its own thread as seen, never another one. */
        const char *tid = dialect_cstr(json_object_get(payload, "threadId"));
        if (!tid || (v->thread && strcmp(tid, v->thread) != 0))
            tid = v->thread;
        if (tid && store->ops->noticed(store, tid) != FLOW_STORE_OK)
            send_error(v, "thread.noticed was not kept (the Flow store is unreachable)");
    } else if (!dialect_str_is(type, "activity.user.typing") && !dialect_str_is(type, "log")) {
        send_error(v, "unknown type");
    }
    json_decref(root);
}

static void on_idle(wtimer_t *t);

/* Arms the idle timeout in `after` ms. Without a timer (out of memory) the socket could
 * never time out: it is closed instead (1011). */
static void arm_idle(flow_t *v, uint64_t after)
{
    if (dialect_timer_start(v->x, &v->idle, dialect_now(v->x) + after, on_idle) == 0)
        return;
    send_error(v, "the idle timeout could not be scheduled (out of memory)");
    ws_session_close(v->s, WS_CLOSE_INTERNAL, "out of memory");
}

/* No client frame for flow.idle_timeout_ms: close 1000 "idle timeout" (any frame resets it). */
static void on_idle(wtimer_t *t)
{
    flow_t *v = container_of(t, flow_t, idle);
    uint64_t limit = dialect_live(v->x)->cfg.flow_idle_timeout_ms;
    uint64_t quiet = dialect_now(v->x) - ws_session_last_rx(v->s);
    if (quiet < limit)
        arm_idle(v, limit - quiet);
    else
        ws_session_close(v->s, WS_CLOSE_NORMAL, "idle timeout");
}

static void refuse(dialect_accept_t *out, int status, const char *message, int reason)
{
    out->status = status;
    out->body = flow__status_body("error", json_pack("{s:s}", "message", message));
    out->hs_reason = reason;
    out->why = message;
}

static void flow_free(flow_t *v)
{
    if (!v)
        return;
    free(v->thread);
    free(v->client_id);
    free(v->session_id);
    free(v);
}

/* An upgrade waiting for its ticket (store.h: redeemed runs inside the call, or later on
 * this worker): the decision goes to accept's *out, or to http_accept_complete. */
typedef struct flow_accept {
    dialect_accept_t acc;
    http_pending_t *pending; /* NULL while in the call, or when the deferral failed */
    dialect_ctx_t *x;
    bool in_call, answered;
} flow_accept_t;

static void redeemed(void *arg, int status, flow_ticket_t *t)
{
    flow_accept_t *a = arg;
    flow_t *v = status == FLOW_STORE_OK ? calloc(1, sizeof *v) : NULL;
    if (v) {
        v->client_id = t->client_id;
        v->session_id = t->session_id;
        v->thread = t->thread_id; /* the thread announced to socket.info: join() on open */
        v->x = a->x;
        a->acc.data = v;
    } else if (status == FLOW_STORE_OK) {
        flow_ticket_clear(t);
        refuse(&a->acc, 503, "out of memory", HS_OVER_CAPACITY);
    } else if (status == FLOW_STORE_NOT_FOUND) {
        refuse(&a->acc, 404, "unknown, used or expired endpoint: ask /socket.info for a new one", HS_NOT_FOUND);
    } else {
        refuse(&a->acc, 503, "the Flow store is unreachable: try again later", HS_OVER_CAPACITY);
    }
    if (a->in_call) {
        a->answered = true;
        return;
    }
    /* Later: the connection waits (http.h); gone meanwhile, or refused: data is ours. */
    if (!a->pending || !http_accept_complete(a->pending, &a->acc))
        flow_free(a->acc.data);
    if (!a->pending)
        free(a->acc.body);
    free(a);
}

static void accept_upgrade(const http_request_t *req, dialect_ctx_t *x, dialect_accept_t *out)
{
    const config_t *cfg = &dialect_live(x)->cfg;
    size_t olen = 0, plen;
    const char *origin = http_request_header(req, "Origin", &olen);
    if (origin && !auth_origin_allowed(&cfg->flow_allowed_origins, origin, olen)) {
        refuse(out, 403, "origin not allowed", HS_FORBIDDEN_ORIGIN);
        return;
    }
    const char *path = http_request_path(req, &plen);
    flow_accept_t *a = calloc(1, sizeof *a);
    if (!a) {
        refuse(out, 503, "out of memory", HS_OVER_CAPACITY);
        return;
    }
    a->x = x;
    a->in_call = true;
    store->ops->redeem(store, x, path + 4, plen - 4, redeemed, a); /* the token: after "/ws/" */
    a->in_call = false;
    if (a->answered) {
        *out = a->acc;
        free(a);
        return;
    }
    if (!(a->pending = http_defer(req)))
        refuse(out, 503, "out of memory", HS_OVER_CAPACITY); /* redeemed still comes, frees a */
}

static void on_open(ws_session_t *s)
{
    flow_t *v = ws_session_data(s);
    v->s = s;
    v->x = dialect_ctx(s);
    if (v->thread) {
        char *t = v->thread;
        v->thread = NULL;
        join(v, t);
        free(t);
    }
    arm_idle(v, dialect_live(v->x)->cfg.flow_idle_timeout_ms);
}

static void on_close(ws_session_t *s)
{
    flow_t *v = ws_session_data(s);
    if (!v)
        return;
    if (v->s) {
        dialect_timer_stop(v->x, &v->idle);
        leave(v);
    }
    flow_free(v);
    ws_session_set_data(s, NULL);
}

/* ------------------------------------------------------------------ lifetime */

static void on_sweep(uv_timer_t *t)
{
    dialect_ctx_t *x = t->data;
    store->ops->sweep(store, &dialect_live(x)->cfg, dialect_metrics(x));
}

/* The bot rules (flow.bot_file), loaded before the workers start. */
static int flow_process_init(const config_t *cfg, char *err, size_t errlen)
{
    if (flow__bot_load(cfg->flow_bot_file, err, errlen) == 0)
        return 0;
    flow__bot_free();
    return -1;
}

/* Where tickets and histories live: with the Redis broker, in that Redis (every node sees
 * the same), else in this process. */
static flow_store_t *new_store(const config_t *cfg)
{
    if (cfg->broker_type != BROKER_REDIS)
        return flow_store_mem_new(NULL);
    char err[256] = "";
    flow_store_t *st = flow_store_redis_new(cfg, err, sizeof err);
    if (!st)
        log_error("flow", "the Redis store: %s", err);
    return st;
}

static int flow_worker_start(dialect_ctx_t *x)
{
    flow_worker_t *fw = calloc(1, sizeof *fw);
    if (!fw)
        return UV_ENOMEM;
    uv_once(&users_once, users_init);
    uv_mutex_lock(&users_lock);
    if (!users)
        store = new_store(dialect_config(x));
    if (store)
        users++;
    uv_mutex_unlock(&users_lock);
    if (!store) {
        free(fw);
        return UV_ENOMEM;
    }
    list_init(&fw->replies);
    dialect_set_state(x, fw);
    if (dialect_worker_index(x) != 0)
        return 0;
    /* Expired tickets are freed even when no request comes to purge them (issue 11). */
    return dialect_repeat_start(x, &fw->sweep, SWEEP_MS, on_sweep);
}

static void flow_worker_stop(dialect_ctx_t *x)
{
    flow_worker_t *fw = dialect_state(x);
    if (fw) {
        /* Replies still waiting when the worker stops have nobody left to reach. */
        while (!list_empty(&fw->replies)) {
            flow_reply_t *r = container_of(fw->replies.next, flow_reply_t, node);
            dialect_timer_stop(x, &r->timer);
            reply_free(r);
        }
        free(fw);
        dialect_set_state(x, NULL);
    }
    uv_mutex_lock(&users_lock);
    if (--users == 0) {
        store->ops->free(store);
        store = NULL;
    }
    uv_mutex_unlock(&users_lock);
}

/* Faster than limits.message_rate: Flow's error, then ws_session closes 1008. */
static void on_rate_limited(ws_session_t *s)
{
    flow_t *v = ws_session_data(s);
    if (v)
        send_error(v, "rate limited: messages sent faster than the server allows");
}

/* GET /readyz: the store answers (with Redis, its link is up). */
static const char *flow_unready(void)
{
    return store && store->ops->up && !store->ops->up(store) ? "the Flow store is unreachable" : NULL;
}

/* ------------------------------------------------------------------ the mock backend */

/* {"client_id", "session_id", "thread" (null before the first message), "subscriptions"}. */
static json_t *describe(ws_session_t *s)
{
    flow_t *v = ws_session_data(s);
    json_t *subs = v ? json_array() : NULL;
    if (subs && v->sub)
        json_array_append_new(subs, dialect_sub_json(v->sub));
    return subs ? json_pack("{s:s?, s:s?, s:s?, s:o}", "client_id", v->client_id, "session_id", v->session_id,
                            "thread", v->thread, "subscriptions", subs)
                : NULL;
}

/* The event as a publish to the socket's thread would arrive (a server type it names, else
 * message.received); nothing before the socket has a thread. */
static int send_event(ws_session_t *s, const char *channel, const char *event, const char *data, size_t data_len)
{
    flow_t *v = ws_session_data(s);
    char ch[FLOW_MAX_ID + 16];
    int n = v && v->thread ? flow__channel(ch, sizeof ch, v->thread) : -1;
    if (n <= 0 || (channel && strcmp(channel, ch) != 0))
        return 0;
    return dialect_send_envelope(s, &flow__envelope, NULL, ch, (size_t)n, event, data, data_len);
}

const dialect_t dialect_flow = {
    .describe = describe,
    .send_event = send_event,
    .unready = flow_unready,
    .on_rate_limited = on_rate_limited,
    .no_ws_ping = 1, /* the contract's idle rule (50 s without a client frame) is the liveness */
    .name = "flow",
    .path = "/ws/",
    .path_prefix = 1,
    .endpoint = EP_FLOW,
    .process_init = flow_process_init,
    .process_free = flow__bot_free,
    .accept = accept_upgrade,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
    .on_publish = flow__on_publish,
    .worker_start = flow_worker_start,
    .worker_stop = flow_worker_stop,
};
