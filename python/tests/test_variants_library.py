"""The variant library (python/attn_mlir/variants/*.mlir).

For every library variant:

* its file follows the library's conventions (a leading comment with the
  math and a citation, one ``attn.variant`` named like the file) and
  round-trips through ``attn-opt``; the specification that
  ``attn_mlir.variants`` parses from the file equals the one parsed from
  ``attn-opt``'s canonical print;
* instantiated into a function (the file's text plus a ``func.func`` whose
  ``attn.attention`` says ``variant @NAME``, through
  ``--attn-instantiate-variants``), it runs on the CPU JIT (``attn-run``,
  both lowerings) and matches the float64 reference, whose regions come
  from ``attn_mlir.regions`` (for ALiBi and soft-capping also from a
  handwritten numpy formula);
* it compiles to a GPU bundle (``attn-opt --attn-to-nvvm``, PTX with
  ``wgmma.mma_async`` on sm_90a), or the compiler refuses it with a diagnostic when the
  tensor-core kernel does not support it (feature maps).

Tolerances as in test_cpu_lowerings.py (f32: 1e-5 relative).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess

import numpy as np
import pytest
from conftest import _tool

from attn_mlir import compiler, variants
from attn_mlir import reference as ref
from attn_mlir.emit import tensor_type

NAMES = variants.names()


@pytest.fixture(autouse=True)
def _compiler_uses_the_tested_tools(monkeypatch):
    """attn_mlir.compiler finds the same attn-opt / attn-run as the
    ``attn_opt`` / ``attn_run`` fixtures (conftest.py)."""
    for env, name in (("ATTN_OPT", "attn-opt"), ("ATTN_RUN", "attn-run")):
        path = _tool(env, name)
        if path.is_file():
            monkeypatch.setenv(env, str(path))

#: Library variants that the GPU kernel does not take yet, and why.
GPU_REFUSED = {"linear": "feature maps"}


def test_library_has_the_issue_variants():
    want = {"softmax", "causal", "sliding_window", "streaming_llm",
            "gpt_oss_sinks", "softmax1", "scalable_softmax", "sigmoid",
            "relu2", "linear", "alibi", "softcap", "rbf_sink_rows",
            "neighborhood_1d", "neighborhood_2d", "document", "prefix_lm",
            "prev_token_mean"}
    assert want <= set(NAMES)
    for alias, target in variants.ALIASES.items():
        assert variants.load(alias) is variants.load(target)
    with pytest.raises(KeyError, match="no library variant"):
        variants.load("no_such_variant")


# ---------------------------------------------------------------------------
# Files and round trips
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_file_conventions(name):
    v = variants.load(name)
    text = variants.path(name).read_text()
    assert text.startswith("// "), "the file starts with its comment"
    assert v.doc.startswith(f"{name}: "), "the comment starts with the name"
    # A citation: a year and an arXiv id, or a named source.
    assert re.search(r"\b(19|20)\d\d\b", v.doc), "the comment cites a source"
    assert text.count("attn.variant") == 1
    assert v.mlir("renamed").count("@renamed") == 1


@pytest.mark.parametrize("name", NAMES)
def test_roundtrip(attn_opt, name):
    path = variants.path(name)
    r = attn_opt(path)
    assert r.returncode == 0, r.stderr
    assert f"attn.variant @{name} " in r.stdout or \
        r.stdout.rstrip().endswith(f"attn.variant @{name}")
    v = attn_opt(path, "--verify-roundtrip")
    assert v.returncode == 0, v.stderr
    # The spec parsed from the canonical print equals the file's.
    printed = variants.parse_variant(r.stdout, name)
    mine = variants.load(name)
    assert printed.spec == _canonical_spec(mine.spec)
    assert (printed.regions["score_mod"] is None) == \
        (mine.regions["score_mod"] is None)
    assert (printed.regions["mask_mod"] is None) == \
        (mine.regions["mask_mod"] is None)
    if any(mine.regions.values()):  # else only the comment declares them
        assert [(c.elt, c.rank) for c in printed.captures] == \
            [(c.elt, c.rank) for c in mine.captures]
    # The printed regions (renamed values) compute what the file's do.
    rng = np.random.default_rng(0)
    idx = ref._index_grids(2, 4, 5, 6)
    caps = [rng.uniform(size=(4,) * c.rank) for c in mine.captures]
    s = rng.standard_normal((2, 4, 5, 6))
    for fn in ("score_mod_fn", "mask_mod_fn"):
        a, b = getattr(printed, fn), getattr(mine, fn)
        if a is not None:
            args = ((s,) if fn == "score_mod_fn" else ()) + idx + tuple(caps)
            np.testing.assert_array_equal(a(*args), b(*args))


def _canonical_spec(spec):
    out = dict(spec)
    out["masks"] = [{k: v for k, v in m.items()
                     if not (k == "alignment" and v == "top_left")}
                    for m in spec.get("masks", [])]
    if not out["masks"]:
        del out["masks"]
    return out


# ---------------------------------------------------------------------------
# The CPU JIT against the reference
# ---------------------------------------------------------------------------

def sizes_for(v, Hkv=2):
    """B, Hq, Hkv, S, Dqk, Dv for a variant: long enough for its fixed mask
    sizes to matter, small enough to be quick."""
    S = 40
    for m in v.spec.get("masks", []):
        if m["kind"] == "neighborhood_2d":
            S = m["height"] * m["width"]
        elif m["kind"] == "neighborhood_1d":
            S = max(S, 3 * m["kernel"] * m.get("dilation", 1))
        elif m["kind"] == "sliding_window":
            S = max(S, m["left"] + m.get("right", 0) + 40)
        elif m["kind"] == "prefix_lm":
            S = max(S, m["prefix"] + 30)
        elif m["kind"] == "sink_tokens":
            S = max(S, m["count"] + 10)
    return 2, 4, Hkv, S, 16, 24


def make_inputs(v, B, Hq, Hkv, S, D, Dv, seed=0):
    """Random seeded operands (``variants.random_operands``)."""
    return variants.random_operands(v, B, Hq, Hkv, S, D, Dv, seed=seed)


def instantiated_module(v, q, k, val, caps, extra, return_lse):
    """The library file plus a function that references the variant."""
    tq, tk, tv = (tensor_type(x.shape, "f32") for x in (q, k, val))
    B, Hq, Sq, _ = q.shape
    to = tensor_type((B, Hq, Sq, val.shape[3]), "f32")
    tl = tensor_type((B, Hq, Sq), "f32")
    args = [f"%q: {tq}", f"%k: {tk}", f"%v: {tv}"]
    operands = "%q, %k, %v"
    if caps:
        ct = [tensor_type(c.shape, "f32" if c.dtype == np.float32 else "i32")
              for c in caps]
        names = [f"%c{n}" for n in range(len(caps))]
        args += [f"{n}: {t}" for n, t in zip(names, ct)]
        operands += f" captures({', '.join(names)} : {', '.join(ct)})"
    if "sink_logits" in extra:
        t = tensor_type(extra["sink_logits"].shape, "f32")
        args.append(f"%sl: {t}")
        operands += f" sink_logits(%sl : {t})"
    if "sink_key" in extra:
        tsk = tensor_type(extra["sink_key"].shape, "f32")
        tsv = tensor_type(extra["sink_value"].shape, "f32")
        args += [f"%sk: {tsk}", f"%sv: {tsv}"]
        operands += f" sink_rows(%sk, %sv : {tsk}, {tsv})"
    res = [to] + ([tl] if return_lse else [])
    lhs = "%o, %lse" if return_lse else "%o"
    return (v.mlir() + "\n"
            f"func.func @run({', '.join(args)}) -> ({', '.join(res)}) {{\n"
            f"  {lhs} = attn.attention {operands} variant @{v.name}\n"
            f"      : {tq}, {tk}, {tv} -> {', '.join(res)}\n"
            f"  return {lhs} : {', '.join(res)}\n}}\n")


def check_close(got, want, what, tol=1e-5):
    assert np.all(np.isfinite(got)), f"{what}: non-finite output"
    scale = max(float(np.max(np.abs(want))), 1e-30)
    err = float(np.max(np.abs(got - want)))
    assert err <= tol * scale, f"{what}: max error {err:.3g} (scale " \
        f"{scale:.3g})"
    rel = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
    assert rel <= tol, f"{what}: relative L2 error {rel:.3g}"


def check_lse(got, want, what):
    assert np.array_equal(np.isneginf(got), np.isneginf(want)), what
    fin = np.isfinite(want)
    err = np.abs(got[fin] - want[fin]) / (1 + np.abs(want[fin]))
    assert err.size == 0 or err.max() <= 1e-5, f"{what}: lse error " \
        f"{err.max():.3g}"


def _handwritten(name):
    """Independent numpy formulas of the two region variants."""
    if name == "alibi":
        return lambda s, b, h, i, j, slopes: s + slopes[h] * (j - i)
    if name == "softcap":
        return lambda s, b, h, i, j: 30.0 * np.tanh(s / 30.0)
    return None


CPU_CASES = [(n, 2) for n in NAMES] + [("causal", 4), ("causal", 1),
                                       ("gqa_causal", 2), ("mqa_causal", 1)]


@pytest.mark.parametrize("name,Hkv", CPU_CASES,
                         ids=[f"{n}-Hkv{h}" for n, h in CPU_CASES])
def test_cpu_jit_matches_reference(attn_opt, attn_run, tmp_path, name, Hkv):
    v = variants.load(name)
    B, Hq, Hkv, S, D, Dv = sizes_for(v, Hkv)
    q, k, val, caps, extra = make_inputs(v, B, Hq, Hkv, S, D, Dv)
    lse = v.has_lse
    src = tmp_path / "module.mlir"
    src.write_text(instantiated_module(v, q, k, val, caps, extra, lse))
    inst = tmp_path / "inst.mlir"
    r = attn_opt(src, "--attn-instantiate-variants=erase-variants=true",
                 "-o", inst)
    assert r.returncode == 0, r.stderr
    assert "variant @" not in inst.read_text()

    inputs = []
    for n, a in enumerate([q, k, val, *caps, *extra.values()]):
        p = tmp_path / f"in{n}.npy"
        np.save(p, a)
        inputs.append(p)
    want = v.reference(q, k, val, *caps, return_lse=lse, **extra)
    want_o, want_lse = want if lse else (want, None)
    hand = _handwritten(name)
    if hand is not None:   # the library's region against a formula
        kw = v.reference_kwargs()
        kw["score_mod"] = hand
        again = ref.attention(q, k, val, captures=caps, **kw)
        np.testing.assert_allclose(again, want_o, rtol=1e-12, atol=1e-12)
    for lowering in ("flash", "loops"):
        outs = [tmp_path / f"o_{lowering}.npy"] + (
            [tmp_path / f"lse_{lowering}.npy"] if lse else [])
        r = attn_run.run(inst, "run", lowering=lowering, inputs=inputs,
                         outputs=outs)
        assert r.returncode == 0, r.stderr
        check_close(np.load(outs[0]), want_o, f"{name} {lowering}")
        if lse:
            check_lse(np.load(outs[1]), want_lse, f"{name} {lowering}")


@pytest.mark.parametrize("name", ["alibi", "streaming_llm", "document",
                                  "rbf_sink_rows", "gpt_oss_sinks"])
def test_compiler_attention_by_name(name):
    """``compiler.attention(variant=NAME)`` (the inline emit path)."""
    if compiler.find_tool("attn-run") is None:
        pytest.skip("attn-run is not built")
    v = variants.load(name)
    B, Hq, Hkv, S, D, Dv = sizes_for(v)
    q, k, val, caps, extra = make_inputs(v, B, Hq, Hkv, S, D, Dv, seed=1)
    got = compiler.attention(q, k, val, variant=name, captures=caps, **extra)
    check_close(got, v.reference(q, k, val, *caps, **extra), name)


def test_missing_operands_are_reported():
    q = np.zeros((1, 2, 4, 16), np.float32)
    with pytest.raises(TypeError, match="captured tensor"):
        compiler.attention(q, q, q, variant="alibi")
    with pytest.raises(ValueError, match="sink_logits"):
        compiler.attention(q, q, q, variant="gpt_oss_sinks")
    with pytest.raises(ValueError, match="no lse"):
        compiler.attention(q, q, q, variant="sigmoid", return_lse=True)


# ---------------------------------------------------------------------------
# The GPU compiler (PTX only: no GPU is needed)
# ---------------------------------------------------------------------------

def _compile_for_gpu(name, root):
    v = variants.load(name)
    caps = [((4,) if c.rank == 1 else (2, 64), c.elt) for c in v.captures]
    try:
        return name, compiler.compile(
            v, head_dim=64, dtype="bf16", captures=caps,
            sink_logits=bool(v.sink_logits), sink_rows=bool(v.sink_rows),
            cache=root), None
    except compiler.CompileError as e:
        return name, None, e


@pytest.fixture(scope="module")
def gpu_builds(attn_opt, tmp_path_factory):
    """Every library variant compiled for sm_90a, in parallel."""
    root = tmp_path_factory.mktemp("bundles")
    with pytest.MonkeyPatch.context() as mp, \
            concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        mp.setenv("ATTN_OPT", str(attn_opt.path))     # the tool under test
        results = list(ex.map(lambda n: _compile_for_gpu(n, root), NAMES))
    return {name: (path, err) for name, path, err in results}


@pytest.mark.parametrize("name", NAMES)
def test_gpu_ptx(gpu_builds, name):
    path, err = gpu_builds[name]
    if name in GPU_REFUSED:
        assert path is None, f"{name} is expected to be refused"
        assert GPU_REFUSED[name] in err.reason, err.diagnostics
        assert "cannot be compiled for the GPU" in err.reason
        return
    assert err is None, err and err.diagnostics
    ptx = (path / "attn.ptx").read_text()
    # sm_90a, head dim 64: the warpgroup kernel (wgmma.mma_async).
    assert "wgmma.mma_async.sync.aligned" in ptx
    # The default configuration spills nothing (ptxas -v, every kernel of the
    # bundle: the RBF prologue too).
    ptxas = os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"),
                         "bin", "ptxas")
    report = subprocess.run([ptxas, "-v", "-arch=sm_90a", str(path / "attn.ptx"),
                             "-o", os.devnull], capture_output=True, text=True,
                            check=True).stderr
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    assert spills and all(st == "0" and ld == "0" for st, ld in spills), report
    assert (path / "attn.cubin").stat().st_size > 0
    desc = json.loads((path / "attn.json").read_text())
    assert desc["format"] == "attn-bundle-v2"
    (kernel,) = desc["kernels"]
    assert kernel["dtype"] == "bf16" and kernel["head_dim_qk"] == 64
    assert kernel["config"]["mma"] == "wgmma"
    main = kernel["launches"][-1]
    assert main["kernel"] == kernel["name"] and main["block"] == [256, 1, 1]
    names = main["args"]
    v = variants.load(name)
    # RBF variants run the key-norm prologue first, into a workspace.
    rbf = "key_norms" in names
    assert len(kernel["launches"]) == (2 if rbf else 1)
    assert rbf == any(w["name"] == "key_norms" for w in kernel["workspaces"])
    assert ("sink_logits" in names) == bool(v.sink_logits)
    assert ("sink_key" in names) == bool(v.sink_rows)
    assert sum(n.startswith("capture") for n in names) == len(v.captures)


def test_bundle_cache(attn_opt, tmp_path, monkeypatch):
    """Content-addressed: a second compile is a hit; a bundle built by
    another attn-opt is rebuilt; without attn-opt, a hit is still used."""
    monkeypatch.setenv("ATTN_MLIR_CACHE", str(tmp_path))
    monkeypatch.setenv("ATTN_OPT", str(attn_opt.path))
    first = compiler.compile("softmax", head_dim=32)
    assert first.parent == tmp_path
    stamp = first / "compiler.json"
    mtime = stamp.stat().st_mtime_ns
    assert compiler.compile("softmax", head_dim=32) == first
    assert stamp.stat().st_mtime_ns == mtime
    other = compiler.compile("softmax", head_dim=48)
    assert other != first
    data = json.loads(stamp.read_text())
    data["attn_opt"]["size"] += 1
    stamp.write_text(json.dumps(data))
    assert compiler.compile("softmax", head_dim=32) == first
    assert json.loads(stamp.read_text())["attn_opt"]["size"] == \
        data["attn_opt"]["size"] - 1
    monkeypatch.setenv("ATTN_OPT", str(tmp_path / "missing-attn-opt"))
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(compiler, "REPO", tmp_path)
    assert compiler.compile("softmax", head_dim=32) == first
