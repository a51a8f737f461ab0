/*
 * utf8 — incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF), resumable across chunks and fragments, so a text message is rejected
 * at its first invalid byte. A table-driven DFA after Bjoern Hoehrmann's decoder.
 */
#ifndef WSHUB_UTF8_H
#define WSHUB_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0u /* at a character boundary */
#define UTF8_REJECT 12u /* invalid: stays rejected */

/* Feeds len bytes; returns the new state (UTF8_ACCEPT, UTF8_REJECT, or inside a sequence). */
uint32_t utf8_validate(uint32_t state, const uint8_t *s, size_t len);

#endif
