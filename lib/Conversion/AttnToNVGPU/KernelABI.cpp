//===- KernelABI.cpp - kernel signatures and launch descriptions -*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/KernelABI.h"

#include "attn/Conversion/AttnToNVGPU/KernelContext.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "llvm/Support/ScopedPrinter.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

void KernelSignature::addBuffer(StringRef name, Type elementType) {
  params.push_back({name.str(), elementType});
}

void KernelSignature::addSize(StringRef name) {
  params.push_back({name.str(), Type()});
}

void KernelSignature::addSizes() {
  for (StringRef size : kSizeNames)
    addSize(size);
}

SmallVector<Value> KernelSignature::sizes() const {
  SmallVector<Value> out;
  for (StringRef size : kSizeNames)
    out.push_back(lookup(size));
  return out;
}

SmallVector<Type> KernelSignature::types(MLIRContext *ctx) const {
  SmallVector<Type> out;
  for (const Param &p : params) {
    if (!p.elementType) {
      out.push_back(IndexType::get(ctx));
      continue;
    }
    out.push_back(MemRefType::get(
        {ShapedType::kDynamic}, p.elementType, MemRefLayoutAttrInterface(),
        IntegerAttr::get(IntegerType::get(ctx, 64), kGlobalSpace)));
  }
  return out;
}

ArrayAttr KernelSignature::names(MLIRContext *ctx) const {
  SmallVector<Attribute> out;
  for (const Param &p : params)
    out.push_back(StringAttr::get(ctx, p.name));
  return ArrayAttr::get(ctx, out);
}

void KernelSignature::bind(Block &entry) {
  assert(entry.getNumArguments() == params.size() && "signature mismatch");
  for (auto [p, arg] : llvm::zip(params, entry.getArguments()))
    bound[p.name] = arg;
}

Value KernelSignature::lookup(StringRef name) const {
  return bound.lookup(name);
}

DictionaryAttr kernel::describeBuffer(MLIRContext *ctx, StringRef name,
                                      Type elementType, StringRef elements) {
  Builder b(ctx);
  SmallVector<NamedAttribute> d = {
      b.getNamedAttr("name", b.getStringAttr(name)),
      b.getNamedAttr("kind", b.getStringAttr("buffer")),
      b.getNamedAttr("dtype", b.getStringAttr(llvm::to_string(elementType)))};
  if (!elements.empty())
    d.push_back(b.getNamedAttr("elements", b.getStringAttr(elements)));
  return b.getDictionaryAttr(d);
}

DictionaryAttr kernel::describeCapture(MLIRContext *ctx, StringRef name,
                                       RankedTensorType type) {
  Builder b(ctx);
  SmallVector<NamedAttribute> d(
      describeBuffer(ctx, name, type.getElementType()).getValue());
  SmallVector<int64_t> shape;
  for (int64_t s : type.getShape())
    shape.push_back(ShapedType::isDynamic(s) ? -1 : s);
  d.push_back(b.getNamedAttr("shape", b.getI64ArrayAttr(shape)));
  return b.getDictionaryAttr(d);
}

DictionaryAttr kernel::describeLaunch(MLIRContext *ctx, StringRef kernelName,
                                      ArrayRef<std::string> grid,
                                      int64_t blockThreads,
                                      int64_t sharedMemoryBytes,
                                      const KernelSignature &signature) {
  Builder b(ctx);
  SmallVector<StringRef> gridRefs(grid.begin(), grid.end());
  return b.getDictionaryAttr({
      b.getNamedAttr("kernel", b.getStringAttr(kernelName)),
      b.getNamedAttr("grid", b.getStrArrayAttr(gridRefs)),
      b.getNamedAttr("block", b.getI64ArrayAttr({blockThreads, 1, 1})),
      b.getNamedAttr("shared_memory_bytes",
                     b.getI64IntegerAttr(sharedMemoryBytes)),
      b.getNamedAttr("args", signature.names(ctx)),
  });
}

std::string kernel::ceilDivExpr(StringRef size, int64_t n) {
  return ("ceildiv(" + size + ", " + std::to_string(n) + ")").str();
}

DictionaryAttr kernel::describeKernelConfig(KernelConfigAttr c) {
  Builder bd(c.getContext());
  auto i64 = [&](int64_t v) { return bd.getI64IntegerAttr(v); };
  return bd.getDictionaryAttr({
      bd.getNamedAttr("mma", bd.getStringAttr(stringifyMmaKind(c.getMma()))),
      bd.getNamedAttr("warps", i64(c.getWarps())),
      bd.getNamedAttr("m_tiles", i64(c.getMTiles())),
      bd.getNamedAttr("block_m", i64(c.getBlockM())),
      bd.getNamedAttr("block_n", i64(c.getBlockN())),
      bd.getNamedAttr("stages", i64(c.getStages())),
      bd.getNamedAttr("pipelined", bd.getBoolAttr(c.getPipelined())),
      bd.getNamedAttr("key_norms",
                      bd.getStringAttr(stringifyKeyNormPath(c.getKeyNorms()))),
      bd.getNamedAttr("shared_memory_bytes", i64(c.getSharedMemoryBytes())),
      bd.getNamedAttr("deterministic", bd.getBoolAttr(c.getDeterministic())),
  });
}


KernelBody kernel::openKernel(gpu::GPUModuleOp gpuModule, Location loc,
                              StringRef name, KernelSignature &sig,
                              Type elementType, int64_t blockThreads) {
  MLIRContext *ctx = gpuModule.getContext();
  KernelBody body;
  body.func = createKernel(gpuModule, loc, name, sig.types(ctx), blockThreads);
  Block &entry = body.func.getBody().front();
  sig.bind(entry);
  body.b = std::make_unique<ImplicitLocOpBuilder>(loc, ctx);
  body.b->setInsertionPointToStart(&entry);
  gpu::ReturnOp::create(*body.b);
  body.b->setInsertionPointToStart(&entry);
  body.kc = std::make_unique<KernelContext>(*body.b, elementType, blockThreads);
  return body;
}
