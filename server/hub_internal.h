/*
 * hub_internal - what hub.c and hub_recover.c (history and recovery, issue 17) share of the
 * hub's state; nothing else includes it.
 */
#ifndef WSHUB_HUB_INTERNAL_H
#define WSHUB_HUB_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "wshub/history.h"
#include "wshub/hub.h"
#include "wshub/list.h"
#include "wshub/strmap.h"

#define HUB_MAX_WORKERS 256 /* config.c's bound on workers: a publish's targets fit on its stack */

typedef struct reg_entry {
    uint64_t gen;   /* with a broker: the token of the channel's subscription in it */
    bool confirmed; /* without one, always; with one, once it said the subscription holds */
    uint32_t total;
    uint32_t per_worker[]; /* nworkers counts */
} reg_entry_t;

struct hub {
    uv_mutex_t lock; /* guards reg */
    strmap_t reg;
    broker_t *broker; /* NULL: publishes are routed in the process (hub_set_broker) */
    bool link_up;     /* the broker's link (under lock) */
    uint64_t gen;     /* the last reg_entry_t.gen given */
    size_t nworkers;
    size_t max_mailbox; /* bytes per mailbox, 0 = no bound */
    hub_local_t **locals; /* by worker index, set before the workers start */
    size_t hist_size;     /* history.size: 0 = no history, no positions */
    uint32_t hist_ttl_s;
    history_t *hist;      /* without a broker: the history kept here */
    atomic_uint_fast64_t rec_token; /* the last hub_recovery_t.token given */
};

struct hub_lchan {
    list_node_t subs;    /* subscriptions that hold: messages are delivered to these */
    list_node_t pending; /* those waiting for the broker's confirmation */
    uint32_t n;
    strmap_entry_t *e; /* this channel's entry in the worker's map: its key is the name */
};

struct hub_local {
    hub_t *hub;
    int idx;
    const hub_local_ops_t *ops;
    void *arg;          /* for ops->wake */
    mempool_t *mem;     /* subscriptions */
    metrics_t *metrics;
    strmap_t chans;     /* channel -> hub_lchan_t*, worker thread only */
    uv_mutex_t mlock;   /* guards mbox, mlen, mcap, closed */
    hub_msg_t **mbox;
    size_t mlen, mcap;
    size_t mbytes;      /* hub_msg_t.bytes of the messages in mbox */
    hub_msg_t **spare;  /* the drained array, reused: worker thread only */
    size_t spare_cap;
    atomic_bool pending;
    bool closed;        /* the worker has stopped: posts are refused (hub_local_close) */
    list_node_t recs;   /* hub_recovery_t waiting for the broker's read: worker thread only */
};

#define HUB_NOTICE_RECOVERY 2 /* hub_msg_t.notice: a history read through the broker came back */

/* What a subscription has only around a recovery, out of hub_sub_t (issue 18: it stays 64 bytes
 * for every idle connection). From the worker's pool, made by a hold or a recovery and freed
 * once neither it nor the duplicate filter after it is left (hub__state_trim); meanwhile the
 * subscription's ch_tag points here (HUB_SUB_STATE), and the fan-out loop, seeing that bit,
 * gates its messages (hub__gate). */
typedef struct hub_sub_state {
    hub_lchan_t *ch;          /* the subscription's channel */
    struct hub_recovery *rec; /* a recovery under way (hub_recover) or a hold, or NULL */
    uint64_t after;           /* after a recovery, messages of after_epoch up to this offset were
                               * given already (a duplicate is skipped); 0 = no filter */
    char after_epoch[HUB_EPOCH_LEN]; /* with after, the epoch it counts in */
} hub_sub_state_t;

static inline hub_sub_state_t *hub__state(const hub_sub_t *sub)
{
    return sub->ch_tag & HUB_SUB_STATE ? (hub_sub_state_t *)(sub->ch_tag & ~HUB_SUB_TAGS) : NULL;
}

static inline hub_lchan_t *hub__ch(const hub_sub_t *sub)
{
    hub_sub_state_t *st = hub__state(sub);
    return st ? st->ch : (hub_lchan_t *)(sub->ch_tag & ~HUB_SUB_TAGS);
}

static inline struct hub_recovery *hub__rec(const hub_sub_t *sub)
{
    hub_sub_state_t *st = hub__state(sub);
    return st ? st->rec : NULL;
}

/* Points ch_tag at p (a channel, or with state = true a hub_sub_state_t), pending kept. */
static inline void hub__set_ch(hub_sub_t *sub, void *p, bool state)
{
    sub->ch_tag = (uintptr_t)p | (state ? HUB_SUB_STATE : 0) | (sub->ch_tag & HUB_SUB_PENDING);
}

static inline void hub__set_pending(hub_sub_t *sub, bool pending)
{
    sub->ch_tag = (sub->ch_tag & ~HUB_SUB_PENDING) | (pending ? HUB_SUB_PENDING : 0);
}

/* A recovery (hub_recover), or a hold (hub_hold) waiting for one: hangs off its subscription's
 * hub_sub_state_t. */
typedef struct hub_recovery {
    list_node_t node;    /* in hub_local_t.recs while the broker reads */
    hub_sub_t *sub;      /* the subscription it hangs off */
    hub_recovered_fn cb; /* NULL: held, hub_recover not called yet */
    bool by_pos;         /* pos, else since_ms */
    bool overflow;       /* more than HUB_HOLD_MAX live messages came meanwhile: it fails */
    bool started;        /* the read was asked (or done) */
    hub_pos_t pos;
    uint64_t since_ms;
    uint64_t token;      /* matches the answer to this read */
    hub_msg_t **held;    /* live messages held meanwhile, in order */
    size_t nheld, cap;
} hub_recovery_t;

/* A history read the broker answered, handed to the worker in a HUB_NOTICE_RECOVERY notice. */
typedef struct hub_recovery_result {
    uint64_t token;
    int status;          /* 1 reaches back, 0 not, < 0 could not read */
    hub_pos_t tail;      /* the channel's position when it was read */
    hub_msg_t **msgs;    /* after the position (or since the time), in order */
    size_t n;
} hub_recovery_result_t;

/* hub.c */
int hub__post(hub_local_t *l, hub_msg_t *m);
/* hub_recover.c */
/* Deliver m to sub now? For a subscription with state (HUB_SUB_STATE): m may be held for its
 * recovery, or a duplicate of what it replayed; the state may be freed. */
bool hub__gate(hub_local_t *l, hub_sub_t *sub, hub_msg_t *m);
void hub__deliver_one(hub_local_t *l, hub_sub_t *sub, hub_msg_t *m);
void hub__state_free(hub_local_t *l, hub_sub_t *sub); /* its recovery too (hub_unsubscribe) */
void hub__recovery_confirmed(hub_local_t *l, hub_sub_t *sub); /* its pending subscription holds */
void hub__recovery_answer(hub_local_t *l, hub_msg_t *notice);
void hub__result_free(hub_recovery_result_t *r);

#endif
