/*
 * list — an intrusive, circular, doubly linked list (the shape of libuv's queue.h).
 * A node is embedded in its owner; container_of recovers the owner. An unlinked node
 * points at itself, so list_remove is safe on a node that is not in a list.
 */
#ifndef WSHUB_LIST_H
#define WSHUB_LIST_H

#include <stddef.h>
#include <stdbool.h>

typedef struct list_node {
    struct list_node *prev, *next;
} list_node_t;

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void list_init(list_node_t *n) { n->prev = n->next = n; }
static inline bool list_empty(const list_node_t *head) { return head->next == head; }
static inline bool list_linked(const list_node_t *n) { return n->next != n; }

static inline void list_insert_tail(list_node_t *head, list_node_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void list_insert_head(list_node_t *head, list_node_t *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

static inline void list_remove(list_node_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* Moves every node of src, in order, to an empty dst (src is left empty): e.g. a queue other
 * threads fill, taken whole under its lock and worked through after. */
static inline void list_take_all(list_node_t *dst, list_node_t *src)
{
    list_init(dst);
    if (list_empty(src))
        return;
    dst->next = src->next;
    dst->prev = src->prev;
    dst->next->prev = dst;
    dst->prev->next = dst;
    list_init(src);
}

static inline list_node_t *list_first(const list_node_t *head)
{
    return head->next == head ? NULL : head->next;
}

#endif
