/*
 * ws_session — see include/wshub/ws.h. wslay's event API drives one connection: bytes come
 * in through recv_callback from the worker's read buffer (no copy into a per-connection
 * buffer of ours), frames go out through send_callback into the connection's queue.
 */
#include "wshub/ws.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wslay/wslay.h>

#include "wshub/list.h"

#include "wshub/conn.h"
#include "wshub/deflate.h"
#include "wshub/faults.h"
#include "wshub/log.h"
#include "wshub/tap.h"
#include "wshub/utf8.h"

#include "ws_session_internal.h"

/* The mock backend's counters (ws.h), when the session has them. */
static inline void count_out(ws_session_t *s, size_t bytes, int opcode)
{
    if (!stats_of(s))
        return;
    stats_of(s)->bytes_out += bytes;
    if (opcode == WS_OP_TEXT || opcode == WS_OP_BINARY)
        stats_of(s)->msgs_out++;
}

/* ------------------------------------------------------------------ mock faults */

/* Messages a latency fault of the mock backend holds (include/wshub/faults.h): whole data
 * messages only (text, binary), never control frames (ping, pong, close: the WebSocket layer
 * keeps working, only the API's messages are late or lost). In order per direction: a
 * message never overtakes an earlier one, as on one TCP stream. Made with the first held
 * message, freed with the session; bounded per connection and in the process
 * (mock.max_delayed_bytes_per_connection, mock.max_delayed_bytes: past either, 1013). */
typedef struct held_msg {
    struct held_msg *next;
    uint64_t due;   /* uv_now() ms */
    frame_t *f;     /* out: the frame to write */
    bool shared;    /* out: f is a fan-out frame, else a private reply */
    int opcode;     /* in: the message for the dialect */
    size_t len;     /* bytes counted in the bounds (in: of msg) */
    uint8_t msg[];
} held_msg_t;

typedef struct ws_held {
    wtimer_t timer;
    ws_session_t *s;
    held_msg_t *head[2], *tail[2]; /* [FAULT_IN], [FAULT_OUT] */
    size_t bytes;
} ws_held_t;

/* The held messages live beside the mock's counters (ws_stats_t.held), which a session has
 * only when mock.enabled was on at its upgrade: a session without the mock pays nothing, and
 * faults never act on one without them (FAULTS_APPLY). */
#define HELD(s) (stats_of(s) ? (ws_held_t *)(s)->ext->stats->held : NULL)
#define FAULTS_APPLY(s) (stats_of(s) && (faults_on_messages() || (s)->ext->stats->held))

static void pump(ws_session_t *s);
static void pump_and_rest(ws_session_t *s);
static int ctx_open(ws_session_t *s);

static held_msg_t *held_pop(ws_held_t *h, int dir)
{
    held_msg_t *m = h->head[dir];
    if (!(h->head[dir] = m->next))
        h->tail[dir] = NULL;
    h->bytes -= m->len;
    faults_delay_release(m->len);
    return m;
}

static void held_free(held_msg_t *m)
{
    frame_release(&m->f);
    free(m);
}

/* Drops the messages held in one direction. */
static void held_discard(ws_session_t *s, int dir)
{
    ws_held_t *h = HELD(s);
    while (h && h->head[dir])
        held_free(held_pop(h, dir));
}

static void held_release(ws_session_t *s)
{
    ws_held_t *h = HELD(s);
    if (!h)
        return;
    dialect_timer_stop(s->x, &h->timer);
    held_discard(s, FAULT_IN);
    held_discard(s, FAULT_OUT);
    free(h);
    stats_of(s)->held = NULL;
}

/* Writes a frame after whatever wslay still holds (between whole wslay frames only: wslay
 * never keeps a partial frame, send_cb takes all). */
static int write_frame(ws_session_t *s, frame_t *f, bool shared)
{
    if (s->c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))
        return -1;
    if (s->rx && (wslay_event_get_close_sent(s->rx->ctx) ||
                   (wslay_event_want_write(s->rx->ctx) && wslay_event_send(s->rx->ctx) != 0)))
        return -1;
    int r = shared ? conn_send_frame(s->c, f) : conn_send_copy(s->c, f->data, f->len);
    if (r == 0) {
        metrics_add(&s->c->env->metrics.frames_out[s->c->endpoint], 1);
        count_out(s, f->len, WS_OP_TEXT); /* a data message: fan-out, or a reply a fault held */
    }
    return r;
}

/* Everything held for the client goes out now (the API's goodbye before a close). */
static void held_flush_out(ws_session_t *s)
{
    ws_held_t *h = HELD(s);
    while (h && h->head[FAULT_OUT]) {
        held_msg_t *m = held_pop(h, FAULT_OUT);
        write_frame(s, m->f, m->shared);
        held_free(m);
    }
}

/* Past a bound: nothing held is delivered, and the connection closes with 1013. */
static void held_overflow(ws_session_t *s)
{
    static const char reason[] = "server busy: delayed messages";
    held_discard(s, FAULT_IN);
    held_discard(s, FAULT_OUT);
    faults_delay_overflow();
    log_event(LOG_INFO, "mock_delay_overflow", s->c->id, NULL, s->d->name,
              "messages held by a latency fault passed mock.max_delayed_bytes(_per_connection)");
    if (ctx_open(s) != 0) {
        conn_close(s->c, "out of memory (ws)");
        return;
    }
    wslay_event_queue_close(s->rx->ctx, WS_CLOSE_TRY_AGAIN_LATER, (const uint8_t *)reason, sizeof reason - 1);
    wslay_event_shutdown_read(s->rx->ctx);
    if (!s->rx->in_recv)
        pump(s);
}

static void on_held(wtimer_t *t);

/* Arms the timer for the earliest message held. */
static void held_arm(ws_session_t *s)
{
    ws_held_t *h = HELD(s);
    held_msg_t *in = h->head[FAULT_IN], *out = h->head[FAULT_OUT];
    if (!in && !out)
        return;
    uint64_t due = in && (!out || in->due < out->due) ? in->due : out->due;
    if ((!h->timer.slot || h->timer.due > due) && dialect_timer_start(s->x, &h->timer, due, on_held) != 0)
        conn_close(s->c, "out of memory (ws)");
}

/* Delivers what is due: the client's messages to the dialect, the dialect's to the client. */
static void on_held(wtimer_t *t)
{
    ws_held_t *h = container_of(t, ws_held_t, timer);
    ws_session_t *s = h->s;
    uint64_t now = uv_now(s->c->env->loop);
    held_msg_t *m;
    while (!(s->c->flags & CONN_F_CLOSING) && (m = h->head[FAULT_OUT]) && m->due <= now) {
        held_pop(h, FAULT_OUT);
        write_frame(s, m->f, m->shared);
        held_free(m);
    }
    while (!(s->c->flags & (CONN_F_CLOSING | CONN_F_DRAIN)) && !(s->rx && s->rx->failed) && (m = h->head[FAULT_IN]) &&
           m->due <= now) {
        held_pop(h, FAULT_IN);
        if (s->d->on_message)
            s->d->on_message(s, m->opcode, m->msg, m->len);
        held_free(m);
    }
    if (s->c->flags & CONN_F_CLOSING)
        return; /* ws_on_closed frees what is left */
    pump_and_rest(s);
    held_arm(s);
}

/* Queues m (taken) in direction dir, due in delay ms; false when the connection failed. */
static bool held_push(ws_session_t *s, int dir, uint32_t delay, held_msg_t *m)
{
    const config_t *cfg = s->c->env->cfg;
    ws_held_t *h = HELD(s);
    if (!h && (h = stats_of(s)->held = calloc(1, sizeof *h)))
        h->s = s;
    if (!h) {
        held_free(m);
        conn_close(s->c, "out of memory (ws)");
        return false;
    }
    if (h->bytes + m->len > cfg->mock_max_delayed_conn_bytes ||
        !faults_delay_reserve(m->len, cfg->mock_max_delayed_bytes)) {
        held_free(m);
        held_overflow(s);
        return false;
    }
    h->bytes += m->len;
    m->next = NULL;
    m->due = uv_now(s->c->env->loop) + delay;
    if (h->tail[dir] && h->tail[dir]->due > m->due)
        m->due = h->tail[dir]->due; /* never before an earlier message */
    if (h->tail[dir])
        h->tail[dir]->next = m;
    else
        h->head[dir] = m;
    h->tail[dir] = m;
    held_arm(s);
    return true;
}

/* A message from the client: true when the faults took it (dropped, or held for later). */
static bool fault_in(ws_session_t *s, int opcode, const uint8_t *msg, size_t len)
{
    uint32_t delay = 0;
    if (faults_on_messages() && faults_message(s->d->endpoint, FAULT_IN, &delay))
        return true;
    if (!delay && !(HELD(s) && HELD(s)->head[FAULT_IN]))
        return false;
    held_msg_t *m = malloc(sizeof *m + len);
    if (!m) {
        conn_close(s->c, "out of memory (ws)");
        return true;
    }
    *m = (held_msg_t){.opcode = opcode, .len = len};
    memcpy(m->msg, msg, len);
    held_push(s, FAULT_IN, delay, m);
    return true;
}

/* A data message for the client (data, or the fan-out frame shared): 0 when the faults leave
 * it alone, 1 when they took it (dropped or held), -1 when the connection failed. */
static int fault_out(ws_session_t *s, int opcode, const void *data, size_t len, frame_t *shared)
{
    uint32_t delay = 0;
    if (faults_on_messages() && faults_message(s->d->endpoint, FAULT_OUT, &delay))
        return 1;
    if (!delay && !(HELD(s) && HELD(s)->head[FAULT_OUT]))
        return 0;
    held_msg_t *m = malloc(sizeof *m);
    frame_t *f = shared ? frame_ref(shared) : frame_build(opcode, data, len);
    if (!m || !f) {
        free(m);
        frame_release(&f);
        conn_close(s->c, "out of memory (ws)");
        return -1;
    }
    *m = (held_msg_t){.f = f, .shared = shared != NULL, .opcode = opcode, .len = f->len};
    return held_push(s, FAULT_OUT, delay, m) ? 1 : -1;
}

/* ------------------------------------------------------------------ wslay callbacks */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    ws_session_t *s = user;
    if (!s->rx->in_len) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < s->rx->in_len ? len : s->rx->in_len;
    memcpy(buf, s->rx->in, n);
    s->rx->in += n;
    s->rx->in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    ws_session_t *s = user;
    /* Accept every byte (DESIGN.md decision 3): frames stay whole in the connection's queue. */
    if (conn_send_copy(s->c, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    count_out(s, len, -1); /* the message was counted when it was queued */
    return (ssize_t)len;
}

/* Fails the connection from inside a wslay callback: wslay sends the close frame, stops
 * reading, and the rest of the frame is ignored. */
static void fail(ws_session_t *s, uint16_t code, const char *reason)
{
    if (!s->rx->failed)
        log_event(LOG_INFO, "ws_protocol_error", s->c->id, NULL, s->d->name, "close %u: %s", code, reason);
    s->rx->failed = true;
    wslay_event_queue_close(s->rx->ctx, code, (const uint8_t *)reason, strlen(reason));
    wslay_event_shutdown_read(s->rx->ctx);
}

/* A token bucket per connection: limits.message_rate frames a second on average, bursts of
 * limits.message_burst. Every message and control frame counts (a flood of pings costs as
 * much as one of messages); the fragments of one message count once, being bounded by
 * limits.max_message_bytes (Autobahn 9.3 sends 65,536 of them). Past it the client
 * gets its API's error, then close 1008 (issue 11). */
static bool rate_ok(ws_session_t *s)
{
    const config_t *cfg = s->c->env->cfg;
    if (!cfg->message_rate || s->rx->failed)
        return !s->rx->failed;
    uint32_t now = (uint32_t)s->last_rx;
    uint32_t dt = now - s->tokens_at;
    s->tokens_at = now;
    s->tokens += (float)dt * (float)cfg->message_rate / 1000.0f;
    if (s->tokens > (float)cfg->message_burst)
        s->tokens = (float)cfg->message_burst;
    if (s->tokens >= 1.0f) {
        s->tokens -= 1.0f;
        return true;
    }
    metrics_add(&s->c->env->metrics.rate_limited, 1);
    if (s->d->on_rate_limited)
        s->d->on_rate_limited(s);
    fail(s, WS_CLOSE_POLICY, "message rate exceeded");
    return false;
}

static void on_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *user)
{
    (void)ctx;
    ws_session_t *s = user;
    s->rx->frame_op = arg->opcode;
    s->last_rx = uv_now(s->c->env->loop);
    if (arg->opcode != WSLAY_CONTINUATION_FRAME && !rate_ok(s))
        return;
    /* Client frames are masked (wslay fails unmasked ones) and lengths minimal (it fails
     * others), so the wire size follows from the payload length. */
    uint64_t len = arg->payload_length;
    s->rx->frame_bytes = 2 + 4 + len + (len < 126 ? 0 : len <= 0xffff ? 2 : 8);
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        s->rx->fragmented = !arg->fin;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        s->rx->msg_op = arg->opcode;
        s->rx->utf8 = UTF8_ACCEPT;
        /* wslay accepts RSV1 only when we allowed it (ctx_open: negotiated), and only on a
         * message's first frame. */
        s->rx->msg_deflated = pmd_of(s) && (arg->rsv & WSLAY_RSV1_BIT);
    }
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        s->rx->close_utf8 = UTF8_ACCEPT;
        s->rx->close_off = 0;
        s->rx->close_code = 0;
        /* A close payload of one byte cannot hold a status code (RFC 6455 §5.5.1). */
        if (arg->payload_length == 1)
            fail(s, WS_CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload");
    }
}

/* The close reason is checked before wslay queues its echo of the peer's close (it does
 * that right after this frame ends), so that our 1007 is the close that goes out. */
static void close_chunk(ws_session_t *s, const uint8_t *data, size_t len)
{
    size_t skip = s->rx->close_off < 2 ? 2u - s->rx->close_off : 0;
    if (skip > len)
        skip = len;
    for (size_t i = 0; i < skip; i++)
        s->rx->close_code = (uint16_t)(s->rx->close_code << 8 | data[i]);
    s->rx->close_off = (uint8_t)(s->rx->close_off + len);
    if (len > skip)
        s->rx->close_utf8 = utf8_validate(s->rx->close_utf8, data + skip, len - skip);
}

static void on_frame_end(wslay_event_context_ptr ctx, void *user)
{
    (void)ctx;
    ws_session_t *s = user;
    s->rx->framed += s->rx->frame_bytes;
    s->rx->frame_bytes = 0;
    if (s->rx->frame_op == WSLAY_CONNECTION_CLOSE && s->rx->close_utf8 != UTF8_ACCEPT && !s->rx->failed)
        fail(s, WS_CLOSE_INVALID_PAYLOAD, "invalid UTF-8 in the close reason");
    else if (s->rx->frame_op == WSLAY_CONNECTION_CLOSE && s->rx->close_off >= 2 && s->rx->close_code >= 1012 &&
             s->rx->close_code <= 1014 && !s->rx->failed) {
        /* Service Restart, Try Again Later, Bad Gateway: registered with IANA after wslay's
         * list, which answers them with 1002. Our echo goes first, so wslay's is never sent;
         * the exchange then ends as any other (issue 11). */
        wslay_event_queue_close(s->rx->ctx, s->rx->close_code, NULL, 0);
    }
}

/* Unfinished inbound messages of every connection share one bound (a client may hold up to
 * limits.max_message_bytes on each of its connections otherwise): the connection whose
 * bytes would pass it is closed with 1013 (issue 11). */
static void hold(ws_session_t *s, size_t n)
{
    if (s->rx->failed || !n)
        return;
    size_t total = atomic_fetch_add(&metrics_ws_inbound_bytes, n) + n;
    s->rx->held += (uint32_t)n;
    if (total > s->c->env->cfg->max_inbound_total_bytes)
        fail(s, WS_CLOSE_TRY_AGAIN_LATER, "server busy: too many unfinished messages");
}

static void unhold(ws_session_t *s)
{
    if (s->rx->held)
        atomic_fetch_sub(&metrics_ws_inbound_bytes, s->rx->held);
    s->rx->held = 0;
}

/* Text is validated as it arrives, across fragments, so that an invalid message fails
 * before the rest of it is read (fail fast, PROTOCOLS.md §0.4). */
static void on_frame_chunk(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *arg,
                           void *user)
{
    (void)ctx;
    ws_session_t *s = user;
    if (s->rx->frame_op == WSLAY_CONNECTION_CLOSE) {
        close_chunk(s, arg->data, arg->data_length);
        return;
    }
    if (s->rx->frame_op == WSLAY_TEXT_FRAME || s->rx->frame_op == WSLAY_BINARY_FRAME ||
        s->rx->frame_op == WSLAY_CONTINUATION_FRAME)
        hold(s, arg->data_length);
    bool data_frame = s->rx->frame_op == WSLAY_TEXT_FRAME || s->rx->frame_op == WSLAY_CONTINUATION_FRAME;
    if (!data_frame || s->rx->msg_op != WSLAY_TEXT_FRAME || s->rx->failed || s->rx->msg_deflated)
        return; /* compressed text is validated once inflated (on_msg) */
    s->rx->utf8 = utf8_validate(s->rx->utf8, arg->data, arg->data_length);
    if (s->rx->utf8 == UTF8_REJECT)
        fail(s, WS_CLOSE_INVALID_PAYLOAD, "invalid UTF-8 in a text message");
}

/* A compressed message, inflated into *out (malloc'd) within limits.max_message_bytes; false
 * when the connection fails: 1009 past the bound, 1007 for a stream that is not deflate or
 * inflates to invalid UTF-8 (text). */
static bool inflate_msg(ws_session_t *s, const struct wslay_event_on_msg_recv_arg *arg, uint8_t **out, size_t *len)
{
    metrics_t *m = &s->c->env->metrics;
    int r = pmd_inflate(pmd_of(s), arg->msg, arg->msg_length, s->c->env->cfg->max_message_bytes, out, len);
    if (r == PMD_OK && arg->opcode == WSLAY_TEXT_FRAME && utf8_validate(UTF8_ACCEPT, *out, *len) != UTF8_ACCEPT) {
        free(*out);
        r = PMD_CORRUPT - 10;
    }
    if (r == PMD_OK) {
        metrics_add(&m->deflate_in[1], arg->msg_length);
        metrics_add(&m->deflate_in[0], *len);
        return true;
    }
    if (r == PMD_NOMEM)
        conn_close(s->c, "out of memory (inflate)");
    else
        fail(s, r == PMD_TOO_BIG ? WS_CLOSE_TOO_BIG : WS_CLOSE_INVALID_PAYLOAD,
             r == PMD_TOO_BIG   ? "message too big once inflated"
             : r == PMD_CORRUPT ? "invalid compressed data"
                                : "invalid UTF-8 in a text message");
    return false;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    ws_session_t *s = user;
    if (s->rx->failed)
        return;
    uint8_t *inflated = NULL;
    size_t inflated_len = 0;
    if ((arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) && s->rx->msg_deflated) {
        s->rx->msg_deflated = false;
        if (!inflate_msg(s, arg, &inflated, &inflated_len))
            return;
    }
    const uint8_t *msg = inflated ? inflated : arg->msg;
    size_t msg_len = inflated ? inflated_len : arg->msg_length;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
        if (s->rx->utf8 != UTF8_ACCEPT) {
            fail(s, WS_CLOSE_INVALID_PAYLOAD, "text message ends inside a UTF-8 sequence");
            return;
        }
        /* fall through */
    case WSLAY_BINARY_FRAME:
        s->rx->fragmented = false;
        unhold(s);
        metrics_add(&s->c->env->metrics.frames_in[s->c->endpoint], 1);
        if (tap_on())
            tap_frame(s->c->endpoint, s->c->id, TAP_IN, arg->opcode, msg, msg_len);
        if (stats_of(s))
            stats_of(s)->msgs_in++;
        if (FAULTS_APPLY(s) && fault_in(s, arg->opcode, msg, msg_len))
            break;
        if (s->d->on_message)
            s->d->on_message(s, arg->opcode, msg, msg_len);
        break;
    default: /* pings are answered by wslay; pongs need nothing */
        if (tap_on())
            tap_frame(s->c->endpoint, s->c->id, TAP_IN, arg->opcode, arg->msg, arg->msg_length);
        break;
    }
    free(inflated);
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_frame_recv_start_callback = on_frame_start,
    .on_frame_recv_chunk_callback = on_frame_chunk,
    .on_frame_recv_end_callback = on_frame_end,
    .on_msg_recv_callback = on_msg,
};

/* ------------------------------------------------------------------ wslay context lifetime */

static int ctx_open(ws_session_t *s)
{
    if (s->rx)
        return 0;
    ws_rx_t *rx = calloc(1, sizeof *rx);
    if (!rx || wslay_event_context_server_init(&rx->ctx, &callbacks, s) != 0) {
        free(rx);
        return -1;
    }
    rx->utf8 = rx->close_utf8 = UTF8_ACCEPT;
    wslay_event_config_set_max_recv_msg_length(rx->ctx, s->c->env->cfg->max_message_bytes);
    if (pmd_of(s))
        wslay_event_config_set_allowed_rsv_bits(rx->ctx, WSLAY_RSV1_BIT);
    s->rx = rx;
    return 0;
}

/* The context and what goes with it (no-op without one). */
static void ctx_free(ws_session_t *s)
{
    if (!s->rx)
        return;
    unhold(s); /* nothing when quiescent: no message is half received */
    wslay_event_context_free(s->rx->ctx);
    free(s->rx);
    s->rx = NULL;
}

/* Frees the context when a fresh one would be the same: every byte fed belongs to a frame
 * wslay has finished, no message is half received, nothing is queued, no close started. */
static void ctx_release_if_quiescent(ws_session_t *s)
{
    ws_rx_t *rx = s->rx;
    if (!rx || rx->in_recv || rx->fed != rx->framed || rx->fragmented || rx->failed ||
        wslay_event_want_write(rx->ctx) || wslay_event_get_close_sent(rx->ctx) ||
        wslay_event_get_close_received(rx->ctx) || !wslay_event_get_read_enabled(rx->ctx) ||
        !wslay_event_get_write_enabled(rx->ctx) || wslay_event_get_queued_msg_count(rx->ctx))
        return;
    ctx_free(s);
}

/* ------------------------------------------------------------------ pumping */

/* Moves wslay's queued frames into the connection and decides whether the close
 * handshake is over. Never called from inside wslay_event_recv. */
static void pump(ws_session_t *s)
{
    conn_t *c = s->c;
    if ((c->flags & CONN_F_CLOSING) || !s->rx)
        return;
    if (wslay_event_want_write(s->rx->ctx) && wslay_event_send(s->rx->ctx) != 0) {
        conn_close(c, "send failed");
        return;
    }
    if (!wslay_event_get_close_sent(s->rx->ctx))
        return;
    if (wslay_event_get_close_received(s->rx->ctx) || !wslay_event_get_read_enabled(s->rx->ctx)) {
        /* Both closes exchanged (or we failed the connection): the server closes TCP first. */
        conn_close_after_write(c);
    } else if (!s->rx->close_deadline) {
        /* We sent a close: the peer has websocket.close_timeout_ms to answer it. */
        s->rx->close_deadline = true;
        conn_set_deadline(c, DL_CLOSE);
    }
}

/* pump, then give the context back if it is not needed between messages. */
static void pump_and_rest(ws_session_t *s)
{
    pump(s);
    if (!(s->c->flags & CONN_F_CLOSING))
        ctx_release_if_quiescent(s);
}

/* ------------------------------------------------------------------ conn hooks */

static const conn_proto_t ws_proto;

void ws_session_discard(conn_t *c, const dialect_t *d, dialect_ctx_t *x, void *dialect_data)
{
    if (d->on_close && dialect_data) {
        ws_session_t tmp = {.c = c, .d = d, .x = x, .data = dialect_data};
        d->on_close(&tmp);
    }
}

/* s->ext when deflate was negotiated or the mock is on; false when deflate's state could not
 * be made. Without the mock's counters (out of memory) the session works the same. */
static bool ext_open(ws_session_t *s, const pmd_params_t *pmd)
{
    mempool_t *mem = s->c->env->mem;
    bool mock = s->c->env->cfg->mock_enabled;
    if ((!pmd && !mock) || !(s->ext = mempool_alloc(mem, sizeof *s->ext)))
        return !pmd;
    if (pmd && !(s->ext->pmd = pmd_new(pmd))) {
        mempool_free(mem, s->ext, sizeof *s->ext);
        s->ext = NULL;
        return false;
    }
    if (pmd)
        metrics_add(&s->c->env->metrics.deflate_sessions, 1);
    if (mock && (s->ext->stats = mempool_alloc(mem, sizeof *s->ext->stats))) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->ext->stats->since_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    }
    return true;
}

ws_session_t *ws_session_start(conn_t *c, const dialect_t *d, dialect_ctx_t *x, void *dialect_data,
                               const pmd_params_t *pmd)
{
    /* No wslay context yet: it is made by the first frame or reply (a subscriber that only
     * receives fan-out never needs one), which saves an 8 KB allocation per handshake. */
    ws_session_t *s = mempool_alloc(c->env->mem, sizeof *s);
    if (!s) {
        ws_session_discard(c, d, x, dialect_data);
        conn_close(c, "out of memory (ws)");
        return NULL;
    }
    s->c = c;
    s->d = d;
    s->x = x;
    s->data = dialect_data;
    s->last_rx = uv_now(c->env->loop);
    s->tokens = (float)c->env->cfg->message_burst;
    s->tokens_at = (uint32_t)s->last_rx;
    if (!ext_open(s, pmd)) {
        mempool_free(c->env->mem, s, sizeof *s);
        ws_session_discard(c, d, x, dialect_data);
        conn_close(c, "out of memory (ws)");
        return NULL;
    }
    conn_set_proto(c, &ws_proto, s, d->endpoint);
    if (c->env->cfg->ws_ping_interval_ms && !d->no_ws_ping)
        conn_set_deadline(c, DL_IDLE);
    if (d->on_open)
        d->on_open(s);
    pump_and_rest(s);
    return s;
}

static void ws_on_data(conn_t *c, const uint8_t *data, size_t len)
{
    ws_session_t *s = c->pdata;
    if (ctx_open(s) != 0) {
        conn_close(c, "out of memory (ws)");
        return;
    }
    if (c->dl_kind == DL_IDLE || c->dl_kind == DL_PONG) {
        c->flags &= ~CONN_F_PINGED;
        conn_set_deadline(c, DL_IDLE); /* anything from the peer shows it is alive */
    }
    s->rx->fed += len;
    if (stats_of(s))
        stats_of(s)->bytes_in += len;
    s->rx->in = data;
    s->rx->in_len = len;
    s->rx->in_recv = true;
    int r = wslay_event_recv(s->rx->ctx);
    s->rx->in_recv = false;
    s->rx->in = NULL;
    s->rx->in_len = 0;
    if (r != 0 && !(c->flags & CONN_F_CLOSING)) {
        if (r == WSLAY_ERR_NOMEM) {
            conn_close(c, "out of memory (ws)");
            return;
        }
        /* Our recv callback never fails, so this is wslay's frame layer refusing a frame (a
         * fragmented or oversized control frame, a non-minimal length). wslay queued a close
         * without a status code; the contract wants 1002 (PROTOCOLS.md §0.4), so that close
         * is never sent and ours goes out instead. */
        bool sent = wslay_event_get_close_sent(s->rx->ctx);
        wslay_event_shutdown_read(s->rx->ctx);
        wslay_event_shutdown_write(s->rx->ctx);
        if (!sent) {
            static const uint8_t payload[] = "\x03\xea" "protocol error";
            frame_t *f = frame_build(WS_OP_CLOSE, payload, sizeof payload - 1);
            if (f)
                conn_send_copy(c, f->data, f->len);
            frame_release(&f);
            log_event(LOG_INFO, "ws_protocol_error", c->id, NULL, s->d->name, "close 1002: invalid frame");
        }
        conn_close_after_write(c);
        return;
    }
    pump_and_rest(s);
}

static void ws_on_eof(conn_t *c)
{
    /* The peer is gone without finishing the close handshake (or after it). */
    ws_session_t *s = c->pdata;
    conn_close(c, s->rx && wslay_event_get_close_received(s->rx->ctx) ? NULL : "eof without close frame");
}

static void ws_on_slow_consumer(conn_t *c)
{
    ws_session_t *s = c->pdata;
    if (ctx_open(s) != 0) {
        conn_close(c, "slow consumer");
        return;
    }
    wslay_event_queue_close(s->rx->ctx, WS_CLOSE_TRY_AGAIN_LATER, (const uint8_t *)"slow consumer", 13);
    /* Nothing more is read from a client that does not read what it is sent. */
    wslay_event_shutdown_read(s->rx->ctx);
    pump(s);
}

/* Silent for websocket.ping_interval_ms (DL_IDLE: send a ping), or for
 * websocket.ping_timeout_ms after that ping (DL_PONG: close 1001). */
static void ws_on_timeout(conn_t *c, deadline_kind_t kind)
{
    ws_session_t *s = c->pdata;
    if (kind != DL_IDLE && kind != DL_PONG)
        return;
    if (kind == DL_PONG) {
        metrics_add(&c->env->metrics.ping_timeouts, 1);
        log_event(LOG_INFO, "ws_ping_timeout", c->id, NULL, s->d->name, "nothing received after a ping");
        ws_session_close(s, WS_CLOSE_GOING_AWAY, "ping timeout");
        return;
    }
    if (ws_session_send(s, WS_OP_PING, NULL, 0) != 0)
        return;
    c->flags |= CONN_F_PINGED;
    conn_set_deadline(c, DL_PONG);
}

static void ws_on_shutdown(conn_t *c)
{
    ws_session_t *s = c->pdata;
    if (s->d->on_shutdown)
        s->d->on_shutdown(s);
    ws_session_close(s, WS_CLOSE_GOING_AWAY, "server shutting down");
}

static void ws_on_closed(conn_t *c)
{
    ws_session_t *s = c->pdata;
    if (!s)
        return;
    held_release(s);
    if (s->d->on_close)
        s->d->on_close(s);
    ctx_free(s);
    ws_ext_t *ext = s->ext;
    if (ext && ext->pmd) {
        pmd_free(ext->pmd);
        metrics_add(&c->env->metrics.deflate_sessions, (uint64_t)-1);
    }
    if (ext && ext->stats)
        mempool_free(c->env->mem, ext->stats, sizeof *ext->stats);
    if (ext)
        mempool_free(c->env->mem, ext, sizeof *ext);
    mempool_free(c->env->mem, s, sizeof *s);
    c->pdata = NULL;
}

static const conn_proto_t ws_proto = {
    .on_data = ws_on_data,
    .on_eof = ws_on_eof,
    .on_timeout = ws_on_timeout,
    .on_slow = ws_on_slow_consumer,
    .on_shutdown = ws_on_shutdown,
    .on_closed = ws_on_closed,
};

/* ------------------------------------------------------------------ for dialects */

/* The payload bytes of a frame we built (unmasked, frame_header). */
static size_t payload_len(const frame_t *f)
{
    uint8_t b = f->data[1] & 0x7f;
    return f->len - (b == 127 ? 10u : b == 126 ? 4u : 2u);
}

/* A reply on a session that negotiated permessage-deflate: compressed with its own window
 * when that pays (else as any reply), straight into the connection when there is no wslay
 * context, through wslay's queue otherwise (after what it holds, never after a close). */
static int send_plain(ws_session_t *s, int opcode, const void *data, size_t len);

static int send_deflated(ws_session_t *s, int opcode, const void *data, size_t len)
{
    frame_t *f = pmd_frame(opcode, data, len, pmd_params(pmd_of(s))->server_bits);
    if (!f)
        return send_plain(s, opcode, data, len);
    metrics_add(&s->c->env->metrics.deflate_out[0], len);
    size_t hl = f->len - payload_len(f), n = f->len - hl;
    metrics_add(&s->c->env->metrics.deflate_out[1], n);
    int r;
    if (!s->rx) {
        r = write_frame(s, f, true);
    } else {
        struct wslay_event_msg msg = {(uint8_t)opcode, f->data + hl, n};
        r = wslay_event_queue_msg_ex(s->rx->ctx, &msg, WSLAY_RSV1_BIT) != 0 ? -1 : 0;
        if (r == 0) {
            metrics_add(&s->c->env->metrics.frames_out[s->c->endpoint], 1);
            count_out(s, 0, opcode);
            if (wslay_event_send(s->rx->ctx) != 0) {
                conn_close(s->c, "send failed");
                r = -1;
            } else {
                ctx_release_if_quiescent(s);
            }
        }
    }
    frame_release(&f);
    return r;
}

int ws_session_send(ws_session_t *s, int opcode, const void *data, size_t len)
{
    if (s->c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))
        return -1;
    int held = FAULTS_APPLY(s) && (opcode == WS_OP_TEXT || opcode == WS_OP_BINARY)
                   ? fault_out(s, opcode, data, len, NULL)
                   : 0;
    if (held)
        return held > 0 ? 0 : -1;
    if (pmd_of(s) && (opcode == WS_OP_TEXT || opcode == WS_OP_BINARY) && len >= PMD_MIN_BYTES)
        return send_deflated(s, opcode, data, len);
    return send_plain(s, opcode, data, len);
}

static int send_plain(ws_session_t *s, int opcode, const void *data, size_t len)
{
    if (!s->rx) {
        /* A quiescent session (no context) has nothing queued, no close sent or received and
         * no fragmented message: the frame goes straight into the connection's queue, and a
         * handshake's first message (Action Cable's welcome) or a timer's never makes wslay's
         * 8 KB context. */
        uint8_t buf[1024]; /* header and payload in one piece: one TLS record when small */
        size_t hl = frame_header(buf, opcode, len);
        int r;
        if (len <= sizeof buf - hl) {
            if (len)
                memcpy(buf + hl, data, len);
            r = conn_send_copy(s->c, buf, hl + len);
        } else {
            r = conn_send_copy(s->c, buf, hl);
            if (r == 0)
                r = conn_send_copy(s->c, data, len);
        }
        if (r != 0) {
            conn_close(s->c, "out of memory (send)");
            return -1;
        }
        metrics_add(&s->c->env->metrics.frames_out[s->c->endpoint], 1);
        count_out(s, hl + len, opcode);
        if (tap_on())
            tap_frame(s->c->endpoint, s->c->id, TAP_OUT, opcode, data, len);
        return 0;
    }
    struct wslay_event_msg msg = {(uint8_t)opcode, data, len};
    int r = wslay_event_queue_msg(s->rx->ctx, &msg);
    if (r != 0)
        return -1; /* WSLAY_ERR_NO_MORE_MSG once a close is queued */
    metrics_add(&s->c->env->metrics.frames_out[s->c->endpoint], 1);
    count_out(s, 0, opcode); /* its bytes are counted by send_cb */
    if (tap_on())
        tap_frame(s->c->endpoint, s->c->id, TAP_OUT, opcode, data, len);
    /* Into the connection's queue now, even from inside wslay_event_recv (wslay's send and
     * receive states are separate): a shared frame queued next must come after this reply. */
    if (wslay_event_send(s->rx->ctx) != 0) {
        conn_close(s->c, "send failed");
        return -1;
    }
    ctx_release_if_quiescent(s); /* a reply outside a read (hub, timers) leaves nothing behind */
    return 0;
}

int ws_session_send_text(ws_session_t *s, const char *text, size_t len)
{
    return ws_session_send(s, WS_OP_TEXT, text, len);
}

int ws_session_send_frame(ws_session_t *s, frame_t *f)
{
    /* Fan-out frames are data messages (the mock backend's faults may drop or hold them). */
    if (s->c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))
        return -1;
    int held = FAULTS_APPLY(s) ? fault_out(s, WS_OP_TEXT, NULL, 0, f) : 0;
    if (held)
        return held > 0 ? 0 : -1;
    frame_t *z = pmd_of(s) && pmd_params(pmd_of(s))->server_bits >= PMD_SHARED_BITS ? pmd_shared(f) : NULL;
    if (z) {
        metrics_add(&s->c->env->metrics.deflate_out[0], payload_len(f));
        metrics_add(&s->c->env->metrics.deflate_out[1], payload_len(z));
    }
    int r = write_frame(s, z ? z : f, true);
    if (r == 0 && tap_on())
        tap_frame_prepared(s->c->endpoint, s->c->id, f); /* as subscribers read it: uncompressed */
    return r;
}

void ws_session_subscribed(ws_session_t *s, hub_sub_t *sub, int status)
{
    if (s->d->on_subscribed)
        s->d->on_subscribed(s, sub, status);
}

void ws_session_close(ws_session_t *s, uint16_t code, const char *reason)
{
    if (HELD(s)) { /* what the dialect said goes before the close; the client's is too late */
        held_flush_out(s);
        held_discard(s, FAULT_IN);
    }
    size_t len = reason ? strlen(reason) : 0;
    if (len > 123)
        len = 123;
    if (ctx_open(s) != 0) {
        conn_close(s->c, "out of memory (ws)");
        return;
    }
    if (wslay_event_queue_close(s->rx->ctx, code, (const uint8_t *)reason, len) == 0 && tap_on()) {
        uint8_t payload[125] = {(uint8_t)(code >> 8), (uint8_t)code};
        if (len)
            memcpy(payload + 2, reason, len);
        tap_frame(s->c->endpoint, s->c->id, TAP_OUT, WS_OP_CLOSE, payload, len + 2);
    }
    if (!s->rx->in_recv)
        pump(s);
}

void ws_session_abort(ws_session_t *s, const char *reason)
{
    held_flush_out(s);
    if (s->rx) {
        wslay_event_shutdown_read(s->rx->ctx);
        wslay_event_shutdown_write(s->rx->ctx);
    }
    conn_abort_after_write(s->c, reason);
}

void *ws_session_data(ws_session_t *s) { return s->data; }
void ws_session_set_data(ws_session_t *s, void *data) { s->data = data; }
uint64_t ws_session_id(ws_session_t *s) { return s->c->id; }
const dialect_t *ws_session_dialect(ws_session_t *s) { return s->d; }
dialect_ctx_t *dialect_ctx(ws_session_t *s) { return s->x; }
uint64_t ws_session_last_rx(ws_session_t *s) { return s->last_rx; }
const ws_stats_t *ws_session_stats(ws_session_t *s) { return stats_of(s); }
conn_t *ws_session_conn(ws_session_t *s) { return s->c; }
ws_session_t *ws_session_of(conn_t *c) { return c->proto == &ws_proto ? c->pdata : NULL; }
size_t ws_session_queued(ws_session_t *s) { return s->c->queued; }
