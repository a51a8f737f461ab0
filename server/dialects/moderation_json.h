/*
 * moderation_json — the score members of a Chatsight moderation answer (API A,
 * PROTOCOLS.md §A), built from the engine's scores (include/wshub/modengine.h).
 *
 * Owns: the member names, their order and the JSON types. Never: computes a score, or adds
 * the envelope, metadata and operator (moderation.c does).
 */
#ifndef WSHUB_DIALECTS_MODERATION_JSON_H
#define WSHUB_DIALECTS_MODERATION_JSON_H

#include <jansson.h>

#include "wshub/modengine.h"

/*
 * A new JSON object with exactly the score members of a Chatsight response, in this order:
 * engine1 {baseline, raceInvocation, politicalLanguage}, engine2 {raceInvocation,
 * defensive, baseline: "Not required in engine2", aggressive, vulgar}, engine3 {invoked},
 * suggestedAction [action, score] (action "pass" | "flag" | "delete"), patches
 * {curseWordOverride, sentimentScore}, insights {dialectPrediction: [language, score]},
 * categories {profanity, slurs, threats, sexual, self_harm, spam} and detectors {links,
 * emails, phones, shouting, repetition}. NULL only when out of memory.
 */
json_t *moderation_scores_json(const modengine_scores_t *s);

/* "pass", "flag" or "delete". */
const char *moderation_action_name(modengine_action_t a);

/*
 * json_dumps flags for an answer that contains moderation_scores_json. The scores are
 * rounded to 4 decimals; jansson's default precision (17 digits) would print 0.3 as
 * 0.29999999999999999, 10 digits print it as 0.3. Either way the output is deterministic.
 */
#define MODERATION_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

#endif
