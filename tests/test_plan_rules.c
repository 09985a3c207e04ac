/* test_plan_rules.c - the shared host/device rules of kernels/rules.h and
 * the balanced plan's exact step (kernels/plan_flow.h), at points that
 * tests/test_kernels.c left open (found by mutation testing: each test
 * names the change that passed the suite without it).  Expected values
 * come from hand calculation, from the documented formulas written again
 * here, or from plan_check.h's brute force.
 *
 * The mutants no test kills (2026-11-29, 27 in all, 12 killed by the
 * suite before these tests, 6 by these, and the random mode's step cut to
 * 32 bits by test_kernels.c's select_random_by_formula, which now takes
 * steps past 32 bits): in plan_flow.h, the level test
 * `>` for `== + 1` (an edge with room never reaches more than one level
 * deeper), the bottleneck from the second edge (an expert-to-GPU edge
 * always has more room than its source edge), the sink's reverse edge at
 * 0 (no path leaves the sink) and the source edge's term taken always
 * (that capacity is still 0 there): the same results; the bound rounded
 * down at the start or in the cut: another least-peak split, the same
 * least peak (which split is not documented).  In rules.h, the water
 * fill's `> n` for `>= n` (the GPUs it adds then get 0 tokens) and the
 * head's shift masked to 4 bits (it is at most 7 for R <= 255): the same
 * results.  A search step with `cap >= 0` hangs the suite (.ci/run's
 * EPLB_CI_CHECK_LIMIT stops it). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "kernels.h"
#include "plan_check.h"
#include "plan_flow.h"
#include "rules.h"

/* hash(t) = t * 2654435769 mod 2^32 (kernels.h), written again here */
static uint32_t knuth_hash(uint32_t t) { return t * 2654435769u; }

/* A water fill plan whose peak is above the bound but already the least
 * is kept as it is (plan_flow.h: "if it is lower than the plan's, the ...
 * quotas are replaced"; found by mutation testing: going on with the flow
 * when the cut's bound equals the plan's peak, which swaps this plan for
 * another of the same peak, passed the suite).  3 GPUs of one slot:
 * expert 1 (slot 0, GPU 0) has 1 token, expert 0 (slots 1 and 2, GPUs 1
 * and 2) 7.  The water fill raises GPUs 1 and 2 (both at 0) to 7 / 2: one
 * takes 4 and the other 3, the tie to the replica that comes first, so
 * quotas 4 and 3 and loads 1, 4, 3.  The bound max(ceil(8 / 3), 1) = 3 is
 * below the peak 4, so the exact step searches, but GPUs {1, 2} must take
 * all 7 tokens of expert 0: ceil(7 / 2) = 4 is the least peak. */
Test(plan_rules, balanced_keeps_a_water_fill_plan_that_is_least)
{
    const int32_t lc[2] = {2, 1}, l2p[4] = {1, 2, 0, -1};
    const int64_t n[2] = {7, 1};
    const eplb_layer_map_t m = {2, 3, 3, 1, 2, lc, l2p};
    cr_assert_eq(plan_least_peak(n, &m), 4);
    int32_t quota[4];
    int64_t load[3];
    eplb_assert_ok(eplb_select_plan_balanced(quota, load, n, &m));
    cr_assert(quota[0] == 4 && quota[1] == 3 && quota[2] == 1,
              "quotas %d %d %d, want 4 3 1 (the water fill's)", quota[0], quota[1], quota[2]);
    cr_assert(load[0] == 1 && load[1] == 4 && load[2] == 3, "loads %lld %lld %lld, want 1 4 3",
              (long long)load[0], (long long)load[1], (long long)load[2]);
}

/* eplb_plan_min_peak itself: "Returns 1 where the plan changed", and a
 * plan it does not lower is left as it came (found by mutation testing:
 * running the flow on a plan already at the bound, which rewrites it
 * unchanged and returns 1, passed the suite; the callers ignore the
 * result).  Three plans, written by hand as the water fill leaves them:
 * (a) at the bound: one expert of 4 tokens on 2 GPUs of one slot, 2 and 2
 * (peak 2 = ceil(4 / 2)); (b) the plan of the test above (peak 4, the
 * least, above the bound 3); (c) test_kernels.c's
 * select_balanced_least_peak_by_hand: 4 GPUs of 2 slots holding
 * [0 1 | 2 3 | 4 0 | 1 2], 10 tokens for each of experts 0-2, which the
 * water fill splits 5 + 5, 2 + 8 and 9 + 1 (loads 7, 9, 5, 9), while 8
 * is reachable: that one changes. */
Test(plan_rules, min_peak_returns_whether_the_plan_changed)
{
    void *scratch = malloc(eplb_plan_flow_bytes(5, 8, 4));
    cr_assert_not_null(scratch);
    { /* (a) */
        const int32_t lc[1] = {2}, l2p[2] = {0, 1};
        const int64_t n[1] = {4};
        const int order[1] = {0};
        int32_t quota[2] = {2, 2};
        int64_t load[2] = {2, 2};
        cr_assert_eq(eplb_plan_min_peak(quota, load, order, 1, n, l2p, lc, 2, 1, 2, 2, 1, scratch),
                     0, "a plan at the bound");
        cr_assert(quota[0] == 2 && quota[1] == 2 && load[0] == 2 && load[1] == 2);
    }
    { /* (b) */
        const int32_t lc[2] = {2, 1}, l2p[4] = {1, 2, 0, -1};
        const int64_t n[2] = {7, 1};
        const int order[1] = {0};
        int32_t quota[4] = {4, 3, 1, 0};
        int64_t load[3] = {1, 4, 3};
        cr_assert_eq(eplb_plan_min_peak(quota, load, order, 1, n, l2p, lc, 2, 2, 3, 3, 1, scratch),
                     0, "a plan at the least peak");
        cr_assert(quota[0] == 4 && quota[1] == 3 && quota[2] == 1, "quotas %d %d %d", quota[0],
                  quota[1], quota[2]);
        cr_assert(load[0] == 1 && load[1] == 4 && load[2] == 3);
    }
    { /* (c) */
        const int32_t lc[5] = {2, 2, 2, 1, 1};
        const int32_t l2p[10] = {0, 5, 1, 6, 2, 7, 3, -1, 4, -1};
        const int64_t n[5] = {10, 10, 10, 0, 0};
        const int order[3] = {0, 1, 2};
        int32_t quota[10] = {5, 5, 2, 8, 9, 1, 0, 0, 0, 0};
        int64_t load[4] = {7, 9, 5, 9};
        cr_assert_eq(eplb_plan_min_peak(quota, load, order, 3, n, l2p, lc, 2, 5, 8, 4, 2, scratch),
                     1, "a plan above the least peak");
        int64_t got[4] = {0};
        for (int e = 0; e < 3; e++) {
            cr_assert_geq(quota[2 * e], 0);
            cr_assert_geq(quota[2 * e + 1], 0);
            cr_assert_eq(quota[2 * e] + quota[2 * e + 1], 10, "expert %d", e);
            got[l2p[2 * e] / 2] += quota[2 * e];
            got[l2p[2 * e + 1] / 2] += quota[2 * e + 1];
        }
        for (int g = 0; g < 4; g++) {
            cr_assert_eq(got[g], load[g], "gpu %d", g);
            cr_assert_leq(load[g], 8, "gpu %d load %lld", g, (long long)load[g]);
        }
    }
    free(scratch);
}

/* flatmod's index (t K + k) mod R without 32-bit wrap of t K (kernels.h;
 * found by mutation testing: t * K in 32 bits passed the suite, whose
 * token rows stay far below 2^32 / K).  By hand: 2^32 - 1 = 3 x
 * 1431655765, so with t = 2^32 - 1, K = 8, R = 3 the index is k mod 3
 * (wrapped, t K would be 2^32 - 8 = 2 mod 3).  Then every t near the
 * wrap, K in 1..16 and R in 2..7 against ((t mod R) K + k) mod R, which
 * never forms t K. */
Test(plan_rules, flatmod_index_does_not_wrap_in_32_bits)
{
    for (int k = 0; k < 8; k++)
        cr_assert_eq(eplb_rule_entry_rep(EPLB_SELECT_FLATMOD, 0xffffffffu, k, 8, 3, 0), k % 3,
                     "k %d", k);
    const uint32_t ts[] = {0x10000000u, 0x20000000u, 0x55555556u, 0x7fffffffu,
                           0x80000000u, 0xfffffffeu, 0xffffffffu};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        for (int K = 1; K <= 16; K++)
            for (int k = 0; k < K; k++)
                for (int R = 2; R <= 7; R++) {
                    const int want =
                        (int)(((ts[i] % (uint32_t)R) * (uint32_t)K + (uint32_t)k) % (uint32_t)R);
                    cr_assert_eq(eplb_rule_entry_rep(EPLB_SELECT_FLATMOD, ts[i], k, K, R, 0), want,
                                 "t %u K %d k %d R %d", ts[i], K, k, R);
                }
}

/* local: a token whose GPU holds some of the replicas takes the (hash(t)
 * mod c)-th of those c, even where its node holds more (found by mutation
 * testing: the index taken mod the node's count passed the suite, whose
 * ranks there had one token each, t = 0).  One node of 2 GPUs of 2 slots,
 * one expert on slots 0 (GPU 0), 2 and 3 (GPU 1); 2 ranks of 4 tokens (t =
 * 0..3 on each).  Rank 0: its GPU's only replica, slot 0.  Rank 1: slots 2
 * and 3, index hash(t) mod 2 = t mod 2 (an odd multiplier): 2, 3, 2, 3.
 * (Mod 3, the node's count, t = 1 would take slot 2 and t = 2 would leave
 * the GPU.) */
Test(plan_rules, local_index_counts_the_own_gpus_replicas)
{
    const int32_t lc[1] = {3}, l2p[3] = {0, 2, 3};
    const eplb_layer_map_t m = {1, 4, 2, 1, 3, lc, l2p};
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_LOCAL;
    c.num_ranks = 2;
    int32_t ids[8] = {0}, phys[8], counts[4] = {0};
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, 8, 1, 1, &m, &c));
    const int32_t want[8] = {0, 0, 0, 0, 2, 3, 2, 3};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(phys[i], want[i], "token %d: slot %d, want %d", i, phys[i], want[i]);
    const int32_t want_counts[4] = {4, 0, 2, 2};
    cr_assert_arr_eq(counts, want_counts, sizeof counts);
}

/* local: a token whose node holds none of the replicas takes the (hash(t)
 * mod R)-th of all R (kernels.h: "else fair spread"; found by mutation
 * testing: replica 0 there passed the suite, whose experts all had a
 * replica on each node).  2 nodes of one GPU of 3 slots; expert 0 on
 * slots 0-2 (GPU 0), expert 1 on slots 3-5 (GPU 1); rank 0 (tokens 0-3, t
 * = 0..3) sends expert 1, rank 1 (tokens 4-7, t = 0..3) expert 0.  hash(t)
 * for t = 0..3: 0, 2654435769, 1013904242, 3668340011; mod 3 (digit sums
 * 0, 51, 26, 32): 0, 0, 2, 2.  So slots 3, 3, 5, 5 and 0, 0, 2, 2 (not t
 * mod 3 either, which would give 3, 4, 5, 3). */
Test(plan_rules, local_without_a_node_replica_hashes_over_all)
{
    for (uint32_t t = 0; t < 4; t++) /* the hand values above */
        cr_assert_eq(knuth_hash(t) % 3, (uint32_t)(t < 2 ? 0 : 2));
    const int32_t lc[2] = {3, 3}, l2p[6] = {0, 1, 2, 3, 4, 5};
    const eplb_layer_map_t m = {2, 6, 2, 2, 3, lc, l2p};
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_LOCAL;
    c.num_ranks = 2;
    int32_t ids[8] = {1, 1, 1, 1, 0, 0, 0, 0}, phys[8], counts[6] = {0};
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, 8, 1, 1, &m, &c));
    const int32_t want[8] = {3, 3, 5, 5, 0, 0, 2, 2};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(phys[i], want[i], "token %d: slot %d, want %d", i, phys[i], want[i]);
}

/* The fused hash path's head marks slot P itself out of range (0xffff),
 * like any slot past it (rules.h; found by mutation testing: s > P in
 * place of s >= P passed test_kernels.c's hhead_mod_and_slots, whose out
 * of range slot was 700 with P = 600).  An unplaced expert's row may hold
 * any slot (kernels.h), and the GPU's fused path records the head's slot
 * unless it is 0xffff.  Heads are built by kernels/gpu.cu only; this
 * checks the header directly. */
Test(plan_rules, hhead_slot_p_is_out_of_range)
{
    cr_assert_eq(eplb_hhead_slot(599, 600), 599u);
    cr_assert_eq(eplb_hhead_slot(600, 600), 0xffffu);
    cr_assert_eq(eplb_hhead_slot(0, 600), 0u);
    cr_assert_eq(eplb_hhead_slot(-1, 600), 0xffffu);
    const int32_t slots[5] = {599, 600, 0, 601, 600};
    const eplb_hhead_t h = eplb_hhead_make(slots, 5, 8, 600);
    cr_assert_eq(h.x & 0xffffu, 599u);
    cr_assert_eq((h.x >> 16) & 0xffu, 5u);
    cr_assert_eq(h.z, 0xffffu, "replicas 1, 2: %#x, want 0xffff (600) and 0", h.z);
    cr_assert_eq(h.w, 0xffffffffu, "replicas 3, 4: %#x, want both 0xffff", h.w);
    const int32_t unplaced = 600; /* logcnt 0: one replica, slot P */
    cr_assert_eq(eplb_hhead_make(&unplaced, 0, 8, 600).x & 0xffffu, 0xffffu);
}
