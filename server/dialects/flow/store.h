/*
 * flow/store — where API D keeps what outlives one request or one socket: the single-use
 * /ws/<token> tickets that GET /socket.info issues, and each thread's history (what
 * /thread.history and /thread.unnoticed answer) with its count of sockets. Private to the
 * Flow dialect (server/dialects/flow/); nothing outside it includes this header.
 *
 * One table of operations, so that the store can live elsewhere than in this process's
 * memory: store_mem.c is the only implementation (the process's memory, one mutex); a
 * Redis one, for several nodes behind one load balancer, would provide the same table.
 * Hence the rules of the interface: the caller's strings and JSON go in as copies, and
 * what comes out is the caller's own (malloc'd strings, a new JSON array); no pointer into
 * the store's memory ever escapes, and a thread is always named by its id. Every operation
 * may be called from any worker at once.
 *
 * Bounds (issue 11): they come from the configuration snapshot the caller passes
 * (flow.max_tickets, flow.history_limit, flow.max_history_bytes,
 * flow.max_history_total_bytes, flow.thread_ttl_s); the counters it passes (a worker's
 * metrics block) get flow_tickets_expired and flow_history_dropped; the process-wide gauges
 * (metrics_gauges.flow_*) are the store's to keep. flow_ticket_refusals is the caller's
 * (it counts the HTTP refusal).
 *
 * What a Redis implementation would do, per operation (never written: issue 12 asked for
 * the interface only):
 *   issue        SET flow:ticket:<token> <JSON {clientId, sessionId, threadId}> PX ttl NX,
 *                after an INCR of a ticket counter checked against flow.max_tickets (a
 *                DECR on refusal, and on redeem or expiry through a keyspace notification
 *                or a sorted set of expiry times trimmed by sweep).
 *   redeem       GETDEL flow:ticket:<token> (single use across nodes: only one GETDEL
 *                wins); the key's PX already did the expiry check.
 *   history_add  in one MULTI or Lua script: RPUSH flow:hist:<thread> <entry text>,
 *                LTRIM to flow.history_limit, byte accounting in a hash (per thread and
 *                total, oldest dropped first), ZADD flow:active <now> <thread>.
 *   history      LRANGE flow:hist:<thread> 0 -1 (unnoticed: from the index in
 *                flow:noticed:<thread>, message.received entries only), parsed to JSON.
 *   noticed      SET flow:noticed:<thread> <LLEN flow:hist:<thread>>.
 *   join, leave  HINCRBY flow:sockets <thread> ±1 and ZADD flow:active <now> <thread>;
 *                a node that dies leaves its counts, so the hash would be per node
 *                (flow:sockets:<node>) with a TTL the node refreshes.
 *   sweep        ZRANGEBYSCORE flow:active -inf <now - ttl>: delete those threads whose
 *                socket count is 0 on every node; ticket keys expire by themselves.
 *   free         disconnect (the data stays for the other nodes).
 */
#ifndef WSHUB_FLOW_STORE_H
#define WSHUB_FLOW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "wshub/config.h"
#include "wshub/metrics.h"

/* Results: 0, or one of these. */
enum {
    FLOW_STORE_OK = 0,
    FLOW_STORE_FULL = -1,      /* issue: flow.max_tickets unused tickets are held */
    FLOW_STORE_NOMEM = -2,     /* out of memory: nothing was stored */
    FLOW_STORE_NOT_FOUND = -3, /* redeem: unknown, used or expired */
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

typedef struct flow_store flow_store_t;

typedef struct flow_store_ops {
    /* Stores a ticket of these ids (copied; thread_id may be NULL) under token (len bytes),
     * valid cfg->flow_token_ttl_ms from now. Expired tickets are freed first
     * (flow_tickets_expired). FLOW_STORE_FULL when cfg->flow_max_tickets unused tickets are
     * held, FLOW_STORE_NOMEM. */
    int (*issue)(flow_store_t *st, const char *token, size_t len, const char *client_id, const char *session_id,
                 const char *thread_id, const config_t *cfg, metrics_t *mt);
    /* Takes the ticket of token out of the store, whatever happens next (single use): 0 and
     * *out filled when it had not expired, else FLOW_STORE_NOT_FOUND and *out untouched. */
    int (*redeem)(flow_store_t *st, const char *token, size_t len, flow_ticket_t *out);
    /* Appends entry (a {type, payload, createdAt} object; the caller keeps its reference)
     * to thread's history, which is made if new. Entries of type message.received are the
     * ones history(…, true) lists. Then the bounds, oldest entries first: the thread's
     * flow.history_limit and flow.max_history_bytes, then flow.max_history_total_bytes over
     * the least recently active threads. Out of memory: the entry is lost. */
    void (*history_add)(flow_store_t *st, const char *thread, const json_t *entry, const config_t *cfg,
                        metrics_t *mt);
    /* A new JSON array of thread's entries, oldest first (empty for an unknown thread);
     * unnoticed: only the message.received entries after the last noticed(). */
    json_t *(*history)(flow_store_t *st, const char *thread, bool unnoticed);
    /* Everything in thread's history so far has been seen (thread.noticed). */
    void (*noticed)(flow_store_t *st, const char *thread);
    /* A socket joins thread (made if new): while a thread has sockets it is never forgotten
     * (expiry, the thread count, the total byte bound). 0, or FLOW_STORE_NOMEM: not
     * counted, and then never leave(). */
    int (*join)(flow_store_t *st, const char *thread, metrics_t *mt);
    /* A socket that joined leaves thread. */
    void (*leave)(flow_store_t *st, const char *thread);
    /* Frees expired tickets, and threads without a socket and without activity (a
     * message, a join or a leave) for cfg->flow_thread_ttl_s. Called every 500 ms. */
    void (*sweep)(flow_store_t *st, const config_t *cfg, metrics_t *mt);
    /* Releases the store (after every worker has stopped using it). */
    void (*free)(flow_store_t *st);
} flow_store_ops_t;

struct flow_store {
    const flow_store_ops_t *ops;
};

/* The in-memory store (store_mem.c); NULL when out of memory. clock_ms: a monotonic clock
 * in ms for expiry and activity, NULL = uv_hrtime() (tests pass their own). */
flow_store_t *flow_store_mem_new(uint64_t (*clock_ms)(void));

#endif
