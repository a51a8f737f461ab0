/*
 * tokenize.c — from text to tokens: decodes and folds each code point (chars.c), builds
 * word tokens of letters, digits, l33t symbols and masks with their normal form (l33t read
 * as letters, the ambiguous ones recorded), classifies the gaps between them, marks
 * sentence starts, Title-case words, initials, links and masked words, drops e-mail
 * addresses, and groups fragments that may be one obfuscated word ("f.u.c.k").
 *
 * Owns: the tokens, the normalised characters and the longest character run of struct
 * scan. Never: looks words up (match.c) or scores.
 */
#include "scan_internal.h"

#include <string.h>

struct gap {
    unsigned chars;
    uint8_t space, tight, other, brk, dot;
};

struct building {
    size_t b0;       /* first byte */
    size_t c0;       /* first normalised character */
    unsigned upper, cased;
    int first_upper; /* -1 before the first letter */
    int foreign;
};

static int push_token(struct scan *sc, struct tok *t)
{
    if (grow((void **)&sc->tok, &sc->captok, sc->ntok + 1, sizeof *sc->tok)) {
        sc->oom = 1;
        return -1;
    }
    sc->tok[sc->ntok++] = *t;
    return 0;
}

static uint8_t gap_kind(const struct gap *g)
{
    if (g->other || g->chars > 3)
        return GAP_OTHER;
    if (g->space && g->tight)
        return GAP_MIXED;
    return g->space ? GAP_SPACE : GAP_TIGHT;
}

/* Strips the symbols at the edges of norm[*a .. *z): leading masks and "!+|" (they join
 * the gap before), trailing "!+|@" (and masks, if it started with one). Returns whether a
 * trailing '!' ended a sentence. */
static int strip_edges(const struct scan *sc, struct gap *g, size_t *a, size_t *z)
{
    const char *s = sc->norm;
    const uint8_t *cl = sc->ncls;
    int lead_mask = 0;
    while (*a < *z && (cl[*a] == CL_MASK || (cl[*a] == CL_LEET && strchr("!+|", s[*a])))) {
        lead_mask |= cl[*a] == CL_MASK;
        g->brk |= s[*a] == '!';
        (*a)++;
        g->other = 1;
    }
    int trail_bang = 0;
    while (*z > *a && ((lead_mask && cl[*z - 1] == CL_MASK) ||
                       (cl[*z - 1] == CL_LEET && strchr("!+|@", s[*z - 1])))) {
        trail_bang |= s[*z - 1] == '!';
        (*z)--;
    }
    return trail_bang;
}

/* Reads the digits and l33t symbols of norm[a .. z) as letters, recording in t the ones
 * that have a second reading. */
static void map_leet(struct scan *sc, struct tok *t, size_t a, size_t z, unsigned letters)
{
    char *s = sc->norm;
    const uint8_t *cl = sc->ncls;
    for (size_t i = a; i < z; i++) {
        if (cl[i] != CL_DIGIT && cl[i] != CL_LEET)
            continue;
        char alt;
        char raw = s[i];
        s[i] = modengine__leet(raw, &alt);
        int ambiguous = alt != 0;
        if (raw == '@' && i == a && letters) /* "@name" is a mention, "@ss" is "ass" */
            ambiguous = 1, alt = 0;          /* read both with 'a' and without it */
        if (ambiguous && t->namb < MAXAMB && i - a < 65535) {
            t->apos[t->namb] = (uint16_t)(i - a);
            t->asub[t->namb++] = alt;
        }
    }
}

/* Fills in the rest of a kept token norm[a .. z) and pushes it. */
static int keep_token(struct scan *sc, struct tok *t, const struct building *b, size_t a,
                      size_t z, unsigned letters, unsigned masks)
{
    map_leet(sc, t, a, z, letters);
    t->flags |= masks ? TK_MASKED : 0;
    t->n0 = (uint32_t)a;
    t->nlen = (uint32_t)(z - a);
    t->upper = (uint16_t)(b->upper > 65535 ? 65535 : b->upper);
    t->cased = (uint16_t)(b->cased > 65535 ? 65535 : b->cased);
    if (b->first_upper == 1 && b->upper == 1 && letters >= 2)
        t->flags |= TK_TITLE;
    if (letters == 1 && z - a == 1 && b->upper == 1)
        t->flags |= TK_INITIAL;
    if (b->foreign)
        t->flags |= TK_FOREIGN;
    return push_token(sc, t);
}

/* Ends the token whose characters are norm[b->c0 .. nnorm): strips edge symbols, maps
 * l33t, decides what kind of token it is, and resets the gap. */
static void finish_token(struct scan *sc, struct building *b, struct gap *g)
{
    const uint8_t *cl = sc->ncls;
    size_t a = b->c0, z = sc->nnorm;
    int trail_bang = strip_edges(sc, g, &a, &z);
    unsigned letters = 0, masks = 0;
    for (size_t i = a; i < z; i++) {
        letters += cl[i] == CL_LETTER;
        masks += cl[i] == CL_MASK;
    }
    struct tok t;
    memset(&t, 0, sizeof t);
    t.gap = gap_kind(g);
    if (sc->ntok == 0 || g->brk || (g->dot && !(sc->tok[sc->ntok - 1].flags & TK_INITIAL)))
        t.flags |= TK_SENT;
    int keep = 1;
    if (letters == 0) {
        keep = z - a == 1 && (cl[a] == CL_DIGIT || cl[a] == CL_LEET);
        t.flags |= TK_SYM1;
    } else {
        t.flags |= TK_WORD;
    }
    long k = modengine__span_at(sc, b->b0);
    if (k >= 0) {
        if (sc->span[k].email)
            keep = 0; /* an address is a personal identifier, not words */
        t.flags |= TK_URL;
    }
    if (masks && (letters == 0 || letters + masks < 3))
        keep = 0;
    if (!keep) {
        g->other = 1; /* dropped content breaks phrases and joins across it */
        return;
    }
    if (keep_token(sc, &t, b, a, z, letters, masks) != 0)
        return;
    memset(g, 0, sizeof *g);
    g->brk = (uint8_t)trail_bang;
    if (z < sc->nnorm)
        g->other = 1;
}

/* "don't" -> "dont": an apostrophe between word characters joins them. Does the next code
 * point after s[i] that is not ignored make one? */
static int apostrophe_joins(const struct scan *sc, size_t i)
{
    const uint8_t *s = sc->text;
    size_t len = sc->len;
    struct cpinfo next;
    next.cls = CL_SEP;
    while (i < len) {
        classify_cp(sc->e, decode_cp(s, len, &i), &next);
        if (next.cls != CL_IGNORE)
            break;
    }
    return next.cls == CL_LETTER || next.cls == CL_DIGIT || next.cls == CL_LEET;
}

/* Adds one word character (starting a token at byte `at` if none is being built). */
static void add_char(struct scan *sc, struct building *b, int *in_tok, const struct cpinfo *ci,
                     size_t at)
{
    if (!*in_tok) {
        *in_tok = 1;
        b->b0 = at;
        b->c0 = sc->nnorm;
        b->upper = b->cased = 0;
        b->first_upper = -1;
        b->foreign = 0;
    }
    for (unsigned j = 0; j < ci->n; j++) {
        sc->norm[sc->nnorm] = ci->out[j];
        sc->ncls[sc->nnorm++] = ci->cls;
    }
    if (ci->cls == CL_LETTER) {
        if (b->first_upper < 0)
            b->first_upper = ci->upper;
        b->upper += ci->upper;
        b->cased += ci->upper | ci->lower;
        b->foreign |= ci->out[0] == PLACEHOLDER;
    }
}

/* Adds one character between tokens to the gap. */
static void add_gap(struct gap *g, const struct cpinfo *ci, uint32_t cp)
{
    g->chars++;
    if (ci->cls == CL_SPACE)
        g->space = 1;
    else if (ci->tight)
        g->tight = 1;
    else
        g->other = 1;
    if (ci->brk)
        g->brk = 1;
    if (cp == '.')
        g->dot = 1;
}

/* The longest run of one repeated non-space code point, for the repetition detector. */
struct run {
    uint32_t prev;
    unsigned len;
};

static void track_run(struct scan *sc, struct run *r, uint32_t cp, const struct cpinfo *ci)
{
    if (ci->cls == CL_SPACE) {
        r->prev = 0;
        return;
    }
    r->len = cp == r->prev ? r->len + 1 : 1;
    r->prev = cp;
    if (r->len > sc->longest_run)
        sc->longest_run = r->len;
}

void modengine__tokenize(struct scan *sc)
{
    const uint8_t *s = sc->text;
    size_t len = sc->len, i = 0;
    struct gap g;
    struct building b;
    struct run run = {0, 0};
    int in_tok = 0;
    memset(&g, 0, sizeof g);
    memset(&b, 0, sizeof b);
    while (i < len && !sc->oom) {
        size_t at = i;
        uint32_t cp = decode_cp(s, len, &i);
        struct cpinfo ci;
        classify_cp(sc->e, cp, &ci);
        if (ci.cls == CL_IGNORE)
            continue;
        track_run(sc, &run, cp, &ci);
        if (ci.cls == CL_APOS && in_tok && apostrophe_joins(sc, i))
            continue;
        if (ci.cls == CL_LETTER || ci.cls == CL_DIGIT || ci.cls == CL_LEET ||
            ci.cls == CL_MASK) {
            add_char(sc, &b, &in_tok, &ci, at);
            continue;
        }
        if (in_tok) {
            finish_token(sc, &b, &g);
            in_tok = 0;
        }
        add_gap(&g, &ci, cp);
    }
    if (in_tok && !sc->oom)
        finish_token(sc, &b, &g);
}

void modengine__mark_groups(struct scan *sc)
{
    uint32_t a = 0;
    while (a < sc->ntok) {
        uint32_t b = a + 1;
        while (b < sc->ntok) {
            const struct tok *x = &sc->tok[b - 1], *y = &sc->tok[b];
            int ok = !((x->flags | y->flags) & (TK_URL | TK_MASKED));
            if (ok && y->gap == GAP_TIGHT)
                ok = 1;
            else if (ok && (y->gap == GAP_SPACE || y->gap == GAP_MIXED))
                ok = x->nlen == 1 && y->nlen == 1;
            else
                ok = 0;
            if (!ok)
                break;
            b++;
        }
        if (b - a >= 2)
            for (uint32_t k = a; k < b; k++)
                sc->tok[k].gend = b;
        a = b;
    }
}
