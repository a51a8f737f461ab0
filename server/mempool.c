/*
 * mempool — see include/wshub/mempool.h. Pages are MEMPOOL_PAGE bytes, aligned to their
 * size, so an object finds its page by masking its address (as in a slab allocator). A page
 * starts with its header; its slots follow, handed out first by a bump index (untouched
 * slots cost no RSS) and then from the page's free list.
 */
#include "wshub/mempool.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__) && !defined(MEMPOOL_FORCE)
#define MEMPOOL_PASSTHROUGH 1
#else
#define MEMPOOL_PASSTHROUGH 0
#endif

typedef struct page {
    list_node_t node;      /* in its class's partial list while it has a free slot */
    list_node_t all;       /* in the pool's list of every page */
    mempool_class_t *cls;
    void *free;            /* free list through the slots' first word */
    uint32_t size;         /* slot size */
    uint32_t cap;          /* slots in the page */
    uint32_t bumped;       /* slots ever handed out by the bump index */
    uint32_t nfree;        /* free slots, bump-able ones included */
} page_t;

#define PAGE_HEADER ((sizeof(page_t) + MEMPOOL_GRAIN - 1) & ~(size_t)(MEMPOOL_GRAIN - 1))

void mempool_init(mempool_t *p)
{
    memset(p, 0, sizeof *p);
    list_init(&p->pages);
    for (int i = 0; i < MEMPOOL_CLASSES; i++)
        list_init(&p->classes[i].partial);
}

static page_t *page_new(mempool_t *p, mempool_class_t *cls, uint32_t size)
{
    /* Twice the size, then trim, to get an address aligned to MEMPOOL_PAGE. */
    size_t span = 2 * (size_t)MEMPOOL_PAGE;
    uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)raw + MEMPOOL_PAGE - 1) & ~(uintptr_t)(MEMPOOL_PAGE - 1);
    size_t head = a - (uintptr_t)raw, tail = span - head - MEMPOOL_PAGE;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap((uint8_t *)a + MEMPOOL_PAGE, tail);
    page_t *pg = (page_t *)a;
    pg->cls = cls;
    pg->free = NULL;
    pg->size = size;
    pg->cap = (uint32_t)((MEMPOOL_PAGE - PAGE_HEADER) / size);
    pg->bumped = 0;
    pg->nfree = pg->cap;
    list_insert_head(&cls->partial, &pg->node);
    list_insert_tail(&p->pages, &pg->all);
    cls->npages++;
    cls->nempty++;
    p->page_bytes += MEMPOOL_PAGE;
    return pg;
}

static void page_free(mempool_t *p, page_t *pg)
{
    list_remove(&pg->node);
    list_remove(&pg->all);
    pg->cls->npages--;
    if (pg->nfree == pg->cap)
        pg->cls->nempty--;
    p->page_bytes -= MEMPOOL_PAGE;
    munmap(pg, MEMPOOL_PAGE);
}

void mempool_destroy(mempool_t *p)
{
    list_node_t *n;
    while ((n = list_first(&p->pages)))
        page_free(p, container_of(n, page_t, all));
}

void *mempool_alloc(mempool_t *p, size_t size)
{
    if (size == 0)
        size = 1;
    if (size > MEMPOOL_MAX_OBJECT || MEMPOOL_PASSTHROUGH) {
        void *o = calloc(1, size);
        if (o)
            p->object_bytes += size;
        return o;
    }
    size_t ci = (size - 1) / MEMPOOL_GRAIN;
    uint32_t slot = (uint32_t)((ci + 1) * MEMPOOL_GRAIN);
    mempool_class_t *cls = &p->classes[ci];
    list_node_t *n = list_first(&cls->partial);
    page_t *pg = n ? container_of(n, page_t, node) : page_new(p, cls, slot);
    if (!pg)
        return NULL;
    void *o;
    if (pg->nfree == pg->cap)
        cls->nempty--;
    if (pg->free) {
        o = pg->free;
        memcpy(&pg->free, o, sizeof(void *));
    } else {
        o = (uint8_t *)pg + PAGE_HEADER + (size_t)pg->bumped++ * slot;
    }
    if (--pg->nfree == 0)
        list_remove(&pg->node);
    memset(o, 0, slot);
    p->object_bytes += slot;
    return o;
}

void mempool_free(mempool_t *p, void *obj, size_t size)
{
    if (!obj)
        return;
    if (size == 0)
        size = 1;
    if (size > MEMPOOL_MAX_OBJECT || MEMPOOL_PASSTHROUGH) {
        p->object_bytes -= size;
        free(obj);
        return;
    }
    page_t *pg = (page_t *)((uintptr_t)obj & ~(uintptr_t)(MEMPOOL_PAGE - 1));
    mempool_class_t *cls = pg->cls;
    p->object_bytes -= pg->size;
    memcpy(obj, &pg->free, sizeof(void *));
    pg->free = obj;
    if (pg->nfree++ == 0)
        list_insert_head(&cls->partial, &pg->node); /* filled before the spare empty page */
    /* An empty page goes back to the kernel unless it is the class's only empty one: one
     * spare per class, or a fan-out whose queue rings spill into a new page would map and
     * unmap it on every loop turn. */
    if (pg->nfree == pg->cap && cls->nempty++ >= 1)
        page_free(p, pg);
}
