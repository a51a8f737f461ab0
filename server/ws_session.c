/*
 * ws_session — see include/wshub/ws.h. wslay's event API drives one connection: bytes come
 * in through recv_callback from the worker's read buffer (no copy into a per-connection
 * buffer of ours), frames go out through send_callback into the connection's queue.
 */
#include "wshub/ws.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <wslay/wslay.h>

#include "wshub/conn.h"
#include "wshub/log.h"
#include "wshub/tap.h"
#include "wshub/utf8.h"

struct ws_session {
    conn_t *c;
    /* wslay's context, or NULL while the session is quiescent: wslay keeps two 4 KiB
     * buffers per context, by far the largest part of an idle connection, and a quiescent
     * session has no state in it that a fresh context would not have (DESIGN.md 5). */
    wslay_event_context_ptr ctx;
    uint64_t fed;          /* bytes handed to wslay while this context lived */
    uint64_t framed;       /* of those, bytes of frames wslay has completely read */
    uint64_t frame_bytes;  /* wire size of the frame being read (header + payload) */
    const dialect_t *d;
    dialect_ctx_t *x;      /* the dialect's context on this worker (dialect_ctx) */
    void *data;            /* the dialect's per-session state */
    const uint8_t *in;     /* input not yet handed to wslay (during ws_on_data only) */
    size_t in_len;
    uint32_t utf8;         /* UTF-8 validator state of the text message being received */
    uint32_t close_utf8;   /* validator state of a close frame's reason */
    uint8_t close_off;     /* payload bytes of the close frame seen so far */
    uint8_t frame_op;      /* opcode of the frame being received */
    uint8_t msg_op;        /* opcode of the data message being received (text/binary) */
    bool in_recv;          /* inside wslay_event_recv: sends are pumped after it returns */
    bool fragmented;       /* a data message is split over frames and not complete yet */
    bool failed;           /* we queued a close because the peer broke the protocol */
    uint64_t last_rx;      /* uv_now() of the last frame received */
    bool close_deadline;   /* the close-handshake deadline is armed */
    uint16_t close_code;   /* status code of the close frame being received (0: none yet) */
    uint32_t held;         /* bytes of the unfinished data message wslay holds for us */
    float tokens;          /* frames the client may still send now (limits.message_rate) */
    uint32_t tokens_at;    /* uv_now() (low 32 bits) when tokens was computed */
};

/* ------------------------------------------------------------------ wslay callbacks */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    ws_session_t *s = user;
    if (!s->in_len) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < s->in_len ? len : s->in_len;
    memcpy(buf, s->in, n);
    s->in += n;
    s->in_len -= n;
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
    return (ssize_t)len;
}

/* Fails the connection from inside a wslay callback: wslay sends the close frame, stops
 * reading, and the rest of the frame is ignored. */
static void fail(ws_session_t *s, uint16_t code, const char *reason)
{
    if (!s->failed)
        log_event(LOG_INFO, "ws_protocol_error", s->c->id, NULL, s->d->name, "close %u: %s", code, reason);
    s->failed = true;
    wslay_event_queue_close(s->ctx, code, (const uint8_t *)reason, strlen(reason));
    wslay_event_shutdown_read(s->ctx);
}

/* A token bucket per connection: limits.message_rate frames a second on average, bursts of
 * limits.message_burst. Every message and control frame counts (a flood of pings costs as
 * much as one of messages); the fragments of one message count once, being bounded by
 * limits.max_message_bytes (Autobahn 9.3 sends 65,536 of them). Past it the client
 * gets its API's error, then close 1008 (issue 11). */
static bool rate_ok(ws_session_t *s)
{
    const config_t *cfg = s->c->env->cfg;
    if (!cfg->message_rate || s->failed)
        return !s->failed;
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
    s->frame_op = arg->opcode;
    s->last_rx = uv_now(s->c->env->loop);
    if (arg->opcode != WSLAY_CONTINUATION_FRAME && !rate_ok(s))
        return;
    /* Client frames are masked (wslay fails unmasked ones) and lengths minimal (it fails
     * others), so the wire size follows from the payload length. */
    uint64_t len = arg->payload_length;
    s->frame_bytes = 2 + 4 + len + (len < 126 ? 0 : len <= 0xffff ? 2 : 8);
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        s->fragmented = !arg->fin;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        s->msg_op = arg->opcode;
        s->utf8 = UTF8_ACCEPT;
    }
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        s->close_utf8 = UTF8_ACCEPT;
        s->close_off = 0;
        s->close_code = 0;
        /* A close payload of one byte cannot hold a status code (RFC 6455 §5.5.1). */
        if (arg->payload_length == 1)
            fail(s, WS_CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload");
    }
}

/* The close reason is checked before wslay queues its echo of the peer's close (it does
 * that right after this frame ends), so that our 1007 is the close that goes out. */
static void close_chunk(ws_session_t *s, const uint8_t *data, size_t len)
{
    size_t skip = s->close_off < 2 ? 2u - s->close_off : 0;
    if (skip > len)
        skip = len;
    for (size_t i = 0; i < skip; i++)
        s->close_code = (uint16_t)(s->close_code << 8 | data[i]);
    s->close_off = (uint8_t)(s->close_off + len);
    if (len > skip)
        s->close_utf8 = utf8_validate(s->close_utf8, data + skip, len - skip);
}

static void on_frame_end(wslay_event_context_ptr ctx, void *user)
{
    (void)ctx;
    ws_session_t *s = user;
    s->framed += s->frame_bytes;
    s->frame_bytes = 0;
    if (s->frame_op == WSLAY_CONNECTION_CLOSE && s->close_utf8 != UTF8_ACCEPT && !s->failed)
        fail(s, WS_CLOSE_INVALID_PAYLOAD, "invalid UTF-8 in the close reason");
    else if (s->frame_op == WSLAY_CONNECTION_CLOSE && s->close_off >= 2 && s->close_code >= 1012 &&
             s->close_code <= 1014 && !s->failed) {
        /* Service Restart, Try Again Later, Bad Gateway: registered with IANA after wslay's
         * list, which answers them with 1002. Our echo goes first, so wslay's is never sent;
         * the exchange then ends as any other (issue 11). */
        wslay_event_queue_close(s->ctx, s->close_code, NULL, 0);
    }
}

/* Unfinished inbound messages of every connection share one bound (a client may hold up to
 * limits.max_message_bytes on each of its connections otherwise): the connection whose
 * bytes would pass it is closed with 1013 (issue 11). */
static void hold(ws_session_t *s, size_t n)
{
    if (s->failed || !n)
        return;
    size_t total = atomic_fetch_add(&metrics_ws_inbound_bytes, n) + n;
    s->held += (uint32_t)n;
    if (total > s->c->env->cfg->max_inbound_total_bytes)
        fail(s, WS_CLOSE_TRY_AGAIN_LATER, "server busy: too many unfinished messages");
}

static void unhold(ws_session_t *s)
{
    if (s->held)
        atomic_fetch_sub(&metrics_ws_inbound_bytes, s->held);
    s->held = 0;
}

/* Text is validated as it arrives, across fragments, so that an invalid message fails
 * before the rest of it is read (fail fast, PROTOCOLS.md §0.4). */
static void on_frame_chunk(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *arg,
                           void *user)
{
    (void)ctx;
    ws_session_t *s = user;
    if (s->frame_op == WSLAY_CONNECTION_CLOSE) {
        close_chunk(s, arg->data, arg->data_length);
        return;
    }
    if (s->frame_op == WSLAY_TEXT_FRAME || s->frame_op == WSLAY_BINARY_FRAME ||
        s->frame_op == WSLAY_CONTINUATION_FRAME)
        hold(s, arg->data_length);
    bool data_frame = s->frame_op == WSLAY_TEXT_FRAME || s->frame_op == WSLAY_CONTINUATION_FRAME;
    if (!data_frame || s->msg_op != WSLAY_TEXT_FRAME || s->failed)
        return;
    s->utf8 = utf8_validate(s->utf8, arg->data, arg->data_length);
    if (s->utf8 == UTF8_REJECT)
        fail(s, WS_CLOSE_INVALID_PAYLOAD, "invalid UTF-8 in a text message");
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    ws_session_t *s = user;
    if (s->failed)
        return;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
        if (s->utf8 != UTF8_ACCEPT) {
            fail(s, WS_CLOSE_INVALID_PAYLOAD, "text message ends inside a UTF-8 sequence");
            return;
        }
        /* fall through */
    case WSLAY_BINARY_FRAME:
        s->fragmented = false;
        unhold(s);
        metrics_add(&s->c->env->metrics.frames_in[s->c->endpoint], 1);
        if (tap_on())
            tap_frame(s->c->endpoint, s->c->id, TAP_IN, arg->opcode, arg->msg, arg->msg_length);
        if (s->d->on_message)
            s->d->on_message(s, arg->opcode, arg->msg, arg->msg_length);
        break;
    default: /* pings are answered by wslay; pongs need nothing */
        if (tap_on())
            tap_frame(s->c->endpoint, s->c->id, TAP_IN, arg->opcode, arg->msg, arg->msg_length);
        break;
    }
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
    if (s->ctx)
        return 0;
    if (wslay_event_context_server_init(&s->ctx, &callbacks, s) != 0) {
        s->ctx = NULL;
        return -1;
    }
    wslay_event_config_set_max_recv_msg_length(s->ctx, s->c->env->cfg->max_message_bytes);
    s->fed = s->framed = s->frame_bytes = 0;
    return 0;
}

/* Frees the context when a fresh one would be the same: every byte fed belongs to a frame
 * wslay has finished, no message is half received, nothing is queued, no close started. */
static void ctx_release_if_quiescent(ws_session_t *s)
{
    if (!s->ctx || s->in_recv || s->fed != s->framed || s->fragmented || s->failed ||
        wslay_event_want_write(s->ctx) || wslay_event_get_close_sent(s->ctx) ||
        wslay_event_get_close_received(s->ctx) || !wslay_event_get_read_enabled(s->ctx) ||
        !wslay_event_get_write_enabled(s->ctx) || wslay_event_get_queued_msg_count(s->ctx))
        return;
    wslay_event_context_free(s->ctx);
    s->ctx = NULL;
}

/* ------------------------------------------------------------------ pumping */

/* Moves wslay's queued frames into the connection and decides whether the close
 * handshake is over. Never called from inside wslay_event_recv. */
static void pump(ws_session_t *s)
{
    conn_t *c = s->c;
    if ((c->flags & CONN_F_CLOSING) || !s->ctx)
        return;
    if (wslay_event_want_write(s->ctx) && wslay_event_send(s->ctx) != 0) {
        conn_close(c, "send failed");
        return;
    }
    if (!wslay_event_get_close_sent(s->ctx))
        return;
    if (wslay_event_get_close_received(s->ctx) || !wslay_event_get_read_enabled(s->ctx)) {
        /* Both closes exchanged (or we failed the connection): the server closes TCP first. */
        conn_close_after_write(c);
    } else if (!s->close_deadline) {
        /* We sent a close: the peer has websocket.close_timeout_ms to answer it. */
        s->close_deadline = true;
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

ws_session_t *ws_session_start(conn_t *c, const dialect_t *d, dialect_ctx_t *x, void *dialect_data)
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
    s->utf8 = UTF8_ACCEPT;
    s->last_rx = uv_now(c->env->loop);
    s->tokens = (float)c->env->cfg->message_burst;
    s->tokens_at = (uint32_t)s->last_rx;
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
    s->fed += len;
    s->in = data;
    s->in_len = len;
    s->in_recv = true;
    int r = wslay_event_recv(s->ctx);
    s->in_recv = false;
    s->in = NULL;
    s->in_len = 0;
    if (r != 0 && !(c->flags & CONN_F_CLOSING)) {
        if (r == WSLAY_ERR_NOMEM) {
            conn_close(c, "out of memory (ws)");
            return;
        }
        /* Our recv callback never fails, so this is wslay's frame layer refusing a frame (a
         * fragmented or oversized control frame, a non-minimal length). wslay queued a close
         * without a status code; the contract wants 1002 (PROTOCOLS.md §0.4), so that close
         * is never sent and ours goes out instead. */
        bool sent = wslay_event_get_close_sent(s->ctx);
        wslay_event_shutdown_read(s->ctx);
        wslay_event_shutdown_write(s->ctx);
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
    conn_close(c, s->ctx && wslay_event_get_close_received(s->ctx) ? NULL : "eof without close frame");
}

static void ws_on_slow_consumer(conn_t *c)
{
    ws_session_t *s = c->pdata;
    if (ctx_open(s) != 0) {
        conn_close(c, "slow consumer");
        return;
    }
    wslay_event_queue_close(s->ctx, WS_CLOSE_TRY_AGAIN_LATER, (const uint8_t *)"slow consumer", 13);
    /* Nothing more is read from a client that does not read what it is sent. */
    wslay_event_shutdown_read(s->ctx);
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
    if (s->d->on_close)
        s->d->on_close(s);
    unhold(s);
    if (s->ctx)
        wslay_event_context_free(s->ctx);
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

int ws_session_send(ws_session_t *s, int opcode, const void *data, size_t len)
{
    if (s->c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))
        return -1;
    if (!s->ctx) {
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
        if (tap_on())
            tap_frame(s->c->endpoint, s->c->id, TAP_OUT, opcode, data, len);
        return 0;
    }
    struct wslay_event_msg msg = {(uint8_t)opcode, data, len};
    int r = wslay_event_queue_msg(s->ctx, &msg);
    if (r != 0)
        return -1; /* WSLAY_ERR_NO_MORE_MSG once a close is queued */
    metrics_add(&s->c->env->metrics.frames_out[s->c->endpoint], 1);
    if (tap_on())
        tap_frame(s->c->endpoint, s->c->id, TAP_OUT, opcode, data, len);
    /* Into the connection's queue now, even from inside wslay_event_recv (wslay's send and
     * receive states are separate): a shared frame queued next must come after this reply. */
    if (wslay_event_send(s->ctx) != 0) {
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
    /* Between whole wslay frames only: wslay never keeps a partial frame (send_cb takes all),
     * but a frame wslay still holds in its queue must go first to keep the order. */
    if (s->c->flags & (CONN_F_CLOSING | CONN_F_DRAIN))
        return -1;
    if (s->ctx && (wslay_event_get_close_sent(s->ctx) ||
                   (wslay_event_want_write(s->ctx) && wslay_event_send(s->ctx) != 0)))
        return -1;
    int r = conn_send_frame(s->c, f);
    if (r == 0)
        metrics_add(&s->c->env->metrics.frames_out[s->c->endpoint], 1);
    if (r == 0 && tap_on())
        tap_frame_prepared(s->c->endpoint, s->c->id, f);
    return r;
}

void ws_session_subscribed(ws_session_t *s, hub_sub_t *sub, int status)
{
    if (s->d->on_subscribed)
        s->d->on_subscribed(s, sub, status);
}

void ws_session_close(ws_session_t *s, uint16_t code, const char *reason)
{
    size_t len = reason ? strlen(reason) : 0;
    if (len > 123)
        len = 123;
    if (ctx_open(s) != 0) {
        conn_close(s->c, "out of memory (ws)");
        return;
    }
    if (wslay_event_queue_close(s->ctx, code, (const uint8_t *)reason, len) == 0 && tap_on()) {
        uint8_t payload[125] = {(uint8_t)(code >> 8), (uint8_t)code};
        if (len)
            memcpy(payload + 2, reason, len);
        tap_frame(s->c->endpoint, s->c->id, TAP_OUT, WS_OP_CLOSE, payload, len + 2);
    }
    if (!s->in_recv)
        pump(s);
}

void ws_session_abort(ws_session_t *s, const char *reason)
{
    if (s->ctx) {
        wslay_event_shutdown_read(s->ctx);
        wslay_event_shutdown_write(s->ctx);
    }
    conn_abort_after_write(s->c, reason);
}

void *ws_session_data(ws_session_t *s) { return s->data; }
void ws_session_set_data(ws_session_t *s, void *data) { s->data = data; }
uint64_t ws_session_id(ws_session_t *s) { return s->c->id; }
const dialect_t *ws_session_dialect(ws_session_t *s) { return s->d; }
dialect_ctx_t *dialect_ctx(ws_session_t *s) { return s->x; }
uint64_t ws_session_last_rx(ws_session_t *s) { return s->last_rx; }
size_t ws_session_queued(ws_session_t *s) { return s->c->queued; }
