/*
 * mock/scenario.c — a scenario's document (include/wshub/scenario.h): its checks, which name
 * the field at fault, and its ${placeholders}. Running it: scenario_run.c.
 */
#include "internal_scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/rand.h>

#include "wshub/mock.h"
#include "wshub/util.h"

/* ------------------------------------------------------------------ placeholders */

static void random_hex(char *out, size_t n)
{
    unsigned char b[32];
    if (RAND_bytes(b, (int)(n / 2)) != 1) /* as circle_uuid: never uninitialised bytes */
        for (size_t i = 0; i < n / 2; i++)
            b[i] = (unsigned char)rand();
    for (size_t i = 0; i < n / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* The value of a placeholder name (a new reference), or NULL when unknown. */
static json_t *lookup(scenario_t *s, const char *name, size_t len)
{
    char key[64];
    if (len >= sizeof key)
        return NULL;
    memcpy(key, name, len);
    key[len] = 0;
    if (strcmp(key, "now") == 0) {
        char ts[32];
        util_iso8601_now(ts);
        return json_string(ts);
    }
    if (strcmp(key, "now_ms") == 0) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        return json_integer((json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    }
    if (strcmp(key, "rand") == 0) {
        uint32_t r;
        RAND_bytes((unsigned char *)&r, sizeof r);
        return json_integer(r % 1000000000u);
    }
    if (strcmp(key, "uuid") == 0) {
        char h[33];
        random_hex(h, 32);
        return json_sprintf("%.8s-%.4s-4%.3s-a%.3s-%.12s", h, h + 8, h + 13, h + 17, h + 20);
    }
    if (strcmp(key, "n") == 0)
        return json_integer(s->passes);
    if (strcmp(key, "i") == 0)
        return json_integer(s->depth > 1 ? s->stack[s->depth - 1].iter : 0);
    json_t *v = json_object_get(s->vars, key);
    return v ? json_incref(v) : NULL;
}

/* v with its ${…} filled in (a new reference); NULL with s->error set. A string that is one
 * placeholder alone becomes the value itself (a number stays a number). */
/* Counts n more bytes of what one step's placeholders make: false (and s->error) past
 * SCN_MAX_FILLED, so that values saved from answers cannot be multiplied without a bound. */
static bool fill_charge(scenario_t *s, size_t n)
{
    s->filled += n;
    if (s->filled <= SCN_MAX_FILLED)
        return true;
    snprintf(s->error, sizeof s->error, "the step's placeholders make more than %d bytes", SCN_MAX_FILLED);
    return false;
}

json_t *scenario_fill(scenario_t *s, const json_t *v)
{
    if (json_is_object(v) || json_is_array(v)) {
        json_t *out = json_is_object(v) ? json_object() : json_array();
        const char *k;
        json_t *item;
        size_t i;
        if (json_is_object(v)) {
            json_object_foreach((json_t *)v, k, item) {
                json_t *f = scenario_fill(s, item);
                if (!f || json_object_set_new(out, k, f) != 0)
                    return json_decref(out), NULL;
            }
        } else {
            json_array_foreach(v, i, item) {
                json_t *f = scenario_fill(s, item);
                if (!f || json_array_append_new(out, f) != 0)
                    return json_decref(out), NULL;
            }
        }
        return out;
    }
    if (!json_is_string(v))
        return json_deep_copy(v);
    const char *str = json_string_value(v), *p = str;
    size_t len = json_string_length(v);
    if (len > 3 && str[0] == '$' && str[1] == '{' && str[len - 1] == '}' && !memchr(str + 2, '}', len - 3)) {
        json_t *val = lookup(s, str + 2, len - 3);
        if (!val)
            snprintf(s->error, sizeof s->error, "unknown placeholder %.60s", str);
        else if (!fill_charge(s, json_dumpb(val, NULL, 0, JSON_ENCODE_ANY | JSON_COMPACT)))
            json_decref(val), val = NULL;
        return val;
    }
    char *buf = NULL;
    size_t blen = 0;
    FILE *mf = open_memstream(&buf, &blen);
    if (!mf)
        return NULL;
    while (p < str + len) {
        const char *open = strstr(p, "${"), *close = open ? strchr(open, '}') : NULL;
        if (!open || !close) {
            fwrite(p, 1, (size_t)(str + len - p), mf);
            break;
        }
        fwrite(p, 1, (size_t)(open - p), mf);
        json_t *val = lookup(s, open + 2, (size_t)(close - open - 2));
        if (!val) {
            snprintf(s->error, sizeof s->error, "unknown placeholder %.*s", (int)(close - open + 1), open);
            fclose(mf);
            free(buf);
            return NULL;
        }
        char *text = json_is_string(val) ? NULL : json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
        const char *piece = text ? text : json_string_value(val);
        if (!piece) { /* json_dumps out of memory */
            snprintf(s->error, sizeof s->error, "out of memory");
            json_decref(val);
            fclose(mf);
            free(buf);
            return NULL;
        }
        bool fits = fill_charge(s, (size_t)(open - p) + strlen(piece));
        if (fits)
            fputs(piece, mf);
        free(text);
        json_decref(val);
        if (!fits) {
            fclose(mf);
            free(buf);
            return NULL;
        }
        p = close + 1;
    }
    fclose(mf);
    json_t *out = json_stringn(buf ? buf : "", blen);
    free(buf);
    return out;
}

/* ------------------------------------------------------------------ validation */

static int bad(char *err, size_t errlen, const char *path, const char *msg)
{
    snprintf(err, errlen, "%s: %s", path, msg);
    return -1;
}

static bool is_int(const json_t *v, long long min, long long max)
{
    return json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max;
}

static int check_steps(const json_t *steps, const char *path, int depth, uint64_t *min_wait, char *err,
                       size_t errlen);

/* One step: exactly one action. *min_wait adds what it surely waits. */
static int check_step(const json_t *st, const char *path, int depth, uint64_t *min_wait, char *err, size_t errlen)
{
    char sub[160];
    if (!json_is_object(st))
        return bad(err, errlen, path, "expected an object");
    const char *actions[] = {"publish", "request", "wait_ms", "repeat", "log"};
    int n = 0;
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++)
        n += json_object_get(st, actions[i]) != NULL;
    if (n != 1)
        return bad(err, errlen, path, "expected exactly one of publish, request, wait_ms, repeat, log");
    const json_t *v;
    if ((v = json_object_get(st, "publish"))) {
        snprintf(sub, sizeof sub, "%.140s.publish", path);
        if (!json_is_object(v))
            return bad(err, errlen, sub, "expected the body of POST /api/publish: {channel, event, data}");
    } else if ((v = json_object_get(st, "request"))) {
        snprintf(sub, sizeof sub, "%.140s.request", path);
        const char *m = json_string_value(json_object_get(v, "method"));
        const char *p = json_string_value(json_object_get(v, "path"));
        if (!json_is_object(v) || !m || !p || p[0] != '/' || strpbrk(m, " \r\n") || strpbrk(p, " \r\n"))
            return bad(err, errlen, sub, "expected {method: string, path: \"/...\", body?: any}");
        const json_t *hs = json_object_get(v, "headers"), *hv;
        const char *hk;
        if (hs && !json_is_object(hs))
            return bad(err, errlen, sub, "headers: expected an object of strings");
        json_object_foreach((json_t *)hs, hk, hv) {
            const char *text = json_string_value(hv);
            if (!text || !hk[0] || strpbrk(hk, " :\r\n") || strpbrk(text, "\r\n"))
                return bad(err, errlen, sub, "headers: expected names without spaces or ':' and values on one line");
        }
    } else if ((v = json_object_get(st, "wait_ms"))) {
        if (!is_int(v, 0, 86400000))
            return bad(err, errlen, path, "wait_ms: expected an integer from 0 to 86400000");
        *min_wait += (uint64_t)json_integer_value(v);
    } else if ((v = json_object_get(st, "repeat"))) {
        const json_t *every = json_object_get(st, "every_ms");
        if (!(json_is_true(v) || is_int(v, 1, 1000000)))
            return bad(err, errlen, path, "repeat: expected a count from 1 to 1000000, or true (forever)");
        if (every && !is_int(every, 0, 86400000))
            return bad(err, errlen, path, "every_ms: expected an integer from 0 to 86400000");
        if (depth + 1 >= SCN_MAX_DEPTH)
            return bad(err, errlen, path, "repeats nested too deep");
        uint64_t inner = 0;
        snprintf(sub, sizeof sub, "%.140s.steps", path);
        if (check_steps(json_object_get(st, "steps"), sub, depth + 1, &inner, err, errlen) != 0)
            return -1;
        uint64_t per = inner + (every ? (uint64_t)json_integer_value(every) : 0);
        if (json_is_true(v) && per < SCN_MIN_LOOP_WAIT_MS)
            return bad(err, errlen, path, "repeat forever: each round must wait at least 10 ms (every_ms or wait_ms)");
        *min_wait += per * (uint64_t)(json_is_true(v) ? 1 : json_integer_value(v));
    } else if (!json_is_string(json_object_get(st, "log"))) {
        return bad(err, errlen, path, "log: expected a string");
    }
    const json_t *save = json_object_get(st, "save"), *expect = json_object_get(st, "expect");
    if (save && (!json_is_object(save) || !json_object_get(st, "request")))
        return bad(err, errlen, path, "save: expected an object {var: \"path.in.answer\"} on a request step");
    if (expect && !is_int(expect, 100, 599))
        return bad(err, errlen, path, "expect: expected an HTTP status");
    return 0;
}

static int check_steps(const json_t *steps, const char *path, int depth, uint64_t *min_wait, char *err,
                       size_t errlen)
{
    if (!json_is_array(steps) || json_array_size(steps) == 0 || json_array_size(steps) > 10000)
        return bad(err, errlen, path, "expected an array of 1 to 10000 steps");
    size_t i;
    const json_t *st;
    json_array_foreach(steps, i, st) {
        char sub[160];
        snprintf(sub, sizeof sub, "%.130s[%zu]", path, i);
        if (check_step(st, sub, depth, min_wait, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int scenario_check(const json_t *doc, char *err, size_t errlen)
{
    if (!json_is_object(doc))
        return bad(err, errlen, "(scenario)", "expected a JSON object");
    const json_t *name = json_object_get(doc, "name"), *vars = json_object_get(doc, "vars");
    const json_t *loop = json_object_get(doc, "loop");
    if (name && (!json_is_string(name) || json_string_length(name) > 80))
        return bad(err, errlen, "name", "expected a string of at most 80 bytes");
    if (vars && !json_is_object(vars))
        return bad(err, errlen, "vars", "expected an object");
    if (loop && !(json_is_boolean(loop) || is_int(loop, 1, 1000000)))
        return bad(err, errlen, "loop", "expected true, false or a count of passes from 1 to 1000000");
    uint64_t min_wait = 0;
    if (check_steps(json_object_get(doc, "steps"), "steps", 0, &min_wait, err, errlen) != 0)
        return -1;
    if (json_is_true(loop) && min_wait < SCN_MIN_LOOP_WAIT_MS)
        return bad(err, errlen, "loop", "a scenario that loops forever must wait at least 10 ms per pass");
    return 0;
}

json_t *scenario_load_file(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
        return NULL;
    }
    char e[200];
    if (scenario_check(doc, e, sizeof e) != 0) {
        snprintf(err, errlen, "%s: %s", path, e);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* ------------------------------------------------------------------ the control endpoints */

/* POST {"file": NAME} (in mock.scenario_dir) or {"scenario": {…}}: 202 {"id", "name"}. */
static void submit(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    json_t *body = mock_body_object(req, out, false), *doc = NULL;
    if (!body)
        return;
    const json_t *file = json_object_get(body, "file"), *inline_doc = json_object_get(body, "scenario");
    char err[300];
    const char *name = dialect_cstr(file);
    if (!!file == !!inline_doc) {
        mock_bad_field(out, "file", "expected either file (a name in mock.scenario_dir) or scenario (a document)");
    } else if (file && (!name || !name[0] || strchr(name, '/') || name[0] == '.')) {
        mock_bad_field(out, "file", "expected a plain file name (no '/', not starting with '.')");
    } else if (inline_doc && scenario_check(inline_doc, err, sizeof err) != 0) {
        mock_bad_field(out, "scenario", err);
    } else {
        if (file) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dialect_live(x)->cfg.mock_scenario_dir, name);
            doc = scenario_load_file(path, err, sizeof err);
            if (!doc)
                mock_bad_field(out, "file", err);
        } else {
            doc = json_incref((json_t *)inline_doc);
        }
        int id = doc ? scenario_submit(doc, err, sizeof err) : 0;
        if (id < 0)
            mock_error(out, 503, "unavailable", NULL, err);
        else if (id > 0)
            mock_reply_json(out, 202, json_pack("{s:b, s:i, s:s}", "ok", 1, "id", id, "name",
                                                json_string_value(json_object_get(doc, "name")) ?: "unnamed"));
    }
    json_decref(doc);
    json_decref(body);
}

void mock_scenarios(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out))
        return;
    const char *m = http_request_method(req);
    if (strcmp(m, "POST") == 0)
        submit(req, x, out);
    else if (strcmp(m, "GET") == 0)
        mock_reply_json(out, 200, json_pack("{s:o}", "scenarios", scenario_list()));
    else
        mock_error(out, 405, "method_not_allowed", NULL, "GET or POST /api/scenarios");
}

/* DELETE /api/scenarios/{id}: stops it (200), or 404. */
void mock_scenario_one(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out))
        return;
    size_t len;
    const char *path = http_request_path(req, &len);
    const char *id = path + strlen("/api/scenarios/");
    char *end;
    long n = strtol(id, &end, 10);
    if (strcmp(http_request_method(req), "DELETE") != 0)
        mock_error(out, 405, "method_not_allowed", NULL, "DELETE /api/scenarios/{id} stops a scenario");
    else if (end == id || end != path + len || n <= 0)
        mock_bad_field(out, "id", "expected a scenario id (a positive integer) in the path");
    else if (scenario_stop((int)n) != 0)
        mock_error(out, 404, "not_found", "id", "no such scenario");
    else
        mock_reply_json(out, 200, json_pack("{s:b, s:i}", "ok", 1, "id", (int)n));
}
