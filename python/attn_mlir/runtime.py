"""Run attn-mlir kernel bundles on torch tensors through the CUDA driver API.

A bundle is what ``attn-opt --attn-to-nvvm="bundle-dir=DIR"`` writes: a
``.cubin`` (and ``.ptx``) holding the kernels of every ``attn.attention``,
and a ``.json`` that says how to launch them (``docs/bundles.md``). This
module needs torch and ``cuda.bindings`` (the ``cuda-bindings`` package),
and no MLIR.

    bundle = Bundle.load("bundles/softmax_causal")
    out, lse = bundle.kernel().run(q, k, v)

The runtime knows the operands of ``attn.attention`` (q, k, v, o, lse, sink
logits and rows, captures) and nothing about any variant: each entry of the
description lists its launches (kernel, grid as expressions of the sizes,
block, dynamic shared memory, arguments by name) and its workspaces
(buffers the runtime allocates, sizes as expressions); the runtime checks the
tensors, evaluates the expressions, allocates the workspaces and runs the
launches in order on the current stream. Descriptions of format
``attn-bundle-v1`` are read too (``kernel_from_v1``).

Every check happens before a launch: device, dtype, rank, shape agreement,
contiguity and alignment of each tensor against the description. A mismatch
raises ``BundleError`` and launches nothing.
"""

from __future__ import annotations

import ast
import ctypes
import json
import operator
import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["BundleError", "Bundle", "Kernel", "SIZE_NAMES", "evaluate",
           "parse_expression", "kernel_from_v1", "read_description",
           "pack_arguments", "plan"]

FORMAT_V1 = "attn-bundle-v1"
FORMAT_V2 = "attn-bundle-v2"

#: The sizes an argument or an expression may name (docs/bundles.md).
SIZE_NAMES = ("B", "Hq", "Hkv", "Sq", "Sk", "Ns")

#: Bundle element types -> torch dtype names.
_DTYPES = {"bf16": "bfloat16", "f16": "float16", "f32": "float32",
           "i32": "int32", "i64": "int64"}

#: Largest grid extents (x, y, z) of a launch.
_GRID_LIMITS = (2 ** 31 - 1, 65535, 65535)


class BundleError(ValueError):
    """A tensor or a bundle does not match what the kernel was compiled for."""


# ---------------------------------------------------------------------------
# Expressions: integers, sizes, + - * / (floor), parentheses, ceildiv(a, b)
# ---------------------------------------------------------------------------

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub,
           ast.Mult: operator.mul, ast.Div: operator.floordiv,
           ast.FloorDiv: operator.floordiv}


def parse_expression(text) -> ast.expr:
    """The syntax tree of a size expression, checked against the grammar
    (an ``int`` is an expression too); raises ``BundleError``."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise BundleError(f"a size expression is a string or an integer, "
                          f"got {text!r}")
    if isinstance(text, int):
        return ast.Constant(text)
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise BundleError(f"cannot parse the size expression {text!r}: "
                          f"{e.msg}") from None
    _check_node(tree, text)
    return tree


def _check_node(node, text) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise BundleError(f"{text!r}: only integer constants, got "
                              f"{node.value!r}")
    elif isinstance(node, ast.Name):
        pass                            # checked against the sizes later
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check_node(node.left, text)
        _check_node(node.right, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op,
                                                      (ast.USub, ast.UAdd)):
        _check_node(node.operand, text)
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and node.func.id == "ceildiv" and len(node.args) == 2
          and not node.keywords):
        for a in node.args:
            _check_node(a, text)
    else:
        raise BundleError(f"{text!r}: unsupported syntax "
                          f"'{ast.unparse(node)}' (integers, sizes, + - * /,"
                          " parentheses and ceildiv(a, b))")


def expression_names(expr) -> set:
    """The names an expression reads."""
    tree = expr if isinstance(expr, ast.AST) else parse_expression(expr)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
            and not (n.id == "ceildiv")}


def _eval_node(node, sizes: Mapping[str, int], text) -> int:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in sizes:
            raise BundleError(f"{text!r}: unknown size '{node.id}' (sizes: "
                              f"{', '.join(sizes)})")
        return int(sizes[node.id])
    if isinstance(node, ast.UnaryOp):
        x = _eval_node(node.operand, sizes, text)
        return -x if isinstance(node.op, ast.USub) else x
    if isinstance(node, ast.BinOp):
        a = _eval_node(node.left, sizes, text)
        b = _eval_node(node.right, sizes, text)
        if type(node.op) in (ast.Div, ast.FloorDiv) and b == 0:
            raise BundleError(f"{text!r}: division by zero")
        return _BINARY[type(node.op)](a, b)
    a, b = (_eval_node(x, sizes, text) for x in node.args)   # ceildiv
    if b == 0:
        raise BundleError(f"{text!r}: ceildiv by zero")
    return -((-a) // b)


def evaluate(expr, sizes: Mapping[str, int]) -> int:
    """The value of a size expression (``"ceildiv(Sq, 128)"``, ``"B*Hq"``,
    ``3``) for ``sizes`` (name -> int). ``/`` floors; no Python ``eval``."""
    return _eval_node(parse_expression(expr), sizes, expr)


# ---------------------------------------------------------------------------
# Descriptions: v1 -> v2, validation
# ---------------------------------------------------------------------------

def _substitute(expr: str, values: Mapping[str, int]) -> str:
    """``expr`` with the names of ``values`` replaced by the numbers."""
    tree = parse_expression(expr)

    class Sub(ast.NodeTransformer):
        def visit_Name(self, node):
            if node.id in values:
                return ast.Constant(int(values[node.id]))
            return node
    return ast.unparse(Sub().visit(tree))


def kernel_from_v1(kd: Mapping) -> dict:
    """One ``kernels`` entry of an ``attn-bundle-v1`` description in the v2
    form: the RBF prologue becomes a first launch, its ``key_norms`` buffer
    a workspace; the LSE of an op without an LSE result a workspace."""
    args = [a["name"] for a in kd["args"]]
    kinds = {a["name"]: a for a in kd["args"]}
    has_lse = bool(kd.get("has_lse_result", True))
    consts = {"block_m": kd["block_m"], "block_n": kd["block_n"]}
    workspaces, launches = [], []
    params = [dict(kinds[n]) for n in args if kinds[n]["kind"] == "buffer"
              and n != "key_norms" and (n != "lse" or has_lse)]
    if "key_norms" in kinds:
        pad = kd["key_norms_padding"]
        width = kd.get("key_norms_width", 1)
        workspaces.append({"name": "key_norms",
                           "dtype": kinds["key_norms"]["dtype"],
                           "elements": f"B*Hkv*ceildiv(Sk,{pad})*{pad}"
                                       f"*{width}"})
    if not has_lse:
        workspaces.append({"name": "lse", "dtype": "f32",
                           "elements": "B*Hq*Sq"})
    pro = kd.get("prologue")
    if pro is not None:
        pconsts = dict(consts, block_n=pro.get("block_n", kd["block_n"]))
        launches.append({
            "kernel": pro["kernel"], "block": list(pro["block"]),
            "grid": [_substitute(str(g), pconsts) for g in pro["grid"]],
            "shared_memory_bytes": pro.get("shared_memory_bytes", 0),
            "args": [a["name"] for a in pro["args"]]})
    launches.append({
        "kernel": kd["kernel"], "block": list(kd["block"]),
        "grid": [_substitute(str(g), consts) for g in kd["grid"]],
        "shared_memory_bytes": kd["shared_memory_bytes"], "args": args})
    config = {k: kd[k] for k in ("mma", "stages", "block_m", "block_n")
              if k in kd}
    config["warps"] = kd["block"][0] // 32
    return {"name": kd["kernel"], "variant": kd.get("variant"),
            "dtype": kd["dtype"], "head_dim_qk": kd["head_dim_qk"],
            "head_dim_v": kd["head_dim_v"], "has_lse_result": has_lse,
            "config": config, "params": params, "workspaces": workspaces,
            "launches": launches}


_KERNEL_KEYS = ("name", "dtype", "head_dim_qk", "head_dim_v",
                "has_lse_result", "params", "workspaces", "launches")


def _validate_kernel(kd: Mapping, where: str) -> None:
    """Every key the runtime reads is there, every name an argument uses is a
    param, a workspace or a size, every expression parses and reads sizes."""
    missing = [k for k in _KERNEL_KEYS if k not in kd]
    if missing:
        raise BundleError(f"{where}: kernel entry lacks {missing}")
    name = kd["name"]
    buffers = {}
    for p in list(kd["params"]) + list(kd["workspaces"]):
        if "name" not in p or p.get("dtype", kd["dtype"]) not in _DTYPES:
            raise BundleError(f"{where}: '{name}': bad buffer {p!r}")
        if p["name"] in buffers or p["name"] in SIZE_NAMES:
            raise BundleError(f"{where}: '{name}': buffer name "
                              f"'{p['name']}' is used twice")
        buffers[p["name"]] = p
    for need in ("q", "k", "v", "o"):
        if need not in buffers:
            raise BundleError(f"{where}: '{name}' has no '{need}' param")
    exprs = [w["elements"] for w in kd["workspaces"]]
    if not kd["launches"]:
        raise BundleError(f"{where}: '{name}' has no launches")
    for ln in kd["launches"]:
        for key in ("kernel", "grid", "block", "args"):
            if key not in ln:
                raise BundleError(f"{where}: a launch of '{name}' lacks "
                                  f"'{key}'")
        if len(ln["grid"]) != 3 or len(ln["block"]) != 3:
            raise BundleError(f"{where}: '{ln['kernel']}': grid and block "
                              "have three extents")
        exprs += list(ln["grid"])
        for a in ln["args"]:
            if a not in buffers and a not in SIZE_NAMES:
                raise BundleError(f"{where}: '{ln['kernel']}' takes '{a}', "
                                  "which is no param, workspace or size")
    for e in exprs:
        bad = expression_names(e) - set(SIZE_NAMES)
        if bad:
            raise BundleError(f"{where}: '{name}': the expression {e!r} "
                              f"reads {sorted(bad)}, which are not sizes")


def read_description(path: str, name: str = "attn") -> dict:
    """``DIR/NAME.json`` with every kernel entry in the v2 form, validated
    (no CUDA needed)."""
    where = os.path.join(path, name + ".json")
    with open(where) as f:
        desc = json.load(f)
    fmt = desc.get("format") if isinstance(desc, dict) else None
    if fmt not in (FORMAT_V1, FORMAT_V2):
        raise BundleError(f"{path}: not an attn bundle (format {fmt!r}; "
                          f"this runtime reads {FORMAT_V1} and {FORMAT_V2})")
    desc = dict(desc)
    if fmt == FORMAT_V1:
        desc["kernels"] = [kernel_from_v1(kd) for kd in desc["kernels"]]
    for kd in desc["kernels"]:
        _validate_kernel(kd, where)
    return desc


# ---------------------------------------------------------------------------
# Launching: argument packing and the launch list
# ---------------------------------------------------------------------------

_MEMREF_TYPES = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                 ctypes.c_int64, ctypes.c_int64)


def pack_arguments(names: Sequence[str], buffers: Mapping,
                   sizes: Mapping[str, int]) -> Tuple[tuple, tuple]:
    """(values, ctypes types) of a kernel's parameter list: a buffer is a 1-D
    memref descriptor (allocated and aligned pointer, offset 0, number of
    elements, stride 1) of a contiguous tensor; a size one i64."""
    values, types = [], []
    for n in names:
        if n in buffers:
            t = buffers[n]
            ptr = t.data_ptr()
            values += [ptr, ptr, 0, t.numel(), 1]
            types += _MEMREF_TYPES
        elif n in sizes:
            values.append(int(sizes[n]))
            types.append(ctypes.c_int64)
        else:
            raise BundleError(f"argument '{n}' has no buffer or size")
    return tuple(values), tuple(types)


@dataclass
class PlannedLaunch:
    """One launch with its grid evaluated."""
    kernel: str
    grid: Tuple[int, int, int]
    block: Tuple[int, int, int]
    shared_memory_bytes: int
    args: List[str]


def plan(kd: Mapping, sizes: Mapping[str, int]
         ) -> Tuple[Dict[str, Tuple[str, int]], List[PlannedLaunch]]:
    """The workspaces (name -> (dtype, elements)) and launches of a v2 kernel
    entry for ``sizes``; grids beyond the launch limits raise."""
    spaces = {}
    for w in kd["workspaces"]:
        n = evaluate(w["elements"], sizes)
        if n < 0:
            raise BundleError(f"workspace '{w['name']}' of {n} elements")
        spaces[w["name"]] = (w.get("dtype", kd["dtype"]), n)
    launches = []
    for ln in kd["launches"]:
        grid = tuple(evaluate(g, sizes) for g in ln["grid"])
        for axis, (g, limit) in enumerate(zip(grid, _GRID_LIMITS)):
            if not 1 <= g <= limit:
                raise BundleError(
                    f"{ln['kernel']}: grid extent {'xyz'[axis]} = {g} "
                    f"({ln['grid'][axis]}) is outside [1, {limit}]")
        launches.append(PlannedLaunch(
            ln["kernel"], grid, tuple(int(b) for b in ln["block"]),
            int(ln.get("shared_memory_bytes", 0)), list(ln["args"])))
    return spaces, launches


def _driver():
    from cuda.bindings import driver  # imported lazily: CPU users never need it
    return driver


def _check(result):
    """Unwraps a cuda.bindings result tuple, raising on a CUDA error."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    driver = _driver()
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        raise RuntimeError(f"CUDA driver error {name.decode() if name else err}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else tuple(rest)


class TorchBackend:
    """Allocation and streams through torch (the tests substitute a fake)."""

    @staticmethod
    def empty(shape, dtype: str, device):
        import torch
        return torch.empty(shape, dtype=getattr(torch, _DTYPES[dtype]),
                           device=device)

    @staticmethod
    def zeros(shape, dtype: str, device):
        import torch
        return torch.zeros(shape, dtype=getattr(torch, _DTYPES[dtype]),
                           device=device)

    @staticmethod
    def stream(device) -> int:
        import torch
        return torch.cuda.current_stream(device).cuda_stream


def _dtype_of(t) -> str:
    """A tensor's torch dtype name: ``bfloat16``, ``float32``, ..."""
    return str(t.dtype).replace("torch.", "")


@dataclass
class Kernel:
    """The kernels of one ``attn.attention`` and its launch description
    (the v2 form of docs/bundles.md)."""
    bundle: "Bundle"
    desc: dict
    functions: dict = field(default_factory=dict)   # kernel name -> CUfunction
    backend: object = TorchBackend

    @property
    def name(self) -> str:
        return self.desc["name"]

    @property
    def params(self) -> Dict[str, dict]:
        return {p["name"]: p for p in self.desc["params"]}

    def _want(self, name: str) -> str:
        """The torch dtype name of param ``name``."""
        return _DTYPES[self.params[name].get("dtype", self.desc["dtype"])]

    def check(self, q, k, v, captures=(), sink_logits=None, sink_key=None,
              sink_value=None):
        """Validates the tensors; returns the sizes (B, Hq, Hkv, Sq, Sk, Ns)."""
        named = {"q": q, "k": k, "v": v}
        for name, t in named.items():
            self._check_tensor(name, t, self._want(name), rank=4)
        if len({str(q.device), str(k.device), str(v.device)}) != 1:
            raise BundleError(f"{self.name}: q, k and v are on different devices")
        sizes = self._check_shapes(q, k, v)
        sizes["Ns"] = self._check_sinks(sizes, sink_logits, sink_key, sink_value)
        self._check_captures(captures)
        return tuple(sizes[n] for n in SIZE_NAMES)

    def _check_tensor(self, name, t, dtype, rank=None, aligned=True):
        if not (hasattr(t, "data_ptr") and hasattr(t, "is_cuda")):
            raise BundleError(f"{self.name}: '{name}' must be a torch.Tensor")
        if not t.is_cuda:
            raise BundleError(f"{self.name}: '{name}' is on {t.device}, "
                              "the kernel runs on a CUDA device")
        if _dtype_of(t) != dtype:
            raise BundleError(f"{self.name}: '{name}' has dtype {t.dtype}, "
                              f"the kernel was compiled for torch.{dtype}")
        if rank is not None and t.dim() != rank:
            raise BundleError(f"{self.name}: '{name}' must have rank {rank}, "
                              f"got shape {tuple(t.shape)}")
        if not t.is_contiguous():
            raise BundleError(f"{self.name}: '{name}' must be contiguous "
                              "(row-major); call .contiguous()")
        if aligned and t.data_ptr() % 16:
            # 16-byte asynchronous copies read the rows.
            raise BundleError(f"{self.name}: '{name}' must start on a "
                              "16-byte boundary; call .clone()")

    def _check_shapes(self, q, k, v) -> dict:
        d = self.desc
        B, Hq, Sq, Dqk = q.shape
        Bk, Hkv, Sk, Dk = k.shape
        Bv, Hv, Sv, Dv = v.shape
        if Dqk != d["head_dim_qk"] or Dk != d["head_dim_qk"]:
            raise BundleError(f"{self.name}: head dim of q/k is {Dqk}/{Dk}, "
                              f"the kernel was compiled for {d['head_dim_qk']}")
        if Dv != d["head_dim_v"]:
            raise BundleError(f"{self.name}: head dim of v is {Dv}, the kernel "
                              f"was compiled for {d['head_dim_v']}")
        if not (B == Bk == Bv):
            raise BundleError(f"{self.name}: batch sizes differ: {B}, {Bk}, {Bv}")
        if Hkv != Hv or Hkv == 0 or Hq % Hkv:
            raise BundleError(f"{self.name}: heads q={Hq}, k={Hkv}, v={Hv}: "
                              "Hq must be a multiple of Hkv = Hv")
        if Sk != Sv:
            raise BundleError(f"{self.name}: k has {Sk} positions, v has {Sv}")
        if Sq == 0 or Sk == 0 or B == 0 or Hq == 0:
            raise BundleError(f"{self.name}: empty input")
        if max(B, Hq, Sq, Sk) >= 2 ** 31:
            # The kernels convert positions to float through 32-bit integers.
            raise BundleError(f"{self.name}: sizes must be below 2^31")
        return {"B": B, "Hq": Hq, "Hkv": Hkv, "Sq": Sq, "Sk": Sk}

    def _check_sinks(self, sizes, sink_logits, sink_key, sink_value) -> int:
        params = self.params
        takes = "sink_logits" in params
        if takes != (sink_logits is not None):
            raise BundleError(f"{self.name}: the kernel "
                              f"{'takes' if takes else 'has no'} sink_logits")
        takes = "sink_key" in params
        if takes != (sink_key is not None and sink_value is not None):
            raise BundleError(f"{self.name}: the kernel "
                              f"{'takes' if takes else 'has no'} "
                              "sink rows (sink_key, sink_value)")
        Hq, Hkv = sizes["Hq"], sizes["Hkv"]
        Dqk, Dv = self.desc["head_dim_qk"], self.desc["head_dim_v"]
        if sink_logits is not None:
            if _dtype_of(sink_logits) != "float32" or \
                    tuple(sink_logits.shape) != (Hq,):
                raise BundleError(f"{self.name}: sink_logits must be float32 [{Hq}]")
            self._check_tensor("sink_logits", sink_logits, "float32",
                               aligned=False)
        if sink_key is None:
            return 0
        ns = sink_key.shape[1] if sink_key.dim() == 3 else -1
        want = self._want("sink_key")
        if (tuple(sink_key.shape) != (Hkv, ns, Dqk)
                or tuple(sink_value.shape) != (Hkv, ns, Dv)
                or _dtype_of(sink_key) != want or _dtype_of(sink_value) != want):
            raise BundleError(f"{self.name}: sink rows must be torch.{want} "
                              f"[{Hkv}, Ns, {Dqk}] and [{Hkv}, Ns, {Dv}]")
        for name, t in (("sink_key", sink_key), ("sink_value", sink_value)):
            self._check_tensor(name, t, want, aligned=False)
        limit = self.desc.get("config", {}).get("block_n")
        if limit is not None and ns > limit:
            raise BundleError(f"{self.name}: at most {limit} sink rows")
        return ns

    def _check_captures(self, captures) -> None:
        names = [n for n in self.params if n.startswith("capture")]
        if len(captures) != len(names):
            raise BundleError(f"{self.name}: the kernel takes {len(names)} "
                              f"captured tensors, got {len(captures)}")
        for i, c in enumerate(captures):
            want = self._want(f"capture{i}")
            if (not hasattr(c, "is_cuda") or _dtype_of(c) != want
                    or not c.is_cuda or not c.is_contiguous()):
                raise BundleError(f"{self.name}: capture {i} must be a "
                                  f"contiguous CUDA tensor of torch.{want}")
            # The kernel indexes the capture with the static sizes it was
            # compiled for (-1: any); another shape would be read wrong.
            shape = self.params[f"capture{i}"].get("shape")
            if shape is not None and (
                    len(shape) != len(c.shape) or
                    any(s not in (-1, g) for s, g in zip(shape, c.shape))):
                want_shape = ", ".join("?" if s < 0 else str(s)
                                       for s in shape)
                raise BundleError(
                    f"{self.name}: capture {i} has shape "
                    f"{list(c.shape)}; the kernel was compiled for "
                    f"[{want_shape}] (? any size): compile it for these "
                    f"captures")

    def _output(self, name, given, shape, dtype, device):
        """``given`` checked against ``shape``/``dtype``, or a new tensor:
        the kernel writes it whole, so a wrong one would be written out of
        bounds."""
        if given is None:
            return self.backend.empty(shape, dtype, device)
        if (not hasattr(given, "data_ptr") or str(given.device) != str(device)
                or _dtype_of(given) != _DTYPES[dtype]
                or tuple(given.shape) != tuple(shape)
                or not given.is_contiguous() or given.data_ptr() % 16):
            raise BundleError(f"{self.name}: '{name}' must be a contiguous "
                              f"torch.{_DTYPES[dtype]} tensor of shape "
                              f"{list(shape)} on {device}, 16-byte aligned")
        return given

    def _workspace(self, name, given, dtype, n, device):
        """A new workspace of ``n`` elements, or the caller's tensor (at least
        ``n`` elements of ``dtype``, contiguous, on ``device``)."""
        if given is None:
            return self.backend.empty((max(n, 1),), dtype, device)
        if (not hasattr(given, "data_ptr") or str(given.device) != str(device)
                or _dtype_of(given) != _DTYPES[dtype] or given.numel() < n
                or not given.is_contiguous() or given.data_ptr() % 16):
            raise BundleError(f"{self.name}: '{name}' must be a contiguous "
                              f"torch.{_DTYPES[dtype]} tensor of at least {n} "
                              f"elements on {device}, 16-byte aligned")
        return given

    def run(self, q, k, v, captures=(), sink_logits=None, sink_key=None,
            sink_value=None, out=None, lse=None):
        """Checks the tensors, then runs the launches on the current stream;
        returns (out, lse). ``lse`` is the LSE result, or, for an op without
        one, its scratch workspace (``lse=`` may give it; None if the kernel
        has none)."""
        if self.is_backward:
            raise BundleError(f"{self.name}: a backward kernel; use run_grad()")
        B, Hq, Hkv, Sq, Sk, ns = self.check(q, k, v, captures, sink_logits,
                                            sink_key, sink_value)
        d = self.desc
        sizes = dict(zip(SIZE_NAMES, (B, Hq, Hkv, Sq, Sk, ns)))
        spaces, launches = plan(d, sizes)
        out = self._output("out", out, (B, Hq, Sq, d["head_dim_v"]),
                           self.params["o"].get("dtype", d["dtype"]), q.device)
        buffers = {"q": q, "k": k, "v": v, "o": out,
                   "sink_logits": sink_logits, "sink_key": sink_key,
                   "sink_value": sink_value}
        if "lse" in self.params:
            buffers["lse"] = self._output("lse", lse, (B, Hq, Sq),
                                          self.params["lse"].get("dtype", "f32"),
                                          q.device)
        elif lse is not None and "lse" not in spaces:
            raise BundleError(f"{self.name}: the kernel has no 'lse' buffer")
        buffers.update((f"capture{i}", c) for i, c in enumerate(captures))
        for name, (dtype, n) in spaces.items():
            given = lse if name == "lse" else None
            buffers[name] = self._workspace(name, given, dtype, n, q.device)
        missing = [p for p in self.params if buffers.get(p) is None]
        if missing:
            raise BundleError(f"{self.name}: no tensor for {missing}")
        self._launch_all(launches, buffers, sizes, q.device)
        return out, buffers.get("lse")

    @property
    def is_backward(self) -> bool:
        """Whether this entry is the backward of an ``attn.attention``
        (``attn.attention_grad``: ``run_grad``)."""
        return self.desc.get("kind") == "backward"

    def run_grad(self, q, k, v, o, do, lse=None, captures=(),
                 sink_logits=None, sink_key=None, sink_value=None,
                 dlse=None) -> list:
        """The gradients of a backward entry, in the result order of
        ``attn.attention_grad`` (dq, dk, dv, then d_sink_logits and the
        floating captures' gradients). ``o``, ``do``: ``[B, Hq, Sq, Dv]`` of
        q's dtype; ``lse``, ``dlse``: ``[B, Hq, Sq]`` float32."""
        if not self.is_backward:
            raise BundleError(f"{self.name}: not a backward kernel; use run()")
        B, Hq, Hkv, Sq, Sk, ns = self.check(q, k, v, captures, sink_logits,
                                            sink_key, sink_value)
        d = self.desc
        sizes = dict(zip(SIZE_NAMES, (B, Hq, Hkv, Sq, Sk, ns)))
        shape_o = (B, Hq, Sq, d["head_dim_v"])
        buffers = {"q": q, "k": k, "v": v, "sink_logits": sink_logits,
                   "sink_key": sink_key, "sink_value": sink_value}
        buffers.update((f"capture{i}", c) for i, c in enumerate(captures))
        for name, t, shape in (("o", o, shape_o), ("do", do, shape_o),
                               ("lse", lse, (B, Hq, Sq)),
                               ("dlse", dlse, (B, Hq, Sq))):
            if name not in self.params:
                if t is not None:
                    raise BundleError(f"{self.name}: the kernel takes no "
                                      f"'{name}'")
                continue
            if t is None:
                raise BundleError(f"{self.name}: '{name}' is required")
            self._check_tensor(name, t, self._want(name))
            if tuple(t.shape) != shape:
                raise BundleError(f"{self.name}: '{name}' must have shape "
                                  f"{list(shape)}, got {list(t.shape)}")
            buffers[name] = t
        results = []
        params = self.params
        for name in d["results"]:
            p = params[name]
            like = buffers[p["like"]]
            make = self.backend.zeros if p.get("zero") else self.backend.empty
            buffers[name] = make(tuple(like.shape), p.get("dtype", d["dtype"]),
                                 q.device)
            results.append(buffers[name])
        spaces, launches = plan(d, sizes)
        zeroed = {w["name"] for w in d["workspaces"] if w.get("zero")}
        for name, (dtype, n) in spaces.items():
            make = self.backend.zeros if name in zeroed else self.backend.empty
            buffers[name] = make((max(n, 1),), dtype, q.device)
        missing = [p for p in params if buffers.get(p) is None]
        if missing:
            raise BundleError(f"{self.name}: no tensor for {missing}")
        self._launch_all(launches, buffers, sizes, q.device)
        return results

    def _launch_all(self, launches, buffers, sizes, device) -> None:
        driver = _driver()
        stream = driver.CUstream(self.backend.stream(device))
        for ln in launches:
            args = pack_arguments(ln.args, buffers, sizes)
            _check(driver.cuLaunchKernel(
                self.functions[ln.kernel], *ln.grid, *ln.block,
                ln.shared_memory_bytes, stream, args, 0))


@dataclass
class Bundle:
    """A loaded bundle: its description (kernel entries in the v2 form) and
    CUDA module."""
    path: str
    desc: dict
    kernels: dict = field(default_factory=dict)
    module: object = None

    @staticmethod
    def load(path: str, name: str = "attn") -> "Bundle":
        """Loads DIR/NAME.json and DIR/NAME.cubin into the current context."""
        desc = read_description(path, name)
        with open(os.path.join(path, desc["cubin"]), "rb") as f:
            cubin = f.read()
        import torch  # only once the bundle itself is known to be sound
        torch.cuda.init()
        torch.cuda.current_stream()  # makes torch's primary context current
        driver = _driver()
        _check(driver.cuInit(0))
        module = _check(driver.cuModuleLoadData(cubin))
        return Bundle.from_module(path, desc, module)

    @staticmethod
    def from_module(path: str, desc: dict, module) -> "Bundle":
        """The bundle of a loaded CUDA module: each launched function looked
        up, its dynamic shared memory allowed up to its launches' largest."""
        driver = _driver()
        bundle = Bundle(path, desc, {}, module)
        attr = driver.CUfunction_attribute \
            .CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        functions = {}
        for kd in desc["kernels"]:
            smem = {}
            for ln in kd["launches"]:
                smem[ln["kernel"]] = max(smem.get(ln["kernel"], 0),
                                         int(ln.get("shared_memory_bytes", 0)))
            for fname, nbytes in smem.items():
                if fname not in functions:
                    functions[fname] = _check(driver.cuModuleGetFunction(
                        module, fname.encode()))
                _check(driver.cuFuncSetAttribute(functions[fname], attr,
                                                 nbytes))
            bundle.kernels[kd["name"]] = Kernel(
                bundle, kd, {f: functions[f] for f in smem})
        return bundle

    def kernel(self, name: Optional[str] = None) -> Kernel:
        """The kernel called NAME, or the only one."""
        if name is None:
            if len(self.kernels) != 1:
                raise BundleError(f"{self.path}: holds {sorted(self.kernels)}; "
                                  "name one")
            return next(iter(self.kernels.values()))
        if name not in self.kernels:
            raise BundleError(f"{self.path}: no kernel '{name}' "
                              f"(has {sorted(self.kernels)})")
        return self.kernels[name]
