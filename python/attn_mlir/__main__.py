"""attn-mlir from the command line (also installed as the ``attn-mlir``
command by ``pip install``).

    python -m attn_mlir list
    python -m attn_mlir compile VARIANT [--head-dim D] [--head-dim-v DV]
                                [--dtype bf16|f16] [--backward] [--chip C]
                                [--options "kv-tile=64 mma=wgmma"] [--out DIR]
    python -m attn_mlir run VARIANT --shape B,H,S,D [--device auto|cpu|cuda]
                            [--dtype f32|f16|bf16] [--lowering flash|loops]
                            [--seed N] [--tol T]

VARIANT is a library name (``list``) or a variant file (``*.mlir`` holding
one ``attn.variant``, with the library's ``@capture`` / ``@sink_*`` header
lines where it takes more operands).

``compile`` compiles the variant into a GPU kernel bundle
(``compiler.compile``: ``attn.cubin``, ``attn.ptx``, ``attn.json``) and
prints its folder: ``--out`` if given, else its entry of the bundle cache.

``run`` computes the variant on random seeded inputs of the given shape
through ``compiler.attention`` (on the GPU when torch sees a CUDA device and
``--device`` is ``auto`` or ``cuda``, else on the CPU JIT) and prints its
largest error against the float64 reference (``attn_mlir.reference``), as
``max |O - O_ref| / max |O_ref|``; it exits with 1 when that is above the
tolerance.

Exit codes: 0 done, 1 the compiler refused or the error is above the
tolerance, 2 a bad command line (an unknown variant, a bad shape, ...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

from . import compiler, variants

#: ``max |O - O_ref| / max |O_ref|`` accepted by ``run``, per element type:
#: f32 on the CPU; f16 on the CPU or the GPU and bf16 on the GPU round O
#: (the reference takes the rounded inputs; the kernels accumulate in f32).
TOLERANCE = {"f32": 1e-4, "f16": 5e-3, "bf16": 3e-2}

class UsageError(Exception):
    """A command line that names no variant or no shape that can be run."""


def load_variant(arg: str) -> variants.LibraryVariant:
    """A library name (aliases accepted) or a variant file."""
    p = Path(arg)
    if arg.endswith(".mlir") or p.is_file():
        if not p.is_file():
            raise UsageError(f"no variant file {arg}")
        try:
            return variants.parse_variant(p.read_text(), where=str(p))
        except (variants.LibraryError, UnicodeDecodeError) as e:
            raise UsageError(f"{arg} is not a variant file: {e}") from None
    try:
        return variants.load(arg)
    except KeyError as e:
        raise UsageError(f"{e.args[0]} (or give a .mlir variant file)") \
            from None


def parse_shape(text: str) -> tuple:
    """``"B,H,S,D"`` -> four positive integers."""
    parts = text.split(",")
    try:
        dims = tuple(int(x) for x in parts)
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1:
        raise UsageError(f"--shape is B,H,S,D (four positive integers), got "
                         f"{text!r}")
    return dims


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _run_gpu(v, q, k, val, caps, ops, dtype: str):
    """O on the GPU (bf16 / f16 tensors) and the inputs as it saw them."""
    import torch
    dev, dt = torch.device("cuda"), getattr(torch, compiler._TORCH_DTYPES[
        dtype])
    t = [torch.as_tensor(a).to(dev, dt) for a in (q, k, val)]
    tops = {n: torch.as_tensor(a).to(dev, torch.float32 if
                                     n == "sink_logits" else dt)
            for n, a in ops.items()}
    out = compiler.attention(*t, variant=v, captures=[
        torch.as_tensor(c).to(dev) for c in caps], **tops)
    seen = [x.float().cpu().numpy() for x in t]
    seen_ops = {n: x.float().cpu().numpy() for n, x in tops.items()}
    return out.float().cpu().numpy(), seen, seen_ops


def cmd_run(args) -> int:
    v = load_variant(args.variant)
    shape = parse_shape(args.shape)
    if args.device == "cuda" and not _cuda_available():
        raise UsageError("--device cuda: torch with a CUDA device is not "
                         "available (pip install 'attn-mlir[gpu]')")
    gpu = args.device == "cuda" or (args.device == "auto" and
                                   _cuda_available())
    dtype = args.dtype or ("bf16" if gpu else "f32")
    if gpu and dtype == "f32":
        raise UsageError("the GPU kernel takes bf16 or f16 (--dtype)")
    if not gpu and dtype == "bf16":
        raise UsageError("`run` on the CPU takes f32 or f16 (--dtype)")
    B, H, S, D = shape
    try:
        q, k, val, caps, ops = variants.random_operands(v, B, H, H, S, D, D,
                                                        seed=args.seed)
    except ValueError as e:
        raise UsageError(f"{e}, so `run` cannot make it; call "
                         "compiler.attention(..., captures=[...])") from None
    if gpu:
        o, (q, k, val), ops = _run_gpu(v, q, k, val, caps, ops, dtype)
        where = f"the GPU ({dtype} kernel bundle)"
    else:
        if dtype == "f16":       # the reference sees the rounded inputs
            q, k, val = (x.astype(np.float16) for x in (q, k, val))
            ops = {n: a if n == "sink_logits" else a.astype(np.float16)
                   for n, a in ops.items()}
        o = compiler.attention(q, k, val, variant=v, captures=caps,
                               lowering=args.lowering, **ops)
        where = f"the CPU JIT ({dtype}, lowering {args.lowering})"
    ref = v.reference(q.astype(np.float64), k.astype(np.float64),
                      val.astype(np.float64), *caps,
                      **{n: a.astype(np.float64) for n, a in ops.items()})
    o = np.asarray(o, np.float64)
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    err = float(np.max(np.abs(o - ref))) / scale if np.all(
        np.isfinite(o)) else float("inf")
    tol = TOLERANCE[dtype] if args.tol is None else args.tol
    print(f"{v.name}: B={B} H={H} S={S} D={D} on {where}")
    print(f"max relative error {err:.3e} (max |O - O_ref| / max |O_ref|, "
          f"O_ref the float64 reference; tolerance {tol:.0e})")
    if err > tol:
        print("error: above the tolerance", file=sys.stderr)
        return 1
    return 0


def cmd_compile(args) -> int:
    v = load_variant(args.variant)
    for flag, d in (("--head-dim", args.head_dim),
                    ("--head-dim-v", args.head_dim_v)):
        if d is not None and d < 1:
            raise UsageError(f"{flag} is a positive integer, got {d}")
    try:
        options = compiler.parse_options(args.options or "")
        compiler.kernel_option_args(options)
    except ValueError as e:
        raise UsageError(f"--options: {e}") from None
    bundle = compiler.compile(
        v, head_dim=args.head_dim, head_dim_v=args.head_dim_v,
        dtype=args.dtype, captures=variants.gpu_capture_shapes(v),
        sink_logits=bool(v.sink_logits), sink_rows=bool(v.sink_rows),
        chip=args.chip, options=options, backward=args.backward,
        out=args.out)
    print(bundle)
    return 0


def cmd_list(args) -> int:
    for v in variants.load_all():
        print(f"{v.name:18s} {v.summary}")
    aliases = ", ".join(f"{a} = {n}" for a, n in sorted(
        variants.ALIASES.items()))
    print(f"(aliases: {aliases})")
    return 0


def _command(sub, name: str, fn, summary: str, description: str,
             variant: bool = True) -> argparse.ArgumentParser:
    """The subcommand ``name`` running ``fn(args)``; with ``variant``, its
    VARIANT argument."""
    p = sub.add_parser(name, help=summary, description=description)
    p.set_defaults(run=fn, parser=p)
    if variant:
        p.add_argument("variant", metavar="VARIANT",
                       help="a library name or a .mlir variant file")
    return p


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m attn_mlir",
        description="Compile and run attention variants (a library name, "
        "see `list`, or a .mlir file holding one attn.variant).")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    _command(sub, "list", cmd_list, "the library's variants",
             "The library's variants, with the first sentence of each "
             "file's comment.", variant=False)
    c = _command(
        sub, "compile", cmd_compile, "compile a variant into a GPU kernel "
        "bundle", "Compile VARIANT with attn-opt --attn-to-nvvm into a "
        "kernel bundle (attn.cubin, attn.ptx, attn.json) and print its "
        "folder. Batch, head and sequence sizes stay dynamic; the head dims "
        "and the element type are compiled in.")
    c.add_argument("--head-dim", type=int, default=64, metavar="D",
                   help="head dim of q and k (default 64)")
    c.add_argument("--head-dim-v", type=int, default=None, metavar="DV",
                   help="head dim of v and O (default: D)")
    c.add_argument("--dtype", default="bf16", choices=("bf16", "f16"),
                   help="element type of q, k, v, O (default bf16)")
    c.add_argument("--backward", action="store_true",
                   help="also the backward kernels (the bundle's entry "
                   "<variant>_attention_grad)")
    c.add_argument("--chip", default="sm_90a",
                   help="the GPU to compile for (default sm_90a)")
    c.add_argument("--options", default=None, metavar="'NAME=VALUE ...'",
                   help="kernel options of --attn-to-nvvm, e.g. 'kv-tile=64 "
                   f"mma=wgmma' ({', '.join(compiler.KERNEL_OPTIONS.values())})")
    c.add_argument("--out", default=None, metavar="DIR",
                   help="the bundle folder (default: the bundle cache, "
                   "$ATTN_MLIR_CACHE or ~/.cache/attn_mlir)")
    r = _command(
        sub, "run", cmd_run, "run a variant on random inputs against the "
        "reference", "Run VARIANT on random seeded q, k, v of --shape (and "
        "the captures and sinks it declares) through compiler.attention and "
        "print its largest error against the float64 reference, "
        "max |O - O_ref| / max |O_ref|; exit 1 above the tolerance.")
    r.add_argument("--shape", required=True, metavar="B,H,S,D",
                   help="batch, heads (of q and of k, v), sequence length "
                   "(of q and of k, v), head dim")
    r.add_argument("--device", default="auto", choices=("auto", "cpu",
                                                        "cuda"),
                   help="auto (default): the GPU when torch sees a CUDA "
                   "device, else the CPU JIT")
    r.add_argument("--dtype", default=None, choices=("f32", "f16", "bf16"),
                   help="element type: f32 (default) or f16 on the CPU, "
                   "bf16 (default) or f16 on the GPU")
    r.add_argument("--lowering", default="flash", choices=("flash", "loops"),
                   help="CPU lowering: flash (tiled online softmax, default) "
                   "or loops (the literal definition)")
    r.add_argument("--seed", type=int, default=0, help="input seed "
                   "(default 0)")
    r.add_argument("--tol", type=float, default=None,
                   help="largest accepted error (default: "
                   + ", ".join(f"{t:.0e} for {d}" for d, t in
                               TOLERANCE.items()) + ")")
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as e:
        args.parser.error(str(e))      # the command's usage; exits with 2
    except compiler.CompileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
