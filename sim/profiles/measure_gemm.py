#!/usr/bin/env python3
"""measure_gemm.py - measure one routed expert's grouped-GEMM time vs tokens
on this GPU and print `gemm_table.HxF.FMT = tokens:us ...` profile lines.

An expert is gate+up (x[n,H] @ W13[H,2F]) then down (y[n,F] @ W2[F,H]);
the activation is not timed.  Weights rotate over enough experts to exceed
the L2 cache, so every expert reads its weights from HBM as in a real
grouped GEMM; the GEMMs are replayed from a CUDA graph so that the GPU runs
them back to back (no Python launch gaps).  FP8 uses torch._scaled_mm (per-tensor scales; token counts
padded to 16 as FP8 GEMM tiles are); BF16 uses torch.matmul (cuBLAS).

usage: python3 measure_gemm.py [--shape 7168x2048:fp8] [--shape 2048x1408:bf16]
"""
import argparse
import sys

import torch

TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


def measure(H, F, fmt, reps=20):
    dev = torch.device("cuda")
    wbytes = 1 if fmt == "fp8" else 2
    per_expert = 3 * H * F * wbytes
    nexp = max(4, int(4 * 50e6 // per_expert) + 1)  # > 4x the 50 MB L2
    g = torch.Generator(device=dev).manual_seed(0)
    if fmt == "fp8":
        w13 = [torch.randn(2 * F, H, device=dev, generator=g).to(torch.float8_e4m3fn)
               for _ in range(nexp)]
        w2 = [torch.randn(H, F, device=dev, generator=g).to(torch.float8_e4m3fn)
              for _ in range(nexp)]
        one = torch.ones((), device=dev)
    else:
        w13 = [torch.randn(H, 2 * F, device=dev, dtype=torch.bfloat16, generator=g)
               for _ in range(nexp)]
        w2 = [torch.randn(F, H, device=dev, dtype=torch.bfloat16, generator=g)
              for _ in range(nexp)]
    out = []
    for n in TOKENS:
        m = max(16, (n + 15) // 16 * 16) if fmt == "fp8" else n
        if fmt == "fp8":
            x = torch.randn(m, H, device=dev).to(torch.float8_e4m3fn)
            y = torch.randn(m, F, device=dev).to(torch.float8_e4m3fn)

            def run(i):
                torch._scaled_mm(x, w13[i].t(), scale_a=one, scale_b=one,
                                 out_dtype=torch.bfloat16)
                torch._scaled_mm(y, w2[i].t(), scale_a=one, scale_b=one,
                                 out_dtype=torch.bfloat16)
        else:
            x = torch.randn(m, H, device=dev, dtype=torch.bfloat16)
            y = torch.randn(m, F, device=dev, dtype=torch.bfloat16)

            def run(i):
                torch.matmul(x, w13[i])
                torch.matmul(y, w2[i])
        # One CUDA graph of `inner` passes over the experts: the GPU runs the
        # GEMMs back to back, without Python launch overhead in between.
        inner = 4
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for i in range(nexp):  # warm up (cuBLAS workspaces, heuristics)
                run(i)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for r in range(inner):
                for i in range(nexp):
                    run(i)
        graph.replay()
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        for r in range(reps):
            graph.replay()
        stop.record()
        torch.cuda.synchronize()
        us = start.elapsed_time(stop) * 1e3 / (reps * inner * nexp)
        out.append((n, us))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", action="append",
                    help="HIDDENxINTER:fp8|bf16 (default 7168x2048:fp8, 2048x1408:bf16)")
    a = ap.parse_args()
    shapes = a.shape or ["7168x2048:fp8", "2048x1408:bf16"]
    name = torch.cuda.get_device_name()
    print(f"# measured on {name}, torch {torch.__version__}, CUDA {torch.version.cuda}:")
    print(f"# python3 sim/profiles/measure_gemm.py " + " ".join(f"--shape {s}" for s in shapes))
    for s in shapes:
        hf, fmt = s.split(":")
        H, F = (int(v) for v in hf.split("x"))
        pts = measure(H, F, fmt)
        print(f"gemm_table.{H}x{F}.{fmt} = " + " ".join(f"{n}:{us:.2f}" for n, us in pts))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
