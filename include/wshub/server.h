/*
 * server — the process-wide state the workers share, read-only once they run:
 * the configuration, the TLS context, the workers themselves.
 * Built by main.c, never touched by dialects.
 */
#ifndef WSHUB_SERVER_H
#define WSHUB_SERVER_H

#include <stdatomic.h>
#include <stddef.h>

#include "wshub/config.h"

typedef struct worker worker_t;
typedef struct tls_server tls_server_t;

typedef struct server {
    const config_t *cfg;   /* the startup configuration: listen, workers, limits, tls */
    _Atomic(const config_t *) live; /* the latest (re)loaded one: read keys and allow-lists here */
    tls_server_t *tls;     /* NULL for plain TCP */
    worker_t **workers;
    size_t nworkers;
    atomic_size_t nconns;  /* TCP connections open in the whole process */
} server_t;

#endif
