//===- Schedule.cpp - loops over a ring of KV tiles -------------*- C++ -*-===//

#include "attn/Conversion/AttnToNVGPU/Schedule.h"

#include "attn/Conversion/AttnToNVGPU/CopyRing.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::kernel;

using P = arith::CmpIPredicate;

Value KVTileRing::stageOf(KernelContext &k, Value u) const {
  return k.e.remI(k.e.addI(u, k.idx(stages)), k.idx(stages));
}

void KVTileRing::prefetch(KernelContext &k, Value u) const {
  k.ifThen(k.e.cmpI(P::slt, u, end), [&] { load(u, stageOf(k, u)); });
  commitCopies(k);
}

void KVTileRing::prime(KernelContext &k) const {
  for (int64_t ahead = 0; ahead < stages - 1; ++ahead)
    prefetch(k, k.e.addI(begin, k.idx(ahead)));
}

void KVTileRing::waitAndPublish(KernelContext &k, int64_t pending) const {
  waitCopies(k, pending);
  publishCopies(k, asyncProxy);
}

SmallVector<Value> kernel::emitPlainKVLoop(
    KernelContext &k, const KVTileRing &ring, ValueRange init,
    function_ref<SmallVector<Value>(Value u, Value stage, ValueRange cur)>
        body,
    bool bodyPrefetches) {
  ValueRange out = k.e.forLoop(
      ring.begin, ring.end, init,
      [&](Value u, ValueRange cur) -> SmallVector<Value> {
        Value stage = ring.stageOf(k, u);
        ring.waitAndPublish(k, ring.stages - 2);
        if (!bodyPrefetches)
          ring.prefetch(k, k.e.addI(u, k.idx(ring.stages - 1)));
        return body(u, stage, cur);
      });
  return SmallVector<Value>(out.begin(), out.end());
}

namespace {
/// Views of the pipelined state.
struct PipelinedState {
  const PipelinedSteps &steps;
  ArrayRef<Value> v;
  ArrayRef<Value> o() const { return v.take_front(steps.nO); }
  ArrayRef<Value> m() const { return v.slice(steps.nO, steps.rows); }
  ArrayRef<Value> l() const {
    return v.slice(steps.nO + steps.rows, steps.rows);
  }
  ArrayRef<Value> packedP() const {
    return v.slice(steps.nO + 2 * steps.rows, steps.nP);
  }
  ArrayRef<Value> alpha() const {
    return v.slice(steps.nO + 2 * steps.rows + steps.nP, steps.rows);
  }
  Value changed() const { return v[steps.nO + 3 * steps.rows + steps.nP]; }
};
} // namespace

SmallVector<Value> kernel::emitPipelinedKVLoop(KernelContext &k,
                                               const KVTileRing &ring,
                                               const PipelinedSteps &steps,
                                               ArrayRef<Value> state) {
  ScalarEmitter &e = k.e;
  // Placeholders for "no tile yet": zero P, no rescale.
  SmallVector<Value> init(state.begin(), state.end());
  init.append(steps.zeroP);
  init.append(steps.rows, k.f32(1.0));
  init.push_back(e.i1(false));
  Value any = e.cmpI(P::slt, ring.begin, ring.end);
  // The weights of the first tile.
  SmallVector<Value> first = k.ifElse(
      any,
      [&]() {
        PipelinedState s{steps, init};
        Value acc = steps.issueScores(ring.stageOf(k, ring.begin));
        SmallVector<Value> sc = steps.waitScores(acc, 0);
        SmallVector<Value> w =
            steps.weigh(sc, s.m(), s.l(), ring.begin, /*maySink=*/true);
        if (steps.settle)
          steps.settle(ring.begin);
        SmallVector<Value> out(s.o());
        out.append(w);
        return out;
      },
      [&]() { return init; });
  ValueRange looped = e.forLoop(
      ring.begin, e.maxI(e.subI(ring.end, k.idx(1)), ring.begin), first,
      [&](Value u, ValueRange curRange) -> SmallVector<Value> {
        SmallVector<Value> curV(curRange.begin(), curRange.end());
        PipelinedState cur{steps, curV};
        Value next = e.addI(u, k.idx(1));
        ring.waitAndPublish(k, ring.stages - 3);
        ring.prefetch(k, e.addI(u, k.idx(ring.stages - 1)));
        Value acc = steps.issueScores(ring.stageOf(k, next));
        SmallVector<Value> o =
            steps.rescale(cur.o(), cur.alpha(), cur.changed());
        o = steps.issuePV(o, cur.packedP(), ring.stageOf(k, u));
        SmallVector<Value> sc = steps.waitScores(acc, 1);
        SmallVector<Value> w =
            steps.weigh(sc, cur.m(), cur.l(), next, /*maySink=*/false);
        o = steps.retirePV(o);
        if (steps.settle)
          steps.settle(next);
        o.append(w);
        return o;
      });
  // The last tile's P.V.
  SmallVector<Value> lastV(looped.begin(), looped.end());
  PipelinedState last{steps, lastV};
  SmallVector<Value> fin = k.ifElse(
      any,
      [&]() {
        SmallVector<Value> o =
            steps.rescale(last.o(), last.alpha(), last.changed());
        o = steps.issuePV(o, last.packedP(),
                          ring.stageOf(k, e.subI(ring.end, k.idx(1))));
        return steps.retirePV(o);
      },
      [&]() { return SmallVector<Value>(last.o()); });
  fin.append(last.m().begin(), last.m().end());
  fin.append(last.l().begin(), last.l().end());
  return fin;
}
