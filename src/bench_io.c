/* bench_io.c - placeholder until the benchmark lands. */
#include "cmd.h"

int eplb_bench_io(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return eplb_cmd_fail("bench io", eplb_error_set(EPLB_ERR_UNSUPPORTED, "not implemented yet"));
}
