"""The Python DSL (attn_mlir.dsl).

* Emission: the MLIR of traced variants, checked FileCheck-style (ordered
  substrings, ``CHECK-NEXT`` for adjacent lines) and verified by attn-opt.
* Eager evaluation: the same functions on numpy arrays, against
  ``reference.attention`` with handwritten regions.
* Round trip: DSL -> MLIR -> attn-run (both lowerings) against the DSL's
  own eager evaluation (``variant.reference``) and, for ALiBi, soft-capping
  and a document-plus-padding mask, against independent numpy formulas.
* Errors: constructs the tracer cannot compile raise ``DSLError`` naming
  this file and the offending line (marked ``# <- error`` below).
"""

from __future__ import annotations

import functools
import inspect
import math
import re

import numpy as np
import pytest
from conftest import _tool
from test_cpu_backward import Case as BackwardCase
from test_cpu_backward import (check_capture_gradient_by_finite_differences,
                               check_case)

from attn_mlir import compiler, dsl
from attn_mlir import reference as ref
from attn_mlir.variants import parse_variant


@pytest.fixture(autouse=True)
def _compiler_uses_the_tested_tools(monkeypatch):
    """attn_mlir.compiler finds the same attn-opt / attn-run as the
    ``attn_opt`` / ``attn_run`` fixtures (conftest.py)."""
    for env, name in (("ATTN_OPT", "attn-opt"), ("ATTN_RUN", "attn-run")):
        path = _tool(env, name)
        if path.is_file():
            monkeypatch.setenv(env, str(path))

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def filecheck(text: str, checks):
    """Each check matches a later line than the previous one; a check
    starting with ``NEXT:`` must match the very next line. ``{{re}}`` parts
    are regular expressions, the rest literal."""
    lines = text.splitlines()
    pos = -1
    for check in checks:
        nxt = check.startswith("NEXT:")
        pat = check[5:].strip() if nxt else check
        rx = re.compile("".join(
            p if n % 2 else re.escape(p)
            for n, p in enumerate(re.split(r"\{\{(.*?)\}\}", pat))))
        candidates = [pos + 1] if nxt else range(pos + 1, len(lines))
        for i in candidates:
            if i < len(lines) and rx.search(lines[i]):
                pos = i
                break
        else:
            raise AssertionError(f"check not found: {check!r}\nafter line "
                                 f"{pos + 1} of:\n{text}")


def verify(attn_opt, tmp_path, text, name="v.mlir"):
    p = tmp_path / name
    p.write_text(text)
    r = attn_opt(p, "--verify-roundtrip")
    assert r.returncode == 0, r.stderr + "\n" + text
    return r


def inputs(B=2, Hq=4, Hkv=2, Sq=33, Sk=33, D=16, Dv=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, Hq, Sq, D)).astype(np.float32),
            rng.standard_normal((B, Hkv, Sk, D)).astype(np.float32),
            rng.standard_normal((B, Hkv, Sk, Dv)).astype(np.float32))


def close(got, want, tol=1e-5):
    scale = max(float(np.max(np.abs(want))), 1e-30)
    assert np.all(np.isfinite(got))
    err = float(np.max(np.abs(got - want)))
    assert err <= tol * scale, f"max error {err:.3g} vs scale {scale:.3g}"


def slopes(hq):
    return (2.0 ** (-8.0 * (np.arange(hq) + 1) / hq)).astype(np.float32)


# ---------------------------------------------------------------------------
# Variants used below
# ---------------------------------------------------------------------------

@dsl.variant(normalization="softmax",
             masks=[dsl.causal(), dsl.sliding_window(20)])
def alibi(score, b, h, q_idx, kv_idx, slopes):
    return score + slopes[h] * (kv_idx - q_idx)


@dsl.variant(masks=[dsl.causal()])
def softcap(score, b, h, q_idx, kv_idx):
    return 30.0 * dsl.tanh(score / 30.0)


@dsl.mask
def key_padding(b, h, q_idx, kv_idx, lengths: dsl.i32):
    return kv_idx < lengths[b]


docs_padded = dsl.Variant("docs_padded", mask_mod=key_padding,
                          masks=[dsl.causal(), dsl.document("segments")],
                          captures={"segments": "i32", "lengths": "i32"})


@dsl.variant(masks=[dsl.causal("bottom_right")], mask_mod=key_padding,
             captures={"bias": "f32", "lengths": "i32"})
def everything(score, b, h, q_idx, kv_idx, bias):
    """Most of the DSL at once: floor division and modulo of negative
    numbers, powers, min/max, where, math functions, an i32 capture and a
    rank-3 one, boolean logic."""
    d = kv_idx - q_idx                       # negative under causal
    band = (d // 3) % 4                      # Python floor semantics
    t = dsl.where((band == 0) | ~(q_idx % 2 == 1), score, -score ** 2 / 8)
    t = dsl.maximum(dsl.minimum(t, 4), -4.0) + bias[h, q_idx % 3, kv_idx % 5]
    return t + dsl.log(1.0 + dsl.exp(-abs(t))) + dsl.sqrt(h + 1) * 0.01 \
        + 0.5 ** 2 * (d % 7 == 3)


# ---------------------------------------------------------------------------
# Emission
# ---------------------------------------------------------------------------

def test_emit_alibi(attn_opt, tmp_path):
    text = alibi.mlir()
    filecheck(text, [
        "attn.variant @alibi mask = [#attn.causal, "
        "#attn.sliding_window<left = 20>] normalize<softmax> score_mod {",
        "NEXT: ^bb0(%score: f32, %b: index, %h: index, %q_idx: index, "
        "%kv_idx: index, %slopes: tensor<?xf32>):",
        "NEXT: %0 = tensor.extract %slopes[%h] : tensor<?xf32>",
        "NEXT: %1 = arith.subi %kv_idx, %q_idx : index",
        "NEXT: %2 = arith.index_cast %1 : index to i64",
        "NEXT: %3 = arith.sitofp %2 : i64 to f32",
        "NEXT: %4 = arith.mulf %0, %3 : f32",
        "NEXT: %5 = arith.addf %score, %4 : f32",
        "NEXT: attn.yield %5 : f32",
        "NEXT: }",
    ])
    verify(attn_opt, tmp_path, text)
    assert alibi.mlir("renamed").count("attn.variant @renamed ") == 1


def test_emit_softcap_and_constants(attn_opt, tmp_path):
    text = softcap.mlir()
    filecheck(text, [
        "attn.variant @softcap mask = [#attn.causal] score_mod {",
        "NEXT: ^bb0(%score: f32, %b: index, %h: index, %q_idx: index, "
        "%kv_idx: index):",
        "NEXT: %0 = arith.constant 30.0 : f32",
        "NEXT: %1 = arith.divf %score, %0 : f32",
        "NEXT: %2 = math.tanh %1 : f32",
        "NEXT: %3 = arith.mulf %0, %2 : f32",
        "NEXT: attn.yield %3 : f32",
    ])
    verify(attn_opt, tmp_path, text)


def test_emit_mask_and_document(attn_opt, tmp_path):
    text = docs_padded.mlir()
    filecheck(text, [
        "attn.variant @docs_padded mask = [#attn.causal, #attn.document"
        "<q_segments = 0, kv_segments = 0>] mask_mod {",
        "NEXT: ^bb0(%b: index, %h: index, %q_idx: index, %kv_idx: index, "
        "%segments: tensor<?x?xi32>, %lengths: tensor<?xi32>):",
        "NEXT: %0 = tensor.extract %lengths[%b] : tensor<?xi32>",
        "NEXT: %1 = arith.index_cast %0 : i32 to index",
        "NEXT: %2 = arith.cmpi slt, %kv_idx, %1 : index",
        "NEXT: attn.yield %2 : i1",
    ])
    verify(attn_opt, tmp_path, text)
    assert [(c.name, c.elt, c.rank) for c in docs_padded.captures] == [
        ("segments", "i32", 2), ("lengths", "i32", 1)]


def test_emit_everything(attn_opt, tmp_path):
    text = everything.mlir()
    filecheck(text, [
        "attn.variant @everything mask = [#attn.causal<bottom_right>] "
        "score_mod {",
        "NEXT: ^bb0(%score: f32, %b: index, %h: index, %q_idx: index, "
        "%kv_idx: index, %bias: tensor<?x?x?xf32>, %lengths: tensor<?xi32>):",
        # d // 3 of a possibly negative d: floor from divsi/remsi.
        "arith.subi %kv_idx, %q_idx : index",
        "arith.divsi", "arith.remsi", "arith.cmpi slt", "arith.select",
        # q_idx % 2 of a non-negative index: a plain remsi.
        "arith.remsi %q_idx, {{%[0-9]+}} : index",
        "arith.xori {{%[0-9]+}}, {{%[0-9]+}} : i1",
        "arith.mulf %score, %score : f32",
        "arith.select",
        "arith.minimumf", "arith.maximumf",
        "tensor.extract %bias[%h, {{%[0-9]+}}, {{%[0-9]+}}] : "
        "tensor<?x?x?xf32>",
        "math.absf", "math.exp", "math.log", "math.sqrt",
        "arith.uitofp {{%[0-9]+}} : i1 to f32",
        "attn.yield {{%[0-9]+}} : f32",
        "} mask_mod {",
        "NEXT: ^bb0(%b: index, %h: index, %q_idx: index, %kv_idx: index, "
        "%bias: tensor<?x?x?xf32>, %lengths: tensor<?xi32>):",
    ])
    verify(attn_opt, tmp_path, text)


def test_emit_func_and_cse(attn_opt, tmp_path):
    @dsl.variant
    def twice(score, b, h, q_idx, kv_idx, t):
        return score * t[h] + t[h] * (kv_idx - q_idx) + (kv_idx - q_idx)
    text = twice.mlir()
    assert text.count("tensor.extract") == 1      # one node per subexpression
    assert text.count("arith.subi") == 1
    func = twice.emit_func("f", (1, 4, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16),
                           "bf16", captures=[(4,)])
    filecheck(func, ["func.func @f(", "captures(%attn_cap0 : tensor<4xf32>)",
                     "score_mod {", "^bb0(%score: f32"])
    verify(attn_opt, tmp_path, func)


def test_variant_text_parses_as_library_variant():
    """The DSL's output is a valid library file (attn_mlir.variants parses
    it and its numpy interpretation matches the Python function)."""
    lib = parse_variant(everything.mlir(), "everything")
    assert lib.spec["masks"] == [{"kind": "causal",
                                  "alignment": "bottom_right"}]
    rng = np.random.default_rng(1)
    b, h, i, j = ref._index_grids(2, 4, 9, 11)
    s = rng.standard_normal((2, 4, 9, 11))
    bias = rng.standard_normal((4, 3, 5))
    lengths = np.array([7, 11])
    np.testing.assert_allclose(
        lib.score_mod_fn(s, b, h, i, j, bias, lengths),
        everything.score_mod_fn(s, b, h, i, j, bias, lengths), rtol=1e-12)
    shape = (2, 4, 9, 11)
    np.testing.assert_array_equal(
        np.broadcast_to(lib.mask_mod_fn(b, h, i, j, bias, lengths), shape),
        np.broadcast_to(everything.mask_mod_fn(b, h, i, j, bias, lengths),
                        shape))


def test_special_constants(attn_opt, tmp_path):
    @dsl.variant
    def inf_mask(score, b, h, q_idx, kv_idx):
        return dsl.where(kv_idx <= q_idx, score, -math.inf)
    text = inf_mask.mlir()
    assert "arith.constant 0xFF800000 : f32" in text
    verify(attn_opt, tmp_path, text)


# ---------------------------------------------------------------------------
# Eager evaluation
# ---------------------------------------------------------------------------

def test_eager_numpy_matches_reference():
    q, k, v = inputs()
    sl = slopes(4)
    got = alibi.reference(q, k, v, sl)
    want = ref.attention(
        q, k, v, masks=[ref.causal(), ref.sliding_window(20)],
        captures=[sl], score_mod=lambda s, b, h, i, j, m: s + m[h] * (j - i))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # The dsl functions dispatch to numpy on arrays.
    x = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(dsl.tanh(x), np.tanh(x))
    np.testing.assert_allclose(dsl.where(x > 0, x, 0.0), np.maximum(x, 0))
    np.testing.assert_allclose(dsl.minimum(x, 1.0), np.minimum(x, 1.0))
    assert dsl.abs(-2) == 2


def test_eager_mask_and_document():
    q, k, v = inputs()
    rng = np.random.default_rng(3)
    seg = np.sort(rng.integers(0, 3, size=(2, 33)), axis=-1).astype(np.int32)
    lens = np.array([33, 20], np.int32)
    got = docs_padded.reference(q, k, v, seg, lens)
    want = ref.attention(q, k, v, masks=[ref.causal(), ref.document(0, 0)],
                         captures=[seg, lens],
                         mask_mod=lambda b, h, i, j, s, n: j < n[b])
    np.testing.assert_allclose(got, want, rtol=1e-12)


# ---------------------------------------------------------------------------
# Round trips through the CPU JIT
# ---------------------------------------------------------------------------

def _numpy_attention(q, k, v, bias_fn, visible_fn):
    """An independent softmax attention: scores + bias, masked softmax."""
    B, Hq, Sq, D = q.shape
    G = Hq // k.shape[1]
    kk = np.repeat(k.astype(np.float64), G, axis=1)
    vv = np.repeat(v.astype(np.float64), G, axis=1)
    s = np.einsum("bhid,bhjd->bhij", q.astype(np.float64), kk) / np.sqrt(D)
    b, h, i, j = np.ogrid[:B, :Hq, :Sq, :k.shape[2]]
    s = bias_fn(s, b, h, i, j)
    vis = np.broadcast_to(visible_fn(b, h, i, j), s.shape)
    s = np.where(vis, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    p = np.where(vis, np.exp(s - m), 0)
    z = p.sum(-1, keepdims=True)
    p = np.where(z > 0, p / np.where(z > 0, z, 1), 0)
    return np.einsum("bhij,bhjd->bhid", p, vv)


@pytest.mark.parametrize("lowering", ["flash", "loops"])
def test_roundtrip_alibi(attn_run, lowering):
    q, k, v = inputs(Sq=40, Sk=40)
    sl = slopes(4)
    got = compiler.attention(q, k, v, variant=alibi, captures=[sl],
                             lowering=lowering)
    close(got, alibi.reference(q, k, v, sl))
    want = _numpy_attention(
        q, k, v, lambda s, b, h, i, j: s + sl[h].astype(np.float64) * (j - i),
        lambda b, h, i, j: (j <= i) & (j >= i - 20))
    close(got, want)


@pytest.mark.parametrize("lowering", ["flash", "loops"])
def test_roundtrip_softcap(attn_run, lowering):
    q, k, v = inputs(Hkv=1)                         # MQA
    q *= 8.0                                        # large scores get capped
    got, lse = compiler.attention(q, k, v, variant=softcap, lowering=lowering,
                                  return_lse=True)
    want, want_lse = softcap.reference(q, k, v, return_lse=True)
    close(got, want)
    np.testing.assert_allclose(lse, want_lse, rtol=1e-5, atol=1e-5)
    close(got, _numpy_attention(
        q, k, v, lambda s, b, h, i, j: 30 * np.tanh(s / 30),
        lambda b, h, i, j: j <= i))


def test_roundtrip_document_padding(attn_run):
    q, k, v = inputs(Hkv=4)                         # MHA
    rng = np.random.default_rng(5)
    seg = np.sort(rng.integers(0, 3, size=(2, 33)), axis=-1).astype(np.int32)
    lens = np.array([33, 17], np.int32)
    got = compiler.attention(q, k, v, variant=docs_padded,
                             captures=[seg, lens])
    close(got, docs_padded.reference(q, k, v, seg, lens))
    close(got, _numpy_attention(
        q, k, v, lambda s, *idx: s,
        lambda b, h, i, j: (j <= i) & (seg[b, i] == seg[b, j])
        & (j < lens[b])))


@pytest.mark.parametrize("lowering", ["flash", "loops"])
def test_roundtrip_everything(attn_run, lowering):
    """Sq != Sk (bottom-right causal), every DSL construct, compiled code
    against the DSL's eager numpy evaluation."""
    q, k, v = inputs(Sq=21, Sk=37)
    rng = np.random.default_rng(7)
    bias = rng.standard_normal((4, 3, 5)).astype(np.float32)
    lens = np.array([37, 30], np.int32)
    got = compiler.attention(q, k, v, variant=everything,
                             captures=[bias, lens], lowering=lowering)
    close(got, everything.reference(q, k, v, bias, lens), tol=2e-5)


def test_roundtrip_unnormalized_mean_and_rbf(attn_run):
    @dsl.variant(score="rbf", gamma=0.1, normalization="relu2")
    def rbf_relu2(score, b, h, q_idx, kv_idx):
        return score + 3.0
    prev = dsl.Variant("prev", masks=[dsl.causal(), dsl.sliding_window(1)],
                       normalization="mean")
    q, k, v = inputs()
    for var in (rbf_relu2, prev):
        close(compiler.attention(q, k, v, variant=var), var.reference(q, k, v))
    # prev: the mean of v at i-1 and i, computed by hand.
    vh = np.repeat(v, 2, axis=1).astype(np.float64)
    want = vh.copy()
    want[:, :, 1:] = (vh[:, :, 1:] + vh[:, :, :-1]) / 2
    close(compiler.attention(q, k, v, variant=prev), want)


# ---------------------------------------------------------------------------
# FlexAttention's gallery: shifts, clamp, exp2, number defaults (issue #15)
# ---------------------------------------------------------------------------

@dsl.mask
def earlier_blocks(b, h, q_idx, kv_idx):
    # Keys in strictly earlier blocks of 4: the first 4 queries see nothing.
    return (kv_idx >> 2) < (q_idx >> 2)


@dsl.variant(mask_mod=earlier_blocks)
def shifts(score, b, h, q_idx, kv_idx, codes: dsl.i32):
    """Shifts of negative values, reflected ones, traced amounts in range,
    negative (h < 2) and past the width (h = 3: 90 and 75 bits; 70 for
    every head), and of an i32 capture."""
    d = kv_idx - q_idx                                  # < 0 under the mask
    return (score + (d >> 1) * 0.25 + (1 << (h % 3)) * 0.1
            + (kv_idx >> (h - 2)) * 0.01 + (d >> (h * 30)) * 0.5
            + ((1 << (h * 25)) > 0) * 0.3
            # amounts that only the compiler's folding makes constant 70
            + (d >> (b * 0 + 70)) * 0.2 + ((kv_idx + 1) << (b * 0 + 70))
            + ((codes[kv_idx] >> 3) & 7) * 0.05 + (codes[kv_idx] << 2) * 1e-3)


def _shifts_by_hand(s, b, h, i, j, codes):
    """``shifts`` in floor divisions, with numpy's out-of-range results
    written out: ``x >> n`` is ``floor(x / 2**n)`` for 0 <= n < 64, the sign
    (0 or -1) otherwise; ``x << n`` is ``x * 2**n``, 0 for n >= 64."""
    d = (j - i).astype(np.float64)
    n = 30.0 * h
    fill = np.where(d < 0, -1.0, 0.0)
    right = np.where(n < 64, np.floor(d / 2.0 ** np.minimum(n, 63)), fill)
    m = h - 2.0
    kv_right = np.where(m >= 0, np.floor(j / 2.0 ** np.maximum(m, 0)), 0.0)
    c = codes.astype(np.float64)[j]
    return (s + np.floor(d / 2) * 0.25 + 2.0 ** (h % 3) * 0.1
            + kv_right * 0.01 + right * 0.5 + (25 * h < 64) * 0.3 + fill * 0.2
            + np.mod(np.floor(c / 8), 8) * 0.05 + c * 4 * 1e-3)


@dsl.variant(masks=[dsl.causal()])
def decayed_softcap(score, b, h, q_idx, kv_idx, cap=20.0, w=3, half_life=8):
    """attention-gym style: a score clamped to +-cap, decayed by
    exp2((j - i) / half_life), plus a relative position clamped to +-w;
    the parameters are constants (number defaults), not captures."""
    rel = dsl.clamp(kv_idx - q_idx, -w, w)               # integers
    return (dsl.clamp(score, -cap, cap)
            * dsl.exp2((kv_idx - q_idx) / half_life) + 0.5 * rel
            + 2 / (kv_idx + 1))


def test_emit_shifts(attn_opt, tmp_path):
    text = shifts.mlir()
    filecheck(text, [
        "^bb0(%score: f32, %b: index, %h: index, %q_idx: index, "
        "%kv_idx: index, %codes: tensor<?xi32>):",
        # the mask_mod is emitted after the score_mod; a constant amount is
        # one op, on index
        "%{{[0-9]+}} = arith.subi %kv_idx, %q_idx : index",
        "%{{[0-9]+}} = arith.shrsi %{{[0-9]+}}, %{{[0-9]+}} : index",
        # 1 << (h % 3): the amount is >= 0, one range test
        "arith.cmpi slt, %{{[0-9]+}}, %{{[0-9]+}} : index",
        "arith.shli %{{[0-9]+}}, %{{[0-9]+}} : index",
        "NEXT: %{{[0-9]+}} = arith.constant 0 : index",
        "NEXT: %{{[0-9]+}} = arith.select",
        # kv_idx >> (h - 2): the amount may be < 0, two range tests
        "arith.subi %h", "arith.cmpi slt", "arith.cmpi sge", "arith.andi",
        "arith.constant 63 : index",
        "NEXT: %{{[0-9]+}} = arith.select",
        "NEXT: %{{[0-9]+}} = arith.shrsi %kv_idx, %{{[0-9]+}} : index",
        # the i32 capture shifts in i32
        "tensor.extract %codes[%kv_idx] : tensor<?xi32>",
        "arith.shrsi %{{[0-9]+}}, %{{[0-9]+}} : i32",
        "arith.shli %{{[0-9]+}}, %{{[0-9]+}} : i32",
        "attn.yield {{%[0-9]+}} : f32",
        "} mask_mod {",
        "arith.shrsi %kv_idx, %{{[0-9]+}} : index",
        "arith.shrsi %q_idx, %{{[0-9]+}} : index",
        "arith.cmpi slt",
    ])
    assert "arith.shrui" not in text
    verify(attn_opt, tmp_path, text)
    # The numpy interpretation of the emitted MLIR (attn_mlir.regions)
    # agrees with the Python function, out-of-range amounts included.
    lib = parse_variant(text, "shifts")
    rng = np.random.default_rng(11)
    b, h, i, j = ref._index_grids(2, 4, 9, 11)
    s = rng.standard_normal((2, 4, 9, 11))
    codes = rng.integers(-1000, 1000, 11)
    np.testing.assert_allclose(lib.score_mod_fn(s, b, h, i, j, codes),
                               shifts.score_mod_fn(s, b, h, i, j, codes),
                               rtol=1e-12)
    np.testing.assert_allclose(shifts.score_mod_fn(s, b, h, i, j, codes),
                               _shifts_by_hand(s, b, h, i, j, codes),
                               rtol=1e-12)


def test_emit_clamp_exp2_and_number_defaults(attn_opt, tmp_path):
    text = decayed_softcap.mlir()
    assert decayed_softcap.captures == []
    filecheck(text, [
        "attn.variant @decayed_softcap mask = [#attn.causal] score_mod {",
        "NEXT: ^bb0(%score: f32, %b: index, %h: index, %q_idx: index, "
        "%kv_idx: index):",
        "arith.constant -3 : index", "arith.maxsi", "arith.constant 3 : index",
        "arith.minsi",
        "arith.constant -20.0 : f32", "arith.maximumf %score",
        "arith.constant 20.0 : f32", "arith.minimumf",
        # an integer divisor becomes an f32 constant (the GPU kernel
        # multiplies by its reciprocal)
        "%{{[0-9]+}} = arith.constant 8.0 : f32",
        "arith.sitofp",
        "NEXT: %{{[0-9]+}} = arith.divf %{{[0-9]+}}, %{{[0-9]+}} : f32",
        "NEXT: %{{[0-9]+}} = math.exp2 %{{[0-9]+}} : f32",
    ])
    assert "arith.constant 8 : index" not in text
    verify(attn_opt, tmp_path, text)


@pytest.mark.parametrize("lowering", ["flash", "loops"])
def test_roundtrip_shifts(attn_run, lowering):
    """Odd sizes, GQA, 4 query heads (every shift-amount case), the first
    block of queries fully masked."""
    q, k, v = inputs(Sq=37, Sk=37, seed=21)
    codes = np.random.default_rng(22).integers(-1000, 1000, 37) \
        .astype(np.int32)
    got = compiler.attention(q, k, v, variant=shifts, captures=[codes],
                             lowering=lowering)
    close(got, shifts.reference(q, k, v, codes), tol=2e-5)
    want = _numpy_attention(
        q, k, v, lambda s, b, h, i, j: _shifts_by_hand(s, b, h, i, j, codes),
        lambda b, h, i, j: np.floor(j / 4) < np.floor(i / 4))
    close(got, want, tol=2e-5)
    assert np.all(got[:, :, :4] == 0)                   # they see nothing


@pytest.mark.parametrize("lowering", ["flash", "loops"])
def test_roundtrip_clamp_exp2(attn_run, lowering):
    """Scores up to about +-100 (q scaled by 8): the cap is reached."""
    q, k, v = inputs(Sq=29, Sk=41, Hkv=1, seed=23)       # MQA, Sq != Sk
    q *= 8.0
    got = compiler.attention(q, k, v, variant=decayed_softcap,
                             lowering=lowering)
    close(got, decayed_softcap.reference(q, k, v), tol=2e-5)
    want = _numpy_attention(
        q, k, v, lambda s, b, h, i, j: np.clip(s, -20.0, 20.0)
        * 2.0 ** ((j - i) / 8.0) + 0.5 * np.clip(j - i, -3, 3)
        + 2.0 / (j + 1),
        lambda b, h, i, j: j <= i)
    close(got, want, tol=2e-5)
    s = np.einsum("bhid,bhjd->bhij", q, np.repeat(k, 4, 1)) / 4.0
    assert np.abs(s).max() > 40                          # the cap matters


def test_clamp_and_exp2_eager():
    x = np.linspace(-3, 3, 13)
    np.testing.assert_array_equal(dsl.clamp(x, -1.0, 2.0),
                                  np.clip(x, -1.0, 2.0))
    np.testing.assert_array_equal(dsl.clamp(np.arange(-5, 6), -2, 3),
                                  np.clip(np.arange(-5, 6), -2, 3))
    assert dsl.clamp(5, 0, 3) == 3 and dsl.clamp(-1.5, 0.0, 3.0) == 0.0
    np.testing.assert_allclose(dsl.exp2(x), 2.0 ** x, rtol=1e-15)


def _window_closure(window):
    @dsl.mask
    def window_mask(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx <= window) & (kv_idx <= q_idx)
    return window_mask


def _window_default(b, h, q_idx, kv_idx, window=5, causal=True):
    return (q_idx - kv_idx <= window) & ((kv_idx <= q_idx) | ~causal)


def _window_keyword(b, h, q_idx, kv_idx, *, window):
    return (q_idx - kv_idx <= window) & (kv_idx <= q_idx)


@pytest.mark.parametrize("make", [
    lambda: _window_closure(5),
    lambda: dsl.mask(_window_default),
    lambda: dsl.mask(functools.partial(_window_keyword, window=5)),
], ids=["closure", "default", "partial"])
def test_number_parameters_are_constants(attn_run, make):
    """A closure variable, a positional default and a keyword of
    functools.partial bound to numbers: constants of the region, no
    captures; the compiled mask is a causal window of 5 keys back."""
    var = make()
    assert var.captures == []
    text = var.mlir()
    assert "arith.constant 5 : index" in text and "tensor<" not in text
    q, k, v = inputs(Sq=31, Sk=31, seed=24)
    got = compiler.attention(q, k, v, variant=var)
    close(got, var.reference(q, k, v))
    close(got, _numpy_attention(q, k, v, lambda s, *idx: s,
                                lambda b, h, i, j: (j <= i) & (i - j <= 5)))


def test_array_default_is_a_capture(attn_run):
    """An array default declares a capture typed after it (f32, rank 2);
    the number default next to it stays a constant."""
    @dsl.variant
    def table_bias(score, b, h, q_idx, kv_idx,
                   table=np.zeros((4, 5), np.float32), gain=2.0):
        return score + gain * table[h, kv_idx % 5]
    assert [(c.name, c.elt, c.rank) for c in table_bias.captures] == [
        ("table", "f32", 2)]
    assert "%table: tensor<?x?xf32>" in table_bias.mlir()
    q, k, v = inputs(Sq=19, Sk=23, seed=25)
    table = np.random.default_rng(26).standard_normal((4, 5)) \
        .astype(np.float32)
    got = compiler.attention(q, k, v, variant=table_bias, captures=[table])
    close(got, _numpy_attention(
        q, k, v, lambda s, b, h, i, j: s + 2.0 * table[h, j % 5],
        lambda b, h, i, j: np.ones_like(i + j, bool)))


def test_default_errors():
    def none_default(score, b, h, q_idx, kv_idx, w=None):
        return score
    with pytest.raises(dsl.DSLError, match="'w' defaults to NoneType") \
            as info:
        dsl.variant(none_default)
    assert info.value.lineno == inspect.getsourcelines(none_default)[1]

    def both(score, b, h, q_idx, kv_idx, w=3):
        return score * w
    with pytest.raises(dsl.DSLError, match="captures= declares it"):
        dsl.variant(both, captures=["w"])

    def keyword_only(score, b, h, q_idx, kv_idx, *, w):
        return score * w
    with pytest.raises(dsl.DSLError, match="without a default"):
        dsl.variant(keyword_only)


# Gradients: exp2, clamp, shifts and number defaults through the backward.

@dsl.variant(masks=[dsl.causal()])
def gallery_grad(score, b, h, q_idx, kv_idx, temp, cap=6.0, block=2):
    dist = (q_idx >> block) - (kv_idx >> block)          # >= 0: causal
    return (dsl.clamp(score * temp[h], -cap, cap) * dsl.exp2(-0.5 * dist)
            + 0.1 * dsl.exp2(score / 4))


def _temps(B, Hq, Sq, Sk, rng):
    return [rng.uniform(0.5, 3.0, Hq).astype(np.float32)]


@pytest.mark.parametrize("shape", [(2, 4, 2, 11, 13, 6, 5),
                                   (1, 2, 1, 37, 53, 24, 20)],
                         ids=["small", "odd"])
def test_gallery_gradients(attn_run, shape):
    """Both CPU lowerings of the backward against
    reference.attention_backward (float64); scores up to about +-20, so
    the clamp at +-6 cuts some."""
    check_case(BackwardCase(gallery_grad, captures=_temps, shape=shape,
                            q_scale=3.0, grad_lse=True))


def test_gallery_capture_gradient_by_finite_differences(attn_run):
    check_capture_gradient_by_finite_differences(BackwardCase(
        gallery_grad, captures=_temps, grad_lse=True,
        shape=(1, 4, 2, 7, 9, 6, 5), q_scale=2.0))


# ---------------------------------------------------------------------------
# Errors point at the user's line
# ---------------------------------------------------------------------------

def _marked_line(fn) -> int:
    lines, start = inspect.getsourcelines(fn)
    for n, line in enumerate(lines):
        if "# <- error" in line:
            return start + n
    raise AssertionError("no '# <- error' marker")


def s_if(score, b, h, q_idx, kv_idx):
    if score > 0:  # <- error
        return score
    return -score


def s_while(score, b, h, q_idx, kv_idx):
    while kv_idx < q_idx:  # <- error
        score = score - 1.0
    return score


def s_and(score, b, h, q_idx, kv_idx):
    return score if (q_idx > 2 and kv_idx > 2) else 0.0  # <- error


def s_math(score, b, h, q_idx, kv_idx):
    return math.tanh(score)  # <- error


def s_numpy(score, b, h, q_idx, kv_idx):
    return np.tanh(score)  # <- error


def s_pow(score, b, h, q_idx, kv_idx):
    return score ** kv_idx  # <- error


def s_rpow(score, b, h, q_idx, kv_idx):
    return 2.0 ** score  # <- error


def s_minmax(score, b, h, q_idx, kv_idx):
    return min(score, 1.0)  # <- error


def s_capture_arith(score, b, h, q_idx, kv_idx, t):
    return score + t  # <- error


def s_float_index(score, b, h, q_idx, kv_idx, t):
    return score + t[h * 0.5]  # <- error


def s_rank(score, b, h, q_idx, kv_idx, t):
    x = score + t[h]
    return x + t[h, q_idx]  # <- error


def s_index_score(score, b, h, q_idx, kv_idx):
    return score[0]  # <- error


def s_loop(score, b, h, q_idx, kv_idx):
    for x in score:  # <- error
        pass
    return score


def s_int(score, b, h, q_idx, kv_idx):
    return score * int(q_idx)  # <- error


def _helper(x):
    return float(x) * 2  # <- error


def s_helper(score, b, h, q_idx, kv_idx):
    return _helper(score)


def s_string(score, b, h, q_idx, kv_idx):
    return score + "1"  # <- error


def m_float(b, h, q_idx, kv_idx):
    return q_idx * 0.5  # <- error


def m_slice(b, h, q_idx, kv_idx, t):
    return t[1:] == 0  # <- error


def s_shift_float(score, b, h, q_idx, kv_idx):
    return score >> 1  # <- error


def s_rshift_float(score, b, h, q_idx, kv_idx):
    return 2.0 << kv_idx  # <- error


def s_shift_bool(score, b, h, q_idx, kv_idx):
    return score + ((q_idx > 1) << (kv_idx > 2))  # <- error


def s_shift_range(score, b, h, q_idx, kv_idx):
    return score + (kv_idx << 64)  # <- error


def s_shift_negative(score, b, h, q_idx, kv_idx):
    return score + (kv_idx >> -1)  # <- error


def s_shift_i32(score, b, h, q_idx, kv_idx, c: dsl.i32):
    return score + (c[h] << 32)  # <- error


def s_shift_capture(score, b, h, q_idx, kv_idx, t):
    return score + (t >> 1)  # <- error


ERROR_CASES = [
    (s_shift_float, "'>>' of a float value"),
    (s_rshift_float, "'<<' of a float value"),
    (s_shift_bool, "'<<' of booleans"),
    (s_shift_range, "amount of index values must lie in 0..63"),
    (s_shift_negative, "'>>' by -1"),
    (s_shift_i32, "amount of i32 values must lie in 0..31"),
    (s_shift_capture, "must be indexed"),
    (s_if, "no truth value"), (s_while, "no truth value"),
    (s_and, "no truth value"), (s_math, "cannot become a Python number"),
    (s_numpy, "numpy.tanh on a traced value"),
    (s_pow, "traced exponent"), (s_rpow, "traced exponent"),
    (s_minmax, "no truth value"), (s_capture_arith, "must be indexed"),
    (s_float_index, "indexed with a float"), (s_rank, "has rank 1"),
    (s_index_score, "only captured tensors can be indexed"),
    (s_loop, "cannot be iterated"), (s_int, "cannot become a Python number"),
    (s_string, "meets a str"),
]


@pytest.mark.parametrize("fn,message", ERROR_CASES,
                         ids=[f.__name__ for f, _ in ERROR_CASES])
def test_error_points_at_user_line(fn, message):
    with pytest.raises(dsl.DSLError) as info:
        dsl.variant(masks=[dsl.causal()])(fn)
    e = info.value
    assert message in e.message
    assert e.filename == __file__
    assert e.lineno == _marked_line(fn), str(e)
    assert f"{__file__}:{e.lineno}: " in str(e)
    assert "# <- error" in str(e)           # the source line is quoted


def test_error_in_helper_points_into_helper():
    with pytest.raises(dsl.DSLError) as info:
        dsl.variant(s_helper)
    assert info.value.lineno == _marked_line(_helper)


@pytest.mark.parametrize("fn,message", [
    (m_float, "must return a boolean"), (m_slice, "slices")])
def test_mask_errors(fn, message):
    with pytest.raises(dsl.DSLError) as info:
        dsl.mask(fn)
    assert message in info.value.message
    assert (info.value.filename, info.value.lineno) == (
        __file__, _marked_line(fn))


def test_spec_and_signature_errors():
    line = inspect.currentframe().f_lineno
    with pytest.raises(dsl.DSLError, match="unknown normalization"):
        dsl.Variant("x", normalization="softmaxx")  # reported on this line
    try:
        dsl.Variant("x", normalization="softmaxx")
    except dsl.DSLError as e:
        assert (e.filename, e.lineno) == (__file__, line + 4)

    def star(score, *args):
        return score
    with pytest.raises(dsl.DSLError, match="positional") as info:
        dsl.variant(star)
    assert info.value.lineno == inspect.getsourcelines(star)[1]
    with pytest.raises(dsl.DSLError, match="at least 5 parameters"):
        dsl.variant(lambda score, b: score)
    with pytest.raises(dsl.DSLError, match="never indexed"):
        dsl.variant(lambda score, b, h, i, j, unused: score)
    with pytest.raises(dsl.DSLError, match="does not declare"):
        dsl.variant(captures=["a"])(lambda s, b, h, i, j, a, c: s + a[h])
    with pytest.raises(dsl.DSLError, match="unsupported type"):
        dsl.variant(lambda s, b, h, i, j, a: s + a[h], captures={"a": "f64"})
    with pytest.raises(dsl.DSLError, match="sliding_window"):
        dsl.Variant("x", masks=[{"kind": "sliding_window"}])


# ---------------------------------------------------------------------------
# The GPU compiler takes what the DSL emits (PTX only: no GPU needed)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("var,captures", [
    (alibi, [((4,), "f32")]),
    (everything, [((4, 3, 5), "f32"), ((2,), "i32")]),
    (docs_padded, [((2, 64), "i32"), ((2,), "i32")]),
    (shifts, [((64,), "i32")]),
    (decayed_softcap, []),
], ids=["alibi", "everything", "docs_padded", "shifts", "decayed_softcap"])
def test_dsl_variant_compiles_for_gpu(attn_opt, tmp_path, var, captures):
    path = compiler.compile(var, head_dim=64, captures=captures,
                            cache=tmp_path)
    # sm_90a and head dim 64: the warpgroup (wgmma) kernel.
    assert "wgmma.mma_async.sync.aligned" in (path / "attn.ptx").read_text()


def test_gallery_compiles_for_gpu_forward_and_backward(attn_opt, tmp_path):
    """Shifts, clamp and math.exp2 in the GPU forward and backward kernels
    (PTX only): the region's exp2 is libdevice-free ex2.approx.f32 (the
    softmax's own is the .ftz form), the block distance shr.s64."""
    path = compiler.compile(gallery_grad, head_dim=64,
                            captures=[((4,), "f32")], cache=tmp_path,
                            backward=True)
    ptx = (path / "attn.ptx").read_text()
    kernels = {part.split("(", 1)[0].strip(): part
               for part in ptx.split(".entry ")[1:]}
    assert set(kernels) >= {"gallery_grad_attention",
                            "gallery_grad_attention_grad"}
    for name in ("gallery_grad_attention", "gallery_grad_attention_grad"):
        body = kernels[name]
        assert "shr.s64" in body and "ex2.approx.f32" in body, name
        assert "min.NaN.f32" in body and "max.NaN.f32" in body, name
