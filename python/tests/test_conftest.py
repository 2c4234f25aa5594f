"""conftest.py's own rules: a GPU compilation that fails for want of a CUDA
toolkit skips its test with the diagnostic; every other failure fails."""
import textwrap

import pytest

from attn_mlir.compiler import CompileError
from conftest import missing_toolkit

pytest_plugins = ["pytester"]

NO_DIR = ("attn-to-nvvm: toolkit='/opt/cuda' is not a directory; valid "
          "values: a CUDA toolkit directory, with nvvm/libdevice/"
          "libdevice.10.bc and ptxas (in its bin/ or on PATH), e.g. "
          "/usr/local/cuda")


@pytest.mark.parametrize("error,reason", [
    (CompileError("attn-opt could not compile x", NO_DIR),
     "attn-to-nvvm: toolkit='/opt/cuda' is not a directory; valid values"),
    (CompileError("failed", "error: attn-to-nvvm: toolkit='/usr/local/cuda' "
                  "has no bin/ptxas and there is none on PATH"),
     "attn-to-nvvm: toolkit='/usr/local/cuda' has no bin/ptxas and there is "
     "none on PATH"),
    (CompileError("failed", "attn-to-nvvm: toolkit='/c' has no nvvm/libdevice"
                  "/libdevice.10.bc; valid"), "has no nvvm/libdevice"),
    # Other compiler errors, and the same text in another exception type.
    (CompileError("failed", "error: 'attn.attention' op cannot use wgmma"),
     None),
    (RuntimeError(NO_DIR), None),
])
def test_missing_toolkit_is_told_apart(error, reason):
    got = missing_toolkit(error)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


def test_missing_toolkit_skips_and_other_errors_fail(pytester):
    with open(__import__("conftest").__file__) as f:
        pytester.makeconftest(f.read())
    pytester.makepyfile(textwrap.dedent(f"""
        from attn_mlir.compiler import CompileError

        def test_no_toolkit():
            raise CompileError("attn-opt could not compile", {NO_DIR!r})

        def test_refused():
            raise CompileError("attn-opt could not compile",
                               "error: 'attn.attention' op cannot use wgmma")
    """))
    result = pytester.runpytest_inprocess("-rs")
    result.assert_outcomes(skipped=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*SKIPPED*no usable CUDA toolkit: attn-to-nvvm: toolkit='/opt/cuda' "
         "is not a directory*"])
