/*
 * frame — reference-counted byte buffers: a prepared WebSocket frame (header + payload,
 * unmasked, identical for every receiver) or a connection's private output bytes.
 *
 * Ownership contract (DESIGN.md decision 2, STYLE.md §3):
 * - frame_new/frame_build return a frame with one reference, owned by the caller.
 * - Whoever stores the pointer holds a reference: each output-queue entry, each in-flight
 *   write, the publisher during a fan-out loop. frame_ref() takes one more.
 * - frame_release(&f) drops the caller's reference, clears the pointer, and frees the
 *   frame when the last reference goes. The count is atomic: frames cross worker threads.
 * - A frame with more than one reference is immutable. Only a frame whose sole owner is
 *   the caller (frame_is_private) may be appended to (frame_append).
 */
#ifndef WSHUB_FRAME_H
#define WSHUB_FRAME_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct frame {
    atomic_uint refs; /* references held; the frame is freed when it reaches 0 */
    uint32_t len;     /* bytes of data in use */
    uint32_t cap;     /* bytes allocated for data */
    uint64_t born_ns; /* a fan-out frame: uv_hrtime() of its message's publish (metrics); 0 otherwise */
    /* A shared frame's compressed sibling (deflate.h: pmd_shared), built once by the first
     * session that negotiated permessage-deflate and holding one reference, released with
     * this frame; NULL until then, FRAME_NOT_DEFLATED when compressing does not pay. */
    _Atomic(struct frame *) deflated;
    uint8_t data[];
} frame_t;

#define FRAME_NOT_DEFLATED ((frame_t *)(uintptr_t)1)

/* WebSocket opcodes (RFC 6455 §5.2), as wslay names them too. */
enum { WS_OP_CONT = 0x0, WS_OP_TEXT = 0x1, WS_OP_BINARY = 0x2, WS_OP_CLOSE = 0x8,
       WS_OP_PING = 0x9, WS_OP_PONG = 0xA };

/* An empty frame with room for cap bytes; NULL when out of memory. */
frame_t *frame_new(size_t cap);

/*
 * Builds a complete server-to-client WebSocket frame: FIN set, unmasked, the given opcode
 * and payload. NULL when out of memory or the payload exceeds UINT32_MAX - 14.
 */
frame_t *frame_build(int opcode, const void *payload, size_t len);

/* Writes a frame header for a payload of len bytes into out (at least 10 bytes); returns its size. */
size_t frame_header(uint8_t *out, int opcode, uint64_t len);

static inline frame_t *frame_ref(frame_t *f)
{
    unsigned prev = atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    (void)prev;
    /* Taking a reference on a dead frame is a use-after-free in the caller. */
    if (prev == 0)
        __builtin_trap();
    return f;
}

void frame__free(frame_t *f);

static inline void frame_release(frame_t **fp)
{
    frame_t *f = *fp;
    *fp = NULL;
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        frame__free(f);
}

static inline bool frame_is_private(frame_t *f)
{
    return atomic_load_explicit(&f->refs, memory_order_acquire) == 1;
}

/* Gives a private frame's unused capacity back (cap = len); returns the frame, which may have
 * moved (or f itself when realloc fails: it stays valid). */
frame_t *frame_shrink(frame_t *f);

/* Appends up to cap - len bytes of data to a private frame; returns the number appended. */
size_t frame_append(frame_t *f, const void *data, size_t len);

#endif
