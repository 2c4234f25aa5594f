"""The one printer of the ``attn`` dialect's text in Python.

Everything attn_mlir hands to ``attn-opt`` / ``attn-run`` is printed here:
float literals and tensor types, mask attributes, the variant specification
(``score<rbf> scale = ... mask = [...] normalize<...> ...``), region blocks
and the ops of their bodies, ``attn.variant`` ops, and functions holding
one ``attn.attention`` or one ``attn.attention_grad`` (with the
specification inline or ``variant @name``). ``attn_mlir.parser`` reads the same syntax back.

Standard library only. The syntax is the dialect's pretty form
(``include/attn/Dialect/Attn/IR/AttnOps.td``, examples in
``test/Dialect/Attn/roundtrip.mlir``); masks are the dicts of
``attn_mlir.reference`` (``{"kind": "causal", "alignment":
"bottom_right"}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Tuple

from .kinds import check_mask
from .kinds import MASK_PARAMS as _KIND_MASK_PARAMS

__all__ = ["ELEMENT_TYPES", "MASK_PARAMS", "MASK_DEFAULTS", "SPEC_KEYS",
           "format_float", "tensor_type", "mask_attr", "compact_mask",
           "spec_text", "region_block", "region", "block", "op_line",
           "variant_op", "AttentionTypes", "attention_func",
           "LSE_OPERAND_NORMALIZATIONS", "grad_param_types",
           "attention_grad_func"]

#: Element types of q / k / v (and the sink rows, and O).
ELEMENT_TYPES = ("f32", "f16", "bf16")

#: The specification keys, in the dialect's printed order.
SPEC_KEYS = ("score", "scale", "gamma", "q_map", "k_map", "masks",
             "normalization", "bias", "length_scale")

#: mask kind -> (required parameters, optional parameters) in the
#: attribute's parameter order (AttnAttrs.td), from ``kinds.MASK_PARAMS``.
MASK_PARAMS = {kind: (required, tuple(optional))
               for kind, (required, optional) in _KIND_MASK_PARAMS.items()}

#: mask kind -> the dialect's defaults of its optional parameters.
MASK_DEFAULTS = {kind: dict(optional)
                 for kind, (_, optional) in _KIND_MASK_PARAMS.items()}


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


def tensor_type(shape: Sequence[Optional[int]], elt: str) -> str:
    """``tensor<2x4x37x16xbf16>``; a ``None`` size is dynamic (``?``) and
    ``()`` a 0-d tensor."""
    dims = "".join(("?" if d is None else str(_int(d, "a tensor size"))) + "x"
                   for d in shape)
    return f"tensor<{dims}{elt}>"


def mask_attr(mask: Mapping) -> str:
    """A reference-style mask dict as its ``#attn.*`` attribute.

    Every parameter the dict gives is printed (defaults included, which the
    parser accepts); missing optional ones take the dialect defaults.
    """
    kind = check_mask(mask)
    required, optional = MASK_PARAMS[kind]
    alignment = mask.get("alignment")
    if kind == "any_of":
        return ("#attn.any_of<[" + ", ".join(mask_attr(m) for m in
                                             mask["masks"]) + "]>")
    if kind == "causal":
        if alignment in (None, "top_left"):
            return "#attn.causal"
        return f"#attn.causal<{alignment}>"
    params = []
    for p in required + optional:
        if p not in mask:
            continue
        val = mask[p]
        if p == "alignment":
            params.append(f"alignment = {val}")
        else:
            params.append(f"{p} = {_int(val, f'{kind}.{p}')}")
    return f"#attn.{kind}<{', '.join(params)}>"


def compact_mask(mask: Mapping) -> dict:
    """A mask dict without the keys that hold the dialect's defaults."""
    defaults = MASK_DEFAULTS.get(mask.get("kind"), {})
    return {k: v for k, v in mask.items() if defaults.get(k, object()) != v}


def spec_text(spec: Mapping, compact: bool = False) -> str:
    """A specification (the keys of ``SPEC_KEYS`` that are given and not
    None; masks as dicts) in the dialect's syntax and printed order.
    ``compact``: leave out mask parameters that hold the defaults."""
    unknown = set(spec) - set(SPEC_KEYS)
    if unknown:
        raise ValueError(f"unknown specification keys {sorted(unknown)}")
    s = {k: v for k, v in spec.items() if v is not None}
    out = []
    if "score" in s:
        out.append(f"score<{s['score']}>")
    out += [f"{key} = {format_float(s[key])}" for key in ("scale", "gamma")
            if key in s]
    out += [f"{key}<{s[key]}>" for key in ("q_map", "k_map") if key in s]
    if s.get("masks"):
        masks = [compact_mask(m) if compact else m for m in s["masks"]]
        out.append("mask = [" + ", ".join(mask_attr(m) for m in masks) + "]")
    if "normalization" in s:
        out.append(f"normalize<{s['normalization']}>")
    out += [f"{key} = {format_float(s[key])}"
            for key in ("bias", "length_scale") if key in s]
    return " ".join(out)


# ---------------------------------------------------------------------------
# Regions
# ---------------------------------------------------------------------------

#: The fixed block arguments of the regions, as ``attn_mlir.emit`` names
#: them when it generates a header.
REGION_ARGS = {"score_mod": ("%s: f32", "%b: index", "%h: index",
                             "%i: index", "%j: index"),
               "mask_mod": ("%b: index", "%h: index", "%i: index",
                            "%j: index")}


def block(args: Sequence[Tuple[str, str]], lines: Sequence[str],
          indent: str = "  ") -> str:
    """``^bb0(%a: t, ...):`` and the op lines (names without ``%``)."""
    head = ", ".join(f"%{n}: {t}" for n, t in args)
    return f"^bb0({head}):\n" + "".join(f"{indent}{ln}\n" for ln in lines)


def region_block(kind: str, body: str, capture_types: Sequence[str]) -> str:
    """The block of a ``score_mod`` / ``mask_mod`` region from its body
    text: used verbatim if it starts with a block header (``^bb0(...)``),
    else under a generated header (``REGION_ARGS``, then ``%capN`` of the
    capture types)."""
    text = body.strip("\n")
    if text.lstrip().startswith("^"):
        return text
    args = list(REGION_ARGS[kind]) + [f"%cap{n}: {t}"
                                      for n, t in enumerate(capture_types)]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"  ^bb0({', '.join(args)}):\n" + "".join(
        f"    {ln}\n" for ln in lines)


def region(kind: str, block_text: str, indent: str = "  ") -> str:
    """``score_mod { <block> }``."""
    return f"{kind} {{\n{block_text.rstrip()}\n{indent}}}"


_CASTS = ("arith.index_cast", "arith.sitofp", "arith.uitofp", "arith.extui",
          "arith.extsi", "arith.trunci")


def op_line(result: str, op: str, operands: Sequence[str], result_type: str,
            operand_type: str = "", attr=None) -> str:
    """One op of a region body, in the pretty syntax (``result`` and
    ``operands`` with ``%``). ``attr``: the constant's literal text, the
    comparison predicate, the tensor type of ``tensor.extract``;
    ``operand_type``: the type of the operands where it differs from the
    result's (comparisons, casts)."""
    a = ", ".join(operands)
    if op == "arith.constant":
        return f"{result} = arith.constant {attr}" + (
            "" if result_type == "i1" else f" : {result_type}")
    if op in ("arith.cmpi", "arith.cmpf"):
        return f"{result} = {op} {attr}, {a} : {operand_type}"
    if op in _CASTS:
        return f"{result} = {op} {a} : {operand_type} to {result_type}"
    if op == "tensor.extract":
        t, *idx = operands
        return f"{result} = tensor.extract {t}[{', '.join(idx)}] : {attr}"
    return f"{result} = {op} {a} : {result_type}"


def variant_op(name: str, spec: Mapping, regions: Mapping[str, str] = {},
               origin: str = "") -> str:
    """An ``attn.variant @name`` with ``spec`` (compact masks) and regions
    (kind -> block text from ``^bb0``); ``origin``: a comment line before
    it."""
    head = f"attn.variant @{name}"
    text = spec_text(spec, compact=True)
    parts = [head + (" " + text if text else "")]
    for kind in ("score_mod", "mask_mod"):
        if regions.get(kind) is not None:
            parts.append(f"{kind} {{\n{regions[kind]}}}")
    comment = f"// {origin}\n" if origin else ""
    return comment + " ".join(parts) + "\n"


# ---------------------------------------------------------------------------
# Functions holding one attn.attention
# ---------------------------------------------------------------------------

@dataclass
class AttentionTypes:
    """The operand and result types of one ``attn.attention``."""
    q: str
    k: str
    v: str
    o: str
    captures: Sequence[str] = field(default_factory=tuple)
    sink_logits: Optional[str] = None
    sink_rows: Optional[Tuple[str, str]] = None   # (sink_key, sink_value)
    lse: Optional[str] = None


def _operands(t: AttentionTypes):
    """The function arguments and op operand groups of the captures and
    sinks (after q, k, v and, for the backward, O, dO, lse, dlse)."""
    args, operands = [], []
    if t.captures:
        names = [f"%attn_cap{n}" for n in range(len(t.captures))]
        args += [f"{n}: {ty}" for n, ty in zip(names, t.captures)]
        operands.append(f"captures({', '.join(names)} : "
                        f"{', '.join(t.captures)})")
    if t.sink_logits is not None:
        args.append(f"%attn_sink_logits: {t.sink_logits}")
        operands.append(f"sink_logits(%attn_sink_logits : {t.sink_logits})")
    if t.sink_rows is not None:
        tsk, tsv = t.sink_rows
        args += [f"%attn_sink_key: {tsk}", f"%attn_sink_value: {tsv}"]
        operands.append(f"sink_rows(%attn_sink_key, %attn_sink_value : "
                        f"{tsk}, {tsv})")
    return args, operands


def _func(name: str, args, op: str, operands, spec: str, variant, regions,
          operand_types, results, result_types) -> str:
    if not name or not all(c.isalnum() or c in "_$." for c in name):
        raise ValueError(f"bad function name {name!r}")
    if variant is not None and (spec or regions):
        raise ValueError("an attention op names a variant or spells out "
                         "a specification, not both")
    mods = [region(kind, regions[kind]) for kind in ("score_mod", "mask_mod")
            if regions.get(kind) is not None]
    ret_sig = result_types[0] if len(result_types) == 1 else \
        "(" + ", ".join(result_types) + ")"
    lines = [
        f"func.func @{name}({', '.join(args)}) -> {ret_sig} {{",
        f"  {', '.join(results)} = {op} {' '.join(operands)}",
        f"      {spec if variant is None else f'variant @{variant}'}",
        f"      : {', '.join(operand_types)}",
        f"      -> {', '.join(result_types)}" +
        (" " + " ".join(mods) if mods else ""),
        f"  return {', '.join(results)} : {', '.join(result_types)}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def attention_func(name: str, types: AttentionTypes, *, spec: str = "",
                   variant: Optional[str] = None,
                   regions: Mapping[str, str] = {}) -> str:
    """``func.func @name`` whose arguments are the operands of one
    ``attn.attention`` (``%attn_q, %attn_k, %attn_v, %attn_cap0..,
    %attn_sink_logits, %attn_sink_key, %attn_sink_value``) and whose results
    are its ``O`` (and ``lse``). The op carries ``spec`` (specification
    text) or names ``variant``, and the regions (kind -> block text)."""
    t = types
    args, operands = _operands(t)
    args = [f"%attn_q: {t.q}", f"%attn_k: {t.k}", f"%attn_v: {t.v}"] + args
    operands = ["%attn_q, %attn_k, %attn_v"] + operands
    results = ["%attn_o"] + (["%attn_lse"] if t.lse else [])
    result_types = [t.o] + ([t.lse] if t.lse else [])
    return _func(name, args, "attn.attention", operands, spec, variant,
                 regions, [t.q, t.k, t.v], results, result_types)


#: The normalizations whose attn.attention_grad takes the forward's lse
#: (docs/semantics.md §6: the softmax family; `mean` accepts it too).
LSE_OPERAND_NORMALIZATIONS = ("softmax", "softmax1", "scalable_softmax")


def grad_param_types(types: AttentionTypes,
                     floating: Sequence[bool] = ()) -> list:
    """The types of ``attn.attention_grad``'s parameter gradients: the sink
    logits', the sink rows', then each floating capture's (``floating[n]``:
    whether capture n has a floating element type; all by default)."""
    t = types
    out = [] if t.sink_logits is None else [t.sink_logits]
    out += list(t.sink_rows or ())
    for n, ty in enumerate(t.captures):
        if floating[n] if n < len(floating) else True:
            out.append(ty)
    return out


def attention_grad_func(name: str, types: AttentionTypes, *, spec: str = "",
                        variant: Optional[str] = None,
                        regions: Mapping[str, str] = {},
                        grad_lse: bool = False,
                        floating: Sequence[bool] = ()) -> str:
    """``func.func @name`` holding one ``attn.attention_grad``: arguments
    ``%attn_q, %attn_k, %attn_v, %attn_o, %attn_do`` (O and dO of type
    ``types.o``), ``%attn_lse`` (when ``types.lse``), ``%attn_dlse`` (with
    ``grad_lse``), then the captures and sinks as ``attention_func``;
    results dq, dk, dv and the parameter gradients (``grad_param_types``)."""
    t = types
    args, operands = _operands(t)
    head = [f"%attn_q: {t.q}", f"%attn_k: {t.k}", f"%attn_v: {t.v}",
            f"%attn_o: {t.o}", f"%attn_do: {t.o}"]
    ops = ["%attn_q, %attn_k, %attn_v, %attn_o, %attn_do"]
    if t.lse:
        head.append(f"%attn_lse: {t.lse}")
        ops.append(f"lse(%attn_lse : {t.lse})")
    if grad_lse:
        if not t.lse:
            raise ValueError("grad_lse needs lse")
        head.append(f"%attn_dlse: {t.lse}")
        ops.append(f"grad_lse(%attn_dlse : {t.lse})")
    params = grad_param_types(t, floating)
    results = ["%attn_dq", "%attn_dk", "%attn_dv"] + [
        f"%attn_dp{n}" for n in range(len(params))]
    return _func(name, head + args, "attn.attention_grad", ops + operands,
                 spec, variant, regions, [t.q, t.k, t.v, t.o, t.o], results,
                 [t.q, t.k, t.v] + params)
