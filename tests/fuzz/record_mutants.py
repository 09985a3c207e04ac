"""record_mutants.py - does tests/record_check.py notice a broken recorder?
(manual, not part of `make check`; first written by a review of
traces/eplb_record.py)

Each entry below changes one line of traces/eplb_record.py (a check
dropped, a copy turned into a view, a wrong type or chunk size, ...); the
script writes each altered copy to a scratch directory, runs
record_check.py against it, and prints "killed" where the check failed, as
it should, or "SURVIVES" where it passed.  Exit status 1 if any survives
or if an entry no longer matches the source (edit the entry).

usage: python3 tests/fuzz/record_mutants.py [SCRATCH_DIR]
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

M = {
 "weights_dropped": ('            arrs["topk_weights"] = w\n', '            arrs["topk_weights"] = w * 0\n'),
 "float16_ignored": ('                lg = lg.astype(np.float16)\n', '                pass\n'),
 "ids_always_uint8": ('ids.astype(np.uint8 if self.E <= 256 else np.uint16)', 'ids.astype(np.uint8)'),
 "refused_step_appends_logits": ('        rank = None\n        self._same_every_step("has_rank"',
                                 '        rank = None\n        if "logits" in arrs: self._col("logits", arrs["logits"]).append(arrs["logits"]); arrs.pop("logits")\n        self._same_every_step("has_rank"'),
 "record_logits_false_ignored": ('        if not self.record_logits:\n            arrs.pop("logits", None)\n', ''),
 "weights_flag_unchecked": ('for name, flag in (("topk_ids", "has_ids"), ("topk_weights", "has_weights")):',
                            'for name, flag in (("topk_ids", "has_ids"),):'),
 "f16_range_unchecked": ('{"float16": 65504.0, "bfloat16"', '{"float16": 1e300, "bfloat16"'),
 "bf16_range_unchecked": ('"bfloat16": 3.3895313892515355e38}', '"bfloat16": 1e300}'),
 "weights_nan_unchecked": ('            bad = ~np.isfinite(w)\n', '            bad = np.isnan(w) & False\n'),
 "phase_dropped": ('        if ph is not None:\n            self._col("phase", None)', '        if False:\n            self._col("phase", None)'),
 "src_rank_negative_ok": ('bad = (r < 0) | (r > 65535)', 'bad = (r > 65535)'),
 "ids_float_ok": ('if ids.dtype.kind not in "iu":', 'if False:'),
 "no_shuffle_phase": ('self.pool, self.level)\n        self.cols[name] = c', 'self.pool, 0)\n        self.cols[name] = c'),
 "offset_chunks_tiny": ('chunks=(8192,)', 'chunks=(1,)'),
 "ids_chunks_tiny": ('L * K * a.dtype.itemsize, MiB,', 'L * K * a.dtype.itemsize, 8,'),
 "layer_order_ignored": ('parts[name] = np.stack([self.layer_buf[l][name] for l in range(self.L)],',
                         'parts[name] = np.stack([self.layer_buf[l][name] for l in sorted(self.layer_buf, key=lambda l: -l)],'),
 "model_config_dropped": ('                a["model_config"] = model_config\n', '                pass\n'),
 "add_layer_view": ('np.array(a.reshape(-1, last), copy=True)', 'a.reshape(-1, last)'),
 "end_step_keeps_layers": ('        finally:\n            self.layer_buf = {}\n', '        except Exception:\n            raise\n'),
 "dict_config_repr": ('            mc = json.dumps(mc, default=lambda v: v.item() if hasattr(v, "item") else str(v))', '            mc = str(mc)'),
 "no_step_limit": ('        if T > self.max_step_tokens:', '        if False:'),
 "append_view": ('            self.pending[-1] = np.array(a, copy=True)  # the caller may reuse a', '            pass'),
 "counts_sum_unchecked": ('        over = sums > self.K * T\n', '        over = sums < 0\n'),
 "counts_neg_ok": ('        bad = (c < 0) | (c > np.iinfo(np.int32).max)\n', '        bad = c > np.iinfo(np.int32).max\n'),
 "counts_mix_ok": ('        self._same_every_step("has_counts", False, "counts-only steps (add_counts)")\n', ''),
 "merge_rank_index": ('else np.full(t, r, np.int64)', 'else np.full(t, 0, np.int64)'),
 "merge_phase_rank0": ('phase = busy.pop() if len(busy) == 1 else 2', 'phase = ph[0]'),
 "merge_counts_rank0": ('c = sum(np.asarray(d["load/counts"][s], np.int64) for d in dsets\n                            if "load/counts" in d)', 'c = np.asarray(dsets[0]["load/counts"][s], np.int64)'),
 "merge_steps_unchecked": ('            if len(offs[-1]) != len(offs[0]):', '            if False:'),
 "merge_attrs_unchecked": ('                if _attr(f, k) != _attr(f0, k):', '                if False:'),
 "merge_bias_unchecked": ('                if not np.array_equal(f["router/e_score_correction_bias"][...], bias):', '                if False:'),
 "merge_datasets_unchecked": ('            if mine != want:', '            if False:'),
 "merge_own_src_rank_ignored": ('if "tokens/src_rank" in d else np.full(t, r, np.int64)', 'if False else np.full(t, r, np.int64)'),
 "merge_all_empty_phase_mixed": ('or {ph[0]}', 'or {2}'),
 "merge_model_config_dropped": ('model_config=mc, record_logits', 'model_config=None, record_logits'),
 "merge_model_config_first_only": ('            if m is not None and mc is None:', '            if m is not None and mc is None and p == p0:'),
 "merge_bias_dropped": ('source=src[:255], bias=bias,', 'source=src[:255], bias=None,'),
 "merge_dtype_float32": ('dtype = _logits_dtype(fr["router/logits"]) if "router/logits" in names else "float32"', 'dtype = "float32"'),
 "merge_dtype_unchecked": ('            if i in data and "router/logits" in names and \\\n                    _logits_dtype(f["router/logits"]) != dtype:', '            if False:'),
 "merge_realpath_dropped": ('        if os.path.realpath(p) == out_real:', '        if p == output:'),
 "merge_limit_unchecked": ('            if big.size:', '            if False:'),
 "merge_bytes_attrs": ('    return v.decode() if isinstance(v, (bytes, np.bytes_)) else v', '    return v'),
 "cli_oserror_exit": ('    except (ValueError, OSError) as e:\n        print(f"eplb_record.py merge:', '    except ValueError as e:\n        print(f"eplb_record.py merge:'),
 "cli_overwrites": ('    if os.path.lexists(out) and not force:', '    if False:'),
 "counts_fractional_tokens_ok": ('            T = operator.index(tokens)', '            T = int(tokens)'),
 "counts_bool_tokens_ok": ('            if isinstance(tokens, (bool, np.bool_)):\n                raise TypeError', '            pass'),
 "counts_totals_unchecked": ('        self._totals_check(T)\n        ph = self._phase(phase)\n        row', '        ph = self._phase(phase)\n        row'),
 "phase_bool_ok": ('ph = None if isinstance(phase, (bool, np.bool_)) else _PHASES.get(phase)', 'ph = _PHASES.get(phase)'),
 "pool_any": ('fine = all(self.pool.map(', 'fine = any(self.pool.map('),
 "pool_last_part_skipped": ('parts = [lg[i:i + n] for i in range(0, len(lg), n)]', 'parts = [lg[i:i + n] for i in range(0, max(n, len(lg) - n), n)]'),
 "pool_first_part_only": ('parts = [lg[i:i + n] for i in range(0, len(lg), n)]', 'parts = [lg[:n]]'),
 "counts_uint_over_int32": ('        bad = (c < 0) | (c > np.iinfo(np.int32).max)\n', '        bad = (c < 0) | (c.astype(np.int64) > np.iinfo(np.int64).max)\n'),
 "src_rank_float_ok": ('if r.size and r.dtype.kind not in "iu":', 'if False:'),
 "append_no_copy_when_pending": ('        elif len(a):\n            self.pending[-1] = np.array(a, copy=True)', '        elif len(a) and len(self.pending) == 1:\n            self.pending[-1] = np.array(a, copy=True)'),
 "write_carry_view": ('        self.pending = [np.concatenate(carry)] if carry else []', '        self.pending = carry'),
 "idle_leading_dropped": ('            self.leading_idle += 1', '            pass'),
 "idle_counts_row_dropped": ('            row = np.zeros((1, self.L, self.E), np.int32)\n            self._col("counts", row).append(row)', '            pass'),
 "add_layer_fields_replace": ('        self.layer_buf[layer] = {**have, **rec}', '        self.layer_buf[layer] = rec'),
 "src_rank_scalar_ignored": ('            if r.ndim == 0:', '            if False:'),
 "merge_duplicates_ok": ('        if os.path.realpath(p) in seen:', '        if False:'),
 "model_config_path_ignored": ('    if isinstance(mc, (str, os.PathLike)) and os.path.isfile(mc):', '    if False:'),
 "track_times": ('            dcpl.set_obj_track_times(False)', '            pass'),
 "kept_groups_unchecked": ('    if K > TG * (E // G):', '    if False:'),
 "weights_without_ids_ok": ('        if "topk_weights" in arrs and "topk_ids" not in arrs:', '        if False:'),
 "tmp_left_on_abort": ('            os.remove(self.tmp)\n', '            pass\n'),
 # an audit's findings (bench and merge command lines, paths, arguments,
 # damaged inputs, idle ranks)
 "bench_args_unchecked": ('        if not (a.isascii() and a.isdigit()) or not 1 <= int(a) <= hi:', '        if False:'),
 "bench_extra_args_ok": ('    if len(argv) > 3:', '    if False:'),
 "bench_dir_unchecked": ('    if not os.path.isdir(where):', '    if False:'),
 "merge_unknown_option_is_out": ('        elif options and a.startswith("-") and a != "-":', '        elif False:'),
 "merge_double_dash_unknown": ('        if options and a == "--":', '        if False:'),
 "empty_path_ok": ('    if not p:\n        raise ValueError("path: empty")', '    if False:\n        raise ValueError("path: empty")'),
 "bytes_path_str": ('    p = os.fsdecode(path)', '    p = str(path)'),
 "same_path_twice_ok": ('        if other is not None and not other.closed:', '        if False:'),
 "fifo_output_ok": ('    if st is not None and not stat.S_ISREG(st.st_mode):', '    if st is not None and stat.S_ISDIR(st.st_mode):'),
 "dir_writable_unchecked": ('    if not os.access(d, os.W_OK | os.X_OK):', '    if False:'),
 "int_args_truncated": ('    if not _is_int(v):\n        raise ValueError(f"{name}: must be an integer', '    if isinstance(v, (str, np.ndarray)):\n        raise ValueError(f"{name}: must be an integer'),
 "layer_float_ok": ('        if not _is_int(layer) or not 0 <= layer < self.L:', '        if not isinstance(layer, (int, float, np.integer)) or not 0 <= layer < self.L:'),
 "int_float_ok": ('    return isinstance(v, (int, np.integer)) and not', '    return isinstance(v, (int, float, np.integer)) and not'),
 "logits_any_dtype": ('    if a.dtype.kind not in "fiu":', '    if a.dtype.kind not in "fiubcOU":'),
 "bias_dtype_unchecked": ('                _real_numbers(b, "bias")\n', ''),
 "nul_unchecked": ('    if "\\0" in v:', '    if False:'),
 "renormalize_truthy": ('    if isinstance(v, (int, np.integer)) and int(v) in (0, 1):', '    if isinstance(v, (int, np.integer)):'),
 "numpy_repr_shown": ('        v = v.item()\n', '        pass\n'),
 "merge_attr_repr": ('{_shown(_attr(f, k))}', '{_attr(f, k)!r}'),
 "merge_offsets_decreasing_ok": ('    if down.size:', '    if False:'),
 "merge_offsets_start_unchecked": ('    if o[0] != 0:', '    if False:'),
 "merge_rows_unchecked": ('        if n in f and f[n].shape[1:] == shape[1:] and f[n].shape[:1] != shape[:1]:', '        if False:'),
 "merge_shapes_unchecked": ('        if n in f and f[n].shape != shape:', '        if False:'),
 "merge_types_unchecked": ('        if t is not None and not isinstance(t, h5py.h5t.TypeFloatID):', '        if False:'),
 "merge_array_attr_ok": ('                if isinstance(_attr(f, k), np.ndarray):', '                if False:'),
 "merge_attr_error_unnamed": ('            raise ValueError(f"{p0}: {e}") from None', '            raise'),
 "merge_idle_fixes_level": ('if o[-1] or "load/counts" in f] or', 'if True] or'),
 "merge_idle_phase_unchecked": ('            mine = mine if i in data else mine - level', '            mine = mine if i in data else want'),
}


def main():
    src = open(os.path.join(ROOT, "traces", "eplb_record.py")).read()
    scratch = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="record_mutants.")
    bad = 0
    for name, (a, b) in M.items():
        if src.count(a) != 1:
            print(f"{name:32s} STALE: its line is not in the source once")
            bad += 1
            continue
        d = os.path.join(scratch, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "traces"))
        os.makedirs(os.path.join(d, "out"))
        with open(os.path.join(d, "traces", "eplb_record.py"), "w") as f:
            f.write(src.replace(a, b))
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "record_check.py"), d,
                            os.path.join(d, "out")], capture_output=True, text=True)
        lines = (r.stdout + r.stderr).strip().splitlines()
        last = lines[-1] if lines else ""
        ok = r.returncode != 0
        bad += not ok
        print(f"{name:32s} {'killed  ' if ok else 'SURVIVES'} | {last[:100]}")
        shutil.rmtree(d, ignore_errors=True)
    print(f"{len(M) - bad} of {len(M)} killed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
