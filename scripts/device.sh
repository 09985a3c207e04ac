#!/bin/bash
# scripts/device.sh - everything the GPU machine is for, in one call:
# build (autogen + configure + make), the GPU tests, compute-sanitizer
# memcheck and racecheck on them (small shapes), and `bench kernels`.
# Logs go to $OUT (default /tmp/eplb-device); a short summary is printed
# last.  Usage: scripts/device.sh
#   [build|tests|quick|full|seg|replay|spread|replayspeed|final|cmp|diag|rsmatrix|a2a]
#   (PREBUILT=.devbin: the binaries of scripts/prebuild.sh, no build)
#   tests: build and gpu_tests only; quick: + sanitizers, bench, ncu;
#   full: + benchmark variants, shapes, modes and the CPU path;
#   seg (SEG_DIAG=1: + the fused kernel's parts switched off,
#     SEG_REPLAYSPEED=1: + replay speed): the default (segment kernel, kernels/route.cu) against variant 5
#     (exact sigmoid) and 8 (warp kernel): build, the full gpu_tests (all
#     variants), bench kernels for variants 0 5 8 (+ bf16 for 0 and 8,
#     second runs of 0 and 8), ncu of one seg launch at T=65536, the SASS
#     of the default kernel (seg.sass), compute-sanitizer memcheck and
#     racecheck on `gpu_tests --small --variant 0,5`, a comparison table,
#     then the replay check below;
#   replay: build, then `eplb-replay run` on traces/esft-intent.h5 and
#     traces/dsv3-small.h5 (--policy deepseek,lpt,oracle, --select hash,
#     rr-block, balanced) with --device cpu, --device gpu with
#     EPLB_GPU_SELECT=0 (routing only on the GPU), and --device gpu
#     (selection and recording on the GPU too, the default): the JSON
#     outputs less the "device" field compared
#     ("replay gpu==cpu", "replay gpusel==gpu": yes/no per case), wall
#     times of the three, the routing check of the GPU run
#
# Source: the working tree as it is (the run tool copies it; its .git may
# lag behind).
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

# PREBUILT=DIR (a folder of the working tree, e.g. .devbin from
# scripts/prebuild.sh, named in the run call's carry): its eplb-replay and
# gpu_tests instead of a build here, which saves ~2 minutes of device time
# per call (binaries of the build machine run here with HDF5's version
# check off: runs 53-54).  KEEP_BUILD=1: reuse the build of an earlier
# device.sh in the same call (a second mode after the first, e.g. `final`
# then `rsmatrix`)
tree_id() { "$SRC/scripts/tree-id.sh" "$SRC" 2>/dev/null || echo none; }
if [ -n "${PREBUILT:-}" ]; then
    export HDF5_DISABLE_VERSION_CHECK=2
    [ -x "$SRC/$PREBUILT/eplb-replay" ] && [ -x "$SRC/$PREBUILT/gpu_tests" ] ||
        { say "PREBUILT=$PREBUILT: no eplb-replay and gpu_tests there"; exit 1; }
    rm -rf "$T" "$B"
    mkdir -p "$T" "$B/tests"
    (cd "$SRC" && tar -c --exclude=./.git --exclude='./build*' --exclude=./"$PREBUILT" .) |
        tar -x -C "$T"
    cp "$SRC/$PREBUILT/eplb-replay" "$B/eplb-replay"
    cp "$SRC/$PREBUILT/gpu_tests" "$B/tests/gpu_tests"
    say "working tree id $(tree_id); prebuilt binaries from $PREBUILT: $(cat "$SRC/$PREBUILT/BUILD-INFO" 2>/dev/null || echo 'no BUILD-INFO')"
elif [ "${KEEP_BUILD:-0}" = 1 ] && [ -x "$B/eplb-replay" ] && [ -x "$B/tests/gpu_tests" ]; then
    say "build: kept from the earlier run in this call"
else
rm -rf "$T" "$B"
mkdir -p "$T" "$B"
# the working tree as it is (the device copy's .git, if any, may be stale)
say "commit: $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo none) + working tree (tree id $(tree_id): scripts/tree-id.sh on a checkout)"
(cd "$SRC" && tar -c --exclude=./.git --exclude='./build*' .) | tar -x -C "$T"

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
fi

# build: only the build above (for commands that follow in the same call)
if [ "$what" = build ]; then
    say "== $(stamp) built in $B"
    exit 0
fi

# The replay on the GPU against the CPU (scripts/device.sh replay; also the
# end of seg).  --policy-time 0 makes the outputs bit-reproducible; the only
# field that may differ is "device".  gpusel==gpu isolates selection and
# recording (both route on the GPU) and must be yes; gpu==cpu also compares
# routing, which on the GPU is identical except at near-ties of scores (the
# config's routing_check counts the rows whose expert sets differ from the
# recorded ids, where the trace has them).
# `eplb-replay run ARGS` on one of the replay's device settings, with a
# time limit: cpu; gpu = routing only on the GPU (EPLB_GPU_SELECT=0);
# gpusel = the GPU default (selection and recording there too)
run_on() {
    local dev=$1 pre=()
    shift
    [ "$dev" = gpu ] && pre=(env EPLB_GPU_SELECT=0)
    timeout 120 "${pre[@]}" "$B/eplb-replay" run "$@" --device "${dev%sel}"
}

# "LABEL: yes" if the normalised outputs A and B (B not empty) are the
# same, else "LABEL: no" and their first differing fields
same_json() {
    local label=$1 a=$2 b=$3
    if [ -s "$b" ] && cmp -s "$a" "$b"; then
        say "$label: yes"
    else
        say "$label: no"
        diff <(tr ',' '\n' <"$a") <(tr ',' '\n' <"$b") | head -10 | tee -a "$summary"
        return 1
    fi
}

replay_check() {
    local tc sel dev base t0 t1 rc line
    say "== $(stamp) replay: --device cpu / gpu with EPLB_GPU_SELECT=0 / gpu (selection on the GPU)"
    for tc in esft-intent dsv3-small; do
        for sel in hash rr-block balanced; do
            base="$OUT/replay-$tc-$sel"
            line="$tc $sel:"
            for dev in cpu gpu gpusel; do
                t0=$(date +%s.%N)
                run_on $dev "$T/traces/$tc.h5" --json --quiet --policy-time 0 \
                    --policy deepseek,lpt,oracle --select $sel >"$base-$dev.json" 2>"$base-$dev.err"
                rc=$?
                t1=$(date +%s.%N)
                line="$line $dev $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}') s (rc $rc);"
                sed -E 's/"device": "[^"]*"/"device": ""/' "$base-$dev.json" >"$base-$dev.norm"
            done
            say "$line"
            say "  $(grep -o '"device": "[^"]*"' "$base-gpusel.json")"
            say "  gpu $(grep -o '"routing_check": {[^}]*}' "$base-gpu.json")"
            for dev in cpu gpu gpusel; do
                [ -s "$base-$dev.err" ] && say "  $dev stderr: $(head -c 300 "$base-$dev.err")"
            done
            # the outputs come back only where a comparison failed (the
            # run call returns a limited number of files; its log first)
            local differ=0
            same_json "  replay gpusel==gpu ($tc, $sel)" "$base-gpu.norm" "$base-gpusel.norm" ||
                differ=1
            same_json "  replay gpu==cpu ($tc, $sel)" "$base-cpu.norm" "$base-gpu.norm" ||
                differ=1
            [ $differ = 1 ] || rm -f "$base"-*.json "$base"-*.err
        done
    done
    rm -f "$OUT"/replay-*.norm
}

# replayspeed: a large generated trace (DeepSeek-V3, 64 steps of ~1024
# tokens, bf16 logits, ~1.3 GB): decode speed (`bench io`) against the wall
# time of `eplb-replay run` with --device cpu, --device gpu with
# EPLB_GPU_SELECT=0, and --device gpu (the outputs compared)
replay_speed() {
    R="$B/eplb-replay"
    G=/tmp/eplb-big.h5
    t0=$(date +%s.%N)
    $R gen --preset deepseek-v3 --steps 64 --tokens-per-step 1024 -o $G >"$OUT/gen.log" 2>&1
    say "gen: $(tail -1 "$OUT/gen.log") ($(du -m $G | cut -f1) MB, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s)"
    $R bench io $G --repeat ${IO_REPEAT:-3} >"$OUT/io.txt" 2>&1
    grep -E "serial|parallel" "$OUT/io.txt" | tee -a "$summary"
    for dev in cpu gpu gpusel; do
        t0=$(date +%s.%N)
        EPLB_TIMINGS=1 run_on $dev $G --policy deepseek --select hash --json --quiet \
            --policy-time 0 >"$OUT/rs-$dev.json" 2>"$OUT/rs-$dev.err"
        rc=$?
        say "run ($dev): rc $rc, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b - a}') s wall; $(grep -o '"device": "[^"]*"' "$OUT/rs-$dev.json") $(head -c 400 "$OUT/rs-$dev.err")"
        sed -E 's/"device": "[^"]*"//' "$OUT/rs-$dev.json" >"$OUT/rs-$dev.norm"
    done
    same_json "replayspeed gpusel==gpu" "$OUT/rs-gpu.norm" "$OUT/rs-gpusel.norm"
    # (gpu==cpu differs by routing near-ties of the fast sigmoid; counted
    # only where the trace records ids: routing_check)
    same_json "replayspeed gpu==cpu" "$OUT/rs-cpu.norm" "$OUT/rs-gpusel.norm"
    [ "${KEEP_BIG:-0}" = 1 ] || rm -f $G
    rm -f "$OUT"/rs-*.norm
}

# RS_LONG=N: the replay speed on an N-step trace (the same preset; fixed
# costs weigh less): run cpu, run gpu, each once (no bench io here: its
# serial baseline alone takes minutes on this size; scale the short
# trace's, same preset)
replay_long() {
    [ -n "${RS_LONG:-}" ] || return 0
    local R="$B/eplb-replay" G=/tmp/eplb-long.h5 t0 dev
    t0=$(date +%s.%N)
    $R gen --preset deepseek-v3 --steps "$RS_LONG" --tokens-per-step 1024 -o $G >"$OUT/gen-long.log" 2>&1
    say "gen long: $(tail -1 "$OUT/gen-long.log") ($(du -m $G | cut -f1) MB, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s)"
    for dev in cpu gpu; do
        t0=$(date +%s.%N)
        EPLB_TIMINGS=1 $R run $G --device $dev --policy deepseek --select hash --json --quiet \
            --policy-time 0 >/tmp/rs-long.json 2>/tmp/rs-long.err
        say "run long ($dev): rc $?, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b - a}') s wall; $(tr '\n' ' ' </tmp/rs-long.err | head -c 900)"
    done
    rm -f $G
}

# comparison table of `bench kernels --json` files (bench-TAG.jsonl): per
# file and T, route, fused (physical ids + weights) and fused_ids (logical
# ids too) median us, the empty-kernel launch, EPLB part (fused - route) in
# % of route, fused over the floor (logits read + ids + weights written
# once, at the copy bandwidth of the same run); into $OUT/table.txt
cmp_table() {
    local f tag
    {
        echo "comparison (us, median of CUDA graph replays; $(head -c 60 "$OUT/gpu.txt"))"
        printf "%-8s %6s %8s %8s %9s %6s %7s %7s %8s\n" variant T route fused fused_ids empty eplb% floor fused/fl
        for f in "$@"; do
            [ -s "$f" ] || continue
            tag=$(basename "$f" .jsonl | sed 's/^bench-//')
            awk -v tag="$tag" '
                function num(k,   m) { if (match($0, "\"" k "\":[-0-9.e+]+")) { m = substr($0, RSTART, RLENGTH); sub(/.*:/, "", m); return m + 0 } return -1 }
                function str(k,   m) { if (match($0, "\"" k "\":\"[^\"]*\"")) { m = substr($0, RSTART, RLENGTH); sub(/^[^:]*:"/, "", m); sub(/"$/, "", m); return m } return "" }
                str("kernel") == "memcpy_d2d" { bw = num("gbps") }
                str("kernel") == "empty" { em = num("median_us") }
                str("kernel") == "route" { r[num("tokens")] = num("median_us"); by[num("tokens")] = num("bytes"); order[++n] = num("tokens") }
                str("kernel") == "fused" { fu[num("tokens")] = num("median_us") }
                str("kernel") == "fused_ids" { fi[num("tokens")] = num("median_us") }
                END {
                    for (j = 1; j <= n; j++) {
                        t = order[j]; fl = (bw > 0 && by[t] > 0) ? by[t] / (bw * 1e3) : 0
                        printf "%-8s %6d %8.2f %8.2f %9.2f %6.2f %6.1f%% %7.2f %8.2f\n", tag, t, r[t], fu[t], fi[t], em,
                            (r[t] > 0 ? 100 * (fu[t] - r[t]) / r[t] : 0), fl, (fl > 0 ? fu[t] / fl : 0)
                    }
                }' "$f"
        done
        echo "targets: fused <= 1.5 x floor at T=65536, <= 6 us for T <= 4096, eplb% <= 3"
    } >"$OUT/table.txt"
}

# cmp: variants $CMP_VARIANTS (default "0 10 11") against each other, run
# interleaved $CMP_ROUNDS times (default 3) in separate processes (the
# T = 65536 time of one binary varies between processes), after
# gpu_tests for those variants; then bf16, and ncu warp-state statistics
# (stall reasons) of one route launch at T = 65536 per variant (CMP_NCU=0:
# none)
if [ "$what" = cmp ]; then
    R="$B/eplb-replay"
    vs=${CMP_VARIANTS:-0 10 11}
    say "== $(stamp) gpu_tests --variant ${vs// /,}"
    (cd "$B" && EPLB_SRCDIR="$T" timeout 240 ./tests/gpu_tests --variant "${vs// /,}") >"$OUT/gpu_tests.log" 2>&1
    rc=$?
    grep -E "rate|FAIL" "$OUT/gpu_tests.log" | head -20 | tee -a "$summary"
    say "gpu_tests rc=$rc: $(tail -1 "$OUT/gpu_tests.log")"
    files=()
    for round in $(seq 1 "${CMP_ROUNDS:-3}"); do
        for v in $vs; do
            $R bench kernels --device gpu --variant "$v" --json >"$OUT/bench-v$v-r$round.jsonl" 2>&1
            files+=("$OUT/bench-v$v-r$round.jsonl")
        done
    done
    for v in $vs; do
        $R bench kernels --device gpu --variant "$v" --dtype bf16 --tokens 64,4096,65536 \
            --json >"$OUT/bench-bf16-v$v.jsonl" 2>&1
        files+=("$OUT/bench-bf16-v$v.jsonl")
    done
    cmp_table "${files[@]}"
    cat "$OUT/table.txt" >>"$summary"
    for f in "$OUT"/bench-*.jsonl; do # one file, each line tagged with its run
        [ "$f" = "$OUT/bench-all.jsonl" ] && continue
        sed "s/^{/{\"file\":\"$(basename "$f" .jsonl)\",/" "$f"
    done >"$OUT/bench-all.jsonl.tmp" && mv "$OUT/bench-all.jsonl.tmp" "$OUT/bench-all.jsonl"
    for v in $vs; do
        [ "${CMP_NCU:-1}" = 0 ] && break
        for k in route fused; do
            timeout 120 ncu --clock-control none --kernel-name regex:route_seg --launch-count 1 \
                --section WarpStateStats --section SchedulerStats \
                --metrics smsp__inst_executed.sum,gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
                $R bench kernels --device gpu --variant "$v" --tokens 65536 --reps 1 --only $k \
                >"$OUT/ncu-v$v-$k.txt" 2>&1
            say "ncu v$v $k: $(grep -E "inst_executed.sum|duration|dram__throughput|Warp Cycles Per Issued|No Eligible|Issued Warp" "$OUT/ncu-v$v-$k.txt" | tr -s ' ' | tr '\n' ';')"
        done
    done
    # stall reasons of the default's route launch (raw metrics)
    [ "${CMP_NCU:-1}" = 0 ] || timeout 120 ncu --clock-control none --kernel-name regex:route_seg --launch-count 1 \
        --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio \
        $R bench kernels --device gpu --variant 0 --tokens 65536 --reps 1 --only route \
        >"$OUT/ncu-stalls.txt" 2>&1
    grep -E "stalled" "$OUT/ncu-stalls.txt" | awk '{print $1, $NF}' | sort -k2 -rn | head -12 | tee -a "$summary"
    say "== $(stamp) done"
    exit 0
fi

# diag: where the fused kernel's time goes at large T, by parts switched
# off (EPLB_FUSED_DIAG) and the shared-memory carveout
# (EPLB_SEG_CARVEOUT): $DIAG_ROUNDS (default 3) interleaved processes of
# route, fused, fused with nothing of EPLB left (7), and those with the
# maximum shared-memory carveout, at T = 4096, 16384, 65536; then ncu
# (launch statistics, occupancy, instructions, warp states) of route,
# fused and fused 7 at T = 65536.  Few files: summary, diag.jsonl, ncu.txt.
# DIAG_CASES (KERNEL:DIAG:CARVEOUT[:VARIANT[:SETUP[:LANES[:ENV]]]] ...;
# SETUP: the value of EPLB_SEG_SETUP, LANES of EPLB_SEG_LANES, empty:
# unset; ENV: more NAME=VALUE settings, comma-separated), DIAG_TOKENS, DIAG_NCU (cases for
# ncu; empty: none), DIAG_TESTS (gpu_tests --variant LIST first), DIAG_CPU,
# DIAG_RS (below)
if [ "$what" = diag ]; then
    R="$B/eplb-replay"
    if [ -n "${DIAG_TESTS:-}" ]; then # gpu_tests for variants $DIAG_TESTS first
        # (DIAG_TESTS_ENV: an environment setting for a second run, e.g.
        # EPLB_SEG_CARVEOUT=100)
        for envset in "" ${DIAG_TESTS_ENV:-}; do # (a comma in it: several settings)
            envset=${envset//,/ }
            (cd "$B" && env $envset EPLB_SRCDIR="$T" timeout 240 ./tests/gpu_tests --variant "$DIAG_TESTS") >"$OUT/gpu_tests.log" 2>&1
            rc=$?
            grep -E "rate|esft|FAIL" "$OUT/gpu_tests.log" | head -20 | tee -a "$summary"
            say "gpu_tests --variant $DIAG_TESTS $envset rc=$rc: $(tail -1 "$OUT/gpu_tests.log")"
        done
    fi
    : >"$OUT/diag.jsonl"
    cases=${DIAG_CASES:-"route:0:-1 fused:0:-1 fused:7:-1 fused:2:-1 route:0:100 fused:0:100 fused:7:100"}
    for round in $(seq 1 "${DIAG_ROUNDS:-3}"); do
        for c in $cases; do
            IFS=: read -r k d co v su ln ev <<<"$c"
            env ${su:+EPLB_SEG_SETUP=$su} ${ln:+EPLB_SEG_LANES=$ln} ${ev//,/ } EPLB_FUSED_DIAG=$d EPLB_SEG_CARVEOUT=$co $R bench kernels --device gpu --only $k --variant "${v:-0}" \
                --tokens ${DIAG_TOKENS:-4096,16384,65536} --json 2>&1 |
                sed "s/^{/{\"case\":\"$c\",\"round\":$round,/" >>"$OUT/diag.jsonl"
        done
    done
    for c in $cases; do
        say "$c: $(grep "\"case\":\"$c\"" "$OUT/diag.jsonl" | grep -v '"kernel":"empty"' |
            grep -v memcpy | sed -E 's/.*"tokens":([0-9]+).*"median_us":([0-9.]+).*/\1:\2/' |
            sort -t: -k1,1n -s | tr '\n' ' ')"
    done
    : >"$OUT/ncu.txt"
    for c in ${DIAG_NCU-route:0:-1 fused:0:-1 fused:7:-1 fused:0:100}; do
        IFS=: read -r k d co v su <<<"$c"
        echo "=== $c" >>"$OUT/ncu.txt"
        env ${su:+EPLB_SEG_SETUP=$su} EPLB_FUSED_DIAG=$d EPLB_SEG_CARVEOUT=$co timeout 120 ncu --clock-control none \
            --kernel-name regex:route_seg --launch-count 1 --section LaunchStats \
            --section Occupancy --section WarpStateStats --section SpeedOfLight \
            --metrics smsp__inst_executed.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sectors_op_red.sum,lts__t_sectors_op_atom.sum \
            $R bench kernels --device gpu --tokens 65536 --reps 1 --only $k --variant "${v:-0}" >>"$OUT/ncu.txt" 2>&1
        say "ncu $c: $(sed -n "/=== $c\$/,\$p" "$OUT/ncu.txt" | grep -E "Duration|inst_executed.sum|Achieved Occupancy|Block Limit Shared|Shared Memory Configuration Size|Dynamic Shared Memory Per|Waves Per SM|Warp Cycles Per Issued|lts__t_sectors_op" | tr -s ' ' | tr '\n' ';')"
    done
    # DIAG_CPU=1: bench kernels --device cpu (all cores, then one thread)
    if [ "${DIAG_CPU:-0}" = 1 ]; then
        $R bench kernels --device cpu --tokens 4096,65536 --json >"$OUT/cpu.jsonl" 2>&1
        EPLB_THREADS=1 $R bench kernels --device cpu --tokens 4096,65536 --json >>"$OUT/cpu.jsonl" 2>&1
        say "cpu: $(grep -v memcpy "$OUT/cpu.jsonl" | cut -c1-200 | tr '\n' ';')"
    fi
    # DIAG_RS=1: replay_speed, then a copy of its trace with 1 MiB of chunk
    # data overwritten in the middle must fail with a message naming the
    # file (no crash, no hang).  (The replay under several settings:
    # `rsmatrix` with RS_CASES; DIAG_RSENV here did the same until the
    # ninth session.)
    if [ "${DIAG_RS:-0}" = 1 ]; then
        KEEP_BIG=1 IO_REPEAT=1 replay_speed
        cp /tmp/eplb-big.h5 /tmp/eplb-bad.h5
        dd if=/dev/urandom of=/tmp/eplb-bad.h5 bs=1M seek=500 count=1 conv=notrunc status=none
        timeout 120 "$B/eplb-replay" run /tmp/eplb-bad.h5 --device gpu --policy deepseek --json --quiet \
            --policy-time 0 >/tmp/rs-bad.json 2>/tmp/rs-bad.err
        say "corrupt trace (gpu): rc $? (want non-zero), stdout $(wc -c </tmp/rs-bad.json) bytes; $(head -c 300 /tmp/rs-bad.err)"
        rm -f /tmp/eplb-bad.h5
        rm -f /tmp/eplb-big.h5
    fi
    replay_long
    say "== $(stamp) done"
    exit 0
fi

# spread: the same kernel at T = 65536 in separate processes after
# different earlier token counts (runs 9-11 saw 35 or 44 us), with GPU
# clocks and temperatures, and ncu instruction counts of route and fused
if [ "$what" = spread ]; then
    R="$B/eplb-replay"
    q() { nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,temperature.memory,power.draw \
        --format=csv,noheader; }
    for tl in 65536 65536 4096,65536 16384,65536 64,512,4096,16384,65536 65536,65536,65536 \
        64,512,4096,16384,65536 65536; do
        before=$(q)
        $R bench kernels --device gpu --tokens $tl --json >"$OUT/sp.jsonl" 2>&1
        r=$(grep '"kernel":"route"' "$OUT/sp.jsonl" | grep '"tokens":65536' |
            sed -E 's/.*"median_us":([0-9.]+).*/\1/' | tr '\n' ' ')
        f=$(grep '"kernel":"fused"' "$OUT/sp.jsonl" | grep '"tokens":65536' |
            sed -E 's/.*"median_us":([0-9.]+).*/\1/' | tr '\n' ' ')
        say "tokens $tl: route@65536 $r fused@65536 $f | before: $before | after: $(q)"
    done
    for k in route fused; do
        timeout 120 ncu --clock-control none --kernel-name regex:route_seg --launch-count 1 --metrics smsp__inst_executed.sum,gpu__time_duration.sum,dram__bytes_read.sum,smsp__sass_inst_executed_op_shared_atom.sum,smsp__sass_inst_executed_op_global_red.sum \
            $R bench kernels --device gpu --tokens 65536 --reps 1 --only $k >"$OUT/ncu-$k.txt" 2>&1
        say "ncu $k: $(grep -E "inst_executed.sum|duration|dram__bytes|atom|red" "$OUT/ncu-$k.txt" | tr -s ' ' | tr '\n' ';')"
    done
    say "== $(stamp) done"
    exit 0
fi

# rsmatrix: the GPU replay (selection on the GPU) of the 64-step trace
# under several settings, EPLB_TIMINGS on, RS_ROUNDS (default 2) rounds
# interleaved; RS_CASES: items "ENV,ENV|ARGS" separated by ';' (ENV:
# VAR=VALUE, '-' for none; ARGS: extra run options); the JSON of each run
# compared with the first run's; real, user and sys seconds of each
# process (bash's time: user + sys near 16 x real means every core was
# busy); RS_STEPS (default 64), RS_NOIO=1: no bench io
if [ "$what" = rsmatrix ]; then
    TIMEFORMAT='%R %U %S'
    R="$B/eplb-replay"
    G=/tmp/eplb-big.h5
    $R gen --preset deepseek-v3 --steps ${RS_STEPS:-64} --tokens-per-step 1024 -o $G >"$OUT/gen.log" 2>&1
    say "gen: $(tail -1 "$OUT/gen.log")"
    if [ "${RS_NOIO:-0}" != 1 ]; then
        { time $R bench io $G --repeat 1 >"$OUT/io.txt" 2>&1; } 2>/tmp/rsm.time
        grep -E "parallel \| +16" "$OUT/io.txt" | tee -a "$summary"
        say "bench io process (serial and 1-16 threads, each once after a warm-up): real user sys $(tail -1 /tmp/rsm.time)"
    fi
    first=""
    for round in $(seq 1 "${RS_ROUNDS:-2}"); do
        IFS=';' read -ra cs <<<"${RS_CASES:--|}"
        for c in "${cs[@]}"; do
            envs=${c%%|*}
            args=${c#*|}
            [ "$envs" = - ] && envs=""
            t0=$(date +%s.%N)
            { time env ${envs//,/ } EPLB_TIMINGS=1 $R run $G --device gpu --policy deepseek --select hash \
                --json --quiet --policy-time 0 $args >/tmp/rsm.json 2>/tmp/rsm.err; } 2>/tmp/rsm.time
            rc=0
            [ -s /tmp/rsm.json ] || rc=1
            sed -E 's/"device": "[^"]*"//' /tmp/rsm.json >/tmp/rsm.norm
            [ -z "$first" ] && first=1 && cp /tmp/rsm.norm /tmp/rsm-ref.norm
            same=no
            cmp -s /tmp/rsm.norm /tmp/rsm-ref.norm && same=yes
            say "[$round] $c: output $([ $rc = 0 ] && echo yes || echo NO), $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b - a}') s, real user sys $(tail -1 /tmp/rsm.time), same JSON $same; $(grep -o 'starting the GPU [0-9.]* s\|block loop.*' /tmp/rsm.err | tr '\n' ' ' | sed 's/in all reads: //')"
        done
    done
    rm -f $G
    say "== $(stamp) done"
    exit 0
fi

if [ "$what" = replayspeed ]; then
    replay_speed
    say "== $(stamp) done"
    exit 0
fi

# final: gpu_tests (routing and fused tests for the default variant only,
# or FINAL_VARIANTS), compute-sanitizer on the small tests, FINAL_BENCH
# processes of bench kernels with a table, FINAL_LAYERS (one process with
# --layers), the replay check, replay_speed
if [ "$what" = final ]; then
    say "== $(stamp) gpu_tests --variant ${FINAL_VARIANTS:-0}"
    # (FINAL_VARIANTS=all: every test and variant, source_reads included)
    # (every test and variant: 193 s in run 150, more since the tests of
    # the twenty-third session; 420 s as for the tests mode)
    vflag=(--variant "${FINAL_VARIANTS:-0}")
    [ "${FINAL_VARIANTS:-0}" = all ] && vflag=()
    (cd "$B" && EPLB_SRCDIR="$T" timeout 420 ./tests/gpu_tests "${vflag[@]}") >"$OUT/gpu_tests.log" 2>&1
    say "gpu_tests rc=$?: $(tail -1 "$OUT/gpu_tests.log")"
    grep -E "FAIL|rate|esft" "$OUT/gpu_tests.log" | head -10 | tee -a "$summary"
    CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    for tool in memcheck racecheck; do
        (cd "$B" && EPLB_SRCDIR="$T" timeout 100 "$CS" --tool $tool --error-exitcode 3 \
            ./tests/gpu_tests --small --variant 0) >"$OUT/$tool.log" 2>&1
        say "$tool rc=$?: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/$tool.log" | tr '\n' ' ') $(tail -1 "$OUT/$tool.log")"
        # the tests that run once (not per routing variant) of FINAL_SAN_ONLY
        (cd "$B" && EPLB_SRCDIR="$T" timeout 100 "$CS" --tool $tool --error-exitcode 3 \
            ./tests/gpu_tests --small --only "${FINAL_SAN_ONLY:-traffic,select_modes}") >"$OUT/$tool-only.log" 2>&1
        say "$tool (--only ${FINAL_SAN_ONLY:-traffic,select_modes}) rc=$?: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/$tool-only.log" | tr '\n' ' ') $(tail -1 "$OUT/$tool-only.log")"
    done
    # FINAL_BENCH=N: N processes of the default's bench kernels, a table
    if [ "${FINAL_BENCH:-0}" -gt 0 ]; then
        files=()
        for r in $(seq 1 "$FINAL_BENCH"); do
            "$B/eplb-replay" bench kernels --device gpu --json >"$OUT/bench-r$r.jsonl" 2>&1
            files+=("$OUT/bench-r$r.jsonl")
        done
        cmp_table "${files[@]}"
        cat "$OUT/table.txt" >>"$summary"
        for f in "${files[@]}"; do
            sed "s/^{/{\"file\":\"$(basename "$f" .jsonl)\",/" "$f"
        done >"$OUT/bench-all.jsonl"
        rm -f "${files[@]}"
    fi
    # FINAL_LAYERS=L: bench kernels with L layers per call, as the replay's
    # GPU stage routes a step (and `step`: fused, then the stripes folded
    # and cleared), at FINAL_LAYERS_TOKENS (default 64,512,4096,16384)
    if [ -n "${FINAL_LAYERS:-}" ]; then
        "$B/eplb-replay" bench kernels --device gpu --layers "$FINAL_LAYERS" \
            --tokens "${FINAL_LAYERS_TOKENS:-64,512,4096,16384}" --json >"$OUT/bench-layers.jsonl" 2>&1
        say "bench kernels --layers $FINAL_LAYERS rc=$? (kernel T us):"
        grep -E '"kernel":"(route|fused|fused_ids|step|eplb)"' "$OUT/bench-layers.jsonl" |
            sed -E 's/.*"kernel":"([a-z_]+)".*"tokens":([0-9]+),"median_us":([0-9.]+).*/\1 \2 \3/' |
            tr '\n' ';' | tee -a "$summary"
        echo | tee -a "$summary"
    fi
    replay_check
    IO_REPEAT=1 replay_speed
    replay_long
    say "== $(stamp) done"
    exit 0
fi

# a2a: `bench a2a` (NCCL all-to-all on all visible GPUs, the profile's
# NVLink numbers): gpu_tests --only a2a, then the bench twice (text, the
# spread between runs) and once with --json (A2A_ARGS: more options, e.g.
# "--sizes 1M,4M,16M --reps 100")
if [ "$what" = a2a ]; then
    say "== $(stamp) gpu_tests --only a2a"
    (cd "$B" && EPLB_SRCDIR="$T" timeout 300 ./tests/gpu_tests --only a2a) >"$OUT/gpu_tests.log" 2>&1
    say "gpu_tests rc=$?: $(tail -1 "$OUT/gpu_tests.log")"
    grep -E "^a2a|FAIL" "$OUT/gpu_tests.log" | head -20 | tee -a "$summary"
    for r in 1 2; do
        say "== $(stamp) bench a2a ${A2A_ARGS:-} (run $r)"
        # shellcheck disable=SC2086
        timeout 300 "$B/eplb-replay" bench a2a ${A2A_ARGS:-} >"$OUT/a2a-r$r.txt" 2>&1
        say "rc=$?"
        tee -a "$summary" <"$OUT/a2a-r$r.txt"
    done
    # shellcheck disable=SC2086
    timeout 300 "$B/eplb-replay" bench a2a ${A2A_ARGS:-} --json >"$OUT/a2a.jsonl" 2>&1
    say "bench a2a --json rc=$?: $(tail -1 "$OUT/a2a.jsonl" | head -c 600)"
    say "== $(stamp) done"
    exit 0
fi

if [ "$what" = replay ]; then
    replay_check
    say "== $(stamp) done"
    exit 0
fi

if [ "$what" = seg ]; then
    # order: correctness, then timings and the table, then the slow
    # sanitizers (a time-out there still leaves the table), table again last
    R="$B/eplb-replay"
    say "== $(stamp) gpu_tests (all variants)"
    (cd "$B" && EPLB_SRCDIR="$T" timeout 420 ./tests/gpu_tests) >"$OUT/gpu_tests.log" 2>&1
    rc=$?
    grep -E "rate|esft|skip|FAIL|seed" "$OUT/gpu_tests.log" | head -30 | tee -a "$summary"
    grep -E "^[a-z_]+ +(ok|FAILED) " "$OUT/gpu_tests.log" | tr '\n' ';' | tee -a "$summary"
    echo | tee -a "$summary"
    say "gpu_tests rc=$rc: $(tail -1 "$OUT/gpu_tests.log")"
    say "== $(stamp) bench kernels, variants 0 5 8 9"
    for v in 0 5 8 9; do
        $R bench kernels --device gpu --variant $v --json >"$OUT/bench-v$v.jsonl" 2>&1
    done
    for v in 0 8 9; do
        $R bench kernels --device gpu --variant $v --dtype bf16 --tokens 64,4096,65536 \
            --json >"$OUT/bench-bf16-v$v.jsonl" 2>&1
    done
    # second runs of the default and of 8: the spread between runs of one version
    $R bench kernels --device gpu --variant 0 --tokens 4096,65536 --json >"$OUT/bench-v0b.jsonl" 2>&1
    $R bench kernels --device gpu --variant 9 --tokens 4096,65536 --json >"$OUT/bench-v9b.jsonl" 2>&1
    $R bench kernels --device gpu --variant 0 --tokens 4096,65536 --json >"$OUT/bench-v0c.jsonl" 2>&1
    # comparison table: per variant and T, route, fused (physical ids +
    # weights) and fused_ids (logical ids too) median us, the empty-kernel
    # launch, EPLB part (fused - route) in % of route, fused over the floor
    # (logits read + ids + weights written once, at the copy bandwidth of
    # the same run)
    # SEG_DIAG=1: the default's fused kernel with parts switched off
    # (EPLB_FUSED_DIAG bits: 1 no recording, 2 no histogram flush, 4 no
    # selection; timing only, the counts are wrong), to split the EPLB part
    if [ "${SEG_DIAG:-0}" = 1 ]; then
        for d in 0 1 2 3 4 7; do
            EPLB_FUSED_DIAG=$d $R bench kernels --device gpu --only fused \
                --tokens 64,4096,16384,65536 --json >"$OUT/diag-$d.jsonl" 2>&1
            say "fused with EPLB_FUSED_DIAG=$d: $(grep '"kernel":"fused"' "$OUT/diag-$d.jsonl" |
                sed -E 's/.*"tokens":([0-9]+).*"median_us":([0-9.]+).*/T=\1 \2 us/' | tr '\n' ' ')"
        done
    fi
    cmp_table "$OUT"/bench-v0.jsonl "$OUT"/bench-v5.jsonl "$OUT"/bench-v8.jsonl \
        "$OUT"/bench-v9.jsonl "$OUT"/bench-bf16-v0.jsonl "$OUT"/bench-bf16-v8.jsonl \
        "$OUT"/bench-bf16-v9.jsonl "$OUT"/bench-v0b.jsonl "$OUT"/bench-v9b.jsonl \
        "$OUT"/bench-v0c.jsonl
    cat "$OUT/table.txt" >>"$summary"
    if command -v ncu >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/ncu ]; then
        say "== $(stamp) ncu: first route_seg_kernel launch at T=65536, default (route only)"
        timeout 120 ncu --clock-control none --kernel-name regex:route_seg --launch-count 1 \
            --section SpeedOfLight --section Occupancy --section WarpStateStats \
            --section SchedulerStats --section InstructionStats --section MemoryWorkloadAnalysis \
            --metrics dram__bytes_read.sum,dram__bytes_write.sum,smsp__inst_executed.sum \
            $R bench kernels --device gpu --tokens 65536 --reps 1 >"$OUT/ncu-seg.txt" 2>&1
        grep -E "Duration|DRAM Throughput|Executed Ipc A|Issue Slots Busy|Achieved Occupancy|Theoretical Occupancy|Registers Per|Executed Instructions  |dram__bytes|smsp__inst_executed.sum|Warp Cycles Per Issued|No Eligible" \
            "$OUT/ncu-seg.txt" | head -20 | tee -a "$summary"
    fi
    # SASS of the default f32 segment kernel (fast sigmoid), for reading
    (cuobjdump -sass "$B/kernels/route.o" 2>/dev/null || true) |
        awk '/Function :/{p = ($3 ~ /route_seg_kernel.*ILi8ELb1ELi256ELi4ELi0ELb0ELi0ELb1E/)} p' >"$OUT/seg.sass"
    CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    for tool in memcheck racecheck; do
        say "== $(stamp) compute-sanitizer $tool (gpu_tests --small --variant 0,9)"
        (cd "$B" && EPLB_SRCDIR="$T" timeout 150 "$CS" --tool $tool --error-exitcode 3 \
            ./tests/gpu_tests --small --variant 0,9) >"$OUT/$tool-seg.log" 2>&1
        rc=$?
        say "$tool rc=$rc: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/$tool-seg.log" | tr '\n' ' ') $(tail -1 "$OUT/$tool-seg.log")"
        grep -E "FAIL" "$OUT/$tool-seg.log" | head -5 | tee -a "$summary"
    done
    replay_check
    # SEG_REPLAYSPEED=1: replay_speed too (the large trace, one decode pass)
    [ "${SEG_REPLAYSPEED:-0}" = 1 ] && IO_REPEAT=1 replay_speed
    rm -f "$OUT/autogen.log" "$OUT/configure.log"
    say "== $(stamp) done"
    cat "$OUT/table.txt"
    exit 0
fi

say "== $(stamp) gpu_tests"
# every test and variant takes minutes (180 s was too short for run 147);
# line-buffered, so that a timeout still leaves the log so far
t0=$(date +%s)
(cd "$B" && EPLB_SRCDIR="$T" timeout 420 stdbuf -oL ./tests/gpu_tests) >"$OUT/gpu_tests.log" 2>&1
rc=$?
grep -E "note:|rate|esft|skip|FAIL" "$OUT/gpu_tests.log" | head -40 | tee -a "$summary"
say "gpu_tests rc=$rc in $(($(date +%s) - t0)) s: $(tail -1 "$OUT/gpu_tests.log")"
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
