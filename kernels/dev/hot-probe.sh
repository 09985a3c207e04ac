#!/bin/bash
# kernels/dev/hot-probe.sh - why routing slows with hot experts (bench
# kernels --hot): route-only times for hot 0/2/8, then ncu of one route
# launch at T = 4096 for hot 0 and 8 (warp states, instructions, source
# counters) and the durations of 24 launches with hot 8 (a bimodal spread
# would mean a rare slow path).  Run on the GPU machine with the binaries
# of scripts/prebuild.sh: PREBUILT=.devbin kernels/dev/hot-probe.sh
set -u
OUT=${OUT:-/tmp/hot-probe}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH HDF5_DISABLE_VERSION_CHECK=2
R=${PREBUILT:-.devbin}/eplb-replay
: >"$OUT/bench.jsonl"
for round in 1 2; do
    for h in 0 2 8; do
        $R bench kernels --device gpu --only route --hot $h --tokens 512,4096,16384,65536 --json |
            grep -v memcpy >>"$OUT/bench.jsonl"
    done
done
grep -v '"empty"\|"fold"' "$OUT/bench.jsonl" |
    sed -E 's/.*"tokens":([0-9]+).*"median_us":([0-9.]+).*"hot":([0-9]+).*/hot \3 T \1: \2/' | sort -k2,2n -k4,4n -s
for h in 0 8; do
    timeout 150 ncu --clock-control none --kernel-name regex:route_seg --launch-count 1 \
        --section WarpStateStats --section InstructionStats --section SourceCounters --section LaunchStats \
        --metrics smsp__inst_executed.sum,gpu__time_duration.sum,smsp__thread_inst_executed_per_inst_executed.ratio,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum \
        $R bench kernels --device gpu --only route --hot $h --tokens 4096 --reps 1 >"$OUT/ncu-hot$h.txt" 2>&1
    echo "ncu hot $h: $(grep -E "gpu__time_duration|inst_executed.sum|per_inst_executed|bank_conflicts|Warp Cycles Per Issued|Branch Efficiency|Divergent" "$OUT/ncu-hot$h.txt" | tr -s ' ' | tr '\n' ';')"
done
for h in 0 8; do
    timeout 150 ncu --clock-control none --kernel-name regex:route_seg --launch-count 24 \
        --metrics gpu__time_duration.sum,smsp__inst_executed.sum \
        $R bench kernels --device gpu --only route --hot $h --tokens 4096 >"$OUT/ncu-launches-hot$h.txt" 2>&1
    echo "launches hot $h: $(grep -E "gpu__time_duration" "$OUT/ncu-launches-hot$h.txt" | awk '{print $NF}' | tr '\n' ' ')"
    echo "  inst: $(grep -E "inst_executed.sum" "$OUT/ncu-launches-hot$h.txt" | awk '{print $NF}' | tr '\n' ' ')"
done
