/* cli_util.c - option parsing shared by the subcommands. */
#include "cli_util.h"

#include "decimal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

eplb_status_t eplb_cli_int_parse(int64_t *out, const char *arg, const char *opt, int64_t min,
                                 int64_t max)
{
    int64_t v = 0;
    if (eplb_decimal_parse(&v, arg) != 0 || v < min || v > max)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "%s: expected an integer in %" PRId64 "..%" PRId64
                              ", got '%s'",
                              opt, min, max, arg);
    *out = v;
    return EPLB_OK;
}

eplb_status_t eplb_cli_name_option(eplb_status_t st, const char *opt)
{
    if (st == EPLB_OK)
        return st;
    char why[1024]; /* the message buffer (as large) is about to be rewritten */
    snprintf(why, sizeof why, "%s", eplb_error_last());
    return eplb_error_set(st, "%s: %s", opt, why);
}

int eplb_cli_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The entry of longopts that arg ("--NAME" or "--NAME=...") names, or NULL */
static const struct option *find_long(const char *arg, const struct option *longopts)
{
    if (!arg || strncmp(arg, "--", 2) != 0)
        return NULL;
    const char *name = arg + 2;
    size_t n = strcspn(name, "=");
    for (const struct option *o = longopts; o->name; o++)
        if (strlen(o->name) == n && !strncmp(o->name, name, n))
            return o;
    return NULL;
}

int eplb_cli_is_option(const char *arg, const struct option *longopts)
{
    return find_long(arg, longopts) != NULL;
}

/* Options with a value given twice in one command line ("--gpus 2 --gpus
 * 4"): the second would silently replace the first, so both parsers refuse
 * it (lists are one value: "--gpus 2,4").  Flags may repeat.  The state
 * belongs to one argv: a new argv (or getopt restarting) resets it. */
static struct {
    char **argv;
    int n, key[128];
} seen;

static int seen_before(char **argv, int key)
{
    if (argv != seen.argv) {
        seen.argv = argv;
        seen.n = 0;
    }
    for (int i = 0; i < seen.n; i++)
        if (seen.key[i] == key)
            return 1;
    if (seen.n < (int)(sizeof seen.key / sizeof seen.key[0]))
        seen.key[seen.n++] = key;
    return 0;
}

static char repeated[160]; /* the option of eplb_cli_getopt's '!' */

int eplb_cli_getopt(int argc, char **argv, const char *optstring,
                    const struct option *longopts)
{
    if (optind <= 1) /* getopt starts over: a new command line */
        seen.argv = NULL;
    int idx = -1;
    int c = getopt_long(argc, argv, optstring, longopts, &idx);
    /* only a value taken from the next argument: "--top-k=--model" and
     * "-o--x" say what they mean */
    if (c != -1 && c != ':' && c != '?' && optarg && optind >= 2 &&
        optarg == argv[optind - 1] && eplb_cli_is_option(optarg, longopts)) {
        optind--; /* argv[optind - 1] is now the option itself */
        return ':';
    }
    if (c != -1 && c != ':' && c != '?' && optarg && seen_before(argv, c)) {
        if (idx >= 0)
            snprintf(repeated, sizeof repeated, "--%s", longopts[idx].name);
        else
            snprintf(repeated, sizeof repeated, "-%c", c);
        return '!';
    }
    return c;
}

eplb_status_t eplb_cli_getopt_fail(int c, char **argv)
{
    if (c == ':')
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s needs a value", argv[optind - 1]);
    if (c == '!')
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "%s is given twice (the second would replace the first)", repeated);
    return eplb_error_set(EPLB_ERR_INVALID_ARG, "unknown option '%s' (see --help)",
                          argv[optind - 1]);
}

eplb_status_t eplb_cli_next_opt(const struct option **opt, const char **val, int argc,
                                char **argv, int *i, const struct option *longopts)
{
    const char *a = argv[*i];
    const char *eq = strchr(a, '=');
    const struct option *o = find_long(a, longopts);
    if (!o)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "unknown option '%s' (see --help)", a);
    const char *v = NULL;
    if (o->has_arg == no_argument) {
        if (eq)
            return eplb_error_set(EPLB_ERR_INVALID_ARG, "--%s takes no value", o->name);
    } else if (eq) {
        v = eq + 1;
    } else {
        if (*i + 1 >= argc || eplb_cli_is_option(argv[*i + 1], longopts))
            return eplb_error_set(EPLB_ERR_INVALID_ARG, "--%s needs a value", o->name);
        v = argv[++*i];
    }
    if (v && seen_before(argv, o->val))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--%s is given twice (the second would replace the first)", o->name);
    *opt = o;
    *val = v;
    return EPLB_OK;
}

eplb_status_t eplb_cli_stdout_check(void)
{
    errno = 0;
    const int e = fflush(stdout) != 0 ? errno : 0;
    if (!e && !ferror(stdout))
        return EPLB_OK;
    return eplb_error_set(EPLB_ERR_IO, "stdout: write error%s%s", e ? ": " : "",
                          e ? strerror(e) : "");
}
