/*
 * The routing table of WebSocket endpoints (one entry per dialect module), and what the
 * dialects share.
 */
#include "wshub/dialect.h"

#include <stdlib.h>
#include <string.h>

#include "wshub/ws.h"

const dialect_t *const dialects[] = {
    &dialect_echo,
    &dialect_service,
    &dialect_cable,
    &dialect_moderation,
    &dialect_flow,
    &dialect_tap,
    NULL,
};

int dialect_send_json(ws_session_t *s, json_t *msg)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    int r = text ? ws_session_send_text(s, text, strlen(text)) : -1;
    free(text);
    json_decref(msg);
    return r;
}

const char *dialect_cstr(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && strlen(s) == json_string_length(v) ? s : NULL;
}

bool dialect_str_is(const json_t *v, const char *lit)
{
    const char *s = dialect_cstr(v);
    return s && strcmp(s, lit) == 0;
}

int dialects_process_init(const config_t *cfg, char *err, size_t errlen)
{
    for (const dialect_t *const *d = dialects; *d; d++) {
        if ((*d)->process_init && (*d)->process_init(cfg, err, errlen) != 0) {
            while (d-- > dialects)
                if ((*d)->process_free)
                    (*d)->process_free();
            return -1;
        }
    }
    return 0;
}

void dialects_process_free(void)
{
    for (const dialect_t *const *d = dialects; *d; d++)
        if ((*d)->process_free)
            (*d)->process_free();
}

_Static_assert(sizeof dialects / sizeof dialects[0] <= DIALECT_MAX + 1, "raise DIALECT_MAX");
