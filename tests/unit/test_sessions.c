/*
 * Unit tests of the in-process session store (server/sessions.c): what is put comes back
 * until it expires, a write replaces, expired entries leave from the front, and past the byte
 * bound the oldest go first while the gauges follow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "wshub/metrics.h"
#include "wshub/sessions.h"

static void expect(const char *sid, const char *want, uint64_t now)
{
    size_t len;
    char *v = sessions_get(sid, &len, now);
    if (!want) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    free(v);
}

static void test_put_get_expire(void **state)
{
    (void)state;
    sessions_free();
    assert_int_equal(sessions_put("a", "one", 3, 10, 1 << 20, 1000), 0);
    assert_int_equal(sessions_put("b", "two", 3, 10, 1 << 20, 2000), 0);
    expect("a", "one", 5000);
    assert_int_equal(sessions_put("a", "uno", 3, 10, 1 << 20, 6000), 0); /* replaced, renewed */
    assert_int_equal(metrics_gauges.sessions, 2);
    expect("a", "uno", 11500);
    expect("b", NULL, 12000); /* b: 2 s + 10 s */
    expect("nope", NULL, 0);
    /* The next write takes the expired ones away (b, then a at 16 s). */
    assert_int_equal(sessions_put("c", "three", 5, 10, 1 << 20, 17000), 0);
    assert_int_equal(metrics_gauges.sessions, 1);
    sessions_free();
    assert_int_equal(metrics_gauges.sessions, 0);
    assert_int_equal(metrics_gauges.session_bytes, 0);
}

static void test_byte_bound(void **state)
{
    (void)state;
    sessions_free();
    char val[200];
    memset(val, 'x', sizeof val);
    size_t max = 1200; /* room for a few entries of ~300 bytes */
    char sid[8];
    for (int i = 0; i < 20; i++) {
        snprintf(sid, sizeof sid, "s%d", i);
        assert_int_equal(sessions_put(sid, val, sizeof val, 60, max, 1000), 0);
        assert_true(metrics_gauges.session_bytes <= max);
    }
    size_t len;
    char *v = sessions_get("s19", &len, 1000);
    assert_non_null(v); /* the newest stays */
    free(v);
    assert_null(sessions_get("s0", &len, 1000)); /* the oldest went */
    assert_int_equal(sessions_put("big", val, sizeof val, 60, 100, 1000), UV_ENOBUFS);
    sessions_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_expire),
        cmocka_unit_test(test_byte_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
