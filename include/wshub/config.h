/*
 * config — the daemon's configuration: one JSON file, every key overridable by a
 * WSHUB_* environment variable, validated once at startup (and again on SIGHUP).
 *
 * Owns: parsing, defaults, validation, the key table that documents every key.
 * Never: opens sockets, starts threads, or keeps global state; a config_t is a plain
 * value that main.c builds and hands to the modules that need it.
 *
 * See ../shared/DESIGN.md "Configuration" and config/wshub.example.json.
 */
#ifndef WSHUB_CONFIG_H
#define WSHUB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level_t;
typedef enum { LOG_FORMAT_HUMAN = 0, LOG_FORMAT_JSON } log_format_t;
/* API B without a `channels` claim: allow every well-formed channel except another user's
 * user:<id>, or deny everything but the user's own channel. */
typedef enum { SERVICE_POLICY_ALLOW = 0, SERVICE_POLICY_DENY } service_policy_t;
typedef enum { CABLE_ORIGIN_CLOSE = 0, CABLE_ORIGIN_HTTP403 } cable_origin_failure_t;
typedef enum { CABLE_ENVELOPE_NESTED = 0, CABLE_ENVELOPE_FLAT } cable_envelope_t;
typedef enum { MODERATION_AUTH_ABORT = 0, MODERATION_AUTH_HTTP401 } moderation_auth_failure_t;
/* Where channels live: this process only (the embedded hub), or shared by every node through
 * Redis pub/sub (issue 13). */
typedef enum { BROKER_MEMORY = 0, BROKER_REDIS } broker_type_t;

/* A list of strings from a JSON array or a comma-separated environment variable. */
typedef struct config_strlist {
    char **items; /* owned; each item owned */
    size_t n;
} config_strlist_t;

typedef struct config {
    /* "listen": "host:port" (IPv4, IPv6 in brackets, or a host name resolved at start). */
    char *listen_host;
    int listen_port;
    char *public_url; /* "public_url"; default: "http://" + listen */
    int workers;      /* "workers"; 0 = number of cores */

    log_level_t log_level;   /* "log.level" */
    log_format_t log_format; /* "log.format": "human" | "json" */
    int log_rate_limit_per_s; /* "log.rate_limit_per_s" (20): lines per reason per second, 0 = off */

    char *tls_cert; /* "tls.cert": PEM file; NULL = plain TCP */
    char *tls_key;  /* "tls.key": PEM file; required with tls.cert */

    size_t max_message_bytes;       /* "limits.max_message_bytes" (1 MiB): larger -> close 1009 */
    size_t max_queued_bytes;        /* "limits.max_queued_bytes" (4 MiB): output bound -> 1013 */
    size_t max_connections;         /* "limits.max_connections" (0 = the descriptor limit less a
                                       reserve), per process */
    size_t max_connections_per_ip;  /* "limits.max_connections_per_ip" (256; 0 = unlimited) */
    int accept_rate_per_ip;         /* "limits.accept_rate_per_ip" (100/s, burst twice; 0 = off) */
    bool limits_exempt_loopback;    /* "limits.exempt_loopback" (true): per-IP limits skip loopback */
    int message_rate;               /* "limits.message_rate" (1000/s per connection; 0 = off) */
    int message_burst;              /* "limits.message_burst" (2000) */
    size_t max_inbound_total_bytes; /* "limits.max_inbound_total_bytes" (256 MiB): unfinished
                                       inbound WebSocket messages held, process */
    size_t max_mailbox_bytes;       /* "limits.max_mailbox_bytes" (64 MiB): messages posted to one
                                     * worker by other threads and not delivered yet */
    size_t max_queued_total_bytes;  /* "limits.max_queued_total_bytes" (1 GiB): private output
                                       queued, process (shared fan-out frames not counted) */
    int tcp_keepalive_s;            /* "limits.tcp_keepalive_s" (60; 0 = off) */
    size_t http_max_header_bytes;   /* "http.max_header_bytes" (16 KiB): request line + headers */
    size_t http_max_body_total_bytes; /* "http.max_body_total_bytes" (64 MiB): bodies held, process */
    uint32_t http_handshake_timeout_ms; /* "http.handshake_timeout_ms" (10 s): accept to 1st request */
    uint32_t ws_ping_interval_ms;   /* "websocket.ping_interval_ms" (30 s; 0 = off) */
    uint32_t ws_ping_timeout_ms;    /* "websocket.ping_timeout_ms" (10 s) */
    int http_max_headers;           /* "http.max_headers" (64) */
    size_t http_max_body_bytes;     /* "http.max_body_bytes" (1 MiB) */
    uint32_t http_request_timeout_ms;   /* "http.request_timeout_ms" (10 s): whole request */
    uint32_t http_keepalive_timeout_ms; /* "http.keepalive_timeout_ms" (30 s): idle keep-alive */
    uint32_t ws_close_timeout_ms;   /* "websocket.close_timeout_ms" (5 s): close handshake */
    bool ws_compression;            /* "websocket.compression" (false): permessage-deflate */
    uint32_t shutdown_timeout_ms;   /* "shutdown.timeout_ms" (5 s): drain on SIGTERM */
    bool echo_enabled;              /* "echo.enabled" (true) */
    bool mock_enabled;              /* "mock.enabled" (false; true on the embedded default) */
    int mock_max_scenarios;         /* "mock.max_scenarios" (16) */
    char *mock_scenario_dir;        /* "mock.scenario_dir" ("config/scenarios") */
    int mock_circle_max_members;    /* "mock.circle_max_members" (10,000) */
    int mock_circle_max_rooms;      /* "mock.circle_max_rooms" (1,000) */
    int mock_circle_max_participants; /* "mock.circle_max_participants" (100) per room */
    int mock_circle_max_messages;   /* "mock.circle_max_messages" (1,000) per room, oldest dropped */
    size_t mock_circle_max_bytes;   /* "mock.circle_max_bytes" (64 MiB) of messages, oldest dropped */
    int mock_max_faults;            /* "mock.max_faults" (256) */
    size_t mock_max_delayed_bytes;  /* "mock.max_delayed_bytes" (64 MiB): held by latency faults */
    size_t mock_max_delayed_conn_bytes; /* "mock.max_delayed_bytes_per_connection" (4 MiB) */
    int tap_max_clients;            /* "mock.tap_max_clients" (16): traffic tap clients, process */
    size_t tap_queue_bytes;         /* "mock.tap_queue_bytes" (1 MiB): events held per tap client */
    int service_max_subscriptions;  /* "service.max_subscriptions" (100): per API B connection */
    service_policy_t service_default_policy; /* "service.default_policy" (allow): no `channels` */

    /* Reloadable on SIGHUP (keys and allow-lists). */
    char *jwt_secret;                       /* "auth.jwt_secret"; NULL = development secret */
    char *auth_public_key;                  /* "auth.public_key": PEM file; NULL = HMAC */
    config_strlist_t auth_algorithms;       /* "auth.algorithms": canonical names, e.g. "RS256";
                                               empty = HS256, or RS256+ES256 with a public key */
    char *auth_issuer;                      /* "auth.issuer": required "iss"; NULL = any */
    char *auth_audience;                    /* "auth.audience": required in "aud"; NULL = any */
    int auth_leeway_s;                      /* "auth.leeway_s" (5): seconds of skew for exp/nbf */
    bool auth_require_exp;                  /* "auth.require_exp" (true) */
    char *api_key;                          /* "api.key": bearer key of /api/publish */
    config_strlist_t moderation_keys;       /* "moderation.keys" */
    moderation_auth_failure_t moderation_auth_failure; /* "moderation.auth_failure" (abort) */
    bool moderation_query_key;              /* "moderation.query_key" (false): ?api_key= too */
    int moderation_max_sample_chars;        /* "moderation.max_sample_chars" (10000) */
    int moderation_max_in_flight;           /* "moderation.max_in_flight" (64) per connection */
    uint32_t moderation_delay_ms;           /* "moderation.delay_ms" (0): random extra delay */
    config_strlist_t moderation_lists;      /* "moderation.lists": extra word-list files */
    bool moderation_no_default_list;        /* "moderation.no_default_list" (false) */
    config_strlist_t cable_allowed_origins; /* "cable.allowed_origins" (empty = any) */
    cable_origin_failure_t cable_origin_failure; /* "cable.origin_failure" (close) */
    cable_envelope_t cable_event_envelope;  /* "cable.event_envelope" (nested) */
    int cable_max_subscriptions;            /* "cable.max_subscriptions" (256) per connection */
    uint32_t cable_ping_interval_ms;        /* "cable.ping_interval_ms" (3000) */
    config_strlist_t flow_client_ids;       /* "flow.client_ids" (empty = any) */
    config_strlist_t flow_allowed_origins;  /* "flow.allowed_origins" (empty = any) */
    uint32_t flow_token_ttl_ms;             /* "flow.token_ttl_ms" (60000) */
    uint32_t flow_idle_timeout_ms;          /* "flow.idle_timeout_ms" (50000) */
    uint32_t flow_reply_delay_ms;           /* "flow.reply_delay_ms" (0) */
    char *flow_bot_file;                    /* "flow.bot_file": rules; NULL = echo bot */
    int flow_history_limit;                 /* "flow.history_limit" (100) per thread */
    int flow_max_tickets;                   /* "flow.max_tickets" (100000): unused, per process */
    int flow_max_pending_replies;           /* "flow.max_pending_replies" (10000): delayed bot
                                               replies held per worker */
    size_t flow_max_history_bytes;          /* "flow.max_history_bytes" (1 MiB) per thread */
    size_t flow_max_history_total_bytes;    /* "flow.max_history_total_bytes" (64 MiB) */
    int flow_thread_ttl_s;                  /* "flow.thread_ttl_s" (3600): quiet thread expiry */

    /* Channel history and recovery (issue 17); restart to change. */
    int history_size;                       /* "history.size" (0 = off; 100 on the embedded default) */
    int history_ttl_s;                      /* "history.ttl_s" (300) */
    size_t history_max_bytes;               /* "history.max_bytes" (64 MiB), without a broker */
    size_t history_max_session_bytes;       /* "history.max_session_bytes" (16 MiB), without a broker */

    /* Scale-out (issue 13); restart to change. */
    broker_type_t broker_type;              /* "broker.type" (memory) */
    char *broker_redis_url;                 /* "broker.redis_url", env WSHUB_REDIS_URL
                                               (redis://127.0.0.1:6379/0): may hold a password,
                                               never log it; config_redis_url_parse splits it */
    char *broker_prefix;                    /* "broker.prefix" ("wshub:"): Redis channel names
                                               start with it; 1-64 bytes, no space or control */
    uint32_t broker_reconnect_max_ms;       /* "broker.reconnect_max_ms" (5000, 100-60000): cap
                                               of the exponential reconnect backoff */
    size_t broker_max_pending_bytes;        /* "broker.max_pending_bytes" (64 MiB): publishes
                                               queued to Redis and not answered yet */

    /* Where it came from, for logs: the file path or NULL for the embedded default. */
    char *source_path;
} config_t;

/*
 * Builds a configuration: defaults, then the file at `path` (NULL: none), then the
 * WSHUB_* variables of `envp` (NULL-terminated "NAME=value" strings, usually `environ`).
 * On success returns 0 and fills *out (release with config_free). On failure returns a
 * negative value and writes one line naming the key into err (at most errlen bytes,
 * NUL-terminated), e.g. "http.max_headers: expected a positive integer, got -3".
 * Unknown keys in the file are errors (a typo must not be silently ignored).
 */
int config_load(config_t *out, const char *path, char *const *envp, char *err, size_t errlen);

/* Releases every string a config_t owns; the struct itself is the caller's. */
void config_free(config_t *cfg);

/* Parses "debug" | "info" | "warn" | "error"; returns -1 if unknown. */
int config_parse_log_level(const char *s);

/* broker.redis_url split into what a Redis connection needs. */
typedef struct {
    char host[256];     /* a name, an IPv4 address, or an IPv6 address without brackets */
    int port;           /* 1-65535 */
    int db;             /* 0-15; 0 when the URL has no /db */
    char user[128];     /* ACL user; "" = none (AUTH with the password alone) */
    char password[256]; /* "" = no AUTH */
} config_redis_url_t;

/*
 * Parses "redis://[user:password@]host:port[/db]" (also ":password@" without a user, an IPv6
 * host in brackets, %XX escapes in user and password). Returns 0 and fills *out, or -EINVAL
 * and writes into err one phrase saying what is wrong, which never quotes the password, e.g.
 * "the port must be from 1 to 65535". out may be NULL (validation only).
 */
int config_redis_url_parse(const char *url, config_redis_url_t *out, char *err, size_t errlen);

/* The documentation table: one entry per key, in file order. */
typedef struct config_key_doc {
    const char *key;     /* dotted JSON path, e.g. "http.max_headers" */
    const char *env;     /* environment variable, e.g. "WSHUB_HTTP_MAX_HEADERS" */
    const char *summary; /* one sentence */
} config_key_doc_t;
const config_key_doc_t *config_keys(size_t *n);

#endif
