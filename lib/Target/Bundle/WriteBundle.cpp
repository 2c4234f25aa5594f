//===- WriteBundle.cpp - write .cubin/.ptx/.json kernel bundles -*- C++ -*-===//

#include "attn/Target/Bundle/Passes.h"

#include "mlir/Dialect/GPU/IR/CompilationInterfaces.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#define DEBUG_TYPE "attn-write-bundle"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNWRITEBUNDLEPASS
#include "attn/Target/Bundle/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;

namespace {

/// Converts the launch description attributes to JSON.
llvm::json::Value toJson(Attribute attr) {
  if (auto dict = dyn_cast<DictionaryAttr>(attr)) {
    llvm::json::Object obj;
    for (NamedAttribute entry : dict)
      obj[entry.getName().getValue()] = toJson(entry.getValue());
    return obj;
  }
  if (auto array = dyn_cast<ArrayAttr>(attr)) {
    llvm::json::Array out;
    for (Attribute a : array)
      out.push_back(toJson(a));
    return out;
  }
  if (auto s = dyn_cast<StringAttr>(attr))
    return s.getValue().str();
  if (auto b = dyn_cast<BoolAttr>(attr))
    return b.getValue();
  if (auto i = dyn_cast<IntegerAttr>(attr))
    return i.getInt();
  if (auto f = dyn_cast<FloatAttr>(attr))
    return f.getValueAsDouble();
  std::string s;
  llvm::raw_string_ostream os(s);
  attr.print(os);
  return s;
}

LogicalResult writeFile(Operation *op, StringRef path, ArrayRef<char> data) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return op->emitError() << "cannot write '" << path << "': "
                           << ec.message();
  os.write(data.data(), data.size());
  return success();
}

struct AttnWriteBundlePass final
    : attn::impl::AttnWriteBundlePassBase<AttnWriteBundlePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto gpuModule = module.lookupSymbol<gpu::GPUModuleOp>("attn_kernels");
    if (!gpuModule)
      return; // Nothing to bundle.
    ArrayAttr targets = gpuModule.getTargetsAttr();
    if (!targets || targets.size() != 1) {
      gpuModule.emitError("attn-write-bundle needs exactly one GPU target "
                          "attached (nvvm-attach-target)");
      return signalPassFailure();
    }
    auto target = dyn_cast<gpu::TargetAttrInterface>(targets[0]);
    if (!target) {
      gpuModule.emitError("the attached target cannot serialize");
      return signalPassFailure();
    }
    if (std::error_code ec = llvm::sys::fs::create_directories(dir)) {
      module.emitError() << "cannot create '" << dir << "': " << ec.message();
      return signalPassFailure();
    }
    std::optional<SymbolTable> symbols;
    auto symbolTable = [&]() -> SymbolTable * {
      if (!symbols)
        symbols.emplace(module);
      return &*symbols;
    };
    auto serialize = [&](gpu::CompilationTarget kind) {
      gpu::TargetOptions options(toolkitPath, {}, "", "", kind, symbolTable);
      return target.serializeToObject(gpuModule, options);
    };
    std::optional<SmallVector<char, 0>> ptx =
        serialize(gpu::CompilationTarget::Assembly);
    std::optional<SmallVector<char, 0>> cubin =
        serialize(gpu::CompilationTarget::Binary);
    if (!ptx || !cubin) {
      gpuModule.emitError("serializing the kernels failed");
      return signalPassFailure();
    }
    // The PTX object may carry a trailing NUL.
    while (!ptx->empty() && ptx->back() == '\0')
      ptx->pop_back();
    SmallString<256> stem(dir);
    llvm::sys::path::append(stem, bundleName);
    if (failed(writeFile(module, (stem + ".ptx").str(), *ptx)) ||
        failed(writeFile(module, (stem + ".cubin").str(), *cubin)))
      return signalPassFailure();

    llvm::json::Object root;
    root["format"] = "attn-bundle-v2";
    root["cubin"] = (bundleName + ".cubin");
    root["ptx"] = (bundleName + ".ptx");
    std::string targetText;
    llvm::raw_string_ostream os(targetText);
    targets[0].print(os);
    root["target"] = targetText;
    if (Attribute kernels = module->getAttr("attn.kernels"))
      root["kernels"] = toJson(kernels);
    std::string text;
    llvm::raw_string_ostream js(text);
    js << llvm::formatv("{0:2}", llvm::json::Value(std::move(root))) << "\n";
    if (failed(writeFile(module, (stem + ".json").str(),
                         ArrayRef<char>(text.data(), text.size()))))
      return signalPassFailure();
  }
};

} // namespace
