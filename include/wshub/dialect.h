/*
 * dialect — one module per documented API (echo, service, cable, moderation, flow), as a
 * table of callbacks. A dialect parses its API's messages and speaks its envelope; the
 * WebSocket session never knows which API it carries, the hub never knows an envelope's
 * format.
 *
 * The rule: a dialect sees the server through this header and nothing else of its
 * internals. Its sessions through ws.h (send, close, their per-session data), requests and
 * replies through http.h's accessors, the hub's envelope and subscription types through
 * hub.h, its counters through metrics.h, tokens through auth.h, and everything that belongs
 * to the worker it runs on through its context, below: its per-worker state, the clock,
 * timers, the thread pool, memory, metrics, the configuration snapshot, publish and
 * subscribe. A dialect never includes worker.h, server.h or conn.h (scripts/check-structure
 * checks it), never reads another dialect's state, and exports only its table and the HTTP
 * handlers its routes name; a dialect of several files shares the rest through a private
 * header of its own (dialects/flow/internal.h).
 */
#ifndef WSHUB_DIALECT_H
#define WSHUB_DIALECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "wshub/config.h"
#include "wshub/live.h"
#include "wshub/metrics.h"
#include "wshub/wtimer.h"

typedef struct ws_session ws_session_t;
typedef struct http_request http_request_t;
typedef struct hub_sub hub_sub_t;
typedef struct hub_envelope hub_envelope_t;
/* One per worker and dialect (and one for the server's own routes): what a dialect may use
 * of the worker it runs on. Valid from worker_start to worker_stop, on that worker only. */
typedef struct dialect_ctx dialect_ctx_t;

/* The result of a dialect's upgrade decision. */
typedef struct dialect_accept {
    int status;           /* 0: accept; otherwise refuse with this HTTP status */
    char *body;           /* refusal body (JSON, malloc'd, freed by the caller), or NULL */
    int hs_reason;        /* hs_reason_t counted on refusal */
    const char *why;      /* refusal: a short reason for the log line */
    const char *subprotocol; /* accept: the selected subprotocol (one the client offered) or NULL */
    void *data;           /* accept: the dialect's per-session state, handed to on_open */
} dialect_accept_t;

typedef struct dialect {
    const char *name; /* for logs */
    const char *path; /* WebSocket request path: exact, or a prefix when path_prefix is set */
    int path_prefix;  /* path is a prefix (e.g. "/ws/" for /ws/<token>) */
    int endpoint;     /* endpoint_t: the metrics label of its sessions, nothing else */
    /* Process-wide, on the main thread before any worker exists (e.g. load a word list):
     * 0, or -1 with one line in err, and the daemon does not start (--check-config says the
     * same). NULL = nothing to load. */
    int (*process_init)(const config_t *cfg, char *err, size_t errlen);
    /* After every worker has ended. */
    void (*process_free)(void);
    /* Is the endpoint enabled in this configuration? NULL = always. */
    int (*enabled)(const config_t *cfg);
    /* Decides the upgrade: auth, Origin, subprotocol. NULL = accept with no subprotocol.
     * A decision that needs another thread's answer (a ticket in Redis) may come later:
     * accept calls http_defer(req), leaves *out empty, and the decision is given once with
     * http_accept_complete() on this worker (http.h: who owns data, closes meanwhile). */
    void (*accept)(const http_request_t *req, dialect_ctx_t *x, dialect_accept_t *out);
    /* The session is open (the 101 is queued). */
    void (*on_open)(ws_session_t *s);
    /* A complete, validated text or binary message. */
    void (*on_message)(ws_session_t *s, int opcode, const uint8_t *msg, size_t len);
    /* The daemon is shutting down: send the API's goodbye (the session then closes 1001). */
    void (*on_shutdown)(ws_session_t *s);
    /* The connection is gone: release the dialect's state. No sends any more. */
    void (*on_close)(ws_session_t *s);
    /* Per-worker state (dialect_set_state, timers): on the worker's thread before its loop
     * runs; a non-zero return (a libuv error) stops the worker. */
    int (*worker_start)(dialect_ctx_t *x);
    /* Every publish through the server API, before its fan-out (e.g. to keep a history). */
    void (*on_publish)(dialect_ctx_t *x, const char *channel, size_t channel_len, const char *event,
                       const char *data, size_t data_len);
    /* The worker's loop has ended (its connections are gone): release the state. */
    void (*worker_stop)(dialect_ctx_t *x);
    /* A subscription that was pending (dialect_subscribe: the broker had not confirmed its
     * channel) now holds (status 0: send the API's confirmation now) or was refused
     * (UV_ECONNREFUSED: the broker's link went down first; answer the API's error and
     * unsubscribe it). NULL: nothing to tell the client. */
    void (*on_subscribed)(ws_session_t *s, hub_sub_t *sub, int status);
    /* The client sends faster than limits.message_rate: send the API's error (the session
     * then closes 1008). NULL = close only. */
    void (*on_rate_limited)(ws_session_t *s);
    /* Why the API cannot serve now (GET /readyz answers it, 503), e.g. "the Flow store is
     * unreachable"; NULL when it can. NULL: whenever the process can. Any thread. */
    const char *(*unready)(void);
    /* The API has a liveness rule of its own (Flow's idle timeout): no WebSocket pings. */
    int no_ws_ping;
    /* The mock backend (issue 15; server/mock/). Who the session is, as a new JSON object of
     * the API's own keys (API B "subject", cable "member", Flow "client_id", "session_id",
     * "thread"), with "subscriptions": [dialect_sub_json of each]. NULL = nothing to tell. */
    json_t *(*describe)(ws_session_t *s);
    /* Sends event with data (a compact JSON object text) to this session alone, in the API's
     * own envelope, as a publish to its channels would arrive (dialect_send_envelope): through
     * each of its subscriptions (cable: one frame per identifier), or only those of channel
     * when it is not NULL. Returns the frames sent (0: nowhere to put it, e.g. no such
     * subscription), or < 0. NULL = the API has no events. */
    int (*send_event)(ws_session_t *s, const char *channel, const char *event, const char *data, size_t data_len);
    /* The API's goodbye before a close the mock backend asks for (cable: disconnect with
     * reason and reconnect); the session is closed right after. NULL = none. */
    void (*kick)(ws_session_t *s, const char *reason, bool reconnect);
} dialect_t;

/* ------------------------------------------------------------ the context of a dialect */

/* The dialect's per-worker state (NULL until set, by worker_start). */
void *dialect_state(const dialect_ctx_t *x);
void dialect_set_state(dialect_ctx_t *x, void *state);
/* The context of a session (the one of its dialect on its worker). */
dialect_ctx_t *dialect_ctx(ws_session_t *s);
/* 0 .. workers-1: e.g. for work that one worker does for the whole process. */
int dialect_worker_index(const dialect_ctx_t *x);

/* The loop's clock: ms, the time of the current loop iteration (uv_now). */
uint64_t dialect_now(const dialect_ctx_t *x);
/* One-shot timers on the worker's timer heap (wtimer.h: 50 ms resolution, cheap). */
int dialect_timer_start(dialect_ctx_t *x, wtimer_t *t, uint64_t due_ms, wtimer_cb cb);
void dialect_timer_stop(dialect_ctx_t *x, wtimer_t *t);
/* A repeating libuv timer on the worker's loop, initialised and started here with t->data =
 * x; the worker closes it with its other handles when its loop ends. */
int dialect_repeat_start(dialect_ctx_t *x, uv_timer_t *t, uint64_t period_ms, uv_timer_cb cb);
/* Work on libuv's thread pool; `after` runs back on this worker (uv_queue_work). */
int dialect_queue_work(dialect_ctx_t *x, uv_work_t *req, uv_work_cb work, uv_after_work_cb after);
/* From any thread (e.g. a store's own): runs fn(arg) on x's worker, soon and in the order of
 * the calls. 0; once that worker's loop has ended, fn still runs, when the worker is torn
 * down (on the main thread, its connections gone: fn may only release what arg holds).
 * UV_ECANCELED once the worker is destroyed, UV_ENOMEM: fn will not run, arg is the
 * caller's. */
int dialect_call(dialect_ctx_t *x, void (*fn)(void *), void *arg);

/* Long-lived per-session objects from the worker's pool (mempool.h); freed with their size. */
void *dialect_alloc(dialect_ctx_t *x, size_t size);
void dialect_free(dialect_ctx_t *x, void *p, size_t size);

/* The worker's metrics block (this thread is its only writer: metrics_add). */
metrics_t *dialect_metrics(dialect_ctx_t *x);
/* The configuration the daemon started with: for keys a reload does not change. */
const config_t *dialect_config(const dialect_ctx_t *x);
/* The current configuration snapshot (SIGHUP makes a new one; a snapshot stays valid): read
 * it once per request or message and use that one throughout. */
const live_t *dialect_live(const dialect_ctx_t *x);

/* Publishes event with data (a compact JSON object text) to channel in the whole process.
 * *delivered = subscriptions it was queued to. 0 or a negative error (out of memory). */
int dialect_publish(dialect_ctx_t *x, const char *channel, size_t channel_len, const char *event,
                    const char *data, size_t data_len, size_t *delivered);
/* The same for a publish through the server API (api.c): every dialect's on_publish first. */
int dialect_publish_api(dialect_ctx_t *x, const char *channel, size_t channel_len, const char *event,
                        const char *data, size_t data_len, size_t *delivered);
/* Do publishes go through a broker to other nodes (broker.type "redis")? Then a publish's
 * outcome is known later (dialect_publish_api_async) and `delivered` counts nodes. */
bool dialect_has_broker(const dialect_ctx_t *x);
/* Can this node publish now: no broker, or its link is up? */
bool dialect_ready(const dialect_ctx_t *x);
/* GET /readyz: dialect_ready, and every enabled dialect's ready(). NULL, or why not (static). */
const char *dialects_unready(const dialect_ctx_t *x);
/* The outcome of a publish: status 0 and n (the nodes that received it), or status < 0. */
typedef void (*dialect_published_fn)(void *arg, int status, long long n);
/* dialect_publish_api, told when the broker took the publish: done runs later on this worker.
 * Returns < 0 when refused at once (UV_ECONNREFUSED: the broker is unreachable), and done is
 * not called then. */
int dialect_publish_api_async(dialect_ctx_t *x, const char *channel, size_t channel_len, const char *event,
                              const char *data, size_t data_len, dialect_published_fn done, void *arg);
/* Subscribes session s to channel (hub.h: env builds the frames, variant is the
 * subscription group's). The caller checks duplicates and authorization. NULL with *err
 * (may be NULL) when nothing was subscribed: UV_ENOMEM (out of memory), UV_ECONNREFUSED
 * (the broker's link is down). With a broker the subscription may be pending
 * (hub.h: hub_sub_pending): no message of its channel reaches it, and the API's confirmation
 * waits for the dialect's on_subscribed. */
hub_sub_t *dialect_subscribe(ws_session_t *s, const char *channel, size_t len,
                             const hub_envelope_t *env, void *variant, int *err);
/* No message of the channel reaches the subscription once this returns. */
void dialect_unsubscribe(ws_session_t *s, hub_sub_t *sub);

/* For describe: {"channel": the subscription's channel} (and "pending": true while the
 * broker has not confirmed it); NULL when out of memory. */
json_t *dialect_sub_json(const hub_sub_t *sub);
/* For send_event: a message of event and data on channel, built into a frame by env (with
 * variant, as a publish to that subscription would be) and sent to s alone. 1 when sent, or
 * < 0. */
int dialect_send_envelope(ws_session_t *s, const hub_envelope_t *env, void *variant, const char *channel,
                          size_t channel_len, const char *event, const char *data, size_t data_len);
/* ------------------------------------------------------------ history and recovery (issue 17) */

struct hub_pos;
/* Does the hub keep channel history with stream positions (history.size > 0)? */
bool dialect_history_on(const dialect_ctx_t *x);
/* hub.h: hub_hold and hub_recover for a subscription of session s. */
void dialect_hold(ws_session_t *s, hub_sub_t *sub);
void dialect_unhold(ws_session_t *s, hub_sub_t *sub);
int dialect_recover(ws_session_t *s, hub_sub_t *sub, const struct hub_pos *pos, uint64_t since_ms,
                    void (*cb)(void *session, hub_sub_t *sub, int status, bool done));
/* A session's state kept for its recovery on another connection (Action Cable's sid), for
 * history.ttl_s: in this process, or in Redis with broker.type redis (any node reads it).
 * 0, or < 0 when it could not be stored. */
int dialect_session_put(dialect_ctx_t *x, const char *sid, const char *val, size_t len);
/* What was stored for sid: done(arg, val, len) runs on this worker (val NULL: nothing, or it
 * could not be read), now or later. 0, or < 0: done will not run. */
int dialect_session_get(dialect_ctx_t *x, const char *sid, void (*done)(void *arg, const char *val, size_t len),
                        void *arg);

/* ------------------------------------------------------------ the tables */

extern const dialect_t dialect_echo;
extern const dialect_t dialect_service;
extern const dialect_t dialect_cable;
extern const dialect_t dialect_moderation;
extern const dialect_t dialect_flow;
extern const dialect_t dialect_tap; /* the mock backend's traffic tap (mock/tap_client.c) */

/* Sends msg as compact JSON text on s and releases msg (NULL is ignored): the dialects'
 * per-connection replies, never fan-out (that is the hub's prepared frames). */
int dialect_send_json(ws_session_t *s, json_t *msg);

/* Flags for json_loadb of anything a client sends: \u0000 is valid JSON (RFC 8259), so a
 * string may hold NUL bytes and is read with its length (json_string_length), never as a C
 * string, unless dialect_cstr vouched for it (issue 11). */
#define DIALECT_JSON_FLAGS JSON_ALLOW_NUL

/* v's value when v is a string without NUL bytes (a name, an id, a command), else NULL: a
 * "a\u0000b" must never act as "a". */
const char *dialect_cstr(const json_t *v);

/* Is v a string equal to lit, length included? */
bool dialect_str_is(const json_t *v, const char *lit);

/* Every dialect, for routing; NULL-terminated. */
extern const dialect_t *const dialects[];
#define DIALECT_MAX 8 /* dialects[] has fewer: a worker's context array is this long */

/* For the server: a worker's contexts (one per dialect in dialects[] order, then the
 * server's own); the one of d, NULL = the server's own (its built-in routes). */
dialect_ctx_t *dialect_ctx_pick(dialect_ctx_t *all, const dialect_t *d);

/* For main.c: every dialect's process_init in order (on failure, those done are freed and
 * err names the problem), and their process_free. */
int dialects_process_init(const config_t *cfg, char *err, size_t errlen);
void dialects_process_free(void);

#endif
