/*
 * config_dump — a configuration as JSON for GET /api/info (the web console): every key of the
 * table by its dotted path, with the value in force; secrets never shown.
 *
 * K_SECRET keys (api.key, auth.jwt_secret, the moderation keys...) are "***" when set (null
 * when unset: that they are unset is no secret); broker.redis_url keeps its host, port and
 * db but not its password (the masking the configuration errors use).
 */
#include "config_value.h"
#include "wshub/config_dump.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* redis://user:***@host:port/db (config_masked_url); "***" for what it will not show. */
static json_t *masked_url(const char *s)
{
    char *m = config_masked_url(s);
    json_t *j = json_string(m ? m : "***");
    free(m);
    return j;
}

static json_t *list_json(const config_strlist_t *l, bool secret)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++)
        json_array_append_new(a, json_string(secret ? "***" : l->items[i]));
    return a;
}

static json_t *value_json(const config_t *cfg, const config_key_view_t *k, const void *field)
{
    bool secret = k->flags & K_SECRET;
    switch (k->type) {
    case T_LISTEN: {
        bool v6 = strchr(cfg->listen_host, ':') != NULL;
        return json_sprintf("%s%s%s:%d", v6 ? "[" : "", cfg->listen_host, v6 ? "]" : "", cfg->listen_port);
    }
    case T_STRING: {
        const char *s = *(char *const *)field;
        if (!s)
            return json_null();
        if (k->flags & K_REDIS_URL)
            return masked_url(s);
        return json_string(secret ? "***" : s);
    }
    case T_INT:
        return json_integer(*(const int *)field);
    case T_ENUM:
        return json_string(k->names[*(const int *)field]);
    case T_SIZE:
        return json_integer((json_int_t)*(const size_t *)field);
    case T_MS:
        return json_integer((json_int_t)*(const uint32_t *)field);
    case T_BOOL:
        return json_boolean(*(const bool *)field);
    case T_LIST:
        return list_json(field, secret);
    }
    return json_null();
}

json_t *config_dump(const config_t *cfg)
{
    json_t *o = json_object();
    config_key_view_t k;
    const void *field;
    for (size_t i = 0; o && (field = config_key_at(cfg, i, &k)); i++) {
        json_t *v = value_json(cfg, &k, field);
        if (!v || json_object_set_new(o, k.path, v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}
