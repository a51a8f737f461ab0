/*
 * mock/conns.c — introspection (issue 15): GET /api/connections (a page of the open
 * WebSocket sessions, every worker's), GET /api/connections/{id}, GET /api/channels
 * (subscribers per channel and API); and the cross-worker walk every file of server/mock/
 * uses (internal.h).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wshub/api.h"
#include "wshub/server.h"

#define CHAN_ARG (API_MAX_CHANNEL + 1) /* a channel name and its NUL */

/* ------------------------------------------------------------------ the walk */

mock_job_t *mock__job_new(dialect_ctx_t *x, uint64_t id, http_reply_t *out)
{
    size_t n = id ? 1 : x->w->srv->nworkers;
    mock_job_t *j = calloc(1, sizeof *j + n * sizeof j->parts[0]);
    if (!j) {
        mock_error(out, 503, "unavailable", NULL, "out of memory");
        return NULL;
    }
    j->nparts = n;
    j->filter.id = id;
    j->limit = MOCK_PAGE_DEFAULT;
    /* An id is n * stride + base, the base being its worker's index (conn.h, worker.c). */
    for (size_t i = 0; i < n; i++)
        j->parts[i] = (mock_part_t){.job = j, .w = x->w->srv->workers[id ? id % x->w->srv->nworkers : i]};
    return j;
}

static void job_free(mock_job_t *j)
{
    for (size_t i = 0; i < j->nparts; i++)
        json_decref(j->parts[i].out);
    json_decref(j->filter.match);
    if (j->free_arg)
        j->free_arg(j->arg);
    free(j);
}

static bool matches(const mock_filter_t *f, ws_session_t *s, conn_t *c, json_t *desc)
{
    if ((f->id && c->id != f->id) || (f->d && ws_session_dialect(s) != f->d))
        return false;
    const char *k;
    json_t *v;
    json_object_foreach(f->match, k, v) {
        if (!json_equal(v, json_object_get(desc, k)))
            return false;
    }
    return true;
}

static void walk_one(conn_t *c, void *arg)
{
    mock_part_t *p = arg;
    mock_job_t *j = p->job;
    ws_session_t *s = !(c->flags & (CONN_F_CLOSING | CONN_F_DRAIN)) ? ws_session_of(c) : NULL;
    if (!s || (j->filter.id && c->id != j->filter.id) || (j->filter.d && ws_session_dialect(s) != j->filter.d))
        return;
    const dialect_t *d = ws_session_dialect(s);
    json_t *desc = d->describe && (j->need_desc || j->filter.match) ? d->describe(s) : NULL;
    if (matches(&j->filter, s, c, desc)) {
        p->matched++;
        j->visit(p, s, c, desc);
    }
    json_decref(desc);
}

static void job_finish(void *arg)
{
    mock_job_t *j = arg;
    http_reply_t rep = {0};
    j->finish(j, &rep);
    http_complete_reply(j->pending, &rep);
    job_free(j);
}

static void part_ended(mock_job_t *j)
{
    if (atomic_fetch_sub(&j->left, 1) != 1)
        return;
    /* The request's worker is destroyed (its connections with it): answer into nothing here. */
    if (worker_call(j->origin, job_finish, j) != 0)
        job_finish(j);
}

static void part_run(void *arg)
{
    mock_part_t *p = arg;
    conn_foreach(&p->w->net, walk_one, p);
    if (p->job->part_done)
        p->job->part_done(p);
    part_ended(p->job);
}

void mock__job_run(const http_request_t *req, dialect_ctx_t *x, mock_job_t *j, http_reply_t *out)
{
    j->origin = x->w;
    if (!(j->pending = http_defer(req))) {
        mock_error(out, 503, "unavailable", NULL, "out of memory");
        job_free(j);
        return;
    }
    atomic_store(&j->left, j->nparts + 1);
    for (size_t i = 0; i < j->nparts; i++)
        if (worker_call(j->parts[i].w, part_run, &j->parts[i]) != 0)
            part_ended(j); /* that worker is gone: nothing of it to see */
    part_ended(j);
}

/* ------------------------------------------------------------------ shared pieces */

const dialect_t *mock__dialect(const char *name)
{
    for (size_t i = 0; name && dialects[i]; i++)
        if (strcmp(dialects[i]->name, name) == 0)
            return dialects[i];
    return NULL;
}

static const char *const match_keys[] = {"subject", "member", "thread", "client_id", "session_id"};

bool mock__match_key(const char *key)
{
    for (size_t i = 0; i < sizeof match_keys / sizeof match_keys[0]; i++)
        if (strcmp(key, match_keys[i]) == 0)
            return true;
    return false;
}

json_t *mock__match_value(const char *key, json_t *v, const char **why)
{
    if (strcmp(key, "member") != 0) {
        if (dialect_cstr(v) && json_string_length(v) > 0)
            return json_incref(v);
        *why = "expected a non-empty string";
        return NULL;
    }
    if (json_is_integer(v))
        return json_incref(v);
    const char *s = dialect_cstr(v); /* "42" names member 42, as in a cable identifier */
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 18 || strspn(s, "0123456789") != n) {
        *why = "expected a member id (an integer, or a string of digits)";
        return NULL;
    }
    return json_integer((json_int_t)strtoll(s, NULL, 10));
}

uint64_t mock__parse_id(const char *s, size_t len)
{
    uint64_t id = 0;
    if (len == 0 || len > 19)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        id = id * 10 + (uint64_t)(s[i] - '0');
    }
    return id;
}

void mock__iso8601(uint64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    size_t n = gmtime_r(&t, &tm) ? strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
    if (n == 0 || n > 24) { /* a year past 9999 */
        snprintf(out, 32, "%s", "");
        return;
    }
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

json_t *mock__record(ws_session_t *s, conn_t *c, json_t *desc)
{
    char peer[64], since[32];
    const ws_stats_t *st = ws_session_stats(s);
    json_t *o = json_pack("{s:I, s:s, s:s, s:i}", "id", (json_int_t)c->id, "api", ws_session_dialect(s)->name,
                          "peer", conn_peer(c, peer, sizeof peer), "worker", (int)(c->id % c->env->id_stride));
    if (!o)
        return NULL;
    if (st)
        mock__iso8601(st->since_ms, since);
    /* Without counters (out of memory at the upgrade) the keys are there, null. */
    json_object_set_new(o, "connected_at", st ? json_string(since) : json_null());
    json_object_set_new(o, "messages_in", st ? json_integer(st->msgs_in) : json_null());
    json_object_set_new(o, "messages_out", st ? json_integer(st->msgs_out) : json_null());
    json_object_set_new(o, "bytes_in", st ? json_integer((json_int_t)st->bytes_in) : json_null());
    json_object_set_new(o, "bytes_out", st ? json_integer((json_int_t)st->bytes_out) : json_null());
    json_object_set_new(o, "queued_bytes", json_integer((json_int_t)c->queued));
    if (desc)
        json_object_update_missing(o, desc);
    if (!json_object_get(o, "subscriptions"))
        json_object_set_new(o, "subscriptions", json_array());
    return o;
}

/* ------------------------------------------------------------------ query parameters */

/* ?limit= (1..MOCK_PAGE_MAX) and ?after= (an id) into j; false with *out answered. */
static bool read_page(const http_request_t *req, mock_job_t *j, bool after_is_id, http_reply_t *out)
{
    char buf[32];
    const char *v = http_request_query_param(req, "limit", buf, sizeof buf);
    if (v || http_request_has_query_param(req, "limit")) {
        uint64_t n = v ? mock__parse_id(v, strlen(v)) : 0;
        if (n == 0 || n > MOCK_PAGE_MAX) {
            mock_bad_field(out, "limit", "expected an integer from 1 to 10000");
            return false;
        }
        j->limit = (size_t)n;
    }
    if (!after_is_id)
        return true;
    v = http_request_query_param(req, "after", buf, sizeof buf);
    if (v || http_request_has_query_param(req, "after")) {
        if (!v || !(j->after = mock__parse_id(v, strlen(v)))) {
            mock_bad_field(out, "after", "expected a connection id (the \"next\" of the previous page)");
            return false;
        }
    }
    return true;
}

/* ?api= into j's filter; false with *out answered. */
static bool read_api(const http_request_t *req, mock_job_t *j, http_reply_t *out)
{
    char buf[32];
    const char *v = http_request_query_param(req, "api", buf, sizeof buf);
    if ((v || http_request_has_query_param(req, "api")) && !(j->filter.d = mock__dialect(v))) {
        mock_bad_field(out, "api", "expected service, cable, flow, moderation or echo");
        return false;
    }
    return true;
}

/* ?api= and the filter keys (?subject=, ?member=, ...) into j's filter; false with *out
 * answered. */
static bool read_filter(const http_request_t *req, mock_job_t *j, http_reply_t *out)
{
    char buf[512];
    const char *v;
    if (!read_api(req, j, out))
        return false;
    for (size_t i = 0; i < sizeof match_keys / sizeof match_keys[0]; i++) {
        const char *k = match_keys[i], *why = "too long, or holds %00";
        if (!(v = http_request_query_param(req, k, buf, sizeof buf)) && !http_request_has_query_param(req, k))
            continue;
        json_t *s = v ? json_string(v) : NULL, *m = s ? mock__match_value(k, s, &why) : NULL;
        json_decref(s);
        if (!m || (!j->filter.match && !(j->filter.match = json_object()))) {
            json_decref(m);
            mock_bad_field(out, k, why);
            return false;
        }
        json_object_set_new(j->filter.match, k, m);
    }
    return true;
}

/* ------------------------------------------------------------------ GET /api/connections */

static int by_id(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
    return x < y ? -1 : x > y;
}

/* Sorts the records of arr by id and keeps the first limit; returns whether any was cut. */
static bool keep_first(json_t *arr, size_t limit)
{
    size_t n = json_array_size(arr);
    json_t **v = n ? malloc(n * sizeof *v) : NULL;
    if (!v)
        return false;
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, by_id);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        if (i < limit)
            json_array_append_new(arr, v[i]);
        else
            json_decref(v[i]);
    free(v);
    return n > limit;
}

static void visit_list(mock_part_t *p, ws_session_t *s, conn_t *c, json_t *desc)
{
    if (c->id <= p->job->after)
        return;
    if (!p->out)
        p->out = json_array();
    json_array_append_new(p->out, mock__record(s, c, desc));
    /* Bounded while it walks: never more than twice a page at once. */
    if (json_array_size(p->out) >= 2 * p->job->limit && keep_first(p->out, p->job->limit))
        p->done = 1; /* some were cut: there is a next page */
}

static void list_part_done(mock_part_t *p)
{
    if (keep_first(p->out, p->job->limit))
        p->done = 1;
}

static void finish_list(mock_job_t *j, http_reply_t *out)
{
    json_t *all = json_array();
    size_t total = 0;
    bool more = false;
    for (size_t i = 0; i < j->nparts; i++) {
        total += j->parts[i].matched;
        more = more || j->parts[i].done;
        if (j->parts[i].out)
            json_array_extend(all, j->parts[i].out);
    }
    more = keep_first(all, j->limit) || more;
    json_t *last = json_array_get(all, json_array_size(all) - 1);
    json_t *next = more && last ? json_copy(json_object_get(last, "id")) : json_null();
    mock_reply_json(out, 200, json_pack("{s:o, s:I, s:I, s:o}", "connections", all, "count",
                                        (json_int_t)json_array_size(all), "total", (json_int_t)total, "next", next));
}

void mock_connections(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out) || !mock_method(req, "GET", out))
        return;
    mock_job_t *j = mock__job_new(x, 0, out);
    if (!j)
        return;
    j->need_desc = true;
    j->visit = visit_list;
    j->part_done = list_part_done;
    j->finish = finish_list;
    if (!read_page(req, j, true, out) || !read_filter(req, j, out)) {
        json_decref(j->filter.match);
        free(j);
        return;
    }
    mock__job_run(req, x, j, out);
}

/* ------------------------------------------------------------------ GET /api/connections/{id} */

static void visit_one(mock_part_t *p, ws_session_t *s, conn_t *c, json_t *desc)
{
    json_decref(p->out);
    p->out = mock__record(s, c, desc);
}

static void finish_one(mock_job_t *j, http_reply_t *out)
{
    if (j->parts[0].out) {
        mock_reply_json(out, 200, json_incref(j->parts[0].out));
        return;
    }
    char msg[96];
    snprintf(msg, sizeof msg, "no open WebSocket connection has the id %llu", (unsigned long long)j->filter.id);
    mock_error(out, 404, "not_found", "id", msg);
}

/* /api/connections/{id}[/send|/close]: the id names a connection on one worker. */
void mock_connection(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out))
        return;
    size_t len, plen = strlen("/api/connections/");
    const char *path = http_request_path(req, &len) + plen;
    len -= plen;
    const char *slash = memchr(path, '/', len);
    size_t idlen = slash ? (size_t)(slash - path) : len;
    uint64_t id = mock__parse_id(path, idlen);
    const char *verb = slash ? slash + 1 : "";
    size_t vlen = slash ? len - idlen - 1 : 0;
    if (!id) {
        mock_bad_field(out, "id", "expected a connection id (decimal digits) after /api/connections/");
    } else if (vlen == 4 && memcmp(verb, "send", 4) == 0) {
        if (mock_method(req, "POST", out))
            mock__send_one(req, x, id, out);
    } else if (vlen == 5 && memcmp(verb, "close", 5) == 0) {
        if (mock_method(req, "POST", out))
            mock__close_one(req, x, id, out);
    } else if (slash) {
        mock_error(out, 404, "not_found", NULL, "expected /api/connections/{id}, /{id}/send or /{id}/close");
    } else if (mock_method(req, "GET", out)) {
        mock_job_t *j = mock__job_new(x, id, out);
        if (!j)
            return;
        j->need_desc = true;
        j->visit = visit_one;
        j->finish = finish_one;
        mock__job_run(req, x, j, out);
    }
}

/* ------------------------------------------------------------------ GET /api/channels */

/* The channel cursor and prefix of a page of channels. */
typedef struct chan_query {
    char after[CHAN_ARG];
    char prefix[CHAN_ARG];
    size_t prefix_len;
} chan_query_t;

static bool keep_first_channels(json_t *obj, size_t limit);

static void visit_channels(mock_part_t *p, ws_session_t *s, conn_t *c, json_t *desc)
{
    (void)c;
    const chan_query_t *q = p->job->arg;
    const char *api = ws_session_dialect(s)->name;
    size_t i;
    json_t *sub;
    json_array_foreach(json_object_get(desc, "subscriptions"), i, sub) {
        json_t *ch = json_object_get(sub, "channel");
        const char *name = json_string_value(ch);
        size_t len = json_string_length(ch);
        if (!name || json_is_true(json_object_get(sub, "pending")) || strncmp(name, q->prefix, q->prefix_len) != 0 ||
            (q->after[0] && strcmp(name, q->after) <= 0))
            continue;
        if (!p->out)
            p->out = json_object();
        json_t *counts = json_object_getn(p->out, name, len);
        if (!counts)
            json_object_setn_new(p->out, name, len, counts = json_object());
        json_t *n = json_object_get(counts, api);
        json_object_set_new(counts, api, json_integer(n ? json_integer_value(n) + 1 : 1));
    }
    /* Bounded while it walks, as visit_list: a channel cut here sorts after a page of others
     * kept, so it is never in the answer, and its counts need not be whole. */
    if (json_object_size(p->out) >= 2 * p->job->limit && keep_first_channels(p->out, p->job->limit))
        p->done = 1;
}

static int by_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The keys of obj, sorted (borrowed from obj; malloc'd array, NULL when empty or out of
 * memory). */
static const char **sorted_keys(json_t *obj, size_t *n)
{
    *n = json_object_size(obj);
    const char **names = *n ? malloc(*n * sizeof *names) : NULL, *k;
    json_t *v;
    size_t i = 0;
    if (!names)
        return NULL;
    json_object_foreach(obj, k, v) names[i++] = k;
    qsort(names, *n, sizeof *names, by_name);
    return names;
}

/* Keeps the first limit channels (by name) of the object obj; returns whether any was cut. */
static bool keep_first_channels(json_t *obj, size_t limit)
{
    size_t n, i;
    if (json_object_size(obj) <= limit)
        return false;
    const char **names = sorted_keys(obj, &n);
    if (!names)
        return false;
    json_t *keep = json_object();
    for (i = 0; i < limit; i++)
        json_object_set(keep, names[i], json_object_get(obj, names[i]));
    free(names);
    json_object_clear(obj);
    json_object_update(obj, keep);
    json_decref(keep);
    return true;
}

static void channels_part_done(mock_part_t *p)
{
    if (keep_first_channels(p->out, p->job->limit))
        p->done = 1;
}

/* Adds the counts of part into all: {channel: {api: n}}. */
static void merge_counts(json_t *all, json_t *part)
{
    const char *ch, *api;
    json_t *counts, *n;
    json_object_foreach(part, ch, counts) {
        json_t *into = json_object_get(all, ch);
        if (!into)
            json_object_set_new(all, ch, into = json_object());
        json_object_foreach(counts, api, n) {
            json_t *had = json_object_get(into, api);
            json_object_set_new(into, api, json_integer(json_integer_value(n) + (had ? json_integer_value(had) : 0)));
        }
    }
}

static void finish_channels(mock_job_t *j, http_reply_t *out)
{
    json_t *all = json_object();
    bool more = false;
    for (size_t i = 0; i < j->nparts; i++) {
        merge_counts(all, j->parts[i].out);
        more = more || j->parts[i].done;
    }
    more = keep_first_channels(all, j->limit) || more;
    size_t n;
    const char **names = sorted_keys(all, &n);
    json_t *list = json_array();
    for (size_t i = 0; names && i < n; i++) {
        json_t *counts = json_object_get(all, names[i]), *c;
        json_int_t total = 0;
        const char *api;
        json_object_foreach(counts, api, c) total += json_integer_value(c);
        json_array_append_new(list, json_pack("{s:s, s:O, s:I}", "channel", names[i], "subscribers", counts, "total",
                                              total));
    }
    json_t *next = more && n && names ? json_string(names[n - 1]) : json_null();
    free(names);
    json_decref(all);
    mock_reply_json(out, 200, json_pack("{s:o, s:I, s:o}", "channels", list, "count",
                                        (json_int_t)json_array_size(list), "next", next));
}

static bool read_chan_query(const http_request_t *req, chan_query_t *q, http_reply_t *out)
{
    static const char *const names[] = {"after", "prefix"};
    char *dst[] = {q->after, q->prefix};
    for (size_t i = 0; i < 2; i++) {
        if (!http_request_query_param(req, names[i], dst[i], CHAN_ARG) &&
            http_request_has_query_param(req, names[i])) {
            mock_bad_field(out, names[i], "a channel name: at most 256 bytes, without %00");
            return false;
        }
    }
    q->prefix_len = strlen(q->prefix);
    return true;
}

void mock_channels(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out) || !mock_method(req, "GET", out))
        return;
    mock_job_t *j = mock__job_new(x, 0, out);
    chan_query_t *q = j ? calloc(1, sizeof *q) : NULL;
    if (!q) {
        if (j)
            mock_error(out, 503, "unavailable", NULL, "out of memory");
        free(j);
        return;
    }
    j->arg = q;
    j->free_arg = free;
    j->need_desc = true;
    j->visit = visit_channels;
    j->part_done = channels_part_done;
    j->finish = finish_channels;
    if (!read_page(req, j, false, out) || !read_chan_query(req, q, out) || !read_api(req, j, out)) {
        free(q);
        free(j);
        return;
    }
    mock__job_run(req, x, j, out);
}
