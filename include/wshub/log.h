/*
 * log — one line per event on stderr, human-readable or JSON, safe from any thread.
 *
 * Owns: the current level and format (both changeable at runtime, e.g. on SIGHUP).
 * Never: buffers across lines or blocks on anything but the single write(2) of a line.
 */
#ifndef WSHUB_LOG_H
#define WSHUB_LOG_H

#include <stdint.h>
#include "wshub/config.h"

void log_set_level(log_level_t level);
void log_set_format(log_format_t format);
int log_enabled(log_level_t level);

/*
 * Logs an event. `event` is a short stable name ("listening", "conn_close"); `conn` is the
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
