/*
 * server — the process-wide state the workers share, read-only once they run:
 * the configuration, the TLS context, the workers themselves.
 * Built by main.c; dialects never see it (dialect.h gives them what they may use).
 */
#ifndef WSHUB_SERVER_H
#define WSHUB_SERVER_H

#include <stdatomic.h>
#include <stddef.h>

#include "wshub/config.h"
#include "wshub/live.h"

typedef struct worker worker_t;
typedef struct tls_server tls_server_t;
typedef struct hub hub_t;
typedef struct broker broker_t;

typedef struct server {
    const config_t *cfg;   /* the startup configuration: listen, workers, limits, tls */
    _Atomic(live_t *) live; /* the latest (re)loaded one: read keys and allow-lists here */
    hub_t *hub;
    broker_t *broker;      /* NULL: broker.type "memory" (the hub alone) */
    tls_server_t *tls;     /* NULL for plain TCP */
    worker_t **workers;
    size_t nworkers;
    atomic_size_t nconns;  /* TCP connections open in the whole process */
} server_t;

/* The current configuration for reloadable things (keys, allow-lists, auth). */
static inline const live_t *server_live(server_t *srv)
{
    return atomic_load_explicit(&srv->live, memory_order_acquire);
}

#endif
