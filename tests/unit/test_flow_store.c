/*
 * Unit tests of the Flow store (server/dialects/flow/store.h) through its table of
 * operations, on the in-memory implementation (store_mem.c) with a clock of the test's:
 * tickets issued and redeemed once, their expiry and flow.max_tickets, a thread's history
 * in order with its bounds (flow.history_limit, flow.max_history_bytes,
 * flow.max_history_total_bytes), unnoticed entries, and threads that expire unless a socket
 * is on them; the counters and gauges each of these moves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../server/dialects/flow/store.h"

static uint64_t now;
static uint64_t test_clock(void) { return now; }

static config_t cfg;
static metrics_t mt;
static flow_store_t *st;

static int setup(void **state)
{
    (void)state;
    now = 1000000;
    memset(&cfg, 0, sizeof cfg);
    cfg.flow_token_ttl_ms = 60000;
    cfg.flow_max_tickets = 100;
    cfg.flow_history_limit = 100;
    cfg.flow_max_history_bytes = 1 << 20;
    cfg.flow_max_history_total_bytes = 64 << 20;
    cfg.flow_thread_ttl_s = 3600;
    memset(&mt, 0, sizeof mt);
    st = flow_store_mem_new(test_clock);
    return st ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    st->ops->free(st);
    assert_int_equal(atomic_load(&metrics_gauges.flow_tickets), 0);
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 0);
    assert_int_equal(atomic_load(&metrics_gauges.flow_history_bytes), 0);
    return 0;
}

/* store_mem answers inside the call (store.h): the done callbacks below record what came. */
static int got_status;
static flow_ticket_t got_ticket;
static json_t *got_items;
static int calls;

static void on_issued(void *arg, int status)
{
    (void)arg;
    got_status = status;
    calls++;
}

static void on_redeemed(void *arg, int status, flow_ticket_t *t)
{
    (void)arg;
    got_status = status;
    if (t)
        got_ticket = *t;
    calls++;
}

static void on_listed(void *arg, int status, json_t *items)
{
    (void)arg;
    got_status = status;
    got_items = items;
    calls++;
}

static int issue(const char *token, const char *thread)
{
    calls = 0;
    st->ops->issue(st, NULL, token, strlen(token), "client", "session", thread, &cfg, &mt, on_issued, NULL);
    assert_int_equal(calls, 1); /* done ran, once, before issue returned */
    return got_status;
}

static int redeem(const char *token, flow_ticket_t *out)
{
    calls = 0;
    st->ops->redeem(st, NULL, token, strlen(token), on_redeemed, NULL);
    assert_int_equal(calls, 1);
    if (got_status == FLOW_STORE_OK)
        *out = got_ticket;
    return got_status;
}

/* A new JSON array: thread's history (or its unnoticed entries). */
static json_t *history(const char *thread, bool unnoticed)
{
    calls = 0;
    got_items = NULL;
    st->ops->history(st, NULL, thread, unnoticed, on_listed, NULL);
    assert_int_equal(calls, 1);
    assert_int_equal(got_status, FLOW_STORE_OK);
    return got_items;
}

/* {type, payload: {n}, createdAt: 0} into thread's history. */
static void add(const char *thread, const char *type, int n)
{
    json_t *e = json_pack("{s:s, s:{s:i}, s:i}", "type", type, "payload", "n", n, "createdAt", 0);
    st->ops->history_add(st, thread, e, &cfg, &mt);
    json_decref(e);
}

/* The payload.n of thread's history (or its unnoticed entries), as "1,2,3". */
static void assert_history(const char *thread, bool unnoticed, const char *want)
{
    json_t *h = history(thread, unnoticed);
    assert_true(json_is_array(h));
    char got[256] = "";
    size_t i;
    json_t *e;
    json_array_foreach(h, i, e) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof got - l, "%s%lld", i ? "," : "",
                 (long long)json_integer_value(json_object_get(json_object_get(e, "payload"), "n")));
    }
    json_decref(h);
    assert_string_equal(got, want);
}

static void test_issue_redeem_once(void **state)
{
    (void)state;
    flow_ticket_t t = {0};
    assert_int_equal(issue("tok-a", "th-1"), FLOW_STORE_OK);
    assert_int_equal(issue("tok-b", NULL), FLOW_STORE_OK);
    assert_int_equal(atomic_load(&metrics_gauges.flow_tickets), 2);

    assert_int_equal(redeem("tok-a", &t), FLOW_STORE_OK);
    assert_string_equal(t.client_id, "client");
    assert_string_equal(t.session_id, "session");
    assert_string_equal(t.thread_id, "th-1");
    flow_ticket_clear(&t);
    assert_int_equal(atomic_load(&metrics_gauges.flow_tickets), 1);
    /* Single use; unknown tokens and prefixes are not found. */
    assert_int_equal(redeem("tok-a", &t), FLOW_STORE_NOT_FOUND);
    assert_int_equal(redeem("tok-", &t), FLOW_STORE_NOT_FOUND);
    assert_int_equal(redeem("nope", &t), FLOW_STORE_NOT_FOUND);
    assert_null(t.client_id);

    assert_int_equal(redeem("tok-b", &t), FLOW_STORE_OK);
    assert_null(t.thread_id);
    flow_ticket_clear(&t);
    assert_int_equal(atomic_load(&metrics_gauges.flow_tickets), 0);
}

static void test_ticket_expiry(void **state)
{
    (void)state;
    flow_ticket_t t = {0};
    assert_int_equal(issue("old", NULL), FLOW_STORE_OK);
    now += 30000;
    assert_int_equal(issue("young", NULL), FLOW_STORE_OK);
    now += 30000; /* old: exactly its TTL, expired */
    assert_int_equal(redeem("old", &t), FLOW_STORE_NOT_FOUND);
    /* Redeemed too late: gone, but that is not an expiry the sweep counted. */
    assert_int_equal(atomic_load(&mt.flow_tickets_expired), 0);
    assert_int_equal(atomic_load(&metrics_gauges.flow_tickets), 1);
    now += 29999;
    st->ops->sweep(st, &cfg, &mt);
    assert_int_equal(atomic_load(&metrics_gauges.flow_tickets), 1);
    now += 1;
    st->ops->sweep(st, &cfg, &mt);
    assert_int_equal(atomic_load(&mt.flow_tickets_expired), 1);
    assert_int_equal(atomic_load(&metrics_gauges.flow_tickets), 0);
    assert_int_equal(redeem("young", &t), FLOW_STORE_NOT_FOUND);
}

static void test_max_tickets(void **state)
{
    (void)state;
    flow_ticket_t t = {0};
    cfg.flow_max_tickets = 2;
    assert_int_equal(issue("t1", NULL), FLOW_STORE_OK);
    now += 10;
    assert_int_equal(issue("t2", NULL), FLOW_STORE_OK);
    assert_int_equal(issue("t3", NULL), FLOW_STORE_FULL);
    assert_int_equal(redeem("t3", &t), FLOW_STORE_NOT_FOUND);
    assert_int_equal(atomic_load(&metrics_gauges.flow_tickets), 2);
    /* A redeemed ticket makes room. */
    assert_int_equal(redeem("t1", &t), FLOW_STORE_OK);
    flow_ticket_clear(&t);
    now += 10;
    assert_int_equal(issue("t4", NULL), FLOW_STORE_OK);
    assert_int_equal(issue("t5", NULL), FLOW_STORE_FULL);
    /* So do expired ones: issue frees them first (in the order they were issued) and counts
     * them. t2 expires now, t4 10 ms later. */
    now += cfg.flow_token_ttl_ms - 10;
    assert_int_equal(issue("t6", NULL), FLOW_STORE_OK);
    assert_int_equal(atomic_load(&mt.flow_tickets_expired), 1);
    assert_int_equal(issue("t7", NULL), FLOW_STORE_FULL);
    now += 10;
    assert_int_equal(issue("t7", NULL), FLOW_STORE_OK);
    assert_int_equal(atomic_load(&mt.flow_tickets_expired), 2);
    assert_int_equal(atomic_load(&metrics_gauges.flow_tickets), 2);
    assert_int_equal(atomic_load(&mt.flow_ticket_refusals), 0); /* the caller's to count */
    assert_int_equal(redeem("t6", &t), FLOW_STORE_OK);
    flow_ticket_clear(&t);
}

static void test_history_order_and_unnoticed(void **state)
{
    (void)state;
    assert_history("th", false, "");
    add("th", "message.send", 1);
    add("th", "message.received", 2);
    add("other", "message.received", 9);
    add("th", "message.send", 3);
    add("th", "message.received", 4);
    assert_history("th", false, "1,2,3,4");
    assert_history("th", true, "2,4");
    assert_history("other", false, "9");
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 2);

    st->ops->noticed(st, "th");
    assert_history("th", true, "");
    add("th", "message.received", 5);
    assert_history("th", true, "5");
    st->ops->noticed(st, "unknown"); /* nothing to mark, nothing made */
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 2);

    /* The entry is kept as its JSON: byte for byte, whatever the caller does afterwards. */
    json_t *h = history("other", false);
    json_t *e = json_array_get(h, 0);
    assert_string_equal(json_string_value(json_object_get(e, "type")), "message.received");
    assert_int_equal(json_integer_value(json_object_get(e, "createdAt")), 0);
    json_decref(h);
}

static void test_history_limit(void **state)
{
    (void)state;
    cfg.flow_history_limit = 3;
    add("th", "message.received", 1);
    add("th", "message.send", 2);
    add("th", "message.received", 3);
    st->ops->noticed(st, "th");
    add("th", "message.received", 4);
    add("th", "message.received", 5);
    assert_history("th", false, "3,4,5");
    /* The noticed mark moved with the dropped entries. */
    assert_history("th", true, "4,5");
    /* Dropping past flow.history_limit is the limit doing its job, not a counted drop. */
    for (int r = 0; r < FLOW_DROP_COUNT; r++)
        assert_int_equal(atomic_load(&mt.flow_history_dropped[r]), 0);

    cfg.flow_history_limit = 0; /* no history at all */
    add("new", "message.received", 1);
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 1);
}

/* The bytes one entry {type, payload:{n}, createdAt:0} counts for, read from the gauge. */
static size_t one_entry_bytes(void)
{
    add("probe", "message.send", 1);
    size_t b = atomic_load(&metrics_gauges.flow_history_bytes);
    cfg.flow_thread_ttl_s = 0;
    st->ops->sweep(st, &cfg, &mt); /* forgets "probe" */
    cfg.flow_thread_ttl_s = 3600;
    assert_int_equal(atomic_load(&metrics_gauges.flow_history_bytes), 0);
    memset(&mt, 0, sizeof mt);
    return b;
}

static void test_history_byte_bounds(void **state)
{
    (void)state;
    size_t b = one_entry_bytes();
    assert_true(b > 0);
    /* Per thread: two entries fit, the third drops the oldest. */
    cfg.flow_max_history_bytes = 2 * b;
    add("a", "message.send", 1);
    add("a", "message.send", 2);
    add("a", "message.send", 3);
    assert_history("a", false, "2,3");
    assert_int_equal(atomic_load(&mt.flow_history_dropped[FLOW_DROP_THREAD_BYTES]), 1);
    assert_int_equal(atomic_load(&metrics_gauges.flow_history_bytes), 2 * b);

    /* In all: the least recently active thread loses its oldest entries first, and is
     * forgotten once empty (no socket on it). */
    cfg.flow_max_history_bytes = 1 << 20;
    cfg.flow_max_history_total_bytes = 3 * b;
    now += 1;
    add("b", "message.send", 1);
    assert_int_equal(atomic_load(&metrics_gauges.flow_history_bytes), 3 * b);
    now += 1;
    add("b", "message.send", 2);
    assert_history("a", false, "3");
    assert_history("b", false, "1,2");
    now += 1;
    add("b", "message.send", 3);
    assert_history("a", false, "");
    assert_history("b", false, "1,2,3");
    assert_int_equal(atomic_load(&mt.flow_history_dropped[FLOW_DROP_TOTAL_BYTES]), 2);
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 1);
    assert_int_equal(atomic_load(&metrics_gauges.flow_history_bytes), 3 * b);
}

static void test_thread_expiry_and_sockets(void **state)
{
    (void)state;
    cfg.flow_thread_ttl_s = 10;
    add("quiet", "message.send", 1);
    assert_int_equal(st->ops->join(st, "busy", &cfg, &mt), FLOW_STORE_OK);
    add("busy", "message.send", 1);
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 2);

    now += 9999;
    st->ops->sweep(st, &cfg, &mt);
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 2);
    now += 1;
    st->ops->sweep(st, &cfg, &mt);
    /* quiet expired; busy has a socket on it, however quiet. */
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 1);
    assert_int_equal(atomic_load(&mt.flow_history_dropped[FLOW_DROP_EXPIRED]), 1);
    assert_history("quiet", false, "");
    now += 100000;
    st->ops->sweep(st, &cfg, &mt);
    assert_history("busy", false, "1");

    /* Leaving is activity: the thread lives one more TTL, then goes. */
    st->ops->leave(st, "busy", &cfg);
    now += 9999;
    st->ops->sweep(st, &cfg, &mt);
    assert_history("busy", false, "1");
    now += 1;
    st->ops->sweep(st, &cfg, &mt);
    assert_history("busy", false, "");
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 0);
    assert_int_equal(atomic_load(&mt.flow_history_dropped[FLOW_DROP_EXPIRED]), 2);
}

static void test_socket_keeps_empty_thread(void **state)
{
    (void)state;
    /* An entry over flow.max_history_bytes alone leaves nothing: the thread is forgotten,
     * unless a socket is on it. */
    cfg.flow_max_history_bytes = 1;
    add("solo", "message.send", 1);
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 0);
    assert_int_equal(st->ops->join(st, "joined", &cfg, &mt), FLOW_STORE_OK);
    add("joined", "message.send", 1);
    assert_int_equal(atomic_load(&metrics_gauges.flow_threads), 1);
    assert_history("joined", false, "");
    st->ops->leave(st, "joined", &cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_issue_redeem_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticket_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_tickets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_order_and_unnoticed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_byte_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_expiry_and_sockets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_keeps_empty_thread, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
