/*
 * match.c — finding the list entries in the tokens. A token's normal form keeps its l33t
 * symbols ambiguous (1 = i or l) and is tried in every reading; a reading is reduced to a
 * skeleton (runs of one letter collapsed) plus the run lengths, and a list word matches
 * when the skeletons are equal and every run of the token is as long as the list word's
 * run or drawn out to 3+: "fuuuck" matches "fuck"; "as" is not "ass" and "assess" is not
 * "asses". Fragments glued by separators ("f.u.c.k", "f u c k") are joined into windows
 * and tried the same way; masked tokens ("f*ck") are matched as globs against one-word
 * entries. Phrases continue word by word over the following tokens (the trie, trie.c).
 *
 * Owns: the hits and lexicon flags of struct scan, and the exception check. Never: raw
 * substring search outside the entries that ask for it ("*stem*"), which is what keeps
 * Scunthorpe, assistant and therapist clean; or deciding what a hit is worth (score.c).
 */
#include "scan_internal.h"

#include <string.h>

static void token_view(const struct scan *sc, const struct tok *t, struct view *v)
{
    v->s = sc->norm + t->n0;
    v->n = t->nlen;
    v->namb = t->namb;
    memcpy(v->apos, t->apos, sizeof v->apos);
    memcpy(v->asub, t->asub, sizeof v->asub);
}

/* Reading `variant` (bit k: ambiguous symbol k read the second way) of v, reduced to its
 * skeleton and runs. Returns the skeleton length, or -1 if it cannot match a list word. */
static int skeletonize(const struct view *v, unsigned variant, char *sk, uint8_t *runs)
{
    int k = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        char c = v->s[i];
        for (unsigned a = 0; a < v->namb; a++)
            if (v->apos[a] == i && (variant >> a & 1))
                c = v->asub[a];
        if (!c)
            continue;
        if (c == PLACEHOLDER || c == '*')
            return -1;
        if (k && sk[k - 1] == c) {
            if (runs[k - 1] < 255)
                runs[k - 1]++;
            continue;
        }
        if (k == MAXWORD)
            return -1;
        sk[k] = c;
        runs[k++] = 1;
    }
    return k;
}

/* Same letters, and every run of the text as long as the list word's or drawn out to 3+
 * letters: "fuuuck" and "asss" match, but "assess" is not "asses" and "as" is not "ass". */
static int seg_fits(const char *ws, const uint8_t *wr, const char *sk, const uint8_t *runs, int n)
{
    if (memcmp(ws, sk, (size_t)n) != 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (runs[i] != wr[i] && (runs[i] < wr[i] || runs[i] < 3))
            return 0;
    return 1;
}

static int word_fits(const modengine_t *e, const struct mword *w, const char *sk,
                     const uint8_t *runs, int n)
{
    const char *ws = e->chars + w->off;
    const uint8_t *wr = (const uint8_t *)ws + w->len;
    int L = w->len;
    if (n < L)
        return 0;
    switch (w->wild) {
    case 0:
        return n == L && seg_fits(ws, wr, sk, runs, L);
    case W_TRAIL:
        return seg_fits(ws, wr, sk, runs, L);
    case W_LEAD:
        return seg_fits(ws, wr, sk + n - L, runs + n - L, L);
    default:
        for (int i = 0; i + L <= n; i++)
            if (seg_fits(ws, wr, sk + i, runs + i, L))
                return 1;
        return 0;
    }
}

static int view_fits(const modengine_t *e, const struct mword *w, const struct view *v)
{
    char sk[MAXWORD];
    uint8_t runs[MAXWORD];
    for (unsigned m = 0; m < (1u << v->namb); m++) {
        int n = skeletonize(v, m, sk, runs);
        if (n > 0 && word_fits(e, w, sk, runs, n))
            return 1;
    }
    return 0;
}

/* A window of fragments [a, b) of one join group may be read as one word: at most
 * MAXFRAG fragments, and fragments glued only by punctuation must include a short one
 * (so that "well-known" is never read as "wellknown"). */
static int window_view(const struct scan *sc, uint32_t a, uint32_t b, char *buf, struct view *v)
{
    uint32_t k = 0;
    int spaced = 0, short_frag = 0;
    if (b - a < 2 || b - a > MAXFRAG)
        return 0;
    v->namb = 0;
    for (uint32_t t = a; t < b; t++) {
        const struct tok *tk = &sc->tok[t];
        if (k + tk->nlen > MAXJOIN)
            return 0;
        for (unsigned j = 0; j < tk->namb && v->namb < MAXAMB; j++) {
            v->apos[v->namb] = (uint16_t)(k + tk->apos[j]);
            v->asub[v->namb++] = tk->asub[j];
        }
        memcpy(buf + k, sc->norm + tk->n0, tk->nlen);
        k += tk->nlen;
        short_frag |= tk->nlen <= 2;
        if (t > a && sc->tok[t].gap != GAP_TIGHT)
            spaced = 1;
    }
    if (!spaced && !short_frag)
        return 0;
    v->s = buf;
    v->n = k;
    return 1;
}

/* Does one of the cached readings of token t fit list word w? */
static int token_fits(const struct scan *sc, const struct tok *t, const struct mword *w)
{
    if (!t->nvar)
        return 0; /* nothing cached, and sc->skel may still be NULL (NULL + 0 is undefined) */
    const uint8_t *p = sc->skel + t->sk0;
    for (unsigned r = 0; r < t->nvar; r++) {
        unsigned n = p[0];
        if (n && word_fits(sc->e, w, (const char *)p + 1, p + 1 + n, (int)n))
            return 1;
        p += 1 + 2 * n;
    }
    return 0;
}

/* Computes and caches the readings of every unmasked token. */
static void cache_readings(struct scan *sc)
{
    char sk[MAXWORD];
    uint8_t runs[MAXWORD];
    for (uint32_t i = 0; i < sc->ntok; i++) {
        struct tok *t = &sc->tok[i];
        struct view v;
        t->sk0 = (uint32_t)sc->nskel;
        t->nvar = 0;
        if (t->flags & TK_MASKED)
            continue;
        token_view(sc, t, &v);
        for (unsigned m = 0; m < (1u << v.namb); m++) {
            int n = skeletonize(&v, m, sk, runs);
            if (n < 0)
                n = 0;
            if (grow((void **)&sc->skel, &sc->capskel, sc->nskel + 1 + 2 * (size_t)n, 1)) {
                sc->oom = 1;
                return;
            }
            sc->skel[sc->nskel] = (uint8_t)n;
            memcpy(sc->skel + sc->nskel + 1, sk, (size_t)n);
            memcpy(sc->skel + sc->nskel + 1 + n, runs, (size_t)n);
            sc->nskel += 1 + 2 * (size_t)n;
            t->nvar++;
        }
    }
}

/* Tokens consumed when list word w is read at token pos (a token, or joined fragments);
 * 0 when it does not fit. */
static uint32_t match_word_at(struct scan *sc, const struct mword *w, uint32_t pos)
{
    if (pos >= sc->ntok)
        return 0;
    const struct tok *t = &sc->tok[pos];
    struct view v;
    if (token_fits(sc, t, w))
        return 1;
    if (t->gend > pos + 1 && sc->window_budget) {
        /* Joined fragments start with this token's first letter (either reading). */
        char wc = sc->e->chars[w->off], c0 = sc->norm[t->n0];
        int alt0 = t->namb && t->apos[0] == 0 && t->asub[0] == wc;
        if (!(w->wild & W_LEAD) && c0 != wc && !alt0)
            return 0;
        char buf[MAXJOIN];
        for (uint32_t q = pos + 2; q <= t->gend && q - pos <= MAXFRAG && sc->window_budget; q++) {
            sc->window_budget--;
            if (window_view(sc, pos, q, buf, &v) && view_fits(sc->e, w, &v))
                return q - pos;
        }
    }
    return 0;
}

static void add_hit(struct scan *sc, uint32_t entry, uint32_t t0, uint32_t t1, uint8_t flags)
{
    for (size_t i = sc->nhit; i-- > 0 && sc->hit[i].t0 == t0;)
        if (sc->hit[i].entry == entry && sc->hit[i].t1 == t1)
            return;
    if (grow((void **)&sc->hit, &sc->caphit, sc->nhit + 1, sizeof *sc->hit)) {
        sc->oom = 1;
        return;
    }
    sc->hit[sc->nhit++] = (struct hit){entry, t0, t1, flags};
}

/* The words down to node n fit tokens [t0, pos): records the entries ending at n and
 * continues with each child. Returns the number of content hits. */
static int walk(struct scan *sc, uint32_t n, uint32_t t0, uint32_t pos, unsigned allow,
                uint8_t hflags)
{
    const modengine_t *e = sc->e;
    const struct tnode *nd = &e->nodes[n];
    int found = 0;
    if (!(nd->kinds & allow))
        return 0;
    for (uint32_t t = nd->term; t != NONE; t = e->terms[t].next) {
        uint32_t entry = e->terms[t].entry;
        unsigned kind = e->entries[entry].kind;
        if (!(allow & (1u << kind)))
            continue;
        if (kind >= NCAT) {
            if (!hflags)
                sc->tok[t0].lex |= (uint16_t)LX(kind);
            continue;
        }
        add_hit(sc, entry, t0, pos, hflags);
        found++;
    }
    for (uint32_t c = nd->child; c != NONE; c = e->nodes[c].sibling) {
        if (!(e->nodes[c].kinds & allow))
            continue;
        uint32_t k = match_word_at(sc, &e->words[e->nodes[c].word], pos);
        if (k)
            found += walk(sc, c, t0, pos + k, allow, hflags);
    }
    return found;
}

static int lookup(struct scan *sc, unsigned kind, const char *s, const uint8_t *runs, int n,
                  uint32_t t0, uint32_t t1, unsigned allow, uint8_t hflags)
{
    const modengine_t *e = sc->e;
    int found = 0;
    for (uint32_t i = e->buckets[hash_key(kind, s, (size_t)n) & e->bmask]; i != NONE;
         i = e->nodes[i].next) {
        const struct mword *w = &e->words[e->nodes[i].word];
        if (w->wild != kind || w->len != n)
            continue;
        if (seg_fits(e->chars + w->off, (const uint8_t *)e->chars + w->off + n, s, runs, n))
            found += walk(sc, i, t0, t1, allow, hflags);
    }
    return found;
}

/* Looks one reading (skeleton sk with runs, n letters) up as the first word of a pattern:
 * whole word, stem at the start, stem at the end, stem inside, each only for lengths some
 * list word has. */
static int probe_reading(struct scan *sc, const char *sk, const uint8_t *runs, int n,
                         uint32_t t0, uint32_t t1, unsigned allow, uint8_t hflags)
{
    const modengine_t *e = sc->e;
    int found = 0;
    if (e->lenmask[0] >> n & 1)
        found += lookup(sc, 0, sk, runs, n, t0, t1, allow, hflags);
    for (int L = 1; L <= n; L++) {
        if (e->lenmask[W_TRAIL] >> L & 1)
            found += lookup(sc, W_TRAIL, sk, runs, L, t0, t1, allow, hflags);
        if (e->lenmask[W_LEAD] >> L & 1)
            found += lookup(sc, W_LEAD, sk + n - L, runs + n - L, L, t0, t1, allow, hflags);
        if (e->lenmask[W_TRAIL | W_LEAD] >> L & 1)
            for (int i = 0; i + L <= n; i++)
                found += lookup(sc, W_TRAIL | W_LEAD, sk + i, runs + i, L, t0, t1, allow,
                                hflags);
    }
    return found;
}

/* Looks every reading of v up (probe_reading). */
static int probe(struct scan *sc, const struct view *v, uint32_t t0, uint32_t t1, unsigned allow,
                 uint8_t hflags)
{
    char sk[MAXWORD];
    uint8_t runs[MAXWORD];
    int found = 0;
    for (unsigned m = 0; m < (1u << v->namb); m++) {
        int n = skeletonize(v, m, sk, runs);
        if (n > 0)
            found += probe_reading(sc, sk, runs, n, t0, t1, allow, hflags);
    }
    return found;
}

/* The same as probe, on a token's cached readings. */
static int probe_token(struct scan *sc, uint32_t ti, unsigned allow)
{
    const struct tok *t = &sc->tok[ti];
    if (!t->nvar)
        return 0; /* as in token_fits */
    const uint8_t *p = sc->skel + t->sk0;
    int found = 0;
    for (unsigned r = 0; r < t->nvar; r++) {
        int n = p[0];
        const char *sk = (const char *)p + 1;
        const uint8_t *runs = p + 1 + n;
        p += 1 + 2 * n;
        if (n > 0)
            found += probe_reading(sc, sk, runs, n, ti, ti + 1, allow, 0);
    }
    return found;
}

/* Glob of a masked token ('*' runs of k stand for 1..k+1 letters) against one list word. */
static int glob(const char *p, size_t pn, const char *s, size_t sn, int trail_ok)
{
    if (pn == 0)
        return sn == 0;
    if (sn == 0)
        return trail_ok;
    if (p[0] == '*') {
        size_t k = 1;
        while (k < pn && p[k] == '*')
            k++;
        for (size_t take = 1; take <= k + 1 && take <= sn; take++)
            if (glob(p + k, pn - k, s + take, sn - take, trail_ok))
                return 1;
        return 0;
    }
    if (p[0] != s[0])
        return 0;
    return glob(p + 1, pn - 1, s + 1, sn - 1, trail_ok);
}

/* A self-censored word ("f*ck", "a**hole", "what the f***"): first read without the masks
 * ("f*u*c*k"), else as a glob. Of several candidates, one as long as the masked word
 * (each '*' one letter) is preferred, then the first in list order, so that list authors
 * decide: "s***" is "shit" because shit comes before slut in the list. */
static void match_masked(struct scan *sc, uint32_t ti)
{
    const modengine_t *e = sc->e;
    const struct tok *t = &sc->tok[ti];
    char buf[MAXJOIN], pat[MAXJOIN];
    size_t n = 0, pn = 0;
    struct view v;
    v.namb = 0;
    for (uint32_t i = 0; i < t->nlen && n < MAXJOIN; i++) {
        char c = sc->norm[t->n0 + i];
        if (c != '*')
            buf[n++] = c;
        if (pn == 0 || c == '*' || pat[pn - 1] != c)
            pat[pn++] = c;
        if (pn == MAXJOIN)
            return;
    }
    v.s = buf;
    v.n = (uint32_t)n;
    if (n >= 3 && probe(sc, &v, ti, ti + 1, ALLOW_CONTENT, HF_MASKED))
        return;
    uint32_t best = NONE;
    int best_exact = 0;
    /* Candidates: the "*stem" words, and the words starting with the first letter. */
    uint8_t c0 = (uint8_t)pat[0];
    const uint32_t range[2][2] = {{0, e->single_at[0]}, {e->single_at[c0], e->single_at[c0 + 1]}};
    for (int r = 0; r < 2; r++) {
        for (uint32_t k = range[r][0]; k < range[r][1]; k++) {
            const struct tnode *nd = &e->nodes[e->single[k]];
            const struct mword *w = &e->words[nd->word];
            const char *ws = e->chars + w->off;
            int ok = 0;
            if (w->wild & W_LEAD) {
                for (size_t st = 0; st < pn && !ok; st++)
                    ok = glob(pat + st, pn - st, ws, w->len, w->wild & W_TRAIL);
            } else {
                ok = glob(pat, pn, ws, w->len, w->wild & W_TRAIL);
            }
            if (!ok)
                continue;
            unsigned full = 0;
            for (unsigned j = 0; j < w->len; j++)
                full += (uint8_t)ws[w->len + j];
            int exact = full == t->nlen;
            if (best == NONE || (exact && !best_exact) ||
                (exact == best_exact && nd->first_entry < e->nodes[best].first_entry)) {
                best_exact = exact;
                best = e->single[k];
            }
        }
    }
    if (best != NONE)
        add_hit(sc, e->nodes[best].first_entry, ti, ti + 1, HF_MASKED);
}

/* Joined windows of each join group, longest first from each start. */
static void match_windows(struct scan *sc)
{
    char buf[MAXJOIN];
    struct view v;
    for (uint32_t a = 0; a < sc->ntok && !sc->oom;) {
        uint32_t g = sc->tok[a].gend;
        if (!g) {
            a++;
            continue;
        }
        uint32_t next = a + 1;
        uint32_t top = g - a > MAXFRAG ? a + MAXFRAG : g;
        for (uint32_t b = top; b >= a + 2 && sc->window_budget; b--) {
            sc->window_budget--;
            if (window_view(sc, a, b, buf, &v) &&
                probe(sc, &v, a, b, ALLOW_CONTENT, HF_VIRTUAL)) {
                next = b;
                break;
            }
        }
        a = next;
    }
}

/* An exception continues from node n at token pos; it excepts the hit if it reaches an
 * end over tokens that overlap the hit. */
static int xwalk(struct scan *sc, uint32_t n, uint32_t pos, const struct hit *h)
{
    const modengine_t *e = sc->e;
    if (e->nodes[n].term != NONE && pos > h->t0)
        return 1;
    for (uint32_t c = e->nodes[n].child; c != NONE; c = e->nodes[c].sibling) {
        uint32_t k = match_word_at(sc, &e->words[e->nodes[c].word], pos);
        if (k && xwalk(sc, c, pos + k, h))
            return 1;
    }
    return 0;
}

int modengine__excepted(struct scan *sc, const struct hit *h)
{
    const struct entry *en = &sc->e->entries[h->entry];
    if (en->xroot == NONE)
        return 0;
    uint32_t back = 2u * en->xlen;
    for (uint32_t st = h->t0 > back ? h->t0 - back : 0; st < h->t1; st++)
        if (xwalk(sc, en->xroot, st, h))
            return 1;
    return 0;
}

void modengine__match(struct scan *sc)
{
    cache_readings(sc);
    for (uint32_t i = 0; i < sc->ntok && !sc->oom; i++) {
        if (sc->tok[i].flags & TK_MASKED)
            match_masked(sc, i);
        else
            probe_token(sc, i, ALLOW_ALL);
    }
    match_windows(sc);
}
