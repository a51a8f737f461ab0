/*
 * mock_circle — the mock backend's Circle domain (server/mock/circle_*.c): an in-memory model
 * of members, chat rooms, messages and notifications driven by /api/circle/..., whose actions
 * publish the events of seeds/circle-websockets.txt on Circle's queues. What the rest of the
 * server sees of it: the room-membership check of Chats::RoomChannel (dialects/cable.c) and
 * the reset (POST /api/reset).
 */
#ifndef WSHUB_MOCK_CIRCLE_H
#define WSHUB_MOCK_CIRCLE_H

#include <stddef.h>

#include "wshub/dialect.h"
#include "wshub/http.h"

enum { MOCK_ROOM_DENY = -1, MOCK_ROOM_UNKNOWN = 0, MOCK_ROOM_ALLOW = 1 };

/* May member subscribe to room (its numeric id or its uuid, len bytes)? MOCK_ROOM_UNKNOWN when
 * the model has no such room (the caller keeps its own rule); else ALLOW (a participant) or
 * DENY, with *room_id the room's numeric id (its queue is chat-room-<id>-channel). Any thread. */
int mock_circle_room_allows(const char *room, size_t len, long long member, long long *room_id);

/* Forgets every member, room, message and count (ids start again at 1). Any thread. */
void mock_circle_reset(void);

/* The route handler of every /api/circle/... endpoint (server/routes.c). */
void mock_circle_http(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out);

#endif
