//===- FragmentSoftmax.cpp - the online algorithm on fragments --*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/FragmentSoftmax.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

using P = arith::CmpIPredicate;

/// The online algorithm in the exp2 domain on the special-function unit.
static OnlineSoftmaxOptions gpuOptions(KernelContext &k,
                                       VariantSpecOpInterface spec) {
  OnlineSoftmaxOptions options = OnlineSoftmaxOptions::get(spec);
  options.log2Domain = true;
  options.math.exp2 = [&k](Value x) { return k.exp2(x); };
  options.math.rcp = [&k](Value x) { return k.rcp(x); };
  return options;
}

FragmentSoftmax::FragmentSoftmax(KernelContext &k, FragmentShape shape,
                                 VariantSpecOpInterface spec)
    : k(k), shape(shape), core(k.e, gpuOptions(k, spec)) {}

std::pair<Value, Value> FragmentSoftmax::initialState(Value sinkLogit) {
  RowStats stats = core.initialStats(sinkLogit);
  if (!core.tracksMax())
    return {stats.max, stats.norm};
  Value t4 = k.e.remI(k.e.remI(k.threadId(), k.idx(32)), k.idx(4));
  return {stats.max, k.e.select(k.e.cmpI(P::eq, t4, k.idx(0)), stats.norm,
                                k.f32(0.0))};
}

TileWeights FragmentSoftmax::weights(
    function_ref<ScoredElement(int64_t mi, int64_t nt, int64_t k)> element,
    ArrayRef<Value> curM, ArrayRef<Value> curL, const Exp2Scale &scale) {
  ScalarEmitter &e = k.e;
  const int64_t rows = shape.rows();
  const bool softmax = core.tracksMax();
  const bool mean = core.kind() == Normalization::mean;
  // Per element: the masked logit (softmax family; its row maximum) or the
  // masked weight (its row count for mean).
  SmallVector<Value> p(shape.sElements());
  SmallVector<Value> rowMax(rows,
                            k.f32(-std::numeric_limits<double>::infinity()));
  SmallVector<Value> rowSum(rows, k.f32(0.0));
  for (int64_t mi = 0; mi < shape.mTiles; ++mi)
    for (int64_t nt = 0; nt < shape.nTiles; ++nt)
      for (int64_t i = 0; i < 4; ++i) {
        int64_t r = FragmentShape::rowOf(mi, i);
        int64_t at = (mi * shape.nTiles + nt) * 4 + i;
        ScoredElement s = element(mi, nt, i);
        if (softmax) {
          Value x = scale.rowFactors.empty()
                        ? s.x
                        : e.mul(s.x, scale.rowFactors[r]);
          p[at] = core.maskedValue(s.visible, x);
          rowMax[r] = e.maxF(rowMax[r], p[at]);
          continue;
        }
        p[at] = core.maskedValue(s.visible, core.elementWeight(s.x));
        if (mean)
          rowSum[r] = e.add(rowSum[r], p[at]);
      }
  TileWeights w{p, SmallVector<Value>(curM), SmallVector<Value>(curL),
                SmallVector<Value>(rows, k.f32(1.0)), e.i1(false)};
  if (!softmax) {
    for (int64_t r = 0; r < rows; ++r)
      w.nextL[r] = core.updateNorm(curL[r], w.alpha[r], rowSum[r]);
    return w;
  }
  // Deferred scale: the maximum of the raw values times the factor.
  const bool deferred = scale.deferred != 1.0;
  SmallVector<Value> shift(rows);
  for (int64_t r = 0; r < rows; ++r) {
    for (int32_t off : {1, 2})
      rowMax[r] = e.maxF(rowMax[r], k.shuffleXor(rowMax[r], off));
    if (deferred)
      rowMax[r] = e.mul(rowMax[r], k.f32(scale.deferred));
    RowRescale rs = core.rescale(curM[r], rowMax[r]);
    shift[r] = rs.shift;
    w.alpha[r] = rs.alpha;
    w.nextM[r] = rs.max;
  }
  for (int64_t mi = 0; mi < shape.mTiles; ++mi)
    for (int64_t nt = 0; nt < shape.nTiles; ++nt)
      for (int64_t i = 0; i < 4; ++i) {
        int64_t r = FragmentShape::rowOf(mi, i);
        int64_t at = (mi * shape.nTiles + nt) * 4 + i;
        Value t = deferred ? e.mul(w.p[at], k.f32(scale.deferred)) : w.p[at];
        w.p[at] = core.probability(t, shift[r]);
        rowSum[r] = e.add(rowSum[r], w.p[at]);
      }
  for (int64_t r = 0; r < rows; ++r)
    w.nextL[r] = core.updateNorm(curL[r], w.alpha[r], rowSum[r]);
  for (int64_t r = 0; r < rows; ++r)
    w.changed = e.orI(w.changed, e.cmpF(arith::CmpFPredicate::ONE,
                                        w.nextM[r], curM[r]));
  return w;
}

SmallVector<Value> FragmentSoftmax::rescale(ArrayRef<Value> oldO,
                                            ArrayRef<Value> alpha,
                                            Value changed) {
  if (!core.tracksMax())
    return SmallVector<Value>(oldO);
  Value anyLane = NVVM::VoteSyncOp::create(
      k.b, k.b.getI1Type(), arith::ConstantIntOp::create(k.b, -1, 32),
      changed, NVVM::VoteSyncKind::any);
  return k.ifElse(
      anyLane,
      [&]() {
        SmallVector<Value> o(shape.oElements());
        for (int64_t mi = 0; mi < shape.mTiles; ++mi)
          for (int64_t dt = 0; dt < shape.dTiles; ++dt)
            for (int64_t i = 0; i < 4; ++i) {
              int64_t at = (mi * shape.dTiles + dt) * 4 + i;
              o[at] = k.e.mul(oldO[at], alpha[FragmentShape::rowOf(mi, i)]);
            }
        return o;
      },
      [&]() { return SmallVector<Value>(oldO); });
}

Value FragmentSoftmax::quadSum(Value l) {
  for (int32_t off : {1, 2})
    l = k.e.add(l, k.shuffleXor(l, off));
  return l;
}

Value FragmentSoftmax::outputScale(Value l) { return core.outputScale(l); }

Value FragmentSoftmax::logSumExp(Value m, Value l, Value droppedLogit) {
  return core.logSumExp(m, l, droppedLogit);
}
