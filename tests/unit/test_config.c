/*
 * test_config — unit tests of server/config.c: defaults, the example file, the file and
 * environment layers, every error kind, and that failures leave nothing allocated.
 *
 * Reads config/wshub.example.json under $WSHUB_SOURCE_ROOT (set by meson); writes its
 * own files only inside one mkdtemp directory, removed at the end. Never reads the
 * process environment for WSHUB_* keys: every test passes its own envp.
 */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wshub/config.h"
#include "wshub/config_dump.h"
#include "wshub/log.h"

typedef struct fixture {
    char dir[64]; /* mkdtemp directory */
    int files;    /* files written so far, for unique names */
} fixture_t;

static char *const no_env[] = {NULL};

/* ---- helpers --------------------------------------------------------------------- */

static int group_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);

    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_config.XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_teardown(void **state)
{
    fixture_t *fx = *state;
    int rc = nftw(fx->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);

    free(fx);
    return rc;
}

/* Writes text to a new file in the fixture directory; returns its path (free it). */
static char *write_tmp(void **state, const char *text)
{
    fixture_t *fx = *state;
    char *path = malloc(sizeof fx->dir + 32);
    FILE *f;

    assert_non_null(path);
    snprintf(path, sizeof fx->dir + 32, "%s/f%d.json", fx->dir, fx->files++);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

static char *example_path(void)
{
    const char *root = getenv("WSHUB_SOURCE_ROOT");
    char *path;

    if (!root)
        fail_msg("WSHUB_SOURCE_ROOT is not set (meson sets it to the project root)");
    path = malloc(strlen(root) + 64);
    assert_non_null(path);
    sprintf(path, "%s/config/wshub.example.json", root);
    return path;
}

static void assert_zeroed(const config_t *cfg)
{
    config_t zero;

    memset(&zero, 0, sizeof zero);
    assert_memory_equal(cfg, &zero, sizeof zero);
}

static void assert_str_or_null(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_list(const config_strlist_t *l, size_t n, const char *const *items)
{
    assert_int_equal(l->n, n);
    if (n == 0)
        assert_null(l->items);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l->items[i], items[i]);
}

static void assert_lists_equal(const config_strlist_t *a, const config_strlist_t *b)
{
    assert_list(a, b->n, (const char *const *)b->items);
}

/* Every field but source_path. */
static void assert_config_equal(const config_t *a, const config_t *b)
{
    assert_string_equal(a->listen_host, b->listen_host);
    assert_int_equal(a->listen_port, b->listen_port);
    assert_str_or_null(a->public_url, b->public_url);
    assert_int_equal(a->workers, b->workers);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->log_format, b->log_format);
    assert_int_equal(a->log_rate_limit_per_s, b->log_rate_limit_per_s);
    assert_str_or_null(a->tls_cert, b->tls_cert);
    assert_str_or_null(a->tls_key, b->tls_key);
    assert_int_equal(a->max_message_bytes, b->max_message_bytes);
    assert_int_equal(a->max_queued_bytes, b->max_queued_bytes);
    assert_int_equal(a->max_connections, b->max_connections);
    assert_int_equal(a->http_max_header_bytes, b->http_max_header_bytes);
    assert_int_equal(a->http_max_headers, b->http_max_headers);
    assert_int_equal(a->http_max_body_bytes, b->http_max_body_bytes);
    assert_int_equal(a->http_request_timeout_ms, b->http_request_timeout_ms);
    assert_int_equal(a->http_keepalive_timeout_ms, b->http_keepalive_timeout_ms);
    assert_int_equal(a->ws_close_timeout_ms, b->ws_close_timeout_ms);
    assert_int_equal(a->shutdown_timeout_ms, b->shutdown_timeout_ms);
    assert_int_equal(a->echo_enabled, b->echo_enabled);
    assert_int_equal(a->service_max_subscriptions, b->service_max_subscriptions);
    assert_int_equal(a->service_default_policy, b->service_default_policy);
    assert_str_or_null(a->jwt_secret, b->jwt_secret);
    assert_str_or_null(a->auth_public_key, b->auth_public_key);
    assert_lists_equal(&a->auth_algorithms, &b->auth_algorithms);
    assert_str_or_null(a->auth_issuer, b->auth_issuer);
    assert_str_or_null(a->auth_audience, b->auth_audience);
    assert_int_equal(a->auth_leeway_s, b->auth_leeway_s);
    assert_int_equal(a->auth_require_exp, b->auth_require_exp);
    assert_str_or_null(a->api_key, b->api_key);
    assert_lists_equal(&a->moderation_keys, &b->moderation_keys);
    assert_int_equal(a->moderation_auth_failure, b->moderation_auth_failure);
    assert_int_equal(a->moderation_query_key, b->moderation_query_key);
    assert_int_equal(a->moderation_max_sample_chars, b->moderation_max_sample_chars);
    assert_int_equal(a->moderation_max_in_flight, b->moderation_max_in_flight);
    assert_int_equal(a->moderation_delay_ms, b->moderation_delay_ms);
    assert_lists_equal(&a->moderation_lists, &b->moderation_lists);
    assert_int_equal(a->moderation_no_default_list, b->moderation_no_default_list);
    assert_lists_equal(&a->cable_allowed_origins, &b->cable_allowed_origins);
    assert_int_equal(a->cable_origin_failure, b->cable_origin_failure);
    assert_int_equal(a->cable_event_envelope, b->cable_event_envelope);
    assert_int_equal(a->cable_ping_interval_ms, b->cable_ping_interval_ms);
    assert_lists_equal(&a->flow_client_ids, &b->flow_client_ids);
    assert_lists_equal(&a->flow_allowed_origins, &b->flow_allowed_origins);
    assert_int_equal(a->flow_token_ttl_ms, b->flow_token_ttl_ms);
    assert_int_equal(a->flow_idle_timeout_ms, b->flow_idle_timeout_ms);
    assert_int_equal(a->flow_reply_delay_ms, b->flow_reply_delay_ms);
    assert_str_or_null(a->flow_bot_file, b->flow_bot_file);
    assert_int_equal(a->flow_history_limit, b->flow_history_limit);
    assert_int_equal(a->flow_max_tickets, b->flow_max_tickets);
    assert_int_equal(a->flow_max_pending_replies, b->flow_max_pending_replies);
    assert_int_equal(a->flow_max_history_bytes, b->flow_max_history_bytes);
    assert_int_equal(a->flow_max_history_total_bytes, b->flow_max_history_total_bytes);
    assert_int_equal(a->flow_thread_ttl_s, b->flow_thread_ttl_s);
    assert_int_equal(a->broker_type, b->broker_type);
    assert_str_or_null(a->broker_redis_url, b->broker_redis_url);
    assert_str_or_null(a->broker_prefix, b->broker_prefix);
    assert_int_equal(a->broker_reconnect_max_ms, b->broker_reconnect_max_ms);
    assert_int_equal(a->broker_max_pending_bytes, b->broker_max_pending_bytes);
}

/* Loads and expects success; a failure prints the message. */
static void load_ok(config_t *cfg, const char *path, char *const *envp)
{
    char err[256] = "untouched";
    int rc = config_load(cfg, path, envp, err, sizeof err);

    if (rc != 0)
        fail_msg("config_load failed (%d): %s", rc, err);
    assert_string_equal(err, "");
}

/* Loads and expects failure with every needle in the message and nothing left allocated. */
static void load_fails(const char *path, char *const *envp, const char *needle1,
                       const char *needle2)
{
    config_t cfg;
    char err[256] = "";
    int rc = config_load(&cfg, path, envp, err, sizeof err);

    if (rc == 0) {
        config_free(&cfg);
        fail_msg("config_load succeeded; expected an error naming %s", needle1);
    }
    assert_true(rc < 0);
    assert_zeroed(&cfg);
    assert_null(strchr(err, '\n'));
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
        fail_msg("error \"%s\" does not name \"%s\" / \"%s\"", err, needle1,
                 needle2 ? needle2 : "");
    config_free(&cfg); /* harmless on the zeroed struct */
}

static void json_fails(void **state, const char *json, const char *needle1, const char *needle2)
{
    char *path = write_tmp(state, json);

    load_fails(path, no_env, needle1, needle2);
    free(path);
}

/* Exact message for a one-variable environment. */
static void env_message(const char *assignment, const char *message)
{
    char *env[] = {(char *)assignment, NULL};
    config_t cfg;
    char err[256];

    assert_true(config_load(&cfg, NULL, env, err, sizeof err) < 0);
    assert_string_equal(err, message);
    assert_zeroed(&cfg);
}

static void json_message(void **state, const char *json, const char *message)
{
    char *path = write_tmp(state, json);
    config_t cfg;
    char err[256];

    assert_true(config_load(&cfg, path, no_env, err, sizeof err) < 0);
    assert_string_equal(err, message);
    assert_zeroed(&cfg);
    free(path);
}

/* ---- defaults and the example file ----------------------------------------------- */

static void test_defaults(void **state)
{
    config_t cfg;

    (void)state;
    load_ok(&cfg, NULL, no_env);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.public_url, "http://127.0.0.1:8080");
    assert_int_equal(cfg.workers, 0);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.log_format, LOG_FORMAT_HUMAN);
    assert_int_equal(cfg.log_rate_limit_per_s, LOG_DEFAULT_RATE_LIMIT);
    assert_null(cfg.tls_cert);
    assert_null(cfg.tls_key);
    assert_int_equal(cfg.max_message_bytes, 1048576);
    assert_int_equal(cfg.max_queued_bytes, 4194304);
    assert_int_equal(cfg.max_connections, 0);
    assert_int_equal(cfg.http_max_header_bytes, 16384);
    assert_int_equal(cfg.http_max_headers, 64);
    assert_int_equal(cfg.http_max_body_bytes, 1048576);
    assert_int_equal(cfg.http_request_timeout_ms, 10000);
    assert_int_equal(cfg.http_keepalive_timeout_ms, 30000);
    assert_int_equal(cfg.ws_close_timeout_ms, 5000);
    assert_int_equal(cfg.shutdown_timeout_ms, 5000);
    assert_true(cfg.echo_enabled);
    assert_int_equal(cfg.service_max_subscriptions, 100);
    assert_int_equal(cfg.service_default_policy, SERVICE_POLICY_ALLOW);
    assert_null(cfg.jwt_secret);
    assert_null(cfg.auth_public_key);
    assert_list(&cfg.auth_algorithms, 0, NULL);
    assert_null(cfg.auth_issuer);
    assert_null(cfg.auth_audience);
    assert_int_equal(cfg.auth_leeway_s, 5);
    assert_true(cfg.auth_require_exp);
    assert_null(cfg.api_key);
    assert_list(&cfg.moderation_keys, 0, NULL);
    assert_int_equal(cfg.moderation_auth_failure, MODERATION_AUTH_ABORT);
    assert_false(cfg.moderation_query_key);
    assert_int_equal(cfg.moderation_max_sample_chars, 10000);
    assert_int_equal(cfg.moderation_max_in_flight, 64);
    assert_int_equal(cfg.moderation_delay_ms, 0);
    assert_list(&cfg.moderation_lists, 0, NULL);
    assert_false(cfg.moderation_no_default_list);
    assert_list(&cfg.cable_allowed_origins, 0, NULL);
    assert_int_equal(cfg.cable_origin_failure, CABLE_ORIGIN_CLOSE);
    assert_int_equal(cfg.cable_event_envelope, CABLE_ENVELOPE_NESTED);
    assert_int_equal(cfg.cable_ping_interval_ms, 3000);
    assert_list(&cfg.flow_client_ids, 0, NULL);
    assert_list(&cfg.flow_allowed_origins, 0, NULL);
    assert_int_equal(cfg.flow_token_ttl_ms, 60000);
    assert_int_equal(cfg.flow_idle_timeout_ms, 50000);
    assert_int_equal(cfg.flow_reply_delay_ms, 0);
    assert_null(cfg.flow_bot_file);
    assert_int_equal(cfg.flow_history_limit, 100);
    assert_int_equal(cfg.flow_max_tickets, 100000);
    assert_int_equal(cfg.flow_max_pending_replies, 10000);
    assert_int_equal(cfg.flow_max_history_bytes, 1048576);
    assert_int_equal(cfg.flow_max_history_total_bytes, 67108864);
    assert_int_equal(cfg.flow_thread_ttl_s, 3600);
    assert_int_equal(cfg.broker_type, BROKER_MEMORY);
    assert_string_equal(cfg.broker_redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(cfg.broker_prefix, "wshub:");
    assert_int_equal(cfg.broker_reconnect_max_ms, 5000);
    assert_int_equal(cfg.broker_max_pending_bytes, 67108864);
    assert_null(cfg.source_path);
    config_free(&cfg);
    assert_zeroed(&cfg);

    /* A NULL envp is an empty environment; unrelated variables are ignored. */
    char *unrelated[] = {"PATH=/bin", "WSHUB_SOURCE_ROOT=/x", "WSHUB_WORKERSX=3", "WSHUB_WORKERS",
                         NULL};
    config_t other;
    load_ok(&cfg, NULL, NULL);
    load_ok(&other, NULL, unrelated);
    assert_config_equal(&cfg, &other);
    config_free(&cfg);
    config_free(&other);
    config_free(NULL);
}

static void test_example_equals_defaults(void **state)
{
    char *path = example_path();
    config_t defaults, example;

    (void)state;
    load_ok(&defaults, NULL, no_env);
    load_ok(&example, path, no_env);
    assert_config_equal(&example, &defaults);
    assert_string_equal(example.source_path, path);
    config_free(&defaults);
    config_free(&example);
    free(path);
}

/* The table: env names follow the rule, and the example documents every key. */
static void test_key_table(void **state)
{
    char *path = example_path();
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    size_t n = 0;
    const config_key_doc_t *keys = config_keys(&n);

    (void)state;
    assert_non_null(root);
    assert_int_equal(n, 90);
    assert_ptr_equal(config_keys(NULL), keys);
    for (size_t i = 0; i < n; i++) {
        char env[128] = "WSHUB_", comment[128], section[64] = "";
        const char *leaf = strrchr(keys[i].key, '.');
        json_t *parent = root, *doc;
        size_t j;

        if (strcmp(keys[i].key, "auth.jwt_secret") == 0)
            snprintf(env, sizeof env, "WSHUB_JWT_SECRET");
        else if (strcmp(keys[i].key, "api.key") == 0)
            snprintf(env, sizeof env, "WSHUB_API_KEY");
        else if (strcmp(keys[i].key, "broker.type") == 0) /* fixed by issue 13 */
            snprintf(env, sizeof env, "WSHUB_BROKER");
        else if (strcmp(keys[i].key, "broker.redis_url") == 0)
            snprintf(env, sizeof env, "WSHUB_REDIS_URL");
        else
            for (j = 0; keys[i].key[j]; j++)
                env[6 + j] = keys[i].key[j] == '.' ? '_' : (char)(keys[i].key[j] & ~0x20);
        assert_string_equal(keys[i].env, env);
        assert_true(strlen(keys[i].summary) > 10);

        if (leaf) {
            memcpy(section, keys[i].key, (size_t)(leaf - keys[i].key));
            parent = json_object_get(root, section);
            leaf++;
        } else {
            leaf = keys[i].key;
        }
        assert_non_null(parent);
        if (!json_object_get(parent, leaf))
            fail_msg("%s is missing from the example", keys[i].key);
        snprintf(comment, sizeof comment, "//%s", leaf);
        doc = json_object_get(parent, comment);
        if (!json_is_string(doc) || !strstr(json_string_value(doc), keys[i].env))
            fail_msg("%s: the example's comment must name %s", keys[i].key, keys[i].env);
    }
    json_decref(root);
    free(path);
}

static void test_parse_log_level(void **state)
{
    (void)state;
    assert_int_equal(config_parse_log_level("error"), LOG_ERROR);
    assert_int_equal(config_parse_log_level("warn"), LOG_WARN);
    assert_int_equal(config_parse_log_level("info"), LOG_INFO);
    assert_int_equal(config_parse_log_level("debug"), LOG_DEBUG);
    assert_int_equal(config_parse_log_level("DEBUG"), LOG_DEBUG);
    assert_int_equal(config_parse_log_level("verbose"), -1);
    assert_int_equal(config_parse_log_level(""), -1);
    assert_int_equal(config_parse_log_level(NULL), -1);
}

/* ---- layers ---------------------------------------------------------------------- */

static void test_env_overrides_file(void **state)
{
    char *path = write_tmp(state, "{\"workers\": 4, \"listen\": \"0.0.0.0:9000\",\n"
                                  " \"log\": {\"level\": \"debug\", \"format\": \"json\"},\n"
                                  " \"moderation\": {\"keys\": [\"a\", \"b\"]},\n"
                                  " \"auth\": {\"jwt_secret\": \"file-secret\"}}\n");
    char *env[] = {"WSHUB_WORKERS=8", "WSHUB_LOG_FORMAT=human", "WSHUB_MODERATION_KEYS=",
                   "WSHUB_JWT_SECRET=env-secret", NULL};
    config_t cfg;

    (void)state;
    load_ok(&cfg, path, env);
    assert_int_equal(cfg.workers, 8);
    assert_int_equal(cfg.log_level, LOG_DEBUG);         /* file */
    assert_int_equal(cfg.log_format, LOG_FORMAT_HUMAN); /* env */
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9000);
    assert_string_equal(cfg.public_url, "http://0.0.0.0:9000");
    assert_list(&cfg.moderation_keys, 0, NULL); /* empty variable = empty list */
    assert_string_equal(cfg.jwt_secret, "env-secret");
    assert_string_equal(cfg.source_path, path);
    config_free(&cfg);

    /* The first of two assignments wins, as with getenv(). */
    char *twice[] = {"WSHUB_WORKERS=2", "WSHUB_WORKERS=3", NULL};
    load_ok(&cfg, path, twice);
    assert_int_equal(cfg.workers, 2);
    config_free(&cfg);
    free(path);
}

static void test_env_every_key(void **state)
{
    char *env[] = {"WSHUB_LISTEN=[::1]:9001",
                   "WSHUB_PUBLIC_URL=https://hub.example.com",
                   "WSHUB_WORKERS=256",
                   "WSHUB_LOG_LEVEL=warn",
                   "WSHUB_LOG_FORMAT=json",
                   "WSHUB_LOG_RATE_LIMIT_PER_S=0",
                   "WSHUB_TLS_CERT=/etc/wshub/cert.pem",
                   "WSHUB_TLS_KEY=/etc/wshub/key.pem",
                   "WSHUB_LIMITS_MAX_MESSAGE_BYTES=125",
                   "WSHUB_LIMITS_MAX_QUEUED_BYTES=65536",
                   "WSHUB_LIMITS_MAX_CONNECTIONS=10000",
                   "WSHUB_HTTP_MAX_HEADER_BYTES=256",
                   "WSHUB_HTTP_MAX_HEADERS=1000",
                   "WSHUB_HTTP_MAX_BODY_BYTES=0",
                   "WSHUB_HTTP_REQUEST_TIMEOUT_MS=10",
                   "WSHUB_HTTP_KEEPALIVE_TIMEOUT_MS=4294967295",
                   "WSHUB_WEBSOCKET_CLOSE_TIMEOUT_MS=2500",
                   "WSHUB_SHUTDOWN_TIMEOUT_MS=0",
                   "WSHUB_ECHO_ENABLED=off",
                   "WSHUB_JWT_SECRET=acceptance-secret",
                   "WSHUB_AUTH_PUBLIC_KEY=/etc/wshub/jwt.pub.pem",
                   "WSHUB_AUTH_ALGORITHMS=RS256, es384",
                   "WSHUB_AUTH_ISSUER=https://issuer.example.com/",
                   "WSHUB_AUTH_AUDIENCE=wshub",
                   "WSHUB_AUTH_LEEWAY_S=3600",
                   "WSHUB_AUTH_REQUIRE_EXP=no",
                   "WSHUB_API_KEY=acceptance-api-key",
                   "WSHUB_MODERATION_KEYS=mod-key-1,mod-key-2",
                   "WSHUB_MODERATION_AUTH_FAILURE=http401",
                   "WSHUB_MODERATION_QUERY_KEY=yes",
                   "WSHUB_MODERATION_MAX_SAMPLE_CHARS=500",
                   "WSHUB_MODERATION_MAX_IN_FLIGHT=7",
                   "WSHUB_MODERATION_DELAY_MS=250",
                   "WSHUB_MODERATION_LISTS=/etc/wshub/extra.json",
                   "WSHUB_MODERATION_NO_DEFAULT_LIST=1",
                   "WSHUB_SERVICE_MAX_SUBSCRIPTIONS=100000",
                   "WSHUB_SERVICE_DEFAULT_POLICY=deny",
                   "WSHUB_CABLE_ALLOWED_ORIGINS=https://app.example.com",
                   "WSHUB_CABLE_ORIGIN_FAILURE=http403",
                   "WSHUB_CABLE_EVENT_ENVELOPE=flat",
                   "WSHUB_CABLE_PING_INTERVAL_MS=100",
                   "WSHUB_FLOW_CLIENT_IDS= Zm9vYmFy ",
                   "WSHUB_FLOW_ALLOWED_ORIGINS=https://shop.example.com",
                   "WSHUB_FLOW_TOKEN_TTL_MS=1000",
                   "WSHUB_FLOW_IDLE_TIMEOUT_MS=100",
                   "WSHUB_FLOW_REPLY_DELAY_MS=5",
                   "WSHUB_FLOW_BOT_FILE=/etc/wshub/bot.json",
                   "WSHUB_FLOW_HISTORY_LIMIT=0",
                   "WSHUB_FLOW_MAX_TICKETS=1",
                   "WSHUB_FLOW_MAX_HISTORY_BYTES=1024",
                   "WSHUB_FLOW_MAX_HISTORY_TOTAL_BYTES=2048",
                   "WSHUB_FLOW_THREAD_TTL_S=31536000",
                   "WSHUB_BROKER=redis",
                   "WSHUB_REDIS_URL=redis://app:s3cret@redis.internal:6380/2",
                   "WSHUB_BROKER_PREFIX=staging:",
                   "WSHUB_BROKER_RECONNECT_MAX_MS=60000",
                   NULL};
    static const char *const mod[] = {"mod-key-1", "mod-key-2"};
    static const char *const origins[] = {"https://app.example.com"};
    static const char *const ids[] = {"Zm9vYmFy"};
    static const char *const algs[] = {"RS256", "ES384"};
    config_t cfg;

    (void)state;
    load_ok(&cfg, NULL, env);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 9001);
    assert_string_equal(cfg.public_url, "https://hub.example.com");
    assert_int_equal(cfg.workers, 256);
    assert_int_equal(cfg.log_level, LOG_WARN);
    assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
    assert_int_equal(cfg.log_rate_limit_per_s, 0);
    assert_string_equal(cfg.tls_cert, "/etc/wshub/cert.pem");
    assert_string_equal(cfg.tls_key, "/etc/wshub/key.pem");
    assert_int_equal(cfg.max_message_bytes, 125);
    assert_int_equal(cfg.max_queued_bytes, 65536);
    assert_int_equal(cfg.max_connections, 10000);
    assert_int_equal(cfg.http_max_header_bytes, 256);
    assert_int_equal(cfg.http_max_headers, 1000);
    assert_int_equal(cfg.http_max_body_bytes, 0);
    assert_int_equal(cfg.http_request_timeout_ms, 10);
    assert_int_equal(cfg.http_keepalive_timeout_ms, 4294967295u);
    assert_int_equal(cfg.ws_close_timeout_ms, 2500);
    assert_int_equal(cfg.shutdown_timeout_ms, 0);
    assert_false(cfg.echo_enabled);
    assert_string_equal(cfg.jwt_secret, "acceptance-secret");
    assert_string_equal(cfg.auth_public_key, "/etc/wshub/jwt.pub.pem");
    assert_list(&cfg.auth_algorithms, 2, algs);
    assert_string_equal(cfg.auth_issuer, "https://issuer.example.com/");
    assert_string_equal(cfg.auth_audience, "wshub");
    assert_int_equal(cfg.auth_leeway_s, 3600);
    assert_false(cfg.auth_require_exp);
    assert_string_equal(cfg.api_key, "acceptance-api-key");
    assert_list(&cfg.moderation_keys, 2, mod);
    assert_int_equal(cfg.moderation_auth_failure, MODERATION_AUTH_HTTP401);
    assert_true(cfg.moderation_query_key);
    assert_int_equal(cfg.moderation_max_sample_chars, 500);
    assert_int_equal(cfg.moderation_max_in_flight, 7);
    assert_int_equal(cfg.moderation_delay_ms, 250);
    assert_true(cfg.moderation_no_default_list);
    assert_int_equal(cfg.service_max_subscriptions, 100000);
    assert_int_equal(cfg.service_default_policy, SERVICE_POLICY_DENY);
    assert_list(&cfg.cable_allowed_origins, 1, origins);
    assert_int_equal(cfg.cable_origin_failure, CABLE_ORIGIN_HTTP403);
    assert_int_equal(cfg.cable_event_envelope, CABLE_ENVELOPE_FLAT);
    assert_int_equal(cfg.cable_ping_interval_ms, 100);
    assert_list(&cfg.flow_client_ids, 1, ids);
    assert_int_equal(cfg.flow_token_ttl_ms, 1000);
    assert_int_equal(cfg.flow_idle_timeout_ms, 100);
    assert_int_equal(cfg.flow_reply_delay_ms, 5);
    assert_string_equal(cfg.flow_bot_file, "/etc/wshub/bot.json");
    assert_int_equal(cfg.flow_history_limit, 0);
    assert_int_equal(cfg.flow_max_tickets, 1);
    assert_int_equal(cfg.flow_max_history_bytes, 1024);
    assert_int_equal(cfg.flow_max_history_total_bytes, 2048);
    assert_int_equal(cfg.flow_thread_ttl_s, 31536000);
    assert_int_equal(cfg.broker_type, BROKER_REDIS);
    assert_string_equal(cfg.broker_redis_url, "redis://app:s3cret@redis.internal:6380/2");
    assert_string_equal(cfg.broker_prefix, "staging:");
    assert_int_equal(cfg.broker_reconnect_max_ms, 60000);
    assert_null(cfg.source_path);
    config_free(&cfg);
}

/* An empty string variable means unset (NULL), also over a value from the file. */
static void test_empty_strings_unset(void **state)
{
    char *path = write_tmp(state, "{\"tls\": {\"cert\": \"c.pem\", \"key\": \"k.pem\"},"
                                  " \"api\": {\"key\": \"file-key\"},"
                                  " \"public_url\": \"http://file\"}");
    char *env[] = {"WSHUB_TLS_CERT=", "WSHUB_TLS_KEY=", "WSHUB_API_KEY=", "WSHUB_JWT_SECRET=",
                   "WSHUB_PUBLIC_URL=", NULL};
    config_t cfg;

    load_ok(&cfg, path, env);
    assert_null(cfg.tls_cert);
    assert_null(cfg.tls_key);
    assert_null(cfg.api_key);
    assert_null(cfg.jwt_secret);
    assert_string_equal(cfg.public_url, "http://127.0.0.1:8080");
    config_free(&cfg);
    free(path);
}

static void test_bools(void **state)
{
    static const char *const yes[] = {"true", "1", "yes", "on", "TRUE", "On"};
    static const char *const no[] = {"false", "0", "no", "off", "False", "NO"};
    char var[64];
    char *env[] = {var, NULL};
    config_t cfg;

    (void)state;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        snprintf(var, sizeof var, "WSHUB_ECHO_ENABLED=%s", no[i]);
        load_ok(&cfg, NULL, env);
        assert_false(cfg.echo_enabled);
        config_free(&cfg);
        snprintf(var, sizeof var, "WSHUB_ECHO_ENABLED=%s", yes[i]);
        load_ok(&cfg, NULL, env);
        assert_true(cfg.echo_enabled);
        config_free(&cfg);
    }
}

/* ---- listen ---------------------------------------------------------------------- */

static void test_listen_valid(void **state)
{
    static const struct {
        const char *listen, *host;
        int port;
        const char *url;
    } cases[] = {
        {"0.0.0.0:1", "0.0.0.0", 1, "http://0.0.0.0:1"},
        {"[::1]:8080", "::1", 8080, "http://[::1]:8080"},
        {"[::]:65535", "::", 65535, "http://[::]:65535"},
        {"[fe80::1%eth0]:80", "fe80::1%eth0", 80, "http://[fe80::1%eth0]:80"},
        {"localhost:18080", "localhost", 18080, "http://localhost:18080"},
        {"wshub-1.example.com:0443", "wshub-1.example.com", 443,
         "http://wshub-1.example.com:443"},
    };
    char var[64], json[96];
    char *env[] = {var, NULL};
    config_t cfg;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path;

        snprintf(var, sizeof var, "WSHUB_LISTEN=%s", cases[i].listen);
        load_ok(&cfg, NULL, env);
        assert_string_equal(cfg.listen_host, cases[i].host);
        assert_int_equal(cfg.listen_port, cases[i].port);
        assert_string_equal(cfg.public_url, cases[i].url);
        config_free(&cfg);

        snprintf(json, sizeof json, "{\"listen\": \"%s\"}", cases[i].listen);
        path = write_tmp(state, json);
        load_ok(&cfg, path, no_env);
        assert_string_equal(cfg.listen_host, cases[i].host);
        assert_int_equal(cfg.listen_port, cases[i].port);
        config_free(&cfg);
        free(path);
    }
}

static void test_listen_invalid(void **state)
{
    static const char *const bad[] = {
        "",         ":80",       "host",           "host:",       "host:0",
        "host:65536", "host:-1", "host:+80",       "host:80x",    "host: 80",
        "::1:80",   "[::1]80",   "[::1]:",         "[]:80",       "[zz]:80",
        "[::1:80",  "ho st:80",  "host/x:80",      "127.0.0.1:99999999999999999999999",
    };
    char var[96], json[128];
    char *env[] = {var, NULL};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(var, sizeof var, "WSHUB_LISTEN=%s", bad[i]);
        load_fails(NULL, env, "WSHUB_LISTEN (listen): expected host:port", NULL);
        snprintf(json, sizeof json, "{\"listen\": \"%s\"}", bad[i]);
        json_fails(state, json, "listen: expected host:port", NULL);
    }
    env_message("WSHUB_LISTEN=host:0",
                "WSHUB_LISTEN (listen): expected host:port with a port from 1 to 65535 "
                "(IPv6 as [::1]:8080), got \"host:0\"");
    json_fails(state, "{\"listen\": 8080}", "listen: expected", "got 8080");
}

/* ---- string lists ---------------------------------------------------------------- */

static void test_string_lists(void **state)
{
    static const char *const abc[] = {"a", "b", "c"};
    static const char *const spaced[] = {"x y"};
    char var[64];
    char *env[] = {var, NULL};
    char *path;
    config_t cfg;

    snprintf(var, sizeof var, "WSHUB_CABLE_ALLOWED_ORIGINS= a , ,b,,\tc ");
    load_ok(&cfg, NULL, env);
    assert_list(&cfg.cable_allowed_origins, 3, abc);
    config_free(&cfg);

    snprintf(var, sizeof var, "WSHUB_CABLE_ALLOWED_ORIGINS= , ,, ");
    load_ok(&cfg, NULL, env);
    assert_list(&cfg.cable_allowed_origins, 0, NULL);
    config_free(&cfg);

    snprintf(var, sizeof var, "WSHUB_FLOW_CLIENT_IDS=x y");
    load_ok(&cfg, NULL, env);
    assert_list(&cfg.flow_client_ids, 1, spaced);
    config_free(&cfg);

    path = write_tmp(state, "{\"cable\": {\"allowed_origins\": [\"a\", \"b\", \"c\"]},"
                            " \"flow\": {\"client_ids\": []}}");
    load_ok(&cfg, path, no_env);
    assert_list(&cfg.cable_allowed_origins, 3, abc);
    assert_list(&cfg.flow_client_ids, 0, NULL);
    config_free(&cfg);
    free(path);

    json_fails(state, "{\"cable\": {\"allowed_origins\": \"a,b\"}}",
               "cable.allowed_origins: expected an array of non-empty strings", "got \"a,b\"");
    json_fails(state, "{\"flow\": {\"client_ids\": [\"ok\", 1]}}", "flow.client_ids: expected",
               NULL);
    json_fails(state, "{\"flow\": {\"client_ids\": [\"\"]}}", "flow.client_ids: expected", NULL);
    json_fails(state, "{\"flow\": {\"client_ids\": null}}", "flow.client_ids: expected", NULL);
}

/* ---- errors ---------------------------------------------------------------------- */

static void test_env_errors(void **state)
{
    static const struct {
        const char *assignment, *key;
    } cases[] = {
        {"WSHUB_WORKERS=x", "workers"},
        {"WSHUB_WORKERS=", "workers"},
        {"WSHUB_WORKERS=257", "workers"},
        {"WSHUB_WORKERS=-1", "workers"},
        {"WSHUB_WORKERS= 1", "workers"},
        {"WSHUB_WORKERS=1x", "workers"},
        {"WSHUB_WORKERS=99999999999999999999", "workers"},
        {"WSHUB_LOG_LEVEL=verbose", "log.level"},
        {"WSHUB_LOG_FORMAT=xml", "log.format"},
        {"WSHUB_LOG_RATE_LIMIT_PER_S=-1", "log.rate_limit_per_s"},
        {"WSHUB_LIMITS_MAX_MESSAGE_BYTES=124", "limits.max_message_bytes"},
        {"WSHUB_LIMITS_MAX_MESSAGE_BYTES=-5", "limits.max_message_bytes"},
        {"WSHUB_LIMITS_MAX_MESSAGE_BYTES=+500", "limits.max_message_bytes"},
        {"WSHUB_LIMITS_MAX_MESSAGE_BYTES=0x1000", "limits.max_message_bytes"},
        {"WSHUB_LIMITS_MAX_QUEUED_BYTES=65535", "limits.max_queued_bytes"},
        {"WSHUB_LIMITS_MAX_CONNECTIONS=18446744073709551616", "limits.max_connections"},
        {"WSHUB_HTTP_MAX_HEADER_BYTES=255", "http.max_header_bytes"},
        {"WSHUB_HTTP_MAX_HEADERS=0", "http.max_headers"},
        {"WSHUB_HTTP_MAX_HEADERS=1001", "http.max_headers"},
        {"WSHUB_HTTP_MAX_BODY_BYTES=1MB", "http.max_body_bytes"},
        {"WSHUB_HTTP_REQUEST_TIMEOUT_MS=9", "http.request_timeout_ms"},
        {"WSHUB_HTTP_KEEPALIVE_TIMEOUT_MS=4294967296", "http.keepalive_timeout_ms"},
        {"WSHUB_WEBSOCKET_CLOSE_TIMEOUT_MS=5s", "websocket.close_timeout_ms"},
        {"WSHUB_SHUTDOWN_TIMEOUT_MS=-1", "shutdown.timeout_ms"},
        {"WSHUB_ECHO_ENABLED=maybe", "echo.enabled"},
        {"WSHUB_ECHO_ENABLED=", "echo.enabled"},
        {"WSHUB_AUTH_ALGORITHMS=none", "auth.algorithms"},
        {"WSHUB_AUTH_ALGORITHMS=HS256,PS256", "auth.algorithms"},
        {"WSHUB_AUTH_ALGORITHMS=HS256 RS256", "auth.algorithms"},
        {"WSHUB_AUTH_LEEWAY_S=3601", "auth.leeway_s"},
        {"WSHUB_AUTH_LEEWAY_S=-1", "auth.leeway_s"},
        {"WSHUB_AUTH_REQUIRE_EXP=sometimes", "auth.require_exp"},
        {"WSHUB_SERVICE_MAX_SUBSCRIPTIONS=0", "service.max_subscriptions"},
        {"WSHUB_SERVICE_MAX_SUBSCRIPTIONS=100001", "service.max_subscriptions"},
        {"WSHUB_SERVICE_DEFAULT_POLICY=open", "service.default_policy"},
        {"WSHUB_SERVICE_DEFAULT_POLICY=", "service.default_policy"},
        {"WSHUB_BROKER=nats", "broker.type"},
        {"WSHUB_BROKER=", "broker.type"},
        {"WSHUB_REDIS_URL=redis://h:0", "broker.redis_url"},
        {"WSHUB_BROKER_PREFIX=", "broker.prefix"},
        {"WSHUB_BROKER_PREFIX=a b", "broker.prefix"},
        {"WSHUB_BROKER_RECONNECT_MAX_MS=99", "broker.reconnect_max_ms"},
        {"WSHUB_BROKER_RECONNECT_MAX_MS=60001", "broker.reconnect_max_ms"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *env[] = {(char *)cases[i].assignment, NULL};
        char name[64];

        snprintf(name, sizeof name, "%.*s (%s): expected",
                 (int)strcspn(cases[i].assignment, "="), cases[i].assignment, cases[i].key);
        load_fails(NULL, env, name, NULL);
    }
    env_message("WSHUB_WORKERS=x",
                "WSHUB_WORKERS (workers): expected an integer from 0 to 256, got \"x\"");
    env_message("WSHUB_LOG_LEVEL=verbose",
                "WSHUB_LOG_LEVEL (log.level): expected one of \"error\", \"warn\", \"info\", "
                "\"debug\", got \"verbose\"");
    env_message("WSHUB_LIMITS_MAX_MESSAGE_BYTES=124",
                "WSHUB_LIMITS_MAX_MESSAGE_BYTES (limits.max_message_bytes): expected an "
                "integer byte count of at least 125, got \"124\"");
    env_message("WSHUB_HTTP_REQUEST_TIMEOUT_MS=9",
                "WSHUB_HTTP_REQUEST_TIMEOUT_MS (http.request_timeout_ms): expected an integer "
                "number of milliseconds from 10 to 4294967295, got \"9\"");
    env_message("WSHUB_ECHO_ENABLED=maybe",
                "WSHUB_ECHO_ENABLED (echo.enabled): expected a boolean (true, false, 1, 0, yes, "
                "no, on, off), got \"maybe\"");
    env_message("WSHUB_AUTH_ALGORITHMS=HS256,none",
                "WSHUB_AUTH_ALGORITHMS (auth.algorithms): expected a comma-separated list of "
                "\"HS256\", \"HS384\", \"HS512\", \"RS256\", \"RS384\", \"RS512\", \"ES256\", "
                "\"ES384\", \"ES512\", got \"HS256,none\"");
    env_message("WSHUB_SERVICE_DEFAULT_POLICY=open",
                "WSHUB_SERVICE_DEFAULT_POLICY (service.default_policy): expected one of "
                "\"allow\", \"deny\", got \"open\"");
}

/* ---- broker ---------------------------------------------------------------------- */

static void test_redis_url_good(void **state)
{
    static const struct {
        const char *url, *host;
        int port, db;
        const char *user, *password;
    } cases[] = {
        {"redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0, "", ""},
        {"redis://localhost:6379", "localhost", 6379, 0, "", ""},
        {"redis://localhost:6379/", "localhost", 6379, 0, "", ""},
        {"REDIS://Redis-1.example.com:1/15", "Redis-1.example.com", 1, 15, "", ""},
        {"redis://h:65535/7", "h", 65535, 7, "", ""},
        {"redis://[::1]:6380/3", "::1", 6380, 3, "", ""},
        {"redis://:pw@h:6379", "h", 6379, 0, "", "pw"},
        {"redis://app:pw@h:6379/1", "h", 6379, 1, "app", "pw"},
        {"redis://app:p:w@h:6379", "h", 6379, 0, "app", "p:w"},        /* first ':' splits */
        {"redis://app:p@w/x@h:6379", "h", 6379, 0, "app", "p@w/x"},    /* last '@' ends it */
        {"redis://a%40b:%2F%3a%25@h:6379", "h", 6379, 0, "a@b", "/:%"}, /* escapes decoded */
    };
    config_redis_url_t u;
    char err[128];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&u, 0x55, sizeof u);
        if (config_redis_url_parse(cases[i].url, &u, err, sizeof err) != 0)
            fail_msg("%s refused: %s", cases[i].url, err);
        assert_string_equal(err, "");
        assert_string_equal(u.host, cases[i].host);
        assert_int_equal(u.port, cases[i].port);
        assert_int_equal(u.db, cases[i].db);
        assert_string_equal(u.user, cases[i].user);
        assert_string_equal(u.password, cases[i].password);
    }
    /* Validation only: no output, no error buffer. */
    assert_int_equal(config_redis_url_parse("redis://h:1", NULL, NULL, 0), 0);
}

static void test_redis_url_bad(void **state)
{
    static const struct {
        const char *url, *why;
    } cases[] = {
        {"", "empty"},
        {"localhost:6379", "must start with redis://"},
        {"http://h:6379", "must start with redis://"},
        {"rediss://h:6379", "TLS"},
        {"redis://", "host is missing"},
        {"redis://:6379", "host is missing"},
        {"redis://h", "port is missing"},
        {"redis://h/0", "port is missing"},
        {"redis://h:", "port must be"},
        {"redis://h:0", "port must be"},
        {"redis://h:65536", "port must be"},
        {"redis://h:-1", "port must be"},
        {"redis://h:+80", "port must be"},
        {"redis://h:99999999999", "port must be"},
        {"redis://h:6379x", "port must be"},
        {"redis://h:6379?db=1", "port must be"},
        {"redis://h:6379/16", "database"},
        {"redis://h:6379/-1", "database"},
        {"redis://h:6379/a", "database"},
        {"redis://h:6379/1/2", "database"},
        {"redis://h o:6379", "space"},
        {"redis://h:6379/0\n", "control"},
        {"redis://ho$t:6379", "host may hold"},
        {"redis://[::1:6379", "IPv6"},
        {"redis://[zz]:6379", "IPv6"},
        {"redis://[::1]6379", "port is missing"},
        {"redis://pw@h:6379", "password is missing"},
        {"redis://u:@h:6379", "password is empty"},
        {"redis://:@h:6379", "password is empty"},
        {"redis://u:p%zz@h:6379", "password is too long or has a bad"},
        {"redis://u:p%4@h:6379", "password is too long or has a bad"},
        {"redis://u:p%00@h:6379", "password is too long or has a bad"},
        {"redis://u%2:p@h:6379", "user is too long or has a bad"},
    };
    config_redis_url_t u;
    char err[128], long_url[700];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&u, 0x55, sizeof u);
        assert_int_equal(config_redis_url_parse(cases[i].url, &u, err, sizeof err), -EINVAL);
        if (!strstr(err, cases[i].why))
            fail_msg("%s: error \"%s\" does not say \"%s\"", cases[i].url, err, cases[i].why);
        assert_int_equal(u.port, 0x55555555); /* *out untouched on failure */
    }
    assert_int_equal(config_redis_url_parse(NULL, &u, err, sizeof err), -EINVAL);

    /* Fields that would not fit are refused, not cut. */
    snprintf(long_url, sizeof long_url, "redis://%0300d:6379", 0);
    assert_int_equal(config_redis_url_parse(long_url, &u, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "host is too long"));
    snprintf(long_url, sizeof long_url, "redis://:%0256d@h:6379", 0);
    assert_int_equal(config_redis_url_parse(long_url, &u, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "password is too long"));
    snprintf(long_url, sizeof long_url, "redis://:%0255d@h:6379", 0);
    assert_int_equal(config_redis_url_parse(long_url, &u, err, sizeof err), 0);
    assert_int_equal(strlen(u.password), 255);
    snprintf(long_url, sizeof long_url, "redis://%0128d:p@h:6379", 0);
    assert_int_equal(config_redis_url_parse(long_url, &u, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "user is too long"));
}

static void test_broker_keys(void **state)
{
    char *redis_no_url[] = {"WSHUB_BROKER=redis", "WSHUB_REDIS_URL=", NULL};
    char *memory_no_url[] = {"WSHUB_BROKER=MEMORY", "WSHUB_REDIS_URL=", NULL};
    char *env_wins[] = {"WSHUB_REDIS_URL=redis://env:6379", NULL};
    char prefix64[96];
    int n;
    char *long_prefix[] = {prefix64, NULL};
    char *path;
    config_t cfg;

    /* The file layer, and the environment over it. */
    path = write_tmp(state, "{\"broker\": {\"type\": \"redis\", \"redis_url\":"
                            " \"redis://:pw@[::1]:7000/4\", \"prefix\": \"t{1}:\","
                            " \"reconnect_max_ms\": 100}}");
    load_ok(&cfg, path, no_env);
    assert_int_equal(cfg.broker_type, BROKER_REDIS);
    assert_string_equal(cfg.broker_redis_url, "redis://:pw@[::1]:7000/4");
    assert_string_equal(cfg.broker_prefix, "t{1}:");
    assert_int_equal(cfg.broker_reconnect_max_ms, 100);
    config_free(&cfg);
    load_ok(&cfg, path, env_wins);
    assert_string_equal(cfg.broker_redis_url, "redis://env:6379");
    config_free(&cfg);
    free(path);

    /* The URL may be unset while no Redis is used, not with broker.type redis. */
    load_ok(&cfg, NULL, memory_no_url);
    assert_int_equal(cfg.broker_type, BROKER_MEMORY);
    assert_null(cfg.broker_redis_url);
    config_free(&cfg);
    load_fails(NULL, redis_no_url,
               "broker.redis_url (WSHUB_REDIS_URL): required when broker.type is redis", NULL);
    json_fails(state, "{\"broker\": {\"type\": \"redis\", \"redis_url\": null}}",
               "broker.redis_url (WSHUB_REDIS_URL): required", NULL);

    /* A bad URL is refused even with the memory broker: a typo shows before the switch. The
     * message says why and shows the URL with its password masked. */
    env_message("WSHUB_REDIS_URL=redis://app:hunter2@h:0",
                "WSHUB_REDIS_URL (broker.redis_url): expected redis://[user:password@]host:port"
                "[/db] or null, got \"redis://app:***@h:0\": the port must be from 1 to 65535");
    env_message("WSHUB_REDIS_URL=redis://hunter2@h:1",
                "WSHUB_REDIS_URL (broker.redis_url): expected redis://[user:password@]host:port"
                "[/db] or null, got \"redis://***@h:1\": a password is missing: "
                "redis://[user]:password@host:port");
    env_message("WSHUB_REDIS_URL=hunter2",
                "WSHUB_REDIS_URL (broker.redis_url): expected redis://[user:password@]host:port"
                "[/db] or null, got a value that is not shown: it must start with redis://");
    env_message("WSHUB_REDIS_URL=redis://h:6379/16",
                "WSHUB_REDIS_URL (broker.redis_url): expected redis://[user:password@]host:port"
                "[/db] or null, got \"redis://h:6379/16\": the database must be a number from 0 "
                "to 15");
    json_message(state, "{\"broker\": {\"redis_url\": \"redis://:hunter2@h:6379/99\"}}",
                 "broker.redis_url: expected redis://[user:password@]host:port[/db] or null, got "
                 "\"redis://:***@h:6379/99\": the database must be a number from 0 to 15");
    json_message(state, "{\"broker\": {\"redis_url\": [\"redis://:hunter2@h:1\"]}}",
                 "broker.redis_url: expected redis://[user:password@]host:port[/db] or null, got "
                 "an array");
    json_fails(state, "{\"broker\": {\"type\": \"nats\"}}",
               "broker.type: expected one of \"memory\", \"redis\", got \"nats\"", NULL);

    /* The prefix: 1-64 bytes, no space or control character, never null. */
    n = snprintf(prefix64, sizeof prefix64, "WSHUB_BROKER_PREFIX=");
    memset(prefix64 + n, 'p', 64);
    prefix64[n + 64] = '\0';
    load_ok(&cfg, NULL, long_prefix);
    assert_int_equal(strlen(cfg.broker_prefix), 64);
    config_free(&cfg);
    strcat(prefix64, "p");
    load_fails(NULL, long_prefix, "WSHUB_BROKER_PREFIX (broker.prefix): expected a string of 1 "
                                  "to 64 bytes without spaces or control characters",
               "65 bytes");
    env_message("WSHUB_BROKER_PREFIX=my app:",
                "WSHUB_BROKER_PREFIX (broker.prefix): expected a string of 1 to 64 bytes without "
                "spaces or control characters, got \"my app:\": a space or control character at "
                "byte 2");
    env_message("WSHUB_BROKER_PREFIX=",
                "WSHUB_BROKER_PREFIX (broker.prefix): expected a string of 1 to 64 bytes without "
                "spaces or control characters, got \"\"");
    json_message(state, "{\"broker\": {\"prefix\": null}}",
                 "broker.prefix: expected a string of 1 to 64 bytes without spaces or control "
                 "characters, got null");
    json_fails(state, "{\"broker\": {\"prefix\": \"a\\tb\"}}", "broker.prefix: expected",
               "control character at byte 1");
    json_fails(state, "{\"broker\": {\"prefix\": 5}}", "broker.prefix: expected", "got 5");

    /* The backoff cap: T_MS with an upper bound. */
    env_message("WSHUB_BROKER_RECONNECT_MAX_MS=60001",
                "WSHUB_BROKER_RECONNECT_MAX_MS (broker.reconnect_max_ms): expected an integer "
                "number of milliseconds from 100 to 60000, got \"60001\"");
    json_fails(state, "{\"broker\": {\"reconnect_max_ms\": 99}}",
               "broker.reconnect_max_ms: expected an integer number of milliseconds from 100 to "
               "60000, got 99", NULL);
    json_fails(state, "{\"broker\": {\"reconnect_max_ms\": \"5000\"}}",
               "broker.reconnect_max_ms: expected", NULL);
}

static void test_wrong_types(void **state)
{
    static const struct {
        const char *json, *key;
    } cases[] = {
        {"{\"workers\": 1.5}", "workers: expected an integer from 0 to 256, got 1.5"},
        {"{\"workers\": true}", "workers: expected an integer from 0 to 256, got true"},
        {"{\"workers\": \"4\"}", "workers: expected an integer from 0 to 256, got \"4\""},
        {"{\"workers\": 300}", "workers: expected"},
        {"{\"workers\": null}", "workers: expected"},
        {"{\"public_url\": []}", "public_url: expected a string or null, got []"},
        {"{\"log\": {\"level\": 3}}", "log.level: expected one of"},
        {"{\"log\": {\"format\": \"xml\"}}", "log.format: expected one of \"human\", \"json\""},
        {"{\"tls\": {\"cert\": 5}}", "tls.cert: expected a string or null, got 5"},
        {"{\"limits\": {\"max_message_bytes\": -1}}", "limits.max_message_bytes: expected"},
        {"{\"limits\": {\"max_queued_bytes\": 100}}", "limits.max_queued_bytes: expected"},
        {"{\"limits\": {\"max_connections\": \"10\"}}", "limits.max_connections: expected"},
        {"{\"http\": {\"max_header_bytes\": 1e4}}", "http.max_header_bytes: expected"},
        {"{\"http\": {\"request_timeout_ms\": 5}}", "http.request_timeout_ms: expected"},
        {"{\"http\": {\"keepalive_timeout_ms\": 4294967296}}",
         "http.keepalive_timeout_ms: expected"},
        {"{\"websocket\": {\"close_timeout_ms\": {}}}", "websocket.close_timeout_ms: expected"},
        {"{\"shutdown\": {\"timeout_ms\": -1}}", "shutdown.timeout_ms: expected"},
        {"{\"echo\": {\"enabled\": \"yes\"}}", "echo.enabled: expected true or false, got \"yes\""},
        {"{\"echo\": {\"enabled\": 1}}", "echo.enabled: expected true or false"},
        {"{\"api\": {\"key\": true}}", "api.key: expected a string or null"},
        {"{\"log\": \"info\"}", "log: expected an object, got \"info\""},
        {"{\"http\": []}", "http: expected an object, got []"},
        {"{\"auth\": {\"public_key\": 1}}", "auth.public_key: expected a string or null"},
        {"{\"auth\": {\"algorithms\": \"HS256\"}}", "auth.algorithms: expected an array of"},
        {"{\"auth\": {\"algorithms\": [\"HS256\", null]}}", "auth.algorithms: expected"},
        {"{\"auth\": {\"algorithms\": [\"\"]}}", "auth.algorithms: expected"},
        {"{\"auth\": {\"algorithms\": [\"none\"]}}", "auth.algorithms: expected"},
        {"{\"auth\": {\"algorithms\": [\"HS256,RS256\"]}}", "auth.algorithms: expected"},
        {"{\"auth\": {\"issuer\": [\"a\"]}}", "auth.issuer: expected a string or null"},
        {"{\"auth\": {\"audience\": 5}}", "auth.audience: expected a string or null"},
        {"{\"auth\": {\"leeway_s\": \"5\"}}", "auth.leeway_s: expected an integer from 0 to 3600"},
        {"{\"auth\": {\"leeway_s\": 3601}}", "auth.leeway_s: expected"},
        {"{\"auth\": {\"require_exp\": 0}}", "auth.require_exp: expected true or false"},
        {"{\"service\": {\"max_subscriptions\": 0}}",
         "service.max_subscriptions: expected an integer from 1 to 100000, got 0"},
        {"{\"service\": {\"default_policy\": 1}}", "service.default_policy: expected one of"},
        {"{\"service\": {\"default_policy\": \"block\"}}",
         "service.default_policy: expected one of \"allow\", \"deny\", got \"block\""},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        json_fails(state, cases[i].json, cases[i].key, NULL);
    json_message(state, "{\"http\": {\"max_headers\": \"abc\"}}",
                 "http.max_headers: expected an integer from 1 to 1000, got \"abc\"");
    json_message(state, "{\"auth\": {\"algorithms\": [\"RS256\", \"none\"]}}",
                 "auth.algorithms: expected an array of \"HS256\", \"HS384\", \"HS512\", "
                 "\"RS256\", \"RS384\", \"RS512\", \"ES256\", \"ES384\", \"ES512\", got "
                 "[\"RS256\",\"none\"]");

    /* Secrets are named, never shown. */
    json_message(state, "{\"moderation\": {\"keys\": [\"secret-key-1\", 2]}}",
                 "moderation.keys: expected an array of non-empty strings, got an array");
    json_message(state, "{\"auth\": {\"jwt_secret\": 123456789}}",
                 "auth.jwt_secret: expected a string or null, got an integer");

    /* A long value is cut. */
    json_fails(state, "{\"workers\": \"0123456789012345678901234567890123456789"
                      "0123456789012345678901234567890123456789\"}",
               "workers: expected", "...");
}

static void test_unknown_keys(void **state)
{
    char *path;
    config_t cfg;

    json_message(state, "{\"http\": {\"max_hedaers\": 64}}", "unknown key: http.max_hedaers");
    json_message(state, "{\"nope\": 1}", "unknown key: nope");
    json_message(state, "{\"log\": {\"level\": \"info\", \"colour\": true}}",
                 "unknown key: log.colour");
    json_message(state, "{\"http\": {\"limits\": {}}}", "unknown key: http.limits");
    json_message(state, "{\"workers\": 1, \"limits\": {\"max_connections\": 1, \"x\": 2}}",
                 "unknown key: limits.x");
    json_fails(state, "{\"http.max_headers\": 64}", "unknown key: \"http.max_headers\"", NULL);
    json_fails(state, "{\"Workers\": 1}", "unknown key: Workers", NULL);

    /* Comments at any level, whatever their value; an empty file object is fine. */
    path = write_tmp(state, "{\"//\": \"top\", \"//x\": {\"a\": [1]},\n"
                            " \"http\": {\"//max_headers\": {\"anything\": []},\n"
                            "          \"max_headers\": 10, \"//\": null}}");
    load_ok(&cfg, path, no_env);
    assert_int_equal(cfg.http_max_headers, 10);
    config_free(&cfg);
    free(path);
    path = write_tmp(state, "{}");
    load_ok(&cfg, path, no_env);
    assert_string_equal(cfg.source_path, path);
    config_free(&cfg);
    free(path);
}

static void test_file_errors(void **state)
{
    fixture_t *fx = *state;
    char missing[128], *path, expect[192];
    config_t cfg;
    char err[256];

    snprintf(missing, sizeof missing, "%s/does-not-exist.json", fx->dir);
    load_fails(missing, no_env, missing, "No such file");

    path = write_tmp(state, "{\n  \"workers\": 1,\n  oops\n}\n");
    snprintf(expect, sizeof expect, "%s: line 3, column ", path);
    assert_true(config_load(&cfg, path, no_env, err, sizeof err) < 0);
    assert_memory_equal(err, expect, strlen(expect));
    assert_zeroed(&cfg);
    free(path);

    json_fails(state, "[1, 2]", "top level must be an object", NULL);
    json_fails(state, "", "line 1", NULL);
    json_fails(state, "{\"workers\": 1, \"workers\": 2}", "duplicate", NULL);
    json_fails(state, "{\"workers\": 1} trailing", "line 1", NULL);
}

static void test_tls_pair(void **state)
{
    char *cert_only[] = {"WSHUB_TLS_CERT=c.pem", NULL};
    char *key_only[] = {"WSHUB_TLS_KEY=k.pem", NULL};
    char *both[] = {"WSHUB_TLS_CERT=c.pem", "WSHUB_TLS_KEY=k.pem", "WSHUB_LISTEN=[::]:8443",
                    NULL};
    config_t cfg;

    load_fails(NULL, cert_only, "tls.key", "WSHUB_TLS_KEY");
    load_fails(NULL, key_only, "tls.cert", "WSHUB_TLS_CERT");
    env_message("WSHUB_TLS_CERT=c.pem", "tls.key (WSHUB_TLS_KEY): required when tls.cert is set");
    json_fails(state, "{\"tls\": {\"cert\": \"c.pem\"}}", "tls.key", NULL);
    json_fails(state, "{\"tls\": {\"cert\": \"c.pem\", \"key\": null}}", "tls.key", NULL);
    json_fails(state, "{\"tls\": {\"key\": \"k.pem\"}}", "tls.cert", NULL);

    load_ok(&cfg, NULL, both);
    assert_string_equal(cfg.tls_cert, "c.pem");
    assert_string_equal(cfg.tls_key, "k.pem");
    assert_string_equal(cfg.public_url, "https://[::]:8443");
    config_free(&cfg);
}

/* auth.algorithms: names in any case are stored canonically; the key decides the family. */
static void test_auth_algorithms(void **state)
{
    static const char *const hs[] = {"HS256", "HS512"};
    static const char *const pk[] = {"RS512", "ES256", "ES384"};
    char *secret_env[] = {"WSHUB_AUTH_ALGORITHMS=hs256,Hs512", NULL};
    char *key_env[] = {"WSHUB_AUTH_PUBLIC_KEY=/k.pem", "WSHUB_AUTH_ALGORITHMS=rs512,ES256,es384",
                       NULL};
    char *key_only[] = {"WSHUB_AUTH_PUBLIC_KEY=/k.pem", NULL};
    char *hs_with_key[] = {"WSHUB_AUTH_PUBLIC_KEY=/k.pem", "WSHUB_AUTH_ALGORITHMS=RS256,HS256",
                           NULL};
    char *rs_without_key[] = {"WSHUB_JWT_SECRET=s", "WSHUB_AUTH_ALGORITHMS=HS256,RS384", NULL};
    char *es_without_key[] = {"WSHUB_AUTH_ALGORITHMS=ES512", NULL};
    char *key_unset[] = {"WSHUB_AUTH_PUBLIC_KEY=", "WSHUB_AUTH_ALGORITHMS=RS256", NULL};
    char *path;
    config_t cfg;

    load_ok(&cfg, NULL, secret_env);
    assert_list(&cfg.auth_algorithms, 2, hs);
    assert_null(cfg.auth_public_key);
    config_free(&cfg);

    load_ok(&cfg, NULL, key_env);
    assert_list(&cfg.auth_algorithms, 3, pk);
    assert_string_equal(cfg.auth_public_key, "/k.pem");
    config_free(&cfg);

    /* An empty list is the default of the key kind (applied by auth). */
    load_ok(&cfg, NULL, key_only);
    assert_list(&cfg.auth_algorithms, 0, NULL);
    config_free(&cfg);

    path = write_tmp(state, "{\"auth\": {\"public_key\": \"/k.pem\", \"issuer\": \"iss\","
                            " \"audience\": \"aud\", \"algorithms\": [\"es512\"],"
                            " \"leeway_s\": 0, \"require_exp\": false},"
                            " \"service\": {\"max_subscriptions\": 1,"
                            " \"default_policy\": \"DENY\"}}");
    load_ok(&cfg, path, no_env);
    assert_string_equal(cfg.auth_public_key, "/k.pem");
    assert_string_equal(cfg.auth_algorithms.items[0], "ES512");
    assert_string_equal(cfg.auth_issuer, "iss");
    assert_string_equal(cfg.auth_audience, "aud");
    assert_int_equal(cfg.auth_leeway_s, 0);
    assert_false(cfg.auth_require_exp);
    assert_int_equal(cfg.service_max_subscriptions, 1);
    assert_int_equal(cfg.service_default_policy, SERVICE_POLICY_DENY);
    config_free(&cfg);
    free(path);

    /* Cross-key rules, named after auth.algorithms. */
    env_message("WSHUB_AUTH_ALGORITHMS=ES512",
                "auth.algorithms: ES512 requires auth.public_key (WSHUB_AUTH_PUBLIC_KEY)");
    load_fails(NULL, hs_with_key, "auth.algorithms: HS256 (HMAC) cannot be used with "
                                  "auth.public_key", NULL);
    load_fails(NULL, rs_without_key, "auth.algorithms: RS384 requires auth.public_key", NULL);
    load_fails(NULL, es_without_key, "auth.algorithms", NULL);
    load_fails(NULL, key_unset, "auth.algorithms: RS256 requires auth.public_key", NULL);
    json_fails(state, "{\"auth\": {\"public_key\": \"/k.pem\", \"algorithms\": [\"HS384\"]}}",
               "auth.algorithms: HS384 (HMAC) cannot be used with auth.public_key", NULL);
    json_fails(state, "{\"auth\": {\"algorithms\": [\"RS256\"]}}",
               "auth.algorithms: RS256 requires auth.public_key", NULL);
}

/* Failures after strings and lists were allocated leave *out zeroed (LSan checks the rest). */
static void test_error_paths_free_everything(void **state)
{
    char *path = write_tmp(state, "{\"listen\": \"[::1]:1\", \"public_url\": \"http://x\",\n"
                                  " \"tls\": {\"cert\": \"c\", \"key\": \"k\"},\n"
                                  " \"moderation\": {\"keys\": [\"a\", \"b\"]},\n"
                                  " \"cable\": {\"allowed_origins\": [\"o\"]},\n"
                                  " \"api\": {\"key\": \"k\"}, \"auth\": {\"jwt_secret\": \"s\"}}");
    char *late_env[] = {"WSHUB_FLOW_CLIENT_IDS=a,b", "WSHUB_API_KEY=x", "WSHUB_LISTEN=bad",
                        NULL};
    char *late_check[] = {"WSHUB_TLS_KEY=", "WSHUB_MODERATION_KEYS=m", NULL};
    char *bad_file = write_tmp(state, "{\"moderation\": {\"keys\": [\"a\", \"b\"]},"
                                      " \"flow\": {\"client_ids\": [\"c\", 7]}}");
    config_t cfg;
    char small[8];

    load_fails(path, late_env, "WSHUB_LISTEN", NULL);
    load_fails(path, late_check, "tls.key", NULL);
    load_fails(bad_file, no_env, "flow.client_ids", NULL);

    /* A short buffer is cut and terminated; no buffer at all is allowed. */
    memset(small, 'x', sizeof small);
    assert_true(config_load(&cfg, bad_file, no_env, small, sizeof small) < 0);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_true(config_load(&cfg, bad_file, no_env, NULL, 0) < 0);
    assert_zeroed(&cfg);

    /* A config_t can be loaded again after config_free (the SIGHUP path). */
    load_ok(&cfg, path, no_env);
    config_free(&cfg);
    load_ok(&cfg, path, no_env);
    config_free(&cfg);
    free(path);
    free(bad_file);
}

/* GET /api/info's configuration: every key by its path, secrets never shown. */
static void test_dump_masks_secrets(void **state)
{
    (void)state;
    char *env[] = {"WSHUB_API_KEY=api-key-secret-1", "WSHUB_JWT_SECRET=jwt-secret-2",
                   "WSHUB_MODERATION_KEYS=mod-secret-3,mod-secret-4",
                   "WSHUB_REDIS_URL=redis://u:redis-pass-5@127.0.0.1:6390/2", "WSHUB_WORKERS=3",
                   "WSHUB_LISTEN=[::1]:8181", NULL};
    config_t cfg;
    size_t n;
    load_ok(&cfg, NULL, env);
    json_t *d = config_dump(&cfg);
    assert_non_null(d);
    config_keys(&n);
    assert_int_equal(json_object_size(d), n);
    char *text = json_dumps(d, JSON_COMPACT);
    assert_non_null(text);
    assert_null(strstr(text, "-secret-"));
    assert_null(strstr(text, "pass-5"));
    assert_string_equal(json_string_value(json_object_get(d, "api.key")), "***");
    assert_string_equal(json_string_value(json_object_get(d, "auth.jwt_secret")), "***");
    assert_int_equal(json_array_size(json_object_get(d, "moderation.keys")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(d, "moderation.keys"), 0)), "***");
    assert_string_equal(json_string_value(json_object_get(d, "broker.redis_url")), "redis://u:***@127.0.0.1:6390/2");
    assert_int_equal(json_integer_value(json_object_get(d, "workers")), 3);
    assert_string_equal(json_string_value(json_object_get(d, "listen")), "[::1]:8181");
    assert_string_equal(json_string_value(json_object_get(d, "log.level")), "info");
    assert_true(json_is_true(json_object_get(d, "mock.enabled")));
    assert_true(json_is_null(json_object_get(d, "tls.cert")));
    free(text);
    json_decref(d);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_example_equals_defaults),
        cmocka_unit_test(test_key_table),
        cmocka_unit_test(test_parse_log_level),
        cmocka_unit_test(test_env_overrides_file),
        cmocka_unit_test(test_env_every_key),
        cmocka_unit_test(test_empty_strings_unset),
        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_listen_valid),
        cmocka_unit_test(test_listen_invalid),
        cmocka_unit_test(test_string_lists),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_tls_pair),
        cmocka_unit_test(test_auth_algorithms),
        cmocka_unit_test(test_error_paths_free_everything),
        cmocka_unit_test(test_redis_url_good),
        cmocka_unit_test(test_redis_url_bad),
        cmocka_unit_test(test_broker_keys),
        cmocka_unit_test(test_dump_masks_secrets),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
