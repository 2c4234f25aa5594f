//===- AttnToNVGPU.cpp - tensor-core kernels for attn.attention -*- C++ -*-===//
//
// Generates one gpu.func per attn.attention: the tiled online algorithm of
// attn-to-flash (docs/semantics.md) on tensor cores, with one of two code
// generators (docs/performance.md, "The kernels"):
//
// - wgmma (sm_90a, head dims multiples of 64): warpgroups of 64 query rows
//   (two per CTA, or one with two CTAs per SM); K/V tiles in a cp.async ring
//   laid out for wgmma's 128-byte swizzle and published to the async proxy;
//   S = Q.K^T as a chain of wgmma.mma_async on shared-memory descriptors,
//   O += P.V with the register-A form (inline PTX); optionally
//   software-pipelined (S of tile u+1 in flight while the warps compute the
//   weights of tile u). RBF key norms come from a prologue kernel and, in
//   bf16, ride on the tensor cores as one extra k-step.
// - mma.sync (sm_80 and later), the FlashAttention-2 structure: one CTA per
//   q-tile of 128 rows, 4 warps with two m16 tiles each, ldmatrix.x4 from
//   16-byte padded rows, mma.sync m16n8k16, P repacked from the S
//   accumulators as the A fragments of P.V.
//
// Common: per accumulator element, (q_idx, kv_idx) come from the fragment
// layout (row = lane/4 (+8), col = 2*(lane%4) (+1), the m16n8 C layout of
// both instruction families); the score region and the mask code run
// there, the mask code only on tiles that are not fully visible; tiles the
// structured masks hide entirely are never visited. The online softmax works
// in the exp2 domain (ex2.approx.ftz), row statistics reduced over the 4
// lanes of a quad with shuffles.
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
#include "mlir/IR/Matchers.h"
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
constexpr int64_t kPad = 8;       ///< Elements of padding per smem row.
constexpr unsigned kSharedSpace = 3;
constexpr unsigned kGlobalSpace = 1;
/// Dynamic shared memory a CTA may use on sm_90 (227 KiB).
constexpr int64_t kMaxSharedBytes = 232448;

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
      // Integer math ops have no NVVM lowering in the kernel pipeline.
      if (isa<math::IPowIOp, math::FPowIOp, math::CountLeadingZerosOp,
              math::CountTrailingZerosOp, math::CtPopOp>(inner))
        return "op '" + inner.getName().getStringRef().str() +
               "' in a region (integer math has no GPU lowering here)";
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

/// Why the warpgroup (wgmma) kernel cannot take an op the mma.sync kernel
/// takes, or nullopt.
std::optional<std::string> wgmmaUnsupportedReason(AttentionOp op,
                                                  int64_t mTiles,
                                                  int64_t warps,
                                                  int64_t stages,
                                                  bool pipeline) {
  int64_t dqk = op.getQuery().getType().getDimSize(3);
  int64_t dv = op.getValue().getType().getDimSize(3);
  if (dqk % 64 || dv % 64)
    return "head dims " + std::to_string(dqk) + " and " + std::to_string(dv) +
           " (the swizzled wgmma tiles take multiples of 64)";
  if (mTiles == 2)
    return std::string("m-tiles=2 (a wgmma warp owns one 16-row m-tile)");
  if (warps != 0 && warps != 4 && warps != 8)
    return "warps=" + std::to_string(warps) +
           " (wgmma needs whole warpgroups: 4 or 8)";
  if (stages == 2 && pipeline)
    return std::string("stages=2 with pipeline (the pipelined wgmma loop "
                       "prefetches two tiles ahead: 3 or 4)");
  return std::nullopt;
}

/// Builds the kernel for one op.
class KernelBuilder {
public:
  KernelBuilder(AttentionOp op, gpu::GPUModuleOp gpuModule, StringRef name,
                int64_t mTilesOption, int64_t blockNOption, int64_t warps,
                int64_t stages, bool wgmma, bool pipelined)
      : op(op), gpuModule(gpuModule), name(name.str()),
        mTilesOption(mTilesOption), blockNOption(blockNOption), warps(warps),
        threads(32 * warps), stages(stages), wgmma(wgmma),
        pipelined(pipelined) {}

  /// Creates the gpu.func; returns the launch description.
  DictionaryAttr build();

private:
  // Helpers on the kernel's builder.
  Value idx(int64_t v) { return e->index(v); }
  Value f32(double v) { return e->f32(v); }
  Value shuffleXor(Value x, int32_t offset);
  /// 16-byte cp.async of `tileRows` rows x `dim` elements from global
  /// `src` (row r at element offset firstRow + r * dim; rows from
  /// `validRows` on zero-filled) into smem `dst[stage]`.
  void asyncCopyTile(Value src, Value dst, Value stage, int64_t tileRows,
                     int64_t dim, Value firstRow, Value validRows);
  /// An empty kernel function at the end of the gpu.module.
  gpu::GPUFuncOp createKernel(StringRef fnName, ArrayRef<Type> argTypes,
                              int64_t blockThreads);
  /// The RBF prologue kernel `<name>_key_norms`: factor * |k_j|^2 of every
  /// key into a [B * Hkv, ceil(Sk / blockN) * blockN] f32 buffer, once per
  /// key instead of once per (q-tile, key). Returns its launch description.
  DictionaryAttr buildKeyNormKernel(int64_t dqk, int64_t blockN,
                                    double factor, bool parts);
  /// ldmatrix returning the i32 registers of the fragment.
  SmallVector<Value> ldmatrix(Value smem, ValueRange indices, int numTiles,
                              bool transpose);
  SmallVector<Value> mma(ArrayRef<Value> a, ArrayRef<Value> b,
                         ArrayRef<Value> c);
  Value packPair(Value lo, Value hi);
  /// 2^x on the special-function unit (ex2.approx.ftz: exp2(-inf) = 0).
  Value exp2(Value x);
  /// One mma operand register from a vector<2xelt> pair.
  Value fragmentRegister(Value pair);
  /// Indices into a shared-memory tile ([stage][row][col] padded rows for
  /// mma.sync; [stage][panel][row][64] with the 128-byte swizzle for
  /// wgmma) of element (row, col).
  SmallVector<Value> smemIndex(Value stage, Value row, Value col);
  /// wgmma shared-memory matrix descriptor for the swizzled tile at byte
  /// `offset` (i64) of dynamic shared memory.
  Value descriptor(Value offset, int64_t leadingBytes, int64_t strideBytes,
                   bool swizzle128 = true);
  /// The f32 values of an accumulator struct.
  SmallVector<Value> unpack(Value accStruct);
  /// Pins `values` (f32, i32, i64 or vector<2xf16>) at this point of the
  /// program with an empty asm statement: the registers of an async wgmma
  /// are read only after its wait, its inputs are all defined before its
  /// fence, and inputs it reads asynchronously stay live up to the wait.
  SmallVector<Value> fenceRegisters(ArrayRef<Value> values);
  /// D += A.B with A (64 x 16) in registers (4 i32 per thread, the
  /// m16n8k16 A layout per warp) and B (16 x n) in shared memory: the
  /// register-A form of wgmma, for which MLIR has no op.
  SmallVector<Value> wgmmaRegisterA(ArrayRef<Value> acc, ArrayRef<Value> a,
                                    Value descB, bool transposeB);

  AttentionOp op;
  gpu::GPUModuleOp gpuModule;
  std::string name;
  int64_t mTilesOption, blockNOption; ///< 0: the default for the head dims
  int64_t warps;   ///< Warps per CTA, 16 * m-tiles query rows each.
  int64_t threads; ///< 32 * warps.
  int64_t stages;  ///< Depth of the K/V shared-memory ring (prefetch
                   ///< distance stages - 1).
  bool wgmma;      ///< Warpgroup wgmma (sm_90a) instead of mma.sync.
  bool pipelined;  ///< wgmma: S(u+1) overlapped with the weights of u.
  Value smemAddress; ///< i64 shared-window address of dynamic smem (wgmma).
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
  // One cvt.rn.{bf16x2,f16x2}.f32 rounds both halves into one register.
  auto pairType = VectorType::get({2}, elt);
  auto rn = NVVM::FPRoundingModeAttr::get(b->getContext(),
                                          NVVM::FPRoundingMode::RN);
  Value v = elt.isBF16()
                ? NVVM::ConvertF32x2ToBF16x2Op::create(*b, pairType, hi, lo,
                                                       Value(), rn)
                      .getResult()
                : NVVM::ConvertF32x2ToF16x2Op::create(*b, pairType, hi, lo,
                                                      Value(), rn)
                      .getResult();
  return fragmentRegister(v);
}

Value KernelBuilder::exp2(Value x) {
  // One MUFU.EX2; libdevice's exp2f without FTZ adds denormal scaling
  // around it (three more instructions per element).
  return LLVM::CallIntrinsicOp::create(
             *b, b->getF32Type(),
             b->getStringAttr("llvm.nvvm.ex2.approx.ftz.f32"), ValueRange{x})
      .getResult(0);
}

SmallVector<Value> KernelBuilder::smemIndex(Value stage, Value row,
                                            Value col) {
  if (!wgmma)
    return {stage, row, col};
  // 64-column panels of 128-byte rows; in a panel, 16-byte chunk c of row r
  // sits at chunk c ^ (r % 8) (the layout wgmma's 128B swizzle reads).
  Value panel = e->divI(col, idx(64));
  Value inPanel = e->remI(col, idx(64));
  Value chunk = arith::XOrIOp::create(*b, e->divI(inPanel, idx(8)),
                                      e->remI(row, idx(8)));
  return {stage, panel, row,
          e->addI(e->mulI(chunk, idx(8)), e->remI(inPanel, idx(8)))};
}

Value KernelBuilder::descriptor(Value offset, int64_t leadingBytes,
                                int64_t strideBytes, bool swizzle128) {
  // Bits 0-13: start address >> 4; 16-29: leading byte offset >> 4; 32-45:
  // stride byte offset >> 4; 62-63: 1 = 128-byte swizzle, 0 = none.
  // Swizzled tiles start on 1024-byte boundaries, so the base offset
  // (bits 49-51) is 0.
  Type i64 = b->getI64Type();
  auto c = [&](int64_t v) {
    return arith::ConstantIntOp::create(*b, i64, v).getResult();
  };
  Value addr = arith::AddIOp::create(*b, smemAddress, offset);
  Value start = arith::ShRUIOp::create(
      *b, arith::AndIOp::create(*b, addr, c(0x3FFFF)), c(4));
  int64_t fixed = ((leadingBytes >> 4) << 16) |
                  ((strideBytes >> 4) << 32) |
                  (swizzle128 ? (int64_t(1) << 62) : 0);
  return arith::OrIOp::create(*b, start, c(fixed));
}

SmallVector<Value> KernelBuilder::unpack(Value accStruct) {
  auto st = cast<LLVM::LLVMStructType>(accStruct.getType());
  SmallVector<Value> out;
  for (int64_t i = 0, n = st.getBody().size(); i < n; ++i)
    out.push_back(LLVM::ExtractValueOp::create(*b, accStruct, i));
  return out;
}

SmallVector<Value> KernelBuilder::fenceRegisters(ArrayRef<Value> values) {
  // f32 ("f"), i32 ("r") and i64 ("l") registers; f16 pairs travel as i32.
  auto i32 = b->getI32Type();
  SmallVector<Value> regs;
  SmallVector<Type> types;
  std::string outs, ins;
  for (auto [n, value] : llvm::enumerate(values)) {
    Value v = value;
    if (isa<VectorType>(v.getType()))
      v = vector::ExtractOp::create(
          *b, vector::BitCastOp::create(*b, VectorType::get({1}, i32), v),
          ArrayRef<int64_t>{0});
    regs.push_back(v);
    types.push_back(v.getType());
    std::string c = v.getType().isF32() ? "f" : v.getType().isInteger(64)
                                                    ? "l"
                                                    : "r";
    outs += (n ? ",=" : "=") + c;
    ins += "," + std::to_string(n);
  }
  auto st = LLVM::LLVMStructType::getLiteral(b->getContext(), types);
  auto asmOp = LLVM::InlineAsmOp::create(
      *b, st, regs, "", outs + ins, /*has_side_effects=*/true,
      /*is_align_stack=*/false, LLVM::tailcallkind::TailCallKind::None,
      LLVM::AsmDialectAttr::get(b->getContext(), LLVM::AsmDialect::AD_ATT),
      ArrayAttr());
  SmallVector<Value> out = unpack(asmOp.getResult(0));
  for (auto [n, v] : llvm::enumerate(values))
    if (isa<VectorType>(v.getType()))
      out[n] = vector::BitCastOp::create(
          *b, v.getType(),
          vector::FromElementsOp::create(*b, VectorType::get({1}, i32),
                                         ValueRange{out[n]}));
  return out;
}

SmallVector<Value> KernelBuilder::wgmmaRegisterA(ArrayRef<Value> acc,
                                                 ArrayRef<Value> a,
                                                 Value descB,
                                                 bool transposeB) {
  int64_t n = acc.size(); // n f32 per thread: an m64 x 2n tile
  std::string ptx = "{\n.reg .pred p;\nsetp.ne.b32 p, $" +
                    std::to_string(2 * n + 5) +
                    ", 0;\nwgmma.mma_async.sync.aligned.m64n" +
                    std::to_string(2 * n) + "k16.f32." +
                    (elt.isBF16() ? "bf16.bf16" : "f16.f16") + " {";
  for (int64_t i = 0; i < n; ++i)
    ptx += "$" + std::to_string(i) + (i + 1 < n ? ", " : "}, {");
  for (int64_t i = 0; i < 4; ++i)
    ptx += "$" + std::to_string(2 * n + i) + (i < 3 ? ", " : "}, ");
  ptx += "$" + std::to_string(2 * n + 4) + ", p, 1, 1, " +
         (transposeB ? "1" : "0") + ";\n}\n";
  std::string constraints;
  for (int64_t i = 0; i < n; ++i)
    constraints += "=f,";
  for (int64_t i = 0; i < n; ++i)
    constraints += std::to_string(i) + ",";
  constraints += "r,r,r,r,l,n";
  SmallVector<Value> operands(acc.begin(), acc.end());
  for (Value r : a) {
    // f16 pairs come as vector<2xf16>: the asm takes 32-bit registers.
    if (isa<VectorType>(r.getType()))
      r = vector::ExtractOp::create(
          *b,
          vector::BitCastOp::create(
              *b, VectorType::get({1}, b->getI32Type()), r),
          ArrayRef<int64_t>{0});
    operands.push_back(r);
  }
  operands.push_back(descB);
  operands.push_back(arith::ConstantIntOp::create(*b, b->getI32Type(), 1));
  auto st = LLVM::LLVMStructType::getLiteral(
      b->getContext(), SmallVector<Type>(n, b->getF32Type()));
  auto asmOp = LLVM::InlineAsmOp::create(
      *b, st, operands, ptx, constraints, /*has_side_effects=*/true,
      /*is_align_stack=*/false, LLVM::tailcallkind::TailCallKind::None,
      LLVM::AsmDialectAttr::get(b->getContext(), LLVM::AsmDialect::AD_ATT),
      ArrayAttr());
  return unpack(asmOp.getResult(0));
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
                                  int64_t tileRows, int64_t dim,
                                  Value firstRow, Value validRows) {
  int64_t chunksPerRow = dim / 8;
  int64_t total = tileRows * chunksPerRow;
  Value tid = gpu::ThreadIdOp::create(*b, gpu::Dimension::x);
  // Every (row, col) a thread copies is fixed for the kernel (loop
  // invariant); per tile only the source base moves. Whole tiles (the
  // common case) copy without per-row checks.
  auto copies = [&](bool whole) {
    for (int64_t first = 0; first < total; first += threads) {
      Value c = e->addI(tid, idx(first));
      auto copy = [&]() {
        Value row = e->divI(c, idx(chunksPerRow));
        Value col = e->mulI(e->remI(c, idx(chunksPerRow)), idx(8));
        Value offset = e->addI(e->mulI(row, idx(dim)), col);
        Value srcElements;
        if (!whole) {
          // Rows past the end read nothing (zero fill) from a clamped
          // address.
          Value valid = e->cmpI(arith::CmpIPredicate::slt, row, validRows);
          offset = e->select(valid, offset, idx(0));
          srcElements = e->select(valid, idx(8), idx(0));
        }
        nvgpu::DeviceAsyncCopyOp::create(
            *b, nvgpu::DeviceAsyncTokenType::get(b->getContext()), dst,
            smemIndex(stage, row, col), src,
            ValueRange{e->addI(firstRow, offset)}, b->getIndexAttr(8),
            srcElements, /*bypassL1=*/b->getUnitAttr());
      };
      if (first + threads <= total) {
        copy();
        continue;
      }
      // The last round: only the threads with a chunk left copy.
      scf::IfOp::create(*b,
                        e->cmpI(arith::CmpIPredicate::slt, c, idx(total)),
                        [&](OpBuilder &nb, Location) {
                          OpBuilder::InsertionGuard guard(*b);
                          b->setInsertionPoint(nb.getInsertionBlock(),
                                               nb.getInsertionPoint());
                          copy();
                          scf::YieldOp::create(*b);
                        });
    }
  };
  auto branch = [&](bool whole) {
    return [&, whole](OpBuilder &nb, Location) {
      OpBuilder::InsertionGuard guard(*b);
      b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
      copies(whole);
      scf::YieldOp::create(*b);
    };
  };
  scf::IfOp::create(
      *b, e->cmpI(arith::CmpIPredicate::eq, validRows, idx(tileRows)),
      branch(true), branch(false));
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
  // RBF scores feeding a softmax untouched by a score region are built in
  // the exp2 domain directly: key norms stored times log2(e), then one FMA
  // per element.
  const bool rbfLog2Domain = rbf && softmax &&
                             norm != Normalization::scalable_softmax &&
                             spec.getScoreMod().empty();
  const double normScale = rbfLog2Domain ? log2e : 1.0;
  // wgmma, bf16: the RBF key norms ride on the tensor cores. One extra
  // k-step of 16 appends [-1, -1, -1, 0...] to every query row and
  // [hi, mid, lo, 0...] = |k|^2 / 2 (three bf16 parts: f32 precision) to
  // every key row, so the accumulator holds q.k - |k|^2 / 2 and the scores
  // take the plain softmax path (raw maximum, 2 gamma log2(e) folded into
  // the exponent's FMA). f16 cannot hold large norms; sink rows and the
  // |q|^2 term (not shift-invariant cases) keep the per-element path.
  const bool augmentRbf = wgmma && elt.isBF16() && rbfLog2Domain &&
                          dropQueryNorm && !op.getSinkKey() &&
                          getEffectiveGamma(spec, dqk) > 0;
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
  // RBF: the key norms come from the prologue kernel.
  if (rbf)
    addBuffer("key_norms", augmentRbf ? elt : f32Type);
  for (StringRef size : {"B", "Hq", "Hkv", "Sq", "Sk", "Ns"}) {
    argTypes.push_back(IndexType::get(ctx));
    argDocs.push_back(DictionaryAttr::get(
        ctx, {NamedAttribute(StringAttr::get(ctx, "name"),
                             StringAttr::get(ctx, size)),
              NamedAttribute(StringAttr::get(ctx, "kind"),
                             StringAttr::get(ctx, "size"))}));
  }

  gpu::GPUFuncOp func = createKernel(name, argTypes, threads);
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
  Value keyNormBuf = rbf ? nextArg() : Value();
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
    // Integers known to lie in (-2^31, 2^31): the index arguments (batch,
    // head and positions, below 2^31: the runtime checks the sizes), their
    // integer casts, differences of two such non-negative values and
    // absolute values of those. Their conversions to float go through i32:
    // the same value, without the slow 64-bit integer conversion.
    llvm::DenseSet<Value> nonNegative, small;
    auto isCastOfIndexArg = [&](Value v) {
      auto cast = v.getDefiningOp<arith::IndexCastOp>();
      return cast && isa<BlockArgument>(cast.getIn()) &&
             cast.getIn().getType().isIndex();
    };
    for (Operation &inner : block.without_terminator()) {
      if (inner.getNumResults() == 1 &&
          isCastOfIndexArg(inner.getResult(0))) {
        nonNegative.insert(inner.getResult(0));
        small.insert(inner.getResult(0));
      } else if (isa<arith::SubIOp>(inner) &&
                 nonNegative.contains(inner.getOperand(0)) &&
                 nonNegative.contains(inner.getOperand(1))) {
        small.insert(inner.getResult(0));
      } else if (isa<math::AbsIOp>(inner) &&
                 small.contains(inner.getOperand(0))) {
        small.insert(inner.getResult(0));
        nonNegative.insert(inner.getResult(0));
      }
      if (auto conv = dyn_cast<arith::SIToFPOp>(inner);
          conv && small.contains(conv.getIn()) &&
          conv.getIn().getType().isInteger(64)) {
        Value narrow = arith::TruncIOp::create(*b, b->getI32Type(),
                                               mapping.lookup(conv.getIn()));
        mapping.map(conv.getResult(),
                    arith::SIToFPOp::create(*b, conv.getType(), narrow));
        continue;
      }
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
      if (auto tanh = dyn_cast<math::TanhOp>(inner);
          tanh && tanh.getType().isF32()) {
        // tanh(x) = 1 - 2 / (exp(2x) + 1) on the special-function unit
        // (ex2.approx, rcp.approx) rather than libdevice's exact tanhf;
        // saturates correctly (exp2 -> inf gives 1, -> 0 gives -1).
        Value x = mapping.lookup(tanh.getOperand());
        Value e2x = exp2(e->mul(x, f32(2.0 / std::log(2.0))));
        Value inv = NVVM::RcpApproxFtzF32Op::create(
            *b, b->getF32Type(), e->add(e2x, f32(1.0)));
        Value r = e->sub(f32(1.0), e->mul(f32(2.0), inv));
        mapping.map(tanh.getResult(), r);
        continue;
      }
      if (auto absi = dyn_cast<math::AbsIOp>(inner)) {
        // |x| as a select: math.absi has no NVVM lowering.
        Value x = mapping.lookup(absi.getOperand());
        Value zeroI = arith::ConstantOp::create(
            *b, b->getZeroAttr(x.getType()));
        Value neg = arith::SubIOp::create(*b, zeroI, x);
        Value isNeg = arith::CmpIOp::create(*b, arith::CmpIPredicate::slt, x,
                                            zeroI);
        mapping.map(absi.getResult(), e->select(isNeg, neg, x));
        continue;
      }
      if (auto div = dyn_cast<arith::DivFOp>(inner)) {
        // Division by a constant: multiply by its reciprocal (within an ulp)
        // instead of the IEEE division sequence.
        FloatAttr c;
        if (div.getType().isF32() &&
            matchPattern(div.getRhs(), m_Constant(&c)) &&
            c.getValueAsDouble() != 0.0) {
          mapping.map(div.getResult(),
                      e->mul(mapping.lookup(div.getLhs()),
                             f32(1.0 / c.getValueAsDouble())));
          continue;
        }
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

  // Tiling: each warp owns mTiles m16 tiles of query rows (32 rows with two,
  // so that every K/V fragment read from shared memory feeds two mma); the
  // KV tile shrinks for large head dims to keep S and O in registers.
  // With wgmma a warpgroup owns 64 rows (16 per warp, one m-tile) and the
  // accumulators are spread over 128 threads: KV tiles of 128 keys fit.
  const int64_t mTiles = wgmma ? 1 : (mTilesOption > 0 ? mTilesOption : 2);
  const int64_t blockM = 16 * mTiles * warps;
  // wgmma: the largest KV tile (up to 128) whose ring fits in shared memory.
  auto wgmmaBlockN = [&]() {
    int64_t n = 128;
    auto bytes = [&](int64_t n) {
      int64_t norms = augmentRbf ? blockM * 32 + stages * n * 32
                      : rbf      ? stages * n * 4
                                 : 0;
      return blockM * dqk * 2 + stages * n * (dqk + dv) * 2 + norms;
    };
    while (n > 16 && bytes(n) > kMaxSharedBytes)
      n /= 2;
    return n;
  };
  const int64_t blockN = blockNOption > 0 ? blockNOption
                         : wgmma          ? wgmmaBlockN()
                                 : (std::max(dqk, dv) <= 64 ? 64 : 32);
  const int64_t nTiles = blockN / 8;
  const int64_t dTiles = dv / 8;
  const int64_t rowsPerThread = 2 * mTiles; // rows g and g + 8 per m-tile

  // Shared memory: Q, K[stages], V[stages], then (RBF) the key norms of a
  // tile. Rows are padded for ldmatrix, or swizzled (no padding) for wgmma.
  const int64_t rowQK = wgmma ? dqk : strideQK, rowV = wgmma ? dv : strideV;
  int64_t qBytes = blockM * rowQK * 2;
  int64_t kStageBytes = blockN * rowQK * 2, vStageBytes = blockN * rowV * 2;
  int64_t kBytes = stages * kStageBytes;
  int64_t vBytes = stages * vStageBytes;
  // Augmented RBF: [-1 -1 -1 0..] rows for Q and the norm parts of each
  // stage's keys, 16 bf16 per row in the unswizzled core-matrix layout.
  int64_t augQBytes = augmentRbf ? blockM * 32 : 0;
  int64_t normBytes = augmentRbf ? augQBytes + stages * blockN * 32
                      : rbf      ? stages * blockN * 4
                                 : 0;
  int64_t smemBytes = qBytes + kBytes + vBytes + normBytes;
  if (smemBytes > kMaxSharedBytes) {
    op.emitOpError() << "needs " << smemBytes
                     << " bytes of shared memory with kv-tile=" << blockN
                     << " and stages=" << stages << " (at most "
                     << kMaxSharedBytes << "): use a smaller kv-tile or "
                     << "fewer stages";
    return DictionaryAttr();
  }
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
  Value qSmem = wgmma ? view(0, {1, dqk / 64, blockM, 64}, elt)
                      : view(0, {1, blockM, strideQK}, elt);
  Value kSmem = wgmma ? view(qBytes, {stages, dqk / 64, blockN, 64}, elt)
                      : view(qBytes, {stages, blockN, strideQK}, elt);
  Value vSmem = wgmma
                    ? view(qBytes + kBytes, {stages, dv / 64, blockN, 64}, elt)
                    : view(qBytes + kBytes, {stages, blockN, strideV}, elt);
  if (wgmma) {
    smemAddress = arith::IndexCastOp::create(
        *b, b->getI64Type(),
        memref::ExtractAlignedPointerAsIndexOp::create(*b, smem));
    // The swizzle of the tiles (smemIndex) and of the descriptors (base
    // offset 0) agree only if dynamic shared memory starts on a 1024-byte
    // boundary, as it does with no static shared memory before it. Were it
    // ever not so, stop (a trap, the launch fails) rather than compute a
    // wrong result.
    Value misaligned = arith::CmpIOp::create(
        *b, arith::CmpIPredicate::ne,
        arith::AndIOp::create(
            *b, smemAddress,
            arith::ConstantIntOp::create(*b, b->getI64Type(), 1023)),
        arith::ConstantIntOp::create(*b, b->getI64Type(), 0));
    scf::IfOp::create(*b, misaligned, [&](OpBuilder &nb, Location loc) {
      LLVM::Trap::create(nb, loc);
      scf::YieldOp::create(nb, loc);
    });
  }
  const int64_t normOffset = qBytes + kBytes + vBytes;
  Value normSmem =
      rbf && !augmentRbf ? view(normOffset, {stages, blockN}, f32Type)
                         : Value();
  Value augQSmem = augmentRbf ? view(normOffset, {blockM * 16}, elt) : Value();
  Value augKSmem = augmentRbf
                       ? view(normOffset + augQBytes, {stages, blockN * 16},
                              elt)
                       : Value();
  // Element offset of (row, 8-column half h) in the unswizzled K-major
  // core-matrix layout: 8 rows x 16 bytes per core matrix, the two K halves
  // 128 bytes apart (leading byte offset), 8-row groups 256 bytes apart
  // (stride byte offset).
  auto augOffset = [&](Value row, int64_t h) {
    return e->addI(e->mulI(e->addI(e->mulI(e->divI(row, idx(8)), idx(2)),
                                   idx(h)),
                           idx(64)),
                   e->mulI(e->remI(row, idx(8)), idx(8)));
  };

  using P = arith::CmpIPredicate;
  using FP = arith::CmpFPredicate;
  Value tid = gpu::ThreadIdOp::create(*b, gpu::Dimension::x);
  Value lane = e->remI(tid, idx(32)), warp = e->divI(tid, idx(32));
  Value g = e->divI(lane, idx(4)), t4 = e->remI(lane, idx(4));
  Value qTileIdx = gpu::BlockIdOp::create(*b, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(*b, gpu::Dimension::y);
  Value bIdx = gpu::BlockIdOp::create(*b, gpu::Dimension::z);
  Value hk = e->divI(h, info.group);
  Value i0 = e->mulI(qTileIdx, idx(blockM));
  Value i1 = e->minI(e->addI(i0, idx(blockM)), qLen);
  Value warpRow0 = e->mulI(warp, idx(16 * mTiles));
  // Row r of this thread (r = 2 * mi + half): CTA-local row and query index.
  SmallVector<Value> localRow, qRow;
  for (int64_t r = 0; r < rowsPerThread; ++r) {
    localRow.push_back(
        e->addI(warpRow0, e->addI(idx((r / 2) * 16 + (r % 2) * 8), g)));
    qRow.push_back(e->addI(i0, localRow.back()));
  }
  Value zero = f32(0.0), negInf = f32(kNegInf);
  auto visible = [&](Value qi, Value j) -> Value {
    return emitVisible(*e, info, bIdx, h, qi, j);
  };

  // Offsets into the flattened tensors.
  Value qRowBase = e->mulI(e->addI(e->mulI(bIdx, qHeads), h), qLen);
  Value kvRowBase = e->mulI(e->addI(e->mulI(bIdx, kvHeads), hk), kvLen);

  if (augmentRbf) {
    // Constant rows, written once (published by the prologue's fence and
    // barrier): Q's [-1, -1, -1, 0...] and the zero upper halves of the
    // keys' rows in every stage.
    // (Scalar stores: vector stores to workgroup memrefs trip a spurious
    // memory-space diagnostic in convert-nvgpu-to-nvvm.)
    auto eltConst = [&](double v) {
      return arith::ConstantOp::create(*b, b->getFloatAttr(elt, v))
          .getResult();
    };
    Value minusOne = eltConst(-1.0), zeroElt = eltConst(0.0);
    auto store8 = [&](Value mem, SmallVector<Value> prefix, Value at,
                      int64_t negatives) {
      for (int64_t i = 0; i < 8; ++i) {
        SmallVector<Value> indices(prefix);
        indices.push_back(e->addI(at, idx(i)));
        memref::StoreOp::create(*b, i < negatives ? minusOne : zeroElt, mem,
                                indices);
      }
    };
    auto forRows = [&](int64_t rows, function_ref<void(Value)> fn) {
      for (int64_t first = 0; first < rows; first += threads) {
        Value row = e->addI(tid, idx(first));
        scf::IfOp::create(*b, e->cmpI(P::slt, row, idx(rows)),
                          [&](OpBuilder &nb, Location) {
                            OpBuilder::InsertionGuard guard(*b);
                            b->setInsertionPoint(nb.getInsertionBlock(),
                                                 nb.getInsertionPoint());
                            fn(row);
                            scf::YieldOp::create(*b);
                          });
      }
    };
    forRows(blockM, [&](Value row) {
      store8(augQSmem, {}, augOffset(row, 0), 3);
      store8(augQSmem, {}, augOffset(row, 1), 0);
    });
    forRows(blockN, [&](Value row) {
      for (int64_t st = 0; st < stages; ++st)
        store8(augKSmem, {idx(st)}, augOffset(row, 1), 0);
    });
  }

  // Prologue: Q and the first K/V tiles in flight.
  Value stage0 = idx(0);
  asyncCopyTile(qBuf, qSmem, stage0, blockM, dqk,
                e->mulI(e->addI(qRowBase, i0), idx(dqk)), e->subI(i1, i0));
  NVVM::CpAsyncCommitGroupOp::create(*b);

  // The KV tiles to visit: [sink tiles] ++ [main tiles], as one index u.
  KVRange range = emitKVRange(*e, info, i0, i1);
  Value tn = idx(blockN);
  Value sinkTiles = idx(0);
  if (range.sinks)
    sinkTiles = e->divI(e->addI(range.sinks->hi, idx(blockN - 1)), tn);
  Value mainFirst = e->maxI(e->divI(range.main.lo, tn), sinkTiles);
  Value mainEnd = e->maxI(
      e->divI(e->addI(range.main.hi, idx(blockN - 1)), tn), mainFirst);
  Value numMain = e->subI(mainEnd, mainFirst);
  bool sinkRows = bool(op.getSinkKey());
  // u = -1 is the tile of learned sink rows.
  Value uBegin = idx(sinkRows ? -1 : 0);
  Value uEnd = e->addI(sinkTiles, numMain);
  auto tileOf = [&](Value u) {
    Value inSink = e->cmpI(P::slt, u, sinkTiles);
    return e->select(inSink, u, e->addI(mainFirst, e->subI(u, sinkTiles)));
  };
  auto stageOf = [&](Value u) {
    return e->remI(e->addI(u, idx(stages)), idx(stages));
  };

  auto issueTileLoad = [&](Value u, Value stage) {
    auto loadRegular = [&]() {
      Value j0 = e->mulI(tileOf(u), tn);
      Value rows = e->maxI(e->minI(e->subI(kvLen, j0), tn), idx(0));
      Value firstKey = e->addI(kvRowBase, j0);
      asyncCopyTile(kBuf, kSmem, stage, blockN, dqk,
                    e->mulI(firstKey, idx(dqk)), rows);
      asyncCopyTile(vBuf, vSmem, stage, blockN, dv,
                    e->mulI(firstKey, idx(dv)), rows);
      // The key of the prologue's buffer that starts this tile (rows padded
      // to whole tiles: always in bounds and 16-byte aligned).
      Value normBase;
      if (rbf) {
        Value padded = e->mulI(e->divI(e->addI(kvLen, idx(blockN - 1)), tn),
                               tn);
        normBase = e->addI(
            e->mulI(e->addI(e->mulI(bIdx, kvHeads), hk), padded), j0);
      }
      if (augmentRbf) {
        // The tile's norm parts: 16 bytes per key, one key per thread.
        for (int64_t first = 0; first < blockN; first += threads) {
          Value key = e->addI(tid, idx(first));
          scf::IfOp::create(
              *b, e->cmpI(P::slt, key, idx(blockN)),
              [&](OpBuilder &nb, Location) {
                OpBuilder::InsertionGuard guard(*b);
                b->setInsertionPoint(nb.getInsertionBlock(),
                                     nb.getInsertionPoint());
                nvgpu::DeviceAsyncCopyOp::create(
                    *b, nvgpu::DeviceAsyncTokenType::get(ctx), augKSmem,
                    ValueRange{stage, augOffset(key, 0)}, keyNormBuf,
                    ValueRange{e->mulI(e->addI(normBase, key), idx(8))},
                    b->getIndexAttr(8), Value(),
                    /*bypassL1=*/b->getUnitAttr());
                scf::YieldOp::create(*b);
              });
        }
      } else if (rbf) {
        // The tile's key norms: blockN floats, 16 bytes per thread.
        scf::IfOp::create(
            *b, e->cmpI(P::slt, tid, idx(blockN / 4)),
            [&](OpBuilder &nb, Location) {
              OpBuilder::InsertionGuard guard(*b);
              b->setInsertionPoint(nb.getInsertionBlock(),
                                   nb.getInsertionPoint());
              Value col = e->mulI(tid, idx(4));
              nvgpu::DeviceAsyncCopyOp::create(
                  *b, nvgpu::DeviceAsyncTokenType::get(ctx), normSmem,
                  ValueRange{stage, col}, keyNormBuf,
                  ValueRange{e->addI(normBase, col)}, b->getIndexAttr(4),
                  Value(), /*bypassL1=*/b->getUnitAttr());
              scf::YieldOp::create(*b);
            });
      }
    };
    if (!sinkRows) {
      loadRegular();
      return;
    }
    scf::IfOp::create(
        *b, e->cmpI(P::slt, u, idx(0)),
        [&](OpBuilder &nb, Location) {
          OpBuilder::InsertionGuard guard(*b);
          b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          Value rows = e->minI(numSinkRows, tn);
          Value base = e->mulI(hk, numSinkRows);
          asyncCopyTile(sinkKeyBuf, kSmem, stage, blockN, dqk,
                        e->mulI(base, idx(dqk)), rows);
          asyncCopyTile(sinkValueBuf, vSmem, stage, blockN, dv,
                        e->mulI(base, idx(dv)), rows);
          scf::YieldOp::create(*b);
        },
        [&](OpBuilder &nb, Location) {
          OpBuilder::InsertionGuard guard(*b);
          b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          loadRegular();
          scf::YieldOp::create(*b);
        });
  };

  // The first stages - 1 KV tiles go in flight, one commit group each
  // (empty when there is no such tile), so that the loop can always wait for
  // a fixed number of pending groups.
  for (int64_t ahead = 0; ahead < stages - 1; ++ahead) {
    Value u = e->addI(uBegin, idx(ahead));
    scf::IfOp::create(*b, e->cmpI(P::slt, u, uEnd), [&](OpBuilder &nb,
                                                         Location) {
      OpBuilder::InsertionGuard guard(*b);
      b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
      issueTileLoad(u, stageOf(u));
      scf::YieldOp::create(*b);
    });
    NVVM::CpAsyncCommitGroupOp::create(*b);
  }
  // cp.async writes shared memory through the generic proxy; wgmma reads it
  // through the async proxy: each thread fences its own copies before the
  // barrier that publishes them.
  auto publishCopies = [&]() {
    if (wgmma)
      NVVM::FenceProxyOp::create(
          *b, NVVM::ProxyKind::async_shared,
          NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
    gpu::BarrierOp::create(*b);
  };
  // Q is the oldest group (the pipelined wgmma loop also needs the first
  // KV tile).
  NVVM::CpAsyncWaitGroupOp::create(*b,
                                   pipelined ? stages - 2 : stages - 1);
  publishCopies();

  // Q fragments: resident in registers with one m-tile per warp; with two,
  // re-read from shared memory per KV tile (registers go to S and O).
  auto loadQFrag = [&](int64_t mi, int64_t ks) {
    Value row = e->addI(e->addI(warpRow0, idx(mi * 16)), e->remI(lane, idx(16)));
    Value col = e->addI(idx(ks * 16), e->mulI(e->divI(lane, idx(16)), idx(8)));
    return ldmatrix(qSmem, {stage0, row, col}, 4, false);
  };
  const bool qInRegisters = mTiles == 1 && !wgmma;
  SmallVector<SmallVector<Value>> residentQ;
  if (qInRegisters)
    for (int64_t ks = 0; ks < dqk / 16; ++ks)
      residentQ.push_back(loadQFrag(0, ks));

  // gamma * |q|^2 per row (RBF).
  SmallVector<Value> qNorm(rowsPerThread, zero);
  if (rbf) {
    for (int64_t r = 0; r < rowsPerThread; ++r) {
      Value sq = e->forLoop(idx(0), idx(dqk), {zero},
                            [&](Value d, ValueRange a) -> SmallVector<Value> {
                              Value x = memref::LoadOp::create(
                                  *b, qSmem, smemIndex(stage0, localRow[r], d));
                              x = arith::ExtFOp::create(*b, f32Type, x);
                              return {e->add(a[0], e->mul(x, x))};
                            })[0];
      qNorm[r] = e->mul(f32(info.gamma), sq);
    }
  }

  // Scalable softmax: the number of keys each row sees (sink rows included).
  SmallVector<Value> factor(rowsPerThread, f32(1.0));
  if (norm == Normalization::scalable_softmax) {
    double ls = spec.getLengthScale()
                    ? spec.getLengthScale()->convertToDouble()
                    : 1.0;
    for (int64_t r = 0; r < rowsPerThread; ++r) {
      Value qi = e->minI(qRow[r], e->subI(qLen, idx(1)));
      Value n = e->forLoop(
          idx(0), uEnd, {idx(0)},
          [&](Value u, ValueRange a) -> SmallVector<Value> {
            Value j0 = e->mulI(tileOf(u), tn);
            // Each lane of the quad counts a quarter of the tile's keys.
            return {e->forLoop(
                idx(0), idx(blockN / 4), {a[0]},
                [&](Value jj, ValueRange s) -> SmallVector<Value> {
                  Value j = e->addI(j0, e->addI(e->mulI(jj, idx(4)), t4));
                  Value inb = e->cmpI(P::slt, j, kvLen);
                  Value vis = e->andI(
                      inb, visible(qi, e->minI(j, e->subI(kvLen, idx(1)))));
                  return {e->addI(s[0], e->select(vis, idx(1), idx(0)))};
                })[0]};
          })[0];
      Value nf = e->indexToF32(n);
      nf = e->add(nf, shuffleXor(nf, 1));
      nf = e->add(nf, shuffleXor(nf, 2));
      nf = e->add(nf, e->indexToF32(numSinkRows));
      factor[r] = e->mul(f32(ls), e->log(nf));
    }
  }

  // State: O accumulators [mi][dt][4], then m[r], then l[r]. m and l start
  // from the logits that carry no value (sink logits, softmax1's +1), counted
  // once per quad (lane t4 == 0) since l is summed over the quad at the end.
  const int64_t nO = mTiles * dTiles * 4;
  const int64_t mAt = nO, lAt = nO + rowsPerThread;
  SmallVector<Value> state(nO, zero);
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
      l0 = e->add(l0, exp2(e->sub(c, shift)));
    l0 = e->select(e->cmpI(P::eq, t4, idx(0)), l0, zero);
  }
  state.append(rowsPerThread, m0);
  state.append(rowsPerThread, l0);

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

  enum class Mode { SinkRows, Full, Masked };
  // One KV tile in one mode: returns the new state.
  // The pieces of one KV tile: S = Q.K^T, the weights P (scores, masks,
  // normalization) with the new row statistics, the rescale of O, and
  // O += P.V.
  Type i64 = b->getI64Type();
  auto bytes = [&](Value indexValue, int64_t scale, int64_t offset) {
    Value v = arith::IndexCastOp::create(
        *b, i64, e->addI(e->mulI(indexValue, idx(scale)), idx(offset)));
    return v;
  };
  auto accType = [&](int64_t n) {
    return LLVM::LLVMStructType::getLiteral(ctx,
                                            SmallVector<Type>(n, f32Type));
  };
  // RBF: gamma * |k|^2 of the tile's keys, via shared memory: four
  // neighbouring lanes share a key, each summing a quarter of its elements,
  // and combine with two shuffles. Only for the learned sink rows: the
  // regular keys' norms come from the prologue kernel.
  auto computeKeyNorms = [&](Value stage) {
      for (int64_t first = 0; first < blockN; first += threads / 4) {
        Value key = e->addI(idx(first), e->divI(tid, idx(4)));
        // With more lanes than keys in the last round, the surplus lanes
        // read a valid row (the last) and store nothing.
        Value row = e->minI(key, idx(blockN - 1));
        Value part = e->remI(tid, idx(4));
        int64_t quarter = dqk / 4;
        // Scalar loads (once per kernel, for the sink tile; vector loads
        // from workgroup memrefs trip a spurious memory-space diagnostic in
        // convert-nvgpu-to-nvvm).
        Value sq = e->forLoop(
            idx(0), idx(quarter), {zero},
            [&](Value c, ValueRange a) -> SmallVector<Value> {
              Value col = e->addI(e->mulI(part, idx(quarter)), c);
              Value x = memref::LoadOp::create(*b, kSmem,
                                               smemIndex(stage, row, col));
              x = arith::ExtFOp::create(*b, f32Type, x);
              return {e->add(a[0], e->mul(x, x))};
            })[0];
        sq = e->add(sq, shuffleXor(sq, 1));
        sq = e->add(sq, shuffleXor(sq, 2));
        Value store = e->cmpI(P::eq, part, idx(0));
        if (first + threads / 4 > blockN)
          store = e->andI(store, e->cmpI(P::slt, key, idx(blockN)));
        scf::IfOp::create(*b, store, [&](OpBuilder &nb, Location) {
          OpBuilder::InsertionGuard guard(*b);
          b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          memref::StoreOp::create(*b, e->mul(f32(info.gamma * normScale), sq),
                                  normSmem, ValueRange{stage, key});
          scf::YieldOp::create(*b);
        });
      }
      gpu::BarrierOp::create(*b);
    };

  // mma.sync: s[(mi * nTiles + nt) * 4 + k]. One ldmatrix.x4 of K feeds
  // two n-tiles (matrices (nt, k-lo), (nt, k-hi), (nt+1, k-lo),
  // (nt+1, k-hi) from lanes 0-7, 8-15, 16-23, 24-31) for every m-tile.
  auto mmaSyncScores = [&](Value stage) {
    SmallVector<Value> s(mTiles * nTiles * 4, zero);
    Value kRowInPair = e->addI(e->mulI(e->divI(lane, idx(16)), idx(8)),
                               e->remI(lane, idx(8)));
    Value kColHalf = e->mulI(e->remI(e->divI(lane, idx(8)), idx(2)), idx(8));
    for (int64_t ks = 0; ks < (wgmma ? 0 : dqk / 16); ++ks) {
      SmallVector<SmallVector<Value>> aFrags;
      for (int64_t mi = 0; mi < mTiles; ++mi)
        aFrags.push_back(qInRegisters ? residentQ[ks] : loadQFrag(mi, ks));
      Value col = e->addI(idx(ks * 16), kColHalf);
      for (int64_t nt = 0; nt < nTiles; nt += 2) {
        Value row = e->addI(idx(nt * 8), kRowInPair);
        SmallVector<Value> frags = ldmatrix(kSmem, {stage, row, col}, 4, false);
        for (int64_t mi = 0; mi < mTiles; ++mi) {
          for (int64_t half = 0; half < 2; ++half) {
            int64_t base = (mi * nTiles + nt + half) * 4;
            SmallVector<Value> acc(s.begin() + base, s.begin() + base + 4);
            acc = mma(aFrags[mi], {frags[2 * half], frags[2 * half + 1]}, acc);
            std::copy(acc.begin(), acc.end(), s.begin() + base);
          }
        }
      }
    }
    return s;
  };
  // wgmma: issues S (no wait); the result is valid after the wait for its
  // commit group.
  // The operand registers of the wgmma chains in flight (descriptors, A
  // fragments): kept live up to the wait that retires their chain, so that
  // nothing reuses them while the tensor cores may still read them.
  SmallVector<Value> inFlightS, inFlightPV;
  auto issueScores = [&](Value stage) -> Value {
    // S (64 x blockN per warpgroup) = Q.K^T: both operands K-major in
    // swizzled shared memory; a k-step of 16 is 32 bytes into a 128-byte
    // panel row. The accumulator layout per warp is the m16n8 C layout
    // of n-tiles 0..nTiles-1, as with mma.sync.
    Value wg = e->divI(warp, idx(4));
    auto wgType = elt.isBF16() ? NVVM::WGMMATypes::bf16
                               : NVVM::WGMMATypes::f16;
    auto typeAttr = NVVM::WGMMATypesAttr::get(ctx, wgType);
    // The first k-step ignores the accumulator (scale-d = 0).
    Value acc = LLVM::PoisonOp::create(*b, accType(nTiles * 4));
    SmallVector<Value> descsA, descsB;
    for (int64_t ks = 0; ks < dqk / 16; ++ks) {
      int64_t panelOffset = (ks / 4), within = (ks % 4) * 32;
      descsA.push_back(descriptor(
          bytes(wg, 64 * 128, panelOffset * blockM * 128 + within), 16,
          1024));
      descsB.push_back(descriptor(
          bytes(stage, kStageBytes,
                qBytes + panelOffset * blockN * 128 + within),
          16, 1024));
    }
    if (augmentRbf) {
      // The norm k-step: unswizzled core matrices (K halves 128 bytes
      // apart, 8-row groups 256 bytes apart).
      descsA.push_back(descriptor(bytes(wg, 64 * 32, normOffset), 128, 256,
                                  /*swizzle128=*/false));
      descsB.push_back(descriptor(
          bytes(stage, blockN * 32, normOffset + augQBytes), 128, 256,
          /*swizzle128=*/false));
    }
    descsA = fenceRegisters(descsA);
    descsB = fenceRegisters(descsB);
    inFlightS.assign(descsA.begin(), descsA.end());
    inFlightS.append(descsB.begin(), descsB.end());
    NVVM::WgmmaFenceAlignedOp::create(*b);
    for (int64_t ks = 0; ks < int64_t(descsA.size()); ++ks) {
      acc = NVVM::WgmmaMmaAsyncOp::create(
          *b, acc.getType(), acc, descsA[ks], descsB[ks],
          NVVM::MMAShapeAttr::get(ctx, 64, blockN, 16), typeAttr, typeAttr,
          NVVM::WGMMATypesAttr::get(ctx, NVVM::WGMMATypes::f32),
          NVVM::WGMMAScaleOutAttr::get(ctx, ks == 0
                                                ? NVVM::WGMMAScaleOut::zero
                                                : NVVM::WGMMAScaleOut::one),
          NVVM::WGMMAScaleInAttr::get(ctx, NVVM::WGMMAScaleIn::one),
          NVVM::WGMMAScaleInAttr::get(ctx, NVVM::WGMMAScaleIn::one),
          NVVM::MMALayoutAttr::get(ctx, NVVM::MMALayout::row),
          NVVM::MMALayoutAttr::get(ctx, NVVM::MMALayout::col),
          NVVM::MMAIntOverflowAttr());
    }
    NVVM::WgmmaGroupSyncAlignedOp::create(*b);
    return acc;
  };

  struct Weights {
    SmallVector<Value> p, nextM, nextL, alpha;
    Value changed; ///< Some row of this lane has a new maximum.
  };
  auto weightsOf = [&](ArrayRef<Value> s, ArrayRef<Value> curM,
                       ArrayRef<Value> curL, Value u, Value stage,
                       Mode mode) -> Weights {
    Value j0 = mode == Mode::SinkRows ? idx(0) : e->mulI(tileOf(u), tn);
    if (rbf && mode == Mode::SinkRows)
      computeKeyNorms(stage);
    // Scores, masks and weights per accumulator element.
    SmallVector<Value> p(s.size());
    SmallVector<Value> rowMax(rowsPerThread, negInf);
    SmallVector<Value> rowCount(rowsPerThread, zero);
    // Plain softmax of a dot product: scores go to the exp2 domain with one
    // multiply by scale*log2(e). With a positive factor the row maximum can
    // be taken on the raw scores and the multiply folded into the
    // exponent's FMA (x * c - max).
    const bool foldedScale = (softmax && !rbf &&
                              norm != Normalization::scalable_softmax &&
                              (mode == Mode::SinkRows ||
                               spec.getScoreMod().empty())) ||
                             augmentRbf;
    // The factor from x (below) to the exp2 domain: the folded scale for
    // raw dot products, 1 for RBF scores already built in that domain,
    // log2(e) for scores in natural units (after a score region). When it
    // is positive the maximum is taken before it and it is folded into the
    // exponent's FMA (scalable softmax has a per-row factor: not deferred).
    const double scaleLog2 =
        foldedScale
            ? (augmentRbf ? 2.0 * info.gamma * log2e : info.scale * log2e)
        : rbfLog2Domain ? 1.0
                        : log2e;
    const bool deferScale = softmax &&
                            norm != Normalization::scalable_softmax &&
                            scaleLog2 > 0;
    const bool scaleNeeded = scaleLog2 != 1.0;
    for (int64_t mi = 0; mi < mTiles; ++mi) {
      for (int64_t nt = 0; nt < nTiles; ++nt) {
        for (int64_t k = 0; k < 4; ++k) {
          int64_t r = 2 * mi + k / 2;
          int64_t at = (mi * nTiles + nt) * 4 + k;
          Value col = e->addI(idx(nt * 8 + (k % 2)), e->mulI(t4, idx(2)));
          Value j = e->addI(j0, col);
          Value x = s[at];
          if (foldedScale) {
            if (!deferScale)
              x = e->mul(x, f32(scaleLog2));
          } else if (rbf) {
            Value kn =
                memref::LoadOp::create(*b, normSmem, ValueRange{stage, col});
            x = e->sub(e->mul(f32(2.0 * info.gamma * normScale), x), kn);
            if (!dropQueryNorm)
              x = e->sub(x, e->mul(qNorm[r], f32(normScale)));
          } else {
            x = e->mul(f32(info.scale), x);
          }
          Value vis = e->i1(true);
          if (mode == Mode::SinkRows) {
            vis = e->cmpI(P::slt, col, numSinkRows);
          } else {
            x = emitScoreMod(*e, info, x, bIdx, h, qRow[r], j);
            if (mode == Mode::Masked) {
              Value inb = e->cmpI(P::slt, j, kvLen);
              Value jc = e->minI(j, e->subI(kvLen, idx(1)));
              Value qc = e->minI(qRow[r], e->subI(qLen, idx(1)));
              vis = e->andI(inb, visible(qc, jc));
            }
          }
          Value w;
          if (softmax) {
            Value scaled = deferScale || foldedScale || rbfLog2Domain ? x
                           : norm == Normalization::scalable_softmax
                               ? e->mul(x, e->mul(factor[r], f32(log2e)))
                               : e->mul(x, f32(log2e));
            w = e->select(vis, scaled, negInf);
            rowMax[r] = e->maxF(rowMax[r], w);
          } else {
            switch (norm) {
            case Normalization::sigmoid: {
              double bias =
                  spec.getBias() ? spec.getBias()->convertToDouble() : 0.0;
              Value z = e->add(x, f32(bias));
              w = NVVM::RcpApproxFtzF32Op::create(
                  *b, f32Type,
                  e->add(f32(1.0), exp2(e->mul(z, f32(-log2e)))));
              break;
            }
            case Normalization::relu:
              w = e->maxF(x, zero);
              break;
            case Normalization::relu2: {
              Value rl = e->maxF(x, zero);
              w = e->mul(rl, rl);
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
            if (norm == Normalization::mean)
              rowCount[r] = e->add(rowCount[r], w);
          }
          p[at] = w;
        }
      }
    }
    SmallVector<Value> nextM(curM.begin(), curM.end()),
        nextL(curL.begin(), curL.end());
    SmallVector<Value> alpha(rowsPerThread, f32(1.0));
    if (softmax) {
      SmallVector<Value> shift(rowsPerThread), sum(rowsPerThread, zero);
      for (int64_t r = 0; r < rowsPerThread; ++r) {
        for (int32_t off : {1, 2})
          rowMax[r] = e->maxF(rowMax[r], shuffleXor(rowMax[r], off));
        if (deferScale && scaleNeeded)
          rowMax[r] = e->mul(rowMax[r], f32(scaleLog2));
        Value mNew = e->maxF(curM[r], rowMax[r]);
        shift[r] = e->select(e->cmpF(FP::OEQ, mNew, negInf), zero, mNew);
        alpha[r] = exp2(e->sub(curM[r], shift[r]));
        nextM[r] = mNew;
      }
      for (int64_t mi = 0; mi < mTiles; ++mi)
        for (int64_t nt = 0; nt < nTiles; ++nt)
          for (int64_t k = 0; k < 4; ++k) {
            int64_t r = 2 * mi + k / 2;
            int64_t at = (mi * nTiles + nt) * 4 + k;
            Value t = deferScale && scaleNeeded
                          ? e->mul(p[at], f32(scaleLog2))
                          : p[at];
            p[at] = exp2(e->sub(t, shift[r]));
            sum[r] = e->add(sum[r], p[at]);
          }
      for (int64_t r = 0; r < rowsPerThread; ++r)
        nextL[r] = e->add(e->mul(curL[r], alpha[r]), sum[r]);
    } else if (norm == Normalization::mean) {
      for (int64_t r = 0; r < rowsPerThread; ++r)
        nextL[r] = e->add(curL[r], rowCount[r]);
    }
    Value changed = e->i1(false);
    if (softmax)
      for (int64_t r = 0; r < rowsPerThread; ++r)
        changed = e->orI(changed, e->cmpF(FP::ONE, nextM[r], curM[r]));
    return {p, nextM, nextL, alpha, changed};
  };
  // Rescale O only when some row of the warp has a new maximum: once the
  // maxima settle (most tiles of a long row), the 4*Dv/8 multiplies per
  // m-tile are skipped. A warp-uniform branch (vote.any).
  auto rescaleO = [&](ArrayRef<Value> oldO, ArrayRef<Value> alpha,
                      Value changed) -> SmallVector<Value> {
    if (!softmax)
      return SmallVector<Value>(oldO);
    Value anyLane = NVVM::VoteSyncOp::create(
        *b, b->getI1Type(), arith::ConstantIntOp::create(*b, -1, 32),
        changed, NVVM::VoteSyncKind::any);
    return ifOp(
        anyLane,
        [&]() {
          SmallVector<Value> o(nO);
          for (int64_t mi = 0; mi < mTiles; ++mi)
            for (int64_t dt = 0; dt < dTiles; ++dt)
              for (int64_t k = 0; k < 4; ++k) {
                int64_t at = (mi * dTiles + dt) * 4 + k;
                o[at] = e->mul(oldO[at], alpha[2 * mi + k / 2]);
              }
          return o;
        },
        [&]() { return SmallVector<Value>(oldO); });
  };
  // P's accumulators of n-tiles 2kk, 2kk+1 are the A fragment of k-step kk.
  auto packP = [&](ArrayRef<Value> p, int64_t mi,
                   int64_t kk) -> SmallVector<Value> {
    auto at = [&](int64_t nt, int64_t k) {
      return p[(mi * nTiles + nt) * 4 + k];
    };
    return {packPair(at(2 * kk, 0), at(2 * kk, 1)),
            packPair(at(2 * kk, 2), at(2 * kk, 3)),
            packPair(at(2 * kk + 1, 0), at(2 * kk + 1, 1)),
            packPair(at(2 * kk + 1, 2), at(2 * kk + 1, 3))};
  };
  // wgmma: issues O += P.V (no wait): P from registers (the packed A
  // fragments), V MN-major in swizzled shared memory: 16 keys are two 8-row
  // groups of 1024 bytes; 64-column panels are blockN * 128 bytes apart.
  // The descriptors are computed before the fence, so that the chain issues
  // back to back (no register of an in-flight wgmma is written in between).
  auto issuePV = [&](ArrayRef<Value> oIn, ArrayRef<Value> packed,
                     Value stage) -> SmallVector<Value> {
    SmallVector<Value> descs;
    for (int64_t kk = 0; kk < blockN / 16; ++kk)
      descs.push_back(descriptor(
          bytes(stage, vStageBytes, qBytes + kBytes + kk * 16 * 128),
          blockN * 128, 1024));
    descs = fenceRegisters(descs);
    SmallVector<Value> a = fenceRegisters(packed);
    SmallVector<Value> o = fenceRegisters(oIn);
    inFlightPV.assign(descs.begin(), descs.end());
    inFlightPV.append(a.begin(), a.end());
    NVVM::WgmmaFenceAlignedOp::create(*b);
    for (int64_t kk = 0; kk < blockN / 16; ++kk)
      o = wgmmaRegisterA(o, ArrayRef<Value>(a).slice(4 * kk, 4), descs[kk],
                         /*transposeB=*/true);
    NVVM::WgmmaGroupSyncAlignedOp::create(*b);
    return o;
  };

  auto packAll = [&](ArrayRef<Value> p) {
    SmallVector<Value> packed;
    for (int64_t kk = 0; kk < blockN / 16; ++kk)
      packed.append(packP(p, 0, kk));
    return packed;
  };
  auto waitScores = [&](Value acc, int64_t pendingGroups) {
    NVVM::WgmmaWaitGroupSyncOp::create(*b, pendingGroups);
    (void)fenceRegisters(inFlightS);
    return fenceRegisters(unpack(acc));
  };

  // One KV tile start to end (mma.sync, or wgmma without pipelining). One ldmatrix.x4.trans of V feeds
  // two d-tiles (matrices (k-lo, dt), (k-hi, dt), (k-lo, dt+1),
  // (k-hi, dt+1)).
  auto processTile = [&](ValueRange cur, Value u, Value stage,
                         Mode mode) -> SmallVector<Value> {
    SmallVector<Value> curV(cur.begin(), cur.end());
    ArrayRef<Value> c(curV);
    SmallVector<Value> s = wgmma ? waitScores(issueScores(stage), 0)
                                 : mmaSyncScores(stage);
    Weights w = weightsOf(s, c.slice(mAt, rowsPerThread),
                          c.slice(lAt, rowsPerThread), u, stage, mode);
    SmallVector<Value> o = rescaleO(c.take_front(nO), w.alpha, w.changed);
    if (wgmma) {
      o = issuePV(o, packAll(w.p), stage);
      NVVM::WgmmaWaitGroupSyncOp::create(*b, 0);
      o = fenceRegisters(o);
      (void)fenceRegisters(inFlightPV);
      o.append(w.nextM);
      o.append(w.nextL);
      return o;
    }
    Value vRowInStep = e->remI(lane, idx(16));
    Value vColHalf = e->mulI(e->divI(lane, idx(16)), idx(8));
    for (int64_t kk = 0; kk < blockN / 16; ++kk) {
      SmallVector<SmallVector<Value>> aFrags;
      for (int64_t mi = 0; mi < mTiles; ++mi)
        aFrags.push_back(packP(w.p, mi, kk));
      Value row = e->addI(idx(kk * 16), vRowInStep);
      for (int64_t dt = 0; dt < dTiles; dt += 2) {
        SmallVector<Value> frags = ldmatrix(
            vSmem, {stage, row, e->addI(idx(dt * 8), vColHalf)}, 4, true);
        for (int64_t mi = 0; mi < mTiles; ++mi) {
          for (int64_t half = 0; half < 2; ++half) {
            int64_t base = (mi * dTiles + dt + half) * 4;
            SmallVector<Value> acc(o.begin() + base,
                                   o.begin() + base + 4);
            acc = mma(aFrags[mi], {frags[2 * half], frags[2 * half + 1]}, acc);
            std::copy(acc.begin(), acc.end(), o.begin() + base);
          }
        }
      }
    }
    SmallVector<Value> next(o);
    next.append(w.nextM);
    next.append(w.nextL);
    return next;
  };

  // Runs fn(mode) for tile u under the mode it takes (uniform across the
  // CTA): the learned sink rows, or a tile fully visible (no mask code) or
  // not.
  auto dispatch = [&](Value u, bool maySink,
                      function_ref<SmallVector<Value>(Mode)> fn) {
    auto regular = [&]() {
      Value j0 = e->mulI(tileOf(u), tn);
      Value j1 = e->addI(j0, tn);
      Value full =
          e->andI(e->cmpI(P::sle, j1, kvLen),
                  emitBlockFullyVisible(*e, info, i0, i1, j0, j1));
      return ifOp(
          full, [&]() { return fn(Mode::Full); },
          [&]() { return fn(Mode::Masked); });
    };
    if (sinkRows && maySink)
      return ifOp(
          e->cmpI(P::slt, u, idx(0)), [&]() { return fn(Mode::SinkRows); },
          regular);
    return regular();
  };
  // Issues the load of tile `ahead` (if it exists) into its ring buffer and
  // commits a group (empty when there is no such tile).
  auto prefetch = [&](Value ahead) {
    scf::IfOp::create(*b, e->cmpI(P::slt, ahead, uEnd),
                      [&](OpBuilder &nb, Location) {
                        OpBuilder::InsertionGuard guard(*b);
                        b->setInsertionPoint(nb.getInsertionBlock(),
                                             nb.getInsertionPoint());
                        issueTileLoad(ahead, stageOf(ahead));
                        scf::YieldOp::create(*b);
                      });
    NVVM::CpAsyncCommitGroupOp::create(*b);
  };

  SmallVector<Value> fin;
  if (!pipelined) {
    // The KV loop over a ring of `stages` buffers: wait for tile u (the
    // stages - 2 newer tiles may still be in flight), then prefetch tile
    // u + stages - 1 into the buffer that tile u-1 used. The barrier after
    // the wait both publishes tile u and guarantees that every warp is done
    // with tile u-1, so no barrier is needed after the compute.
    ValueRange finalState = e->forLoop(
        uBegin, uEnd, state,
        [&](Value u, ValueRange cur) -> SmallVector<Value> {
          Value stage = stageOf(u);
          NVVM::CpAsyncWaitGroupOp::create(*b, stages - 2);
          publishCopies();
          prefetch(e->addI(u, idx(stages - 1)));
          return dispatch(u, /*maySink=*/true, [&](Mode mode) {
            return processTile(cur, u, stage, mode);
          });
        });
    fin.assign(finalState.begin(), finalState.end());
  } else {
    // Software-pipelined (FlashAttention-3's intra-warpgroup overlap): in
    // iteration u the tensor cores compute S(u+1) = Q.K(u+1)^T and then
    // O += P(u).V(u) while the warps turn S(u+1) into P(u+1); the loop
    // carries O, the row statistics, the packed P of the tile whose P.V is
    // next, and its O rescale (alpha, and whether any row moved).
    // Tile u+1 is resident at the top of iteration u (issued at least one
    // iteration earlier: prefetch distance stages - 1).
    const int64_t nP = (blockN / 16) * 4;
    // Layout of the pipelined state: O, m, l, packed P, alpha, changed.
    const int64_t pAt = nO + 2 * rowsPerThread, alphaAt = pAt + nP,
                  changedAt = alphaAt + rowsPerThread;
    // The state after O from the scores of tile u: m ++ l ++ packed P ++
    // alpha ++ {changed}.
    auto weightsState = [&](ArrayRef<Value> s, ArrayRef<Value> curM,
                            ArrayRef<Value> curL, Value u, bool maySink) {
      return dispatch(u, maySink, [&](Mode mode) {
        Weights w = weightsOf(s, curM, curL, u, stageOf(u), mode);
        SmallVector<Value> out(w.nextM);
        out.append(w.nextL);
        out.append(packAll(w.p));
        out.append(w.alpha);
        out.push_back(w.changed);
        return out;
      });
    };
    // Placeholders for "no tile yet": zero P, no rescale.
    SmallVector<Value> init(state.begin(), state.end());
    init.append(packAll(SmallVector<Value>(nTiles * 4, zero)));
    init.append(rowsPerThread, f32(1.0));
    init.push_back(e->i1(false));
    SmallVector<Value> first = ifOp(
        e->cmpI(P::slt, uBegin, uEnd),
        [&]() {
          Value acc = issueScores(stageOf(uBegin));
          SmallVector<Value> sc = waitScores(acc, 0);
          SmallVector<Value> w = weightsState(
              sc, ArrayRef<Value>(init).slice(mAt, rowsPerThread),
              ArrayRef<Value>(init).slice(lAt, rowsPerThread), uBegin,
              /*maySink=*/true);
          SmallVector<Value> out(init.begin(), init.begin() + nO);
          out.append(w);
          return out;
        },
        [&]() { return init; });
    ValueRange looped = e->forLoop(
        uBegin, e->maxI(e->subI(uEnd, idx(1)), uBegin), first,
        [&](Value u, ValueRange curRange) -> SmallVector<Value> {
          SmallVector<Value> curV(curRange.begin(), curRange.end());
          ArrayRef<Value> cur(curV);
          Value next = e->addI(u, idx(1));
          NVVM::CpAsyncWaitGroupOp::create(*b, stages - 3);
          publishCopies();
          prefetch(e->addI(u, idx(stages - 1)));
          Value acc = issueScores(stageOf(next));
          SmallVector<Value> o =
              rescaleO(cur.take_front(nO), cur.slice(alphaAt, rowsPerThread),
                       cur[changedAt]);
          SmallVector<Value> packed(cur.slice(pAt, nP));
          o = issuePV(o, packed, stageOf(u));
          SmallVector<Value> sc = waitScores(acc, 1);
          SmallVector<Value> w =
              weightsState(sc, cur.slice(mAt, rowsPerThread),
                           cur.slice(lAt, rowsPerThread), next,
                           /*maySink=*/false);
          NVVM::WgmmaWaitGroupSyncOp::create(*b, 0);
          o = fenceRegisters(o);
          (void)fenceRegisters(inFlightPV);
          o.append(w);
          return o;
        });
    // The last tile's P.V.
    SmallVector<Value> last(looped.begin(), looped.end());
    SmallVector<Value> done = ifOp(
        e->cmpI(P::slt, uBegin, uEnd),
        [&]() {
          SmallVector<Value> o = rescaleO(
              SmallVector<Value>(ArrayRef<Value>(last).take_front(nO)),
              ArrayRef<Value>(last).slice(alphaAt, rowsPerThread),
              last[changedAt]);
          o = issuePV(o, ArrayRef<Value>(last).slice(pAt, nP),
                      stageOf(e->subI(uEnd, idx(1))));
          NVVM::WgmmaWaitGroupSyncOp::create(*b, 0);
          (void)fenceRegisters(inFlightPV);
          return fenceRegisters(o);
        },
        [&]() {
          return SmallVector<Value>(ArrayRef<Value>(last).take_front(nO));
        });
    fin = done;
    fin.append(last.begin() + nO, last.begin() + nO + 2 * rowsPerThread);
  }

  // Epilogue: reduce the normalizer over the quad, write O and the LSE.
  bool divides = softmax || norm == Normalization::mean;
  Value oRowBase = e->mulI(e->addI(e->mulI(bIdx, qHeads), h), qLen);
  for (int64_t r = 0; r < rowsPerThread; ++r) {
    Value l = fin[lAt + r];
    for (int32_t off : {1, 2})
      l = e->add(l, shuffleXor(l, off));
    Value inv = divides ? e->select(e->cmpF(FP::OGT, l, zero),
                                    e->div(f32(1.0), l), zero)
                        : f32(1.0);
    Value qi = qRow[r];
    int64_t mi = r / 2, first = (r % 2) * 2;
    scf::IfOp::create(*b, e->cmpI(P::slt, qi, qLen), [&](OpBuilder &nb,
                                                          Location) {
      OpBuilder::InsertionGuard guard(*b);
      b->setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
      Value base = e->mulI(e->addI(oRowBase, qi), idx(dv));
      for (int64_t dt = 0; dt < dTiles; ++dt) {
        Value col = e->addI(idx(dt * 8), e->mulI(t4, idx(2)));
        Value x0 = e->mul(fin[(mi * dTiles + dt) * 4 + first], inv);
        Value x1 = e->mul(fin[(mi * dTiles + dt) * 4 + first + 1], inv);
        // The two neighbouring outputs of a row go out as one 4-byte store.
        Value pair = vector::FromElementsOp::create(
            *b, VectorType::get({2}, elt),
            ValueRange{arith::TruncFOp::create(*b, elt, x0),
                       arith::TruncFOp::create(*b, elt, x1)});
        // Columns come in even pairs and Dv is a multiple of 16: 4-byte
        // aligned.
        vector::StoreOp::create(*b, pair, oBuf, ValueRange{e->addI(base, col)},
                                /*nontemporal=*/false, llvm::MaybeAlign(4));
      }
      Value writeLse = e->cmpI(P::eq, t4, idx(0));
      scf::IfOp::create(*b, writeLse, [&](OpBuilder &nb2, Location) {
        OpBuilder::InsertionGuard guard2(*b);
        b->setInsertionPoint(nb2.getInsertionBlock(), nb2.getInsertionPoint());
        Value lse = zero;
        if (softmax) {
          Value m = fin[mAt + r];
          Value shift = e->select(e->cmpF(FP::OEQ, m, negInf), zero, m);
          lse = e->add(e->mul(shift, f32(1.0 / log2e)), e->log(l));
          // Add back the dropped -gamma|q|^2, except on rows that saw nothing.
          if (dropQueryNorm)
            lse = e->select(e->cmpF(FP::OGT, l, zero),
                            e->sub(lse, e->mul(qNorm[r], factor[r])), lse);
        } else if (norm == Normalization::mean) {
          lse = e->log(l);
        }
        memref::StoreOp::create(*b, lse, lseBuf,
                                ValueRange{e->addI(oRowBase, qi)});
        scf::YieldOp::create(*b);
      });
      scf::YieldOp::create(*b);
    });
  }

  // Let the backend contract multiplies and adds into FMAs (the scaled
  // scores minus the running maximum, the rescales): the kernel's float
  // arithmetic is otherwise emitted as separately rounded mul.rn/add.rn.
  func.walk([&](arith::ArithFastMathInterface fm) {
    if (!isa<arith::MulFOp, arith::AddFOp, arith::SubFOp>(fm.getOperation()))
      return;
    fm->setAttr(fm.getFastMathAttrName(),
                arith::FastMathFlagsAttr::get(ctx,
                                              arith::FastMathFlags::contract));
  });

  // The launch description for the bundle.
  auto i64Attr = [&](int64_t v) { return b->getI64IntegerAttr(v); };
  auto str = [&](StringRef s) { return StringAttr::get(ctx, s); };
  SmallVector<NamedAttribute> launch = {
      {str("kernel"), str(name)},
      {str("args"), ArrayAttr::get(ctx, argDocs)},
      {str("block"), b->getI64ArrayAttr({threads, 1, 1})},
      {str("grid"), b->getStrArrayAttr({"ceildiv(Sq, block_m)", "Hq", "B"})},
      {str("block_m"), i64Attr(blockM)},
      {str("block_n"), i64Attr(blockN)},
      {str("mma"), str(wgmma ? "wgmma" : "mma.sync")},
      {str("stages"), i64Attr(stages)},
      {str("shared_memory_bytes"), i64Attr(smemBytes)},
      {str("dtype"), str(llvm::to_string(elt))},
      {str("head_dim_qk"), i64Attr(dqk)},
      {str("head_dim_v"), i64Attr(dv)},
      {str("has_lse_result"), b->getBoolAttr(bool(op.getLse()))},
  };
  if (rbf) {
    launch.emplace_back(
        str("prologue"),
        augmentRbf ? buildKeyNormKernel(dqk, blockN, 0.5, /*parts=*/true)
                   : buildKeyNormKernel(dqk, blockN, info.gamma * normScale,
                                        /*parts=*/false));
    launch.emplace_back(str("key_norms_padding"), i64Attr(blockN));
    launch.emplace_back(str("key_norms_width"), i64Attr(augmentRbf ? 8 : 1));
  }
  return DictionaryAttr::get(ctx, launch);
}

gpu::GPUFuncOp KernelBuilder::createKernel(StringRef fnName,
                                           ArrayRef<Type> argTypes,
                                           int64_t blockThreads) {
  MLIRContext *ctx = op.getContext();
  OpBuilder mb(ctx);
  mb.setInsertionPointToEnd(gpuModule.getBody());
  auto func = gpu::GPUFuncOp::create(mb, op.getLoc(), fnName,
                                     FunctionType::get(ctx, argTypes, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), UnitAttr::get(ctx));
  func.setKnownBlockSizeAttr(
      DenseI32ArrayAttr::get(ctx, {int32_t(blockThreads), 1, 1}));
  return func;
}

DictionaryAttr KernelBuilder::buildKeyNormKernel(int64_t dqk, int64_t blockN,
                                                 double factor, bool parts) {
  MLIRContext *ctx = op.getContext();
  auto str = [&](StringRef s) { return StringAttr::get(ctx, s); };
  auto global = [&](Type t) {
    return MemRefType::get(
        {ShapedType::kDynamic}, t, MemRefLayoutAttrInterface(),
        IntegerAttr::get(IntegerType::get(ctx, 64), kGlobalSpace));
  };
  Type f32Type = Float32Type::get(ctx), indexType = IndexType::get(ctx);
  Type outType = parts ? elt : f32Type;
  SmallVector<Type> argTypes = {global(elt), global(outType), indexType,
                                indexType, indexType};
  auto doc = [&](StringRef argName, StringRef kind, StringRef dtype) {
    SmallVector<NamedAttribute> d = {{str("name"), str(argName)},
                                     {str("kind"), str(kind)}};
    if (!dtype.empty())
      d.emplace_back(str("dtype"), str(dtype));
    return DictionaryAttr::get(ctx, d);
  };
  SmallVector<Attribute> argDocs = {
      doc("k", "buffer", llvm::to_string(elt)),
      doc("key_norms", "buffer", llvm::to_string(outType)),
      doc("B", "size", ""),
      doc("Hkv", "size", ""), doc("Sk", "size", "")};
  std::string fnName = name + "_key_norms";
  gpu::GPUFuncOp func = createKernel(fnName, argTypes, blockN);
  Block &entry = func.getBody().front();
  ImplicitLocOpBuilder kb(op.getLoc(), ctx);
  kb.setInsertionPointToStart(&entry);
  gpu::ReturnOp::create(kb);
  kb.setInsertionPointToStart(&entry);
  ScalarEmitter ke{kb};
  Value kBuf = entry.getArgument(0), out = entry.getArgument(1);
  Value kvHeads = entry.getArgument(3), kvLen = entry.getArgument(4);
  Value j = ke.addI(ke.mulI(gpu::BlockIdOp::create(kb, gpu::Dimension::x),
                            ke.index(blockN)),
                    gpu::ThreadIdOp::create(kb, gpu::Dimension::x));
  Value head = ke.addI(
      ke.mulI(gpu::BlockIdOp::create(kb, gpu::Dimension::z), kvHeads),
      gpu::BlockIdOp::create(kb, gpu::Dimension::y));
  Value padded = ke.mulI(
      ke.divI(ke.addI(kvLen, ke.index(blockN - 1)), ke.index(blockN)),
      ke.index(blockN));
  Value inRange = ke.cmpI(arith::CmpIPredicate::slt, j, kvLen);
  // Rows past Sk (the padding) get 0 from a clamped, valid row.
  Value row = ke.addI(ke.mulI(head, kvLen),
                      ke.minI(j, ke.subI(kvLen, ke.index(1))));
  Value sum = ke.forLoop(
      ke.index(0), ke.index(dqk / 8), {ke.f32(0.0)},
      [&](Value c, ValueRange a) -> SmallVector<Value> {
        Value at = ke.addI(ke.mulI(row, ke.index(dqk)),
                           ke.mulI(c, ke.index(8)));
        Value v = vector::LoadOp::create(kb, VectorType::get({8}, elt), kBuf,
                                         ValueRange{at}, false,
                                         llvm::MaybeAlign(16));
        Value f = arith::ExtFOp::create(
            kb, VectorType::get({8}, f32Type), v);
        Value sq = arith::MulFOp::create(kb, f, f);
        return {ke.add(a[0], vector::ReductionOp::create(
                                 kb, vector::CombiningKind::ADD, sq))};
      })[0];
  Value norm = ke.select(inRange, ke.mul(ke.f32(factor), sum), ke.f32(0.0));
  Value at = ke.addI(ke.mulI(head, padded), j);
  if (!parts) {
    memref::StoreOp::create(kb, norm, out, ValueRange{at});
  } else {
    // Three bf16 parts hi + mid + lo = norm to f32 precision, then zeros:
    // one 16-byte row per key.
    SmallVector<Value> row;
    Value rest = norm;
    for (int i = 0; i < 3; ++i) {
      Value part = arith::TruncFOp::create(kb, elt, rest);
      row.push_back(part);
      rest = ke.sub(rest, arith::ExtFOp::create(kb, f32Type, part));
    }
    Value zeroElt = arith::ConstantOp::create(kb, kb.getFloatAttr(elt, 0.0));
    row.append(5, zeroElt);
    Value v = vector::FromElementsOp::create(kb, VectorType::get({8}, elt),
                                             row);
    vector::StoreOp::create(kb, v, out,
                            ValueRange{ke.mulI(at, ke.index(8))}, false,
                            llvm::MaybeAlign(16));
  }
  auto i64Attr = [&](int64_t v) { return kb.getI64IntegerAttr(v); };
  SmallVector<NamedAttribute> launch = {
      {str("kernel"), str(fnName)},
      {str("args"), ArrayAttr::get(ctx, argDocs)},
      {str("block"), kb.getI64ArrayAttr({blockN, 1, 1})},
      {str("grid"), kb.getStrArrayAttr({"ceildiv(Sk, block_n)", "Hkv", "B"})},
      {str("block_n"), i64Attr(blockN)},
      {str("shared_memory_bytes"), i64Attr(0)},
  };
  return DictionaryAttr::get(ctx, launch);
}

struct AttnToNVGPUPass final
    : attn::impl::AttnToNVGPUPassBase<AttnToNVGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    if ((mTiles != 0 && mTiles != 1 && mTiles != 2) ||
        (kvTile != 0 && (kvTile % 16 || kvTile > 128)) ||
        !llvm::is_contained({0, 1, 2, 4, 8}, warps) ||
        (stages != 0 && (stages < 2 || stages > 4)) ||
        !llvm::is_contained({"sync", "wgmma", "auto"}, mma) ||
        !llvm::is_contained({"auto", "on", "off"}, pipeline)) {
      module.emitError("attn-to-nvgpu: m-tiles must be 0, 1 or 2, kv-tile 0 "
                       "or a multiple of 16 up to 128, warps 0, 1, 2, 4 or "
                       "8, stages 0 or 2 to 4, mma sync, wgmma or auto, and "
                       "pipeline auto, on or off");
      return signalPassFailure();
    }
    SmallVector<AttentionOp> ops;
    llvm::SetVector<Operation *> hostFuncs;
    module.walk([&](AttentionOp op) {
      ops.push_back(op);
      if (auto func = op->getParentOfType<func::FuncOp>())
        hostFuncs.insert(func);
    });
    if (ops.empty())
      return;
    DenseMap<Operation *, bool> useWgmma;
    for (AttentionOp op : ops) {
      if (failed(verifyInstantiated(op)))
        return signalPassFailure();
      if (std::optional<std::string> why = unsupportedReason(op)) {
        op.emitOpError() << "cannot be compiled for the GPU yet: " << *why;
        return signalPassFailure();
      }
      std::optional<std::string> noWgmma = wgmmaUnsupportedReason(
          op, mTiles, warps, stages, pipeline == "on");
      if (mma == "wgmma" && noWgmma) {
        op.emitOpError() << "cannot use wgmma (mma=wgmma): " << *noWgmma;
        return signalPassFailure();
      }
      useWgmma[op] = mma != "sync" && !noWgmma;
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
      bool wg = useWgmma[op];
      // Measured defaults (bench/NOTES.md, bench/sweep.py). wgmma at head
      // dims up to 64: the pipelined loop, 64-key tiles, a 4-deep ring.
      // Above: the plain loop; one CTA of two warpgroups with 128-key tiles
      // and a 2-deep ring, except for ops with per-element work beyond the
      // softmax (a score region, a non-softmax normalization), which run
      // best as two independent one-warpgroup CTAs per SM with 64-key tiles
      // (one CTA's arithmetic overlaps the other's tensor-core work).
      auto spec = cast<VariantSpecOpInterface>(op.getOperation());
      bool small = std::max(op.getQuery().getType().getDimSize(3),
                            op.getValue().getType().getDimSize(3)) <= 64;
      bool heavy = !spec.getScoreMod().empty() ||
                   !isSoftmaxFamily(spec.getNormalizationKind());
      bool twoCtas = wg && !small && heavy;
      bool pipe = wg && (pipeline == "on" ||
                         (pipeline == "auto" && small && stages != 2));
      int64_t nWarps = warps ? warps : (wg && !twoCtas ? 8 : 4);
      int64_t nStages = stages   ? stages
                        : pipe   ? (small ? 4 : 3)
                        : wg     ? 2
                                 : 3;
      int64_t nKv = kvTile ? kvTile
                    : (pipe && small) || (twoCtas && !pipe) ? 64
                                                            : 0;
      DictionaryAttr launch =
          KernelBuilder(op, gpuModule, name, mTiles, nKv, nWarps, nStages, wg,
                        pipe)
              .build();
      if (!launch)
        return signalPassFailure();
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
