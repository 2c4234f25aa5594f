//===- MmaSync.h - warp-level mma.sync fragments ----------------*- C++ -*-===//
//
// The sm_80 instruction family: ldmatrix from padded shared-memory tiles
// and mma.sync.m16n8k16 with f32 accumulators, for the products a kernel
// needs (A.B^T with A from shared memory or registers, and P.V with P from
// the accumulators of a previous product).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_MMASYNC_H
#define ATTN_CONVERSION_ATTNTONVGPU_MMASYNC_H

#include "attn/Conversion/AttnToNVGPU/SharedMemoryPlan.h"

namespace mlir::attn::kernel {

class MmaSyncFragments {
public:
  explicit MmaSyncFragments(KernelContext &k);

  /// ldmatrix of `numTiles` 8x8 matrices; the i32 registers (or f16 pairs)
  /// of the fragment.
  SmallVector<Value> ldmatrix(Value smem, ValueRange indices, int numTiles,
                              bool transpose);
  /// D = A.B + C for one m16n8k16 tile (4 f32 per thread).
  SmallVector<Value> mma(ArrayRef<Value> a, ArrayRef<Value> b,
                         ArrayRef<Value> c);
  /// The A fragment (m16k16) of rows [warpRow0 + 16 mi, +16), columns
  /// [16 ks, +16) of the one-stage padded tile `a`.
  SmallVector<Value> loadA(const SmemTile &a, Value warpRow0, int64_t mi,
                           int64_t ks);
  /// S = A.B^T for `mTiles` m16 tiles and `nTiles` n8 tiles (rows of B in
  /// stage `stage` of `bTile`), reduced over `kSteps` k-steps of 16; the
  /// result is laid out s[(mi * nTiles + nt) * 4 + k]. One ldmatrix.x4 of B
  /// feeds two n-tiles for every m-tile.
  SmallVector<Value>
  productABt(function_ref<SmallVector<Value>(int64_t mi, int64_t ks)> aOf,
             const SmemTile &bTile, Value stage, int64_t mTiles,
             int64_t nTiles, int64_t kSteps);
  /// O += P.V: P as accumulators of `mTiles` x `nTiles` n8 tiles (repacked
  /// as A fragments), V rows [0, 8 nTiles) of stage `stage` of `vTile`
  /// read transposed, O as o[(mi * dTiles + dt) * 4 + k]. One
  /// ldmatrix.x4.trans of V feeds two d-tiles.
  void accumulatePV(MutableArrayRef<Value> o, ArrayRef<Value> p,
                    const SmemTile &vTile, Value stage, int64_t mTiles,
                    int64_t nTiles, int64_t dTiles);
  /// O += A.B for `mTiles` m16 tiles of A (`aOf(mi, kk)`: the A fragment
  /// of m-tile mi, k-step kk of 16) and B = rows [0, 16 kSteps) of stage
  /// `stage` of `bTile` (rows are the reduction, read transposed), O as
  /// o[(mi * dTiles + dt) * 4 + k]; the columns of B start at `firstCol`.
  /// accumulatePV with A from registers.
  void accumulateAB(
      MutableArrayRef<Value> o,
      function_ref<SmallVector<Value>(int64_t mi, int64_t kk)> aOf,
      const SmemTile &bTile, Value stage, int64_t mTiles, int64_t kSteps,
      int64_t dTiles, Value firstCol = Value());

private:
  /// acc[(mi * tiles + first + half) * 4 + k] += A(mi) . B(half) for the
  /// two n8 tiles `first`, `first` + 1 of one ldmatrix.x4 of B.
  void accumulatePair(MutableArrayRef<Value> acc,
                      ArrayRef<SmallVector<Value>> aFrags,
                      ArrayRef<Value> bFrags, int64_t tiles, int64_t first);

  KernelContext &k;
  NVVM::MMATypes type;
};

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_MMASYNC_H
