//===- Schedule.h - loops over a ring of KV tiles ---------------*- C++ -*-===//
//
// The schedules of a kernel's loop over KV tiles streaming through a ring
// of shared-memory stages: the plain loop (wait for tile u, prefetch
// u + stages - 1, compute u) and the software-pipelined one of
// FlashAttention-3's intra-warpgroup overlap (the tensor cores compute
// S(u+1) and then O += P(u).V(u) while the warps turn S(u+1) into
// P(u+1)). What a tile computes comes from the kernel as callbacks.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_CONVERSION_ATTNTONVGPU_SCHEDULE_H
#define ATTN_CONVERSION_ATTNTONVGPU_SCHEDULE_H

#include "attn/Conversion/AttnToNVGPU/KernelContext.h"

#include <functional>

namespace mlir::attn::kernel {

/// The KV tiles a CTA visits, as one index u in [begin, end), and how
/// each is loaded into its ring stage.
struct KVTileRing {
  Value begin, end;
  int64_t stages;
  /// Whether the tiles are read through the async proxy (wgmma).
  bool asyncProxy;
  /// Issues the copies of tile u into `stage`.
  std::function<void(Value u, Value stage)> load;

  /// The stage of tile u: (u + stages) mod stages (u may be -1).
  Value stageOf(KernelContext &k, Value u) const;
  /// Issues tile `u` if it exists and commits a group (empty otherwise),
  /// so that waits can count a fixed number of pending groups.
  void prefetch(KernelContext &k, Value u) const;
  /// The first stages - 1 tiles in flight, a group each.
  void prime(KernelContext &k) const;
  /// Waits until at most `pending` groups are in flight and publishes the
  /// finished tiles to the CTA.
  void waitAndPublish(KernelContext &k, int64_t pending) const;
};

/// The plain loop: for each tile u, wait for it (the stages - 2 newer
/// tiles may still be in flight), then prefetch tile u + stages - 1 into
/// the stage tile u - 1 used (the barrier after the wait also guarantees
/// every warp is done with u - 1), then `body`. Returns the final state.
/// With `bodyPrefetches` the loop leaves the prefetch to `body`, which
/// issues it (ring.prefetch of u + stages - 1) once per step, at a point
/// of its choosing.
SmallVector<Value> emitPlainKVLoop(
    KernelContext &k, const KVTileRing &ring, ValueRange init,
    function_ref<SmallVector<Value>(Value u, Value stage, ValueRange cur)>
        body,
    bool bodyPrefetches = false);

/// What the pipelined loop needs from the kernel. Its state is O (nO
/// values), m and l (rows each), the packed P of the tile whose P.V is
/// next (nP), its O rescale alpha (rows) and whether any row moved.
struct PipelinedSteps {
  int64_t nO, rows, nP;
  /// Issues S of the tile in `stage` (no wait); returns its accumulator.
  std::function<Value(Value stage)> issueScores;
  /// Waits for `acc` with at most `pending` other chains in flight.
  std::function<SmallVector<Value>(Value acc, int64_t pending)> waitScores;
  /// m ++ l ++ packed P ++ alpha ++ {changed} of tile u from its scores;
  /// `maySink`: u may be the tile of learned sink rows.
  std::function<SmallVector<Value>(ArrayRef<Value> s, ArrayRef<Value> m,
                                   ArrayRef<Value> l, Value u, bool maySink)>
      weigh;
  std::function<SmallVector<Value>(ArrayRef<Value> o, ArrayRef<Value> alpha,
                                   Value changed)>
      rescale;
  /// Issues O += P.V for the tile in `stage` (no wait).
  std::function<SmallVector<Value>(ArrayRef<Value> o, ArrayRef<Value> p,
                                   Value stage)>
      issuePV;
  /// Waits for every chain; returns O.
  std::function<SmallVector<Value>(ArrayRef<Value> o)> retirePV;
  /// The packed P of "no tile yet" (zeros).
  SmallVector<Value> zeroP;
  /// Optional: called once no chain is in flight after tile u was weighed
  /// (after the first tile's weigh, and after each iteration's retirePV),
  /// before P(u).V(u) is issued; it may publish shared memory with a
  /// barrier.
  std::function<void(Value u)> settle;
};

/// The software-pipelined loop. Tile u + 1 is resident at the top of
/// iteration u (issued at least one iteration earlier: needs stages >= 3).
/// `state` is O ++ m ++ l; returns it after the last tile.
SmallVector<Value> emitPipelinedKVLoop(KernelContext &k,
                                       const KVTileRing &ring,
                                       const PipelinedSteps &steps,
                                       ArrayRef<Value> state);

} // namespace mlir::attn::kernel

#endif // ATTN_CONVERSION_ATTNTONVGPU_SCHEDULE_H
