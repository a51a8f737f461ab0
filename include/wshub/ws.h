/*
 * ws — a WebSocket session over a connection: wslay parses incoming frames and builds
 * the per-connection replies and control frames; this module validates UTF-8 (wslay
 * checks it too where its version does: ours is the contract, PROTOCOLS.md §0.4), enforces
 * the message size limit (1009), answers pings, runs the close handshake with a timeout,
 * and hands complete messages to the dialect.
 *
 * wslay's send callback accepts every byte into the connection's queue (never "would
 * block"), so its frames are always whole there and a shared prepared frame can be queued
 * between them (DESIGN.md decision 3). Frame references are never handed to wslay.
 */
#ifndef WSHUB_WS_H
#define WSHUB_WS_H

#include <stddef.h>
#include <stdint.h>

#include "wshub/deflate.h"
#include "wshub/dialect.h"
#include "wshub/frame.h"

typedef struct conn conn_t;
typedef struct ws_session ws_session_t;

/* RFC 6455 §7.4.1 status codes used here. */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_INVALID_PAYLOAD = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_TRY_AGAIN_LATER = 1013,
};

/* Creates the session and hands the connection to it (the 101 must already be queued):
 * from then on the session is the connection's protocol (conn_proto_t). */
/* pmd: the permessage-deflate parameters negotiated in the 101 (deflate.h), or NULL. */
ws_session_t *ws_session_start(conn_t *c, const dialect_t *d, dialect_ctx_t *x, void *dialect_data,
                               const pmd_params_t *pmd);

/* For dialects. Sends are no-ops once the session is closing. Return 0 or negative. */
int ws_session_send(ws_session_t *s, int opcode, const void *data, size_t len);
int ws_session_send_text(ws_session_t *s, const char *text, size_t len);
/* Queues a shared prepared frame (frame.h); takes its own reference. */
int ws_session_send_frame(ws_session_t *s, frame_t *f);
/* A dialect's per-session state that no session will own (the 101 could not be sent):
 * released through its on_close, as a session's would be. */
void ws_session_discard(conn_t *c, const dialect_t *d, dialect_ctx_t *x, void *dialect_data);
/* A pending subscription of s holds (status 0) or was refused: its dialect's on_subscribed
 * (the hub's subscribed callback, through the worker). */
void ws_session_subscribed(ws_session_t *s, hub_sub_t *sub, int status);
/* Ends the connection abortively once what is queued is written: no close frame, a TCP RST
 * (the peer sees 1006). For APIs whose documented failure is "terminated immediately". */
void ws_session_abort(ws_session_t *s, const char *reason);
/* Starts the close handshake with this code and reason (reason <= 123 bytes). */
void ws_session_close(ws_session_t *s, uint16_t code, const char *reason);
void *ws_session_data(ws_session_t *s);
void ws_session_set_data(ws_session_t *s, void *data);
uint64_t ws_session_id(ws_session_t *s);
const dialect_t *ws_session_dialect(ws_session_t *s);
/* Bytes queued for the peer and not written yet. */
size_t ws_session_queued(ws_session_t *s);
/* uv_now() ms of the last frame received (any frame, control frames too), or of the upgrade. */
uint64_t ws_session_last_rx(ws_session_t *s);

/* A session's traffic, for the mock backend's introspection (GET /api/connections): kept
 * only when mock.enabled (40 bytes from the worker's pool; otherwise no cost). Wire bytes
 * each way (every frame, control frames included), data messages each way (text and binary;
 * every shared frame counts as one), and the wall-clock time of the upgrade. */
typedef struct ws_stats {
    uint64_t bytes_in, bytes_out;
    uint32_t msgs_in, msgs_out;
    uint64_t since_ms; /* ms since the epoch */
    void *held;        /* ws_session.c: the messages a mock latency fault holds, or NULL */
} ws_stats_t;
/* NULL when the session keeps none (mock.enabled off, or out of memory at the upgrade). */
const ws_stats_t *ws_session_stats(ws_session_t *s);
/* The session's connection, and the session a connection carries (NULL: plain HTTP, or not
 * upgraded yet). On the connection's worker only. */
conn_t *ws_session_conn(ws_session_t *s);
ws_session_t *ws_session_of(conn_t *c);

#endif
