/*
 * trie.c — the index of the compiled lists: every pattern in a trie of words (phrases of
 * one entry share their prefixes), its first level reached through a hash table of first
 * words, one trie per entry for its exceptions, the kinds found below each node (so that a
 * walk skips what it is not looking for), and the one-word candidates for masked tokens.
 *
 * Owns: modengine__build_index and the nodes, terms, buckets and candidates it fills.
 * Never: reads lists or normalises words (lists.c, terms.c), or matches text (match.c).
 */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

static int same_word(const modengine_t *e, uint32_t a, uint32_t b)
{
    const struct mword *x = &e->words[a], *y = &e->words[b];
    return x->wild == y->wild && x->len == y->len &&
           memcmp(e->chars + x->off, e->chars + y->off, 2u * x->len) == 0;
}

static int64_t new_node(modengine_t *e, uint32_t word)
{
    if (grow((void **)&e->nodes, &e->capnodes, e->nnodes + 1, sizeof *e->nodes))
        return -1;
    e->nodes[e->nnodes] = (struct tnode){0, word, NONE, NONE, NONE, NONE, 0, NONE};
    return (int64_t)e->nnodes++;
}

/* Adds the words of p from index `from` below node n, and p's entry at the end. */
static int trie_path(modengine_t *e, uint32_t n, const struct pattern *p, uint32_t from)
{
    for (uint32_t i = from; i < p->nwords; i++) {
        uint32_t w = p->word0 + i, c = e->nodes[n].child, last = NONE;
        while (c != NONE && !same_word(e, e->nodes[c].word, w)) {
            last = c;
            c = e->nodes[c].sibling;
        }
        if (c == NONE) {
            int64_t k = new_node(e, w);
            if (k < 0)
                return -1;
            c = (uint32_t)k;
            if (last == NONE)
                e->nodes[n].child = c;
            else
                e->nodes[last].sibling = c;
        }
        n = c;
    }
    for (uint32_t t = e->nodes[n].term; t != NONE; t = e->terms[t].next)
        if (e->terms[t].entry == p->entry)
            return 0;
    if (grow((void **)&e->terms, &e->capterms, e->nterms + 1, sizeof *e->terms))
        return -1;
    e->terms[e->nterms] = (struct tterm){p->entry, e->nodes[n].term};
    e->nodes[n].term = (uint32_t)e->nterms++;
    if (e->entries[p->entry].kind < NCAT && p->entry < e->nodes[n].first_entry)
        e->nodes[n].first_entry = p->entry;
    return 0;
}

/* Adds one pattern to the trie: its first word through the hash table. */
static int trie_insert(modengine_t *e, const struct pattern *p)
{
    const struct mword *w0 = &e->words[p->word0];
    uint32_t h = hash_key(w0->wild, e->chars + w0->off, w0->len) & e->bmask;
    uint32_t n = e->buckets[h];
    while (n != NONE && !same_word(e, e->nodes[n].word, p->word0))
        n = e->nodes[n].next;
    if (n == NONE) {
        int64_t k = new_node(e, p->word0);
        if (k < 0)
            return -1;
        n = (uint32_t)k;
        e->nodes[n].top = 1;
        e->nodes[n].next = e->buckets[h];
        e->buckets[h] = n;
        e->lenmask[w0->wild] |= 1ull << w0->len;
    }
    return trie_path(e, n, p, 1);
}

/* Union of the kinds ending at or below node n (children have higher indexes). */
static void trie_kinds(modengine_t *e)
{
    for (size_t n = e->nnodes; n-- > 0;) {
        struct tnode *nd = &e->nodes[n];
        for (uint32_t t = nd->term; t != NONE; t = e->terms[t].next)
            nd->kinds |= (uint16_t)(1u << e->entries[e->terms[t].entry].kind);
        for (uint32_t c = nd->child; c != NONE; c = e->nodes[c].sibling)
            nd->kinds |= e->nodes[c].kinds;
    }
}

/* One trie per entry with exceptions, rooted at a node without a word. */
static int build_exceptions(modengine_t *e)
{
    for (size_t i = 0; i < e->nentries; i++) {
        struct entry *en = &e->entries[i];
        if (!en->nx)
            continue;
        int64_t root = new_node(e, NONE);
        if (root < 0)
            return -1;
        en->xroot = (uint32_t)root;
        for (uint32_t x = en->x0; x < en->x0 + en->nx; x++) {
            if (trie_path(e, en->xroot, &e->xpats[x], 0) != 0)
                return -1;
            if (e->xpats[x].nwords > en->xlen)
                en->xlen = e->xpats[x].nwords;
        }
    }
    return 0;
}

/* Counting sort of the one-word content nodes: "*stem" words, then by first letter (node
 * order within a letter, so the result does not depend on the hash). */
static int build_single(modengine_t *e)
{
    e->single = malloc((e->nnodes ? e->nnodes : 1) * sizeof *e->single);
    if (!e->single)
        return -1;
    uint32_t count[258];
    memset(count, 0, sizeof count);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t n = 0; n < e->nnodes; n++) {
            const struct tnode *nd = &e->nodes[n];
            const struct mword *w = nd->word == NONE ? NULL : &e->words[nd->word];
            if (!nd->top || nd->first_entry == NONE || w->joined)
                continue;
            unsigned slot = w->wild & W_LEAD ? 0 : 1 + (uint8_t)e->chars[w->off];
            if (pass == 0)
                count[slot + 1]++;
            else
                e->single[count[slot]++] = (uint32_t)n;
        }
        if (pass == 0) {
            for (unsigned c = 1; c < 258; c++)
                count[c] += count[c - 1];
            for (unsigned c = 0; c < 257; c++)
                e->single_at[c] = count[c + 1];
            e->nsingle = count[257];
        }
    }
    return 0;
}

int modengine__build_index(modengine_t *e)
{
    size_t nb = 64;
    while (nb < 2 * e->npats)
        nb *= 2;
    e->buckets = malloc(nb * sizeof *e->buckets);
    if (!e->buckets)
        return -1;
    e->bmask = (uint32_t)(nb - 1);
    for (size_t b = 0; b < nb; b++)
        e->buckets[b] = NONE;
    for (size_t i = 0; i < e->npats; i++)
        if (trie_insert(e, &e->pats[i]) != 0)
            return -1;
    if (build_exceptions(e) != 0)
        return -1;
    trie_kinds(e);
    if (build_single(e) != 0)
        return -1;
    free(e->pats); /* the tries have them all */
    free(e->xpats);
    e->pats = e->xpats = NULL;
    e->npats = e->cappats = e->nxpats = e->capxpats = 0;
    return 0;
}
