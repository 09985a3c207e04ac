/* adler32.c - Adler-32 (RFC 1950, section 8.2) for the parallel reader.
 *
 * s1 = 1 + the sum of the bytes, s2 = the sum of s1 after each byte, both
 * mod 65521; the checksum is s2 << 16 | s1.  Over a block of n bytes b_i
 * (i from 0) that follows (s1, s2):
 *     s1' = s1 + sum b_i,   s2' = s2 + n s1 + sum (n - i) b_i.
 * The AVX2 path takes 32 bytes per step: byte i of step j (global index
 * 32 j + i of nch steps) has weight n - 32 j - i = 32 (nch - 1 - j) +
 * (32 - i), so  sum (n - g) b_g = 32 sum_j P_j + sum_j sum_i (32 - i) b_ji,
 * where P_j is the sum of the steps before j.  Per step: the bytes' sum
 * (PSADBW against zero), the running P (adding the sum so far before this
 * step's), and the weighted sum (PMADDUBSW by 32..1, then PMADDWD by 1).
 * Blocks of 5536 bytes keep every lane and the scalar sums within 32
 * bits before the modulo (zlib's NMAX is 5552). */
#include "adler32.h"

#include <stdatomic.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#endif

#define BASE 65521u
#define NMAX 5552  /* largest n with 255 n (n + 1) / 2 + (n + 1) (BASE - 1) < 2^32 */
#define VBLOCK 5536 /* NMAX rounded down to 32 bytes */

uint32_t eplb_adler32_scalar(uint32_t adler, const unsigned char *p, size_t n)
{
    uint32_t s1 = adler & 0xffff, s2 = adler >> 16;
    while (n > 0) {
        size_t m = n < NMAX ? n : NMAX;
        n -= m;
        while (m--) {
            s1 += *p++;
            s2 += s1;
        }
        s1 %= BASE;
        s2 %= BASE;
    }
    return s2 << 16 | s1;
}

#ifdef HAVE_AVX2_PATH
__attribute__((target("avx2"))) static uint64_t hsum64(__m256i v)
{
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_extract_epi64(s, 1);
}

__attribute__((target("avx2"))) static uint32_t adler32_avx2(uint32_t adler,
                                                            const unsigned char *p, size_t n)
{
    uint64_t s1 = adler & 0xffff, s2 = adler >> 16;
    const __m256i zero = _mm256_setzero_si256(), ones = _mm256_set1_epi16(1);
    const __m256i w = _mm256_setr_epi8(32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19,
                                       18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3,
                                       2, 1);
    while (n >= 32) {
        size_t m = n < VBLOCK ? n & ~(size_t)31 : VBLOCK;
        n -= m;
        const size_t nch = m / 32;
        __m256i vs1 = zero, vps = zero, vs2 = zero;
        for (size_t j = 0; j < nch; j++, p += 32) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)p);
            vps = _mm256_add_epi64(vps, vs1);
            vs1 = _mm256_add_epi64(vs1, _mm256_sad_epu8(v, zero));
            vs2 = _mm256_add_epi32(vs2, _mm256_madd_epi16(_mm256_maddubs_epi16(v, w), ones));
        }
        /* vs2's eight int32 lanes, widened, summed */
        const __m256i lo = _mm256_cvtepu32_epi64(_mm256_castsi256_si128(vs2));
        const __m256i hi = _mm256_cvtepu32_epi64(_mm256_extracti128_si256(vs2, 1));
        s2 += (uint64_t)m * s1 + 32 * hsum64(vps) + hsum64(_mm256_add_epi64(lo, hi));
        s1 += hsum64(vs1);
        s1 %= BASE;
        s2 %= BASE;
    }
    return eplb_adler32_scalar((uint32_t)(s2 << 16 | s1), p, n);
}
#endif

int eplb_adler32_simd(void)
{
#ifdef HAVE_AVX2_PATH
    static atomic_int have = -1; /* every thread that asks stores the same */
    int h = atomic_load_explicit(&have, memory_order_relaxed);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("avx2") ? 1 : 0;
        atomic_store_explicit(&have, h, memory_order_relaxed);
    }
    return h;
#else
    return 0;
#endif
}

uint32_t eplb_adler32(uint32_t adler, const unsigned char *p, size_t n)
{
#ifdef HAVE_AVX2_PATH
    if (eplb_adler32_simd())
        return adler32_avx2(adler, p, n);
#endif
    return eplb_adler32_scalar(adler, p, n);
}
