"""What the examples share: finding the package, choosing the device, running
a variant and checking it against the float64 reference.

Every example runs on the GPU (bfloat16 torch tensors, through a kernel
bundle) when torch sees a CUDA device, and on the CPU JIT (float32, through
attn-run) otherwise. Options of every example:

    --device=auto|cpu|cuda   where to run (default auto)
    --compile-only           only compile the GPU bundles into the cache
                             (on a machine with MLIR, for a GPU machine
                             that shares $ATTN_MLIR_CACHE)
    --quiet                  do not print the MLIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from attn_mlir import compiler, dsl, variants  # noqa: E402,F401
from attn_mlir import reference as ref  # noqa: E402,F401

ARGS = sys.argv[1:]
COMPILE_ONLY = "--compile-only" in ARGS
QUIET = "--quiet" in ARGS
_DEVICE = next((a.split("=", 1)[1] for a in ARGS if a.startswith("--device=")),
               os.environ.get("ATTN_EXAMPLES_DEVICE", "auto"))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


if _DEVICE not in ("auto", "cpu", "cuda"):
    sys.exit(f"--device is auto, cpu or cuda, got {_DEVICE!r}")
GPU = COMPILE_ONLY or _DEVICE == "cuda" or (_DEVICE == "auto" and
                                            _cuda_available())


def _path_taken() -> str:
    """Which path the examples take, and why (printed once)."""
    if COMPILE_ONLY:
        return "compiling the GPU bundles only (--compile-only)"
    if GPU:
        import torch
        return (f"running on the GPU ({torch.cuda.get_device_name()}, "
                f"bf16 kernel bundles)")
    if _DEVICE == "cpu":
        return "running on the CPU JIT (--device=cpu)"
    try:
        import torch  # noqa: F401
        why = "torch sees no CUDA device"
    except ImportError:
        why = "torch is not installed"
    return f"running on the CPU JIT (f32 through attn-run): {why}"


print(f"[attn-mlir examples] {_path_taken()}", flush=True)
#: Relative tolerance (of max |reference|): the GPU computes in bf16 with f32
#: accumulation and rounds O to bf16; the CPU JIT computes in f32.
TOL = 1e-2 if GPU else 1e-4

_failures = []


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)))


def show(variant) -> None:
    """Prints the attn.variant that is compiled."""
    if not QUIET:
        print(variant.mlir().rstrip())


def rng(seed=0):
    return np.random.default_rng(seed)


def run(variant, q, k, v, captures=(), **operands):
    """Runs ``variant``: returns ``(O as float64 numpy, the inputs as the
    kernel saw them)`` (bf16-rounded on the GPU), or ``(None, None)`` with
    --compile-only."""
    if COMPILE_ONLY:
        v_ = compiler.resolve_variant(variant)
        path = compiler.compile(
            v_, head_dim=q.shape[-1], head_dim_v=v.shape[-1], dtype="bf16",
            captures=captures,
            sink_logits=operands.get("sink_logits") is not None,
            sink_rows=operands.get("sink_key") is not None)
        print(f"compiled {v_.name} -> {path}")
        return None, None
    if GPU:
        import torch
        dev = torch.device("cuda")
        t = {n: torch.as_tensor(a).to(dev, torch.bfloat16)
             for n, a in (("q", q), ("k", k), ("v", v))}
        ops = {n: (torch.as_tensor(a).to(dev, torch.float32)
                   if n == "sink_logits" else
                   torch.as_tensor(a).to(dev, torch.bfloat16))
               for n, a in operands.items() if a is not None}
        caps = [torch.as_tensor(c).to(dev) for c in captures]
        out = compiler.attention(t["q"], t["k"], t["v"], variant=variant,
                                 captures=caps, **ops)
        seen = {n: x.float().cpu().numpy() for n, x in {**t, **ops}.items()}
        return out.float().cpu().numpy().astype(np.float64), seen
    out = compiler.attention(q, k, v, variant=variant, captures=captures,
                             **{n: a for n, a in operands.items()
                                if a is not None})
    seen = {"q": q, "k": k, "v": v, **{n: a for n, a in operands.items()
                                       if a is not None}}
    return np.asarray(out, np.float64), seen


def check(name: str, got, want, tol: float = None) -> None:
    """Records a mismatch between ``got`` and ``want`` (None: skipped)."""
    if got is None:
        return
    tol = TOL if tol is None else tol
    scale = max(float(np.max(np.abs(want))), 1e-30)
    err = float(np.max(np.abs(got - want))) / scale
    ok = np.all(np.isfinite(got)) and err <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |O - ref| / max |ref| = "
          f"{err:.2e} (tolerance {tol:.0e})")
    if not ok:
        _failures.append(name)


def where() -> str:
    if COMPILE_ONLY:
        return "compile only (GPU bundles into the cache)"
    return ("the GPU (bf16 kernel bundle)" if GPU
            else "the CPU JIT (attn-run, f32)")


def finish() -> None:
    """Exits non-zero if any check failed."""
    if _failures:
        print(f"\n{len(_failures)} check(s) FAILED: {', '.join(_failures)}")
        sys.exit(1)
    print("\nall checks passed" if not COMPILE_ONLY else "\ncompiled")
