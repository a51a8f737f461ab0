/*
 * moderation — API A at /text/moderation (PROTOCOLS.md §A, seeds/moderation-websocket.txt):
 * {sample, reference} in, a scored Chatsight-shaped answer out, over WebSocket (answers in
 * completion order, correlated by response.metadata.self_reference) and as
 * POST /text/moderation (same request, same body).
 *
 * Owns: the API key check and its documented failure (101, then a TCP reset; or 401),
 * request validation and the error form, the per-connection in-flight limit, the optional
 * random delay, the response envelope and metadata. Scoring (modengine) runs on the libuv
 * thread pool, never on a worker loop (DESIGN.md decision 7).
 * Never: touches sockets or scores text itself.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <uv.h>

#include "wshub/dialect.h"
#include "wshub/faults.h"
#include "wshub/http.h"
#include "wshub/list.h"
#include "wshub/log.h"
#include "wshub/metrics.h"
#include "wshub/modengine.h"
#include "wshub/ws.h"
#include "wshub/wtimer.h"

#include "moderation_json.h"

#define API_NAME "chatsight-lang-text"
#define API_VERSION "wshub-1.0"
#define TOS "Mock moderation by wshub: scores come from a local word-list classifier, not Chatsight."
#define DEV_KEY "wshub-development-moderation-key"

typedef struct mod_sess {
    ws_session_t *s; /* NULL once the connection is gone */
    dialect_ctx_t *x;
    uint32_t inflight; /* requests waiting for their answers */
    uint32_t refs;     /* the session + each job that points here */
    bool refused;      /* bad key: the upgrade completes, then the connection is aborted */
} mod_sess_t;

typedef struct mod_job {
    uv_work_t work;
    dialect_ctx_t *x;
    mod_sess_t *sess;        /* WebSocket origin, or NULL */
    http_pending_t *pending; /* HTTP origin, or NULL */
    const modengine_t *engine;
    char *sample;
    size_t len;
    json_t *reference;       /* the request's reference (string) or JSON null */
    json_t *override;        /* a mock fault's answer (wshub/faults.h), or NULL */
    modengine_scores_t scores; /* modengine result, made on the pool thread */
    bool scored;               /* scores is set (false: out of memory) */
    uint64_t compute_us;
    wtimer_t delay;
    list_node_t node;        /* in the worker's list of delayed jobs */
} mod_job_t;

typedef struct mod_worker {
    list_node_t delayed;     /* mod_job_t.node: answers held back by moderation.delay_ms */
} mod_worker_t;

/* The classifier: loaded before the workers start, read-only (shared by the pool threads). */
static modengine_t *engine;

/* ------------------------------------------------------------------ answers */

static void uuid4(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)rand();
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* {"api":…,"success":false,"error":{"message":m},"response":{"metadata":{"self_reference":ref}}} */
static char *error_body(const char *message, json_t *reference)
{
    json_t *body = json_pack("{s:s, s:b, s:{s:s}, s:{s:{s:O}}}", "api", API_NAME, "success", 0, "error", "message",
                             message, "response", "metadata", "self_reference",
                             reference ? reference : json_null());
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

/* A mock fault's override of the scored members: scores replace theirs (objects member by
 * member), a verdict replaces suggestedAction (its score kept unless given). */
static void apply_override(json_t *resp, json_t *o)
{
    json_t *scores = json_object_get(o, "scores"), *verdict = json_object_get(o, "verdict");
    if (!resp)
        return;
    if (scores)
        json_object_update_recursive(resp, scores);
    if (verdict) {
        /* Without a score: the scored one when the action is the same, else 1 (flag, delete)
         * or 0 (pass). */
        const char *action = json_string_value(json_object_get(verdict, "action"));
        json_t *sa = json_object_get(resp, "suggestedAction"), *score = json_object_get(verdict, "score");
        double v = score                                                     ? json_number_value(score)
                   : dialect_str_is(json_array_get(sa, 0), action)           ? json_number_value(json_array_get(sa, 1))
                   : strcmp(action, "pass") == 0                             ? 0.0
                                                                             : 1.0;
        json_object_set_new(resp, "suggestedAction", json_pack("[s, f]", action, v));
    }
}

/* The metrics' index of an override's answer: its verdict's action, 3 for a failure, or a. */
static int override_action(json_t *o, int a)
{
    if (json_is_false(json_object_get(o, "success")))
        return 3;
    const char *v = json_string_value(json_object_get(json_object_get(o, "verdict"), "action"));
    for (int i = 0; v && i < 3; i++)
        if (strcmp(v, moderation_action_name((modengine_action_t)i)) == 0)
            return i;
    return a;
}

static char *answer_body(mod_job_t *j)
{
    char uuid[37];
    uuid4(uuid);
    json_t *resp = moderation_scores_json(&j->scores);
    if (j->override)
        apply_override(resp, j->override);
    /* The engine's extra detail (categories, detectors) stays in the answer: it explains
     * the scores, and Chatsight clients ignore members they do not know. */
    uint64_t ms = (j->compute_us + 999) / 1000;
    json_object_set_new(resp, "metadata",
                        json_pack("{s:I, s:s, s:b, s:b, s:O}", "computeTime", (json_int_t)ms, "uuid", uuid,
                                  "warningIssued", 0, "latencyAlert", ms > 1000, "self_reference", j->reference));
    json_object_set_new(resp, "operator", json_object());
    json_t *body = json_pack("{s:s, s:b, s:o, s:s, s:s}", "api", API_NAME, "success", 1, "response", resp, "TOS",
                             TOS, "version", API_VERSION);
    char *text = body ? json_dumps(body, MODERATION_JSON_FLAGS) : NULL;
    json_decref(body);
    return text;
}

static void sess_put(mod_sess_t *m)
{
    if (--m->refs == 0)
        free(m);
}

static void job_free(mod_job_t *j)
{
    free(j->sample);
    json_decref(j->reference);
    json_decref(j->override);
    free(j);
}

/* Sends the answer (or drops it if its connection is gone) and frees the job. */
static void deliver(mod_job_t *j)
{
    /* A mock fault's failure answers as the server's own internal errors do. */
    bool failed = j->override && json_is_false(json_object_get(j->override, "success"));
    bool scored = j->scored && !failed;
    char *text = scored ? answer_body(j)
                 : failed ? error_body(json_string_value(json_object_get(j->override, "message")), j->reference)
                          : error_body("internal error: the sample could not be scored", j->reference);
    if (j->pending) {
        http_complete(j->pending, scored && text ? 200 : 500, "application/json", text, text ? strlen(text) : 0);
        text = NULL;
    } else if (j->sess) {
        j->sess->inflight--;
        if (j->sess->s && text)
            ws_session_send_text(j->sess->s, text, strlen(text));
        sess_put(j->sess);
    }
    free(text);
    job_free(j);
}

static void on_delay(wtimer_t *t)
{
    mod_job_t *j = container_of(t, mod_job_t, delay);
    list_remove(&j->node);
    deliver(j);
}

/* ------------------------------------------------------------------ the thread pool */

static void work(uv_work_t *req)
{
    mod_job_t *j = container_of(req, mod_job_t, work);
    uint64_t t0 = uv_hrtime();
    j->scored = modengine_score(j->engine, j->sample, j->len, &j->scores) == 0;
    j->compute_us = (uv_hrtime() - t0) / 1000;
}

static void after_work(uv_work_t *req, int status)
{
    mod_job_t *j = container_of(req, mod_job_t, work);
    metrics_t *mt = dialect_metrics(j->x);
    (void)status; /* UV_ECANCELED never happens: nothing cancels these */
    metrics_add(&mt->mod_latency_sum_us, j->compute_us);
    metrics_add(&mt->mod_latency_count, 1);
    for (int b = 0; b < METRICS_MOD_BUCKETS; b++)
        if (j->compute_us <= metrics_mod_bucket_us[b])
            metrics_add(&mt->mod_latency_buckets[b], 1);
    int a = j->scored ? (int)j->scores.action : 3; /* pass, flag, delete (the enum's order); errors */
    if (j->override) /* a mock fault's answer is counted as what it says */
        a = override_action(j->override, a);
    metrics_add(&mt->mod_answers[a], 1);

    uint32_t delay = dialect_live(j->x)->cfg.moderation_delay_ms;
    if (delay) {
        /* Answers overtake one another, as they can with the real service. */
        uint32_t r;
        if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
            r = (uint32_t)rand();
        mod_worker_t *mw = dialect_state(j->x);
        /* Without a timer (out of memory) the answer goes out now, never parked (issue 11). */
        if (dialect_timer_start(j->x, &j->delay, dialect_now(j->x) + r % (delay + 1), on_delay) == 0) {
            list_insert_tail(&mw->delayed, &j->node);
            return;
        }
    }
    deliver(j);
}

/* ------------------------------------------------------------------ requests */

/* Code points in a valid UTF-8 string (the WebSocket layer validated it; JSON strings are). */
static size_t code_points(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/*
 * Validates a request body and starts a job. Returns NULL with *error set (a message) when
 * the request is invalid; *reference gets the reference to echo (new reference, or NULL).
 */
static mod_job_t *start_job(dialect_ctx_t *x, const char *body, size_t len, json_t **reference, const char **error)
{
    const live_t *live = dialect_live(x);
    *reference = NULL;
    json_t *root = json_loadb(body, len, DIALECT_JSON_FLAGS, NULL);
    if (!json_is_object(root)) {
        *error = root ? "the request must be a JSON object {\"sample\": …, \"reference\": …}"
                      : "the request is not valid JSON";
        json_decref(root);
        return NULL;
    }
    /* Echoed as sent, whatever its type (a timestamp number is a documented choice). */
    json_t *ref = json_object_get(root, "reference");
    *reference = ref ? json_incref(ref) : json_null();
    json_t *sample = json_object_get(root, "sample");
    if (!json_is_string(sample)) {
        *error = sample ? "sample must be a string" : "sample is required";
        json_decref(root);
        return NULL;
    }
    size_t slen = json_string_length(sample);
    if (code_points(json_string_value(sample), slen) > (size_t)live->cfg.moderation_max_sample_chars) {
        *error = "sample is longer than the limit (moderation.max_sample_chars)";
        json_decref(root);
        return NULL;
    }
    mod_job_t *j = calloc(1, sizeof *j);
    if (!j || !(j->sample = malloc(slen + 1))) {
        free(j);
        *error = "out of memory";
        json_decref(root);
        return NULL;
    }
    memcpy(j->sample, json_string_value(sample), slen + 1);
    j->len = slen;
    j->x = x;
    j->engine = engine;
    j->reference = json_incref(*reference);
    if (faults_active()) /* the mock backend's override for this reference or text */
        j->override = faults_moderation_override(j->reference, j->sample, j->len);
    json_decref(root);
    return j;
}

static int queue_job(mod_job_t *j)
{
    metrics_add(&dialect_metrics(j->x)->mod_requests, 1);
    return dialect_queue_work(j->x, &j->work, work, after_work);
}

/* Is this the right key? Compared in constant time against every configured key. */
static bool key_ok(const config_t *cfg, const char *key, size_t len)
{
    if (!key)
        return false;
    if (cfg->moderation_keys.n == 0)
        return len == strlen(DEV_KEY) && CRYPTO_memcmp(key, DEV_KEY, len) == 0;
    bool ok = false;
    for (size_t i = 0; i < cfg->moderation_keys.n; i++) {
        const char *k = cfg->moderation_keys.items[i];
        if (strlen(k) == len && CRYPTO_memcmp(k, key, len) == 0)
            ok = true;
    }
    return ok;
}

static bool request_key_ok(const http_request_t *req, const config_t *cfg)
{
    size_t len = 0;
    const char *key = http_request_header(req, "x-chatsight-api-auth", &len);
    if (key_ok(cfg, key, len))
        return true;
    char buf[512];
    if (cfg->moderation_query_key && (key = http_request_query_param(req, "api_key", buf, sizeof buf)))
        return key_ok(cfg, key, strlen(key));
    return false;
}

bool moderation_http_authorized(const http_request_t *req, dialect_ctx_t *x)
{
    return request_key_ok(req, &dialect_live(x)->cfg);
}

/* ------------------------------------------------------------------ WebSocket */

static void send_error(mod_sess_t *m, const char *message, json_t *reference)
{
    char *text = error_body(message, reference);
    if (text)
        ws_session_send_text(m->s, text, strlen(text));
    free(text);
    metrics_add(&dialect_metrics(m->x)->mod_answers[3], 1);
}

static void on_message(ws_session_t *s, int opcode, const uint8_t *msg, size_t len)
{
    mod_sess_t *m = ws_session_data(s);
    if (m->refused)
        return;
    if (opcode != WS_OP_TEXT) {
        send_error(m, "send the request as a JSON text message", NULL);
        return;
    }
    json_t *ref = NULL;
    const char *error = NULL;
    if (m->inflight >= (uint32_t)dialect_live(m->x)->cfg.moderation_max_in_flight) {
        json_t *root = json_loadb((const char *)msg, len, DIALECT_JSON_FLAGS, NULL);
        json_t *r = json_object_get(root, "reference");
        send_error(m, "too many requests in flight on this connection (moderation.max_in_flight)", r);
        json_decref(root);
        return;
    }
    mod_job_t *j = start_job(m->x, (const char *)msg, len, &ref, &error);
    if (!j) {
        send_error(m, error, ref);
        json_decref(ref);
        return;
    }
    json_decref(ref);
    j->sess = m;
    m->refs++;
    m->inflight++;
    if (queue_job(j) != 0) {
        m->inflight--;
        sess_put(m);
        send_error(m, "internal error: the request could not be queued", j->reference);
        job_free(j);
    }
}

static void accept_upgrade(const http_request_t *req, dialect_ctx_t *x, dialect_accept_t *out)
{
    const live_t *live = dialect_live(x);
    bool ok = request_key_ok(req, &live->cfg);
    if (!ok) {
        if (live->cfg.moderation_auth_failure == MODERATION_AUTH_HTTP401) {
            out->status = 401;
            out->hs_reason = HS_UNAUTHORIZED;
            out->why = "bad or missing x-chatsight-api-auth";
            out->body = error_body("unauthorized: a valid x-chatsight-api-auth key is required", NULL);
            return; /* http/upgrade.c counts the refusal */
        }
        metrics_add(&dialect_metrics(x)->handshake_failures[HS_UNAUTHORIZED], 1);
    }
    mod_sess_t *m = calloc(1, sizeof *m);
    if (!m) {
        out->status = 503;
        out->hs_reason = HS_OVER_CAPACITY;
        out->why = "out of memory";
        return;
    }
    m->refs = 1;
    m->refused = !ok;
    out->data = m;
}

static void on_open(ws_session_t *s)
{
    mod_sess_t *m = ws_session_data(s);
    m->s = s;
    m->x = dialect_ctx(s);
    /* "Authentication failures are communicated at connection time, and the connection is
     * terminated immediately. We do not send FIN packets" (the seed document). */
    if (m->refused)
        ws_session_abort(s, "bad or missing x-chatsight-api-auth");
}

static void on_close(ws_session_t *s)
{
    mod_sess_t *m = ws_session_data(s);
    if (!m)
        return;
    m->s = NULL; /* jobs still in flight complete into nothing */
    sess_put(m);
    ws_session_set_data(s, NULL);
}

/* ------------------------------------------------------------------ HTTP */

void moderation_http(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    const char *method = http_request_method(req);
    if (strcmp(method, "POST") != 0) {
        out->status = strcmp(method, "GET") == 0 ? 426 : 405;
        out->body = error_body(out->status == 426 ? "use POST, or a WebSocket upgrade" : "use POST", NULL);
        out->extra = out->status == 426 ? "Upgrade: websocket\r\n" : "Allow: POST, GET\r\n";
        out->len = out->body ? strlen(out->body) : 0;
        out->hs_reason = 1 + HS_METHOD;
        return;
    }
    if (!request_key_ok(req, &dialect_live(x)->cfg)) {
        out->status = 401;
        out->body = error_body("unauthorized: a valid x-chatsight-api-auth key is required", NULL);
        out->len = out->body ? strlen(out->body) : 0;
        out->hs_reason = 1 + HS_UNAUTHORIZED;
        return;
    }
    size_t blen;
    const uint8_t *body = http_request_body(req, &blen);
    json_t *ref = NULL;
    const char *error = NULL;
    mod_job_t *j = start_job(x, body ? (const char *)body : "", blen, &ref, &error);
    if (!j) {
        out->status = 400;
        out->body = error_body(error, ref);
        out->len = out->body ? strlen(out->body) : 0;
        json_decref(ref);
        metrics_add(&dialect_metrics(x)->mod_answers[3], 1);
        return;
    }
    json_decref(ref);
    /* Queued first: its completion always comes later, on this loop, so deferring after
     * cannot race it; a failure here is answered at once. */
    if (queue_job(j) != 0) {
        out->status = 500;
        out->body = error_body("internal error: the request could not be queued", j->reference);
        out->len = out->body ? strlen(out->body) : 0;
        job_free(j);
        return;
    }
    j->pending = http_defer(req); /* NULL when out of memory: the answer is then dropped */
    if (!j->pending) {
        out->status = 503;
        out->body = error_body("out of memory", NULL);
        out->len = out->body ? strlen(out->body) : 0;
    }
}

/* ------------------------------------------------------------------ process and worker state */

static int mod_process_init(const config_t *cfg, char *err, size_t errlen)
{
    engine = modengine_load((const char *const *)cfg->moderation_lists.items, cfg->moderation_lists.n,
                            cfg->moderation_no_default_list, err, errlen);
    return engine ? 0 : -1;
}

static void mod_process_free(void)
{
    modengine_free(engine);
    engine = NULL;
}

static int mod_worker_start(dialect_ctx_t *x)
{
    mod_worker_t *mw = calloc(1, sizeof *mw);
    if (!mw)
        return UV_ENOMEM;
    list_init(&mw->delayed);
    dialect_set_state(x, mw);
    return 0;
}

/* Answers still held back when the worker stops are dropped with their connections. */
static void mod_worker_stop(dialect_ctx_t *x)
{
    mod_worker_t *mw = dialect_state(x);
    if (!mw)
        return;
    while (!list_empty(&mw->delayed)) {
        mod_job_t *j = container_of(mw->delayed.next, mod_job_t, node);
        list_remove(&j->node);
        dialect_timer_stop(x, &j->delay);
        deliver(j);
    }
    free(mw);
    dialect_set_state(x, NULL);
}

/* Faster than limits.message_rate: an error answer, then ws_session closes 1008. */
static void on_rate_limited(ws_session_t *s)
{
    mod_sess_t *m = ws_session_data(s);
    if (m)
        send_error(m, "rate limited: requests sent faster than the server allows", NULL);
}

const dialect_t dialect_moderation = {
    .on_rate_limited = on_rate_limited,
    .name = "moderation",
    .path = "/text/moderation",
    .endpoint = EP_MODERATION,
    .process_init = mod_process_init,
    .process_free = mod_process_free,
    .accept = accept_upgrade,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
    .worker_start = mod_worker_start,
    .worker_stop = mod_worker_stop,
};
