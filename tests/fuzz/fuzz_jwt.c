/*
 * fuzz_jwt — JWT parsing and the claim checks of auth.c (PROTOCOLS.md §0.7), the way the
 * endpoints call them: auth_verify on a token, auth_bearer_token on an Authorization value,
 * auth_origin_allowed on an Origin. Two verifiers: HS256 with issuer, audience and
 * required exp, and an ES256 public key (tests/fuzz/keys/) with exp optional.
 *
 * Input: byte 0 = mode (0: token to the HMAC verifier, 1: token to the EC verifier,
 * 2: an Authorization header value, its token then verified, 3: an Origin), then the text.
 * "Now" is fixed (2023-11-14), so exp/nbf decisions are reproducible.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wshub/auth.h"
#include "wshub/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000

static auth_verifier_t *hs, *ec;
static config_t hs_cfg;

static auth_verifier_t *verifier(config_t *cfg, char *const *envp)
{
    char err[512];
    if (config_load(cfg, NULL, envp, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    auth_verifier_t *v = auth_verifier_new(cfg, "unused-dev-secret", err, sizeof err);
    if (!v) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    return v;
}

static void init(void)
{
    static char *hs_env[] = {"WSHUB_JWT_SECRET=fuzz-secret", "WSHUB_AUTH_ISSUER=wshub-fuzz",
                             "WSHUB_AUTH_AUDIENCE=wshub", "WSHUB_AUTH_ALGORITHMS=HS256,HS384,HS512",
                             "WSHUB_CABLE_ALLOWED_ORIGINS=https://app.example.com,http://localhost:3000",
                             NULL};
    static char ec_key[1024] = "WSHUB_AUTH_PUBLIC_KEY=" FZ_SOURCE_ROOT "/tests/fuzz/keys/ec256-public.pem";
    static char *ec_env[] = {ec_key, "WSHUB_AUTH_REQUIRE_EXP=false", "WSHUB_AUTH_ALGORITHMS=ES256,RS256", NULL};
    config_t ec_cfg;
    hs = verifier(&hs_cfg, hs_env);
    ec = verifier(&ec_cfg, ec_env);
    config_free(&ec_cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!hs)
        init();
    if (size < 1)
        return 0;
    int mode = data[0] & 3;
    /* The endpoints hand auth NUL-terminated text (a decoded query parameter, a header). */
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    auth_claims_t claims = {0};
    char buf[AUTH_TOKEN_MAX];
    switch (mode) {
    case 0:
    case 1:
        if (auth_verify(mode ? ec : hs, text, NOW, &claims) == AUTH_OK && !claims.payload)
            abort(); /* AUTH_OK promises the claims */
        auth_claims_clear(&claims);
        break;
    case 2:
        if (auth_bearer_token((const char *)data + 1, size - 1, buf, sizeof buf)) {
            auth_verify(hs, buf, NOW, &claims);
            auth_claims_clear(&claims);
        }
        break;
    default:
        auth_origin_allowed(&hs_cfg.cable_allowed_origins, (const char *)data + 1, size - 1);
        break;
    }
    free(text);
    return 0;
}
