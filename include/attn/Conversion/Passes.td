//===- Passes.td - attn conversion passes ------------------*- tablegen -*-===//

#ifndef ATTN_CONVERSION_PASSES_TD
#define ATTN_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnLowerToLoopsPass : Pass<"attn-lower-to-loops"> {
  let summary = "Lower attn.attention to its naive meaning: scf loops over "
                "scalars on tensors";
  let description = [{
    The executable definition of the dialect (docs/semantics.md): for each
    (b, h, q_idx) the row of scores is materialized (`tensor<Sk x f32>`),
    together with the visibility of every key, then normalized and multiplied
    with V. Every kind of the dialect is supported; accumulation is in f32.
    It is slow on purpose: it is what the fast lowerings are checked against.

    Precondition: no attn.attention references a variant (run
    `attn-instantiate-variants` first). Postcondition: no attn ops remain
    outside attn.variant definitions.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def AttnToFlashPass : Pass<"attn-to-flash"> {
  let summary = "Lower attn.attention to the tiled online (FlashAttention) "
                "form";
  let description = [{
    The target-independent algorithm the GPU kernels run, on scalars over
    tensors: queries in tiles of `q-tile` rows; for each, the exact range of
    KV tiles that the structured masks leave visible (plus the sink-token
    tiles); per KV tile, mask code only when the tile is not fully visible;
    a running maximum and normalizer per query for the softmax family
    (sink logits and softmax1's `+1` folded into the initial state, sink rows
    processed as a first, never-masked tile); RBF scores as
    `2*gamma*q.k - gamma*|k|^2 - gamma*|q|^2` with `|k|^2` computed once per
    KV tile and `|q|^2` once per query, the `|q|^2` term dropped when the
    normalization is shift-invariant (added back into the LSE); the LSE
    written when asked for.

    Precondition: no attn.attention references a variant.
  }];
  let options = [
    Option<"qTile", "q-tile", "int64_t", /*default=*/"16",
           "Query rows per tile">,
    Option<"kvTile", "kv-tile", "int64_t", /*default=*/"32",
           "Keys per KV tile">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // ATTN_CONVERSION_PASSES_TD
