/* test_h5py.c - traces written by the C writer read back as numbers in
 * Python's h5py (the tool users write and read traces with), for every logits
 * dtype, bfloat16 included (a user-defined HDF5 float).  Skips where python3
 * with h5py is missing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "trace_fixtures.h"
#include "trace.h"

static int have_h5py(void)
{
    return system("python3 -c 'import h5py, numpy' >/dev/null 2>&1") == 0;
}

/* Write a 1-step trace of 3 tokens, 2 layers, 4 experts with logits x_i
 * that are not exactly representable in 16 bits. */
static void write_trace(const char *path, eplb_dtype_t dt, float *logits, int n)
{
    for (int i = 0; i < n; i++)
        logits[i] = (float)(i - 11) * 0.337f + 0.001f * (float)(i * i);
    eplb_trace_writer_opts_t o =
        eplb_test_writer_opts("h5py-check", "tests/test_h5py.c", 2, 4, 2, EPLB_LEVEL_LOGITS);
    o.logits_dtype = dt;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    eplb_assert_ok(eplb_trace_writer_append_step(w, 3, logits, NULL, NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
}

static float rounded(float x, eplb_dtype_t dt)
{
    switch (dt) {
    case EPLB_DTYPE_F16: return eplb_f16_to_f32(eplb_f32_to_f16(x));
    case EPLB_DTYPE_BF16: return eplb_bf16_to_f32(eplb_f32_to_bf16(x));
    default: return x;
    }
}

static void check_dtype(eplb_dtype_t dt)
{
    if (!have_h5py())
        cr_skip_test("python3 with h5py not available");
    const char *dir = eplb_test_tmpdir();
    char path[512], cmd[1400];
    snprintf(path, sizeof path, "%s/t.h5", dir);
    float logits[24];
    write_trace(path, dt, logits, 24);
    /* h5py prints the values it reads as float64 text, one per line, after
     * the attributes it sees. */
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import h5py, numpy as np\n"
             "f = h5py.File('%s', 'r')\n"
             "print(int(f.attrs['eplb_trace_version']), int(f.attrs['num_experts']))\n"
             "a = np.asarray(f['/router/logits'][...], dtype=np.float64)\n"
             "print(a.shape)\n"
             "print('\\n'.join('%%.17g' %% x for x in a.ravel()))\"",
             path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int ver = 0, ne = 0;
    cr_assert_eq(fscanf(p, "%d %d", &ver, &ne), 2, "h5py could not read %s", path);
    cr_assert_eq(ver, 1);
    cr_assert_eq(ne, 4);
    char shape[64];
    cr_assert_eq(fscanf(p, " %63[^\n]", shape), 1);
    cr_assert_str_eq(shape, "(3, 2, 4)");
    for (int i = 0; i < 24; i++) {
        double got;
        cr_assert_eq(fscanf(p, "%lf", &got), 1, "value %d missing", i);
        float want = rounded(logits[i], dt);
        cr_assert_eq((float)got, want, "%s value %d: h5py read %.9g, wrote %.9g",
                     eplb_dtype_name(dt), i, got, (double)want);
    }
    cr_assert_eq(pclose(p), 0);
    remove(path);
    rmdir(dir);
}

Test(h5py, reads_f32_logits) { check_dtype(EPLB_DTYPE_F32); }
Test(h5py, reads_f16_logits) { check_dtype(EPLB_DTYPE_F16); }
Test(h5py, reads_bf16_logits_as_numbers) { check_dtype(EPLB_DTYPE_BF16); }

/* A recorder written with h5py that appends one step at a time to
 * datasets created from their first row with an unlimited first dimension
 * (chunks=True): h5py gives them one-row chunks, 8 bytes a step for
 * token_offset.  6000 steps must open and replay (a limit of 4096 small
 * chunks refused this; the limit is 2^17, traces/FORMAT.md). */
Test(h5py, recorder_appending_steps_opens)
{
    if (!have_h5py())
        cr_skip_test("python3 with h5py not available");
    const char *dir = eplb_test_tmpdir();
    char path[512], cmd[2400];
    snprintf(path, sizeof path, "%s/rec.h5", dir);
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import h5py, numpy as np\n"
             "f = h5py.File('%s', 'w')\n"
             "f.attrs.update(dict(eplb_trace_version=1, model='toy', num_layers=2,\n"
             "    num_experts=8, top_k=2, scoring='softmax', num_groups=1, topk_groups=1,\n"
             "    renormalize=0, routed_scaling_factor=1.0, source='h5py appender'))\n"
             "o = f.create_dataset('steps/token_offset', data=np.zeros(1, np.int64),\n"
             "    maxshape=(None,), chunks=True)\n"
             "c = f.create_dataset('load/counts', data=np.zeros((1, 2, 8), np.int32),\n"
             "    maxshape=(None, 2, 8), chunks=True)\n"
             "assert o.chunks == (1,), o.chunks\n"
             "row = np.zeros((2, 8), np.int32); row[:, (0, 1)] = 4\n"
             "for s in range(6000):\n"
             "    if s: c.resize((s + 1, 2, 8))\n"
             "    c[s] = np.roll(row, s %% 8, axis=1)\n"
             "    o.resize((s + 2,)); o[s + 1] = 4 * (s + 1)\n"
             "f.close()\"",
             path);
    cr_assert_eq(system(cmd), 0, "h5py could not write %s", path);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "info '%s' --no-skew", path);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "6000"), "%s", out);
    free(out);
    rc = eplb_test_run_cli(&out, "run '%s' --quiet --policy-time 0", path);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    remove(path);
    rmdir(dir);
}

/* traces/eplb_record.py, the Python recorder for serving engines:
 * tests/record_check.py writes two traces through it and compares them
 * with h5py; here the program reads them.  The softmax trace holds numpy's
 * own top-k of logits 0.05 apart (no near-ties), so the replay's routing
 * must agree on every row: 17310 tokens x 2 layers. */
Test(h5py, python_recorder_traces_replay)
{
    if (!have_h5py())
        cr_skip_test("python3 with h5py not available");
    const char *dir = eplb_test_tmpdir();
    char cmd[2400], path[600];
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/record_check.py' '%s' '%s'",
             eplb_test_srcdir(), eplb_test_srcdir(), dir);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    char *out = NULL;
    int rc;
    /* deflated (as the C writer) and plain (deflate=0: no filters) */
    static const char *names[] = {"softmax.h5", "plain.h5"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = eplb_test_run_cli(&out, "run '%s' --gpus 4 --device cpu --policy-time 0 "
                                     "--quiet --json", path);
        cr_assert_eq(rc, 0, "%s", out);
        cr_assert(strstr(out, "\"routing_check\": {\"rows\": 34620, \"differ\": 0}"),
                  "%s: %s", names[i], out);
        free(out);
        remove(path);
    }
    /* grouped sigmoid, bias, bfloat16, phases and ranks: info sees them,
     * and a run with --select local (which uses ranks) goes through */
    snprintf(path, sizeof path, "%s/grouped.h5", dir);
    rc = eplb_test_run_cli(&out, "info '%s' --json --no-skew", path);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\"dtype\": \"bf16\"") && strstr(out, "\"has_bias\": true") &&
                  strstr(out, "\"has_src_rank\": true") && strstr(out, "\"num_tokens\": 56"),
              "%s", out);
    free(out);
    rc = eplb_test_run_cli(&out, "run '%s' --gpus 4 --select local --device cpu "
                                 "--policy-time 0 --quiet", path);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    remove(path);
    /* float16 logits with 300 experts (2-byte ids) and weights; ids only;
     * counts only (add_counts); three ranks merged (merge_ranks) */
    static const struct {
        const char *name, *want;
    } more[] = {{"f16.h5", "\"dtype\": \"f16\", \"topk_id_bytes\": 2"},
                {"idsonly.h5", "\"levels\": [\"topk_ids\"]"},
                {"counts.h5", "\"levels\": [\"counts\"]"},
                /* tokens of the 3 ranks of record_check.py: 5+3+0+2,
                 * 4+0+0+6, 1+2+0+0 (info's rank pass, without --no-skew) */
                {"merged.h5", "\"src_ranks\": {\"ranks\": 3, \"lowest\": 0, \"highest\": 2, "
                              "\"tokens_min\": 3, \"tokens_max\": 10}"}};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, more[i].name);
        rc = eplb_test_run_cli(&out, "info '%s' --json%s", path, i == 3 ? "" : " --no-skew");
        cr_assert_eq(rc, 0, "%s", out);
        cr_assert(strstr(out, more[i].want), "%s: %s", more[i].name, out);
        free(out);
        rc = eplb_test_run_cli(&out, "run '%s' --gpus 4 --device cpu --policy-time 0 --quiet%s",
                               path, i == 3 ? " --select local" : "");
        cr_assert_eq(rc, 0, "%s: %s", more[i].name, out);
        free(out);
        remove(path);
    }
    rmdir(dir);
}

/* Logits in more chunks than the parallel reader looks up by address
 * (8192, traces/parallel.c: the lookup walks HDF5's chunk index from its
 * start, n^2/2 in all; 50,000 chunks took 18 s) read as the same trace
 * stored contiguous: 9000 one-row chunks against none, `info`'s load pass
 * (logits routed) and a run's JSON equal. */
Test(h5py, many_chunk_logits_read_as_contiguous)
{
    if (!have_h5py())
        cr_skip_test("python3 with h5py not available");
    const char *dir = eplb_test_tmpdir();
    char cmd[2400], p[2][600];
    for (int i = 0; i < 2; i++)
        snprintf(p[i], sizeof p[i], "%s/%s.h5", dir, i ? "chunked" : "plain");
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import h5py, numpy as np\n"
             "T, L, E = 9000, 2, 8\n"
             "x = np.random.default_rng(3).normal(size=(T, L, E)).astype('f4')\n"
             "for path, ch in (('%s', None), ('%s', (1, L, E))):\n"
             "    f = h5py.File(path, 'w')\n"
             "    f.attrs.update(dict(eplb_trace_version=1, model='toy', num_layers=L,\n"
             "        num_experts=E, top_k=2, scoring='softmax', num_groups=1,\n"
             "        topk_groups=1, renormalize=0, routed_scaling_factor=1.0, source='t'))\n"
             "    f['steps/token_offset'] = np.arange(0, T + 1, 300, dtype=np.int64)\n"
             "    f.create_dataset('router/logits', data=x, chunks=ch,\n"
             "        maxshape=(None, L, E) if ch else None)\n"
             "    f.close()\"",
             p[0], p[1]);
    cr_assert_eq(system(cmd), 0, "h5py could not write the traces");
    char *out[2][2] = {{NULL, NULL}, {NULL, NULL}};
    for (int i = 0; i < 2; i++) {
        int rc = eplb_test_run_cli(&out[i][0], "info '%s' --json 2>/dev/null", p[i]);
        cr_assert_eq(rc, 0, "%s", out[i][0]);
        rc = eplb_test_run_cli(&out[i][1],
                               "run '%s' --gpus 4 --device cpu --policy-time 0 "
                               "--quiet --json 2>/dev/null",
                               p[i]);
        cr_assert_eq(rc, 0, "%s", out[i][1]);
    }
    /* info: from the skew on (the path and sizes differ) */
    const char *s0 = strstr(out[0][0], "\"skew_per_layer\""),
               *s1 = strstr(out[1][0], "\"skew_per_layer\"");
    cr_assert(s0 && s1, "%s", out[0][0]);
    cr_assert_str_eq(s0, s1);
    /* run: from the runs on (the config names the trace) */
    s0 = strstr(out[0][1], "\"runs\"");
    s1 = strstr(out[1][1], "\"runs\"");
    cr_assert(s0 && s1, "%s", out[0][1]);
    cr_assert_str_eq(s0, s1);
    for (int i = 0; i < 2; i++) {
        free(out[i][0]);
        free(out[i][1]);
        remove(p[i]);
    }
    rmdir(dir);
}
