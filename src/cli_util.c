/* cli_util.c - option parsing shared by the subcommands. */
#include "cli_util.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>

eplb_status_t eplb_cli_int_parse(int64_t *out, const char *arg, const char *opt, int64_t min,
                                 int64_t max)
{
    char *end = NULL;
    long long v = strtoll(arg, &end, 10);
    if (!arg[0] || *end || v < min || v > max)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "%s: expected an integer in %" PRId64 "..%" PRId64
                              ", got '%s'",
                              opt, min, max, arg);
    *out = v;
    return EPLB_OK;
}

eplb_status_t eplb_cli_getopt_fail(int c, char **argv)
{
    if (c == ':')
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: missing value", argv[optind - 1]);
    return eplb_error_set(EPLB_ERR_INVALID_ARG, "unknown option '%s' (see --help)",
                          argv[optind - 1]);
}
