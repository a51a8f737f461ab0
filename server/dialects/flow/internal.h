/*
 * flow/internal — what the files of the Flow dialect (API D, server/dialects/flow/) share
 * with each other and with nobody else: socket.c (the WebSocket dialect and its lifetime),
 * thread.c (a thread's hub channel and history), bot.c (the bot), rest.c (the HTTP
 * endpoints), store.h (tickets and histories). The public part is include/wshub/flow.h.
 */
#ifndef WSHUB_FLOW_INTERNAL_H
#define WSHUB_FLOW_INTERNAL_H

#include <stddef.h>

#include <jansson.h>

#include "wshub/dialect.h"
#include "wshub/hub.h"

#include "store.h"

/* The longest id (client, session, thread) accepted, in bytes. */
#define FLOW_MAX_ID 256

/* ------------------------------------------------------------------ socket.c */

/* The process's store: valid from the first worker's start to the last one's stop, that
 * is, in every callback and route handler. */
flow_store_t *flow__store(void);

/* ------------------------------------------------------------------ thread.c */

/* The envelope of the hub channels thread:<id>: Flow's message.received, or the server
 * type a publish names. */
extern const hub_envelope_t flow__envelope;
/* The hub channel of thread into buf: its length, or -1 when it does not fit. */
int flow__channel(char *buf, size_t size, const char *thread);
/* Appends {type, payload, createdAt: now} to thread's history (payload: a reference is
 * taken for the call only); nothing when flow.history_limit is 0. FLOW_STORE_OK, or why
 * the entry is lost (store.h). */
int flow__history_add(dialect_ctx_t *x, const char *thread, const char *type, json_t *payload);
/* A bot reply: kept in the thread's history, then published to every socket of the
 * thread as message.received. The caller keeps payload. */
void flow__publish_reply(dialect_ctx_t *x, const char *thread, json_t *payload);
/* dialect_t.on_publish: publishes through the API to thread:<id> go in its history too. */
void flow__on_publish(dialect_ctx_t *x, const char *channel, size_t len, const char *event, const char *data,
                      size_t dlen);

/* ------------------------------------------------------------------ bot.c */

/* Loads the rules of flow.bot_file (NULL: the echo bot only); -1 with one line in err. */
int flow__bot_load(const char *path, char *err, size_t errlen);
void flow__bot_free(void);
/* The bot's message.received payload for a message.send payload; NULL when out of memory. */
json_t *flow__bot_reply(const char *thread, json_t *payload);
/* The message.received payload {threadId, messages:[{…, responses:[text]}], originator}:
 * text is len bytes (NULs included), reply_to (or NULL) and quick (an array of strings,
 * or NULL) are not taken. */
json_t *flow__reply_payload(const char *thread, const char *text, size_t len, json_t *reply_to, json_t *quick);
/* A new {userId, name, role, profile} of the bot. */
json_t *flow__bot_originator(void);

/* ------------------------------------------------------------------ rest.c */

/* {"status": status, "payload": payload} as compact text (malloc'd; payload is taken). */
char *flow__status_body(const char *status, json_t *payload);

#endif
