/*
 * mock/faults_internal — what faults.c (the table and the hooks of include/wshub/faults.h)
 * shares with faults_http.c (the control endpoints that fill it), and nobody else.
 */
#ifndef WSHUB_MOCK_FAULTS_INTERNAL_H
#define WSHUB_MOCK_FAULTS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

typedef enum {
    FK_CABLE_REJECT = 0,
    FK_MODERATION,
    FK_LATENCY,
    FK_DROP,
    FK_REFUSE,
    FK_COUNT
} fault_kind_t;

/* One fault or override. Filled by faults_http.c, then owned by the table. */
typedef struct fault {
    uint64_t id;
    fault_kind_t kind;
    int ep;              /* latency, drop, refuse: endpoint_t */
    int dir;             /* latency, drop: FAULT_IN or FAULT_OUT */
    uint32_t ms, jitter; /* latency: ms ± jitter */
    double rate;         /* drop: 0 < rate <= 1 */
    int status;          /* refuse: the HTTP status */
    uint64_t until_ms;   /* refuse: faults__now_ms() when it ends */
    char *channel;       /* cable: an identifier channel or a queue */
    long long left;      /* cable: rejections left; moderation: uses left (-1: until cleared) */
    json_t *reference;   /* moderation: the reference to match, or NULL */
    char *pattern;       /* moderation: a substring or a glob of the sample, or NULL */
    bool glob;           /* pattern has * ? or [: it must match the whole sample */
    json_t *answer;      /* moderation: the override (faults.h, faults_moderation_override) */
    uint64_t hits;       /* times it changed something */
} fault_t;

/* Monotonic milliseconds, on any thread. */
uint64_t faults__now_ms(void);

/* Adds f (taken over; freed on failure): its id, or 0 when mock.max_faults are set. A
 * latency, drop or refuse fault replaces the one of the same API (and direction). */
uint64_t faults__add(fault_t *f, int max);
/* Removes the fault with this id: false when there is none. */
bool faults__remove(uint64_t id);
/* Removes every fault: how many there were. */
size_t faults__clear(void);
/* Every fault set, as a JSON array (a new reference; NULL when out of memory). */
json_t *faults__list(void);
void faults__free(fault_t *f);

#endif
