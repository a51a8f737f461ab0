/*
 * mock/circle_model.h — private to circle_model.c and circle_json.c: the model's objects and
 * their JSON forms (the payloads of seeds/circle-websockets.txt). Everything here is used
 * under the model's lock.
 */
#ifndef WSHUB_MOCK_CIRCLE_MODEL_H
#define WSHUB_MOCK_CIRCLE_MODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "wshub/list.h"
#include "wshub/strmap.h"

#include "circle.h"

typedef struct cmember {
    int64_t id;
    char *name, *avatar_url, *headline;
    int64_t notifications; /* new_notifications_count */
    list_node_t node;      /* model's members, oldest first */
} cmember_t;

typedef struct cpart {
    int64_t id;            /* chat_room_participant_id */
    cmember_t *m;
    int64_t unread;        /* unread_messages_count */
    int64_t pinned_ms;     /* 0: not pinned */
    int64_t last_read_id;  /* the last message read */
} cpart_t;

typedef struct croom croom_t;

typedef struct cmsg {
    list_node_t in_room, in_all; /* oldest first */
    croom_t *room;
    int64_t id, thread_id, parent_id, participant_id;
    cmember_t *sender;
    char *body;
    json_t *rich;           /* rich_text_body */
    json_t *reactions;      /* [{emoji, community_member_ids:[...], count}] */
    char creation_uuid[40];
    int64_t created_ms, edited_ms;
    int64_t replies;        /* a thread's parent: its replies */
    int64_t *thread_members; /* a thread's parent: its participants' member ids */
    uint32_t nthread;
    size_t bytes;           /* counted in the model's bytes */
} cmsg_t;

struct croom {
    list_node_t node;
    int64_t id;
    char uuid[40];
    char *identifier, *name, *description;
    char kind[8];
    bool embedded, show_history;
    int64_t pinned_message_id, created_ms;
    cpart_t *parts;
    uint32_t nparts;
    list_node_t msgs;
    size_t nmsgs;
    strmap_entry_t *by_uuid, *by_id;
};

/* The model: one per process, under its lock (circle_lock/circle_unlock). */
typedef struct circle_model {
    pthread_mutex_t lock;
    bool ready;                /* the lists are initialised */
    strmap_t member_map;       /* decimal id -> cmember_t */
    strmap_t room_map;         /* uuid and decimal id -> croom_t */
    list_node_t members, rooms, messages; /* oldest first (messages: cmsg_t.in_all) */
    size_t nmembers, nrooms, nmessages, bytes;
    int64_t room_seq, part_seq, message_seq, thread_seq, notification_seq;
} circle_model_t;
extern circle_model_t circle_model;

/* Takes the lock (the lists initialised); circle_unlock updates the gauges and releases it;
 * circle_done publishes r's events (when r holds no refusal) first. */
void circle_lock(void);
void circle_unlock(void);
void circle_done(circle_result_t *r);
int64_t circle_now_ms(void);
void circle_uuid(char out[40]);
char *circle_strdup(const char *s);
/* Appends {channel: channel_fmt with id, event, data} to r's events (data taken; NULL: {}). */
void circle_emit(circle_result_t *r, const char *channel_fmt, long long id, const char *event, json_t *data);
cmember_t *circle_member_find(int64_t id);
cmember_t *circle_member_get(const circle_limits_t *lim, const circle_member_in_t *in, const char *field,
                             circle_result_t *r);
/* Frees a room, its messages and its map entries (circle_room.c). */
void circle_room_free(croom_t *room);

/* Message shapes: newMessage (JSONMessage: every field), updatedMessage and the room's
 * deletedMessage parent (no chat_room_kind, no chat_thread_replies_count), and the thread
 * channel's deletedMessage parent (ParentMessage of the threads channel: chat_room_participant_id
 * a string, no chat_room_uuid, body or sent_at). */
enum { MSG_NEW, MSG_UPDATED, MSG_THREAD_PARENT };

/* Lookups (circle_model.c). */
cmsg_t *circle_find_message(croom_t *room, int64_t id);
cpart_t *circle_find_part(croom_t *room, int64_t member);

/* JSON (circle_json.c); each returns a new reference. */
char *circle_iso(int64_t ms, char out[32]);
json_t *circle_member_json(const cmember_t *m);
json_t *circle_message_json(croom_t *room, const cmsg_t *msg, int shape);
/* ChatRoom of chatRoomCreated as participant `me` sees it. */
json_t *circle_room_json(croom_t *room, const cpart_t *me);
/* SimplifiedChatRoom of chatRoomUpdated. */
json_t *circle_room_simple(croom_t *room);
/* Everything about the room (GET /api/circle/rooms/{room}); messages too when `full`. */
json_t *circle_room_state(croom_t *room, bool full);
/* The rich_text_body made of a plain body. */
json_t *circle_rich_text(const char *body);

#endif
