//===- KernelConfig.h - choosing #attn.kernel_config ------------*- C++ -*-===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_KERNELCONFIG_H
#define ATTN_CONVERSION_ATTNTONVGPU_KERNELCONFIG_H

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include <optional>
#include <string>

namespace mlir::attn {

/// The options of attn-select-kernel-config: 0 and `auto` leave a field to
/// the measured defaults.
struct KernelConfigRequest {
  std::string chip = "sm_90a";
  std::string mma = "auto";
  int64_t mTiles = 0, kvTile = 0, warps = 0, stages = 0;
  std::string pipeline = "auto";
  /// The backward kernels add to dQ in a fixed CTA order (OrderedTurns.h).
  bool deterministic = false;
};

/// Why `request` is not a valid set of options (naming the option and its
/// valid values), or nullopt.
std::optional<std::string> validateKernelConfigRequest(
    const KernelConfigRequest &request);

/// The name of the discardable attribute that carries the decision.
inline constexpr llvm::StringLiteral kKernelConfigAttrName =
    "attn.kernel_config";

/// Chooses the configuration of `op`'s GPU kernel; a diagnostic on the op
/// and failure when the kernels cannot take it as requested.
FailureOr<KernelConfigAttr> selectKernelConfig(AttentionOp op,
                                               const KernelConfigRequest &r);

/// Checks a configuration the op carries against the op (what the kernels
/// take, wgmma's head dims, the key-norm path, the shared-memory plan, the
/// sink rows a KV tile holds) and, when `chip` is not empty, against the
/// chip; a diagnostic on the op on failure.
LogicalResult verifyKernelConfig(AttentionOp op, KernelConfigAttr config,
                                 StringRef chip = "");

/// The configuration of `op`'s backward kernels (mma.sync; block_n: the KV
/// tile of a CTA, 16 keys per warp; block_m: the query tile of a step).
FailureOr<KernelConfigAttr> selectKernelConfig(AttentionGradOp op,
                                               const KernelConfigRequest &r);

/// Checks a configuration an attention_grad carries against it.
LogicalResult verifyKernelConfig(AttentionGradOp op, KernelConfigAttr config,
                                 StringRef chip = "");

/// Fails, with a diagnostic on the op, when a forced field of `request`
/// (an option other than 0 / auto) disagrees with the configuration the op
/// (an attn.attention or attn.attention_grad) already carries.
LogicalResult checkRequestAgainstConfig(Operation *op, KernelConfigAttr c,
                                        const KernelConfigRequest &request);

} // namespace mlir::attn

#endif // ATTN_CONVERSION_ATTNTONVGPU_KERNELCONFIG_H
