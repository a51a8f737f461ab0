/*
 * mock/info.c — GET /api/info, for the web console (issue 16) and scripts: the version, when
 * the process started and its uptime, the workers, the broker and its link, and the
 * configuration in force with its secrets masked (config_dump.h).
 *
 * It needs the API key but not mock.enabled: what it tells (no secret) is an operator's, in
 * production as much as on a developer's machine; the console reads it with the other data.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "wshub/api.h"
#include "wshub/config_dump.h"
#include "wshub/live.h"
#include "wshub/server.h"
#include "wshub/version.h"

/* When the process started: taken as the binary is loaded, before main(). */
static struct timeval started_wall;
static struct timespec started_mono;

__attribute__((constructor)) static void info_started(void)
{
    gettimeofday(&started_wall, NULL);
    clock_gettime(CLOCK_MONOTONIC, &started_mono);
}

static json_t *started_at(void)
{
    struct tm tm;
    char buf[40];
    time_t t = started_wall.tv_sec;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(started_wall.tv_usec / 1000));
    return json_string(buf);
}

/* Whole seconds since the start. */
static json_int_t uptime_s(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (json_int_t)(now.tv_sec - started_mono.tv_sec - (now.tv_nsec < started_mono.tv_nsec));
}

void mock_info(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    const config_t *cfg = &dialect_live(x)->cfg;
    if (!api_authorized(req, x)) {
        mock_error(out, 401, "unauthorized", NULL, "Authorization: Bearer <api.key> is required");
        out->extra = "WWW-Authenticate: Bearer\r\n";
        return;
    }
    if (!mock_method(req, "GET", out))
        return;
    server_t *srv = x->w->srv;
    json_t *conf = config_dump(cfg);
    json_t *body = json_pack("{s:s, s:o, s:I, s:I, s:{s:s, s:b}, s:b, s:s?, s:{s:b, s:b}, s:o?}",
        "version", WSHUB_VERSION, "started_at", started_at(), "uptime_s", uptime_s(),
        "workers", (json_int_t)srv->nworkers,
        "broker", "type", cfg->broker_type == BROKER_REDIS ? "redis" : "memory", "up", dialect_ready(x),
        "mock_enabled", cfg->mock_enabled, "config_file", cfg->source_path,
        /* the public development credentials in force (main.c's banner announces them) */
        "development", "api_key", !cfg->api_key, "jwt_secret", !cfg->jwt_secret && !cfg->auth_public_key,
        "config", conf);
    if (!conf) {
        json_decref(body);
        body = NULL;
    }
    mock_reply_json(out, 200, body);
}
