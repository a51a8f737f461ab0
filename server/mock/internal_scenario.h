/*
 * mock/internal_scenario — what scenario.c (the document) and scenario_run.c (the runner)
 * share: a running scenario.
 */
#ifndef WSHUB_MOCK_INTERNAL_SCENARIO_H
#define WSHUB_MOCK_INTERNAL_SCENARIO_H

#include <stdbool.h>
#include <stdint.h>

#include <llhttp.h>

#include "wshub/list.h"
#include "wshub/scenario.h"

#define SCN_MAX_DEPTH 8                  /* repeats inside repeats */
#define SCN_MIN_LOOP_WAIT_MS 10          /* a scenario that loops forever waits this per pass */
#define SCN_MAX_FILLED (2 * 1024 * 1024) /* bytes one step's placeholders may make */

typedef enum { SCN_QUEUED, SCN_RUNNING, SCN_DONE, SCN_FAILED, SCN_STOPPED } scn_state_t;

typedef struct scn_frame {
    const json_t *steps; /* borrowed from the document */
    size_t idx;
    long long count, iter; /* a repeat: how many rounds (-1: forever), which one now */
    uint64_t every_ms;
} scn_frame_t;

typedef struct scenario {
    list_node_t node;
    int id;
    char name[96];
    json_t *doc;
    json_t *vars;        /* the document's vars, then what steps saved */
    scn_frame_t stack[SCN_MAX_DEPTH];
    int depth;
    long long passes;    /* whole passes done */
    long long loop;      /* passes wanted: N, or -1 (until stopped) */
    scn_state_t state;   /* under the runner's lock */
    bool stop;           /* asked to stop (under the lock) */
    char error[256];     /* why it failed (under the lock) */
    uint64_t requests;
    size_t filled;       /* bytes the current step's placeholders made (scenario_fill) */
    uv_timer_t timer;
    uv_tcp_t tcp;        /* the request in flight, over loopback */
    uv_connect_t connect;
    uv_write_t write;
    char *out;           /* the request's bytes */
    llhttp_t parser;
    char *body;          /* the answer's body (bounded) */
    size_t body_len;
    bool too_big;
    const json_t *step;  /* the step whose answer is awaited */
    bool tcp_used;
    int closing;         /* handles still closing before it is freed */
} scenario_t;

/* v with its ${…} filled in from s (a new reference); NULL with s->error set. */
json_t *scenario_fill(scenario_t *s, const json_t *v);

#endif
