/*
 * broker — see include/wshub/broker.h: which implementation a configuration asks for.
 */
#include "wshub/broker.h"

#include <stdio.h>

broker_t *broker_new(const config_t *cfg, const broker_events_t *ev, char *err, size_t errlen)
{
    if (errlen)
        err[0] = 0;
    broker_t *b = NULL;
    switch (cfg->broker_type) {
    case BROKER_MEMORY:
        return NULL; /* the hub alone */
    case BROKER_REDIS:
        b = broker_redis_new(cfg, err, errlen);
        break;
    }
    if (b) {
        b->ev = *ev;
    } else if (errlen && !err[0]) {
        snprintf(err, errlen, "broker.type: cannot make the broker");
    }
    return b;
}
