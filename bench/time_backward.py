#!/usr/bin/env python3
"""Times the backward entries of several bundle folders on the same inputs in
one process (before/after comparisons of a kernel change; no checks: run
bench/gpu_backward.py on each folder for those):

    python bench/time_backward.py bench/bundles/before,bench/bundles/after \\
        softmax_d128,causal_d64 [S]

Prints per case the TFLOP/s (2.5x the forward's FLOPs) of every folder.
B x S = 16k tokens, H x D = 2048, as bench/gpu_backward.py.
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from attn_mlir.runtime import Bundle  # noqa: E402
from cases import CASES  # noqa: E402
from gpu_bench import flops, make_inputs  # noqa: E402


def main():
    from triton.testing import do_bench
    dirs = sys.argv[1].split(",")
    names = set(sys.argv[2].split(","))
    S = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    for case in CASES:
        if case.name not in names or not case.bench:
            continue
        D = case.d
        H, B = 2048 // D, 16384 // S
        gen = torch.Generator(device="cuda").manual_seed(5)
        q, k, v, extra = make_inputs(case, (B, H, H, S, S), gen)
        do = torch.randn(q.shape[:3] + (case.dv,), generator=gen,
                         device="cuda").to(q.dtype)
        fl = 2.5 * flops(case, B, H, S, D, case.bench["causal"])
        out = []
        for d in dirs:
            bundle = Bundle.load(os.path.join(d, case.name))
            fwd = bundle.kernel(case.name)
            bwd = bundle.kernel(case.name + "_grad")
            o, lse = fwd.run(q, k, v, **extra)
            lse = lse if "lse" in bwd.params else None
            ms = do_bench(lambda: bwd.run_grad(q, k, v, o, do, lse=lse,
                                               **extra),
                          warmup=10, rep=60, return_mode="median")
            out.append(f"{os.path.basename(d)}={fl / ms / 1e9:.1f}")
        print(case.name, S, " ".join(out), flush=True)


if __name__ == "__main__":
    main()
