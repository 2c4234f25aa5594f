//===- AttnToNVGPU.cpp - tensor-core kernels for attn.attention -*- C++ -*-===//
//
// The pass: for every attn.attention, the kernels its #attn.kernel_config
// describes (lib/Conversion/AttnToNVGPU/ForwardKernel.cpp assembles them
// from the pieces of this directory), collected in gpu.module
// @attn_kernels, with the launch descriptions in the module attribute
// `attn.kernels` for the bundle writer. The host functions are erased: the
// bundle's runtime launches the kernels itself, so a host function that
// computes anything besides its attention ops is refused.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/AttnCommon/AttnCodegen.h"
#include "attn/Conversion/Passes.h"

#include "attn/Conversion/AttnToNVGPU/BackwardKernel.h"
#include "attn/Conversion/AttnToNVGPU/ForwardKernel.h"
#include "attn/Conversion/AttnToNVGPU/KernelConfig.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/SetVector.h"

#define DEBUG_TYPE "attn-to-nvgpu"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNTONVGPUPASS
#include "attn/Conversion/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

/// Fails, with a diagnostic on the offending op, when `func` computes
/// anything the bundle would not: the bundle runs its attention ops on the
/// caller's tensors and returns their results, nothing else.
static LogicalResult verifyHostFunction(func::FuncOp func) {
  for (Operation &attention : func.getBody().getOps()) {
    if (!isa<AttentionOp, AttentionGradOp>(attention))
      continue;
    for (OpOperand &operand : attention.getOpOperands())
      if (!isa<BlockArgument>(operand.get()))
        return attention.emitOpError()
               << "operand #" << operand.getOperandNumber()
               << " is computed inside '" << func.getSymName()
               << "': the GPU bundle runs the attention on the caller's "
                  "tensors, so the computation would be dropped (pass it "
                  "as a function argument)";
  }
  for (Operation &op : func.getBody().getOps()) {
    if (isa<AttentionOp, AttentionGradOp>(op))
      continue;
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (OpOperand &operand : ret->getOpOperands()) {
        Operation *def = operand.get().getDefiningOp();
        if (!def || !isa<AttentionOp, AttentionGradOp>(def))
          return ret.emitOpError()
                 << "operand #" << operand.getOperandNumber()
                 << " is not a result of an attn.attention or "
                    "attn.attention_grad: the GPU bundle returns only what "
                    "its attention kernels compute";
      }
      continue;
    }
    if (isPure(&op) && op.use_empty())
      continue;
    return op.emitOpError()
           << "cannot be compiled into the GPU bundle: the bundle runs only "
              "the attn.attention ops of '"
           << func.getSymName()
           << "', so this op would be dropped (compute it outside, or "
              "compile it separately)";
  }
  return success();
}

namespace {

struct AttnToNVGPUPass final
    : attn::impl::AttnToNVGPUPassBase<AttnToNVGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SmallVector<Operation *> ops;
    llvm::SetVector<func::FuncOp> hostFuncs;
    module.walk([&](Operation *op) {
      if (!isa<AttentionOp, AttentionGradOp>(op))
        return;
      ops.push_back(op);
      if (auto func = op->getParentOfType<func::FuncOp>())
        hostFuncs.insert(func);
    });
    if (ops.empty())
      return;
    for (func::FuncOp func : hostFuncs)
      if (failed(verifyHostFunction(func)))
        return signalPassFailure();
    for (Operation *op : ops) {
      auto config = op->getAttrOfType<KernelConfigAttr>(kKernelConfigAttrName);
      if (!config) {
        op->emitOpError() << "has no '" << kKernelConfigAttrName
                          << "' attribute: run attn-select-kernel-config "
                             "first";
        return signalPassFailure();
      }
      // The configuration may have been written by hand or kept across an
      // edit of the op: the kernel is built only from one that fits it.
      LogicalResult fits =
          isa<AttentionOp>(op)
              ? verifyKernelConfig(cast<AttentionOp>(op), config)
              : verifyKernelConfig(cast<AttentionGradOp>(op), config);
      if (failed(fits))
        return signalPassFailure();
    }
    OpBuilder mb(ctx);
    mb.setInsertionPointToEnd(module.getBody());
    auto gpuModule =
        gpu::GPUModuleOp::create(mb, module.getLoc(), "attn_kernels");
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(ctx));
    SmallVector<Attribute> kernels;
    llvm::StringMap<unsigned> perFunc;
    for (Operation *op : ops) {
      auto func = op->getParentOfType<func::FuncOp>();
      std::string base = func ? func.getSymName().str() : "attention";
      unsigned n = perFunc[base]++;
      std::string name = n ? base + "_" + std::to_string(n) : base;
      auto config =
          op->getAttrOfType<KernelConfigAttr>(kKernelConfigAttrName);
      DictionaryAttr entry;
      if (auto fwd = dyn_cast<AttentionOp>(op)) {
        entry = kernel::buildForwardKernel(fwd, config, gpuModule, name);
      } else {
        FailureOr<DictionaryAttr> built = kernel::buildBackwardKernels(
            cast<AttentionGradOp>(op), config, gpuModule, name);
        if (failed(built))
          return signalPassFailure();
        entry = *built;
      }
      SmallVector<NamedAttribute> entries(entry.getValue());
      auto variantName = op->getAttrOfType<StringAttr>("attn.variant_name");
      entries.emplace_back(StringAttr::get(ctx, "variant"),
                           variantName ? variantName
                                       : StringAttr::get(ctx, base));
      kernels.push_back(DictionaryAttr::get(ctx, entries));
    }
    module->setAttr("attn.kernels", ArrayAttr::get(ctx, kernels));
    for (func::FuncOp func : hostFuncs)
      func->erase();
  }
};

} // namespace
