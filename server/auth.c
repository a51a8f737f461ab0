/*
 * auth — see include/wshub/auth.h and PROTOCOLS.md §0.7.
 *
 * libjwt 1.10 checks only the signature, and trusts the token's own "alg" to choose how:
 * given an RSA public key's PEM text and a token saying HS256, it computes an HMAC keyed
 * with that (public) text. So everything that decides whether a token may be verified at
 * all happens here first, on our own strict decoding of the header and payload: the shape
 * (three canonical base64url parts), the algorithm (allow-list, never "none", never HMAC
 * with a public key, only what the key can serve); then libjwt checks the signature with
 * the one key we hold; then the claims (exp, nbf, iss, aud) are checked here.
 *
 * Owns: the verifier. Never: logs, counts, or touches the network; the only blocking call
 * is reading the key file in auth_verifier_new.
 */
#include "wshub/auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "wshub/http.h"
#include "wshub/util.h"

const char *const auth_reason_names[AUTH_REASON_COUNT] = {
    [AUTH_OK] = "ok",
    [AUTH_MISSING] = "missing",
    [AUTH_MALFORMED] = "malformed",
    [AUTH_ALG_NOT_ALLOWED] = "alg_not_allowed",
    [AUTH_BAD_SIGNATURE] = "bad_signature",
    [AUTH_EXPIRED] = "expired",
    [AUTH_NOT_YET_VALID] = "not_yet_valid",
    [AUTH_NO_EXP] = "no_exp",
    [AUTH_BAD_ISSUER] = "bad_issuer",
    [AUTH_BAD_AUDIENCE] = "bad_audience",
};

/* A PEM public key is a few KB at most; this only bounds what a wrong path can cost. */
#define KEY_FILE_MAX (1024 * 1024)

/* ---- algorithms ------------------------------------------------------------------ */

typedef enum { KIND_HMAC, KIND_RSA, KIND_EC } key_kind_t;

typedef struct alg_info {
    const char *name; /* the JWS "alg" value, compared exactly (libjwt ignores case) */
    jwt_alg_t alg;
    key_kind_t kind;
    int curve_nid;    /* KIND_EC: the one curve RFC 7518 §3.4 pairs with it */
    const char *digest; /* KIND_HMAC: the hash of its HMAC */
} alg_info_t;

static const alg_info_t algs[] = {
    {"HS256", JWT_ALG_HS256, KIND_HMAC, 0, "SHA256"},
    {"HS384", JWT_ALG_HS384, KIND_HMAC, 0, "SHA384"},
    {"HS512", JWT_ALG_HS512, KIND_HMAC, 0, "SHA512"},
    {"RS256", JWT_ALG_RS256, KIND_RSA, 0, NULL},
    {"RS384", JWT_ALG_RS384, KIND_RSA, 0, NULL},
    {"RS512", JWT_ALG_RS512, KIND_RSA, 0, NULL},
    {"ES256", JWT_ALG_ES256, KIND_EC, NID_X9_62_prime256v1, NULL},
    {"ES384", JWT_ALG_ES384, KIND_EC, NID_secp384r1, NULL},
    {"ES512", JWT_ALG_ES512, KIND_EC, NID_secp521r1, NULL},
};
#define NALGS (sizeof algs / sizeof algs[0])
#define BIT(i) (1u << (i)) /* an algorithm set: bit i = algs[i] */

static int alg_index(const char *name, size_t len)
{
    for (size_t i = 0; i < NALGS; i++)
        if (strlen(algs[i].name) == len && memcmp(algs[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

struct auth_verifier {
    unsigned char *key;  /* the HMAC secret, or the public key re-encoded as PEM: libjwt
                            parses it again on every verification */
    int key_len;
    bool public_key;     /* key is a public key: HMAC is never accepted */
    unsigned allowed;    /* algorithm set */
    char *issuer;        /* NULL = not checked */
    char *audience;      /* NULL = not checked */
    int64_t leeway_s;
    bool require_exp;
    /* Per allowed HS* algorithm: an HMAC context keyed with the secret, never used itself,
     * only copied (EVP_MAC_CTX_dup reads it, so the workers share it). libjwt's HMAC() fetches
     * HMAC and its digest from the provider on every call, then base64-encodes through BIOs:
     * most of a handshake's cost. NULL: libjwt verifies. */
    EVP_MAC_CTX *hmac[NALGS];
    uint64_t serial;     /* tells the threads' copies of hmac[] (thread_hmac) whose they are */
};

/* ---- the verifier ---------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void fail(char *err, size_t errlen,
                                                       const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The whole file into a malloc'd buffer; -errno on failure (-EFBIG past KEY_FILE_MAX). */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (!f)
        return -errno;
    for (;;) {
        if (n == cap) {
            char *p;

            if (cap >= KEY_FILE_MAX) {
                rc = -EFBIG;
                break;
            }
            cap = cap ? cap * 2 : 4096;
            p = realloc(buf, cap + 1);
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = errno ? -errno : -EIO;
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf; /* allocated before the first read */
    buf[n] = '\0';
    *len = n;
    return 0;
}

/* Sets *fits to the algorithms pkey can serve: every RS* for an RSA key, the ES* of its curve
 * for an EC key. Returns 0, or -1 with err filled for another kind of key or curve. */
static int key_algorithms(EVP_PKEY *pkey, const char *path, unsigned *fits, char *err, size_t errlen)
{
    *fits = 0;
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        for (size_t i = 0; i < NALGS; i++)
            if (algs[i].kind == KIND_RSA)
                *fits |= BIT(i);
        return 0;
    case EVP_PKEY_EC: {
        char curve[64];
        size_t clen = 0;
        int nid = NID_undef;

        if (EVP_PKEY_get_group_name(pkey, curve, sizeof curve, &clen) == 1) {
            nid = OBJ_sn2nid(curve);
            if (nid == NID_undef)
                nid = EC_curve_nist2nid(curve);
        }
        for (size_t i = 0; i < NALGS; i++)
            if (algs[i].kind == KIND_EC && algs[i].curve_nid == nid)
                *fits |= BIT(i);
        if (!*fits) {
            fail(err, errlen, "auth.public_key: EC curve %s is not P-256, P-384 or P-521: %s",
                 clen ? curve : "(unnamed)", path);
            return -1;
        }
        return 0;
    }
    default:
        fail(err, errlen, "auth.public_key: not an RSA or EC public key: %s", path);
        return -1;
    }
}

/* Stores pkey in v as PEM. Returns 0, or -1 with err filled. */
static int store_pem(auth_verifier_t *v, EVP_PKEY *pkey, char *err, size_t errlen)
{
    BIO *out = BIO_new(BIO_s_mem());
    char *pem;
    long pem_len;
    int ret = -1;

    if (!out || PEM_write_bio_PUBKEY(out, pkey) != 1 ||
        (pem_len = BIO_get_mem_data(out, &pem)) <= 0 || !(v->key = malloc((size_t)pem_len))) {
        fail(err, errlen, "auth.public_key: out of memory");
    } else {
        memcpy(v->key, pem, (size_t)pem_len);
        v->key_len = (int)pem_len;
        v->public_key = true;
        ret = 0;
    }
    BIO_free(out);
    return ret;
}

/*
 * Loads auth.public_key: the file must hold a PEM public key OpenSSL parses, RSA or EC on
 * P-256/P-384/P-521. Stores it re-encoded as PEM, so that libjwt parses exactly the key
 * inspected here (not, say, a later block of the same file), and sets *fits to the
 * algorithms that key can serve. Returns 0 or -1 with err filled.
 */
static int load_public_key(auth_verifier_t *v, const char *path, unsigned *fits, char *err,
                           size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    BIO *in = NULL;
    EVP_PKEY *pkey = NULL;
    int rc = read_file(path, &text, &len), ret = -1;

    if (rc < 0) {
        fail(err, errlen, "auth.public_key: cannot read %s: %s", path,
             rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc));
        return -1;
    }
    in = BIO_new_mem_buf(text, (int)len);
    if (in)
        pkey = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL);
    if (!pkey)
        fail(err, errlen, "auth.public_key: not a PEM public key: %s", path);
    else if (key_algorithms(pkey, path, fits, err, errlen) == 0)
        ret = store_pem(v, pkey, err, errlen);
    ERR_clear_error(); /* a failed parse leaves entries in this thread's queue */
    EVP_PKEY_free(pkey);
    BIO_free(in);
    free(text);
    return ret;
}

/* Stores the HMAC secret (auth.jwt_secret, else dev_secret) in v and sets *fits to the HS*
 * algorithms. Returns 0 or -1 with err filled. */
static int load_secret(auth_verifier_t *v, const char *secret, unsigned *fits, char *err, size_t errlen)
{
    size_t len = secret ? strlen(secret) : 0;

    if (len == 0 || len > INT32_MAX) {
        fail(err, errlen, "auth.jwt_secret: no secret (and no development secret)");
        return -1;
    }
    v->key = malloc(len);
    if (!v->key) {
        fail(err, errlen, "auth.jwt_secret: out of memory");
        return -1;
    }
    memcpy(v->key, secret, len);
    v->key_len = (int)len;
    for (size_t i = 0; i < NALGS; i++)
        if (algs[i].kind == KIND_HMAC)
            *fits |= BIT(i);
    return 0;
}

/* "RS256, RS384 or RS512": the names of a set, for errors. */
static void set_names(unsigned set, char *buf, size_t len)
{
    size_t pos = 0, left = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < NALGS; i++)
        left += (set & BIT(i)) != 0;
    for (size_t i = 0; i < NALGS && pos < len; i++) {
        if (!(set & BIT(i)))
            continue;
        left--;
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", algs[i].name,
                                left == 0 ? "" : left == 1 ? " or " : ", ");
    }
}

/* The accepted set: auth.algorithms (or its default) within what the key serves. */
static int choose_algorithms(auth_verifier_t *v, const config_strlist_t *names, unsigned fits,
                             char *err, size_t errlen)
{
    unsigned want = 0;
    char have[96], need[96];

    if (names->n == 0)
        want = v->public_key ? BIT(alg_index("RS256", 5)) | BIT(alg_index("ES256", 5))
                             : BIT(alg_index("HS256", 5));
    for (size_t i = 0; i < names->n; i++) {
        int a = alg_index(names->items[i], strlen(names->items[i]));

        if (a < 0) {
            fail(err, errlen, "auth.algorithms: unknown algorithm \"%.32s\"", names->items[i]);
            return -1;
        }
        if (algs[a].kind == KIND_HMAC && v->public_key) {
            fail(err, errlen, "auth.algorithms: %s (HMAC) cannot be used with auth.public_key",
                 algs[a].name);
            return -1;
        }
        if (algs[a].kind != KIND_HMAC && !v->public_key) {
            fail(err, errlen, "auth.algorithms: %s requires auth.public_key", algs[a].name);
            return -1;
        }
        want |= BIT(a);
    }
    v->allowed = want & fits;
    if (v->allowed)
        return 0;
    set_names(want, have, sizeof have);
    set_names(fits, need, sizeof need);
    fail(err, errlen, "auth.algorithms: %s%s cannot verify with the key of auth.public_key, "
         "which needs %s", have, names->n ? "" : " (the default)", need);
    return -1;
}

/* The keyed HMAC contexts of the allowed HS* algorithms. One that cannot be made is left
 * NULL: that algorithm is then verified by libjwt, as before. */
static void make_hmac_templates(auth_verifier_t *v)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);

    for (size_t i = 0; mac && i < NALGS; i++) {
        if (algs[i].kind != KIND_HMAC || !(v->allowed & BIT(i)))
            continue;
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)algs[i].digest, 0),
            OSSL_PARAM_construct_end()};
        EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);

        if (ctx && EVP_MAC_init(ctx, v->key, (size_t)v->key_len, params) == 1)
            v->hmac[i] = ctx;
        else
            EVP_MAC_CTX_free(ctx);
    }
    EVP_MAC_free(mac); /* each context holds its own reference */
    ERR_clear_error();
}

auth_verifier_t *auth_verifier_new(const config_t *cfg, const char *dev_secret, char *err,
                                   size_t errlen)
{
    auth_verifier_t *v = calloc(1, sizeof *v);
    unsigned fits = 0;

    if (err && errlen)
        err[0] = '\0';
    if (!v) {
        fail(err, errlen, "auth: out of memory");
        return NULL;
    }
    const char *secret = cfg->jwt_secret ? cfg->jwt_secret : dev_secret;
    int rc = cfg->auth_public_key ? load_public_key(v, cfg->auth_public_key, &fits, err, errlen)
                                  : load_secret(v, secret, &fits, err, errlen);
    if (rc < 0)
        goto fail;
    if (choose_algorithms(v, &cfg->auth_algorithms, fits, err, errlen) < 0)
        goto fail;
    if ((cfg->auth_issuer && !(v->issuer = strdup(cfg->auth_issuer))) ||
        (cfg->auth_audience && !(v->audience = strdup(cfg->auth_audience)))) {
        fail(err, errlen, "auth: out of memory");
        goto fail;
    }
    v->leeway_s = cfg->auth_leeway_s;
    v->require_exp = cfg->auth_require_exp;
    if (!v->public_key)
        make_hmac_templates(v);
    static atomic_uint_fast64_t serials;
    v->serial = (uint64_t)atomic_fetch_add(&serials, 1) + 1; /* never 0: no thread's yet */
    return v;
fail:
    auth_verifier_free(v);
    return NULL;
}

void auth_verifier_free(auth_verifier_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < NALGS; i++)
        EVP_MAC_CTX_free(v->hmac[i]);
    if (v->key)
        OPENSSL_cleanse(v->key, (size_t)v->key_len);
    free(v->key);
    free(v->issuer);
    free(v->audience);
    free(v);
}

/* ---- verification ---------------------------------------------------------------- */

/* base64url digit values plus one, 0 for every other byte: one load per character instead
 * of a chain of range tests (a handshake decodes some 400 characters of its token). */
static const unsigned char b64url_digits[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64
};

static int b64url_value(unsigned char c)
{
    return (int)b64url_digits[c] - 1;
}

/*
 * Strict base64url (RFC 7515 §2): the URL-safe alphabet, no padding, no whitespace, and
 * zero unused bits in the last character, so that one text has one meaning (libjwt's own
 * decoder is lenient; what it accepts beyond this never reaches it). Writes at most
 * n * 3 / 4 bytes to out (NULL: only validate). Returns the byte count, or -1.
 */
static long b64url_decode(const char *s, size_t n, unsigned char *out)
{
    unsigned acc = 0;
    int bits = 0;
    long o = 0;

    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int d = b64url_value((unsigned char)s[i]);

        if (d < 0)
            return -1;
        acc = (acc << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (out)
                out[o] = (unsigned char)(acc >> bits);
            o++;
            acc &= (1u << bits) - 1;
        }
    }
    return acc == 0 ? o : -1; /* leftover bits must be zero */
}

/* A base64url part holding a JSON object; NULL if it is anything else. */
static json_t *decode_object(const char *s, size_t n)
{
    unsigned char *buf = malloc(n / 4 * 3 + 3);
    long len;
    json_t *j = NULL;

    if (!buf)
        return NULL;
    len = b64url_decode(s, n, buf);
    if (len >= 0)
        j = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* A JSON number as whole seconds, clamped to int64; round_up picks ceil over floor. */
static int64_t numeric_date(const json_t *j, bool round_up)
{
    double d, t;

    if (json_is_integer(j))
        return (int64_t)json_integer_value(j);
    d = json_real_value(j);
    if (d >= 9.2e18)
        return INT64_MAX;
    if (d <= -9.2e18)
        return INT64_MIN;
    t = (double)(int64_t)d; /* toward zero */
    if (round_up && t < d)
        t += 1;
    if (!round_up && t > d)
        t -= 1;
    return (int64_t)t;
}

/* The header: the algorithm must be one we accept for our key; *alg gets its index. */
static auth_reason_t check_header(const auth_verifier_t *v, const json_t *h, int *alg)
{
    const json_t *a = json_object_get(h, "alg"), *typ = json_object_get(h, "typ");
    int i;

    if (!json_is_string(a))
        return AUTH_MALFORMED;
    /* libjwt 1.10 refuses any other typ; saying so here keeps it from looking like a bad
     * signature. No extension is understood, so a critical one cannot be honoured. */
    if ((typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0)) ||
        json_object_get(h, "crit"))
        return AUTH_MALFORMED;
    i = alg_index(json_string_value(a), json_string_length(a)); /* "none" is not in algs */
    if (i < 0 || !(v->allowed & BIT(i)))
        return AUTH_ALG_NOT_ALLOWED;
    /* The allowed set already excludes it; this line is the key-confusion rule itself. */
    if (algs[i].kind == KIND_HMAC && v->public_key)
        return AUTH_ALG_NOT_ALLOWED;
    *alg = i;
    return AUTH_OK;
}

static bool audience_ok(const json_t *aud, const char *want)
{
    size_t i;
    const json_t *item;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, item) /* no-op unless an array */
        if (json_is_string(item) && strcmp(json_string_value(item), want) == 0)
            return true;
    return false;
}

/* The claims, once the signature holds. *exp gets exp in seconds, or 0 if absent. */
static auth_reason_t check_claims(const auth_verifier_t *v, const json_t *p, time_t now,
                                  int64_t *exp)
{
    const json_t *e = json_object_get(p, "exp"), *nbf = json_object_get(p, "nbf");
    const json_t *iss = json_object_get(p, "iss");
    int64_t t = (int64_t)now;

    *exp = 0;
    /* An unreadable expiry is never ignored, even when exp is optional. */
    if ((e && !json_is_number(e)) || (nbf && !json_is_number(nbf)))
        return AUTH_MALFORMED;
    if (!e && v->require_exp)
        return AUTH_NO_EXP;
    if (e) {
        *exp = numeric_date(e, false);
        if (*exp <= t - v->leeway_s) /* now >= exp + leeway, without overflow near INT64_MAX */
            return AUTH_EXPIRED;
    }
    if (nbf && t + v->leeway_s < numeric_date(nbf, true))
        return AUTH_NOT_YET_VALID;
    if (v->issuer && !(json_is_string(iss) && strcmp(json_string_value(iss), v->issuer) == 0))
        return AUTH_BAD_ISSUER;
    if (v->audience && !audience_ok(json_object_get(p, "aud"), v->audience))
        return AUTH_BAD_AUDIENCE;
    return AUTH_OK;
}

/* Each thread's copies of a verifier's keyed HMAC contexts, made on its first use of that
 * verifier (a reload makes a new one) and freed with the thread: a verification then only
 * resets one (EVP_MAC_init without a key), where a copy per verification (EVP_MAC_CTX_dup
 * and _free) cost 4,400 instructions. */
typedef struct hmac_copies {
    uint64_t serial; /* the verifier they were copied from */
    EVP_MAC_CTX *ctx[NALGS];
} hmac_copies_t;

static pthread_key_t hmac_key;
static bool hmac_key_ok;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_copies_clear(hmac_copies_t *t)
{
    for (size_t i = 0; i < NALGS; i++) {
        EVP_MAC_CTX_free(t->ctx[i]);
        t->ctx[i] = NULL;
    }
}

static void hmac_copies_free(void *arg)
{
    hmac_copies_clear(arg);
    free(arg);
}

static void hmac_key_make(void)
{
    hmac_key_ok = pthread_key_create(&hmac_key, hmac_copies_free) == 0;
}

/* This thread's copy of v's context for algs[alg], or NULL (then the caller copies it). */
static EVP_MAC_CTX *thread_hmac(const auth_verifier_t *v, int alg)
{
    pthread_once(&hmac_once, hmac_key_make);
    if (!hmac_key_ok)
        return NULL;
    hmac_copies_t *t = util_thread_block(hmac_key, sizeof *t);
    if (!t)
        return NULL;
    if (t->serial != v->serial) {
        hmac_copies_clear(t);
        t->serial = v->serial;
    }
    if (!t->ctx[alg])
        t->ctx[alg] = EVP_MAC_CTX_dup(v->hmac[alg]);
    return t->ctx[alg];
}

/* An HS* signature, as libjwt checks it (base64url of the HMAC of header.payload, the text
 * up to the second dot, equal to the third part) with a copy of the keyed context: the
 * signature is canonical base64url (split_token), so comparing the decoded bytes is the same
 * test as comparing the texts. */
static auth_reason_t check_hmac(const auth_verifier_t *v, int alg, const char *token,
                                const char *dot2, size_t len)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE + 3];
    size_t want_len = 0, sig_len = len - (size_t)(dot2 + 1 - token);
    EVP_MAC_CTX *mine = thread_hmac(v, alg), *ctx;
    auth_reason_t r = AUTH_BAD_SIGNATURE;

    /* The thread's copy, back to its keyed state; where a provider cannot reset a context
     * that way, a fresh copy of the template (a verification never depends on the reset). */
    if (mine && EVP_MAC_init(mine, NULL, 0, NULL) != 1) {
        ERR_clear_error();
        mine = NULL;
    }
    if (!(ctx = mine ? mine : EVP_MAC_CTX_dup(v->hmac[alg]))) {
        ERR_clear_error();
        return AUTH_BAD_SIGNATURE;
    }
    if (EVP_MAC_update(ctx, (const unsigned char *)token, (size_t)(dot2 - token)) == 1 &&
        EVP_MAC_final(ctx, want, &want_len, sizeof want) == 1 &&
        sig_len == (want_len * 4 + 2) / 3 && /* unpadded base64 of want_len bytes */
        b64url_decode(dot2 + 1, sig_len, got) == (long)want_len &&
        CRYPTO_memcmp(got, want, want_len) == 0)
        r = AUTH_OK;
    if (!mine)
        EVP_MAC_CTX_free(ctx);
    if (r != AUTH_OK)
        ERR_clear_error(); /* a failed call may have left entries in this thread's queue */
    return r;
}

/* libjwt checks the signature with our one key; it must have used the algorithm we checked. */
static auth_reason_t check_signature(const auth_verifier_t *v, const char *token, int alg)
{
    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, token, v->key, v->key_len);
    auth_reason_t r = AUTH_OK;

    if (rc != 0 || !jwt) {
        ERR_clear_error(); /* a failed verification leaves entries in this thread's queue */
        r = AUTH_BAD_SIGNATURE;
    } else if (jwt_get_alg(jwt) != algs[alg].alg) {
        r = AUTH_ALG_NOT_ALLOWED;
    }
    jwt_free(jwt);
    return r;
}

/* Finds the two dots of header.payload.signature: exactly two, no part empty (a JWS with an
 * empty signature is unsecured, i.e. "none" in disguise), the signature base64url. */
static bool split_token(const char *token, size_t len, const char **dot1, const char **dot2)
{
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;

    if (!d2 || d1 == token || d2 == d1 + 1 || d2 + 1 == token + len ||
        memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) ||
        b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), NULL) < 0)
        return false;
    *dot1 = d1;
    *dot2 = d2;
    return true;
}

auth_reason_t auth_verify(const auth_verifier_t *v, const char *token, time_t now,
                          auth_claims_t *claims)
{
    const char *dot1, *dot2;
    size_t len;
    json_t *header = NULL, *payload = NULL;
    int alg = -1;
    int64_t exp = 0;
    auth_reason_t r;

    memset(claims, 0, sizeof *claims);
    if (!token)
        return AUTH_MISSING;
    len = strnlen(token, AUTH_TOKEN_MAX);
    if (len >= AUTH_TOKEN_MAX)
        return AUTH_MALFORMED;
    if (!split_token(token, len, &dot1, &dot2))
        return AUTH_MALFORMED;
    header = decode_object(token, (size_t)(dot1 - token));
    if (!header)
        return AUTH_MALFORMED;
    r = check_header(v, header, &alg);
    json_decref(header);
    if (r != AUTH_OK)
        return r;
    /* Decoded before the signature check so that a payload libjwt would refuse is reported
     * as malformed rather than as a bad signature. */
    payload = decode_object(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!payload)
        return AUTH_MALFORMED;
    r = v->hmac[alg] ? check_hmac(v, alg, token, dot2, len) : check_signature(v, token, alg);
    if (r == AUTH_OK)
        r = check_claims(v, payload, now, &exp);
    if (r != AUTH_OK) {
        json_decref(payload);
        return r;
    }
    claims->payload = payload;
    claims->sub = json_string_value(json_object_get(payload, "sub")); /* NULL unless a string */
    claims->exp = exp;
    return AUTH_OK;
}

void auth_claims_clear(auth_claims_t *claims)
{
    if (!claims)
        return;
    json_decref(claims->payload);
    memset(claims, 0, sizeof *claims);
}

/* ---- credentials in a request ---------------------------------------------------- */

static bool ascii_equal_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

const char *auth_bearer_token(const char *value, size_t len, char *buf, size_t buflen)
{
    static const char scheme[] = "Bearer";
    const size_t slen = sizeof scheme - 1;
    const char *p = value, *end = value + len;

    if (!value || !buf || buflen == 0 || memchr(value, '\0', len))
        return NULL;
    while (p < end && is_blank(*p))
        p++;
    while (end > p && is_blank(end[-1]))
        end--;
    /* The scheme, then at least one blank (RFC 7235 §2.1: the scheme is case-insensitive). */
    if ((size_t)(end - p) <= slen || !ascii_equal_nocase(p, scheme, slen) || !is_blank(p[slen]))
        return NULL;
    p += slen;
    while (p < end && is_blank(*p))
        p++;
    if (p == end || (size_t)(end - p) >= buflen)
        return NULL;
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = '\0';
    return buf;
}

const char *auth_request_token(const http_request_t *req, char *buf, size_t buflen)
{
    const char *value;
    size_t len = 0;

    if (!buf || buflen == 0)
        return NULL;
    value = http_request_query_param(req, "token", buf, buflen);
    if (value && *value)
        return buf;
    /* NULL from the query is "absent" or "too long": a credential that was sent but does
     * not fit is refused, not silently swapped for the header's. */
    if (!value && http_request_has_query_param(req, "token"))
        return NULL;
    value = http_request_header(req, "Authorization", &len);
    return value ? auth_bearer_token(value, len, buf, buflen) : NULL;
}

auth_reason_t auth_verify_request(const auth_verifier_t *v, const http_request_t *req, time_t now,
                                  auth_claims_t *claims)
{
    char token[AUTH_TOKEN_MAX];
    if (!auth_request_token(req, token, sizeof token))
        return AUTH_MISSING;
    return auth_verify(v, token, now, claims);
}

/* ---- Origin ---------------------------------------------------------------------- */

int auth_origin_allowed(const config_strlist_t *allowed, const char *origin, size_t origin_len)
{
    if (!allowed || allowed->n == 0)
        return 1;
    if (!origin)
        return 0;
    for (size_t i = 0; i < allowed->n; i++)
        if (strlen(allowed->items[i]) == origin_len &&
            ascii_equal_nocase(allowed->items[i], origin, origin_len))
            return 1;
    return 0;
}
