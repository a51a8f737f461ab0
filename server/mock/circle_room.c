/*
 * mock/circle_room.c — the chat rooms of the mock's Circle model and what happens in them,
 * each action with the events seeds/circle-websockets.txt lists for it (mock/circle.h):
 *
 *   create room      chatRoomCreated (ChatRoom as each participant sees it) on each
 *                    participant's chat-room-channel-<member>; none for an embedded room
 *   update room      chatRoomUpdated (SimplifiedChatRoom) on chat-room-<id>-channel, and on each
 *                    participant's chat-room-channel-<member> when a non-embedded room's name changed
 *   delete room      chatRoomDeleted {chat_room_uuid} on each participant's chat-room-channel
 *   read             chatRoomRead {chat_room_uuid} on the reader's chat-room-channel (unread 0);
 *                    a thread: chatThreadRead {chat_thread_id} on the reader's threads channel
 *   pin / unpin      chatRoomPinned {chat_room_id, pinned_at} and chatRoomUpdated / chatRoomUnPinned
 *                    {chat_room_id} on the member's chat-room-channel (non-embedded rooms only)
 *   message          newMessage (JSONMessage) on chat-room-<id>-channel; and on each participant's
 *                    chat-room-channel unless the room is embedded; the others' unread count + 1
 *   reply            newMessage on chat-room-<id>-channel and on each thread participant's
 *                    chat-community-member-<member>-threads-channel (not chat-room-channel)
 *   edit, reaction   updatedMessage on chat-room-<id>-channel, and on the thread participants'
 *                    threads channels when the message is in a thread
 *   delete message   deletedMessage {id, parent_message} the same way (the parent of a reply; a
 *                    message that is no reply is its own parent_message)
 */
#include "circle.h"
#include "circle_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wshub/metrics.h"

#define ROOM_CHANNEL "chat-room-%lld-channel"
#define MEMBER_CHANNEL "chat-room-channel-%lld"
#define THREADS_CHANNEL "chat-community-member-%lld-threads-channel"
#define MAX_REACTIONS 64 /* distinct emoji on one message */
#define REACTION_BYTES 32 /* what one member's reaction counts in the model's bytes */

static circle_model_t *const M = &circle_model;

/* ------------------------------------------------------------------ lookups */

static croom_t *find_room(const char *room, circle_result_t *r)
{
    strmap_entry_t *e = strmap_find(&M->room_map, room, strlen(room));
    if (!e)
        circle_refuse(r, 404, "not_found", "room", "no chat room %s (by uuid or id)", room);
    return e ? e->value : NULL;
}

cpart_t *circle_find_part(croom_t *room, int64_t member)
{
    for (uint32_t i = 0; i < room->nparts; i++)
        if (room->parts[i].m->id == member)
            return &room->parts[i];
    return NULL;
}

cmsg_t *circle_find_message(croom_t *room, int64_t id)
{
    for (list_node_t *n = room->msgs.prev; n != &room->msgs; n = n->prev) {
        cmsg_t *m = container_of(n, cmsg_t, in_room);
        if (m->id == id)
            return m;
    }
    return NULL;
}

static cpart_t *find_part(croom_t *room, int64_t member, const char *field, circle_result_t *r)
{
    cpart_t *p = circle_find_part(room, member);
    if (!p)
        circle_refuse(r, 400, "invalid_request", field, "member %lld is not a participant of room %s",
                      (long long)member, room->uuid);
    return p;
}

static cmsg_t *find_message(croom_t *room, int64_t id, const char *field, circle_result_t *r)
{
    cmsg_t *m = circle_find_message(room, id);
    if (!m)
        circle_refuse(r, 404, "not_found", field, "no message %lld in room %s", (long long)id, room->uuid);
    return m;
}

/* ------------------------------------------------------------------ messages held */

static size_t message_bytes(const cmsg_t *m)
{
    char *rich = json_dumps(m->rich, JSON_COMPACT);
    size_t n = sizeof *m + strlen(m->body) + (rich ? strlen(rich) : 0) + m->nthread * sizeof(int64_t);
    free(rich);
    size_t i;
    json_t *v;
    json_array_foreach(m->reactions, i, v) n += REACTION_BYTES * json_array_size(json_object_get(v, "community_member_ids"));
    return n;
}

/* Counts m again in the model's bytes (after a change). */
static void recount(cmsg_t *m)
{
    M->bytes -= m->bytes;
    m->bytes = message_bytes(m);
    M->bytes += m->bytes;
}

/* Frees m's memory alone: a message never linked into the model (message_new's) ends here. */
static void message_release(cmsg_t *m)
{
    free(m->body);
    json_decref(m->rich);
    json_decref(m->reactions);
    free(m->thread_members);
    free(m);
}

/* Unlinks a message of the model (post_emit's) from its room and the counts, and frees it. */
static void message_free(cmsg_t *m)
{
    list_remove(&m->in_room);
    list_remove(&m->in_all);
    m->room->nmsgs--;
    M->nmessages--;
    M->bytes -= m->bytes;
    message_release(m);
}

/* Drops the oldest messages past the room's count and the model's bytes, never keep. */
static size_t evict(const circle_limits_t *lim, croom_t *room, cmsg_t *keep)
{
    size_t n = 0;
    while (room->nmsgs > lim->messages && room->msgs.next != &keep->in_room) {
        message_free(container_of(room->msgs.next, cmsg_t, in_room));
        n++;
    }
    while (M->bytes > lim->bytes && M->messages.next != &keep->in_all) {
        message_free(container_of(M->messages.next, cmsg_t, in_all));
        n++;
    }
    metrics_add(&metrics_gauges.circle_dropped, n);
    return n;
}

void circle_room_free(croom_t *room)
{
    while (!list_empty(&room->msgs))
        message_free(container_of(room->msgs.next, cmsg_t, in_room));
    if (room->by_uuid)
        strmap_remove(&M->room_map, room->by_uuid);
    if (room->by_id)
        strmap_remove(&M->room_map, room->by_id);
    list_remove(&room->node);
    M->nrooms--;
    free(room->parts);
    free(room->identifier);
    free(room->name);
    free(room->description);
    free(room);
}

/* ------------------------------------------------------------------ rooms */

/* A new room with in's attributes, in the model (its participants added by the caller). */
static croom_t *room_new(const circle_room_in_t *in, circle_result_t *r)
{
    croom_t *room = calloc(1, sizeof *room);
    if (!room || !(room->parts = calloc(in->nparticipants, sizeof *room->parts))) {
        free(room);
        circle_refuse(r, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    list_init(&room->msgs);
    list_insert_tail(&M->rooms, &room->node);
    M->nrooms++;
    room->id = ++M->room_seq;
    circle_uuid(room->uuid);
    char id[24];
    int n = snprintf(id, sizeof id, "%lld", (long long)room->id);
    snprintf(room->kind, sizeof room->kind, "%s", in->kind);
    room->identifier = strdup(in->identifier ? in->identifier : room->uuid);
    room->name = circle_strdup(in->name);
    room->description = circle_strdup(in->description);
    room->show_history = in->show_history;
    room->embedded = in->embedded;
    room->created_ms = circle_now_ms();
    room->by_uuid = strmap_insert(&M->room_map, room->uuid, strlen(room->uuid), room);
    room->by_id = strmap_insert(&M->room_map, id, (size_t)n, room);
    if (!room->identifier || !room->by_uuid || !room->by_id || (in->name && !room->name) ||
        (in->description && !room->description)) {
        circle_room_free(room);
        circle_refuse(r, 500, "internal_error", NULL, "out of memory");
        return NULL;
    }
    return room;
}

void circle_room_create(const circle_limits_t *lim, const circle_room_in_t *in, circle_result_t *r)
{
    circle_lock();
    cmember_t **members = calloc(in->nparticipants + 1, sizeof *members);
    bool ok = members || circle_refuse(r, 500, "internal_error", NULL, "out of memory");
    if (ok && M->nrooms >= lim->rooms) {
        metrics_add(&metrics_gauges.circle_refused, 1);
        ok = circle_refuse(r, 409, "limit_reached", NULL,
                           "%zu rooms exist (mock.circle_max_rooms): delete one, or POST /api/reset", M->nrooms);
    }
    for (size_t i = 0; ok && i < in->nparticipants; i++)
        ok = (members[i] = circle_member_get(lim, &in->participants[i], "participants", r)) != NULL;
    croom_t *room = ok ? room_new(in, r) : NULL;
    if (room) {
        for (size_t i = 0; i < in->nparticipants; i++)
            room->parts[room->nparts++] = (cpart_t){.id = ++M->part_seq, .m = members[i]};
        for (uint32_t i = 0; !room->embedded && i < room->nparts; i++)
            circle_emit(r, MEMBER_CHANNEL, room->parts[i].m->id, "chatRoomCreated",
                        circle_room_json(room, &room->parts[i]));
        json_object_set_new(r->body, "room", circle_room_state(room, false));
    }
    free(members);
    circle_done(r);
}

void circle_rooms_list(circle_result_t *r)
{
    circle_lock();
    json_t *a = json_array();
    for (list_node_t *n = M->rooms.next; n != &M->rooms; n = n->next)
        json_array_append_new(a, circle_room_state(container_of(n, croom_t, node), false));
    json_object_set_new(r->body, "rooms", a);
    circle_done(r);
}

void circle_room_get(const char *room_key, circle_result_t *r)
{
    circle_lock();
    croom_t *room = find_room(room_key, r);
    if (room)
        json_object_set_new(r->body, "room", circle_room_state(room, true));
    circle_done(r);
}

/* Applies in to room; false with r's refusal when the pinned message is not the room's. */
static bool room_apply(croom_t *room, const circle_room_update_t *in, bool *renamed, circle_result_t *r)
{
    if (in->has_pinned && in->pinned_message_id && !find_message(room, in->pinned_message_id, "pinned_message_id", r))
        return false;
    if (in->has_name) {
        *renamed = !room->name || !in->name || strcmp(room->name, in->name) != 0;
        free(room->name);
        room->name = circle_strdup(in->name);
    }
    if (in->has_description) {
        free(room->description);
        room->description = circle_strdup(in->description);
    }
    if (in->has_show_history)
        room->show_history = in->show_history;
    if (in->has_pinned)
        room->pinned_message_id = in->pinned_message_id;
    return true;
}

void circle_room_update(const char *room_key, const circle_room_update_t *in, circle_result_t *r)
{
    circle_lock();
    croom_t *room = find_room(room_key, r);
    bool renamed = false;
    if (room && room_apply(room, in, &renamed, r)) {
        json_t *simple = circle_room_simple(room);
        circle_emit(r, ROOM_CHANNEL, room->id, "chatRoomUpdated", json_incref(simple));
        for (uint32_t i = 0; renamed && !room->embedded && i < room->nparts; i++)
            circle_emit(r, MEMBER_CHANNEL, room->parts[i].m->id, "chatRoomUpdated", json_incref(simple));
        json_decref(simple);
        json_object_set_new(r->body, "room", circle_room_state(room, false));
    }
    circle_done(r);
}

void circle_room_delete(const char *room_key, circle_result_t *r)
{
    circle_lock();
    croom_t *room = find_room(room_key, r);
    if (room) {
        for (uint32_t i = 0; i < room->nparts; i++)
            circle_emit(r, MEMBER_CHANNEL, room->parts[i].m->id, "chatRoomDeleted",
                        json_pack("{s:s}", "chat_room_uuid", room->uuid));
        json_object_set_new(r->body, "room", circle_room_state(room, false));
        circle_room_free(room);
    }
    circle_done(r);
}

static const cmsg_t *thread_parent(croom_t *room, int64_t thread_id)
{
    for (list_node_t *n = room->msgs.next; n != &room->msgs; n = n->next) {
        cmsg_t *m = container_of(n, cmsg_t, in_room);
        if (m->thread_id == thread_id && !m->parent_id)
            return m;
    }
    return NULL;
}

void circle_room_read(const char *room_key, int64_t member, int64_t thread_id, circle_result_t *r)
{
    circle_lock();
    croom_t *room = find_room(room_key, r);
    cpart_t *p = room ? find_part(room, member, "member", r) : NULL;
    if (p && thread_id) {
        if (thread_parent(room, thread_id))
            circle_emit(r, THREADS_CHANNEL, member, "chatThreadRead",
                        json_pack("{s:I}", "chat_thread_id", (json_int_t)thread_id));
        else
            circle_refuse(r, 404, "not_found", "chat_thread_id", "no thread %lld in room %s", (long long)thread_id,
                          room->uuid);
    } else if (p) {
        p->unread = 0;
        if (!list_empty(&room->msgs))
            p->last_read_id = container_of(room->msgs.prev, cmsg_t, in_room)->id;
        circle_emit(r, MEMBER_CHANNEL, member, "chatRoomRead", json_pack("{s:s}", "chat_room_uuid", room->uuid));
    }
    if (p && !r->status)
        json_object_set_new(r->body, "room", circle_room_state(room, false));
    circle_done(r);
}

void circle_room_pin(const char *room_key, int64_t member, bool pinned, circle_result_t *r)
{
    circle_lock();
    croom_t *room = find_room(room_key, r);
    if (room && room->embedded)
        circle_refuse(r, 400, "invalid_request", "room", "room %s is embedded: only a non-embedded room is pinned",
                      room->uuid);
    cpart_t *p = room && !r->status ? find_part(room, member, "member", r) : NULL;
    if (p && pinned) {
        char iso[32];
        p->pinned_ms = circle_now_ms();
        circle_emit(r, MEMBER_CHANNEL, member, "chatRoomPinned",
                    json_pack("{s:I, s:s}", "chat_room_id", (json_int_t)room->id, "pinned_at",
                              circle_iso(p->pinned_ms, iso)));
        circle_emit(r, MEMBER_CHANNEL, member, "chatRoomUpdated", circle_room_simple(room));
    } else if (p) {
        p->pinned_ms = 0;
        circle_emit(r, MEMBER_CHANNEL, member, "chatRoomUnPinned", json_pack("{s:I}", "chat_room_id", (json_int_t)room->id));
    }
    if (p)
        json_object_set_new(r->body, "room", circle_room_state(room, false));
    circle_done(r);
}

/* ------------------------------------------------------------------ messages */

/* Adds member to the thread of parent (once). */
static bool thread_join(cmsg_t *parent, int64_t member)
{
    for (uint32_t i = 0; i < parent->nthread; i++)
        if (parent->thread_members[i] == member)
            return true;
    int64_t *t = realloc(parent->thread_members, (parent->nthread + 1) * sizeof *t);
    if (!t)
        return false;
    t[parent->nthread++] = member;
    parent->thread_members = t;
    return true;
}

/* The events of a message change (updated or deleted): the room's channel, and the thread
 * participants' threads channels when msg is in a thread. */
static void emit_change(circle_result_t *r, croom_t *room, const cmsg_t *thread, const char *event, json_t *room_data,
                        json_t *thread_data)
{
    circle_emit(r, ROOM_CHANNEL, room->id, event, room_data);
    for (uint32_t i = 0; thread && i < thread->nthread; i++)
        circle_emit(r, THREADS_CHANNEL, thread->thread_members[i], event, json_incref(thread_data));
    json_decref(thread_data);
}

/* The parent of a thread msg is in (itself for a parent), or NULL. */
static cmsg_t *thread_of(croom_t *room, cmsg_t *msg)
{
    if (msg->parent_id)
        return circle_find_message(room, msg->parent_id);
    return msg->thread_id ? msg : NULL;
}

static cmsg_t *message_new(croom_t *room, cpart_t *sender, const circle_message_in_t *in)
{
    cmsg_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    list_init(&m->in_room);
    list_init(&m->in_all);
    m->room = room;
    m->participant_id = sender->id;
    m->sender = sender->m;
    m->body = strdup(in->body);
    m->rich = in->rich_text_body ? json_deep_copy(in->rich_text_body) : circle_rich_text(in->body);
    m->reactions = json_array();
    if (in->creation_uuid)
        snprintf(m->creation_uuid, sizeof m->creation_uuid, "%s", in->creation_uuid);
    else
        circle_uuid(m->creation_uuid);
    m->created_ms = circle_now_ms();
    if (!m->body || !m->rich || !m->reactions) {
        message_release(m);
        return NULL;
    }
    return m;
}

/* Checks a new message of in: its room, sender and parent. */
static bool post_check(croom_t *room, const circle_message_in_t *in, cpart_t **sender, cmsg_t **parent,
                       circle_result_t *r)
{
    if (!(*sender = find_part(room, in->sender, "sender", r)))
        return false;
    *parent = NULL;
    if (in->parent_id && !(*parent = find_message(room, in->parent_id, "parent_id", r)))
        return false;
    if (*parent && (*parent)->parent_id)
        return circle_refuse(r, 400, "invalid_request", "parent_id",
                             "message %lld is a reply: reply to its parent, message %lld", (long long)in->parent_id,
                             (long long)(*parent)->parent_id);
    return true;
}

/* Links m into the model (and its thread), with the events of a new message. */
static void post_emit(croom_t *room, cpart_t *sender, cmsg_t *parent, cmsg_t *m, circle_result_t *r)
{
    m->id = ++M->message_seq;
    if (parent) {
        if (!parent->thread_id)
            parent->thread_id = ++M->thread_seq;
        m->parent_id = parent->id;
        m->thread_id = parent->thread_id;
        parent->replies++;
        thread_join(parent, parent->sender->id);
        thread_join(parent, sender->m->id);
        recount(parent);
    }
    list_insert_tail(&room->msgs, &m->in_room);
    list_insert_tail(&M->messages, &m->in_all);
    room->nmsgs++;
    M->nmessages++;
    m->bytes = 0;
    recount(m);
    for (uint32_t i = 0; !parent && i < room->nparts; i++)
        if (&room->parts[i] != sender)
            room->parts[i].unread++;
    sender->last_read_id = parent ? sender->last_read_id : m->id;
    json_t *data = circle_message_json(room, m, MSG_NEW);
    circle_emit(r, ROOM_CHANNEL, room->id, "newMessage", json_incref(data));
    for (uint32_t i = 0; !parent && !room->embedded && i < room->nparts; i++)
        circle_emit(r, MEMBER_CHANNEL, room->parts[i].m->id, "newMessage", json_incref(data));
    for (uint32_t i = 0; parent && i < parent->nthread; i++)
        circle_emit(r, THREADS_CHANNEL, parent->thread_members[i], "newMessage", json_incref(data));
    json_object_set_new(r->body, "message", data);
}

void circle_message_post(const circle_limits_t *lim, const char *room_key, const circle_message_in_t *in,
                         circle_result_t *r)
{
    circle_lock();
    croom_t *room = find_room(room_key, r);
    cpart_t *sender;
    cmsg_t *parent, *m = NULL;
    if (room && post_check(room, in, &sender, &parent, r)) {
        if (!(m = message_new(room, sender, in)))
            circle_refuse(r, 500, "internal_error", NULL, "out of memory");
        else if (message_bytes(m) > lim->bytes) {
            circle_refuse(r, 409, "limit_reached", "body", "the message alone is over mock.circle_max_bytes (%zu)",
                          lim->bytes);
            message_release(m); /* never linked: the room's and the model's counts are not its */
            m = NULL;
        }
    }
    if (m) {
        post_emit(room, sender, parent, m, r);
        size_t dropped = evict(lim, room, m);
        if (dropped)
            json_object_set_new(r->body, "dropped", json_integer((json_int_t)dropped));
    }
    circle_done(r);
}

/* The updatedMessage of msg after a change. */
static void emit_updated(const circle_limits_t *lim, croom_t *room, cmsg_t *msg, circle_result_t *r)
{
    recount(msg);
    evict(lim, room, msg);
    json_t *data = circle_message_json(room, msg, MSG_UPDATED);
    emit_change(r, room, thread_of(room, msg), "updatedMessage", json_incref(data), json_incref(data));
    json_object_set_new(r->body, "message", data);
}

void circle_message_edit(const circle_limits_t *lim, const char *room_key, int64_t id, const char *body, json_t *rich,
                         circle_result_t *r)
{
    circle_lock();
    croom_t *room = find_room(room_key, r);
    cmsg_t *msg = room ? find_message(room, id, "message", r) : NULL;
    char *nb = msg && body ? strdup(body) : NULL;
    json_t *nr = msg && (rich || body) ? (rich ? json_deep_copy(rich) : circle_rich_text(body)) : NULL;
    if (msg && ((body && !nb) || !nr)) {
        circle_refuse(r, 500, "internal_error", NULL, "out of memory");
    } else if (msg) {
        if (nb) {
            free(msg->body);
            msg->body = nb;
            nb = NULL;
        }
        json_decref(msg->rich);
        msg->rich = nr;
        nr = NULL;
        msg->edited_ms = circle_now_ms();
        emit_updated(lim, room, msg, r);
    }
    free(nb);
    json_decref(nr);
    circle_done(r);
}

void circle_message_delete(const char *room_key, int64_t id, circle_result_t *r)
{
    circle_lock();
    croom_t *room = find_room(room_key, r);
    cmsg_t *msg = room ? find_message(room, id, "message", r) : NULL;
    if (msg) {
        cmsg_t *parent = msg->parent_id ? circle_find_message(room, msg->parent_id) : NULL;
        if (parent && parent->replies > 0)
            parent->replies--;
        cmsg_t *shown = parent ? parent : msg; /* parent_message */
        json_t *room_data = json_pack("{s:I, s:o}", "id", (json_int_t)id, "parent_message",
                                      circle_message_json(room, shown, MSG_UPDATED));
        json_t *thread_data = json_pack("{s:I, s:o}", "id", (json_int_t)id, "parent_message",
                                        circle_message_json(room, shown, MSG_THREAD_PARENT));
        json_object_set_new(r->body, "deleted", json_incref(room_data));
        emit_change(r, room, thread_of(room, msg), "deletedMessage", room_data, thread_data);
        if (room->pinned_message_id == id)
            room->pinned_message_id = 0;
        message_free(msg);
    }
    circle_done(r);
}

/* The index of member in ids, or ids' size. */
static size_t index_of(json_t *ids, int64_t member)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        if (json_integer_value(v) == member)
            return i;
    }
    return json_array_size(ids);
}

/* Adds or removes member's emoji on msg; false with r's refusal. */
static bool react(json_t *reactions, int64_t member, const char *emoji, bool remove, circle_result_t *r)
{
    size_t at = json_array_size(reactions), i;
    json_t *v;
    json_array_foreach(reactions, i, v) {
        if (strcmp(json_string_value(json_object_get(v, "emoji")), emoji) == 0) {
            at = i;
            break;
        }
    }
    if (at == json_array_size(reactions)) {
        if (remove)
            return true;
        if (at >= MAX_REACTIONS)
            return circle_refuse(r, 409, "limit_reached", "emoji", "%d distinct emoji on one message at most",
                                 MAX_REACTIONS);
        json_array_append_new(reactions, json_pack("{s:s, s:[], s:i}", "emoji", emoji, "community_member_ids",
                                                   "count", 0));
    }
    json_t *entry = json_array_get(reactions, at), *ids = json_object_get(entry, "community_member_ids");
    size_t k = index_of(ids, member);
    if (remove && k < json_array_size(ids))
        json_array_remove(ids, k);
    else if (!remove && k == json_array_size(ids))
        json_array_append_new(ids, json_integer(member));
    json_object_set_new(entry, "count", json_integer((json_int_t)json_array_size(ids)));
    if (!json_array_size(ids))
        json_array_remove(reactions, at);
    return true;
}

void circle_message_react(const circle_limits_t *lim, const char *room_key, int64_t id, int64_t member,
                          const char *emoji, bool remove, circle_result_t *r)
{
    circle_lock();
    croom_t *room = find_room(room_key, r);
    cmsg_t *msg = room ? find_message(room, id, "message", r) : NULL;
    if (msg && find_part(room, member, "member", r) && react(msg->reactions, member, emoji, remove, r))
        emit_updated(lim, room, msg, r);
    circle_done(r);
}
