//===- Pipelines.cpp - attn pass pipelines ----------------------*- C++ -*-===//

#include "attn/Pipelines/Pipelines.h"

#include "attn/Conversion/AttnToNVGPU/KernelConfig.h"
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
#include "llvm/ADT/StringSwitch.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/TargetParser/Triple.h"

#include <memory>

extern "C" void LLVMInitializeNVPTXTargetInfo();
extern "C" void LLVMInitializeNVPTXTargetMC();

using namespace mlir;

using ErrorFn = function_ref<LogicalResult(const Twine &)>;

StringRef mlir::attn::stringifyCPULowering(CPULowering lowering) {
  return lowering == CPULowering::Loops ? "loops" : "flash";
}

llvm::raw_ostream &mlir::attn::operator<<(llvm::raw_ostream &os,
                                          CPULowering lowering) {
  return os << stringifyCPULowering(lowering);
}

//===----------------------------------------------------------------------===//
// Target options of attn-to-nvvm
//===----------------------------------------------------------------------===//

namespace {
/// What the NVPTX backend of the LLVM we link knows: its processors and PTX
/// versions. The option checks ask it rather than keep a copy of its tables.
class NVPTXCatalog {
public:
  static const NVPTXCatalog &get() {
    static const NVPTXCatalog catalog;
    return catalog;
  }

  /// The SM number of `chip` if it is spelled sm_<N>, sm_<N>a or sm_<N>f.
  static std::optional<unsigned> parseSM(StringRef chip) {
    if (!chip.consume_front("sm_"))
      return std::nullopt;
    if (chip.ends_with("a") || chip.ends_with("f"))
      chip = chip.drop_back();
    unsigned sm;
    if (chip.empty() || !llvm::all_of(chip, llvm::isDigit) ||
        chip.getAsInteger(10, sm))
      return std::nullopt;
    return sm;
  }

  /// Whether attn-to-nvvm compiles for `chip`: the backend knows it and its
  /// SM number is 80 or more (cp.async and bf16 mma.sync).
  bool isSupportedChip(StringRef chip) const {
    std::optional<unsigned> sm = parseSM(chip);
    return sm && *sm >= 80 && info && info->isCPUStringValid(chip);
  }

  /// The chips isSupportedChip accepts, in SM order.
  SmallVector<std::string> supportedChips() const {
    SmallVector<std::string> chips;
    if (!info)
      return chips;
    for (const llvm::SubtargetSubTypeKV &cpu :
         info->getAllProcessorDescriptions())
      if (isSupportedChip(cpu.Key))
        chips.push_back(cpu.Key);
    llvm::sort(chips, [](const std::string &a, const std::string &b) {
      return std::make_pair(*parseSM(a), a) < std::make_pair(*parseSM(b), b);
    });
    return chips;
  }

  /// The PTX versions the backend knows (80 for ptx80), ascending.
  SmallVector<unsigned> ptxVersions() const {
    SmallVector<unsigned> versions;
    if (!info)
      return versions;
    for (const llvm::SubtargetFeatureKV &feature :
         info->getAllProcessorFeatures()) {
      StringRef name = feature.Key;
      unsigned version;
      if (name.consume_front("ptx") && !name.getAsInteger(10, version))
        versions.push_back(version);
    }
    llvm::sort(versions);
    return versions;
  }

private:
  NVPTXCatalog() : triple("nvptx64-nvidia-cuda") {
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTargetMC();
    std::string error;
    target = llvm::TargetRegistry::lookupTarget(triple, error);
    if (target)
      info.reset(target->createMCSubtargetInfo(triple, "", ""));
  }

  llvm::Triple triple;
  const llvm::Target *target = nullptr;
  std::unique_ptr<llvm::MCSubtargetInfo> info;
};
} // namespace

/// The first PTX version that supports `chip`, as LLVM 22's NVPTX backend
/// has it (NVPTXSubtarget::getMinPTXVersionForSM, which MC does not expose;
/// `llc -mtriple=nvptx64 -mcpu=CHIP` on an empty module prints it). A feature
/// below it is a fatal error in the backend, so it is checked here first.
static std::optional<unsigned> minPTXVersionOfChip(StringRef chip) {
  return llvm::StringSwitch<std::optional<unsigned>>(chip)
      .Case("sm_80", 70)
      .Case("sm_86", 71)
      .Case("sm_87", 74)
      .Case("sm_88", 90)
      .Cases({"sm_89", "sm_90"}, 78)
      .Case("sm_90a", 80)
      .Cases({"sm_100", "sm_100a", "sm_101", "sm_101a"}, 86)
      .Cases({"sm_120", "sm_120a"}, 87)
      .Cases({"sm_100f", "sm_101f", "sm_103", "sm_103a", "sm_103f", "sm_120f",
              "sm_121", "sm_121a", "sm_121f"},
             88)
      .Cases({"sm_110", "sm_110a", "sm_110f"}, 90)
      .Default(std::nullopt);
}

/// The PTX version that `features` asks for ("+ptx85" is 85), if it is
/// spelled that way.
static std::optional<unsigned> parsePTXFeature(StringRef features) {
  unsigned version;
  if (!features.consume_front("+ptx") || features.empty() ||
      !llvm::all_of(features, llvm::isDigit) ||
      features.getAsInteger(10, version))
    return std::nullopt;
  return version;
}

/// The features attn-to-nvvm hands to the NVVM target when the user gives
/// none: the least PTX version that both the chip and the kernels
/// (kMinPTXVersion) accept.
static std::string resolvePTXFeatures(StringRef chip) {
  std::optional<unsigned> least = minPTXVersionOfChip(chip);
  if (!least)
    return ""; // A chip newer than the table: the backend's own minimum.
  return "+ptx" + std::to_string(std::max(*least, attn::kMinPTXVersion));
}

static LogicalResult verifyChipAndFeatures(const attn::AttnToNVVMOptions &options,
                                           ErrorFn emitError) {
  const NVPTXCatalog &catalog = NVPTXCatalog::get();
  if (!catalog.isSupportedChip(options.chip))
    return emitError("attn-to-nvvm: chip='" + options.chip +
                     "' is not a GPU it compiles for; valid values: " +
                     llvm::join(catalog.supportedChips(), ", "));
  if (options.features.empty())
    return success();
  // The kernels are written for PTX 8.0 and later.
  unsigned least = std::max(minPTXVersionOfChip(options.chip).value_or(0),
                            attn::kMinPTXVersion);
  std::string byDefault = resolvePTXFeatures(options.chip);
  SmallVector<std::string> valid;
  for (unsigned version : catalog.ptxVersions())
    if (version >= least)
      valid.push_back("+ptx" + std::to_string(version));
  std::optional<unsigned> asked = parsePTXFeature(options.features);
  if (!asked || !llvm::is_contained(valid, options.features.getValue()))
    return emitError("attn-to-nvvm: features='" + options.features +
                     "' is not a PTX version for chip='" + options.chip +
                     "'; valid values: empty (" +
                     (byDefault.empty() ? "the backend's default" : byDefault) +
                     "), " +
                     llvm::join(valid, ", "));
  return success();
}

static LogicalResult verifyBundleOptions(const attn::AttnToNVVMOptions &options,
                                         ErrorFn emitError) {
  StringRef name = options.bundleName;
  if (name.empty() || name == "." || name == ".." ||
      name.find_first_of("/\\") != StringRef::npos)
    return emitError("attn-to-nvvm: bundle-name='" + name +
                     "' is not a file stem; valid values: a non-empty name "
                     "without '/' (the files are NAME.cubin, NAME.ptx and "
                     "NAME.json)");
  StringRef dir = options.bundleDir;
  if (dir.empty())
    return success();
  // Made here rather than when the bundle is written, so that a directory
  // that cannot be is refused before anything is compiled.
  const char *valid = "; valid values: a writable directory, or a path where "
                      "one can be created";
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return emitError("attn-to-nvvm: bundle-dir='" + dir +
                     "' cannot be created: " + ec.message() + valid);
  if (!llvm::sys::fs::is_directory(dir) || !llvm::sys::fs::can_write(dir))
    return emitError("attn-to-nvvm: bundle-dir='" + dir +
                     "' is not a writable directory" + valid);
  return success();
}

static LogicalResult verifyToolkit(const attn::AttnToNVVMOptions &options,
                                   ErrorFn emitError) {
  StringRef toolkit = options.toolkit;
  const char *valid = "; valid values: a CUDA toolkit directory, with "
                      "nvvm/libdevice/libdevice.10.bc and ptxas (in its bin/ "
                      "or on PATH), e.g. /usr/local/cuda, or the "
                      "site-packages/nvidia/cu13 folder that `pip install "
                      "nvidia-cuda-nvcc` fills";
  if (toolkit.empty() || !llvm::sys::fs::is_directory(toolkit))
    return emitError("attn-to-nvvm: toolkit='" + toolkit +
                     "' is not a directory" + valid);
  // What the NVVM target's serializer needs from it.
  SmallString<256> libdevice(toolkit);
  llvm::sys::path::append(libdevice, "nvvm", "libdevice", "libdevice.10.bc");
  if (!llvm::sys::fs::is_regular_file(libdevice))
    return emitError("attn-to-nvvm: toolkit='" + toolkit +
                     "' has no nvvm/libdevice/libdevice.10.bc" + valid);
  SmallString<256> ptxas(toolkit);
  llvm::sys::path::append(ptxas, "bin", "ptxas");
  if (!llvm::sys::fs::can_execute(ptxas) &&
      !llvm::sys::findProgramByName("ptxas"))
    return emitError("attn-to-nvvm: toolkit='" + toolkit +
                     "' has no bin/ptxas and there is none on PATH" + valid);
  return success();
}

LogicalResult
mlir::attn::verifyAttnToNVVMOptions(const AttnToNVVMOptions &options,
                                    ErrorFn emitError) {
  if (failed(verifyChipAndFeatures(options, emitError)) ||
      failed(verifyToolkit(options, emitError)) ||
      failed(verifyBundleOptions(options, emitError)))
    return failure();
  KernelConfigRequest request{options.chip,  options.mma,
                              options.mTiles, options.kvTile,
                              options.warps, options.stages,
                              options.pipeline, options.deterministic};
  if (std::optional<std::string> why = validateKernelConfigRequest(request))
    return emitError("attn-to-nvvm: " + *why);
  return success();
}

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
  if (options.lowering == CPULowering::Loops) {
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
  config.deterministic = options.deterministic;
  pm.addPass(createAttnSelectKernelConfigPass(config));
  pm.addPass(createAttnToNVGPUPass());
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features.empty()
                        ? resolvePTXFeatures(options.chip)
                        : options.features.getValue();
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

/// Registers a pipeline whose options are verified before it is built: a bad
/// option is reported through the driver's error handler (no pass runs, no
/// IR is printed). PassPipelineRegistration would build with any value that
/// parses.
template <typename Options>
static void registerVerifiedPipeline(
    StringRef arg, StringRef description,
    LogicalResult (*verify)(const Options &, ErrorFn),
    void (*build)(OpPassManager &, const Options &)) {
  registerPassPipeline(
      arg, description,
      [verify, build](OpPassManager &pm, StringRef optionsStr,
                      ErrorFn errorHandler) -> LogicalResult {
        Options options;
        if (failed(options.parseFromString(optionsStr)) ||
            failed(verify(options, errorHandler)))
          return failure();
        build(pm, options);
        return success();
      },
      [](function_ref<void(const detail::PassOptions &)> optHandler) {
        optHandler(Options());
      });
}

void mlir::attn::registerAttnPipelines() {
  registerVerifiedPipeline<AttnToNVVMOptions>(
      "attn-to-nvvm",
      "Compile attn ops to tensor-core GPU kernels (a cubin in gpu.binary; "
      "with bundle-dir, the .cubin/.ptx/.json bundle)",
      verifyAttnToNVVMOptions, buildAttnToNVVMPipeline);
  PassPipelineRegistration<AttnToCPUOptions>(
      "attn-to-cpu",
      "Lower attn ops to the LLVM dialect for the CPU JIT (attn-run)",
      buildAttnToCPUPipeline);
}
