/*
 * config_value — private to config.c and config_value.c: the syntax of one value.
 * Every function returns 0, -EINVAL (and then leaves nothing allocated) or -ENOMEM.
 */
#ifndef WSHUB_CONFIG_VALUE_H
#define WSHUB_CONFIG_VALUE_H

#include <jansson.h>

#include "wshub/config.h"

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

#endif
