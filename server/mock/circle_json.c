/*
 * mock/circle_json.c — the JSON forms of the mock's Circle model: the payloads of
 * seeds/circle-websockets.txt, field for field and typed as the document types them.
 *
 * Where Circle would have no value (a message that is no reply has no parent_message_id, an
 * unedited one no edited_at, a room without messages no last_message), the document's type is
 * kept: 0 for a number, "" for a string, {} for an object, so every documented field is always
 * present with its documented type.
 */
#include "circle_model.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define THREAD_PREVIEW 5 /* thread participants in thread_participants_preview */

char *circle_iso(int64_t ms, char out[32])
{
    if (ms <= 0) {
        out[0] = 0;
        return out;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
    return out;
}

static json_t *str_or_empty(const char *s) { return json_string(s ? s : ""); }

/* sender: the community member who sent a message. */
json_t *circle_member_json(const cmember_t *m)
{
    return json_pack("{s:I, s:I, s:o, s:o, s:o}", "id", (json_int_t)m->id, "community_member_id", (json_int_t)m->id,
                     "name", str_or_empty(m->name), "avatar_url", str_or_empty(m->avatar_url), "headline",
                     str_or_empty(m->headline));
}

/* A participant as other_participants_preview and current_participant show it. */
static json_t *part_json(const cpart_t *p, bool current)
{
    json_t *j = json_pack("{s:I, s:I, s:o, s:o}", "id", (json_int_t)p->id, "community_member_id",
                          (json_int_t)p->m->id, "name", str_or_empty(p->m->name), "avatar_url",
                          str_or_empty(p->m->avatar_url));
    if (j && current) {
        char iso[32];
        json_object_set_new(j, "unread_messages_count", json_integer(p->unread));
        json_object_set_new(j, "last_read_message_id", json_integer(p->last_read_id));
        json_object_set_new(j, "pinned_at", json_string(circle_iso(p->pinned_ms, iso)));
    }
    return j;
}

/* thread_participants_preview: {"<member id>": {community_member_id, name, avatar_url}} of the
 * first THREAD_PREVIEW participants of the thread (the parent's sender first). */
static json_t *thread_preview(croom_t *room, const cmsg_t *parent)
{
    json_t *o = json_object();
    for (uint32_t i = 0; parent && i < parent->nthread && i < THREAD_PREVIEW; i++) {
        cpart_t *p = circle_find_part(room, parent->thread_members[i]);
        if (!p)
            continue;
        char key[24];
        snprintf(key, sizeof key, "%lld", (long long)p->m->id);
        json_object_set_new(o, key, json_pack("{s:I, s:o, s:o}", "community_member_id", (json_int_t)p->m->id, "name",
                                              str_or_empty(p->m->name), "avatar_url",
                                              str_or_empty(p->m->avatar_url)));
    }
    return o;
}

/* The ids and counts of msg's thread: its own when it is a parent, its parent's when a reply. */
static void add_thread_fields(json_t *j, croom_t *room, const cmsg_t *msg, int shape)
{
    const cmsg_t *parent = msg->parent_id ? circle_find_message(room, msg->parent_id) : msg;
    int64_t thread_replies = parent ? parent->replies : 0;
    json_object_set_new(j, "chat_thread_id", json_integer(msg->thread_id));
    json_object_set_new(j, "parent_message_id", json_integer(msg->parent_id));
    json_object_set_new(j, "lesson_id", json_integer(0));
    char iso[32];
    json_object_set_new(j, "edited_at", json_string(circle_iso(msg->edited_ms, iso)));
    json_object_set_new(j, "replies_count", json_integer(msg->parent_id ? 0 : msg->replies));
    json_object_set_new(j, "total_thread_participants_count", json_integer(parent ? parent->nthread : 0));
    json_object_set_new(j, "thread_participants_preview", thread_preview(room, parent));
    if (shape == MSG_NEW)
        json_object_set_new(j, "chat_thread_replies_count", json_integer(thread_replies));
}

json_t *circle_message_json(croom_t *room, const cmsg_t *msg, int shape)
{
    char iso[32];
    circle_iso(msg->created_ms, iso);
    json_t *j = json_pack("{s:I}", "id", (json_int_t)msg->id);
    if (!j)
        return NULL;
    if (shape != MSG_THREAD_PARENT)
        json_object_set_new(j, "chat_room_uuid", json_string(room->uuid));
    if (shape == MSG_NEW)
        json_object_set_new(j, "chat_room_kind", json_string(room->kind));
    if (shape == MSG_THREAD_PARENT) { /* the document types it as a string here */
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)msg->participant_id);
        json_object_set_new(j, "chat_room_participant_id", json_string(id));
    } else {
        json_object_set_new(j, "chat_room_participant_id", json_integer(msg->participant_id));
        json_object_set_new(j, "body", json_string(msg->body));
    }
    json_object_set(j, "rich_text_body", msg->rich);
    if (shape != MSG_THREAD_PARENT)
        json_object_set_new(j, "sent_at", json_string(iso));
    json_object_set_new(j, "created_at", json_string(iso));
    json_object_set_new(j, "sender", circle_member_json(msg->sender));
    json_object_set_new(j, "creation_uuid", json_string(msg->creation_uuid));
    add_thread_fields(j, room, msg, shape);
    json_object_set(j, "reactions", msg->reactions); /* beyond the document: the mock's reactions */
    return j;
}

static const cmsg_t *last_message(croom_t *room)
{
    for (list_node_t *n = room->msgs.prev; n != &room->msgs; n = n->prev) {
        cmsg_t *m = container_of(n, cmsg_t, in_room);
        if (!m->parent_id)
            return m;
    }
    return NULL;
}

/* chat_room_name: the room's name; without one, the other participants' names (a direct room
 * shows the other member's name). */
static json_t *room_name(croom_t *room, const cpart_t *me)
{
    if (room->name)
        return json_string(room->name);
    char buf[512] = "";
    size_t len = 0;
    for (uint32_t i = 0; i < room->nparts && len < sizeof buf - 1; i++) {
        if (&room->parts[i] == me || !room->parts[i].m->name)
            continue;
        int n = snprintf(buf + len, sizeof buf - len, "%s%s", len ? ", " : "", room->parts[i].m->name);
        len = n > 0 && (size_t)n < sizeof buf - len ? len + (size_t)n : sizeof buf - 1;
    }
    return json_string(buf);
}

json_t *circle_room_json(croom_t *room, const cpart_t *me)
{
    json_t *others = json_array();
    for (uint32_t i = 0; i < room->nparts; i++)
        if (&room->parts[i] != me)
            json_array_append_new(others, part_json(&room->parts[i], false));
    const cmsg_t *last = last_message(room);
    return json_pack("{s:I, s:s, s:s, s:I, s:s, s:o, s:s, s:b, s:o, s:o, s:o}", "id", (json_int_t)room->id, "uuid",
                     room->uuid, "identifier", room->identifier, "unread_messages_count", (json_int_t)me->unread,
                     "chat_room_kind", room->kind, "chat_room_name", room_name(room, me), "chat_room_description",
                     room->description ? room->description : "", "chat_room_show_history", room->show_history,
                     "other_participants_preview", others, "current_participant", part_json(me, true),
                     "last_message", last ? circle_message_json(room, last, MSG_NEW) : json_object());
}

json_t *circle_room_simple(croom_t *room)
{
    cmsg_t *pinned = room->pinned_message_id ? circle_find_message(room, room->pinned_message_id) : NULL;
    return json_pack("{s:s, s:o, s:s, s:b, s:o}", "uuid", room->uuid, "chat_room_name", room_name(room, NULL),
                     "chat_room_description", room->description ? room->description : "", "chat_room_show_history",
                     room->show_history, "pinned_message",
                     pinned ? circle_message_json(room, pinned, MSG_UPDATED) : json_object());
}

json_t *circle_room_state(croom_t *room, bool full)
{
    char iso[32];
    json_t *parts = json_array();
    for (uint32_t i = 0; i < room->nparts; i++)
        json_array_append_new(parts, part_json(&room->parts[i], true));
    json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:o, s:s, s:b, s:b, s:I, s:s, s:o, s:I, s:s}", "id",
                          (json_int_t)room->id, "uuid", room->uuid, "identifier", room->identifier, "chat_room_kind",
                          room->kind, "chat_room_name", room_name(room, NULL), "chat_room_description",
                          room->description ? room->description : "", "chat_room_show_history", room->show_history,
                          "embedded", room->embedded, "pinned_message_id", (json_int_t)room->pinned_message_id,
                          "created_at", circle_iso(room->created_ms, iso), "participants", parts, "messages_count",
                          (json_int_t)room->nmsgs, "queue", "");
    if (!j)
        return NULL;
    char queue[64];
    snprintf(queue, sizeof queue, "chat-room-%lld-channel", (long long)room->id);
    json_object_set_new(j, "queue", json_string(queue));
    if (full) {
        json_t *msgs = json_array();
        for (list_node_t *n = room->msgs.next; n != &room->msgs; n = n->next)
            json_array_append_new(msgs, circle_message_json(room, container_of(n, cmsg_t, in_room), MSG_NEW));
        json_object_set_new(j, "messages", msgs);
    }
    return j;
}

json_t *circle_rich_text(const char *body)
{
    return json_pack("{s:{s:s, s:[{s:s, s:[{s:s, s:s}]}]}, s:[]}", "body", "type", "doc", "content", "type",
                     "paragraph", "content", "type", "text", "text", body, "attachments");
}
