/*
 * config — builds a config_t from the defaults, one JSON file and the WSHUB_* variables.
 *
 * Owns: the key table (JSON path, environment variable, type, field, default, summary),
 * range checks and shapes for every type, and the one-line error that names the key; the
 * syntax of one value (numbers, lists, host:port, the Redis URL) is config_value.c.
 * Never: prints, exits, reads the process environment itself (the caller passes envp),
 * or keeps global state; everything it allocates hangs off the config_t it fills.
 *
 * See ../../shared/DESIGN.md "Configuration" and config/wshub.example.json.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "config_value.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* T_ENUM fields are written through an int pointer. */
_Static_assert(sizeof(log_level_t) == sizeof(int), "log_level_t must be int-sized");
_Static_assert(sizeof(log_format_t) == sizeof(int), "log_format_t must be int-sized");
_Static_assert(sizeof(service_policy_t) == sizeof(int), "service_policy_t must be int-sized");
_Static_assert(sizeof(cable_origin_failure_t) == sizeof(int), "cable_origin_failure_t must be int-sized");
_Static_assert(sizeof(cable_envelope_t) == sizeof(int), "cable_envelope_t must be int-sized");
_Static_assert(sizeof(moderation_auth_failure_t) == sizeof(int), "moderation_auth_failure_t must be int-sized");
_Static_assert(sizeof(broker_type_t) == sizeof(int), "broker_type_t must be int-sized");

typedef struct keydef {
    const char *path;         /* dotted JSON path */
    const char *env;          /* environment variable */
    key_type_t type;
    size_t offset;            /* field in config_t */
    long long min, max;       /* T_INT: inclusive range; T_SIZE, T_MS: max 0 = the type's;
                                 T_STRING with K_TOKEN: length in bytes */
    const char *const *names; /* T_ENUM: accepted words, index = value, NULL-terminated;
                                 T_LIST: accepted items, or NULL for any non-empty string */
    const char *def;          /* default in environment syntax; NULL = unset */
    unsigned flags;           /* K_* */
    const char *summary;      /* one sentence, for config_keys() */
} keydef_t;

static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const format_names[] = {"human", "json", NULL};
static const char *const policy_names[] = {"allow", "deny", NULL};
static const char *const origin_failure_names[] = {"close", "http403", NULL};
static const char *const mod_failure_names[] = {"abort", "http401", NULL};
static const char *const envelope_names[] = {"nested", "flat", NULL};
static const char *const broker_names[] = {"memory", "redis", NULL};
/* JWS algorithms libjwt 1.10 verifies; "none" is deliberately absent. */
static const char *const alg_names[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                        "RS512", "ES256", "ES384", "ES512", NULL};
/* Even index = true. */
static const char *const bool_words[] = {"true", "false", "1", "0", "yes", "no", "on", "off", NULL};

/*
 * The one table of keys, in file order. Environment names follow "WSHUB_" + the path in
 * upper case with '.' -> '_', except WSHUB_JWT_SECRET and WSHUB_API_KEY (fixed by DESIGN.md)
 * and WSHUB_BROKER and WSHUB_REDIS_URL (fixed by issue 13).
 * X(path, env, type, field, min, max, names, default, flags, summary)
 */
#define KEY_TABLE(X)                                                                          \
    X("listen", "WSHUB_LISTEN", T_LISTEN, listen_host, 0, 0, NULL, "127.0.0.1:8080", 0,       \
      "Address to listen on as host:port; IPv6 in brackets, e.g. [::1]:8080.")                \
    X("public_url", "WSHUB_PUBLIC_URL", T_STRING, public_url, 0, 0, NULL, NULL, 0,            \
      "Base URL clients reach, used to build Flow endpoints; null = http://<listen> "         \
      "(https:// with TLS).")                                                                 \
    X("workers", "WSHUB_WORKERS", T_INT, workers, 0, 256, NULL, "0", 0,                       \
      "Worker threads, each with its own event loop; 0 = one per CPU core.")                  \
    X("log.level", "WSHUB_LOG_LEVEL", T_ENUM, log_level, 0, 0, level_names, "info", 0,        \
      "Least severe level logged: error, warn, info or debug.")                               \
    X("log.format", "WSHUB_LOG_FORMAT", T_ENUM, log_format, 0, 0, format_names, "human", 0,   \
      "Log line format: human, or json (one object per line).")                               \
    X("log.rate_limit_per_s", "WSHUB_LOG_RATE_LIMIT_PER_S", T_INT, log_rate_limit_per_s, 0,   \
      1000000, NULL, "20", 0,                                                                 \
      "Lines per reason (event and level) per second at error, warn and info (debug is not "  \
      "limited); the rest are counted and reported once a second; 0 = no limit.")             \
    X("tls.cert", "WSHUB_TLS_CERT", T_STRING, tls_cert, 0, 0, NULL, NULL, 0,                  \
      "PEM certificate chain file; null = plain TCP. Requires tls.key.")                      \
    X("tls.key", "WSHUB_TLS_KEY", T_STRING, tls_key, 0, 0, NULL, NULL, 0,                     \
      "PEM private key file for tls.cert. Requires tls.cert.")                                \
    X("limits.max_message_bytes", "WSHUB_LIMITS_MAX_MESSAGE_BYTES", T_SIZE,                  \
      max_message_bytes, 125, 0, NULL, "1048576", 0,                                          \
      "Largest inbound WebSocket message; a larger one closes the connection with 1009.")     \
    X("limits.max_queued_bytes", "WSHUB_LIMITS_MAX_QUEUED_BYTES", T_SIZE, max_queued_bytes,   \
      65536, 0, NULL, "4194304", 0,                                                           \
      "Output bytes queued for one connection before it is closed as a slow consumer "        \
      "(1013).")                                                                              \
    X("limits.max_connections", "WSHUB_LIMITS_MAX_CONNECTIONS", T_SIZE, max_connections, 0,   \
      0, NULL, "0", 0, "Open connections per process; 0 = the descriptor limit less a "       \
      "reserve. Past it requests get 503 (/healthz and /metrics are still answered); accept "  \
      "pauses only near the descriptor limit.")                                               \
    X("limits.max_connections_per_ip", "WSHUB_LIMITS_MAX_CONNECTIONS_PER_IP", T_SIZE,         \
      max_connections_per_ip, 0, 0, NULL, "256", 0,                                           \
      "Open connections from one IP address; more are reset at accept; 0 = unlimited.")       \
    X("limits.accept_rate_per_ip", "WSHUB_LIMITS_ACCEPT_RATE_PER_IP", T_INT,                  \
      accept_rate_per_ip, 0, 1000000, NULL, "100", 0,                                         \
      "New connections per second from one IP address (bursts of twice as many); more are "   \
      "reset at accept; 0 = unlimited.")                                                      \
    X("limits.exempt_loopback", "WSHUB_LIMITS_EXEMPT_LOOPBACK", T_BOOL,                       \
      limits_exempt_loopback, 0, 0, NULL, "true", 0,                                          \
      "The per-IP limits do not apply to loopback peers (local tests, a proxy on the same "   \
      "host).")                                                                               \
    X("limits.message_rate", "WSHUB_LIMITS_MESSAGE_RATE", T_INT, message_rate, 0, 10000000,   \
      NULL, "1000", 0,                                                                        \
      "WebSocket frames per second one connection may send (averaged over "                  \
      "limits.message_burst); more get the API's error, then close 1008; 0 = unlimited.")     \
    X("limits.message_burst", "WSHUB_LIMITS_MESSAGE_BURST", T_INT, message_burst, 1,          \
      100000000, NULL, "2000", 0, "Frames a connection may send at once above "               \
      "limits.message_rate.")                                                                 \
    X("limits.max_inbound_total_bytes", "WSHUB_LIMITS_MAX_INBOUND_TOTAL_BYTES", T_SIZE,       \
      max_inbound_total_bytes, 65536, 0, NULL, "268435456", 0,                                \
      "Bytes of unfinished inbound WebSocket messages the process holds; the connection "     \
      "that would pass it is closed with 1013.")                                              \
    X("limits.max_mailbox_bytes", "WSHUB_LIMITS_MAX_MAILBOX_BYTES", T_SIZE, max_mailbox_bytes,   \
      65536, 0, NULL, "67108864", 0,                                                          \
      "Messages other threads (workers, the broker) posted to one worker and not delivered "   \
      "yet, in bytes: past it that worker's share of a message is dropped and counted "       \
      "(wshub_hub_mailbox_dropped_total), so that a worker that cannot keep up does not grow.") \
    X("limits.max_queued_total_bytes", "WSHUB_LIMITS_MAX_QUEUED_TOTAL_BYTES", T_SIZE,         \
      max_queued_total_bytes, 65536, 0, NULL, "1073741824", 0,                                \
      "Output bytes of replies queued in the process (a fan-out frame shared by its "         \
      "subscribers is not counted); the connection that would pass it is a slow consumer.")   \
    X("limits.tcp_keepalive_s", "WSHUB_LIMITS_TCP_KEEPALIVE_S", T_INT, tcp_keepalive_s, 0,    \
      7200, NULL, "60", 0, "TCP keepalive idle time in seconds, so that dead peers are "      \
      "found; 0 = off.")                                                                      \
    X("http.max_header_bytes", "WSHUB_HTTP_MAX_HEADER_BYTES", T_SIZE, http_max_header_bytes,  \
      256, 0, NULL, "16384", 0, "Largest HTTP request line plus headers (431 past it).")      \
    X("http.max_body_total_bytes", "WSHUB_HTTP_MAX_BODY_TOTAL_BYTES", T_SIZE,                 \
      http_max_body_total_bytes, 0, 0, NULL, "67108864", 0,                                   \
      "Request-body bytes held by the whole process at once; a request that would pass it "   \
      "gets 503.")                                                                            \
    X("http.handshake_timeout_ms", "WSHUB_HTTP_HANDSHAKE_TIMEOUT_MS", T_MS,                   \
      http_handshake_timeout_ms, 10, 0, NULL, "10000", 0,                                     \
      "Time from accept to a complete first request (TLS handshake included), in "            \
      "milliseconds.")                                                                        \
    X("http.max_headers", "WSHUB_HTTP_MAX_HEADERS", T_INT, http_max_headers, 1, 1000, NULL,   \
      "64", 0, "Most header fields in one HTTP request.")                                     \
    X("http.max_body_bytes", "WSHUB_HTTP_MAX_BODY_BYTES", T_SIZE, http_max_body_bytes, 0, 0,  \
      NULL, "1048576", 0, "Largest HTTP request body, e.g. of POST /api/publish.")            \
    X("http.request_timeout_ms", "WSHUB_HTTP_REQUEST_TIMEOUT_MS", T_MS,                       \
      http_request_timeout_ms, 10, 0, NULL, "10000", 0,                                       \
      "Time allowed to receive one whole HTTP request, in milliseconds.")                     \
    X("http.keepalive_timeout_ms", "WSHUB_HTTP_KEEPALIVE_TIMEOUT_MS", T_MS,                   \
      http_keepalive_timeout_ms, 10, 0, NULL, "30000", 0,                                     \
      "Idle time allowed between keep-alive HTTP requests, in milliseconds.")                 \
    X("websocket.close_timeout_ms", "WSHUB_WEBSOCKET_CLOSE_TIMEOUT_MS", T_MS,                 \
      ws_close_timeout_ms, 10, 0, NULL, "5000", 0,                                            \
      "Time allowed for the WebSocket close handshake before the TCP connection is "          \
      "dropped, in milliseconds.")                                                            \
    X("websocket.ping_interval_ms", "WSHUB_WEBSOCKET_PING_INTERVAL_MS", T_MS,                 \
      ws_ping_interval_ms, 0, 0, NULL, "30000", 0,                                            \
      "A WebSocket connection silent this long gets a ping (not on Flow sockets, which have " \
      "their own idle rule); 0 = off.")                                                       \
    X("websocket.compression", "WSHUB_WEBSOCKET_COMPRESSION", T_BOOL, ws_compression, 0, 0,    \
      NULL, "false", 0, "Negotiate permessage-deflate (RFC 7692) with clients that offer it; "  \
      "off: no Sec-WebSocket-Extensions is ever answered.")                                   \
    X("websocket.ping_timeout_ms", "WSHUB_WEBSOCKET_PING_TIMEOUT_MS", T_MS,                   \
      ws_ping_timeout_ms, 10, 0, NULL, "10000", 0,                                            \
      "Time to answer that ping with any frame before the connection is closed (1001, "       \
      "ping timeout).")                                                                       \
    X("shutdown.timeout_ms", "WSHUB_SHUTDOWN_TIMEOUT_MS", T_MS, shutdown_timeout_ms, 0, 0,    \
      NULL, "5000", 0,                                                                        \
      "Time to drain queued output on SIGTERM/SIGINT before exiting, in milliseconds.")       \
    X("mock.enabled", "WSHUB_MOCK_ENABLED", T_BOOL, mock_enabled, 0, 0, NULL, "false", 0,      \
      "The mock backend's control endpoints (/api/connections, /api/tap, /api/circle, "       \
      "/api/tokens, /api/reset, faults, scenarios), all behind api.key. On when wshubd runs "   \
      "on the embedded default (no configuration file) and the variable is not set.")          \
    X("mock.max_scenarios", "WSHUB_MOCK_MAX_SCENARIOS", T_INT, mock_max_scenarios, 1, 256,     \
      NULL, "16", 0, "Scenarios that may run at once (wshub_mock_scenarios).")                \
    X("mock.scenario_dir", "WSHUB_MOCK_SCENARIO_DIR", T_STRING, mock_scenario_dir, 0, 0, NULL, \
      "config/scenarios", 0, "Where POST /api/scenarios {\"file\": NAME} finds NAME.")        \
    X("mock.circle_max_members", "WSHUB_MOCK_CIRCLE_MAX_MEMBERS", T_INT, mock_circle_max_members, \
      1, 10000000, NULL, "10000", 0, "Circle members the mock's domain model holds "          \
      "(/api/circle); past it a new member is refused (409).")                                \
    X("mock.circle_max_rooms", "WSHUB_MOCK_CIRCLE_MAX_ROOMS", T_INT, mock_circle_max_rooms, 1, \
      10000000, NULL, "1000", 0, "Chat rooms the mock's Circle model holds; past it a new "    \
      "room is refused (409).")                                                               \
    X("mock.circle_max_participants", "WSHUB_MOCK_CIRCLE_MAX_PARTICIPANTS", T_INT,            \
      mock_circle_max_participants, 2, 100000, NULL, "100", 0,                                \
      "Participants of one chat room of the mock's Circle model.")                            \
    X("mock.circle_max_messages", "WSHUB_MOCK_CIRCLE_MAX_MESSAGES", T_INT,                    \
      mock_circle_max_messages, 1, 10000000, NULL, "1000", 0,                                 \
      "Messages one chat room of the mock's Circle model keeps; past it the room's oldest "   \
      "are dropped (wshub_mock_circle_messages_dropped_total).")                              \
    X("mock.circle_max_bytes", "WSHUB_MOCK_CIRCLE_MAX_BYTES", T_SIZE, mock_circle_max_bytes,  \
      65536, 0, NULL, "67108864", 0,                                                          \
      "Bytes of messages the mock's Circle model holds in all; past it the oldest messages "  \
      "are dropped (wshub_mock_circle_messages_dropped_total).")                              \
    X("mock.max_faults", "WSHUB_MOCK_MAX_FAULTS", T_INT, mock_max_faults, 1, 100000, NULL,    \
      "256", 0, "Faults and overrides the mock backend holds at once (POST /api/faults/...); "  \
      "more are refused with 409.")                                                           \
    X("mock.max_delayed_bytes", "WSHUB_MOCK_MAX_DELAYED_BYTES", T_SIZE, mock_max_delayed_bytes, \
      1024, 0, NULL, "67108864", 0,                                                           \
      "Bytes of WebSocket messages latency faults hold in the process; the connection that "  \
      "would pass it is closed with 1013.")                                                   \
    X("mock.max_delayed_bytes_per_connection", "WSHUB_MOCK_MAX_DELAYED_BYTES_PER_CONNECTION",  \
      T_SIZE, mock_max_delayed_conn_bytes, 1024, 0, NULL, "4194304", 0,                       \
      "Bytes of WebSocket messages latency faults hold for one connection; past it the "      \
      "connection is closed with 1013.")                                                      \
    X("mock.tap_max_clients", "WSHUB_MOCK_TAP_MAX_CLIENTS", T_INT, tap_max_clients, 0, 1000,  \
      NULL, "16", 0, "Traffic tap clients (/api/tap, WebSocket or Server-Sent Events) at once in " \
      "the process; more are refused with 503.")                                              \
    X("mock.tap_queue_bytes", "WSHUB_MOCK_TAP_QUEUE_BYTES", T_SIZE, tap_queue_bytes, 4096, 0, \
      NULL, "1048576", 0, "Events held for one tap client and not sent yet (bytes); past it "  \
      "events are dropped, counted (wshub_mock_tap_dropped_total) and told to the client as "  \
      "{\"kind\":\"dropped\",\"n\":N}.")                                                        \
    X("echo.enabled", "WSHUB_ECHO_ENABLED", T_BOOL, echo_enabled, 0, 0, NULL, "true", 0,      \
      "Serve the /echo endpoint, which sends every message back unchanged.")                  \
    X("auth.jwt_secret", "WSHUB_JWT_SECRET", T_STRING, jwt_secret, 0, 0, NULL, NULL,          \
      K_SECRET,                                                                               \
      "HS256 secret for API B and C tokens; null = a development secret printed at start. "   \
      "Reloaded on SIGHUP.")                                                                  \
    X("auth.public_key", "WSHUB_AUTH_PUBLIC_KEY", T_STRING, auth_public_key, 0, 0, NULL,      \
      NULL, 0,                                                                                \
      "PEM file with the RSA or EC public key that verifies tokens instead of "              \
      "auth.jwt_secret; then HMAC tokens are refused. Reloaded on SIGHUP.")                   \
    X("auth.algorithms", "WSHUB_AUTH_ALGORITHMS", T_LIST, auth_algorithms, 0, 0, alg_names,   \
      "", 0,                                                                                  \
      "Accepted token algorithms; empty = HS256, or RS256 and ES256 with auth.public_key. "   \
      "Never none.")                                                                          \
    X("auth.issuer", "WSHUB_AUTH_ISSUER", T_STRING, auth_issuer, 0, 0, NULL, NULL, 0,         \
      "Required value of the iss claim; null = not checked.")                                 \
    X("auth.audience", "WSHUB_AUTH_AUDIENCE", T_STRING, auth_audience, 0, 0, NULL, NULL, 0,   \
      "Value the aud claim (a string or an array) must contain; null = not checked.")         \
    X("auth.leeway_s", "WSHUB_AUTH_LEEWAY_S", T_INT, auth_leeway_s, 0, 3600, NULL, "5", 0,    \
      "Clock skew allowed when checking exp and nbf, in seconds.")                            \
    X("auth.require_exp", "WSHUB_AUTH_REQUIRE_EXP", T_BOOL, auth_require_exp, 0, 0, NULL,     \
      "true", 0, "Refuse tokens without an exp claim.")                                       \
    X("api.key", "WSHUB_API_KEY", T_STRING, api_key, 0, 0, NULL, NULL, K_SECRET,              \
      "Bearer key of the server API (POST /api/publish). Reloaded on SIGHUP.")                \
    X("moderation.keys", "WSHUB_MODERATION_KEYS", T_LIST, moderation_keys, 0, 0, NULL, "",    \
      K_SECRET, "API keys accepted by /text/moderation. Reloaded on SIGHUP.")                 \
    X("moderation.auth_failure", "WSHUB_MODERATION_AUTH_FAILURE", T_ENUM,                     \
      moderation_auth_failure, 0, 0, mod_failure_names, "abort", 0,                           \
      "A missing or unknown key on /text/moderation: abort = upgrade, then a TCP reset "      \
      "(the documented form: the client sees 1006); http401 = refuse the upgrade with 401.")  \
    X("moderation.query_key", "WSHUB_MODERATION_QUERY_KEY", T_BOOL, moderation_query_key, 0,  \
      0, NULL, "false", 0, "Also accept the API key as ?api_key= (off: header only).")        \
    X("moderation.max_sample_chars", "WSHUB_MODERATION_MAX_SAMPLE_CHARS", T_INT,              \
      moderation_max_sample_chars, 1, 1000000, NULL, "10000", 0,                              \
      "Longest sample in Unicode code points; a longer one is an error answer.")              \
    X("moderation.max_in_flight", "WSHUB_MODERATION_MAX_IN_FLIGHT", T_INT,                    \
      moderation_max_in_flight, 1, 100000, NULL, "64", 0,                                     \
      "Requests one connection may have waiting for their answers; more are error answers.")  \
    X("moderation.delay_ms", "WSHUB_MODERATION_DELAY_MS", T_MS, moderation_delay_ms, 0, 0,    \
      NULL, "0", 0,                                                                           \
      "Random extra delay per answer, 0 to this many milliseconds, so that client "          \
      "developers see answers out of order; 0 = off.")                                        \
    X("moderation.lists", "WSHUB_MODERATION_LISTS", T_LIST, moderation_lists, 0, 0, NULL, "", \
      0, "Extra word-list files (JSON, see config/moderation/README.md) loaded after the "    \
      "embedded English list.")                                                               \
    X("moderation.no_default_list", "WSHUB_MODERATION_NO_DEFAULT_LIST", T_BOOL,               \
      moderation_no_default_list, 0, 0, NULL, "false", 0,                                     \
      "Do not load the embedded English list (only moderation.lists).")                       \
    X("service.max_subscriptions", "WSHUB_SERVICE_MAX_SUBSCRIPTIONS", T_INT,                  \
      service_max_subscriptions, 1, 100000, NULL, "100", 0,                                   \
      "Channels one /api/ws connection may subscribe to; one more is subscription_failed.")   \
    X("service.default_policy", "WSHUB_SERVICE_DEFAULT_POLICY", T_ENUM,                       \
      service_default_policy, 0, 0, policy_names, "allow", 0,                                 \
      "Channels a token without a channels claim may subscribe to: allow = any but another "  \
      "user's user:<id>, deny = only its own user:<sub>.")                                    \
    X("cable.allowed_origins", "WSHUB_CABLE_ALLOWED_ORIGINS", T_LIST, cable_allowed_origins,  \
      0, 0, NULL, "", 0, "Origin allow-list for /cable; empty = any. Reloaded on SIGHUP.")    \
    X("cable.origin_failure", "WSHUB_CABLE_ORIGIN_FAILURE", T_ENUM, cable_origin_failure, 0,  \
      0, origin_failure_names, "close", 0,                                                    \
      "A refused Origin on /cable: close = upgrade, disconnect unauthorized, close 1000 "     \
      "(the documented form); http403 = refuse the upgrade with 403.")                        \
    X("cable.event_envelope", "WSHUB_CABLE_EVENT_ENVELOPE", T_ENUM, cable_event_envelope, 0,  \
      0, envelope_names, "nested", 0,                                                         \
      "Message object of /cable data frames: nested = {event, data}, flat = the data's "      \
      "members beside event.")                                                                \
    X("cable.max_subscriptions", "WSHUB_CABLE_MAX_SUBSCRIPTIONS", T_INT,                      \
      cable_max_subscriptions, 1, 100000, NULL, "256", 0,                                     \
      "Subscriptions one /cable connection may hold; one more is reject_subscription.")       \
    X("cable.ping_interval_ms", "WSHUB_CABLE_PING_INTERVAL_MS", T_MS, cable_ping_interval_ms, \
      100, 0, NULL, "3000", 0, "Interval of the Action Cable ping frames, in milliseconds.")  \
    X("flow.client_ids", "WSHUB_FLOW_CLIENT_IDS", T_LIST, flow_client_ids, 0, 0, NULL, "", 0, \
      "Flow client ids accepted by /socket.info; empty = any. Reloaded on SIGHUP.")           \
    X("flow.allowed_origins", "WSHUB_FLOW_ALLOWED_ORIGINS", T_LIST, flow_allowed_origins, 0,  \
      0, NULL, "", 0, "Origin allow-list for /socket.info and /ws/<token>; empty = any.")     \
    X("flow.token_ttl_ms", "WSHUB_FLOW_TOKEN_TTL_MS", T_MS, flow_token_ttl_ms, 1000, 0, NULL,  \
      "60000", 0, "How long a /ws/<token> endpoint from /socket.info stays usable (once).")   \
    X("flow.idle_timeout_ms", "WSHUB_FLOW_IDLE_TIMEOUT_MS", T_MS, flow_idle_timeout_ms, 100,  \
      0, NULL, "50000", 0, "A Flow socket with no client frame for this long is closed "      \
      "(1000, idle timeout).")                                                                \
    X("flow.reply_delay_ms", "WSHUB_FLOW_REPLY_DELAY_MS", T_MS, flow_reply_delay_ms, 0, 0,    \
      NULL, "0", 0, "Delay before the bot's reply; agent.typing is sent first when it is "    \
      "not 0.")                                                                               \
    X("flow.bot_file", "WSHUB_FLOW_BOT_FILE", T_STRING, flow_bot_file, 0, 0, NULL, NULL, 0,   \
      "JSON file of bot rules (see config/flow-bot.example.json); null = echo bot.")          \
    X("flow.history_limit", "WSHUB_FLOW_HISTORY_LIMIT", T_INT, flow_history_limit, 0, 100000, \
      NULL, "100", 0, "Messages kept per thread for GET /thread.history.")                  \
    X("flow.max_pending_replies", "WSHUB_FLOW_MAX_PENDING_REPLIES", T_INT,                    \
      flow_max_pending_replies, 0, 100000000, NULL, "10000", 0,                               \
      "Bot replies held for flow.reply_delay_ms per worker at once; past it a reply goes out "  \
      "at once (never dropped), so a flood of message.send cannot grow the node.")             \
    X("flow.max_tickets", "WSHUB_FLOW_MAX_TICKETS", T_INT, flow_max_tickets, 1, 100000000,    \
      NULL, "100000", 0, "Unused /ws/<token> endpoints held at once; past it /socket.info "   \
      "answers 503.")                                                                         \
    X("flow.max_history_bytes", "WSHUB_FLOW_MAX_HISTORY_BYTES", T_SIZE,                       \
      flow_max_history_bytes, 1024, 0, NULL, "1048576", 0,                                    \
      "History bytes kept per thread; the oldest messages are dropped first.")                \
    X("flow.max_history_total_bytes", "WSHUB_FLOW_MAX_HISTORY_TOTAL_BYTES", T_SIZE,           \
      flow_max_history_total_bytes, 1024, 0, NULL, "67108864", 0,                             \
      "History bytes kept for all threads; the least recently active threads lose their "     \
      "oldest messages first.")                                                               \
    X("flow.thread_ttl_s", "WSHUB_FLOW_THREAD_TTL_S", T_INT, flow_thread_ttl_s, 1, 31536000,  \
      NULL, "3600", 0, "A thread with no socket and no message for this many seconds is "     \
      "forgotten, its history with it.")                                                      \
    X("history.size", "WSHUB_HISTORY_SIZE", T_INT, history_size, 0, 100000, NULL, "0", 0,      \
      "Messages kept per channel for recovery after a reconnect (API B since, Action Cable's "  \
      "extended protocol); 0 = no history and no stream positions. 100 on the embedded "        \
      "default (no configuration file) when the variable is not set.")                         \
    X("history.ttl_s", "WSHUB_HISTORY_TTL_S", T_INT, history_ttl_s, 1, 86400, NULL, "300", 0,   \
      "A message leaves its channel's history after this many seconds; Action Cable sessions " \
      "are kept as long for their recovery.")                                                   \
    X("history.max_bytes", "WSHUB_HISTORY_MAX_BYTES", T_SIZE, history_max_bytes, 1024, 0, NULL, \
      "67108864", 0, "History bytes kept for all channels in this process (without a broker); " \
      "past it a channel's oldest messages go first.")                                          \
    X("history.max_session_bytes", "WSHUB_HISTORY_MAX_SESSION_BYTES", T_SIZE,                  \
      history_max_session_bytes, 4096, 0, NULL, "16777216", 0, "Cable sessions kept for their "  \
      "restore in this process (without a broker), in bytes; past it the oldest go first.")    \
    X("broker.type", "WSHUB_BROKER", T_ENUM, broker_type, 0, 0, broker_names, "memory", 0,    \
      "Where channels live: memory = this process only (one node); redis = shared by every "  \
      "node through Redis pub/sub (broker.redis_url). Restart to change.")                    \
    X("broker.redis_url", "WSHUB_REDIS_URL", T_STRING, broker_redis_url, 0, 0, NULL,          \
      "redis://127.0.0.1:6379/0", K_SECRET | K_REDIS_URL,                                     \
      "Redis of broker.type redis, as redis://[user:password@]host:port[/db] (db 0-15; "      \
      "percent-escapes in user and password); never logged with its password.")             \
    X("broker.prefix", "WSHUB_BROKER_PREFIX", T_STRING, broker_prefix, 1, 64, NULL, "wshub:", \
      K_TOKEN, "Start of every Redis channel name (1-64 bytes, no space or control "          \
      "character), so that two deployments can share one Redis.")                             \
    X("broker.reconnect_max_ms", "WSHUB_BROKER_RECONNECT_MAX_MS", T_MS,                       \
      broker_reconnect_max_ms, 100, 60000, NULL, "5000", 0,                                   \
      "Longest wait between two attempts to reach Redis again (the backoff doubles up to it), " \
      "in milliseconds.")                                                                      \
    X("broker.max_pending_bytes", "WSHUB_BROKER_MAX_PENDING_BYTES", T_SIZE,                   \
      broker_max_pending_bytes, 65536, 0, NULL, "67108864", 0,                                 \
      "Publishes handed to Redis and not answered yet, in bytes: past it publishes are "       \
      "refused as while Redis is down (a slow or stuck Redis must not grow the node); the "      \
      "same bound, counted apart, holds Flow's store commands.")

#define AS_KEY(path, env, type, field, min, max, names, def, flags, summary) \
    {path, env, type, offsetof(config_t, field), min, max, names, def, flags, summary},
#define AS_DOC(path, env, type, field, min, max, names, def, flags, summary) {path, env, summary},

static const keydef_t keys[] = {KEY_TABLE(AS_KEY)};
static const config_key_doc_t docs[] = {KEY_TABLE(AS_DOC)};
#define NKEYS (sizeof keys / sizeof keys[0])

/* A parsed value before it is stored; owned until store() takes it. */
typedef union value {
    long long i;           /* T_INT, T_BOOL, T_ENUM */
    unsigned long long u;  /* T_SIZE, T_MS */
    char *s;               /* T_STRING */
    config_strlist_t list; /* T_LIST */
    struct {
        char *host;
        int port;
    } listen; /* T_LISTEN */
} value_t;

typedef struct load {
    config_t *cfg;
    char *err;
    size_t errlen;
} load_t;

#define GOT_MAX 60 /* bytes of an offending value quoted in an error */

/* ---- errors ---------------------------------------------------------------------- */

/* Writes one line into the caller's buffer (control bytes become '?') and returns rc. */
__attribute__((format(printf, 3, 4))) static int fail(load_t *ld, int rc, const char *fmt, ...)
{
    va_list ap;

    if (!ld->err || ld->errlen == 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(ld->err, ld->errlen, fmt, ap);
    va_end(ap);
    for (char *p = ld->err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return rc;
}

static unsigned long long type_max(key_type_t type)
{
    return type == T_MS ? UINT32_MAX : SIZE_MAX;
}

/* The largest value of a T_SIZE or T_MS key. */
static unsigned long long upper(const keydef_t *k)
{
    return k->max > 0 ? (unsigned long long)k->max : type_max(k->type);
}

/* What a key accepts, as the words after "expected". */
static void describe(const keydef_t *k, bool from_env, char *buf, size_t len)
{
    size_t pos;

    switch (k->type) {
    case T_LISTEN:
        snprintf(buf, len, "host:port with a port from 1 to 65535 (IPv6 as [::1]:8080)");
        return;
    case T_STRING:
        if (k->flags & K_TOKEN)
            snprintf(buf, len, "a string of %lld to %lld bytes without spaces or control "
                     "characters", k->min, k->max);
        else if (k->flags & K_REDIS_URL)
            snprintf(buf, len, "redis://[user:password@]host:port[/db] or null");
        else
            snprintf(buf, len, "a string or null");
        return;
    case T_INT:
        snprintf(buf, len, "an integer from %lld to %lld", k->min, k->max);
        return;
    case T_SIZE:
        if (k->min > 0)
            snprintf(buf, len, "an integer byte count of at least %lld", k->min);
        else
            snprintf(buf, len, "a non-negative integer byte count");
        return;
    case T_MS:
        snprintf(buf, len, "an integer number of milliseconds from %lld to %llu", k->min,
                 upper(k));
        return;
    case T_BOOL:
        snprintf(buf, len, "%s",
                 from_env ? "a boolean (true, false, 1, 0, yes, no, on, off)" : "true or false");
        return;
    case T_ENUM:
        pos = (size_t)snprintf(buf, len, "one of");
        for (size_t i = 0; k->names[i] && pos < len; i++)
            pos += (size_t)snprintf(buf + pos, len - pos, "%s \"%s\"", i ? "," : "", k->names[i]);
        return;
    case T_LIST:
        if (!k->names) {
            snprintf(buf, len, "an array of non-empty strings");
            return;
        }
        pos = (size_t)snprintf(buf, len, "%s",
                               from_env ? "a comma-separated list of" : "an array of");
        for (size_t i = 0; k->names[i] && pos < len; i++)
            pos += (size_t)snprintf(buf + pos, len - pos, "%s \"%s\"", i ? "," : "", k->names[i]);
        return;
    }
    snprintf(buf, len, "a valid value");
}

/* A JSON value as it appears in an error: compact, ASCII, cut at GOT_MAX bytes. */
static void show_json(const json_t *j, bool secret, char *buf, size_t len)
{
    static const char *const kinds[] = {
        [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
        [JSON_INTEGER] = "an integer", [JSON_REAL] = "a number", [JSON_TRUE] = "true",
        [JSON_FALSE] = "false", [JSON_NULL] = "null",
    };
    char *dump = secret ? NULL : json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);

    if (!dump) {
        snprintf(buf, len, "%s", kinds[json_typeof(j)]);
        return;
    }
    if (strlen(dump) > GOT_MAX)
        snprintf(buf, len, "%.*s...", GOT_MAX, dump);
    else
        snprintf(buf, len, "%s", dump);
    free(dump);
}

/* An environment value as it appears in an error: quoted, cut at GOT_MAX bytes. */
static void show_text(const char *s, bool secret, char *buf, size_t len)
{
    size_t n = strlen(s);

    if (secret) {
        snprintf(buf, len, "a value that is not shown");
        return;
    }
    if (n <= GOT_MAX) {
        snprintf(buf, len, "\"%s\"", s);
        return;
    }
    n = GOT_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) /* do not split a UTF-8 character */
        n--;
    snprintf(buf, len, "\"%.*s\"...", (int)n, s);
}

/* why: what is wrong beyond the type, or NULL. */
static int bad_value(load_t *ld, const keydef_t *k, const char *env, const char *got,
                     const char *why)
{
    char want[160];
    const char *sep = why ? ": " : "";

    if (!why)
        why = "";
    describe(k, env != NULL, want, sizeof want);
    if (env)
        return fail(ld, -EINVAL, "%s (%s): expected %s, got %s%s%s", env, k->path, want, got,
                    sep, why);
    return fail(ld, -EINVAL, "%s: expected %s, got %s%s%s", k->path, want, got, sep, why);
}

/* ---- shaped strings (K_TOKEN, K_REDIS_URL) --------------------------------------- */

/* A Redis URL as an error shows it (config_masked_url); text without "://" not at all. */
static void show_url(const char *s, char *buf, size_t len)
{
    char *masked = config_masked_url(s);

    show_text(masked ? masked : s, !masked, buf, len);
    free(masked);
}

/* A parsed T_STRING against its key's shape; s NULL = unset. 0, or -EINVAL with the reason in
 * why (which may stay empty). */
static int check_shape(const keydef_t *k, const char *s, char *why, size_t len)
{
    why[0] = '\0';
    if (k->type != T_STRING)
        return 0;
    if (k->flags & K_TOKEN) {
        size_t n = s ? strlen(s) : 0;

        if (n < (size_t)k->min || n > (size_t)k->max) {
            if (n > 0)
                snprintf(why, len, "%zu bytes", n);
            return -EINVAL;
        }
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) {
                snprintf(why, len, "a space or control character at byte %zu", i);
                return -EINVAL;
            }
    }
    if ((k->flags & K_REDIS_URL) && s)
        return config_redis_url_parse(s, NULL, why, len);
    return 0;
}

/* Reports a value that check_shape refused; text NULL = JSON null. */
static int bad_shape(load_t *ld, const keydef_t *k, const char *env, const char *text,
                     const char *why)
{
    char got[GOT_MAX + 16];

    if (!text)
        snprintf(got, sizeof got, "null");
    else if (k->flags & K_REDIS_URL)
        show_url(text, got, sizeof got);
    else
        show_text(text, k->flags & K_SECRET, got, sizeof got);
    return bad_value(ld, k, env, got, *why ? why : NULL);
}

/* ---- scalars --------------------------------------------------------------------- */

/* T_LIST with names: every item must be one of them (any case); it is stored as spelled in
 * the table so that consumers compare exactly. Frees the list when an item is not. */
static int check_items(const keydef_t *k, config_strlist_t *l)
{
    if (!k->names)
        return 0;
    for (size_t i = 0; i < l->n; i++) {
        int w = config_word_index(k->names, l->items[i]);

        if (w < 0) {
            config_list_free(l);
            return -EINVAL;
        }
        memcpy(l->items[i], k->names[w], strlen(k->names[w])); /* same length, other case */
    }
    return 0;
}

static bool in_range(const keydef_t *k, const value_t *v)
{
    if (k->type == T_INT)
        return v->i >= k->min && v->i <= k->max;
    return v->u >= (unsigned long long)k->min && v->u <= upper(k);
}

/* ---- parse and store ------------------------------------------------------------- */

/* A value in environment syntax (also the table's defaults): 0, -EINVAL or -ENOMEM. */
static int parse_text(const keydef_t *k, const char *s, value_t *v)
{
    switch (k->type) {
    case T_LISTEN:
        return config_parse_listen(s, &v->listen.host, &v->listen.port);
    case T_STRING: /* empty = unset */
        v->s = *s ? strdup(s) : NULL;
        return *s && !v->s ? -ENOMEM : 0;
    case T_INT:
        return config_parse_ll(s, &v->i) == 0 && in_range(k, v) ? 0 : -EINVAL;
    case T_SIZE:
    case T_MS:
        return config_parse_ull(s, &v->u) == 0 && in_range(k, v) ? 0 : -EINVAL;
    case T_BOOL:
        v->i = config_word_index(bool_words, s);
        if (v->i < 0)
            return -EINVAL;
        v->i = v->i % 2 == 0;
        return 0;
    case T_ENUM:
        v->i = config_word_index(k->names, s);
        return v->i < 0 ? -EINVAL : 0;
    case T_LIST: {
        int rc = config_list_split(s, &v->list);

        return rc < 0 ? rc : check_items(k, &v->list);
    }
    }
    return -EINVAL;
}

/* A value from the JSON file: 0, -EINVAL or -ENOMEM. */
static int parse_json(const keydef_t *k, const json_t *j, value_t *v)
{
    switch (k->type) {
    case T_LISTEN:
    case T_ENUM:
        return json_is_string(j) ? parse_text(k, json_string_value(j), v) : -EINVAL;
    case T_STRING:
        if (json_is_null(j)) {
            v->s = NULL;
            return 0;
        }
        return json_is_string(j) ? parse_text(k, json_string_value(j), v) : -EINVAL;
    case T_INT:
        if (!json_is_integer(j))
            return -EINVAL;
        v->i = json_integer_value(j);
        return in_range(k, v) ? 0 : -EINVAL;
    case T_SIZE:
    case T_MS:
        if (!json_is_integer(j) || json_integer_value(j) < 0)
            return -EINVAL;
        v->u = (unsigned long long)json_integer_value(j);
        return in_range(k, v) ? 0 : -EINVAL;
    case T_BOOL:
        if (!json_is_boolean(j))
            return -EINVAL;
        v->i = json_is_true(j);
        return 0;
    case T_LIST: {
        int rc = config_list_json(j, &v->list);

        return rc < 0 ? rc : check_items(k, &v->list);
    }
    }
    return -EINVAL;
}

/* Moves v into its field, releasing what the field held. */
static void store(config_t *cfg, const keydef_t *k, value_t *v)
{
    void *field = (char *)cfg + k->offset;

    switch (k->type) {
    case T_LISTEN:
        free(cfg->listen_host);
        cfg->listen_host = v->listen.host;
        cfg->listen_port = v->listen.port;
        return;
    case T_STRING:
        free(*(char **)field);
        *(char **)field = v->s;
        return;
    case T_INT:
    case T_ENUM:
        *(int *)field = (int)v->i;
        return;
    case T_SIZE:
        *(size_t *)field = (size_t)v->u;
        return;
    case T_MS:
        *(uint32_t *)field = (uint32_t)v->u;
        return;
    case T_BOOL:
        *(bool *)field = v->i != 0;
        return;
    case T_LIST:
        config_list_free(field);
        *(config_strlist_t *)field = v->list;
        return;
    }
}

/* env: the variable the text came from, or NULL for a table default. */
static int set_text(load_t *ld, const keydef_t *k, const char *s, const char *env)
{
    value_t v;
    char got[GOT_MAX + 16], why[96];
    int rc = parse_text(k, s, &v);

    if (rc == -ENOMEM)
        return fail(ld, rc, "%s: out of memory", k->path);
    if (rc < 0) {
        show_text(s, k->flags & K_SECRET, got, sizeof got);
        return bad_value(ld, k, env, got, NULL);
    }
    if (check_shape(k, v.s, why, sizeof why) < 0) {
        free(v.s);
        return bad_shape(ld, k, env, s, why);
    }
    store(ld->cfg, k, &v);
    return 0;
}

static int set_json(load_t *ld, const keydef_t *k, const json_t *j)
{
    value_t v;
    char got[GOT_MAX + 16], why[96];
    int rc = parse_json(k, j, &v);

    if (rc == -ENOMEM)
        return fail(ld, rc, "%s: out of memory", k->path);
    if (rc < 0) {
        show_json(j, k->flags & K_SECRET, got, sizeof got);
        return bad_value(ld, k, NULL, got, NULL);
    }
    if (check_shape(k, v.s, why, sizeof why) < 0) {
        free(v.s);
        return bad_shape(ld, k, NULL, json_string_value(j), why);
    }
    store(ld->cfg, k, &v);
    return 0;
}

/* ---- the three layers ------------------------------------------------------------ */

static const keydef_t *find_key(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

/* A section is a path that some key continues with '.'. */
static bool is_section(const char *path)
{
    size_t len = strlen(path);

    for (size_t i = 0; i < NKEYS; i++)
        if (strncmp(keys[i].path, path, len) == 0 && keys[i].path[len] == '.')
            return true;
    return false;
}

static int load_defaults(load_t *ld)
{
    for (size_t i = 0; i < NKEYS; i++) {
        int rc = set_text(ld, &keys[i], keys[i].def ? keys[i].def : "", NULL);

        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Members named "//..." are comments, at any level. Recursion follows the table's sections only. */
static int load_object(load_t *ld, json_t *obj, const char *prefix)
{
    const char *name;
    json_t *v;

    json_object_foreach(obj, name, v) {
        char path[128], got[GOT_MAX + 16];
        const keydef_t *k;
        int n, rc;

        if (strncmp(name, "//", 2) == 0)
            continue;
        if (strchr(name, '.')) /* one spelling per key: sections are nested objects */
            return fail(ld, -EINVAL, "unknown key: %s%s\"%s\" (nest sections as objects)",
                        prefix, *prefix ? "." : "", name);
        n = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name);
        if (n < 0 || (size_t)n >= sizeof path)
            return fail(ld, -EINVAL, "unknown key: %s...", path);
        k = find_key(path);
        if (k)
            rc = set_json(ld, k, v);
        else if (!is_section(path))
            rc = fail(ld, -EINVAL, "unknown key: %s", path);
        else if (!json_is_object(v)) {
            show_json(v, false, got, sizeof got);
            rc = fail(ld, -EINVAL, "%s: expected an object, got %s", path, got);
        } else
            rc = load_object(ld, v, path);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int load_file(load_t *ld, const char *path)
{
    json_error_t je;
    json_t *root = NULL;
    FILE *f = fopen(path, "r");
    int rc;

    if (!f) {
        rc = -errno;
        return fail(ld, rc, "%s: cannot open: %s", path, strerror(-rc));
    }
    root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    if (!root && ferror(f))
        rc = fail(ld, -EIO, "%s: cannot read: %s", path, strerror(errno));
    else if (!root)
        rc = fail(ld, -EINVAL, "%s: line %d, column %d: %s", path, je.line, je.column, je.text);
    else if (!json_is_object(root))
        rc = fail(ld, -EINVAL, "%s: the top level must be an object", path);
    else
        rc = load_object(ld, root, "");
    fclose(f);
    json_decref(root);
    if (rc == 0 && !(ld->cfg->source_path = strdup(path)))
        rc = fail(ld, -ENOMEM, "%s: out of memory", path);
    return rc;
}

static int load_env(load_t *ld, char *const *envp)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const char *s = config_env_value(envp, keys[i].env);
        int rc = s ? set_text(ld, &keys[i], s, keys[i].env) : 0;

        if (rc < 0)
            return rc;
    }
    return 0;
}

static int require(load_t *ld, const char *missing, const char *because)
{
    return fail(ld, -EINVAL, "%s (%s): required when %s is set", missing,
                find_key(missing)->env, because);
}

/*
 * HMAC algorithms take the shared secret, RS and ES ones the public key; a public key
 * forbids HMAC, because an HMAC token "signed" with the public key's PEM text (which is
 * public) must never pass (the JWT key-confusion attack).
 */
static int check_algorithms(load_t *ld)
{
    const config_t *cfg = ld->cfg;

    for (size_t i = 0; i < cfg->auth_algorithms.n; i++) {
        const char *alg = cfg->auth_algorithms.items[i];
        bool hmac = alg[0] == 'H';

        if (hmac && cfg->auth_public_key)
            return fail(ld, -EINVAL,
                        "auth.algorithms: %s (HMAC) cannot be used with auth.public_key", alg);
        if (!hmac && !cfg->auth_public_key)
            return fail(ld, -EINVAL, "auth.algorithms: %s requires auth.public_key (%s)", alg,
                        find_key("auth.public_key")->env);
    }
    return 0;
}

/* Checks across keys and derived defaults, once every layer is in. */
static int finish(load_t *ld)
{
    config_t *cfg = ld->cfg;
    static const char fmt[] = "%s://%s%s%s:%d";
    const char *scheme = cfg->tls_cert ? "https" : "http";
    bool v6 = strchr(cfg->listen_host, ':') != NULL;
    int n;

    if (cfg->tls_cert && !cfg->tls_key)
        return require(ld, "tls.key", "tls.cert");
    if (cfg->tls_key && !cfg->tls_cert)
        return require(ld, "tls.cert", "tls.key");
    if (check_algorithms(ld) < 0)
        return -EINVAL;
    if (cfg->broker_type == BROKER_REDIS && !cfg->broker_redis_url)
        return fail(ld, -EINVAL, "broker.redis_url (%s): required when broker.type is redis",
                    find_key("broker.redis_url")->env);
    if (cfg->public_url)
        return 0;
    /* Derived last so that WSHUB_LISTEN alone moves it too. */
    n = snprintf(NULL, 0, fmt, scheme, v6 ? "[" : "", cfg->listen_host, v6 ? "]" : "",
                 cfg->listen_port);
    cfg->public_url = malloc((size_t)n + 1);
    if (!cfg->public_url)
        return fail(ld, -ENOMEM, "public_url: out of memory");
    snprintf(cfg->public_url, (size_t)n + 1, fmt, scheme, v6 ? "[" : "", cfg->listen_host,
             v6 ? "]" : "", cfg->listen_port);
    return 0;
}

/* ---- public ---------------------------------------------------------------------- */

int config_load(config_t *out, const char *path, char *const *envp, char *err, size_t errlen)
{
    load_t ld = {out, err, errlen};
    int rc;

    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    rc = load_defaults(&ld);
    if (rc < 0)
        goto fail;
    if (path && (rc = load_file(&ld, path)) < 0)
        goto fail;
    /* The embedded default is the mock backend a client developer starts (scripts/run). */
    out->mock_enabled = out->mock_enabled || !path;
    if (!path && out->history_size == 0)
        out->history_size = 100; /* the mock backend recovers what a client missed */
    rc = load_env(&ld, envp);
    if (rc < 0)
        goto fail;
    rc = finish(&ld);
    if (rc < 0)
        goto fail;
    return 0;
fail:
    config_free(out);
    return rc;
}

void config_free(config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        void *field = (char *)cfg + keys[i].offset;

        if (keys[i].type == T_STRING || keys[i].type == T_LISTEN)
            free(*(char **)field);
        else if (keys[i].type == T_LIST)
            config_list_free(field);
    }
    free(cfg->source_path);
    memset(cfg, 0, sizeof *cfg);
}

int config_parse_log_level(const char *s)
{
    return s ? config_word_index(level_names, s) : -1;
}

const void *config_key_at(const config_t *cfg, size_t i, config_key_view_t *v)
{
    if (i >= NKEYS)
        return NULL;
    *v = (config_key_view_t){keys[i].path, keys[i].type, keys[i].flags, keys[i].names};
    return (const char *)cfg + keys[i].offset;
}

const config_key_doc_t *config_keys(size_t *n)
{
    if (n)
        *n = NKEYS;
    return docs;
}
