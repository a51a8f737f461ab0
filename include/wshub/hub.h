/*
 * hub — channels -> subscribers across all workers, and publish = fan-out
 * (DESIGN.md decisions 2 and 4).
 *
 * A publish becomes one immutable, refcounted hub_msg_t (channel, event, the data as
 * compact JSON, a timestamp). Each dialect envelope turns it into one prepared WebSocket
 * frame, built once per message and shared by every subscriber of that envelope on every
 * worker (hub_msg_frame); an envelope whose frames differ per subscription group (Action
 * Cable's identifier) builds one per variant. Subscribers get a reference to that frame in
 * their output queue: no per-subscriber JSON, no per-subscriber copy.
 *
 * Subscriptions live on the worker of their connection. A process-wide registry (one
 * mutex) knows how many subscriptions each worker has per channel, so that a publish knows
 * its delivery count at once and posts the message only to the workers that need it,
 * through their mailboxes (drained in batches, one per wake-up). A worker drains its own
 * mailbox before it delivers a publish of its own, so events published one after the other
 * arrive in that order whichever worker handled each publish.
 *
 * The hub knows neither workers nor WebSocket sessions. Each event-loop thread that has
 * subscribers owns one hub_local_t, made with two callbacks (hub_local_ops_t): deliver (queue
 * a shared frame to one subscriber, an opaque pointer to the hub) and wake (another thread
 * posted to this mailbox: have the owning thread call hub_drain soon). The hub never knows an
 * envelope's format either: dialects hand it a hub_envelope_t.
 *
 * A message is built (hub_msg_new) apart from being routed (hub_route), so that a message
 * that did not start on a worker (from another process, through a broker) is routed by the
 * same code; hub_publish is the two together, for a publish handled on a worker.
 *
 * Routing from outside any worker (from = NULL): the message is posted to the mailbox of
 * every hub_local with a subscriber of its channel, none is delivered on the calling thread.
 * Each worker then delivers it in mailbox order, so messages routed one after the other
 * (from one thread, or from one worker) reach every subscriber in that order.
 *
 * Threads: hub_new/hub_free on the main thread; hub_local_new before its thread runs;
 * hub_subscribe, hub_unsubscribe, hub_drain and hub_route/hub_publish with from = l on l's
 * thread only; hub_msg_new, hub_msg_release, hub_msg_frame, hub_count and
 * hub_route(hub, NULL, ...) on any thread.
 */
#ifndef WSHUB_HUB_H
#define WSHUB_HUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wshub/broker.h"
#include "wshub/frame.h"
#include "wshub/list.h"
#include "wshub/mempool.h"
#include "wshub/metrics.h"

typedef struct hub hub_t;
typedef struct hub_local hub_local_t;
typedef struct hub_lchan hub_lchan_t;

#define HUB_ENVELOPES 8 /* slots of prepared frames per message: at most this many envelopes */
#define HUB_EPOCH_LEN 8 /* a stream position's epoch: 8 characters of [0-9a-f] */

/* A client's place in a channel's stream: the last message it has (offset) of epoch. */
typedef struct hub_pos {
    uint64_t offset;
    char epoch[HUB_EPOCH_LEN + 1];
} hub_pos_t;

typedef struct hub_msg {
    atomic_uint refs;
    uint64_t seq;          /* process-wide message sequence (unique per message) */
    const char *channel;   /* NUL-terminated, in buf */
    size_t channel_len;
    const char *event;     /* NUL-terminated */
    const char *event_json;/* the event as a JSON string literal, quotes included */
    const char *data;      /* compact JSON object text */
    size_t data_len;
    char timestamp[32];    /* ISO-8601 UTC of the publish, e.g. 2026-11-23T12:00:00.123Z */
    uint64_t created_ns;   /* uv_hrtime() when the message was made (fan-out latency metric) */
    int notice;            /* 0: a message; else a subscription notice of channel (hub.c) */
    uint64_t offset;       /* the stream position (with history.size): 1, 2, ... per channel and
                            * epoch, the same on every node; 0 = none (no history) */
    char epoch[HUB_EPOCH_LEN + 1]; /* the position's epoch ("" without one) */
    uint64_t ms;           /* wall clock of the publish, ms since the Unix epoch */
    struct hub_recovery_result *res; /* notice HUB_NOTICE_RECOVERY: what the broker read */
    size_t bytes;          /* what it holds (its allocation): counted while in a mailbox */
    _Atomic(frame_t *) frames[HUB_ENVELOPES]; /* prepared frames, built on first need */
    char buf[];
} hub_msg_t;

/*
 * How a dialect turns a message into a frame. The hub gives each envelope (each address) a
 * slot of hub_msg_t.frames the first time it sees it, at most HUB_ENVELOPES in a process:
 * declare envelopes once (static const), never one per session.
 */
typedef struct hub_envelope {
    /* Builds the shared frame of m (one reference, given to the hub). NULL on failure. */
    frame_t *(*build)(const hub_msg_t *m);
    /* For subscriptions with a variant: a frame for m and this variant, borrowed (the
     * variant's owner keeps it, e.g. a cache of the last message), with born_ns set to
     * m->created_ns. NULL = use build. */
    frame_t *(*variant_frame)(const hub_msg_t *m, void *variant);
} hub_envelope_t;

/* One subscription of one subscriber to one channel (allocated by the hub). */
typedef struct hub_sub {
    list_node_t chan_node;  /* hub: in the local channel's list */
    uintptr_t ch_tag;       /* hub: its local channel (hub_lchan_t *), or while it has state of a
                             * recovery (issue 17) that state, which points to the channel; the
                             * low bits are HUB_SUB_PENDING and HUB_SUB_STATE. Read through the
                             * accessors (hub_sub_pending; hub_internal.h), never as raw bits */
    void *subscriber;       /* opaque: given back to hub_local_ops_t.deliver */
    const hub_envelope_t *env;
    void *variant;
    list_node_t owner_node; /* free for the dialect: its session's list of subscriptions */
} hub_sub_t;

/* Flags in the low bits of hub_sub_t.ch_tag: both pointers it may hold come from calloc or the
 * pool, aligned to at least 8. */
#define HUB_SUB_PENDING ((uintptr_t)1) /* not confirmed yet (hub_local_ops_t.subscribed will tell) */
#define HUB_SUB_STATE ((uintptr_t)2)   /* the pointer is the recovery state, not the channel */
#define HUB_SUB_TAGS (HUB_SUB_PENDING | HUB_SUB_STATE)

/* Every idle connection holds two or more subscriptions (API B: user:<sub> and its channels),
 * so this is per-connection memory (issue 18): one 64-byte pool class, one cache line for the
 * fan-out loop. What only a recovery needs (its hold, the duplicate filter after it) lives in
 * a side structure that ch_tag points to while it exists (hub_internal.h). */
_Static_assert(sizeof(hub_sub_t) <= 64, "hub_sub_t outgrew its 64-byte pool class");

/* Is a recovery (or a hold waiting for one) under way? Its outcome is told by its callback. */
bool hub_sub_recovering(const hub_sub_t *sub);

/* Is the subscription waiting for the broker's confirmation? Then nothing of its channel
 * reaches it yet, and hub_local_ops_t.subscribed tells when it holds (or was refused). */
static inline bool hub_sub_pending(const hub_sub_t *sub) { return (sub->ch_tag & HUB_SUB_PENDING) != 0; }

/* What a hub_local needs from the thread that owns it. */
typedef struct hub_local_ops {
    /* Queues f, the frame of m (both borrowed: take a reference to keep them), to one
     * subscriber; 0 = queued. Called on the owning thread, from hub_drain and
     * hub_route/hub_publish. It must not free a subscription of the channel being delivered
     * (defer closes, as uv_close does). */
    int (*deliver)(void *subscriber, frame_t *f, const hub_msg_t *m);
    /* Another thread posted to this mailbox: make the owning thread call hub_drain. Called
     * on the posting thread, under the mailbox lock, never after hub_local_close. */
    void (*wake)(void *arg);
    /* A pending subscription now holds (status 0) or was refused (UV_ECONNREFUSED: the
     * broker's link went down before it held). Called on the owning thread from hub_drain;
     * it may unsubscribe any subscription. */
    void (*subscribed)(void *subscriber, hub_sub_t *sub, int status);
} hub_local_ops_t;

/* max_mailbox: the bytes of messages (hub_msg_t.bytes) one worker's mailbox may hold
 * (limits.max_mailbox_bytes); past it that worker's share of a message is dropped, counted in
 * metrics_gauges.mailbox_dropped. 0 = no bound. */
hub_t *hub_new(size_t nworkers, size_t max_mailbox);
void hub_free(hub_t *hub);

/*
 * One per worker, idx in 0..nworkers-1, made before the worker runs. ops (kept by
 * reference) and arg (given to wake) outlive it; subscriptions are allocated from mem;
 * publishes and deliveries are counted in metrics. NULL when out of memory.
 */
hub_local_t *hub_local_new(hub_t *hub, int idx, const hub_local_ops_t *ops, void *arg,
                           mempool_t *mem, metrics_t *metrics);
/* On the owning thread once its loop has ended, before what wake uses is closed: from then
 * on routes no longer post to it (nor wake it). */
void hub_local_close(hub_local_t *l);
/* Once every thread that could route has stopped (nothing can post to l any more). */
void hub_local_free(hub_local_t *l);

/*
 * Subscribes `subscriber` to channel on l. The caller checks duplicates and authorization.
 * Returns the subscription, or NULL with *err (may be NULL) set: UV_ENOMEM when out of
 * memory (locally or in the process-wide registry) or when env would be one envelope too
 * many, UV_ECONNREFUSED while the broker's link is down; then nothing was subscribed, and
 * the dialect answers its API's error. With a broker, a subscription to a channel whose
 * subscription in the broker does not hold yet is pending (hub_sub_pending).
 */
hub_sub_t *hub_subscribe(hub_local_t *l, const char *channel, size_t len, void *subscriber,
                         const hub_envelope_t *env, void *variant, int *err);
/* Removes a subscription; no message of its channel reaches it after this returns. */
void hub_unsubscribe(hub_local_t *l, hub_sub_t *sub);
const char *hub_sub_channel(const hub_sub_t *sub, size_t *len);

/*
 * A message of `event` with `data` (a compact JSON object text) to `channel`, with one
 * reference (hub_msg_release). NULL when out of memory.
 */
hub_msg_t *hub_msg_new(const char *channel, size_t channel_len, const char *event,
                       const char *data, size_t data_len);
void hub_msg_release(hub_msg_t **m);

/*
 * Delivers m to every subscription of its channel in this process: those of other
 * hub_locals through their mailboxes, those of `from` at once, after what other threads
 * posted to from's mailbox earlier (publish order is kept). from = NULL: m comes from
 * outside any worker, and is posted to every mailbox that needs it (see above). m is
 * borrowed. Returns the subscriptions it was queued to (or posted for).
 */
size_t hub_route(hub_t *hub, hub_local_t *from, hub_msg_t *m);

/* ------------------------------------------------------------------ between nodes */

/* With a broker (broker.h), a publish goes to every node through it, this one included, and
 * is routed when it comes back: the broker's order is every subscriber's order, on every
 * node, and each gets it once. The hub tells the broker a channel's first and last
 * subscriber in the process. Set before the workers start. */
void hub_set_broker(hub_t *hub, broker_t *b);
bool hub_has_broker(const hub_t *hub);
/* What the hub hears from a broker (broker_new's events, arg: the hub): messages (decoded and
 * routed), confirmed subscriptions and the link's state (pending subscriptions told through
 * their workers' mailboxes). Any thread. */
void hub_on_broker_message(void *hub, const char *channel, size_t clen, const char *payload, size_t plen);
void hub_on_broker_subscribed(void *hub, const char *channel, size_t clen, uint64_t gen);
void hub_on_broker_link(void *hub, bool up);
/* A message as it travels between nodes, back into a hub_msg_t (the publisher's timestamp
 * kept); NULL if it is not one. */
hub_msg_t *hub_msg_decode(const char *channel, size_t clen, const char *payload, size_t plen);
/* A publish whose outcome is told to done: at once (status, the subscriptions reached) without
 * a broker; once the broker took it (status, the nodes that received it), on the broker's
 * thread, with one. Returns < 0 when it was refused at once (UV_ECONNREFUSED: the broker is
 * unreachable; UV_EAGAIN: it holds broker.max_pending_bytes; UV_ENOMEM): done is not called
 * then. */
int hub_publish_async(hub_local_t *from, const char *channel, size_t channel_len, const char *event,
                      const char *data, size_t data_len, broker_done_fn done, void *arg);

/*
 * hub_msg_new and hub_route from worker `from`, counted in its publishes; nothing is built
 * when the channel has no subscriber. *delivered = hub_route's count. Returns 0 or a
 * negative error (out of memory). With a broker: handed to it and not waited for
 * (*delivered = 0); UV_ECONNREFUSED while it is unreachable, UV_EAGAIN while it is full.
 */
int hub_publish(hub_local_t *from, const char *channel, size_t channel_len, const char *event,
                const char *data, size_t data_len, size_t *delivered);

/* The shared frame of m for env, built once (thread-safe). Borrowed: valid while m is. NULL
 * when the build failed or env would be one envelope too many. */
frame_t *hub_msg_frame(hub_msg_t *m, const hub_envelope_t *env);

/* Delivers what other threads posted to l's mailbox (on l's thread, after a wake). */
void hub_drain(hub_local_t *l);

/* ------------------------------------------------------------------ history and recovery */

/*
 * With history (history.size > 0) every message gets a stream position when it is published:
 * an offset, 1, 2, ... per channel, in an epoch (8 hex characters) that changes whenever the
 * count starts again (the channel's history was forgotten: expired, a restart without a broker,
 * or Redis's keys expired). Without a broker the positions are given and the history kept here
 * (history.c); with one, Redis gives them and keeps the history (broker_redis.c: one script
 * per publish), so that every node sees the same positions and a client recovers on any node.
 *
 * A recovery (hub_recover) replays what a subscription missed since a position (or since a
 * time) and then lets live messages through without a gap or a duplicate: the subscription
 * exists first (its live messages are held while the history is read), the history is read,
 * then the history's messages after the position and the held ones after the last of them
 * are delivered, in offset order, through hub_local_ops_t.deliver like any other.
 */
/* Told twice for a recovery, on the owning thread: done = false before any replayed message
 * (status 1: the history reaches back to the position and the missed messages follow; 0: it
 * does not, nothing is replayed; < 0: it could not be read), then done = true once the replay
 * (if any) and the held live messages were delivered. It must not unsubscribe sub. */
typedef void (*hub_recovered_fn)(void *subscriber, hub_sub_t *sub, int status, bool done);

/* history.size messages per channel kept for history.ttl_s (history.max_bytes in all, without
 * a broker: then kept here). size 0: no history, no positions. After hub_set_broker, before
 * the workers start. 0 or UV_ENOMEM. */
int hub_set_history(hub_t *hub, size_t size, uint32_t ttl_s, size_t max_bytes);
/* Does the hub keep history (history.size > 0)? */
bool hub_history_on(const hub_t *hub);
/* Holds sub's live messages (bounded: past HUB_HOLD_MAX the recovery will fail) until
 * hub_recover; e.g. a session restored before its client asked for the history. */
void hub_hold(hub_local_t *l, hub_sub_t *sub);
/* Ends a hold that no recovery followed: what was held is delivered (unless more than
 * HUB_HOLD_MAX came: then it is lost, as a failed recovery's), and live messages from then on.
 * Nothing when sub is not held or a recovery is under way. */
void hub_unhold(hub_local_t *l, hub_sub_t *sub);
#define HUB_HOLD_MAX 4096
/* Recovers sub: pos = the client's position (NULL: every message since since_ms, ms since the
 * Unix epoch). cb tells the outcome (above). With a broker and a pending subscription, the read
 * waits for the broker's confirmation. 0, or UV_ENOMEM, or UV_EBUSY (one is under way): nothing
 * started, cb not called. */
int hub_recover(hub_local_t *l, hub_sub_t *sub, const hub_pos_t *pos, uint64_t since_ms, hub_recovered_fn cb);

/* Subscriptions of channel in the whole process (for tests and metrics). */
size_t hub_count(hub_t *hub, const char *channel, size_t len);

#endif
