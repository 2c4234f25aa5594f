"""Unit tests of `attn_mlir.emit` (the MLIR text emitter).

The text is checked by the dialect itself: `attn-opt` must parse and verify
every emitted function (skipped when attn-opt is not built).
"""

from __future__ import annotations

import re

import pytest

from attn_mlir import reference as ref
from attn_mlir.emit import (emit_attention_func, emit_attention_grad_func,
                            format_float, mask_attr, tensor_type)

Q, K, V = (2, 4, 37, 24), (2, 2, 53, 24), (2, 2, 53, 16)


@pytest.mark.parametrize("x,text", [
    (0.125, "0.125"), (2, "2.0"), (-2.0, "-2.0"), (1e-5, "1.0e-05"),
    (1e16, "1.0e+16"), (1.5e-7, "1.5e-07"), (0.1, "0.1"),
    (1 / 3, "0.3333333333333333")])
def test_format_float(x, text):
    assert format_float(x) == text
    assert float(format_float(x)) == float(x)


@pytest.mark.parametrize("x", [float("inf"), float("-inf"), float("nan")])
def test_format_float_rejects_non_finite(x):
    with pytest.raises(ValueError, match="non-finite"):
        format_float(x)


def test_tensor_type():
    assert tensor_type((2, 4, 37, 24), "bf16") == "tensor<2x4x37x24xbf16>"
    assert tensor_type((4,), "f32") == "tensor<4xf32>"
    assert tensor_type((), "i32") == "tensor<i32>"


@pytest.mark.parametrize("mask,text", [
    (ref.causal(), "#attn.causal"),
    ({"kind": "causal"}, "#attn.causal"),
    (ref.causal("bottom_right"), "#attn.causal<bottom_right>"),
    (ref.sliding_window(4), "#attn.sliding_window<left = 4, right = 0, "
                            "alignment = top_left>"),
    ({"kind": "sliding_window", "left": 4},
     "#attn.sliding_window<left = 4>"),
    (ref.chunked(8), "#attn.chunked<size = 8, alignment = top_left>"),
    ({"kind": "chunked", "size": 8}, "#attn.chunked<size = 8>"),
    ({"kind": "chunked", "size": 8, "alignment": "bottom_right"},
     "#attn.chunked<size = 8, alignment = bottom_right>"),
    (ref.prefix_lm(3, "bottom_right"),
     "#attn.prefix_lm<prefix = 3, alignment = bottom_right>"),
    (ref.document(0, 1), "#attn.document<q_segments = 0, kv_segments = 1>"),
    (ref.neighborhood_1d(7, 2),
     "#attn.neighborhood_1d<kernel = 7, dilation = 2>"),
    (ref.neighborhood_2d(6, 8, 3, 5, 2),
     "#attn.neighborhood_2d<height = 6, width = 8, kernel_h = 3, "
     "kernel_w = 5, dilation_h = 2, dilation_w = 1>"),
    (ref.sink_tokens(4), "#attn.sink_tokens<count = 4>"),
    (ref.any_of(ref.causal(), {"kind": "chunked", "size": 8}),
     "#attn.any_of<[#attn.causal, #attn.chunked<size = 8>]>"),
])
def test_mask_attr(mask, text):
    assert mask_attr(mask) == text


@pytest.mark.parametrize("mask,msg", [
    ({"kind": "diagonal"}, "unknown mask kind"),
    ({"kind": "causal", "size": 3}, "unknown keys"),
    ({"kind": "chunked"}, "lacks"),
    ({"kind": "causal", "alignment": "middle"}, "unknown alignment"),
    ({"kind": "sliding_window", "left": 1.5}, "integer"),
    ("causal", "'kind' key"),
])
def test_mask_attr_errors(mask, msg):
    with pytest.raises(ValueError, match=msg):
        mask_attr(mask)


def test_emit_errors():
    with pytest.raises(ValueError, match="element type"):
        emit_attention_func("f", Q, K, V, "f64")
    with pytest.raises(ValueError, match="rank 4"):
        emit_attention_func("f", Q[1:], K, V)
    with pytest.raises(ValueError, match="inconsistent"):
        emit_attention_func("f", Q, K, (2, 2, 50, 16))
    with pytest.raises(ValueError, match="normalization"):
        emit_attention_func("f", Q, K, V, normalization="softmax2")
    with pytest.raises(ValueError, match="function name"):
        emit_attention_func("f g", Q, K, V)


def test_emit_minimal():
    text = emit_attention_func("f", Q, K, V)
    assert text.startswith("func.func @f(%attn_q: tensor<2x4x37x24xf32>, "
                           "%attn_k: tensor<2x2x53x24xf32>, "
                           "%attn_v: tensor<2x2x53x16xf32>) -> "
                           "tensor<2x4x37x16xf32> {")
    assert "score<dot>" in text and "normalize<softmax>" in text
    assert "mask" not in text and "scale" not in text
    assert "return %attn_o : tensor<2x4x37x16xf32>" in text


KITCHEN_SINK = dict(
    score="rbf", gamma=1e-5, q_map="elu_plus_one", k_map="relu",
    masks=[ref.causal("bottom_right"), ref.sink_tokens(3),
           ref.sliding_window(4, 1, "bottom_right"), ref.document(1, 2)],
    normalization="scalable_softmax", length_scale=0.5,
    sink_logits_shape=(4,), sink_rows=3,
    captures=[((4,), "f32"), ((2, 37), "i32"), ((2, 53), "i32")],
    score_mod="""
        %m = tensor.extract %cap0[%h] : tensor<4xf32>
        %r = arith.addf %s, %m : f32
        attn.yield %r : f32
    """,
    mask_mod="""
        %c0 = arith.constant 0 : index
        %p = arith.cmpi uge, %j, %c0 : index
        attn.yield %p : i1
    """,
    return_lse=True)


def test_emit_kitchen_sink_text():
    text = emit_attention_func("all", Q, K, V, "bf16", **KITCHEN_SINK)
    sig = text.splitlines()[0]
    assert re.findall(r"%attn_\w+", sig) == [
        "%attn_q", "%attn_k", "%attn_v", "%attn_cap0", "%attn_cap1",
        "%attn_cap2", "%attn_sink_logits", "%attn_sink_key",
        "%attn_sink_value"]
    assert "-> (tensor<2x4x37x16xbf16>, tensor<2x4x37xf32>) {" in sig
    assert "sink_rows(%attn_sink_key, %attn_sink_value : " \
           "tensor<2x3x24xbf16>, tensor<2x3x16xbf16>)" in text
    assert "gamma = 1.0e-05" in text and "length_scale = 0.5" in text
    assert "^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index, " \
           "%cap0: tensor<4xf32>, %cap1: tensor<2x37xi32>, " \
           "%cap2: tensor<2x53xi32>):" in text
    assert "} mask_mod {" in text


def _grad_kitchen_sink():
    kw = {k: v for k, v in KITCHEN_SINK.items() if k != "return_lse"}
    return emit_attention_grad_func("all_grad", Q, K, V, "bf16",
                                    grad_lse=True, **kw)


def test_emit_grad_kitchen_sink_text():
    """The backward's function: q, k, v, O, dO, lse, dlse, then the
    forward's operands; results dq, dk, dv, the sink gradients and one per
    floating capture (the two i32 segment-id captures get none)."""
    text = _grad_kitchen_sink()
    sig = text.splitlines()[0]
    assert re.findall(r"%attn_\w+", sig) == [
        "%attn_q", "%attn_k", "%attn_v", "%attn_o", "%attn_do", "%attn_lse",
        "%attn_dlse", "%attn_cap0", "%attn_cap1", "%attn_cap2",
        "%attn_sink_logits", "%attn_sink_key", "%attn_sink_value"]
    assert sig.endswith(
        "-> (tensor<2x4x37x24xbf16>, tensor<2x2x53x24xbf16>, "
        "tensor<2x2x53x16xbf16>, tensor<4xf32>, tensor<2x3x24xbf16>, "
        "tensor<2x3x16xbf16>, tensor<4xf32>) {")
    assert "lse(%attn_lse : tensor<2x4x37xf32>) " \
           "grad_lse(%attn_dlse : tensor<2x4x37xf32>)" in text
    assert "%attn_dv, %attn_dp0, %attn_dp1, %attn_dp2, %attn_dp3 = " \
           "attn.attention_grad" in text
    # Without the softmax family, no lse unless asked for.
    sig = emit_attention_grad_func("g", Q, K, V, normalization="relu")
    assert "%attn_lse" not in sig
    with pytest.raises(TypeError, match="lse=, not return_lse="):
        emit_attention_grad_func("g", Q, K, V, return_lse=True)


def test_emit_parses(attn_opt, tmp_path):
    """attn-opt parses and verifies emitted functions; an explicit block
    header in a region is kept verbatim."""
    funcs = [
        emit_attention_func("all", Q, K, V, "bf16", **KITCHEN_SINK),
        emit_attention_func("plain", Q, K, V, "f16"),
        emit_attention_func(
            "sigmoid", Q, K, V, scale=0.3, normalization="sigmoid",
            bias=-1.5,
            mask_mod="^bb0(%x: index, %y: index, %z: index, %w: index):\n"
                     "  %t = arith.cmpi ule, %w, %z : index\n"
                     "  attn.yield %t : i1"),
        emit_attention_func(
            "nat", (1, 2, 48, 8), (1, 2, 48, 8), (1, 2, 48, 8),
            masks=[ref.neighborhood_2d(6, 8, 3, 3, 2, 2)],
            normalization="mean", return_lse=True),
        _grad_kitchen_sink(),
        emit_attention_grad_func("mean_grad", Q, K, V, normalization="mean",
                                 lse=True),
    ]
    path = tmp_path / "emitted.mlir"
    path.write_text("\n".join(funcs))
    r = attn_opt(path)
    assert r.returncode == 0, r.stderr
    for name in ("@all", "@plain", "@sigmoid", "@nat", "@all_grad",
                 "@mean_grad"):
        assert f"func.func {name}(" in r.stdout
    assert "gamma = 1.000000e-05" in r.stdout
    assert "bias = -1.500000e+00" in r.stdout
