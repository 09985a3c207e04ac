/* test_adler32.c - traces/adler32.c against zlib's adler32() (an
 * independent implementation): random bytes and all-0xff bytes (the
 * largest sums), every length up to a few blocks and around the block
 * size, unaligned starts, continued from non-initial values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "adler32.h"
#include "helpers.h"

enum { N = 3 * 5536 + 100 };

static unsigned char buf[N + 64];

static void check(const unsigned char *p, size_t n, uint32_t start)
{
    const uint32_t want = (uint32_t)adler32(start, p, (uInt)n);
    cr_assert_eq(eplb_adler32(start, p, n), want, "n %zu start %08x (simd %d)", n, start,
                 eplb_adler32_simd());
    cr_assert_eq(eplb_adler32_scalar(start, p, n), want, "scalar, n %zu", n);
}

Test(adler32, equals_zlib)
{
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
    const size_t sizes[] = {0, 1, 31, 32, 33, 63, 64, 65, 1000, 5535, 5536, 5537, 5552, 5553,
                            11072, 11073, 2 * 5536 + 31, N};
    const uint32_t starts[] = {1, 0, 0xfff0fff0u, 0x12345678u % 65521u | (0xabcdu % 65521u) << 16};
    for (int fill = 0; fill < 2; fill++) {
        if (fill)
            memset(buf, 0xff, sizeof buf);
        for (size_t a = 0; a < 3; a++)        /* start offset: unaligned loads */
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
                for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++)
                    check(buf + a * 7, sizes[s], starts[k]);
        for (size_t n = 0; n <= 300; n++) /* every short length */
            check(buf + 1, n, 1);
    }
}

/* A stream's checksum in pieces equals the whole one (the reader checks
 * whole chunks, but the function continues like zlib's). */
Test(adler32, pieces_continue)
{
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 131 + (i >> 5));
    const uint32_t whole = eplb_adler32(1, buf, N);
    for (size_t cut = 0; cut <= N; cut += 997)
        cr_assert_eq(eplb_adler32(eplb_adler32(1, buf, cut), buf + cut, N - cut), whole,
                     "cut at %zu", cut);
}
