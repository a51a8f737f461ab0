/*
 * tap — the hooks of the mock backend's traffic tap (issue 15; server/mock/tap.c): every
 * WebSocket frame in and out and every publish, as JSON events for the clients of
 * /api/tap (WebSocket or Server-Sent Events), whatever worker they are on.
 *
 * Costs nothing while nobody listens: a hot path calls tap_on() first, one relaxed load of a
 * process-wide count of tap clients, and nothing else when it is 0. Past it, each thread
 * matches the event against its own copy of the clients' filters (refreshed when they
 * change), without a lock; only an event some filter wants is built and queued (to each
 * such client: a bounded queue, delivered on the client's worker).
 */
#ifndef WSHUB_TAP_H
#define WSHUB_TAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wshub/frame.h"

/* Tap clients registered in the process. */
extern atomic_uint tap_listeners;

static inline bool tap_on(void)
{
    return atomic_load_explicit(&tap_listeners, memory_order_relaxed) != 0;
}

enum { TAP_IN = 1, TAP_OUT = 2 };

/* A frame of connection conn (endpoint_t ep, never EP_TAP) received (TAP_IN: a complete,
 * validated message or control frame) or queued (TAP_OUT); payload unmasked. Any thread. */
void tap_frame(int ep, uint64_t conn, int dir, int opcode, const void *payload, size_t len);
/* A prepared frame (header and payload, frame.h) queued to connection conn: a fan-out
 * frame carries the channel being delivered on this thread (tap_fanout_begin). */
void tap_frame_prepared(int ep, uint64_t conn, const frame_t *f);
/* A publish to channel through the hub by api ("server": POST /api/publish; else the
 * dialect's name), reaching `delivered` subscriptions (< 0: unknown, a broker's). */
void tap_publish(const char *api, const char *channel, size_t channel_len, const char *event, const char *data,
                 size_t data_len, long long delivered);

/* A fan-out frame of channel is being delivered on this thread (worker.c, around the hub's
 * delivery to one session, until tap_fanout_end): the frame queued meanwhile is that
 * channel's. Called only while tap_on(). */
void tap_fanout_begin(const char *channel, size_t len);
void tap_fanout_end(void);

#endif
