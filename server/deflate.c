/*
 * deflate — see include/wshub/deflate.h. zlib does the compression; this file negotiates,
 * bounds what a client can make us inflate, and keeps one compressor per worker thread.
 */
#include "wshub/deflate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "wshub/util.h"

/* ------------------------------------------------------------------ zlib memory accounting */

static atomic_size_t zlib_bytes;

typedef union zhdr {
    size_t size;
    max_align_t align;
} zhdr_t;

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    size_t n = (size_t)items * size;
    zhdr_t *h = malloc(sizeof *h + n);
    if (!h)
        return Z_NULL;
    h->size = n;
    atomic_fetch_add_explicit(&zlib_bytes, n, memory_order_relaxed);
    return h + 1;
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    if (!p)
        return;
    zhdr_t *h = (zhdr_t *)p - 1;
    atomic_fetch_sub_explicit(&zlib_bytes, h->size, memory_order_relaxed);
    free(h);
}

size_t pmd_zlib_bytes(void) { return atomic_load_explicit(&zlib_bytes, memory_order_relaxed); }

/* ------------------------------------------------------------------ negotiation */

typedef struct cur {
    const char *p, *end;
} cur_t;

static void skip_ows(cur_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* RFC 9110 tchar. */
static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static size_t token(cur_t *c, const char **start)
{
    skip_ows(c);
    *start = c->p;
    while (c->p < c->end && is_tchar(*c->p))
        c->p++;
    return (size_t)(c->p - *start);
}

/* A parameter's value: a token or a quoted-string, unquoted into buf; false when malformed
 * or longer than buf. */
static bool param_value(cur_t *c, char *buf, size_t cap)
{
    skip_ows(c);
    size_t n = 0;
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        while (c->p < c->end && *c->p != '"') {
            if (*c->p == '\\' && ++c->p == c->end)
                return false;
            if (n + 1 >= cap)
                return false;
            buf[n++] = *c->p++;
        }
        if (c->p == c->end)
            return false;
        c->p++;
    } else {
        const char *s;
        n = token(c, &s);
        if (!n || n >= cap)
            return false;
        memcpy(buf, s, n);
    }
    buf[n] = '\0';
    return true;
}

/* 8..15 without leading zeros (RFC 7692 §7.1.2), or -1. */
static int window_bits(const char *v)
{
    if (strlen(v) == 1 && v[0] == '8')
        return 8;
    if (strlen(v) == 1 && v[0] == '9')
        return 9;
    if (strlen(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + (v[1] - '0');
    return -1;
}

/* Skips to just after the next ',' outside quotes (the next offer), or to the end. */
static void skip_offer(cur_t *c)
{
    bool q = false;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (q && ch == '\\' && c->p < c->end)
            c->p++;
        else if (ch == '"')
            q = !q;
        else if (!q && ch == ',')
            return;
    }
}

enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

/* One parameter of a permessage-deflate offer into *o; false: the offer is declined. */
static bool offer_param(cur_t *c, unsigned *seen, int *smwb, int *cmwb)
{
    static const char *const names[] = {"server_no_context_takeover", "client_no_context_takeover",
                                        "server_max_window_bits", "client_max_window_bits"};
    const char *name;
    size_t n = token(c, &name);
    int which = -1;
    for (int i = 0; i < 4; i++)
        if (n == strlen(names[i]) && strncasecmp(name, names[i], n) == 0)
            which = i;
    if (which < 0 || (*seen & (1u << which)))
        return false; /* unknown or repeated (RFC 7692 §7) */
    *seen |= 1u << which;
    skip_ows(c);
    bool has_value = c->p < c->end && *c->p == '=';
    char v[8];
    if (has_value) {
        c->p++;
        if (!param_value(c, v, sizeof v))
            return false;
    }
    if (which <= 1)
        return !has_value;
    int bits = has_value ? window_bits(v) : 0;
    if (which == 2) {
        *smwb = bits;
        return has_value && bits > 0;
    }
    *cmwb = bits; /* 0: the client supports it without asking for a size */
    return bits >= 0;
}

/* One offer starting at c: 1 accepted (c at its end), 0 declined (c after it), -1 the end. */
static int one_offer(cur_t *c, pmd_params_t *p, char *resp, size_t resplen)
{
    const char *name;
    size_t n = token(c, &name);
    skip_ows(c);
    if (!n) {
        if (c->p >= c->end)
            return -1;
        skip_offer(c);
        return 0;
    }
    unsigned seen = 0;
    int smwb = 0, cmwb = 0;
    bool ok = n == 18 && strncasecmp(name, "permessage-deflate", 18) == 0;
    while (ok && c->p < c->end && *c->p == ';') {
        c->p++;
        ok = offer_param(c, &seen, &smwb, &cmwb);
        skip_ows(c);
    }
    if (!ok || (c->p < c->end && *c->p != ',')) {
        skip_offer(c);
        return 0;
    }
    *p = (pmd_params_t){.server_bits = smwb ? (uint8_t)smwb : 15,
                        .client_bits = cmwb > 0 ? (uint8_t)cmwb : 15,
                        .client_no_takeover = (seen & P_CNCT) != 0};
    int w = snprintf(resp, resplen, "permessage-deflate; server_no_context_takeover%s", p->client_no_takeover ? "; client_no_context_takeover" : "");
    if (smwb && w > 0 && (size_t)w < resplen)
        w += snprintf(resp + w, resplen - (size_t)w, "; server_max_window_bits=%d", smwb);
    if (cmwb > 0 && w > 0 && (size_t)w < resplen)
        w += snprintf(resp + w, resplen - (size_t)w, "; client_max_window_bits=%d", cmwb);
    return w > 0 && (size_t)w < resplen ? 1 : 0;
}

int pmd_negotiate(const char *value, size_t len, pmd_params_t *p, char *resp, size_t resplen)
{
    cur_t c = {value, value + len};
    for (;;) {
        int r = one_offer(&c, p, resp, resplen);
        if (r != 0)
            return r > 0;
    }
}

/* ------------------------------------------------------------------ inflating */

struct pmd {
    pmd_params_t p;
    bool ready;  /* inf is initialised */
    z_stream inf;
};

pmd_t *pmd_new(const pmd_params_t *p)
{
    pmd_t *z = calloc(1, sizeof *z);
    if (z)
        z->p = *p;
    return z;
}

void pmd_free(pmd_t *z)
{
    if (z && z->ready)
        inflateEnd(&z->inf);
    free(z);
}

const pmd_params_t *pmd_params(const pmd_t *z) { return &z->p; }

static int inflater(pmd_t *z)
{
    if (z->ready)
        return 0;
    z->inf = (z_stream){.zalloc = z_alloc, .zfree = z_free};
    if (inflateInit2(&z->inf, -(int)z->p.client_bits) != Z_OK)
        return -1;
    z->ready = true;
    return 0;
}

/* Runs inflate over in and the 00 00 ff ff tail into a buffer that grows up to max + 1. */
static int inflate_all(z_stream *st, const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *outlen)
{
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    size_t cap = len * 4 + 256 < max + 1 ? len * 4 + 256 : max + 1, used = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return PMD_NOMEM;
    st->next_in = (Bytef *)in;
    st->avail_in = (uInt)len;
    bool tail_in = false, full = false;
    int r = Z_OK;
    for (;;) {
        if (!st->avail_in && !tail_in) {
            st->next_in = (Bytef *)tail;
            st->avail_in = sizeof tail;
            tail_in = true;
        } else if (!st->avail_in && !full) {
            break; /* everything in, and the last call had room for everything out */
        }
        if (used == cap) {
            if (cap > max) {
                free(buf);
                return PMD_TOO_BIG;
            }
            size_t ncap = cap * 2 < max + 1 ? cap * 2 : max + 1;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return PMD_NOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        size_t room = cap - used < UINT32_MAX ? cap - used : UINT32_MAX;
        st->next_out = buf + used;
        st->avail_out = (uInt)room;
        r = inflate(st, Z_SYNC_FLUSH);
        used += room - st->avail_out;
        full = st->avail_out == 0;
        if (r == Z_STREAM_END)
            break; /* a final block: the message ends here */
        if (r != Z_OK && r != Z_BUF_ERROR) {
            free(buf);
            return r == Z_MEM_ERROR ? PMD_NOMEM : PMD_CORRUPT;
        }
    }
    if (used > max) {
        free(buf);
        return PMD_TOO_BIG;
    }
    /* After the tail, a whole message leaves inflate between blocks (data_type bit 128). */
    if (r != Z_STREAM_END && !(st->data_type & 128)) {
        free(buf);
        return PMD_CORRUPT;
    }
    *out = buf;
    *outlen = used;
    return r == Z_STREAM_END ? 1 : PMD_OK;
}

int pmd_inflate(pmd_t *z, const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *outlen)
{
    if (len > UINT32_MAX)
        return PMD_TOO_BIG;
    if (inflater(z) != 0)
        return PMD_NOMEM;
    int r = inflate_all(&z->inf, in, len, max, out, outlen);
    if (r < 0 || z->p.client_no_takeover) {
        /* Without context takeover the inflater lives only during a message; a failure
         * ends the connection anyway. */
        inflateEnd(&z->inf);
        z->ready = false;
    } else if (r == 1) {
        inflateReset(&z->inf); /* after a final block the next message starts a new stream */
    }
    return r < 0 ? r : PMD_OK;
}

/* ------------------------------------------------------------------ deflating */

/* The compressors of one thread, by window bits (9..15), made when first used. */
typedef struct deflaters {
    uint16_t ready;
    z_stream s[16];
} deflaters_t;

static pthread_key_t deflaters_key;
static pthread_once_t deflaters_once = PTHREAD_ONCE_INIT;

static void deflaters_free(void *arg)
{
    deflaters_t *d = arg;
    for (int i = 0; i < 16; i++)
        if (d->ready & (1u << i))
            deflateEnd(&d->s[i]);
    free(d);
}

static void deflaters_key_make(void) { pthread_key_create(&deflaters_key, deflaters_free); }

static z_stream *deflater(int bits)
{
    /* zlib has no 8-bit raw window; 9 bits never reach back more than 250 bytes (its window
     * less MIN_LOOKAHEAD), so its output is valid for a client that allowed 8. */
    if (bits < 9)
        bits = 9;
    pthread_once(&deflaters_once, deflaters_key_make);
    deflaters_t *d = util_thread_block(deflaters_key, sizeof *d);
    if (!d)
        return NULL;
    z_stream *st = &d->s[bits];
    if (!(d->ready & (1u << bits))) {
        *st = (z_stream){.zalloc = z_alloc, .zfree = z_free};
        if (deflateInit2(st, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return NULL;
        d->ready |= (uint16_t)(1u << bits);
    }
    return st;
}

frame_t *pmd_frame(int opcode, const void *data, size_t len, int bits)
{
    if (len < PMD_MIN_BYTES || len > UINT32_MAX - 1024)
        return NULL;
    z_stream *st = deflater(bits);
    if (!st)
        return NULL;
    size_t bound = deflateBound(st, (uLong)len) + 16; /* + the sync flush's empty block */
    frame_t *f = frame_new(bound + 10);
    if (!f)
        return NULL;
    st->next_in = (Bytef *)data;
    st->avail_in = (uInt)len;
    st->next_out = f->data + 10;
    st->avail_out = (uInt)bound;
    int r = deflate(st, Z_SYNC_FLUSH);
    bool done = r == Z_OK && st->avail_in == 0 && st->avail_out > 0;
    size_t n = bound - st->avail_out;
    deflateReset(st); /* no context takeover: the next message starts afresh */
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    if (!done || n < 4 || memcmp(f->data + 10 + n - 4, tail, 4) != 0 || n - 4 >= len) {
        frame_release(&f);
        return NULL;
    }
    n -= 4;
    uint8_t hdr[10];
    size_t hl = frame_header(hdr, opcode, n);
    hdr[0] |= 0x40; /* RSV1: a compressed message */
    memmove(f->data + hl, f->data + 10, n);
    memcpy(f->data, hdr, hl);
    f->len = (uint32_t)(hl + n);
    return frame_shrink(f); /* it was allocated for deflateBound: about the plain size */
}

frame_t *pmd_shared(frame_t *f)
{
    frame_t *z = atomic_load_explicit(&f->deflated, memory_order_acquire);
    if (z)
        return z == FRAME_NOT_DEFLATED ? NULL : z;
    /* A fan-out frame: FIN, no RSV, a data opcode, unmasked, minimal length (frame_header). */
    if (f->len < 2)
        return NULL;
    int op = f->data[0] & 0x0f;
    if ((f->data[0] & 0xf0) != 0x80 || (op != WS_OP_TEXT && op != WS_OP_BINARY))
        return NULL;
    size_t hl = 2, plen = f->data[1] & 0x7f;
    if (plen == 126) {
        hl = 4;
        plen = f->len >= 4 ? (size_t)f->data[2] << 8 | f->data[3] : 0;
    } else if (plen == 127) {
        hl = 10;
        plen = 0;
        for (int i = 0; i < 8 && f->len >= 10; i++)
            plen = plen << 8 | f->data[2 + i];
    }
    if (plen < PMD_MIN_BYTES || hl + plen != f->len)
        return NULL;
    frame_t *built = pmd_frame(op, f->data + hl, plen, PMD_SHARED_BITS);
    if (built)
        built->born_ns = f->born_ns;
    frame_t *expected = NULL;
    if (atomic_compare_exchange_strong_explicit(&f->deflated, &expected, built ? built : FRAME_NOT_DEFLATED,
                                                memory_order_acq_rel, memory_order_acquire))
        return built;
    /* Another worker built it first: every session shares theirs. */
    frame_release(&built);
    return expected == FRAME_NOT_DEFLATED ? NULL : expected;
}
