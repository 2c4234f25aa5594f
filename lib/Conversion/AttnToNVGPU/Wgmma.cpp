//===- Wgmma.cpp - Hopper warpgroup MMA chains ------------------*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/Wgmma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

Value WgmmaChains::descriptor(Value offset, DescriptorLayout layout) {
  // Bits 0-13: start address >> 4; 16-29: leading byte offset >> 4; 32-45:
  // stride byte offset >> 4; 62-63: 1 = 128-byte swizzle, 0 = none.
  // Swizzled tiles start on 1024-byte boundaries, so the base offset
  // (bits 49-51) is 0.
  ImplicitLocOpBuilder &b = k.b;
  Type i64 = b.getI64Type();
  auto c = [&](int64_t v) {
    return arith::ConstantIntOp::create(b, i64, v).getResult();
  };
  Value addr = arith::AddIOp::create(b, smemAddress, offset);
  Value start = arith::ShRUIOp::create(
      b, arith::AndIOp::create(b, addr, c(0x3FFFF)), c(4));
  int64_t fixed = ((layout.leadingBytes >> 4) << 16) |
                  ((layout.strideBytes >> 4) << 32) |
                  (layout.swizzle128 ? (int64_t(1) << 62) : 0);
  return arith::OrIOp::create(b, start, c(fixed));
}

/// A vector<2 x 16-bit> pair as the i32 register inline asm takes.
static Value asI32(ImplicitLocOpBuilder &b, Value v) {
  if (!isa<VectorType>(v.getType()))
    return v;
  return vector::ExtractOp::create(
      b, vector::BitCastOp::create(b, VectorType::get({1}, b.getI32Type()), v),
      ArrayRef<int64_t>{0});
}

SmallVector<Value> WgmmaChains::fenceRegisters(ArrayRef<Value> values) {
  // f32 ("f"), i32 ("r") and i64 ("l") registers; 16-bit pairs travel as
  // i32.
  ImplicitLocOpBuilder &b = k.b;
  auto i32 = b.getI32Type();
  SmallVector<Value> regs;
  SmallVector<Type> types;
  std::string outs, ins;
  for (auto [n, value] : llvm::enumerate(values)) {
    Value v = asI32(b, value);
    regs.push_back(v);
    types.push_back(v.getType());
    std::string c = v.getType().isF32()          ? "f"
                    : v.getType().isInteger(64) ? "l"
                                                : "r";
    outs += (n ? ",=" : "=") + c;
    ins += "," + std::to_string(n);
  }
  auto st = LLVM::LLVMStructType::getLiteral(k.ctx, types);
  SmallVector<Value> out =
      k.unpack(k.inlineAsm(st, regs, "", outs + ins)->getResult(0));
  for (auto [n, v] : llvm::enumerate(values))
    if (isa<VectorType>(v.getType()))
      out[n] = vector::BitCastOp::create(
          b, v.getType(),
          vector::FromElementsOp::create(b, VectorType::get({1}, i32),
                                         ValueRange{out[n]}));
  return out;
}

SmallVector<Value> WgmmaChains::registerA(ArrayRef<Value> acc,
                                          ArrayRef<Value> a, Value descB,
                                          bool transposeB) {
  ImplicitLocOpBuilder &b = k.b;
  int64_t n = acc.size(); // n f32 per thread: an m64 x 2n tile
  std::string ptx = "{\n.reg .pred p;\nsetp.ne.b32 p, $" +
                    std::to_string(2 * n + 5) +
                    ", 0;\nwgmma.mma_async.sync.aligned.m64n" +
                    std::to_string(2 * n) + "k16.f32." +
                    (k.elt.isBF16() ? "bf16.bf16" : "f16.f16") + " {";
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
  for (Value r : a)
    operands.push_back(asI32(b, r));
  operands.push_back(descB);
  operands.push_back(arith::ConstantIntOp::create(b, b.getI32Type(), 1));
  return k.unpack(
      k.inlineAsm(k.accumulatorType(n), operands, ptx, constraints)
          ->getResult(0));
}

Value WgmmaChains::issueShared(ArrayRef<Value> descsA, ArrayRef<Value> descsB,
                               int64_t n, SmallVector<Value> &inFlight,
                               bool transposeB) {
  MLIRContext *ctx = k.ctx;
  auto wgType = k.elt.isBF16() ? NVVM::WGMMATypes::bf16
                               : NVVM::WGMMATypes::f16;
  auto typeAttr = NVVM::WGMMATypesAttr::get(ctx, wgType);
  Value acc = LLVM::PoisonOp::create(k.b, k.accumulatorType(n / 2));
  SmallVector<Value> a = fenceRegisters(descsA);
  SmallVector<Value> bDescs = fenceRegisters(descsB);
  inFlight.assign(a.begin(), a.end());
  inFlight.append(bDescs.begin(), bDescs.end());
  NVVM::WgmmaFenceAlignedOp::create(k.b);
  for (int64_t ks = 0; ks < int64_t(a.size()); ++ks) {
    acc = NVVM::WgmmaMmaAsyncOp::create(
        k.b, acc.getType(), acc, a[ks], bDescs[ks],
        NVVM::MMAShapeAttr::get(ctx, 64, n, 16), typeAttr, typeAttr,
        NVVM::WGMMATypesAttr::get(ctx, NVVM::WGMMATypes::f32),
        NVVM::WGMMAScaleOutAttr::get(ctx, ks == 0 ? NVVM::WGMMAScaleOut::zero
                                                  : NVVM::WGMMAScaleOut::one),
        NVVM::WGMMAScaleInAttr::get(ctx, NVVM::WGMMAScaleIn::one),
        NVVM::WGMMAScaleInAttr::get(ctx, NVVM::WGMMAScaleIn::one),
        NVVM::MMALayoutAttr::get(ctx, NVVM::MMALayout::row),
        // B's "row" layout is its transposed (MN-major) form.
        NVVM::MMALayoutAttr::get(ctx, transposeB ? NVVM::MMALayout::row
                                                 : NVVM::MMALayout::col),
        NVVM::MMAIntOverflowAttr());
  }
  NVVM::WgmmaGroupSyncAlignedOp::create(k.b);
  return acc;
}

SmallVector<Value> WgmmaChains::issueRegisterA(ArrayRef<Value> acc,
                                               ArrayRef<Value> a,
                                               ArrayRef<Value> descsB,
                                               bool transposeB,
                                               SmallVector<Value> &inFlight) {
  // Everything the chain reads is defined and pinned before its fence, so
  // that it issues back to back.
  SmallVector<Value> descs = fenceRegisters(descsB);
  SmallVector<Value> regsA = fenceRegisters(a);
  SmallVector<Value> o = fenceRegisters(acc);
  inFlight.assign(descs.begin(), descs.end());
  inFlight.append(regsA.begin(), regsA.end());
  NVVM::WgmmaFenceAlignedOp::create(k.b);
  for (int64_t kk = 0, n = descs.size(); kk < n; ++kk)
    o = registerA(o, ArrayRef<Value>(regsA).slice(4 * kk, 4), descs[kk],
                  transposeB);
  NVVM::WgmmaGroupSyncAlignedOp::create(k.b);
  return o;
}

void WgmmaChains::wait(int64_t pending, ArrayRef<Value> inFlight) {
  NVVM::WgmmaWaitGroupSyncOp::create(k.b, pending);
  (void)fenceRegisters(inFlight);
}

SmallVector<Value> WgmmaChains::waitForAccumulator(Value acc, int64_t pending,
                                                   ArrayRef<Value> inFlight) {
  wait(pending, inFlight);
  return fenceRegisters(k.unpack(acc));
}

SmallVector<Value> WgmmaChains::retire(ArrayRef<Value> o,
                                       ArrayRef<Value> inFlight) {
  NVVM::WgmmaWaitGroupSyncOp::create(k.b, 0);
  SmallVector<Value> pinned = fenceRegisters(o);
  (void)fenceRegisters(inFlight);
  return pinned;
}
