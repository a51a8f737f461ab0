/*
 * hub — see include/wshub/hub.h.
 *
 * Three structures:
 * - the registry (hub_t, one mutex): channel -> subscriptions per worker, read by every
 *   publish to know the delivery count and which workers to post to;
 * - per worker (hub_local_t): channel -> local channel (the list of subscriptions on this
 *   worker), touched only by that worker's thread;
 * - per worker, the mailbox: messages posted by other threads, swapped out whole under a
 *   mutex and delivered in one batch per wake-up.
 * Workers and sessions are the caller's: hub_local_ops_t delivers and wakes.
 */
#include "wshub/hub.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "hub_internal.h"
#include "wshub/log.h"
#include "wshub/strmap.h"
#include "wshub/util.h"

/* ------------------------------------------------------------------ messages */

/* Envelope slots, given on first sight (envelope_slot): written once each, never cleared. */
static const hub_envelope_t *_Atomic envelopes[HUB_ENVELOPES];
static atomic_uint_fast64_t msg_seq; /* hub_msg_t.seq */

/* env's slot in hub_msg_t.frames, or -1 when HUB_ENVELOPES others already have one. Lock-free:
 * two threads registering env at once stop at the same first free slot, one of them filling it. */
static int envelope_slot(const hub_envelope_t *env)
{
    for (int i = 0; i < HUB_ENVELOPES; i++) {
        const hub_envelope_t *e = atomic_load_explicit(&envelopes[i], memory_order_acquire);
        if (!e && atomic_compare_exchange_strong_explicit(&envelopes[i], &e, env, memory_order_acq_rel,
                                                          memory_order_acquire))
            return i;
        if (e == env)
            return i;
    }
    return -1;
}

void hub_msg_release(hub_msg_t **mp)
{
    hub_msg_t *m = *mp;
    *mp = NULL;
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < HUB_ENVELOPES; i++) {
        frame_t *f = atomic_load_explicit(&m->frames[i], memory_order_acquire);
        frame_release(&f);
    }
    if (m->res)
        hub__result_free(m->res);
    free(m);
}

static hub_msg_t *msg_ref(hub_msg_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

hub_msg_t *hub_msg_new(const char *channel, size_t clen, const char *event, const char *data,
                       size_t dlen)
{
    json_t *ev = json_string(event);
    char *ev_json = ev ? json_dumps(ev, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!ev_json)
        return NULL;
    size_t elen = strlen(event), ejlen = strlen(ev_json);
    size_t bytes = sizeof(hub_msg_t) + clen + 1 + elen + 1 + ejlen + 1 + dlen + 1;
    hub_msg_t *m = malloc(bytes);
    if (!m) {
        free(ev_json);
        return NULL;
    }
    atomic_init(&m->refs, 1);
    m->seq = atomic_fetch_add(&msg_seq, 1) + 1;
    char *p = m->buf;
    m->channel = memcpy(p, channel, clen);
    p[clen] = 0;
    m->channel_len = clen;
    p += clen + 1;
    m->event = memcpy(p, event, elen + 1);
    p += elen + 1;
    m->event_json = memcpy(p, ev_json, ejlen + 1);
    p += ejlen + 1;
    m->data = memcpy(p, data, dlen);
    p[dlen] = 0;
    m->data_len = dlen;
    free(ev_json);
    util_iso8601_now(m->timestamp);
    m->created_ns = uv_hrtime();
    m->notice = 0;
    m->offset = 0;
    m->epoch[0] = 0;
    m->ms = history_now_ms();
    m->res = NULL;
    m->bytes = bytes;
    for (int i = 0; i < HUB_ENVELOPES; i++)
        atomic_init(&m->frames[i], NULL);
    return m;
}

frame_t *hub_msg_frame(hub_msg_t *m, const hub_envelope_t *env)
{
    int slot = envelope_slot(env);
    if (slot < 0)
        return NULL;
    frame_t *f = atomic_load_explicit(&m->frames[slot], memory_order_acquire);
    if (f)
        return f;
    frame_t *built = env->build(m);
    if (!built)
        return NULL;
    built->born_ns = m->created_ns; /* before it is shared */
    frame_t *expected = NULL;
    if (atomic_compare_exchange_strong_explicit(&m->frames[slot], &expected, built,
                                                memory_order_acq_rel, memory_order_acquire))
        return built;
    /* Another worker built it first: use theirs, so every subscriber shares one buffer. */
    frame_release(&built);
    return expected;
}

/* ------------------------------------------------------------------ hub and locals */

hub_t *hub_new(size_t nworkers, size_t max_mailbox)
{
    if (nworkers > HUB_MAX_WORKERS)
        return NULL;
    hub_t *hub = calloc(1, sizeof *hub);
    if (!hub)
        return NULL;
    hub->locals = calloc(nworkers, sizeof *hub->locals);
    if (!hub->locals || uv_mutex_init(&hub->lock) != 0) {
        free(hub->locals);
        free(hub);
        return NULL;
    }
    hub->nworkers = nworkers;
    hub->max_mailbox = max_mailbox;
    return hub;
}

int hub_set_history(hub_t *hub, size_t size, uint32_t ttl_s, size_t max_bytes)
{
    hub->hist_size = size;
    hub->hist_ttl_s = ttl_s;
    if (size && !hub->broker && !(hub->hist = history_new(size, ttl_s, max_bytes)))
        return UV_ENOMEM;
    return 0;
}

bool hub_history_on(const hub_t *hub) { return hub->hist_size > 0; }

void hub_free(hub_t *hub)
{
    if (!hub)
        return;
    for (size_t i = 0; i < hub->reg.nbuckets; i++)
        for (strmap_entry_t *e = hub->reg.buckets[i]; e; e = e->next)
            free(e->value);
    strmap_clear(&hub->reg);
    history_free(hub->hist);
    uv_mutex_destroy(&hub->lock);
    free(hub->locals);
    free(hub);
}

hub_local_t *hub_local_new(hub_t *hub, int idx, const hub_local_ops_t *ops, void *arg,
                           mempool_t *mem, metrics_t *metrics)
{
    hub_local_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    if (uv_mutex_init(&l->mlock) != 0) {
        free(l);
        return NULL;
    }
    l->hub = hub;
    l->idx = idx;
    l->ops = ops;
    l->arg = arg;
    l->mem = mem;
    l->metrics = metrics;
    list_init(&l->recs);
    hub->locals[idx] = l;
    return l;
}

void hub_local_close(hub_local_t *l)
{
    if (!l)
        return;
    uv_mutex_lock(&l->mlock);
    l->closed = true;
    uv_mutex_unlock(&l->mlock);
}

void hub_local_free(hub_local_t *l)
{
    if (!l)
        return;
    /* Messages posted before hub_local_close and not delivered are dropped with it. */
    for (size_t i = 0; i < l->mlen; i++)
        hub_msg_release(&l->mbox[i]);
    atomic_fetch_sub(&metrics_gauges.mailbox_bytes, l->mbytes);
    free(l->mbox);
    free(l->spare);
    /* Every session unsubscribed when it closed; a channel left here is a bug, not a leak to hide. */
    strmap_clear(&l->chans);
    uv_mutex_destroy(&l->mlock);
    l->hub->locals[l->idx] = NULL;
    free(l);
}

/* ------------------------------------------------------------------ subscriptions */


/* Posts a notice (status: 1 = holds, or a negative error) about channel to every worker with
 * a subscription of it (under hub->lock). Out of memory: those pending stay so, as if the
 * broker had not answered yet. */
static void notify(hub_t *hub, const reg_entry_t *r, const char *channel, size_t len, int status)
{
    hub_msg_t *m = hub_msg_new(channel, len, "", "{}", 2);
    if (!m)
        return;
    m->notice = status;
    for (size_t i = 0; i < hub->nworkers; i++) {
        hub_msg_t *ref = r->per_worker[i] && hub->locals[i] ? msg_ref(m) : NULL;
        if (ref && hub__post(hub->locals[i], ref) != 0)
            hub_msg_release(&ref);
    }
    hub_msg_release(&m);
}

/* A channel's first subscription in the process: with a broker, subscribed there (under the
 * lock, so that the broker hears of a channel's first and last subscriber in the order they
 * happen: it only queues them). */
static reg_entry_t *reg_new(hub_t *hub, const char *channel, size_t len)
{
    reg_entry_t *r = calloc(1, sizeof *r + hub->nworkers * sizeof(uint32_t));
    if (!r || !strmap_insert(&hub->reg, channel, len, r)) {
        free(r);
        return NULL;
    }
    r->confirmed = !hub->broker;
    if (hub->broker) {
        r->gen = ++hub->gen;
        broker_subscribe(hub->broker, channel, len, r->gen);
    }
    return r;
}

/* Counts a subscription in. Returns 0 (it holds), 1 (pending: the broker has not confirmed
 * the channel yet), UV_ENOMEM when a channel's first subscription could not be registered
 * (publishes would never find it, issue 11), UV_ECONNREFUSED while the broker's link is down. */
static int reg_in(hub_t *hub, const char *channel, size_t len, int widx)
{
    int rc;
    uv_mutex_lock(&hub->lock);
    strmap_entry_t *e = strmap_find(&hub->reg, channel, len);
    reg_entry_t *r = e ? e->value : NULL;
    if (hub->broker && !hub->link_up)
        rc = UV_ECONNREFUSED;
    else if (!r && !(r = reg_new(hub, channel, len)))
        rc = UV_ENOMEM;
    else
        rc = r->confirmed ? 0 : 1;
    if (rc >= 0) {
        r->total++;
        r->per_worker[widx]++;
    }
    uv_mutex_unlock(&hub->lock);
    return rc;
}

/* Counts a subscription out; the channel's last one leaves the broker. */
static void reg_out(hub_t *hub, const char *channel, size_t len, int widx)
{
    uv_mutex_lock(&hub->lock);
    strmap_entry_t *e = strmap_find(&hub->reg, channel, len);
    if (e) {
        reg_entry_t *r = e->value;
        r->total--;
        r->per_worker[widx]--;
        if (r->total == 0) {
            if (hub->broker)
                broker_unsubscribe(hub->broker, channel, len);
            free(r);
            strmap_remove(&hub->reg, e);
        }
    }
    uv_mutex_unlock(&hub->lock);
}

void hub_on_broker_subscribed(void *arg, const char *channel, size_t clen, uint64_t gen)
{
    hub_t *hub = arg;
    uv_mutex_lock(&hub->lock);
    strmap_entry_t *e = strmap_find(&hub->reg, channel, clen);
    reg_entry_t *r = e ? e->value : NULL;
    /* The answer to this entry's subscribe, not to one of an entry gone since. */
    if (r && r->gen == gen && !r->confirmed) {
        r->confirmed = true;
        notify(hub, r, channel, clen, 1);
    }
    uv_mutex_unlock(&hub->lock);
}

/* Down: new subscriptions are refused, pending ones are told so, and every channel waits for
 * its confirmation again (the broker subscribes them all once the link is back). */
void hub_on_broker_link(void *arg, bool up)
{
    hub_t *hub = arg;
    uv_mutex_lock(&hub->lock);
    hub->link_up = up;
    for (size_t i = 0; !up && i < hub->reg.nbuckets; i++)
        for (strmap_entry_t *e = hub->reg.buckets[i]; e; e = e->next) {
            reg_entry_t *r = e->value;
            if (!r->confirmed)
                notify(hub, r, e->key, e->klen, UV_ECONNREFUSED);
            r->confirmed = false;
        }
    uv_mutex_unlock(&hub->lock);
}

hub_sub_t *hub_subscribe(hub_local_t *l, const char *channel, size_t len, void *subscriber,
                         const hub_envelope_t *env, void *variant, int *err)
{
    int dummy;
    err = err ? err : &dummy;
    *err = UV_ENOMEM;
    if (envelope_slot(env) < 0)
        return NULL; /* a frame for it could never be kept */
    strmap_entry_t *e = strmap_find(&l->chans, channel, len);
    hub_lchan_t *ch;
    if (e) {
        ch = e->value;
    } else {
        ch = calloc(1, sizeof *ch);
        if (!ch)
            return NULL;
        list_init(&ch->subs);
        list_init(&ch->pending);
        if (!(e = strmap_insert(&l->chans, channel, len, ch))) {
            free(ch);
            return NULL;
        }
        ch->e = e;
    }
    hub_sub_t *sub = mempool_alloc(l->mem, sizeof *sub);
    if (!sub)
        goto fail;
    sub->ch_tag = (uintptr_t)ch; /* calloc'd: the low bits are free for the flags */
    sub->subscriber = subscriber;
    sub->env = env;
    sub->variant = variant;
    list_init(&sub->owner_node);
    /* Local first, registry second: a publish that counts this subscription finds it here. */
    int rc = reg_in(l->hub, channel, len, l->idx);
    if (rc >= 0) {
        hub__set_pending(sub, rc == 1);
        list_insert_tail(rc == 1 ? &ch->pending : &ch->subs, &sub->chan_node);
        ch->n++;
        *err = 0;
        return sub;
    }
    *err = rc;
    mempool_free(l->mem, sub, sizeof *sub);
fail:
    if (ch->n == 0) {
        strmap_remove(&l->chans, ch->e);
        free(ch);
    }
    return NULL;
}

void hub_unsubscribe(hub_local_t *l, hub_sub_t *sub)
{
    hub_lchan_t *ch = hub__ch(sub);
    hub__state_free(l, sub);
    reg_out(l->hub, ch->e->key, ch->e->klen, l->idx);
    list_remove(&sub->chan_node);
    list_remove(&sub->owner_node);
    if (--ch->n == 0) {
        strmap_remove(&l->chans, ch->e);
        free(ch);
    }
    mempool_free(l->mem, sub, sizeof *sub);
}

const char *hub_sub_channel(const hub_sub_t *sub, size_t *len)
{
    hub_lchan_t *ch = hub__ch(sub);
    if (len)
        *len = ch->e->klen;
    return ch->e->key;
}

size_t hub_count(hub_t *hub, const char *channel, size_t len)
{
    uv_mutex_lock(&hub->lock);
    strmap_entry_t *e = strmap_find(&hub->reg, channel, len);
    size_t n = e ? ((reg_entry_t *)e->value)->total : 0;
    uv_mutex_unlock(&hub->lock);
    return n;
}

/* ------------------------------------------------------------------ fan-out */

static void deliver_local(hub_local_t *l, hub_msg_t *m)
{
    strmap_entry_t *e = strmap_find(&l->chans, m->channel, m->channel_len);
    if (!e)
        return;
    hub_lchan_t *ch = e->value;
    int (*deliver)(void *, frame_t *, const hub_msg_t *) = l->ops->deliver; /* loaded once, not per subscriber */
    /* Delivering never frees a subscription (hub_local_ops_t), so the list cannot change
     * under this loop. A channel's subscribers nearly always share one envelope: its frame
     * is looked up once, not per subscriber. */
    const hub_envelope_t *env = NULL;
    frame_t *shared = NULL;
    uint64_t delivered = 0;
    for (list_node_t *n = ch->subs.next; n != &ch->subs; n = n->next) {
        hub_sub_t *sub = container_of(n, hub_sub_t, chan_node);
        frame_t *f;
        /* A flag in the line already read: no pointer chased without recovery state. */
        if ((sub->ch_tag & HUB_SUB_STATE) && !hub__gate(l, sub, m))
            continue; /* held for its recovery, or a duplicate of what it replayed */
        if (sub->variant && sub->env->variant_frame) {
            f = sub->env->variant_frame(m, sub->variant);
        } else {
            if (sub->env != env) {
                env = sub->env;
                shared = hub_msg_frame(m, env);
            }
            f = shared;
        }
        if (f && deliver(sub->subscriber, f, m) == 0)
            delivered++;
    }
    metrics_add(&l->metrics->deliveries, delivered);
}

/* The broker's word on a channel: its pending subscriptions here hold (they join the ones
 * messages go to) or are refused, each told through ops->subscribed, which may unsubscribe
 * any of them: those not told yet wait in a list of their own, from which an unsubscribe
 * takes them as it would from the channel's. */
static void notice_local(hub_local_t *l, hub_msg_t *m)
{
    strmap_entry_t *e = strmap_find(&l->chans, m->channel, m->channel_len);
    hub_lchan_t *ch = e ? e->value : NULL;
    if (!ch || list_empty(&ch->pending))
        return;
    int status = m->notice > 0 ? 0 : m->notice;
    list_node_t todo;
    list_take_all(&todo, &ch->pending);
    while (!list_empty(&todo)) { /* ch lives while one of its subscriptions is in todo */
        hub_sub_t *sub = container_of(todo.next, hub_sub_t, chan_node);
        list_remove(&sub->chan_node);
        list_insert_tail(&ch->subs, &sub->chan_node);
        hub__set_pending(sub, false);
        l->ops->subscribed(sub->subscriber, sub, status);
    }
    /* Recoveries that waited for the subscription to hold read the history now (the answer
     * holds every message the live subscription may have missed). Those refused were dropped
     * by their dialect (hub_unsubscribe frees the recovery). */
    if (status == 0)
        for (list_node_t *n = ch->subs.next; n != &ch->subs; n = n->next) {
            hub_sub_t *sub = container_of(n, hub_sub_t, chan_node);
            if (hub__rec(sub))
                hub__recovery_confirmed(l, sub);
        }
}

/* Queues m for l's thread and wakes it. The wake-up is sent under the lock, so that it never
 * reaches a handle the worker has closed (issue 11: workers stop one by one). */
int hub__post(hub_local_t *l, hub_msg_t *m)
{
    uv_mutex_lock(&l->mlock);
    if (l->closed) {
        uv_mutex_unlock(&l->mlock);
        return UV_ECANCELED;
    }
    /* A worker that cannot keep up must not grow without a bound: its share of a message is
     * dropped (notices, small and owed to a client, never are). */
    size_t max = l->hub->max_mailbox;
    if (max && !m->notice && l->mbytes + m->bytes > max) {
        uv_mutex_unlock(&l->mlock);
        atomic_fetch_add(&metrics_gauges.mailbox_dropped, 1);
        log_warn("hub", "worker %d: mailbox full (limits.max_mailbox_bytes): a message of %.*s dropped there",
                          l->idx, (int)(m->channel_len > 64 ? 64 : m->channel_len), m->channel);
        return UV_ENOBUFS;
    }
    if (l->mlen == l->mcap) {
        size_t ncap = l->mcap ? l->mcap * 2 : 64;
        hub_msg_t **nb = realloc(l->mbox, ncap * sizeof *nb);
        if (!nb) {
            uv_mutex_unlock(&l->mlock);
            return UV_ENOMEM;
        }
        l->mbox = nb;
        l->mcap = ncap;
    }
    l->mbox[l->mlen++] = m;
    l->mbytes += m->bytes;
    atomic_fetch_add(&metrics_gauges.mailbox_bytes, m->bytes);
    atomic_store_explicit(&l->pending, true, memory_order_release);
    l->ops->wake(l->arg);
    uv_mutex_unlock(&l->mlock);
    return 0;
}

void hub_drain(hub_local_t *l)
{
    if (!l || !atomic_load_explicit(&l->pending, memory_order_acquire))
        return;
    uv_mutex_lock(&l->mlock);
    hub_msg_t **batch = l->mbox;
    size_t n = l->mlen, cap = l->mcap;
    atomic_fetch_sub(&metrics_gauges.mailbox_bytes, l->mbytes);
    l->mbox = l->spare;
    l->mcap = l->spare_cap;
    l->mlen = 0;
    l->mbytes = 0;
    atomic_store_explicit(&l->pending, false, memory_order_relaxed);
    uv_mutex_unlock(&l->mlock);
    for (size_t i = 0; i < n; i++) {
        if (batch[i]->notice == HUB_NOTICE_RECOVERY)
            hub__recovery_answer(l, batch[i]);
        else if (batch[i]->notice)
            notice_local(l, batch[i]);
        else
            deliver_local(l, batch[i]);
        hub_msg_release(&batch[i]);
    }
    l->spare = batch;
    l->spare_cap = cap;
}

/* Which locals have subscribers of channel (targets, by index); returns their total. */
static size_t find_targets(hub_t *hub, const char *channel, size_t len, uint8_t *targets)
{
    size_t total = 0;
    uv_mutex_lock(&hub->lock);
    strmap_entry_t *e = strmap_find(&hub->reg, channel, len);
    if (e) {
        reg_entry_t *r = e->value;
        total = r->total;
        for (size_t i = 0; i < hub->nworkers; i++)
            targets[i] = r->per_worker[i] > 0;
    }
    uv_mutex_unlock(&hub->lock);
    return total;
}

static void dispatch_remote(hub_t *hub, hub_local_t *from, hub_msg_t *m, const uint8_t *targets)
{
    for (size_t i = 0; i < hub->nworkers; i++) {
        hub_local_t *l = hub->locals[i];
        if (!targets[i] || !l || l == from)
            continue;
        hub_msg_t *ref = msg_ref(m);
        if (hub__post(l, ref) != 0)
            hub_msg_release(&ref); /* out of memory, or that worker has stopped: its subscribers miss it */
    }
}

static void dispatch(hub_t *hub, hub_local_t *from, hub_msg_t *m, const uint8_t *targets)
{
    dispatch_remote(hub, from, m, targets);
    if (!from)
        return;
    /* What other threads posted to us earlier goes out first: publish order is kept. */
    hub_drain(from);
    if (targets[from->idx])
        deliver_local(from, m);
}

size_t hub_route(hub_t *hub, hub_local_t *from, hub_msg_t *m)
{
    uint8_t targets[HUB_MAX_WORKERS];
    size_t n = find_targets(hub, m->channel, m->channel_len, targets);
    if (n)
        dispatch(hub, from, m, targets);
    return n;
}

/* ------------------------------------------------------------------ through a broker */

void hub_set_broker(hub_t *hub, broker_t *b)
{
    hub->broker = b;
    hub->link_up = false; /* until the broker says it is up (hub_on_broker_link) */
}

/* A message on the wire between nodes: "1\n<timestamp>\n<event as a JSON string>\n<data>".
 * None of the first three holds a raw newline; data (compact JSON) ends the payload. */
static char *encode(const hub_msg_t *m, size_t *len)
{
    size_t tlen = strlen(m->timestamp), elen = strlen(m->event_json);
    size_t n = 2 + tlen + 1 + elen + 1 + m->data_len;
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    snprintf(p, n + 1, "1\n%s\n%s\n", m->timestamp, m->event_json);
    memcpy(p + n - m->data_len, m->data, m->data_len);
    p[n] = 0;
    *len = n;
    return p;
}

/* "2\n<epoch>\n<offset>\n" before a version 1 payload's rest: a position Redis gave (broker_redis.c's
 * publish script). Returns where the rest starts, or NULL. */
static const char *decode_position(const char *payload, const char *end, hub_pos_t *pos)
{
    const char *e = payload + 2, *nl = memchr(e, '\n', (size_t)(end - e));
    if (!nl || nl - e != HUB_EPOCH_LEN)
        return NULL;
    memcpy(pos->epoch, e, HUB_EPOCH_LEN);
    pos->epoch[HUB_EPOCH_LEN] = 0;
    pos->offset = 0;
    const char *p = nl + 1;
    for (; p < end && *p >= '0' && *p <= '9' && pos->offset < UINT64_MAX / 10; p++)
        pos->offset = pos->offset * 10 + (uint64_t)(*p - '0');
    return p < end && *p == '\n' && pos->offset ? p - 1 : NULL; /* so that "1\n"'s 2 bytes end there */
}

hub_msg_t *hub_msg_decode(const char *channel, size_t clen, const char *payload, size_t plen)
{
    const char *end = payload + plen, *ts = payload + 2;
    hub_pos_t pos = {0};
    if (plen >= 2 && memcmp(payload, "2\n", 2) == 0) {
        const char *rest = decode_position(payload, end, &pos);
        if (!rest)
            return NULL;
        ts = rest + 2;
    } else if (plen < 2 || memcmp(payload, "1\n", 2) != 0) {
        return NULL;
    }
    const char *ev = memchr(ts, '\n', (size_t)(end - ts));
    if (!ev || ev - ts >= (ptrdiff_t)sizeof ((hub_msg_t *)0)->timestamp)
        return NULL;
    /* The envelopes print it inside a JSON string as it is: an ISO-8601 time and nothing else. */
    for (const char *c = ts; c < ev; c++)
        if (!strchr("0123456789TZ:.-+", *c) || !*c)
            return NULL;
    ev++;
    const char *data = memchr(ev, '\n', (size_t)(end - ev));
    if (!data)
        return NULL;
    json_t *e = json_loadb(ev, (size_t)(data - ev), JSON_DECODE_ANY, NULL);
    const char *event = json_string_value(e);
    hub_msg_t *m = NULL;
    json_t *d = NULL;
    if (event && strlen(event) == json_string_length(e)) {
        data++;
        /* Printed raw into every envelope: a JSON object (valid UTF-8 with it), or nothing.
         * Once per message and node, never per subscriber. */
        d = json_loadb(data, (size_t)(end - data), JSON_ALLOW_NUL, NULL);
    }
    if (json_is_object(d)) {
        m = hub_msg_new(channel, clen, event, data, (size_t)(end - data));
        if (m) { /* the publisher's time: the same on every node */
            memcpy(m->timestamp, ts, (size_t)(ev - 1 - ts));
            m->timestamp[ev - 1 - ts] = 0;
            m->offset = pos.offset;
            memcpy(m->epoch, pos.epoch, sizeof m->epoch);
        }
    }
    json_decref(d);
    json_decref(e);
    return m;
}

void hub_on_broker_message(void *hub, const char *channel, size_t clen, const char *payload, size_t plen)
{
    hub_msg_t *m = hub_msg_decode(channel, clen, payload, plen);
    if (!m) {
        log_warn("broker", "a message of %.*s that is not wshub's was dropped", (int)(clen > 64 ? 64 : clen), channel);
        return;
    }
    hub_route(hub, NULL, m);
    hub_msg_release(&m);
}

/* With a broker: the message goes out to every node, this one included, and is routed when
 * it comes back (hub_on_broker_message). */
static int publish_through(hub_local_t *from, const char *channel, size_t channel_len, const char *event,
                           const char *data, size_t data_len, broker_done_fn done, void *arg)
{
    hub_msg_t *m = hub_msg_new(channel, channel_len, event, data, data_len);
    size_t plen = 0;
    char *payload = m ? encode(m, &plen) : NULL;
    hub_msg_release(&m);
    if (!payload)
        return UV_ENOMEM;
    hub_t *hub = from->hub;
    int rc;
    if (hub->hist_size) { /* Redis gives the position and keeps the history: "1\n" is left off */
        char epoch[HUB_EPOCH_LEN + 1];
        history_new_epoch(epoch); /* taken when the channel has no epoch in Redis yet */
        rc = broker_publish_kept(hub->broker, channel, channel_len, payload + 2, plen - 2, hub->hist_size,
                                 hub->hist_ttl_s, epoch, done, arg);
    } else {
        rc = broker_publish(hub->broker, channel, channel_len, payload, plen, done, arg);
    }
    free(payload);
    if (rc == 0)
        metrics_add(&from->metrics->publishes, 1);
    else if (rc == UV_ECONNREFUSED || rc == UV_EAGAIN)
        atomic_fetch_add(&metrics_gauges.broker_refused, 1);
    return rc;
}

int hub_publish_async(hub_local_t *from, const char *channel, size_t channel_len, const char *event,
                      const char *data, size_t data_len, broker_done_fn done, void *arg)
{
    if (from->hub->broker)
        return publish_through(from, channel, channel_len, event, data, data_len, done, arg);
    size_t delivered = 0;
    int rc = hub_publish(from, channel, channel_len, event, data, data_len, &delivered);
    if (rc == 0)
        done(arg, 0, (long long)delivered);
    return rc;
}

bool hub_has_broker(const hub_t *hub) { return hub->broker != NULL; }

/* With history and no broker: the message is made even without a subscriber (it is kept), and
 * gets its position under the history's lock, held until it is posted to every worker with a
 * subscriber (this one included): each mailbox receives a channel's messages in offset order,
 * whichever workers published them. */
static int publish_kept(hub_local_t *from, const char *channel, size_t channel_len, const char *event,
                        const char *data, size_t data_len, size_t *delivered)
{
    hub_t *hub = from->hub;
    hub_msg_t *m = hub_msg_new(channel, channel_len, event, data, data_len);
    *delivered = 0;
    if (!m)
        return UV_ENOMEM;
    metrics_add(&from->metrics->publishes, 1);
    uint8_t targets[HUB_MAX_WORKERS];
    history_lock(hub->hist);
    history_append(hub->hist, m, m->ms);
    *delivered = find_targets(hub, channel, channel_len, targets);
    if (*delivered) /* this worker's share too, through its own mailbox: in that order */
        dispatch_remote(hub, NULL, m, targets);
    history_unlock(hub->hist);
    hub_drain(from);
    hub_msg_release(&m);
    return 0;
}

int hub_publish(hub_local_t *from, const char *channel, size_t channel_len, const char *event,
                const char *data, size_t data_len, size_t *delivered)
{
    if (from->hub->broker) {
        *delivered = 0; /* known later, to the broker: fire and forget */
        return publish_through(from, channel, channel_len, event, data, data_len, NULL, NULL);
    }
    if (from->hub->hist)
        return publish_kept(from, channel, channel_len, event, data, data_len, delivered);
    uint8_t targets[HUB_MAX_WORKERS];
    *delivered = find_targets(from->hub, channel, channel_len, targets);
    metrics_add(&from->metrics->publishes, 1);
    if (!*delivered)
        return 0;
    hub_msg_t *m = hub_msg_new(channel, channel_len, event, data, data_len);
    if (!m)
        return UV_ENOMEM;
    dispatch(from->hub, from, m, targets);
    hub_msg_release(&m);
    return 0;
}
