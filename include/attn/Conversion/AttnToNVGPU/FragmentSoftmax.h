//===- FragmentSoftmax.h - the online algorithm on fragments ----*- C++ -*-===//
//
// The online normalization of attn-to-flash on tensor-core accumulators (the
// per-row arithmetic is AttnCommon's OnlineSoftmax, in the exp2 domain on the
// special-function unit; this file adds the fragment layout):
// each thread holds, per m16 tile, two rows (lane/4 and lane/4 + 8) of
// 2 * nTiles columns; row statistics reduce over the 4 lanes of a quad with
// shuffles. The softmax family works in the exp2 domain (ex2.approx.ftz),
// with the scale to that domain either applied per element or deferred
// past the row maximum (one multiply per row instead of one per element).
// The other normalizations weight each element directly.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_FRAGMENTSOFTMAX_H
#define ATTN_CONVERSION_ATTNTONVGPU_FRAGMENTSOFTMAX_H

#include "attn/Conversion/AttnCommon/OnlineSoftmax.h"
#include "attn/Conversion/AttnToNVGPU/KernelContext.h"

namespace mlir::attn::kernel {

/// The accumulator tiles of one warp: `mTiles` m16 tiles of S (`nTiles` n8
/// tiles, S as s[(mi * nTiles + nt) * 4 + k]) and of O (`dTiles` n8 tiles).
struct FragmentShape {
  int64_t mTiles, nTiles, dTiles;
  /// Rows per thread: r = 2 * mi + half.
  int64_t rows() const { return 2 * mTiles; }
  int64_t sElements() const { return mTiles * nTiles * 4; }
  int64_t oElements() const { return mTiles * dTiles * 4; }
  /// The row of accumulator element k (0-3) of m-tile mi.
  static int64_t rowOf(int64_t mi, int64_t k) { return 2 * mi + k / 2; }
};

/// One element of a tile, as the kernel scores it: the logit (or, for the
/// non-softmax kinds, the score) and whether the key is visible.
struct ScoredElement {
  Value x, visible;
};

/// How softmax logits reach the exp2 domain: multiplied by `deferred` (a
/// positive constant; 1: they are there already) after the row maximum, or
/// by the per-row `rowFactors` before it (scalable softmax).
struct Exp2Scale {
  double deferred = 1.0;
  ArrayRef<Value> rowFactors;
};

/// The weights of one tile and the new row statistics.
struct TileWeights {
  SmallVector<Value> p, nextM, nextL, alpha;
  Value changed; ///< Some row of this lane has a new maximum.
};

class FragmentSoftmax {
public:
  FragmentSoftmax(KernelContext &k, FragmentShape shape,
                  VariantSpecOpInterface spec);

  /// The initial (m, l) of a row: m from the logits that carry no value
  /// (`sinkLogit` in natural units, may be null; softmax1's 0), l their
  /// exp2-sum counted once per quad (lane % 4 == 0: l is summed over the
  /// quad at the end).
  std::pair<Value, Value> initialState(Value sinkLogit);
  /// The weights of a tile: `element(nt, k, r)` scores accumulator element
  /// (mi, nt, k) of row r (called in order); curM, curL: the statistics.
  TileWeights
  weights(function_ref<ScoredElement(int64_t mi, int64_t nt, int64_t k)>
              element,
          ArrayRef<Value> curM, ArrayRef<Value> curL, const Exp2Scale &scale);
  /// O rescaled by alpha when some row of the warp has a new maximum (a
  /// warp-uniform branch: once the maxima settle the multiplies are
  /// skipped).
  SmallVector<Value> rescale(ArrayRef<Value> o, ArrayRef<Value> alpha,
                             Value changed);
  /// The normalizer of a row summed over its quad.
  Value quadSum(Value l);
  /// The factor of the output row: 1/l (0 for rows that saw nothing) for
  /// the kinds that divide, else 1.
  Value outputScale(Value l);
  /// The natural-log LSE of a row from m (exp2 domain) and l (softmax
  /// family, less `droppedLogit` on rows that saw a key; log l for mean; 0
  /// for the rest).
  Value logSumExp(Value m, Value l, Value droppedLogit = Value());

private:
  KernelContext &k;
  FragmentShape shape;
  OnlineSoftmax core;
};

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_FRAGMENTSOFTMAX_H
