//===- AttentionGradCodegen.cpp - scalar code of the backward ---*- C++ -*-===//

#include "attn/Conversion/AttnCommon/AttentionGradCodegen.h"

#include "attn/Conversion/AttnCommon/ScoreModVJP.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;

using FP = arith::CmpFPredicate;

static constexpr double kNegInf = -std::numeric_limits<double>::infinity();

//===----------------------------------------------------------------------===//
// GradAccumulators
//===----------------------------------------------------------------------===//

SmallVector<Value> GradAccumulators::values() const {
  SmallVector<Value> result;
  for (Value v : {dq, dk, dv, dSinkLogits, dSinkKey, dSinkValue})
    if (v)
      result.push_back(v);
  for (Value v : dCaptures)
    if (v)
      result.push_back(v);
  return result;
}

GradAccumulators GradAccumulators::with(ValueRange values) const {
  GradAccumulators result = *this;
  unsigned next = 0;
  auto take = [&](Value &slot) {
    if (slot)
      slot = values[next++];
  };
  for (Value *slot : {&result.dq, &result.dk, &result.dv, &result.dSinkLogits,
                      &result.dSinkKey, &result.dSinkValue})
    take(*slot);
  for (Value &slot : result.dCaptures)
    take(slot);
  assert(next == values.size() && "accumulator layout mismatch");
  return result;
}

//===----------------------------------------------------------------------===//
// Refusals and the driver
//===----------------------------------------------------------------------===//

LogicalResult mlir::attn::verifyLowerableGrad(AttentionGradOp op) {
  if (failed(verifyInstantiated(op)))
    return failure();
  Region &scoreMod = op.getScoreMod();
  if (scoreMod.empty())
    return success();
  Operation *bad = findUndifferentiableScoreModOp(scoreMod);
  if (!bad)
    return success();
  InFlightDiagnostic diag = op.emitOpError()
                            << "cannot be lowered: its score_mod computes the "
                               "score through '"
                            << bad->getName()
                            << "', which the backward cannot differentiate";
  diag.attachNote(bad->getLoc()) << "the '" << bad->getName() << "' is here";
  return diag;
}

LogicalResult mlir::attn::replaceAttentionGradOps(
    Operation *root,
    function_ref<SmallVector<Value>(ImplicitLocOpBuilder &, AttentionGradOp)>
        lower) {
  SmallVector<AttentionGradOp> ops;
  root->walk([&](AttentionGradOp op) { ops.push_back(op); });
  for (AttentionGradOp op : ops)
    if (failed(verifyLowerableGrad(op)))
      return failure();
  for (AttentionGradOp op : ops) {
    ImplicitLocOpBuilder b(op.getLoc(), op);
    op->replaceAllUsesWith(lower(b, op));
    op->erase();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Accumulators and results
//===----------------------------------------------------------------------===//

AttentionGradCodegen::AttentionGradCodegen(ScalarEmitter &e,
                                           const AttnOpInfo &info,
                                           AttentionGradOp op)
    : e(e), info(info), op(op),
      online(e, OnlineSoftmaxOptions::get(info.spec)),
      normKind(info.spec.getNormalizationKind()) {}

Value AttentionGradCodegen::emitTensor(
    RankedTensorType type, ArrayRef<Value> dims,
    function_ref<Value(ValueRange indices)> element) {
  Value init = tensor::EmptyOp::create(e.b, getAsOpFoldResult(ValueRange(dims)),
                                       type.getElementType());
  SmallVector<Value> indices;
  std::function<Value(unsigned, Value)> nest = [&](unsigned k,
                                                   Value t) -> Value {
    if (k == dims.size())
      return tensor::InsertOp::create(e.b, element(indices), t, indices);
    return e.forLoop(e.index(0), dims[k], {t},
                     [&](Value iv, ValueRange a) -> SmallVector<Value> {
                       indices.push_back(iv);
                       Value r = nest(k + 1, a[0]);
                       indices.pop_back();
                       return {r};
                     })[0];
  };
  Value result = nest(0, init);
  if (result.getType() != type)
    result = tensor::CastOp::create(e.b, type, result);
  return result;
}

Value AttentionGradCodegen::emitZerosLike(Value like) {
  auto type = cast<RankedTensorType>(like.getType());
  Value zero = e.f32(0.0);
  return emitTensor(RankedTensorType::get(type.getShape(), e.b.getF32Type()),
                    emitDims(e.b, like), [&](ValueRange) { return zero; });
}

GradAccumulators AttentionGradCodegen::emitZeroAccumulators() {
  GradAccumulators acc;
  acc.dq = emitZerosLike(info.query);
  acc.dk = emitZerosLike(info.key);
  acc.dv = emitZerosLike(info.value);
  if (info.sinkLogits)
    acc.dSinkLogits = emitZerosLike(info.sinkLogits);
  if (info.sinkKey) {
    acc.dSinkKey = emitZerosLike(info.sinkKey);
    acc.dSinkValue = emitZerosLike(info.sinkValue);
  }
  for (Value capture : info.captures)
    acc.dCaptures.push_back(
        AttentionGradOp::isDifferentiableCapture(capture.getType())
            ? emitZerosLike(capture)
            : Value());
  return acc;
}

/// `x` (f32) converted to the float type `type`.
static Value castFloat(ScalarEmitter &e, Value x, Type type) {
  auto to = cast<FloatType>(type);
  if (to.getWidth() < 32)
    return arith::TruncFOp::create(e.b, to, x);
  if (to.getWidth() > 32)
    return arith::ExtFOp::create(e.b, to, x);
  return x;
}

Value AttentionGradCodegen::emitResult(
    Value acc, Type resultType,
    function_ref<Value(ValueRange, Value)> scale) {
  auto type = cast<RankedTensorType>(resultType);
  if (!scale && type.getElementType().isF32())
    return acc.getType() == type
               ? acc
               : tensor::CastOp::create(e.b, type, acc).getResult();
  return emitTensor(type, emitDims(e.b, acc), [&](ValueRange idx) {
    Value x = tensor::ExtractOp::create(e.b, acc, idx);
    if (scale)
      x = scale(idx, x);
    return castFloat(e, x, type.getElementType());
  });
}

Value AttentionGradCodegen::kernelFactor() {
  if (info.spec.getScoreKind() == ScoreKind::rbf)
    return e.mul(e.f32(2.0), emitGamma(e, info));
  return emitScale(e, info);
}

SmallVector<Value>
AttentionGradCodegen::emitResults(const GradAccumulators &acc) {
  Value factor = kernelFactor();
  // dL/dx = factor * dL/dphi(x) * phi'(x), elementwise on the operand x.
  auto throughMap = [&](Value operand, FeatureMap map) {
    return [&, operand, map](ValueRange idx, Value x) {
      Value raw = e.loadF32(operand, idx);
      return e.mul(e.mul(x, factor), e.featureMapDerivative(raw, map));
    };
  };
  FeatureMap qMap = info.spec.getQFeatureMap();
  FeatureMap kMap = info.spec.getKFeatureMap();
  SmallVector<Value> results = {
      emitResult(acc.dq, op.getGradQuery().getType(),
                 throughMap(info.query, qMap)),
      emitResult(acc.dk, op.getGradKey().getType(), throughMap(info.key, kMap)),
      emitResult(acc.dv, op.getGradValue().getType())};
  if (Value r = op.getGradSinkLogits())
    results.push_back(emitResult(acc.dSinkLogits, r.getType()));
  if (Value r = op.getGradSinkKey()) {
    results.push_back(
        emitResult(acc.dSinkKey, r.getType(), throughMap(info.sinkKey, kMap)));
    results.push_back(
        emitResult(acc.dSinkValue, op.getGradSinkValue().getType()));
  }
  for (auto [index, grad] : llvm::enumerate(acc.dCaptures))
    if (grad)
      results.push_back(
          emitResult(grad, op.getGradCapture(index).getType()));
  return results;
}

//===----------------------------------------------------------------------===//
// Normalization
//===----------------------------------------------------------------------===//

GradRow AttentionGradCodegen::emitRow(Value b, Value h, Value i,
                                      Value count) {
  GradRow row;
  if (isSoftmaxFamily(normKind))
    row.lse = e.loadF32(op.getLse(), {b, h, i});
  if (op.getGradLse() && normKind != Normalization::mean)
    row.gradLse = e.loadF32(op.getGradLse(), {b, h, i});
  row.factor = normKind == Normalization::scalable_softmax
                   ? online.scalableFactor(count)
                   : e.f32(1.0);
  if (normKind == Normalization::mean) {
    Value zero = e.f32(0.0);
    row.invCount = e.select(e.cmpF(FP::OGT, count, zero),
                            e.div(e.f32(1.0), count), zero);
  }
  return row;
}

Value AttentionGradCodegen::weight(Value s, Value visible,
                                   const GradRow &row) {
  Value p;
  if (isSoftmaxFamily(normKind))
    p = e.exp(e.sub(e.mul(s, row.factor), row.lse));
  else if (normKind == Normalization::mean)
    p = row.invCount;
  else
    p = online.elementWeight(s);
  return e.select(visible, p, e.f32(0.0));
}

Value AttentionGradCodegen::scoreGrad(Value s, Value p, Value dP,
                                      Value visible, const GradRow &row) {
  Value zero = e.f32(0.0);
  Value g;
  switch (normKind) {
  case Normalization::softmax:
  case Normalization::softmax1:
  case Normalization::scalable_softmax:
    g = e.sub(dP, row.delta);
    if (row.gradLse)
      g = e.add(g, row.gradLse);
    g = e.mul(e.mul(p, g), row.factor);
    break;
  case Normalization::sigmoid: {
    // Sequenced: the order of evaluation of call arguments differs between
    // compilers, and so would the IR.
    Value dPp = e.mul(dP, p);
    Value oneMinusP = e.sub(e.f32(1.0), p);
    g = e.mul(dPp, oneMinusP);
    break;
  }
  case Normalization::relu:
    g = e.select(e.cmpF(FP::OGT, s, zero), dP, zero);
    break;
  case Normalization::relu2:
    g = e.mul(e.f32(2.0), dP);
    g = e.mul(g, e.maxF(s, zero));
    break;
  case Normalization::none:
    g = dP;
    break;
  case Normalization::mean:
    g = zero;
    break;
  }
  return e.select(visible, g, zero);
}

Value AttentionGradCodegen::sinkLogitGrad(Value h, const GradRow &row) {
  Value c = e.loadF32(info.sinkLogits, {h});
  Value pc = e.exp(e.sub(c, row.lse));
  pc = e.select(e.cmpF(FP::OEQ, row.lse, e.f32(kNegInf)), e.f32(0.0), pc);
  Value g = e.sub(e.f32(0.0), row.delta);
  if (row.gradLse)
    g = e.sub(row.gradLse, row.delta);
  return e.mul(pc, g);
}

//===----------------------------------------------------------------------===//
// The score region and the kernel
//===----------------------------------------------------------------------===//

Value AttentionGradCodegen::emitScoreModGrad(Value dS, Value s0, Value b,
                                             Value h, Value i, Value j,
                                             Value visible,
                                             GradAccumulators &acc) {
  Region &scoreMod = info.spec.getScoreMod();
  if (scoreMod.empty())
    return dS;
  SmallVector<Value> grads;
  for (Value g : acc.dCaptures)
    if (g)
      grads.push_back(g);
  Value live = e.andI(visible, e.cmpF(FP::ONE, dS, e.f32(0.0)));
  auto thenBranch = [&]() -> SmallVector<Value> {
    SmallVector<Value> args = {s0, b, h, i, j};
    llvm::append_range(args, info.captures);
    FailureOr<ScoreModVJP> vjp =
        emitScoreModVJP(e.b, e.b.getLoc(), scoreMod, args, dS);
    if (failed(vjp))
      llvm_unreachable("refused beforehand by verifyLowerableGrad");
    GradAccumulators updated = acc;
    for (const CaptureContribution &c : vjp->captures) {
      Value &slot = updated.dCaptures[c.captureIndex];
      slot = accumulate(slot, c.indices, c.contribution);
    }
    SmallVector<Value> yielded = {vjp->ds};
    for (Value g : updated.dCaptures)
      if (g)
        yielded.push_back(g);
    return yielded;
  };
  auto elseBranch = [&]() -> SmallVector<Value> {
    SmallVector<Value> yielded = {e.f32(0.0)};
    llvm::append_range(yielded, grads);
    return yielded;
  };
  ValueRange results = e.ifElse(live, thenBranch, elseBranch);
  unsigned next = 1;
  for (Value &g : acc.dCaptures)
    if (g)
      g = results[next++];
  return results[0];
}

Value AttentionGradCodegen::loadQueryFeature(Value b, Value h, Value i,
                                             Value d) {
  return e.featureMap(e.loadF32(info.query, {b, h, i, d}),
                      info.spec.getQFeatureMap());
}

Value AttentionGradCodegen::loadKeyFeature(const KeySet &keys,
                                           ArrayRef<Value> keyRow, Value d) {
  SmallVector<Value> idx(keyRow);
  idx.push_back(d);
  return e.featureMap(e.loadF32(keys.keys, idx), info.spec.getKFeatureMap());
}

Value AttentionGradCodegen::loadGradOutput(Value b, Value h, Value i,
                                           Value d) {
  return e.loadF32(op.getGradOutput(), {b, h, i, d});
}

Value AttentionGradCodegen::emitGradOutputDot(Value b, Value h, Value i,
                                              const KeySet &keys,
                                              ArrayRef<Value> valueRow) {
  return e.forLoop(e.index(0), info.headDimV, {e.f32(0.0)},
                   [&](Value d, ValueRange a) -> SmallVector<Value> {
                     SmallVector<Value> idx(valueRow);
                     idx.push_back(d);
                     Value x = e.loadF32(keys.values, idx);
                     return {e.add(a[0], e.mul(loadGradOutput(b, h, i, d), x))};
                   })[0];
}

Value AttentionGradCodegen::kernelGradTerm(Value dS0, Value self,
                                           Value other) {
  if (info.spec.getScoreKind() == ScoreKind::rbf)
    return e.mul(dS0, e.sub(other, self));
  return e.mul(dS0, other);
}

Value AttentionGradCodegen::accumulate(Value tensor, ValueRange indices,
                                       Value x) {
  Value old = tensor::ExtractOp::create(e.b, tensor, indices);
  return tensor::InsertOp::create(e.b, e.add(old, x), tensor, indices);
}
