"""attn_mlir.cpu_module: functions compiled once into a cached shared
library give attn-run's results bit for bit, and the float64 reference's to
f32 accuracy; the disk cache is used across processes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from attn_mlir import compiler, cpu_module, dsl, variants

pytestmark = pytest.mark.skipif(
    not cpu_module.available() or compiler.find_tool("attn-run") is None,
    reason="attn-opt, attn-run, mlir-translate or clang is missing")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTN_MLIR_CACHE", str(tmp_path / "cache"))


def _inputs(seed, B=2, Hq=4, Hkv=2, Sq=37, Sk=41, D=16, Dv=8):
    r = np.random.default_rng(seed)
    return (r.standard_normal((B, Hq, Sq, D)).astype(np.float32),
            r.standard_normal((B, Hkv, Sk, D)).astype(np.float32),
            r.standard_normal((B, Hkv, Sk, Dv)).astype(np.float32))


def _attn_run(text, arrays, n):
    return compiler._attn_run(text, arrays, n, "flash", "the test", None)


@pytest.mark.parametrize("dtype", ["f32", "bf16", "f16"])
def test_same_as_attn_run_and_reference(dtype):
    q, k, v = _inputs(0)
    slopes = np.linspace(0.1, 0.9, 4).astype(np.float32)
    var = variants.load("alibi")
    if dtype == "f16":                  # attn-run reads f16 as '<f2'
        q, k, v = (x.astype(np.float16) for x in (q, k, v))
    text = var.emit_func("attn_cpu", q.shape, k.shape, v.shape, dtype,
                         captures=[slopes.shape], return_lse=True)
    o, lse = cpu_module.run(text, "attn_cpu", [q, k, v, slopes])
    want_o, want_lse = _attn_run(text, [q, k, v, slopes], 2)
    assert o.dtype == want_o.dtype and lse.dtype == np.float32
    assert np.array_equal(o, want_o) and np.array_equal(lse, want_lse)
    ref_o = var.reference(q, k, v, slopes)
    tol = {"f32": 1e-5, "bf16": 3e-2, "f16": 3e-3}[dtype]
    assert np.abs(o - ref_o).max() <= tol * np.abs(ref_o).max()


def test_integer_captures_and_sink_rows():
    """The document variant (an i32 capture) and sink rows with logits."""
    q, k, v = _inputs(1, Sq=29, Sk=29)
    seg = np.sort(np.random.default_rng(2).integers(0, 3, (2, 29)),
                  axis=-1).astype(np.int32)
    doc = variants.load("document")
    text = doc.emit_func("attn_cpu", q.shape, k.shape, v.shape, "f32",
                         captures=[seg.shape])
    (o,) = cpu_module.run(text, "attn_cpu", [q, k, v, seg])
    assert np.array_equal(o, _attn_run(text, [q, k, v, seg], 1)[0])
    r = np.random.default_rng(3)
    sl = r.standard_normal(4).astype(np.float32)
    sk = r.standard_normal((2, 3, 16)).astype(np.float32)
    sv = r.standard_normal((2, 3, 8)).astype(np.float32)
    var = dsl.Variant("rows_and_logits", masks=[dsl.causal()])
    text = var.emit_func("attn_cpu", q.shape, k.shape, v.shape, "f32",
                         sink_logits=True, sink_rows=3, return_lse=True)
    got = cpu_module.run(text, "attn_cpu", [q, k, v, sl, sk, sv])
    want = _attn_run(text, [q, k, v, sl, sk, sv], 2)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    ref_o = var.reference(q, k, v, sink_logits=sl, sink_key=sk,
                          sink_value=sv)
    assert np.abs(got[0] - ref_o).max() <= 1e-5 * np.abs(ref_o).max()


def test_cached_on_disk_across_processes(tmp_path):
    q, k, v = _inputs(4)
    text = variants.load("causal").emit_func("attn_cpu", q.shape, k.shape,
                                             v.shape, "f32")
    fn = cpu_module.load(text, "attn_cpu")
    assert cpu_module.load(text, "attn_cpu") is fn
    stat = [s for s in cpu_module.stats() if s["key"] == fn.path.parent.name]
    assert len(stat) == 1 and not stat[0]["cached_on_disk"]
    # A fresh process finds the library in the cache.
    prog = ("import sys, json; from attn_mlir import cpu_module; "
            "f = cpu_module.load(sys.stdin.read(), 'attn_cpu'); "
            "print(json.dumps([str(f.path), cpu_module.stats()[0]"
            "['cached_on_disk']]))")
    env = dict(os.environ, PYTHONPATH=str(compiler.REPO / "python"))
    r = subprocess.run([sys.executable, "-c", prog], input=text, text=True,
                       capture_output=True, env=env, check=True)
    assert r.stdout.strip() == f'["{fn.path}", true]'


def test_bad_arguments_and_text():
    q, k, v = _inputs(5)
    text = variants.load("causal").emit_func("attn_cpu", q.shape, k.shape,
                                             v.shape, "f32")
    fn = cpu_module.load(text, "attn_cpu")
    with pytest.raises(ValueError, match=r"argument #1: expected shape"):
        fn(q, q, v)
    with pytest.raises(TypeError, match="takes 3 arguments, got 2"):
        fn(q, k)
    with pytest.raises(ValueError, match="no func.func @nope"):
        cpu_module.load(text, "nope")
    bad = text.replace("normalize<softmax>", "normalize<nope>")
    with pytest.raises(compiler.CompileError, match="attn-opt failed"):
        cpu_module.load(bad, "attn_cpu")
    dynamic = text.replace("tensor<2x4x37x16xf32>", "tensor<?x4x37x16xf32>")
    with pytest.raises(ValueError, match="not a static tensor"):
        cpu_module.signature(dynamic, "attn_cpu")


def test_bf16_rounding():
    x = np.array([1.0, 1.00390625, 1.01171875, -2.5, np.inf, np.nan,
                  3.0e38], np.float32)
    back = cpu_module.from_bf16_bits(cpu_module.to_bf16_bits(x))
    # 1 + 2^-8 is halfway: to even (1.0); 1 + 3*2^-8 up to 1 + 2^-6.
    assert back[0] == 1.0 and back[1] == 1.0 and back[2] == 1.015625
    assert back[3] == -2.5 and back[4] == np.inf and np.isnan(back[5])
    assert abs(back[6] - 3.0e38) / 3.0e38 < 2 ** -8
