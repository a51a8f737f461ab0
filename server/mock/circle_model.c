/*
 * mock/circle_model.c — the mock's Circle domain (mock/circle.h): members, chat rooms (direct
 * and group, participants, pins, unread counts), messages (threads, replies, edits, deletes,
 * reactions) and notification counts, process-wide under one lock (workers are threads),
 * and the members' side of it; rooms and messages are in circle_room.c.
 *
 * Bounds (mock.circle_*): members and rooms are refused past theirs (409), participants per
 * room too; messages are dropped oldest first past a room's count or the model's bytes (no
 * event: Circle would still have them, the mock just forgets them), counted in /metrics.
 */
#include "circle.h"
#include "circle_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "wshub/metrics.h"
#include "wshub/mock_circle.h"

circle_model_t circle_model = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------------ results */

void circle_result_init(circle_result_t *r)
{
    memset(r, 0, sizeof *r);
    r->events = json_array();
    r->body = json_object();
}

void circle_result_clear(circle_result_t *r)
{
    json_decref(r->events);
    json_decref(r->body);
    r->events = r->body = NULL;
}

bool circle_refuse(circle_result_t *r, int status, const char *code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    r->status = status;
    r->code = code;
    r->field = field;
    return false;
}

void circle_emit(circle_result_t *r, const char *channel_fmt, long long id, const char *event, json_t *data)
{
    char channel[96];
    snprintf(channel, sizeof channel, channel_fmt, id);
    json_array_append_new(r->events, json_pack("{s:s, s:s, s:o}", "channel", channel, "event", event, "data",
                                               data ? data : json_object()));
}

/* ------------------------------------------------------------------ the model */

int64_t circle_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void circle_uuid(char out[40])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)rand();
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
             b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void circle_lock(void)
{
    pthread_mutex_lock(&circle_model.lock);
    if (!circle_model.ready) {
        list_init(&circle_model.members);
        list_init(&circle_model.rooms);
        list_init(&circle_model.messages);
        circle_model.ready = true;
    }
}

void circle_unlock(void)
{
    circle_model_t *M = &circle_model;
    atomic_store(&metrics_gauges.circle_members, M->nmembers);
    atomic_store(&metrics_gauges.circle_rooms, M->nrooms);
    atomic_store(&metrics_gauges.circle_messages, M->nmessages);
    atomic_store(&metrics_gauges.circle_bytes, M->bytes);
    pthread_mutex_unlock(&M->lock);
}

void circle_done(circle_result_t *r)
{
    size_t i;
    json_t *ev;
    if (!r->status && r->publish)
        json_array_foreach(r->events, i, ev) r->publish(r->arg, ev);
    circle_unlock();
}

char *circle_strdup(const char *s) { return s ? strdup(s) : NULL; }

/* Replaces *dst with a copy of s when s is given. */
static void set_str(char **dst, const char *s)
{
    if (!s)
        return;
    free(*dst);
    *dst = strdup(s);
}

cmember_t *circle_member_find(int64_t id)
{
    char key[24];
    int n = snprintf(key, sizeof key, "%lld", (long long)id);
    strmap_entry_t *e = strmap_find(&circle_model.member_map, key, (size_t)n);
    return e ? e->value : NULL;
}

/* The member in, made when new (named "Member <id>" without a name), its fields set when
 * given; NULL with r's refusal at mock.circle_max_members (or out of memory). */
cmember_t *circle_member_get(const circle_limits_t *lim, const circle_member_in_t *in, const char *field,
                             circle_result_t *r)
{
    circle_model_t *M = &circle_model;
    cmember_t *m = circle_member_find(in->id);
    if (!m) {
        if (M->nmembers >= lim->members) {
            metrics_add(&metrics_gauges.circle_refused, 1);
            circle_refuse(r, 409, "limit_reached", field,
                          "%zu members exist (mock.circle_max_members): member %lld cannot be added (POST /api/reset "
                          "forgets them)", M->nmembers, (long long)in->id);
            return NULL;
        }
        char key[24], name[40];
        int n = snprintf(key, sizeof key, "%lld", (long long)in->id);
        snprintf(name, sizeof name, "Member %lld", (long long)in->id);
        if (!(m = calloc(1, sizeof *m)) || !(m->name = strdup(name)) ||
            !strmap_insert(&M->member_map, key, (size_t)n, m)) {
            if (m)
                free(m->name);
            free(m);
            circle_refuse(r, 500, "internal_error", NULL, "out of memory");
            return NULL;
        }
        m->id = in->id;
        list_insert_tail(&M->members, &m->node);
        M->nmembers++;
    }
    set_str(&m->name, in->name);
    set_str(&m->avatar_url, in->avatar_url);
    set_str(&m->headline, in->headline);
    return m;
}

static json_t *member_state(const cmember_t *m)
{
    json_t *j = circle_member_json(m);
    json_object_set_new(j, "new_notifications_count", json_integer(m->notifications));
    return j;
}

void circle_member_upsert(const circle_limits_t *lim, const circle_member_in_t *in, circle_result_t *r)
{
    circle_lock();
    bool existed = circle_member_find(in->id) != NULL;
    cmember_t *m = circle_member_get(lim, in, "id", r);
    if (m) {
        json_object_set_new(r->body, "member", member_state(m));
        json_object_set_new(r->body, "created", json_boolean(!existed));
    }
    circle_done(r);
}

void circle_members_list(circle_result_t *r)
{
    circle_lock();
    json_t *a = json_array();
    for (list_node_t *n = circle_model.members.next; n != &circle_model.members; n = n->next)
        json_array_append_new(a, member_state(container_of(n, cmember_t, node)));
    json_object_set_new(r->body, "members", a);
    circle_done(r);
}

/* ------------------------------------------------------------------ notifications */

void circle_notify(const circle_limits_t *lim, int64_t member, json_t *notification, circle_result_t *r)
{
    circle_lock();
    cmember_t *m = circle_member_get(lim, &(circle_member_in_t){.id = member}, "member", r);
    if (m) {
        char iso[32];
        json_t *n = json_pack("{s:I, s:s}", "id", (json_int_t)++circle_model.notification_seq, "created_at",
                              circle_iso(circle_now_ms(), iso));
        json_object_update(n, notification); /* what the request gives wins */
        m->notifications++;
        circle_emit(r, "notification-channel-%lld", m->id, "newNotification", json_incref(n));
        circle_emit(r, "notification-channel-%lld", m->id, "updateNewNotificationCount",
                    json_pack("{s:I}", "new_notifications_count", (json_int_t)m->notifications));
        json_object_set_new(r->body, "notification", n);
        json_object_set_new(r->body, "member", member_state(m));
    }
    circle_done(r);
}

void circle_notify_count(const circle_limits_t *lim, int64_t member, int64_t count, circle_result_t *r)
{
    circle_lock();
    cmember_t *m = circle_member_get(lim, &(circle_member_in_t){.id = member}, "member", r);
    if (m) {
        m->notifications = count < 0 ? 0 : count;
        circle_emit(r, "notification-channel-%lld", m->id,
                    count < 0 ? "resetNewNotificationCount" : "updateNewNotificationCount",
                    json_pack("{s:I}", "new_notifications_count", (json_int_t)m->notifications));
        json_object_set_new(r->body, "member", member_state(m));
    }
    circle_done(r);
}

/* ------------------------------------------------------------------ reset and cable */

void mock_circle_reset(void)
{
    circle_lock();
    circle_model_t *M = &circle_model;
    while (!list_empty(&M->rooms))
        circle_room_free(container_of(M->rooms.next, croom_t, node));
    while (!list_empty(&M->members)) {
        cmember_t *m = container_of(M->members.next, cmember_t, node);
        list_remove(&m->node);
        free(m->name);
        free(m->avatar_url);
        free(m->headline);
        free(m);
    }
    strmap_clear(&M->member_map);
    strmap_clear(&M->room_map);
    M->nmembers = 0;
    M->room_seq = M->part_seq = M->message_seq = M->thread_seq = M->notification_seq = 0;
    circle_unlock();
}

int mock_circle_room_allows(const char *room, size_t len, long long member, long long *room_id)
{
    circle_lock();
    int verdict = MOCK_ROOM_UNKNOWN;
    strmap_entry_t *e = circle_model.nrooms ? strmap_find(&circle_model.room_map, room, len) : NULL;
    if (e) {
        croom_t *rm = e->value;
        *room_id = rm->id;
        verdict = circle_find_part(rm, member) ? MOCK_ROOM_ALLOW : MOCK_ROOM_DENY;
    }
    circle_unlock();
    return verdict;
}
