/*
 * config_value — private to config.c, config_value.c and config_dump.c: the syntax of one
 * value, and the key table's types.
 * Every function returns 0, -EINVAL (and then leaves nothing allocated) or -ENOMEM.
 */
#ifndef WSHUB_CONFIG_VALUE_H
#define WSHUB_CONFIG_VALUE_H

#include <jansson.h>

#include "wshub/config.h"

typedef enum {
    T_LISTEN, /* "host:port" into listen_host + listen_port */
    T_STRING, /* char *, NULL = unset */
    T_INT,    /* int in [min, max] */
    T_SIZE,   /* size_t bytes, >= min */
    T_MS,     /* uint32_t milliseconds in [min, max], or >= min when max is 0 */
    T_BOOL,   /* bool */
    T_ENUM,   /* int index into names */
    T_LIST,   /* config_strlist_t; with names: each item one of them, stored as spelled there */
} key_type_t;

#define K_SECRET 1u    /* never echo the value in an error (nor in GET /api/info) */
#define K_TOKEN 2u     /* T_STRING of min..max bytes, no space or control character; not null */
#define K_REDIS_URL 4u /* T_STRING that config_redis_url_parse accepts, or null; an error shows
                          it with the password masked (so it may drop K_SECRET's silence) */

/* What config_dump.c needs of one key of the table. */
typedef struct config_key_view {
    const char *path;
    key_type_t type;
    unsigned flags;
    const char *const *names; /* T_ENUM: index = value */
} config_key_view_t;
/* Key i (in file order): fills *v and returns where its value is in cfg; NULL past the last. */
const void *config_key_at(const config_t *cfg, size_t i, config_key_view_t *v);

void config_list_free(config_strlist_t *l);
/* "a, b,,c " -> [a, b, c]: items trimmed, empty ones dropped. */
int config_list_split(const char *s, config_strlist_t *out);
/* A JSON array of non-empty strings. */
int config_list_json(const json_t *arr, config_strlist_t *out);
/* Digits only: no sign, no space, no base prefix. */
int config_parse_ull(const char *s, unsigned long long *v);
/* An optional '-' then digits. */
int config_parse_ll(const char *s, long long *v);
/* Index of s in a NULL-terminated word list, ignoring case; -1 if absent. */
int config_word_index(const char *const *words, const char *s);
/* "host:port" or "[v6]:port"; *host (allocated) without brackets. */
int config_parse_listen(const char *s, char **host, int *port);
/* Like getenv over envp: the first "NAME=" wins; NULL when absent. */
const char *config_env_value(char *const *envp, const char *name);
/* A Redis URL as errors and GET /api/info show it: the userinfo's password (or all of a
 * userinfo without ':', which is likely a password too) replaced by "***"; allocated. NULL
 * when s has no "://" (then none of it may be shown) or out of memory. */
char *config_masked_url(const char *s);

#endif
