/*
 * Unit tests of the hub (server/hub.c): subscriptions on two hub_locals, the delivery count,
 * one shared frame per message and envelope across locals, publish order, routing from
 * outside any worker, unsubscribe, envelope slots, and references that reach zero (ASan/LSan
 * report a leak otherwise).
 * The hub's two collaborators are its hub_local_ops_t: deliver records what it was given,
 * wake counts wake-ups (no event loop needed: a test drains a local itself, as its thread
 * would on the wake-up). hub.c is included (white-box) with its calloc counted, so that a
 * test can make one allocation fail (issue 11: a subscription the registry could not count
 * never received).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wshub/hub.h"

/* hub.c's calloc: fails the allocation numbered calloc_fail_at (0 = the next), never when -1. */
static int calloc_fail_at = -1;
static void *counted_calloc(size_t n, size_t size)
{
    if (calloc_fail_at >= 0 && calloc_fail_at-- == 0)
        return NULL;
    return calloc(n, size);
}
#define calloc counted_calloc
#include "../../server/hub.c"
#undef calloc

/* ------------------------------------------------------------------ collaborators */

typedef struct sent {
    void *s;
    frame_t *f; /* a reference held by the record, as a connection's queue would */
} sent_t;
static sent_t sent[4096];
static size_t nsent;

static int deliver(void *subscriber, frame_t *f, const hub_msg_t *m)
{
    (void)m;
    assert_true(nsent < sizeof sent / sizeof sent[0]);
    sent[nsent].s = subscriber;
    sent[nsent].f = frame_ref(f);
    nsent++;
    return 0;
}

static int woken[2];
static void wake(void *arg) { (*(int *)arg)++; }

/* What subscribed was told: which subscription, with which status. */
static struct {
    hub_sub_t *sub;
    int status;
} told[16];
static size_t ntold;
static bool unsubscribe_when_told; /* the callback unsubscribes (a dialect after a refusal) */
static hub_local_t *told_local;
static void subscribed(void *subscriber, hub_sub_t *sub, int status)
{
    (void)subscriber;
    assert_true(ntold < 16);
    told[ntold].sub = sub;
    told[ntold++].status = status;
    if (unsubscribe_when_told)
        hub_unsubscribe(told_local, sub);
}
static const hub_local_ops_t ops = {.deliver = deliver, .wake = wake, .subscribed = subscribed};

static void clear_sent(void)
{
    for (size_t i = 0; i < nsent; i++)
        frame_release(&sent[i].f);
    nsent = 0;
}

static int builds;
static frame_t *build(const hub_msg_t *m)
{
    builds++;
    char text[512];
    int n = snprintf(text, sizeof text, "%s|%s|%s", m->channel, m->event, m->data);
    return frame_build(WS_OP_TEXT, text, (size_t)n);
}
static const hub_envelope_t env = {.build = build};

static frame_t *build_upper(const hub_msg_t *m)
{
    (void)m;
    builds++;
    return frame_build(WS_OP_TEXT, "UPPER", 5);
}
static const hub_envelope_t env2 = {.build = build_upper};

/* Fake subscribers: only their addresses matter to the hub. */
static char subscribers[8];
#define S(i) ((void *)&subscribers[i])

/* ------------------------------------------------------------------ fixture */

static hub_t *hub;
static hub_local_t *locals[2];
static mempool_t mem[2];
static metrics_t metrics[2];

static int setup(void **state)
{
    (void)state;
    hub = hub_new(2, 0);
    assert_non_null(hub);
    for (int i = 0; i < 2; i++) {
        mempool_init(&mem[i]);
        memset(&metrics[i], 0, sizeof metrics[i]);
        woken[i] = 0;
        locals[i] = hub_local_new(hub, i, &ops, &woken[i], &mem[i], &metrics[i]);
        assert_non_null(locals[i]);
    }
    builds = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clear_sent();
    for (int i = 0; i < 2; i++) {
        hub_local_close(locals[i]);
        hub_local_free(locals[i]);
        /* Every subscription was given back: nothing of the pool is still handed out. */
        assert_int_equal(mem[i].object_bytes, 0);
        mempool_destroy(&mem[i]);
    }
    hub_free(hub);
    return 0;
}

/* Lets local i handle its wake-up, as its thread would. */
static void run(int i)
{
    woken[i] = 0;
    hub_drain(locals[i]);
}

static size_t publish(int from, const char *ch, const char *data)
{
    size_t delivered = 99;
    assert_int_equal(hub_publish(locals[from], ch, strlen(ch), "ev", data, strlen(data), &delivered), 0);
    return delivered;
}

static size_t count_for(void *s)
{
    size_t n = 0;
    for (size_t i = 0; i < nsent; i++)
        n += sent[i].s == s;
    return n;
}

static void assert_text(size_t i, const char *want)
{
    size_t n = strlen(want);
    assert_int_equal(sent[i].f->len, 2 + n);
    assert_memory_equal(sent[i].f->data + 2, want, n);
}

/* ------------------------------------------------------------------ tests */

static void test_no_subscribers(void **state)
{
    (void)state;
    assert_int_equal(publish(0, "c:none", "{}"), 0);
    assert_int_equal(nsent, 0);
    assert_int_equal(builds, 0); /* nothing is serialized for nobody */
}

static void test_fanout_shares_one_frame(void **state)
{
    (void)state;
    hub_sub_t *a = hub_subscribe(locals[0], "c:1", 3, S(0), &env, NULL, NULL);
    hub_sub_t *b = hub_subscribe(locals[0], "c:1", 3, S(1), &env, NULL, NULL);
    hub_sub_t *c = hub_subscribe(locals[1], "c:1", 3, S(2), &env, NULL, NULL);
    assert_int_equal(hub_count(hub, "c:1", 3), 3);

    assert_int_equal(publish(0, "c:1", "{\"n\":1}"), 3);
    assert_int_equal(nsent, 2); /* local subscribers at once */
    assert_int_equal(woken[0], 0);
    assert_int_equal(woken[1], 1); /* the other one is woken for its mailbox */
    run(1);                    /* the other worker's batch */
    assert_int_equal(nsent, 3);
    assert_int_equal(metrics[0].publishes, 1);
    assert_int_equal(metrics[0].deliveries, 2);
    assert_int_equal(metrics[1].deliveries, 1);
    assert_int_equal(builds, 1);
    assert_ptr_equal(sent[0].f, sent[1].f);
    assert_ptr_equal(sent[0].f, sent[2].f); /* the same bytes on both workers */
    const char want[] = "c:1|ev|{\"n\":1}";
    assert_int_equal(sent[0].f->len, 2 + sizeof want - 1);
    assert_memory_equal(sent[0].f->data + 2, want, sizeof want - 1);

    hub_unsubscribe(locals[0], b);
    assert_int_equal(hub_count(hub, "c:1", 3), 2);
    clear_sent();
    assert_int_equal(publish(1, "c:1", "{}"), 2);
    run(0);
    assert_int_equal(count_for(S(0)), 1);
    assert_int_equal(count_for(S(1)), 0); /* nothing after unsubscribe */
    assert_int_equal(count_for(S(2)), 1);

    hub_unsubscribe(locals[0], a);
    hub_unsubscribe(locals[1], c);
    assert_int_equal(hub_count(hub, "c:1", 3), 0);
    clear_sent();
    assert_int_equal(publish(0, "c:1", "{}"), 0);
    run(1);
    assert_int_equal(nsent, 0);
}

/* Publishes alternate between workers; the subscriber on worker 0 sees them in order,
 * although worker 0 has not run its loop in between (hub_publish drains first). */
static void test_order_across_workers(void **state)
{
    (void)state;
    hub_sub_t *a = hub_subscribe(locals[0], "c:order", 7, S(0), &env, NULL, NULL);
    char data[32];
    for (int i = 0; i < 10; i++) {
        snprintf(data, sizeof data, "{\"seq\":%d}", i);
        assert_int_equal(publish(i % 2, "c:order", data), 1);
    }
    run(0);
    assert_int_equal(nsent, 10);
    for (int i = 0; i < 10; i++) {
        char want[64];
        int n = snprintf(want, sizeof want, "c:order|ev|{\"seq\":%d}", i);
        assert_int_equal(sent[i].f->len, 2 + (uint32_t)n);
        assert_memory_equal(sent[i].f->data + 2, want, (size_t)n);
    }
    hub_unsubscribe(locals[0], a);
}

/* Mailbox messages for a worker that never runs again are released with it. */
static void test_undelivered_are_released(void **state)
{
    (void)state;
    hub_sub_t *a = hub_subscribe(locals[1], "c:x", 3, S(3), &env, NULL, NULL);
    assert_int_equal(publish(0, "c:x", "{}"), 1);
    hub_unsubscribe(locals[1], a);
    /* teardown frees worker 1's mailbox without running it: LSan checks the message is freed */
}

static void test_many_channels(void **state)
{
    (void)state;
    hub_sub_t *subs[300];
    char ch[32];
    for (int i = 0; i < 300; i++) {
        int n = snprintf(ch, sizeof ch, "k:%d", i);
        subs[i] = hub_subscribe(locals[i % 2], ch, (size_t)n, S(i % 8), &env, NULL, NULL);
        assert_non_null(subs[i]);
    }
    for (int i = 0; i < 300; i++) {
        int n = snprintf(ch, sizeof ch, "k:%d", i);
        assert_int_equal(hub_count(hub, ch, (size_t)n), 1);
        size_t len;
        const char *name = hub_sub_channel(subs[i], &len);
        assert_int_equal(len, (size_t)n);
        assert_memory_equal(name, ch, len);
    }
    for (int i = 0; i < 300; i++)
        hub_unsubscribe(locals[i % 2], subs[i]);
    assert_int_equal(hub_count(hub, "k:7", 3), 0);
}

/* An allocation failure, in the worker's channel map or in the process-wide registry, fails
 * the subscribe (so the dialect can answer its error) and leaves nothing behind. */
static void test_subscribe_reports_allocation_failure(void **state)
{
    (void)state;
    for (int at = 0; at < 2; at++) { /* 0: the local channel; 1: the registry entry */
        calloc_fail_at = at;
        assert_null(hub_subscribe(locals[0], "c:oom", 5, S(0), &env, NULL, NULL));
        calloc_fail_at = -1;
        assert_int_equal(hub_count(hub, "c:oom", 5), 0);
        assert_null(strmap_find(&locals[0]->chans, "c:oom", 5));
    }
    /* Once memory is back, the same subscribe works and receives. */
    hub_sub_t *a = hub_subscribe(locals[0], "c:oom", 5, S(0), &env, NULL, NULL);
    assert_non_null(a);
    assert_int_equal(publish(1, "c:oom", "{}"), 1);
    run(0);
    assert_int_equal(count_for(S(0)), 1);
    hub_unsubscribe(locals[0], a);
}

/* A message from outside any worker (a broker's thread) is posted to every mailbox that needs
 * it, none delivered on the calling thread; it shares one frame, and keeps its place in order
 * with the workers' own publishes. */
static void test_route_from_outside(void **state)
{
    (void)state;
    hub_sub_t *a = hub_subscribe(locals[0], "c:ext", 5, S(0), &env, NULL, NULL);
    hub_sub_t *b = hub_subscribe(locals[1], "c:ext", 5, S(1), &env, NULL, NULL);
    hub_sub_t *c = hub_subscribe(locals[1], "c:ext", 5, S(2), &env, NULL, NULL);

    hub_msg_t *m = hub_msg_new("c:ext", 5, "ev", "{\"n\":1}", 7);
    assert_non_null(m);
    assert_int_equal(hub_route(hub, NULL, m), 3);
    hub_msg_release(&m);
    assert_null(m);
    assert_int_equal(nsent, 0);
    assert_int_equal(woken[0], 1);
    assert_int_equal(woken[1], 1);
    /* Worker 0 publishes next, before it has run: the outside message goes out first. */
    assert_int_equal(publish(0, "c:ext", "{\"n\":2}"), 3);
    assert_int_equal(nsent, 2);
    assert_text(0, "c:ext|ev|{\"n\":1}");
    assert_text(1, "c:ext|ev|{\"n\":2}");
    run(1);
    assert_int_equal(nsent, 6);
    assert_int_equal(count_for(S(1)), 2);
    assert_int_equal(count_for(S(2)), 2);
    assert_text(2, "c:ext|ev|{\"n\":1}");
    assert_text(4, "c:ext|ev|{\"n\":2}");
    assert_ptr_equal(sent[0].f, sent[2].f); /* one frame per message, whoever routed it */
    assert_int_equal(builds, 2);
    assert_int_equal(metrics[0].publishes, 1); /* routing is not a publish of a worker */

    /* No subscriber: nothing posted, nobody woken. */
    clear_sent();
    woken[0] = woken[1] = 0;
    m = hub_msg_new("c:nobody", 8, "ev", "{}", 2);
    assert_int_equal(hub_route(hub, NULL, m), 0);
    hub_msg_release(&m);
    assert_int_equal(woken[0] + woken[1], 0);

    hub_unsubscribe(locals[0], a);
    hub_unsubscribe(locals[1], b);
    hub_unsubscribe(locals[1], c);
}

/* A local that was closed is neither posted to nor woken; the others still are. */
static void test_closed_local_is_not_woken(void **state)
{
    (void)state;
    hub_sub_t *a = hub_subscribe(locals[1], "c:z", 3, S(0), &env, NULL, NULL);
    hub_local_close(locals[1]);
    assert_int_equal(publish(0, "c:z", "{}"), 1);
    assert_int_equal(woken[1], 0);
    run(1);
    assert_int_equal(nsent, 0);
    hub_unsubscribe(locals[1], a);
}

/* Each envelope gets its own slot: one frame per message and envelope, each shared. */
static void test_envelopes_have_their_own_frames(void **state)
{
    (void)state;
    hub_sub_t *subs[4] = {
        hub_subscribe(locals[0], "c:e", 3, S(0), &env, NULL, NULL),
        hub_subscribe(locals[0], "c:e", 3, S(1), &env2, NULL, NULL),
        hub_subscribe(locals[1], "c:e", 3, S(2), &env2, NULL, NULL),
        hub_subscribe(locals[1], "c:e", 3, S(3), &env, NULL, NULL),
    };
    assert_int_equal(publish(0, "c:e", "{}"), 4);
    run(1);
    assert_int_equal(nsent, 4);
    assert_int_equal(builds, 2);
    assert_text(0, "c:e|ev|{}");
    assert_text(1, "UPPER");
    assert_ptr_equal(sent[1].f, sent[2].f);
    assert_ptr_equal(sent[0].f, sent[3].f);
    for (int i = 0; i < 4; i++)
        hub_unsubscribe(locals[i / 2], subs[i]);
}

/* At most HUB_ENVELOPES envelopes: one more is refused at subscribe, the others still work.
 * Envelope slots are process-wide and never given back: this test runs last. */
static void test_envelope_slots_run_out(void **state)
{
    (void)state;
    hub_envelope_t more[HUB_ENVELOPES];
    int taken = 0;
    for (int i = 0; i < HUB_ENVELOPES; i++) {
        more[i] = (hub_envelope_t){.build = build};
        hub_sub_t *sub = hub_subscribe(locals[0], "c:s", 3, S(0), &more[i], NULL, NULL);
        if (!sub)
            break;
        taken++;
        hub_unsubscribe(locals[0], sub);
    }
    assert_true(taken < HUB_ENVELOPES); /* env and env2 hold two slots already */
    assert_int_equal(hub_count(hub, "c:s", 3), 0);
    hub_sub_t *a = hub_subscribe(locals[0], "c:s", 3, S(0), &env, NULL, NULL);
    assert_non_null(a);
    assert_int_equal(publish(0, "c:s", "{}"), 1);
    assert_int_equal(nsent, 1);
    hub_unsubscribe(locals[0], a);
}

/* A message between nodes ("1\n<timestamp>\n<event JSON string>\n<data>") comes back whole,
 * with the publisher's timestamp; anything else that reaches the prefix's channels in Redis
 * is refused, never half-read (issue 13: the payload is input from outside the process). */
/* ------------------------------------------------------------------ a fake broker */

static struct {
    char channel[32];
    uint64_t gen; /* 0: an unsubscribe */
} asked[16];
static size_t nasked;
static void fb_subscription(const char *channel, size_t clen, uint64_t gen)
{
    assert_true(nasked < 16 && clen < 32);
    memcpy(asked[nasked].channel, channel, clen);
    asked[nasked].channel[clen] = 0;
    asked[nasked++].gen = gen;
}
static void fb_subscribe(broker_t *b, const char *channel, size_t clen, uint64_t gen)
{
    (void)b;
    assert_true(gen > 0);
    fb_subscription(channel, clen, gen);
}
static void fb_unsubscribe(broker_t *b, const char *channel, size_t clen)
{
    (void)b;
    fb_subscription(channel, clen, 0);
}
static const broker_impl_t fake_impl = {.name = "fake", .subscribe = fb_subscribe, .unsubscribe = fb_unsubscribe};
static broker_t fake_broker = {.impl = &fake_impl};

/* With a broker, a subscription holds once the broker confirmed its channel's subscribe (the
 * latest one: the answer to a subscribe undone since is not enough), is refused while the
 * link is down, and a pending one is told when the link goes down. */
static void test_broker_confirms_subscriptions(void **state)
{
    (void)state;
    nasked = ntold = 0;
    unsubscribe_when_told = false;
    hub_set_broker(hub, &fake_broker);
    int err = 0;
    assert_null(hub_subscribe(locals[0], "c:b", 3, S(0), &env, NULL, &err));
    assert_int_equal(err, UV_ECONNREFUSED); /* the link is not up yet */
    assert_int_equal(nasked, 0);
    hub_on_broker_link(hub, true);

    hub_sub_t *a = hub_subscribe(locals[0], "c:b", 3, S(0), &env, NULL, &err);
    hub_sub_t *b = hub_subscribe(locals[1], "c:b", 3, S(1), &env, NULL, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(hub_sub_pending(a) && hub_sub_pending(b));
    assert_int_equal(nasked, 1); /* one subscribe for the process */
    uint64_t g1 = asked[0].gen;
    /* Nothing reaches a pending subscription. */
    hub_msg_t *m = hub_msg_new("c:b", 3, "ev", "{}", 2);
    hub_route(hub, NULL, m);
    hub_msg_release(&m);
    run(0);
    run(1);
    assert_int_equal(nsent, 0);

    /* Both go; then the channel is subscribed again: the old answer confirms nothing. */
    hub_unsubscribe(locals[0], a);
    hub_unsubscribe(locals[1], b);
    assert_int_equal(nasked, 2);
    assert_int_equal(asked[1].gen, 0);
    a = hub_subscribe(locals[0], "c:b", 3, S(0), &env, NULL, &err);
    assert_non_null(a);
    assert_int_equal(nasked, 3);
    uint64_t g2 = asked[2].gen;
    assert_true(g2 != g1);
    hub_on_broker_subscribed(hub, "c:b", 3, g1);
    run(0);
    assert_int_equal(ntold, 0);
    assert_true(hub_sub_pending(a));
    hub_on_broker_subscribed(hub, "c:b", 3, g2);
    run(0);
    assert_int_equal(ntold, 1);
    assert_ptr_equal(told[0].sub, a);
    assert_int_equal(told[0].status, 0);
    assert_false(hub_sub_pending(a));
    /* A confirmed channel: the next subscription holds at once, and messages reach both. */
    b = hub_subscribe(locals[1], "c:b", 3, S(1), &env, NULL, &err);
    assert_false(hub_sub_pending(b));
    m = hub_msg_new("c:b", 3, "ev", "{\"n\":1}", 7);
    assert_int_equal(hub_route(hub, NULL, m), 2);
    hub_msg_release(&m);
    run(0);
    run(1);
    assert_int_equal(nsent, 2);

    /* The link goes down: confirmed ones stay, new ones are refused; once up again a new
     * subscriber waits for the channel's confirmation, and is refused if the link drops first
     * (its dialect unsubscribes it from the callback). */
    hub_on_broker_link(hub, false);
    assert_null(hub_subscribe(locals[1], "c:b", 3, S(2), &env, NULL, &err));
    assert_int_equal(err, UV_ECONNREFUSED);
    hub_on_broker_link(hub, true);
    hub_sub_t *c = hub_subscribe(locals[1], "c:b", 3, S(2), &env, NULL, &err);
    assert_true(hub_sub_pending(c));
    unsubscribe_when_told = true;
    told_local = locals[1];
    hub_on_broker_link(hub, false);
    run(1);
    assert_int_equal(ntold, 2);
    assert_ptr_equal(told[1].sub, c);
    assert_int_equal(told[1].status, UV_ECONNREFUSED);
    assert_int_equal(hub_count(hub, "c:b", 3), 2);
    hub_unsubscribe(locals[0], a);
    hub_unsubscribe(locals[1], b);
    hub_set_broker(hub, NULL);
}

/* A mailbox holds at most the hub's max_mailbox bytes: past it that worker's share of a
 * message is dropped and counted; once drained it takes messages again. */
static void test_mailbox_bound(void **state)
{
    (void)state;
    hub_t *h = hub_new(2, 2048);
    mempool_t pool;
    mempool_init(&pool);
    metrics_t mt = {0};
    int w = 0;
    hub_local_t *l = hub_local_new(h, 1, &ops, &w, &pool, &mt);
    hub_sub_t *a = hub_subscribe(l, "c:m", 3, S(0), &env, NULL, NULL);
    assert_non_null(a);
    uint64_t dropped0 = metrics_gauges.mailbox_dropped;
    char data[300];
    memset(data, ' ', sizeof data);
    data[0] = '{';
    data[sizeof data - 1] = '}';
    size_t posted = 0;
    for (int i = 0; i < 20; i++) {
        hub_msg_t *m = hub_msg_new("c:m", 3, "ev", data, sizeof data);
        hub_route(h, NULL, m);
        posted += m->bytes;
        hub_msg_release(&m);
    }
    uint64_t dropped = metrics_gauges.mailbox_dropped - dropped0;
    assert_true(dropped > 0 && dropped < 20);
    assert_true(metrics_gauges.mailbox_bytes <= 2048);
    hub_drain(l);
    assert_int_equal(nsent, 20 - dropped);
    assert_int_equal(metrics_gauges.mailbox_bytes, 0);
    hub_msg_t *m = hub_msg_new("c:m", 3, "ev", data, sizeof data);
    hub_route(h, NULL, m);
    hub_msg_release(&m);
    hub_drain(l);
    assert_int_equal(nsent, 21 - dropped);
    assert_int_equal(metrics_gauges.mailbox_dropped - dropped0, dropped);
    clear_sent();
    hub_unsubscribe(l, a);
    hub_local_close(l);
    hub_local_free(l);
    mempool_destroy(&pool);
    hub_free(h);
    (void)posted;
}

static void test_broker_payload(void **state)
{
    (void)state;
    static const char good[] = "1\n2026-12-06T12:00:00.123Z\n\"chat_message\"\n{\"a\":1}";
    hub_msg_t *m = hub_msg_decode("room", 4, good, sizeof good - 1);
    assert_non_null(m);
    assert_string_equal(m->channel, "room");
    assert_string_equal(m->event, "chat_message");
    assert_string_equal(m->event_json, "\"chat_message\"");
    assert_int_equal(m->data_len, 7);
    assert_memory_equal(m->data, "{\"a\":1}", 7);
    assert_string_equal(m->timestamp, "2026-12-06T12:00:00.123Z");
    hub_msg_release(&m);

    static const char *const bad[] = {
        "",
        "1",
        "2\n2026-12-06T12:00:00.123Z\n\"e\"\n{}",           /* another version */
        "1\n2026-12-06T12:00:00.123Z",                         /* no event */
        "1\n2026-12-06T12:00:00.123Z\n\"e\"",                 /* no data line */
        "1\n2026-12-06T12:00:00.123Z\nnot-json\n{}",          /* the event is not JSON */
        "1\n2026-12-06T12:00:00.123Z\n42\n{}",                /* not a string */
        "1\n2026-12-06T12:00:00.123Z\n\"a\\u0000b\"\n{}",     /* a NUL in the event */
        "1\n0123456789012345678901234567890123456789\n\"e\"\n{}", /* a timestamp too long */
        "1\n2026\",\"x\":\"1\n\"e\"\n{}",                      /* one that would break the JSON */
        "1\n2026-12-06T12:00:00.123Z\n\"e\"\n{\"a\":",           /* data that is not JSON */
        "1\n2026-12-06T12:00:00.123Z\n\"e\"\n[1]",                /* not an object */
        "1\n2026-12-06T12:00:00.123Z\n\"e\"\n{\"a\":\"\xff\"}",      /* not UTF-8 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hub_msg_t *x = hub_msg_decode("room", 4, bad[i], strlen(bad[i]));
        if (x)
            fail_msg("payload %zu was taken: %s", i, bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_subscribers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_shares_one_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_across_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undelivered_are_released, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_reports_allocation_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_from_outside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_local_is_not_woken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelopes_have_their_own_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelope_slots_run_out, setup, teardown),
        cmocka_unit_test(test_broker_payload),
        cmocka_unit_test(test_mailbox_bound),
        cmocka_unit_test_setup_teardown(test_broker_confirms_subscriptions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
