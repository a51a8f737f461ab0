/*
 * utf8 — see include/wshub/utf8.h. The DFA of Bjoern Hoehrmann's "Flexible and Economical
 * UTF-8 Decoder" (MIT licence), reduced to validation: byte classes, then transitions in
 * multiples of 12. A run of ASCII is skipped eight bytes at a time.
 */
#include "wshub/utf8.h"

#include <string.h>

static const uint8_t byte_class[256] = {
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,
    7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7, 7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,
    8,8,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
    10,3,3,3,3,3,3,3,3,3,3,3,3,4,3,3, 11,6,6,6,5,8,8,8,8,8,8,8,8,8,8,8,
};

static const uint8_t transition[108] = {
    0,12,24,36,60,96,84,12,12,12,48,72, 12,12,12,12,12,12,12,12,12,12,12,12,
    12, 0,12,12,12,12,12, 0,12, 0,12,12, 12,24,12,12,12,12,12,24,12,24,12,12,
    12,12,12,12,12,12,12,24,12,12,12,12, 12,24,12,12,12,12,12,12,12,24,12,12,
    12,12,12,12,12,12,12,36,12,36,12,12, 12,36,12,12,12,12,12,36,12,36,12,12,
    12,36,12,12,12,12,12,12,12,12,12,12,
};

uint32_t utf8_validate(uint32_t state, const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (state == UTF8_ACCEPT) {
            /* Fast path: eight ASCII bytes at a time. */
            while (i + 8 <= len) {
                uint64_t v;
                memcpy(&v, s + i, 8);
                if (v & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i == len)
                break;
        }
        state = transition[state + byte_class[s[i++]]];
        if (state == UTF8_REJECT)
            return UTF8_REJECT;
    }
    return state;
}
