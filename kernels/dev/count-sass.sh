#!/bin/bash
# kernels/dev/count-sass.sh - static SASS of the routing kernels specialised
# for the DeepSeek-V3 shape (kernels/dev/count_route.cu), split into basic
# blocks by kernels/dev/sass_blocks.py, for counting the instructions on
# the hot path per token (docs/perf/kernels.md).  Needs nvcc and cuobjdump
# (+ nvdisasm), no GPU.  Usage: kernels/dev/count-sass.sh BUILD_DIR [OUTDIR]
# (BUILD_DIR: a configured build, for config.h).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:?usage: count-sass.sh BUILD_DIR [OUTDIR]}
out=${2:-/tmp/eplb-count-sass}
mkdir -p "$out"
nvcc -gencode=arch=compute_90,code=sm_90 -O3 -std=c++17 -Xptxas -v -I"$src/src" \
    -I"$src/kernels" -I"$build" -cubin "$here/count_route.cu" -o "$out/count_route.cubin" \
    2>&1 | grep -E "Compiling|Used|spill" >"$out/ptxas.txt"
cuobjdump -sass "$out/count_route.cubin" >"$out/count_route.sass"
for f in count_warp count_seg_exact count_seg_fast count_warp_fused count_seg_fast_fused; do
    python3 "$here/sass_blocks.py" "$out/count_route.sass" "$f" >"$out/$f.blocks"
    echo "$f: $(tail -1 "$out/$f.blocks") static instructions; blocks in $out/$f.blocks"
done
cat "$out/ptxas.txt"
