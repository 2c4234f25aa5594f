#!/usr/bin/env python3
"""Compiles every case of bench/cases.py into a kernel bundle, on the build
machine (which has MLIR; the GPU machine does not).

    python3 bench/build_bundles.py [--out bench/bundles] [--attn-opt PATH]
                                   [--options 'kv-tile=64 mma=wgmma'] [--only a,b]

Writes OUT/<case>/{variant.mlir, module.mlir, attn.cubin, attn.ptx,
attn.json} through ``attn_mlir.compiler.compile_module`` (the path
``compiler.compile`` takes, kernel options included) and prints the compile
time of each (module -> cubin) and ptxas's register/spill report.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from cases import CASES  # noqa: E402
from attn_mlir import compiler  # noqa: E402


def ptxas_report(ptxas, chip, ptx):
    """ptxas -v's register and spill lines for every kernel of ``ptx``."""
    if not os.path.exists(ptxas):
        return [f"(no {ptxas})"]
    v = subprocess.run([ptxas, "-v", f"-arch={chip}", ptx, "-o", os.devnull],
                       capture_output=True, text=True)
    return [line.split("ptxas info    : ")[-1].strip()
            for line in v.stderr.splitlines()
            if "registers" in line or "spill" in line]


def build(out, chip="sm_90a", options=None, only=(), ptxas=None,
          timeout=None, backward=False):
    """Compiles the cases (all, or those named in ``only``) into
    ``out/<case>``; returns the number of failures."""
    failures = 0
    for case in CASES:
        if only and case.name not in only:
            continue
        d = os.path.join(out, case.name)
        os.makedirs(d, exist_ok=True)
        text = case.mlir(backward=backward)
        with open(os.path.join(d, "variant.mlir"), "w") as f:
            f.write(text)
        t0 = time.time()
        try:
            compiler.compile_module(text, chip=chip, options=options, out=d,
                                    timeout=timeout, what=f"case {case.name}")
        except (compiler.CompileError, ValueError) as e:
            failures += 1
            print(f"FAIL {case.name}:\n{e}", flush=True)
            continue
        dt = time.time() - t0
        regs = ptxas_report(ptxas, chip, os.path.join(d, "attn.ptx")) \
            if ptxas else []
        print(f"{case.name:32s} compile {dt:5.2f} s | {' | '.join(regs)}",
              flush=True)
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "bundles"))
    ap.add_argument("--attn-opt", default=None,
                    help="attn-opt to use (default: $ATTN_OPT, PATH, build/bin)")
    ap.add_argument("--chip", default="sm_90a")
    ap.add_argument("--ptxas", default="/usr/local/cuda/bin/ptxas")
    ap.add_argument("--options", default="",
                    help="kernel options of --attn-to-nvvm, e.g. 'm-tiles=1 kv-tile=64'")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--backward", action="store_true",
                    help="bundles with the backward kernels too (each case's "
                         "@<name>_grad; bench/gpu_backward.py runs them)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per compile (default: compiler.DEFAULT_TIMEOUT_S)")
    args = ap.parse_args()
    if args.attn_opt:
        os.environ["ATTN_OPT"] = os.path.abspath(args.attn_opt)
    try:
        options = compiler.parse_options(args.options)
        compiler.kernel_option_args(options)
    except ValueError as e:
        ap.error(str(e))
    only = set(filter(None, args.only.split(",")))
    unknown = only - {c.name for c in CASES}
    if unknown:
        ap.error(f"no such cases: {', '.join(sorted(unknown))}")
    sys.exit(1 if build(args.out, args.chip, options, only, args.ptxas,
                        args.timeout, args.backward) else 0)


if __name__ == "__main__":
    main()
