"""The GPU runtime's checks: a bundle is validated before CUDA is touched, and
every tensor is validated against the kernel's description before a launch.

The bundle-format tests run everywhere (test_runtime_launch.py checks the
launch list against a mocked driver). The launch-side tests need a CUDA
device and a bundle compiled on the build machine (bench/build_bundles.py
writes bench/bundles/causal_d64); they run on the GPU machine:

    python3 -m pytest -q python/tests/test_runtime.py
"""
import json
import os

import pytest

from attn_mlir.runtime import Bundle, BundleError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLE = os.environ.get("ATTN_TEST_BUNDLE",
                        os.path.join(REPO, "bench", "bundles", "causal_d64"))


def test_rejects_a_foreign_bundle_format(tmp_path):
    (tmp_path / "attn.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BundleError, match="not an attn bundle"):
        Bundle.load(str(tmp_path))


def test_missing_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        Bundle.load(str(tmp_path))


def _cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


torch = _cuda()
gpu = pytest.mark.skipif(torch is None or not os.path.exists(BUNDLE),
                         reason="needs a CUDA device and a compiled bundle")


@pytest.fixture(scope="module")
def kernel():
    return Bundle.load(BUNDLE).kernel()


def _qkv(dtype=None, device="cuda", shape=(1, 4, 100, 64)):
    dtype = dtype or torch.bfloat16
    g = torch.Generator(device="cpu").manual_seed(0)
    return [torch.randn(shape, generator=g).to(device=device, dtype=dtype)
            for _ in range(3)]


@gpu
def test_launch_writes_every_output(kernel):
    q, k, v = _qkv()
    out = torch.full_like(q, float("nan"))
    lse = torch.full(q.shape[:3], float("nan"), device="cuda")
    kernel.run(q, k, v, out=out, lse=lse)
    torch.cuda.synchronize()
    assert not out.isnan().any() and not lse.isnan().any()
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.double(), v.double(), is_causal=True)
    assert ((out.double() - ref).norm() / ref.norm()).item() < 1e-2


@gpu
@pytest.mark.parametrize("case,message", [
    ("cpu", "is on cpu, the kernel runs on a CUDA device"),
    ("dtype", "has dtype torch.float16, the kernel was compiled for torch.bfloat16"),
    ("rank", "must have rank 4"),
    ("head_dim", "head dim of q/k is 32/32, the kernel was compiled for 64"),
    ("heads", "Hq must be a multiple of Hkv"),
    ("batch", "batch sizes differ"),
    ("noncontiguous", "must be contiguous"),
    ("misaligned", "must start on a 16-byte boundary"),
    ("out_shape", "'out' must be a contiguous"),
    ("lse_dtype", "'lse' must be a contiguous"),
    ("captures", "takes 0 captured tensors, got 1"),
    ("sink_logits", "has no sink_logits"),
])
def test_mismatches_are_refused_before_launch(kernel, case, message):
    q, k, v = _qkv()
    kwargs = {}
    if case == "cpu":
        q = q.cpu()
    elif case == "dtype":
        q, k, v = _qkv(torch.float16)
    elif case == "rank":
        q = q[0]
    elif case == "head_dim":
        q, k, v = _qkv(shape=(1, 4, 100, 32))
    elif case == "heads":
        k, v = k[:, :3].contiguous(), v[:, :3].contiguous()
    elif case == "batch":
        k = torch.cat([k, k])
    elif case == "noncontiguous":
        q = q.transpose(1, 2).contiguous().transpose(1, 2)
    elif case == "misaligned":
        # Contiguous, but one element past a 16-byte boundary.
        q = torch.empty(q.numel() + 1, device="cuda",
                        dtype=q.dtype)[1:].view(q.shape).copy_(q)
    elif case == "out_shape":
        kwargs["out"] = torch.zeros(1, 4, 99, 64, device="cuda", dtype=torch.bfloat16)
    elif case == "lse_dtype":
        kwargs["lse"] = torch.zeros(1, 4, 100, device="cuda", dtype=torch.float16)
    elif case == "captures":
        kwargs["captures"] = (torch.zeros(4, device="cuda"),)
    elif case == "sink_logits":
        kwargs["sink_logits"] = torch.zeros(4, device="cuda")
    out = torch.full((1, 4, 100, 64), 7.0, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(BundleError, match=message):
        kernel.run(q, k, v, **({"out": out} | kwargs))
    torch.cuda.synchronize()
    # Nothing was launched: the output is untouched.
    assert bool((out == 7.0).all())
