"""Keys a query cannot see do not influence its output (issue 11 item 6).

Packed documents and paged caches hold garbage in the key/value rows a
query may not see. docs/semantics.md §5 sums over the visible keys only, so
a NaN or an infinity in a masked K or V row must not reach the rows that
cannot see it (``0 * NaN`` is NaN: a lowering that multiplies a masked
value row by a zero weight breaks this).

Each case poisons some K and V rows of seeded random inputs (odd sizes,
GQA) with NaN and +-inf, runs ``attn-run`` with ``--lowering=loops`` and
``--lowering=flash`` (default tiles and an odd 5 x 7 tiling, so that
poisoned keys fall inside tiles that are only partly visible), and checks:

* every row that sees no poisoned key is finite and equals the float64
  reference computed on the *clean* inputs;
* every row that sees a NaN value row is NaN (the poison is live, and
  visible keys are not dropped);
* the float64 reference itself (``reference.attention`` on the poisoned
  inputs) agrees with both statements.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import numpy as np
import pytest

from attn_mlir import dsl
from attn_mlir import reference as ref


@dataclass(frozen=True)
class Poison:
    """One poisoned row: ``tensor[b, hk, j, :] = value``."""
    tensor: str  # "k" or "v"
    b: int
    hk: int
    j: int
    value: float


@dataclass(frozen=True)
class Case:
    name: str
    variant: dsl.Variant
    poison: Tuple[Poison, ...]
    B: int = 2
    Hq: int = 4
    Hkv: int = 2
    Sq: int = 45
    Sk: int = 45
    Dqk: int = 24
    Dv: int = 16
    # (rng, case) -> captured tensors
    captures: Optional[Callable] = None
    # extra poison: (rng, case, captures) -> rows to poison
    poison_fn: Optional[Callable] = None
    tol: float = 1e-5
    extra: dict = field(default_factory=dict)


NAN, INF = float("nan"), float("inf")


def _segments(rng, c):
    """Sorted segment ids of 3 documents per batch (one capture, Sq == Sk)."""
    seg = np.sort(rng.integers(0, 3, size=(c.B, c.Sk)), axis=-1)
    return [seg.astype(np.int32)]


def _docs_and_lengths(rng, c):
    seg = _segments(rng, c)[0]
    return [seg, np.array([c.Sk - 9, c.Sk - 20], np.int32)]


def _poison_padding(rng, c, caps):
    """Every K and V row past the length (masked by the key padding)."""
    lens = caps[1]
    rows = []
    for b in range(c.B):
        for hk in range(c.Hkv):
            for j in range(int(lens[b]), c.Sk):
                rows.append(Poison("v", b, hk, j, NAN if j % 2 else INF))
                rows.append(Poison("k", b, hk, j, -INF if j % 3 else NAN))
    return rows


def _poison_first_document(rng, c, caps):
    """K and V rows in the middle of batch 0's first document, NaN and inf,
    and batch 1's last key (in the last document)."""
    seg = caps[0]
    first = np.nonzero(seg[0] == seg[0, 0])[0]
    j = int(first[len(first) // 2])
    return [Poison("v", 0, 0, j, NAN), Poison("k", 0, 1, j, INF),
            Poison("v", 1, 1, c.Sk - 1, -INF), Poison("k", 1, 0, c.Sk - 1, NAN)]


@dsl.mask(captures={"lengths": "i32"})
def key_padding(b, h, q_idx, kv_idx, lengths):
    return kv_idx < lengths[b]


@dsl.variant(masks=[dsl.causal()])
def softcap_causal(score, b, h, q_idx, kv_idx):
    return 30.0 * dsl.tanh(score / 30.0)


CAUSAL_POISON = (Poison("v", 0, 0, 40, NAN), Poison("v", 1, 1, 29, INF),
                 Poison("k", 0, 1, 33, NAN), Poison("k", 1, 0, 35, INF),
                 Poison("v", 1, 0, 44, -INF), Poison("k", 1, 1, 17, -INF))

CASES = [
    Case("causal_softmax", dsl.Variant("c", masks=[dsl.causal()]),
         CAUSAL_POISON),
    Case("causal_softcap", softcap_causal, CAUSAL_POISON),
    Case("causal_sigmoid", dsl.Variant("cs", masks=[dsl.causal()],
                                       normalization="sigmoid", bias=-1.5),
         CAUSAL_POISON),
    Case("causal_none", dsl.Variant("cn", masks=[dsl.causal()],
                                    normalization="none"),
         CAUSAL_POISON),
    Case("causal_scalable_softmax",
         dsl.Variant("css", masks=[dsl.causal()],
                     normalization="scalable_softmax", length_scale=0.7),
         CAUSAL_POISON),
    # Sq != Sk: key j is visible to query i iff j <= i + Sk - Sq.
    Case("bottom_right_softmax1",
         dsl.Variant("br", masks=[dsl.causal("bottom_right")],
                     normalization="softmax1"),
         (Poison("v", 0, 1, 49, NAN), Poison("k", 1, 0, 40, NAN),
          Poison("v", 1, 1, 38, INF)),
         Sq=21, Sk=50),
    # Sink tokens and a window: keys in the middle are visible to a few
    # queries only.
    Case("streaming_mean",
         dsl.Variant("sm", masks=[dsl.causal(), dsl.sink_tokens(2),
                                  dsl.sliding_window(7)],
                     normalization="mean"),
         (Poison("v", 0, 0, 20, NAN), Poison("k", 0, 1, 12, NAN),
          Poison("v", 1, 1, 30, INF), Poison("v", 1, 0, 3, NAN)),
         Sq=41, Sk=41),
    Case("window_relu2",
         dsl.Variant("wr", masks=[dsl.sliding_window(5, 3)],
                     normalization="relu2"),
         (Poison("v", 0, 0, 20, NAN), Poison("k", 1, 1, 11, INF),
          Poison("v", 1, 0, 36, -INF)),
         Sq=39, Sk=39),
    # Packed documents: garbage in one document must not reach the others.
    Case("document_softmax",
         dsl.Variant("d", masks=[dsl.document("seg")],
                     captures={"seg": "tensor<?x?xi32>"}),
         (), Sq=53, Sk=53, captures=_segments,
         poison_fn=_poison_first_document),
    # Paged cache: every row past each batch's length is garbage.
    Case("document_causal_padding",
         dsl.Variant("dp", mask_mod=key_padding,
                     masks=[dsl.causal(), dsl.document("seg")],
                     captures={"seg": "i32", "lengths": "i32"}),
         (), Sq=53, Sk=53, captures=_docs_and_lengths,
         poison_fn=_poison_padding),
]


@dataclass
class Prepared:
    case: Case
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    clean: Tuple[np.ndarray, np.ndarray, np.ndarray]
    caps: list
    sees: np.ndarray        # [B, Hq, Sq]: the row sees some poisoned key
    sees_nan_v: np.ndarray  # [B, Hq, Sq]: the row sees a NaN value row
    want: np.ndarray        # float64 reference on the clean inputs


def prepare(c: Case) -> Prepared:
    rng = np.random.default_rng(zlib.crc32(c.name.encode()))
    q = rng.standard_normal((c.B, c.Hq, c.Sq, c.Dqk)).astype(np.float32)
    k = rng.standard_normal((c.B, c.Hkv, c.Sk, c.Dqk)).astype(np.float32)
    v = rng.standard_normal((c.B, c.Hkv, c.Sk, c.Dv)).astype(np.float32)
    caps = c.captures(rng, c) if c.captures else []
    poison = list(c.poison) + (list(c.poison_fn(rng, c, caps))
                               if c.poison_fn else [])
    assert poison
    kw = c.variant.reference_kwargs()
    vis = ref.visibility(c.B, c.Hq, c.Sq, c.Sk, kw["masks"], caps,
                         kw["mask_mod"])
    G = c.Hq // c.Hkv
    sees = np.zeros((c.B, c.Hq, c.Sq), bool)
    sees_nan_v = np.zeros_like(sees)
    pk, pv = k.copy(), v.copy()
    for p in poison:
        (pk if p.tensor == "k" else pv)[p.b, p.hk, p.j, :] = p.value
        for h in range(p.hk * G, (p.hk + 1) * G):
            sees[p.b, h] |= vis[p.b, h, :, p.j]
            if p.tensor == "v" and np.isnan(p.value):
                sees_nan_v[p.b, h] |= vis[p.b, h, :, p.j]
    want = c.variant.reference(q, k, v, *caps)
    return Prepared(c, q, pk, pv, (q, k, v), caps, sees, sees_nan_v, want)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def prepared(request):
    return prepare(request.param)


def check(p: Prepared, out: np.ndarray):
    out = np.asarray(out, dtype=np.float64)
    clean = ~p.sees
    assert clean.any() and not np.isfinite(p.v).all()
    assert np.all(np.isfinite(out[clean])), (
        f"{int((~np.isfinite(out[clean])).any(-1).sum())} rows that see no "
        "poisoned key are not finite")
    scale = max(np.abs(p.want).max(), 1e-30)
    err = np.abs(out[clean] - p.want[clean]).max() / scale
    assert err <= p.case.tol, f"max error {err:.3g} on rows without poison"
    assert np.all(np.isnan(out[p.sees_nan_v]).any(-1)), (
        "a row that sees a NaN value row is not NaN")


def test_reference_ignores_invisible_keys(prepared):
    """The float64 reference on the poisoned inputs: the definition."""
    p = prepared
    with np.errstate(invalid="ignore", over="ignore"):
        got = p.case.variant.reference(p.q, p.k, p.v, *p.caps)
    check(p, got)


def _run(attn_run, p: Prepared, lowering, tiles, tmp_path):
    c = p.case
    text = c.variant.emit_func("f", p.q.shape, p.k.shape, p.v.shape, "f32",
                               captures=p.caps)
    src = tmp_path / "f.mlir"
    src.write_text(text)
    ins = []
    for n, a in enumerate([p.q, p.k, p.v] + list(p.caps)):
        path = tmp_path / f"in{n}.npy"
        np.save(path, np.ascontiguousarray(a))
        ins.append(path)
    out = tmp_path / "o.npy"
    r = attn_run.run(src, "f", lowering=lowering, tiles=tiles, inputs=ins,
                     outputs=[out])
    assert r.returncode == 0, r.stderr
    return np.load(out)


@pytest.mark.parametrize("lowering,tiles", [("loops", None), ("flash", None),
                                            ("flash", (5, 7))],
                         ids=["loops", "flash", "flash-5x7"])
def test_lowerings_ignore_invisible_keys(attn_run, prepared, lowering, tiles,
                                         tmp_path):
    check(prepared, _run(attn_run, prepared, lowering, tiles, tmp_path))


@pytest.mark.parametrize("lowering", ["loops", "flash"])
def test_compiler_attention_causal_nan_row(attn_run, lowering):
    """The issue's reproducer through ``compiler.attention``: under causal, a
    NaN in v[S-1] reaches no row but the last, and an inf in a K row no row
    before it."""
    from attn_mlir import compiler
    rng = np.random.default_rng(11)
    S = 67
    q = rng.standard_normal((1, 2, S, 16)).astype(np.float32)
    k = rng.standard_normal((1, 2, S, 16)).astype(np.float32)
    v = rng.standard_normal((1, 2, S, 16)).astype(np.float32)
    want = ref.attention(q, k, v, masks=[ref.causal()])
    pk, pv = k.copy(), v.copy()
    pv[0, 0, S - 1] = np.nan
    pk[0, 1, 50] = np.inf
    got = compiler.attention(q, pk, pv, variant="causal", lowering=lowering)
    np.testing.assert_allclose(got[0, 0, :S - 1], want[0, 0, :S - 1],
                               rtol=1e-5, atol=1e-5)
    assert np.isnan(got[0, 0, S - 1]).all()
    np.testing.assert_allclose(got[0, 1, :50], want[0, 1, :50], rtol=1e-5,
                               atol=1e-5)


# ---------------------------------------------------------------------------
# The GPU check (bench/invisible_keys_check.py), on the CPU
# ---------------------------------------------------------------------------

def _emulated_kernel(q, k, v, masks, caps, block_m, zero_unseen):
    """O as the GPU kernel forms it: weights p (the reference's, from
    v = identity), then O = P.V per CTA row block with a plain product
    (0 * NaN = NaN), after zeroing the V rows no query of the block sees
    when ``zero_unseen``."""
    B, Hq, Sq, _ = q.shape
    Hkv, Sk = k.shape[1], k.shape[2]
    G = Hq // Hkv
    eye = np.broadcast_to(np.eye(Sk), (B, Hkv, Sk, Sk))
    with np.errstate(invalid="ignore", over="ignore"):
        p = ref.attention(q, k, eye, masks=masks, captures=caps)
        vis = np.broadcast_to(ref.visibility(B, Hq, Sq, Sk, masks, caps),
                              (B, Hq, Sq, Sk))
        o = np.zeros((B, Hq, Sq, v.shape[3]))
        for b in range(B):
            for h in range(Hq):
                for i0 in range(0, Sq, block_m):
                    vb = v[b, h // G].astype(np.float64)
                    if zero_unseen:
                        vb[~vis[b, h, i0:i0 + block_m].any(0)] = 0.0
                    pb = p[b, h, i0:i0 + block_m]
                    o[b, h, i0:i0 + block_m] = (pb[..., None] * vb).sum(-2)
    return o


@pytest.mark.parametrize("masks,Sq,Sk", [
    ([ref.document(0, 0)], 200, 200),
    ([ref.causal(), ref.sliding_window(37)], 200, 200),
    ([ref.causal(), ref.sink_tokens(4), ref.sliding_window(50)], 200, 200),
    ([ref.causal("bottom_right")], 150, 230),
], ids=["document", "window", "streaming", "bottom_right"])
def test_gpu_check_tells_the_kernels_apart(masks, Sq, Sk):
    """bench/invisible_keys_check.py passes a kernel that zeroes the V rows
    its row block does not see and fails one that does not (the kernels
    before the fix), on an emulation of the GPU's P.V (64 x 64 tiles)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import invisible_keys_check as chk
    rng = np.random.default_rng(3)
    B, Hq, Hkv, D = 1, 4, 2, 16
    q = rng.standard_normal((B, Hq, Sq, D))
    k = rng.standard_normal((B, Hkv, Sk, D))
    v = rng.standard_normal((B, Hkv, Sk, D))
    caps = [np.sort(rng.integers(0, 4, (B, Sk)), axis=1)] \
        if masks[0]["kind"] == "document" else []
    want = ref.attention(q, k, v, masks=masks, captures=caps)
    vis = np.broadcast_to(ref.visibility(B, Hq, Sq, Sk, masks, caps),
                          (B, Hq, Sq, Sk))
    for trial in range(3):
        plan = chk.plan_poison(vis, Hq // Hkv, 64, 64, trial)
        pk, pv = plan.apply(k.copy(), v.copy())
        good = _emulated_kernel(q, pk, pv, masks, caps, 64, zero_unseen=True)
        bad = _emulated_kernel(q, pk, pv, masks, caps, 64, zero_unseen=False)
        r = chk.evaluate(plan, good, want)
        assert r["ok"] and r["guaranteed_rows"] >= B * Hq * Sq // 4, r
        assert not chk.evaluate(plan, bad, want)["ok"]
