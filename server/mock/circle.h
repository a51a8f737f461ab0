/*
 * mock/circle.h — private to server/mock/circle_*.c: the model's actions (circle_model.c,
 * circle_json.c) as the HTTP layer (circle_api.c) calls them.
 *
 * Every action takes the model's one lock, changes the model, and fills a circle_result_t:
 * the answer's body and the events to publish, in order, each {channel, event, data} as
 * seeds/circle-websockets.txt lists them, which the HTTP layer's publish (r->publish) sends
 * before the lock is released: two actions' events never cross. Requests are checked by the HTTP layer; the model only refuses what depends on
 * its state (an unknown room, a sender who is not a participant, a bound reached).
 */
#ifndef WSHUB_MOCK_CIRCLE_PRIVATE_H
#define WSHUB_MOCK_CIRCLE_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

typedef struct circle_limits {
    size_t members, rooms, participants, messages, bytes;
} circle_limits_t;

typedef struct circle_result {
    int status;          /* 0, or the HTTP status of a refusal */
    const char *code;    /* the refusal's error code */
    const char *field;   /* the field it names (NULL: none) */
    char message[200];
    json_t *events;      /* [{channel, event, data}], published in order */
    json_t *body;        /* the answer's members besides ok and events */
    /* Publishes one of events (set by the caller): called under the model's lock once the
     * action succeeded, so that the model's order is the order of the events everywhere. */
    void (*publish)(void *arg, json_t *event);
    void *arg;
} circle_result_t;

/* A member as a request gives it: id, and what to set (NULL: keep, or a default when new). */
typedef struct circle_member_in {
    int64_t id;
    const char *name, *avatar_url, *headline;
} circle_member_in_t;

typedef struct circle_room_in {
    const char *kind;                   /* "direct" or "group" */
    const char *name, *description, *identifier; /* NULL: derived */
    bool show_history, embedded;
    circle_member_in_t *participants;
    size_t nparticipants;
} circle_room_in_t;

/* A room's attributes to change (chatRoomUpdated); has_* says which. */
typedef struct circle_room_update {
    const char *name, *description;
    bool has_name, has_description, has_show_history, has_pinned;
    bool show_history;
    int64_t pinned_message_id; /* 0: unpin */
} circle_room_update_t;

typedef struct circle_message_in {
    int64_t sender, parent_id;   /* parent_id 0: not a reply */
    const char *body;
    json_t *rich_text_body;      /* borrowed; NULL: made from body */
    const char *creation_uuid;   /* NULL: made up */
} circle_message_in_t;

void circle_result_init(circle_result_t *r);
void circle_result_clear(circle_result_t *r);
/* Sets r's refusal (returns false, for `return circle_refuse(...)`). */
bool circle_refuse(circle_result_t *r, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

void circle_member_upsert(const circle_limits_t *lim, const circle_member_in_t *in, circle_result_t *r);
void circle_members_list(circle_result_t *r);
void circle_room_create(const circle_limits_t *lim, const circle_room_in_t *in, circle_result_t *r);
void circle_rooms_list(circle_result_t *r);
void circle_room_get(const char *room, circle_result_t *r);
void circle_room_update(const char *room, const circle_room_update_t *in, circle_result_t *r);
void circle_room_delete(const char *room, circle_result_t *r);
/* thread_id 0: the room is read (chatRoomRead), else that thread (chatThreadRead). */
void circle_room_read(const char *room, int64_t member, int64_t thread_id, circle_result_t *r);
void circle_room_pin(const char *room, int64_t member, bool pinned, circle_result_t *r);
void circle_message_post(const circle_limits_t *lim, const char *room, const circle_message_in_t *in,
                         circle_result_t *r);
/* body NULL: keep; rich NULL: made from the new body (or kept when body is NULL too). */
void circle_message_edit(const circle_limits_t *lim, const char *room, int64_t id, const char *body, json_t *rich,
                         circle_result_t *r);
void circle_message_delete(const char *room, int64_t id, circle_result_t *r);
void circle_message_react(const circle_limits_t *lim, const char *room, int64_t id, int64_t member, const char *emoji,
                          bool remove, circle_result_t *r);
/* notification: borrowed object of extra fields (NULL: none). */
void circle_notify(const circle_limits_t *lim, int64_t member, json_t *notification, circle_result_t *r);
/* count < 0: reset (resetNewNotificationCount), else set (updateNewNotificationCount). */
void circle_notify_count(const circle_limits_t *lim, int64_t member, int64_t count, circle_result_t *r);

#endif
