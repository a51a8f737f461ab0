/*
 * fuzz_frames — the inbound WebSocket frame path: the harness upgrades to an endpoint, then
 * the input is the raw client byte stream (frames as the client writes them: masks,
 * fragments, control frames, lengths, close codes, invalid UTF-8, messages past the 16 KiB
 * limit of the fuzzing configuration), written in chunks so that frames split anywhere and
 * several arrive in one read (pipelined bursts). Drives conn.c, ws_session.c (wslay, UTF-8,
 * limits, close handshake) and the dialect the messages reach.
 *
 * Input: byte 0 = control (low 4 bits: chunk size, fz_chunk_size; bits 4-6: endpoint,
 * FZ_ECHO..FZ_FLOW; bit 7: end with a TCP RST instead of a FIN), then the stream.
 */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init(NULL);
    if (size < 1)
        return 0;
    int fd = fz_open(((data[0] >> 4) & 7) % FZ_API_COUNT);
    fz_write_chunked(fd, data + 1, size - 1, fz_chunk_size(data[0] & 0x0f));
    fz_end(fd, data[0] & 0x80);
    return 0;
}
