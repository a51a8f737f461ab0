/* Unit tests of the incremental UTF-8 validator (server/utf8.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "wshub/utf8.h"

static uint32_t all(const char *s, size_t n) { return utf8_validate(UTF8_ACCEPT, (const uint8_t *)s, n); }
#define V(lit) all(lit, sizeof(lit) - 1)

static void test_valid(void **state)
{
    (void)state;
    assert_int_equal(V(""), UTF8_ACCEPT);
    assert_int_equal(V("hello, world"), UTF8_ACCEPT);
    assert_int_equal(V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), UTF8_ACCEPT); /* κόσμε */
    assert_int_equal(V("\xf4\x8f\xbf\xbf"), UTF8_ACCEPT);   /* U+10FFFF */
    assert_int_equal(V("\xef\xbf\xbf"), UTF8_ACCEPT);       /* U+FFFF */
    assert_int_equal(V("\xed\x9f\xbf"), UTF8_ACCEPT);       /* U+D7FF */
    assert_int_equal(V("ascii run longer than eight bytes \xc3\xa9 then more ascii"), UTF8_ACCEPT);
}

static void test_invalid(void **state)
{
    (void)state;
    assert_int_equal(V("\x80"), UTF8_REJECT);                /* lone continuation */
    assert_int_equal(V("\xc0\xaf"), UTF8_REJECT);            /* overlong '/' */
    assert_int_equal(V("\xe0\x80\xaf"), UTF8_REJECT);        /* overlong */
    assert_int_equal(V("\xed\xa0\x80"), UTF8_REJECT);        /* surrogate U+D800 */
    assert_int_equal(V("\xf4\x90\x80\x80"), UTF8_REJECT);    /* above U+10FFFF */
    assert_int_equal(V("\xfe"), UTF8_REJECT);
    assert_int_equal(V("abcdefgh\xff"), UTF8_REJECT);        /* after the fast path */
}

static void test_incomplete_is_neither(void **state)
{
    (void)state;
    uint32_t s = V("\xe2\x82");
    assert_int_not_equal(s, UTF8_ACCEPT);
    assert_int_not_equal(s, UTF8_REJECT);
}

/* Every split point of a multi-byte text gives the same verdict as the whole. */
static void test_resumable(void **state)
{
    (void)state;
    const char text[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80 ok";
    size_t n = sizeof text - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        uint32_t s = utf8_validate(UTF8_ACCEPT, (const uint8_t *)text, cut);
        s = utf8_validate(s, (const uint8_t *)text + cut, n - cut);
        assert_int_equal(s, UTF8_ACCEPT);
    }
    /* Fail fast: the rejection comes at the first invalid byte, before the rest is seen. */
    const char bad[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited";
    uint32_t s = utf8_validate(UTF8_ACCEPT, (const uint8_t *)bad, 12);
    assert_int_not_equal(s, UTF8_REJECT); /* the first 12 bytes are a valid prefix */
    assert_int_equal(utf8_validate(UTF8_ACCEPT, (const uint8_t *)bad, 13), UTF8_REJECT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_incomplete_is_neither),
        cmocka_unit_test(test_resumable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
