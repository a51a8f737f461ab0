/*
 * log — one line per event on stderr, human-readable or JSON, safe from any thread.
 *
 * Owns: the current level and format (both changeable at runtime, e.g. on SIGHUP), and the
 * rate limit: at most log.rate_limit_per_s lines per reason per second, where a reason is the
 * event name and the level (debug lines are never limited: that level is chosen to see
 * every line); what is left out is counted, reported by the reason's next line
 * or by log_flush_suppressed() ("… (N more suppressed in the last second)"), and summed in
 * /metrics (wshub_log_lines_suppressed_total). The first line of a reason is never left out.
 * Never: buffers across lines or blocks on anything but the single write(2) of a line.
 */
#ifndef WSHUB_LOG_H
#define WSHUB_LOG_H

#include <stdint.h>
#include "wshub/config.h"

/* Lines per reason per second when nothing is configured (config.c's default of
 * log.rate_limit_per_s says the same). */
#define LOG_DEFAULT_RATE_LIMIT 20

void log_set_level(log_level_t level);
void log_set_format(log_format_t format);
int log_enabled(log_level_t level);
/* Lines per reason per second; 0 turns the limit off. Any thread, any time (SIGHUP). */
void log_set_rate_limit(unsigned per_s);
/* Lines left out by the rate limit since the process started. */
uint64_t log_suppressed_total(void);
/* Writes one line per reason whose lines were left out in a second that has ended and not
 * yet reported: "<event> (N more suppressed in the last second)". Called once a second by
 * the main thread, so that the count of a storm that stopped still reaches the log. */
void log_flush_suppressed(void);

/*
 * Logs an event. `event` is a short stable name ("listening", "conn_close"), a string literal:
 * its address identifies the reason for the rate limit; `conn` is the
 * connection id or 0; `peer` and `endpoint` may be NULL; the message is printf-formatted.
 * Human: "2026-11-23T12:00:00.123Z info conn_close conn=12 peer=127.0.0.1:5000 endpoint=echo msg"
 * JSON:  {"ts":"…","level":"info","event":"conn_close","conn":12,"peer":"…","endpoint":"echo","msg":"…"}
 */
void log_event(log_level_t level, const char *event, uint64_t conn, const char *peer,
               const char *endpoint, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define log_error(event, ...) log_event(LOG_ERROR, event, 0, NULL, NULL, __VA_ARGS__)
#define log_warn(event, ...) log_event(LOG_WARN, event, 0, NULL, NULL, __VA_ARGS__)
#define log_info(event, ...) log_event(LOG_INFO, event, 0, NULL, NULL, __VA_ARGS__)
#define log_debug(event, ...) log_event(LOG_DEBUG, event, 0, NULL, NULL, __VA_ARGS__)

#endif
