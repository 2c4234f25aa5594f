//===- KernelContext.cpp - the builder every kernel piece shares -*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/KernelContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

Value KernelContext::threadId() {
  return gpu::ThreadIdOp::create(b, gpu::Dimension::x);
}

Value KernelContext::shuffleXor(Value x, int32_t offset) {
  return gpu::ShuffleOp::create(b, x, offset, 32, gpu::ShuffleMode::XOR)
      .getShuffleResult();
}

Value KernelContext::exp2(Value x) {
  // One MUFU.EX2; libdevice's exp2f without FTZ adds denormal scaling
  // around it (three more instructions per element).
  return LLVM::CallIntrinsicOp::create(
             b, b.getF32Type(),
             b.getStringAttr("llvm.nvvm.ex2.approx.ftz.f32"), ValueRange{x})
      .getResult(0);
}

Value KernelContext::rcp(Value x) {
  return NVVM::RcpApproxFtzF32Op::create(b, b.getF32Type(), x);
}

Value KernelContext::bytes(Value index, int64_t scale, int64_t offset) {
  return arith::IndexCastOp::create(
      b, b.getI64Type(), e.addI(e.mulI(index, idx(scale)), idx(offset)));
}

void KernelContext::ifThen(Value cond, function_ref<void()> body) {
  scf::IfOp::create(b, cond, [&](OpBuilder &nb, Location) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
    body();
    scf::YieldOp::create(b);
  });
}

SmallVector<Value>
KernelContext::ifElse(Value cond, function_ref<SmallVector<Value>()> thenFn,
                      function_ref<SmallVector<Value>()> elseFn) {
  auto branch = [&](function_ref<SmallVector<Value>()> fn) {
    return [&, fn](OpBuilder &nb, Location) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
      scf::YieldOp::create(b, fn());
    };
  };
  auto ifo = scf::IfOp::create(b, cond, branch(thenFn), branch(elseFn));
  return llvm::to_vector_of<Value>(ifo.getResults());
}

Value KernelContext::fragmentRegister(Value pair) {
  // nvvm.mma.sync takes f16 pairs as vector<2xf16> and bf16 pairs packed
  // in an i32.
  if (elt.isF16())
    return pair;
  Value i = vector::BitCastOp::create(
      b, VectorType::get({1}, b.getI32Type()), pair);
  return vector::ExtractOp::create(b, i, ArrayRef<int64_t>{0});
}

Value KernelContext::packPair(Value lo, Value hi) {
  // One cvt.rn.{bf16x2,f16x2}.f32 rounds both halves into one register.
  auto pairType = VectorType::get({2}, elt);
  auto rn = NVVM::FPRoundingModeAttr::get(ctx, NVVM::FPRoundingMode::RN);
  Value v = elt.isBF16()
                ? NVVM::ConvertF32x2ToBF16x2Op::create(b, pairType, hi, lo,
                                                       Value(), rn)
                      .getResult()
                : NVVM::ConvertF32x2ToF16x2Op::create(b, pairType, hi, lo,
                                                      Value(), rn)
                      .getResult();
  return fragmentRegister(v);
}

SmallVector<Value> KernelContext::unpack(Value accStruct) {
  auto st = cast<LLVM::LLVMStructType>(accStruct.getType());
  SmallVector<Value> out;
  for (int64_t i = 0, n = st.getBody().size(); i < n; ++i)
    out.push_back(LLVM::ExtractValueOp::create(b, accStruct, i));
  return out;
}

Type KernelContext::accumulatorType(int64_t n) {
  return LLVM::LLVMStructType::getLiteral(
      ctx, SmallVector<Type>(n, b.getF32Type()));
}

Operation *KernelContext::inlineAsm(Type resultType, ValueRange operands,
                                    StringRef text, StringRef constraints) {
  return LLVM::InlineAsmOp::create(
      b, resultType ? TypeRange{resultType} : TypeRange{}, operands, text,
      constraints, /*has_side_effects=*/true,
      /*is_align_stack=*/false, LLVM::tailcallkind::TailCallKind::None,
      LLVM::AsmDialectAttr::get(ctx, LLVM::AsmDialect::AD_ATT), ArrayAttr());
}

Value KernelContext::address(Value memref) {
  return arith::IndexCastOp::create(
      b, b.getI64Type(),
      memref::ExtractAlignedPointerAsIndexOp::create(b, memref));
}

SmallVector<Value> kernel::packAccumulatorsAsA(KernelContext &k,
                                               ArrayRef<Value> p,
                                               int64_t nTiles, int64_t mi,
                                               int64_t kk) {
  auto at = [&](int64_t nt, int64_t i) {
    return p[(mi * nTiles + nt) * 4 + i];
  };
  return {k.packPair(at(2 * kk, 0), at(2 * kk, 1)),
          k.packPair(at(2 * kk, 2), at(2 * kk, 3)),
          k.packPair(at(2 * kk + 1, 0), at(2 * kk + 1, 1)),
          k.packPair(at(2 * kk + 1, 2), at(2 * kk + 1, 3))};
}

gpu::GPUFuncOp kernel::createKernel(gpu::GPUModuleOp gpuModule, Location loc,
                                    StringRef name, ArrayRef<Type> argTypes,
                                    int64_t blockThreads) {
  MLIRContext *ctx = gpuModule.getContext();
  OpBuilder mb(ctx);
  mb.setInsertionPointToEnd(gpuModule.getBody());
  auto func = gpu::GPUFuncOp::create(mb, loc, name,
                                     FunctionType::get(ctx, argTypes, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), UnitAttr::get(ctx));
  func.setKnownBlockSizeAttr(
      DenseI32ArrayAttr::get(ctx, {int32_t(blockThreads), 1, 1}));
  return func;
}

void kernel::allowContraction(gpu::GPUFuncOp func) {
  MLIRContext *ctx = func.getContext();
  func.walk([&](arith::ArithFastMathInterface fm) {
    if (!isa<arith::MulFOp, arith::AddFOp, arith::SubFOp>(fm.getOperation()))
      return;
    fm->setAttr(fm.getFastMathAttrName(),
                arith::FastMathFlagsAttr::get(ctx,
                                              arith::FastMathFlags::contract));
  });
}
