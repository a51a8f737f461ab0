/*
 * Unit tests of the moderation engine (server/moderation/) and of the JSON the moderation
 * dialect builds from its scores (server/dialects/moderation_json.c): the response shape, determinism,
 * each obfuscation technique, the classic false positives, the detectors, extra and bad
 * list files, and an evaluation over the labelled set tests/moderation/labelled.jsonl
 * (path from WSHUB_SOURCE_ROOT) that prints precision and recall and fails when recall on
 * obfuscated abuse drops below 0.9 or the false-positive rate on clean texts exceeds 2%.
 * The corpus test pins the answer of every text of tests/moderation/corpus.txt byte for byte
 * (tests/moderation/corpus.expected), so that no change moves a score silently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "wshub/modengine.h"

#include "../../server/dialects/moderation_json.h"
#include "../moderation/corpus_unescape.h"

static modengine_t *engine;

static int setup(void **state)
{
    char err[256];
    (void)state;
    engine = modengine_load(NULL, 0, 0, err, sizeof err);
    if (!engine)
        fprintf(stderr, "modengine_load: %s\n", err);
    return engine ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    modengine_free(engine);
    engine = NULL;
    return 0;
}

static modengine_scores_t scores_with(const modengine_t *e, const char *text)
{
    modengine_scores_t s;
    assert_int_equal(modengine_score(e, text, strlen(text), &s), 0);
    return s;
}

/* The score members of the answer to `text`, as the moderation dialect builds them. */
static json_t *score_with(const modengine_t *e, const char *text)
{
    modengine_scores_t s = scores_with(e, text);
    json_t *r = moderation_scores_json(&s);
    assert_non_null(r);
    return r;
}

/* The suggested action of `text` ("pass", "flag" or "delete"), copied into buf. */
static const char *action_with(const modengine_t *e, const char *text, char *buf, size_t len)
{
    modengine_scores_t s = scores_with(e, text);
    const char *a = moderation_action_name(s.action);
    assert_non_null(a);
    snprintf(buf, len, "%s", a);
    return buf;
}

static double category(const char *text, const char *cat)
{
    modengine_scores_t s = scores_with(engine, text);
    for (int c = 0; c < MODENGINE_NCAT; c++)
        if (strcmp(modengine_category_name(c), cat) == 0)
            return s.categories[c];
    fail_msg("no category %s", cat);
    return 0;
}

static double detector(const char *text, const char *name)
{
    modengine_scores_t s = scores_with(engine, text);
    if (strcmp(name, "links") == 0)
        return s.detectors.links;
    if (strcmp(name, "emails") == 0)
        return s.detectors.emails;
    if (strcmp(name, "phones") == 0)
        return s.detectors.phones;
    if (strcmp(name, "shouting") == 0)
        return s.detectors.shouting;
    if (strcmp(name, "repetition") == 0)
        return s.detectors.repetition;
    fail_msg("no detector %s", name);
    return 0;
}

#define ACTION(text) action_with(engine, (text), abuf, sizeof abuf)

static void expect_action(const char *text, const char *want)
{
    char abuf[16];
    const char *got = ACTION(text);
    if (strcmp(got, want) != 0)
        fail_msg("\"%s\": expected %s, got %s", text, want, got);
}

static void expect_not_pass(const char *text, const char *cat)
{
    char abuf[16];
    const char *got = ACTION(text);
    double c = category(text, cat);
    if (strcmp(got, "pass") == 0 || c <= 0)
        fail_msg("\"%s\": expected a %s match, got %s (%s %.4f)", text, cat, got, cat, c);
}

/* ---- shape ---- */

static void test_hello_world_passes(void **state)
{
    (void)state;
    json_t *r = score_with(engine, "hello world");
    char *dump = json_dumps(r, MODERATION_JSON_FLAGS);
    const char *keys[] = {"engine1", "engine2", "engine3", "suggestedAction", "patches",
                          "insights", "categories", "detectors"};
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(r, key, v) {
        assert_true(i < sizeof keys / sizeof keys[0]);
        assert_string_equal(key, keys[i]); /* fixed member order */
        i++;
    }
    assert_int_equal(i, sizeof keys / sizeof keys[0]);
    json_t *e1 = json_object_get(r, "engine1"), *e2 = json_object_get(r, "engine2");
    assert_true(json_is_number(json_object_get(e1, "baseline")));
    assert_true(json_is_number(json_object_get(e1, "raceInvocation")));
    assert_true(json_is_number(json_object_get(e1, "politicalLanguage")));
    assert_true(json_is_number(json_object_get(e2, "raceInvocation")));
    assert_true(json_is_number(json_object_get(e2, "defensive")));
    assert_string_equal(json_string_value(json_object_get(e2, "baseline")), "Not required in engine2");
    assert_true(json_is_number(json_object_get(e2, "aggressive")));
    assert_true(json_is_number(json_object_get(e2, "vulgar")));
    assert_true(json_is_boolean(json_object_get(json_object_get(r, "engine3"), "invoked")));
    json_t *sa = json_object_get(r, "suggestedAction");
    assert_int_equal(json_array_size(sa), 2);
    assert_string_equal(json_string_value(json_array_get(sa, 0)), "pass");
    assert_true(json_is_number(json_array_get(sa, 1)));
    assert_true(json_is_false(json_object_get(json_object_get(r, "patches"), "curseWordOverride")));
    json_t *dp = json_object_get(json_object_get(r, "insights"), "dialectPrediction");
    assert_string_equal(json_string_value(json_array_get(dp, 0)), "english");
    printf("hello world -> %s\n", dump);
    free(dump);
    json_decref(r);
}

static void test_empty_and_odd_input(void **state)
{
    (void)state;
    char abuf[16];
    assert_string_equal(action_with(engine, "", abuf, sizeof abuf), "pass");
    modengine_scores_t s;
    assert_int_equal(modengine_score(engine, NULL, 0, &s), 0);
    /* Invalid UTF-8, NUL bytes, lone surrogates, very long tokens: answered, no crash. */
    const char odd[] = "\xff\xfe f\x00u\xc3 ck \xed\xa0\x80 \xf0\x9f\x98\x80 sh\xe2\x80\x8bit";
    assert_int_equal(modengine_score(engine, odd, sizeof odd - 1, &s), 0);
    size_t n = 20000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = "f u c k *#@!1|. "[i % 16];
    big[n] = 0;
    assert_int_equal(modengine_score(engine, big, n, &s), 0);
    memset(big, 'a', n);
    assert_int_equal(modengine_score(engine, big, n, &s), 0);
    free(big);
}

/* ---- determinism ---- */

static void test_deterministic(void **state)
{
    (void)state;
    const char *samples[] = {
        "hello world",
        "You are an absolute idiot, visit www.example.com NOW!!!",
        "you are a f u c k i n g clown",
        "call +1 (555) 123-4567 today, or mail me at a.b@example.org",
        "I will kill you",
        "Th1s is gr8 but $h!t happens, F*CK",
        "buy buy buy buy buy buy buy now",
    };
    char err[256];
    modengine_t *other = modengine_load(NULL, 0, 0, err, sizeof err);
    assert_non_null(other);
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        json_t *a = score_with(engine, samples[i]);
        json_t *b = score_with(engine, samples[i]);
        json_t *c = score_with(other, samples[i]);
        char *da = json_dumps(a, JSON_COMPACT), *db = json_dumps(b, JSON_COMPACT);
        char *dc = json_dumps(c, JSON_COMPACT);
        assert_string_equal(da, db);
        assert_string_equal(da, dc);
        free(da);
        free(db);
        free(dc);
        json_decref(a);
        json_decref(b);
        json_decref(c);
    }
    modengine_free(other);
}

/* ---- actions ---- */

static void test_actions(void **state)
{
    (void)state;
    expect_action("what a lovely day", "pass");
    expect_action("damn, that was close", "pass");          /* severity 1 alone passes */
    expect_action("this is shit", "flag");                  /* profanity */
    expect_action("you stupid idiot", "flag");              /* mild insults aimed at someone */
    expect_action("I want to kill myself", "flag");         /* first-person: a human reviews */
    expect_action("kill yourself", "delete");               /* incitement */
    expect_action("I will kill you", "delete");             /* threat */
    expect_action("shut up you stupid nigger", "delete");   /* slur */
    expect_action("free money at www.example.com", "flag");                  /* spam */
    expect_action("free money, claim your prize at www.scam.example.com", "delete"); /* a lot */
    modengine_scores_t s = scores_with(engine, "fuck this");
    assert_true(s.curse_word_override);
    assert_true(s.engine2.vulgar > 0.5);
    s = scores_with(engine, "I will kill you");
    assert_true(s.engine2.aggressive > 0.5);
    assert_true(s.engine3.invoked);
    s = scores_with(engine, "the election and the government policy on immigration");
    assert_true(s.engine1.political_language > 0.5);
    s = scores_with(engine, "great product, I love it, thanks");
    assert_true(s.sentiment_score > 0.5);
    s = scores_with(engine, "not good, terrible and broken");
    assert_true(s.sentiment_score < -0.5);
}

/* ---- obfuscation ---- */

static void test_obfuscation(void **state)
{
    (void)state;
    expect_not_pass("FuCk this", "profanity");                 /* mixed case */
    expect_not_pass("fück this", "profanity");                 /* accents */
    expect_not_pass("FÜÇK this", "profanity");
    expect_not_pass("sh1t happens", "profanity");              /* l33t */
    expect_not_pass("$h!t happens", "profanity");
    expect_not_pass("you @ss", "profanity");
    expect_not_pass("a55hole", "profanity");
    expect_not_pass("you b1tch", "profanity");                 /* 1 read as i */
    expect_not_pass("what a tw@t", "profanity");
    expect_not_pass("k1ll yourself", "self_harm");
    expect_not_pass("fuuuuuuuck this", "profanity");           /* repeats */
    expect_not_pass("shiiiiiit", "profanity");
    expect_not_pass("f u c k this", "profanity");              /* spaces */
    expect_not_pass("f.u.c.k this", "profanity");              /* dots */
    expect_not_pass("f-u-c-k this", "profanity");              /* hyphens */
    expect_not_pass("f_u_c_k this", "profanity");              /* underscores */
    expect_not_pass("sh.it", "profanity");                     /* short fragments */
    expect_not_pass("f*ck this", "profanity");                 /* masks */
    expect_not_pass("f**k this", "profanity");
    expect_not_pass("what the f***", "profanity");
    expect_not_pass("a**hole", "profanity");
    expect_not_pass("motherf*cker", "profanity");
    expect_not_pass("\xef\xbc\xa6\xef\xbd\x95\xef\xbd\x83\xef\xbd\x8b you", "profanity"); /* fullwidth */
    expect_not_pass("f\xe2\x80\x8bu\xe2\x80\x8b""c\xe2\x80\x8bk you", "profanity"); /* zero-width */
    expect_not_pass("fu\xd1\x81k you", "profanity");           /* Cyrillic es */
    expect_not_pass("\xf0\x9d\x90\x9f\xf0\x9d\x90\xae\xf0\x9d\x90\x9c\xf0\x9d\x90\xa4", "profanity"); /* bold */
    expect_not_pass("fucking", "profanity");                   /* stem + suffix */
    expect_not_pass("motherfucker", "profanity");              /* stem inside */
    expect_not_pass("bullshit", "profanity");                  /* stem at the end */
    expect_not_pass("i w1ll k1ll y0u", "threats");             /* phrase, l33t */
    expect_not_pass("i will k i l l you", "threats");          /* phrase over spaced letters */
    expect_not_pass("ima murd3r u", "threats");                /* shorthand group members */
    expect_not_pass("killyourself", "self_harm");              /* phrase written together */
    expect_not_pass("#kys", "self_harm");
    expect_not_pass("k y s", "self_harm");
    expect_not_pass("n1gg3r", "slurs");
    expect_not_pass("B U Y  F O L L O W E R S  N O W", "spam");
}

static void test_false_positives(void **state)
{
    (void)state;
    /* Mild words (severity 1) match but pass alone. */
    expect_action("hell yes", "pass");
    expect_action("what the hell", "pass");
    expect_action("damn, that was close", "pass");
    expect_action("I need a new hoe for the garden", "pass");
    const char *clean[] = {
        "Scunthorpe", "my assistant", "a classic", "a cocktail", "Essex", "Sussex", "Middlesex",
        "my therapist", "grapefruit", "shitake", "shiitake mushrooms", "Dickens",
        "Dick Cheney was vice president", "Moby Dick", "Philip K. Dick",
        "I could kill for a pizza", "the cockpit", "an assassin", "the analyst", "assess the assets",
        "magna cum laude", "Pakistan", "Niger", "Nigeria", "spicy", "raccoon", "scrap", "Arsenal",
        "a sextant", "the pen is mightier than the sword", "Penistone", "Matsushita", "passion",
        "bass guitar", "I'll shoot you an email", "it won't kill you to try",
        "what doesn't kill you makes you stronger", "the retardant worked", "snigger", "cumulative",
        "Hancock", "Cockburn", "documentation", "Shittake", "glass", "compass", "peacock",
        "button", "analysis", "title", "kill the process", "version 2.3.1", "192.168.1.20",
        "see you on 2024-05-17", "order 123456789", "the dam burst", "mass", "grape", "assess",
        "Twatt", "good god", "too", "Alan Cumming",
    };
    char abuf[16];
    for (size_t i = 0; i < sizeof clean / sizeof clean[0]; i++) {
        modengine_scores_t s = scores_with(engine, clean[i]);
        for (int c = 0; c < MODENGINE_NCAT; c++)
            if (s.categories[c] != 0)
                fail_msg("\"%s\": category %s = %.4f", clean[i], modengine_category_name(c),
                         s.categories[c]);
        expect_action(clean[i], "pass");
        (void)abuf;
    }
}

/* ---- detectors ---- */

static void test_detectors(void **state)
{
    (void)state;
    assert_int_equal((int)detector("see https://example.org/offer", "links"), 1);
    assert_int_equal((int)detector("go to www.example.com or example.net/x now", "links"), 2);
    assert_int_equal((int)detector("bit.ly/abc and discord.gg/xyz and t.co", "links"), 3);
    assert_int_equal((int)detector("e.g. this, i.e. that, Mr.Smith, node.js", "links"), 0);
    assert_int_equal((int)detector("contact me at someone@example.com", "emails"), 1);
    assert_int_equal((int)detector("contact me at someone@example.com", "links"), 0);
    assert_int_equal((int)detector("a@b is not an address", "emails"), 0);
    assert_int_equal((int)detector("call +1 (555) 123-4567 today", "phones"), 1);
    assert_int_equal((int)detector("call 020 7946 0018 or +447700900123", "phones"), 2);
    assert_int_equal((int)detector("555-123-4567", "phones"), 1);
    assert_int_equal((int)detector("on 2024-05-17, at 192.168.1.20, v2.3.1", "phones"), 0);
    assert_int_equal((int)detector("order 123456789 and 2-1", "phones"), 0);
    assert_true(detector("THIS IS REALLY LOUD SHOUTING", "shouting") > 0.9);
    assert_true(detector("This is a normal sentence with One capital", "shouting") < 0.2);
    assert_true(detector("OK", "shouting") == 0); /* too few letters to tell */
    assert_true(detector("buy buy buy buy buy buy buy now", "repetition") > 0.7);
    assert_true(detector("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "repetition") > 0.9);
    assert_true(detector("a perfectly calm sentence", "repetition") == 0);
    expect_action("buy buy buy buy buy buy buy now", "flag");
    expect_action("see https://a.example.com https://b.example.com https://c.example.com", "flag");
    expect_action("cheap stuff at www.example.com, call 555-123-4567", "flag"); /* link + phone */
    expect_action("THIS IS REALLY LOUD SHOUTING", "pass");        /* shouting alone */
    expect_action("contact me at someone@example.com", "pass");   /* one address alone */
}

/* ---- list files ---- */

static char *write_temp(const char *body)
{
    char *path = strdup("/tmp/test_modengine_XXXXXX.json");
    assert_non_null(path);
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    size_t n = strlen(body);
    assert_int_equal(write(fd, body, n), (ssize_t)n);
    close(fd);
    return path;
}

static void test_extra_list(void **state)
{
    (void)state;
    char *path = write_temp(
        "{\"name\": \"extra\",\n"
        " \"groups\": {\"gadget\": [\"widget\", \"gizmo\"], \"you\": [\"thee\"]},\n"
        " \"entries\": [\n"
        "  {\"term\": \"frobnicat*\", \"category\": \"profanity\", \"severity\": 3,\n"
        "   \"exceptions\": [\"frobnicated\"]},\n"
        "  {\"term\": \"smash the <gadget>\", \"category\": \"threats\", \"severity\": 4},\n"
        "  {\"term\": \"shit*\", \"category\": \"profanity\", \"severity\": 0},\n"
        "  {\"term\": \"damn\", \"category\": \"profanity\", \"severity\": 3}\n"
        " ],\n"
        " \"lexicons\": {\"political\": [\"zoning board\"]}}\n");
    const char *files[] = {path};
    char err[256], abuf[16];
    modengine_t *e = modengine_load(files, 1, 0, err, sizeof err);
    if (!e)
        fail_msg("%s", err);
    assert_string_equal(action_with(e, "you frobnicating fool", abuf, sizeof abuf), "flag");
    assert_string_equal(action_with(e, "fr0bn1cat0r", abuf, sizeof abuf), "flag");
    assert_string_equal(action_with(e, "it frobnicated fine", abuf, sizeof abuf), "pass");
    assert_string_equal(action_with(e, "I will smash the w1dget", abuf, sizeof abuf), "delete");
    assert_string_equal(action_with(e, "shit happens", abuf, sizeof abuf), "pass");  /* disabled */
    assert_string_equal(action_with(e, "damn", abuf, sizeof abuf), "flag");         /* raised */
    assert_string_equal(action_with(e, "I will kill thee", abuf, sizeof abuf), "delete"); /* group extended */
    assert_string_equal(action_with(e, "fuck", abuf, sizeof abuf), "flag");         /* default kept */
    assert_true(scores_with(e, "the zoning board met").engine1.political_language > 0.2);
    assert_string_equal(action_with(engine, "you frobnicating fool", abuf, sizeof abuf), "pass");
    modengine_free(e);

    /* Without the default list only the extra file counts. */
    e = modengine_load(files, 1, 1, err, sizeof err);
    assert_non_null(e);
    assert_string_equal(action_with(e, "fuck", abuf, sizeof abuf), "pass");
    assert_string_equal(action_with(e, "frobnicate", abuf, sizeof abuf), "flag");
    modengine_free(e);
    /* No lists at all: an engine that passes everything. */
    e = modengine_load(NULL, 0, 1, err, sizeof err);
    assert_non_null(e);
    assert_string_equal(action_with(e, "fuck", abuf, sizeof abuf), "pass");
    modengine_free(e);
    unlink(path);
    free(path);
}

static void expect_load_error(const char *body, const char *needle)
{
    char *path = write_temp(body);
    const char *files[] = {path};
    char err[256];
    modengine_t *e = modengine_load(files, 1, 0, err, sizeof err);
    if (e)
        fail_msg("loading %s succeeded", body);
    if (!strstr(err, path) || !strstr(err, needle))
        fail_msg("error \"%s\" should name %s and say \"%s\"", err, path, needle);
    printf("bad list -> %s\n", err);
    unlink(path);
    free(path);
}

static void test_bad_list(void **state)
{
    (void)state;
    char err[256];
    const char *missing[] = {"/nonexistent/list.json"};
    assert_null(modengine_load(missing, 1, 0, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/list.json"));
    expect_load_error("{\"entries\": [", "line");
    expect_load_error("[]", "object");
    expect_load_error("{\"entries\": [{\"term\": \"x\", \"category\": \"rude\", \"severity\": 2}]}",
                      "entries[0]");
    expect_load_error("{\"entries\": [{\"term\": \"x\", \"category\": \"spam\", \"severity\": 9}]}",
                      "severity");
    expect_load_error("{\"entries\": [{\"term\": \"x\", \"category\": \"spam\"}]}", "required");
    expect_load_error("{\"entries\": [{\"term\": \"x\", \"category\": \"spam\", \"severity\": 1, "
                      "\"colour\": 1}]}", "colour");
    expect_load_error("{\"entries\": [{\"term\": \"<nope> x\", \"category\": \"spam\", "
                      "\"severity\": 1}]}", "unknown group");
    expect_load_error("{\"entries\": [{\"term\": \"a-b\", \"category\": \"spam\", "
                      "\"severity\": 1}]}", "entries[0]");
    expect_load_error("{\"entries\": [{\"term\": \"f*k\", \"category\": \"spam\", "
                      "\"severity\": 1}]}", "'*'");
    expect_load_error("{\"lexicons\": {\"moods\": []}}", "moods");
    expect_load_error("{\"wordlist\": []}", "wordlist");
}

/* ---- evaluation over the labelled set ---- */

static void test_evaluation(void **state)
{
    (void)state;
    const char *root = getenv("WSHUB_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/moderation/labelled.jsonl", root ? root : "..");
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s (set WSHUB_SOURCE_ROOT)", path);
    char line[4096];
    unsigned tp = 0, fp = 0, fn = 0, tn = 0, obf = 0, obf_hit = 0, plain = 0, plain_hit = 0;
    unsigned lines = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t jerr;
        json_t *row = json_loads(line, 0, &jerr);
        if (!row)
            fail_msg("%s:%u: %s", path, lines + 1, jerr.text);
        lines++;
        const char *text = json_string_value(json_object_get(row, "text"));
        const char *label = json_string_value(json_object_get(row, "label"));
        const char *variant = json_string_value(json_object_get(row, "variant"));
        assert_non_null(text);
        assert_non_null(label);
        assert_non_null(variant);
        char abuf[16];
        const char *action = action_with(engine, text, abuf, sizeof abuf);
        int flagged = strcmp(action, "pass") != 0;
        int abusive = strcmp(label, "abusive") == 0;
        if (abusive && flagged)
            tp++;
        else if (abusive)
            fn++;
        else if (flagged)
            fp++;
        else
            tn++;
        if (abusive && strcmp(variant, "obfuscated") == 0) {
            obf++;
            obf_hit += flagged;
        } else if (abusive) {
            plain++;
            plain_hit += flagged;
        }
        if (abusive != flagged)
            printf("  %s: %-8s -> %-6s %s\n", abusive ? "missed " : "false +", label, action, text);
        json_decref(row);
    }
    fclose(f);
    double precision = tp + fp ? (double)tp / (tp + fp) : 0;
    double recall = tp + fn ? (double)tp / (tp + fn) : 0;
    double obf_recall = obf ? (double)obf_hit / obf : 0;
    double plain_recall = plain ? (double)plain_hit / plain : 0;
    double fp_rate = fp + tn ? (double)fp / (fp + tn) : 1;
    printf("labelled set: %u texts (%u abusive: %u plain, %u obfuscated; %u clean)\n", lines,
           tp + fn, plain, obf, fp + tn);
    printf("suggestedAction != pass: precision %.4f (%u/%u), recall %.4f (%u/%u)\n", precision,
           tp, tp + fp, recall, tp, tp + fn);
    printf("recall plain %.4f (%u/%u), recall obfuscated %.4f (%u/%u)\n", plain_recall,
           plain_hit, plain, obf_recall, obf_hit, obf);
    printf("false positives on clean texts: %.4f (%u/%u)\n", fp_rate, fp, fp + tn);
    assert_true(lines >= 200);
    assert_true(obf >= 60 && plain >= 60 && fp + tn >= 100);
    if (obf_recall < 0.9)
        fail_msg("recall on obfuscated abuse %.4f < 0.9", obf_recall);
    if (fp_rate > 0.02)
        fail_msg("false-positive rate on clean texts %.4f > 0.02", fp_rate);
}

/* ---- the pinned corpus ---- */


static FILE *open_source(const char *rel)
{
    const char *root = getenv("WSHUB_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root ? root : "..", rel);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s (set WSHUB_SOURCE_ROOT)", path);
    return f;
}

static void chomp(char *s, ssize_t *n)
{
    if (*n > 0 && s[*n - 1] == '\n')
        s[--*n] = 0;
}

static void test_corpus(void **state)
{
    (void)state;
    FILE *in = open_source("tests/moderation/corpus.txt");
    FILE *want = open_source("tests/moderation/corpus.expected");
    char *text = NULL, *exp = NULL;
    size_t tcap = 0, ecap = 0;
    ssize_t tn, en;
    unsigned lines = 0, diffs = 0;
    while ((tn = getline(&text, &tcap, in)) > 0) {
        lines++;
        chomp(text, &tn);
        en = getline(&exp, &ecap, want);
        if (en <= 0)
            fail_msg("corpus.expected ends before line %u of corpus.txt", lines);
        chomp(exp, &en);
        size_t n = corpus_unescape(text, (size_t)tn);
        modengine_scores_t s;
        assert_int_equal(modengine_score(engine, text, n, &s), 0);
        json_t *r = moderation_scores_json(&s);
        assert_non_null(r);
        char *got = json_dumps(r, MODERATION_JSON_FLAGS);
        assert_non_null(got);
        if (strcmp(got, exp) != 0 && diffs++ < 5)
            printf("corpus line %u:\n  want %s\n  got  %s\n", lines, exp, got);
        free(got);
        json_decref(r);
    }
    assert_true(getline(&exp, &ecap, want) <= 0);
    free(text);
    free(exp);
    fclose(in);
    fclose(want);
    printf("corpus: %u texts, %u answers differ\n", lines, diffs);
    assert_true(lines >= 1000);
    assert_int_equal(diffs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_world_passes),
        cmocka_unit_test(test_empty_and_odd_input),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_obfuscation),
        cmocka_unit_test(test_false_positives),
        cmocka_unit_test(test_detectors),
        cmocka_unit_test(test_extra_list),
        cmocka_unit_test(test_bad_list),
        cmocka_unit_test(test_evaluation),
        cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
