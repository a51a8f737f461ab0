/*
 * mock/tap.h — what the two files of the traffic tap share: tap.c (the registry of tap
 * clients, their filters, the events and each client's bounded queue) and tap_client.c (the
 * clients: the WebSocket endpoint, the Server-Sent Events route, the flush on their worker).
 */
#ifndef WSHUB_MOCK_TAP_H
#define WSHUB_MOCK_TAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "wshub/api.h"
#include "wshub/dialect.h"
#include "wshub/http.h"
#include "wshub/tap.h"
#include "wshub/wtimer.h"

/* Event kinds a filter may ask for. */
enum { TAP_K_FRAME = 1, TAP_K_PUBLISH = 2 };

/* The bit of apis for publishes through the server API (POST /api/publish: no dialect). */
#define TAP_API_SERVER EP_HTTP

/* What one client wants; an event passes when every filter set matches a field of it: api
 * (a frame's API; a publish's publisher, TAP_API_SERVER for the server API), conn and dir
 * (frames only: a publish has neither, so it never passes them), kind, and channel (a
 * publish's channel, a fan-out frame's, or, for other frames, a payload that names it). */
typedef struct tap_filter {
    uint32_t apis;      /* 1 << endpoint_t of the APIs wanted (TAP_API_SERVER too); 0 = every API */
    uint8_t dirs;       /* TAP_IN | TAP_OUT; 0 = both */
    uint8_t kinds;      /* TAP_K_*; 0 = both */
    bool prefix;        /* channel was given with a trailing '*': a prefix */
    uint64_t conn;      /* 0 = every connection */
    size_t channel_len; /* 0 = every channel */
    char channel[API_MAX_CHANNEL + 1];
} tap_filter_t;

/* One event as JSON text (no newline), queued for one client. */
typedef struct tap_event {
    struct tap_event *next;
    size_t len;
    char text[];
} tap_event_t;

typedef struct tap {
    atomic_uint refs;      /* the registry's, the client's, one per flush call queued */
    uint64_t id;
    tap_filter_t f;        /* fixed once registered */
    dialect_ctx_t *x;      /* the tap dialect's context on the client's worker */
    /* On the client's worker only: */
    ws_session_t *s;       /* a WebSocket client (set by on_open), or */
    http_stream_t *st;     /* a Server-Sent Events client */
    bool closed;           /* the client is gone: its queue is freed, nothing is sent */
    bool retry_armed;
    wtimer_t retry;        /* its output is backed up: flush again on this timer */
    /* Under lock (any thread): */
    uv_mutex_t lock;
    tap_event_t *head, *tail;
    size_t qbytes;         /* bytes of the events queued (bounded by mock.tap_queue_bytes) */
    uint64_t dropped;      /* events dropped since the last notice */
    bool scheduled;        /* a flush call is queued on x's worker */
} tap_t;

/* tap.c. On the main thread, before the workers (the tap dialect's process_init). */
int tap__registry_init(const config_t *cfg);
void tap__registry_free(void);
/* A new client of filter f on x's worker, registered (its events are queued from now on),
 * with two references (the registry's and the caller's). NULL: mock.tap_max_clients are
 * registered (*full) or out of memory. */
tap_t *tap__register(dialect_ctx_t *x, const tap_filter_t *f, bool *full);
/* The client is gone (on its worker): unregistered, its queue freed, the caller's and the
 * registry's references dropped. */
void tap__unregister(tap_t *t);
void tap__unref(tap_t *t);
/* The next queued event (the caller frees it), or NULL; *dropped takes the count of events
 * dropped since the last call. Clears `scheduled` when the queue is empty. */
tap_event_t *tap__pop(tap_t *t, uint64_t *dropped);
/* The event a client gets first: {"t":…,"kind":"open","tap":id,"filter":{…}}, malloc'd. */
char *tap__open_event(const tap_t *t, size_t *len);
/* {"t":…,"kind":"dropped","n":n}, malloc'd. */
char *tap__dropped_event(uint64_t n, size_t *len);

/* tap_client.c: runs on t's worker (dialect_call), sends what t's queue holds; takes over
 * the reference the caller took for the call. */
void tap__flush_call(void *arg);

#endif
