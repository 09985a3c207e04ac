#!/usr/bin/env python3
"""policies/dev/same_output.py OLD NEW [N] [--big] - run two eplb-replay
binaries on N random `rebalance --policy migration-aware` cases (random
shapes, loads from Pareto to all-equal, move limits, with and without an
old placement) and count the cases whose output or exit status differ.
For changes meant to leave a policy's result the same to the last bit
(docs/perf/policy.md, thirteenth session).  --big: 128-512 experts on
32-128 GPUs.  Set POLICY to try another policy, SEED for other cases."""
import json
import os
import random
import subprocess
import sys
import tempfile

old, new = sys.argv[1], sys.argv[2]
n_cases = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3].isdigit() else 200
big = "--big" in sys.argv
policy = os.environ.get("POLICY", "migration-aware")
random.seed(int(os.environ.get("SEED", "0")) * 2 + (12 if big else 11))
tmp = tempfile.mkdtemp()
wpath, opath = os.path.join(tmp, "w.json"), os.path.join(tmp, "old.json")
differ = ok = 0
for i in range(n_cases):
    E = random.choice([128, 256, 512] if big else [8, 16, 32, 64, 256])
    D = random.choice([32, 64, 128] if big else [d for d in (2, 4, 8, 16, 32) if d <= 2 * E])
    per_min = -(-E // D)
    P = random.choice([per_min, per_min + 1, per_min + 3, 2 * per_min]) * D
    L = random.choice([1, 2, 3])
    kind = random.choice(["pareto", "uniform", "ints", "zeros_some", "ties"])

    def load():
        if kind == "pareto":
            return random.paretovariate(1.1)
        if kind == "uniform":
            return random.random()
        if kind == "ints":
            return float(random.randint(0, 5))
        if kind == "zeros_some":
            return 0.0 if random.random() < 0.5 else random.random() * 10
        return 1.0

    with open(wpath, "w") as f:
        json.dump([[load() for _ in range(E)] for _ in range(L)], f)
    moves = random.choice([-1, 0, 1, 4, 16, 64])
    args = ["rebalance", "--weights", wpath, "--replicas", str(P), "--gpus", str(D),
            "--policy", policy, "--max-moves", str(moves)]
    if random.random() < 0.5:
        rows = []
        for _ in range(L):
            row = [q if q < E else random.randrange(E) for q in range(P)]
            random.shuffle(row)
            rows.append(row)
        with open(opath, "w") as f:
            json.dump(rows, f)
        args += ["--old", opath]
    r1 = subprocess.run([old] + args, capture_output=True)
    r2 = subprocess.run([new] + args, capture_output=True)
    ok += r1.returncode == 0
    if r1.returncode != r2.returncode or r1.stdout != r2.stdout:
        differ += 1
        print("differ: case", i, "E", E, "D", D, "P", P, "L", L, kind, "max-moves", moves)
print(f"{n_cases} cases ({ok} rc 0), {differ} differ")
sys.exit(1 if differ else 0)
