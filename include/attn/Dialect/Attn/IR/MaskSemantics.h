//===- MaskSemantics.h - what mask attributes emit --------------*- C++ -*-===//
//
// The types in the signatures of MaskAttrInterface: how a mask kind composes
// with the others, the sizes it is checked against, and the context in which
// it emits its semantics (visibility of (i, j), the keys a block of queries
// needs, whether a block is fully visible) as index arithmetic. The
// lowerings build the context (attn/Conversion/AttnCommon/AttnCodegen.h);
// this layer knows only arith.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_DIALECT_ATTN_IR_MASKSEMANTICS_H
#define ATTN_DIALECT_ATTN_IR_MASKSEMANTICS_H

#include "attn/Dialect/Attn/IR/AttnEnums.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/TypeRange.h"

#include <functional>
#include <optional>

namespace mlir::attn {

/// Where a mask kind enters `visible = global && (local || sinks)`.
enum class MaskRole {
  global, ///< causal, document, prefix-LM (and the mask region)
  local,  ///< sliding window, chunked, neighborhoods
  sinks,  ///< sink tokens: re-admit keys that the local kinds hide
};

/// The largest value a mask parameter (and a product of two, such as
/// `kernel * dilation` or `height * width`) may take: 2^40 positions, far
/// past any sequence, and small enough that the position arithmetic of the
/// lowerings (positions +- parameters, chunk and grid products) cannot
/// overflow 64 bits.
constexpr int64_t kMaxMaskParameter = int64_t(1) << 40;

/// What the verifier knows of the op a mask is attached to: sizes are
/// ShapedType::kDynamic when not static; `captures` are the op's captured
/// operand types.
struct MaskShapes {
  int64_t batch, qLen, kvLen;
  TypeRange captures;
};

/// A half-open interval [lo, hi) of key positions, before clipping to
/// [0, Sk); a null bound is no bound.
struct KVBounds {
  Value lo, hi;
};

/// The query position among the keys, `i` (top_left) or `i + Sk - Sq`
/// (bottom_right).
Value emitAlignedPosition(OpBuilder &b, Location loc, Value i, Value qLen,
                          Value kvLen, Alignment alignment);

/// Where and how a mask attribute emits its semantics: positions, sizes and
/// results are `index` (or `i1`) values; `loadSegment` reads the segment id
/// at position `pos` of batch `b` from capture `capture` (document masks).
struct MaskEmitContext {
  OpBuilder &b;
  Location loc;
  Value qLen, kvLen;
  std::function<Value(unsigned capture, Value b, Value pos)> loadSegment;
  /// The smallest and the largest segment id of capture `capture` over the
  /// positions [p0, p1) (non-empty) of the lowering's current batch; `keys`
  /// says whether they are key positions. Unset where the lowering keeps no
  /// such summary: document masks then decide no block.
  std::function<std::pair<Value, Value>(unsigned capture, bool keys, Value p0,
                                        Value p1)>
      segmentSpan;

  Value alignedPosition(Value i, Alignment alignment) {
    return emitAlignedPosition(b, loc, i, qLen, kvLen, alignment);
  }

  // Index arithmetic (signed).
  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value i1(bool v) { return arith::ConstantIntOp::create(b, loc, v, 1); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value div(Value x, Value y) { return arith::DivSIOp::create(b, loc, x, y); }
  Value rem(Value x, Value y) { return arith::RemSIOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }
  Value andI(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value orI(Value x, Value y) { return arith::OrIOp::create(b, loc, x, y); }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, loc, p, x, y);
  }
};

} // namespace mlir::attn

#endif // ATTN_DIALECT_ATTN_IR_MASKSEMANTICS_H
