"""record_check.py SRCDIR OUTDIR - traces/eplb_record.py against h5py and
numpy (run by tests/test_h5py.c, which then replays the files it writes;
OUTDIR should be empty).

Writes OUTDIR/softmax.h5 (float32 logits and numpy's own top-k ids, over
two logits chunks) and OUTDIR/grouped.h5 (DeepSeek-style grouped sigmoid
with a bias, bfloat16 logits given layer by layer, phase and ranks),
reads both back with h5py and compares every value with what was given
and every stored chunk with what HDF5's own filters make of the same data
(OUTDIR/plain.h5: the same without filters); then checks that bad input raises ValueError naming the field and that a
failed recording leaves no file.  Exits non-zero on any mismatch.

With EPLB_BUILDDIR set to a build directory holding eplb-replay, the
traces merged with a rank idle at every pass (and that rank's own file)
are also read by `eplb-replay info` and `run`; test_h5py.c replays the
other files itself."""

import hashlib
import json
import os
import pathlib
import stat
import subprocess
import sys
import time
import warnings

import h5py
import numpy as np

sys.path.insert(0, os.path.join(sys.argv[1], "traces"))
from eplb_record import TraceRecorder, merge_ranks  # noqa: E402

out = sys.argv[2]
rng = np.random.default_rng(11)


def distinct_logits(T, L, E):
    """Rows of distinct logits 0.05 apart (a shuffled grid): no two experts'
    scores come within rounding of each other, so every router agrees."""
    grid = (np.arange(E, dtype=np.float32) * np.float32(0.05) - np.float32(3))
    return grid[np.argsort(rng.random((T, L, E)), axis=2)]


def bf16_round(x):
    b = np.ascontiguousarray(x, np.float32).view(np.uint32)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return b.astype(np.uint32).view(np.float32)


def expect_error(fn, *words):
    try:
        fn()
    except ValueError as e:
        for w in words:
            assert w in str(e), f"{e!r} lacks {w!r}"
        return
    raise AssertionError(f"no ValueError (wanted {words})")


# ---- softmax, float32, whole steps; more rows than one logits chunk -------
L, E, K = 2, 32, 4
path = os.path.join(out, "softmax.h5")
sizes = [0, 7, 5000, 1, 12000, 300, 0, 2]  # chunk: 2 MiB / (2*32*4) = 8192 rows
given = []
with TraceRecorder(path, model="toy-softmax", num_layers=L, num_experts=E, top_k=K,
                   scoring="softmax", source="tests/record_check.py") as rec:
    assert not os.path.exists(path)
    for T in sizes:
        lg = distinct_logits(T, L, E)
        ids = np.argsort(-lg, axis=2, kind="stable")[:, :, :K]
        rec.add_step(lg, topk_ids=ids)
        given.append((lg, ids))
    assert not os.path.exists(path), "a final name before close"
assert os.path.exists(path)
assert not [n for n in os.listdir(out) if ".tmp." in n], os.listdir(out)
with h5py.File(path, "r") as f:
    assert int(f.attrs["eplb_trace_version"]) == 1
    assert (int(f.attrs["num_layers"]), int(f.attrs["num_experts"]),
            int(f.attrs["top_k"])) == (L, E, K)
    off = f["steps/token_offset"][...]
    assert list(off) == list(np.concatenate([[0], np.cumsum(sizes)])), off
    lg = f["router/logits"]
    assert lg.dtype == np.float32 and lg.chunks == (8192, L, E), (lg.dtype, lg.chunks)
    assert lg.compression == "gzip" and lg.shuffle
    assert np.array_equal(lg[...], np.concatenate([g[0] for g in given]))
    ids = f["router/topk_ids"]
    assert ids.dtype == np.uint8
    assert np.array_equal(ids[...], np.concatenate([g[1] for g in given]))
    assert "steps/phase" not in f and "tokens/src_rank" not in f



def hdf5_filtered_copy(src, dst, name, h5type=None):
    """dst/name: src's dataset written again through HDF5's own shuffle +
    deflate filters (same chunks); the recorder compresses on its own."""
    with h5py.File(src, "r") as f, h5py.File(dst, "a") as g:
        d = f[name]
        a = d[...] if h5type is None else d[...].astype(np.float32)
        if h5type is None:
            g.create_dataset(name, data=a, chunks=d.chunks, maxshape=d.maxshape,
                             shuffle=True, compression="gzip", compression_opts=4)
            return
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk(d.chunks)
        dcpl.set_shuffle()
        dcpl.set_deflate(4)
        g.require_group(os.path.dirname(name))
        space = h5py.h5s.create_simple(a.shape, (h5py.h5s.UNLIMITED,) + a.shape[1:])
        ds = h5py.h5d.create(g.id, name.encode(), h5type, space, dcpl=dcpl)
        bits = (bf16_round(a).view(np.uint32) >> 16).astype(np.uint16)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, bits, mtype=h5type)


def same_chunks(a, b, name):
    """Every stored chunk of a/name equals b/name's, byte for byte."""
    with h5py.File(a, "r") as f, h5py.File(b, "r") as g:
        da, db = f[name], g[name]
        assert da.shape == db.shape and da.chunks == db.chunks
        n = 0
        for off in range(0, da.shape[0], da.chunks[0]):
            o = (off,) + (0,) * (len(da.shape) - 1)
            ca, cb = da.id.read_direct_chunk(o), db.id.read_direct_chunk(o)
            assert ca == cb, f"{name}: chunk at row {off} differs"
            n += 1
        return n


ref = os.path.join(out, "ref.h5")
for name in ("router/logits", "router/topk_ids"):
    hdf5_filtered_copy(path, ref, name)
assert same_chunks(path, ref, "router/logits") == 3  # 17310 rows, 8192 a chunk
assert same_chunks(path, ref, "router/topk_ids") == 1  # 131072 rows of 8 bytes a chunk
os.remove(ref)

# deflate=0: chunks stored as they are, no filters
path0 = os.path.join(out, "plain.h5")
with TraceRecorder(path0, model="plain", num_layers=L, num_experts=E, top_k=K,
                   scoring="softmax", source="tests/record_check.py", deflate=0,
                   threads=1) as rec:
    for lg, ids in given:
        rec.add_step(lg, topk_ids=ids)
with h5py.File(path0, "r") as f:
    d = f["router/logits"]
    assert d.compression is None and not d.shuffle
    assert np.array_equal(d[...], np.concatenate([g[0] for g in given]))
    assert np.array_equal(f["router/topk_ids"][...], np.concatenate([g[1] for g in given]))

# ---- grouped sigmoid with bias, bfloat16, layer by layer -------------------
L, E, K, G, TG = 3, 16, 4, 4, 2
path = os.path.join(out, "grouped.h5")
bias = (rng.integers(0, 4, size=(L, E)) * 0.125).astype(np.float32)
phases = ["prefill", "decode", 1, 2, "decode"]
sizes = [9, 3, 0, 40, 4]
given, ranks = [], []
rec = TraceRecorder(path, model="toy-grouped", num_layers=L, num_experts=E, top_k=K,
                    scoring="sigmoid", num_groups=G, topk_groups=TG, renormalize=True,
                    routed_scaling_factor=2.5, bias=bias, logits_dtype="bfloat16",
                    source="tests/record_check.py", model_config='{"hidden_size": 64}')
for s, T in enumerate(sizes):
    lg = (rng.normal(size=(T, L, E)) * 3).astype(np.float32)
    for l in reversed(range(L)):  # any order; [1, T, E] is flattened
        rec.add_layer(l, lg[:, l, :].reshape(1, T, E))
    r = rng.integers(0, 4, size=T)
    rec.end_step(phase=phases[s], src_rank=r)
    given.append(lg)
    ranks.append(r)
rec.close()
with h5py.File(path, "r") as f:
    assert f.attrs["scoring"] == "sigmoid" and int(f.attrs["num_groups"]) == G
    assert int(f.attrs["topk_groups"]) == TG and int(f.attrs["renormalize"]) == 1
    assert float(f.attrs["routed_scaling_factor"]) == 2.5
    assert f.attrs["model_config"] == '{"hidden_size": 64}'
    assert np.array_equal(f["router/e_score_correction_bias"][...], bias)
    d = f["router/logits"]
    t = d.id.get_type()
    assert (t.get_size(), t.get_fields(), t.get_ebias()) == (2, (15, 7, 8, 0, 7), 127)
    want = bf16_round(np.concatenate(given))
    assert np.array_equal(d[...].astype(np.float32), want)
    assert list(f["steps/phase"][...]) == [0, 1, 1, 2, 1]
    assert np.array_equal(f["tokens/src_rank"][...], np.concatenate(ranks))
    assert f["tokens/src_rank"].dtype == np.uint16
    for name in ("router/logits", "steps/phase", "tokens/src_rank", "steps/token_offset"):
        d = f[name]  # the C writer's filters, and token_offset in 64 KiB chunks
        assert d.id.get_create_plist().get_nfilters() == 2, name  # shuffle, deflate
    assert f["steps/token_offset"].chunks == (8192,)
    assert "router/topk_ids" not in f
ref = os.path.join(out, "ref.h5")
hdf5_filtered_copy(path, ref, "router/logits", h5type=t)
hdf5_filtered_copy(path, ref, "tokens/src_rank")
assert same_chunks(path, ref, "router/logits") == 1  # a partial chunk, zero filled
assert same_chunks(path, ref, "tokens/src_rank") == 1
os.remove(ref)

# ---- bad input -------------------------------------------------------------
bad = os.path.join(out, "bad.h5")
kw = dict(model="m", num_layers=2, num_experts=8, top_k=2, scoring="softmax", source="t")
expect_error(lambda: TraceRecorder(bad, **dict(kw, num_groups=3)), "num_groups")
expect_error(lambda: TraceRecorder(bad, **dict(kw, top_k=9)), "top_k")
expect_error(lambda: TraceRecorder(bad, **dict(kw, num_groups=4, topk_groups=1, top_k=3)),
             "top_k", "the 2 experts of the kept groups")
expect_error(lambda: TraceRecorder(bad, **dict(kw, scoring="relu")), "scoring")
expect_error(lambda: TraceRecorder(bad, **dict(kw, routed_scaling_factor=1e-50)),
             "routed_scaling_factor", "float32")
expect_error(lambda: TraceRecorder(bad, **dict(kw, model="x" * 128)), "model", "128 bytes")
expect_error(lambda: TraceRecorder(bad, **kw, model_config="{hidden: 1"), "model_config")
expect_error(lambda: TraceRecorder(bad, **kw, bias=np.zeros((2, 7))), "bias", "(2, 8)")
assert not os.path.exists(bad)
assert not [n for n in os.listdir(out) if ".tmp." in n], os.listdir(out)
r = TraceRecorder(bad, **kw, model_config={"hidden_size": 7168})  # a dict: stored as JSON
ok = [rng.normal(size=(3, 2, 8)).astype(np.float32) for _ in range(3)]
ids = np.tile(np.array([0, 1]), (3, 2, 1))
expect_error(lambda: r.add_step(np.zeros((3, 2, 7))), "logits", "(tokens, 2, 8)")
nan = ok[0].copy()
nan[2, 1, 5] = np.nan
expect_error(lambda: r.add_step(nan), "step 0", "token 2", "layer 1", "expert 5")
expect_error(lambda: r.add_step(ok[0], topk_ids=np.full((3, 2, 2), 8)), "outside [0, 8)")
expect_error(lambda: r.add_step(ok[0], topk_ids=np.zeros((3, 2, 2), int)), "expert twice")
expect_error(lambda: r.add_step(ok[0], topk_ids=ids.astype(float)), "integers")
w = np.ones((3, 2, 2), np.float32)
w[1, 0, 1] = np.inf
expect_error(lambda: r.add_step(ok[0], topk_ids=ids, topk_weights=w), "token 1", "layer 0",
             "column 1")
expect_error(lambda: r.add_step(ok[0], topk_weights=np.ones((3, 2, 2))), "without topk_ids")
expect_error(lambda: r.add_step(ok[0], phase="train"), "phase")
r16 = TraceRecorder(bad + "16", **kw, logits_dtype="bfloat16")
big16 = ok[0].copy()
big16[1, 1, 3] = -3.4e38  # finite as a float32, past bfloat16's largest
expect_error(lambda: r16.add_step(big16), "token 1", "layer 1", "expert 3", "bfloat16")
r16.abort()
expect_error(lambda: r.add_step(ok[0], src_rank=[0, 1, 70000]), "token 2", "70000")
expect_error(lambda: r.add_step(ok[0], src_rank=[0, -1, 0]), "token 1", "-1")
expect_error(lambda: r.add_step(ok[0], src_rank=[0, 1]), "src_rank")
r.add_step(ok[0])  # the refused steps left nothing behind
expect_error(lambda: r.add_step(ok[1], phase="decode"), "phase", "every step or none")
expect_error(lambda: r.add_step(ok[1], topk_ids=ids), "topk_ids", "every step or none")
# a refused end_step uses its layers up: the next step starts clean
r.add_layer(0, np.zeros((4, 8)))
expect_error(lambda: r.end_step(), "layer(s) [1]")
r.add_layer(0, np.zeros((4, 8)))
r.add_layer(1, np.zeros((5, 8)))
expect_error(lambda: r.end_step(), "layer 1", "5 tokens")
expect_error(lambda: r.add_layer(2, np.zeros((4, 8))), "layer")
buf = np.empty((3, 8), np.float32)  # one buffer for every layer, as an engine may
for l in range(2):
    buf[...] = ok[1][:, l]
    r.add_layer(l, buf)
r.end_step()
r.add_layer(0, ok[2][:, 0])  # a pass after the last end_step: dropped with a warning
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    r.close()
assert any("dropped" in str(c.message) for c in caught), [str(c.message) for c in caught]
with h5py.File(bad, "r") as f:
    assert list(f["steps/token_offset"][...]) == [0, 3, 6]
    assert np.array_equal(f["router/logits"][...], np.concatenate(ok[:2]))
    assert json.loads(f.attrs["model_config"]) == {"hidden_size": 7168}
os.remove(bad)

# add_step keeps what it was given, not a view of the caller's array
path = os.path.join(out, "reuse.h5")
with TraceRecorder(path, **dict(kw, model="reuse")) as r:
    arr, given = ok[0].copy(), []
    for _ in range(3):  # from the second on, rows are pending before the step
        r.add_step(arr)
        given.append(arr.copy())
        arr += 1000  # the engine reuses its buffer
with h5py.File(path, "r") as f:
    assert np.array_equal(f["router/logits"][...], np.concatenate(given))
os.remove(path)
# and a step longer than a chunk (32768 rows of 2 x 8 floats): its whole
# chunks go out at once, the rows after them are kept as a copy
with TraceRecorder(path, **dict(kw, model="reuse")) as r:
    arr = rng.normal(size=(40000, 2, 8)).astype(np.float32)
    first = arr.copy()
    r.add_step(arr)
    arr[...] = 0
    r.add_step(arr[:5])
with h5py.File(path, "r") as f:
    assert np.array_equal(f["router/logits"][...], np.concatenate([first, arr[:5]]))
os.remove(path)

# counts-only steps (add_counts): [L, E] loads of a step of T tokens
path = os.path.join(out, "counts.h5")
want = []
with TraceRecorder(path, model="counts", num_layers=3, num_experts=16, top_k=4,
                   scoring="sigmoid", num_groups=4, topk_groups=2, source="t") as r:
    for s, T in enumerate([10, 0, 7, 25, 3, 12]):
        ids = np.stack([np.stack([rng.choice(16, 4, replace=False) for _ in range(T)])
                        if T else np.zeros((0, 4), int) for _ in range(3)])
        c = np.stack([np.bincount(ids[l].ravel(), minlength=16) for l in range(3)])
        r.add_counts(c, tokens=T, phase="decode" if s else "prefill")
        want.append(c)
    c = want[0].copy()
    expect_error(lambda: r.add_counts(c, tokens=2), "layer 0", "sums to 40",
                 "top_k x tokens = 4 x 2")
    neg = c.copy()
    neg[2, 9] = -1
    expect_error(lambda: r.add_counts(neg, tokens=10), "layer 2", "expert 9", "-1")
    expect_error(lambda: r.add_counts(c.astype(float), tokens=10), "integers")
    expect_error(lambda: r.add_counts(c[:2], tokens=10), "counts shape", "(3, 16)")
    expect_error(lambda: r.add_counts(c, tokens=10), "phase", "every step or none")
    expect_error(lambda: r.add_step(np.zeros((1, 3, 16))), "counts-only", "every step or none")
    for bad_t in (2.5, True, float("nan"), "4", None, np.array([4]), -1):
        expect_error(lambda: r.add_counts(c * 0, tokens=bad_t, phase="decode"),
                     "tokens must be an integer")
    for bad_p in (np.array(1), [1], True, "train"):
        expect_error(lambda: r.add_counts(c, tokens=10, phase=bad_p), "phase")
    over = c.astype(np.uint64)
    over[1, 2] = 1 << 31
    expect_error(lambda: r.add_counts(over, tokens=1 << 40, phase="decode"), "layer 1",
                 "expert 2", "2147483648")
    expect_error(lambda: r.add_counts(c * 0, tokens=(1 << 39) + 1, phase="decode"),
                 "past the trace's limits", str(1 << 39))
    r.add_counts(want[0], tokens=np.int64(10), phase="decode")  # numpy ints are fine
    want.append(want[0])
with h5py.File(path, "r") as f:
    d = f["load/counts"]
    assert d.dtype == np.int32 and np.array_equal(d[...], np.stack(want))
    assert list(f["steps/token_offset"][...]) == [0, 10, 10, 17, 42, 45, 57, 67]
    assert list(f["steps/phase"][...]) == [0, 1, 1, 1, 1, 1, 1]
    assert "router/logits" not in f and "router/topk_ids" not in f
r = TraceRecorder(bad, **kw)
r.add_step(ok[0])
expect_error(lambda: r.add_counts(np.zeros((2, 8), int), tokens=1), "counts-only",
             "this step only")
r.abort()

# merge_ranks: three ranks' recordings of the same 4 passes -> one trace
L3, E3 = 2, 8
rank_steps = [[5, 3, 0, 2], [4, 0, 0, 6], [1, 2, 0, 0]]
rank_phase = [["prefill", "decode", "decode", "decode"],
              ["prefill", "prefill", "prefill", "prefill"],
              ["prefill", "decode", "decode", "mixed"]]
rank_files, rank_data = [], []
for r, sizes in enumerate(rank_steps):
    p = os.path.join(out, f"rank{r}.h5")
    data = []
    with TraceRecorder(p, **dict(kw, model="ranks"), bias=None) as rec:
        for s, T in enumerate(sizes):
            lg = distinct_logits(T, L3, E3)
            i2 = np.argsort(-lg, axis=2, kind="stable")[:, :, :2]
            rec.add_step(lg, topk_ids=i2, phase=rank_phase[r][s])
            data.append((lg, i2))
    rank_files.append(p)
    rank_data.append(data)
merged = os.path.join(out, "merged.h5")
assert merge_ranks(rank_files, merged) == 4
with h5py.File(merged, "r") as f:
    sums = [sum(x[s] for x in rank_steps) for s in range(4)]
    assert list(f["steps/token_offset"][...]) == list(np.concatenate([[0], np.cumsum(sums)]))
    want_lg = np.concatenate([rank_data[r][s][0] for s in range(4) for r in range(3)])
    want_id = np.concatenate([rank_data[r][s][1] for s in range(4) for r in range(3)])
    want_rk = np.concatenate([np.full(rank_steps[r][s], r) for s in range(4) for r in range(3)])
    assert np.array_equal(f["router/logits"][...], want_lg)
    assert np.array_equal(f["router/topk_ids"][...], want_id)
    assert np.array_equal(f["tokens/src_rank"][...], want_rk)
    # all prefill; decode, prefill (rank 1 has no tokens), decode -> decode;
    # no tokens anywhere -> rank 0's; decode, prefill (rank 2 empty) -> mixed
    assert list(f["steps/phase"][...]) == [0, 1, 1, 2], list(f["steps/phase"][...])
    assert "merge_ranks of 3 ranks" in f.attrs["source"]
# the command line: python3 eplb_record.py merge OUT IN...
cli = [sys.executable, os.path.join(sys.argv[1], "traces", "eplb_record.py"), "merge"]
r = subprocess.run(cli + [merged + "2"] + rank_files, capture_output=True, text=True)
assert r.returncode == 0 and "4 steps of 3 ranks" in r.stdout, (r.returncode, r.stdout, r.stderr)
with open(merged, "rb") as a, open(merged + "2", "rb") as b:
    assert a.read() == b.read(), "merge on the command line differs from merge_ranks"
os.remove(merged + "2")
r = subprocess.run(cli + [merged + "2", rank_files[0], "no-such.h5"], capture_output=True,
                   text=True)
assert r.returncode == 1 and r.stderr.startswith("eplb_record.py merge:") and \
    "no-such.h5" in r.stderr, (r.returncode, r.stderr)
assert not os.path.exists(merged + "2")
r = subprocess.run(cli + [os.path.join(out, "no-dir", "m.h5"), rank_files[0], rank_files[1]],
                   capture_output=True, text=True)
assert r.returncode == 1 and r.stderr.startswith("eplb_record.py merge:"), r.stderr
r = subprocess.run(cli + [merged + "2"], capture_output=True, text=True)
assert r.returncode == 2 and "usage" in r.stderr, (r.returncode, r.stderr)
# a damaged chunk in an input: h5py's OSError, said as such, no traceback
damaged = os.path.join(out, "damaged.h5")
with open(rank_files[1], "rb") as f:
    raw = bytearray(f.read())
with h5py.File(rank_files[1], "r") as f:
    ci = f["router/logits"].id.get_chunk_info(0)
raw[ci.byte_offset + 8:ci.byte_offset + 40] = b"\xff" * 32
with open(damaged, "wb") as f:
    f.write(raw)
r = subprocess.run(cli + [merged + "2", rank_files[0], damaged], capture_output=True, text=True)
assert r.returncode == 1 and r.stderr.startswith("eplb_record.py merge:") and \
    "Traceback" not in r.stderr, (r.returncode, r.stderr)
assert not os.path.exists(merged + "2")
os.remove(damaged)
# a forgotten OUT would be rank 0's file: an existing OUT needs --force
with open(rank_files[0], "rb") as f:
    before = f.read()
r = subprocess.run(cli + rank_files, capture_output=True, text=True)
assert r.returncode == 2 and "is a trace: OUT comes first" in r.stderr, (r.returncode, r.stderr)
with open(rank_files[0], "rb") as f:
    assert f.read() == before
r = subprocess.run(cli + rank_files[:2], capture_output=True, text=True)  # one rank: usage
assert r.returncode == 2 and "at least two rank files" in r.stderr, (r.returncode, r.stderr)
r = subprocess.run(cli + [merged] + rank_files + ["--force"], capture_output=True, text=True)
assert r.returncode == 0, r.stderr  # --force anywhere
r = subprocess.run(cli + ["--help"], capture_output=True, text=True)
assert r.returncode == 0 and "usage" in r.stdout, (r.returncode, r.stdout)
expect_error(lambda: merge_ranks([rank_files[0], rank_files[0]], merged + "2"), "given twice")
expect_error(lambda: merge_ranks(rank_files, rank_files[1]), "rank1.h5",
             "output is one of the inputs")
link = os.path.join(out, "link.h5")
os.symlink(os.path.basename(rank_files[2]), link)
expect_error(lambda: merge_ranks(rank_files, link), "rank2.h5", "output is one of the inputs")
os.remove(link)
for p in rank_files:
    os.remove(p)


def ranks_of(tag, n, per_rank=None, steps=2):
    """n rank files of a small trace, written with the recorder; per_rank
    {r: recorder options} for rank r."""
    paths = []
    for r in range(n):
        p = os.path.join(out, f"{tag}{r}.h5")
        k = dict(kw, model="ranks")
        k.update((per_rank or {}).get(r, {}))
        with TraceRecorder(p, **k) as rec:
            for s in range(steps):
                rec.add_step(ok[(r + s) % 3][: 1 + r + s])
        paths.append(p)
    return paths


m2 = os.path.join(out, "m2.h5")
# what the inputs must agree on: bias, datasets, logits type, model_config
b1 = np.full((2, 8), 0.25, np.float32)
pa = ranks_of("bias", 2, {0: dict(bias=b1), 1: dict(bias=b1)})
assert merge_ranks(pa, m2) == 2
with h5py.File(m2, "r") as f:
    assert np.array_equal(f["router/e_score_correction_bias"][...], b1)
pb = ranks_of("biasb", 2, {0: dict(bias=b1), 1: dict(bias=b1 * 2)})
expect_error(lambda: merge_ranks(pb, m2), "biasb1.h5", "e_score_correction_bias")
pc = ranks_of("nobias", 2)
expect_error(lambda: merge_ranks([pa[0], pc[0]], m2), "nobias0.h5", "no /router/e_score_correction_bias")
pd = ranks_of("bf", 2, {0: dict(logits_dtype="bfloat16"), 1: dict(logits_dtype="bfloat16")})
assert merge_ranks(pd, m2) == 2
with h5py.File(m2, "r") as f:
    assert f["router/logits"].id.get_type().get_size() == 2  # still bfloat16
expect_error(lambda: merge_ranks([pd[0], pc[0]], m2), "nobias0.h5", "float32",
             "bfloat16")
pe = ranks_of("mc", 2, {1: dict(model_config='{"hidden_size": 64}')})
assert merge_ranks(pe, m2) == 2  # the one model_config there is
with h5py.File(m2, "r") as f:
    assert json.loads(f.attrs["model_config"]) == {"hidden_size": 64}
    assert f.attrs["source"].endswith("rank 0: t"), f.attrs["source"]
pf = ranks_of("mcx", 2, {0: dict(model_config='{"hidden_size": 32}'),
                         1: dict(model_config='{"hidden_size": 64}')})
expect_error(lambda: merge_ranks(pf, m2), "mcx1.h5", "model_config")
# every input with its own src_rank: kept; some only: refused
pg = []
for r in range(2):
    p = os.path.join(out, f"own{r}.h5")
    with TraceRecorder(p, **dict(kw, model="ranks")) as rec:
        rec.add_step(ok[0], src_rank=[5 + r] * 3)
    pg.append(p)
assert merge_ranks(pg, m2) == 1
with h5py.File(m2, "r") as f:
    assert list(f["tokens/src_rank"][...]) == [5, 5, 5, 6, 6, 6]
ph_ = os.path.join(out, "own_none.h5")
with TraceRecorder(ph_, **dict(kw, model="ranks")) as rec:
    rec.add_step(ok[0])
expect_error(lambda: merge_ranks([pg[0], ph_], m2), "own_none.h5", "no /tokens/src_rank")
# fixed-length string attributes (FORMAT.md allows them) are read as text
for p in pc:
    with h5py.File(p, "a") as f:
        for k in ("model", "scoring", "source"):
            v = f.attrs[k]
            del f.attrs[k]
            f.attrs.create(k, np.bytes_(v.encode()), dtype=h5py.string_dtype("ascii", len(v)))
assert merge_ranks(pc, m2) == 2
with h5py.File(m2, "r") as f:
    assert f.attrs["model"] == "ranks" and f.attrs["scoring"] == "softmax"
# m2 steps over what the replay holds (8192 tokens of 4096 layers x
# top-16) are refused from the offsets, before any data is read: files
# that declare 4100 tokens of ids a rank and hold no chunks
pi = []
for r in range(2):
    p = os.path.join(out, f"big{r}.h5")
    with h5py.File(p, "w") as f:
        f.attrs.update(dict(eplb_trace_version=1, model="m", num_layers=4096, num_experts=16,
                            top_k=16, scoring="softmax", num_groups=1, topk_groups=1,
                            renormalize=0, routed_scaling_factor=1.0, source="t"))
        f["steps/token_offset"] = np.array([0, 4100], np.int64)
        f.create_dataset("router/topk_ids", shape=(4100, 4096, 16), dtype=np.uint8,
                         chunks=(16, 4096, 16))
    pi.append(p)
os.remove(m2)
expect_error(lambda: merge_ranks(pi, m2), "step 0", "[4100, 4100]", "8200",
             "merge fewer ranks")
assert not os.path.exists(m2)
for p in pa + pb + pc + pd + pe + pf + pg + pi + [ph_]:
    os.remove(p)
rank_files = []
for r in range(2):  # counts-only ranks are summed
    p = os.path.join(out, f"crank{r}.h5")
    with TraceRecorder(p, **dict(kw, model="ranks")) as rec:
        for s in range(3):
            rec.add_counts(np.full((2, 8), r + s, int), tokens=8 * (r + s))
    rank_files.append(p)
cmerged = os.path.join(out, "cmerged.h5")
assert merge_ranks(rank_files, cmerged) == 3
with h5py.File(cmerged, "r") as f:
    assert np.array_equal(f["load/counts"][...],
                          np.stack([np.full((2, 8), 2 * s + 1) for s in range(3)]))
    assert list(f["steps/token_offset"][...]) == [0, 8, 32, 72]  # 0+8, 8+16, 16+24
p = os.path.join(out, "other.h5")
with TraceRecorder(p, **dict(kw, model="ranks", num_experts=16)) as rec:
    rec.add_counts(np.zeros((2, 16), int), tokens=0)
expect_error(lambda: merge_ranks([rank_files[0], p], cmerged), "other.h5", "num_experts")
with TraceRecorder(p, **dict(kw, model="ranks")) as rec:
    rec.add_counts(np.zeros((2, 8), int), tokens=0)
expect_error(lambda: merge_ranks([rank_files[0], p], cmerged), "other.h5", "1 steps",
             "has 3")
for q in rank_files + [p, cmerged]:
    os.remove(q)  # merged.h5 stays: test_h5py.c replays it with --select local

# the logits' check runs in parts on the pool: with 4 threads whatever the
# machine, steps of 0, 1, 3 and 9 rows, the bad value in the last row
with TraceRecorder(bad, **kw, threads=4) as r:
    for T in (0, 1, 3, 9):
        x = rng.normal(size=(T, 2, 8)).astype(np.float32)
        r.add_step(x)
        if T:
            x[T - 1, 1, 6] = np.inf
            expect_error(lambda: r.add_step(x), f"token {T - 1}", "layer 1", "expert 6")
os.remove(bad)
r = TraceRecorder(bad, **kw)
expect_error(lambda: r.add_step(ok[0], src_rank=[0.0, 1.0, 2.0]), "src_rank", "integers")
r.abort()

# a step past what the replay holds (tokens x L x K x 4 bytes <= 2 GiB) is
# refused before it is read: 8193 tokens of 4096 layers x top-16
big = dict(model="m", num_layers=4096, num_experts=16, top_k=16, scoring="softmax",
           source="t", record_logits=False)
r = TraceRecorder(bad, **big)
expect_error(lambda: r.add_step(topk_ids=np.zeros((8193, 4096, 16), np.uint8)),
             "8193 tokens", "at most 8192")
r.abort()

# float16 logits, E > 256 (uint16 ids), weights, phase by add_step; ids only
E2 = 300
path = os.path.join(out, "f16.h5")
steps16 = []
with TraceRecorder(path, model="wide", num_layers=2, num_experts=E2, top_k=3,
                   scoring="softmax", source="t", logits_dtype="float16") as r:
    for s, T in enumerate([4, 0, 6]):
        lg = rng.normal(size=(T, 2, E2)).astype(np.float32) * 100
        i3 = np.argsort(-lg, axis=2, kind="stable")[:, :, :3] + 0
        wt = rng.random((T, 2, 3)).astype(np.float32)
        r.add_step(lg, topk_ids=i3, topk_weights=wt, phase=s % 3)
        steps16.append((lg, i3, wt))
    hi = np.zeros((1, 2, E2), np.float32)
    hi[0, 1, 7] = 70000.0
    expect_error(lambda: r.add_step(hi, topk_ids=np.zeros((1, 2, 3), int) + [0, 1, 2],
                                    topk_weights=np.ones((1, 2, 3))),
                 "layer 1", "expert 7", "float16")
    expect_error(lambda: r.add_step(hi * 0, topk_ids=np.zeros((1, 2, 3), int) + [0, 1, 2]),
                 "topk_weights", "every step or none")
with h5py.File(path, "r") as f:
    assert f["router/logits"].dtype == np.float16
    assert np.array_equal(f["router/logits"][...],
                          np.concatenate([x[0] for x in steps16]).astype(np.float16))
    assert f["router/topk_ids"].dtype == np.uint16
    assert np.array_equal(f["router/topk_ids"][...], np.concatenate([x[1] for x in steps16]))
    assert np.array_equal(f["router/topk_weights"][...],
                          np.concatenate([x[2] for x in steps16]))
    assert list(f["steps/phase"][...]) == [0, 1, 2]
path = os.path.join(out, "idsonly.h5")
with TraceRecorder(path, model="ids", num_layers=2, num_experts=E2, top_k=3, scoring="softmax",
                   source="t", record_logits=False) as r:
    for lg, i3, wt in steps16:
        r.add_step(lg, topk_ids=i3)  # the logits are not kept
with h5py.File(path, "r") as f:
    assert "router/logits" not in f
    assert np.array_equal(f["router/topk_ids"][...], np.concatenate([x[1] for x in steps16]))

# the same input twice: the same bytes (no modification times, bfloat16 too)
digests = []
for i in range(2):
    p = os.path.join(out, f"det{i}.h5")
    with TraceRecorder(p, **dict(kw, model="det"), logits_dtype="bfloat16",
                       deflate=0, threads=1 + i) as r:
        for x in ok:
            r.add_step(x)
    with h5py.File(p, "r") as f:
        assert f["steps/token_offset"].compression is None  # deflate=0: no filters at all
    digests.append(hashlib.sha256(open(p, "rb").read()).hexdigest())
    os.remove(p)
    if not i:
        time.sleep(1.1)  # a stored modification time (seconds) would now differ
assert digests[0] == digests[1], digests

# an exception inside `with` leaves neither the file nor its temporary
try:
    with TraceRecorder(bad, **kw) as r:
        r.add_step(ok[0])
        raise RuntimeError("the server stopped")
except RuntimeError:
    pass
assert not os.path.exists(bad)
assert not [n for n in os.listdir(out) if ".tmp." in n], os.listdir(out)
expect_error(lambda: TraceRecorder(bad, **kw).close(), "no steps")
assert not os.path.exists(bad)
# ---- what a user runs into (a user test's findings) ----------------------
# idle passes: a rank with no tokens records the pass all the same
path = os.path.join(out, "idle.h5")
with TraceRecorder(path, **dict(kw, model="idle")) as r:
    r.idle_step(phase="decode")  # before any data
    r.add_step(ok[0], phase="decode")
    r.add_layer(0, np.zeros((2, 8)))  # a dummy batch's tokens are not the rank's
    expect_error(lambda: r.idle_step(phase="decode"), "discard_step first")
    r.discard_step()
    r.idle_step(phase="decode")
    r.add_step(ok[1], phase="prefill")
with h5py.File(path, "r") as f:
    assert list(f["steps/token_offset"][...]) == [0, 0, 3, 3, 6]
    assert list(f["steps/phase"][...]) == [1, 1, 1, 0]
    assert np.array_equal(f["router/logits"][...], np.concatenate(ok[:2]))
with TraceRecorder(path, **dict(kw, model="idle")) as r:  # idle steps of a counts recording
    r.idle_step()
    r.idle_step()
    r.add_counts(np.ones((2, 8), int), tokens=4)
    r.idle_step()
with h5py.File(path, "r") as f:
    c = f["load/counts"][...]
    assert c.shape == (4, 2, 8) and c[2].sum() == 16 and c.sum() == 16
with TraceRecorder(path, **dict(kw, model="idle")) as r:  # a rank idle all along
    r.idle_step()
with h5py.File(path, "r") as f:
    assert f["router/logits"].shape == (0, 2, 8)
os.remove(path)

# logits and ids of a layer from two hooks; a scalar src_rank; messages
ids = np.tile(np.array([0, 1]), (3, 2, 1))
with TraceRecorder(path, **dict(kw, model="hooks2")) as r:
    r.add_layer(0, logits=ok[0][:, 0])
    r.add_layer(0, topk_ids=ids[:, 0])
    expect_error(lambda: r.add_layer(0, logits=ok[0][:, 0]), "logits given twice",
                 "call end_step")
    r.add_layer(1, logits=ok[0][:, 1], topk_ids=ids[:, 1])
    r.end_step(src_rank=3)  # every token of the step from rank 3
with h5py.File(path, "r") as f:
    assert np.array_equal(f["router/topk_ids"][...], ids)
    assert list(f["tokens/src_rank"][...]) == [3, 3, 3]
os.remove(path)
r = TraceRecorder(path, **dict(kw, model="ids"), record_logits=False)
expect_error(lambda: r.add_step(ok[0]), "record_logits=False keeps only topk_ids")
r.abort()

# model_config: a file, an object with to_dict(), numpy numbers in a dict


class HFConfig:
    def to_dict(self):
        return {"hidden_size": np.int64(64), "moe_intermediate_size": 32}


cfg = os.path.join(out, "config.json")
with open(cfg, "w") as f:
    f.write('{"hidden_size": 64, "moe_intermediate_size": 32}')
for mc in (cfg, HFConfig(), {"hidden_size": np.int64(64), "moe_intermediate_size": 32}):
    with TraceRecorder(path, **dict(kw, model="mc"), model_config=mc) as r:
        r.add_step(ok[0])
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["model_config"]) == {"hidden_size": 64,
                                                       "moe_intermediate_size": 32}
os.remove(cfg)
expect_error(lambda: TraceRecorder(path, **kw, model_config=os.path.join(out, "none.json")),
             "model_config", "neither a JSON document nor a file")
os.remove(path)

# a recorder never closed says where its steps are
r = TraceRecorder(path, **kw)
r.add_step(ok[0])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    tmp_name = r.tmp
    r.__del__()
assert any("never closed" in str(c.message) for c in caught), caught
r.abort()
assert not os.path.exists(tmp_name)

# ---- hook_gates: a stand-in module (no torch needed), then torch if present
class Gate:
    """Calls its hooks as torch does: hook(module, inputs, output)."""

    def __init__(self):
        self.hooks = []

    def register_forward_hook(self, fn):
        self.hooks.append(fn)
        gate = self

        class Handle:
            def remove(self):
                gate.hooks.remove(fn)

        return Handle()

    def __call__(self, x, as_tuple):
        out = (x, None) if as_tuple else x  # vLLM's ReplicatedLinear: a tuple
        for fn in self.hooks:
            fn(self, (x,), out)


path = os.path.join(out, "hooked.h5")
gates = [Gate(), Gate()]
steps = []
with TraceRecorder(path, **dict(kw, model="hooked"), logits_dtype="bfloat16") as r:
    handles = r.hook_gates(gates)
    for s in range(3):
        lg = rng.normal(size=(s + 1, 2, 8)).astype(np.float32)
        gates[0](lg[:, 0], as_tuple=True)
        gates[1](lg[:, 1], as_tuple=False)
        r.end_step()
        steps.append(lg)
    for h in handles:
        h.remove()
with h5py.File(path, "r") as f:
    # bfloat16 without a bias: /router is made for the low-level dataset
    assert np.array_equal(f["router/logits"][...].astype(np.float32),
                          bf16_round(np.concatenate(steps)))
os.remove(path)
r = TraceRecorder(bad, **kw)
expect_error(lambda: r.hook_gates([Gate()]), "1 modules for 2 layers")
r.abort()



class FakeTensor:
    """What _host sees of a CPU torch tensor: detach/float/cpu/numpy, the
    numpy view sharing the tensor's memory."""

    def __init__(self, a, dtype="torch.bfloat16"):
        self.a, self.dtype = a, dtype

    def detach(self):
        return self

    def float(self):
        return FakeTensor(self.a, "torch.float32")

    def cpu(self):
        return self

    def numpy(self):
        return self.a


path = os.path.join(out, "fake_torch.h5")
with TraceRecorder(path, **dict(kw, model="fake-torch"), logits_dtype="bfloat16",
                   bias=[FakeTensor(np.full(8, 0.5, np.float32)) for _ in range(2)]) as r:
    r.hook_gates(gates)
    mem = np.empty((1, 2, 8), np.float32)  # the engine's buffer, reused in place
    want = []
    for s in range(3):
        x = rng.normal(size=(2, 8)).astype(np.float32)
        mem[0] = x
        gates[0](FakeTensor(mem), as_tuple=True)
        want.append(x.copy())
        mem[0] = x + 100  # changed after the hook
        gates[1](FakeTensor(mem), as_tuple=False)
        want[-1] = np.stack([x, x + 100], 1)  # [T, L, E]
        r.end_step()
with h5py.File(path, "r") as f:
    assert np.array_equal(f["router/e_score_correction_bias"][...], np.full((2, 8), 0.5))
    got = f["router/logits"][...].astype(np.float32)
    assert np.array_equal(got, bf16_round(np.concatenate(want))), "tensor values changed"
os.remove(path)

# ---- robustness (an audit's findings) --------------------------------------
tool = [sys.executable, os.path.join(sys.argv[1], "traces", "eplb_record.py")]
# the command line: bad arguments are usage errors (2), no traceback
for args, word in ((["abc"], "STEPS"), (["1e3"], "STEPS"), (["0"], "STEPS"), (["-3"], "STEPS"),
                   (["1", "-5"], "TOKENS"), (["1", "0"], "TOKENS"),
                   (["1", "1", out, "extra"], "at most STEPS, TOKENS and DIR"),
                   (["1", "1", os.path.join(out, "no-dir")], "DIR")):
    r = subprocess.run(tool + ["bench"] + args, capture_output=True, text=True, cwd=out)
    assert r.returncode == 2 and word in r.stderr and "usage" in r.stderr and \
        "Traceback" not in r.stderr, (args, r.returncode, r.stderr)
r = subprocess.run(tool + ["bench", "1", "1", out], capture_output=True, text=True)
assert r.returncode == 0 and all(json.loads(x)["steps"] == 1 for x in r.stdout.splitlines()), \
    (r.returncode, r.stdout, r.stderr)
pm = [os.path.abspath(p) for p in ranks_of("cli", 2)]  # run from OUTDIR below
for args in (["--bogus"], ["-o", "cm.h5"], ["--deflate", "0", "cm.h5"]):
    r = subprocess.run(tool + ["merge"] + args + pm, capture_output=True, text=True, cwd=out)
    assert r.returncode == 2 and f"unknown option '{args[0]}'" in r.stderr and \
        "usage" in r.stderr, (args, r.returncode, r.stderr)
    assert not os.path.exists(os.path.join(out, args[0])) and \
        not os.path.exists(os.path.join(out, "cm.h5")), os.listdir(out)
r = subprocess.run(tool + ["merge", "--", "-cm.h5"] + pm, capture_output=True, text=True, cwd=out)
assert r.returncode == 0 and os.path.isfile(os.path.join(out, "-cm.h5")), r.stderr
os.remove(os.path.join(out, "-cm.h5"))

# the output path: checked when the recorder is made, not lost at close
here = os.getcwd()
os.chdir(out)
try:
    expect_error(lambda: TraceRecorder("", **kw), "path", "empty")
    assert not [n for n in os.listdir(".") if ".tmp." in n], os.listdir(".")
finally:
    os.chdir(here)
expect_error(lambda: TraceRecorder(3, **kw), "path", "str, bytes or os.PathLike")
for p in (os.fsencode(bad), pathlib.Path(bad)):
    r = TraceRecorder(p, **kw)  # bytes: the same file as its str; os.PathLike too
    assert r.tmp == f"{os.fsdecode(p)}.tmp.{os.getpid()}", r.tmp
    r.add_step(ok[0])
    r.close()
    assert os.path.isfile(bad)
    os.remove(bad)
r = TraceRecorder(bad, **kw)
expect_error(lambda: TraceRecorder(bad, **kw), bad, "another TraceRecorder")
r.abort()
TraceRecorder(bad, **kw).abort()  # once the first is done, fine
fifo, dlink = os.path.join(out, "fifo.h5"), os.path.join(out, "dlink.h5")
os.mkfifo(fifo)
os.symlink(os.path.basename(fifo), dlink)
for p in (fifo, dlink, "/dev/null"):
    expect_error(lambda: TraceRecorder(p, **kw), p, "exists and is not a regular file")
expect_error(lambda: merge_ranks(pm, fifo), fifo, "exists and is not a regular file")
assert stat.S_ISFIFO(os.stat(fifo).st_mode)
os.remove(dlink)
os.remove(fifo)
expect_error(lambda: TraceRecorder(out, **kw), out, "is a directory")
expect_error(lambda: TraceRecorder(os.path.join(out, "no-dir", "x.h5"), **kw), "no directory")
ro = os.path.join(out, "ro")
os.mkdir(ro)
os.chmod(ro, 0o500)
real_access = os.access
if os.geteuid() == 0:  # root writes anywhere: a directory access() refuses
    os.access = lambda p, m, **k: False if p == ro else real_access(p, m, **k)
try:
    expect_error(lambda: TraceRecorder(os.path.join(ro, "x.h5"), **kw), "not writable")
finally:
    os.access = real_access
    os.rmdir(ro)

# arguments that are not what they claim: refused, named, numbers shown plainly
for k, v in (("num_experts", 8.7), ("top_k", 2.9), ("num_layers", True), ("threads", 2.5),
             ("deflate", 1.5), ("num_experts", float("nan")), ("num_groups", np.float64(1)),
             ("topk_groups", "1"), ("renormalize", np.array([1, 0])), ("renormalize", 2),
             ("record_logits", np.array([1, 1])), ("scoring", np.array(["softmax", "x"])),
             ("routed_scaling_factor", np.array([2.5, 1.0])), ("logits_dtype", None),
             ("model", "a\0b"), ("source", "x\0"), ("model", None)):
    expect_error(lambda: TraceRecorder(bad, **dict(kw, **{k: v})), k)
expect_error(lambda: TraceRecorder(bad, **dict(kw, model="a\0b")), "NUL")
try:
    TraceRecorder(bad, **dict(kw, top_k=np.int64(16)))
    raise AssertionError("top_k 16 of 8 experts taken")
except ValueError as e:
    assert "(got 16)" in str(e) and "np." not in str(e), e
with TraceRecorder(bad, **dict(kw, num_layers=np.int64(2), num_experts=np.int32(8),
                               top_k=np.uint8(2), threads=np.int64(2), deflate=np.int8(1),
                               renormalize=np.bool_(True), record_logits=1)) as r:
    r.add_layer(np.int64(0), ok[0][:, 0])  # numpy integers are integers
    for l in (-0.5, 0.9, True, 1.0, "1", np.array([1]), 2, -1):
        expect_error(lambda: r.add_layer(l, ok[0][:, 1]), "step 0", "layer",
                     "must be an integer")
    r.add_layer(1, ok[0][:, 1])
    r.end_step()
    for dt in (bool, complex, object, "U4"):
        x = ok[1].astype(dt)
        expect_error(lambda: r.add_step(x), "step 1", "logits", str(np.dtype(dt)))
        expect_error(lambda: r.add_layer(0, x[:, 0]), "step 1, layer 0", "logits",
                     str(np.dtype(dt)))
    i2 = np.tile(np.array([0, 1]), (3, 2, 1))
    expect_error(lambda: r.add_step(ok[1], topk_ids=i2, topk_weights=np.full((3, 2, 2), "1")),
                 "topk_weights", "<U1")
    try:
        r.add_step(ok[1], phase=np.int64(7))
        raise AssertionError("phase 7 taken")
    except ValueError as e:
        assert "(got 7)" in str(e), e
with h5py.File(bad, "r") as f:
    assert int(f.attrs["renormalize"]) == 1 and f["router/logits"].shape == (3, 2, 8)
os.remove(bad)
for b in (np.zeros((2, 8), bool), np.zeros((2, 8), complex)):
    expect_error(lambda: TraceRecorder(bad, **kw, bias=b), "bias", str(b.dtype))
assert not os.path.exists(bad)
assert not [n for n in os.listdir(out) if ".tmp." in n], os.listdir(out)

# merge_ranks of damaged inputs: the input and the dataset named
pq = ranks_of("dmg", 2, steps=3)  # rank 1: 2, 3, 3 tokens


def damaged(edit):
    """A copy of rank 1's file, edited with h5py."""
    p = os.path.join(out, "dmg.h5")
    with open(pq[1], "rb") as a, open(p, "wb") as b:
        b.write(a.read())
    with h5py.File(p, "a") as f:
        edit(f)
    return p


def set_offsets(f, o):
    del f["steps/token_offset"]
    f["steps/token_offset"] = np.array(o)  # int64, or float64 where o says so


def replace(f, name, a):
    del f[name]
    f[name] = a


m3 = os.path.join(out, "m3.h5")
for edit, words in (
        (lambda f: set_offsets(f, [0, 5, 3, 8]), ("/steps/token_offset", "decreases at step 1")),
        (lambda f: set_offsets(f, [0, 2, 5, 10 ** 6]), ("/steps/token_offset", "/router/logits",
                                                        "8 rows")),
        (lambda f: set_offsets(f, [1, 2, 5, 8]), ("/steps/token_offset", "starts at 1")),
        (lambda f: set_offsets(f, [0.0, 2, 5, 8]), ("/steps/token_offset", "integers")),
        (lambda f: replace(f, "router/logits", np.zeros((8, 2, 7), np.float32)),
         ("/router/logits", "(8, 2, 7)", "(8, 2, 8)")),
        (lambda f: replace(f, "router/logits", np.zeros((8, 2, 8), np.int32)),
         ("/router/logits", "floats")),
        (lambda f: replace(f, "router/logits", np.zeros((8, 2, 8), np.float64)),
         ("/router/logits", "8-byte floats")),
        (lambda f: f.attrs.__setitem__("top_k", np.array([2, 2])), ("'top_k'", "array"))):
    p = damaged(edit)
    expect_error(lambda: merge_ranks([pq[0], p], m3), "dmg.h5", *words)
    assert not os.path.exists(m3)
p = damaged(lambda f: f.attrs.__setitem__("num_experts", np.int64(16)))
try:
    merge_ranks([pq[0], p], m3)
    raise AssertionError("num_experts 16 and 8 merged")
except ValueError as e:
    assert "num_experts = 16" in str(e) and "np." not in str(e), e
for p in (pq[0], pq[1]):  # the attributes as the recorder takes them, the file named
    with h5py.File(p, "a") as f:
        f.attrs["num_layers"] = 2.0
expect_error(lambda: merge_ranks(pq, m3), "dmg0.h5", "num_layers", "must be an integer")
os.remove(os.path.join(out, "dmg.h5"))

# a rank idle at every pass (idle_step only: no tokens, no counts) fixes no
# level: its empty dataset is merged with counts-only ranks and with ranks
# that recorded ids beside bfloat16 logits
pidle = os.path.join(out, "idle_rank.h5")
with TraceRecorder(pidle, **dict(kw, model="ranks")) as r:
    for s in range(3):
        r.idle_step(phase="decode")
with h5py.File(pidle, "r") as f:
    assert f["router/logits"].shape == (0, 2, 8)  # valid alone (a level, empty)
pcnt = []
for q in range(2):
    p = os.path.join(out, f"cnt{q}.h5")
    with TraceRecorder(p, **dict(kw, model="ranks")) as r:
        for s in range(3):
            r.add_counts(np.full((2, 8), q + s, int), tokens=8 * (q + s), phase="decode")
    pcnt.append(p)
cm = os.path.join(out, "idle_counts.h5")
for order in ([pcnt[0], pidle, pcnt[1]], [pidle] + pcnt):
    assert merge_ranks(order, cm) == 3
    with h5py.File(cm, "r") as f:
        assert "router/logits" not in f
        assert np.array_equal(f["load/counts"][...],
                              np.stack([np.full((2, 8), 2 * s + 1) for s in range(3)]))
        assert list(f["steps/token_offset"][...]) == [0, 8, 32, 72]
    os.remove(cm)
plg = []
for q in range(2):
    p = os.path.join(out, f"lg{q}.h5")
    with TraceRecorder(p, **dict(kw, model="ranks"), logits_dtype="bfloat16") as r:
        for s in range(3):
            x = distinct_logits(q + s, 2, 8)
            r.add_step(x, topk_ids=np.argsort(-x, axis=2, kind="stable")[:, :, :2],
                       phase="decode")
    plg.append(p)
lm = os.path.join(out, "idle_logits.h5")
assert merge_ranks([pidle] + plg, lm) == 3
with h5py.File(lm, "r") as f:
    assert f["router/logits"].id.get_type().get_size() == 2  # the ranks' bfloat16
    assert f["router/topk_ids"].shape == (9, 2, 2)
    assert list(f["tokens/src_rank"][...]) == [2, 1, 2, 2, 1, 1, 2, 2, 2]
    assert list(f["steps/phase"][...]) == [1, 1, 1]
replay = os.path.join(os.environ.get("EPLB_BUILDDIR", ""), "eplb-replay")
if os.environ.get("EPLB_BUILDDIR") and os.access(replay, os.X_OK):
    assert merge_ranks([pcnt[0], pidle, pcnt[1]], cm) == 3
    for p in (lm, cm, pidle):  # merged with an idle rank; the idle rank alone
        for cmd in (["info", p, "--json"], ["run", p, "--gpus", "4", "--device", "cpu",
                                           "--policy-time", "0", "--quiet"]):
            r = subprocess.run([replay] + cmd, capture_output=True, text=True)
            assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    print("record_check: merged idle ranks read by eplb-replay info and run")
with h5py.File(pidle, "a") as f:  # the phase is not a level: it must still agree
    del f["steps/phase"]
expect_error(lambda: merge_ranks([pidle] + plg, cm), "idle_rank.h5", "no /steps/phase")
for p in pm + pq + pcnt + plg + [pidle, lm, cm]:
    if os.path.exists(p):
        os.remove(p)

# ---- boundaries and rarer options (a mutation test's findings) -------------
# each expected value below is worked out by hand from traces/FORMAT.md
bnd = os.path.join(out, "bounds.h5")
# bfloat16 rounds to nearest, ties to even: 1 + 2^-8 (0x3F808000) lies half
# way between 1.0 (0x3F80, even) and 1 + 2^-7 (0x3F81): 1.0; 1 + 3 * 2^-8
# (0x3F818000) between 0x3F81 (odd) and 0x3F82: 1 + 2^-6; 1 + 2^-8 + 2^-23
# is past the half way mark: 1 + 2^-7; the same for negative values
tie = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -23], np.float32)
row = np.zeros((2, 2, 8), np.float32)
row[0, 0, :3], row[1, 1, :3] = tie, -tie
with TraceRecorder(bnd, **dict(kw, model="ties"), logits_dtype="bfloat16") as r:
    r.add_step(row)
with h5py.File(bnd, "r") as f:
    got = f["router/logits"][...].astype(np.float32)  # h5py converts the bfloat16
    want = [1.0, 1 + 2 ** -6, 1 + 2 ** -7]
    assert list(got[0, 0, :3]) == want and list(got[1, 1, :3]) == [-v for v in want], got
    assert not got[0, 0, 3:].any() and not got[1, 0].any()
# the stored types' largest finite values are taken, and kept: 65504 for
# float16, (2 - 2^-7) x 2^127 for bfloat16
for dt, top in (("float16", 65504.0), ("bfloat16", (2 - 2 ** -7) * 2.0 ** 127)):
    x = np.zeros((1, 2, 8), np.float32)
    x[0, 0, 0], x[0, 1, 7] = top, -top
    with TraceRecorder(bnd, **dict(kw, model="top"), logits_dtype=dt) as r:
        r.add_step(x)
    with h5py.File(bnd, "r") as f:
        assert np.array_equal(f["router/logits"][...].astype(np.float32), x), dt
# a step holding 65504 and 70000 (float16): the one past the range is named
x = np.zeros((1, 2, 8), np.float32)
x[0, 0, 0], x[0, 1, 7] = 65504.0, 70000.0
with TraceRecorder(bnd, **dict(kw, model="top"), logits_dtype="float16") as r:
    expect_error(lambda: r.add_step(x), "layer 1", "expert 7", "70000")
    r.add_step(x * 0)
# E = 256 is the last count of uint8 ids (FORMAT.md: uint8 if E <= 256), and
# 512 experts are allowed (Limits); src_rank 65535 is the last uint16 rank
for e, want_dt in ((256, np.uint8), (512, np.uint16)):
    i3 = np.array([[[e - 1, 0, 7], [1, e - 2, 3]]])  # one token, 2 layers, top-3
    with TraceRecorder(bnd, model="wide", num_layers=2, num_experts=e, top_k=3,
                       scoring="softmax", source="t", record_logits=False) as r:
        r.add_step(topk_ids=i3, src_rank=65535)
    with h5py.File(bnd, "r") as f:
        d = f["router/topk_ids"]
        assert d.dtype == want_dt and d[...].tolist() == i3.tolist(), (e, d.dtype, d[...])
        assert f["tokens/src_rank"][...].tolist() == [65535]
# ids that are not experts: -1 (a padding id) and a repeat in the last pair of a
# top-4 row (sorted: 1, 5, 6, 6), named by token and layer
with TraceRecorder(bnd, **dict(kw, model="ids4", top_k=4)) as r:
    good = np.tile(np.array([0, 1, 2, 3]), (2, 2, 1))
    neg = good.copy()
    neg[1, 0, 3] = -1
    expect_error(lambda: r.add_step(ok[0][:2], topk_ids=neg), "token 1", "layer 0",
                 "column 3", "-1", "outside [0, 8)")
    dup = good.copy()
    dup[0, 1] = [6, 1, 6, 5]
    expect_error(lambda: r.add_step(ok[0][:2], topk_ids=dup), "token 0", "layer 1",
                 "expert twice")
    # weights of another float type are stored as float32 (FORMAT.md)
    r.add_step(ok[0][:2], topk_ids=good, topk_weights=np.full((2, 2, 4), 0.25, np.float16))
    # two bad logits: the first one (in token, layer, expert order) is named
    two = ok[1].copy()
    two[0, 1, 6], two[2, 0, 1] = np.inf, np.nan
    expect_error(lambda: r.add_step(two, topk_ids=np.tile(good[:1], (3, 1, 1)),
                                    topk_weights=np.ones((3, 2, 4))),
                 "token 0", "layer 1", "expert 6", "inf")
with h5py.File(bnd, "r") as f:
    w = f["router/topk_weights"]
    assert w.dtype == np.float32 and (w[...] == 0.25).all()
# a count of 2^31 - 1 (int32's largest) is a count; 2^31 is not (above)
c = np.zeros((2, 8), np.int64)
c[1, 4] = (1 << 31) - 1
with TraceRecorder(bnd, **dict(kw, model="cnt")) as r:
    r.add_counts(c, tokens=1 << 30)  # top-2 x 2^30 tokens >= 2^31 - 1
with h5py.File(bnd, "r") as f:
    assert f["load/counts"][...].tolist() == [c.tolist()]
# a model name is limited in bytes: 64 two-byte characters are 128 bytes
expect_error(lambda: TraceRecorder(bnd, **dict(kw, model="é" * 64)), "model", "128 bytes")
TraceRecorder(bnd, **dict(kw, model="é" * 63 + "x")).abort()  # 127 bytes
# deflate 1 and 9 are zlib levels like 4: what is read back is what was given
for lv in (1, 9):
    for dt in ("float32", "bfloat16"):
        x = bf16_round(ok[2])  # exact in bfloat16 too
        with TraceRecorder(bnd, **dict(kw, model="lv"), logits_dtype=dt, deflate=lv) as r:
            r.add_step(x, src_rank=[0, 1, 2])
        with h5py.File(bnd, "r") as f:
            assert np.array_equal(f["router/logits"][...].astype(np.float32), x), (lv, dt)
            assert f["tokens/src_rank"][...].tolist() == [0, 1, 2], lv
            assert f["router/logits"].compression_opts == lv or dt == "bfloat16"
# a rank idle all along stores an empty dataset of its level's type: ids of
# 300 experts are uint16, float16 logits float16
with TraceRecorder(bnd, model="wide", num_layers=2, num_experts=300, top_k=3,
                   scoring="softmax", source="t", record_logits=False) as r:
    r.idle_step()
with h5py.File(bnd, "r") as f:
    assert f["router/topk_ids"].shape == (0, 2, 3) and f["router/topk_ids"].dtype == np.uint16
with TraceRecorder(bnd, **dict(kw, model="idle16"), logits_dtype="float16") as r:
    r.idle_step()
with h5py.File(bnd, "r") as f:
    assert f["router/logits"].shape == (0, 2, 8) and f["router/logits"].dtype == np.float16
os.remove(bnd)
# a close() that fails (no steps) removes the temporary file at once
r = TraceRecorder(bnd, **kw)
tmp_name = r.tmp
assert os.path.exists(tmp_name)
expect_error(r.close, "no steps")
assert not os.path.exists(tmp_name) and not os.path.exists(bnd)
# the last step the reader takes is step 2^26 - 1 (FORMAT.md, Limits): the
# recorder's count set just below it rather than recording 2^26 steps
r = TraceRecorder(bnd, **kw)
r.steps = (1 << 26) - 1
r.add_step(ok[0])
expect_error(lambda: r.add_step(ok[0]), "past the trace's limits", str(1 << 26))
r.abort()
# merge: the routed_scaling_factor must agree; a bias that differs on the
# third rank only is found; one model_config spelled two ways is one
pr = ranks_of("rsf", 2, {1: dict(routed_scaling_factor=2.5)})
expect_error(lambda: merge_ranks(pr, m2), "rsf1.h5", "routed_scaling_factor")
pb3 = ranks_of("bias3", 3, {0: dict(bias=b1), 1: dict(bias=b1), 2: dict(bias=b1 + 1)})
expect_error(lambda: merge_ranks(pb3, m2), "bias32.h5", "e_score_correction_bias")
pj = ranks_of("mcj", 2, {0: dict(model_config='{"a": 1, "b": [2, 3]}'),
                         1: dict(model_config={"b": [2, 3], "a": 1})})
assert merge_ranks(pj, m2) == 2
with h5py.File(m2, "r") as f:
    assert json.loads(f.attrs["model_config"]) == {"a": 1, "b": [2, 3]}
for p in pr + pb3 + pj + [m2]:
    os.remove(p)

try:
    import torch
except ImportError:
    torch = None
    print("record_check: torch not installed, its part skipped")
if torch is not None:
    torch.manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    layers = [torch.nn.Linear(16, 8, bias=False).to(dev, torch.bfloat16) for _ in range(2)]
    path = os.path.join(out, "torch.h5")
    want = []
    with TraceRecorder(path, **dict(kw, model="torch"), logits_dtype="bfloat16",
                       bias=[torch.zeros(8, device=dev) for _ in range(2)]) as r:
        hooks = r.hook_gates(layers)
        with torch.no_grad():
            for s in range(4):
                x = torch.randn(3, s + 1, 16, device=dev, dtype=torch.bfloat16)
                outs = [m(x) for m in layers]  # [batch, seq, E]: flattened
                r.end_step()
                want.append(torch.stack([o.reshape(-1, 8) for o in outs], 1).float().cpu())
        for h in hooks:
            h.remove()
    with h5py.File(path, "r") as f:
        got = f["router/logits"][...].astype(np.float32)
        assert np.array_equal(got, torch.cat(want).numpy()), "torch bf16 logits changed"
    os.remove(path)
    print(f"record_check: torch part ok ({dev})")
assert not [n for n in os.listdir(out) if ".tmp." in n], os.listdir(out)
print("record_check: ok")
