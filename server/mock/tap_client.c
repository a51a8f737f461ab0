/*
 * mock/tap_client.c — the traffic tap's clients (README "Mock backend"): /api/tap as a
 * WebSocket (the tap dialect: every event one text message) or, asked without an upgrade,
 * as Server-Sent Events (every event one `data:` line). Both need mock.enabled and the API
 * key (Authorization: Bearer, or ?key= for browsers, which cannot set headers on either),
 * take their filters from the query (api, conn, channel, dir, kind) and get first an
 * {"kind":"open"} event. What a WebSocket client sends is ignored.
 *
 * A client's events are sent on its worker (tap__flush_call) while its connection has less
 * than half of limits.max_queued_bytes queued; past that they wait in the tap's queue, which
 * drops past mock.tap_queue_bytes and tells the client how many ({"kind":"dropped"}): a tap
 * that cannot keep up loses events, it is not closed as a slow consumer.
 */
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "wshub/list.h"
#include "wshub/metrics.h"
#include "wshub/mock.h"
#include "wshub/ws.h"

#define RETRY_MS 50 /* a backed-up client is tried again this often (the wtimer's resolution) */

/* ------------------------------------------------------------------ sending */

static void send_text(tap_t *t, const char *text, size_t len)
{
    if (t->s) {
        ws_session_send_text(t->s, text, len);
        return;
    }
    char *line = t->st ? malloc(len + 8) : NULL;
    if (!line)
        return;
    memcpy(line, "data: ", 6);
    memcpy(line + 6, text, len);
    memcpy(line + 6 + len, "\n\n", 2);
    http_stream_write(t->st, line, len + 8);
    free(line);
}

static size_t backlog(const tap_t *t)
{
    return t->s ? ws_session_queued(t->s) : t->st ? http_stream_queued(t->st) : 0;
}

static void flush(tap_t *t);

static void on_retry(wtimer_t *w)
{
    tap_t *t = container_of(w, tap_t, retry);
    t->retry_armed = false;
    flush(t);
}

/* Sends the queue in order while the client's connection keeps up, the count of what was
 * dropped before what follows it. */
static void flush(tap_t *t)
{
    size_t max = dialect_config(t->x)->max_queued_bytes / 2;
    while (!t->closed && (t->s || t->st)) {
        if (backlog(t) >= max) {
            if (!t->retry_armed &&
                dialect_timer_start(t->x, &t->retry, dialect_now(t->x) + RETRY_MS, on_retry) == 0)
                t->retry_armed = true;
            if (t->retry_armed)
                return;
        }
        uint64_t dropped;
        tap_event_t *e = tap__pop(t, &dropped);
        if (dropped) {
            size_t len;
            char *notice = tap__dropped_event(dropped, &len);
            if (notice)
                send_text(t, notice, len);
            free(notice);
        }
        if (!e)
            return;
        send_text(t, e->text, e->len);
        free(e);
    }
}

void tap__flush_call(void *arg)
{
    tap_t *t = arg;
    if (!t->closed)
        flush(t);
    tap__unref(t);
}

static void start(tap_t *t)
{
    size_t len;
    char *open = tap__open_event(t, &len);
    if (open)
        send_text(t, open, len);
    free(open);
    flush(t); /* what came between the registration and now */
}

static void stop(tap_t *t)
{
    if (t->retry_armed)
        dialect_timer_stop(t->x, &t->retry);
    t->retry_armed = false;
    t->s = NULL;
    t->st = NULL;
    tap__unregister(t);
}

/* ------------------------------------------------------------------ admission and filters */

/* The API key as Authorization: Bearer or ?key=, compared in constant time. */
static bool key_ok(const http_request_t *req, dialect_ctx_t *x)
{
    if (api_authorized(req, x))
        return true;
    const char *want = dialect_live(x)->cfg.api_key ? dialect_live(x)->cfg.api_key : API_DEV_KEY;
    char key[1024];
    const char *k = http_request_query_param(req, "key", key, sizeof key);
    return k && strlen(k) == strlen(want) && CRYPTO_memcmp(k, want, strlen(want)) == 0;
}

bool mock_tap_authorized(const http_request_t *req, dialect_ctx_t *x)
{
    return dialect_live(x)->cfg.mock_enabled && key_ok(req, x);
}

/* Every query parameter is one of these (a misspelt filter must not pass for none). */
static const char *const params[] = {"key", "api", "conn", "channel", "dir", "kind", NULL};

static bool unknown_param(const http_request_t *req, char *name, size_t cap)
{
    size_t qlen;
    const char *q = http_request_query(req, &qlen), *end = q + qlen;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        size_t n = (size_t)((eq ? eq : stop) - q);
        bool known = n == 0;
        for (size_t i = 0; params[i] && !known; i++)
            known = strlen(params[i]) == n && memcmp(params[i], q, n) == 0;
        if (!known) {
            snprintf(name, cap, "%.*s", (int)(n < cap ? n : cap - 1), q);
            return true;
        }
        q = stop + 1;
    }
    return false;
}

/* api=service,cable: the bits of those endpoints ("server": the server API's publishes),
 * or 0 with *why. */
static uint32_t parse_apis(char *v, const char **why)
{
    static const char msg[] = "expected a comma-separated list of echo, service, cable, moderation, flow, server";
    uint32_t bits = 0;
    for (char *save = NULL, *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int ep = strcmp(tok, "server") == 0 ? TAP_API_SERVER : endpoint_of_api(tok);
        if (ep < 0) {
            *why = msg;
            return 0;
        }
        bits |= 1u << ep;
    }
    if (!bits)
        *why = msg;
    return bits;
}

static const char *parse_channel(const char *v, tap_filter_t *f)
{
    size_t len = strlen(v);
    if (len == 0 || len > API_MAX_CHANNEL)
        return "expected 1 to 256 bytes (a trailing * matches a prefix)";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x21 || v[i] == 0x7f)
            return "must not contain spaces or control characters";
    f->prefix = v[len - 1] == '*';
    f->channel_len = len - f->prefix;
    memcpy(f->channel, v, f->channel_len);
    f->channel[f->channel_len] = '\0';
    return NULL;
}

/* One parameter into f: NULL, or why its value is wrong. */
static const char *parse_param(const char *name, char *v, tap_filter_t *f)
{
    const char *why = NULL;
    if (strcmp(name, "api") == 0) {
        f->apis = parse_apis(v, &why);
    } else if (strcmp(name, "conn") == 0) {
        char *end;
        unsigned long long id = strtoull(v, &end, 10);
        if (!*v || *end || *v == '-' || *v == '+' || id == 0)
            why = "expected a connection id (a positive integer, as the events' \"conn\")";
        f->conn = id;
    } else if (strcmp(name, "channel") == 0) {
        why = parse_channel(v, f);
    } else if (strcmp(name, "dir") == 0) {
        f->dirs = strcmp(v, "in") == 0 ? TAP_IN : strcmp(v, "out") == 0 ? TAP_OUT : 0;
        why = f->dirs ? NULL : "expected in or out";
    } else if (strcmp(name, "kind") == 0) {
        f->kinds = strcmp(v, "frame") == 0 ? TAP_K_FRAME : strcmp(v, "publish") == 0 ? TAP_K_PUBLISH : 0;
        why = f->kinds ? NULL : "expected frame or publish";
    }
    return why;
}

/* The request may open a tap (mock.enabled, the key, good filters in *f); otherwise *out
 * holds the refusal: 404, 401, or 400 naming the field. */
static bool admit(const http_request_t *req, dialect_ctx_t *x, tap_filter_t *f, http_reply_t *out)
{
    if (!dialect_live(x)->cfg.mock_enabled) {
        mock_refused(req, x, out);
        return false;
    }
    if (!key_ok(req, x)) {
        mock_error(out, 401, "unauthorized", NULL,
                   "the API key is required: Authorization: Bearer <api.key>, or ?key=<api.key>");
        out->extra = "WWW-Authenticate: Bearer\r\n";
        return false;
    }
    char name[64];
    if (unknown_param(req, name, sizeof name)) {
        mock_bad_field(out, name, "unknown parameter: the filters are api, conn, channel, dir and kind");
        return false;
    }
    memset(f, 0, sizeof *f);
    for (size_t i = 1; params[i]; i++) {
        char v[API_MAX_CHANNEL + 2];
        const char *val = http_request_query_param(req, params[i], v, sizeof v);
        const char *why = val ? parse_param(params[i], v, f)
                          : http_request_has_query_param(req, params[i]) ? "too long, or holds %00" : NULL;
        if (why) {
            mock_bad_field(out, params[i], why);
            return false;
        }
    }
    return true;
}

/* Registers the client, or answers 503 (mock.tap_max_clients) / 500 into *out. */
static tap_t *open_tap(dialect_ctx_t *x, const tap_filter_t *f, http_reply_t *out)
{
    bool full;
    tap_t *t = tap__register(x, f, &full);
    if (!t && full) {
        mock_error(out, 503, "too_many_taps", NULL,
                   "mock.tap_max_clients tap clients are connected: close one, or raise the key");
        out->extra = "Retry-After: 1\r\n";
    } else if (!t) {
        mock_error(out, 500, "internal_error", NULL, "out of memory");
    }
    return t;
}

/* ------------------------------------------------------------------ Server-Sent Events */

static void sse_closed(void *arg)
{
    tap_t *t = arg;
    http_stream_end(t->st);
    stop(t);
}

void mock_tap_events(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    tap_filter_t f;
    if (!admit(req, x, &f, out))
        return;
    if (strcmp(http_request_method(req), "HEAD") == 0) {
        out->status = 200;
        out->ctype = "text/event-stream; charset=utf-8";
        return;
    }
    tap_t *t = open_tap(x, &f, out);
    if (!t)
        return;
    t->st = http_stream_open(req, "text/event-stream; charset=utf-8", sse_closed, t);
    if (!t->st) {
        stop(t);
        mock_error(out, 500, "internal_error", NULL, "out of memory");
        return;
    }
    start(t);
}

/* ------------------------------------------------------------------ WebSocket */

static int refusal_reason(int status)
{
    switch (status) {
    case 401: return HS_UNAUTHORIZED;
    case 404: return HS_NOT_FOUND;
    case 503: return HS_OVER_CAPACITY;
    default: return HS_BAD_REQUEST;
    }
}

static void ws_accept(const http_request_t *req, dialect_ctx_t *x, dialect_accept_t *out)
{
    http_reply_t rep = {0};
    tap_filter_t f;
    tap_t *t = admit(req, x, &f, &rep) ? open_tap(x, &f, &rep) : NULL;
    if (t) {
        out->data = t;
        return;
    }
    out->status = rep.status;
    out->body = rep.body;
    out->hs_reason = refusal_reason(rep.status);
    out->why = "tap refused";
}

static void ws_open(ws_session_t *s)
{
    tap_t *t = ws_session_data(s);
    t->s = s;
    start(t);
}

static void ws_message(ws_session_t *s, int opcode, const uint8_t *msg, size_t len)
{
    (void)s, (void)opcode, (void)msg, (void)len; /* a tap only listens */
}

static void ws_close(ws_session_t *s)
{
    tap_t *t = ws_session_data(s);
    if (t)
        stop(t);
    ws_session_set_data(s, NULL);
}

static int process_init(const config_t *cfg, char *err, size_t errlen)
{
    if (tap__registry_init(cfg) == 0)
        return 0;
    snprintf(err, errlen, "mock: out of memory for the traffic tap's registry");
    return -1;
}

const dialect_t dialect_tap = {
    .name = "tap",
    .path = "/api/tap",
    .endpoint = EP_TAP,
    .process_init = process_init,
    .process_free = tap__registry_free,
    .accept = ws_accept,
    .on_open = ws_open,
    .on_message = ws_message,
    .on_close = ws_close,
};
