"""attn-mlir from the command line (also installed as the ``attn-mlir``
command by ``pip install``).

    python -m attn_mlir list
    python -m attn_mlir compile VARIANT [--head-dim D] [--head-dim-v DV]
                                [--dtype bf16|f16] [--backward] [--chip C]
                                [--options "kv-tile=64 mma=wgmma"] [--out DIR]
    python -m attn_mlir run VARIANT --shape B,H,S,D [--device auto|cpu|cuda]
                            [--dtype f32|f16|bf16] [--lowering flash|loops]
                            [--seed N] [--tol T]
    python -m attn_mlir bench VARIANT --shape B,H,S,D [--backward]
                              [--device ...] [--dtype ...] [--repeats N]
                              [--options "..."] [--lowering ...] [--seed N]
                              [--prebuild]

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
tolerance. ``--device gpu`` is ``--device cuda``; the GPU path needs torch
with a CUDA device and cuda-bindings (``gpu_unavailable`` says which is
missing).

``bench`` checks the variant once as ``run`` does (and, with
``--backward``, its gradients against ``reference.attention_backward``),
then times it. On the GPU the check runs on at most ``CHECK_MAX_SEQ``
positions (the float64 reference of a long sequence takes minutes; the
kernel is the same), the timing on the given shape: the kernel bundle
(``compile``'s; with
``--backward`` the bundle with ``<variant>_attention_grad``) launched
directly on preallocated outputs, and torch SDPA (``is_causal`` where the
variant has a causal mask) on the same inputs in the same process, through
``timing.gpu_time_ms`` (triton's ``do_bench`` as in bench/, else CUDA
events); it prints TFLOP/s (``timing.attention_flops``, bench/'s count) and
attn-mlir / SDPA, and says whether SDPA computes the same function or is
only a speed reference. Without a GPU: the CPU path, ``compiler.attention``
(``cpu_cache=True``: the function compiled once) timed by wall clock over
``--repeats`` calls, and the output says that it is the CPU path and why.
``--prebuild`` compiles the bundles the GPU bench would load into the bundle
cache and prints their folders, without timing (on a machine with MLIR, for
a GPU machine without it given the same ``$ATTN_MLIR_CACHE``).

Exit codes: 0 done, 1 the compiler refused or an error is above the
tolerance, 2 a bad command line (an unknown variant, a bad shape, ...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Tuple

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


def gpu_unavailable() -> Optional[str]:
    """Why the GPU path cannot run here (None when it can): torch, a CUDA
    device it sees, and cuda-bindings (the runtime's driver API)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    try:
        import cuda.bindings.driver  # noqa: F401
    except ImportError:
        return "cuda-bindings is not installed"
    return None


def _use_gpu(args) -> Tuple[bool, Optional[str]]:
    """Whether ``--device`` (auto, cpu, cuda or its alias gpu) picks the
    GPU, and why not where auto falls back to the CPU; ``UsageError`` when
    it asks for a GPU that cannot run."""
    if args.device == "cpu":
        return False, "--device cpu"
    why = gpu_unavailable()
    if args.device in ("cuda", "gpu") and why:
        raise UsageError(f"--device {args.device}: no usable GPU ({why}); "
                         "pip install 'attn-mlir[gpu]' on a machine with an "
                         "NVIDIA GPU")
    return why is None, why


def _dtype(args, gpu: bool, command: str) -> str:
    dtype = args.dtype or ("bf16" if gpu else "f32")
    if gpu and dtype == "f32":
        raise UsageError("the GPU kernel takes bf16 or f16 (--dtype)")
    if not gpu and dtype == "bf16":
        raise UsageError(f"`{command}` on the CPU takes f32 or f16 (--dtype)")
    return dtype


def _operands(v, shape: tuple, seed: int, command: str):
    B, H, S, D = shape
    try:
        return variants.random_operands(v, B, H, H, S, D, D, seed=seed)
    except ValueError as e:
        raise UsageError(f"{e}, so `{command}` cannot make it; call "
                         "compiler.attention(..., captures=[...])") from None


def _capture_shapes(v, shape: tuple, command: str) -> list:
    """The (shape, element type) of each capture `_operands` would make."""
    B, H, S, D = shape
    try:
        return variants.capture_shapes(v, B, H, H, S, D, D)
    except ValueError as e:
        raise UsageError(f"{e}, so `{command}` cannot make it; call "
                         "compiler.attention(..., captures=[...])") from None


def _round_f16(q, k, val, ops):
    """The f16 inputs of the CPU path, as the reference must see them."""
    q, k, val = (x.astype(np.float16) for x in (q, k, val))
    ops = {n: a if n == "sink_logits" else a.astype(np.float16)
           for n, a in ops.items()}
    return q, k, val, ops


def _to_gpu(q, k, val, caps, ops, dtype: str):
    """The operands as the GPU kernel takes them (q, k, v and the sink rows
    of ``dtype``, sink logits f32, the captures as they are)."""
    import torch
    dev, dt = torch.device("cuda"), getattr(torch, compiler._TORCH_DTYPES[
        dtype])
    t = [torch.as_tensor(a).to(dev, dt) for a in (q, k, val)]
    tops = {n: torch.as_tensor(a).to(dev, torch.float32 if
                                     n == "sink_logits" else dt)
            for n, a in ops.items()}
    return t, [torch.as_tensor(c).to(dev) for c in caps], tops


def _numpy(*ts):
    return [t.float().cpu().numpy() for t in ts]


def _run_gpu(v, q, k, val, caps, ops, dtype: str):
    """O on the GPU (bf16 / f16 tensors) and the inputs as it saw them."""
    t, tcaps, tops = _to_gpu(q, k, val, caps, ops, dtype)
    out = compiler.attention(*t, variant=v, captures=tcaps, **tops)
    seen_ops = dict(zip(tops, _numpy(*tops.values())))
    return _numpy(out)[0], _numpy(*t), seen_ops


def relative_error(got, want) -> float:
    """``max |got - want| / max |want|`` (inf where got is not finite)."""
    got = np.asarray(got, np.float64)
    scale = max(float(np.max(np.abs(want))), 1e-30)
    return float(np.max(np.abs(got - want))) / scale if np.all(
        np.isfinite(got)) else float("inf")


def _reference(v, q, k, val, caps, ops):
    return v.reference(q.astype(np.float64), k.astype(np.float64),
                       val.astype(np.float64), *caps,
                       **{n: a.astype(np.float64) for n, a in ops.items()})


def cmd_run(args) -> int:
    v = load_variant(args.variant)
    shape = parse_shape(args.shape)
    gpu, _ = _use_gpu(args)
    dtype = _dtype(args, gpu, "run")
    B, H, S, D = shape
    q, k, val, caps, ops = _operands(v, shape, args.seed, "run")
    if gpu:
        o, (q, k, val), ops = _run_gpu(v, q, k, val, caps, ops, dtype)
        where = f"the GPU ({dtype} kernel bundle)"
    else:
        if dtype == "f16":       # the reference sees the rounded inputs
            q, k, val, ops = _round_f16(q, k, val, ops)
        o = compiler.attention(q, k, val, variant=v, captures=caps,
                               lowering=args.lowering, **ops)
        where = f"the CPU JIT ({dtype}, lowering {args.lowering})"
    err = relative_error(o, _reference(v, q, k, val, caps, ops))
    tol = TOLERANCE[dtype] if args.tol is None else args.tol
    print(f"{v.name}: B={B} H={H} S={S} D={D} on {where}")
    print(f"max relative error {err:.3e} (max |O - O_ref| / max |O_ref|, "
          f"O_ref the float64 reference; tolerance {tol:.0e})")
    if err > tol:
        print("error: above the tolerance", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------

#: Largest ``||g - g_ref|| / ||g_ref||`` of a gradient accepted by ``bench
#: --backward`` (bf16: bench/gpu_backward.py's tolerance).
GRAD_TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 3e-2}


def _causal(v) -> bool:
    return any(m.get("kind") == "causal" for m in v.spec.get("masks") or ())


def _is_plain_sdpa(v) -> bool:
    """Whether torch SDPA (``is_causal`` as the variant) computes the
    variant's function: softmax of q.k / sqrt(D), at most a causal mask."""
    spec = {k: x for k, x in v.spec.items() if x is not None}
    masks = spec.pop("masks", None) or []
    return spec in ({}, {"normalization": "softmax"}) and all(
        m == {"kind": "causal"} for m in masks) and not (
        v.captures or v.sink_logits or v.sink_rows or v.score_mod_fn or
        v.mask_mod_fn)


def _grad_errors(v, grads, q, k, val, do, caps, ops) -> dict:
    """``||g - g_ref|| / ||g_ref||`` per gradient of ``grads``
    (``compiler.AttentionGrads``) against ``reference.attention_backward``
    on the same (rounded) inputs."""
    from . import reference
    f64 = lambda a: None if a is None else np.asarray(a, np.float64)  # noqa
    ref = reference.attention_backward(
        f64(q), f64(k), f64(val), f64(do), captures=[
            c.astype(np.float64 if c.dtype.kind == "f" else np.int64)
            for c in caps],
        sink_logits=f64(ops.get("sink_logits")),
        sink_key=f64(ops.get("sink_key")),
        sink_value=f64(ops.get("sink_value")), **v.reference_kwargs())
    pairs = [("dq", grads.dq, ref.dq), ("dk", grads.dk, ref.dk),
             ("dv", grads.dv, ref.dv)]
    for name in ("d_sink_logits", "d_sink_key", "d_sink_value"):
        if getattr(ref, name) is not None:
            pairs.append((name, getattr(grads, name), getattr(ref, name)))
    pairs += [(f"d_{c.name}", g, r) for c, g, r in zip(
        v.captures, grads.d_captures, ref.d_captures) if r is not None]
    errors = {}
    for name, got, want in pairs:
        got = np.asarray(got.float().cpu().numpy() if hasattr(got, "cpu")
                         else got, np.float64)
        errors[name] = float(np.linalg.norm(got - want) / max(
            np.linalg.norm(want), 1e-30)) if np.all(np.isfinite(got)) \
            else float("inf")
    return errors


def _report_check(what: str, err, tol: float) -> bool:
    """Prints a check's line; whether it passed (``err``: a number, or a
    dict of them per gradient)."""
    if isinstance(err, dict):
        worst = max(err.values())
        detail = ", ".join(f"{n} {e:.2e}" for n, e in err.items())
        print(f"check {what}: ||g - g_ref|| / ||g_ref|| {detail} against the "
              f"float64 reference (tolerance {tol:.0e})")
    else:
        worst = err
        print(f"check {what}: max |O - O_ref| / max |O_ref| {err:.3e} "
              f"against the float64 reference (tolerance {tol:.0e})")
    if worst > tol:
        print(f"error: {what} above the tolerance; not timed",
              file=sys.stderr)
        return False
    return True


def _bench_cpu(v, args, shape, dtype: str, why: str) -> int:
    """Wall-clock times of the CPU path (compiler.attention on numpy
    arrays: cpu_module's compiled function, else attn-run)."""
    from . import cpu_module, timing
    B, H, S, D = shape
    q, k, val, caps, ops = _operands(v, shape, args.seed, "bench")
    if dtype == "f16":
        q, k, val, ops = _round_f16(q, k, val, ops)
    cached = cpu_module.available()
    how = ("compiled once into a shared library (attn_mlir.cpu_module), "
           "called through ctypes" if cached else "attn-run, which lowers "
           "and JIT-compiles the function again on every call (no "
           "mlir-translate or clang for attn_mlir.cpu_module), so the times "
           "include compilation")
    print(f"{v.name}: B={B} H={H} S={S} D={D}, {dtype}, on the CPU path, not "
          f"the GPU ({why}): the CPU JIT, lowering {args.lowering}, {how}")
    kw = dict(variant=v, captures=caps, lowering=args.lowering,
              cpu_cache=cached, **ops)
    with_lse = args.backward and v.has_lse

    def forward():
        return compiler.attention(q, k, val, return_lse=with_lse, **kw)

    o, lse = forward() if with_lse else (forward(), None)
    tol = TOLERANCE[dtype] if args.tol is None else args.tol
    if not _report_check("O", relative_error(
            o, _reference(v, q, k, val, caps, ops)), tol):
        return 1
    steps = [("forward", forward, False)]
    if args.backward:
        do = np.random.default_rng(args.seed + 1).standard_normal(
            o.shape).astype(o.dtype)

        def backward():
            return compiler.attention_grad(q, k, val, o, do, lse=lse, **kw)

        if not _report_check("gradients", _grad_errors(
                v, backward(), q, k, val, do, caps, ops),
                GRAD_TOLERANCE[dtype] if args.tol is None else args.tol):
            return 1
        steps.append(("backward", backward, True))
    for name, fn, is_grad in steps:
        times = timing.wall_clock_s(fn, args.repeats)
        med = float(np.median(times))
        fl = timing.attention_flops(B, H, S, S, D, causal=_causal(v),
                                    backward=is_grad)
        print(f"{name}: {med * 1e3:.2f} ms median of {args.repeats} calls "
              f"(min {min(times) * 1e3:.2f} ms), {fl / med / 1e9:.2f} "
              "GFLOP/s")
    print(_flops_note(v))
    return 0


def _flops_note(v) -> str:
    return ("FLOPs: 4*B*H*S*S*D" + (", halved for the causal mask" if
                                    _causal(v) else "") +
            "; the backward 2.5x (bench/'s count)")


#: ``bench`` on the GPU checks on at most this many queries and keys (the
#: float64 reference of a 16k sequence would take minutes); the kernel is
#: the same for every length.
CHECK_MAX_SEQ = 1024


class _GpuCase:
    """Seeded inputs of ``shape`` on the GPU, the variant's kernels for
    them (forward; with ``backward`` also the bundle's forward entry, which
    gives the LSE the backward takes, and the backward) and dO."""

    def __init__(self, v, args, shape, dtype: str, options: dict):
        import torch
        self.v, self.options = v, options
        q, k, val, self.caps, ops = _operands(v, shape, args.seed, "bench")
        (self.q, self.k, self.val), self.tcaps, self.tops = _to_gpu(
            q, k, val, self.caps, ops, dtype)
        sinks = {n: self.tops.get(n) for n in ("sink_logits", "sink_key",
                                               "sink_value")}
        self.extra = compiler._gpu_operands(v, self.q, self.tcaps, **sinks)
        compiled = dict(head_dim=shape[3], dtype=dtype, captures=self.tcaps,
                        sink_logits=bool(v.sink_logits),
                        sink_rows=bool(v.sink_rows), options=options)
        dev = self.q.device
        self.fwd = compiler._gpu_kernel(compiler.compile(v, **compiled), dev)
        self.bwd = None
        if args.backward:
            path = compiler.compile(v, backward=True, **compiled)
            fwd2 = compiler._gpu_kernel(path, dev, f"{v.name}_attention")
            self.bwd = compiler._gpu_kernel(path, dev,
                                            f"{v.name}_attention_grad")
            self.o, lse = fwd2.run(self.q, self.k, self.val, **self.extra)
            self.lse = lse if "lse" in self.bwd.params else None
            self.do = torch.randn(self.o.shape, device=dev,
                                  generator=torch.Generator(dev).manual_seed(
                                      args.seed + 1)).to(self.o.dtype)

    def check(self, args, dtype: str) -> bool:
        """O (and the gradients) against the float64 reference."""
        v = self.v
        o = compiler.attention(self.q, self.k, self.val, variant=v,
                               captures=self.tcaps, options=self.options,
                               **self.tops)
        seen = _numpy(self.q, self.k, self.val)
        seen_ops = dict(zip(self.tops, _numpy(*self.tops.values())))
        tol = TOLERANCE[dtype] if args.tol is None else args.tol
        if not _report_check("O", relative_error(_numpy(o)[0], _reference(
                v, *seen, self.caps, seen_ops)), tol):
            return False
        if self.bwd is None:
            return True
        grads = compiler.attention_grad(
            self.q, self.k, self.val, self.o, self.do, variant=v,
            lse=self.lse, captures=self.tcaps, options=self.options,
            **self.tops)
        return _report_check("gradients", _grad_errors(
            v, grads, *seen, _numpy(self.do)[0], self.caps, seen_ops),
            GRAD_TOLERANCE[dtype] if args.tol is None else args.tol)


def _gpu_module_text(v, args, shape, dtype: str) -> str:
    """The module ``compile`` builds for the operands of ``shape``."""
    return compiler.gpu_module(v, head_dim=shape[3], dtype=dtype,
                               captures=_capture_shapes(v, shape, "bench"),
                               sink_logits=bool(v.sink_logits),
                               sink_rows=bool(v.sink_rows),
                               backward=args.backward)


def _gpu_shapes(v, args, shape: tuple, dtype: str) -> List[tuple]:
    """The shapes ``bench`` runs on the GPU: the check's, then the timed
    one. The check takes at most CHECK_MAX_SEQ positions where that is the
    same kernel (the same module: a capture sized by S, other than segment
    ids, makes another) and the variant allows it (neighborhood masks tie
    the sizes to their parameters), else the timed shape itself."""
    B, H, S, D = shape
    check = (B, H, min(S, CHECK_MAX_SEQ), D)
    fixed = any(str(m.get("kind", "")).startswith("neighborhood")
                for m in v.spec.get("masks") or ())
    if check == shape or fixed or _gpu_module_text(
            v, args, check, dtype) != _gpu_module_text(v, args, shape, dtype):
        return [shape]
    return [check, shape]


def _prebuild(v, args, shape, dtype: str, options: dict) -> int:
    """``bench --prebuild``: the bundles the GPU bench of ``shape`` loads,
    compiled into the bundle cache with the arguments it passes (capture
    shapes of the check's and of the timed inputs), so that a GPU machine
    without MLIR runs it from the same cache folder."""
    for s in _gpu_shapes(v, args, shape, dtype):
        compiled = dict(head_dim=s[3], dtype=dtype,
                        captures=_capture_shapes(v, s, "bench"),
                        sink_logits=bool(v.sink_logits),
                        sink_rows=bool(v.sink_rows), options=options)
        for backward in (False, True) if args.backward else (False,):
            print(compiler.compile(v, backward=backward, **compiled))
    return 0


def _bench_gpu(v, args, shape, dtype: str, options: dict) -> int:
    """The variant's kernel bundle checked once against the float64
    reference (on at most CHECK_MAX_SEQ positions) and timed against torch
    SDPA in the same process."""
    import torch
    import torch.nn.functional as F
    from . import timing
    B, H, S, D = shape
    print(f"{v.name}: B={B} H={H} S={S} D={D}, {dtype}, on the GPU "
          f"({torch.cuda.get_device_name()}, the kernel bundle)")
    check_shape = _gpu_shapes(v, args, shape, dtype)[0]
    if check_shape != shape:
        print(f"checked on S={check_shape[2]} (the same kernel bundle; the "
              f"float64 reference of S={S} would take minutes)")
    if not _GpuCase(v, args, check_shape, dtype, options).check(args, dtype):
        return 1
    c = _GpuCase(v, args, shape, dtype, options)
    q, k, val = c.q, c.k, c.val
    out, lse = c.fwd.run(q, k, val, **c.extra)
    causal = _causal(v)
    rows = [("forward", lambda: c.fwd.run(q, k, val, out=out, lse=lse,
                                          **c.extra),
             lambda: F.scaled_dot_product_attention(q, k, val,
                                                    is_causal=causal), False)]
    if c.bwd is not None:
        rows.append(("backward", lambda: c.bwd.run_grad(
            q, k, val, c.o, c.do, lse=c.lse, **c.extra), timing.backward_step(
            lambda a, b, d: F.scaled_dot_product_attention(
                a, b, d, is_causal=causal), q, k, val, c.do), True))
    print(f"peer: torch SDPA (is_causal={causal}): " + (
        "the same attention" if _is_plain_sdpa(v) else "plain softmax "
        "attention, a speed reference, not the variant's function"))
    for name, ours, sdpa, is_grad in rows:
        fl = timing.attention_flops(B, H, S, S, D, causal=causal,
                                    backward=is_grad)
        ms, how = timing.gpu_time_ms(ours)
        ms_peer, _ = timing.gpu_time_ms(sdpa)
        print(f"{name}: attn-mlir {ms:.3f} ms {fl / ms / 1e9:.1f} TFLOP/s, "
              f"SDPA {ms_peer:.3f} ms {fl / ms_peer / 1e9:.1f} TFLOP/s, "
              f"attn-mlir / SDPA {ms_peer / ms:.2f}")
    print(f"same process, same inputs; timed with {how}. {_flops_note(v)}")
    return 0


def cmd_bench(args) -> int:
    v = load_variant(args.variant)
    shape = parse_shape(args.shape)
    if args.repeats < 1:
        raise UsageError(f"--repeats is a positive integer, got "
                         f"{args.repeats}")
    options = _kernel_options(args.options)
    if args.prebuild:
        return _prebuild(v, args, shape, _dtype(args, True, "bench"),
                         options)
    gpu, why = _use_gpu(args)
    dtype = _dtype(args, gpu, "bench")
    if not gpu:
        if options:
            raise UsageError(f"--options are kernel options of the GPU; this "
                             f"bench runs on the CPU path ({why})")
        return _bench_cpu(v, args, shape, dtype, why)
    return _bench_gpu(v, args, shape, dtype, options)


def _kernel_options(text) -> dict:
    try:
        options = compiler.parse_options(text or "")
        compiler.kernel_option_args(options)
    except ValueError as e:
        raise UsageError(f"--options: {e}") from None
    return options


def cmd_compile(args) -> int:
    v = load_variant(args.variant)
    for flag, d in (("--head-dim", args.head_dim),
                    ("--head-dim-v", args.head_dim_v)):
        if d is not None and d < 1:
            raise UsageError(f"{flag} is a positive integer, got {d}")
    options = _kernel_options(args.options)
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


def _operand_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``run`` and ``bench`` that say what to compute on."""
    p.add_argument("--shape", required=True, metavar="B,H,S,D",
                   help="batch, heads (of q and of k, v), sequence length "
                   "(of q and of k, v), head dim")
    p.add_argument("--device", default="auto",
                   choices=("auto", "cpu", "cuda", "gpu"),
                   help="auto (default): the GPU when torch sees a CUDA "
                   "device, else the CPU JIT; gpu is cuda")
    p.add_argument("--dtype", default=None, choices=("f32", "f16", "bf16"),
                   help="element type: f32 (default) or f16 on the CPU, "
                   "bf16 (default) or f16 on the GPU")
    p.add_argument("--lowering", default="flash", choices=("flash", "loops"),
                   help="CPU lowering: flash (tiled online softmax, default) "
                   "or loops (the literal definition)")
    p.add_argument("--seed", type=int, default=0, help="input seed "
                   "(default 0)")


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
    _operand_arguments(r)
    r.add_argument("--tol", type=float, default=None,
                   help="largest accepted error (default: "
                   + ", ".join(f"{t:.0e} for {d}" for d, t in
                               TOLERANCE.items()) + ")")
    b = _command(
        sub, "bench", cmd_bench, "time a variant's kernel (or the CPU path)",
        "Time VARIANT on random seeded inputs of --shape. With a GPU (torch "
        "sees a CUDA device; cuda-bindings installed): its kernel bundle, "
        "checked once against the float64 reference, then timed (triton's "
        "do_bench, else CUDA events) against torch SDPA in the same process, "
        "printing TFLOP/s and attn-mlir / SDPA. Without one: the CPU path "
        "(compiler.attention on numpy arrays), checked the same way and "
        "timed by wall clock over --repeats calls. --backward times the "
        "gradients too. Exit 1 when a check fails (nothing is then timed).")
    _operand_arguments(b)
    b.add_argument("--backward", action="store_true",
                   help="also check and time the gradients (the bundle's "
                   "<variant>_attention_grad; on the CPU attention_grad)")
    b.add_argument("--repeats", type=int, default=5, metavar="N",
                   help="timed calls on the CPU path (default 5; the GPU is "
                   "timed by do_bench's own repetitions)")
    b.add_argument("--options", default=None, metavar="'NAME=VALUE ...'",
                   help="kernel options of --attn-to-nvvm (the GPU only), "
                   "as for `compile`")
    b.add_argument("--prebuild", action="store_true",
                   help="compile the kernel bundles the GPU bench loads into "
                   "the bundle cache ($ATTN_MLIR_CACHE) and print their "
                   "folders, without timing: for a GPU machine without MLIR "
                   "given the same cache folder")
    b.add_argument("--tol", type=float, default=None,
                   help="largest accepted error of O and of each gradient "
                   "(default: O " + ", ".join(
                       f"{t:.0e} for {d}" for d, t in TOLERANCE.items())
                   + "; gradients, ||g - g_ref|| / ||g_ref||, " + ", ".join(
                       f"{t:.0e} for {d}" for d, t in GRAD_TOLERANCE.items())
                   + ")")
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
