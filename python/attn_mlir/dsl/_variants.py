"""``dsl.Variant`` and the decorators that make one, and the masks."""

from __future__ import annotations

import inspect
import math
import os
import re
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .. import printer as _printer
from .. import reference as _ref
from .._variant import Capture, VariantBase, element_type_of
from ._errors import _def_location, _error, _user_location
from ._expr import Expr, _CaptureRef, _convert, _is_literal, _Trace
from ._region import (_MASK_PARAMS, _SCORE_PARAMS, _annotation, _call,
                      _extra_params, _params, _parse_capture_type, _Region,
                      _ssa_names)


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
any_of = _ref.any_of


def document(q_segments=0, kv_segments=None) -> dict:
    """Document masking: key ``j`` is visible to query ``i`` iff
    ``q_seg[b, i] == kv_seg[b, j]``. The segment ids are captured tensors,
    named (``"seg"``) or numbered; ``kv_segments`` defaults to
    ``q_segments`` (one capture for both, Sq == Sk)."""
    return {"kind": "document", "q_segments": q_segments,
            "kv_segments": q_segments if kv_segments is None
            else kv_segments}



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
            for p, is_capture in _extra_params(fn, fixed, what):
                if not is_capture:
                    if p.name in decl and explicit:
                        raise _error(
                            f"'{p.name}' defaults to the number "
                            f"{p.default!r}, a constant of the {what}, but "
                            "captures= declares it a captured tensor",
                            _def_location(fn))
                    continue
                if p.name not in decl:
                    if explicit:
                        raise _error(
                            f"the {what} takes the captured tensor "
                            f"'{p.name}', which captures= does not declare",
                            _def_location(fn))
                    decl[p.name] = Capture(p.name, "", None)
                c = decl[p.name]
                if p.default is not p.empty and not c.elt:
                    # An array default gives the type (the data is still
                    # passed with the other captures).
                    c.elt = element_type_of(p.default)
                    c.rank = len(p.default.shape)
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
            _printer.mask_attr(m)
        except ValueError as e:
            raise _error(str(e), loc)
        return m

    def _trace(self, fn, kind: str) -> _Region:
        fixed = _SCORE_PARAMS if kind == "score_mod" else _MASK_PARAMS
        params = _params(fn, fixed, kind)
        extras = _extra_params(fn, fixed, kind)
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
        result = _call(fn, args, extras, refs)
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
        extras = _extra_params(fn, fixed, "region")
        names = [c.name for c in self.captures]

        def call(*args):
            return _call(fn, args[:fixed], extras,
                         dict(zip(names, args[fixed:])))
        return call

    @property
    def score_mod_fn(self):
        return self._select(self.score_mod, _SCORE_PARAMS)

    @property
    def mask_mod_fn(self):
        return self._select(self.mask_mod, _MASK_PARAMS)

    def mlir(self, name: Optional[str] = None) -> str:
        """The ``attn.variant`` op (named ``name``, default the variant's)."""
        filename, lineno = self._loc
        origin = (f"attn_mlir.dsl variant '{self.name}'"
                  + (f" ({os.path.basename(filename)}:{lineno})"
                     if filename else ""))
        regions = {kind: self.region_block(kind)
                   for kind in ("score_mod", "mask_mod")}
        return _printer.variant_op(name or self.name, self.spec, regions,
                                   origin=origin)


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
