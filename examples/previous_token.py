#!/usr/bin/env python3
"""Previous-token head with average context: causal + a window of one key
to the left + normalize<mean>. Query i outputs (v[i-1] + v[i]) / 2 (v[0] for
i = 0) whatever q and k are: a built-in version of the "previous token"
heads found in trained transformers (Olsson et al., 2022).

The library variant (python/attn_mlir/variants/prev_token_mean.mlir) and the
same spec written with the DSL are checked against the reference and
against the closed form computed with numpy.
"""
from _common import banner, check, dsl, finish, rng, run, show, variants, where

import numpy as np

prev_dsl = dsl.Variant("prev_token_mean_dsl", normalization="mean",
                       masks=[dsl.causal(), dsl.sliding_window(1)])


def main():
    B, Hq, Hkv, S, D = 2, 4, 1, 50, 16              # MQA: one kv head
    r = rng(2)
    q = r.standard_normal((B, Hq, S, D)).astype(np.float32)
    k = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
    v = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
    print(f"running on {where()}")
    for var in (variants.load("prev_token_mean"), prev_dsl):
        banner(var.name)
        show(var)
        out, seen = run(var, q, k, v)
        if out is None:
            continue
        check(f"{var.name} vs reference", out,
              var.reference(seen["q"], seen["k"], seen["v"]))
        vv = np.repeat(seen["v"].astype(np.float64), Hq // Hkv, axis=1)
        closed = vv.copy()
        closed[:, :, 1:] = (vv[:, :, 1:] + vv[:, :, :-1]) / 2
        check(f"{var.name} vs (v[i-1] + v[i]) / 2", out, closed)
        # The scores do not matter: other q and k, same output.
        out2, _ = run(var, -3 * q, k[:, :, ::-1].copy(), v)
        check(f"{var.name} ignores q and k", out2, out)
    finish()


if __name__ == "__main__":
    main()
