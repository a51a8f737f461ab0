/*
 * mock/tap.c — the traffic tap's registry and events (include/wshub/tap.h): the tap clients
 * of the process and their filters, each thread's copy of those filters, the events built
 * from frames and publishes, and each client's bounded queue. The clients themselves (the
 * WebSocket endpoint, the Server-Sent Events route, the flush on their worker) are
 * tap_client.c.
 *
 * Threads: frames and publishes happen on every worker, the clients are on any worker. The
 * registry is one mutex; a thread matches an event against its own copy of the filters
 * (refreshed when the registry's generation moves), so an event nobody wants takes no
 * lock. One that some client wants is built once (JSON), then, under the registry's lock,
 * copied into the queue of each client that wants it; past mock.tap_queue_bytes it is
 * dropped for that client and counted. A client's worker is called (dialect_call) when its
 * queue becomes non-empty, once per batch.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "tap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "wshub/metrics.h"
#include "wshub/util.h"

/* The payload bytes an event carries at most ("truncated":true past it). */
#define TAP_DATA_MAX 4096

atomic_uint tap_listeners;

static struct {
    uv_mutex_t lock;
    bool ready;
    tap_t **taps; /* max slots, n used */
    size_t n, max;
    size_t queue_max;
    uint64_t next_id;
} reg;
/* Moves (under reg.lock) whenever a client comes or goes: threads copy the filters again. */
static atomic_uint reg_gen = 1;

/* ------------------------------------------------------------------ the registry */

int tap__registry_init(const config_t *cfg)
{
    reg.max = (size_t)cfg->tap_max_clients;
    reg.queue_max = cfg->tap_queue_bytes;
    reg.n = 0;
    reg.next_id = 1;
    reg.taps = calloc(reg.max ? reg.max : 1, sizeof *reg.taps);
    if (!reg.taps || uv_mutex_init(&reg.lock) != 0) {
        free(reg.taps);
        reg.taps = NULL;
        return -1;
    }
    reg.ready = true;
    return 0;
}

void tap__registry_free(void)
{
    if (!reg.ready)
        return;
    uv_mutex_destroy(&reg.lock);
    free(reg.taps);
    reg.taps = NULL;
    reg.ready = false;
}

tap_t *tap__register(dialect_ctx_t *x, const tap_filter_t *f, bool *full)
{
    *full = false;
    tap_t *t = calloc(1, sizeof *t);
    if (!t || uv_mutex_init(&t->lock) != 0) {
        free(t);
        return NULL;
    }
    t->f = *f;
    t->x = x;
    atomic_init(&t->refs, 2);
    uv_mutex_lock(&reg.lock);
    if (reg.n >= reg.max) {
        uv_mutex_unlock(&reg.lock);
        uv_mutex_destroy(&t->lock);
        free(t);
        *full = true;
        return NULL;
    }
    t->id = reg.next_id++;
    reg.taps[reg.n++] = t;
    atomic_fetch_add(&reg_gen, 1);
    atomic_fetch_add(&tap_listeners, 1);
    uv_mutex_unlock(&reg.lock);
    atomic_fetch_add(&metrics_gauges.tap_clients, 1);
    return t;
}

static void free_queue(tap_t *t)
{
    uv_mutex_lock(&t->lock);
    tap_event_t *e = t->head;
    t->head = t->tail = NULL;
    atomic_fetch_sub(&metrics_gauges.tap_queued_bytes, t->qbytes);
    t->qbytes = 0;
    uv_mutex_unlock(&t->lock);
    while (e) {
        tap_event_t *next = e->next;
        free(e);
        e = next;
    }
}

void tap__unref(tap_t *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
        free_queue(t);
        uv_mutex_destroy(&t->lock);
        free(t);
    }
}

void tap__unregister(tap_t *t)
{
    uv_mutex_lock(&reg.lock);
    for (size_t i = 0; i < reg.n; i++) {
        if (reg.taps[i] == t) {
            reg.taps[i] = reg.taps[--reg.n];
            atomic_fetch_add(&reg_gen, 1);
            atomic_fetch_sub(&tap_listeners, 1);
            atomic_fetch_sub(&metrics_gauges.tap_clients, 1);
            break;
        }
    }
    uv_mutex_unlock(&reg.lock);
    t->closed = true;
    free_queue(t);
    tap__unref(t); /* the registry's */
    tap__unref(t); /* the caller's */
}

tap_event_t *tap__pop(tap_t *t, uint64_t *dropped)
{
    uv_mutex_lock(&t->lock);
    tap_event_t *e = t->head;
    if (e) {
        t->head = e->next;
        if (!t->head)
            t->tail = NULL;
        t->qbytes -= e->len;
        atomic_fetch_sub(&metrics_gauges.tap_queued_bytes, e->len);
    }
    *dropped = t->dropped;
    t->dropped = 0;
    if (!e)
        t->scheduled = false;
    uv_mutex_unlock(&t->lock);
    return e;
}

/* Queues a copy of text for t (under reg.lock): dropped past mock.tap_queue_bytes. Calls
 * t's worker when nothing has called it yet for this batch. */
static void push(tap_t *t, const char *text, size_t len)
{
    tap_event_t *e = malloc(sizeof *e + len);
    if (e) {
        e->next = NULL;
        e->len = len;
        memcpy(e->text, text, len);
    }
    uv_mutex_lock(&t->lock);
    bool fits = e && t->qbytes + len <= reg.queue_max;
    if (fits) {
        if (t->tail)
            t->tail->next = e;
        else
            t->head = e;
        t->tail = e;
        t->qbytes += len;
        atomic_fetch_add(&metrics_gauges.tap_queued_bytes, len);
    } else {
        t->dropped++;
    }
    bool call = !t->scheduled;
    t->scheduled = true;
    uv_mutex_unlock(&t->lock);
    if (!fits)
        free(e);
    atomic_fetch_add(fits ? &metrics_gauges.tap_events : &metrics_gauges.tap_dropped, 1);
    if (call) {
        atomic_fetch_add(&t->refs, 1);
        if (dialect_call(t->x, tap__flush_call, t) != 0) {
            uv_mutex_lock(&t->lock);
            t->scheduled = false;
            uv_mutex_unlock(&t->lock);
            tap__unref(t);
        }
    }
}

/* ------------------------------------------------------------------ events and filters */

enum { EV_FRAME, EV_PUBLISH };

typedef struct tap_ev {
    int kind;
    /* EV_FRAME */
    int ep, dir, opcode;
    uint64_t conn;
    const uint8_t *payload;
    size_t len;
    /* a fan-out frame's channel, or a publish's */
    const char *chan;
    size_t chan_len;
    /* EV_PUBLISH */
    const char *api, *event, *data;
    size_t data_len;
    long long delivered;
} tap_ev_t;

static bool channel_match(const tap_filter_t *f, const char *ch, size_t len)
{
    if (f->prefix)
        return len >= f->channel_len && memcmp(ch, f->channel, f->channel_len) == 0;
    return len == f->channel_len && memcmp(ch, f->channel, len) == 0;
}

static bool wanted(const tap_filter_t *f, const tap_ev_t *e)
{
    if (e->kind == EV_PUBLISH)
        return (!f->kinds || (f->kinds & TAP_K_PUBLISH)) && (!f->apis || (f->apis & 1u << e->ep)) && !f->conn &&
               !f->dirs && (!f->channel_len || channel_match(f, e->chan, e->chan_len));
    if ((f->kinds && !(f->kinds & TAP_K_FRAME)) || (f->apis && !(f->apis & 1u << e->ep)) ||
        (f->dirs && !(f->dirs & e->dir)) || (f->conn && f->conn != e->conn))
        return false;
    if (!f->channel_len)
        return true;
    if (e->chan)
        return channel_match(f, e->chan, e->chan_len);
    /* Not a fan-out frame: one that names the channel (a subscribe, its confirmation). */
    return f->channel_len <= e->len && memmem(e->payload, e->len, f->channel, f->channel_len) != NULL;
}

/* Each thread's copy of the filters, taken when reg_gen moves (freed with the thread). */
typedef struct view {
    unsigned gen;
    size_t n;
    tap_filter_t f[];
} view_t;

static _Thread_local view_t *tl_view;
static pthread_key_t view_key;
static pthread_once_t view_once = PTHREAD_ONCE_INIT;

static void view_key_make(void) { pthread_key_create(&view_key, free); }

static view_t *view(void)
{
    unsigned gen = atomic_load_explicit(&reg_gen, memory_order_acquire);
    if (tl_view && tl_view->gen == gen)
        return tl_view;
    pthread_once(&view_once, view_key_make);
    uv_mutex_lock(&reg.lock);
    view_t *v = malloc(sizeof *v + reg.n * sizeof v->f[0]);
    if (v) {
        v->gen = atomic_load_explicit(&reg_gen, memory_order_relaxed);
        v->n = reg.n;
        for (size_t i = 0; i < reg.n; i++)
            v->f[i] = reg.taps[i]->f;
    }
    uv_mutex_unlock(&reg.lock);
    if (!v)
        return NULL;
    free(tl_view);
    tl_view = v;
    pthread_setspecific(view_key, v);
    return v;
}

/* The payload as "data" (UTF-8 text, at most TAP_DATA_MAX bytes, cut between characters)
 * or, when it is not text, "b64". */
static void put_payload(json_t *o, const uint8_t *p, size_t len, bool text)
{
    size_t cut = len < TAP_DATA_MAX ? len : TAP_DATA_MAX;
    json_t *s = NULL;
    if (text) {
        while (cut < len && cut > 0 && (p[cut] & 0xC0) == 0x80)
            cut--;
        s = json_stringn((const char *)p, cut);
    }
    if (s) {
        json_object_set_new(o, "data", s);
    } else if (len) {
        cut = len < TAP_DATA_MAX ? len : TAP_DATA_MAX;
        char *b = malloc(4 * ((cut + 2) / 3) + 1);
        if (b) {
            EVP_EncodeBlock((unsigned char *)b, p, (int)cut);
            json_object_set_new(o, "b64", json_string(b));
            free(b);
        }
    }
    if (cut < len)
        json_object_set_new(o, "truncated", json_true());
}

static const char *opcode_name(int op)
{
    switch (op) {
    case WS_OP_TEXT: return "text";
    case WS_OP_BINARY: return "binary";
    case WS_OP_CLOSE: return "close";
    case WS_OP_PING: return "ping";
    case WS_OP_PONG: return "pong";
    default: return "continuation";
    }
}

static void put_frame(json_t *o, const tap_ev_t *e)
{
    json_object_set_new(o, "kind", json_string("frame"));
    json_object_set_new(o, "dir", json_string(e->dir == TAP_IN ? "in" : "out"));
    json_object_set_new(o, "api", json_string(endpoint_names[e->ep]));
    json_object_set_new(o, "conn", json_integer((json_int_t)e->conn));
    json_object_set_new(o, "opcode", json_string(opcode_name(e->opcode)));
    json_object_set_new(o, "len", json_integer((json_int_t)e->len));
    if (e->chan)
        json_object_set_new(o, "channel", json_stringn(e->chan, e->chan_len));
    if (e->opcode == WS_OP_CLOSE) {
        if (e->len >= 2)
            json_object_set_new(o, "code", json_integer(e->payload[0] << 8 | e->payload[1]));
        if (e->len > 2)
            put_payload(o, e->payload + 2, e->len - 2, true);
        return;
    }
    put_payload(o, e->payload, e->len, e->opcode != WS_OP_BINARY);
}

static void put_publish(json_t *o, const tap_ev_t *e)
{
    json_object_set_new(o, "kind", json_string("publish"));
    json_object_set_new(o, "api", json_string(e->api));
    json_object_set_new(o, "channel", json_stringn(e->chan, e->chan_len));
    json_object_set_new(o, "event", json_string(e->event));
    json_t *data = e->data_len <= TAP_DATA_MAX ? json_loadb(e->data, e->data_len, JSON_ALLOW_NUL, NULL) : NULL;
    if (data)
        json_object_set_new(o, "data", data);
    else
        put_payload(o, (const uint8_t *)e->data, e->data_len, true);
    json_object_set_new(o, "delivered", e->delivered >= 0 ? json_integer(e->delivered) : json_null());
}

/* The event as one line of JSON (malloc'd), or NULL. */
static char *build(const tap_ev_t *e, size_t *len)
{
    char t[32];
    util_iso8601_now(t);
    json_t *o = json_pack("{s:s}", "t", t);
    if (!o)
        return NULL;
    if (e->kind == EV_FRAME)
        put_frame(o, e);
    else
        put_publish(o, e);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    *len = text ? strlen(text) : 0;
    return text;
}

/* Hands e to every client that wants it; a thread whose filters want none of it stops at
 * its own copy of them, without a lock. */
static void dispatch(const tap_ev_t *e)
{
    view_t *v = view();
    size_t i = 0;
    while (v && i < v->n && !wanted(&v->f[i], e))
        i++;
    if (!v || i == v->n)
        return;
    size_t len;
    char *text = build(e, &len);
    if (!text)
        return;
    uv_mutex_lock(&reg.lock);
    for (i = 0; i < reg.n; i++)
        if (wanted(&reg.taps[i]->f, e))
            push(reg.taps[i], text, len);
    uv_mutex_unlock(&reg.lock);
    free(text);
}

/* ------------------------------------------------------------------ the hooks */

static _Thread_local const char *tl_chan;
static _Thread_local size_t tl_chan_len;

void tap_fanout_begin(const char *channel, size_t len)
{
    tl_chan = channel;
    tl_chan_len = len;
}

void tap_fanout_end(void) { tl_chan = NULL; }

void tap_frame(int ep, uint64_t conn, int dir, int opcode, const void *payload, size_t len)
{
    if (ep == EP_TAP || !reg.ready)
        return;
    tap_ev_t e = {.kind = EV_FRAME, .ep = ep, .dir = dir, .opcode = opcode, .conn = conn,
                  .payload = payload, .len = len};
    dispatch(&e);
}

void tap_frame_prepared(int ep, uint64_t conn, const frame_t *f)
{
    if (ep == EP_TAP || !reg.ready || f->len < 2)
        return;
    /* A server frame: unmasked, FIN set (frame_build), a 7-, 16- or 64-bit length. */
    const uint8_t *d = f->data;
    size_t hl = (d[1] & 0x7f) < 126 ? 2 : (d[1] & 0x7f) == 126 ? 4 : 10;
    if (f->len < hl)
        return;
    tap_ev_t e = {.kind = EV_FRAME, .ep = ep, .dir = TAP_OUT, .opcode = d[0] & 0x0f, .conn = conn,
                  .payload = d + hl, .len = f->len - hl, .chan = tl_chan, .chan_len = tl_chan ? tl_chan_len : 0};
    dispatch(&e);
}

void tap_publish(const char *api, const char *channel, size_t channel_len, const char *event, const char *data,
                 size_t data_len, long long delivered)
{
    if (!reg.ready)
        return;
    int ep = endpoint_of_api(api); /* the publisher's endpoint bit: a dialect's name is its endpoint's */
    tap_ev_t e = {.kind = EV_PUBLISH, .ep = ep < 0 ? TAP_API_SERVER : ep, .api = api, .chan = channel,
                  .chan_len = channel_len, .event = event, .data = data, .data_len = data_len, .delivered = delivered};
    dispatch(&e);
}

/* ------------------------------------------------------------------ the client's own events */

char *tap__open_event(const tap_t *t, size_t *len)
{
    char ts[32];
    util_iso8601_now(ts);
    const tap_filter_t *f = &t->f;
    json_t *filter = json_object(), *apis = json_array();
    for (int ep = 0; ep < EP_TAP; ep++)
        if (f->apis & 1u << ep)
            json_array_append_new(apis, json_string(ep == TAP_API_SERVER ? "server" : endpoint_names[ep]));
    if (f->apis)
        json_object_set_new(filter, "api", apis);
    else
        json_decref(apis);
    if (f->conn)
        json_object_set_new(filter, "conn", json_integer((json_int_t)f->conn));
    if (f->channel_len || f->prefix)
        json_object_set_new(filter, "channel", json_pack("s+", f->channel, f->prefix ? "*" : ""));
    if (f->dirs == TAP_IN || f->dirs == TAP_OUT)
        json_object_set_new(filter, "dir", json_string(f->dirs == TAP_IN ? "in" : "out"));
    if (f->kinds == TAP_K_FRAME || f->kinds == TAP_K_PUBLISH)
        json_object_set_new(filter, "kind", json_string(f->kinds == TAP_K_FRAME ? "frame" : "publish"));
    json_t *o = json_pack("{s:s, s:s, s:I, s:o}", "t", ts, "kind", "open", "tap", (json_int_t)t->id, "filter", filter);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    *len = text ? strlen(text) : 0;
    return text;
}

char *tap__dropped_event(uint64_t n, size_t *len)
{
    char ts[32];
    util_iso8601_now(ts);
    json_t *o = json_pack("{s:s, s:s, s:I}", "t", ts, "kind", "dropped", "n", (json_int_t)n);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    *len = text ? strlen(text) : 0;
    return text;
}
