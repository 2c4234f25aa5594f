"""Float64 numpy reference of ``attn.attention``.

Written directly from ``docs/semantics.md`` (the normative definition), never
from compiler output.  Every function states the formula it implements; the
section numbers (``§1`` ... ``§5``) refer to ``docs/semantics.md``.

Conventions
-----------
* ``q [B, Hq, Sq, Dqk]``, ``k [B, Hkv, Sk, Dqk]``, ``v [B, Hkv, Sk, Dv]``;
  ``G = Hq / Hkv`` and query head ``h`` reads key/value head ``hk = h // G``.
* Everything is widened to float64 first; results are float64 (the compiled
  op rounds ``O`` to the input type, the reference does not).
* Masks are plain dicts, one per mask attribute of the dialect, e.g.
  ``{"kind": "causal", "alignment": "bottom_right"}``.  Missing optional
  keys take the dialect defaults (``alignment = top_left``, ``right = 0``,
  ``dilation = 1``).  The helper constructors at the bottom of the "masks"
  section (``causal()``, ``sliding_window()``, ...) build such dicts.
* ``score_mod(s, b, h, i, j, *captures) -> s'`` and
  ``mask_mod(b, h, i, j, *captures) -> bool`` are vectorised Python
  callables: ``s`` is the float64 score array ``[B, Hq, Sq, Sk]`` and
  ``b, h, i, j`` are int64 index arrays of shapes ``[B,1,1,1]``,
  ``[1,Hq,1,1]``, ``[1,1,Sq,1]``, ``[1,1,1,Sk]``; their results are
  broadcast to ``[B, Hq, Sq, Sk]``.

Numerics: softmax-family normalizers subtract the row maximum taken over the
visible scores, the sink-row scores, the sink logit and (softmax1) the
implicit ``0`` logit of the ``1 +`` term, so rows whose scores are all near
``-1e6`` are still normalized exactly; the RBF distance is accumulated from
the differences ``qf - kf`` (never via ``|q|^2 + |k|^2 - 2 q.k``).  A query
that sees nothing gets ``O = 0`` and never NaN.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple, Optional, Sequence

import numpy as np

__all__ = [
    "FEATURE_MAPS",
    "SCORE_KINDS",
    "NORMALIZATIONS",
    "SOFTMAX_FAMILY",
    "LSE_NORMALIZATIONS",
    "GLOBAL_MASKS",
    "LOCAL_MASKS",
    "MASK_KINDS",
    "feature_map",
    "kv_head_index",
    "default_scale",
    "default_gamma",
    "dot_scores",
    "rbf_scores",
    "scores",
    "query_positions",
    "natten_1d",
    "canonical_mask",
    "mask_visibility",
    "visibility",
    "normalize",
    "attention",
    "causal",
    "prefix_lm",
    "document",
    "sliding_window",
    "chunked",
    "neighborhood_1d",
    "neighborhood_2d",
    "sink_tokens",
    "AttentionGrads",
    "feature_map_derivative",
    "region_partials",
    "normalization_backward",
    "kernel_backward",
    "attention_backward",
]

from .kinds import (ALIGNMENTS, FEATURE_MAPS, MASK_PARAMS, check_mask,  # noqa: E402
                    NORMALIZATIONS, SCORE_KINDS, SOFTMAX_FAMILY)

#: Normalizations that define an ``lse`` result (§5 table, ``lse`` column).
LSE_NORMALIZATIONS = SOFTMAX_FAMILY + ("mean",)

GLOBAL_MASKS = ("causal", "prefix_lm", "document", "any_of")
LOCAL_MASKS = ("sliding_window", "chunked", "neighborhood_1d",
               "neighborhood_2d")
MASK_KINDS = GLOBAL_MASKS + LOCAL_MASKS + ("sink_tokens",)

# kind -> (required parameters, optional parameters with their defaults),
# the one table of kinds.py.
_MASK_PARAMS = MASK_PARAMS


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def _f64(x) -> np.ndarray:
    """Widen any float array (f16, bf16, f32, f64, ...) to a float64 array."""
    return np.asarray(x).astype(np.float64)


def _capture(c) -> np.ndarray:
    """A captured operand as seen by the regions: integer tensors as int64,
    booleans as bool, every other (float) tensor widened to float64."""
    a = np.asarray(c)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind == "b":
        return a
    return a.astype(np.float64)


def _index_grids(B: int, Hq: int, Sq: int, Sk: int):
    """The broadcastable index arrays ``b [B,1,1,1]``, ``h [1,Hq,1,1]``,
    ``i [1,1,Sq,1]``, ``j [1,1,1,Sk]`` (int64) handed to the regions."""
    return (np.arange(B, dtype=np.int64).reshape(B, 1, 1, 1),
            np.arange(Hq, dtype=np.int64).reshape(1, Hq, 1, 1),
            np.arange(Sq, dtype=np.int64).reshape(1, 1, Sq, 1),
            np.arange(Sk, dtype=np.int64).reshape(1, 1, 1, Sk))


def kv_head_index(Hq: int, Hkv: int) -> np.ndarray:
    """``hk[h] = h // G`` with ``G = Hq / Hkv`` (MHA: G = 1, GQA, MQA: Hkv = 1).

    Query heads ``0..G-1`` share kv head 0, heads ``G..2G-1`` kv head 1, etc.
    ``Hq`` must be a multiple of ``Hkv``.
    """
    if Hkv <= 0 or Hq % Hkv != 0:
        raise ValueError(f"Hq = {Hq} is not a multiple of Hkv = {Hkv}")
    return np.arange(Hq, dtype=np.int64) // (Hq // Hkv)


# ---------------------------------------------------------------------------
# §1 Feature maps
# ---------------------------------------------------------------------------

def feature_map(x, kind: str = "identity") -> np.ndarray:
    """Elementwise feature map ``phi`` (§1), in float64.

    * ``identity``:     ``phi(x) = x``
    * ``elu_plus_one``: ``phi(x) = x + 1`` if ``x > 0`` else ``exp(x)``
      (``= elu(x) + 1``; continuous at 0 where both branches give 1)
    * ``relu``:         ``phi(x) = max(x, 0)``
    """
    x = _f64(x)
    if kind == "identity":
        return x
    if kind == "elu_plus_one":
        # exp only of the non-positive part, so the unused branch never
        # overflows for large positive x.
        return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))
    if kind == "relu":
        return np.maximum(x, 0.0)
    raise ValueError(f"unknown feature map {kind!r}; expected one of "
                     f"{FEATURE_MAPS}")


# ---------------------------------------------------------------------------
# §2 Score kernels
# ---------------------------------------------------------------------------

def default_scale(Dqk: int) -> float:
    """Default dot-product scale ``1 / sqrt(Dqk)``."""
    return 1.0 / math.sqrt(Dqk)


def default_gamma(Dqk: int) -> float:
    """Default RBF bandwidth ``1 / (2 * sqrt(Dqk))``."""
    return 1.0 / (2.0 * math.sqrt(Dqk))


def dot_scores(qf, kf, scale: float) -> np.ndarray:
    """``s[..., i, j] = scale * sum_d qf[..., i, d] * kf[..., j, d]``.

    ``qf [..., Sq, D]`` and ``kf [..., N, D]`` (leading dims broadcast);
    returns ``[..., Sq, N]``.
    """
    qf = _f64(qf)
    kf = _f64(kf)
    return float(scale) * np.matmul(qf, np.swapaxes(kf, -1, -2))


def rbf_scores(qf, kf, gamma: float) -> np.ndarray:
    """``s[..., i, j] = -gamma * sum_d (qf[..., i, d] - kf[..., j, d])^2``.

    Accumulated one feature at a time from the differences themselves (no
    ``|q|^2 + |k|^2 - 2 q.k`` expansion, which cancels catastrophically for
    large norms), so memory stays at the size of the score array.
    ``qf [..., Sq, D]``, ``kf [..., N, D]``; returns ``[..., Sq, N]``.
    """
    qf = _f64(qf)
    kf = _f64(kf)
    D = qf.shape[-1]
    if kf.shape[-1] != D:
        raise ValueError(f"feature sizes differ: {qf.shape} vs {kf.shape}")
    acc = None
    for d in range(D):
        diff = qf[..., :, None, d] - kf[..., None, :, d]
        acc = diff * diff if acc is None else acc + diff * diff
    if acc is None:  # D == 0
        acc = np.zeros(np.broadcast_shapes(qf.shape[:-1] + (1,),
                                           kf.shape[:-2] + (1, kf.shape[-2])))
    return -float(gamma) * acc


def scores(qf, kf, score: str = "dot", *, scale: Optional[float] = None,
           gamma: Optional[float] = None) -> np.ndarray:
    """Score kernel of §2 on feature-mapped ``qf [..., Sq, D]`` and
    ``kf [..., N, D]``.

    * ``dot``: ``scale * qf . kf``, ``scale`` defaults to ``1/sqrt(D)``
    * ``rbf``: ``-gamma * |qf - kf|^2``, ``gamma`` defaults to
      ``1/(2*sqrt(D))``
    """
    D = np.shape(qf)[-1]
    if score == "dot":
        if gamma is not None:
            raise ValueError("'gamma' applies only to score 'rbf'")
        return dot_scores(qf, kf, default_scale(D) if scale is None else scale)
    if score == "rbf":
        if scale is not None:
            raise ValueError("'scale' applies to score 'dot'; 'rbf' takes "
                             "'gamma'")
        return rbf_scores(qf, kf, default_gamma(D) if gamma is None else gamma)
    raise ValueError(f"unknown score kind {score!r}; expected one of "
                     f"{SCORE_KINDS}")


# ---------------------------------------------------------------------------
# §4 Visibility
# ---------------------------------------------------------------------------

def query_positions(Sq: int, Sk: int, alignment: str = "top_left") -> np.ndarray:
    """The aligned query position ``pos(i)`` for ``i = 0..Sq-1`` (int64).

    * ``top_left``:     ``pos = i``
    * ``bottom_right``: ``pos = i + Sk - Sq`` (the last query lines up with
      the last key; negative when ``Sq > Sk``)
    """
    i = np.arange(Sq, dtype=np.int64)
    if alignment == "top_left":
        return i
    if alignment == "bottom_right":
        return i + (Sk - Sq)
    raise ValueError(f"unknown alignment {alignment!r}; expected one of "
                     f"{ALIGNMENTS}")


def natten_1d(i, j, L: int, K: int, D: int = 1) -> np.ndarray:
    """NATTEN's 1-D neighborhood with dilation, ``nat(i, j, L, K, D)`` (§4).

    Vectorised over broadcastable integer arrays ``i`` (query) and ``j``
    (key), both in ``0..L-1``:

    * same dilation group: ``g = i mod D`` and ``j mod D == g``;
    * the group has ``Lg = ceil((L - g) / D)`` members, ``i`` is member
      ``ig = i div D``;
    * ``start = clamp(ig - K div 2, 0, Lg - K)``; if ``Lg < K``,
      ``start = 0`` (the window is the whole group);
    * visible iff ``start <= j div D < start + K``.
    """
    if K < 1 or D < 1:
        raise ValueError(f"neighborhood needs kernel >= 1 and dilation >= 1, "
                         f"got kernel = {K}, dilation = {D}")
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    g = i % D
    Lg = -((g - L) // D)                       # ceil((L - g) / D)
    ig = i // D
    # clamp(x, 0, Lg - K) with the lower bound winning when Lg < K.
    start = np.maximum(np.minimum(ig - K // 2, Lg - K), 0)
    jg = j // D
    return (j % D == g) & (start <= jg) & (jg < start + K)


def canonical_mask(mask: Mapping) -> dict:
    """A mask dict with its kind checked and every optional key filled in
    with the dialect default; unknown kinds or keys raise ``ValueError``."""
    kind = check_mask(mask)
    out = {"kind": kind}
    out.update(_MASK_PARAMS[kind][1])
    out.update({key: val for key, val in mask.items() if key != "kind"})
    return out


def mask_visibility(mask: Mapping, B: int, Hq: int, Sq: int, Sk: int,
                    captures: Sequence = ()) -> np.ndarray:
    """Visibility of one global or local mask kind (the §4 table).

    Returns a bool array broadcastable to ``[B, Hq, Sq, Sk]``; ``pos`` is
    ``query_positions(Sq, Sk, alignment)`` of the mask's own alignment.

    * ``causal``:          ``j <= pos``
    * ``prefix_lm<P>``:    ``j < P  or  j <= pos``
    * ``document<a, c>``:  ``captures[a][b, i] == captures[c][b, j]``
    * ``sliding_window<L, R>``: ``pos - L <= j <= pos + R``
    * ``chunked<C>``:      ``pos >= 0 and floor(pos / C) == floor(j / C)``
      (a negative ``pos`` sees nothing).
    * ``neighborhood_1d<K, D>``: ``nat(i, j, Sk, K, D)`` (needs Sq == Sk)
    * ``neighborhood_2d<H, W, Kh, Kw, Dh, Dw>``:
      ``nat(i div W, j div W, H, Kh, Dh) and nat(i mod W, j mod W, W, Kw, Dw)``
      (needs Sq == Sk == H * W)

    ``sink_tokens`` is not a visibility of its own; see ``visibility``.
    """
    m = canonical_mask(mask)
    kind = m["kind"]
    i = np.arange(Sq, dtype=np.int64).reshape(1, 1, Sq, 1)
    j = np.arange(Sk, dtype=np.int64).reshape(1, 1, 1, Sk)
    if "alignment" in m:
        pos = query_positions(Sq, Sk, m["alignment"]).reshape(1, 1, Sq, 1)
    if kind == "any_of":
        # The OR of its (positional) masks' visibilities.
        out = np.zeros((1, 1, Sq, Sk), dtype=bool)
        for inner in m["masks"]:
            out = out | mask_visibility(inner, B, Hq, Sq, Sk, captures)
        return out
    if kind == "causal":
        return j <= pos
    if kind == "prefix_lm":
        return (j < int(m["prefix"])) | (j <= pos)
    if kind == "document":
        caps = [np.asarray(c) for c in captures]
        a, c = int(m["q_segments"]), int(m["kv_segments"])
        if not (0 <= a < len(caps) and 0 <= c < len(caps)):
            raise ValueError(f"document mask names captures #{a} and #{c} "
                             f"but {len(caps)} captures were given")
        qa, kc = caps[a], caps[c]
        if qa.shape != (B, Sq):
            raise ValueError(f"document q_segments capture #{a} must be "
                             f"[B, Sq] = [{B}, {Sq}], got {qa.shape}")
        if kc.shape != (B, Sk):
            raise ValueError(f"document kv_segments capture #{c} must be "
                             f"[B, Sk] = [{B}, {Sk}], got {kc.shape}")
        qs = qa.reshape(B, 1, Sq, 1)
        ks = kc.reshape(B, 1, 1, Sk)
        return qs == ks
    if kind == "sliding_window":
        left, right = int(m["left"]), int(m["right"])
        return (pos - left <= j) & (j <= pos + right)
    if kind == "chunked":
        size = int(m["size"])
        if size < 1:
            raise ValueError(f"chunked mask needs size >= 1, got {size}")
        # floor division of a negative pos never happens: such rows see
        # nothing, by the explicit `pos >= 0` condition.
        return (pos >= 0) & (np.maximum(pos, 0) // size == j // size)
    if kind == "neighborhood_1d":
        if Sq != Sk:
            raise ValueError(f"neighborhood_1d needs Sq == Sk, got {Sq}, {Sk}")
        return natten_1d(i, j, Sk, int(m["kernel"]), int(m["dilation"]))
    if kind == "neighborhood_2d":
        H, W = int(m["height"]), int(m["width"])
        if not (Sq == Sk == H * W):
            raise ValueError(f"neighborhood_2d needs Sq == Sk == height * "
                             f"width = {H * W}, got Sq = {Sq}, Sk = {Sk}")
        rows = natten_1d(i // W, j // W, H, int(m["kernel_h"]),
                         int(m["dilation_h"]))
        cols = natten_1d(i % W, j % W, W, int(m["kernel_w"]),
                         int(m["dilation_w"]))
        return rows & cols
    if kind == "sink_tokens":
        raise ValueError("sink_tokens has no visibility of its own; use "
                         "visibility()")
    raise AssertionError(kind)


def visibility(B: int, Hq: int, Sq: int, Sk: int, masks: Sequence = (),
               captures: Sequence = (),
               mask_mod: Optional[Callable] = None) -> np.ndarray:
    """Which regular keys each query sees (§4): bool ``[B, Hq, Sq, Sk]``.

    ``visible(b,h,i,j) = AND(global kinds) and (AND(local kinds) or j < N)``

    with the global kinds ``causal``, ``prefix_lm``, ``document`` and the
    ``mask_mod`` region (``mask_mod(b, h, i, j, *captures)``), the local kinds
    ``sliding_window``, ``chunked``, ``neighborhood_1d``, ``neighborhood_2d``,
    an empty AND being true, and ``N`` the ``sink_tokens`` count (``j < N``
    is false without ``sink_tokens``).  Sink rows are not keys here; they
    are always visible.  Each mask kind may appear once (as in the dialect).
    """
    shape = (B, Hq, Sq, Sk)
    glob = np.ones(shape, dtype=bool)
    local = np.ones(shape, dtype=bool)
    caps = tuple(_capture(c) for c in captures)
    n_sink = None
    seen = set()
    for mask in masks:
        m = canonical_mask(mask)
        kind = m["kind"]
        if kind in seen:
            raise ValueError(f"mask kind {kind!r} appears more than once")
        seen.add(kind)
        if kind == "sink_tokens":
            n_sink = int(m["count"])
        elif kind in GLOBAL_MASKS:
            glob &= mask_visibility(m, B, Hq, Sq, Sk, caps)
        else:
            local &= mask_visibility(m, B, Hq, Sq, Sk, caps)
    if mask_mod is not None:
        b, h, i, j = _index_grids(B, Hq, Sq, Sk)
        glob &= np.broadcast_to(np.asarray(mask_mod(b, h, i, j, *caps),
                                           dtype=bool), shape)
    j = np.arange(Sk, dtype=np.int64).reshape(1, 1, 1, Sk)
    is_sink_token = (j < n_sink) if n_sink is not None else np.zeros_like(j,
                                                                          bool)
    return glob & (local | is_sink_token)


# ---------------------------------------------------------------------------
# §5 Normalization
# ---------------------------------------------------------------------------

def normalize(s, valid, normalization: str = "softmax", *,
              bias: Optional[float] = None,
              length_scale: Optional[float] = None,
              sink_logit=None):
    """Weights ``p`` over the last axis and the row's ``lse`` (§5).

    ``s [..., N]`` holds the scores of every candidate of a row (regular keys
    and sink rows side by side), ``valid`` (broadcastable bool) marks the
    visible ones (sink rows: always), ``n = count(valid)`` per row and
    ``c = sink_logit`` (broadcastable to ``s.shape[:-1]``) the per-row sink
    logit if given.  Invalid entries get ``p = 0`` whatever their score.

    * ``softmax``:  ``p = exp(s) / Z``, ``Z = sum exp(s) + exp(c)``;
      ``lse = log Z``
    * ``softmax1``: ``p = exp(s) / Z``, ``Z = 1 + sum exp(s) + exp(c)``;
      ``lse = log Z``
    * ``scalable_softmax``: ``s <- s * length_scale * log(n)``
      (``length_scale`` defaults to 1), then ``softmax``; ``lse`` is
      ``log Z`` of the scaled scores.  With ``n = 1`` the factor is 0 and the
      single score becomes exactly 0.  The sink logit ``c`` is *not* scaled.
    * ``sigmoid``:  ``p = 1 / (1 + exp(-(s + bias)))`` (``bias`` defaults to 0)
    * ``relu``:     ``p = max(s, 0)``
    * ``relu2``:    ``p = max(s, 0)^2``
    * ``none``:     ``p = s``
    * ``mean``:     ``p = 1 / n``; ``lse = log n``

    (``exp(c)`` terms are absent without a sink logit.)  The softmax family
    is evaluated as ``m + log(sum exp(t - m))`` with ``m`` the maximum over
    the valid scores, ``c`` and (softmax1) the ``0`` logit of the ``1``
    term, so no term overflows and the largest term is exactly 1.  A row
    whose ``Z`` is 0 (nothing visible, no sink logit, no ``1`` term; also a
    row whose visible scores are all ``-inf``) gets ``p = 0`` and
    ``lse = -inf``; rows with ``n = 0`` get ``p = 0`` under every kind.

    Returns ``(p, lse)``: ``p`` float64 like ``s``, ``lse`` float64
    ``[...]`` for the kinds in ``LSE_NORMALIZATIONS`` and ``None`` otherwise.
    ``bias`` / ``length_scale`` / ``sink_logit`` given to a kind that does
    not use them raise ``ValueError`` (the dialect rejects them too).
    """
    s = _f64(s)
    valid = np.broadcast_to(np.asarray(valid, dtype=bool), s.shape)
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; expected "
                         f"one of {NORMALIZATIONS}")
    if bias is not None and normalization != "sigmoid":
        raise ValueError("'bias' applies only to the sigmoid normalization")
    if length_scale is not None and normalization != "scalable_softmax":
        raise ValueError("'length_scale' applies only to scalable_softmax")
    if sink_logit is not None and normalization not in SOFTMAX_FAMILY:
        raise ValueError("sink logits join a softmax denominator; they have "
                         f"no use under {normalization!r}")
    n = valid.sum(axis=-1)                      # int, shape s.shape[:-1]
    zeros = np.zeros_like(s)

    with np.errstate(over="ignore", under="ignore", divide="ignore",
                     invalid="ignore"):
        if normalization in SOFTMAX_FAMILY:
            if normalization == "scalable_softmax":
                ls = 1.0 if length_scale is None else float(length_scale)
                factor = (ls * np.log(np.maximum(n, 1)))[..., None]
                # n = 1: log(1) = 0, the single score is exactly 0 (even if
                # it was infinite); n = 0: nothing is valid anyway.
                s = np.where(factor == 0.0, 0.0, s * factor)
            x = np.where(valid, s, -np.inf)
            if x.shape[-1] > 0:
                m = x.max(axis=-1)
            else:
                m = np.full(x.shape[:-1], -np.inf)
            c = None
            if sink_logit is not None:
                c = np.broadcast_to(_f64(sink_logit), x.shape[:-1])
                m = np.maximum(m, c)
            if normalization == "softmax1":
                m = np.maximum(m, 0.0)
            # m = -inf: every term is 0, so Z = 0 whatever the shift.
            m_safe = np.where(np.isfinite(m), m, 0.0)
            e = np.where(valid, np.exp(x - m_safe[..., None]), 0.0)
            tot = e.sum(axis=-1)
            if c is not None:
                tot = tot + np.exp(c - m_safe)
            if normalization == "softmax1":
                tot = tot + np.exp(-m_safe)
            p = np.where(tot[..., None] > 0.0, e / tot[..., None], 0.0)
            lse = m_safe + np.log(tot)           # log(0) = -inf
            return p, lse
        if normalization == "sigmoid":
            t = s + (0.0 if bias is None else float(bias))
            e = np.exp(-np.abs(t))               # in (0, 1], never overflows
            sig = np.where(t >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))
            return np.where(valid, sig, zeros), None
        if normalization == "relu":
            return np.where(valid, np.maximum(s, 0.0), zeros), None
        if normalization == "relu2":
            r = np.maximum(s, 0.0)
            return np.where(valid, r * r, zeros), None
        if normalization == "none":
            return np.where(valid, s, zeros), None
        if normalization == "mean":
            inv = np.where(n > 0, 1.0 / np.maximum(n, 1), 0.0)[..., None]
            p = np.where(valid, inv, zeros)
            lse = np.where(n > 0, np.log(np.maximum(n, 1).astype(np.float64)),
                           -np.inf)
            return p, lse
    raise AssertionError(normalization)


# ---------------------------------------------------------------------------
# The whole op
# ---------------------------------------------------------------------------

def _visible_sum(p, vis, vh) -> np.ndarray:
    """``sum_{j in J} p_j vh[..., j, :]`` (§5): ``p [B, Hq, Sq, Sk]`` (0 where
    a key is not visible), ``vis`` the visibility, ``vh [B, Hq, Sk, Dv]``.

    A key the query cannot see adds nothing even when its value row holds a
    NaN or an infinity (a plain matmul would add ``0 * NaN = NaN``): such
    rows are left out of the matmul and added back for the queries that see
    them only."""
    finite = np.isfinite(vh).all(axis=-1)            # [B, Hq, Sk]
    if finite.all():
        return np.matmul(p, vh)
    out = np.matmul(p, np.where(finite[..., None], vh, 0.0))
    vis = np.broadcast_to(vis, p.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        for b, h, j in zip(*np.nonzero(~finite)):
            rows = vis[b, h, :, j]
            out[b, h, rows] += p[b, h, rows, j, None] * vh[b, h, j]
    return out


def attention(q, k, v, *, score="dot", scale=None, gamma=None,
              q_map="identity", k_map="identity", masks=(),
              normalization="softmax", bias=None, length_scale=None,
              sink_logits=None, sink_key=None, sink_value=None, captures=(),
              score_mod=None, mask_mod=None, return_lse=False):
    """``attn.attention`` in float64 (docs/semantics.md §1-§5).

    q [B,Hq,Sq,D], k [B,Hkv,Sk,D], v [B,Hkv,Sk,Dv] (any float dtype; computed
    in float64).  Returns O float64 [B,Hq,Sq,Dv] (and lse float64 [B,Hq,Sq] if
    return_lse).

    For every ``(b, h, i)`` with ``hk = h // (Hq / Hkv)``:

    1. ``qf = phi_q(q[b,h,i,:])``, ``kf_j = phi_k(k[b,hk,j,:])``,
       ``kf_r = phi_k(sink_key[hk,r,:])`` (``feature_map``).
    2. ``s_j`` / ``s_r`` from the score kernel (``scores``): ``dot``
       ``scale * qf . kf`` or ``rbf`` ``-gamma * |qf - kf|^2``.
    3. ``s_j <- score_mod(s_j, b, h, i, j, *captures)`` for the ``Sk``
       regular keys only (never for sink rows).
    4. ``J = {j : visible(b,h,i,j)}`` (``visibility``); the ``Ns`` sink rows
       ``R`` are always visible.
    5. ``p = normalize(s over J and R)`` with ``c = sink_logits[h]``
       (``normalize``), and
       ``O[b,h,i,:] = sum_{j in J} p_j v[b,hk,j,:]
       + sum_{r in R} p_r sink_value[hk,r,:]``.

    ``sink_logits [Hq]``, ``sink_key [Hkv, Ns, D]``, ``sink_value
    [Hkv, Ns, Dv]`` (both or neither).  ``captures`` are handed to
    ``score_mod`` / ``mask_mod`` (float tensors as float64, integer tensors
    as int64) and indexed by ``document`` masks.  ``lse`` exists for
    ``LSE_NORMALIZATIONS`` only (``ValueError`` otherwise).  A query that
    sees nothing gets ``O = 0`` (never NaN) and ``lse = log Z`` (``-inf``
    when ``Z = 0``).
    """
    q, k, v = _f64(q), _f64(k), _f64(v)
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"q, k, v must have rank 4, got shapes {q.shape}, "
                         f"{k.shape}, {v.shape}")
    B, Hq, Sq, D = q.shape
    Bk, Hkv, Sk, Dk = k.shape
    if Bk != B or v.shape[0] != B:
        raise ValueError(f"batch sizes differ: {q.shape}, {k.shape}, "
                         f"{v.shape}")
    if Dk != D:
        raise ValueError(f"q head dim {D} != k head dim {Dk}")
    if v.shape[1] != Hkv or v.shape[2] != Sk:
        raise ValueError(f"v must be [B, Hkv, Sk, Dv] = [{B}, {Hkv}, {Sk}, "
                         f"Dv], got {v.shape}")
    Dv = v.shape[3]
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}")
    if return_lse and normalization not in LSE_NORMALIZATIONS:
        raise ValueError(f"'lse' is defined for {LSE_NORMALIZATIONS}, not "
                         f"for {normalization!r}")
    if (sink_key is None) != (sink_value is None):
        raise ValueError("sink rows need both sink_key and sink_value")
    hk = kv_head_index(Hq, Hkv)
    caps = tuple(_capture(c) for c in captures)

    # §1 feature maps; GQA: gather the kv head of every query head.
    qf = feature_map(q, q_map)                       # [B, Hq, Sq, D]
    kf = feature_map(k, k_map)[:, hk]                # [B, Hq, Sk, D]
    vh = v[:, hk]                                    # [B, Hq, Sk, Dv]

    # §2 score kernel on the regular keys.
    s = scores(qf, kf, score, scale=scale, gamma=gamma)   # [B, Hq, Sq, Sk]

    # §3 score region (regular keys only).
    if score_mod is not None:
        b_i, h_i, i_i, j_i = _index_grids(B, Hq, Sq, Sk)
        s = np.broadcast_to(
            np.asarray(score_mod(s.copy(), b_i, h_i, i_i, j_i, *caps),
                       dtype=np.float64), s.shape)

    # §4 visibility.
    vis = visibility(B, Hq, Sq, Sk, masks, caps, mask_mod)

    # Sink rows: score kernel (with phi_k), no score region, always visible.
    if sink_key is not None:
        sk = _f64(sink_key)
        sv = _f64(sink_value)
        if sk.ndim != 3 or sk.shape[0] != Hkv or sk.shape[2] != D:
            raise ValueError(f"sink_key must be [Hkv, Ns, D] = [{Hkv}, Ns, "
                             f"{D}], got {sk.shape}")
        if sv.shape != (Hkv, sk.shape[1], Dv):
            raise ValueError(f"sink_value must be [Hkv, Ns, Dv] = [{Hkv}, "
                             f"{sk.shape[1]}, {Dv}], got {sv.shape}")
        skf = feature_map(sk, k_map)[hk][None]       # [1, Hq, Ns, D]
        svh = sv[hk]                                 # [Hq, Ns, Dv]
        s_sink = scores(qf, skf, score, scale=scale, gamma=gamma)
        s_all = np.concatenate([s, s_sink], axis=-1)
        valid = np.concatenate(
            [vis, np.ones(s_sink.shape, dtype=bool)], axis=-1)
    else:
        svh = None
        s_all, valid = s, vis

    c = None
    if sink_logits is not None:
        sl = _f64(sink_logits)
        if sl.shape != (Hq,):
            raise ValueError(f"sink_logits must be [Hq] = [{Hq}], got "
                             f"{sl.shape}")
        c = np.broadcast_to(sl.reshape(1, Hq, 1), (B, Hq, Sq))

    # §5 normalization and aggregation.
    p, lse = normalize(s_all, valid, normalization, bias=bias,
                       length_scale=length_scale, sink_logit=c)
    out = _visible_sum(p[..., :Sk], vis, vh)         # [B, Hq, Sq, Dv]
    if svh is not None:
        out = out + np.matmul(p[..., Sk:], svh[None])
    if return_lse:
        return out, lse
    return out


# ---------------------------------------------------------------------------
# Mask dict constructors (convenience for tests and callers)
# ---------------------------------------------------------------------------

def causal(alignment: str = "top_left") -> dict:
    """``#attn.causal<alignment>``: ``j <= pos(i)``."""
    return {"kind": "causal", "alignment": alignment}


def prefix_lm(prefix: int, alignment: str = "top_left") -> dict:
    """``#attn.prefix_lm<prefix = P>``: ``j < P or j <= pos(i)``."""
    return {"kind": "prefix_lm", "prefix": prefix, "alignment": alignment}


def document(q_segments: int = 0, kv_segments: int = 0) -> dict:
    """``#attn.document<q_segments = a, kv_segments = c>``:
    ``captures[a][b, i] == captures[c][b, j]``."""
    return {"kind": "document", "q_segments": q_segments,
            "kv_segments": kv_segments}


def sliding_window(left: int, right: int = 0,
                   alignment: str = "top_left") -> dict:
    """``#attn.sliding_window<left = L, right = R>``:
    ``pos - L <= j <= pos + R``."""
    return {"kind": "sliding_window", "left": left, "right": right,
            "alignment": alignment}


def any_of(*masks: dict) -> dict:
    """``#attn.any_of<[...]>``: a key visible by any of the (positional)
    masks."""
    return {"kind": "any_of", "masks": list(masks)}


def chunked(size: int, alignment: str = "top_left") -> dict:
    """``#attn.chunked<size = C>``: ``pos >= 0 and floor(pos / C) ==
    floor(j / C)``."""
    return {"kind": "chunked", "size": size, "alignment": alignment}


def neighborhood_1d(kernel: int, dilation: int = 1) -> dict:
    """``#attn.neighborhood_1d<kernel = K, dilation = D>``:
    ``nat(i, j, Sk, K, D)``."""
    return {"kind": "neighborhood_1d", "kernel": kernel, "dilation": dilation}


def neighborhood_2d(height: int, width: int, kernel_h: int, kernel_w: int,
                    dilation_h: int = 1, dilation_w: int = 1) -> dict:
    """``#attn.neighborhood_2d<...>``: 1-D neighborhoods on the row and the
    column of a row-major ``height x width`` grid."""
    return {"kind": "neighborhood_2d", "height": height, "width": width,
            "kernel_h": kernel_h, "kernel_w": kernel_w,
            "dilation_h": dilation_h, "dilation_w": dilation_w}


def sink_tokens(count: int) -> dict:
    """``#attn.sink_tokens<count = N>``: keys ``j < N`` pass the local masks."""
    return {"kind": "sink_tokens", "count": count}


# ---------------------------------------------------------------------------
# §6 The backward (attn.attention_grad)
# ---------------------------------------------------------------------------
#
# Written from /work/shared/BACKWARD.md and docs/semantics.md §6, never from
# the compiler: the forward quantities are recomputed here in float64 from
# the public helpers above, and the analytic gradients of every built-in kind
# are written out. Score regions (Python callables) are differentiated by
# central finite differences in float64, elementwise (the region is
# pointwise in the score) and per capture element; see `region_partials`.

class AttentionGrads(NamedTuple):
    """The gradients of ``attention_backward``, float64.

    ``d_sink_logits [Hq]``, ``d_sink_key [Hkv, Ns, D]``, ``d_sink_value
    [Hkv, Ns, Dv]`` are ``None`` when the op has no such operand;
    ``d_captures`` has one entry per capture: the gradient (the capture's
    shape) of a floating capture, ``None`` for an integer one.
    """
    dq: np.ndarray
    dk: np.ndarray
    dv: np.ndarray
    d_sink_logits: Optional[np.ndarray]
    d_sink_key: Optional[np.ndarray]
    d_sink_value: Optional[np.ndarray]
    d_captures: tuple

    def op_results(self) -> list:
        """The arrays in the result order of ``attn.attention_grad``: dq, dk,
        dv, then d_sink_logits, d_sink_key, d_sink_value where present, then
        the gradients of the floating captures."""
        out = [self.dq, self.dk, self.dv]
        out += [g for g in (self.d_sink_logits, self.d_sink_key,
                            self.d_sink_value) if g is not None]
        return out + [g for g in self.d_captures if g is not None]


def feature_map_derivative(x, kind: str = "identity") -> np.ndarray:
    """``phi'(x)`` elementwise (§1): ``identity``: 1; ``elu_plus_one``: 1 if
    ``x > 0`` else ``exp(x)``; ``relu``: 1 if ``x > 0`` else 0."""
    x = _f64(x)
    if kind == "identity":
        return np.ones_like(x)
    if kind == "elu_plus_one":
        return np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0)))
    if kind == "relu":
        return (x > 0).astype(np.float64)
    raise ValueError(f"unknown feature map {kind!r}; expected one of "
                     f"{FEATURE_MAPS}")


def _is_float_capture(c) -> bool:
    return np.asarray(c).dtype.kind == "f"


def _fd_step(x) -> np.ndarray:
    """The central-difference step for values ``x``: relative, at least
    1e-5 (float64: truncation ~ h^2 f''' and rounding ~ 1e-16 |f| / h both
    stay near 1e-10)."""
    return 1e-5 * np.maximum(1.0, np.abs(x))


def region_partials(score_mod: Callable, s0, B: int, Hq: int, Sq: int,
                    Sk: int, captures: Sequence = ()):
    """The partial derivatives of a score region ``f(s0, b, h, i, j, *caps)``
    by central finite differences in float64.

    Returns ``(dfds, dfdc)``: ``dfds [B, Hq, Sq, Sk]`` is ``df/ds`` at
    ``s0``, elementwise (the region is pointwise in its score, so one
    perturbation of the whole score array gives every element); ``dfdc`` has
    one entry per capture, ``None`` for integer captures, else a function
    ``m -> df/dcapture[m] [B, Hq, Sq, Sk]`` of a flat element index ``m``
    (evaluated lazily: two region calls per element).
    """
    s0 = _f64(s0)
    caps = [_capture(c) for c in captures]
    grids = _index_grids(B, Hq, Sq, Sk)
    shape = (B, Hq, Sq, Sk)

    def f(s, cs):
        return np.broadcast_to(np.asarray(
            score_mod(s.copy(), *grids, *cs), dtype=np.float64), shape)

    h = _fd_step(s0)
    with np.errstate(invalid="ignore", over="ignore"):
        dfds = (f(s0 + h, caps) - f(s0 - h, caps)) / (2.0 * h)

    def capture_partial(idx):
        def partial(m):
            c = caps[idx]
            step = float(_fd_step(c.flat[m]))
            plus, minus = c.copy(), c.copy()
            plus.flat[m] += step
            minus.flat[m] -= step
            up = f(s0, caps[:idx] + [plus] + caps[idx + 1:])
            down = f(s0, caps[:idx] + [minus] + caps[idx + 1:])
            with np.errstate(invalid="ignore", over="ignore"):
                return (up - down) / (2.0 * step)
        return partial

    dfdc = [capture_partial(n) if caps[n].dtype.kind == "f" else None
            for n in range(len(caps))]
    return dfds, dfdc


def normalization_backward(p, dp, s, valid, normalization: str = "softmax",
                           *, length_scale: Optional[float] = None,
                           dlse=None):
    """``dS = dL/ds`` for the scores ``s [..., N]`` fed to ``normalize``
    (regular keys and sink rows side by side), given the weights ``p`` and
    ``dp = dL/dp`` (``dO . v``). Returns ``(dS, D)``, ``D = sum p dp`` per
    row (``None`` outside the softmax family).

    * ``softmax``, ``softmax1``: ``p (dp - D + dlse)``
    * ``scalable_softmax``: ``length_scale * log(n)`` times that (``n`` the
      row's visible count, a constant)
    * ``sigmoid``: ``dp p (1 - p)``
    * ``relu``: ``dp [s > 0]``; ``relu2``: ``2 dp max(s, 0)``; ``none``:
      ``dp``
    * ``mean``: 0

    Invisible entries get exactly 0 (never NaN, whatever their score).
    """
    s = _f64(s)
    valid = np.broadcast_to(np.asarray(valid, dtype=bool), s.shape)
    dp = np.where(valid, _f64(dp), 0.0)
    zeros = np.zeros_like(s)
    if normalization in SOFTMAX_FAMILY:
        D = (p * dp).sum(axis=-1)
        g = -D[..., None]
        if dlse is not None:
            g = g + _f64(dlse)[..., None]
        ds = np.where(valid, p * (dp + g), 0.0)
        if normalization == "scalable_softmax":
            ls = 1.0 if length_scale is None else float(length_scale)
            n = valid.sum(axis=-1)
            ds = ds * (ls * np.log(np.maximum(n, 1)))[..., None]
        return ds, D
    if normalization == "sigmoid":
        return np.where(valid, dp * p * (1.0 - p), zeros), None
    if normalization == "relu":
        return np.where(valid & (s > 0), dp, zeros), None
    if normalization == "relu2":
        return np.where(valid, 2.0 * dp * np.maximum(s, 0.0), zeros), None
    if normalization == "none":
        return dp, None
    if normalization == "mean":
        return zeros, None
    raise ValueError(f"unknown normalization {normalization!r}")


def kernel_backward(ds, qf, kf, score: str = "dot", *,
                    scale: Optional[float] = None,
                    gamma: Optional[float] = None):
    """Chain ``ds [..., Sq, N] = dL/ds`` through the score kernel (§2) on
    ``qf [..., Sq, D]``, ``kf [..., N, D]``; returns ``(dqf, dkf)`` of
    their shapes (leading dims as broadcast).

    * ``dot``: ``dqf = scale ds kf``, ``dkf = scale ds^T qf``
    * ``rbf``: ``dqf_i = 2 gamma sum_j ds_ij (kf_j - qf_i)``,
      ``dkf_j = 2 gamma sum_i ds_ij (qf_i - kf_j)``, accumulated from the
      differences one feature at a time (no norm expansion).
    """
    ds, qf, kf = _f64(ds), _f64(qf), _f64(kf)
    D = qf.shape[-1]
    if score == "dot":
        sc = default_scale(D) if scale is None else float(scale)
        return (sc * np.matmul(ds, kf),
                sc * np.matmul(np.swapaxes(ds, -1, -2), qf))
    if score != "rbf":
        raise ValueError(f"unknown score kind {score!r}")
    g2 = 2.0 * (default_gamma(D) if gamma is None else float(gamma))
    lead = np.broadcast_shapes(ds.shape[:-2], qf.shape[:-2], kf.shape[:-2])
    dqf = np.zeros(lead + (qf.shape[-2], D))
    dkf = np.zeros(lead + (kf.shape[-2], D))
    for d in range(D):
        w = ds * (kf[..., None, :, d] - qf[..., :, None, d])
        dqf[..., d] = g2 * w.sum(axis=-1)
        dkf[..., d] = -g2 * w.sum(axis=-2)
    return dqf, dkf


def _sum_query_heads(x, Hkv: int, axis: int = 1) -> np.ndarray:
    """Sums the per-query-head gradients ``x`` (query heads on ``axis``)
    over the ``G = Hq / Hkv`` heads that read each kv head (``h // G``)."""
    x = np.moveaxis(x, axis, 0)
    Hq = x.shape[0]
    x = x.reshape((Hkv, Hq // Hkv) + x.shape[1:]).sum(axis=1)
    return np.moveaxis(x, 0, axis)


class _Forward(NamedTuple):
    """The forward quantities that the backward needs (float64)."""
    qf: np.ndarray          # [B, Hq, Sq, D]   phi_q(q)
    kf_all: np.ndarray      # [B, Hq, Sk+Ns, D] phi_k of the keys, sink keys
    vh_all: np.ndarray      # [B, Hq, Sk+Ns, Dv] values, sink values
    s0: np.ndarray          # [B, Hq, Sq, Sk]  scores before the region
    s_all: np.ndarray       # [B, Hq, Sq, Sk+Ns] scores fed to normalize
    valid: np.ndarray       # [B, Hq, Sq, Sk+Ns]
    p: np.ndarray           # [B, Hq, Sq, Sk+Ns]
    lse: Optional[np.ndarray]
    c: Optional[np.ndarray]  # [B, Hq, Sq] sink logits per row


def _backward_forward(q, k, v, *, score, scale, gamma, q_map, k_map, masks,
                      normalization, bias, length_scale, sink_logits,
                      sink_key, sink_value, captures, score_mod,
                      mask_mod) -> _Forward:
    """Recomputes §1-§5 (as ``attention`` does) keeping the intermediates."""
    B, Hq, Sq, D = q.shape
    Hkv, Sk, Dv = k.shape[1], k.shape[2], v.shape[3]
    hk = kv_head_index(Hq, Hkv)
    caps = tuple(_capture(c) for c in captures)
    qf = feature_map(q, q_map)
    kf = feature_map(k, k_map)[:, hk]
    vh = v[:, hk]
    s0 = scores(qf, kf, score, scale=scale, gamma=gamma)
    s = s0
    if score_mod is not None:
        s = np.broadcast_to(np.asarray(
            score_mod(s0.copy(), *_index_grids(B, Hq, Sq, Sk), *caps),
            dtype=np.float64), s0.shape)
    valid = visibility(B, Hq, Sq, Sk, masks, caps, mask_mod)
    if sink_key is not None:
        skf = np.broadcast_to(feature_map(sink_key, k_map)[hk][None],
                              (B, Hq, sink_key.shape[1], D))
        svh = np.broadcast_to(_f64(sink_value)[hk][None],
                              (B, Hq, sink_key.shape[1], Dv))
        s = np.concatenate([s, scores(qf, skf, score, scale=scale,
                                      gamma=gamma)], axis=-1)
        valid = np.concatenate(
            [valid, np.ones(s.shape[:-1] + (skf.shape[2],), bool)], axis=-1)
        kf, vh = np.concatenate([kf, skf], 2), np.concatenate([vh, svh], 2)
    c = None
    if sink_logits is not None:
        c = np.broadcast_to(_f64(sink_logits).reshape(1, Hq, 1), (B, Hq, Sq))
    p, lse = normalize(s, valid, normalization, bias=bias,
                       length_scale=length_scale, sink_logit=c)
    return _Forward(qf, kf, vh, s0, s, valid, p, lse, c)


def _check_backward_args(q, k, v, do, normalization, dlse, sink_logits,
                         sink_key, sink_value):
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"q, k, v must have rank 4, got shapes {q.shape}, "
                         f"{k.shape}, {v.shape}")
    B, Hq, Sq, _ = q.shape
    Hkv, Sk = k.shape[1], k.shape[2]
    if k.shape[0] != B or v.shape[:3] != (B, Hkv, Sk) or k.shape[3] != \
            q.shape[3]:
        raise ValueError(f"q, k, v shapes disagree: {q.shape}, {k.shape}, "
                         f"{v.shape}")
    if do.shape != (B, Hq, Sq, v.shape[3]):
        raise ValueError(f"dO must be [B, Hq, Sq, Dv] = "
                         f"{(B, Hq, Sq, v.shape[3])}, got {do.shape}")
    if dlse is not None:
        if normalization not in LSE_NORMALIZATIONS:
            raise ValueError(f"'dlse' needs an lse, which {normalization!r} "
                             f"does not define")
        if np.shape(dlse) != (B, Hq, Sq):
            raise ValueError(f"dlse must be [B, Hq, Sq] = {(B, Hq, Sq)}, "
                             f"got {np.shape(dlse)}")
    if (sink_key is None) != (sink_value is None):
        raise ValueError("sink rows need both sink_key and sink_value")
    if sink_logits is not None and np.shape(sink_logits) != (Hq,):
        raise ValueError(f"sink_logits must be [Hq] = [{Hq}], got "
                         f"{np.shape(sink_logits)}")
    if sink_key is not None and (
            np.ndim(sink_key) != 3 or np.shape(sink_key)[0] != Hkv
            or np.shape(sink_value) != (Hkv, np.shape(sink_key)[1],
                                        v.shape[3])):
        raise ValueError(f"sink rows must be [Hkv, Ns, D] and [Hkv, Ns, Dv],"
                         f" got {np.shape(sink_key)}, {np.shape(sink_value)}")


def _capture_gradients(score_mod, f: _Forward, ds_reg, captures, shape):
    """``dS0 = dS * df/ds`` and, per floating capture element ``m``,
    ``sum dS * df/dcapture[m]`` (``region_partials``); only entries with
    ``dS != 0`` contribute, so invisible keys (whose region values may be
    infinite) never do."""
    live = ds_reg != 0.0
    if score_mod is None:
        return ds_reg, tuple(np.zeros(np.shape(c)) if _is_float_capture(c)
                             else None for c in captures)
    dfds, dfdc = region_partials(score_mod, f.s0, *shape, captures)
    ds0 = np.where(live, ds_reg * np.where(live, dfds, 0.0), 0.0)
    grads = []
    for c, partial in zip(captures, dfdc):
        if partial is None:
            grads.append(None)
            continue
        g = np.zeros(np.size(c))
        for m in range(g.size):
            g[m] = np.where(live, ds_reg * np.where(live, partial(m), 0.0),
                            0.0).sum()
        grads.append(g.reshape(np.shape(c)))
    return ds0, tuple(grads)


def attention_backward(q, k, v, do, *, score="dot", scale=None, gamma=None,
                       q_map="identity", k_map="identity", masks=(),
                       normalization="softmax", bias=None, length_scale=None,
                       sink_logits=None, sink_key=None, sink_value=None,
                       captures=(), score_mod=None, mask_mod=None,
                       dlse=None) -> AttentionGrads:
    """The gradients of ``attn.attention`` (docs/semantics.md §6), float64.

    Arguments as ``attention`` (the variant's specification, captures and
    sinks), plus ``do = dL/dO [B, Hq, Sq, Dv]`` and ``dlse = dL/dlse
    [B, Hq, Sq]`` (only for ``LSE_NORMALIZATIONS``; under ``mean`` it has no
    effect). For ``L = sum(do * O) + sum(dlse * lse)`` returns
    ``AttentionGrads``: ``dq``, ``dk``, ``dv`` (the shapes of q, k, v; GQA:
    kv gradients summed over the query heads of a group), the sink
    gradients and one entry per capture (``None`` for integer captures).

    Every built-in kind is differentiated analytically
    (``normalization_backward``, ``kernel_backward``,
    ``feature_map_derivative``); the score region, a Python callable, by
    central finite differences (``region_partials``). A query that sees
    nothing contributes exactly 0 (never NaN), except through a sink logit.
    """
    q, k, v, do = _f64(q), _f64(k), _f64(v), _f64(do)
    _check_backward_args(q, k, v, do, normalization, dlse, sink_logits,
                         sink_key, sink_value)
    sk = None if sink_key is None else _f64(sink_key)
    sv = None if sink_value is None else _f64(sink_value)
    f = _backward_forward(
        q, k, v, score=score, scale=scale, gamma=gamma, q_map=q_map,
        k_map=k_map, masks=masks, normalization=normalization, bias=bias,
        length_scale=length_scale, sink_logits=sink_logits, sink_key=sk,
        sink_value=sv, captures=captures, score_mod=score_mod,
        mask_mod=mask_mod)
    B, Hq, Sq, _ = q.shape
    Hkv, Sk = k.shape[1], k.shape[2]
    if normalization == "mean":
        dlse = None                                  # lse = log n
    dp = np.matmul(do, np.swapaxes(f.vh_all, -1, -2))
    ds, D = normalization_backward(f.p, dp, f.s_all, f.valid, normalization,
                                   length_scale=length_scale, dlse=dlse)
    dvh = np.matmul(np.swapaxes(f.p, -1, -2), do)    # [B, Hq, Sk+Ns, Dv]

    d_sink_logits = None
    if f.c is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            pc = np.where(np.isfinite(f.lse), np.exp(f.c - f.lse), 0.0)
        g = -D if dlse is None else _f64(dlse) - D
        d_sink_logits = (pc * g).sum(axis=(0, 2))

    ds0, d_caps = _capture_gradients(score_mod, f, ds[..., :Sk], captures,
                                     (B, Hq, Sq, Sk))
    ds_all = np.concatenate([ds0, ds[..., Sk:]], axis=-1)
    dqf, dkf = kernel_backward(ds_all, f.qf, f.kf_all, score, scale=scale,
                               gamma=gamma)
    dq = dqf * feature_map_derivative(q, q_map)
    dk = _sum_query_heads(dkf[:, :, :Sk], Hkv) * feature_map_derivative(
        k, k_map)
    dv = _sum_query_heads(dvh[:, :, :Sk], Hkv)
    d_sink_key = d_sink_value = None
    if sk is not None:
        d_sink_key = _sum_query_heads(dkf[:, :, Sk:].sum(axis=0), Hkv, 0) \
            * feature_map_derivative(sk, k_map)
        d_sink_value = _sum_query_heads(dvh[:, :, Sk:].sum(axis=0), Hkv, 0)
    return AttentionGrads(dq, dk, dv, d_sink_logits, d_sink_key,
                          d_sink_value, d_caps)
