/*
 * token — minting HS256 JWTs for development: the startup banner's token and the
 * `wshubd token` command. Verification lives in auth (a separate concern with its own rules).
 */
#ifndef WSHUB_TOKEN_H
#define WSHUB_TOKEN_H

#include <stddef.h>

#include <jansson.h>

/* Signs tokens when auth.jwt_secret is not set; announced at startup: it is public. */
#define TOKEN_DEV_SECRET "wshub-development-secret-not-for-production"

/*
 * Returns a malloc'd compact JWT signed with HS256, with `sub`, `iat` and `exp` = now + ttl_s,
 * plus extra claims given as "key=value" strings (a value that parses as JSON — number,
 * boolean, array, object, "string" — is used as that JSON value, anything else as a string).
 * NULL on failure, with a one-line reason in err (if err is not NULL).
 */
char *token_mint(const char *secret, const char *sub, long ttl_s, const char *const *claims,
                 size_t nclaims, char *err, size_t errlen);

/* Signs claims (an object, taken as it is: sub, iat, exp included) with HS256. Returns a
 * malloc'd compact JWT, or NULL with a one-line reason in err (if not NULL). */
char *token_sign(const char *secret, json_t *claims, char *err, size_t errlen);

/* Parses "90", "30s", "15m", "1h", "7d" into seconds; -1 if invalid. */
long token_parse_ttl(const char *s);

/* `wshubd token ...`: argv[0] is "token". Returns the process exit code. */
int token_cli(int argc, char **argv);

#endif
