/*
 * faults — the mock backend's faults (issue 15), the way production fails: rejected Action
 * Cable subscriptions, moderation answers overridden for a reference or a text pattern,
 * latency and loss of WebSocket messages per API and direction, upgrades refused with a
 * chosen HTTP status for a while. Set through the control endpoints of server/mock/faults.c
 * (README: Mock backend, Faults); asked by the paths they change (cable.c's subscribe,
 * moderation.c's jobs, ws_session.c's messages, http/upgrade.c).
 *
 * The table is process-wide (workers are threads): a mutex guards it, and a relaxed atomic
 * mask says which kinds are set, so that every hook costs one load while none of its kind is
 * (a WebSocket message takes the lock only while a latency or drop fault is set).
 * Callable from any thread.
 */
#ifndef WSHUB_FAULTS_H
#define WSHUB_FAULTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The kinds of faults set (a bit per kind, faults.c); one relaxed load: the hooks ask first. */
extern atomic_uint faults_kinds;
#define FAULTS_MESSAGES 0x0cu /* latency, drop */
static inline bool faults_active(void) { return atomic_load_explicit(&faults_kinds, memory_order_relaxed) != 0; }
/* Is a latency or drop fault set (asked for every WebSocket message)? */
static inline bool faults_on_messages(void)
{
    return (atomic_load_explicit(&faults_kinds, memory_order_relaxed) & FAULTS_MESSAGES) != 0;
}

enum { FAULT_IN = 0, FAULT_OUT = 1 };

/* A data message (text or binary, never a control frame) of endpoint ep (endpoint_t) in
 * direction dir: true when it is to be dropped; else *delay_ms is how long to hold it (0:
 * not at all). */
bool faults_message(int ep, int dir, uint32_t *delay_ms);

/* A new upgrade to endpoint ep: 0, or the HTTP status it is refused with; then *retry_s is
 * the Retry-After (seconds left, at least 1) and the answer is faults_refusal_body's. */
int faults_refusal(int ep, unsigned *retry_s);
/* The refusal in the API's own JSON error format (malloc'd, NULL when out of memory). */
char *faults_refusal_body(int ep, int status);

/* Is this Action Cable subscription to be rejected (identifier channel, e.g.
 * "ChatRoomChannel", and the hub queue it maps to)? Counts one of the fault's rejections. */
bool faults_cable_reject(const char *channel, const char *queue);

/* A moderation request (reference: the request's, JSON null without one; the sample of len
 * bytes): the override to answer with, a new object the caller owns ({"success": false,
 * "message": m} or {"verdict": {"action", "score"}?, "scores": {…}?}), or NULL. Counts one
 * of the override's uses. */
json_t *faults_moderation_override(const json_t *reference, const char *sample, size_t len);

/* Bytes of messages held by latency faults in the whole process (ws_session.c): reserve n
 * (false when max would be passed), release them. */
bool faults_delay_reserve(size_t n, size_t max);
void faults_delay_release(size_t n);
/* A connection closed because its held messages passed a bound. */
void faults_delay_overflow(void);

#endif
