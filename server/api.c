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

void api_publish(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (strcmp(http_request_method(req), "POST") != 0) {
        api_error(out, 405, "method_not_allowed", "use POST");
        out->extra = "Allow: POST\r\n";
        out->hs_reason = 1 + HS_METHOD;
        return;
    }
    const live_t *live = dialect_live(x);
    if (!authorized(req, &live->cfg)) {
        api_error(out, 401, "unauthorized", "send the API key as Authorization: Bearer <api.key>");
        out->hs_reason = 1 + HS_UNAUTHORIZED;
        return;
    }
    size_t blen;
    const uint8_t *body = http_request_body(req, &blen);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)(body ? body : (const uint8_t *)""), blen, DIALECT_JSON_FLAGS, &jerr);
    char *data_text = NULL;
    if (!root) {
        bad(out, "body: not valid JSON: %s", jerr.text);
        return;
    }
    if (!json_is_object(root)) {
        bad(out, "body: expected a JSON object with channel, event and data%s", "");
        goto done;
    }
    json_t *ch = json_object_get(root, "channel"), *chs = json_object_get(root, "channels");
    json_t *event = json_object_get(root, "event"), *data = json_object_get(root, "data");
    const char *problem;
    if (ch && chs) {
        bad(out, "channel and channels: give one of them, not both%s", "");
        goto done;
    }
    if (!ch && !chs) {
        bad(out, "channel: required (a string), or channels (an array of strings)%s", "");
        goto done;
    }
    if (ch && (problem = channel_problem(ch))) {
        bad(out, "channel: %s", problem);
        goto done;
    }
    if (chs) {
        if (!json_is_array(chs) || json_array_size(chs) == 0) {
            bad(out, "channels: expected a non-empty array of strings%s", "");
            goto done;
        }
        size_t i;
        json_t *v;
        json_array_foreach(chs, i, v) {
            if ((problem = channel_problem(v))) {
                char msg[128];
                snprintf(msg, sizeof msg, "channels[%zu]: %s", i, problem);
                api_error(out, 400, "bad_request", msg);
                goto done;
            }
        }
    }
    if (!json_is_string(event) || json_string_length(event) == 0) {
        bad(out, "event: required (a non-empty string)%s", "");
        goto done;
    }
    if (!dialect_cstr(event)) { /* the hub and the envelopes read the event as a C string */
        bad(out, "event: must not contain NUL characters%s", "");
        goto done;
    }
    if (is_control_reply(json_string_value(event))) {
        bad(out, "event: \"%s\" is a control reply of the APIs (subscribed, unsubscribed, pong, error) and "
                 "cannot be published", json_string_value(event));
        goto done;
    }
    if (data && !json_is_object(data)) {
        bad(out, "data: expected a JSON object%s", "");
        goto done;
    }
    data_text = data ? json_dumps(data, JSON_COMPACT) : strdup("{}");
    if (!data_text) {
        api_error(out, 500, "internal_error", "out of memory");
        goto done;
    }

    size_t total = 0, n;
    json_t *list = ch ? json_pack("[O]", ch) : json_incref(chs);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (dialect_publish_api(x, json_string_value(v), json_string_length(v), json_string_value(event), data_text,
                        strlen(data_text), &n) == 0)
            total += n;
    }
    json_decref(list);
    reply_json(out, 200, json_pack("{s:b, s:I}", "ok", 1, "delivered", (json_int_t)total));
done:
    free(data_text);
    json_decref(root);
}
