"""Compile and run attention variants.

``attention(q, k, v, variant=...)`` computes one attention, and
``attention_grad(q, k, v, o, do, variant=..., lse=...)`` its gradients
(the same dispatch; the GPU backward is not built yet):

* on torch tensors that live on a CUDA device, through a kernel bundle
  (``compile``) launched by ``attn_mlir.runtime``;
* otherwise (numpy arrays, CPU torch tensors) on the CPU: the variant is
  emitted as a function with the static shapes of the inputs
  (``variant.emit_func``), the inputs are written as ``.npy`` files and
  ``attn-run`` (the MLIR JIT runner) computes it.

``variant`` is a library name (``attn_mlir.variants``, e.g. ``"alibi"``),
a library variant or a DSL variant (``attn_mlir.dsl``).

``compile(variant, head_dim=..., dtype=...)`` runs ``attn-opt
--attn-to-nvvm`` on the variant plus a function whose batch, head and
sequence sizes are dynamic (only head dims and the element type are
compiled in) and returns the bundle's folder. Bundles are cached by the
SHA-256 of the compiled text and options in ``$ATTN_MLIR_CACHE`` (default
``~/.cache/attn_mlir``); an entry compiled by another build of ``attn-opt``
(its size or time differ) is compiled again, and with no ``attn-opt`` at
hand a cached entry is used as it is (a GPU machine without MLIR can run
bundles built elsewhere, given the same cache folder). Kernel options of
``--attn-to-nvvm`` (``mma``, ``kv_tile``, ``warps``, ``stages``, ``pipeline``,
``m_tiles``) are given as ``options={...}``; ``compile_module(text, ...)``
compiles any module text the same way (bench/ uses it).

Every attn-opt / attn-run call has a timeout (``timeout=`` seconds, else
``$ATTN_MLIR_TIMEOUT``, else ``DEFAULT_TIMEOUT_S``); past it the tool is
killed and ``ToolTimeout`` (a ``CompileError`` and a ``TimeoutError``) is
raised.

Tools are found through ``$ATTN_OPT`` / ``$ATTN_RUN``, then the package's
own ``bin/`` folder (``PACKAGE_BIN``: where ``pip install`` puts the tools it
builds), then, under ``pip install -e``, the ``bin/`` of the editable
install (``editable_bin``), then ``PATH``, then ``$ATTN_BUILD_DIR/bin``, then
``<repo>/build/bin`` (in a checkout).

The CUDA toolkit whose ptxas and libdevice turn the kernels into cubins
(attn-opt's ``--attn-to-nvvm=toolkit=``) is the first complete one of
``$CUDA_HOME``, ``$CUDA_PATH``, ``/usr/local/cuda`` and the folders NVIDIA's
PyPI wheels install into a ``site-packages`` of ``sys.path``
(``find_cuda_toolkit``): ``pip install nvidia-cuda-nvcc`` (CUDA 13, with
nvidia-nvvm) fills ``nvidia/cu13/{bin/ptxas, nvvm/libdevice}``,
``nvidia-cuda-nvcc-cu12`` fills ``nvidia/cuda_nvcc/``. Without one, attn-opt
gets ``/usr/local/cuda`` (its own default), and its diagnostic comes back
with the places looked at and the pip command (``missing_toolkit_message``).
The toolkit is not part of a bundle's cache key (a machine without one can
use bundles compiled elsewhere); ``compiler.json`` records it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from . import printer as _printer
from ._variant import CAPTURE_ELEMENTS, VariantBase, _np
from .kinds import SOFTMAX_FAMILY

#: The capture element types that get a gradient from the backward.
FLOAT_CAPTURE_ELEMENTS = ("f32",)

__all__ = ["CompileError", "ToolTimeout", "find_tool", "find_cuda_toolkit",
           "cache_dir",
           "resolve_variant", "gpu_module", "compile", "compile_module",
           "attention", "attention_grad", "AttentionGrads",
           "KERNEL_OPTIONS", "DEFAULT_TIMEOUT_S"]

REPO = Path(__file__).resolve().parents[2]
#: Where ``pip install`` puts attn-opt and attn-run (pyproject.toml, the
#: CMake component ``attn-tools``); absent in a checkout.
PACKAGE_BIN = Path(__file__).resolve().parent / "bin"

_TORCH_DTYPES = {"bf16": "bfloat16", "f16": "float16", "f32": "float32",
                 "i32": "int32", "i64": "int64"}


class CompileError(RuntimeError):
    """attn-opt or attn-run failed; the message holds its diagnostics."""

    def __init__(self, message: str, diagnostics: str = ""):
        super().__init__(message + (f"\n{diagnostics}" if diagnostics else ""))
        self.diagnostics = diagnostics

    @property
    def reason(self) -> str:
        """The first ``error:`` of the diagnostics, without its location."""
        for line in self.diagnostics.splitlines():
            if "error: " in line:
                return line.split("error: ", 1)[1].strip()
        return self.diagnostics.strip().splitlines()[0] if \
            self.diagnostics.strip() else str(self)


@functools.lru_cache(maxsize=None)
def editable_bin() -> Optional[Path]:
    """Where ``pip install -e <this checkout>`` put the tools it built:
    ``<site-packages>/attn_mlir/bin``, while the package itself runs from
    the checkout (scikit-build-core's editable mode redirects the imports to
    ``python/``, not the installed programs); None unless this checkout is
    installed so (the distribution's ``direct_url.json``, PEP 610)."""
    from importlib import metadata
    from urllib.parse import unquote, urlparse
    try:
        dist = metadata.distribution("attn-mlir")
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError, OSError):
        return None
    url = urlparse(info.get("url", ""))
    if not info.get("dir_info", {}).get("editable") or url.scheme != "file" \
            or Path(unquote(url.path)).resolve() != REPO.resolve():
        return None
    return Path(os.path.abspath(str(dist.locate_file("attn_mlir/bin"))))


def _tool_places(name: str, env: str):
    """Where ``find_tool`` looks, in order: (label, path or None), each
    worked out only when asked for (``find_tool`` runs on every compile
    call: the PATH search comes after the environment and the package)."""
    yield f"${env}", os.environ.get(env) or None
    yield "the package", str(PACKAGE_BIN / name)
    if editable_bin() is not None:
        yield "the editable install", str(editable_bin() / name)
    yield "PATH", shutil.which(name)
    build = os.environ.get("ATTN_BUILD_DIR")
    yield "$ATTN_BUILD_DIR", str(Path(build) / "bin" / name) if build else None
    if (REPO / "python" / "attn_mlir").resolve() == PACKAGE_BIN.parent:
        yield "the checkout", str(REPO / "build" / "bin" / name)


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_tool(name: str, env: Optional[str] = None) -> Optional[str]:
    """``$ENV`` (default: ``name`` in capitals, ``-`` as ``_``) as it is
    given, else the first executable of ``PACKAGE_BIN/name`` (an installed
    package), ``editable_bin()/name`` (an editable one), ``name`` on
    ``PATH``, ``$ATTN_BUILD_DIR/bin/name`` and, in a
    checkout, ``<repo>/build/bin/name``; None if there is none."""
    env = env or name.upper().replace("-", "_")
    for n, (_, path) in enumerate(_tool_places(name, env)):
        if path and (n == 0 or _executable(path)):
            return path
    return None


def _require_tool(name: str) -> str:
    env = name.upper().replace("-", "_")
    tool = find_tool(name, env)
    if tool is not None and not os.path.isfile(tool):
        raise CompileError(f"${env} names {tool}, which does not exist")
    if tool is None:
        tried = ", ".join(label if label == "PATH" else path or
                          f"{label} (unset)"
                          for label, path in _tool_places(name, env))
        raise CompileError(
            f"{name} not found (tried {tried}). Get it with `pip install "
            f"<attn-mlir checkout>`, which builds attn-opt and attn-run into "
            f"the package against LLVM/MLIR 22 (Debian: apt-get install "
            f"llvm-22-dev libmlir-22-dev mlir-22-tools; another MLIR: "
            f"MLIR_DIR=<its lib/cmake/mlir>), or build a checkout with "
            f"utils/setup.sh, or set ${env} to the tool")
    return tool


#: Toolkit folders looked at after ``$CUDA_HOME`` and ``$CUDA_PATH``.
SYSTEM_CUDA_TOOLKITS = ("/usr/local/cuda",)
#: Where NVIDIA's wheels put a toolkit inside a ``site-packages`` folder:
#: CUDA 13 (``nvidia-cuda-nvcc`` puts bin/ptxas there, the nvidia-nvvm it
#: requires nvvm/libdevice/libdevice.10.bc) and CUDA 12
#: (``nvidia-cuda-nvcc-cu12`` holds both).
WHEEL_CUDA_TOOLKITS = ("nvidia/cu13", "nvidia/cuda_nvcc")
#: How to get a toolkit where ``find_cuda_toolkit`` looks.
CUDA_PIP_HINT = ("pip install nvidia-cuda-nvcc (CUDA 13; "
                 "nvidia-cuda-nvcc-cu12 for a CUDA 12 driver) installs ptxas "
                 "and libdevice into site-packages/nvidia/, where attn_mlir "
                 "finds them, or set $CUDA_HOME to a CUDA toolkit")


def cuda_toolkit_problem(path) -> Optional[str]:
    """What the folder ``path`` lacks as attn-opt's CUDA toolkit, by
    attn-opt's rule (lib/Pipelines: nvvm/libdevice/libdevice.10.bc, and
    ptxas in its bin/ or on PATH); None if nothing."""
    p = Path(path)
    if not p.is_dir():
        return "not a directory"
    if not (p / "nvvm" / "libdevice" / "libdevice.10.bc").is_file():
        return "no nvvm/libdevice/libdevice.10.bc"
    if not _executable(str(p / "bin" / "ptxas")) and not shutil.which(
            "ptxas"):
        return "no bin/ptxas and none on PATH"
    return None


def _toolkit_places():
    """(label, folder or None) in the order ``find_cuda_toolkit`` looks."""
    for env in ("CUDA_HOME", "CUDA_PATH"):
        yield f"${env}", os.environ.get(env) or None
    for path in SYSTEM_CUDA_TOOLKITS:
        yield path, path
    seen = set()
    for entry in sys.path:
        site = Path(entry or ".").resolve()
        if site in seen or not (site / "nvidia").is_dir():
            continue
        seen.add(site)
        for sub in WHEEL_CUDA_TOOLKITS:
            path = str(site / sub)
            yield path, path


def find_cuda_toolkit() -> Optional[str]:
    """The first folder of ``$CUDA_HOME``, ``$CUDA_PATH``,
    ``SYSTEM_CUDA_TOOLKITS`` and ``<site-packages>/WHEEL_CUDA_TOOLKITS``
    (each ``sys.path`` entry holding an ``nvidia/`` folder) that attn-opt
    can use (``cuda_toolkit_problem``); None if none."""
    for _, path in _toolkit_places():
        if path and cuda_toolkit_problem(path) is None:
            return path
    return None


def missing_toolkit_message() -> str:
    """Where ``find_cuda_toolkit`` looked, what each place lacks, and how
    to get a toolkit."""
    tried, wheels = [], False
    for label, path in _toolkit_places():
        if path is None:
            tried.append(f"{label} (unset)")
            continue
        wheels |= label == path and path not in SYSTEM_CUDA_TOOLKITS
        where = path if label == path else f"{label}={path}"
        tried.append(f"{where} ({cuda_toolkit_problem(path)})")
    if not wheels:
        tried.append("no site-packages folder on sys.path holds NVIDIA's "
                     "wheels (nvidia/)")
    return (f"No CUDA toolkit with ptxas and libdevice found (tried "
            f"{'; '.join(tried)}). {CUDA_PIP_HINT}.")


def cache_dir() -> Path:
    """``$ATTN_MLIR_CACHE``, or ``~/.cache/attn_mlir``."""
    given = os.environ.get("ATTN_MLIR_CACHE")
    return Path(given) if given else Path.home() / ".cache" / "attn_mlir"


def resolve_variant(variant) -> VariantBase:
    """A library name or a variant object -> the variant object."""
    if isinstance(variant, VariantBase):
        return variant
    if isinstance(variant, str):
        from . import variants
        return variants.load(variant)
    raise TypeError(f"a variant is a library name or a variant object, got "
                    f"{type(variant).__name__}")


# ---------------------------------------------------------------------------
# The GPU: bundles
# ---------------------------------------------------------------------------

def _capture_shapes(v: VariantBase, captures: Sequence):
    """(shape, elt) per capture from arrays, shapes or (shape, elt) pairs."""
    out = []
    for c, decl in zip(captures, v.captures):
        if isinstance(c, tuple) and len(c) == 2 and isinstance(c[1], str):
            shape, elt = tuple(c[0]), c[1]
        else:
            shape, elt = tuple(getattr(c, "shape", c)), decl.elt
        out.append((shape, elt))
    return out


def gpu_module(variant, *, head_dim: int, head_dim_v: Optional[int] = None,
               dtype: str = "bf16", captures: Sequence = (),
               sink_logits: bool = False, sink_rows: bool = False,
               return_lse: Optional[bool] = None,
               func_name: Optional[str] = None,
               backward: bool = False, grad_lse: bool = False) -> str:
    """The module that ``compile`` hands to attn-opt: the ``attn.variant``
    and a function calling it (``variant @name``) with dynamic batch, head
    and sequence sizes; with ``backward``, also ``@<func>_grad`` holding the
    ``attn.attention_grad`` of the same variant (and the forward returns
    its lse where the normalization has one).

    ``captures``: per captured operand an array, a shape or a
    ``(shape, element type)`` pair; the first size is made dynamic, the rest
    stay (the kernel needs them), except for document segment ids, which are
    ``[B, S]`` with both dynamic.
    """
    v = resolve_variant(variant)
    v._check_captures(captures)
    dv = head_dim if head_dim_v is None else head_dim_v
    if return_lse is None or backward:
        return_lse = v.has_lse
    seg = set()
    for m in v.spec.get("masks") or ():
        if m["kind"] == "document":
            seg |= {m["q_segments"], m["kv_segments"]}
    cap_types = []
    for n, (shape, elt) in enumerate(_capture_shapes(v, captures)):
        shape = [None] * len(shape) if n in seg else [None] + list(shape[1:])
        cap_types.append(_printer.tensor_type(shape, elt))
    tq = _printer.tensor_type((None,) * 3 + (head_dim,), dtype)
    tv = _printer.tensor_type((None,) * 3 + (dv,), dtype)
    types = _printer.AttentionTypes(
        q=tq, k=tq, v=tv, o=tv, captures=cap_types,
        sink_logits="tensor<?xf32>" if sink_logits else None,
        sink_rows=(_printer.tensor_type((None, None, head_dim), dtype),
                   _printer.tensor_type((None, None, dv), dtype))
        if sink_rows else None,
        lse="tensor<?x?x?xf32>" if return_lse else None)
    name = func_name or f"{v.name}_attention"
    text = (v.mlir(v.name).rstrip("\n") + "\n\n" + _printer.attention_func(
        name, types, variant=v.name))
    if backward:
        # The backward takes the lse under the softmax family only.
        if v.normalization not in _printer.LSE_OPERAND_NORMALIZATIONS:
            types.lse = None
        text += "\n" + _printer.attention_grad_func(
            name + "_grad", types, variant=v.name, grad_lse=grad_lse,
            floating=[d.elt.startswith("f") for d in v.captures])
    return text


def _tool_identity(path: Optional[str]) -> Optional[dict]:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"path": os.path.abspath(path), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns}


# ---------------------------------------------------------------------------
# Running the tools: timeouts
# ---------------------------------------------------------------------------

#: Seconds an attn-opt or attn-run call may take unless ``timeout=`` or
#: ``$ATTN_MLIR_TIMEOUT`` says otherwise.
DEFAULT_TIMEOUT_S = 600.0


class ToolTimeout(CompileError, TimeoutError):
    """attn-opt or attn-run ran past its timeout and was killed."""


def _timeout(timeout: Optional[float]) -> float:
    if timeout is None:
        env = os.environ.get("ATTN_MLIR_TIMEOUT")
        try:
            timeout = float(env) if env else DEFAULT_TIMEOUT_S
        except ValueError:
            raise ValueError(f"$ATTN_MLIR_TIMEOUT is {env!r}, not a number "
                             "of seconds") from None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not timeout > 0:
        raise ValueError(f"timeout is a positive number of seconds, got "
                         f"{timeout!r}")
    return float(timeout)


def run_tool(cmd: Sequence[str], *, timeout: Optional[float] = None,
             what: str = "") -> subprocess.CompletedProcess:
    """Runs a tool with its output captured; past ``timeout`` seconds (see
    ``DEFAULT_TIMEOUT_S``) its whole process group is killed and
    ``ToolTimeout`` raised."""
    limit = _timeout(timeout)
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        out, err = proc.communicate()
        tool = os.path.basename(cmd[0])
        raise ToolTimeout(
            f"{tool} did not finish within {limit:g} s{what} and was killed "
            "(give compile/attention a larger timeout= or set "
            "$ATTN_MLIR_TIMEOUT)", (err or "").strip()) from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# ---------------------------------------------------------------------------
# Kernel options of --attn-to-nvvm
# ---------------------------------------------------------------------------

#: ``compile(options=...)`` names -> ``--attn-to-nvvm`` option names.
KERNEL_OPTIONS = {"mma": "mma", "kv_tile": "kv-tile", "warps": "warps",
                  "stages": "stages", "pipeline": "pipeline",
                  "m_tiles": "m-tiles", "deterministic": "deterministic"}


def parse_options(text: str) -> dict:
    """``"kv-tile=64 mma=wgmma"`` (the pipeline's spelling) -> the
    ``options`` dict of ``compile``."""
    out = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise ValueError(f"kernel option {item!r} is not NAME=VALUE")
        out[key] = int(value) if value.lstrip("-").isdigit() else value
    return out


def kernel_option_args(options: Optional[dict]) -> str:
    """The ``--attn-to-nvvm`` text of ``options`` (sorted, so that equal
    options give equal cache keys); unknown names and malformed values
    raise ``ValueError``."""
    parts = []
    for key, value in (options or {}).items():
        name = KERNEL_OPTIONS.get(str(key).replace("-", "_"))
        if name is None:
            raise ValueError(f"unknown kernel option {key!r}; the options are "
                             f"{', '.join(KERNEL_OPTIONS)}")
        if name == "deterministic":
            if not (isinstance(value, bool) or value in ("true", "false")):
                raise ValueError(f"kernel option {key!r} takes true or false, "
                                 f"got {value!r}")
            value = "true" if value is True or value == "true" else "false"
        elif isinstance(value, bool):
            if name != "pipeline":
                raise ValueError(f"kernel option {key!r} takes a number, "
                                 f"got {value!r}")
            value = "on" if value else "off"
        if not isinstance(value, (int, str)) or isinstance(value, str) and (
                not value or any(c.isspace() or c in "=\"'{}" for c in value)):
            raise ValueError(f"kernel option {key!r}: bad value {value!r}")
        if name == "deterministic" and value == "false":
            continue  # the default: the same kernels, the same cache entry
        parts.append(f"{name}={value}")
    return " ".join(sorted(parts))


# ---------------------------------------------------------------------------
# Compiling modules into bundles
# ---------------------------------------------------------------------------

def _attn_to_nvvm(chip: str, options: Optional[dict]) -> str:
    opts = kernel_option_args(options)
    return f"--attn-to-nvvm=chip={chip}" + (f" {opts}" if opts else "")


def _compile_into(folder: Path, text: str, pipeline: str, ident, what: str,
                  timeout: Optional[float]) -> None:
    """attn-opt ``text`` with ``pipeline`` into the bundle folder ``folder``
    (``module.mlir`` and ``compiler.json`` beside the bundle)."""
    attn_opt = _require_tool("attn-opt")
    # None found: the first system folder (attn-opt's own default), whose
    # diagnostic then says what it lacks.
    found = find_cuda_toolkit()
    toolkit = found or SYSTEM_CUDA_TOOLKITS[0]
    src = folder / "module.mlir"
    src.write_text(text)
    r = run_tool([attn_opt, str(src), "-o", os.devnull,
                  f"{pipeline} toolkit={toolkit} bundle-dir={folder}"],
                 timeout=timeout, what=f" compiling {what}")
    if r.returncode:
        message = f"attn-opt could not compile {what} for the GPU:"
        if found is None and "attn-to-nvvm: toolkit=" in r.stderr:
            message += " " + missing_toolkit_message()
        raise CompileError(message, r.stderr.strip())
    (folder / "compiler.json").write_text(json.dumps(
        {"attn_opt": ident, "pipeline": pipeline, "toolkit": toolkit},
        indent=2))


def compile_module(text: str, *, chip: str = "sm_90a",
                   options: Optional[dict] = None,
                   out: Optional[os.PathLike] = None,
                   cache: Optional[os.PathLike] = None, force: bool = False,
                   timeout: Optional[float] = None,
                   what: str = "the module") -> Path:
    """Compiles MLIR ``text`` (functions holding ``attn.attention`` ops, and
    the variants they name) with ``attn-opt --attn-to-nvvm`` and the kernel
    ``options`` (``KERNEL_OPTIONS``) into a bundle folder: ``out`` if given
    (always compiled), else the cache entry of the text and options.
    """
    pipeline = _attn_to_nvvm(chip, options)
    ident = _tool_identity(find_tool("attn-opt"))
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        _compile_into(folder, text, pipeline, ident, what, timeout)
        return folder
    key = hashlib.sha256(json.dumps(
        {"module": text, "pipeline": pipeline, "format": 1},
        sort_keys=True).encode()).hexdigest()[:32]
    root = Path(cache) if cache is not None else cache_dir()
    entry = root / key
    stamp = entry / "compiler.json"
    if entry.is_dir() and stamp.is_file() and not force:
        try:
            built_by = json.loads(stamp.read_text()).get("attn_opt")
        except (OSError, ValueError):
            built_by = "?"
        if ident is None or built_by == ident:
            return entry
    fill_cache_entry(entry, lambda tmp: _compile_into(
        tmp, text, pipeline, ident, what, timeout))
    return entry


def fill_cache_entry(entry: Path, build) -> None:
    """Makes the cache folder ``entry``: ``build(folder)`` writes into a
    fresh temporary folder beside it, which then replaces ``entry`` in one
    rename (if another process got there first, its entry stays); a failed
    build leaves nothing behind."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        build(tmp)
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.rename(tmp, entry)
        except OSError:       # another process got there first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def compile(variant, *, head_dim: int, head_dim_v: Optional[int] = None,
            dtype: str = "bf16", captures: Sequence = (),
            sink_logits: bool = False, sink_rows: bool = False,
            return_lse: Optional[bool] = None, chip: str = "sm_90a",
            options: Optional[dict] = None,
            cache: Optional[os.PathLike] = None, force: bool = False,
            timeout: Optional[float] = None, backward: bool = False,
            grad_lse: bool = False,
            out: Optional[os.PathLike] = None) -> Path:
    """Compiles ``variant`` into a kernel bundle for the GPU; returns its
    folder (``attn.cubin``, ``attn.ptx``, ``attn.json``, ``module.mlir``):
    ``out`` if given (always compiled), else its entry of the bundle cache.

    ``options``: kernel options of ``--attn-to-nvvm`` (``KERNEL_OPTIONS``),
    e.g. ``{"mma": "wgmma", "kv_tile": 64, "warps": 8, "stages": 3,
    "pipeline": "on", "m_tiles": 1}``; they are part of the cache key.
    ``timeout``: seconds attn-opt may take (``DEFAULT_TIMEOUT_S``).
    ``backward``: the bundle also holds the backward kernels (its second
    entry, ``kind: backward``; see ``gpu_module``).

    Raises ``CompileError`` with attn-opt's diagnostics when the compiler
    refuses (e.g. a variant the tensor-core kernel does not support yet),
    ``ValueError`` for an unknown option.
    """
    kernel_option_args(options)             # bad options fail before printing
    text = gpu_module(variant, head_dim=head_dim, head_dim_v=head_dim_v,
                      dtype=dtype, captures=captures,
                      sink_logits=sink_logits, sink_rows=sink_rows,
                      return_lse=return_lse, backward=backward,
                      grad_lse=grad_lse)
    what = (f"variant '{resolve_variant(variant).name}' ({dtype}, head dims "
            f"{head_dim}/{head_dim_v or head_dim})")
    return compile_module(text, chip=chip, options=options, out=out,
                          cache=cache, force=force, timeout=timeout,
                          what=what)


_LOADED = {}


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _dtype_name(x) -> str:
    dt = str(x.dtype).replace("torch.", "")
    names = {"float32": "f32", "float16": "f16", "bfloat16": "bf16",
             "float64": "f32"}
    if dt not in names:
        raise TypeError(f"q, k, v must be floating point, got {dt}")
    return names[dt]


def _gpu_dtype(q) -> str:
    import torch
    dtype = _dtype_name(q)
    if dtype not in ("bf16", "f16") or q.dtype == torch.float64:
        raise TypeError(f"the GPU kernel takes bfloat16 or float16 tensors, "
                        f"got {q.dtype}; convert them, or run on the CPU")
    return dtype


def _gpu_kernel(path: Path, device, name: Optional[str] = None):
    """Kernel ``name`` (or the only one) of the bundle at ``path``, loaded
    once per device."""
    import torch
    from .runtime import Bundle
    key = (str(path), device.index)
    if key not in _LOADED:
        with torch.cuda.device(device):
            _LOADED[key] = Bundle.load(str(path))
    return _LOADED[key].kernel(name)


def _gpu_operands(v: VariantBase, q, captures, sink_logits, sink_key,
                  sink_value) -> dict:
    """The captures and sinks as the kernels take them: contiguous tensors
    on q's device of their declared types."""
    import torch
    dev = q.device
    caps = [torch.as_tensor(c, device=dev).to(
        getattr(torch, _TORCH_DTYPES[decl.elt])).contiguous()
        for c, decl in zip(captures, v.captures)]
    sl = None if sink_logits is None else torch.as_tensor(
        sink_logits, device=dev).to(torch.float32).contiguous()
    sk = None if sink_key is None else sink_key.to(dev, q.dtype).contiguous()
    sv = None if sink_value is None else sink_value.to(dev,
                                                       q.dtype).contiguous()
    return {"captures": caps, "sink_logits": sl, "sink_key": sk,
            "sink_value": sv}


def _run_gpu(v: VariantBase, q, k, v_, captures, sink_logits, sink_key,
             sink_value, return_lse, chip, options, timeout):
    import torch
    dtype = _gpu_dtype(q)
    path = compile(v, head_dim=q.shape[-1], head_dim_v=v_.shape[-1],
                   dtype=dtype, captures=captures,
                   sink_logits=sink_logits is not None,
                   sink_rows=sink_key is not None, chip=chip,
                   options=options, timeout=timeout)
    kernel = _gpu_kernel(path, q.device)
    extra = _gpu_operands(v, q, captures, sink_logits, sink_key, sink_value)
    with torch.cuda.device(q.device):
        out, lse = kernel.run(q.contiguous(), k.contiguous(), v_.contiguous(),
                              **extra)
    return (out, lse) if return_lse else out


# ---------------------------------------------------------------------------
# The CPU: attn-run
# ---------------------------------------------------------------------------

def _to_npy_float(x, dtype: str) -> np.ndarray:
    a = np.asarray(_np(x))
    if dtype == "f16":
        return a.astype(np.float16)
    return a.astype(np.float32)      # f32; bf16 is read from f32 files


def _cpu_arrays(v: VariantBase, q, k, v_, captures, sink_logits, sink_key,
                sink_value, dtype):
    """The op's operands, in order, as arrays of the types attn-run reads."""
    arrays = [_to_npy_float(x, dtype) for x in (q, k, v_)]
    for c, decl in zip(captures, v.captures):
        arrays.append(np.ascontiguousarray(np.asarray(_np(c)).astype(
            CAPTURE_ELEMENTS[decl.elt])))
    if sink_logits is not None:
        arrays.append(np.asarray(_np(sink_logits), dtype=np.float32))
    if sink_key is not None:
        arrays += [_to_npy_float(sink_key, dtype),
                   _to_npy_float(sink_value, dtype)]
    return arrays


def _attn_run(text: str, arrays: Sequence[np.ndarray], num_results: int,
              lowering: str, what: str,
              timeout: Optional[float], cache: bool = False) -> list:
    """attn-run's results (arrays) of the function ``attn_cpu`` in ``text``
    on ``arrays``; with ``cache``, those of the function compiled once into
    a cached shared library (``attn_mlir.cpu_module``, the same results)."""
    if cache:
        from . import cpu_module
        fn = cpu_module.load(text, "attn_cpu", lowering=lowering,
                             timeout=timeout, what=f" on {what}")
        if len(fn.results) != num_results:
            raise CompileError(f"@attn_cpu of {what} returns "
                               f"{len(fn.results)} results, not {num_results}")
        return fn(*arrays)
    attn_run = _require_tool("attn-run")
    with tempfile.TemporaryDirectory(prefix="attn_mlir_") as tmp:
        tmp = Path(tmp)
        src = tmp / "attention.mlir"
        src.write_text(text)
        ins = []
        for n, a in enumerate(arrays):
            p = tmp / f"in{n}.npy"
            np.save(p, np.ascontiguousarray(a))
            ins.append(str(p))
        outs = [str(tmp / f"out{n}.npy") for n in range(num_results)]
        r = run_tool(
            [attn_run, str(src), "--entry=attn_cpu", f"--lowering={lowering}",
             "--input=" + ",".join(ins), "--output=" + ",".join(outs)],
            timeout=timeout, what=f" on {what}")
        if r.returncode:
            raise CompileError(f"attn-run failed on {what}:", r.stderr.strip())
        return [np.load(p) for p in outs]


def _run_cpu(v: VariantBase, q, k, v_, captures, sink_logits, sink_key,
             sink_value, return_lse, lowering, dtype, timeout, cpu_cache):
    dtype = dtype or _dtype_name(q)
    arrays = _cpu_arrays(v, q, k, v_, captures, sink_logits, sink_key,
                         sink_value, dtype)
    text = v.emit_func(
        "attn_cpu", arrays[0].shape, arrays[1].shape, arrays[2].shape, dtype,
        captures=[a.shape for a in arrays[3:3 + len(captures)]],
        sink_logits=sink_logits is not None,
        sink_rows=None if sink_key is None else arrays[-2].shape[1],
        return_lse=return_lse)
    results = _attn_run(text, arrays, 2 if return_lse else 1, lowering,
                        f"variant '{v.name}'", timeout, cpu_cache)
    if _is_torch(q):
        import torch
        results[0] = torch.from_numpy(results[0]).to(q.dtype)
        if return_lse:
            results[1] = torch.from_numpy(results[1])
    return tuple(results) if return_lse else results[0]


# ---------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------

def _check_call(var: VariantBase, captures, sink_logits, sink_key,
                sink_value, lowering, timeout, options) -> None:
    """The checks ``attention`` and ``attention_grad`` share."""
    var._check_captures(captures)
    if (sink_key is None) != (sink_value is None):
        raise ValueError("sink rows need both sink_key and sink_value")
    if var.sink_logits and sink_logits is None:
        raise ValueError(f"variant '{var.name}' needs sink_logits [Hq]")
    if var.sink_rows and sink_key is None:
        raise ValueError(f"variant '{var.name}' needs sink_key and "
                         "sink_value")
    if lowering not in ("flash", "loops"):
        raise ValueError(f"lowering is 'flash' or 'loops', got {lowering!r}")
    _timeout(timeout)
    kernel_option_args(options)


def attention(q, k, v, *, variant, captures: Sequence = (),
              sink_logits=None, sink_key=None, sink_value=None,
              return_lse: bool = False, lowering: str = "flash",
              dtype: Optional[str] = None, chip: str = "sm_90a",
              options: Optional[dict] = None,
              timeout: Optional[float] = None, cpu_cache: bool = False):
    """``O`` (and ``lse`` with ``return_lse``) of ``variant`` on q, k, v.

    * ``q [B, Hq, Sq, Dqk]``, ``k [B, Hkv, Sk, Dqk]``, ``v [B, Hkv, Sk,
      Dv]``: torch tensors on a CUDA device run on the GPU (bf16 / f16, head
      dims multiples of 16); anything else (numpy arrays, CPU tensors) on
      the CPU JIT, where ``lowering`` picks ``flash`` (tiled online
      softmax) or ``loops`` (the literal definition) and ``dtype``
      (``f32``, ``f16``, ``bf16``) overrides the element type taken from q.
    * ``captures``: the variant's captured tensors, in order (converted to
      their declared element types); ``sink_logits [Hq]``, ``sink_key
      [Hkv, Ns, Dqk]`` / ``sink_value [Hkv, Ns, Dv]``: the op's optional
      operands.
    * ``options``: kernel options for the GPU (see ``compile``);
      ``timeout``: seconds attn-opt / attn-run may take before they are
      killed and ``ToolTimeout`` is raised (default ``DEFAULT_TIMEOUT_S``
      or ``$ATTN_MLIR_TIMEOUT``).
    * ``cpu_cache``: on the CPU, compile the function once into a shared
      library cached on disk (``attn_mlir.cpu_module``: attn-opt,
      mlir-translate, clang; ~0.3 s once) and call it, instead of attn-run
      (which compiles it again on every call, 0.1-0.2 s); the results are
      the same.

    Results are of q's kind: torch tensors of q's dtype, or numpy arrays
    (float32 for f32 and bf16, float16 for f16).
    """
    var = resolve_variant(variant)
    _check_call(var, captures, sink_logits, sink_key, sink_value, lowering,
                timeout, options)
    if return_lse and not var.has_lse:
        raise ValueError(f"'{var.normalization}' defines no lse")
    if _is_torch(q) and q.is_cuda:
        return _run_gpu(var, q, k, v, list(captures), sink_logits, sink_key,
                        sink_value, return_lse, chip, options, timeout)
    return _run_cpu(var, q, k, v, list(captures), sink_logits, sink_key,
                    sink_value, return_lse, lowering, dtype, timeout,
                    cpu_cache)


# ---------------------------------------------------------------------------
# The backward
# ---------------------------------------------------------------------------

class AttentionGrads(NamedTuple):
    """What ``attention_grad`` returns: the fields of
    ``reference.AttentionGrads``, as arrays (or tensors) of q's kind.

    ``dq``, ``dk``, ``dv``, ``d_sink_key``, ``d_sink_value`` have the
    element type of q (numpy: float32 for f32 and bf16, float16 for f16);
    ``d_sink_logits`` and the capture gradients are float32.
    ``d_sink_logits``, ``d_sink_key``, ``d_sink_value`` are None when the op
    has no such operand; ``d_captures`` has one entry per capture, None for
    an integer one.
    """
    dq: Any
    dk: Any
    dv: Any
    d_sink_logits: Any
    d_sink_key: Any
    d_sink_value: Any
    d_captures: tuple


def _run_gpu_grad(v: VariantBase, q, k, v_, o, do, lse, grad_lse, captures,
                  sink_logits, sink_key, sink_value, chip, options,
                  timeout) -> AttentionGrads:
    """The backward on CUDA tensors: the bundle of the variant's forward and
    backward kernels (``compile(..., backward=True)``), its entry
    ``<variant>_attention_grad``."""
    import torch
    dtype = _gpu_dtype(q)
    path = compile(v, head_dim=q.shape[-1], head_dim_v=v_.shape[-1],
                   dtype=dtype, captures=captures,
                   sink_logits=sink_logits is not None,
                   sink_rows=sink_key is not None, chip=chip,
                   options=options, timeout=timeout, backward=True,
                   grad_lse=grad_lse is not None)
    kernel = _gpu_kernel(path, q.device, f"{v.name}_attention_grad")
    extra = _gpu_operands(v, q, captures, sink_logits, sink_key, sink_value)
    f32 = lambda t: None if t is None else torch.as_tensor(  # noqa: E731
        t, device=q.device).to(torch.float32).contiguous()
    with torch.cuda.device(q.device):
        results = kernel.run_grad(
            q.contiguous(), k.contiguous(), v_.contiguous(),
            o.to(q.dtype).contiguous(), do.to(q.dtype).contiguous(),
            lse=f32(lse), dlse=f32(grad_lse), **extra)
    return _grads_from_results(v, results, None, sink_logits is not None,
                               sink_key is not None)


def _grads_from_results(v: VariantBase, results: list, q, has_sink_logits,
                        has_sink_rows) -> AttentionGrads:
    """The op's results (in its result order) as AttentionGrads: numpy
    arrays converted to q's kind, or, with ``q`` None, taken as they are
    (the GPU's tensors)."""
    if q is not None and _is_torch(q):
        import torch

        def like_q(a):
            return torch.from_numpy(a).to(q.dtype)

        def f32(a):
            return torch.from_numpy(np.ascontiguousarray(a, np.float32))
    else:
        def like_q(a):
            return a

        def f32(a):
            return a
    it = iter(results)
    dq, dk, dv = (like_q(next(it)) for _ in range(3))
    dsl = f32(next(it)) if has_sink_logits else None
    dsk = dsv = None
    if has_sink_rows:
        dsk, dsv = like_q(next(it)), like_q(next(it))
    dcaps = tuple(f32(next(it)) if decl.elt in FLOAT_CAPTURE_ELEMENTS
                  else None for decl in v.captures)
    return AttentionGrads(dq, dk, dv, dsl, dsk, dsv, dcaps)


def _run_cpu_grad(v: VariantBase, q, k, v_, o, do, lse, grad_lse, captures,
                  sink_logits, sink_key, sink_value, lowering, dtype,
                  timeout, cpu_cache) -> AttentionGrads:
    dtype = dtype or _dtype_name(q)
    arrays = _cpu_arrays(v, q, k, v_, captures, sink_logits, sink_key,
                         sink_value, dtype)
    per_query = [_to_npy_float(o, dtype), _to_npy_float(do, dtype)]
    per_query += [np.asarray(_np(x), dtype=np.float32)
                  for x in (lse, grad_lse) if x is not None]
    arrays[3:3] = per_query
    first_cap = 3 + len(per_query)
    text = v.emit_grad_func(
        "attn_cpu", arrays[0].shape, arrays[1].shape, arrays[2].shape, dtype,
        captures=[a.shape for a in arrays[first_cap:first_cap +
                                          len(captures)]],
        sink_logits=sink_logits is not None,
        sink_rows=None if sink_key is None else arrays[-2].shape[1],
        lse=lse is not None, grad_lse=grad_lse is not None)
    num_results = 3 + (sink_logits is not None) + 2 * (sink_key is not None)
    num_results += sum(decl.elt in FLOAT_CAPTURE_ELEMENTS
                       for decl in v.captures)
    results = _attn_run(text, arrays, num_results, lowering,
                        f"the backward of variant '{v.name}'", timeout,
                        cpu_cache)
    return _grads_from_results(v, results, q, sink_logits is not None,
                               sink_key is not None)


def attention_grad(q, k, v, o, do, *, variant, lse=None, grad_lse=None,
                   captures: Sequence = (), sink_logits=None, sink_key=None,
                   sink_value=None, lowering: str = "flash",
                   dtype: Optional[str] = None, chip: str = "sm_90a",
                   options: Optional[dict] = None,
                   timeout: Optional[float] = None,
                   cpu_cache: bool = False) -> AttentionGrads:
    """The gradients of ``attention(q, k, v, variant=...)`` for the loss
    ``L = sum(do * O) + sum(grad_lse * lse)`` (``attn.attention_grad``,
    docs/semantics.md §6).

    * ``q``, ``k``, ``v``, ``captures``, the sinks, ``variant``,
      ``lowering``, ``dtype``, ``options``, ``timeout``, ``cpu_cache``: as
      in ``attention``; ``o = O [B, Hq, Sq, Dv]`` the forward's output and
      ``do = dL/dO`` of its shape.
    * ``lse [B, Hq, Sq]``: the forward's (``attention(...,
      return_lse=True)``); required for the softmax family, accepted under
      ``mean``, refused otherwise. ``grad_lse``: ``dL/dlse``, only with
      ``lse``.

    Returns ``AttentionGrads`` (the fields of ``reference.AttentionGrads``,
    of q's kind). Numpy arrays and CPU tensors run on the CPU JIT
    (``lowering='flash'``: the tiled FlashAttention-2 order, ``'loops'``:
    the literal definition); CUDA tensors go to the GPU backward.
    """
    var = resolve_variant(variant)
    _check_call(var, captures, sink_logits, sink_key, sink_value, lowering,
                timeout, options)
    if lse is None and var.normalization in SOFTMAX_FAMILY:
        raise ValueError(f"the backward of '{var.normalization}' needs the "
                         "forward's lse (attention(..., return_lse=True))")
    if lse is not None and not var.has_lse:
        raise ValueError(f"'{var.normalization}' defines no lse; pass none")
    if grad_lse is not None and lse is None:
        raise ValueError("grad_lse needs lse: it is the gradient of the "
                         "forward's lse")
    args = (var, q, k, v, o, do, lse, grad_lse, list(captures), sink_logits,
            sink_key, sink_value)
    if _is_torch(q) and q.is_cuda:
        return _run_gpu_grad(*args, chip, options, timeout)
    return _run_cpu_grad(*args, lowering, dtype, timeout, cpu_cache)
