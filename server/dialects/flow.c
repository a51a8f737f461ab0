/*
 * flow — API D: Flow.ai's socket API (PROTOCOLS.md §D, seeds/flow-socket-api.txt, and the
 * flowai-js SDK's expectations summarised there). GET /socket.info hands out a single-use
 * /ws/<token> endpoint (valid flow.token_ttl_ms); the socket speaks {type, payload}:
 * ping -> pong, message.send -> message.delivered then the bot's message.received.
 *
 * Owns: endpoint tickets and per-thread histories (process-wide, one mutex), CORS for the
 * REST calls, the socket's messages and its idle timeout, the bot (echo, or rules from
 * flow.bot_file, with an optional reply delay announced by agent.typing). Bot replies and
 * publishes to hub channel thread:<threadId> reach every socket of that thread through the
 * hub, in Flow's message.received envelope. Only the server message types the SDK knows
 * are ever sent.
 * Never: touches sockets or the hub's internals.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <uv.h>

#include "wshub/auth.h"
#include "wshub/dialect.h"
#include "wshub/flow.h"
#include "wshub/http.h"
#include "wshub/hub.h"
#include "wshub/log.h"
#include "wshub/metrics.h"
#include "wshub/strmap.h"
#include "wshub/ws.h"
#include "wshub/wtimer.h"

#define THREAD_PREFIX "thread:"
#define MAX_ID 256

/* ------------------------------------------------------------------ process-wide state */

/*
 * Bounded, so that no client, without any credential, can grow the daemon (issue 11):
 * unused tickets by flow.max_tickets (then /socket.info answers 503) and freed when they
 * expire; thread histories by flow.history_limit entries and flow.max_history_bytes per
 * thread, flow.max_history_total_bytes in all (the least recently active threads lose their
 * oldest entries first), MAX_THREADS threads, and flow.thread_ttl_s: a thread without a
 * socket and without activity for that long is forgotten. Gauges: metrics_gauges.flow_*.
 */

typedef struct ticket {
    char *client_id, *session_id, *thread_id; /* thread_id may be NULL */
    uint64_t expires_ms;                      /* uv_hrtime() clock */
    strmap_entry_t *e;                        /* in G.tickets */
    list_node_t node;                         /* in G.ticket_order, oldest first */
} ticket_t;

/* One history entry as its compact JSON text {type, payload, createdAt}: a third of the
 * memory of the json_t tree, and its size is what the byte limits count. */
typedef struct hist_entry {
    size_t len;
    bool received; /* a message.received (what GET /thread.unnoticed lists) */
    char text[];
} hist_entry_t;

typedef struct thread_log {
    hist_entry_t **items; /* oldest first (under lock) */
    size_t n, cap;
    size_t noticed;       /* items before this index were noticed (thread.noticed) */
    size_t bytes;         /* entry_bytes() of the items */
    uint64_t active_ms;   /* last message, join or leave (now_ms() clock) */
    uint32_t sockets;     /* sockets of this thread: while > 0 it is never freed */
    strmap_entry_t *e;
    list_node_t lru;      /* in G.lru, least recently active first */
} thread_log_t;

/* Threads kept at once: past it the least recently active thread without a socket is
 * dropped, so clients inventing thread ids cannot grow the daemon without bound. */
#define MAX_THREADS 10000
/* How often worker 0 frees expired tickets and threads. */
#define SWEEP_MS 500

/* A bot rule: text containing `match` (case-insensitive) or an event attachment named
 * `event` gets `reply`, with optional quick replies. */
typedef struct bot_rule {
    char *match, *event, *reply;
    json_t *quick_replies; /* array of strings, or NULL */
} bot_rule_t;

static struct {
    uv_mutex_t lock;
    strmap_t tickets;         /* token -> ticket_t* */
    list_node_t ticket_order; /* ticket_t.node */
    strmap_t threads;         /* thread id -> thread_log_t* */
    list_node_t lru;          /* thread_log_t.lru */
    size_t history_bytes;     /* of every thread */
    bot_rule_t *rules;
    size_t nrules;
    int users; /* workers started (the state is freed when the last stops) */
} G;
static uv_once_t g_once = UV_ONCE_INIT;
static void g_init(void)
{
    uv_mutex_init(&G.lock);
    list_init(&G.lru);
    list_init(&G.ticket_order);
}

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

/* Called with the lock held, after every change. */
static void publish_gauges(void)
{
    atomic_store_explicit(&metrics_gauges.flow_tickets, G.tickets.count, memory_order_relaxed);
    atomic_store_explicit(&metrics_gauges.flow_threads, G.threads.count, memory_order_relaxed);
    atomic_store_explicit(&metrics_gauges.flow_history_bytes, G.history_bytes, memory_order_relaxed);
}

static void ticket_free(ticket_t *t)
{
    free(t->client_id);
    free(t->session_id);
    free(t->thread_id);
    free(t);
}

/* Takes a ticket out of the store (lock held); the caller frees it. */
static void ticket_unlink(ticket_t *t)
{
    strmap_remove(&G.tickets, t->e);
    list_remove(&t->node);
}

/* Frees the expired tickets (lock held). They expire in the order they were made (one TTL);
 * a TTL shortened by a reload only delays the freeing of the later ones. */
static void purge_tickets(uint64_t now, metrics_t *mt)
{
    list_node_t *n;
    while ((n = list_first(&G.ticket_order)) && container_of(n, ticket_t, node)->expires_ms <= now) {
        ticket_t *t = container_of(n, ticket_t, node);
        ticket_unlink(t);
        ticket_free(t);
        metrics_add(&mt->flow_tickets_expired, 1);
    }
}

static size_t entry_bytes(const hist_entry_t *h) { return sizeof *h + sizeof h + h->len; }

static void drop_oldest(thread_log_t *t, metrics_t *mt, int reason)
{
    hist_entry_t *h = t->items[0];
    t->bytes -= entry_bytes(h);
    G.history_bytes -= entry_bytes(h);
    free(h);
    memmove(t->items, t->items + 1, --t->n * sizeof *t->items);
    if (t->noticed)
        t->noticed--;
    if (mt)
        metrics_add(&mt->flow_history_dropped[reason], 1);
}

static void thread_free(thread_log_t *t, metrics_t *mt, int reason)
{
    while (t->n)
        drop_oldest(t, mt, reason);
    free(t->items);
    list_remove(&t->lru);
    strmap_remove(&G.threads, t->e);
    free(t);
}

static void thread_touch(thread_log_t *t)
{
    t->active_ms = now_ms();
    list_remove(&t->lru);
    list_insert_tail(&G.lru, &t->lru);
}

/* The thread's log, made if new (lock held); NULL when out of memory. */
static thread_log_t *thread_get(const char *thread, size_t len, metrics_t *mt)
{
    strmap_entry_t *e = strmap_find(&G.threads, thread, len);
    if (e)
        return e->value;
    thread_log_t *t = calloc(1, sizeof *t);
    if (!t || !(t->e = strmap_insert(&G.threads, thread, len, t))) {
        free(t);
        return NULL;
    }
    list_init(&t->lru);
    thread_touch(t);
    /* Over the count: forget the least recently active thread that no socket is on. */
    for (list_node_t *n = G.lru.next; G.threads.count > MAX_THREADS && n != &G.lru;) {
        thread_log_t *old = container_of(n, thread_log_t, lru);
        n = n->next;
        if (!old->sockets && old != t)
            thread_free(old, mt, FLOW_DROP_THREADS);
    }
    return t;
}

/* Past flow.max_history_total_bytes: the least recently active threads lose their oldest
 * entries first; one left empty and without a socket is forgotten. */
static void trim_total(const config_t *cfg, metrics_t *mt)
{
    for (list_node_t *n = G.lru.next; G.history_bytes > cfg->flow_max_history_total_bytes && n != &G.lru;) {
        thread_log_t *t = container_of(n, thread_log_t, lru);
        n = n->next;
        while (t->n && G.history_bytes > cfg->flow_max_history_total_bytes)
            drop_oldest(t, mt, FLOW_DROP_TOTAL_BYTES);
        if (!t->n && !t->sockets)
            thread_free(t, mt, FLOW_DROP_TOTAL_BYTES);
    }
}

/* Frees expired tickets, and threads without a socket quiet for flow.thread_ttl_s. */
static void sweep(dialect_ctx_t *x)
{
    const config_t *cfg = &dialect_live(x)->cfg;
    uint64_t now = now_ms(), ttl = (uint64_t)cfg->flow_thread_ttl_s * 1000;
    uv_mutex_lock(&G.lock);
    purge_tickets(now, dialect_metrics(x));
    for (list_node_t *n = G.lru.next; n != &G.lru;) {
        thread_log_t *t = container_of(n, thread_log_t, lru);
        n = n->next;
        if (now - t->active_ms < ttl)
            break; /* the rest were active later */
        if (!t->sockets)
            thread_free(t, dialect_metrics(x), FLOW_DROP_EXPIRED);
    }
    publish_gauges();
    uv_mutex_unlock(&G.lock);
}

static void free_all(void)
{
    list_node_t *n;
    while ((n = list_first(&G.ticket_order))) {
        ticket_t *t = container_of(n, ticket_t, node);
        ticket_unlink(t);
        ticket_free(t);
    }
    while ((n = list_first(&G.lru)))
        thread_free(container_of(n, thread_log_t, lru), NULL, 0);
    strmap_clear(&G.tickets);
    strmap_clear(&G.threads);
    publish_gauges();
}

/* A socket joins (+1) or leaves (-1) a thread; returns its log (NULL when out of memory). */
static thread_log_t *thread_sockets(const char *thread, thread_log_t *t, int delta, metrics_t *mt)
{
    uv_mutex_lock(&G.lock);
    if (!t)
        t = thread_get(thread, strlen(thread), mt);
    if (t) {
        t->sockets += (uint32_t)delta;
        thread_touch(t);
    }
    publish_gauges();
    uv_mutex_unlock(&G.lock);
    return t;
}

static json_t *history_entry(const char *type, json_t *payload)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return json_pack("{s:s, s:O, s:I}", "type", type, "payload", payload,
                     "createdAt", (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Appends to a thread's bounded history (as text: the log outlives the caller's JSON). */
static void history_add(dialect_ctx_t *x, const char *thread, const char *type, json_t *payload)
{
    const config_t *cfg = &dialect_live(x)->cfg;
    if (cfg->flow_history_limit <= 0)
        return;
    json_t *entry = history_entry(type, payload);
    size_t len = entry ? json_dumpb(entry, NULL, 0, JSON_COMPACT) : 0;
    hist_entry_t *h = len ? malloc(sizeof *h + len) : NULL;
    if (h) {
        h->len = json_dumpb(entry, h->text, len, JSON_COMPACT);
        h->received = strcmp(type, "message.received") == 0;
    }
    json_decref(entry);
    if (!h)
        return;
    metrics_t *mt = dialect_metrics(x);
    uv_mutex_lock(&G.lock);
    thread_log_t *t = thread_get(thread, strlen(thread), mt);
    if (t && t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 8;
        hist_entry_t **ni = realloc(t->items, ncap * sizeof *ni);
        if (ni) {
            t->items = ni;
            t->cap = ncap;
        }
    }
    if (t && t->n < t->cap) {
        t->items[t->n++] = h;
        t->bytes += entry_bytes(h);
        G.history_bytes += entry_bytes(h);
        h = NULL;
        thread_touch(t);
        while (t->n > (size_t)cfg->flow_history_limit)
            drop_oldest(t, NULL, 0);
        while (t->n && t->bytes > cfg->flow_max_history_bytes)
            drop_oldest(t, mt, FLOW_DROP_THREAD_BYTES);
        if (!t->n && !t->sockets) /* its one entry was over the bound: nothing left to keep */
            thread_free(t, NULL, 0);
        trim_total(cfg, mt);
    }
    publish_gauges();
    uv_mutex_unlock(&G.lock);
    free(h);
}

/* ------------------------------------------------------------------ bot replies */

static json_t *bot_originator(void)
{
    return json_pack("{s:s, s:s, s:s, s:{s:s}}", "userId", "flowai|system", "name", "system", "role", "bot",
                     "profile", "fullName", "system");
}

/* The message.received payload: {threadId, messages:[{…, responses:[text]}], originator};
 * text is len bytes (NULs included: a text round-trips exactly). */
static json_t *reply_payload(const char *thread, const char *text, size_t len, json_t *reply_to, json_t *quick)
{
    json_t *resp_payload = json_pack("{s:s%}", "text", text, len);
    if (quick && json_array_size(quick)) {
        json_t *qr = json_array();
        size_t i;
        json_t *q;
        json_array_foreach(quick, i, q) {
            if (json_is_string(q))
                json_array_append_new(qr, json_pack("{s:s, s:O, s:O}", "type", "text", "label", q, "value", q));
        }
        json_object_set_new(resp_payload, "quickReplies", qr);
    }
    return json_pack("{s:s, s:[{s:s%, s:b, s:O, s:o, s:[], s:[{s:s, s:i, s:o}]}], s:o}", "threadId", thread,
                     "messages", "fallback", text, len, "silent", 0, "replyTo", reply_to ? reply_to : json_null(),
                     "originator", bot_originator(), "actions", "responses", "type", "text", "delay", 0, "payload",
                     resp_payload, "originator", bot_originator());
}

/* Does text (len bytes, NULs included) contain needle, ignoring ASCII case? */
static bool contains_nocase(const char *text, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(text + i, needle, n) == 0)
            return true;
    return false;
}

/* What the bot answers to a message.send payload: a rule, or the echo. */
static json_t *bot_reply(const char *thread, json_t *payload)
{
    json_t *speech = json_object_get(payload, "speech");
    json_t *att = json_object_get(payload, "attachment");
    json_t *event = NULL; /* the event's name (a string) */
    if (json_is_object(att) && dialect_str_is(json_object_get(att, "type"), "event") &&
        json_is_string(json_object_get(json_object_get(att, "payload"), "name")))
        event = json_object_get(json_object_get(att, "payload"), "name");
    for (size_t i = 0; i < G.nrules; i++) {
        bot_rule_t *r = &G.rules[i];
        bool hit = r->event ? (dialect_cstr(event) && strcasecmp(json_string_value(event), r->event) == 0)
                            : (r->match && contains_nocase(json_string_value(speech), json_string_length(speech),
                                                           r->match));
        if (hit)
            return reply_payload(thread, r->reply, strlen(r->reply), speech, r->quick_replies);
    }
    /* The whole text, however long (cutting it could also split a UTF-8 character), and
     * byte for byte: a NUL inside is echoed too. */
    const char *prefix = event ? "Event received: " : "You said: ";
    json_t *what = event ? event : speech;
    size_t plen = strlen(prefix), wlen = json_string_length(what);
    char *text = malloc(plen + wlen + 1);
    if (!text)
        return NULL;
    memcpy(text, prefix, plen);
    if (wlen)
        memcpy(text + plen, json_string_value(what), wlen);
    json_t *r = reply_payload(thread, text, plen + wlen, speech, NULL);
    free(text);
    return r;
}

static int flow_bot_load(const char *path, char *err, size_t errlen)
{
    uv_once(&g_once, g_init);
    if (!path)
        return 0;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    json_t *rules = json_is_object(root) ? json_object_get(root, "rules") : root;
    if (!json_is_array(rules)) {
        snprintf(err, errlen, "flow.bot_file: %s: %s", path,
                 root ? "expected {\"rules\": [...]} or an array of rules" : je.text);
        json_decref(root);
        return -1;
    }
    G.rules = calloc(json_array_size(rules) + 1, sizeof *G.rules);
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        const char *match = json_string_value(json_object_get(r, "match"));
        const char *event = json_string_value(json_object_get(r, "event"));
        const char *reply = json_string_value(json_object_get(r, "reply"));
        json_t *quick = json_object_get(r, "quick_replies");
        if (!reply || (!match && !event) || (quick && !json_is_array(quick))) {
            snprintf(err, errlen, "flow.bot_file: %s: rule %zu needs \"reply\" and \"match\" or \"event\"", path, i);
            json_decref(root);
            return -1;
        }
        bot_rule_t *b = &G.rules[G.nrules++];
        b->match = match ? strdup(match) : NULL;
        b->event = event ? strdup(event) : NULL;
        b->reply = strdup(reply);
        b->quick_replies = quick ? json_incref(quick) : NULL;
    }
    json_decref(root);
    return 0;
}

static void flow_bot_free(void)
{
    for (size_t i = 0; i < G.nrules; i++) {
        free(G.rules[i].match);
        free(G.rules[i].event);
        free(G.rules[i].reply);
        json_decref(G.rules[i].quick_replies);
    }
    free(G.rules);
    G.rules = NULL;
    G.nrules = 0;
}

/* ------------------------------------------------------------------ the hub envelope */

/* The server types of PROTOCOLS.md §D a publish may name, sent with its data as their
 * payload. pong and error are control replies the server API refuses; message.received is
 * the default below. No other type is ever sent: the SDK reports unknown types as errors. */
static const char *const published_types[] = {"message.delivered", "activities.delivered", "activities.created",
                                              "agent.typing", "secret.generated", "interruption.occurred"};

/* A publish to thread:<id>: a server type its event names, else Flow's message.received. */
static json_t *published_payload(const char *thread, const char *event, json_t *data, const char **type)
{
    for (size_t i = 0; event && i < sizeof published_types / sizeof published_types[0]; i++) {
        if (strcmp(event, published_types[i]) == 0) {
            *type = published_types[i];
            return json_incref(data);
        }
    }
    *type = "message.received";
    if (json_is_array(json_object_get(data, "messages"))) {
        json_t *p = json_deep_copy(data);
        json_object_set_new(p, "threadId", json_string(thread));
        if (!json_object_get(p, "originator"))
            json_object_set_new(p, "originator", bot_originator());
        return p;
    }
    json_t *text = json_object_get(data, "text");
    return reply_payload(thread, json_is_string(text) ? json_string_value(text) : "", json_string_length(text), NULL,
                         json_object_get(data, "quickReplies"));
}

static frame_t *build_frame(const hub_msg_t *m)
{
    const char *thread = m->channel + strlen(THREAD_PREFIX);
    json_t *data = json_loadb(m->data, m->data_len, DIALECT_JSON_FLAGS, NULL);
    const char *type;
    json_t *payload = data ? published_payload(thread, m->event, data, &type) : NULL;
    json_t *msg = payload ? json_pack("{s:s, s:o}", "type", type, "payload", payload) : NULL;
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    frame_t *f = text ? frame_build(WS_OP_TEXT, text, strlen(text)) : NULL;
    free(text);
    json_decref(msg);
    json_decref(data);
    return f;
}

static const hub_envelope_t envelope = {.build = build_frame};

/* Publishes through the API to thread:<id> are kept in that thread's history too. */
static void on_publish(dialect_ctx_t *x, const char *channel, size_t len, const char *event, const char *data,
                       size_t dlen)
{
    size_t plen = strlen(THREAD_PREFIX);
    if (len <= plen || memcmp(channel, THREAD_PREFIX, plen) != 0 || len - plen > MAX_ID)
        return;
    char thread[MAX_ID + 1];
    memcpy(thread, channel + plen, len - plen);
    thread[len - plen] = 0;
    json_t *d = json_loadb(data, dlen, DIALECT_JSON_FLAGS, NULL);
    const char *type;
    json_t *payload = d ? published_payload(thread, event, d, &type) : NULL;
    if (payload && strcmp(type, "message.received") == 0)
        history_add(x, thread, type, payload);
    json_decref(payload);
    json_decref(d);
}

/* ------------------------------------------------------------------ REST: socket.info, history */

static char *status_body(const char *status, json_t *payload)
{
    json_t *b = json_pack("{s:s, s:o}", "status", status, "payload", payload);
    char *t = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    return t;
}

static void reply(http_reply_t *out, int status, const char *st, json_t *payload)
{
    out->status = status;
    out->body = status_body(st, payload);
    out->len = out->body ? strlen(out->body) : 0;
}

static void reply_error(http_reply_t *out, int status, const char *message)
{
    reply(out, status, "error", json_pack("{s:s}", "message", message));
}

/* A header (x-flowai-…) or the query parameter, into buf; "null"/"undefined"/"" count as absent
 * (the SDK sends the text "null" for an unset value). Headers win. */
static const char *param(const http_request_t *req, const char *header, const char *query, char *buf, size_t len)
{
    size_t n;
    const char *v = http_request_header(req, header, &n);
    if (v && n > 0 && n < len) {
        memcpy(buf, v, n);
        buf[n] = 0;
    } else if (!(v = query ? http_request_query_param(req, query, buf, len) : NULL)) {
        return NULL;
    }
    if (!*buf || strcmp(buf, "null") == 0 || strcmp(buf, "undefined") == 0)
        return NULL;
    return buf;
}

static bool list_has(const config_strlist_t *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i], s) == 0)
            return true;
    return false;
}

/*
 * CORS: browsers ask first (OPTIONS) and check Access-Control-Allow-Origin on the answer.
 * Returns false (and sets a 403) when the Origin is not allowed; a request without Origin
 * (not from a browser) is allowed.
 */
static bool cors(const http_request_t *req, const config_t *cfg, http_reply_t *out)
{
    size_t olen = 0;
    const char *origin = http_request_header(req, "Origin", &olen);
    if (origin && !auth_origin_allowed(&cfg->flow_allowed_origins, origin, olen)) {
        reply_error(out, 403, "origin not allowed");
        out->hs_reason = 1 + HS_FORBIDDEN_ORIGIN;
        return false;
    }
    if (origin && olen < 512) {
        if (asprintf(&out->extra_alloc, "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n", (int)olen, origin) < 0)
            out->extra_alloc = NULL;
    } else {
        out->extra = "Access-Control-Allow-Origin: *\r\n";
    }
    return true;
}

static bool preflight(const http_request_t *req, const config_t *cfg, http_reply_t *out, const char *methods)
{
    if (strcmp(http_request_method(req), "OPTIONS") != 0)
        return false;
    if (!cors(req, cfg, out))
        return true;
    out->status = 204;
    char *more = NULL;
    if (asprintf(&more,
                 "%sAccess-Control-Allow-Methods: %s\r\n"
                 "Access-Control-Allow-Headers: content-type, x-flowai-clientid, x-flowai-sessionid, "
                 "x-flowai-threadid, x-flowai-secret, x-flowai-ott, x-flowai-originator\r\n"
                 "Access-Control-Max-Age: 600\r\n",
                 out->extra_alloc ? out->extra_alloc : out->extra, methods) >= 0) {
        free(out->extra_alloc);
        out->extra_alloc = more;
        out->extra = NULL;
    }
    return true;
}

static bool client_ok(const config_t *cfg, const char *client_id, http_reply_t *out)
{
    if (!client_id) {
        reply_error(out, 400, "clientId is required (query clientId or header x-flowai-clientid)");
        return false;
    }
    if (cfg->flow_client_ids.n && !list_has(&cfg->flow_client_ids, client_id)) {
        reply_error(out, 400, "unknown clientId");
        return false;
    }
    return true;
}

void flow_socket_info(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    const config_t *cfg = &dialect_live(x)->cfg;
    if (preflight(req, cfg, out, "GET, OPTIONS"))
        return;
    if (strcmp(http_request_method(req), "GET") != 0) {
        reply_error(out, 405, "use GET");
        out->extra = "Allow: GET, OPTIONS\r\n";
        return;
    }
    if (!cors(req, cfg, out))
        return;
    char client[MAX_ID + 1], session[MAX_ID + 1], thread[MAX_ID + 1];
    const char *client_id = param(req, "x-flowai-clientid", "clientId", client, sizeof client);
    const char *session_id = param(req, "x-flowai-sessionid", "sessionId", session, sizeof session);
    const char *thread_id = param(req, "x-flowai-threadid", "threadId", thread, sizeof thread);
    if (!client_ok(cfg, client_id, out))
        return;
    if (!session_id) {
        reply_error(out, 400, "sessionId is required (query sessionId or header x-flowai-sessionid)");
        return;
    }
    unsigned char rnd[16];
    char token[33];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        reply_error(out, 500, "no randomness for a token");
        return;
    }
    for (int i = 0; i < 16; i++)
        snprintf(token + 2 * i, 3, "%02x", rnd[i]);
    ticket_t *t = calloc(1, sizeof *t);
    if (t)
        list_init(&t->node);
    if (!t || !(t->client_id = strdup(client_id)) || !(t->session_id = strdup(session_id)) ||
        (thread_id && !(t->thread_id = strdup(thread_id)))) {
        if (t)
            ticket_free(t);
        reply_error(out, 500, "out of memory");
        return;
    }
    uint64_t now = now_ms();
    t->expires_ms = now + cfg->flow_token_ttl_ms;
    uv_mutex_lock(&G.lock);
    purge_tickets(now, dialect_metrics(x));
    bool full = G.tickets.count >= (size_t)cfg->flow_max_tickets;
    bool ok = !full && (t->e = strmap_insert(&G.tickets, token, 32, t)) != NULL;
    if (ok)
        list_insert_tail(&G.ticket_order, &t->node);
    publish_gauges();
    uv_mutex_unlock(&G.lock);
    if (!ok) {
        ticket_free(t);
        if (full) {
            metrics_add(&dialect_metrics(x)->flow_ticket_refusals, 1);
            reply_error(out, 503, "too many unused endpoints (flow.max_tickets): try again later");
        } else {
            reply_error(out, 500, "out of memory");
        }
        return;
    }
    /* ws:// or wss:// on the configured public URL, never the Host the request carried. */
    const char *pub = cfg->public_url;
    size_t plen = strlen(pub);
    while (plen && pub[plen - 1] == '/')
        plen--;
    const char *rest = pub;
    const char *scheme = "ws";
    if (strncasecmp(pub, "https://", 8) == 0)
        scheme = "wss", rest = pub + 8;
    else if (strncasecmp(pub, "http://", 7) == 0)
        rest = pub + 7;
    char endpoint[1024];
    snprintf(endpoint, sizeof endpoint, "%s://%.*s/ws/%s", scheme, (int)(plen - (size_t)(rest - pub)), rest, token);
    reply(out, 200, "ok", json_pack("{s:s}", "endpoint", endpoint));
}

static void history_reply(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out, bool unnoticed)
{
    const config_t *cfg = &dialect_live(x)->cfg;
    if (preflight(req, cfg, out, "GET, OPTIONS"))
        return;
    if (!cors(req, cfg, out))
        return;
    char client[MAX_ID + 1], thread[MAX_ID + 1];
    const char *client_id = param(req, "x-flowai-clientid", "clientId", client, sizeof client);
    const char *thread_id = param(req, "x-flowai-threadid", "threadId", thread, sizeof thread);
    if (!client_ok(cfg, client_id, out))
        return;
    if (!thread_id) {
        reply_error(out, 400, "threadId is required (header x-flowai-threadid)");
        return;
    }
    uv_mutex_lock(&G.lock);
    strmap_entry_t *e = strmap_find(&G.threads, thread_id, strlen(thread_id));
    thread_log_t *t = e ? e->value : NULL;
    json_t *items = json_array();
    for (size_t i = t && unnoticed ? t->noticed : 0; t && i < t->n; i++) {
        /* Unnoticed: what the thread's user has not seen yet (bot and agent messages). */
        if (!unnoticed || t->items[i]->received)
            json_array_append_new(items, json_loadb(t->items[i]->text, t->items[i]->len, JSON_ALLOW_NUL, NULL));
    }
    uv_mutex_unlock(&G.lock);
    reply(out, 200, "ok", json_pack("{s:s, s:o}", "threadId", thread_id, unnoticed ? "unnoticed" : "history", items));
}

void flow_thread_history(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    history_reply(req, x, out, false);
}

void flow_thread_unnoticed(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    history_reply(req, x, out, true);
}

/* ------------------------------------------------------------------ the socket */

/* A bot reply waiting for flow.reply_delay_ms. It belongs to the thread, not to the socket
 * that asked: it is published even if that socket closes meanwhile (the SDK reconnects). */
typedef struct flow_reply {
    wtimer_t timer;
    list_node_t node;   /* in the worker's pending replies (flow_worker_t) */
    dialect_ctx_t *x;
    char *thread;
    json_t *payload;
} flow_reply_t;

typedef struct flow_worker {
    list_node_t replies;
    uv_timer_t sweep; /* worker 0 only: frees expired tickets and threads */
} flow_worker_t;

typedef struct flow {
    ws_session_t *s;
    dialect_ctx_t *x;
    char *client_id, *session_id;
    char *thread;        /* the thread this socket belongs to, or NULL */
    thread_log_t *log;   /* its log, counting this socket (NULL when out of memory) */
    hub_sub_t *sub;      /* thread:<thread> */
    wtimer_t idle;
} flow_t;

static void send_json(flow_t *v, json_t *msg) { dialect_send_json(v->s, msg); }

static void send_error(flow_t *v, const char *message)
{
    send_json(v, json_pack("{s:s, s:s}", "type", "error", "message", message));
}

static void leave(flow_t *v)
{
    if (v->sub)
        dialect_unsubscribe(v->s, v->sub);
    v->sub = NULL;
    if (v->log)
        thread_sockets(NULL, v->log, -1, dialect_metrics(v->x));
    v->log = NULL;
    free(v->thread);
    v->thread = NULL;
}

static void join(flow_t *v, const char *thread)
{
    if (v->thread && strcmp(v->thread, thread) == 0)
        return;
    leave(v);
    v->thread = strdup(thread);
    char ch[MAX_ID + 16];
    int n = snprintf(ch, sizeof ch, THREAD_PREFIX "%s", thread);
    if (v->thread && n > 0 && (size_t)n < sizeof ch)
        v->sub = dialect_subscribe(v->s, ch, (size_t)n, &envelope, NULL);
    if (!v->sub) { /* the thread's messages would never arrive: say so (a later send retries) */
        send_error(v, "could not join the thread (out of memory)");
        free(v->thread);
        v->thread = NULL;
        return;
    }
    v->log = thread_sockets(thread, NULL, +1, dialect_metrics(v->x));
}

static void publish_reply(dialect_ctx_t *x, const char *thread, json_t *payload)
{
    history_add(x, thread, "message.received", payload);
    char *text = json_dumps(payload, JSON_COMPACT);
    char ch[MAX_ID + 16];
    int n = snprintf(ch, sizeof ch, THREAD_PREFIX "%s", thread);
    size_t delivered;
    if (text && n > 0 && (size_t)n < sizeof ch)
        dialect_publish(x, ch, (size_t)n, "message.received", text, strlen(text), &delivered);
    free(text);
}

static void reply_free(flow_reply_t *r)
{
    list_remove(&r->node);
    free(r->thread);
    json_decref(r->payload);
    free(r);
}

static void on_reply_due(wtimer_t *t)
{
    flow_reply_t *r = container_of(t, flow_reply_t, timer);
    publish_reply(r->x, r->thread, r->payload);
    reply_free(r);
}

static void cmd_send(flow_t *v, json_t *payload)
{
    json_t *thread = json_object_get(payload, "threadId"), *speech = json_object_get(payload, "speech");
    /* A thread id is a name: one with a NUL inside would alias the thread before the NUL. */
    const char *tid = dialect_cstr(thread);
    if (!json_is_object(payload) || !tid || !*tid || strlen(tid) > MAX_ID) {
        send_error(v, "message.send needs payload.threadId (a string without NUL characters)");
        return;
    }
    if (!json_is_string(speech)) {
        send_error(v, "message.send needs payload.speech (a string)");
        return;
    }
    /* Delivered: what was sent, without the nonce (the secret), always with metadata. */
    json_t *delivered = json_copy(payload);
    json_object_del(delivered, "nonce");
    if (!json_is_object(json_object_get(delivered, "metadata")))
        json_object_set_new(delivered, "metadata", json_object());
    join(v, tid);
    history_add(v->x, tid, "message.send", delivered);
    send_json(v, json_pack("{s:s, s:o}", "type", "message.delivered", "payload", delivered));

    json_t *answer = bot_reply(tid, payload);
    if (!answer)
        return;
    uint32_t delay = dialect_live(v->x)->cfg.flow_reply_delay_ms;
    if (!delay) {
        publish_reply(v->x, tid, answer);
        json_decref(answer);
        return;
    }
    flow_reply_t *r = calloc(1, sizeof *r);
    if (!r || !(r->thread = strdup(tid))) {
        free(r);
        json_decref(answer);
        return;
    }
    r->x = v->x;
    r->payload = answer;
    list_insert_tail(&((flow_worker_t *)dialect_state(v->x))->replies, &r->node);
    if (dialect_timer_start(v->x, &r->timer, dialect_now(v->x) + delay, on_reply_due) != 0) {
        on_reply_due(&r->timer); /* no timer (out of memory): the reply now, never lost */
        return;
    }
    send_json(v, json_pack("{s:s, s:{s:s}}", "type", "agent.typing", "payload", "threadId", tid));
}

static void on_message(ws_session_t *s, int opcode, const uint8_t *msg, size_t len)
{
    flow_t *v = ws_session_data(s);
    json_t *root = opcode == WS_OP_TEXT ? json_loadb((const char *)msg, len, DIALECT_JSON_FLAGS, NULL) : NULL;
    json_t *type = json_object_get(root, "type");
    json_t *payload = json_object_get(root, "payload");
    if (!json_is_object(root)) {
        send_error(v, "expected a JSON object {\"type\": …, \"payload\": {…}}");
    } else if (!json_is_string(type)) {
        send_error(v, "type is required");
    } else if (dialect_str_is(type, "ping")) {
        send_json(v, json_pack("{s:s}", "type", "pong"));
    } else if (dialect_str_is(type, "message.send")) {
        cmd_send(v, payload);
    } else if (dialect_str_is(type, "thread.noticed")) {
        /* A socket marks its own thread as seen, never another one. */
        const char *tid = dialect_cstr(json_object_get(payload, "threadId"));
        if (!tid || (v->thread && strcmp(tid, v->thread) != 0))
            tid = v->thread;
        if (tid) {
            uv_mutex_lock(&G.lock);
            strmap_entry_t *e = strmap_find(&G.threads, tid, strlen(tid));
            if (e)
                ((thread_log_t *)e->value)->noticed = ((thread_log_t *)e->value)->n;
            uv_mutex_unlock(&G.lock);
        }
    } else if (!dialect_str_is(type, "activity.user.typing") && !dialect_str_is(type, "log")) {
        send_error(v, "unknown type");
    }
    json_decref(root);
}

static void on_idle(wtimer_t *t);

/* Arms the idle timeout in `after` ms. Without a timer (out of memory) the socket could
 * never time out: it is closed instead (1011). */
static void arm_idle(flow_t *v, uint64_t after)
{
    if (dialect_timer_start(v->x, &v->idle, dialect_now(v->x) + after, on_idle) == 0)
        return;
    send_error(v, "the idle timeout could not be scheduled (out of memory)");
    ws_session_close(v->s, WS_CLOSE_INTERNAL, "out of memory");
}

/* No client frame for flow.idle_timeout_ms: close 1000 "idle timeout" (any frame resets it). */
static void on_idle(wtimer_t *t)
{
    flow_t *v = container_of(t, flow_t, idle);
    uint64_t limit = dialect_live(v->x)->cfg.flow_idle_timeout_ms;
    uint64_t quiet = dialect_now(v->x) - ws_session_last_rx(v->s);
    if (quiet < limit)
        arm_idle(v, limit - quiet);
    else
        ws_session_close(v->s, WS_CLOSE_NORMAL, "idle timeout");
}

static void refuse(dialect_accept_t *out, int status, const char *message, int reason)
{
    out->status = status;
    out->body = status_body("error", json_pack("{s:s}", "message", message));
    out->hs_reason = reason;
    out->why = message;
}

static void accept_upgrade(const http_request_t *req, dialect_ctx_t *x, dialect_accept_t *out)
{
    const config_t *cfg = &dialect_live(x)->cfg;
    size_t olen = 0, plen;
    const char *origin = http_request_header(req, "Origin", &olen);
    if (origin && !auth_origin_allowed(&cfg->flow_allowed_origins, origin, olen)) {
        refuse(out, 403, "origin not allowed", HS_FORBIDDEN_ORIGIN);
        return;
    }
    const char *path = http_request_path(req, &plen);
    const char *token = path + 4; /* after "/ws/" */
    size_t tlen = plen - 4;
    ticket_t *t = NULL;
    uv_mutex_lock(&G.lock);
    strmap_entry_t *e = strmap_find(&G.tickets, token, tlen);
    if (e) {
        t = e->value;
        ticket_unlink(t); /* single use, whatever happens next */
        publish_gauges();
    }
    uv_mutex_unlock(&G.lock);
    if (!t || t->expires_ms <= now_ms()) {
        if (t)
            ticket_free(t);
        refuse(out, 404, "unknown, used or expired endpoint: ask /socket.info for a new one", HS_NOT_FOUND);
        return;
    }
    flow_t *v = calloc(1, sizeof *v);
    if (!v) {
        ticket_free(t);
        refuse(out, 503, "out of memory", HS_OVER_CAPACITY);
        return;
    }
    v->client_id = t->client_id;
    v->session_id = t->session_id;
    v->thread = NULL;
    char *thread = t->thread_id;
    free(t);
    v->x = x;
    out->data = v;
    /* The thread announced to socket.info is joined on open. */
    if (thread)
        v->thread = thread; /* join() on open subscribes */
}

static void on_open(ws_session_t *s)
{
    flow_t *v = ws_session_data(s);
    v->s = s;
    v->x = dialect_ctx(s);
    if (v->thread) {
        char *t = v->thread;
        v->thread = NULL;
        join(v, t);
        free(t);
    }
    arm_idle(v, dialect_live(v->x)->cfg.flow_idle_timeout_ms);
}

static void on_close(ws_session_t *s)
{
    flow_t *v = ws_session_data(s);
    if (!v)
        return;
    if (v->s) {
        dialect_timer_stop(v->x, &v->idle);
        leave(v);
    }
    free(v->thread);
    free(v->client_id);
    free(v->session_id);
    free(v);
    ws_session_set_data(s, NULL);
}

static void on_sweep(uv_timer_t *t) { sweep(t->data); }

/* The bot rules (flow.bot_file), loaded before the workers start. */
static int flow_process_init(const config_t *cfg, char *err, size_t errlen)
{
    if (flow_bot_load(cfg->flow_bot_file, err, errlen) == 0)
        return 0;
    flow_bot_free();
    return -1;
}

static int flow_worker_start(dialect_ctx_t *x)
{
    flow_worker_t *fw = calloc(1, sizeof *fw);
    if (!fw)
        return UV_ENOMEM;
    list_init(&fw->replies);
    dialect_set_state(x, fw);
    uv_once(&g_once, g_init);
    uv_mutex_lock(&G.lock);
    G.users++;
    uv_mutex_unlock(&G.lock);
    if (dialect_worker_index(x) != 0)
        return 0;
    /* Expired tickets are freed even when no request comes to purge them (issue 11). */
    return dialect_repeat_start(x, &fw->sweep, SWEEP_MS, on_sweep);
}

static void flow_worker_stop(dialect_ctx_t *x)
{
    flow_worker_t *fw = dialect_state(x);
    if (fw) {
        /* Replies still waiting when the worker stops have nobody left to reach. */
        while (!list_empty(&fw->replies)) {
            flow_reply_t *r = container_of(fw->replies.next, flow_reply_t, node);
            dialect_timer_stop(x, &r->timer);
            reply_free(r);
        }
        free(fw);
        dialect_set_state(x, NULL);
    }
    uv_mutex_lock(&G.lock);
    if (--G.users == 0)
        free_all();
    uv_mutex_unlock(&G.lock);
}

/* Faster than limits.message_rate: Flow's error, then ws_session closes 1008. */
static void on_rate_limited(ws_session_t *s)
{
    flow_t *v = ws_session_data(s);
    if (v)
        send_error(v, "rate limited: messages sent faster than the server allows");
}

const dialect_t dialect_flow = {
    .on_rate_limited = on_rate_limited,
    .no_ws_ping = 1, /* the contract's idle rule (50 s without a client frame) is the liveness */
    .name = "flow",
    .path = "/ws/",
    .path_prefix = 1,
    .endpoint = EP_FLOW,
    .process_init = flow_process_init,
    .process_free = flow_bot_free,
    .accept = accept_upgrade,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
    .on_publish = on_publish,
    .worker_start = flow_worker_start,
    .worker_stop = flow_worker_stop,
};
