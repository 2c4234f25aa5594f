#!/usr/bin/env python3
"""Softmax and its alternatives side by side, on the same q, k, v:

  softmax           exp(s) / sum exp(s)
  softmax1          exp(s) / (1 + sum exp(s))        (Miller, 2023)
  scalable_softmax  softmax(0.5 * log(n) * s)        (Nakanishi, 2025)
  sigmoid           sigmoid(s - log(1024))           (Ramapuram et al., 2024)
  relu2             max(s, 0)^2                      (Hua et al., 2022)

For each library variant: the output checked against the float64 reference,
and the total weight a query hands out (attention to v = 1), which is 1 only
for softmax and SSMax. Last, softmax1 is checked to equal gpt-oss-style
softmax with a sink logit of 0.
"""
from _common import banner, check, dsl, finish, rng, run, show, variants, where

import numpy as np

NAMES = ["softmax", "softmax1", "scalable_softmax", "sigmoid", "relu2"]


def main():
    B, Hq, Hkv, S, D = 1, 4, 4, 128, 32
    r = rng(3)
    q = r.standard_normal((B, Hq, S, D)).astype(np.float32)
    k = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
    v = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
    ones = np.ones_like(v)
    print(f"running on {where()}")
    rows = []
    for name in NAMES:
        var = variants.load(name)
        banner(name)
        show(var)
        out, seen = run(var, q, k, v)
        if out is None:
            continue
        check(f"{name} vs reference", out,
              var.reference(seen["q"], seen["k"], seen["v"]))
        mass, seen = run(var, q, k, ones)
        check(f"{name} weights vs reference", mass,
              var.reference(seen["q"], seen["k"], ones))
        rows.append((name, var.spec_text(), mass[..., 0].mean(),
                     mass[..., 0].min(), mass[..., 0].max(),
                     np.linalg.norm(out, axis=-1).mean()))
    if rows:
        banner("side by side")
        print(f"{'variant':18s} {'spec':45s} {'sum of weights':>22s} "
              f"{'mean |O_i|':>10s}")
        for name, spec, mean, lo, hi, norm in rows:
            print(f"{name:18s} {spec:45s} {mean:8.3f} [{lo:.3f}, {hi:.3f}]"
                  f" {norm:10.3f}")

    banner("softmax1 == softmax with a zero sink logit")
    causal1 = dsl.Variant("softmax1_causal", normalization="softmax1",
                          masks=[dsl.causal()])
    show(causal1)
    a, seen = run(causal1, q, k, v)
    b, _ = run(variants.load("gpt_oss_sinks"), q, k, v,
               sink_logits=np.zeros(Hq, np.float32))
    if a is not None:
        check("softmax1_causal vs reference", a,
              causal1.reference(seen["q"], seen["k"], seen["v"]))
        check("softmax1_causal vs gpt_oss_sinks(c = 0)", a, b)
    finish()


if __name__ == "__main__":
    main()
