/*
 * log — see include/wshub/log.h. Each line is formatted into a stack buffer and written
 * with one write(2), so lines from different worker threads never interleave.
 */
#include "wshub/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int cur_level = LOG_INFO;
static atomic_int cur_format = LOG_FORMAT_HUMAN;

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

void log_event(log_level_t level, const char *event, uint64_t conn, const char *peer,
               const char *endpoint, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000) % 1000);

    char line[2048];
    size_t pos = 0, cap = sizeof line - 2;
    if (atomic_load(&cur_format) == LOG_FORMAT_JSON) {
        pos += (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", when,
                                level_names[level]);
        pos = json_escape(line, cap, pos, event);
        pos += (size_t)snprintf(line + pos, cap - pos, "\"");
        if (conn)
            pos += (size_t)snprintf(line + pos, cap - pos, ",\"conn\":%llu", (unsigned long long)conn);
        if (peer && pos < cap) {
            pos += (size_t)snprintf(line + pos, cap - pos, ",\"peer\":\"");
            pos = json_escape(line, cap, pos, peer);
            pos += (size_t)snprintf(line + pos, cap - pos, "\"");
        }
        if (endpoint && pos < cap)
            pos += (size_t)snprintf(line + pos, cap - pos, ",\"endpoint\":\"%s\"", endpoint);
        if (msg[0] && pos < cap) {
            pos += (size_t)snprintf(line + pos, cap - pos, ",\"msg\":\"");
            pos = json_escape(line, cap, pos, msg);
            pos += (size_t)snprintf(line + pos, cap - pos, "\"");
        }
        if (pos < cap)
            pos += (size_t)snprintf(line + pos, cap - pos, "}");
    } else {
        pos += (size_t)snprintf(line, cap, "%s %s %s", when, level_names[level], event);
        if (conn && pos < cap)
            pos += (size_t)snprintf(line + pos, cap - pos, " conn=%llu", (unsigned long long)conn);
        if (peer && pos < cap)
            pos += (size_t)snprintf(line + pos, cap - pos, " peer=%s", peer);
        if (endpoint && pos < cap)
            pos += (size_t)snprintf(line + pos, cap - pos, " endpoint=%s", endpoint);
        if (msg[0] && pos < cap)
            pos += (size_t)snprintf(line + pos, cap - pos, " %s", msg);
    }
    if (pos > cap)
        pos = cap;
    line[pos++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, pos);
    (void)r;
}
