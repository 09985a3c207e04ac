#!/bin/sh
# inputs_fuzz.sh - manual robustness sweep of the text inputs through the CLI
# (not part of `make check`; the trace reader has trace_fuzz.sh):
#   rebalance --weights FILE (JSON [[...]], SGLang {"logical_count"}, 3-D
#             series, CSV) and --old FILE (phy2log JSON),
#   run --profile FILE (key = value hardware profile),
#   import --format esft DIR and --format sglang-counts FILE.
# Per input kind: hand-written hostile cases (deep nesting, 1e400, NaN,
# -Infinity, 1e-400, -0, 00012, 1.2.3, 1000-digit numbers, 1 MB strings,
# invalid UTF-8, BOM, NUL, duplicate keys, ragged/empty rows, millions of
# elements, negative loads, trailing garbage; profiles with huge lines,
# missing '=', repeated keys, NaN/Inf/negative values, unsorted or
# duplicate gemm points, thousands of tables, binary junk; ESFT dirs with
# missing/extra files, ids out of range, wrong id/weight counts, 4 MB
# lines), every truncation of each valid file at a stride, and N
# single-byte mutations (random offset, a byte from a list of interesting
# ones or random), from a fixed seed.  A case is reported when it
#   - crashes (exit >= 128 or killed) or prints a sanitizer report,
#   - runs past 10 s (hang) or its max RSS passes 500 MB,
#   - exits 0 although a reference check here (Python's json with NaN and
#     Infinity refused, the ESFT line grammar) says the input is invalid,
#   - exits 1 with a message that does not name the file,
#   - exits with any status other than 0, 1 (or 2 for a request that the
#     file makes impossible, e.g. more experts than --replicas).
# Use an ASan build (configure --enable-sanitizers --without-cuda).
#
# usage: tests/fuzz/inputs_fuzz.sh BUILD/eplb-replay [SEED] [N] [KINDS]
#   SEED  mutation seed (default 1); N mutations per valid file (default
#   300); KINDS a comma list of rebalance,profile,esft,sglang (default all).
#   Needs python3 and the real data of ../shared/data (esft/intent,
#   sglang-dsv3) next to the repository, or EPLB_DATA=DIR.
#   A failing input is kept under $FUZZ_KEEP (default ./fuzz-keep).
#
# Found 2026-11-28 (seeds 1 and 2, N 300: about 3,750 cases a seed:
# rebalance 1,940 + --old 207, profile 801, esft 412, sglang 397), all
# fixed, each with a test that failed before the fix:
#   - JSON: a text starting with a number ("5" as --old) read the byte
#     before the buffer (ASan heap-buffer-overflow; p->s[-1] told NaN and
#     Infinity apart)                   input_files/json_number_at_start_of_text
#   - JSON numbers through strtod: 00012, -01, 1., 0x10 accepted (exit 0),
#     a valid number of more than 63 characters refused, 1e400 read as inf
#                                       input_files/json_numbers_as_rfc8259
#   - JSON: a key given twice accepted, the first one used
#                                       input_files/json_duplicate_keys_refused
#   - JSON/CSV: a UTF-8 BOM sent a JSON --weights file to the CSV reader
#                                       input_files/json_bom_skipped
#   - rebalance --weights: 1e39 (JSON or CSV) and a 3-D sum past a float
#     reported as "is inf"; a 3-D file's errors did not name the step; a
#     stray byte went raw into the CSV message
#                                       rebalance_cli/weights_sweep_findings
#   - profile: gemm_table keys read by sscanf (4294974464x2048 wrapped to
#     7168, "gemm_table. 7168x 2048" and ".fp8 junk" accepted); a second
#     table of one shape and format accepted and never used; a table
#     without format before the FP8 one hid it; stray bytes raw in the
#     messages                          input_files/profile_gemm_tables_strict
#   - ESFT: ids and weights through strtol/strtod (" 7", "+7", "0x0.1",
#     "0.e031" accepted)                import/esft_fields_strict
#   - ESFT: expert_weights_01.txt counted as layer 1
#                                       import/esft_layer_names_strict
# Not defects: ASan slows the ESFT import of 100,000-token samples past
# 10 s (9.5 s and 830 MB without ASan for 26 x 3.6 MB: one sample is one
# step, whose float32 logits are held whole); the sweep now uses 20,000.
set -u
bin=$1
seed=${2:-1}
n=${3:-300}
kinds=${4:-rebalance,profile,esft,sglang}
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${EPLB_DATA:-$here/../shared/data}
keep=${FUZZ_KEEP:-./fuzz-keep}
exec python3 "$here/tests/fuzz/inputs_fuzz.py" "$bin" "$seed" "$n" "$kinds" "$here" "$data" "$keep"
