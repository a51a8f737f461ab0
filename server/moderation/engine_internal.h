/*
 * engine_internal.h — what the files of server/moderation/ share about the compiled
 * engine: limits, categories, character classes, the word/pattern/trie structures and
 * the cross-file functions that build them. Interface and ownership of the whole engine in
 * include/wshub/modengine.h, list format and policy in config/moderation/README.md.
 *
 * Owns: the layout of struct modengine (filled by lists.c, terms.c and trie.c, read-only
 * afterwards). Never: anything of one scoring call (scan_internal.h) or of loading
 * (loader.h).
 */
#ifndef WSHUB_MODERATION_ENGINE_INTERNAL_H
#define WSHUB_MODERATION_ENGINE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "wshub/modengine.h"

#define MAXWORD 48       /* longest skeleton of a list word or of a token that is looked up */
#define MAXAMB 3         /* ambiguous l33t symbols read both ways per token (2^3 readings) */
#define MAXFRAG 16       /* most fragments joined into one word ("f.u.c.k.i.n.g") */
#define MAXJOIN 64       /* longest joined window in normalised characters */
#define MAXPHRASE 24     /* longest phrase in words after group expansion */
#define MAXEXPAND 50000  /* concrete patterns one entry may expand to */
#define NONE UINT32_MAX

/* ---- categories ---- */

/* Content categories (scored; the same order as MODENGINE_PROFANITY...) come first, then
 * the lexicons (signals, never abuse). */
enum {
    CAT_PROFANITY = MODENGINE_PROFANITY,
    CAT_SLURS = MODENGINE_SLURS,
    CAT_THREATS = MODENGINE_THREATS,
    CAT_SEXUAL = MODENGINE_SEXUAL,
    CAT_SELF_HARM = MODENGINE_SELF_HARM,
    CAT_SPAM = MODENGINE_SPAM,
    NCAT = MODENGINE_NCAT,
    LEX_SECOND = NCAT, /* second-person words: an insult near one is aimed at someone */
    LEX_NEGATOR,       /* flips the sentiment of the next word */
    LEX_STOP,          /* English function words: the dialect guess */
    LEX_POSITIVE,
    LEX_NEGATIVE,
    LEX_POLITICAL,
    LEX_DEFENSIVE,
    NKIND
};

/* The name of a category or lexicon in list files ("profanity" ... "defensive"). */
extern const char *const modengine__kind_names[NKIND];

#define ALLOW_CONTENT ((1u << NCAT) - 1)
#define ALLOW_ALL ((1u << NKIND) - 1)

/* ---- characters (chars.c, chartab.c) ---- */

enum { CL_SEP, CL_SPACE, CL_LETTER, CL_DIGIT, CL_LEET, CL_MASK, CL_APOS, CL_IGNORE };

#define PLACEHOLDER '\x01' /* a letter of another script: part of a word, never matches */

/* One code point after folding. */
struct cpinfo {
    uint8_t cls;   /* CL_* */
    uint8_t upper; /* an uppercase letter (for shouting and personal names) */
    uint8_t lower; /* a lowercase letter */
    uint8_t n;     /* characters in out */
    char out[2];   /* letters: folded lowercase ASCII; digits and l33t symbols: as written */
    uint8_t brk;   /* ends a sentence: . ! ? newline */
    uint8_t tight; /* a separator that may sit inside an obfuscated word: . - _ ~ / , : */
};

/* Folds one code point (any uint32_t); see struct cpinfo. */
void modengine__classify(uint32_t cp, struct cpinfo *ci);

/* Lenient UTF-8 decoding of s[*i ..]: an invalid byte reads as U+FFFD and advances one
 * byte. */
uint32_t modengine__decode(const uint8_t *s, size_t len, size_t *i);

/* The letter a digit or l33t symbol stands for, and its second reading in *alt (0 =
 * none). A symbol with no letter stays as it is and never matches a list word. */
char modengine__leet(char c, char *alt);

/* ---- the compiled engine ---- */

#define W_TRAIL 1 /* "stem*": the token may continue after the stem */
#define W_LEAD 2  /* "*stem": the token may start before the stem */

/* One list word: its skeleton (len bytes at chars + off) followed by its run lengths. */
struct mword {
    uint32_t off;
    uint8_t len;
    uint8_t wild;   /* W_TRAIL | W_LEAD */
    uint8_t joined; /* a phrase written as one word ("killyourself") */
};

/* A concrete word sequence of one entry, after group expansion. */
struct pattern {
    uint32_t word0;  /* first word in engine.words */
    uint32_t entry;  /* index in engine.entries */
    uint16_t nwords;
};

/* The patterns are compiled into a trie of words so that the phrases of one entry share
 * their prefixes: after "i" only "will", "shall", "would"... are tried, not the thousand
 * expansions of "<intent> <kill> <you>". First-level nodes are hashed by their word. */
struct tnode {
    uint8_t top;      /* a first-level node (reached through the hash table) */
    uint32_t word;    /* the word leading to this node */
    uint32_t child;   /* first child, NONE */
    uint32_t sibling; /* next sibling, NONE */
    uint32_t term;    /* first entry ending here (engine.terms), NONE */
    uint32_t next;    /* first level only: next node in the same hash bucket */
    uint16_t kinds;   /* bit per category or lexicon ending here or below */
    uint32_t first_entry; /* lowest entry ending here (list order, for masked words) */
};

struct tterm {
    uint32_t entry;
    uint32_t next;
};

struct entry {
    uint8_t kind;     /* CAT_* or LEX_* */
    uint8_t severity; /* 1..5; 0 for lexicons */
    uint8_t names;    /* skipped where it reads as part of a personal name */
    uint32_t x0, nx;  /* exceptions while loading: engine.xpats[x0 .. x0 + nx) */
    uint32_t xroot;   /* root of the exceptions' trie, NONE without exceptions */
    uint16_t xlen;    /* longest exception in words */
};

struct modengine {
    char *chars; /* skeleton and run bytes of every word */
    size_t nchars, capchars;
    struct mword *words;
    size_t nwords, capwords;
    struct pattern *pats; /* matchable patterns, while loading (then the trie) */
    size_t npats, cappats;
    struct tnode *nodes;
    size_t nnodes, capnodes;
    struct tterm *terms;
    size_t nterms, capterms;
    struct pattern *xpats; /* exception patterns, reached through their entry */
    size_t nxpats, capxpats;
    struct entry *entries;
    size_t nentries, capentries;
    uint32_t *buckets; /* heads of the first-level node chains */
    uint32_t bmask;    /* number of buckets - 1 */
    uint64_t lenmask[4]; /* per wildcard kind, bit L: some first word has a skeleton of L */
    uint32_t *single;  /* first-level nodes where content entries end: masked-word candidates,
                        * the "*stem" ones first, then by first letter */
    size_t nsingle;
    uint32_t single_at[257]; /* single[single_at[c] .. single_at[c + 1]): words starting with
                              * c; single[0 .. single_at[0]): "*stem" words */
    struct cpinfo latin1[256]; /* modengine__classify of U+0000..U+00FF, filled from the
                                * range table at load time (classify_cp) */
};

/* Fills e->latin1 from the code point table (chars.c). */
void modengine__build_latin1(modengine_t *e);

/* modengine__classify, without the table search for the code points of ASCII and
 * Latin-1 (nearly every code point of most texts): inline for the tokenizer. */
static inline void classify_cp(const modengine_t *e, uint32_t cp, struct cpinfo *ci)
{
    if (cp < 256)
        *ci = e->latin1[cp];
    else
        modengine__classify(cp, ci);
}

/* modengine__decode, with ASCII inline. */
static inline uint32_t decode_cp(const uint8_t *s, size_t len, size_t *i)
{
    if (s[*i] < 0x80)
        return s[(*i)++];
    return modengine__decode(s, len, i);
}

/* Grows *p (an array of elem-sized items with room for *cap) to hold need items.
 * Returns 0, or -1 when out of memory (*p is then unchanged). */
static inline int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* The hash of a first word (its wildcard kind and skeleton) and of a token's spelling. */
static inline uint32_t hash_key(unsigned kind, const char *s, size_t n)
{
    uint32_t h = 2166136261u ^ (kind * 0x9E3779B1u);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

/* Builds the trie, its first-level hash table and the masked-word candidates from the
 * patterns (trie.c); the engine is final after this. Returns 0 or -1 (out of memory). */
int modengine__build_index(modengine_t *e);

#endif
