/*
 * metrics — see include/wshub/metrics.h. Renders the Prometheus text exposition format
 * (version 0.0.4): # HELP, # TYPE, then one sample per line.
 */
#include "wshub/metrics.h"
#include "wshub/iplimit.h"

#include <stdio.h>
#include <stdlib.h>

#include "wshub/auth.h"
#include "wshub/log.h"

_Static_assert(AUTH_REASON_COUNT <= 16, "metrics_t.auth_failures is too small");

const char *const endpoint_names[EP_COUNT] = {"http", "echo", "service", "cable", "moderation", "flow"};
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

#define SUM(field) sum(offsetof(metrics_t, field))

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void by_endpoint(FILE *f, const char *name, const char *help, size_t off, int from)
{
    head(f, name, "counter", help);
    for (int e = from; e < EP_COUNT; e++)
        fprintf(f, "%s{endpoint=\"%s\"} %llu\n", name, endpoint_names[e],
                (unsigned long long)sum(off + (size_t)e * sizeof(counter_t)));
}

char *metrics_render(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;

    /* Closed before accepted, and a gauge never below zero: a connection accepted and closed
     * between the two reads must not make it wrap (issue 11). */
    uint64_t clo = SUM(tcp_closed), acc = SUM(tcp_accepted);
    if (acc < clo)
        acc = clo;
    head(f, "wshub_tcp_connections_accepted_total", "counter", "TCP connections accepted.");
    fprintf(f, "wshub_tcp_connections_accepted_total %llu\n", (unsigned long long)acc);
    head(f, "wshub_tcp_connections_closed_total", "counter", "TCP connections closed.");
    fprintf(f, "wshub_tcp_connections_closed_total %llu\n", (unsigned long long)clo);
    head(f, "wshub_tcp_connections_open", "gauge", "TCP connections open now.");
    fprintf(f, "wshub_tcp_connections_open %llu\n", (unsigned long long)(acc - clo));

    by_endpoint(f, "wshub_connections_accepted_total", "WebSocket connections accepted, by endpoint.",
                offsetof(metrics_t, conns_opened), 1);
    by_endpoint(f, "wshub_connections_closed_total", "WebSocket connections closed, by endpoint.",
                offsetof(metrics_t, conns_closed), 1);
    head(f, "wshub_connections_open", "gauge", "WebSocket connections open now, by endpoint.");
    for (int e = 1; e < EP_COUNT; e++) {
        uint64_t c = SUM(conns_closed[e]), o = SUM(conns_opened[e]);
        fprintf(f, "wshub_connections_open{endpoint=\"%s\"} %llu\n", endpoint_names[e],
                (unsigned long long)(o > c ? o - c : 0));
    }
    by_endpoint(f, "wshub_frames_in_total", "WebSocket messages received, by endpoint.",
                offsetof(metrics_t, frames_in), 1);
    by_endpoint(f, "wshub_frames_out_total", "WebSocket frames queued for sending, by endpoint.",
                offsetof(metrics_t, frames_out), 1);
    by_endpoint(f, "wshub_bytes_in_total", "Bytes read from clients, by endpoint (http: before an upgrade).",
                offsetof(metrics_t, bytes_in), 0);
    by_endpoint(f, "wshub_bytes_out_total", "Bytes queued for clients, by endpoint (http: before an upgrade).",
                offsetof(metrics_t, bytes_out), 0);

    head(f, "wshub_http_responses_total", "counter", "HTTP responses sent, by status class.");
    for (int k = 1; k <= 5; k++)
        fprintf(f, "wshub_http_responses_total{class=\"%dxx\"} %llu\n", k,
                (unsigned long long)SUM(http_responses[k]));
    head(f, "wshub_handshake_failures_total", "counter", "Requests and upgrades refused, by reason.");
    for (int r = 0; r < HS_COUNT; r++)
        fprintf(f, "wshub_handshake_failures_total{reason=\"%s\"} %llu\n", hs_reason_names[r],
                (unsigned long long)SUM(handshake_failures[r]));
    head(f, "wshub_auth_failures_total", "counter", "Credentials refused, by reason.");
    for (int r = 1; r < AUTH_REASON_COUNT; r++)
        fprintf(f, "wshub_auth_failures_total{reason=\"%s\"} %llu\n", auth_reason_names[r],
                (unsigned long long)SUM(auth_failures[r]));
    head(f, "wshub_publishes_total", "counter", "Publishes handled (HTTP API and client commands).");
    fprintf(f, "wshub_publishes_total %llu\n", (unsigned long long)SUM(publishes));
    head(f, "wshub_deliveries_total", "counter", "Published events queued to subscribers (fan-out).");
    fprintf(f, "wshub_deliveries_total %llu\n", (unsigned long long)SUM(deliveries));
    head(f, "wshub_moderation_requests_total", "counter", "Moderation requests queued for scoring.");
    fprintf(f, "wshub_moderation_requests_total %llu\n", (unsigned long long)SUM(mod_requests));
    head(f, "wshub_moderation_answers_total", "counter", "Moderation answers, by suggested action (error: error answers).");
    static const char *const actions[4] = {"pass", "flag", "delete", "error"};
    for (int a = 0; a < 4; a++)
        fprintf(f, "wshub_moderation_answers_total{action=\"%s\"} %llu\n", actions[a],
                (unsigned long long)SUM(mod_answers[a]));
    head(f, "wshub_moderation_scoring_seconds", "histogram", "Time to score one sample on the thread pool.");
    for (int b = 0; b < METRICS_MOD_BUCKETS; b++)
        fprintf(f, "wshub_moderation_scoring_seconds_bucket{le=\"%g\"} %llu\n", (double)metrics_mod_bucket_us[b] / 1e6,
                (unsigned long long)SUM(mod_latency_buckets[b]));
    fprintf(f, "wshub_moderation_scoring_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)SUM(mod_latency_count));
    fprintf(f, "wshub_moderation_scoring_seconds_sum %.6f\n", (double)SUM(mod_latency_sum_us) / 1e6);
    fprintf(f, "wshub_moderation_scoring_seconds_count %llu\n", (unsigned long long)SUM(mod_latency_count));
    head(f, "wshub_fanout_delivery_seconds", "histogram",
         "Fan-out deliveries by the time from the publish to the write of their frame into the subscriber's socket: "
         "the server's share of a delivery's latency (TLS connections, which copy frames, are not counted).");
    uint64_t cum = 0;
    for (int b = 0; b < METRICS_FANOUT_BUCKETS; b++) {
        cum += SUM(fanout_buckets[b]);
        fprintf(f, "wshub_fanout_delivery_seconds_bucket{le=\"%g\"} %llu\n", (double)metrics_fanout_bucket_us[b] / 1e6,
                (unsigned long long)cum);
    }
    fprintf(f, "wshub_fanout_delivery_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)SUM(fanout_count));
    fprintf(f, "wshub_fanout_delivery_seconds_sum %.6f\n", (double)SUM(fanout_sum_us) / 1e6);
    fprintf(f, "wshub_fanout_delivery_seconds_count %llu\n", (unsigned long long)SUM(fanout_count));
    head(f, "wshub_slow_consumer_closes_total", "counter",
         "Connections closed with 1013 because their queued output passed limits.max_queued_bytes.");
    fprintf(f, "wshub_slow_consumer_closes_total %llu\n", (unsigned long long)SUM(slow_consumer_closes));
    head(f, "wshub_close_timeouts_total", "counter",
         "Close handshakes the peer did not complete within websocket.close_timeout_ms.");
    fprintf(f, "wshub_close_timeouts_total %llu\n", (unsigned long long)SUM(close_timeouts));
    head(f, "wshub_accept_pauses_total", "counter",
         "Times a worker stopped accepting: near the descriptor limit, or out of descriptors or memory.");
    fprintf(f, "wshub_accept_pauses_total %llu\n", (unsigned long long)SUM(accept_pauses));
    head(f, "wshub_accept_paused_workers", "gauge", "Workers not accepting now (they resume as connections close).");
    fprintf(f, "wshub_accept_paused_workers %llu\n", (unsigned long long)SUM(accept_paused));
    head(f, "wshub_evictions_total", "counter",
         "Connections that had not completed a request, reset at the descriptor budget to make room.");
    fprintf(f, "wshub_evictions_total %llu\n", (unsigned long long)SUM(evictions));
    head(f, "wshub_accept_errors_total", "counter", "accept() failures: EMFILE, ENFILE, ENOBUFS, ENOMEM.");
    fprintf(f, "wshub_accept_errors_total %llu\n", (unsigned long long)SUM(accept_errors));
    head(f, "wshub_ping_timeouts_total", "counter",
         "WebSocket connections closed because nothing came back within websocket.ping_timeout_ms of a ping.");
    fprintf(f, "wshub_ping_timeouts_total %llu\n", (unsigned long long)SUM(ping_timeouts));
    head(f, "wshub_rate_limited_closes_total", "counter",
         "WebSocket connections closed (1008) for sending faster than limits.message_rate.");
    fprintf(f, "wshub_rate_limited_closes_total %llu\n", (unsigned long long)SUM(rate_limited));
    head(f, "wshub_iplimit_addresses", "gauge",
         "Client addresses the per-IP limits keep counts for (at most 65,536; loopback exempt by default).");
    fprintf(f, "wshub_iplimit_addresses %zu\n", iplimit_entries());
    head(f, "wshub_http_body_bytes", "gauge", "Request-body bytes held now (bounded by http.max_body_total_bytes).");
    fprintf(f, "wshub_http_body_bytes %zu\n", atomic_load_explicit(&metrics_http_body_bytes, memory_order_relaxed));
    head(f, "wshub_ws_inbound_bytes", "gauge",
         "Bytes of unfinished inbound WebSocket messages held now (bounded by limits.max_inbound_total_bytes).");
    fprintf(f, "wshub_ws_inbound_bytes %zu\n", atomic_load_explicit(&metrics_ws_inbound_bytes, memory_order_relaxed));
    head(f, "wshub_queued_reply_bytes", "gauge",
         "Reply bytes queued for clients now, fan-out frames excepted (bounded by limits.max_queued_total_bytes).");
    fprintf(f, "wshub_queued_reply_bytes %llu\n", (unsigned long long)SUM(private_queued));
    head(f, "wshub_state_pool_bytes", "gauge",
         "Per-connection state in the workers' pools: pages held from the kernel, objects in use (50 ms old).");
    fprintf(f, "wshub_state_pool_bytes{kind=\"pages\"} %llu\n", (unsigned long long)SUM(pool_page_bytes));
    fprintf(f, "wshub_state_pool_bytes{kind=\"objects\"} %llu\n", (unsigned long long)SUM(pool_object_bytes));
    head(f, "wshub_flow_tickets", "gauge", "Unused Flow endpoints (/ws/<token>) held; flow.max_tickets bounds them.");
    fprintf(f, "wshub_flow_tickets %llu\n", (unsigned long long)atomic_load(&metrics_gauges.flow_tickets));
    head(f, "wshub_flow_ticket_refusals_total", "counter", "GET /socket.info answered 503 because flow.max_tickets was reached.");
    fprintf(f, "wshub_flow_ticket_refusals_total %llu\n", (unsigned long long)SUM(flow_ticket_refusals));
    head(f, "wshub_flow_tickets_expired_total", "counter", "Unused Flow endpoints freed when they expired.");
    fprintf(f, "wshub_flow_tickets_expired_total %llu\n", (unsigned long long)SUM(flow_tickets_expired));
    head(f, "wshub_flow_threads", "gauge", "Flow threads known (with a history or a socket).");
    fprintf(f, "wshub_flow_threads %llu\n", (unsigned long long)atomic_load(&metrics_gauges.flow_threads));
    head(f, "wshub_flow_history_bytes", "gauge", "Bytes of Flow thread history held; flow.max_history_total_bytes bounds them.");
    fprintf(f, "wshub_flow_history_bytes %llu\n", (unsigned long long)atomic_load(&metrics_gauges.flow_history_bytes));
    head(f, "wshub_flow_history_dropped_total", "counter",
         "Flow history entries dropped, by reason: thread_bytes (flow.max_history_bytes), total_bytes "
         "(flow.max_history_total_bytes), expired (flow.thread_ttl_s), threads (too many threads).");
    static const char *const drops[FLOW_DROP_COUNT] = {"thread_bytes", "total_bytes", "expired", "threads"};
    for (int d = 0; d < FLOW_DROP_COUNT; d++)
        fprintf(f, "wshub_flow_history_dropped_total{reason=\"%s\"} %llu\n", drops[d],
                (unsigned long long)SUM(flow_history_dropped[d]));
    head(f, "wshub_log_lines_suppressed_total", "counter",
         "Log lines left out by the rate limit (log.rate_limit_per_s lines per reason per second).");
    fprintf(f, "wshub_log_lines_suppressed_total %llu\n", (unsigned long long)log_suppressed_total());
    head(f, "wshub_workers", "gauge", "Worker threads.");
    fprintf(f, "wshub_workers %zu\n", nblocks);

    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
