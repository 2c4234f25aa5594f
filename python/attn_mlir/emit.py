"""Emit MLIR text for one ``attn.attention`` op wrapped in a ``func.func``.

Standard library only.  The emitted text uses the dialect's pretty syntax
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

import math
from typing import Iterable, Mapping, Optional, Sequence, Tuple

__all__ = [
    "ELEMENT_TYPES",
    "format_float",
    "tensor_type",
    "mask_attr",
    "emit_attention_func",
]

#: Element types of q / k / v (and the sink rows, and O).
ELEMENT_TYPES = ("f32", "f16", "bf16")

from .kinds import ALIGNMENTS as _ALIGNMENTS  # noqa: E402
from .kinds import FEATURE_MAPS as _FEATURE_MAPS  # noqa: E402
from .kinds import NORMALIZATIONS as _NORMALIZATIONS  # noqa: E402
from .kinds import SCORE_KINDS as _SCORES  # noqa: E402

# kind -> (required parameters, optional parameters) in the attribute's
# parameter order (AttnAttrs.td); the same table as reference.py's.
_MASK_PARAMS = {
    "causal": ((), ("alignment",)),
    "prefix_lm": (("prefix",), ("alignment",)),
    "document": (("q_segments", "kv_segments"), ()),
    "sliding_window": (("left",), ("right", "alignment")),
    "chunked": (("size",), ("alignment",)),
    "neighborhood_1d": (("kernel",), ("dilation",)),
    "neighborhood_2d": (("height", "width", "kernel_h", "kernel_w"),
                        ("dilation_h", "dilation_w")),
    "sink_tokens": (("count",), ()),
}


def format_float(x) -> str:
    """A Python number as an MLIR float literal.

    MLIR's float literal needs a decimal point (``1e-05`` does not parse,
    ``1.0e-05`` does), so ``repr`` is patched to always carry one.  ``repr``
    round-trips exactly, so the attribute holds the same double as ``x``.
    Non-finite values raise ``ValueError`` (the verifier rejects them anyway
    and MLIR spells them only in hex).
    """
    f = float(x)
    if not math.isfinite(f):
        raise ValueError(f"cannot emit the non-finite float {f!r}")
    r = repr(f)
    mant, sep, exp = r.partition("e")
    if "." not in mant:
        mant += ".0"
    return mant + (sep + exp if sep else "")


def _int(x, what: str) -> int:
    if isinstance(x, bool) or int(x) != x:
        raise ValueError(f"{what} must be an integer, got {x!r}")
    return int(x)


def tensor_type(shape: Sequence[int], elt: str) -> str:
    """``tensor<2x4x37x16xbf16>`` (static sizes only; ``()`` is a 0-d
    tensor)."""
    dims = "".join(f"{_int(d, 'a tensor size')}x" for d in shape)
    return f"tensor<{dims}{elt}>"


def mask_attr(mask: Mapping) -> str:
    """A reference-style mask dict as its ``#attn.*`` attribute.

    Every parameter the dict gives is printed (defaults included, which the
    parser accepts); missing optional ones take the dialect defaults.
    ``chunked`` has no alignment in the dialect: an ``alignment`` key is only
    accepted when it is ``top_left`` (the dialect's behaviour).
    """
    if not isinstance(mask, Mapping) or "kind" not in mask:
        raise ValueError(f"a mask is a dict with a 'kind' key, got {mask!r}")
    kind = mask["kind"]
    if kind not in _MASK_PARAMS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of "
                         f"{tuple(_MASK_PARAMS)}")
    required, optional = _MASK_PARAMS[kind]
    unknown = set(mask) - set(required) - set(optional) - {"kind"}
    if unknown:
        raise ValueError(f"mask {kind!r} has unknown keys {sorted(unknown)}")
    missing = [p for p in required if p not in mask]
    if missing:
        raise ValueError(f"mask {kind!r} lacks {missing}")
    alignment = mask.get("alignment")
    if alignment is not None and alignment not in _ALIGNMENTS:
        raise ValueError(f"mask {kind!r}: unknown alignment {alignment!r}")

    if kind == "causal":
        if alignment in (None, "top_left"):
            return "#attn.causal"
        return f"#attn.causal<{alignment}>"
    if kind == "chunked":
        if alignment not in (None, "top_left"):
            raise ValueError("#attn.chunked has no alignment parameter; "
                             f"cannot emit alignment = {alignment!r}")
        return f"#attn.chunked<size = {_int(mask['size'], 'size')}>"

    params = []
    for p in required + optional:
        if p not in mask or p == "kind":
            continue
        val = mask[p]
        if p == "alignment":
            params.append(f"alignment = {val}")
        else:
            params.append(f"{p} = {_int(val, f'{kind}.{p}')}")
    return f"#attn.{kind}<{', '.join(params)}>"


def _region(kind: str, body: str, capture_types: Sequence[str]) -> str:
    text = body.strip("\n")
    if text.lstrip().startswith("^"):
        block = text
    else:
        args = (["%s: f32"] if kind == "score_mod" else []) + [
            "%b: index", "%h: index", "%i: index", "%j: index"]
        args += [f"%cap{n}: {t}" for n, t in enumerate(capture_types)]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        block = f"  ^bb0({', '.join(args)}):\n" + "".join(
            f"    {ln}\n" for ln in lines)
    return f"{kind} {{\n{block.rstrip()}\n  }}"


def _check_choice(what: str, value: str, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of "
                         f"{choices}")


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
    if not name or not all(c.isalnum() or c in "_$." for c in name):
        raise ValueError(f"bad function name {name!r}")
    _check_choice("element type", dtype, ELEMENT_TYPES)
    _check_choice("score kind", score, _SCORES)
    _check_choice("feature map", q_map, _FEATURE_MAPS)
    _check_choice("feature map", k_map, _FEATURE_MAPS)
    _check_choice("normalization", normalization, _NORMALIZATIONS)
    q_shape, k_shape, v_shape = (tuple(_int(d, "a size") for d in s)
                                 for s in (q_shape, k_shape, v_shape))
    if not (len(q_shape) == len(k_shape) == len(v_shape) == 4):
        raise ValueError(f"q, k, v shapes must have rank 4, got {q_shape}, "
                         f"{k_shape}, {v_shape}")
    B, Hq, Sq, Dqk = q_shape
    _, Hkv, Sk, Dk = k_shape
    Dv = v_shape[3]
    if k_shape[0] != B or v_shape[0] != B or Dk != Dqk or \
            v_shape[1] != Hkv or v_shape[2] != Sk:
        raise ValueError(f"inconsistent shapes q {q_shape}, k {k_shape}, "
                         f"v {v_shape}")

    tq, tk, tv = (tensor_type(s, dtype) for s in (q_shape, k_shape, v_shape))
    to = tensor_type((B, Hq, Sq, Dv), dtype)
    tl = tensor_type((B, Hq, Sq), "f32")

    args = [f"%attn_q: {tq}", f"%attn_k: {tk}", f"%attn_v: {tv}"]
    operands = ["%attn_q, %attn_k, %attn_v"]
    cap_types = [tensor_type(shape, elt) for shape, elt in captures]
    if cap_types:
        names = [f"%attn_cap{n}" for n in range(len(cap_types))]
        args += [f"{n}: {t}" for n, t in zip(names, cap_types)]
        operands.append(f"captures({', '.join(names)} : "
                        f"{', '.join(cap_types)})")
    if sink_logits_shape is not None:
        tsl = tensor_type(tuple(sink_logits_shape), "f32")
        args.append(f"%attn_sink_logits: {tsl}")
        operands.append(f"sink_logits(%attn_sink_logits : {tsl})")
    if sink_rows is not None:
        ns = _int(sink_rows, "sink_rows")
        tsk = tensor_type((Hkv, ns, Dqk), dtype)
        tsv = tensor_type((Hkv, ns, Dv), dtype)
        args += [f"%attn_sink_key: {tsk}", f"%attn_sink_value: {tsv}"]
        operands.append(f"sink_rows(%attn_sink_key, %attn_sink_value : "
                        f"{tsk}, {tsv})")

    spec = [f"score<{score}>"]
    if scale is not None:
        spec.append(f"scale = {format_float(scale)}")
    if gamma is not None:
        spec.append(f"gamma = {format_float(gamma)}")
    if q_map != "identity":
        spec.append(f"q_map<{q_map}>")
    if k_map != "identity":
        spec.append(f"k_map<{k_map}>")
    masks = list(masks)
    if masks:
        spec.append("mask = [" + ", ".join(mask_attr(m) for m in masks) + "]")
    spec.append(f"normalize<{normalization}>")
    if bias is not None:
        spec.append(f"bias = {format_float(bias)}")
    if length_scale is not None:
        spec.append(f"length_scale = {format_float(length_scale)}")

    results = ["%attn_o"] + (["%attn_lse"] if return_lse else [])
    result_types = [to] + ([tl] if return_lse else [])
    regions = []
    if score_mod is not None:
        regions.append(_region("score_mod", score_mod, cap_types))
    if mask_mod is not None:
        regions.append(_region("mask_mod", mask_mod, cap_types))

    ret_sig = result_types[0] if len(result_types) == 1 else \
        "(" + ", ".join(result_types) + ")"
    lines = [
        f"func.func @{name}({', '.join(args)}) -> {ret_sig} {{",
        f"  {', '.join(results)} = attn.attention {' '.join(operands)}",
        f"      {' '.join(spec)}",
        f"      : {tq}, {tk}, {tv}",
        f"      -> {', '.join(result_types)}" +
        (" " + " ".join(regions) if regions else ""),
        f"  return {', '.join(results)} : {', '.join(result_types)}",
        "}",
    ]
    return "\n".join(lines) + "\n"
