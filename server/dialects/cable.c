/*
 * cable — API C at /cable: the Rails Action Cable protocol with Circle's channels
 * (PROTOCOLS.md §C, seeds/circle-websockets.txt), for @rails/actioncable, @anycable/core
 * and plain `ws` clients.
 *
 * Owns: subprotocol selection (actioncable-v1-json, never actioncable-unsupported), the
 * Bearer/?token= JWT and Origin checks with the documented failure form (101, disconnect
 * unauthorized reconnect:false, close 1000), welcome with a 21-character sid, pings every
 * 3 s from one timer per worker (one shared frame per tick), subscribe/unsubscribe with the
 * identifier kept as an opaque string and echoed byte for byte, the mapping of Circle's
 * channels to their pub/sub queues, member checks, the {identifier, message:{event,data}}
 * frames (one prepared frame per distinct identifier string per worker and message, shared
 * by every subscriber using that string), and the shutdown goodbye.
 * Never: touches sockets or the hub's internals.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "wshub/api.h"
#include "wshub/auth.h"
#include "wshub/dialect.h"
#include "wshub/faults.h"
#include "wshub/hub.h"
#include "wshub/log.h"
#include "wshub/metrics.h"
#include "wshub/mock_circle.h"
#include "wshub/strmap.h"
#include "wshub/ws.h"

#define MAX_IDENTIFIER 1024
#define PROTOCOL "actioncable-v1-json"
/* AnyCable's extended protocol (issue 17): sid and session recovery, stream positions on
 * broadcasts, the history command. Chosen when the client offers it. */
#define PROTOCOL_EXT "actioncable-v1-ext-json"

/* One distinct identifier string on one worker: the variant of the hub envelope. */
typedef struct ident {
    strmap_entry_t *e; /* in cable_worker_t.idents; the key is the raw identifier */
    uint32_t refs;     /* subscriptions using it */
    char *json;        /* the identifier as a JSON string literal (quotes included) */
    size_t json_len;
    uint64_t seq;      /* the message `frame` was built for */
    frame_t *frame;
    bool flat;         /* cable.event_envelope "flat" when the identifier was first used */
    bool ext;          /* for extended-protocol sessions: broadcasts carry their position (the
                        * key ends with one byte more, 'x' or 'p', so the two never share) */
} ident_t;

/* Pings go out in PING_SLICES slices per interval, one slice per tick of the worker's one
 * timer: every session still gets one ping per interval, but 10,000 sessions no longer
 * make one 10,000-write burst that stalls the loop (S2L on /cable, bench/). */
#define PING_SLICES 30

typedef struct cable_worker {
    uv_timer_t ping;
    list_node_t slices[PING_SLICES]; /* cable_t.node, sessions spread round-robin */
    unsigned next_slice;             /* the slice the next tick pings */
    unsigned next_join;              /* the slice the next session joins */
    strmap_t idents;
} cable_worker_t;

typedef struct cable {
    ws_session_t *s;
    dialect_ctx_t *x;
    int64_t member;      /* the token's community member */
    const char *failure; /* auth or Origin refused: disconnect unauthorized, close 1000 */
    list_node_t node;
    list_node_t subs;    /* hub_sub_t.owner_node */
    uint32_t nsubs;
    bool ext;            /* actioncable-v1-ext-json */
    bool restoring;      /* waiting for the stored session (no welcome yet) */
    uint32_t held_at;    /* ext: uv_now() s + 1 when restored subscriptions began waiting for
                          * the client's history command (0: none wait); see on_ping */
    char sid[22];        /* ext: this session's id, its state stored under it */
    char restore[22];    /* ext: the sid the client asked to restore ("" none) */
    struct restore_req *req; /* its read, while the store has not answered */
} cable_t;

static cable_worker_t *state(dialect_ctx_t *x) { return dialect_state(x); }

/* ------------------------------------------------------------------ frames */

/* flat: {"event":E, <the data's members but "event">}, so the published name always wins. */
static char *flat_message(const hub_msg_t *m)
{
    json_t *data = json_loadb(m->data, m->data_len, DIALECT_JSON_FLAGS, NULL);
    json_t *msg = json_pack("{s:s}", "event", m->event);
    const char *k;
    json_t *v;
    json_object_foreach(data, k, v) {
        if (strcmp(k, "event") != 0)
            json_object_set(msg, k, v);
    }
    char *text = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(msg);
    json_decref(data);
    return text;
}

/* The end of a broadcast: "}", or with a position (extended protocol) its stream_id, epoch and
 * offset first. Cable's queues are names of [A-Za-z0-9_-] (queue_for): no escaping needed. */
static size_t frame_tail(const hub_msg_t *m, const ident_t *id, char *out, size_t outlen)
{
    int n = id->ext && m->offset && m->channel_len < 200
                ? snprintf(out, outlen, ",\"stream_id\":\"%s\",\"epoch\":\"%s\",\"offset\":%llu}", m->channel, m->epoch,
                           (unsigned long long)m->offset)
                : snprintf(out, outlen, "}");
    return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
}

static frame_t *build_data(const hub_msg_t *m, const ident_t *id, bool flat)
{
    char z[300];
    size_t zl = frame_tail(m, id, z, sizeof z);
    if (flat) {
        static const char a[] = "{\"identifier\":", b[] = ",\"message\":";
        char *msg = flat_message(m);
        if (!msg)
            return NULL;
        size_t ml = strlen(msg), len = sizeof a - 1 + id->json_len + sizeof b - 1 + ml + zl;
        frame_t *f = frame_new(len + 10);
        if (f) {
            uint8_t *p = f->data + frame_header(f->data, WS_OP_TEXT, len);
            memcpy(p, a, sizeof a - 1), p += sizeof a - 1;
            memcpy(p, id->json, id->json_len), p += id->json_len;
            memcpy(p, b, sizeof b - 1), p += sizeof b - 1;
            memcpy(p, msg, ml), p += ml;
            memcpy(p, z, zl), p += zl;
            f->len = (uint32_t)(p - f->data);
        }
        free(msg);
        return f;
    }
    /* nested: {"identifier":I,"message":{"event":E,"data":D}}, by concatenation */
    static const char a[] = "{\"identifier\":", b[] = ",\"message\":{\"event\":", c[] = ",\"data\":", y[] = "}";
    size_t ej = strlen(m->event_json);
    const char *d = m->data;
    size_t dl = m->data_len;
    size_t len = sizeof a - 1 + id->json_len + sizeof b - 1 + ej + sizeof c - 1 + dl + sizeof y - 1 + zl;
    frame_t *f = frame_new(len + 10);
    if (!f)
        return NULL;
    uint8_t *p = f->data + frame_header(f->data, WS_OP_TEXT, len);
#define PUT(s, n) (memcpy(p, (s), (n)), p += (n))
    PUT(a, sizeof a - 1);
    PUT(id->json, id->json_len);
    PUT(b, sizeof b - 1);
    PUT(m->event_json, ej);
    PUT(c, sizeof c - 1);
    PUT(d, dl);
    PUT(y, sizeof y - 1);
    PUT(z, zl);
#undef PUT
    f->len = (uint32_t)(p - f->data);
    return f;
}

/* Every subscriber with this identifier string on this worker shares one frame per message. */
static frame_t *variant_frame(const hub_msg_t *m, void *variant)
{
    ident_t *id = variant;
    if (id->frame && id->seq == m->seq)
        return id->frame;
    frame_release(&id->frame);
    id->frame = build_data(m, id, id->flat);
    id->seq = m->seq;
    if (id->frame)
        id->frame->born_ns = m->created_ns;
    return id->frame;
}

static const hub_envelope_t envelope = {.variant_frame = variant_frame};

static void send_json(cable_t *v, json_t *msg) { dialect_send_json(v->s, msg); }

static void send_disconnect(cable_t *v, const char *reason, bool reconnect)
{
    send_json(v, json_pack("{s:s, s:s, s:b}", "type", "disconnect", "reason", reason, "reconnect", reconnect));
}

/* {"identifier":"<raw>","type":"confirm_subscription"|"reject_subscription"}: the identifier's
 * len bytes exactly as received, NULs included. */
static void send_subscription_reply(cable_t *v, const char *identifier, size_t len, const char *type)
{
    send_json(v, json_pack("{s:s%, s:s}", "identifier", identifier, len, "type", type));
}

/* ------------------------------------------------------------------ identifiers */

static ident_t *ident_get(cable_worker_t *cw, const char *raw, size_t len, bool flat, bool ext)
{
    char stack[MAX_IDENTIFIER + 1];
    if (len > MAX_IDENTIFIER)
        return NULL;
    memcpy(stack, raw, len);
    stack[len] = ext ? 'x' : 'p';
    raw = stack;
    len++;
    strmap_entry_t *e = strmap_find(&cw->idents, raw, len);
    if (e) {
        ident_t *id = e->value;
        id->refs++;
        return id;
    }
    ident_t *id = calloc(1, sizeof *id);
    json_t *js = json_stringn(raw, len - 1);
    if (!id || !js || !(id->json = json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT)) ||
        !(id->e = strmap_insert(&cw->idents, raw, len, id))) {
        json_decref(js);
        if (id)
            free(id->json);
        free(id);
        return NULL;
    }
    json_decref(js);
    id->json_len = strlen(id->json);
    id->refs = 1;
    id->flat = flat;
    id->ext = ext;
    return id;
}

static void ident_put(cable_worker_t *cw, ident_t *id)
{
    if (--id->refs)
        return;
    strmap_remove(&cw->idents, id->e);
    frame_release(&id->frame);
    free(id->json);
    free(id);
}

/* A member id: a JSON integer, or a string of decimal digits ("42" and 42 are one member). */
static bool member_id(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    const char *s = dialect_cstr(v); /* "42\u0000x" is not member 42 */
    if (!s || !*s || strlen(s) > 18)
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    *out = strtoll(s, NULL, 10);
    return true;
}

/* A room id: an integer, or a string of [A-Za-z0-9_-] (numeric ids or UUIDs). */
static bool room_id(json_t *v, char *out, size_t outlen)
{
    if (json_is_integer(v)) {
        snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
        return true;
    }
    const char *s = dialect_cstr(v);
    if (!s || !*s || strlen(s) >= outlen)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return false;
    snprintf(out, outlen, "%s", s);
    return true;
}

/*
 * Circle's channels and their queues (PROTOCOLS.md §C). Writes the queue into out and
 * returns true, or false for an unknown channel, missing parameters, or another member.
 */
static bool queue_for(cable_t *v, json_t *params, char *out, size_t outlen)
{
    const char *ch = dialect_cstr(json_object_get(params, "channel"));
    if (!ch)
        return false;
    if (strcmp(ch, "Chats::RoomChannel") == 0) {
        char room[80];
        if (!room_id(json_object_get(params, "chat_room_id"), room, sizeof room))
            return false;
        /* A room the mock's Circle model knows (by id or uuid): its participants only, on its id's queue. */
        long long known;
        int verdict = dialect_live(v->x)->cfg.mock_enabled
                          ? mock_circle_room_allows(room, strlen(room), (long long)v->member, &known)
                          : MOCK_ROOM_UNKNOWN;
        if (verdict == MOCK_ROOM_DENY)
            return false;
        if (verdict == MOCK_ROOM_ALLOW)
            snprintf(room, sizeof room, "%lld", known);
        snprintf(out, outlen, "chat-room-%s-channel", room);
        return true;
    }
    const char *fmt = strcmp(ch, "NotificationChannel") == 0                   ? "notification-channel-%lld"
                      : strcmp(ch, "ChatRoomChannel") == 0                     ? "chat-room-channel-%lld"
                      : strcmp(ch, "Chats::CommunityMemberThreadsChannel") == 0 ? "chat-community-member-%lld-threads-channel"
                                                                                : NULL;
    int64_t member;
    if (!fmt || !member_id(json_object_get(params, "community_member_id"), &member) || member != v->member)
        return false;
    snprintf(out, outlen, fmt, (long long)member);
    return true;
}

static hub_sub_t *find_sub(cable_t *v, const char *raw, size_t len)
{
    for (list_node_t *n = v->subs.next; n != &v->subs; n = n->next) {
        hub_sub_t *sub = container_of(n, hub_sub_t, owner_node);
        ident_t *id = sub->variant;
        if (id->e->klen == len + 1 && memcmp(id->e->key, raw, len) == 0)
            return sub;
    }
    return NULL;
}

static void drop_sub(cable_t *v, hub_sub_t *sub)
{
    ident_t *id = sub->variant;
    dialect_unsubscribe(v->s, sub);
    ident_put(state(v->x), id);
    v->nsubs--;
}

/* ------------------------------------------------------------------ commands */

/* Subscribes the session to identifier raw: the subscription, or NULL (not allowed, too many,
 * out of memory, the broker unreachable); no reply is sent here. */
static hub_sub_t *add_sub(cable_t *v, const char *raw, size_t len)
{
    json_t *params = len <= MAX_IDENTIFIER ? json_loadb(raw, len, DIALECT_JSON_FLAGS, NULL) : NULL;
    char queue[API_MAX_CHANNEL + 1];
    bool ok = json_is_object(params) && queue_for(v, params, queue, sizeof queue) && v->nsubs < (size_t)dialect_config(v->x)->cable_max_subscriptions;
    /* The mock backend's fault: the next N subscriptions to a channel are rejected. */
    if (ok && faults_active() && faults_cable_reject(dialect_cstr(json_object_get(params, "channel")), queue))
        ok = false;
    json_decref(params);
    if (!ok)
        return NULL;
    const live_t *live = dialect_live(v->x);
    ident_t *id = ident_get(state(v->x), raw, len, live->cfg.cable_event_envelope == CABLE_ENVELOPE_FLAT, v->ext);
    hub_sub_t *sub = id ? dialect_subscribe(v->s, queue, strlen(queue), &envelope, id, NULL) : NULL;
    if (!sub) {
        if (id)
            ident_put(state(v->x), id);
        return NULL;
    }
    list_insert_tail(&v->subs, &sub->owner_node);
    v->nsubs++;
    return sub;
}

/* ------------------------------------------------------------------ extended protocol */

/* Stores what a restore needs under the session's sid: {"m":member,"ids":[identifiers]}. */
static void session_save(cable_t *v)
{
    if (!v->ext || v->restoring)
        return;
    json_t *ids = json_array();
    for (list_node_t *n = v->subs.next; n != &v->subs; n = n->next) {
        ident_t *id = container_of(n, hub_sub_t, owner_node)->variant;
        json_array_append_new(ids, json_stringn(id->e->key, id->e->klen - 1));
    }
    json_t *st = json_pack("{s:I, s:o}", "m", (json_int_t)v->member, "ids", ids);
    char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;
    if (text && dialect_session_put(v->x, v->sid, text, strlen(text)) != 0)
        log_warn("cable", "a session could not be stored for its recovery (sid %s)", v->sid);
    free(text);
    json_decref(st);
}

static void send_history_reply(cable_t *v, hub_sub_t *sub, const char *type)
{
    ident_t *id = sub->variant;
    send_subscription_reply(v, id->e->key, id->e->klen - 1, type);
}

/* The outcome of a history command: reject_history before (nothing replayed), or confirm_history
 * after the replay. */
static void on_history(void *session, hub_sub_t *sub, int status, bool done)
{
    cable_t *v = ws_session_data(session);
    if (v && done == (status > 0))
        send_history_reply(v, sub, status > 0 ? "confirm_history" : "reject_history");
}

/* A subscribe that asked for history: confirm_subscription first, then as on_history. */
static void on_subscribe_history(void *session, hub_sub_t *sub, int status, bool done)
{
    cable_t *v = ws_session_data(session);
    if (v && !done) {
        ident_t *id = sub->variant;
        send_subscription_reply(v, id->e->key, id->e->klen - 1, "confirm_subscription");
    }
    on_history(session, sub, status, done);
}

/* history: {"since": <unix s>, "streams": {<stream>: {"epoch": E, "offset": N}}}: the position of
 * this subscription's stream when given, else since. Anything else: from now (nothing is
 * replayed, the held messages go out). */
static int start_history(cable_t *v, hub_sub_t *sub, json_t *history,
                         void (*cb)(void *, hub_sub_t *, int, bool))
{
    size_t qlen;
    const char *queue = hub_sub_channel(sub, &qlen);
    json_t *st = json_object_get(json_object_get(history, "streams"), queue);
    json_t *off = json_object_get(st, "offset");
    const char *epoch = dialect_cstr(json_object_get(st, "epoch"));
    json_t *since = json_object_get(history, "since");
    if (json_is_integer(off) && json_integer_value(off) >= 0 && epoch) {
        hub_pos_t pos = {.offset = (uint64_t)json_integer_value(off)};
        snprintf(pos.epoch, sizeof pos.epoch, "%s", strlen(epoch) == HUB_EPOCH_LEN ? epoch : "-");
        return dialect_recover(v->s, sub, &pos, 0, cb);
    }
    uint64_t ms = json_is_integer(since) && json_integer_value(since) > 0 ? (uint64_t)json_integer_value(since) * 1000
                                                                           : (uint64_t)time(NULL) * 1000 + 1000;
    return dialect_recover(v->s, sub, NULL, ms, cb);
}

static void cmd_history(cable_t *v, const char *raw, size_t len, json_t *history)
{
    hub_sub_t *sub = find_sub(v, raw, len);
    if (!sub || start_history(v, sub, history, on_history) != 0) /* none, or one under way */
        send_subscription_reply(v, raw, len, "reject_history");
}

static void cmd_subscribe(cable_t *v, const char *raw, size_t len, json_t *history)
{
    if (find_sub(v, raw, len))
        return; /* a duplicate is not confirmed twice (the official client retries until confirmed) */
    hub_sub_t *sub = add_sub(v, raw, len);
    if (!sub) {
        send_subscription_reply(v, raw, len, "reject_subscription");
        return;
    }
    session_save(v);
    /* With history (extended protocol): its recovery confirms, once the subscription holds. */
    if (v->ext && history && start_history(v, sub, history, on_subscribe_history) == 0)
        return;
    /* Pending (a broker has not confirmed the stream yet): on_subscribed confirms it. */
    if (!hub_sub_pending(sub))
        send_subscription_reply(v, raw, len, "confirm_subscription");
}

/* A pending subscription holds (confirmed now) or was refused (the broker's link went down:
 * rejected and dropped; the client may subscribe again). */
static void on_subscribed(ws_session_t *s, hub_sub_t *sub, int status)
{
    cable_t *v = ws_session_data(s);
    if (!v)
        return;
    ident_t *id = sub->variant;
    if (status == 0 && hub_sub_recovering(sub))
        return; /* its recovery confirms it (or it was restored: nothing to confirm) */
    send_subscription_reply(v, id->e->key, id->e->klen - 1, status == 0 ? "confirm_subscription" : "reject_subscription");
    if (status != 0)
        drop_sub(v, sub);
}

static void on_message(ws_session_t *s, int opcode, const uint8_t *msg, size_t len)
{
    cable_t *v = ws_session_data(s);
    if (v->failure || v->restoring || opcode != WS_OP_TEXT)
        return;
    json_t *root = json_loadb((const char *)msg, len, DIALECT_JSON_FLAGS, NULL);
    /* Non-JSON, unknown commands and `message` (Circle's channels have no actions) are ignored. */
    json_t *cmd = json_object_get(root, "command");
    json_t *ident = json_object_get(root, "identifier");
    if (json_is_string(ident)) {
        const char *raw = json_string_value(ident);
        size_t rlen = json_string_length(ident);
        if (dialect_str_is(cmd, "subscribe")) {
            cmd_subscribe(v, raw, rlen, json_object_get(root, "history"));
        } else if (dialect_str_is(cmd, "unsubscribe")) {
            hub_sub_t *sub = find_sub(v, raw, rlen);
            if (sub) {
                drop_sub(v, sub); /* no reply (Action Cable sends none) */
                session_save(v);
            }
        } else if (v->ext && dialect_str_is(cmd, "history")) {
            cmd_history(v, raw, rlen, json_object_get(root, "history"));
        }
    }
    json_decref(root);
}

/* ------------------------------------------------------------------ session */

static void accept_upgrade(const http_request_t *req, dialect_ctx_t *x, dialect_accept_t *out)
{
    const live_t *live = dialect_live(x);
    cable_t *v = dialect_alloc(x, sizeof *v);
    if (!v) {
        out->status = 503;
        out->hs_reason = HS_OVER_CAPACITY;
        out->why = "out of memory";
        return;
    }
    v->x = x;
    list_init(&v->node);
    list_init(&v->subs);
    if (http_request_header_has_token(req, "Sec-WebSocket-Protocol", PROTOCOL_EXT)) {
        out->subprotocol = PROTOCOL_EXT;
        v->ext = true;
        /* @anycable/core asks for its session back with ?sid= (the last welcome's). */
        if (!http_request_query_param(req, "sid", v->restore, sizeof v->restore))
            v->restore[0] = 0;
    } else if (http_request_header_has_token(req, "Sec-WebSocket-Protocol", PROTOCOL)) {
        out->subprotocol = PROTOCOL;
    }
    out->data = v;

    size_t olen = 0;
    const char *origin = http_request_header(req, "Origin", &olen);
    if (!auth_origin_allowed(&live->cfg.cable_allowed_origins, origin, olen)) {
        if (live->cfg.cable_origin_failure == CABLE_ORIGIN_HTTP403) { /* http/upgrade.c counts the refusal */
            dialect_free(x, v, sizeof *v);
            out->data = NULL;
            out->subprotocol = NULL;
            out->status = 403;
            out->hs_reason = HS_FORBIDDEN_ORIGIN;
            out->why = "origin not allowed";
            out->body = strdup("{\"type\":\"disconnect\",\"reason\":\"unauthorized\",\"reconnect\":false}");
            return;
        }
        metrics_add(&dialect_metrics(x)->handshake_failures[HS_FORBIDDEN_ORIGIN], 1);
        v->failure = "origin not allowed";
        return;
    }
    auth_claims_t claims = {0};
    auth_reason_t r = auth_verify_request(live->auth, req, time(NULL), &claims);
    json_t *cmid = r == AUTH_OK ? json_object_get(claims.payload, "community_member_id") : NULL;
    if (r == AUTH_OK && (cmid ? !member_id(cmid, &v->member)
                              : !member_id(json_object_get(claims.payload, "sub"), &v->member)))
        r = AUTH_MALFORMED; /* no member (or an unreadable one): the token names nobody Circle knows */
    auth_claims_clear(&claims);
    if (r != AUTH_OK) {
        metrics_add(&dialect_metrics(x)->auth_failures[r], 1);
        metrics_add(&dialect_metrics(x)->handshake_failures[HS_UNAUTHORIZED], 1);
        v->failure = auth_reason_names[r];
    }
}

/* sid: 21 characters of [A-Za-z0-9_-], as Action Cable servers (AnyCable) send. */
static void make_sid(char out[22])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    unsigned char rnd[21];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (unsigned char)rand();
    for (size_t i = 0; i < sizeof rnd; i++)
        out[i] = alphabet[rnd[i] & 63];
    out[21] = 0;
}

/* A restore in flight: the session may close before the store answers. */
typedef struct restore_req {
    cable_t *v; /* NULL once the session closed */
} restore_req_t;

/* Subscribes again to what the stored session had (each held until the client's history
 * command), then welcome with restored and restored_ids. Nothing stored, or another member's:
 * a plain welcome (the client subscribes again). */
static void restore_subs(cable_t *v, const char *val, size_t len)
{
    json_t *st = val ? json_loadb(val, len, DIALECT_JSON_FLAGS, NULL) : NULL;
    json_t *ids = json_object_get(st, "ids");
    json_t *m = json_object_get(st, "m");
    json_t *welcome = json_pack("{s:s, s:s}", "type", "welcome", "sid", v->sid);
    if (json_is_array(ids) && json_is_integer(m) && json_integer_value(m) == v->member) {
        json_t *restored = json_array();
        size_t i;
        json_t *id;
        json_array_foreach(ids, i, id) {
            hub_sub_t *sub = json_is_string(id) && !find_sub(v, json_string_value(id), json_string_length(id))
                                 ? add_sub(v, json_string_value(id), json_string_length(id))
                                 : NULL;
            if (sub) {
                dialect_hold(v->s, sub);
                json_array_append(restored, id);
                v->held_at = (uint32_t)(dialect_now(v->x) / 1000) + 1; /* never 0 */
            }
        }
        json_object_set_new(welcome, "restored", json_true());
        json_object_set_new(welcome, "restored_ids", restored);
    }
    json_decref(st);
    v->restoring = false;
    send_json(v, welcome);
    session_save(v);
    cable_worker_t *cw = state(v->x);
    list_insert_tail(&cw->slices[cw->next_join++ % PING_SLICES], &v->node);
}

static void on_restore(void *arg, const char *val, size_t len)
{
    restore_req_t *q = arg;
    cable_t *v = q->v;
    free(q);
    if (v) {
        v->req = NULL;
        restore_subs(v, val, len);
    }
}

static int start_restore(cable_t *v)
{
    restore_req_t *q = malloc(sizeof *q);
    if (!q)
        return UV_ENOMEM;
    q->v = v;
    v->req = q;
    v->restoring = true;
    int rc = dialect_session_get(v->x, v->restore, on_restore, q); /* may answer at once */
    if (rc != 0) {
        v->req = NULL;
        v->restoring = false;
        free(q);
    }
    return rc;
}

static void on_open(ws_session_t *s)
{
    cable_t *v = ws_session_data(s);
    v->s = s;
    if (v->failure) {
        log_event(LOG_INFO, "cable_refused", ws_session_id(s), NULL, "cable", "%s", v->failure);
        send_disconnect(v, "unauthorized", false);
        ws_session_close(s, WS_CLOSE_NORMAL, "");
        return;
    }
    make_sid(v->sid);
    if (v->ext && v->restore[0] && start_restore(v) == 0)
        return; /* welcome once the stored session is read */
    send_json(v, json_pack("{s:s, s:s}", "type", "welcome", "sid", v->sid));
    cable_worker_t *cw = state(v->x);
    list_insert_tail(&cw->slices[cw->next_join++ % PING_SLICES], &v->node);
}

static void on_shutdown(ws_session_t *s)
{
    cable_t *v = ws_session_data(s);
    if (!v->failure)
        send_disconnect(v, "server_restart", true);
}

static void on_close(ws_session_t *s)
{
    cable_t *v = ws_session_data(s);
    if (!v)
        return;
    list_remove(&v->node);
    if (v->req)
        v->req->v = NULL; /* the store's answer finds nobody */
    while (!list_empty(&v->subs))
        drop_sub(v, container_of(v->subs.next, hub_sub_t, owner_node));
    dialect_free(v->x, v, sizeof *v);
    ws_session_set_data(s, NULL);
}

/* ------------------------------------------------------------------ pings */

/* A restored session's subscriptions hold their live messages until the client asks for its
 * history (@anycable/core does so at once); a client that never asks gets them live after
 * RESTORE_WAIT_S (checked with the pings), never a subscription that stays silent. */
#define RESTORE_WAIT_S 5

static void end_restore_wait(cable_t *v)
{
    v->held_at = 0;
    for (list_node_t *n = v->subs.next; n != &v->subs; n = n->next)
        dialect_unhold(v->s, container_of(n, hub_sub_t, owner_node));
}

/* One frame per tick for one slice of the worker's sessions: {"type":"ping","message":<unix s>}.
 * Sessions whose restored subscriptions waited RESTORE_WAIT_S for a history command get them
 * live. */
static void on_ping(uv_timer_t *t)
{
    dialect_ctx_t *x = t->data;
    cable_worker_t *cw = state(x);
    list_node_t *slice = &cw->slices[cw->next_slice++ % PING_SLICES];
    if (list_empty(slice))
        return;
    char text[64];
    int n = snprintf(text, sizeof text, "{\"type\":\"ping\",\"message\":%lld}", (long long)time(NULL));
    frame_t *f = frame_build(WS_OP_TEXT, text, (size_t)n);
    if (!f)
        return;
    uint32_t now_s = (uint32_t)(dialect_now(x) / 1000) + 1; /* as held_at counts */
    for (list_node_t *p = slice->next; p != slice; p = p->next) {
        cable_t *v = container_of(p, cable_t, node);
        ws_session_send_frame(v->s, f);
        if (v->held_at && now_s - v->held_at >= RESTORE_WAIT_S)
            end_restore_wait(v);
    }
    frame_release(&f);
}

static int cable_worker_start(dialect_ctx_t *x)
{
    cable_worker_t *cw = calloc(1, sizeof *cw);
    if (!cw)
        return UV_ENOMEM;
    for (int i = 0; i < PING_SLICES; i++)
        list_init(&cw->slices[i]);
    dialect_set_state(x, cw);
    uint64_t tick = dialect_config(x)->cable_ping_interval_ms / PING_SLICES;
    if (tick == 0)
        tick = 1;
    return dialect_repeat_start(x, &cw->ping, tick, on_ping);
}

static void cable_worker_stop(dialect_ctx_t *x)
{
    cable_worker_t *cw = state(x);
    if (!cw)
        return;
    strmap_clear(&cw->idents); /* empty: every session dropped its identifiers on close */
    free(cw);
    dialect_set_state(x, NULL);
}

/* Faster than limits.message_rate: Action Cable's goodbye, then ws_session closes 1008. A
 * client that floods would flood again: no reconnect. */
static void on_rate_limited(ws_session_t *s)
{
    cable_t *v = ws_session_data(s);
    if (v)
        send_disconnect(v, "rate_limited", false);
}

/* ------------------------------------------------------------------ the mock backend */

/* {"member", "subscriptions": [{"channel": the stream, "identifier": as the client sent it}]},
 * or {"refused": why} for a connection told unauthorized. */
static json_t *describe(ws_session_t *s)
{
    cable_t *v = ws_session_data(s);
    if (!v)
        return NULL;
    if (v->failure)
        return json_pack("{s:s, s:[]}", "refused", v->failure, "subscriptions");
    json_t *subs = json_array();
    for (list_node_t *n = v->subs.next; subs && n != &v->subs; n = n->next) {
        hub_sub_t *sub = container_of(n, hub_sub_t, owner_node);
        ident_t *id = sub->variant;
        json_t *o = dialect_sub_json(sub);
        if (o)
            json_object_set_new(o, "identifier", json_stringn(id->e->key, id->e->klen - 1));
        json_array_append_new(subs, o);
    }
    return subs ? json_pack("{s:I, s:o}", "member", (json_int_t)v->member, "subscriptions", subs) : NULL;
}

/* The event to each of the connection's subscriptions (those of channel, the stream, when
 * given), with its identifier: one frame each. */
static int send_event(ws_session_t *s, const char *channel, const char *event, const char *data, size_t data_len)
{
    cable_t *v = ws_session_data(s);
    int sent = 0;
    for (list_node_t *n = v && !v->failure ? v->subs.next : NULL; n && n != &v->subs; n = n->next) {
        hub_sub_t *sub = container_of(n, hub_sub_t, owner_node);
        size_t len;
        const char *stream = hub_sub_channel(sub, &len);
        if (channel && (strlen(channel) != len || memcmp(channel, stream, len) != 0))
            continue;
        if (!hub_sub_pending(sub) && dialect_send_envelope(s, &envelope, sub->variant, stream, len, event, data,
                                                           data_len) > 0)
            sent++;
    }
    return sent;
}

static void kick(ws_session_t *s, const char *reason, bool reconnect)
{
    cable_t *v = ws_session_data(s);
    if (v && !v->failure)
        send_disconnect(v, reason, reconnect);
}

const dialect_t dialect_cable = {
    .describe = describe,
    .send_event = send_event,
    .kick = kick,
    .on_rate_limited = on_rate_limited,
    .name = "cable",
    .path = "/cable",
    .endpoint = EP_CABLE,
    .accept = accept_upgrade,
    .on_open = on_open,
    .on_message = on_message,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
    .on_subscribed = on_subscribed,
    .worker_start = cable_worker_start,
    .worker_stop = cable_worker_stop,
};
