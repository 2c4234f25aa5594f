//===- AttnOps.h - attn operations ------------------------------*- C++ -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNOPS_H
#define ATTN_DIALECT_ATTN_IR_ATTNOPS_H

#include "attn/Dialect/Attn/IR/AttnAttrs.h"
#include "attn/Dialect/Attn/IR/AttnDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "attn/Dialect/Attn/IR/AttnOpInterfaces.h.inc"

#define GET_OP_CLASSES
#include "attn/Dialect/Attn/IR/AttnOps.h.inc"

namespace mlir::attn {

/// Number of leading (non-capture) block arguments of the score region:
/// (score, b, h, q_idx, kv_idx).
constexpr unsigned kScoreModFixedArgs = 5;
/// Number of leading (non-capture) block arguments of the mask region:
/// (b, h, q_idx, kv_idx).
constexpr unsigned kMaskModFixedArgs = 4;

/// Whether `norm` is softmax, softmax1 or scalable softmax.
bool isSoftmaxFamily(Normalization norm);

/// Whether adding a per-row constant to every score (sink rows included)
/// leaves the weights unchanged: true for softmax and scalable softmax with
/// no sink logits and no score region.
bool isShiftInvariant(VariantSpecOpInterface spec, bool hasSinkLogits);

/// The scale of the dot-product kernel: `scale`, or 1/sqrt(Dqk).
double getEffectiveScale(VariantSpecOpInterface spec, int64_t headDim);
/// The RBF bandwidth: `gamma`, or 1/(2*sqrt(Dqk)).
double getEffectiveGamma(VariantSpecOpInterface spec, int64_t headDim);

/// Checks the shape-independent rules of a variant specification; errors are
/// reported on `op`.
LogicalResult verifyVariantSpec(Operation *op, VariantSpecOpInterface spec);

} // namespace mlir::attn

#endif // ATTN_DIALECT_ATTN_IR_ATTNOPS_H
