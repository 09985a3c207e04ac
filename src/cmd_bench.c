/* cmd_bench.c - `eplb-replay bench WHAT ...`: dispatch to one benchmark. */
#include "cmd.h"

#include <stdio.h>
#include <string.h>

int eplb_cmd_bench(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
        const char *help;
    } benches[] = {
        {"a2a", eplb_bench_a2a, "NCCL all-to-all on this node's GPUs: the profile's NVLink numbers"},
        {"io", eplb_bench_io, "trace decompression: serial H5Dread vs parallel inflate"},
        {"kernels", eplb_bench_kernels, "routing, replica selection, recording (CPU or GPU)"},
        {"policy", eplb_bench_policy, "rearrangement policies on the DeepSeek-V3 model"},
        {"sim", eplb_bench_sim, "counts-level simulator updates per second"},
    };
    const size_t nb = sizeof benches / sizeof benches[0];
    for (size_t i = 0; argc >= 2 && i < nb; i++)
        if (!strcmp(argv[1], benches[i].name))
            return benches[i].fn(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: eplb-replay bench WHAT [options] [--json]\n\n");
        for (size_t i = 0; i < nb; i++)
            printf("  %-10s %s\n", benches[i].name, benches[i].help);
        printf("  -h, --help this text\n\n'eplb-replay bench WHAT --help' describes each "
               "benchmark.\n");
        return 0;
    }
    /* a usage error is one line, as with the other commands: "a2a, io,
     * kernels, policy or sim" */
    char names[128] = "";
    for (size_t i = 0; i < nb; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                 i == 0 ? "" : i + 1 < nb ? ", " : " or ", benches[i].name);
    if (argc < 2)
        fprintf(stderr, "eplb-replay bench: missing WHAT: %s (see --help)\n", names);
    else
        fprintf(stderr, "eplb-replay bench: unknown benchmark '%s': expected %s (see --help)\n",
                argv[1], names);
    return 2;
}
