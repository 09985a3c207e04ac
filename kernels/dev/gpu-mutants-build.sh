#!/bin/bash
# kernels/dev/gpu-mutants-build.sh BUILD_DIR [LIST] - mutation testing of
# the CUDA code, the build machine's half: for each mutant of LIST
# (default kernels/dev/gpu-mutants.txt; "ID@file@line@old@new@object", line
# 0 = the one line holding old) the mutated object, compiled with the
# build's own nvcc command into .devmut/ID.OBJECT.o.xz, beside the
# unmutated libeplb.a and tests/gpu_tests.o of BUILD_DIR (a CUDA build,
# `make libeplb.a tests/gpu_tests.o` first) and the link line.  The GPU
# machine's half, kernels/dev/gpu-mutants-run.sh, links each mutant into
# gpu_tests and runs it (the run call carries .devmut).  Mutants are
# applied to a copy of kernels/ in a scratch folder, never to the tree.
# BASE_ONLY=1: only the unmutated library, gpu_tests.o and link line
# again (after a change to the tests), the mutant objects kept;
# NEW_ONLY=1: the library and test object again, and only the mutants not
# built yet (added to the list).
set -eu
B=$(cd "${1:?usage: gpu-mutants-build.sh BUILD_DIR [LIST]}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
LIST=${2:-$SRC/kernels/dev/gpu-mutants.txt}
J=${J:-2}
OUTD=$SRC/.devmut
W=$(mktemp -d /tmp/gpu-mutants.XXXXXX)
trap 'rm -rf "$W"' EXIT
grep -q '^#define EPLB_HAVE_CUDA 1' "$B/config.h" ||
    { echo "gpu-mutants-build: $B is configured without CUDA" >&2; exit 1; }
make -C "$B" -s libeplb.a tests/gpu_tests.o
[ "${BASE_ONLY:-0}" = 1 ] || [ "${NEW_ONLY:-0}" = 1 ] || rm -rf "$OUTD"
mkdir -p "$OUTD"
xz -T"$J" -c "$B/libeplb.a" >"$OUTD/libeplb.a.xz"
xz -c "$B/tests/gpu_tests.o" >"$OUTD/gpu_tests.o.xz"
# the link line of tests/gpu_tests, with the object and library names left
# for the GPU machine's script to fill in
link=$(make -C "$B" -n -W tests/gpu_tests.o tests/gpu_tests | grep -E ' -o tests/gpu_tests ' | tail -1)
[ -n "$link" ] || { echo "gpu-mutants-build: no link line for tests/gpu_tests" >&2; exit 1; }
echo "$link" | sed -e 's/.*;//' -e 's| tests/gpu_tests.o | @OBJ@ |' -e 's| libeplb.a | @LIB@ |' \
    -e 's|-o tests/gpu_tests|-o @OUT@|' >"$OUTD/link.txt"
grep -q '@OBJ@' "$OUTD/link.txt" && grep -q '@LIB@' "$OUTD/link.txt" ||
    { echo "gpu-mutants-build: unexpected link line: $link" >&2; exit 1; }
grep -v '^#' "$LIST" >"$OUTD/list.txt"
echo "tree $("$SRC/scripts/tree-id.sh" "$SRC" 2>/dev/null || echo none), built $(date -u +%Y-%m-%dT%H:%M:%SZ)${BASE_ONLY:+ (base only)}" >>"$OUTD/BUILD-INFO"
[ "${BASE_ONLY:-0}" = 1 ] && { du -sh "$OUTD"; exit 0; }

# compile one object of the kernels copy in $1 (the build's nvcc command,
# with that copy's folder first)
compile() {
    local dir=$1 obj=$2 out=$3
    local cmd
    cmd=$(make -C "$B" -n -W "$SRC/kernels/$obj.cu" "kernels/$obj.o" |
        sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' | grep -E 'nvcc .* -c ' | tail -1)
    cmd=${cmd#*;}
    [ -n "$cmd" ] || { echo "no nvcc command for kernels/$obj.o" >&2; return 1; }
    cmd=${cmd//"$SRC/kernels/$obj.cu"/"$dir/kernels/$obj.cu"}
    cmd=${cmd//"-I$SRC/kernels"/"-I$dir/kernels"}
    cmd=${cmd//"-o kernels/$obj.o"/"-o $out"}
    (cd "$B" && eval "$cmd")
}

one() {
    local id=$1 file=$2 line=$3 old=$4 new=$5 obj=$6
    local d=$W/$id
    mkdir -p "$d"
    cp -r "$SRC/kernels" "$d/kernels"
    python3 - "$d/$file" "$line" "$old" "$new" <<'PY' || { echo "$id APPLYFAIL"; return 0; }
import sys
f, ln, old, new = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
L = open(f).read().split('\n')
if ln == 0:
    hits = [i for i, x in enumerate(L) if old in x]
    if len(hits) != 1:
        sys.exit("%s: %d lines hold the text" % (f, len(hits)))
    ln = hits[0] + 1
if old not in L[ln - 1]:
    sys.exit("%s:%d: text not found: %r" % (f, ln, L[ln - 1]))
L[ln - 1] = L[ln - 1].replace(old, new, 1)
open(f, 'w').write('\n'.join(L))
PY
    if compile "$d" "$obj" "$d/$obj.o" >"$d/build.log" 2>&1; then
        xz -c "$d/$obj.o" >"$OUTD/$id.$obj.o.xz"
        echo "$id built ($obj.o)"
    else
        echo "$id BUILDFAIL"
        tail -5 "$d/build.log"
    fi
    rm -rf "$d"
}

n=0
while IFS=@ read -r id file line old new obj; do
    [ -n "$id" ] || continue
    [ "${NEW_ONLY:-0}" = 1 ] && [ -f "$OUTD/$id.$obj.o.xz" ] && continue
    one "$id" "$file" "$line" "$old" "$new" "$obj" &
    n=$((n + 1))
    if [ $((n % J)) = 0 ]; then wait; fi
done <"$OUTD/list.txt"
wait
du -sh "$OUTD"
