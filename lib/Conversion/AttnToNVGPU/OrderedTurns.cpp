//===- OrderedTurns.cpp - adds to one buffer in a fixed CTA order -------===//

#include "attn/Conversion/AttnToNVGPU/OrderedTurns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

/// The global pointer to turns[index].
static Value counterPointer(KernelContext &k, Value turns, Value index) {
  Value offset = arith::MulIOp::create(
      k.b, arith::IndexCastOp::create(k.b, k.b.getI64Type(), index),
      arith::ConstantIntOp::create(k.b, k.b.getI64Type(), 4));
  Value at = arith::AddIOp::create(k.b, k.address(turns), offset);
  return LLVM::IntToPtrOp::create(
      k.b, LLVM::LLVMPointerType::get(k.ctx, /*global*/ 1), at);
}

void kernel::waitForTurn(KernelContext &k, Value turns, Value index,
                         Value rank) {
  Value ptr = counterPointer(k, turns, index);
  Type i32 = k.b.getI32Type();
  Value want = arith::IndexCastOp::create(k.b, i32, rank);
  auto loop = scf::WhileOp::create(k.b, TypeRange{}, ValueRange{});
  {
    OpBuilder::InsertionGuard guard(k.b);
    Block *before = k.b.createBlock(&loop.getBefore());
    Value now = LLVM::LoadOp::create(
        k.b, i32, ptr, /*alignment=*/4, /*isVolatile=*/false,
        /*isNonTemporal=*/false, /*isInvariant=*/false,
        /*isInvariantGroup=*/false, LLVM::AtomicOrdering::acquire, "device");
    Value waiting =
        arith::CmpIOp::create(k.b, arith::CmpIPredicate::ne, now, want);
    scf::ConditionOp::create(k.b, waiting, ValueRange{});
    (void)before;
    k.b.createBlock(&loop.getAfter());
    scf::YieldOp::create(k.b);
  }
}

void kernel::passTurn(KernelContext &k, Value turns, Value index) {
  // A release pattern: fence.acq_rel.gpu, then a relaxed add (NVPTX emits
  // a release atomicrmw as a plain atom, without the fence).
  Value ptr = counterPointer(k, turns, index);
  fenceGpu(k);
  LLVM::AtomicRMWOp::create(
      k.b, LLVM::AtomicBinOp::add, ptr,
      arith::ConstantIntOp::create(k.b, k.b.getI32Type(), 1),
      LLVM::AtomicOrdering::monotonic, "device", /*alignment=*/4);
}

void kernel::fenceGpu(KernelContext &k) {
  LLVM::FenceOp::create(k.b, LLVM::AtomicOrdering::acq_rel, "device");
}
