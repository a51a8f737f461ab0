/*
 * flow/rest — the HTTP side of API D (PROTOCOLS.md §D): GET /socket.info (a single-use
 * /ws/<token> endpoint on the configured public URL, its ticket in the store),
 * GET /thread.history and GET /thread.unnoticed (a thread's entries from the store), their
 * CORS preflights and headers, and the {status, payload} body of every Flow HTTP answer.
 * Never: touches a socket, the hub, or the store's memory (only its operations).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "wshub/auth.h"
#include "wshub/dialect.h"
#include "wshub/faults.h"
#include "wshub/flow.h"
#include "wshub/utf8.h"
#include "wshub/http.h"
#include "wshub/metrics.h"

#include "internal.h"

char *flow__status_body(const char *status, json_t *payload)
{
    json_t *b = json_pack("{s:s, s:o}", "status", status, "payload", payload);
    char *t = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    return t;
}

static void reply(http_reply_t *out, int status, const char *st, json_t *payload)
{
    static const char oom[] = "{\"status\":\"error\",\"payload\":{\"message\":\"out of memory\"}}";
    out->status = status;
    out->body = flow__status_body(st, payload);
    if (!out->body && (out->body = strdup(oom))) /* never a 200 with no body */
        out->status = 500;
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
    /* An id is text that JSON answers carry: "%FF" counts as absent (the handler then says the
     * id is required), as a "%00" does already (http_request_query_param). */
    if (utf8_validate(UTF8_ACCEPT, (const uint8_t *)buf, strlen(buf)) != UTF8_ACCEPT)
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

/* One more header line ("Name: value\r\n") on a reply, after the others. */
static void add_header(http_reply_t *out, const char *line)
{
    char *more = NULL;
    if (asprintf(&more, "%s%s", out->extra_alloc ? out->extra_alloc : "", line) < 0)
        return;
    free(out->extra_alloc);
    out->extra_alloc = more;
}

/* The store cannot answer: Flow's error, 503, and when to try again. */
static void reply_store_down(http_reply_t *out, int status)
{
    if (status == FLOW_STORE_NOMEM) {
        reply_error(out, 503, "out of memory");
        return;
    }
    reply_error(out, 503, "the Flow store is unreachable: try again later");
    add_header(out, "Retry-After: 1\r\n");
}

/*
 * A Flow answer that needs the store (store.h: its done runs inside the call, or later on
 * this worker): the handler makes a job (with the CORS headers), calls the store, then
 * job_wait: the answer now if done already ran, else the request is deferred and done
 * completes it.
 */
typedef struct flow_job {
    http_reply_t rep;
    http_pending_t *pending;
    dialect_ctx_t *x;
    bool in_call;  /* the handler has not returned yet: done leaves rep to it */
    bool answered; /* done ran inside the call */
    char text[1024]; /* socket.info: the endpoint; the histories: the thread id */
    bool unnoticed;
} flow_job_t;

static flow_job_t *job_new(dialect_ctx_t *x, http_reply_t *out)
{
    flow_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        reply_error(out, 503, "out of memory");
        return NULL;
    }
    j->x = x;
    j->in_call = true;
    /* The CORS headers cors() put on out are the job's answer's. */
    j->rep.extra = out->extra;
    j->rep.extra_alloc = out->extra_alloc;
    out->extra = NULL;
    out->extra_alloc = NULL;
    return j;
}

/* From a store's done, once j->rep is filled. */
static void job_answer(flow_job_t *j)
{
    if (j->in_call) {
        j->answered = true;
        return;
    }
    if (j->pending) {
        http_complete_reply(j->pending, &j->rep);
    } else { /* the deferral failed (out of memory): answered already */
        free(j->rep.body);
        free(j->rep.extra_alloc);
    }
    free(j);
}

static void job_wait(flow_job_t *j, const http_request_t *req, http_reply_t *out)
{
    j->in_call = false;
    if (j->answered) {
        *out = j->rep;
        free(j);
        return;
    }
    if (!(j->pending = http_defer(req)))
        reply_error(out, 503, "out of memory"); /* done still comes, and frees j */
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

/* ws:// or wss:// on the configured public URL, never the Host the request carried. */
static void endpoint_of(const config_t *cfg, const char *token, char *buf, size_t size)
{
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
    snprintf(buf, size, "%s://%.*s/ws/%s", scheme, (int)(plen - (size_t)(rest - pub)), rest, token);
}

static void issued(void *arg, int status)
{
    flow_job_t *j = arg;
    if (status == FLOW_STORE_OK) {
        reply(&j->rep, 200, "ok", json_pack("{s:s}", "endpoint", j->text));
    } else if (status == FLOW_STORE_FULL) {
        metrics_add(&dialect_metrics(j->x)->flow_ticket_refusals, 1);
        reply_error(&j->rep, 503, "too many unused endpoints (flow.max_tickets): try again later");
    } else {
        reply_store_down(&j->rep, status);
    }
    job_answer(j);
}

/* The mock backend's fault (POST /api/faults/refuse, api "flow"): new connections are
 * refused from their first step on, with Flow's error and a Retry-After. */
static bool refused_by_fault(http_reply_t *out)
{
    unsigned retry_s = 0;
    int status = faults_refusal(EP_FLOW, &retry_s);
    if (!status)
        return false;
    char *extra = NULL;
    if (asprintf(&extra, "Retry-After: %u\r\n%s", retry_s, out->extra_alloc ? out->extra_alloc : "") >= 0) {
        free(out->extra_alloc);
        out->extra_alloc = extra;
    }
    out->status = status;
    out->body = faults_refusal_body(EP_FLOW, status);
    out->len = out->body ? strlen(out->body) : 0;
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
    if (!cors(req, cfg, out) || (faults_active() && refused_by_fault(out)))
        return;
    char client[FLOW_MAX_ID + 1], session[FLOW_MAX_ID + 1], thread[FLOW_MAX_ID + 1];
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
    flow_job_t *j = job_new(x, out);
    if (!j)
        return;
    endpoint_of(cfg, token, j->text, sizeof j->text);
    flow_store_t *st = flow__store();
    st->ops->issue(st, x, token, 32, client_id, session_id, thread_id, cfg, dialect_metrics(x), issued, j);
    job_wait(j, req, out);
}

static void listed(void *arg, int status, json_t *items)
{
    flow_job_t *j = arg;
    if (status == FLOW_STORE_OK)
        reply(&j->rep, 200, "ok",
              json_pack("{s:s, s:o}", "threadId", j->text, j->unnoticed ? "unnoticed" : "history", items));
    else
        reply_store_down(&j->rep, status);
    job_answer(j);
}

static void history_reply(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out, bool unnoticed)
{
    const config_t *cfg = &dialect_live(x)->cfg;
    if (preflight(req, cfg, out, "GET, OPTIONS"))
        return;
    if (!cors(req, cfg, out))
        return;
    char client[FLOW_MAX_ID + 1], thread[FLOW_MAX_ID + 1];
    const char *client_id = param(req, "x-flowai-clientid", "clientId", client, sizeof client);
    const char *thread_id = param(req, "x-flowai-threadid", "threadId", thread, sizeof thread);
    if (!client_ok(cfg, client_id, out))
        return;
    if (!thread_id) {
        reply_error(out, 400, "threadId is required (header x-flowai-threadid)");
        return;
    }
    flow_job_t *j = job_new(x, out);
    if (!j)
        return;
    snprintf(j->text, sizeof j->text, "%s", thread_id);
    j->unnoticed = unnoticed;
    flow_store_t *st = flow__store();
    st->ops->history(st, x, thread_id, unnoticed, listed, j);
    job_wait(j, req, out);
}

void flow_thread_history(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    history_reply(req, x, out, false);
}

void flow_thread_unnoticed(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    history_reply(req, x, out, true);
}
