/*
 * ws_session_internal — the state of a WebSocket session (ws_session.c), apart so that
 * ws_session.c stays within the house's 1,000 lines; nothing else includes it.
 */
#ifndef WSHUB_WS_SESSION_INTERNAL_H
#define WSHUB_WS_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wslay/wslay.h>

#include "wshub/conn.h"
#include "wshub/deflate.h"
#include "wshub/ws.h"

/* What a session has only while it has wslay's context: the state of the frame and message
 * being received, and of a close under way. Made with the context (ctx_open) and freed with
 * it (ctx_free), so that an idle session is its 64 bytes (issue 18). A session that failed or
 * sent a close keeps its context to the end, and so failed and close_deadline. */
typedef struct ws_rx {
    wslay_event_context_ptr ctx;
    const uint8_t *in;     /* input not yet handed to wslay (during ws_on_data only) */
    size_t in_len;
    uint64_t frame_bytes;  /* wire size of the frame being read (header + payload) */
    /* Bytes handed to wslay while this context lived, and of those the bytes of frames wslay
     * has completely read: only whether they are equal matters, so they count modulo 2^32
     * (what is fed and not framed yet is far less than that). */
    uint32_t fed, framed;
    uint32_t utf8;         /* UTF-8 validator state of the text message being received */
    uint32_t close_utf8;   /* validator state of a close frame's reason */
    uint32_t held;         /* bytes of the unfinished data message wslay holds for us */
    uint16_t close_code;   /* status code of the close frame being received (0: none yet) */
    uint8_t close_off;     /* payload bytes of the close frame seen so far */
    uint8_t frame_op;      /* opcode of the frame being received */
    uint8_t msg_op;        /* opcode of the data message being received (text/binary) */
    bool in_recv;          /* inside wslay_event_recv: sends are pumped after it returns */
    bool fragmented;       /* a data message is split over frames and not complete yet */
    bool msg_deflated;     /* the data message being received is compressed (RSV1) */
    bool failed;           /* we queued a close because the peer broke the protocol */
    bool close_deadline;   /* the close-handshake deadline is armed */
} ws_rx_t;

/* What few sessions have, behind one pointer (from the worker's pool; NULL for the others). */
typedef struct ws_ext {
    pmd_t *pmd;            /* permessage-deflate was negotiated (deflate.h), else NULL */
    ws_stats_t *stats;     /* mock.enabled only: the mock backend's counters, else NULL */
} ws_ext_t;

struct ws_session {
    conn_t *c;
    /* wslay's context with ws_rx_t, or NULL while the session is quiescent: wslay keeps two
     * 4 KiB buffers per context, by far the largest part of an idle connection, and a
     * quiescent session has no state in it that a fresh context would not have (DESIGN.md 5). */
    ws_rx_t *rx;
    const dialect_t *d;
    dialect_ctx_t *x;      /* the dialect's context on this worker (dialect_ctx) */
    void *data;            /* the dialect's per-session state */
    ws_ext_t *ext;         /* deflate, the mock's counters: NULL without either */
    uint64_t last_rx;      /* uv_now() of the last frame received */
    float tokens;          /* frames the client may still send now (limits.message_rate) */
    uint32_t tokens_at;    /* uv_now() (low 32 bits) when tokens was computed */
};

/* Idle connections are mostly this struct: it stays in the 64-byte pool class (issue 18). What
 * only a message being received needs is in ws_rx_t, what few sessions have in ws_ext_t. */
_Static_assert(sizeof(struct ws_session) <= 64, "ws_session_t outgrew its pool class");

static inline pmd_t *pmd_of(const ws_session_t *s) { return s->ext ? s->ext->pmd : NULL; }
static inline ws_stats_t *stats_of(const ws_session_t *s) { return s->ext ? s->ext->stats : NULL; }

#endif
