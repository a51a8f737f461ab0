/*
 * lists.c — reading the moderation lists: the embedded English default
 * (config/moderation/en.json, embedded by scripts/embed.py) and the extra list files, each
 * checked member by member (format in config/moderation/README.md) with an error line that
 * names the file; later entries with the same term replace earlier ones. Then hands the
 * documents to terms.c and trie.c and returns the finished engine.
 *
 * Owns: modengine_load, modengine_free, the names of categories and lexicons, the error
 * line. Never: compiles a term (terms.c), touches the trie (trie.c), or keeps a parsed
 * document after modengine_load returns.
 */
#include "loader.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* The default English list, generated from config/moderation/en.json by scripts/embed.py. */
extern const char modengine__default_list[];
extern const size_t modengine__default_list_len;

const char *const modengine__kind_names[NKIND] = {
    "profanity", "slurs", "threats", "sexual", "self_harm", "spam",
    "second_person", "negators", "stopwords", "positive", "negative", "political", "defensive",
};

const char *modengine_category_name(int category)
{
    return category >= 0 && category < NCAT ? modengine__kind_names[category] : NULL;
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

void modengine__seterr(struct loader *L, const char *fmt, ...)
{
    if (!L->err || !L->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->err, L->errlen, fmt, ap);
    va_end(ap);
}

int modengine__kind_by_name(const char *s, int first, int last)
{
    for (int k = first; k < last; k++)
        if (strcmp(modengine__kind_names[k], s) == 0)
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
        modengine__seterr(L, "%s: %s must be an array of strings", file, what);
        return -1;
    }
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0) {
            modengine__seterr(L, "%s: %s[%zu] must be a non-empty string", file, what, i);
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
        modengine__seterr(L, "%s: entries[%zu] must be an object", file, idx);
        return -1;
    }
    const json_t *term = json_object_get(obj, "term");
    const char *tname = json_is_string(term) ? json_string_value(term) : "?";
    json_object_foreach((json_t *)obj, key, v) {
        if (is_comment(key))
            continue;
        if (strcmp(key, "term") == 0) {
            if (!json_is_string(v) || json_string_length(v) == 0) {
                modengine__seterr(L, "%s: entries[%zu]: term must be a non-empty string", file,
                                  idx);
                return -1;
            }
        } else if (strcmp(key, "category") == 0) {
            if (!json_is_string(v) ||
                modengine__kind_by_name(json_string_value(v), 0, NCAT) < 0) {
                modengine__seterr(L, "%s: entries[%zu] (\"%s\"): category must be one of "
                                  "profanity, slurs, threats, sexual, self_harm, spam", file, idx,
                                  tname);
                return -1;
            }
        } else if (strcmp(key, "severity") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 5) {
                modengine__seterr(L, "%s: entries[%zu] (\"%s\"): severity must be an integer 0-5",
                                  file, idx, tname);
                return -1;
            }
        } else if (strcmp(key, "forms") == 0 || strcmp(key, "exceptions") == 0) {
            snprintf(what, sizeof what, "entries[%zu].%s", idx, key);
            if (check_strings(L, file, v, what) != 0)
                return -1;
        } else if (strcmp(key, "names") == 0) {
            if (!json_is_boolean(v)) {
                modengine__seterr(L, "%s: entries[%zu] (\"%s\"): names must be true or false",
                                  file, idx, tname);
                return -1;
            }
        } else {
            modengine__seterr(L, "%s: entries[%zu] (\"%s\"): unknown member \"%s\"", file, idx,
                              tname, key);
            return -1;
        }
    }
    if (!json_is_string(term)) {
        modengine__seterr(L, "%s: entries[%zu]: term is missing", file, idx);
        return -1;
    }
    if (!json_object_get(obj, "category") || !json_object_get(obj, "severity")) {
        modengine__seterr(L, "%s: entries[%zu] (\"%s\"): category and severity are required",
                          file, idx, tname);
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

static int oom(struct loader *L, const char *file)
{
    modengine__seterr(L, "%s: out of memory", file);
    return -1;
}

/* "groups": {name: [member, ...]}; members are checked here and split in terms.c. */
static int load_groups(struct loader *L, json_t *v, const char *file)
{
    const char *gname;
    json_t *members;
    if (!json_is_object(v)) {
        modengine__seterr(L, "%s: groups must be an object of string arrays", file);
        return -1;
    }
    json_object_foreach(v, gname, members) {
        char what[96];
        snprintf(what, sizeof what, "groups.%.80s", gname);
        if (check_strings(L, file, members, what) != 0)
            return -1;
        if (grow((void **)&L->groups, &L->capgroups, L->ngroups + 1, sizeof *L->groups))
            return oom(L, file);
        L->groups[L->ngroups++] = (struct rawgroup){gname, members, file};
    }
    return 0;
}

/* "entries": [{term, category, severity, ...}]; an entry replaces earlier ones with the same
 * term (from this file or an earlier one). */
static int load_entries(struct loader *L, json_t *v, const char *file)
{
    size_t i;
    json_t *obj;
    if (!json_is_array(v)) {
        modengine__seterr(L, "%s: entries must be an array", file);
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
            return oom(L, file);
        L->raw[L->nraw++] = (struct rawentry){obj, file, i, 0};
    }
    return 0;
}

/* "lexicons": {second_person: [...], negators: [...], ...}. */
static int load_lexicons(struct loader *L, json_t *v, const char *file)
{
    const char *lname;
    json_t *items;
    if (!json_is_object(v)) {
        modengine__seterr(L, "%s: lexicons must be an object of string arrays", file);
        return -1;
    }
    json_object_foreach(v, lname, items) {
        char what[96];
        if (is_comment(lname))
            continue;
        int kind = modengine__kind_by_name(lname, NCAT, NKIND);
        if (kind < 0) {
            modengine__seterr(L, "%s: unknown lexicon \"%s\" (second_person, negators, stopwords, "
                              "positive, negative, political, defensive)", file, lname);
            return -1;
        }
        snprintf(what, sizeof what, "lexicons.%s", lname);
        if (check_strings(L, file, items, what) != 0)
            return -1;
        if (grow((void **)&L->lex, &L->caplex, L->nlex + 1, sizeof *L->lex))
            return oom(L, file);
        L->lex[L->nlex++] = (struct rawlex){(uint8_t)kind, items, file};
    }
    return 0;
}

/* Records one parsed list document (root is kept until compilation ends). */
static int load_doc(struct loader *L, json_t *root, const char *file)
{
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        modengine__seterr(L, "%s: the list must be a JSON object", file);
        return -1;
    }
    json_object_foreach(root, key, v) {
        int rc;
        if (is_comment(key))
            continue;
        if (strcmp(key, "name") == 0) {
            rc = json_is_string(v) ? 0 : -1;
            if (rc)
                modengine__seterr(L, "%s: name must be a string", file);
        } else if (strcmp(key, "groups") == 0) {
            rc = load_groups(L, v, file);
        } else if (strcmp(key, "entries") == 0) {
            rc = load_entries(L, v, file);
        } else if (strcmp(key, "lexicons") == 0) {
            rc = load_lexicons(L, v, file);
        } else {
            modengine__seterr(L, "%s: unknown member \"%s\" (name, groups, entries, lexicons)",
                              file, key);
            rc = -1;
        }
        if (rc)
            return -1;
    }
    return 0;
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

static int load_default(struct loader *L)
{
    const char *name = "<embedded config/moderation/en.json>";
    json_error_t jerr;
    json_t *root = json_loadb(modengine__default_list, modengine__default_list_len, 0, &jerr);
    if (!root) {
        modengine__seterr(L, "%s: line %d: %s", name, jerr.line, jerr.text);
        return -1;
    }
    if (keep_root(L, root) != 0 || load_doc(L, root, name) != 0)
        return -1;
    return 0;
}

static int load_file(struct loader *L, const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        if (jerr.line > 0)
            modengine__seterr(L, "%s: line %d: %s", path, jerr.line, jerr.text);
        else
            modengine__seterr(L, "%s: %s", path, jerr.text);
        return -1;
    }
    if (keep_root(L, root) != 0 || load_doc(L, root, path) != 0)
        return -1;
    return 0;
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
        modengine__seterr(&L, "modengine: out of memory");
        return NULL;
    }
    modengine__build_latin1(L.e);
    if (!no_default && load_default(&L) != 0)
        goto fail;
    for (size_t f = 0; f < nfiles; f++)
        if (load_file(&L, extra_files[f]) != 0)
            goto fail;
    if (modengine__compile_groups(&L) != 0 || modengine__compile_entries(&L) != 0)
        goto fail;
    if (modengine__build_index(L.e) != 0) {
        modengine__seterr(&L, "modengine: out of memory");
        goto fail;
    }
    loader_free(&L);
    return L.e;
fail:
    if (err && errlen && !err[0])
        modengine__seterr(&L, "modengine: out of memory");
    loader_free(&L);
    modengine_free(L.e);
    return NULL;
}
