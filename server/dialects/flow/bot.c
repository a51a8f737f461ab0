/*
 * flow/bot — the bot of API D: what it answers to a message.send. The echo bot by default
 * ("You said: <speech>", "Event received: <name>"), or the rules of flow.bot_file, loaded
 * once before the workers start and only read afterwards (no lock): text containing a
 * rule's `match` (ASCII case-insensitive) or an event attachment named its `event` gets its
 * `reply`, with optional quick replies. Builds Flow's message.received payload.
 * Never: sends, publishes or stores anything (socket.c and thread.c do), or reads the
 * configuration after loading.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "wshub/dialect.h"

#include "internal.h"

/* A bot rule: text containing `match` (case-insensitive) or an event attachment named
 * `event` gets `reply`, with optional quick replies. */
typedef struct bot_rule {
    char *match, *event, *reply;
    json_t *quick_replies; /* array of strings, or NULL */
} bot_rule_t;

static bot_rule_t *bot_rules; /* flow.bot_file's, in its order */
static size_t bot_nrules;

json_t *flow__bot_originator(void)
{
    return json_pack("{s:s, s:s, s:s, s:{s:s}}", "userId", "flowai|system", "name", "system", "role", "bot",
                     "profile", "fullName", "system");
}

/* The message.received payload: {threadId, messages:[{…, responses:[text]}], originator};
 * text is len bytes (NULs included: a text round-trips exactly). */
json_t *flow__reply_payload(const char *thread, const char *text, size_t len, json_t *reply_to, json_t *quick)
{
    json_t *resp_payload = json_pack("{s:s%}", "text", text, len);
    if (quick && json_array_size(quick)) {
        json_t *qr = json_array();
        size_t i;
        json_t *q;
        json_array_foreach(quick, i, q) {
            if (json_is_string(q))
                json_array_append_new(qr, json_pack("{s:s, s:O, s:O}", "type", "text", "label", q, "value", q));
        }
        json_object_set_new(resp_payload, "quickReplies", qr);
    }
    return json_pack("{s:s, s:[{s:s%, s:b, s:O, s:o, s:[], s:[{s:s, s:i, s:o}]}], s:o}", "threadId", thread,
                     "messages", "fallback", text, len, "silent", 0, "replyTo", reply_to ? reply_to : json_null(),
                     "originator", flow__bot_originator(), "actions", "responses", "type", "text", "delay", 0, "payload",
                     resp_payload, "originator", flow__bot_originator());
}

/* Does text (len bytes, NULs included) contain needle, ignoring ASCII case? */
static bool contains_nocase(const char *text, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(text + i, needle, n) == 0)
            return true;
    return false;
}

/* What the bot answers to a message.send payload: a rule, or the echo. */
json_t *flow__bot_reply(const char *thread, json_t *payload)
{
    json_t *speech = json_object_get(payload, "speech");
    json_t *att = json_object_get(payload, "attachment");
    json_t *event = NULL; /* the event's name (a string) */
    if (json_is_object(att) && dialect_str_is(json_object_get(att, "type"), "event") &&
        json_is_string(json_object_get(json_object_get(att, "payload"), "name")))
        event = json_object_get(json_object_get(att, "payload"), "name");
    for (size_t i = 0; i < bot_nrules; i++) {
        bot_rule_t *r = &bot_rules[i];
        bool hit = r->event ? (dialect_cstr(event) && strcasecmp(json_string_value(event), r->event) == 0)
                            : (r->match && contains_nocase(json_string_value(speech), json_string_length(speech),
                                                           r->match));
        if (hit)
            return flow__reply_payload(thread, r->reply, strlen(r->reply), speech, r->quick_replies);
    }
    /* The whole text, however long (cutting it could also split a UTF-8 character), and
     * byte for byte: a NUL inside is echoed too. */
    const char *prefix = event ? "Event received: " : "You said: ";
    json_t *what = event ? event : speech;
    size_t plen = strlen(prefix), wlen = json_string_length(what);
    char *text = malloc(plen + wlen + 1);
    if (!text)
        return NULL;
    memcpy(text, prefix, plen);
    if (wlen)
        memcpy(text + plen, json_string_value(what), wlen);
    json_t *r = flow__reply_payload(thread, text, plen + wlen, speech, NULL);
    free(text);
    return r;
}

int flow__bot_load(const char *path, char *err, size_t errlen)
{
    if (!path)
        return 0;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    json_t *rules = json_is_object(root) ? json_object_get(root, "rules") : root;
    if (!json_is_array(rules)) {
        snprintf(err, errlen, "flow.bot_file: %s: %s", path,
                 root ? "expected {\"rules\": [...]} or an array of rules" : je.text);
        json_decref(root);
        return -1;
    }
    bot_rules = calloc(json_array_size(rules) + 1, sizeof *bot_rules);
    if (!bot_rules) {
        snprintf(err, errlen, "flow.bot_file: %s: out of memory", path);
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        const char *match = json_string_value(json_object_get(r, "match"));
        const char *event = json_string_value(json_object_get(r, "event"));
        const char *reply = json_string_value(json_object_get(r, "reply"));
        json_t *quick = json_object_get(r, "quick_replies");
        if (!reply || (!match && !event) || (quick && !json_is_array(quick))) {
            snprintf(err, errlen, "flow.bot_file: %s: rule %zu needs \"reply\" and \"match\" or \"event\"", path, i);
            json_decref(root);
            return -1;
        }
        bot_rule_t *b = &bot_rules[bot_nrules++];
        b->match = match ? strdup(match) : NULL;
        b->event = event ? strdup(event) : NULL;
        b->reply = strdup(reply);
        b->quick_replies = quick ? json_incref(quick) : NULL;
        if ((match && !b->match) || (event && !b->event) || !b->reply) {
            snprintf(err, errlen, "flow.bot_file: %s: out of memory", path);
            json_decref(root);
            return -1; /* the caller frees what was loaded (flow__bot_free) */
        }
    }
    json_decref(root);
    return 0;
}

void flow__bot_free(void)
{
    for (size_t i = 0; i < bot_nrules; i++) {
        free(bot_rules[i].match);
        free(bot_rules[i].event);
        free(bot_rules[i].reply);
        json_decref(bot_rules[i].quick_replies);
    }
    free(bot_rules);
    bot_rules = NULL;
    bot_nrules = 0;
}
