/*
 * mock/faults_http.c — the control endpoints of the faults (README: Mock backend, Faults):
 * reading and checking what a client developer asks for, naming the field that is wrong,
 * and handing the fault to the table (faults.c). Also Flow's scripted server events,
 * POST /api/flow/threads/<id>/events, published to the thread's hub channel.
 */
#include "wshub/faults.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wshub/metrics.h"
#include "wshub/mock.h"

#include "faults_internal.h"

#define MAX_TEXT 1024   /* a channel, a pattern, an error message */
#define MAX_THREAD 256  /* Flow's longest id (dialects/flow/internal.h, FLOW_MAX_ID) */

/* 200 with body (taken): numbers as given (0.97, not 0.96999999999999997). */
static void reply(http_reply_t *out, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(body);
    if (!text) {
        mock_error(out, 500, "internal_error", NULL, "out of memory");
        return;
    }
    out->status = 200;
    out->body = text;
    out->len = strlen(text);
}

/* ------------------------------------------------------------------ fields */

/* A string member without NUL bytes of 1..max bytes: its value, or NULL with *out the 400. */
static const char *text_field(json_t *body, const char *name, size_t max, bool required, http_reply_t *out)
{
    json_t *v = json_object_get(body, name);
    if (!v && !required)
        return NULL;
    const char *s = dialect_cstr(v);
    if (!s || !*s || json_string_length(v) > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s a non-empty string of at most %zu bytes, without NUL",
                 v ? "expected" : "required:", max);
        mock_bad_field(out, name, msg);
        return NULL;
    }
    return s;
}

/* An integer member in [min, max] (def when absent and not required): true, or false with *out the 400. */
static bool int_field(json_t *body, const char *name, long long min, long long max, long long def, bool required,
                      long long *val, http_reply_t *out)
{
    json_t *v = json_object_get(body, name);
    if (!v && !required) {
        *val = def;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s an integer from %lld to %lld", v ? "expected" : "required:", min, max);
        mock_bad_field(out, name, msg);
        return false;
    }
    *val = json_integer_value(v);
    return true;
}

/* "api": one of the WebSocket APIs; its endpoint_t, or -1 with *out the 400. */
static int api_field(json_t *body, http_reply_t *out)
{
    const char *api = dialect_cstr(json_object_get(body, "api"));
    int ep = endpoint_of_api(api);
    if (ep < 0)
        mock_bad_field(out, "api", "required: one of \"service\", \"cable\", \"moderation\", \"flow\", \"echo\"");
    return ep;
}

static int dir_field(json_t *body, http_reply_t *out)
{
    json_t *v = json_object_get(body, "direction");
    if (dialect_str_is(v, "in"))
        return FAULT_IN;
    if (dialect_str_is(v, "out"))
        return FAULT_OUT;
    mock_bad_field(out, "direction", "required: \"in\" (client to server) or \"out\" (server to client)");
    return -1;
}

static fault_t *new_fault(fault_kind_t kind, http_reply_t *out)
{
    fault_t *f = calloc(1, sizeof *f);
    if (!f)
        mock_error(out, 500, "internal_error", NULL, "out of memory");
    else
        f->kind = kind, f->left = -1;
    return f;
}

/* Adds f to the table and answers {"ok": true, "fault": {…}} (or 409 when full). */
static void add_and_answer(dialect_ctx_t *x, fault_t *f, http_reply_t *out)
{
    uint64_t id = faults__add(f, dialect_live(x)->cfg.mock_max_faults);
    if (!id) {
        mock_error(out, 409, "too_many_faults", NULL,
                   "mock.max_faults faults are set: clear some (DELETE /api/faults or /api/faults/<id>)");
        return;
    }
    json_t *list = faults__list(), *found = NULL, *v;
    size_t i;
    json_array_foreach(list, i, v) {
        if ((uint64_t)json_integer_value(json_object_get(v, "id")) == id)
            found = json_incref(v);
    }
    json_decref(list);
    reply(out, json_pack("{s:b, s:o}", "ok", 1, "fault", found ? found : json_pack("{s:I}", "id", (json_int_t)id)));
}

/* ------------------------------------------------------------------ the faults */

/* POST /api/faults/cable/reject {"channel", "count"?} */
static void add_cable_reject(dialect_ctx_t *x, json_t *body, http_reply_t *out)
{
    const char *channel = text_field(body, "channel", MAX_TEXT, true, out);
    long long n;
    if (!channel || !int_field(body, "count", 1, 1000000000, 1, false, &n, out))
        return;
    fault_t *f = new_fault(FK_CABLE_REJECT, out);
    if (!f)
        return;
    f->left = n;
    if (!(f->channel = strdup(channel))) {
        faults__free(f);
        mock_error(out, 500, "internal_error", NULL, "out of memory");
        return;
    }
    add_and_answer(x, f, out);
}

/* "verdict": "pass" | "flag" | "delete", or {"action": one of them, "score"?: 0..1}; a new
 * {"action", "score"?}, or NULL with *out the 400. */
static json_t *verdict_field(json_t *v, http_reply_t *out)
{
    json_t *action = json_is_object(v) ? json_object_get(v, "action") : v;
    json_t *score = json_is_object(v) ? json_object_get(v, "score") : NULL;
    const char *a = dialect_cstr(action);
    if (!a || (strcmp(a, "pass") != 0 && strcmp(a, "flag") != 0 && strcmp(a, "delete") != 0)) {
        mock_bad_field(out, json_is_object(v) ? "verdict.action" : "verdict",
                       "expected \"pass\", \"flag\" or \"delete\" (or {\"action\": …, \"score\": 0..1})");
        return NULL;
    }
    if (score && (!json_is_number(score) || json_number_value(score) < 0 || json_number_value(score) > 1)) {
        mock_bad_field(out, "verdict.score", "expected a number from 0 to 1");
        return NULL;
    }
    return score ? json_pack("{s:s, s:f}", "action", a, "score", json_number_value(score))
                 : json_pack("{s:s}", "action", a);
}

/* "scores": members of a Chatsight answer's response to replace (PROTOCOLS.md §A). */
static bool scores_valid(json_t *scores, http_reply_t *out)
{
    static const char *const members[] = {"engine1", "engine2", "engine3", "suggestedAction", "patches",
                                          "insights", "categories", "detectors"};
    if (!json_is_object(scores) || json_object_size(scores) == 0) {
        mock_bad_field(out, "scores", "expected a non-empty object of response members (engine1, engine2, "
                                      "engine3, suggestedAction, patches, insights, categories, detectors)");
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(scores, k, v) {
        size_t i = 0;
        while (i < sizeof members / sizeof members[0] && strcmp(k, members[i]) != 0)
            i++;
        bool sa = i == 3;
        if (i == sizeof members / sizeof members[0] ||
            (sa ? !json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)) ||
                      !json_is_number(json_array_get(v, 1))
                : !json_is_object(v))) {
            char field[64];
            snprintf(field, sizeof field, "scores.%.40s", k);
            mock_bad_field(out, field, i == sizeof members / sizeof members[0]
                                           ? "not a score member of a Chatsight answer"
                                       : sa ? "expected [action, score]"
                                            : "expected an object (its members replace the scored ones)");
            return false;
        }
    }
    return true;
}

/* The override's answer: {"success": false, "message"} or {"verdict"?, "scores"?}; NULL with *out the 400. */
static json_t *moderation_answer(json_t *body, http_reply_t *out)
{
    json_t *success = json_object_get(body, "success"), *verdict = json_object_get(body, "verdict");
    json_t *scores = json_object_get(body, "scores");
    if (success) {
        if (!json_is_false(success) || verdict || scores) {
            mock_bad_field(out, "success", "only false, alone (an error answer); for scores give verdict or scores");
            return NULL;
        }
        json_t *m = json_object_get(body, "message");
        const char *msg = m ? text_field(body, "message", MAX_TEXT, false, out) : "moderation failed (mock fault)";
        return msg ? json_pack("{s:b, s:s}", "success", 0, "message", msg) : NULL;
    }
    if (!verdict && !scores) {
        mock_bad_field(out, "verdict", "required: verdict, scores or \"success\": false");
        return NULL;
    }
    json_t *a = json_object(), *v = NULL;
    if (a && verdict && !(v = verdict_field(verdict, out))) {
        json_decref(a);
        return NULL;
    }
    if (a && v)
        json_object_set_new(a, "verdict", v);
    if (a && scores) {
        if (!scores_valid(scores, out)) {
            json_decref(a);
            return NULL;
        }
        json_object_set_new(a, "scores", json_deep_copy(scores));
    }
    return a;
}

/* POST /api/faults/moderation {"reference"? , "pattern"?, verdict | scores | "success": false, "times"?} */
static void add_moderation(dialect_ctx_t *x, json_t *body, http_reply_t *out)
{
    json_t *ref = json_object_get(body, "reference");
    if (ref && !json_is_string(ref) && !json_is_number(ref) && !json_is_null(ref)) {
        mock_bad_field(out, "reference", "expected the request's reference: a string, a number or null");
        return;
    }
    const char *pattern = text_field(body, "pattern", MAX_TEXT, false, out);
    if (json_object_get(body, "pattern") && !pattern)
        return;
    if (!ref && !pattern) {
        mock_bad_field(out, "reference", "required: reference or pattern (a substring or glob of the sample)");
        return;
    }
    long long times;
    if (!int_field(body, "times", 1, 1000000000, -1, false, &times, out))
        return;
    json_t *answer = moderation_answer(body, out);
    if (!answer)
        return;
    fault_t *f = new_fault(FK_MODERATION, out);
    if (!f) {
        json_decref(answer);
        return;
    }
    f->answer = answer;
    f->left = times;
    f->reference = ref ? json_deep_copy(ref) : NULL;
    f->pattern = pattern ? strdup(pattern) : NULL;
    f->glob = pattern && strpbrk(pattern, "*?[");
    if ((ref && !f->reference) || (pattern && !f->pattern)) {
        faults__free(f);
        mock_error(out, 500, "internal_error", NULL, "out of memory");
        return;
    }
    add_and_answer(x, f, out);
}

/* POST /api/faults/latency {"api", "direction", "ms", "jitter_ms"?} */
static void add_latency(dialect_ctx_t *x, json_t *body, http_reply_t *out)
{
    int ep, dir;
    long long ms, jitter;
    if ((ep = api_field(body, out)) < 0 || (dir = dir_field(body, out)) < 0 ||
        !int_field(body, "ms", 0, 600000, 0, true, &ms, out) ||
        !int_field(body, "jitter_ms", 0, 600000, 0, false, &jitter, out))
        return;
    fault_t *f = new_fault(FK_LATENCY, out);
    if (!f)
        return;
    f->ep = ep, f->dir = dir, f->ms = (uint32_t)ms, f->jitter = (uint32_t)jitter;
    add_and_answer(x, f, out);
}

/* POST /api/faults/drop {"api", "direction", "rate"} */
static void add_drop(dialect_ctx_t *x, json_t *body, http_reply_t *out)
{
    int ep, dir;
    if ((ep = api_field(body, out)) < 0 || (dir = dir_field(body, out)) < 0)
        return;
    json_t *rate = json_object_get(body, "rate");
    double r = json_number_value(rate);
    if (!json_is_number(rate) || !(r > 0 && r <= 1)) {
        mock_bad_field(out, "rate", "required: the share of messages dropped, a number above 0 and at most 1");
        return;
    }
    fault_t *f = new_fault(FK_DROP, out);
    if (!f)
        return;
    f->ep = ep, f->dir = dir, f->rate = r;
    add_and_answer(x, f, out);
}

/* POST /api/faults/refuse {"api", "status"?, "for_ms"} */
static void add_refuse(dialect_ctx_t *x, json_t *body, http_reply_t *out)
{
    int ep;
    long long status, ms;
    if ((ep = api_field(body, out)) < 0 || !int_field(body, "status", 400, 599, 503, false, &status, out) ||
        !int_field(body, "for_ms", 1, 86400000, 0, true, &ms, out))
        return;
    fault_t *f = new_fault(FK_REFUSE, out);
    if (!f)
        return;
    f->ep = ep, f->status = (int)status, f->until_ms = faults__now_ms() + (uint64_t)ms;
    add_and_answer(x, f, out);
}

/* ------------------------------------------------------------------ routes */

static void clear(http_reply_t *out)
{
    size_t n = faults__clear();
    reply(out, json_pack("{s:b, s:I}", "ok", 1, "cleared", (json_int_t)n));
}

static void method_not_allowed(http_reply_t *out, const char *allow)
{
    mock_error(out, 405, "method_not_allowed", NULL, allow);
    out->extra = strcmp(allow, "use GET or DELETE") == 0 ? "Allow: GET, DELETE\r\n"
                 : strcmp(allow, "use DELETE") == 0      ? "Allow: DELETE\r\n"
                                                         : "Allow: POST\r\n";
}

/* GET /api/faults: the list; DELETE /api/faults: clears them. */
void mock_faults(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out))
        return;
    const char *m = http_request_method(req);
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        reply(out, json_pack("{s:b, s:o}", "ok", 1, "faults", faults__list()));
    else if (strcmp(m, "DELETE") == 0)
        clear(out);
    else
        method_not_allowed(out, "use GET or DELETE");
}

/* DELETE /api/faults/<id> */
static void remove_one(const char *id, size_t len, http_reply_t *out)
{
    char buf[24];
    char *end;
    unsigned long long v = 0;
    if (len && len < sizeof buf && isdigit((unsigned char)id[0])) {
        memcpy(buf, id, len);
        buf[len] = 0;
        v = strtoull(buf, &end, 10);
        if (*end)
            v = 0;
    }
    if (!v || !faults__remove(v)) {
        mock_error(out, 404, "not_found", "id", "no fault with this id (GET /api/faults lists them)");
        return;
    }
    reply(out, json_pack("{s:b, s:I}", "ok", 1, "removed", (json_int_t)v));
}

/* POST /api/faults/<kind>, POST /api/faults/clear, DELETE /api/faults/<id> */
void mock_faults_add(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out))
        return;
    static const struct {
        const char *name;
        void (*fn)(dialect_ctx_t *, json_t *, http_reply_t *);
    } kinds[] = {{"cable/reject", add_cable_reject}, {"moderation", add_moderation}, {"latency", add_latency},
                 {"drop", add_drop}, {"refuse", add_refuse}};
    size_t plen;
    const char *path = http_request_path(req, &plen);
    const char *rest = path + strlen("/api/faults/");
    size_t rlen = plen - strlen("/api/faults/");
    const char *m = http_request_method(req);
    if (strcmp(m, "DELETE") == 0) {
        remove_one(rest, rlen, out);
        return;
    }
    if (strcmp(m, "POST") != 0) {
        method_not_allowed(out, "use POST");
        return;
    }
    if (rlen == 5 && memcmp(rest, "clear", 5) == 0) {
        clear(out);
        return;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strlen(kinds[i].name) != rlen || memcmp(kinds[i].name, rest, rlen) != 0)
            continue;
        json_t *body = mock_body_object(req, out, false);
        if (body)
            kinds[i].fn(x, body, out);
        json_decref(body);
        return;
    }
    mock_error(out, 404, "not_found", NULL,
               "no such fault: POST /api/faults/cable/reject, moderation, latency, drop, refuse or clear");
}

/* ------------------------------------------------------------------ Flow's server events */

static int unhex(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The thread id of /api/flow/threads/<id>/events, percent-decoded into buf: its length, or -1. */
static int thread_id(const http_request_t *req, char *buf, size_t size)
{
    size_t plen;
    const char *p = http_request_path(req, &plen), *end = p + plen;
    static const char prefix[] = "/api/flow/threads/", suffix[] = "/events";
    p += sizeof prefix - 1;
    if ((size_t)(end - p) <= sizeof suffix - 1 || memcmp(end - (sizeof suffix - 1), suffix, sizeof suffix - 1) != 0)
        return -1;
    end -= sizeof suffix - 1;
    size_t n = 0;
    for (; p < end; p++) {
        int c = (unsigned char)*p;
        if (c == '%' && end - p >= 3 && unhex(p[1]) >= 0 && unhex(p[2]) >= 0) {
            c = unhex(p[1]) * 16 + unhex(p[2]);
            p += 2;
        } else if (c == '/' || c == '%') {
            return -1;
        }
        if (c < 0x21 || c == 0x7f || n + 1 >= size)
            return -1;
        buf[n++] = (char)c;
    }
    buf[n] = 0;
    return n ? (int)n : -1;
}

/* The server types of PROTOCOLS.md §D. */
static bool flow_type(const char *t)
{
    static const char *const types[] = {"message.received", "message.delivered", "activities.delivered",
                                        "activities.created", "agent.typing", "secret.generated",
                                        "interruption.occurred", "error", "pong"};
    for (size_t i = 0; t && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(t, types[i]) == 0)
            return true;
    return false;
}

/* POST /api/flow/threads/<id>/events {"type", "payload"?} or {"type": "error", "message"?}:
 * the event reaches every socket of the thread through the hub (and the broker), as the
 * Flow envelope builds it (dialects/flow/thread.c). */
void mock_flow_event(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out))
        return;
    if (strcmp(http_request_method(req), "POST") != 0) {
        method_not_allowed(out, "use POST");
        return;
    }
    char thread[MAX_THREAD + 1], channel[MAX_THREAD + 16];
    if (thread_id(req, thread, sizeof thread) < 0) {
        mock_error(out, 404, "not_found", "threadId",
                   "use POST /api/flow/threads/<threadId>/events (1 to 256 bytes, percent-encoded, no spaces or control characters)");
        return;
    }
    json_t *body = mock_body_object(req, out, false);
    if (!body)
        return;
    const char *type = dialect_cstr(json_object_get(body, "type"));
    json_t *payload = json_object_get(body, "payload");
    const char *message = NULL;
    if (!flow_type(type)) {
        mock_bad_field(out, "type", "required: a server type of the Flow socket API (message.received, "
                                    "agent.typing, activities.created, interruption.occurred, error, …)");
    } else if (payload && !json_is_object(payload)) {
        mock_bad_field(out, "payload", "expected an object");
    } else if (strcmp(type, "error") == 0 && json_object_get(body, "message") &&
               !(message = text_field(body, "message", MAX_TEXT, false, out))) {
        /* answered */
    } else {
        json_t *data = strcmp(type, "error") == 0
                           ? json_pack("{s:s}", "message", message ? message : "error injected by the mock backend")
                           : payload ? json_incref(payload) : json_object();
        char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
        int n = snprintf(channel, sizeof channel, "thread:%s", thread);
        size_t delivered = 0;
        if (!text || dialect_publish_api(x, channel, (size_t)n, type, text, strlen(text), &delivered) != 0)
            mock_error(out, 503, "unavailable", NULL, "out of memory, or the broker is unreachable");
        else
            reply(out, json_pack("{s:b, s:s, s:s, s:I}", "ok", 1, "threadId", thread, "type", type,
                                                "delivered", (json_int_t)delivered));
        free(text);
        json_decref(data);
    }
    json_decref(body);
}
