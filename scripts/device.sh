#!/bin/bash
# scripts/device.sh - everything the GPU machine is for, in one call:
# build (autogen + configure + make), the GPU tests, compute-sanitizer
# memcheck and racecheck on them (small shapes), and `bench kernels`.
# Logs go to $OUT (default /tmp/eplb-device); a short summary is printed
# last.  Usage: scripts/device.sh [tests|quick|full]
#   tests: build and gpu_tests only; quick: + sanitizers, bench, ncu;
#   full: + benchmark variants, shapes, modes and the CPU path
#
# Source: the committed tree (git archive HEAD) with this checkout's own
# kernels/ files laid over it, so that other folders' work in progress
# cannot break the build; without git, the working tree as it is.
set -u
what=${1:-full}
OUT=${OUT:-/tmp/eplb-device}
mkdir -p "$OUT"
SRC=$(cd "$(dirname "$0")/.." && pwd)
T=/tmp/eplb-src
B=/tmp/eplb-build
export PATH=/usr/local/cuda/bin:$PATH
summary="$OUT/summary.txt"
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
stamp() { date -u +%H:%M:%S; }

say "== $(stamp) device.sh $what on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit \
    --format=csv,noheader >"$OUT/gpu.txt" 2>&1
say "gpu: $(cat "$OUT/gpu.txt")"
say "nvcc: $(nvcc --version | tail -1)"

rm -rf "$T" "$B"
mkdir -p "$T" "$B"
if git -C "$SRC" rev-parse HEAD >/dev/null 2>&1; then
    say "commit: $(git -C "$SRC" rev-parse --short HEAD) (+ working-tree kernels/ files)"
    git -C "$SRC" archive HEAD | tar -x -C "$T"
    for p in kernels src/bench_kernels.c tests/gpu_tests.c tests/test_kernels.c \
        scripts/device.sh traces/esft-intent.h5; do
        [ -e "$SRC/$p" ] && mkdir -p "$T/$(dirname "$p")" && cp -r "$SRC/$p" "$T/$(dirname "$p")/"
    done
else
    say "commit: none (no .git): working tree as is"
    cp -r "$SRC/." "$T/"
fi

say "== $(stamp) build"
(cd "$T" && ./autogen.sh) >"$OUT/autogen.log" 2>&1 || { say "autogen failed"; tail -30 "$OUT/autogen.log"; exit 1; }
(cd "$B" && "$T/configure" --with-cuda) >"$OUT/configure.log" 2>&1 || { say "configure failed"; tail -30 "$OUT/configure.log"; exit 1; }
grep -E "CUDA:|Criterion:" "$OUT/configure.log" | tee -a "$summary"
if ! make -C "$B" -j16 libeplb.a eplb-replay tests/gpu_tests >"$OUT/build.log" 2>&1; then
    say "build failed"
    grep -E "error" "$OUT/build.log" | head -30
    tail -20 "$OUT/build.log"
    exit 1
fi
nvcc -gencode=arch=compute_90,code=sm_90 -O3 -std=c++17 -Xptxas -v -I"$T/src" -I"$T/kernels" \
    -I"$B" -c "$T/kernels/route.cu" -o /tmp/route_v.o 2>&1 |
    grep -E "registers|spill" >"$OUT/ptxas.txt"

say "== $(stamp) gpu_tests"
(cd "$B" && EPLB_SRCDIR="$T" timeout 180 ./tests/gpu_tests) >"$OUT/gpu_tests.log" 2>&1
rc=$?
grep -E "note:|rate|esft|skip|FAIL" "$OUT/gpu_tests.log" | head -40 | tee -a "$summary"
say "gpu_tests rc=$rc: $(tail -1 "$OUT/gpu_tests.log")"
[ "$what" = tests ] && exit $rc

CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck; do
    say "== $(stamp) compute-sanitizer $tool (--small)"
    (cd "$B" && EPLB_SRCDIR="$T" timeout 120 "$CS" --tool $tool --error-exitcode 3 \
        ./tests/gpu_tests --small) >"$OUT/$tool.log" 2>&1
    rc=$?
    say "$tool rc=$rc: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY" "$OUT/$tool.log" | tr '\n' ' ') $(tail -1 "$OUT/$tool.log")"
done

say "== $(stamp) bench kernels"
R="$B/eplb-replay"
$R bench kernels --device gpu --json >"$OUT/bench.jsonl" 2>&1
$R bench kernels --device gpu | tee -a "$summary"
if command -v ncu >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/ncu ]; then
    say "== $(stamp) ncu: first route_warp_kernel launch at T=65536 (route only)"
    timeout 150 ncu --clock-control none --kernel-name regex:route_warp --launch-count 1 \
        --section SpeedOfLight --section Occupancy --section WarpStateStats \
        --section SchedulerStats --section InstructionStats --section MemoryWorkloadAnalysis \
        $R bench kernels --device gpu --tokens 65536 --reps 1 >"$OUT/ncu.txt" 2>&1
    grep -E "Duration|Throughput|Executed Ipc|Issue Slots|Achieved Occupancy|Theoretical Occupancy|Registers Per|Executed Instructions |Warp Cycles Per Issued|Stall|No Eligible|Eligible Warps|Active Warps Per|One or More" \
        "$OUT/ncu.txt" | head -40 | tee -a "$summary"
fi
(cuobjdump -sass "$B/kernels/route.o" 2>/dev/null || true) | awk '/Function :/{name=$3} /^ +\/\*[0-9a-f]+\*\//{n[name]++} END{for (k in n) print n[k], k}' |
    sort -rn | tee -a "$summary"
if [ "$what" = full ]; then
    {
        echo "# variant 1 (generic kernel)"
        $R bench kernels --device gpu --variant 1 --tokens 64,4096,65536
        echo "# variant 2 (lanes-per-row insertion kernel)"
        $R bench kernels --device gpu --variant 2 --tokens 64,4096,65536
        echo "# variant 3 (default at 3 blocks per SM)"
        $R bench kernels --device gpu --variant 3 --tokens 64,4096,65536
        echo "# variant 4 (3 blocks per SM, next-row prefetch)"
        $R bench kernels --device gpu --variant 4 --tokens 64,4096,65536
        echo "# bf16 logits"
        $R bench kernels --device gpu --dtype bf16 --tokens 64,4096,65536
        echo "# modes"
        for m in random local rr-block balanced; do
            $R bench kernels --device gpu --mode $m --tokens 4096,65536
        done
        echo "# qwen3 shape (128 experts, top-8, softmax, no groups)"
        $R bench kernels --device gpu --experts 128 --groups 1 --topk-groups 1 \
            --scoring softmax --no-bias --replicas 160 --tokens 64,4096,65536
        echo "# cpu (16 cores)"
        $R bench kernels --device cpu --tokens 4096,65536 --reps 3
    } >"$OUT/bench_more.txt" 2>&1
    grep -E "^(#|fused|route|eplb)" "$OUT/bench_more.txt" | tee -a "$summary"
fi
rm -f "$OUT/autogen.log" "$OUT/configure.log" "$OUT/build.log" # keep 8 files
say "== $(stamp) done"
