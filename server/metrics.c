/*
 * metrics — see include/wshub/metrics.h. Renders the Prometheus text exposition format
 * (version 0.0.4): # HELP, # TYPE, then one sample per line.
 */
#include "wshub/metrics.h"
#include "wshub/iplimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wshub/auth.h"
#include "wshub/deflate.h"
#include "wshub/log.h"

_Static_assert(AUTH_REASON_COUNT <= 16, "metrics_t.auth_failures is too small");

const char *const endpoint_names[EP_COUNT] = {"http", "echo", "service", "cable", "moderation", "flow", "tap"};

int endpoint_of_api(const char *name)
{
    for (int ep = EP_ECHO; name && ep < EP_TAP; ep++)
        if (strcmp(name, endpoint_names[ep]) == 0)
            return ep;
    return -1;
}
const char *const hs_reason_names[HS_COUNT] = {
    "bad_request", "method", "not_upgrade", "bad_version", "bad_key", "not_found",
    "header_too_large", "too_many_headers", "body_too_large", "timeout", "unauthorized",
    "forbidden_origin", "tls", "over_capacity", "per_ip_limit", "accept_rate", "body_memory"};

atomic_size_t metrics_http_body_bytes;
atomic_size_t metrics_ws_inbound_bytes;

const uint64_t metrics_mod_bucket_us[METRICS_MOD_BUCKETS] = {50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000, 250000};
const uint64_t metrics_fanout_bucket_us[METRICS_FANOUT_BUCKETS] = {100, 250, 500, 750, 1000, 1500, 2000, 3000, 4000, 5000, 7500, 10000, 25000, 100000};

void metrics_observe_fanout(metrics_t *m, uint64_t us, uint64_t deliveries)
{
    /* One bucket per observation (it runs per delivery); the render makes them cumulative. */
    int b = 0;
    while (b < METRICS_FANOUT_BUCKETS && us > metrics_fanout_bucket_us[b])
        b++;
    if (b < METRICS_FANOUT_BUCKETS)
        metrics_add(&m->fanout_buckets[b], deliveries);
    metrics_add(&m->fanout_count, deliveries);
    metrics_add(&m->fanout_sum_us, us * deliveries);
}

metrics_gauges_t metrics_gauges;

static metrics_t *blocks[256];
static size_t nblocks;

void metrics_register(metrics_t *m)
{
    if (nblocks < sizeof blocks / sizeof blocks[0])
        blocks[nblocks++] = m;
}

/* Sums one counter over every block; `off` is the counter's offset inside metrics_t. */
static uint64_t sum(size_t off)
{
    uint64_t v = 0;
    for (size_t i = 0; i < nblocks; i++)
        v += atomic_load_explicit((counter_t *)((char *)blocks[i] + off), memory_order_relaxed);
    return v;
}

/* ------------------------------------------------------------------ rendering */

/* Read once, before any family is written: the TCP pair, closed before accepted, and accepted
 * never below closed, so that a connection accepted and closed between the two reads cannot
 * make the open gauge wrap (issue 11). */
typedef struct snapshot {
    uint64_t tcp_accepted, tcp_closed;
} snapshot_t;

typedef struct histogram {
    const uint64_t *bounds_us;     /* upper bounds of the buckets, µs */
    int nbuckets;
    size_t buckets, count, sum_us; /* offsets of the counters in metrics_t */
    int per_interval;              /* each bucket counts its own interval: the render sums them */
} histogram_t;

/* One metric family: # HELP, # TYPE, then what `samples` writes from the other fields. */
typedef struct family family_t;
struct family {
    const char *name, *type, *help;
    void (*samples)(FILE *f, const family_t *fam, const snapshot_t *s);
    size_t off;                      /* the counter, or the first of an array, in metrics_t
                                      * (one_shared: in metrics_gauges_t) */
    size_t closed;                   /* open_by_label: the closed counters, subtracted from off's */
    const char *label;               /* labeled families: the label's name */
    const char *const *values;       /* and its values, values[from] to values[count - 1] */
    int from, count;
    uint64_t (*value)(const snapshot_t *s); /* one_value: a value from outside metrics_t */
    const histogram_t *hist;
};

static void one_sum(FILE *f, const family_t *fam, const snapshot_t *s)
{
    (void)s;
    fprintf(f, "%s %llu\n", fam->name, (unsigned long long)sum(fam->off));
}

/* A gauge of metrics_gauges (shared by the workers, not summed); off is its offset there. */
static void one_shared(FILE *f, const family_t *fam, const snapshot_t *s)
{
    (void)s;
    fprintf(f, "%s %llu\n", fam->name,
            (unsigned long long)atomic_load((counter_t *)((char *)&metrics_gauges + fam->off)));
}

static void one_value(FILE *f, const family_t *fam, const snapshot_t *s)
{
    fprintf(f, "%s %llu\n", fam->name, (unsigned long long)fam->value(s));
}

static void by_label(FILE *f, const family_t *fam, const snapshot_t *s)
{
    (void)s;
    for (int i = fam->from; i < fam->count; i++)
        fprintf(f, "%s{%s=\"%s\"} %llu\n", fam->name, fam->label, fam->values[i],
                (unsigned long long)sum(fam->off + (size_t)i * sizeof(counter_t)));
}

/* Opened minus closed, closed read first, never below zero (issue 11). */
static void open_by_label(FILE *f, const family_t *fam, const snapshot_t *s)
{
    (void)s;
    for (int i = fam->from; i < fam->count; i++) {
        uint64_t c = sum(fam->closed + (size_t)i * sizeof(counter_t));
        uint64_t o = sum(fam->off + (size_t)i * sizeof(counter_t));
        fprintf(f, "%s{%s=\"%s\"} %llu\n", fam->name, fam->label, fam->values[i],
                (unsigned long long)(o > c ? o - c : 0));
    }
}

static void histogram(FILE *f, const family_t *fam, const snapshot_t *s)
{
    (void)s;
    const histogram_t *h = fam->hist;
    uint64_t cum = 0;
    for (int b = 0; b < h->nbuckets; b++) {
        uint64_t v = sum(h->buckets + (size_t)b * sizeof(counter_t));
        cum = h->per_interval ? cum + v : v;
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", fam->name, (double)h->bounds_us[b] / 1e6, (unsigned long long)cum);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", fam->name, (unsigned long long)sum(h->count));
    fprintf(f, "%s_sum %.6f\n", fam->name, (double)sum(h->sum_us) / 1e6);
    fprintf(f, "%s_count %llu\n", fam->name, (unsigned long long)sum(h->count));
}

static uint64_t tcp_accepted(const snapshot_t *s) { return s->tcp_accepted; }
static uint64_t tcp_closed(const snapshot_t *s) { return s->tcp_closed; }
static uint64_t tcp_open(const snapshot_t *s) { return s->tcp_accepted - s->tcp_closed; }
static uint64_t iplimit_addresses(const snapshot_t *s) { (void)s; return iplimit_entries(); }
static uint64_t http_body_bytes(const snapshot_t *s)
{
    (void)s;
    return atomic_load_explicit(&metrics_http_body_bytes, memory_order_relaxed);
}
static uint64_t ws_inbound_bytes(const snapshot_t *s)
{
    (void)s;
    return atomic_load_explicit(&metrics_ws_inbound_bytes, memory_order_relaxed);
}
static uint64_t log_lines_suppressed(const snapshot_t *s) { (void)s; return log_suppressed_total(); }
static uint64_t workers(const snapshot_t *s) { (void)s; return nblocks; }

static const char *const status_classes[6] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const mod_actions[4] = {"pass", "flag", "delete", "error"};
static const char *const flow_drops[FLOW_DROP_COUNT] = {"thread_bytes", "total_bytes", "expired", "threads"};
static const char *const pool_kinds[2] = {"pages", "objects"};
static const char *const deflate_stages[2] = {"plain", "compressed"};
static uint64_t zlib_bytes(const snapshot_t *s) { (void)s; return pmd_zlib_bytes(); }

#define OFF(field) offsetof(metrics_t, field)

_Static_assert(OFF(pool_object_bytes) == OFF(pool_page_bytes) + sizeof(counter_t),
               "wshub_state_pool_bytes reads pool_page_bytes and pool_object_bytes as one array");

static const histogram_t mod_scoring = {metrics_mod_bucket_us, METRICS_MOD_BUCKETS, OFF(mod_latency_buckets),
                                        OFF(mod_latency_count), OFF(mod_latency_sum_us), 0};
static const histogram_t fanout_delivery = {metrics_fanout_bucket_us, METRICS_FANOUT_BUCKETS, OFF(fanout_buckets),
                                            OFF(fanout_count), OFF(fanout_sum_us), 1};

/* A counter summed over the blocks; the same for a gauge. */
#define SUMMED(n, t, field, h) {.name = n, .type = t, .help = h, .samples = one_sum, .off = OFF(field)}
#define SHARED(n, field, h) SHARED_T(n, "gauge", field, h)
#define SHARED_T(n, t, field, h) \
    {.name = n, .type = t, .help = h, .samples = one_shared, .off = offsetof(metrics_gauges_t, field)}
/* A value from outside metrics_t (or from the snapshot). */
#define VALUE(n, t, fn, h) {.name = n, .type = t, .help = h, .samples = one_value, .value = fn}
/* An array of counters, one sample per label value from values[first]. */
#define LABELED(n, field, lbl, vals, first, cnt, h)                                                      \
    {.name = n, .type = "counter", .help = h, .samples = by_label, .off = OFF(field), .label = lbl, \
     .values = vals, .from = first, .count = cnt}
#define BY_ENDPOINT(n, field, first, h) LABELED(n, field, "endpoint", endpoint_names, first, EP_COUNT, h)
#define HISTOGRAM(n, hg, h) {.name = n, .type = "histogram", .help = h, .samples = histogram, .hist = &hg}

static const family_t families[] = {
    VALUE("wshub_tcp_connections_accepted_total", "counter", tcp_accepted, "TCP connections accepted."),
    VALUE("wshub_tcp_connections_closed_total", "counter", tcp_closed, "TCP connections closed."),
    VALUE("wshub_tcp_connections_open", "gauge", tcp_open, "TCP connections open now."),
    BY_ENDPOINT("wshub_connections_accepted_total", conns_opened, 1, "WebSocket connections accepted, by endpoint."),
    BY_ENDPOINT("wshub_connections_closed_total", conns_closed, 1, "WebSocket connections closed, by endpoint."),
    {.name = "wshub_connections_open", .type = "gauge", .help = "WebSocket connections open now, by endpoint.",
     .samples = open_by_label, .off = OFF(conns_opened), .closed = OFF(conns_closed), .label = "endpoint",
     .values = endpoint_names, .from = 1, .count = EP_COUNT},
    BY_ENDPOINT("wshub_frames_in_total", frames_in, 1, "WebSocket messages received, by endpoint."),
    BY_ENDPOINT("wshub_frames_out_total", frames_out, 1, "WebSocket frames queued for sending, by endpoint."),
    BY_ENDPOINT("wshub_bytes_in_total", bytes_in, 0, "Bytes read from clients, by endpoint (http: before an upgrade)."),
    BY_ENDPOINT("wshub_bytes_out_total", bytes_out, 0,
                "Bytes queued for clients, by endpoint (http: before an upgrade)."),
    LABELED("wshub_http_responses_total", http_responses, "class", status_classes, 1, 6,
            "HTTP responses sent, by status class."),
    LABELED("wshub_handshake_failures_total", handshake_failures, "reason", hs_reason_names, 0, HS_COUNT,
            "Requests and upgrades refused, by reason."),
    LABELED("wshub_auth_failures_total", auth_failures, "reason", auth_reason_names, 1, AUTH_REASON_COUNT,
            "Credentials refused, by reason."),
    SUMMED("wshub_publishes_total", "counter", publishes, "Publishes handled (HTTP API and client commands)."),
    SUMMED("wshub_deliveries_total", "counter", deliveries, "Published events queued to subscribers (fan-out)."),
    SUMMED("wshub_moderation_requests_total", "counter", mod_requests, "Moderation requests queued for scoring."),
    LABELED("wshub_moderation_answers_total", mod_answers, "action", mod_actions, 0, 4,
            "Moderation answers, by suggested action (error: error answers)."),
    HISTOGRAM("wshub_moderation_scoring_seconds", mod_scoring, "Time to score one sample on the thread pool."),
    HISTOGRAM("wshub_fanout_delivery_seconds", fanout_delivery,
              "Fan-out deliveries by the time from the publish to the write of their frame into the subscriber's "
              "socket: the server's share of a delivery's latency (TLS connections, which copy frames, are not "
              "counted)."),
    SUMMED("wshub_slow_consumer_closes_total", "counter", slow_consumer_closes,
           "Connections closed with 1013 because their queued output passed limits.max_queued_bytes."),
    SUMMED("wshub_close_timeouts_total", "counter", close_timeouts,
           "Close handshakes the peer did not complete within websocket.close_timeout_ms."),
    SUMMED("wshub_accept_pauses_total", "counter", accept_pauses,
           "Times a worker stopped accepting: near the descriptor limit, or out of descriptors or memory."),
    SUMMED("wshub_accept_paused_workers", "gauge", accept_paused,
           "Workers not accepting now (they resume as connections close)."),
    SUMMED("wshub_evictions_total", "counter", evictions,
           "Connections that had not completed a request, reset at the descriptor budget to make room."),
    SUMMED("wshub_accept_errors_total", "counter", accept_errors,
           "accept() failures: EMFILE, ENFILE, ENOBUFS, ENOMEM."),
    SUMMED("wshub_ping_timeouts_total", "counter", ping_timeouts,
           "WebSocket connections closed because nothing came back within websocket.ping_timeout_ms of a ping."),
    SUMMED("wshub_rate_limited_closes_total", "counter", rate_limited,
           "WebSocket connections closed (1008) for sending faster than limits.message_rate."),
    VALUE("wshub_iplimit_addresses", "gauge", iplimit_addresses,
          "Client addresses the per-IP limits keep counts for (at most 65,536; loopback exempt by default)."),
    VALUE("wshub_http_body_bytes", "gauge", http_body_bytes,
          "Request-body bytes held now (bounded by http.max_body_total_bytes)."),
    VALUE("wshub_ws_inbound_bytes", "gauge", ws_inbound_bytes,
          "Bytes of unfinished inbound WebSocket messages held now (bounded by limits.max_inbound_total_bytes)."),
    SUMMED("wshub_queued_reply_bytes", "gauge", private_queued,
           "Reply bytes queued for clients now, fan-out frames excepted (bounded by limits.max_queued_total_bytes)."),
    {.name = "wshub_state_pool_bytes", .type = "gauge",
     .help = "Per-connection state in the workers' pools: pages held from the kernel, objects in use (50 ms old).",
     .samples = by_label, .off = OFF(pool_page_bytes), .label = "kind", .values = pool_kinds, .from = 0, .count = 2},
    SHARED("wshub_flow_tickets", flow_tickets,
          "Unused Flow endpoints (/ws/<token>) held; flow.max_tickets bounds them."),
    SUMMED("wshub_flow_ticket_refusals_total", "counter", flow_ticket_refusals,
           "GET /socket.info answered 503 because flow.max_tickets was reached."),
    SUMMED("wshub_flow_tickets_expired_total", "counter", flow_tickets_expired,
           "Unused Flow endpoints freed when they expired."),
    SUMMED("wshub_flow_pending_replies", "gauge", flow_pending_replies,
           "Flow bot replies held for flow.reply_delay_ms (bounded by flow.max_pending_replies per worker)."),
    SHARED("wshub_flow_threads", flow_threads, "Flow threads known (with a history or a socket)."),
    SHARED("wshub_flow_history_bytes", flow_history_bytes,
          "Bytes of Flow thread history held; flow.max_history_total_bytes bounds them."),
    LABELED("wshub_flow_history_dropped_total", flow_history_dropped, "reason", flow_drops, 0, FLOW_DROP_COUNT,
            "Flow history entries dropped, by reason: thread_bytes (flow.max_history_bytes), total_bytes "
            "(flow.max_history_total_bytes), expired (flow.thread_ttl_s), threads (too many threads)."),
    SHARED("wshub_broker_up", broker_up,
           "1 while the link to the broker (broker.type redis) is up; 0 while it is down or there is none."),
    SHARED_T("wshub_broker_reconnects_total", "counter", broker_reconnects,
             "Times the broker's link was made again after it was lost."),
    SHARED_T("wshub_broker_publishes_refused_total", "counter", broker_refused,
             "Publishes refused (503, or the API's error): the broker unreachable, or broker.max_pending_bytes held."),
    SHARED("wshub_broker_pending_bytes", broker_pending,
           "Bytes of publishes and history or session commands handed to the broker and not answered yet "
           "(bounded by broker.max_pending_bytes)."),
    SHARED("wshub_flow_store_up", flow_store_up,
           "1 while the Flow store's link to Redis (broker.type redis) is up; 0 while it is down or there is none."),
    SHARED("wshub_flow_store_pending_bytes", flow_store_pending,
           "Bytes of Flow store commands queued for Redis or awaiting its answer (bounded by broker.max_pending_bytes)."),
    SHARED_T("wshub_flow_store_refused_total", "counter", flow_store_refused,
             "Flow store operations refused at once (503 or Flow's error): Redis unreachable, or the bound held."),
    SHARED("wshub_hub_mailbox_bytes", mailbox_bytes,
           "Bytes of messages posted to workers by other threads (workers, the broker) and not delivered yet."),
    SHARED_T("wshub_hub_mailbox_dropped_total", "counter", mailbox_dropped,
             "A worker's share of a message dropped: its mailbox held limits.max_mailbox_bytes."),
    SHARED("wshub_history_bytes", history_bytes,
           "Bytes of messages kept in channel history without a broker (bounded by history.max_bytes)."),
    SHARED("wshub_history_messages", history_messages, "Messages kept in channel history without a broker."),
    SHARED("wshub_history_channels", history_channels, "Channels with a history without a broker."),
    SHARED_T("wshub_history_expired_total", "counter", history_expired,
             "History entries gone past history.ttl_s."),
    SHARED_T("wshub_history_dropped_total", "counter", history_dropped,
             "History entries dropped to stay within history.max_bytes."),
    SHARED("wshub_sessions", sessions, "Cable sessions kept in this process for their restore (no broker)."),
    SHARED("wshub_session_bytes", session_bytes,
           "Bytes of those sessions (bounded by history.max_session_bytes: past it the oldest go)."),
    SHARED_T("wshub_history_recoveries_attempted_total", "counter", recoveries_attempted,
             "Recoveries asked (API B subscribe with since, Action Cable history command)."),
    SHARED_T("wshub_history_recoveries_succeeded_total", "counter", recoveries_succeeded,
             "Recoveries whose history reached back: the missed messages were replayed."),
    SHARED_T("wshub_history_recoveries_failed_total", "counter", recoveries_failed,
             "Recoveries whose history did not reach back or could not be read: nothing was replayed."),
    SHARED("wshub_mock_scenarios", mock_scenarios, "Mock scenarios running (bounded by mock.max_scenarios)."),
    SHARED_T("wshub_mock_scenario_requests_total", "counter", mock_scenario_requests,
             "Requests made by mock scenario steps (publishes and requests to this server's API)."),
    SHARED("wshub_mock_circle_members", circle_members,
           "Members of the mock's Circle model (/api/circle; bounded by mock.circle_max_members)."),
    SHARED("wshub_mock_circle_rooms", circle_rooms,
           "Chat rooms of the mock's Circle model (bounded by mock.circle_max_rooms)."),
    SHARED("wshub_mock_circle_messages", circle_messages, "Messages the mock's Circle model holds."),
    SHARED("wshub_mock_circle_message_bytes", circle_bytes,
           "Bytes of messages the mock's Circle model holds (bounded by mock.circle_max_bytes)."),
    SHARED_T("wshub_mock_circle_messages_dropped_total", "counter", circle_dropped,
             "Oldest messages the mock's Circle model dropped at mock.circle_max_messages (per room) or "
             "mock.circle_max_bytes."),
    SHARED_T("wshub_mock_circle_refused_total", "counter", circle_refused,
             "Members, rooms or participants the mock's Circle model refused (409) at their bound."),
    SHARED("wshub_mock_faults", mock_faults,
           "Mock backend faults and overrides set (bounded by mock.max_faults)."),
    SHARED_T("wshub_mock_fault_hits_total", "counter", mock_fault_hits,
             "Messages dropped or delayed, subscriptions rejected, answers overridden and upgrades refused by faults."),
    SHARED("wshub_mock_delayed_bytes", mock_delayed_bytes,
           "Bytes of WebSocket messages latency faults hold now (bounded by mock.max_delayed_bytes)."),
    SHARED_T("wshub_mock_delay_overflows_total", "counter", mock_delay_overflows,
             "Connections closed with 1013: the messages latency faults held for them passed a bound."),
    SUMMED("wshub_deflate_connections", "gauge", deflate_sessions,
           "WebSocket connections that negotiated permessage-deflate (websocket.compression)."),
    LABELED("wshub_deflate_received_bytes_total", deflate_in, "stage", deflate_stages, 0, 2,
            "Payload bytes of compressed messages received: plain (inflated) and compressed (on the wire)."),
    LABELED("wshub_deflate_sent_bytes_total", deflate_out, "stage", deflate_stages, 0, 2,
            "Payload bytes of compressed messages sent, per connection (a shared compressed frame counts "
            "for each): plain (before) and compressed (on the wire)."),
    VALUE("wshub_deflate_zlib_bytes", "gauge", zlib_bytes,
          "zlib memory held now: the inflaters of connections with client context takeover, the workers' "
          "compressors, and inflaters during a message."),
    SHARED("wshub_mock_tap_clients", tap_clients,
           "Traffic tap clients (/api/tap) connected now (bounded by mock.tap_max_clients)."),
    SHARED_T("wshub_mock_tap_events_total", "counter", tap_events, "Events queued to traffic tap clients."),
    SHARED_T("wshub_mock_tap_dropped_total", "counter", tap_dropped,
             "Events a traffic tap client could not take (mock.tap_queue_bytes held): dropped, and told to it."),
    SHARED("wshub_mock_tap_queued_bytes", tap_queued_bytes,
           "Bytes of events queued to traffic tap clients now, not sent yet (bounded by mock.tap_queue_bytes per client)."),
    VALUE("wshub_log_lines_suppressed_total", "counter", log_lines_suppressed,
          "Log lines left out by the rate limit (log.rate_limit_per_s lines per reason per second)."),
    VALUE("wshub_workers", "gauge", workers, "Worker threads."),
};

char *metrics_render(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    snapshot_t s = {.tcp_closed = sum(OFF(tcp_closed))};
    s.tcp_accepted = sum(OFF(tcp_accepted));
    if (s.tcp_accepted < s.tcp_closed)
        s.tcp_accepted = s.tcp_closed;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        const family_t *fam = &families[i];
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name, fam->type);
        fam->samples(f, fam, &s);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
