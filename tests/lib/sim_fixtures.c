/* sim_fixtures.c - replay settings shared by the simulator suites. */
#include <string.h>

#include <criterion/criterion.h>

#include "policy.h"
#include "sim_fixtures.h"

eplb_sim_opts_t eplb_test_sim_opts(void)
{
    eplb_sim_opts_t o;
    memset(&o, 0, sizeof o);
    o.select = EPLB_SELECT_HASH;
    eplb_sim_profile_default(&o.prof);
    eplb_sim_model_shape(&o.shape, "DeepSeek-V3", NULL);
    o.policy_time = 0;
    o.threads = 1;
    o.max_moves = -1;
    return o;
}

eplb_sim_run_cfg_t eplb_test_run_cfg(const char *policy, int D, int N, int P,
                                     eplb_trigger_kind_t kind, int64_t W, int64_t I)
{
    eplb_sim_run_cfg_t r;
    memset(&r, 0, sizeof r);
    r.policy = eplb_policy_find(policy);
    cr_assert_not_null(r.policy, "policy %s missing", policy);
    r.num_gpus = D;
    r.num_nodes = N;
    r.num_slots = P;
    eplb_trigger_t t = EPLB_TRIGGER_INIT;
    t.kind = kind;
    t.window = W;
    t.interval = I;
    r.trig = t;
    return r;
}
