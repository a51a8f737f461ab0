/*
 * api — see include/wshub/api.h.
 */
#include "wshub/api.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "wshub/auth.h"
#include "wshub/dialect.h"
#include "wshub/metrics.h"

static void reply_json(http_reply_t *out, int status, json_t *body)
{
    out->status = status;
    out->body = json_dumps(body, JSON_COMPACT);
    out->len = out->body ? strlen(out->body) : 0;
    json_decref(body);
}

void api_error(http_reply_t *out, int status, const char *code, const char *message)
{
    reply_json(out, status, json_pack("{s:b, s:s, s:s}", "ok", 0, "error", code, "message", message));
}

static void bad(http_reply_t *out, const char *fmt, const char *arg)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    api_error(out, 400, "bad_request", msg);
}

/* Compares in constant time, so the key cannot be guessed byte by byte from timings. */
static bool key_matches(const char *given, size_t glen, const char *key)
{
    size_t klen = strlen(key);
    return glen == klen && CRYPTO_memcmp(given, key, klen) == 0;
}

static bool authorized(const http_request_t *req, const config_t *cfg)
{
    size_t len;
    char key[1024];
    const char *v = http_request_header(req, "Authorization", &len);
    if (!v || !auth_bearer_token(v, len, key, sizeof key))
        return false;
    return key_matches(key, strlen(key), cfg->api_key ? cfg->api_key : API_DEV_KEY);
}

bool api_authorized(const http_request_t *req, dialect_ctx_t *x)
{
    return authorized(req, &dialect_live(x)->cfg);
}

static const char *channel_problem(json_t *ch)
{
    if (!json_is_string(ch))
        return "expected a string";
    size_t len = json_string_length(ch);
    const char *s = json_string_value(ch);
    if (len == 0)
        return "must not be empty";
    if (len > API_MAX_CHANNEL)
        return "longer than 256 bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f)
            return "must not contain spaces or control characters";
    return NULL;
}

/* The APIs' own replies: a publish must never pass for one (PROTOCOLS.md "The server API"). */
static bool is_control_reply(const char *event)
{
    static const char *const replies[] = {"subscribed", "unsubscribed", "pong", "error"};
    for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++)
        if (strcmp(event, replies[i]) == 0)
            return true;
    return false;
}

/* A publish request once read and checked; root holds every json_t here. */
typedef struct publish_req {
    json_t *root;
    json_t *channel, *channels; /* exactly one of them */
    json_t *event;
    char *data_text;            /* malloc'd: data as compact JSON, "{}" without it */
} publish_req_t;

/* Returns true if p names its channel or channels correctly, else answers out with why. */
static bool channels_valid(const publish_req_t *p, http_reply_t *out)
{
    const char *problem;
    if (p->channel && p->channels) {
        bad(out, "channel and channels: give one of them, not both%s", "");
        return false;
    }
    if (!p->channel && !p->channels) {
        bad(out, "channel: required (a string), or channels (an array of strings)%s", "");
        return false;
    }
    if (p->channel && (problem = channel_problem(p->channel))) {
        bad(out, "channel: %s", problem);
        return false;
    }
    if (!p->channels)
        return true;
    if (!json_is_array(p->channels) || json_array_size(p->channels) == 0) {
        bad(out, "channels: expected a non-empty array of strings%s", "");
        return false;
    }
    size_t i;
    json_t *v;
    json_array_foreach(p->channels, i, v) {
        if ((problem = channel_problem(v))) {
            char msg[128];
            snprintf(msg, sizeof msg, "channels[%zu]: %s", i, problem);
            api_error(out, 400, "bad_request", msg);
            return false;
        }
    }
    return true;
}

/* Returns true if event can be published, else answers out with why. */
static bool event_valid(json_t *event, http_reply_t *out)
{
    if (!json_is_string(event) || json_string_length(event) == 0) {
        bad(out, "event: required (a non-empty string)%s", "");
        return false;
    }
    if (!dialect_cstr(event)) { /* the hub and the envelopes read the event as a C string */
        bad(out, "event: must not contain NUL characters%s", "");
        return false;
    }
    if (is_control_reply(json_string_value(event))) {
        bad(out, "event: \"%s\" is a control reply of the APIs (subscribed, unsubscribed, pong, error) and "
                 "cannot be published", json_string_value(event));
        return false;
    }
    return true;
}

/* Parses and checks the request body into p. Returns 0, or -1 with the error answered in out;
 * either way the caller frees p's root and data_text. */
static int read_publish(const http_request_t *req, publish_req_t *p, http_reply_t *out)
{
    size_t blen;
    const uint8_t *body = http_request_body(req, &blen);
    json_error_t jerr;
    p->root = json_loadb((const char *)(body ? body : (const uint8_t *)""), blen, DIALECT_JSON_FLAGS, &jerr);
    if (!p->root) {
        bad(out, "body: not valid JSON: %s", jerr.text);
        return -1;
    }
    if (!json_is_object(p->root)) {
        bad(out, "body: expected a JSON object with channel, event and data%s", "");
        return -1;
    }
    p->channel = json_object_get(p->root, "channel");
    p->channels = json_object_get(p->root, "channels");
    p->event = json_object_get(p->root, "event");
    json_t *data = json_object_get(p->root, "data");
    if (!channels_valid(p, out) || !event_valid(p->event, out))
        return -1;
    if (data && !json_is_object(data)) {
        bad(out, "data: expected a JSON object%s", "");
        return -1;
    }
    p->data_text = data ? json_dumps(data, JSON_COMPACT) : strdup("{}");
    if (!p->data_text) {
        api_error(out, 500, "internal_error", "out of memory");
        return -1;
    }
    return 0;
}

/* Hands the event to every dialect's publish hook and to the hub, channel by channel; returns
 * the deliveries the hub queued. */
static size_t publish(dialect_ctx_t *x, const publish_req_t *p)
{
    const char *event = json_string_value(p->event);
    size_t data_len = strlen(p->data_text), total = 0, n;
    json_t *list = p->channel ? json_pack("[O]", p->channel) : json_incref(p->channels);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (dialect_publish_api(x, json_string_value(v), json_string_length(v), event, p->data_text, data_len, &n) == 0)
            total += n;
    }
    json_decref(list);
    return total;
}

#define BROKER_REFUSAL "the broker is unreachable or busy: not published (retry)"

/* A publish through a broker: answered once it took every channel's publish. */
typedef struct api_job {
    http_pending_t *pending; /* NULL until deferred, or when deferring ran out of memory */
    size_t left;             /* outcomes still to come (+1 while they are being asked for) */
    long long nodes;         /* summed over the channels: the nodes that received each */
    bool refused;
} api_job_t;

static void job_answer(api_job_t *j)
{
    json_t *body = j->refused ? json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "unavailable", "message",
                                          BROKER_REFUSAL)
                              : json_pack("{s:b, s:I}", "ok", 1, "delivered", (json_int_t)j->nodes);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (j->pending)
        http_complete(j->pending, j->refused ? 503 : 200, NULL, text, text ? strlen(text) : 0);
    else
        free(text);
    free(j);
}

static void job_outcome(void *arg, int status, long long nodes)
{
    api_job_t *j = arg;
    if (status < 0)
        j->refused = true;
    else
        j->nodes += nodes;
    if (--j->left == 0)
        job_answer(j);
}

/* With a broker: each channel's publish is handed to it; the answer waits for its outcomes
 * (they come back on this worker, never inside this call). */
static void publish_through_broker(const http_request_t *req, dialect_ctx_t *x, const publish_req_t *p,
                                   http_reply_t *out)
{
    api_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        api_error(out, 500, "internal_error", "out of memory");
        return;
    }
    const char *event = json_string_value(p->event);
    size_t data_len = strlen(p->data_text), i;
    json_t *list = p->channel ? json_pack("[O]", p->channel) : json_incref(p->channels), *v;
    j->left = 1;
    json_array_foreach(list, i, v) {
        j->left++;
        if (dialect_publish_api_async(x, json_string_value(v), json_string_length(v), event, p->data_text, data_len,
                                      job_outcome, j) != 0) {
            j->refused = true;
            j->left--;
        }
    }
    json_decref(list);
    if (--j->left == 0) { /* every channel was refused at once */
        api_error(out, 503, "unavailable", BROKER_REFUSAL);
        out->extra = "Retry-After: 1\r\n";
        free(j);
        return;
    }
    j->pending = http_defer(req);
    if (!j->pending) /* out of memory: answered now; the outcomes still to come free j */
        api_error(out, 503, "unavailable", "out of memory");
}

void api_publish(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (strcmp(http_request_method(req), "POST") != 0) {
        api_error(out, 405, "method_not_allowed", "use POST");
        out->extra = "Allow: POST\r\n";
        out->hs_reason = 1 + HS_METHOD;
        return;
    }
    if (!authorized(req, &dialect_live(x)->cfg)) {
        api_error(out, 401, "unauthorized", "send the API key as Authorization: Bearer <api.key>");
        out->hs_reason = 1 + HS_UNAUTHORIZED;
        return;
    }
    publish_req_t p = {0};
    if (read_publish(req, &p, out) == 0) {
        if (dialect_has_broker(x)) {
            publish_through_broker(req, x, &p, out);
        } else {
            size_t delivered = publish(x, &p);
            reply_json(out, 200, json_pack("{s:b, s:I}", "ok", 1, "delivered", (json_int_t)delivered));
        }
    }
    free(p.data_text);
    json_decref(p.root);
}
