//===- SegmentSpans.cpp - document masks decided per tile -------*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/SegmentSpans.h"

#include "attn/Dialect/Attn/IR/AttnAttrs.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

using P = arith::CmpIPredicate;

static constexpr int64_t kMaxWarps = 8;

SmallVector<std::pair<unsigned, bool>>
kernel::documentSegments(const AttnOpInfo &info) {
  SmallVector<std::pair<unsigned, bool>> out;
  if (std::optional<ArrayAttr> masks = info.spec.getMasks())
    for (Attribute a : *masks)
      if (auto d = dyn_cast<DocumentAttr>(a)) {
        out.push_back({d.getQSegments(), false});
        out.push_back({d.getKvSegments(), true});
      }
  return out;
}

SmemTile &kernel::addMinMaxScratch(SharedMemoryPlan &plan, MLIRContext *ctx) {
  return plan.add(SmemLayout::Rows, 1, 2 * kMaxWarps, 1,
                  IntegerType::get(ctx, 32));
}

SegmentSpan kernel::ctaMinMax(KernelContext &k, const SmemTile &scratch,
                              Value lo, Value hi, int64_t warps) {
  assert(warps <= kMaxWarps && "scratch holds 8 warps");
  ScalarEmitter &e = k.e;
  for (int32_t off = 16; off >= 1; off /= 2) {
    lo = e.minI(lo, k.shuffleXor(lo, off));
    hi = e.maxI(hi, k.shuffleXor(hi, off));
  }
  Value tid = k.threadId();
  Value warp = e.divI(tid, k.idx(32));
  Value zero = k.idx(0);
  k.ifThen(e.cmpI(P::eq, e.remI(tid, k.idx(32)), zero), [&] {
    memref::StoreOp::create(k.b, lo, scratch.view,
                            scratch.index(k, zero, warp, zero));
    memref::StoreOp::create(
        k.b, hi, scratch.view,
        scratch.index(k, zero, e.addI(warp, k.idx(warps)), zero));
  });
  gpu::BarrierOp::create(k.b);
  auto load = [&](int64_t row) -> Value {
    return memref::LoadOp::create(k.b, scratch.view,
                                  scratch.index(k, zero, k.idx(row), zero));
  };
  lo = load(0);
  hi = load(warps);
  for (int64_t w = 1; w < warps; ++w) {
    lo = e.minI(lo, load(w));
    hi = e.maxI(hi, load(warps + w));
  }
  // The next call may write `scratch` again.
  gpu::BarrierOp::create(k.b);
  return {lo, hi};
}

std::pair<Value, Value>
kernel::findTileRange(KernelContext &k, const SmemTile &scratch, Value first,
                      Value end, int64_t warps,
                      function_ref<Value(Value t)> seen) {
  ScalarEmitter &e = k.e;
  Value tid = k.threadId();
  Value threads = k.idx(k.threads);
  Value rounds =
      e.divI(e.addI(e.subI(end, first), k.idx(k.threads - 1)), threads);
  ValueRange found = e.forLoop(
      k.idx(0), rounds, {end, first},
      [&](Value r, ValueRange a) -> SmallVector<Value> {
        Value t = e.addI(first, e.addI(e.mulI(r, threads), tid));
        Value hit = e.andI(e.cmpI(P::slt, t, end), seen(t));
        return {e.select(hit, e.minI(a[0], t), a[0]),
                e.select(hit, e.maxI(a[1], e.addI(t, k.idx(1))), a[1])};
      });
  Type i32 = k.b.getI32Type();
  auto [lo, hi] =
      ctaMinMax(k, scratch, arith::IndexCastOp::create(k.b, i32, found[0]),
                arith::IndexCastOp::create(k.b, i32, found[1]), warps);
  Type index = k.b.getIndexType();
  return {arith::IndexCastOp::create(k.b, index, lo),
          arith::IndexCastOp::create(k.b, index, hi)};
}

/// The span of the ids at `positions`, each clamped into [0, last]: a
/// position past the range reads its last id, and a tile index below zero
/// (the forward's learned sink rows, whose mode is chosen apart) reads
/// position 0 rather than outside the buffer (the runtime refuses Sq or
/// Sk = 0).
static SegmentSpan spanOf(KernelContext &k, const AttnOpInfo &info,
                          unsigned capture, Value b, ArrayRef<Value> positions,
                          Value last) {
  ScalarEmitter &e = k.e;
  Value lo, hi;
  for (auto [r, pos] : llvm::enumerate(positions)) {
    Value at = e.maxI(e.minI(pos, last), k.idx(0));
    Value id = info.loadSegment(capture, b, at);
    lo = r ? e.minI(lo, id) : id;
    hi = r ? e.maxI(hi, id) : id;
  }
  return {lo, hi};
}

SegmentSpan kernel::threadSegmentSpan(KernelContext &k, const AttnOpInfo &info,
                                      unsigned capture, Value b, Value p0,
                                      Value p1, Value limit, int64_t rows) {
  ScalarEmitter &e = k.e;
  SmallVector<Value> positions;
  for (int64_t r = 0; r < rows; ++r)
    positions.push_back(e.addI(p0, k.idx(r)));
  return spanOf(k, info, capture, b, positions,
                e.subI(e.minI(p1, limit), k.idx(1)));
}

SegmentSpan kernel::warpSegmentSpan(KernelContext &k, const AttnOpInfo &info,
                                    unsigned capture, Value b, Value p0,
                                    Value p1, Value limit, int64_t rows) {
  ScalarEmitter &e = k.e;
  Value lane = e.remI(k.threadId(), k.idx(32));
  SmallVector<Value> positions;
  for (int64_t r = 0; r < (rows + 31) / 32; ++r)
    positions.push_back(e.addI(p0, e.addI(lane, k.idx(32 * r))));
  auto [lo, hi] = spanOf(k, info, capture, b, positions,
                         e.subI(e.minI(p1, limit), k.idx(1)));
  for (int32_t off = 16; off >= 1; off /= 2) {
    lo = e.minI(lo, k.shuffleXor(lo, off));
    hi = e.maxI(hi, k.shuffleXor(hi, off));
  }
  return {lo, hi};
}
