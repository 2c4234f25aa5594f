//===- CopyRing.cpp - asynchronous global-to-shared copies ------*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/CopyRing.h"

#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

void kernel::copyChunkAsync(KernelContext &k, Value src, Value srcIndex,
                            Value dst, ValueRange dstIndices,
                            int64_t elements) {
  nvgpu::DeviceAsyncCopyOp::create(
      k.b, nvgpu::DeviceAsyncTokenType::get(k.ctx), dst, dstIndices, src,
      ValueRange{srcIndex}, k.b.getIndexAttr(elements), Value(),
      /*bypassL1=*/k.b.getUnitAttr());
}

void kernel::copyTileAsync(KernelContext &k, Value src, const SmemTile &dst,
                           Value stage, Value firstElement, Value validRows) {
  using P = arith::CmpIPredicate;
  ScalarEmitter &e = k.e;
  const int64_t dim = dst.cols, tileRows = dst.rows;
  const int64_t chunksPerRow = dim / 8;
  const int64_t total = tileRows * chunksPerRow;
  Value tid = k.threadId();
  // Every (row, col) a thread copies is fixed for the kernel (loop
  // invariant); per tile only the source base moves.
  auto copies = [&](bool whole) {
    for (int64_t first = 0; first < total; first += k.threads) {
      Value c = e.addI(tid, k.idx(first));
      auto copy = [&]() {
        Value row = e.divI(c, k.idx(chunksPerRow));
        Value col = e.mulI(e.remI(c, k.idx(chunksPerRow)), k.idx(8));
        Value offset = e.addI(e.mulI(row, k.idx(dim)), col);
        Value srcElements;
        if (!whole) {
          Value valid = e.cmpI(P::slt, row, validRows);
          offset = e.select(valid, offset, k.idx(0));
          srcElements = e.select(valid, k.idx(8), k.idx(0));
        }
        nvgpu::DeviceAsyncCopyOp::create(
            k.b, nvgpu::DeviceAsyncTokenType::get(k.ctx), dst.view,
            dst.index(k, stage, row, col), src,
            ValueRange{e.addI(firstElement, offset)}, k.b.getIndexAttr(8),
            srcElements, /*bypassL1=*/k.b.getUnitAttr());
      };
      if (first + k.threads <= total) {
        copy();
        continue;
      }
      // The last round: only the threads with a chunk left copy.
      k.ifThen(e.cmpI(P::slt, c, k.idx(total)), copy);
    }
  };
  k.ifElse(
      e.cmpI(P::eq, validRows, k.idx(tileRows)),
      [&]() -> SmallVector<Value> {
        copies(true);
        return {};
      },
      [&]() -> SmallVector<Value> {
        copies(false);
        return {};
      });
}

void kernel::copyValuesAsync(KernelContext &k, Value src, const SmemTile &dst,
                             Value stage, Value firstElement,
                             Value validCount, int64_t firstThread) {
  using P = arith::CmpIPredicate;
  assert(dst.layout == SmemLayout::Rows && dst.elementBytes() == 4 &&
         "per-row 4-byte values");
  ScalarEmitter &e = k.e;
  Value r = e.subI(k.threadId(), k.idx(firstThread));
  Value mine = e.andI(e.cmpI(P::sge, r, k.idx(0)),
                      e.cmpI(P::slt, r, k.idx(dst.rows)));
  k.ifThen(mine, [&] {
    Value valid = e.cmpI(P::slt, r, validCount);
    nvgpu::DeviceAsyncCopyOp::create(
        k.b, nvgpu::DeviceAsyncTokenType::get(k.ctx), dst.view,
        dst.index(k, stage, r, Value()), src,
        ValueRange{e.addI(firstElement, e.select(valid, r, k.idx(0)))},
        k.b.getIndexAttr(1), e.select(valid, k.idx(1), k.idx(0)),
        /*bypassL1=*/UnitAttr());
  });
}

void kernel::reduceAddBulkAsync(KernelContext &k, Value dst, Value dstElement,
                                Value from, Value bytes) {
  Value at = arith::AddIOp::create(
      k.b, k.address(dst),
      arith::MulIOp::create(
          k.b,
          arith::IndexCastOp::create(k.b, k.b.getI64Type(), dstElement),
          arith::ConstantIntOp::create(k.b, k.b.getI64Type(), 4)));
  Value shared = arith::TruncIOp::create(k.b, k.b.getI32Type(), from);
  Value size = arith::IndexCastOp::create(k.b, k.b.getI32Type(), bytes);
  k.inlineAsm(Type(), ValueRange{at, shared, size},
              "cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 "
              "[$0], [$1], $2;",
              "l,r,r,~{memory}");
}

void kernel::commitBulk(KernelContext &k) {
  NVVM::CpAsyncBulkCommitGroupOp::create(k.b);
}

void kernel::waitBulk(KernelContext &k, int64_t pending, bool readOnly) {
  NVVM::CpAsyncBulkWaitGroupOp::create(
      k.b, k.b.getI32IntegerAttr(pending),
      readOnly ? k.b.getUnitAttr() : UnitAttr());
}

void kernel::commitCopies(KernelContext &k) {
  NVVM::CpAsyncCommitGroupOp::create(k.b);
}

void kernel::waitCopies(KernelContext &k, int64_t pending) {
  NVVM::CpAsyncWaitGroupOp::create(k.b, pending);
}

void kernel::publishCopies(KernelContext &k, bool asyncProxy) {
  // cp.async writes shared memory through the generic proxy; wgmma reads
  // it through the async proxy: each thread fences its own copies before
  // the barrier that publishes them.
  if (asyncProxy)
    NVVM::FenceProxyOp::create(
        k.b, NVVM::ProxyKind::async_shared,
        NVVM::SharedSpaceAttr::get(k.ctx, NVVM::SharedSpace::shared_cta));
  gpu::BarrierOp::create(k.b);
}
