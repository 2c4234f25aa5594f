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

import inspect
import math
import re

import numpy as np
import pytest
from conftest import _tool

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


ERROR_CASES = [
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
], ids=["alibi", "everything", "docs_padded"])
def test_dsl_variant_compiles_for_gpu(attn_opt, tmp_path, var, captures):
    path = compiler.compile(var, head_dim=64, captures=captures,
                            cache=tmp_path)
    # sm_90a and head dim 64: the warpgroup (wgmma) kernel.
    assert "wgmma.mma_async.sync.aligned" in (path / "attn.ptx").read_text()
