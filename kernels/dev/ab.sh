#!/bin/bash
# kernels/dev/ab.sh - prebuilt binaries against each other on the GPU
# machine: AB_BINS (NAME:FOLDER ..., folders with eplb-replay; default
# old:.devbin-old new:.devbin), AB_ROUNDS interleaved processes of `bench kernels --only K
# --hot H` for every K in AB_KERNELS and H in AB_HOT, at AB_TOKENS; prints
# one line per case (T:median us).  AB_TESTS: gpu_tests --only LIST of
# .devbin first (whatever AB_BINS names), with AB_SAN=1 memcheck and
# racecheck on it (--small).  AB_ARGS: more bench options (e.g. --layers
# 61); AB_ENV: NAME=VALUE ... set for every bench process; AB_DEVICE:
# gpu (default) or cpu.
set -u
OUT=${OUT:-/tmp/ab}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH HDF5_DISABLE_VERSION_CHECK=2
bins=${AB_BINS:-old:.devbin-old new:.devbin}
new=.devbin
if [ -n "${AB_TESTS:-}" ]; then
    EPLB_SRCDIR=$PWD timeout 300 $new/gpu_tests --only "$AB_TESTS" >"$OUT/gpu_tests.log" 2>&1
    echo "gpu_tests --only $AB_TESTS rc=$?: $(grep -E "FAIL" "$OUT/gpu_tests.log" | head -5) $(tail -1 "$OUT/gpu_tests.log")"
    if [ "${AB_SAN:-0}" = 1 ]; then
        for tool in memcheck racecheck; do
            EPLB_SRCDIR=$PWD timeout 240 compute-sanitizer --tool $tool $new/gpu_tests --small --only "$AB_TESTS" >"$OUT/$tool.log" 2>&1
            echo "$tool rc=$?: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/$tool.log") $(grep -E "passed" "$OUT/$tool.log" | tail -1)"
        done
    fi
fi
: >"$OUT/ab.jsonl"
for round in $(seq 1 "${AB_ROUNDS:-3}"); do
    for k in ${AB_KERNELS:-route fused}; do
        for h in ${AB_HOT:-0 8}; do
            for bd in $bins; do
                b=${bd%%:*} d=${bd#*:}
                env ${AB_ENV:-} $d/eplb-replay bench kernels --device ${AB_DEVICE:-gpu} --only $k --hot $h ${AB_ARGS:-} \
                    --tokens ${AB_TOKENS:-64,512,4096,16384,65536} --json 2>&1 | grep "\"kernel\":\"$k\"" |
                    sed "s/^{/{\"bin\":\"$b\",\"round\":$round,/" >>"$OUT/ab.jsonl"
            done
        done
    done
done
for k in ${AB_KERNELS:-route fused}; do
    for h in ${AB_HOT:-0 8}; do
        for bd in $bins; do
            b=${bd%%:*}
            echo "$k hot $h $b: $(grep "\"bin\":\"$b\"" "$OUT/ab.jsonl" | grep "\"kernel\":\"$k\"" | grep "\"hot\":$h," |
                sed -E 's/.*"tokens":([0-9]+).*"median_us":([0-9.]+).*/\1:\2/' | sort -t: -k1,1n -s | tr '\n' ' ')"
        done
    done
done
