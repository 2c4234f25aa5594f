"""``attn_mlir.compiler``: kernel options (passed to ``--attn-to-nvvm``,
part of the cache key, unknown names refused) and the timeout of every
attn-opt / attn-run call (a hung tool is killed and ``ToolTimeout`` raised).

The option and timeout tests use stand-in tools (shell scripts that record
their command line, or hang); one test compiles with the real attn-opt.
"""
from __future__ import annotations

import json
import os
import stat
import time

import numpy as np
import pytest
from conftest import _tool

from attn_mlir import compiler, runtime


def _script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


#: The toolkit every compile hands attn-opt: the one found, else attn-opt's
#: own default (test_cuda_toolkit.py tests the lookup).
TOOLKIT = compiler.find_cuda_toolkit() or compiler.SYSTEM_CUDA_TOOLKITS[0]


@pytest.fixture
def recording_attn_opt(tmp_path, monkeypatch):
    """An attn-opt that records its arguments and writes an empty bundle."""
    log = tmp_path / "argv.log"
    tool = _script(tmp_path / "attn-opt", f"""
for a in "$@"; do printf '%s\\n' "$a"; done >> {log}
echo ---- >> {log}
dir=$(printf '%s' "$4" | sed 's/.*bundle-dir=//')
echo '{{"format": "attn-bundle-v1", "kernels": []}}' > "$dir/attn.json"
""")
    monkeypatch.setenv("ATTN_OPT", str(tool))

    def calls():
        text = log.read_text() if log.exists() else ""
        return [c.strip().splitlines() for c in text.split("----") if c.strip()]
    return calls


@pytest.mark.parametrize("options,text", [
    (None, ""), ({}, ""),
    ({"mma": "wgmma", "kv_tile": 64, "warps": 8, "stages": 3,
      "pipeline": "on", "m_tiles": 1},
     "kv-tile=64 m-tiles=1 mma=wgmma pipeline=on stages=3 warps=8"),
    ({"kv-tile": 32}, "kv-tile=32"),
    ({"pipeline": True}, "pipeline=on"), ({"pipeline": False}, "pipeline=off"),
    ({"deterministic": True}, "deterministic=true"),
    ({"deterministic": "false"}, ""), ({"deterministic": False}, ""),
])
def test_kernel_option_args(options, text):
    assert compiler.kernel_option_args(options) == text


@pytest.mark.parametrize("options,message", [
    ({"tile": 64}, "unknown kernel option 'tile'; the options are mma, kv_tile"),
    ({"chip": "sm_80"}, "unknown kernel option 'chip'"),
    ({"warps": True}, "takes a number"),
    ({"mma": "wgmma bundle-dir=/tmp"}, "bad value"),
    ({"mma": ""}, "bad value"),
    ({"stages": 2.5}, "bad value"),
    ({"deterministic": 1}, "takes true or false"),
])
def test_bad_kernel_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        compiler.kernel_option_args(options)


def test_parse_options():
    assert compiler.parse_options("m-tiles=1 kv-tile=64 mma=wgmma") == {
        "m-tiles": 1, "kv-tile": 64, "mma": "wgmma"}
    with pytest.raises(ValueError, match="not NAME=VALUE"):
        compiler.parse_options("kv-tile")


def test_options_reach_attn_opt_and_the_cache_key(tmp_path, recording_attn_opt):
    cache = tmp_path / "cache"
    opts = {"mma": "wgmma", "kv_tile": 64, "pipeline": "on"}
    a = compiler.compile("causal", head_dim=64, options=opts, cache=cache)
    (pipeline,) = [a for a in recording_attn_opt()[0] if a.startswith("--attn")]
    assert pipeline.startswith("--attn-to-nvvm=chip=sm_90a kv-tile=64 "
                               f"mma=wgmma pipeline=on toolkit={TOOLKIT} "
                               "bundle-dir=")
    assert json.loads((a / "compiler.json").read_text())["pipeline"] == \
        "--attn-to-nvvm=chip=sm_90a kv-tile=64 mma=wgmma pipeline=on"
    # The same options in another order and spelling: the same entry, cached.
    b = compiler.compile("causal", head_dim=64, cache=cache,
                         options={"pipeline": "on", "kv-tile": 64, "mma": "wgmma"})
    assert b == a and len(recording_attn_opt()) == 1
    # Other options, or none: other entries.
    c = compiler.compile("causal", head_dim=64, cache=cache,
                         options={"kv_tile": 128})
    d = compiler.compile("causal", head_dim=64, cache=cache)
    assert len({a, c, d}) == 3 and len(recording_attn_opt()) == 3
    assert [x for x in recording_attn_opt()[2] if x.startswith("--attn")][0] \
        .startswith(f"--attn-to-nvvm=chip=sm_90a toolkit={TOOLKIT} "
                    "bundle-dir=")


def test_unknown_option_fails_before_any_compile(tmp_path, recording_attn_opt):
    with pytest.raises(ValueError, match="unknown kernel option 'kvtile'"):
        compiler.compile("causal", head_dim=64, options={"kvtile": 64},
                         cache=tmp_path)
    with pytest.raises(ValueError, match="unknown kernel option"):
        compiler.attention(np.ones((1, 1, 4, 16)), np.ones((1, 1, 4, 16)),
                           np.ones((1, 1, 4, 16)), variant="causal",
                           options={"bogus": 1})
    assert recording_attn_opt() == []


def test_compile_module_into_a_folder(tmp_path, recording_attn_opt):
    text = compiler.gpu_module("softmax", head_dim=32)
    out = compiler.compile_module(text, out=tmp_path / "bundle",
                                  options={"warps": 4})
    assert out == tmp_path / "bundle"
    assert (out / "module.mlir").read_text() == text
    argv = recording_attn_opt()[0]
    assert argv[-1] == (f"--attn-to-nvvm=chip=sm_90a warps=4 "
                        f"toolkit={TOOLKIT} bundle-dir={out}")


def test_kv_tile_option_with_the_real_compiler(tmp_path, monkeypatch):
    path = _tool("ATTN_OPT", "attn-opt")
    if not path.is_file():
        pytest.skip(f"{path} is not built")
    monkeypatch.setenv("ATTN_OPT", str(path))
    kinds = {}
    for tile in (64, 128):
        b = compiler.compile("causal", head_dim=64, cache=tmp_path,
                             options={"mma": "wgmma", "kv_tile": tile})
        (kd,) = runtime.read_description(str(b))["kernels"]
        kinds[tile] = kd["config"]
    assert kinds[64]["block_n"] == 64 and kinds[128]["block_n"] == 128
    assert kinds[64]["mma"] == kinds[128]["mma"] == "wgmma"


def test_deterministic_option_with_the_real_compiler(tmp_path, monkeypatch):
    """deterministic=true reaches the backward's configuration (turn
    counters among its workspaces), leaves the forward's alone, and a
    variant whose gradients are still summed by atomics is refused with the
    op's diagnostic."""
    path = _tool("ATTN_OPT", "attn-opt")
    if not path.is_file():
        pytest.skip(f"{path} is not built")
    monkeypatch.setenv("ATTN_OPT", str(path))
    b = compiler.compile("causal", head_dim=64, cache=tmp_path, backward=True,
                         options={"deterministic": True})
    kinds = {kd.get("kind", "forward"): kd
             for kd in runtime.read_description(str(b))["kernels"]}
    assert kinds["backward"]["config"]["deterministic"] is True
    assert kinds["forward"]["config"]["deterministic"] is False
    turns = [w for w in kinds["backward"]["workspaces"]
             if w["name"] == "dq_turns"]
    assert turns and turns[0]["dtype"] == "i32" and turns[0]["zero"]
    plain = compiler.compile("causal", head_dim=64, cache=tmp_path,
                             backward=True)
    (bwd,) = [kd for kd in runtime.read_description(str(plain))["kernels"]
              if kd.get("kind") == "backward"]
    assert not bwd["config"]["deterministic"]
    assert "dq_turns" not in {w["name"] for w in bwd["workspaces"]}
    # Sink logits: their gradient summed per head by one more kernel.
    sinks = compiler.compile("gpt_oss_sinks", head_dim=64, cache=tmp_path,
                             backward=True, sink_logits=True,
                             options={"deterministic": True})
    (bwd,) = [kd for kd in runtime.read_description(str(sinks))["kernels"]
              if kd.get("kind") == "backward"]
    assert [ln["kernel"] for ln in bwd["launches"]][-2].endswith(
        "_sink_logits")
    with pytest.raises(compiler.CompileError,
                       match="cannot take deterministic=true: sink rows"):
        compiler.compile("rbf_sink_rows", head_dim=64, cache=tmp_path,
                         backward=True, sink_rows=True,
                         options={"deterministic": True})


# ---------------------------------------------------------------------------
# Timeouts
# ---------------------------------------------------------------------------

@pytest.fixture
def hanging_tools(tmp_path, monkeypatch):
    """attn-opt and attn-run that hang; the sleep is a grandchild holding
    the output pipes, so only killing the process group ends it."""
    for name, env in (("attn-opt", "ATTN_OPT"), ("attn-run", "ATTN_RUN")):
        tool = _script(tmp_path / name, "echo started >&2\nsleep 60\necho done\n")
        monkeypatch.setenv(env, str(tool))


def _qkv():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, 2, 8, 16)).astype(np.float32)
            for _ in range(3)]


def test_attn_run_timeout(hanging_tools):
    t0 = time.monotonic()
    with pytest.raises(compiler.ToolTimeout,
                       match="attn-run did not finish within 0.5 s on "
                             "variant 'causal' and was killed") as e:
        compiler.attention(*_qkv(), variant="causal", timeout=0.5)
    assert time.monotonic() - t0 < 10
    assert isinstance(e.value, TimeoutError)
    assert isinstance(e.value, compiler.CompileError)
    assert "started" in e.value.diagnostics


def test_attn_opt_timeout(hanging_tools, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(compiler.ToolTimeout,
                       match="attn-opt did not finish within 0.3 s compiling "
                             "variant 'softmax'"):
        compiler.compile("softmax", head_dim=32, cache=tmp_path / "c",
                         timeout=0.3)
    assert time.monotonic() - t0 < 10
    # Nothing half-written is left in the cache.
    assert list((tmp_path / "c").iterdir()) == []


def test_timeout_from_the_environment(hanging_tools, monkeypatch):
    monkeypatch.setenv("ATTN_MLIR_TIMEOUT", "0.4")
    with pytest.raises(compiler.ToolTimeout, match="within 0.4 s"):
        compiler.attention(*_qkv(), variant="causal")
    monkeypatch.setenv("ATTN_MLIR_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="ATTN_MLIR_TIMEOUT is 'soon'"):
        compiler.attention(*_qkv(), variant="causal")


@pytest.mark.parametrize("bad", [0, -1, "10", True])
def test_bad_timeouts_are_refused(bad):
    with pytest.raises(ValueError, match="timeout is a positive number"):
        compiler.attention(*_qkv(), variant="causal", timeout=bad)


def test_tools_within_the_timeout_run(tmp_path, monkeypatch):
    path = _tool("ATTN_RUN", "attn-run")
    if not path.is_file():
        pytest.skip(f"{path} is not built")
    monkeypatch.setenv("ATTN_RUN", str(path))
    q, k, v = _qkv()
    from attn_mlir import reference
    got = compiler.attention(q, k, v, variant="causal", timeout=120)
    want = reference.attention(q.astype(np.float64), k.astype(np.float64),
                               v.astype(np.float64), masks=[reference.causal()])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert os.environ.get("ATTN_MLIR_TIMEOUT") is None
