#!/bin/bash
# scripts/prebuild.sh [BUILD_DIR] - build eplb-replay, tests/gpu_tests and
# tests/alloc_fail.so (scripts/alloc_sweep.sh) on this machine (CUDA, sm_90)
# into .devbin/, for `PREBUILT=.devbin
# scripts/device.sh MODE` on the GPU machine: the run call names .devbin
# in its carry (the folder is ignored by git).  BUILD-INFO records the tree
# id (scripts/tree-id.sh) the binaries were built from; device.sh prints
# it beside the id of the tree it runs in.
set -eu
cd "$(dirname "$0")/.."
SRC=$(pwd)
B=${1:-/tmp/eplb-prebuild}
[ -x configure ] || ./autogen.sh >/dev/null
mkdir -p "$B"
[ -f "$B/Makefile" ] || (cd "$B" && "$SRC/configure" --with-cuda >/dev/null)
grep -q '^#define EPLB_HAVE_CUDA 1' "$B/config.h" ||
    { echo "prebuild: $B is configured without CUDA" >&2; exit 1; }
make -C "$B" -j"$(nproc)" eplb-replay tests/gpu_tests tests/alloc_fail.so >/dev/null
mkdir -p .devbin
cp "$B/eplb-replay" "$B/tests/gpu_tests" "$B/tests/alloc_fail.so" .devbin/
echo "tree $(scripts/tree-id.sh), built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)" >.devbin/BUILD-INFO
cat .devbin/BUILD-INFO
