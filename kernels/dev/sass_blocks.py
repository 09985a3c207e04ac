#!/usr/bin/env python3
"""sass_blocks.py - split one kernel's SASS (cuobjdump -sass) into basic
blocks and print, per block: start address, instruction count, how it ends
(branch target), and an opcode summary; backward branches mark loops.  Used
to count instructions on a kernel's hot path by hand (docs/perf/kernels.md).
usage: sass_blocks.py FILE.sass FUNCTION (its plain name, as in the mangled one)"""
import re
import sys


def load(path, fn):
    out, on = [], False
    for line in open(path):
        if "Function :" in line:
            name = line.split("Function :")[1].strip()
            # a mangled name holds the plain one as <length><name>
            on = fn == name or "%d%s" % (len(fn), fn) in name
            continue
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
        if on and m:
            out.append((int(m.group(1), 16), m.group(2)))
    return out


def main():
    ins = load(sys.argv[1], sys.argv[2])
    starts = {ins[0][0]}
    for i, (a, t) in enumerate(ins):
        m = re.search(r"\b(BRA|BRX|CALL\.REL\S*|BSSY|SSY)\b.*?(0x[0-9a-f]+)", t)
        if m and "BRA" in m.group(1):
            starts.add(int(m.group(2), 16))
            if i + 1 < len(ins):
                starts.add(ins[i + 1][0])
        if re.search(r"\b(EXIT|RET)\b", t) and i + 1 < len(ins):
            starts.add(ins[i + 1][0])
    blocks, cur = [], []
    for a, t in ins:
        if a in starts and cur:
            blocks.append(cur)
            cur = []
        cur.append((a, t))
    blocks.append(cur)
    total = 0
    for b in blocks:
        a0, last = b[0][0], b[-1][1]
        n = sum(1 for _, t in b if not t.startswith("NOP"))
        total += n
        m = re.search(r"BRA.*?(0x[0-9a-f]+)", last)
        end = ""
        if m:
            tgt = int(m.group(1), 16)
            end = ("loop-> " if tgt <= a0 else "-> ") + hex(tgt)
            if last.startswith("@"):
                end = last.split()[0] + " " + end
        ops = {}
        for _, t in b:
            op = t.split()[1] if t.startswith("@") else t.split()[0]
            op = op.split(".")[0]
            ops[op] = ops.get(op, 0) + 1
        top = " ".join("%s:%d" % kv for kv in sorted(ops.items(), key=lambda kv: -kv[1])[:6])
        print("%6x %4d  %-22s %s" % (a0, n, end, top))
    print("total", total)


main()
