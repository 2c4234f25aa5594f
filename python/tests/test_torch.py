"""attn_mlir.torch: the custom ops, their autograd and torch.compile.

Gradients of the compiled op (the CPU path: f32 kernels, float64 tensors
converted in and out) are checked against two independent float64
references: torch autograd on ``_torch_attention`` (a float64 torch
implementation of the same variant, written here from docs/semantics.md)
and ``reference.attention_backward`` (numpy); and against central finite
differences of the op itself along random directions. The loss is ``sum(W *
O) + sum(w * lse)`` with random ``W``, ``w`` (never ones, never zeros).
Sizes are odd, with GQA, Sq != Sk, Dqk != Dv.

Needs torch (skipped without it: CI does not install it). The GPU tests run
only where torch sees a CUDA device, on bundles compiled beforehand
(``python python/tests/test_torch.py --compile-only`` on a machine with
MLIR, sharing ``$ATTN_MLIR_CACHE``).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attn_mlir import compiler, cpu_module, dsl, variants  # noqa: E402
from attn_mlir import reference as ref  # noqa: E402
from attn_mlir import torch as attn  # noqa: E402

B, HQ, HKV, SQ, SK, D, DV, NS = 2, 4, 2, 5, 7, 6, 3, 3


@pytest.fixture(autouse=True)
def _cpu_tools(request):
    """The CPU tests need attn-opt, mlir-translate and clang (a GPU machine
    without MLIR runs only the GPU tests)."""
    if "gpu" not in request.node.name and not cpu_module.available():
        pytest.skip("attn-opt, mlir-translate or clang is missing")

# ---------------------------------------------------------------------------
# The independent float64 torch implementation
# ---------------------------------------------------------------------------


def _torch_attention(q, k, v, *, score="dot", gamma=None, causal=False,
                     normalization="softmax", bias=0.0, score_fn=None,
                     mask_fn=None, sink_logits=None, sink_key=None,
                     sink_value=None):
    """O and lse ([B, Hq, Sq]; None for sigmoid) of docs/semantics.md §1-§5
    for the kinds these tests use, in float64 torch (so autograd gives the
    gradients). ``score_fn(s, b, h, i, j)`` and ``mask_fn(b, h, i, j)`` take
    broadcastable index tensors."""
    Bq, Hq, Sq, Dq = q.shape
    G = Hq // k.shape[1]
    kh, vh = k.repeat_interleave(G, 1), v.repeat_interleave(G, 1)

    def kernel(keys):
        if score == "dot":
            return q @ keys.transpose(-1, -2) / math.sqrt(Dq)
        g = 1.0 / (2.0 * math.sqrt(Dq)) if gamma is None else gamma
        return -g * ((q[..., :, None, :] - keys[..., None, :, :]) ** 2).sum(-1)

    s = kernel(kh)
    Sk = k.shape[2]
    b = torch.arange(Bq).view(-1, 1, 1, 1)
    h = torch.arange(Hq).view(1, -1, 1, 1)
    i = torch.arange(Sq).view(1, 1, -1, 1)
    j = torch.arange(Sk).view(1, 1, 1, -1)
    if score_fn is not None:
        s = score_fn(s, b, h, i, j)
    valid = torch.ones(s.shape, dtype=torch.bool)
    if causal:
        valid = valid & (j <= i)
    if mask_fn is not None:
        valid = valid & mask_fn(b, h, i, j)
    if sink_key is not None:
        s = torch.cat([s, kernel(sink_key.repeat_interleave(G, 0)
                                 .expand(Bq, -1, -1, -1))], -1)
        valid = torch.cat([valid, torch.ones(s.shape[:-1] + (
            sink_key.shape[1],), dtype=torch.bool)], -1)
        vh = torch.cat([vh, sink_value.repeat_interleave(G, 0)
                        .expand(Bq, -1, -1, -1)], 2)
    if normalization == "sigmoid":
        return (torch.sigmoid(s + bias) * valid) @ vh, None
    s = s.masked_fill(~valid, -math.inf)
    extra = []
    if sink_logits is not None:
        extra.append(sink_logits.view(1, -1, 1, 1).expand(Bq, -1, Sq, 1))
    if normalization == "softmax1":
        extra.append(torch.zeros(Bq, Hq, Sq, 1, dtype=s.dtype))
    m = torch.cat([s] + extra, -1).amax(-1, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(s - m)
    z = e.sum(-1, keepdim=True) + sum(torch.exp(x - m) for x in extra)
    p = e / z.clamp_min(1e-300)
    return p @ vh, (m + torch.log(z)).squeeze(-1)


def _alibi_fn(slopes):
    return lambda s, b, h, i, j: s + slopes[h] * (j - i)


# ---------------------------------------------------------------------------
# Cases: a variant, its operands and the same thing in _torch_attention
# ---------------------------------------------------------------------------

@dsl.variant(masks=[dsl.causal()])
def _softcap(score, b, h, q_idx, kv_idx):
    return 7.0 * dsl.tanh(score / 7.0)


@dsl.mask
def _padding(b, h, q_idx, kv_idx, lengths: dsl.i32):
    return kv_idx < lengths[b]


@dsl.variant(mask_mod=_padding)
def _temperature(score, b, h, q_idx, kv_idx, temp, lengths: dsl.i32):
    return score * temp[h]


_SIGMOID = dsl.Variant("sigmoid_causal", normalization="sigmoid",
                       bias=-math.log(SK), masks=[dsl.causal()])
_SOFTMAX1 = dsl.Variant("softmax1_causal", normalization="softmax1",
                        masks=[dsl.causal()])


def _rand(g, *shape, scale=1.0):
    return (scale * torch.randn(*shape, generator=g,
                                dtype=torch.float64)).requires_grad_()


def _case(name, seed=0, scale=1.0):
    """(variant, inputs dict, torch-reference kwargs builder)."""
    g = torch.Generator().manual_seed(seed)
    x = {"q": _rand(g, B, HQ, SQ, D, scale=scale),
         "k": _rand(g, B, HKV, SK, D, scale=scale),
         "v": _rand(g, B, HKV, SK, DV)}
    caps, kw = [], {}
    if name == "causal":
        var, kw = "causal", {"causal": True}
    elif name == "softmax_noncausal":
        var = "softmax"
    elif name == "alibi":
        slopes = torch.nn.Parameter(torch.rand(HQ, generator=g,
                                               dtype=torch.float64) + 0.1)
        caps = [slopes]
        var, kw = "alibi", {"causal": True, "score_fn": _alibi_fn(slopes)}
    elif name == "softcap":
        var = _softcap
        kw = {"causal": True,
              "score_fn": lambda s, b, h, i, j: 7.0 * torch.tanh(s / 7.0)}
    elif name == "gpt_oss_sinks":
        x["sink_logits"] = torch.nn.Parameter(torch.randn(
            HQ, generator=g, dtype=torch.float64))
        var, kw = "gpt_oss_sinks", {"causal": True}
    elif name == "rbf_sink_rows":
        x["sink_key"] = torch.nn.Parameter(0.5 * torch.randn(
            HKV, NS, D, generator=g, dtype=torch.float64))
        x["sink_value"] = torch.nn.Parameter(torch.randn(
            HKV, NS, DV, generator=g, dtype=torch.float64))
        var, kw = "rbf_sink_rows", {"causal": True, "score": "rbf"}
    elif name == "sigmoid":
        var = _SIGMOID
        kw = {"causal": True, "normalization": "sigmoid",
              "bias": -math.log(SK)}
    elif name == "softmax1":
        var, kw = _SOFTMAX1, {"causal": True, "normalization": "softmax1"}
    elif name == "temperature_padding":
        temp = torch.nn.Parameter(torch.rand(HQ, generator=g,
                                             dtype=torch.float64) + 0.5)
        lengths = torch.tensor([SK, 4], dtype=torch.int32)
        caps = [temp, lengths]
        var = _temperature
        kw = {"score_fn": lambda s, b, h, i, j: s * temp[h],
              "mask_fn": lambda b, h, i, j: j < lengths[b]}
    else:
        raise KeyError(name)
    return var, x, caps, kw


CASES = ["causal", "softmax_noncausal", "alibi", "softcap", "gpt_oss_sinks",
         "rbf_sink_rows", "sigmoid", "softmax1", "temperature_padding"]


def _leaves(x, caps):
    return {**{n: t for n, t in x.items()},
            **{f"capture{n}": c for n, c in enumerate(caps)
               if c.is_floating_point()}}


def _op(var, x, caps, **extra):
    rows = (x["sink_key"], x["sink_value"]) if "sink_key" in x else None
    has_lse = compiler.resolve_variant(var).has_lse
    return attn.attention(x["q"], x["k"], x["v"], variant=var, captures=caps,
                          sink_logits=x.get("sink_logits"), sink_rows=rows,
                          return_lse=has_lse, **extra)


def _weights(seed, with_lse):
    g = torch.Generator().manual_seed(1000 + seed)
    W = torch.randn(B, HQ, SQ, DV, generator=g, dtype=torch.float64)
    w = torch.randn(B, HQ, SQ, generator=g, dtype=torch.float64) \
        if with_lse else None
    return W, w


def _loss(out, W, w):
    if w is None:
        o = out[0] if isinstance(out, tuple) else out
        return (o * W).sum()
    o, lse = out
    return (o * W).sum() + (torch.where(torch.isfinite(lse), lse,
                                        torch.zeros_like(lse)) * w).sum()


def _grads(loss, leaves):
    got = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return dict(zip(leaves, got))


def _close(got, want, what, tol=2e-5):
    got = np.asarray(got.detach() if hasattr(got, "detach") else got,
                     np.float64)
    want = np.asarray(want.detach() if hasattr(want, "detach") else want,
                      np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert np.all(np.isfinite(got)), what
    scale = max(float(np.abs(want).max()), 1e-3)
    err = float(np.abs(got - want).max()) / scale
    assert err <= tol, f"{what}: max |got - want| / max |want| = {err:.2e}"


# ---------------------------------------------------------------------------
# Forward and gradients against the references
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", CASES)
def test_against_torch_autograd_float64(name):
    var, x, caps, kw = _case(name)
    v = compiler.resolve_variant(var)
    W, w = _weights(0, v.has_lse)
    leaves = _leaves(x, caps)
    out = _op(var, x, caps)
    o = out[0] if v.has_lse else out
    assert o.dtype == torch.float64 and o.shape == (B, HQ, SQ, DV)
    got = _grads(_loss(out, W, w), leaves)

    want_out = _torch_attention(x["q"], x["k"], x["v"],
                                sink_logits=x.get("sink_logits"),
                                sink_key=x.get("sink_key"),
                                sink_value=x.get("sink_value"), **kw)
    _close(o, want_out[0], f"{name}: O")
    if v.has_lse:
        _close(out[1], want_out[1], f"{name}: lse")
    want = _grads(_loss(want_out if v.has_lse else want_out[0], W, w),
                  leaves)
    for n in leaves:
        assert got[n] is not None, f"{name}: no gradient for {n}"
        _close(got[n], want[n], f"{name}: d{n}")
    for c in caps:
        if not c.is_floating_point():
            assert c.grad is None and not c.requires_grad


@pytest.mark.parametrize("name", CASES)
def test_against_reference_backward(name):
    var, x, caps, _ = _case(name, seed=3)
    v = compiler.resolve_variant(var)
    W, w = _weights(3, v.has_lse)
    leaves = _leaves(x, caps)
    got = _grads(_loss(_op(var, x, caps), W, w), leaves)
    n = {k: t.detach().numpy() for k, t in x.items()}
    want = ref.attention_backward(
        n["q"], n["k"], n["v"], W.numpy(),
        captures=[c.detach().numpy() for c in caps],
        sink_logits=n.get("sink_logits"), sink_key=n.get("sink_key"),
        sink_value=n.get("sink_value"),
        dlse=None if w is None else w.numpy(), **v.reference_kwargs())
    pairs = {"q": want.dq, "k": want.dk, "v": want.dv,
             "sink_logits": want.d_sink_logits, "sink_key": want.d_sink_key,
             "sink_value": want.d_sink_value}
    pairs.update((f"capture{m}", g) for m, g in enumerate(want.d_captures)
                 if g is not None)
    for k in leaves:
        _close(got[k], pairs[k], f"{name}: d{k}")


@pytest.mark.parametrize("name", ["alibi", "rbf_sink_rows", "gpt_oss_sinks",
                                  "temperature_padding"])
def test_finite_differences(name):
    """Directional derivatives of the op's loss (central differences along a
    random direction per input) against the gradients it returns. The op
    computes in f32, hence the step of 1e-2 and the tolerance."""
    var, x, caps, _ = _case(name, seed=5)
    v = compiler.resolve_variant(var)
    W, w = _weights(5, v.has_lse)
    leaves = _leaves(x, caps)
    got = _grads(_loss(_op(var, x, caps), W, w), leaves)
    g = torch.Generator().manual_seed(77)
    for n, t in leaves.items():
        u = torch.randn(t.shape, generator=g, dtype=torch.float64)
        h = 1e-2
        with torch.no_grad():
            vals = []
            for sign in (1, -1):
                t.add_(sign * h * u)
                vals.append(float(_loss(_op(var, x, caps), W, w)))
                t.sub_(sign * h * u)
        numeric = (vals[0] - vals[1]) / (2 * h)
        analytic = float((got[n] * u).sum())
        assert abs(numeric - analytic) <= 2e-3 * max(1.0, abs(analytic)), \
            (name, n, numeric, analytic)


def test_large_magnitudes():
    """Peaked softmax rows (scores of tens): gradients still match."""
    var, x, caps, kw = _case("alibi", seed=9, scale=4.0)
    W, w = _weights(9, True)
    leaves = _leaves(x, caps)
    got = _grads(_loss(_op(var, x, caps), W, w), leaves)
    want_out = _torch_attention(x["q"], x["k"], x["v"], **kw)
    want = _grads(_loss(want_out, W, w), leaves)
    for n in leaves:
        _close(got[n], want[n], f"large: d{n}", tol=1e-4)


def test_fully_masked_rows_get_zero_gradients():
    """Batch 0 sees no key (padding length 0): its O and all its
    gradients are exactly 0, never NaN; the other batch matches the
    reference; the integer capture gets no gradient."""
    g = torch.Generator().manual_seed(11)
    q, k, v = (_rand(g, B, HQ, SQ, D), _rand(g, B, HKV, SK, D),
               _rand(g, B, HKV, SK, DV))
    temp = torch.nn.Parameter(torch.rand(HQ, dtype=torch.float64) + 0.5)
    lengths = torch.tensor([0, 4], dtype=torch.int32)
    o, lse = attn.attention(q, k, v, variant=_temperature,
                            captures=[temp, lengths], return_lse=True)
    assert torch.all(o[0] == 0) and torch.all(torch.isfinite(o))
    W, _ = _weights(11, False)
    (o * W).sum().backward()
    for t in (q, k, v, temp):
        assert torch.all(torch.isfinite(t.grad))
    assert torch.all(q.grad[0] == 0) and torch.all(k.grad[0] == 0) \
        and torch.all(v.grad[0] == 0)
    assert torch.any(q.grad[1] != 0)
    want = ref.attention_backward(
        q.detach().numpy(), k.detach().numpy(), v.detach().numpy(),
        W.numpy(), captures=[temp.detach().numpy(), lengths.numpy()],
        **_temperature.reference_kwargs())
    _close(q.grad, want.dq, "dq")
    _close(temp.grad, want.d_captures[0], "dtemp")
    assert want.d_captures[1] is None and lengths.grad is None


def test_sink_rows_zero_initialised_learn():
    """Zero sink rows (the training example's initialisation) get nonzero
    gradients, equal to the reference's."""
    var, x, caps, kw = _case("rbf_sink_rows", seed=2)
    with torch.no_grad():
        x["sink_key"].zero_()
        x["sink_value"].zero_()
    W, w = _weights(2, True)
    leaves = _leaves(x, caps)
    got = _grads(_loss(_op(var, x, caps), W, w), leaves)
    want = _grads(_loss(_torch_attention(
        x["q"], x["k"], x["v"], sink_key=x["sink_key"],
        sink_value=x["sink_value"], **kw), W, w), leaves)
    for n in ("sink_key", "sink_value"):
        assert torch.any(got[n] != 0)
        _close(got[n], want[n], f"zero sinks: d{n}")


# ---------------------------------------------------------------------------
# torch.compile, the fake implementations, opcheck
# ---------------------------------------------------------------------------

class _AlibiBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.slopes = torch.nn.Parameter(torch.linspace(
            0.2, 1.0, HQ, dtype=torch.float64))
        self.proj = torch.nn.Linear(DV, DV, dtype=torch.float64)

    def forward(self, q, k, v):
        o = attn.attention(q, k, v, variant="alibi", captures=[self.slopes])
        return self.proj(torch.tanh(o)).square().mean()


def test_torch_compile_fullgraph_aot_eager():
    torch._dynamo.reset()
    _, x, _, _ = _case("causal", seed=4)
    model = _AlibiBlock()
    eager = model(x["q"], x["k"], x["v"])
    g_eager = torch.autograd.grad(eager, [x["q"], model.slopes])
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(x["q"], x["k"], x["v"])
    g = torch.autograd.grad(out, [x["q"], model.slopes])
    assert torch.allclose(out, eager, rtol=0, atol=1e-12)
    for a, b in zip(g, g_eager):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    explained = torch._dynamo.explain(model)(x["q"], x["k"], x["v"])
    assert explained.graph_break_count == 0 and explained.graph_count == 1


def test_torch_compile_dsl_variant_and_sinks():
    """A DSL variant made at run time and learned sink rows, compiled."""
    torch._dynamo.reset()
    _, x, _, _ = _case("rbf_sink_rows", seed=6)

    def f(q, k, v, sk, sv):
        a = attn.attention(q, k, v, variant=_softcap)
        b = attn.attention(q, k, v, variant="rbf_sink_rows",
                           sink_rows=(sk, sv))
        return (a * b).sum()

    args = [x[n] for n in ("q", "k", "v", "sink_key", "sink_value")]
    want = torch.autograd.grad(f(*args), args)
    got = torch.autograd.grad(
        torch.compile(f, backend="aot_eager", fullgraph=True)(*args), args)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_torch_compile_guards_on_the_variant():
    """One compiled function called with two variants (objects and names)
    computes each one: the variant is a guarded constant."""
    torch._dynamo.reset()
    _, x, _, _ = _case("causal", seed=7)
    q = x["q"].detach()

    def f(q, var):
        return attn.attention(q, q, q, variant=var)

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    for var in (_softcap, _SOFTMAX1, "causal", "softmax", _softcap):
        assert torch.equal(compiled(q, var), f(q, var)), var
    assert not torch.allclose(f(q, _softcap), f(q, _SOFTMAX1))


@pytest.mark.parametrize("name", ["alibi", "rbf_sink_rows", "sigmoid",
                                  "temperature_padding", "gpt_oss_sinks"])
def test_fake_shapes(name):
    """The fake implementations give the real outputs' shapes, dtypes and
    strides."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    var, x, caps, _ = _case(name)
    key = attn.variant_key(var)
    args = (x["q"], x["k"], x["v"], caps, x.get("sink_logits"),
            x.get("sink_key"), x.get("sink_value"), key, False)
    real = torch.ops.attn_mlir.attention(*[
        a.detach() if isinstance(a, torch.Tensor) else a for a in args])
    with FakeTensorMode(allow_non_fake_inputs=True):
        fake = torch.ops.attn_mlir.attention(*args)
    for r, f in zip(real, fake):
        assert (r.shape, r.dtype, r.stride()) == (f.shape, f.dtype,
                                                  f.stride())
    has_lse = compiler.resolve_variant(var).has_lse
    assert real[1].shape == ((B, HQ, SQ) if has_lse else (0,))
    do = torch.randn(real[0].shape, dtype=torch.float64)
    dlse = torch.randn(real[1].shape) if has_lse else None
    bargs = (do, dlse, x["q"], x["k"], x["v"], real[0], real[1], caps,
             x.get("sink_logits"), x.get("sink_key"), x.get("sink_value"),
             key, False)
    real_g = torch.ops.attn_mlir.attention_backward(*[
        a.detach() if isinstance(a, torch.Tensor) else a for a in bargs])
    with FakeTensorMode(allow_non_fake_inputs=True):
        fake_g = torch.ops.attn_mlir.attention_backward(*bargs)
    assert len(real_g) == len(fake_g)
    for r, f in zip(real_g, fake_g):
        assert (r.shape, r.dtype, r.stride()) == (f.shape, f.dtype,
                                                  f.stride())


@pytest.mark.parametrize("name", ["alibi", "rbf_sink_rows"])
def test_opcheck(name):
    var, x, caps, _ = _case(name)
    args = (x["q"], x["k"], x["v"], caps, x.get("sink_logits"),
            x.get("sink_key"), x.get("sink_value"), attn.variant_key(var),
            True)
    torch.library.opcheck(torch.ops.attn_mlir.attention.default, args)


def test_deterministic_flag_on_the_cpu():
    """deterministic=True travels through the autograd op (the GPU kernels'
    option); the CPU backward sums in a fixed order either way, so the
    gradients are bitwise those of the default, and right."""
    var, x, caps, kw = _case("alibi", seed=5)
    grads = []
    for flag in (False, True, True):
        leaves = _leaves(x, caps)
        o = attn.attention(x["q"], x["k"], x["v"], variant=var, captures=caps,
                           deterministic=flag)
        W = torch.linspace(-1.0, 1.0, o.numel(), dtype=o.dtype).reshape(o.shape)
        grads.append(_grads((o * W).sum(), leaves))
    for n in grads[0]:
        assert torch.equal(grads[0][n], grads[1][n]), n
        assert torch.equal(grads[1][n], grads[2][n]), n
    leaves = _leaves(x, caps)
    want_o, _ = _torch_attention(x["q"], x["k"], x["v"], **kw)
    W = torch.linspace(-1.0, 1.0, want_o.numel(),
                       dtype=want_o.dtype).reshape(want_o.shape)
    want = _grads((want_o * W).sum(), leaves)
    for n in leaves:
        _close(grads[1][n], want[n], f"deterministic: d{n}")


# ---------------------------------------------------------------------------
# Variants as strings, statistics, errors
# ---------------------------------------------------------------------------

def test_variant_keys():
    assert attn.variant_key("alibi") == "alibi"
    assert attn.variant_key(variants.load("alibi")) == "alibi"
    key = attn.variant_key(_softcap)
    assert "attn.variant @_softcap" in key
    assert attn.resolve(key) is _softcap
    # Another process (or a graph loaded later) has only the text.
    parsed = variants.parse_variant(key)
    assert parsed.spec_text() == _softcap.spec_text()
    _, x, _, _ = _case("causal")
    a = attn.attention(x["q"], x["k"], x["v"], variant=_softcap)
    b = attn.attention(x["q"], x["k"], x["v"], variant=parsed)
    assert torch.equal(a, b)
    # Captures (a float and an integer one) survive the text.
    back = variants.parse_variant(attn.variant_key(_temperature))
    assert [(c.name, c.elt, c.rank) for c in back.captures] == \
        [("temp", "f32", 1), ("lengths", "i32", 1)]
    with pytest.raises(KeyError, match="no library variant 'nope'"):
        attn.variant_key("nope")


def test_compile_stats():
    attn.reset_compile_stats()
    _, x, _, _ = _case("causal", seed=8)
    for _ in range(2):
        o = attn.attention(x["q"], x["k"], x["v"], variant="causal")
        o.sum().backward()
    stats = attn.compile_stats()
    assert [s["op"] for s in stats] == ["forward", "backward"]
    for s in stats:
        assert s["variant"] == "causal" and s["device"] == "cpu"
        assert s["first_call_s"] > 0
        assert s["shape_class"][1] == (B, HQ, SQ, D)


def test_errors():
    _, x, caps, _ = _case("alibi")
    q, k, v = x["q"], x["k"], x["v"]
    with pytest.raises(TypeError, match="takes 1 captured tensor"):
        attn.attention(q, k, v, variant="alibi")
    with pytest.raises(ValueError, match="defines no lse"):
        attn.attention(q, k, v, variant=_SIGMOID, return_lse=True)
    with pytest.raises(ValueError, match="needs sink_logits"):
        attn.attention(q, k, v, variant="gpt_oss_sinks")
    with pytest.raises(ValueError, match="sink_rows is a pair"):
        attn.attention(q, k, v, variant="rbf_sink_rows", sink_rows=(q,))
    with pytest.raises(ValueError, match="4-d tensor"):
        attn.attention(q[0], k, v, variant="causal")
    with pytest.raises(TypeError, match="library name or a variant"):
        attn.attention(q, k, v, variant=3)


# ---------------------------------------------------------------------------
# The GPU (where torch sees one; bundles compiled beforehand)
# ---------------------------------------------------------------------------

GPU_D = 64
GPU_VARIANTS = [("causal", {}), ("alibi", {"captures": 1}),
                ("rbf_sink_rows", {"sink_rows": True})]


def compile_gpu_bundles():
    """The forward and backward bundles test_gpu_matches_float64 needs (run where attn-opt
    is, with the $ATTN_MLIR_CACHE the GPU machine will use)."""
    for name, what in GPU_VARIANTS:
        caps = [((HQ,), "f32")] * what.get("captures", 0)
        for backward in (False, True):
            print(compiler.compile(name, head_dim=GPU_D, dtype="bf16",
                                   captures=caps, backward=backward,
                                   sink_rows=what.get("sink_rows", False)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name,what", GPU_VARIANTS)
def test_gpu_matches_float64(name, what):
    """bf16 on the GPU, forward and backward, against float64 autograd of
    the same bf16-rounded inputs."""
    g = torch.Generator().manual_seed(21)
    shapes = {"q": (2, 4, 129, GPU_D), "k": (2, 2, 129, GPU_D),
              "v": (2, 2, 129, GPU_D)}
    x = {n: torch.randn(s, generator=g).to(torch.bfloat16)
         for n, s in shapes.items()}
    caps = ([torch.linspace(0.1, 0.8, 4)] if what.get("captures") else [])
    rows = None
    if what.get("sink_rows"):
        rows = tuple(torch.randn(2, NS, GPU_D, generator=g).to(torch.bfloat16)
                     for _ in range(2))
    dev = [t.cuda().requires_grad_() for t in x.values()]
    dcaps = [c.cuda().requires_grad_() for c in caps]
    drows = None if rows is None else tuple(r.cuda().requires_grad_()
                                            for r in rows)
    o = attn.attention(*dev, variant=name, captures=dcaps, sink_rows=drows)
    hx = [t.double().requires_grad_() for t in x.values()]
    hcaps = [c.double().requires_grad_() for c in caps]
    hrows = None if rows is None else tuple(r.double().requires_grad_()
                                            for r in rows)
    kw = {"causal": True}
    if name == "alibi":
        kw["score_fn"] = _alibi_fn(hcaps[0])
    if name == "rbf_sink_rows":
        kw["score"] = "rbf"
    want_o, _ = _torch_attention(*hx, sink_key=None if hrows is None
                                 else hrows[0], sink_value=None if hrows is
                                 None else hrows[1], **kw)
    _close(o.float().cpu(), want_o, f"{name}: O", tol=2e-2)
    W = torch.randn(o.shape, generator=g)
    leaves = dev + dcaps + list(drows or ())
    try:
        got = torch.autograd.grad((o.float() * W.cuda()).sum(), leaves)
    except compiler.CompileError as e:
        if "not built yet" in str(e):
            pytest.skip(f"forward checked; {e}")
        raise
    want = torch.autograd.grad((want_o * W.double()).sum(),
                               hx + hcaps + list(hrows or ()))
    for n, (a, b) in enumerate(zip(got, want)):
        _close(a.float().cpu(), b, f"{name}: gradient #{n}", tol=3e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_torch_compile_inductor():
    """torch.compile (inductor, fullgraph) around the GPU op: the same
    kernel, so the same output as eager."""
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(22)
    q, k, v = (torch.randn(2, h, 129, GPU_D, generator=g).to(
        "cuda", torch.bfloat16) for h in (4, 2, 2))

    def f(q, k, v):
        return attn.attention(q, k, v, variant="causal") * 2     # exact

    got = torch.compile(f, fullgraph=True)(q, k, v)
    assert torch.equal(got, f(q, k, v))


if __name__ == "__main__":
    if "--compile-only" in sys.argv:
        compile_gpu_bundles()
