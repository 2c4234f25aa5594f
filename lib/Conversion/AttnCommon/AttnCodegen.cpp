//===- AttnCodegen.cpp - scalar code for attn lowerings ---------*- C++ -*-===//

#include "attn/Conversion/AttnCommon/AttnCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/TypeSwitch.h"

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

AttnOpInfo AttnOpInfo::get(ImplicitLocOpBuilder &b, AttentionOp op) {
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

//===----------------------------------------------------------------------===//
// Scores
//===----------------------------------------------------------------------===//

Value mlir::attn::alignedPosition(ScalarEmitter &e, const AttnOpInfo &info,
                                  Value i, Alignment alignment) {
  if (alignment == Alignment::top_left)
    return i;
  return e.addI(i, e.subI(info.kvLen, info.qLen));
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
  return info.op.getQuery().getType().isDynamicDim(3);
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

/// NATTEN's 1-D neighborhood with dilation: see docs/semantics.md.
static Value emitNatten(ScalarEmitter &e, Value i, Value j, Value length,
                        int64_t kernel, int64_t dilation) {
  using P = arith::CmpIPredicate;
  Value d = e.index(dilation), k = e.index(kernel);
  Value g = e.remI(i, d);
  Value sameGroup = e.cmpI(P::eq, g, e.remI(j, d));
  // Lg = ceil((L - g) / D)
  Value groupLen = e.divI(e.addI(e.subI(length, g), e.index(dilation - 1)), d);
  Value ig = e.divI(i, d);
  Value start = e.maxI(e.index(0), e.minI(e.subI(ig, e.index(kernel / 2)),
                                          e.subI(groupLen, k)));
  Value jg = e.divI(j, d);
  Value inWindow = e.andI(e.cmpI(P::sge, jg, start),
                          e.cmpI(P::slt, jg, e.addI(start, k)));
  return e.andI(sameGroup, inWindow);
}

Value mlir::attn::emitVisible(ScalarEmitter &e, const AttnOpInfo &info,
                              Value b, Value h, Value i, Value j) {
  using P = arith::CmpIPredicate;
  Value global = e.i1(true), local = e.i1(true), sink = e.i1(false);
  if (std::optional<ArrayAttr> masks = info.spec.getMasks()) {
    for (Attribute attr : *masks) {
      TypeSwitch<Attribute>(attr)
          .Case([&](CausalAttr m) {
            Value pos = alignedPosition(e, info, i, m.getAlignment());
            global = e.andI(global, e.cmpI(P::sle, j, pos));
          })
          .Case([&](PrefixLMAttr m) {
            Value pos = alignedPosition(e, info, i, m.getAlignment());
            Value ok = e.orI(e.cmpI(P::slt, j, e.index(m.getPrefix())),
                             e.cmpI(P::sle, j, pos));
            global = e.andI(global, ok);
          })
          .Case([&](DocumentAttr m) {
            auto load = [&](unsigned index, Value pos) -> Value {
              if (info.loadSegment)
                return info.loadSegment(index, b, pos);
              return tensor::ExtractOp::create(e.b, info.captures[index],
                                               ValueRange{b, pos});
            };
            Value qs = load(m.getQSegments(), i);
            Value ks = load(m.getKvSegments(), j);
            global = e.andI(global, e.cmpI(P::eq, qs, ks));
          })
          .Case([&](SlidingWindowAttr m) {
            Value pos = alignedPosition(e, info, i, m.getAlignment());
            Value ok = e.andI(
                e.cmpI(P::sge, j, e.subI(pos, e.index(m.getLeft()))),
                e.cmpI(P::sle, j, e.addI(pos, e.index(m.getRight()))));
            local = e.andI(local, ok);
          })
          .Case([&](ChunkedAttr m) {
            Value pos = i; // Chunks have no alignment: pos(i) = i.
            Value c = e.index(m.getSize());
            Value ok = e.andI(e.cmpI(P::sge, pos, e.index(0)),
                              e.cmpI(P::eq, e.divI(pos, c), e.divI(j, c)));
            local = e.andI(local, ok);
          })
          .Case([&](Neighborhood1DAttr m) {
            local = e.andI(local, emitNatten(e, i, j, info.kvLen,
                                             m.getKernel(), m.getDilation()));
          })
          .Case([&](Neighborhood2DAttr m) {
            Value w = e.index(m.getWidth());
            Value rows = emitNatten(e, e.divI(i, w), e.divI(j, w),
                                    e.index(m.getHeight()), m.getKernelH(),
                                    m.getDilationH());
            Value cols = emitNatten(e, e.remI(i, w), e.remI(j, w), w,
                                    m.getKernelW(), m.getDilationW());
            local = e.andI(local, e.andI(rows, cols));
          })
          .Case([&](SinkTokensAttr m) {
            sink = e.cmpI(P::slt, j, e.index(m.getCount()));
          });
    }
  }
  if (!info.spec.getMaskMod().empty())
    global = e.andI(global, materializeRegion(e, info, info.spec.getMaskMod(),
                                              {b, h, i, j}));
  return e.andI(global, e.orI(local, sink));
}

KVRange mlir::attn::emitKVRange(ScalarEmitter &e, const AttnOpInfo &info,
                                Value i0, Value i1) {
  Value zero = e.index(0), one = e.index(1);
  Value last = e.subI(i1, one);
  Value gLo = zero, gHi = info.kvLen, lLo = zero, lHi = info.kvLen;
  std::optional<int64_t> sinkCount;
  if (std::optional<ArrayAttr> masks = info.spec.getMasks()) {
    for (Attribute attr : *masks) {
      TypeSwitch<Attribute>(attr)
          .Case([&](CausalAttr m) {
            Value pos = alignedPosition(e, info, last, m.getAlignment());
            gHi = e.minI(gHi, e.addI(pos, one));
          })
          .Case([&](PrefixLMAttr m) {
            Value pos = alignedPosition(e, info, last, m.getAlignment());
            gHi = e.minI(gHi,
                         e.maxI(e.index(m.getPrefix()), e.addI(pos, one)));
          })
          .Case([&](SlidingWindowAttr m) {
            Value first = alignedPosition(e, info, i0, m.getAlignment());
            Value pos = alignedPosition(e, info, last, m.getAlignment());
            lLo = e.maxI(lLo, e.subI(first, e.index(m.getLeft())));
            lHi = e.minI(lHi, e.addI(pos, e.index(m.getRight() + 1)));
          })
          .Case([&](ChunkedAttr m) {
            Value c = e.index(m.getSize());
            Value first = e.maxI(i0, zero);
            lLo = e.maxI(lLo, e.mulI(e.divI(first, c), c));
            Value lastChunkEnd =
                e.mulI(e.addI(e.divI(e.maxI(last, zero), c), one), c);
            lHi = e.minI(lHi, lastChunkEnd);
          })
          .Case([&](Neighborhood1DAttr m) {
            Value reach = e.index((m.getKernel() - 1) * m.getDilation());
            lLo = e.maxI(lLo, e.subI(i0, reach));
            lHi = e.minI(lHi, e.addI(last, e.addI(reach, one)));
          })
          .Case([&](Neighborhood2DAttr m) {
            Value w = e.index(m.getWidth());
            Value reach = e.index((m.getKernelH() - 1) * m.getDilationH());
            Value r0 = e.divI(i0, w), r1 = e.divI(last, w);
            lLo = e.maxI(lLo, e.mulI(e.subI(r0, reach), w));
            lHi = e.minI(lHi, e.mulI(e.addI(r1, e.addI(reach, one)), w));
          })
          .Case([&](SinkTokensAttr m) { sinkCount = m.getCount(); });
    }
  }
  auto clip = [&](Value lo, Value hi) {
    lo = e.minI(e.maxI(lo, zero), info.kvLen);
    hi = e.maxI(e.minI(hi, info.kvLen), lo);
    return KVInterval{lo, hi};
  };
  KVRange range;
  range.main = clip(e.maxI(gLo, lLo), e.minI(gHi, lHi));
  if (sinkCount)
    range.sinks = clip(gLo, e.minI(gHi, e.index(*sinkCount)));
  return range;
}

Value mlir::attn::emitBlockFullyVisible(ScalarEmitter &e,
                                        const AttnOpInfo &info, Value i0,
                                        Value i1, Value j0, Value j1) {
  using P = arith::CmpIPredicate;
  if (!info.spec.getMaskMod().empty())
    return e.i1(false);
  Value one = e.index(1);
  Value iLast = e.subI(i1, one), jLast = e.subI(j1, one);
  Value global = e.i1(true), local = e.i1(true);
  Value sink = e.i1(false);
  bool decidable = true;
  if (std::optional<ArrayAttr> masks = info.spec.getMasks()) {
    for (Attribute attr : *masks) {
      TypeSwitch<Attribute>(attr)
          .Case([&](CausalAttr m) {
            Value first = alignedPosition(e, info, i0, m.getAlignment());
            global = e.andI(global, e.cmpI(P::sle, jLast, first));
          })
          .Case([&](PrefixLMAttr m) {
            Value first = alignedPosition(e, info, i0, m.getAlignment());
            Value ok = e.orI(e.cmpI(P::sle, j1, e.index(m.getPrefix())),
                             e.cmpI(P::sle, jLast, first));
            global = e.andI(global, ok);
          })
          .Case([&](SlidingWindowAttr m) {
            Value first = alignedPosition(e, info, i0, m.getAlignment());
            Value lastPos = alignedPosition(e, info, iLast, m.getAlignment());
            Value ok = e.andI(
                e.cmpI(P::sge, j0, e.subI(lastPos, e.index(m.getLeft()))),
                e.cmpI(P::sle, jLast, e.addI(first, e.index(m.getRight()))));
            local = e.andI(local, ok);
          })
          .Case([&](ChunkedAttr m) {
            Value c = e.index(m.getSize());
            Value chunk = e.divI(i0, c);
            Value ok = e.cmpI(P::sge, i0, e.index(0));
            ok = e.andI(ok, e.cmpI(P::eq, e.divI(iLast, c), chunk));
            ok = e.andI(ok, e.cmpI(P::eq, e.divI(j0, c), chunk));
            ok = e.andI(ok, e.cmpI(P::eq, e.divI(jLast, c), chunk));
            local = e.andI(local, ok);
          })
          .Case([&](SinkTokensAttr m) {
            sink = e.cmpI(P::sle, j1, e.index(m.getCount()));
          })
          .Default([&](Attribute) { decidable = false; });
    }
  }
  if (!decidable)
    return e.i1(false);
  return e.andI(global, e.orI(local, sink));
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

LogicalResult mlir::attn::verifyInstantiated(AttentionOp op) {
  if (!op.getVariantAttr())
    return success();
  return op.emitOpError() << "references variant " << op.getVariantAttr()
                          << "; run attn-instantiate-variants first";
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
