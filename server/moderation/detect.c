/*
 * detect.c — the detectors: links and e-mail addresses (as byte spans of the text, which
 * the tokenizer then treats apart), phone numbers, shouting and repetition.
 *
 * Owns: what counts as a link, an address, a phone number, shouting and repetition, and
 * the counts in struct scan. Never: reads list words, matches or scores (score.c turns
 * these counts into the spam score).
 */
#include "scan_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

void modengine__detect_spans(struct scan *sc)
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
long modengine__span_at(const struct scan *sc, size_t b)
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

static int in_span(const struct scan *sc, size_t b) { return modengine__span_at(sc, b) >= 0; }

/* Phone numbers: 7-15 digits in groups with separators (" -.()"), or '+' and 8-15 digits;
 * dates, IP addresses and plain numbers (order numbers) are not phone numbers. */
void modengine__detect_phones(struct scan *sc)
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

/* The upper-case share of the cased letters, once there are 12 of them. */
double modengine__shouting(unsigned upper, unsigned cased)
{
    return cased >= 12 ? (double)upper / cased : 0;
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

/* The larger of character repetition (a run of 8+ of one character) and word repetition. */
double modengine__repetition(struct scan *sc, unsigned nwords)
{
    double char_rep = sc->longest_run >= 8 ? clamp01((sc->longest_run - 7) / 12.0) : 0;
    double word_rep = word_repetition(sc, nwords);
    return char_rep > word_rep ? char_rep : word_rep;
}
