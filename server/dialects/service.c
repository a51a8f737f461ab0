/*
 * service — API B at /api/ws (PROTOCOLS.md §B, seeds/websocket-service.txt): a JWT in
 * ?token= (or Authorization: Bearer), subscribe/unsubscribe/ping/chat_message commands,
 * events in the {type, data, timestamp} envelope, errors with typed codes.
 *
 * Owns: the API's JSON commands and envelope, channel-name rules and authorization (the
 * token's `channels` claim, else service.default_policy), the implicit user:<sub> channel,
 * token expiry on a live connection. Never: touches sockets (ws_session_*), or the hub's
 * internals (hub_*).
 */
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <jansson.h>

#include "wshub/api.h"
#include "wshub/auth.h"
#include "wshub/dialect.h"
#include "wshub/hub.h"
#include "wshub/log.h"
#include "wshub/metrics.h"
#include "wshub/util.h"
#include "wshub/ws.h"
#include "wshub/wtimer.h"


/* One allocation from the worker's pool (mempool.h) per connection, the token's strings
 * included: a session lives as long as its connection, and a few compact bytes per idle
 * connection is the point (bench/ S3, issue 18: at most 96 bytes with a short subject and one
 * glob). So nothing is kept that can be found again: the dialect's context is the session's
 * (dialect_ctx), the allocation's size follows from the strings (svc_size). */
typedef struct svc {
    ws_session_t *s;    /* NULL until on_open */
    list_node_t subs;   /* explicit subscriptions (hub_sub_t.owner_node) */
    hub_sub_t *user_sub; /* user:<sub>, implicit */
    wtimer_t expiry;
    uint32_t exp;       /* token expiry, seconds since the epoch, 0 = none (an exp past 2106,
                         * which this cannot hold, counts as none: 80 years from now) */
    uint32_t nsubs;
    uint16_t npatterns; /* globs of the `channels` claim, stored after sub */
    bool has_patterns;  /* the token has a `channels` claim (even an empty one) */
    char sub[];         /* the token's subject, NUL, then each glob of `channels`, NUL-ended */
} svc_t;

/* An idle API B connection of bench/ S3 (sub "bench", channels ["conversation:*"]) fits the
 * 96-byte pool class (issue 18). */
_Static_assert(sizeof(svc_t) + sizeof "bench" + sizeof "conversation:*" <= 96, "svc_t outgrew its pool class");

/* What the struct and its strings take (as allocated in accept_upgrade). */
static size_t svc_size(const svc_t *v)
{
    size_t n = strlen(v->sub) + 1;
    const char *p = v->sub + n;
    for (uint16_t i = 0; i < v->npatterns; i++) {
        size_t k = strlen(p) + 1;
        n += k;
        p += k;
    }
    return sizeof(svc_t) + n;
}

static dialect_ctx_t *ctx_of(const svc_t *v) { return dialect_ctx(v->s); }

/* ------------------------------------------------------------------ envelope */

/* {"type":<event>,"data":<data>,"timestamp":"<ts>"}, built once per published message; with a
 * stream position (history, issue 17), ,"offset":N,"epoch":"E" before the closing brace: the
 * position is the message's, the frame stays shared. */
static frame_t *build_event(const hub_msg_t *m)
{
    static const char a[] = "{\"type\":", b[] = ",\"data\":", c[] = ",\"timestamp\":\"";
    char d[64] = "\"}";
    if (m->offset)
        snprintf(d, sizeof d, "\",\"offset\":%llu,\"epoch\":\"%s\"}", (unsigned long long)m->offset, m->epoch);
    size_t dl = strlen(d);
    size_t ej = strlen(m->event_json), ts = strlen(m->timestamp);
    size_t len = sizeof a - 1 + ej + sizeof b - 1 + m->data_len + sizeof c - 1 + ts + dl;
    frame_t *f = frame_new(len + 10);
    if (!f)
        return NULL;
    uint8_t *p = f->data + frame_header(f->data, WS_OP_TEXT, len);
#define PUT(s, n) (memcpy(p, (s), (n)), p += (n))
    PUT(a, sizeof a - 1);
    PUT(m->event_json, ej);
    PUT(b, sizeof b - 1);
    PUT(m->data, m->data_len);
    PUT(c, sizeof c - 1);
    PUT(m->timestamp, ts);
    PUT(d, dl);
#undef PUT
    f->len = (uint32_t)(p - f->data);
    return f;
}

static const hub_envelope_t envelope = {.build = build_event};

/* Sends {"type":type,"data":data,"timestamp":now}; takes the reference to data. */
static void send_msg(svc_t *v, const char *type, json_t *data)
{
    char ts[32];
    util_iso8601_now(ts);
    dialect_send_json(v->s, json_pack("{s:s, s:o, s:s}", "type", type, "data", data ? data : json_object(), "timestamp", ts));
}

/* channel (len bytes, NULs included: it is echoed as the client sent it) is added when not NULL. */
static void send_error(svc_t *v, const char *code, const char *message, const char *channel, size_t len)
{
    json_t *data = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (channel)
        json_object_set_new(data, "channel", json_stringn(channel, len));
    send_msg(v, "error", data);
}

/* ------------------------------------------------------------------ channels */

#define SUBSCRIBE_FAILED "the subscription could not be registered (out of memory)"
#define SUBSCRIBE_NO_BROKER "the broker is unreachable: not subscribed (retry)"

static const char *subscribe_failed(int err) { return err == UV_ECONNREFUSED ? SUBSCRIBE_NO_BROKER : SUBSCRIBE_FAILED; }

/* With a broker, a subscription may wait for its confirmation (dialect_subscribe): the
 * "subscribed" replies it owes meanwhile are counted in its variant, which this API's
 * envelope does not use (it has no variant_frame). */
static uintptr_t owed(const hub_sub_t *sub) { return (uintptr_t)sub->variant; }
static void set_owed(hub_sub_t *sub, uintptr_t n) { sub->variant = (void *)n; }

/* <kind>:<id>, at most 256 bytes; kind of [A-Za-z0-9_.-], id without spaces or controls. */
static bool channel_valid(const char *ch, size_t len)
{
    if (len < 3 || len > API_MAX_CHANNEL)
        return false;
    const char *colon = memchr(ch, ':', len);
    if (!colon || colon == ch || colon == ch + len - 1)
        return false;
    for (const char *p = ch; p < colon; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return false;
    for (const char *p = colon + 1; p < ch + len; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f)
            return false;
    return true;
}

static bool is_user_channel(const char *ch, size_t len) { return len >= 5 && memcmp(ch, "user:", 5) == 0; }

/* user:<sub> of this connection's subject (compared with the length: bytes after a NUL count). */
static bool own_user_channel(const svc_t *v, const char *ch, size_t len)
{
    return is_user_channel(ch, len) && len - 5 == strlen(v->sub) && memcmp(ch + 5, v->sub, len - 5) == 0;
}

/* ch is a valid channel (channel_valid: no NUL inside). */
static bool allowed(svc_t *v, const char *ch, size_t len)
{
    /* user:<id> is only ever the subject's own, whatever the claim's patterns match ("*",
     * "user:*", "[!x]*" included): PROTOCOLS.md §B, issue 11. */
    if (is_user_channel(ch, len))
        return own_user_channel(v, ch, len);
    if (v->has_patterns) {
        const char *p = v->sub + strlen(v->sub) + 1;
        for (uint16_t i = 0; i < v->npatterns; i++, p += strlen(p) + 1)
            if (fnmatch(p, ch, 0) == 0)
                return true;
        return false;
    }
    const live_t *live = dialect_live(ctx_of(v));
    return live->cfg.service_default_policy != SERVICE_POLICY_DENY;
}

static hub_sub_t *find_sub(svc_t *v, const char *ch, size_t len)
{
    for (list_node_t *n = v->subs.next; n != &v->subs; n = n->next) {
        hub_sub_t *sub = container_of(n, hub_sub_t, owner_node);
        size_t l;
        const char *name = hub_sub_channel(sub, &l);
        if (l == len && memcmp(name, ch, len) == 0)
            return sub;
    }
    return NULL;
}

static json_t *channel_data(const char *ch, size_t len) { return json_pack("{s:s%}", "channel", ch, len); }

/* ------------------------------------------------------------------ commands */

/* "subscribed" now, or once the subscription holds. */
static void reply_subscribed(svc_t *v, hub_sub_t *sub, const char *ch, size_t len)
{
    if (hub_sub_pending(sub))
        set_owed(sub, owed(sub) + 1);
    else
        send_msg(v, "subscribed", channel_data(ch, len)); /* idempotent: again for a duplicate */
}

/* The replies a pending subscription owes, before anything else is said of its channel. */
static void pay_owed(svc_t *v, hub_sub_t *sub)
{
    size_t len;
    const char *ch = hub_sub_channel(sub, &len);
    for (uintptr_t n = owed(sub); n > 0; n--)
        send_msg(v, "subscribed", channel_data(ch, len));
    set_owed(sub, 0);
}

/* The outcome of a subscribe with since: "subscribed" with recovered, before the replay. */
static void on_recovered(void *session, hub_sub_t *sub, int status, bool done)
{
    svc_t *v = ws_session_data(session);
    if (done || !v)
        return;
    size_t len;
    const char *ch = hub_sub_channel(sub, &len);
    json_t *data = channel_data(ch, len);
    json_object_set_new(data, "recovered", json_boolean(status > 0));
    send_msg(v, "subscribed", data);
}

/* data.since: {"offset": N >= 0, "epoch": "E"}. 1 read into pos, 0 absent, -1 malformed. */
static int parse_since(json_t *since, hub_pos_t *pos)
{
    if (!since)
        return 0;
    json_t *off = json_object_get(since, "offset");
    const char *epoch = dialect_cstr(json_object_get(since, "epoch"));
    if (!json_is_object(since) || !json_is_integer(off) || json_integer_value(off) < 0 || !epoch)
        return -1;
    pos->offset = (uint64_t)json_integer_value(off);
    snprintf(pos->epoch, sizeof pos->epoch, "%s", strlen(epoch) == HUB_EPOCH_LEN ? epoch : "-"); /* "-": no epoch */
    return 1;
}

static void cmd_subscribe(svc_t *v, const char *ch, size_t len, const hub_pos_t *since)
{
    if (!channel_valid(ch, len)) {
        send_error(v, "subscription_failed", "invalid channel name: expected <kind>:<id>, at most 256 bytes", ch,
                   len);
        return;
    }
    if (!allowed(v, ch, len)) {
        send_error(v, "unauthorized", "not allowed to subscribe to this channel", ch, len);
        return;
    }
    int err = 0;
    bool own = own_user_channel(v, ch, len);
    if (own && !v->user_sub && !(v->user_sub = dialect_subscribe(v->s, ch, len, &envelope, NULL, &err))) {
        send_error(v, "subscription_failed", subscribe_failed(err), ch, len);
        return;
    }
    hub_sub_t *sub = own ? v->user_sub : find_sub(v, ch, len);
    if (!sub) {
        int max = dialect_live(ctx_of(v))->cfg.service_max_subscriptions;
        if ((int)v->nsubs >= max) {
            char msg[96];
            snprintf(msg, sizeof msg, "subscription limit reached (%d channels per connection)", max);
            send_error(v, "subscription_failed", msg, ch, len);
            return;
        }
        if (!(sub = dialect_subscribe(v->s, ch, len, &envelope, NULL, &err))) {
            send_error(v, "subscription_failed", subscribe_failed(err), ch, len);
            return;
        }
        list_insert_tail(&v->subs, &sub->owner_node);
        v->nsubs++;
    }
    /* With since, the recovery answers (on_recovered), once the subscription holds. */
    if (since && !hub_sub_recovering(sub) && dialect_recover(v->s, sub, since, 0, on_recovered) == 0)
        return;
    reply_subscribed(v, sub, ch, len);
}

/* Drops an explicit or the implicit subscription. */
static void drop_sub(svc_t *v, hub_sub_t *sub)
{
    if (sub == v->user_sub) {
        v->user_sub = NULL;
    } else {
        list_remove(&sub->owner_node);
        v->nsubs--;
    }
    dialect_unsubscribe(v->s, sub);
}

static void cmd_unsubscribe(svc_t *v, const char *ch, size_t len)
{
    /* The implicit user:<sub> too: nothing may arrive after "unsubscribed" (PROTOCOLS.md §B).
     * A subscribe not confirmed yet is answered first: every request gets its reply, in order. */
    if (v->user_sub && own_user_channel(v, ch, len)) {
        pay_owed(v, v->user_sub);
        drop_sub(v, v->user_sub);
    }
    hub_sub_t *sub = find_sub(v, ch, len);
    if (sub) {
        pay_owed(v, sub);
        drop_sub(v, sub);
    }
    send_msg(v, "unsubscribed", channel_data(ch, len));
}

/* A pending subscription holds (its "subscribed" replies go now) or was refused (the error,
 * and it is dropped: a subscribe retries). */
static void on_subscribed(ws_session_t *s, hub_sub_t *sub, int status)
{
    svc_t *v = ws_session_data(s);
    if (!v)
        return;
    if (status == 0) {
        pay_owed(v, sub);
        return;
    }
    size_t len;
    const char *ch = hub_sub_channel(sub, &len);
    send_error(v, "subscription_failed", subscribe_failed(status), ch, len);
    drop_sub(v, sub);
}

static void cmd_chat_message(svc_t *v, json_t *data)
{
    json_t *conv = json_object_get(data, "conversation_id"), *content = json_object_get(data, "content");
    const char *conv_id = dialect_cstr(conv); /* an id with a NUL inside is no id */
    if (!json_is_string(conv) || json_string_length(conv) == 0) {
        send_error(v, "invalid_request", "data.conversation_id: required (a non-empty string)", NULL, 0);
        return;
    }
    if (!json_is_string(content)) {
        send_error(v, "invalid_request", "data.content: required (a string)", NULL, 0);
        return;
    }
    char ch[API_MAX_CHANNEL + 32];
    int n = conv_id ? snprintf(ch, sizeof ch, "conversation:%s", conv_id) : -1;
    if (n < 0 || (size_t)n >= sizeof ch || !channel_valid(ch, (size_t)n)) {
        send_error(v, "invalid_request", "data.conversation_id: not a valid conversation id", NULL, 0);
        return;
    }
    if (!allowed(v, ch, (size_t)n)) {
        send_error(v, "unauthorized", "not allowed to post to this conversation", ch, (size_t)n);
        return;
    }
    json_t *event = json_pack("{s:O, s:s, s:O}", "conversation_id", conv, "sender_id", v->sub, "content", content);
    char *text = event ? json_dumps(event, JSON_COMPACT) : NULL;
    size_t delivered;
    int rc = text ? dialect_publish(ctx_of(v), ch, (size_t)n, "chat_message", text, strlen(text), &delivered) : UV_ENOMEM;
    if (rc == UV_ECONNREFUSED || rc == UV_EAGAIN)
        send_error(v, "internal_error",
                   rc == UV_EAGAIN ? "the broker is busy: the message was not published (retry)"
                                   : "the broker is unreachable: the message was not published (retry)",
                   NULL, 0);
    else if (rc != 0)
        send_error(v, "internal_error", "the message could not be published", NULL, 0);
    free(text);
    json_decref(event);
}

static void subscribe_since(svc_t *v, json_t *data, json_t *ch)
{
    hub_pos_t pos;
    int since = parse_since(json_object_get(data, "since"), &pos);
    if (since < 0)
        send_error(v, "invalid_request", "data.since: expected {\"offset\": <integer >= 0>, \"epoch\": <string>}",
                   json_string_value(ch), json_string_length(ch));
    else
        cmd_subscribe(v, json_string_value(ch), json_string_length(ch), since ? &pos : NULL);
}

static void on_message(ws_session_t *s, int opcode, const uint8_t *msg, size_t len)
{
    svc_t *v = ws_session_data(s);
    if (opcode != WS_OP_TEXT) {
        send_error(v, "invalid_request", "binary messages are not supported: send JSON text", NULL, 0);
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)msg, len, DIALECT_JSON_FLAGS, &jerr);
    if (!root) {
        send_error(v, "invalid_request", "the message is not valid JSON", NULL, 0);
        return;
    }
    json_t *type = json_object_get(root, "type"), *data = json_object_get(root, "data");
    if (!json_is_object(root)) {
        send_error(v, "invalid_request", "expected a JSON object {\"type\":…,\"data\":{…}}", NULL, 0);
    } else if (!json_is_string(type)) {
        send_error(v, "invalid_request", "type: required (a string)", NULL, 0);
    } else if (data && !json_is_object(data)) {
        send_error(v, "invalid_request", "data: expected an object", NULL, 0);
    } else if (dialect_str_is(type, "ping")) {
        send_msg(v, "pong", json_object());
    } else if (dialect_str_is(type, "subscribe") || dialect_str_is(type, "unsubscribe")) {
        json_t *ch = data ? json_object_get(data, "channel") : NULL;
        if (!json_is_string(ch))
            send_error(v, "invalid_request", "data.channel: required (a string)", NULL, 0);
        else if (dialect_str_is(type, "subscribe"))
            subscribe_since(v, data, ch);
        else
            cmd_unsubscribe(v, json_string_value(ch), json_string_length(ch));
    } else if (dialect_str_is(type, "chat_message")) {
        if (data)
            cmd_chat_message(v, data);
        else
            send_error(v, "invalid_request", "data.conversation_id: required (a non-empty string)", NULL, 0);
    } else {
        send_error(v, "invalid_request", "unknown type: expected subscribe, unsubscribe, ping or chat_message",
                   NULL, 0);
    }
    json_decref(root);
}

/* ------------------------------------------------------------------ session */

static void refuse(dialect_accept_t *out, const char *message, const char *why)
{
    char ts[32];
    util_iso8601_now(ts);
    json_t *body = json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "data", "code", "unauthorized", "message",
                             message, "timestamp", ts);
    out->status = 401;
    out->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    out->hs_reason = HS_UNAUTHORIZED;
    out->why = why;
    json_decref(body);
}

static void accept_upgrade(const http_request_t *req, dialect_ctx_t *x, dialect_accept_t *out)
{
    const live_t *live = dialect_live(x);
    auth_claims_t claims = {0};
    auth_reason_t r = auth_verify_request(live->auth, req, time(NULL), &claims);
    if (r != AUTH_OK) {
        metrics_add(&dialect_metrics(x)->auth_failures[r], 1);
        static const char *const messages[AUTH_REASON_COUNT] = {
            [AUTH_MISSING] = "a JWT is required: ?token=<jwt> or Authorization: Bearer <jwt>",
            [AUTH_MALFORMED] = "the token is not a well-formed JWT",
            [AUTH_ALG_NOT_ALLOWED] = "the token's algorithm is not accepted",
            [AUTH_BAD_SIGNATURE] = "the token's signature is not valid",
            [AUTH_EXPIRED] = "the token has expired",
            [AUTH_NOT_YET_VALID] = "the token is not valid yet",
            [AUTH_NO_EXP] = "the token has no expiry (exp)",
            [AUTH_BAD_ISSUER] = "the token's issuer is not accepted",
            [AUTH_BAD_AUDIENCE] = "the token's audience is not accepted",
        };
        refuse(out, messages[r] ? messages[r] : "unauthorized", auth_reason_names[r]);
        return;
    }
    if (!claims.sub || !*claims.sub) {
        metrics_add(&dialect_metrics(x)->auth_failures[AUTH_MALFORMED], 1);
        refuse(out, "the token has no subject (sub)", "no sub");
        auth_claims_clear(&claims);
        return;
    }
    json_t *patterns = json_object_get(claims.payload, "channels");
    if (patterns && !json_is_array(patterns)) {
        /* A claim meant to restrict must never widen: refuse what cannot be read. */
        metrics_add(&dialect_metrics(x)->auth_failures[AUTH_MALFORMED], 1);
        refuse(out, "the token's channels claim must be an array of channel patterns", "channels not an array");
        auth_claims_clear(&claims);
        return;
    }
    /* The subject and the globs (non-strings never match, as before) go after the struct. */
    size_t size = sizeof(svc_t) + strlen(claims.sub) + 1, i, npat = 0;
    json_t *p;
    json_array_foreach(patterns, i, p) {
        if (json_is_string(p)) {
            size += strlen(json_string_value(p)) + 1;
            npat++;
        }
    }
    svc_t *v = npat <= UINT16_MAX ? dialect_alloc(x, size) : NULL;
    if (!v) {
        auth_claims_clear(&claims);
        out->status = 503;
        out->hs_reason = HS_OVER_CAPACITY;
        out->why = "out of memory";
        return;
    }
    v->has_patterns = patterns != NULL;
    v->npatterns = (uint16_t)npat;
    char *s = stpcpy(v->sub, claims.sub) + 1;
    json_array_foreach(patterns, i, p) {
        if (json_is_string(p))
            s = stpcpy(s, json_string_value(p)) + 1;
    }
    v->exp = claims.exp > 0 && claims.exp <= UINT32_MAX ? (uint32_t)claims.exp : 0;
    list_init(&v->subs);
    auth_claims_clear(&claims);
    out->data = v;
}

/* At the token's exp: an unauthorized error, then close 1008 (PROTOCOLS.md §B). */
static void on_expiry(wtimer_t *t)
{
    svc_t *v = container_of(t, svc_t, expiry);
    send_error(v, "unauthorized", "the token has expired", NULL, 0);
    ws_session_close(v->s, WS_CLOSE_POLICY, "token expired");
}

static void on_open(ws_session_t *s)
{
    svc_t *v = ws_session_data(s);
    v->s = s;
    char ch[API_MAX_CHANNEL + 8];
    int n = snprintf(ch, sizeof ch, "user:%s", v->sub);
    /* Without it the user's notifications would never arrive: say so (a subscribe retries). */
    int err = 0;
    if (n > 0 && (size_t)n < sizeof ch && !(v->user_sub = dialect_subscribe(s, ch, (size_t)n, &envelope, NULL, &err)))
        send_error(v, "subscription_failed", subscribe_failed(err), ch, (size_t)n);
    /* Expire at exp + the leeway the token was accepted with; an exp beyond a century is
     * treated as none (and keeps the arithmetic below far from overflow). */
    dialect_ctx_t *x = dialect_ctx(s);
    int64_t leeway = dialect_live(x)->cfg.auth_leeway_s;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (v->exp && (int64_t)v->exp < (int64_t)tv.tv_sec + 100LL * 365 * 86400) {
        int64_t now_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
        int64_t left = ((int64_t)v->exp + leeway) * 1000 - now_ms;
        if (dialect_timer_start(x, &v->expiry, dialect_now(x) + (uint64_t)(left > 0 ? left : 0), on_expiry) != 0) {
            /* A token whose expiry cannot be enforced is not honoured past now. */
            send_error(v, "internal_error", "the token's expiry could not be scheduled", NULL, 0);
            ws_session_close(v->s, WS_CLOSE_INTERNAL, "out of memory");
        }
    }
}

static void on_close(ws_session_t *s)
{
    svc_t *v = ws_session_data(s);
    if (!v)
        return;
    dialect_ctx_t *x = dialect_ctx(s); /* s: v->s is NULL for a session that never opened */
    dialect_timer_stop(x, &v->expiry);
    while (!list_empty(&v->subs))
        dialect_unsubscribe(v->s, container_of(v->subs.next, hub_sub_t, owner_node));
    if (v->user_sub)
        dialect_unsubscribe(v->s, v->user_sub);
    dialect_free(x, v, svc_size(v));
    ws_session_set_data(s, NULL);
}

/* Faster than limits.message_rate: the API's error, then ws_session closes 1008. */
static void on_rate_limited(ws_session_t *s)
{
    svc_t *v = ws_session_data(s);
    if (v)
        send_error(v, "rate_limited", "messages sent faster than the server allows: closing", NULL, 0);
}

/* ------------------------------------------------------------------ the mock backend */

/* {"subject", "subscriptions": [user:<sub> first, then the explicit ones]}. */
static json_t *describe(ws_session_t *s)
{
    svc_t *v = ws_session_data(s);
    json_t *subs = v ? json_array() : NULL;
    if (!subs)
        return NULL;
    if (v->user_sub)
        json_array_append_new(subs, dialect_sub_json(v->user_sub));
    for (list_node_t *n = v->subs.next; n != &v->subs; n = n->next)
        json_array_append_new(subs, dialect_sub_json(container_of(n, hub_sub_t, owner_node)));
    return json_pack("{s:s, s:o}", "subject", v->sub, "subscriptions", subs);
}

/* The event in this API's envelope (which does not name the channel): once, as a publish to
 * user:<sub> would arrive; with a channel, only if the connection is subscribed to it. */
static int send_event(ws_session_t *s, const char *channel, const char *event, const char *data, size_t data_len)
{
    svc_t *v = ws_session_data(s);
    char ch[API_MAX_CHANNEL + 8];
    int n = v ? snprintf(ch, sizeof ch, "user:%s", v->sub) : -1;
    if (n < 0 || (size_t)n >= sizeof ch)
        n = snprintf(ch, sizeof ch, "user:");
    if (channel) {
        size_t len = strlen(channel);
        if (!v || !((v->user_sub && own_user_channel(v, channel, len)) || find_sub(v, channel, len)))
            return 0;
        return dialect_send_envelope(s, &envelope, NULL, channel, len, event, data, data_len);
    }
    return dialect_send_envelope(s, &envelope, NULL, ch, (size_t)n, event, data, data_len);
}

const dialect_t dialect_service = {
    .describe = describe,
    .send_event = send_event,
    .on_rate_limited = on_rate_limited,
    .name = "service",
    .path = "/api/ws",
    .endpoint = EP_SERVICE,
    .accept = accept_upgrade,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
    .on_subscribed = on_subscribed,
};
