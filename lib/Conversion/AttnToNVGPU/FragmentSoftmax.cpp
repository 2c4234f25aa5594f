//===- FragmentSoftmax.cpp - the online algorithm on fragments --*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/FragmentSoftmax.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

using P = arith::CmpIPredicate;
using FP = arith::CmpFPredicate;

static const double kLog2e = 1.0 / std::log(2.0);
static const double kNegInf = -std::numeric_limits<double>::infinity();

FragmentSoftmax::FragmentSoftmax(KernelContext &k, FragmentShape shape,
                                 Normalization norm, double sigmoidBias)
    : k(k), shape(shape), norm(norm), softmax(isSoftmaxFamily(norm)),
      sigmoidBias(sigmoidBias) {}

std::pair<Value, Value>
FragmentSoftmax::initialState(ArrayRef<Value> extraLogits) {
  ScalarEmitter &e = k.e;
  Value zero = k.f32(0.0);
  Value m0 = k.f32(kNegInf), l0 = zero;
  if (!softmax)
    return {m0, l0};
  for (Value c : extraLogits)
    m0 = e.maxF(m0, c);
  Value shift = e.select(e.cmpF(FP::OEQ, m0, k.f32(kNegInf)), zero, m0);
  for (Value c : extraLogits)
    l0 = e.add(l0, k.exp2(e.sub(c, shift)));
  Value t4 = e.remI(e.remI(k.threadId(), k.idx(32)), k.idx(4));
  l0 = e.select(e.cmpI(P::eq, t4, k.idx(0)), l0, zero);
  return {m0, l0};
}

Value FragmentSoftmax::directWeight(Value x) {
  ScalarEmitter &e = k.e;
  switch (norm) {
  case Normalization::sigmoid: {
    Value z = e.add(x, k.f32(sigmoidBias));
    return k.rcp(e.add(k.f32(1.0), k.exp2(e.mul(z, k.f32(-kLog2e)))));
  }
  case Normalization::relu:
    return e.maxF(x, k.f32(0.0));
  case Normalization::relu2: {
    Value rl = e.maxF(x, k.f32(0.0));
    return e.mul(rl, rl);
  }
  case Normalization::none:
    return x;
  case Normalization::mean:
    return k.f32(1.0);
  default:
    llvm_unreachable("softmax-family kinds have no direct weight");
  }
}

TileWeights FragmentSoftmax::weights(
    function_ref<ScoredElement(int64_t mi, int64_t nt, int64_t k)> element,
    ArrayRef<Value> curM, ArrayRef<Value> curL, const Exp2Scale &scale) {
  ScalarEmitter &e = k.e;
  const int64_t rows = shape.rows();
  Value zero = k.f32(0.0), negInf = k.f32(kNegInf);
  SmallVector<Value> p(shape.sElements());
  SmallVector<Value> rowMax(rows, negInf), rowCount(rows, zero);
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
          p[at] = e.select(s.visible, x, negInf);
          rowMax[r] = e.maxF(rowMax[r], p[at]);
          continue;
        }
        p[at] = e.select(s.visible, directWeight(s.x), zero);
        if (norm == Normalization::mean)
          rowCount[r] = e.add(rowCount[r], p[at]);
      }
  TileWeights w{p, SmallVector<Value>(curM), SmallVector<Value>(curL),
                SmallVector<Value>(rows, k.f32(1.0)), e.i1(false)};
  if (norm == Normalization::mean)
    for (int64_t r = 0; r < rows; ++r)
      w.nextL[r] = e.add(curL[r], rowCount[r]);
  if (!softmax)
    return w;
  const bool deferred = scale.deferred != 1.0;
  SmallVector<Value> shift(rows), sum(rows, zero);
  for (int64_t r = 0; r < rows; ++r) {
    for (int32_t off : {1, 2})
      rowMax[r] = e.maxF(rowMax[r], k.shuffleXor(rowMax[r], off));
    if (deferred)
      rowMax[r] = e.mul(rowMax[r], k.f32(scale.deferred));
    Value mNew = e.maxF(curM[r], rowMax[r]);
    shift[r] = e.select(e.cmpF(FP::OEQ, mNew, negInf), zero, mNew);
    w.alpha[r] = k.exp2(e.sub(curM[r], shift[r]));
    w.nextM[r] = mNew;
  }
  for (int64_t mi = 0; mi < shape.mTiles; ++mi)
    for (int64_t nt = 0; nt < shape.nTiles; ++nt)
      for (int64_t i = 0; i < 4; ++i) {
        int64_t r = FragmentShape::rowOf(mi, i);
        int64_t at = (mi * shape.nTiles + nt) * 4 + i;
        Value t = deferred ? e.mul(w.p[at], k.f32(scale.deferred)) : w.p[at];
        w.p[at] = k.exp2(e.sub(t, shift[r]));
        sum[r] = e.add(sum[r], w.p[at]);
      }
  for (int64_t r = 0; r < rows; ++r)
    w.nextL[r] = e.add(e.mul(curL[r], w.alpha[r]), sum[r]);
  for (int64_t r = 0; r < rows; ++r)
    w.changed = e.orI(w.changed, e.cmpF(FP::ONE, w.nextM[r], curM[r]));
  return w;
}

SmallVector<Value> FragmentSoftmax::rescale(ArrayRef<Value> oldO,
                                            ArrayRef<Value> alpha,
                                            Value changed) {
  if (!softmax)
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

Value FragmentSoftmax::outputScale(Value l) {
  ScalarEmitter &e = k.e;
  if (!softmax && norm != Normalization::mean)
    return k.f32(1.0);
  Value zero = k.f32(0.0);
  return e.select(e.cmpF(FP::OGT, l, zero), e.div(k.f32(1.0), l), zero);
}

Value FragmentSoftmax::logSumExp(Value m, Value l) {
  ScalarEmitter &e = k.e;
  Value zero = k.f32(0.0);
  if (softmax) {
    Value shift = e.select(e.cmpF(FP::OEQ, m, k.f32(kNegInf)), zero, m);
    return e.add(e.mul(shift, k.f32(1.0 / kLog2e)), e.log(l));
  }
  if (norm == Normalization::mean)
    return e.log(l);
  return zero;
}
