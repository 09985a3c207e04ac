#!/usr/bin/env python3
"""inputs_fuzz.py - the sweep of inputs_fuzz.sh (see there for what and why).

usage: inputs_fuzz.py BIN SEED N KINDS SRCDIR DATADIR KEEPDIR
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN, SEED, N, KINDS, SRC, DATA, KEEP = sys.argv[1:8]
SEED, N = int(SEED), int(N)
KINDS = KINDS.split(",")
TIMEOUT = 10
MAX_RSS_KB = 500 * 1024
INTERESTING = b'[]{},:"\\0123456789-+.eE \t\n\r\x00\xff\x80\xef#=x'

tmp = tempfile.mkdtemp(prefix="inputs_fuzz.")
problems = []
counts = {}
env = dict(os.environ)
env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":exitcode=86:detect_leaks=1"
env["UBSAN_OPTIONS"] = env.get("UBSAN_OPTIONS", "") + ":exitcode=87:print_stacktrace=1"


def run(args):
    """(rc, output, seconds, max RSS kB); rc None on a timeout."""
    t0 = time.time()
    with tempfile.TemporaryFile() as log:
        p = subprocess.Popen([BIN] + args, stdout=log, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.time() - t0 > TIMEOUT:
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(p.pid, 0)
                status = None
                break
            time.sleep(0.002)
        p.returncode = 0  # reaped here, not by Popen
        log.seek(0)
        out = log.read().decode("utf-8", "replace")
    if status is None:
        return None, out, time.time() - t0, ru.ru_maxrss
    rc = os.waitstatus_to_exitcode(status)
    return rc, out, time.time() - t0, ru.ru_maxrss


def keep_input(kind, path):
    os.makedirs(KEEP, exist_ok=True)
    k = len(problems)
    dst = os.path.join(KEEP, "%s-%d%s" % (kind, k, "" if os.path.isdir(path) else ".in"))
    if os.path.isdir(path):
        shutil.copytree(path, dst, dirs_exist_ok=True)
    else:
        shutil.copy(path, dst)
    return dst


def check(kind, label, args, path, invalid, shown, allow2=False):
    """Run args; invalid: True (must fail), False (must pass), None (either)."""
    counts[kind] = counts.get(kind, 0) + 1
    rc, out, secs, rss = run(args)
    why = None
    if rc is None:
        why = "hang (> %d s)" % TIMEOUT
    elif rc < 0 or rc >= 128:
        why = "crash (exit %d)" % rc
    elif "Sanitizer" in out or "runtime error" in out or rc in (86, 87):
        why = "sanitizer report"
    elif rss > MAX_RSS_KB:
        why = "max RSS %d MB" % (rss // 1024)
    elif rc == 0 and invalid is True:
        why = "exit 0 on invalid input"
    elif rc != 0 and invalid is False:
        why = "exit %d on valid input" % rc
    elif rc not in (0, 1) and not (rc == 2 and allow2):
        why = "exit %d" % rc
    elif rc == 1 and shown not in out:
        why = "message does not name the file"
    if os.environ.get("FUZZ_LOG"):  # every case's outcome, to read the messages
        with open(os.environ["FUZZ_LOG"], "a") as f:
            first = next((l for l in out.splitlines() if l.strip()), "")
            f.write("%s\t%s\t%s\t%s\n" % (kind, label, rc, first[:200]))
    if why:
        kept = keep_input(kind, path)
        first = [l for l in out.splitlines() if l.strip()][:3]
        problems.append((kind, label, why, kept, first))
        print("%s: %s: %s (kept %s)\n    %s" % (kind, label, why, kept, "\n    ".join(first)),
               flush=True)
    return rc, out


def strict_json(b):
    """Python's reading of bytes b as JSON (NaN, Infinity refused); None if invalid."""
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return None
    def bad_const(c):
        raise ValueError(c)
    def no_dup(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key")
        return dict(pairs)
    try:
        return json.loads(s, parse_constant=bad_const, object_pairs_hook=no_dup)
    except (ValueError, RecursionError):
        return None


def mutations(base, rng, count):
    for _ in range(count):
        b = bytearray(base)
        off = rng.randrange(len(b))
        if rng.random() < 0.7:
            b[off] = INTERESTING[rng.randrange(len(INTERESTING))]
        else:
            b[off] = rng.randrange(256)
        yield "byte %d: %r -> %r" % (off, bytes([base[off]]), bytes([b[off]])), bytes(b)


def junk(n):
    """n random bytes other than NUL (one of those ends the read at once)."""
    r = random.Random(SEED)
    return bytes(r.randrange(1, 256) for _ in range(n))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- rebalance -----------------------------------------------------------
W2 = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
      [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]


def weights_valid(doc):
    """The reference's idea of a --weights JSON document: a matrix of
    finite numbers >= 0 (2-D, or 3-D steps of equal shape), or an object
    with one logical_count of that."""
    if isinstance(doc, dict):
        doc = doc.get("logical_count")
    def mat(m):
        if not isinstance(m, list) or not m or not all(isinstance(r, list) and r for r in m):
            return None
        if len({len(r) for r in m}) != 1:
            return None
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                   for r in m for x in r):
            return None
        if any(float(x) > 3.4e38 for r in m for x in r):
            return None
        return (len(m), len(m[0]))
    if isinstance(doc, list) and doc and isinstance(doc[0], list) and doc[0] and \
            isinstance(doc[0][0], list):
        shapes = {mat(s) for s in doc}
        return len(shapes) == 1 and None not in shapes
    return mat(doc) is not None


def fuzz_rebalance(rng):
    d = os.path.join(tmp, "rb")
    os.makedirs(d, exist_ok=True)
    wpath = os.path.join(d, "w.json")
    opath = os.path.join(d, "old.json")
    base_args = ["rebalance", "--replicas", "16", "--gpus", "4", "--weights"]

    def w(label, data, invalid, args_extra=(), allow2=True):
        write(wpath, data)
        check("rebalance", label, base_args + [wpath] + list(args_extra), wpath, invalid,
              "w.json", allow2)

    def old(label, data, invalid):
        write(wpath, json.dumps(W2))
        write(opath, data)
        check("rebalance-old", label, base_args + [wpath, "--old", opath], opath, invalid,
              "old.json")

    row = ",".join(str(x) for x in W2[0])
    crafted = [
        ("deep [ 100000", "[" * 100000 + "]" * 100000, True),
        ("deep [ unclosed", "[" * 100000, True),
        ("deep {", '{"a":' * 50000 + "1" + "}" * 50000, True),
        ("1e400", "[[1e400,%s]]" % row[3:], True),
        ("-1e400", "[[-1e400,%s]]" % row[3:], True),
        ("1e39 (float overflow)", "[[1e39,%s]]" % row[3:], True),
        ("1e-400", "[[1e-400,%s]]" % row[3:], False),
        ("-0", "[[-0,%s]]" % row[3:], False),
        ("NaN", "[[NaN,%s]]" % row[3:], True),
        ("Infinity", "[[Infinity,%s]]" % row[3:], True),
        ("-Infinity", "[[-Infinity,%s]]" % row[3:], True),
        ("nan lower", "[[nan,%s]]" % row[3:], True),
        ("00012", "[[00012,%s]]" % row[3:], True),
        ("-01", "[[-01,%s]]" % row[3:], True),
        ("1.2.3", "[[1.2.3,%s]]" % row[3:], True),
        ("1.", "[[1.,%s]]" % row[3:], True),
        (".5", "[[.5,%s]]" % row[3:], True),
        ("+1", "[[+1,%s]]" % row[3:], True),
        ("1e", "[[1e,%s]]" % row[3:], True),
        ("0x10", "[[0x10,%s]]" % row[3:], True),
        ("1000-digit number", "[[" + "1" * 1000 + ",%s]]" % row[3:], True),
        ("70-digit valid number", "[[0." + "0" * 68 + "1,%s]]" % row[3:], False),
        ("long string", '{"x":"' + "a" * 1000000 + '","logical_count":[[%s]]}' % row, False),
        ("invalid utf-8 key", b'{"\xff\xfe":1,"logical_count":[[' + row.encode() + b"]]}", None),
        ("BOM json", b"\xef\xbb\xbf[[" + row.encode() + b"]]", None),
        ("BOM csv", b"\xef\xbb\xbf" + row.encode() + b"\n", None),
        ("NUL", b"[[" + row.encode() + b"]]\x00", True),
        ("duplicate key", '{"logical_count":[[%s]],"logical_count":[[%s]]}' % (row, row), True),
        ("ragged", "[[%s],[1,2]]" % row, True),
        ("ragged 3-D", "[[[%s]],[[1,2]]]" % row, True),
        ("[]", "[]", True),
        ("[[]]", "[[]]", True),
        ("[[],[]]", "[[],[]]", True),
        ("[[[]]]", "[[[]]]", True),
        ("{}", "{}", True),
        ("lc not array", '{"logical_count": 5}', True),
        ("3M elements", "[[" + ",".join(["1"] * 3000000) + "]]", None),
        ("2M rows", "[" + ",".join(["[%s]" % row] * 200000) + "]", None),
        ("negative", "[[-1,%s]]" % row[3:], True),
        ("trailing garbage", "[[%s]] x" % row, True),
        ("trailing comma", "[[%s,]]" % row, True),
        ("bool", "[[true,%s]]" % row[3:], True),
        ("null", "[[null,%s]]" % row[3:], True),
        ("string", '[["1",%s]]' % row[3:], True),
        ("unterminated string", '{"logical_count', True),
        ("bad escape", '{"\\u12":1}', True),
        ("csv nan", "nan," + row[3:] + "\n", True),
        ("csv inf", "inf," + row[3:] + "\n", True),
        ("csv 1e39", "1e39," + row[3:] + "\n", True),
        ("csv hex", "0x10," + row[3:] + "\n", None),
        ("csv empty field", "1,," + row[3:] + "\n", True),
        ("csv ragged", row + "\n1,2\n", True),
        ("csv only comments", "# x\n\n", True),
        ("csv negative", "-1," + row[3:] + "\n", True),
        ("csv long line", ",".join(["1"] * 2000000) + "\n", None),
        ("3-D sum overflows float", json.dumps([[[3e38] * 12] * 2] * 3), True),
        ("empty file", "", True),
        ("whitespace only", "  \n\t", True),
    ]
    for label, data, invalid in crafted:
        w(label, data, invalid)
    old_crafted = [
        ("number", "5", True),
        ("number ws", "  5", True),
        ("NaN", "NaN", True),
        ("string", '"x"', True),
        ("true", "true", True),
        ("id 1e10", json.dumps([[1e10] + list(range(1, 16))] * 2), True),
        ("id 0.5", json.dumps([[0.5] + list(range(1, 16))] * 2), True),
        ("id -1", json.dumps([[-1] + list(range(1, 16))] * 2), True),
        ("missing expert", json.dumps([[0] * 16] * 2), True),
        ("wrong shape", json.dumps([list(range(12))] * 2), True),
        ("object without key", '{"x": 1}', True),
        ("duplicate key", '{"physical_to_logical_map": %s, "physical_to_logical_map": %s}'
         % ((json.dumps([list(range(12)) + [0, 1, 2, 3]] * 2),) * 2), True),
    ]
    for label, data, invalid in old_crafted:
        old(label, data, invalid)
    valid = {
        "json": json.dumps(W2).encode(),
        "sglang": json.dumps({"logical_count": W2}).encode(),
        "series": json.dumps([W2, W2, W2]).encode(),
        "csv": ("\n".join(",".join(str(x) for x in r) for r in W2) + "\n").encode(),
        "float json": json.dumps([[x + 0.25 for x in r] for r in W2]).encode(),
    }
    for name, base in valid.items():
        step = max(1, len(base) // 60)
        for i in range(0, len(base), step):
            b = base[:i]
            r = None if name == "csv" else weights_valid_bytes(b)
            inv = None if r is None else not r
            w("%s truncated at %d" % (name, i), b, inv)
        for label, b in mutations(base, rng, N):
            r = None if name == "csv" else weights_valid_bytes(b)
            inv = None if r is None else not r
            w("%s %s" % (name, label), b, inv)
    obase = json.dumps({"physical_to_logical_map": [list(range(12)) + [0, 1, 2, 3]] * 2}).encode()
    for i in range(0, len(obase), 3):
        old("old truncated at %d" % i, obase[:i], True)
    for label, b in mutations(obase, rng, N // 2):
        old("old " + label, b, None)


def weights_valid_bytes(b):
    s = b.lstrip(b" \t\r\n")
    if not s or s[:1] not in b"[{":
        return None  # the CSV path: no reference here
    doc = strict_json(b)
    if doc is None:
        return False
    return weights_valid(doc)


# ---- profile --------------------------------------------------------------
def fuzz_profile(rng):
    d = os.path.join(tmp, "pf")
    os.makedirs(d, exist_ok=True)
    trace = os.path.join(d, "t.h5")
    subprocess.run([BIN, "gen", "--preset", "esft-lite", "--steps", "2", "--tokens-per-step",
                    "4", "--layers", "2", "-o", trace], check=True, capture_output=True)
    ppath = os.path.join(d, "p.txt")
    base = open(os.path.join(SRC, "sim/profiles/h100-8gpu-ib400.txt"), "rb").read()

    def p(label, data, invalid):
        write(ppath, data)
        check("profile", label, ["run", trace, "--quiet", "--policy-time", "0", "--threads",
                                 "1", "--profile", ppath], ppath, invalid, "p.txt")

    tables = "".join("gemm_table.%dx%d = 1:1 2:2\n" % (h, 7) for h in range(1, 3001))
    crafted = [
        ("empty", "", False),
        ("huge line", "name = " + "x" * 3000000 + "\n", None),
        ("huge comment", "# " + "x" * 3000000 + "\n", False),
        ("huge value", "nvlink_GBps = " + "1" * 100000 + "\n", True),
        ("missing =", "nvlink_GBps 450\n", True),
        ("empty key", "= 5\n", True),
        ("empty value", "nvlink_GBps =\n", True),
        ("repeated key", "nvlink_GBps = 1\nnvlink_GBps = 2\n", True),
        ("repeated name", "name = a\nname = b\n", True),
        ("nan", "nvlink_GBps = nan\n", True),
        ("NaN", "net_latency_us = NaN\n", True),
        ("inf", "hbm_TBps = inf\n", True),
        ("-inf", "hbm_TBps = -inf\n", True),
        ("negative", "nvlink_latency_us = -1\n", True),
        ("-0 bandwidth", "nvlink_GBps = -0\n", True),
        ("1e400", "fp8_TFLOPS = 1e400\n", True),
        ("1e-400", "net_latency_us = 1e-400\n", True),
        ("1e308 scaled", "nvlink_GBps = 1e308\n", True),
        ("trailing junk", "nvlink_GBps = 450 x\n", True),
        ("two values", "nvlink_GBps = 450 451\n", True),
        ("unknown key", "foo = 1\n", True),
        ("gemm unsorted", "gemm_table.7168x2048 = 2:1 1:1\n", True),
        ("gemm duplicate point", "gemm_table.7168x2048 = 1:1 1:2\n", True),
        ("gemm no points", "gemm_table.7168x2048 =\n", True),
        ("gemm bad point", "gemm_table.7168x2048 = 1:1:1\n", True),
        ("gemm tokens 0", "gemm_table.7168x2048 = 0:1\n", True),
        ("gemm nan us", "gemm_table.7168x2048 = 1:nan\n", True),
        ("gemm neg us", "gemm_table.7168x2048 = 1:-1\n", True),
        ("gemm 100 points", "gemm_table.7168x2048 = " +
         " ".join("%d:1" % i for i in range(1, 101)) + "\n", True),
        ("gemm same table twice", "gemm_table.7168x2048.fp8 = 1:1\n"
         "gemm_table.7168x2048.fp8 = 1:2\n", True),
        ("gemm same table, other spelling", "gemm_table.7168x2048.fp8 = 1:1\n"
         "gemm_table.07168x2048.fp8 = 1:2\n", True),
        ("gemm int overflow", "gemm_table.4294974464x2048 = 1:1\n", True),
        ("gemm spaces in key", "gemm_table. 7168x 2048 = 1:1\n", True),
        ("gemm junk after fmt", "gemm_table.7168x2048.fp8 junk = 1:1\n", True),
        ("gemm bad fmt", "gemm_table.7168x2048.int4 = 1:1\n", True),
        ("gemm negative dims", "gemm_table.-1x5 = 1:1\n", True),
        ("3000 tables", tables, True),
        ("record_table unsorted", "record_table = 5:1 1:1\n", True),
        ("record_table twice", "record_table = 1:1\nrecord_table = 2:1\n", True),
        ("gemm_efficiency 0", "gemm_efficiency = 0\n", True),
        ("gemm_efficiency 2", "gemm_efficiency = 2\n", True),
        ("record_fraction 2", "record_fraction = 2\n", True),
        ("binary junk", junk(4096), True),
        ("NUL", "name = a\x00b\n", True),
        ("CRLF", base.replace(b"\n", b"\r\n"), False),
        ("no final newline", base.rstrip(b"\n"), False),
        ("hex value", "nvlink_GBps = 0x10\n", None),
    ]
    for label, data, invalid in crafted:
        p(label, data, invalid)
    step = max(1, len(base) // 150)
    for i in range(0, len(base), step):
        p("truncated at %d" % i, base[:i], None)
    for label, b in mutations(base, rng, N):
        p(label, b, None)
    # line-level mutations of the valid file
    lines = base.split(b"\n")
    subs = [b"nan", b"-1", b"1e400", b"inf", b"", b"0", b"1e-320", b"x", b"1:1 0:1",
            b"5:1 5:1", b"\xff"]
    for k in range(N):
        ls = list(lines)
        i = rng.randrange(len(ls))
        op = rng.randrange(4)
        if op == 0:
            ls.insert(i, ls[i])
            label = "line %d doubled" % (i + 1)
        elif op == 1 and b"=" in ls[i]:
            ls[i] = ls[i].replace(b"=", b" ", 1)
            label = "line %d without =" % (i + 1)
        elif op == 2 and b"=" in ls[i]:
            v = subs[rng.randrange(len(subs))]
            ls[i] = ls[i].split(b"=")[0] + b"= " + v
            label = "line %d value %r" % (i + 1, v)
        else:
            ls[i] = ls[i][: rng.randrange(len(ls[i]) + 1)]
            label = "line %d cut" % (i + 1)
        p(label, b"\n".join(ls), None)


# ---- import ---------------------------------------------------------------
def esft_line_ok(line):
    if line == b"":
        return True
    if b"\t\t" not in line:
        return False
    a, b = line.split(b"\t\t", 1)
    ids, ws = a.split(b"\t"), b.split(b"\t")
    if len(ids) != len(ws) or len(ids) % 6:
        return False
    for x in ids:
        if not re.fullmatch(rb"[0-9]+", x) or int(x) > 63:
            return False
    for k in range(0, len(ids), 6):
        if len(set(int(x) for x in ids[k:k + 6])) != 6:
            return False
    for x in ws:
        if not re.fullmatch(rb"[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?", x):
            return False
        if not 0 <= float(x) <= 1:
            return False
    return True


def esft_dir_ok(d):
    names = sorted(os.listdir(d))
    want = ["expert_weights_%d.txt" % l for l in range(1, 27)]
    if sorted(n for n in names if n.startswith("expert_weights_")) != sorted(want):
        return None  # no reference for odd names
    shape = None
    for n in want:
        data = open(os.path.join(d, n), "rb").read()
        ls = [l.rstrip(b"\r") for l in data.split(b"\n")]
        if not all(esft_line_ok(l) for l in ls):
            return False
        s = [len(l.split(b"\t\t")[0].split(b"\t")) for l in ls if l]
        if not s:
            return False
        if shape is None:
            shape = s
        elif s != shape:
            return False
    return True


def fuzz_esft(rng):
    src = os.path.join(DATA, "esft/intent")
    d = os.path.join(tmp, "esft")
    out = os.path.join(tmp, "esft-out.h5")
    base = {}
    for l in range(1, 27):
        lines = open(os.path.join(src, "expert_weights_%d.txt" % l), "rb").read().split(b"\n")
        base[l] = b"\n".join(lines[:3]) + b"\n"

    def reset():
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for l, b in base.items():
            write(os.path.join(d, "expert_weights_%d.txt" % l), b)

    def e(label, invalid, shown=None):
        if os.path.exists(out):
            os.unlink(out)
        inv = invalid
        if inv is None:
            ok = esft_dir_ok(d)
            inv = None if ok is None else not ok
        check("esft", label, ["import", "--format", "esft", d, "-o", out], d, inv,
              shown or os.path.basename(d))

    reset()
    e("valid", False)
    f1 = os.path.join(d, "expert_weights_1.txt")
    f7 = os.path.join(d, "expert_weights_7.txt")
    tok = b"1\t2\t3\t4\t5\t6\t\t0.1\t0.1\t0.1\t0.1\t0.1\t0.1"
    crafted = [
        ("layer 5 missing", lambda: os.unlink(os.path.join(d, "expert_weights_5.txt")), True),
        ("layer 27 extra", lambda: write(os.path.join(d, "expert_weights_27.txt"), base[1]), True),
        ("layer 01 extra", lambda: write(os.path.join(d, "expert_weights_01.txt"), base[1]), True),
        ("layer 01 instead of 1", lambda: os.rename(f1, os.path.join(d, "expert_weights_01.txt")),
         True),
        ("layer +7 instead of 7", lambda: os.rename(f7, os.path.join(d, "expert_weights_+7.txt")),
         True),
        ("layer 7 a directory", lambda: (os.unlink(f7), os.mkdir(f7)), True),
        ("id 64", lambda: write(f7, b"64" + tok[1:] + b"\n"), True),
        ("id -1", lambda: write(f7, b"-1" + tok[1:] + b"\n"), True),
        ("id +1", lambda: write(f7, b"+7" + tok[1:] + b"\n"), True),
        ("id ' 7'", lambda: write(f7, b" 7" + tok[1:] + b"\n"), True),
        ("id 99999999999999999999", lambda: write(f7, b"99999999999999999999" + tok[1:] + b"\n"),
         True),
        ("5 ids 6 weights", lambda: write(f7, tok.replace(b"1\t", b"", 1) + b"\n"), True),
        ("7 ids 7 weights", lambda: write(f7, b"7\t" + tok + b"\t0.1\n"), True),
        ("weight nan", lambda: write(f7, tok[:-3] + b"nan\n"), True),
        ("weight 1.5", lambda: write(f7, tok[:-3] + b"1.5\n"), True),
        ("weight -0", lambda: write(f7, tok[:-3] + b"-0\n"), None),
        ("weight hex", lambda: write(f7, tok[:-3] + b"0x0.1\n"), True),
        ("weight ' 0.1'", lambda: write(f7, tok[:-3] + b" 0.1\n"), True),
        ("weight empty", lambda: write(f7, tok[:-4] + b"\n"), True),
        ("repeated id", lambda: write(f7, tok.replace(b"2", b"1", 1) + b"\n"), True),
        ("layer 1 empty", lambda: write(f1, b""), True),
        ("all layers 1 token", lambda: [write(os.path.join(d, "expert_weights_%d.txt" % l),
                                              tok + b"\n") for l in range(1, 27)], False),
        ("all layers 20000 tokens one line", lambda: [
            write(os.path.join(d, "expert_weights_%d.txt" % l),
                  b"\t".join([tok.split(b"\t\t")[0]] * 20000) + b"\t\t" +
                  b"\t".join([tok.split(b"\t\t")[1]] * 20000) + b"\n") for l in range(1, 27)],
         False),
        ("20000 samples", lambda: [write(os.path.join(d, "expert_weights_%d.txt" % l),
                                         (tok + b"\n") * 20000) for l in range(1, 27)], False),
        ("layer 7 one sample more", lambda: write(f7, tok + b"\n" + tok + b"\n"), True),
        ("layer 7 CRLF", lambda: write(f7, tok + b"\r\n"), False),
        ("layer 7 NUL", lambda: write(f7, tok + b"\n\x00"), True),
        ("layer 7 binary", lambda: write(f7, junk(5000)), True),
        ("layer 7 5 MB line", lambda: write(f7, b"1\t" * 2500000 + b"\n"), True),
    ]
    for label, act, invalid in crafted:
        # one sample of one token in every layer, so that a bad line is
        # refused for itself, not for differing from layer 1
        reset()
        for l in range(1, 27):
            write(os.path.join(d, "expert_weights_%d.txt" % l), tok + b"\n")
        act()
        e(label, invalid)
    for l in (1, 7):
        b = base[l]
        f = os.path.join(d, "expert_weights_%d.txt" % l)
        for i in range(0, len(b), max(1, len(b) // 40)):
            reset()
            write(f, b[:i])
            e("layer %d truncated at %d" % (l, i), None)
    for k in range(N):
        reset()
        l = rng.randrange(1, 27)
        f = os.path.join(d, "expert_weights_%d.txt" % l)
        label, b = next(mutations(base[l], rng, 1))
        write(f, b)
        e("layer %d %s" % (l, label), None)
    shutil.rmtree(d, ignore_errors=True)


def sglang_valid(doc):
    if not isinstance(doc, dict) or "logical_count" not in doc:
        return False
    m = doc["logical_count"]
    if not isinstance(m, list) or not m or len(m) > 4096:  # FORMAT.md: num_layers 1..4096
        return False
    if not all(isinstance(r, list) and r for r in m) or len({len(r) for r in m}) != 1:
        return False
    for r in m:
        for x in r:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                return False
            if x < 0 or x != int(x) or x >= 2 ** 31:
                return False
    if not any(x for r in m for x in r):
        return False
    return True


def fuzz_sglang(rng):
    full = json.load(open(os.path.join(DATA, "sglang-dsv3/prefill_in1024.json")))
    small = {"logical_count": [r[:16] for r in full["logical_count"][:6]]}
    base = json.dumps(small).encode()
    path = os.path.join(tmp, "sg.json")
    out = os.path.join(tmp, "sg-out.h5")

    def s(label, data, invalid):
        if isinstance(data, str):
            data = data.encode()
        write(path, data)
        if os.path.exists(out):
            os.unlink(out)
        if invalid == "either":  # a limit of ours (EPLB_MAX_EXPERTS)
            invalid = None
        elif invalid is None:
            doc = strict_json(data)
            invalid = doc is None or not sglang_valid(doc)
        check("sglang", label, ["import", "--format", "sglang-counts", path, "-o", out,
                                "--top-k", "2"], path, invalid, "sg.json")

    crafted = [
        ("number", "5", True),
        ("NaN", '{"logical_count": [[NaN, 1]]}', True),
        ("Infinity", '{"logical_count": [[Infinity, 1]]}', True),
        ("-0", '{"logical_count": [[-0, 1]]}', False),
        ("1e400", '{"logical_count": [[1e400, 1]]}', True),
        ("2^31", '{"logical_count": [[2147483648, 1]]}', True),
        ("1.5", '{"logical_count": [[1.5, 1]]}', True),
        ("all zero", '{"logical_count": [[0, 0]]}', True),
        ("duplicate key", '{"logical_count": [[1, 1]], "logical_count": [[2, 2]]}', True),
        ("100001 layers", '{"logical_count": [' + ",".join(["[1]"] * 100001) + "]}", True),
        ("100000 x 2 max counts", '{"logical_count": [' +
         ",".join(["[2147483647,2147483647]"] * 100000) + "]}", None),
        ("1000 experts", '{"logical_count": [[' + ",".join(["1"] * 1000) + "]]}", "either"),
        ("deep", '{"logical_count": ' + "[" * 100000, True),
    ]
    for label, data, invalid in crafted:
        s(label, data, invalid)
    for i in range(0, len(base), max(1, len(base) // 80)):
        s("truncated at %d" % i, base[:i], None)
    for label, b in mutations(base, rng, N):
        s(label, b, None)


def main():
    rng = random.Random(SEED)
    for kind, fn in (("rebalance", fuzz_rebalance), ("profile", fuzz_profile),
                     ("esft", fuzz_esft), ("sglang", fuzz_sglang)):
        if kind in KINDS:
            t0 = time.time()
            fn(random.Random("%d-%s" % (SEED, kind)))
            print("%s: done in %.0f s" % (kind, time.time() - t0), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    print("inputs_fuzz: seed %d, cases %s, %d problem(s)" %
          (SEED, ", ".join("%s %d" % kv for kv in sorted(counts.items())), len(problems)))
    sys.exit(1 if problems else 0)


main()
