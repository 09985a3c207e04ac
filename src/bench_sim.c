/* bench_sim.c - placeholder until the benchmark lands. */
#include "cmd.h"

int eplb_bench_sim(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return eplb_cmd_fail("bench sim", eplb_error_set(EPLB_ERR_UNSUPPORTED, "not implemented yet"));
}
