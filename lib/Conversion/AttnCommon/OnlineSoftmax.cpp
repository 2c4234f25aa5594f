//===- OnlineSoftmax.cpp - the online normalization, written once -*- C++ -*-=//

#include "attn/Conversion/AttnCommon/OnlineSoftmax.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::attn;

using FP = arith::CmpFPredicate;

static constexpr double kNegInf = -std::numeric_limits<double>::infinity();
static const double kLog2E = 1.0 / std::log(2.0);

OnlineSoftmaxOptions OnlineSoftmaxOptions::get(VariantSpecOpInterface spec) {
  OnlineSoftmaxOptions options;
  options.kind = spec.getNormalizationKind();
  if (std::optional<APFloat> bias = spec.getBias())
    options.sigmoidBias = bias->convertToDouble();
  if (std::optional<APFloat> ls = spec.getLengthScale())
    options.lengthScale = ls->convertToDouble();
  return options;
}

OnlineSoftmax::OnlineSoftmax(ScalarEmitter &e, OnlineSoftmaxOptions options)
    : e(e), options(std::move(options)) {}

bool OnlineSoftmax::tracksMax() const { return isSoftmaxFamily(kind()); }

bool OnlineSoftmax::dividesOutput() const {
  return tracksMax() || kind() == Normalization::mean;
}

Value OnlineSoftmax::exp(Value x) {
  return options.math.exp ? options.math.exp(x) : e.exp(x);
}
Value OnlineSoftmax::exp2(Value x) {
  return options.math.exp2 ? options.math.exp2(x)
                           : math::Exp2Op::create(e.b, x).getResult();
}
Value OnlineSoftmax::log(Value x) {
  return options.math.log ? options.math.log(x) : e.log(x);
}
Value OnlineSoftmax::rcp(Value x) {
  return options.math.rcp ? options.math.rcp(x) : e.div(e.f32(1.0), x);
}

Value OnlineSoftmax::guardedShift(Value m) {
  return e.select(e.cmpF(FP::OEQ, m, e.f32(kNegInf)), e.f32(0.0), m);
}

Value OnlineSoftmax::toDomain(Value x) {
  return options.log2Domain ? e.mul(x, e.f32(kLog2E)) : x;
}

Value OnlineSoftmax::expInDomain(Value x) {
  return options.log2Domain ? exp2(x) : exp(x);
}

RowStats OnlineSoftmax::initialStats(Value sinkLogit) {
  // Sink logits and softmax1's +1 are logits with no value row: they join
  // the maximum and the normalizer, never the output.
  SmallVector<Value> extra;
  if (tracksMax() && sinkLogit)
    extra.push_back(toDomain(sinkLogit));
  if (kind() == Normalization::softmax1)
    extra.push_back(e.f32(0.0));
  Value m = e.f32(kNegInf);
  for (Value c : extra)
    m = e.maxF(m, c);
  Value shift = guardedShift(m);
  Value l = e.f32(0.0);
  for (Value c : extra)
    l = e.add(l, expInDomain(e.sub(c, shift)));
  return {m, l};
}

Value OnlineSoftmax::elementWeight(Value x) {
  Value zero = e.f32(0.0);
  switch (kind()) {
  case Normalization::sigmoid: {
    Value z = e.add(x, e.f32(options.sigmoidBias));
    // e^-z, as exp2(-z log2 e) in the log2 domain.
    Value expNeg = options.log2Domain ? exp2(e.mul(z, e.f32(-kLog2E)))
                                      : exp(e.sub(zero, z));
    return rcp(e.add(e.f32(1.0), expNeg));
  }
  case Normalization::relu:
    return e.maxF(x, zero);
  case Normalization::relu2: {
    Value r = e.maxF(x, zero);
    return e.mul(r, r);
  }
  case Normalization::none:
    return x;
  case Normalization::mean:
    return e.f32(1.0);
  case Normalization::softmax:
  case Normalization::softmax1:
  case Normalization::scalable_softmax:
    break;
  }
  llvm_unreachable("the softmax family weighs logits through probability()");
}

Value OnlineSoftmax::maskedValue(Value visible, Value value) {
  return e.select(visible, value, e.f32(tracksMax() ? kNegInf : 0.0));
}

RowRescale OnlineSoftmax::rescale(Value mOld, Value tileMax) {
  Value mNew = e.maxF(mOld, tileMax);
  Value shift = guardedShift(mNew);
  Value alpha = expInDomain(e.sub(mOld, shift));
  return {mNew, shift, alpha};
}

Value OnlineSoftmax::probability(Value logit, Value shift) {
  return expInDomain(e.sub(logit, shift));
}

Value OnlineSoftmax::updateNorm(Value l, Value alpha, Value tileSum) {
  if (tracksMax())
    return e.add(e.mul(l, alpha), tileSum);
  if (kind() == Normalization::mean)
    return e.add(l, tileSum);
  return l;
}

Value OnlineSoftmax::outputScale(Value l) {
  if (!dividesOutput())
    return e.f32(1.0);
  Value zero = e.f32(0.0);
  return e.select(e.cmpF(FP::OGT, l, zero), e.div(e.f32(1.0), l), zero);
}

Value OnlineSoftmax::logSumExp(Value m, Value l, Value droppedLogit) {
  if (kind() == Normalization::mean)
    return log(l);
  if (!tracksMax())
    return e.f32(0.0);
  Value shift = guardedShift(m);
  if (options.log2Domain)
    shift = e.mul(shift, e.f32(1.0 / kLog2E));
  Value lse = e.add(shift, log(l));
  // Rows that saw nothing keep log(0) = -inf.
  if (droppedLogit)
    lse = e.select(e.cmpF(FP::OGT, l, e.f32(0.0)), e.sub(lse, droppedLogit),
                   lse);
  return lse;
}

Value OnlineSoftmax::scalableFactor(Value count) {
  return e.mul(e.f32(options.lengthScale), log(count));
}
