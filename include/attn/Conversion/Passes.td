//===- Passes.td - attn conversion passes ------------------*- tablegen -*-===//

#ifndef ATTN_CONVERSION_PASSES_TD
#define ATTN_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnLowerToLoopsPass : Pass<"attn-lower-to-loops"> {
  let summary = "Lower attn.attention and attn.attention_grad to their naive "
                "meaning: scf loops over scalars on tensors";
  let description = [{
    The executable definition of the dialect (docs/semantics.md): for each
    (b, h, q_idx) the row of scores is materialized (`tensor<Sk x f32>`),
    together with the visibility of every key, then normalized and multiplied
    with V. Every kind of the dialect is supported; accumulation is in f32.
    It is slow on purpose: it is what the fast lowerings are checked against.

    attn.attention_grad (docs/semantics.md §6) likewise: per (b, h, q_idx)
    the rows of scores before and after the score region, the visibility,
    the weights p (from the forward's lse for the softmax family), dP = dO.v,
    D = sum p dP and dS of every key and sink row; dS goes through the score
    region's symbolic derivative (`AttnCommon/ScoreModVJP.h`, which also
    gives the capture gradients) and the kernel; dq, dk, dv, the sink
    gradients and the capture gradients accumulate in f32 tensors that a
    postprocess scales (the kernel's factor), multiplies by the feature maps'
    derivatives and casts to the result types. An op whose score region
    computes the score through an op without a derivative rule is refused
    with a diagnostic on the op naming that op.

    Precondition: no attn.attention or attn.attention_grad references a
    variant (run `attn-instantiate-variants` first). Postcondition: no attn
    ops remain outside attn.variant definitions.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def AttnToFlashPass : Pass<"attn-to-flash"> {
  let summary = "Lower attn.attention to the tiled online (FlashAttention) "
                "form, and attn.attention_grad to the FlashAttention-2 "
                "backward order";
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
    written when asked for. The per-row arithmetic of the online algorithm
    is the shared builder of `AttnCommon/OnlineSoftmax.h`.

    attn.attention_grad in the structure of the FlashAttention-2 backward:
    a preprocess computes per query D = rowsum(dO * O) (softmax family), the
    number of keys it sees (scalable softmax, mean) and the sink logit's
    gradient; then per (b, kv head, KV tile of `kv-tile` keys) the tile's dK
    and dV accumulate in tile-sized f32 buffers while the loops visit the
    query heads of the group and the q-tiles of `q-tile` rows that can see
    the tile (a q-tile whose visible KV range, from the structured masks,
    misses the tile is skipped; mask code runs only on blocks that are not
    fully visible); per query row p is recomputed from the forward's lse
    and dS from D over the tile's keys only (no row of scores longer than a
    tile), and dQ and the capture gradients accumulate in f32 workspaces.
    The sink rows are one tile per kv head, visited by every batch. RBF
    scores are computed as `-gamma |q - k|^2` directly (the backward needs
    `q - k` anyway). The per-element arithmetic (weights, dS, the score
    region's derivative, the kernel's terms, the postprocess) is shared
    with attn-lower-to-loops (`AttnCommon/AttentionGradCodegen.h`), and so
    are the refusals.

    An option out of range is an error before any op is visited.
    Precondition: no attn.attention or attn.attention_grad references a
    variant.
  }];
  let options = [
    Option<"qTile", "q-tile", "int64_t", /*default=*/"16",
           "Query rows per tile (1 to 65536)">,
    Option<"kvTile", "kv-tile", "int64_t", /*default=*/"32",
           "Keys per KV tile (1 to 65536); the learned sink rows are one "
           "tile of their own, whatever their number">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def AttnSelectKernelConfigPass
    : Pass<"attn-select-kernel-config", "::mlir::ModuleOp"> {
  let summary = "Choose, once per attn.attention or attn.attention_grad, "
                "how its GPU kernels are built (#attn.kernel_config)";
  let description = [{
    Decides for every attn.attention the instruction family (`mma.sync` or
    Hopper's `wgmma`), warps and m-tiles per CTA, the KV tile, the depth of
    the K/V ring, software pipelining and where RBF key norms come from, and
    records the decision as the discardable attribute `attn.kernel_config`
    (`#attn.kernel_config<...>`) on the op. `attn-to-nvgpu` reads only that
    attribute. An option other than 0 / `auto` forces its field; the rest
    follow the measured defaults (bench/NOTES.md, bench/sweep.py):

    - `mma=auto`: wgmma on sm_90a where the op allows it (head dims multiples
      of 64), else mma.sync;
    - wgmma, head dims up to 64: the pipelined loop, 64-key tiles, 4 stages;
    - wgmma, larger head dims: the plain loop; one CTA of two warpgroups with
      the largest KV tile (up to 128) whose ring fits in shared memory and 2
      stages, except for ops with per-element work beyond the softmax (a
      score region, a non-softmax normalization): two one-warpgroup CTAs per
      SM with 64-key tiles;
    - mma.sync: 4 warps of two m16 tiles (128 rows), 64-key tiles for head
      dims up to 64 (else 32), 3 stages;
    - RBF key norms on the tensor cores (`key_norms = mma`) for bf16 wgmma
      kernels whose scores feed a shift-invariant softmax untouched by a
      score region, with no sink rows; else f32 norms in shared memory;
    - attn.attention_grad (the backward kernels): 16 keys per warp
      (`block_n = 16 * warps`), 64-query steps (`block_m`), 2 stages of the
      Q/dO ring, no pipelining; wgmma on sm_90a where the head dims are
      multiples of 64, with two warpgroups (128 keys) where the plan fits in
      shared memory, else one; otherwise mma.sync with 8 warps where the dQ
      product splits the head dim in two (Dqk a multiple of 32) and the plan
      fits, else 4.

    Ops the GPU kernels cannot take, forced options they cannot honour and
    plans that exceed shared memory are diagnostics on the op. Ops that
    already carry a configuration keep it.
  }];
  let options = [
    Option<"chip", "chip", "std::string", /*default=*/"\"sm_90a\"",
           "GPU architecture (wgmma needs sm_90a)">,
    Option<"mma", "mma", "std::string", /*default=*/"\"auto\"",
           "Tensor-core instructions: `sync` (mma.sync, sm_80 and later), "
           "`wgmma` (sm_90a; head dims multiples of 64) or `auto` (wgmma "
           "wherever the op allows it on sm_90a, else mma.sync)">,
    Option<"mTiles", "m-tiles", "int64_t", /*default=*/"0",
           "16-row m-tiles per warp (1 or 2; 0: the default). With 2 each "
           "K/V fragment feeds two mma and Q is re-read from shared memory">,
    Option<"kvTile", "kv-tile", "int64_t", /*default=*/"0",
           "Keys per KV tile (a multiple of 16, at most 128; 0: the "
           "default)">,
    Option<"warps", "warps", "int64_t", /*default=*/"0",
           "Warps per CTA (1, 2, 4 or 8; with wgmma 4 or 8; 0: the "
           "default); the q-tile is 16 * m-tiles * warps rows">,
    Option<"stages", "stages", "int64_t", /*default=*/"0",
           "Depth of the K/V shared-memory ring (2 to 4; 0: the default)">,
    Option<"pipeline", "pipeline", "std::string", /*default=*/"\"auto\"",
           "wgmma: software-pipeline the KV loop (needs stages >= 3): `on`, "
           "`off` or `auto` (on for head dims up to 64)">,
    Option<"deterministic", "deterministic", "bool", /*default=*/"false",
           "attn.attention_grad: add to each dQ tile in a fixed CTA order, "
           "so that gradients are bitwise equal from run to run (refused "
           "for gradients still summed by atomics: floating captures read "
           "by the score region and sink rows; RBF scores with mma.sync)">,
  ];
}

def AttnToNVGPUPass : Pass<"attn-to-nvgpu", "::mlir::ModuleOp"> {
  let summary = "Generate tensor-core GPU kernels (gpu.func) for every "
                "attn.attention and attn.attention_grad";
  let description = [{
    For every attn.attention in the module, a `gpu.func` kernel in
    `gpu.module @attn_kernels`, named after the function that held the op,
    built as its `attn.kernel_config` attribute says (run
    `attn-select-kernel-config` first). The kernel runs the tiled online
    algorithm of `attn-to-flash` on tensor cores, assembled from the pieces
    of lib/Conversion/AttnToNVGPU: the kernel ABI, the shared-memory plan
    (the one place that defines the swizzle), the cp.async copy ring,
    mma.sync or wgmma fragments, the fragment-level online softmax (score
    region and mask code per accumulator element, mask code only on tiles
    that are not fully visible, hidden tiles never visited, exp2 domain), the
    plain or software-pipelined KV loop, and the RBF key-norm prologue
    kernel (`<name>_key_norms`).

    For every attn.attention_grad, the backward kernels in FlashAttention-2's
    order (lib/Conversion/AttnToNVGPU/BackwardKernel.cpp): `<name>_pre`
    (delta = rowsum(dO * O) - dlse, gamma |q|^2, the sink logits' gradient),
    `<name>` (one CTA per KV tile, kv head and batch: P and dS recomputed per
    element, the score region's derivative from ScoreModVJP, dK and dV in
    registers, dQ = dS.K into an f32 workspace: by per-element atomics with
    mma.sync, by one bulk reduction per query row from a shared-memory
    tile with wgmma; one more CTA column for learned sink rows), `<name>_post` (dQ converted)
    and `<name>_sinks` (the sink rows' gradients). Their entry of the launch
    description has `kind = "backward"` and lists its `results` in the op's
    order; results and workspaces filled by atomics are marked `zero`.

    Kernel arguments: q, k, v, o, lse (a workspace when the op has no LSE
    result), [sink_logits], [sink_key, sink_value], captures...,
    [key_norms], each a 1-D global memref (row-major contents), then the
    sizes B, Hq, Hkv, Sq, Sk, Ns as index values. The launch description
    (parameters, workspaces and the ordered list of launches with their
    grids as expressions of the sizes; docs/bundles.md) goes into the module
    attribute `attn.kernels`; the host functions that held the ops are
    erased. A host function that computes anything besides its attention
    ops is refused: the bundle would silently drop that work.

    Ops the kernel cannot take yet (f32 inputs, dynamic or non-multiple-of-16
    head dims, feature maps, region ops other than arith/math/tensor.extract)
    are refused by `attn-select-kernel-config` with a diagnostic naming the
    reason.
  }];
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
