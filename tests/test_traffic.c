/* test_traffic.c - the all-to-all traffic count's CPU reference
 * (kernels/traffic_cpu.c): a case counted by hand, the bit-set count
 * against the count by division and search on random inputs, and bad
 * configurations.  tests/gpu_tests.c compares the GPU kernel with it. */
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "kernels.h"

/* 4 GPUs on 2 nodes ({0, 1}, {2, 3}), 2 slots per GPU (slot p on GPU
 * p / 2), K = 3, 4 tokens in contiguous blocks of one (token t on GPU t),
 * layer 1 of 2 (layer 0 holds other ids, so a wrong layer stride shows):
 *   t0 (GPU 0) {4, 5, 2}: GPU 2 once (inter), GPU 1 (intra)
 *   t1 (GPU 1) {6, 4, -1}: GPUs 3, 2 (inter); -1 unplaced
 *   t2 (GPU 2) {0, 1, 3}: GPU 0 once, GPU 1 (both inter)
 *   t3 (GPU 3) {7, 6, 5}: its own GPU twice (nothing), GPU 2 (intra)
 * sent intra: GPU0 1, GPU1 0, GPU2 0, GPU3 1; sent inter: 1, 2, 2, 0;
 * received intra: GPU1 from t0, GPU2 from t3: 0, 1, 1, 0;
 * received inter: GPU0 from t2, GPU1 from t2, GPU2 from t0 and t1, GPU3
 * from t1: 1, 1, 2, 1. */
Test(traffic, counted_by_hand)
{
    const int32_t ph[4][2][3] = {{{0, 0, 0}, {4, 5, 2}},
                                 {{1, 1, 1}, {6, 4, -1}},
                                 {{2, 2, 2}, {0, 1, 3}},
                                 {{3, 3, 3}, {7, 6, 5}}};
    const int64_t want[4][4] = {{1, 0, 0, 1}, {1, 2, 2, 0}, {0, 1, 1, 0}, {1, 1, 2, 1}};
    const eplb_traffic_cfg_t c = {4, 2, 8};
    int64_t out[4][4], ref[4][4];
    eplb_assert_ok(eplb_traffic_count_cpu(&out[0][0], &ph[0][0][0], 4, 2, 3, 1, 1, &c, NULL));
    eplb_assert_ok(eplb_traffic_count_ref(&ref[0][0], &ph[0][0][0], 4, 2, 3, 1, 1, &c, NULL));
    for (int q = 0; q < 4; q++)
        for (int d = 0; d < 4; d++) {
            cr_assert_eq(out[q][d], want[q][d], "counter %d GPU %d: %lld, want %lld", q, d,
                         (long long)out[q][d], (long long)want[q][d]);
            cr_assert_eq(ref[q][d], want[q][d], "ref counter %d GPU %d", q, d);
        }
    /* the same tokens named by source rank: reversed, 4 + r wraps mod D */
    const uint16_t src[4] = {7, 6, 5, 4}; /* GPUs 3, 2, 1, 0 */
    eplb_assert_ok(eplb_traffic_count_cpu(&out[0][0], &ph[0][0][0], 4, 2, 3, 1, 1, &c, src));
    /* t0 now on GPU 3: {4,5,2} -> GPU 2 (intra), GPU 1 (inter);
     * t1 on GPU 2: {6,4} -> GPU 3 (intra), own GPU;
     * t2 on GPU 1: {0,1,3} -> GPU 0 (intra), own GPU;
     * t3 on GPU 0: {7,6,5} -> GPU 3 (inter), GPU 2 (inter) */
    const int64_t want2[4][4] = {{0, 1, 1, 1}, {2, 0, 0, 1}, {1, 0, 1, 1}, {0, 1, 1, 1}};
    cr_assert_eq(memcmp(out, want2, sizeof out), 0, "counts with source ranks");
}

/* The inputs' source: the reference (division and search) gives the
 * expected counts, whatever the sequence. */
static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void) { return eplb_test_rng_next(&rs); }

/* The bit-set count (up to 64 GPUs and 4096 slots) against the division
 * and search, over GPU counts, node splits, K, layer ranges, unplaced and
 * out-of-range entries, with and without source ranks. */
Test(traffic, bit_sets_match_division_and_search)
{
    const int Ds[] = {2, 3, 4, 8, 16, 32, 64};
    for (int it = 0; it < 300; it++) {
        const int D = Ds[rnd() % 7];
        int N = 1 + (int)(rnd() % D);
        while (D % N)
            N--;
        const int Sg = 1 + (int)(rnd() % (4096 / D < 40 ? 4096 / D : 40));
        const int P = D * Sg, K = 1 + (int)(rnd() % 16), L = 1 + (int)(rnd() % 5);
        const int64_t T = (int64_t)(rnd() % 300);
        const int l0 = (int)(rnd() % L), nl = 1 + (int)(rnd() % (L - l0));
        const size_t n = (size_t)(T > 0 ? T : 1) * L * K;
        int32_t *ph = malloc(n * sizeof *ph);
        uint16_t *src = malloc((size_t)(T > 0 ? T : 1) * sizeof *src);
        int64_t *a = malloc((size_t)nl * 4 * D * sizeof *a);
        int64_t *b = malloc((size_t)nl * 4 * D * sizeof *b);
        cr_assert(ph && src && a && b);
        for (size_t i = 0; i < n; i++) {
            const uint64_t u = rnd() % 100;
            ph[i] = u < 5 ? -1 : u < 7 ? P + (int32_t)(rnd() % 5) : (int32_t)(rnd() % P);
        }
        for (int64_t t = 0; t < T; t++)
            src[t] = (uint16_t)(rnd() % 65536);
        const eplb_traffic_cfg_t c = {D, N, P};
        const uint16_t *s = it % 2 ? src : NULL;
        memset(a, 0x5a, (size_t)nl * 4 * D * sizeof *a); /* overwritten, not added to */
        eplb_assert_ok(eplb_traffic_count_cpu(a, ph, T, L, K, l0, nl, &c, s));
        eplb_assert_ok(eplb_traffic_count_ref(b, ph, T, L, K, l0, nl, &c, s));
        cr_assert_eq(memcmp(a, b, (size_t)nl * 4 * D * sizeof *a), 0,
                     "case %d: D=%d N=%d P=%d K=%d L=%d T=%lld layers %d+%d src=%d differ", it,
                     D, N, P, K, L, (long long)T, l0, nl, s != NULL);
        /* every pair sent is received: the sums agree */
        int64_t sent = 0, recv = 0;
        for (int q = 0; q < nl * 4 * D; q++)
            *((q / D) % 4 < 2 ? &sent : &recv) += a[q];
        cr_assert_eq(sent, recv, "case %d: %lld sent, %lld received", it, (long long)sent,
                     (long long)recv);
        free(ph);
        free(src);
        free(a);
        free(b);
    }
}

Test(traffic, rejects_bad_configurations)
{
    int32_t ph[8] = {0};
    int64_t out[64];
    const eplb_traffic_cfg_t bad[] = {{0, 1, 8}, {4, 3, 8}, {4, 2, 6}, {4, 2, 2}, {4, 0, 8}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(eplb_traffic_count_cpu(out, ph, 1, 1, 8, 0, 1, &bad[i], NULL),
                     EPLB_ERR_INVALID_ARG, "config %zu", i);
        cr_assert_eq(eplb_traffic_count_ref(out, ph, 1, 1, 8, 0, 1, &bad[i], NULL),
                     EPLB_ERR_INVALID_ARG, "config %zu (ref)", i);
    }
    const eplb_traffic_cfg_t c = {4, 2, 8};
    cr_assert_eq(eplb_traffic_count_cpu(out, ph, 1, 1, 17, 0, 1, &c, NULL), EPLB_ERR_INVALID_ARG);
    cr_assert_eq(eplb_traffic_count_cpu(out, ph, 1, 2, 4, 1, 2, &c, NULL), EPLB_ERR_INVALID_ARG);
    cr_assert_eq(eplb_traffic_count_cpu(out, ph, -1, 1, 8, 0, 1, &c, NULL), EPLB_ERR_INVALID_ARG);
    cr_assert_eq(eplb_traffic_count_cpu(out, ph, 1, 1, 8, 0, 1, NULL, NULL), EPLB_ERR_INVALID_ARG);
}
