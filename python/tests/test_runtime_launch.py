"""The GPU runtime without a GPU: size expressions, the v1 -> v2 conversion
of bundle descriptions, and the interpretation of the launch list (argument
packing, grids, workspaces, checks) against a mocked CUDA driver and fake
tensors, so that nothing here needs CUDA or torch.
"""
import ctypes
import glob
import json
import os

import pytest

from attn_mlir import runtime
from attn_mlir.runtime import (BundleError, Bundle, evaluate, kernel_from_v1,
                               pack_arguments, parse_expression, plan,
                               read_description)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = {"B": 2, "Hq": 8, "Hkv": 2, "Sq": 1000, "Sk": 777, "Ns": 3}


# ---------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("expr,value", [
    ("B", 2), (5, 5), ("3", 3), ("ceildiv(Sk,64)", 13), ("ceildiv(Sk, 777)", 1),
    ("ceildiv(Sq, 128)", 8), ("B*Hq*Sq", 16000), ("B*Hkv*ceildiv(Sk,64)*64", 3328),
    ("Sk / 64", 12), ("Sk // 64", 12), ("-7 / 2", -4), ("-Sk + 1000", 223),
    ("(Sq + 127) / 128 * 2", 16), ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20),
    ("Sq - Sk - 1", 222), ("ceildiv(-5, 2)", -2), ("+Ns", 3), ("Ns * 0", 0),
])
def test_evaluate(expr, value):
    assert evaluate(expr, SIZES) == value


@pytest.mark.parametrize("expr,message", [
    ("__import__('os').system('true')", "unsupported syntax"),
    ("Sq ** 2", "unsupported syntax"),
    ("Sq % 2", "unsupported syntax"),
    ("Sq if B else Sk", "unsupported syntax"),
    ("1.5 * Sq", "only integer constants"),
    ("True", "only integer constants"),
    ("Sq.real", "unsupported syntax"),
    ("ceildiv(Sq)", "unsupported syntax"),
    ("ceildiv(Sq, 2, 3)", "unsupported syntax"),
    ("max(Sq, Sk)", "unsupported syntax"),
    ("[Sq][0]", "unsupported syntax"),
    ("Sq +", "cannot parse"),
    ("Sq < Sk", "unsupported syntax"),
    ("lambda: 1", "unsupported syntax"),
    (None, "a string or an integer"),
    (2.0, "a string or an integer"),
])
def test_expression_grammar_is_enforced(expr, message):
    with pytest.raises(BundleError, match=message):
        evaluate(expr, SIZES)


def test_expression_errors_at_evaluation():
    with pytest.raises(BundleError, match="unknown size 'block_m'"):
        evaluate("ceildiv(Sq, block_m)", SIZES)
    with pytest.raises(BundleError, match="division by zero"):
        evaluate("Sq / (Ns - 3)", SIZES)
    with pytest.raises(BundleError, match="ceildiv by zero"):
        evaluate("ceildiv(Sq, Ns - 3)", SIZES)
    assert runtime.expression_names(parse_expression("ceildiv(Sk, 64)*B")) \
        == {"Sk", "B"}


# ---------------------------------------------------------------------------
# Synthetic descriptions
# ---------------------------------------------------------------------------

def _buf(name, dtype="bf16"):
    return {"name": name, "kind": "buffer", "dtype": dtype}


def v2_entry(**over):
    """A v2 kernel entry shaped like an RBF kernel with a key-norm prologue
    and sink rows, without an LSE result."""
    kd = {
        "name": "f", "variant": "rbf_rows", "dtype": "bf16",
        "head_dim_qk": 64, "head_dim_v": 32, "has_lse_result": False,
        "config": {"mma": "wgmma", "warps": 4, "block_m": 64, "block_n": 64,
                   "stages": 2, "pipeline": True},
        "params": [_buf("q"), _buf("k"), _buf("v"), _buf("o"),
                   _buf("sink_key"), _buf("sink_value"),
                   _buf("capture0", "f32")],
        "workspaces": [
            {"name": "key_norms", "dtype": "f32",
             "elements": "B*Hkv*ceildiv(Sk,64)*64"},
            {"name": "lse", "dtype": "f32", "elements": "B*Hq*Sq"}],
        "launches": [
            {"kernel": "f_key_norms", "grid": ["ceildiv(Sk,64)", "Hkv", "B"],
             "block": [64, 1, 1], "shared_memory_bytes": 0,
             "args": ["k", "key_norms", "B", "Hkv", "Sk"]},
            {"kernel": "f", "grid": ["ceildiv(Sq,64)", "Hq", "B"],
             "block": [128, 1, 1], "shared_memory_bytes": 98304,
             "args": ["q", "k", "v", "o", "lse", "sink_key", "sink_value",
                      "capture0", "key_norms", "B", "Hq", "Hkv", "Sq", "Sk",
                      "Ns"]}]}
    kd.update(over)
    return kd


def write_bundle(path, kernels, fmt="attn-bundle-v2"):
    desc = {"format": fmt, "cubin": "attn.cubin", "ptx": "attn.ptx",
            "kernels": kernels}
    (path / "attn.json").write_text(json.dumps(desc))
    return str(path)


def test_rejects_a_foreign_bundle_format(tmp_path):
    write_bundle(tmp_path, [], fmt="attn-bundle-v9")
    with pytest.raises(BundleError, match="not an attn bundle"):
        read_description(str(tmp_path))


@pytest.mark.parametrize("change,message", [
    (lambda kd: kd.pop("launches"), "lacks \\['launches'\\]"),
    (lambda kd: kd.update(launches=[]), "has no launches"),
    (lambda kd: kd["launches"][1]["args"].append("bogus"),
     "takes 'bogus', which is no param, workspace or size"),
    (lambda kd: kd["launches"][0].update(grid=["ceildiv(Sk, block_n)", 1, 1]),
     "reads \\['block_n'\\], which are not sizes"),
    (lambda kd: kd["workspaces"][0].update(elements="B*Hkv*Sk**2"),
     "unsupported syntax"),
    (lambda kd: kd["launches"][0].update(block=[64, 1]), "three extents"),
    (lambda kd: kd["params"].append(_buf("q")), "used twice"),
    (lambda kd: kd["params"].pop(3), "has no 'o' param"),
    (lambda kd: kd["workspaces"][0].update(dtype="f64"), "bad buffer"),
])
def test_description_is_validated_on_read(tmp_path, change, message):
    kd = v2_entry()
    change(kd)
    write_bundle(tmp_path, [kd])
    with pytest.raises(BundleError, match=message):
        read_description(str(tmp_path))


def test_plan_evaluates_grids_and_workspaces():
    spaces, launches = plan(v2_entry(), SIZES)
    assert spaces == {"key_norms": ("f32", 2 * 2 * 13 * 64),
                      "lse": ("f32", 2 * 8 * 1000)}
    assert [ln.kernel for ln in launches] == ["f_key_norms", "f"]
    assert launches[0].grid == (13, 2, 2) and launches[0].block == (64, 1, 1)
    assert launches[1].grid == (16, 8, 2)
    assert launches[1].shared_memory_bytes == 98304


def test_plan_refuses_grids_beyond_the_launch_limits():
    with pytest.raises(BundleError, match="grid extent y = 70000"):
        plan(v2_entry(), dict(SIZES, Hq=70000))
    kd = v2_entry()
    kd["launches"][0]["grid"] = ["Sk - 777", 1, 1]
    with pytest.raises(BundleError, match="grid extent x = 0"):
        plan(kd, SIZES)


# ---------------------------------------------------------------------------
# v1 bundles
# ---------------------------------------------------------------------------

V1_RBF = {
    "kernel": "rbf_d128", "variant": "rbf_d128", "dtype": "bf16",
    "head_dim_qk": 128, "head_dim_v": 128, "has_lse_result": True,
    "mma": "wgmma", "stages": 2, "block": [256, 1, 1], "block_m": 128,
    "block_n": 128, "grid": ["ceildiv(Sq, block_m)", "Hq", "B"],
    "shared_memory_bytes": 176128, "key_norms_padding": 128,
    "key_norms_width": 8,
    "args": [_buf("q"), _buf("k"), _buf("v"), _buf("o"), _buf("lse", "f32"),
             _buf("key_norms"), {"name": "B", "kind": "size"},
             {"name": "Hq", "kind": "size"}, {"name": "Hkv", "kind": "size"},
             {"name": "Sq", "kind": "size"}, {"name": "Sk", "kind": "size"},
             {"name": "Ns", "kind": "size"}],
    "prologue": {
        "kernel": "rbf_d128_key_norms", "block": [128, 1, 1], "block_n": 128,
        "grid": ["ceildiv(Sk, block_n)", "Hkv", "B"], "shared_memory_bytes": 0,
        "args": [_buf("k"), _buf("key_norms"), {"name": "B", "kind": "size"},
                 {"name": "Hkv", "kind": "size"}, {"name": "Sk", "kind": "size"}]}}

V1_SIGMOID = {
    "kernel": "sig", "variant": "sig", "dtype": "f16", "head_dim_qk": 64,
    "head_dim_v": 64, "has_lse_result": False, "mma": "mma.sync", "stages": 2,
    "block": [128, 1, 1], "block_m": 64, "block_n": 64,
    "grid": ["ceildiv(Sq, block_m)", "Hq", "B"], "shared_memory_bytes": 40960,
    "args": [_buf("q", "f16"), _buf("k", "f16"), _buf("v", "f16"),
             _buf("o", "f16"), _buf("lse", "f32"),
             {"name": "B", "kind": "size"}, {"name": "Sq", "kind": "size"}]}


def test_v1_rbf_kernel_becomes_two_launches_and_a_workspace():
    kd = kernel_from_v1(V1_RBF)
    assert kd["name"] == "rbf_d128" and kd["has_lse_result"]
    assert [p["name"] for p in kd["params"]] == ["q", "k", "v", "o", "lse"]
    assert kd["config"] == {"mma": "wgmma", "stages": 2, "block_m": 128,
                            "block_n": 128, "warps": 8}
    spaces, launches = plan(kd, SIZES)
    # 8 bf16 parts per key, rows padded to whole 128-key tiles.
    assert spaces == {"key_norms": ("bf16", 2 * 2 * 7 * 128 * 8)}
    assert [(ln.kernel, ln.grid, ln.block) for ln in launches] == [
        ("rbf_d128_key_norms", (7, 2, 2), (128, 1, 1)),
        ("rbf_d128", (8, 8, 2), (256, 1, 1))]
    assert launches[1].args == [a["name"] for a in V1_RBF["args"]]


def test_v1_kernel_without_lse_result_gets_an_lse_workspace():
    kd = kernel_from_v1(V1_SIGMOID)
    assert [p["name"] for p in kd["params"]] == ["q", "k", "v", "o"]
    assert kd["workspaces"] == [{"name": "lse", "dtype": "f32",
                                 "elements": "B*Hq*Sq"}]
    assert kd["launches"][0]["grid"] == ["ceildiv(Sq, 64)", "Hq", "B"]


def test_v1_bundle_reads_as_v2(tmp_path):
    write_bundle(tmp_path, [V1_RBF, V1_SIGMOID], fmt="attn-bundle-v1")
    desc = read_description(str(tmp_path))
    assert [kd["name"] for kd in desc["kernels"]] == ["rbf_d128", "sig"]


@pytest.mark.parametrize("path", sorted(glob.glob(
    os.path.join(REPO, "bench", "bundles", "*", "*", "attn.json"))
    + glob.glob(os.path.join(REPO, "bench", "bundles", "*", "attn.json"))))
def test_real_bundles_read(path):
    """Bundles that build_bundles.py wrote (v1 or v2), where there are any."""
    desc = read_description(os.path.dirname(path))
    for kd in desc["kernels"]:
        plan(kd, SIZES)


# ---------------------------------------------------------------------------
# Launching against a mocked driver
# ---------------------------------------------------------------------------

class FakeDtype:
    def __init__(self, name):
        self.name = name

    def __str__(self):
        return f"torch.{self.name}"

    __repr__ = __str__


_NEXT_PTR = [1 << 20]


class FakeTensor:
    """What the runtime reads of a torch tensor."""

    def __init__(self, shape, dtype="bfloat16", device="cuda:0", offset=0,
                 contiguous=True):
        self.shape = tuple(shape)
        self.dtype = FakeDtype(dtype)
        self.device = device
        self.is_cuda = device.startswith("cuda")
        self._contiguous = contiguous
        self._ptr = _NEXT_PTR[0] + offset
        _NEXT_PTR[0] += 1 << 24

    def dim(self):
        return len(self.shape)

    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def is_contiguous(self):
        return self._contiguous

    def data_ptr(self):
        return self._ptr


class FakeBackend:
    def __init__(self):
        self.allocated = []
        self.zeroed = []

    def empty(self, shape, dtype, device):
        t = FakeTensor(shape, runtime._DTYPES[dtype], str(device))
        self.allocated.append((tuple(shape), dtype, t))
        return t

    def zeros(self, shape, dtype, device):
        t = self.empty(shape, dtype, device)
        self.zeroed.append(t)
        return t


    @staticmethod
    def stream(device):
        return 77


class FakeDriver:
    class CUresult:
        CUDA_SUCCESS = 0

    class CUfunction_attribute:
        CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8

    def __init__(self):
        self.launches, self.attributes = [], []

    @staticmethod
    def CUstream(handle):
        return ("stream", handle)

    def cuModuleGetFunction(self, module, name):
        return (0, f"fn:{name.decode()}")

    def cuFuncSetAttribute(self, fn, attr, value):
        self.attributes.append((fn, attr, value))
        return (0,)

    def cuLaunchKernel(self, fn, gx, gy, gz, bx, by, bz, smem, stream, args,
                       extra):
        self.launches.append({"fn": fn, "grid": (gx, gy, gz),
                              "block": (bx, by, bz), "smem": smem,
                              "stream": stream, "args": args})
        return (0,)

    @staticmethod
    def cuGetErrorName(err):
        return (0, b"CUDA_ERROR_FAKE")


@pytest.fixture
def driver(monkeypatch):
    d = FakeDriver()
    monkeypatch.setattr(runtime, "_driver", lambda: d)
    return d


def load_fake(tmp_path, kernels, fmt="attn-bundle-v2"):
    path = write_bundle(tmp_path, kernels, fmt)
    return Bundle.from_module(path, read_description(path), "module")


def inputs(B=2, Hq=8, Hkv=2, Sq=1000, Sk=777, Ns=3, D=64, Dv=32, dtype="bfloat16"):
    return dict(
        q=FakeTensor((B, Hq, Sq, D), dtype), k=FakeTensor((B, Hkv, Sk, D), dtype),
        v=FakeTensor((B, Hkv, Sk, Dv), dtype),
        sink_key=FakeTensor((Hkv, Ns, D), dtype),
        sink_value=FakeTensor((Hkv, Ns, Dv), dtype),
        captures=[FakeTensor((Hq,), "float32")])


def test_functions_and_shared_memory_are_set_per_launched_kernel(tmp_path, driver):
    bundle = load_fake(tmp_path, [v2_entry()])
    assert bundle.kernel().functions == {"f_key_norms": "fn:f_key_norms",
                                         "f": "fn:f"}
    assert sorted((fn, v) for fn, _, v in driver.attributes) == [
        ("fn:f", 98304), ("fn:f_key_norms", 0)]


def test_launch_list_runs_in_order_with_packed_arguments(tmp_path, driver):
    kernel = load_fake(tmp_path, [v2_entry()]).kernel()
    kernel.backend = backend = FakeBackend()
    x = inputs()
    out, lse = kernel.run(**x)
    # o [B, Hq, Sq, Dv] bf16, then the workspaces: key norms, scratch LSE.
    assert [(s, d) for s, d, _ in backend.allocated] == [
        ((2, 8, 1000, 32), "bf16"), ((2 * 2 * 13 * 64,), "f32"),
        ((2 * 8 * 1000,), "f32")]
    norms = backend.allocated[1][2]
    assert out is backend.allocated[0][2] and lse is backend.allocated[2][2]
    pro, main = driver.launches
    assert pro["fn"] == "fn:f_key_norms" and main["fn"] == "fn:f"
    assert pro["grid"] == (13, 2, 2) and pro["block"] == (64, 1, 1)
    assert main["grid"] == (16, 8, 2) and main["block"] == (128, 1, 1)
    assert main["smem"] == 98304 and pro["smem"] == 0
    assert pro["stream"] == main["stream"] == ("stream", 77)

    def desc(t):
        return [t.data_ptr(), t.data_ptr(), 0, t.numel(), 1]
    values, types = pro["args"]
    assert list(values) == desc(x["k"]) + desc(norms) + [2, 2, 777]
    assert types == runtime._MEMREF_TYPES * 2 + (ctypes.c_int64,) * 3
    values, types = main["args"]
    bufs = [x["q"], x["k"], x["v"], out, lse, x["sink_key"], x["sink_value"],
            x["captures"][0], norms]
    assert list(values) == sum((desc(t) for t in bufs), []) + [2, 8, 2, 1000, 777, 3]
    assert len(types) == 5 * len(bufs) + 6


def test_caller_outputs_are_used(tmp_path, driver):
    kernel = load_fake(tmp_path, [kernel_from_v1(V1_RBF)]).kernel()
    kernel.backend = backend = FakeBackend()
    x = inputs(D=128, Dv=128)
    out = FakeTensor((2, 8, 1000, 128))
    lse = FakeTensor((2, 8, 1000), "float32")
    got = kernel.run(x["q"], x["k"], x["v"], out=out, lse=lse)
    assert got == (out, lse)
    # Only the key norms were allocated.
    assert [(s, d) for s, d, _ in backend.allocated] == [((2 * 2 * 7 * 128 * 8,), "bf16")]
    values = driver.launches[1]["args"][0]
    assert values[15:17] == (out.data_ptr(), out.data_ptr())
    assert values[20:22] == (lse.data_ptr(), lse.data_ptr())


@pytest.mark.parametrize("case,message", [
    ("cpu", "'q' is on cpu, the kernel runs on a CUDA device"),
    ("dtype", "has dtype torch.float16, the kernel was compiled for torch.bfloat16"),
    ("rank", "'k' must have rank 4"),
    ("head_dim", "head dim of q/k is 32/32, the kernel was compiled for 64"),
    ("head_dim_v", "head dim of v is 16"),
    ("heads", "Hq must be a multiple of Hkv"),
    ("batch", "batch sizes differ"),
    ("noncontiguous", "'v' must be contiguous"),
    ("misaligned", "'q' must start on a 16-byte boundary"),
    ("devices", "on different devices"),
    ("empty", "empty input"),
    ("captures", "takes 1 captured tensors, got 0"),
    ("capture_dtype", "capture 0 must be a contiguous CUDA tensor of torch.float32"),
    ("no_sink_rows", "takes sink rows"),
    ("sink_logits", "has no sink_logits"),
    ("sink_shape", "sink rows must be torch.bfloat16"),
    ("too_many_sinks", "at most 64 sink rows"),
    ("out_shape", "'out' must be a contiguous torch.bfloat16 tensor of shape \\[2, 8, 1000, 32\\]"),
    ("lse_small", "'lse' must be a contiguous torch.float32 tensor of at least 16000"),
    ("huge", "grid extent z = 70000"),
])
def test_mismatches_are_refused_before_launch(tmp_path, driver, case, message):
    kernel = load_fake(tmp_path, [v2_entry()]).kernel()
    kernel.backend = FakeBackend()
    x = inputs()
    if case == "cpu":
        x["q"] = FakeTensor(x["q"].shape, device="cpu")
    elif case == "dtype":
        x["q"] = FakeTensor(x["q"].shape, "float16")
    elif case == "rank":
        x["k"] = FakeTensor((2, 777, 64))
    elif case == "head_dim":
        x.update(q=FakeTensor((2, 8, 1000, 32)), k=FakeTensor((2, 2, 777, 32)))
    elif case == "head_dim_v":
        x["v"] = FakeTensor((2, 2, 777, 16))
    elif case == "heads":
        x.update(k=FakeTensor((2, 3, 777, 64)), v=FakeTensor((2, 3, 777, 32)))
    elif case == "batch":
        x["k"] = FakeTensor((3, 2, 777, 64))
    elif case == "noncontiguous":
        x["v"] = FakeTensor(x["v"].shape, contiguous=False)
    elif case == "misaligned":
        x["q"] = FakeTensor(x["q"].shape, offset=2)
    elif case == "devices":
        x["k"] = FakeTensor(x["k"].shape, device="cuda:1")
    elif case == "empty":
        x.update(q=FakeTensor((2, 8, 0, 64)))
    elif case == "captures":
        x["captures"] = []
    elif case == "capture_dtype":
        x["captures"] = [FakeTensor((8,), "int32")]
    elif case == "no_sink_rows":
        x.update(sink_key=None, sink_value=None)
    elif case == "sink_logits":
        x["sink_logits"] = FakeTensor((8,), "float32")
    elif case == "sink_shape":
        x["sink_key"] = FakeTensor((2, 3, 32))
    elif case == "too_many_sinks":
        x.update(sink_key=FakeTensor((2, 65, 64)), sink_value=FakeTensor((2, 65, 32)))
    elif case == "out_shape":
        x["out"] = FakeTensor((2, 8, 999, 32))
    elif case == "lse_small":
        x["lse"] = FakeTensor((2, 8, 999), "float32")
    elif case == "huge":
        x.update(q=FakeTensor((70000, 8, 1000, 64)), k=FakeTensor((70000, 2, 777, 64)),
                 v=FakeTensor((70000, 2, 777, 32)))
    with pytest.raises(BundleError, match=message):
        kernel.run(**x)
    assert driver.launches == []


@pytest.mark.parametrize("shape,refused", [
    ((8, 16), False), ((3, 16), False), ((8, 8), True), ((128,), True),
    ((8, 16, 1), True)])
def test_capture_shape_against_the_compiled_one(tmp_path, driver, shape,
                                                refused):
    # The kernel indexes a capture row-major with the static sizes it was
    # compiled for: [?, 16] takes any number of rows of 16, nothing else.
    entry = v2_entry()
    entry["params"][-1] = dict(_buf("capture0", "f32"), shape=[-1, 16])
    kernel = load_fake(tmp_path, [entry]).kernel()
    kernel.backend = FakeBackend()
    x = inputs()
    x["captures"] = [FakeTensor(shape, "float32")]
    if refused:
        with pytest.raises(BundleError, match=(
                r"capture 0 has shape \[.*\]; the kernel was compiled for "
                r"\[\?, 16\] \(\? any size\)")):
            kernel.run(**x)
        assert driver.launches == []
    else:
        kernel.run(**x)
        assert [ln["fn"] for ln in driver.launches] == ["fn:f_key_norms",
                                                        "fn:f"]


def test_kernel_selection(tmp_path, driver):
    bundle = load_fake(tmp_path, [v2_entry(), v2_entry(name="g")])
    with pytest.raises(BundleError, match="holds \\['f', 'g'\\]; name one"):
        bundle.kernel()
    assert bundle.kernel("g").name == "g"
    with pytest.raises(BundleError, match="no kernel 'h'"):
        bundle.kernel("h")


def test_cuda_errors_are_raised(tmp_path, driver, monkeypatch):
    kernel = load_fake(tmp_path, [v2_entry()]).kernel()
    kernel.backend = FakeBackend()
    monkeypatch.setattr(driver, "cuLaunchKernel", lambda *a: (700,))
    with pytest.raises(RuntimeError, match="CUDA driver error CUDA_ERROR_FAKE"):
        kernel.run(**inputs())


def test_pack_arguments_refuses_unknown_names():
    with pytest.raises(BundleError, match="argument 'x' has no buffer or size"):
        pack_arguments(["B", "x"], {}, {"B": 1})


# ---------------------------------------------------------------------------
# Backward entries (kind = backward, Kernel.run_grad)
# ---------------------------------------------------------------------------

def backward_entry():
    """A backward entry as attn-to-nvgpu writes it for an ALiBi-like op:
    inputs, then results (listed among the params, in op order), zeroed
    results and workspaces, three launches."""
    f32 = "f32"
    params = [_buf("q"), _buf("k"), _buf("v"), _buf("o"), _buf("do"),
              _buf("lse", f32), _buf("capture0", f32),
              dict(_buf("dq"), like="q", zero=False),
              dict(_buf("dk"), like="k", zero=False),
              dict(_buf("dv"), like="v", zero=False),
              dict(_buf("d_capture0", f32), like="capture0", zero=True)]
    return {
        "name": "g", "kind": "backward", "variant": "alibi", "dtype": "bf16",
        "head_dim_qk": 64, "head_dim_v": 32, "has_lse_result": False,
        "config": {"block_m": 64, "block_n": 128},
        "params": params, "results": ["dq", "dk", "dv", "d_capture0"],
        "workspaces": [
            {"name": "dq_accum", "dtype": f32, "elements": "B * Hq * Sq * 64",
             "zero": True},
            {"name": "delta", "dtype": f32, "elements": "B * Hq * Sq",
             "zero": False}],
        "launches": [
            {"kernel": "g_pre", "grid": ["ceildiv(Sq, 4)", "Hq", "B"],
             "block": [128, 1, 1], "shared_memory_bytes": 0,
             "args": ["o", "do", "lse", "delta", "B", "Hq", "Hkv", "Sq", "Sk",
                      "Ns"]},
            {"kernel": "g", "grid": ["ceildiv(Sk, 128)", "Hkv", "B"],
             "block": [256, 1, 1], "shared_memory_bytes": 156672,
             "args": ["q", "k", "v", "do", "lse", "delta", "capture0",
                      "dq_accum", "dk", "dv", "d_capture0", "B", "Hq", "Hkv",
                      "Sq", "Sk", "Ns"]},
            {"kernel": "g_post", "grid": ["ceildiv(B * Hq * Sq * 64, 256)",
                                          "1", "1"],
             "block": [256, 1, 1], "shared_memory_bytes": 0,
             "args": ["dq_accum", "dq", "B", "Hq", "Hkv", "Sq", "Sk",
                      "Ns"]}]}


def grad_inputs():
    x = inputs()
    x.pop("sink_key"), x.pop("sink_value")
    B, Hq, Sq = 2, 8, 1000
    x.update(o=FakeTensor((B, Hq, Sq, 32)), do=FakeTensor((B, Hq, Sq, 32)),
             lse=FakeTensor((B, Hq, Sq), "float32"))
    return x


def test_backward_results_workspaces_and_launches(tmp_path, driver):
    kernel = load_fake(tmp_path, [backward_entry()]).kernel()
    assert kernel.is_backward
    kernel.backend = backend = FakeBackend()
    x = grad_inputs()
    dq, dk, dv, dcap = kernel.run_grad(**x)
    # Results shaped like their inputs, then the workspaces; what atomics
    # fill (d_capture0, dq_accum) zeroed, the rest not.
    assert [(s, d) for s, d, _ in backend.allocated] == [
        ((2, 8, 1000, 64), "bf16"), ((2, 2, 777, 64), "bf16"),
        ((2, 2, 777, 32), "bf16"), ((8,), "f32"),
        ((2 * 8 * 1000 * 64,), "f32"), ((2 * 8 * 1000,), "f32")]
    accum = backend.allocated[4][2]
    assert backend.zeroed == [dcap, accum]
    assert [ln["fn"] for ln in driver.launches] == ["fn:g_pre", "fn:g",
                                                    "fn:g_post"]
    assert driver.launches[1]["grid"] == (7, 2, 2)
    assert driver.launches[2]["grid"] == (4000, 1, 1)
    values = driver.launches[2]["args"][0]
    assert values[0] == accum.data_ptr() and values[5] == dq.data_ptr()


@pytest.mark.parametrize("change,message", [
    (lambda x: x.pop("lse"), "'lse' is required"),
    (lambda x: x.update(do=FakeTensor((2, 8, 999, 32))),
     "'do' must have shape \\[2, 8, 1000, 32\\]"),
    (lambda x: x.update(dlse=FakeTensor((2, 8, 1000), "float32")),
     "takes no 'dlse'"),
    (lambda x: x.update(o=FakeTensor((2, 8, 1000, 32), "float16")),
     "'o' has dtype torch.float16"),
])
def test_backward_checks_its_inputs(tmp_path, driver, change, message):
    kernel = load_fake(tmp_path, [backward_entry()]).kernel()
    kernel.backend = FakeBackend()
    x = grad_inputs()
    change(x)
    with pytest.raises(BundleError, match=message):
        kernel.run_grad(**x)
    assert driver.launches == []


def test_forward_and_backward_entries_are_not_mixed(tmp_path, driver):
    bundle = load_fake(tmp_path, [v2_entry(), backward_entry()])
    with pytest.raises(BundleError, match="not a backward kernel"):
        bundle.kernel("f").run_grad(**grad_inputs())
    with pytest.raises(BundleError, match="a backward kernel; use run_grad"):
        bundle.kernel("g").run(**inputs())
