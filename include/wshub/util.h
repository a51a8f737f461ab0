/*
 * util — small helpers several modules share.
 */
#ifndef WSHUB_UTIL_H
#define WSHUB_UTIL_H

/* The current time as ISO-8601 UTC with milliseconds, e.g. 2026-11-23T12:00:00.123Z. */
void util_iso8601_now(char out[32]);

#endif
