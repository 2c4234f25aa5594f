"""Checks `attn_mlir.reference` against independent brute force.

The brute force below is written again from docs/semantics.md, one scalar at
a time with plain Python floats and the `math` module (or `decimal.Decimal`
at 60 digits for the large-magnitude cases), with no max-subtraction tricks
and no numpy vectorisation.  Neighborhood masks are checked against a
transcription of NATTEN's own window rule (`get_window_start` of NATTEN's
CPU kernels: the window of query `i` is `start + t * dilation`,
`t = 0..kernel-1`), not against the formula of docs/semantics.md.

Inputs are seeded random normals (never zeros).  The last tests are
negative controls: they show that the comparison harness notices a wrong
alignment, a wrong dilation, a wrong kv-head mapping, a dropped sink, ...
"""

from __future__ import annotations

import decimal
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))

from attn_mlir import reference as ref  # noqa: E402

RTOL = 1e-11
ATOL = 1e-12
NEG_INF = float("-inf")


# ---------------------------------------------------------------------------
# Brute force
# ---------------------------------------------------------------------------

def natten_window_start(index, length, kernel, dilation):
    """NATTEN's window start rule (CPU `get_window_start`), in Python."""
    nb = kernel // 2
    if dilation <= 1:
        start = max(index - nb, 0)
        if index + nb >= length:
            start += length - index - nb - 1
        return start
    first = index - nb * dilation
    if first < 0:
        return index % dilation
    if index + nb * dilation >= length:
        phase = index % dilation
        full = (length // dilation) * dilation
        rest = length - full
        if phase < rest:
            return length - rest + phase - 2 * nb * dilation
        return full + phase - kernel * dilation
    return first


def natten_window(index, length, kernel, dilation):
    """The keys NATTEN attends from `index`: `start + t * dilation`."""
    start = natten_window_start(index, length, kernel, dilation)
    return {start + t * dilation for t in range(kernel)}


def bf_phi(x, kind, exact=False):
    if kind == "identity":
        return x
    if kind == "relu":
        return x if x > 0 else (decimal.Decimal(0) if exact else 0.0)
    if kind == "elu_plus_one":
        if x > 0:
            return x + 1
        return x.exp() if exact else math.exp(x)
    raise ValueError(kind)


def bf_visible(b, h, i, j, Sq, Sk, masks, caps, mask_mod):
    """Scalar visibility of key j for query i, straight from the table."""
    glob = True
    loc = True
    n_sink = 0
    for m in masks:
        kind = m["kind"]
        align = m.get("alignment", "top_left")
        pos = i if align == "top_left" else i + Sk - Sq
        if kind == "causal":
            glob = glob and j <= pos
        elif kind == "prefix_lm":
            glob = glob and (j < m["prefix"] or j <= pos)
        elif kind == "document":
            qa = caps[m["q_segments"]]
            kc = caps[m["kv_segments"]]
            glob = glob and int(qa[b][i]) == int(kc[b][j])
        elif kind == "sliding_window":
            right = m.get("right", 0)
            loc = loc and pos - m["left"] <= j <= pos + right
        elif kind == "chunked":
            loc = loc and pos >= 0 and pos // m["size"] == j // m["size"]
        elif kind == "neighborhood_1d":
            loc = loc and j in natten_window(i, Sk, m["kernel"],
                                             m.get("dilation", 1))
        elif kind == "neighborhood_2d":
            W, H = m["width"], m["height"]
            qi, qc = divmod(i, W)
            kr, kc_ = divmod(j, W)
            loc = (loc
                   and kr in natten_window(qi, H, m["kernel_h"],
                                           m.get("dilation_h", 1))
                   and kc_ in natten_window(qc, W, m["kernel_w"],
                                            m.get("dilation_w", 1)))
        elif kind == "sink_tokens":
            n_sink = m["count"]
        else:
            raise ValueError(kind)
    if mask_mod is not None:
        glob = glob and bool(mask_mod(b, h, i, j, *caps))
    return glob and (loc or j < n_sink)


def bf_attention(q, k, v, *, score="dot", scale=None, gamma=None,
                 q_map="identity", k_map="identity", masks=(),
                 normalization="softmax", bias=None, length_scale=None,
                 sink_logits=None, sink_key=None, sink_value=None,
                 captures=(), score_mod=None, mask_mod=None, exact=False,
                 kv_head=None):
    """Per-element attention; returns (O, lse) as float64 numpy arrays.

    exact=True evaluates everything in decimal.Decimal (60 digits, huge
    exponent range) straight from the formulas, so even scores around -1e6
    need no max subtraction.  `kv_head(h, Hq, Hkv)` overrides the head
    mapping (negative controls only).
    """
    B, Hq, Sq, D = q.shape
    Hkv, Sk, Dv = k.shape[1], k.shape[2], v.shape[3]
    G = Hq // Hkv
    if exact:
        ctx = decimal.Context(prec=60, Emin=-10**9, Emax=10**9)
        decimal.setcontext(ctx)
        num = decimal.Decimal
        exp = lambda x: x.exp()  # noqa: E731
        log = lambda x: x.ln() if x > 0 else decimal.Decimal("-Infinity")  # noqa: E731,E501
        sqrt = lambda x: num(x).sqrt()  # noqa: E731
        conv = lambda a: [[[[num(float(x)) for x in row] for row in mat]  # noqa: E731,E501
                           for mat in hd] for hd in a]
    else:
        num = float
        exp = math.exp
        log = lambda x: math.log(x) if x > 0 else NEG_INF  # noqa: E731
        sqrt = math.sqrt
        conv = lambda a: a.tolist()  # noqa: E731
    ql = conv(np.asarray(q, dtype=np.float64))
    kl = conv(np.asarray(k, dtype=np.float64))
    vl = conv(np.asarray(v, dtype=np.float64))
    caps = [ref._capture(c) for c in captures]
    if sink_key is not None:
        skl = conv(np.asarray(sink_key, dtype=np.float64)[None])[0]
        svl = conv(np.asarray(sink_value, dtype=np.float64)[None])[0]
        Ns = len(skl[0])
    else:
        Ns = 0
    if scale is None:
        scale = 1 / sqrt(D)
    if gamma is None:
        gamma = 1 / (2 * sqrt(D))
    scale = num(float(scale)) if exact else float(scale)
    gamma = num(float(gamma)) if exact else float(gamma)

    def kernel(qf, kf):
        if score == "dot":
            acc = num(0)
            for a, c in zip(qf, kf):
                acc += a * c
            return scale * acc
        acc = num(0)
        for a, c in zip(qf, kf):
            acc += (a - c) * (a - c)
        return -gamma * acc

    out = np.zeros((B, Hq, Sq, Dv))
    lse = np.zeros((B, Hq, Sq))
    for b in range(B):
        for h in range(Hq):
            hk = h // G if kv_head is None else kv_head(h, Hq, Hkv)
            for i in range(Sq):
                qf = [bf_phi(x, q_map, exact) for x in ql[b][h][i]]
                cands = []  # (score, value row)
                for j in range(Sk):
                    if not bf_visible(b, h, i, j, Sq, Sk, masks, caps,
                                      mask_mod):
                        continue
                    kf = [bf_phi(x, k_map, exact) for x in kl[b][hk][j]]
                    s = kernel(qf, kf)
                    if score_mod is not None:
                        s = score_mod(s, b, h, i, j, *caps)
                        s = s if exact else float(s)
                    cands.append((s, vl[b][hk][j]))
                for r in range(Ns):
                    kf = [bf_phi(x, k_map, exact) for x in skl[hk][r]]
                    cands.append((kernel(qf, kf), svl[hk][r]))
                n = len(cands)
                ss = [s for s, _ in cands]
                ell = None
                if normalization in ("softmax", "softmax1",
                                     "scalable_softmax"):
                    if normalization == "scalable_softmax" and n > 0:
                        lsc = 1 if length_scale is None else length_scale
                        lsc = num(float(lsc)) if exact else float(lsc)
                        f = lsc * log(num(n))
                        ss = [s * f for s in ss]
                    Z = num(0)
                    for s in ss:
                        Z += exp(s)
                    if sink_logits is not None:
                        Z += exp(num(float(sink_logits[h])))
                    if normalization == "softmax1":
                        Z += 1
                    w = [exp(s) / Z for s in ss] if Z > 0 else [0] * n
                    ell = log(Z)
                elif normalization == "sigmoid":
                    bb = num(float(bias)) if bias is not None else num(0)
                    w = [1 / (1 + exp(-(s + bb))) for s in ss]
                elif normalization == "relu":
                    w = [s if s > 0 else 0 for s in ss]
                elif normalization == "relu2":
                    w = [s * s if s > 0 else 0 for s in ss]
                elif normalization == "none":
                    w = list(ss)
                elif normalization == "mean":
                    w = [num(1) / n] * n if n > 0 else []
                    ell = log(num(n)) if n > 0 else NEG_INF
                else:
                    raise ValueError(normalization)
                for d in range(Dv):
                    acc = num(0)
                    for wt, (_, row) in zip(w, cands):
                        acc += wt * row[d]
                    out[b, h, i, d] = float(acc)
                if ell is not None:
                    lse[b, h, i] = float(ell)
    return out, lse


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def make_qkv(seed, B=2, Hq=2, Hkv=None, Sq=5, Sk=None, D=4, Dv=3,
             dtype=np.float64):
    rng = np.random.default_rng(seed)
    Hkv = Hq if Hkv is None else Hkv
    Sk = Sq if Sk is None else Sk
    q = rng.standard_normal((B, Hq, Sq, D)).astype(dtype)
    k = rng.standard_normal((B, Hkv, Sk, D)).astype(dtype)
    v = rng.standard_normal((B, Hkv, Sk, Dv)).astype(dtype)
    return q, k, v


def make_sink_rows(seed, Hkv, Ns, D, Dv):
    rng = np.random.default_rng(seed + 1000)
    return (rng.standard_normal((Hkv, Ns, D)),
            rng.standard_normal((Hkv, Ns, Dv)))


def compare(q, k, v, rtol=RTOL, atol=ATOL, **kw):
    """Reference vs brute force, O and (where defined) lse."""
    norm = kw.get("normalization", "softmax")
    has_lse = norm in ref.LSE_NORMALIZATIONS
    res = ref.attention(q, k, v, return_lse=has_lse, **kw)
    o, lse = res if has_lse else (res, None)
    bo, blse = bf_attention(q, k, v, **kw)
    assert o.dtype == np.float64
    assert o.shape == bo.shape
    assert not np.isnan(o).any()
    np.testing.assert_allclose(o, bo, rtol=rtol, atol=atol)
    if has_lse:
        assert lse.shape == q.shape[:3]
        assert not np.isnan(lse).any()
        np.testing.assert_allclose(lse, blse, rtol=rtol, atol=atol)
    return o, lse


def alibi(s, b, h, i, j, slopes):
    return s + slopes[h] * (j - i)


def hide_some(b, h, i, j):
    # A global mask region: it also hides sink tokens (j < N).
    return (i + j + b + h) % 3 != 0


# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------

def test_feature_maps_elementwise():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7)) * 3
    x[0, 0] = 800.0  # exp(800) would overflow in a careless elu branch
    for kind in ref.FEATURE_MAPS:
        got = ref.feature_map(x, kind)
        want = np.array([[bf_phi(float(e), kind) for e in row] for row in x])
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):
        ref.feature_map(x, "gelu")


@pytest.mark.parametrize("L", range(1, 26))
def test_natten_1d_matches_natten_window_rule(L):
    for K in range(1, L + 1, 2):
        for D in range(1, L // K + 1):  # NATTEN needs K * D <= L
            i = np.arange(L).reshape(L, 1)
            j = np.arange(L).reshape(1, L)
            got = ref.natten_1d(i, j, L, K, D)
            for qi in range(L):
                want = natten_window(qi, L, K, D)
                assert set(np.nonzero(got[qi])[0].tolist()) == want, \
                    (L, K, D, qi)
                assert len(want) == K


def test_natten_1d_group_smaller_than_kernel():
    # Outside NATTEN's domain (K * D > L) the doc says: the whole group.
    L, K, D = 7, 5, 2
    got = ref.natten_1d(np.arange(L)[:, None], np.arange(L)[None], L, K, D)
    for i in range(L):
        assert set(np.nonzero(got[i])[0].tolist()) == \
            {j for j in range(L) if j % D == i % D}


MASK_SETS = [
    [],
    [ref.causal()],
    [ref.causal("bottom_right")],
    [{"kind": "causal"}],
    [ref.prefix_lm(2)],
    [ref.prefix_lm(2, "bottom_right")],
    [ref.sliding_window(2)],
    [ref.sliding_window(1, 2)],
    [ref.sliding_window(2, 1, "bottom_right")],
    [ref.causal(), ref.sliding_window(2)],
    [ref.causal(), ref.sink_tokens(2), ref.sliding_window(1)],
    [ref.causal("bottom_right"), ref.sink_tokens(1),
     ref.sliding_window(1, 0, "bottom_right")],
    [ref.chunked(3)],
    [ref.chunked(3), ref.sink_tokens(1)],
    [ref.causal(), ref.chunked(2)],
    [{"kind": "chunked", "size": 3, "alignment": "bottom_right"}],
    [ref.document(0, 1)],
    [ref.document(0, 1), ref.causal("bottom_right")],
]


@pytest.mark.parametrize("masks", MASK_SETS)
@pytest.mark.parametrize("sq_sk", [(6, 6), (3, 8), (8, 3)])
def test_visibility_against_scalar_rule(masks, sq_sk):
    Sq, Sk = sq_sk
    B, Hq = 2, 2
    rng = np.random.default_rng(7)
    caps = (rng.integers(0, 3, (B, Sq)).astype(np.int32),
            rng.integers(0, 3, (B, Sk)).astype(np.int32))
    got = ref.visibility(B, Hq, Sq, Sk, masks, caps)
    assert got.shape == (B, Hq, Sq, Sk) and got.dtype == bool
    for b in range(B):
        for h in range(Hq):
            for i in range(Sq):
                for j in range(Sk):
                    assert got[b, h, i, j] == bf_visible(
                        b, h, i, j, Sq, Sk, masks, caps, None), \
                        (masks, b, h, i, j)


@pytest.mark.parametrize("cfg", [
    (4, 6, 3, 3, 1, 2),
    (5, 5, 3, 5, 1, 1),
    (6, 4, 3, 1, 2, 1),
    (7, 7, 3, 3, 2, 2),
    (3, 9, 1, 3, 1, 3),
])
def test_neighborhood_2d_against_natten(cfg):
    H, W, Kh, Kw, Dh, Dw = cfg
    S = H * W
    mask = ref.neighborhood_2d(H, W, Kh, Kw, Dh, Dw)
    got = ref.visibility(1, 1, S, S, [mask])[0, 0]
    for i in range(S):
        r, c = divmod(i, W)
        want = {rr * W + cc for rr in natten_window(r, H, Kh, Dh)
                for cc in natten_window(c, W, Kw, Dw)}
        assert set(np.nonzero(got[i])[0].tolist()) == want, (cfg, i)
        assert len(want) == Kh * Kw


def test_mask_mod_and_index_shapes():
    B, Hq, Sq, Sk = 2, 3, 4, 5
    seen = {}

    def mm(b, h, i, j, thr):
        seen["shapes"] = (b.shape, h.shape, i.shape, j.shape)
        return (i + j + h) % 3 != int(thr[0])

    vis = ref.visibility(B, Hq, Sq, Sk, [], (np.array([1], np.int32),), mm)
    assert seen["shapes"] == ((B, 1, 1, 1), (1, Hq, 1, 1), (1, 1, Sq, 1),
                              (1, 1, 1, Sk))
    for h in range(Hq):
        for i in range(Sq):
            for j in range(Sk):
                assert vis[:, h, i, j].tolist() == [(i + j + h) % 3 != 1] * B


def test_canonical_mask_defaults_and_errors():
    assert ref.canonical_mask({"kind": "sliding_window", "left": 3}) == {
        "kind": "sliding_window", "left": 3, "right": 0,
        "alignment": "top_left"}
    assert ref.canonical_mask({"kind": "neighborhood_1d", "kernel": 3}) == {
        "kind": "neighborhood_1d", "kernel": 3, "dilation": 1}
    with pytest.raises(ValueError):
        ref.canonical_mask({"kind": "sliding_window"})
    with pytest.raises(ValueError):
        ref.canonical_mask({"kind": "causal", "alignement": "top_left"})
    with pytest.raises(ValueError):
        ref.canonical_mask({"kind": "bogus"})
    with pytest.raises(ValueError):
        ref.visibility(1, 1, 4, 4, [ref.causal(), ref.causal()])


# ---------------------------------------------------------------------------
# The whole op against brute force
# ---------------------------------------------------------------------------

CASES = {
    "mha_softmax": dict(),
    "explicit_scale": dict(scale=0.7),
    "causal_tl": dict(masks=[ref.causal()]),
    "causal_br_sq_lt_sk": dict(shape=dict(Sq=3, Sk=7),
                               masks=[ref.causal("bottom_right")]),
    "causal_tl_sq_lt_sk": dict(shape=dict(Sq=3, Sk=7),
                               masks=[ref.causal()]),
    "gqa": dict(shape=dict(Hq=4, Hkv=2), masks=[ref.causal()]),
    "mqa": dict(shape=dict(Hq=3, Hkv=1)),
    "prefix_lm": dict(masks=[ref.prefix_lm(2)]),
    "sliding_window_both_sides": dict(shape=dict(Sq=7),
                                      masks=[ref.sliding_window(2, 1)]),
    "streaming_llm": dict(shape=dict(Sq=8),
                          masks=[ref.causal(), ref.sink_tokens(2),
                                 ref.sliding_window(2)]),
    "streaming_llm_br": dict(shape=dict(Sq=4, Sk=9),
                             masks=[ref.causal("bottom_right"),
                                    ref.sink_tokens(2),
                                    ref.sliding_window(2, 0,
                                                       "bottom_right")]),
    "chunked": dict(shape=dict(Sq=7), masks=[ref.chunked(3)]),
    "chunked_causal_sinks": dict(shape=dict(Sq=7),
                                 masks=[ref.causal(), ref.chunked(3),
                                        ref.sink_tokens(1)]),
    "natten_1d": dict(shape=dict(Sq=10, Hq=2),
                      masks=[ref.neighborhood_1d(3, 2)]),
    "natten_1d_k5_d1": dict(shape=dict(Sq=9),
                            masks=[ref.neighborhood_1d(5)]),
    "natten_1d_sinks": dict(shape=dict(Sq=10),
                            masks=[ref.neighborhood_1d(3, 3),
                                   ref.sink_tokens(2)]),
    "natten_2d": dict(shape=dict(Sq=20, B=1),
                      masks=[ref.neighborhood_2d(4, 5, 3, 3, 1, 1)]),
    "natten_2d_dilated": dict(shape=dict(Sq=24, B=1),
                              masks=[ref.neighborhood_2d(4, 6, 3, 3, 1, 2)]),
    "document": dict(shape=dict(Sq=6), masks=[ref.document(0, 0)],
                     caps="seg_same"),
    "document_sq_ne_sk": dict(shape=dict(Sq=4, Sk=6),
                              masks=[ref.document(1, 0),
                                     ref.causal("bottom_right")],
                              caps="seg_two"),
    "rbf": dict(score="rbf", masks=[ref.causal()]),
    "rbf_gamma": dict(score="rbf", gamma=0.3),
    "elu_maps": dict(q_map="elu_plus_one", k_map="elu_plus_one"),
    "relu_maps_rbf": dict(score="rbf", q_map="relu", k_map="relu"),
    "alibi_score_mod": dict(shape=dict(Hq=3), masks=[ref.causal()],
                            score_mod=alibi, caps="slopes"),
    "mask_mod": dict(shape=dict(Sq=6), mask_mod=hide_some),
    "mask_mod_hides_sink_tokens": dict(shape=dict(Sq=8), mask_mod=hide_some,
                                       masks=[ref.causal(), ref.sink_tokens(2),
                                              ref.sliding_window(1)]),
    "softmax1": dict(normalization="softmax1", masks=[ref.causal()]),
    "scalable_softmax": dict(normalization="scalable_softmax",
                             masks=[ref.causal()]),
    "scalable_softmax_ls": dict(normalization="scalable_softmax",
                                length_scale=0.4,
                                masks=[ref.sliding_window(1)]),
    "sigmoid": dict(normalization="sigmoid", masks=[ref.causal()]),
    "sigmoid_bias": dict(normalization="sigmoid", bias=-1.5),
    "relu_norm": dict(normalization="relu", masks=[ref.causal()]),
    "relu2_norm": dict(normalization="relu2"),
    "none_norm": dict(normalization="none", masks=[ref.causal()]),
    "mean_norm": dict(normalization="mean", masks=[ref.sliding_window(1)]),
    "sink_logits": dict(masks=[ref.causal()], sink_logits=True),
    "sink_logits_softmax1": dict(normalization="softmax1", sink_logits=True),
    "sink_logits_scalable": dict(normalization="scalable_softmax",
                                 masks=[ref.causal()], sink_logits=True),
    "sink_rows": dict(sink_rows=2, masks=[ref.causal()]),
    "sink_rows_gqa_rbf_maps": dict(shape=dict(Hq=4, Hkv=2), score="rbf",
                                   k_map="elu_plus_one", sink_rows=3,
                                   masks=[ref.causal()]),
    "sink_rows_and_logits": dict(sink_rows=1, sink_logits=True,
                                 masks=[ref.causal(), ref.sliding_window(1),
                                        ref.sink_tokens(1)]),
    "sink_rows_score_mod": dict(shape=dict(Hq=3), sink_rows=2,
                                score_mod=alibi, caps="slopes"),
    "sink_rows_sigmoid": dict(normalization="sigmoid", sink_rows=2),
    "sink_rows_mean": dict(normalization="mean", sink_rows=2,
                           masks=[ref.causal()]),
    "sink_rows_scalable": dict(normalization="scalable_softmax",
                               sink_rows=2, masks=[ref.causal()]),
    "sink_rows_none": dict(normalization="none", sink_rows=1),
    "sink_rows_relu2": dict(normalization="relu2", sink_rows=2),
    "sink_rows_softmax1": dict(normalization="softmax1", sink_rows=2,
                               masks=[ref.causal()]),
}


def build_case(name, seed):
    cfg = dict(CASES[name])
    shape = cfg.pop("shape", {})
    q, k, v = make_qkv(seed, **shape)
    B, Hq, Sq, D = q.shape
    Hkv, Sk, Dv = k.shape[1], k.shape[2], v.shape[3]
    rng = np.random.default_rng(seed + 2000)
    caps = cfg.pop("caps", None)
    if caps == "seg_same":
        cfg["captures"] = (rng.integers(0, 3, (B, Sq)).astype(np.int32),)
    elif caps == "seg_two":
        cfg["captures"] = (rng.integers(0, 2, (B, Sk)).astype(np.int32),
                           rng.integers(0, 2, (B, Sq)).astype(np.int32))
    elif caps == "slopes":
        cfg["captures"] = (rng.uniform(0.1, 1.0, Hq).astype(np.float32),)
    if cfg.pop("sink_logits", False):
        cfg["sink_logits"] = rng.standard_normal(Hq).astype(np.float32)
    ns = cfg.pop("sink_rows", 0)
    if ns:
        cfg["sink_key"], cfg["sink_value"] = make_sink_rows(seed, Hkv, ns, D,
                                                            Dv)
    return q, k, v, cfg


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(CASES))
def test_attention_matches_brute_force(name, seed):
    q, k, v, cfg = build_case(name, seed)
    compare(q, k, v, **cfg)


def test_every_normalization_is_covered():
    norms = {c.get("normalization", "softmax") for c in CASES.values()}
    assert norms == set(ref.NORMALIZATIONS)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_low_precision_inputs_are_widened(dtype):
    q, k, v = make_qkv(3, dtype=dtype)
    o = ref.attention(q, k, v, masks=[ref.causal()])
    assert o.dtype == np.float64
    bo, _ = bf_attention(q.astype(np.float64), k.astype(np.float64),
                         v.astype(np.float64), masks=[ref.causal()])
    np.testing.assert_allclose(o, bo, rtol=RTOL, atol=ATOL)


def test_score_mod_receives_documented_arguments():
    q, k, v = make_qkv(4, B=2, Hq=3, Sq=4, Sk=5)
    seen = {}

    def sm(s, b, h, i, j, slopes, seg):
        if isinstance(s, np.ndarray):       # the reference's vectorised call
            seen["s"] = (s.shape, s.dtype)
            seen["idx"] = (b.shape, h.shape, i.shape, j.shape)
            seen["caps"] = (slopes.dtype, seg.dtype)
        return s + slopes[h] * (j - i) + 0.1 * seg[b, j]

    slopes = np.array([0.5, 0.25, 0.125], np.float32)
    seg = np.arange(10, dtype=np.int32).reshape(2, 5)
    compare(q, k, v, score_mod=sm, captures=(slopes, seg))
    assert seen["s"] == ((2, 3, 4, 5), np.float64)
    assert seen["idx"] == ((2, 1, 1, 1), (1, 3, 1, 1), (1, 1, 4, 1),
                           (1, 1, 1, 5))
    assert seen["caps"] == (np.float64, np.int64)


# ---------------------------------------------------------------------------
# Fully masked rows
# ---------------------------------------------------------------------------

def _empty_rows_mask(b, h, i, j):
    return i != 1          # query 1 sees nothing


@pytest.mark.parametrize("norm", ref.NORMALIZATIONS)
def test_fully_masked_rows_every_normalization(norm):
    q, k, v = make_qkv(5, Sq=4)
    kw = dict(normalization=norm, mask_mod=_empty_rows_mask)
    o, lse = compare(q, k, v, **kw)
    assert np.all(o[:, :, 1] == 0.0)
    assert np.all(o[:, :, [0, 2, 3]] != 0.0)
    if norm in ("softmax", "scalable_softmax", "mean"):
        assert np.all(lse[:, :, 1] == NEG_INF)
    elif norm == "softmax1":
        assert np.all(lse[:, :, 1] == 0.0)       # log(1)


def test_fully_masked_rows_causal_bottom_right_sq_gt_sk():
    q, k, v = make_qkv(6, Sq=6, Sk=3)
    o, lse = compare(q, k, v, masks=[ref.causal("bottom_right")])
    # pos = i - 3: queries 0..2 see nothing.
    assert np.all(o[:, :, :3] == 0.0) and np.all(lse[:, :, :3] == NEG_INF)
    assert np.all(np.isfinite(lse[:, :, 3:]))


def test_fully_masked_rows_chunked_negative_pos():
    q, k, v = make_qkv(6, Sq=6, Sk=3)
    mask = {"kind": "chunked", "size": 2, "alignment": "bottom_right"}
    o, lse = compare(q, k, v, masks=[mask])
    assert np.all(o[:, :, :3] == 0.0) and np.all(lse[:, :, :3] == NEG_INF)


def test_fully_masked_rows_document():
    q, k, v = make_qkv(8, B=1, Sq=3, Sk=4)
    qseg = np.array([[0, 5, 1]], np.int32)
    kseg = np.array([[0, 0, 1, 1]], np.int32)
    o, lse = compare(q, k, v, masks=[ref.document(0, 1)],
                     captures=(qseg, kseg))
    assert np.all(o[:, :, 1] == 0.0) and np.all(lse[:, :, 1] == NEG_INF)


@pytest.mark.parametrize("norm", ref.SOFTMAX_FAMILY)
def test_fully_masked_rows_with_sink_logits(norm):
    q, k, v = make_qkv(9, Sq=4)
    c = np.array([0.3, -1.2])
    o, lse = compare(q, k, v, normalization=norm, sink_logits=c,
                     mask_mod=_empty_rows_mask)
    assert np.all(o[:, :, 1] == 0.0)
    extra = 1.0 if norm == "softmax1" else 0.0
    for h in range(2):
        np.testing.assert_allclose(lse[:, h, 1],
                                   math.log(extra + math.exp(c[h])),
                                   rtol=1e-14)


@pytest.mark.parametrize("norm", ref.NORMALIZATIONS)
def test_masked_rows_still_see_sink_rows(norm):
    q, k, v = make_qkv(10, Sq=4)
    sk, sv = make_sink_rows(10, 2, 2, 4, 3)
    o, lse = compare(q, k, v, normalization=norm, sink_key=sk, sink_value=sv,
                     mask_mod=_empty_rows_mask)
    if norm not in ("relu", "relu2"):   # those may zero every sink weight
        assert np.all(o[:, :, 1] != 0.0)
    if norm == "mean":  # n = 2 sink rows
        np.testing.assert_allclose(lse[:, :, 1], math.log(2), rtol=1e-15)
        for h in range(2):
            np.testing.assert_allclose(o[:, h, 1], np.broadcast_to(
                sv[h].mean(axis=0), o[:, h, 1].shape), rtol=1e-14)


def test_scalable_softmax_single_key():
    # n = 1: log(n) = 0, the one key gets exp(0) / Z = 1.
    q, k, v = make_qkv(11, Sq=4)
    o, lse = compare(q, k, v, normalization="scalable_softmax",
                     masks=[ref.causal()])
    np.testing.assert_allclose(o[:, :, 0], v[:, :, 0], rtol=1e-15)
    assert np.all(lse[:, :, 0] == 0.0)


# ---------------------------------------------------------------------------
# Large magnitudes
# ---------------------------------------------------------------------------

def _exact(q, k, v, **kw):
    return bf_attention(q, k, v, exact=True, **kw)


@pytest.mark.parametrize("norm", ["softmax", "softmax1", "scalable_softmax"])
def test_rbf_large_norm_keys(norm):
    # Keys of norm ~1e3, queries of norm ~1: all scores near -gamma * 1e6,
    # exp() of every one underflows in float64; the weights are still well
    # defined (shift invariance) and the exact Decimal evaluation gives them.
    rng = np.random.default_rng(12)
    B, H, S, D = 1, 2, 5, 4
    q = rng.standard_normal((B, H, S, D))
    dirs = rng.standard_normal((B, H, S, D))
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    k = dirs * (1000.0 + rng.uniform(0, 2, (B, H, S, 1)))
    v = rng.standard_normal((B, H, S, 3))
    kw = dict(score="rbf", gamma=0.25, normalization=norm,
              masks=[ref.causal()])
    o, lse = ref.attention(q, k, v, return_lse=True, **kw)
    assert np.all(np.isfinite(o)) and np.all(np.isfinite(lse))
    eo, else_ = _exact(q, k, v, **kw)
    np.testing.assert_allclose(o, eo, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lse, else_, rtol=1e-12)
    if norm == "softmax":
        assert np.all(lse < -1e5)


def test_rbf_large_norm_common_center():
    # q and k clustered around a far-away centre (|x| ~ 1e3): the RBF score
    # is small and must come from the differences, not |q|^2 + |k|^2 - 2q.k.
    rng = np.random.default_rng(13)
    B, H, S, D = 1, 2, 6, 4
    center = rng.standard_normal(D) * 600.0
    q = center + rng.standard_normal((B, H, S, D))
    k = center + rng.standard_normal((B, H, S, D))
    v = rng.standard_normal((B, H, S, 3))
    kw = dict(score="rbf", masks=[ref.sliding_window(2, 2)])
    o, lse = ref.attention(q, k, v, return_lse=True, **kw)
    eo, else_ = _exact(q, k, v, **kw)
    np.testing.assert_allclose(o, eo, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(lse, else_, rtol=1e-11, atol=1e-13)
    # Mathematically equal form: centring both sides changes nothing.
    o2 = ref.attention(q - center, k - center, v, **kw)
    np.testing.assert_allclose(o, o2, rtol=1e-11, atol=1e-13)


def _shift(s, b, h, i, j):
    return s + (-10**6)


@pytest.mark.parametrize("with_rows", [False, True])
@pytest.mark.parametrize("with_logits", [False, True])
@pytest.mark.parametrize("norm", ["softmax", "softmax1", "scalable_softmax"])
def test_scores_near_minus_1e6_with_sinks(norm, with_logits, with_rows):
    # Regular scores around -1e6 (score_mod), sink logits and/or sink rows
    # of moderate size: the row max must include the sinks.
    q, k, v = make_qkv(14, Sq=4)
    sk, sv = make_sink_rows(14, 2, 2, 4, 3)
    kw = dict(normalization=norm, score_mod=_shift, masks=[ref.causal()])
    if with_logits:
        kw["sink_logits"] = np.array([0.2, -0.4])
    if with_rows:
        kw.update(sink_key=sk, sink_value=sv)
    o, lse = ref.attention(q, k, v, return_lse=True, **kw)
    eo, else_ = _exact(q, k, v, **kw)
    assert np.all(np.isfinite(o)) and np.all(np.isfinite(lse))
    # s - 1e6 rounded to float64 carries ~1e-10 absolute error; the exact
    # evaluation does not round it, hence rtol 1e-9 on O.
    np.testing.assert_allclose(o, eo, rtol=1e-9, atol=5e-10)
    np.testing.assert_allclose(lse, else_, rtol=1e-12, atol=1e-14)


def test_all_scores_near_minus_1e6_softmax_is_shift_invariant():
    # Every candidate (keys and sink logit) shifted by -1e6: softmax weights
    # equal the unshifted ones, lse drops by exactly 1e6.
    q, k, v = make_qkv(15, Sq=5)
    c = np.array([0.2, -0.4])
    kw = dict(masks=[ref.causal(), ref.sliding_window(2), ref.sink_tokens(1)])
    o1, l1 = ref.attention(q, k, v, score_mod=_shift, sink_logits=c - 1e6,
                           return_lse=True, **kw)
    o0, l0 = ref.attention(q, k, v, sink_logits=c, return_lse=True, **kw)
    np.testing.assert_allclose(o1, o0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(l1 + 1e6, l0, rtol=0, atol=1e-9)
    eo, else_ = _exact(q, k, v, score_mod=_shift, sink_logits=c - 1e6, **kw)
    np.testing.assert_allclose(o1, eo, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(l1, else_, rtol=1e-14)


def test_sigmoid_extreme_scores_do_not_overflow():
    q, k, v = make_qkv(16, Sq=3)
    with np.errstate(all="raise"):
        o = ref.attention(q, k, v, normalization="sigmoid", score_mod=_shift)
    np.testing.assert_array_equal(o, 0.0 * o)   # sigmoid(-1e6) = 0 exactly


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------

def test_invalid_arguments_raise():
    q, k, v = make_qkv(17, Hq=3, Hkv=3)
    with pytest.raises(ValueError):
        ref.attention(q, k[:, :2], v[:, :2])                # 3 % 2 != 0
    with pytest.raises(ValueError):
        ref.attention(q, k, v, normalization="sigmoid", return_lse=True)
    with pytest.raises(ValueError):
        ref.attention(q, k, v, normalization="relu", sink_logits=np.ones(3))
    with pytest.raises(ValueError):
        ref.attention(q, k, v, bias=1.0)
    with pytest.raises(ValueError):
        ref.attention(q, k, v, score="rbf", scale=1.0)
    with pytest.raises(ValueError):
        ref.attention(q, k, v, sink_key=np.ones((3, 1, 4)))
    with pytest.raises(ValueError):
        ref.attention(q, k, v, normalization="softmax2")
    with pytest.raises(ValueError):
        ref.attention(q, k[:, :, :4], v[:, :, :4],
                      masks=[ref.neighborhood_1d(3)])       # Sq != Sk


# ---------------------------------------------------------------------------
# Negative controls: the harness notices wrong semantics
# ---------------------------------------------------------------------------

def _mismatch(ref_kw, bf_kw, seed=18, shape=None):
    q, k, v = make_qkv(seed, **(shape or {}))
    o = ref.attention(q, k, v, **ref_kw)
    bo, _ = bf_attention(q, k, v, **bf_kw)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(o, bo, rtol=RTOL, atol=ATOL)


def test_harness_detects_wrong_alignment():
    _mismatch(dict(masks=[ref.causal("bottom_right")]),
              dict(masks=[ref.causal("top_left")]), shape=dict(Sq=3, Sk=6))


def test_harness_detects_wrong_dilation():
    _mismatch(dict(masks=[ref.neighborhood_1d(3, 2)]),
              dict(masks=[ref.neighborhood_1d(3, 1)]), shape=dict(Sq=8))


def test_harness_detects_dropped_sink_tokens():
    m = [ref.causal(), ref.sliding_window(1)]
    _mismatch(dict(masks=m + [ref.sink_tokens(1)]), dict(masks=m),
              shape=dict(Sq=6))


def test_harness_detects_wrong_normalization():
    _mismatch(dict(normalization="softmax1"), dict(normalization="softmax"))


def test_harness_detects_dropped_sink_logits():
    _mismatch(dict(sink_logits=np.array([0.5, 0.1])), dict())


def test_harness_detects_dropped_sink_rows():
    sk, sv = make_sink_rows(18, 2, 1, 4, 3)
    _mismatch(dict(sink_key=sk, sink_value=sv), dict())


def test_harness_detects_wrong_kv_head_mapping():
    _mismatch(dict(), dict(kv_head=lambda h, Hq, Hkv: h % Hkv),
              shape=dict(Hq=4, Hkv=2))


def test_harness_detects_score_mod_on_sink_rows():
    # Applying the score region to the sink rows as well must be noticed.
    sk, sv = make_sink_rows(18, 2, 2, 4, 3)
    q, k, v = make_qkv(18)

    def plus(s, b, h, i, j):
        return s + 1.5

    o = ref.attention(q, k, v, sink_key=sk, sink_value=sv, score_mod=plus)
    # Same scores on keys and sink rows shifted alike == no score_mod at all.
    wrong = ref.attention(q, k, v, sink_key=sk, sink_value=sv)
    bo, _ = bf_attention(q, k, v, sink_key=sk, sink_value=sv, score_mod=plus)
    np.testing.assert_allclose(o, bo, rtol=RTOL, atol=ATOL)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(wrong, bo, rtol=RTOL, atol=ATOL)
