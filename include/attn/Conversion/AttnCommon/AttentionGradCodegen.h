//===- AttentionGradCodegen.h - scalar code of the backward -----*- C++ -*-===//
//
// The pieces of an attn.attention_grad that both CPU lowerings emit the same
// way (docs/semantics.md §6): the f32 accumulators of the gradients and the
// postprocess that scales them, applies the feature maps' derivatives and
// casts them to the result types; per (query, key) element the weight p
// recomputed from the forward's lse, dS of the normalization, dS0 through
// the score region (ScoreModVJP.h) with the capture gradients, and the
// terms of the score kernel's derivative. AttnToLoops (the literal
// definition) and AttnToFlash (the FlashAttention-2 order) build on them.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNCOMMON_ATTENTIONGRADCODEGEN_H
#define ATTN_CONVERSION_ATTNCOMMON_ATTENTIONGRADCODEGEN_H

#include "attn/Conversion/AttnCommon/AttnCodegen.h"
#include "attn/Conversion/AttnCommon/OnlineSoftmax.h"

namespace mlir::attn {

/// The f32 tensors the gradients accumulate in, carried through the loops.
/// `dq`, `dk` and `dSinkKey` hold the gradients of the feature-mapped q and
/// k before the kernel's factor (scale, or 2 gamma for RBF): the
/// postprocess applies both. Absent operands have null accumulators.
struct GradAccumulators {
  Value dq, dk, dv;
  Value dSinkLogits, dSinkKey, dSinkValue;
  /// One per capture; null for integer captures (no gradient).
  SmallVector<Value> dCaptures;

  /// The non-null accumulators, in the order above.
  SmallVector<Value> values() const;
  /// The same layout with `values` (as values() returns them) in place.
  GradAccumulators with(ValueRange values) const;
};

/// Where the keys of a loop come from: the regular K/V rows of batch `b` and
/// kv head `hk`, or the sink rows of `hk` (which the score region and the
/// masks do not touch).
struct KeySet {
  Value keys, values;
  bool sinkRows;
  /// The index of row `j` without the feature index: {b, hk, j} or {hk, j}.
  SmallVector<Value> row(Value b, Value hk, Value j) const {
    if (sinkRows)
      return {hk, j};
    return {b, hk, j};
  }
};

/// The per-query constants of the backward.
struct GradRow {
  Value lse;      ///< The forward's lse (softmax family), else null.
  Value gradLse;  ///< dlse; null without grad_lse (and under mean).
  Value delta;    ///< D = sum_j p_j dP_j.
  Value factor;   ///< Scalable softmax: lambda log n; else 1.
  Value invCount; ///< Mean: 1 / n (0 when n = 0); else null.
};

/// Fails, with a diagnostic on `op`, when the CPU lowerings cannot take it:
/// it references a variant, or its score region uses an op the backward
/// cannot differentiate (named in the message).
LogicalResult verifyLowerableGrad(AttentionGradOp op);

/// Replaces every attn.attention_grad under `root` by what `lower` emits in
/// its place. Checks every op first (verifyLowerableGrad) and fails before
/// rewriting anything.
LogicalResult replaceAttentionGradOps(
    Operation *root,
    function_ref<SmallVector<Value>(ImplicitLocOpBuilder &, AttentionGradOp)>
        lower);

class AttentionGradCodegen {
public:
  AttentionGradCodegen(ScalarEmitter &e, const AttnOpInfo &info,
                       AttentionGradOp op);

  Normalization norm() const { return normKind; }
  /// The regular keys and the sink rows.
  KeySet regularKeys() const { return {info.key, info.value, false}; }
  KeySet sinkRows() const { return {info.sinkKey, info.sinkValue, true}; }

  /// Zero-filled accumulators of the shapes of the operands.
  GradAccumulators emitZeroAccumulators();
  /// The op's results from the accumulators: dq = factor * dq * phi_q'(q),
  /// dk (and the sink keys') likewise with phi_k', everything cast to the
  /// result types.
  SmallVector<Value> emitResults(const GradAccumulators &acc);

  /// Row constants of query (b, h, i) that sees `count` keys (sink rows
  /// included, f32); `delta` is left to the caller, which computes D its
  /// own way.
  GradRow emitRow(Value b, Value h, Value i, Value count);

  /// The weight p of an element with score `s` (after the region), 0 where
  /// not `visible`.
  Value weight(Value s, Value visible, const GradRow &row);
  /// dS = dL/ds of that element from p and dP = dO . v (0 where not
  /// `visible`, never NaN).
  Value scoreGrad(Value s, Value p, Value dP, Value visible,
                  const GradRow &row);
  /// The sink logit's share of query row `row`: p_c (dlse - D),
  /// p_c = exp(c - lse), 0 where lse = -inf.
  Value sinkLogitGrad(Value h, const GradRow &row);
  /// dS0 = dS * df/ds0 through the score region at (b, h, i, j), with the
  /// capture gradients added to `acc`; only where `visible` and dS != 0
  /// (elsewhere the region's derivative, possibly infinite, never enters).
  /// Without a region, dS.
  Value emitScoreModGrad(Value dS, Value s0, Value b, Value h, Value i,
                         Value j, Value visible, GradAccumulators &acc);

  /// phi_q(q[b, h, i, d]) and phi_k of element d of key row `keyRow`.
  Value loadQueryFeature(Value b, Value h, Value i, Value d);
  Value loadKeyFeature(const KeySet &keys, ArrayRef<Value> keyRow, Value d);
  /// dO[b, h, i] . values[valueRow] over Dv.
  Value emitGradOutputDot(Value b, Value h, Value i, const KeySet &keys,
                          ArrayRef<Value> valueRow);
  /// dO[b, h, i, d] as f32.
  Value loadGradOutput(Value b, Value h, Value i, Value d);
  /// The share of one (query, key) element in the gradient of `self` (one
  /// feature of phi(q) or phi(k)) before the kernel's factor: dS0 * other
  /// (dot), dS0 * (other - self) (RBF).
  Value kernelGradTerm(Value dS0, Value self, Value other);

  /// tensor[indices] += x (f32).
  Value accumulate(Value tensor, ValueRange indices, Value x);
  /// A tensor of `type` (sizes `dims`) whose element at each index is
  /// `element(indices)`, built by a loop nest.
  Value emitTensor(RankedTensorType type, ArrayRef<Value> dims,
                   function_ref<Value(ValueRange indices)> element);

private:
  /// The kernel's factor of dq and dk: scale (dot) or 2 gamma (RBF).
  Value kernelFactor();
  /// An f32 zero tensor of the shape of `like`.
  Value emitZerosLike(Value like);
  /// acc (f32) cast to the element type of `resultType`, each element
  /// first mapped by `scale(indices, x)` when given.
  Value emitResult(Value acc, Type resultType,
                   function_ref<Value(ValueRange, Value)> scale = {});

  ScalarEmitter &e;
  const AttnOpInfo &info;
  AttentionGradOp op;
  OnlineSoftmax online;
  Normalization normKind;
};

} // namespace mlir::attn

#endif // ATTN_CONVERSION_ATTNCOMMON_ATTENTIONGRADCODEGEN_H
