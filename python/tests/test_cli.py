"""``python -m attn_mlir`` (list, compile, run) through subprocesses, and the
order in which ``compiler.find_tool`` looks for attn-opt / attn-run (its
variable, the installed package's bin/, PATH, the build folders), with fake
tools in temporary folders."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attn_mlir import compiler, variants

REPO = Path(__file__).resolve().parents[2]
PYTHON_DIR = REPO / "python"


def cli(*args, env=None, cwd=None, timeout=300):
    """``python -m attn_mlir ARGS`` with ``python/`` on PYTHONPATH."""
    e = dict(os.environ if env is None else env)
    e["PYTHONPATH"] = str(PYTHON_DIR)
    return subprocess.run([sys.executable, "-m", "attn_mlir", *map(str, args)],
                          capture_output=True, text=True, env=e, cwd=cwd,
                          timeout=timeout)


def needs_tool(name):
    if compiler.find_tool(name) is None:
        pytest.skip(f"{name} is not built (set ${name.upper().replace('-', '_')}"
                    " or ATTN_BUILD_DIR)")


def needs_ptxas():
    """A CUDA toolkit where compiler.find_cuda_toolkit looks."""
    if compiler.find_cuda_toolkit() is None:
        pytest.skip("no CUDA toolkit, so no cubin can be assembled: "
                    + compiler.missing_toolkit_message())


RUN_ERROR = re.compile(r"max relative error (\S+) \(")


def run_error(r) -> float:
    assert r.returncode == 0, r.stderr
    m = RUN_ERROR.search(r.stdout)
    assert m, r.stdout
    return float(m.group(1))


# ---------------------------------------------------------------------------
# list, --help
# ---------------------------------------------------------------------------

def test_list_names_every_library_variant():
    r = cli("list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    listed = [ln.split()[0] for ln in lines if not ln.startswith("(")]
    assert listed == variants.names()
    for v in variants.load_all():
        assert f"{v.name:18s} {v.summary}" in lines
    assert "gqa_causal = causal" in lines[-1]


@pytest.mark.parametrize("args, words", [
    ((), ["list", "compile", "run", "bench"]),
    (("compile",), ["--head-dim", "--dtype", "--backward", "--out",
                    "--options", "kv-tile"]),
    (("run",), ["--shape", "B,H,S,D", "--device", "float64 reference"]),
    (("bench",), ["--shape", "--backward", "--repeats", "--options",
                  "torch SDPA", "CPU path", "TFLOP/s"]),
])
def test_help(args, words):
    r = cli(*args, "--help")
    assert r.returncode == 0, r.stderr
    for w in words:
        assert w in r.stdout, (w, r.stdout)


# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------

def test_run_causal_against_the_reference():
    needs_tool("attn-run")
    r = cli("run", "causal", "--shape", "1,2,37,64", "--device", "cpu")
    assert "causal: B=1 H=2 S=37 D=64 on the CPU JIT (f32" in r.stdout
    assert 0 < run_error(r) < 1e-5


@pytest.mark.parametrize("command", ["run", "bench"])
def test_above_the_tolerance_fails(command):
    """The error printed is a real comparison: a tolerance below f32's
    rounding fails (exit 1); bench then times nothing."""
    needs_tool("attn-run")
    r = cli(command, "softmax", "--shape", "2,3,29,16", "--device", "cpu",
            "--tol", "1e-12")
    assert r.returncode == 1
    if command == "run":
        assert "above the tolerance" in r.stderr
        err = RUN_ERROR.search(r.stdout)
    else:
        assert "O above the tolerance; not timed" in r.stderr
        assert not BENCH_TIME.search(r.stdout)
        err = BENCH_CHECK.search(r.stdout)
    assert float(err.group(1)) > 1e-12


@pytest.mark.parametrize("name, extra", [
    ("alibi", ()),                            # an f32 capture [Hq]
    ("document", ("--lowering", "loops")),    # i32 segment ids [B, Sk]
    ("gpt_oss_sinks", ()),                    # sink logits
    ("rbf_sink_rows", ()),                    # sink rows
    ("sliding_window", ("--dtype", "f16")),
])
def test_run_operands_and_options(name, extra):
    needs_tool("attn-run")
    r = cli("run", name, "--shape", "2,3,41,16", "--device", "cpu",
            "--seed", "7", *extra)
    err = run_error(r)
    assert 0 < err < (5e-3 if "f16" in extra else 1e-4), r.stdout


def test_run_a_variant_file(tmp_path):
    """A .mlir file outside the library: the library's ALiBi under another
    name, with its @capture header."""
    needs_tool("attn-run")
    text = variants.path("alibi").read_text().replace("@alibi", "@my_alibi")
    f = tmp_path / "mine.mlir"
    f.write_text(text)
    r = cli("run", f, "--shape", "1,2,19,16", "--device", "cpu")
    assert r.stdout.startswith("my_alibi: B=1 H=2 S=19 D=16")
    assert 0 < run_error(r) < 1e-4


def test_run_from_outside_the_repo(tmp_path):
    needs_tool("attn-run")
    r = cli("run", "streaming_llm", "--shape", "1,1,23,32", "--device", "cpu",
            cwd=tmp_path)
    assert 0 < run_error(r) < 1e-4


@pytest.mark.parametrize("args, message", [
    (("run", "no_such_variant", "--shape", "1,2,3,4"),
     "no library variant 'no_such_variant'; the library has alibi"),
    (("run", "causal", "--shape", "1,2,37"), "--shape is B,H,S,D"),
    (("run", "causal", "--shape", "1,2,0,64"), "--shape is B,H,S,D"),
    (("run", "causal", "--shape", "1,2,x,64"), "--shape is B,H,S,D"),
    (("run", "missing.mlir", "--shape", "1,2,3,4"),
     "no variant file missing.mlir"),
    (("run", "causal", "--shape", "1,2,3,4", "--device", "cpu", "--dtype",
      "bf16"), "on the CPU takes f32 or f16"),
    (("compile", "no_such_variant"), "no library variant 'no_such_variant'"),
    (("compile", "causal", "--head-dim", "0"), "--head-dim is a positive"),
    (("compile", "causal", "--options", "bogus=1"),
     "unknown kernel option 'bogus'"),
    (("compile", "causal", "--options", "kv-tile"), "is not NAME=VALUE"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
    (("bench", "missing.mlir", "--shape", "1,2,3,4"),
     "no variant file missing.mlir"),
    (("bench", "causal", "--shape", "1,2,3"), "--shape is B,H,S,D"),
    (("bench", "causal", "--shape", "1,-2,3,4"), "--shape is B,H,S,D"),
    (("bench", "causal"), "the following arguments are required: --shape"),
    (("bench", "causal", "--shape", "1,2,3,4", "--repeats", "0"),
     "--repeats is a positive integer, got 0"),
    (("bench", "causal", "--shape", "1,2,3,4", "--device", "cpu",
      "--dtype", "bf16"), "`bench` on the CPU takes f32 or f16"),
    (("bench", "causal", "--shape", "1,2,3,4", "--device", "cpu",
      "--options", "kv-tile=64"),
     "--options are kernel options of the GPU; this bench runs on the CPU "
     "path (--device cpu)"),
    (("bench", "causal", "--shape", "1,2,3,4", "--options", "bogus=1"),
     "unknown kernel option 'bogus'"),
    (("bench", "causal", "--shape", "1,2,3,4", "--device", "tpu"),
     "invalid choice: 'tpu'"),
])
def test_usage_errors_exit_2(args, message):
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    command = args[0] if args[0] != "frobnicate" else ""
    assert f"usage: python -m attn_mlir {command}".strip() in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, content", [
    (("compile",), b"func.func @f() { return }\n"),
    (("bench", "--shape", "1,1,8,16"), b"\xff\xfe not text"),
])
def test_a_file_that_is_no_variant(tmp_path, args, content):
    f = tmp_path / "bad.mlir"
    f.write_bytes(content)
    r = cli(args[0], f, *args[1:])
    assert r.returncode == 2
    assert f"{f} is not a variant file" in r.stderr


def test_a_capture_run_cannot_size(tmp_path):
    f = tmp_path / "w.mlir"
    f.write_text(variants.path("alibi").read_text().replace(
        "tensor<?xf32> [Hq]", "tensor<?xf32> [W]"))
    r = cli("run", f, "--shape", "1,2,19,16", "--device", "cpu")
    assert r.returncode == 2
    assert "capture 'slopes' of variant 'alibi' has no shape made of B, " \
        "Hq, Hkv" in r.stderr


def test_compiler_errors_exit_1():
    """A shape the variant's mask refuses: attn-run's diagnostic, exit 1."""
    needs_tool("attn-run")
    r = cli("run", "neighborhood_2d", "--shape", "1,1,45,16", "--device",
            "cpu")
    assert r.returncode == 1
    assert "the grid holds 256 tokens but Sk = 45" in r.stderr
    assert "Traceback" not in r.stderr


def _skip_with_a_gpu():
    from attn_mlir.__main__ import gpu_unavailable
    if gpu_unavailable() is None:
        pytest.skip("this machine can run the GPU path")


@pytest.mark.parametrize("command, device", [("run", "cuda"), ("run", "gpu"),
                                             ("bench", "cuda"),
                                             ("bench", "gpu")])
def test_device_gpu_without_one(command, device):
    _skip_with_a_gpu()
    r = cli(command, "causal", "--shape", "1,2,37,64", "--device", device)
    assert r.returncode == 2
    assert f"--device {device}: no usable GPU (" in r.stderr
    assert "pip install 'attn-mlir[gpu]'" in r.stderr


# ---------------------------------------------------------------------------
# bench (the CPU path here; the GPU path needs a GPU)
# ---------------------------------------------------------------------------

BENCH_CHECK = re.compile(r"check O: max \|O - O_ref\| / max \|O_ref\| (\S+) ")
BENCH_GRADS = re.compile(r"check gradients: \|\|g - g_ref\|\| / \|\|g_ref\|\| "
                         r"(.*) against")
BENCH_TIME = re.compile(r"^(forward|backward): (\S+) ms median of (\d+) calls "
                        r"\(min (\S+) ms\), (\S+) GFLOP/s$", re.M)


def _bench_times(r) -> dict:
    assert r.returncode == 0, r.stderr
    return {m.group(1): (float(m.group(2)), int(m.group(3)),
                         float(m.group(4)), float(m.group(5)))
            for m in BENCH_TIME.finditer(r.stdout)}


def test_bench_cpu_forward_and_backward():
    needs_tool("attn-run")
    B, H, S, D = 1, 2, 37, 32
    r = cli("bench", "causal", "--shape", f"{B},{H},{S},{D}", "--backward",
            "--repeats", "3")
    assert r.stdout.startswith(f"causal: B={B} H={H} S={S} D={D}, f32, on "
                               "the CPU path, not the GPU (")
    assert 0 < float(BENCH_CHECK.search(r.stdout).group(1)) < 1e-4
    grads = dict(item.split() for item in
                 BENCH_GRADS.search(r.stdout).group(1).split(", "))
    assert set(grads) == {"dq", "dk", "dv"}
    assert all(0 < float(e) < 1e-4 for e in grads.values()), grads
    times = _bench_times(r)
    assert set(times) == {"forward", "backward"}
    # The GFLOP/s printed are the causal count over the median.
    fwd_flops = 4 * B * H * S * S * D / 2
    for name, flops in (("forward", fwd_flops), ("backward",
                                                 2.5 * fwd_flops)):
        median, calls, least, gflops = times[name]
        assert calls == 3 and 0 < least <= median
        assert gflops == pytest.approx(flops / (median * 1e-3) / 1e9,
                                       rel=0.02, abs=0.006)
    assert "halved for the causal mask" in r.stdout


@pytest.mark.parametrize("name, extra, grads", [
    ("gpt_oss_sinks", ("--dtype", "f16"), {"dq", "dk", "dv",
                                           "d_sink_logits"}),
    ("alibi", ("--lowering", "loops"), {"dq", "dk", "dv", "d_slopes"}),
])
def test_bench_cpu_operands(name, extra, grads):
    """Sinks and captures get their gradients checked too."""
    needs_tool("attn-run")
    r = cli("bench", name, "--shape", "2,2,23,16", "--device", "cpu",
            "--backward", "--repeats", "1", "--seed", "3", *extra)
    times = _bench_times(r)
    assert set(times) == {"forward", "backward"}
    assert "--device cpu" in r.stdout.splitlines()[0]
    got = dict(item.split() for item in
               BENCH_GRADS.search(r.stdout).group(1).split(", "))
    assert set(got) == grads
    tol = 1e-2 if "f16" in extra else 1e-4
    assert all(0 < float(e) < tol for e in got.values()), got


def test_bench_a_variant_file(tmp_path):
    needs_tool("attn-run")
    f = tmp_path / "mine.mlir"
    f.write_text(variants.path("sliding_window").read_text().replace(
        "@sliding_window", "@my_window"))
    r = cli("bench", f, "--shape", "1,1,45,16", "--repeats", "2")
    assert r.stdout.startswith("my_window: B=1 H=1 S=45 D=16")
    assert set(_bench_times(r)) == {"forward"}


def test_flop_count():
    """bench/'s convention: 4*B*H*S*S*D, halved under a causal mask,
    2.5x for the backward; Q K^T and P V counted apart when Dv != D."""
    from attn_mlir.timing import attention_flops
    assert attention_flops(2, 3, 5, 5, 16) == 4 * 2 * 3 * 5 * 5 * 16
    assert attention_flops(2, 3, 5, 5, 16, causal=True) == \
        2 * 3 * 5 * 5 * 16 * 2
    assert attention_flops(1, 1, 4, 6, 8, Dv=2) == \
        2 * 4 * 6 * 8 + 2 * 4 * 6 * 2
    assert attention_flops(1, 2, 8, 8, 4, causal=True, backward=True) == \
        2.5 * 4 * 2 * 8 * 8 * 4 / 2


def test_which_variants_sdpa_computes():
    """bench says SDPA computes the same function only for these two."""
    from attn_mlir.__main__ import _causal, _is_plain_sdpa
    same = {v.name for v in variants.load_all() if _is_plain_sdpa(v)}
    assert same == {"softmax", "causal"}
    assert _causal(variants.load("sliding_window"))
    assert not _causal(variants.load("softmax"))


# ---------------------------------------------------------------------------
# compile
# ---------------------------------------------------------------------------

def _bundle(r) -> Path:
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip().splitlines()
    assert len(out) == 1, r.stdout
    return Path(out[0])


def test_compile_into_a_folder(tmp_path):
    needs_tool("attn-opt")
    needs_ptxas()
    r = cli("compile", "alibi", "--head-dim", "64", "--out", tmp_path / "b")
    path = _bundle(r)
    assert path == tmp_path / "b"
    assert (path / "attn.cubin").read_bytes()[:4] == b"\x7fELF"
    desc = json.loads((path / "attn.json").read_text())
    kernels = {k["name"]: k for k in desc["kernels"]}
    assert list(kernels) == ["alibi_attention"]
    k = kernels["alibi_attention"]
    assert (k["variant"], k["dtype"], k["head_dim_qk"], k["head_dim_v"]) == \
        ("alibi", "bf16", 64, 64)
    assert "alibi_attention" in (path / "attn.ptx").read_text()


def test_compile_backward_f16_with_options(tmp_path):
    needs_tool("attn-opt")
    needs_ptxas()
    env = dict(os.environ, ATTN_MLIR_CACHE=str(tmp_path / "cache"))
    args = ("compile", "causal", "--head-dim", "64", "--head-dim-v", "32",
            "--dtype", "f16", "--backward", "--options", "kv-tile=64")
    path = _bundle(cli(*args, env=env))
    assert path.parent == tmp_path / "cache"
    kernels = {k["name"]: k for k in
               json.loads((path / "attn.json").read_text())["kernels"]}
    assert set(kernels) == {"causal_attention", "causal_attention_grad"}
    fwd = kernels["causal_attention"]
    assert (fwd["dtype"], fwd["head_dim_qk"], fwd["head_dim_v"]) == \
        ("f16", 64, 32)
    assert fwd["config"]["block_n"] == 64
    assert "kv-tile=64" in json.loads(
        (path / "compiler.json").read_text())["pipeline"]
    # The second call is the cache entry.
    assert _bundle(cli(*args, env=env)) == path


def test_compile_refused_variant_exits_1(tmp_path):
    needs_tool("attn-opt")
    r = cli("compile", "linear", "--out", tmp_path / "b")
    assert r.returncode == 1
    assert "attn-opt could not compile variant 'linear'" in r.stderr
    assert "Traceback" not in r.stderr


# ---------------------------------------------------------------------------
# find_tool: the variable, the installed package, PATH, the build folders
# ---------------------------------------------------------------------------

def _fake_tool(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def _installed_copy(tmp_path: Path) -> Path:
    """The package copied as pip lays it out: site/attn_mlir/ (no checkout
    around it)."""
    site = tmp_path / "site"
    shutil.copytree(PYTHON_DIR / "attn_mlir", site / "attn_mlir",
                    ignore=shutil.ignore_patterns("__pycache__", "bin"))
    return site


FIND = ("from attn_mlir import compiler\n"
        "print(compiler.find_tool('attn-opt'))\n")


def _find(site: Path, env: dict, pythonpath: str = None) -> str:
    e = {k: v for k, v in os.environ.items()
         if k not in ("ATTN_OPT", "ATTN_BUILD_DIR")}
    e.update(env, PYTHONPATH=pythonpath or str(site))
    r = subprocess.run([sys.executable, "-c", FIND], capture_output=True,
                       text=True, env=e, cwd=site, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_find_tool_order_of_an_installed_package(tmp_path):
    site = _installed_copy(tmp_path)
    given = _fake_tool(tmp_path / "given" / "attn-opt")
    package = _fake_tool(site / "attn_mlir" / "bin" / "attn-opt")
    on_path = _fake_tool(tmp_path / "path" / "attn-opt")
    build = _fake_tool(tmp_path / "build2" / "bin" / "attn-opt")
    # <site>/../build/bin is no checkout's build: never looked at.
    _fake_tool(tmp_path / "build" / "bin" / "attn-opt")
    path = f"{on_path.parent}:/usr/bin:/bin"
    env = {"ATTN_OPT": str(given), "PATH": path,
           "ATTN_BUILD_DIR": str(build.parents[1])}
    assert _find(site, env) == str(given)
    del env["ATTN_OPT"]
    assert _find(site, env) == str(package)
    package.chmod(0o644)                # not executable: passed over
    assert _find(site, env) == str(on_path)
    env["PATH"] = "/usr/bin:/bin"
    assert _find(site, env) == str(build)
    del env["ATTN_BUILD_DIR"]
    assert _find(site, env) == "None"


def _editable_install(site: Path, url: str) -> Path:
    """What `pip install -e <checkout>` leaves in site-packages, as far as
    find_tool reads it: the distribution's metadata with its PEP 610
    direct_url.json, and the tools in attn_mlir/bin (the package itself is
    imported from the checkout)."""
    dist = site / "attn_mlir-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: attn-mlir\n"
                                   "Version: 0.1.0\n")
    (dist / "direct_url.json").write_text(json.dumps(
        {"dir_info": {"editable": True}, "url": url}))
    return _fake_tool(site / "attn_mlir" / "bin" / "attn-opt")


@pytest.mark.parametrize("url, found", [
    (REPO.as_uri(), True),                       # this checkout
    ((REPO / "elsewhere").as_uri(), False),      # another checkout's
])
def test_find_tool_of_an_editable_install(tmp_path, url, found):
    site = tmp_path / "site"
    tool = _editable_install(site, url)
    on_path = _fake_tool(tmp_path / "path" / "attn-opt")
    got = _find(site, {"PATH": f"{on_path.parent}:/usr/bin:/bin"},
                pythonpath=f"{PYTHON_DIR}:{site}")
    assert got == str(tool if found else on_path)


def test_find_tool_in_the_checkout(tmp_path, monkeypatch):
    """In a checkout: $ATTN_BUILD_DIR/bin before <repo>/build/bin; an
    installed package's bin/ would come before both."""
    build = _fake_tool(tmp_path / "b" / "bin" / "attn-run")
    monkeypatch.delenv("ATTN_RUN", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("ATTN_BUILD_DIR", str(build.parents[1]))
    assert compiler.find_tool("attn-run") == str(build)
    monkeypatch.delenv("ATTN_BUILD_DIR")
    in_repo = REPO / "build" / "bin" / "attn-run"
    assert compiler.find_tool("attn-run") == (
        str(in_repo) if in_repo.is_file() else None)
    monkeypatch.setattr(compiler, "PACKAGE_BIN", tmp_path / "pkg" / "bin")
    package = _fake_tool(tmp_path / "pkg" / "bin" / "attn-run")
    monkeypatch.setenv("ATTN_BUILD_DIR", str(build.parents[1]))
    assert compiler.find_tool("attn-run") == str(package)


def test_missing_tool_says_what_was_tried_and_how_to_get_it(tmp_path,
                                                           monkeypatch):
    monkeypatch.delenv("ATTN_OPT", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("ATTN_BUILD_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(compiler, "PACKAGE_BIN", tmp_path / "pkg" / "bin")
    monkeypatch.setattr(compiler, "REPO", tmp_path)   # no checkout
    with pytest.raises(compiler.CompileError) as e:
        compiler.compile("softmax", head_dim=32, cache=tmp_path / "c")
    msg = str(e.value)
    assert msg.startswith("attn-opt not found (tried $ATTN_OPT (unset), "
                          f"{tmp_path / 'pkg' / 'bin' / 'attn-opt'}, PATH, "
                          f"{tmp_path / 'nowhere' / 'bin' / 'attn-opt'}). ")
    for hint in ("pip install", "llvm-22-dev libmlir-22-dev",
                 "MLIR_DIR", "utils/setup.sh", "set $ATTN_OPT"):
        assert hint in msg


def test_stamp_names_the_installed_tool(tmp_path):
    """A bundle compiled by the package's attn-opt names it in its
    compiler.json; a changed tool compiles the entry again."""
    needs_tool("attn-opt")
    needs_ptxas()
    real = Path(compiler.find_tool("attn-opt")).resolve()
    site = _installed_copy(tmp_path)
    tool = site / "attn_mlir" / "bin" / "attn-opt"
    tool.parent.mkdir()
    shutil.copy2(real, tool)
    code = ("import json, sys\n"
            "from attn_mlir import compiler\n"
            "p = compiler.compile('softmax', head_dim=32, cache=sys.argv[1])\n"
            "print(p)\n"
            "print(json.dumps(json.loads((p / 'compiler.json').read_text())"
            "['attn_opt']))\n")
    e = {k: v for k, v in os.environ.items()
         if k not in ("ATTN_OPT", "ATTN_BUILD_DIR")}
    e["PYTHONPATH"] = str(site)

    def compile_once():
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")],
                           capture_output=True, text=True, env=e, cwd=site,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        path, stamp = r.stdout.splitlines()
        return Path(path), json.loads(stamp)

    path, stamp = compile_once()
    st = tool.stat()
    assert stamp == {"path": str(tool), "size": st.st_size,
                     "mtime_ns": st.st_mtime_ns}
    assert compile_once() == (path, stamp)           # the cached entry
    os.utime(tool, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    again, stamp2 = compile_once()
    assert again == path and stamp2["mtime_ns"] == st.st_mtime_ns + 10 ** 9


def test_bench_prebuild_fills_the_cache_for_both_shapes(tmp_path):
    """--prebuild compiles what the GPU bench loads: forward and backward
    bundles for the check's inputs (S capped at CHECK_MAX_SEQ) and the
    timed ones; a document variant's segment ids are [B, S], so both
    shapes give bundles; they are the cache entries compile() finds."""
    needs_tool("attn-opt")
    needs_ptxas()
    from attn_mlir.__main__ import CHECK_MAX_SEQ
    cache = tmp_path / "cache"
    env = dict(os.environ, ATTN_MLIR_CACHE=str(cache))
    S = CHECK_MAX_SEQ + 100
    r = cli("bench", "document", "--shape", f"1,2,{S},64", "--backward",
            "--prebuild", env=env)
    assert r.returncode == 0, r.stderr
    folders = [Path(line) for line in r.stdout.split()]
    assert len(folders) == 4
    for f in folders:
        assert f.parent == cache
        assert (f / "attn.cubin").read_bytes()[:4] == b"\x7fELF"
    names = [sorted(k["name"] for k in json.loads(
        (f / "attn.json").read_text())["kernels"]) for f in folders]
    assert names[0] == names[2] == ["document_attention"]
    assert names[1] == names[3] == ["document_attention",
                                    "document_attention_grad"]
    # They are the entries the GPU bench asks for with its random operands
    # (the torch tensors give the same module as these arrays).
    from attn_mlir import variants
    v = variants.load("document")
    for i, s in enumerate((CHECK_MAX_SEQ, S)):
        caps = variants.random_operands(v, 1, 2, 2, s, 64, 64)[3]
        for backward in (False, True):
            got = compiler.compile(v, head_dim=64, dtype="bf16",
                                   captures=caps, backward=backward,
                                   cache=cache)
            assert got == folders[2 * i + backward]
    # A second prebuild finds every entry (same folders, nothing new).
    again = cli("bench", "document", "--shape", f"1,2,{S},64", "--backward",
                "--prebuild", env=env)
    assert [Path(x) for x in again.stdout.split()] == folders
    assert len(list(cache.iterdir())) == len(set(folders))


@pytest.mark.parametrize("name,capped", [("alibi", True), ("document", True),
                                         ("neighborhood_2d", False)])
def test_bench_gpu_check_shape(name, capped):
    """The GPU bench checks on at most CHECK_MAX_SEQ positions when that is
    the same module (here: ALiBi's [Hq] slopes, documents' dynamic segment
    ids) and the variant allows it (a 2-D neighborhood ties S to its grid:
    checked on the timed shape)."""
    import argparse
    from attn_mlir import __main__ as m, variants
    args = argparse.Namespace(seed=0, backward=True)
    shape = (1, 2, 4096, 64)
    got = m._gpu_shapes(variants.load(name), args, shape, "bf16")
    want = [(1, 2, m.CHECK_MAX_SEQ, 64), shape] if capped else [shape]
    assert got == want
