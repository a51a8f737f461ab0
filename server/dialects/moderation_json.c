/*
 * moderation_json — the score members of a Chatsight moderation answer, from the engine's
 * scores; interface in moderation_json.h.
 *
 * Owns: Chatsight's member names and order. Never: computes or rounds a score (the engine
 * did), or builds the envelope (moderation.c).
 */
#include "moderation_json.h"

#include <stddef.h>

const char *moderation_action_name(modengine_action_t a)
{
    static const char *const names[] = {"pass", "flag", "delete"};
    return (size_t)a < sizeof names / sizeof names[0] ? names[a] : "pass";
}

json_t *moderation_scores_json(const modengine_scores_t *s)
{
    json_t *categories = json_object();
    for (int c = 0; categories && c < MODENGINE_NCAT; c++)
        if (json_object_set_new(categories, modengine_category_name(c),
                                json_real(s->categories[c])) != 0) {
            json_decref(categories);
            categories = NULL;
        }
    if (!categories)
        return NULL;
    return json_pack("{s:{s:f, s:f, s:f}, s:{s:f, s:f, s:s, s:f, s:f}, s:{s:b}, s:[s, f],"
                     " s:{s:b, s:f}, s:{s:[s, f]}, s:o, s:{s:I, s:I, s:I, s:f, s:f}}",
                     "engine1", "baseline", s->engine1.baseline,
                     "raceInvocation", s->engine1.race_invocation,
                     "politicalLanguage", s->engine1.political_language,
                     "engine2", "raceInvocation", s->engine2.race_invocation,
                     "defensive", s->engine2.defensive,
                     "baseline", "Not required in engine2",
                     "aggressive", s->engine2.aggressive,
                     "vulgar", s->engine2.vulgar,
                     "engine3", "invoked", (int)s->engine3.invoked,
                     "suggestedAction", moderation_action_name(s->action), s->action_score,
                     "patches", "curseWordOverride", (int)s->curse_word_override,
                     "sentimentScore", s->sentiment_score,
                     "insights", "dialectPrediction", s->dialect, s->dialect_score,
                     "categories", categories,
                     "detectors", "links", (json_int_t)s->detectors.links,
                     "emails", (json_int_t)s->detectors.emails,
                     "phones", (json_int_t)s->detectors.phones,
                     "shouting", s->detectors.shouting,
                     "repetition", s->detectors.repetition);
}
