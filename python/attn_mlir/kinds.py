"""The names of the dialect's built-in kinds, shared by the emitter, the
reference and the DSL, and the one check of a mask dict against them (no
semantics live here)."""

SCORE_KINDS = ("dot", "rbf")
FEATURE_MAPS = ("identity", "elu_plus_one", "relu")
NORMALIZATIONS = ("softmax", "softmax1", "scalable_softmax", "sigmoid", "relu",
                  "relu2", "none", "mean")
SOFTMAX_FAMILY = ("softmax", "softmax1", "scalable_softmax")
ALIGNMENTS = ("top_left", "bottom_right")

#: mask kind -> (required parameters, optional parameters with the
#: dialect's defaults), in the attribute's parameter order (AttnAttrs.td).
MASK_PARAMS = {
    "causal": ((), {"alignment": "top_left"}),
    "prefix_lm": (("prefix",), {"alignment": "top_left"}),
    "document": (("q_segments", "kv_segments"), {}),
    "sliding_window": (("left",), {"right": 0, "alignment": "top_left"}),
    "chunked": (("size",), {"alignment": "top_left"}),
    "neighborhood_1d": (("kernel",), {"dilation": 1}),
    "neighborhood_2d": (("height", "width", "kernel_h", "kernel_w"),
                        {"dilation_h": 1, "dilation_w": 1}),
    "sink_tokens": (("count",), {}),
    "any_of": (("masks",), {}),
}

#: The kinds ``any_of`` lists (positional ones).
ANY_OF_KINDS = ("causal", "prefix_lm", "sliding_window", "chunked",
                "neighborhood_1d", "neighborhood_2d")


def check_mask(mask) -> str:
    """The kind of a reference-style mask dict (``{"kind": ..., params}``),
    after checking that the kind exists, that every key is one of its
    parameters, that the required ones are given and that an alignment is
    one of ``ALIGNMENTS``; raises ``ValueError`` otherwise."""
    from collections.abc import Mapping
    if not isinstance(mask, Mapping) or "kind" not in mask:
        raise ValueError(f"a mask is a dict with a 'kind' key, got {mask!r}")
    kind = mask["kind"]
    if kind not in MASK_PARAMS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of "
                         f"{tuple(MASK_PARAMS)}")
    required, optional = MASK_PARAMS[kind]
    allowed = set(required) | set(optional) | {"kind"}
    unknown = set(mask) - allowed
    if unknown:
        raise ValueError(f"mask {kind!r} has unknown keys {sorted(unknown)}; "
                         f"allowed: {sorted(allowed)}")
    missing = [p for p in required if p not in mask]
    if missing:
        raise ValueError(f"mask {kind!r} lacks {missing}")
    alignment = mask.get("alignment")
    if alignment is not None and alignment not in ALIGNMENTS:
        raise ValueError(f"mask {kind!r}: unknown alignment {alignment!r}")
    if kind == "any_of":
        inner = mask["masks"]
        if not isinstance(inner, (list, tuple)) or len(inner) < 2:
            raise ValueError(f"mask 'any_of' takes a list of at least two "
                             f"masks, got {inner!r}")
        for m in inner:
            if check_mask(m) not in ANY_OF_KINDS:
                raise ValueError(f"mask 'any_of' takes positional masks "
                                 f"only {ANY_OF_KINDS}, got {m['kind']!r}")
    return kind
