"""Executable semantics on the CPU: attn-run against the float64 reference.

Every case below is one ``attn.attention`` (emitted by ``attn_mlir.emit``),
run through ``attn-run`` with ``--lowering=loops`` and ``--lowering=flash``
(default tiles, and odd tilings such as ``--q-tile=3 --kv-tile=5``) on seeded
random inputs, and compared with ``attn_mlir.reference.attention`` evaluated
in float64 on exactly the values the kernel sees (f16/bf16 inputs are
rounded to their type first).

Tolerances (``check_outputs``):

* f32: ``||O - ref|| / ||ref|| <= 1e-5`` and elementwise
  ``|O - ref| <= 1e-5 * max|ref|``.
* f16 / bf16: the result is rounded to the type once, at the end (all
  arithmetic is f32), so elementwise ``|O - ref| <= u |ref| + 1e-5 max|ref|``
  with ``u`` the unit roundoff (2^-11, 2^-8) and
  ``||O - ref|| / ||ref|| <= 2e-3 / 1e-2``.
* ``lse`` (f32 whatever the inputs): the same ``-inf`` positions as the
  reference, and ``|lse - ref| <= 1e-5 (1 + |ref|)`` on finite entries.
* Queries that see nothing (no visible key, no sink rows) have ``O == 0``
  exactly, for every normalization; nothing is ever NaN.

Cases with a larger tolerance say why next to it.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import numpy as np
import pytest

from attn_mlir import reference as ref
from attn_mlir.emit import emit_attention_func

# ---------------------------------------------------------------------------
# Rounding to the kernel's input precision
# ---------------------------------------------------------------------------

UNIT_ROUNDOFF = {"f32": 2.0 ** -24, "f16": 2.0 ** -11, "bf16": 2.0 ** -8}
REL_L2_TOL = {"f32": 1e-5, "f16": 2e-3, "bf16": 1e-2}


def round_bf16(x) -> np.ndarray:
    """float32 -> nearest bfloat16 (ties to even), returned as float32.

    Keeps the top 16 bits of the float32 after adding ``0x7fff`` plus the
    lowest kept bit (round half to even); inputs are finite."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def round_to(x, dtype: str) -> np.ndarray:
    """``x`` rounded to ``dtype`` and held in the numpy type attn-run reads
    for it: float32 for f32 and bf16 (bf16 values, exactly), float16 for
    f16."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "f32":
        return x
    if dtype == "f16":
        return x.astype(np.float16)
    if dtype == "bf16":
        return round_bf16(x)
    raise ValueError(dtype)


def test_round_bf16():
    x = np.array([1.0, 1.00390625, 1.005859375, 1.0078125 + 2.0 ** -8,
                  -3.14159, 1e-30, 3e38], dtype=np.float32)
    # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
    # 1 + 3 * 2^-9 rounds up to 1 + 2^-7.
    # 1 + 2^-7 + 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up.
    want = [1.0, 1.0, 1.0078125, 1.015625]
    got = round_bf16(x)
    assert got[:4].tolist() == want
    assert np.all(got.view(np.uint32) & 0xFFFF == 0)
    assert np.all(np.abs(got - x) <= 2.0 ** -8 * np.abs(x))


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Region:
    """A score_mod / mask_mod: the MLIR block body (``attn_mlir.emit``
    conventions: ``%s %b %h %i %j %cap0...``) and the same function for the
    reference (vectorised, see ``reference.py``)."""
    mlir: str
    py: Callable


@dataclass(frozen=True)
class Case:
    name: str
    B: int = 2
    Hq: int = 4
    Hkv: int = 2
    Sq: int = 37
    Sk: int = 53
    Dqk: int = 24
    Dv: int = 16
    dtype: str = "f32"
    spec: dict = field(default_factory=dict)   # score ... length_scale
    masks: tuple = ()
    sink_logits: bool = False
    sink_rows: Optional[int] = None            # Ns
    sink_init: str = "random"                  # random | zero | zero_key
    captures: Optional[Callable] = None        # (rng, case) -> [arrays]
    score_mod: Optional[Region] = None
    mask_mod: Optional[Region] = None
    return_lse: bool = False
    q_mult: float = 1.0
    k_mult: float = 1.0
    inputs: Optional[Callable] = None          # (rng, case, q, k, v) -> q, k, v
    expect_empty: bool = False                 # must have fully masked rows
    rel_tol: Optional[float] = None            # replaces 1e-5 (f32 part)
    lse_tol: float = 1e-5
    sweep: bool = False                        # also the unusual flash tilings

    @property
    def normalization(self) -> str:
        return self.spec.get("normalization", "softmax")


CASES = []


def case(name, **kw):
    c = Case(name, **kw)
    assert c.name not in {x.name for x in CASES}, name
    if c.return_lse:
        assert c.normalization in ref.LSE_NORMALIZATIONS, name
    CASES.append(c)
    return c


def variants(base: Case, dtypes=("f16", "bf16")):
    """f16 / bf16 copies of a case."""
    for dt in dtypes:
        CASES.append(dataclasses.replace(base, name=f"{base.name}_{dt}",
                                         dtype=dt))


# -- regions ----------------------------------------------------------------

ALIBI = Region(
    """
    %m = tensor.extract %cap0[%h] : tensor<4xf32>
    %ii = arith.index_cast %i : index to i64
    %jj = arith.index_cast %j : index to i64
    %d = arith.subi %jj, %ii : i64
    %df = arith.sitofp %d : i64 to f32
    %t = arith.mulf %m, %df : f32
    %r = arith.addf %s, %t : f32
    attn.yield %r : f32
    """,
    lambda s, b, h, i, j, slopes, *rest: s + slopes[h] * (j - i))

SOFTCAP = Region(
    """
    %cap = arith.constant 30.0 : f32
    %x = arith.divf %s, %cap : f32
    %t = math.tanh %x : f32
    %r = arith.mulf %t, %cap : f32
    attn.yield %r : f32
    """,
    lambda s, b, h, i, j, *caps: 30.0 * np.tanh(s / 30.0))

# s = -inf where (i + j) % 4 == 0 (row 0 under causal: every score -inf)
NEG_INF_MOD = Region(
    """
    %c0 = arith.constant 0 : index
    %c4 = arith.constant 4 : index
    %ninf = arith.constant 0xFF800000 : f32
    %u = arith.addi %i, %j : index
    %r = arith.remui %u, %c4 : index
    %p = arith.cmpi eq, %r, %c0 : index
    %y = arith.select %p, %ninf, %s : f32
    attn.yield %y : f32
    """,
    lambda s, b, h, i, j, *caps: np.where((i + j) % 4 == 0, -np.inf, s))

# visible iff (i + 2j + h) % 3 != 0
MASK_PATTERN = Region(
    """
    %c0 = arith.constant 0 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %t = arith.muli %j, %c2 : index
    %u = arith.addi %i, %t : index
    %w = arith.addi %u, %h : index
    %r = arith.remui %w, %c3 : index
    %p = arith.cmpi ne, %r, %c0 : index
    attn.yield %p : i1
    """,
    lambda b, h, i, j, *caps: (i + 2 * j + h) % 3 != 0)

# query rows with (i + b) % 5 == 2 see nothing
MASK_EMPTY_ROWS = Region(
    """
    %c2 = arith.constant 2 : index
    %c5 = arith.constant 5 : index
    %u = arith.addi %i, %b : index
    %r = arith.remui %u, %c5 : index
    %p = arith.cmpi ne, %r, %c2 : index
    attn.yield %p : i1
    """,
    lambda b, h, i, j, *caps: (i + b) % 5 != 2)


def mask_padding(cap: int) -> Region:
    """Key padding: key j of batch b is visible iff j < lens[b], the lengths
    an i32 capture ``[B]`` (capture #cap)."""
    return Region(
        f"""
        %n = tensor.extract %cap{cap}[%b] : tensor<2xi32>
        %jj = arith.index_cast %j : index to i32
        %p = arith.cmpi slt, %jj, %n : i32
        attn.yield %p : i1
        """,
        lambda b, h, i, j, *caps: j < caps[cap][b])


# -- captures ---------------------------------------------------------------

def alibi_slopes(rng, c):
    return [2.0 ** (-8.0 * (np.arange(c.Hq) + 1) / c.Hq)]


def padding_lens(lens):
    return lambda rng, c: [np.asarray(lens, dtype=np.int32)]


def alibi_and_lens(lens):
    return lambda rng, c: alibi_slopes(rng, c) + [np.asarray(lens, np.int32)]


def shared_segments(rng, c):
    assert c.Sq == c.Sk
    return [np.sort(rng.integers(0, 4, size=(c.B, c.Sk)), axis=-1)
            .astype(np.int32)]


def segments_with_orphans(rng, c):
    """q segment ids in [0, 4), kv segment ids in [0, 3): queries of segment
    3 (at least the last 5 of every batch) have no key."""
    qs = np.sort(rng.integers(0, 4, size=(c.B, c.Sq)), axis=-1)
    qs[:, -5:] = 3
    ks = np.sort(rng.integers(0, 3, size=(c.B, c.Sk)), axis=-1)
    return [qs.astype(np.int32), ks.astype(np.int32)]


def segments_in_runs(rng, c):
    """Runs of 1-20 positions with ids drawn from [0, 4) for the queries
    and [0, 3) for the keys (queries of id 3 see nothing), so an id comes
    back after others (not sorted): a tile's (min, max) interval can meet
    another's without a shared id, and tiles may hold one id or several."""
    out = []
    for n, ids in ((c.Sq, 4), (c.Sk, 3)):
        rows = []
        for _ in range(c.B):
            row = []
            while len(row) < n:
                row += [int(rng.integers(0, ids))] * int(rng.integers(1, 21))
            rows.append(row[:n])
        out.append(np.asarray(rows, np.int32))
    return out


# -- inputs -----------------------------------------------------------------

def large_rbf_keys(rng, c, q, k, v):
    """Keys of norm ~1e3 under RBF: scores ~ -gamma * 1e6."""
    return q, k * (1e3 / np.sqrt(c.Dqk)), v


def large_common_offset(rng, c, q, k, v):
    """q and k share one offset of norm ~1e3: |q - k| stays O(sqrt(D)), but
    |q|^2 + |k|^2 - 2 q.k would cancel ~6 digits."""
    off = rng.standard_normal(c.Dqk) * (1e3 / np.sqrt(c.Dqk))
    return q + off, k + off, v


C = ref.causal
W = ref.sliding_window

# -- score kinds and shapes ---------------------------------------------------
case("dot_default", return_lse=True, sweep=True)
case("dot_scale_d80_mha", B=1, Hq=3, Hkv=3, Dqk=80, Dv=48,
     spec=dict(scale=0.07), return_lse=True, sweep=True)
case("dot_mqa", Hkv=1, Sq=53, Sk=37, return_lse=True)
case("dot_decode", Sq=1, masks=(C("bottom_right"),), return_lse=True)
case("rbf_default", spec=dict(score="rbf"), return_lse=True, sweep=True)
case("rbf_gamma_d80", Dqk=80, Dv=24, spec=dict(score="rbf", gamma=0.02),
     return_lse=True)
case("rbf_mqa_causal", Hkv=1, spec=dict(score="rbf"), masks=(C(),))

# -- feature maps / linear attention ------------------------------------------
case("linear_elu", spec=dict(q_map="elu_plus_one", k_map="elu_plus_one",
                             normalization="none"), sweep=True)
case("linear_relu", spec=dict(q_map="relu", k_map="relu",
                              normalization="none"))
case("linear_mixed_causal", Sq=45, Sk=45, Dqk=80,
     spec=dict(q_map="elu_plus_one", k_map="relu", normalization="none"),
     masks=(C(),))
case("fmap_relu_elu_softmax",
     spec=dict(q_map="relu", k_map="elu_plus_one"), return_lse=True)
case("fmap_elu_rbf", spec=dict(score="rbf", q_map="elu_plus_one",
                               k_map="elu_plus_one"), return_lse=True)

# -- masks, one kind at a time ------------------------------------------------
case("causal_tl_sq_lt_sk", masks=(C(),), return_lse=True, sweep=True)
case("causal_tl_sq_gt_sk", Sq=53, Sk=37, masks=(C(),), return_lse=True)
case("causal_br_sq_lt_sk", masks=(C("bottom_right"),), return_lse=True,
     sweep=True)
case("causal_br_sq_gt_sk", Sq=53, Sk=37, masks=(C("bottom_right"),),
     return_lse=True, expect_empty=True, sweep=True)
case("causal_square", Sq=41, Sk=41, Dqk=80, Dv=40, masks=(C(),),
     return_lse=True)
case("window_tl", masks=(W(5, 3),), return_lse=True, sweep=True)
case("window_br", masks=(W(6, 2, "bottom_right"),), return_lse=True)
case("window_br_sq_gt_sk", Sq=53, Sk=37, masks=(W(4, 0, "bottom_right"),),
     return_lse=True, expect_empty=True)
case("window_tl_sq_gt_sk", Sq=53, Sk=37, masks=(W(2, 3),),
     return_lse=True, expect_empty=True)
case("window_diagonal", masks=(W(0, 0),), return_lse=True)
case("window_causal", Sq=45, Sk=45, masks=(C(), W(7)), return_lse=True)
case("sink_tokens_window", masks=(ref.sink_tokens(3), W(4, 2)),
     return_lse=True, sweep=True)
case("sink_tokens_chunked", masks=(ref.sink_tokens(2), ref.chunked(6)),
     return_lse=True)
case("chunked", masks=(ref.chunked(7),), return_lse=True, sweep=True)
case("chunked_causal", Sq=45, Sk=45, masks=(C(), ref.chunked(8)),
     return_lse=True)
# OR of positional masks: a causal window plus global keys at the start
# (tiles between them hidden, tiles inside either fully visible).
case("any_of_window_prefix", Sq=61, Sk=61,
     masks=(ref.any_of(W(6), ref.prefix_lm(5)),), return_lse=True,
     sweep=True)
case("any_of_chunks_causal_br", Sq=29, Sk=61,
     masks=(C("bottom_right"), ref.any_of(ref.chunked(8, "bottom_right"),
                                          W(3, 0, "bottom_right"))),
     return_lse=True, sweep=True)
case("chunked_br_sq_lt_sk", Sq=29, Sk=61,
     masks=(ref.chunked(8, "bottom_right"),), return_lse=True, sweep=True)
case("chunked_br_causal_sq_gt_sk", Sq=53, Sk=37,
     masks=(C("bottom_right"), ref.chunked(8, "bottom_right")),
     return_lse=True, expect_empty=True, sweep=True)
case("chunked_sq_gt_sk", Sq=53, Sk=37, masks=(ref.chunked(8),),
     return_lse=True, expect_empty=True)
case("nat1d_dilated", Sq=41, Sk=41, masks=(ref.neighborhood_1d(5, 3),),
     return_lse=True, sweep=True)
case("nat1d_k7", Sq=29, Sk=29, Dqk=80, masks=(ref.neighborhood_1d(7),),
     return_lse=True)
case("nat1d_sink_tokens", Sq=41, Sk=41,
     masks=(ref.sink_tokens(2), ref.neighborhood_1d(3, 4)), return_lse=True)
case("nat2d", Sq=35, Sk=35, masks=(ref.neighborhood_2d(7, 5, 3, 5, 2, 1),),
     return_lse=True, sweep=True)
case("nat2d_dilated", Sq=48, Sk=48,
     masks=(ref.neighborhood_2d(6, 8, 3, 3, 2, 2),), return_lse=True,
     sweep=True)
case("nat2d_dilated_causal", Sq=45, Sk=45,
     masks=(C(), ref.neighborhood_2d(5, 9, 3, 3, 1, 3)), return_lse=True)
case("document_shared", Sq=45, Sk=45, masks=(ref.document(0, 0),),
     captures=shared_segments, return_lse=True, sweep=True)
case("document_orphans", masks=(ref.document(0, 1),),
     captures=segments_with_orphans, return_lse=True, expect_empty=True,
     sweep=True)
case("document_runs", Sq=77, Sk=91, masks=(ref.document(0, 1),),
     captures=segments_in_runs, return_lse=True, expect_empty=True,
     sweep=True)
case("document_causal_br", masks=(C("bottom_right"), ref.document(1, 0)),
     captures=lambda rng, c: segments_with_orphans(rng, c)[::-1],
     return_lse=True, expect_empty=True)
case("prefix_lm_tl", masks=(ref.prefix_lm(10),), return_lse=True, sweep=True)
case("prefix_lm_br", masks=(ref.prefix_lm(5, "bottom_right"),),
     return_lse=True)
case("prefix_lm_zero", Sq=45, Sk=45, masks=(ref.prefix_lm(0),),
     return_lse=True)
case("prefix_lm_br_sq_gt_sk", Sq=53, Sk=37,
     masks=(ref.prefix_lm(3, "bottom_right"),), return_lse=True)
case("mask_mod_pattern", mask_mod=MASK_PATTERN, return_lse=True, sweep=True)
case("mask_mod_empty_rows", mask_mod=MASK_EMPTY_ROWS, masks=(C(),),
     return_lse=True, expect_empty=True, sweep=True)
case("mask_mod_padding", Sq=45, Sk=45, masks=(C(),),
     captures=padding_lens([40, 0]), mask_mod=mask_padding(0),
     return_lse=True, expect_empty=True)

# -- normalizations -------------------------------------------------------------
for _norm in ref.NORMALIZATIONS:
    case(f"norm_{_norm}", spec=dict(normalization=_norm), masks=(C(),),
         return_lse=_norm in ref.LSE_NORMALIZATIONS, sweep=True)
    # Every normalization on rows that see nothing (the first Sq - Sk).
    case(f"norm_{_norm}_empty_rows", Sq=53, Sk=37,
         spec=dict(normalization=_norm), masks=(C("bottom_right"),),
         return_lse=_norm in ref.LSE_NORMALIZATIONS, expect_empty=True)
case("norm_scalable_softmax_ls", spec=dict(normalization="scalable_softmax",
                                           length_scale=0.7),
     masks=(W(9, 4),), return_lse=True)
case("norm_sigmoid_bias", spec=dict(normalization="sigmoid", bias=-1.5))
case("norm_relu2_window", spec=dict(normalization="relu2"), masks=(W(6, 6),))
case("norm_none_rbf", spec=dict(score="rbf", normalization="none"))
case("norm_mean_window", spec=dict(normalization="mean"), masks=(W(3, 5),),
     return_lse=True)

# -- sink logits ----------------------------------------------------------------
for _norm in ref.SOFTMAX_FAMILY:
    case(f"sink_logits_{_norm}", spec=dict(normalization=_norm),
         sink_logits=True, masks=(C(),), return_lse=True, sweep=True)
case("sink_logits_softmax1_window", spec=dict(normalization="softmax1"),
     sink_logits=True, masks=(W(4, 4),), return_lse=True)
case("sink_logits_empty_rows", Sq=53, Sk=37, sink_logits=True,
     masks=(C("bottom_right"),), return_lse=True, expect_empty=True)

# -- sink rows ------------------------------------------------------------------
for _norm in ref.NORMALIZATIONS:
    case(f"sink_rows_{_norm}", sink_rows=3, spec=dict(normalization=_norm),
         masks=(C(),), return_lse=_norm in ref.LSE_NORMALIZATIONS,
         sweep=_norm in ("softmax", "sigmoid"))
case("sink_rows_softmax1_br_sq_gt_sk", Sq=53, Sk=37, sink_rows=2,
     spec=dict(normalization="softmax1"), masks=(C("bottom_right"),),
     return_lse=True)
case("sink_rows_scalable_logits", sink_rows=3, sink_logits=True,
     spec=dict(normalization="scalable_softmax", length_scale=1.3),
     masks=(W(5, 0),), return_lse=True)
case("sink_rows_rbf_zero", sink_rows=2, sink_init="zero",
     spec=dict(score="rbf"), return_lse=True)
case("sink_rows_rbf_zero_key", sink_rows=2, sink_init="zero_key",
     spec=dict(score="rbf", gamma=0.1), masks=(C(),), return_lse=True)
case("sink_rows_linear_elu", sink_rows=4,
     spec=dict(q_map="elu_plus_one", k_map="elu_plus_one",
               normalization="none"), masks=(C(),))
case("sink_rows_mqa_d80", Hkv=1, Dqk=80, Dv=20, sink_rows=1,
     masks=(C("bottom_right"),), return_lse=True)
# More sink rows than keys per KV tile (the default 32): the flash lowering
# once sized the sink tile's buffers by the KV tile and wrote past them
# (issue 11, item 1: one query, one key, D = 16, 64 sink rows).
case("sink_rows_more_than_kv_tile", B=1, Hq=1, Hkv=1, Sq=1, Sk=1, Dqk=16,
     Dv=16, sink_rows=64, return_lse=True, sweep=True)
case("sink_rows_more_than_kv_tile_rbf", B=1, Hq=2, Hkv=1, Sq=3, Sk=2,
     Dqk=16, Dv=16, sink_rows=64, spec=dict(score="rbf"), return_lse=True,
     sweep=True)
case("sink_rows_more_than_kv_tile_sigmoid", B=1, Hq=1, Hkv=1, Sq=1, Sk=1,
     Dqk=16, Dv=16, sink_rows=64, spec=dict(normalization="sigmoid"))

# -- the combinations -------------------------------------------------------
STREAMING = (C(), ref.sink_tokens(4), W(8))
case("streaming_rbf_zero_sinks", Sq=53, Sk=53, sink_rows=2, sink_init="zero",
     spec=dict(score="rbf"), masks=STREAMING, return_lse=True, sweep=True)
case("streaming_rbf_zero_sinks_br", sink_rows=2, sink_init="zero",
     spec=dict(score="rbf", gamma=0.05),
     masks=(C("bottom_right"), ref.sink_tokens(4), W(8, 0, "bottom_right")),
     return_lse=True)
case("sigmoid_alibi", spec=dict(normalization="sigmoid"), masks=(C(),),
     captures=alibi_slopes, score_mod=ALIBI, sweep=True)
case("sigmoid_alibi_bias", Sq=45, Sk=45,
     spec=dict(normalization="sigmoid", bias=-2.0), captures=alibi_slopes,
     score_mod=ALIBI)
case("gqa_softcap_window", Sq=45, Sk=45, q_mult=3.0, k_mult=3.0,
     score_mod=SOFTCAP, masks=(C(), W(6)), return_lse=True, sweep=True)
case("gqa_softcap_window_br", q_mult=3.0, k_mult=3.0, score_mod=SOFTCAP,
     masks=(W(5, 5, "bottom_right"),), return_lse=True)
case("mean_prev_token", Sq=45, Sk=45, spec=dict(normalization="mean"),
     masks=(C(), W(1)), return_lse=True, sweep=True)
case("mean_prev_token_br", spec=dict(normalization="mean"),
     masks=(C("bottom_right"), W(1, 0, "bottom_right")), return_lse=True)
case("scalable_document", Sq=45, Sk=45,
     spec=dict(normalization="scalable_softmax"), masks=(ref.document(0, 0),),
     captures=shared_segments, return_lse=True, sweep=True)
case("scalable_document_orphans",
     spec=dict(normalization="scalable_softmax", length_scale=0.5),
     masks=(ref.document(0, 1), C("bottom_right")),
     captures=segments_with_orphans, return_lse=True, expect_empty=True)
case("alibi_and_padding_softmax1", Sq=45, Sk=45,
     spec=dict(normalization="softmax1"), captures=alibi_and_lens([33, 12]),
     score_mod=ALIBI, mask_mod=mask_padding(1), masks=(C(),),
     return_lse=True, sweep=True)

# -- RBF under every normalization (the flash lowering expands |q - k|^2 and
# drops gamma |q|^2 where the normalization is shift invariant) ---------------
for _norm in ref.NORMALIZATIONS:
    case(f"rbf_{_norm}", spec=dict(score="rbf", normalization=_norm),
         masks=(C(),), return_lse=_norm in ref.LSE_NORMALIZATIONS)
    case(f"rbf_{_norm}_empty_rows", Sq=53, Sk=37,
         spec=dict(score="rbf", normalization=_norm),
         masks=(C("bottom_right"),),
         return_lse=_norm in ref.LSE_NORMALIZATIONS, expect_empty=True)
case("rbf_sink_logits", spec=dict(score="rbf"), sink_logits=True,
     masks=(W(7, 1),), return_lse=True)
case("rbf_scalable_sink_rows_logits", sink_rows=2, sink_logits=True,
     spec=dict(score="rbf", normalization="scalable_softmax",
               length_scale=0.8), masks=(C(),), return_lse=True)
case("rbf_scalable_sink_rows_empty", Sq=53, Sk=37, sink_rows=2,
     spec=dict(score="rbf", normalization="scalable_softmax"),
     masks=(C("bottom_right"),), return_lse=True)
case("rbf_softcap", q_mult=2.0, k_mult=2.0, spec=dict(score="rbf"),
     score_mod=SOFTCAP, masks=(C(),), return_lse=True)
case("rbf_alibi_sink_rows", sink_rows=3, spec=dict(score="rbf", gamma=0.3),
     captures=alibi_slopes, score_mod=ALIBI, masks=(C(),), return_lse=True)

# -- edge parameters ------------------------------------------------------------------
case("window_huge", masks=(C("bottom_right"), W(1000, 1000, "bottom_right")),
     return_lse=True)
case("chunked_huge", masks=(ref.chunked(100),), return_lse=True)
case("prefix_lm_huge", masks=(ref.prefix_lm(100),), return_lse=True)
case("sink_tokens_huge", masks=(ref.sink_tokens(100), W(1, 1)),
     return_lse=True)
case("nat1d_exact_fit", Sq=15, Sk=15, masks=(ref.neighborhood_1d(5, 3),),
     return_lse=True, sweep=True)
case("nat2d_exact_fit", Sq=42, Sk=42,
     masks=(ref.neighborhood_2d(6, 7, 3, 7, 2, 1),), return_lse=True)
case("decode_streaming", Sq=1, Hkv=1,
     masks=(C("bottom_right"), ref.sink_tokens(2),
            W(5, 0, "bottom_right")), return_lse=True, sweep=True)
case("sink_tokens_window_br_sq_gt_sk", Sq=53, Sk=37,
     masks=(ref.sink_tokens(3), W(2, 2, "bottom_right")), return_lse=True)
case("sink_tokens_chunked_sq_gt_sk", Sq=53, Sk=37,
     masks=(ref.sink_tokens(2), ref.chunked(8)), return_lse=True)
case("dot_dv_gt_dqk", B=1, Dqk=16, Dv=80, masks=(C(),), return_lse=True,
     sweep=True)
case("mean_mask_mod", spec=dict(normalization="mean"),
     mask_mod=MASK_PATTERN, return_lse=True)
case("score_mod_neg_inf", masks=(C(),), score_mod=NEG_INF_MOD,
     return_lse=True, sweep=True)
case("score_mod_neg_inf_sigmoid", spec=dict(normalization="sigmoid"),
     score_mod=NEG_INF_MOD)
case("score_mod_neg_inf_softmax1", spec=dict(normalization="softmax1"),
     masks=(C(),), score_mod=NEG_INF_MOD, return_lse=True)
case("mean_sink_rows_empty_rows", Sq=53, Sk=37, sink_rows=2,
     spec=dict(normalization="mean"), masks=(C("bottom_right"),),
     return_lse=True)

# -- large magnitudes -----------------------------------------------------------------
# Scores of ~1e3 (dot, x30) or ~1e5 (RBF keys of norm 1e3) are rounded to f32
# with an absolute error of ~1e-4 / ~1e-2, which is the relative error of the
# weights: rounding only the scores of the float64 reference to f32 already
# moves O by 2e-5 .. 4e-5 (x max|O|).  The tolerance follows that floor.
case("rbf_large_keys", spec=dict(score="rbf"), inputs=large_rbf_keys,
     return_lse=True, sweep=True, rel_tol=2e-4)
case("rbf_large_keys_window", spec=dict(score="rbf", gamma=1.0),
     inputs=large_rbf_keys, masks=(W(3, 3),), return_lse=True, rel_tol=2e-4)
case("rbf_large_offset", spec=dict(score="rbf"), inputs=large_common_offset,
     masks=(C(),), return_lse=True, sweep=True)
case("dot_large", q_mult=30.0, k_mult=30.0, masks=(C(),), return_lse=True,
     sweep=True, rel_tol=5e-4)
case("dot_large_softmax1_sinks", q_mult=30.0, k_mult=30.0,
     spec=dict(normalization="softmax1"), sink_logits=True, sink_rows=2,
     return_lse=True, rel_tol=5e-4)
case("dot_large_sigmoid", q_mult=30.0, k_mult=30.0,
     spec=dict(normalization="sigmoid"), masks=(C(),), rel_tol=5e-4)

# -- f16 / bf16 -------------------------------------------------------------------
_BY_NAME = {c.name: c for c in CASES}
for _name in ("dot_default", "causal_br_sq_gt_sk", "streaming_rbf_zero_sinks",
              "sigmoid_alibi", "gqa_softcap_window", "linear_elu",
              "mean_prev_token", "sink_logits_softmax1", "document_orphans",
              "nat2d_dilated", "sink_rows_softmax", "rbf_large_keys"):
    variants(_BY_NAME[_name])


# ---------------------------------------------------------------------------
# Inputs, reference, running
# ---------------------------------------------------------------------------

@dataclass
class Prepared:
    mlir: object            # Path
    inputs: list            # Paths of the .npy arguments
    ref_o: np.ndarray
    ref_lse: Optional[np.ndarray]
    empty: np.ndarray       # bool [B, Hq, Sq]: rows that see nothing
    sink_logits: Optional[np.ndarray] = None


def _npy(a, dtype: str):
    """What attn-run reads for a float argument of ``dtype``."""
    return np.ascontiguousarray(round_to(a, dtype))


def prepare(c: Case, directory) -> Prepared:
    rng = np.random.default_rng(zlib.crc32(c.name.encode()))
    q = rng.standard_normal((c.B, c.Hq, c.Sq, c.Dqk)) * c.q_mult
    k = rng.standard_normal((c.B, c.Hkv, c.Sk, c.Dqk)) * c.k_mult
    v = rng.standard_normal((c.B, c.Hkv, c.Sk, c.Dv))
    if c.inputs is not None:
        q, k, v = c.inputs(rng, c, q, k, v)
    q, k, v = (_npy(x, c.dtype) for x in (q, k, v))
    for x in (q, k, v):
        assert np.all(x != 0) and np.all(np.isfinite(x))
    args = [q, k, v]

    caps = [np.ascontiguousarray(x) for x in
            (c.captures(rng, c) if c.captures else [])]
    caps = [x.astype(np.float32) if x.dtype.kind == "f" else x for x in caps]
    args += caps

    sl = sk = sv = None
    if c.sink_logits:
        sl = rng.standard_normal(c.Hq).astype(np.float32)
        args.append(sl)
    if c.sink_rows is not None:
        sk = rng.standard_normal((c.Hkv, c.sink_rows, c.Dqk))
        sv = rng.standard_normal((c.Hkv, c.sink_rows, c.Dv))
        if c.sink_init in ("zero", "zero_key"):
            sk = np.zeros_like(sk)
        if c.sink_init == "zero":
            sv = np.zeros_like(sv)
        sk, sv = _npy(sk, c.dtype), _npy(sv, c.dtype)
        args += [sk, sv]

    cap_types = []
    for x in caps:
        elt = {"float32": "f32", "int32": "i32", "int64": "i64"}[str(x.dtype)]
        cap_types.append((x.shape, elt))
    text = emit_attention_func(
        "attn_case", q.shape, k.shape, v.shape, c.dtype, **c.spec,
        masks=c.masks,
        sink_logits_shape=(c.Hq,) if c.sink_logits else None,
        sink_rows=c.sink_rows, captures=cap_types,
        score_mod=c.score_mod.mlir if c.score_mod else None,
        mask_mod=c.mask_mod.mlir if c.mask_mod else None,
        return_lse=c.return_lse)
    mlir = directory / "case.mlir"
    mlir.write_text(text)
    paths = []
    for n, a in enumerate(args):
        p = directory / f"arg{n}.npy"
        np.save(p, a)
        paths.append(p)

    res = ref.attention(
        q, k, v, **c.spec, masks=c.masks, sink_logits=sl, sink_key=sk,
        sink_value=sv, captures=caps,
        score_mod=c.score_mod.py if c.score_mod else None,
        mask_mod=c.mask_mod.py if c.mask_mod else None,
        return_lse=c.return_lse)
    ref_o, ref_lse = res if c.return_lse else (res, None)
    vis = ref.visibility(c.B, c.Hq, c.Sq, c.Sk, c.masks,
                         caps,
                         c.mask_mod.py if c.mask_mod else None)
    empty = ~vis.any(axis=-1)
    if c.sink_rows:
        empty[...] = False
    assert np.all(np.isfinite(ref_o)), c.name
    if c.expect_empty:
        assert empty.any() and not empty.all(), \
            f"{c.name} should have some (not all) fully masked rows"
    return Prepared(mlir, paths, ref_o, ref_lse, empty, sl)


_PREPARED = {}


@pytest.fixture
def prepared(request, tmp_path_factory):
    c = request.param
    if c.name not in _PREPARED:
        _PREPARED[c.name] = prepare(c, tmp_path_factory.mktemp(c.name))
    return c, _PREPARED[c.name]


def check_outputs(c: Case, p: Prepared, out: np.ndarray,
                  lse: Optional[np.ndarray]) -> None:
    ref_o = p.ref_o
    assert out.shape == ref_o.shape
    assert not np.isnan(out).any(), "O has NaNs"
    assert np.all(np.isfinite(out)), "O has infinities"

    # Fully masked rows: exactly zero.
    if p.empty.any():
        bad = np.argwhere(np.any(out[p.empty] != 0, axis=-1))
        assert bad.size == 0, \
            f"{bad.size} fully masked rows are not exactly 0, e.g. " \
            f"{np.argwhere(p.empty)[bad[0, 0]].tolist()}"

    # O against the reference.
    rel_tol = REL_L2_TOL[c.dtype]
    if c.dtype == "f32" and c.rel_tol is not None:
        rel_tol = c.rel_tol
    err = np.abs(out - ref_o)
    scale = max(float(np.abs(ref_o).max()), 1e-30)
    norm = max(float(np.linalg.norm(ref_o)), 1e-30)
    rel_l2 = float(np.linalg.norm(out - ref_o)) / norm
    u = UNIT_ROUNDOFF[c.dtype] if c.dtype != "f32" else 0.0
    f32_tol = c.rel_tol if c.rel_tol is not None else 1e-5
    bound = u * np.abs(ref_o) + f32_tol * scale
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert rel_l2 <= rel_tol and np.all(err <= bound), (
        f"O: ||O-ref||/||ref|| = {rel_l2:.3g} (tol {rel_tol:.3g}); worst "
        f"element {list(worst)}: got {out[worst]!r}, want {ref_o[worst]!r}, "
        f"|err| = {err[worst]:.3g} > bound {bound[worst]:.3g}")

    if p.ref_lse is None:
        assert lse is None
        return
    assert lse is not None and lse.shape == p.ref_lse.shape
    assert not np.isnan(lse).any(), "lse has NaNs"
    assert not np.isposinf(lse).any(), "lse has +inf"
    ninf, ref_ninf = np.isneginf(lse), np.isneginf(p.ref_lse)
    assert np.array_equal(ninf, ref_ninf), (
        f"-inf lse at {np.argwhere(ninf != ref_ninf)[:5].tolist()}: "
        f"got {lse[ninf != ref_ninf][:5]}, "
        f"want {p.ref_lse[ninf != ref_ninf][:5]}")
    # lse of rows that see nothing, straight from docs/semantics.md §5:
    # log Z with Z = 0 (softmax, scalable_softmax, mean), 1 (softmax1), plus
    # exp(c) with sink logits.
    if p.empty.any():
        Z = np.zeros(p.empty.shape)
        if c.normalization == "softmax1":
            Z += 1.0
        if p.sink_logits is not None:
            Z += np.exp(p.sink_logits.astype(np.float64))[None, :, None]
        with np.errstate(divide="ignore"):
            want = np.log(Z)[p.empty]
        got = lse[p.empty]
        assert np.array_equal(np.isneginf(got), np.isneginf(want)) and \
            np.allclose(got[np.isfinite(want)], want[np.isfinite(want)],
                        rtol=1e-6, atol=1e-6), \
            f"lse of fully masked rows: got {got[:4]}, want {want[:4]}"
    fin = ~ref_ninf
    lerr = np.abs(lse[fin] - p.ref_lse[fin])
    lbound = c.lse_tol * (1.0 + np.abs(p.ref_lse[fin]))
    if lerr.size:
        k = int(np.argmax(lerr - lbound))
        assert np.all(lerr <= lbound), (
            f"lse: |err| = {lerr[k]:.3g} > {lbound[k]:.3g} (got "
            f"{lse[fin][k]!r}, want {p.ref_lse[fin][k]!r})")


CONFIGS = [("loops", None), ("flash", None)]
SWEEP_CONFIGS = [("flash", (3, 5)), ("flash", (1, 1)), ("flash", (64, 7)),
                 ("flash", (5, 64))]


# Known compiler bugs: (case, lowering) -> reason.  Strict: once fixed, the
# XPASS fails the suite and the entry must go.
XFAIL = {
}


def _params():
    for c in CASES:
        for lowering, tiles in CONFIGS + (SWEEP_CONFIGS if c.sweep else []):
            cid = lowering if tiles is None else \
                f"{lowering}-q{tiles[0]}-kv{tiles[1]}"
            reason = XFAIL.get((c.name, lowering))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] \
                if reason else []
            yield pytest.param(c, lowering, tiles, id=f"{c.name}-{cid}",
                               marks=marks)


@pytest.mark.parametrize("prepared,lowering,tiles", list(_params()),
                         indirect=["prepared"])
def test_against_reference(attn_run, prepared, lowering, tiles, tmp_path):
    c, p = prepared
    outs = [tmp_path / "o.npy"] + ([tmp_path / "lse.npy"]
                                   if c.return_lse else [])
    r = attn_run.run(p.mlir, "attn_case", lowering=lowering, tiles=tiles,
                     inputs=p.inputs, outputs=outs)
    assert r.returncode == 0, \
        f"attn-run failed ({r.returncode}) on {p.mlir}:\n{r.stderr}"
    out = np.load(outs[0]).astype(np.float64)
    want_dtype = np.float16 if c.dtype == "f16" else np.float32
    assert np.load(outs[0]).dtype == want_dtype
    lse = np.load(outs[1]).astype(np.float64) if c.return_lse else None
    if c.dtype == "bf16":
        # bf16 results come back as float32 holding bf16 values exactly.
        assert np.array_equal(round_bf16(out.astype(np.float32)),
                              out.astype(np.float32))
    check_outputs(c, p, out, lse)


def test_xfail_entries_name_cases():
    names = {c.name for c in CASES}
    for name, lowering in XFAIL:
        assert name in names and lowering in ("loops", "flash")


def test_case_coverage():
    """Every score kind, feature map, normalization and mask kind is run."""
    seen = {"score": set(), "map": set(), "norm": set(), "mask": set(),
            "dtype": set()}
    for c in CASES:
        seen["score"].add(c.spec.get("score", "dot"))
        seen["map"] |= {c.spec.get("q_map", "identity"),
                        c.spec.get("k_map", "identity")}
        seen["norm"].add(c.normalization)
        seen["mask"] |= {m["kind"] for m in c.masks}
        seen["dtype"].add(c.dtype)
    assert seen["score"] == set(ref.SCORE_KINDS)
    assert seen["map"] == set(ref.FEATURE_MAPS)
    assert seen["norm"] == set(ref.NORMALIZATIONS)
    assert seen["mask"] == set(ref.MASK_KINDS)
    assert seen["dtype"] == {"f32", "f16", "bf16"}


# ---------------------------------------------------------------------------
# attn-run error handling
# ---------------------------------------------------------------------------

SHAPES = dict(q=(1, 2, 5, 8), k=(1, 2, 7, 8), v=(1, 2, 7, 4))


@pytest.fixture
def small(tmp_path):
    """A valid f32 function with lse, a bf16 one, one with an i32 capture,
    and valid inputs for the first."""
    (tmp_path / "f32.mlir").write_text(emit_attention_func(
        "f", SHAPES["q"], SHAPES["k"], SHAPES["v"], masks=[ref.causal()],
        return_lse=True))
    (tmp_path / "bf16.mlir").write_text(emit_attention_func(
        "g", SHAPES["q"], SHAPES["k"], SHAPES["v"], "bf16"))
    (tmp_path / "doc.mlir").write_text(emit_attention_func(
        "d", SHAPES["q"], SHAPES["k"], SHAPES["v"],
        masks=[ref.document(0, 1)], captures=[((1, 5), "i32"),
                                              ((1, 7), "i32")]))
    rng = np.random.default_rng(0)
    paths = []
    for name in ("q", "k", "v"):
        p = tmp_path / f"{name}.npy"
        np.save(p, rng.standard_normal(SHAPES[name]).astype(np.float32))
        paths.append(p)
    return tmp_path, paths


def _fails(r, *substrings):
    assert r.returncode != 0, f"expected failure, got 0:\n{r.stdout}"
    for s in substrings:
        assert s in r.stderr, f"{s!r} not in stderr:\n{r.stderr}"
    assert "Stack dump" not in r.stderr and "PLEASE submit" not in r.stderr


def test_run_ok(attn_run, small):
    d, args = small
    outs = [d / "o.npy", d / "lse.npy"]
    r = attn_run.run(d / "f32.mlir", "f", inputs=args, outputs=outs)
    assert r.returncode == 0, r.stderr
    assert np.load(outs[0]).shape == (1, 2, 5, 4)
    assert np.load(outs[1]).shape == (1, 2, 5)
    # Without --input / --output: random inputs, a summary on stdout.
    r = attn_run.run(d / "doc.mlir", "d", lowering="loops")
    assert r.returncode == 0, r.stderr
    assert "result #0: tensor<1x2x5x4xf32>" in r.stdout


def test_unknown_entry(attn_run, small):
    d, args = small
    _fails(attn_run.run(d / "f32.mlir", "nope", inputs=args),
           "no function '@nope'")


def test_wrong_number_of_inputs(attn_run, small):
    d, args = small
    _fails(attn_run.run(d / "f32.mlir", "f", inputs=args[:2]),
           "takes 3 arguments but --input names 2 files")
    _fails(attn_run.run(d / "f32.mlir", "f", inputs=args + args[:1]),
           "takes 3 arguments but --input names 4 files")


def test_wrong_number_of_outputs(attn_run, small):
    d, args = small
    _fails(attn_run.run(d / "f32.mlir", "f", inputs=args,
                        outputs=[d / "o.npy"]),
           "returns 2 results but --output names 1 files")


def test_wrong_shape(attn_run, small):
    d, args = small
    bad = d / "bad.npy"
    np.save(bad, np.ones((1, 2, 6, 8), np.float32))
    _fails(attn_run.run(d / "f32.mlir", "f", inputs=[bad] + args[1:]),
           "argument #0", "shape (1, 2, 6, 8) does not match",
           "tensor<1x2x5x8xf32>")
    np.save(bad, np.ones((2, 7, 4), np.float32))   # wrong rank
    _fails(attn_run.run(d / "f32.mlir", "f", inputs=args[:2] + [bad]),
           "argument #2", "does not match")


@pytest.mark.parametrize("dtype,want", [(np.float64, "'<f8'"),
                                        (np.float16, "'<f2'"),
                                        (np.int32, "'<i4'")])
def test_wrong_dtype(attn_run, small, dtype, want):
    d, args = small
    bad = d / "bad.npy"
    np.save(bad, np.ones(SHAPES["k"], dtype))
    _fails(attn_run.run(d / "f32.mlir", "f",
                        inputs=[args[0], bad, args[2]]),
           "argument #1", f"dtype {want} does not match", "expected '<f4'")


def test_wrong_dtype_bf16_and_i32(attn_run, small):
    d, args = small
    bad = d / "bad.npy"
    np.save(bad, np.ones(SHAPES["q"], np.float16))
    _fails(attn_run.run(d / "bf16.mlir", "g", inputs=[bad] + args[1:]),
           "argument #0", "dtype '<f2' does not match", "bf16")
    seg = d / "seg.npy"
    np.save(seg, np.zeros((1, 5), np.int64))
    kseg = d / "kseg.npy"
    np.save(kseg, np.zeros((1, 7), np.int32))
    _fails(attn_run.run(d / "doc.mlir", "d", inputs=args + [seg, kseg]),
           "argument #3", "dtype '<i8' does not match", "expected '<i4'")


def test_malformed_npy(attn_run, small):
    d, args = small
    bad = d / "bad.npy"
    bad.write_bytes(b"this is not a numpy file at all")
    _fails(attn_run.run(d / "f32.mlir", "f", inputs=[bad] + args[1:]),
           "is not a .npy file")
    good = args[0].read_bytes()
    bad.write_bytes(good[:-16])                     # data cut short
    _fails(attn_run.run(d / "f32.mlir", "f", inputs=[bad] + args[1:]),
           "truncated")
    bad.write_bytes(good[:40])                      # header cut short
    _fails(attn_run.run(d / "f32.mlir", "f", inputs=[bad] + args[1:]),
           "truncated")
    bad.write_bytes(b"")
    _fails(attn_run.run(d / "f32.mlir", "f", inputs=[bad] + args[1:]),
           "is not a .npy file")
    np.save(bad, np.asfortranarray(np.ones(SHAPES["q"], np.float32)))
    _fails(attn_run.run(d / "f32.mlir", "f", inputs=[bad] + args[1:]),
           "Fortran order")


def test_missing_input_file(attn_run, small):
    d, args = small
    _fails(attn_run.run(d / "f32.mlir", "f",
                        inputs=[d / "nowhere.npy"] + args[1:]),
           "cannot read", "nowhere.npy")


def test_garbled_mlir(attn_run, small, tmp_path):
    d, args = small
    garbled = tmp_path / "garbled.mlir"
    garbled.write_text("func.func @f(%q: tensor<1x2x5x8xf32> {\n  garbage\n")
    _fails(attn_run.run(garbled, "f", inputs=args), "cannot parse")
    npy_as_mlir = args[0]                           # a binary, non-MLIR file
    _fails(attn_run.run(npy_as_mlir, "f", inputs=args), "cannot parse")
    _fails(attn_run.run(tmp_path / "missing.mlir", "f"), "missing.mlir")


def test_invalid_op(attn_run, small, tmp_path):
    """Text that parses but fails the verifier is reported, not run."""
    d, args = small
    bad = tmp_path / "invalid.mlir"
    bad.write_text(emit_attention_func(
        "f", SHAPES["q"], SHAPES["k"], SHAPES["v"], normalization="relu",
        bias=0.5))
    _fails(attn_run.run(bad, "f", inputs=args),
           "'bias' applies only to normalize<sigmoid>", "cannot parse")


def test_bad_lowering(attn_run, small):
    d, args = small
    _fails(attn_run.run(d / "f32.mlir", "f", lowering="magic", inputs=args),
           "--lowering must be 'flash' or 'loops'")
