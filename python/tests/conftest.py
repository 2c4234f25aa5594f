"""Shared fixtures of the Python tests.

* Puts ``python/`` on ``sys.path`` so that ``import attn_mlir`` works without
  installing anything.
* ``attn_run`` / ``attn_opt``: runners for the built tools.  They are found
  through the environment variables ``ATTN_RUN`` / ``ATTN_OPT`` or else in
  ``<repo>/build/bin``; tests that need a missing tool are skipped (with the
  path that was tried), never failed.
* A test whose GPU compilation stops at attn-opt's diagnostic for a missing
  CUDA toolkit (no toolkit directory, libdevice or ptxas) is reported
  skipped with that diagnostic as the reason, not failed: the machine cannot
  assemble PTX. Any other compile error still fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple

import re

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))


def _tool(env: str, name: str) -> Path:
    given = os.environ.get(env)
    return Path(given) if given else REPO / "build" / "bin" / name


class Tool:
    """A built command-line tool; ``tool(*args)`` runs it and returns the
    ``subprocess.CompletedProcess`` (text mode, stdout and stderr captured,
    never raising on a nonzero exit)."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, *args, timeout: float = 120.0):
        return subprocess.run([str(self.path), *map(str, args)],
                              capture_output=True, text=True,
                              timeout=timeout)


class AttnRun(Tool):
    """``attn-run``, with a helper for its usual command line."""

    def run(self, mlir: Path, entry: str, *, lowering: str = "flash",
            tiles: Optional[Tuple[int, int]] = None,
            inputs: Sequence[Path] = (), outputs: Sequence[Path] = (),
            extra: Iterable[str] = (), timeout: float = 120.0):
        args = [mlir, f"--entry={entry}", f"--lowering={lowering}"]
        if tiles is not None:
            args += [f"--q-tile={tiles[0]}", f"--kv-tile={tiles[1]}"]
        for flag, paths in (("--input", inputs), ("--output", outputs)):
            if paths:
                names = [str(p) for p in paths]
                assert not any("," in n for n in names), names
                args.append(f"{flag}={','.join(names)}")
        args += list(extra)
        return self(*args, timeout=timeout)


def _require(tool: Tool, env: str) -> Tool:
    if not (tool.path.is_file() and os.access(tool.path, os.X_OK)):
        pytest.skip(f"{tool.path} is not built (set {env} to override)")
    return tool


@pytest.fixture(scope="session")
def attn_run() -> AttnRun:
    return _require(AttnRun(_tool("ATTN_RUN", "attn-run")), "ATTN_RUN")


@pytest.fixture(scope="session")
def attn_opt() -> Tool:
    return _require(Tool(_tool("ATTN_OPT", "attn-opt")), "ATTN_OPT")


#: attn-opt's diagnostics for a CUDA toolkit it cannot use (lib/Pipelines).
_NO_TOOLKIT = re.compile(
    r"attn-to-nvvm: toolkit='[^']*' (is not a directory|has no "
    r"nvvm/libdevice|has no bin/ptxas)[^\n]*")


def missing_toolkit(error: BaseException) -> Optional[str]:
    """The diagnostic of a compile error caused by a missing CUDA toolkit,
    or None for any other error."""
    from attn_mlir.compiler import CompileError
    if not isinstance(error, CompileError):
        return None
    found = _NO_TOOLKIT.search(str(error))
    return found.group(0) if found else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except BaseException as error:
        reason = missing_toolkit(error)
        if reason is None:
            raise
        pytest.skip(f"no usable CUDA toolkit: {reason}")
