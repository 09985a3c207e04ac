/* test_bench.c - `eplb-replay bench policy` (src/bench_policy.c,
 * src/cmd_bench.c): its JSON line on the shared DeepSeek-V3 loads (skipped
 * without ../shared) and an unknown policy refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "json.h"

Test(policy_bench, one_json_line_per_policy)
{
    const char *shared = eplb_test_shared_dir();
    if (!shared)
        cr_skip_test("../shared not found (set EPLB_SHARED_DIR)");
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench policy --policy deepseek --repeat 3 --json "
                                     "--weights '%s'",
                               eplb_test_path(shared,
                                              "data/sglang-dsv3/decode_in1000out1000.json"));
    cr_assert_eq(rc, 0, "%s", out);
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, out, strlen(out), "bench output"));
    cr_assert_str_eq(eplb_json_get(v, "policy")->str, "deepseek");
    cr_assert_eq(eplb_json_get(v, "layers")->num, 58);
    cr_assert_eq(eplb_json_get(v, "replicas")->num, 288);
    cr_assert_gt(eplb_json_get(v, "median_us")->num, 0);
    eplb_json_free(v);
    free(out);
    rc = eplb_test_run_cli(&out, "bench policy --policy nope");
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "unknown policy 'nope'"), "%s", out);
    free(out);
}
