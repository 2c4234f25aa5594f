//===- InitAttn.h - what attn tools register --------------------*- C++ -*-===//
//
// The project-owned registration lists: the dialects, interfaces, passes and
// translations that attn-opt and attn-run use, not every upstream one.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_INITATTN_H
#define ATTN_INITATTN_H

#include "mlir/IR/DialectRegistry.h"

namespace mlir::attn {

/// Registers the attn dialect, the upstream dialects that its lowerings
/// produce, their external interface models (bufferization, convert-to-LLVM),
/// the NVVM target and the translations to LLVM IR.
void registerAllAttnDialects(DialectRegistry &registry);

/// Registers every attn pass and pipeline and the upstream passes that the
/// pipelines are built from.
void registerAllAttnPasses();

} // namespace mlir::attn

#endif // ATTN_INITATTN_H
