/*
 * fuzz_inflate — permessage-deflate (server/deflate.c): the offers of a
 * Sec-WebSocket-Extensions value, and what a client's compressed messages inflate to under
 * the 64 KiB limit, with and without context takeover, then a compressed frame of the output
 * inflated back (round trip at the negotiated window).
 *
 * Input: byte 0 = control (low 3 bits: the client's window bits - 8; bit 3: client
 * no context takeover; bits 4-7: where the first message ends, in 16ths of the rest), then
 * the rest: the offer text, and also the two messages' compressed payloads.
 */
#include <stdlib.h>
#include <string.h>

#include "wshub/deflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    pmd_params_t p;
    char resp[160];
    if (pmd_negotiate((const char *)data + 1, size - 1, &p, resp, sizeof resp) && strlen(resp) >= sizeof resp)
        abort();
    p = (pmd_params_t){.server_bits = 15, .client_bits = (uint8_t)(8 + (data[0] & 7)),
                       .client_no_takeover = (data[0] & 8) != 0};
    pmd_t *z = pmd_new(&p);
    if (!z)
        return 0;
    size_t rest = size - 1, cut = rest * (data[0] >> 4) / 16;
    const uint8_t *msgs[2] = {data + 1, data + 1 + cut};
    size_t lens[2] = {cut, rest - cut};
    for (int i = 0; i < 2; i++) {
        uint8_t *out = NULL;
        size_t outlen = 0;
        int r = pmd_inflate(z, msgs[i], lens[i], 65536, &out, &outlen);
        if (r != PMD_OK)
            break;
        if (outlen > 65536)
            abort();
        frame_t *f = pmd_frame(WS_OP_BINARY, out, outlen, p.client_bits);
        if (f) { /* what we would send back inflates to the same bytes at that window */
            size_t hl = f->data[1] == 127 ? 10 : f->data[1] == 126 ? 4 : 2, backlen;
            uint8_t *back;
            pmd_params_t q = {.client_bits = p.client_bits, .client_no_takeover = true};
            pmd_t *y = pmd_new(&q);
            if (!y || pmd_inflate(y, f->data + hl, f->len - hl, 65536, &back, &backlen) != PMD_OK ||
                backlen != outlen || memcmp(back, out, outlen) != 0)
                abort();
            free(back);
            pmd_free(y);
            frame_release(&f);
        }
        free(out);
    }
    pmd_free(z);
    return 0;
}
