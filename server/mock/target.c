/*
 * mock/target.c — targeting (issue 15): a frame or an event to one connection
 * (POST /api/connections/{id}/send), to every connection of a subject, a member, a Flow
 * thread or session, or of an API (POST /api/send {"to": {...}}); and closing them with a
 * chosen code and reason, after the API's goodbye when asked (POST /api/connections/{id}/close,
 * POST /api/close; on /cable a `disconnect` with reason and reconnect).
 *
 * The request is read and checked on the worker that took it, into plain bytes every worker
 * then reads (never a json_t shared across threads but the filter, which they only read).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

enum { SEND_TEXT, SEND_BINARY, SEND_EVENT };

/* A checked send or close request: read-only while the parts run. */
typedef struct target_req {
    int kind;          /* send: SEND_* */
    char *bytes;       /* send: the text or binary payload, or the event's data (JSON text) */
    size_t len;
    char *event;       /* SEND_EVENT */
    char *channel;     /* SEND_EVENT: only through the subscriptions of this channel, or NULL */
    uint16_t code;     /* close */
    char reason[124];  /* close: the close frame's reason (<= 123 bytes) */
    char goodbye[124]; /* close: the API's goodbye reason ("" = no goodbye) */
    bool reconnect;    /* close: the goodbye's reconnect */
} target_req_t;

static void req_free(void *arg)
{
    target_req_t *t = arg;
    if (t) {
        free(t->bytes);
        free(t->event);
        free(t->channel);
        free(t);
    }
}

/* ------------------------------------------------------------------ reading a send */

/* base64 (RFC 4648, with padding) into t->bytes; false when v is not that. */
static bool read_base64(json_t *v, target_req_t *t)
{
    const char *s = dialect_cstr(v);
    size_t n = s ? json_string_length(v) : 0;
    if (!s || n % 4 || n > (size_t)INT32_MAX)
        return false;
    if (!(t->bytes = malloc(n / 4 * 3 + 1)))
        return false;
    int got = n ? EVP_DecodeBlock((unsigned char *)t->bytes, (const unsigned char *)s, (int)n) : 0;
    if (got < 0)
        return false;
    size_t pad = n && s[n - 1] == '=' ? (n > 1 && s[n - 2] == '=' ? 2 : 1) : 0;
    t->len = (size_t)got - pad;
    return true;
}

/* The payload of a send: exactly one of text, json, binary or event (with data). */
static bool read_payload(json_t *body, target_req_t *t, http_reply_t *out)
{
    json_t *text = json_object_get(body, "text"), *js = json_object_get(body, "json");
    json_t *bin = json_object_get(body, "binary"), *ev = json_object_get(body, "event");
    json_t *data = json_object_get(body, "data"), *channel = json_object_get(body, "channel");
    if (!!text + !!js + !!bin + !!ev != 1) {
        mock_bad_field(out, "(body)", "give exactly one of text (a string), json (any JSON value), binary "
                                      "(base64) or event (a name, with data: an object)");
        return false;
    }
    if ((data || channel) && !ev) {
        mock_bad_field(out, data ? "data" : "channel", "only with event");
        return false;
    }
    if (channel && (!dialect_cstr(channel) || !json_string_length(channel))) {
        mock_bad_field(out, "channel", "expected a channel name (a non-empty string) the connection subscribes to");
        return false;
    }
    if (text && !json_is_string(text)) {
        mock_bad_field(out, "text", "expected a string");
        return false;
    }
    if (bin && !read_base64(bin, t)) {
        mock_bad_field(out, "binary", "expected a base64 string (RFC 4648, padded)");
        return false;
    }
    if (ev && (!dialect_cstr(ev) || !json_string_length(ev))) {
        mock_bad_field(out, "event", "expected a non-empty string without NUL characters");
        return false;
    }
    if (data && !json_is_object(data)) {
        mock_bad_field(out, "data", "expected a JSON object");
        return false;
    }
    t->kind = text || js ? SEND_TEXT : bin ? SEND_BINARY : SEND_EVENT;
    if (text) {
        t->len = json_string_length(text);
        if ((t->bytes = malloc(t->len + 1)))
            memcpy(t->bytes, json_string_value(text), t->len + 1);
    } else if (js || data) {
        t->bytes = json_dumps(js ? js : data, JSON_COMPACT | JSON_ENCODE_ANY);
    } else if (ev) {
        t->bytes = strdup("{}");
    }
    t->len = t->bytes && !bin && !text ? strlen(t->bytes) : t->len;
    t->event = ev ? strdup(json_string_value(ev)) : NULL;
    t->channel = channel ? strdup(json_string_value(channel)) : NULL;
    if (!t->bytes || (ev && !t->event) || (channel && !t->channel)) {
        mock_error(out, 503, "unavailable", NULL, "out of memory");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ reading a close */

/* Codes a server may send (RFC 6455 §7.4, the IANA registry): not 1004-1006, 1010 (a
 * client's), 1015, nor below 1000. 3000-4999: libraries' and applications' own. */
static bool close_code_ok(json_int_t c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014 && c != 1010) || (c >= 3000 && c <= 4999);
}

static bool read_close(json_t *body, target_req_t *t, http_reply_t *out)
{
    json_t *code = json_object_get(body, "code"), *reason = json_object_get(body, "reason");
    json_t *reconnect = json_object_get(body, "reconnect");
    if (code && (!json_is_integer(code) || !close_code_ok(json_integer_value(code)))) {
        mock_bad_field(out, "code", "expected a close code a server may send: 1000-1003, 1007-1009, 1011-1014 or "
                                    "3000-4999");
        return false;
    }
    if (reason && (!dialect_cstr(reason) || json_string_length(reason) > 123)) {
        mock_bad_field(out, "reason", "expected a string of at most 123 bytes, without NUL characters");
        return false;
    }
    if (reconnect && !json_is_boolean(reconnect)) {
        mock_bad_field(out, "reconnect", "expected true or false");
        return false;
    }
    t->code = code ? (uint16_t)json_integer_value(code) : WS_CLOSE_NORMAL;
    snprintf(t->reason, sizeof t->reason, "%s", reason ? json_string_value(reason) : "");
    /* The API's goodbye (cable's disconnect) when a reason or reconnect is given; "remote"
     * is what Rails says for a server-side disconnect. */
    if (reason || reconnect)
        snprintf(t->goodbye, sizeof t->goodbye, "%s", reason && t->reason[0] ? t->reason : "remote");
    t->reconnect = json_is_true(reconnect);
    return true;
}

/* ------------------------------------------------------------------ reading "to" */

/* {"api", "id", "subject", "member", "thread", "client_id", "session_id"} into j's filter. */
static bool read_to(json_t *to, mock_job_t *j, http_reply_t *out)
{
    if (!json_is_object(to) || json_object_size(to) == 0) {
        mock_bad_field(out, "to", "required: an object naming the connections: api, id, subject (API B), member "
                                  "(cable), thread, client_id or session_id (Flow)");
        return false;
    }
    const char *k, *why = NULL;
    json_t *v;
    char field[64];
    json_object_foreach(to, k, v) {
        snprintf(field, sizeof field, "to.%.40s", k);
        if (strcmp(k, "api") == 0) {
            if (!(j->filter.d = mock__dialect(dialect_cstr(v))))
                why = "expected service, cable, flow, moderation or echo";
        } else if (strcmp(k, "id") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) <= 0)
                why = "expected a connection id (a positive integer)";
            else
                j->filter.id = (uint64_t)json_integer_value(v);
        } else if (!mock__match_key(k)) {
            why = "unknown: expected api, id, subject, member, thread, client_id or session_id";
        } else {
            json_t *m = mock__match_value(k, v, &why);
            if (m && !j->filter.match && !(j->filter.match = json_object())) {
                json_decref(m);
                why = "out of memory";
            } else if (m) {
                json_object_set_new(j->filter.match, k, m);
            }
        }
        if (why) {
            mock_bad_field(out, field, why);
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ on each worker */

/* Remembers that the action reached c (the ids listed are capped; the count is not). */
static void reached(mock_part_t *p, conn_t *c)
{
    p->done++;
    if (!p->out)
        p->out = json_array();
    if (json_array_size(p->out) < MOCK_IDS_MAX)
        json_array_append_new(p->out, json_integer((json_int_t)c->id));
}

static void visit_send(mock_part_t *p, ws_session_t *s, conn_t *c, json_t *desc)
{
    (void)desc;
    const target_req_t *t = p->job->arg;
    const dialect_t *d = ws_session_dialect(s);
    int r;
    if (t->kind == SEND_EVENT)
        r = d->send_event ? d->send_event(s, t->channel, t->event, t->bytes, t->len) : 0;
    else
        r = ws_session_send(s, t->kind == SEND_TEXT ? WS_OP_TEXT : WS_OP_BINARY, t->bytes, t->len) == 0;
    if (r > 0)
        reached(p, c);
}

static void visit_close(mock_part_t *p, ws_session_t *s, conn_t *c, json_t *desc)
{
    (void)desc;
    const target_req_t *t = p->job->arg;
    const dialect_t *d = ws_session_dialect(s);
    if (t->goodbye[0] && d->kick)
        d->kick(s, t->goodbye, t->reconnect);
    ws_session_close(s, t->code, t->reason);
    reached(p, c);
}

/* {"ok", "matched", <verb>: reached, "ids": [...]} (ids sorted, at most MOCK_IDS_MAX). */
static void finish_target(mock_job_t *j, http_reply_t *out, const char *verb)
{
    size_t matched = 0, done = 0;
    json_t *ids = json_array();
    for (size_t i = 0; i < j->nparts; i++) {
        matched += j->parts[i].matched;
        done += j->parts[i].done;
        size_t k;
        json_t *v;
        json_array_foreach(j->parts[i].out, k, v) {
            if (json_array_size(ids) < MOCK_IDS_MAX)
                json_array_append(ids, v);
        }
    }
    if (j->filter.id && matched == 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "no open WebSocket connection has the id %llu", (unsigned long long)j->filter.id);
        json_decref(ids);
        mock_error(out, 404, "not_found", "id", msg);
        return;
    }
    mock_reply_json(out, 200, json_pack("{s:b, s:I, s:I, s:o}", "ok", 1, "matched", (json_int_t)matched, verb,
                                        (json_int_t)done, "ids", ids));
}

static void finish_send(mock_job_t *j, http_reply_t *out) { finish_target(j, out, "sent"); }
static void finish_close(mock_job_t *j, http_reply_t *out) { finish_target(j, out, "closed"); }

/* ------------------------------------------------------------------ the handlers */

/* Reads the body (a send or a close; "to" unless id names the connection) and runs the job. */
static void target(const http_request_t *req, dialect_ctx_t *x, uint64_t id, bool close, http_reply_t *out)
{
    json_t *body = mock_body_object(req, out, close);
    if (!body)
        return;
    mock_job_t *j = mock__job_new(x, id, out);
    target_req_t *t = j ? calloc(1, sizeof *t) : NULL;
    if (j && !t)
        mock_error(out, 503, "unavailable", NULL, "out of memory");
    bool ok = t != NULL;
    if (ok && id && json_object_get(body, "to")) {
        mock_bad_field(out, "to", "not here: the connection is the one of the path");
        ok = false;
    }
    ok = ok && (id || read_to(json_object_get(body, "to"), j, out));
    ok = ok && (close ? read_close(body, t, out) : read_payload(body, t, out));
    json_decref(body);
    if (!ok) {
        req_free(t);
        if (j)
            json_decref(j->filter.match);
        free(j);
        return;
    }
    j->arg = t;
    j->free_arg = req_free;
    j->visit = close ? visit_close : visit_send;
    j->finish = close ? finish_close : finish_send;
    mock__job_run(req, x, j, out);
}

void mock__send_one(const http_request_t *req, dialect_ctx_t *x, uint64_t id, http_reply_t *out)
{
    target(req, x, id, false, out);
}

void mock__close_one(const http_request_t *req, dialect_ctx_t *x, uint64_t id, http_reply_t *out)
{
    target(req, x, id, true, out);
}

void mock_send(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (!mock_refused(req, x, out) && mock_method(req, "POST", out))
        target(req, x, 0, false, out);
}

void mock_close(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (!mock_refused(req, x, out) && mock_method(req, "POST", out))
        target(req, x, 0, true, out);
}
