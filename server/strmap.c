/*
 * strmap — see include/wshub/strmap.h.
 */
#include "wshub/strmap.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash(const char *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 16777619u;
    return h;
}

strmap_entry_t *strmap_find(const strmap_t *m, const char *key, size_t klen)
{
    if (!m->nbuckets)
        return NULL;
    uint32_t h = hash(key, klen);
    for (strmap_entry_t *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

static int grow(strmap_t *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    strmap_entry_t **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < m->nbuckets; i++) {
        strmap_entry_t *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

strmap_entry_t *strmap_insert(strmap_t *m, const char *key, size_t klen, void *value)
{
    if (m->count >= m->nbuckets && grow(m) != 0)
        return NULL;
    strmap_entry_t *e = malloc(sizeof *e + klen + 1);
    if (!e)
        return NULL;
    e->hash = hash(key, klen);
    e->klen = (uint32_t)klen;
    e->value = value;
    memcpy(e->key, key, klen);
    e->key[klen] = 0;
    strmap_entry_t **slot = &m->buckets[e->hash & (m->nbuckets - 1)];
    e->next = *slot;
    *slot = e;
    m->count++;
    return e;
}

void strmap_remove(strmap_t *m, strmap_entry_t *e)
{
    strmap_entry_t **p = &m->buckets[e->hash & (m->nbuckets - 1)];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    m->count--;
    free(e);
}

void strmap_clear(strmap_t *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        strmap_entry_t *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->count = 0;
}
