"""Mask regions decided per tile on the CPU tiled lowering.

The flash lowering evaluates a mask region over each (16-query, 32-key)
tile by interval arithmetic (lib/Conversion/AttnCommon/RegionIntervals.cpp):
tiles it proves hidden are skipped, tiles it proves visible run without
the per-element mask. A wrong verdict drops visible keys or admits hidden
ones, so each mask here is checked against an independent float64 numpy
attention on odd sizes, with rows that see nothing, large scores, and
both the tiled and the literal lowering; the masks are chosen so that
the tiles of every kind occur (hidden, visible, mixed) and so that the
interval rules (add/sub, constant division and remainder, min/max, select,
a capture read by batch) decide some of them. That the lowering branches
on the verdict is test/Conversion/AttnToFlash/region-tiles.mlir.
"""
import numpy as np
import pytest

from attn_mlir import compiler, dsl
from test_dsl import _numpy_attention


def _inputs(B=2, Hq=4, Hkv=2, Sq=93, Sk=101, D=16, Dv=8, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((B, Hq, Sq, D)).astype(np.float32),
            scale * rng.standard_normal((B, Hkv, Sk, D)).astype(np.float32),
            rng.standard_normal((B, Hkv, Sk, Dv)).astype(np.float32))


def _reference(q, k, v, visible):
    """Softmax attention in float64 (test_dsl's); rows that see no key
    give 0."""
    return _numpy_attention(q, k, v, lambda s, *idx: s, visible)


def _close(got, want, tol=2e-5):
    scale = max(float(np.max(np.abs(want))), 1e-30)
    assert np.all(np.isfinite(got))
    err = float(np.max(np.abs(got - want)))
    assert err <= tol * scale, f"max error {err:.3g} vs scale {scale:.3g}"


LENS = np.array([70, 9], np.int32)

#: (name, DSL mask, numpy visibility, captures)
MASKS = [
    ("causal", lambda b, h, q, kv: kv <= q,
     lambda b, h, i, j: j <= i, ()),
    ("window", lambda b, h, q, kv: (q - kv <= 17) & (kv <= q),
     lambda b, h, i, j: (i - j <= 17) & (j <= i), ()),
    ("blocks", lambda b, h, q, kv: q // 24 == kv // 24,
     lambda b, h, i, j: i // 24 == j // 24, ()),
    ("prefix_or_causal", lambda b, h, q, kv: (kv < 10) | (kv <= q),
     lambda b, h, i, j: (j < 10) | (j <= i), ()),
    ("late_start", lambda b, h, q, kv: kv <= q - 40,
     lambda b, h, i, j: j <= i - 40, ()),
    ("dilated", lambda b, h, q, kv: ((q - kv) % 3 == 0) & (kv <= q),
     lambda b, h, i, j: ((i - j) % 3 == 0) & (j <= i), ()),
    ("periodic_keys", lambda b, h, q, kv: kv % 64 < 40,
     lambda b, h, i, j: j % 64 < 40, ()),
    ("clamped_band",
     lambda b, h, q, kv: kv >= dsl.clamp(q - 30, 0, 50),
     lambda b, h, i, j: j >= np.clip(i - 30, 0, 50), ()),
    ("not_causal", lambda b, h, q, kv: ~(kv > q),
     lambda b, h, i, j: ~(j > i), ()),
    ("head_dependent", lambda b, h, q, kv: kv <= q + 8 * h - 20,
     lambda b, h, i, j: j <= i + 8 * h - 20, ()),
]


@pytest.mark.parametrize("name,mask,visible", [
    pytest.param(n, m, vis, id=n) for n, m, vis, _ in MASKS])
@pytest.mark.parametrize("lowering", ["flash", "loops"])
def test_region_masks_against_float64(attn_run, name, mask, visible,
                                      lowering):
    var = dsl.mask(mask)
    for seed, scale in ((1, 1.0), (2, 6.0)):
        q, k, v = _inputs(seed=seed, scale=scale)
        got = compiler.attention(q, k, v, variant=var, lowering=lowering)
        _close(got, _reference(q, k, v, visible))


def test_capture_read_by_batch(attn_run):
    """Keys past a per-batch length (a capture read at b): whole tiles past
    the length are hidden, batch 1 leaves most of them."""
    @dsl.mask
    def padded(b, h, q_idx, kv_idx, lens=LENS):
        return (kv_idx < lens[b]) & (kv_idx <= q_idx + 30)
    q, k, v = _inputs(seed=3)
    for lowering in ("flash", "loops"):
        got = compiler.attention(q, k, v, variant=padded, captures=[LENS],
                                 lowering=lowering)
        _close(got, _reference(
            q, k, v,
            lambda b, h, i, j: (j < LENS[b]) & (j <= i + 30)))
