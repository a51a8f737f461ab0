/*
 * Unit tests for server/log.c's rate limit (issue 11): white-box (the .c is included) so that
 * the clock of the one-second windows can be set by the test, and the lines go to a temporary
 * file that each test reads back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../server/log.c"

static uint64_t fake_now = 1000;
static uint64_t fake_clock(void) { return fake_now; }

static FILE *out;

static int setup(void **state)
{
    (void)state;
    out = tmpfile();
    if (!out)
        return -1;
    out_fd = fileno(out);
    clock_s = fake_clock;
    fake_now += 10;
    log_set_level(LOG_DEBUG);
    log_set_format(LOG_FORMAT_HUMAN);
    log_set_rate_limit(3);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    out_fd = STDERR_FILENO;
    fclose(out);
    return 0;
}

/* What was logged since setup, NUL-terminated (static buffer). */
static const char *logged(void)
{
    static char buf[1 << 20];
    ssize_t n = pread(fileno(out), buf, sizeof buf - 1, 0);
    assert_true(n >= 0);
    buf[n] = 0;
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_limit_per_reason(void **state)
{
    (void)state;
    uint64_t before = log_suppressed_total();
    for (int i = 0; i < 10; i++)
        log_warn("storm_a", "line %d", i);
    /* A new reason in the same second: its first line is written. */
    log_warn("storm_b", "first of b");
    const char *s = logged();
    assert_int_equal(count(s, " storm_a "), 3);
    assert_non_null(strstr(s, "storm_a line 0\n"));
    assert_non_null(strstr(s, "storm_a line 2\n"));
    assert_null(strstr(s, "storm_a line 3\n"));
    assert_non_null(strstr(s, "warn storm_b first of b\n"));
    assert_int_equal(log_suppressed_total() - before, 7);
}

static void test_next_line_reports_count(void **state)
{
    (void)state;
    for (int i = 0; i < 10; i++)
        log_info("storm_c", "x");
    fake_now++;
    log_info("storm_c", "after");
    log_info("storm_c", "again");
    const char *s = logged();
    assert_non_null(strstr(s, "info storm_c after (7 more suppressed in the last second)\n"));
    assert_non_null(strstr(s, "info storm_c again\n"));
    assert_int_equal(count(s, "suppressed"), 1);
}

static void test_flush_reports_ended_seconds_once(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++)
        log_error("storm_d", "y");
    log_flush_suppressed(); /* the second has not ended: nothing yet */
    assert_int_equal(count(logged(), "storm_d ("), 0);
    fake_now++;
    log_flush_suppressed();
    log_flush_suppressed();
    const char *s = logged();
    assert_non_null(strstr(s, "error storm_d (2 more suppressed in the last second)\n"));
    assert_int_equal(count(s, "storm_d ("), 1);
    /* Reported once: the reason's next line carries no count. */
    log_error("storm_d", "z");
    assert_non_null(strstr(logged(), "error storm_d z\n"));
}

static void test_level_is_part_of_the_reason(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++)
        log_info("storm_e", "i");
    log_warn("storm_e", "w");
    const char *s = logged();
    assert_int_equal(count(s, "info storm_e i"), 3);
    assert_int_equal(count(s, "warn storm_e w"), 1);
}

/* Debug is chosen to see every line (e.g. each connection's conn_open). */
static void test_debug_is_not_limited(void **state)
{
    (void)state;
    uint64_t before = log_suppressed_total();
    for (int i = 0; i < 50; i++)
        log_debug("storm_i", "d");
    assert_int_equal(count(logged(), "debug storm_i d\n"), 50);
    assert_int_equal(log_suppressed_total(), before);
}

static void test_zero_means_unlimited(void **state)
{
    (void)state;
    log_set_rate_limit(0);
    uint64_t before = log_suppressed_total();
    for (int i = 0; i < 50; i++)
        log_warn("storm_f", "n");
    assert_int_equal(count(logged(), "storm_f n\n"), 50);
    assert_int_equal(log_suppressed_total(), before);
}

static void test_json_line_carries_the_count(void **state)
{
    (void)state;
    log_set_format(LOG_FORMAT_JSON);
    for (int i = 0; i < 4; i++)
        log_warn("storm_g", "j");
    fake_now++;
    log_warn("storm_g", "k");
    assert_non_null(strstr(logged(), "\"event\":\"storm_g\",\"msg\":\"k (1 more suppressed in the last second)\"}\n"));
}

#define THREADS 4
#define PER_THREAD 20000
static const char *const own_events[THREADS] = {"own_0", "own_1", "own_2", "own_3"};

static void *hammer(void *arg)
{
    intptr_t t = (intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++)
        log_warn("storm_h", "t%d", (int)t);
    log_warn(own_events[t], "mine");
    return NULL;
}

/* Workers log concurrently: the limit holds exactly, every count adds up, and each thread's
 * own new reason still gets its first line out. */
static void test_threads(void **state)
{
    (void)state;
    uint64_t before = log_suppressed_total();
    pthread_t th[THREADS];
    for (intptr_t t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, hammer, (void *)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    const char *s = logged();
    assert_int_equal(count(s, " storm_h "), 3);
    for (int t = 0; t < THREADS; t++) {
        char want[32];
        snprintf(want, sizeof want, "warn %s mine\n", own_events[t]);
        assert_non_null(strstr(s, want));
    }
    assert_int_equal(log_suppressed_total() - before, THREADS * PER_THREAD - 3);
    fake_now++;
    log_flush_suppressed();
    char want[96];
    snprintf(want, sizeof want, "storm_h (%d more suppressed in the last second)\n", THREADS * PER_THREAD - 3);
    assert_non_null(strstr(logged(), want));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_limit_per_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_line_reports_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_reports_ended_seconds_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_is_part_of_the_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debug_is_not_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_means_unlimited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_line_carries_the_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
