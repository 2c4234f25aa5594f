#!/usr/bin/env python3
"""Checks and times the attn-mlir kernels on the GPU machine, in one process.

    python3 bench/gpu_bench.py [--bundles bench/bundles] [--baseline OLD]
                               [--only a,b] [--no-bench] [--seqs 1024,4096,16384]
                               [--json out.json]
    python3 bench/gpu_bench.py --sanitize memcheck|racecheck|synccheck|initcheck
                               [--bundles bench/bundles] [--only a,b]

For every case of bench/cases.py (bundles made by build_bundles.py on the
build machine):
1. correctness: random seeded bf16/f16 inputs (never zeros; odd sizes, GQA,
   Sq != Sk where the case says so; once more with keys scaled by 30 for
   large-magnitude scores), the output poisoned with NaN before the launch,
   compared with the float64 reference of python/attn_mlir/reference.py:
   ||O - ref|| / ||ref||, max |LSE - ref| on finite rows, and exact O = 0 /
   LSE = -inf on rows that see no key;
2. speed (cases with a 'bench' entry): the setting of ../shared/PERF_TARGETS.md
   (B*S = 16384 tokens, H*D = 2048, bf16), TFLOP/s = 4*B*H*S*S*D (halved
   for causal; dense-causal count for windows, dense for documents), median of
   triton.testing.do_bench, against torch SDPA (flash and cuDNN backends) and
   torch.compile(flex_attention) expressing the same variant, same inputs.

With ``--baseline OLD`` the bundles of OLD (e.g. main's, built into another
folder) are checked the same way and timed in the same process on the same
inputs, interleaved with the new ones; the table adds their TFLOP/s and the
ratio new/old, and the summary its minimum and geometric mean.

``--sanitize TOOL`` re-runs this script under ``compute-sanitizer --tool
TOOL --report-api-errors no`` (cuda-bindings probes symbol versions, which
would count as API errors) once per case, with ``--small`` shapes and no
timing, and prints the error summary of each case (bench/sanitize.sh runs
the three tools).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from cases import CASES, SOFTCAP, alibi_slopes  # noqa: E402
from attn_mlir import reference  # noqa: E402
from attn_mlir.runtime import Bundle  # noqa: E402
from attn_mlir.timing import attention_flops  # noqa: E402

DT = {"bf16": torch.bfloat16, "f16": torch.float16}


def segment_ids(kind, B, S, gen):
    """[B, S] i32 ids in [0, 4): sorted per batch (packed documents), or
    ("runs") in runs of 1-160 positions whose ids come back after others."""
    if kind == "runs":
        rows = []
        for _ in range(B):
            n = S // 8 + 2
            ids = torch.randint(0, 4, (n,), generator=gen, device="cuda")
            lens = torch.randint(1, 161, (n,), generator=gen, device="cuda")
            rows.append(torch.repeat_interleave(ids, lens)[:S])
        return torch.stack(rows).to(torch.int32).contiguous()
    seg = torch.randint(0, 4, (B, S), generator=gen, device="cuda")
    return torch.sort(seg, dim=1).values.to(torch.int32).contiguous()


def make_inputs(case, shape, gen, key_scale=1.0):
    B, Hq, Hkv, Sq, Sk = shape
    dt = DT[case.dtype]
    q = torch.randn(B, Hq, Sq, case.d, generator=gen, device="cuda").to(dt)
    k = (torch.randn(B, Hkv, Sk, case.d, generator=gen, device="cuda") * key_scale).to(dt)
    v = torch.randn(B, Hkv, Sk, case.dv, generator=gen, device="cuda").to(dt)
    extra = {"captures": []}
    # Document segment ids: [B, Sk]; with two id captures the first holds
    # the queries' ([B, Sq]).
    ids = [c for c, ty in enumerate(case.captures) if "x?xi32" in ty]
    for c, ty in enumerate(case.captures):
        if ty == "tensor<?xi32>":  # a length per batch, the last one full
            n = torch.randint(1, Sk + 1, (B,), generator=gen, device="cuda")
            n[-1] = Sk
            extra["captures"].append(n.to(torch.int32).contiguous())
        elif "i32" in ty:
            n = Sq if len(ids) == 2 and c == ids[0] else Sk
            extra["captures"].append(segment_ids(case.segments, B, n, gen))
        else:  # ALiBi slopes
            extra["captures"].append(torch.tensor(alibi_slopes(Hq), device="cuda",
                                                  dtype=torch.float32))
    if case.sink_logits:
        extra["sink_logits"] = torch.randn(Hq, generator=gen, device="cuda")
    if case.sink_rows:
        # Zero-initialised learned sink keys (the RBF sink mechanism) with
        # random values.
        # (random keys for dot-product scores, whose K path they then test)
        if case.ref.get("score") == "rbf":
            extra["sink_key"] = torch.zeros(Hkv, case.sink_rows, case.d, device="cuda",
                                            dtype=dt)
        else:
            extra["sink_key"] = torch.randn(Hkv, case.sink_rows, case.d, generator=gen,
                                            device="cuda").to(dt)
        extra["sink_value"] = torch.randn(Hkv, case.sink_rows, case.dv, generator=gen,
                                          device="cuda").to(dt)
    return q, k, v, extra


def reference_of(case, q, k, v, extra):
    f64 = lambda t: t.double().cpu().numpy()  # noqa: E731
    kw = dict(case.ref)
    caps = [t.cpu().numpy().astype(np.float64 if t.is_floating_point() else np.int64)
            for t in extra["captures"]]
    res = reference.attention(
        f64(q), f64(k), f64(v), captures=caps,
        sink_logits=f64(extra["sink_logits"]) if "sink_logits" in extra else None,
        sink_key=f64(extra["sink_key"]) if "sink_key" in extra else None,
        sink_value=f64(extra["sink_value"]) if "sink_value" in extra else None,
        return_lse=case.lse, **kw)
    o, lse = res if case.lse else (res, None)
    return o, lse


def check(case, kernel, shape, seed, key_scale):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    q, k, v, extra = make_inputs(case, shape, gen, key_scale)
    out = torch.full((shape[0], shape[1], shape[3], case.dv), float("nan"),
                     device="cuda", dtype=DT[case.dtype])
    lse = torch.full(shape[:2] + (shape[3],), float("nan"), device="cuda")
    kernel.run(q, k, v, out=out, lse=lse, **extra)
    torch.cuda.synchronize()
    o_ref, lse_ref = reference_of(case, q, k, v, extra)
    o = out.double().cpu().numpy()
    res = {"shape": list(shape), "key_scale": key_scale}
    res["nan"] = int(np.isnan(o).sum())
    denom = np.linalg.norm(o_ref)
    res["rel_err"] = float(np.linalg.norm(np.nan_to_num(o) - o_ref) / max(denom, 1e-30))
    dead = np.all(o_ref == 0, axis=-1)
    res["rows_without_keys"] = int(dead.sum())
    res["dead_rows_exact_zero"] = bool(np.all(o[dead] == 0)) if dead.any() else True
    ok = res["nan"] == 0 and res["rel_err"] <= 1e-2 and res["dead_rows_exact_zero"]
    if lse_ref is not None:
        l = lse.double().cpu().numpy()
        fin = np.isfinite(lse_ref)
        res["lse_max_abs_err"] = float(np.max(np.abs(l[fin] - lse_ref[fin]))) if fin.any() else 0.0
        res["lse_inf_match"] = bool(np.all(np.isneginf(l[~fin]))) if (~fin).any() else True
        ok = ok and res["lse_max_abs_err"] <= 5e-2 and res["lse_inf_match"]
    res["ok"] = bool(ok)
    return res


def flops(case, B, H, S, D, causal):
    """4*B*H*S*S*D, halved for causal (attn_mlir.timing.attention_flops)."""
    return attention_flops(B, H, S, S, D, causal=causal)


def _flex_mods(case, k, extra, D, causal):
    """score_mod, mask_mod and the key-norm tensor of flex_attention
    expressing the case."""
    kind = case.bench["flex"]
    score_mod, mask_mod, knorm = None, None, None
    if kind == "softcap":
        score_mod = lambda s, b, h, qi, kv: SOFTCAP * torch.tanh(s / SOFTCAP)  # noqa
    elif kind == "rbf":
        gamma = 0.5 / math.sqrt(D)
        knorm = (k.float() ** 2).sum(-1)  # [B, H, S]
        # -gamma|q-k|^2 = 2 gamma q.k - gamma|k|^2 - gamma|q|^2; with
        # flex's scale 1/sqrt(D) = 2 gamma, and |q|^2 dropped (softmax).
        score_mod = lambda s, b, h, qi, kv: s - gamma * knorm[b, h, kv]  # noqa
    elif kind == "alibi":
        slopes = extra["captures"][0]
        score_mod = lambda s, b, h, qi, kv: s + slopes[h] * (kv - qi)  # noqa
    if kind == "document":
        seg = extra["captures"][0]
        mask_mod = lambda b, h, qi, kv: seg[b, qi] == seg[b, kv]  # noqa
    if causal:
        if kind == "sliding1024":
            mask_mod = lambda b, h, qi, kv: (qi >= kv) & (qi - kv < 1024)  # noqa
        elif kind == "streaming":
            mask_mod = lambda b, h, qi, kv: (qi >= kv) & ((qi - kv < 1024) | (kv < 4))  # noqa
        else:
            mask_mod = lambda b, h, qi, kv: qi >= kv  # noqa
    return score_mod, mask_mod, knorm


def _time_peers(case, q, k, v, extra, fl, causal, do_bench, row):
    """TFLOP/s of torch SDPA (flash, cuDNN) and compiled flex_attention on
    the same inputs, into ``row``."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    import torch.nn.functional as F
    if case.bench.get("sdpa"):
        for name, backend in (("sdpa_flash", SDPBackend.FLASH_ATTENTION),
                              ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([backend]):
                    ms = do_bench(lambda: F.scaled_dot_product_attention(
                        q, k, v, is_causal=causal), warmup=25, rep=100,
                        return_mode="median")
                row[name] = fl / ms / 1e9
            except Exception as ex:  # a backend may refuse a shape
                row[name] = None
                row[name + "_error"] = str(ex)[:120]
    # A fresh, static compile per shape: a recompile for a second shape
    # would otherwise give flex a dynamic-shape kernel, slower than the
    # one a user with a fixed shape gets.
    torch._dynamo.reset()
    flex = torch.compile(flex_attention, dynamic=False)
    score_mod, mask_mod, knorm = _flex_mods(case, k, extra, case.d, causal)
    S = q.shape[2]
    # Document masks differ per batch entry; the others broadcast over it.
    mask_b = q.shape[0] if case.bench["flex"] == "document" else None
    bm = create_block_mask(mask_mod, mask_b, None, S, S) if mask_mod else None
    fn = lambda: flex(q, k, v, score_mod=score_mod, block_mask=bm)  # noqa
    t0 = time.time()
    fn()
    torch.cuda.synchronize()
    row["flex_first_call_s"] = time.time() - t0
    ms = do_bench(fn, warmup=25, rep=100, return_mode="median")
    row["flex"] = fl / ms / 1e9
    if knorm is not None:
        # The same flex call with the key norms computed in the timed
        # region too, as attn-mlir does (its prologue kernel).
        def fn_norms():
            torch.sum(torch.square(k.float()), -1, out=knorm)
            return fn()
        ms = do_bench(fn_norms, warmup=25, rep=100, return_mode="median")
        row["flex_with_norms"] = fl / ms / 1e9


def _time_ours(kernels, q, k, v, extra, out, lse, fl, do_bench, row):
    """TFLOP/s of each kernel (label -> kernel) on the same inputs,
    interleaved twice (a, b, a, b) and the faster of the two medians kept,
    so that clock drift hits both alike."""
    best = {}
    for _ in range(2 if len(kernels) > 1 else 1):
        for label, kernel in kernels.items():
            ms = do_bench(lambda: kernel.run(q, k, v, out=out, lse=lse, **extra),
                          warmup=25, rep=100, return_mode="median")
            best[label] = min(best.get(label, ms), ms)
    for label, ms in best.items():
        row[label] = fl / ms / 1e9


def bench_case(case, kernels, seqs, do_bench):
    """Times ``kernels`` (``{"attn_mlir": new, "baseline": old}``, the
    baseline optional) and the peers in the PERF_TARGETS setting."""
    # Each case compiles its own flex kernels: without a reset and a larger
    # recompile limit, dynamo falls back to the unfused (eager) flex after 8
    # recompiles and the peer would be timed on the wrong code path.
    torch._dynamo.config.recompile_limit = 1000
    torch._dynamo.config.accumulated_recompile_limit = 100000
    rows = []
    D = case.d
    H = 2048 // D
    causal = case.bench["causal"]
    for S in seqs:
        B = 16384 // S
        gen = torch.Generator(device="cuda").manual_seed(1234 + S)
        q, k, v, extra = make_inputs(case, (B, H, H, S, S), gen)
        out = torch.empty_like(q[..., :case.dv])
        lse = torch.empty(B, H, S, device="cuda")
        row = {"case": case.name, "S": S, "B": B, "H": H, "D": D}
        fl = flops(case, B, H, S, D, causal)
        _time_ours(kernels, q, k, v, extra, out, lse, fl, do_bench, row)
        _time_peers(case, q, k, v, extra, fl, causal, do_bench, row)
        rows.append(row)
        print("  " + " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in row.items()), flush=True)
    return rows


def small_shape(case):
    """A small (B, Hq, Hkv, Sq, Sk) with the check shape's head ratio and
    Sq/Sk proportions, for the sanitizers."""
    if case.sanitize_shape:
        return case.sanitize_shape
    B, Hq, Hkv, Sq, Sk = case.check_shape
    f = min(1.0, 320 / max(Sq, Sk))
    return (1, Hq // Hkv, 1, Sq if Sq <= 64 else max(1, round(Sq * f)),
            Sk if Sk <= 64 else max(1, round(Sk * f)))


def check_case(case, label, root, shape=None):
    """The two float64 checks of ``root/<case>``'s kernel (``shape``: the
    case's check shape unless given); returns (kernel or None, results)."""
    try:
        bundle = Bundle.load(os.path.join(root, case.name))
        # A backward bundle holds the forward entry too, by the case's name.
        kernel = bundle.kernel(case.name if case.name in bundle.kernels
                               else None)
    except Exception as ex:
        print(f"{case.name} [{label}]: LOAD FAILED {ex}", flush=True)
        return None, [{"case": case.name, "bundles": label, "ok": False,
                       "error": str(ex)}]
    results = []
    for seed, scale in ((0, 1.0), (1, 30.0)):
        try:
            r = check(case, kernel, shape or case.check_shape, seed, scale)
        except Exception as ex:
            r = {"ok": False, "error": repr(ex)[:300]}
        r.update(case=case.name, bundles=label)
        results.append(r)
        print(f"{'PASS' if r['ok'] else 'FAIL'} {case.name} [{label}] " +
              " ".join(f"{k}={v}" for k, v in r.items()
                       if k not in ("case", "ok", "bundles")), flush=True)
    return kernel, results


def print_table(rows):
    base = any("baseline" in r for r in rows)
    print("\n== TFLOP/s (ratio = attn-mlir / peer, same process, same inputs"
          + ("; new/old = --bundles / --baseline" if base else "") + ")")
    print(f"{'case':22s} {'S':>6s} {'ours':>7s}"
          + (f" {'old':>7s} {'new/old':>7s}" if base else "")
          + f" {'flash':>7s} {'cudnn':>7s} {'flex':>7s}"
          f" {'/flash':>7s} {'/cudnn':>7s} {'/flex':>7s} {'/flex+norms':>11s}")
    for r in rows:
        def g(k):
            return r.get(k) or float("nan")
        ours = g("attn_mlir")
        print(f"{r['case']:22s} {r['S']:6d} {ours:7.1f}"
              + (f" {g('baseline'):7.1f} {ours / g('baseline'):7.3f}" if base else "")
              + f" {g('sdpa_flash'):7.1f} {g('sdpa_cudnn'):7.1f} {g('flex'):7.1f}"
              f" {ours / g('sdpa_flash'):7.2f} {ours / g('sdpa_cudnn'):7.2f}"
              f" {ours / g('flex'):7.2f} {ours / g('flex_with_norms'):11.2f}")
    if base:
        ratios = [r["attn_mlir"] / r["baseline"] for r in rows
                  if r.get("attn_mlir") and r.get("baseline")]
        if ratios:
            worst = min(range(len(ratios)), key=ratios.__getitem__)
            print(f"new/old: min {min(ratios):.3f} ({rows[worst]['case']} "
                  f"S={rows[worst]['S']}), geometric mean "
                  f"{math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}")


SANITIZERS = ("memcheck", "racecheck", "synccheck", "initcheck")


def sanitizer_errors(text):
    """The number of errors compute-sanitizer reported (racecheck: hazards,
    errors and warnings alike), or None if it printed no summary."""
    import re
    m = re.search(r"ERROR SUMMARY: (\d+) error", text)
    if m:
        return int(m.group(1))
    m = re.search(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) "
                  r"errors?, (\d+) warnings?\)", text)
    return max(int(m.group(1)), int(m.group(2)) + int(m.group(3))) if m else None


def sanitize(args, cases):
    """Re-runs this script under compute-sanitizer, one case at a time, on
    small shapes without timing; prints the errors per case. Returns the
    number of cases with errors or failures."""
    import re
    import subprocess
    tool = args.sanitize
    exe = args.compute_sanitizer
    rows = []
    for case in cases:
        cmd = [exe, "--tool", tool, "--report-api-errors", "no",
               sys.executable, os.path.abspath(__file__), "--bundles",
               args.bundles, "--only", case.name, "--no-bench", "--small"]
        t0 = time.time()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=args.sanitize_timeout)
            text = r.stdout + r.stderr
            errors = sanitizer_errors(text)
            passed = len(re.findall(r"^PASS ", text, re.M))
            status = "ok" if errors == 0 and passed == 2 else "ERRORS" \
                if errors else f"rc={r.returncode}"
        except subprocess.TimeoutExpired:
            text, errors, passed, status = "", None, 0, "timeout"
        rows.append((case.name, errors, passed, status, time.time() - t0))
        print(f"{tool} {case.name:30s} errors={errors} checks={passed}/2 "
              f"{status} ({rows[-1][4]:.0f} s)", flush=True)
        if status != "ok":
            lines = [ln for ln in text.splitlines() if ln.startswith("=====")
                     or "FAIL" in ln or "Error" in ln]
            print("\n".join("    " + ln for ln in lines[:40]), flush=True)
    bad = [r for r in rows if r[3] != "ok"]
    print(f"\n{tool}: {len(rows) - len(bad)}/{len(rows)} cases clean"
          + (f"; not clean: {', '.join(r[0] for r in bad)}" if bad else ""))
    return len(bad)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundles", default=os.path.join(HERE, "bundles"))
    ap.add_argument("--baseline", default="",
                    help="a second bundle folder (e.g. main's), checked and "
                         "timed in the same process; prints new/old")
    ap.add_argument("--only", default="")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--small", action="store_true",
                    help="check on small shapes (what --sanitize runs)")
    ap.add_argument("--seqs", default="1024,4096,16384")
    ap.add_argument("--json", default="")
    ap.add_argument("--sanitize", choices=SANITIZERS, default=None,
                    help="run every case under compute-sanitizer --tool X "
                         "(small shapes, no timing) and summarise the errors")
    ap.add_argument("--compute-sanitizer", default="compute-sanitizer")
    ap.add_argument("--sanitize-timeout", type=float, default=900)
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    cases = [c for c in CASES if not only or c.name in only]
    if args.sanitize:
        sys.exit(1 if sanitize(args, cases) else 0)
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}", flush=True)
    roots = {"attn_mlir": args.bundles}
    if args.baseline:
        roots["baseline"] = args.baseline
    results = {"checks": [], "bench": []}
    for case in cases:
        kernels = {}
        for label, root in roots.items():
            kernel, checks = check_case(case, label, root,
                                        small_shape(case) if args.small else None)
            results["checks"] += checks
            if kernel is not None and all(c["ok"] for c in checks):
                kernels[label] = kernel
        if case.bench and not args.no_bench and "attn_mlir" in kernels:
            from triton.testing import do_bench
            results["bench"] += bench_case(case, kernels,
                                           [int(s) for s in args.seqs.split(",")],
                                           do_bench)
    print_table(results["bench"])
    for label in roots:
        checks = [c for c in results["checks"] if c["bundles"] == label]
        print(f"\nchecks [{label}: {roots[label]}]: "
              f"{sum(c['ok'] for c in checks)}/{len(checks)} passed")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
