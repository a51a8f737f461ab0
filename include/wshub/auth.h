/*
 * auth — verification of JWT credentials (PROTOCOLS.md §0.7) with libjwt 1.10, which has
 * no validation helpers: the algorithm allow-list, the key type, exp, nbf, iss, aud and the
 * leeway are checked here. Also: extracting the credential from a request (?token= or
 * Authorization: Bearer) and checking an Origin against an allow-list.
 *
 * Owns: the verifier (keys, allowed algorithms, expectations), built from the config and
 * rebuilt on SIGHUP. Never: logs or counts (the caller decides what a failure means for its
 * API and does both, once).
 */
#ifndef WSHUB_AUTH_H
#define WSHUB_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "wshub/config.h"

typedef struct http_request http_request_t;

/* Size of a buffer that holds any token auth_verify accepts, NUL included: a longer token is
 * AUTH_MALFORMED, and auth_request_token with a buffer this size only misses such tokens. */
#define AUTH_TOKEN_MAX 8192

/* Why a token was refused; also the label of wshub_auth_failures_total{reason}. */
typedef enum {
    AUTH_OK = 0,
    AUTH_MISSING,        /* no token in the request (token NULL) */
    AUTH_MALFORMED,      /* not three non-empty base64url parts (canonical, unpadded), longer
                            than AUTH_TOKEN_MAX - 1, header/payload not JSON objects (duplicate
                            members refused), "alg" absent or not a string, "typ" other than
                            "JWT", a "crit" header, or exp/nbf present but not a number */
    AUTH_ALG_NOT_ALLOWED,/* "none", an algorithm not configured or unfit for the key (an EC
                            key serves only the ES algorithm of its curve), or HMAC with a
                            public key */
    AUTH_BAD_SIGNATURE,
    AUTH_EXPIRED,        /* now >= exp + leeway */
    AUTH_NOT_YET_VALID,  /* now + leeway < nbf */
    AUTH_NO_EXP,         /* exp required (auth.require_exp) but absent */
    AUTH_BAD_ISSUER,     /* auth.issuer set and "iss" is not that string */
    AUTH_BAD_AUDIENCE,   /* auth.audience set and "aud" is neither that string nor an array
                            containing it */
    AUTH_REASON_COUNT
} auth_reason_t;
extern const char *const auth_reason_names[AUTH_REASON_COUNT];

typedef struct auth_verifier auth_verifier_t;

/*
 * Builds a verifier from the configuration: auth.jwt_secret (HMAC key) or auth.public_key
 * (PEM file: RSA or EC public key; then HMAC algorithms are never accepted and
 * auth.jwt_secret is not used for verification), auth.algorithms (allowed "alg" values;
 * default: HS256 with a secret, RS256+ES256 with a public key; those the key cannot serve
 * are dropped, and none left is an error), auth.issuer, auth.audience (NULL = not checked),
 * auth.leeway_s, auth.require_exp. `dev_secret` is used when neither key is configured.
 * Reads the key file (blocking: call it at startup or on reload, not per connection).
 * On failure returns NULL with one line naming the key in err, e.g.
 * "auth.public_key: cannot read /x.pem: No such file or directory".
 * The verifier copies what it needs: cfg may be freed afterwards.
 */
auth_verifier_t *auth_verifier_new(const config_t *cfg, const char *dev_secret, char *err, size_t errlen);
/* Scrubs the key material and frees; NULL is allowed. */
void auth_verifier_free(auth_verifier_t *v);

/* The verified claims of a token. */
typedef struct auth_claims {
    json_t *payload;  /* the whole payload object (owned: release with auth_claims_clear) */
    const char *sub;  /* payload "sub" if a string, else NULL (points into payload) */
    int64_t exp;      /* seconds since the epoch (a fractional exp rounded down), or 0 if absent */
} auth_claims_t;

/*
 * Verifies a compact JWT at time `now` (seconds). On AUTH_OK fills *claims; otherwise
 * leaves it empty (zeroed). Never accepts alg "none". The verifier is only read: several
 * threads may verify with one verifier at once.
 */
auth_reason_t auth_verify(const auth_verifier_t *v, const char *token, time_t now, auth_claims_t *claims);
/* Releases the payload and zeroes *claims; harmless on zeroed claims. */
void auth_claims_clear(auth_claims_t *claims);

/*
 * The credential of a request: the `token` query parameter (percent-decoded), else an
 * `Authorization: Bearer` header (see auth_bearer_token). Writes it NUL-terminated into buf;
 * returns buf, or NULL if absent or longer than buflen-1. An empty `?token=` counts as
 * absent; a `token` parameter too long for buf is not replaced by the header.
 */
const char *auth_request_token(const http_request_t *req, char *buf, size_t buflen);

/* The credential of a request (auth_request_token), verified (auth_verify): what every
 * endpoint that takes a JWT does. AUTH_MISSING when there is none (or it is too long). */
auth_reason_t auth_verify_request(const auth_verifier_t *v, const http_request_t *req, time_t now,
                                  auth_claims_t *claims);

/*
 * The token of an Authorization header value (len bytes, not NUL-terminated):
 * "Bearer <token>" with the scheme in any case, spaces/tabs around the value and between
 * scheme and token ignored. Writes the token NUL-terminated into buf and returns buf; NULL
 * for another scheme ("Basic x"), an empty token, a NUL byte, or a token longer than buflen-1.
 */
const char *auth_bearer_token(const char *value, size_t len, char *buf, size_t buflen);

/* Is `origin` (may be NULL) allowed by the list? An empty list allows anything, and a
 * non-empty list refuses a missing Origin. Comparison is exact, ASCII case-insensitive. */
int auth_origin_allowed(const config_strlist_t *allowed, const char *origin, size_t origin_len);

#endif
