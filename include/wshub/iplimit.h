/*
 * iplimit — per-IP connection counts and accept rates, for the whole process
 * (limits.max_connections_per_ip, limits.accept_rate_per_ip). Touched only at accept and at
 * close, under one mutex; loopback peers skip it when limits.exempt_loopback is set.
 *
 * Owns: a table from a 16-byte address (IPv4 mapped into IPv6) to its open connections and
 * a token bucket of new connections. An entry lives while its address has connections or
 * a bucket that is not yet full again; the table is bounded (IPLIMIT_MAX_ENTRIES): when it
 * is full of live entries, a new address is accepted without being counted.
 */
#ifndef WSHUB_IPLIMIT_H
#define WSHUB_IPLIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "wshub/config.h"

#define IPLIMIT_MAX_ENTRIES 65536

typedef enum {
    IPLIMIT_OK = 0,       /* counted: call iplimit_release at close */
    IPLIMIT_UNCOUNTED,    /* accepted without counting (table full): no release */
    IPLIMIT_TOO_MANY,     /* over limits.max_connections_per_ip */
    IPLIMIT_TOO_FAST,     /* over limits.accept_rate_per_ip */
} iplimit_result_t;

/* Is this 16-byte address (v4-mapped or v6) a loopback address? */
bool iplimit_is_loopback(const uint8_t ip[16]);
/* A new connection from ip at now_ms (a monotonic clock). */
iplimit_result_t iplimit_acquire(const uint8_t ip[16], uint64_t now_ms, const config_t *cfg);
/* A counted connection from ip closed. */
void iplimit_release(const uint8_t ip[16]);
/* Entries in the table (for tests and /metrics). */
size_t iplimit_entries(void);

#endif
