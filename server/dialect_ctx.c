/*
 * dialect_ctx — the context API of include/wshub/dialect.h, over the worker a dialect runs
 * on: the one file that turns a dialect's request (a timer, a publish, a subscription, the
 * configuration) into the worker's, the hub's and the server's own calls.
 */
#include "wshub/dialect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wshub/broker.h"
#include "wshub/history.h"
#include "wshub/hub.h"
#include "wshub/server.h"
#include "wshub/sessions.h"
#include "wshub/tap.h"
#include "wshub/worker.h"
#include "wshub/ws.h"

void *dialect_state(const dialect_ctx_t *x) { return x->state; }
void dialect_set_state(dialect_ctx_t *x, void *state) { x->state = state; }
int dialect_worker_index(const dialect_ctx_t *x) { return x->w->idx; }
uint64_t dialect_now(const dialect_ctx_t *x) { return uv_now(&x->w->loop); }

int dialect_timer_start(dialect_ctx_t *x, wtimer_t *t, uint64_t due_ms, wtimer_cb cb)
{
    return wtimer_start(x->w, t, due_ms, cb);
}

void dialect_timer_stop(dialect_ctx_t *x, wtimer_t *t) { wtimer_stop(x->w, t); }

int dialect_repeat_start(dialect_ctx_t *x, uv_timer_t *t, uint64_t period_ms, uv_timer_cb cb)
{
    int r = uv_timer_init(&x->w->loop, t);
    t->data = x;
    return r ? r : uv_timer_start(t, cb, period_ms, period_ms);
}

int dialect_queue_work(dialect_ctx_t *x, uv_work_t *req, uv_work_cb work, uv_after_work_cb after)
{
    return uv_queue_work(&x->w->loop, req, work, after);
}

int dialect_call(dialect_ctx_t *x, void (*fn)(void *), void *arg) { return worker_call(x->w, fn, arg); }

void *dialect_alloc(dialect_ctx_t *x, size_t size) { return mempool_alloc(&x->w->mem, size); }
void dialect_free(dialect_ctx_t *x, void *p, size_t size) { mempool_free(&x->w->mem, p, size); }
metrics_t *dialect_metrics(dialect_ctx_t *x) { return &x->w->net.metrics; }
const config_t *dialect_config(const dialect_ctx_t *x) { return x->w->cfg; }
const live_t *dialect_live(const dialect_ctx_t *x) { return server_live(x->w->srv); }

int dialect_publish(dialect_ctx_t *x, const char *channel, size_t channel_len, const char *event,
                    const char *data, size_t data_len, size_t *delivered)
{
    int rc = hub_publish(x->w->hub, channel, channel_len, event, data, data_len, delivered);
    if (rc == 0 && tap_on())
        tap_publish(x->d ? x->d->name : "server", channel, channel_len, event, data, data_len,
                    dialect_has_broker(x) ? -1 : (long long)*delivered);
    return rc;
}

int dialect_publish_api(dialect_ctx_t *x, const char *channel, size_t channel_len, const char *event,
                        const char *data, size_t data_len, size_t *delivered)
{
    worker_t *w = x->w;
    for (size_t i = 0; dialects[i]; i++)
        if (dialects[i]->on_publish)
            dialects[i]->on_publish(&w->dctx[i], channel, channel_len, event, data, data_len);
    return dialect_publish(x, channel, channel_len, event, data, data_len, delivered);
}

bool dialect_has_broker(const dialect_ctx_t *x) { return x->w->srv->broker != NULL; }
bool dialect_ready(const dialect_ctx_t *x) { return !x->w->srv->broker || broker_up(x->w->srv->broker); }

const char *dialects_unready(const dialect_ctx_t *x)
{
    if (!dialect_ready(x))
        return "the broker is unreachable";
    for (size_t i = 0; dialects[i]; i++) {
        const dialect_t *d = dialects[i];
        const char *why = d->unready && (!d->enabled || d->enabled(x->w->cfg)) ? d->unready() : NULL;
        if (why)
            return why;
    }
    return NULL;
}

/* A publish's outcome, from the broker's thread back to the publisher's worker. */
typedef struct published {
    worker_t *w;
    dialect_published_fn done;
    void *arg;
    int status;
    long long n;
} published_t;

static void published_run(void *p)
{
    published_t *q = p;
    q->done(q->arg, q->status, q->n);
    free(q);
}

static void published_back(void *p, int status, long long n)
{
    published_t *q = p;
    q->status = status;
    q->n = n;
    if (worker_call(q->w, published_run, q) != 0) {
        /* The worker is destroyed, its connections with it: nothing runs on its loop any
         * more, so done may run here and free what it carried. */
        q->done(q->arg, UV_ECANCELED, 0);
        free(q);
    }
}

int dialect_publish_api_async(dialect_ctx_t *x, const char *channel, size_t channel_len, const char *event,
                              const char *data, size_t data_len, dialect_published_fn done, void *arg)
{
    worker_t *w = x->w;
    for (size_t i = 0; dialects[i]; i++)
        if (dialects[i]->on_publish)
            dialects[i]->on_publish(&w->dctx[i], channel, channel_len, event, data, data_len);
    published_t *q = malloc(sizeof *q);
    if (!q)
        return UV_ENOMEM;
    *q = (published_t){.w = w, .done = done, .arg = arg};
    int rc = hub_publish_async(w->hub, channel, channel_len, event, data, data_len, published_back, q);
    if (rc < 0)
        free(q);
    else if (tap_on())
        tap_publish(x->d ? x->d->name : "server", channel, channel_len, event, data, data_len, -1);
    return rc;
}

hub_sub_t *dialect_subscribe(ws_session_t *s, const char *channel, size_t len,
                             const hub_envelope_t *env, void *variant, int *err)
{
    return hub_subscribe(dialect_ctx(s)->w->hub, channel, len, s, env, variant, err);
}

void dialect_unsubscribe(ws_session_t *s, hub_sub_t *sub) { hub_unsubscribe(dialect_ctx(s)->w->hub, sub); }

json_t *dialect_sub_json(const hub_sub_t *sub)
{
    size_t len;
    const char *ch = hub_sub_channel(sub, &len);
    json_t *o = json_pack("{s:s%}", "channel", ch, len);
    if (o && hub_sub_pending(sub))
        json_object_set_new(o, "pending", json_true());
    return o;
}

int dialect_send_envelope(ws_session_t *s, const hub_envelope_t *env, void *variant, const char *channel,
                          size_t channel_len, const char *event, const char *data, size_t data_len)
{
    hub_msg_t *m = hub_msg_new(channel, channel_len, event, data, data_len);
    if (!m)
        return UV_ENOMEM;
    /* Both borrowed: the variant's owner keeps its frame, the message its slot's. */
    frame_t *f = env->variant_frame ? env->variant_frame(m, variant) : hub_msg_frame(m, env);
    int r = !f ? UV_ENOMEM : ws_session_send_frame(s, f) == 0 ? 1 : UV_ECONNRESET;
    hub_msg_release(&m);
    return r;
}

dialect_ctx_t *dialect_ctx_pick(dialect_ctx_t *all, const dialect_t *d)
{
    size_t i = 0;
    while (dialects[i] && dialects[i] != d)
        i++;
    return &all[i];
}

/* ------------------------------------------------------------ history and recovery */

bool dialect_history_on(const dialect_ctx_t *x) { return hub_history_on(x->w->srv->hub); }

void dialect_hold(ws_session_t *s, hub_sub_t *sub) { hub_hold(dialect_ctx(s)->w->hub, sub); }
void dialect_unhold(ws_session_t *s, hub_sub_t *sub) { hub_unhold(dialect_ctx(s)->w->hub, sub); }

int dialect_recover(ws_session_t *s, hub_sub_t *sub, const hub_pos_t *pos, uint64_t since_ms,
                    void (*cb)(void *session, hub_sub_t *sub, int status, bool done))
{
    return hub_recover(dialect_ctx(s)->w->hub, sub, pos, since_ms, cb);
}

/* Sessions: in this process (sessions.c), or in Redis under <broker.prefix>s:<sid>. */
int dialect_session_put(dialect_ctx_t *x, const char *sid, const char *val, size_t len)
{
    uint32_t ttl = (uint32_t)x->w->cfg->history_ttl_s;
    broker_t *b = x->w->srv->broker;
    if (!b)
        return sessions_put(sid, val, len, ttl, x->w->cfg->history_max_session_bytes, history_now_ms());
    char key[64];
    int n = snprintf(key, sizeof key, "s:%s", sid);
    return n > 0 && (size_t)n < sizeof key ? broker_kv_set(b, key, (size_t)n, val, len, ttl) : UV_EINVAL;
}

/* A read through the broker, back on the worker. */
typedef struct session_read {
    dialect_ctx_t *x;
    void (*done)(void *arg, const char *val, size_t len);
    void *arg;
    size_t len;
    bool found;
    char val[];
} session_read_t;

static void session_read_back(void *p)
{
    session_read_t *q = p;
    q->done(q->arg, q->found ? q->val : NULL, q->len);
    free(q);
}

static void session_read_answer(void *p, int status, size_t n, const char *const *items, const size_t *lens)
{
    session_read_t *q = p;
    bool found = status == 0 && n == 1;
    session_read_t *a = realloc(q, sizeof *q + (found ? lens[0] : 0) + 1);
    if (a) {
        q = a;
        q->found = found;
        q->len = found ? lens[0] : 0;
        if (found)
            memcpy(q->val, items[0], lens[0]);
    } else {
        q->found = false;
    }
    if (dialect_call(q->x, session_read_back, q) != 0)
        free(q); /* the worker is gone: so is the session that asked */
}

int dialect_session_get(dialect_ctx_t *x, const char *sid, void (*done)(void *arg, const char *val, size_t len),
                        void *arg)
{
    broker_t *b = x->w->srv->broker;
    if (b) {
        char key[64];
        int n = snprintf(key, sizeof key, "s:%s", sid);
        session_read_t *q = malloc(sizeof *q);
        if (!q || n <= 0 || (size_t)n >= sizeof key) {
            free(q);
            return UV_EINVAL;
        }
        *q = (session_read_t){.x = x, .done = done, .arg = arg};
        int rc = broker_kv_get(b, key, (size_t)n, session_read_answer, q);
        if (rc != 0)
            free(q);
        return rc;
    }
    size_t len;
    char *copy = sessions_get(sid, &len, history_now_ms());
    done(arg, copy, len);
    free(copy);
    return 0;
}
