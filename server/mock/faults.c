/*
 * mock/faults.c — the faults' table and the hooks of include/wshub/faults.h, asked by the
 * paths a fault changes; the control endpoints that fill the table are faults_http.c.
 *
 * One table for the process under a mutex (bounded by mock.max_faults), and faults_kinds, a
 * relaxed mask of the kinds set, which the hooks read first. JSON the table holds is only
 * ever touched under the mutex and handed out as deep copies: jansson's reference counts are
 * not atomic.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "wshub/faults.h"

#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "wshub/metrics.h"

#include "faults_internal.h"

atomic_uint faults_kinds;
_Static_assert(FAULTS_MESSAGES == (1u << FK_LATENCY | 1u << FK_DROP), "faults.h names the message kinds");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fault_t **table; /* in the order they were set: the first that matches applies */
static size_t count, cap;
static uint64_t next_id = 1;

static const char *const kind_names[FK_COUNT] = {"cable_reject", "moderation", "latency", "drop", "refuse"};

uint64_t faults__now_ms(void) { return uv_hrtime() / 1000000; }

/* xorshift64*, one state per thread: drop rates and jitter need no more. */
static uint64_t rnd(void)
{
    static _Thread_local uint64_t s;
    if (!s)
        s = (uv_hrtime() ^ (uint64_t)(uintptr_t)&s) | 1;
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
}

static double rnd01(void) { return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0); }

void faults__free(fault_t *f)
{
    if (!f)
        return;
    free(f->channel);
    free(f->pattern);
    json_decref(f->reference);
    json_decref(f->answer);
    free(f);
}

/* After any change of the table, under the lock. */
static void publish_count(void)
{
    unsigned kinds = 0;
    for (size_t i = 0; i < count; i++)
        kinds |= 1u << table[i]->kind;
    atomic_store(&metrics_gauges.mock_faults, count);
    atomic_store_explicit(&faults_kinds, kinds, memory_order_relaxed);
}

static void remove_at(size_t i)
{
    faults__free(table[i]);
    memmove(&table[i], &table[i + 1], (count - i - 1) * sizeof *table);
    count--;
    publish_count();
}

static void hit(fault_t *f)
{
    f->hits++;
    atomic_fetch_add(&metrics_gauges.mock_fault_hits, 1);
}

/* The fault f replaces (same kind, API and direction), or -1. */
static long replaced(const fault_t *f)
{
    if (f->kind != FK_LATENCY && f->kind != FK_DROP && f->kind != FK_REFUSE)
        return -1;
    for (size_t i = 0; i < count; i++)
        if (table[i]->kind == f->kind && table[i]->ep == f->ep && (f->kind == FK_REFUSE || table[i]->dir == f->dir))
            return (long)i;
    return -1;
}

uint64_t faults__add(fault_t *f, int max)
{
    pthread_mutex_lock(&lock);
    long r = replaced(f);
    uint64_t id = 0;
    if (r >= 0) {
        faults__free(table[r]);
        table[r] = f;
    } else if (count < (size_t)max) {
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            fault_t **t = realloc(table, ncap * sizeof *t);
            if (t) {
                table = t;
                cap = ncap;
            }
        }
        if (count < cap)
            table[count++] = f;
    }
    if (r >= 0 || (count && table[count - 1] == f)) {
        id = f->id = next_id++;
        publish_count();
    }
    pthread_mutex_unlock(&lock);
    if (!id)
        faults__free(f);
    return id;
}

bool faults__remove(uint64_t id)
{
    bool found = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !found; i++)
        if (table[i]->id == id) {
            remove_at(i);
            found = true;
        }
    pthread_mutex_unlock(&lock);
    return found;
}

size_t faults__clear(void)
{
    pthread_mutex_lock(&lock);
    size_t n = count;
    for (size_t i = 0; i < count; i++)
        faults__free(table[i]);
    count = 0;
    publish_count();
    pthread_mutex_unlock(&lock);
    return n;
}

/* Refusals whose time is over are removed as they are met (under the lock). */
static bool expired(size_t i, uint64_t now)
{
    if (table[i]->kind != FK_REFUSE || table[i]->until_ms > now)
        return false;
    remove_at(i);
    return true;
}

static json_t *describe(const fault_t *f, uint64_t now)
{
    json_t *o = json_pack("{s:I, s:s, s:I}", "id", (json_int_t)f->id, "kind", kind_names[f->kind], "hits",
                          (json_int_t)f->hits);
    if (!o)
        return NULL;
    json_t *left = f->left < 0 ? json_null() : json_integer(f->left);
    const char *api = f->ep > 0 && f->ep < EP_COUNT ? endpoint_names[f->ep] : "";
    const char *dir = f->dir == FAULT_IN ? "in" : "out";
    switch (f->kind) {
    case FK_CABLE_REJECT:
        json_object_set_new(o, "channel", json_string(f->channel));
        json_object_set_new(o, "remaining", left);
        return o;
    case FK_MODERATION:
        if (f->reference)
            json_object_set_new(o, "reference", json_deep_copy(f->reference));
        if (f->pattern)
            json_object_set_new(o, "pattern", json_string(f->pattern));
        json_object_set_new(o, "remaining", left);
        json_object_update_new(o, json_deep_copy(f->answer));
        return o;
    case FK_LATENCY:
        json_decref(left);
        json_object_update_new(o, json_pack("{s:s, s:s, s:I, s:I}", "api", api, "direction", dir, "ms",
                                            (json_int_t)f->ms, "jitter_ms", (json_int_t)f->jitter));
        return o;
    case FK_DROP:
        json_decref(left);
        json_object_update_new(o, json_pack("{s:s, s:s, s:f}", "api", api, "direction", dir, "rate", f->rate));
        return o;
    default:
        json_decref(left);
        json_object_update_new(o, json_pack("{s:s, s:i, s:I}", "api", api, "status", f->status, "remaining_ms",
                                            (json_int_t)(f->until_ms > now ? f->until_ms - now : 0)));
        return o;
    }
}

json_t *faults__list(void)
{
    json_t *list = json_array();
    pthread_mutex_lock(&lock);
    uint64_t now = faults__now_ms();
    for (size_t i = 0; list && i < count; i++) {
        if (expired(i, now)) {
            i--;
            continue;
        }
        json_array_append_new(list, describe(table[i], now));
    }
    pthread_mutex_unlock(&lock);
    return list;
}

/* ------------------------------------------------------------------ hooks */

bool faults_message(int ep, int dir, uint32_t *delay_ms)
{
    *delay_ms = 0;
    bool drop = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !drop; i++) {
        fault_t *f = table[i];
        if (f->kind == FK_DROP && f->ep == ep && f->dir == dir && rnd01() < f->rate) {
            hit(f);
            drop = true;
        }
    }
    for (size_t i = 0; i < count && !drop; i++) {
        fault_t *f = table[i];
        if (f->kind != FK_LATENCY || f->ep != ep || f->dir != dir)
            continue;
        long long d = (long long)f->ms;
        if (f->jitter)
            d += (long long)(rnd() % (2ull * f->jitter + 1)) - (long long)f->jitter;
        *delay_ms = d > 0 ? (uint32_t)d : 0;
        hit(f);
        break;
    }
    pthread_mutex_unlock(&lock);
    return drop;
}

int faults_refusal(int ep, unsigned *retry_s)
{
    int status = 0;
    pthread_mutex_lock(&lock);
    uint64_t now = faults__now_ms();
    for (size_t i = 0; i < count && !status; i++) {
        if (expired(i, now)) {
            i--;
            continue;
        }
        fault_t *f = table[i];
        if (f->kind == FK_REFUSE && f->ep == ep) {
            status = f->status;
            uint64_t s = (f->until_ms - now + 999) / 1000;
            *retry_s = s ? (unsigned)s : 1;
            hit(f);
        }
    }
    pthread_mutex_unlock(&lock);
    return status;
}

/* A fault's own text, in the API's error format (PROTOCOLS.md §A, B, D; the router's
 * {error, message} for the others). */
char *faults_refusal_body(int ep, int status)
{
    char msg[128];
    snprintf(msg, sizeof msg, "refused with %d by a mock fault (POST /api/faults/refuse): retry later", status);
    json_t *body;
    if (ep == EP_MODERATION) {
        body = json_pack("{s:s, s:b, s:{s:s}, s:{s:{s:n}}}", "api", "chatsight-lang-text", "success", 0, "error",
                         "message", msg, "response", "metadata", "self_reference");
    } else if (ep == EP_SERVICE) {
        char ts[32];
        time_t t = time(NULL);
        struct tm tm;
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        const char *code = status == 401 || status == 403 ? "unauthorized"
                           : status < 500                 ? "invalid_request"
                                                          : "internal_error";
        body = json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "data", "code", code, "message", msg,
                         "timestamp", ts);
    } else if (ep == EP_FLOW) {
        body = json_pack("{s:s, s:{s:s}}", "status", "error", "payload", "message", msg);
    } else {
        body = json_pack("{s:s, s:s}", "error", status == 503 ? "unavailable" : "refused", "message", msg);
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

bool faults_cable_reject(const char *channel, const char *queue)
{
    bool reject = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !reject; i++) {
        fault_t *f = table[i];
        if (f->kind != FK_CABLE_REJECT || (strcmp(f->channel, channel) != 0 && strcmp(f->channel, queue) != 0))
            continue;
        reject = true;
        hit(f);
        if (--f->left == 0)
            remove_at(i);
    }
    pthread_mutex_unlock(&lock);
    return reject;
}

static bool sample_matches(const fault_t *f, const char *sample, size_t len)
{
    if (!f->pattern)
        return true;
    if (!f->glob)
        return memmem(sample, len, f->pattern, strlen(f->pattern)) != NULL;
    return !memchr(sample, 0, len) && fnmatch(f->pattern, sample, 0) == 0;
}

json_t *faults_moderation_override(const json_t *reference, const char *sample, size_t len)
{
    json_t *answer = NULL;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !answer; i++) {
        fault_t *f = table[i];
        if (f->kind != FK_MODERATION || (f->reference && !json_equal(f->reference, reference)) ||
            !sample_matches(f, sample, len))
            continue;
        answer = json_deep_copy(f->answer);
        if (!answer)
            break; /* out of memory: the answer is scored as usual */
        hit(f);
        if (f->left > 0 && --f->left == 0)
            remove_at(i);
    }
    pthread_mutex_unlock(&lock);
    return answer;
}

bool faults_delay_reserve(size_t n, size_t max)
{
    uint64_t total = atomic_fetch_add(&metrics_gauges.mock_delayed_bytes, n) + n;
    if (total <= max)
        return true;
    atomic_fetch_sub(&metrics_gauges.mock_delayed_bytes, n);
    return false;
}

void faults_delay_release(size_t n) { atomic_fetch_sub(&metrics_gauges.mock_delayed_bytes, n); }

void faults_delay_overflow(void) { atomic_fetch_add(&metrics_gauges.mock_delay_overflows, 1); }
