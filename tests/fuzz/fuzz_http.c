/*
 * fuzz_http — the HTTP request path as a client drives it: the input is the byte stream of
 * one TCP connection (requests, pipelined requests, bodies, an Upgrade and whatever frames
 * follow it), written to the real server in chunks. Drives conn.c, http.c (llhttp, limits,
 * the plain endpoints, /api/publish, POST /text/moderation and its deferred reply,
 * /socket.info), auth.c (tokens and keys in requests), the handshake, then ws_session.c and
 * a dialect if the stream upgrades.
 *
 * Input: byte 0 = control (low 7 bits: chunk size, fz_chunk_size; bit 7: end with a TCP
 * RST instead of a FIN), then the stream.
 */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init(NULL);
    if (size < 1)
        return 0;
    int fd = fz_connect(NULL, 0);
    fz_write_chunked(fd, data + 1, size - 1, fz_chunk_size(data[0] & 0x7f));
    fz_end(fd, data[0] & 0x80);
    return 0;
}
