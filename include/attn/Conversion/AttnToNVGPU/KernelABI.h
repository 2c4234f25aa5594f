//===- KernelABI.h - kernel signatures and launch descriptions --*- C++ -*-===//
//
// How a kernel is called: its parameters in order (1-D global memrefs over
// row-major tensors, then sizes as index values), bound by name inside the
// kernel, and the launch description the bundle carries for the runtime
// (docs/bundles.md): parameters the caller supplies, workspaces the runtime
// allocates, and the ordered launches with grids as expressions of the
// sizes. The runtime interprets that description and knows no variant.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_KERNELABI_H
#define ATTN_CONVERSION_ATTNTONVGPU_KERNELABI_H

#include "attn/Conversion/AttnToNVGPU/KernelContext.h"
#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "mlir/IR/Block.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/StringMap.h"

#include <string>

namespace mlir::attn::kernel {

/// The run-time sizes an attention kernel takes, in order (the runtime's
/// SIZE_NAMES, docs/bundles.md).
inline constexpr StringLiteral kSizeNames[] = {"B", "Hq", "Hkv",
                                               "Sq", "Sk", "Ns"};

/// The parameter list of one kernel, built in order, then bound to the
/// kernel's entry block so that pieces look their arguments up by name.
class KernelSignature {
public:
  /// A 1-D global memref of `elementType`.
  void addBuffer(StringRef name, Type elementType);
  /// A run-time size (index).
  void addSize(StringRef name);
  /// The sizes of every attention kernel, `kSizeNames` in order.
  void addSizes();
  /// Their bound arguments, in that order.
  SmallVector<Value> sizes() const;
  /// The kernel's argument types, in order.
  SmallVector<Type> types(MLIRContext *ctx) const;
  /// The argument names, in order (a launch's `args`).
  ArrayAttr names(MLIRContext *ctx) const;
  /// Binds the names to the arguments of the kernel's entry block.
  void bind(Block &entry);
  /// The bound argument `name`, or null when the kernel has none.
  Value lookup(StringRef name) const;

private:
  struct Param {
    std::string name;
    Type elementType; ///< Null for sizes.
  };
  SmallVector<Param> params;
  llvm::StringMap<Value> bound;
};

/// A kernel being built: its gpu.func, with `sig` bound to the entry block,
/// and the builder (at the start of the body, before its return) and
/// context every piece emits through.
struct KernelBody {
  gpu::GPUFuncOp func;
  std::unique_ptr<ImplicitLocOpBuilder> b;
  std::unique_ptr<KernelContext> kc;
};
KernelBody openKernel(gpu::GPUModuleOp gpuModule, Location loc,
                      StringRef name, KernelSignature &sig, Type elementType,
                      int64_t blockThreads);

/// The description of one buffer for the runtime: `{name, dtype}`, and for
/// a workspace the number of `elements` as an expression of the sizes.
DictionaryAttr describeBuffer(MLIRContext *ctx, StringRef name,
                              Type elementType, StringRef elements = "");
/// A captured tensor: describeBuffer's fields and its `shape` (-1 for a
/// dynamic size). The kernel computes its row-major offsets from the static
/// sizes, so the runtime refuses a tensor of other sizes.
DictionaryAttr describeCapture(MLIRContext *ctx, StringRef name,
                               RankedTensorType type);

/// One launch of the ordered list: kernel, grid (three expressions of the
/// sizes), block, dynamic shared memory, and the argument names in order.
DictionaryAttr describeLaunch(MLIRContext *ctx, StringRef kernelName,
                              ArrayRef<std::string> grid, int64_t blockThreads,
                              int64_t sharedMemoryBytes,
                              const KernelSignature &signature);

/// The configuration as plain values for the bundle's `config`.
DictionaryAttr describeKernelConfig(KernelConfigAttr config);

/// `ceildiv(size, n)`, the grid expression of `size` split in tiles of n.
std::string ceilDivExpr(StringRef size, int64_t n);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_KERNELABI_H
