"""A small Python DSL for attention variants.

A variant is the specification of ``reference.attention`` (score kernel,
feature maps, structured masks, normalization and their parameters) plus
optional Python functions for the score and mask regions::

    from attn_mlir import dsl

    @dsl.variant(normalization="softmax",
                 masks=[dsl.causal(), dsl.sliding_window(1024)])
    def alibi(score, b, h, q_idx, kv_idx, slopes):
        return score + slopes[h] * (kv_idx - q_idx)

    @dsl.mask
    def key_padding(b, h, q_idx, kv_idx, lengths: dsl.i32):
        return kv_idx < lengths[b]

    padded = dsl.Variant("padded_alibi", score_mod=alibi.score_mod,
                         mask_mod=key_padding, masks=[dsl.causal()])

* ``score_mod(score, b, h, q_idx, kv_idx, *captures)`` returns the new
  score; ``mask_mod(b, h, q_idx, kv_idx, *captures)`` returns True where the
  key is visible (it joins the global masks). Parameters past the fixed
  ones are captured tensors, matched by name between the two functions;
  their element type is ``f32`` unless an annotation (``dsl.i32``,
  ``dsl.i64``, ``"i32"``, a full type ``"tensor<?x?xi32>"``) or the
  ``captures=`` argument (a list of names or a dict name -> type) says
  otherwise. Their rank comes from how they are indexed.
* Inside the functions: arithmetic (``+ - * / // % **`` with a constant
  exponent, unary ``-``, ``abs``), comparisons, ``&``, ``|``, ``^``, ``~``,
  indexing of captured tensors with index expressions, and ``dsl.tanh``,
  ``dsl.exp``, ``dsl.log``, ``dsl.sqrt``, ``dsl.abs``, ``dsl.minimum``,
  ``dsl.maximum``, ``dsl.where``.

The functions are *traced* when the variant is made: called once with
symbolic values whose operators record an expression graph, which is emitted
as ``arith`` / ``math`` / ``tensor.extract`` ops (``variant.mlir()``).
``score`` is ``f32``, ``b, h, q_idx, kv_idx`` are ``index``; integer
expressions stay integer (``kv_idx - q_idx`` is an ``arith.subi`` on
``index``) until they meet a float, where they are converted
(``index_cast`` to i64, then ``sitofp``). ``/`` is true division (always
float); ``//`` and ``%`` floor like Python's.

The same functions run eagerly on numpy arrays (``variant.reference(q, k,
v, *captures)`` calls ``reference.attention`` with them) and on torch
tensors (the ``dsl`` math functions dispatch on their argument), so one
definition is both the compiled kernel and its check.

What the tracer cannot turn into straight-line MLIR raises ``DSLError``,
whose message names the file and line of the user's code: ``if``/``while``/
``and``/``or``/``not`` on a traced value, ``min``/``max``, functions that need
a concrete number (``math.tanh``, ``float()``, ``int()``), numpy or torch
functions (use the ``dsl`` ones), ``**`` with a traced exponent, ...
"""

from __future__ import annotations

import builtins
import inspect
import linecache
import math
import operator
import os
import re
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import emit as _emit
from . import reference as _ref
from ._variant import Capture, VariantBase, parse_tensor_type

__all__ = [
    "DSLError", "Variant", "variant", "mask", "Expr",
    "f32", "i32", "i64",
    "tanh", "exp", "log", "sqrt", "abs", "minimum", "maximum", "where",
    "causal", "prefix_lm", "document", "sliding_window", "chunked",
    "neighborhood_1d", "neighborhood_2d", "sink_tokens",
]

#: Element types of captured tensors, for annotations.
f32, i32, i64 = "f32", "i32", "i64"

_INT_TYPES = ("index", "i32", "i64")

# ---------------------------------------------------------------------------
# Errors and locations
# ---------------------------------------------------------------------------

_THIS = os.path.abspath(__file__)
_SKIP_MODULES = ("numpy", "torch", "attn_mlir.dsl", "attn_mlir._variant",
                 "functools")


class DSLError(Exception):
    """A variant the DSL cannot compile; ``filename`` and ``lineno`` point at
    the user's code."""

    def __init__(self, message: str, filename: Optional[str] = None,
                 lineno: Optional[int] = None):
        self.message = message
        self.filename = filename
        self.lineno = lineno
        text = message
        if filename:
            text = f"{filename}:{lineno}: {message}"
            src = linecache.getline(filename, lineno or 0).strip()
            if src:
                text += f"\n    {src}"
        super().__init__(text)


def _user_location() -> Tuple[Optional[str], Optional[int]]:
    """The innermost frame of the caller's code (not this module, numpy or
    torch)."""
    f = sys._getframe(1)
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        if os.path.abspath(f.f_code.co_filename) != _THIS and not any(
                mod == m or mod.startswith(m + ".") for m in _SKIP_MODULES):
            return f.f_code.co_filename, f.f_lineno
        f = f.f_back
    return None, None


def _error(message: str, loc=None) -> DSLError:
    filename, lineno = loc if loc is not None else _user_location()
    return DSLError(message, filename, lineno)


def _def_location(fn) -> Tuple[Optional[str], Optional[int]]:
    code = getattr(fn, "__code__", None)
    if code is None:
        return None, None
    return code.co_filename, code.co_firstlineno


# ---------------------------------------------------------------------------
# The expression graph
# ---------------------------------------------------------------------------

class _Trace:
    """The nodes of one traced function, hash-consed (common subexpressions
    are one node)."""

    def __init__(self):
        self.nodes: List[Expr] = []
        self.memo: Dict[tuple, Expr] = {}

    def node(self, op: str, args: Sequence["Expr"], type_: str, attr=None,
             loc=None) -> "Expr":
        key = (op, tuple(id(a) for a in args), type_, repr(attr))
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        e = Expr(self, op, tuple(args), type_, attr,
                 loc if loc is not None else _user_location())
        self.nodes.append(e)
        self.memo[key] = e
        return e

    def const(self, value, type_: str) -> "Expr":
        if type_ == "f32":
            value = float(value)
        elif type_ == "i1":
            value = bool(value)
        else:
            value = int(value)
            if type_ == "i32" and not -2 ** 31 <= value < 2 ** 31:
                raise _error(f"the constant {value} does not fit in i32")
            if not -2 ** 63 <= value < 2 ** 63:
                raise _error(f"the constant {value} does not fit in 64 bits")
        return self.node("arith.constant", (), type_, value)


def _is_literal(x) -> bool:
    return isinstance(x, (bool, int, float, np.bool_, np.integer,
                          np.floating)) and not isinstance(x, Expr)


def _literal_kind(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "lit_bool"
    if isinstance(x, (int, np.integer)):
        return "lit_int"
    return "lit_float"


def _int_join(a: str, b: str) -> str:
    if a == b:
        return a
    if "index" in (a, b):
        return "index"
    return "i64"


def _kind(t: str) -> str:
    return "float" if t == "f32" else "bool" if t == "i1" else "int"


_UFUNC_OPS = {
    np.add: operator.add, np.subtract: operator.sub,
    np.multiply: operator.mul, np.true_divide: operator.truediv,
    np.floor_divide: operator.floordiv, np.remainder: operator.mod,
    np.power: operator.pow, np.less: operator.lt, np.less_equal: operator.le,
    np.greater: operator.gt, np.greater_equal: operator.ge,
    np.equal: operator.eq, np.not_equal: operator.ne,
    np.bitwise_and: operator.and_, np.bitwise_or: operator.or_,
    np.bitwise_xor: operator.xor, np.negative: operator.neg,
    np.positive: operator.pos, np.invert: operator.invert,
}

_DSL_HINT = ("use the dsl functions (dsl.tanh, dsl.exp, dsl.log, dsl.sqrt, "
             "dsl.abs, dsl.minimum, dsl.maximum, dsl.where), which dispatch "
             "to numpy or torch on arrays")


class Expr:
    """A traced value: the result of one node of the expression graph.

    ``type`` is ``f32``, ``index``, ``i32``, ``i64`` or ``i1``; ``op`` the
    MLIR op (``arg`` for block arguments) and ``attr`` its extra data.
    """

    __slots__ = ("trace", "op", "args", "type", "attr", "loc")

    def __init__(self, trace, op, args, type_, attr, loc):
        self.trace = trace
        self.op = op
        self.args = args
        self.type = type_
        self.attr = attr
        self.loc = loc

    def __repr__(self):
        return f"<dsl.Expr {self.op} : {self.type}>"

    __hash__ = object.__hash__

    # -- conversions ----------------------------------------------------------
    def _lift(self, x, type_: str) -> "Expr":
        """``x`` (an Expr or a Python number) as an Expr of ``type_``."""
        t = self.trace
        if isinstance(x, Expr):
            if x.trace is not t:
                raise _error("a traced value of another function was used "
                             "here (variants cannot share traced values)")
            return _convert(x, type_)
        if _is_literal(x):
            kind = _literal_kind(x)
            if type_ != "f32" and kind == "lit_float":
                raise _error(f"the float constant {x!r} meets an integer "
                             "value here")
            if type_ == "i1" and kind != "lit_bool":
                raise _error(f"the constant {x!r} meets a boolean here")
            return t.const(x, type_)
        raise _unsupported_operand(x)

    def _promote(self, other, swap=False):
        """The common type of ``self`` and ``other`` and both lifted to it."""
        ta = self.type
        if isinstance(other, Expr):
            tb = other.type
        elif _is_literal(other):
            tb = _literal_kind(other)
        else:
            raise _unsupported_operand(other)
        kinds = {_kind(ta), tb if tb.startswith("lit") else _kind(tb)}
        if "float" in kinds or "lit_float" in kinds:
            t = "f32"
        elif kinds <= {"bool", "lit_bool"}:
            t = "i1"
        elif isinstance(other, Expr) and _kind(ta) == "int" and \
                _kind(tb) == "int":
            t = _int_join(ta, tb)
        elif _kind(ta) == "int":
            t = ta
        elif isinstance(other, Expr) and _kind(tb) == "int":
            t = tb
        else:
            t = "i64"
        a, b = self._lift(self, t), self._lift(other, t)
        return (b, a, t) if swap else (a, b, t)

    # -- arithmetic -----------------------------------------------------------
    def _arith(self, other, fop: str, iop: str, swap=False) -> "Expr":
        a, b, t = self._promote(other, swap)
        if t == "i1":
            raise _error("arithmetic on booleans; use dsl.where(cond, x, y) "
                         "to turn a condition into a number")
        return self.trace.node(fop if t == "f32" else iop, (a, b), t)

    def __add__(self, o): return self._arith(o, "arith.addf", "arith.addi")
    def __radd__(self, o): return self._arith(o, "arith.addf", "arith.addi", True)
    def __sub__(self, o): return self._arith(o, "arith.subf", "arith.subi")
    def __rsub__(self, o): return self._arith(o, "arith.subf", "arith.subi", True)
    def __mul__(self, o): return self._arith(o, "arith.mulf", "arith.muli")
    def __rmul__(self, o): return self._arith(o, "arith.mulf", "arith.muli", True)

    def _truediv(self, other, swap=False):
        a, b, t = self._promote(other, swap)
        if t == "i1":
            raise _error("division of booleans")
        return self.trace.node("arith.divf", (_convert(a, "f32"),
                                              _convert(b, "f32")), "f32")

    def __truediv__(self, o): return self._truediv(o)
    def __rtruediv__(self, o): return self._truediv(o, True)

    def _floordiv_mod(self, other, want: str, swap=False):
        a, b, t = self._promote(other, swap)
        tr = self.trace
        if t == "i1":
            raise _error("// or % of booleans")
        if t == "f32":
            q = tr.node("math.floor", (tr.node("arith.divf", (a, b), t),), t)
            if want == "div":
                return q
            return tr.node("arith.subf",
                           (a, tr.node("arith.mulf", (q, b), t)), t)
        if _nonneg(a) and b.op == "arith.constant" and b.attr > 0:
            # Both operands >= 0: truncation is flooring.
            return tr.node("arith.divsi" if want == "div" else "arith.remsi",
                           (a, b), t)
        # Python's floor semantics from the truncating divsi / remsi.
        q = tr.node("arith.divsi", (a, b), t)
        r = tr.node("arith.remsi", (a, b), t)
        zero = tr.const(0, t)
        r_neg = tr.node("arith.cmpi", (r, zero), "i1", "slt")
        if b.op == "arith.constant":
            adjust = r_neg if b.attr > 0 else tr.node(
                "arith.cmpi", (r, zero), "i1", "sgt")
        else:
            b_neg = tr.node("arith.cmpi", (b, zero), "i1", "slt")
            r_nz = tr.node("arith.cmpi", (r, zero), "i1", "ne")
            adjust = tr.node("arith.andi", (r_nz, tr.node(
                "arith.xori", (r_neg, b_neg), "i1")), "i1")
        if want == "div":
            q1 = tr.node("arith.subi", (q, tr.const(1, t)), t)
            return tr.node("arith.select", (adjust, q1, q), t)
        rb = tr.node("arith.addi", (r, b), t)
        return tr.node("arith.select", (adjust, rb, r), t)

    def __floordiv__(self, o): return self._floordiv_mod(o, "div")
    def __rfloordiv__(self, o): return self._floordiv_mod(o, "div", True)
    def __mod__(self, o): return self._floordiv_mod(o, "mod")
    def __rmod__(self, o): return self._floordiv_mod(o, "mod", True)

    def __pow__(self, exponent):
        if isinstance(exponent, Expr):
            raise _error("'**' with a traced exponent; only constant "
                         "exponents are supported (use dsl.exp(y * "
                         "dsl.log(x)) for x > 0)")
        if not _is_literal(exponent) or isinstance(exponent, (bool, np.bool_)):
            raise _unsupported_operand(exponent)
        tr = self.trace
        if self.type == "i1":
            raise _error("'**' of a boolean")
        base = self
        if not isinstance(exponent, (int, np.integer)):
            base = _convert(self, "f32")      # numpy: int ** float is float
            exponent = float(exponent)
            if exponent == 0.5:
                return tr.node("math.sqrt", (base,), "f32")
            if not exponent.is_integer() or builtins.abs(exponent) > 64:
                return tr.node("math.powf",
                               (base, tr.const(exponent, "f32")), "f32")
        n = int(exponent)
        if n < 0 and base.type != "f32":
            raise _error("an integer to a negative power (numpy refuses it "
                         "too); multiply by 1.0 first")
        if n == 0:
            return tr.const(1, base.type)
        result, p, m = None, base, builtins.abs(n)
        while m:
            if m & 1:
                result = p if result is None else result * p
            m >>= 1
            if m:
                p = p * p
        return 1.0 / result if n < 0 else result

    def __rpow__(self, base):
        raise _error("'**' with a traced exponent; only constant exponents "
                     "are supported (use dsl.exp(y * dsl.log(x)) for x > 0)")

    def __neg__(self):
        if self.type == "f32":
            return self.trace.node("arith.negf", (self,), "f32")
        if self.type == "i1":
            raise _error("'-' of a boolean; use '~' for 'not'")
        return self.trace.const(0, self.type) - self

    def __pos__(self):
        return self

    def __abs__(self):
        if self.type == "f32":
            return self.trace.node("math.absf", (self,), "f32")
        if self.type == "i1":
            raise _error("abs() of a boolean")
        # select(x < 0, 0 - x, x) rather than math.absi, which the GPU
        # pipeline does not lower.
        tr = self.trace
        neg = tr.node("arith.cmpi", (self, tr.const(0, self.type)), "i1",
                      "slt")
        return tr.node("arith.select", (neg, -self, self), self.type, "abs")

    # -- comparisons and logic ------------------------------------------------
    def _cmp(self, other, fpred: str, ipred: str):
        a, b, t = self._promote(other)
        if t == "f32":
            return self.trace.node("arith.cmpf", (a, b), "i1", fpred)
        if t == "i1" and ipred not in ("eq", "ne"):
            raise _error("ordering comparison of booleans")
        return self.trace.node("arith.cmpi", (a, b), "i1", ipred)

    def __lt__(self, o): return self._cmp(o, "olt", "slt")
    def __le__(self, o): return self._cmp(o, "ole", "sle")
    def __gt__(self, o): return self._cmp(o, "ogt", "sgt")
    def __ge__(self, o): return self._cmp(o, "oge", "sge")
    def __eq__(self, o): return self._cmp(o, "oeq", "eq")
    def __ne__(self, o): return self._cmp(o, "une", "ne")

    def _bit(self, other, op: str, swap=False):
        a, b, t = self._promote(other, swap)
        if t == "f32":
            raise _error(f"'{ {'arith.andi': '&', 'arith.ori': '|'}.get(op, '^')}' "
                         "of a float value; it combines booleans (comparisons) "
                         "or integers")
        return self.trace.node(op, (a, b), t)

    def __and__(self, o): return self._bit(o, "arith.andi")
    def __rand__(self, o): return self._bit(o, "arith.andi", True)
    def __or__(self, o): return self._bit(o, "arith.ori")
    def __ror__(self, o): return self._bit(o, "arith.ori", True)
    def __xor__(self, o): return self._bit(o, "arith.xori")
    def __rxor__(self, o): return self._bit(o, "arith.xori", True)

    def __invert__(self):
        if self.type == "f32":
            raise _error("'~' of a float value")
        ones = self.trace.const(True if self.type == "i1" else -1, self.type)
        return self.trace.node("arith.xori", (self, ones), self.type)

    # -- what cannot be traced ------------------------------------------------
    def __bool__(self):
        raise _error(
            "a traced value has no truth value: Python control flow (if, "
            "while, and, or, not, chained comparisons, min(), max()) "
            "cannot depend on it; use dsl.where(cond, x, y), '&', '|', '~', "
            "dsl.minimum and dsl.maximum")

    def _no_number(self, *args):
        raise _error("a traced value cannot become a Python number (int(), "
                     "float(), round(), math.* and other functions that need "
                     "a concrete number); " + _DSL_HINT)

    __float__ = __int__ = __index__ = __complex__ = __round__ = _no_number
    __trunc__ = __floor__ = __ceil__ = _no_number

    def __len__(self):
        raise _error("a traced value is a scalar: it has no len()")

    def __iter__(self):
        raise _error("a traced value is a scalar: it cannot be iterated "
                     "(loops over traced values are not supported)")

    def __getitem__(self, idx):
        raise _error("only captured tensors can be indexed")

    def __array__(self, *args, **kwargs):
        raise _error("a traced value cannot become a numpy array; "
                     + _DSL_HINT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = _UFUNC_OPS.get(ufunc)
        if op is None or method != "__call__" or kwargs:
            raise _error(f"numpy.{ufunc.__name__} on a traced value; "
                         + _DSL_HINT)
        vals = [x.item() if isinstance(x, np.generic) else x for x in inputs]
        if any(isinstance(x, np.ndarray) for x in vals):
            raise _error("a numpy array meets a traced value; index "
                         "captured tensors instead of closing over arrays")
        return op(*vals)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        raise _error(f"torch function '{name}' on a traced value; "
                     + _DSL_HINT)


_NONNEG_OPS = ("arith.addi", "arith.muli", "arith.divsi", "arith.remsi",
               "arith.minsi", "arith.index_cast", "arith.extsi",
               "arith.select")


def _nonneg(e: Expr) -> bool:
    """Whether an integer expression is known to be >= 0: the indices b, h,
    q_idx, kv_idx and constants >= 0, combined by +, *, //, %, min, max,
    where (not -, nor elements of captured tensors)."""
    if e.op == "arg":
        return e.type == "index"
    if e.op == "arith.constant":
        return e.attr >= 0
    if e.op == "arith.extui":
        return True
    if e.op == "arith.maxsi":
        return any(_nonneg(a) for a in e.args)
    if e.op == "arith.select":
        return e.attr == "abs" or all(_nonneg(a) for a in e.args[1:])
    if e.op in _NONNEG_OPS:
        return all(_nonneg(a) for a in e.args)
    return False


def _unsupported_operand(x) -> DSLError:
    if isinstance(x, _CaptureRef):
        x._not_indexed()
    return _error(f"a traced value meets a {type(x).__name__} "
                  f"({x!r:.60}); only numbers, traced values and elements "
                  "of captured tensors can be combined")


def _convert(x: Expr, to: str) -> Expr:
    """``x`` converted to type ``to`` (int -> float, int widths, bool -> int
    or float); float -> int is refused."""
    t = x.type
    tr = x.trace
    if t == to:
        return x
    if t == "f32":
        raise _error(f"a float value is used where an integer or boolean "
                     f"({to}) is needed")
    if to == "i1":
        raise _error(f"an integer value ({t}) is used where a boolean is "
                     "needed; compare it (x != 0)")
    if t == "i1":
        if to == "f32":
            return tr.node("arith.uitofp", (x,), "f32", "i1")
        wide = tr.node("arith.extui", (x,), "i64" if to == "index" else to,
                       "i1")
        return _convert(wide, to)
    if to == "f32":
        if t == "index":
            x = tr.node("arith.index_cast", (x,), "i64", "index")
            t = "i64"
        return tr.node("arith.sitofp", (x,), "f32", t)
    if t == "index" or to == "index":
        return tr.node("arith.index_cast", (x,), to, t)
    if t == "i32" and to == "i64":
        return tr.node("arith.extsi", (x,), "i64", "i32")
    return tr.node("arith.trunci", (x,), to, t)


class _CaptureRef:
    """A captured tensor inside a traced function: only indexing works."""

    def __init__(self, trace: _Trace, decl: Capture, variant_name: str):
        self._trace = trace
        self._decl = decl
        self._variant = variant_name

    def __getitem__(self, idx):
        items = idx if isinstance(idx, tuple) else (idx,)
        decl = self._decl
        if decl.rank is None:
            decl.rank = len(items)
        elif decl.rank != len(items):
            raise _error(f"captured tensor '{decl.name}' is indexed with "
                         f"{len(items)} indices here but has rank "
                         f"{decl.rank}")
        indices = []
        for it in items:
            if isinstance(it, slice) or it is Ellipsis or it is None:
                raise _error(f"captured tensor '{decl.name}': slices, '...' "
                             "and None are not supported; index every "
                             "dimension with one integer expression")
            if isinstance(it, Expr):
                if it.trace is not self._trace:
                    raise _error("a traced value of another function")
                if it.type == "f32":
                    raise _error(f"captured tensor '{decl.name}' indexed "
                                 "with a float value")
                if it.type == "i1":
                    raise _error(f"captured tensor '{decl.name}' indexed "
                                 "with a boolean")
                indices.append(_convert(it, "index"))
            elif isinstance(it, (int, np.integer)) and not isinstance(
                    it, (bool, np.bool_)):
                if it < 0:
                    raise _error(f"captured tensor '{decl.name}': negative "
                                 "constant index (numpy would count from "
                                 "the end; the compiled code would not)")
                indices.append(self._trace.const(int(it), "index"))
            else:
                raise _error(f"captured tensor '{decl.name}' indexed with "
                             f"{type(it).__name__}")
        elt = decl.elt
        return self._trace.node("tensor.extract", tuple(indices),
                                "f32" if elt == "f32" else elt, decl.name)

    def _not_indexed(self, *args, **kwargs):
        raise _error(f"captured tensor '{self._decl.name}' must be indexed "
                     f"to give a number, e.g. {self._decl.name}[h] (a 0-d "
                     f"tensor: {self._decl.name}[()])")

    def __repr__(self):
        return f"<dsl captured tensor {self._decl.name}>"


for _name in ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv",
              "rtruediv", "floordiv", "rfloordiv", "mod", "rmod", "pow",
              "rpow", "neg", "pos", "abs", "lt", "le", "gt", "ge", "eq", "ne",
              "and", "rand", "or", "ror", "xor", "rxor", "invert", "bool",
              "float", "int", "index", "len", "iter", "array"):
    setattr(_CaptureRef, f"__{_name}__", _CaptureRef._not_indexed)
_CaptureRef.__hash__ = object.__hash__


# ---------------------------------------------------------------------------
# The math functions: traced on Exprs, eager on numpy / torch
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Masks (the dicts of attn_mlir.reference)
# ---------------------------------------------------------------------------

causal = _ref.causal
prefix_lm = _ref.prefix_lm
sliding_window = _ref.sliding_window
chunked = _ref.chunked
neighborhood_1d = _ref.neighborhood_1d
neighborhood_2d = _ref.neighborhood_2d
sink_tokens = _ref.sink_tokens


def document(q_segments=0, kv_segments=None) -> dict:
    """Document masking: key ``j`` is visible to query ``i`` iff
    ``q_seg[b, i] == kv_seg[b, j]``. The segment ids are captured tensors,
    named (``"seg"``) or numbered; ``kv_segments`` defaults to
    ``q_segments`` (one capture for both, Sq == Sk)."""
    return {"kind": "document", "q_segments": q_segments,
            "kv_segments": q_segments if kv_segments is None
            else kv_segments}


# ---------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------

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
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY):
            raise _error(f"the {what} must take plain positional parameters "
                         f"(not *args, **kwargs or keyword-only ones); got "
                         f"'{p}'", loc)
    if len(ps) < fixed:
        names = ("score, b, h, q_idx, kv_idx" if fixed == 5
                 else "b, h, q_idx, kv_idx")
        raise _error(f"the {what} takes ({names}, *captures): at least "
                     f"{fixed} parameters, got {len(ps)}", loc)
    return ps


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
        return _emit.format_float(value)
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
        head = ", ".join(f"%{n}: {t}" for n, t in zip(self.arg_names,
                                                       self.arg_types))
        for e in self.trace.nodes:
            if id(e) not in live:
                continue
            if e.op == "arg":
                names[id(e)] = "%" + e.attr
                continue
            r = f"%{len(lines)}"
            names[id(e)] = r
            a = [names[id(x)] for x in e.args]
            if e.op == "arith.constant" and e.type == "i1":
                lines.append(f"{r} = arith.constant "
                             f"{_const_text(e.attr, e.type)}")
            elif e.op == "arith.constant":
                lines.append(f"{r} = arith.constant {_const_text(e.attr, e.type)}"
                             f" : {e.type}")
            elif e.op in ("arith.cmpi", "arith.cmpf"):
                lines.append(f"{r} = {e.op} {e.attr}, {a[0]}, {a[1]} : "
                             f"{e.args[0].type}")
            elif e.op == "arith.select":
                lines.append(f"{r} = arith.select {a[0]}, {a[1]}, {a[2]} : "
                             f"{e.type}")
            elif e.op in ("arith.index_cast", "arith.sitofp", "arith.uitofp",
                          "arith.extui", "arith.extsi", "arith.trunci"):
                lines.append(f"{r} = {e.op} {a[0]} : {e.attr} to {e.type}")
            elif e.op == "tensor.extract":
                cap = self._capture_types[e.attr]
                lines.append(f"{r} = tensor.extract %{self._capture_ssa[e.attr]}"
                             f"[{', '.join(a)}] : {cap}")
            else:
                lines.append(f"{r} = {e.op} {', '.join(a)} : {e.type}")
        res = names[id(self.result)]
        lines.append(f"attn.yield {res} : {self.result.type}")
        return f"^bb0({head}):\n" + "".join(f"  {ln}\n" for ln in lines)


class Variant(VariantBase):
    """An attention variant written in Python (see the module doc).

    ``Variant(name, score_mod=fn, mask_mod=fn, captures=..., score=...,
    scale=..., gamma=..., q_map=..., k_map=..., masks=[...],
    normalization=..., bias=..., length_scale=...)``; the specification
    keywords are those of ``reference.attention`` (``None``: the dialect's
    default). The functions are traced here: a construct the DSL cannot
    compile raises ``DSLError`` now.
    """

    def __init__(self, name: str, *, score_mod: Optional[Callable] = None,
                 mask_mod=None, captures=None, score: Optional[str] = None,
                 scale: Optional[float] = None, gamma: Optional[float] = None,
                 q_map: Optional[str] = None, k_map: Optional[str] = None,
                 masks: Sequence[dict] = (),
                 normalization: Optional[str] = None,
                 bias: Optional[float] = None,
                 length_scale: Optional[float] = None,
                 _loc=None):
        loc = _loc or _user_location()
        if not isinstance(name, str) or not re.fullmatch(
                r"[A-Za-z_][\w$.]*", name):
            raise _error(f"bad variant name {name!r}", loc)
        self.name = name
        if isinstance(mask_mod, Variant):
            mask_mod = mask_mod.mask_mod
        if isinstance(score_mod, Variant):
            score_mod = score_mod.score_mod
        self.score_mod = score_mod
        self.mask_mod = mask_mod
        self._check_spec(loc, score=score, q_map=q_map, k_map=k_map,
                         normalization=normalization)
        for key, val in (("scale", scale), ("gamma", gamma), ("bias", bias),
                         ("length_scale", length_scale)):
            if val is not None and (isinstance(val, bool) or not isinstance(
                    val, (int, float, np.integer, np.floating))
                    or not math.isfinite(val)):
                raise _error(f"{key} must be a finite number, got {val!r}",
                             loc)
        self.captures = self._declare_captures(captures, loc)
        masks = [self._resolve_mask(m, loc) for m in masks]
        self.spec = {"score": score, "scale": None if scale is None
                     else float(scale), "gamma": None if gamma is None
                     else float(gamma), "q_map": q_map, "k_map": k_map,
                     "masks": masks, "normalization": normalization,
                     "bias": None if bias is None else float(bias),
                     "length_scale": None if length_scale is None
                     else float(length_scale)}
        self._regions: Dict[str, _Region] = {}
        if score_mod is not None:
            self._regions["score_mod"] = self._trace(score_mod, "score_mod")
        if mask_mod is not None:
            self._regions["mask_mod"] = self._trace(mask_mod, "mask_mod")
        for c in self.captures:
            if c.rank is None:
                raise _error(f"captured tensor '{c.name}' is never indexed, "
                             "so its rank is unknown; index it or declare "
                             f"its type: captures={{'{c.name}': "
                             "'tensor<?xf32>'}", loc)
        self.__doc__ = getattr(score_mod or mask_mod, "__doc__", None)
        self._loc = loc

    # -- construction ---------------------------------------------------------
    @staticmethod
    def _check_spec(loc, **kw):
        choices = {"score": _ref.SCORE_KINDS, "q_map": _ref.FEATURE_MAPS,
                   "k_map": _ref.FEATURE_MAPS,
                   "normalization": _ref.NORMALIZATIONS}
        for key, val in kw.items():
            if val is not None and val not in choices[key]:
                raise _error(f"unknown {key} {val!r}; expected one of "
                             f"{choices[key]}", loc)

    def _declare_captures(self, captures, loc) -> List[Capture]:
        decl: Dict[str, Capture] = {}
        explicit = captures is not None
        if isinstance(captures, dict):
            for n, t in captures.items():
                elt, rank = _parse_capture_type(t, loc)
                decl[n] = Capture(n, elt, rank)
        elif captures is not None:
            for n in captures:
                decl[n] = Capture(n, "", None)
        fns = [(self.score_mod, _SCORE_PARAMS, "score_mod"),
               (self.mask_mod, _MASK_PARAMS, "mask_mod")]
        for fn, fixed, what in fns:
            if fn is None:
                continue
            for p in _params(fn, fixed, what)[fixed:]:
                if p.name not in decl:
                    if explicit:
                        raise _error(
                            f"the {what} takes the captured tensor "
                            f"'{p.name}', which captures= does not declare",
                            _def_location(fn))
                    decl[p.name] = Capture(p.name, "", None)
                c = decl[p.name]
                if p.annotation is not inspect.Parameter.empty:
                    elt, rank = _parse_capture_type(
                        _annotation(fn, p.annotation), _def_location(fn))
                    if c.elt and c.elt != elt:
                        raise _error(f"captured tensor '{p.name}' is "
                                     f"declared {c.elt} and annotated {elt}",
                                     _def_location(fn))
                    c.elt = elt
                    if rank is not None:
                        c.rank = rank
        return list(decl.values())

    def _capture_index(self, ref, loc) -> int:
        if isinstance(ref, str):
            for n, c in enumerate(self.captures):
                if c.name == ref:
                    return n
            self.captures.append(Capture(ref, "", None))
            return len(self.captures) - 1
        if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
            return int(ref)
        raise _error(f"document mask: a segment capture is a name or a "
                     f"number, got {ref!r}", loc)

    def _resolve_mask(self, m, loc) -> dict:
        if not isinstance(m, dict) or "kind" not in m:
            raise _error(f"a mask is made by dsl.causal(), dsl.sliding_window"
                         f"(...), ...; got {m!r}", loc)
        m = dict(m)
        if m["kind"] == "document":
            for key in ("q_segments", "kv_segments"):
                m[key] = self._capture_index(m[key], loc)
                if m[key] < len(self.captures):
                    c = self.captures[m[key]]
                    c.elt = c.elt or "i32"
                    c.rank = 2 if c.rank is None else c.rank
        try:
            _ref.canonical_mask(m)
            _emit.mask_attr(m)
        except ValueError as e:
            raise _error(str(e), loc)
        return m

    def _trace(self, fn, kind: str) -> _Region:
        fixed = _SCORE_PARAMS if kind == "score_mod" else _MASK_PARAMS
        params = _params(fn, fixed, kind)
        for c in self.captures:
            c.elt = c.elt or "f32"
        tr = _Trace()
        loc = _def_location(fn)
        fixed_types = (["f32"] if kind == "score_mod" else []) + \
            ["index"] * 4
        own = [p.name for p in params[:fixed]]
        names = _ssa_names(own + [c.name for c in self.captures])
        args = [tr.node("arg", (), t, n, loc)
                for n, t in zip(names[:fixed], fixed_types)]
        refs = {c.name: _CaptureRef(tr, c, self.name) for c in self.captures}
        call_args = args + [refs[p.name] for p in params[fixed:]]
        result = fn(*call_args)
        rloc = result.loc if isinstance(result, Expr) else loc
        if isinstance(result, _CaptureRef):
            result._not_indexed()
        if kind == "score_mod":
            if isinstance(result, Expr):
                if result.trace is not tr:
                    raise _error("the score_mod returns a value traced "
                                 "elsewhere", rloc)
                out = _convert(result, "f32") if result.type != "f32" \
                    else result
            elif _is_literal(result):
                out = tr.const(float(result), "f32")
            else:
                raise _error(f"the score_mod must return a number or a "
                             f"traced value, got {type(result).__name__}",
                             loc)
        else:
            if isinstance(result, Expr):
                if result.type == "f32":
                    raise _error("the mask_mod must return a boolean "
                                 "(comparisons combined with &, |, ~), got "
                                 "a float value", rloc)
                out = result if result.type == "i1" else tr.node(
                    "arith.cmpi", (result, tr.const(0, result.type)), "i1",
                    "ne", rloc)
            elif isinstance(result, (bool, np.bool_)):
                out = tr.const(bool(result), "i1")
            else:
                raise _error(f"the mask_mod must return a boolean, got "
                             f"{type(result).__name__}", loc)
        region = _Region(kind, fn, tr, names, fixed_types, out)
        region._capture_ssa = {c.name: n for c, n in
                               zip(self.captures, names[fixed:])}
        return region

    # -- VariantBase ----------------------------------------------------------
    def _finish(self, region: _Region) -> _Region:
        fixed = _SCORE_PARAMS if region.kind == "score_mod" else _MASK_PARAMS
        region.arg_types = region.arg_types[:fixed] + [
            c.region_type() for c in self.captures]
        region._capture_types = {c.name: c.region_type()
                                 for c in self.captures}
        return region

    def region_block(self, kind: str) -> Optional[str]:
        r = self._regions.get(kind)
        return None if r is None else self._finish(r).block()

    def _select(self, fn, fixed):
        """``fn`` adapted to receive every capture (reference convention)."""
        if fn is None:
            return None
        names = [p.name for p in _params(fn, fixed, "region")[fixed:]]
        order = [next(n for n, c in enumerate(self.captures) if c.name == x)
                 for x in names]

        def call(*args):
            fixed_args, caps = args[:fixed], args[fixed:]
            return fn(*fixed_args, *[caps[k] for k in order])
        return call

    @property
    def score_mod_fn(self):
        return self._select(self.score_mod, _SCORE_PARAMS)

    @property
    def mask_mod_fn(self):
        return self._select(self.mask_mod, _MASK_PARAMS)

    def mlir(self, name: Optional[str] = None) -> str:
        """The ``attn.variant`` op (named ``name``, default the variant's)."""
        name = name or self.name
        head = f"attn.variant @{name}"
        spec = self.spec_text()
        if spec:
            head += " " + spec
        parts = [head]
        for kind in ("score_mod", "mask_mod"):
            block = self.region_block(kind)
            if block is not None:
                parts.append(f"{kind} {{\n{block}}}")
        filename, lineno = self._loc
        origin = (f"// attn_mlir.dsl variant '{self.name}'"
                  + (f" ({os.path.basename(filename)}:{lineno})"
                     if filename else "") + "\n")
        return origin + " ".join(parts) + "\n"


def _fn_name(f) -> str:
    name = getattr(f, "__name__", "")
    return name if re.fullmatch(r"[A-Za-z_]\w*", name or "") else "anonymous"


def _region_decorator(decorator: str, region: str, fn, kwargs):
    """``@dsl.<decorator>`` and ``@dsl.<decorator>(**kwargs)``: a ``Variant``
    whose ``region`` (``score_mod`` or ``mask_mod``) is the decorated
    function, named after it unless ``name=`` is given."""
    loc = _user_location()

    def make(f):
        kw = dict(kwargs)
        return Variant(kw.pop("name", _fn_name(f)), _loc=loc,
                       **{region: f}, **kw)
    if fn is None:
        return make
    if not callable(fn):
        raise _error(f"use @dsl.{decorator} or @dsl.{decorator}(keyword=...)",
                     loc)
    return make(fn)


def variant(fn: Optional[Callable] = None, /, **kwargs):
    """Decorator: makes a ``Variant`` whose score region is the decorated
    function (named after it unless ``name=`` is given)::

        @dsl.variant(masks=[dsl.causal()])
        def softcap(score, b, h, q_idx, kv_idx):
            return 30.0 * dsl.tanh(score / 30.0)

    Keywords: ``name``, ``mask_mod``, ``captures`` and the specification
    (``score``, ``scale``, ``gamma``, ``q_map``, ``k_map``, ``masks``,
    ``normalization``, ``bias``, ``length_scale``); ``dsl.variant(fn,
    **keywords)`` is the same as a call. A variant without a score region
    is ``dsl.Variant(name, ...)``.
    """
    return _region_decorator("variant", "score_mod", fn, kwargs)


def mask(fn: Optional[Callable] = None, /, **kwargs):
    """Decorator: makes a ``Variant`` whose mask region is the decorated
    function ``(b, h, q_idx, kv_idx, *captures) -> bool``. It can be used on
    its own or given to another variant as ``mask_mod=``::

        @dsl.mask
        def even_keys(b, h, q_idx, kv_idx):
            return kv_idx % 2 == 0
    """
    return _region_decorator("mask", "mask_mod", fn, kwargs)
