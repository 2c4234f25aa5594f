"""The DSL's math functions: traced on ``Expr`` values, eager on numpy
arrays and torch tensors (so one definition is both the kernel and its
check)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ._errors import _error
from ._expr import Expr, _CaptureRef, _convert, _literal_kind


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _torch_like(ref, x):
    """``x`` as a torch tensor on the device of ``ref``."""
    import torch
    if _is_torch(x):
        return x
    return torch.as_tensor(x, device=ref.device)


def _unary(np_fn, torch_name: str, mlir_op: str, doc: str):
    def fn(x):
        if isinstance(x, Expr):
            tr = x.trace
            return tr.node(mlir_op, (_convert(x, "f32"),), "f32")
        if isinstance(x, _CaptureRef):
            x._not_indexed()
        if _is_torch(x):
            import torch
            return getattr(torch, torch_name)(x)
        return np_fn(x)
    fn.__name__ = torch_name
    fn.__doc__ = doc
    return fn


tanh = _unary(np.tanh, "tanh", "math.tanh", "tanh(x) (math.tanh)")
exp = _unary(np.exp, "exp", "math.exp", "e^x (math.exp)")
exp2 = _unary(np.exp2, "exp2", "math.exp2", "2^x (math.exp2)")
log = _unary(np.log, "log", "math.log", "natural logarithm (math.log)")
sqrt = _unary(np.sqrt, "sqrt", "math.sqrt", "square root (math.sqrt)")


def abs(x):  # noqa: A001 - the DSL's name
    """|x| (math.absf; integers: a select)."""
    if isinstance(x, Expr):
        return x.__abs__()
    if _is_torch(x):
        import torch
        return torch.abs(x)
    return np.abs(x)


def _find_expr(*xs) -> Optional[Expr]:
    for x in xs:
        if isinstance(x, _CaptureRef):
            x._not_indexed()
        if isinstance(x, Expr):
            return x
    return None


def _minmax(a, b, fop, iop, np_fn, torch_name):
    e = _find_expr(a, b)
    if e is not None:
        x, y, t = e._promote(b if e is a else a, swap=e is not a)
        if t == "i1":
            raise _error("minimum/maximum of booleans; use '&' / '|'")
        return e.trace.node(fop if t == "f32" else iop, (x, y), t)
    if _is_torch(a) or _is_torch(b):
        import torch
        ref = a if _is_torch(a) else b
        return getattr(torch, torch_name)(_torch_like(ref, a),
                                          _torch_like(ref, b))
    return np_fn(a, b)


def minimum(a, b):
    """Elementwise minimum (arith.minimumf / arith.minsi); NaN-propagating
    like numpy.minimum."""
    return _minmax(a, b, "arith.minimumf", "arith.minsi", np.minimum,
                   "minimum")


def maximum(a, b):
    """Elementwise maximum (arith.maximumf / arith.maxsi)."""
    return _minmax(a, b, "arith.maximumf", "arith.maxsi", np.maximum,
                   "maximum")


def clamp(x, lo, hi):
    """``x`` limited to ``[lo, hi]``: ``minimum(maximum(x, lo), hi)`` (so
    ``hi`` wins where ``lo > hi``, as in numpy.clip and torch.clamp; floats:
    arith.maximumf / arith.minimumf, NaN-propagating; integers:
    arith.maxsi / arith.minsi)."""
    return minimum(maximum(x, lo), hi)


def where(cond, x, y):
    """``x`` where ``cond`` else ``y`` (arith.select)."""
    e = _find_expr(cond, x, y)
    if e is not None:
        tr = e.trace
        if isinstance(cond, Expr):
            c = cond if cond.type == "i1" else None
            if c is None:
                raise _error("dsl.where needs a boolean condition (a "
                             "comparison), got a value of type "
                             f"{cond.type}")
        elif isinstance(cond, (bool, np.bool_)):
            c = tr.const(bool(cond), "i1")
        else:
            raise _error("dsl.where needs a boolean condition")
        anchor = x if isinstance(x, Expr) else y if isinstance(y, Expr) \
            else None
        if anchor is None:
            kinds = {_literal_kind(x), _literal_kind(y)}
            t = "f32" if "lit_float" in kinds else "i1" if kinds == {
                "lit_bool"} else "index"
            a, b = tr.const(x, t), tr.const(y, t)
        else:
            other = y if anchor is x else x
            a, b, t = anchor._promote(other, swap=anchor is not x)
        return tr.node("arith.select", (c, a, b), t)
    if any(_is_torch(v) for v in (cond, x, y)):
        import torch
        ref = next(v for v in (x, y, cond) if _is_torch(v))
        return torch.where(_torch_like(ref, cond) if not _is_torch(cond)
                           else cond, _torch_like(ref, x), _torch_like(ref, y))
    return np.where(cond, x, y)
