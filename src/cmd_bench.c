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
        {"io", eplb_bench_io, "trace decompression: serial H5Dread vs parallel inflate"},
        {"kernels", eplb_bench_kernels, "routing, replica selection, recording (CPU or GPU)"},
        {"policy", eplb_bench_policy, "rearrangement policies on the DeepSeek-V3 model"},
        {"sim", eplb_bench_sim, "counts-level simulator updates per second"},
    };
    if (argc >= 2)
        for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
            if (!strcmp(argv[1], benches[i].name))
                return benches[i].fn(argc - 1, argv + 1);
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    FILE *f = help ? stdout : stderr;
    if (argc >= 2 && !help)
        fprintf(stderr, "eplb-replay bench: unknown benchmark '%s'\n", argv[1]);
    fprintf(f, "usage: eplb-replay bench WHAT [options] [--json]\n\n");
    for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
        fprintf(f, "  %-8s %s\n", benches[i].name, benches[i].help);
    return help ? 0 : 2;
}
