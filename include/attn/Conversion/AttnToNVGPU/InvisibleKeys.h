//===- InvisibleKeys.h - value rows no query of a CTA sees ------*- C++ -*-===//
//
// Keys a query may not see must not influence its output, whatever their K
// and V rows hold (packed documents and paged caches keep garbage there).
// The forward kernel selects every score of a masked key to -inf (or its
// weight to 0) before it meets any other, so K rows never leak; but the
// tensor cores' O += P.V multiplies a masked key's zero weight by its value
// row, and 0 * NaN = NaN. On tiles that are not fully visible the kernel
// therefore zeroes, in shared memory, the V rows of the keys that no query
// of the CTA's row block sees (docs/semantics.md, "Keys a query cannot
// see"). Rows past Sk are zero-filled by the copies and tiles the
// structured masks hide are never loaded; fully visible tiles are untouched.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_INVISIBLEKEYS_H
#define ATTN_CONVERSION_ATTNTONVGPU_INVISIBLEKEYS_H

#include "attn/Conversion/AttnToNVGPU/FragmentSoftmax.h"
#include "attn/Conversion/AttnToNVGPU/SharedMemoryPlan.h"

namespace mlir::attn::kernel {

/// Adds to `plan` the flags through which the warps of a CTA of `blockM`
/// query rows agree on the keys of a tile none of them sees: one i32 per
/// (lane % 4, warp), bit c of it for column class c of the m16n8 layout.
SmemTile &addInvisibleKeyFlags(SharedMemoryPlan &plan, int64_t blockM,
                               MLIRContext *ctx);

/// The columns of a tile this thread's rows see, as the bits of one i32:
/// bit 2 * nt + b for column 8 * nt + 2 * (lane % 4) + b of the m16n8
/// layout, from `visible(r, col)` (row r of the thread, column col of the
/// tile). Evaluated in a loop over the n-tiles: unrolled, the per-column
/// constants the loop-invariant code motion hoists would stay live across
/// the whole KV loop.
Value visibleColumnBits(KernelContext &k, const FragmentShape &shape,
                        function_ref<Value(int64_t r, Value col)> visible);

/// Zeroes the rows of stage `stage` of the V tile `values` whose key no
/// query of the CTA sees, from every thread's `columns` (its
/// visibleColumnBits): the warps OR them with shuffles and exchange them
/// through `flags` (one barrier), every thread zeroes its share of the
/// rows, and a barrier (preceded by a proxy fence when the tile is read
/// through the async proxy, as wgmma reads it) publishes them before
/// O += P.V. A thread's rows are 8-row multiples apart in one 16-byte
/// column, so that their addresses are one base plus constants.
void zeroInvisibleValueRows(KernelContext &k, const FragmentShape &shape,
                            Value columns, const SmemTile &flags,
                            const SmemTile &values, Value stage,
                            bool asyncProxy);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_INVISIBLEKEYS_H
