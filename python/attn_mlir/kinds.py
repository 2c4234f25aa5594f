"""The names of the dialect's built-in kinds, shared by the emitter, the
reference and the DSL (names only: no behaviour lives here)."""

SCORE_KINDS = ("dot", "rbf")
FEATURE_MAPS = ("identity", "elu_plus_one", "relu")
NORMALIZATIONS = ("softmax", "softmax1", "scalable_softmax", "sigmoid", "relu",
                  "relu2", "none", "mean")
SOFTMAX_FAMILY = ("softmax", "softmax1", "scalable_softmax")
ALIGNMENTS = ("top_left", "bottom_right")
