/* sim_fixtures.h - replay settings shared by the simulator suites
 * (test_sim.c, test_run_cli.c). */
#ifndef EPLB_TEST_SIM_FIXTURES_H
#define EPLB_TEST_SIM_FIXTURES_H

#include <stdint.h>

#include "sim.h"

/* Replay options: hash selection, the default cost profile, DeepSeek-V3's
 * expert sizes, no policy time, one thread, no move limit; the rest 0. */
eplb_sim_opts_t eplb_test_sim_opts(void);

/* One run of policy (which must exist) on D GPUs in N nodes with P slots,
 * triggered by kind with window W and interval I (the trigger's other
 * fields as EPLB_TRIGGER_INIT). */
eplb_sim_run_cfg_t eplb_test_run_cfg(const char *policy, int D, int N, int P,
                                     eplb_trigger_kind_t kind, int64_t W, int64_t I);

#endif
