/* Unit tests of permessage-deflate (server/deflate.c): the negotiation rules, the inflate
 * bounds (a bomb stops at the limit), round trips through a compressed frame, and the shared
 * frame's compressed sibling (built once, freed with the frame). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <zlib.h>

#include "wshub/deflate.h"

static int negotiate(const char *offer, pmd_params_t *p, char *resp)
{
    return pmd_negotiate(offer, strlen(offer), p, resp, 160);
}

static void test_negotiation(void **state)
{
    (void)state;
    pmd_params_t p;
    char resp[160];
    assert_int_equal(negotiate("permessage-deflate", &p, resp), 1);
    assert_string_equal(resp, "permessage-deflate; server_no_context_takeover");
    assert_int_equal(p.server_bits, 15);
    assert_int_equal(p.client_bits, 15);
    assert_false(p.client_no_takeover);
    assert_int_equal(negotiate("permessage-deflate; client_no_context_takeover; client_max_window_bits=9; "
                               "server_max_window_bits=8", &p, resp), 1);
    assert_string_equal(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                              "server_max_window_bits=8; client_max_window_bits=9");
    assert_int_equal(p.server_bits, 8);
    assert_int_equal(p.client_bits, 9);
    assert_true(p.client_no_takeover);
    const char *declined[] = {"", "foo", "permessage-deflate; x", "permessage-deflate; server_max_window_bits",
                              "permessage-deflate; server_max_window_bits=7", "permessage-deflate; client_max_window_bits=016",
                              "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                              "permessage-deflate; client_no_context_takeover=x", "permessage-deflate; server_max_window_bits=\"10"};
    for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++)
        assert_int_equal(negotiate(declined[i], &p, resp), 0);
    assert_int_equal(negotiate("foo; a=\"b,c\", permessage-deflate; bad, permessage-deflate; server_max_window_bits=\"12\"",
                               &p, resp), 1);
    assert_int_equal(p.server_bits, 12);
}

/* Raw deflate of data, sync-flushed, without the 00 00 ff ff tail (as a client sends it). */
static uint8_t *client_deflate(const uint8_t *data, size_t len, size_t *out_len)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, len) + 16;
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_SYNC_FLUSH), Z_OK);
    *out_len = cap - z.avail_out - 4;
    deflateEnd(&z);
    return out;
}

static void test_inflate_bounds(void **state)
{
    (void)state;
    pmd_params_t p = {.server_bits = 15, .client_bits = 15};
    size_t n = 4 << 20, zlen, outlen;
    uint8_t *zeros = calloc(1, n), *out = NULL;
    uint8_t *z = client_deflate(zeros, n, &zlen);
    pmd_t *pmd = pmd_new(&p);
    assert_int_equal(pmd_inflate(pmd, z, zlen, 65536, &out, &outlen), PMD_TOO_BIG);
    assert_int_equal(pmd_inflate(pmd, z, zlen, n, &out, &outlen), PMD_OK);
    assert_int_equal(outlen, n);
    assert_memory_equal(out, zeros, n);
    free(out);
    assert_int_equal(pmd_inflate(pmd, z, zlen / 2, n, &out, &outlen), PMD_CORRUPT); /* cut */
    static const uint8_t junk[] = {0xff, 0xfe, 0xfd};
    pmd_free(pmd);
    pmd = pmd_new(&p);
    assert_int_equal(pmd_inflate(pmd, junk, sizeof junk, n, &out, &outlen), PMD_CORRUPT);
    pmd_free(pmd);
    free(z);
    free(zeros);
}

static void test_frame_round_trip(void **state)
{
    (void)state;
    char text[4096];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "abcdefgh"[i % 8 ^ (i / 64) % 3];
    assert_null(pmd_frame(WS_OP_TEXT, text, PMD_MIN_BYTES - 1, 15)); /* too small to pay */
    for (int bits = 8; bits <= 15; bits++) {
        frame_t *f = pmd_frame(WS_OP_TEXT, text, sizeof text, bits);
        assert_non_null(f);
        assert_int_equal(f->data[0], 0xc1); /* FIN, RSV1, text */
        size_t hl = f->data[1] == 126 ? 4 : 2, outlen;
        uint8_t *out;
        pmd_params_t p = {.client_bits = (uint8_t)bits}; /* inflate as a client with that window */
        pmd_t *pmd = pmd_new(&p);
        assert_int_equal(pmd_inflate(pmd, f->data + hl, f->len - hl, sizeof text, &out, &outlen), PMD_OK);
        assert_int_equal(outlen, sizeof text);
        assert_memory_equal(out, text, sizeof text);
        free(out);
        pmd_free(pmd);
        frame_release(&f);
    }
}

static void test_shared_sibling(void **state)
{
    (void)state;
    char text[1000];
    memset(text, 'q', sizeof text);
    frame_t *f = frame_build(WS_OP_TEXT, text, sizeof text);
    frame_t *z = pmd_shared(f);
    assert_non_null(z);
    assert_ptr_equal(pmd_shared(f), z); /* built once */
    assert_true(z->len < 100);
    frame_t *held = frame_ref(z); /* a queue still holds it when the frame goes */
    frame_release(&f);
    assert_true(frame_is_private(held));
    frame_release(&held);
    frame_t *small = frame_build(WS_OP_TEXT, "hi", 2);
    assert_null(pmd_shared(small));
    frame_release(&small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_inflate_bounds),
        cmocka_unit_test(test_frame_round_trip),
        cmocka_unit_test(test_shared_sibling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
