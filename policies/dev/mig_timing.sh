#!/bin/sh
# policies/dev/mig_timing.sh OLD NEW [ROUNDS] - time two eplb-replay binaries
# on the migration-aware cases of docs/perf/policy.md (4096 slots, 256 GPUs,
# 512 experts: 1 layer Pareto(1.2), random.paretovariate seed 3; 2 layers
# uniform [0, 100), random.random seed 5; --max-moves -1 and 16), old and new
# interleaved so that load from other jobs hits both alike.  Prints one line
# per run (case, binary, wall s, user s), whether the outputs are the same
# bytes, then min and median per case and binary.
set -eu
old=$1 new=$2 rounds=${3:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'EOF'
import json, random, sys
d = sys.argv[1]
random.seed(3)
json.dump([[random.paretovariate(1.2) for _ in range(512)]], open(d + "/pareto.json", "w"))
random.seed(5)
json.dump([[random.random() * 100 for _ in range(512)] for _ in range(2)],
          open(d + "/uniform.json", "w"))
EOF
r=1
while [ "$r" -le "$rounds" ]; do
    for c in pareto:-1 uniform:-1 uniform:16 pareto:16; do
        w=${c%%:*} mm=${c#*:}
        for b in old new; do
            eval bin=\$$b
            /usr/bin/time -a -o "$dir/times" -f "$w $mm $b %e %U" "$bin" rebalance \
                --weights "$dir/$w.json" --replicas 4096 --gpus 256 \
                --policy migration-aware --max-moves "$mm" >"$dir/out.$b"
        done
        tail -n 2 "$dir/times"
        if cmp -s "$dir/out.old" "$dir/out.new"; then echo "$w $mm: same output"; else
            echo "$w $mm: OUTPUTS DIFFER"; fi
    done
    r=$((r + 1))
done
echo "case | binary | wall min, median | user min, median"
python3 - "$dir/times" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    w, mm, b, wall, user = line.split()
    runs[(w, mm, b)].append((float(wall), float(user)))
for (w, mm, b), v in runs.items():
    wall, user = [x[0] for x in v], [x[1] for x in v]
    print(f"{w} --max-moves {mm} | {b} | {min(wall):.2f}, {statistics.median(wall):.2f} s"
          f" | {min(user):.2f}, {statistics.median(user):.2f} s")
EOF
