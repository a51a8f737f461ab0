/*
 * mock/internal.h — what the files of server/mock/ share with each other and nobody else:
 * a walk over the WebSocket sessions of every worker, answered later.
 *
 * A session lives on the worker that accepted it, and only that worker's thread may touch
 * it. A control request (on whichever worker took it) is deferred (http_defer); a part of
 * the job runs on each worker concerned (worker_call), visits its sessions (conn_foreach over its
 * connections) and keeps what it found in its own part; the last part to end hands the job back to
 * the request's worker, which merges the parts into the answer (finish) and completes it. A
 * worker that is stopping still runs its part (its sessions are still there); one whose loop
 * has ended runs it when it is torn down, with no session left. What a part keeps is
 * bounded by the job (a page of connections or channels, a capped list of ids).
 */
#ifndef WSHUB_MOCK_INTERNAL_H
#define WSHUB_MOCK_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "wshub/conn.h"
#include "wshub/dialect.h"
#include "wshub/http.h"
#include "wshub/mock.h"
#include "wshub/worker.h"
#include "wshub/ws.h"

#define MOCK_PAGE_DEFAULT 1000 /* ?limit= of the lists, when not given */
#define MOCK_PAGE_MAX 10000    /* and at most (a hard cap: each part keeps this many at most) */
#define MOCK_IDS_MAX 1000      /* ids listed in a targeting answer (the counts are exact) */

/* Which sessions a job visits. */
typedef struct mock_filter {
    uint64_t id;          /* 0: any; else that connection only (on its worker only) */
    const dialect_t *d;   /* NULL: every API */
    json_t *match;        /* NULL, or keys the session's describe must hold with equal values
                             (subject, member, thread, client_id, session_id); read-only while
                             the parts run (every worker reads it) */
} mock_filter_t;

typedef struct mock_job mock_job_t;

/* One worker's share of a job: written by that worker only, read by finish. */
typedef struct mock_part {
    mock_job_t *job;
    worker_t *w;
    json_t *out;      /* what the visits kept (the job's own shape) */
    size_t matched;   /* sessions that matched the filter */
    size_t done;      /* of those, the ones the job's action reached */
} mock_part_t;

struct mock_job {
    mock_filter_t filter;
    bool need_desc;   /* visit wants the session's describe even without filter.match */
    /* On the session's worker, for each session that matches; desc is its dialect's
     * describe (borrowed; NULL without one, or when neither match nor need_desc asked). */
    void (*visit)(mock_part_t *p, ws_session_t *s, conn_t *c, json_t *desc);
    /* On the part's worker after its walk (e.g. keep one page). NULL = nothing. */
    void (*part_done)(mock_part_t *p);
    /* On the request's worker once every part has ended: the answer. */
    void (*finish)(mock_job_t *j, http_reply_t *out);
    void (*free_arg)(void *arg);
    void *arg;        /* the job's own request (read-only while the parts run) */
    uint64_t after;   /* pages: ids (or the channel cursor in arg) after this one */
    size_t limit;     /* pages: at most this many */
    worker_t *origin;
    http_pending_t *pending;
    atomic_size_t left; /* parts still running, +1 while they are being dispatched */
    size_t nparts;
    mock_part_t parts[];
};

/* A job with a part for every worker (filter.id set: for its worker only); the caller fills
 * in the callbacks and the filter. NULL when out of memory (*out answered). */
mock_job_t *mock__job_new(dialect_ctx_t *x, uint64_t id, http_reply_t *out);
/* Defers the request and runs the job; it answers and frees itself. On failure *out is
 * answered and the job freed. */
void mock__job_run(const http_request_t *req, dialect_ctx_t *x, mock_job_t *j, http_reply_t *out);

/* POST /api/connections/{id}/send and /close (mock/target.c), routed by mock_connection. */
void mock__send_one(const http_request_t *req, dialect_ctx_t *x, uint64_t id, http_reply_t *out);
void mock__close_one(const http_request_t *req, dialect_ctx_t *x, uint64_t id, http_reply_t *out);

/* The dialect named name ("service", "cable", "flow", "moderation", "echo"), or NULL. */
const dialect_t *mock__dialect(const char *name);
/* A filter key's value in the form describe gives it: a member id as a JSON integer from a
 * number or a string of digits, the others as strings. NULL (with *why) when it cannot be. */
json_t *mock__match_value(const char *key, json_t *v, const char **why);
/* Is key one of the filter keys (subject, member, thread, client_id, session_id)? */
bool mock__match_key(const char *key);
/* A connection id from text (decimal digits, not 0), or 0. */
uint64_t mock__parse_id(const char *s, size_t len);

/* The JSON record of one session: id, api, peer, worker, connected_at, the counters, queued
 * bytes, then its describe's keys (desc, borrowed; may be NULL). */
json_t *mock__record(ws_session_t *s, conn_t *c, json_t *desc);
/* ms since the epoch as ISO-8601 UTC with milliseconds. */
void mock__iso8601(uint64_t ms, char out[32]);

#endif
