"""What the library variants (``attn_mlir.variants``) and the Python DSL's
variants (``attn_mlir.dsl``) have in common: a specification, captured
operands, regions as MLIR text and as numpy callables, and the derived
``reference`` / ``emit_func`` / ``emit_grad_func`` / ``mlir`` methods that
``attn_mlir.compiler`` uses.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np

from . import emit as _emit
from . import printer as _printer
from . import reference as _ref
from .parser import parse_tensor_type  # noqa: F401 (re-exported)
from .printer import SPEC_KEYS  # noqa: F401 (re-exported)

#: Element types a captured tensor may have, and their numpy types.
CAPTURE_ELEMENTS = {"f32": np.float32, "i32": np.int32, "i64": np.int64}


@dataclass
class Capture:
    """A captured operand of a variant.

    ``elt``: its element type (``f32``, ``i32``, ``i64``); ``rank``: its rank
    (``None`` where nothing says); ``shape``: a description such as
    ``"[Hq]"`` (documentation only); ``doc``: what it holds.
    """
    name: str
    elt: str
    rank: Optional[int] = None
    shape: str = ""
    doc: str = ""

    def region_type(self) -> str:
        """The type of the region's block argument: every size dynamic."""
        if self.rank is None:
            raise ValueError(f"the rank of capture '{self.name}' is unknown")
        return "tensor<" + "?x" * self.rank + self.elt + ">"


def element_type_of(array) -> str:
    """The MLIR element type of a numpy/torch array of captured data:
    floats become ``f32``, 32-bit-or-narrower integers and booleans ``i32``,
    64-bit integers ``i64``."""
    dt = str(getattr(array, "dtype", np.asarray(array).dtype))
    dt = dt.replace("torch.", "")
    if "float" in dt or "bfloat" in dt:
        return "f32"
    if dt in ("int64", "uint64", "long"):
        return "i64"
    return "i32"


class VariantBase(abc.ABC):
    """A named attention variant: everything but the tensors.

    Subclasses set ``name``, ``spec`` (the keys of ``SPEC_KEYS`` that are
    given, mask dicts as in ``reference``), ``captures`` (a list of
    ``Capture``) and implement ``region_block(kind)`` (the MLIR text of the
    ``score_mod`` / ``mask_mod`` block, starting with ``^bb0``, or None),
    ``score_mod_fn`` / ``mask_mod_fn`` (the regions for the numpy reference:
    ``f(s, b, h, i, j, *all_captures)`` / ``f(b, h, i, j, *all_captures)``,
    or None) and ``mlir(name)`` (the ``attn.variant`` op).
    """

    name: str
    spec: dict
    captures: List[Capture]
    #: Whether the op must supply sink logits / sink rows (None: unknown,
    #: i.e. optional).
    sink_logits: Optional[bool] = None
    sink_rows: Optional[bool] = None

    # -- provided by the subclasses (dsl.Variant, variants.LibraryVariant) ---
    @abc.abstractmethod
    def region_block(self, kind: str) -> Optional[str]:
        """The `score_mod` / `mask_mod` block text, from ``^bb0``, or None."""

    @property
    @abc.abstractmethod
    def score_mod_fn(self) -> Optional[Callable]:
        """The score region as a numpy function, or None."""

    @property
    @abc.abstractmethod
    def mask_mod_fn(self) -> Optional[Callable]:
        """The mask region as a numpy function, or None."""

    @abc.abstractmethod
    def mlir(self, name: Optional[str] = None) -> str:
        """The ``attn.variant`` op."""

    # -- derived --------------------------------------------------------------
    @property
    def normalization(self) -> str:
        return self.spec.get("normalization") or "softmax"

    @property
    def has_lse(self) -> bool:
        """Whether the variant defines an ``lse`` result."""
        return self.normalization in _ref.LSE_NORMALIZATIONS

    def reference_kwargs(self) -> dict:
        """Keyword arguments of ``reference.attention`` for this variant
        (without tensors)."""
        kw = {k: v for k, v in self.spec.items() if v is not None}
        kw["masks"] = list(self.spec.get("masks") or ())
        kw["score_mod"] = self.score_mod_fn
        kw["mask_mod"] = self.mask_mod_fn
        return kw

    def reference(self, q, k, v, *captures, sink_logits=None, sink_key=None,
                  sink_value=None, return_lse=False):
        """``reference.attention`` (float64 numpy) of this variant."""
        self._check_captures(captures)
        return _ref.attention(
            _np(q), _np(k), _np(v), captures=[_np(c) for c in captures],
            sink_logits=None if sink_logits is None else _np(sink_logits),
            sink_key=None if sink_key is None else _np(sink_key),
            sink_value=None if sink_value is None else _np(sink_value),
            return_lse=return_lse, **self.reference_kwargs())

    def _check_captures(self, captures: Sequence) -> None:
        if len(captures) != len(self.captures):
            names = ", ".join(c.name for c in self.captures) or "none"
            raise TypeError(f"variant '{self.name}' takes {len(self.captures)}"
                            f" captured tensor(s) ({names}), got "
                            f"{len(captures)}")

    def emit_func(self, name: str, q_shape, k_shape, v_shape,
                  dtype: str = "f32", *, captures: Sequence = (),
                  sink_logits: bool = False, sink_rows: Optional[int] = None,
                  return_lse: bool = False) -> str:
        """A ``func.func @name`` computing this variant on static shapes,
        with the specification inlined (``attn_mlir.emit``).

        ``captures``: one shape (or array, whose shape is taken) per captured
        operand; their element types are the variant's. ``sink_logits``:
        add the ``[Hq]`` sink-logit operand; ``sink_rows``: ``Ns``.
        """
        return _emit.emit_attention_func(
            name, q_shape, k_shape, v_shape, dtype, return_lse=return_lse,
            **self._emit_kwargs(q_shape, captures, sink_logits, sink_rows))

    def emit_grad_func(self, name: str, q_shape, k_shape, v_shape,
                       dtype: str = "f32", *, captures: Sequence = (),
                       sink_logits: bool = False,
                       sink_rows: Optional[int] = None,
                       lse: Optional[bool] = None,
                       grad_lse: bool = False) -> str:
        """The backward of ``emit_func``: a ``func.func @name`` holding the
        ``attn.attention_grad`` of this variant on static shapes
        (``attn_mlir.emit.emit_attention_grad_func``: arguments q, k, v, O,
        dO, [lse], [dlse], captures, sinks; results dq, dk, dv, the sink
        gradients, one per floating capture). ``lse`` defaults to whether
        the variant is of the softmax family (where the op needs it)."""
        return _emit.emit_attention_grad_func(
            name, q_shape, k_shape, v_shape, dtype, lse=lse,
            grad_lse=grad_lse,
            **self._emit_kwargs(q_shape, captures, sink_logits, sink_rows))

    def _emit_kwargs(self, q_shape, captures: Sequence, sink_logits: bool,
                     sink_rows: Optional[int]) -> dict:
        """The keyword arguments of ``attn_mlir.emit`` for this variant."""
        self._check_captures(captures)
        cap = []
        for c, decl in zip(captures, self.captures):
            shape = tuple(getattr(c, "shape", c))
            if decl.rank is not None and len(shape) != decl.rank:
                raise ValueError(f"capture '{decl.name}' has rank "
                                 f"{decl.rank}, got shape {shape}")
            cap.append((shape, decl.elt))
        kw = {k: v for k, v in self.spec.items() if v is not None}
        kw.setdefault("score", "dot")
        kw.setdefault("normalization", "softmax")
        return dict(kw, captures=cap,
                    sink_logits_shape=(q_shape[1],) if sink_logits else None,
                    sink_rows=sink_rows,
                    score_mod=self.region_block("score_mod"),
                    mask_mod=self.region_block("mask_mod"))

    def spec_text(self) -> str:
        """The specification in the dialect's syntax and printed order."""
        return _printer.spec_text(self.spec, compact=True)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}: {self.spec_text()}>"

    # A variant is equal only to itself (object's behaviour, spelled out):
    # torch.compile treats classes with their own __eq__ and __hash__ as
    # constants once registered (attn_mlir.torch does), guarding on them.
    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return object.__hash__(self)


def _np(x):
    """numpy view of a numpy array or a (CPU or CUDA) torch tensor."""
    if type(x).__module__.startswith("torch"):
        t = x.detach()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.cpu().numpy()
    return np.asarray(x)
