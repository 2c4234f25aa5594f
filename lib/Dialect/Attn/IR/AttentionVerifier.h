//===- AttentionVerifier.h - rules shared by the attention ops --*- C++ -*-===//
//
// The verifier rules that attn.attention and attn.attention_grad share: the
// shapes of q, k, v and of the sinks, the per-query tensors (O, dO, lse), the
// inline-or-referenced specification and the rules that tie a specification
// to the operands. Defined in AttnOps.cpp, instantiated there for both ops
// (they share the accessor names getQuery, getKey, getCaptures, ...).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_DIALECT_ATTN_IR_ATTENTIONVERIFIER_H
#define ATTN_LIB_DIALECT_ATTN_IR_ATTENTIONVERIFIER_H

#include "attn/Dialect/Attn/IR/AttnOps.h"

namespace mlir::attn::verifier {

/// Checks q, k, v (ranks, element types, batch, heads, head dims, lengths),
/// sink logits, sink rows, and that a variant reference comes without an
/// inline specification.
template <typename OpT> LogicalResult verifyAttentionOperands(OpT op);

/// Checks the rules that tie `spec` (the op's own, or the variant's named by
/// `origin`) to the operands: masks against shapes and captures, region
/// capture types, lse and sink logits against the normalization.
template <typename OpT>
LogicalResult verifySpecAgainstOperands(OpT op, VariantSpecOpInterface spec,
                                        StringRef origin);

/// The attn.variant that `ref` names from `op` (its verifySymbolUses), or a
/// diagnostic on `op` when it names nothing or something else.
FailureOr<VariantSpecOpInterface>
lookupVariantSpec(Operation *op, FlatSymbolRefAttr ref,
                  SymbolTableCollection &symbolTable);

/// `[B, Hq, Sq, Dv]`, the shape of O (and dO), from q, k, v.
SmallVector<int64_t> getOutputShape(RankedTensorType q, RankedTensorType k,
                                    RankedTensorType v);

/// Checks that `type`, the type of the value called `name`, has rank
/// `expected.size()`, sizes compatible with `expected` (described as
/// `layout`, e.g. "[B, Hq, Sq]") and, when `elt` is given, that element type.
LogicalResult verifyPerQueryType(Operation *op, StringRef name,
                                 RankedTensorType type,
                                 ArrayRef<int64_t> expected, StringRef layout,
                                 Type elt = {});

} // namespace mlir::attn::verifier

#endif // ATTN_LIB_DIALECT_ATTN_IR_ATTENTIONVERIFIER_H
