#!/bin/bash
# kernels/dev/gpu-mutants-run.sh [ID...] - mutation testing of the CUDA
# code, the GPU machine's half (kernels/dev/gpu-mutants-build.sh made
# .devmut; the run call carries it).  Links the unmutated gpu_tests and
# one per mutant (its object put into a copy of libeplb.a), runs each on
# the tests that reach its object, JOBS at a time on the one GPU, each
# under a time limit (LIMIT seconds), all with one seed (EPLB_TEST_SEED,
# default 12345), and writes $OUT/gpu-mutants.txt: per mutant KILLED (the
# failing tests named), SURVIVED, TIMEOUT or CRASH.  The unmutated binary
# must pass first, or nothing is reported.  With IDs, only those mutants.
# TESTS=LIST: these tests for the unmutated binary and every mutant
# instead of each object's own; SKIP_BASE=1: no unmutated run (after one
# earlier in the same call).
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
M=$SRC/.devmut
OUT=${OUT:-/tmp/gpu-mutants}
W=${W:-/tmp/gpu-mutants-work}
JOBS=${JOBS:-4}
LIMIT=${LIMIT:-240}
export EPLB_TEST_SEED=${EPLB_TEST_SEED:-12345}
export EPLB_SRCDIR=$SRC HDF5_DISABLE_VERSION_CHECK=2
mkdir -p "$OUT"
rm -rf "$W"
mkdir -p "$W/bin" "$W/log"
res=$OUT/gpu-mutants.txt
: >"$res"
[ -f "$M/libeplb.a.xz" ] && [ -f "$M/link.txt" ] ||
    { echo "gpu-mutants-run: no $M (run kernels/dev/gpu-mutants-build.sh, carry .devmut)" | tee -a "$res"; exit 1; }
echo "mutants: $(cat "$M/BUILD-INFO"); seed $EPLB_TEST_SEED; $JOBS at a time, ${LIMIT}s each" | tee -a "$res"
xz -dc "$M/libeplb.a.xz" >"$W/libeplb.a"
xz -dc "$M/gpu_tests.o.xz" >"$W/gpu_tests.o"

# tests that reach each object (the routing tests run once per variant)
tests_for() {
    [ -n "${TESTS:-}" ] && { echo "$TESTS"; return; }
    case $1 in
    select) echo select_modes,balanced_least_peak,fused,fused_shapes,count_stripes,stage ;;
    route) echo route_shapes,route_ties,route_wide,route_edges,fused,fused_shapes,count_stripes,stage ;;
    gpu) echo select_modes,fused,count_stripes,stage,source_reads ;;
    traffic) echo traffic,a2a ;;
    a2a | nccl) echo a2a ;;
    esac
}

link() { # link LIB OUT
    local cmd
    cmd=$(sed -e "s|@OBJ@|$W/gpu_tests.o|" -e "s|@LIB@|$1|" -e "s|@OUT@|$2|" "$M/link.txt")
    eval "$cmd"
}

run_one() { # run_one ID OBJECT
    local id=$1 obj=$2 bin=$W/bin/$1 log=$W/log/$1.log
    if [ "$id" != base ]; then
        local lib=$W/$id.a
        mkdir -p "$W/$id.d"
        cp "$W/libeplb.a" "$lib"
        xz -dc "$M/$id.$obj.o.xz" >"$W/$id.d/$obj.o"
        ar r "$lib" "$W/$id.d/$obj.o" 2>/dev/null
    else
        lib=$W/libeplb.a
    fi
    if ! link "$lib" "$bin" >"$W/log/$id.link" 2>&1; then
        echo "$id LINKFAIL $(head -c 300 "$W/log/$id.link")"
        return
    fi
    local t0=$SECONDS
    timeout -s KILL "$LIMIT" "$bin" --only "$(tests_for "$obj")" >"$log" 2>&1
    local rc=$? dt=$((SECONDS - t0))
    local failed
    failed=$(grep -E '^[a-z_0-9]+ +FAILED' "$log" | awk '{print $1}' | tr '\n' ',' | sed 's/,$//')
    local first
    first=$(grep -m1 -E 'FAIL' "$log" | head -c 160)
    if [ $rc = 0 ]; then
        echo "$id SURVIVED (${dt}s; $(tail -1 "$log"))"
    elif [ $rc = 137 ]; then
        echo "$id TIMEOUT (${LIMIT}s; ${failed:-no test failed before})"
    elif [ $rc = 1 ]; then
        echo "$id KILLED (${dt}s; $failed; $(tail -1 "$log"); $first)"
    else
        echo "$id CRASH rc=$rc (${dt}s; ${failed:-}; $(tail -2 "$log" | head -c 200 | tr '\n' ' '))"
    fi
    rm -f "$bin" "$W/$id.a"
}

# the unmutated binary, on every object's tests
link "$W/libeplb.a" "$W/bin/base" >"$W/log/base.link" 2>&1 ||
    { echo "base LINKFAIL: $(cat "$W/log/base.link")" | tee -a "$res"; exit 1; }
all=${TESTS:-select_modes,balanced_least_peak,fused,fused_shapes,count_stripes,stage,source_reads,route_shapes,route_ties,route_wide,route_edges,traffic,a2a}
t0=$SECONDS
if [ "${SKIP_BASE:-0}" != 1 ]; then
    timeout -s KILL $((LIMIT * 2)) "$W/bin/base" --only "$all" >"$W/log/base.log" 2>&1
    rc=$?
    echo "base rc=$rc in $((SECONDS - t0))s: $(tail -1 "$W/log/base.log")" | tee -a "$res"
    grep -E ' (ok|FAILED) \(' "$W/log/base.log" | tee -a "$res"
    cp "$W/log/base.log" "$OUT/base.log"
    [ $rc = 0 ] || { echo "the unmutated gpu_tests fails: no mutant results" | tee -a "$res"; exit 1; }
fi

want=" $* "
while IFS=@ read -r id _ _ _ _ obj; do
    [ -n "$id" ] || continue
    [ $# = 0 ] || [[ $want == *" $id "* ]] || continue
    if [ ! -f "$M/$id.$obj.o.xz" ]; then
        echo "$id NOTBUILT" >>"$res"
        continue
    fi
    # at most JOBS at once: the next starts as soon as one ends
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    run_one "$id" "$obj" >>"$res" &
done <"$M/list.txt"
wait
mkdir -p "$OUT/logs"
cp "$W"/log/*.log "$OUT/logs/" 2>/dev/null
sort -o "$res.sorted" "$res"
for s in KILLED SURVIVED TIMEOUT CRASH LINKFAIL NOTBUILT; do
    printf '%s %s  ' "$s" "$(grep -c " $s" "$res")"
done | tee -a "$res"
echo | tee -a "$res"
grep -E ' (SURVIVED|TIMEOUT|CRASH|LINKFAIL|NOTBUILT)' "$res"
