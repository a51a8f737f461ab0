/*
 * mempool — size-classed object pools for the long-lived, per-connection state of one
 * worker: the connection, its WebSocket session, the dialect's session, hub subscriptions,
 * output-queue rings (DESIGN.md "small per-connection state").
 *
 * Why not malloc: an idle connection is a few hundred bytes that live for hours, allocated
 * in the middle of its handshake's short-lived buffers (HTTP parser, JWT, JSON, wslay's
 * context). In one general heap those small long-lived chunks pin the pages the
 * temporaries leave behind: 10,000 API B connections cost 1.8 KB each in RSS for 1.1 KB of
 * objects (bench/ S3). Here each size class lives in its own 64 KiB pages, objects are
 * packed without headers, and a page that empties goes back to the kernel, so the general
 * heap only ever holds temporaries and idle memory is about the sum of the objects.
 *
 * Ownership: one mempool_t per worker, used only from that worker's thread (no locks).
 * mempool_alloc returns zeroed memory; mempool_free must be given the size that was asked
 * for (every caller knows it: a struct, or a length it keeps). Sizes above
 * MEMPOOL_MAX_OBJECT go to calloc/free.
 *
 * Sanitizer builds pass every call through to calloc/free, so AddressSanitizer still sees
 * each object (use after free, overflow, leaks); the pool itself is covered by its unit test,
 * which builds it with MEMPOOL_FORCE defined.
 */
#ifndef WSHUB_MEMPOOL_H
#define WSHUB_MEMPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "wshub/list.h"

#define MEMPOOL_GRAIN 16
#define MEMPOOL_MAX_OBJECT 512
#define MEMPOOL_CLASSES (MEMPOOL_MAX_OBJECT / MEMPOOL_GRAIN)
#define MEMPOOL_PAGE (64 * 1024)

typedef struct mempool_class {
    list_node_t partial; /* pages with at least one free slot */
    uint32_t npages;
    uint32_t nempty;     /* pages with no object (at most one is kept, see mempool_free) */
} mempool_class_t;

typedef struct mempool {
    mempool_class_t classes[MEMPOOL_CLASSES];
    list_node_t pages;   /* every page, for mempool_destroy */
    size_t page_bytes;   /* bytes of pages held (for metrics) */
    size_t object_bytes; /* bytes handed out and not freed, rounded to the class */
} mempool_t;

void mempool_init(mempool_t *p);
/* Frees every page; objects still allocated become invalid (worker shutdown). */
void mempool_destroy(mempool_t *p);

void *mempool_alloc(mempool_t *p, size_t size);
void mempool_free(mempool_t *p, void *obj, size_t size);

#endif
