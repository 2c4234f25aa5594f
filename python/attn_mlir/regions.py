"""Evaluate the body of an ``attn`` region (``score_mod`` / ``mask_mod``) on
numpy arrays.

The library variants (``attn_mlir/variants/*.mlir``) are written in MLIR
only; this module gives their regions a float64 numpy meaning so that
``reference.attention`` can run them, independently of the compiler:
``parse_block`` reads one region block in the pretty syntax and
``Block.__call__`` evaluates it, vectorised, with the conventions of
``reference.py`` (``s`` float64 ``[B, Hq, Sq, Sk]``, the indices int64
arrays that broadcast to it, float captures float64, integer ones int64).

Supported ops (one per line, pretty syntax, single results): ``arith``
constants, float and integer arithmetic, ``cmpi`` / ``cmpf``, ``select``,
casts (``index_cast``, ``sitofp``, ...), the ``math`` functions of
``_MATH`` and ``tensor.extract``. Integer types are modelled as int64 and
floats as float64 (the compiled code computes in f32 / the integer type:
only overflow or rounding at those widths would differ).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from . import parser as _parser

__all__ = ["RegionError", "Block", "parse_block", "split_types"]


class RegionError(ValueError):
    """A region body that this evaluator cannot parse or evaluate."""


def split_types(text: str) -> List[str]:
    """Splits ``a, b<x, y>, c`` at the commas outside ``<>``/``()``/``[]``."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "<([":
            depth += 1
        elif ch in ">)]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _is_float_type(t: str) -> bool:
    return t in ("f16", "bf16", "f32", "f64")


def _trunc_div(a, b):
    """Integer division rounding toward zero (``arith.divsi``)."""
    q = a // b
    return np.where((a % b != 0) & ((a < 0) ^ (b < 0)), q + 1, q)


_BINARY = {
    "arith.addf": np.add, "arith.subf": np.subtract,
    "arith.mulf": np.multiply, "arith.divf": np.divide,
    "arith.maximumf": np.maximum, "arith.minimumf": np.minimum,
    "arith.maxnumf": np.fmax, "arith.minnumf": np.fmin,
    "arith.remf": np.fmod, "math.powf": np.power,
    "math.atan2": np.arctan2, "math.copysign": np.copysign,
    "arith.addi": np.add, "arith.subi": np.subtract,
    "arith.muli": np.multiply,
    "arith.divsi": _trunc_div, "arith.divui": np.floor_divide,
    "arith.remsi": lambda a, b: a - b * _trunc_div(a, b),
    "arith.remui": np.remainder,
    "arith.floordivsi": np.floor_divide,
    "arith.ceildivsi": lambda a, b: -np.floor_divide(-a, b),
    "arith.ceildivui": lambda a, b: -np.floor_divide(-a, b),
    "arith.maxsi": np.maximum, "arith.minsi": np.minimum,
    "arith.maxui": np.maximum, "arith.minui": np.minimum,
    "arith.andi": lambda a, b: a & b, "arith.ori": lambda a, b: a | b,
    "arith.xori": lambda a, b: a ^ b,
    "arith.shli": np.left_shift, "arith.shrsi": np.right_shift,
    "arith.shrui": np.right_shift,
}

_MATH = {
    "math.tanh": np.tanh, "math.exp": np.exp, "math.exp2": np.exp2,
    "math.expm1": np.expm1, "math.log": np.log, "math.log2": np.log2,
    "math.log10": np.log10, "math.log1p": np.log1p, "math.sqrt": np.sqrt,
    "math.rsqrt": lambda x: 1.0 / np.sqrt(x), "math.absf": np.abs,
    "math.absi": np.abs, "math.sin": np.sin, "math.cos": np.cos,
    "math.tan": np.tan, "math.atan": np.arctan, "math.floor": np.floor,
    "math.ceil": np.ceil, "math.erf": None, "arith.negf": np.negative,
    "math.roundeven": np.rint, "math.trunc": np.trunc,
}

_CMPI = {"eq": np.equal, "ne": np.not_equal, "slt": np.less,
         "sle": np.less_equal, "sgt": np.greater, "sge": np.greater_equal,
         "ult": np.less, "ule": np.less_equal, "ugt": np.greater,
         "uge": np.greater_equal}
_CMPF = {"oeq": np.equal, "one": np.not_equal, "olt": np.less,
         "ole": np.less_equal, "ogt": np.greater, "oge": np.greater_equal,
         "ueq": np.equal, "une": np.not_equal, "ult": np.less,
         "ule": np.less_equal, "ugt": np.greater, "uge": np.greater_equal}

_CASTS = ("arith.index_cast", "arith.index_castui", "arith.sitofp",
          "arith.uitofp", "arith.fptosi", "arith.fptoui", "arith.extf",
          "arith.truncf", "arith.extsi", "arith.extui", "arith.trunci")


#: One op of a block (``attn_mlir.parser.OpText``).
_Op = _parser.OpText


@dataclass
class Block:
    """One region block: its arguments ``(name, type)``, ops and yield."""
    args: List[Tuple[str, str]]
    ops: List[_Op] = field(default_factory=list)
    yielded: str = ""
    text: str = ""

    def __call__(self, *values):
        """Evaluates the block on numpy values, one per argument."""
        if len(values) != len(self.args):
            raise RegionError(f"the region takes {len(self.args)} arguments, "
                              f"got {len(values)}")
        env: Dict[str, object] = {n: v for (n, _), v in zip(self.args, values)}
        for op in self.ops:
            try:
                env[op.result] = self._eval(op, env)
            except RegionError:
                raise
            except Exception as e:  # numpy errors: say which line
                raise RegionError(f"evaluating '{op.line}': {e}") from e
        return env[self.yielded]

    @staticmethod
    def _eval(op: _Op, env):
        args = []
        for o in op.operands:
            if o not in env:
                raise RegionError(f"'{op.line}': {o} is not defined")
            args.append(env[o])
        n = op.name
        if n == "arith.constant":
            lit = op.literal
            if lit in ("true", "false"):
                return np.bool_(lit == "true")
            t = op.types.strip()
            if lit.startswith("0x") and _is_float_type(t):
                bits = int(lit, 16)
                return np.float64(np.array([bits], np.uint32).view(
                    np.float32)[0]) if t == "f32" else np.float64(
                        np.array([bits], np.uint64).view(np.float64)[0])
            if _is_float_type(t):
                return np.float64(float(lit))
            if t == "i1":
                return np.bool_(int(lit) != 0)
            return np.int64(int(lit))
        if n in _BINARY:
            a, b = args
            return _BINARY[n](a, b)
        if n in _MATH:
            fn = _MATH[n]
            if fn is None:
                raise RegionError(f"'{op.line}': {n} is not supported here")
            return fn(args[0])
        if n == "arith.cmpi":
            return _CMPI[op.pred](*args)
        if n == "arith.cmpf":
            if op.pred in ("true", "false"):
                return np.full(np.broadcast(*args).shape, op.pred == "true")
            return _CMPF[op.pred](*args)
        if n == "arith.select":
            return np.where(*args)
        if n in _CASTS:
            x = args[0]
            to = op.types.split(" to ")[-1].strip()
            if _is_float_type(to):
                return np.asarray(x).astype(np.float64)
            if to == "i1":
                return np.asarray(x).astype(bool)
            if np.asarray(x).dtype.kind == "f":
                return np.trunc(x).astype(np.int64)
            return np.asarray(x).astype(np.int64)
        if n == "tensor.extract":
            t, *idx = args
            return np.asarray(t)[tuple(np.asarray(i, dtype=np.int64)
                                       for i in idx)]
        raise RegionError(f"'{op.line}': the op {n} is not supported by "
                          "attn_mlir.regions")


def parse_block(text: str) -> Block:
    """Parses one region block (``^bb0(...):``, ops in the pretty syntax with
    one result each, ``attn.yield``) with ``attn_mlir.parser``; ``//``
    comments are ignored."""
    try:
        parsed = _parser.parse_block(text)
    except _parser.ParseError as e:
        raise RegionError(str(e)) from None
    block = Block(args=parsed.args, text=text)
    block.ops = parsed.ops
    block.yielded = parsed.yielded
    return block
