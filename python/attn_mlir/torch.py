"""attn-mlir attention as a PyTorch operator with autograd.

    from attn_mlir import torch as attn
    o = attn.attention(q, k, v, variant="alibi", captures=[slopes])
    loss(o).backward()          # q.grad, k.grad, v.grad, slopes.grad

``attention(q, k, v, variant=..., captures=..., sink_logits=...,
sink_rows=(key, value), return_lse=...)`` is close to
``torch.nn.functional.scaled_dot_product_attention``: ``q [B, Hq, Sq, Dqk]``,
``k [B, Hkv, Sk, Dqk]``, ``v [B, Hkv, Sk, Dv]``, the result ``[B, Hq, Sq,
Dv]`` of q's dtype. What SDPA's arguments say (scale, causal masks, ...) the
variant says: a library name (``attn_mlir.variants``, e.g. ``"causal"``), a
library variant or a DSL variant (``attn_mlir.dsl``), also one made at run
time. Captured tensors, sink logits ``[Hq]`` and sink rows (``[Hkv, Ns,
Dqk]``, ``[Hkv, Ns, Dv]``) that require grad get their gradients
(``nn.Parameter`` s: ALiBi slopes, an RBF temperature, learned sink rows);
integer captures (document ids) get none.

Two ``torch.library.custom_op`` s carry it, so ``torch.compile`` (any
backend, ``fullgraph=True``) traces a model through them without graph
breaks:

* ``attn_mlir::attention(q, k, v, captures, sink_logits, sink_key,
  sink_value, variant) -> (O, lse)`` runs ``compiler.attention``: the GPU
  kernel bundle for CUDA tensors, the CPU otherwise (``lse`` is ``[B, Hq,
  Sq]`` f32, or an empty tensor for a normalization without one);
* ``attn_mlir::attention_backward(dO, dlse, q, k, v, O, lse, captures,
  sink_logits, sink_key, sink_value, variant) -> [dq, dk, dv, sink
  gradients..., floating capture gradients...]`` runs
  ``compiler.attention_grad`` (the results of ``attn.attention_grad``, in its
  order).

Both have fake (meta) implementations, and the first has an autograd formula
(``register_autograd``) that saves q, k, v, O, lse, the captures and the
sinks and calls the second. ``variant`` is a string: a library name, or the
``attn.variant`` text of any other variant (``variant_key``), parsed back
when a graph runs in another process.

Compiled kernels are cached on disk: GPU bundles per variant, head dims and
dtype (``compiler.compile``, sizes dynamic); CPU modules per variant and
static shapes (``attn_mlir.cpu_module``). ``compile_stats()`` lists the
first call of every (op, variant, device, shape class) with the seconds it
took, compilation included.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import compiler as _compiler
from . import dsl as _dsl
from . import variants as _variants
from ._variant import VariantBase

__all__ = ["attention", "variant_key", "resolve", "compile_stats",
           "reset_compile_stats"]

log = logging.getLogger("attn_mlir.torch")

# ---------------------------------------------------------------------------
# Variants as strings
# ---------------------------------------------------------------------------

_BY_KEY: Dict[str, VariantBase] = {}
_LOCK = threading.Lock()
_KEY_ATTR = "_attn_mlir_torch_key"


def variant_key(variant) -> str:
    """The string the operators take for ``variant``: a library name as it
    is, the name of an unchanged library variant, else the variant's
    ``attn.variant`` text (registered, so that ``resolve`` returns this very
    object in this process)."""
    if isinstance(variant, str):
        _variants.path(variant)              # KeyError for an unknown name
        return variant
    if not isinstance(variant, VariantBase):
        raise TypeError(f"variant is a library name or a variant object, "
                        f"got {type(variant).__name__}")
    _register_constant(type(variant))
    key = variant.__dict__.get(_KEY_ATTR)
    if key is None:
        key = variant.mlir()
        if isinstance(variant, _variants.LibraryVariant):
            try:
                if _variants.load(variant.name) is variant:
                    key = variant.name
            except KeyError:
                pass
        with _LOCK:
            _BY_KEY.setdefault(key, variant)
        variant.__dict__[_KEY_ATTR] = key
    return key


def resolve(key: str) -> VariantBase:
    """The variant of an operator's ``variant`` string."""
    with _LOCK:
        v = _BY_KEY.get(key)
    if v is not None:
        return v
    if "attn.variant" in key:
        v = _variants.parse_variant(key, where="<attn_mlir::attention variant>")
    else:
        v = _variants.load(key)
    with _LOCK:
        return _BY_KEY.setdefault(key, v)


# ---------------------------------------------------------------------------
# First-call statistics
# ---------------------------------------------------------------------------

_STATS: Dict[tuple, dict] = {}


def _shape_class(device: torch.device, q, k, v, captures, sink_key):
    """What a compiled kernel depends on: on the GPU the head dims and the
    dtype (every size is dynamic), on the CPU every shape."""
    if device.type == "cuda":
        return (str(q.dtype).replace("torch.", ""), q.shape[-1], v.shape[-1],
                sink_key is not None)
    return (str(q.dtype).replace("torch.", ""), tuple(q.shape),
            tuple(k.shape), tuple(v.shape),
            tuple(tuple(c.shape) for c in captures),
            None if sink_key is None else tuple(sink_key.shape))


def _timed(op: str, key: str, q, k, v, captures, sink_key, fn):
    cls = (op, key, q.device.type, _shape_class(q.device, q, k, v, captures,
                                                sink_key))
    first = cls not in _STATS
    t0 = time.perf_counter()
    out = fn()
    if first:
        if q.is_cuda:
            torch.cuda.synchronize(q.device)
        dt = time.perf_counter() - t0
        _STATS[cls] = {"op": op, "variant": resolve(key).name,
                       "device": q.device.type, "shape_class": cls[3],
                       "first_call_s": dt}
        log.info("attn_mlir::%s %s on %s %s: first call %.3f s (compiling "
                 "included)", op, resolve(key).name, q.device.type, cls[3],
                 dt)
    return out


def compile_stats() -> List[dict]:
    """One entry per (op, variant, device, shape class) called in this
    process: ``op`` (``forward`` / ``backward``), ``variant`` (its name),
    ``device``, ``shape_class`` (GPU: dtype, head dims, sink rows; CPU: the
    dtype and every shape) and ``first_call_s``, the seconds of its first
    call (compiling, or finding the compiled kernel in the disk cache, and
    running it once)."""
    return [dict(s) for s in _STATS.values()]


def reset_compile_stats() -> None:
    _STATS.clear()


# ---------------------------------------------------------------------------
# The operators
# ---------------------------------------------------------------------------

def _lse_shape(var: VariantBase, q: Tensor) -> tuple:
    return tuple(q.shape[:3]) if var.has_lse else (0,)


def _sinks(sink_logits, sink_key, sink_value) -> dict:
    return {"sink_logits": sink_logits, "sink_key": sink_key,
            "sink_value": sink_value}


@torch.library.custom_op("attn_mlir::attention", mutates_args=())
def _attention_op(q: Tensor, k: Tensor, v: Tensor, captures: List[Tensor],
                  sink_logits: Optional[Tensor], sink_key: Optional[Tensor],
                  sink_value: Optional[Tensor],
                  variant: str, deterministic: bool) -> Tuple[Tensor, Tensor]:
    # `deterministic` is the backward's: the forward adds in a fixed order.
    var = resolve(variant)

    def run():
        return _compiler.attention(
            q, k, v, variant=var, captures=list(captures),
            return_lse=var.has_lse, cpu_cache=True,
            **_sinks(sink_logits, sink_key, sink_value))
    out = _timed("forward", variant, q, k, v, captures, sink_key, run)
    o, lse = out if var.has_lse else (out, None)
    o = o.to(device=q.device, dtype=q.dtype).contiguous()
    if lse is None:
        lse = q.new_empty((0,), dtype=torch.float32)
    return o, lse.to(device=q.device, dtype=torch.float32).contiguous()


@_attention_op.register_fake
def _attention_fake(q, k, v, captures, sink_logits, sink_key, sink_value,
                    variant, deterministic):
    var = resolve(variant)
    o = q.new_empty(tuple(q.shape[:3]) + (v.shape[3],))
    return o, q.new_empty(_lse_shape(var, q), dtype=torch.float32)


def _grad_shapes(q, k, v, captures, sink_logits, sink_key, sink_value):
    """The tensors that the backward operator returns gradients for, in
    the order of attn.attention_grad's results."""
    out = [q, k, v] + [t for t in (sink_logits, sink_key, sink_value)
                       if t is not None]
    return out + [c for c in captures if c.is_floating_point()]


@torch.library.custom_op("attn_mlir::attention_backward", mutates_args=())
def _attention_backward_op(do: Tensor, dlse: Optional[Tensor], q: Tensor,
                           k: Tensor, v: Tensor, o: Tensor, lse: Tensor,
                           captures: List[Tensor],
                           sink_logits: Optional[Tensor],
                           sink_key: Optional[Tensor],
                           sink_value: Optional[Tensor],
                           variant: str, deterministic: bool) -> List[Tensor]:
    var = resolve(variant)
    has_lse = var.has_lse
    # The GPU kernels' option; the CPU backward sums in a fixed order.
    options = {"deterministic": True} if deterministic and q.is_cuda else None

    def run():
        return _compiler.attention_grad(
            q, k, v, o, do, variant=var, lse=lse if has_lse else None,
            grad_lse=dlse if has_lse else None, captures=list(captures),
            cpu_cache=True, options=options,
            **_sinks(sink_logits, sink_key, sink_value))
    g = _timed("backward", variant, q, k, v, captures, sink_key, run)
    got = [g.dq, g.dk, g.dv] + [x for x in (g.d_sink_logits, g.d_sink_key,
                                            g.d_sink_value) if x is not None]
    got += [d for c, d in zip(captures, g.d_captures)
            if c.is_floating_point()]
    like = _grad_shapes(q, k, v, captures, sink_logits, sink_key, sink_value)
    if len(got) != len(like) or any(x is None for x in got):
        raise _compiler.CompileError(
            f"attention_grad of '{var.name}' returned {len(got)} gradients "
            f"for {len(like)} inputs")
    return [torch.as_tensor(x).to(device=t.device, dtype=t.dtype)
            .reshape(t.shape).contiguous() for x, t in zip(got, like)]


@_attention_backward_op.register_fake
def _attention_backward_fake(do, dlse, q, k, v, o, lse, captures,
                             sink_logits, sink_key, sink_value, variant,
                             deterministic):
    return [torch.empty_like(t, memory_format=torch.contiguous_format)
            for t in _grad_shapes(q, k, v, captures, sink_logits, sink_key,
                                  sink_value)]


def _setup_context(ctx, inputs, output):
    (q, k, v, captures, sink_logits, sink_key, sink_value, variant,
     deterministic) = inputs
    o, lse = output
    ctx.variant = variant
    ctx.deterministic = deterministic
    ctx.set_materialize_grads(False)       # dlse is None when lse is unused
    ctx.n_captures = len(captures)
    ctx.floating = [c.is_floating_point() for c in captures]
    ctx.sinks = (sink_logits is not None, sink_key is not None)
    ctx.save_for_backward(q, k, v, o, lse, *captures, sink_logits, sink_key,
                          sink_value)


def _backward(ctx, do, dlse):
    q, k, v, o, lse, *rest = ctx.saved_tensors
    captures = rest[:ctx.n_captures]
    sink_logits, sink_key, sink_value = rest[ctx.n_captures:]
    if do is None:                      # only lse is used downstream
        do = torch.zeros_like(o)
    grads = iter(torch.ops.attn_mlir.attention_backward(
        do.contiguous(), None if dlse is None else dlse.contiguous(), q, k,
        v, o, lse, list(captures), sink_logits, sink_key, sink_value,
        ctx.variant, ctx.deterministic))
    dq, dk, dv = next(grads), next(grads), next(grads)
    d_logits = next(grads) if ctx.sinks[0] else None
    d_key, d_value = (next(grads), next(grads)) if ctx.sinks[1] else (None,
                                                                        None)
    d_caps = [next(grads) if f else None for f in ctx.floating]
    return dq, dk, dv, d_caps, d_logits, d_key, d_value, None, None


_attention_op.register_autograd(_backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------
# The function
# ---------------------------------------------------------------------------

def _register_constant(cls) -> None:
    """Lets torch.compile pass variants of ``cls`` to ``_variant_info`` as
    constants (guarded by identity: ``VariantBase.__eq__``)."""
    from torch.utils import _pytree
    register = getattr(_pytree, "register_constant", None)
    if register is not None and not _pytree.is_constant_class(cls):
        register(cls)


_register_constant(_variants.LibraryVariant)
_register_constant(_dsl.Variant)


@torch.compiler.assume_constant_result
def _variant_info(variant) -> tuple:
    """``(key, name, capture names, needs sink logits, needs sink rows, has
    lse, normalization)`` of ``variant``: plain constants, computed outside
    of torch.compile's tracing (which would break the graph at the file
    system and the locks of ``variant_key``; it guards on the argument)."""
    key = variant_key(variant)
    var = resolve(key)
    return (key, var.name, tuple(c.name for c in var.captures),
            bool(var.sink_logits), bool(var.sink_rows), var.has_lse,
            var.normalization)


def _check(info: tuple, q, k, v, captures, sink_logits, sink_rows,
           return_lse):
    _, name, capture_names, needs_logits, needs_rows, has_lse, norm = info
    if len(captures) != len(capture_names):
        raise TypeError(f"variant '{name}' takes {len(capture_names)} "
                        f"captured tensor(s) "
                        f"({', '.join(capture_names) or 'none'}), got "
                        f"{len(captures)}")
    for n, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.dim() != 4:
            raise ValueError(f"{n} must be a 4-d tensor [B, H, S, D]")
    if sink_rows is not None and (not isinstance(sink_rows, (tuple, list))
                                  or len(sink_rows) != 2):
        raise ValueError("sink_rows is a pair (sink_key [Hkv, Ns, Dqk], "
                         "sink_value [Hkv, Ns, Dv])")
    if needs_logits and sink_logits is None:
        raise ValueError(f"variant '{name}' needs sink_logits [Hq]")
    if needs_rows and sink_rows is None:
        raise ValueError(f"variant '{name}' needs sink_rows")
    if return_lse and not has_lse:
        raise ValueError(f"variant '{name}' ({norm}) defines no lse")


def attention(q: Tensor, k: Tensor, v: Tensor, *, variant="softmax",
              captures: Sequence[Tensor] = (),
              sink_logits: Optional[Tensor] = None,
              sink_rows: Optional[Tuple[Tensor, Tensor]] = None,
              return_lse: bool = False, deterministic: bool = False):
    """Attention of ``variant`` on ``q, k, v`` (see the module doc), with
    gradients for q, k, v and every floating capture and sink that requires
    them. Returns ``O``, or ``(O, lse)`` with ``return_lse``.

    ``deterministic``: on the GPU the backward kernels add dQ in a fixed
    order (the ``deterministic=true`` kernel option), so the gradients are
    bitwise equal from run to run, at some cost in speed; variants whose
    other gradients are still summed by atomics (floating captures read by
    the score region, sink rows) are refused with the compiler's
    diagnostic. The CPU path is deterministic either way."""
    info = _variant_info(variant)
    _check(info, q, k, v, captures, sink_logits, sink_rows, return_lse)
    sink_key, sink_value = sink_rows if sink_rows is not None else (None,
                                                                    None)
    caps = [c if isinstance(c, Tensor) else torch.as_tensor(c)
            for c in captures]
    o, lse = torch.ops.attn_mlir.attention(q, k, v, caps, sink_logits,
                                           sink_key, sink_value, info[0],
                                           bool(deterministic))
    return (o, lse) if return_lse else o
