/*
 * frame — see include/wshub/frame.h. The only module that allocates frame memory.
 */
#include "wshub/frame.h"

#include <stdlib.h>
#include <string.h>

frame_t *frame_new(size_t cap)
{
    if (cap > UINT32_MAX - sizeof(frame_t))
        return NULL;
    frame_t *f = malloc(sizeof *f + cap);
    if (!f)
        return NULL;
    atomic_init(&f->refs, 1);
    f->len = 0;
    f->cap = (uint32_t)cap;
    f->born_ns = 0;
    atomic_init(&f->deflated, NULL);
    return f;
}

size_t frame_header(uint8_t *out, int opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

frame_t *frame_build(int opcode, const void *payload, size_t len)
{
    if (len > UINT32_MAX - 64)
        return NULL;
    frame_t *f = frame_new(len + 10);
    if (!f)
        return NULL;
    f->len = (uint32_t)frame_header(f->data, opcode, len);
    if (len)
        memcpy(f->data + f->len, payload, len);
    f->len += (uint32_t)len;
    return f;
}

frame_t *frame_shrink(frame_t *f)
{
    if (f->cap == f->len)
        return f;
    frame_t *g = realloc(f, sizeof *f + f->len);
    if (!g)
        return f;
    g->cap = g->len;
    return g;
}

size_t frame_append(frame_t *f, const void *data, size_t len)
{
    size_t room = f->cap - f->len;
    if (len > room)
        len = room;
    memcpy(f->data + f->len, data, len);
    f->len += (uint32_t)len;
    return len;
}

void frame__free(frame_t *f)
{
    frame_t *z = atomic_load_explicit(&f->deflated, memory_order_acquire);
    if (z != FRAME_NOT_DEFLATED)
        frame_release(&z);
    free(f);
}
