/*
 * iplimit — see include/wshub/iplimit.h.
 */
#include "wshub/iplimit.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "wshub/strmap.h"

typedef struct ipent {
    uint32_t conns;    /* open connections from this address */
    double tokens;     /* new connections it may open now (the bucket holds 2 s of rate) */
    uint64_t last_ms;  /* when tokens was computed */
} ipent_t;

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t lock;
static strmap_t table;

static void init(void) { uv_mutex_init(&lock); }

bool iplimit_is_loopback(const uint8_t ip[16])
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t v6loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (memcmp(ip, v4mapped, 12) == 0)
        return ip[12] == 127;
    return memcmp(ip, v6loop, 16) == 0;
}

static void refill(ipent_t *e, uint64_t now_ms, int rate)
{
    double cap = 2.0 * rate;
    if (now_ms > e->last_ms)
        e->tokens += (double)(now_ms - e->last_ms) * rate / 1000.0;
    if (e->tokens > cap)
        e->tokens = cap;
    e->last_ms = now_ms;
}

/* Drops the entries that hold nothing: no connection and a full bucket. Under the lock. */
static void prune(uint64_t now_ms, int rate)
{
    for (size_t b = 0; b < table.nbuckets; b++) {
        strmap_entry_t *se = table.buckets[b];
        while (se) {
            strmap_entry_t *next = se->next;
            ipent_t *e = se->value;
            if (rate)
                refill(e, now_ms, rate);
            if (e->conns == 0 && (!rate || e->tokens >= 2.0 * rate)) {
                strmap_remove(&table, se);
                free(e);
            }
            se = next;
        }
    }
}

iplimit_result_t iplimit_acquire(const uint8_t ip[16], uint64_t now_ms, const config_t *cfg)
{
    size_t maxc = cfg->max_connections_per_ip;
    int rate = cfg->accept_rate_per_ip;
    if (!maxc && !rate)
        return IPLIMIT_UNCOUNTED;
    uv_once(&once, init);
    uv_mutex_lock(&lock);
    iplimit_result_t res = IPLIMIT_OK;
    strmap_entry_t *se = strmap_find(&table, (const char *)ip, 16);
    if (!se && table.count >= IPLIMIT_MAX_ENTRIES)
        prune(now_ms, rate);
    ipent_t *e = se ? se->value : NULL;
    if (!e) {
        if (table.count >= IPLIMIT_MAX_ENTRIES || !(e = calloc(1, sizeof *e))) {
            res = IPLIMIT_UNCOUNTED;
            goto out;
        }
        e->tokens = 2.0 * rate;
        e->last_ms = now_ms;
        if (!strmap_insert(&table, (const char *)ip, 16, e)) {
            free(e);
            res = IPLIMIT_UNCOUNTED;
            goto out;
        }
    }
    if (rate) {
        refill(e, now_ms, rate);
        if (e->tokens < 1.0) {
            res = IPLIMIT_TOO_FAST;
            goto out;
        }
    }
    if (maxc && e->conns >= maxc) {
        res = IPLIMIT_TOO_MANY;
        goto out;
    }
    if (rate)
        e->tokens -= 1.0;
    e->conns++;
out:
    uv_mutex_unlock(&lock);
    return res;
}

void iplimit_release(const uint8_t ip[16])
{
    uv_once(&once, init);
    uv_mutex_lock(&lock);
    strmap_entry_t *se = strmap_find(&table, (const char *)ip, 16);
    if (se) {
        ipent_t *e = se->value;
        if (e->conns)
            e->conns--;
        /* Kept for its bucket: prune drops it once full again, when the table fills up. */
    }
    uv_mutex_unlock(&lock);
}

size_t iplimit_entries(void)
{
    uv_once(&once, init);
    uv_mutex_lock(&lock);
    size_t n = table.count;
    uv_mutex_unlock(&lock);
    return n;
}
