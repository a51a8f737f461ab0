/*
 * score.c — from hits and detector counts to the scores: which hits count (exceptions,
 * personal names), insults aimed at someone, category scores from severities, the spam
 * score from lists and detectors, the overall risk and action, and Chatsight's engine1,
 * engine2, engine3, patches and insights values; and modengine_score, which runs the
 * passes in order (detect.c, tokenize.c, match.c, then this).
 *
 * Owns: the policy numbers (README "How actions are decided"), the rounding to 4 decimals,
 * modengine_scores_t. Never: builds JSON (the moderation dialect does), keeps state
 * between calls, or uses a clock or a random source (the same text must give the same
 * scores).
 */
#include "scan_internal.h"

#include <stdlib.h>
#include <string.h>

#define DIRECTED_BACK 5  /* tokens looked back for "you" before an insult */

/* Category score of a severity 1..5 (index 0 unused); README "How actions are decided". */
static const double sev_score[6] = {0, 0.2, 0.45, 0.6, 0.8, 0.95};

#define RISK_FLAG 0.4    /* overall risk from which the action is at least "flag" */
#define RISK_DELETE 0.9  /* overall risk from which the action is "delete" */
#define RISK_ENGINE3 0.3 /* engine3.invoked: worth a second opinion */
#define FLOOR 0.0001     /* Chatsight's floor for the engine1/engine2 scores */

/* Rounds to 4 decimals so that the JSON numbers are short and stable. */
static double r4(double x)
{
    if (x < 0)
        return -r4(-x);
    return (double)(int64_t)(x * 10000.0 + 0.5) / 10000.0;
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
        if (modengine__excepted(sc, h))
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

/* Word statistics: shouting, dialect, sentiment, lexicons. */
struct words {
    unsigned words, stop, latin, upper, cased;
    unsigned pos, neg, political, defensive;
};

static void count_words(const struct scan *sc, struct words *w)
{
    memset(w, 0, sizeof *w);
    for (uint32_t i = 0; i < sc->ntok; i++) {
        const struct tok *t = &sc->tok[i];
        if (!(t->flags & TK_WORD) || (t->flags & TK_URL))
            continue;
        w->words++;
        w->stop += !!(t->lex & LX(LEX_STOP));
        w->latin += !(t->flags & TK_FOREIGN);
        w->upper += t->upper;
        w->cased += t->cased;
        w->political += !!(t->lex & LX(LEX_POLITICAL));
        w->defensive += !!(t->lex & LX(LEX_DEFENSIVE));
        int negated = i > 0 && !(t->flags & TK_SENT) && (sc->tok[i - 1].lex & LX(LEX_NEGATOR));
        if (t->lex & LX(LEX_POSITIVE)) {
            if (negated)
                w->neg++;
            else
                w->pos++;
        }
        if (t->lex & (LX(LEX_NEGATIVE) | TF_ABUSE)) {
            if (negated && !(t->lex & TF_ABUSE))
                w->pos++;
            else
                w->neg++;
        }
    }
}

/* What the detectors add to the spam score (at most 0.9). */
static double detector_spam(const struct scan *sc, const struct tally *ty, double shouting,
                            double repetition)
{
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
    if ((links || contacts) && ty->count[CAT_SPAM])
        det += 0.25; /* a promotional phrase next to a link or contact details */
    if (repetition >= 0.3)
        det += 0.7 * repetition;
    if (shouting >= 0.7)
        det += 0.15;
    return det > 0.9 ? 0.9 : det;
}

/* Category scores: the highest severity plus a little per further hit; spam from the
 * spam list and the detectors. */
static void category_scores(const struct tally *ty, double det, double cat[NCAT])
{
    for (int c = 0; c < NCAT; c++) {
        if (c == CAT_SPAM || !ty->count[c]) {
            cat[c] = 0;
            continue;
        }
        cat[c] = clamp01(sev_score[ty->maxsev[c]] + 0.05 * (ty->count[c] - 1));
    }
    cat[CAT_SPAM] = clamp01(1 - (1 - ty->spam_list) * (1 - det));
}

/* Fills *out from the tally, the word statistics and the category scores. */
static void fill(modengine_scores_t *out, const struct scan *sc, const struct tally *ty,
                 const struct words *w, const double cat[NCAT], double shouting,
                 double repetition)
{
    double keep = 1;
    for (int c = 0; c < NCAT; c++)
        keep *= 1 - r4(cat[c]);
    double risk = r4(clamp01(1 - keep));
    double directed_score = ty->directed_sev ? sev_score[ty->directed_sev] : 0;
    double aggressive = cat[CAT_THREATS] > 0.6 * directed_score ? cat[CAT_THREATS]
                                                                : 0.6 * directed_score;
    double vulgar = cat[CAT_PROFANITY] > cat[CAT_SEXUAL] ? cat[CAT_PROFANITY] : cat[CAT_SEXUAL];
    double sentiment = (double)((int)w->pos - (int)w->neg) / (w->pos + w->neg + 1);
    double stop_ratio = w->words ? (double)w->stop / w->words : 0;
    double dialect = w->words ? ((double)w->latin / w->words) * (0.3 + 1.4 * stop_ratio) : 0;
    dialect = r4(dialect > 1 ? 1 : dialect);

    out->engine1.baseline = r4(1 - risk);
    out->engine1.race_invocation = floor_score(cat[CAT_SLURS]);
    out->engine1.political_language = floor_score(saturate(0.7, w->political));
    out->engine2.race_invocation = floor_score(cat[CAT_SLURS]);
    out->engine2.defensive = floor_score(saturate(0.6, w->defensive));
    out->engine2.aggressive = floor_score(aggressive);
    out->engine2.vulgar = r4(vulgar);
    out->engine3.invoked = risk >= RISK_ENGINE3;
    out->action = ty->hard_delete || risk >= RISK_DELETE ? MODENGINE_DELETE
                  : risk >= RISK_FLAG                    ? MODENGINE_FLAG
                                                         : MODENGINE_PASS;
    out->action_score = risk;
    out->curse_word_override = ty->count[CAT_PROFANITY] > 0;
    out->sentiment_score = r4(sentiment);
    out->dialect = dialect >= 0.25 ? "english" : "unknown";
    out->dialect_score = dialect;
    for (int c = 0; c < NCAT; c++)
        out->categories[c] = r4(cat[c]);
    out->detectors.links = sc->links;
    out->detectors.emails = sc->emails;
    out->detectors.phones = sc->phones;
    out->detectors.shouting = r4(shouting);
    out->detectors.repetition = r4(repetition);
}

static int build(struct scan *sc, modengine_scores_t *out)
{
    struct tally ty;
    struct words w;
    memset(&ty, 0, sizeof ty);
    evaluate_hits(sc, &ty);
    count_words(sc, &w);
    double shouting = modengine__shouting(w.upper, w.cased);
    double repetition = modengine__repetition(sc, w.words);
    if (sc->oom)
        return -1;
    double cat[NCAT];
    category_scores(&ty, detector_spam(sc, &ty, shouting, repetition), cat);
    fill(out, sc, &ty, &w, cat, shouting, repetition);
    return 0;
}

int modengine_score(const modengine_t *e, const char *text, size_t len, modengine_scores_t *out)
{
    struct scan sc;
    int rc = -1;
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
    modengine__detect_spans(&sc);
    modengine__detect_phones(&sc);
    modengine__tokenize(&sc);
    if (sc.oom)
        goto done;
    modengine__mark_groups(&sc);
    modengine__match(&sc);
    if (!sc.oom)
        rc = build(&sc, out);
done:
    free(sc.norm);
    free(sc.ncls);
    free(sc.tok);
    free(sc.hit);
    free(sc.span);
    free(sc.skel);
    return rc;
}
