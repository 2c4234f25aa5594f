"""``compiler.find_cuda_toolkit``: the CUDA toolkit handed to attn-opt's
``--attn-to-nvvm=toolkit=`` ($CUDA_HOME, $CUDA_PATH, /usr/local/cuda, then
the folders of NVIDIA's PyPI wheels in site-packages), with fake toolkit
folders laid out as the wheels lay theirs out, holding the real ptxas and
libdevice; and the message when there is none."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from attn_mlir import compiler

from conftest import missing_toolkit


#: The machine's toolkit, found before any test changes what the finder sees.
REAL_TOOLKIT = compiler.find_cuda_toolkit()


def _real_toolkit():
    """ptxas and libdevice of the machine's toolkit."""
    path = REAL_TOOLKIT
    if path is None:
        pytest.skip("no CUDA toolkit here to copy ptxas and libdevice from")
    ptxas = Path(path) / "bin" / "ptxas"
    libdevice = Path(path) / "nvvm" / "libdevice" / "libdevice.10.bc"
    if not ptxas.is_file():
        pytest.skip(f"{path} has no bin/ptxas (it uses the one on PATH)")
    return ptxas.resolve(), libdevice.resolve()


def _wheel_toolkit(site: Path, sub: str, ptxas: Path = None,
                   libdevice: Path = None, log: Path = None) -> Path:
    """``site/sub`` as NVIDIA's wheels fill it: bin/ptxas (a script that
    logs its arguments to ``log`` and runs the real one) and
    nvvm/libdevice/libdevice.10.bc (a link to the real one)."""
    root = site / sub
    (root / "bin").mkdir(parents=True)
    (root / "nvvm" / "libdevice").mkdir(parents=True)
    if ptxas is not None:
        tool = root / "bin" / "ptxas"
        tool.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n'
                        f'exec "{ptxas}" "$@"\n')
        tool.chmod(0o755)
    if libdevice is not None:
        (root / "nvvm" / "libdevice" / "libdevice.10.bc").symlink_to(
            libdevice)
    return root


@pytest.fixture
def no_system_toolkit(tmp_path, monkeypatch):
    """No $CUDA_HOME / $CUDA_PATH, no /usr/local/cuda and no ptxas on PATH
    as far as the package and attn-opt can tell."""
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setattr(compiler, "SYSTEM_CUDA_TOOLKITS",
                        (str(tmp_path / "no-cuda"),))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(sys, "path", [p for p in sys.path
                                      if not (Path(p or ".") / "nvidia")
                                      .is_dir()])


def test_the_cuda13_wheels_give_cubins(tmp_path, monkeypatch,
                                       no_system_toolkit):
    """`pip install nvidia-cuda-nvcc` (with nvidia-nvvm): ptxas and
    libdevice under site-packages/nvidia/cu13 are what attn-opt uses."""
    ptxas, libdevice = _real_toolkit()
    if compiler.find_tool("attn-opt") is None:
        pytest.skip("attn-opt is not built")
    site = tmp_path / "site-packages"
    log = tmp_path / "ptxas.log"
    root = _wheel_toolkit(site, "nvidia/cu13", ptxas, libdevice, log)
    monkeypatch.syspath_prepend(str(site))
    assert compiler.find_cuda_toolkit() == str(root)
    path = compiler.compile("alibi", head_dim=64, captures=[((4,), "f32")],
                            cache=tmp_path / "cache")
    assert (path / "attn.cubin").read_bytes()[:4] == b"\x7fELF"
    assert json.loads((path / "compiler.json").read_text())["toolkit"] == \
        str(root)
    # The wheel's ptxas assembled it.
    calls = log.read_text()
    assert "sm_90a" in calls, calls


def test_lookup_order(tmp_path, monkeypatch, no_system_toolkit):
    ptxas, libdevice = _real_toolkit()
    log = tmp_path / "log"
    site = tmp_path / "site"
    cu12 = _wheel_toolkit(site, "nvidia/cuda_nvcc", ptxas, libdevice, log)
    monkeypatch.syspath_prepend(str(site))
    assert compiler.find_cuda_toolkit() == str(cu12)      # CUDA 12 wheel
    cu13 = _wheel_toolkit(site, "nvidia/cu13", ptxas, libdevice, log)
    assert compiler.find_cuda_toolkit() == str(cu13)      # CUDA 13 first
    system = _wheel_toolkit(tmp_path, "usr-local-cuda", ptxas, libdevice,
                            log)
    monkeypatch.setattr(compiler, "SYSTEM_CUDA_TOOLKITS", (str(system),))
    assert compiler.find_cuda_toolkit() == str(system)    # before wheels
    home = _wheel_toolkit(tmp_path, "home", ptxas, libdevice, log)
    monkeypatch.setenv("CUDA_PATH", str(home))
    assert compiler.find_cuda_toolkit() == str(home)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "missing"))
    assert compiler.find_cuda_toolkit() == str(home)      # passed over


def test_incomplete_toolkits_are_passed_over(tmp_path, monkeypatch,
                                             no_system_toolkit):
    ptxas, libdevice = _real_toolkit()
    log = tmp_path / "log"
    site = tmp_path / "site"
    # nvidia-cuda-nvcc without nvidia-nvvm: ptxas, no libdevice.
    cu13 = _wheel_toolkit(site, "nvidia/cu13", ptxas, None, log)
    monkeypatch.syspath_prepend(str(site))
    assert compiler.cuda_toolkit_problem(cu13) == \
        "no nvvm/libdevice/libdevice.10.bc"
    assert compiler.find_cuda_toolkit() is None
    # libdevice, but no ptxas in bin/ nor on PATH.
    cu12 = _wheel_toolkit(site, "nvidia/cuda_nvcc", None, libdevice, log)
    assert compiler.cuda_toolkit_problem(cu12) == \
        "no bin/ptxas and none on PATH"
    assert compiler.find_cuda_toolkit() is None
    # attn-opt's rule: a ptxas on PATH will do.
    monkeypatch.setenv("PATH", f"{ptxas.parent}:/usr/bin:/bin")
    assert compiler.find_cuda_toolkit() == str(cu12)


def test_no_toolkit_names_the_places_and_the_pip_package(tmp_path,
                                                         no_system_toolkit):
    if compiler.find_tool("attn-opt") is None:
        pytest.skip("attn-opt is not built")
    with pytest.raises(compiler.CompileError) as e:
        compiler.compile("softmax", head_dim=32, cache=tmp_path / "c")
    msg = str(e.value)
    none = tmp_path / "no-cuda"
    assert msg.startswith(
        "attn-opt could not compile variant 'softmax' (bf16, head dims "
        "32/32) for the GPU: No CUDA toolkit with ptxas and libdevice found "
        f"(tried $CUDA_HOME (unset); $CUDA_PATH (unset); {none} (not a "
        "directory); no site-packages folder on sys.path holds NVIDIA's "
        "wheels (nvidia/)). pip install nvidia-cuda-nvcc (CUDA 13; "
        "nvidia-cuda-nvcc-cu12 for a CUDA 12 driver)"), msg
    # attn-opt's own diagnostic, which names the pip package too, and
    # which the test suite's skip hook recognises.
    assert f"attn-to-nvvm: toolkit='{none}' is not a directory" in msg
    assert "`pip install nvidia-cuda-nvcc` fills" in e.value.diagnostics
    assert missing_toolkit(e.value) is not None
    assert not any((tmp_path / "c").glob("*/attn.cubin"))


def test_an_incomplete_wheel_is_named_in_the_message(tmp_path, monkeypatch,
                                                     no_system_toolkit):
    site = tmp_path / "site"
    _wheel_toolkit(site, "nvidia/cu13")
    monkeypatch.syspath_prepend(str(site))
    msg = compiler.missing_toolkit_message()
    assert (f"{site / 'nvidia' / 'cu13'} (no nvvm/libdevice/libdevice.10.bc)"
            in msg)
    assert f"{site / 'nvidia' / 'cuda_nvcc'} (not a directory)" in msg
    assert "no site-packages folder" not in msg
