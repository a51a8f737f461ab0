/*
 * util — see include/wshub/util.h.
 */
#include "wshub/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void util_iso8601_now(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

bool util_grow(void **items, uint32_t *cap, size_t size, uint32_t first)
{
    uint32_t ncap = *cap ? *cap * 2 : first;
    void *n = ncap > *cap ? realloc(*items, ncap * size) : NULL;
    if (!n)
        return false;
    *items = n;
    *cap = ncap;
    return true;
}

void *util_thread_block(pthread_key_t key, size_t size)
{
    void *b = pthread_getspecific(key);
    if (b)
        return b;
    if (!(b = calloc(1, size)))
        return NULL;
    if (pthread_setspecific(key, b) != 0) {
        free(b);
        return NULL;
    }
    return b;
}
