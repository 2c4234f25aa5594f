//===- SharedMemoryPlan.cpp - tiles in dynamic shared memory ----*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/SharedMemoryPlan.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

namespace {
constexpr int64_t kPad = 8;        ///< Padding elements per Padded row.
constexpr int64_t kPanelCols = 64; ///< Columns of a 128-byte swizzle panel.
constexpr int64_t kRowBytes = 128; ///< Bytes of a swizzled panel row.
} // namespace

int64_t SmemTile::elementBytes() const {
  return elementType.getIntOrFloatBitWidth() / 8;
}

int64_t SmemTile::rowElements() const {
  switch (layout) {
  case SmemLayout::Padded:
    return cols + kPad;
  case SmemLayout::CoreMatrix:
    return 16;
  default:
    return cols;
  }
}

int64_t SmemTile::stageBytes() const {
  return rows * rowElements() * elementBytes();
}

SmallVector<int64_t> SmemTile::viewShape() const {
  switch (layout) {
  case SmemLayout::Padded:
    return {stages, rows, rowElements()};
  case SmemLayout::Swizzle128:
    return {stages, cols / kPanelCols, rows, kPanelCols};
  case SmemLayout::Rows:
    return {stages, rows};
  case SmemLayout::CoreMatrix:
    if (stages == 1)
      return {rows * 16};
    return {stages, rows * 16};
  }
  llvm_unreachable("unknown layout");
}

SmallVector<Value> SmemTile::index(KernelContext &k, Value stage, Value row,
                                   Value col) const {
  ScalarEmitter &e = k.e;
  switch (layout) {
  case SmemLayout::Padded:
    return {stage, row, col};
  case SmemLayout::Swizzle128: {
    Value panel = e.divI(col, k.idx(kPanelCols));
    Value inPanel = e.remI(col, k.idx(kPanelCols));
    Value chunk = arith::XOrIOp::create(k.b, e.divI(inPanel, k.idx(8)),
                                        e.remI(row, k.idx(8)));
    return {stage, panel, row,
            e.addI(e.mulI(chunk, k.idx(8)), e.remI(inPanel, k.idx(8)))};
  }
  case SmemLayout::Rows:
    return {stage, row};
  case SmemLayout::CoreMatrix: {
    // Columns 8-15 are the second core matrix, 128 bytes on.
    Value at = e.addI(e.addI(coreMatrixOffset(k, row, 0),
                             e.mulI(e.divI(col, k.idx(8)), k.idx(64))),
                      e.remI(col, k.idx(8)));
    if (stages == 1)
      return {at};
    return {stage, at};
  }
  }
  llvm_unreachable("unknown layout");
}

Value SmemTile::byteOffset(KernelContext &k, Value row, Value col) const {
  assert(layout == SmemLayout::Swizzle128 && stages == 1 &&
         "a one-stage swizzled tile");
  ScalarEmitter &e = k.e;
  Value panel = e.divI(col, k.idx(kPanelCols));
  Value chunk = arith::XOrIOp::create(
      k.b, e.divI(e.remI(col, k.idx(kPanelCols)), k.idx(8)),
      e.remI(row, k.idx(8)));
  Value at = e.addI(
      e.addI(e.mulI(panel, k.idx(rows * kRowBytes)),
             e.mulI(row, k.idx(kRowBytes))),
      e.addI(e.mulI(chunk, k.idx(16)),
             e.mulI(e.remI(col, k.idx(8)), k.idx(elementBytes()))));
  return k.bytes(at, 1, offset);
}

SmallVector<Value> SmemTile::offsetRows(KernelContext &k,
                                        ArrayRef<Value> indices,
                                        int64_t rows) const {
  SmallVector<Value> out(indices);
  switch (layout) {
  case SmemLayout::Padded:
  case SmemLayout::Rows:
    out[1] = k.e.addI(out[1], k.idx(rows));
    return out;
  case SmemLayout::Swizzle128:
    assert(rows % 8 == 0 && "the swizzle repeats every 8 rows");
    out[2] = k.e.addI(out[2], k.idx(rows));
    return out;
  case SmemLayout::CoreMatrix:
    break;
  }
  llvm_unreachable("core-matrix tiles are addressed by offset");
}

Value SmemTile::coreMatrixOffset(KernelContext &k, Value row,
                                 int64_t half) const {
  assert(layout == SmemLayout::CoreMatrix && "not a core-matrix tile");
  ScalarEmitter &e = k.e;
  return e.addI(
      e.mulI(e.addI(e.mulI(e.divI(row, k.idx(8)), k.idx(2)), k.idx(half)),
             k.idx(64)),
      e.mulI(e.remI(row, k.idx(8)), k.idx(8)));
}

Value SmemTile::kStepOfStage(KernelContext &k, Value stage,
                             int64_t ks) const {
  assert(layout == SmemLayout::Swizzle128 && "not a swizzled tile");
  // A k-step of 16 elements is 32 bytes into a 128-byte panel row.
  return k.bytes(stage, stageBytes(),
                 offset + (ks / 4) * rows * kRowBytes + (ks % 4) * 32);
}

Value SmemTile::kStepOfRowGroup(KernelContext &k, Value rowGroup,
                                int64_t ks) const {
  assert(layout == SmemLayout::Swizzle128 && stages == 1 &&
         "not a one-stage swizzled tile");
  return k.bytes(rowGroup, 64 * kRowBytes,
                 offset + (ks / 4) * rows * kRowBytes + (ks % 4) * 32);
}

DescriptorLayout SmemTile::kMajorLayout() const {
  // K-major with the 128-byte swizzle: 8-row groups 1024 bytes apart (the
  // leading offset is unused).
  return {16, 8 * kRowBytes, true};
}

Value SmemTile::rowStepOfStage(KernelContext &k, Value stage,
                               int64_t kk) const {
  assert(layout == SmemLayout::Swizzle128 && "not a swizzled tile");
  // 16 rows are two 8-row groups of 1024 bytes.
  return k.bytes(stage, stageBytes(), offset + kk * 16 * kRowBytes);
}

DescriptorLayout SmemTile::mnMajorLayout() const {
  // MN-major: 64-column panels are rows * 128 bytes apart, 8-row groups
  // 1024 bytes apart.
  return {rows * kRowBytes, 8 * kRowBytes, true};
}

Value SmemTile::coreMatrixBase(KernelContext &k, Value index,
                               bool byRowGroup) const {
  assert(layout == SmemLayout::CoreMatrix && "not a core-matrix tile");
  return k.bytes(index, byRowGroup ? 64 * 32 : stageBytes(), offset);
}

DescriptorLayout SmemTile::coreMatrixLayout() const {
  return {128, 256, false};
}

SmemTile &SharedMemoryPlan::add(SmemLayout layout, int64_t stages,
                                int64_t rows, int64_t cols,
                                Type elementType) {
  SmemTile &t = tiles.emplace_back();
  t.layout = layout;
  t.stages = stages;
  t.rows = rows;
  t.cols = cols;
  t.elementType = elementType;
  t.offset = end;
  assert((layout != SmemLayout::Swizzle128 || end % 1024 == 0) &&
         "swizzled tiles start on 1024-byte boundaries");
  end += t.bytes();
  return t;
}

bool SharedMemoryPlan::hasSwizzledTiles() const {
  return llvm::any_of(tiles, [](const SmemTile &t) {
    return t.layout == SmemLayout::Swizzle128;
  });
}

void SharedMemoryPlan::materialize(KernelContext &k) {
  ImplicitLocOpBuilder &b = k.b;
  auto space = gpu::AddressSpaceAttr::get(k.ctx, gpu::AddressSpace::Workgroup);
  Value smem = gpu::DynamicSharedMemoryOp::create(
      b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                         MemRefLayoutAttrInterface(), space));
  for (SmemTile &t : tiles)
    t.view = memref::ViewOp::create(
        b,
        MemRefType::get(t.viewShape(), t.elementType,
                        MemRefLayoutAttrInterface(), space),
        smem, k.idx(t.offset), ValueRange{});
  if (!hasSwizzledTiles())
    return;
  base = arith::IndexCastOp::create(
      b, b.getI64Type(),
      memref::ExtractAlignedPointerAsIndexOp::create(b, smem));
  // The swizzle of the tiles (index) and of the descriptors (base offset 0)
  // agree only if dynamic shared memory starts on a 1024-byte boundary, as
  // it does with no static shared memory before it. Were it ever not so,
  // stop (a trap: the launch fails) rather than compute a wrong result.
  Value misaligned = arith::CmpIOp::create(
      b, arith::CmpIPredicate::ne,
      arith::AndIOp::create(
          b, base, arith::ConstantIntOp::create(b, b.getI64Type(), 1023)),
      arith::ConstantIntOp::create(b, b.getI64Type(), 0));
  k.ifThen(misaligned, [&] { LLVM::Trap::create(b); });
}
