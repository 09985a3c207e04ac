/* cli_util.h - option parsing shared by the subcommands (getopt_long
 * loops of src/cmd_*.c and the hand-written loops of rebalance and bench
 * policy), and the bounds of the placement options. */
#ifndef EPLB_CLI_UTIL_H
#define EPLB_CLI_UTIL_H

#include <getopt.h>
#include <stdint.h>

#include "eplb.h"

/* The largest --replicas (physical expert slots per layer) and --gpus that
 * rebalance and run accept.  The largest real deployments have a few
 * thousand slots per layer.  Some policies grow quadratically with the
 * slots of a layer: migration-aware takes about 3 s for one layer of 16384
 * slots and 60 s at 65536, and 2^20 slots kept nodup, vec and
 * deepseek-preserve busy for minutes. */
#define EPLB_MAX_SLOTS 16384
#define EPLB_MAX_GPUS 4096
/* slots x layers of one placement: 2^22 (DeepSeek-V3 with 288 slots: 17K;
 * 256 layers of 16384 slots).  At 2^26 a file of thousands of layers at
 * the most slots kept migration-aware busy for hours. */
#define EPLB_MAX_LAYER_SLOTS ((int64_t)1 << 22)

/* *out = the decimal integer arg if it is whole and in [min, max]; else
 * EPLB_ERR_INVALID_ARG naming the option opt ("--steps") and the text
 * (also for a number beyond int64, which strtoll would clamp). */
eplb_status_t eplb_cli_int_parse(int64_t *out, const char *arg, const char *opt, int64_t min,
                                 int64_t max);

/* st, with the last error message prefixed by "OPT: " when st is not
 * EPLB_OK: a parser shared with file readers ("unknown dtype 'f64'") names
 * the option that gave the text */
eplb_status_t eplb_cli_name_option(eplb_status_t st, const char *opt);

/* Flush stdout: EPLB_OK, or EPLB_ERR_IO "stdout: write error[: REASON]"
 * where it could not be written (a full disk, a closed pipe; the reason
 * where the flush itself failed and said why). */
eplb_status_t eplb_cli_stdout_check(void);

/* 1 when paths a and b (either may be NULL) name the same existing file
 * or directory (device and inode): an output that is an input */
int eplb_cli_same_file(const char *a, const char *b);

/* 1 if arg is "--NAME" or "--NAME=..." for a NAME of longopts (ending
 * with a zero entry).  No option of ours takes a value that starts with
 * "--" and names one of the command's options, so such a value is an
 * option whose predecessor's value was forgotten: "--weights --replicas 16"
 * must say that --weights needs a value, not that 16 is unknown. */
int eplb_cli_is_option(const char *arg, const struct option *longopts);

/* getopt_long (optstring starting with ':', opterr = 0), except that a
 * required value given as a separate argument that eplb_cli_is_option
 * calls an option is reported as missing: returns ':' with optind at that
 * argument, so that eplb_cli_getopt_fail names the option that lacks it. */
int eplb_cli_getopt(int argc, char **argv, const char *optstring,
                    const struct option *longopts);

/* The error of a getopt_long result that is not an option of the command,
 * with optstring starting with ':' and opterr = 0: ':' is a missing value
 * ("--top-k needs a value"), anything else an unknown option (named from
 * argv[optind - 1]).  Returns EPLB_ERR_INVALID_ARG. */
eplb_status_t eplb_cli_getopt_fail(int c, char **argv);

/* One option of a hand-written loop over argv (long options only, exact
 * names, "--name value" or "--name=value"): argv[*i] must be one of
 * longopts (*opt = its entry); *val = its value (NULL for no_argument),
 * and *i moves past a value given as the next argument.  Errors
 * (EPLB_ERR_INVALID_ARG): an unknown option, a value for no_argument, a
 * missing value, or a next argument that eplb_cli_is_option calls an
 * option ("--policy needs a value"). */
eplb_status_t eplb_cli_next_opt(const struct option **opt, const char **val, int argc,
                                char **argv, int *i, const struct option *longopts);

#endif
