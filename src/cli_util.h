/* cli_util.h - option parsing shared by the subcommands (getopt_long
 * loops of src/cmd_*.c). */
#ifndef EPLB_CLI_UTIL_H
#define EPLB_CLI_UTIL_H

#include <stdint.h>

#include "eplb.h"

/* *out = the decimal integer arg if it is whole and in [min, max]; else
 * EPLB_ERR_INVALID_ARG naming the option opt ("--steps") and the text. */
eplb_status_t eplb_cli_int_parse(int64_t *out, const char *arg, const char *opt, int64_t min,
                                 int64_t max);

/* The error of a getopt_long result that is not an option of the command,
 * with optstring starting with ':' and opterr = 0: ':' is a missing value,
 * anything else an unknown option (named from argv[optind - 1]).  Returns
 * EPLB_ERR_INVALID_ARG. */
eplb_status_t eplb_cli_getopt_fail(int c, char **argv);

#endif
