/*
 * metrics — counters for /metrics (Prometheus text format).
 *
 * Each worker owns one metrics_t and is its only writer (metrics_add: relaxed load and
 * store, no locked instruction on the hot path); /metrics sums every registered block,
 * from whichever worker serves the request. Blocks are registered before the workers
 * start and stay valid until the process exits.
 */
#ifndef WSHUB_METRICS_H
#define WSHUB_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Where a connection ended up: plain HTTP, or one of the WebSocket endpoints. */
typedef enum {
    EP_HTTP = 0,
    EP_ECHO,
    EP_SERVICE,
    EP_CABLE,
    EP_MODERATION,
    EP_FLOW,
    EP_TAP, /* the mock backend's traffic tap (/api/tap): never tapped itself */
    EP_COUNT
} endpoint_t;
extern const char *const endpoint_names[EP_COUNT];
/* The endpoint of one of the APIs by its name (endpoint_names: "echo", "service", "cable",
 * "moderation", "flow"; never "http" nor "tap"), or -1. */
int endpoint_of_api(const char *name);

/* Why an HTTP request or an upgrade was refused. */
typedef enum {
    HS_BAD_REQUEST = 0, /* unparseable HTTP */
    HS_METHOD,          /* upgrade with a method other than GET */
    HS_NOT_UPGRADE,     /* WebSocket endpoint asked without a valid Upgrade/Connection */
    HS_BAD_VERSION,     /* Sec-WebSocket-Version is not 13 */
    HS_BAD_KEY,         /* Sec-WebSocket-Key missing or not 16 base64-encoded bytes */
    HS_NOT_FOUND,       /* no endpoint at that path */
    HS_HEADER_TOO_LARGE,
    HS_TOO_MANY_HEADERS,
    HS_BODY_TOO_LARGE,
    HS_TIMEOUT,         /* the request did not complete in time */
    HS_UNAUTHORIZED,
    HS_FORBIDDEN_ORIGIN,
    HS_TLS,             /* TLS handshake failed */
    HS_OVER_CAPACITY,   /* limits.max_connections reached */
    HS_PER_IP,          /* limits.max_connections_per_ip reached: reset at accept */
    HS_ACCEPT_RATE,     /* limits.accept_rate_per_ip passed: reset at accept */
    HS_BODY_MEMORY,     /* http.max_body_total_bytes would be passed: 503 */
    HS_COUNT
} hs_reason_t;
extern const char *const hs_reason_names[HS_COUNT];

typedef _Atomic uint64_t counter_t;

/* Why Flow thread history was dropped (wshub_flow_history_dropped_total{reason}). */
enum {
    FLOW_DROP_THREAD_BYTES = 0, /* flow.max_history_bytes of one thread */
    FLOW_DROP_TOTAL_BYTES,      /* flow.max_history_total_bytes of all threads */
    FLOW_DROP_EXPIRED,          /* the thread expired (flow.thread_ttl_s) */
    FLOW_DROP_THREADS,          /* too many threads */
    FLOW_DROP_COUNT
};

/* Upper bounds (µs) of the moderation scoring-time histogram buckets. */
#define METRICS_MOD_BUCKETS 10
extern const uint64_t metrics_mod_bucket_us[METRICS_MOD_BUCKETS];
#define METRICS_FANOUT_BUCKETS 14
extern const uint64_t metrics_fanout_bucket_us[METRICS_FANOUT_BUCKETS];

typedef struct metrics {
    counter_t tcp_accepted;
    counter_t tcp_closed;
    counter_t conns_opened[EP_COUNT]; /* WebSocket sessions opened (EP_HTTP unused) */
    counter_t conns_closed[EP_COUNT];
    counter_t frames_in[EP_COUNT];    /* WebSocket messages received */
    counter_t frames_out[EP_COUNT];   /* WebSocket frames queued for sending */
    counter_t bytes_in[EP_COUNT];     /* bytes read from sockets (TLS: ciphertext) */
    counter_t bytes_out[EP_COUNT];    /* bytes queued for sending */
    counter_t http_responses[6];      /* by status class: [1]=1xx … [5]=5xx */
    counter_t handshake_failures[HS_COUNT];
    counter_t auth_failures[16];      /* by auth_reason_t (auth.h) */
    counter_t publishes;              /* hub publishes handled by this worker */
    counter_t deliveries;             /* frames queued to subscribers by fan-out */
    counter_t mod_requests;           /* moderation requests queued for scoring */
    counter_t mod_answers[4];         /* by suggested action: pass, flag, delete; [3] errors */
    counter_t mod_latency_buckets[METRICS_MOD_BUCKETS]; /* scoring time <= bucket bound */
    counter_t mod_latency_count;
    counter_t mod_latency_sum_us;
    counter_t slow_consumer_closes;
    counter_t close_timeouts;         /* close handshakes the peer did not finish */
    /* Fan-out deliveries by the time from the publish to the write of their frame into the
     * subscriber's socket (wshub_fanout_delivery_seconds, counted in conn.c). Each bucket
     * counts its own interval (not cumulative: one add per delivery); the render sums them. */
    counter_t fanout_buckets[METRICS_FANOUT_BUCKETS];
    counter_t fanout_count;
    counter_t fanout_sum_us;
    counter_t accept_pauses;          /* times accepting paused (descriptors, limits) */
    counter_t accept_paused;          /* gauge: 1 while this worker's accept is paused */
    counter_t evictions;              /* connections without a request reset to make room */
    counter_t accept_errors;          /* accept() failures: EMFILE, ENFILE, ENOBUFS, ENOMEM */
    counter_t ping_timeouts;          /* WebSocket connections closed for not answering a ping */
    counter_t rate_limited;           /* WebSocket connections closed over limits.message_rate */
    counter_t private_queued;         /* gauge: reply bytes queued on this worker (conn.c) */
    counter_t pool_page_bytes;        /* gauges copied from the worker's mempool every tick */
    counter_t pool_object_bytes;
    counter_t flow_ticket_refusals;   /* /socket.info answered 503: flow.max_tickets reached */
    counter_t flow_tickets_expired;   /* unused tickets freed at their expiry */
    counter_t flow_pending_replies;   /* gauge: bot replies held for flow.reply_delay_ms */
    counter_t flow_history_dropped[FLOW_DROP_COUNT]; /* history entries dropped, by reason */
    counter_t deflate_sessions;       /* gauge: sessions that negotiated permessage-deflate */
    counter_t deflate_in[2];          /* compressed messages received: [0] bytes inflated, [1] on the wire */
    counter_t deflate_out[2];         /* compressed messages sent: [0] bytes before, [1] after compressing */
} metrics_t;

/* Gauges of stores every worker shares, written by their owner under its lock. */
typedef struct metrics_gauges {
    counter_t flow_tickets;       /* unused /ws/<token> tickets held (dialects/flow/store_mem.c) */
    counter_t flow_threads;       /* Flow threads known (dialects/flow/store_mem.c) */
    counter_t flow_history_bytes; /* bytes of Flow thread history held (dialects/flow/store_mem.c) */
    counter_t broker_up;          /* 1 while the broker's link is up (broker_redis.c); 0 without one */
    counter_t broker_reconnects;  /* links made again after one was lost */
    counter_t broker_refused;     /* publishes refused: the broker unreachable or over its bound (hub.c) */
    counter_t broker_pending;     /* bytes of publishes queued to the broker, not answered yet */
    counter_t flow_store_up;      /* 1 while the Flow store's Redis link is up (store_redis.c) */
    counter_t flow_store_pending; /* bytes of Flow store commands queued or awaiting Redis's answer */
    counter_t flow_store_refused; /* Flow store operations refused at once: link down or over the bound */
    counter_t mailbox_bytes;      /* bytes of messages posted to workers' mailboxes, not delivered (hub.c) */
    counter_t mailbox_dropped;    /* a worker's share of a message dropped: its mailbox was full */
    counter_t history_bytes;      /* bytes of messages kept in channel history (history.c) */
    counter_t history_messages;   /* messages kept in channel history */
    counter_t history_channels;   /* channels with a history */
    counter_t history_expired;    /* history entries gone past history.ttl_s */
    counter_t history_dropped;    /* history entries dropped for history.max_bytes */
    counter_t recoveries_attempted; /* hub_recover calls (hub.c) */
    counter_t sessions;           /* cable sessions kept for their restore (sessions.c) */
    counter_t session_bytes;      /* their bytes (history.max_session_bytes) */
    counter_t recoveries_succeeded; /* the history reached back: the missed messages were replayed */
    counter_t recoveries_failed;    /* it did not (or could not be read): nothing replayed */
    counter_t mock_scenarios;     /* scenarios running (mock/scenario_run.c) */
    counter_t mock_scenario_requests; /* requests scenario steps made */
    counter_t circle_members;     /* the mock's Circle model (mock/circle_model.c): members held */
    counter_t circle_rooms;       /* chat rooms held */
    counter_t circle_messages;    /* messages held */
    counter_t circle_bytes;       /* bytes of messages held (mock.circle_max_bytes) */
    counter_t circle_dropped;     /* messages dropped at mock.circle_max_messages or _max_bytes */
    counter_t circle_refused;     /* members, rooms or participants refused at their bound (409) */
    counter_t mock_faults;        /* faults and overrides set (server/mock/faults.c) */
    counter_t mock_fault_hits;    /* messages, subscriptions, answers and upgrades a fault changed */
    counter_t mock_delayed_bytes; /* bytes of messages latency faults hold (ws_session.c) */
    counter_t mock_delay_overflows; /* connections closed: their delayed messages passed a bound */
    counter_t tap_clients;        /* traffic tap clients now (mock/tap.c) */
    counter_t tap_events;         /* events queued to tap clients */
    counter_t tap_dropped;        /* events a tap client could not take: mock.tap_queue_bytes held */
    counter_t tap_queued_bytes;   /* bytes of events queued to tap clients now */
} metrics_gauges_t;
extern metrics_gauges_t metrics_gauges;

static inline void metrics_add(counter_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Registers a worker's block; call before the workers start. At most 256 blocks. */
void metrics_register(metrics_t *m);
/* Counts `deliveries` fan-out deliveries that spent `us` in the server (one bucket: its own interval; the render cumulates). */
void metrics_observe_fanout(metrics_t *m, uint64_t us, uint64_t deliveries);

/* Request-body bytes held by the whole process (http.c), for the gauge. */
extern atomic_size_t metrics_http_body_bytes;
/* Bytes of unfinished inbound WebSocket messages held by the whole process (ws_session.c). */
extern atomic_size_t metrics_ws_inbound_bytes;

/* Renders every counter, summed over the registered blocks; returns a malloc'd string. */
char *metrics_render(size_t *len);

#endif
