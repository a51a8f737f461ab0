/*
 * modscore — how long the moderation engine takes per text: loads the embedded default
 * list, reads tests/moderation/corpus.txt (escaped as tests/moderation/make_corpus.py
 * writes it), scores every line once to warm up, then REPS passes over all lines, timed
 * per pass; prints ns per text for each pass and their median, minimum and maximum.
 *
 *   build-release/bench/modscore [corpus.txt] [passes] [reps]     (defaults: ../tests/..., 20, 7)
 *
 * What is timed is one answer: modengine_score plus the score members as a JSON object
 * (then freed), which is what the pre-split engine's modengine_score did in one call.
 * Compiled with -DMODSCORE_OLD_API it links against that engine (server/modengine.c of
 * commit 5299889); otherwise the JSON is built here with the same jansson calls the old
 * engine made (json_object_set_new one member at a time, not the dialect's json_pack), so
 * that the two differ only in the engine. MODSCORE_SCORE_ONLY=1 in the environment times
 * modengine_score alone (new API).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "wshub/modengine.h"
#include "../tests/moderation/corpus_unescape.h"

struct text {
    char *s;
    size_t n;
};


static struct text *read_corpus(const char *path, size_t *count)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return NULL;
    }
    struct text *t = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = 0;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            t = realloc(t, cap * sizeof *t);
            if (!t)
                abort();
        }
        t[n].n = corpus_unescape(line, (size_t)len);
        t[n].s = malloc(t[n].n + 1);
        if (!t[n].s)
            abort();
        memcpy(t[n].s, line, t[n].n + 1);
        n++;
    }
    free(line);
    fclose(f);
    *count = n;
    return t;
}

#ifndef MODSCORE_OLD_API
static const char *const actions[] = {"pass", "flag", "delete"};

static void set(json_t *o, const char *k, json_t *v)
{
    if (json_object_set_new(o, k, v) != 0)
        abort();
}

static void append(json_t *a, json_t *v)
{
    if (json_array_append_new(a, v) != 0)
        abort();
}

/* The score members, built with the calls of the pre-split engine's build(). */
static json_t *old_style_json(const modengine_scores_t *s)
{
    json_t *r = json_object(), *e1 = json_object(), *e2 = json_object(), *e3 = json_object();
    json_t *sa = json_array(), *pa = json_object(), *in = json_object(), *dp = json_array();
    json_t *ca = json_object(), *de = json_object();
    if (!r || !e1 || !e2 || !e3 || !sa || !pa || !in || !dp || !ca || !de)
        abort();
    set(e1, "baseline", json_real(s->engine1.baseline));
    set(e1, "raceInvocation", json_real(s->engine1.race_invocation));
    set(e1, "politicalLanguage", json_real(s->engine1.political_language));
    set(e2, "raceInvocation", json_real(s->engine2.race_invocation));
    set(e2, "defensive", json_real(s->engine2.defensive));
    set(e2, "baseline", json_string("Not required in engine2"));
    set(e2, "aggressive", json_real(s->engine2.aggressive));
    set(e2, "vulgar", json_real(s->engine2.vulgar));
    set(e3, "invoked", json_boolean(s->engine3.invoked));
    append(sa, json_string(actions[s->action]));
    append(sa, json_real(s->action_score));
    set(pa, "curseWordOverride", json_boolean(s->curse_word_override));
    set(pa, "sentimentScore", json_real(s->sentiment_score));
    append(dp, json_string(s->dialect));
    append(dp, json_real(s->dialect_score));
    set(in, "dialectPrediction", dp);
    for (int c = 0; c < MODENGINE_NCAT; c++)
        set(ca, modengine_category_name(c), json_real(s->categories[c]));
    set(de, "links", json_integer(s->detectors.links));
    set(de, "emails", json_integer(s->detectors.emails));
    set(de, "phones", json_integer(s->detectors.phones));
    set(de, "shouting", json_real(s->detectors.shouting));
    set(de, "repetition", json_real(s->detectors.repetition));
    set(r, "engine1", e1);
    set(r, "engine2", e2);
    set(r, "engine3", e3);
    set(r, "suggestedAction", sa);
    set(r, "patches", pa);
    set(r, "insights", in);
    set(r, "categories", ca);
    set(r, "detectors", de);
    return r;
}
#endif

/* One answer; returns something that depends on it so that nothing is optimised away. */
static double answer(const modengine_t *e, const struct text *t, int score_only)
{
#ifdef MODSCORE_OLD_API
    (void)score_only;
    json_t *r = modengine_score(e, t->s, t->n);
    if (!r)
        abort();
    double v = json_real_value(json_array_get(json_object_get(r, "suggestedAction"), 1));
    json_decref(r);
    return v;
#else
    modengine_scores_t s;
    if (modengine_score(e, t->s, t->n, &s) != 0)
        abort();
    if (score_only)
        return s.action_score;
    json_t *r = old_style_json(&s);
    double v = json_real_value(json_array_get(json_object_get(r, "suggestedAction"), 1));
    json_decref(r);
    return v;
#endif
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "../tests/moderation/corpus.txt";
    int passes = argc > 2 ? atoi(argv[2]) : 20;
    int reps = argc > 3 ? atoi(argv[3]) : 7;
    const char *so = getenv("MODSCORE_SCORE_ONLY");
    int score_only = so && *so == '1';
    if (passes < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: modscore [corpus.txt] [passes] [reps (1..100)]\n");
        return 2;
    }
    size_t n;
    struct text *t = read_corpus(path, &n);
    if (!t || !n)
        return 1;
    char err[256];
    modengine_t *e = modengine_load(NULL, 0, 0, err, sizeof err);
    if (!e) {
        fprintf(stderr, "modengine_load: %s\n", err);
        return 1;
    }
    double sink = 0, ns[100];
    for (size_t i = 0; i < n; i++)
        sink += answer(e, &t[i], score_only);
    for (int r = 0; r < reps; r++) {
        double t0 = now_ns();
        for (int p = 0; p < passes; p++)
            for (size_t i = 0; i < n; i++)
                sink += answer(e, &t[i], score_only);
        ns[r] = (now_ns() - t0) / ((double)passes * (double)n);
        printf("pass %d: %.0f ns/text\n", r + 1, ns[r]);
    }
    qsort(ns, (size_t)reps, sizeof ns[0], cmp_double);
    printf("%zu texts x %d passes x %d reps%s: median %.0f ns/text, min %.0f, max %.0f "
           "(checksum %.4f)\n",
           n, passes, reps, score_only ? " (score only)" : "", ns[reps / 2], ns[0],
           ns[reps - 1], sink);
    modengine_free(e);
    for (size_t i = 0; i < n; i++)
        free(t[i].s);
    free(t);
    return 0;
}
