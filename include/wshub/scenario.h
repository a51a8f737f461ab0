/*
 * scenario — timed steps that make the mock backend lively (issue 15), from a JSON document:
 *
 *   {"name": "…", "vars": {"conv": "c-1"}, "loop": false | true | N,
 *    "steps": [
 *      {"publish": {"channel": "conversation:${conv}", "event": "chat_message", "data": {…}}},
 *      {"wait_ms": 1000},
 *      {"request": {"method": "POST", "path": "/api/circle/rooms", "body": {…}},
 *       "save": {"room": "room.uuid"}, "expect": 201},
 *      {"repeat": 5, "every_ms": 2000, "steps": [ … ${i} … ]},
 *      {"log": "pass ${n} done"}]}
 *
 * publish is POST /api/publish; request is any request to this server's HTTP API with the
 * API key (each step gets the answer a curl would); a step fails unless its answer is 2xx (or
 * its expect), and a failed step ends the scenario (GET /api/scenarios says why). save keeps
 * values of the JSON answer (a dotted path, array indexes as numbers) as vars of later steps.
 * ${name} in any string: a var, i (the innermost repeat's round, from 0), n (the pass, from
 * 0), now (ISO-8601), now_ms, rand, uuid; a string that is one placeholder alone takes the
 * value's type. loop: run the steps again (true: until stopped; then a pass must wait at
 * least 10 ms). Started by `wshubd --scenario FILE` or POST /api/scenarios; stopped by
 * DELETE /api/scenarios/{id} or POST /api/reset.
 *
 * Scenarios run on the main thread's loop (scenario_run.c); the checks (scenario.c) run
 * anywhere.
 */
#ifndef WSHUB_SCENARIO_H
#define WSHUB_SCENARIO_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "wshub/config.h"
#include "wshub/http.h"

/* 0, or -1 with the field at fault and why in err. */
int scenario_check(const json_t *doc, char *err, size_t errlen);
/* A checked document from a file; NULL with err set. */
json_t *scenario_load_file(const char *path, char *err, size_t errlen);

/* How the runner reaches this server. */
typedef struct scenario_env {
    char host[64];                   /* a loopback address of the listener */
    int port;
    const char *(*api_key)(void);    /* the current api.key (or the development key) */
    size_t max_running;              /* mock.max_scenarios */
} scenario_env_t;

/* On the main thread before any worker runs (they may ask for scenarios at once). */
void scenario_init(void);
/* On the main thread, once listening: the runner's handles on loop. 0 or a libuv error. */
int scenario_start(uv_loop_t *loop, const scenario_env_t *env);
/* On the main thread when the daemon stops: every scenario ends, the handles close. */
void scenario_shutdown(void);
/* Any thread: queues doc (checked; a reference is taken). Its id, or -1 with err set (the
 * runner is not started, or mock.max_scenarios run already). */
int scenario_submit(json_t *doc, char *err, size_t errlen);
/* Any thread: stops one (0, or -1 when unknown) or every scenario (POST /api/reset). */
int scenario_stop(int id);
void scenario_stop_all(void);
/* Any thread: [{id, name, state, passes, requests, error?}]. */
json_t *scenario_list(void);

/* The control endpoints (routes.c): POST and GET /api/scenarios, DELETE /api/scenarios/{id}. */
void mock_scenarios(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);
void mock_scenario_one(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);

#endif
