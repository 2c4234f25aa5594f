#!/usr/bin/env python3
"""Launches one bundle's kernel a few times on random bf16 inputs, for a
profiler to look at (ncu, compute-sanitizer):

    ncu --section SpeedOfLight --section Occupancy --section LaunchStats \\
        -k regex:causal_d128 -c 1 python3 bench/profile_one.py causal_d128 4096
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from attn_mlir.runtime import Bundle  # noqa: E402


def main():
    case = sys.argv[1] if len(sys.argv) > 1 else "causal_d128"
    S = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    kernel = Bundle.load(os.path.join(HERE, "bundles", case)).kernel()
    D = kernel.desc["head_dim_qk"]
    H, B = 2048 // D, 16384 // S
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(B, H, S, D, generator=g, device="cuda").to(torch.bfloat16)
               for _ in range(3))
    for _ in range(3):
        kernel.run(q, k, v)
    torch.cuda.synchronize()
    print("ok", case, B, H, S, D)


if __name__ == "__main__":
    main()
