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
    `2*gamma*q.k - gamma*|k|^2 - gamma*|q|^2` (on q and k centred on the
    q-tile's first query, so that a large common offset does not cancel)
    with `|k|^2` computed once per KV tile and `|q|^2` once per query, the
    `|q|^2` term dropped when the
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

def AttnToNVGPUPass : Pass<"attn-to-nvgpu", "::mlir::ModuleOp"> {
  let summary = "Generate a tensor-core GPU kernel (gpu.func) for every "
                "attn.attention";
  let description = [{
    For every attn.attention in the module, a `gpu.func` kernel in
    `gpu.module @attn_kernels`, named after the function that held the op,
    that runs the tiled online algorithm of `attn-to-flash` on tensor cores,
    with the score region and mask code evaluated per accumulator element
    (mask code only on tiles that are not fully visible, hidden tiles never
    visited), P kept in registers, O rescaled only when a row maximum moved,
    and an exp2-based online softmax. Two code generators (`mma`):

    - `wgmma` (sm_90a; head dims multiples of 64): warpgroups of 64 query
      rows, K/V tiles in a cp.async ring laid out for the 128-byte swizzle,
      S = Q.K^T by `wgmma.mma_async` from shared-memory descriptors, P.V by
      the register-A form of wgmma; optionally software-pipelined
      (`pipeline`). RBF key norms come from a prologue kernel
      (`<name>_key_norms`) and, in bf16, enter the S chain as one extra
      k-step.
    - `sync` (sm_80 and later): the FlashAttention-2 structure, 128-query
      tiles per CTA of 4 warps (32 rows a warp), K/V tiles of 32 or 64 keys
      in a 3-stage ring, `ldmatrix` and `mma.sync.m16n8k16`.

    Kernel arguments: q, k, v, o, lse (always; a scratch buffer when the op
    has no LSE result), [sink_logits], [sink_key, sink_value], captures...,
    [key_norms], each a 1-D global memref (row-major contents), then the sizes B, Hq,
    Hkv, Sq, Sk, Ns as index values. The launch description (grid, block,
    dynamic shared memory, argument list) goes into the module attribute
    `attn.kernels`; the host functions that held the ops are erased.

    Ops the kernel cannot take yet (f32 inputs, dynamic or non-multiple-of-16
    head dims, feature maps, region ops other than arith/math/tensor.extract)
    are refused with a diagnostic naming the reason.
  }];
  let options = [
    Option<"mTiles", "m-tiles", "int64_t", /*default=*/"0",
           "16-row m-tiles per warp (1 or 2; 0: 2). With 2 each K/V "
           "fragment feeds two mma and Q is re-read from shared memory">,
    Option<"kvTile", "kv-tile", "int64_t", /*default=*/"0",
           "Keys per KV tile (multiple of 16, at most 128; 0: 64 for head "
           "dims up to 64, else 32)">,
    Option<"warps", "warps", "int64_t", /*default=*/"0",
           "Warps per CTA (1, 2, 4 or 8; with wgmma 4 or 8; 0: 4, or 8 with "
           "wgmma); the q-tile is 16 * m-tiles * warps rows">,
    Option<"stages", "stages", "int64_t", /*default=*/"0",
           "Depth of the K/V shared-memory ring (2 to 4; 0: 3, or 2 with "
           "wgmma unpipelined)">,
    Option<"mma", "mma", "std::string", /*default=*/"\"sync\"",
           "Tensor-core instructions: `sync` (mma.sync, sm_80 and later), "
           "`wgmma` (Hopper's warpgroup wgmma.mma_async, sm_90a; head dims "
           "must be multiples of 64) or `auto` (wgmma wherever the op "
           "allows it, else mma.sync)">,
    Option<"pipeline", "pipeline", "std::string", /*default=*/"\"auto\"",
           "wgmma: software-pipeline the KV loop (S of the next tile on the "
           "tensor cores while the warps compute the weights of this one; "
           "needs stages >= 3): `on`, `off` or `auto` (on for head dims up "
           "to 64)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::NVVM::NVVMDialect",
                           "::mlir::nvgpu::NVGPUDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
}

#endif // ATTN_CONVERSION_PASSES_TD
