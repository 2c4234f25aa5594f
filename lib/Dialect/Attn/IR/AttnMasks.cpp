//===- AttnMasks.cpp - the semantics of each mask kind ----------*- C++ -*-===//
//
// MaskAttrInterface on every structured mask attribute, one section per
// kind: its role in `visible = global && (local || sinks)`, its parameter
// rules, its predicate on (i, j), the keys a block of queries [i0, i1) can
// see, and whether a block [i0, i1) x [j0, j1) is fully visible. The meaning
// is docs/semantics.md §3; every lowering and the verifier go through here.
//
//===----------------------------------------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnAttrs.h"

#include "mlir/IR/BuiltinTypes.h"

using namespace mlir;
using namespace mlir::attn;

using P = arith::CmpIPredicate;
using EmitErrorFn = function_ref<InFlightDiagnostic()>;

Value mlir::attn::emitAlignedPosition(OpBuilder &b, Location loc, Value i,
                                      Value qLen, Value kvLen,
                                      Alignment alignment) {
  if (alignment == Alignment::top_left)
    return i;
  return arith::AddIOp::create(b, loc, i,
                               arith::SubIOp::create(b, loc, kvLen, qLen));
}

//===----------------------------------------------------------------------===//
// Verification helpers
//===----------------------------------------------------------------------===//

static std::string maskName(Attribute mask) {
  std::string s;
  llvm::raw_string_ostream os(s);
  mask.print(os);
  return s;
}

/// Two sizes disagree only when both are static.
static bool sizesDiffer(int64_t a, int64_t b) {
  return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b;
}

/// A size for messages: the number, or '?' when dynamic.
static std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? "?" : std::to_string(d);
}

/// `a * b`, or nullopt when it is larger than kMaxMaskParameter (the
/// factors are non-negative and at most kMaxMaskParameter).
static std::optional<int64_t> boundedProduct(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r) || r > kMaxMaskParameter)
    return std::nullopt;
  return r;
}

static InFlightDiagnostic maskError(EmitErrorFn emitError, Attribute mask) {
  InFlightDiagnostic diag = emitError();
  diag << "mask " << maskName(mask) << ": ";
  return diag;
}

/// `minimum <= value <= kMaxMaskParameter`.
static LogicalResult checkParam(EmitErrorFn emitError, Attribute mask,
                                StringRef param, int64_t value,
                                int64_t minimum = 1) {
  if (value < minimum)
    return maskError(emitError, mask) << "'" << param << "' must be at least "
                                      << minimum << ", got " << value;
  if (value > kMaxMaskParameter)
    return maskError(emitError, mask)
           << "'" << param << "' must be at most " << kMaxMaskParameter
           << " (2^40), got " << value;
  return success();
}

/// An odd kernel size in [1, kMaxMaskParameter].
static LogicalResult checkKernel(EmitErrorFn emitError, Attribute mask,
                                 StringRef param, int64_t kernel) {
  if (kernel < 1 || kernel % 2 != 1)
    return maskError(emitError, mask)
           << "'" << param << "' must be a positive odd number, got "
           << kernel;
  return checkParam(emitError, mask, param, kernel);
}

/// Neighborhoods attend within one sequence: Sq == Sk.
static LogicalResult checkSquare(EmitErrorFn emitError, Attribute mask,
                                 const MaskShapes &shapes) {
  if (!sizesDiffer(shapes.qLen, shapes.kvLen))
    return success();
  return emitError() << "mask " << maskName(mask)
                     << " needs Sq == Sk, got Sq = " << dimStr(shapes.qLen)
                     << " and Sk = " << dimStr(shapes.kvLen);
}

//===----------------------------------------------------------------------===//
// causal: j <= pos(i)
//===----------------------------------------------------------------------===//

MaskRole CausalAttr::getRole() const { return MaskRole::global; }

LogicalResult CausalAttr::verifyParameters(EmitErrorFn) const {
  return success();
}

LogicalResult CausalAttr::verifyShapes(EmitErrorFn,
                                       const MaskShapes &) const {
  return success();
}

Value CausalAttr::emitVisible(MaskEmitContext &ctx, Value, Value i,
                              Value j) const {
  Value pos = ctx.alignedPosition(i, getAlignment());
  return ctx.cmp(P::sle, j, pos);
}

KVBounds CausalAttr::emitKVBounds(MaskEmitContext &ctx, Value,
                                  Value i1) const {
  Value last = ctx.sub(i1, ctx.index(1));
  Value pos = ctx.alignedPosition(last, getAlignment());
  return {Value(), ctx.add(pos, ctx.index(1))};
}

std::optional<Value>
CausalAttr::emitBlockFullyVisible(MaskEmitContext &ctx, Value i0, Value,
                                  Value, Value j1) const {
  Value jLast = ctx.sub(j1, ctx.index(1));
  Value first = ctx.alignedPosition(i0, getAlignment());
  return ctx.cmp(P::sle, jLast, first);
}

//===----------------------------------------------------------------------===//
// prefix_lm: j < prefix || j <= pos(i)
//===----------------------------------------------------------------------===//

MaskRole PrefixLMAttr::getRole() const { return MaskRole::global; }

LogicalResult PrefixLMAttr::verifyParameters(EmitErrorFn emitError) const {
  return checkParam(emitError, *this, "prefix", getPrefix(), 0);
}

LogicalResult PrefixLMAttr::verifyShapes(EmitErrorFn,
                                         const MaskShapes &) const {
  return success();
}

Value PrefixLMAttr::emitVisible(MaskEmitContext &ctx, Value, Value i,
                                Value j) const {
  Value pos = ctx.alignedPosition(i, getAlignment());
  return ctx.orI(ctx.cmp(P::slt, j, ctx.index(getPrefix())),
                 ctx.cmp(P::sle, j, pos));
}

KVBounds PrefixLMAttr::emitKVBounds(MaskEmitContext &ctx, Value,
                                    Value i1) const {
  Value last = ctx.sub(i1, ctx.index(1));
  Value pos = ctx.alignedPosition(last, getAlignment());
  return {Value(),
          ctx.max(ctx.index(getPrefix()), ctx.add(pos, ctx.index(1)))};
}

std::optional<Value>
PrefixLMAttr::emitBlockFullyVisible(MaskEmitContext &ctx, Value i0, Value,
                                    Value, Value j1) const {
  Value jLast = ctx.sub(j1, ctx.index(1));
  Value first = ctx.alignedPosition(i0, getAlignment());
  return ctx.orI(ctx.cmp(P::sle, j1, ctx.index(getPrefix())),
                 ctx.cmp(P::sle, jLast, first));
}

//===----------------------------------------------------------------------===//
// document: segment(q, i) == segment(kv, j)
//===----------------------------------------------------------------------===//

MaskRole DocumentAttr::getRole() const { return MaskRole::global; }

LogicalResult DocumentAttr::verifyParameters(EmitErrorFn emitError) const {
  if (failed(checkParam(emitError, *this, "q_segments", getQSegments(), 0)) ||
      failed(checkParam(emitError, *this, "kv_segments", getKvSegments(), 0)))
    return failure();
  return success();
}

LogicalResult DocumentAttr::verifyShapes(EmitErrorFn emitError,
                                         const MaskShapes &shapes) const {
  size_t numCaps = shapes.captures.size();
  for (auto [name, index, len] :
       {std::make_tuple("q_segments", getQSegments(), shapes.qLen),
        std::make_tuple("kv_segments", getKvSegments(), shapes.kvLen)}) {
    if (uint64_t(index) >= numCaps)
      return maskError(emitError, *this)
             << "'" << name << "' names capture #" << index
             << " but the op has " << numCaps << " captures";
    auto ty = cast<RankedTensorType>(shapes.captures[index]);
    if (ty.getRank() != 2 || !ty.getElementType().isInteger(32) ||
        sizesDiffer(ty.getDimSize(0), shapes.batch) ||
        sizesDiffer(ty.getDimSize(1), len))
      return maskError(emitError, *this)
             << "'" << name << "' capture #" << index << " must be tensor<"
             << dimStr(shapes.batch) << "x" << dimStr(len)
             << "xi32> ([B, S] segment ids), got " << ty;
  }
  return success();
}

Value DocumentAttr::emitVisible(MaskEmitContext &ctx, Value b, Value i,
                                Value j) const {
  Value qs = ctx.loadSegment(getQSegments(), b, i);
  Value ks = ctx.loadSegment(getKvSegments(), b, j);
  return ctx.cmp(P::eq, qs, ks);
}

KVBounds DocumentAttr::emitKVBounds(MaskEmitContext &, Value, Value) const {
  return {}; // Segments are run-time data: any key may share one.
}

// A block needs the segment ids of all its queries and keys: decided where
// the lowering summarizes them (ctx.segmentSpan), as intervals. Every pair
// is visible when both sides hold one and the same id; none is when the
// two intervals do not meet (exact for sorted ids, packed documents).
std::optional<Value>
DocumentAttr::emitBlockFullyVisible(MaskEmitContext &ctx, Value i0, Value i1,
                                    Value j0, Value j1) const {
  if (!ctx.segmentSpan)
    return std::nullopt;
  auto [qLo, qHi] = ctx.segmentSpan(getQSegments(), false, i0, i1);
  auto [kLo, kHi] = ctx.segmentSpan(getKvSegments(), true, j0, j1);
  return ctx.andI(ctx.andI(ctx.cmp(P::eq, qLo, qHi), ctx.cmp(P::eq, kLo, kHi)),
                  ctx.cmp(P::eq, qLo, kLo));
}

std::optional<Value> DocumentAttr::emitBlockHidden(MaskEmitContext &ctx,
                                                   Value i0, Value i1,
                                                   Value j0, Value j1) const {
  if (!ctx.segmentSpan)
    return std::nullopt;
  auto [qLo, qHi] = ctx.segmentSpan(getQSegments(), false, i0, i1);
  auto [kLo, kHi] = ctx.segmentSpan(getKvSegments(), true, j0, j1);
  return ctx.orI(ctx.cmp(P::slt, qHi, kLo), ctx.cmp(P::slt, kHi, qLo));
}

//===----------------------------------------------------------------------===//
// sliding_window: pos(i) - left <= j <= pos(i) + right
//===----------------------------------------------------------------------===//

MaskRole SlidingWindowAttr::getRole() const { return MaskRole::local; }

LogicalResult
SlidingWindowAttr::verifyParameters(EmitErrorFn emitError) const {
  if (failed(checkParam(emitError, *this, "left", getLeft(), 0)) ||
      failed(checkParam(emitError, *this, "right", getRight(), 0)))
    return failure();
  return success();
}

LogicalResult SlidingWindowAttr::verifyShapes(EmitErrorFn,
                                              const MaskShapes &) const {
  return success();
}

Value SlidingWindowAttr::emitVisible(MaskEmitContext &ctx, Value, Value i,
                                     Value j) const {
  Value pos = ctx.alignedPosition(i, getAlignment());
  return ctx.andI(ctx.cmp(P::sge, j, ctx.sub(pos, ctx.index(getLeft()))),
                  ctx.cmp(P::sle, j, ctx.add(pos, ctx.index(getRight()))));
}

KVBounds SlidingWindowAttr::emitKVBounds(MaskEmitContext &ctx, Value i0,
                                         Value i1) const {
  Value last = ctx.sub(i1, ctx.index(1));
  Value first = ctx.alignedPosition(i0, getAlignment());
  Value pos = ctx.alignedPosition(last, getAlignment());
  return {ctx.sub(first, ctx.index(getLeft())),
          ctx.add(pos, ctx.index(getRight() + 1))};
}

std::optional<Value>
SlidingWindowAttr::emitBlockFullyVisible(MaskEmitContext &ctx, Value i0,
                                         Value i1, Value j0, Value j1) const {
  Value one = ctx.index(1);
  Value iLast = ctx.sub(i1, one), jLast = ctx.sub(j1, one);
  Value first = ctx.alignedPosition(i0, getAlignment());
  Value lastPos = ctx.alignedPosition(iLast, getAlignment());
  return ctx.andI(
      ctx.cmp(P::sge, j0, ctx.sub(lastPos, ctx.index(getLeft()))),
      ctx.cmp(P::sle, jLast, ctx.add(first, ctx.index(getRight()))));
}

//===----------------------------------------------------------------------===//
// chunked: pos(i) / size == j / size, pos(i) >= 0
//===----------------------------------------------------------------------===//

MaskRole ChunkedAttr::getRole() const { return MaskRole::local; }

LogicalResult ChunkedAttr::verifyParameters(EmitErrorFn emitError) const {
  return checkParam(emitError, *this, "size", getSize());
}

LogicalResult ChunkedAttr::verifyShapes(EmitErrorFn,
                                        const MaskShapes &) const {
  return success();
}

Value ChunkedAttr::emitVisible(MaskEmitContext &ctx, Value, Value i,
                               Value j) const {
  Value pos = ctx.alignedPosition(i, getAlignment());
  Value c = ctx.index(getSize());
  return ctx.andI(ctx.cmp(P::sge, pos, ctx.index(0)),
                  ctx.cmp(P::eq, ctx.div(pos, c), ctx.div(j, c)));
}

KVBounds ChunkedAttr::emitKVBounds(MaskEmitContext &ctx, Value i0,
                                   Value i1) const {
  Value zero = ctx.index(0), one = ctx.index(1);
  Value first = ctx.max(ctx.alignedPosition(i0, getAlignment()), zero);
  Value last = ctx.alignedPosition(ctx.sub(i1, one), getAlignment());
  Value c = ctx.index(getSize());
  Value lo = ctx.mul(ctx.div(first, c), c);
  Value hi = ctx.mul(ctx.add(ctx.div(ctx.max(last, zero), c), one), c);
  return {lo, hi};
}

std::optional<Value>
ChunkedAttr::emitBlockFullyVisible(MaskEmitContext &ctx, Value i0, Value i1,
                                   Value j0, Value j1) const {
  Value one = ctx.index(1);
  Value first = ctx.alignedPosition(i0, getAlignment());
  Value last = ctx.alignedPosition(ctx.sub(i1, one), getAlignment());
  Value jLast = ctx.sub(j1, one);
  Value c = ctx.index(getSize());
  Value chunk = ctx.div(first, c);
  Value ok = ctx.cmp(P::sge, first, ctx.index(0));
  ok = ctx.andI(ok, ctx.cmp(P::eq, ctx.div(last, c), chunk));
  ok = ctx.andI(ok, ctx.cmp(P::eq, ctx.div(j0, c), chunk));
  ok = ctx.andI(ok, ctx.cmp(P::eq, ctx.div(jLast, c), chunk));
  return ok;
}

//===----------------------------------------------------------------------===//
// neighborhood_1d / neighborhood_2d (NATTEN)
//===----------------------------------------------------------------------===//

/// NATTEN's 1-D neighborhood with dilation over `length` positions: see
/// docs/semantics.md.
static Value emitNatten(MaskEmitContext &ctx, Value i, Value j, Value length,
                        int64_t kernel, int64_t dilation) {
  Value d = ctx.index(dilation), k = ctx.index(kernel);
  Value g = ctx.rem(i, d);
  Value sameGroup = ctx.cmp(P::eq, g, ctx.rem(j, d));
  // Lg = ceil((L - g) / D)
  Value groupLen =
      ctx.div(ctx.add(ctx.sub(length, g), ctx.index(dilation - 1)), d);
  Value ig = ctx.div(i, d);
  Value start =
      ctx.max(ctx.index(0), ctx.min(ctx.sub(ig, ctx.index(kernel / 2)),
                                    ctx.sub(groupLen, k)));
  Value jg = ctx.div(j, d);
  Value inWindow = ctx.andI(ctx.cmp(P::sge, jg, start),
                            ctx.cmp(P::slt, jg, ctx.add(start, k)));
  return ctx.andI(sameGroup, inWindow);
}

MaskRole Neighborhood1DAttr::getRole() const { return MaskRole::local; }

LogicalResult
Neighborhood1DAttr::verifyParameters(EmitErrorFn emitError) const {
  if (failed(checkKernel(emitError, *this, "kernel", getKernel())) ||
      failed(checkParam(emitError, *this, "dilation", getDilation())))
    return failure();
  if (!boundedProduct(getKernel(), getDilation()))
    return maskError(emitError, *this)
           << "kernel * dilation must be at most " << kMaxMaskParameter
           << " (2^40)";
  return success();
}

LogicalResult Neighborhood1DAttr::verifyShapes(EmitErrorFn emitError,
                                               const MaskShapes &s) const {
  if (failed(checkSquare(emitError, *this, s)))
    return failure();
  int64_t span = getKernel() * getDilation(); // Bounded by the parameters.
  if (!ShapedType::isDynamic(s.kvLen) && span > s.kvLen)
    return maskError(emitError, *this)
           << "kernel * dilation exceeds the sequence length ("
           << dimStr(s.kvLen) << ")";
  return success();
}

Value Neighborhood1DAttr::emitVisible(MaskEmitContext &ctx, Value, Value i,
                                      Value j) const {
  return emitNatten(ctx, i, j, ctx.kvLen, getKernel(), getDilation());
}

KVBounds Neighborhood1DAttr::emitKVBounds(MaskEmitContext &ctx, Value i0,
                                          Value i1) const {
  Value one = ctx.index(1);
  Value last = ctx.sub(i1, one);
  Value reach = ctx.index((getKernel() - 1) * getDilation());
  return {ctx.sub(i0, reach), ctx.add(last, ctx.add(reach, one))};
}

std::optional<Value>
Neighborhood1DAttr::emitBlockFullyVisible(MaskEmitContext &, Value, Value,
                                          Value, Value) const {
  return std::nullopt; // Windows shift at the sequence ends and per group.
}

MaskRole Neighborhood2DAttr::getRole() const { return MaskRole::local; }

LogicalResult
Neighborhood2DAttr::verifyParameters(EmitErrorFn emitError) const {
  if (failed(checkParam(emitError, *this, "height", getHeight())) ||
      failed(checkParam(emitError, *this, "width", getWidth())) ||
      failed(checkKernel(emitError, *this, "kernel_h", getKernelH())) ||
      failed(checkKernel(emitError, *this, "kernel_w", getKernelW())) ||
      failed(checkParam(emitError, *this, "dilation_h", getDilationH())) ||
      failed(checkParam(emitError, *this, "dilation_w", getDilationW())))
    return failure();
  std::optional<int64_t> spanH = boundedProduct(getKernelH(), getDilationH());
  if (!spanH || *spanH > getHeight())
    return maskError(emitError, *this)
           << "kernel_h * dilation_h exceeds the grid height (" << getHeight()
           << ")";
  std::optional<int64_t> spanW = boundedProduct(getKernelW(), getDilationW());
  if (!spanW || *spanW > getWidth())
    return maskError(emitError, *this)
           << "kernel_w * dilation_w exceeds the grid width (" << getWidth()
           << ")";
  if (!boundedProduct(getHeight(), getWidth()))
    return maskError(emitError, *this)
           << "height * width must be at most " << kMaxMaskParameter
           << " (2^40)";
  return success();
}

LogicalResult Neighborhood2DAttr::verifyShapes(EmitErrorFn emitError,
                                               const MaskShapes &s) const {
  if (failed(checkSquare(emitError, *this, s)))
    return failure();
  int64_t cells = getHeight() * getWidth(); // Bounded by the parameters.
  if (!ShapedType::isDynamic(s.kvLen) && cells != s.kvLen)
    return maskError(emitError, *this)
           << "the grid holds " << cells << " tokens but Sk = " << s.kvLen;
  return success();
}

Value Neighborhood2DAttr::emitVisible(MaskEmitContext &ctx, Value, Value i,
                                      Value j) const {
  Value w = ctx.index(getWidth());
  Value rows = emitNatten(ctx, ctx.div(i, w), ctx.div(j, w),
                          ctx.index(getHeight()), getKernelH(),
                          getDilationH());
  Value cols = emitNatten(ctx, ctx.rem(i, w), ctx.rem(j, w), w, getKernelW(),
                          getDilationW());
  return ctx.andI(rows, cols);
}

KVBounds Neighborhood2DAttr::emitKVBounds(MaskEmitContext &ctx, Value i0,
                                          Value i1) const {
  Value one = ctx.index(1);
  Value last = ctx.sub(i1, one);
  Value w = ctx.index(getWidth());
  Value reach = ctx.index((getKernelH() - 1) * getDilationH());
  Value r0 = ctx.div(i0, w), r1 = ctx.div(last, w);
  return {ctx.mul(ctx.sub(r0, reach), w),
          ctx.mul(ctx.add(r1, ctx.add(reach, one)), w)};
}

std::optional<Value>
Neighborhood2DAttr::emitBlockFullyVisible(MaskEmitContext &, Value, Value,
                                          Value, Value) const {
  return std::nullopt; // As neighborhood_1d, per grid row and column.
}

//===----------------------------------------------------------------------===//
// sink_tokens: j < count (re-admitted through the local kinds)
//===----------------------------------------------------------------------===//

MaskRole SinkTokensAttr::getRole() const { return MaskRole::sinks; }

LogicalResult SinkTokensAttr::verifyParameters(EmitErrorFn emitError) const {
  return checkParam(emitError, *this, "count", getCount());
}

LogicalResult SinkTokensAttr::verifyShapes(EmitErrorFn,
                                           const MaskShapes &) const {
  return success();
}

Value SinkTokensAttr::emitVisible(MaskEmitContext &ctx, Value, Value,
                                  Value j) const {
  return ctx.cmp(P::slt, j, ctx.index(getCount()));
}

KVBounds SinkTokensAttr::emitKVBounds(MaskEmitContext &ctx, Value,
                                      Value) const {
  return {Value(), ctx.index(getCount())};
}

std::optional<Value>
SinkTokensAttr::emitBlockFullyVisible(MaskEmitContext &ctx, Value, Value,
                                      Value, Value j1) const {
  return ctx.cmp(P::sle, j1, ctx.index(getCount()));
}

//===----------------------------------------------------------------------===//
// any_of: OR of positional masks
//===----------------------------------------------------------------------===//

MaskRole AnyOfAttr::getRole() const { return MaskRole::global; }

static SmallVector<MaskAttrInterface> anyOfMasks(AnyOfAttr attr) {
  SmallVector<MaskAttrInterface> out;
  for (Attribute a : attr.getMasks())
    if (auto m = dyn_cast<MaskAttrInterface>(a))
      out.push_back(m);
  return out;
}

LogicalResult AnyOfAttr::verifyParameters(EmitErrorFn emitError) const {
  if (getMasks().size() < 2)
    return maskError(emitError, *this)
           << "takes at least two masks, got " << getMasks().size();
  for (Attribute a : getMasks()) {
    auto m = dyn_cast<MaskAttrInterface>(a);
    if (!m)
      return maskError(emitError, *this)
             << "lists " << a << ", which is not an #attn mask";
    if (isa<DocumentAttr, SinkTokensAttr, AnyOfAttr>(a))
      return maskError(emitError, *this)
             << "lists " << maskName(a)
             << "; it takes positional masks only (causal, prefix_lm, "
                "sliding_window, chunked, neighborhood_1d, neighborhood_2d)";
    if (failed(m.verifyParameters(emitError)))
      return failure();
  }
  return success();
}

LogicalResult AnyOfAttr::verifyShapes(EmitErrorFn emitError,
                                      const MaskShapes &shapes) const {
  for (MaskAttrInterface m : anyOfMasks(*this))
    if (failed(m.verifyShapes(emitError, shapes)))
      return failure();
  return success();
}

Value AnyOfAttr::emitVisible(MaskEmitContext &ctx, Value b, Value i,
                             Value j) const {
  Value any;
  for (MaskAttrInterface m : anyOfMasks(*this)) {
    Value v = m.emitVisible(ctx, b, i, j);
    any = any ? ctx.orI(any, v) : v;
  }
  return any;
}

KVBounds AnyOfAttr::emitKVBounds(MaskEmitContext &ctx, Value i0,
                                 Value i1) const {
  // The hull of the masks' intervals; a side none bounds stays open.
  Value lo, hi;
  bool openLo = false, openHi = false;
  for (MaskAttrInterface m : anyOfMasks(*this)) {
    KVBounds bounds = m.emitKVBounds(ctx, i0, i1);
    openLo |= !bounds.lo;
    openHi |= !bounds.hi;
    if (bounds.lo)
      lo = lo ? ctx.min(lo, bounds.lo) : bounds.lo;
    if (bounds.hi)
      hi = hi ? ctx.max(hi, bounds.hi) : bounds.hi;
  }
  return {openLo ? Value() : lo, openHi ? Value() : hi};
}

std::optional<Value>
AnyOfAttr::emitBlockFullyVisible(MaskEmitContext &ctx, Value i0, Value i1,
                                 Value j0, Value j1) const {
  // Fully visible when one mask sees the whole block (a conservative OR:
  // blocks covered only by the union are taken as masked).
  Value any;
  for (MaskAttrInterface m : anyOfMasks(*this))
    if (std::optional<Value> full =
            m.emitBlockFullyVisible(ctx, i0, i1, j0, j1))
      any = any ? ctx.orI(any, *full) : *full;
  if (!any)
    return std::nullopt;
  return any;
}

std::optional<Value> AnyOfAttr::emitBlockHidden(MaskEmitContext &ctx,
                                                Value i0, Value i1, Value j0,
                                                Value j1) const {
  // Hidden when every mask's key interval misses the block.
  Value all;
  for (MaskAttrInterface m : anyOfMasks(*this)) {
    KVBounds bounds = m.emitKVBounds(ctx, i0, i1);
    Value misses = ctx.i1(false);
    if (bounds.lo)
      misses = ctx.orI(misses, ctx.cmp(P::sle, j1, bounds.lo));
    if (bounds.hi)
      misses = ctx.orI(misses, ctx.cmp(P::sge, j0, bounds.hi));
    all = all ? ctx.andI(all, misses) : misses;
  }
  return all;
}
