#!/usr/bin/env python3
"""Compares kernel configurations of the same cases, on the GPU machine, in
one process: for tuning the attn-to-nvgpu options.

    # build machine: one bundle folder per configuration, through
    # attn_mlir.compiler (the path compiler.compile takes)
    python3 bench/sweep.py --build wgmma64='mma=wgmma kv-tile=64' \
        --build sync='mma=sync' --only causal_d128,rbf_d128
    # GPU machine
    python3 bench/sweep.py [--root bench/bundles/sweep] [--seqs 4096,16384]

For every case found under every config directory: the two float64 checks of
gpu_bench.py (a config that fails them is not timed), then the TFLOP/s of the
kernel in the PERF_TARGETS setting; FlashAttention-2 (torch SDPA, flash
backend) is timed on the same inputs as the common yardstick.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from cases import CASES  # noqa: E402


def build_configs(root, configs, only):
    """``configs``: ``NAME=OPTIONS`` strings; compiles the cases into
    ``root/NAME/<case>``; returns the number of failures."""
    from attn_mlir import compiler
    from build_bundles import build
    failures = 0
    for item in configs:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--build takes NAME=OPTIONS, got {item!r}")
        options = compiler.parse_options(text)
        compiler.kernel_option_args(options)
        print(f"== {name}: {compiler.kernel_option_args(options) or 'defaults'}")
        failures += build(os.path.join(root, name), options=options, only=only)
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(HERE, "bundles", "sweep"))
    ap.add_argument("--seqs", default="4096,16384")
    ap.add_argument("--build", action="append", default=[],
                    metavar="NAME=OPTIONS",
                    help="compile the cases with these kernel options into "
                         "ROOT/NAME (on the build machine), then stop")
    ap.add_argument("--only", default="", help="comma-separated case names")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    if args.build:
        sys.exit(1 if build_configs(args.root, args.build, only) else 0)
    time_configs(args.root, [int(s) for s in args.seqs.split(",")], only)


def time_configs(root, seqs, only):
    import torch
    from gpu_bench import check, flops, make_inputs
    from attn_mlir.runtime import Bundle
    from triton.testing import do_bench
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F
    by_name = {c.name: c for c in CASES}
    configs = sorted(os.listdir(root))
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    for name in sorted({c for cfg in configs for c in os.listdir(os.path.join(root, cfg))}):
        if only and name not in only:
            continue
        case = by_name[name]
        D, H = case.d, 2048 // case.d
        for S in seqs:
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
                d = os.path.join(root, cfg, name)
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
