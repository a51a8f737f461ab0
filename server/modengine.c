/*
 * modengine — the moderation classifier behind API A (PROTOCOLS.md §A); interface and
 * ownership in include/wshub/modengine.h, list format and policy in
 * config/moderation/README.md.
 *
 * Owns: the compiled word lists (a trie of words, its first level hashed by the letter
 * skeleton of the first word), the text normalisation (UTF-8 decoding, case, accents,
 * homoglyphs, l33t, repeated letters, separators and masks inside words), the detectors
 * (links, e-mail addresses, phone numbers, shouting, repetition) and the mapping of all
 * that onto Chatsight's response fields.
 * Never: touches the engine after modengine_load returns (every scoring thread shares it
 * read-only), keeps state between calls, uses a clock or a random source (the same text
 * must give byte-identical JSON), or does raw substring search outside the entries that
 * ask for it ("*stem*"), which is what keeps Scunthorpe, assistant and therapist clean.
 *
 * Matching in one paragraph: a text becomes word tokens; each token's normal form keeps
 * its l33t symbols ambiguous (1 = i or l) and is tried in every reading; a reading is
 * reduced to a skeleton (runs of one letter collapsed) plus the run lengths, and a list
 * word matches when the skeletons are equal and every run of the token is as long as the
 * list word's run or drawn out to 3+: "fuuuck" matches "fuck"; "as" is not "ass" and
 * "assess" is not "asses".
 * Fragments glued by separators ("f.u.c.k", "f u c k") are joined into windows and tried
 * the same way; masked tokens ("f*ck") are matched as globs against one-word entries.
 * Phrases continue word by word over the following tokens.
 */
#include "wshub/modengine.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The default English list, generated from config/moderation/en.json by scripts/embed.py. */
extern const char modengine__default_list[];
extern const size_t modengine__default_list_len;

#define MAXWORD 48       /* longest skeleton of a list word or of a token that is looked up */
#define MAXAMB 3         /* ambiguous l33t symbols read both ways per token (2^3 readings) */
#define MAXFRAG 16       /* most fragments joined into one word ("f.u.c.k.i.n.g") */
#define MAXJOIN 64       /* longest joined window in normalised characters */
#define MAXPHRASE 24     /* longest phrase in words after group expansion */
#define MAXEXPAND 50000  /* concrete patterns one entry may expand to */
#define DIRECTED_BACK 5  /* tokens looked back for "you" before an insult */
#define NONE UINT32_MAX

/* ------------------------------------------------------------------------------------ */
/* Categories                                                                           */
/* ------------------------------------------------------------------------------------ */

/* Content categories (scored) come first, then the lexicons (signals, never abuse). */
enum {
    CAT_PROFANITY,
    CAT_SLURS,
    CAT_THREATS,
    CAT_SEXUAL,
    CAT_SELF_HARM,
    CAT_SPAM,
    NCAT,
    LEX_SECOND = NCAT, /* second-person words: an insult near one is aimed at someone */
    LEX_NEGATOR,       /* flips the sentiment of the next word */
    LEX_STOP,          /* English function words: the dialect guess */
    LEX_POSITIVE,
    LEX_NEGATIVE,
    LEX_POLITICAL,
    LEX_DEFENSIVE,
    NKIND
};

static const char *const kind_names[NKIND] = {
    "profanity", "slurs", "threats", "sexual", "self_harm", "spam",
    "second_person", "negators", "stopwords", "positive", "negative", "political", "defensive",
};

#define ALLOW_CONTENT ((1u << NCAT) - 1)
#define ALLOW_ALL ((1u << NKIND) - 1)

/* Category score of a severity 1..5 (index 0 unused); README "How actions are decided". */
static const double sev_score[6] = {0, 0.2, 0.45, 0.6, 0.8, 0.95};

#define RISK_FLAG 0.4    /* overall risk from which the action is at least "flag" */
#define RISK_DELETE 0.9  /* overall risk from which the action is "delete" */
#define RISK_ENGINE3 0.3 /* engine3.invoked: worth a second opinion */
#define FLOOR 0.0001     /* Chatsight's floor for the engine1/engine2 scores */

/* ------------------------------------------------------------------------------------ */
/* Character folding                                                                    */
/* ------------------------------------------------------------------------------------ */

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

/* U+00C0..U+00FF to ASCII; NULL for the two symbols (multiplication and division). */
static const char *const latin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", NULL, "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", NULL, "o", "u", "u", "u", "u", "y", "th", "y",
};

/* U+0100..U+017F to ASCII ('?' marks the two ligatures, handled apart). */
static const char latin_ext_a[129] =
    "aaaaaacc" "ccccccdd" "ddeeeeee" "eeeegggg" "gggghhhh" "iiiiiiii" "ii??jjkk" "klllllll"
    "lllnnnnn" "nnnnoooo" "oo??rrrr" "rrssssss" "sstttttt" "uuuuuuuu" "uuuuwwyy" "yzzzzzzs";

/* Greek and Cyrillic letters that look like Latin ones ("fuсk" with a Cyrillic с). */
static const struct {
    uint16_t cp;
    char c;
    uint8_t upper;
} homoglyphs[] = {
    {0x0391, 'a', 1}, {0x0392, 'b', 1}, {0x0395, 'e', 1}, {0x0396, 'z', 1}, {0x0397, 'h', 1},
    {0x0399, 'i', 1}, {0x039A, 'k', 1}, {0x039C, 'm', 1}, {0x039D, 'n', 1}, {0x039F, 'o', 1},
    {0x03A1, 'p', 1}, {0x03A4, 't', 1}, {0x03A5, 'y', 1}, {0x03A7, 'x', 1}, {0x03B1, 'a', 0},
    {0x03B2, 'b', 0}, {0x03B5, 'e', 0}, {0x03B9, 'i', 0}, {0x03BA, 'k', 0}, {0x03BD, 'v', 0},
    {0x03BF, 'o', 0}, {0x03C1, 'p', 0}, {0x03C4, 't', 0}, {0x03C5, 'u', 0}, {0x03C7, 'x', 0},
    {0x03C9, 'w', 0}, {0x0405, 's', 1}, {0x0406, 'i', 1}, {0x0408, 'j', 1}, {0x0410, 'a', 1},
    {0x0412, 'b', 1}, {0x0415, 'e', 1}, {0x041A, 'k', 1}, {0x041C, 'm', 1}, {0x041D, 'h', 1},
    {0x041E, 'o', 1}, {0x0420, 'p', 1}, {0x0421, 'c', 1}, {0x0422, 't', 1}, {0x0423, 'y', 1},
    {0x0425, 'x', 1}, {0x0430, 'a', 0}, {0x0432, 'b', 0}, {0x0435, 'e', 0}, {0x043A, 'k', 0},
    {0x043C, 'm', 0}, {0x043D, 'h', 0}, {0x043E, 'o', 0}, {0x0440, 'p', 0}, {0x0441, 'c', 0},
    {0x0442, 't', 0}, {0x0443, 'y', 0}, {0x0445, 'x', 0}, {0x0451, 'e', 0}, {0x0455, 's', 0},
    {0x0456, 'i', 0}, {0x0457, 'i', 0}, {0x0458, 'j', 0}, {0x04BB, 'h', 0}, {0x0501, 'd', 0},
    {0x051B, 'q', 0}, {0x051D, 'w', 0},
};

static void set_letter(struct cpinfo *ci, char c, int upper, int cased)
{
    ci->cls = CL_LETTER;
    ci->out[0] = c;
    ci->n = 1;
    ci->upper = cased && upper;
    ci->lower = cased && !upper;
}

static void classify_ascii(uint32_t c, struct cpinfo *ci)
{
    if (c >= 'a' && c <= 'z') {
        set_letter(ci, (char)c, 0, 1);
    } else if (c >= 'A' && c <= 'Z') {
        set_letter(ci, (char)(c - 'A' + 'a'), 1, 1);
    } else if (c >= '0' && c <= '9') {
        ci->cls = CL_DIGIT;
        ci->out[0] = (char)c;
        ci->n = 1;
    } else if (c == '@' || c == '$' || c == '!' || c == '|' || c == '+') {
        ci->cls = CL_LEET;
        ci->out[0] = (char)c;
        ci->n = 1;
        ci->brk = c == '!';
    } else if (c == '*' || c == '#') {
        ci->cls = CL_MASK;
        ci->out[0] = '*';
        ci->n = 1;
    } else if (c == '\'' || c == '`') {
        ci->cls = CL_APOS;
        ci->tight = 1;
    } else if (c == ' ' || (c >= '\t' && c <= '\r')) {
        ci->cls = CL_SPACE;
        ci->brk = c == '\n';
    } else {
        ci->cls = CL_SEP;
        ci->brk = c == '?'; /* '.' is decided by the tokenizer: "K. Dick" is no sentence end */
        ci->tight = strchr(".-_~/\\,:;=^\"", (int)c) != NULL && c != 0;
    }
}

/* Folds one code point; see struct cpinfo. Deterministic and table-driven. */
static void classify(uint32_t cp, struct cpinfo *ci)
{
    memset(ci, 0, sizeof *ci);
    if (cp < 0x80) {
        classify_ascii(cp, ci);
        return;
    }
    if (cp >= 0xC0 && cp <= 0xFF) {
        const char *s = latin1[cp - 0xC0];
        if (!s) {
            ci->cls = CL_SEP;
            return;
        }
        set_letter(ci, s[0], cp <= 0xDE, 1);
        if (s[1]) {
            ci->out[1] = s[1];
            ci->n = 2;
        }
        return;
    }
    if (cp >= 0x100 && cp <= 0x17F) {
        unsigned i = cp - 0x100;
        int upper;
        if (cp <= 0x137)
            upper = !(cp & 1);
        else if (cp == 0x138 || cp == 0x149 || cp == 0x17F)
            upper = 0;
        else if (cp <= 0x148)
            upper = cp & 1;
        else if (cp <= 0x177)
            upper = !(cp & 1);
        else if (cp == 0x178)
            upper = 1;
        else
            upper = cp & 1;
        if (latin_ext_a[i] == '?') {
            int oe = cp >= 0x152;
            set_letter(ci, oe ? 'o' : 'i', upper, 1);
            ci->out[1] = oe ? 'e' : 'j';
            ci->n = 2;
        } else {
            set_letter(ci, latin_ext_a[i], upper, 1);
        }
        return;
    }
    switch (cp) {
    case 0xA1: /* inverted exclamation mark */
        ci->cls = CL_LEET;
        ci->out[0] = '!';
        ci->n = 1;
        return;
    case 0x20AC: /* euro sign */
        ci->cls = CL_LEET;
        ci->out[0] = '3';
        ci->n = 1;
        return;
    case 0x192: /* latin small f with hook */
        set_letter(ci, 'f', 0, 1);
        return;
    case 0x2018: case 0x2019: case 0x02BC: case 0x2032:
        ci->cls = CL_APOS;
        ci->tight = 1;
        return;
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
        ci->cls = CL_SPACE;
        ci->brk = cp == 0x2028 || cp == 0x2029;
        return;
    case 0xAD: case 0x180E: case 0xFEFF:
        ci->cls = CL_IGNORE;
        return;
    case 0xB7: case 0x2022: case 0x2010: case 0x2011: case 0x2013:
        ci->cls = CL_SEP;
        ci->tight = 1;
        return;
    default:
        break;
    }
    if ((cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2060 && cp <= 0x2064) ||
        (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
        (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
        (cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0xFE20 && cp <= 0xFE2F) ||
        (cp >= 0xE0100 && cp <= 0xE01EF)) {
        ci->cls = CL_IGNORE; /* zero-width characters, combining marks, variation selectors */
        return;
    }
    if (cp >= 0x2000 && cp <= 0x200A) {
        ci->cls = CL_SPACE;
        return;
    }
    if (cp >= 0xFF01 && cp <= 0xFF5E) { /* fullwidth ASCII */
        classify_ascii(cp - 0xFEE0, ci);
        return;
    }
    if (cp >= 0x1D400 && cp <= 0x1D6A3) { /* mathematical bold, italic, script ... letters */
        unsigned i = (cp - 0x1D400) % 52;
        set_letter(ci, (char)('a' + i % 26), i < 26, 1);
        return;
    }
    if (cp >= 0x1D7CE && cp <= 0x1D7FF) { /* mathematical digits */
        ci->cls = CL_DIGIT;
        ci->out[0] = (char)('0' + (cp - 0x1D7CE) % 10);
        ci->n = 1;
        return;
    }
    if (cp >= 0x24B6 && cp <= 0x24E9) { /* circled letters */
        unsigned i = cp - 0x24B6;
        set_letter(ci, (char)('a' + i % 26), i < 26, 1);
        return;
    }
    if (cp >= 0x249C && cp <= 0x24B5) { /* parenthesised letters */
        set_letter(ci, (char)('a' + (cp - 0x249C)), 0, 1);
        return;
    }
    if ((cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
        (cp >= 0x1F170 && cp <= 0x1F189)) { /* squared and negative circled letters */
        uint32_t base = cp >= 0x1F170 ? 0x1F170 : cp >= 0x1F150 ? 0x1F150 : 0x1F130;
        set_letter(ci, (char)('a' + (cp - base)), 0, 0);
        return;
    }
    if (cp >= 0x1F1E6 && cp <= 0x1F1FF) { /* regional indicators */
        set_letter(ci, (char)('a' + (cp - 0x1F1E6)), 0, 0);
        return;
    }
    if (cp >= 0x0370 && cp <= 0x052F) {
        for (size_t i = 0; i < sizeof homoglyphs / sizeof homoglyphs[0]; i++)
            if (homoglyphs[i].cp == cp) {
                set_letter(ci, homoglyphs[i].c, homoglyphs[i].upper, 1);
                return;
            }
    }
    /* Punctuation, symbols, emoji, private use and specials separate words; any other
     * code point is taken for a letter of another script. */
    if (cp < 0x0180 || (cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x2E00 && cp <= 0x2E7F) ||
        (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xD800 && cp <= 0xF8FF) ||
        (cp >= 0xFE30 && cp <= 0xFE6F) || (cp >= 0xFF00 && cp <= 0xFFFF) ||
        (cp >= 0x1F000 && cp <= 0x1FAFF) || cp > 0x10FFFF) {
        ci->cls = CL_SEP;
        ci->brk = cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F;
        return;
    }
    set_letter(ci, PLACEHOLDER, 0, 0);
}

/* Lenient UTF-8 decoding: an invalid byte reads as U+FFFD and advances one byte. */
static uint32_t decode(const uint8_t *s, size_t len, size_t *i)
{
    uint32_t c = s[*i];
    size_t n, k;
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 1;
        c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 2;
        c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 3;
        c &= 0x07;
    } else {
        (*i)++;
        return 0xFFFD;
    }
    if (*i + n >= len) {
        (*i)++;
        return 0xFFFD;
    }
    for (k = 1; k <= n; k++) {
        uint8_t b = s[*i + k];
        if ((b & 0xC0) != 0x80) {
            (*i)++;
            return 0xFFFD;
        }
        c = (c << 6) | (b & 0x3F);
    }
    if ((n == 2 && c < 0x800) || (n == 3 && (c < 0x10000 || c > 0x10FFFF)) ||
        (c >= 0xD800 && c <= 0xDFFF)) {
        (*i)++;
        return 0xFFFD;
    }
    *i += n + 1;
    return c;
}

/* The letter a digit or l33t symbol stands for, and its second reading (0 = none). A
 * symbol with no letter stays as it is and never matches a list word. */
static char leet_primary(char c, char *alt)
{
    *alt = 0;
    switch (c) {
    case '0': return 'o';
    case '1': *alt = 'l'; return 'i';
    case '3': return 'e';
    case '4': return 'a';
    case '5': return 's';
    case '6': *alt = 'b'; return 'g';
    case '7': return 't';
    case '8': return 'b';
    case '9': return 'g';
    case '@': return 'a';
    case '$': return 's';
    case '!': *alt = 'l'; return 'i';
    case '|': *alt = 'i'; return 'l';
    case '+': return 't';
    default: return c;
    }
}

/* ------------------------------------------------------------------------------------ */
/* The compiled engine                                                                  */
/* ------------------------------------------------------------------------------------ */

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
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
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

static uint32_t hash_key(unsigned kind, const char *s, size_t n)
{
    uint32_t h = 2166136261u ^ (kind * 0x9E3779B1u);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

void modengine_free(modengine_t *e)
{
    if (!e)
        return;
    free(e->chars);
    free(e->words);
    free(e->pats);
    free(e->nodes);
    free(e->terms);
    free(e->xpats);
    free(e->entries);
    free(e->buckets);
    free(e->single);
    free(e);
}

/* ------------------------------------------------------------------------------------ */
/* Loading list files                                                                   */
/* ------------------------------------------------------------------------------------ */

struct rawentry {
    json_t *obj;
    const char *file;
    size_t index; /* position in the file's "entries" */
    int dead;     /* replaced by a later entry with the same term */
};

struct rawgroup {
    const char *name;
    json_t *members;
    const char *file;
};

struct rawlex {
    uint8_t kind;
    json_t *items;
    const char *file;
};

/* A word of a term as written: literal text with wildcards, or a group reference. */
struct rword {
    const char *s;
    uint32_t n;
    uint8_t wild;
    int32_t group; /* index in loader.gnames, -1 for a literal */
};

struct loader {
    modengine_t *e;
    char *err;
    size_t errlen;
    json_t **roots;
    size_t nroots, caproots;
    struct rawentry *raw;
    size_t nraw, capraw;
    struct rawgroup *groups;
    size_t ngroups, capgroups;
    struct rawlex *lex;
    size_t nlex, caplex;
    /* Group expansion: distinct names, and each member pre-split into literal words. */
    const char **gnames;
    size_t ngnames;
    struct rword *gwords; /* every member's words, back to back */
    size_t ngwords, capgwords;
    struct gmember { uint32_t w0, n; int32_t group; } *gmembers;
    size_t ngmembers, capgmembers;
    /* The entry being compiled, for error messages and the expansion limit. */
    const char *cur_file;
    char cur_what[160]; /* "entries[3] (\"term\")" or "groups.you" */
    size_t cur_count;
    int cur_exception;
};

static void seterr(struct loader *L, const char *fmt, ...)
{
    if (!L->err || !L->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->err, L->errlen, fmt, ap);
    va_end(ap);
}

static int kind_by_name(const char *s, int first, int last)
{
    for (int k = first; k < last; k++)
        if (strcmp(kind_names[k], s) == 0)
            return k;
    return -1;
}

static int is_comment(const char *key)
{
    return key[0] == '/' && key[1] == '/';
}

static int check_strings(struct loader *L, const char *file, const json_t *arr, const char *what)
{
    size_t i;
    const json_t *v;
    if (!json_is_array(arr)) {
        seterr(L, "%s: %s must be an array of strings", file, what);
        return -1;
    }
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0) {
            seterr(L, "%s: %s[%zu] must be a non-empty string", file, what, i);
            return -1;
        }
    }
    return 0;
}

/* Validates one entry object; the term and the category are checked here so that the
 * message names the file even though compilation comes later. */
static int check_entry(struct loader *L, const char *file, size_t idx, const json_t *obj)
{
    const char *key;
    const json_t *v;
    char what[64];
    if (!json_is_object(obj)) {
        seterr(L, "%s: entries[%zu] must be an object", file, idx);
        return -1;
    }
    const json_t *term = json_object_get(obj, "term");
    const char *tname = json_is_string(term) ? json_string_value(term) : "?";
    json_object_foreach((json_t *)obj, key, v) {
        if (is_comment(key))
            continue;
        if (strcmp(key, "term") == 0) {
            if (!json_is_string(v) || json_string_length(v) == 0) {
                seterr(L, "%s: entries[%zu]: term must be a non-empty string", file, idx);
                return -1;
            }
        } else if (strcmp(key, "category") == 0) {
            if (!json_is_string(v) || kind_by_name(json_string_value(v), 0, NCAT) < 0) {
                seterr(L, "%s: entries[%zu] (\"%s\"): category must be one of profanity, slurs, "
                       "threats, sexual, self_harm, spam", file, idx, tname);
                return -1;
            }
        } else if (strcmp(key, "severity") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 5) {
                seterr(L, "%s: entries[%zu] (\"%s\"): severity must be an integer 0-5", file, idx,
                       tname);
                return -1;
            }
        } else if (strcmp(key, "forms") == 0 || strcmp(key, "exceptions") == 0) {
            snprintf(what, sizeof what, "entries[%zu].%s", idx, key);
            if (check_strings(L, file, v, what) != 0)
                return -1;
        } else if (strcmp(key, "names") == 0) {
            if (!json_is_boolean(v)) {
                seterr(L, "%s: entries[%zu] (\"%s\"): names must be true or false", file, idx, tname);
                return -1;
            }
        } else {
            seterr(L, "%s: entries[%zu] (\"%s\"): unknown member \"%s\"", file, idx, tname, key);
            return -1;
        }
    }
    if (!json_is_string(term)) {
        seterr(L, "%s: entries[%zu]: term is missing", file, idx);
        return -1;
    }
    if (!json_object_get(obj, "category") || !json_object_get(obj, "severity")) {
        seterr(L, "%s: entries[%zu] (\"%s\"): category and severity are required", file, idx, tname);
        return -1;
    }
    return 0;
}

/* Case-insensitive ASCII comparison of two terms, for "a later entry replaces it". */
static int same_term(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

/* Records one parsed list document (root is kept until compilation ends). */
static int load_doc(struct loader *L, json_t *root, const char *file)
{
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        seterr(L, "%s: the list must be a JSON object", file);
        return -1;
    }
    json_object_foreach(root, key, v) {
        if (is_comment(key))
            continue;
        if (strcmp(key, "name") == 0) {
            if (!json_is_string(v)) {
                seterr(L, "%s: name must be a string", file);
                return -1;
            }
        } else if (strcmp(key, "groups") == 0) {
            const char *gname;
            json_t *members;
            if (!json_is_object(v)) {
                seterr(L, "%s: groups must be an object of string arrays", file);
                return -1;
            }
            json_object_foreach(v, gname, members) {
                char what[96];
                snprintf(what, sizeof what, "groups.%.80s", gname);
                if (check_strings(L, file, members, what) != 0)
                    return -1;
                if (grow((void **)&L->groups, &L->capgroups, L->ngroups + 1, sizeof *L->groups))
                    goto oom;
                L->groups[L->ngroups++] = (struct rawgroup){gname, members, file};
            }
        } else if (strcmp(key, "entries") == 0) {
            size_t i;
            json_t *obj;
            if (!json_is_array(v)) {
                seterr(L, "%s: entries must be an array", file);
                return -1;
            }
            json_array_foreach(v, i, obj) {
                if (check_entry(L, file, i, obj) != 0)
                    return -1;
                const char *term = json_string_value(json_object_get(obj, "term"));
                for (size_t k = 0; k < L->nraw; k++)
                    if (!L->raw[k].dead &&
                        same_term(json_string_value(json_object_get(L->raw[k].obj, "term")), term))
                        L->raw[k].dead = 1;
                if (grow((void **)&L->raw, &L->capraw, L->nraw + 1, sizeof *L->raw))
                    goto oom;
                L->raw[L->nraw++] = (struct rawentry){obj, file, i, 0};
            }
        } else if (strcmp(key, "lexicons") == 0) {
            const char *lname;
            json_t *items;
            if (!json_is_object(v)) {
                seterr(L, "%s: lexicons must be an object of string arrays", file);
                return -1;
            }
            json_object_foreach(v, lname, items) {
                char what[96];
                if (is_comment(lname))
                    continue;
                int kind = kind_by_name(lname, NCAT, NKIND);
                if (kind < 0) {
                    seterr(L, "%s: unknown lexicon \"%s\" (second_person, negators, stopwords, "
                           "positive, negative, political, defensive)", file, lname);
                    return -1;
                }
                snprintf(what, sizeof what, "lexicons.%s", lname);
                if (check_strings(L, file, items, what) != 0)
                    return -1;
                if (grow((void **)&L->lex, &L->caplex, L->nlex + 1, sizeof *L->lex))
                    goto oom;
                L->lex[L->nlex++] = (struct rawlex){(uint8_t)kind, items, file};
            }
        } else {
            seterr(L, "%s: unknown member \"%s\" (name, groups, entries, lexicons)", file, key);
            return -1;
        }
    }
    return 0;
oom:
    seterr(L, "%s: out of memory", file);
    return -1;
}

static int keep_root(struct loader *L, json_t *root)
{
    if (grow((void **)&L->roots, &L->caproots, L->nroots + 1, sizeof *L->roots)) {
        json_decref(root);
        return -1;
    }
    L->roots[L->nroots++] = root;
    return 0;
}

/* ---- compilation ---- */

/* Normalises one literal list word to its full lowercase spelling (no collapsing):
 * the same folding and l33t mapping as text, apostrophes dropped. */
static int list_word(struct loader *L, const char *s, size_t n, char *out, size_t *outn)
{
    size_t i = 0, k = 0;
    while (i < n) {
        struct cpinfo ci;
        size_t at = i;
        classify(decode((const uint8_t *)s, n, &i), &ci);
        if (ci.cls == CL_APOS || ci.cls == CL_IGNORE)
            continue;
        if ((ci.cls != CL_LETTER && ci.cls != CL_DIGIT && ci.cls != CL_LEET) ||
            (ci.cls == CL_LETTER && ci.out[0] == PLACEHOLDER)) {
            seterr(L, "%s: %s: \"%.*s\" has '%.*s': use letters, digits, "
                   "spaces, * at a word's ends and <group>", L->cur_file, L->cur_what,
                   (int)n, s, (int)(i - at), s + at);
            return -1;
        }
        for (unsigned j = 0; j < ci.n; j++) {
            char alt;
            char c = ci.cls == CL_LETTER ? ci.out[j] : leet_primary(ci.out[j], &alt);
            if (k == MAXJOIN) {
                seterr(L, "%s: %s: word \"%.*s\" is too long", L->cur_file,
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
        seterr(L, "%s: %s: a word is empty or longer than %d letters",
               L->cur_file, L->cur_what, MAXWORD);
        return -1;
    }
    if (grow((void **)&e->chars, &e->capchars, e->nchars + 2 * k, 1) ||
        grow((void **)&e->words, &e->capwords, e->nwords + 1, sizeof *e->words)) {
        seterr(L, "%s: out of memory", L->cur_file);
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
        seterr(L, "%s: %s: expands to more than %d phrases", L->cur_file,
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
    seterr(L, "%s: out of memory", L->cur_file);
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
    seterr(L, "%s: %s: a phrase is longer than %d words", L->cur_file,
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
            seterr(L, "%s: %s: more than %d words", L->cur_file, L->cur_what,
                   MAXPHRASE);
            return -1;
        }
        struct rword w = {p, (uint32_t)(q - p), 0, -1};
        if (*p == '<' && q[-1] == '>' && q - p > 2) {
            if (!allow_groups) {
                seterr(L, "%s: a group member cannot name a group (\"%s\")", L->cur_file, term);
                return -1;
            }
            w.group = find_group(L, p + 1, (size_t)(q - p - 2));
            if (w.group < 0) {
                seterr(L, "%s: %s: unknown group %.*s", L->cur_file,
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
                seterr(L, "%s: %s: '*' is allowed only at a word's ends",
                       L->cur_file, L->cur_what);
                return -1;
            }
        }
        out[n++] = w;
        p = q;
    }
    if (!n) {
        seterr(L, "%s: %s: empty term", L->cur_file, L->cur_what);
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
        seterr(L, "%s: out of memory", L->cur_file);
        return -1;
    }
    e->entries[e->nentries++] =
        (struct entry){(uint8_t)kind, (uint8_t)severity, (uint8_t)names, (uint32_t)e->nxpats, 0,
                       NONE, 0};
    return 0;
}

/* Collects the groups of every file (same name: members added) and splits members. */
static int compile_groups(struct loader *L)
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
                    seterr(L, "%s: groups.%s: members cannot use '*'", L->cur_file, name);
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
    seterr(L, "out of memory");
    return -1;
}

static int compile_entries(struct loader *L)
{
    modengine_t *e = L->e;
    for (size_t r = 0; r < L->nraw; r++) {
        const struct rawentry *re = &L->raw[r];
        if (re->dead)
            continue;
        int severity = (int)json_integer_value(json_object_get(re->obj, "severity"));
        if (severity == 0)
            continue; /* a later file switched the entry off */
        int kind = kind_by_name(json_string_value(json_object_get(re->obj, "category")), 0, NCAT);
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
                     kind_names[L->lex[r].kind], i);
            if (compile_term(L, json_string_value(v), 0) != 0)
                return -1;
        }
    }
    return 0;
}

static int same_word(const modengine_t *e, uint32_t a, uint32_t b)
{
    const struct mword *x = &e->words[a], *y = &e->words[b];
    return x->wild == y->wild && x->len == y->len &&
           memcmp(e->chars + x->off, e->chars + y->off, 2u * x->len) == 0;
}

static int64_t new_node(modengine_t *e, uint32_t word)
{
    if (grow((void **)&e->nodes, &e->capnodes, e->nnodes + 1, sizeof *e->nodes))
        return -1;
    e->nodes[e->nnodes] = (struct tnode){0, word, NONE, NONE, NONE, NONE, 0, NONE};
    return (int64_t)e->nnodes++;
}

/* Adds the words of p from index `from` below node n, and p's entry at the end. */
static int trie_path(modengine_t *e, uint32_t n, const struct pattern *p, uint32_t from)
{
    for (uint32_t i = from; i < p->nwords; i++) {
        uint32_t w = p->word0 + i, c = e->nodes[n].child, last = NONE;
        while (c != NONE && !same_word(e, e->nodes[c].word, w)) {
            last = c;
            c = e->nodes[c].sibling;
        }
        if (c == NONE) {
            int64_t k = new_node(e, w);
            if (k < 0)
                return -1;
            c = (uint32_t)k;
            if (last == NONE)
                e->nodes[n].child = c;
            else
                e->nodes[last].sibling = c;
        }
        n = c;
    }
    for (uint32_t t = e->nodes[n].term; t != NONE; t = e->terms[t].next)
        if (e->terms[t].entry == p->entry)
            return 0;
    if (grow((void **)&e->terms, &e->capterms, e->nterms + 1, sizeof *e->terms))
        return -1;
    e->terms[e->nterms] = (struct tterm){p->entry, e->nodes[n].term};
    e->nodes[n].term = (uint32_t)e->nterms++;
    if (e->entries[p->entry].kind < NCAT && p->entry < e->nodes[n].first_entry)
        e->nodes[n].first_entry = p->entry;
    return 0;
}

/* Adds one pattern to the trie: its first word through the hash table. */
static int trie_insert(modengine_t *e, const struct pattern *p)
{
    const struct mword *w0 = &e->words[p->word0];
    uint32_t h = hash_key(w0->wild, e->chars + w0->off, w0->len) & e->bmask;
    uint32_t n = e->buckets[h];
    while (n != NONE && !same_word(e, e->nodes[n].word, p->word0))
        n = e->nodes[n].next;
    if (n == NONE) {
        int64_t k = new_node(e, p->word0);
        if (k < 0)
            return -1;
        n = (uint32_t)k;
        e->nodes[n].top = 1;
        e->nodes[n].next = e->buckets[h];
        e->buckets[h] = n;
        e->lenmask[w0->wild] |= 1ull << w0->len;
    }
    return trie_path(e, n, p, 1);
}

/* Union of the kinds ending at or below node n (children have higher indexes). */
static void trie_kinds(modengine_t *e)
{
    for (size_t n = e->nnodes; n-- > 0;) {
        struct tnode *nd = &e->nodes[n];
        for (uint32_t t = nd->term; t != NONE; t = e->terms[t].next)
            nd->kinds |= (uint16_t)(1u << e->entries[e->terms[t].entry].kind);
        for (uint32_t c = nd->child; c != NONE; c = e->nodes[c].sibling)
            nd->kinds |= e->nodes[c].kinds;
    }
}

/* Builds the trie, its first-level hash table and the masked-word candidates; the
 * engine is final after this. */
static int build_index(modengine_t *e)
{
    size_t nb = 64;
    while (nb < 2 * e->npats)
        nb *= 2;
    e->buckets = malloc(nb * sizeof *e->buckets);
    if (!e->buckets)
        return -1;
    e->bmask = (uint32_t)(nb - 1);
    for (size_t b = 0; b < nb; b++)
        e->buckets[b] = NONE;
    for (size_t i = 0; i < e->npats; i++)
        if (trie_insert(e, &e->pats[i]) != 0)
            return -1;
    for (size_t i = 0; i < e->nentries; i++) {
        struct entry *en = &e->entries[i];
        if (!en->nx)
            continue;
        int64_t root = new_node(e, NONE);
        if (root < 0)
            return -1;
        en->xroot = (uint32_t)root;
        for (uint32_t x = en->x0; x < en->x0 + en->nx; x++) {
            if (trie_path(e, en->xroot, &e->xpats[x], 0) != 0)
                return -1;
            if (e->xpats[x].nwords > en->xlen)
                en->xlen = e->xpats[x].nwords;
        }
    }
    trie_kinds(e);
    e->single = malloc((e->nnodes ? e->nnodes : 1) * sizeof *e->single);
    if (!e->single)
        return -1;
    /* Counting sort of the one-word content nodes: "*stem" words, then by first letter
     * (node order within a letter, so the result does not depend on the hash). */
    uint32_t count[258];
    memset(count, 0, sizeof count);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t n = 0; n < e->nnodes; n++) {
            const struct tnode *nd = &e->nodes[n];
            const struct mword *w = nd->word == NONE ? NULL : &e->words[nd->word];
            if (!nd->top || nd->first_entry == NONE || w->joined)
                continue;
            unsigned slot = w->wild & W_LEAD ? 0 : 1 + (uint8_t)e->chars[w->off];
            if (pass == 0)
                count[slot + 1]++;
            else
                e->single[count[slot]++] = (uint32_t)n;
        }
        if (pass == 0) {
            for (unsigned c = 1; c < 258; c++)
                count[c] += count[c - 1];
            for (unsigned c = 0; c < 257; c++)
                e->single_at[c] = count[c + 1];
            e->nsingle = count[257];
        }
    }
    free(e->pats); /* the tries have them all */
    free(e->xpats);
    e->pats = e->xpats = NULL;
    e->npats = e->cappats = e->nxpats = e->capxpats = 0;
    return 0;
}

static void loader_free(struct loader *L)
{
    for (size_t i = 0; i < L->nroots; i++)
        json_decref(L->roots[i]);
    free(L->roots);
    free(L->raw);
    free(L->groups);
    free(L->lex);
    free(L->gnames);
    free(L->gwords);
    free(L->gmembers);
}

modengine_t *modengine_load(const char *const *extra_files, size_t nfiles, int no_default,
                            char *err, size_t errlen)
{
    struct loader L;
    memset(&L, 0, sizeof L);
    L.err = err;
    L.errlen = errlen;
    if (err && errlen)
        err[0] = 0;
    L.e = calloc(1, sizeof *L.e);
    if (!L.e) {
        seterr(&L, "modengine: out of memory");
        return NULL;
    }
    json_error_t jerr;
    if (!no_default) {
        const char *name = "<embedded config/moderation/en.json>";
        json_t *root = json_loadb(modengine__default_list, modengine__default_list_len, 0, &jerr);
        if (!root) {
            seterr(&L, "%s: line %d: %s", name, jerr.line, jerr.text);
            goto fail;
        }
        if (keep_root(&L, root) != 0 || load_doc(&L, root, name) != 0)
            goto fail;
    }
    for (size_t f = 0; f < nfiles; f++) {
        json_t *root = json_load_file(extra_files[f], 0, &jerr);
        if (!root) {
            if (jerr.line > 0)
                seterr(&L, "%s: line %d: %s", extra_files[f], jerr.line, jerr.text);
            else
                seterr(&L, "%s: %s", extra_files[f], jerr.text);
            goto fail;
        }
        if (keep_root(&L, root) != 0 || load_doc(&L, root, extra_files[f]) != 0)
            goto fail;
    }
    if (compile_groups(&L) != 0 || compile_entries(&L) != 0)
        goto fail;
    if (build_index(L.e) != 0) {
        seterr(&L, "modengine: out of memory");
        goto fail;
    }
    loader_free(&L);
    return L.e;
fail:
    if (err && errlen && !err[0])
        seterr(&L, "modengine: out of memory");
    loader_free(&L);
    modengine_free(L.e);
    return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Per-call state                                                                       */
/* ------------------------------------------------------------------------------------ */

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

/* Looks every reading of v up as the first word of a pattern: whole word, stem at the
 * start, stem at the end, stem inside, each only for lengths some list word has. */
static int probe(struct scan *sc, const struct view *v, uint32_t t0, uint32_t t1, unsigned allow,
                 uint8_t hflags)
{
    const modengine_t *e = sc->e;
    char sk[MAXWORD];
    uint8_t runs[MAXWORD];
    int found = 0;
    for (unsigned m = 0; m < (1u << v->namb); m++) {
        int n = skeletonize(v, m, sk, runs);
        if (n <= 0)
            continue;
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
    }
    return found;
}

/* The same as probe, on a token's cached readings. */
static int probe_token(struct scan *sc, uint32_t ti, unsigned allow)
{
    const modengine_t *e = sc->e;
    const struct tok *t = &sc->tok[ti];
    const uint8_t *p = sc->skel + t->sk0;
    int found = 0;
    for (unsigned r = 0; r < t->nvar; r++) {
        int n = p[0];
        const char *sk = (const char *)p + 1;
        const uint8_t *runs = p + 1 + n;
        p += 1 + 2 * n;
        if (n == 0)
            continue;
        if (e->lenmask[0] >> n & 1)
            found += lookup(sc, 0, sk, runs, n, ti, ti + 1, allow, 0);
        for (int L = 1; L <= n; L++) {
            if (e->lenmask[W_TRAIL] >> L & 1)
                found += lookup(sc, W_TRAIL, sk, runs, L, ti, ti + 1, allow, 0);
            if (e->lenmask[W_LEAD] >> L & 1)
                found += lookup(sc, W_LEAD, sk + n - L, runs + n - L, L, ti, ti + 1, allow, 0);
            if (e->lenmask[W_TRAIL | W_LEAD] >> L & 1)
                for (int i = 0; i + L <= n; i++)
                    found += lookup(sc, W_TRAIL | W_LEAD, sk + i, runs + i, L, ti, ti + 1, allow,
                                    0);
        }
    }
    return found;
}

/* ------------------------------------------------------------------------------------ */
/* Detectors: e-mail addresses, links, phone numbers                                    */
/* ------------------------------------------------------------------------------------ */

static int is_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int lower_ascii(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Top-level domains recognised in bare domains ("example.com"); country codes that are
 * also common words ("it", "me", "in", "to") are left out on purpose. */
static const char *const tlds[] = {
    "com", "net", "org", "edu", "gov", "info", "biz", "io", "co", "uk", "de", "fr", "nl", "es",
    "ru", "cn", "jp", "au", "ca", "br", "pl", "se", "ch", "eu", "ly", "gg", "tv", "xyz", "app",
    "dev", "ai", "top", "club", "online", "site", "shop", "store", "link", "click", "vip", "pro",
    "cc", "ws", "su", "ua", "kr", "tk", "ml", "ga", "cf", "icu", "buzz", "fun", "win", "bid",
};

static int is_tld(const uint8_t *s, size_t n)
{
    char low[8];
    if (n < 2 || n > sizeof low)
        return 0;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)lower_ascii(s[i]);
    for (size_t i = 0; i < sizeof tlds / sizeof tlds[0]; i++)
        if (strlen(tlds[i]) == n && memcmp(tlds[i], low, n) == 0)
            return 1;
    return 0;
}

/* Domain labels from i: returns the end, with the label count and the last label. */
static size_t scan_domain(const uint8_t *s, size_t len, size_t i, unsigned *labels, size_t *last)
{
    size_t end = i;
    *labels = 0;
    while (i < len && (is_alnum(s[i]) || s[i] == '-')) {
        size_t b = i;
        while (i < len && (is_alnum(s[i]) || s[i] == '-'))
            i++;
        (*labels)++;
        *last = b;
        end = i;
        if (i + 1 < len && s[i] == '.' && (is_alnum(s[i + 1])))
            i++;
        else
            break;
    }
    return end;
}

static int add_span(struct scan *sc, size_t b0, size_t b1, int email)
{
    if (grow((void **)&sc->span, &sc->capspan, sc->nspan + 1, sizeof *sc->span)) {
        sc->oom = 1;
        return -1;
    }
    sc->span[sc->nspan++] = (struct span){(uint32_t)b0, (uint32_t)b1, (uint8_t)email};
    return 0;
}

static int starts_ci(const uint8_t *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && strncasecmp((const char *)s, prefix, k) == 0;
}

/* The character at d continues a word, an address or a longer name: no domain ends there. */
static int domain_continues(const uint8_t *s, size_t len, size_t d)
{
    if (d >= len)
        return 0;
    return s[d] == '@' || s[d] == '-' || is_alnum(s[d]) ||
           (s[d] == '.' && d + 1 < len && is_alnum(s[d + 1]));
}

static int url_char(int c)
{
    return c > ' ' && c != '"' && c != '<' && c != '>' && c != '`' && c < 0x7F;
}

/* Finds e-mail addresses and links, in text order, as spans. */
static void detect_spans(struct scan *sc)
{
    const uint8_t *s = sc->text;
    size_t len = sc->len, i = 0;
    while (i < len) {
        int boundary = i == 0 || !(is_alnum(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == '-' ||
                                   s[i - 1] == '_' || s[i - 1] == '@' || s[i - 1] == '/');
        if (s[i] == '@' && i > 0) {
            size_t l = i;
            while (l > 0 && (is_alnum(s[l - 1]) || strchr("._%+-", s[l - 1]) != NULL) && s[l - 1])
                l--;
            unsigned labels;
            size_t last = 0;
            size_t end = scan_domain(s, len, i + 1, &labels, &last);
            int alpha_tld = end - last >= 2;
            for (size_t k = last; k < end && alpha_tld; k++)
                alpha_tld = (lower_ascii(s[k]) >= 'a' && lower_ascii(s[k]) <= 'z');
            if (l < i && labels >= 2 && alpha_tld) {
                /* A link found just before this address was its local part. */
                if (sc->nspan && !sc->span[sc->nspan - 1].email && sc->span[sc->nspan - 1].b1 > l) {
                    sc->nspan--;
                    sc->links--;
                }
                if (add_span(sc, l, end, 1) != 0)
                    return;
                sc->emails++;
                i = end;
                continue;
            }
        }
        if (boundary && is_alnum(s[i])) {
            size_t end;
            if (starts_ci(s + i, len - i, "http://") || starts_ci(s + i, len - i, "https://")) {
                end = i + 7;
            } else if (starts_ci(s + i, len - i, "www.") && i + 4 < len && is_alnum(s[i + 4])) {
                end = i + 4;
            } else {
                unsigned labels;
                size_t last = 0;
                size_t d = scan_domain(s, len, i, &labels, &last);
                if (labels < 2 || !is_tld(s + last, d - last) || domain_continues(s, len, d)) {
                    i = d > i ? d : i + 1; /* not a domain: skip the whole word */
                    continue;
                }
                end = d;
            }
            while (end < len && url_char(s[end]))
                end++;
            while (end > i && strchr(".,;:!?)]}'", s[end - 1]) != NULL)
                end--; /* sentence punctuation after a link is not part of it */
            if (add_span(sc, i, end, 0) != 0)
                return;
            sc->links++;
            i = end;
            continue;
        }
        i++;
    }
}

/* The span containing byte b, or -1. Spans are found in text order and do not overlap, so
 * a binary search keeps texts full of links linear-logarithmic, not quadratic. */
static long span_at(const struct scan *sc, size_t b)
{
    size_t lo = 0, hi = sc->nspan;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b < sc->span[mid].b0)
            hi = mid;
        else if (b >= sc->span[mid].b1)
            lo = mid + 1;
        else
            return (long)mid;
    }
    return -1;
}

static int in_span(const struct scan *sc, size_t b) { return span_at(sc, b) >= 0; }

/* Phone numbers: 7-15 digits in groups with separators (" -.()"), or '+' and 8-15 digits;
 * dates, IP addresses and plain numbers (order numbers) are not phone numbers. */
static void detect_phones(struct scan *sc)
{
    const uint8_t *s = sc->text;
    size_t len = sc->len, i = 0;
    while (i < len) {
        int start = is_alnum(s[i]) ? (s[i] >= '0' && s[i] <= '9')
                                   : ((s[i] == '+' || s[i] == '(') && i + 1 < len &&
                                      s[i + 1] >= '0' && s[i + 1] <= '9');
        if (!start || (i > 0 && (is_alnum(s[i - 1]) || strchr(".,/-+:#$", s[i - 1]))) ||
            in_span(sc, i)) {
            i++;
            continue;
        }
        int plus = s[i] == '+';
        unsigned digits = 0, groups = 0, cur = 0, maxg = 0, seprun = 0, g[4] = {0, 0, 0, 0};
        char sepkind = 0;
        int mixed = 0;
        size_t j = i + (s[i] == '+'), end = j;
        for (; j < len; j++) {
            uint8_t c = s[j];
            if (c >= '0' && c <= '9') {
                digits++;
                cur++;
                seprun = 0;
                end = j + 1;
            } else if ((c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') && seprun < 2) {
                if (cur) {
                    if (groups < 4)
                        g[groups] = cur;
                    groups++;
                    maxg = cur > maxg ? cur : maxg;
                    cur = 0;
                }
                if (sepkind && sepkind != (char)c && c != ' ')
                    mixed = 1;
                if (c != ' ' || !sepkind)
                    sepkind = (char)c;
                seprun++;
            } else {
                break;
            }
        }
        if (cur) {
            if (groups < 4)
                g[groups] = cur;
            groups++;
            maxg = cur > maxg ? cur : maxg;
        }
        int after_ok = end >= len || !is_alnum(s[end]);
        int date = groups == 3 && !mixed && (sepkind == '-' || sepkind == '.' || sepkind == '/') &&
                   ((g[0] == 4 && g[1] <= 2 && g[2] <= 2) ||
                    (g[0] <= 2 && g[1] <= 2 && (g[2] == 4 || g[2] == 2)));
        int ip = groups == 4 && sepkind == '.' && !mixed && maxg <= 3;
        int ok = digits >= 7 && digits <= 15 && after_ok && !date && !ip &&
                 (plus ? digits >= 8 : (groups >= 2 && maxg >= 3));
        if (ok)
            sc->phones++;
        i = end > i ? end : i + 1;
    }
}

/* ------------------------------------------------------------------------------------ */
/* Tokenising                                                                           */
/* ------------------------------------------------------------------------------------ */

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

/* Ends the token whose characters are norm[b->c0 .. nnorm): strips edge symbols, maps
 * l33t, decides what kind of token it is, and resets the gap. */
static void finish_token(struct scan *sc, struct building *b, struct gap *g)
{
    char *s = sc->norm;
    const uint8_t *cl = sc->ncls;
    size_t a = b->c0, z = sc->nnorm;
    int lead_mask = 0;
    while (a < z && (cl[a] == CL_MASK || (cl[a] == CL_LEET && strchr("!+|", s[a])))) {
        lead_mask |= cl[a] == CL_MASK;
        g->brk |= s[a] == '!';
        a++;
        g->other = 1;
    }
    int trail_bang = 0;
    while (z > a && ((lead_mask && cl[z - 1] == CL_MASK) ||
                     (cl[z - 1] == CL_LEET && strchr("!+|@", s[z - 1])))) {
        trail_bang |= s[z - 1] == '!';
        z--;
    }
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
    long k = span_at(sc, b->b0);
    if (k >= 0) {
        if (sc->span[k].email)
            keep = 0; /* an address is a personal identifier, not words */
        t.flags |= TK_URL;
    }
    if (masks && (letters == 0 || letters + masks < 3))
        keep = 0;
    if (keep) {
        for (size_t i = a; i < z; i++) {
            if (cl[i] != CL_DIGIT && cl[i] != CL_LEET)
                continue;
            char alt;
            char raw = s[i];
            s[i] = leet_primary(raw, &alt);
            int ambiguous = alt != 0;
            if (raw == '@' && i == a && letters) /* "@name" is a mention, "@ss" is "ass" */
                ambiguous = 1, alt = 0;          /* read both with 'a' and without it */
            if (ambiguous && t.namb < MAXAMB && i - a < 65535) {
                t.apos[t.namb] = (uint16_t)(i - a);
                t.asub[t.namb++] = alt;
            }
        }
        t.flags |= masks ? TK_MASKED : 0;
        t.n0 = (uint32_t)a;
        t.nlen = (uint32_t)(z - a);
        t.upper = (uint16_t)(b->upper > 65535 ? 65535 : b->upper);
        t.cased = (uint16_t)(b->cased > 65535 ? 65535 : b->cased);
        if (b->first_upper == 1 && b->upper == 1 && letters >= 2)
            t.flags |= TK_TITLE;
        if (letters == 1 && z - a == 1 && b->upper == 1)
            t.flags |= TK_INITIAL;
        if (b->foreign)
            t.flags |= TK_FOREIGN;
        if (push_token(sc, &t) != 0)
            return;
        memset(g, 0, sizeof *g);
        g->brk = (uint8_t)trail_bang;
        if (z < sc->nnorm)
            g->other = 1;
    } else {
        g->other = 1; /* dropped content breaks phrases and joins across it */
    }
}

static void tokenize(struct scan *sc)
{
    const uint8_t *s = sc->text;
    size_t len = sc->len, i = 0;
    struct gap g;
    struct building b;
    int in_tok = 0;
    uint32_t prev = 0;
    unsigned run = 0;
    memset(&g, 0, sizeof g);
    memset(&b, 0, sizeof b);
    while (i < len && !sc->oom) {
        size_t at = i;
        uint32_t cp = decode(s, len, &i);
        struct cpinfo ci;
        classify(cp, &ci);
        if (ci.cls == CL_IGNORE)
            continue;
        if (ci.cls != CL_SPACE) {
            run = cp == prev ? run + 1 : 1;
            prev = cp;
            if (run > sc->longest_run)
                sc->longest_run = run;
        } else {
            prev = 0;
        }
        if (ci.cls == CL_APOS && in_tok) {
            /* "don't" -> "dont": an apostrophe between word characters joins them. */
            size_t k = i;
            struct cpinfo next;
            next.cls = CL_SEP;
            while (k < len) {
                classify(decode(s, len, &k), &next);
                if (next.cls != CL_IGNORE)
                    break;
            }
            if (next.cls == CL_LETTER || next.cls == CL_DIGIT || next.cls == CL_LEET)
                continue;
        }
        int wordish = ci.cls == CL_LETTER || ci.cls == CL_DIGIT || ci.cls == CL_LEET ||
                      ci.cls == CL_MASK;
        if (wordish) {
            if (!in_tok) {
                in_tok = 1;
                b.b0 = at;
                b.c0 = sc->nnorm;
                b.upper = b.cased = 0;
                b.first_upper = -1;
                b.foreign = 0;
            }
            for (unsigned j = 0; j < ci.n; j++) {
                sc->norm[sc->nnorm] = ci.out[j];
                sc->ncls[sc->nnorm++] = ci.cls;
            }
            if (ci.cls == CL_LETTER) {
                if (b.first_upper < 0)
                    b.first_upper = ci.upper;
                b.upper += ci.upper;
                b.cased += ci.upper | ci.lower;
                b.foreign |= ci.out[0] == PLACEHOLDER;
            }
            continue;
        }
        if (in_tok) {
            finish_token(sc, &b, &g);
            in_tok = 0;
        }
        g.chars++;
        if (ci.cls == CL_SPACE)
            g.space = 1;
        else if (ci.tight)
            g.tight = 1;
        else
            g.other = 1;
        if (ci.brk)
            g.brk = 1;
        if (cp == '.')
            g.dot = 1;
    }
    if (in_tok && !sc->oom)
        finish_token(sc, &b, &g);
}

/* Marks the join groups: neighbours glued by punctuation, or single characters glued by
 * short spaces ("f u c k"). */
static void mark_groups(struct scan *sc)
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

/* ------------------------------------------------------------------------------------ */
/* Matching passes                                                                      */
/* ------------------------------------------------------------------------------------ */

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

/* Does one of the entry's exceptions occur over tokens overlapping the hit? */
static int excepted(struct scan *sc, const struct hit *h)
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

static int name_like(const struct tok *t)
{
    return (t->flags & (TK_TITLE | TK_INITIAL)) && !(t->lex & (LX(LEX_STOP) | LX(LEX_SECOND)));
}

/* "Dick Cheney", "Moby Dick", "Philip K. Dick": a Title-case word next to another
 * Title-case word (or an initial) of the same sentence reads as part of a name. */
static int personal_name(const struct scan *sc, const struct hit *h)
{
    if (h->flags || h->t1 != h->t0 + 1 || !(sc->tok[h->t0].flags & TK_TITLE))
        return 0;
    if (h->t1 < sc->ntok && !(sc->tok[h->t1].flags & TK_SENT) && name_like(&sc->tok[h->t1]))
        return 1;
    return h->t0 > 0 && !(sc->tok[h->t0].flags & TK_SENT) && name_like(&sc->tok[h->t0 - 1]);
}

/* An insult with "you" shortly before it in the same sentence, or right after it. */
static int directed(const struct scan *sc, const struct hit *h)
{
    for (uint32_t k = h->t0, n = 0; k > 0 && n < DIRECTED_BACK; k--, n++) {
        if (sc->tok[k].flags & TK_SENT)
            break;
        if (sc->tok[k - 1].lex & LX(LEX_SECOND))
            return 1;
    }
    return h->t1 < sc->ntok && !(sc->tok[h->t1].flags & TK_SENT) &&
           (sc->tok[h->t1].lex & LX(LEX_SECOND));
}

/* ------------------------------------------------------------------------------------ */
/* Scoring                                                                              */
/* ------------------------------------------------------------------------------------ */

/* Rounds to 4 decimals so that the JSON numbers are short and stable. */
static double r4(double x)
{
    if (x < 0)
        return -r4(-x);
    return (double)(int64_t)(x * 10000.0 + 0.5) / 10000.0;
}

static double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

static double floor_score(double x)
{
    x = r4(x);
    return x < FLOOR ? FLOOR : x;
}

/* 1 - q^n: one signal gives 1 - q, each further one less. */
static double saturate(double q, unsigned n)
{
    double p = 1;
    for (unsigned i = 0; i < n && i < 64; i++)
        p *= q;
    return 1 - p;
}

/* The most repeated non-function word as a share of all words, once it occurs 4+ times. */
static double word_repetition(struct scan *sc, unsigned nwords)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)nwords)
        cap *= 2;
    uint32_t *slot = malloc(cap * sizeof *slot);
    uint32_t *count = calloc(cap, sizeof *count);
    unsigned best = 0;
    if (!slot || !count) {
        free(slot);
        free(count);
        sc->oom = 1;
        return 0;
    }
    for (size_t k = 0; k < cap; k++)
        slot[k] = NONE;
    for (uint32_t i = 0; i < sc->ntok; i++) {
        const struct tok *t = &sc->tok[i];
        if (!(t->flags & TK_WORD) || (t->flags & TK_URL) || (t->lex & LX(LEX_STOP)))
            continue;
        uint32_t h = hash_key(0, sc->norm + t->n0, t->nlen) & (uint32_t)(cap - 1);
        for (;;) {
            if (slot[h] == NONE) {
                slot[h] = i;
                break;
            }
            const struct tok *o = &sc->tok[slot[h]];
            if (o->nlen == t->nlen && memcmp(sc->norm + o->n0, sc->norm + t->n0, t->nlen) == 0)
                break;
            h = (h + 1) & (uint32_t)(cap - 1);
        }
        if (++count[h] > best)
            best = count[h];
    }
    free(slot);
    free(count);
    if (nwords < 4 || best < 4)
        return 0;
    double share = (double)best / nwords;
    double weight = best >= 6 ? 1.0 : best / 6.0;
    return clamp01(share * weight);
}

struct tally {
    unsigned count[NCAT];   /* distinct start tokens with a hit, per category */
    unsigned maxsev[NCAT];
    double spam_list;       /* noisy-or of the spam hits */
    unsigned hard_delete;   /* severity >= 4 in slurs, threats or self_harm */
    unsigned directed_sev;  /* highest severity of an insult aimed at someone */
};

static void evaluate_hits(struct scan *sc, struct tally *ty)
{
    const modengine_t *e = sc->e;
    double spam_keep = 1;
    for (size_t i = 0; i < sc->nhit; i++) {
        const struct hit *h = &sc->hit[i];
        const struct entry *en = &e->entries[h->entry];
        if (excepted(sc, h))
            continue;
        if (en->names && personal_name(sc, h))
            continue;
        unsigned sev = en->severity;
        if (en->kind == CAT_PROFANITY && sev <= 3 && directed(sc, h)) {
            sev++;
            if (sev > ty->directed_sev)
                ty->directed_sev = sev;
        }
        struct tok *t = &sc->tok[h->t0];
        if (!(t->catmask & (1u << en->kind))) {
            t->catmask |= (uint8_t)(1u << en->kind);
            ty->count[en->kind]++;
        }
        if (sev > ty->maxsev[en->kind])
            ty->maxsev[en->kind] = sev;
        if (en->kind == CAT_SPAM)
            spam_keep *= 1 - sev_score[sev];
        if (sev >= 4 && (en->kind == CAT_SLURS || en->kind == CAT_THREATS ||
                         en->kind == CAT_SELF_HARM))
            ty->hard_delete++;
        if (sev >= 2)
            t->lex |= TF_ABUSE;
    }
    ty->spam_list = 1 - spam_keep;
}

static json_t *build(struct scan *sc)
{
    struct tally ty;
    memset(&ty, 0, sizeof ty);
    evaluate_hits(sc, &ty);

    /* Word statistics: shouting, dialect, sentiment, lexicons. */
    unsigned words = 0, stop = 0, latin = 0, upper = 0, cased = 0;
    unsigned pos = 0, neg = 0, political = 0, defensive = 0;
    for (uint32_t i = 0; i < sc->ntok; i++) {
        const struct tok *t = &sc->tok[i];
        if (!(t->flags & TK_WORD) || (t->flags & TK_URL))
            continue;
        words++;
        stop += !!(t->lex & LX(LEX_STOP));
        latin += !(t->flags & TK_FOREIGN);
        upper += t->upper;
        cased += t->cased;
        political += !!(t->lex & LX(LEX_POLITICAL));
        defensive += !!(t->lex & LX(LEX_DEFENSIVE));
        int negated = i > 0 && !(t->flags & TK_SENT) && (sc->tok[i - 1].lex & LX(LEX_NEGATOR));
        if (t->lex & LX(LEX_POSITIVE)) {
            if (negated)
                neg++;
            else
                pos++;
        }
        if (t->lex & (LX(LEX_NEGATIVE) | TF_ABUSE)) {
            if (negated && !(t->lex & TF_ABUSE))
                pos++;
            else
                neg++;
        }
    }
    double shouting = cased >= 12 ? (double)upper / cased : 0;
    double char_rep = sc->longest_run >= 8 ? clamp01((sc->longest_run - 7) / 12.0) : 0;
    double word_rep = word_repetition(sc, words);
    double repetition = char_rep > word_rep ? char_rep : word_rep;
    if (sc->oom)
        return NULL;

    /* Category scores. */
    double cat[NCAT];
    for (int c = 0; c < NCAT; c++) {
        if (c == CAT_SPAM || !ty.count[c]) {
            cat[c] = 0;
            continue;
        }
        cat[c] = clamp01(sev_score[ty.maxsev[c]] + 0.05 * (ty.count[c] - 1));
    }
    double det = 0;
    unsigned links = sc->links, contacts = sc->phones + sc->emails;
    if (links == 1)
        det += 0.15;
    else if (links == 2)
        det += 0.3;
    else if (links >= 3)
        det += links >= 6 ? 0.8 : 0.5 + 0.1 * (links - 3);
    det += sc->phones ? 0.1 : 0;
    det += sc->emails ? 0.05 : 0;
    if (links && contacts)
        det += 0.35; /* a link plus a way to get in touch: solicitation */
    if ((links || contacts) && ty.count[CAT_SPAM])
        det += 0.25; /* a promotional phrase next to a link or contact details */
    if (repetition >= 0.3)
        det += 0.7 * repetition;
    if (shouting >= 0.7)
        det += 0.15;
    det = det > 0.9 ? 0.9 : det;
    cat[CAT_SPAM] = clamp01(1 - (1 - ty.spam_list) * (1 - det));

    double keep = 1;
    for (int c = 0; c < NCAT; c++)
        keep *= 1 - r4(cat[c]);
    double risk = r4(clamp01(1 - keep));
    const char *action = ty.hard_delete || risk >= RISK_DELETE ? "delete"
                         : risk >= RISK_FLAG                  ? "flag"
                                                              : "pass";

    double directed_score = ty.directed_sev ? sev_score[ty.directed_sev] : 0;
    double aggressive = cat[CAT_THREATS] > 0.6 * directed_score ? cat[CAT_THREATS]
                                                                : 0.6 * directed_score;
    double vulgar = cat[CAT_PROFANITY] > cat[CAT_SEXUAL] ? cat[CAT_PROFANITY] : cat[CAT_SEXUAL];
    double sentiment = (double)((int)pos - (int)neg) / (pos + neg + 1);
    double stop_ratio = words ? (double)stop / words : 0;
    double dialect = words ? ((double)latin / words) * (0.3 + 1.4 * stop_ratio) : 0;
    dialect = r4(dialect > 1 ? 1 : dialect);

    json_t *r = json_object();
    json_t *e1 = json_object(), *e2 = json_object(), *e3 = json_object(), *sa = json_array();
    json_t *pa = json_object(), *in = json_object(), *dp = json_array(), *ca = json_object();
    json_t *de = json_object();
    if (!r || !e1 || !e2 || !e3 || !sa || !pa || !in || !dp || !ca || !de) {
        json_decref(r);
        json_decref(e1);
        json_decref(e2);
        json_decref(e3);
        json_decref(sa);
        json_decref(pa);
        json_decref(in);
        json_decref(dp);
        json_decref(ca);
        json_decref(de);
        return NULL;
    }
    int bad = 0;
    bad |= json_object_set_new(e1, "baseline", json_real(r4(1 - risk)));
    bad |= json_object_set_new(e1, "raceInvocation", json_real(floor_score(cat[CAT_SLURS])));
    bad |= json_object_set_new(e1, "politicalLanguage", json_real(floor_score(saturate(0.7, political))));
    bad |= json_object_set_new(e2, "raceInvocation", json_real(floor_score(cat[CAT_SLURS])));
    bad |= json_object_set_new(e2, "defensive", json_real(floor_score(saturate(0.6, defensive))));
    bad |= json_object_set_new(e2, "baseline", json_string("Not required in engine2"));
    bad |= json_object_set_new(e2, "aggressive", json_real(floor_score(aggressive)));
    bad |= json_object_set_new(e2, "vulgar", json_real(r4(vulgar)));
    bad |= json_object_set_new(e3, "invoked", json_boolean(risk >= RISK_ENGINE3));
    bad |= json_array_append_new(sa, json_string(action));
    bad |= json_array_append_new(sa, json_real(risk));
    bad |= json_object_set_new(pa, "curseWordOverride", json_boolean(ty.count[CAT_PROFANITY] > 0));
    bad |= json_object_set_new(pa, "sentimentScore", json_real(r4(sentiment)));
    bad |= json_array_append_new(dp, json_string(dialect >= 0.25 ? "english" : "unknown"));
    bad |= json_array_append_new(dp, json_real(dialect));
    bad |= json_object_set_new(in, "dialectPrediction", dp);
    for (int c = 0; c < NCAT; c++)
        bad |= json_object_set_new(ca, kind_names[c], json_real(r4(cat[c])));
    bad |= json_object_set_new(de, "links", json_integer(sc->links));
    bad |= json_object_set_new(de, "emails", json_integer(sc->emails));
    bad |= json_object_set_new(de, "phones", json_integer(sc->phones));
    bad |= json_object_set_new(de, "shouting", json_real(r4(shouting)));
    bad |= json_object_set_new(de, "repetition", json_real(r4(repetition)));
    bad |= json_object_set_new(r, "engine1", e1);
    bad |= json_object_set_new(r, "engine2", e2);
    bad |= json_object_set_new(r, "engine3", e3);
    bad |= json_object_set_new(r, "suggestedAction", sa);
    bad |= json_object_set_new(r, "patches", pa);
    bad |= json_object_set_new(r, "insights", in);
    bad |= json_object_set_new(r, "categories", ca);
    bad |= json_object_set_new(r, "detectors", de);
    if (bad) {
        json_decref(r);
        return NULL;
    }
    return r;
}

json_t *modengine_score(const modengine_t *e, const char *text, size_t len)
{
    struct scan sc;
    json_t *out = NULL;
    memset(&sc, 0, sizeof sc);
    sc.e = e;
    sc.text = (const uint8_t *)text;
    sc.len = text ? len : 0;
    sc.window_budget = 20000 + 8 * (unsigned)(sc.len > 1000000 ? 1000000 : sc.len);
    /* A code point never yields more normalised characters than it has bytes. */
    sc.norm = malloc(sc.len + 1);
    sc.ncls = malloc(sc.len + 1);
    if (!sc.norm || !sc.ncls)
        goto done;
    detect_spans(&sc);
    detect_phones(&sc);
    tokenize(&sc);
    if (sc.oom)
        goto done;
    mark_groups(&sc);
    cache_readings(&sc);
    for (uint32_t i = 0; i < sc.ntok && !sc.oom; i++) {
        if (sc.tok[i].flags & TK_MASKED)
            match_masked(&sc, i);
        else
            probe_token(&sc, i, ALLOW_ALL);
    }
    match_windows(&sc);
    if (!sc.oom)
        out = build(&sc);
done:
    free(sc.norm);
    free(sc.ncls);
    free(sc.tok);
    free(sc.hit);
    free(sc.span);
    free(sc.skel);
    return out;
}
