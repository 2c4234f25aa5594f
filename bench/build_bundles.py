#!/usr/bin/env python3
"""Compiles every case of bench/cases.py into a kernel bundle, on the build
machine (which has MLIR; the GPU machine does not).

    python3 bench/build_bundles.py [--out bench/bundles] [--attn-opt PATH]

Writes OUT/<case>/{variant.mlir, attn.cubin, attn.ptx, attn.json} and prints
the compile time of each (variant -> cubin) and ptxas's register/spill report.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cases import CASES  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "bundles"))
    ap.add_argument("--attn-opt", default=os.path.join(HERE, "..", "build", "bin", "attn-opt"))
    ap.add_argument("--chip", default="sm_90a")
    ap.add_argument("--ptxas", default="/usr/local/cuda/bin/ptxas")
    ap.add_argument("--options", default="",
                    help="extra attn-to-nvvm options, e.g. 'm-tiles=1 kv-tile=64'")
    ap.add_argument("--only", default="", help="comma-separated case names")
    args = ap.parse_args()
    failures = 0
    only = set(filter(None, args.only.split(",")))
    for case in CASES:
        if only and case.name not in only:
            continue
        d = os.path.join(args.out, case.name)
        os.makedirs(d, exist_ok=True)
        src = os.path.join(d, "variant.mlir")
        with open(src, "w") as f:
            f.write(case.mlir())
        t0 = time.time()
        r = subprocess.run([args.attn_opt, src, "-o", os.devnull,
                            f"--attn-to-nvvm=chip={args.chip} bundle-dir={d} {args.options}"],
                           capture_output=True, text=True)
        dt = time.time() - t0
        if r.returncode:
            failures += 1
            print(f"FAIL {case.name}:\n{r.stderr}")
            continue
        v = subprocess.run([args.ptxas, "-v", f"-arch={args.chip}",
                            os.path.join(d, "attn.ptx"), "-o", os.devnull],
                           capture_output=True, text=True)
        regs = [l.split("ptxas info    : ")[-1] for l in v.stderr.splitlines()
                if "registers" in l or "spill" in l]
        print(f"{case.name:32s} compile {dt:5.2f} s | {' | '.join(s.strip() for s in regs)}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
