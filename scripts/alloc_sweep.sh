#!/bin/bash
# scripts/alloc_sweep.sh BIN SHIM ARGS... - run `BIN ARGS` once per
# allocation site of the program with that site failing (SHIM:
# tests/alloc_fail.so, see tests/lib/alloc_fail.c), and print each run that
# did not end in exit 0 or 1 (a crash, a hang past 120 s) with the site's
# offset for `addr2line -e BIN`.  EPLB_FAIL_CALL=C fails each site's C-th
# call.  The last line: "alloc_sweep: S sites, B bad: ARGS".  Exit 1 if
# any run was bad.  tests/test_alloc_fail.c runs the same sweep on the CPU
# paths; this script also serves the GPU machine (no Criterion there).
# With --device gpu the statically linked CUDA runtime's allocations count
# as the program's; sites that addr2line names libcudart_static_* crash in
# it and are not ours (docs/perf/kernels.md, run 146).  The reader's sites
# are reached first in the probe's child (traces/probe.c), whose failure
# ends the command as the open outgrowing its memory cap: run the sweep
# again with EPLB_TRACE_PROBE=0 to fail them in the command itself.
set -u
[ $# -ge 3 ] || { echo "usage: $0 BIN SHIM ARGS..." >&2; exit 2; }
bin=$1 shim=$2
shift 2
sites=$(EPLB_FAIL_REPORT=1 LD_PRELOAD=$shim "$bin" "$@" 2>&1 >/dev/null |
        sed -n 's/^alloc_fail: \([0-9]*\) sites$/\1/p')
[ -n "$sites" ] || { echo "alloc_sweep: no report from the shim: $*" >&2; exit 2; }
bad=0
for k in $(seq 1 "$sites"); do
    err=$(timeout 120 env EPLB_FAIL_SITE="$k" EPLB_FAIL_SHOW=1 LD_PRELOAD="$shim" \
          "$bin" "$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -gt 1 ]; then
        bad=$((bad + 1))
        at=$(printf '%s\n' "$err" | sed -n 's/^alloc_fail: site [0-9]* fails at \(.*\)$/\1/p')
        echo "site $k (${at:-?}): exit $rc: $(printf '%s\n' "$err" | grep -v '^alloc_fail' | tail -1)"
    fi
done
echo "alloc_sweep: $sites sites, $bad bad: $*"
[ "$bad" -eq 0 ]
