//===- AttnToNVGPU.cpp - tensor-core kernels for attn.attention -*- C++ -*-===//
//
// Generates one gpu.func per attn.attention: the tiled online algorithm of
// attn-to-flash (docs/semantics.md), mapped onto the GPU the way
// FlashAttention-2 does it:
//
// - one CTA per (q-tile of 64 rows, query head, batch); 4 warps, each owning
//   16 query rows; the Q tile stays in registers as mma A fragments;
// - K and V tiles of 64 keys stream through a 2-stage shared-memory ring
//   filled with cp.async (zero-filled past the sequence end), rows padded by
//   16 bytes so that ldmatrix is free of bank conflicts;
// - S = Q.K^T and O += P.V with mma.sync m16n8k16 (f16 or bf16 in, f32
//   accumulate); P never leaves registers (the S accumulators are repacked as
//   the A fragments of P.V);
// - per accumulator element, (q_idx, kv_idx) come from the fragment layout
//   (row = lane/4 (+8), col = 2*(lane%4) (+1)); the score region and the mask
//   code run there, and the mask code only on tiles that are not fully
//   visible; tiles the structured masks hide entirely are never visited;
// - the online softmax works in the log2 domain with exp2, row statistics
//   reduced over the 4 lanes of a quad with shuffles.
//
// The kernel takes every tensor as a 1-D global memref (row-major, as torch
// lays them out) and the run-time sizes B, Hq, Hkv, Sq, Sk as index values;
// head dims are compile-time. Launch facts go into the `attn.kernels`
// attribute of the module for the bundle writer.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Passes.h"

#include "attn/Conversion/AttnCommon/AttnCodegen.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/ScopedPrinter.h"

#include <cmath>
#include <limits>

#define DEBUG_TYPE "attn-to-nvgpu"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNTONVGPUPASS
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr int64_t kBlockM = 64;   ///< Query rows per CTA.
constexpr int64_t kBlockN = 64;   ///< Keys per KV tile.
constexpr int64_t kWarps = 4;     ///< Warps per CTA, 16 rows each.
constexpr int64_t kThreads = 32 * kWarps;
constexpr int64_t kPad = 8;       ///< Elements of padding per smem row.
constexpr int64_t kNTiles = kBlockN / 8;
constexpr unsigned kSharedSpace = 3;
constexpr unsigned kGlobalSpace = 1;

/// Why an op cannot be compiled for the GPU yet, or nullopt.
std::optional<std::string> unsupportedReason(AttentionOp op) {
  auto spec = cast<VariantSpecOpInterface>(op.getOperation());
  Type elt = op.getQuery().getType().getElementType();
  if (!elt.isF16() && !elt.isBF16())
    return "element type " + llvm::to_string(elt) +
           " (the tensor-core kernel takes f16 or bf16)";
  int64_t dqk = op.getQuery().getType().getDimSize(3);
  int64_t dv = op.getValue().getType().getDimSize(3);
  if (ShapedType::isDynamic(dqk) || ShapedType::isDynamic(dv))
    return std::string("dynamic head dims (they are compile-time in the "
                       "kernel)");
  if (dqk % 16 || dv % 16 || dqk > 256 || dv > 256)
    return "head dims " + std::to_string(dqk) + " and " + std::to_string(dv) +
           " (they must be multiples of 16, at most 256)";
  if (spec.getQFeatureMap() != FeatureMap::identity ||
      spec.getKFeatureMap() != FeatureMap::identity)
    return std::string("feature maps q_map/k_map");
  // Captures are read row-major from flat buffers: the sizes past the first
  // must be static, except for document segment ids ([B, S], S from Sq/Sk).
  llvm::SmallDenseSet<int64_t> segmentCaptures;
  if (std::optional<ArrayAttr> masks = spec.getMasks())
    for (Attribute a : *masks)
      if (auto d = dyn_cast<DocumentAttr>(a))
      {
        segmentCaptures.insert(d.getQSegments());
        segmentCaptures.insert(d.getKvSegments());
      }
  for (auto [i, c] : llvm::enumerate(op.getCaptures())) {
    auto t = cast<RankedTensorType>(c.getType());
    if (segmentCaptures.contains(i))
      continue;
    if (llvm::any_of(t.getShape().drop_front(), ShapedType::isDynamic))
      return "captured operand of type " + llvm::to_string(t) +
             " (sizes past the first must be static)";
  }
  auto checkRegion = [&](Region &r) -> std::optional<std::string> {
    if (r.empty())
      return std::nullopt;
    for (Operation &inner : r.front().without_terminator()) {
      if (isa<tensor::ExtractOp>(inner) ||
          inner.getDialect()->getNamespace() == "arith" ||
          inner.getDialect()->getNamespace() == "math")
        continue;
      return "op '" + inner.getName().getStringRef().str() +
             "' in a region (the kernel takes arith, math and "
             "tensor.extract of captures)";
    }
    return std::nullopt;
  };
  if (auto r = checkRegion(spec.getScoreMod()))
    return r;
  if (auto r = checkRegion(spec.getMaskMod()))
    return r;
  return std::nullopt;
}

/// Builds the kernel for one op.
class KernelBuilder {
public:
  KernelBuilder(AttentionOp op, gpu::GPUModuleOp gpuModule, StringRef name)
      : op(op), gpuModule(gpuModule), name(name.str()) {}

  /// Creates the gpu.func; returns the launch description.
  DictionaryAttr build();

private:
  // Helpers on the kernel's builder.
  Value idx(int64_t v) { return e->index(v); }
  Value f32(double v) { return e->f32(v); }
  Value shuffleXor(Value x, int32_t offset);
  /// 16-byte cp.async of `count` rows x `dim` elements from global `src`
  /// (row r at element offset rowBase(r)) into smem `dst[stage]`.
  void asyncCopyTile(Value src, Value dst, Value stage, int64_t dim,
                     function_ref<Value(Value row)> rowOffset,
                     Value validRows);
  /// ldmatrix returning the i32 registers of the fragment.
  SmallVector<Value> ldmatrix(Value smem, ValueRange indices, int numTiles,
                              bool transpose);
  SmallVector<Value> mma(ArrayRef<Value> a, ArrayRef<Value> b,
                         ArrayRef<Value> c);
  Value packPair(Value lo, Value hi);
  /// One mma operand register from a vector<2xelt> pair.
  Value fragmentRegister(Value pair);

  AttentionOp op;
  gpu::GPUModuleOp gpuModule;
  std::string name;
  std::unique_ptr<ImplicitLocOpBuilder> b;
  std::unique_ptr<ScalarEmitter> e;
  Type elt;
  NVVM::MMATypes mmaType;
};

Value KernelBuilder::shuffleXor(Value x, int32_t offset) {
  return gpu::ShuffleOp::create(*b, x, offset, 32, gpu::ShuffleMode::XOR)
      .getShuffleResult();
}

Value KernelBuilder::fragmentRegister(Value pair) {
  // nvvm.mma.sync takes f16 pairs as vector<2xf16> and bf16 pairs packed
  // in an i32.
  if (elt.isF16())
    return pair;
  Value i = vector::BitCastOp::create(
      *b, VectorType::get({1}, b->getI32Type()), pair);
  return vector::ExtractOp::create(*b, i, ArrayRef<int64_t>{0});
}

Value KernelBuilder::packPair(Value lo, Value hi) {
  Value l = arith::TruncFOp::create(*b, elt, lo);
  Value h = arith::TruncFOp::create(*b, elt, hi);
  Value v = vector::FromElementsOp::create(*b, VectorType::get({2}, elt),
                                           ValueRange{l, h});
  return fragmentRegister(v);
}

SmallVector<Value> KernelBuilder::ldmatrix(Value smem, ValueRange indices,
                                           int numTiles, bool transpose) {
  auto fragType = VectorType::get({numTiles, 2}, elt);
  Value frag = nvgpu::LdMatrixOp::create(*b, fragType, smem, indices,
                                         transpose, numTiles);
  SmallVector<Value> regs;
  for (int i = 0; i < numTiles; ++i)
    regs.push_back(fragmentRegister(
        vector::ExtractOp::create(*b, frag, ArrayRef<int64_t>{i})));
  return regs;
}

SmallVector<Value> KernelBuilder::mma(ArrayRef<Value> a, ArrayRef<Value> bb,
                                      ArrayRef<Value> c) {
  Type f = b->getF32Type();
  auto resType = LLVM::LLVMStructType::getLiteral(b->getContext(),
                                                  {f, f, f, f});
  Value d = NVVM::MmaOp::create(
      *b, resType, a, bb, c, ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
      std::nullopt, std::array<NVVM::MMATypes, 2>{mmaType, mmaType},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  SmallVector<Value> out;
  for (int64_t i = 0; i < 4; ++i)
    out.push_back(LLVM::ExtractValueOp::create(*b, d, i));
  return out;
}

void KernelBuilder::asyncCopyTile(Value src, Value dst, Value stage,
                                  int64_t dim,
                                  function_ref<Value(Value row)> rowOffset,
                                  Value validRows) {
  int64_t chunksPerRow = dim / 8;
  int64_t perThread = kBlockN * chunksPerRow / kThreads;
  Value tid = gpu::ThreadIdOp::create(*b, gpu::Dimension::x);
  for (int64_t it = 0; it < perThread; ++it) {
    Value c = e->addI(tid, idx(it * kThreads));
    Value row = e->divI(c, idx(chunksPerRow));
    Value col = e->mulI(e->remI(c, idx(chunksPerRow)), idx(8));
    Value valid = e->cmpI(arith::CmpIPredicate::slt, row, validRows);
    // Rows past the end read nothing (zero fill) from a clamped address.
    Value srcRow = e->select(valid, row, idx(0));
    Value srcIndex = e->addI(rowOffset(srcRow), col);
    Value srcElements = e->select(valid, idx(8), idx(0));
    nvgpu::DeviceAsyncCopyOp::create(
        *b, nvgpu::DeviceAsyncTokenType::get(b->getContext()), dst,
        ValueRange{stage, row, col}, src, ValueRange{srcIndex},
        b->getIndexAttr(8), srcElements, UnitAttr());
  }
}

DictionaryAttr KernelBuilder::build() {
  MLIRContext *ctx = op.getContext();
  auto spec = cast<VariantSpecOpInterface>(op.getOperation());
  elt = op.getQuery().getType().getElementType();
  mmaType = elt.isBF16() ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16;
  const int64_t dqk = op.getQuery().getType().getDimSize(3);
  const int64_t dv = op.getValue().getType().getDimSize(3);
  const Normalization norm = spec.getNormalizationKind();
  const bool softmax = isSoftmaxFamily(norm);
  const bool rbf = spec.getScoreKind() == ScoreKind::rbf;
  const bool dropQueryNorm =
      rbf && isShiftInvariant(spec, bool(op.getSinkLogits()));
  const double log2e = 1.0 / std::log(2.0);
  const int64_t strideQK = dqk + kPad, strideV = dv + kPad;

  // Signature: tensors as 1-D global memrefs, then the run-time sizes.
  SmallVector<Type> argTypes;
  SmallVector<Attribute> argDocs;
  auto addBuffer = [&](StringRef argName, Type elementType) {
    argTypes.push_back(MemRefType::get(
        {ShapedType::kDynamic}, elementType, MemRefLayoutAttrInterface(),
        IntegerAttr::get(IntegerType::get(ctx, 64), kGlobalSpace)));
    std::string dtype = llvm::to_string(elementType);
    argDocs.push_back(DictionaryAttr::get(
        ctx, {NamedAttribute(StringAttr::get(ctx, "name"),
                             StringAttr::get(ctx, argName)),
              NamedAttribute(StringAttr::get(ctx, "kind"),
                             StringAttr::get(ctx, "buffer")),
              NamedAttribute(StringAttr::get(ctx, "dtype"),
                             StringAttr::get(ctx, dtype))}));
  };
  Type f32Type = Float32Type::get(ctx);
  addBuffer("q", elt);
  addBuffer("k", elt);
  addBuffer("v", elt);
  addBuffer("o", elt);
  addBuffer("lse", f32Type);
  if (op.getSinkLogits())
    addBuffer("sink_logits", f32Type);
  if (op.getSinkKey()) {
    addBuffer("sink_key", elt);
    addBuffer("sink_value", elt);
  }
  for (auto [i, c] : llvm::enumerate(op.getCaptures()))
    addBuffer("capture" + std::to_string(i),
              cast<RankedTensorType>(c.getType()).getElementType());
  for (StringRef size : {"B", "Hq", "Hkv", "Sq", "Sk", "Ns"}) {
    argTypes.push_back(IndexType::get(ctx));
    argDocs.push_back(DictionaryAttr::get(
        ctx, {NamedAttribute(StringAttr::get(ctx, "name"),
                             StringAttr::get(ctx, size)),
              NamedAttribute(StringAttr::get(ctx, "kind"),
                             StringAttr::get(ctx, "size"))}));
  }

  OpBuilder mb(ctx);
  mb.setInsertionPointToEnd(gpuModule.getBody());
  auto func = gpu::GPUFuncOp::create(mb, op.getLoc(), name,
                                     FunctionType::get(ctx, argTypes, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), UnitAttr::get(ctx));
  func.setKnownBlockSizeAttr(
      DenseI32ArrayAttr::get(ctx, {int32_t(kThreads), 1, 1}));
  Block &entry = func.getBody().front();
  b = std::make_unique<ImplicitLocOpBuilder>(op.getLoc(), ctx);
  b->setInsertionPointToStart(&entry);
  e = std::make_unique<ScalarEmitter>(ScalarEmitter{*b});
  gpu::ReturnOp::create(*b);
  b->setInsertionPointToStart(&entry);

  unsigned argNo = 0;
  auto nextArg = [&]() { return entry.getArgument(argNo++); };
  Value qBuf = nextArg(), kBuf = nextArg(), vBuf = nextArg(),
        oBuf = nextArg(), lseBuf = nextArg();
  Value sinkLogitsBuf = op.getSinkLogits() ? nextArg() : Value();
  Value sinkKeyBuf = op.getSinkKey() ? nextArg() : Value();
  Value sinkValueBuf = op.getSinkKey() ? nextArg() : Value();
  SmallVector<Value> captureBufs;
  for (size_t i = 0; i < op.getCaptures().size(); ++i)
    captureBufs.push_back(nextArg());
  Value batch = nextArg(), qHeads = nextArg(), kvHeads = nextArg(),
        qLen = nextArg(), kvLen = nextArg(), numSinkRows = nextArg();

  // The codegen helpers work on an AttnOpInfo: point it at kernel values.
  AttnOpInfo info;
  info.op = op;
  info.spec = spec;
  info.batch = batch;
  info.qHeads = qHeads;
  info.kvHeads = kvHeads;
  info.qLen = qLen;
  info.kvLen = kvLen;
  info.headDimQK = idx(dqk);
  info.headDimV = idx(dv);
  info.group = e->divI(qHeads, kvHeads);
  info.numSinkRows = numSinkRows;
  info.elementType = elt;
  info.scale = getEffectiveScale(spec, dqk);
  info.gamma = getEffectiveGamma(spec, dqk);

  // Clones the score or mask region at the current point; captures are read
  // from their buffers (row-major) instead of tensor.extract.
  auto inlineRegion = [&](Region &region, ValueRange args) -> Value {
    Block &block = region.front();
    IRMapping mapping;
    for (auto [arg, v] : llvm::zip(block.getArguments(), args))
      mapping.map(arg, v);
    DenseMap<Value, std::pair<Value, RankedTensorType>> captureOf;
    for (auto [k, arg] :
         llvm::enumerate(block.getArguments().drop_front(args.size())))
      captureOf[arg] = {captureBufs[k],
                        cast<RankedTensorType>(op.getCaptures()[k].getType())};
    for (Operation &inner : block.without_terminator()) {
      if (auto ex = dyn_cast<tensor::ExtractOp>(inner)) {
        auto it = captureOf.find(ex.getTensor());
        Value linear = idx(0);
        ArrayRef<int64_t> shape = it->second.second.getShape();
        for (auto [d, index] : llvm::enumerate(ex.getIndices()))
          linear = e->addI(e->mulI(linear, idx(shape[d])),
                           mapping.lookup(index));
        Value loaded =
            memref::LoadOp::create(*b, it->second.first, ValueRange{linear});
        mapping.map(ex.getResult(), loaded);
        continue;
      }
      b->clone(inner, mapping);
    }
    return mapping.lookup(cast<YieldOp>(block.getTerminator()).getValue());
  };
  // Regions and documents read the captures from their buffers.
  info.inlineRegion = inlineRegion;
  info.loadSegment = [&](unsigned index, Value bi, Value pos) -> Value {
    // Query segment ids are [B, Sq], key segment ids [B, Sk].
    bool isQuery = false;
    ArrayAttr masks = *spec.getMasks();
    for (Attribute a : masks)
      if (auto d = dyn_cast<DocumentAttr>(a))
        isQuery |= d.getQSegments() == int64_t(index) &&
                   d.getKvSegments() != int64_t(index);
    Value linear = e->addI(e->mulI(bi, isQuery ? qLen : kvLen), pos);
    return memref::LoadOp::create(*b, captureBufs[index], ValueRange{linear});
  };

  // Shared memory: Q, K[2], V[2], then (RBF) the key norms of a tile.
  int64_t qBytes = kBlockM * strideQK * 2;
  int64_t kBytes = 2 * kBlockN * strideQK * 2;
  int64_t vBytes = 2 * kBlockN * strideV * 2;
  int64_t normBytes = rbf ? kBlockN * 4 : 0;
  int64_t smemBytes = qBytes + kBytes + vBytes + normBytes;
  auto smemSpace = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  Value smem = gpu::DynamicSharedMemoryOp::create(
      *b, MemRefType::get({ShapedType::kDynamic}, b->getI8Type(),
                          MemRefLayoutAttrInterface(), smemSpace));
  auto view = [&](int64_t offset, ArrayRef<int64_t> shape, Type t) {
    return memref::ViewOp::create(
               *b, MemRefType::get(shape, t, MemRefLayoutAttrInterface(),
                                   smemSpace),
               smem, idx(offset), ValueRange{})
        .getResult();
  };
  Value qSmem = view(0, {1, kBlockM, strideQK}, elt);
  Value kSmem = view(qBytes, {2, kBlockN, strideQK}, elt);
  Value vSmem = view(qBytes + kBytes, {2, kBlockN, strideV}, elt);
  Value normSmem =
      rbf ? view(qBytes + kBytes + vBytes, {kBlockN}, f32Type) : Value();

  using P = arith::CmpIPredicate;
  using FP = arith::CmpFPredicate;
  Value tid = gpu::ThreadIdOp::create(*b, gpu::Dimension::x);
  Value lane = e->remI(tid, idx(32)), warp = e->divI(tid, idx(32));
  Value g = e->divI(lane, idx(4)), t4 = e->remI(lane, idx(4));
  Value qTileIdx = gpu::BlockIdOp::create(*b, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(*b, gpu::Dimension::y);
  Value bIdx = gpu::BlockIdOp::create(*b, gpu::Dimension::z);
  Value hk = e->divI(h, info.group);
  Value i0 = e->mulI(qTileIdx, idx(kBlockM));
  Value i1 = e->minI(e->addI(i0, idx(kBlockM)), qLen);
  Value rowA = e->addI(e->mulI(warp, idx(16)), g);
  Value rowB = e->addI(rowA, idx(8));
  Value qA = e->addI(i0, rowA), qB = e->addI(i0, rowB);
  Value zero = f32(0.0), negInf = f32(kNegInf);
  auto visible = [&](Value qi, Value j) -> Value {
    return emitVisible(*e, info, bIdx, h, qi, j);
  };

  // Offsets into the flattened tensors.
  Value qRowBase = e->mulI(e->addI(e->mulI(bIdx, qHeads), h), qLen);
  Value kvRowBase = e->mulI(e->addI(e->mulI(bIdx, kvHeads), hk), kvLen);

  // Prologue: Q and the first K/V tiles in flight.
  Value stage0 = idx(0);
  asyncCopyTile(
      qBuf, qSmem, stage0, dqk,
      [&](Value r) { return e->mulI(e->addI(qRowBase, e->addI(i0, r)), idx(dqk)); },
      e->subI(i1, i0));
  NVVM::CpAsyncCommitGroupOp::create(*b);

  // The KV tiles to visit: [sink tiles] ++ [main tiles], as one index u.
  KVRange range = emitKVRange(*e, info, i0, i1);
  Value tn = idx(kBlockN);
  Value sinkTiles = idx(0);
  if (range.sinks)
    sinkTiles = e->divI(e->addI(range.sinks->hi, idx(kBlockN - 1)), tn);
  Value mainFirst = e->maxI(e->divI(range.main.lo, tn), sinkTiles);
  Value mainEnd = e->maxI(
      e->divI(e->addI(range.main.hi, idx(kBlockN - 1)), tn), mainFirst);
  Value numMain = e->subI(mainEnd, mainFirst);
  bool sinkRows = bool(op.getSinkKey());
  // u = -1 is the tile of learned sink rows.
  Value uBegin = idx(sinkRows ? -1 : 0);
  Value uEnd = e->addI(sinkTiles, numMain);
  auto tileOf = [&](Value u) {
    Value inSink = e->cmpI(P::slt, u, sinkTiles);
    return e->select(inSink, u, e->addI(mainFirst, e->subI(u, sinkTiles)));
  };

  auto issueTileLoad = [&](Value u, Value stage) {
    Value isSinkRows = e->cmpI(P::slt, u, idx(0));
    auto loadRegular = [&]() {
      Value j0 = e->mulI(tileOf(u), tn);
      Value rows = e->maxI(e->minI(e->subI(kvLen, j0), tn), idx(0));
      asyncCopyTile(
          kBuf, kSmem, stage, dqk,
          [&](Value r) {
            return e->mulI(e->addI(kvRowBase, e->addI(j0, r)), idx(dqk));
          },
          rows);
      asyncCopyTile(
          vBuf, vSmem, stage, dv,
          [&](Value r) {
            return e->mulI(e->addI(kvRowBase, e->addI(j0, r)), idx(dv));
          },
          rows);
    };
    if (!sinkRows) {
      loadRegular();
      return;
    }
    scf::IfOp::create(
        *b, isSinkRows,
        [&](OpBuilder &nb, Location) {
          OpBuilder::InsertionGuard guard(*b);
          b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          Value rows = e->minI(numSinkRows, tn);
          Value base = e->mulI(hk, numSinkRows);
          asyncCopyTile(
              sinkKeyBuf, kSmem, stage, dqk,
              [&](Value r) { return e->mulI(e->addI(base, r), idx(dqk)); },
              rows);
          asyncCopyTile(
              sinkValueBuf, vSmem, stage, dv,
              [&](Value r) { return e->mulI(e->addI(base, r), idx(dv)); },
              rows);
          scf::YieldOp::create(*b);
        },
        [&](OpBuilder &nb, Location) {
          OpBuilder::InsertionGuard guard(*b);
          b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          loadRegular();
          scf::YieldOp::create(*b);
        });
  };

  Value haveTiles = e->cmpI(P::slt, uBegin, uEnd);
  scf::IfOp::create(*b, haveTiles, [&](OpBuilder &nb, Location) {
    OpBuilder::InsertionGuard guard(*b);
    b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
    issueTileLoad(uBegin, e->remI(e->addI(uBegin, idx(2)), idx(2)));
    scf::YieldOp::create(*b);
  });
  NVVM::CpAsyncCommitGroupOp::create(*b);
  NVVM::CpAsyncWaitGroupOp::create(*b, 1);
  gpu::BarrierOp::create(*b);

  // Q fragments, resident for the whole KV loop.
  SmallVector<SmallVector<Value>> qFrags;
  for (int64_t ks = 0; ks < dqk / 16; ++ks) {
    Value row = e->addI(e->mulI(warp, idx(16)), e->remI(lane, idx(16)));
    Value col = e->addI(idx(ks * 16), e->mulI(e->divI(lane, idx(16)), idx(8)));
    qFrags.push_back(ldmatrix(qSmem, {stage0, row, col}, 4, false));
  }
  // gamma * |q|^2 of rows A and B (RBF).
  Value qNormA = zero, qNormB = zero;
  if (rbf) {
    auto rowNorm = [&](Value r) {
      return e->forLoop(idx(0), idx(dqk), {zero},
                        [&](Value d, ValueRange a) -> SmallVector<Value> {
                          Value x = memref::LoadOp::create(
                              *b, qSmem, ValueRange{stage0, r, d});
                          x = arith::ExtFOp::create(*b, f32Type, x);
                          return {e->add(a[0], e->mul(x, x))};
                        })[0];
    };
    qNormA = e->mul(f32(info.gamma), rowNorm(rowA));
    qNormB = e->mul(f32(info.gamma), rowNorm(rowB));
  }

  // Scalable softmax: the number of keys each row sees (sink rows included).
  Value factorA = f32(1.0), factorB = f32(1.0);
  if (norm == Normalization::scalable_softmax) {
    double ls = spec.getLengthScale()
                    ? spec.getLengthScale()->convertToDouble()
                    : 1.0;
    auto count = [&](Value qi) {
      Value n = e->forLoop(
          idx(0), uEnd, {idx(0)}, [&](Value u, ValueRange a) -> SmallVector<Value> {
            Value j0 = e->mulI(tileOf(u), tn);
            // Each lane of the quad counts a quarter of the tile's keys.
            Value c = e->forLoop(
                idx(0), idx(kBlockN / 4), {a[0]},
                [&](Value jj, ValueRange s) -> SmallVector<Value> {
                  Value j = e->addI(j0, e->addI(e->mulI(jj, idx(4)), t4));
                  Value inb = e->cmpI(P::slt, j, kvLen);
                  Value vis = e->andI(
                      inb, visible(e->minI(qi, e->subI(qLen, idx(1))),
                                   e->minI(j, e->subI(kvLen, idx(1)))));
                  return {e->addI(s[0], e->select(vis, idx(1), idx(0)))};
                })[0];
            return {c};
          })[0];
      Value nf = e->indexToF32(n);
      nf = e->add(nf, shuffleXor(nf, 1));
      nf = e->add(nf, shuffleXor(nf, 2));
      nf = e->add(nf, e->indexToF32(numSinkRows));
      return e->mul(f32(ls), e->log(nf));
    };
    factorA = count(qA);
    factorB = count(qB);
  }

  // Initial state: O = 0; m, l from the logits that carry no value (sink
  // logits, softmax1's +1), counted once per quad (lane t4 == 0).
  SmallVector<Value> state;
  for (int64_t i = 0; i < dv / 8 * 4; ++i)
    state.push_back(zero);
  Value m0 = negInf, l0 = zero;
  if (softmax) {
    SmallVector<Value> extra;
    if (sinkLogitsBuf)
      extra.push_back(e->mul(
          memref::LoadOp::create(*b, sinkLogitsBuf, ValueRange{h}),
          f32(log2e)));
    if (norm == Normalization::softmax1)
      extra.push_back(zero);
    for (Value c : extra)
      m0 = e->maxF(m0, c);
    Value shift = e->select(e->cmpF(FP::OEQ, m0, negInf), zero, m0);
    for (Value c : extra)
      l0 = e->add(l0, math::Exp2Op::create(*b, e->sub(c, shift)));
    l0 = e->select(e->cmpI(P::eq, t4, idx(0)), l0, zero);
  }
  state.append({m0, m0, l0, l0});

  enum class Mode { SinkRows, Full, Masked };
  // One KV tile in one mode: returns the new state.
  auto processTile = [&](ValueRange cur, Value u, Value stage,
                         Mode mode) -> SmallVector<Value> {
    Value j0 = mode == Mode::SinkRows ? idx(0) : e->mulI(tileOf(u), tn);
    // RBF: gamma * |k|^2 of the tile's keys, via shared memory.
    if (rbf) {
      scf::IfOp::create(
          *b, e->cmpI(P::slt, tid, idx(kBlockN)),
          [&](OpBuilder &nb, Location) {
            OpBuilder::InsertionGuard guard(*b);
            b->setInsertionPoint(nb.getInsertionBlock(),
                                 nb.getInsertionPoint());
            Value sq = e->forLoop(
                idx(0), idx(dqk), {zero},
                [&](Value d, ValueRange a) -> SmallVector<Value> {
                  Value x = memref::LoadOp::create(*b, kSmem,
                                                   ValueRange{stage, tid, d});
                  x = arith::ExtFOp::create(*b, f32Type, x);
                  return {e->add(a[0], e->mul(x, x))};
                })[0];
            memref::StoreOp::create(*b, e->mul(f32(info.gamma), sq), normSmem,
                                    ValueRange{tid});
            scf::YieldOp::create(*b);
          });
      gpu::BarrierOp::create(*b);
    }
    // S = Q K^T.
    SmallVector<Value> s;
    for (int64_t nt = 0; nt < kNTiles; ++nt) {
      SmallVector<Value> acc = {zero, zero, zero, zero};
      for (int64_t ks = 0; ks < dqk / 16; ++ks) {
        Value row = e->addI(idx(nt * 8), e->remI(lane, idx(8)));
        Value col = e->addI(
            idx(ks * 16),
            e->mulI(e->remI(e->divI(lane, idx(8)), idx(2)), idx(8)));
        SmallVector<Value> bFrag = ldmatrix(kSmem, {stage, row, col}, 2, false);
        acc = mma(qFrags[ks], bFrag, acc);
      }
      s.append(acc);
    }
    // Scores, masks and weights per accumulator element.
    SmallVector<Value> p(s.size());
    Value rowMaxA = negInf, rowMaxB = negInf;
    Value countA = zero, countB = zero;
    for (int64_t nt = 0; nt < kNTiles; ++nt) {
      for (int64_t k = 0; k < 4; ++k) {
        bool isB = k >= 2;
        Value col = e->addI(idx(nt * 8 + (k % 2)), e->mulI(t4, idx(2)));
        Value j = e->addI(j0, col);
        Value qi = isB ? qB : qA;
        Value x = s[nt * 4 + k];
        if (rbf) {
          Value kn = memref::LoadOp::create(*b, normSmem, ValueRange{col});
          x = e->sub(e->mul(f32(2.0 * info.gamma), x), kn);
          if (!dropQueryNorm)
            x = e->sub(x, isB ? qNormB : qNormA);
        } else {
          x = e->mul(f32(info.scale), x);
        }
        Value vis = e->i1(true);
        if (mode == Mode::SinkRows) {
          vis = e->cmpI(P::slt, col, numSinkRows);
        } else {
          x = emitScoreMod(*e, info, x, bIdx, h, qi, j);
          if (mode == Mode::Masked) {
            Value inb = e->cmpI(P::slt, j, kvLen);
            Value jc = e->minI(j, e->subI(kvLen, idx(1)));
            Value qc = e->minI(qi, e->subI(qLen, idx(1)));
            vis = e->andI(inb, visible(qc, jc));
          }
        }
        Value w;
        if (softmax) {
          Value factor = isB ? factorB : factorA;
          w = e->select(vis, e->mul(x, e->mul(factor, f32(log2e))), negInf);
          if (isB)
            rowMaxB = e->maxF(rowMaxB, w);
          else
            rowMaxA = e->maxF(rowMaxA, w);
        } else {
          switch (norm) {
          case Normalization::sigmoid: {
            double bias = spec.getBias() ? spec.getBias()->convertToDouble()
                                         : 0.0;
            Value z = e->add(x, f32(bias));
            w = e->div(f32(1.0), e->add(f32(1.0), e->exp(e->sub(zero, z))));
            break;
          }
          case Normalization::relu:
            w = e->maxF(x, zero);
            break;
          case Normalization::relu2: {
            Value r = e->maxF(x, zero);
            w = e->mul(r, r);
            break;
          }
          case Normalization::none:
            w = x;
            break;
          default: // mean
            w = f32(1.0);
            break;
          }
          w = e->select(vis, w, zero);
          if (norm == Normalization::mean) {
            if (isB)
              countB = e->add(countB, w);
            else
              countA = e->add(countA, w);
          }
        }
        p[nt * 4 + k] = w;
      }
    }
    SmallVector<Value> next(cur.begin(), cur.end());
    int64_t nO = dv / 8 * 4;
    Value alphaA = f32(1.0), alphaB = f32(1.0);
    if (softmax) {
      for (int32_t off : {1, 2}) {
        rowMaxA = e->maxF(rowMaxA, shuffleXor(rowMaxA, off));
        rowMaxB = e->maxF(rowMaxB, shuffleXor(rowMaxB, off));
      }
      Value mA = e->maxF(cur[nO], rowMaxA), mB = e->maxF(cur[nO + 1], rowMaxB);
      Value shA = e->select(e->cmpF(FP::OEQ, mA, negInf), zero, mA);
      Value shB = e->select(e->cmpF(FP::OEQ, mB, negInf), zero, mB);
      alphaA = math::Exp2Op::create(*b, e->sub(cur[nO], shA));
      alphaB = math::Exp2Op::create(*b, e->sub(cur[nO + 1], shB));
      Value sumA = zero, sumB = zero;
      for (int64_t nt = 0; nt < kNTiles; ++nt) {
        for (int64_t k = 0; k < 4; ++k) {
          bool isB = k >= 2;
          Value pe = math::Exp2Op::create(
              *b, e->sub(p[nt * 4 + k], isB ? shB : shA));
          p[nt * 4 + k] = pe;
          if (isB)
            sumB = e->add(sumB, pe);
          else
            sumA = e->add(sumA, pe);
        }
      }
      next[nO] = mA;
      next[nO + 1] = mB;
      next[nO + 2] = e->add(e->mul(cur[nO + 2], alphaA), sumA);
      next[nO + 3] = e->add(e->mul(cur[nO + 3], alphaB), sumB);
    } else if (norm == Normalization::mean) {
      next[nO + 2] = e->add(cur[nO + 2], countA);
      next[nO + 3] = e->add(cur[nO + 3], countB);
    }
    // O = O * alpha + P V.
    for (int64_t dt = 0; dt < dv / 8; ++dt) {
      next[dt * 4 + 0] = e->mul(cur[dt * 4 + 0], alphaA);
      next[dt * 4 + 1] = e->mul(cur[dt * 4 + 1], alphaA);
      next[dt * 4 + 2] = e->mul(cur[dt * 4 + 2], alphaB);
      next[dt * 4 + 3] = e->mul(cur[dt * 4 + 3], alphaB);
    }
    for (int64_t kk = 0; kk < kBlockN / 16; ++kk) {
      SmallVector<Value> aFrag = {
          packPair(p[(2 * kk) * 4 + 0], p[(2 * kk) * 4 + 1]),
          packPair(p[(2 * kk) * 4 + 2], p[(2 * kk) * 4 + 3]),
          packPair(p[(2 * kk + 1) * 4 + 0], p[(2 * kk + 1) * 4 + 1]),
          packPair(p[(2 * kk + 1) * 4 + 2], p[(2 * kk + 1) * 4 + 3])};
      Value row = e->addI(idx(kk * 16), e->remI(lane, idx(16)));
      for (int64_t dt = 0; dt < dv / 8; ++dt) {
        SmallVector<Value> bFrag =
            ldmatrix(vSmem, {stage, row, idx(dt * 8)}, 2, true);
        SmallVector<Value> acc(next.begin() + dt * 4,
                               next.begin() + dt * 4 + 4);
        acc = mma(aFrag, bFrag, acc);
        std::copy(acc.begin(), acc.end(), next.begin() + dt * 4);
      }
    }
    return next;
  };

  auto ifOp = [&](Value cond, function_ref<SmallVector<Value>()> thenFn,
                  function_ref<SmallVector<Value>()> elseFn) {
    auto ifo = scf::IfOp::create(
        *b, cond,
        [&](OpBuilder &nb, Location) {
          OpBuilder::InsertionGuard guard(*b);
          b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          scf::YieldOp::create(*b, thenFn());
        },
        [&](OpBuilder &nb, Location) {
          OpBuilder::InsertionGuard guard(*b);
          b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          scf::YieldOp::create(*b, elseFn());
        });
    return llvm::to_vector_of<Value>(ifo.getResults());
  };

  // The KV loop: wait for tile u, prefetch tile u+1 into the other stage,
  // compute on tile u, then let every warp finish before the stage is reused.
  ValueRange finalState = e->forLoop(
      uBegin, uEnd, state, [&](Value u, ValueRange cur) -> SmallVector<Value> {
        Value stage = e->remI(e->addI(u, idx(2)), idx(2));
        NVVM::CpAsyncWaitGroupOp::create(*b, 0);
        gpu::BarrierOp::create(*b);
        Value nextU = e->addI(u, idx(1));
        scf::IfOp::create(*b, e->cmpI(P::slt, nextU, uEnd),
                          [&](OpBuilder &nb, Location) {
                            OpBuilder::InsertionGuard guard(*b);
                            b->setInsertionPoint(nb.getInsertionBlock(),
                                                 nb.getInsertionPoint());
                            issueTileLoad(nextU,
                                          e->remI(e->addI(nextU, idx(2)), idx(2)));
                            scf::YieldOp::create(*b);
                          });
        NVVM::CpAsyncCommitGroupOp::create(*b);
        auto regular = [&]() {
          Value j0 = e->mulI(tileOf(u), tn);
          Value j1 = e->addI(j0, tn);
          Value full = e->andI(
              e->cmpI(P::sle, j1, kvLen),
              emitBlockFullyVisible(*e, info, i0, i1, j0, j1));
          return ifOp(
              full, [&]() { return processTile(cur, u, stage, Mode::Full); },
              [&]() { return processTile(cur, u, stage, Mode::Masked); });
        };
        SmallVector<Value> out;
        if (sinkRows)
          out = ifOp(
              e->cmpI(P::slt, u, idx(0)),
              [&]() { return processTile(cur, u, stage, Mode::SinkRows); },
              regular);
        else
          out = regular();
        gpu::BarrierOp::create(*b);
        return out;
      });
  SmallVector<Value> fin(finalState.begin(), finalState.end());

  // Epilogue: reduce the normalizer over the quad, write O and the LSE.
  int64_t nO = dv / 8 * 4;
  Value lA = fin[nO + 2], lB = fin[nO + 3];
  for (int32_t off : {1, 2}) {
    lA = e->add(lA, shuffleXor(lA, off));
    lB = e->add(lB, shuffleXor(lB, off));
  }
  bool divides = softmax || norm == Normalization::mean;
  auto inverse = [&](Value l) {
    if (!divides)
      return f32(1.0);
    return e->select(e->cmpF(FP::OGT, l, zero), e->div(f32(1.0), l), zero);
  };
  Value invA = inverse(lA), invB = inverse(lB);
  Value oRowBase = e->mulI(e->addI(e->mulI(bIdx, qHeads), h), qLen);
  for (auto [qi, inv, first] :
       {std::make_tuple(qA, invA, 0), std::make_tuple(qB, invB, 2)}) {
    Value valid = e->cmpI(P::slt, qi, qLen);
    scf::IfOp::create(*b, valid, [&](OpBuilder &nb, Location) {
      OpBuilder::InsertionGuard guard(*b);
      b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
      Value base = e->mulI(e->addI(oRowBase, qi), idx(dv));
      for (int64_t dt = 0; dt < dv / 8; ++dt) {
        Value col = e->addI(idx(dt * 8), e->mulI(t4, idx(2)));
        for (int64_t k = 0; k < 2; ++k) {
          Value x = e->mul(fin[dt * 4 + first + k], inv);
          x = arith::TruncFOp::create(*b, elt, x);
          memref::StoreOp::create(*b, x, oBuf,
                                  ValueRange{e->addI(base, e->addI(col, idx(k)))});
        }
      }
      scf::YieldOp::create(*b);
    });
  }
  for (auto [qi, l, m, qn, factor] :
       {std::make_tuple(qA, lA, fin[nO], qNormA, factorA),
        std::make_tuple(qB, lB, fin[nO + 1], qNormB, factorB)}) {
    Value valid = e->andI(e->cmpI(P::slt, qi, qLen),
                          e->cmpI(P::eq, t4, idx(0)));
    scf::IfOp::create(*b, valid, [&](OpBuilder &nb, Location) {
      OpBuilder::InsertionGuard guard(*b);
      b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
      Value lse = zero;
      if (softmax) {
        Value shift = e->select(e->cmpF(FP::OEQ, m, negInf), zero, m);
        lse = e->add(e->mul(shift, f32(1.0 / log2e)), e->log(l));
        // Add back the dropped -gamma|q|^2, except on rows that saw nothing.
        if (dropQueryNorm)
          lse = e->select(e->cmpF(FP::OGT, l, zero),
                          e->sub(lse, e->mul(qn, factor)), lse);
      } else if (norm == Normalization::mean) {
        lse = e->log(l);
      }
      memref::StoreOp::create(*b, lse, lseBuf,
                              ValueRange{e->addI(oRowBase, qi)});
      scf::YieldOp::create(*b);
    });
  }

  // The launch description for the bundle.
  auto i64Attr = [&](int64_t v) { return b->getI64IntegerAttr(v); };
  auto str = [&](StringRef s) { return StringAttr::get(ctx, s); };
  SmallVector<NamedAttribute> launch = {
      {str("kernel"), str(name)},
      {str("args"), ArrayAttr::get(ctx, argDocs)},
      {str("block"), b->getI64ArrayAttr({kThreads, 1, 1})},
      {str("grid"), b->getStrArrayAttr({"ceildiv(Sq, 64)", "Hq", "B"})},
      {str("block_m"), i64Attr(kBlockM)},
      {str("block_n"), i64Attr(kBlockN)},
      {str("shared_memory_bytes"), i64Attr(smemBytes)},
      {str("dtype"), str(llvm::to_string(elt))},
      {str("head_dim_qk"), i64Attr(dqk)},
      {str("head_dim_v"), i64Attr(dv)},
      {str("has_lse_result"), b->getBoolAttr(bool(op.getLse()))},
  };
  return DictionaryAttr::get(ctx, launch);
}

struct AttnToNVGPUPass final
    : attn::impl::AttnToNVGPUPassBase<AttnToNVGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SmallVector<AttentionOp> ops;
    llvm::SetVector<Operation *> hostFuncs;
    module.walk([&](AttentionOp op) {
      ops.push_back(op);
      if (auto func = op->getParentOfType<func::FuncOp>())
        hostFuncs.insert(func);
    });
    if (ops.empty())
      return;
    for (AttentionOp op : ops) {
      if (op.getVariantAttr()) {
        op.emitOpError() << "references variant " << op.getVariantAttr()
                         << "; run attn-instantiate-variants first";
        return signalPassFailure();
      }
      if (std::optional<std::string> why = unsupportedReason(op)) {
        op.emitOpError() << "cannot be compiled for the GPU yet: " << *why;
        return signalPassFailure();
      }
    }
    OpBuilder mb(ctx);
    mb.setInsertionPointToEnd(module.getBody());
    auto gpuModule =
        gpu::GPUModuleOp::create(mb, module.getLoc(), "attn_kernels");
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(ctx));
    SmallVector<Attribute> kernels;
    llvm::StringMap<unsigned> perFunc;
    for (AttentionOp op : ops) {
      auto func = op->getParentOfType<func::FuncOp>();
      std::string base = func ? func.getSymName().str() : "attention";
      unsigned n = perFunc[base]++;
      std::string name = n ? base + "_" + std::to_string(n) : base;
      DictionaryAttr launch = KernelBuilder(op, gpuModule, name).build();
      SmallVector<NamedAttribute> entries(launch.getValue());
      auto variantName = op->getAttrOfType<StringAttr>("attn.variant_name");
      entries.emplace_back(StringAttr::get(ctx, "variant"),
                           variantName ? variantName
                                       : StringAttr::get(ctx, base));
      kernels.push_back(DictionaryAttr::get(ctx, entries));
    }
    module->setAttr("attn.kernels", ArrayAttr::get(ctx, kernels));
    // The host functions only described the computation; the bundle's
    // runtime launches the kernels itself.
    for (Operation *func : hostFuncs)
      func->erase();
  }
};

} // namespace
