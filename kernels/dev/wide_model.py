"""wide_model.py - how often the segment kernel's theta (the least second key
of the kept groups) admits more than kSegCap = 32 candidates, and how many
bisection steps seg_wide (kernels/route.cu, step 3b) needs for a theta with
K to 32 keys at or above it, on the inputs of `bench kernels` (DeepSeek-V3:
E = 256, 8 groups, top-4 groups, K = 8; logits N(0, 2), sigmoid, bias
N(0, 0.1) + 1 for --hot H experts i * E / H).  Also the candidate counts a
theta from each kept group's top-3 or top-4 would give (not built).  numpy
float32; run: python3 kernels/dev/wide_model.py [ROWS]"""
import sys
import numpy as np

E, G, TG, K, CAP, STEPS = 256, 8, 4, 8, 32, 8
rows = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
rng = np.random.default_rng(1)


def ordered(f):
    u = int(np.float32(f).view(np.uint32))
    return (~u & 0xffffffff) if u & 0x80000000 else u | 0x80000000


def unordered(u):
    b = (u & 0x7fffffff) if u & 0x80000000 else (~u & 0xffffffff)
    return np.uint32(b).view(np.float32)


def bisect(keys, th):
    """seg_wide's search: (steps, found)."""
    lo, hi = np.float32(th), np.float32(keys.max())
    for st in range(1, STEPS + 1):
        x = np.float32(np.float32(0.5) * lo + np.float32(0.5) * hi)
        if not (lo < x < hi):
            ul, uh = ordered(lo), ordered(hi)
            x = unordered(ul + (uh - ul) // 2)
        if not (lo < x < hi):
            return st, False
        c = int((keys >= x).sum())
        if c > CAP:
            lo = x
        elif c < K:
            hi = x
        else:
            return st, True
    return STEPS, False


for hot in (0, 2, 8):
    bias = rng.normal(0, 0.1, E).astype(np.float32)
    for i in range(hot):
        bias[i * E // hot] += 1
    lg = rng.normal(0, 2, (rows, E)).astype(np.float32)
    v = (1 / (1 + np.exp(-lg)) + bias).astype(np.float32)
    vg = v.reshape(rows, G, 32)
    s = -np.sort(-vg, axis=2)
    kept = np.argsort(-(s[:, :, 0] + s[:, :, 1]), axis=1, kind="stable")[:, :TG]
    kv = np.take_along_axis(vg, kept[:, :, None], axis=1).reshape(rows, -1)
    ks = np.take_along_axis(s, kept[:, :, None], axis=1)
    th = ks[:, :, 1].min(axis=1)
    n2 = (kv >= th[:, None]).sum(1)
    out = [f"hot {hot}: candidates mean {n2.mean():.2f} p99 {np.percentile(n2, 99):.0f}"
           f" max {n2.max()}, over 16 {np.mean(n2 > 16):.4f}, over 32 {np.mean(n2 > CAP):.2e}"]
    for top in (3, 4):
        t = -np.sort(-ks[:, :, :top].reshape(rows, -1), axis=1)[:, K - 1]
        n = (kv >= t[:, None]).sum(1)
        out.append(f"top-{top} theta: mean {n.mean():.2f} max {n.max()}")
    wide = np.nonzero(n2 > CAP)[0]
    res = [bisect(kv[r], th[r]) for r in wide]
    steps = np.bincount([st for st, _ in res], minlength=STEPS + 1)[1:]
    out.append(f"bisection steps 1-{STEPS}: {steps.tolist()}, not found {sum(not f for _, f in res)}")
    print("; ".join(out))
