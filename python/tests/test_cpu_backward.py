"""The CPU lowerings of ``attn.attention_grad`` against the float64 reference.

Every case runs ``compiler.attention_grad`` (``attn-run`` on the function
``variant.emit_grad_func`` prints) with ``lowering="loops"`` (the literal
definition) and ``lowering="flash"`` (the tiled FlashAttention-2 order) on
seeded random inputs, and compares every gradient with
``reference.attention_backward`` evaluated in float64 on exactly the values
the kernel sees. The forward's ``O`` and ``lse`` handed to the op are the
reference's, rounded to what the op takes (``O`` in the input type, ``lse``
in f32), so nothing of the compiler's own forward enters the comparison;
one case feeds the compiled forward's instead.

Tolerances (``check_grads``), per gradient ``g`` with reference ``r``:
elementwise ``|g - r| <= RTOL |r| + ATOL max|r|`` (f32: 1e-4 and 1e-5;
bf16: the result is rounded once, so 2^-8 and 2e-2 for the inputs' and
dO's rounding carried through f32 sums). Nothing is ever NaN; queries that
see nothing contribute exactly 0.

The score-region gradients are also checked by central finite differences
of the compiled forward (``compiler.attention`` in f32): perturbing a
capture element changes ``L = sum(dO * O) + sum(dlse * lse)`` by what
``d_captures`` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np
import pytest

from attn_mlir import compiler, dsl, variants
from attn_mlir import reference as ref

from test_cpu_lowerings import round_to

LOWERINGS = ("loops", "flash")

#: B, Hq, Hkv, Sq, Sk, Dqk, Dv: GQA, Sq != Sk, Dqk != Dv, odd sizes.
SMALL = (2, 4, 2, 11, 13, 6, 5)
ODD = (1, 2, 1, 37, 53, 24, 20)

TOL = {"f32": (1e-4, 1e-5), "bf16": (2.0 ** -8, 2e-2)}


@dataclass
class Case:
    """One backward to check: a variant (a library name or a DSL variant),
    shapes and how the inputs are drawn."""
    variant: object
    shape: Tuple[int, ...] = SMALL
    dtype: str = "f32"
    #: Captures from the shape (a function of B, Hq, Sq, Sk and an rng).
    captures: Callable = lambda B, Hq, Sq, Sk, rng: []
    sink_logits: bool = False
    sink_rows: int = 0
    grad_lse: bool = False
    q_scale: float = 1.0
    seed: int = 0
    #: Whether some query sees nothing (its gradients must be exactly 0).
    masked_rows: bool = False
    #: Pass the lse under mean (accepted, not needed).
    mean_lse: bool = False


def _variant(case: Case):
    return compiler.resolve_variant(case.variant)


def _inputs(case: Case):
    B, Hq, Hkv, Sq, Sk, D, Dv = case.shape
    rng = np.random.default_rng(case.seed)
    x = {"q": case.q_scale * rng.standard_normal((B, Hq, Sq, D)),
         "k": rng.standard_normal((B, Hkv, Sk, D)),
         "v": rng.standard_normal((B, Hkv, Sk, Dv)),
         "do": rng.standard_normal((B, Hq, Sq, Dv))}
    x = {n: round_to(a, case.dtype).astype(np.float32) for n, a in x.items()}
    caps = case.captures(B, Hq, Sq, Sk, rng)
    sinks = {}
    if case.sink_logits:
        sinks["sink_logits"] = rng.standard_normal(Hq).astype(np.float32)
    if case.sink_rows:
        for name, d in (("sink_key", D), ("sink_value", Dv)):
            sinks[name] = round_to(rng.standard_normal(
                (Hkv, case.sink_rows, d)), case.dtype).astype(np.float32)
    dlse = rng.standard_normal((B, Hq, Sq)).astype(np.float32) \
        if case.grad_lse else None
    return x, caps, sinks, dlse


def _reference(case: Case, x, caps, sinks, dlse):
    """(O, lse, grads) in float64; O rounded to the input type and lse to
    f32, as the op takes them."""
    var = _variant(case)
    kw = var.reference_kwargs()
    res = ref.attention(x["q"], x["k"], x["v"], captures=caps,
                        return_lse=var.has_lse, **sinks, **kw)
    o, lse = res if var.has_lse else (res, None)
    grads = ref.attention_backward(x["q"], x["k"], x["v"], x["do"],
                                   captures=caps, dlse=dlse, **sinks, **kw)
    o = round_to(o, case.dtype).astype(np.float32)
    if lse is not None:
        lse = lse.astype(np.float32)
    return o, lse, grads


def _fields(grads):
    """(name, array) of every gradient present, captures as d_captures[n]."""
    out = [(n, getattr(grads, n)) for n in
           ("dq", "dk", "dv", "d_sink_logits", "d_sink_key", "d_sink_value")]
    out += [(f"d_captures[{n}]", g) for n, g in enumerate(grads.d_captures)]
    return out


def check_grads(got, want, dtype: str, what: str) -> None:
    rtol, atol = TOL[dtype]
    for (name, g), (_, r) in zip(_fields(got), _fields(want)):
        assert (g is None) == (r is None), f"{what}: {name} presence"
        if g is None:
            continue
        g = np.asarray(g, dtype=np.float64)
        assert g.shape == r.shape, f"{what}: {name} shape"
        assert np.isfinite(g).all(), f"{what}: {name} has NaN/inf"
        scale = max(np.abs(r).max(), 1e-30)
        err = np.abs(g - r)
        bad = err > rtol * np.abs(r) + atol * scale
        assert not bad.any(), (
            f"{what}: {name}: {bad.sum()} elements off, max error "
            f"{err.max():.3g} (max |ref| {scale:.3g})")


def _run(case: Case, lowering: str, x, caps, sinks, dlse, o, lse):
    var = _variant(case)
    give_lse = var.normalization in ref.SOFTMAX_FAMILY or case.mean_lse
    return compiler.attention_grad(
        x["q"], x["k"], x["v"], o, x["do"], variant=var,
        lse=lse if give_lse else None, grad_lse=dlse, captures=caps,
        lowering=lowering, dtype=case.dtype, **sinks)


def _run_tiles(case: Case, tiles, x, caps, sinks, dlse, o, lse, attn_run,
               tmp_path):
    """lowering=flash with the given (q-tile, kv-tile), through attn-run
    directly (compiler.attention_grad takes the default tiles)."""
    var = _variant(case)
    B, Hq, Hkv, Sq, Sk, D, Dv = case.shape
    give_lse = var.normalization in ref.SOFTMAX_FAMILY or case.mean_lse
    text = var.emit_grad_func(
        "g", (B, Hq, Sq, D), (B, Hkv, Sk, D), (B, Hkv, Sk, Dv), case.dtype,
        captures=caps, sink_logits="sink_logits" in sinks,
        sink_rows=case.sink_rows or None, lse=give_lse,
        grad_lse=dlse is not None)
    src = tmp_path / "g.mlir"
    src.write_text(text)
    arrays = [x["q"], x["k"], x["v"], o, x["do"]]
    arrays += [a for a in (lse if give_lse else None, dlse) if a is not None]
    arrays += list(caps) + [sinks[n] for n in
                            ("sink_logits", "sink_key", "sink_value")
                            if n in sinks]
    ins = []
    for n, a in enumerate(arrays):
        ins.append(tmp_path / f"in{n}.npy")
        np.save(ins[-1], a)
    num = 3 + ("sink_logits" in sinks) + 2 * bool(case.sink_rows) + sum(
        c.dtype.kind == "f" for c in caps)
    outs = [tmp_path / f"out{n}.npy" for n in range(num)]
    r = attn_run.run(src, "g", lowering="flash", tiles=tiles, inputs=ins,
                     outputs=outs)
    assert r.returncode == 0, r.stderr
    return compiler._grads_from_results(var, [np.load(p) for p in outs],
                                        x["q"], "sink_logits" in sinks,
                                        bool(case.sink_rows))


def check_case(case: Case, lowerings=LOWERINGS, tiles=(), attn_run=None,
               tmp_path=None) -> None:
    """Both lowerings (default tiles), then lowering=flash with each of
    ``tiles`` (small tiles: many KV tiles, so that tile skipping and
    partially visible tiles are exercised)."""
    x, caps, sinks, dlse = _inputs(case)
    o, lse, want = _reference(case, x, caps, sinks, dlse)
    runs = [(lowering, lambda lowering=lowering: _run(
        case, lowering, x, caps, sinks, dlse, o, lse))
        for lowering in lowerings]
    runs += [(f"flash tiles {t}", lambda t=t: _run_tiles(
        case, t, x, caps, sinks, dlse, o, lse, attn_run, tmp_path))
        for t in tiles]
    for what, run in runs:
        got = run()
        check_grads(got, want, case.dtype, what)
        if case.masked_rows:
            _check_masked_rows(case, got, x, caps)


def _check_masked_rows(case: Case, got, x, caps) -> None:
    """Queries that see nothing have dq == 0 exactly (and the test's case
    has some)."""
    var = _variant(case)
    B, Hq, _, Sq, Sk, _, _ = case.shape
    seen = ref.visibility(B, Hq, Sq, Sk, var.spec.get("masks") or (),
                          caps, var.mask_mod_fn).any(axis=-1)
    assert not seen.all(), "the case has no fully masked row"
    dq = np.asarray(got.dq, dtype=np.float64)
    assert (dq[~seen] == 0.0).all()


# ---------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------

def spec(name, **kw):
    """A DSL variant of the given specification and regions."""
    regions = {k: kw.pop(k) for k in ("score_mod", "mask_mod") if k in kw}
    return dsl.Variant(name, **regions, **kw)


def _slopes(B, Hq, Sq, Sk, rng):
    return [rng.uniform(0.1, 1.0, Hq).astype(np.float32)]


@dsl.variant(captures=["temp"], masks=[ref.causal()])
def learned_softcap(score, b, h, q_idx, kv_idx, temp):
    # A per-head learnable cap: temp[h] * tanh(s / temp[h]).
    return temp[h] * dsl.tanh(score / temp[h])


def _temps(B, Hq, Sq, Sk, rng):
    return [rng.uniform(0.8, 2.0, Hq).astype(np.float32)]


@dsl.variant(captures=["table"], masks=[ref.causal()])
def bias_table(score, b, h, q_idx, kv_idx, table):
    # A learnable [Hq, Sk] additive bias, scaled by a sigmoid gate on s.
    gate = 1.0 / (1.0 + dsl.exp(-score))
    return score + table[h, kv_idx] * gate


def _table(B, Hq, Sq, Sk, rng):
    return [rng.standard_normal((Hq, Sk)).astype(np.float32)]


@dsl.mask
def even_gap(b, h, q_idx, kv_idx):
    return (kv_idx - q_idx) % 3 != 1


def _segments(B, Hq, Sq, Sk, rng):
    # Sorted document ids per batch, for queries and keys apart; the last
    # queries are in document 3, which no key is: they see nothing.
    q = np.sort(rng.integers(0, 3, (B, Sq)), axis=-1).astype(np.int32)
    q[:, -2:] = 3
    k = np.sort(rng.integers(0, 3, (B, Sk)), axis=-1).astype(np.int32)
    return [q, k]


def _segment_runs(B, Hq, Sq, Sk, rng):
    # Runs of 1-6 positions whose ids come back after others (not sorted),
    # queries in [0, 4), keys in [0, 3): a tile's (min, max) intervals can
    # meet without a shared id; queries of id 3 see nothing.
    def runs(n, ids):
        rows = []
        for _ in range(B):
            row = []
            while len(row) < n:
                row += [int(rng.integers(0, ids))] * int(rng.integers(1, 7))
            rows.append(row[:n])
        return np.asarray(rows, np.int32)
    q = runs(Sq, 4)
    q[:, -1] = 3
    return [q, runs(Sk, 3)]


@dsl.mask
def band(b, h, q_idx, kv_idx):
    return (q_idx - kv_idx <= 5) & (kv_idx <= q_idx)


NORMALIZATION_CASES = {
    "softmax": Case(spec("softmax"), shape=ODD),
    "softmax_causal": Case("causal"),
    "softmax1": Case(spec("softmax1", normalization="softmax1",
                          masks=[ref.causal()])),
    "scalable_softmax": Case(spec("ssmax", normalization="scalable_softmax",
                                  length_scale=0.7,
                                  masks=[ref.sliding_window(4, 2)])),
    "sigmoid_bias": Case(spec("sig", normalization="sigmoid", bias=-1.5,
                              masks=[ref.causal()])),
    "relu": Case(spec("relu", normalization="relu")),
    "relu2": Case(spec("relu2", normalization="relu2",
                       masks=[ref.causal()])),
    "none": Case(spec("none", normalization="none")),
    "mean": Case(spec("mean", normalization="mean", masks=[ref.causal()])),
    "mean_with_lse": Case(spec("mean2", normalization="mean"),
                          mean_lse=True),
}


@pytest.mark.parametrize("name", sorted(NORMALIZATION_CASES))
def test_normalizations(attn_run, name):
    check_case(NORMALIZATION_CASES[name])


KERNEL_CASES = {
    "rbf": Case(spec("rbf", score="rbf", masks=[ref.causal()])),
    "rbf_odd_gamma": Case(spec("rbf2", score="rbf", gamma=0.3), shape=ODD),
    "dot_scale": Case(spec("dot", scale=0.4, masks=[ref.causal()])),
    "feature_maps": Case(spec("maps", q_map="elu_plus_one", k_map="relu",
                              masks=[ref.causal()])),
    "linear_mean": Case(spec("lin", q_map="elu_plus_one",
                             k_map="elu_plus_one", normalization="none")),
    "rbf_feature_map_sigmoid": Case(spec("rbfmap", score="rbf",
                                         q_map="relu",
                                         normalization="sigmoid", bias=0.5)),
}


@pytest.mark.parametrize("name", sorted(KERNEL_CASES))
def test_kernels_and_feature_maps(attn_run, name):
    check_case(KERNEL_CASES[name])


MASK_CASES = {
    "causal_bottom_right": Case(spec("cbr", masks=[ref.causal(
        "bottom_right")]), shape=(2, 4, 2, 7, 13, 6, 5)),
    "sliding_window": Case("sliding_window", shape=ODD),
    "document": Case(spec("doc", masks=[dsl.document("qseg", "kseg")],
                          captures={"qseg": "i32", "kseg": "i32"}),
                     captures=_segments, masked_rows=True),
    "document_runs": Case(spec("docr", masks=[dsl.document("qseg", "kseg")],
                               captures={"qseg": "i32", "kseg": "i32"}),
                          captures=_segment_runs, masked_rows=True,
                          shape=(2, 4, 2, 23, 29, 6, 5)),
    "band_region": Case(spec("band", mask_mod=band), shape=ODD),
    "any_of": Case(spec("anyof", masks=[ref.any_of(ref.sliding_window(3),
                                                   ref.prefix_lm(4))]),
                   shape=ODD),
    "sink_tokens": Case(spec("stream", masks=[
        ref.causal(), ref.sliding_window(2), ref.sink_tokens(2)])),
    "neighborhood": Case(spec("nat", masks=[ref.neighborhood_1d(3, 2)]),
                         shape=(1, 2, 2, 13, 13, 6, 5)),
    "mask_region": Case(spec("gap", mask_mod=even_gap,
                             masks=[ref.causal()])),
    "prefix_lm": Case(spec("plm", masks=[ref.prefix_lm(4)])),
    "chunked": Case(spec("chunk", masks=[ref.chunked(4)]),
                    shape=(1, 2, 1, 13, 13, 6, 5)),
}


@pytest.mark.parametrize("name", sorted(MASK_CASES))
def test_masks(attn_run, tmp_path, name):
    check_case(MASK_CASES[name], tiles=[(3, 4)], attn_run=attn_run,
               tmp_path=tmp_path)


@pytest.mark.parametrize("norm", ["softmax", "softmax1", "scalable_softmax",
                                  "sigmoid", "relu2", "mean"])
def test_fully_masked_rows(attn_run, norm):
    """Bottom-right causal with Sq > Sk: the first Sq - Sk queries see no
    key. Their dq is exactly 0, nothing is NaN, the rest matches."""
    check_case(Case(spec(f"fm_{norm}", normalization=norm,
                         masks=[ref.causal("bottom_right")]),
                    shape=(1, 4, 2, 13, 7, 6, 5), masked_rows=True,
                    grad_lse=norm in ("softmax", "scalable_softmax")))


REGION_CASES = {
    "softcap": Case("softcap", q_scale=8.0),
    "alibi": Case("alibi", captures=_slopes),
    "alibi_odd": Case("alibi", captures=_slopes, shape=ODD),
    "learned_softcap": Case(learned_softcap, captures=_temps, q_scale=3.0),
    "bias_table": Case(bias_table, captures=_table, grad_lse=True),
}


@pytest.mark.parametrize("name", sorted(REGION_CASES))
def test_score_regions(attn_run, name):
    check_case(REGION_CASES[name])


SINK_CASES = {
    "sink_logits": Case("gpt_oss_sinks", sink_logits=True),
    "sink_logits_grad_lse": Case("gpt_oss_sinks", sink_logits=True,
                                 grad_lse=True),
    "sink_logits_masked_rows": Case(
        spec("sl_fm", masks=[ref.causal("bottom_right")]),
        shape=(1, 4, 2, 9, 5, 6, 5), sink_logits=True, grad_lse=True),
    "rbf_sink_rows": Case("rbf_sink_rows", sink_rows=3),
    "sink_rows_masked": Case(spec("sr_fm", masks=[ref.causal(
        "bottom_right")]), shape=(1, 4, 2, 9, 5, 6, 5), sink_rows=2,
        sink_logits=True),
    "sigmoid_sink_rows": Case(spec("sig_sr", normalization="sigmoid",
                                   bias=-1.0), sink_rows=2),
    "mqa_sink_rows_scalable": Case(
        spec("ss_sr", normalization="scalable_softmax", masks=[ref.causal()]),
        shape=(2, 3, 1, 9, 9, 6, 5), sink_rows=2, grad_lse=True),
}


@pytest.mark.parametrize("name", sorted(SINK_CASES))
def test_sinks(attn_run, tmp_path, name):
    check_case(SINK_CASES[name], tiles=[(4, 3)], attn_run=attn_run,
               tmp_path=tmp_path)


def test_grad_lse(attn_run):
    check_case(Case(spec("gl", masks=[ref.causal()]), grad_lse=True,
                    shape=ODD))


def test_large_magnitudes(attn_run):
    """Scores in the hundreds: p is nearly one-hot; the exponentials and dS
    stay finite and match."""
    check_case(Case(spec("big", masks=[ref.causal()]), q_scale=40.0,
                    grad_lse=True))


def test_bf16(attn_run):
    check_case(Case("alibi", captures=_slopes, dtype="bf16"))


def test_compiled_forward_feeds_the_backward(attn_run):
    """O and lse from compiler.attention (f32, flash) instead of the
    reference's: the gradients still match the reference."""
    case = Case("alibi", captures=_slopes, grad_lse=True)
    x, caps, sinks, dlse = _inputs(case)
    _, _, want = _reference(case, x, caps, sinks, dlse)
    o, lse = compiler.attention(x["q"], x["k"], x["v"], variant="alibi",
                                captures=caps, return_lse=True)
    for lowering in LOWERINGS:
        got = _run(case, lowering, x, caps, sinks, dlse, o, lse)
        check_grads(got, want, "f32", lowering)


def test_odd_tiles(attn_run, tmp_path):
    """The flash lowering with tiles that divide nothing (3 x 5), single-row
    and single-key tiles, on a causal score region with captures."""
    check_case(Case("alibi", captures=_slopes, shape=(1, 4, 2, 11, 17, 6, 5),
                    grad_lse=True), lowerings=(),
               tiles=[(3, 5), (1, 64), (64, 1)], attn_run=attn_run,
               tmp_path=tmp_path)


# ---------------------------------------------------------------------------
# Finite differences of the compiled forward
# ---------------------------------------------------------------------------

def _compiled_loss(case: Case, x, caps, dlse) -> float:
    """L = sum(dO * O) + sum(dlse * lse) of the compiled f32 forward, in
    float64 sums."""
    o, lse = compiler.attention(x["q"], x["k"], x["v"], variant=case.variant,
                                captures=caps, return_lse=True)
    o, lse = np.float64(o), np.float64(lse)
    lse_term = np.where(np.isfinite(lse), lse * dlse, 0.0)
    return float((o * x["do"]).sum() + lse_term.sum())


@pytest.mark.parametrize("name", ["alibi", "learned_softcap"])
def test_capture_gradients_by_finite_differences(attn_run, name):
    """d_captures of the compiled backward against central differences of
    the compiled forward: perturbing one capture element by h changes L by
    about h * d_captures[m]. f32 forward: the step is large enough that
    rounding (about 1e-7 |L| / h) stays far below the tolerance."""
    check_capture_gradient_by_finite_differences(Case(
        REGION_CASES[name].variant, captures=REGION_CASES[name].captures,
        grad_lse=True, shape=(1, 4, 2, 7, 9, 6, 5), q_scale=2.0))


def check_capture_gradient_by_finite_differences(case: Case) -> None:
    """d_captures[0] of the compiled backward against central differences
    of the compiled forward (see the test above); the differences must not
    all vanish."""
    x, caps, sinks, dlse = _inputs(case)
    o, lse = compiler.attention(x["q"], x["k"], x["v"], variant=case.variant,
                                captures=caps, return_lse=True)
    got = compiler.attention_grad(x["q"], x["k"], x["v"], o, x["do"],
                                  variant=case.variant, lse=lse,
                                  grad_lse=dlse, captures=caps)
    step = 1e-2
    fd = np.zeros_like(caps[0], dtype=np.float64)
    for m in range(caps[0].size):
        plus, minus = caps[0].copy(), caps[0].copy()
        plus.flat[m] += step
        minus.flat[m] -= step
        fd.flat[m] = (_compiled_loss(case, x, [plus], dlse) -
                      _compiled_loss(case, x, [minus], dlse)) / (2 * step)
    g = np.float64(got.d_captures[0])
    assert np.abs(fd).max() > 1e-2, fd
    assert np.abs(g - fd).max() <= 2e-3 * max(np.abs(fd).max(), 1.0), (g, fd)


# ---------------------------------------------------------------------------
# The Python entry point
# ---------------------------------------------------------------------------

def test_torch_cpu_tensors(attn_run):
    torch = pytest.importorskip("torch")
    case = Case("alibi", captures=_slopes)
    x, caps, sinks, dlse = _inputs(case)
    o, lse, want = _reference(case, x, caps, sinks, dlse)
    t = {n: torch.from_numpy(a) for n, a in x.items()}
    got = compiler.attention_grad(
        t["q"], t["k"], t["v"], torch.from_numpy(o), t["do"],
        variant="alibi", lse=torch.from_numpy(lse),
        captures=[torch.from_numpy(caps[0])])
    assert all(isinstance(g, torch.Tensor) and g.dtype == torch.float32
               for g in (got.dq, got.dk, got.dv, got.d_captures[0]))
    numpy = compiler.AttentionGrads(
        got.dq.numpy(), got.dk.numpy(), got.dv.numpy(), None, None, None,
        (got.d_captures[0].numpy(),))
    check_grads(numpy, want, "f32", "torch")


def test_argument_checks():
    x = np.zeros((1, 1, 2, 4), np.float32)
    with pytest.raises(ValueError, match="needs the forward's lse"):
        compiler.attention_grad(x, x, x, x, x, variant="causal")
    with pytest.raises(ValueError, match="defines no lse"):
        compiler.attention_grad(x, x, x, x, x, variant="sigmoid",
                                lse=x[..., 0])
    with pytest.raises(ValueError, match="grad_lse needs lse"):
        compiler.attention_grad(x, x, x, x, x, variant="relu2",
                                grad_lse=x[..., 0])
    with pytest.raises(ValueError, match="lowering"):
        compiler.attention_grad(x, x, x, x, x, variant="causal",
                                lse=x[..., 0], lowering="fast")


def test_integer_captures_get_no_gradient(attn_run):
    case = MASK_CASES["document"]
    x, caps, sinks, dlse = _inputs(case)
    o, lse, _ = _reference(case, x, caps, sinks, dlse)
    got = _run(case, "flash", x, caps, sinks, dlse, o, lse)
    assert got.d_captures == (None, None)
