/*
 * Unit tests of server/metrics.c's rendering: the open-connection gauges are differences of
 * two counters read one after the other, and must never wrap below zero (issue 11: under
 * churn, a connection opened and closed between the two reads made them read 1.8e19).
 * And the whole text, byte for byte, against tests/unit/metrics.golden: every counter of two
 * blocks holds a value of its own, so a sample that reads the wrong counter, or a line that
 * changes, fails. WSHUB_UPDATE_GOLDEN=1 rewrites the golden file from the current render.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <cmocka.h>

#include "wshub/metrics.h"

static metrics_t block, block2;

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

/* Fills every counter of m with its own value: large (past 32 bits), and decreasing faster and
 * faster along the struct, so that accepted > closed and each open gauge differs. */
static void fill(metrics_t *m, uint64_t base)
{
    counter_t *c = (counter_t *)m;
    for (size_t i = 0; i < sizeof *m / sizeof *c; i++)
        atomic_store(&c[i], base - (uint64_t)i * 7919 - (uint64_t)i * i * 13);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len == cap && !(buf = realloc(buf, cap = cap * 2 + 4096)))
            break;
        size_t n = fread(buf + *len, 1, cap - *len, f);
        if (n == 0)
            break;
        *len += n;
    }
    fclose(f);
    return buf;
}

static void test_render_matches_golden(void **state)
{
    (void)state;
    fill(&block, 5000000000000ull);
    fill(&block2, 3000000000ull);
    atomic_store(&metrics_gauges.flow_tickets, 11);
    atomic_store(&metrics_gauges.flow_threads, 12);
    atomic_store(&metrics_gauges.flow_history_bytes, 13);
    atomic_store(&metrics_gauges.broker_up, 1);
    atomic_store(&metrics_gauges.broker_reconnects, 14);
    atomic_store(&metrics_gauges.broker_refused, 15);
    atomic_store(&metrics_gauges.broker_pending, 16);
    atomic_store(&metrics_gauges.flow_store_up, 1);
    atomic_store(&metrics_gauges.flow_store_pending, 17);
    atomic_store(&metrics_gauges.flow_store_refused, 18);
    atomic_store(&metrics_http_body_bytes, 14);
    atomic_store(&metrics_ws_inbound_bytes, 15);
    size_t len = 0;
    char *text = metrics_render(&len);
    assert_non_null(text);

    const char *root = getenv("WSHUB_SOURCE_ROOT");
    if (!root)
        fail_msg("WSHUB_SOURCE_ROOT is not set (meson sets it to the project root)");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/unit/metrics.golden", root);
    if (getenv("WSHUB_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
    size_t glen = 0;
    char *golden = read_all(path, &glen);
    if (!golden)
        fail_msg("cannot read %s", path);
    assert_int_equal(len, glen);
    assert_memory_equal(text, golden, len);
    free(golden);
    free(text);
}

int main(void)
{
    metrics_register(&block);
    metrics_register(&block2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gauges_never_wrap),
        cmocka_unit_test(test_render_matches_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
