"""The variant library from the command line.

    python -m attn_mlir.variants list
    python -m attn_mlir.variants show NAME
    python -m attn_mlir.variants compile-gpu [--out DIR] [--chip sm_90a]
                                             [--dtype bf16] [--head-dim 64]

``compile-gpu`` compiles every library variant with ``attn-opt
--attn-to-nvvm`` into a bundle (PTX and cubin) under DIR (by default the
bundle cache, ``attn_mlir.compiler.cache_dir()``) and prints, per variant,
the bundle or the compiler's reason for refusing it. It fails (exit 1) only
on errors other than "cannot be compiled for the GPU yet".
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys

from .. import compiler
from . import gpu_capture_shapes, load, load_all, names, path

_REFUSAL = "cannot be compiled for the GPU yet"


def _compile(v, args):
    try:
        return v, compiler.compile(
            v, head_dim=args.head_dim, dtype=args.dtype,
            captures=gpu_capture_shapes(v),
            sink_logits=bool(v.sink_logits), sink_rows=bool(v.sink_rows),
            chip=args.chip, cache=args.out), None
    except compiler.CompileError as e:
        return v, None, e


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attn_mlir.variants")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="names and one-line summaries")
    show = sub.add_parser("show", help="print a variant's file")
    show.add_argument("name")
    gpu = sub.add_parser("compile-gpu", help="compile every variant for the "
                         "GPU (attn-opt --attn-to-nvvm)")
    gpu.add_argument("--out", default=None, help="bundle folder (default: "
                     "the bundle cache)")
    gpu.add_argument("--chip", default="sm_90a")
    gpu.add_argument("--dtype", default="bf16", choices=("bf16", "f16"))
    gpu.add_argument("--head-dim", type=int, default=64)
    args = ap.parse_args(argv)

    if args.cmd == "list":
        for v in load_all():
            print(f"{v.name:18s} {v.summary}")
        return 0
    if args.cmd == "show":
        print(path(args.name).read_text(), end="")
        return 0

    failed = 0
    workers = max(1, min(8, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        results = list(ex.map(lambda n: _compile(load(n), args), names()))
    print(f"GPU bundles ({args.chip}, {args.dtype}, head dim "
          f"{args.head_dim}):")
    for v, bundle, err in results:
        if bundle is not None:
            ptx = (bundle / "attn.ptx").read_text()
            wgmma = ptx.count("wgmma.mma_async.sync")
            sync = ptx.count("mma.sync.aligned")
            what = (f"{wgmma} wgmma.mma_async" if wgmma else
                    f"{sync} mma.sync")
            print(f"  ok       {v.name:18s} {bundle} ({what} in the PTX)")
        elif _REFUSAL in err.reason:
            print(f"  refused  {v.name:18s} {err.reason}")
        else:
            failed += 1
            print(f"  FAILED   {v.name:18s}\n{err}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
