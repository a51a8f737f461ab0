/* Unit tests of prepared frames (server/frame.c): header encodings and reference counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wshub/frame.h"

static void test_small_text(void **state)
{
    (void)state;
    frame_t *f = frame_build(WS_OP_TEXT, "hi", 2);
    assert_non_null(f);
    const uint8_t want[] = {0x81, 0x02, 'h', 'i'};
    assert_int_equal(f->len, sizeof want);
    assert_memory_equal(f->data, want, sizeof want);
    frame_release(&f);
    assert_null(f);
}

static void test_lengths(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 125, 126, 65535, 65536, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint8_t *p = malloc(n ? n : 1);
        memset(p, 'x', n);
        frame_t *f = frame_build(WS_OP_BINARY, p, n);
        assert_non_null(f);
        assert_int_equal(f->data[0], 0x82);
        size_t hl = n < 126 ? 2 : n <= 65535 ? 4 : 10;
        assert_int_equal(f->len, hl + n);
        uint64_t got = 0;
        if (hl == 2) {
            got = f->data[1];
        } else if (hl == 4) {
            assert_int_equal(f->data[1], 126);
            got = ((uint64_t)f->data[2] << 8) | f->data[3];
        } else {
            assert_int_equal(f->data[1], 127);
            for (int k = 0; k < 8; k++)
                got = (got << 8) | f->data[2 + k];
        }
        assert_int_equal(got, n);
        assert_int_equal(f->data[1] & 0x80, 0); /* server frames are never masked */
        frame_release(&f);
        free(p);
    }
}

static void test_refcount(void **state)
{
    (void)state;
    frame_t *f = frame_build(WS_OP_TEXT, "x", 1);
    assert_true(frame_is_private(f));
    frame_t *g = frame_ref(f);
    assert_ptr_equal(f, g);
    assert_false(frame_is_private(f));
    frame_release(&g);
    assert_true(frame_is_private(f));
    frame_release(&f); /* freed here: ASan reports a leak or a double free otherwise */
    frame_release(&f); /* releasing a cleared pointer is a no-op */
}

static void test_append(void **state)
{
    (void)state;
    frame_t *f = frame_new(4);
    assert_int_equal(frame_append(f, "abc", 3), 3);
    assert_int_equal(frame_append(f, "def", 3), 1);
    assert_int_equal(f->len, 4);
    assert_memory_equal(f->data, "abcd", 4);
    frame_release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_text),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_append),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
