//===- SegmentSpans.h - document masks decided per tile ---------*- C++ -*-===//
//
// A document mask hides key j from query i unless their segment ids agree.
// The kernels decide whole tiles from the smallest and largest id of the
// tile's queries and keys (MaskEmitContext::segmentSpan): a tile is hidden
// when the two intervals do not meet and fully visible when both hold one
// and the same id; exact for sorted ids (packed documents), sound for any.
// The spans come from the segment captures, read by one thread (a tile in
// turn, while the CTA finds its range of tiles) or by the lanes of a warp
// (the tile of a step, the same in every warp so its mode stays uniform).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_SEGMENTSPANS_H
#define ATTN_CONVERSION_ATTNTONVGPU_SEGMENTSPANS_H

#include "attn/Conversion/AttnToNVGPU/SharedMemoryPlan.h"

namespace mlir::attn::kernel {

/// The (min, max) of a range of segment ids, as i32 values.
using SegmentSpan = std::pair<Value, Value>;

/// The segment captures of the spec's document masks: (capture, whether it
/// holds the keys' ids), queries then keys per mask.
SmallVector<std::pair<unsigned, bool>> documentSegments(const AttnOpInfo &info);

/// A scratch tile for ctaMinMax (2 i32 per warp, up to 8 warps).
SmemTile &addMinMaxScratch(SharedMemoryPlan &plan, MLIRContext *ctx);

/// The CTA's minimum of `lo` and maximum of `hi` (i32, held by every
/// thread of `warps` warps): shuffles within each warp, then `scratch`
/// across them between CTA barriers (all threads must call it).
SegmentSpan ctaMinMax(KernelContext &k, const SmemTile &scratch, Value lo,
                      Value hi, int64_t warps);

/// The tiles t of [first, end) for which `seen(t)` holds, as the range
/// [lo, hi) from the first to the last of them (lo >= hi: none): the
/// threads share the tiles (tile first + t' to thread t' mod threads) and
/// the CTA reduces what they found through `scratch` (ctaMinMax). `seen`
/// may be called with t >= end (the last round): its answer is ignored.
std::pair<Value, Value>
findTileRange(KernelContext &k, const SmemTile &scratch, Value first,
              Value end, int64_t warps, function_ref<Value(Value t)> seen);

/// The span of the ids of `capture` at positions [p0, min(p1, limit))
/// (non-empty) of batch `b`, read by this thread alone: `rows` loads (the
/// tile's size), positions past the end clamped to its last.
SegmentSpan threadSegmentSpan(KernelContext &k, const AttnOpInfo &info,
                              unsigned capture, Value b, Value p0, Value p1,
                              Value limit, int64_t rows);

/// The same, read by the lanes of each warp (lane l: p0 + l + 32 r) and
/// reduced by shuffles: every lane of every warp gets the same span.
SegmentSpan warpSegmentSpan(KernelContext &k, const AttnOpInfo &info,
                            unsigned capture, Value b, Value p0, Value p1,
                            Value limit, int64_t rows);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_SEGMENTSPANS_H
