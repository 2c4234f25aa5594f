#!/usr/bin/env python3
"""Launches one bundle's kernel a few times on random bf16 inputs, for a
profiler to look at (ncu, compute-sanitizer):

    ncu --section SpeedOfLight --section Occupancy --section LaunchStats \\
        -k regex:causal_d128 -c 1 python3 bench/profile_one.py causal_d128 4096

With a third argument ``backward`` it launches the case's backward entry
(``<case>_grad``, bundles built with build_bundles.py --backward) after
one forward; ``--bundles DIR`` picks the bundle directory.
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from attn_mlir.runtime import Bundle  # noqa: E402


def main():
    args = list(sys.argv[1:])
    root = os.path.join(HERE, "bundles")
    if "--bundles" in args:
        at = args.index("--bundles")
        root = args[at + 1]
        del args[at:at + 2]
    case = args[0] if args else "causal_d128"
    S = int(args[1]) if len(args) > 1 else 4096
    backward = len(args) > 2 and args[2] == "backward"
    bundle = Bundle.load(os.path.join(root, case))
    kernel = bundle.kernel(case)
    D = kernel.desc["head_dim_qk"]
    H, B = 2048 // D, 16384 // S
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(B, H, S, D, generator=g, device="cuda").to(torch.bfloat16)
               for _ in range(3))
    if backward:
        grad = bundle.kernel(case + "_grad")
        o, lse = kernel.run(q, k, v)
        do = torch.randn(o.shape, generator=g, device="cuda").to(o.dtype)
        has_lse = "lse" in grad.params
        for _ in range(3):
            grad.run_grad(q, k, v, o, do, lse=lse if has_lse else None)
    else:
        for _ in range(3):
            kernel.run(q, k, v)
    torch.cuda.synchronize()
    print("ok", case, "backward" if backward else "forward", B, H, S, D)


if __name__ == "__main__":
    main()
