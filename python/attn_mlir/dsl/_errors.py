"""Errors of the DSL, located in the user's code."""

from __future__ import annotations

import linecache
import os
import sys
from typing import Optional, Tuple

_DIR = os.path.dirname(os.path.abspath(__file__))
_SKIP_MODULES = ("numpy", "torch", "attn_mlir.dsl", "attn_mlir._variant",
                 "functools")


class DSLError(Exception):
    """A variant the DSL cannot compile; ``filename`` and ``lineno`` point at
    the user's code."""

    def __init__(self, message: str, filename: Optional[str] = None,
                 lineno: Optional[int] = None):
        self.message = message
        self.filename = filename
        self.lineno = lineno
        text = message
        if filename:
            text = f"{filename}:{lineno}: {message}"
            src = linecache.getline(filename, lineno or 0).strip()
            if src:
                text += f"\n    {src}"
        super().__init__(text)



def _user_location() -> Tuple[Optional[str], Optional[int]]:
    """The innermost frame of the caller's code (not this module, numpy or
    torch)."""
    f = sys._getframe(1)
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        if os.path.dirname(os.path.abspath(f.f_code.co_filename)) != _DIR and not any(
                mod == m or mod.startswith(m + ".") for m in _SKIP_MODULES):
            return f.f_code.co_filename, f.f_lineno
        f = f.f_back
    return None, None


def _error(message: str, loc=None) -> DSLError:
    filename, lineno = loc if loc is not None else _user_location()
    return DSLError(message, filename, lineno)


def _def_location(fn) -> Tuple[Optional[str], Optional[int]]:
    code = getattr(fn, "__code__", None)
    if code is None:
        return None, None
    return code.co_filename, code.co_firstlineno
