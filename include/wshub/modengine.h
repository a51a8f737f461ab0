/*
 * modengine — the moderation classifier behind API A (PROTOCOLS.md §A): word lists with
 * severities and categories, matching that survives common obfuscation, and detectors for
 * links, e-mail addresses, phone numbers, shouting and repetition, mapped onto Chatsight's
 * response fields. Deterministic: the same text always gives the same response.
 *
 * Owns: the lists (an embedded English default plus optional extra list files), the
 * normalisation and matching, the scores. Never: does I/O after loading, keeps mutable
 * state after loading (one engine is shared read-only by every thread-pool thread), or
 * knows about connections, references or metadata.
 */
#ifndef WSHUB_MODENGINE_H
#define WSHUB_MODENGINE_H

#include <stddef.h>

#include <jansson.h>

typedef struct modengine modengine_t;

/*
 * Loads the embedded default English list (unless no_default), then each extra list file
 * (JSON, the format documented in config/moderation/README.md). On failure returns NULL
 * and writes one line naming the file and the problem into err.
 */
modengine_t *modengine_load(const char *const *extra_files, size_t nfiles, int no_default,
                            char *err, size_t errlen);
void modengine_free(modengine_t *e);

/*
 * Scores `text` (UTF-8, len bytes) and returns a new JSON object with exactly the score
 * members of a Chatsight response: engine1 {baseline, raceInvocation, politicalLanguage},
 * engine2 {raceInvocation, defensive, baseline: "Not required in engine2", aggressive,
 * vulgar}, engine3 {invoked}, suggestedAction [action, score] (action "pass" | "flag" |
 * "delete"), patches {curseWordOverride, sentimentScore}, insights {dialectPrediction:
 * [language, score]}, plus "categories" {profanity, slurs, threats, sexual, self_harm, spam:
 * scores 0..1} and "detectors" {links, emails, phones, shouting, repetition: counts or 0..1}.
 * The caller adds metadata and operator. Thread-safe (the engine is read-only). NULL only
 * when out of memory.
 */
json_t *modengine_score(const modengine_t *e, const char *text, size_t len);

/*
 * json_dumps flags for a response that contains a modengine_score result. Scores are rounded
 * to 4 decimals; jansson's default precision (17 digits) would print 0.3 as
 * 0.29999999999999999, 10 digits print it as 0.3. Either way the output is deterministic.
 */
#define MODENGINE_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

#endif
