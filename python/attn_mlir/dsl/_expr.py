"""The expression graph of a traced region: ``Expr`` (a traced value whose
operators record ops), the conversions between its types, and the captured
tensors (``_CaptureRef``), which only indexing turns into values."""

from __future__ import annotations

import builtins
import operator
from typing import Dict, List, Sequence

import numpy as np

from .._variant import Capture
from ._errors import DSLError, _error, _user_location


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
    np.bitwise_xor: operator.xor, np.left_shift: operator.lshift,
    np.right_shift: operator.rshift, np.negative: operator.neg,
    np.positive: operator.pos, np.invert: operator.invert,
}

_DSL_HINT = ("use the dsl functions (dsl.tanh, dsl.exp, dsl.exp2, dsl.log, "
             "dsl.sqrt, dsl.abs, dsl.minimum, dsl.maximum, dsl.clamp, "
             "dsl.where), which dispatch to numpy or torch on arrays")


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
        if _is_literal(other):
            # An f32 constant rather than a converted integer one: the GPU
            # kernel multiplies by the reciprocal of a constant divisor.
            lit = self.trace.const(other, "f32")
            a, b = (lit, b) if swap else (a, lit)
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
        # select(x < 0, 0 - x, x): _nonneg knows it (the GPU kernel turns
        # math.absi into the same select).
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

    def _shift(self, other, op: str, swap=False):
        """``<<`` / ``>>``: ``arith.shli`` / ``arith.shrsi`` (Python's ``>>``
        is an arithmetic shift, floor division by a power of two, for every
        value; for values >= 0 ``arith.shrui`` would give the same bits, so
        the DSL always emits ``shrsi``). A constant amount must lie in
        ``0 .. width - 1``; a traced one outside it gives numpy's results
        (``<<``: 0, ``>>``: 0 or -1 by the sign), not ``arith``'s poison."""
        sym = "<<" if op == "arith.shli" else ">>"
        a, b, t = self._promote(other, swap)
        if t == "f32":
            raise _error(f"'{sym}' of a float value; shifts take integers "
                         "(index, i32, i64)")
        if t == "i1":
            raise _error(f"'{sym}' of booleans; shifts take integers")
        tr = self.trace
        width = 32 if t == "i32" else 64        # index is 64-bit everywhere
        if b.op == "arith.constant":
            if not 0 <= b.attr < width:
                raise _error(f"'{sym}' by {b.attr}: the shift amount of "
                             f"{t} values must lie in 0..{width - 1}")
            return tr.node(op, (a, b), t)
        in_range = tr.node("arith.cmpi", (b, tr.const(width, t)), "i1",
                           "slt")
        if not _nonneg(b):
            in_range = tr.node("arith.andi", (tr.node(
                "arith.cmpi", (b, tr.const(0, t)), "i1", "sge"), in_range),
                "i1")
        if op == "arith.shrsi":
            amount = tr.node("arith.select",
                             (in_range, b, tr.const(width - 1, t)), t)
            return tr.node(op, (a, amount), t)
        return tr.node("arith.select", (in_range, tr.node(op, (a, b), t),
                                        tr.const(0, t)), t)

    def __lshift__(self, o): return self._shift(o, "arith.shli")
    def __rlshift__(self, o): return self._shift(o, "arith.shli", True)
    def __rshift__(self, o): return self._shift(o, "arith.shrsi")
    def __rrshift__(self, o): return self._shift(o, "arith.shrsi", True)

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
    if e.op == "arith.shrsi":
        return _nonneg(e.args[0])
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
              "and", "rand", "or", "ror", "xor", "rxor", "lshift", "rlshift",
              "rshift", "rrshift", "invert", "bool",
              "float", "int", "index", "len", "iter", "array"):
    setattr(_CaptureRef, f"__{_name}__", _CaptureRef._not_indexed)
_CaptureRef.__hash__ = object.__hash__
