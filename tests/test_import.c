/* test_import.c - ESFT and SGLang importers: the shared real data (skipped
 * without ../shared), packing, stand-in logits checked by an independent
 * softmax top-k, round trips through the trace reader, and bad input.
 * Expected values (8,222 tokens, 127 samples, the SGLang sum) are facts of
 * the shared data, counted outside this code. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hdf5.h>

#include "helpers.h"
#include "import.h"
#include "trace.h"
#include "trace_fixtures.h"

static const char *shared_or_skip(void)
{
    const char *d = eplb_test_shared_dir();
    if (!d)
        cr_skip_test("../shared not found");
    return d;
}

/* ---- packing ------------------------------------------------------------- */

Test(import, pack_never_splits_a_sample)
{
    const int64_t n[] = {3, 4, 10, 2, 2, 1, 5};
    int64_t *off = NULL, s = 0;
    eplb_assert_ok(eplb_import_esft_pack(&off, &s, n, 7, 5));
    /* [3] (3+4 > 5), [4], [10] (alone, longer than 5), [2 2 1], [5] */
    const int64_t want[] = {0, 3, 7, 17, 22, 27};
    cr_assert_eq(s, 5);
    for (int i = 0; i <= 5; i++)
        cr_assert_eq(off[i], want[i], "offset %d: %lld", i, (long long)off[i]);
    free(off);
    eplb_assert_ok(eplb_import_esft_pack(&off, &s, n, 7, 1000));
    cr_assert_eq(s, 1);
    cr_assert_eq(off[1], 27);
    free(off);
    eplb_assert_fails(eplb_import_esft_pack(&off, &s, n, 7, 0), EPLB_ERR_INVALID_ARG,
                      "--tokens-per-step");
}

/* ---- stand-in logits ------------------------------------------------------
 * Independent check: double softmax over all E logits, top-k by value with
 * ties to the lower id (selection sort). */
static int check_softmax_topk(const float *lg, const int32_t *ids, const float *w, int E,
                              int K, double *maxerr)
{
    double mx = -INFINITY, z = 0;
    for (int e = 0; e < E; e++)
        mx = lg[e] > mx ? lg[e] : mx;
    for (int e = 0; e < E; e++)
        z += exp(lg[e] - mx);
    char used[512] = {0};
    for (int k = 0; k < K; k++) {
        int b = -1;
        for (int e = 0; e < E; e++)
            if (!used[e] && (b < 0 || lg[e] > lg[b]))
                b = e;
        used[b] = 1;
        if (b != ids[k])
            return 0;
        double err = fabs(exp(lg[b] - mx) / z - w[k]);
        if (err > *maxerr)
            *maxerr = err;
        if (err > 1e-4)
            return 0;
    }
    return 1;
}

Test(import, standin_by_hand)
{
    /* E=8, K=3; weights sum 0.7, others 0.3/5 = 0.06 each < 0.1. */
    int32_t ids[3] = {5, 1, 2};
    float w[3] = {0.4f, 0.2f, 0.1f};
    float lg[8];
    cr_assert_eq(eplb_import_esft_standin(lg, ids, w, 8, 3), 1);
    double err = 0;
    cr_assert(check_softmax_topk(lg, ids, w, 8, 3, &err));
    /* Equal weights in ascending id order reproduce (tie -> lower id). */
    int32_t id2[3] = {3, 4, 0};
    float w2[3] = {0.3f, 0.3f, 0.2f};
    cr_assert_eq(eplb_import_esft_standin(lg, id2, w2, 8, 3), 1);
    cr_assert(check_softmax_topk(lg, id2, w2, 8, 3, &err));
    cr_assert_float_eq(lg[3], lg[4], 0);
    /* A recorded 0 next to an almost-1 weight still reproduces. */
    int32_t id3[3] = {3, 0, 4};
    float w3[3] = {0.9999f, 0.0f, 0.0f};
    cr_assert_eq(eplb_import_esft_standin(lg, id3, w3, 8, 3), 1);
    cr_assert(check_softmax_topk(lg, id3, w3, 8, 3, &err));
    /* Weights leaving the others more than the smallest chosen one each
     * cannot be reproduced, and say so. */
    float w4[3] = {0.2f, 0.1f, 0.01f};
    cr_assert_eq(eplb_import_esft_standin(lg, ids, w4, 8, 3), 0);
}

/* ---- ESFT on the shared data -------------------------------------------- */

Test(import, esft_intent_facts_and_standins)
{
    const char *sh = shared_or_skip();
    eplb_import_esft_t d;
    eplb_assert_ok(eplb_import_esft_read(&d, eplb_test_path(sh, "data/esft/intent")));
    cr_assert_eq(d.num_samples, 127);
    cr_assert_eq(d.num_tokens, 8222);
    cr_assert_eq(d.num_layers, 26);
    cr_assert_eq(d.num_experts, 64);
    cr_assert_eq(d.top_k, 6);
    int64_t sum = 0;
    for (int64_t i = 0; i < d.num_samples; i++)
        sum += d.sample_tokens[i];
    cr_assert_eq(sum, 8222);
    const int L = 26, E = 64, K = 6;
    int64_t bad = 0;
    double maxerr = 0;
    float lg[64];
    for (int64_t t = 0; t < d.num_tokens; t++) {
        int ok = 1;
        for (int l = 0; l < L; l++) {
            const int32_t *id = d.ids + ((size_t)t * L + l) * K;
            const float *w = d.weights + ((size_t)t * L + l) * K;
            for (int k = 0; k < K; k++) {
                cr_assert(id[k] >= 0 && id[k] < E);
                if (k)
                    cr_assert(w[k] < w[k - 1] || (w[k] == w[k - 1] && id[k] > id[k - 1]),
                              "token %lld layer %d not by descending weight", (long long)t,
                              l);
            }
            eplb_import_esft_standin(lg, id, w, E, K);
            ok &= check_softmax_topk(lg, id, w, E, K, &maxerr);
        }
        bad += !ok;
    }
    cr_assert(bad <= 5, "%lld tokens not reproduced", (long long)bad);
    cr_assert(maxerr <= 1e-4);
    eplb_import_esft_free(&d);
}

/* The first token of the first sample of layer 1, parsed here with sscanf:
 * the importer keeps the same (id, weight) pairs. */
Test(import, esft_first_token_matches_text)
{
    const char *sh = shared_or_skip();
    const char *dir = eplb_test_path(sh, "data/esft/law");
    FILE *f = fopen(eplb_test_path(dir, "expert_weights_1.txt"), "r");
    cr_assert_not_null(f);
    char *line = NULL;
    size_t cap = 0;
    cr_assert(getline(&line, &cap, f) > 0);
    fclose(f);
    int ids[6];
    cr_assert_eq(sscanf(line, "%d\t%d\t%d\t%d\t%d\t%d", &ids[0], &ids[1], &ids[2], &ids[3],
                        &ids[4], &ids[5]),
                 6);
    char *wp = strstr(line, "\t\t");
    cr_assert_not_null(wp);
    float w[6];
    cr_assert_eq(sscanf(wp + 2, "%f\t%f\t%f\t%f\t%f\t%f", &w[0], &w[1], &w[2], &w[3], &w[4],
                        &w[5]),
                 6);
    free(line);
    eplb_import_esft_t d;
    eplb_assert_ok(eplb_import_esft_read(&d, dir));
    for (int i = 0; i < 6; i++) {
        int found = 0;
        for (int k = 0; k < 6; k++)
            if (d.ids[k] == ids[i]) {
                cr_assert_float_eq(d.weights[k], w[i], 0);
                found = 1;
            }
        cr_assert(found, "expert %d of the text missing", ids[i]);
    }
    eplb_import_esft_free(&d);
}

Test(import, esft_file_round_trip)
{
    const char *sh = shared_or_skip();
    const char *src = eplb_test_path(sh, "data/esft/intent");
    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/intent.h5", dir);
    int64_t bad = -1;
    eplb_assert_ok(eplb_import_esft(src, path, 512, &bad));
    cr_assert(bad >= 0 && bad <= 5);
    eplb_import_esft_t d;
    eplb_assert_ok(eplb_import_esft_read(&d, src));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    cr_assert_str_eq(in->model, "ESFT-vanilla-lite");
    cr_assert_eq(in->num_layers, 26);
    cr_assert_eq(in->route.num_experts, 64);
    cr_assert_eq(in->route.top_k, 6);
    cr_assert_eq(in->route.scoring, EPLB_SCORING_SOFTMAX);
    cr_assert_eq(in->route.renormalize, 0);
    cr_assert_eq(in->num_tokens, 8222);
    cr_assert(in->levels & EPLB_LEVEL_LOGITS);
    cr_assert(in->levels & EPLB_LEVEL_TOPK);
    cr_assert(in->has_topk_weights);
    cr_assert_eq(in->logits_dtype, EPLB_DTYPE_F32);
    char want[64];
    snprintf(want, sizeof want, "%lld tokens not reproduced", (long long)bad);
    cr_assert(strstr(in->source, want) != NULL, "source: %s", in->source);
    /* Steps: whole samples, at most 512 tokens unless a single sample. */
    const int64_t *off = eplb_trace_token_offsets(tr);
    int64_t smp = 0, pos = 0;
    for (int64_t s = 0; s < in->num_steps; s++) {
        int64_t n = off[s + 1] - off[s], got = 0, count = 0;
        while (got < n) {
            cr_assert(smp < d.num_samples, "step %lld splits a sample", (long long)s);
            got += d.sample_tokens[smp++];
            count++;
        }
        cr_assert_eq(got, n, "step %lld splits a sample", (long long)s);
        cr_assert(n <= 512 || count == 1);
        if (s + 1 < in->num_steps)
            cr_assert(n + d.sample_tokens[smp] > 512, "step %lld could hold the next sample",
                      (long long)s);
        pos += n;
    }
    cr_assert_eq(pos, 8222);
    cr_assert_eq(smp, 127);
    /* Ids and weights read back equal the text; logits reproduce them. */
    int64_t T = 8222;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T * 26 * 6);
    float *w = malloc(sizeof(float) * (size_t)T * 26 * 6);
    eplb_assert_ok(eplb_trace_read_topk(tr, ids, w, 0, T));
    cr_assert(memcmp(ids, d.ids, sizeof(int32_t) * (size_t)T * 26 * 6) == 0);
    cr_assert(memcmp(w, d.weights, sizeof(float) * (size_t)T * 26 * 6) == 0);
    float *lg = malloc(sizeof(float) * 600 * 26 * 64);
    int64_t nbad = 0;
    double maxerr = 0;
    for (int64_t s = 0; s < in->num_steps; s++) {
        eplb_assert_ok(eplb_trace_read_logits(tr, lg, off[s], off[s + 1]));
        for (int64_t t = 0; t < off[s + 1] - off[s]; t++)
            for (int l = 0; l < 26; l++) {
                size_t o = ((size_t)(off[s] + t) * 26 + l) * 6;
                nbad += !check_softmax_topk(lg + ((size_t)t * 26 + l) * 64, ids + o, w + o,
                                            64, 6, &maxerr);
            }
    }
    cr_assert(nbad <= 5, "%lld token-layers not reproduced", (long long)nbad);
    free(ids);
    free(w);
    free(lg);
    eplb_trace_close(tr);
    eplb_import_esft_free(&d);
    unlink(path);
    rmdir(dir);
}

/* traces/esft-intent.h5 is the import of the shared intent task (the
 * facts of traces/README.md), under 10 MB, and holds what its documented
 * command (`import --format esft ../shared/data/esft/intent -o ...`, no
 * other step) writes: the same datasets and the same storage (deflate
 * only, no shuffle, at the writer's level; the HDF5 bytes themselves may
 * differ between HDF5 versions, the README says). */
Test(import, shipped_esft_intent)
{
    const char *path = eplb_test_path(eplb_test_srcdir(), "traces/esft-intent.h5");
    /* storage: deflate level 4 (the writer's default) alone on every
     * dataset (read before the trace is opened: HDF5 refuses a second open
     * with other file-close settings) */
    static const char *dsets[] = {"/router/logits", "/router/topk_ids",
                                  "/router/topk_weights", "/steps/token_offset",
                                  "/steps/phase"};
    enum { ND = sizeof dsets / sizeof dsets[0] };
    int filt[ND][4];
    unsigned lvl[ND];
    for (size_t i = 0; i < ND; i++) {
        cr_assert_eq(eplb_test_h5_filters(path, dsets[i], filt[i], &lvl[i]), 1, "%s", dsets[i]);
        cr_assert_eq(filt[i][0], H5Z_FILTER_DEFLATE, "%s", dsets[i]);
        cr_assert_eq(lvl[i], 4, "%s", dsets[i]);
    }
    eplb_trace_t *tr = eplb_test_shipped_open("traces/esft-intent.h5");
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    cr_assert_eq(in->num_tokens, 8222);
    cr_assert_eq(in->num_steps, 17);
    cr_assert_eq(in->num_layers, 26);
    cr_assert(strstr(in->source, "0 tokens not reproduced") != NULL, "%s", in->source);
    const char *sh = eplb_test_shared_dir();
    if (sh) {
        eplb_import_esft_t d;
        const char *src = eplb_test_path(sh, "data/esft/intent");
        eplb_assert_ok(eplb_import_esft_read(&d, src));
        size_t m = (size_t)8222 * 26 * 6;
        int32_t *ids = malloc(sizeof(int32_t) * m);
        float *w = malloc(sizeof(float) * m);
        eplb_assert_ok(eplb_trace_read_topk(tr, ids, w, 0, 8222));
        cr_assert(memcmp(ids, d.ids, sizeof(int32_t) * m) == 0);
        cr_assert(memcmp(w, d.weights, sizeof(float) * m) == 0);
        free(ids);
        free(w);
        eplb_import_esft_free(&d);

        /* the documented command, run again: same attributes, steps, logits
         * and storage layout */
        char re[512];
        snprintf(re, sizeof re, "%s/regen.h5", eplb_test_tmpdir());
        eplb_assert_ok(eplb_import_esft(src, re, 512, NULL));
        eplb_trace_t *tr2 = NULL;
        eplb_assert_ok(eplb_trace_open(&tr2, re));
        const eplb_trace_info_t *in2 = eplb_trace_info(tr2);
        cr_assert_str_eq(in->model, in2->model);
        cr_assert_str_eq(in->source, in2->source);
        cr_assert_eq(in->num_steps, in2->num_steps);
        cr_assert(memcmp(eplb_trace_token_offsets(tr), eplb_trace_token_offsets(tr2),
                         sizeof(int64_t) * 18) == 0);
        cr_assert_eq(eplb_trace_chunk_tokens(tr), eplb_trace_chunk_tokens(tr2));
        size_t n = eplb_trace_raw_bytes(tr);
        cr_assert_eq(n, (size_t)8222 * 26 * 64 * 4);
        cr_assert_eq(eplb_trace_raw_bytes(tr2), n);
        unsigned char *a = malloc(n), *b = malloc(n);
        eplb_assert_ok(eplb_trace_read_all_serial(tr, a));
        eplb_assert_ok(eplb_trace_read_all_serial(tr2, b));
        cr_assert(memcmp(a, b, n) == 0, "shipped logits differ from the regeneration");
        free(a);
        free(b);
        eplb_trace_close(tr2);
        for (size_t i = 0; i < ND; i++) {
            int f2[4];
            unsigned l2;
            cr_assert_eq(eplb_test_h5_filters(re, dsets[i], f2, &l2), 1,
                         "%s: the regeneration has another filter pipeline", dsets[i]);
            cr_assert(f2[0] == filt[i][0] && l2 == lvl[i],
                      "%s: filters differ from the regeneration", dsets[i]);
        }
        unlink(re);
    }
    eplb_trace_close(tr);
}

/* ---- ESFT bad input ---------------------------------------------------------
 * A small valid directory (26 layers, 2 samples of 2 and 1 tokens), then one
 * defect at a time. */

static const char *tok_line_ok = "1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t\t"
                                 "0.3\t0.2\t0.1\t0.05\t0.05\t0.05\t0.3\t0.2\t0.1\t0.05"
                                 "\t0.05\t0.05\n";
static const char *tok_line_ok1 = "63\t0\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\t0.05\n";

static void write_file(const char *dir, int layer, const char *text)
{
    char p[600];
    snprintf(p, sizeof p, "%s/expert_weights_%d.txt", dir, layer);
    eplb_test_write_text(p, text);
}

static char *make_esft_dir(void)
{
    char *dir = strdup(eplb_test_tmpdir());
    char text[1024];
    snprintf(text, sizeof text, "%s%s", tok_line_ok, tok_line_ok1);
    for (int l = 1; l <= 26; l++)
        write_file(dir, l, text);
    return dir;
}

static void remove_esft_dir(char *dir)
{
    for (int l = 0; l <= 30; l++) {
        char p[600];
        snprintf(p, sizeof p, "%s/expert_weights_%d.txt", dir, l);
        unlink(p);
    }
    unlink(eplb_test_path(dir, "out.h5"));
    rmdir(dir);
    free(dir);
}

Test(import, esft_small_valid_dir)
{
    char *dir = make_esft_dir();
    eplb_import_esft_t d;
    eplb_assert_ok(eplb_import_esft_read(&d, dir));
    cr_assert_eq(d.num_samples, 2);
    cr_assert_eq(d.num_tokens, 3);
    /* token 0 sorted: weights .3 .2 .1 .05 .05 .05 -> ids 1 2 3 4 5 6 */
    const int32_t want0[6] = {1, 2, 3, 4, 5, 6};
    /* token 2 (sample 2): .5 .1 .1 .1 .05 .05 -> 63, then 0 8 9, 10 11 */
    const int32_t want2[6] = {63, 0, 8, 9, 10, 11};
    for (int k = 0; k < 6; k++) {
        cr_assert_eq(d.ids[k], want0[k]);
        cr_assert_eq(d.ids[(2 * 26 + 25) * 6 + k], want2[k]);
    }
    eplb_import_esft_free(&d);
    int64_t bad = -1;
    eplb_assert_ok(eplb_import_esft(dir, eplb_test_path(dir, "out.h5"), 2, &bad));
    cr_assert_eq(bad, 0);
    remove_esft_dir(dir);
}

/* One step's stand-in logits must fit in the memory the process may take
 * (EPLB_MEMORY_AVAILABLE models it): the small directory's 3 tokens in one
 * step need 3 x 26 x 64 x 4 = 19968 bytes (19.5 KiB).  One byte less is
 * refused with both numbers, naming the directory and leaving no output;
 * exactly that much is enough. */
Test(import, esft_standin_logits_bounded_by_memory)
{
    char *dir = make_esft_dir();
    char out[600];
    snprintf(out, sizeof out, "%s", eplb_test_path(dir, "out.h5"));
    int64_t bad = -1;
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "16384", 1), 0);
    char want[600];
    snprintf(want, sizeof want,
             "%s: the largest step (3 tokens, --tokens-per-step 3; a sample is never split) "
             "needs 19.5 KiB for its stand-in logits (26 layers x 64 experts x 4 bytes a "
             "token), more than the 16.0 KiB this process may take",
             dir);
    eplb_assert_fails(eplb_import_esft(dir, out, 3, &bad), EPLB_ERR_NOMEM, want);
    cr_assert(access(out, F_OK) != 0, "no output left");
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "19967", 1), 0);
    eplb_assert_fails(eplb_import_esft(dir, out, 3, &bad), EPLB_ERR_NOMEM, "3 tokens");
    /* two steps (2 and 1 tokens): the largest needs 13312 bytes */
    eplb_assert_ok(eplb_import_esft(dir, out, 2, &bad));
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "19968", 1), 0);
    eplb_assert_ok(eplb_import_esft(dir, out, 3, &bad));
    cr_assert_eq(bad, 0);
    unsetenv("EPLB_MEMORY_AVAILABLE");
    remove_esft_dir(dir);
}

/* In the small valid directory `dir`, layer `layer`'s file holds `text`:
 * reading fails with EPLB_ERR_FORMAT naming `needle`; then the file is
 * valid again (or, past layer 26, gone). */
static void expect_bad_layer(const char *dir, int layer, const char *text, const char *needle)
{
    eplb_import_esft_t d;
    write_file(dir, layer, text);
    eplb_assert_fails(eplb_import_esft_read(&d, dir), EPLB_ERR_FORMAT, needle);
    char valid[1024];
    snprintf(valid, sizeof valid, "%s%s", tok_line_ok, tok_line_ok1);
    if (layer <= 26) {
        write_file(dir, layer, valid);
    } else {
        char p[600];
        snprintf(p, sizeof p, "%s/expert_weights_%d.txt", dir, layer);
        unlink(p);
    }
}

Test(import, esft_bad_input)
{
    eplb_import_esft_t d;
    eplb_assert_fails(eplb_import_esft_read(&d, "/nonexistent/esft"), EPLB_ERR_IO,
                      "/nonexistent/esft");

    char *dir = make_esft_dir();
    char p[600];
    snprintf(p, sizeof p, "%s/expert_weights_7.txt", dir);
    unlink(p);
    eplb_assert_fails(eplb_import_esft_read(&d, dir), EPLB_ERR_IO, "expert_weights_7.txt");
    cr_assert(strstr(eplb_error_last(), "25 layer files") != NULL, "%s", eplb_error_last());
    remove_esft_dir(dir);

    dir = make_esft_dir();
    expect_bad_layer(dir, 27, tok_line_ok, "expert_weights_27.txt");

    /* One more sample in layer 5. */
    char text[2048];
    snprintf(text, sizeof text, "%s%s%s", tok_line_ok, tok_line_ok1, tok_line_ok1);
    expect_bad_layer(dir, 5, text, "expert_weights_5.txt:3");

    /* A sample with a different token count in layer 9, line 2. */
    snprintf(text, sizeof text, "%s%s", tok_line_ok, tok_line_ok);
    expect_bad_layer(dir, 9, text, "expert_weights_9.txt:2");

    /* Fewer samples in layer 26. */
    expect_bad_layer(dir, 26, tok_line_ok, "expert_weights_26.txt");

    /* Id out of range on line 2 of layer 3. */
    snprintf(text, sizeof text, "%s64\t0\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\t0.05\n",
             tok_line_ok);
    expect_bad_layer(dir, 3, text, "expert_weights_3.txt:2: id 1 = 64");

    /* Odd field counts: 7 ids and 7 weights. */
    snprintf(text, sizeof text, "1\t2\t3\t4\t5\t6\t7\t\t.1\t.1\t.1\t.1\t.1\t.1\t.1\n%s",
             tok_line_ok1);
    expect_bad_layer(dir, 1, text, "expert_weights_1.txt:1: 7 ids and 7 weights");

    /* 6 ids but 5 weights. */
    snprintf(text, sizeof text, "%s1\t2\t3\t4\t5\t6\t\t.1\t.1\t.1\t.1\t.1\n", tok_line_ok);
    expect_bad_layer(dir, 2, text, "expert_weights_2.txt:2: 6 ids and 5 weights");

    /* No two-tab separator; a non-number weight; a repeated id. */
    expect_bad_layer(dir, 4, "1\t2\t3\t4\t5\t6\t.1\t.1\t.1\t.1\t.1\t.1\n",
                     "expert_weights_4.txt:1: no two-tab");
    expect_bad_layer(dir, 4, "1\t2\t3\t4\t5\t6\t\t.1\t.1\tx\t.1\t.1\t.1\n",
                     "expert_weights_4.txt:1: weight 3");
    expect_bad_layer(dir, 4, "1\t2\t3\t4\t5\t1\t\t.1\t.1\t.1\t.1\t.1\t.1\n", "chosen twice");

    /* A blank line (here at the end) is not a sample. */
    snprintf(text, sizeof text, "%s%s\n", tok_line_ok, tok_line_ok1);
    write_file(dir, 6, text);
    eplb_assert_ok(eplb_import_esft_read(&d, dir));
    cr_assert_eq(d.num_samples, 2);
    eplb_import_esft_free(&d);
    remove_esft_dir(dir);
}

/* Found by the inputs sweep (tests/fuzz/inputs_fuzz.sh): strtol and
 * strtod read what no log writes, so a corrupt byte could go unnoticed:
 * " 7" and "+7" as id 7, " 0.1", "+0.1" and "0x0.1" as weights, and
 * "0.e031" (a 0.0031 with its '0' hit) as 0. */
Test(import, esft_fields_strict)
{
    eplb_import_esft_t d;
    char *dir = make_esft_dir();
    char text[2048];
    static const struct {
        const char *line, *why;
    } bad[] = {
        {" 7\t0\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\t0.05\n", ":2: id 1: not an expert id"},
        {"+7\t0\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\t0.05\n", ":2: id 1: not an expert id"},
        {"63\t0\t8\t9\t10\t-1\t\t0.5\t0.1\t0.1\t0.1\t0.05\t0.05\n", ":2: id 6: not an expert id (decimal digits, 0..63)"},
        {"63\t0\t8\t9\t10\t11\t\t 0.5\t0.1\t0.1\t0.1\t0.05\t0.05\n", ":2: weight 1: not a number"},
        {"63\t0\t8\t9\t10\t11\t\t+0.5\t0.1\t0.1\t0.1\t0.05\t0.05\n", ":2: weight 1: not a number"},
        {"63\t0\t8\t9\t10\t11\t\t0.5\t0x0.1\t0.1\t0.1\t0.05\t0.05\n", ":2: weight 2: not a number"},
        {"63\t0\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\t0.e031\n", ":2: weight 6: not a number"},
        {"63\t0\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\t5.\n", ":2: weight 6: not a number"},
        {"63\t0\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\t1e\n", ":2: weight 6: not a number"},
        {"63\t0\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\tinf\n", ":2: weight 6: not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "%s%s", tok_line_ok, bad[i].line);
        expect_bad_layer(dir, 12, text, bad[i].why);
    }
    /* what the logs and Python write still reads */
    snprintf(text, sizeof text, "%s63\t0\t8\t9\t10\t11\t\t.5\t0.1\t1e-01\t1E-1\t0.05\t5e-02\n",
             tok_line_ok);
    write_file(dir, 12, text);
    eplb_assert_ok(eplb_import_esft_read(&d, dir));
    cr_assert_eq(d.num_tokens, 3);
    eplb_import_esft_free(&d);
    remove_esft_dir(dir);
}

/* Found by the inputs sweep: the layer number of a file name was read by
 * strtol, so expert_weights_01.txt (or _+1, _ 1) counted as layer 1; with
 * expert_weights_1.txt missing the import then failed on opening it
 * ("cannot open", EPLB_ERR_IO), not on the name. */
Test(import, esft_layer_names_strict)
{
    static const char *const names[] = {"expert_weights_01.txt", "expert_weights_+1.txt",
                                        "expert_weights_ 1.txt", "expert_weights_0.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *dir = make_esft_dir();
        char from[600], to[600];
        snprintf(from, sizeof from, "%s/expert_weights_1.txt", dir);
        snprintf(to, sizeof to, "%s/%s", dir, names[i]);
        cr_assert_eq(rename(from, to), 0);
        eplb_import_esft_t d;
        char want[128];
        snprintf(want, sizeof want, "%s: not a layer file name", names[i]);
        eplb_assert_fails(eplb_import_esft_read(&d, dir), EPLB_ERR_FORMAT, want);
        unlink(to);
        remove_esft_dir(dir);
    }
}

/* ---- SGLang counts ------------------------------------------------------------ */

Test(import, sglang_prefill_drops_dense_layers)
{
    const char *sh = shared_or_skip();
    const char *src = eplb_test_path(sh, "data/sglang-dsv3/prefill_in1024.json");
    eplb_import_sglang_t c;
    eplb_assert_ok(eplb_import_sglang_read(&c, src));
    cr_assert_eq(c.num_rows, 61);
    cr_assert_eq(c.num_layers, 58);
    cr_assert_eq(c.num_experts, 256);
    cr_assert_eq(c.rows[0], 3);
    cr_assert_eq(c.rows[57], 60);
    /* Sum of the file, counted with Python's json module. */
    cr_assert_eq(c.total, INT64_C(3892314112));
    eplb_import_sglang_free(&c);

    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/p.h5", dir);
    eplb_assert_ok(eplb_import_sglang(src, path, 8, "DeepSeek-V3"));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    cr_assert_eq(in->num_layers, 58);
    cr_assert_eq(in->num_steps, 1);
    /* Every MoE row of the file sums to 67108864 (Python's json module), so
     * the step holds 67108864 / 8 tokens. */
    cr_assert_eq(in->num_tokens, INT64_C(8388608));
    cr_assert_eq(eplb_trace_token_offsets(tr)[1], INT64_C(8388608));
    cr_assert_eq(in->levels, EPLB_LEVEL_COUNTS);
    cr_assert_eq(in->route.num_experts, 256);
    cr_assert_eq(in->route.top_k, 8);
    cr_assert_str_eq(in->model, "DeepSeek-V3");
    cr_assert(strstr(in->source, "rows 3..60") != NULL, "%s", in->source);
    int32_t *cnt = malloc(sizeof(int32_t) * 58 * 256);
    eplb_assert_ok(eplb_trace_read_counts(tr, cnt, 0, 1));
    int64_t sum = 0;
    for (int i = 0; i < 58 * 256; i++)
        sum += cnt[i];
    cr_assert_eq(sum, INT64_C(3892314112));
    free(cnt);
    eplb_trace_close(tr);
    unlink(path);
    rmdir(dir);
}

/* SGLang JSON `text` in `path`: reading fails with EPLB_ERR_FORMAT naming
 * `needle`. */
static void expect_bad_json(const char *path, const char *text, const char *needle)
{
    eplb_import_sglang_t c;
    eplb_test_write_text(path, text);
    eplb_assert_fails(eplb_import_sglang_read(&c, path), EPLB_ERR_FORMAT, needle);
}

/* head, then n copies of item separated by commas, then tail (malloc'd):
 * the large SGLang dumps of the tests */
static char *json_joined(const char *head, const char *item, size_t n, const char *tail)
{
    const size_t li = strlen(item);
    char *t = malloc(strlen(head) + n * (li + 1) + strlen(tail) + 1), *q = t;
    cr_assert_not_null(t);
    q += sprintf(q, "%s", head);
    for (size_t i = 0; i < n; i++)
        q += sprintf(q, "%s%s", i ? "," : "", item);
    sprintf(q, "%s", tail);
    return t;
}

Test(import, sglang_bad_input)
{
    const char *dir = eplb_test_tmpdir();
    char p[512], out[512];
    snprintf(p, sizeof p, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/c.h5", dir);
    eplb_import_sglang_t c;
    eplb_assert_fails(eplb_import_sglang_read(&c, "/nonexistent/c.json"), EPLB_ERR_IO,
                      "/nonexistent/c.json");
    expect_bad_json(p, "{\"logical_count\": [[0, 0], [1, -2]]}", "layer 1, expert 1");
    expect_bad_json(p, "{\"logical_count\": [[0, 0], [1.5, 2]]}", "layer 1, expert 0");
    expect_bad_json(p, "{\"logical_count\": [[0, 0], [1, \"2\"]]}", "layer 1, expert 1");
    expect_bad_json(p, "{\"logical_count\": [[0, 0], [1, 2, 3]]}", "layer 1");
    expect_bad_json(p, "{\"logical_count\": [[0, 0], [0, 0]]}", "all zero");
    expect_bad_json(p, "{\"counts\": [[1, 2]]}", "logical_count");
    expect_bad_json(p, "{\"logical_count\": [[1, 2]", p);
    /* Floats with integral values are fine; top-k beyond E is not. */
    eplb_test_write_text(p, "{\"logical_count\": [[0.0, 0], [3.0, 1]]}");
    eplb_assert_ok(eplb_import_sglang_read(&c, p));
    cr_assert_eq(c.num_layers, 1);
    cr_assert_eq(c.counts[0], 3);
    eplb_import_sglang_free(&c);
    eplb_assert_fails(eplb_import_sglang(p, out, 3, "toy"), EPLB_ERR_INVALID_ARG, "--top-k");
    eplb_assert_ok(eplb_import_sglang(p, out, 1, "toy"));
    unlink(out);
    unlink(p);
    rmdir(dir);
}

/* [S][L][E] (SGLang's stat-mode dump, its EPLB's time series): one trace step
 * per outer element.  Rows 0 and 3 are zero in every step and dropped from
 * every step; row 1, zero in steps 1 and 2, is kept in all three.  Tokens of a
 * step: ceil(its largest row sum / K): 6 / 2 = 3, 0 (all zero), 7 / 2 -> 4. */
Test(import, sglang_3d_steps)
{
    const char *dir = eplb_test_tmpdir();
    char p[512], out[512];
    snprintf(p, sizeof p, "%s/s.json", dir);
    snprintf(out, sizeof out, "%s/s.h5", dir);
    eplb_test_write_text(p, "{\"logical_count\": ["
                            "[[0, 0, 0, 0], [1, 2, 3, 0], [4, 0, 0, 1], [0, 0, 0, 0]],"
                            "[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],"
                            "[[0, 0, 0, 0], [0, 0, 0, 0], [0, 7.0, 0, 0], [0, 0, 0, 0]]]}");
    eplb_import_sglang_t c;
    eplb_assert_ok(eplb_import_sglang_read(&c, p));
    cr_assert_eq(c.num_steps, 3);
    cr_assert_eq(c.num_rows, 4);
    cr_assert_eq(c.num_layers, 2);
    cr_assert_eq(c.rows[0], 1);
    cr_assert_eq(c.rows[1], 2);
    cr_assert_eq(c.total, 18);
    cr_assert_eq(c.max_row, 7);
    eplb_import_sglang_free(&c);

    eplb_assert_ok(eplb_import_sglang(p, out, 2, "toy"));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, out));
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    cr_assert_eq(in->num_steps, 3);
    cr_assert_eq(in->num_layers, 2);
    cr_assert_eq(in->route.num_experts, 4);
    cr_assert_eq(in->route.top_k, 2);
    cr_assert_eq(in->levels, EPLB_LEVEL_COUNTS);
    cr_assert(strstr(in->source, "3 steps") && strstr(in->source, "rows 1..2 of 4"), "%s",
              in->source);
    const int64_t want_off[4] = {0, 3, 3, 7};
    for (int s = 0; s <= 3; s++)
        cr_assert_eq(eplb_trace_token_offsets(tr)[s], want_off[s], "offset %d: %lld", s,
                     (long long)eplb_trace_token_offsets(tr)[s]);
    const int32_t want[3][2][4] = {{{1, 2, 3, 0}, {4, 0, 0, 1}},
                                   {{0, 0, 0, 0}, {0, 0, 0, 0}},
                                   {{0, 0, 0, 0}, {0, 7, 0, 0}}};
    int32_t got[3][2][4];
    eplb_assert_ok(eplb_trace_read_counts(tr, &got[0][0][0], 0, 3));
    cr_assert_arr_eq(got, want, sizeof want);
    eplb_trace_close(tr);
    unlink(out);

    /* the command too */
    eplb_test_cli_expect(0, NULL, "import --format sglang-counts %s -o %s --top-k 2 --model toy",
                         p, out);
    eplb_assert_ok(eplb_trace_open(&tr, out));
    cr_assert_eq(eplb_trace_info(tr)->num_steps, 3);
    eplb_trace_close(tr);
    unlink(out);
    unlink(p);
    rmdir(dir);
}

/* A 3-D file whose steps differ in shape, or holds a bad value, is refused
 * naming the step (and the layer and expert where they apply). */
Test(import, sglang_3d_bad_input)
{
    const char *dir = eplb_test_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/b.json", dir);
    expect_bad_json(p, "{\"logical_count\": [[[1, 2]], [[1, 2], [3, 4]]]}",
                    "logical_count[1] (step 1): 2 layers, but step 0 has 1");
    expect_bad_json(p, "{\"logical_count\": [[[1, 2], [0, 0]], [[1, 2], [3, 4, 5]]]}",
                    "logical_count[1][1] (step 1, layer 1): 3 experts, but step 0, layer 0 "
                    "has 2");
    expect_bad_json(p, "{\"logical_count\": [[[1, 2]], 5]}",
                    "logical_count[1] (step 1): expected a non-empty array of layers");
    /* an object is no step: read as [L][E], its first row is refused */
    expect_bad_json(p, "{\"logical_count\": [{\"a\": [1, 2]}]}",
                    "logical_count[0] (layer 0): expected a non-empty array of expert counts");
    expect_bad_json(p, "{\"logical_count\": [[[1, 2]], [[]]]}",
                    "logical_count[1][0] (step 1, layer 0): expected a non-empty array");
    expect_bad_json(p, "{\"logical_count\": [[[1, 2], [0, 0]], [[1, 2], [0, -1]]]}",
                    "logical_count[1][1][1] (step 1, layer 1, expert 1): not a non-negative "
                    "integer");
    expect_bad_json(p, "{\"logical_count\": [[[0, 0]], [[0, 0]]]}",
                    "every layer is all zero in every step");
    /* the bound on steps: 100001 of [[1]] */
    char *big = json_joined("{\"logical_count\": [", "[[1]]", 100001, "]}");
    expect_bad_json(p, big, "logical_count: 100001 steps (too many)");
    free(big);
    unlink(p);
    rmdir(dir);
}

/* ---- command ---------------------------------------------------------------------- */

Test(import, cli)
{
    const char *dir = eplb_test_tmpdir();
    eplb_test_cli_expect(0, "sglang-counts", "import --help");
    eplb_test_cli_expect(2, "eplb-replay import: --format", "import --format bogus x -o %s/x.h5",
                         dir);
    eplb_test_cli_expect(1, "/nonexistent", "import --format esft /nonexistent -o %s/x.h5", dir);
    eplb_test_cli_expect(2, NULL, "import --format esft a b -o %s/x.h5", dir);
    eplb_test_cli_expect(2, NULL, "import --format esft a -o %s/x.h5 --top-k 3", dir);
    const char *sh = eplb_test_shared_dir();
    if (sh) {
        eplb_test_cli_expect(0, NULL,
                             "import --format sglang-counts "
                             "%s/data/sglang-dsv3/decode_in1000out1000.json "
                             "-o %s/d.h5 --model DeepSeek-R1",
                             sh, dir);
        eplb_trace_t *tr = NULL;
        eplb_assert_ok(eplb_trace_open(&tr, eplb_test_path(dir, "d.h5")));
        cr_assert_str_eq(eplb_trace_info(tr)->model, "DeepSeek-R1");
        cr_assert_eq(eplb_trace_info(tr)->num_layers, 58);
        eplb_trace_close(tr);
        unlink(eplb_test_path(dir, "d.h5"));
    }
    rmdir(dir);
}

/* `import`: an option of the other --format is refused, naming it. */
Test(import, import_options_of_the_other_format_refused)
{
    const char *dir = eplb_test_tmpdir();
    char out[4096];
    snprintf(out, sizeof out, "%s", eplb_test_path(dir, "i.h5"));
    eplb_test_cli_expect(2, "eplb-replay import: --top-k applies to --format sglang-counts only",
                         "import --format esft %s -o %s --top-k 6", dir, out);
    eplb_test_cli_expect(2, "eplb-replay import: --model applies to --format sglang-counts only",
                         "import --format esft %s -o %s --model M", dir, out);
    eplb_test_cli_expect(2, "eplb-replay import: --tokens-per-step applies to --format esft only",
                         "import --format sglang-counts %s/c.json -o %s --tokens-per-step 4",
                         dir, out);
    cr_assert_neq(access(out, F_OK), 0, "%s written", out);
    rmdir(dir);
}

/* ---- limits of a trace the import can pass -------------------------------------
 * What the reader refuses (traces/FORMAT.md, Limits; traces/reader.c) is
 * refused by the import, as an error of the input (exit 1) naming the file
 * and the field, and nothing is left under the output's name or its
 * temporary name. */

/* {"logical_count": ...} of `steps` steps (0: [L][E]) of `rows` layers [1, 2],
 * the first `zero` of them [0, 0], into path. */
static void write_layers_json(const char *path, int steps, int rows, int zero)
{
    size_t cap = (size_t)(steps ? steps : 1) * (size_t)rows * 8 + 64;
    char *t = malloc(cap), *q = t;
    cr_assert_not_null(t);
    q += sprintf(q, "{\"logical_count\": [");
    for (int s = 0; s < (steps ? steps : 1); s++) {
        if (steps)
            q += sprintf(q, "%s[", s ? "," : "");
        for (int l = 0; l < rows; l++)
            q += sprintf(q, "%s[%d,%d]", l ? "," : "", l < zero ? 0 : 1, l < zero ? 0 : 2);
        if (steps)
            q += sprintf(q, "]");
    }
    sprintf(q, "]}");
    eplb_test_write_text(path, t);
    free(t);
}

/* Found by the audit: 4097 MoE layers were imported (exit 0) into a trace
 * that every command then refused ("root attribute 'num_layers' = 4097 is
 * outside [1, 4096]"). */
Test(import, sglang_more_layers_than_a_trace_holds)
{
    const char *dir = eplb_test_tmpdir();
    char p[512], out[512], want[1024];
    snprintf(p, sizeof p, "%s/L.json", dir);
    snprintf(out, sizeof out, "%s/L.h5", dir);
    snprintf(want, sizeof want, "%s: logical_count has 4097 layers; at most 4096", p);
    for (int steps = 0; steps <= 2; steps += 2) { /* [L][E], then [S][L][E] */
        write_layers_json(p, steps, 4097, 0);
        eplb_test_cli_expect(1, want, "import --format sglang-counts %s --top-k 1 -o %s", p,
                             out);
        cr_assert_eq(eplb_test_dir_entries(dir), 1, "%s: something left beside the input", dir);
        eplb_import_sglang_t c;
        eplb_assert_fails(eplb_import_sglang_read(&c, p), EPLB_ERR_FORMAT, want);
    }
    /* the rows kept count, not the dense rows dropped; 4096 is fine */
    write_layers_json(p, 0, 4098, 1);
    eplb_assert_fails(eplb_import_sglang(p, out, 1, "toy"), EPLB_ERR_FORMAT,
                      "logical_count has 4097 layers not all zero (of 4098); at most 4096");
    cr_assert_eq(eplb_test_dir_entries(dir), 1);
    write_layers_json(p, 0, 4097, 1);
    eplb_test_cli_expect(0, "wrote", "import --format sglang-counts %s --top-k 1 -o %s", p, out);
    eplb_test_cli_expect(0, "layers", "info %s", out);
    unlink(out);
    unlink(p);
    rmdir(dir);
}

/* Found by the audit: counts whose steps need more than 2^39 tokens in all
 * were refused by the trace writer as a usage error (exit 2) naming only
 * the output. */
Test(import, sglang_more_tokens_than_a_trace_holds)
{
    const char *dir = eplb_test_tmpdir();
    char p[512], out[512], want[1024];
    snprintf(p, sizeof p, "%s/T.json", dir);
    snprintf(out, sizeof out, "%s/T.h5", dir);
    /* 129 steps of one layer [2^31 - 1, 2^31 - 1]: 2^32 - 2 tokens each at
     * top-1; steps 0..127 make 2^39 - 256, step 128 passes 2^39 */
    char *t = json_joined("{\"logical_count\": [", "[[2147483647, 2147483647]]", 129, "]}");
    eplb_test_write_text(p, t);
    free(t);
    snprintf(want, sizeof want,
             "eplb-replay import: %s: logical_count[128] (step 128): 4294967294 tokens at "
             "top-1 bring the total past the 549755813888 (2^39) tokens",
             p);
    eplb_test_cli_expect(1, want, "import --format sglang-counts %s --top-k 1 -o %s", p, out);
    cr_assert_eq(eplb_test_dir_entries(dir), 1, "%s: something left beside the input", dir);
    /* top-2 halves them: within the limit */
    eplb_test_cli_expect(0, "wrote", "import --format sglang-counts %s --top-k 2 -o %s", p, out);
    unlink(out);
    /* one step [L][E] can pass it alone: 512 experts of 2^31 - 1 at top-1 */
    t = json_joined("{\"logical_count\": [[", "2147483647", 512, "]]}");
    eplb_test_write_text(p, t);
    free(t);
    snprintf(want, sizeof want,
             "eplb-replay import: %s: logical_count: 1099511627264 tokens at top-1 bring the "
             "total past",
             p);
    eplb_test_cli_expect(1, want, "import --format sglang-counts %s --top-k 1 -o %s", p, out);
    cr_assert_eq(eplb_test_dir_entries(dir), 1, "%s: something left beside the input", dir);
    unlink(p);
    rmdir(dir);
}

/* Found by the audit: a --model past 127 bytes was refused by the trace
 * writer after the input was read, naming the output; it is a usage error
 * of the option, refused before anything is read (here the input does not
 * even exist) or written. */
Test(import, sglang_model_name_too_long)
{
    const char *dir = eplb_test_tmpdir();
    char p[512], out[512], model[201];
    snprintf(p, sizeof p, "%s/missing.json", dir);
    snprintf(out, sizeof out, "%s/m.h5", dir);
    memset(model, 'm', 200);
    model[200] = '\0';
    eplb_test_cli_expect(2, "eplb-replay import: --model: 200 bytes; at most 127",
                         "import --format sglang-counts %s --top-k 1 -o %s --model %s", p, out,
                         model);
    cr_assert_eq(eplb_test_dir_entries(dir), 0, "%s: something written", dir);
    eplb_test_write_text(p, "{\"logical_count\": [[1, 2]]}");
    eplb_assert_fails(eplb_import_sglang(p, out, 1, model), EPLB_ERR_INVALID_ARG,
                      "--model: 200 bytes; at most 127");
    model[127] = '\0'; /* 127 bytes: fine */
    eplb_test_cli_expect(0, "wrote", "import --format sglang-counts %s --top-k 1 -o %s --model %s",
                         p, out, model);
    unlink(out);
    unlink(p);
    rmdir(dir);
}

/* The writer refuses what the reader would refuse, whoever calls it. */
Test(import, writer_refuses_layers_past_the_reader)
{
    const char *dir = eplb_test_tmpdir();
    char out[512];
    snprintf(out, sizeof out, "%s/w.h5", dir);
    eplb_trace_writer_opts_t wo = EPLB_TRACE_WRITER_OPTS_INIT;
    wo.num_layers = 4097;
    wo.route = (eplb_route_cfg_t){2, 1, EPLB_SCORING_SOFTMAX, 1, 1, 1, 1.0f};
    wo.levels = EPLB_LEVEL_COUNTS;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_fails(eplb_trace_writer_create(&w, out, &wo), EPLB_ERR_INVALID_ARG,
                      "num_layers must be in 1..4096");
    wo.num_layers = 1;
    wo.route = (eplb_route_cfg_t){16, 2, EPLB_SCORING_SOFTMAX, 16, 1, 1, 1.0f};
    eplb_assert_fails(eplb_trace_writer_create(&w, out, &wo), EPLB_ERR_INVALID_ARG,
                      "top_k must not exceed the experts of the kept groups");
    cr_assert_eq(eplb_test_dir_entries(dir), 0, "%s: something written", dir);
    rmdir(dir);
}

/* A MoE layer with no load between loaded ones is kept: only the zero rows
 * before the first and after the last loaded row go (the dense layers), so
 * that trace layer l stays row first + l (a zero row 3 of 0..5 moved every
 * later layer up one, and a placement from the replay then went to the
 * wrong layer of the server). */
Test(import, sglang_keeps_a_zero_row_between_loaded_ones)
{
    const char *dir = eplb_test_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/z.json", dir);
    /* rows 0 (dense), 1-2, 3 (no load), 4, 5 (zero at the end) */
    eplb_test_write_text(p, "{\"logical_count\": [[0,0,0,0], [1,2,3,4], [4,3,2,1], [0,0,0,0], "
                            "[5,5,5,5], [0,0,0,0]]}");
    eplb_import_sglang_t c;
    eplb_assert_ok(eplb_import_sglang_read(&c, p));
    cr_assert_eq(c.num_rows, 6);
    cr_assert_eq(c.num_layers, 4, "%d layers", c.num_layers);
    for (int k = 0; k < 4; k++)
        cr_assert_eq(c.rows[k], k + 1, "layer %d is row %d", k, c.rows[k]);
    for (int e = 0; e < 4; e++) /* layer 2 is row 3: no load */
        cr_assert_eq(c.counts[2 * 4 + e], 0);
    cr_assert_eq(c.counts[3 * 4 + 0], 5);
    eplb_import_sglang_free(&c);
    unlink(p);
    rmdir(dir);
}

/* A weight above 1 is refused naming file, line and weight (import.h: gate
 * weights in [0, 1]; mutation testing: dropping the upper bound passed),
 * and exactly 1 reads. */
Test(import, esft_weight_above_one_refused)
{
    char *dir = make_esft_dir();
    char text[2048];
    snprintf(text, sizeof text, "%s63\t0\t8\t9\t10\t11\t\t1.5\t0.1\t0.1\t0.1\t0.05\t0.05\n",
             tok_line_ok);
    expect_bad_layer(dir, 8, text, "expert_weights_8.txt:2: weight 1 = 1.5: outside [0, 1]");
    snprintf(text, sizeof text, "%s63\t0\t8\t9\t10\t11\t\t1\t0\t0\t0\t0\t0\n", tok_line_ok);
    write_file(dir, 8, text);
    eplb_import_esft_t d;
    eplb_assert_ok(eplb_import_esft_read(&d, dir));
    cr_assert_eq(d.num_tokens, 3);
    eplb_import_esft_free(&d);
    remove_esft_dir(dir);
}

/* SGLang counts are kept as int32: 2^31 - 1 reads, 2^31 is refused naming
 * the layer and the expert (mutation testing: a bound of 2^31 passed, and
 * 2^31 then wrapped to a negative count). */
Test(import, sglang_count_of_2_pow_31_refused)
{
    const char *dir = eplb_test_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/big.json", dir);
    eplb_import_sglang_t c;
    eplb_test_write_text(p, "{\"logical_count\": [[1, 2147483647]]}");
    eplb_assert_ok(eplb_import_sglang_read(&c, p));
    cr_assert_eq(c.counts[1], 2147483647);
    eplb_import_sglang_free(&c);
    expect_bad_json(p, "{\"logical_count\": [[1, 2147483648]]}",
                    "logical_count[0][1] (layer 0, expert 1): not a non-negative integer below "
                    "2^31");
    unlink(p);
    rmdir(dir);
}

/* Logs saved with Windows line ends (CRLF) read as with LF: the '\r' is
 * part of the line end, not of the last weight.  Mutation testing: trimming
 * only '\n' passed. */
Test(import, esft_crlf_line_ends_read)
{
    char *dir = make_esft_dir();
    char text[1024];
    /* tok_line_ok and tok_line_ok1 with "\r\n" for their "\n" */
    snprintf(text, sizeof text, "%.*s\r\n%.*s\r\n", (int)strlen(tok_line_ok) - 1, tok_line_ok,
             (int)strlen(tok_line_ok1) - 1, tok_line_ok1);
    write_file(dir, 12, text);
    eplb_import_esft_t d;
    eplb_assert_ok(eplb_import_esft_read(&d, dir));
    cr_assert_eq(d.num_tokens, 3);
    /* layer 12 (index 11), token 2: weights .5 .1 .1 .1 .05 .05 */
    const int32_t want2[6] = {63, 0, 8, 9, 10, 11};
    for (int k = 0; k < 6; k++)
        cr_assert_eq(d.ids[(2 * 26 + 11) * 6 + k], want2[k], "id %d", k);
    eplb_import_esft_free(&d);
    remove_esft_dir(dir);
}

/* The defaults of an sglang-counts import (docs/cli.md: --top-k 8,
 * --model DeepSeek-V3): one step of 9 experts whose counts sum to 16 is
 * ceil(16 / 8) = 2 tokens at top-8.  Mutation testing: a default top-k of
 * 6 (3 tokens) passed; every other test gives --top-k. */
Test(import, sglang_defaults_top_k_8_and_model)
{
    const char *dir = eplb_test_tmpdir();
    char p[512], out[512];
    snprintf(p, sizeof p, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/c.h5", dir);
    eplb_test_write_text(p, "{\"logical_count\": [[2, 2, 2, 2, 2, 2, 2, 2, 0]]}");
    eplb_test_cli_expect(0, "wrote", "import --format sglang-counts %s -o %s", p, out);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, out));
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    cr_assert_eq(in->route.top_k, 8);
    cr_assert_eq(in->num_steps, 1);
    cr_assert_eq(in->num_tokens, 2);
    cr_assert_str_eq(in->model, "DeepSeek-V3");
    eplb_trace_close(tr);
    unlink(out);
    unlink(p);
    rmdir(dir);
}

/* The default --tokens-per-step of an ESFT import is 512 (docs/cli.md):
 * 300 samples of 2 tokens, packed in order without splitting, fill steps
 * of 256 samples = 512 tokens: 2 steps, the first of 512 tokens.
 * Mutation testing guards the default. */
Test(import, esft_default_tokens_per_step_512)
{
    char *dir = make_esft_dir();
    static char text[300 * 160];
    size_t n = 0;
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s", tok_line_ok);
    for (int l = 1; l <= 26; l++)
        write_file(dir, l, text);
    char out[600];
    snprintf(out, sizeof out, "%s", eplb_test_path(dir, "out.h5"));
    eplb_test_cli_expect(0, "wrote", "import --format esft %s -o %s", dir, out);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, out));
    cr_assert_eq(eplb_trace_info(tr)->num_tokens, 600);
    cr_assert_eq(eplb_trace_info(tr)->num_steps, 2);
    cr_assert_eq(eplb_trace_token_offsets(tr)[1], 512);
    eplb_trace_close(tr);
    remove_esft_dir(dir);
}

/* ---- mutation testing of the importers (2026-11-29) --------------------------
 * Each test below pins a behaviour that a mutant of traces/import_esft.c
 * or traces/import_sglang.c changed without any test failing; the
 * mutant's id (E.., S..) is the one of the mutation report. */

/* An SGLang dump of one step of one layer whose n experts each count 1:
 * {"logical_count": [[1, 1, ..., 1]]}, written to path. */
static void write_sglang_ones(const char *path, int n)
{
    char *t = json_joined("{\"logical_count\": [[", "1", (size_t)n, "]]}");
    eplb_test_write_text(path, t);
    free(t);
}

/* A line whose ids end in the two tabs with no weight after them is refused
 * as an empty weight list, naming file and line; an empty id list likewise.
 * Kills E01 (the nw == 0 test dropped: count_fields counts one field in an
 * empty list, and the line was refused as "6 ids and 1 weights"). */
Test(import, esft_empty_weight_list_named)
{
    char *dir = make_esft_dir();
    char text[2048];
    snprintf(text, sizeof text, "%s63\t0\t8\t9\t10\t11\t\t\n", tok_line_ok);
    expect_bad_layer(dir, 10, text, "expert_weights_10.txt:2: empty weight list");
    snprintf(text, sizeof text, "%s\t\t0.5\t0.1\t0.1\t0.1\t0.05\t0.05\n", tok_line_ok);
    expect_bad_layer(dir, 10, text, "expert_weights_10.txt:2: empty id list");
    remove_esft_dir(dir);
}

/* An id of 20 digits (past LONG_MAX, strtol's ERANGE) is not an expert id:
 * refused as such, not reported as the clamped value 9223372036854775807
 * "outside 0..63".  Kills E02 (strtol's errno ignored). */
Test(import, esft_id_past_long_max_refused_as_not_an_id)
{
    char *dir = make_esft_dir();
    char text[2048];
    snprintf(text, sizeof text,
             "%s63\t0\t8\t99999999999999999999\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\t0.05\n",
             tok_line_ok);
    expect_bad_layer(dir, 14, text,
                     "expert_weights_14.txt:2: id 4: not an expert id (decimal digits, 0..63)");
    remove_esft_dir(dir);
}

/* An expert repeated in adjacent places of a token is refused like one
 * repeated further apart: here the last two ids of the second token of
 * line 1.  Kills E05 (the repeat check compared each id with all earlier
 * ones but the one just before it). */
Test(import, esft_adjacent_repeated_id_refused)
{
    char *dir = make_esft_dir();
    char text[2048];
    snprintf(text, sizeof text,
             "1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t12\t12\t\t0.3\t0.2\t0.1\t0.05\t0.05\t0.05\t0.3\t0.2"
             "\t0.1\t0.05\t0.05\t0.05\n%s",
             tok_line_ok1);
    expect_bad_layer(dir, 3, text, "expert_weights_3.txt:1: token 1: expert 12 chosen twice");
    snprintf(text, sizeof text, "%s63\t63\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\t0.05\n",
             tok_line_ok);
    expect_bad_layer(dir, 3, text, "expert_weights_3.txt:2: token 0: expert 63 chosen twice");
    remove_esft_dir(dir);
}

/* The line bound is 4 MiB without the newline (ESFT_MAX_LINE, the message
 * says 4194304 bytes): a sample line of exactly 4194304 bytes reads, one of
 * 4194305 is refused naming file and line.  The line is one token whose
 * last weight is 0.1 written with zeros up to the length.  Kills E10 (the
 * bound taken as "n > 4 MiB": a line one byte longer read, its NUL written
 * one byte past the buffer). */
Test(import, esft_line_of_exactly_4_mib_reads)
{
    char *dir = make_esft_dir();
    const size_t max = (size_t)4 << 20;
    const char *head = "63\t0\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1\t0.05\t0.1";
    size_t lh = strlen(tok_line_ok), h = strlen(head);
    char *text = malloc(lh + max + 3);
    cr_assert_not_null(text);
    for (int extra = 0; extra <= 1; extra++) {
        size_t len = max + (size_t)extra; /* the second line, without its newline */
        memcpy(text, tok_line_ok, lh);
        memcpy(text + lh, head, h);
        memset(text + lh + h, '0', len - h);
        memcpy(text + lh + len, "\n", 2);
        cr_assert_eq(strlen(text), lh + len + 1);
        eplb_import_esft_t d;
        if (!extra) {
            write_file(dir, 4, text);
            eplb_assert_ok(eplb_import_esft_read(&d, dir));
            cr_assert_eq(d.num_tokens, 3);
            /* layer 4 (index 3), token 2: .5 .1 .1 .1 .05 and the long .1
             * of expert 11, by descending weight (ties by id): 63 0 8 9 11 10 */
            const int32_t want[6] = {63, 0, 8, 9, 11, 10};
            for (int k = 0; k < 6; k++)
                cr_assert_eq(d.ids[(2 * 26 + 3) * 6 + k], want[k], "id %d", k);
            cr_assert_float_eq(d.weights[(2 * 26 + 3) * 6 + 4], 0.1f, 0);
            eplb_import_esft_free(&d);
        } else {
            expect_bad_layer(dir, 4, text,
                             "expert_weights_4.txt:2: line longer than 4194304 bytes");
        }
    }
    free(text);
    remove_esft_dir(dir);
}

/* A later layer whose sample has fewer tokens than in layer 1 is refused
 * naming file, line and both counts (import.h: samples that differ between
 * layers), as one with more tokens is (esft_bad_input).  Kills E11 (only
 * "more tokens" refused: the short sample read, and the tokens it lacked
 * kept whatever the buffer held). */
Test(import, esft_later_layer_with_fewer_tokens_refused)
{
    char *dir = make_esft_dir();
    char text[2048];
    /* sample 1 is 2 tokens in layer 1, 1 token here */
    snprintf(text, sizeof text, "%s%s", tok_line_ok1, tok_line_ok1);
    expect_bad_layer(dir, 9, text, "expert_weights_9.txt:1: 1 tokens, but sample 1 of");
    remove_esft_dir(dir);
}

/* A first sample longer than a step is a step of its own, and no empty step
 * comes before it: samples 10, 2, 2 at 5 tokens a step pack as [10] [2 2],
 * offsets 0, 10, 14.  In a trace: the small directory (samples of 2 and 1
 * tokens) at --tokens-per-step 1 is 2 steps, offsets 0, 2, 3.  Kills E12
 * (the "cur > 0" of the packing dropped: an empty step 0). */
Test(import, pack_first_sample_longer_than_a_step)
{
    const int64_t n[] = {10, 2, 2};
    int64_t *off = NULL, s = 0;
    eplb_assert_ok(eplb_import_esft_pack(&off, &s, n, 3, 5));
    cr_assert_eq(s, 2, "%lld steps", (long long)s);
    const int64_t want[] = {0, 10, 14};
    for (int i = 0; i <= 2; i++)
        cr_assert_eq(off[i], want[i], "offset %d: %lld", i, (long long)off[i]);
    free(off);

    char *dir = make_esft_dir();
    char out[600];
    snprintf(out, sizeof out, "%s", eplb_test_path(dir, "out.h5"));
    eplb_assert_ok(eplb_import_esft(dir, out, 1, NULL));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, out));
    cr_assert_eq(eplb_trace_info(tr)->num_steps, 2);
    const int64_t want2[] = {0, 2, 3};
    for (int i = 0; i <= 2; i++)
        cr_assert_eq(eplb_trace_token_offsets(tr)[i], want2[i]);
    eplb_trace_close(tr);
    remove_esft_dir(dir);
}

/* A token counts as not reproduced when any of its 26 layers is not, the
 * first and last layers included.  Weights that add up to more than 1
 * cannot be a softmax's (its probabilities add up to 1, so at least one of
 * six weights adding up to 1.3 is off by 0.05, past the 1e-4 allowed):
 * token 0 has such weights in layer 5 only, token 2 in layer 26 only, so 2
 * of the 3 tokens are not reproduced, in *unreproduced and in the source
 * attribute.  Kills E13 (the last layer not checked: 1) and E14 (only the
 * last layer's check kept: 1). */
Test(import, esft_unreproduced_counts_every_layer)
{
    char *dir = make_esft_dir();
    char text[2048];
    snprintf(text, sizeof text,
             "1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t\t0.5\t0.3\t0.2\t0.1\t0.1\t0.1\t0.3\t0.2"
             "\t0.1\t0.05\t0.05\t0.05\n%s",
             tok_line_ok1);
    write_file(dir, 5, text);
    snprintf(text, sizeof text, "%s63\t0\t8\t9\t10\t11\t\t0.5\t0.3\t0.2\t0.1\t0.1\t0.1\n",
             tok_line_ok);
    write_file(dir, 26, text);
    char out[600];
    snprintf(out, sizeof out, "%s", eplb_test_path(dir, "out.h5"));
    int64_t bad = -1;
    eplb_assert_ok(eplb_import_esft(dir, out, 512, &bad));
    cr_assert_eq(bad, 2, "%lld tokens not reproduced", (long long)bad);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, out));
    cr_assert(strstr(eplb_trace_info(tr)->source, "stand-in logits: 2 tokens not reproduced"),
              "source: %s", eplb_trace_info(tr)->source);
    eplb_trace_close(tr);
    remove_esft_dir(dir);
}

/* A --tokens-per-step below 1 is the caller's error, refused as such before
 * the logs are read: even with a directory that does not exist it is
 * EPLB_ERR_INVALID_ARG naming the option, and nothing is written.  Kills
 * E16 (the check let 0 through to the packing: the missing directory was
 * reported instead, EPLB_ERR_IO). */
Test(import, esft_tokens_per_step_checked_first)
{
    const char *dir = eplb_test_tmpdir();
    char out[600];
    snprintf(out, sizeof out, "%s/o.h5", dir);
    eplb_assert_fails(eplb_import_esft("/nonexistent/esft", out, 0, NULL), EPLB_ERR_INVALID_ARG,
                      "--tokens-per-step: must be >= 1 (got 0)");
    eplb_assert_fails(eplb_import_esft("/nonexistent/esft", out, -3, NULL), EPLB_ERR_INVALID_ARG,
                      "--tokens-per-step: must be >= 1 (got -3)");
    cr_assert_eq(eplb_test_dir_entries(dir), 0, "%s: something written", dir);
    rmdir(dir);
}

/* The bound on a step's layers in [S][L][E] (import.h: at most 100000
 * layers): one step of 100001 layers [1] is refused naming the step,
 * before any value is read.  Kills S01 (the per-step bound dropped: the
 * file was read whole and refused only later, as "100001 layers; at most
 * 4096" kept). */
Test(import, sglang_3d_step_with_too_many_layers)
{
    const char *dir = eplb_test_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/l.json", dir);
    char *big = json_joined("{\"logical_count\": [[", "[1]", 100001, "]]}");
    expect_bad_json(p, big, "logical_count[0] (step 0): 100001 layers (too many)");
    free(big);
    unlink(p);
    rmdir(dir);
}

/* At most 512 experts a layer (EPLB_MAX_EXPERTS, import.h): a row of 513
 * counts is refused naming the count and the limit; 512 reads.  Kills S02
 * (the bound taken as 513). */
Test(import, sglang_513_experts_refused)
{
    const char *dir = eplb_test_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/e.json", dir);
    for (int e_n = 512; e_n <= 513; e_n++) {
        write_sglang_ones(p, e_n);
        if (e_n == 512) {
            eplb_import_sglang_t c;
            eplb_assert_ok(eplb_import_sglang_read(&c, p));
            cr_assert_eq(c.num_experts, 512);
            eplb_import_sglang_free(&c);
        } else {
            eplb_import_sglang_t c;
            eplb_assert_fails(eplb_import_sglang_read(&c, p), EPLB_ERR_FORMAT,
                              "logical_count[0]: 513 experts per layer (at most 512)");
        }
    }
    unlink(p);
    rmdir(dir);
}

/* eplb_import_sglang refuses a top_k outside 1..16 (import.h) as the
 * caller's error, EPLB_ERR_INVALID_ARG naming --top-k, with 32 experts in
 * the file (so that only the 1..16 range applies) and nothing written; 16
 * is fine (32 counts of 1: 32 / 16 = 2 tokens).  Kills S08 (top_k < 1
 * dropped: 0 divided by zero, SIGFPE) and S09 (top_k > 16 dropped: the
 * trace writer refused 17 instead, and the import turned that into
 * EPLB_ERR_FORMAT, an input error). */
Test(import, sglang_top_k_range_checked)
{
    const char *dir = eplb_test_tmpdir();
    char p[512], out[512];
    snprintf(p, sizeof p, "%s/k.json", dir);
    snprintf(out, sizeof out, "%s/k.h5", dir);
    write_sglang_ones(p, 32);
    eplb_assert_fails(eplb_import_sglang(p, out, 0, "toy"), EPLB_ERR_INVALID_ARG,
                      "--top-k: must be in 1..16 (experts in");
    cr_assert(strstr(eplb_error_last(), ": 32), got 0"), "%s", eplb_error_last());
    eplb_assert_fails(eplb_import_sglang(p, out, 17, "toy"), EPLB_ERR_INVALID_ARG,
                      "--top-k: must be in 1..16");
    cr_assert(strstr(eplb_error_last(), "got 17"), "%s", eplb_error_last());
    cr_assert_eq(eplb_test_dir_entries(dir), 1, "%s: something written", dir);
    eplb_assert_ok(eplb_import_sglang(p, out, 16, "toy"));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, out));
    cr_assert_eq(eplb_trace_info(tr)->route.top_k, 16);
    cr_assert_eq(eplb_trace_info(tr)->num_tokens, 2);
    eplb_trace_close(tr);
    unlink(out);
    unlink(p);
    rmdir(dir);
}

/* A trace holds at most 2^39 tokens (traces/FORMAT.md, Limits): exactly
 * 2^39 imports.  128 steps of one layer [2^31 - 1, 2^31 - 1, 2] sum to
 * 2^32 each, 2^32 tokens at top-1, 128 x 2^32 = 2^39 in all
 * (sglang_more_tokens_than_a_trace_holds refuses one step more).  Kills
 * S10 (the limit taken as exclusive: the last step refused). */
Test(import, sglang_exactly_2_pow_39_tokens_import)
{
    const char *dir = eplb_test_tmpdir();
    char p[512], out[512];
    snprintf(p, sizeof p, "%s/T.json", dir);
    snprintf(out, sizeof out, "%s/T.h5", dir);
    char *t = json_joined("{\"logical_count\": [", "[[2147483647, 2147483647, 2]]", 128, "]}");
    eplb_test_write_text(p, t);
    free(t);
    eplb_assert_ok(eplb_import_sglang(p, out, 1, "toy"));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, out));
    cr_assert_eq(eplb_trace_info(tr)->num_steps, 128);
    cr_assert_eq(eplb_trace_info(tr)->num_tokens, (int64_t)1 << 39);
    cr_assert_eq(eplb_trace_token_offsets(tr)[1], (int64_t)1 << 32);
    eplb_trace_close(tr);
    unlink(out);
    unlink(p);
    rmdir(dir);
}

/* --model DeepSeek-V3 with 256 experts gets DeepSeek-V3's routing
 * attributes (import.h) with the --top-k given: its config.json has
 * scoring_func sigmoid, n_group 8, topk_group 4, norm_topk_prob true and
 * routed_scaling_factor 2.5; here top-4, and 256 counts of 1 make 256 / 4
 * = 64 tokens.  Kills S11 (the preset's top-8 kept whatever --top-k). */
Test(import, sglang_deepseek_v3_route_keeps_top_k)
{
    const char *dir = eplb_test_tmpdir();
    char p[512], out[512];
    snprintf(p, sizeof p, "%s/v3.json", dir);
    snprintf(out, sizeof out, "%s/v3.h5", dir);
    write_sglang_ones(p, 256);
    eplb_assert_ok(eplb_import_sglang(p, out, 4, "DeepSeek-V3"));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, out));
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    cr_assert_eq(in->route.num_experts, 256);
    cr_assert_eq(in->route.top_k, 4);
    cr_assert_eq(in->route.scoring, EPLB_SCORING_SIGMOID);
    cr_assert_eq(in->route.num_groups, 8);
    cr_assert_eq(in->route.topk_groups, 4);
    cr_assert_eq(in->route.renormalize, 1);
    cr_assert_float_eq(in->route.routed_scaling_factor, 2.5f, 0);
    cr_assert_eq(in->num_tokens, 64);
    eplb_trace_close(tr);
    unlink(out);
    unlink(p);
    rmdir(dir);
}

/* The source attribute of an [L][E] import says which rows were kept and
 * how many dense rows went: rows 0 and 2 of [[0,0],[1,2],[0,0]] are all
 * zero, so "rows 1..1 of 3 kept (2 all-zero dense rows dropped)".  Kills
 * S13 (the kept count written for the dropped one). */
Test(import, sglang_source_counts_dropped_rows)
{
    const char *dir = eplb_test_tmpdir();
    char p[512], out[512];
    snprintf(p, sizeof p, "%s/d.json", dir);
    snprintf(out, sizeof out, "%s/d.h5", dir);
    eplb_test_write_text(p, "{\"logical_count\": [[0, 0], [1, 2], [0, 0]]}");
    eplb_assert_ok(eplb_import_sglang(p, out, 1, "toy"));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, out));
    const char *src = eplb_trace_info(tr)->source;
    cr_assert(strstr(src, "d.json: rows 1..1 of 3 kept (2 all-zero dense rows dropped)"), "%s",
              src);
    eplb_trace_close(tr);
    unlink(out);
    unlink(p);
    rmdir(dir);
}

/* eplb_import_input_fault (import.h): EPLB_ERR_INVALID_ARG becomes
 * EPLB_ERR_FORMAT with the input's name before the message; any other
 * status passes unchanged, its message too.  Kills S07 (every failure
 * converted: a write error, EPLB_ERR_IO, reported as an input error). */
Test(import, input_fault_converts_invalid_arg_only)
{
    eplb_error_set(EPLB_ERR_INVALID_ARG, "num_layers must be in 1..4096");
    cr_assert_eq(eplb_import_input_fault(EPLB_ERR_INVALID_ARG, "in.json"), EPLB_ERR_FORMAT);
    cr_assert_str_eq(eplb_error_last(), "in.json: num_layers must be in 1..4096");
    const eplb_status_t other[] = {EPLB_ERR_IO, EPLB_ERR_NOMEM, EPLB_ERR_FORMAT};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        eplb_error_set(other[i], "out.h5: File too large");
        cr_assert_eq(eplb_import_input_fault(other[i], "in.json"), other[i]);
        cr_assert_str_eq(eplb_error_last(), "out.h5: File too large");
    }
    cr_assert_eq(eplb_import_input_fault(EPLB_OK, "in.json"), EPLB_OK);
}
