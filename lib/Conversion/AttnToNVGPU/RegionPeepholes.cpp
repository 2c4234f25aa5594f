//===- RegionPeepholes.cpp - score and mask regions on the GPU --*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/RegionPeepholes.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseSet.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

namespace {

/// Integers of a region known to lie in (-2^31, 2^31): the index arguments
/// (batch, head and positions, below 2^31: the runtime checks the sizes),
/// their integer casts, differences of two such non-negative values and
/// absolute values of those.
class SmallIntegers {
public:
  void visit(Operation &op) {
    if (op.getNumResults() == 1 && isCastOfIndexArg(op.getResult(0))) {
      nonNegative.insert(op.getResult(0));
      small.insert(op.getResult(0));
    } else if (isa<arith::SubIOp>(op) &&
               nonNegative.contains(op.getOperand(0)) &&
               nonNegative.contains(op.getOperand(1))) {
      small.insert(op.getResult(0));
    } else if (isa<math::AbsIOp>(op) && small.contains(op.getOperand(0))) {
      small.insert(op.getResult(0));
      nonNegative.insert(op.getResult(0));
    }
  }
  bool contains(Value v) const { return small.contains(v); }

private:
  static bool isCastOfIndexArg(Value v) {
    auto cast = v.getDefiningOp<arith::IndexCastOp>();
    return cast && isa<BlockArgument>(cast.getIn()) &&
           cast.getIn().getType().isIndex();
  }
  llvm::DenseSet<Value> nonNegative, small;
};

/// Emits the faster form of `op` into `mapping`; false when it has none.
class Peepholes {
public:
  Peepholes(KernelContext &k, IRMapping &mapping, const SmallIntegers &small,
            const DenseMap<Value, CaptureBuffer> &captureOf)
      : k(k), e(k.e), mapping(mapping), small(small), captureOf(captureOf) {}

  bool rewrite(Operation &op) {
    if (auto conv = dyn_cast<arith::SIToFPOp>(op))
      return siToFp(conv);
    if (auto ex = dyn_cast<tensor::ExtractOp>(op))
      return extract(ex);
    if (auto tanh = dyn_cast<math::TanhOp>(op))
      return tanhOnSfu(tanh);
    if (auto absi = dyn_cast<math::AbsIOp>(op))
      return absAsSelect(absi);
    if (auto div = dyn_cast<arith::DivFOp>(op))
      return divByConstant(div);
    return false;
  }

private:
  // The same value as the 64-bit conversion, without its slow sequence.
  bool siToFp(arith::SIToFPOp conv) {
    if (!small.contains(conv.getIn()) || !conv.getIn().getType().isInteger(64))
      return false;
    Value narrow = arith::TruncIOp::create(k.b, k.b.getI32Type(),
                                           mapping.lookup(conv.getIn()));
    mapping.map(conv.getResult(),
                arith::SIToFPOp::create(k.b, conv.getType(), narrow));
    return true;
  }
  // Captures are flat row-major buffers.
  bool extract(tensor::ExtractOp ex) {
    const CaptureBuffer &capture = captureOf.find(ex.getTensor())->second;
    SmallVector<Value> indices;
    for (Value index : ex.getIndices())
      indices.push_back(mapping.lookup(index));
    mapping.map(ex.getResult(),
                memref::LoadOp::create(
                    k.b, capture.buffer,
                    ValueRange{captureOffset(k, capture, indices)}));
    return true;
  }
  // tanh(x) = 1 - 2 / (exp(2x) + 1) on the special-function unit (ex2.approx,
  // rcp.approx) rather than libdevice's exact tanhf; saturates correctly
  // (exp2 -> inf gives 1, -> 0 gives -1).
  bool tanhOnSfu(math::TanhOp tanh) {
    if (!tanh.getType().isF32())
      return false;
    Value x = mapping.lookup(tanh.getOperand());
    Value e2x = k.exp2(e.mul(x, k.f32(2.0 / std::log(2.0))));
    Value inv = k.rcp(e.add(e2x, k.f32(1.0)));
    mapping.map(tanh.getResult(), e.sub(k.f32(1.0), e.mul(k.f32(2.0), inv)));
    return true;
  }
  // math.absi has no NVVM lowering.
  bool absAsSelect(math::AbsIOp absi) {
    Value x = mapping.lookup(absi.getOperand());
    Value zeroI = arith::ConstantOp::create(k.b, k.b.getZeroAttr(x.getType()));
    Value neg = arith::SubIOp::create(k.b, zeroI, x);
    Value isNeg =
        arith::CmpIOp::create(k.b, arith::CmpIPredicate::slt, x, zeroI);
    mapping.map(absi.getResult(), e.select(isNeg, neg, x));
    return true;
  }
  // Multiply by the reciprocal (within an ulp) instead of the IEEE division
  // sequence.
  bool divByConstant(arith::DivFOp div) {
    FloatAttr c;
    if (!div.getType().isF32() ||
        !matchPattern(div.getRhs(), m_Constant(&c)) ||
        c.getValueAsDouble() == 0.0)
      return false;
    mapping.map(div.getResult(), e.mul(mapping.lookup(div.getLhs()),
                                       k.f32(1.0 / c.getValueAsDouble())));
    return true;
  }

  KernelContext &k;
  ScalarEmitter &e;
  IRMapping &mapping;
  const SmallIntegers &small;
  const DenseMap<Value, CaptureBuffer> &captureOf;
};

} // namespace

Value kernel::inlineRegionOnGPU(KernelContext &k, Region &region,
                                ValueRange args,
                                ArrayRef<CaptureBuffer> captures) {
  Block &block = region.front();
  IRMapping mapping;
  for (auto [arg, v] : llvm::zip(block.getArguments(), args))
    mapping.map(arg, v);
  DenseMap<Value, CaptureBuffer> captureOf;
  for (auto [i, arg] :
       llvm::enumerate(block.getArguments().drop_front(args.size())))
    captureOf[arg] = captures[i];
  SmallIntegers small;
  Peepholes peepholes(k, mapping, small, captureOf);
  for (Operation &inner : block.without_terminator()) {
    small.visit(inner);
    if (!peepholes.rewrite(inner))
      k.b.clone(inner, mapping);
  }
  return mapping.lookup(cast<YieldOp>(block.getTerminator()).getValue());
}

Value kernel::captureOffset(KernelContext &k, const CaptureBuffer &capture,
                           ValueRange indices) {
  // The first size may be dynamic; it never scales an index.
  Value linear = k.idx(0);
  ArrayRef<int64_t> shape = capture.type.getShape();
  for (auto [d, index] : llvm::enumerate(indices))
    linear = d ? k.e.addI(k.e.mulI(linear, k.idx(shape[d])), index) : index;
  return linear;
}

/// The element of `capture` at `indices`.
static Value loadCapture(KernelContext &k, const CaptureBuffer &capture,
                         ValueRange indices) {
  return memref::LoadOp::create(
      k.b, capture.buffer, ValueRange{captureOffset(k, capture, indices)});
}

FailureOr<ScoreModVJP>
kernel::emitScoreModVJPOnGPU(KernelContext &k, Region &region,
                             ValueRange args, ArrayRef<CaptureBuffer> captures,
                             Value adjoint) {
  // The captures enter as empty tensors of the region's argument types; the
  // reads of them that the derivative emits become loads from the buffers.
  Block &block = region.front();
  SmallVector<Value> all(args.begin(), args.end());
  SmallVector<Value> placeholders;
  for (BlockArgument arg : block.getArguments().drop_front(args.size())) {
    auto type = cast<RankedTensorType>(arg.getType());
    SmallVector<Value> dynamic(type.getNumDynamicDims(), k.idx(1));
    placeholders.push_back(
        tensor::EmptyOp::create(k.b, type, dynamic).getResult());
    all.push_back(placeholders.back());
  }
  FailureOr<ScoreModVJP> vjp =
      emitScoreModVJP(k.b, k.b.getLoc(), region, all, adjoint);
  if (failed(vjp))
    return failure();
  for (auto [placeholder, capture] : llvm::zip(placeholders, captures)) {
    for (Operation *user : llvm::make_early_inc_range(placeholder.getUsers())) {
      auto read = dyn_cast<tensor::ExtractOp>(user);
      if (!read)
        return user->emitOpError()
               << "reads a captured tensor other than by tensor.extract; "
                  "the GPU kernel reads captures from flat buffers";
      OpBuilder::InsertionGuard guard(k.b);
      k.b.setInsertionPoint(read);
      read.getResult().replaceAllUsesWith(
          loadCapture(k, capture, read.getIndices()));
      read.erase();
    }
    placeholder.getDefiningOp()->erase();
  }
  return vjp;
}

void kernel::bindKernelOpInfo(KernelContext &k, VariantSpecOpInterface spec,
                              ArrayRef<Value> sizes, Type elementType,
                              int64_t dqk, int64_t dv, double scale,
                              double gamma, ArrayRef<CaptureBuffer> captures,
                              AttnOpInfo &info) {
  info.spec = spec;
  info.batch = sizes[0];
  info.qHeads = sizes[1];
  info.kvHeads = sizes[2];
  info.qLen = sizes[3];
  info.kvLen = sizes[4];
  info.headDimQK = k.idx(dqk);
  info.headDimV = k.idx(dv);
  info.group = k.e.divI(info.qHeads, info.kvHeads);
  info.numSinkRows = sizes[5];
  info.elementType = elementType;
  info.scale = scale;
  info.gamma = gamma;
  info.inlineRegion = [&k, captures](Region &region, ValueRange args) {
    return inlineRegionOnGPU(k, region, args, captures);
  };
  info.readCapture = [&k, captures](unsigned index,
                                    ValueRange at) -> Value {
    if (index >= captures.size())
      return Value();
    return loadCapture(k, captures[index], at);
  };
  Value qLen = info.qLen, kvLen = info.kvLen;
  // Query segment ids are [B, Sq], key segment ids [B, Sk].
  llvm::SmallDenseSet<unsigned> queryIds;
  if (std::optional<ArrayAttr> masks = spec.getMasks())
    for (Attribute a : *masks)
      if (auto d = dyn_cast<DocumentAttr>(a))
        if (d.getQSegments() != d.getKvSegments())
          queryIds.insert(d.getQSegments());
  info.loadSegment = [&k, queryIds, captures, qLen, kvLen](
                         unsigned index, Value bi, Value pos) -> Value {
    bool isQuery = queryIds.contains(index);
    Value linear = k.e.addI(k.e.mulI(bi, isQuery ? qLen : kvLen), pos);
    return memref::LoadOp::create(k.b, captures[index].buffer,
                                  ValueRange{linear});
  };
}
