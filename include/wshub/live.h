/*
 * live — one loaded configuration with what is derived from it (the token verifier): the
 * snapshot every request and message reads its keys, allow-lists and limits from. SIGHUP
 * makes a new one; superseded ones are kept until exit, since a worker may still be reading
 * one (reloads are rare). Built by main.c; read-only once published.
 */
#ifndef WSHUB_LIVE_H
#define WSHUB_LIVE_H

#include "wshub/config.h"

typedef struct auth_verifier auth_verifier_t;

typedef struct live {
    config_t cfg;
    auth_verifier_t *auth;
    struct live *prev;
} live_t;

#endif
