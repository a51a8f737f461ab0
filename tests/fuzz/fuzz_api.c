/*
 * fuzz_api — one API's JSON commands (built once per API: FZ_API = FZ_SERVICE, FZ_CABLE,
 * FZ_MODERATION or FZ_FLOW). The harness upgrades to the API's endpoint with valid
 * credentials; each input line becomes one text message (a masked frame built here), and
 * all of them are written in chunks: many commands per read, replies and fan-out frames
 * queued together. Drives the dialect's parsing and replies, the hub (subscriptions,
 * publishes, fan-out to the connection itself), moderation scoring on the thread pool, and
 * the output queue.
 *
 * Cable: a line that does not start with '{' is a channel identifier; it is sent as
 * {"command":"subscribe","identifier":<the line as a JSON string>}, so that identifiers
 * (JSON inside a JSON string) are mutated directly.
 *
 * Input: byte 0 = control (low 4 bits: chunk size, fz_chunk_size; bit 7: end with a TCP
 * RST instead of a FIN), then lines separated by '\n'.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"

#ifndef FZ_API
#error "FZ_API must be defined"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Appends one text frame with payload p to out. */
static size_t put_message(uint8_t *out, const uint8_t *p, size_t len)
{
#if FZ_API == FZ_CABLE
    if (len == 0 || p[0] != '{') {
        json_t *cmd = json_pack("{s:s, s:s%}", "command", "subscribe", "identifier", (const char *)p, len);
        char *text = cmd ? json_dumps(cmd, JSON_COMPACT) : NULL;
        json_decref(cmd);
        size_t n = text ? fz_frame(out, 1, 0x1, (const uint8_t *)text, strlen(text)) : 0;
        free(text);
        return n; /* not UTF-8: jansson refuses it, and the line is skipped */
    }
#endif
    return fz_frame(out, 1, 0x1, p, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init(NULL);
    if (size < 1)
        return 0;
    /* Per line: a JSON-escaped identifier (6 bytes per byte), its wrapping, a frame header. */
    uint8_t *out = malloc(size * 96 + 128);
    if (!out)
        return 0;
    size_t n = 0;
    const uint8_t *p = data + 1, *end = data + size;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        n += put_message(out + n, p, len);
        p += len + 1;
    }
    int fd = fz_open(FZ_API);
    fz_write_chunked(fd, out, n, fz_chunk_size(data[0] & 0x0f));
    fz_end(fd, data[0] & 0x80);
    free(out);
    return 0;
}
