//===- AttnToLoops.cpp - the naive meaning of attn.attention ----*- C++ -*-===//
//
// The executable definition of the dialect (docs/semantics.md), written for
// clarity rather than speed: for every (b, h, q_idx) it materializes the row
// of scores and the visibility of each key, computes the weights of the
// normalization, and multiplies them with V.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Passes.h"

#include "AttentionGradToLoops.h"
#include "attn/Conversion/AttnCommon/AttentionGradCodegen.h"
#include "attn/Conversion/AttnCommon/AttnCodegen.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include <limits>

#define DEBUG_TYPE "attn-lower-to-loops"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNLOWERTOLOOPSPASS
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

/// Emits the lowering of one op; returns its replacement values.
class ReferenceLowering {
public:
  ReferenceLowering(ImplicitLocOpBuilder &b, AttentionOp op)
      : b(b), e{b}, info(AttnOpInfo::get(b, op)),
        norm(info.spec.getNormalizationKind()) {}

  SmallVector<Value> emit();

private:
  /// The row for query (bIdx, h, i): returns the new (output, lse) tensors.
  SmallVector<Value> emitRow(Value bIdx, Value h, Value i, Value output,
                             Value lse);

  ImplicitLocOpBuilder &b;
  ScalarEmitter e;
  AttnOpInfo info;
  Normalization norm;
};

SmallVector<Value> ReferenceLowering::emit() {
  return emitOutputLoopNest(
      e, info, info.qLen,
      [&](Value bIdx, Value h, Value i, Value output, Value lse) {
        return emitRow(bIdx, h, i, output, lse);
      });
}

SmallVector<Value> ReferenceLowering::emitRow(Value bIdx, Value h, Value i,
                                              Value output, Value lse) {
  using FP = arith::CmpFPredicate;
  Type f32 = b.getF32Type();
  Value hk = e.divI(h, info.group);

  // Scores and visibility of the regular keys.
  Value scoresInit = tensor::EmptyOp::create(
      b, getAsOpFoldResult(ValueRange{info.kvLen}), f32);
  Value visInit = tensor::EmptyOp::create(
      b, getAsOpFoldResult(ValueRange{info.kvLen}), b.getI1Type());
  ValueRange row = e.forLoop(
      e.index(0), info.kvLen, {scoresInit, visInit, e.index(0)},
      [&](Value j, ValueRange a) -> SmallVector<Value> {
        Value s =
            emitKernelScore(e, info, bIdx, h, i, info.key, {bIdx, hk, j});
        s = emitScoreMod(e, info, s, bIdx, h, i, j);
        Value vis = emitVisible(e, info, bIdx, h, i, j);
        Value scores = tensor::InsertOp::create(b, s, a[0], j);
        Value visible = tensor::InsertOp::create(b, vis, a[1], j);
        Value count =
            e.addI(a[2], e.select(vis, e.index(1), e.index(0)));
        return {scores, visible, count};
      });
  Value scores = row[0], visible = row[1];
  Value numVisible = e.addI(row[2], info.numSinkRows);

  // Scores of the sink rows (no score region, never masked).
  Value sinkScores = tensor::EmptyOp::create(
      b, getAsOpFoldResult(ValueRange{info.numSinkRows}), f32);
  if (info.sinkKey)
    sinkScores = e.forLoop(e.index(0), info.numSinkRows, {sinkScores},
                           [&](Value r, ValueRange a) -> SmallVector<Value> {
                             Value s = emitKernelScore(e, info, bIdx, h, i,
                                                       info.sinkKey, {hk, r});
                             return {tensor::InsertOp::create(b, s, a[0], r)};
                           })[0];

  Value n = e.indexToF32(numVisible);
  Value factor = e.f32(1.0);
  if (norm == Normalization::scalable_softmax) {
    double ls = info.spec.getLengthScale()
                    ? info.spec.getLengthScale()->convertToDouble()
                    : 1.0;
    factor = e.mul(e.f32(ls), e.log(n));
  }
  auto score = [&](Value tensor, Value j) {
    return e.mul(e.loadF32(tensor, {j}), factor);
  };
  Value zero = e.f32(0.0);
  auto isVisible = [&](Value j) {
    return tensor::ExtractOp::create(b, visible, ValueRange{j}).getResult();
  };

  // `weight(s)` is the weight of a visible key with (scaled) score s.
  std::function<Value(Value)> weight;
  Value rowLse = zero;
  if (isSoftmaxFamily(norm)) {
    SmallVector<Value> extraLogits;
    if (info.sinkLogits)
      extraLogits.push_back(e.loadF32(info.sinkLogits, {h}));
    if (norm == Normalization::softmax1)
      extraLogits.push_back(zero);
    Value m = e.f32(kNegInf);
    for (Value c : extraLogits)
      m = e.maxF(m, c);
    m = e.forLoop(e.index(0), info.kvLen, {m},
                  [&](Value j, ValueRange a) -> SmallVector<Value> {
                    return {e.select(isVisible(j),
                                     e.maxF(a[0], score(scores, j)), a[0])};
                  })[0];
    m = e.forLoop(e.index(0), info.numSinkRows, {m},
                  [&](Value r, ValueRange a) -> SmallVector<Value> {
                    return {e.maxF(a[0], score(sinkScores, r))};
                  })[0];
    // A row with nothing to weigh keeps m = -inf; shift by 0 instead so that
    // exp(-inf - 0) = 0 rather than NaN.
    Value mSafe = e.select(e.cmpF(FP::OEQ, m, e.f32(kNegInf)), zero, m);
    Value z = zero;
    for (Value c : extraLogits)
      z = e.add(z, e.exp(e.sub(c, mSafe)));
    z = e.forLoop(e.index(0), info.kvLen, {z},
                  [&](Value j, ValueRange a) -> SmallVector<Value> {
                    Value p = e.exp(e.sub(score(scores, j), mSafe));
                    return {e.add(a[0], e.select(isVisible(j), p, zero))};
                  })[0];
    z = e.forLoop(e.index(0), info.numSinkRows, {z},
                  [&](Value r, ValueRange a) -> SmallVector<Value> {
                    return {e.add(a[0],
                                  e.exp(e.sub(score(sinkScores, r), mSafe)))};
                  })[0];
    Value invZ =
        e.select(e.cmpF(FP::OGT, z, zero), e.div(e.f32(1.0), z), zero);
    rowLse = e.add(mSafe, e.log(z));
    weight = [&, mSafe, invZ](Value s) {
      return e.mul(e.exp(e.sub(s, mSafe)), invZ);
    };
  } else {
    switch (norm) {
    case Normalization::sigmoid: {
      double bias =
          info.spec.getBias() ? info.spec.getBias()->convertToDouble() : 0.0;
      weight = [&, bias](Value s) {
        Value x = e.add(s, e.f32(bias));
        return e.div(e.f32(1.0), e.add(e.f32(1.0), e.exp(e.sub(zero, x))));
      };
      break;
    }
    case Normalization::relu:
      weight = [&](Value s) { return e.maxF(s, zero); };
      break;
    case Normalization::relu2:
      weight = [&](Value s) {
        Value r = e.maxF(s, zero);
        return e.mul(r, r);
      };
      break;
    case Normalization::none:
      weight = [&](Value s) { return s; };
      break;
    case Normalization::mean:
      rowLse = e.log(n);
      weight = [&, n](Value) { return e.div(e.f32(1.0), n); };
      break;
    default:
      llvm_unreachable("softmax family handled above");
    }
  }

  // Weights, then the weighted sum of the value rows.
  Value weightsInit = tensor::EmptyOp::create(
      b, getAsOpFoldResult(ValueRange{info.kvLen}), f32);
  Value weights = e.forLoop(
      e.index(0), info.kvLen, {weightsInit},
      [&](Value j, ValueRange a) -> SmallVector<Value> {
        Value w = e.select(isVisible(j), weight(score(scores, j)), zero);
        return {tensor::InsertOp::create(b, w, a[0], j)};
      })[0];
  Value sinkWeights = tensor::EmptyOp::create(
      b, getAsOpFoldResult(ValueRange{info.numSinkRows}), f32);
  if (info.sinkKey)
    sinkWeights = e.forLoop(
        e.index(0), info.numSinkRows, {sinkWeights},
        [&](Value r, ValueRange a) -> SmallVector<Value> {
          return {tensor::InsertOp::create(b, weight(score(sinkScores, r)),
                                           a[0], r)};
        })[0];

  // A key the query cannot see adds nothing, whatever its value row holds:
  // the term is selected away, not multiplied by a zero weight (0 * NaN is
  // NaN; packed documents and paged caches hold garbage there).
  Value newOutput = e.forLoop(
      e.index(0), info.headDimV, {output},
      [&](Value d, ValueRange a) -> SmallVector<Value> {
        Value acc = e.forLoop(
            e.index(0), info.kvLen, {zero},
            [&](Value j, ValueRange s) -> SmallVector<Value> {
              Value w = e.loadF32(weights, {j});
              Value x = e.loadF32(info.value, {bIdx, hk, j, d});
              return {e.select(isVisible(j), e.add(s[0], e.mul(w, x)), s[0])};
            })[0];
        if (info.sinkValue)
          acc = e.forLoop(e.index(0), info.numSinkRows, {acc},
                          [&](Value r, ValueRange s) -> SmallVector<Value> {
                            Value w = e.loadF32(sinkWeights, {r});
                            Value x = e.loadF32(info.sinkValue, {hk, r, d});
                            return {e.add(s[0], e.mul(w, x))};
                          })[0];
        if (!info.elementType.isF32())
          acc = arith::TruncFOp::create(b, info.elementType, acc);
        return {tensor::InsertOp::create(b, acc, a[0],
                                         ValueRange{bIdx, h, i, d})};
      })[0];
  Value newLse =
      tensor::InsertOp::create(b, rowLse, lse, ValueRange{bIdx, h, i});
  return {newOutput, newLse};
}

struct AttnLowerToLoopsPass final
    : attn::impl::AttnLowerToLoopsPassBase<AttnLowerToLoopsPass> {
  using Base::Base;

  void runOnOperation() override {
    // One replacement per result: the LSE only when the op returns it.
    if (failed(replaceAttentionOps(
            getOperation(), [](ImplicitLocOpBuilder &b, AttentionOp op) {
              return ReferenceLowering(b, op).emit();
            })) ||
        failed(replaceAttentionGradOps(getOperation(), emitAttentionGradLoops)))
      signalPassFailure();
  }
};

} // namespace
