//===- attn-fuzz.cpp - fuzz the parser, verifier and attn-to-cpu -*- C++ -*-===//
//
// A libFuzzer target: each input is MLIR text. It is parsed and verified
// with every dialect attn tools register, printed back, and, when it holds
// attn ops and nothing but the dialects attention functions are written in,
// lowered with attn-to-cpu (the size of the input picks one of four
// lowering configurations, so that mutations visit all of them).
// Diagnostics are expected and discarded; only a crash, a sanitizer report
// or a hang is a finding.
//
// Built with libFuzzer where the build has sanitizer coverage
// (LLVM_USE_SANITIZE_COVERAGE=ON, clang); elsewhere it is a plain program
// that runs the files it is given once (the regression inputs in lit).
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnDialect.h"
#include "attn/InitAttn.h"
#include "attn/Pipelines/Pipelines.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>

using namespace mlir;

/// Whether attn-to-cpu is meant to take `module`: it holds an attn op, and
/// only ops of the dialects attention functions are written in. (On other
/// IR the pipeline's upstream passes would be what is fuzzed.)
static bool isAttnToCPUInput(ModuleOp module) {
  static const llvm::StringSet<> dialects = {"builtin", "func",  "attn",
                                             "arith",   "math",  "tensor"};
  bool hasAttn = false;
  WalkResult walk = module->walk([&](Operation *op) {
    StringRef dialect = op->getName().getDialectNamespace();
    if (!dialects.contains(dialect))
      return WalkResult::interrupt();
    hasAttn |= dialect == attn::AttnDialect::getDialectNamespace();
    return WalkResult::advance();
  });
  return hasAttn && !walk.wasInterrupted();
}

/// One of four attn-to-cpu configurations: the defaults, the loops
/// reference, one-by-one tiles, and odd tiles.
static void pickOptions(size_t size, attn::AttnToCPUOptions &options) {
  switch (size % 4) {
  case 1:
    options.lowering = attn::CPULowering::Loops;
    break;
  case 2:
    options.qTile = 1;
    options.kvTile = 1;
    break;
  case 3:
    options.qTile = 3;
    options.kvTile = 5;
    break;
  default:
    break;
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static DialectRegistry *registry = [] {
    auto *r = new DialectRegistry();
    attn::registerAllAttnDialects(*r);
    return r;
  }();
  MLIRContext context(*registry, MLIRContext::Threading::DISABLED);
  context.printOpOnDiagnostic(false);
  ScopedDiagnosticHandler discard(&context, [](Diagnostic &) {
    return success();
  });

  // A copy: the lexer relies on the terminating NUL that files get from
  // MemoryBuffer, and the fuzzer's bytes have none.
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          StringRef(reinterpret_cast<const char *>(data), size), "input"),
      llvm::SMLoc());
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(sourceMgr, ParserConfig(&context));
  if (!module)
    return 0;
  std::string printed;
  llvm::raw_string_ostream os(printed);
  module->print(os);
  if (!isAttnToCPUInput(*module))
    return 0;

  PassManager pm(&context);
  attn::AttnToCPUOptions options;
  pickOptions(size, options);
  attn::buildAttnToCPUPipeline(pm, options);
  (void)pm.run(*module);
  return 0;
}
