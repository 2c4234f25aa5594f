//===- SharedMemoryPlan.h - tiles in dynamic shared memory ------*- C++ -*-===//
//
// Where each tile of a kernel lives in dynamic shared memory and how its
// elements are laid out. The layouts, and so the 128-byte swizzle, are
// defined here only: the element indices that copies and loads use and the
// byte offsets and strides that wgmma descriptors encode both come from the
// tile, so they agree by construction.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_SHAREDMEMORYPLAN_H
#define ATTN_CONVERSION_ATTNTONVGPU_SHAREDMEMORYPLAN_H

#include "attn/Conversion/AttnToNVGPU/KernelContext.h"

#include <deque>

namespace mlir::attn::kernel {

enum class SmemLayout {
  /// [stage][row][col] with 8 elements of padding per row (ldmatrix reads
  /// without bank conflicts).
  Padded,
  /// [stage][panel][row][64]: 64-column panels of 128-byte rows; in a
  /// panel, 16-byte chunk c of row r sits at chunk c ^ (r % 8), the layout
  /// of wgmma's 128-byte swizzle. Tiles start on 1024-byte boundaries.
  Swizzle128,
  /// [stage][row] of single values (per-key scalars).
  Rows,
  /// [stage][row * 16] (or [row * 16] with one stage): 16 elements per row
  /// in wgmma's unswizzled K-major core matrices, 8 rows x 16 bytes each,
  /// the two 8-column halves 128 bytes apart, 8-row groups 256 bytes apart.
  CoreMatrix,
};

/// How a wgmma descriptor walks a tile.
struct DescriptorLayout {
  int64_t leadingBytes, strideBytes;
  bool swizzle128;
};

/// A tile of `stages` x `rows` x `cols` elements.
struct SmemTile {
  SmemLayout layout;
  int64_t stages, rows, cols;
  Type elementType;
  int64_t offset = 0; ///< Bytes from the start of dynamic shared memory.
  Value view;         ///< The memref view, once the plan is materialized.

  int64_t elementBytes() const;
  /// Elements per row as stored (padding included).
  int64_t rowElements() const;
  int64_t stageBytes() const;
  int64_t bytes() const { return stages * stageBytes(); }
  /// The memref shape of the view.
  SmallVector<int64_t> viewShape() const;

  /// Indices into `view` of element (row, col) of `stage`.
  SmallVector<Value> index(KernelContext &k, Value stage, Value row,
                           Value col) const;
  /// Swizzle128, one stage: the i64 byte offset of element (row, col),
  /// `col` a multiple of 8 (the start of a 16-byte chunk) for stmatrix and
  /// similar chunk-wise accesses.
  Value byteOffset(KernelContext &k, Value row, Value col) const;
  /// The indices `rows` rows below `indices` (from index(), same stage and
  /// column; a multiple of 8 rows for Swizzle128, whose swizzle repeats
  /// every 8 rows): the row index plus a constant.
  SmallVector<Value> offsetRows(KernelContext &k, ArrayRef<Value> indices,
                                int64_t rows) const;
  /// CoreMatrix: the element offset in a stage of (row, 8-column half).
  Value coreMatrixOffset(KernelContext &k, Value row, int64_t half) const;

  /// Swizzle128, read K-major: the byte offset of k-step `ks` (16 columns)
  /// of `stage`, or of the 64-row group `rowGroup` of a one-stage tile.
  Value kStepOfStage(KernelContext &k, Value stage, int64_t ks) const;
  Value kStepOfRowGroup(KernelContext &k, Value rowGroup, int64_t ks) const;
  DescriptorLayout kMajorLayout() const;
  /// Swizzle128, read MN-major (rows are the reduction): the byte offset of
  /// rows [16 kk, 16 kk + 16) of `stage`.
  Value rowStepOfStage(KernelContext &k, Value stage, int64_t kk) const;
  DescriptorLayout mnMajorLayout() const;
  /// CoreMatrix: the byte offset of `stage`, or of 64-row group `rowGroup`.
  Value coreMatrixBase(KernelContext &k, Value index, bool byRowGroup) const;
  DescriptorLayout coreMatrixLayout() const;
};

/// The tiles of one kernel, packed one after another.
class SharedMemoryPlan {
public:
  /// Appends a tile; returns it (stable: tiles are never moved).
  SmemTile &add(SmemLayout layout, int64_t stages, int64_t rows,
                int64_t cols, Type elementType);
  int64_t bytes() const { return end; }
  bool hasSwizzledTiles() const;
  /// Creates the dynamic shared memory and a view per tile; with swizzled
  /// tiles also the i64 shared-window address the descriptors start from,
  /// and a trap when dynamic shared memory is not 1024-byte aligned (the
  /// swizzle would silently be wrong).
  void materialize(KernelContext &k);
  /// The i64 shared-window address of dynamic shared memory (swizzled
  /// plans, after materialize).
  Value address() const { return base; }

private:
  std::deque<SmemTile> tiles;
  int64_t end = 0;
  Value base;
};

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_SHAREDMEMORYPLAN_H
