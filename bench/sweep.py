#!/usr/bin/env python3
"""Compares kernel configurations of the same cases, on the GPU machine, in
one process: for tuning the attn-to-nvgpu options.

    python3 bench/build_bundles.py --out bench/bundles/sweep/<config> \
        --options '<attn-to-nvvm options>' --only <cases>   # build machine
    python3 bench/sweep.py [--root bench/bundles/sweep] [--seqs 4096,16384]

For every case found under every config directory: the two float64 checks of
gpu_bench.py (a config that fails them is not timed), then the TFLOP/s of the
kernel in the PERF_TARGETS setting; FlashAttention-2 (torch SDPA, flash
backend) is timed on the same inputs as the common yardstick.
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from cases import CASES  # noqa: E402
from gpu_bench import check, flops, make_inputs  # noqa: E402
from attn_mlir.runtime import Bundle  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(HERE, "bundles", "sweep"))
    ap.add_argument("--seqs", default="4096,16384")
    args = ap.parse_args()
    from triton.testing import do_bench
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F
    by_name = {c.name: c for c in CASES}
    configs = sorted(os.listdir(args.root))
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    for name in sorted({c for cfg in configs for c in os.listdir(os.path.join(args.root, cfg))}):
        case = by_name[name]
        D, H = case.d, 2048 // case.d
        for S in [int(s) for s in args.seqs.split(",")]:
            B = 16384 // S
            gen = torch.Generator(device="cuda").manual_seed(1234 + S)
            q, k, v, extra = make_inputs(case, (B, H, H, S, S), gen)
            out = torch.empty_like(q[..., :case.dv])
            lse = torch.empty(B, H, S, device="cuda")
            causal = bool(case.bench and case.bench["causal"])
            fl = flops(case, B, H, S, D, causal)
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                ms = do_bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                              warmup=25, rep=100, return_mode="median")
            line = [f"{name:20s} S={S:6d} fa2={fl / ms / 1e9:6.1f}"]
            for cfg in configs:
                d = os.path.join(args.root, cfg, name)
                if not os.path.isdir(d):
                    continue
                kernel = Bundle.load(d).kernel()
                oks = [check(case, kernel, case.check_shape, seed, scale)["ok"]
                       for seed, scale in ((0, 1.0), (1, 30.0))]
                if not all(oks):
                    line.append(f"{cfg}=FAIL")
                    continue
                ms = do_bench(lambda: kernel.run(q, k, v, out=out, lse=lse, **extra),
                              warmup=25, rep=100, return_mode="median")
                line.append(f"{cfg}={fl / ms / 1e9:6.1f}")
            print(" ".join(line), flush=True)


if __name__ == "__main__":
    main()
