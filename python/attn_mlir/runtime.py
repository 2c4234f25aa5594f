"""Run attn-mlir kernel bundles on torch tensors through the CUDA driver API.

A bundle is what ``attn-opt --attn-to-nvvm="bundle-dir=DIR"`` writes: a
``.cubin`` (and ``.ptx``) holding one kernel per ``attn.attention``, and a
``.json`` that says how to launch each (see ``docs/bundles.md``). This module
needs torch and ``cuda.bindings`` (the ``cuda-bindings`` package), and no MLIR.

    bundle = Bundle.load("bundles/softmax_causal")
    out, lse = bundle.kernel().run(q, k, v)

Every check happens before a launch: device, dtype, rank, shape agreement
and contiguity of each tensor against the bundle's description. A mismatch
raises ``BundleError`` and launches nothing.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
from dataclasses import dataclass, field

_DTYPES = {"bf16": "bfloat16", "f16": "float16", "f32": "float32", "i32": "int32",
           "i64": "int64"}


class BundleError(ValueError):
    """A tensor or a bundle does not match what the kernel was compiled for."""


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


@dataclass
class Kernel:
    """One kernel of a bundle and its launch description."""
    bundle: "Bundle"
    desc: dict
    function: object = None
    prologue: object = None  # the key-norm kernel of RBF variants

    @property
    def name(self) -> str:
        return self.desc["kernel"]

    def _torch_dtype(self, name):
        import torch
        return getattr(torch, _DTYPES[name])

    def check(self, q, k, v, captures=(), sink_logits=None, sink_key=None,
              sink_value=None):
        """Validates the tensors; returns the sizes (B, Hq, Hkv, Sq, Sk, Ns)."""
        import torch
        d = self.desc
        dtype = self._torch_dtype(d["dtype"])
        named = {"q": q, "k": k, "v": v}
        for name, t in named.items():
            if not isinstance(t, torch.Tensor):
                raise BundleError(f"{self.name}: '{name}' must be a torch.Tensor")
            if not t.is_cuda:
                raise BundleError(f"{self.name}: '{name}' is on {t.device}, "
                                  "the kernel runs on a CUDA device")
            if t.dtype != dtype:
                raise BundleError(f"{self.name}: '{name}' has dtype {t.dtype}, "
                                  f"the kernel was compiled for {dtype}")
            if t.dim() != 4:
                raise BundleError(f"{self.name}: '{name}' must have rank 4, "
                                  f"got shape {tuple(t.shape)}")
            if not t.is_contiguous():
                raise BundleError(f"{self.name}: '{name}' must be contiguous "
                                  "(row-major); call .contiguous()")
            if t.data_ptr() % 16:
                # 16-byte asynchronous copies read the rows.
                raise BundleError(f"{self.name}: '{name}' must start on a "
                                  "16-byte boundary; call .clone()")
        if len({q.device, k.device, v.device}) != 1:
            raise BundleError(f"{self.name}: q, k and v are on different devices")
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
        if B > 65535 or Hq > 65535:
            # They are the grid's y and z extents.
            raise BundleError(f"{self.name}: at most 65535 heads and batches")
        names = [a["name"] for a in d["args"]]
        if ("sink_logits" in names) != (sink_logits is not None):
            raise BundleError(f"{self.name}: the kernel "
                              f"{'takes' if 'sink_logits' in names else 'has no'} "
                              "sink_logits")
        if ("sink_key" in names) != (sink_key is not None and sink_value is not None):
            raise BundleError(f"{self.name}: the kernel "
                              f"{'takes' if 'sink_key' in names else 'has no'} "
                              "sink rows (sink_key, sink_value)")
        ns = 0
        if sink_logits is not None:
            if sink_logits.dtype != torch.float32 or tuple(sink_logits.shape) != (Hq,):
                raise BundleError(f"{self.name}: sink_logits must be float32 [{Hq}]")
        if sink_key is not None:
            ns = sink_key.shape[1]
            if (tuple(sink_key.shape) != (Hkv, ns, Dqk)
                    or tuple(sink_value.shape) != (Hkv, ns, Dv)
                    or sink_key.dtype != dtype or sink_value.dtype != dtype):
                raise BundleError(f"{self.name}: sink rows must be {dtype} "
                                  f"[{Hkv}, Ns, {Dqk}] and [{Hkv}, Ns, {Dv}]")
            if ns > d["block_n"]:
                raise BundleError(f"{self.name}: at most {d['block_n']} sink rows")
        ncap = sum(1 for n in names if n.startswith("capture"))
        if len(captures) != ncap:
            raise BundleError(f"{self.name}: the kernel takes {ncap} captured "
                              f"tensors, got {len(captures)}")
        for i, c in enumerate(captures):
            want = next(a["dtype"] for a in d["args"] if a["name"] == f"capture{i}")
            if c.dtype != self._torch_dtype(want) or not c.is_cuda or not c.is_contiguous():
                raise BundleError(f"{self.name}: capture {i} must be a contiguous "
                                  f"CUDA tensor of {self._torch_dtype(want)}")
        for name, t in (("sink_logits", sink_logits), ("sink_key", sink_key),
                        ("sink_value", sink_value)):
            if t is not None and (not t.is_cuda or not t.is_contiguous()):
                raise BundleError(f"{self.name}: '{name}' must be a contiguous "
                                  "CUDA tensor")
        return B, Hq, Hkv, Sq, Sk, ns

    def run(self, q, k, v, captures=(), sink_logits=None, sink_key=None,
            sink_value=None, out=None, lse=None):
        """Launches the kernel on the current stream; returns (out, lse)."""
        import torch
        B, Hq, Hkv, Sq, Sk, ns = self.check(q, k, v, captures, sink_logits,
                                            sink_key, sink_value)
        d = self.desc
        if out is None:
            out = torch.empty((B, Hq, Sq, d["head_dim_v"]), dtype=q.dtype,
                              device=q.device)
        if lse is None:
            lse = torch.empty((B, Hq, Sq), dtype=torch.float32, device=q.device)
        # The kernel writes them whole: a wrong one would be written out of
        # bounds.
        for name, t, shape, dtype in (
                ("out", out, (B, Hq, Sq, d["head_dim_v"]), q.dtype),
                ("lse", lse, (B, Hq, Sq), torch.float32)):
            if (not isinstance(t, torch.Tensor) or t.device != q.device
                    or t.dtype != dtype or tuple(t.shape) != shape
                    or not t.is_contiguous() or t.data_ptr() % 16):
                raise BundleError(f"{self.name}: '{name}' must be a contiguous "
                                  f"{dtype} tensor of shape {list(shape)} on "
                                  f"{q.device}, 16-byte aligned")
        buffers = {"q": q, "k": k, "v": v, "o": out, "lse": lse,
                   "sink_logits": sink_logits, "sink_key": sink_key,
                   "sink_value": sink_value}
        for i, c in enumerate(captures):
            buffers[f"capture{i}"] = c
        sizes = {"B": B, "Hq": Hq, "Hkv": Hkv, "Sq": Sq, "Sk": Sk, "Ns": ns}
        driver = _driver()
        stream = driver.CUstream(torch.cuda.current_stream(q.device).cuda_stream)
        if self.prologue is not None:
            # RBF: the norms of all keys first, rows padded to whole KV tiles.
            # (f32 norms, or 8 bf16 per key: the norm's parts for the
            # tensor cores).
            pd = d["prologue"]
            tiles = math.ceil(Sk / d["key_norms_padding"])
            want = next(a["dtype"] for a in d["args"] if a["name"] == "key_norms")
            buffers["key_norms"] = torch.empty(
                B * Hkv * tiles * d["key_norms_padding"] * d.get("key_norms_width", 1),
                dtype=self._torch_dtype(want), device=q.device)
            self._launch(self.prologue, pd, (tiles, Hkv, B), buffers, sizes,
                         stream)
        self._launch(self.function, d, (math.ceil(Sq / d["block_m"]), Hq, B),
                     buffers, sizes, stream)
        return out, lse

    @staticmethod
    def _launch(function, d, grid, buffers, sizes, stream):
        values, types = [], []
        for a in d["args"]:
            if a["kind"] == "buffer":
                t = buffers[a["name"]]
                ptr = t.data_ptr()
                # A 1-D memref descriptor: allocated, aligned, offset, size, stride.
                values += [ptr, ptr, 0, t.numel(), 1]
                types += [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                          ctypes.c_int64, ctypes.c_int64]
            else:
                values.append(sizes[a["name"]])
                types.append(ctypes.c_int64)
        driver = _driver()
        _check(driver.cuLaunchKernel(function, *grid, *d["block"],
                                     d["shared_memory_bytes"], stream,
                                     (tuple(values), tuple(types)), 0))


@dataclass
class Bundle:
    """A loaded bundle: its description and CUDA module."""
    path: str
    desc: dict
    kernels: dict = field(default_factory=dict)
    module: object = None

    @staticmethod
    def load(path: str, name: str = "attn") -> "Bundle":
        """Loads DIR/NAME.json and DIR/NAME.cubin into the current context."""
        with open(os.path.join(path, name + ".json")) as f:
            desc = json.load(f)
        if desc.get("format") != "attn-bundle-v1":
            raise BundleError(f"{path}: not an attn-bundle-v1 bundle")
        with open(os.path.join(path, desc["cubin"]), "rb") as f:
            cubin = f.read()
        import torch  # only once the bundle itself is known to be sound
        torch.cuda.init()
        torch.cuda.current_stream()  # makes torch's primary context current
        driver = _driver()
        _check(driver.cuInit(0))
        module = _check(driver.cuModuleLoadData(cubin))
        bundle = Bundle(path, desc, {}, module)
        for kd in desc["kernels"]:
            fn = _check(driver.cuModuleGetFunction(module, kd["kernel"].encode()))
            _check(driver.cuFuncSetAttribute(
                fn,
                driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                kd["shared_memory_bytes"]))
            pro = None
            if "prologue" in kd:
                pro = _check(driver.cuModuleGetFunction(
                    module, kd["prologue"]["kernel"].encode()))
            bundle.kernels[kd["kernel"]] = Kernel(bundle, kd, fn, pro)
        return bundle

    def kernel(self, name: str | None = None) -> Kernel:
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
