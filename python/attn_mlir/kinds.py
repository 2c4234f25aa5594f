"""The names of the dialect's built-in kinds, shared by the emitter, the
reference and the DSL (names only: no behaviour lives here)."""

SCORE_KINDS = ("dot", "rbf")
FEATURE_MAPS = ("identity", "elu_plus_one", "relu")
NORMALIZATIONS = ("softmax", "softmax1", "scalable_softmax", "sigmoid", "relu",
                  "relu2", "none", "mean")
SOFTMAX_FAMILY = ("softmax", "softmax1", "scalable_softmax")
ALIGNMENTS = ("top_left", "bottom_right")

#: mask kind -> (required parameters, optional parameters with the
#: dialect's defaults), in the attribute's parameter order (AttnAttrs.td).
#: `chunked` has no alignment in the dialect; the reference accepts
#: ``alignment = top_left`` (the dialect's behaviour) as an extension.
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
}
