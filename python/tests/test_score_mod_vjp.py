"""The derivative of score_mod regions (``emitScoreModVJP``), run on the CPU.

For each region below, ``attn-opt --attn-test-score-mod-vjp`` emits
``@<name>_score_mod`` (the region as a function) and ``@<name>_score_mod_vjp``
(``ds = g df/ds``, one contribution ``g df/dc`` per read of a floating
capture, then the index operands of those reads). attn-run takes only
tensors, so the test appends ``@check_1d``: an ``scf.for`` over N points that
reads ``s, b, h, i, j, g`` from 1-D tensors, calls both functions and
writes every scalar result into a 1-D tensor (indices as i64).

Each region also has an independent float64 numpy transcription ``f``.
Checked, at seeded random points (large magnitudes and both sides of every
select / max included):

* the region as run (f32) against ``f``;
* ``ds`` against the central finite difference of ``g f`` in s, float64;
* the capture gradients: the contributions scattered as a caller does
  (``dcap[indices] += contribution``), per point, against the central
  finite difference of ``g f`` in every element of every floating capture.
  A wrong index or a missed read fails this as surely as a wrong value.

Tolerance: ``|got - fd| <= 1e-4 |fd| + 1e-5 |g| scale`` (f32 arithmetic
against float64; ``scale`` the case's typical |df| where it is large, e.g.
``1 - tanh^2`` cancels when tanh is near 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import pytest

N = 96                       # points per case
B, H, S = 2, 4, 40           # ranges of b, h and of i, j


@dataclass(frozen=True)
class Case:
    name: str
    body: str                      # region body on %s %b %h %i %j %c0 ...
    f: Callable                    # float64 f(s, b, h, i, j, caps)
    captures: Tuple[str, ...] = ()  # the region's capture types
    values: Optional[Callable] = None  # rng -> [np arrays], static shapes
    s_scales: Sequence[float] = (1.0, 30.0, 1e3, 1e4)
    scale: float = 1.0
    # (s, b, h, i, j, caps) -> one bool array per select / max / min: the
    # points must reach both sides of each
    branch: Optional[Callable] = None


CASES = []


def case(name, **kw):
    c = Case(name, **kw)
    assert c.name not in {x.name for x in CASES}, name
    CASES.append(c)


def _clamp(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


case("softcap", body="""
  %c = arith.constant 30.0 : f32
  %x = arith.divf %s, %c : f32
  %t = math.tanh %x : f32
  %r = arith.mulf %c, %t : f32
  attn.yield %r : f32
""", f=lambda s, b, h, i, j, caps: 30.0 * np.tanh(s / 30.0))

case("alibi", body="""
  %m = tensor.extract %c0[%h] : tensor<?xf32>
  %ii = arith.index_cast %i : index to i64
  %jj = arith.index_cast %j : index to i64
  %d = arith.subi %jj, %ii : i64
  %df = arith.sitofp %d : i64 to f32
  %bias = arith.mulf %m, %df : f32
  %r = arith.addf %s, %bias : f32
  attn.yield %r : f32
""", captures=("tensor<?xf32>",),
     values=lambda rng: [rng.uniform(-1, 1, H)],
     f=lambda s, b, h, i, j, caps: s + caps[0][h] * (j - i))

case("bias_table", body="""
  %lo = arith.constant -4 : index
  %hi = arith.constant 4 : index
  %d = arith.subi %j, %i : index
  %d0 = arith.maxsi %d, %lo : index
  %d1 = arith.minsi %d0, %hi : index
  %k = arith.addi %d1, %hi : index
  %t = tensor.extract %c0[%h, %k] : tensor<?x9xf32>
  %r = arith.addf %s, %t : f32
  attn.yield %r : f32
""", captures=("tensor<?x9xf32>",),
     values=lambda rng: [rng.normal(0, 2, (H, 9))],
     f=lambda s, b, h, i, j, caps: s + caps[0][h, _clamp(j - i, -4, 4) + 4])

case("relu_like", body="""
  %zero = arith.constant 0.0 : f32
  %slope = arith.constant 0.125 : f32
  %pos = arith.cmpf ogt, %s, %zero : f32
  %small = arith.mulf %s, %slope : f32
  %leaky = arith.select %pos, %s, %small : f32
  %f = tensor.extract %c0[%h] : tensor<4xf32>
  %r = arith.maximumf %leaky, %f : f32
  attn.yield %r : f32
""", captures=("tensor<4xf32>",),
     values=lambda rng: [rng.normal(0, 20, H)],
     s_scales=(1.0, 30.0, 100.0),
     f=lambda s, b, h, i, j, caps: np.maximum(
         np.where(s > 0, s, 0.125 * s), caps[0][h]),
     branch=lambda s, b, h, i, j, caps: (
         s > 0, np.where(s > 0, s, 0.125 * s) >= caps[0][h]))

# Captures inside both arms of a select on an index predicate, then a cap
# by minimumf and a floor by maxnumf / minnumf.
case("select_captures", body="""
  %m = tensor.extract %c0[%h] : tensor<4xf32>
  %c = tensor.extract %c1[%b, %h] : tensor<2x4xf32>
  %causal = arith.cmpi sge, %i, %j : index
  %a = arith.mulf %m, %s : f32
  %d = arith.subf %s, %c : f32
  %sel = arith.select %causal, %a, %d : f32
  %cap = arith.constant 50.0 : f32
  %lo = arith.minimumf %sel, %cap : f32
  %floor = arith.constant -500.0 : f32
  %x = arith.maxnumf %lo, %floor : f32
  %y = arith.minnumf %x, %cap : f32
  attn.yield %y : f32
""", captures=("tensor<4xf32>", "tensor<2x4xf32>"),
     values=lambda rng: [rng.uniform(0.5, 2, H), rng.normal(0, 5, (B, H))],
     s_scales=(1.0, 30.0, 1000.0),
     f=lambda s, b, h, i, j, caps: _clamp(_sel(s, b, h, i, j, caps),
                                          -500.0, 50.0),
     branch=lambda s, b, h, i, j, caps: (
         i >= j, _sel(s, b, h, i, j, caps) < 50.0,
         _sel(s, b, h, i, j, caps) > -500.0))

# exp, log, sqrt: sqrt(1 + log(1 + exp(s))), a softplus under a root (the
# 1 keeps the root away from 0, where its derivative is infinite: the CPU
# lowering computes log1p(x) as log(1 + x), 0 for tiny x).
case("exp_log_sqrt", body="""
  %one = arith.constant 1.0 : f32
  %e = math.exp %s : f32
  %l = math.log1p %e : f32
  %l1 = arith.addf %l, %one : f32
  %r = math.sqrt %l1 : f32
  attn.yield %r : f32
""", s_scales=(1.0, 10.0, 20.0),
     f=lambda s, b, h, i, j, caps: np.sqrt(1 + np.log1p(np.exp(s))))

# exp2, log2, rsqrt, absf, powf with a constant exponent, erf.
case("exp2_log2_rsqrt_pow_erf", body="""
  %one = arith.constant 1.0 : f32
  %two = arith.constant 2.0 : f32
  %k = arith.constant 1.5 : f32
  %q = arith.constant 0.25 : f32
  %ss = arith.mulf %s, %s : f32
  %ss1 = arith.addf %ss, %one : f32
  %rs = math.rsqrt %ss1 : f32
  %a = math.absf %s : f32
  %a2 = arith.addf %a, %two : f32
  %l2 = math.log2 %a2 : f32
  %t0 = arith.mulf %rs, %l2 : f32
  %a1 = arith.addf %a, %one : f32
  %p = math.powf %a1, %k : f32
  %sq = arith.mulf %s, %q : f32
  %er = math.erf %sq : f32
  %na = arith.negf %a : f32
  %n8 = arith.mulf %na, %q : f32
  %e2 = math.exp2 %n8 : f32
  %t1 = arith.addf %t0, %p : f32
  %t2 = arith.addf %t1, %er : f32
  %r = arith.addf %t2, %e2 : f32
  attn.yield %r : f32
""", s_scales=(1.0, 10.0, 100.0), scale=100.0,
     f=lambda s, b, h, i, j, caps: (
         np.log2(np.abs(s) + 2) / np.sqrt(s * s + 1)
         + (np.abs(s) + 1) ** 1.5 + _erf(s / 4) + 2.0 ** (-np.abs(s) / 4)))

# divf, subf, log, log10, expm1, cbrt, fma, fpowi, and an f64 intermediate
# (extf / truncf) on a positive capture.
case("div_log10_fma_fpowi_f64", body="""
  %c = tensor.extract %c0[%h] : tensor<4xf32>
  %one = arith.constant 1.0 : f32
  %tenth = arith.constant 0.1 : f32
  %three = arith.constant 3 : i32
  %x = arith.divf %s, %c : f32
  %a = math.absf %x : f32
  %a1 = arith.addf %a, %one : f32
  %lg = math.log %a1 : f32
  %cc = arith.mulf %c, %c : f32
  %cc1 = arith.addf %cc, %one : f32
  %l10 = math.log10 %cc1 : f32
  %st = arith.mulf %s, %tenth : f32
  %em = math.expm1 %st : f32
  %cb = math.cbrt %a1 : f32
  %fm = math.fma %em, %c, %cb : f32
  %pw = math.fpowi %st, %three : f32, i32
  %d = arith.extf %x : f32 to f64
  %dd = arith.mulf %d, %d : f64
  %t = arith.truncf %dd : f64 to f32
  %u0 = arith.subf %lg, %l10 : f32
  %u1 = arith.addf %u0, %fm : f32
  %u2 = arith.addf %u1, %pw : f32
  %r = arith.subf %u2, %t : f32
  attn.yield %r : f32
""", captures=("tensor<4xf32>",),
     values=lambda rng: [rng.uniform(0.5, 2.0, H)],
     s_scales=(1.0, 10.0, 60.0), scale=1e3,
     f=lambda s, b, h, i, j, caps: _div_case(s, caps[0][h]))

# Values used several times: t = tanh(s/8) in t*t + t + m*m*t + m, with m
# read twice from the same element (two contributions, one index).
case("used_twice", body="""
  %k = arith.constant 0.125 : f32
  %x = arith.mulf %s, %k : f32
  %t = math.tanh %x : f32
  %tt = arith.mulf %t, %t : f32
  %u = arith.addf %tt, %t : f32
  %m1 = tensor.extract %c0[%h] : tensor<?xf32>
  %m2 = tensor.extract %c0[%h] : tensor<?xf32>
  %mm = arith.mulf %m1, %m2 : f32
  %mmt = arith.mulf %mm, %t : f32
  %v = arith.addf %u, %mmt : f32
  %r = arith.addf %v, %m1 : f32
  attn.yield %r : f32
""", captures=("tensor<?xf32>",),
     values=lambda rng: [rng.normal(0, 1, H)],
     s_scales=(1.0, 8.0, 100.0),
     f=lambda s, b, h, i, j, caps: (
         np.tanh(s / 8) ** 2 + np.tanh(s / 8)
         + caps[0][h] ** 2 * np.tanh(s / 8) + caps[0][h]))

# An f16 capture (its f32 contribution), an integer capture (no gradient)
# and an op with no rule on a value that does not depend on s.
case("f16_and_int_captures", body="""
  %w16 = tensor.extract %c0[%h] : tensor<4xf16>
  %w = arith.extf %w16 : f16 to f32
  %seg = tensor.extract %c1[%b] : tensor<2xi32>
  %segf = arith.sitofp %seg : i32 to f32
  %jj = arith.index_cast %j : index to i64
  %jf = arith.sitofp %jj : i64 to f32
  %sin = math.sin %jf : f32
  %ws = arith.mulf %w, %s : f32
  %t = arith.addf %ws, %sin : f32
  %r = arith.addf %t, %segf : f32
  attn.yield %r : f32
""", captures=("tensor<4xf16>", "tensor<2xi32>"),
     values=lambda rng: [rng.normal(0, 1, H).astype(np.float16),
                         rng.integers(-3, 3, B).astype(np.int32)],
     f=lambda s, b, h, i, j, caps: (
         caps[0][h] * s + np.sin(j.astype(np.float64)) + caps[1][b]))


def _sel(s, b, h, i, j, caps):
    return np.where(i >= j, caps[0][h] * s, s - caps[1][b, h])


def _erf(x):
    from math import erf
    return np.vectorize(erf, otypes=[np.float64])(x)


def _div_case(s, c):
    x = s / c
    a1 = np.abs(x) + 1
    st = s * 0.1
    return (np.log(a1) - np.log10(c * c + 1) + np.expm1(st) * c
            + np.cbrt(a1) + st ** 3 - x * x)


# ---------------------------------------------------------------------------
# MLIR: the variant, the emitted functions, the 1-D wrapper
# ---------------------------------------------------------------------------

def variant_text(c: Case) -> str:
    caps = "".join(f", %c{k}: {t}" for k, t in enumerate(c.captures))
    return (f"attn.variant @{c.name} score_mod {{\n"
            f"^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index"
            f"{caps}):\n{c.body}}}\n")


def vjp_signature(module: str, name: str) -> Tuple[list, list]:
    """The result types of @<name>_score_mod_vjp and its attn.vjp_captures."""
    line = next(l for l in module.splitlines()
                if f"func.func @{name}_score_mod_vjp(" in l)
    m = re.search(r"\) -> \(?([^(){]*?)\)? attributes \{attn\.vjp_captures "
                  r"= array<i64:?\s*([0-9, ]*)>", line)
    assert m, line
    results = [t.strip() for t in m.group(1).split(",")]
    captures = [int(x) for x in m.group(2).split(",") if x.strip()]
    return results, captures


def wrapper_text(c: Case, static_types: Sequence[str], results: list) -> str:
    """@check_1d(s, b, h, i, j, g, caps...) -> (f, results of the vjp...),
    every one a tensor<N x ...> (index results as i64)."""
    outs = ["f32"] + ["i64" if t == "index" else t for t in results]
    out_types = [f"tensor<{N}x{t}>" for t in outs]
    caps = "".join(f", %cap{k}: {t}" for k, t in enumerate(static_types))
    lines = [f"func.func @check_1d(%S: tensor<{N}xf32>, %B: tensor<{N}xi64>, "
             f"%H: tensor<{N}xi64>, %I: tensor<{N}xi64>, %J: tensor<{N}xi64>, "
             f"%G: tensor<{N}xf32>{caps}) -> ({', '.join(out_types)}) {{",
             "  %zero = arith.constant 0 : index",
             "  %one = arith.constant 1 : index",
             f"  %n = arith.constant {N} : index"]
    cap_names = []
    for k, (st, rt) in enumerate(zip(static_types, c.captures)):
        cap_names.append(f"%cap{k}" if st == rt else f"%rc{k}")
        if st != rt:
            lines.append(f"  %rc{k} = tensor.cast %cap{k} : {st} to {rt}")
    for k, t in enumerate(out_types):
        lines.append(f"  %init{k} = tensor.empty() : {t}")
    accs = ", ".join(f"%acc{k} = %init{k}" for k in range(len(outs)))
    lines.append(f"  %res:{len(outs)} = scf.for %p = %zero to %n step %one "
                 f"iter_args({accs}) -> ({', '.join(out_types)}) {{")
    lines.append(f"    %s = tensor.extract %S[%p] : tensor<{N}xf32>")
    lines.append(f"    %g = tensor.extract %G[%p] : tensor<{N}xf32>")
    for v in "bhij":
        lines.append(f"    %{v}64 = tensor.extract %{v.upper()}[%p] : "
                     f"tensor<{N}xi64>")
        lines.append(f"    %{v} = arith.index_cast %{v}64 : i64 to index")
    cap_args = "".join(f", {name}" for name in cap_names)
    cap_types = "".join(f", {t}" for t in c.captures)
    lines.append(f"    %f = func.call @{c.name}_score_mod(%s, %b, %h, %i, %j"
                 f"{cap_args}) : (f32, index, index, index, index{cap_types})"
                 f" -> f32")
    lines.append(f"    %v:{len(results)} = func.call @{c.name}_score_mod_vjp("
                 f"%s, %b, %h, %i, %j, %g{cap_args}) : (f32, index, index, "
                 f"index, index, f32{cap_types}) -> ({', '.join(results)})")
    values = ["%f"]
    for k, t in enumerate(results):
        if t == "index":
            lines.append(f"    %x{k} = arith.index_cast %v#{k} : index to i64")
            values.append(f"%x{k}")
        else:
            values.append(f"%v#{k}")
    for k, (v, t) in enumerate(zip(values, out_types)):
        lines.append(f"    %out{k} = tensor.insert {v} into %acc{k}[%p] : {t}")
    lines.append("    scf.yield " + ", ".join(
        f"%out{k}" for k in range(len(outs))) + " : " + ", ".join(out_types))
    lines.append("  }")
    lines.append("  return " + ", ".join(f"%res#{k}" for k in range(len(outs)))
                 + " : " + ", ".join(out_types))
    lines.append("}")
    return "\n".join(lines) + "\n"


def static_type(value: np.ndarray) -> str:
    elt = {np.float32: "f32", np.float16: "f16", np.int32: "i32",
           np.int64: "i64"}[value.dtype.type]
    return f"tensor<{'x'.join(map(str, value.shape))}x{elt}>"


# ---------------------------------------------------------------------------
# Points, finite differences, checks
# ---------------------------------------------------------------------------

def points(c: Case, rng):
    scales = rng.choice(np.asarray(c.s_scales, dtype=np.float64), N)
    s = (rng.normal(0, 1, N) * scales).astype(np.float32)
    ints = [rng.integers(0, n, N).astype(np.int64) for n in (B, H, S, S)]
    g = rng.uniform(0.5, 2.0, N) * rng.choice([-1.0, 1.0], N)
    return s, ints, g.astype(np.float32)


def capture_values(c: Case, rng):
    if c.values is None:
        return []
    vals = []
    for v in c.values(rng):
        v = np.asarray(v)
        if v.dtype == np.float64:
            v = v.astype(np.float32)
        vals.append(v)
    return vals


def fd_step(x):
    return 1e-6 * np.maximum(1.0, np.abs(x))


def check_close(what, got, fd, g, scale):
    tol = 1e-4 * np.abs(fd) + 1e-5 * np.abs(g) * scale
    bad = ~(np.abs(got - fd) <= tol)
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} off; first at "
        f"{np.argmax(bad.ravel())}: got {got.ravel()[np.argmax(bad.ravel())]}"
        f", finite difference {fd.ravel()[np.argmax(bad.ravel())]}")


def run_case(c: Case, attn_opt, attn_run, tmp_path):
    rng = np.random.default_rng(0x5C0DE + sum(map(ord, c.name)))
    s, (b, h, i, j), g = points(c, rng)
    caps = capture_values(c, rng)
    src = tmp_path / "variant.mlir"
    src.write_text(variant_text(c))
    opt = attn_opt(src, "--attn-test-score-mod-vjp")
    assert opt.returncode == 0, opt.stderr
    results, vjp_caps = vjp_signature(opt.stdout, c.name)
    module = opt.stdout.rstrip()
    assert module.endswith("}")
    text = module[:-1] + wrapper_text(c, [static_type(v) for v in caps],
                                      results) + "}\n"
    (tmp_path / "check.mlir").write_text(text)

    ins = []
    for k, v in enumerate([s, b, h, i, j, g] + caps):
        p = tmp_path / f"in{k}.npy"
        np.save(p, v)
        ins.append(p)
    outs = [tmp_path / f"out{k}.npy" for k in range(1 + len(results))]
    r = attn_run.run(tmp_path / "check.mlir", "check_1d", inputs=ins,
                     outputs=outs)
    assert r.returncode == 0, r.stderr
    got = [np.load(p) for p in outs]
    return (s, b, h, i, j, g, caps), got, vjp_caps


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_score_mod_vjp(c, attn_opt, attn_run, tmp_path):
    (s, b, h, i, j, g, caps), got, vjp_caps = run_case(
        c, attn_opt, attn_run, tmp_path)
    s64, g64 = s.astype(np.float64), g.astype(np.float64)
    caps64 = [v.astype(np.float64) if v.dtype.kind == "f" else v for v in caps]
    f = lambda s_, caps_=caps64: c.f(s_, b, h, i, j, caps_)

    for k, out in enumerate(got):
        assert np.all(np.isfinite(out)), f"result #{k} has non-finite values"
    if c.branch is not None:
        for d, taken in enumerate(c.branch(s64, b, h, i, j, caps64)):
            assert 0 < np.count_nonzero(taken) < N, \
                f"the points reach one side of decision #{d} only"

    # The region as run, against its transcription.
    ref = f(s64)
    assert np.all(np.abs(got[0] - ref) <= 1e-5 * (1 + np.abs(ref))), \
        np.max(np.abs(got[0] - ref))

    # ds.
    hs = fd_step(s64)
    fd = g64 * (f(s64 + hs) - f(s64 - hs)) / (2 * hs)
    check_close("ds", got[1].astype(np.float64), fd, g64, c.scale)

    # Capture gradients: scatter the contributions, per point.
    n_contrib = len(vjp_caps)
    contribs = got[2:2 + n_contrib]
    index_cols = got[2 + n_contrib:]
    ranks = [caps[cap].ndim for cap in vjp_caps]
    assert sum(ranks) == len(index_cols)
    floating = [k for k, v in enumerate(caps) if v.dtype.kind == "f"]
    assert set(vjp_caps) <= set(floating)
    for p in range(N):
        fp = lambda caps_: c.f(s64[p:p + 1], b[p:p + 1], h[p:p + 1],
                               i[p:p + 1], j[p:p + 1], caps_)[0]
        scattered = {k: np.zeros(caps[k].shape) for k in floating}
        col = 0
        for n, cap in enumerate(vjp_caps):
            idx = tuple(int(index_cols[col + d][p]) for d in range(ranks[n]))
            col += ranks[n]
            scattered[cap][idx] += contribs[n][p]
        for k in floating:
            fd_k = np.zeros(caps[k].shape)
            for idx in np.ndindex(caps[k].shape):
                x = caps64[k][idx]
                step = fd_step(x)
                plus = [v.copy() for v in caps64]
                minus = [v.copy() for v in caps64]
                plus[k][idx] = x + step
                minus[k][idx] = x - step
                fd_k[idx] = g64[p] * (fp(plus) - fp(minus)) / (2 * step)
            check_close(f"dcapture{k} at point {p}", scattered[k], fd_k,
                        g64[p], c.scale)


def test_refusal_names_the_op(attn_opt, tmp_path):
    src = tmp_path / "sine.mlir"
    src.write_text(variant_text(Case("sine", body="""
  %r = math.sin %s : f32
  attn.yield %r : f32
""", f=None)))
    r = attn_opt(src, "--attn-test-score-mod-vjp")
    assert r.returncode != 0
    assert "cannot differentiate 'math.sin' in score_mod" in r.stderr
