/*
 * main — the daemon's entry point: arguments, configuration, the listening sockets, the
 * workers, signals (SIGTERM/SIGINT drain and exit 0, SIGHUP reload), and the shutdown order.
 * The main thread runs a small uv loop of its own that only waits for signals.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>

#include <uv.h>

#include "wshub/api.h"
#include "wshub/auth.h"
#include "wshub/broker.h"
#include "wshub/config.h"
#include "wshub/conn.h"
#include "wshub/dialect.h"
#include "wshub/http.h"
#include "wshub/hub.h"
#include "wshub/log.h"
#include "wshub/scenario.h"
#include "wshub/sdnotify.h"
#include "wshub/server.h"
#include "wshub/sessions.h"
#include "wshub/tls.h"
#include "wshub/token.h"
#include "wshub/version.h"
#include "wshub/worker.h"

#define DEFAULT_CONFIG "config/wshub.json"

extern char **environ;

#define MAX_SCENARIO_FILES 16

typedef struct opts {
    const char *config_path;
    int check_config;
    int insecure_dev; /* --insecure-dev: the development credentials on a non-loopback address */
    const char *scenarios[MAX_SCENARIO_FILES]; /* --scenario FILE, started once listening */
    int nscenarios;
} opts_t;

static json_t *scenario_docs[MAX_SCENARIO_FILES]; /* their documents, checked at start */

static server_t srv;
static live_t *configs; /* every configuration loaded so far, newest first (server.h) */
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t log_tick; /* once a second: suppressed log lines (log.h); malloc_trim every TRIM_EVERY_S */
static int stopping;
static int exposed;      /* the listen address is not loopback (decided at start) */
static int insecure_dev; /* --insecure-dev */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: wshubd [-c FILE] [--check-config] [--insecure-dev] [--scenario FILE ...]\n"
            "       wshubd token --sub SUBJECT [--ttl 1h] [--claim key=value ...] [-c FILE]\n"
            "\n"
            "  -c, --config FILE   JSON configuration (default: %s if it exists, else the\n"
            "                      embedded development default on 127.0.0.1:8080)\n"
            "      --check-config  validate the configuration (and TLS files) and exit\n"
            "      --insecure-dev  allow the public development credentials on an address\n"
            "                      other than loopback (refused without it)\n"
            "      --scenario FILE run a mock scenario once listening (README: Mock backend;\n"
            "                      examples in config/scenarios/), up to 16\n"
            "  -h, --help          this text\n"
            "  -V, --version       print the version\n"
            "Every key can be overridden by a WSHUB_* environment variable: see\n"
            "config/wshub.example.json.\n",
            DEFAULT_CONFIG);
}

static const char *pick_config_path(const char *given)
{
    if (given)
        return given;
    return access(DEFAULT_CONFIG, R_OK) == 0 ? DEFAULT_CONFIG : NULL;
}

/* Loads the configuration and what derives from it (the JWT verifier); errors are one
 * line on stderr, or in the log on a reload. */
static live_t *load_config(const char *path, int reload)
{
    live_t *h = calloc(1, sizeof *h);
    char err[512];
    if (!h) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (config_load(&h->cfg, path, environ, err, sizeof err) != 0) {
        free(h);
        h = NULL;
        goto fail;
    }
    if (!(h->auth = auth_verifier_new(&h->cfg, TOKEN_DEV_SECRET, err, sizeof err))) {
        config_free(&h->cfg);
        free(h);
        h = NULL;
        goto fail;
    }
    h->prev = configs;
    configs = h;
    return h;
fail:
    if (reload)
        log_error("reload", "%s", err);
    else
        fprintf(stderr, "wshubd: %s\n", err);
    return NULL;
}

static void free_configs(void)
{
    while (configs) {
        live_t *h = configs;
        configs = h->prev;
        auth_verifier_free(h->auth);
        config_free(&h->cfg);
        free(h);
    }
}

/* ------------------------------------------------------------------ listening sockets */

/* Creates one listening socket with SO_REUSEPORT (DESIGN.md decision 1). */
static int listen_socket(const struct addrinfo *ai, int port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int open_listeners(const config_t *cfg, int *fds, size_t n, int *port_out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int r = getaddrinfo(cfg->listen_host, NULL, &hints, &ai);
    if (r != 0) {
        fprintf(stderr, "wshubd: listen: cannot resolve %s: %s\n", cfg->listen_host, gai_strerror(r));
        return -1;
    }
    int port = cfg->listen_port;
    char err[256];
    for (size_t i = 0; i < n; i++) {
        fds[i] = listen_socket(ai, port, err, sizeof err);
        if (fds[i] < 0) {
            fprintf(stderr, "wshubd: listen: cannot listen on %s:%d: %s\n", cfg->listen_host, port, err);
            while (i--)
                close(fds[i]);
            freeaddrinfo(ai);
            return -1;
        }
        conn_listener_options(fds[i], cfg);
        if (port == 0) /* the first socket picked a port: the others share it */
            port = bound_port(fds[0]);
    }
    freeaddrinfo(ai);
    *port_out = port;
    return 0;
}

/* The kernel grows a process's descriptor table by doubling it, and in a process with more
 * than one thread each growth waits for an RCU grace period (expand_fdtable: synchronize_rcu),
 * about 10 ms here, inside the accept4 that crossed 256, 512, 1,024 ... descriptors: the
 * worker that accepted sleeps, and every handshake in flight on it waits (bench/ S3: p99
 * 16-28 ms against 5 ms for a single-threaded server). Growing the table once, before any
 * thread exists, to what a worker is likely to hold (at most FD_TABLE_PRESIZE entries, a few
 * hundred KB of kernel memory) takes those waits out; past it the table still grows. */
#define FD_TABLE_PRESIZE 65536
static void presize_fd_table(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 1024)
        return;
    int top = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > FD_TABLE_PRESIZE ? FD_TABLE_PRESIZE - 1
                                                                           : (int)rl.rlim_cur - 1;
    if (fcntl(top, F_GETFD) != -1)
        return; /* in use: the table is that large already */
    int any = open("/dev/null", O_RDONLY | O_CLOEXEC); /* only the slot's number matters */
    if (any < 0)
        return;
    if (dup3(any, top, O_CLOEXEC) == top)
        close(top);
    close(any);
}

/* Every connection is a descriptor: take all the kernel allows this process (the soft
 * limit is often 1024, far below what one worker holds). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("rlimit", "cannot raise the open-file limit: %s", strerror(errno));
    }
    presize_fd_table();
}

/* ------------------------------------------------------------------ development credentials */

/* Is every address the listen host resolves to a loopback one (127.0.0.0/8, ::1)? A name that
 * does not resolve counts as exposed: nothing says it stays on this host. */
static int listen_is_loopback(const char *host)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0)
        return 0;
    int loopback = ai != NULL;
    for (const struct addrinfo *a = ai; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            uint32_t ip = ntohl(((const struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr);
            loopback &= (ip >> 24) == 127;
        } else if (a->ai_family == AF_INET6) {
            const struct in6_addr *ip = &((const struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
            loopback &= IN6_IS_ADDR_LOOPBACK(ip) ||
                        (IN6_IS_ADDR_V4MAPPED(ip) && ip->s6_addr[12] == 127);
        } else {
            loopback = 0;
        }
    }
    freeaddrinfo(ai);
    return loopback;
}

/* Names the public development credentials cfg leaves in use ("" if none): the settings and
 * the variables that replace them. */
static void dev_credentials(const config_t *cfg, char *keys, size_t klen, char *vars, size_t vlen)
{
    int jwt = !cfg->jwt_secret && !cfg->auth_public_key, api = !cfg->api_key, mod = !cfg->moderation_keys.n;
    snprintf(keys, klen, "%s%s%s%s%s", jwt ? "auth.jwt_secret" : "", jwt && (api || mod) ? ", " : "",
             api ? "api.key" : "", api && mod ? ", " : "", mod ? "moderation.keys" : "");
    snprintf(vars, vlen, "%s%s%s%s%s", jwt ? "WSHUB_JWT_SECRET" : "", jwt && (api || mod) ? ", " : "",
             api ? "WSHUB_API_KEY" : "", api && mod ? ", " : "", mod ? "WSHUB_MODERATION_KEYS" : "");
}

/*
 * The development credentials are printed in the banner and in this repository: on an address
 * other hosts can reach they would let anyone mint tokens, publish and use the moderation API
 * (issue 11). Refused there unless --insecure-dev says it is meant; then a loud warning. Returns
 * 0 if the server may start, else -1 with the one-line reason in err.
 */
static int check_dev_credentials(const config_t *cfg, const char *host, int port, char *err, size_t errlen)
{
    char keys[96], vars[96];
    dev_credentials(cfg, keys, sizeof keys, vars, sizeof vars);
    if (!keys[0] || !exposed)
        return 0;
    int v6 = strchr(host, ':') != NULL;
    if (!insecure_dev) {
        snprintf(err, errlen,
                 "refusing to listen on %s%s%s:%d (not loopback) with the public development credentials "
                 "(%s): set %s (or the keys in the configuration), or listen on 127.0.0.1, or pass --insecure-dev",
                 v6 ? "[" : "", host, v6 ? "]" : "", port, keys, vars);
        return -1;
    }
    log_warn("insecure_dev",
             "--insecure-dev: %s%s%s:%d is reachable from other hosts and accepts the PUBLIC development "
             "credentials (%s): anyone who can reach it can use them; set %s",
             v6 ? "[" : "", host, v6 ? "]" : "", port, keys, vars);
    return 0;
}

/* ------------------------------------------------------------------ banner */

/* Shows a credential only when it is the public development default: configured secrets
 * (from the environment in a container, say) never reach the log. */
static const char *shown(const char *configured, const char *dev)
{
    return configured ? "(configured; not shown)" : dev;
}

/* The mock backend's part of the banner (mock.enabled): a cable member's token and the
 * control endpoints, as commands that work when pasted. */
static void print_mock_banner(const config_t *cfg, const char *base, const char *scheme, const char *wscheme,
                              const char *key_cmd, int dev_jwt)
{
    static const char *const member[] = {"community_member_id=42"};
    if (!cfg->mock_enabled)
        return;
    char *token = dev_jwt ? token_mint(TOKEN_DEV_SECRET, "dev-member-42", 24 * 3600, member, 1, NULL, 0) : NULL;
    printf("  Mock backend (README \"Mock backend\"; mock.enabled):\n"
           "  cable token (community_member_id=42, valid 24 h; more: POST /api/tokens):\n"
           "    %s\n"
           "    npx wscat -s actioncable-v1-json -c '%s://%s/cable?token=%s'\n"
           "      > {\"command\":\"subscribe\",\"identifier\":\"{\\\"channel\\\":\\\"NotificationChannel\\\","
           "\\\"community_member_id\\\":42}\"}\n"
           "    curl -H 'Authorization: Bearer %s' %s://%s/api/connections\n"
           "    curl -H 'Authorization: Bearer %s' -d '{\"to\":{\"member\":42},\"event\":\"notification\","
           "\"data\":{\"message\":\"hi\"}}' %s://%s/api/send\n"
           "    curl -H 'Authorization: Bearer %s' -d '{\"to\":{\"member\":42},\"reason\":\"server_restart\","
           "\"reconnect\":true}' %s://%s/api/close\n"
           "    curl -H 'Authorization: Bearer %s' -d '{\"sub\":\"alice\",\"ttl\":\"1h\"}' %s://%s/api/tokens\n"
           "\n",
           token ? token : "(POST /api/tokens signs one with the configured secret)", wscheme, base,
           token ? token : "<token>", key_cmd, scheme, base, key_cmd, scheme, base, key_cmd, scheme, base, key_cmd,
           scheme, base);
    free(token);
}

static void print_banner(const config_t *cfg, int port)
{
    const char *scheme = cfg->tls_cert ? "https" : "http";
    const char *wscheme = cfg->tls_cert ? "wss" : "ws";
    const char *host = cfg->listen_host;
    int v6 = strchr(host, ':') != NULL;
    char base[300];
    snprintf(base, sizeof base, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    int dev_jwt = !cfg->jwt_secret && !cfg->auth_public_key;
    const char *key = shown(cfg->api_key, API_DEV_KEY);
    const char *modkey = shown(cfg->moderation_keys.n ? "x" : NULL, "wshub-development-moderation-key");
    /* In the example commands a configured secret is referred to, not shown. */
    const char *key_cmd = cfg->api_key ? "$WSHUB_API_KEY" : API_DEV_KEY;
    const char *modkey_cmd = cfg->moderation_keys.n ? "<a key of WSHUB_MODERATION_KEYS>" : modkey;
    char *token = dev_jwt ? token_mint(TOKEN_DEV_SECRET, "dev-user", 24 * 3600, NULL, 0, NULL, 0) : NULL;
    const char *tok = token ? token : "$(wshubd token --sub dev-user -c FILE)";
    printf("\n"
           "  wshubd %s: no configuration file, running on the embedded default.\n"
           "  A configuration with every key: config/wshub.example.json (wshubd -c FILE).\n"
           "\n"
           "  JWT secret (HS256): %s\n"
           "  API key (POST /api/publish): %s\n"
           "  moderation key (x-chatsight-api-auth): %s\n"
           "%s"
           "  development token (sub=dev-user, valid 24 h; more: wshubd token --sub NAME):\n"
           "    %s\n"
           "\n"
           "  Try it:\n"
           "    curl %s://%s/healthz\n"
           "    npx wscat -c '%s://%s/api/ws?token=%s'\n"
           "      > {\"type\":\"subscribe\",\"data\":{\"channel\":\"conversation:conv-123\"}}\n"
           "    curl -H 'Authorization: Bearer %s' -d '{\"channel\":\"conversation:conv-123\","
           "\"event\":\"chat_message\",\"data\":{\"content\":\"hi\"}}' %s://%s/api/publish\n"
           "    curl -H 'Authorization: Bearer %s' -d '{\"channel\":\"user:dev-user\","
           "\"event\":\"notification\",\"data\":{\"message\":\"hello\",\"level\":\"info\"}}' %s://%s/api/publish\n"
           "    curl -H 'x-chatsight-api-auth: %s' -d '{\"sample\":\"hello world\",\"reference\":\"c-1\"}' "
           "%s://%s/text/moderation\n"
           "    npx wscat -c %s://%s/echo\n"
           "    curl %s://%s/metrics\n"
           "\n",
           WSHUB_VERSION, dev_jwt ? TOKEN_DEV_SECRET : "(configured; not shown)", key, modkey,
           dev_jwt || !cfg->api_key || !cfg->moderation_keys.n
               ? "  (values shown are public development defaults: set WSHUB_JWT_SECRET, WSHUB_API_KEY and\n"
                 "   WSHUB_MODERATION_KEYS, or a configuration file, before exposing this server)\n"
               : "",
           dev_jwt ? tok : "(sign one with the configured secret: wshubd token --sub NAME)", scheme, base, wscheme,
           base, tok, key_cmd, scheme, base, key_cmd, scheme, base, modkey_cmd, scheme, base, wscheme, base, scheme,
           base);
    print_mock_banner(cfg, base, scheme, wscheme, key_cmd, dev_jwt);
    fflush(stdout);
    free(token);
}

/* ------------------------------------------------------------------ signals */

static void on_stop_signal(uv_signal_t *h, int signum)
{
    if (stopping)
        return;
    stopping = 1;
    sdnotify_stopping();
    log_info("shutdown", "%s: closing every connection with 1001, deadline %u ms", strsignal(signum),
             srv.cfg->shutdown_timeout_ms);
    for (size_t i = 0; i < srv.nworkers; i++)
        worker_request_stop(srv.workers[i]);
    /* The workers drain on their own; the main loop ends once these handles are closed. */
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    uv_close((uv_handle_t *)&log_tick, NULL);
    scenario_shutdown();
    (void)h;
}

#define TRIM_EVERY_S 10

static void on_log_tick(uv_timer_t *h)
{
    static unsigned ticks;
    (void)h;
    log_flush_suppressed();
    /* glibc keeps what the workers free in their arenas, as much as their busiest moment
     * needed: after a burst of clients leaves, RSS would stay at the burst's high-water mark
     * (bench/soak.sh: 17 MB against 12 MB after a trim, for an 8.8 MB idle daemon). A trim
     * locks one arena at a time for well under a millisecond here. */
    if (++ticks % TRIM_EVERY_S == 0)
        malloc_trim(0);
}

static void apply_log_settings(const config_t *cfg)
{
    log_set_level(cfg->log_level);
    log_set_format(cfg->log_format);
    log_set_rate_limit((unsigned)cfg->log_rate_limit_per_s);
}

static void reload(void)
{
    const char *path = configs->cfg.source_path;
    live_t *live = load_config(path, 1);
    if (!live) {
        log_error("reload", "configuration rejected, keeping the running one");
        return;
    }
    /* The listen address needs a restart: the running one decides. */
    char err[512];
    if (check_dev_credentials(&live->cfg, srv.cfg->listen_host, srv.cfg->listen_port, err, sizeof err) != 0) {
        log_error("reload", "configuration rejected, keeping the running one: %s", err);
        return; /* the rejected configuration stays in `configs`, freed at exit */
    }
    apply_log_settings(&live->cfg);
    atomic_store(&srv.live, live);
    log_info("reload", "reloaded %s: log level, keys and allow-lists (listen, workers, tls, limits and broker need a restart)",
             path ? path : "the environment");
}

/* SIGHUP: systemd sees the reload begin and end, accepted or rejected (sdnotify.h). */
static void on_hup(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    sdnotify_reloading();
    reload();
    sdnotify_ready(NULL);
}

/* ------------------------------------------------------------------ main */

static int parse_args(int argc, char **argv, opts_t *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'C'},
        {"insecure-dev", no_argument, NULL, 'I'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {"scenario", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config_path = optarg; break;
        case 'C': o->check_config = 1; break;
        case 'I': o->insecure_dev = 1; break;
        case 'S':
            if (o->nscenarios == MAX_SCENARIO_FILES) {
                fprintf(stderr, "wshubd: at most %d --scenario files\n", MAX_SCENARIO_FILES);
                return -1;
            }
            o->scenarios[o->nscenarios++] = optarg;
            break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("wshubd %s\n", WSHUB_VERSION); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wshubd: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    return 0;
}

/*
 * The first handshake makes OpenSSL page in its code and set up its providers: about 2 MB,
 * once per process. Done here, before a listener is served, so that the first client does not
 * wait for it and what a connection costs is its own (bench/ S3 divides RSS growth by the
 * connections). The same calls as a handshake: SHA-1 of a key (http/upgrade.c), and one JWT minted
 * and verified with the HMAC secret in use (none when a public key is set: HMAC tokens are
 * then refused).
 */
static void warm_up_crypto(const live_t *live)
{
    char accept[29];
    http_ws_accept_value("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
    const config_t *cfg = &live->cfg;
    if (cfg->auth_public_key)
        return;
    char *token = token_mint(cfg->jwt_secret ? cfg->jwt_secret : TOKEN_DEV_SECRET, "warm-up", 60, NULL, 0, NULL, 0);
    if (!token)
        return;
    auth_claims_t claims = {0};
    auth_verify(live->auth, token, time(NULL), &claims);
    auth_claims_clear(&claims);
    free(token);
}

/*
 * Everything that can refuse the configuration, in the order --check-config reports it: the
 * development credentials on an exposed address (first, before the TLS, moderation or bot files
 * are read or a socket bound, so that the refusal is immediate), the TLS files, what each
 * dialect loads (process_init: the moderation lists, the Flow bot).
 * Returns 0, or -1 after one line on stderr, with nothing but the configurations left to free.
 */
static int check_and_load(const opts_t *o, const config_t *cfg)
{
    char err[512];
    insecure_dev = o->insecure_dev;
    exposed = !listen_is_loopback(cfg->listen_host);
    if (check_dev_credentials(cfg, cfg->listen_host, cfg->listen_port, err, sizeof err) != 0)
        goto fail;
    if (cfg->tls_cert && tls_server_new(&srv.tls, cfg->tls_cert, cfg->tls_key, err, sizeof err) != 0)
        goto fail;
    for (int i = 0; i < o->nscenarios; i++)
        if (!(scenario_docs[i] = scenario_load_file(o->scenarios[i], err, sizeof err)))
            goto fail;
    if (dialects_process_init(cfg, err, sizeof err) != 0) {
        tls_server_free(srv.tls);
        srv.tls = NULL;
        goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "wshubd: %s\n", err);
    return -1;
}

/* With broker.type "redis": the hub's link to the other nodes, running before any worker
 * (subscriptions are queued to it from the first client on). Returns 0 or -1 (logged). */
static int start_broker(const config_t *cfg)
{
    char err[512];
    const broker_events_t ev = {.on_msg = hub_on_broker_message,
                                .on_subscribed = hub_on_broker_subscribed,
                                .on_link = hub_on_broker_link,
                                .arg = srv.hub};
    srv.broker = broker_new(cfg, &ev, err, sizeof err);
    if (!srv.broker) {
        if (!err[0])
            return 0; /* the embedded hub alone */
        fprintf(stderr, "wshubd: %s\n", err);
        return -1;
    }
    hub_set_broker(srv.hub, srv.broker); /* before the broker's thread can tell it anything */
    int r = broker_start(srv.broker);
    if (r) {
        fprintf(stderr, "wshubd: broker: %s\n", uv_strerror(r));
        hub_set_broker(srv.hub, NULL);
        broker_free(srv.broker);
        srv.broker = NULL;
        return -1;
    }
    return 0;
}

/* Allocates the workers' table and the hub and opens one listening socket per worker, whose
 * descriptors *fds holds (free_workers frees it, whatever this returns). Returns 0 or -1. */
static int prepare_workers(live_t *live, int **fds, int *port)
{
    const config_t *cfg = &live->cfg;
    srv.cfg = cfg;
    atomic_store(&srv.live, live);
    srv.nworkers = cfg->workers > 0 ? (size_t)cfg->workers : (size_t)uv_available_parallelism();
    if (srv.nworkers < 1)
        srv.nworkers = 1;
    *fds = calloc(srv.nworkers, sizeof **fds);
    srv.workers = calloc(srv.nworkers, sizeof *srv.workers);
    srv.hub = hub_new(srv.nworkers, cfg->max_mailbox_bytes);
    if (!*fds || !srv.workers || !srv.hub || open_listeners(cfg, *fds, srv.nworkers, port) != 0)
        return -1;
    if (start_broker(cfg) != 0)
        return -1;
    /* After the broker: with one, Redis keeps the history and gives the positions. */
    return hub_set_history(srv.hub, (size_t)cfg->history_size, (uint32_t)cfg->history_ttl_s, cfg->history_max_bytes);
}

static void warn_dev_defaults(const config_t *cfg)
{
    if (!cfg->jwt_secret && !cfg->auth_public_key)
        log_warn("config", "auth.jwt_secret is not set: using the development secret (set WSHUB_JWT_SECRET)");
    if (!cfg->api_key)
        log_warn("config", "api.key is not set: POST /api/publish accepts the development key (set WSHUB_API_KEY)");
}

/* Initialises every worker on its socket, then starts their threads; *started counts the
 * threads running. Returns 0, or -1 after one line on stderr. */
static int start_workers(const int *fds, size_t *started)
{
    for (size_t i = 0; i < srv.nworkers; i++) {
        srv.workers[i] = malloc(sizeof(worker_t));
        int r = srv.workers[i] ? worker_init(srv.workers[i], &srv, (int)i, fds[i]) : UV_ENOMEM;
        if (r) {
            fprintf(stderr, "wshubd: worker %zu: %s\n", i, uv_strerror(r));
            return -1;
        }
    }
    for (; *started < srv.nworkers; (*started)++) {
        if (worker_start(srv.workers[*started]) != 0) {
            fprintf(stderr, "wshubd: cannot start worker thread %zu\n", *started);
            return -1;
        }
    }
    return 0;
}

/* Before the workers start: a SIGTERM that comes as soon as the first client is answered
 * (a supervisor, a test) must find its handler; it is acted on once the loop runs. */
static void install_signals(void)
{
    uv_loop_t *loop = uv_default_loop();
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_hup);
    uv_signal_start(&sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
}

/* Waits on the main thread's loop for the signals (and ticks the log) until SIGTERM or SIGINT
 * has asked every worker to stop. */
static const char *current_api_key(void)
{
    const live_t *l = server_live(&srv);
    return l->cfg.api_key ? l->cfg.api_key : API_DEV_KEY;
}

/* The scenario runner on this loop (it reaches the server over loopback HTTP), and the
 * --scenario files. Without a plain HTTP listener there is none: scenarios are refused. */
static void start_scenarios(const config_t *cfg, int port)
{
    scenario_env_t env = {.port = port, .api_key = current_api_key, .max_running = (size_t)cfg->mock_max_scenarios};
    const char *h = cfg->listen_host;
    bool any4 = !h[0] || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "localhost") == 0;
    snprintf(env.host, sizeof env.host, "%s", any4 ? "127.0.0.1" : strcmp(h, "::") == 0 ? "::1" : h);
    if (cfg->tls_cert) {
        log_warn("scenario", "scenarios are off: the runner speaks plain HTTP and the listener is TLS");
        return;
    }
    if (scenario_start(uv_default_loop(), &env) != 0)
        return;
    char err[300];
    for (int i = 0; i < MAX_SCENARIO_FILES && scenario_docs[i]; i++)
        if (scenario_submit(scenario_docs[i], err, sizeof err) < 0)
            log_error("scenario", "not started: %s", err);
}

static void run_signal_loop(const config_t *cfg, int port, const char *path)
{
    uv_loop_t *loop = uv_default_loop();
    uv_timer_init(loop, &log_tick);
    uv_timer_start(&log_tick, on_log_tick, 1000, 1000);
    log_info("listening", "%s://%s:%d with %zu workers (pid %d, config: %s)", cfg->tls_cert ? "https" : "http",
             cfg->listen_host, port, srv.nworkers, (int)getpid(), path ? path : "embedded default");
    if (!path)
        print_banner(cfg, port);
    start_scenarios(cfg, port);
    char status[320];
    snprintf(status, sizeof status, "listening on %s:%d", cfg->listen_host, port);
    sdnotify_ready(status);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
}

static void stop_workers(size_t started)
{
    /* After a signal every worker was asked already, and one that has stopped has closed its
     * wake-up handle: ask only on the way out of a failed start. */
    for (size_t i = 0; !stopping && i < started; i++)
        worker_request_stop(srv.workers[i]);
    /* Join every worker before freeing any: a worker still draining may publish to the
     * mailbox of one that has stopped (issue 11). */
    for (size_t i = 0; i < started; i++)
        worker_join(srv.workers[i]);
    /* Before the workers' state goes: publishes still in flight are refused to them. */
    if (srv.broker)
        broker_stop(srv.broker);
    for (size_t i = 0; i < started; i++)
        worker_destroy(srv.workers[i]);
    log_flush_suppressed();
}

static void free_workers(int *fds)
{
    for (size_t i = 0; srv.workers && i < srv.nworkers; i++)
        free(srv.workers[i]);
    free(srv.workers);
    free(fds);
    if (srv.broker)
        broker_stop(srv.broker); /* a start that failed before stop_workers ran */
    broker_free(srv.broker);
    hub_free(srv.hub);
}

/* Serves until SIGTERM or SIGINT, then stops the workers; returns the exit code. */
static int serve(live_t *live, const char *path)
{
    const config_t *cfg = &live->cfg;
    int *fds = NULL, port = 0, rc = 1;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (prepare_workers(live, &fds, &port) == 0) {
        warn_dev_defaults(cfg);
        warm_up_crypto(live);
        size_t started = 0;
        install_signals();
        scenario_init();
        if (start_workers(fds, &started) == 0) {
            run_signal_loop(cfg, port, path);
            rc = 0;
        }
        stop_workers(started);
        if (rc == 0)
            log_info("shutdown", "every connection closed, exiting");
    }
    free_workers(fds);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return token_cli(argc - 1, argv + 1);
    opts_t o = {0};
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    const char *path = pick_config_path(o.config_path);
    live_t *live = load_config(path, 0);
    if (!live)
        return 1;
    apply_log_settings(&live->cfg);
    if (check_and_load(&o, &live->cfg) != 0) {
        free_configs();
        return 1;
    }
    int rc = 0;
    if (o.check_config)
        printf("wshubd: configuration ok (%s)\n", path ? path : "embedded default and environment");
    else
        rc = serve(live, path);
    dialects_process_free();
    sessions_free();
    tls_server_free(srv.tls);
    free_configs();
    for (int i = 0; i < MAX_SCENARIO_FILES; i++)
        json_decref(scenario_docs[i]);
    return rc;
}
