#!/usr/bin/env python3
"""Writes tests/moderation/corpus.txt: the texts whose scores tests/unit/test_modengine.c
pins byte for byte (tests/moderation/corpus.expected, one JSON answer per line).

One text per line, escaped so that any byte string fits on a line: backslash is "\\\\",
a byte that is a control character, DEL, or part of invalid UTF-8 is "\\xHH"; everything
else is literal UTF-8. Sources: the labelled set, the C string literals of
tests/unit/test_modengine.c, the string literals of tests/e2e/10-moderation.test.js, and
texts generated with a fixed seed (obfuscation, Unicode, links, e-mail addresses, phone
numbers, shouting, repetition, NUL bytes, invalid UTF-8).

Usage: tests/moderation/make_corpus.py > tests/moderation/corpus.txt  (from the repository
root). Regenerating changes the corpus: then regenerate corpus.expected from a build whose
scores you trust, and say why in the commit.
"""
import json
import random
import re
import sys


def escape(b: bytes) -> str:
    try:
        b.decode('utf-8')
        valid = True
    except UnicodeDecodeError:
        valid = False
    out = []
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x5C:
            out.append('\\\\')
        elif c < 0x20 or c == 0x7F or (c >= 0x80 and not valid):
            out.append('\\x%02x' % c)
        elif c < 0x80:
            out.append(chr(c))
        else:
            # A valid multi-byte sequence: copy it whole.
            n = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
            out.append(b[i:i + n].decode('utf-8'))
            i += n
            continue
        i += 1
    return ''.join(out)


def c_literals(path):
    """The string literals of a C file, adjacent literals joined, escapes decoded."""
    src = open(path, encoding='utf-8').read()
    lit = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
    texts = []
    pos = 0
    while True:
        m = lit.search(src, pos)
        if not m:
            break
        parts = [m.group(1)]
        pos = m.end()
        while True:
            m2 = re.compile(r'\s*"((?:[^"\\\n]|\\.)*)"').match(src, pos)
            if not m2:
                break
            parts.append(m2.group(1))
            pos = m2.end()
        texts.append(b''.join(c_unescape(p) for p in parts))
    return texts


def c_unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        ch = s[i]
        if ch != '\\':
            out += ch.encode('utf-8')
            i += 1
            continue
        n = s[i + 1]
        if n == 'x':
            j = i + 2
            while j < len(s) and s[j] in '0123456789abcdefABCDEF':
                j += 1
            out.append(int(s[i + 2:j], 16) & 0xFF)
            i = j
            continue
        simple = {'n': 10, 't': 9, 'r': 13, '0': 0, '\\': 92, '"': 34, "'": 39}
        out.append(simple.get(n, ord(n)))
        i += 2
    return bytes(out)


def js_literals(path):
    src = open(path, encoding='utf-8').read()
    texts = []
    for m in re.finditer(r"'((?:[^'\\\n]|\\.)*)'|`([^`$\\]*)`", src):
        s = m.group(1) if m.group(1) is not None else m.group(2)
        texts.append(s.encode('utf-8'))
    return texts


LEET = {'a': ['4', '@'], 'e': ['3', '€'], 'i': ['1', '!', '|'], 'o': ['0'], 's': ['5', '$'],
        't': ['7', '+'], 'g': ['9', '6'], 'b': ['8'], 'l': ['1', '|']}
HOMO = {'a': 'а', 'c': 'с', 'e': 'е', 'o': 'о', 'p': 'р', 'x': 'х', 'y': 'у', 'i': 'і',
        'k': 'κ', 's': 'ѕ', 'h': 'һ'}
ACCENT = {'a': 'àáâãäåāăą', 'c': 'çćĉċč', 'e': 'èéêëēĕėęě', 'i': 'ìíîïĩīĭį', 'o': 'òóôõöøōŏő',
          'u': 'ùúûüũūŭůűų', 'n': 'ñńņňŉ', 's': 'śŝşšſ', 'y': 'ýÿŷ', 'g': 'ĝğġģ', 'k': 'ķĸ',
          'l': 'ĺļľŀł', 'r': 'ŕŗř', 't': 'ţťŧ', 'z': 'źżž', 'd': 'ďđ', 'h': 'ĥħ', 'w': 'ŵ'}


def styled(word, base_upper, base_lower):
    out = []
    for ch in word:
        if 'a' <= ch <= 'z':
            out.append(chr(base_lower + ord(ch) - 97))
        elif 'A' <= ch <= 'Z':
            out.append(chr(base_upper + ord(ch) - 65))
        else:
            out.append(ch)
    return ''.join(out)


def obfuscate(rng, word):
    k = rng.randrange(16)
    if k == 0:
        return ''.join(rng.choice(LEET.get(c, [c])) if rng.random() < 0.5 else c for c in word)
    if k == 1:
        return rng.choice([' ', '.', '-', '_', '~', '/', '  ', '. ', '*']).join(word)
    if k == 2:
        return ''.join(c * rng.randrange(1, 6) for c in word)
    if k == 3:
        if len(word) < 3:
            return word
        cut = rng.randrange(1, len(word) - 1)
        return word[:cut] + '*' * rng.randrange(1, 3) + word[cut + 1:]
    if k == 4:
        return ''.join(HOMO.get(c, c) for c in word)
    if k == 5:
        return styled(word, 0xFF21, 0xFF41)  # fullwidth
    if k == 6:
        return styled(word, 0x1D400, 0x1D41A)  # mathematical bold
    if k == 7:
        return styled(word, 0x24B6, 0x24D0)  # circled
    if k == 8:
        return '\u200b'.join(word)
    if k == 9:
        return ''.join(c + '\u0301' for c in word)
    if k == 10:
        return ''.join(rng.choice(ACCENT[c]) if c in ACCENT and rng.random() < 0.6 else c
                       for c in word)
    if k == 11:
        return word.upper()
    if k == 12:
        return word.title()
    if k == 13:
        return styled(word.upper(), 0x1F130, 0x1F130)  # squared
    if k == 14:
        return styled(word.upper(), 0x1F1E6, 0x1F1E6)  # regional indicators
    return word


FILLER = ('you are such a the my this is what and hey lol go to see it was really so very '
          'not never I will we they your friend game stream chat today tomorrow please thanks '
          'Dick Philip K. Moby Essex Scunthorpe assistant class grape button cocktail').split()
LINKS = ['https://example.org/offer', 'www.example.com', 'bit.ly/abc', 'discord.gg/xyz',
         'http://a.b.example.co.uk/x?y=1', 'example.net/x', 't.co', 'node.js', 'e.g.',
         'free.money.xyz', 'HTTPS://SHOUT.EXAMPLE.COM', 'www.x', 'a.b.c.d.e.f.com']
EMAILS = ['someone@example.com', 'a.b@example.org', 'a@b', 'x_y+z@mail.example.co.uk',
          'me@1.2.3.4', 'user@localhost', 'bob@example.c0m']
PHONES = ['+1 (555) 123-4567', '020 7946 0018', '+447700900123', '555-123-4567',
          '2024-05-17', '192.168.1.20', '123456789', '(555) 123 4567', '555.123.4567',
          '+12', '1-800-FLOWERS', '12 34 56 78 90 12 34 56']


def gen_texts(terms, lexwords):
    rng = random.Random(12)
    texts = []
    for _ in range(450):
        words = []
        for _ in range(rng.randrange(1, 12)):
            r = rng.random()
            if r < 0.3:
                words.append(obfuscate(rng, rng.choice(terms)))
            elif r < 0.45:
                words.append(rng.choice(lexwords))
            elif r < 0.5:
                words.append(rng.choice(LINKS))
            elif r < 0.55:
                words.append(rng.choice(EMAILS))
            elif r < 0.6:
                words.append(rng.choice(PHONES))
            else:
                words.append(rng.choice(FILLER))
        sep = rng.choice([' ', ' ', ' ', ', ', '. ', '! ', '\n', ' - '])
        t = sep.join(words)
        if rng.random() < 0.1:
            t = t.upper()
        if rng.random() < 0.1:
            t = ' '.join([rng.choice(words)] * rng.randrange(3, 9))
        if rng.random() < 0.05:
            t += rng.choice('a!?.z*') * rng.randrange(5, 30)
        texts.append(t.encode('utf-8'))
    # Code points from every range the character classes distinguish, as words.
    points = [0x85, 0xA0, 0xA1, 0xAD, 0xB7, 0xC6, 0xD7, 0xDE, 0xDF, 0xF7, 0xFF, 0x130, 0x132,
              0x138, 0x149, 0x152, 0x153, 0x178, 0x17F, 0x180, 0x192, 0x2BC, 0x300, 0x36F, 0x370,
              0x391, 0x3C9, 0x410, 0x44F, 0x501, 0x530, 0x5D0, 0x627, 0x1680, 0x180E, 0x1AB0,
              0x1DC0, 0x2000, 0x200A, 0x200B, 0x200F, 0x2010, 0x2011, 0x2013, 0x2018, 0x2019,
              0x2022, 0x2028, 0x2029, 0x202F, 0x2032, 0x205F, 0x2060, 0x2064, 0x20AC, 0x20D0,
              0x249C, 0x24B6, 0x24E9, 0x2BFF, 0x2C00, 0x2E00, 0x3000, 0x3002, 0x3042, 0x4E00,
              0xAC00, 0xE000, 0xF8FF, 0xF900, 0xFE00, 0xFE20, 0xFE30, 0xFEFF, 0xFF01, 0xFF1F,
              0xFF21, 0xFF5E, 0xFF61, 0xFFFD, 0x10000, 0x1D400, 0x1D6A3, 0x1D7CE, 0x1D7FF,
              0x1F130, 0x1F150, 0x1F170, 0x1F1E6, 0x1F600, 0x1FAFF, 0x1FB00, 0x20000, 0xE0100,
              0xE01EF, 0x10FFFD]
    for _ in range(120):
        w = ''.join(chr(rng.choice(points)) if rng.random() < 0.4 else rng.choice('fuckshitass ')
                    for _ in range(rng.randrange(1, 14)))
        texts.append(w.encode('utf-8'))
    for top in [0x600] * 20 + [0x3000] * 20 + [0x10000] * 20 + [0x110000] * 20:
        cp = rng.randrange(0x80, top)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0xFFFD
        texts.append(('sh' + chr(cp) + 'it ' + chr(cp) * 3 + ' fu' + chr(cp) + 'ck').encode('utf-8'))
    # Bytes: NULs, invalid UTF-8, overlong forms, surrogates, truncated sequences.
    raw = [b'f\x00u\x00c\x00k', b'\x00', b'sh\x00it happens', b'\xff\xfe fuck', b'f\xc3 ck',
           b'\xed\xa0\x80 shit', b'\xc0\xaf ass', b'\xe0\x80\xaf', b'\xf4\x90\x80\x80 cunt',
           b'fu\xe2\x80', b'\xf0\x9f\x98', b'\x80\x81\x82 bitch', b'k\xc3\xbf\xc3s', b'\xf5\xf6',
           b'\xe2\x80\x8b\xe2', b'idiot\x00\x00\x00you']
    for _ in range(60):
        b = bytearray(rng.choice(texts[:450]))
        for _ in range(rng.randrange(1, 4)):
            b.insert(rng.randrange(len(b) + 1), rng.choice([0, 0x80, 0xC3, 0xE2, 0xF0, 0xFF, 0xED]))
        raw.append(bytes(b))
    texts += raw
    # Long texts: windows, budgets and repetition.
    texts.append(('f u c k ' * 300).encode())
    texts.append(('a' * 3000).encode())
    texts.append(' '.join(rng.choice(LINKS) for _ in range(200)).encode())
    texts.append('.'.join(rng.choice('abcdefghijk1!*') for _ in range(1500)).encode())
    texts.append(('buy ' * 400 + 'now').encode())
    return texts


def main():
    lst = json.load(open('config/moderation/en.json', encoding='utf-8'))
    terms = []
    for e in lst['entries']:
        for t in [e['term']] + e.get('forms', []):
            if '<' not in t:
                terms.append(t.replace('*', ''))
    for members in lst['groups'].values():
        terms += members
    lexwords = [w for k, v in lst['lexicons'].items() if not k.startswith('//') for w in v]
    texts = []
    for line in open('tests/moderation/labelled.jsonl', encoding='utf-8'):
        texts.append(json.loads(line)['text'].encode('utf-8'))
    texts += c_literals('tests/unit/test_modengine.c')
    texts += js_literals('tests/e2e/10-moderation.test.js')
    texts += gen_texts(terms, lexwords)
    seen = set()
    out = sys.stdout
    for t in texts:
        if t in seen:
            continue
        seen.add(t)
        out.write(escape(t) + '\n')


if __name__ == '__main__':
    main()
