/*
 * log — see include/wshub/log.h. Each line is formatted into a stack buffer and written
 * with one write(2), so lines from different worker threads never interleave.
 *
 * Rate limit (issue 11: an EMFILE accept storm wrote 0.5-0.85 million lines a second). A
 * reason is a call site's event name (its address: events are literals) and level (debug
 * lines are not limited: that level is chosen to see everything). Each reason has a slot in
 * a fixed table, found without a lock; the slot's one-second window and its count are
 * updated under the slot's own spinlock, held for a few instructions (never across
 * formatting or the write). The first `limit` lines of a reason in a second are written;
 * the rest are counted, and the count is reported by the reason's next line or by
 * log_flush_suppressed(), whichever comes first.
 */
#include "wshub/log.h"

#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int cur_level = LOG_INFO;
static atomic_int cur_format = LOG_FORMAT_HUMAN;
static atomic_uint rate_limit = LOG_DEFAULT_RATE_LIMIT; /* lines per reason per second; 0 = off */
static atomic_uint_fast64_t suppressed_total;

#define SLOTS 256 /* reasons: a few dozen call sites use distinct event names */

typedef struct slot {
    _Atomic(const char *) event; /* the key with level; NULL = free (claimed once, never freed) */
    atomic_int level;
    atomic_int lock;             /* spinlock over window, count and suppressed */
    uint64_t window;             /* the second (monotonic) the count belongs to */
    uint32_t count;              /* lines written in that second */
    uint64_t suppressed;         /* lines not written, not yet reported */
} slot_t;

static slot_t slots[SLOTS];

static uint64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec;
}

/* The clock of the windows and where lines go; a white-box test replaces both. */
static uint64_t (*clock_s)(void) = mono_s;
static int out_fd = STDERR_FILENO;

static void slot_lock(slot_t *s)
{
    /* Held for a few instructions; should its holder be preempted (2 cores, more threads),
     * give the CPU back rather than spin through a time slice. */
    for (unsigned spins = 0; atomic_exchange_explicit(&s->lock, 1, memory_order_acquire);)
        while (atomic_load_explicit(&s->lock, memory_order_relaxed))
            if (++spins % 64 == 0)
                sched_yield();
}

static void slot_unlock(slot_t *s) { atomic_store_explicit(&s->lock, 0, memory_order_release); }

/* The reason's slot, claimed on first use; NULL if the table is full (not limited then). */
static slot_t *slot_for(const char *event, log_level_t level)
{
    size_t h = ((uintptr_t)event >> 3) * 31u + (size_t)level;
    for (size_t i = 0; i < SLOTS; i++) {
        slot_t *s = &slots[(h + i) % SLOTS];
        const char *k = atomic_load_explicit(&s->event, memory_order_acquire);
        if (!k) {
            /* Claim: the level is stored before the key is published. Two threads may race to
             * claim the slot for different reasons; the loser moves on. */
            slot_lock(s);
            k = atomic_load_explicit(&s->event, memory_order_acquire);
            if (!k) {
                atomic_store_explicit(&s->level, (int)level, memory_order_relaxed);
                atomic_store_explicit(&s->event, event, memory_order_release);
                k = event;
            }
            slot_unlock(s);
        }
        if (k == event && atomic_load_explicit(&s->level, memory_order_relaxed) == (int)level)
            return s;
    }
    return NULL;
}

/* May this line be written? *reported: how many lines of its reason were suppressed and not
 * reported yet (the caller appends the count). */
static int admit(const char *event, log_level_t level, uint64_t *reported)
{
    *reported = 0;
    unsigned limit = atomic_load_explicit(&rate_limit, memory_order_relaxed);
    /* Debug is asked for to see every line (tests match per-connection debug lines). */
    if (limit == 0 || level == LOG_DEBUG)
        return 1;
    slot_t *s = slot_for(event, level);
    if (!s)
        return 1;
    uint64_t now = clock_s();
    int ok;
    slot_lock(s);
    if (s->window != now) {
        s->window = now;
        s->count = 0;
    }
    ok = s->count < limit;
    if (ok) {
        s->count++;
        if (s->count == 1) { /* the first line of a second reports the last one */
            *reported = s->suppressed;
            s->suppressed = 0;
        }
    } else {
        s->suppressed++;
    }
    slot_unlock(s);
    if (!ok)
        atomic_fetch_add_explicit(&suppressed_total, 1, memory_order_relaxed);
    return ok;
}

void log_set_rate_limit(unsigned per_s) { atomic_store(&rate_limit, per_s); }
uint64_t log_suppressed_total(void) { return atomic_load_explicit(&suppressed_total, memory_order_relaxed); }

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(log_level_t level) { atomic_store(&cur_level, (int)level); }
void log_set_format(log_format_t format) { atomic_store(&cur_format, (int)format); }
int log_enabled(log_level_t level) { return (int)level <= atomic_load(&cur_level); }

/* Appends s to buf as the inside of a JSON string. */
static size_t json_escape(char *buf, size_t cap, size_t pos, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)ch;
        } else if (ch < 0x20) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", ch);
        } else {
            buf[pos++] = (char)ch;
        }
    }
    return pos;
}

static void write_line(log_level_t level, const char *event, uint64_t conn, const char *peer,
                       const char *endpoint, const char *msg);

void log_event(log_level_t level, const char *event, uint64_t conn, const char *peer,
               const char *endpoint, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    uint64_t reported;
    if (!admit(event, level, &reported))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (reported) {
        size_t pos = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
        snprintf(msg + pos, sizeof msg - pos, "%s(%llu more suppressed in the last second)", pos ? " " : "",
                 (unsigned long long)reported);
    }
    write_line(level, event, conn, peer, endpoint, msg);
}

void log_flush_suppressed(void)
{
    uint64_t now = clock_s();
    for (size_t i = 0; i < SLOTS; i++) {
        slot_t *s = &slots[i];
        const char *event = atomic_load_explicit(&s->event, memory_order_acquire);
        if (!event)
            continue;
        uint64_t n = 0;
        slot_lock(s);
        if (s->window != now && s->suppressed) { /* only once the second has passed */
            n = s->suppressed;
            s->suppressed = 0;
        }
        slot_unlock(s);
        if (n) {
            char msg[96];
            snprintf(msg, sizeof msg, "(%llu more suppressed in the last second)", (unsigned long long)n);
            write_line((log_level_t)atomic_load_explicit(&s->level, memory_order_relaxed), event, 0, NULL, NULL,
                       msg);
        }
    }
}

/* The fields of one line; conn 0, peer and endpoint NULL, msg "" when absent. */
typedef struct line_fields {
    const char *when, *level, *event;
    uint64_t conn;
    const char *peer, *endpoint, *msg;
} line_fields_t;

/* Formats the fields as one JSON object into line; returns its length (cap at most). */
static size_t format_json(char *line, size_t cap, const line_fields_t *l)
{
    size_t pos = (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", l->when, l->level);
    pos = json_escape(line, cap, pos, l->event);
    pos += (size_t)snprintf(line + pos, cap - pos, "\"");
    if (l->conn)
        pos += (size_t)snprintf(line + pos, cap - pos, ",\"conn\":%llu", (unsigned long long)l->conn);
    if (l->peer && pos < cap) {
        pos += (size_t)snprintf(line + pos, cap - pos, ",\"peer\":\"");
        pos = json_escape(line, cap, pos, l->peer);
        pos += (size_t)snprintf(line + pos, cap - pos, "\"");
    }
    if (l->endpoint && pos < cap)
        pos += (size_t)snprintf(line + pos, cap - pos, ",\"endpoint\":\"%s\"", l->endpoint);
    if (l->msg[0] && pos < cap) {
        pos += (size_t)snprintf(line + pos, cap - pos, ",\"msg\":\"");
        pos = json_escape(line, cap, pos, l->msg);
        pos += (size_t)snprintf(line + pos, cap - pos, "\"");
    }
    if (pos < cap)
        pos += (size_t)snprintf(line + pos, cap - pos, "}");
    return pos > cap ? cap : pos;
}

/* Formats the fields as "when level event key=value... msg" into line; returns its length (cap
 * at most). */
static size_t format_text(char *line, size_t cap, const line_fields_t *l)
{
    size_t pos = (size_t)snprintf(line, cap, "%s %s %s", l->when, l->level, l->event);
    if (l->conn && pos < cap)
        pos += (size_t)snprintf(line + pos, cap - pos, " conn=%llu", (unsigned long long)l->conn);
    if (l->peer && pos < cap)
        pos += (size_t)snprintf(line + pos, cap - pos, " peer=%s", l->peer);
    if (l->endpoint && pos < cap)
        pos += (size_t)snprintf(line + pos, cap - pos, " endpoint=%s", l->endpoint);
    if (l->msg[0] && pos < cap)
        pos += (size_t)snprintf(line + pos, cap - pos, " %s", l->msg);
    return pos > cap ? cap : pos;
}

static void write_line(log_level_t level, const char *event, uint64_t conn, const char *peer,
                       const char *endpoint, const char *msg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000) % 1000);

    const line_fields_t l = {when, level_names[level], event, conn, peer, endpoint, msg};
    char line[2048];
    size_t cap = sizeof line - 2;
    size_t pos = atomic_load(&cur_format) == LOG_FORMAT_JSON ? format_json(line, cap, &l) : format_text(line, cap, &l);
    line[pos++] = '\n';
    ssize_t r = write(out_fd, line, pos);
    (void)r;
}
