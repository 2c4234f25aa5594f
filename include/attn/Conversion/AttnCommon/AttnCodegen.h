//===- AttnCodegen.h - scalar code for attn lowerings -----------*- C++ -*-===//
//
// The pieces of an attn.attention that every lowering emits the same way, at
// the level of one (b, h, q_idx, kv_idx) element: feature maps, the score
// kernel, the score and mask regions, the structured masks and the visible
// KV range of a block of queries. AttnToLoops and AttnToFlash build on them.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNCOMMON_ATTNCODEGEN_H
#define ATTN_CONVERSION_ATTNCOMMON_ATTNCODEGEN_H

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <functional>

namespace mlir::attn {

/// The sizes and operands of one attn.attention or attn.attention_grad (the
/// operands they share: q, k, v, captures, sinks), as index values, plus the
/// resolved specification.
struct AttnOpInfo {
  /// The attn.attention or attn.attention_grad.
  Operation *op = nullptr;
  mutable VariantSpecOpInterface spec;
  Value query, key, value;
  SmallVector<Value> captures;
  Value sinkLogits, sinkKey, sinkValue;
  Value batch, qHeads, kvHeads, group, qLen, kvLen, headDimQK, headDimV,
      numSinkRows;
  Type elementType;
  double scale = 1.0; ///< The dot-product scale.
  double gamma = 1.0; ///< The RBF bandwidth.

  /// How the score and mask regions are materialized: given the region and
  /// its leading arguments, emit its body and return the yielded value. The
  /// default clones the region with `captures` bound to its trailing
  /// arguments; the GPU kernel reads the captures from buffers instead.
  std::function<Value(Region &, ValueRange)> inlineRegion;
  /// Reads segment id `pos` of batch `b` from capture `index` (documents).
  /// The default is tensor.extract on `captures`.
  std::function<Value(unsigned index, Value b, Value pos)> loadSegment;
  /// (min, max) of the segment ids of capture `index` over positions
  /// [p0, p1) of the current batch (MaskEmitContext::segmentSpan); unset:
  /// none (document masks then decide no tile).
  std::function<std::pair<Value, Value>(unsigned index, bool keys, Value p0,
                                        Value p1)>
      segmentSpan;
  /// Reads capture `index` at `indices` for the mask region's tile verdict
  /// (a read at batch and head); unset: tensor.extract on `captures` where
  /// the region is cloned (the CPU), none where it is inlined otherwise.
  std::function<Value(unsigned index, ValueRange indices)> readCapture;

  /// Reads the sizes of `op` (tensor.dim for dynamic ones). The op must not
  /// reference a variant.
  static AttnOpInfo get(ImplicitLocOpBuilder &b, AttentionOp op);
  static AttnOpInfo get(ImplicitLocOpBuilder &b, AttentionGradOp op);
};

/// The sizes of `tensor`: constants for the static ones, tensor.dim for the
/// others.
SmallVector<Value> emitDims(ImplicitLocOpBuilder &b, Value tensor);

/// Small helpers to emit scalar arithmetic.
struct ScalarEmitter {
  ImplicitLocOpBuilder &b;

  Value f32(double v);
  Value index(int64_t v);
  Value i1(bool v);
  /// Reads `tensor[indices]` and widens it to f32.
  Value loadF32(Value tensor, ValueRange indices);
  Value add(Value x, Value y);
  Value sub(Value x, Value y);
  Value mul(Value x, Value y);
  Value div(Value x, Value y);
  Value maxF(Value x, Value y);
  Value exp(Value x);
  Value log(Value x);
  Value select(Value c, Value x, Value y);
  Value andI(Value x, Value y);
  Value orI(Value x, Value y);
  Value cmpF(arith::CmpFPredicate p, Value x, Value y);
  Value cmpI(arith::CmpIPredicate p, Value x, Value y);
  Value addI(Value x, Value y);
  Value subI(Value x, Value y);
  Value mulI(Value x, Value y);
  Value divI(Value x, Value y);
  Value remI(Value x, Value y);
  Value minI(Value x, Value y);
  Value maxI(Value x, Value y);
  /// Converts an index to f32.
  Value indexToF32(Value x);
  /// An elementwise feature map.
  Value featureMap(Value x, FeatureMap kind);
  /// Its derivative phi'(x): 1 (identity), [x > 0] (relu), 1 if x > 0 else
  /// exp(x) (elu_plus_one).
  Value featureMapDerivative(Value x, FeatureMap kind);

  /// Builds `scf.for iv = lb to ub` carrying `inits`; `body` returns the
  /// values to yield.
  ValueRange forLoop(
      Value lb, Value ub, ValueRange inits,
      function_ref<SmallVector<Value>(Value iv, ValueRange args)> body);
  /// Builds `scf.if cond` whose branches yield what `thenBody` and
  /// `elseBody` return (values of the same types).
  ValueRange ifElse(Value cond, function_ref<SmallVector<Value>()> thenBody,
                    function_ref<SmallVector<Value>()> elseBody);
};

/// Query position among the keys: `i` or `i + Sk - Sq`
/// (emitAlignedPosition).
Value alignedPosition(ScalarEmitter &e, const AttnOpInfo &info, Value i,
                      Alignment alignment);

/// The dot-product scale and the RBF bandwidth as f32 values (from the
/// run-time head dim when it is dynamic and the spec gives none).
Value emitScale(ScalarEmitter &e, const AttnOpInfo &info);
Value emitGamma(ScalarEmitter &e, const AttnOpInfo &info);

/// The score of query `(b, h, i)` against key row `keyIndices` of `keys`
/// (the key tensor or the sink-key tensor) by the spec's kernel, before the
/// score region.
Value emitKernelScore(ScalarEmitter &e, const AttnOpInfo &info, Value b,
                      Value h, Value i, Value keys, ValueRange keyRow);

/// Applies the score region (if any) to `score`.
Value emitScoreMod(ScalarEmitter &e, const AttnOpInfo &info, Value score,
                   Value b, Value h, Value i, Value j);

/// Whether key `j` is visible to query `(b, h, i)`: all structured masks and
/// the mask region, composed as `global && (local || sinks)`.
Value emitVisible(ScalarEmitter &e, const AttnOpInfo &info, Value b, Value h,
                  Value i, Value j);

/// The context in which the mask attributes of `info` emit their semantics
/// (MaskAttrInterface): the op's sizes, and `info.loadSegment` or, by
/// default, tensor.extract on the captures.
MaskEmitContext getMaskEmitContext(ScalarEmitter &e, const AttnOpInfo &info);

/// Whether the spec has any mask (structured or region).
bool hasAnyMask(const AttnOpInfo &info);

/// A half-open KV interval of positions, clipped to [0, Sk).
struct KVInterval {
  Value lo, hi;
};

/// The keys that queries [i0, i1) can see, from the structured masks: the
/// interval of the local/global kinds, plus the sink-token prefix [0, n)
/// when sink tokens re-admit keys outside it. Keys outside both are masked
/// for every query of the block; keys inside may still be masked.
struct KVRange {
  KVInterval main;
  /// Present when the spec has sink tokens: [0, count) clipped to Sk.
  std::optional<KVInterval> sinks;
};
KVRange emitKVRange(ScalarEmitter &e, const AttnOpInfo &info, Value i0,
                    Value i1);

/// Whether every key of [j0, j1) is visible to every query of [i0, i1),
/// decided from the structured masks alone (false whenever a kind cannot be
/// decided in closed form: neighborhoods, the mask region, documents
/// without `info.segmentSpan`).
Value emitBlockFullyVisible(ScalarEmitter &e, const AttnOpInfo &info,
                            Value i0, Value i1, Value j0, Value j1);

/// Whether no key of [j0, j1) is visible to any query of [i0, i1) by a
/// global structured kind that decides it per block (MaskAttrInterface::
/// emitBlockHidden: documents with `info.segmentSpan`); false otherwise.
/// The positional kinds say the same through emitKVRange.
Value emitBlockHidden(ScalarEmitter &e, const AttnOpInfo &info, Value i0,
                      Value i1, Value j0, Value j1);

/// Whether the spec has a document mask.
bool hasDocumentMask(const AttnOpInfo &info);

/// Sets `info.segmentSpan` to loops over the segment ids of batch `b`
/// (tensor.extract on `info.captures`): the CPU lowerings' summary.
void setSegmentSpanLoops(ScalarEmitter &e, AttnOpInfo &info, Value b);

/// What holds for every (query, key) pair of a tile (i1 values).
struct TileVerdict {
  Value allTrue, allFalse;
};

/// Whether every key of [j0, j1) is visible to every query of [i0, i1)
/// (`allTrue`), and whether none is (`allFalse`), for batch `b` and head
/// `h` (null: any): the structured masks (as emitBlockFullyVisible) and the
/// mask region's interval verdict (RegionIntervals.h). Keys outside
/// emitKVRange's intervals are not counted in `allFalse`.
TileVerdict emitTileVerdict(ScalarEmitter &e, const AttnOpInfo &info, Value b,
                            Value h, Value i0, Value i1, Value j0, Value j1);

/// The loop nest of the CPU lowerings: (b, h, step) with the output and LSE
/// tensors created empty and carried through; `body(b, h, step, output,
/// lse)` returns their updated values. Returns one value per result of the
/// op (the LSE only when it has one), cast to the result types.
SmallVector<Value> emitOutputLoopNest(
    ScalarEmitter &e, const AttnOpInfo &info, Value numSteps,
    function_ref<SmallVector<Value>(Value b, Value h, Value step,
                                    Value output, Value lse)>
        body);

/// The regular keys of `range` (emitKVRange) that query (b, h, i) sees, as
/// an index: what the scalable softmax's n counts besides the sink rows.
Value emitVisibleCount(ScalarEmitter &e, const AttnOpInfo &info, Value b,
                       Value h, Value i, const KVRange &range);

/// Fails, with a diagnostic on the op, when `op` still references a variant:
/// every lowering needs the specification on the op itself.
LogicalResult verifyInstantiated(AttentionOp op);
LogicalResult verifyInstantiated(AttentionGradOp op);

/// Replaces every attn.attention under `root` by what `lower` emits in its
/// place. Fails, with a diagnostic on the op, on one that still references a
/// variant.
LogicalResult replaceAttentionOps(
    Operation *root,
    function_ref<SmallVector<Value>(ImplicitLocOpBuilder &, AttentionOp)>
        lower);

} // namespace mlir::attn

#endif // ATTN_CONVERSION_ATTNCOMMON_ATTNCODEGEN_H
