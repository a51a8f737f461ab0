/*
 * dialect — one module per documented API (echo, service, cable, moderation, flow), as a
 * table of callbacks the WebSocket session calls. A dialect parses its API's messages and
 * speaks its envelope; it never touches sockets (it sends through ws_session_*), and the
 * session never knows which API it carries. Each dialect file exports only its table.
 */
#ifndef WSHUB_DIALECT_H
#define WSHUB_DIALECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "wshub/config.h"

typedef struct ws_session ws_session_t;
typedef struct http_request http_request_t;
typedef struct worker worker_t;

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
    const char *path; /* request path: exact, or a prefix when path_prefix is set */
    int path_prefix;  /* path is a prefix (e.g. "/ws/" for /ws/<token>) */
    int endpoint;     /* endpoint_t, for metrics */
    /* Is the endpoint enabled in this configuration? NULL = always. */
    int (*enabled)(const config_t *cfg);
    /* Decides the upgrade: auth, Origin, subprotocol. NULL = accept with no subprotocol. */
    void (*accept)(const http_request_t *req, worker_t *w, dialect_accept_t *out);
    /* The session is open (the 101 is queued). */
    void (*on_open)(ws_session_t *s);
    /* A complete, validated text or binary message. */
    void (*on_message)(ws_session_t *s, int opcode, const uint8_t *msg, size_t len);
    /* The daemon is shutting down: send the API's goodbye (the session then closes 1001). */
    void (*on_shutdown)(ws_session_t *s);
    /* The connection is gone: release the dialect's state. No sends any more. */
    void (*on_close)(ws_session_t *s);
    /* Per-worker state (e.g. one timer per worker): set up before the worker's loop runs,
     * released after it ended (its handles are closed by then). Returns 0 or negative. */
    int (*worker_start)(worker_t *w);
    /* Every publish through the server API, before its fan-out (e.g. to keep a history). */
    void (*on_publish)(worker_t *w, const char *channel, size_t channel_len, const char *event,
                       const char *data, size_t data_len);
    void (*worker_stop)(worker_t *w);
    /* The client sends faster than limits.message_rate: send the API's error (the session
     * then closes 1008). NULL = close only. */
    void (*on_rate_limited)(ws_session_t *s);
    /* The API has a liveness rule of its own (Flow's idle timeout): no WebSocket pings. */
    int no_ws_ping;
} dialect_t;

extern const dialect_t dialect_echo;
extern const dialect_t dialect_service;
extern const dialect_t dialect_cable;
extern const dialect_t dialect_moderation;
extern const dialect_t dialect_flow;

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

#endif
