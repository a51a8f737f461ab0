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
#include "wshub/server.h"
#include "wshub/strmap.h"
#include "wshub/worker.h"
#include "wshub/ws.h"
#include "wshub/wtimer.h"

#define THREAD_PREFIX "thread:"
#define MAX_ID 256

/* ------------------------------------------------------------------ process-wide state */

typedef struct ticket {
    char *client_id, *session_id, *thread_id; /* thread_id may be NULL */
    uint64_t expires_ms;                      /* uv_hrtime() clock */
} ticket_t;

typedef struct thread_log {
    json_t *items;  /* array of {type, payload, createdAt}, oldest first (under lock) */
    size_t noticed; /* items before this index were noticed (thread.noticed) */
    strmap_entry_t *e;
    list_node_t lru; /* in G.lru, most recently written last */
} thread_log_t;

/* Threads kept at once: past it the least recently written thread's history is dropped,
 * so clients inventing thread ids cannot grow the daemon without bound. */
#define MAX_THREADS 10000

/* A bot rule: text containing `match` (case-insensitive) or an event attachment named
 * `event` gets `reply`, with optional quick replies. */
typedef struct bot_rule {
    char *match, *event, *reply;
    json_t *quick_replies; /* array of strings, or NULL */
} bot_rule_t;

static struct {
    uv_mutex_t lock;
    strmap_t tickets; /* token -> ticket_t* */
    strmap_t threads; /* thread id -> thread_log_t* */
    list_node_t lru;  /* thread_log_t.lru */
    uint64_t last_purge_ms;
    bot_rule_t *rules;
    size_t nrules;
    int users; /* workers started (the state is freed when the last stops) */
} G;
static uv_once_t g_once = UV_ONCE_INIT;
static void g_init(void)
{
    uv_mutex_init(&G.lock);
    list_init(&G.lru);
}

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

static void ticket_free(ticket_t *t)
{
    free(t->client_id);
    free(t->session_id);
    free(t->thread_id);
    free(t);
}

static void free_map(strmap_t *m, int tickets)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (strmap_entry_t *e = m->buckets[i]; e; e = e->next) {
            if (tickets) {
                ticket_free(e->value);
            } else {
                thread_log_t *t = e->value;
                json_decref(t->items);
                free(t);
            }
        }
    strmap_clear(m);
    if (!tickets)
        list_init(&G.lru);
}

/* Drops tickets past their time (called with the lock held, on each new ticket). */
static void purge_tickets(uint64_t now)
{
    for (size_t i = 0; i < G.tickets.nbuckets; i++) {
        strmap_entry_t *e = G.tickets.buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            ticket_t *t = e->value;
            if (t->expires_ms <= now) {
                ticket_free(t);
                strmap_remove(&G.tickets, e);
            }
        }
    }
}

static json_t *history_entry(const char *type, json_t *payload)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return json_pack("{s:s, s:O, s:I}", "type", type, "payload", payload,
                     "createdAt", (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Appends to a thread's bounded history (a deep copy: the log outlives the caller's JSON). */
static void history_add(const config_t *cfg, const char *thread, const char *type, json_t *payload)
{
    if (cfg->flow_history_limit <= 0)
        return;
    json_t *entry = history_entry(type, payload);
    json_t *copy = entry ? json_deep_copy(entry) : NULL;
    json_decref(entry);
    if (!copy)
        return;
    uv_mutex_lock(&G.lock);
    size_t len = strlen(thread);
    strmap_entry_t *e = strmap_find(&G.threads, thread, len);
    thread_log_t *t = e ? e->value : NULL;
    if (!t && (t = calloc(1, sizeof *t))) {
        list_init(&t->lru);
        if (!(t->items = json_array()) || !(t->e = strmap_insert(&G.threads, thread, len, t))) {
            json_decref(t->items);
            free(t);
            t = NULL;
        }
    }
    if (t && G.threads.count > MAX_THREADS) {
        thread_log_t *old = container_of(list_first(&G.lru), thread_log_t, lru);
        list_remove(&old->lru);
        strmap_remove(&G.threads, old->e);
        json_decref(old->items);
        free(old);
    }
    if (t) {
        list_remove(&t->lru);
        list_insert_tail(&G.lru, &t->lru);
        json_array_append_new(t->items, copy);
        copy = NULL;
        while (json_array_size(t->items) > (size_t)cfg->flow_history_limit) {
            json_array_remove(t->items, 0);
            if (t->noticed)
                t->noticed--;
        }
    }
    uv_mutex_unlock(&G.lock);
    json_decref(copy);
}

/* ------------------------------------------------------------------ bot replies */

static json_t *bot_originator(void)
{
    return json_pack("{s:s, s:s, s:s, s:{s:s}}", "userId", "flowai|system", "name", "system", "role", "bot",
                     "profile", "fullName", "system");
}

/* The message.received payload: {threadId, messages:[{…, responses:[text]}], originator}. */
static json_t *reply_payload(const char *thread, const char *text, json_t *reply_to, json_t *quick)
{
    json_t *resp_payload = json_pack("{s:s}", "text", text);
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
    return json_pack("{s:s, s:[{s:s, s:b, s:O, s:o, s:[], s:[{s:s, s:i, s:o}]}], s:o}", "threadId", thread,
                     "messages", "fallback", text, "silent", 0, "replyTo", reply_to ? reply_to : json_null(),
                     "originator", bot_originator(), "actions", "responses", "type", "text", "delay", 0, "payload",
                     resp_payload, "originator", bot_originator());
}

/* What the bot answers to a message.send payload: a rule, or the echo. */
static json_t *bot_reply(const char *thread, json_t *payload)
{
    const char *speech = json_string_value(json_object_get(payload, "speech"));
    json_t *att = json_object_get(payload, "attachment");
    const char *event = NULL;
    if (json_is_object(att) && json_is_string(json_object_get(att, "type")) &&
        strcmp(json_string_value(json_object_get(att, "type")), "event") == 0)
        event = json_string_value(json_object_get(json_object_get(att, "payload"), "name"));
    for (size_t i = 0; i < G.nrules; i++) {
        bot_rule_t *r = &G.rules[i];
        bool hit = r->event ? (event && strcasecmp(event, r->event) == 0)
                            : (r->match && speech && strcasestr(speech, r->match) != NULL);
        if (hit)
            return reply_payload(thread, r->reply, json_object_get(payload, "speech"), r->quick_replies);
    }
    /* The whole text, however long: cutting it could also split a UTF-8 character. */
    char *text = NULL;
    if (asprintf(&text, event ? "Event received: %s" : "You said: %s", event ? event : speech ? speech : "") < 0)
        return NULL;
    json_t *r = reply_payload(thread, text, json_object_get(payload, "speech"), NULL);
    free(text);
    return r;
}

int flow_bot_load(const char *path, char *err, size_t errlen)
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

void flow_bot_free(void)
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

/* A publish to thread:<id> as Flow's message.received (or agent.typing). */
static json_t *published_payload(const char *thread, const char *event, json_t *data, const char **type)
{
    *type = "message.received";
    if (event && strcmp(event, "agent.typing") == 0) {
        *type = "agent.typing";
        json_t *p = json_deep_copy(data);
        json_object_set_new(p, "threadId", json_string(thread));
        return p;
    }
    if (json_is_array(json_object_get(data, "messages"))) {
        json_t *p = json_deep_copy(data);
        json_object_set_new(p, "threadId", json_string(thread));
        if (!json_object_get(p, "originator"))
            json_object_set_new(p, "originator", bot_originator());
        return p;
    }
    const char *text = json_string_value(json_object_get(data, "text"));
    return reply_payload(thread, text ? text : "", NULL, json_object_get(data, "quickReplies"));
}

static frame_t *build_frame(const hub_msg_t *m)
{
    const char *thread = m->channel + strlen(THREAD_PREFIX);
    json_t *data = json_loadb(m->data, m->data_len, 0, NULL);
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

static const hub_envelope_t envelope = {.slot = EP_FLOW, .build = build_frame};

/* Publishes through the API to thread:<id> are kept in that thread's history too. */
static void on_publish(worker_t *w, const char *channel, size_t len, const char *event, const char *data,
                       size_t dlen)
{
    size_t plen = strlen(THREAD_PREFIX);
    if (len <= plen || memcmp(channel, THREAD_PREFIX, plen) != 0 || len - plen > MAX_ID)
        return;
    char thread[MAX_ID + 1];
    memcpy(thread, channel + plen, len - plen);
    thread[len - plen] = 0;
    json_t *d = json_loadb(data, dlen, 0, NULL);
    const char *type;
    json_t *payload = d ? published_payload(thread, event, d, &type) : NULL;
    if (payload && strcmp(type, "message.received") == 0)
        history_add(&server_live(w->srv)->cfg, thread, type, payload);
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

void flow_socket_info(const http_request_t *req, worker_t *w, http_reply_t *out)
{
    const config_t *cfg = &server_live(w->srv)->cfg;
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
    if (now - G.last_purge_ms >= 1000) { /* amortised: not a scan per request */
        purge_tickets(now);
        G.last_purge_ms = now;
    }
    bool ok = strmap_insert(&G.tickets, token, 32, t) != NULL;
    uv_mutex_unlock(&G.lock);
    if (!ok) {
        ticket_free(t);
        reply_error(out, 500, "out of memory");
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

static void history_reply(const http_request_t *req, worker_t *w, http_reply_t *out, bool unnoticed)
{
    const config_t *cfg = &server_live(w->srv)->cfg;
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
    if (t) {
        size_t from = unnoticed ? t->noticed : 0;
        for (size_t i = from; i < json_array_size(t->items); i++) {
            json_t *it = json_array_get(t->items, i);
            /* Unnoticed: what the thread's user has not seen yet (bot and agent messages). */
            if (!unnoticed || strcmp(json_string_value(json_object_get(it, "type")), "message.received") == 0)
                json_array_append_new(items, json_deep_copy(it));
        }
    }
    uv_mutex_unlock(&G.lock);
    reply(out, 200, "ok", json_pack("{s:s, s:o}", "threadId", thread_id, unnoticed ? "unnoticed" : "history", items));
}

void flow_thread_history(const http_request_t *req, worker_t *w, http_reply_t *out)
{
    history_reply(req, w, out, false);
}

void flow_thread_unnoticed(const http_request_t *req, worker_t *w, http_reply_t *out)
{
    history_reply(req, w, out, true);
}

/* ------------------------------------------------------------------ the socket */

/* A bot reply waiting for flow.reply_delay_ms. It belongs to the thread, not to the socket
 * that asked: it is published even if that socket closes meanwhile (the SDK reconnects). */
typedef struct flow_reply {
    wtimer_t timer;
    list_node_t node;   /* in the worker's pending replies (flow_worker_t) */
    worker_t *w;
    char *thread;
    json_t *payload;
} flow_reply_t;

typedef struct flow_worker {
    list_node_t replies;
} flow_worker_t;

typedef struct flow {
    ws_session_t *s;
    worker_t *w;
    char *client_id, *session_id;
    char *thread;        /* the thread this socket belongs to, or NULL */
    hub_sub_t *sub;      /* thread:<thread> */
    wtimer_t idle;
} flow_t;

static void send_json(flow_t *v, json_t *msg) { dialect_send_json(v->s, msg); }

static void send_error(flow_t *v, const char *message)
{
    send_json(v, json_pack("{s:s, s:s}", "type", "error", "message", message));
}

static void join(flow_t *v, const char *thread)
{
    if (v->thread && strcmp(v->thread, thread) == 0)
        return;
    if (v->sub)
        hub_unsubscribe(v->w, v->sub);
    v->sub = NULL;
    free(v->thread);
    v->thread = strdup(thread);
    char ch[MAX_ID + 16];
    int n = snprintf(ch, sizeof ch, THREAD_PREFIX "%s", thread);
    if (v->thread && n > 0 && (size_t)n < sizeof ch)
        v->sub = hub_subscribe(v->w, ch, (size_t)n, v->s, &envelope, NULL);
}

static void publish_reply(worker_t *w, const char *thread, json_t *payload)
{
    history_add(&server_live(w->srv)->cfg, thread, "message.received", payload);
    char *text = json_dumps(payload, JSON_COMPACT);
    char ch[MAX_ID + 16];
    int n = snprintf(ch, sizeof ch, THREAD_PREFIX "%s", thread);
    size_t delivered;
    if (text && n > 0 && (size_t)n < sizeof ch)
        hub_publish(w, ch, (size_t)n, "message.received", text, strlen(text), &delivered);
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
    publish_reply(r->w, r->thread, r->payload);
    reply_free(r);
}

static void cmd_send(flow_t *v, json_t *payload)
{
    json_t *thread = json_object_get(payload, "threadId"), *speech = json_object_get(payload, "speech");
    if (!json_is_object(payload) || !json_is_string(thread) || json_string_length(thread) == 0 ||
        json_string_length(thread) > MAX_ID) {
        send_error(v, "message.send needs payload.threadId (a string)");
        return;
    }
    if (!json_is_string(speech)) {
        send_error(v, "message.send needs payload.speech (a string)");
        return;
    }
    const char *tid = json_string_value(thread);
    /* Delivered: what was sent, without the nonce (the secret), always with metadata. */
    json_t *delivered = json_copy(payload);
    json_object_del(delivered, "nonce");
    if (!json_is_object(json_object_get(delivered, "metadata")))
        json_object_set_new(delivered, "metadata", json_object());
    join(v, tid);
    history_add(&server_live(v->w->srv)->cfg, tid, "message.send", delivered);
    send_json(v, json_pack("{s:s, s:o}", "type", "message.delivered", "payload", delivered));

    json_t *answer = bot_reply(tid, payload);
    if (!answer)
        return;
    uint32_t delay = server_live(v->w->srv)->cfg.flow_reply_delay_ms;
    if (!delay) {
        publish_reply(v->w, tid, answer);
        json_decref(answer);
        return;
    }
    flow_reply_t *r = calloc(1, sizeof *r);
    if (!r || !(r->thread = strdup(tid))) {
        free(r);
        json_decref(answer);
        return;
    }
    r->w = v->w;
    r->payload = answer;
    list_insert_tail(&((flow_worker_t *)v->w->dialect_state[EP_FLOW])->replies, &r->node);
    send_json(v, json_pack("{s:s, s:{s:s}}", "type", "agent.typing", "payload", "threadId", tid));
    wtimer_start(v->w, &r->timer, worker_now(v->w) + delay, on_reply_due);
}

static void on_message(ws_session_t *s, int opcode, const uint8_t *msg, size_t len)
{
    flow_t *v = ws_session_data(s);
    json_t *root = opcode == WS_OP_TEXT ? json_loadb((const char *)msg, len, 0, NULL) : NULL;
    const char *type = json_string_value(json_object_get(root, "type"));
    json_t *payload = json_object_get(root, "payload");
    if (!json_is_object(root)) {
        send_error(v, "expected a JSON object {\"type\": …, \"payload\": {…}}");
    } else if (!type) {
        send_error(v, "type is required");
    } else if (strcmp(type, "ping") == 0) {
        send_json(v, json_pack("{s:s}", "type", "pong"));
    } else if (strcmp(type, "message.send") == 0) {
        cmd_send(v, payload);
    } else if (strcmp(type, "thread.noticed") == 0) {
        /* A socket marks its own thread as seen, never another one. */
        const char *tid = json_string_value(json_object_get(payload, "threadId"));
        if (!tid || (v->thread && strcmp(tid, v->thread) != 0))
            tid = v->thread;
        if (tid) {
            uv_mutex_lock(&G.lock);
            strmap_entry_t *e = strmap_find(&G.threads, tid, strlen(tid));
            if (e)
                ((thread_log_t *)e->value)->noticed = json_array_size(((thread_log_t *)e->value)->items);
            uv_mutex_unlock(&G.lock);
        }
    } else if (strcmp(type, "activity.user.typing") != 0 && strcmp(type, "log") != 0) {
        send_error(v, "unknown type");
    }
    json_decref(root);
}

/* No client frame for flow.idle_timeout_ms: close 1000 "idle timeout" (any frame resets it). */
static void on_idle(wtimer_t *t)
{
    flow_t *v = container_of(t, flow_t, idle);
    uint64_t limit = server_live(v->w->srv)->cfg.flow_idle_timeout_ms;
    uint64_t quiet = worker_now(v->w) - ws_session_last_rx(v->s);
    if (quiet < limit) {
        wtimer_start(v->w, &v->idle, worker_now(v->w) + (limit - quiet), on_idle);
        return;
    }
    ws_session_close(v->s, WS_CLOSE_NORMAL, "idle timeout");
}

static void refuse(dialect_accept_t *out, int status, const char *message, int reason)
{
    out->status = status;
    out->body = status_body("error", json_pack("{s:s}", "message", message));
    out->hs_reason = reason;
    out->why = message;
}

static void accept_upgrade(const http_request_t *req, worker_t *w, dialect_accept_t *out)
{
    const config_t *cfg = &server_live(w->srv)->cfg;
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
        strmap_remove(&G.tickets, e); /* single use, whatever happens next */
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
    v->w = w;
    out->data = v;
    /* The thread announced to socket.info is joined on open. */
    if (thread)
        v->thread = thread; /* join() on open subscribes */
}

static void on_open(ws_session_t *s)
{
    flow_t *v = ws_session_data(s);
    v->s = s;
    v->w = ws_session_worker(s);
    if (v->thread) {
        char *t = v->thread;
        v->thread = NULL;
        join(v, t);
        free(t);
    }
    wtimer_start(v->w, &v->idle, worker_now(v->w) + server_live(v->w->srv)->cfg.flow_idle_timeout_ms, on_idle);
}

static void on_close(ws_session_t *s)
{
    flow_t *v = ws_session_data(s);
    if (!v)
        return;
    if (v->s) {
        wtimer_stop(v->w, &v->idle);
        if (v->sub)
            hub_unsubscribe(v->w, v->sub);
    }
    free(v->thread);
    free(v->client_id);
    free(v->session_id);
    free(v);
    ws_session_set_data(s, NULL);
}

static int flow_worker_start(worker_t *w)
{
    flow_worker_t *fw = calloc(1, sizeof *fw);
    if (!fw)
        return UV_ENOMEM;
    list_init(&fw->replies);
    w->dialect_state[EP_FLOW] = fw;
    uv_once(&g_once, g_init);
    uv_mutex_lock(&G.lock);
    G.users++;
    uv_mutex_unlock(&G.lock);
    return 0;
}

static void flow_worker_stop(worker_t *w)
{
    flow_worker_t *fw = w->dialect_state[EP_FLOW];
    if (fw) {
        /* Replies still waiting when the worker stops have nobody left to reach. */
        while (!list_empty(&fw->replies)) {
            flow_reply_t *r = container_of(fw->replies.next, flow_reply_t, node);
            wtimer_stop(w, &r->timer);
            reply_free(r);
        }
        free(fw);
        w->dialect_state[EP_FLOW] = NULL;
    }
    uv_mutex_lock(&G.lock);
    if (--G.users == 0) {
        free_map(&G.tickets, 1);
        free_map(&G.threads, 0);
    }
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
    .accept = accept_upgrade,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
    .on_publish = on_publish,
    .worker_start = flow_worker_start,
    .worker_stop = flow_worker_stop,
};
