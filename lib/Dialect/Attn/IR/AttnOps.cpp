//===- AttnOps.cpp - attn operations ----------------------------*- C++ -*-===//
//
// Verifiers of attn.variant, attn.attention and attn.yield. Every rule reports
// on the op and names the operand, attribute or region at fault.
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "AttentionVerifier.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/SmallPtrSet.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;

#include "attn/Dialect/Attn/IR/AttnOpInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "attn/Dialect/Attn/IR/AttnOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

bool mlir::attn::isSoftmaxFamily(Normalization norm) {
  return norm == Normalization::softmax || norm == Normalization::softmax1 ||
         norm == Normalization::scalable_softmax;
}

bool mlir::attn::isShiftInvariant(VariantSpecOpInterface spec,
                                  bool hasSinkLogits) {
  Normalization norm = spec.getNormalizationKind();
  if (norm != Normalization::softmax &&
      norm != Normalization::scalable_softmax)
    return false;
  return !hasSinkLogits && spec.getScoreMod().empty();
}

double mlir::attn::getEffectiveScale(VariantSpecOpInterface spec,
                                     int64_t headDim) {
  if (std::optional<APFloat> scale = spec.getScale())
    return scale->convertToDouble();
  return 1.0 / std::sqrt(static_cast<double>(headDim));
}

double mlir::attn::getEffectiveGamma(VariantSpecOpInterface spec,
                                     int64_t headDim) {
  if (std::optional<APFloat> gamma = spec.getGamma())
    return gamma->convertToDouble();
  return 0.5 / std::sqrt(static_cast<double>(headDim));
}

/// Two sizes disagree only when both are static.
static bool sizesDiffer(int64_t a, int64_t b) {
  return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b;
}

/// A size for messages: the number, or '?' when dynamic.
static std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? "?" : std::to_string(d);
}

static std::string formatShape(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleaveComma(shape, os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << "?";
    else
      os << d;
  });
  os << "]";
  return s;
}

/// A region argument of type `declared` accepts an operand of type `actual`
/// when ranks and element types agree and every static size of `declared`
/// matches.
static bool isCompatibleCapture(Type declared, Type actual) {
  auto d = dyn_cast<RankedTensorType>(declared);
  auto a = dyn_cast<RankedTensorType>(actual);
  if (!d || !a || d.getRank() != a.getRank() ||
      d.getElementType() != a.getElementType())
    return false;
  for (auto [x, y] : llvm::zip(d.getShape(), a.getShape()))
    if (sizesDiffer(x, y))
      return false;
  return true;
}

static std::string maskName(Attribute mask) {
  std::string s;
  llvm::raw_string_ostream os(s);
  mask.print(os);
  return s;
}

//===----------------------------------------------------------------------===//
// Variant specification
//===----------------------------------------------------------------------===//

/// Checks a region that must be empty or one block ending in attn.yield of
/// `yieldType`, with `fixedTypes` leading arguments and ranked tensors after.
static LogicalResult verifyModRegion(Operation *op, Region &region,
                                     StringRef name, ArrayRef<Type> fixedTypes,
                                     StringRef fixedDoc, Type yieldType) {
  if (region.empty())
    return success();
  if (!region.hasOneBlock())
    return op->emitOpError() << "'" << name << "' region must have one block";
  Block &block = region.front();
  if (block.getNumArguments() < fixedTypes.size())
    return op->emitOpError()
           << "'" << name << "' region must have at least "
           << fixedTypes.size() << " arguments " << fixedDoc << ", got "
           << block.getNumArguments();
  for (auto [idx, type] : llvm::enumerate(fixedTypes))
    if (block.getArgument(idx).getType() != type)
      return op->emitOpError()
             << "'" << name << "' region argument #" << idx << " must be "
             << type << " " << fixedDoc << ", got "
             << block.getArgument(idx).getType();
  for (unsigned idx = fixedTypes.size(); idx < block.getNumArguments(); ++idx)
    if (!isa<RankedTensorType>(block.getArgument(idx).getType()))
      return op->emitOpError()
             << "'" << name << "' region argument #" << idx
             << " (a captured operand) must be a ranked tensor, got "
             << block.getArgument(idx).getType();
  auto yield = dyn_cast<YieldOp>(block.getTerminator());
  if (!yield)
    return op->emitOpError()
           << "'" << name << "' region must end with attn.yield";
  if (yield.getValue().getType() != yieldType)
    return op->emitOpError()
           << "'" << name << "' region must yield " << yieldType << ", got "
           << yield.getValue().getType();
  return success();
}

LogicalResult mlir::attn::verifyVariantSpec(Operation *op,
                                            VariantSpecOpInterface spec) {
  bool isRbf = spec.getScoreKind() == ScoreKind::rbf;
  if (std::optional<APFloat> scale = spec.getScale()) {
    if (isRbf)
      return op->emitOpError("'scale' applies to score<dot>; score<rbf> "
                             "takes 'gamma'");
    double s = scale->convertToDouble();
    if (!std::isfinite(s) || s == 0.0)
      return op->emitOpError() << "'scale' must be finite and non-zero, got "
                               << s;
  }
  if (std::optional<APFloat> gamma = spec.getGamma()) {
    if (!isRbf)
      return op->emitOpError("'gamma' applies only to score<rbf>");
    double g = gamma->convertToDouble();
    if (!std::isfinite(g) || g <= 0.0)
      return op->emitOpError() << "'gamma' must be positive and finite, got "
                               << g;
  }
  Normalization norm = spec.getNormalizationKind();
  if (std::optional<APFloat> bias = spec.getBias()) {
    if (norm != Normalization::sigmoid)
      return op->emitOpError("'bias' applies only to normalize<sigmoid>");
    if (!std::isfinite(bias->convertToDouble()))
      return op->emitOpError("'bias' must be finite");
  }
  if (std::optional<APFloat> ls = spec.getLengthScale()) {
    if (norm != Normalization::scalable_softmax)
      return op->emitOpError(
          "'length_scale' applies only to normalize<scalable_softmax>");
    double s = ls->convertToDouble();
    if (!std::isfinite(s) || s <= 0.0)
      return op->emitOpError()
             << "'length_scale' must be positive and finite, got " << s;
  }

  // Masks.
  bool hasLocal = false, hasSinkTokens = false, hasCausal = false,
       hasPrefix = false;
  llvm::SmallPtrSet<TypeID, 8> seenKinds;
  if (std::optional<ArrayAttr> masks = spec.getMasks()) {
    for (auto [idx, element] : llvm::enumerate(*masks)) {
      Attribute attr = element;
      auto mask = dyn_cast<MaskAttrInterface>(attr);
      if (!mask)
        return op->emitOpError() << "'mask' element #" << idx << " (" << attr
                                 << ") is not a mask attribute";
      if (!seenKinds.insert(attr.getTypeID()).second)
        return op->emitOpError() << "'mask' holds more than one "
                                 << maskName(attr) << "-kind mask; each kind "
                                 << "may appear once";
      if (failed(mask.verifyParameters([&] { return op->emitOpError(); })))
        return failure();
      hasLocal |= mask.isLocal();
      hasSinkTokens |= mask.getRole() == MaskRole::sinks;
      hasCausal |= isa<CausalAttr>(attr);
      hasPrefix |= isa<PrefixLMAttr>(attr);
    }
  }
  if (hasSinkTokens && !hasLocal)
    return op->emitOpError(
        "mask #attn.sink_tokens has no effect without a local mask "
        "(sliding_window, chunked or a neighborhood)");
  if (hasPrefix && hasCausal)
    return op->emitOpError("mask #attn.prefix_lm already implies causality "
                           "past the prefix; drop #attn.causal");

  // Regions.
  Builder b(op->getContext());
  Type idx = b.getIndexType();
  if (failed(verifyModRegion(op, spec.getScoreMod(), "score_mod",
                             {b.getF32Type(), idx, idx, idx, idx},
                             "(score, b, h, q_idx, kv_idx)", b.getF32Type())) ||
      failed(verifyModRegion(op, spec.getMaskMod(), "mask_mod",
                             {idx, idx, idx, idx}, "(b, h, q_idx, kv_idx)",
                             b.getI1Type())))
    return failure();
  if (!spec.getScoreMod().empty() && norm == Normalization::mean)
    return op->emitOpError("'score_mod' has no effect under normalize<mean>, "
                           "which ignores scores");
  if (!spec.getScoreMod().empty() && !spec.getMaskMod().empty()) {
    auto scoreCaps = llvm::drop_begin(spec.getScoreMod().getArgumentTypes(), kScoreModFixedArgs);
    auto maskCaps =
        llvm::drop_begin(spec.getMaskMod().getArgumentTypes(), kMaskModFixedArgs);
    if (!llvm::equal(scoreCaps, maskCaps)) {
      InFlightDiagnostic diag = op->emitOpError(
          "'score_mod' and 'mask_mod' regions must take the same captured "
          "operand types, got (");
      llvm::interleaveComma(scoreCaps, diag);
      diag << ") and (";
      llvm::interleaveComma(maskCaps, diag);
      return diag << ")";
    }
  }
  return success();
}

/// The captured-operand types that the spec's regions declare, if any region
/// is present.
static std::optional<SmallVector<Type>>
getDeclaredCaptureTypes(VariantSpecOpInterface spec) {
  if (!spec.getScoreMod().empty())
    return llvm::to_vector(
        llvm::drop_begin(spec.getScoreMod().getArgumentTypes(), kScoreModFixedArgs));
  if (!spec.getMaskMod().empty())
    return llvm::to_vector(
        llvm::drop_begin(spec.getMaskMod().getArgumentTypes(), kMaskModFixedArgs));
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// VariantOp
//===----------------------------------------------------------------------===//

LogicalResult VariantOp::verify() { return success(); }

LogicalResult VariantOp::verifyRegions() {
  return verifyVariantSpec(*this, cast<VariantSpecOpInterface>(**this));
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

VariantSpecOpInterface AttentionOp::getSpec(SymbolTableCollection *tables) {
  FlatSymbolRefAttr ref = getVariantAttr();
  if (!ref)
    return cast<VariantSpecOpInterface>(getOperation());
  Operation *target =
      tables ? tables->lookupNearestSymbolFrom(getOperation(), ref)
             : SymbolTable::lookupNearestSymbolFrom(getOperation(), ref);
  return dyn_cast_or_null<VariantOp>(target);
}

/// Whether any specification attribute or region is given inline.
template <typename OpT> static bool hasInlineSpec(OpT op) {
  return op.getScoreAttr() || op.getScaleAttr() || op.getGammaAttr() ||
         op.getQMapAttr() || op.getKMapAttr() || op.getMasksAttr() ||
         op.getNormalizationAttr() || op.getBiasAttr() || op.getLengthScaleAttr() ||
         !op.getScoreMod().empty() || !op.getMaskMod().empty();
}

static LogicalResult verifyRank4(Operation *op, StringRef name,
                                 RankedTensorType type, StringRef layout) {
  if (type.getRank() == 4)
    return success();
  return op->emitOpError() << "'" << name << "' must have rank 4 " << layout
                           << ", got " << type;
}

SmallVector<int64_t> verifier::getOutputShape(RankedTensorType qTy,
                                              RankedTensorType kTy,
                                              RankedTensorType vTy) {
  ArrayRef<int64_t> q = qTy.getShape(), k = kTy.getShape(), v = vTy.getShape();
  int64_t batch = ShapedType::isDynamic(q[0]) ? k[0] : q[0];
  return {batch, q[1], q[2], v[3]};
}

LogicalResult verifier::verifyPerQueryType(Operation *op, StringRef name,
                                           RankedTensorType type,
                                           ArrayRef<int64_t> expected,
                                           StringRef layout, Type elt) {
  if (type.getRank() != static_cast<int64_t>(expected.size()) ||
      llvm::any_of(llvm::zip(type.getShape(), expected), [](auto p) {
        return sizesDiffer(std::get<0>(p), std::get<1>(p));
      }))
    return op->emitOpError()
           << "'" << name << "' must have shape " << layout << " = "
           << formatShape(expected) << ", got " << type;
  if (elt && type.getElementType() != elt)
    return op->emitOpError()
           << "'" << name << "' element type " << type.getElementType()
           << " differs from the 'query' element type " << elt;
  return success();
}

LogicalResult AttentionOp::verify() {
  if (failed(verifier::verifyAttentionOperands(*this)))
    return failure();
  auto qTy = getQuery().getType();
  SmallVector<int64_t> expectO =
      verifier::getOutputShape(qTy, getKey().getType(), getValue().getType());
  if (failed(verifier::verifyPerQueryType(
          *this, "output", getOutput().getType(), expectO, "[B, Hq, Sq, Dv]",
          qTy.getElementType())))
    return failure();
  if (Value lse = getLse())
    return verifier::verifyPerQueryType(
        *this, "lse", cast<RankedTensorType>(lse.getType()),
        ArrayRef<int64_t>(expectO).drop_back(), "[B, Hq, Sq]");
  return success();
}

template <typename OpT>
LogicalResult verifier::verifyAttentionOperands(OpT op) {
  auto qTy = op.getQuery().getType();
  auto kTy = op.getKey().getType();
  auto vTy = op.getValue().getType();
  if (failed(verifyRank4(op, "query", qTy, "[B, Hq, Sq, Dqk]")) ||
      failed(verifyRank4(op, "key", kTy, "[B, Hkv, Sk, Dqk]")) ||
      failed(verifyRank4(op, "value", vTy, "[B, Hkv, Sk, Dv]")))
    return failure();
  Type elt = qTy.getElementType();
  if (kTy.getElementType() != elt)
    return op.emitOpError() << "'key' element type " << kTy.getElementType()
                            << " differs from the 'query' element type " << elt;
  if (vTy.getElementType() != elt)
    return op.emitOpError() << "'value' element type " << vTy.getElementType()
                            << " differs from the 'query' element type " << elt;
  ArrayRef<int64_t> q = qTy.getShape(), k = kTy.getShape(),
                    v = vTy.getShape();
  if (sizesDiffer(q[0], k[0]) || sizesDiffer(q[0], v[0]) ||
      sizesDiffer(k[0], v[0]))
    return op.emitOpError()
           << "batch sizes differ: 'query' " << formatShape(q) << ", 'key' "
           << formatShape(k) << ", 'value' " << formatShape(v);
  if (sizesDiffer(k[1], v[1]))
    return op.emitOpError()
           << "'key' has " << k[1] << " heads but 'value' has " << v[1];
  if (!ShapedType::isDynamic(q[1]) && !ShapedType::isDynamic(k[1]) &&
      (k[1] == 0 || q[1] % k[1] != 0))
    return op.emitOpError()
           << "query heads (" << q[1]
           << ") must be a multiple of key/value heads (" << k[1] << ")";
  if (sizesDiffer(q[3], k[3]))
    return op.emitOpError() << "'query' head dim " << q[3]
                            << " differs from the 'key' head dim " << k[3];
  if (sizesDiffer(k[2], v[2]))
    return op.emitOpError()
           << "'key' has " << k[2] << " positions but 'value' has " << v[2];

  if (Value sl = op.getSinkLogits()) {
    auto sTy = cast<RankedTensorType>(sl.getType());
    if (sTy.getRank() != 1 || sizesDiffer(sTy.getDimSize(0), q[1]))
      return op.emitOpError() << "'sink_logits' must have shape [Hq] = ["
                              << dimStr(q[1]) << "], got " << sTy;
  }
  if (bool(op.getSinkKey()) != bool(op.getSinkValue()))
    return op.emitOpError("'sink_rows' needs both 'sink_key' and 'sink_value'");
  if (Value sk = op.getSinkKey()) {
    auto skTy = cast<RankedTensorType>(sk.getType());
    auto svTy = cast<RankedTensorType>(op.getSinkValue().getType());
    if (skTy.getElementType() != elt || svTy.getElementType() != elt)
      return op.emitOpError() << "'sink_key' and 'sink_value' must have the "
                              << "'query' element type " << elt;
    int64_t dqk = ShapedType::isDynamic(q[3]) ? k[3] : q[3];
    if (skTy.getRank() != 3 || sizesDiffer(skTy.getDimSize(0), k[1]) ||
        sizesDiffer(skTy.getDimSize(2), dqk))
      return op.emitOpError()
             << "'sink_key' must have shape [Hkv, Ns, Dqk] "
             << "with Hkv = " << dimStr(k[1]) << " and Dqk = " << dimStr(dqk)
             << ", got " << skTy;
    if (svTy.getRank() != 3 || sizesDiffer(svTy.getDimSize(0), v[1]) ||
        sizesDiffer(svTy.getDimSize(2), v[3]))
      return op.emitOpError()
             << "'sink_value' must have shape [Hkv, Ns, Dv] "
             << "with Hkv = " << dimStr(v[1]) << " and Dv = " << dimStr(v[3])
             << ", got " << svTy;
    if (sizesDiffer(skTy.getDimSize(1), svTy.getDimSize(1)))
      return op.emitOpError()
             << "'sink_key' has " << skTy.getDimSize(1)
             << " rows but 'sink_value' has " << svTy.getDimSize(1);
  }
  if (op.getVariantAttr() && hasInlineSpec(op))
    return op.emitOpError() << "references variant " << op.getVariantAttr()
                            << " and also gives a specification inline; "
                            << "give one or the other";
  return success();
}

/// Rules that tie a specification to this op's operands and results.
template <typename OpT>
LogicalResult verifier::verifySpecAgainstOperands(OpT op,
                                                  VariantSpecOpInterface spec,
                                                  StringRef origin) {
  Normalization norm = spec.getNormalizationKind();
  if (op.getLse() && !isSoftmaxFamily(norm) && norm != Normalization::mean)
    return op.emitOpError() << "'lse' result needs a softmax-family or mean "
                            << "normalization, but the " << origin
                            << " has normalize<"
                            << stringifyNormalization(norm) << ">";
  if (op.getSinkLogits() && !isSoftmaxFamily(norm))
    return op.emitOpError() << "'sink_logits' has no use under normalize<"
                            << stringifyNormalization(norm)
                            << ">; they join a softmax denominator";

  ArrayRef<int64_t> q = op.getQuery().getType().getShape();
  ArrayRef<int64_t> k = op.getKey().getType().getShape();
  int64_t sq = q[2], sk = k[2];
  int64_t batch = ShapedType::isDynamic(q[0]) ? k[0] : q[0];
  MaskShapes shapes{batch, sq, sk, op.getCaptures().getTypes()};
  if (std::optional<ArrayAttr> masks = spec.getMasks())
    for (Attribute attr : *masks)
      if (auto mask = dyn_cast<MaskAttrInterface>(attr))
        if (failed(mask.verifyShapes([&] { return op.emitOpError(); },
                                     shapes)))
          return failure();

  if (std::optional<SmallVector<Type>> declared =
          getDeclaredCaptureTypes(spec)) {
    if (declared->size() != op.getCaptures().size())
      return op.emitOpError()
             << "the " << origin << " regions take " << declared->size()
             << " captured operands but the op passes "
             << op.getCaptures().size();
    for (auto [idx, pair] :
         llvm::enumerate(llvm::zip(*declared, op.getCaptures().getTypes())))
      if (!isCompatibleCapture(std::get<0>(pair), std::get<1>(pair)))
        return op.emitOpError()
               << "captured operand #" << idx << " has type "
               << std::get<1>(pair) << " but the " << origin
               << " regions expect " << std::get<0>(pair);
  }
  return success();
}

LogicalResult AttentionOp::verifyRegions() {
  if (getVariantAttr())
    return success(); // Checked in verifySymbolUses.
  auto spec = cast<VariantSpecOpInterface>(getOperation());
  if (failed(verifyVariantSpec(*this, spec)))
    return failure();
  return verifier::verifySpecAgainstOperands(*this, spec, "op");
}

FailureOr<VariantSpecOpInterface>
verifier::lookupVariantSpec(Operation *op, FlatSymbolRefAttr ref,
                            SymbolTableCollection &symbolTable) {
  Operation *target = symbolTable.lookupNearestSymbolFrom(op, ref);
  if (!target)
    return op->emitOpError() << "'variant' references " << ref
                             << ", which does not exist";
  auto variant = dyn_cast<VariantOp>(target);
  if (!variant)
    return op->emitOpError()
           << "'variant' references " << ref << ", which is a '"
           << target->getName() << "', not an attn.variant";
  return cast<VariantSpecOpInterface>(variant.getOperation());
}

LogicalResult
AttentionOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  FlatSymbolRefAttr ref = getVariantAttr();
  if (!ref)
    return success();
  FailureOr<VariantSpecOpInterface> spec =
      verifier::lookupVariantSpec(*this, ref, symbolTable);
  if (failed(spec))
    return failure();
  return verifier::verifySpecAgainstOperands(
      *this, *spec, ("variant @" + ref.getValue()).str());
}

// The shared rules, for both attention ops.
template LogicalResult verifier::verifyAttentionOperands(AttentionOp);
template LogicalResult verifier::verifyAttentionOperands(AttentionGradOp);
template LogicalResult
    verifier::verifySpecAgainstOperands(AttentionOp, VariantSpecOpInterface,
                                        StringRef);
template LogicalResult
    verifier::verifySpecAgainstOperands(AttentionGradOp, VariantSpecOpInterface,
                                        StringRef);
