//===- ScoreModVJP.h - reverse-mode derivative of score_mod -----*- C++ -*-===//
//
// The symbolic vector-Jacobian product of a score_mod region
// s' = f(s, b, h, i, j, captures...): given the adjoint g of s', the adjoint
// of the score, g * df/ds, and, for every read of a floating capture
// c[idx...] in the region, its share g * df/d(c[idx...]). The backward
// lowerings build dS_raw = dS' * df/ds and the capture gradients from it
// (docs: shared BACKWARD.md, "Score regions").
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNCOMMON_SCOREMODVJP_H
#define ATTN_CONVERSION_ATTNCOMMON_SCOREMODVJP_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/Region.h"
#include "mlir/Support/LLVM.h"

namespace mlir::attn {

/// The share of one `tensor.extract` of a floating capture in the gradient:
/// the caller accumulates `dcapture[indices] += contribution`.
struct CaptureContribution {
  /// Which capture: 0 for the first captured operand (block argument #5 of
  /// the score_mod region), 1 for the next, ...
  unsigned captureIndex;
  /// The index operands of the read, as emitted (index values).
  SmallVector<Value> indices;
  /// g * df/d(extracted value), f32 whatever the capture's element type; a
  /// zero constant when the yielded score does not depend on the read.
  Value contribution;
};

/// What emitScoreModVJP emits.
struct ScoreModVJP {
  /// f(s, ...), the region's yielded value (its primal computation).
  Value value;
  /// g * df/ds (f32; a zero constant when f does not depend on s).
  Value ds;
  /// One entry per `tensor.extract` of a floating capture, in region order.
  SmallVector<CaptureContribution> captures;
};

/// Checks that the score depends on s and the floating captures only
/// through ops emitScoreModVJP can differentiate; otherwise emits an error on
/// the first offending op ("cannot differentiate 'math.sin' in score_mod").
LogicalResult checkScoreModDifferentiable(Region &scoreMod);

/// The first op of a (verified) score_mod region that the yielded score
/// depends on and emitScoreModVJP cannot differentiate, or null: for callers
/// that report the failure on an op of their own.
Operation *findUndifferentiableScoreModOp(Region &scoreMod);

/// Emits at `b`'s insertion point the primal computation of `scoreMod` on
/// `args` (the values of its block arguments s, b, h, i, j, captures...; a
/// capture whose type differs from the block argument's is tensor.cast) and
/// its reverse-mode derivative for the incoming adjoint `adjoint` (f32).
/// Ops whose results depend on neither s nor a floating capture get no
/// adjoint code. Fails, emitting nothing and a diagnostic on the op at
/// fault, when the region cannot be differentiated.
FailureOr<ScoreModVJP> emitScoreModVJP(OpBuilder &b, Location loc,
                                       Region &scoreMod, ValueRange args,
                                       Value adjoint);

} // namespace mlir::attn

#endif // ATTN_CONVERSION_ATTNCOMMON_SCOREMODVJP_H
