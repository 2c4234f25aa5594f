//===- InvisibleKeys.cpp - value rows no query of a CTA sees ----*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/InvisibleKeys.h"

#include "attn/Conversion/AttnToNVGPU/CopyRing.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

using P = arith::CmpIPredicate;

SmemTile &kernel::addInvisibleKeyFlags(SharedMemoryPlan &plan,
                                       int64_t blockM, MLIRContext *ctx) {
  // [lane % 4][warp]: a CTA has at most blockM / 16 warps.
  return plan.add(SmemLayout::Rows, 4, blockM / 16, 1,
                  IntegerType::get(ctx, 32));
}

Value kernel::visibleColumnBits(
    KernelContext &k, const FragmentShape &shape,
    function_ref<Value(int64_t r, Value col)> visible) {
  ImplicitLocOpBuilder &b = k.b;
  ScalarEmitter &e = k.e;
  Type i32 = b.getI32Type();
  assert(2 * shape.nTiles <= 32 && "block_n is at most 128");
  Value t4 = e.remI(e.remI(k.threadId(), k.idx(32)), k.idx(4));
  Value none = arith::ConstantIntOp::create(b, i32, 0);
  return e.forLoop(
      k.idx(0), k.idx(shape.nTiles), {none},
      [&](Value nt, ValueRange a) -> SmallVector<Value> {
        Value word = a[0];
        for (int64_t half = 0; half < 2; ++half) {
          Value col =
              e.addI(e.addI(e.mulI(nt, k.idx(8)), k.idx(half)),
                     e.mulI(t4, k.idx(2)));
          Value any = e.i1(false);
          for (int64_t r = 0; r < shape.rows(); ++r)
            any = e.orI(any, visible(r, col));
          Value bit = arith::IndexCastOp::create(
              b, i32, e.addI(e.mulI(nt, k.idx(2)), k.idx(half)));
          word = arith::OrIOp::create(
              b, word,
              arith::ShLIOp::create(b, arith::ExtUIOp::create(b, i32, any),
                                    bit));
        }
        return {word};
      })[0];
}

/// The CTA's columns of class t4: the OR of every warp's, after the warps
/// published theirs (lanes 0-3 of each) and a barrier.
static Value exchangeColumns(KernelContext &k, Value columns,
                             const SmemTile &flags) {
  ImplicitLocOpBuilder &b = k.b;
  ScalarEmitter &e = k.e;
  Value tid = k.threadId();
  Value lane = e.remI(tid, k.idx(32)), warp = e.divI(tid, k.idx(32));
  Value t4 = e.remI(lane, k.idx(4));
  // The 8 lanes of a class hold the warp's rows.
  Value bits = columns;
  for (int32_t off : {4, 8, 16})
    bits = arith::OrIOp::create(b, bits, k.shuffleXor(bits, off));
  k.ifThen(e.cmpI(P::slt, lane, k.idx(4)), [&] {
    memref::StoreOp::create(b, bits, flags.view, ValueRange{t4, warp});
  });
  gpu::BarrierOp::create(b);
  Value seen = arith::ConstantIntOp::create(b, b.getI32Type(), 0);
  for (int64_t w = 0; w < k.threads / 32; ++w)
    seen = arith::OrIOp::create(
        b, seen,
        memref::LoadOp::create(b, flags.view, ValueRange{t4, k.idx(w)}));
  return seen;
}

void kernel::zeroInvisibleValueRows(KernelContext &k,
                                    const FragmentShape &shape,
                                    Value columns, const SmemTile &flags,
                                    const SmemTile &values, Value stage,
                                    bool asyncProxy) {
  ImplicitLocOpBuilder &b = k.b;
  ScalarEmitter &e = k.e;
  Type i32 = b.getI32Type();
  Value seen = exchangeColumns(k, columns, flags);

  // Class t4 = lane % 4 has the 2 * nTiles rows 8 * c + 2 * t4 + p (bit
  // 2 * c + p of `seen`), of Dv / 8 16-byte chunks each, and the warps x 8
  // threads of the class share them: a thread takes one (p, chunk) pair
  // and every `step`-th c from its first (several pairs when there are
  // fewer threads than pairs).
  const int64_t pairs = 2 * (values.cols / 8);
  const int64_t members = k.threads / 4;
  const int64_t perRound = std::min(members, pairs);
  const int64_t step = std::max<int64_t>(1, members / pairs);
  const int64_t active = step * perRound;
  const int64_t rounds = (pairs + perRound - 1) / perRound;
  Value tid = k.threadId();
  Value lane = e.remI(tid, k.idx(32));
  Value t4 = e.remI(lane, k.idx(4));
  Value member =
      e.addI(e.mulI(e.divI(tid, k.idx(32)), k.idx(8)), e.divI(lane, k.idx(4)));
  Value first = e.divI(member, k.idx(perRound));
  Value zeros = arith::ConstantOp::create(
      b, DenseElementsAttr::get(VectorType::get({8}, k.elt),
                                b.getZeroAttr(k.elt)));
  Value zero = arith::ConstantIntOp::create(b, i32, 0);
  // The stores go through NVVM's numbered shared space: vector-to-llvm
  // runs before the GPU address spaces are mapped.
  auto viewType = cast<MemRefType>(values.view.getType());
  Value dst = memref::MemorySpaceCastOp::create(
      b,
      MemRefType::get(viewType.getShape(), viewType.getElementType(),
                      viewType.getLayout(), b.getI64IntegerAttr(kSharedSpace)),
      values.view);
  auto clearPair = [&](Value pair) {
    Value p = e.remI(pair, k.idx(2));
    Value row0 = e.addI(e.addI(e.mulI(first, k.idx(8)), e.mulI(t4, k.idx(2))),
                        p);
    SmallVector<Value> base = values.index(
        k, stage, row0, e.mulI(e.divI(pair, k.idx(2)), k.idx(8)));
    Value mine = arith::ShRUIOp::create(
        b, seen,
        arith::IndexCastOp::create(
            b, i32, e.addI(e.mulI(first, k.idx(2)), p)));
    for (int64_t i = 0; i * step < shape.nTiles; ++i) {
      auto clear = [&] {
        Value bit = arith::AndIOp::create(
            b, mine,
            arith::ConstantIntOp::create(b, i32, int64_t(1) << (2 * step * i)));
        k.ifThen(e.cmpI(P::eq, bit, zero), [&] {
          vector::StoreOp::create(b, zeros, dst,
                                  values.offsetRows(k, base, 8 * step * i));
        });
      };
      if ((i + 1) * step <= shape.nTiles)
        clear();
      else
        k.ifThen(e.cmpI(P::slt, e.addI(first, k.idx(i * step)),
                        k.idx(shape.nTiles)),
                 clear);
    }
  };
  auto clearRounds = [&] {
    Value inRound = e.remI(member, k.idx(perRound));
    for (int64_t round = 0; round < rounds; ++round) {
      Value pair = e.addI(inRound, k.idx(round * perRound));
      if ((round + 1) * perRound <= pairs)
        clearPair(pair);
      else
        k.ifThen(e.cmpI(P::slt, pair, k.idx(pairs)), [&] { clearPair(pair); });
    }
  };
  if (active == members)
    clearRounds();
  else
    k.ifThen(e.cmpI(P::slt, member, k.idx(active)), clearRounds);
  publishCopies(k, asyncProxy);
}
