/*
 * corpus_unescape — undoes the escaping of tests/moderation/make_corpus.py in corpus.txt (a
 * backslash doubled, "\xHH" for a byte), in place. Shared by the corpus unit test
 * (tests/unit/test_modengine.c) and the scoring benchmark (bench/modscore.c), which is also
 * compiled on its own against the pre-split engine: header-only.
 */
#ifndef WSHUB_CORPUS_UNESCAPE_H
#define WSHUB_CORPUS_UNESCAPE_H

#include <stddef.h>

static inline int corpus_hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

static inline size_t corpus_unescape(char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\\') {
            s[k++] = '\\';
            i++;
        } else if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x') {
            s[k++] = (char)(corpus_hexval(s[i + 2]) * 16 + corpus_hexval(s[i + 3]));
            i += 3;
        } else {
            s[k++] = s[i];
        }
    }
    return k;
}

#endif
