/*
 * strmap — a hash map from byte-string keys to pointers (chained, FNV-1a, doubling).
 * Not thread-safe: each owner locks (or does not share) its map. Keys are copied.
 */
#ifndef WSHUB_STRMAP_H
#define WSHUB_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct strmap_entry {
    struct strmap_entry *next;
    uint32_t hash;
    uint32_t klen;
    void *value;
    char key[]; /* klen bytes, then a NUL */
} strmap_entry_t;

typedef struct strmap {
    strmap_entry_t **buckets;
    size_t nbuckets; /* a power of two, or 0 before the first insert */
    size_t count;
} strmap_t;

/* The entry for key, or NULL. */
strmap_entry_t *strmap_find(const strmap_t *m, const char *key, size_t klen);
/* Inserts a new key (it must not be present); returns the entry or NULL when out of memory. */
strmap_entry_t *strmap_insert(strmap_t *m, const char *key, size_t klen, void *value);
/* Removes and frees an entry found with strmap_find. */
void strmap_remove(strmap_t *m, strmap_entry_t *e);
/* Frees every entry (not the values) and the table. */
void strmap_clear(strmap_t *m);

#endif
