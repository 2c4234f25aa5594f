//===- KeyNormPrologue.h - RBF key norms ------------------------*- C++ -*-===//
//
// RBF scores -gamma |q - k|^2 need |k|^2 per key. A prologue kernel
// computes it once per key (instead of once per q-tile and key) into a
// workspace; the main kernel loads each KV tile's norms with the tile,
// either as f32 values subtracted per accumulator element or, in bf16 wgmma
// kernels, as three bf16 parts that enter the S chain as one extra k-step.
// Learned sink rows, which the prologue does not see, get their norms
// computed in the main kernel.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_KEYNORMPROLOGUE_H
#define ATTN_CONVERSION_ATTNTONVGPU_KEYNORMPROLOGUE_H

#include "attn/Conversion/AttnToNVGPU/SharedMemoryPlan.h"

#include <string>

namespace mlir::attn::kernel {

/// The workspace of the norms: [B * Hkv, ceil(Sk / blockN) * blockN] rows
/// (padded to whole tiles: every tile's load is in bounds and aligned) of
/// one f32, or (`parts`) of 8 elements: the bf16 parts hi, mid, lo of the
/// norm and 5 zeros.
std::string keyNormWorkspaceElements(int64_t blockN, bool parts);

/// Builds `<name>_key_norms` (blocks of `blockN` keys, one thread a key):
/// factor * |k_j|^2 of every key into the workspace, 0 on padding rows.
/// Returns its launch description.
DictionaryAttr buildKeyNormKernel(gpu::GPUModuleOp gpuModule, Location loc,
                                  StringRef name, Type elementType,
                                  int64_t headDim, int64_t blockN,
                                  double factor, bool parts);

/// Loads the norms of the keys [firstKey, firstKey + dst.rows) of the
/// workspace `norms` into stage `stage` of `dst` (a Rows tile of f32, or a
/// CoreMatrix tile of parts) with cp.async, in the current commit group.
void loadTileKeyNorms(KernelContext &k, Value norms, const SmemTile &dst,
                      Value stage, Value firstKey);

/// The constant rows of the norm k-step, written once: Q's
/// [-1, -1, -1, 0...] and the zero upper halves of every stage's key rows
/// (published by the kernel's first barrier).
void writeNormKStepConstants(KernelContext &k, const SmemTile &normsQ,
                             const SmemTile &normsK);

/// factor * |k|^2 of the rows of stage `stage` of `keys` into `dst` (a Rows
/// tile): four lanes share a key, each summing a quarter, combined with two
/// shuffles; then a barrier.
void computeTileKeyNorms(KernelContext &k, const SmemTile &keys,
                         const SmemTile &dst, Value stage, double factor);

/// factor * |x|^2 of row `row` of the one-stage tile `tile` (its `cols`
/// elements summed in f32 by one thread).
Value scaledRowNorm(KernelContext &k, const SmemTile &tile, Value row,
                    int64_t cols, double factor);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_KEYNORMPROLOGUE_H
