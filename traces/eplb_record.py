"""eplb_record.py - record an eplb-replay trace (traces/FORMAT.md, schema v1)
from a running model, one forward pass ("step") at a time.

Needs numpy and h5py; torch tensors are taken as they are (moved to the
host).  Feed it whole steps, or layer by layer from hooks on the gates:

    from eplb_record import TraceRecorder

    rec = TraceRecorder("run.h5", model="DeepSeek-V3", num_layers=58,
                        num_experts=256, top_k=8, scoring="sigmoid",
                        num_groups=8, topk_groups=4, renormalize=True,
                        routed_scaling_factor=2.5, bias=bias,  # [L, E]
                        logits_dtype="bfloat16", source="my server, my load")
    with rec:                       # an exception removes the partial file
        for batch in batches:
            model(batch)            # hooks call rec.add_layer(l, logits)
            rec.end_step(phase="decode")
    # run.h5 now exists; `eplb-replay run.h5` replays it

`add_layer(l, logits)` takes one MoE layer's router logits [T, E] (leading
dimensions are flattened: [batch, seq, E] is fine) before any softmax,
sigmoid or correction bias; `end_step()` checks that every layer came with
the same T and appends the step.  `add_step(logits)` takes [T, L, E] at
once.  Either may also be given the model's own choice (`topk_ids`, and
`topk_weights`): the replay then reports how often its routing disagrees;
a layer's logits and ids may come in separate add_layer calls.
`hook_gates(modules)` registers torch forward hooks that call add_layer
for a list of gate modules, in layer order.  `add_counts(counts, tokens)`
records a step as its expert loads alone ([L, E]): a counts-only trace,
the lightest record, for the simulator and the policies.

One file per rank, every pass on every rank: `idle_step()` records a pass
in which the rank had no tokens (after discard_step() where the engine
ran a dummy batch), and `merge_ranks(paths, out)` (from a shell:
`python3 eplb_record.py merge OUT IN...`) makes one trace of them, step s
of every rank, src_rank the file's index unless every file has its own; a
rank idle at every pass fixes no level (its file's empty dataset merges
with counts-only and per-token ranks alike).

The file is written as PATH.tmp.PID and renamed to PATH by close(); until
then nothing exists under PATH, and abort() (or an exception inside
`with`) removes the temporary file.  PATH (str, bytes or os.PathLike) is
checked when the recorder is made, as `eplb-replay gen` checks its output:
not empty, not an existing directory, FIFO or device (or a link to one), in
an existing, writable directory, not recorded by another recorder of this
process.  Layers given after the last end_step (a pass not meant as a
step) are dropped by close() with a warning, or at once by
discard_step().  What add_layer and add_step are given is copied
where it is kept, so the caller may reuse its buffers.  Rows are buffered
and written one whole chunk at a time (about 2 MiB of logits, 1 MiB of
ids), each chunk shuffled and deflated (`deflate`, level 4 as the C
writer; 0: neither) on `threads` threads (default: the CPU count, at most
8) to the bytes HDF5's own filters give, so steps of a few tokens cost no
rewrites of partial chunks.

Bad input raises ValueError naming the argument, and the step, layer and
token where it applies: wrong shapes, NaN or Inf logits or weights,
logits past the stored type's range, logits, weights or a bias that are
not real numbers (bool, text, complex), sizes, layers and options that
are not integers (8.7 experts, layer 0.9, True layers; numpy integers are
integers), a NUL in model or source, ids that are not integers, outside
[0, E) or twice in one row, weights without ids, phases other than
prefill/decode/mixed (0/1/2), ranks outside [0, 65535], optional data
given for some steps only, and what the replay would refuse
(traces/FORMAT.md, Limits: a model name over 127 bytes, top_k over the
kept groups' experts, a step over 2 GiB of ids, 2^26 steps, 2^39 tokens).
A refused step writes nothing, and end_step uses its layers up either
way: the recorder goes on with the next step.  `model_config` may be a
JSON string, a dict, a Hugging Face config (to_dict()) or the path of a
config.json.
"""

import json
import operator
import os
import stat
import sys
import warnings
import weakref
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

__all__ = ["TraceRecorder", "merge_ranks"]

_PHASES = {"prefill": 0, "decode": 1, "mixed": 2, 0: 0, 1: 1, 2: 2}

# The reader's limits (traces/trace.h, traces/FORMAT.md "Limits"), checked
# here so that a recording the replay would refuse fails while it is made.
MODEL_MAX_BYTES = 127
MAX_STEPS = 1 << 26
MAX_TOKENS = 1 << 39
MAX_STEP_ID_BYTES = 2 << 30  # tokens x L x K x 4 of one step

# the recorders of this process by the real path of their output: a second
# one on the same path would share the first's PATH.tmp.PID
_RECORDING = weakref.WeakValueDictionary()


def _bf16_type():
    """bfloat16 as HDF5 has no such type: the float32 layout without its
    low 16 mantissa bits (traces/FORMAT.md, bfloat16)."""
    t = h5py.h5t.IEEE_F32LE.copy()
    t.set_fields(15, 7, 8, 0, 7)
    t.set_offset(0)
    t.set_precision(16)
    t.set_size(2)
    t.set_ebias(127)
    return t


def _bf16_bits(x):
    """float32 -> bfloat16 bits, rounded to nearest even (finite input;
    exact for values that were bfloat16 to begin with)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((b + np.uint32(0x7FFF) + ((b >> 16) & np.uint32(1))) >> 16).astype(np.uint16)


def _host(x, what):
    """A numpy array from a numpy array, a torch tensor, or a list of
    either (one per layer, say)."""
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "detach"):
        return np.stack([_host(v, what) for v in x])
    if hasattr(x, "detach"):  # torch: no import needed
        x = x.detach()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{what}: not an array ({e})") from None


def _model_config(mc):
    """model_config as stored: a JSON string, from a JSON string, a dict
    (numpy scalars as numbers), an object with to_dict() (a Hugging Face
    config) or the path of a config.json; None stays None."""
    if mc is None:
        return None
    if hasattr(mc, "to_dict"):
        mc = mc.to_dict()
    if isinstance(mc, (str, os.PathLike)) and os.path.isfile(mc):
        try:
            with open(mc, encoding="utf-8") as f:
                mc = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"model_config: cannot read {os.fspath(mc)} ({e})") from None
    if not isinstance(mc, str):
        try:
            mc = json.dumps(mc, default=lambda v: v.item() if hasattr(v, "item") else str(v))
        except (TypeError, ValueError) as e:
            raise ValueError(f"model_config: cannot be written as JSON ({e})") from None
    try:
        json.loads(mc)
    except ValueError as e:
        raise ValueError(f"model_config: neither a JSON document nor a file ({e})") from None
    return mc


def _shown(v):
    """A value as a message shows it: numpy scalars as plain numbers
    (16, not np.int64(16)), an array by its shape, long text cut."""
    if isinstance(v, np.ndarray):
        return f"an array of shape {v.shape}"
    if isinstance(v, np.generic):
        v = v.item()
    t = repr(v)
    return t if len(t) <= 80 else t[:77] + "..."


def _is_int(v):
    """A Python or numpy integer, not a bool, a float (8.7 is not 8
    experts) or an array."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _int_arg(name, v):
    """An integer argument (_is_int), as an int."""
    if not _is_int(v):
        raise ValueError(f"{name}: must be an integer (got {_shown(v)})")
    return int(v)


def _bool_arg(name, v):
    """A yes/no argument: a bool, numpy's, or an integer 0 or 1."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)) and int(v) in (0, 1):
        return bool(v)
    raise ValueError(f"{name}: must be True or False, or 1 or 0 (got {_shown(v)})")


def _text_arg(name, v):
    """A string argument the file stores (HDF5 strings hold no NUL)."""
    if not isinstance(v, str):
        raise ValueError(f"{name}: must be a string (got {_shown(v)})")
    if "\0" in v:
        raise ValueError(f"{name}: contains a NUL character (character {v.index(chr(0))}), "
                         "which an HDF5 string cannot hold")
    return v


def _model_name(model):
    """The model attribute: a string of at most 127 bytes, no NUL."""
    model = _text_arg("model", model)
    if len(model.encode()) > MODEL_MAX_BYTES:
        raise ValueError(f"model: {len(model.encode())} bytes in UTF-8, at most "
                         f"{MODEL_MAX_BYTES} (a name, not a path)")
    return model


def _real_numbers(a, what):
    """Refuse an array that does not hold real numbers: bools, strings,
    objects, complex numbers (np.asarray(..., float32) would make 0/1 of
    bools, parse strings and drop imaginary parts)."""
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{what}: must be real numbers (got dtype {a.dtype})")


def _routing_args(num_layers, num_experts, top_k, scoring, num_groups, topk_groups,
                  renormalize, routed_scaling_factor):
    """The routing attributes, checked as the reader checks them (FORMAT.md,
    Root attributes): (L, E, K, scoring, G, TG, renormalize, rsf)."""
    L = _int_arg("num_layers", num_layers)
    E = _int_arg("num_experts", num_experts)
    K = _int_arg("top_k", top_k)
    G = _int_arg("num_groups", num_groups)
    TG = G if topk_groups is None else _int_arg("topk_groups", topk_groups)
    if not 1 <= L <= 4096:
        raise ValueError(f"num_layers: must be in 1..4096 (got {L})")
    if not 1 <= E <= 512:
        raise ValueError(f"num_experts: must be in 1..512 (got {E})")
    if not 1 <= K <= min(E, 16):
        raise ValueError(f"top_k: must be in 1..{min(E, 16)} (got {K})")
    if not isinstance(scoring, str) or scoring not in ("softmax", "sigmoid"):
        raise ValueError(f"scoring: 'softmax' or 'sigmoid' (got {_shown(scoring)})")
    if not (1 <= G <= 32 and E % G == 0):
        raise ValueError(f"num_groups: must be in 1..32 and divide {E} (got {G})")
    if not 1 <= TG <= G:
        raise ValueError(f"topk_groups: must be in 1..{G} (got {TG})")
    if K > TG * (E // G):
        raise ValueError(f"top_k: {K} exceeds the {TG * (E // G)} experts of the kept "
                         f"groups (topk_groups = {TG} of num_groups = {G})")
    renorm = _bool_arg("renormalize", renormalize)
    rsf = routed_scaling_factor
    if isinstance(rsf, (bool, np.bool_)) or not isinstance(rsf, (int, float, np.integer,
                                                                 np.floating)):
        raise ValueError(f"routed_scaling_factor: must be a number (got {_shown(rsf)})")
    rsf = float(rsf)
    if not (np.isfinite(np.float32(rsf)) and np.float32(rsf) > 0):
        raise ValueError("routed_scaling_factor: must be finite and > 0 as a float32 "
                         f"(got {rsf})")
    return L, E, K, scoring, G, TG, renorm, rsf


def _out_path(path):
    """The output path as a str (str, bytes or os.PathLike), checked as the
    C writer checks it (eplb_trace_writer_check_path): not empty, not an
    existing directory, FIFO, device or link to one (close() would replace
    it), in an existing, writable directory."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ValueError(f"path: must be a str, bytes or os.PathLike (got {_shown(path)})")
    p = os.fsdecode(path)
    if not p:
        raise ValueError("path: empty")
    if "\0" in p:
        raise ValueError(f"path: {p!r} contains a NUL character")
    try:
        st = os.stat(p)  # a link: its target
    except OSError:
        st = None  # nothing there (or a dangling link, replaced as the C writer does)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{p}: " + ("is a directory" if stat.S_ISDIR(st.st_mode)
                                    else "exists and is not a regular file"))
    d = os.path.dirname(p) or "."
    if not os.path.isdir(d):
        raise ValueError(f"{p}: cannot create: no directory {d!r}")
    if not os.access(d, os.W_OK | os.X_OK):
        raise ValueError(f"{p}: cannot create: directory {d!r} is not writable")
    return p


class _Column:
    """One extendible dataset, written a whole chunk of rows at a time:
    each chunk shuffled and deflated here, on the recorder's threads (zlib
    lets go of the GIL), then stored as it is with write_direct_chunk.
    The bytes are those HDF5's own shuffle + deflate filters give
    (tests/record_check.py compares them); HDF5's pipeline ran on one
    thread at about 80 MB/s of DeepSeek-V3 logits."""

    def __init__(self, f, name, row_shape, dtype, row_bytes, chunk_bytes, pool, level,
                 h5type=None, convert=None):
        self.rows = max(1, chunk_bytes // max(1, row_bytes))
        self.level = level  # 0: stored without filters
        self.row_shape = tuple(row_shape)
        self.pool = pool
        self.pending = []
        self.npending = 0
        self.written = 0
        shape = (0,) + self.row_shape
        if h5type is None:
            self.ds = f.create_dataset(name, shape=shape, dtype=dtype,
                                       maxshape=(None,) + self.row_shape,
                                       chunks=(self.rows,) + self.row_shape,
                                       shuffle=level > 0,
                                       compression="gzip" if level else None,
                                       compression_opts=level if level else None)
            ft = np.dtype(dtype).newbyteorder("<")
            self.convert = lambda a: np.ascontiguousarray(a, dtype=ft)
            self.elsize = ft.itemsize
        else:  # a type numpy lacks (bfloat16): the low-level API
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((self.rows,) + self.row_shape)
            dcpl.set_obj_track_times(False)  # byte-identical files, as the C writer's
            if level:
                dcpl.set_shuffle()
                dcpl.set_deflate(level)
            f.require_group(os.path.dirname(name))  # the low level makes none
            space = h5py.h5s.create_simple(shape, (h5py.h5s.UNLIMITED,) + self.row_shape)
            dsid = h5py.h5d.create(f.id, name.encode(), h5type, space, dcpl=dcpl)
            self.ds = h5py.Dataset(dsid)
            self.convert = convert
            self.elsize = h5type.get_size()

    def append(self, a):
        if len(a):
            self.pending.append(a)
            self.npending += len(a)
        if self.npending >= self.rows:
            self._write(whole_chunks=True)  # keeps a copy of the rest
        elif len(a):
            self.pending[-1] = np.array(a, copy=True)  # the caller may reuse a

    def _chunk_bytes(self, a):
        """One chunk's stored bytes: shuffled (byte j of every element
        together, j = 0, 1, ...), then a zlib stream at the level; as they
        are at level 0."""
        raw = self.convert(a)
        if len(a) < self.rows:  # the last chunk: stored whole, zero filled
            full = np.zeros((self.rows,) + raw.shape[1:], raw.dtype)
            full[:len(a)] = raw
            raw = full
        if not self.level:
            return raw.tobytes()
        b = np.frombuffer(raw.tobytes(), np.uint8)
        if self.elsize > 1:
            b = b.reshape(-1, self.elsize).T
        return zlib.compress(b.tobytes(), self.level)

    def _write(self, whole_chunks):
        """Write the pending rows' whole chunks (and the last part chunk at
        the end); whole chunks inside one piece are slices of it, only a
        chunk made of several pieces is copied together."""
        if not self.npending:
            return
        parts, carry, ncarry = [], [], 0
        for a in self.pending:
            i = 0
            if ncarry:  # complete the chunk begun by earlier pieces
                i = min(self.rows - ncarry, len(a))
                carry.append(a[:i])
                ncarry += i
                if ncarry == self.rows:
                    parts.append(np.concatenate(carry))
                    carry, ncarry = [], 0
            while len(a) - i >= self.rows:
                parts.append(a[i:i + self.rows])
                i += self.rows
            if i < len(a):
                carry.append(a[i:])
                ncarry += len(a) - i
        if ncarry and not whole_chunks:
            parts.append(np.concatenate(carry))
            carry, ncarry = [], 0
        if not parts:
            return
        n = sum(len(x) for x in parts)
        self.ds.resize((self.written + n,) + self.row_shape)
        zeros = (0,) * len(self.row_shape)
        # each chunk stored as soon as it (and those before it) is ready
        for j, blob in enumerate(self.pool.map(self._chunk_bytes, parts)):
            self.ds.id.write_direct_chunk((self.written + j * self.rows,) + zeros, blob)
        self.written += n
        # what is left is kept as a copy: the last piece may be the caller's
        self.pending = [np.concatenate(carry)] if carry else []
        self.npending = ncarry

    def flush(self):
        self._write(whole_chunks=False)


class TraceRecorder:
    """Writes one trace; see the module's text."""

    def __init__(self, path, *, model, num_layers, num_experts, top_k, scoring,
                 num_groups=1, topk_groups=None, renormalize=False,
                 routed_scaling_factor=1.0, source, bias=None, logits_dtype="float32",
                 model_config=None, record_logits=True, threads=None, deflate=4):
        L, E, K, scoring, G, TG, renorm, rsf = _routing_args(
            num_layers, num_experts, top_k, scoring, num_groups, topk_groups, renormalize,
            routed_scaling_factor)
        model = _model_name(model)
        source = _text_arg("source", str(source))
        model_config = _model_config(model_config)
        if not isinstance(logits_dtype, str) or \
                logits_dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError("logits_dtype: 'float32', 'float16' or 'bfloat16' "
                             f"(got {_shown(logits_dtype)})")
        self.record_logits = _bool_arg("record_logits", record_logits)
        level = _int_arg("deflate", deflate)
        if level not in range(10):
            raise ValueError(f"deflate: a zlib level 0..9, 0 for none (got {level})")
        nt = min(8, os.cpu_count() or 1) if threads is None else _int_arg("threads", threads)
        if nt < 1:
            raise ValueError(f"threads: must be >= 1 (got {nt})")
        self.closed = True  # until the file exists: __del__ and abort have nothing to do
        self.path = _out_path(path)
        other = _RECORDING.get(os.path.realpath(self.path))
        if other is not None and not other.closed:
            raise ValueError(f"{self.path}: another TraceRecorder of this process is recording "
                             "to it (close or abort that one first)")
        self.L, self.E, self.K = L, E, K
        self.logits_dtype = logits_dtype
        self.level = level
        self.tmp = f"{self.path}.tmp.{os.getpid()}"
        try:
            self.f = h5py.File(self.tmp, "w", track_order=False)
        except OSError as e:
            raise OSError(e.errno, f"{self.path}: cannot create its temporary file {self.tmp} "
                          f"({e})") from None
        self.closed = False
        _RECORDING[os.path.realpath(self.path)] = self
        self.pool = ThreadPoolExecutor(max_workers=nt)
        self.nthreads = nt
        try:
            a = self.f.attrs
            a["eplb_trace_version"] = 1
            a["model"] = model
            a["num_layers"] = L
            a["num_experts"] = E
            a["top_k"] = K
            a["scoring"] = scoring
            a["num_groups"] = G
            a["topk_groups"] = TG
            a["renormalize"] = int(renorm)
            a["routed_scaling_factor"] = rsf
            a["source"] = source
            if model_config is not None:
                a["model_config"] = model_config
            if bias is not None:
                b = _host(bias, "bias")
                _real_numbers(b, "bias")
                b = b.astype(np.float32)
                if b.shape != (L, E):
                    raise ValueError(f"bias: shape {b.shape}, expected ({L}, {E})")
                if not np.isfinite(b).all():
                    raise ValueError("bias: NaN or Inf")
                self.f.create_dataset("router/e_score_correction_bias", data=b)
        except BaseException:
            self.abort()
            raise
        self.offsets = [0]
        self.steps = 0
        self.max_step_tokens = MAX_STEP_ID_BYTES // (L * K * 4)
        self.cols = {}
        self.layer_buf = {}
        self.has_rank = None  # every step or none
        self.has_ids = None
        self.has_weights = None
        self.has_phase = None
        self.has_counts = None
        self.leading_idle = 0  # idle steps before the first step with data
        self._flags = {}

    # ---- input ------------------------------------------------------------

    def add_layer(self, layer, logits=None, topk_ids=None, topk_weights=None):
        """One layer's router output of the current step: logits [..., E],
        optionally ids and weights [..., K]."""
        self._open_check()
        if not _is_int(layer) or not 0 <= layer < self.L:
            raise ValueError(f"step {self.steps}: layer: must be an integer in "
                             f"0..{self.L - 1} (got {_shown(layer)})")
        layer = int(layer)
        have = self.layer_buf.get(layer, {})
        rec = {}
        for name, x, last in (("logits", logits, self.E), ("topk_ids", topk_ids, self.K),
                              ("topk_weights", topk_weights, self.K)):
            if x is None:
                continue
            if name in have:  # the same pass twice: end_step was not called
                raise ValueError(f"step {self.steps}, layer {layer}: {name} given twice "
                                 "(call end_step after each forward pass, or "
                                 "discard_step to drop one)")
            a = _host(x, name)
            if name != "topk_ids":  # ids: integers, checked by add_step
                _real_numbers(a, f"step {self.steps}, layer {layer}: {name}")
            if a.ndim < 1 or a.shape[-1] != last:
                raise ValueError(f"step {self.steps}, layer {layer}: the last dimension of "
                                 f"{name} must be {last} (shape {a.shape})")
            rec[name] = np.array(a.reshape(-1, last), copy=True)  # the caller may reuse a
        # logits, ids and weights of a layer may come in separate calls (two hooks)
        self.layer_buf[layer] = {**have, **rec}

    def end_step(self, phase=None, src_rank=None):
        """Append the layers given since the last step as one step.  The
        layers are used up either way: a refused step is dropped whole."""
        self._open_check()
        try:
            parts = self._gather_layers()
        finally:
            self.layer_buf = {}
        self.add_step(**parts, phase=phase, src_rank=src_rank)

    def discard_step(self):
        """Drop the layers given since the last step (a pass not to keep)."""
        self.layer_buf = {}

    def idle_step(self, phase=None):
        """A pass in which this rank had no tokens.  With EP every rank
        takes part in every pass, and merge_ranks needs every rank's file
        to hold every pass; an engine that runs a dummy batch on an idle
        rank has its hooks see that batch: discard_step(), then this."""
        self._open_check()
        if self.layer_buf:
            raise ValueError(f"step {self.steps}: idle_step with layers pending (a dummy "
                             "batch's tokens are not the rank's: discard_step first)")
        self._flags = {}
        self._totals_check(0)
        ph = self._phase(phase)
        if self.has_counts:
            row = np.zeros((1, self.L, self.E), np.int32)
            self._col("counts", row).append(row)
        elif self.has_counts is None:
            self.leading_idle += 1  # zero rows if the recording turns out counts-only
        self._end_step(0, ph)

    def _gather_layers(self):
        missing = [l for l in range(self.L) if l not in self.layer_buf]
        if missing:
            raise ValueError(f"step {self.steps}: no data for layer(s) {missing[:8]}"
                             f"{' ...' if len(missing) > 8 else ''}")
        parts = {}
        for name in ("logits", "topk_ids", "topk_weights"):
            have = [name in self.layer_buf[l] for l in range(self.L)]
            if any(have) and not all(have):
                raise ValueError(f"step {self.steps}: {name} given for some layers only")
            if all(have):
                ts = [len(self.layer_buf[l][name]) for l in range(self.L)]
                if len(set(ts)) > 1:
                    l = next(l for l in range(self.L) if ts[l] != ts[0])
                    raise ValueError(f"step {self.steps}: layer {l}'s {name} has {ts[l]} "
                                     f"tokens, layer 0's {ts[0]}")
                parts[name] = np.stack([self.layer_buf[l][name] for l in range(self.L)],
                                       axis=1)
        return parts

    def add_step(self, logits=None, topk_ids=None, topk_weights=None, phase=None,
                 src_rank=None):
        """One whole step: logits [T, L, E], ids and weights [T, L, K]."""
        self._open_check()
        if self.layer_buf:
            raise ValueError(f"step {self.steps}: add_step with layers pending "
                             "(call end_step first)")
        s = self.steps
        T = None
        arrs = {}
        self._flags = {}
        self._same_every_step("has_counts", False, "counts-only steps (add_counts)")
        for name, x, last in (("logits", logits, self.E), ("topk_ids", topk_ids, self.K),
                              ("topk_weights", topk_weights, self.K)):
            if x is None:
                continue
            a = _host(x, name)
            if name != "topk_ids":  # ids: integers, checked below
                _real_numbers(a, f"step {s}: {name}")
            if a.ndim != 3 or a.shape[1:] != (self.L, last):
                raise ValueError(f"step {s}: {name} shape {a.shape}, expected "
                                 f"(tokens, {self.L}, {last})")
            if T is not None and a.shape[0] != T:
                raise ValueError(f"step {s}: {name} has {a.shape[0]} tokens, "
                                 f"the step's other data {T}")
            T = a.shape[0]
            arrs[name] = a
        if self.record_logits and "logits" not in arrs:
            raise ValueError(f"step {s}: logits missing (record_logits=False records "
                             "ids only)")
        if not self.record_logits:
            arrs.pop("logits", None)
            if "topk_ids" not in arrs:
                raise ValueError(f"step {s}: record_logits=False keeps only topk_ids, and "
                                 "none were given")
        if "logits" not in arrs and "topk_ids" not in arrs:
            raise ValueError(f"step {s}: neither logits nor topk_ids given")
        if "topk_weights" in arrs and "topk_ids" not in arrs:
            raise ValueError(f"step {s}: topk_weights without topk_ids (weights of which "
                             "experts?)")
        if T > self.max_step_tokens:
            raise ValueError(f"step {s}: {T} tokens; at most {self.max_step_tokens} for "
                             f"{self.L} layers x top-{self.K} (the replay holds a step's "
                             "ids, 2 GiB)")
        self._totals_check(T)
        for name, flag in (("topk_ids", "has_ids"), ("topk_weights", "has_weights")):
            self._same_every_step(flag, name in arrs, name)
        if "logits" in arrs:
            lg = np.asarray(arrs["logits"], dtype=np.float32)  # no copy: written or copied below
            lim = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38}.get(
                self.logits_dtype, float(np.finfo(np.float32).max))
            # one pass on the pool's threads (numpy lets go of the GIL): |x|
            # <= lim is false for NaN, Inf and what the stored type cannot hold
            n = -(-len(lg) // self.nthreads)  # a part per thread, of at most 4 Mi values
            n = max(1, min(n, (4 << 20) // (self.L * self.E)))
            parts = [lg[i:i + n] for i in range(0, len(lg), n)]
            fine = all(self.pool.map(lambda a: bool((np.abs(a) <= lim).all()), parts))
            bad = ~np.isfinite(lg) if not fine else np.zeros(0, bool)
            if bad.any():
                t, l, e = (int(v) for v in np.argwhere(bad)[0])
                raise ValueError(f"step {s}: logits: token {t} (of the step), layer {l}, "
                                 f"expert {e} is {lg[t, l, e]}")
            if not fine:
                big = np.abs(lg) > lim
                if big.any():
                    t, l, e = (int(v) for v in np.argwhere(big)[0])
                    raise ValueError(f"step {s}: logits: token {t} (of the step), layer {l}, "
                                     f"expert {e} is {lg[t, l, e]}, beyond "
                                     f"{self.logits_dtype}'s range ({lim:g})")
            if self.logits_dtype == "float16":
                lg = lg.astype(np.float16)
            arrs["logits"] = lg
        if "topk_ids" in arrs:
            ids = arrs["topk_ids"]
            if ids.dtype.kind not in "iu":
                raise ValueError(f"step {s}: topk_ids must be integers (got {ids.dtype})")
            bad = (ids < 0) | (ids >= self.E)
            if bad.any():
                t, l, k = (int(v) for v in np.argwhere(bad)[0])
                raise ValueError(f"step {s}: topk_ids: token {t}, layer {l}, column {k} "
                                 f"is {int(ids[t, l, k])}, outside [0, {self.E})")
            srt = np.sort(ids, axis=2)
            dup = (srt[:, :, 1:] == srt[:, :, :-1]).any(axis=2)
            if dup.any():
                t, l = (int(v) for v in np.argwhere(dup)[0])
                raise ValueError(f"step {s}: topk_ids: token {t}, layer {l} names an "
                                 "expert twice")
            arrs["topk_ids"] = ids.astype(np.uint8 if self.E <= 256 else np.uint16)
        if "topk_weights" in arrs:
            w = arrs["topk_weights"].astype(np.float32)
            bad = ~np.isfinite(w)
            if bad.any():
                t, l, k = (int(v) for v in np.argwhere(bad)[0])
                raise ValueError(f"step {s}: topk_weights: token {t}, layer {l}, column {k} "
                                 f"is {w[t, l, k]}")
            arrs["topk_weights"] = w
        ph = self._phase(phase)
        rank = None
        self._same_every_step("has_rank", src_rank is not None, "src_rank")
        if src_rank is not None:
            r = _host(src_rank, "src_rank")
            if r.ndim == 0:  # one rank for the whole step (a rank's own recording)
                r = np.full(T, r)
            r = r.reshape(-1)
            if r.shape != (T,):
                raise ValueError(f"step {s}: src_rank has {r.shape[0]} values, "
                                 f"the step {T} tokens")
            if r.size and r.dtype.kind not in "iu":
                raise ValueError(f"step {s}: src_rank must be integers (got {r.dtype})")
            bad = (r < 0) | (r > 65535)
            if bad.any():
                t = int(np.argwhere(bad)[0][0])
                raise ValueError(f"step {s}: src_rank of token {t} is {int(r[t])}, outside "
                                 "0..65535")
            rank = r.astype(np.uint16)
        # every check passed: append
        for name, a in arrs.items():
            self._col(name, a).append(a)
        if rank is not None:
            self._col("src_rank", rank).append(rank)
        self._end_step(T, ph)

    def add_counts(self, counts, tokens, phase=None):
        """One step as expert loads only: counts [L, E] (tokens routed to
        each logical expert, each token once per chosen expert) of a step
        of `tokens` tokens.  A counts-only trace (FORMAT.md /load/counts):
        the lightest record, for the simulator and the policies; every
        step of the file must come this way.  torch.bincount(ids.flatten(),
        minlength=E) of a layer's top-k ids gives its row."""
        self._open_check()
        if self.layer_buf:
            raise ValueError(f"step {self.steps}: add_counts with layers pending "
                             "(call end_step first)")
        s = self.steps
        self._flags = {}
        self._same_every_step("has_counts", True, "counts-only steps (add_counts)")
        c = _host(counts, "counts")
        if c.shape != (self.L, self.E):
            raise ValueError(f"step {s}: counts shape {c.shape}, expected "
                             f"({self.L}, {self.E})")
        if c.size and c.dtype.kind not in "iu":
            raise ValueError(f"step {s}: counts must be integers (got {c.dtype})")
        try:
            if isinstance(tokens, (bool, np.bool_)):
                raise TypeError
            T = operator.index(tokens)  # ints and numpy ints, not 2.5, "4" or nan
        except TypeError:
            T = -1
        if T < 0:
            raise ValueError(f"step {s}: tokens must be an integer >= 0 (got {_shown(tokens)})")
        bad = (c < 0) | (c > np.iinfo(np.int32).max)
        if bad.any():
            l, e = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"step {s}: counts: layer {l}, expert {e} is {int(c[l, e])}, "
                             "outside 0..2^31-1")
        sums = c.astype(np.int64).sum(axis=1)
        over = sums > self.K * T
        if over.any():
            l = int(np.argwhere(over)[0][0])
            raise ValueError(f"step {s}: counts: layer {l} sums to {int(sums[l])}, more than "
                             f"top_k x tokens = {self.K} x {T} (each token counts once per "
                             "chosen expert)")
        self._totals_check(T)
        ph = self._phase(phase)
        row = c.astype(np.int32).reshape(1, self.L, self.E)
        if self.leading_idle:  # the idle steps before it, as zero rows
            z = np.zeros((self.leading_idle, self.L, self.E), np.int32)
            self._col("counts", z).append(z)
            self.leading_idle = 0
        self._col("counts", row).append(row)
        self._end_step(T, ph)

    def hook_gates(self, modules):
        """Torch forward hooks on the gate modules of layers 0..L-1 (in
        order) that pass each gate's output (its first element if a tuple)
        to add_layer.  Returns the handles (call .remove() on each)."""
        modules = list(modules)
        if len(modules) != self.L:
            raise ValueError(f"hook_gates: {len(modules)} modules for {self.L} layers")
        handles = []
        for l, m in enumerate(modules):
            def hook(_mod, _inp, out, l=l):
                self.add_layer(l, out[0] if isinstance(out, (tuple, list)) else out)
            handles.append(m.register_forward_hook(hook))
        return handles

    # ---- output -----------------------------------------------------------

    def close(self):
        """Write what is buffered, the step offsets, and rename the file."""
        if self.closed:
            return
        if self.layer_buf:  # a pass after the last end_step: not a step
            warnings.warn(f"{self.path}: {len(self.layer_buf)} layer(s) given after the last "
                          "end_step dropped", stacklevel=2)
            self.layer_buf = {}
        try:
            if not self.steps:
                raise ValueError(f"{self.path}: no steps recorded")
            if not self.cols.keys() & {"logits", "topk_ids", "counts"}:
                # every step idle: an empty dataset of the level recorded
                name = "logits" if self.record_logits else "topk_ids"
                shape = (0, self.L, self.E if self.record_logits else self.K)
                dt = np.float32 if self.record_logits else (
                    np.uint8 if self.E <= 256 else np.uint16)
                if self.record_logits and self.logits_dtype == "float16":
                    dt = np.float16
                self._col(name, np.zeros(shape, dt))
            for c in self.cols.values():
                c.flush()
            self.f.create_dataset("steps/token_offset", data=np.asarray(self.offsets, np.int64),
                                  maxshape=(None,), chunks=(8192,),
                                  shuffle=self.level > 0,
                                  compression="gzip" if self.level else None,
                                  compression_opts=self.level if self.level else None)
            self.f.close()
            self.pool.shutdown()
            os.replace(self.tmp, self.path)
            self.closed = True
        except BaseException:
            self.abort()
            raise

    def abort(self):
        """Drop the recording: no file under PATH, the temporary one removed."""
        self.closed = True
        self.pool.shutdown()
        try:
            self.f.close()
        except Exception:
            pass
        try:
            os.remove(self.tmp)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __del__(self):
        if not getattr(self, "closed", True):
            warnings.warn(f"{self.path}: the recorder was never closed; its steps are in "
                          f"{self.tmp} (close() writes the trace)", ResourceWarning,
                          stacklevel=2)

    def __exit__(self, et, ev, tb):
        if et is None:
            self.close()
        else:
            self.abort()
        return False

    # ---- internals ----------------------------------------------------------

    def _open_check(self):
        if self.closed:
            raise ValueError(f"{self.path}: the recorder is closed")

    def _end_step(self, T, ph):
        """The accepted step's last writes: the every-step-or-none flags its
        checks set, its phase, its offset."""
        for flag, have in self._flags.items():
            setattr(self, flag, have)
        if ph is not None:
            self._col("phase", None).append(np.array([ph], np.uint8))
        self.offsets.append(self.offsets[-1] + T)
        self.steps += 1

    def _phase(self, phase):
        """The step's phase code (None: not given), checked."""
        ph = None
        if phase is not None:
            try:
                ph = None if isinstance(phase, (bool, np.bool_)) else _PHASES.get(phase)
            except TypeError:  # unhashable: an array or a list
                ph = None
            if ph is None:
                raise ValueError(f"step {self.steps}: phase must be prefill, decode, mixed "
                                 f"or 0/1/2 (got {_shown(phase)})")
        self._same_every_step("has_phase", ph is not None, "phase")
        return ph

    def _totals_check(self, T):
        """Refuse a step of T tokens past the reader's totals."""
        if self.steps + 1 > MAX_STEPS or self.offsets[-1] + T > MAX_TOKENS:
            raise ValueError(f"step {self.steps}: past the trace's limits ({MAX_STEPS} "
                             f"steps, {MAX_TOKENS} tokens): start another file")

    def _same_every_step(self, flag, have, what):
        """Refuse optional data given for some steps only; the flag is
        set by add_step once the step is accepted."""
        prev = getattr(self, flag, None)
        if prev is not None and prev != have:
            raise ValueError(f"step {self.steps}: {what} given for "
                             f"{'some steps but not this one' if prev else 'this step only'}"
                             " (every step or none)")
        self._flags[flag] = have

    def _col(self, name, a):
        c = self.cols.get(name)
        if c is not None:
            return c
        L, E, K = self.L, self.E, self.K
        MiB = 1 << 20
        if name == "logits":
            el = {"float32": 4, "float16": 2, "bfloat16": 2}[self.logits_dtype]
            if self.logits_dtype == "bfloat16":
                c = _Column(self.f, "router/logits", (L, E), None, L * E * el, 2 * MiB,
                            self.pool, self.level, h5type=_bf16_type(), convert=_bf16_bits)
            else:
                c = _Column(self.f, "router/logits", (L, E), a.dtype, L * E * el, 2 * MiB,
                            self.pool, self.level)
        elif name in ("topk_ids", "topk_weights"):
            c = _Column(self.f, "router/" + name, (L, K), a.dtype,
                        L * K * a.dtype.itemsize, MiB, self.pool, self.level)
        elif name == "counts":
            c = _Column(self.f, "load/counts", (L, E), np.int32, L * E * 4, MiB, self.pool,
                        self.level)
        elif name == "src_rank":
            c = _Column(self.f, "tokens/src_rank", (), np.uint16, 2, MiB, self.pool, self.level)
        else:  # phase
            c = _Column(self.f, "steps/phase", (), np.uint8, 1, 64 << 10, self.pool, self.level)
        self.cols[name] = c
        return c


_ROUTING_ATTRS = ("num_layers", "num_experts", "top_k", "scoring", "num_groups",
                  "topk_groups", "renormalize", "routed_scaling_factor")
_TOKEN_DATASETS = ("router/logits", "router/topk_ids", "router/topk_weights")
_MERGED_DATASETS = _TOKEN_DATASETS + ("load/counts", "steps/phase", "tokens/src_rank",
                                      "router/e_score_correction_bias")


def _json_or_text(t):
    """A model_config compared by content, not by its spelling."""
    try:
        return json.loads(t)
    except ValueError:
        return t


def _logits_dtype(ds):
    """The recorder's name of a logits dataset's stored type."""
    t = ds.id.get_type()
    if t.get_size() == 4:
        return "float32"
    return "bfloat16" if t.get_ebias() == 127 else "float16"


def _attr(f, k):
    """A root attribute, fixed-length strings (numpy bytes) decoded."""
    v = f.attrs.get(k)
    return v.decode() if isinstance(v, (bytes, np.bytes_)) else v


def _merge_input(p, f, L, E, K):
    """Input p's step offsets (int64, [S+1]), once its datasets are checked
    against them and against the attributes, as the reader would (a file
    another tool wrote, or a damaged one): each message names the file and
    the dataset."""
    for n in _MERGED_DATASETS + ("steps/token_offset",):
        if n in f and not isinstance(f[n], h5py.Dataset):
            raise ValueError(f"{p}: /{n} is not a dataset")
    if "steps/token_offset" not in f:
        raise ValueError(f"{p}: no /steps/token_offset")
    d = f["steps/token_offset"]
    if d.ndim != 1 or d.shape[0] < 1 or d.dtype.kind not in "iu":
        raise ValueError(f"{p}: /steps/token_offset must be a list of integers [steps + 1] "
                         f"(shape {d.shape}, type {d.dtype})")
    if d.shape[0] - 1 > MAX_STEPS:
        raise ValueError(f"{p}: /steps/token_offset: {d.shape[0] - 1} steps, more than "
                         f"{MAX_STEPS}")
    o = np.asarray(d[...], np.int64)
    if o[0] != 0:
        raise ValueError(f"{p}: /steps/token_offset starts at {int(o[0])}, not 0")
    down = np.flatnonzero(np.diff(o) < 0)
    if down.size:
        s = int(down[0])
        raise ValueError(f"{p}: /steps/token_offset decreases at step {s} ({int(o[s])} then "
                         f"{int(o[s + 1])})")
    S, T = len(o) - 1, int(o[-1])
    if T > MAX_TOKENS:
        raise ValueError(f"{p}: /steps/token_offset ends at {T} tokens, more than {MAX_TOKENS}")
    want = {"router/logits": (T, L, E), "router/topk_ids": (T, L, K),
            "router/topk_weights": (T, L, K), "tokens/src_rank": (T,), "steps/phase": (S,),
            "load/counts": (S, L, E), "router/e_score_correction_bias": (L, E)}
    for n, shape in want.items():
        if n in f and f[n].shape[1:] == shape[1:] and f[n].shape[:1] != shape[:1]:
            raise ValueError(f"{p}: /steps/token_offset says {S} steps of {T} tokens, /{n} "
                             f"has {f[n].shape[0]} rows" + (" (a step's counts a row)"
                                                            if n == "load/counts" else ""))
        if n in f and f[n].shape != shape:
            raise ValueError(f"{p}: /{n} has shape {f[n].shape}, expected {shape} ({S} steps "
                             f"and {T} tokens in /steps/token_offset, {L} layers, {E} experts, "
                             f"top-{K})")
    for n in ("router/topk_ids", "tokens/src_rank", "steps/phase", "load/counts"):
        if n in f and f[n].dtype.kind not in "iu":
            raise ValueError(f"{p}: /{n} must hold integers (type {f[n].dtype})")
    for n in ("router/logits", "router/topk_weights", "router/e_score_correction_bias"):
        t = f[n].id.get_type() if n in f else None
        if t is not None and not isinstance(t, h5py.h5t.TypeFloatID):
            raise ValueError(f"{p}: /{n} must hold floats (type {f[n].dtype})")
        if n == "router/logits" and t is not None and t.get_size() not in (2, 4):
            raise ValueError(f"{p}: /router/logits: {t.get_size()}-byte floats (float32, "
                             "float16 or bfloat16 only)")
    return o


def merge_ranks(inputs, output, *, source=None, threads=None, deflate=4):
    """Merge per-rank recordings into one trace: step s of OUTPUT holds
    step s of every input, in the order given, and each token's
    /tokens/src_rank is its input's index, or, where every input with
    tokens has its own src_rank, that.  A step is a forward pass of the
    whole EP group, so every rank must have recorded every pass (0 tokens
    where it had none): the inputs must agree on the routing attributes,
    the model, the number of steps, the phase and the bias (given or not,
    and its values) and the model_config (where more than one has one),
    and those with data on the logits type and the datasets recorded; an
    input without any (a rank idle at every pass: no tokens, no counts)
    adds its passes' phases and nothing else, whatever level its empty
    dataset is.  No merged step may hold more tokens than the replay
    takes.  A step's phase is the ranks' common phase among the ranks with
    tokens, else mixed (2); input 0's where no rank had tokens.
    Counts-only inputs (add_counts) are summed per step; /load/counts
    beside per-token data is dropped with a warning (the replay derives
    it).  Reads one step at a time.  Returns the number of steps.  Inputs
    that disagree, or whose datasets do not match their offsets and
    attributes, raise ValueError naming the input (and the dataset); a
    value the recorder refuses (NaN in an input another tool wrote) names
    the merged step."""
    if isinstance(inputs, (str, bytes, os.PathLike)):
        raise ValueError("inputs: a list of paths, not one path")
    for p in inputs:
        if not isinstance(p, (str, bytes, os.PathLike)):
            raise ValueError(f"inputs: {_shown(p)} is not a path")
    inputs = [os.fsdecode(p) for p in inputs]
    if not inputs:
        raise ValueError("merge_ranks: no inputs")
    output = _out_path(output)
    out_real = os.path.realpath(output)
    seen = {}
    for p in inputs:
        if os.path.realpath(p) == out_real:
            raise ValueError(f"{p}: the output is one of the inputs")
        if os.path.realpath(p) in seen:
            raise ValueError(f"{p}: given twice (as {seen[os.path.realpath(p)]})")
        seen[os.path.realpath(p)] = p
    files = []
    try:
        for p in inputs:
            try:
                files.append(h5py.File(p, "r"))
            except OSError as e:
                raise ValueError(f"{p}: cannot open as HDF5 ({e})") from None
        f0, p0 = files[0], inputs[0]
        for p, f in zip(inputs, files):
            for k in _ROUTING_ATTRS + ("model", "model_config", "source"):
                if k not in f.attrs and k in ("model_config", "source"):
                    continue  # optional here (source: the merge writes its own)
                if k not in f.attrs:
                    raise ValueError(f"{p}: no root attribute '{k}'")
                if isinstance(_attr(f, k), np.ndarray):  # h5py keeps an array an array
                    raise ValueError(f"{p}: root attribute '{k}' is an array of shape "
                                     f"{_attr(f, k).shape}, not a scalar")
                if k in ("model_config", "source"):
                    continue  # compared below, and not at all
                if _attr(f, k) != _attr(f0, k):
                    raise ValueError(f"{p}: {k} = {_shown(_attr(f, k))}, {p0} has "
                                     f"{_shown(_attr(f0, k))}")
        try:  # the attributes, as the recorder will take them
            L, E, K, scoring, G, TG, renorm, rsf = _routing_args(
                *(_attr(f0, k) for k in _ROUTING_ATTRS))
            model = _model_name(_attr(f0, "model"))
        except ValueError as e:
            raise ValueError(f"{p0}: {e}") from None
        offs, mc, mc_from = [], None, None
        for p, f in zip(inputs, files):
            m = _attr(f, "model_config")
            if m is not None and mc is not None and _json_or_text(m) != _json_or_text(mc):
                raise ValueError(f"{p}: model_config differs from {mc_from}'s")
            if m is not None and mc is None:
                mc, mc_from = m, p
            offs.append(_merge_input(p, f, L, E, K))
            if len(offs[-1]) != len(offs[0]):
                raise ValueError(f"{p}: {len(offs[-1]) - 1} steps, {p0} has "
                                 f"{len(offs[0]) - 1} (every rank records every pass)")
        # the inputs with data fix the level; one idle throughout (no tokens,
        # no counts) has an empty dataset of whatever its recorder was told
        data = [i for i, (f, o) in enumerate(zip(files, offs))
                if o[-1] or "load/counts" in f] or list(range(len(files)))
        fr, pr = files[data[0]], inputs[data[0]]
        names = {n for n in _MERGED_DATASETS if n in fr}
        level = set(_TOKEN_DATASETS + ("load/counts", "tokens/src_rank"))
        dtype = _logits_dtype(fr["router/logits"]) if "router/logits" in names else "float32"
        for i, (p, f) in enumerate(zip(inputs, files)):
            mine = {n for n in _MERGED_DATASETS if n in f}
            want = names if i in data else names - level
            mine = mine if i in data else mine - level
            if mine != want:
                what = [f"/{n} only here" for n in sorted(mine - want)] + \
                       [f"no /{n} ({pr} has it)" for n in sorted(want - mine)]
                raise ValueError(f"{p}: " + ", ".join(what) + " (every rank records the same "
                                 "data: phase, ranks, ids, bias in all or none)")
            if i in data and "router/logits" in names and \
                    _logits_dtype(f["router/logits"]) != dtype:
                raise ValueError(f"{p}: logits stored as {_logits_dtype(f['router/logits'])}, "
                                 f"{pr}'s as {dtype}")
        bias = None
        if "router/e_score_correction_bias" in names:
            bias = f0["router/e_score_correction_bias"][...]
            for p, f in zip(inputs[1:], files[1:]):
                if not np.array_equal(f["router/e_score_correction_bias"][...], bias):
                    raise ValueError(f"{p}: e_score_correction_bias differs from {p0}'s")
        token_data = sorted(names & set(_TOKEN_DATASETS))
        counts_only = "load/counts" in names and not token_data
        if "load/counts" in names and token_data:
            warnings.warn(f"{pr}: /load/counts beside per-token data is not merged (the "
                          "replay derives the counts)", stacklevel=2)
        tok = np.stack([np.diff(o) for o in offs])  # [ranks, steps]
        if token_data:  # the merged steps against the replay's limit, before any work
            lim = MAX_STEP_ID_BYTES // (L * K * 4)
            big = np.flatnonzero(tok.sum(axis=0) > lim)
            if big.size:
                s = int(big[0])
                raise ValueError(f"step {s}: the ranks' {tok[:, s].tolist()} tokens make "
                                 f"{int(tok[:, s].sum())}, more than the {lim} the replay "
                                 f"holds for {L} layers x top-{K}: merge fewer ranks")
        first = _attr(f0, "source") or ""
        src = source if source is not None else (
            f"eplb_record.merge_ranks of {len(inputs)} ranks (" +
            "; ".join(os.path.basename(p) for p in inputs) + f"); rank 0: {first}")
        phases = ([np.asarray(f["steps/phase"][...], np.int64) for f in files]
                  if "steps/phase" in names else None)
        # the datasets opened once: a dataset opened per step loses HDF5's
        # chunk cache, and each read inflates its chunk again
        dsets = [{n: f[n] for n in token_data + ["load/counts", "tokens/src_rank"] if n in f}
                 for f in files]
        keep_logits = "router/logits" in names
        rec = TraceRecorder(output, model=model, num_layers=L, num_experts=E, top_k=K,
                            scoring=scoring, num_groups=G, topk_groups=TG, renormalize=renorm,
                            routed_scaling_factor=rsf, source=src[:255], bias=bias,
                            logits_dtype=dtype, model_config=mc, record_logits=keep_logits,
                            threads=threads, deflate=deflate)
        with rec:
            for s in range(len(offs[0]) - 1):
                ts = tok[:, s].tolist()
                phase = None
                if phases is not None:
                    ph = [int(x[s]) for x in phases]
                    busy = {q for q, t in zip(ph, ts) if t} or {ph[0]}
                    phase = busy.pop() if len(busy) == 1 else 2
                if counts_only:
                    c = sum(np.asarray(d["load/counts"][s], np.int64) for d in dsets
                            if "load/counts" in d)  # an idle input has none
                    rec.add_counts(c, tokens=sum(ts), phase=phase)
                    continue
                # from the inputs with data (an idle one has no tokens to add)
                parts = {n.split("/")[1]: np.concatenate([dsets[i][n][offs[i][s]:offs[i][s + 1]]
                                                          for i in data])
                         for n in token_data}
                ranks = [np.asarray(d["tokens/src_rank"][o[s]:o[s + 1]])
                         if "tokens/src_rank" in d else np.full(t, r, np.int64)
                         for r, (d, o, t) in enumerate(zip(dsets, offs, ts)) if r in data]
                rec.add_step(**parts, phase=phase, src_rank=np.concatenate(ranks))
        return len(offs[0]) - 1
    finally:
        for f in files:
            f.close()


def _bench_args(argv):
    """bench's STEPS, TOKENS and DIR, or a usage error: (steps, tokens,
    dir, None) or (None, None, None, message)."""
    import tempfile

    if len(argv) > 3:
        return None, None, None, (f"at most STEPS, TOKENS and DIR ({len(argv)} arguments: "
                                  f"{' '.join(argv)})")
    got = []
    # the recorder's limits for DeepSeek-V3's 58 layers x top-8
    for i, (name, default, hi) in enumerate((("STEPS", 20, MAX_STEPS),
                                             ("TOKENS", 512, MAX_STEP_ID_BYTES // (58 * 8 * 4)))):
        a = argv[i] if len(argv) > i else str(default)
        if not (a.isascii() and a.isdigit()) or not 1 <= int(a) <= hi:
            return None, None, None, f"{name} must be an integer in 1..{hi} (got {a!r})"
        got.append(int(a))
    where = argv[2] if len(argv) > 2 else tempfile.gettempdir()
    if not os.path.isdir(where):
        return None, None, None, f"DIR {where!r} is not a directory"
    return got[0], got[1], where, None


def _bench(steps, tokens, where):
    """python3 eplb_record.py bench [STEPS [TOKENS [DIR]]]: record STEPS
    steps of TOKENS tokens of DeepSeek-V3-shaped bfloat16 logits (58
    layers x 256 experts, given layer by layer) with 1 thread, the default
    threads, every core (past 8) and deflate=0; one JSON line each
    (docs/perf/record.md)."""
    import time

    L, E = 58, 256
    lg = np.random.default_rng(0).normal(size=(tokens, L, E)).astype(np.float32)
    cases = [("1 thread", dict(threads=1)), ("default threads", {})]
    if (os.cpu_count() or 1) > 8:
        cases.append(("all cores", dict(threads=os.cpu_count())))
    for label, kw in cases + [("deflate=0", dict(deflate=0))]:
        path = os.path.join(where, f"eplb_record_bench.{os.getpid()}.h5")
        t0 = time.perf_counter()
        with TraceRecorder(path, model="DeepSeek-V3", num_layers=L, num_experts=E, top_k=8,
                           scoring="sigmoid", num_groups=8, topk_groups=4,
                           renormalize=True, routed_scaling_factor=2.5,
                           logits_dtype="bfloat16", source="eplb_record.py bench",
                           **kw) as rec:
            for _ in range(steps):
                for l in range(L):
                    rec.add_layer(l, lg[:, l])
                rec.end_step(phase="decode")
        dt = time.perf_counter() - t0
        size = os.path.getsize(path)
        os.remove(path)
        print(json.dumps({"bench": "record", "case": label, "cpus": os.cpu_count(),
                          "steps": steps, "tokens": steps * tokens,
                          "seconds": round(dt, 3),
                          "tokens_per_s": round(steps * tokens / dt),
                          "input_MBps": round(steps * tokens * L * E * 4 / dt / 1e6, 1),
                          "file_bytes": size}))


_USAGE = """usage: python3 eplb_record.py merge [--force] [--] OUT.h5 RANK0.h5 RANK1.h5 ...
       python3 eplb_record.py bench [STEPS [TOKENS [DIR]]]
(import the module to record; traces/FORMAT.md)"""


def _is_trace(path):
    """Whether path is an HDF5 file with an eplb_trace_version attribute."""
    try:
        with h5py.File(path, "r") as f:
            return "eplb_trace_version" in f.attrs
    except (OSError, ValueError):
        return False


def _usage_error(cmd, msg):
    """A usage error on stderr: exit status 2."""
    print(f"eplb_record.py{' ' + cmd if cmd else ''}: {msg}", file=sys.stderr)
    print(_USAGE, file=sys.stderr)
    return 2


def _main(argv):
    """The command line: merge (merge_ranks) or bench; returns the exit
    status (0 ok, 1 refused input or failed write, 2 usage)."""
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.split("\n\n")[0] + "\n" + _USAGE)
        return 0
    if argv[:1] == ["bench"]:
        steps, tokens, where, why = _bench_args(argv[1:])
        if why:
            return _usage_error("bench", why)
        try:
            _bench(steps, tokens, where)
        except (ValueError, OSError) as e:
            print(f"eplb_record.py bench: {e}", file=sys.stderr)
            return 1
        return 0
    if argv[:1] != ["merge"]:
        return _usage_error("", f"unknown command {argv[0]!r}" if argv else "no command")
    force, args, options = False, [], True
    for a in argv[1:]:  # --force anywhere before a "--"
        if options and a == "--":
            options = False
        elif options and a == "--force":
            force = True
        elif options and a.startswith("-") and a != "-":
            return _usage_error("merge", f"unknown option {a!r} (the one option is --force; "
                                "-- before a file name that starts with -)")
        else:
            args.append(a)
    if len(args) < 3:
        return _usage_error("merge", "needs OUT and at least two rank files")
    out, ins = args[0], args[1:]
    if os.path.lexists(out) and not force:  # a forgotten OUT is rank 0's file
        what = ("is a trace: OUT comes first, then the rank files; --force replaces "
                "it" if _is_trace(out) else "exists (--force replaces it)")
        print(f"eplb_record.py merge: {out} {what}", file=sys.stderr)
        return 2
    try:
        n = merge_ranks(ins, out)
    except (ValueError, OSError) as e:
        print(f"eplb_record.py merge: {e}", file=sys.stderr)
        return 1
    print(f"eplb_record.py merge: wrote {out}: {n} steps of {len(ins)} ranks")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
