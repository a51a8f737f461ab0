/*
 * Unit tests of server/metrics.c's rendering: the open-connection gauges are differences of
 * two counters read one after the other, and must never wrap below zero (issue 11: under
 * churn, a connection opened and closed between the two reads made them read 1.8e19).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wshub/metrics.h"

static metrics_t block;

/* The value of one sample line "name value" in the rendered text. */
static unsigned long long sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)); p += n) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtoull(p + n + 1, NULL, 10);
    }
    fail_msg("no sample %s", name);
    return 0;
}

static void test_gauges_never_wrap(void **state)
{
    (void)state;
    /* What two reads can see: the closes of a connection counted, its accept not yet. */
    atomic_store(&block.tcp_accepted, 5);
    atomic_store(&block.tcp_closed, 6);
    atomic_store(&block.conns_opened[EP_ECHO], 3);
    atomic_store(&block.conns_closed[EP_ECHO], 4);
    size_t len = 0;
    char *text = metrics_render(&len);
    assert_non_null(text);
    assert_int_equal(sample(text, "wshub_tcp_connections_open"), 0);
    assert_int_equal(sample(text, "wshub_connections_open{endpoint=\"echo\"}"), 0);
    free(text);

    atomic_store(&block.tcp_accepted, 9);
    atomic_store(&block.conns_opened[EP_ECHO], 7);
    text = metrics_render(&len);
    assert_int_equal(sample(text, "wshub_tcp_connections_open"), 3);
    assert_int_equal(sample(text, "wshub_connections_open{endpoint=\"echo\"}"), 3);
    free(text);
}

int main(void)
{
    metrics_register(&block);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gauges_never_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
