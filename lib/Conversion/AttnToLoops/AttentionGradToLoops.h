//===- AttentionGradToLoops.h - the meaning of attn.attention_grad -*- C++ -*-//
//
// The literal lowering of the backward, used by attn-lower-to-loops.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOLOOPS_ATTENTIONGRADTOLOOPS_H
#define ATTN_LIB_CONVERSION_ATTNTOLOOPS_ATTENTIONGRADTOLOOPS_H

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::attn {

/// Emits at `b` the literal definition of `op` (docs/semantics.md §6): scf
/// loops over (b, h, q_idx) on tensors, f32 accumulation. Returns one value
/// per result of `op`. `op` must pass verifyLowerableGrad.
SmallVector<Value> emitAttentionGradLoops(ImplicitLocOpBuilder &b,
                                          AttentionGradOp op);

} // namespace mlir::attn

#endif // ATTN_LIB_CONVERSION_ATTNTOLOOPS_ATTENTIONGRADTOLOOPS_H
