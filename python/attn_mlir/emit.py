"""Emit MLIR text for one ``attn.attention`` op (or its backward,
``attn.attention_grad``: ``emit_attention_grad_func``) wrapped in a
``func.func``.

Standard library only; the text is printed by ``attn_mlir.printer``.  The emitted text uses the dialect's pretty syntax
(``include/attn/Dialect/Attn/IR/AttnOps.td``, examples in
``test/Dialect/Attn/roundtrip.mlir``) and takes masks in the same dict format
as ``attn_mlir.reference`` (``{"kind": "causal", "alignment":
"bottom_right"}``, ...), so one description of a variant drives both the
compiler and the float64 reference::

    from attn_mlir.emit import emit_attention_func
    text = emit_attention_func(
        "f", (1, 4, 37, 32), (1, 2, 53, 32), (1, 2, 53, 16), "bf16",
        masks=[{"kind": "causal", "alignment": "bottom_right"}],
        return_lse=True)

Function arguments, in order (the op's operand order)::

    %attn_q, %attn_k, %attn_v, %attn_cap0 ... %attn_capN-1,
    [%attn_sink_logits], [%attn_sink_key, %attn_sink_value]

Results: ``O`` (``[B, Hq, Sq, Dv]`` of ``dtype``) and, with
``return_lse=True``, ``lse`` (``[B, Hq, Sq]`` f32).

Regions: ``score_mod`` / ``mask_mod`` are MLIR text of the region's single
block.  If the text starts with a block header (``^bb0(...)``) it is used
verbatim; otherwise the header is generated, naming the block arguments

* ``score_mod``: ``%s: f32, %b: index, %h: index, %i: index, %j: index``
* ``mask_mod``:  ``%b: index, %h: index, %i: index, %j: index``

followed by one ``%capN`` argument per captured operand (with the capture's
type).  The body must end with ``attn.yield``.  The custom parser does not
let region values shadow the function's, so the function's values are all
named ``%attn_*``: region bodies must not use names starting with ``attn_``.  Example (ALiBi, captures
``[((Hq,), "f32")]``)::

    %m = tensor.extract %cap0[%h] : tensor<4xf32>
    %ii = arith.index_cast %i : index to i64
    %jj = arith.index_cast %j : index to i64
    %d = arith.subi %jj, %ii : i64
    %df = arith.sitofp %d : i64 to f32
    %t = arith.mulf %m, %df : f32
    %r = arith.addf %s, %t : f32
    attn.yield %r : f32
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence, Tuple

from . import printer as _printer
from .kinds import FEATURE_MAPS as _FEATURE_MAPS
from .kinds import NORMALIZATIONS as _NORMALIZATIONS
from .kinds import SCORE_KINDS as _SCORES
from .printer import ELEMENT_TYPES, format_float, mask_attr, tensor_type

__all__ = [
    "ELEMENT_TYPES",
    "format_float",
    "tensor_type",
    "mask_attr",
    "emit_attention_func",
    "emit_attention_grad_func",
]

_int = _printer._int

#: Capture element types that get a gradient from attn.attention_grad.
_FLOAT_ELEMENTS = ("f16", "bf16", "f32", "f64")


def _check_choice(what: str, value: str, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of "
                         f"{choices}")


def _check_shapes(q_shape, k_shape, v_shape):
    q_shape, k_shape, v_shape = (tuple(_int(d, "a size") for d in s)
                                 for s in (q_shape, k_shape, v_shape))
    if not (len(q_shape) == len(k_shape) == len(v_shape) == 4):
        raise ValueError(f"q, k, v shapes must have rank 4, got {q_shape}, "
                         f"{k_shape}, {v_shape}")
    B, Hq, Sq, Dqk = q_shape
    _, Hkv, Sk, Dk = k_shape
    if k_shape[0] != B or v_shape[0] != B or Dk != Dqk or \
            v_shape[1] != Hkv or v_shape[2] != Sk:
        raise ValueError(f"inconsistent shapes q {q_shape}, k {k_shape}, "
                         f"v {v_shape}")
    return q_shape, k_shape, v_shape


def emit_attention_func(name: str, q_shape: Sequence[int],
                        k_shape: Sequence[int], v_shape: Sequence[int],
                        dtype: str = "f32", *, score: str = "dot",
                        scale: Optional[float] = None,
                        gamma: Optional[float] = None,
                        q_map: str = "identity", k_map: str = "identity",
                        masks: Iterable[Mapping] = (),
                        normalization: str = "softmax",
                        bias: Optional[float] = None,
                        length_scale: Optional[float] = None,
                        sink_logits_shape: Optional[Sequence[int]] = None,
                        sink_rows: Optional[int] = None,
                        captures: Sequence[Tuple[Sequence[int], str]] = (),
                        score_mod: Optional[str] = None,
                        mask_mod: Optional[str] = None,
                        return_lse: bool = False) -> str:
    """``func.func @name`` computing one ``attn.attention``; returns MLIR text.

    * ``q_shape [B, Hq, Sq, Dqk]``, ``k_shape [B, Hkv, Sk, Dqk]``,
      ``v_shape [B, Hkv, Sk, Dv]``; ``dtype`` one of ``f32``, ``f16``,
      ``bf16`` (q, k, v, sink rows and ``O``).
    * ``score``, ``scale``, ``gamma``, ``q_map``, ``k_map``,
      ``normalization``, ``bias``, ``length_scale``: the variant
      specification, as in ``reference.attention`` (``None`` leaves the
      dialect default, i.e. the attribute is not printed).
    * ``masks``: reference-style mask dicts (see ``mask_attr``), printed as
      ``mask = [...]`` in the given order (omitted when empty).
    * ``sink_logits_shape``: the shape of the f32 ``sink_logits`` operand
      (``(Hq,)``), or ``None`` for none.
    * ``sink_rows``: ``Ns``, the number of learned sink key/value rows
      (operands ``[Hkv, Ns, Dqk]`` and ``[Hkv, Ns, Dv]`` of ``dtype``), or
      ``None``.
    * ``captures``: ``(shape, element type)`` pairs, e.g.
      ``[((2, 37), "i32")]``; they are the function arguments after
      ``%v`` and the trailing block arguments ``%cap0...`` of the regions.
    * ``score_mod`` / ``mask_mod``: region bodies (see the module doc).
    * ``return_lse``: also return the f32 ``lse [B, Hq, Sq]``.

    Only shapes are checked here (rank 4, matching sizes); everything else is
    left to the dialect's verifier.
    """
    types, spec, regions = _func_parts(
        name, q_shape, k_shape, v_shape, dtype, score=score, scale=scale,
        gamma=gamma, q_map=q_map, k_map=k_map, masks=masks,
        normalization=normalization, bias=bias, length_scale=length_scale,
        sink_logits_shape=sink_logits_shape, sink_rows=sink_rows,
        captures=captures, score_mod=score_mod, mask_mod=mask_mod,
        lse=return_lse)
    return _printer.attention_func(name, types, spec=spec, regions=regions)


def emit_attention_grad_func(name: str, q_shape: Sequence[int],
                             k_shape: Sequence[int], v_shape: Sequence[int],
                             dtype: str = "f32", *,
                             lse: Optional[bool] = None,
                             grad_lse: bool = False, **spec) -> str:
    """``func.func @name`` computing one ``attn.attention_grad``, the
    backward of what ``emit_attention_func`` emits for the same shapes and
    ``spec`` (its keyword arguments but ``return_lse``: the specification,
    ``masks``, ``captures``, ``sink_logits_shape``, ``sink_rows``,
    ``score_mod``, ``mask_mod``).

    Function arguments: ``%attn_q, %attn_k, %attn_v, %attn_o, %attn_do``
    (``O`` and ``dO`` are ``[B, Hq, Sq, Dv]`` of ``dtype``), ``%attn_lse``
    (``[B, Hq, Sq]`` f32, the forward's lse: with ``lse``, which defaults to
    whether the normalization is of the softmax family, where the op needs
    it), ``%attn_dlse`` (with ``grad_lse``), then the captures and sinks as
    in ``emit_attention_func``. Results: ``dq, dk, dv``, the sink gradients
    where the op has sinks, one gradient per floating capture
    (``printer.attention_grad_func``: ``%attn_dp0...`` after dv).
    """
    if "return_lse" in spec:
        raise TypeError("emit_attention_grad_func takes lse=, not return_lse=")
    if lse is None:
        lse = spec.get("normalization", "softmax") in \
            _printer.LSE_OPERAND_NORMALIZATIONS
    types, spec_text, regions = _func_parts(name, q_shape, k_shape, v_shape,
                                            dtype, lse=lse, **spec)
    floating = [elt in _FLOAT_ELEMENTS
                for _, elt in spec.get("captures", ())]
    return _printer.attention_grad_func(name, types, grad_lse=grad_lse,
                                        spec=spec_text, regions=regions,
                                        floating=floating)


def _func_parts(name: str, q_shape, k_shape, v_shape, dtype: str, *,
                score: str = "dot", scale: Optional[float] = None,
                gamma: Optional[float] = None, q_map: str = "identity",
                k_map: str = "identity", masks: Iterable[Mapping] = (),
                normalization: str = "softmax", bias: Optional[float] = None,
                length_scale: Optional[float] = None,
                sink_logits_shape: Optional[Sequence[int]] = None,
                sink_rows: Optional[int] = None,
                captures: Sequence[Tuple[Sequence[int], str]] = (),
                score_mod: Optional[str] = None,
                mask_mod: Optional[str] = None, lse: bool = False):
    """The checked types, specification text and region blocks of one
    attention op (``lse``: whether the types carry the f32 lse)."""
    if not name or not all(c.isalnum() or c in "_$." for c in name):
        raise ValueError(f"bad function name {name!r}")
    _check_choice("element type", dtype, ELEMENT_TYPES)
    _check_choice("score kind", score, _SCORES)
    _check_choice("feature map", q_map, _FEATURE_MAPS)
    _check_choice("feature map", k_map, _FEATURE_MAPS)
    _check_choice("normalization", normalization, _NORMALIZATIONS)
    q_shape, k_shape, v_shape = _check_shapes(q_shape, k_shape, v_shape)
    B, Hq, Sq, Dqk = q_shape
    Hkv, Dv = k_shape[1], v_shape[3]
    types = _printer.AttentionTypes(
        q=tensor_type(q_shape, dtype), k=tensor_type(k_shape, dtype),
        v=tensor_type(v_shape, dtype), o=tensor_type((B, Hq, Sq, Dv), dtype),
        captures=[tensor_type(shape, elt) for shape, elt in captures],
        lse=tensor_type((B, Hq, Sq), "f32") if lse else None)
    if sink_logits_shape is not None:
        types.sink_logits = tensor_type(tuple(sink_logits_shape), "f32")
    if sink_rows is not None:
        ns = _int(sink_rows, "sink_rows")
        types.sink_rows = (tensor_type((Hkv, ns, Dqk), dtype),
                           tensor_type((Hkv, ns, Dv), dtype))
    spec = _printer.spec_text({
        "score": score, "scale": scale, "gamma": gamma,
        "q_map": None if q_map == "identity" else q_map,
        "k_map": None if k_map == "identity" else k_map,
        "masks": list(masks), "normalization": normalization, "bias": bias,
        "length_scale": length_scale})
    regions = {kind: _printer.region_block(kind, body, types.captures)
               for kind, body in (("score_mod", score_mod),
                                  ("mask_mod", mask_mod)) if body is not None}
    return types, spec, regions
