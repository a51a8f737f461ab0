/*
 * util — small helpers several modules share.
 */
#ifndef WSHUB_UTIL_H
#define WSHUB_UTIL_H

#include <pthread.h>
#include <stddef.h>

/* The current time as ISO-8601 UTC with milliseconds, e.g. 2026-11-23T12:00:00.123Z. */
void util_iso8601_now(char out[32]);

/* This thread's block of size bytes for key (zeroed, made on the thread's first call and
 * set as the key's value: the key's destructor frees it with the thread), or NULL when out
 * of memory. */
void *util_thread_block(pthread_key_t key, size_t size);

#endif
