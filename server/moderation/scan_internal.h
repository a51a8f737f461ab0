/*
 * scan_internal.h — the state of one modengine_score call, shared by the files that fill
 * it in order: detect.c (links, addresses, phone numbers: spans), tokenize.c (tokens and
 * their normal forms), match.c (hits against the trie) and score.c (the scores).
 *
 * Owns: struct scan and what it holds (tokens, hits, spans, readings). Never: anything
 * that outlives the call, or the engine (read-only here, engine_internal.h).
 */
#ifndef WSHUB_MODERATION_SCAN_INTERNAL_H
#define WSHUB_MODERATION_SCAN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "engine_internal.h"

enum { GAP_TIGHT, GAP_SPACE, GAP_MIXED, GAP_OTHER };

#define TK_WORD 0x01    /* has a letter */
#define TK_SYM1 0x02    /* a lone digit or l33t symbol ("k 1 l l") */
#define TK_MASKED 0x04  /* contains '*' or '#' inside */
#define TK_URL 0x08     /* inside a link */
#define TK_TITLE 0x10   /* written Title-case */
#define TK_INITIAL 0x20 /* one capital letter ("K." in "Philip K. Dick") */
#define TK_SENT 0x40    /* starts a sentence */
#define TK_FOREIGN 0x80 /* has a letter of another script */

/* Lexicon flags of a token: bit (kind - NCAT), and TF_ABUSE for the sentiment. */
#define LX(kind) (1u << ((kind) - NCAT))
#define TF_ABUSE 0x100

struct tok {
    uint32_t n0, nlen;       /* normalised characters: scan.norm[n0 .. n0 + nlen) */
    uint16_t apos[MAXAMB];   /* ambiguous positions in the normalised characters */
    char asub[MAXAMB];       /* their second reading (0 = dropped) */
    uint8_t namb;
    uint8_t flags;           /* TK_* */
    uint8_t gap;             /* GAP_* before this token */
    uint8_t catmask;         /* content categories of hits starting here (after checks) */
    uint16_t lex;            /* LX(LEX_*) | TF_ABUSE */
    uint16_t upper, cased;   /* letter case counts */
    uint32_t gend;           /* end of this token's join group, 0 if none */
    uint32_t sk0;            /* its readings in scan.skel: per reading a length byte (0:
                              * cannot match), the skeleton, the runs */
    uint8_t nvar;            /* number of readings */
};

#define HF_VIRTUAL 1 /* matched on joined fragments */
#define HF_MASKED 2  /* matched as a glob of a masked token */

struct hit {
    uint32_t entry;
    uint32_t t0, t1; /* tokens [t0, t1) */
    uint8_t flags;   /* HF_* */
};

struct span {
    uint32_t b0, b1;
    uint8_t email;
};

/* A normalised character string with its ambiguous l33t positions. */
struct view {
    const char *s;
    uint32_t n;
    uint8_t namb;
    uint16_t apos[MAXAMB];
    char asub[MAXAMB];
};

struct scan {
    const modengine_t *e;
    const uint8_t *text;
    size_t len;
    char *norm;      /* normalised characters of all tokens */
    uint8_t *ncls;   /* class of each normalised character while its token is built */
    size_t nnorm;
    struct tok *tok;
    size_t ntok, captok;
    struct hit *hit;
    size_t nhit, caphit;
    struct span *span;
    size_t nspan, capspan;
    uint8_t *skel;   /* the tokens' readings, computed once per call */
    size_t nskel, capskel;
    int oom;
    unsigned links, emails, phones;
    unsigned longest_run; /* longest run of one repeated non-space character */
    unsigned window_budget; /* bounds the joined-window work on adversarial texts */
};

/* ---- detect.c ---- */

/* Finds e-mail addresses and links, in text order, as spans; counts them. */
void modengine__detect_spans(struct scan *sc);

/* Counts the phone numbers outside the spans. */
void modengine__detect_phones(struct scan *sc);

/* The span containing byte b, or -1. */
long modengine__span_at(const struct scan *sc, size_t b);

/* Shouting: the upper-case share of the cased letters (0 with fewer than 12). */
double modengine__shouting(unsigned upper, unsigned cased);

/* Repetition, 0..1: a run of one character, or the most repeated of the nwords words.
 * Sets sc->oom when out of memory. */
double modengine__repetition(struct scan *sc, unsigned nwords);

static inline double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* ---- tokenize.c ---- */

/* Splits the text into tokens with their normal forms; tracks the longest run. */
void modengine__tokenize(struct scan *sc);

/* Marks the join groups: neighbours glued by punctuation, or single characters glued by
 * short spaces ("f u c k"). */
void modengine__mark_groups(struct scan *sc);

/* ---- match.c ---- */

/* Finds every hit: each token (or its masked reading), then joined windows of fragments. */
void modengine__match(struct scan *sc);

/* Does one of the hit's entry's exceptions occur over tokens overlapping the hit? */
int modengine__excepted(struct scan *sc, const struct hit *h);

#endif
