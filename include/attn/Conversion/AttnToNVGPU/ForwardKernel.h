//===- ForwardKernel.h - the forward attention kernel -----------*- C++ -*-===//
//
// The forward kernel of an attn.attention, assembled from the pieces of
// this directory as the op's #attn.kernel_config says: one CTA per (q-tile,
// q-head, batch); Q resident; K and V streaming through the copy ring;
// S = Q.K^T and O += P.V on tensor cores (mma.sync or wgmma); the fragment
// softmax per tile under the plain or pipelined schedule; O and the LSE
// written at the end.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_FORWARDKERNEL_H
#define ATTN_CONVERSION_ATTNTONVGPU_FORWARDKERNEL_H

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include <optional>
#include <string>

namespace mlir::attn::kernel {

/// Why the GPU kernels cannot take `op` at all, or nullopt.
std::optional<std::string> forwardUnsupportedReason(AttentionOp op);

/// Why the wgmma kernel cannot take `op` (which the mma.sync kernel
/// takes), or nullopt.
std::optional<std::string> wgmmaUnsupportedReason(AttentionOp op);
/// The same for head dims `dqk` / `dv` (the swizzled tiles' constraint, for
/// the forward and the backward kernels).
std::optional<std::string> wgmmaUnsupportedReason(int64_t dqk, int64_t dv);

/// Where the forward kernel of `op` gets RBF key norms with `mma`.
KeyNormPath forwardKeyNormPath(AttentionOp op, MmaKind mma);

/// The dynamic shared memory of the forward kernel's plan: Q, the K and V
/// rings and the key norms.
int64_t forwardSharedMemoryBytes(AttentionOp op, MmaKind mma, int64_t blockM,
                                 int64_t blockN, int64_t stages,
                                 KeyNormPath keyNorms);

/// Builds the forward kernel `name` (and its prologue kernels) of `op` into
/// `gpuModule` as `config` says; returns the op's entry of the launch
/// description (docs/bundles.md).
DictionaryAttr buildForwardKernel(AttentionOp op, KernelConfigAttr config,
                                  gpu::GPUModuleOp gpuModule, StringRef name);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_FORWARDKERNEL_H
