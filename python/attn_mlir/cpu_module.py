"""CPU functions compiled once and cached on disk, called through ctypes.

``attn-run`` lowers, JIT-compiles and runs a function in one process, so a
training loop that calls the same shapes again and again pays the lowering
and LLVM's code generation (0.1-0.2 s) on every call. Here the function
text (``func.func @entry`` on static shapes, as ``VariantBase.emit_func``
emits it) is compiled once into a shared library:

    attn-opt --attn-to-cpu=lowering=L   ->  the LLVM dialect
    mlir-translate --mlir-to-llvmir     ->  LLVM IR
    clang -O2 -shared -fPIC             ->  lib.so

cached in ``$ATTN_MLIR_CACHE/cpu/<sha256>`` (the key: the text, the
lowering and the identity of the three tools), loaded with ctypes and
called through its ``_mlir_ciface_<entry>`` wrapper: every argument and
result (results become out-parameters in attn-to-cpu) as a pointer to a
memref descriptor ``{allocated, aligned, offset, sizes[r], strides[r]}``.

``run(text, entry, arrays)`` takes and returns numpy arrays with
``attn-run``'s conventions (bf16 arguments given as float32 and rounded to
nearest even, bf16 results returned as float32, exactly), so it is a drop-in
for an ``attn-run --input=... --output=...`` call. ``available()`` says
whether ``mlir-translate`` and ``clang`` are at hand (``$ATTN_MLIR_TRANSLATE``
/ ``$ATTN_CLANG``, else ``/usr/lib/llvm-22/bin``, else ``mlir-translate-22`` /
``clang-22`` or the plain names on ``PATH``: the LLVM of attn-opt's MLIR).
``stats()`` lists what was compiled in this process and how long it took.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import compiler as _compiler
from .parser import parse_tensor_type

__all__ = ["available", "signature", "load", "run", "stats", "Function"]

LLVM_BIN = Path("/usr/lib/llvm-22/bin")
FORMAT = 1

_NUMPY = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16,
          "i32": np.int32, "i64": np.int64}


def _find(name: str, env: str, alternatives: Sequence[str]) -> Optional[str]:
    given = os.environ.get(env)
    if given:
        return given
    p = LLVM_BIN / name
    if p.is_file() and os.access(p, os.X_OK):
        return str(p)
    for n in (*alternatives, name):
        p = shutil.which(n)
        if p:
            return p
    return None


def _tools() -> Dict[str, Optional[str]]:
    return {"attn-opt": _compiler.find_tool("attn-opt"),
            "mlir-translate": _find("mlir-translate", "ATTN_MLIR_TRANSLATE",
                                    ("mlir-translate-22",)),
            "clang": _find("clang", "ATTN_CLANG", ("clang-22",))}


def available() -> bool:
    """Whether attn-opt, mlir-translate and clang are all at hand."""
    return all(p is not None and os.path.isfile(p)
               for p in _tools().values())


# ---------------------------------------------------------------------------
# The function's signature
# ---------------------------------------------------------------------------

_TENSOR = re.compile(r"tensor<[^<>]*>")


def signature(text: str, entry: str) -> Tuple[List[Tuple[tuple, str]],
                                              List[Tuple[tuple, str]]]:
    """``([(shape, elt)] of the arguments, [(shape, elt)] of the results)``
    of ``func.func @entry`` in ``text``; every size must be static."""
    m = re.search(r"func\.func\s+@" + re.escape(entry) + r"\(", text)
    if m is None:
        raise ValueError(f"no func.func @{entry} in the text")
    depth, i = 1, m.end()
    while depth and i < len(text):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    args = text[m.end():i - 1]
    rest = text[i:text.index("{", i)]
    out = []
    for part in (args, rest):
        types = []
        for t in _TENSOR.findall(part):
            dims, elt = parse_tensor_type(t)
            if None in dims or elt not in _NUMPY:
                raise ValueError(f"@{entry}: {t} is not a static tensor of "
                                 f"{', '.join(_NUMPY)}")
            types.append((tuple(dims), elt))
        out.append(types)
    return out[0], out[1]


def _with_c_interface(text: str, entry: str) -> str:
    """The text with ``llvm.emit_c_interface`` on ``@entry`` (the
    ``_mlir_ciface_`` wrapper that takes descriptor pointers)."""
    m = re.search(r"func\.func\s+@" + re.escape(entry) + r"\(", text)
    brace = text.index("{", m.end())
    # The body's brace follows the result types; a `{` inside them would be
    # an attribute dictionary, which emit_func never prints.
    return text[:brace] + "attributes {llvm.emit_c_interface} " + text[brace:]


# ---------------------------------------------------------------------------
# Compiling and caching
# ---------------------------------------------------------------------------

_STATS: List[dict] = []
_LOADED: Dict[str, "Function"] = {}
_LOCK = threading.Lock()


def _identity(tools: Dict[str, Optional[str]]) -> dict:
    return {n: _compiler._tool_identity(p) for n, p in tools.items()}


def _run(cmd, timeout, what):
    r = _compiler.run_tool(cmd, timeout=timeout, what=what)
    if r.returncode:
        raise _compiler.CompileError(
            f"{os.path.basename(cmd[0])} failed{what}:", r.stderr.strip())


def _build(folder: Path, text: str, entry: str, lowering: str, tools,
           timeout, what: str) -> None:
    src = folder / "module.mlir"
    src.write_text(_with_c_interface(text, entry))
    llvm_mlir, ll, so = (folder / n for n in ("llvm.mlir", "module.ll",
                                             "lib.so"))
    _run([tools["attn-opt"], str(src), f"--attn-to-cpu=lowering={lowering}",
          "-o", str(llvm_mlir)], timeout, what)
    _run([tools["mlir-translate"], "--mlir-to-llvmir", str(llvm_mlir), "-o",
          str(ll)], timeout, what)
    _run([tools["clang"], "-O2", "-shared", "-fPIC", "-w",
          "-Wno-override-module", str(ll), "-o", str(so), "-lm"],
         timeout, what)
    llvm_mlir.unlink()
    ll.unlink()


def load(text: str, entry: str, *, lowering: str = "flash",
         timeout: Optional[float] = None, what: str = "") -> "Function":
    """The compiled ``@entry`` of ``text``: from this process's table, else
    the disk cache, else compiled now (and cached)."""
    if lowering not in ("flash", "loops"):
        raise ValueError(f"lowering is 'flash' or 'loops', got {lowering!r}")
    tools = _tools()
    missing = [n for n, p in tools.items() if p is None]
    if missing:
        raise _compiler.CompileError(
            f"cannot compile a CPU module: {', '.join(missing)} not found")
    ident = _identity(tools)
    key = hashlib.sha256(json.dumps(
        {"text": text, "entry": entry, "lowering": lowering, "tools": ident,
         "format": FORMAT}, sort_keys=True).encode()).hexdigest()[:32]
    with _LOCK:
        fn = _LOADED.get(key)
        if fn is not None:
            return fn
        args, results = signature(text, entry)
        entry_dir = _compiler.cache_dir() / "cpu" / key
        cached = (entry_dir / "lib.so").is_file()
        t0 = time.perf_counter()
        if not cached:
            _compiler.fill_cache_entry(entry_dir, lambda tmp: _build(
                tmp, text, entry, lowering, tools, timeout, what))
        fn = Function(entry_dir / "lib.so", entry, args, results)
        _STATS.append({"key": key, "entry": entry, "what": what.strip(),
                       "lowering": lowering, "cached_on_disk": cached,
                       "seconds": time.perf_counter() - t0})
        _LOADED[key] = fn
        return fn


def stats() -> List[dict]:
    """One entry per module loaded in this process: ``key``, ``entry``,
    ``what``, ``cached_on_disk`` (found compiled) and ``seconds`` (compiling
    or loading it)."""
    return [dict(s) for s in _STATS]


# ---------------------------------------------------------------------------
# Calling
# ---------------------------------------------------------------------------

_DESCRIPTORS: Dict[int, type] = {}


def _descriptor_type(rank: int) -> type:
    if rank not in _DESCRIPTORS:
        _DESCRIPTORS[rank] = type(f"MemRef{rank}D", (ctypes.Structure,), {
            "_fields_": [("allocated", ctypes.c_void_p),
                         ("aligned", ctypes.c_void_p),
                         ("offset", ctypes.c_int64),
                         ("sizes", ctypes.c_int64 * rank),
                         ("strides", ctypes.c_int64 * rank)]})
    return _DESCRIPTORS[rank]


def _descriptor(a: np.ndarray):
    d = _descriptor_type(a.ndim)()
    d.allocated = d.aligned = a.ctypes.data
    d.offset = 0
    stride = 1
    for n in range(a.ndim - 1, -1, -1):
        d.sizes[n] = a.shape[n]
        d.strides[n] = stride
        stride *= a.shape[n]
    return d


def to_bf16_bits(a) -> np.ndarray:
    """float32 -> the bits of bfloat16, rounded to nearest even (NaN kept
    a quiet NaN)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    return np.where(nan, 0x7FC0, rounded).astype(np.uint16)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


class Function:
    """A loaded ``_mlir_ciface_<entry>``; call it with numpy arrays."""

    def __init__(self, lib: Path, entry: str, args, results):
        self.path = lib
        self.entry = entry
        self.args = args
        self.results = results
        self._lib = ctypes.CDLL(str(lib))
        self._fn = getattr(self._lib, f"_mlir_ciface_{entry}")
        self._fn.restype = None
        self._fn.argtypes = [ctypes.c_void_p] * (len(args) + len(results))

    def _argument(self, n: int, a) -> np.ndarray:
        shape, elt = self.args[n]
        a = np.asarray(a)
        if a.shape != shape:
            raise ValueError(f"@{self.entry} argument #{n}: expected shape "
                             f"{shape}, got {a.shape}")
        if elt == "bf16":
            return to_bf16_bits(a)
        return np.ascontiguousarray(a, dtype=_NUMPY[elt])

    def __call__(self, *arrays) -> List[np.ndarray]:
        if len(arrays) != len(self.args):
            raise TypeError(f"@{self.entry} takes {len(self.args)} arguments,"
                            f" got {len(arrays)}")
        ins = [self._argument(n, a) for n, a in enumerate(arrays)]
        outs = [np.empty(shape, _NUMPY[elt]) for shape, elt in self.results]
        descs = [_descriptor(a) for a in ins + outs]
        self._fn(*[ctypes.addressof(d) for d in descs])
        return [from_bf16_bits(o) if elt == "bf16" else o
                for o, (_, elt) in zip(outs, self.results)]


def run(text: str, entry: str, arrays: Sequence, *, lowering: str = "flash",
        timeout: Optional[float] = None, what: str = "") -> List[np.ndarray]:
    """Calls ``@entry`` of ``text`` (compiled and cached by ``load``) on
    ``arrays``; returns its results, as ``attn-run --output`` would."""
    return load(text, entry, lowering=lowering, timeout=timeout,
                what=what)(*arrays)
