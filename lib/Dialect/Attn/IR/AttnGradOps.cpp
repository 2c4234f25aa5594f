//===- AttnGradOps.cpp - attn backward operations ---------------*- C++ -*-===//
//
// Accessors and verifier of attn.attention_grad. The rules on q, k, v, the
// sinks and the specification are attn.attention's (AttentionVerifier.h);
// this file adds those of O, lse, dO, dlse and the result types.
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "AttentionVerifier.h"

#include "mlir/IR/BuiltinTypes.h"

using namespace mlir;
using namespace mlir::attn;

//===----------------------------------------------------------------------===//
// Accessors
//===----------------------------------------------------------------------===//

VariantSpecOpInterface AttentionGradOp::getSpec(SymbolTableCollection *tables) {
  FlatSymbolRefAttr ref = getVariantAttr();
  if (!ref)
    return cast<VariantSpecOpInterface>(getOperation());
  Operation *target =
      tables ? tables->lookupNearestSymbolFrom(getOperation(), ref)
             : SymbolTable::lookupNearestSymbolFrom(getOperation(), ref);
  return dyn_cast_or_null<VariantOp>(target);
}

bool AttentionGradOp::isDifferentiableCapture(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && isa<FloatType>(tensor.getElementType());
}

SmallVector<Type> AttentionGradOp::getExpectedParamGradTypes() {
  SmallVector<Type> types;
  if (Value logits = getSinkLogits())
    types.push_back(logits.getType());
  if (getSinkKey() && getSinkValue()) {
    types.push_back(getSinkKey().getType());
    types.push_back(getSinkValue().getType());
  }
  for (Type type : getCaptures().getTypes())
    if (isDifferentiableCapture(type))
      types.push_back(type);
  return types;
}

/// The position in `grad_params` of the first capture gradient.
static unsigned firstCaptureGrad(AttentionGradOp op) {
  return (op.getSinkLogits() ? 1 : 0) + (op.getSinkKey() ? 2 : 0);
}

Value AttentionGradOp::getGradSinkLogits() {
  return getSinkLogits() ? getGradParams()[0] : Value();
}

Value AttentionGradOp::getGradSinkKey() {
  return getSinkKey() ? getGradParams()[getSinkLogits() ? 1 : 0] : Value();
}

Value AttentionGradOp::getGradSinkValue() {
  return getSinkKey() ? getGradParams()[getSinkLogits() ? 2 : 1] : Value();
}

Value AttentionGradOp::getGradCapture(unsigned index) {
  if (!isDifferentiableCapture(getCaptures()[index].getType()))
    return Value();
  unsigned pos = firstCaptureGrad(*this);
  for (Value capture : getCaptures().take_front(index))
    pos += isDifferentiableCapture(capture.getType());
  return getGradParams()[pos];
}

//===----------------------------------------------------------------------===//
// Verifier
//===----------------------------------------------------------------------===//

/// Each gradient result has the type of the value it differentiates.
static LogicalResult verifyGradType(AttentionGradOp op, StringRef result,
                                    Type type, StringRef of, Type expected) {
  if (type == expected)
    return success();
  return op.emitOpError() << "result '" << result << "' must have the type of '"
                          << of << "' (" << expected << "), got " << type;
}

/// The name of the value that `grad_params` #`index` differentiates.
static std::string paramGradName(AttentionGradOp op, unsigned index) {
  if (op.getSinkLogits() && index == 0)
    return "sink_logits";
  index -= op.getSinkLogits() ? 1 : 0;
  if (op.getSinkKey() && index < 2)
    return index == 0 ? "sink_key" : "sink_value";
  index -= op.getSinkKey() ? 2 : 0;
  for (auto [c, type] : llvm::enumerate(op.getCaptures().getTypes()))
    if (AttentionGradOp::isDifferentiableCapture(type) && index-- == 0)
      return "capture #" + std::to_string(c);
  return "?";
}

static LogicalResult verifyResultTypes(AttentionGradOp op) {
  if (failed(verifyGradType(op, "grad_query", op.getGradQuery().getType(),
                            "query", op.getQuery().getType())) ||
      failed(verifyGradType(op, "grad_key", op.getGradKey().getType(), "key",
                            op.getKey().getType())) ||
      failed(verifyGradType(op, "grad_value", op.getGradValue().getType(),
                            "value", op.getValue().getType())))
    return failure();
  SmallVector<Type> expected = op.getExpectedParamGradTypes();
  if (expected.size() != op.getGradParams().size())
    return op.emitOpError()
           << "has " << op.getGradParams().size()
           << " parameter gradients after dq, dk, dv but needs "
           << expected.size()
           << " (d_sink_logits with sink logits, d_sink_key and "
              "d_sink_value with sink rows, then one per floating capture)";
  for (auto [idx, pair] :
       llvm::enumerate(llvm::zip(op.getGradParams().getTypes(), expected))) {
    auto [type, want] = pair;
    if (type != want)
      return op.emitOpError() << "parameter gradient #" << idx << " (of '"
                              << paramGradName(op, idx) << "') must have type "
                              << want << ", got " << type;
  }
  return success();
}

LogicalResult AttentionGradOp::verify() {
  if (failed(verifier::verifyAttentionOperands(*this)))
    return failure();
  auto qTy = getQuery().getType();
  SmallVector<int64_t> expectO =
      verifier::getOutputShape(qTy, getKey().getType(), getValue().getType());
  ArrayRef<int64_t> expectL = ArrayRef<int64_t>(expectO).drop_back();
  Type elt = qTy.getElementType();
  if (failed(verifier::verifyPerQueryType(*this, "output",
                                          getOutput().getType(), expectO,
                                          "[B, Hq, Sq, Dv]", elt)) ||
      failed(verifier::verifyPerQueryType(*this, "grad_output",
                                          getGradOutput().getType(), expectO,
                                          "[B, Hq, Sq, Dv]", elt)))
    return failure();
  if (Value lse = getLse())
    if (failed(verifier::verifyPerQueryType(
            *this, "lse", cast<RankedTensorType>(lse.getType()), expectL,
            "[B, Hq, Sq]")))
      return failure();
  if (Value dlse = getGradLse()) {
    if (!getLse())
      return emitOpError("'grad_lse' needs the 'lse' operand: it is the "
                         "gradient of the forward's lse");
    if (failed(verifier::verifyPerQueryType(
            *this, "grad_lse", cast<RankedTensorType>(dlse.getType()), expectL,
            "[B, Hq, Sq]")))
      return failure();
  }
  return verifyResultTypes(*this);
}

/// The rules of attn.attention between the specification and the operands,
/// preceded by those of the lse operand (the forward's rule names a result).
static LogicalResult verifyGradSpec(AttentionGradOp op,
                                    VariantSpecOpInterface spec,
                                    StringRef origin) {
  Normalization norm = spec.getNormalizationKind();
  StringRef normName = stringifyNormalization(norm);
  if (op.getLse() && !isSoftmaxFamily(norm) && norm != Normalization::mean)
    return op.emitOpError() << "'lse' operand needs a softmax-family or mean "
                            << "normalization, but the " << origin
                            << " has normalize<" << normName << ">";
  if (!op.getLse() && isSoftmaxFamily(norm))
    return op.emitOpError() << "needs the 'lse' operand: the " << origin
                            << " has normalize<" << normName
                            << ">, whose backward recomputes the weights "
                               "from the forward's log-sum-exp";
  return verifier::verifySpecAgainstOperands(op, spec, origin);
}

LogicalResult AttentionGradOp::verifyRegions() {
  if (getVariantAttr())
    return success(); // Checked in verifySymbolUses.
  auto spec = cast<VariantSpecOpInterface>(getOperation());
  if (failed(verifyVariantSpec(*this, spec)))
    return failure();
  return verifyGradSpec(*this, spec, "op");
}

LogicalResult
AttentionGradOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  FlatSymbolRefAttr ref = getVariantAttr();
  if (!ref)
    return success();
  FailureOr<VariantSpecOpInterface> spec =
      verifier::lookupVariantSpec(*this, ref, symbolTable);
  if (failed(spec))
    return failure();
  return verifyGradSpec(*this, *spec, ("variant @" + ref.getValue()).str());
}
