/*
 * sessions — what a client's session needs to be restored on another connection (Action
 * Cable's extended protocol: the member and identifiers stored under its sid), kept in this
 * process when there is no broker (with the Redis broker it lives in Redis: dialect_ctx.c).
 *
 * Every entry lives history.ttl_s; entries are kept in the order they were last written, so
 * that expired ones are taken from the front in O(1) and, past history.max_session_bytes, the
 * oldest go first (their clients restore nothing and subscribe again). Metrics:
 * wshub_sessions, wshub_session_bytes. Any thread (one lock).
 */
#ifndef WSHUB_SESSIONS_H
#define WSHUB_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

/* Stores val (len bytes, copied) under sid for ttl_s from now_ms, within max_bytes in all.
 * 0, or UV_ENOMEM / UV_ENOBUFS (larger than max_bytes alone): nothing stored. */
int sessions_put(const char *sid, const char *val, size_t len, uint32_t ttl_s, size_t max_bytes, uint64_t now_ms);
/* A malloc'd copy of what sid holds, unexpired at now_ms (*len set), or NULL. */
char *sessions_get(const char *sid, size_t *len, uint64_t now_ms);
/* Frees everything (at exit). */
void sessions_free(void);

#endif
