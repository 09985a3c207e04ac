/* bench_kernels.c - placeholder until the benchmark lands. */
#include "cmd.h"

int eplb_bench_kernels(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return eplb_cmd_fail("bench kernels", eplb_error_set(EPLB_ERR_UNSUPPORTED, "not implemented yet"));
}
