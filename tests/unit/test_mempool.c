/*
 * Unit tests of the per-worker object pools (server/mempool.c), built with MEMPOOL_FORCE so
 * that the pool itself runs even in the sanitizer build (where the daemon passes every call
 * through to calloc/free): zeroed objects, no two live objects overlap, a freed slot is
 * reused, a page that empties goes back (all but the last of a class), sizes above the
 * largest class go to the C heap, and the byte counts return to zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wshub/mempool.h"

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

static size_t slot_of(size_t size) { return (size + MEMPOOL_GRAIN - 1) / MEMPOOL_GRAIN * MEMPOOL_GRAIN; }

static void test_zeroed_and_reused(void **state)
{
    (void)state;
    mempool_t p;
    mempool_init(&p);
    unsigned char *a = mempool_alloc(&p, 100);
    assert_non_null(a);
    for (int i = 0; i < 100; i++)
        assert_int_equal(a[i], 0);
    memset(a, 0xAB, 100);
    assert_int_equal(p.object_bytes, slot_of(100));
    mempool_free(&p, a, 100);
    assert_int_equal(p.object_bytes, 0);
    /* Same class: the slot comes back, zeroed again. */
    unsigned char *b = mempool_alloc(&p, 97);
    assert_ptr_equal(a, b);
    for (int i = 0; i < 112; i++)
        assert_int_equal(b[i], 0);
    mempool_free(&p, b, 97);
    /* Another class: another page. */
    void *c = mempool_alloc(&p, 20);
    assert_true((uintptr_t)c / MEMPOOL_PAGE != (uintptr_t)a / MEMPOOL_PAGE);
    assert_int_equal((uintptr_t)c % MEMPOOL_GRAIN, 0);
    mempool_free(&p, c, 20);
    mempool_destroy(&p);
    assert_int_equal(p.page_bytes, 0);
}

static void test_large_goes_to_heap(void **state)
{
    (void)state;
    mempool_t p;
    mempool_init(&p);
    unsigned char *a = mempool_alloc(&p, MEMPOOL_MAX_OBJECT + 1);
    assert_non_null(a);
    assert_int_equal(p.page_bytes, 0);
    assert_int_equal(a[MEMPOOL_MAX_OBJECT], 0);
    mempool_free(&p, a, MEMPOOL_MAX_OBJECT + 1);
    unsigned char *b = mempool_alloc(&p, MEMPOOL_MAX_OBJECT);
    assert_int_equal(p.page_bytes, MEMPOOL_PAGE);
    mempool_free(&p, b, MEMPOOL_MAX_OBJECT);
    assert_int_equal(p.object_bytes, 0);
    mempool_destroy(&p);
}

typedef struct live {
    unsigned char *ptr;
    size_t size;
    unsigned char tag;
} live_t;

/* Random allocations and frees over every class: each live object keeps its own bytes
 * (nothing else writes over it), and once all are freed only one page per class remains. */
static void test_random_churn(void **state)
{
    (void)state;
    enum { N = 20000 };
    live_t *live = calloc(N, sizeof *live);
    assert_non_null(live);
    mempool_t p;
    mempool_init(&p);
    size_t peak = 0;
    for (int round = 0; round < 200000; round++) {
        live_t *l = &live[rnd() % N];
        if (l->ptr) {
            for (size_t i = 0; i < l->size; i++)
                assert_int_equal(l->ptr[i], l->tag);
            mempool_free(&p, l->ptr, l->size);
            l->ptr = NULL;
        } else {
            l->size = 1 + rnd() % MEMPOOL_MAX_OBJECT;
            l->tag = (unsigned char)(1 + rnd() % 255);
            l->ptr = mempool_alloc(&p, l->size);
            assert_non_null(l->ptr);
            for (size_t i = 0; i < l->size; i++)
                assert_int_equal(l->ptr[i], 0);
            memset(l->ptr, l->tag, l->size);
        }
        if (p.page_bytes > peak)
            peak = p.page_bytes;
    }
    size_t expect = 0;
    for (int i = 0; i < N; i++)
        if (live[i].ptr)
            expect += slot_of(live[i].size);
    assert_int_equal(p.object_bytes, expect);
    for (int i = 0; i < N; i++) {
        if (!live[i].ptr)
            continue;
        for (size_t k = 0; k < live[i].size; k++)
            assert_int_equal(live[i].ptr[k], live[i].tag);
        mempool_free(&p, live[i].ptr, live[i].size);
    }
    assert_int_equal(p.object_bytes, 0);
    assert_true(peak > (size_t)MEMPOOL_CLASSES * MEMPOOL_PAGE);
    assert_true(p.page_bytes <= (size_t)MEMPOOL_CLASSES * MEMPOOL_PAGE);
    mempool_destroy(&p);
    assert_int_equal(p.page_bytes, 0);
    free(live);
}

/* 10,000 connection-sized objects are packed: the pages hold little more than the objects. */
static void test_dense(void **state)
{
    (void)state;
    enum { N = 10000, SIZE = 360 };
    void **v = calloc(N, sizeof *v);
    assert_non_null(v);
    mempool_t p;
    mempool_init(&p);
    for (int i = 0; i < N; i++)
        assert_non_null(v[i] = mempool_alloc(&p, SIZE));
    assert_true(p.page_bytes < (size_t)N * slot_of(SIZE) + 2 * MEMPOOL_PAGE);
    for (int i = 0; i < N; i += 2)
        mempool_free(&p, v[i], SIZE);
    for (int i = 1; i < N; i += 2)
        mempool_free(&p, v[i], SIZE);
    assert_int_equal(p.page_bytes, MEMPOOL_PAGE);
    mempool_destroy(&p);
    free(v);
}

/* One spare empty page per class: a burst that spills into a new page and then empties it
 * (fan-out queue rings, every loop turn) keeps that page instead of mapping it again; a
 * second empty page goes back. */
static void test_spare_page(void **state)
{
    (void)state;
    enum { SIZE = 64 };
    mempool_t p;
    mempool_init(&p);
    size_t per_page = 1; /* objects in the first page so far */
    void *first = mempool_alloc(&p, SIZE);
    /* fill the first page exactly */
    void **v = calloc(4096, sizeof *v);
    assert_non_null(v);
    v[0] = first;
    while ((uintptr_t)(v[per_page] = mempool_alloc(&p, SIZE)) / MEMPOOL_PAGE == (uintptr_t)first / MEMPOOL_PAGE)
        per_page++;
    /* v[per_page] opened a second page */
    assert_int_equal(p.page_bytes, 2 * MEMPOOL_PAGE);
    for (int round = 0; round < 100; round++) {
        mempool_free(&p, v[per_page], SIZE); /* the second page empties: kept as the spare */
        assert_int_equal(p.page_bytes, 2 * MEMPOOL_PAGE);
        void *again = mempool_alloc(&p, SIZE);
        assert_int_equal((uintptr_t)again / MEMPOOL_PAGE, (uintptr_t)v[per_page] / MEMPOOL_PAGE);
        v[per_page] = again;
    }
    /* emptying both pages keeps one of them */
    for (size_t i = 0; i <= per_page; i++)
        mempool_free(&p, v[i], SIZE);
    assert_int_equal(p.page_bytes, MEMPOOL_PAGE);
    assert_int_equal(p.object_bytes, 0);
    mempool_destroy(&p);
    assert_int_equal(p.page_bytes, 0);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroed_and_reused),
        cmocka_unit_test(test_large_goes_to_heap),
        cmocka_unit_test(test_random_churn),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_spare_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
