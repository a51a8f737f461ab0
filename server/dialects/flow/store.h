/*
 * flow/store — where API D keeps what outlives one request or one socket: the single-use
 * /ws/<token> tickets that GET /socket.info issues, and each thread's history (what
 * /thread.history and /thread.unnoticed answer) with its count of sockets. Private to the
 * Flow dialect (server/dialects/flow/); nothing outside it includes this header.
 *
 * One table of operations, two implementations: store_mem.c (this process's memory, one
 * mutex: broker.type "memory") and store_redis.c (Redis, shared by every node of a cluster:
 * broker.type "redis"; its keys, TTLs and bounds are described there and in README).
 * Hence the rules of the interface: the caller's strings and JSON go in as copies, and
 * what comes out is the caller's own (malloc'd strings, a new JSON array); no pointer into
 * the store's memory ever escapes, and a thread is always named by its id. Every operation
 * may be called from any worker at once.
 *
 * Results. An operation whose result the caller needs (issue, redeem, history) takes a
 * done callback and calls it exactly once: before it returns (store_mem), or later on the
 * caller's worker x (store_redis, through dialect_call), never on another worker; so a
 * caller copes with both (it cannot tell before the call). If that worker has been
 * destroyed meanwhile (shutdown), done runs on the store's thread with FLOW_STORE_DOWN
 * and may only release what arg holds. The other operations (history_add, noticed, join,
 * leave) answer at once whether they were taken, and are applied in the order one node
 * called them (store_redis: one connection, one queue): a user message and then the bot's
 * reply are stored in that order.
 *
 * Bounds (issue 11): they come from the configuration snapshot the caller passes
 * (flow.max_tickets, flow.history_limit, flow.max_history_bytes,
 * flow.max_history_total_bytes, flow.thread_ttl_s); the counters it passes (a worker's
 * metrics block) get flow_tickets_expired and flow_history_dropped (store_mem: synchronous,
 * on the caller's thread); the process-wide gauges (metrics_gauges.flow_*) are the store's
 * to keep. flow_ticket_refusals is the caller's (it counts the HTTP refusal).
 */
#ifndef WSHUB_FLOW_STORE_H
#define WSHUB_FLOW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "wshub/config.h"
#include "wshub/dialect.h"
#include "wshub/metrics.h"

/* Results: 0, or one of these. */
enum {
    FLOW_STORE_OK = 0,
    FLOW_STORE_FULL = -1,      /* issue: flow.max_tickets unused tickets are held */
    FLOW_STORE_NOMEM = -2,     /* out of memory: nothing was stored */
    FLOW_STORE_NOT_FOUND = -3, /* redeem: unknown, used or expired */
    FLOW_STORE_DOWN = -4,      /* the store is unreachable (Redis down, or too many commands
                                * wait for it), or gave no answer: nothing is known */
};

/* What a ticket holds: the ids /socket.info was given. Out of redeem: malloc'd strings the
 * caller owns (flow_ticket_clear frees them). */
typedef struct flow_ticket {
    char *client_id, *session_id;
    char *thread_id; /* NULL: no thread was announced */
} flow_ticket_t;

static inline void flow_ticket_clear(flow_ticket_t *t)
{
    free(t->client_id);
    free(t->session_id);
    free(t->thread_id);
    t->client_id = t->session_id = t->thread_id = NULL;
}

/* issue's outcome. */
typedef void (*flow_store_issued_fn)(void *arg, int status);
/* redeem's: with FLOW_STORE_OK, *t's strings are the callee's to take (or clear). */
typedef void (*flow_store_redeemed_fn)(void *arg, int status, flow_ticket_t *t);
/* history's: with FLOW_STORE_OK a new JSON array the callee owns, else NULL. */
typedef void (*flow_store_listed_fn)(void *arg, int status, json_t *items);

typedef struct flow_store flow_store_t;

typedef struct flow_store_ops {
    /* Stores a ticket of these ids (copied; thread_id may be NULL) under token (len bytes),
     * valid cfg->flow_token_ttl_ms from now; done(arg, status): FLOW_STORE_OK,
     * FLOW_STORE_FULL when cfg->flow_max_tickets unused tickets are held, FLOW_STORE_NOMEM,
     * FLOW_STORE_DOWN. */
    void (*issue)(flow_store_t *st, dialect_ctx_t *x, const char *token, size_t len, const char *client_id,
                  const char *session_id, const char *thread_id, const config_t *cfg, metrics_t *mt,
                  flow_store_issued_fn done, void *arg);
    /* Takes the ticket of token out of the store, whatever happens next (single use, across
     * nodes too): done(arg, FLOW_STORE_OK, ticket) when it had not expired, else
     * FLOW_STORE_NOT_FOUND (or FLOW_STORE_DOWN, FLOW_STORE_NOMEM). */
    void (*redeem)(flow_store_t *st, dialect_ctx_t *x, const char *token, size_t len, flow_store_redeemed_fn done,
                   void *arg);
    /* Appends entry (a {type, payload, createdAt} object; the caller keeps its reference)
     * to thread's history, which is made if new. Entries of type message.received are the
     * ones history(…, true) lists. Then the bounds, oldest entries first: the thread's
     * flow.history_limit and flow.max_history_bytes, then (store_mem)
     * flow.max_history_total_bytes over the least recently active threads. FLOW_STORE_OK
     * when taken; otherwise the entry is lost (FLOW_STORE_NOMEM, FLOW_STORE_DOWN). */
    int (*history_add)(flow_store_t *st, const char *thread, const json_t *entry, const config_t *cfg,
                       metrics_t *mt);
    /* done(arg, FLOW_STORE_OK, a new JSON array of thread's entries, oldest first (empty
     * for an unknown thread)); unnoticed: only the message.received entries after the last
     * noticed(). Or done(arg, FLOW_STORE_DOWN / FLOW_STORE_NOMEM, NULL). */
    void (*history)(flow_store_t *st, dialect_ctx_t *x, const char *thread, bool unnoticed,
                    flow_store_listed_fn done, void *arg);
    /* Everything in thread's history so far has been seen (thread.noticed). */
    int (*noticed)(flow_store_t *st, const char *thread);
    /* A socket joins thread (made if new): while a thread has sockets it is never forgotten
     * (expiry, the thread count, the total byte bound). 0, or FLOW_STORE_NOMEM /
     * FLOW_STORE_DOWN: not counted, and then never leave(). */
    int (*join)(flow_store_t *st, const char *thread, const config_t *cfg, metrics_t *mt);
    /* A socket that joined leaves thread. */
    void (*leave)(flow_store_t *st, const char *thread, const config_t *cfg);
    /* Frees expired tickets, and threads without a socket and without activity (a
     * message, a join or a leave) for cfg->flow_thread_ttl_s. Called every 500 ms. */
    void (*sweep)(flow_store_t *st, const config_t *cfg, metrics_t *mt);
    /* Releases the store (after every worker has stopped using it): every done still
     * owed is called first. */
    void (*free)(flow_store_t *st);
    /* Can it answer now (its link to Redis is up)? NULL: always (the process's memory). */
    bool (*up)(flow_store_t *st);
} flow_store_ops_t;

struct flow_store {
    const flow_store_ops_t *ops;
};

/* The in-memory store (store_mem.c); NULL when out of memory. clock_ms: a monotonic clock
 * in ms for expiry and activity, NULL = uv_hrtime() (tests pass their own). */
flow_store_t *flow_store_mem_new(uint64_t (*clock_ms)(void));

/* The Redis store (store_redis.c) of cfg's broker.redis_url and broker.prefix, its thread
 * started; NULL with a line in err when it cannot be made (it connects by itself, and
 * again after a loss). */
flow_store_t *flow_store_redis_new(const config_t *cfg, char *err, size_t errlen);

#endif
