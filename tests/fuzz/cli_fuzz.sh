#!/bin/sh
# cli_fuzz.sh - manual sweep of option COMBINATIONS of every command (not
# part of `make check`; trace_fuzz.sh feeds the trace reader, inputs_fuzz.sh
# the text inputs): run, info, gen, import, rebalance, bench kernels
# (--device cpu), bench policy, bench sim, bench io.  Each case combines
# options that the command's --help lists with valid values, boundaries (0,
# 1, -1, the largest allowed and one past it, 2^31, 2^63), malformed text
# (8x, '', ' 8', 0x10, NaN, inf, 1e309), lists (huge, empty elements,
# duplicates), --opt=value forms, repeated options, options of other
# commands, combinations the help rules out (--replicas with --redundant,
# --trigger once with --window, --nodes not dividing --gpus, ...) and
# output paths that cannot work (an existing directory, /proc, the input).
# A case is reported when it crashes or prints a sanitizer report, runs
# past 20 s or 1 GB of RSS (requests the help allows to be that big are
# let through), exits 0 although the help rules it out, exits 1 for a usage
# error or 2 for a file error, names neither an option nor a file, prints
# usage on stdout after an error, or leaves output behind after a failure
# (a temporary file after a success).  The cases depend on SEED only.
# Use an ASan build (configure --enable-sanitizers --without-cuda); copy
# the binary first if you rebuild while the sweep runs.
#
# usage: tests/fuzz/cli_fuzz.sh BUILD/eplb-replay [SEED] [N] [COMMANDS]
#   SEED  default 1; N cases per command (default 150); COMMANDS a comma
#   list of run,info,gen,import,rebalance,bench-kernels,bench-policy,
#   bench-sim,bench-io (default all).  Needs python3 and /usr/bin/time
#   (GNU).  The output of a reported case is kept in $FUZZ_KEEP (default
#   ./fuzz-keep).
#
# Found 2026-11-28 (seeds 1 and 2, N 150: 1,350 cases a seed), all fixed,
# each with a test that failed before the fix:
#   - bench io --reads 99999999999999999999 took INT64_MAX tokens per read
#     (strtoll clamped) and overflowed the read loop's step (UBSan: signed
#     integer overflow in reads_lane); counts now 1..2^40
#                                       bad_input/bench_io_reads_bounded
#   - messages naming a value, not the option: gen/bench kernels --dtype
#     ("unknown dtype 'F16'"), bench kernels --scoring, --mode, and the
#     route checks of --experts/--topk/--groups/--topk-groups ("route:
#     num_experts 600 outside [1, 512]"); rebalance's shape checks
#     ("replicas 8 is not a multiple of gpus 16"); `import --format bogus`
#     said "expected one input file"   bad_input/sweep_messages_name_the_option
#   - rebalance --replicas 48 --gpus 4096 --old F read F before checking
#     the options and blamed it (exit 1: "shape [3][16], expected [3][48]")
#                                       bad_input/rebalance_options_before_old
# Not defects (documented, or the request itself is that big): the largest
# values the help allows run far past 20 s (bench sim --steps 1000000000,
# rebalance --replicas 16384 with migration-aware --max-moves -1, gen
# --force at the size limits, bench kernels --tokens 16777216: 16 GiB of
# logits); bench io --reads 4 --threads 256 on an 8 MB trace takes minutes
# under ASan (thousands of tiny reads, each on 256 threads).
set -u
bin=$1
seed=${2:-1}
n=${3:-150}
cmds=${4:-all}
here=$(cd "$(dirname "$0")/../.." && pwd)
keep=${FUZZ_KEEP:-./fuzz-keep}
exec python3 "$here/tests/fuzz/cli_fuzz.py" "$bin" "$seed" "$n" "$cmds" "$here" "$keep"
