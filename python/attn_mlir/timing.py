"""Timing attention: the FLOP count of the benchmarks, GPU timing, wall-clock
timing of CPU calls, and a step that runs only the backward of a torch
attention.

``python -m attn_mlir bench``, bench/gpu_bench.py and bench/gpu_backward.py
share these, so that the command line and the measured tables count and
time alike.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, List, Optional, Tuple


def attention_flops(B: int, H: int, Sq: int, Sk: int, D: int,
                    Dv: Optional[int] = None, causal: bool = False,
                    backward: bool = False) -> float:
    """The FLOPs the benchmarks divide by (FlashAttention's convention):
    ``2 * B * H * Sq * Sk * (D + Dv)`` for ``Q K^T`` and ``P V``
    (``4 * B * H * S * S * D`` where ``Sq = Sk`` and ``Dv = D``), halved
    under a causal mask whatever else the variant masks (a window keeps the
    causal count, a document mask the dense one); the backward counts 2.5x
    the forward."""
    dv = D if Dv is None else Dv
    f = 2.0 * B * H * Sq * Sk * (D + dv)
    if causal:
        f /= 2
    return 2.5 * f if backward else f


def gpu_time_ms(fn: Callable[[], object], warmup_ms: float = 25,
                rep_ms: float = 100) -> Tuple[float, str]:
    """``(median milliseconds of fn(), how it was timed)`` on the current
    CUDA stream: ``triton.testing.do_bench`` (what bench/ reports) where
    triton is installed, else CUDA events around each call, the L2 cache
    cleared before each as do_bench does."""
    try:
        from triton.testing import do_bench
    except ImportError:
        do_bench = None
    if do_bench is not None:
        return (do_bench(fn, warmup=warmup_ms, rep=rep_ms,
                         return_mode="median"),
                "triton.testing.do_bench, median")
    import torch
    flush = torch.empty(256 << 20, dtype=torch.int8, device="cuda")
    fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(start.elapsed_time(end) / 5, 1e-3)
    for _ in range(max(1, int(warmup_ms / estimate))):
        fn()
    n = max(1, int(rep_ms / estimate))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for s, e in zip(starts, ends):
        flush.zero_()
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return (statistics.median(s.elapsed_time(e) for s, e in
                              zip(starts, ends)),
            f"CUDA events, median of {n} (triton is not installed)")


def wall_clock_s(fn: Callable[[], object], repeats: int) -> List[float]:
    """Seconds of ``repeats`` calls of ``fn()``, one by one
    (``time.perf_counter``)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def backward_step(fn, q, k, v, do) -> Callable[[], object]:
    """A function that runs only the backward of ``fn(q, k, v)`` (a torch
    attention): the forward runs once here, each call then takes the
    gradients of its output for ``do`` (the graph retained)."""
    import torch
    qq, kk, vv = (t.detach().requires_grad_() for t in (q, k, v))
    out = fn(qq, kk, vv)
    return lambda: torch.autograd.grad(out, (qq, kk, vv), do,
                                       retain_graph=True)
