/*
 * loader.h — the state of one modengine_load call, shared by lists.c (reading and checking
 * list documents) and terms.c (compiling their terms into words and patterns).
 *
 * Owns: struct loader. Never: outlives modengine_load.
 */
#ifndef WSHUB_MODERATION_LOADER_H
#define WSHUB_MODERATION_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engine_internal.h"

struct rawentry {
    json_t *obj;
    const char *file;
    size_t index; /* position in the file's "entries" */
    int dead;     /* replaced by a later entry with the same term */
};

struct rawgroup {
    const char *name;
    json_t *members;
    const char *file;
};

struct rawlex {
    uint8_t kind;
    json_t *items;
    const char *file;
};

/* A word of a term as written: literal text with wildcards, or a group reference. */
struct rword {
    const char *s;
    uint32_t n;
    uint8_t wild;
    int32_t group; /* index in loader.gnames, -1 for a literal */
};

struct loader {
    modengine_t *e;
    char *err;
    size_t errlen;
    json_t **roots;
    size_t nroots, caproots;
    struct rawentry *raw;
    size_t nraw, capraw;
    struct rawgroup *groups;
    size_t ngroups, capgroups;
    struct rawlex *lex;
    size_t nlex, caplex;
    /* Group expansion: distinct names, and each member pre-split into literal words. */
    const char **gnames;
    size_t ngnames;
    struct rword *gwords; /* every member's words, back to back */
    size_t ngwords, capgwords;
    struct gmember { uint32_t w0, n; int32_t group; } *gmembers;
    size_t ngmembers, capgmembers;
    /* The entry being compiled, for error messages and the expansion limit. */
    const char *cur_file;
    char cur_what[160]; /* "entries[3] (\"term\")" or "groups.you" */
    size_t cur_count;
    int cur_exception;
};

/* Writes one error line (printf-style) into the caller's buffer. */
void modengine__seterr(struct loader *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The index of name s among modengine__kind_names[first .. last), or -1. */
int modengine__kind_by_name(const char *s, int first, int last);

/* Collects the groups of every file (same name: members added) and splits members. */
int modengine__compile_groups(struct loader *L);

/* Compiles every live entry (term, forms, exceptions) and lexicon into words, patterns
 * and entries of L->e. */
int modengine__compile_entries(struct loader *L);

#endif
