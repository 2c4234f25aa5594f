//===- attn-opt.cpp - the attn optimizer driver -----------------*- C++ -*-===//
//
// MlirOptMain, with one change: an error that has no location (a bad
// pipeline option, reported while the pipeline is built) is printed as
// `attn-opt: error: ...` instead of `<unknown>:0: error: ...`.
//
//===----------------------------------------------------------------------===//

#include "attn/InitAttn.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <cstdio>

using namespace mlir;

/// Builds the pipeline as `base` does, printing errors without a location
/// (the pipeline builders' option checks) with the tool's name only.
static MlirOptMainConfig withPlainPipelineErrors(MlirOptMainConfig config) {
  MlirOptMainConfig base = config;
  config.setPassPipelineSetupFn([base](PassManager &pm) -> LogicalResult {
    ScopedDiagnosticHandler plain(pm.getContext(), [](Diagnostic &diag) {
      if (!isa<UnknownLoc>(diag.getLocation()))
        return failure(); // Not ours: the next handler prints it.
      llvm::WithColor::error(llvm::errs(), "attn-opt") << diag.str() << "\n";
      return success();
    });
    return base.setupPassPipeline(pm);
  });
  return config;
}

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  DialectRegistry registry;
  attn::registerAllAttnDialects(registry);
  attn::registerAllAttnPasses();
  auto [inputFilename, outputFilename] = registerAndParseCLIOptions(
      argc, argv, "attn optimizer driver\n", registry);
  MlirOptMainConfig config =
      withPlainPipelineErrors(MlirOptMainConfig::createFromCLOptions());

  // The rest is MlirOptMain(argc, argv, ...), which takes no config.
  if (inputFilename == "-" &&
      llvm::sys::Process::FileDescriptorIsDisplayed(fileno(stdin)))
    llvm::errs() << "(processing input from stdin now, hit ctrl-c/ctrl-d to "
                    "interrupt)\n";
  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> file =
      openInputFile(inputFilename, &errorMessage);
  if (!file) {
    llvm::errs() << errorMessage << "\n";
    return EXIT_FAILURE;
  }
  std::unique_ptr<llvm::ToolOutputFile> output =
      openOutputFile(outputFilename, &errorMessage);
  if (!output) {
    llvm::errs() << errorMessage << "\n";
    return EXIT_FAILURE;
  }
  if (failed(MlirOptMain(output->os(), std::move(file), registry, config)))
    return EXIT_FAILURE;
  output->keep();
  return EXIT_SUCCESS;
}
