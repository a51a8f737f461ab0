/*
 * util — small helpers several modules share.
 */
#ifndef WSHUB_UTIL_H
#define WSHUB_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The current time as ISO-8601 UTC with milliseconds, e.g. 2026-11-23T12:00:00.123Z. */
void util_iso8601_now(char out[32]);

/* Doubles the room of an array of `size`-byte entries (`first` entries when it has none):
 * *items and *cap are updated; false, with both unchanged, when out of memory. */
bool util_grow(void **items, uint32_t *cap, size_t size, uint32_t first);

/* This thread's block of size bytes for key (zeroed, made on the thread's first call and
 * set as the key's value: the key's destructor frees it with the thread), or NULL when out
 * of memory. */
void *util_thread_block(pthread_key_t key, size_t size);

#endif
