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
 * through their mailboxes (drained in batches on uv_async wake-ups). A worker drains its own
 * mailbox before it delivers a publish of its own, so events published one after the other
 * arrive in that order whichever worker handled each publish.
 *
 * The hub never knows an envelope's format: dialects hand it a hub_envelope_t.
 * Worker-thread only, except hub_new/hub_free (main thread).
 */
#ifndef WSHUB_HUB_H
#define WSHUB_HUB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "wshub/frame.h"
#include "wshub/list.h"

typedef struct worker worker_t;
typedef struct ws_session ws_session_t;
typedef struct hub hub_t;
typedef struct hub_local hub_local_t;
typedef struct hub_lchan hub_lchan_t;

#define HUB_ENVELOPES 8 /* slots of prepared frames per message: one per envelope kind */

typedef struct hub_msg {
    atomic_uint refs;
    uint64_t seq;          /* process-wide publish sequence */
    const char *channel;   /* NUL-terminated, in buf */
    size_t channel_len;
    const char *event;     /* NUL-terminated */
    const char *event_json;/* the event as a JSON string literal, quotes included */
    const char *data;      /* compact JSON object text */
    size_t data_len;
    char timestamp[32];    /* ISO-8601 UTC of the publish, e.g. 2026-11-23T12:00:00.123Z */
    uint64_t created_ns;   /* uv_hrtime() when the message was made (fan-out latency metric) */
    _Atomic(frame_t *) frames[HUB_ENVELOPES]; /* prepared frames, built on first need */
    char buf[];
} hub_msg_t;

/* How a dialect turns a message into a frame. */
typedef struct hub_envelope {
    int slot; /* 0..HUB_ENVELOPES-1, unique per envelope kind */
    /* Builds the shared frame of m (one reference, given to the hub). NULL on failure. */
    frame_t *(*build)(const hub_msg_t *m);
    /* For subscriptions with a variant: a frame for m and this variant, borrowed (the
     * variant's owner keeps it, e.g. a cache of the last message), with born_ns set to
     * m->created_ns. NULL = use build. */
    frame_t *(*variant_frame)(const hub_msg_t *m, void *variant);
} hub_envelope_t;

/* One subscription of one session to one channel (allocated by the hub). */
typedef struct hub_sub {
    list_node_t chan_node;  /* hub: in the local channel's list */
    hub_lchan_t *ch;        /* hub */
    ws_session_t *s;
    const hub_envelope_t *env;
    void *variant;
    list_node_t owner_node; /* free for the dialect: its session's list of subscriptions */
} hub_sub_t;

hub_t *hub_new(size_t nworkers);
void hub_free(hub_t *hub);

/* Per worker: create before the worker runs. */
hub_local_t *hub_local_new(hub_t *hub, worker_t *w);
/* On the worker's thread once its loop has ended, before its wake-up handle is closed: from
 * then on publishes of other workers no longer post to it (nor wake it). */
void hub_local_close(hub_local_t *l);
/* Once every worker has been joined (nothing can post to l any more). */
void hub_local_free(hub_local_t *l);

/*
 * Subscribes s to channel on s's worker. The caller checks duplicates and authorization.
 * Returns the subscription, or NULL when out of memory (locally or in the process-wide
 * registry): then nothing was subscribed, and the dialect answers its API's error.
 */
hub_sub_t *hub_subscribe(worker_t *w, const char *channel, size_t len, ws_session_t *s,
                         const hub_envelope_t *env, void *variant);
/* Removes a subscription; no message of its channel reaches it after this returns. */
void hub_unsubscribe(worker_t *w, hub_sub_t *sub);
const char *hub_sub_channel(const hub_sub_t *sub, size_t *len);

/*
 * Publishes `event` with `data` (a compact JSON object text) to `channel` from worker w.
 * *delivered = the subscriptions in this process it was queued to. Returns 0 or a
 * negative error (out of memory).
 */
int hub_publish(worker_t *w, const char *channel, size_t channel_len, const char *event,
                const char *data, size_t data_len, size_t *delivered);

/* The shared frame of m for env, built once (thread-safe). Borrowed: valid while m is. */
frame_t *hub_msg_frame(hub_msg_t *m, const hub_envelope_t *env);

/* Delivers what other workers posted to w's mailbox (called on w's wake-up). */
void hub_drain(worker_t *w);

/* Subscriptions of channel in the whole process (for tests and metrics). */
size_t hub_count(hub_t *hub, const char *channel, size_t len);

#endif
