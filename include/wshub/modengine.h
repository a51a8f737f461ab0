/*
 * modengine — the moderation classifier behind API A (PROTOCOLS.md §A): word lists with
 * severities and categories, matching that survives common obfuscation, and detectors for
 * links, e-mail addresses, phone numbers, shouting and repetition, mapped onto Chatsight's
 * score fields. Deterministic: the same text always gives the same scores.
 *
 * Owns: the lists (an embedded English default plus optional extra list files), the
 * normalisation and matching, the scores (server/moderation/). Never: does I/O after
 * loading, keeps mutable state after loading (one engine is shared read-only by every
 * thread-pool thread), knows about connections, references or metadata, or builds the
 * answer's JSON (the moderation dialect does, server/dialects/moderation_json.c).
 */
#ifndef WSHUB_MODENGINE_H
#define WSHUB_MODENGINE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct modengine modengine_t;

/*
 * Loads the embedded default English list (unless no_default), then each extra list file
 * (JSON, the format documented in config/moderation/README.md). On failure returns NULL
 * and writes one line naming the file and the problem into err.
 */
modengine_t *modengine_load(const char *const *extra_files, size_t nfiles, int no_default,
                            char *err, size_t errlen);
void modengine_free(modengine_t *e);

typedef enum {
    MODENGINE_PASS,
    MODENGINE_FLAG,
    MODENGINE_DELETE,
} modengine_action_t;

/* The content categories, in the order of Chatsight-answer member "categories". */
enum {
    MODENGINE_PROFANITY,
    MODENGINE_SLURS,
    MODENGINE_THREATS,
    MODENGINE_SEXUAL,
    MODENGINE_SELF_HARM,
    MODENGINE_SPAM,
    MODENGINE_NCAT
};

/*
 * The scores of one text, already rounded to 4 decimals (what the answer prints), named
 * after the members of a Chatsight response: engine1 {baseline, raceInvocation,
 * politicalLanguage}, engine2 {raceInvocation, defensive, baseline: "Not required in
 * engine2", aggressive, vulgar}, engine3 {invoked}, suggestedAction [action, score],
 * patches {curseWordOverride, sentimentScore}, insights {dialectPrediction: [language,
 * score]}, plus the engine's own detail: categories (scores 0..1) and detectors.
 */
typedef struct modengine_scores {
    struct {
        double baseline, race_invocation, political_language;
    } engine1;
    struct {
        double race_invocation, defensive, aggressive, vulgar;
    } engine2;
    struct {
        bool invoked;
    } engine3;
    modengine_action_t action;
    double action_score; /* overall risk */
    bool curse_word_override;
    double sentiment_score;
    const char *dialect;  /* "english" or "unknown" (static) */
    double dialect_score;
    double categories[MODENGINE_NCAT];
    struct {
        unsigned links, emails, phones;
        double shouting, repetition;
    } detectors;
} modengine_scores_t;

/*
 * Scores `text` (UTF-8, len bytes) into *out. Thread-safe (the engine is read-only).
 * Returns 0, or -1 when out of memory (*out is then unspecified).
 */
int modengine_score(const modengine_t *e, const char *text, size_t len,
                    modengine_scores_t *out);

/* "profanity", "slurs", "threats", "sexual", "self_harm", "spam" (list files use them too). */
const char *modengine_category_name(int category);

#endif
