//===- CopyRing.h - asynchronous global-to-shared copies --------*- C++ -*-===//
//
// The cp.async engine of the kernels: 16-byte copies of whole tiles into a
// ring of shared-memory stages, commit groups, waits, and the publication
// of finished copies to the CTA (and to the async proxy that wgmma reads
// through).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_COPYRING_H
#define ATTN_CONVERSION_ATTNTONVGPU_COPYRING_H

#include "attn/Conversion/AttnToNVGPU/SharedMemoryPlan.h"

namespace mlir::attn::kernel {

/// Copies `dst.rows` rows of `dst.cols` elements from the global buffer
/// `src` (row r at element offset firstElement + r * dst.cols) into stage
/// `stage` of `dst`, 16 bytes per cp.async, every thread of the CTA taking
/// its share; rows from `validRows` on are zero-filled (read from a clamped
/// address). A whole tile (validRows == rows) copies with no per-row check.
void copyTileAsync(KernelContext &k, Value src, const SmemTile &dst,
                   Value stage, Value firstElement, Value validRows);

/// Copies `dst.rows` single 4-byte values src[firstElement + r] into stage
/// `stage` of the Rows tile `dst`, one cp.async per value by threads
/// [firstThread, firstThread + dst.rows); values from `validCount` on are
/// zero-filled (read from firstElement).
void copyValuesAsync(KernelContext &k, Value src, const SmemTile &dst,
                     Value stage, Value firstElement, Value validCount,
                     int64_t firstThread);

/// One 16-byte cp.async of `elements` elements from `src[srcIndex]` to
/// `dst[dstIndices]`.
void copyChunkAsync(KernelContext &k, Value src, Value srcIndex, Value dst,
                    ValueRange dstIndices, int64_t elements);

/// Adds `bytes` (an index, a multiple of 16) bytes of f32 at shared
/// address `from` (i64, 16-byte aligned) to the global buffer `dst` from
/// element `dstElement` on, as one asynchronous bulk reduction
/// (cp.reduce.async.bulk .add.f32, sm_90; MLIR has no op for the
/// non-tensor form) of the issuing thread's bulk group.
void reduceAddBulkAsync(KernelContext &k, Value dst, Value dstElement,
                        Value from, Value bytes);
/// Closes this thread's bulk operations so far into a bulk group.
void commitBulk(KernelContext &k);
/// Waits until at most `pending` of this thread's bulk groups are in
/// flight; with `readOnly`, only until they have read their shared memory.
void waitBulk(KernelContext &k, int64_t pending, bool readOnly);

/// Closes the copies issued so far into a commit group.
void commitCopies(KernelContext &k);
/// Waits until at most `pending` commit groups are in flight.
void waitCopies(KernelContext &k, int64_t pending);
/// Makes this thread's finished copies visible to the CTA: a barrier,
/// preceded (when the tiles are read through the async proxy, as wgmma
/// reads them) by a proxy fence.
void publishCopies(KernelContext &k, bool asyncProxy);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_COPYRING_H
