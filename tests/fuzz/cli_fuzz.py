#!/usr/bin/env python3
"""cli_fuzz.py - seeded random sweep over option combinations of every
eplb-replay command (see cli_fuzz.sh for how to run it and what it found).

usage: cli_fuzz.py BIN SEED N COMMANDS REPO KEEP

Every case is a random combination of the options that the command's --help
lists, each given a value drawn from a pool of valid values, boundaries
(0, 1, -1, the largest allowed and one past it, 2^31, 2^63), malformed text
(8x, '', ' 8', 0x10, 1e3, NaN, inf, 1e309), lists (huge, empty elements,
duplicates), in the `--opt value` or `--opt=value` form, sometimes repeated
or taken from another command, plus the conflicting combinations that the
help rules out and output paths that cannot work (an existing directory, a
read-only place, the input itself).  Each value carries a verdict: valid,
invalid (a usage error: exit 2) or unknown.  A case is flagged when it
  - crashes (exit >= 128 or killed) or prints a sanitizer report,
  - runs past 20 s or its max RSS passes 1 GB,
  - exits 0 with a value or combination that the help rules out,
  - exits 1 where only a usage error is there to find (exit 2 expected),
  - exits 2 with a message about an input file that the options did not
    make impossible (a runtime error: exit 1 expected),
  - fails with a message that names none of the options, values or files
    given (and no required one),
  - prints usage or help to stdout on an error,
  - fails and leaves a new file or directory behind, or changes an output
    that existed before; or succeeds and leaves a temporary file behind.
The same SEED gives the same cases (the random generator is the only
source; paths are per case index)."""
import os
import random
import shutil
import subprocess
import sys
import tempfile

I31, I63, I64 = 2**31, 2**63, 2**64
V, X, U = True, False, None  # valid, invalid (usage: exit 2), unknown


def ints(rng, lo, hi, typical=(), allow_neg=True):
    """(text, verdict) for an integer option of range [lo, hi]"""
    pool = [(str(lo), V), (str(hi), V), (str(hi + 1), X), (str(lo - 1), X),
            (str(I31), V if hi >= I31 else X), (str(I63), X), (str(I64), X),
            (str(-I63 - 1), X), ("8x", X), ("", X), ("0x10", X), ("1e3", X),
            ("4.0", X), (" 8", X), ("+8", X), ("nan", X), ("-", X),
            ("9" * 40, X)]
    if rng.random() < 0.65 and typical:
        v = rng.choice(typical)
        return str(v), V if lo <= v <= hi else X
    if rng.random() < 0.5:
        v = rng.randint(lo, min(hi, lo + 64))
        return str(v), V
    return rng.choice(pool)


def floats(rng, ok, typical):
    """(text, verdict) for a float option; ok(x) says whether x is allowed"""
    pool = ["nan", "NaN", "inf", "-inf", "1e309", "-1e309", "", "0.5x", "1e-400",
            "0", "1", "-1", "0.5", "0x1p-1", " 0.5", "1,0", "2", "-0"]
    if rng.random() < 0.5:
        t = str(rng.choice(typical))
    else:
        t = rng.choice(pool)
    try:
        x = float(t)
        if x != x or x in (float("inf"), float("-inf")) or t.strip() != t or "x" in t.lower():
            return t, X  # src/decimal.h: no space, '+', hex, inf or nan
        return t, V if ok(x) else X
    except ValueError:
        return t, X


def int_list(rng, lo, hi, typical, maxn=64, dup_bad=True):
    r = rng.random()
    if r < 0.5:
        k = rng.randint(1, 3)
        vals = [rng.choice(typical) for _ in range(k)]
        ok = all(lo <= v <= hi for v in vals) and (len(set(vals)) == len(vals) or not dup_bad)
        return ",".join(map(str, vals)), V if ok else X
    if r < 0.6:
        vals = list(range(lo, lo + maxn + 1))
        return ",".join(map(str, vals)), X  # one too many
    if r < 0.65:
        vals = list(range(lo, lo + maxn))
        return ",".join(map(str, vals)), V if lo + maxn - 1 <= hi else X
    if r < 0.75:
        v = rng.choice(typical)
        return rng.choice([f"{v},", f",{v}", f"{v},,{v + 1}", ","]), X
    if r < 0.8:
        v = rng.choice(typical)
        return f"{v},{v}", X if dup_bad else V
    t, ok = ints(rng, lo, hi, typical)
    return t, ok


class Case:
    def __init__(self):
        self.args = []
        self.bad = []        # why the case must be refused (usage)
        self.unknown = False  # a verdict the sweep cannot tell
        self.files = []      # paths given (a message may name them)
        self.badfile = None  # an input that must fail at run time (exit 1)
        self.outputs = []    # output paths (files or dirs) to watch
        self.nocheck = False  # --help / --list-presets: any exit 0 is fine
        self.slow_ok = False  # a documented slow request
        self.given = set()
        self.late = {}

    def finish(self):
        for verdict, what in self.late.values():
            if verdict is X:
                self.bad.append(what)
            elif verdict is U:
                self.unknown = True

    def opt(self, rng, name, val=None, verdict=V, flag=False, late=False):
        """add option name (its value val); late: a text option that the
        command checks after parsing, so that the last one given counts"""
        self.given.add(name)
        if late:
            self.late[name] = (verdict, f"{name} {val!r}")
            verdict = V
        if verdict is X:
            self.bad.append(f"{name} {val!r}")
        elif verdict is U:
            self.unknown = True
        if flag:
            if rng.random() < 0.05:
                self.args.append(f"{name}=1")
                self.bad.append(f"{name}=1")
            else:
                self.args.append(name)
            return
        if not name.startswith("--"):
            self.args += [name + val] if val.startswith("-") else [name, val]
        elif rng.random() < 0.25 or val.startswith("-"):
            self.args.append(f"{name}={val}")
        else:
            self.args += [name, val]


class Env:
    def __init__(self, root, repo):
        self.root = root
        self.repo = repo
        self.small = os.path.join(root, "small.h5")
        self.esft_h5 = os.path.join(repo, "traces", "esft-intent.h5")
        self.dsv3 = os.path.join(repo, "traces", "dsv3-small.h5")
        self.counts = os.path.join(root, "counts.h5")
        self.text = os.path.join(root, "notes.txt")
        self.empty = os.path.join(root, "empty.h5")
        self.weights = os.path.join(root, "w.json")
        self.weights_csv = os.path.join(root, "w.csv")
        self.weights_big = os.path.join(root, "w256.json")
        self.old = os.path.join(root, "old.json")
        self.sglang = os.path.join(root, "sglang.json")
        self.esft_dir = os.path.join(root, "esft")
        self.profile = os.path.join(repo, "sim", "profiles", "h100-8gpu-ib400.txt")
        self.missing = os.path.join(root, "no-such-file.h5")
        self.adir = os.path.join(root, "adir")


def setup(bin_, root, repo):
    e = Env(root, repo)
    run = lambda *a: subprocess.run([bin_, *a], capture_output=True, check=True)
    run("gen", "--preset", "esft-lite", "--steps", "8", "--tokens-per-step", "16",
        "--layers", "2", "-o", e.small)
    with open(e.sglang, "w") as f:  # 2 layers x 16 experts, one step
        f.write('{"logical_count": [%s]}\n' % ",".join(
            "[" + ",".join(str((i * 7 + l) % 13 + 1) for i in range(16)) + "]" for l in range(2)))
    run("import", "--format", "sglang-counts", e.sglang, "-o", e.counts, "--top-k", "2")
    open(e.text, "w").write("not a trace\n")
    open(e.empty, "w").close()
    with open(e.weights, "w") as f:  # 3 layers x 8 experts
        f.write("[[5,1,1,1,2,3,4,1],[1,1,1,1,1,1,1,9],[0,0,0,0,0,0,0,0]]\n")
    with open(e.weights_csv, "w") as f:
        f.write("5,1,1,1,2,3,4,1\n1,1,1,1,1,1,1,9\n")
    with open(e.weights_big, "w") as f:  # 2 layers x 256 experts (bench policy)
        f.write('{"logical_count": [%s]}\n' % ",".join(
            "[" + ",".join(str((i * 31 + l) % 97) for i in range(256)) + "]" for l in range(2)))
    with open(e.old, "w") as f:  # 3 layers x 16 slots
        f.write("[%s]\n" % ",".join("[" + ",".join(str(p % 8) for p in range(16)) + "]"
                                      for _ in range(3)))
    os.makedirs(e.esft_dir)
    line = ("1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t\t0.3\t0.2\t0.1\t0.05\t0.05\t0.05"
            "\t0.3\t0.2\t0.1\t0.05\t0.05\t0.05\n63\t0\t8\t9\t10\t11\t\t0.5\t0.1\t0.1\t0.1"
            "\t0.05\t0.05\n")
    for l in range(1, 27):
        open(os.path.join(e.esft_dir, f"expert_weights_{l}.txt"), "w").write(line)
    os.makedirs(e.adir)
    return e


def out_path(rng, e, case_dir, kind, inp=None):
    """(path, verdict, is_runtime_error) for an output file or directory"""
    r = rng.random()
    if r < 0.55:
        return os.path.join(case_dir, "out" + (".h5" if kind == "file" else "")), V, False
    if r < 0.65:  # an existing file: replaced (file) or not a directory (dir)
        p = os.path.join(case_dir, "exists" + (".h5" if kind == "file" else ""))
        shutil.copy(e.small, p)
        return p, V if kind == "file" else U, kind != "file"
    if r < 0.72:  # an existing directory
        p = os.path.join(case_dir, "adir")
        os.makedirs(p, exist_ok=True)
        return p, V if kind == "dir" else U, kind == "file"
    if r < 0.78:
        return "/proc/self/nope/out.h5", U, True
    if r < 0.84:
        return os.path.join(case_dir, "a", "b", "out.h5"), U, kind == "file"
    if r < 0.9 and inp:
        return inp, U, False
    if r < 0.95:
        return "", X, False
    return os.path.join(case_dir, "out.h5/"), U, False


def trace_arg(rng, c, e, allow_counts=True):
    r = rng.random()
    if r < 0.75:
        p = e.small
    elif r < 0.8:
        p = e.esft_h5
    elif r < 0.83:
        p = e.dsv3
    elif r < 0.87 and allow_counts:
        p = e.counts
    else:
        p = rng.choice([e.missing, e.text, e.empty, e.adir])
        c.badfile = p
    c.files.append(p)
    return p


POLICIES = ["deepseek", "global", "deepseek-preserve", "nodup", "lpt", "vec",
            "migration-aware", "none"]


def gen_run(rng, e, cd):
    c = Case()
    trace = trace_arg(rng, c, e)
    c.args = [trace, "--policy-time", "0", "--quiet"]
    E = {e.small: 64, e.esft_h5: 64, e.dsv3: 256, e.counts: 16}.get(trace, 64)
    st = {"pol": ["deepseek"], "gpus": [8], "red": None, "rep": None, "nodes": 1,
          "trig": None, "win": 0, "itv": 0, "thr": 0, "ema": 0, "mm": 0, "async": 0}
    opts = ["--policy", "--gpus", "--nodes", "--redundant", "--replicas", "--select",
            "--trigger", "--window", "--interval", "--async", "--threshold", "--ema-decay",
            "--max-moves", "--profile", "--policy-time", "--device", "--threads", "--seed",
            "--out", "--json", "--quiet"]
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4, 5])):
        o = rng.choice(opts)
        if o == "--policy":
            r = rng.random()
            if r < 0.6:
                k = rng.randint(1, 3)
                pols = rng.sample(POLICIES + ["oracle"], k)
                val, ok = ",".join(pols), V
                st["pol"] = pols
            elif r < 0.7:
                val, ok = "deepseek,deepseek", X
            elif r < 0.8:
                val, ok = rng.choice(["bogus", "Deepseek", "", "lpt,", ",lpt", "lpt,,vec"]), X
            else:
                val, ok = ",".join(["lpt"] * 40), X
            c.opt(rng, o, val, ok)
        elif o == "--gpus":
            val, ok = int_list(rng, 1, 4096, [1, 2, 4, 8, 16, 3, 64, 4096, 4097, 0])
            if ok is V:
                st["gpus"] = [int(x) for x in val.split(",")]
            c.opt(rng, o, val, ok)
        elif o == "--nodes":
            val, ok = ints(rng, 1, 4096, [1, 2, 3, 4, 8, 16])
            if ok is V:
                st["nodes"] = int(val)
            c.opt(rng, o, val, ok)
        elif o == "--redundant":
            val, ok = int_list(rng, 0, 16384, [0, 1, 8, 16, 64, 16384, 16385])
            st["red"] = val
            c.opt(rng, o, val, ok)
        elif o == "--replicas":
            val, ok = ints(rng, 1, 16384, [64, 72, 128, 256, 16384, 65, 8])
            if ok is V:
                st["rep"] = int(val)
            c.opt(rng, o, val, ok)
        elif o == "--select":
            val = rng.choice(["hash", "flatmod", "random", "local", "rr-block", "balanced",
                              "Hash", "", "local,hash"])
            if val not in ("Hash", "", "local,hash"):
                st["sel"] = val
            c.opt(rng, o, val, X if val in ("Hash", "", "local,hash") else V)
        elif o == "--trigger":
            val = rng.choice(["vllm", "sglang", "trtllm", "threshold", "once", "oracle",
                              "never", ""])
            if val in ("never", ""):
                c.opt(rng, o, val, X)
            else:
                st["trig"] = val
                c.opt(rng, o, val, V)
        elif o in ("--window", "--interval"):
            val, ok = int_list(rng, 1, 2**40, [1, 2, 4, 8, 100, 2**40, 2**40 + 1, 0])
            st["win" if o == "--window" else "itv"] = 1
            c.opt(rng, o, val, ok)
        elif o == "--async":
            val = rng.choice(["off", "layers", "chunk:1", "chunk:2", "chunk:3", "chunk:7",
                              "chunk:0", "chunk:-1", "chunk:", "chunk", "chunk:2x",
                              "chunk:99999999999", "Layers", "chunk: 2"])
            ok = V if val in ("off", "layers") or (val.startswith("chunk:") and val[6:].isdigit()
                                                    and 1 <= int(val[6:]) < I31) else X
            if val == "chunk: 2":
                ok = U
            st["async"] = 1
            c.opt(rng, o, val, ok)
        elif o == "--threshold":
            val, ok = floats(rng, lambda x: 0 < x <= 1, [0.5, 0.9, 1, 0.01])
            st["thr"] = 1
            c.opt(rng, o, val, ok)
        elif o == "--ema-decay":
            val, ok = floats(rng, lambda x: 0 <= x < 1, [0.5, 0.95, 0, 0.999])
            st["ema"] = 1
            c.opt(rng, o, val, ok)
        elif o == "--max-moves":
            val, ok = ints(rng, -1, I63 - 1, [-1, 0, 1, 16, 16385, -2])
            st["mm"] = 1
            c.opt(rng, o, val, ok)
        elif o == "--profile":
            r = rng.random()
            if r < 0.6:
                c.opt(rng, o, e.profile, V)
                c.files.append(e.profile)
            elif r < 0.9:
                p = rng.choice([e.missing, e.adir, e.text, e.small])
                c.files.append(p)
                c.badfile = c.badfile or p
                c.opt(rng, o, p, V)
            else:
                c.opt(rng, o, "", X)
        elif o == "--policy-time":
            r = rng.random()
            if r < 0.2:
                c.opt(rng, o, "measured", V)
            else:
                val, ok = floats(rng, lambda x: 0 <= x <= 86400, [0, 1, 86400, 86401, 1e-9])
                c.opt(rng, o, val, ok)
        elif o == "--device":
            val = rng.choice(["auto", "cpu", "gpu", "GPU", ""])
            if val == "gpu":
                st["gpu"] = 1
            c.opt(rng, o, val, V if val in ("auto", "cpu") else U if val == "gpu" else X)
        elif o == "--threads":
            val, ok = int_list(rng, 1, 4096, [1, 2, 4096, 4097, 0])
            if "," in val:
                ok = X
            c.opt(rng, o, val, ok)
        elif o == "--seed":
            val, ok = ints(rng, 0, I63 - 1, [0, 1, 42, I63 - 1])
            if ok is V:
                st["seed"] = 1
            c.opt(rng, o, val, ok)
        elif o == "--out":
            p, ok, rt = out_path(rng, e, cd, "dir", trace)
            if p == trace:  # --out the trace: a file, not a directory
                rt = True
            c.outputs.append(p)
            if rt:
                c.badfile = c.badfile or p
            c.files.append(p)
            c.opt(rng, o, p, ok)
        else:
            c.opt(rng, o, flag=True)
    # the combinations that the help rules out (exit 2)
    pol = st["pol"]
    online = any(p not in ("none", "oracle") for p in pol)
    trig = st["trig"] or "vllm"
    if st["red"] is not None and st["rep"] is not None:
        c.bad.append("--redundant with --replicas")
    if st["thr"] and trig != "threshold":
        c.bad.append("--threshold without --trigger threshold")
    if st["ema"] and trig != "trtllm":
        c.bad.append("--ema-decay without --trigger trtllm")
    if st["mm"] and "migration-aware" not in pol:
        c.bad.append("--max-moves without migration-aware")
    if st.get("seed") and st.get("sel", "hash") != "random":
        c.bad.append("--seed without --select random")
    if st.get("sel") and trace == e.counts:
        c.bad.append("--select on a counts-only trace")
    if st.get("gpu") and trace == e.counts:
        c.bad.append("--device gpu on a trace without logits")
    if st["trig"] == "once" and (st["win"] or st["itv"]) and "oracle" not in pol:
        c.bad.append("--trigger once with --window/--interval")
    if pol == ["none"] and (st["trig"] or st["win"] or st["itv"] or st["async"]):
        c.bad.append("a schedule for --policy none")
    if any(d % st["nodes"] for d in st["gpus"]):
        c.bad.append("--nodes not dividing --gpus")
    if st["rep"] is not None and any(st["rep"] % d or st["rep"] < E for d in st["gpus"]):
        c.bad.append("--replicas not a multiple of --gpus or < experts")
    if "migration-aware" in pol and (max(st["gpus"]) > 512 or (st["rep"] or 0) > 2048):
        c.slow_ok = True
    if trace == e.dsv3 and (max(st["gpus"]) > 256 or (st["rep"] or 0) > 1024 or len(pol) > 2):
        c.slow_ok = True
    if rng.random() < 0.05:  # an option of another command
        o = rng.choice(["--preset", "--weights", "--format", "--steps", "--no-skew", "-o"])
        c.opt(rng, o, "x", X)
    return c


def gen_info(rng, e, cd):
    c = Case()
    c.args = [trace_arg(rng, c, e)]
    for _ in range(rng.randint(0, 3)):
        r = rng.random()
        if r < 0.35:
            c.opt(rng, "--json", flag=True)
        elif r < 0.7:
            c.opt(rng, "--no-skew", flag=True)
        elif r < 0.8:
            c.args.append(e.small)
            c.bad.append("two traces")
        elif r < 0.9:
            o = rng.choice(["-x", "--bogus", "--policy", "-", "--", "--json=1"])
            c.args.append(o)
            c.bad.append("two traces" if o == "-" else o)
        else:
            c.args.append("-h")
            c.nocheck = True
    rng.shuffle(c.args)
    return c


def gen_gen(rng, e, cd):
    c = Case()
    sizes = {"--steps": "4", "--tokens-per-step": "8", "--layers": "2"}
    preset = rng.choice(["esft-lite", "esft-lite", "mixtral", "qwen3-moe", "deepseek-v3",
                         "bogus", ""])
    if rng.random() < 0.95:
        c.opt(rng, "--preset", preset, V if preset not in ("bogus", "") else X)
    else:
        c.bad.append("no --preset")
    stats = rng.random() < 0.2
    if stats:
        c.opt(rng, "--stats", flag=True)
    if not stats or rng.random() < 0.1:
        p, ok, rt = out_path(rng, e, cd, "file", e.small)
        if stats:
            c.bad.append("--stats with -o")
        if p == e.small:
            c.unknown = True
        c.outputs.append(p)
        c.files.append(p)
        if rt:
            c.badfile = c.badfile or p
        if rng.random() < 0.5:
            c.opt(rng, rng.choice(["-o", "--output"]), p, ok)
        else:
            c.args.append("-o" + p)
            if ok is X:
                c.bad.append("-o ''")
    elif not stats:
        c.bad.append("no -o")
    for _ in range(rng.randint(0, 4)):
        o = rng.choice(["--steps", "--tokens-per-step", "--seed", "--dtype", "--layers",
                        "--window", "--threads", "--force", "--list-presets"])
        if o == "--steps":
            val, ok = ints(rng, 1, 10**7, [1, 2, 4, 16])
        elif o == "--tokens-per-step":
            val, ok = ints(rng, 1, 65536, [1, 2, 8, 32])
        elif o == "--layers":
            val, ok = ints(rng, 1, 512, [1, 2, 3, 58, 59, 512])
        elif o == "--seed":
            val, ok = ints(rng, 0, I63 - 1, [0, 1, 7])
        elif o == "--window":
            val, ok = ints(rng, 1, 2**40, [1, 2, 16])
            if not stats:
                c.bad.append("--window without --stats")
        elif o == "--threads":
            val, ok = ints(rng, 1, 1024, [1, 2, 1024])
        elif o == "--dtype":
            val = rng.choice(["f32", "f16", "bf16", "F32", "fp8", ""])
            ok = V if val in ("f32", "f16", "bf16") else X
        elif o == "--force":
            if int(sizes["--steps"]) * int(sizes["--tokens-per-step"]) <= 4096:
                c.opt(rng, o, flag=True)
            continue
        else:
            c.opt(rng, o, flag=True)
            c.nocheck = True
            continue
        if o in sizes and ok is V:
            sizes[o] = val
        c.given.add(o)
        c.opt(rng, o, val, ok)
    for o, v in sizes.items():  # keep every case small unless fuzzed
        if o not in c.given:
            c.args += [o, v]
    if "--force" in c.given and int(sizes["--steps"]) * int(sizes["--tokens-per-step"]) > 4096:
        c.slow_ok = True
    # large valid requests: up to 64 GiB are allowed, far past 20 s
    if int(sizes["--steps"]) * int(sizes["--tokens-per-step"]) * (
            int(sizes["--layers"]) if sizes["--layers"].isdigit() else 58) > 2**21:
        c.slow_ok = True
    if rng.random() < 0.05:
        o = rng.choice(["--policy", "--gpus", "--format", "--json"])
        c.opt(rng, o, "x", X)
    return c


def gen_import(rng, e, cd):
    c = Case()
    fmt = rng.choice(["esft", "sglang-counts", "sglang-counts", "esft", "bogus", ""])
    if rng.random() < 0.95:
        c.opt(rng, "--format", fmt, V if fmt in ("esft", "sglang-counts") else X)
    else:
        c.bad.append("no --format")
    r = rng.random()
    if r < 0.8:
        inp = e.esft_dir if fmt == "esft" else e.sglang
    elif r < 0.9:
        inp = rng.choice([e.missing, e.text, e.adir, e.small])
        c.badfile = inp
    elif r < 0.95:
        inp = ""
        c.bad.append("empty input")
    else:
        inp = None
    if inp is not None:
        c.args.append(inp)
        c.files.append(inp)
    if rng.random() < 0.95:
        p, ok, rt = out_path(rng, e, cd, "file", inp)
        if p == inp:
            c.bad.append("-o is the input")
        c.outputs.append(p)
        c.files.append(p)
        if rt:
            c.badfile = c.badfile or p
        c.opt(rng, rng.choice(["-o", "--output"]), p, ok)
    else:
        c.bad.append("no -o")
    extra = 0
    for _ in range(rng.randint(0, 3)):
        o = rng.choice(["--tokens-per-step", "--top-k", "--model", "extra"])
        if o == "--tokens-per-step":
            val, ok = ints(rng, 1, 2**30, [1, 2, 512])
            if fmt == "sglang-counts":
                c.bad.append("--tokens-per-step with sglang-counts")
        elif o == "--top-k":
            val, ok = ints(rng, 1, 16, [1, 2, 8, 16, 17])
            if fmt == "esft":
                c.bad.append("--top-k with esft")
            if ok is V and fmt == "sglang-counts" and int(val) > 16:
                ok = X
        elif o == "--model":
            val, ok = rng.choice([("Foo", V), ("", U), ("x" * 5000, U), ("a\nb", U)])
            if fmt == "esft":
                c.bad.append("--model with esft")
        else:
            c.args.append(e.sglang)
            c.files.append(e.sglang)
            extra += 1
            continue
        c.opt(rng, o, val, ok)
    ninputs = (inp is not None) + extra
    if ninputs != 1:
        c.bad.append(f"{ninputs} inputs")
    elif inp is None:  # the extra one is the input
        c.badfile = e.sglang if fmt == "esft" else c.badfile
    return c


def int_syntax(t):
    """rebalance reads its integers as ints (exit 2 at once if not) and
    checks their ranges after the loop: the last one given counts"""
    try:
        return t.strip() == t and -2**31 < int(t) < 2**31
    except ValueError:
        return False


def gen_rebalance(rng, e, cd):
    c = Case()
    w = rng.choice([e.weights] * 6 + [e.weights_csv] * 2 + [e.missing, e.text, e.adir, ""])
    L, E = (3, 8) if w == e.weights else (2, 8)
    st = {"P": None, "D": None, "G": 1, "N": 1, "pol": "deepseek", "fmt": None, "exp": None,
          "off": 0, "mm": 0, "old": None}
    if w in (e.missing, e.text, e.adir):
        c.badfile = w
    if w == "":
        c.bad.append("--weights ''")
    if rng.random() < 0.95:
        c.opt(rng, "--weights", w, V)
        c.files.append(w)
    else:
        c.bad.append("no --weights")
    for o, typ in (("--replicas", [8, 16, 32, 12, 7, 16384, 16385]),
                   ("--gpus", [1, 2, 4, 8, 3, 4096, 4097])):
        if rng.random() < 0.95:
            val, ok = ints(rng, 1, 16384 if o == "--replicas" else 4096, typ)
            if ok is V:
                st["P" if o == "--replicas" else "D"] = int(val)
            c.opt(rng, o, val, ok, late=int_syntax(val))
        else:
            c.bad.append(f"no {o}")
    for _ in range(rng.randint(0, 4)):
        o = rng.choice(["--groups", "--nodes", "--policy", "--old", "--max-moves", "--format",
                        "--export", "--layer-offset"])
        if o == "--groups":
            val, ok = ints(rng, 1, 2**31 - 1, [1, 2, 4, 8, 3, 0])
            if ok is V:
                st["G"] = int(val)
        elif o == "--nodes":
            val, ok = ints(rng, 1, 2**31 - 1, [1, 2, 4, 3])
            if ok is V:
                st["N"] = int(val)
        elif o == "--policy":
            val = rng.choice(POLICIES + ["bogus", "", "oracle"])
            ok = V if val in POLICIES else X
            st["pol"] = val
        elif o == "--old":
            val = rng.choice([e.old, e.old, e.missing, e.weights, ""])
            ok = X if val == "" else V
            st["old"] = val
            c.files.append(val)
        elif o == "--max-moves":
            val, ok = ints(rng, -1, 2**31 - 1, [-1, 0, 4, 16, -2])
            st["mm"] = 1
        elif o == "--format":
            val = rng.choice(["json", "csv", "yaml", ""])
            ok = V if val in ("json", "csv") else X
            st["fmt"] = val
        elif o == "--export":
            val = rng.choice(["sglang", "trtllm", "vllm", ""])
            ok = V if val in ("sglang", "trtllm") else X
            st["exp"] = val
        else:
            val, ok = ints(rng, 0, 2**31 - 1, [0, 1, 3, 2**31 - 3, 2**31 - 2])
            st["off"] = 1
            if ok is V and int(val) + L - 1 > 2**31 - 1:
                ok = X
        c.opt(rng, o, val, ok, late=o in ("--policy", "--old", "--format", "--export") or
              int_syntax(val))
    P, D = st["P"], st["D"]
    if P is not None and D is not None and (P % D or P < E):
        c.bad.append("P not a multiple of D or < E")
    if D is not None and D % st["N"]:
        c.bad.append("D % N")
    if E % st["G"]:
        c.bad.append("E % G")
    if st["fmt"] and st["exp"] and (st["exp"] == "trtllm" or st["fmt"] != "json"):
        c.bad.append("--format with --export")
    if st["off"] and st["exp"] != "trtllm":
        c.bad.append("--layer-offset without trtllm")
    if st["mm"] and st["pol"] != "migration-aware":
        c.bad.append("--max-moves without migration-aware")
    if st["old"] and st["exp"] and st["pol"] not in ("deepseek-preserve", "migration-aware",
                                                      "none"):
        c.bad.append("--old with --export")
    if st["old"] in (e.missing, e.weights):
        c.badfile = c.badfile or st["old"]
    if rng.random() < 0.05:
        o = rng.choice(["--preset", "--json", "--trigger", "-o"])
        c.opt(rng, o, "x", X)
    return c


def gen_bench_kernels(rng, e, cd):
    c = Case()
    c.args = ["bench", "kernels"]
    c.opt(rng, "--device", "cpu", V)
    st = {"--tokens": "16", "--reps": "1"}
    E, K, G, TG, P, D, N, hot, bias = 256, 8, 8, 4, 288, 32, 4, 0, 1
    for _ in range(rng.randint(0, 5)):
        o = rng.choice(["--tokens", "--experts", "--topk", "--groups", "--topk-groups",
                        "--scoring", "--no-bias", "--hot", "--layers", "--replicas", "--gpus",
                        "--nodes", "--mode", "--dtype", "--reps", "--variant", "--only",
                        "--json", "--device"])
        if o == "--tokens":
            val, ok = int_list(rng, 1, 1 << 24, [1, 2, 16, 64, 1 << 24], maxn=32, dup_bad=False)
            if ok is V and sum(int(x) for x in val.split(",")) > 4096:
                c.slow_ok = True
        elif o == "--experts":
            val, ok = ints(rng, 1, 1 << 20, [8, 16, 64, 256, 512, 513])
            if ok is V:
                E = int(val)
        elif o == "--topk":
            val, ok = ints(rng, 1, 1 << 20, [1, 2, 8, 16, 17])
            if ok is V:
                K = int(val)
        elif o == "--groups":
            val, ok = ints(rng, 1, 1 << 20, [1, 2, 8])
            if ok is V:
                G = int(val)
        elif o == "--topk-groups":
            val, ok = ints(rng, 1, 1 << 20, [1, 2, 4, 8])
            if ok is V:
                TG = int(val)
        elif o == "--hot":
            val, ok = ints(rng, 0, 1 << 20, [0, 1, 4, 8, 9])
            if ok is V:
                hot = int(val)
        elif o == "--layers":
            val, ok = ints(rng, 1, 128, [1, 2, 128])
            if ok is V and int(val) > 1:
                c.bad.append("--layers > 1 on the CPU")
        elif o == "--replicas":
            val, ok = ints(rng, 1, 16384, [256, 288, 512, 16384])
            if ok is V:
                P = int(val)
        elif o == "--gpus":
            val, ok = ints(rng, 1, 4096, [1, 8, 32, 4096])
            if ok is V:
                D = int(val)
        elif o == "--nodes":
            val, ok = ints(rng, 1, 4096, [1, 2, 4, 3])
            if ok is V:
                N = int(val)
        elif o == "--scoring":
            val = rng.choice(["softmax", "sigmoid", "relu", ""])
            ok = V if val in ("softmax", "sigmoid") else X
        elif o == "--mode":
            val = rng.choice(["hash", "flatmod", "random", "local", "rr-block", "balanced", "x"])
            ok = X if val == "x" else V
        elif o == "--dtype":
            val = rng.choice(["f32", "f16", "bf16", "f64"])
            ok = X if val == "f64" else V
        elif o == "--reps":
            val, ok = ints(rng, 1, 100000, [1, 2, 0])
            if ok is V and int(val) > 3:
                val = "3"
        elif o == "--variant":
            val, ok = ints(rng, 0, 63, [0, 1, 5, 63, 64])
        elif o == "--only":
            val = rng.choice(["route", "select", "fused", "fused_ids", "step", "x"])
            ok = V if val in ("route", "select", "fused") else X
        elif o == "--device":
            val = rng.choice(["cpu", "gpu", "auto", "tpu"])
            ok = V if val == "cpu" else X if val == "tpu" else U
        elif o == "--no-bias":
            c.opt(rng, o, flag=True)
            bias = 0
            continue
        else:
            c.opt(rng, o, flag=True)
            continue
        if o in st:
            st[o] = val
        c.given.add(o)
        c.opt(rng, o, val, ok)
    for o, v in st.items():
        if o not in c.given:
            c.args += [o, v]
    if E > 512 or K > E or E % G or TG > G or K > 16:
        c.unknown = True  # the route checks' own limits
    if hot > K or (hot and not bias):
        c.bad.append("--hot")
    if P < E or P % D or D % N:
        c.bad.append("P, D, N")
    return c


def gen_bench_policy(rng, e, cd):
    c = Case()
    c.args = ["bench", "policy"]
    w = rng.choice([e.weights_big] * 6 + [e.weights, e.missing, e.adir, ""])
    if w == "":
        c.bad.append("--weights ''")
    elif w != e.weights_big:
        c.badfile = w
    c.opt(rng, "--weights", w, V)
    c.files.append(w)
    rep = False
    pol = None
    for _ in range(rng.randint(0, 4)):
        o = rng.choice(["--policy", "--repeat", "--max-moves", "--json"])
        if o == "--policy":
            val = rng.choice(POLICIES + ["bogus", ""])
            ok = V if val in POLICIES else X
            pol = val
        elif o == "--repeat":
            val, ok = ints(rng, 1, 10**6, [1, 2, 0])
            if ok is V and int(val) > 2:
                val = "2"
            rep = True
        elif o == "--max-moves":
            val, ok = ints(rng, -1, 10**6, [-1, 0, 16, -2])
        else:
            c.opt(rng, o, flag=True)
            continue
        c.opt(rng, o, val, ok, late=o == "--policy")
    if not rep:
        c.args += ["--repeat", "1"]
    if pol is None:
        c.args += ["--policy", rng.choice(POLICIES)]
    return c


def gen_bench_sim(rng, e, cd):
    c = Case()
    c.args = ["bench", "sim"]
    sz = {"--steps": 20, "--layers": 4, "--experts": 16, "--gpus": 4}
    lim = {"--steps": 10**9, "--layers": 4096, "--experts": 512, "--gpus": 1024}
    for _ in range(rng.randint(0, 4)):
        o = rng.choice(list(sz) + ["--policy", "--json"])
        if o in sz:
            val, ok = ints(rng, 1, lim[o], [1, 2, 8, lim[o], lim[o] + 1])
            if ok is V:
                sz[o] = int(val)
            c.given.add(o)
        elif o == "--policy":
            val = rng.choice(POLICIES + ["bogus"])
            ok = V if val != "bogus" else X
        else:
            c.opt(rng, o, flag=True)
            continue
        c.opt(rng, o, val, ok, late=o == "--policy")
    for o, v in sz.items():
        if o not in c.given:
            c.args += [o, str(v)]
    if sz["--steps"] * sz["--layers"] * sz["--experts"] > 10**7:
        c.slow_ok = True
    return c


def gen_bench_io(rng, e, cd):
    c = Case()
    c.args = ["bench", "io", trace_arg(rng, c, e)]
    rep = False
    for _ in range(rng.randint(0, 4)):
        o = rng.choice(["--threads", "--repeat", "--reads", "--json"])
        if o == "--threads":
            val, ok = ints(rng, 1, 256, [1, 2, 256, 257])
        elif o == "--repeat":
            val, ok = ints(rng, 1, 1000, [1, 2, 0])
            if ok is V and int(val) > 3:
                val = "3"
            rep = True
        elif o == "--reads":
            val, ok = int_list(rng, 1, 2**40, [1, 4, 16, 64], maxn=16, dup_bad=False)
            if c.files[0] != e.small:  # thousands of tiny reads: minutes under ASan
                c.slow_ok = True
            if c.files and c.files[0] == e.counts:
                c.unknown = True
        else:
            c.opt(rng, o, flag=True)
            continue
        c.opt(rng, o, val, ok)
    if not rep:
        c.args += ["--repeat", "1"]
    return c


GENS = {"run": gen_run, "info": gen_info, "gen": gen_gen, "import": gen_import,
        "rebalance": gen_rebalance, "bench-kernels": gen_bench_kernels,
        "bench-policy": gen_bench_policy, "bench-sim": gen_bench_sim, "bench-io": gen_bench_io}
PREFIX = {"run": ["run"], "info": ["info"], "gen": ["gen"], "import": ["import"],
          "rebalance": ["rebalance"]}


def snapshot(case_dir, paths):
    """{path: (kind, size, mtime)} of everything under case_dir and of the
    output paths given outside it"""
    snap = {}

    def one(q):
        try:
            s = os.lstat(q)
            snap[q] = (s.st_mode >> 12, s.st_size, s.st_mtime_ns)
        except OSError:
            pass
    for root, dirs, files in os.walk(case_dir):
        for n in dirs + files:
            one(os.path.join(root, n))
    for p in paths:
        if p and not p.startswith(case_dir):
            one(p)
    return snap


def check(c, rc, out, err, rss_kb, secs, before, after):
    """the problems of one case, as strings"""
    p = []
    if rc is None:
        return [] if c.slow_ok else ["hang (> 20 s)"]
    if rc >= 128 or rc < 0:
        p.append(f"crash (exit {rc})")
    if "Sanitizer" in err or "runtime error:" in err:
        p.append("sanitizer report")
    if rss_kb and rss_kb > 1 << 20 and not c.slow_ok:
        p.append(f"max RSS {rss_kb // 1024} MB")
    if rc not in (0, 1, 2) and rc < 128:
        p.append(f"exit {rc}")
    if c.nocheck:
        return p
    if rc != 0 and ("usage:" in out or "Usage:" in out):
        p.append("usage on stdout after an error")
    if rc == 0 and c.bad:
        p.append("exit 0, must be refused: " + "; ".join(c.bad))
    if rc == 1 and c.bad and not c.unknown and not c.badfile:
        p.append("exit 1 for a usage error: " + "; ".join(c.bad))
    if rc == 2 and not c.bad and not c.unknown and c.badfile and c.badfile in err:
        p.append(f"exit 2 for a runtime error about {c.badfile}")
    if rc in (1, 2):
        line = err.strip().splitlines()[-1] if err.strip() else ""
        if not line:
            p.append("no message")
        else:
            # an option or a file by name, not only a value ("unknown dtype
            # 'f64'" does not say which option)
            names = [a.split("=")[0] for a in c.args if a.startswith("-") and len(a) > 1]
            names += [a for a in c.args if a and not a.startswith("-") and
                      ("/" in a or "." in a)] + [f for f in c.files if f]
            generic = ["TRACE.h5", "missing", "unexpected argument", "required",
                       "one trace", "input", "needs a value"]
            if not any(n in err for n in names + generic):
                p.append("message names no option or file")
    new = [q for q in after if q not in before]
    changed = [q for q in before if q in after and before[q] != after[q]]
    if rc != 0:
        if new:
            p.append("left behind after a failure: " + ", ".join(sorted(new)[:3]))
        if changed:
            p.append("changed by a failed run: " + ", ".join(sorted(changed)[:3]))
    else:
        tmp = [q for q in new if ".tmp" in os.path.basename(q) or
               os.path.basename(q).startswith(".")]
        if tmp:
            p.append("temporary file left after success: " + ", ".join(tmp[:3]))
    return p


def run_one(argv, memf, env, cwd):
    """(exit status or None on a hang, stdout, stderr, max RSS kB); a hang
    is killed with its whole process group"""
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", memf, *argv], cwd=cwd, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.communicate()
        return None, "", "", 0
    try:
        rss = int(open(memf).read().split()[-1])
    except (ValueError, IndexError, OSError):
        rss = 0
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), rss


def main():
    bin_, seed, n, cmds, repo, keep = sys.argv[1:7]
    bin_ = os.path.abspath(bin_)
    seed, n = int(seed), int(n)
    cmds = list(GENS) if cmds == "all" else cmds.split(",")
    root = tempfile.mkdtemp(prefix="cli_fuzz.")
    memdir = tempfile.mkdtemp(prefix="cli_fuzz_mem.")
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env["EPLB_THREADS"] = "2"
    bad = 0
    try:
        e = setup(bin_, root, repo)
        for cmd in cmds:
            rng = random.Random(f"{seed}:{cmd}")
            flagged = 0
            rcs = {}
            for i in range(n):
                cd = os.path.join(root, f"{cmd}-{i}")
                os.makedirs(cd)
                c = GENS[cmd](rng, e, cd)
                c.finish()
                argv = PREFIX.get(cmd, []) + c.args
                before = snapshot(cd, c.outputs)
                memf = os.path.join(memdir, "mem")
                rc, out, err, rss = run_one([bin_, *argv], memf, env, cd)
                after = snapshot(cd, c.outputs)
                rcs[rc] = rcs.get(rc, 0) + 1
                probs = check(c, rc, out, err, rss, 0, before, after)
                if probs:
                    flagged += 1
                    bad += 1
                    print(f"[{cmd} #{i}] eplb-replay {' '.join(repr(a) if (not a or ' ' in a) else a for a in argv)}")
                    print(f"    exit {rc}: " + (err.strip().splitlines() or [""])[-1][:300])
                    for q in probs:
                        print("    - " + q)
                    os.makedirs(keep, exist_ok=True)
                    with open(os.path.join(keep, f"{cmd}-{seed}-{i}.txt"), "w") as f:
                        f.write(" ".join(argv) + f"\nexit {rc}\n--- stdout\n{out}\n--- stderr\n{err}\n")
                shutil.rmtree(cd, ignore_errors=True)
            dist = ", ".join(f"exit {k}: {v}" for k, v in sorted(rcs.items(), key=str))
            print(f"cli_fuzz: {cmd}: {n} cases, seed {seed} ({dist}), {flagged} flagged",
                  flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(memdir, ignore_errors=True)
    print(f"cli_fuzz: {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
