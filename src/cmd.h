/* cmd.h - subcommands of the eplb-replay program.  Each returns the process
 * exit status (0 ok, 1 runtime failure, 2 usage error) and prints its own
 * errors as "eplb-replay <cmd>: <message>" on stderr. */
#ifndef EPLB_CMD_H
#define EPLB_CMD_H

#include "eplb.h"

int eplb_cmd_run(int argc, char **argv);       /* src/cmd_run.c */
int eplb_cmd_info(int argc, char **argv);      /* src/cmd_info.c */
int eplb_cmd_gen(int argc, char **argv);       /* src/cmd_gen.c */
int eplb_cmd_import(int argc, char **argv);    /* src/cmd_import.c */
int eplb_cmd_rebalance(int argc, char **argv); /* src/cmd_rebalance.c */
int eplb_cmd_bench(int argc, char **argv);     /* src/cmd_bench.c */

/* bench subcommands, called by eplb_cmd_bench with argv[0] = "io" etc. */
int eplb_bench_io(int argc, char **argv);      /* src/bench_io.c */
int eplb_bench_kernels(int argc, char **argv); /* src/bench_kernels.c */
int eplb_bench_policy(int argc, char **argv);  /* src/bench_policy.c */
int eplb_bench_sim(int argc, char **argv);     /* src/bench_sim.c */
int eplb_bench_a2a(int argc, char **argv);     /* src/bench_a2a.c */

/* A loads file of rebalance and bench policy (src/cmd_rebalance.c): JSON
 * [[...]] or SGLang's {"logical_count": ...}, 2-D [L][E] or a 3-D time
 * series [S][L][E] (summed in double into w), or CSV.  *w_out [L][E];
 * *series_out [S][L][E] and *S_out for a 3-D input (else NULL and 0). */
eplb_status_t eplb_weights_load(float **w_out, int *L_out, int *E_out, float **series_out,
                                int *S_out, const char *path);

/* Print "eplb-replay <cmd>: <last error>" to stderr and return 1
 * (2 for EPLB_ERR_INVALID_ARG). */
int eplb_cmd_fail(const char *cmd, eplb_status_t st);

#endif
