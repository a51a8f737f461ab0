/*
 * mock/circle_api.c — /api/circle/...: the HTTP side of the mock's Circle domain. Reads and
 * checks a request (a malformed one is answered with the field it names), runs the model's
 * action (mock/circle.h), has the action's events published in order, under the model's lock,
 * through the server API's publish (dialect_publish_api: every API's subscribers on this node,
 * the other nodes through the broker), and answers {ok:true, <the action's objects>, events:[{channel, event,
 * delivered}]}.
 *
 *   POST   members                              {id, name?, avatar_url?, headline?}
 *   GET    members | rooms | rooms/{room}
 *   POST   rooms                                {participants:[id|{id,name,...}], kind?, name?,
 *                                                description?, identifier?, show_history?, embedded?}
 *   PATCH  rooms/{room}  (POST rooms/{room}/update)   {name?, description?, show_history?, pinned_message_id?}
 *   DELETE rooms/{room}  (POST rooms/{room}/delete)
 *   POST   rooms/{room}/read                     {member, chat_thread_id?}
 *   POST   rooms/{room}/pin | unpin              {member, pinned?}
 *   POST   rooms/{room}/messages                 {sender, body, parent_id?, rich_text_body?, creation_uuid?}
 *   PATCH  rooms/{room}/messages/{id}  (POST .../edit)   {body?, rich_text_body?}
 *   DELETE rooms/{room}/messages/{id}  (POST .../delete)
 *   POST   rooms/{room}/messages/{id}/reactions  {member, emoji, remove?}
 *   POST   notifications                         {member, notification? | any other fields}
 *   POST   notifications/count                   {member, count}
 *   POST   notifications/reset                   {member}
 * {room} is the room's uuid or its numeric id.
 */
#include "circle.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wshub/mock.h"
#include "wshub/mock_circle.h"

#define PREFIX "/api/circle/"
#define MAX_SEGMENTS 5
#define MAX_SEGMENT 64

typedef struct creq {
    const http_request_t *req;
    dialect_ctx_t *x;
    http_reply_t *out;
    const char *method;
    char seg[MAX_SEGMENTS][MAX_SEGMENT + 1];
    int nseg;
    circle_limits_t lim;
    json_t *body; /* the request's object (POST, PATCH) */
} creq_t;

/* ------------------------------------------------------------------ fields */

/* A member id: a positive integer, or a string of decimal digits. */
static bool member_value(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return *out > 0;
    }
    const char *s = dialect_cstr(v);
    if (!s || !*s || strlen(s) > 18)
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    *out = strtoll(s, NULL, 10);
    return *out > 0;
}

static bool need_member(creq_t *c, json_t *obj, const char *field, int64_t *out)
{
    if (member_value(json_object_get(obj, field), out))
        return true;
    mock_bad_field(c->out, field, "required: a community member id (a positive integer)");
    return false;
}

/* An optional positive integer id; *out 0 when absent. */
static bool opt_id(creq_t *c, const char *field, int64_t *out)
{
    json_t *v = json_object_get(c->body, field);
    *out = 0;
    if (!v || json_is_null(v))
        return true;
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        *out = json_integer_value(v);
        return true;
    }
    mock_bad_field(c->out, field, "expected a positive integer id");
    return false;
}

/* An optional string of at most max bytes without NULs; *out NULL when absent. */
static bool opt_str(creq_t *c, json_t *obj, const char *field, size_t max, const char **out)
{
    json_t *v = json_object_get(obj, field);
    *out = NULL;
    if (!v)
        return true;
    char msg[96];
    snprintf(msg, sizeof msg, "expected a string of at most %zu bytes, without NUL characters", max);
    if (!json_is_string(v) || json_string_length(v) > max || !dialect_cstr(v)) {
        mock_bad_field(c->out, field, msg);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool opt_bool(creq_t *c, const char *field, bool dflt, bool *out, bool *given)
{
    json_t *v = json_object_get(c->body, field);
    if (given)
        *given = v != NULL;
    *out = v ? json_is_true(v) : dflt;
    if (!v || json_is_boolean(v))
        return true;
    mock_bad_field(c->out, field, "expected true or false");
    return false;
}

static bool opt_object(creq_t *c, const char *field, json_t **out)
{
    json_t *v = json_object_get(c->body, field);
    *out = v;
    if (!v || json_is_object(v))
        return true;
    mock_bad_field(c->out, field, "expected a JSON object");
    return false;
}

/* A member object or id of POST members or of participants[i]. */
static bool member_in(creq_t *c, json_t *v, const char *field, circle_member_in_t *in)
{
    memset(in, 0, sizeof *in);
    if (!json_is_object(v)) {
        if (member_value(v, &in->id))
            return true;
        mock_bad_field(c->out, field, "expected a member id (a positive integer) or an object with an id");
        return false;
    }
    return need_member(c, v, "id", &in->id) && opt_str(c, v, "name", 256, &in->name) &&
           opt_str(c, v, "avatar_url", 2048, &in->avatar_url) && opt_str(c, v, "headline", 256, &in->headline);
}

/* ------------------------------------------------------------------ answers */

/* r->publish: one event through the server API's publish (under the model's lock: the
 * hub only queues it), its outcome noted in the event for the answer. */
static void publish_one(void *arg, json_t *ev)
{
    creq_t *c = arg;
    const char *channel = json_string_value(json_object_get(ev, "channel"));
    const char *event = json_string_value(json_object_get(ev, "event"));
    char *data = json_dumps(json_object_get(ev, "data"), JSON_COMPACT);
    size_t n = 0;
    int rc = data ? dialect_publish_api(c->x, channel, strlen(channel), event, data, strlen(data), &n) : -1;
    free(data);
    json_object_set_new(ev, "delivered", json_integer((json_int_t)n));
    json_object_set_new(ev, "published", json_boolean(rc == 0));
}

/* Answers the action: {ok:true, <its objects>, events:[{channel, event, delivered, published}]},
 * or its refusal. */
static void finish(creq_t *c, circle_result_t *r)
{
    if (r->status) {
        mock_error(c->out, r->status, r->code, r->field, r->message);
        return;
    }
    size_t i;
    json_t *ev;
    json_array_foreach(r->events, i, ev) json_object_del(ev, "data");
    json_t *answer = json_pack("{s:b}", "ok", 1);
    json_object_update(answer, r->body);
    json_object_set(answer, "events", r->events);
    mock_reply_json(c->out, 200, answer);
}

/* 405 with the Allow header of the path's methods. */
static void wrong_method(creq_t *c, const char *allow_header)
{
    char msg[96];
    snprintf(msg, sizeof msg, "%s is not allowed here: see the Allow header", c->method);
    mock_error(c->out, 405, "method_not_allowed", NULL, msg);
    c->out->extra = allow_header;
}

#define ALLOW_POST "Allow: POST\r\n"
#define ALLOW_GET_POST "Allow: GET, POST\r\n"
#define ALLOW_ROOM "Allow: GET, PATCH, DELETE\r\n"
#define ALLOW_MESSAGE "Allow: PATCH, DELETE\r\n"

static void not_found(creq_t *c)
{
    mock_error(c->out, 404, "not_found", "path", "no such /api/circle endpoint (README: Mock backend, Circle)");
}

/* ------------------------------------------------------------------ actions */

static void do_member(creq_t *c, circle_result_t *r)
{
    circle_member_in_t in;
    if (member_in(c, c->body, "id", &in)) {
        circle_member_upsert(&c->lim, &in, r);
        finish(c, r);
    }
}

/* participants: 1 to mock.circle_max_participants distinct members (2 for a direct room). */
static bool participants_in(creq_t *c, circle_room_in_t *in)
{
    json_t *a = json_object_get(c->body, "participants");
    size_t n = json_array_size(a);
    if (!json_is_array(a) || n == 0 || n > c->lim.participants) {
        char msg[128];
        snprintf(msg, sizeof msg, "required: an array of 1 to %zu member ids or member objects (mock.circle_max_participants)",
                 c->lim.participants);
        mock_bad_field(c->out, "participants", msg);
        return false;
    }
    if (!(in->participants = calloc(n, sizeof *in->participants))) {
        mock_error(c->out, 500, "internal_error", NULL, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++, in->nparticipants++) {
        if (!member_in(c, json_array_get(a, i), "participants", &in->participants[i]))
            return false;
        for (size_t j = 0; j < i; j++)
            if (in->participants[j].id == in->participants[i].id) {
                mock_bad_field(c->out, "participants", "a member is listed twice");
                return false;
            }
    }
    return true;
}

static bool room_in(creq_t *c, circle_room_in_t *in)
{
    if (!participants_in(c, in) || !opt_str(c, c->body, "kind", 16, &in->kind) ||
        !opt_str(c, c->body, "name", 256, &in->name) || !opt_str(c, c->body, "description", 4096, &in->description) ||
        !opt_str(c, c->body, "identifier", 256, &in->identifier) ||
        !opt_bool(c, "show_history", true, &in->show_history, NULL) || !opt_bool(c, "embedded", false, &in->embedded, NULL))
        return false;
    if (!in->kind)
        in->kind = in->nparticipants == 2 ? "direct" : "group";
    if (strcmp(in->kind, "direct") != 0 && strcmp(in->kind, "group") != 0) {
        mock_bad_field(c->out, "kind", "expected \"direct\" or \"group\"");
        return false;
    }
    if (strcmp(in->kind, "direct") == 0 && in->nparticipants != 2) {
        mock_bad_field(c->out, "participants", "a direct room has exactly 2 participants");
        return false;
    }
    return true;
}

static void do_room_create(creq_t *c, circle_result_t *r)
{
    circle_room_in_t in = {0};
    if (room_in(c, &in)) {
        circle_room_create(&c->lim, &in, r);
        finish(c, r);
    }
    free(in.participants);
}

static void do_room_update(creq_t *c, circle_result_t *r, const char *room)
{
    circle_room_update_t in = {0};
    json_t *name = json_object_get(c->body, "name"), *desc = json_object_get(c->body, "description");
    in.has_name = name != NULL;
    in.has_description = desc != NULL;
    in.has_pinned = json_object_get(c->body, "pinned_message_id") != NULL;
    if ((!json_is_null(name) && !opt_str(c, c->body, "name", 256, &in.name)) ||
        (!json_is_null(desc) && !opt_str(c, c->body, "description", 4096, &in.description)) ||
        !opt_bool(c, "show_history", true, &in.show_history, &in.has_show_history) ||
        !opt_id(c, "pinned_message_id", &in.pinned_message_id))
        return;
    if (!in.has_name && !in.has_description && !in.has_show_history && !in.has_pinned) {
        mock_bad_field(c->out, "(body)", "give at least one of name, description, show_history, pinned_message_id");
        return;
    }
    circle_room_update(room, &in, r);
    finish(c, r);
}

static void do_read_pin(creq_t *c, circle_result_t *r, const char *room, const char *what)
{
    int64_t member, thread;
    bool pinned;
    if (!need_member(c, c->body, "member", &member))
        return;
    if (strcmp(what, "read") == 0) {
        if (opt_id(c, "chat_thread_id", &thread)) {
            circle_room_read(room, member, thread, r);
            finish(c, r);
        }
    } else if (opt_bool(c, "pinned", strcmp(what, "pin") == 0, &pinned, NULL)) {
        circle_room_pin(room, member, pinned, r);
        finish(c, r);
    }
}

static void do_post(creq_t *c, circle_result_t *r, const char *room)
{
    circle_message_in_t in = {0};
    if (!need_member(c, c->body, "sender", &in.sender) || !opt_str(c, c->body, "body", (size_t)-1 / 2, &in.body) ||
        !opt_id(c, "parent_id", &in.parent_id) || !opt_object(c, "rich_text_body", &in.rich_text_body) ||
        !opt_str(c, c->body, "creation_uuid", 39, &in.creation_uuid))
        return;
    if (!in.body) {
        mock_bad_field(c->out, "body", "required: the message's text (a string)");
        return;
    }
    circle_message_post(&c->lim, room, &in, r);
    finish(c, r);
}

static void do_edit(creq_t *c, circle_result_t *r, const char *room, int64_t id)
{
    const char *body;
    json_t *rich;
    if (!opt_str(c, c->body, "body", (size_t)-1 / 2, &body) || !opt_object(c, "rich_text_body", &rich))
        return;
    if (!body && !rich) {
        mock_bad_field(c->out, "body", "required: the new text (or rich_text_body)");
        return;
    }
    circle_message_edit(&c->lim, room, id, body, rich, r);
    finish(c, r);
}

static void do_react(creq_t *c, circle_result_t *r, const char *room, int64_t id)
{
    int64_t member;
    const char *emoji;
    bool remove;
    if (!need_member(c, c->body, "member", &member) || !opt_str(c, c->body, "emoji", 64, &emoji) ||
        !opt_bool(c, "remove", false, &remove, NULL))
        return;
    if (!emoji || !*emoji) {
        mock_bad_field(c->out, "emoji", "required: a non-empty string of at most 64 bytes");
        return;
    }
    circle_message_react(&c->lim, room, id, member, emoji, remove, r);
    finish(c, r);
}

static void do_notify(creq_t *c, circle_result_t *r, const char *what)
{
    int64_t member, count = -1;
    if (!need_member(c, c->body, "member", &member))
        return;
    if (!what) {
        json_t *n = json_object_get(c->body, "notification");
        if (n && !json_is_object(n)) {
            mock_bad_field(c->out, "notification", "expected a JSON object (the notification's fields)");
            return;
        }
        json_t *fields = n ? json_incref(n) : json_deep_copy(c->body);
        if (!n)
            json_object_del(fields, "member");
        circle_notify(&c->lim, member, fields, r);
        json_decref(fields);
        finish(c, r);
        return;
    }
    json_t *v = json_object_get(c->body, "count");
    if (strcmp(what, "count") == 0 && (!json_is_integer(v) || (count = json_integer_value(v)) < 0)) {
        mock_bad_field(c->out, "count", "required: the new notifications count (an integer >= 0)");
        return;
    }
    circle_notify_count(&c->lim, member, count, r);
    finish(c, r);
}

/* ------------------------------------------------------------------ routing */

static bool is(const creq_t *c, int i, const char *s) { return c->nseg > i && strcmp(c->seg[i], s) == 0; }
static bool method(const creq_t *c, const char *m) { return strcmp(c->method, m) == 0; }

/* The message id of segment 3. */
static bool message_id(creq_t *c, int64_t *id)
{
    char *end;
    long long v = strtoll(c->seg[3], &end, 10);
    if (*end || v <= 0 || !isdigit((unsigned char)c->seg[3][0])) {
        mock_bad_field(c->out, "message", "the path names a message by its numeric id");
        return false;
    }
    *id = v;
    return true;
}

static void route_message(creq_t *c, circle_result_t *r)
{
    int64_t id;
    const char *room = c->seg[1];
    const char *act = c->nseg == 5 ? c->seg[4] : method(c, "PATCH") ? "edit" : method(c, "DELETE") ? "delete" : NULL;
    if (!act || (c->nseg == 5 && !method(c, "POST"))) {
        wrong_method(c, c->nseg == 5 ? ALLOW_POST : ALLOW_MESSAGE);
    } else if (message_id(c, &id)) {
        if (strcmp(act, "edit") == 0) {
            do_edit(c, r, room, id);
        } else if (strcmp(act, "delete") == 0) {
            circle_message_delete(room, id, r);
            finish(c, r);
        } else if (strcmp(act, "reactions") == 0) {
            do_react(c, r, room, id);
        } else {
            not_found(c);
        }
    }
}

/* rooms/{room}: GET, PATCH, DELETE. */
static void route_room_itself(creq_t *c, circle_result_t *r, const char *room)
{
    if (method(c, "GET")) {
        circle_room_get(room, r);
        finish(c, r);
    } else if (method(c, "PATCH")) {
        do_room_update(c, r, room);
    } else if (method(c, "DELETE")) {
        circle_room_delete(room, r);
        finish(c, r);
    } else {
        wrong_method(c, ALLOW_ROOM);
    }
}

static void route_room(creq_t *c, circle_result_t *r)
{
    const char *room = c->seg[1], *act = c->seg[2];
    if (c->nseg == 2)
        route_room_itself(c, r, room);
    else if (strcmp(act, "messages") == 0 && c->nseg > 3)
        route_message(c, r);
    else if (c->nseg > 3)
        not_found(c);
    else if (!method(c, "POST"))
        wrong_method(c, ALLOW_POST);
    else if (strcmp(act, "messages") == 0)
        do_post(c, r, room);
    else if (strcmp(act, "update") == 0)
        do_room_update(c, r, room);
    else if (strcmp(act, "delete") == 0) {
        circle_room_delete(room, r);
        finish(c, r);
    } else if (strcmp(act, "read") == 0 || strcmp(act, "pin") == 0 || strcmp(act, "unpin") == 0)
        do_read_pin(c, r, room, act);
    else
        not_found(c);
}

/* members and rooms: GET lists them, POST makes one. */
static void route_collection(creq_t *c, circle_result_t *r)
{
    bool members = is(c, 0, "members");
    if (method(c, "GET")) {
        if (members)
            circle_members_list(r);
        else
            circle_rooms_list(r);
        finish(c, r);
    } else if (method(c, "POST")) {
        if (members)
            do_member(c, r);
        else
            do_room_create(c, r);
    } else {
        wrong_method(c, ALLOW_GET_POST);
    }
}

static void route(creq_t *c, circle_result_t *r)
{
    if (c->nseg == 1 && (is(c, 0, "members") || is(c, 0, "rooms")))
        route_collection(c, r);
    else if (is(c, 0, "rooms"))
        route_room(c, r);
    else if (is(c, 0, "notifications") && (c->nseg == 1 || (c->nseg == 2 && (is(c, 1, "count") || is(c, 1, "reset")))))
        method(c, "POST") ? do_notify(c, r, c->nseg == 2 ? c->seg[1] : NULL) : wrong_method(c, ALLOW_POST);
    else
        not_found(c);
}

/* Splits the path after /api/circle/ into segments of [A-Za-z0-9_-]; false when it cannot be one of ours. */
static bool split(creq_t *c)
{
    size_t len;
    const char *p = http_request_path(c->req, &len), *end = p + len;
    p += strlen(PREFIX);
    while (p < end) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        size_t n = (size_t)((q ? q : end) - p);
        if (n == 0 && !q)
            break; /* a trailing slash */
        if (n == 0 || n > MAX_SEGMENT || c->nseg == MAX_SEGMENTS)
            return false;
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '_')
                return false;
        memcpy(c->seg[c->nseg], p, n);
        c->seg[c->nseg++][n] = 0;
        p += n + (q ? 1 : 0);
    }
    return c->nseg > 0;
}

void mock_circle_http(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out))
        return;
    const config_t *cfg = &dialect_live(x)->cfg;
    creq_t c = {.req = req, .x = x, .out = out, .method = http_request_method(req),
                .lim = {(size_t)cfg->mock_circle_max_members, (size_t)cfg->mock_circle_max_rooms,
                        (size_t)cfg->mock_circle_max_participants, (size_t)cfg->mock_circle_max_messages,
                        cfg->mock_circle_max_bytes}};
    if (!split(&c)) {
        not_found(&c);
        return;
    }
    if (!method(&c, "GET") && !(c.body = mock_body_object(req, out, true)))
        return;
    circle_result_t r;
    circle_result_init(&r);
    r.publish = publish_one;
    r.arg = &c;
    route(&c, &r);
    circle_result_clear(&r);
    json_decref(c.body);
}
