/*
 * terms.c — compiling list terms: a term ("kill <yourself>", "*fuck*", "stem*") is split
 * into words, its groups are expanded into every concrete phrase, and each word is
 * normalised like text (case, accents, l33t) and stored as skeleton + run lengths; a
 * wildcard-free phrase is also stored written together ("killyourself").
 *
 * Owns: the words, patterns and entries of the engine being loaded, the expansion limit,
 * the error lines about terms. Never: reads files or checks document members (lists.c),
 * or builds the trie (trie.c).
 */
#include "loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Normalises one literal list word to its full lowercase spelling (no collapsing):
 * the same folding and l33t mapping as text, apostrophes dropped. */
static int list_word(struct loader *L, const char *s, size_t n, char *out, size_t *outn)
{
    size_t i = 0, k = 0;
    while (i < n) {
        struct cpinfo ci;
        size_t at = i;
        modengine__classify(modengine__decode((const uint8_t *)s, n, &i), &ci);
        if (ci.cls == CL_APOS || ci.cls == CL_IGNORE)
            continue;
        if ((ci.cls != CL_LETTER && ci.cls != CL_DIGIT && ci.cls != CL_LEET) ||
            (ci.cls == CL_LETTER && ci.out[0] == PLACEHOLDER)) {
            modengine__seterr(L, "%s: %s: \"%.*s\" has '%.*s': use letters, digits, "
                              "spaces, * at a word's ends and <group>", L->cur_file, L->cur_what,
                              (int)n, s, (int)(i - at), s + at);
            return -1;
        }
        for (unsigned j = 0; j < ci.n; j++) {
            char alt;
            char c = ci.cls == CL_LETTER ? ci.out[j] : modengine__leet(ci.out[j], &alt);
            if (k == MAXJOIN) {
                modengine__seterr(L, "%s: %s: word \"%.*s\" is too long", L->cur_file,
                                  L->cur_what, (int)n, s);
                return -1;
            }
            out[k++] = c;
        }
    }
    *outn = k;
    return 0;
}

/* Appends a word (full spelling) as skeleton + runs; returns its index or -1. */
static int64_t add_word(struct loader *L, const char *full, size_t n, uint8_t wild,
                        uint8_t joined)
{
    modengine_t *e = L->e;
    char sk[MAXJOIN];
    uint8_t runs[MAXJOIN];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && sk[k - 1] == full[i]) {
            if (runs[k - 1] < 255)
                runs[k - 1]++;
        } else {
            sk[k] = full[i];
            runs[k++] = 1;
        }
    }
    if (k == 0 || k > MAXWORD) {
        modengine__seterr(L, "%s: %s: a word is empty or longer than %d letters",
                          L->cur_file, L->cur_what, MAXWORD);
        return -1;
    }
    if (grow((void **)&e->chars, &e->capchars, e->nchars + 2 * k, 1) ||
        grow((void **)&e->words, &e->capwords, e->nwords + 1, sizeof *e->words)) {
        modengine__seterr(L, "%s: out of memory", L->cur_file);
        return -1;
    }
    memcpy(e->chars + e->nchars, sk, k);
    memcpy(e->chars + e->nchars + k, runs, k);
    e->words[e->nwords] = (struct mword){(uint32_t)e->nchars, (uint8_t)k, wild, joined};
    e->nchars += 2 * k;
    return (int64_t)e->nwords++;
}

static int add_pattern(struct loader *L, int exception, uint32_t word0, size_t nwords)
{
    modengine_t *e = L->e;
    struct pattern p = {word0, (uint32_t)(e->nentries - 1), (uint16_t)nwords};
    if (++L->cur_count > MAXEXPAND) {
        modengine__seterr(L, "%s: %s: expands to more than %d phrases", L->cur_file,
                          L->cur_what, MAXEXPAND);
        return -1;
    }
    if (exception) {
        if (grow((void **)&e->xpats, &e->capxpats, e->nxpats + 1, sizeof *e->xpats))
            goto oom;
        e->xpats[e->nxpats++] = p;
    } else {
        if (grow((void **)&e->pats, &e->cappats, e->npats + 1, sizeof *e->pats))
            goto oom;
        e->pats[e->npats++] = p;
    }
    return 0;
oom:
    modengine__seterr(L, "%s: out of memory", L->cur_file);
    return -1;
}

/* One concrete word sequence: adds it, and for a wildcard-free phrase also its words
 * written together ("kill yourself" -> "killyourself", "#kys"-style hashtags). */
static int emit(struct loader *L, const struct rword *seq, size_t n)
{
    char full[MAXPHRASE][MAXJOIN];
    size_t fn[MAXPHRASE];
    int64_t first = -1;
    int wild = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (list_word(L, seq[i].s, seq[i].n, full[i], &fn[i]) != 0)
            return -1;
        int64_t w = add_word(L, full[i], fn[i], seq[i].wild, 0);
        if (w < 0)
            return -1;
        if (i == 0)
            first = w;
        wild |= seq[i].wild;
        total += fn[i];
    }
    if (add_pattern(L, L->cur_exception, (uint32_t)first, n) != 0)
        return -1;
    if (n >= 2 && !wild && !L->cur_exception && total <= MAXJOIN) {
        char joined[MAXJOIN];
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(joined + k, full[i], fn[i]);
            k += fn[i];
        }
        int64_t w = add_word(L, joined, k, 0, 1);
        if (w < 0 || add_pattern(L, 0, (uint32_t)w, 1) != 0)
            return -1;
    }
    return 0;
}

static int expand(struct loader *L, const struct rword *w, size_t nw, size_t i, struct rword *seq,
                  size_t nseq)
{
    if (i == nw)
        return emit(L, seq, nseq);
    if (w[i].group < 0) {
        if (nseq == MAXPHRASE)
            goto toolong;
        seq[nseq] = w[i];
        return expand(L, w, nw, i + 1, seq, nseq + 1);
    }
    for (size_t m = 0; m < L->ngmembers; m++) {
        const struct gmember *gm = &L->gmembers[m];
        if (gm->group != w[i].group)
            continue;
        if (nseq + gm->n > MAXPHRASE)
            goto toolong;
        memcpy(seq + nseq, L->gwords + gm->w0, gm->n * sizeof *seq);
        if (expand(L, w, nw, i + 1, seq, nseq + gm->n) != 0)
            return -1;
    }
    return 0;
toolong:
    modengine__seterr(L, "%s: %s: a phrase is longer than %d words", L->cur_file,
                      L->cur_what, MAXPHRASE);
    return -1;
}

static int find_group(const struct loader *L, const char *s, size_t n)
{
    for (size_t g = 0; g < L->ngnames; g++)
        if (strlen(L->gnames[g]) == n && memcmp(L->gnames[g], s, n) == 0)
            return (int)g;
    return -1;
}

/* Splits a term into words ("<group>", "*stem", "stem*", "*stem*", "word"). */
static int parse_term(struct loader *L, const char *term, int allow_groups, struct rword *out,
                      size_t *nout)
{
    size_t n = 0;
    const char *p = term;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        const char *q = p;
        while (*q && *q != ' ' && *q != '\t')
            q++;
        if (n == MAXPHRASE) {
            modengine__seterr(L, "%s: %s: more than %d words", L->cur_file, L->cur_what,
                              MAXPHRASE);
            return -1;
        }
        struct rword w = {p, (uint32_t)(q - p), 0, -1};
        if (*p == '<' && q[-1] == '>' && q - p > 2) {
            if (!allow_groups) {
                modengine__seterr(L, "%s: a group member cannot name a group (\"%s\")",
                                  L->cur_file, term);
                return -1;
            }
            w.group = find_group(L, p + 1, (size_t)(q - p - 2));
            if (w.group < 0) {
                modengine__seterr(L, "%s: %s: unknown group %.*s", L->cur_file,
                                  L->cur_what, (int)(q - p), p);
                return -1;
            }
        } else {
            if (w.n && w.s[0] == '*') {
                w.wild |= W_LEAD;
                w.s++;
                w.n--;
            }
            if (w.n && w.s[w.n - 1] == '*') {
                w.wild |= W_TRAIL;
                w.n--;
            }
            if (!w.n || memchr(w.s, '*', w.n)) {
                modengine__seterr(L, "%s: %s: '*' is allowed only at a word's ends",
                                  L->cur_file, L->cur_what);
                return -1;
            }
        }
        out[n++] = w;
        p = q;
    }
    if (!n) {
        modengine__seterr(L, "%s: %s: empty term", L->cur_file, L->cur_what);
        return -1;
    }
    *nout = n;
    return 0;
}

static int compile_term(struct loader *L, const char *term, int exception)
{
    struct rword w[MAXPHRASE], seq[MAXPHRASE];
    size_t nw;
    L->cur_exception = exception;
    if (parse_term(L, term, 1, w, &nw) != 0)
        return -1;
    return expand(L, w, nw, 0, seq, 0);
}

static int new_entry(struct loader *L, int kind, int severity, int names)
{
    modengine_t *e = L->e;
    if (grow((void **)&e->entries, &e->capentries, e->nentries + 1, sizeof *e->entries)) {
        modengine__seterr(L, "%s: out of memory", L->cur_file);
        return -1;
    }
    e->entries[e->nentries++] =
        (struct entry){(uint8_t)kind, (uint8_t)severity, (uint8_t)names, (uint32_t)e->nxpats, 0,
                       NONE, 0};
    return 0;
}

int modengine__compile_groups(struct loader *L)
{
    L->gnames = calloc(L->ngroups ? L->ngroups : 1, sizeof *L->gnames);
    if (!L->gnames)
        goto oom;
    for (size_t i = 0; i < L->ngroups; i++) {
        const char *name = L->groups[i].name;
        int g = find_group(L, name, strlen(name));
        if (g < 0) {
            g = (int)L->ngnames;
            L->gnames[L->ngnames++] = name;
        }
        size_t k;
        json_t *m;
        L->cur_file = L->groups[i].file;
        snprintf(L->cur_what, sizeof L->cur_what, "groups.%.100s", name);
        json_array_foreach(L->groups[i].members, k, m) {
            struct rword w[MAXPHRASE];
            size_t nw;
            if (parse_term(L, json_string_value(m), 0, w, &nw) != 0)
                return -1;
            for (size_t j = 0; j < nw; j++)
                if (w[j].wild) {
                    modengine__seterr(L, "%s: groups.%s: members cannot use '*'", L->cur_file,
                                      name);
                    return -1;
                }
            if (grow((void **)&L->gwords, &L->capgwords, L->ngwords + nw, sizeof *L->gwords) ||
                grow((void **)&L->gmembers, &L->capgmembers, L->ngmembers + 1,
                     sizeof *L->gmembers))
                goto oom;
            memcpy(L->gwords + L->ngwords, w, nw * sizeof *w);
            L->gmembers[L->ngmembers++] = (struct gmember){(uint32_t)L->ngwords, (uint32_t)nw, g};
            L->ngwords += nw;
        }
    }
    return 0;
oom:
    modengine__seterr(L, "out of memory");
    return -1;
}

int modengine__compile_entries(struct loader *L)
{
    modengine_t *e = L->e;
    for (size_t r = 0; r < L->nraw; r++) {
        const struct rawentry *re = &L->raw[r];
        if (re->dead)
            continue;
        int severity = (int)json_integer_value(json_object_get(re->obj, "severity"));
        if (severity == 0)
            continue; /* a later file switched the entry off */
        const char *category = json_string_value(json_object_get(re->obj, "category"));
        int kind = modengine__kind_by_name(category, 0, NCAT);
        int names = json_is_true(json_object_get(re->obj, "names"));
        L->cur_file = re->file;
        const char *term = json_string_value(json_object_get(re->obj, "term"));
        snprintf(L->cur_what, sizeof L->cur_what, "entries[%zu] (\"%.100s\")", re->index, term);
        L->cur_count = 0;
        if (new_entry(L, kind, severity, names) != 0 || compile_term(L, term, 0) != 0)
            return -1;
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(re->obj, "forms"), i, v) {
            if (compile_term(L, json_string_value(v), 0) != 0)
                return -1;
        }
        json_array_foreach(json_object_get(re->obj, "exceptions"), i, v) {
            if (compile_term(L, json_string_value(v), 1) != 0)
                return -1;
        }
        e->entries[e->nentries - 1].nx = (uint32_t)(e->nxpats - e->entries[e->nentries - 1].x0);
    }
    for (size_t r = 0; r < L->nlex; r++) {
        size_t i;
        json_t *v;
        L->cur_file = L->lex[r].file;
        L->cur_count = 0;
        if (new_entry(L, L->lex[r].kind, 0, 0) != 0)
            return -1;
        json_array_foreach(L->lex[r].items, i, v) {
            snprintf(L->cur_what, sizeof L->cur_what, "lexicons.%s[%zu]",
                     modengine__kind_names[L->lex[r].kind], i);
            if (compile_term(L, json_string_value(v), 0) != 0)
                return -1;
        }
    }
    return 0;
}
