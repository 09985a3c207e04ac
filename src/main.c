/* main.c - eplb-replay entry point: dispatch to a subcommand. */
#include "config.h"
#include "cli_util.h"
#include "cmd.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"run", eplb_cmd_run, "replay a trace and model EPLB overhead and gain (default)"},
    {"info", eplb_cmd_info, "describe a trace: model, steps, levels, sizes, load skew"},
    {"gen", eplb_cmd_gen, "generate a synthetic trace from a model preset"},
    {"import", eplb_cmd_import, "convert ESFT routing logs or SGLang counts to a trace"},
    {"rebalance", eplb_cmd_rebalance, "run a policy on expert loads and print the placement"},
    {"bench", eplb_cmd_bench, "benchmarks: io, kernels, policy, sim, a2a"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: eplb-replay [run] TRACE.h5 [options]   (see eplb-replay run --help)\n"
               "       eplb-replay COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'eplb-replay COMMAND --help' describes each command; "
               "-h, --help: this text (also `help`);\n--version: the version.\n");
}

int eplb_cmd_fail(const char *cmd, eplb_status_t st)
{
    const char *msg = eplb_error_last();
    fprintf(stderr, "eplb-replay %s: %s\n", cmd, msg[0] ? msg : eplb_strerror(st));
    return st == EPLB_ERR_INVALID_ARG ? 2 : 1;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("eplb-replay %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    /* `eplb-replay TRACE.h5 ...` is `eplb-replay run TRACE.h5 ...`; a first
     * word that names no file and looks like no path (no '/' or '.') is a
     * mistyped command, not a trace ("rebalence --help" ran `run --help`) */
    struct stat sb;
    const int mistyped =
        argv[1][0] && argv[1][0] != '-' && stat(argv[1], &sb) != 0 && !strpbrk(argv[1], "/.");
    if (!mistyped && (argv[1][0] != '-' || !strcmp(argv[1], "--policy"))) {
        argv[0] = "run";
        return eplb_cmd_run(argc, argv);
    }
    fprintf(stderr, "eplb-replay: unknown %s '%s'%s\n", mistyped ? "command" : "command or option",
            argv[1], mistyped ? " (and no such file)" : "");
    usage(stderr);
    return 2;
}

int main(int argc, char **argv)
{
    int rc = dispatch(argc, argv);
    /* output that could not be written (a full disk, a closed pipe) is a
     * failure, whatever the command printed; a command that failed has
     * already said why (its own stdout check included) */
    if (rc == 0 && eplb_cli_stdout_check() != EPLB_OK) {
        fprintf(stderr, "eplb-replay: %s\n", eplb_error_last());
        rc = 1;
    }
    return rc;
}
