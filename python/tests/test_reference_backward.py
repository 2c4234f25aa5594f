"""The float64 backward reference (``reference.attention_backward``) against
central finite differences of the float64 forward (``reference.attention``).

The loss is ``L = sum(dO * O) + sum(dlse * lse)`` with random ``dO`` and
``dlse``, so ``dL/dx`` is exactly what ``attention_backward`` returns for
``do = dO``. Inputs are random and seeded (never zeros); sizes are odd, with
GQA, ``Sq != Sk``, ``Dqk != Dv``, fully masked rows and large magnitudes.
"""

from __future__ import annotations

import numpy as np
import pytest

from attn_mlir import reference as ref
from attn_mlir import variants

NORMALIZATIONS = ref.NORMALIZATIONS

# B, Hq, Hkv, Sq, Sk, Dqk, Dv: GQA (2 query heads per kv head), Sq != Sk,
# Dqk != Dv, nothing a multiple of anything.
SHAPE = (2, 4, 2, 5, 7, 3, 4)


def _inputs(seed, shape=SHAPE, *, key_scale=1.0, n_sink_rows=0,
            sink_logits=False):
    B, Hq, Hkv, Sq, Sk, D, Dv = shape
    rng = np.random.default_rng(seed)
    x = {"q": rng.standard_normal((B, Hq, Sq, D)),
         "k": key_scale * rng.standard_normal((B, Hkv, Sk, D)),
         "v": rng.standard_normal((B, Hkv, Sk, Dv))}
    if n_sink_rows:
        x["sink_key"] = rng.standard_normal((Hkv, n_sink_rows, D))
        x["sink_value"] = rng.standard_normal((Hkv, n_sink_rows, Dv))
    if sink_logits:
        x["sink_logits"] = rng.standard_normal(Hq)
    do = rng.standard_normal((B, Hq, Sq, Dv))
    dlse = rng.standard_normal((B, Hq, Sq))
    return x, do, dlse


def _loss(x, do, dlse, captures, kw):
    """``sum(dO * O) + sum(dlse * lse)``; rows whose lse is -inf (nothing
    visible) drop out of the lse term, as they do in the backward."""
    with_lse = dlse is not None
    res = ref.attention(x["q"], x["k"], x["v"], captures=captures,
                        sink_logits=x.get("sink_logits"),
                        sink_key=x.get("sink_key"),
                        sink_value=x.get("sink_value"), return_lse=with_lse,
                        **kw)
    if not with_lse:
        return float((res * do).sum())
    o, lse = res
    lse_term = np.where(np.isfinite(lse), lse * dlse, 0.0)
    return float((o * do).sum() + lse_term.sum())


def _numeric(fun, x, step=1e-6):
    """Central differences of the scalar ``fun()`` w.r.t. every element of
    the array ``x`` (perturbed in place, restored)."""
    g = np.zeros_like(x)
    for m in range(x.size):
        orig = x.flat[m]
        h = step * max(1.0, abs(orig))
        x.flat[m] = orig + h
        up = fun()
        x.flat[m] = orig - h
        down = fun()
        x.flat[m] = orig
        g.flat[m] = (up - down) / (2.0 * h)
    return g


def check_gradients(x, do, dlse=None, captures=(), rtol=1e-5, atol=1e-7,
                    **kw):
    """Compares every gradient of ``attention_backward`` with central
    differences of the forward; returns the analytic gradients."""
    captures = [np.array(c) for c in captures]
    grads = ref.attention_backward(
        x["q"], x["k"], x["v"], do, captures=captures,
        sink_logits=x.get("sink_logits"), sink_key=x.get("sink_key"),
        sink_value=x.get("sink_value"), dlse=dlse, **kw)
    fun = lambda: _loss(x, do, dlse, captures, kw)  # noqa: E731
    # (name, analytic gradient, the input it differentiates)
    pairs = [("dq", grads.dq, x["q"]), ("dk", grads.dk, x["k"]),
             ("dv", grads.dv, x["v"])]
    for name, key in (("d_sink_logits", "sink_logits"),
                      ("d_sink_key", "sink_key"),
                      ("d_sink_value", "sink_value")):
        assert (getattr(grads, name) is None) == (key not in x), name
        if key in x:
            pairs.append((name, getattr(grads, name), x[key]))
    for n, c in enumerate(captures):
        if c.dtype.kind == "f":
            pairs.append((f"d_captures[{n}]", grads.d_captures[n], c))
        else:
            assert grads.d_captures[n] is None
    numeric = [_numeric(fun, a) for _, _, a in pairs]
    scale = max(1.0, max(np.abs(n).max() for n in numeric))
    for (name, got, a), num in zip(pairs, numeric):
        assert got.shape == a.shape, name
        assert np.all(np.isfinite(got)), name
        np.testing.assert_allclose(got, num, rtol=rtol,
                                   atol=atol * scale, err_msg=name)
    return grads


# ---------------------------------------------------------------------------
# Every normalization, dot and RBF
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("score", ["dot", "rbf"])
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_normalizations(normalization, score):
    x, do, dlse = _inputs(1)
    kw = {"score": score, "normalization": normalization,
          "masks": [ref.causal("bottom_right")]}
    if normalization == "sigmoid":
        kw["bias"] = -0.5
    if normalization == "scalable_softmax":
        kw["length_scale"] = 0.7
    use_dlse = normalization in ref.LSE_NORMALIZATIONS
    check_gradients(x, do, dlse if use_dlse else None, **kw)


@pytest.mark.parametrize("normalization", ref.SOFTMAX_FAMILY)
@pytest.mark.parametrize("score", ["dot", "rbf"])
def test_sink_logits_and_rows(normalization, score):
    x, do, dlse = _inputs(2, n_sink_rows=3, sink_logits=True)
    check_gradients(x, do, dlse, score=score, normalization=normalization,
                    masks=[ref.sliding_window(2)])


@pytest.mark.parametrize("normalization", ["sigmoid", "relu", "none"])
def test_sink_rows_other_normalizations(normalization):
    x, do, _ = _inputs(3, n_sink_rows=2)
    check_gradients(x, do, score="rbf", normalization=normalization)


def test_zero_sink_rows_rbf_library_variant():
    """rbf_sink_rows at initialisation: zero sink key and value rows still
    get gradients (the key through -gamma |q - 0|^2)."""
    x, do, dlse = _inputs(4, n_sink_rows=2)
    x["sink_key"][:] = 0.0
    x["sink_value"][:] = 0.0
    kw = variants.load("rbf_sink_rows").reference_kwargs()
    g = check_gradients(x, do, dlse, **kw)
    assert np.abs(g.d_sink_key).max() > 0 and np.abs(g.d_sink_value).max() > 0


@pytest.mark.parametrize("q_map,k_map", [("elu_plus_one", "relu"),
                                         ("relu", "elu_plus_one")])
def test_feature_maps(q_map, k_map):
    x, do, dlse = _inputs(5, n_sink_rows=1)
    check_gradients(x, do, dlse, q_map=q_map, k_map=k_map, score="dot")


def test_explicit_scale_and_gamma():
    x, do, dlse = _inputs(6)
    check_gradients(x, do, dlse, score="dot", scale=0.37)
    check_gradients(x, do, dlse, score="rbf", gamma=0.21)


# ---------------------------------------------------------------------------
# Masks, shapes, fully masked rows, magnitudes
# ---------------------------------------------------------------------------

MASKS = {
    "causal": [ref.causal()],
    "prefix_lm": [ref.prefix_lm(2, "bottom_right")],
    "sliding_window": [ref.sliding_window(1, 2)],
    "chunked": [ref.chunked(3)],
    "streaming": [ref.causal(), ref.sink_tokens(2), ref.sliding_window(1)],
}


@pytest.mark.parametrize("name", sorted(MASKS))
def test_masks(name):
    x, do, dlse = _inputs(7)
    check_gradients(x, do, dlse, masks=MASKS[name])


@pytest.mark.parametrize("mask", [ref.neighborhood_1d(3, 2),
                                  ref.neighborhood_2d(2, 3, 1, 3)])
def test_neighborhood_masks(mask):
    x, do, dlse = _inputs(8, shape=(1, 2, 1, 6, 6, 3, 2))
    check_gradients(x, do, dlse, masks=[mask], score="rbf")


def test_document_mask_integer_captures_get_no_gradient():
    x, do, dlse = _inputs(9)
    rng = np.random.default_rng(9)
    qseg = np.sort(rng.integers(0, 3, size=(2, 5))).astype(np.int32)
    kseg = np.sort(rng.integers(0, 3, size=(2, 7))).astype(np.int32)
    g = check_gradients(x, do, dlse, captures=[qseg, kseg],
                        masks=[ref.document(0, 1)])
    assert g.d_captures == (None, None)


def test_mask_mod_region():
    x, do, dlse = _inputs(10)
    check_gradients(x, do, dlse,
                    mask_mod=lambda b, h, i, j: (i + j + h) % 3 != 0)


@pytest.mark.parametrize("shape", [(1, 3, 1, 4, 9, 5, 2),   # MQA
                                   (1, 2, 2, 8, 3, 2, 5),   # Sq > Sk
                                   (3, 1, 1, 1, 6, 4, 1)])  # Sq = 1, Dv = 1
def test_shapes(shape):
    x, do, dlse = _inputs(11, shape=shape, n_sink_rows=1, sink_logits=True)
    check_gradients(x, do, dlse, masks=[ref.causal("bottom_right")])


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_fully_masked_rows(normalization):
    """Sq > Sk with a bottom-right causal mask: the first Sq - Sk queries
    see nothing. Their dq rows are exactly 0 (no NaN) and they add nothing
    to dk or dv."""
    shape = (1, 2, 1, 6, 3, 3, 2)
    x, do, dlse = _inputs(12, shape=shape)
    kw = {"normalization": normalization,
          "masks": [ref.causal("bottom_right")]}
    use_dlse = normalization in ref.LSE_NORMALIZATIONS
    g = check_gradients(x, do, dlse if use_dlse else None, **kw)
    assert np.all(g.dq[:, :, :3] == 0.0)
    do2 = do.copy()
    do2[:, :, :3] = 1e3                          # rows that see nothing
    g2 = ref.attention_backward(x["q"], x["k"], x["v"], do2,
                                dlse=dlse if use_dlse else None, **kw)
    np.testing.assert_array_equal(g2.dk, g.dk)
    np.testing.assert_array_equal(g2.dv, g.dv)


def test_fully_masked_rows_with_sink_logits():
    """With a sink logit a row that sees nothing has p_c = 1: its lse is c,
    so dlse flows into d_sink_logits, and nowhere else."""
    shape = (1, 2, 1, 5, 2, 3, 2)
    x, do, dlse = _inputs(13, shape=shape, sink_logits=True)
    g = check_gradients(x, do, dlse, masks=[ref.causal("bottom_right")])
    assert np.all(g.dq[:, :, :3] == 0.0)


@pytest.mark.parametrize("score", ["dot", "rbf"])
def test_large_magnitude_keys(score):
    """Keys 30x larger than the queries: saturated weights, scores in the
    hundreds (RBF), finite and correct gradients."""
    x, do, dlse = _inputs(14, key_scale=30.0, n_sink_rows=1)
    check_gradients(x, do, dlse, score=score, masks=[ref.causal()])


def test_large_common_offset_rbf():
    """q and k near a common offset of norm ~1e3: the reference works from
    the differences, so nothing cancels."""
    x, do, dlse = _inputs(15)
    offset = 600.0 * np.ones(SHAPE[5])
    x["q"] += offset
    x["k"] += offset
    check_gradients(x, do, dlse, score="rbf", rtol=1e-4)


# ---------------------------------------------------------------------------
# Score regions and their captures
# ---------------------------------------------------------------------------

def _slopes(Hq):
    return 2.0 ** (-8.0 * np.arange(1, Hq + 1) / Hq) * (1.0 + 0.1 *
                                                       np.arange(Hq))


def test_alibi_library_variant_slopes():
    x, do, dlse = _inputs(16)
    kw = variants.load("alibi").reference_kwargs()
    g = check_gradients(x, do, dlse, captures=[_slopes(SHAPE[1])], **kw)
    assert np.abs(g.d_captures[0]).min() > 0


def test_softcap_library_variant():
    """30 tanh(s / 30) on large scores (keys x 20), where df/ds = 1 - tanh^2
    is far from 1."""
    x, do, dlse = _inputs(17, key_scale=20.0, n_sink_rows=1)
    kw = variants.load("softcap").reference_kwargs()
    check_gradients(x, do, dlse, **kw)


def test_bias_table_and_segments():
    """A float bias table between two integer captures: only the table gets
    a gradient, of its shape; entries of masked pairs get 0."""
    x, do, dlse = _inputs(18)
    B, Hq, _, Sq, Sk, _, _ = SHAPE
    rng = np.random.default_rng(18)
    seg_q = np.zeros((B, Sq), np.int32)
    seg_k = np.zeros((B, Sk), np.int32)
    table = rng.standard_normal((Hq, Sq, Sk))

    def score_mod(s, b, h, i, j, qs, t, ks):
        return s + t[h, i, j]
    g = check_gradients(x, do, dlse, captures=[seg_q, table, seg_k],
                        score_mod=score_mod, masks=[ref.causal(),
                                                    ref.document(0, 2)])
    assert g.d_captures[0] is None and g.d_captures[2] is None
    i, j = np.arange(Sq)[:, None], np.arange(Sk)[None, :]
    assert np.all(g.d_captures[1][:, j > i] == 0.0)


@pytest.mark.parametrize("normalization", ["softmax", "sigmoid", "relu2"])
def test_per_head_temperature_rbf(normalization):
    """s * temp[h] on RBF scores: a learnable per-head bandwidth."""
    x, do, dlse = _inputs(19, n_sink_rows=1)
    temp = 0.5 + np.random.default_rng(19).random(SHAPE[1])
    use_dlse = normalization in ref.LSE_NORMALIZATIONS
    check_gradients(x, do, dlse if use_dlse else None, captures=[temp],
                    score="rbf", normalization=normalization,
                    score_mod=lambda s, b, h, i, j, t: s * t[h])


def test_capture_read_only_by_the_mask_has_zero_gradient():
    x, do, dlse = _inputs(20)
    thresh = np.array([0.3])                     # no (i + 1) t is an integer
    g = check_gradients(
        x, do, dlse, captures=[thresh],
        score_mod=lambda s, b, h, i, j, t: s,
        mask_mod=lambda b, h, i, j, t: (i + 1) * t[0] < j + 1)
    assert np.all(g.d_captures[0] == 0.0)


def test_op_results_order():
    x, do, dlse = _inputs(21, n_sink_rows=2, sink_logits=True)
    seg = np.zeros((2, 5), np.int32)
    slopes = _slopes(SHAPE[1])

    def score_mod(s, b, h, i, j, sg, m):
        return s + m[h] * (j - i)
    g = ref.attention_backward(
        x["q"], x["k"], x["v"], do, captures=[seg, slopes],
        score_mod=score_mod, sink_logits=x["sink_logits"],
        sink_key=x["sink_key"], sink_value=x["sink_value"], dlse=dlse)
    res = g.op_results()
    expected = [g.dq, g.dk, g.dv, g.d_sink_logits, g.d_sink_key,
                g.d_sink_value, g.d_captures[1]]
    assert len(res) == 7 and all(a is b for a, b in zip(res, expected))
    assert [r.shape for r in res[3:]] == [(4,), (2, 2, 3), (2, 2, 4), (4,)]


def test_rejects_dlse_without_lse():
    x, do, dlse = _inputs(22)
    with pytest.raises(ValueError, match="dlse"):
        ref.attention_backward(x["q"], x["k"], x["v"], do, dlse=dlse,
                               normalization="sigmoid")
