#!/usr/bin/env python3
"""RBF attention with zero-initialised learned sink rows.

Scores are negative squared distances, s_ij = -gamma |q_i - k_j|^2 (an RBF
kernel inside the softmax), and every query also sees Ns learned key/value
rows (`sink_rows`, operands of the op, not masked by anything). Initialised
to zero, a sink key scores -gamma |q_i|^2, a norm-dependent threshold, and a
zero sink value adds nothing: the mass a query gives the sinks is attention
to "nothing". The library variant is python/attn_mlir/variants/rbf_sink_rows.mlir;
a DSL variant with a wider kernel (smaller gamma) runs next to it.
"""
from _common import banner, check, dsl, finish, rng, run, show, variants, where

import numpy as np

wide = dsl.Variant("rbf_sinks_wide", score="rbf", gamma=0.02,
                   masks=[dsl.causal()])


def main():
    B, Hq, Hkv, S, D, Ns = 1, 4, 2, 64, 32, 2
    r = rng(1)
    q = r.standard_normal((B, Hq, S, D)).astype(np.float32)
    k = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
    v = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
    ones = np.ones_like(v)
    zero_k = np.zeros((Hkv, Ns, D), np.float32)
    zero_v = np.zeros((Hkv, Ns, D), np.float32)
    print(f"running on {where()}")

    for var in (variants.load("rbf_sink_rows"), wide):
        banner(var.name)
        show(var)
        out, seen = run(var, q, k, v, sink_key=zero_k, sink_value=zero_v)
        if out is None:
            continue
        want = var.reference(seen["q"], seen["k"], seen["v"],
                             sink_key=zero_k, sink_value=zero_v)
        check(f"{var.name}, zero sink rows", out, want)
        # With zero sink values, attending to v = 1 gives each query's mass
        # on the real keys (1 - the mass on the sinks).
        mass, seen = run(var, q, k, ones, sink_key=zero_k, sink_value=zero_v)
        check(f"{var.name}, mass on real keys", mass,
              var.reference(seen["q"], seen["k"], ones, sink_key=zero_k,
                            sink_value=zero_v))
        m = mass[..., 0]
        print(f"mass on real keys: mean {m.mean():.3f}, min {m.min():.3f}, "
              f"max {m.max():.3f} (the sinks take the rest)")
        # After training the rows are no longer zero: same kernel.
        sk = (0.5 * r.standard_normal((Hkv, Ns, D))).astype(np.float32)
        sv = r.standard_normal((Hkv, Ns, D)).astype(np.float32)
        out, seen = run(var, q, k, v, sink_key=sk, sink_value=sv)
        check(f"{var.name}, learned sink rows", out,
              var.reference(seen["q"], seen["k"], seen["v"],
                            sink_key=seen["sink_key"],
                            sink_value=seen["sink_value"]))
    finish()


if __name__ == "__main__":
    main()
