"""Traced regions: the signatures of the region functions, the types of
captured tensors, and the MLIR block of a trace (printed through
``attn_mlir.printer``)."""

from __future__ import annotations

import builtins
import inspect
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import printer as _printer
from ..parser import parse_tensor_type
from ._errors import _def_location, _error
from ._expr import _is_literal


_ELT_ALIASES = {"f32": "f32", "float": "f32", "float32": "f32",
                "i32": "i32", "int32": "i32", "i64": "i64", "int64": "i64"}


def _parse_capture_type(t, where) -> Tuple[str, Optional[int]]:
    """An annotation / declaration -> (element type, rank or None)."""
    if t is float:
        return "f32", None
    if t is int:
        return "i32", None
    if isinstance(t, np.dtype) or (isinstance(t, type) and
                                   issubclass(t, np.generic)):
        t = np.dtype(t).name
    if isinstance(t, str):
        s = t.strip()
        if s in _ELT_ALIASES:
            return _ELT_ALIASES[s], None
        if s.startswith("tensor<"):
            try:
                dims, elt = parse_tensor_type(s)
            except ValueError:
                dims, elt = None, None
            if elt in ("f32", "i32", "i64"):
                return elt, len(dims)
    raise _error(f"unsupported type {t!r} for a captured tensor (f32, i32, "
                 "i64 or a type such as 'tensor<?x?xi32>')", where)


def _annotation(fn, a):
    """An annotation, evaluated if it is a string that is not a type name
    already (``from __future__ import annotations`` makes ``dsl.i32`` the
    string ``"dsl.i32"``)."""
    if not isinstance(a, str) or a.strip() in _ELT_ALIASES or \
            a.strip().startswith("tensor<"):
        return a
    try:
        return eval(a, getattr(fn, "__globals__", {}))  # noqa: S307
    except Exception:
        return a


_SCORE_PARAMS = 5
_MASK_PARAMS = 4


def _params(fn, fixed: int, what: str) -> List[inspect.Parameter]:
    loc = _def_location(fn)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise _error(f"cannot read the signature of the {what}: {e}", loc)
    ps = list(sig.parameters.values())
    for p in ps:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or (
                p.kind == p.KEYWORD_ONLY and p.default is p.empty):
            raise _error(f"the {what} must take plain positional parameters "
                         f"(not *args, **kwargs or keyword-only ones without "
                         f"a default); got '{p}'", loc)
    positional = [p for p in ps if p.kind != p.KEYWORD_ONLY]
    if len(positional) < fixed:
        names = ("score, b, h, q_idx, kv_idx" if fixed == 5
                 else "b, h, q_idx, kv_idx")
        raise _error(f"the {what} takes ({names}, *captures): at least "
                     f"{fixed} parameters, got {len(positional)}", loc)
    return ps


def _is_array(x) -> bool:
    """A numpy array or a torch tensor (anything with a shape and a dtype
    that is not a numpy scalar)."""
    return hasattr(x, "shape") and hasattr(x, "dtype") and \
        not isinstance(x, np.generic)


def _extra_params(fn, fixed: int, what: str):
    """The parameters of ``fn`` past the fixed ones, each with whether it is
    a captured tensor: parameters without a default and those whose default
    is an array (numpy / torch) are; those whose default is a number (int,
    float, bool) are constants of the region, bound to their default."""
    out = []
    for p in _params(fn, fixed, what)[fixed:]:
        d = p.default
        if d is p.empty or _is_array(d):
            out.append((p, True))
        elif _is_literal(d):
            out.append((p, False))
        else:
            raise _error(f"the {what}'s parameter '{p.name}' defaults to "
                         f"{type(d).__name__} ({d!r:.40}); a default must be "
                         "a number (a constant of the region) or an array "
                         "(a captured tensor)", _def_location(fn))
    return out


def _call(fn, fixed_args, extras, values):
    """``fn(*fixed_args, ...)`` with ``values[name]`` for each captured
    parameter of ``extras`` (``_extra_params``) and the defaults of the
    others (keyword-only parameters by name)."""
    args, kwargs = list(fixed_args), {}
    for p, is_capture in extras:
        if p.kind == p.KEYWORD_ONLY:
            if is_capture:
                kwargs[p.name] = values[p.name]
        else:
            args.append(values[p.name] if is_capture else p.default)
    return fn(*args, **kwargs)


_SSA_OK = re.compile(r"[^A-Za-z0-9_$.]")


def _ssa_names(names: Sequence[str]) -> List[str]:
    """MLIR value names for block arguments: ``attn_`` prefixes (reserved by
    attn_mlir.emit) renamed, duplicates numbered."""
    out, seen = [], set()
    for n in names:
        s = _SSA_OK.sub("_", n)
        if s.startswith("attn_") or not s or s[0].isdigit():
            s = "v_" + s
        base, k = s, 1
        while s in seen:
            s = f"{base}_{k}"
            k += 1
        seen.add(s)
        out.append(s)
    return out


_F32_SPECIALS = {math.inf: "0x7F800000", -math.inf: "0xFF800000"}


def _const_text(value, t: str) -> str:
    if t == "f32":
        if math.isnan(value):
            return "0x7FC00000"
        if math.isinf(value):
            return _F32_SPECIALS[value]
        if builtins.abs(value) > 3.4028234663852886e38:
            raise _error(f"the constant {value!r} overflows f32")
        return _printer.format_float(value)
    if t == "i1":
        return "true" if value else "false"
    return str(int(value))


class _Region:
    """A traced region: its function, trace, block argument names and result
    node."""

    def __init__(self, kind, fn, trace, arg_names, arg_types, result):
        self.kind = kind
        self.fn = fn
        self.trace = trace
        self.arg_names = arg_names
        self.arg_types = arg_types
        self.result = result

    def block(self) -> str:
        """The MLIR text of the block (``^bb0(...):`` and the body)."""
        live = set()
        stack = [self.result]
        while stack:
            e = stack.pop()
            if id(e) in live:
                continue
            live.add(id(e))
            stack.extend(e.args)
        names: Dict[int, str] = {}
        lines = []
        for e in self.trace.nodes:
            if id(e) not in live:
                continue
            if e.op == "arg":
                names[id(e)] = "%" + e.attr
                continue
            r = f"%{len(lines)}"
            names[id(e)] = r
            lines.append(self._op_line(e, r, [names[id(x)] for x in e.args]))
        res = names[id(self.result)]
        lines.append(f"attn.yield {res} : {self.result.type}")
        return _printer.block(list(zip(self.arg_names, self.arg_types)), lines)

    def _op_line(self, e, result: str, operands: List[str]) -> str:
        """The MLIR line of node ``e`` (``attn_mlir.printer.op_line``)."""
        if e.op == "arith.constant":
            return _printer.op_line(result, e.op, (), e.type,
                                    attr=_const_text(e.attr, e.type))
        if e.op in ("arith.cmpi", "arith.cmpf"):
            return _printer.op_line(result, e.op, operands, e.type,
                                    e.args[0].type, e.attr)
        if e.op == "tensor.extract":
            return _printer.op_line(
                result, e.op, [f"%{self._capture_ssa[e.attr]}"] + operands,
                e.type, attr=self._capture_types[e.attr])
        # casts carry their source type in attr
        return _printer.op_line(result, e.op, operands, e.type,
                                e.attr if isinstance(e.attr, str) else "")
