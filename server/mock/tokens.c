/*
 * mock/tokens.c — tokens over HTTP (issue 15), for browser developers who cannot run
 * `wshubd token`: POST /api/tokens {sub, ttl, claims} answers {token, expires_at}, an HS256
 * JWT signed with the key the server verifies with (auth.jwt_secret, or the development
 * secret), good on /api/ws and /cable (a member: claims {"community_member_id": 42}).
 * auth.issuer and auth.audience, when configured, are added unless the claims name them.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wshub/token.h"

#define TOKEN_TTL_DEFAULT 3600
#define TOKEN_MAX_SUB 1024

/* Why this server cannot sign a token its verifier accepts, or NULL. */
static const char *cannot_sign(const config_t *cfg)
{
    if (cfg->auth_public_key)
        return "auth.public_key is set: tokens are verified with a public key (RS/ES), and this server has no "
               "private key to sign them; sign them with your issuer";
    if (cfg->auth_algorithms.n == 0)
        return NULL;
    for (size_t i = 0; i < cfg->auth_algorithms.n; i++)
        if (strcmp(cfg->auth_algorithms.items[i], "HS256") == 0)
            return NULL;
    return "auth.algorithms does not accept HS256, the only algorithm this endpoint signs with";
}

/* ttl: seconds (a positive integer) or a duration string ("90s", "15m", "1h", "7d"). */
static long read_ttl(json_t *v, http_reply_t *out)
{
    long ttl = -1;
    if (!v)
        return TOKEN_TTL_DEFAULT;
    if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= 100LL * 365 * 86400)
        ttl = (long)json_integer_value(v);
    else if (dialect_cstr(v))
        ttl = token_parse_ttl(json_string_value(v));
    if (ttl <= 0)
        mock_bad_field(out, "ttl", "expected seconds (a positive integer) or a duration like 90s, 15m, 1h or 7d "
                                   "(at most 100 years)");
    return ttl;
}

/* The claims of the token: the request's, then sub, iat, exp (unless given), iss and aud of
 * the configuration (unless given). NULL with *out answered. */
static json_t *read_claims(json_t *body, const config_t *cfg, http_reply_t *out)
{
    json_t *sub = json_object_get(body, "sub"), *claims = json_object_get(body, "claims");
    if (!dialect_cstr(sub) || !json_string_length(sub) || json_string_length(sub) > TOKEN_MAX_SUB) {
        mock_bad_field(out, "sub", "required: a non-empty string (at most 1024 bytes, without NUL characters)");
        return NULL;
    }
    if (claims && !json_is_object(claims)) {
        mock_bad_field(out, "claims", "expected an object of extra claims, e.g. {\"community_member_id\": 42}");
        return NULL;
    }
    if (json_object_get(claims, "sub")) {
        mock_bad_field(out, "claims.sub", "give the subject as sub, outside claims");
        return NULL;
    }
    json_t *exp = json_object_get(claims, "exp");
    if (exp && !json_is_integer(exp)) {
        mock_bad_field(out, "claims.exp", "expected an integer (seconds since the epoch)");
        return NULL;
    }
    long ttl = exp ? TOKEN_TTL_DEFAULT : read_ttl(json_object_get(body, "ttl"), out);
    if (ttl <= 0)
        return NULL;
    json_t *c = claims ? json_deep_copy(claims) : json_object();
    json_int_t now = (json_int_t)time(NULL);
    if (!c)
        return NULL;
    json_object_set(c, "sub", sub);
    if (!json_object_get(c, "iat"))
        json_object_set_new(c, "iat", json_integer(now));
    if (!exp)
        json_object_set_new(c, "exp", json_integer(now + ttl));
    if (cfg->auth_issuer && !json_object_get(c, "iss"))
        json_object_set_new(c, "iss", json_string(cfg->auth_issuer));
    if (cfg->auth_audience && !json_object_get(c, "aud"))
        json_object_set_new(c, "aud", json_string(cfg->auth_audience));
    return c;
}

void mock_tokens(const http_request_t *req, dialect_ctx_t *x, http_reply_t *out)
{
    if (mock_refused(req, x, out) || !mock_method(req, "POST", out))
        return;
    const config_t *cfg = &dialect_live(x)->cfg;
    const char *why = cannot_sign(cfg);
    if (why) {
        mock_error(out, 409, "cannot_sign", NULL, why);
        return;
    }
    json_t *body = mock_body_object(req, out, false), *claims = body ? read_claims(body, cfg, out) : NULL;
    json_decref(body);
    if (!claims) {
        if (!out->status)
            mock_error(out, 503, "unavailable", NULL, "out of memory");
        return;
    }
    char err[128], at[32];
    char *token = token_sign(cfg->jwt_secret ? cfg->jwt_secret : TOKEN_DEV_SECRET, claims, err, sizeof err);
    json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
    json_decref(claims);
    if (!token) {
        mock_error(out, 500, "internal_error", NULL, err);
        return;
    }
    mock__iso8601(exp > 0 ? (uint64_t)exp * 1000 : 0, at);
    mock_reply_json(out, 200, json_pack("{s:b, s:s, s:s, s:I}", "ok", 1, "token", token, "expires_at", at, "exp", exp));
    free(token);
}
