/*
 * history — the hub's per-channel bounded history without a broker (issue 17): the messages
 * of each channel, newest history.size of them no older than history.ttl_s, every channel
 * together within history.max_bytes; each message gets its stream position here (hub.h).
 *
 * A ring of references to the published hub_msg_t per channel: a replay sends the very
 * frames live subscribers got (built once, DESIGN.md decision 4), nothing is copied.
 *
 * Threads: one mutex (history_lock/unlock) guards everything; the hub holds it from the
 * position's assignment to the message's posting, so that every subscriber sees a channel's
 * messages in offset order. The others are called with it held.
 */
#ifndef WSHUB_HISTORY_H
#define WSHUB_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wshub/hub.h"

typedef struct history history_t;

/* size messages per channel (> 0), ttl_s, max_bytes for all (0 = no bound). NULL: no memory. */
history_t *history_new(size_t size, uint32_t ttl_s, size_t max_bytes);
void history_free(history_t *h);
void history_lock(history_t *h);
void history_unlock(history_t *h);

/* Gives m its position (m->offset, m->epoch; m->ms must be set) and keeps a reference to it.
 * 0, or UV_ENOMEM: m has its position but is not kept, and the channel's history is cleared
 * (a recovery from before m must not skip it silently). */
int history_append(history_t *h, hub_msg_t *m, uint64_t now_ms);

/* What a read found: whether it reaches back, the messages (references, offset order) and the
 * channel's position now (its epoch and last offset). */
typedef struct history_read {
    bool reaches;
    hub_msg_t **msgs;
    size_t n;
    hub_pos_t tail;
} history_read_t;

/* The messages of channel after pos (pos->epoch must be the channel's, and its next message
 * still kept) or, pos NULL, since since_ms. 0 or UV_ENOMEM. history_read_clear releases. */
int history_read(history_t *h, const char *channel, size_t clen, const hub_pos_t *pos, uint64_t since_ms,
                 uint64_t now_ms, history_read_t *out);
void history_read_clear(history_read_t *r);

/* A fresh epoch: HUB_EPOCH_LEN hex characters and a NUL. */
void history_new_epoch(char out[HUB_EPOCH_LEN + 1]);

/* Wall clock, ms since the Unix epoch. */
uint64_t history_now_ms(void);

#endif
