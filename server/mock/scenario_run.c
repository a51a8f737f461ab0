/*
 * mock/scenario_run.c — runs scenarios (include/wshub/scenario.h) on the main thread's loop,
 * which is idle otherwise (signals, the log tick): one request at a time per scenario, each
 * over a fresh loopback connection to this server with the API key, so that a step is exactly
 * the request a curl would make and passes the same checks. Workers only check a document and
 * queue it (S.lock, a uv_async wake-up); the table of scenarios is under the same lock, for
 * GET /api/scenarios. Finished scenarios stay listed (the last FINISHED_KEPT).
 */
#include "internal_scenario.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wshub/log.h"
#include "wshub/metrics.h"

#define MAX_RESPONSE (1024 * 1024) /* an answer's body kept for "save" */
#define REQUEST_TIMEOUT_MS 10000
#define STEPS_PER_TURN 1000        /* steps run without a request or a wait, then a turn */
#define FINISHED_KEPT 32

static const char *const state_names[] = {"queued", "running", "done", "failed", "stopped"};

static struct {
    uv_mutex_t lock; /* list, each scenario's state/stop/error, next_id */
    list_node_t list;
    uv_loop_t *loop;
    uv_async_t wake;
    bool started, shut;
    int next_id;
    scenario_env_t env;
} S;

static llhttp_settings_t http_settings;

static void run_next(scenario_t *s);

/* ------------------------------------------------------------------ ending */

static bool final(scn_state_t st) { return st == SCN_DONE || st == SCN_FAILED || st == SCN_STOPPED; }

static void on_handle_closed(uv_handle_t *h)
{
    scenario_t *s = h->data;
    if (--s->closing == 0 && S.shut)
        free(s); /* shut down: nobody lists it any more (scenario_shutdown took it out) */
}

static void close_handles(scenario_t *s)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&s->timer, (uv_handle_t *)&s->tcp};
    bool open[] = {true, s->tcp_used};
    for (int i = 0; i < 2; i++)
        if (open[i] && !uv_is_closing(hs[i])) {
            s->closing++;
            uv_close(hs[i], on_handle_closed);
        }
    s->tcp_used = false;
}

/* Drops the oldest finished scenarios past FINISHED_KEPT (under the lock; the list is newest
 * first). Never one whose handles are still closing, nor `keep`. */
static void trim_finished(const scenario_t *keep)
{
    size_t n = 0;
    for (list_node_t *i = S.list.next; i != &S.list;) {
        scenario_t *s = container_of(i, scenario_t, node);
        i = i->next;
        if (final(s->state) && ++n > FINISHED_KEPT && s->closing == 0 && s != keep) {
            list_remove(&s->node);
            free(s);
        }
    }
}

static void finish(scenario_t *s, scn_state_t st, const char *why)
{
    uv_mutex_lock(&S.lock);
    s->state = st;
    if (why)
        snprintf(s->error, sizeof s->error, "%s", why);
    trim_finished(s);
    uv_mutex_unlock(&S.lock);
    atomic_fetch_sub(&metrics_gauges.mock_scenarios, 1);
    if (st == SCN_FAILED)
        log_warn("scenario", "%d (%s) failed: %s", s->id, s->name, s->error);
    else
        log_info("scenario", "%d (%s) %s after %lld requests", s->id, s->name, state_names[st],
                 (long long)s->requests);
    close_handles(s);
    json_decref(s->doc);
    json_decref(s->vars);
    s->doc = s->vars = NULL;
    free(s->out);
    free(s->body);
    s->out = s->body = NULL;
}

static void fail(scenario_t *s, const char *fmt, const char *arg)
{
    char why[256];
    snprintf(why, sizeof why, fmt, arg);
    finish(s, SCN_FAILED, why);
}

/* ------------------------------------------------------------------ a request */

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    scenario_t *s = p->data;
    if (s->body_len + len > MAX_RESPONSE) {
        s->too_big = true;
        return 0;
    }
    char *nb = realloc(s->body, s->body_len + len + 1);
    if (!nb)
        return -1;
    memcpy(nb + s->body_len, at, len);
    s->body = nb;
    s->body_len += len;
    s->body[s->body_len] = 0;
    return 0;
}

/* Keeps the values "save" names from the JSON answer (dotted paths, array indexes as numbers). */
static int save_values(scenario_t *s, const json_t *save)
{
    json_t *answer = json_loadb(s->body ? s->body : "", s->body_len, 0, NULL);
    const char *var;
    json_t *path;
    int rc = 0;
    json_object_foreach((json_t *)save, var, path) {
        json_t *v = answer;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", json_is_string(path) ? json_string_value(path) : "");
        for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, "."))
            v = json_is_array(v) ? json_array_get(v, strtoul(tok, NULL, 10)) : json_object_get(v, tok);
        if (!v || !buf[0]) {
            snprintf(s->error, sizeof s->error, "save.%.40s: %.60s is not in the answer", var,
                     json_is_string(path) ? json_string_value(path) : "?");
            rc = -1;
            break;
        }
        json_object_set(s->vars, var, v);
    }
    json_decref(answer);
    return rc;
}

/* The connection is closed: judge the answer, then the next step. */
static void on_request_closed(uv_handle_t *h)
{
    scenario_t *s = h->data;
    if (--s->closing == 0 && S.shut)
        free(s);
    if (S.shut || !s->doc)
        return; /* shut down, or it ended (stopped) meanwhile */
    const json_t *step = s->step, *expect = json_object_get(step, "expect");
    int status = llhttp_get_status_code(&s->parser), want = expect ? (int)json_integer_value(expect) : 0;
    bool complete = llhttp_finish(&s->parser) == HPE_OK && status > 0;
    if (!complete || s->too_big || (want ? status != want : status / 100 != 2)) {
        char why[256];
        snprintf(why, sizeof why, "step %s answered %d%s: %.150s", json_object_get(step, "publish") ? "publish" : "request",
                 status, s->too_big ? " (answer over 1 MiB)" : "", s->body ? s->body : "no answer");
        return finish(s, SCN_FAILED, why);
    }
    const json_t *save = json_object_get(step, "save");
    if (save && save_values(s, save) != 0)
        return finish(s, SCN_FAILED, NULL);
    run_next(s);
}

static void end_request(scenario_t *s)
{
    uv_timer_stop(&s->timer);
    if (s->tcp_used && !uv_is_closing((uv_handle_t *)&s->tcp)) {
        s->closing++;
        s->tcp_used = false;
        uv_close((uv_handle_t *)&s->tcp, on_request_closed);
    }
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(size);
    buf->len = buf->base ? size : 0;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    scenario_t *s = st->data;
    if (n > 0 && llhttp_execute(&s->parser, buf->base, (size_t)n) != HPE_OK && !s->too_big)
        n = UV_EPROTO;
    free(buf->base);
    if (n < 0)
        end_request(s); /* EOF (Connection: close) or an error: judged once closed */
}

static void on_written(uv_write_t *w, int status)
{
    scenario_t *s = w->data;
    if (status < 0)
        end_request(s);
}

static void on_connected(uv_connect_t *c, int status)
{
    scenario_t *s = c->data;
    if (status < 0 || uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, on_read) != 0)
        return end_request(s);
    uv_buf_t b = uv_buf_init(s->out, (unsigned)strlen(s->out));
    s->write.data = s;
    if (uv_write(&s->write, (uv_stream_t *)&s->tcp, &b, 1, on_written) != 0)
        end_request(s);
}

static void on_request_timeout(uv_timer_t *t) { end_request(t->data); }

/* The request's bytes for a publish or request step (placeholders filled); NULL: failed. */
static char *request_bytes(scenario_t *s, const json_t *step)
{
    const json_t *pub = json_object_get(step, "publish"), *req = json_object_get(step, "request");
    s->filled = 0;
    const json_t *raw_body = pub ? pub : json_object_get(req, "body");
    json_t *body = raw_body ? scenario_fill(s, raw_body) : NULL;
    json_t *path = pub ? json_string("/api/publish") : scenario_fill(s, json_object_get(req, "path"));
    const char *method = pub ? "POST" : json_string_value(json_object_get(req, "method"));
    const char *p = json_string_value(path);
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL, *out = NULL;
    char length[96] = "";
    if (text)
        snprintf(length, sizeof length, "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(text));
    char *extra = NULL; /* the step's headers (checked: one line each) */
    size_t extra_len = 0;
    FILE *mf = open_memstream(&extra, &extra_len);
    const char *hk;
    const json_t *hv;
    json_object_foreach(json_object_get(req, "headers"), hk, hv)
        if (mf)
            fprintf(mf, "%s: %s\r\n", hk, json_string_value(hv));
    if (mf)
        fclose(mf);
    if ((raw_body && !body) || !p || p[0] != '/' || strpbrk(p, " \r\n")) {
        if (!s->error[0])
            snprintf(s->error, sizeof s->error, "request path: expected \"/...\" without spaces");
    } else if (asprintf(&out, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\nConnection: close\r\n%s%s\r\n%s",
                        method, p, S.env.host, S.env.port, S.env.api_key(), extra ? extra : "", length,
                        text ? text : "") < 0) {
        out = NULL;
    }
    free(extra);
    free(text);
    json_decref(body);
    json_decref(path);
    return out;
}

static void send_request(scenario_t *s, const json_t *step)
{
    free(s->out);
    free(s->body);
    s->body = NULL;
    s->body_len = 0;
    s->too_big = false;
    if (!(s->out = request_bytes(s, step)))
        return finish(s, SCN_FAILED, s->error[0] ? NULL : "out of memory");
    struct sockaddr_storage addr;
    if (uv_ip4_addr(S.env.host, S.env.port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(S.env.host, S.env.port, (struct sockaddr_in6 *)&addr) != 0)
        return fail(s, "cannot reach this server at %s", S.env.host);
    llhttp_init(&s->parser, HTTP_RESPONSE, &http_settings);
    s->parser.data = s;
    s->step = step;
    uv_tcp_init(S.loop, &s->tcp);
    s->tcp.data = s;
    s->tcp_used = true;
    s->connect.data = s;
    uv_mutex_lock(&S.lock); /* read by scenario_list on other threads */
    s->requests++;
    uv_mutex_unlock(&S.lock);
    atomic_fetch_add(&metrics_gauges.mock_scenario_requests, 1);
    uv_timer_start(&s->timer, on_request_timeout, REQUEST_TIMEOUT_MS, 0);
    if (uv_tcp_connect(&s->connect, &s->tcp, (struct sockaddr *)&addr, on_connected) != 0)
        end_request(s);
}

/* ------------------------------------------------------------------ steps */

static void on_wait(uv_timer_t *t) { run_next(t->data); }

/* The end of the top frame: another round of a repeat, another pass, or done. false: the
 * scenario waits (a timer) or ended. */
static bool frame_end(scenario_t *s)
{
    scn_frame_t *f = &s->stack[s->depth - 1];
    if (s->depth > 1) {
        f->iter++;
        if (f->count < 0 || f->iter < f->count) {
            f->idx = 0;
            if (f->every_ms) {
                uv_timer_start(&s->timer, on_wait, f->every_ms, 0);
                return false;
            }
        } else {
            s->depth--;
        }
        return true;
    }
    uv_mutex_lock(&S.lock);
    s->passes++;
    uv_mutex_unlock(&S.lock);
    if (s->loop < 0 || s->passes < s->loop) {
        f->idx = 0;
        return true;
    }
    finish(s, SCN_DONE, NULL);
    return false;
}

/* Runs steps until one waits (a request, a timer) or the scenario ends. */
static void run_next(scenario_t *s)
{
    bool stop;
    uv_mutex_lock(&S.lock);
    stop = s->stop;
    uv_mutex_unlock(&S.lock);
    if (stop)
        return finish(s, SCN_STOPPED, NULL);
    for (int n = 0; n < STEPS_PER_TURN; n++) {
        scn_frame_t *f = &s->stack[s->depth - 1];
        if (f->idx >= json_array_size(f->steps)) {
            if (!frame_end(s))
                return;
            continue;
        }
        const json_t *st = json_array_get(f->steps, f->idx++), *v;
        if ((v = json_object_get(st, "wait_ms"))) {
            uv_timer_start(&s->timer, on_wait, (uint64_t)json_integer_value(v), 0);
            return;
        } else if ((v = json_object_get(st, "repeat"))) {
            const json_t *every = json_object_get(st, "every_ms");
            s->stack[s->depth++] = (scn_frame_t){.steps = json_object_get(st, "steps"),
                                                 .count = json_is_true(v) ? -1 : json_integer_value(v),
                                                 .every_ms = every ? (uint64_t)json_integer_value(every) : 0};
        } else if ((v = json_object_get(st, "log"))) {
            s->filled = 0;
            json_t *line = scenario_fill(s, v);
            if (!line)
                return finish(s, SCN_FAILED, NULL);
            log_info("scenario", "%d (%s): %s", s->id, s->name, json_string_value(line));
            json_decref(line);
        } else {
            return send_request(s, st);
        }
    }
    uv_timer_start(&s->timer, on_wait, 0, 0); /* a turn for the rest of the loop */
}

static void begin(scenario_t *s)
{
    uv_timer_init(S.loop, &s->timer);
    s->timer.data = s;
    s->stack[0] = (scn_frame_t){.steps = json_object_get(s->doc, "steps")};
    s->depth = 1;
    atomic_fetch_add(&metrics_gauges.mock_scenarios, 1);
    log_info("scenario", "%d (%s) started", s->id, s->name);
    run_next(s);
}

/* Queued scenarios start; those asked to stop while waiting on a timer stop now. At most
 * a batch per call: a longer list (mock.max_scenarios goes to 256) wakes it again, or the
 * rest would wait, queued, for a wake-up nobody sends. */
static void on_wake(uv_async_t *a)
{
    scenario_t *todo[64];
    size_t n = 0;
    list_node_t *i;
    uv_mutex_lock(&S.lock);
    for (i = S.list.next; i != &S.list && n < 64; i = i->next) {
        scenario_t *s = container_of(i, scenario_t, node);
        if (s->state == SCN_QUEUED || (s->stop && s->state == SCN_RUNNING && !s->tcp_used))
            todo[n++] = s;
        if (s->state == SCN_QUEUED)
            s->state = SCN_RUNNING;
    }
    if (i != &S.list && !S.shut)
        uv_async_send(a); /* under the lock, as everywhere: the handle is open */
    uv_mutex_unlock(&S.lock);
    for (size_t i = 0; i < n; i++) {
        if (!todo[i]->depth)
            begin(todo[i]);
        else
            run_next(todo[i]); /* it sees its stop */
    }
}

/* ------------------------------------------------------------------ the runner */

void scenario_init(void)
{
    uv_mutex_init(&S.lock);
    list_init(&S.list);
    llhttp_settings_init(&http_settings);
    http_settings.on_body = on_body;
}

int scenario_start(uv_loop_t *loop, const scenario_env_t *env)
{
    int rc = uv_async_init(loop, &S.wake, on_wake);
    uv_mutex_lock(&S.lock);
    S.loop = loop;
    S.env = *env;
    S.started = rc == 0;
    uv_mutex_unlock(&S.lock);
    return rc;
}

void scenario_shutdown(void)
{
    if (!S.started)
        return;
    uv_mutex_lock(&S.lock);
    S.shut = true;
    list_node_t all;
    list_take_all(&all, &S.list);
    uv_mutex_unlock(&S.lock);
    while (!list_empty(&all)) {
        scenario_t *s = container_of(all.next, scenario_t, node);
        list_remove(&s->node);
        if (s->state == SCN_RUNNING) {
            atomic_fetch_sub(&metrics_gauges.mock_scenarios, 1);
            json_decref(s->doc);
            json_decref(s->vars);
            free(s->out);
            free(s->body);
            close_handles(s);
        } else {
            if (s->state == SCN_QUEUED) {
                json_decref(s->doc);
                json_decref(s->vars);
            }
            if (s->closing == 0)
                free(s);
        }
    }
    uv_close((uv_handle_t *)&S.wake, NULL);
}

int scenario_submit(json_t *doc, char *err, size_t errlen)
{
    size_t running = 0;
    uv_mutex_lock(&S.lock);
    for (list_node_t *i = S.list.next; S.started && i != &S.list; i = i->next)
        running += !final(container_of(i, scenario_t, node)->state);
    int id = -1;
    scenario_t *s = NULL;
    if (!S.started || S.shut)
        snprintf(err, errlen, "the scenario runner is not running");
    else if (running >= S.env.max_running)
        snprintf(err, errlen, "%zu scenarios run already (mock.max_scenarios): stop one first", running);
    /* Its own copies: jansson's reference counts are not safe across threads, and the caller
     * (a worker) keeps and releases doc. */
    else if (!(s = calloc(1, sizeof *s)) || !(s->doc = json_deep_copy(doc)) ||
             !(s->vars = json_object_get(doc, "vars") ? json_deep_copy(json_object_get(doc, "vars")) : json_object()))
        snprintf(err, errlen, "out of memory");
    if (s && s->vars) {
        const json_t *loop = json_object_get(doc, "loop");
        s->id = id = ++S.next_id;
        snprintf(s->name, sizeof s->name, "%s", json_string_value(json_object_get(doc, "name")) ?: "unnamed");
        s->loop = json_is_true(loop) ? -1 : json_is_integer(loop) ? json_integer_value(loop) : 1;
        list_insert_head(&S.list, &s->node);
        uv_async_send(&S.wake); /* under the lock: never after scenario_shutdown closed it */
    } else if (s) {
        json_decref(s->doc);
        free(s);
    }
    uv_mutex_unlock(&S.lock);
    return id;
}

int scenario_stop(int id)
{
    int rc = -1;
    uv_mutex_lock(&S.lock);
    for (list_node_t *i = S.list.next; S.started && i != &S.list; i = i->next) {
        scenario_t *s = container_of(i, scenario_t, node);
        if (id < 0 || s->id == id) {
            s->stop = s->stop || !final(s->state);
            rc = 0;
        }
    }
    if (S.started && !S.shut)
        uv_async_send(&S.wake); /* under the lock: never after scenario_shutdown closed it */
    uv_mutex_unlock(&S.lock);
    return rc;
}

void scenario_stop_all(void) { scenario_stop(-1); }

json_t *scenario_list(void)
{
    json_t *arr = json_array();
    uv_mutex_lock(&S.lock);
    for (list_node_t *i = S.list.next; S.started && i != &S.list; i = i->next) {
        scenario_t *s = container_of(i, scenario_t, node);
        json_t *o = json_pack("{s:i, s:s, s:s, s:I, s:I}", "id", s->id, "name", s->name, "state",
                              state_names[s->state], "passes", (json_int_t)s->passes, "requests",
                              (json_int_t)s->requests);
        if (o && s->state == SCN_FAILED)
            json_object_set_new(o, "error", json_string(s->error));
        json_array_append_new(arr, o);
    }
    uv_mutex_unlock(&S.lock);
    return arr;
}
