/*
 * token — see include/wshub/token.h. libjwt signs; jansson builds the claims.
 */
#include "wshub/token.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <jwt.h>

#include "wshub/config.h"

extern char **environ;

long token_parse_ttl(const char *s)
{
    char *end;
    if (!s || !*s)
        return -1;
    long v = strtol(s, &end, 10);
    if (end == s || v < 0)
        return -1;
    long mul = 1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        mul = 60, end++;
    else if (*end == 'h')
        mul = 3600, end++;
    else if (*end == 'd')
        mul = 86400, end++;
    if (*end || v > 100L * 365 * 86400 / mul)
        return -1;
    return v * mul;
}

static void say(char *err, size_t errlen, const char *msg, const char *arg)
{
    if (err)
        snprintf(err, errlen, "%s%s", msg, arg ? arg : "");
}

char *token_sign(const char *secret, json_t *claims, char *err, size_t errlen)
{
    char *out = NULL;
    jwt_t *jwt = NULL;
    char *text = json_dumps(claims, JSON_COMPACT);
    if (!text || jwt_new(&jwt) != 0 || jwt_add_grants_json(jwt, text) != 0 ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) != 0)
        say(err, errlen, "cannot build the token", NULL);
    else if (!(out = jwt_encode_str(jwt)))
        say(err, errlen, "cannot sign the token", NULL);
    free(text);
    jwt_free(jwt);
    return out;
}

char *token_mint(const char *secret, const char *sub, long ttl_s, const char *const *claims,
                 size_t nclaims, char *err, size_t errlen)
{
    char *out = NULL;
    json_t *grants = json_object();
    time_t now = time(NULL);
    if (!grants)
        goto done;
    for (size_t i = 0; i < nclaims; i++) {
        const char *eq = strchr(claims[i], '=');
        if (!eq || eq == claims[i]) {
            say(err, errlen, "--claim expects key=value, got ", claims[i]);
            goto done;
        }
        char *key = strndup(claims[i], (size_t)(eq - claims[i]));
        json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
        if (!v)
            v = json_string(eq + 1);
        json_object_set_new(grants, key, v);
        free(key);
    }
    if (sub)
        json_object_set_new(grants, "sub", json_string(sub));
    json_object_set_new(grants, "iat", json_integer((json_int_t)now));
    if (ttl_s > 0)
        json_object_set_new(grants, "exp", json_integer((json_int_t)(now + ttl_s)));
    out = token_sign(secret, grants, err, errlen);
done:
    json_decref(grants);
    return out;
}

typedef struct token_args {
    const char *sub, *secret, *path;
    long ttl;
    const char **claims; /* argc + 1 entries, for every --claim */
    size_t nclaims;
} token_args_t;

/* Reads the arguments of `wshubd token` into a. Returns 0, 1 after answering --help, or -1
 * after the usage error on stderr. */
static int parse_token_args(int argc, char **argv, token_args_t *a)
{
    static const struct option longopts[] = {
        {"sub", required_argument, NULL, 's'},   {"ttl", required_argument, NULL, 't'},
        {"claim", required_argument, NULL, 'k'}, {"secret", required_argument, NULL, 'S'},
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 's': a->sub = optarg; break;
        case 't':
            if ((a->ttl = token_parse_ttl(optarg)) < 0) {
                fprintf(stderr, "wshubd token: --ttl: expected a duration like 90s, 15m, 1h or 7d, got %s\n", optarg);
                return -1;
            }
            break;
        case 'k': a->claims[a->nclaims++] = optarg; break;
        case 'S': a->secret = optarg; break;
        case 'c': a->path = optarg; break;
        case 'h':
            printf("usage: wshubd token --sub SUBJECT [--ttl 1h] [--claim key=value ...] [--secret S | -c FILE]\n"
                   "Prints an HS256 JWT signed with --secret, or with auth.jwt_secret of the configuration\n"
                   "(-c FILE and WSHUB_JWT_SECRET), or with the development secret.\n");
            return 1;
        default: return -1;
        }
    }
    if (!a->sub) {
        fprintf(stderr, "wshubd token: --sub is required\n");
        return -1;
    }
    return 0;
}

/* Prints the token a asks for, signed with --secret, else the configuration's secret, else
 * the development one. Returns the exit code: 0, or 1 after the error on stderr. */
static int print_token(const token_args_t *a)
{
    config_t cfg = {0};
    char err[512];
    int have_cfg = 0, rc;
    const char *secret = a->secret;
    if (!secret) {
        if (config_load(&cfg, a->path, environ, err, sizeof err) != 0) {
            fprintf(stderr, "wshubd token: %s\n", err);
            return 1;
        }
        have_cfg = 1;
        secret = cfg.jwt_secret ? cfg.jwt_secret : TOKEN_DEV_SECRET;
    }
    char *tok = token_mint(secret, a->sub, a->ttl, a->claims, a->nclaims, err, sizeof err);
    if (tok) {
        printf("%s\n", tok);
        free(tok);
        rc = 0;
    } else {
        fprintf(stderr, "wshubd token: %s\n", err);
        rc = 1;
    }
    if (have_cfg)
        config_free(&cfg);
    return rc;
}

int token_cli(int argc, char **argv)
{
    token_args_t a = {.ttl = 3600, .claims = calloc((size_t)argc + 1, sizeof *a.claims)};
    int r = parse_token_args(argc, argv, &a);
    int rc = r == 0 ? print_token(&a) : r == 1 ? 0 : 2;
    free(a.claims);
    return rc;
}
