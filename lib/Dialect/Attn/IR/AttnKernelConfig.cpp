//===- AttnKernelConfig.cpp - #attn.kernel_config ---------------*- C++ -*-===//
//
// The invariants of a GPU kernel configuration that hold for every kernel
// built from it; the limits of a particular op (head dims, shared memory)
// are checked by attn-select-kernel-config, which knows the op.
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnAttrs.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::attn;

LogicalResult
KernelConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                         MmaKind mma, int64_t warps, int64_t mTiles,
                         int64_t blockM, int64_t blockN, int64_t stages,
                         bool pipelined, KeyNormPath keyNorms,
                         int64_t sharedMemoryBytes, bool deterministic) {
  if (!llvm::is_contained({1, 2, 4, 8}, warps))
    return emitError() << "warps = " << warps << " (must be 1, 2, 4 or 8)";
  if (mma == MmaKind::wgmma && warps % 4)
    return emitError() << "warps = " << warps
                       << " with mma = wgmma (whole warpgroups: 4 or 8)";
  if (mTiles != 1 && mTiles != 2)
    return emitError() << "m_tiles = " << mTiles << " (must be 1 or 2)";
  if (mma == MmaKind::wgmma && mTiles != 1)
    return emitError() << "m_tiles = " << mTiles
                       << " with mma = wgmma (a warp owns one m-tile)";
  // The forward's CTA rows are exactly 16 * m_tiles * warps (checked with
  // the op); the backward's query step may be smaller.
  if (blockM < 16 || blockM % 16 || blockM > 16 * mTiles * warps)
    return emitError() << "block_m = " << blockM
                       << " (must be a multiple of 16 up to 16 * m_tiles * "
                          "warps = "
                       << 16 * mTiles * warps << ")";
  if (blockN < 16 || blockN > 128 || blockN % 16)
    return emitError() << "block_n = " << blockN
                       << " (a multiple of 16 from 16 to 128)";
  if (stages < 2 || stages > 4)
    return emitError() << "stages = " << stages << " (must be 2 to 4)";
  if (pipelined && mma != MmaKind::wgmma)
    return emitError() << "pipelined = true needs mma = wgmma";
  if (pipelined && stages < 3)
    return emitError() << "pipelined = true with stages = " << stages
                       << " (the pipelined loop prefetches two tiles ahead: "
                          "3 or 4)";
  if (keyNorms == KeyNormPath::mma && mma != MmaKind::wgmma)
    return emitError() << "key_norms = mma needs mma = wgmma";
  if (deterministic && pipelined)
    return emitError() << "deterministic = true with pipelined = true (the "
                          "ordered dQ adds are the backward's, which has no "
                          "pipelined loop)";
  if (sharedMemoryBytes <= 0)
    return emitError() << "shared_memory_bytes = " << sharedMemoryBytes
                       << " (must be positive)";
  return success();
}
