/*
 * test_auth — unit tests of server/auth.c: every algorithm, the refusals that matter for
 * security (alg none, HMAC signed with the public key's PEM, wrong keys), exp/nbf with the
 * leeway, iss/aud, hostile tokens, the claims, credentials in a request, Origin.
 *
 * Tokens are made here with libjwt's jwt_encode_str (or by hand for what libjwt refuses to
 * make); keys are generated at start with OpenSSL (EVP_RSA_gen, EVP_EC_gen) and written
 * to one mkdtemp directory, removed at the end: no key file is committed.
 *
 * The request accessors of http.h are stubbed below (STYLE.md §7: stubs for
 * collaborators), so auth_request_token is tested without a socket; the real llhttp-parsed
 * request is covered by the end-to-end tests. If auth.c ever needs more of http.c, the link
 * fails with "multiple definition" and the stubs must go.
 */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "wshub/auth.h"
#include "wshub/config.h"
#include "wshub/http.h"

#define NOW ((time_t)1700000000)
#define SECRET "unit-test-secret-0123456789abcdef"

/* ---- stubs of the http.h request accessors --------------------------------------- */

struct http_request {
    const char *query;         /* after '?', or NULL */
    const char *authorization; /* header value, or NULL */
};

const char *http_request_query(const http_request_t *r, size_t *len)
{
    *len = r->query ? strlen(r->query) : 0;
    return r->query ? r->query : "";
}

const char *http_request_header(const http_request_t *r, const char *name, size_t *len)
{
    if (strcasecmp(name, "Authorization") != 0 || !r->authorization)
        return NULL;
    *len = strlen(r->authorization);
    return r->authorization;
}

/* The raw value of the first `name` parameter, or NULL (the stubs do not decode). */
static const char *find_param(const http_request_t *r, const char *name, size_t *vlen)
{
    size_t qlen, nlen = strlen(name);
    const char *q = http_request_query(r, &qlen), *end = q + qlen;

    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q)), *ke = eq ? eq : pe;

        if ((size_t)(ke - q) == nlen && memcmp(q, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : pe;
            *vlen = (size_t)(pe - v);
            return v;
        }
        q = pe + 1;
    }
    return NULL;
}

/* The contract of http.c: NULL if absent or if the value does not fit. */
const char *http_request_query_param(const http_request_t *r, const char *name, char *buf,
                                     size_t buflen)
{
    size_t vlen;
    const char *v = find_param(r, name, &vlen);

    if (!v || vlen >= buflen)
        return NULL;
    memcpy(buf, v, vlen);
    buf[vlen] = '\0';
    return buf;
}

int http_request_has_query_param(const http_request_t *r, const char *name)
{
    size_t vlen;
    return find_param(r, name, &vlen) != NULL;
}

/* ---- fixture: keys --------------------------------------------------------------- */

typedef struct testkey {
    char *priv;     /* PEM private key, for libjwt signing */
    size_t priv_len;
    char *pub;      /* PEM public key, exactly the file's content */
    size_t pub_len;
    char path[96];  /* the public key file */
} testkey_t;

enum { K_RSA, K_RSA2, K_EC256, K_EC256B, K_EC384, K_EC521, K_ED25519, NKEYS };

typedef struct fixture {
    char dir[64];
    testkey_t keys[NKEYS];
    char garbage_path[96]; /* a file that is no key */
    char private_path[96]; /* a file with a private key only */
    char missing_path[96]; /* no such file */
} fixture_t;

static fixture_t *fx; /* set by group_setup: the tests below read keys through it */

static char *bio_text(BIO *b, size_t *len)
{
    char *data, *copy;
    long n = BIO_get_mem_data(b, &data);

    assert_true(n > 0);
    copy = malloc((size_t)n + 1);
    assert_non_null(copy);
    memcpy(copy, data, (size_t)n);
    copy[n] = '\0';
    *len = (size_t)n;
    return copy;
}

static int write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (!f)
        return -1;
    if (fwrite(text, 1, len, f) != len) {
        fclose(f);
        return -1;
    }
    return fclose(f);
}

static int make_key(testkey_t *k, EVP_PKEY *pkey, const char *dir, const char *name)
{
    BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
    int rc = -1;

    if (pkey && priv && pub && PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) &&
        PEM_write_bio_PUBKEY(pub, pkey)) {
        k->priv = bio_text(priv, &k->priv_len);
        k->pub = bio_text(pub, &k->pub_len);
        snprintf(k->path, sizeof k->path, "%s/%s.pub.pem", dir, name);
        rc = write_file(k->path, k->pub, k->pub_len);
    }
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(pkey);
    return rc;
}

static int group_setup(void **state)
{
    static const char *const names[NKEYS] = {"rsa", "rsa2", "ec256", "ec256b",
                                             "ec384", "ec521", "ed25519"};

    (void)state;
    fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_auth.XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    for (int i = 0; i < NKEYS; i++) {
        EVP_PKEY *pkey = i <= K_RSA2    ? EVP_RSA_gen(2048)
                         : i <= K_EC256B ? EVP_EC_gen("P-256")
                         : i == K_EC384  ? EVP_EC_gen("P-384")
                         : i == K_EC521  ? EVP_EC_gen("P-521")
                                         : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

        char dir[sizeof fx->dir]; /* a copy: gcc's -Wrestrict cannot tell dir from keys */

        memcpy(dir, fx->dir, sizeof dir);
        if (make_key(&fx->keys[i], pkey, dir, names[i]) < 0)
            return -1;
    }
    snprintf(fx->garbage_path, sizeof fx->garbage_path, "%s/garbage.pem", fx->dir);
    snprintf(fx->private_path, sizeof fx->private_path, "%s/private.pem", fx->dir);
    snprintf(fx->missing_path, sizeof fx->missing_path, "%s/missing.pem", fx->dir);
    if (write_file(fx->garbage_path, "-----BEGIN PUBLIC KEY-----\nnot base64\n", 38) < 0 ||
        write_file(fx->private_path, fx->keys[K_RSA].priv, fx->keys[K_RSA].priv_len) < 0)
        return -1;
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
    int rc = nftw(fx->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);

    (void)state;
    for (int i = 0; i < NKEYS; i++) {
        free(fx->keys[i].priv);
        free(fx->keys[i].pub);
    }
    free(fx);
    fx = NULL;
    return rc;
}

/* ---- helpers: verifiers ---------------------------------------------------------- */

typedef struct vopts {
    const char *secret;   /* auth.jwt_secret */
    const char *key;      /* auth.public_key */
    const char *algs;     /* auth.algorithms, comma-separated; NULL = empty list */
    const char *issuer;
    const char *audience;
    int leeway;
    bool exp_optional;    /* auth.require_exp = false */
} vopts_t;

/* A verifier from a config_t built by hand (the config layer's own checks are bypassed, so
 * that auth's are reached); NULL with err filled on failure. */
static auth_verifier_t *try_verifier(const vopts_t *o, char *err, size_t errlen)
{
    config_t cfg;
    char list[128], *items[16];
    auth_verifier_t *v;

    memset(&cfg, 0, sizeof cfg);
    cfg.jwt_secret = (char *)o->secret;
    cfg.auth_public_key = (char *)o->key;
    cfg.auth_issuer = (char *)o->issuer;
    cfg.auth_audience = (char *)o->audience;
    cfg.auth_leeway_s = o->leeway;
    cfg.auth_require_exp = !o->exp_optional;
    if (o->algs) {
        snprintf(list, sizeof list, "%s", o->algs);
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
            items[cfg.auth_algorithms.n++] = t;
        cfg.auth_algorithms.items = items;
    }
    v = auth_verifier_new(&cfg, NULL, err, errlen);
    assert_int_equal(ERR_peek_error(), 0);
    return v;
}

static auth_verifier_t *verifier(const vopts_t *o)
{
    char err[256] = "";
    auth_verifier_t *v = try_verifier(o, err, sizeof err);

    if (!v)
        fail_msg("auth_verifier_new failed: %s", err);
    assert_string_equal(err, "");
    return v;
}

/* Expects failure with `needle` in the one-line message. */
static void verifier_fails(const vopts_t *o, const char *needle)
{
    char err[256] = "untouched";
    auth_verifier_t *v = try_verifier(o, err, sizeof err);

    if (v) {
        auth_verifier_free(v);
        fail_msg("auth_verifier_new succeeded; expected an error with \"%s\"", needle);
    }
    assert_null(strchr(err, '\n'));
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
}

/* ---- helpers: tokens ------------------------------------------------------------- */

static const struct {
    const char *name;
    jwt_alg_t alg;
    int key;            /* fixture key signing it; -1 = the HMAC secret */
} alg_cases[] = {
    {"HS256", JWT_ALG_HS256, -1},      {"HS384", JWT_ALG_HS384, -1},
    {"HS512", JWT_ALG_HS512, -1},      {"RS256", JWT_ALG_RS256, K_RSA},
    {"RS384", JWT_ALG_RS384, K_RSA},   {"RS512", JWT_ALG_RS512, K_RSA},
    {"ES256", JWT_ALG_ES256, K_EC256}, {"ES384", JWT_ALG_ES384, K_EC384},
    {"ES512", JWT_ALG_ES512, K_EC521},
};
#define NALG_CASES (sizeof alg_cases / sizeof alg_cases[0])

/* A token signed by libjwt; claims is a JSON object text or NULL. Free with free(). */
static char *sign(jwt_alg_t alg, const void *key, size_t keylen, const char *claims)
{
    jwt_t *jwt = NULL;
    char *tok;

    assert_int_equal(jwt_new(&jwt), 0);
    if (claims)
        assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, key, (int)keylen), 0);
    tok = jwt_encode_str(jwt);
    assert_non_null(tok);
    jwt_free(jwt);
    return tok;
}

static char *sign_hs(jwt_alg_t alg, const char *secret, const char *claims)
{
    return sign(alg, secret, strlen(secret), claims);
}

static char *sign_with(int key, jwt_alg_t alg, const char *claims)
{
    return sign(alg, fx->keys[key].priv, fx->keys[key].priv_len, claims);
}

/* A claims object text: sub "u1", exp = NOW + exp_in, plus `extra` members if not NULL. */
static const char *claims_exp(long exp_in, const char *extra)
{
    static char buf[512];

    snprintf(buf, sizeof buf, "{\"sub\":\"u1\",\"exp\":%lld%s%s}", (long long)NOW + exp_in,
             extra ? "," : "", extra ? extra : "");
    return buf;
}

static char *b64url(const void *data, size_t len)
{
    char *out = malloc(len / 3 * 4 + 8);
    int n;

    assert_non_null(out);
    n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

/*
 * A token assembled by hand from header and payload texts: signed with HS256 over
 * "header.payload" when secret is not NULL (whatever the header says), else with `sig`
 * as the third part.
 */
static char *hand_token(const char *header, const char *payload, const char *secret,
                        const char *sig)
{
    char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
    char *s = NULL, *tok;
    size_t n = strlen(h) + strlen(p) + 2;

    tok = malloc(n + 200);
    assert_non_null(tok);
    snprintf(tok, n, "%s.%s", h, p);
    if (secret) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mlen = 0;

        assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)tok,
                             strlen(tok), mac, &mlen));
        s = b64url(mac, mlen);
        sig = s;
    }
    snprintf(tok + strlen(tok), 200, ".%s", sig);
    free(h);
    free(p);
    free(s);
    return tok;
}

/* Verifies and checks the reason; on failure also that claims were left empty. */
static void expect(const auth_verifier_t *v, const char *token, time_t now, auth_reason_t want)
{
    auth_claims_t c;
    auth_reason_t got;

    memset(&c, 0xA5, sizeof c); /* whatever the caller had */
    got = auth_verify(v, token, now, &c);
    if (got != want)
        fail_msg("token %.80s%s: got %s, want %s", token ? token : "(null)",
                 token && strlen(token) > 80 ? "..." : "", auth_reason_names[got],
                 auth_reason_names[want]);
    if (got == AUTH_OK) {
        assert_true(json_is_object(c.payload));
    } else {
        assert_null(c.payload);
        assert_null(c.sub);
        assert_int_equal(c.exp, 0);
    }
    auth_claims_clear(&c);
    assert_int_equal(ERR_peek_error(), 0); /* failures leave no OpenSSL error behind */
}

/* Signs with libjwt, expects `want`, frees the token. */
static void expect_signed(const auth_verifier_t *v, char *token, auth_reason_t want)
{
    expect(v, token, NOW, want);
    free(token);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_reason_names(void **state)
{
    static const char *const want[AUTH_REASON_COUNT] = {
        "ok",      "missing",       "malformed", "alg_not_allowed", "bad_signature",
        "expired", "not_yet_valid", "no_exp",    "bad_issuer",      "bad_audience",
    };

    (void)state;
    for (int i = 0; i < AUTH_REASON_COUNT; i++)
        assert_string_equal(auth_reason_names[i], want[i]);
}

/* Each algorithm verifies when it is configured, and is refused when it is not. */
static void test_every_algorithm(void **state)
{
    (void)state;
    for (size_t i = 0; i < NALG_CASES; i++) {
        int key = alg_cases[i].key;
        char others[64] = "";
        vopts_t yes = {.secret = SECRET, .algs = alg_cases[i].name};
        vopts_t no = {.secret = SECRET};
        auth_verifier_t *v, *w;
        auth_claims_t c;
        char *tok = key < 0 ? sign_hs(alg_cases[i].alg, SECRET, claims_exp(60, NULL))
                            : sign_with(key, alg_cases[i].alg, claims_exp(60, NULL));

        if (key >= 0) {
            yes.secret = NULL;
            yes.key = fx->keys[key].path;
        }
        v = verifier(&yes);
        memset(&c, 0, sizeof c);
        assert_int_equal(auth_verify(v, tok, NOW, &c), AUTH_OK);
        assert_string_equal(c.sub, "u1");
        assert_int_equal(c.exp, NOW + 60);
        auth_claims_clear(&c);

        /* Refused by a verifier of the same key kind that accepts the others of its family
         * (for EC: the curve's one algorithm is all a key serves, so an RSA key stands in). */
        for (size_t j = 0; j < NALG_CASES; j++)
            if (j != i && alg_cases[j].name[0] == alg_cases[i].name[0] &&
                alg_cases[j].name[0] != 'E')
                snprintf(others + strlen(others), sizeof others - strlen(others), "%s%s",
                         *others ? "," : "", alg_cases[j].name);
        if (alg_cases[i].name[0] == 'E') {
            no.secret = NULL;
            no.key = fx->keys[K_RSA].path;
            snprintf(others, sizeof others, "RS256,RS384,RS512,ES256,ES384,ES512");
        } else if (key >= 0) {
            no.secret = NULL;
            no.key = fx->keys[key].path;
        }
        no.algs = others;
        w = verifier(&no);
        expect(w, tok, NOW, AUTH_ALG_NOT_ALLOWED);
        auth_verifier_free(w);
        auth_verifier_free(v);
        free(tok);
    }
}

/* ES algorithms are tied to their curve (RFC 7518 §3.4): an EC key serves only one. */
static void test_ec_curve_binding(void **state)
{
    vopts_t all = {.key = fx->keys[K_EC256].path, .algs = "ES256,ES384,ES512"};
    auth_verifier_t *v;

    (void)state;
    v = verifier(&all); /* ES384 and ES512 dropped: they cannot verify with a P-256 key */
    expect_signed(v, sign_with(K_EC256, JWT_ALG_ES256, claims_exp(60, NULL)), AUTH_OK);
    expect_signed(v, sign_with(K_EC384, JWT_ALG_ES384, claims_exp(60, NULL)),
                  AUTH_ALG_NOT_ALLOWED);
    /* libjwt 1.10 would sign SHA-384 with a P-256 key; the header's alg is what is refused. */
    expect_signed(v, sign_with(K_EC256, JWT_ALG_ES384, claims_exp(60, NULL)),
                  AUTH_ALG_NOT_ALLOWED);
    auth_verifier_free(v);
}

/* Empty auth.algorithms: HS256 with a secret, RS256 + ES256 with a public key. */
static void test_default_algorithms(void **state)
{
    vopts_t hs = {.secret = SECRET}, rsa = {.key = fx->keys[K_RSA].path};
    vopts_t ec = {.key = fx->keys[K_EC256].path};
    auth_verifier_t *v;

    (void)state;
    v = verifier(&hs);
    expect_signed(v, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(60, NULL)), AUTH_OK);
    expect_signed(v, sign_hs(JWT_ALG_HS384, SECRET, claims_exp(60, NULL)), AUTH_ALG_NOT_ALLOWED);
    expect_signed(v, sign_hs(JWT_ALG_HS512, SECRET, claims_exp(60, NULL)), AUTH_ALG_NOT_ALLOWED);
    auth_verifier_free(v);

    v = verifier(&rsa);
    expect_signed(v, sign_with(K_RSA, JWT_ALG_RS256, claims_exp(60, NULL)), AUTH_OK);
    expect_signed(v, sign_with(K_RSA, JWT_ALG_RS384, claims_exp(60, NULL)), AUTH_ALG_NOT_ALLOWED);
    expect_signed(v, sign_with(K_EC256, JWT_ALG_ES256, claims_exp(60, NULL)),
                  AUTH_ALG_NOT_ALLOWED); /* an RSA key serves no ES algorithm */
    auth_verifier_free(v);

    v = verifier(&ec);
    expect_signed(v, sign_with(K_EC256, JWT_ALG_ES256, claims_exp(60, NULL)), AUTH_OK);
    expect_signed(v, sign_with(K_RSA, JWT_ALG_RS256, claims_exp(60, NULL)), AUTH_ALG_NOT_ALLOWED);
    auth_verifier_free(v);

    /* The dev secret is the fallback when nothing is configured. */
    {
        config_t cfg;
        auth_verifier_t *d;

        memset(&cfg, 0, sizeof cfg);
        cfg.auth_require_exp = true;
        d = auth_verifier_new(&cfg, "dev-secret", NULL, 0);
        assert_non_null(d);
        expect_signed(d, sign_hs(JWT_ALG_HS256, "dev-secret", claims_exp(60, NULL)), AUTH_OK);
        auth_verifier_free(d);
        cfg.jwt_secret = SECRET; /* a configured secret wins over the dev secret */
        d = auth_verifier_new(&cfg, "dev-secret", NULL, 0);
        assert_non_null(d);
        expect_signed(d, sign_hs(JWT_ALG_HS256, "dev-secret", claims_exp(60, NULL)),
                      AUTH_BAD_SIGNATURE);
        expect_signed(d, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(60, NULL)), AUTH_OK);
        auth_verifier_free(d);
    }
}

/* alg "none" in any spelling, with or without a signature part, is never accepted. */
static void test_alg_none(void **state)
{
    static const char *const headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"none\"}", "{\"alg\":\"None\"}",
        "{\"alg\":\"NONE\",\"typ\":\"JWT\"}", "{\"alg\":\"nOnE\"}",
    };
    vopts_t hs = {.secret = SECRET}, rsa = {.key = fx->keys[K_RSA].path};
    auth_verifier_t *v = verifier(&hs), *w = verifier(&rsa);
    const char *payload = claims_exp(60, NULL);

    (void)state;
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *tok = hand_token(headers[i], payload, NULL, "AAAA");
        char *unsigned_tok = strdup(tok);

        expect(v, tok, NOW, AUTH_ALG_NOT_ALLOWED);
        expect(w, tok, NOW, AUTH_ALG_NOT_ALLOWED);
        /* The RFC 7519 §6.1 unsecured form ends with an empty signature: refused earlier. */
        strrchr(unsigned_tok, '.')[1] = '\0';
        expect(v, unsigned_tok, NOW, AUTH_MALFORMED);
        expect(w, unsigned_tok, NOW, AUTH_MALFORMED);
        free(tok);
        free(unsigned_tok);
    }
    auth_verifier_free(v);
    auth_verifier_free(w);
}

/* "alg" is compared exactly, although libjwt 1.10 maps "hs256" to HS256. */
static void test_alg_exact(void **state)
{
    vopts_t hs = {.secret = SECRET};
    auth_verifier_t *v = verifier(&hs);
    const char *payload = claims_exp(60, NULL);
    char *lower = hand_token("{\"alg\":\"hs256\",\"typ\":\"JWT\"}", payload, SECRET, NULL);
    char *upper = hand_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, SECRET, NULL);
    char *notyp = hand_token("{\"alg\":\"HS256\"}", payload, SECRET, NULL);
    char *typ_lower = hand_token("{\"typ\":\"jwt\",\"alg\":\"HS256\"}", payload, SECRET, NULL);
    char *unknown = hand_token("{\"alg\":\"PS256\",\"typ\":\"JWT\"}", payload, SECRET, NULL);
    char *missing = hand_token("{\"typ\":\"JWT\"}", payload, SECRET, NULL);
    char *number = hand_token("{\"alg\":256,\"typ\":\"JWT\"}", payload, SECRET, NULL);
    char *nul = hand_token("{\"alg\":\"HS256\\u0000x\"}", payload, SECRET, NULL);
    jwt_t *jwt = NULL;

    (void)state;
    expect(v, upper, NOW, AUTH_OK);
    expect(v, notyp, NOW, AUTH_OK);
    expect(v, typ_lower, NOW, AUTH_OK);
    assert_int_equal(jwt_decode(&jwt, lower, (const unsigned char *)SECRET, strlen(SECRET)), 0);
    jwt_free(jwt); /* libjwt alone accepts it ... */
    expect(v, lower, NOW, AUTH_ALG_NOT_ALLOWED); /* ... auth does not */
    expect(v, unknown, NOW, AUTH_ALG_NOT_ALLOWED);
    expect(v, missing, NOW, AUTH_MALFORMED); /* no alg at all: not a JWS header */
    expect(v, number, NOW, AUTH_MALFORMED);
    expect(v, nul, NOW, AUTH_MALFORMED);     /* jansson refuses \u0000 */
    free(lower);
    free(upper);
    free(notyp);
    free(typ_lower);
    free(unknown);
    free(missing);
    free(number);
    free(nul);
    auth_verifier_free(v);
}

static void test_bad_signatures(void **state)
{
    vopts_t hs = {.secret = SECRET, .algs = "HS256,HS512"};
    vopts_t rsa = {.key = fx->keys[K_RSA].path, .algs = "RS256,RS512"};
    vopts_t ec = {.key = fx->keys[K_EC256].path};
    auth_verifier_t *v = verifier(&hs), *r = verifier(&rsa), *e = verifier(&ec);
    char *tok, *forged, *dot;
    size_t n;

    (void)state;
    expect_signed(v, sign_hs(JWT_ALG_HS256, "wrong-secret", claims_exp(60, NULL)),
                  AUTH_BAD_SIGNATURE);
    expect_signed(v, sign_hs(JWT_ALG_HS512, SECRET "x", claims_exp(60, NULL)),
                  AUTH_BAD_SIGNATURE);
    expect_signed(r, sign_with(K_RSA2, JWT_ALG_RS256, claims_exp(60, NULL)), AUTH_BAD_SIGNATURE);
    expect_signed(r, sign_with(K_RSA2, JWT_ALG_RS512, claims_exp(60, NULL)), AUTH_BAD_SIGNATURE);
    expect_signed(e, sign_with(K_EC256B, JWT_ALG_ES256, claims_exp(60, NULL)),
                  AUTH_BAD_SIGNATURE);

    /* A valid token with another payload under its signature. */
    tok = sign_with(K_RSA, JWT_ALG_RS256, claims_exp(60, NULL));
    expect(r, tok, NOW, AUTH_OK);
    {
        char *other = b64url("{\"sub\":\"admin\",\"exp\":1700000060}", 32);

        dot = strchr(tok, '.');
        n = strlen(tok) + strlen(other) + 1;
        forged = malloc(n);
        assert_non_null(forged);
        snprintf(forged, n, "%.*s.%s%s", (int)(dot - tok), tok, other, strchr(dot + 1, '.'));
        expect(r, forged, NOW, AUTH_BAD_SIGNATURE);
        free(other);
        free(forged);
    }
    /* A signature from another token of the same key. */
    {
        char *tok2 = sign_with(K_RSA, JWT_ALG_RS256, claims_exp(61, NULL));
        const char *sig2 = strrchr(tok2, '.');

        n = strlen(tok) + strlen(tok2);
        forged = malloc(n);
        assert_non_null(forged);
        snprintf(forged, n, "%.*s%s", (int)(strrchr(tok, '.') - tok), tok, sig2);
        expect(r, forged, NOW, AUTH_BAD_SIGNATURE);
        free(forged);
        free(tok2);
    }
    /* A truncated signature (its last character made canonical) is base64url, just wrong. */
    tok[strlen(tok) - 4] = '\0';
    tok[strlen(tok) - 1] = 'A';
    expect(r, tok, NOW, AUTH_BAD_SIGNATURE);
    free(tok);
    auth_verifier_free(v);
    auth_verifier_free(r);
    auth_verifier_free(e);
}

/*
 * A SIGHUP reload makes a new verifier while the old one stays allocated: this thread's
 * copies of one verifier's keyed HMAC contexts must never verify for the other, in either
 * order of use, and each must still verify its own tokens afterwards.
 */
static void test_secret_rotation(void **state)
{
    static const jwt_alg_t hs[] = {JWT_ALG_HS256, JWT_ALG_HS384};
    vopts_t a = {.secret = SECRET, .algs = "HS256,HS384"};
    vopts_t b = {.secret = SECRET "-rotated", .algs = "HS256,HS384"};
    auth_verifier_t *va = verifier(&a), *vb = verifier(&b);

    (void)state;
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
            expect_signed(va, sign_hs(hs[i], SECRET, claims_exp(60, NULL)), AUTH_OK);
            expect_signed(vb, sign_hs(hs[i], SECRET, claims_exp(60, NULL)), AUTH_BAD_SIGNATURE);
            expect_signed(vb, sign_hs(hs[i], SECRET "-rotated", claims_exp(60, NULL)), AUTH_OK);
            expect_signed(va, sign_hs(hs[i], SECRET "-rotated", claims_exp(60, NULL)),
                          AUTH_BAD_SIGNATURE);
        }
    }
    auth_verifier_free(vb);
    /* A verifier made after a free: its contexts are its own, not the freed one's. */
    vb = verifier(&b);
    expect_signed(vb, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(60, NULL)), AUTH_BAD_SIGNATURE);
    expect_signed(vb, sign_hs(JWT_ALG_HS256, SECRET "-rotated", claims_exp(60, NULL)), AUTH_OK);
    /* The right HMAC in a non-canonical spelling (a set unused bit in the last character
     * of the 43): refused as malformed, before any comparison. */
    {
        char *tok = sign_hs(JWT_ALG_HS256, SECRET, claims_exp(60, NULL));
        char *last = tok + strlen(tok) - 1;

        expect(va, tok, NOW, AUTH_OK);
        /* The last digit's value is a multiple of 4 (its 2 low bits unused); the ASCII
         * neighbour XOR 1 gives (B for A) is a digit whose value is not. */
        *last = *last == 'A' ? 'B' : (char)(*last ^ 1);
        expect(va, tok, NOW, AUTH_MALFORMED);
        free(tok);
    }
    auth_verifier_free(vb);
    auth_verifier_free(va);
}

/*
 * The key-confusion attack: an HMAC token keyed with the public key's PEM text (which is
 * public). libjwt 1.10 alone accepts it; auth must refuse it before libjwt sees it.
 */
static void test_key_confusion(void **state)
{
    static const jwt_alg_t hmacs[] = {JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512};
    static const int keys[] = {K_RSA, K_EC256};
    const char *payload = claims_exp(60, NULL);

    (void)state;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const testkey_t *key = &fx->keys[keys[k]];
        vopts_t o = {.key = key->path};
        auth_verifier_t *v = verifier(&o);

        for (size_t i = 0; i < sizeof hmacs / sizeof hmacs[0]; i++) {
            char *tok = sign(hmacs[i], key->pub, key->pub_len, payload);
            jwt_t *jwt = NULL;

            assert_int_equal(jwt_decode(&jwt, tok, (const unsigned char *)key->pub,
                                        (int)key->pub_len), 0);
            jwt_free(jwt);
            expect(v, tok, NOW, AUTH_ALG_NOT_ALLOWED);
            free(tok);
        }
        auth_verifier_free(v);
    }
}

static void test_exp(void **state)
{
    vopts_t strict = {.secret = SECRET, .leeway = 0}, lenient = {.secret = SECRET, .leeway = 5};
    auth_verifier_t *s = verifier(&strict), *l = verifier(&lenient);
    auth_claims_t c;
    char *tok;

    (void)state;
    expect_signed(s, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(-100, NULL)), AUTH_EXPIRED);
    expect_signed(s, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(0, NULL)), AUTH_EXPIRED);
    expect_signed(s, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(1, NULL)), AUTH_OK);
    /* now >= exp + leeway is expired: with 5 s, exp = now - 4 passes, now - 5 does not. */
    expect_signed(l, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(0, NULL)), AUTH_OK);
    expect_signed(l, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(-4, NULL)), AUTH_OK);
    expect_signed(l, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(-5, NULL)), AUTH_EXPIRED);
    expect_signed(l, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(-3600, NULL)), AUTH_EXPIRED);

    /* Fractional exp: rounded down (expires up to 1 s early, never late). */
    tok = sign_hs(JWT_ALG_HS256, SECRET, "{\"sub\":\"u1\",\"exp\":1700000001.9}");
    memset(&c, 0, sizeof c);
    assert_int_equal(auth_verify(s, tok, NOW, &c), AUTH_OK);
    assert_int_equal(c.exp, NOW + 1);
    auth_claims_clear(&c);
    expect(s, tok, NOW + 1, AUTH_EXPIRED);
    free(tok);
    expect_signed(s, sign_hs(JWT_ALG_HS256, SECRET, "{\"exp\":1700000000.5}"), AUTH_EXPIRED);

    /* Extremes: no overflow, no undefined behaviour. */
    tok = sign_hs(JWT_ALG_HS256, SECRET, "{\"exp\":9223372036854775807}");
    memset(&c, 0, sizeof c);
    assert_int_equal(auth_verify(l, tok, NOW, &c), AUTH_OK);
    assert_int_equal(c.exp, INT64_MAX);
    auth_claims_clear(&c);
    free(tok);
    tok = sign_hs(JWT_ALG_HS256, SECRET, "{\"exp\":1e300}");
    memset(&c, 0, sizeof c);
    assert_int_equal(auth_verify(l, tok, NOW, &c), AUTH_OK);
    assert_int_equal(c.exp, INT64_MAX);
    auth_claims_clear(&c);
    free(tok);
    expect_signed(l, sign_hs(JWT_ALG_HS256, SECRET, "{\"exp\":-9223372036854775807}"),
                  AUTH_EXPIRED);
    expect_signed(l, sign_hs(JWT_ALG_HS256, SECRET, "{\"exp\":-1e300}"), AUTH_EXPIRED);
    expect_signed(l, sign_hs(JWT_ALG_HS256, SECRET, "{\"exp\":0}"), AUTH_EXPIRED);
    auth_verifier_free(s);
    auth_verifier_free(l);
}

static void test_nbf(void **state)
{
    vopts_t lenient = {.secret = SECRET, .leeway = 5}, strict = {.secret = SECRET};
    auth_verifier_t *l = verifier(&lenient), *s = verifier(&strict);
    char extra[64];

    (void)state;
    snprintf(extra, sizeof extra, "\"nbf\":%lld", (long long)NOW + 6);
    expect_signed(l, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(600, extra)), AUTH_NOT_YET_VALID);
    snprintf(extra, sizeof extra, "\"nbf\":%lld", (long long)NOW + 3600);
    expect_signed(l, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(7200, extra)),
                  AUTH_NOT_YET_VALID);
    snprintf(extra, sizeof extra, "\"nbf\":%lld", (long long)NOW + 5); /* within the leeway */
    expect_signed(l, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(600, extra)), AUTH_OK);
    snprintf(extra, sizeof extra, "\"nbf\":%lld", (long long)NOW);
    expect_signed(s, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(600, extra)), AUTH_OK);
    snprintf(extra, sizeof extra, "\"nbf\":%lld", (long long)NOW + 1);
    expect_signed(s, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(600, extra)), AUTH_NOT_YET_VALID);
    snprintf(extra, sizeof extra, "\"nbf\":%lld.5", (long long)NOW); /* rounded up */
    expect_signed(s, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(600, extra)), AUTH_NOT_YET_VALID);
    expect_signed(s, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(600, "\"nbf\":1e300")),
                  AUTH_NOT_YET_VALID);
    expect_signed(s, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(600, "\"nbf\":-1e300")), AUTH_OK);
    expect_signed(s, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(600, "\"nbf\":\"0\"")),
                  AUTH_MALFORMED);
    auth_verifier_free(l);
    auth_verifier_free(s);
}

/*
 * A missing exp is no_exp when required and fine otherwise. An exp (or nbf) that is present
 * but not a number is always malformed: an expiry that cannot be read is never ignored.
 */
static void test_exp_required_or_not(void **state)
{
    vopts_t required = {.secret = SECRET}, optional = {.secret = SECRET, .exp_optional = true};
    auth_verifier_t *r = verifier(&required), *o = verifier(&optional);
    static const char *const not_numbers[] = {
        "{\"sub\":\"u1\",\"exp\":\"1700003600\"}", "{\"exp\":null}", "{\"exp\":true}",
        "{\"exp\":[1700003600]}", "{\"exp\":{}}",
    };
    auth_claims_t c;
    char *tok;

    (void)state;
    expect_signed(r, sign_hs(JWT_ALG_HS256, SECRET, "{\"sub\":\"u1\"}"), AUTH_NO_EXP);
    expect_signed(r, sign_hs(JWT_ALG_HS256, SECRET, NULL), AUTH_NO_EXP);
    tok = sign_hs(JWT_ALG_HS256, SECRET, "{\"sub\":\"u1\"}");
    memset(&c, 0, sizeof c);
    assert_int_equal(auth_verify(o, tok, NOW, &c), AUTH_OK);
    assert_int_equal(c.exp, 0);
    assert_string_equal(c.sub, "u1");
    auth_claims_clear(&c);
    free(tok);
    expect_signed(o, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(-60, NULL)), AUTH_EXPIRED);
    for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++) {
        expect_signed(r, sign_hs(JWT_ALG_HS256, SECRET, not_numbers[i]), AUTH_MALFORMED);
        expect_signed(o, sign_hs(JWT_ALG_HS256, SECRET, not_numbers[i]), AUTH_MALFORMED);
    }
    auth_verifier_free(r);
    auth_verifier_free(o);
}

static void test_issuer_audience(void **state)
{
    vopts_t both = {.secret = SECRET, .issuer = "https://issuer.example/", .audience = "wshub"};
    vopts_t neither = {.secret = SECRET};
    auth_verifier_t *v = verifier(&both), *any = verifier(&neither);
    static const struct {
        const char *extra;
        auth_reason_t want;
    } cases[] = {
        {"\"iss\":\"https://issuer.example/\",\"aud\":\"wshub\"", AUTH_OK},
        {"\"iss\":\"https://issuer.example/\",\"aud\":[\"other\",\"wshub\"]", AUTH_OK},
        {"\"iss\":\"https://issuer.example/\",\"aud\":[1,null,\"wshub\"]", AUTH_OK},
        {"\"aud\":\"wshub\"", AUTH_BAD_ISSUER},
        {"\"iss\":\"https://issuer.example\",\"aud\":\"wshub\"", AUTH_BAD_ISSUER},
        {"\"iss\":\"HTTPS://ISSUER.EXAMPLE/\",\"aud\":\"wshub\"", AUTH_BAD_ISSUER},
        {"\"iss\":[\"https://issuer.example/\"],\"aud\":\"wshub\"", AUTH_BAD_ISSUER},
        {"\"iss\":null,\"aud\":\"wshub\"", AUTH_BAD_ISSUER},
        {"\"iss\":\"https://issuer.example/\"", AUTH_BAD_AUDIENCE},
        {"\"iss\":\"https://issuer.example/\",\"aud\":\"wshub2\"", AUTH_BAD_AUDIENCE},
        {"\"iss\":\"https://issuer.example/\",\"aud\":\"WSHUB\"", AUTH_BAD_AUDIENCE},
        {"\"iss\":\"https://issuer.example/\",\"aud\":[\"other\"]", AUTH_BAD_AUDIENCE},
        {"\"iss\":\"https://issuer.example/\",\"aud\":[]", AUTH_BAD_AUDIENCE},
        {"\"iss\":\"https://issuer.example/\",\"aud\":[[\"wshub\"]]", AUTH_BAD_AUDIENCE},
        {"\"iss\":\"https://issuer.example/\",\"aud\":{\"wshub\":1}", AUTH_BAD_AUDIENCE},
        {"\"iss\":\"https://issuer.example/\",\"aud\":null", AUTH_BAD_AUDIENCE},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_signed(v, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(60, cases[i].extra)),
                      cases[i].want);
        expect_signed(any, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(60, cases[i].extra)),
                      AUTH_OK); /* not configured: not checked */
    }
    /* The time checks come first: an expired token with a wrong issuer is expired. */
    expect_signed(v, sign_hs(JWT_ALG_HS256, SECRET, claims_exp(-60, "\"iss\":\"x\"")),
                  AUTH_EXPIRED);
    auth_verifier_free(v);
    auth_verifier_free(any);
}

static void test_garbage(void **state)
{
    vopts_t hs = {.secret = SECRET, .exp_optional = true};
    auth_verifier_t *v = verifier(&hs);
    const char *hdr = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; /* {"alg":"HS256","typ":"JWT"} */
    static const char *const malformed[] = {
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "..",
        "...",
        ".e30.AAAA",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..AAAA",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA.",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA.AAAA",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9=.e30.AAAA",    /* padding */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30=.AAAA",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAA=",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e31.AAAA",     /* non-zero unused bits */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAAA",    /* impossible length */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AA+/",     /* standard alphabet */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e 30.AAAA",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA\n",
        " eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AA\xff\xfe",
        "e30!.e30.AAAA",
        "bm90IGpzb24.e30.AAAA",                               /* header "not json" */
        "W10.e30.AAAA",                                       /* header [] */
        "bnVsbA.e30.AAAA",                                    /* header null */
        "IkhTMjU2Ig.e30.AAAA",                                /* header "HS256" */
        "eyJhbGciOiJIUzI1NiIsImFsZyI6IkhTMjU2In0.e30.AAAA",   /* duplicate alg */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXUyJ9.e30.AAAA",      /* typ JWS */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6MX0.e30.AAAA",           /* typ 1 */
        "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiZXhwIl19.e30.AAAA",  /* crit ["exp"] */
        "eyJhbGciOiJIUzI1NiJ9.W10.AAAA",                      /* payload [] */
        "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.AAAA",              /* payload not JSON */
        "eyJhbGciOiJIUzI1NiJ9.e30AAA.AAAA",                   /* "{}\0\0" */
        "eyJhbGciOiJIUzI1NiJ9.eyJhIjoxLCJhIjoyfQ.AAAA",       /* duplicate claim */
    };
    char *big, *tok;
    size_t n;

    (void)state;
    expect(v, NULL, NOW, AUTH_MISSING);
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
        expect(v, malformed[i], NOW, AUTH_MALFORMED);
    /* Well formed, but not signed by us. */
    expect(v, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA", NOW, AUTH_BAD_SIGNATURE);

    /* 100 KB: refused on its length alone. */
    n = 100 * 1024;
    big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'A', n);
    memcpy(big, hdr, strlen(hdr));
    big[strlen(hdr)] = '.';
    big[n - 5] = '.';
    big[n] = '\0';
    expect(v, big, NOW, AUTH_MALFORMED);

    /* Deep nesting in the header is only JSON to reject. */
    {
        char *deep = malloc(3 * 4096 + 8), *enc;
        size_t d = 0;

        assert_non_null(deep);
        for (int i = 0; i < 3000; i++)
            deep[d++] = '[';
        deep[d] = '\0';
        enc = b64url(deep, d);
        snprintf(big, n, "%.4000s.e30.AAAA", enc);
        expect(v, big, NOW, AUTH_MALFORMED);
        free(enc);
        free(deep);
    }

    /* Around AUTH_TOKEN_MAX: a signed token just under it verifies, one at it does not. */
    for (size_t pad = AUTH_TOKEN_MAX * 3 / 4 - 120;; pad++) {
        char *claims = malloc(pad + 32);
        size_t len;

        assert_non_null(claims);
        snprintf(claims, pad + 32, "{\"pad\":\"%0*d\"}", (int)pad, 0);
        tok = sign_hs(JWT_ALG_HS256, SECRET, claims);
        free(claims);
        len = strlen(tok);
        if (len < AUTH_TOKEN_MAX - 4) {
            free(tok);
            continue;
        }
        expect(v, tok, NOW, len < AUTH_TOKEN_MAX ? AUTH_OK : AUTH_MALFORMED);
        free(tok);
        if (len >= AUTH_TOKEN_MAX)
            break;
    }
    free(big);
    auth_verifier_free(v);
}

/* Random mutations of a valid token: never a crash, never accepted, claims left empty. */
static void test_mutations(void **state)
{
    static const char alphabet[] = "AZaz09-_.=+/ \x01\xff\"{}";
    vopts_t hs = {.secret = SECRET};
    auth_verifier_t *v = verifier(&hs);
    char *tok = sign_hs(JWT_ALG_HS256, SECRET, claims_exp(60, "\"channels\":[\"a:*\"]"));
    size_t len = strlen(tok);
    char *m = malloc(len + 1);
    unsigned seed = 12345;

    (void)state;
    assert_non_null(m);
    expect(v, tok, NOW, AUTH_OK);
    for (int iter = 0; iter < 3000; iter++) {
        auth_claims_t c;
        int edits = 1 + (int)(rand_r(&seed) % 3);

        memcpy(m, tok, len + 1);
        for (int e = 0; e < edits; e++)
            m[rand_r(&seed) % len] = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
        if (iter % 10 == 0)
            m[rand_r(&seed) % len] = '\0'; /* truncation */
        memset(&c, 0, sizeof c);
        if (strcmp(m, tok) == 0)
            continue;
        assert_int_not_equal(auth_verify(v, m, NOW, &c), AUTH_OK);
        assert_null(c.payload);
        assert_int_equal(ERR_peek_error(), 0);
    }
    free(m);
    free(tok);
    auth_verifier_free(v);
}

static void test_claims(void **state)
{
    vopts_t rsa = {.key = fx->keys[K_RSA].path};
    auth_verifier_t *v = verifier(&rsa);
    auth_claims_t c;
    char *tok;

    (void)state;
    tok = sign_with(K_RSA, JWT_ALG_RS256,
                    claims_exp(60, "\"channels\":[\"conversation:*\"],\"n\":{\"x\":1}"));
    memset(&c, 0, sizeof c);
    assert_int_equal(auth_verify(v, tok, NOW, &c), AUTH_OK);
    assert_string_equal(c.sub, "u1");
    assert_int_equal(c.exp, NOW + 60);
    assert_true(json_is_array(json_object_get(c.payload, "channels")));
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(c.payload, "channels"), 0)),
        "conversation:*");
    assert_ptr_equal(c.sub, json_string_value(json_object_get(c.payload, "sub")));
    auth_claims_clear(&c);
    assert_null(c.payload);
    assert_null(c.sub);
    auth_claims_clear(&c); /* twice is harmless */
    auth_claims_clear(NULL);
    free(tok);

    /* sub: a string, else NULL. */
    tok = sign_with(K_RSA, JWT_ALG_RS256, "{\"sub\":42,\"exp\":1700000060}");
    memset(&c, 0, sizeof c);
    assert_int_equal(auth_verify(v, tok, NOW, &c), AUTH_OK);
    assert_null(c.sub);
    auth_claims_clear(&c);
    free(tok);
    tok = sign_with(K_RSA, JWT_ALG_RS256, "{\"exp\":1700000060}");
    memset(&c, 0, sizeof c);
    assert_int_equal(auth_verify(v, tok, NOW, &c), AUTH_OK);
    assert_null(c.sub);
    auth_claims_clear(&c);
    free(tok);
    tok = sign_with(K_RSA, JWT_ALG_RS256, "{\"sub\":\"\",\"exp\":1700000060}");
    memset(&c, 0, sizeof c);
    assert_int_equal(auth_verify(v, tok, NOW, &c), AUTH_OK);
    assert_string_equal(c.sub, "");
    auth_claims_clear(&c);
    free(tok);
    auth_verifier_free(v);
}

static void test_verifier_errors(void **state)
{
    char missing[160], err[256];
    vopts_t o;

    (void)state;
    snprintf(missing, sizeof missing, "auth.public_key: cannot read %s: No such file or directory",
             fx->missing_path);
    verifier_fails(&(vopts_t){.key = fx->missing_path}, missing);
    verifier_fails(&(vopts_t){.key = fx->dir}, "auth.public_key: cannot read"); /* a directory */
    verifier_fails(&(vopts_t){.key = fx->garbage_path}, "auth.public_key: not a PEM public key");
    verifier_fails(&(vopts_t){.key = fx->private_path}, "auth.public_key: not a PEM public key");
    verifier_fails(&(vopts_t){.key = "/dev/null"}, "auth.public_key: not a PEM public key");
    verifier_fails(&(vopts_t){.key = fx->keys[K_ED25519].path},
                   "auth.public_key: not an RSA or EC public key");

    /* auth.algorithms against the key kind (config.c checks the same; auth does not rely on it). */
    verifier_fails(&(vopts_t){.key = fx->keys[K_RSA].path, .algs = "RS256,HS256"},
                   "auth.algorithms: HS256 (HMAC) cannot be used with auth.public_key");
    verifier_fails(&(vopts_t){.secret = SECRET, .algs = "HS256,ES256"},
                   "auth.algorithms: ES256 requires auth.public_key");
    verifier_fails(&(vopts_t){.secret = SECRET, .algs = "none"},
                   "auth.algorithms: unknown algorithm \"none\"");
    verifier_fails(&(vopts_t){.secret = SECRET, .algs = "hs256"},
                   "auth.algorithms: unknown algorithm \"hs256\"");
    verifier_fails(&(vopts_t){.key = fx->keys[K_RSA].path, .algs = "ES256,ES384"},
                   "auth.algorithms: ES256 or ES384 cannot verify with the key of "
                   "auth.public_key, which needs RS256, RS384 or RS512");
    verifier_fails(&(vopts_t){.key = fx->keys[K_EC384].path},
                   "auth.algorithms: RS256 or ES256 (the default) cannot verify with the key of "
                   "auth.public_key, which needs ES384");

    /* No key at all. */
    o = (vopts_t){0};
    verifier_fails(&o, "auth.jwt_secret");

    /* Errors are cut to the buffer and a NULL buffer is fine. */
    {
        config_t cfg;

        memset(&cfg, 0, sizeof cfg);
        cfg.auth_public_key = fx->missing_path;
        memset(err, 'x', sizeof err);
        assert_null(auth_verifier_new(&cfg, NULL, err, 10));
        assert_int_equal(strlen(err), 9);
        assert_null(auth_verifier_new(&cfg, NULL, NULL, 0));
        assert_int_equal(ERR_peek_error(), 0);
    }
    auth_verifier_free(NULL);
}

/* Through config_load, as main.c does; the verifier outlives the config. */
static void test_from_config(void **state)
{
    char key_var[160];
    char *env[] = {key_var, "WSHUB_AUTH_ALGORITHMS=es256", "WSHUB_AUTH_ISSUER=iss",
                   "WSHUB_AUTH_AUDIENCE=aud", "WSHUB_AUTH_LEEWAY_S=0",
                   "WSHUB_AUTH_REQUIRE_EXP=false", NULL};
    config_t cfg;
    char err[256];
    auth_verifier_t *v;

    (void)state;
    snprintf(key_var, sizeof key_var, "WSHUB_AUTH_PUBLIC_KEY=%s", fx->keys[K_EC256].path);
    assert_int_equal(config_load(&cfg, NULL, env, err, sizeof err), 0);
    v = auth_verifier_new(&cfg, "dev", err, sizeof err);
    assert_non_null(v);
    config_free(&cfg);
    expect_signed(v, sign_with(K_EC256, JWT_ALG_ES256, "{\"iss\":\"iss\",\"aud\":\"aud\"}"),
                  AUTH_OK);
    expect_signed(v,
                  sign_with(K_EC256, JWT_ALG_ES256,
                            claims_exp(0, "\"iss\":\"iss\",\"aud\":\"aud\"")),
                  AUTH_EXPIRED); /* leeway 0 */
    expect_signed(v, sign_with(K_EC256, JWT_ALG_ES256, "{\"iss\":\"iss\",\"aud\":\"x\"}"),
                  AUTH_BAD_AUDIENCE);
    expect_signed(v, sign_hs(JWT_ALG_HS256, "dev", "{\"iss\":\"iss\",\"aud\":\"aud\"}"),
                  AUTH_ALG_NOT_ALLOWED);
    auth_verifier_free(v);
}

static void test_bearer(void **state)
{
    static const struct {
        const char *value, *token; /* token NULL = none */
    } cases[] = {
        {"Bearer abc.def.ghi", "abc.def.ghi"},
        {"bearer abc", "abc"},
        {"BEARER abc", "abc"},
        {"BeArEr\tabc", "abc"},
        {"  Bearer    abc  ", "abc"},
        {"\tBearer abc\t", "abc"},
        {"Bearer a b", "a b"}, /* passed on: auth_verify calls it malformed */
        {"Basic x", NULL},
        {"Basic YWxhZGRpbjpvcGVuc2VzYW1l", NULL},
        {"Bearer", NULL},
        {"Bearer ", NULL},
        {"Bearer \t ", NULL},
        {"Bearerabc", NULL},
        {"Bearer,abc", NULL},
        {"", NULL},
        {"   ", NULL},
        {"abc", NULL},
        {"Token abc", NULL},
    };
    char buf[16];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got =
            auth_bearer_token(cases[i].value, strlen(cases[i].value), buf, sizeof buf);

        if (!cases[i].token) {
            if (got)
                fail_msg("\"%s\": got \"%s\", want none", cases[i].value, got);
        } else {
            assert_ptr_equal(got, buf);
            assert_string_equal(buf, cases[i].token);
        }
    }
    /* Lengths: value not NUL-terminated, token exactly buflen-1, one more, NUL inside. */
    assert_non_null(auth_bearer_token("Bearer abcXYZ", 10, buf, sizeof buf));
    assert_string_equal(buf, "abc");
    assert_non_null(auth_bearer_token("Bearer 0123456789abcde", 22, buf, sizeof buf));
    assert_string_equal(buf, "0123456789abcde");
    assert_null(auth_bearer_token("Bearer 0123456789abcdef", 23, buf, sizeof buf));
    assert_null(auth_bearer_token("Bearer a\0b", 10, buf, sizeof buf));
    assert_null(auth_bearer_token("Bearer abc", 10, buf, 0));
    assert_null(auth_bearer_token(NULL, 0, buf, sizeof buf));
}

static const char *request_token(const char *query, const char *authorization, char *buf,
                                 size_t buflen)
{
    http_request_t req = {query, authorization};

    return auth_request_token(&req, buf, buflen);
}

static void test_request_token(void **state)
{
    char buf[32];

    (void)state;
    assert_ptr_equal(request_token("token=q.q.q", NULL, buf, sizeof buf), buf);
    assert_string_equal(buf, "q.q.q");
    assert_ptr_equal(request_token(NULL, "Bearer h.h.h", buf, sizeof buf), buf);
    assert_string_equal(buf, "h.h.h");
    assert_ptr_equal(request_token("a=1&token=q.q.q&b=2", "Bearer h.h.h", buf, sizeof buf), buf);
    assert_string_equal(buf, "q.q.q"); /* the query wins */
    assert_ptr_equal(request_token("tokens=x&xtoken=y", "bearer h.h.h", buf, sizeof buf), buf);
    assert_string_equal(buf, "h.h.h");
    assert_ptr_equal(request_token("token=", "Bearer h.h.h", buf, sizeof buf), buf);
    assert_string_equal(buf, "h.h.h"); /* an empty parameter is no credential */
    assert_ptr_equal(request_token("token", "Bearer h.h.h", buf, sizeof buf), buf);
    assert_string_equal(buf, "h.h.h");
    assert_null(request_token(NULL, "Basic x", buf, sizeof buf));
    assert_null(request_token("token=", "Basic x", buf, sizeof buf));
    assert_null(request_token(NULL, NULL, buf, sizeof buf));
    assert_null(request_token("", NULL, buf, sizeof buf));
    assert_null(request_token("other=1", "Bearer ", buf, sizeof buf));
    /* Too long for buf: refused, not replaced by the header. */
    assert_null(request_token("token=0123456789012345678901234567890123456789", "Bearer h.h.h",
                              buf, sizeof buf));
    assert_null(request_token(NULL, "Bearer 0123456789012345678901234567890123456789", buf,
                              sizeof buf));
    assert_null(request_token("token=q", NULL, buf, 0));
}

static void test_origin(void **state)
{
    char *items[] = {"https://app.example.com", "http://localhost:3000"};
    config_strlist_t list = {items, 2}, empty = {NULL, 0};
    const char *o = "https://app.example.com";

    (void)state;
    assert_true(auth_origin_allowed(&empty, NULL, 0));
    assert_true(auth_origin_allowed(&empty, "https://evil.example", 20));
    assert_true(auth_origin_allowed(NULL, "null", 4));
    assert_true(auth_origin_allowed(&list, o, strlen(o)));
    assert_true(auth_origin_allowed(&list, "HTTPS://App.Example.COM", 23));
    assert_true(auth_origin_allowed(&list, "http://localhost:3000", 21));
    assert_true(auth_origin_allowed(&list, "https://app.example.comXYZ", 23)); /* by length */
    assert_false(auth_origin_allowed(&list, NULL, 0));
    assert_false(auth_origin_allowed(&list, "", 0));
    assert_false(auth_origin_allowed(&list, "null", 4));
    assert_false(auth_origin_allowed(&list, "https://app.example.com/", 24));
    assert_false(auth_origin_allowed(&list, "https://app.example.co", 22));
    assert_false(auth_origin_allowed(&list, "https://app.example.com.evil", 28));
    assert_false(auth_origin_allowed(&list, "http://app.example.com", 22));
    assert_false(auth_origin_allowed(&list, "http://localhost:3001", 21));
    assert_false(auth_origin_allowed(&list, "https://app.example.com\0", 24));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_every_algorithm),
        cmocka_unit_test(test_ec_curve_binding),
        cmocka_unit_test(test_default_algorithms),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_exact),
        cmocka_unit_test(test_bad_signatures),
        cmocka_unit_test(test_secret_rotation),
        cmocka_unit_test(test_key_confusion),
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_nbf),
        cmocka_unit_test(test_exp_required_or_not),
        cmocka_unit_test(test_issuer_audience),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_verifier_errors),
        cmocka_unit_test(test_from_config),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_request_token),
        cmocka_unit_test(test_origin),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
