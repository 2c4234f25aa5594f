//===- BackwardKernel.h - the backward attention kernels --------*- C++ -*-===//
//
// The kernels of an attn.attention_grad, in FlashAttention-2's structure,
// assembled from the pieces of this directory as the op's
// #attn.kernel_config says:
//
// 1. preprocess, one warp per query row: delta = rowsum(dO * O) - dlse (the
//    D of the softmax family), gamma |q|^2 for RBF scores, the sink
//    logits' gradient, and for mean and scalable softmax the row's count of
//    visible keys (the lanes split the keys the structured masks leave);
// 2. main, one CTA per (KV tile, kv head, batch): K and V resident; the
//    query tiles of every query head of the group (with their lse, delta
//    and gamma |q|^2) stream through the copy ring; S^T = K.Q^T and
//    dP^T = V.dO^T on the tensor cores, P and dS recomputed per element
//    (the score region's derivative from ScoreModVJP), dV += P^T.dO and
//    dK += dS^T.Q in registers, and dQ += dS.K with dS through shared
//    memory into an f32 workspace: mma.sync (sm_80) adds it by per-element
//    atomics; wgmma (sm_90a, a warpgroup per 64 keys, P^T and dS^T as
//    register A operands, K read MN-major for dQ) stages dQ in shared
//    memory and adds the tile by one bulk reduction (the workspace rows
//    padded like the tile's);
// 3. postprocess: dQ from the workspace into q's element type (and the
//    RBF row-sum term).
//
// The config's block_n is the KV tile of a CTA (16 keys per warp),
// block_m the query tile of one step.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_BACKWARDKERNEL_H
#define ATTN_CONVERSION_ATTNTONVGPU_BACKWARDKERNEL_H

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include <optional>
#include <string>

namespace mlir::attn::kernel {

/// The facts of an attention_grad that shape its kernels (shared by the
/// main kernel and the pre/postprocess kernels).
struct BackwardFacts {
  Type elt;
  int64_t dqk, dv;
  Normalization norm;
  bool softmax, rbf, hasScoreMod, sinkLogits, gradLse;
  /// Structured masks or a mask region: the query-tile range is searched
  /// (and its CTA reduction needs a scratch tile).
  bool searchesTiles;
  /// Mean and scalable softmax: the weights need each query's count n of
  /// visible keys (sink rows included); the preprocess kernel counts them
  /// and stores the row's factor (`row_factor`: 1 / n for mean,
  /// length_scale * log n for scalable softmax; 0 where n = 0).
  bool countsKeys;
  double scale, gamma, bias, lengthScale;
  /// The factor of dS in both products: the dot-product scale, or 2 gamma
  /// for RBF scores.
  double kernelFactor() const { return rbf ? 2.0 * gamma : scale; }

  static BackwardFacts get(AttentionGradOp op);
};

/// Whether every mask of `spec` is a positional kind whose visible keys per
/// query are exactly emitKVRange's intervals, growing with the queries
/// (causal, sliding windows, sink tokens, chunks, prefix-LM; no mask
/// region): the visible-key counts and the deterministic order's adders
/// then follow from the intervals alone.
bool masksAreIntervals(VariantSpecOpInterface spec);

/// Elements per row of the f32 dQ workspace (`dq_accum`): with wgmma the
/// main kernel stages a query tile's dQ rows in shared memory, padding
/// included, and adds the whole tile by one bulk reduction, so the
/// workspace rows carry the same padding (never read); dqk with mma.sync.
int64_t dqAccumRowElements(const BackwardFacts &f, MmaKind mma);

/// Why the GPU backward kernels cannot take `op`, or nullopt.
std::optional<std::string> backwardUnsupportedReason(AttentionGradOp op);

/// The dynamic shared memory of the main backward kernel: K, V, the Q and
/// dO rings of `stages` with their per-query values, the dS tile (padded
/// for mma.sync, swizzled for wgmma) and, for wgmma, the f32 dQ tile.
int64_t backwardSharedMemoryBytes(AttentionGradOp op, MmaKind mma,
                                  int64_t blockM, int64_t blockN,
                                  int64_t stages);

/// The main kernel `name` alone, with its launch (a failure after a
/// diagnostic on the op).
FailureOr<DictionaryAttr> buildBackwardMainKernel(AttentionGradOp op,
                                                  KernelConfigAttr config,
                                                  gpu::GPUModuleOp gpuModule,
                                                  StringRef name);

/// Builds the kernels of `op` (`name`_pre, `name`, `name`_post) into
/// `gpuModule` as `config` says; returns the op's entry of the launch
/// description (docs/bundles.md), or a failure after a diagnostic.
FailureOr<DictionaryAttr> buildBackwardKernels(AttentionGradOp op,
                                    KernelConfigAttr config,
                                    gpu::GPUModuleOp gpuModule,
                                    StringRef name);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_BACKWARDKERNEL_H
