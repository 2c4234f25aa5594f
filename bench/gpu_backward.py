#!/usr/bin/env python3
"""Checks and times the backward kernels on the GPU machine.

    python bench/gpu_backward.py --bundles bench/bundles/bwd [--only a,b]
        [--no-bench] [--seqs 4096,16384] [--json out.json]

The bundles are built here by ``bench/build_bundles.py --backward`` (each
holds a case's forward entry ``<case>`` and its backward ``<case>_grad``).
For every case: the forward kernel gives O and the LSE, the backward kernels
the gradients, and each gradient is compared with the float64 reference
``attn_mlir.reference.attention_backward`` on the same (rounded) inputs, on
the case's check shape with two seeds (the second with keys 30x larger).
Cases with a ``bench`` entry are then timed (pre + main + post kernels)
against the backward of torch SDPA (flash, cuDNN) and of compiled
flex_attention on the same inputs in the same process; TFLOP/s count 2.5x
the forward's FLOPs (the peers' convention).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from cases import CASES  # noqa: E402
from gpu_bench import DT, _flex_mods, flops, make_inputs  # noqa: E402
from attn_mlir import reference  # noqa: E402
from attn_mlir.runtime import Bundle  # noqa: E402
from attn_mlir.timing import backward_step  # noqa: E402

#: Largest norm-relative error of a bf16/f16 gradient against float64.
TOLERANCE = 3e-2


def _f64(t):
    return None if t is None else t.double().cpu().numpy()


def run_ours(fwd, bwd, q, k, v, do, extra, has_lse):
    out, lse = fwd.run(q, k, v, **extra)
    grads = bwd.run_grad(q, k, v, out, do, lse=lse if has_lse else None,
                         **extra)
    return out, lse, grads


def _reference(case, q, k, v, do, extra, caps, dlse=None):
    return reference.attention_backward(
        _f64(q), _f64(k), _f64(v), _f64(do), captures=caps,
        sink_logits=_f64(extra.get("sink_logits")),
        sink_key=_f64(extra.get("sink_key")),
        sink_value=_f64(extra.get("sink_value")), dlse=dlse,
        **case.ref).op_results()


def _errors(names, grads, ref):
    errors, nans = {}, {}
    for name, ours, want in zip(names, grads, ref):
        got = ours.double().cpu().numpy()
        nans[name] = int(np.isnan(got).sum())
        errors[name] = round(float(
            np.linalg.norm(np.nan_to_num(got) - want) /
            max(np.linalg.norm(want), 1e-30)), 5)
    return errors, nans


def deterministic(bwd):
    """Whether the backward bundle was built with deterministic=true."""
    return bool(bwd.desc.get("config", {}).get("deterministic"))


def repeats_equal(bwd, q, k, v, out, do, extra, has_lse, first, times=3):
    """Whether `times` more runs of the backward on the same inputs give
    gradients bitwise equal to `first`."""
    lse = extra.pop("_lse", None)
    for _ in range(times):
        again = bwd.run_grad(q, k, v, out, do, lse=lse if has_lse else None,
                             **extra)
        if not all(torch.equal(a, b) for a, b in zip(first, again)):
            return False
    return True


def check(case, fwd, bwd, shape, seed, key_scale):
    """The gradients against float64 twice: exactly (``errors``), and given
    the kernel's O (``errors_given_o``): the op defines D = rowsum(dO * O)
    from its O operand, so the second reference takes D from the rounded O
    the forward kernel wrote (through dlse = D_exact - D_given, which turns
    the reference's p (dP - D_exact) into p (dP - D_given)). Where the
    softmax is one-hot (RBF scores of keys 30x larger) the exact gradient is
    ~0 and only the second is a meaningful tolerance; it must pass, and the
    exact one is reported."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    q, k, v, extra = make_inputs(case, shape, gen, key_scale)
    do = torch.randn(q.shape[:3] + (case.dv,), generator=gen,
                     device="cuda").to(q.dtype)
    has_lse = "lse" in bwd.params
    out, lse, grads = run_ours(fwd, bwd, q, k, v, do, extra, has_lse)
    torch.cuda.synchronize()
    # Bitwise equal from run to run: required of a deterministic bundle,
    # reported for the others (their dQ adds race).
    same = repeats_equal(bwd, q, k, v, out, do, dict(extra, _lse=lse),
                         has_lse, grads)
    caps = [t.cpu().numpy().astype(np.float64 if t.is_floating_point()
                                   else np.int64) for t in extra["captures"]]
    names = bwd.desc["results"]
    ref = _reference(case, q, k, v, do, extra, caps)
    res = {"shape": list(shape), "key_scale": key_scale,
           "repeats_equal": same}
    res["errors"], nans = _errors(names, grads, ref)
    checked = res["errors"]
    if has_lse:
        o_exact = reference.attention(
            _f64(q), _f64(k), _f64(v), captures=caps,
            sink_logits=_f64(extra.get("sink_logits")),
            sink_key=_f64(extra.get("sink_key")),
            sink_value=_f64(extra.get("sink_value")), **case.ref)
        d_exact = (o_exact * _f64(do)).sum(-1)
        d_given = (_f64(out) * _f64(do)).sum(-1)
        ref_o = _reference(case, q, k, v, do, extra, caps,
                           dlse=d_exact - d_given)
        res["errors_given_o"], _ = _errors(names, grads, ref_o)
        checked = res["errors_given_o"]
    ok = len(ref) == len(grads) and not any(nans.values()) and \
        all(e <= TOLERANCE for e in checked.values()) and \
        (same or not deterministic(bwd))
    if any(nans.values()):
        res["nan"] = nans
    # Queries that see no key: dq exactly 0.
    B, Hq, _, Sq, Sk = shape
    vis = reference.visibility(B, Hq, Sq, Sk, masks=case.ref.get("masks", ()),
                               captures=caps)
    dead = ~vis.any(-1)
    if dead.any():
        dq = grads[0].double().cpu().numpy()
        res["dead_rows"] = int(dead.sum())
        res["dead_dq_zero"] = bool(np.all(dq[dead] == 0))
        ok = ok and res["dead_dq_zero"]
    res["ok"] = bool(ok)
    return res


def time_peers(case, q, k, v, do, extra, fl, do_bench, row):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import (create_block_mask,
                                                   flex_attention)
    import torch.nn.functional as F
    causal = case.bench["causal"]
    if case.bench.get("sdpa"):
        for name, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                              ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([backend]):
                    step = backward_step(lambda a, b, c: F.scaled_dot_product_attention(
                        a, b, c, is_causal=causal), q, k, v, do)
                    ms = do_bench(step, warmup=10, rep=50, return_mode="median")
                row[name] = fl / ms / 1e9
            except Exception as ex:
                row[name] = None
                row[name + "_error"] = str(ex)[:120]
    torch._dynamo.reset()
    flex = torch.compile(flex_attention, dynamic=False)
    S = q.shape[2]
    if case.bench["flex"] == "rbf":
        # The key norms in the graph, so that dk gets their gradient.
        gamma = 0.5 / math.sqrt(case.d)

        def fn(a, b, c):
            knorm = (b.float() ** 2).sum(-1)
            return flex(a, b, c, score_mod=lambda s, bb, h, qi, kv:
                        s - gamma * knorm[bb, h, kv],
                        block_mask=create_block_mask(
                            lambda bb, h, qi, kv: qi >= kv, None, None, S, S)
                        if causal else None)
    else:
        score_mod, mask_mod, _ = _flex_mods(case, k, extra, case.d, causal)
        bm = create_block_mask(mask_mod, None, None, S, S) if mask_mod else None

        def fn(a, b, c):
            return flex(a, b, c, score_mod=score_mod, block_mask=bm)
    step = backward_step(fn, q, k, v, do)
    step()
    ms = do_bench(step, warmup=10, rep=50, return_mode="median")
    row["flex"] = fl / ms / 1e9


def bench_case(case, fwd, bwd, seqs, do_bench, peers=True):
    torch._dynamo.config.recompile_limit = 1000
    torch._dynamo.config.accumulated_recompile_limit = 100000
    rows = []
    D = case.d
    H = 2048 // D
    for S in seqs:
        B = 16384 // S
        gen = torch.Generator(device="cuda").manual_seed(99 + S)
        q, k, v, extra = make_inputs(case, (B, H, H, S, S), gen)
        do = torch.randn(q.shape[:3] + (case.dv,), generator=gen,
                         device="cuda").to(q.dtype)
        has_lse = "lse" in bwd.params
        out, lse = fwd.run(q, k, v, **extra)
        row = {"case": case.name, "S": S, "B": B, "H": H, "D": D}
        fl = 2.5 * flops(case, B, H, S, D, case.bench["causal"])
        ms = do_bench(lambda: bwd.run_grad(
            q, k, v, out, do, lse=lse if has_lse else None, **extra),
            warmup=10, rep=50, return_mode="median")
        row["attn_mlir"] = fl / ms / 1e9
        # At full size, where the CTAs' dQ adds contend.
        first = bwd.run_grad(q, k, v, out, do, lse=lse if has_lse else None,
                             **extra)
        row["repeats_equal"] = repeats_equal(
            bwd, q, k, v, out, do, dict(extra, _lse=lse), has_lse, first)
        if deterministic(bwd) and not row["repeats_equal"]:
            print(f"FAIL {case.name} S={S}: deterministic gradients differ "
                  "between runs", flush=True)
        if peers:
            time_peers(case, q, k, v, do, extra, fl, do_bench, row)
        rows.append(row)
        print("  " + " ".join(f"{k}={v:.1f}" if isinstance(v, float)
                              else f"{k}={v}" for k, v in row.items()),
              flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundles", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--seqs", default="4096,16384")
    ap.add_argument("--json", default="")
    ap.add_argument("--no-peers", action="store_true",
                    help="time attn-mlir only (e.g. a second configuration)")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}",
          flush=True)
    results = {"checks": [], "bench": []}
    for case in CASES:
        path = os.path.join(args.bundles, case.name)
        if (only and case.name not in only) or \
                not os.path.exists(os.path.join(path, "attn.cubin")):
            continue
        try:
            bundle = Bundle.load(path)
            fwd, bwd = bundle.kernel(case.name), bundle.kernel(case.name + "_grad")
        except Exception as ex:
            print(f"LOAD FAILED {case.name}: {ex}", flush=True)
            results["checks"].append({"case": case.name, "ok": False,
                                      "error": str(ex)})
            continue
        checks = []
        # RBF scores of keys 30x larger make every softmax one-hot: the
        # exact gradient is ~0 and a norm-relative error meaningless; 4x
        # still puts |k|^2 far from |q|^2.
        large = 4.0 if case.ref.get("score") == "rbf" else 30.0
        for seed, scale in ((0, 1.0), (1, large)):
            try:
                r = check(case, fwd, bwd, case.check_shape, seed, scale)
            except Exception as ex:
                r = {"ok": False, "error": repr(ex)[:300]}
            r["case"] = case.name
            checks.append(r)
            print(f"{'PASS' if r['ok'] else 'FAIL'} {case.name} " +
                  " ".join(f"{k}={v}" for k, v in r.items()
                           if k not in ("case", "ok")), flush=True)
        results["checks"] += checks
        if case.bench and not args.no_bench and all(c["ok"] for c in checks):
            from triton.testing import do_bench
            results["bench"] += bench_case(
                case, fwd, bwd, [int(s) for s in args.seqs.split(",")],
                do_bench, peers=not args.no_peers)
    print("\nbackward TFLOP/s (2.5x forward FLOPs)")
    for r in results["bench"]:
        ours = r["attn_mlir"]
        peers = " ".join(f"{p}={r[p]:.1f} ({ours / r[p]:.2f}x)"
                         for p in ("sdpa_flash", "sdpa_cudnn", "flex")
                         if r.get(p))
        print(f"  {r['case']:24s} S={r['S']:6d} ours={ours:6.1f}  {peers}")
    n = len(results["checks"])
    print(f"\nchecks: {sum(c['ok'] for c in results['checks'])}/{n} passed")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
