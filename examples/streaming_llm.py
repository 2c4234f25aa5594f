#!/usr/bin/env python3
"""StreamingLLM (Xiao et al., ICLR 2024): the first 4 tokens stay visible as
"attention sinks" next to a window of the 252 most recent ones, so the KV
cache never holds more than 256 entries.

The library variant (python/attn_mlir/variants/streaming_llm.mlir) uses the
structured masks #attn.sink_tokens and #attn.sliding_window; the DSL
variant below says the same with a mask function. Both are compiled, run on
a 320-token sequence and checked against the reference and each other.
"""
from _common import banner, check, dsl, finish, ref, rng, run, show, variants, where

import numpy as np


@dsl.mask(masks=[dsl.causal()])
def streaming_mask(b, h, q_idx, kv_idx):
    return (kv_idx < 4) | (q_idx - kv_idx <= 251)


def main():
    B, Hq, Hkv, S, D = 1, 4, 2, 320, 32
    r = rng(4)
    q = r.standard_normal((B, Hq, S, D)).astype(np.float32)
    k = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
    v = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
    lib = variants.load("streaming_llm")
    vis = ref.visibility(B, Hq, S, S, lib.spec["masks"])[0, 0]
    print(f"running on {where()}; the last query sees {vis[-1].sum()} keys "
          f"(4 sinks + 252 recent) of {S}")
    outs = {}
    for var in (lib, streaming_mask):
        banner(var.name)
        show(var)
        out, seen = run(var, q, k, v)
        outs[var.name] = out
        if out is None:
            continue
        check(f"{var.name} vs reference", out,
              var.reference(seen["q"], seen["k"], seen["v"]))
    if outs[lib.name] is not None:
        banner("structured masks vs mask function")
        check("streaming_llm == streaming_mask", outs["streaming_mask"],
              outs[lib.name])
    finish()


if __name__ == "__main__":
    main()
