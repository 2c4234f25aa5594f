//===- AttnCodegen.cpp - scalar code for attn lowerings ---------*- C++ -*-===//

#include "attn/Conversion/AttnCommon/AttnCodegen.h"
#include "attn/Conversion/AttnCommon/RegionIntervals.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"

using namespace mlir;
using namespace mlir::attn;

//===----------------------------------------------------------------------===//
// AttnOpInfo
//===----------------------------------------------------------------------===//

static Value dimOf(ImplicitLocOpBuilder &b, Value tensor, int64_t dim) {
  auto type = cast<RankedTensorType>(tensor.getType());
  if (!type.isDynamicDim(dim))
    return arith::ConstantIndexOp::create(b, type.getDimSize(dim));
  return tensor::DimOp::create(b, tensor, dim);
}

SmallVector<Value> mlir::attn::emitDims(ImplicitLocOpBuilder &b,
                                        Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  SmallVector<Value> dims;
  for (int64_t d = 0, e = type.getRank(); d < e; ++d)
    dims.push_back(dimOf(b, tensor, d));
  return dims;
}

/// The operands both attention ops have, under the same accessor names.
template <typename OpT>
static AttnOpInfo getInfo(ImplicitLocOpBuilder &b, OpT op) {
  AttnOpInfo info;
  info.op = op;
  info.spec = cast<VariantSpecOpInterface>(op.getOperation());
  info.query = op.getQuery();
  info.key = op.getKey();
  info.value = op.getValue();
  info.captures = llvm::to_vector(op.getCaptures());
  info.sinkLogits = op.getSinkLogits();
  info.sinkKey = op.getSinkKey();
  info.sinkValue = op.getSinkValue();
  info.batch = dimOf(b, info.query, 0);
  info.qHeads = dimOf(b, info.query, 1);
  info.qLen = dimOf(b, info.query, 2);
  info.headDimQK = dimOf(b, info.query, 3);
  info.kvHeads = dimOf(b, info.key, 1);
  info.kvLen = dimOf(b, info.key, 2);
  info.headDimV = dimOf(b, info.value, 3);
  info.group = arith::DivUIOp::create(b, info.qHeads, info.kvHeads);
  info.numSinkRows = info.sinkKey ? dimOf(b, info.sinkKey, 1)
                                  : arith::ConstantIndexOp::create(b, 0);
  info.elementType = op.getQuery().getType().getElementType();
  // The default scale and bandwidth need a static head dim; with a dynamic
  // one the lowering emits them from the run-time size (see below).
  int64_t d = op.getQuery().getType().getDimSize(3);
  info.scale = getEffectiveScale(info.spec, ShapedType::isDynamic(d) ? 1 : d);
  info.gamma = getEffectiveGamma(info.spec, ShapedType::isDynamic(d) ? 1 : d);
  return info;
}

AttnOpInfo AttnOpInfo::get(ImplicitLocOpBuilder &b, AttentionOp op) {
  return getInfo(b, op);
}

AttnOpInfo AttnOpInfo::get(ImplicitLocOpBuilder &b, AttentionGradOp op) {
  return getInfo(b, op);
}

//===----------------------------------------------------------------------===//
// ScalarEmitter
//===----------------------------------------------------------------------===//

Value ScalarEmitter::f32(double v) {
  return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
}
Value ScalarEmitter::index(int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}
Value ScalarEmitter::i1(bool v) {
  return arith::ConstantIntOp::create(b, v ? 1 : 0, 1);
}
Value ScalarEmitter::loadF32(Value tensor, ValueRange indices) {
  Value x = tensor::ExtractOp::create(b, tensor, indices);
  if (!x.getType().isF32())
    x = arith::ExtFOp::create(b, b.getF32Type(), x);
  return x;
}
Value ScalarEmitter::add(Value x, Value y) {
  return arith::AddFOp::create(b, x, y);
}
Value ScalarEmitter::sub(Value x, Value y) {
  return arith::SubFOp::create(b, x, y);
}
Value ScalarEmitter::mul(Value x, Value y) {
  return arith::MulFOp::create(b, x, y);
}
Value ScalarEmitter::div(Value x, Value y) {
  return arith::DivFOp::create(b, x, y);
}
Value ScalarEmitter::maxF(Value x, Value y) {
  return arith::MaximumFOp::create(b, x, y);
}
Value ScalarEmitter::exp(Value x) { return math::ExpOp::create(b, x); }
Value ScalarEmitter::log(Value x) { return math::LogOp::create(b, x); }
Value ScalarEmitter::select(Value c, Value x, Value y) {
  return arith::SelectOp::create(b, c, x, y);
}
Value ScalarEmitter::andI(Value x, Value y) {
  return arith::AndIOp::create(b, x, y);
}
Value ScalarEmitter::orI(Value x, Value y) {
  return arith::OrIOp::create(b, x, y);
}
Value ScalarEmitter::cmpF(arith::CmpFPredicate p, Value x, Value y) {
  return arith::CmpFOp::create(b, p, x, y);
}
Value ScalarEmitter::cmpI(arith::CmpIPredicate p, Value x, Value y) {
  return arith::CmpIOp::create(b, p, x, y);
}
Value ScalarEmitter::addI(Value x, Value y) {
  return arith::AddIOp::create(b, x, y);
}
Value ScalarEmitter::subI(Value x, Value y) {
  return arith::SubIOp::create(b, x, y);
}
Value ScalarEmitter::mulI(Value x, Value y) {
  return arith::MulIOp::create(b, x, y);
}
Value ScalarEmitter::divI(Value x, Value y) {
  return arith::DivSIOp::create(b, x, y);
}
Value ScalarEmitter::remI(Value x, Value y) {
  return arith::RemSIOp::create(b, x, y);
}
Value ScalarEmitter::minI(Value x, Value y) {
  return arith::MinSIOp::create(b, x, y);
}
Value ScalarEmitter::maxI(Value x, Value y) {
  return arith::MaxSIOp::create(b, x, y);
}
Value ScalarEmitter::indexToF32(Value x) {
  Value i64 = arith::IndexCastOp::create(b, b.getI64Type(), x);
  return arith::SIToFPOp::create(b, b.getF32Type(), i64);
}

Value ScalarEmitter::featureMap(Value x, FeatureMap kind) {
  switch (kind) {
  case FeatureMap::identity:
    return x;
  case FeatureMap::relu:
    return maxF(x, f32(0.0));
  case FeatureMap::elu_plus_one: {
    Value positive = cmpF(arith::CmpFPredicate::OGT, x, f32(0.0));
    return select(positive, add(x, f32(1.0)), exp(x));
  }
  }
  llvm_unreachable("unknown feature map");
}

Value ScalarEmitter::featureMapDerivative(Value x, FeatureMap kind) {
  if (kind == FeatureMap::identity)
    return f32(1.0);
  Value positive = cmpF(arith::CmpFPredicate::OGT, x, f32(0.0));
  Value otherwise = kind == FeatureMap::relu ? f32(0.0) : exp(x);
  return select(positive, f32(1.0), otherwise);
}

ValueRange ScalarEmitter::forLoop(
    Value lb, Value ub, ValueRange inits,
    function_ref<SmallVector<Value>(Value iv, ValueRange args)> body) {
  auto forOp = scf::ForOp::create(
      b, lb, ub, index(1), inits,
      [&](OpBuilder &nested, Location loc, Value iv, ValueRange args) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        SmallVector<Value> results = body(iv, args);
        scf::YieldOp::create(b, results);
      });
  return forOp.getResults();
}

ValueRange ScalarEmitter::ifElse(Value cond,
                                 function_ref<SmallVector<Value>()> thenBody,
                                 function_ref<SmallVector<Value>()> elseBody) {
  auto branch = [&](function_ref<SmallVector<Value>()> body) {
    return [&, body](OpBuilder &nested, Location) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(nested.getInsertionBlock(),
                          nested.getInsertionPoint());
      scf::YieldOp::create(b, body());
    };
  };
  return scf::IfOp::create(b, cond, branch(thenBody), branch(elseBody))
      .getResults();
}

//===----------------------------------------------------------------------===//
// Scores
//===----------------------------------------------------------------------===//

Value mlir::attn::alignedPosition(ScalarEmitter &e, const AttnOpInfo &info,
                                  Value i, Alignment alignment) {
  return emitAlignedPosition(e.b, e.b.getLoc(), i, info.qLen, info.kvLen,
                             alignment);
}

Value mlir::attn::emitKernelScore(ScalarEmitter &e, const AttnOpInfo &info,
                                  Value b, Value h, Value i, Value keys,
                                  ValueRange keyRow) {
  FeatureMap qMap = info.spec.getQFeatureMap(), kMap = info.spec.getKFeatureMap();
  bool rbf = info.spec.getScoreKind() == ScoreKind::rbf;
  Value acc = e.forLoop(
      e.index(0), info.headDimQK, {e.f32(0.0)},
      [&](Value d, ValueRange args) -> SmallVector<Value> {
        Value qx = e.featureMap(e.loadF32(info.query, {b, h, i, d}), qMap);
        SmallVector<Value> kIdx(keyRow.begin(), keyRow.end());
        kIdx.push_back(d);
        Value kx = e.featureMap(e.loadF32(keys, kIdx), kMap);
        if (rbf) {
          Value diff = e.sub(qx, kx);
          return {e.add(args[0], e.mul(diff, diff))};
        }
        return {e.add(args[0], e.mul(qx, kx))};
      })[0];
  if (rbf)
    return e.mul(e.sub(e.f32(0.0), emitGamma(e, info)), acc);
  return e.mul(emitScale(e, info), acc);
}

/// Whether the default scale or bandwidth must come from the run-time Dqk.
static bool needsRuntimeHeadDim(const AttnOpInfo &info) {
  // The GPU kernels set `op` but not `query`; q is operand #0 of both ops.
  Value query = info.query ? info.query : info.op->getOperand(0);
  return cast<RankedTensorType>(query.getType()).isDynamicDim(3);
}

Value mlir::attn::emitScale(ScalarEmitter &e, const AttnOpInfo &info) {
  if (info.spec.getScale() || !needsRuntimeHeadDim(info))
    return e.f32(info.scale);
  return math::RsqrtOp::create(e.b, e.indexToF32(info.headDimQK));
}

Value mlir::attn::emitGamma(ScalarEmitter &e, const AttnOpInfo &info) {
  if (info.spec.getGamma() || !needsRuntimeHeadDim(info))
    return e.f32(info.gamma);
  return e.mul(e.f32(0.5),
               math::RsqrtOp::create(e.b, e.indexToF32(info.headDimQK)));
}

/// Clones the single block of `region` at the builder's insertion point with
/// `args` bound to the leading block arguments and the op's captures (cast
/// to the declared types) to the rest; returns the yielded value.
static Value inlineRegion(ScalarEmitter &e, const AttnOpInfo &info,
                          Region &region, ValueRange args) {
  Block &block = region.front();
  IRMapping mapping;
  for (auto [arg, value] : llvm::zip(block.getArguments(), args))
    mapping.map(arg, value);
  for (auto [arg, capture] :
       llvm::zip(block.getArguments().drop_front(args.size()),
                 info.captures)) {
    Value v = capture;
    if (v.getType() != arg.getType())
      v = tensor::CastOp::create(e.b, arg.getType(), v);
    mapping.map(arg, v);
  }
  for (Operation &op : block.without_terminator())
    e.b.clone(op, mapping);
  return mapping.lookup(cast<YieldOp>(block.getTerminator()).getValue());
}

static Value materializeRegion(ScalarEmitter &e, const AttnOpInfo &info,
                               Region &region, ValueRange args) {
  if (info.inlineRegion)
    return info.inlineRegion(region, args);
  return inlineRegion(e, info, region, args);
}

Value mlir::attn::emitScoreMod(ScalarEmitter &e, const AttnOpInfo &info,
                               Value score, Value b, Value h, Value i,
                               Value j) {
  if (info.spec.getScoreMod().empty())
    return score;
  return materializeRegion(e, info, info.spec.getScoreMod(),
                           {score, b, h, i, j});
}

//===----------------------------------------------------------------------===//
// Masks
//===----------------------------------------------------------------------===//

bool mlir::attn::hasAnyMask(const AttnOpInfo &info) {
  std::optional<ArrayAttr> masks = info.spec.getMasks();
  return (masks && !masks->empty()) || !info.spec.getMaskMod().empty();
}

MaskEmitContext mlir::attn::getMaskEmitContext(ScalarEmitter &e,
                                               const AttnOpInfo &info) {
  std::function<Value(unsigned, Value, Value)> load = info.loadSegment;
  if (!load)
    load = [&e, captures = info.captures](unsigned index, Value b,
                                          Value pos) -> Value {
      return tensor::ExtractOp::create(e.b, captures[index],
                                       ValueRange{b, pos});
    };
  return MaskEmitContext{e.b, e.b.getLoc(), info.qLen, info.kvLen,
                         std::move(load), info.segmentSpan};
}

/// The structured masks of the spec, in order.
static SmallVector<MaskAttrInterface> getMaskAttrs(const AttnOpInfo &info) {
  SmallVector<MaskAttrInterface> result;
  if (std::optional<ArrayAttr> masks = info.spec.getMasks())
    for (Attribute attr : *masks)
      result.push_back(cast<MaskAttrInterface>(attr));
  return result;
}

Value mlir::attn::emitVisible(ScalarEmitter &e, const AttnOpInfo &info,
                              Value b, Value h, Value i, Value j) {
  MaskEmitContext ctx = getMaskEmitContext(e, info);
  Value global = e.i1(true), local = e.i1(true), sink = e.i1(false);
  for (MaskAttrInterface mask : getMaskAttrs(info)) {
    Value visible = mask.emitVisible(ctx, b, i, j);
    switch (mask.getRole()) {
    case MaskRole::global:
      global = e.andI(global, visible);
      break;
    case MaskRole::local:
      local = e.andI(local, visible);
      break;
    case MaskRole::sinks:
      sink = visible;
      break;
    }
  }
  if (!info.spec.getMaskMod().empty())
    global = e.andI(global, materializeRegion(e, info, info.spec.getMaskMod(),
                                              {b, h, i, j}));
  return e.andI(global, e.orI(local, sink));
}

KVRange mlir::attn::emitKVRange(ScalarEmitter &e, const AttnOpInfo &info,
                                Value i0, Value i1) {
  MaskEmitContext ctx = getMaskEmitContext(e, info);
  Value zero = e.index(0);
  Value gLo = zero, gHi = info.kvLen, lLo = zero, lHi = info.kvLen;
  std::optional<KVBounds> sinkBounds;
  for (MaskAttrInterface mask : getMaskAttrs(info)) {
    KVBounds bounds = mask.emitKVBounds(ctx, i0, i1);
    if (mask.getRole() == MaskRole::sinks) {
      sinkBounds = bounds;
      continue;
    }
    Value &lo = mask.getRole() == MaskRole::global ? gLo : lLo;
    Value &hi = mask.getRole() == MaskRole::global ? gHi : lHi;
    if (bounds.lo)
      lo = e.maxI(lo, bounds.lo);
    if (bounds.hi)
      hi = e.minI(hi, bounds.hi);
  }
  auto clip = [&](Value lo, Value hi) {
    lo = e.minI(e.maxI(lo, zero), info.kvLen);
    hi = e.maxI(e.minI(hi, info.kvLen), lo);
    return KVInterval{lo, hi};
  };
  KVRange range;
  range.main = clip(e.maxI(gLo, lLo), e.minI(gHi, lHi));
  if (sinkBounds) {
    Value lo = sinkBounds->lo ? e.maxI(gLo, sinkBounds->lo) : gLo;
    Value hi = sinkBounds->hi ? e.minI(gHi, sinkBounds->hi) : gHi;
    range.sinks = clip(lo, hi);
  }
  return range;
}

Value mlir::attn::emitVisibleCount(ScalarEmitter &e, const AttnOpInfo &info,
                                   Value b, Value h, Value i,
                                   const KVRange &range) {
  auto countIn = [&](Value lo, Value hi, Value n) {
    return e.forLoop(lo, hi, {n},
                     [&](Value j, ValueRange s) -> SmallVector<Value> {
                       Value vis = emitVisible(e, info, b, h, i, j);
                       return {e.addI(s[0], e.select(vis, e.index(1),
                                                    e.index(0)))};
                     })[0];
  };
  Value n = e.index(0);
  Value mainLo = range.main.lo;
  if (range.sinks) {
    n = countIn(e.index(0), range.sinks->hi, n);
    mainLo = e.maxI(mainLo, range.sinks->hi);
  }
  return countIn(mainLo, range.main.hi, n);
}

/// emitBlockFullyVisible by the structured masks alone.
static Value structuredFullyVisible(ScalarEmitter &e, const AttnOpInfo &info,
                                    Value i0, Value i1, Value j0, Value j1) {
  MaskEmitContext ctx = getMaskEmitContext(e, info);
  Value global = e.i1(true), local = e.i1(true), sink = e.i1(false);
  for (MaskAttrInterface mask : getMaskAttrs(info)) {
    std::optional<Value> full =
        mask.emitBlockFullyVisible(ctx, i0, i1, j0, j1);
    if (!full)
      return e.i1(false);
    switch (mask.getRole()) {
    case MaskRole::global:
      global = e.andI(global, *full);
      break;
    case MaskRole::local:
      local = e.andI(local, *full);
      break;
    case MaskRole::sinks:
      sink = *full;
      break;
    }
  }
  return e.andI(global, e.orI(local, sink));
}

Value mlir::attn::emitBlockFullyVisible(ScalarEmitter &e,
                                        const AttnOpInfo &info, Value i0,
                                        Value i1, Value j0, Value j1) {
  if (!info.spec.getMaskMod().empty())
    return e.i1(false);
  return structuredFullyVisible(e, info, i0, i1, j0, j1);
}

Value mlir::attn::emitBlockHidden(ScalarEmitter &e, const AttnOpInfo &info,
                                  Value i0, Value i1, Value j0, Value j1) {
  MaskEmitContext ctx = getMaskEmitContext(e, info);
  Value hidden = e.i1(false);
  for (MaskAttrInterface mask : getMaskAttrs(info))
    if (mask.getRole() == MaskRole::global)
      if (std::optional<Value> h = mask.emitBlockHidden(ctx, i0, i1, j0, j1))
        hidden = e.orI(hidden, *h);
  return hidden;
}

bool mlir::attn::hasDocumentMask(const AttnOpInfo &info) {
  return llvm::any_of(getMaskAttrs(info), [](MaskAttrInterface m) {
    return isa<DocumentAttr>(m);
  });
}

void mlir::attn::setSegmentSpanLoops(ScalarEmitter &e, AttnOpInfo &info,
                                     Value b) {
  info.segmentSpan = [&e, captures = info.captures, b](
                         unsigned index, bool, Value p0,
                         Value p1) -> std::pair<Value, Value> {
    Value first =
        tensor::ExtractOp::create(e.b, captures[index], ValueRange{b, p0});
    ValueRange span = e.forLoop(
        e.addI(p0, e.index(1)), p1, {first, first},
        [&](Value p, ValueRange a) -> SmallVector<Value> {
          Value id =
              tensor::ExtractOp::create(e.b, captures[index], ValueRange{b, p});
          return {e.minI(a[0], id), e.maxI(a[1], id)};
        });
    return {span[0], span[1]};
  };
}

TileVerdict mlir::attn::emitTileVerdict(ScalarEmitter &e,
                                        const AttnOpInfo &info, Value b,
                                        Value h, Value i0, Value i1, Value j0,
                                        Value j1) {
  Value full = structuredFullyVisible(e, info, i0, i1, j0, j1);
  Value hidden = emitBlockHidden(e, info, i0, i1, j0, j1);
  if (info.spec.getMaskMod().empty())
    return {full, hidden};
  // The region is a global kind: it ANDs with the rest.
  CaptureReader read = info.readCapture;
  if (!read && !info.inlineRegion)
    read = [&](unsigned index, ValueRange at) -> Value {
      if (index >= info.captures.size())
        return Value();
      return tensor::ExtractOp::create(e.b, info.captures[index], at);
    };
  TileVerdict region = emitRegionTileVerdict(
      e, info.spec.getMaskMod(), b, h, i0, i1, j0, j1, read);
  return {e.andI(full, region.allTrue), e.orI(hidden, region.allFalse)};
}

//===----------------------------------------------------------------------===//
// Driving the lowerings
//===----------------------------------------------------------------------===//

SmallVector<Value> mlir::attn::emitOutputLoopNest(
    ScalarEmitter &e, const AttnOpInfo &info, Value numSteps,
    function_ref<SmallVector<Value>(Value, Value, Value, Value, Value)>
        body) {
  ImplicitLocOpBuilder &b = e.b;
  Value output = tensor::EmptyOp::create(
      b,
      getAsOpFoldResult(ValueRange{info.batch, info.qHeads, info.qLen,
                                   info.headDimV}),
      info.elementType);
  Value lse = tensor::EmptyOp::create(
      b, getAsOpFoldResult(ValueRange{info.batch, info.qHeads, info.qLen}),
      b.getF32Type());
  ValueRange results = e.forLoop(
      e.index(0), info.batch, {output, lse},
      [&](Value bIdx, ValueRange a) -> SmallVector<Value> {
        return llvm::to_vector(e.forLoop(
            e.index(0), info.qHeads, a,
            [&](Value h, ValueRange a) -> SmallVector<Value> {
              return llvm::to_vector(e.forLoop(
                  e.index(0), numSteps, a,
                  [&](Value step, ValueRange a) -> SmallVector<Value> {
                    return body(bIdx, h, step, a[0], a[1]);
                  }));
            }));
      });
  SmallVector<Value> replacements;
  for (auto [value, result] : llvm::zip(results, info.op->getResults())) {
    if (value.getType() != result.getType())
      value = tensor::CastOp::create(b, result.getType(), value);
    replacements.push_back(value);
  }
  return replacements;
}

template <typename OpT> static LogicalResult verifyNoVariantRef(OpT op) {
  if (!op.getVariantAttr())
    return success();
  return op.emitOpError() << "references variant " << op.getVariantAttr()
                          << "; run attn-instantiate-variants first";
}

LogicalResult mlir::attn::verifyInstantiated(AttentionOp op) {
  return verifyNoVariantRef(op);
}

LogicalResult mlir::attn::verifyInstantiated(AttentionGradOp op) {
  return verifyNoVariantRef(op);
}

LogicalResult mlir::attn::replaceAttentionOps(
    Operation *root,
    function_ref<SmallVector<Value>(ImplicitLocOpBuilder &, AttentionOp)>
        lower) {
  SmallVector<AttentionOp> ops;
  root->walk([&](AttentionOp op) { ops.push_back(op); });
  for (AttentionOp op : ops) {
    if (failed(verifyInstantiated(op)))
      return failure();
    ImplicitLocOpBuilder b(op.getLoc(), op);
    op->replaceAllUsesWith(lower(b, op));
    op->erase();
  }
  return success();
}
