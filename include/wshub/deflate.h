/*
 * deflate — permessage-deflate (RFC 7692), when websocket.compression is on.
 *
 * What the server sends is compressed without context takeover (we always answer
 * server_no_context_takeover): every message is a complete raw deflate block sequence on its
 * own, so one compressed frame per shared frame serves every session that negotiated the
 * extension (frame.h: a shared frame's compressed sibling, built once by the first such
 * session, on whichever worker, and freed with the frame). The compressor is the worker
 * thread's own (one per window size used, reset per message), never a session's.
 *
 * What the client sends is inflated per message, with its context kept across messages
 * unless the client offered client_no_context_takeover: then the inflater exists only while
 * a message is inflated. A kept inflater is zlib's state (about 7 KB) and the client's LZ77
 * window (2^client_max_window_bits bytes, 32 KiB unless the client asked for less).
 * Inflated output is bounded by limits.max_message_bytes (past it: 1009).
 */
#ifndef WSHUB_DEFLATE_H
#define WSHUB_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wshub/frame.h"

/* Messages shorter than this are sent uncompressed (RSV1 clear, which RFC 7692 §6 allows on
 * a connection that negotiated the extension): deflate's own overhead (the block header and
 * the Huffman tables) outweighs what a few dozen bytes could save, and it costs a compressor
 * pass per message. */
#define PMD_MIN_BYTES 64

/* The window of the shared compressed frames: sessions whose client asked for a smaller
 * server_max_window_bits get the uncompressed shared frame (their replies are compressed
 * with their own window). */
#define PMD_SHARED_BITS 15

/* The negotiated parameters of one session. */
typedef struct pmd_params {
    uint8_t server_bits;     /* window of what we send: the client's server_max_window_bits, else 15 */
    uint8_t client_bits;     /* window of what the client sends: client_max_window_bits, else 15 */
    bool client_no_takeover; /* the client resets its compressor after each message */
} pmd_params_t;

/* Reads the offers of one Sec-WebSocket-Extensions value, in order, and takes the first
 * acceptable permessage-deflate offer (RFC 7692 §5, §7.1): 1 with *p set and resp (the
 * response header's value, NUL-terminated) written; 0 when no offer in value is acceptable
 * (unknown or repeated parameters, bad values: that offer is declined, the next one read). */
int pmd_negotiate(const char *value, size_t len, pmd_params_t *p, char *resp, size_t resplen);

/* A session's inflate side. */
typedef struct pmd pmd_t;
pmd_t *pmd_new(const pmd_params_t *p);
void pmd_free(pmd_t *z);
const pmd_params_t *pmd_params(const pmd_t *z);

enum { PMD_OK = 0, PMD_TOO_BIG = -1, PMD_CORRUPT = -2, PMD_NOMEM = -3 };

/* Inflates one whole compressed message (the payload of its frames, without the 00 00 ff ff
 * tail, which this adds): PMD_OK with *out (malloc'd, the caller frees it) and *outlen;
 * PMD_TOO_BIG past max bytes; PMD_CORRUPT when it is not a valid deflate stream (or one that
 * does not end on a block boundary after the tail); PMD_NOMEM. */
int pmd_inflate(pmd_t *z, const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *outlen);

/* A complete compressed frame (FIN, RSV1, opcode) for a message to a session whose server
 * window is bits; NULL when it is not worth it (shorter than PMD_MIN_BYTES, or no smaller
 * compressed) or out of memory: send the message uncompressed then. */
frame_t *pmd_frame(int opcode, const void *data, size_t len, int bits);

/* The compressed sibling of the shared frame f (built once, then shared), or NULL: send f. */
frame_t *pmd_shared(frame_t *f);

/* zlib memory held now, in bytes, by every compressor and inflater of the process. */
size_t pmd_zlib_bytes(void);

#endif
