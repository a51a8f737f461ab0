/*
 * test_history — the hub's in-memory channel history (server/history.c, issue 17): positions,
 * the size and byte bounds, what "reaches back" means, reads by position and by time; and the
 * version 2 broker payload (a position Redis gave) decoded back into a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "wshub/history.h"
#include "wshub/hub.h"

static hub_msg_t *msg(const char *channel, uint64_t ms)
{
    hub_msg_t *m = hub_msg_new(channel, strlen(channel), "e", "{}", 2);
    assert_non_null(m);
    m->ms = ms;
    return m;
}

static void append(history_t *h, const char *channel, uint64_t ms, int expect)
{
    hub_msg_t *m = msg(channel, ms);
    assert_int_equal(history_append(h, m, ms), expect);
    hub_msg_release(&m);
}

static void test_positions_and_reach(void **state)
{
    (void)state;
    history_t *h = history_new(3, 300, 0);
    uint64_t t = history_now_ms();
    for (int i = 0; i < 5; i++)
        append(h, "a", t + (uint64_t)i, 0);
    history_read_t r;
    hub_pos_t pos = {.offset = 4};
    assert_int_equal(history_read(h, "a", 1, NULL, 0, t, &r), 0);
    assert_int_equal(r.n, 3); /* the newest 3 */
    assert_int_equal(r.msgs[0]->offset, 3);
    assert_int_equal(r.tail.offset, 5);
    memcpy(pos.epoch, r.tail.epoch, sizeof pos.epoch);
    history_read_clear(&r);

    assert_int_equal(history_read(h, "a", 1, &pos, 0, t, &r), 0);
    assert_true(r.reaches);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.msgs[0]->offset, 5);
    history_read_clear(&r);

    pos.offset = 2; /* 3 is the oldest kept: right after 2, it reaches */
    assert_int_equal(history_read(h, "a", 1, &pos, 0, t, &r), 0);
    assert_true(r.reaches);
    assert_int_equal(r.n, 3);
    history_read_clear(&r);

    pos.offset = 1; /* 2 is gone */
    assert_int_equal(history_read(h, "a", 1, &pos, 0, t, &r), 0);
    assert_false(r.reaches);
    assert_int_equal(r.n, 0);

    pos.offset = 4;
    memcpy(pos.epoch, "00000000", 9); /* another epoch never reaches */
    assert_int_equal(history_read(h, "a", 1, &pos, 0, t, &r), 0);
    assert_false(r.reaches);
    assert_int_equal(history_read(h, "zz", 2, &pos, 0, t, &r), 0);
    assert_false(r.reaches);
    assert_int_equal(history_read(h, "zz", 2, NULL, t, t, &r), 0);
    assert_true(r.reaches); /* by time: nothing was published, nothing missed */

    assert_int_equal(history_read(h, "a", 1, NULL, t + 4, t, &r), 0); /* since a time */
    assert_int_equal(r.n, 1);
    history_read_clear(&r);
    history_free(h);
}

static void test_ttl_and_bytes(void **state)
{
    (void)state;
    history_t *h = history_new(10, 1, 0);
    uint64_t t = history_now_ms();
    append(h, "a", t, 0);
    append(h, "a", t + 10, 0);
    history_read_t r;
    assert_int_equal(history_read(h, "a", 1, NULL, 0, t + 1005, &r), 0);
    assert_int_equal(r.n, 1); /* the first is past ttl_s */
    history_read_clear(&r);
    history_free(h);

    hub_msg_t *probe = msg("b", t);
    h = history_new(10, 300, probe->bytes * 2);
    hub_msg_release(&probe);
    for (int i = 0; i < 4; i++)
        append(h, "b", t, 0); /* this channel's oldest go first */
    assert_int_equal(history_read(h, "b", 1, NULL, 0, t, &r), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.msgs[1]->offset, 4);
    history_read_clear(&r);
    history_free(h);
}

static void test_decode_position(void **state)
{
    (void)state;
    const char p[] = "2\nabcdef01\n77\n2026-12-06T12:00:00.123Z\n\"e\"\n{\"a\":1}";
    hub_msg_t *m = hub_msg_decode("c", 1, p, sizeof p - 1);
    assert_non_null(m);
    assert_int_equal(m->offset, 77);
    assert_string_equal(m->epoch, "abcdef01");
    assert_string_equal(m->timestamp, "2026-12-06T12:00:00.123Z");
    assert_string_equal(m->data, "{\"a\":1}");
    hub_msg_release(&m);
    const char *bad[] = {"2\nabc\n1\n2026-12-06T12:00:00.123Z\n\"e\"\n{}", "2\nabcdef01\n0\n2026-12-06T12:00:00.123Z\n\"e\"\n{}",
                         "2\nabcdef01\nx\n2026-12-06T12:00:00.123Z\n\"e\"\n{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(hub_msg_decode("c", 1, bad[i], strlen(bad[i])));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions_and_reach),
        cmocka_unit_test(test_ttl_and_bytes),
        cmocka_unit_test(test_decode_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
