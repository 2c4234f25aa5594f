"""The variants the GPU harness checks and times, in one place.

Each case has the attn dialect text of its variant (compiled on the build
machine by build_bundles.py into a bundle) and the matching keyword arguments
of the float64 reference (python/attn_mlir/reference.py), so that the check on
the GPU machine compares the kernel against an independent definition.
Sizes are run-time in the kernels (B, H, S are '?'); only head dims and the
dtype are compiled in.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "python"))
from attn_mlir import printer  # noqa: E402

SOFTCAP = 30.0

# score_mod blocks, written in the dialect.
SOFTCAP_MOD = f"""  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %c = arith.constant {SOFTCAP:.1f} : f32
    %x = arith.divf %s, %c : f32
    %t = math.tanh %x : f32
    %r = arith.mulf %t, %c : f32
    attn.yield %r : f32"""

# mask_mod blocks: a causal window of 300 keys written as a region, and
# keys past a per-batch length (a capture read at the batch).
WINDOW_REGION = """  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c300 = arith.constant 300 : index
    %d = arith.subi %i, %j : index
    %near = arith.cmpi sle, %d, %c300 : index
    %past = arith.cmpi sle, %j, %i : index
    %p = arith.andi %near, %past : i1
    attn.yield %p : i1"""

PADDING_REGION = """  ^bb0(%b: index, %h: index, %i: index, %j: index, %lens: tensor<?xi32>):
    %n = tensor.extract %lens[%b] : tensor<?xi32>
    %jj = arith.index_cast %j : index to i32
    %p = arith.cmpi slt, %jj, %n : i32
    attn.yield %p : i1"""

ALIBI_MOD = """  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, %slopes: tensor<?xf32>):
    %m = tensor.extract %slopes[%h] : tensor<?xf32>
    %ii = arith.index_cast %i : index to i64
    %jj = arith.index_cast %j : index to i64
    %d = arith.subi %jj, %ii : i64
    %df = arith.sitofp %d : i64 to f32
    %bias = arith.mulf %m, %df : f32
    %r = arith.addf %s, %bias : f32
    attn.yield %r : f32"""


def _softcap_ref(s, b, h, i, j):
    import numpy as np
    return SOFTCAP * np.tanh(s / SOFTCAP)


def _alibi_ref(s, b, h, i, j, slopes):
    return s + slopes[h] * (j - i)


def alibi_slopes(hq):
    """The ALiBi slopes of Press et al. for hq heads (a power of two)."""
    return [2.0 ** (-8.0 * (h + 1) / hq) for h in range(hq)]


class Case:
    def __init__(self, name, d=128, dv=None, dtype="bf16", spec="", score_mod=None,
                 mask_mod=None,
                 captures=(), sink_logits=False, sink_rows=0, lse=True,
                 ref=None, bench=None, check_shape=None, sanitize_shape=None,
                 segments="sorted"):
        self.name = name
        self.d = d
        self.dv = dv or d
        self.dtype = dtype
        self.spec = spec
        self.score_mod = score_mod  # the block of the score_mod region
        self.mask_mod = mask_mod  # the block of the mask_mod region
        self.captures = captures  # dialect types of captured tensors
        # Document segment ids: "sorted" (packed documents) or "runs" (ids
        # that come back after others).
        self.segments = segments
        self.sink_logits = sink_logits
        self.sink_rows = sink_rows
        self.lse = lse
        self.ref = ref or {}
        # What to time against: None (check only) or a dict with 'causal',
        # 'flex' (name of a flex setup in gpu_bench.py), 'sdpa' (bool).
        self.bench = bench
        # (B, Hq, Hkv, Sq, Sk) of the correctness check.
        self.check_shape = check_shape or (1, 4, 2, 1000, 1000)
        # The shape of the compute-sanitizer runs (gpu_bench.py --small);
        # None: derived from check_shape (gpu_bench.small_shape).
        self.sanitize_shape = sanitize_shape

    def mlir(self, backward=False):
        """The function holding the case's attn.attention (dynamic batch,
        head and sequence sizes), printed by attn_mlir.printer; with
        ``backward``, also ``@<name>_grad`` holding its attn.attention_grad
        (the forward then returns the lse where the normalization has one)."""
        def t(*dims, elt=self.dtype):
            return printer.tensor_type(dims, elt)
        types = printer.AttentionTypes(
            q=t(None, None, None, self.d), k=t(None, None, None, self.d),
            v=t(None, None, None, self.dv), o=t(None, None, None, self.dv),
            captures=list(self.captures),
            sink_logits="tensor<?xf32>" if self.sink_logits else None,
            sink_rows=(t(None, None, self.d), t(None, None, self.dv))
            if self.sink_rows else None,
            lse="tensor<?x?x?xf32>" if self.lse else None)
        regions = {"score_mod": self.score_mod} if self.score_mod else {}
        if self.mask_mod:
            regions["mask_mod"] = self.mask_mod
        text = printer.attention_func(self.name, types, spec=self.spec,
                                      regions=regions)
        if backward:
            types.lse = "tensor<?x?x?xf32>" if self.ref.get(
                "normalization", "softmax") in \
                printer.LSE_OPERAND_NORMALIZATIONS else None
            text += "\n" + printer.attention_grad_func(
                self.name + "_grad", types, spec=self.spec, regions=regions,
                floating=["f" in ty.split("x")[-1] for ty in self.captures])
        return text


CAUSAL = {"kind": "causal"}

CASES = [
    Case("softmax_d128", bench={"causal": False, "sdpa": True, "flex": "plain"}),
    Case("causal_d128", spec="mask = [#attn.causal]", ref={"masks": [CAUSAL]},
         bench={"causal": True, "sdpa": True, "flex": "plain"}),
    Case("softmax_d64", d=64, bench={"causal": False, "sdpa": True, "flex": "plain"}),
    Case("causal_d64", d=64, spec="mask = [#attn.causal]", ref={"masks": [CAUSAL]},
         bench={"causal": True, "sdpa": True, "flex": "plain"}),
    Case("softcap_d128", score_mod=SOFTCAP_MOD, ref={"score_mod": _softcap_ref},
         bench={"causal": False, "flex": "softcap"}),
    Case("softcap_causal_d128", spec="mask = [#attn.causal]", score_mod=SOFTCAP_MOD,
         ref={"masks": [CAUSAL], "score_mod": _softcap_ref},
         bench={"causal": True, "flex": "softcap"}),
    Case("rbf_d128", spec="score<rbf>", ref={"score": "rbf"},
         bench={"causal": False, "flex": "rbf"}),
    Case("rbf_causal_d128", spec="score<rbf> mask = [#attn.causal]",
         ref={"score": "rbf", "masks": [CAUSAL]},
         bench={"causal": True, "flex": "rbf"}),
    Case("sliding1024_d128",
         spec="mask = [#attn.causal, #attn.sliding_window<left = 1023>]",
         ref={"masks": [CAUSAL, {"kind": "sliding_window", "left": 1023}]},
         bench={"causal": True, "flex": "sliding1024"}),
    Case("streaming_d128",
         spec="mask = [#attn.causal, #attn.sink_tokens<count = 4>, "
              "#attn.sliding_window<left = 1023>]",
         ref={"masks": [CAUSAL, {"kind": "sink_tokens", "count": 4},
                        {"kind": "sliding_window", "left": 1023}]},
         bench={"causal": True, "flex": "streaming"}),
    # Packed documents (4 per sequence, sorted segment ids): tiles are
    # decided from the spans of their segment ids (SegmentSpans.h).
    Case("document_d128",
         spec="mask = [#attn.document<q_segments = 0, kv_segments = 0>]",
         captures=("tensor<?x?xi32>",),
         ref={"masks": [{"kind": "document", "q_segments": 0, "kv_segments": 0}]},
         bench={"causal": False, "flex": "document"}),
    # Segment ids in runs of 1-160 positions whose ids come back (not
    # sorted): tile spans meet without a shared id.
    Case("document_runs_d64", d=64,
         spec="mask = [#attn.document<q_segments = 0, kv_segments = 0>]",
         captures=("tensor<?x?xi32>",), segments="runs",
         ref={"masks": [{"kind": "document", "q_segments": 0, "kv_segments": 0}]}),
    Case("alibi_d128", spec="mask = [#attn.causal]", score_mod=ALIBI_MOD,
         captures=("tensor<?xf32>",),
         ref={"masks": [CAUSAL], "score_mod": _alibi_ref},
         bench={"causal": True, "flex": "alibi"}),
    # Correctness-only cases: the rest of the variant space.
    Case("sigmoid_d128", spec="normalize<sigmoid> bias = -6.9", lse=False,
         ref={"normalization": "sigmoid", "bias": -6.9}),
    Case("gqa_d80_bottom_right", d=80, dv=80,
         spec="mask = [#attn.causal<bottom_right>]",
         ref={"masks": [{"kind": "causal", "alignment": "bottom_right"}]},
         check_shape=(2, 8, 2, 700, 1000)),
    # Chunks aligned to the end of the keys (queries are the last positions):
    # Sq < Sk, the chunk boundaries inside the query tiles.
    Case("chunked_bottom_right_d64", d=64,
         spec="mask = [#attn.causal<bottom_right>, "
              "#attn.chunked<size = 96, alignment = bottom_right>]",
         ref={"masks": [{"kind": "causal", "alignment": "bottom_right"},
                        {"kind": "chunked", "size": 96,
                         "alignment": "bottom_right"}]},
         check_shape=(1, 4, 2, 333, 1000)),
    # More query tiles than threads (the backward's range search takes two
    # rounds): 16500 queries, 300 keys, a window that hides most of them.
    Case("long_queries_window_d64", d=64,
         spec="mask = [#attn.sliding_window<left = 5000, right = 5000>]",
         ref={"masks": [{"kind": "sliding_window", "left": 5000,
                         "right": 5000}]},
         check_shape=(1, 2, 1, 16500, 300)),
    # More key tiles than threads (the forward's narrowing by segment ids
    # takes two rounds): 200 queries, 33000 keys, ids sorted apart.
    Case("document_long_keys_d64", d=64,
         spec="mask = [#attn.document<q_segments = 0, kv_segments = 1>]",
         captures=("tensor<?x?xi32>", "tensor<?x?xi32>"),
         ref={"masks": [{"kind": "document", "q_segments": 0,
                         "kv_segments": 1}]},
         check_shape=(1, 2, 1, 200, 33000)),
    # An OR of positional masks (#attn.any_of): a causal window of 200 keys
    # plus 64 global keys at the start.
    Case("any_of_window_prefix_d64", d=64,
         spec="mask = [#attn.any_of<[#attn.sliding_window<left = 200>, "
              "#attn.prefix_lm<prefix = 64>]>]",
         ref={"masks": [{"kind": "any_of", "masks": [
             {"kind": "sliding_window", "left": 200},
             {"kind": "prefix_lm", "prefix": 64}]}]}),
    # Mask regions decided per tile by interval evaluation on the GPU.
    Case("window_region_d64", d=64, mask_mod=WINDOW_REGION,
         ref={"mask_mod": lambda b, h, i, j: (i - j <= 300) & (j <= i)}),
    Case("padding_region_d64", d=64, mask_mod=PADDING_REGION,
         captures=("tensor<?xi32>",),
         ref={"mask_mod": lambda b, h, i, j, lens: j < lens[b]},
         check_shape=(2, 4, 2, 700, 1000)),
    Case("fully_masked_rows_d96", d=96,
         spec="mask = [#attn.causal<bottom_right>]",
         ref={"masks": [{"kind": "causal", "alignment": "bottom_right"}]},
         check_shape=(1, 4, 4, 1000, 600)),
    Case("rbf_sinkrows_streaming_d128",
         spec="score<rbf> mask = [#attn.causal, #attn.sink_tokens<count = 4>, "
              "#attn.sliding_window<left = 255>]", sink_rows=2,
         ref={"score": "rbf", "masks": [CAUSAL, {"kind": "sink_tokens", "count": 4},
                                         {"kind": "sliding_window", "left": 255}]}),
    Case("sink_logits_d64", d=64, spec="mask = [#attn.causal]", sink_logits=True,
         ref={"masks": [CAUSAL]}),
    Case("softmax1_d64", d=64, spec="normalize<softmax1>",
         ref={"normalization": "softmax1"}),
    Case("prev_token_mean_d64", d=64,
         spec="mask = [#attn.causal, #attn.sliding_window<left = 1>] normalize<mean>",
         ref={"masks": [CAUSAL, {"kind": "sliding_window", "left": 1}],
              "normalization": "mean"}),
    Case("ssmax_document_d64", d=64,
         spec="mask = [#attn.document<q_segments = 0, kv_segments = 0>] "
              "normalize<scalable_softmax> length_scale = 0.5",
         captures=("tensor<?x?xi32>",),
         ref={"masks": [{"kind": "document", "q_segments": 0, "kv_segments": 0}],
              "normalization": "scalable_softmax", "length_scale": 0.5}),
    # The backward's visible-key counts (preprocess kernel) through the
    # sink-token interval, a window, learned sink rows (counted in n) and
    # rows that see nothing (bottom-right causal, Sq > Sk).
    Case("ssmax_streaming_sinkrows_d64", d=64,
         spec="mask = [#attn.causal, #attn.sink_tokens<count = 4>, "
              "#attn.sliding_window<left = 255>] normalize<scalable_softmax>",
         sink_rows=2,
         ref={"masks": [CAUSAL, {"kind": "sink_tokens", "count": 4},
                        {"kind": "sliding_window", "left": 255}],
              "normalization": "scalable_softmax"}),
    Case("mean_sinkrows_masked_rows_d64", d=64,
         spec="mask = [#attn.causal<bottom_right>] normalize<mean>", sink_rows=2,
         ref={"masks": [{"kind": "causal", "alignment": "bottom_right"}],
              "normalization": "mean"},
         check_shape=(1, 4, 2, 1000, 600)),
    Case("ssmax_masked_rows_d128", spec="mask = [#attn.causal<bottom_right>] "
         "normalize<scalable_softmax> length_scale = 2.0",
         ref={"masks": [{"kind": "causal", "alignment": "bottom_right"}],
              "normalization": "scalable_softmax", "length_scale": 2.0},
         check_shape=(1, 4, 4, 1000, 600)),
    Case("neighborhood2d_dilated_d64", d=64,
         spec="mask = [#attn.neighborhood_2d<height = 25, width = 40, kernel_h = 7, "
              "kernel_w = 7, dilation_h = 2, dilation_w = 3>]",
         ref={"masks": [{"kind": "neighborhood_2d", "height": 25, "width": 40,
                         "kernel_h": 7, "kernel_w": 7, "dilation_h": 2,
                         "dilation_w": 3}]},
         sanitize_shape=(1, 2, 1, 1000, 1000)),  # the grid is 25 x 40
    Case("relu2_window_d64", d=64, lse=False,
         spec="mask = [#attn.sliding_window<left = 100, right = 100>] normalize<relu2>",
         ref={"masks": [{"kind": "sliding_window", "left": 100, "right": 100}],
              "normalization": "relu2"}),
    # The wgmma kernel's other paths: head dims 64 (pipelined loop) with the
    # RBF norms on the tensor cores, f16 RBF (per-element f32 norms), large
    # and unequal head dims (192 x 128, 256), odd sequence lengths.
    Case("rbf_causal_gqa_d64", d=64, spec="score<rbf> mask = [#attn.causal]",
         ref={"score": "rbf", "masks": [CAUSAL]}, check_shape=(2, 8, 2, 777, 777)),
    Case("rbf_f16_d128", dtype="f16", spec="score<rbf>", ref={"score": "rbf"}),
    Case("softmax_d192_dv128", d=192, dv=128, check_shape=(1, 4, 4, 555, 1001)),
    # Edge shapes on the wgmma kernels: q-tiles that see no key at all
    # (pipelined loop), one query, three queries over 5000 keys.
    Case("fully_masked_rows_d64", d=64, spec="mask = [#attn.causal<bottom_right>]",
         ref={"masks": [{"kind": "causal", "alignment": "bottom_right"}]},
         check_shape=(1, 4, 4, 1000, 600)),
    Case("one_query_d128", check_shape=(2, 4, 2, 1, 37)),
    Case("rbf_three_queries_d128", spec="score<rbf>", ref={"score": "rbf"},
         check_shape=(1, 4, 2, 3, 5000)),
    # Learned sink rows through the pipelined loop's prologue (D = 64).
    Case("sinkrows_causal_d64", d=64, spec="mask = [#attn.causal]", sink_rows=3,
         ref={"masks": [CAUSAL]}),
    # Documents with learned sink rows: the forward's sink-row step is not
    # a key tile (its segment span must not read outside the ids).
    Case("document_sinkrows_d64", d=64,
         spec="mask = [#attn.document<q_segments = 0, kv_segments = 0>]",
         captures=("tensor<?x?xi32>",), sink_rows=2,
         ref={"masks": [{"kind": "document", "q_segments": 0, "kv_segments": 0}]}),
    Case("rbf_sinkrows_d64", d=64, spec="score<rbf> mask = [#attn.causal]", sink_rows=2,
         ref={"score": "rbf", "masks": [CAUSAL]}),
    Case("causal_d256", d=256, spec="mask = [#attn.causal]", ref={"masks": [CAUSAL]},
         check_shape=(1, 2, 1, 1000, 1000)),
    Case("causal_f16_d128", dtype="f16", spec="mask = [#attn.causal]",
         ref={"masks": [CAUSAL]}),
]
