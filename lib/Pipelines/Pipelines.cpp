//===- Pipelines.cpp - attn pass pipelines ----------------------*- C++ -*-===//

#include "attn/Pipelines/Pipelines.h"

#include "attn/Conversion/Passes.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"
#include "attn/Target/Bundle/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

/// Instantiates every referenced variant and erases the definitions: later
/// passes see only self-contained attn.attention ops.
static void addInstantiation(OpPassManager &pm) {
  attn::AttnInstantiateVariantsPassOptions instantiate;
  instantiate.eraseVariants = true;
  pm.addPass(attn::createAttnInstantiateVariantsPass(instantiate));
}

void mlir::attn::buildAttnToCPUPipeline(OpPassManager &pm,
                                        const AttnToCPUOptions &options) {
  addInstantiation(pm);
  if (options.lowering == "loops") {
    pm.addNestedPass<func::FuncOp>(createAttnLowerToLoopsPass());
  } else {
    AttnToFlashPassOptions flash;
    flash.qTile = options.qTile;
    flash.kvTile = options.kvTile;
    pm.addNestedPass<func::FuncOp>(createAttnToFlashPass(flash));
  }
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  bufferization::BufferResultsToOutParamsPassOptions outParams;
  outParams.hoistStaticAllocs = true;
  outParams.modifyPublicFunctions = true;
  pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  pm.addPass(createCanonicalizerPass());

  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void mlir::attn::buildAttnToNVVMPipeline(OpPassManager &pm,
                                         const AttnToNVVMOptions &options) {
  addInstantiation(pm);
  AttnSelectKernelConfigPassOptions config;
  config.chip = options.chip;
  config.mma = options.mma;
  config.mTiles = options.mTiles;
  config.kvTile = options.kvTile;
  config.warps = options.warps;
  config.stages = options.stages;
  config.pipeline = options.pipeline;
  pm.addPass(createAttnSelectKernelConfigPass(config));
  pm.addPass(createAttnToNVGPUPass());
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = 3;
  target.moduleMatcher = "attn_kernels";
  pm.addPass(createGpuNVVMAttachTarget(target));
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  kernels.addPass(createSCFToControlFlowPass());
  kernels.addPass(createConvertNVGPUToNVVMPass());
  kernels.addPass(createConvertVectorToLLVMPass());
  ConvertGpuOpsToNVVMOpsOptions toNVVM;
  toNVVM.indexBitwidth = 64;
  kernels.addPass(createConvertGpuOpsToNVVMOps(toNVVM));
  // NVVM ops built on inline PTX (wgmma.mma_async) become llvm.inline_asm.
  kernels.addPass(createConvertNVVMToLLVMPass());
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  kernels.addPass(createReconcileUnrealizedCastsPass());
  if (!options.bundleDir.empty()) {
    AttnWriteBundlePassOptions bundle;
    bundle.dir = options.bundleDir;
    bundle.bundleName = options.bundleName;
    bundle.toolkitPath = options.toolkit;
    pm.addPass(createAttnWriteBundlePass(bundle));
  }
  GpuModuleToBinaryPassOptions binary;
  binary.toolkitPath = options.toolkit;
  binary.compilationTarget = "bin";
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

void mlir::attn::registerAttnPipelines() {
  PassPipelineRegistration<AttnToNVVMOptions>(
      "attn-to-nvvm",
      "Compile attn ops to tensor-core GPU kernels (a cubin in gpu.binary; "
      "with bundle-dir, the .cubin/.ptx/.json bundle)",
      buildAttnToNVVMPipeline);
  PassPipelineRegistration<AttnToCPUOptions>(
      "attn-to-cpu",
      "Lower attn ops to the LLVM dialect for the CPU JIT (attn-run)",
      buildAttnToCPUPipeline);
}
