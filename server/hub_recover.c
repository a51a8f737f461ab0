/*
 * hub_recover — history reads and recoveries of the hub (include/wshub/hub.h, issue 17).
 *
 * A recovery hangs off its subscription's side state (hub_sub_state_t.rec, made with it: a
 * subscription without one stays 64 bytes). While it lasts, the subscription's live messages
 * are held in it (hub__gate), in order. The history is read once the subscription holds: at
 * once without a broker (under the history's lock, so that every message is either in what
 * was read or posted to the mailbox after it), or through the broker (the answer comes back
 * in a HUB_NOTICE_RECOVERY notice through the worker's mailbox, after every live message
 * Redis sent before it read). Then, on the worker's thread: the outcome, the history's
 * messages after the client's position, the held ones after the last of those, and from then
 * on live messages, a duplicate by offset skipped (hub_sub_state_t.after).
 */
#include <stdlib.h>
#include <string.h>

#include "hub_internal.h"
#include "wshub/log.h"

/* ------------------------------------------------------------------ delivery */

void hub__deliver_one(hub_local_t *l, hub_sub_t *sub, hub_msg_t *m)
{
    frame_t *f = sub->variant && sub->env->variant_frame ? sub->env->variant_frame(m, sub->variant)
                                                          : hub_msg_frame(m, sub->env);
    if (f && l->ops->deliver(sub->subscriber, f, m) == 0)
        metrics_add(&l->metrics->deliveries, 1);
}

/* ------------------------------------------------------------------ side state */

/* sub's state, made (zeroed, from the worker's pool) if it has none; NULL when out of memory. */
static hub_sub_state_t *state_get(hub_local_t *l, hub_sub_t *sub)
{
    hub_sub_state_t *st = hub__state(sub);
    if (st || !(st = mempool_alloc(l->mem, sizeof *st)))
        return st;
    st->ch = hub__ch(sub);
    hub__set_ch(sub, st, true);
    return st;
}

/* Frees sub's state once nothing is left in it: deliveries go straight through again. */
static void state_trim(hub_local_t *l, hub_sub_t *sub)
{
    hub_sub_state_t *st = hub__state(sub);
    if (!st || st->rec || st->after)
        return;
    hub__set_ch(sub, st->ch, false);
    mempool_free(l->mem, st, sizeof *st);
}

bool hub_sub_recovering(const hub_sub_t *sub) { return hub__rec(sub) != NULL; }

/* A message already given (its offset is at most st->after in the same epoch)? The filter
 * ends with the first message past it: offsets only grow from there. */
static bool duplicate(hub_sub_state_t *st, const hub_msg_t *m)
{
    if (m->offset && memcmp(m->epoch, st->after_epoch, HUB_EPOCH_LEN) == 0 && m->offset <= st->after)
        return true;
    st->after = 0;
    return false;
}

bool hub__gate(hub_local_t *l, hub_sub_t *sub, hub_msg_t *m)
{
    hub_sub_state_t *st = hub__state(sub);
    hub_recovery_t *r = st ? st->rec : NULL;
    if (!r) {
        if (st && duplicate(st, m))
            return false;
        state_trim(l, sub); /* the filter has ended: the fast path again */
        return true;
    }
    if (r->overflow)
        return false;
    if (r->nheld == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        hub_msg_t **nv = ncap <= HUB_HOLD_MAX ? realloc(r->held, ncap * sizeof *nv) : NULL;
        if (!nv) {
            r->overflow = true; /* the recovery fails: the client refetches */
            return false;
        }
        r->held = nv;
        r->cap = ncap;
    }
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    r->held[r->nheld++] = m;
    return false;
}

/* ------------------------------------------------------------------ recoveries */

static void release_held(hub_recovery_t *r)
{
    for (size_t i = 0; i < r->nheld; i++)
        hub_msg_release(&r->held[i]);
    free(r->held);
    r->held = NULL;
    r->nheld = r->cap = 0;
}

void hub__state_free(hub_local_t *l, hub_sub_t *sub)
{
    hub_sub_state_t *st = hub__state(sub);
    if (!st)
        return;
    hub_recovery_t *r = st->rec;
    if (r) {
        list_remove(&r->node); /* an answer that comes back later finds nobody */
        release_held(r);
        free(r);
    }
    st->rec = NULL;
    st->after = 0;
    state_trim(l, sub);
}

static hub_recovery_t *recovery_get(hub_local_t *l, hub_sub_t *sub)
{
    hub_sub_state_t *st = state_get(l, sub);
    if (!st)
        return NULL;
    if (!st->rec && (st->rec = calloc(1, sizeof *st->rec)))
        list_init(&st->rec->node);
    hub_recovery_t *r = st->rec;
    state_trim(l, sub); /* out of memory: no state kept for nothing */
    return r;
}

void hub_hold(hub_local_t *l, hub_sub_t *sub)
{
    recovery_get(l, sub); /* out of memory: not held, the recovery will be a plain one */
}

void hub_unhold(hub_local_t *l, hub_sub_t *sub)
{
    hub_sub_state_t *st = hub__state(sub);
    hub_recovery_t *r = st ? st->rec : NULL;
    if (!r || r->cb)
        return; /* not held, or a recovery is under way: it ends the hold itself */
    st->rec = NULL; /* from here, deliveries go straight through */
    list_remove(&r->node);
    for (size_t i = 0; i < r->nheld && !r->overflow; i++)
        if (hub__gate(l, sub, r->held[i])) /* may free st */
            hub__deliver_one(l, sub, r->held[i]);
    release_held(r);
    free(r);
    state_trim(l, sub);
}

/* The end of a recovery: the outcome, the replay, the held messages, and live from then on. */
static void finish(hub_local_t *l, hub_sub_t *sub, int status, const hub_pos_t *tail, hub_msg_t **msgs, size_t n)
{
    hub_sub_state_t *st = hub__state(sub);
    hub_recovery_t *r = st->rec;
    st->rec = NULL; /* from here, deliveries go straight through */
    list_remove(&r->node);
    if (r->overflow && status > 0)
        status = 0;
    atomic_fetch_add(status > 0 ? &metrics_gauges.recoveries_succeeded : &metrics_gauges.recoveries_failed, 1);
    r->cb(sub->subscriber, sub, status, false);
    st->after = 0; /* st is kept until state_trim below: only hub__gate frees it before */
    if (status > 0) {
        uint64_t last = r->by_pos ? r->pos.offset : 0;
        for (size_t i = 0; i < n; i++)
            if (msgs[i]->offset > last || !msgs[i]->offset) {
                hub__deliver_one(l, sub, msgs[i]);
                last = msgs[i]->offset;
            }
    }
    /* Everything up to the tail was in the history read (or is lost to this client, which
     * knows it: status 0); the held messages after it follow. */
    if (tail && tail->offset) {
        memcpy(st->after_epoch, tail->epoch, HUB_EPOCH_LEN);
        st->after = tail->offset;
    }
    for (size_t i = 0; i < r->nheld && !r->overflow; i++)
        if (hub__gate(l, sub, r->held[i])) /* may free st */
            hub__deliver_one(l, sub, r->held[i]);
    release_held(r);
    hub_recovered_fn cb = r->cb;
    free(r);
    state_trim(l, sub); /* no filter (or none left): the fan-out's fast path */
    cb(sub->subscriber, sub, status, true);
}

static void read_here(hub_local_t *l, hub_sub_t *sub)
{
    hub_t *hub = l->hub;
    hub_recovery_t *r = hub__rec(sub);
    size_t clen;
    const char *channel = hub_sub_channel(sub, &clen);
    history_read_t rd;
    history_lock(hub->hist);
    int rc = history_read(hub->hist, channel, clen, r->by_pos ? &r->pos : NULL, r->since_ms, history_now_ms(), &rd);
    history_unlock(hub->hist);
    finish(l, sub, rc < 0 ? rc : rd.reaches ? 1 : 0, &rd.tail, rd.msgs, rd.n);
    history_read_clear(&rd);
}

/* What the broker's thread hands back to the worker of a read. */
typedef struct read_ctx {
    hub_t *hub;
    int idx;
    uint64_t token;
    bool by_pos;
    hub_pos_t pos;
    uint64_t since_ms;
    size_t clen;
    char channel[]; /* the replayed messages' channel: envelopes print it (Cable's stream_id) */
} read_ctx_t;

void hub__result_free(hub_recovery_result_t *res)
{
    for (size_t i = 0; i < res->n; i++)
        hub_msg_release(&res->msgs[i]);
    free(res->msgs);
    free(res);
}

/* items: epoch, the last offset given, then (ms, payload) per kept message after the position,
 * in order (broker_redis.c's read script). Entries past history.ttl_s count as gone. */
static void parse_read(read_ctx_t *c, hub_recovery_result_t *res, size_t n, const char *const *items,
                       const size_t *lens)
{
    uint64_t min_ms = history_now_ms() - (uint64_t)c->hub->hist_ttl_s * 1000;
    res->status = n >= 2 ? 1 : UV_EPROTO;
    if (n < 2)
        return;
    snprintf(res->tail.epoch, sizeof res->tail.epoch, "%.*s", (int)(lens[0] < HUB_EPOCH_LEN ? lens[0] : HUB_EPOCH_LEN), items[0]);
    res->tail.offset = strtoull(items[1], NULL, 10);
    if (c->by_pos && (strcmp(c->pos.epoch, res->tail.epoch) != 0 || c->pos.offset > res->tail.offset)) {
        res->status = 0; /* another epoch: the history was forgotten since */
        return;
    }
    res->msgs = calloc((n - 2) / 2 + 1, sizeof *res->msgs);
    if (!res->msgs) {
        res->status = UV_ENOMEM;
        return;
    }
    for (size_t i = 2; i + 1 < n; i += 2) {
        uint64_t ms = strtoull(items[i], NULL, 10);
        hub_msg_t *m = ms >= min_ms || !c->by_pos ? hub_msg_decode(c->channel, c->clen, items[i + 1], lens[i + 1]) : NULL;
        if (m && (c->by_pos || ms >= c->since_ms)) {
            m->ms = ms;
            res->msgs[res->n++] = m;
        } else {
            hub_msg_release(&m);
        }
    }
    /* Reaches back: the first message kept is the one right after the position. */
    uint64_t first = res->n ? res->msgs[0]->offset : res->tail.offset + 1;
    if (c->by_pos && first != c->pos.offset + 1)
        res->status = 0;
}

static void on_read(void *arg, int status, size_t n, const char *const *items, const size_t *lens)
{
    read_ctx_t *c = arg;
    hub_recovery_result_t *res = calloc(1, sizeof *res);
    hub_msg_t *notice = res ? hub_msg_new("", 0, "", "{}", 2) : NULL;
    if (!notice) {
        free(res);
        log_warn("hub", "out of memory: a history read's answer was dropped (its client stays held)");
        free(c);
        return;
    }
    res->token = c->token;
    if (status < 0)
        res->status = status;
    else
        parse_read(c, res, n, items, lens);
    notice->notice = HUB_NOTICE_RECOVERY;
    notice->res = res;
    hub_local_t *l = c->hub->locals[c->idx];
    if (!l || hub__post(l, notice) != 0)
        hub_msg_release(&notice);
    free(c);
}

static void read_through(hub_local_t *l, hub_sub_t *sub)
{
    hub_recovery_t *r = hub__rec(sub);
    size_t clen;
    const char *channel = hub_sub_channel(sub, &clen);
    read_ctx_t *c = malloc(sizeof *c + clen + 1);
    int rc = UV_ENOMEM;
    if (c) {
        *c = (read_ctx_t){.hub = l->hub, .idx = l->idx, .token = r->token, .by_pos = r->by_pos, .pos = r->pos,
                          .since_ms = r->since_ms, .clen = clen};
        memcpy(c->channel, channel, clen);
        c->channel[clen] = 0;
        rc = broker_history(l->hub->broker, channel, clen, r->by_pos ? (long long)r->pos.offset : -1, on_read, c);
    }
    if (rc == 0) {
        list_insert_tail(&l->recs, &r->node);
        return;
    }
    free(c);
    finish(l, sub, rc, NULL, NULL, 0);
}

static void start_read(hub_local_t *l, hub_sub_t *sub)
{
    hub__rec(sub)->started = true;
    if (l->hub->broker)
        read_through(l, sub);
    else if (l->hub->hist)
        read_here(l, sub);
    else
        finish(l, sub, 0, NULL, NULL, 0); /* no history: nothing reaches back */
}

void hub__recovery_confirmed(hub_local_t *l, hub_sub_t *sub)
{
    hub_recovery_t *r = hub__rec(sub);
    if (r->cb && !r->started)
        start_read(l, sub);
}

void hub__recovery_answer(hub_local_t *l, hub_msg_t *notice)
{
    hub_recovery_result_t *res = notice->res;
    for (list_node_t *n = l->recs.next; n != &l->recs; n = n->next) {
        hub_recovery_t *r = container_of(n, hub_recovery_t, node);
        if (r->token != res->token)
            continue;
        finish(l, r->sub, res->status, &res->tail, res->msgs, res->n);
        return;
    }
}

int hub_recover(hub_local_t *l, hub_sub_t *sub, const hub_pos_t *pos, uint64_t since_ms, hub_recovered_fn cb)
{
    hub_recovery_t *r = hub__rec(sub);
    if (r && r->cb)
        return UV_EBUSY; /* one at a time */
    r = recovery_get(l, sub);
    if (!r)
        return UV_ENOMEM;
    atomic_fetch_add(&metrics_gauges.recoveries_attempted, 1);
    r->cb = cb;
    r->sub = sub;
    r->by_pos = pos != NULL;
    if (pos)
        r->pos = *pos;
    r->since_ms = since_ms;
    r->token = atomic_fetch_add(&l->hub->rec_token, 1) + 1;
    if (!hub_sub_pending(sub))
        start_read(l, sub);
    return 0;
}
