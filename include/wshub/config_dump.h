/*
 * config_dump — a configuration as a JSON object for GET /api/info: {"<dotted key>": value}
 * for every key of the table, secrets masked ("***"; broker.redis_url without its password).
 */
#ifndef WSHUB_CONFIG_DUMP_H
#define WSHUB_CONFIG_DUMP_H

#include <jansson.h>

#include "wshub/config.h"

/* A new object, or NULL when out of memory. */
json_t *config_dump(const config_t *cfg);

#endif
